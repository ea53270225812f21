/*
 * pack.c: request body → Kestra's trigger.body as msgpack (map, array or raw str).
 * One pass over the text validates the JSON and writes msgpack as it goes. No I/O, no recursion,
 * no token array: the only memory is the output buffer, a nesting stack of PACK_MAX_DEPTH, and
 * the parser's fixed table where each container's extent is noted for readers (pack_extents).
 * Here: the parser (whitespace, strings, literals, short integers, structure) and the API. Other
 * numbers go to pack_number.c; raw text and UTF-8 repair are pack_text.c's.
 *
 * Parser choice, measured on this machine (pack_bench: gcc -O2, CPU time, median of 5 runs, on
 * the 7339-byte GitHub push payload in testdata/payloads): jansson json_loadb alone 143-200 us;
 * jsmn tokenizing alone 8.4-8.7 us; the jsmn version of pack_body (tokens, then a validating
 * walk over them; kept as pack_oracle.c) 12-24 us; this one-pass parser 3.6-5.9 us in the same
 * runs (8535-byte pretty-printed copy: 6.9-8.3 us against 21-29 us). Callgrind, release build:
 * 5.3 instructions a byte in the bridge against 22 for the jsmn version. jansson also builds a
 * tree of allocated nodes we would walk and free again; a token array is a second pass.
 *
 * A container's element count is known only at its closing bracket, and msgpack wants it in the
 * header. One byte is reserved for the header (a fixmap or fixarray holds up to 15 elements);
 * a container that closes with more moves its elements up by 2 (or 4) bytes and writes a
 * map16/array16 (map32/array32) header. Strings reserve their header the same way, guessing its
 * size from whether a quote is near. Nearly every container and string needs no move (on the
 * GitHub push, 2 maps of 16 or more keys do). A byte moves once per enclosing container of 16
 * or more elements, so at most PACK_MAX_DEPTH times: linear, and cheaper on real bodies than
 * reserving 5 bytes per header and compacting everything once at the end.
 */
#include "pack.h"

#include <limits.h>
#include <locale.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#if defined(__SSE2__) && !defined(PACK_NO_SIMD)
#include <emmintrin.h>
#define PACK_SSE2 1
#endif

#include "pack_int.h"
#include "util.h"

/* ==== Parser state ==== */

struct pack_parser {
    locale_t c_locale; /* strtod must read '.' whatever setlocale() did */
    /* The last value's containers (pack_extents), in the order they opened. */
    struct byte_range extents[PACK_MAX_EXTENTS];
    size_t nextents;
};

struct pack_parser *pack_parser_new(void)
{
    struct pack_parser *pp = xcalloc(1, sizeof(*pp));
    pp->c_locale = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);
    if (pp->c_locale == (locale_t)0) {
        fprintf(stderr, "webhook-bridge: out of memory creating the C locale\n");
        abort();
    }
    return pp;
}

void pack_parser_free(struct pack_parser *pp)
{
    if (!pp) {
        return;
    }
    freelocale(pp->c_locale);
    xfree(pp);
}

size_t pack_parser_retained(const struct pack_parser *pp)
{
    return sizeof(pp->extents);
}

const struct byte_range *pack_extents(const struct pack_parser *pp, size_t *n)
{
    *n = pp->nextents;
    return pp->extents;
}

/* ==== Byte scanning ==== */

/*
 * Copies the UTF-8 sequence at s (n bytes left) to o and returns its length, or 0 when it is
 * not valid: util_utf8_seq_len's rules, inline, since text with accents has one every few words.
 */
static inline size_t copy_utf8(char *o, const unsigned char *s, size_t n)
{
    unsigned char lo, hi;
    size_t k = utf8_lead(s[0], &lo, &hi);
    if (k == 0 || n < k || s[1] < lo || s[1] > hi) {
        return 0;
    }
    for (size_t j = 2; j < k; j++) {
        if ((s[j] & 0xC0) != 0x80) {
            return 0;
        }
    }
    for (size_t j = 0; j < k; j++) {
        o[j] = (char)s[j];
    }
    return k;
}

static bool is_ws(unsigned char c)
{
    return c == ' ' || c == '\n' || c == '\r' || c == '\t';
}

/*
 * skip_ws() once s[i] may be whitespace: pretty-printed JSON's newline and indent, 16 at a time,
 * after a check for the one space that often follows a ':' or ','.
 */
static size_t skip_ws_run(const unsigned char *s, size_t i, size_t n)
{
    if (i + 1 < n && s[i] == ' ' && s[i + 1] > ' ') {
        return i + 1;
    }
#ifdef PACK_SSE2
    const __m128i sp = _mm_set1_epi8(' '), nl = _mm_set1_epi8('\n');
    const __m128i cr = _mm_set1_epi8('\r'), tab = _mm_set1_epi8('\t');
    for (; i + 16 <= n; i += 16) {
        __m128i x = _mm_loadu_si128((const __m128i *)(const void *)(s + i));
        __m128i ws = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(x, sp), _mm_cmpeq_epi8(x, nl)),
                                  _mm_or_si128(_mm_cmpeq_epi8(x, cr), _mm_cmpeq_epi8(x, tab)));
        unsigned int m = ~(unsigned int)_mm_movemask_epi8(ws) & 0xFFFF;
        if (m) {
            return i + (size_t)__builtin_ctz(m);
        }
    }
#endif
    while (i < n && is_ws(s[i])) {
        i++;
    }
    return i;
}

/* The index of the first non-whitespace byte at or after i, or n. Compact JSON has none. */
static inline size_t skip_ws(const unsigned char *s, size_t i, size_t n)
{
    return i < n && s[i] > ' ' ? i : skip_ws_run(s, i, n);
}

/* ==== Output ==== */

/*
 * The parser writes straight into the sbuffer, past sb->size, which moves only on success. A
 * packer call per header, string and number, each through the sbuffer's callback, would cost as
 * much as the parsing. Before each element (a key and its value, or an array value) the parser
 * makes sure of room for the rest of the text plus OUT_SLACK, which covers what an element and
 * the brackets closing after it can write beyond their length in the text: a key or string
 * value is never longer than its JSON form but for the header (up to 5 bytes for 2 quotes), and
 * its block stores stay within the rest of the text; a number takes up to 9 bytes from 1; each
 * closing bracket adds up to 4 header bytes. So JSON needs no growth after the first reservation
 * (the text length plus OUT_SLACK) unless numbers outweigh the rest, as in [0.5,0.5,...]; then
 * the buffer doubles.
 */
#define OUT_SLACK (64u + 4u * PACK_MAX_DEPTH)

/* Makes room for `need` bytes from sb->data + at on (the buffer may move). */
static void reserve(msgpack_sbuffer *sb, size_t at, size_t need)
{
    if (sb->alloc - at >= need) {
        return;
    }
    size_t alloc = sb->alloc * 2 > at + need ? sb->alloc * 2 : at + need;
    sb->data = xrealloc(sb->data, alloc);
    sb->alloc = alloc;
}

/* Makes room for the rest of the text from s[i] at o; returns o in the (moved) buffer. */
static char *room(msgpack_sbuffer *sb, char *o, size_t rest)
{
    size_t at = (size_t)(o - sb->data);
    reserve(sb, at, rest + OUT_SLACK);
    return sb->data + at;
}

/* Header length of a str of n bytes. */
static size_t str_header_len(size_t n)
{
    return n < 32 ? 1 : n < 256 ? 2 : n < 65536 ? 3 : 5;
}

/* A str header: fixstr, str8, str16 or str32, the shortest that holds n. */
static char *put_str_header(char *o, size_t n)
{
    if (n < 32) {
        *o = (char)(0xa0 | n);
        return o + 1;
    }
    if (n < 256) {
        o[0] = (char)0xd9;
        o[1] = (char)n;
        return o + 2;
    }
    *o = (char)(n < 65536 ? 0xda : 0xdb);
    return put_be(o + 1, n, n < 65536 ? 2 : 4);
}

/* ==== Scalars ==== */

/* Where the parser is: output cursor and text index; o is NULL once the text is known bad. */
struct pos {
    char *o;
    size_t i;
};

static const struct pos BAD = {NULL, 0};

static bool is_number_char(unsigned char c)
{
    return (c >= '0' && c <= '9') || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E';
}

/*
 * The number at s[i]. Integers of up to 19 digits (all fit 64 bits) are read in the same loop
 * that finds their end; fractions, exponents, longer integers and bad syntax take the run of
 * number characters through pack_put_number_text (pack_number.c: number_syntax and strtod). A
 * run that stops early (`1x`) is left to the caller, which then finds no separator.
 */
static struct pos put_number(char *o, const unsigned char *s, size_t i, size_t len, locale_t loc)
{
    size_t start = i;
    bool neg = s[i] == '-';
    i += neg;
    size_t d = i;
    uint64_t v = 0;
    while (i < len && (unsigned int)(s[i] - '0') < 10) {
        v = v * 10 + (unsigned int)(s[i] - '0');
        i++;
    }
    size_t nd = i - d;
    bool more = i < len && (s[i] == '.' || (s[i] | 0x20) == 'e');
    if (nd >= 1 && nd <= 19 && !more && (s[d] != '0' || nd == 1) && (!neg || v <= INT64_MAX)) {
        return (struct pos){neg ? put_int(o, -(int64_t)v) : put_uint(o, v), i};
    }
    while (i < len && is_number_char(s[i])) {
        i++;
    }
    o = pack_put_number_text(o, (const char *)s + start, i - start, loc);
    return o ? (struct pos){o, i} : BAD;
}

/* true, false or null at s[i]: `word` must follow in full. */
static struct pos put_literal(char *o, const unsigned char *s, size_t i, size_t len,
                              const char *word, size_t n, unsigned char code)
{
    if (len - i < n || memcmp(s + i, word, n) != 0) {
        return BAD;
    }
    *o = (char)code;
    return (struct pos){o + 1, i + n};
}

/* ==== Strings ==== */

static int hex4(const unsigned char *s)
{
    int v = 0;
    for (int i = 0; i < 4; i++) {
        unsigned char c = s[i];
        int d = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                       : -1;
        if (d < 0) {
            return -1;
        }
        v = v * 16 + d;
    }
    return v;
}

static size_t put_utf8(char *o, uint32_t cp)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xC0 | cp >> 6);
        o[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | cp >> 12);
        o[1] = (char)(0x80 | (cp >> 6 & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | cp >> 18);
    o[1] = (char)(0x80 | (cp >> 12 & 0x3F));
    o[2] = (char)(0x80 | (cp >> 6 & 0x3F));
    o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/*
 * Decodes \uXXXX at s (n bytes of text left), with the low half when s holds a high surrogate
 * followed by one. A lone surrogate becomes U+FFFD: Jackson keeps it in a Java String, but it
 * has no UTF-8 form. Returns the input used, or 0 for bad hex (a quote among the four digits
 * is bad hex too, so nothing is read past the string).
 */
static size_t unescape_u(const unsigned char *s, size_t n, char *o, size_t *m)
{
    int cp = n >= 6 ? hex4(s + 2) : -1;
    if (cp < 0) {
        return 0;
    }
    if (cp >= 0xD800 && cp <= 0xDBFF && n >= 12 && s[6] == '\\' && s[7] == 'u') {
        int lo = hex4(s + 8);
        if (lo >= 0xDC00 && lo <= 0xDFFF) {
            uint32_t pair = 0x10000 + ((uint32_t)(cp - 0xD800) << 10) + (uint32_t)(lo - 0xDC00);
            *m += put_utf8(o + *m, pair);
            return 12;
        }
    }
    if (cp >= 0xD800 && cp <= 0xDFFF) {
        cp = 0xFFFD;
    }
    *m += put_utf8(o + *m, (uint32_t)cp);
    return 6;
}

/* Decodes the escape at s[0] == '\\' into o + *m. Returns the input used, or 0 if invalid. */
static size_t unescape_one(const unsigned char *s, size_t n, char *o, size_t *m)
{
    char c;
    if (n < 2) {
        return 0;
    }
    switch (s[1]) {
    case 'u':
        return unescape_u(s, n, o, m);
    case '"':
    case '\\':
    case '/':
        c = (char)s[1];
        break;
    case 'b':
        c = '\b';
        break;
    case 'f':
        c = '\f';
        break;
    case 'n':
        c = '\n';
        break;
    case 'r':
        c = '\r';
        break;
    case 't':
        c = '\t';
        break;
    default:
        return 0;
    }
    o[(*m)++] = c;
    return 2;
}

/* A byte that ends a run of plain string bytes: the quote, the backslash, below 0x20, 0x80 up. */
static bool ends_run(unsigned char c)
{
    return c < 0x20 || c >= 0x80 || c == '\\' || c == '"';
}

/*
 * Copies bytes from s to o until the first one that ends_run(), and returns its index, or n.
 * Whole blocks are read from s and stored at o while they lie within s[0, n); o has room
 * (OUT_SLACK). SSE2 takes 16 bytes at a time, the portable version 8; -DPACK_NO_SIMD builds
 * the portable one on x86 too, so that the tests can cover it.
 */
#ifdef PACK_SSE2
/* The bytes of x that ends_run(), one bit each. */
static inline unsigned int stop_mask(__m128i x)
{
    /* As signed bytes, everything from 0x80 up is below 0x20 too: one compare for both. */
    const __m128i space = _mm_set1_epi8(0x20), bs = _mm_set1_epi8('\\'), qt = _mm_set1_epi8('"');
    __m128i stop = _mm_or_si128(_mm_cmplt_epi8(x, space),
                                _mm_or_si128(_mm_cmpeq_epi8(x, bs), _mm_cmpeq_epi8(x, qt)));
    return (unsigned int)_mm_movemask_epi8(stop);
}

static inline size_t copy_run(char *o, const unsigned char *s, size_t n)
{
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m128i x = _mm_loadu_si128((const __m128i *)(const void *)(s + i));
        _mm_storeu_si128((__m128i *)(void *)(o + i), x);
        unsigned int m = stop_mask(x);
        if (m) {
            return i + (size_t)__builtin_ctz(m);
        }
    }
    while (i < n && !ends_run(s[i])) {
        o[i] = (char)s[i];
        i++;
    }
    return i;
}

/* True when one of the 32 bytes at s is a quote: the string there likely ends within them. */
static inline bool quote_within_32(const unsigned char *s)
{
    const __m128i qt = _mm_set1_epi8('"');
    __m128i a = _mm_loadu_si128((const __m128i *)(const void *)s);
    __m128i b = _mm_loadu_si128((const __m128i *)(const void *)(s + 16));
    return _mm_movemask_epi8(_mm_or_si128(_mm_cmpeq_epi8(a, qt), _mm_cmpeq_epi8(b, qt))) != 0;
}
#else
/*
 * The bytes of word x that end a run, as the high bit of each such byte: below 0x20, and 0x80
 * and up, directly; (x - 0x20..) & ~x flags a byte below 0x20, the same test for zero on x ^ c..
 * finds byte c. A borrow can also flag bytes after a flagged one, never before, so the first flag
 * is always right.
 */
static uint64_t has_byte(uint64_t x, unsigned char c)
{
    uint64_t y = x ^ (ONES * c);
    return (y - ONES) & ~y;
}

static uint64_t special_bytes(uint64_t x)
{
    return (x | ((x - ONES * 0x20) & ~x) | has_byte(x, '\\') | has_byte(x, '"')) & HIGHS;
}

/* Index in memory order of the first byte flagged by special_bytes(). */
static size_t first_flagged(uint64_t m)
{
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    return (size_t)__builtin_ctzll(m) / 8;
#else
    return (size_t)__builtin_clzll(m) / 8;
#endif
}

static inline size_t copy_run(char *o, const unsigned char *s, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t x;
        memcpy(&x, s + i, 8);
        memcpy(o + i, &x, 8);
        uint64_t m = special_bytes(x);
        if (m) {
            return i + first_flagged(m);
        }
    }
    while (i < n && !ends_run(s[i])) {
        o[i] = (char)s[i];
        i++;
    }
    return i;
}

static inline bool quote_within_32(const unsigned char *s)
{
    return memchr(s, '"', 32) != NULL;
}
#endif

/*
 * Decodes string text from s[i] on into o + w, up to the closing quote; the w bytes before are
 * already there. Returns the index past the closing quote, and the decoded length in *m; 0 if the
 * string is invalid (a raw control character, invalid UTF-8 or a bad escape, which Jackson
 * rejects) or has no end.
 */
static size_t decode_string(char *o, size_t w, const unsigned char *s, size_t i, size_t len,
                            size_t *m)
{
    for (;;) {
        size_t k = copy_run(o + w, s + i, len - i);
        i += k;
        w += k;
        if (i == len) {
            return 0;
        }
        if (s[i] == '"') {
            *m = w;
            return i + 1;
        }
        if (s[i] == '\\') {
            k = unescape_one(s + i, len - i, o, &w);
        } else {
            k = s[i] >= 0x80 ? copy_utf8(o + w, s + i, len - i) : 0;
            w += k;
        }
        if (k == 0) {
            return 0;
        }
        i += k;
    }
}

/*
 * Writes a string as a msgpack str at o, its body after an h-byte header, where the first w
 * bytes of the body are already in place and its text goes on at s[i]. When the decoded length
 * needs another header size, the body moves.
 */
static struct pos put_string_at(char *o, size_t h, size_t w, const unsigned char *s, size_t i,
                                size_t len)
{
    size_t m;
    size_t end = decode_string(o + h, w, s, i, len, &m);
    if (end == 0) {
        return BAD;
    }
    if (str_header_len(m) != h) {
        memmove(o + str_header_len(m), o + h, m);
    }
    o = put_str_header(o, m);
    return (struct pos){o + m, end};
}

#ifdef PACK_SSE2
/*
 * put_string for a string whose first 32 bytes (a, b) are plain: a str8 header, unless the
 * string turns out to be 256 bytes or longer, or to hold escapes or UTF-8 (put_string_at).
 */
static struct pos put_long_string(char *o, const unsigned char *s, size_t i, size_t len,
                                  __m128i a, __m128i b)
{
    _mm_storeu_si128((__m128i *)(void *)(o + 2), a);
    _mm_storeu_si128((__m128i *)(void *)(o + 18), b);
    size_t k = 32 + copy_run(o + 34, s + i + 32, len - i - 32);
    if (i + k == len || s[i + k] != '"' || k >= 256) {
        return put_string_at(o, 2, k, s, i + k, len);
    }
    o[0] = (char)0xd9;
    o[1] = (char)k;
    return (struct pos){o + 2 + k, i + k + 1};
}
#endif

/*
 * Writes the string whose text starts at s[i] (past the quote) as a msgpack str at o. Nearly
 * every string is plain bytes; SSE2 looks at its first 16 and 32 bytes: a closing quote there
 * means a fixstr already copied, none means a string of 32 bytes or more that goes on after a
 * str8 header. Otherwise (escapes, UTF-8, the end of the text near) the header size is what a
 * quote within the next 32 bytes suggests.
 */
static inline struct pos put_string(char *o, const unsigned char *s, size_t i, size_t len)
{
#ifdef PACK_SSE2
    if (len - i >= 32) {
        __m128i a = _mm_loadu_si128((const __m128i *)(const void *)(s + i));
        _mm_storeu_si128((__m128i *)(void *)(o + 1), a);
        unsigned int m = stop_mask(a);
        if (m == 0) {
            __m128i b = _mm_loadu_si128((const __m128i *)(const void *)(s + i + 16));
            _mm_storeu_si128((__m128i *)(void *)(o + 17), b);
            m = stop_mask(b) << 16;
            if (m == 0) {
                return put_long_string(o, s, i, len, a, b);
            }
        }
        size_t k = (size_t)__builtin_ctz(m);
        if (s[i + k] == '"') {
            *o = (char)(0xa0 | k);
            return (struct pos){o + 1 + k, i + k + 1};
        }
    }
#endif
    size_t h = len - i < 32 || quote_within_32(s + i) ? 1 : 2;
    return put_string_at(o, h, 0, s, i, len);
}

/* ==== Structure ==== */

/*
 * An open map or array: where its header byte is (from sb->data), its elements so far, and its
 * slot in the parser's extents (NO_SLOT once the table is full).
 */
struct frame {
    size_t at;
    size_t slot;
    uint32_t n;
    bool map;
};

#define NO_SLOT SIZE_MAX

/* The text being packed, the locale for strtod, and the parser whose extents it records. */
struct text {
    const unsigned char *s;
    size_t len;
    locale_t loc;
    struct pack_parser *pp;
};

/* A string, number or literal at s[i]. */
static struct pos put_scalar(char *o, const struct text *tx, size_t i)
{
    const unsigned char *s = tx->s;
    switch (i < tx->len ? s[i] : 0) {
    case '"':
        return put_string(o, s, i + 1, tx->len);
    case 't':
        return put_literal(o, s, i, tx->len, "true", 4, 0xc3);
    case 'f':
        return put_literal(o, s, i, tx->len, "false", 5, 0xc2);
    case 'n':
        return put_literal(o, s, i, tx->len, "null", 4, 0xc0);
    case '-':
    case '0':
    case '1':
    case '2':
    case '3':
    case '4':
    case '5':
    case '6':
    case '7':
    case '8':
    case '9':
        return put_number(o, s, i, tx->len, tx->loc);
    default:
        return BAD;
    }
}

/* A key at s[i] and the ':' after it; returns where its value starts. */
static struct pos put_key(char *o, const struct text *tx, size_t i)
{
    if (i >= tx->len || tx->s[i] != '"') {
        return BAD;
    }
    struct pos p = put_string(o, tx->s, i + 1, tx->len);
    if (!p.o) {
        return BAD;
    }
    p.i = skip_ws(tx->s, p.i, tx->len);
    if (p.i == tx->len || tx->s[p.i] != ':') {
        return BAD;
    }
    p.i = skip_ws(tx->s, p.i + 1, tx->len);
    return p;
}

/*
 * Writes the header of the container that closes at o: one byte was reserved, which holds a
 * fixmap or fixarray. With 16 elements or more the elements move up to make room for a 16- or
 * 32-bit count, and so do the extents recorded inside it (every slot after its own: they opened
 * after it and before this close). Records its own end. Returns the new end.
 */
static char *close_frame(struct pack_parser *pp, char *base, const struct frame *f, char *o)
{
    char *h = base + f->at;
    int extra = 0;
    if (f->n < 16) {
        *h = (char)((f->map ? 0x80 : 0x90) | f->n);
    } else {
        extra = f->n < 65536 ? 2 : 4;
        memmove(h + 1 + extra, h + 1, (size_t)(o - h - 1));
        /* The 32-bit form follows the 16-bit one (dc dd, de df). */
        *h = (char)((f->map ? 0xde : 0xdc) + (extra == 4));
        put_be(h + 1, f->n, extra);
        o += extra;
    }
    if (f->slot != NO_SLOT) {
        for (size_t k = f->slot + 1; extra && k < pp->nextents; k++) {
            pp->extents[k].start += (size_t)extra;
            pp->extents[k].end += (size_t)extra;
        }
        pp->extents[f->slot].end = (size_t)(o - base);
    }
    return o;
}

/*
 * Packs the value at s[i], a '{' or '[', into sb past sb->size, where pack_json made room for the
 * text plus OUT_SLACK; returns the end, or NULL if the text is not JSON. Each turn of the outer
 * loop writes one value (a scalar, or a container's reserved header byte); the inner loop then
 * consumes what follows it: closing brackets, each completing its container, then the ',' (or,
 * in a container just opened, nothing) before the next element, whose key it writes in a map.
 * The stack holds the open containers; the root's close ends the walk.
 */
static char *pack_value(const struct text *tx, size_t i, msgpack_sbuffer *sb)
{
    const unsigned char *s = tx->s;
    size_t len = tx->len;
    struct frame st[PACK_MAX_DEPTH];
    int depth = 0;
    /* pack_json reserved the room for the root. */
    char *o = sb->data + sb->size, *lim = sb->data + sb->alloc;

    for (;;) {
        bool opened = false;
        if (i < len && (s[i] == '{' || s[i] == '[')) {
            if (depth == PACK_MAX_DEPTH) {
                return NULL;
            }
            struct pack_parser *pp = tx->pp;
            size_t at = (size_t)(o - sb->data), slot = NO_SLOT;
            if (pp->nextents < PACK_MAX_EXTENTS) {
                slot = pp->nextents++;
                pp->extents[slot].start = at;
            }
            st[depth++] = (struct frame){.at = at, .slot = slot, .map = s[i] == '{'};
            o++;
            i++;
            opened = true;
        } else {
            struct pos p = put_scalar(o, tx, i);
            if (!p.o) {
                return NULL;
            }
            o = p.o;
            i = p.i;
        }
        struct frame *f = &st[depth - 1];
        for (;;) {
            unsigned char c = i < len ? s[i] : 0;
            if (c == ',' && !opened) {
                i = skip_ws(s, i + 1, len);
                break;
            }
            if (c == (f->map ? '}' : ']')) {
                o = close_frame(tx->pp, sb->data, f, o);
                i++;
                opened = false;
                if (--depth == 0) {
                    return o;
                }
                f--;
                continue;
            }
            if (is_ws(c)) {
                i = skip_ws_run(s, i, len);
                continue;
            }
            if (!opened) {
                return NULL;
            }
            break;
        }
        /* One check covers the element: its key, its value and the brackets closing after it. */
        if ((size_t)(lim - o) < len - i + OUT_SLACK) {
            o = room(sb, o, len - i);
            lim = sb->data + sb->alloc;
        }
        f->n++;
        if (f->map) {
            struct pos p = put_key(o, tx, i);
            if (!p.o) {
                return NULL;
            }
            o = p.o;
            i = p.i;
        }
    }
}

/* ==== API ==== */

bool pack_json(struct pack_parser *pp, const char *text, size_t len, msgpack_sbuffer *sb)
{
    const unsigned char *s = (const unsigned char *)text;
    size_t first = skip_ws(s, 0, len);
    pp->nextents = 0;
    if (first == len || (s[first] != '{' && s[first] != '[') || len > INT_MAX) {
        return false;
    }
    /* Also makes sb->data non-NULL before pack_value does arithmetic on it. */
    reserve(sb, sb->size, len + OUT_SLACK);
    struct text tx = {.s = s, .len = len, .loc = pp->c_locale, .pp = pp};
    char *end = pack_value(&tx, first, sb);
    if (end) {
        sb->size = (size_t)(end - sb->data);
    } else {
        pp->nextents = 0;
    }
    return end != NULL;
}

static enum pack_body_kind kind_of(const char *text, size_t len)
{
    const unsigned char *s = (const unsigned char *)text;
    return s[skip_ws(s, 0, len)] == '{' ? PACK_BODY_OBJECT : PACK_BODY_ARRAY;
}

/*
 * Kestra (1.x) decodes the body bytes as UTF-8 into a Java String first, each invalid sequence
 * becoming U+FFFD, and only then lets Jackson parse it: so {"a":"\xff"} is the object
 * {"a":"\ufffd"}, not raw text. Text with invalid UTF-8 takes the same two steps here; valid
 * text (nearly all of it) is parsed in place.
 */
enum pack_body_kind pack_body(struct pack_parser *pp, const char *text, size_t len,
                              msgpack_sbuffer *sb)
{
    const unsigned char *u = (const unsigned char *)text;
    enum pack_body_kind kind = PACK_BODY_STRING;
    msgpack_packer pk;
    size_t nbad;

    if (pack_json(pp, text, len, sb)) {
        return kind_of(text, len);
    }
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    size_t fixed_len = pack_repair_len(u, len, &nbad);
    if (nbad == 0) {
        put(msgpack_pack_str_with_body(&pk, text, len));
        return kind;
    }
    char *fixed = xmalloc(fixed_len);
    pack_repair_copy(u, len, fixed);
    if (pack_json(pp, fixed, fixed_len, sb)) {
        kind = kind_of(fixed, fixed_len);
    } else {
        put(msgpack_pack_str_with_body(&pk, fixed, fixed_len));
    }
    xfree(fixed);
    return kind;
}
