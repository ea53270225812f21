/*
 * pack_oracle.c: the jsmn-based pack_json/pack_body that pack.c replaced, kept unchanged but for
 * names as the reference the tests and fuzz_pack compare pack.c with, byte for byte. Built into
 * tests, fuzzers and pack-bench only, never into the bridge.
 *
 * jsmn tokenizes; one linear pass over the tokens validates and packs. No I/O, no recursion.
 * jsmn is lax, so everything it does not check is checked here (see "The token walk"): literals,
 * number syntax, string escapes, control characters and UTF-8 inside strings, every separator
 * between tokens (it ignores commas and colons), keys with exactly one value. It also has costs
 * that grow with nesting, which the window in tokenize() bounds.
 */
#include "pack_oracle.h"

#include <limits.h>
#include <locale.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#if defined(__SSE2__) && !defined(PACK_NO_SIMD)
#include <emmintrin.h>
#endif

#define JSMN_STATIC
#define JSMN_STRICT
#define JSMN_PARENT_LINKS
#include <jsmn.h>

#include "util.h"

/* ==== Parser state ==== */

/* 512 tokens (10 KB) hold a typical GitHub payload; above 8192 (160 KB) we shrink back. */
#define TOK_INITIAL 512u
#define TOK_RETAIN 8192u

/* jsmn returns to us after at most this many new tokens, so the depth guard can run. */
#define TOK_WINDOW 64u

/* tokenize() stopped early because the first value was complete. */
#define TOK_ROOT_DONE (-100)

struct pack_oracle {
    jsmntok_t *tok;
    unsigned int cap;
    locale_t c_locale; /* strtod must read '.' whatever setlocale() did */
};

struct pack_oracle *pack_oracle_new(void)
{
    struct pack_oracle *pp = xcalloc(1, sizeof(*pp));
    pp->cap = TOK_INITIAL;
    pp->tok = xmalloc(pp->cap * sizeof(*pp->tok));
    pp->c_locale = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);
    if (pp->c_locale == (locale_t)0) {
        fprintf(stderr, "webhook-bridge: out of memory creating the C locale\n");
        abort();
    }
    return pp;
}

void pack_oracle_free(struct pack_oracle *pp)
{
    if (!pp) {
        return;
    }
    freelocale(pp->c_locale);
    xfree(pp->tok);
    xfree(pp);
}

size_t pack_oracle_retained(const struct pack_oracle *pp)
{
    return (size_t)pp->cap * sizeof(*pp->tok);
}

static void reserve_tokens(struct pack_oracle *pp, unsigned int n)
{
    if (n <= pp->cap) {
        return;
    }
    unsigned int cap = pp->cap <= UINT_MAX / 2 && pp->cap * 2 > n ? pp->cap * 2 : n;
    pp->tok = xrealloc(pp->tok, (size_t)cap * sizeof(*pp->tok));
    pp->cap = cap;
}

/* Gives back what one huge body made us allocate. */
static void trim(struct pack_oracle *pp)
{
    if (pp->cap > TOK_RETAIN) {
        pp->cap = TOK_INITIAL;
        pp->tok = xrealloc(pp->tok, pp->cap * sizeof(*pp->tok));
    }
}

/*
 * An sbuffer's write callback fails only when realloc does. Out of memory aborts everywhere
 * else in the bridge (xmalloc), and a half-written str would corrupt the message, so it does
 * here too.
 */
static void put(int rc)
{
    if (rc != 0) {
        fprintf(stderr, "webhook-bridge: msgpack write failed (out of memory)\n");
        abort();
    }
}

/* ==== Byte scanning ==== */

#define ONES UINT64_C(0x0101010101010101)
#define HIGHS UINT64_C(0x8080808080808080)

/* Length of the leading run of ASCII bytes, eight at a time. */
static size_t ascii_run(const unsigned char *s, size_t n)
{
    size_t i = 0;
    uint64_t x;
    while (i + 8 <= n) {
        memcpy(&x, s + i, 8);
        if (x & HIGHS) {
            break;
        }
        i += 8;
    }
    while (i < n && s[i] < 0x80) {
        i++;
    }
    return i;
}

static bool is_special(unsigned char c)
{
    return c < 0x20 || c >= 0x80 || c == '\\';
}

/*
 * s does not start a valid UTF-8 sequence: returns the length of its maximal subpart, the
 * longest prefix that could still have begun one (Unicode ch. 3), so that it becomes one U+FFFD.
 * Java's decoder replaces the same spans for all but a few overlong and surrogate forms.
 */
static size_t subpart_len(const unsigned char *s, size_t n)
{
    unsigned char c = s[0], lo = 0x80, hi = 0xBF;
    size_t need;
    if (c >= 0xC2 && c <= 0xDF) {
        need = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        need = 3;
        lo = c == 0xE0 ? 0xA0 : 0x80;
        hi = c == 0xED ? 0x9F : 0xBF;
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 4;
        lo = c == 0xF0 ? 0x90 : 0x80;
        hi = c == 0xF4 ? 0x8F : 0xBF;
    } else {
        return 1;
    }
    size_t i = 1;
    if (i < n && s[i] >= lo && s[i] <= hi) {
        i++;
        while (i < need && i < n && (s[i] & 0xC0) == 0x80) {
            i++;
        }
    }
    return i;
}

static bool is_ws(char c)
{
    return c == ' ' || c == '\n' || c == '\r' || c == '\t';
}

static size_t skip_ws(const char *s, size_t i, size_t n)
{
    while (i < n && is_ws(s[i])) {
        i++;
    }
    return i;
}

/* ==== Raw text ==== */

/* The length of s once each maximal invalid UTF-8 subpart is U+FFFD; *nbad counts them. */
static size_t repair_len(const unsigned char *s, size_t n, size_t *nbad)
{
    size_t out = 0, run = 0, i = 0;
    *nbad = 0;
    while ((i += ascii_run(s + i, n - i)) < n) {
        size_t k = util_utf8_seq_len(s + i, n - i);
        if (k > 0) {
            i += k;
            continue;
        }
        k = subpart_len(s + i, n - i);
        out += i - run + 3;
        (*nbad)++;
        i += k;
        run = i;
    }
    return out + n - run;
}

/* Copies s into out (repair_len() bytes) with each maximal invalid subpart replaced by U+FFFD. */
static void repair_copy(const unsigned char *s, size_t n, char *out)
{
    size_t o = 0, run = 0, i = 0;
    while ((i += ascii_run(s + i, n - i)) < n) {
        size_t k = util_utf8_seq_len(s + i, n - i);
        if (k > 0) {
            i += k;
            continue;
        }
        k = subpart_len(s + i, n - i);
        memcpy(out + o, s + run, i - run);
        o += i - run;
        memcpy(out + o, "\xEF\xBF\xBD", 3);
        o += 3;
        i += k;
        run = i;
    }
    memcpy(out + o, s + run, n - run);
}

/* ==== Tokenizing ==== */

/*
 * False when token s, the one jsmn is filling, sits deeper than a body may: more than
 * PACK_MAX_DEPTH containers above it, or a parent chain longer than valid JSON allows (each
 * container has at most a key between it and the next). jsmn makes chains of any length out of
 * `"a":"b":"c"...`, so the walk stops counting early.
 */
static bool shallow(const jsmntok_t *tok, int s)
{
    int containers = 0, steps = 0;
    for (; s >= 0; s = tok[s].parent) {
        if (++steps > 2 * PACK_MAX_DEPTH) {
            return false;
        }
        if (tok[s].type == JSMN_OBJECT || tok[s].type == JSMN_ARRAY) {
            containers++;
        }
    }
    return containers <= PACK_MAX_DEPTH;
}

/*
 * Runs jsmn over js[0, len). Returns jsmn's result, or TOK_ROOT_DONE when it stopped in text
 * after the first value; *ntok is the number of tokens.
 *
 * jsmn closes a bracket by walking up the parent links from the newest token, so `[[[[...]]]]`
 * costs it depth² steps: 20 s here for 100000 levels (200 KB), far longer for 1 MiB. Handing it at
 * most TOK_WINDOW new tokens per call (it resumes where it stopped after JSMN_ERROR_NOMEM) lets us
 * check the depth between calls and give up once it is more than any body may have; then every walk
 * is short.
 *
 * jsmn's state is a local: the text is char, which may alias any object whose address has
 * escaped, and then every byte read would reload jsmn's position (a third slower).
 */
static int tokenize(struct pack_oracle *pp, const char *js, size_t len, int *ntok)
{
    jsmn_parser p;
    int r;
    jsmn_init(&p);
    for (;;) {
        unsigned int limit = p.toknext + TOK_WINDOW;
        reserve_tokens(pp, limit);
        r = jsmn_parse(&p, js, len, pp->tok, limit);
        if (r != JSMN_ERROR_NOMEM) {
            break;
        }
        if (pp->tok[0].end != -1) {
            r = TOK_ROOT_DONE;
            break;
        }
        if (!shallow(pp->tok, p.toksuper)) {
            r = JSMN_ERROR_INVAL;
            break;
        }
    }
    *ntok = (int)p.toknext;
    return r;
}

/*
 * Tokenizes the first value of js, which starts with '{' or '['. Returns the number of tokens,
 * or -1 when the first value is not complete.
 *
 * jsmn reads on after the first value, and text there can still change tokens inside it: a ':'
 * makes the newest token a parent again. So when anything but whitespace follows, the first
 * value is tokenized again on its own. Jackson ignores the rest the same way.
 */
static int tokenize_first(struct pack_oracle *pp, const char *js, size_t len)
{
    int ntok;
    int r = tokenize(pp, js, len, &ntok);
    if (ntok == 0 || pp->tok[0].end == -1) {
        return -1;
    }
    size_t end = (size_t)pp->tok[0].end;
    if (r < 0 || skip_ws(js, end, len) != len) {
        r = tokenize(pp, js, end, &ntok);
        if (r < 0) {
            return -1;
        }
    }
    return ntok;
}

/* ==== Output ==== */

/*
 * The walk writes straight into the sbuffer. pack_json first reserves the most a value can take:
 * OUT_PER_TOKEN bytes per token (a header is at most 5 bytes, a number 9) plus the text length
 * (a string is never longer than its JSON form) plus OUT_SLACK for the block-sized stores that
 * run past the end of a string. A packer call per header and per string, each through the
 * sbuffer's callback, cost as much as tokenizing. Numbers, rarer, still use msgpack-c.
 */
#define OUT_PER_TOKEN 9u
#define OUT_SLACK 16u

static void reserve_out(msgpack_sbuffer *sb, size_t n)
{
    if (sb->alloc - sb->size >= n) {
        return;
    }
    size_t alloc = sb->alloc * 2 > sb->size + n ? sb->alloc * 2 : sb->size + n;
    sb->data = xrealloc(sb->data, alloc);
    sb->alloc = alloc;
}

static char *put_be(char *o, size_t v, int bytes)
{
    for (int i = bytes - 1; i >= 0; i--) {
        o[i] = (char)(v & 0xFF);
        v >>= 8;
    }
    return o + bytes;
}

/* Header length of a str of n bytes. */
static size_t str_header_len(size_t n)
{
    return n < 32 ? 1 : n < 256 ? 2 : n < 65536 ? 3 : 5;
}

/* A map, array or str header: the fix form when n fits, else the 8- (str only), 16- or 32-bit one.
 */
static inline char *put_header(char *o, jsmntype_t type, size_t n)
{
    static const unsigned char fix[] = {
        [JSMN_OBJECT] = 0x80, [JSMN_ARRAY] = 0x90, [JSMN_STRING] = 0xa0};
    static const unsigned char b16[] = {
        [JSMN_OBJECT] = 0xde, [JSMN_ARRAY] = 0xdc, [JSMN_STRING] = 0xda};
    size_t fixmax = type == JSMN_STRING ? 32 : 16;
    if (n < fixmax) {
        *o = (char)(fix[type] | n);
        return o + 1;
    }
    if (type == JSMN_STRING && n < 256) {
        o[0] = (char)0xd9;
        o[1] = (char)n;
        return o + 2;
    }
    /* The 32-bit form follows the 16-bit one in each family (dc dd, de df, da db). */
    *o = (char)(b16[type] + (n >= 65536));
    return put_be(o + 1, n, n < 65536 ? 2 : 4);
}

/* A msgpack_packer write callback that appends at a cursor in the reserved space. */
static int cursor_write(void *data, const char *buf, size_t len)
{
    char **o = data;
    memcpy(*o, buf, len);
    *o += len;
    return 0;
}

/* ==== Scalars ==== */

static size_t digits(const char *s, size_t i, size_t n)
{
    size_t start = i;
    while (i < n && s[i] >= '0' && s[i] <= '9') {
        i++;
    }
    return i - start;
}

/*
 * True when s[0, n) is a JSON number; *is_int says whether it has neither fraction nor exponent.
 * jsmn accepts any run of printable bytes here ("01", "1.", "-", "1e+", "0x1f").
 */
static bool number_syntax(const char *s, size_t n, bool *is_int)
{
    size_t i = s[0] == '-' ? 1 : 0;
    size_t d = digits(s, i, n);
    if (d == 0 || (d > 1 && s[i] == '0')) {
        return false;
    }
    i += d;
    *is_int = true;
    if (i < n && s[i] == '.') {
        d = digits(s, i + 1, n);
        if (d == 0) {
            return false;
        }
        i += 1 + d;
        *is_int = false;
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        i += i < n && (s[i] == '+' || s[i] == '-');
        d = digits(s, i, n);
        if (d == 0) {
            return false;
        }
        i += d;
        *is_int = false;
    }
    return i == n;
}

/* Packs an integer literal; false when it does not fit 64 bits (then it is a float64). */
static bool pack_int(msgpack_packer *pk, const char *s, size_t n)
{
    bool neg = s[0] == '-';
    uint64_t v = 0;
    for (size_t i = neg; i < n; i++) {
        unsigned int d = (unsigned int)(s[i] - '0');
        if (v > (UINT64_MAX - d) / 10) {
            return false;
        }
        v = v * 10 + d;
    }
    if (!neg) {
        put(v <= INT64_MAX ? msgpack_pack_int64(pk, (int64_t)v) : msgpack_pack_uint64(pk, v));
    } else if (v <= INT64_MAX) {
        put(msgpack_pack_int64(pk, -(int64_t)v));
    } else if (v == (uint64_t)INT64_MAX + 1) {
        put(msgpack_pack_int64(pk, INT64_MIN));
    } else {
        return false;
    }
    return true;
}

/* Writes the number s[0, n) at o; returns the end, or NULL if it is not a JSON number. */
static char *put_number(char *o, const char *s, size_t n, locale_t loc)
{
    bool is_int;
    if (n > PACK_MAX_NUMBER_LEN || !number_syntax(s, n, &is_int)) {
        return NULL;
    }
    msgpack_packer pk;
    msgpack_packer_init(&pk, &o, cursor_write);
    if (is_int && pack_int(&pk, s, n)) {
        return o;
    }
    /*
     * strtod needs a terminated string (the syntax check above leaves it nothing to reject)
     * and reads the decimal point of the thread's locale, so it runs under the C locale
     * (uselocale is POSIX; strtod_l would need _GNU_SOURCE).
     */
    char buf[PACK_MAX_NUMBER_LEN + 1];
    memcpy(buf, s, n);
    buf[n] = '\0';
    locale_t prev = uselocale(loc);
    double d = strtod(buf, NULL);
    uselocale(prev);
    put(msgpack_pack_double(&pk, d));
    return o;
}

/* jsmn takes any primitive that starts with t, f, n, '-' or a digit: "tru", "nulll", "t{". */
static char *put_primitive(char *o, const char *s, size_t n, locale_t loc)
{
    switch (s[0]) {
    case 't':
        *o = (char)0xc3;
        return n == 4 && memcmp(s, "true", 4) == 0 ? o + 1 : NULL;
    case 'f':
        *o = (char)0xc2;
        return n == 5 && memcmp(s, "false", 5) == 0 ? o + 1 : NULL;
    case 'n':
        *o = (char)0xc0;
        return n == 4 && memcmp(s, "null", 4) == 0 ? o + 1 : NULL;
    default:
        return put_number(o, s, n, loc);
    }
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
 * Decodes \uXXXX at s (n bytes left), with the low half when s holds a high surrogate followed
 * by one. A lone surrogate becomes U+FFFD: Jackson keeps it in a Java String, but it has no
 * UTF-8 form. Returns the input used, or 0 for bad hex.
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
    static const char from[] = "\"\\/bfnrt";
    static const char to[] = "\"\\/\b\f\n\r\t";
    if (n < 2) {
        return 0;
    }
    if (s[1] == 'u') {
        return unescape_u(s, n, o, m);
    }
    const char *p = s[1] ? strchr(from, s[1]) : NULL;
    if (!p) {
        return 0;
    }
    o[(*m)++] = to[p - from];
    return 2;
}

/*
 * Copies bytes from s + i to o + i until the first one a JSON string cannot hold as it is
 * (below 0x20, the backslash, 0x80 and up) and returns its index, or n. Whole blocks are read
 * and stored, past n too: the caller guarantees 16 readable bytes from any i < n, and o has room
 * (OUT_SLACK). SSE2 takes 16 bytes at a time, the portable version 8; -DPACK_NO_SIMD builds
 * the portable one on x86 too, so that the tests can cover it.
 */
#if defined(__SSE2__) && !defined(PACK_NO_SIMD)
static size_t copy_run(char *o, const unsigned char *s, size_t i, size_t n)
{
    /* As signed bytes, everything from 0x80 up is below 0x20 too: one compare for both. */
    const __m128i space = _mm_set1_epi8(0x20), bs = _mm_set1_epi8('\\');
    for (; i < n; i += 16) {
        __m128i x = _mm_loadu_si128((const __m128i *)(const void *)(s + i));
        _mm_storeu_si128((__m128i *)(void *)(o + i), x);
        int m = _mm_movemask_epi8(_mm_or_si128(_mm_cmplt_epi8(x, space), _mm_cmpeq_epi8(x, bs)));
        if (m) {
            i += (size_t)__builtin_ctz((unsigned int)m);
            return i < n ? i : n;
        }
    }
    return n;
}
#else
/*
 * The bytes of word x that a JSON string cannot hold as they are: below 0x20, the backslash,
 * and 0x80 and up (UTF-8, to be checked), as the high bit of each such byte. (x - 0x20..) & ~x
 * flags a byte below 0x20, the same test for zero on x ^ 0x5c.. a backslash. A borrow can also
 * flag bytes after a flagged one, never before, so the first flag is always right.
 */
static uint64_t special_bytes(uint64_t x)
{
    uint64_t bs = x ^ (ONES * '\\');
    return (x | ((x - ONES * 0x20) & ~x) | ((bs - ONES) & ~bs)) & HIGHS;
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

static size_t copy_run(char *o, const unsigned char *s, size_t i, size_t n)
{
    for (; i < n; i += 8) {
        uint64_t x;
        memcpy(&x, s + i, 8);
        memcpy(o + i, &x, 8);
        uint64_t m = special_bytes(x);
        if (m) {
            i += first_flagged(m);
            return i < n ? i : n;
        }
    }
    return n;
}
#endif

/* copy_run for the last few bytes of the text, where whole blocks cannot be read. */
static size_t copy_run_bytes(char *o, const unsigned char *s, size_t i, size_t n)
{
    while (i < n && !is_special(s[i])) {
        o[i] = (char)s[i];
        i++;
    }
    return i;
}

/*
 * Copies string bytes s[0, n) to o until the first backslash, and returns where it stopped (n
 * when there is none). Sets *bad for a raw control character or invalid UTF-8: Jackson rejects
 * both and jsmn checks neither. `avail` bytes are readable from s.
 */
static size_t copy_plain(char *o, const unsigned char *s, size_t n, size_t avail, bool *bad)
{
    bool blocks = avail >= n + 16;
    size_t i = 0;
    *bad = false;
    for (;;) {
        i = blocks ? copy_run(o, s, i, n) : copy_run_bytes(o, s, i, n);
        if (i == n || s[i] == '\\') {
            return i;
        }
        size_t k = s[i] >= 0x80 ? util_utf8_seq_len(s + i, n - i) : 0;
        if (k == 0) {
            *bad = true;
            return i;
        }
        memcpy(o + i, s + i, k);
        i += k;
    }
}

/*
 * Copies and decodes the string s[0, n) into o, for strings with escapes or UTF-8. Returns the
 * decoded length, or SIZE_MAX if the string is invalid.
 */
static size_t decode_string(char *o, const unsigned char *s, size_t n, size_t avail)
{
    bool bad;
    size_t i = copy_plain(o, s, n, avail, &bad);
    size_t m = i;
    while (i < n && !bad) {
        size_t k = unescape_one(s + i, n - i, o, &m);
        if (k == 0) {
            return SIZE_MAX;
        }
        i += k;
        k = copy_plain(o + m, s + i, n - i, avail - i, &bad);
        m += k;
        i += k;
    }
    return bad ? SIZE_MAX : m;
}

/*
 * Writes the JSON string s[0, n) (the bytes between the quotes) as a msgpack str at o; returns
 * the end, or NULL if it is invalid. The body goes after a header sized for n bytes; escapes
 * only shorten it, and if the shorter length needs a shorter header the body moves up.
 */
static char *put_string(char *o, const unsigned char *s, size_t n, size_t avail)
{
    size_t h = str_header_len(n);
    /* Nearly every string is one run of plain bytes, not at the very end of the text. */
    size_t m = avail >= n + 16 ? copy_run(o + h, s, 0, n) : 0;
    if (m < n) {
        m = decode_string(o + h, s, n, avail);
        if (m == SIZE_MAX) {
            return NULL;
        }
        if (str_header_len(m) < h) {
            memmove(o + str_header_len(m), o + h, m);
        }
    }
    o = put_header(o, JSMN_STRING, m);
    return o + m;
}

/* ==== The token walk ==== */

/*
 * jsmn's tokens come in document order (pre-order), each with its parent: keys are children of
 * their object and values children of their key. One pass packs them in that order, so a
 * container's header (its size from jsmn) goes out before its children and nothing recurses.
 * `cur` follows the text: every byte between two tokens is checked against what JSON allows
 * there, which catches what jsmn lets through: missing or doubled commas and colons, trailing
 * commas, a ':' in an array.
 *
 * The state is a small struct passed by value, so it stays in registers: stores into the
 * output are char stores, which would otherwise force it back to memory for each token.
 */
struct level {
    int open;   /* innermost container not yet closed, -1 after the root */
    int depth;  /* containers open */
    size_t cur; /* just past the last byte consumed; SIZE_MAX once the text is known bad */
};

static const struct level BAD = {.cur = SIZE_MAX};

/* The container token i sits in: its parent, or its key's parent when it is a value. */
static int container_of(const jsmntok_t *tok, int i)
{
    int p = tok[i].parent;
    if (p >= 0 && tok[p].type == JSMN_STRING) {
        p = tok[p].parent;
    }
    return p;
}

/* gap_ok() for whitespace: js[from, to) is whitespace around exactly one `sep` (or none). */
static bool gap_ok_slow(const char *js, size_t from, size_t to, char sep)
{
    if (from > to) {
        return false;
    }
    size_t i = skip_ws(js, from, to);
    if (sep) {
        if (i == to || js[i] != sep) {
            return false;
        }
        i = skip_ws(js, i + 1, to);
    }
    return i == to;
}

/* True when js[from, to) is whitespace around exactly one `sep`, or only whitespace if sep is 0. */
static inline bool gap_ok(const char *js, size_t from, size_t to, char sep)
{
    /* Compact JSON: nothing, or just the separator. */
    if (to - from == (sep != 0) && (!sep || js[from] == sep)) {
        return true;
    }
    return gap_ok_slow(js, from, to, sep);
}

/* Closes containers until c is the innermost open one; only whitespace may precede a bracket. */
static struct level close_to(const char *js, const jsmntok_t *tok, struct level lv, int c)
{
    while (lv.open != c) {
        if (lv.open < 0) {
            return BAD;
        }
        size_t end = (size_t)tok[lv.open].end;
        if (!gap_ok(js, lv.cur, end - 1, 0)) {
            return BAD;
        }
        lv.cur = end;
        lv.depth--;
        lv.open = container_of(tok, lv.open);
    }
    return lv;
}

/*
 * Checks token i's place, closing the containers that end before it: a key is a string with
 * exactly one value, a value follows its key (token i - 1) after a ':', other strings and
 * primitives have no children, and siblings are separated by one ','.
 */
static struct level place(const char *js, const jsmntok_t *tok, int i, struct level lv)
{
    const jsmntok_t *t = &tok[i];
    int p = t->parent;
    bool scalar = t->type == JSMN_STRING || t->type == JSMN_PRIMITIVE;
    size_t start = (size_t)t->start - (t->type == JSMN_STRING);
    if (p < 0) {
        return BAD;
    }
    if (tok[p].type == JSMN_STRING) {
        bool ok = p == i - 1 && tok[p].parent == lv.open && !(scalar && t->size != 0);
        return ok && gap_ok(js, lv.cur, start, ':') ? lv : BAD;
    }
    if (p != lv.open) {
        lv = close_to(js, tok, lv, p);
        if (lv.cur == SIZE_MAX) {
            return BAD;
        }
    }
    bool key = tok[p].type == JSMN_OBJECT;
    if ((key && (t->type != JSMN_STRING || t->size != 1)) || (!key && scalar && t->size != 0)) {
        return BAD;
    }
    char sep = lv.cur == (size_t)tok[p].start + 1 ? 0 : ',';
    return gap_ok(js, lv.cur, start, sep) ? lv : BAD;
}

/* The text being packed, and the locale for strtod. */
struct text {
    const char *js;
    size_t len;
    locale_t loc;
};

/* Packs token t at *o and moves past it in the text; BAD if it is invalid or too deep. */
static struct level visit(const struct text *tx, const jsmntok_t *t, int i, struct level lv,
                          char **o)
{
    const char *s = tx->js + t->start;
    size_t n = (size_t)(t->end - t->start);
    switch (t->type) {
    case JSMN_OBJECT:
    case JSMN_ARRAY:
        if (lv.depth == PACK_MAX_DEPTH) {
            return BAD;
        }
        *o = put_header(*o, t->type, (size_t)t->size);
        return (struct level){.open = i, .depth = lv.depth + 1, .cur = (size_t)t->start + 1};
    case JSMN_STRING:
        *o = put_string(*o, (const unsigned char *)s, n, tx->len - (size_t)t->start);
        lv.cur = (size_t)t->end + 1;
        break;
    case JSMN_PRIMITIVE:
        *o = put_primitive(*o, s, n, tx->loc);
        lv.cur = (size_t)t->end;
        break;
    default:
        return BAD;
    }
    return *o ? lv : BAD;
}

/* Packs tokens [0, ntok) at o, the root first; returns the end, or NULL if the text is not JSON. */
static char *walk_tokens(const struct text *tx, const jsmntok_t *tok, int ntok, char *o)
{
    struct level lv = {.open = -1, .cur = (size_t)tok[0].start};
    for (int i = 0; i < ntok; i++) {
        if (i > 0) {
            lv = place(tx->js, tok, i, lv);
        }
        if (lv.cur != SIZE_MAX) {
            lv = visit(tx, &tok[i], i, lv, &o);
        }
        if (lv.cur == SIZE_MAX) {
            return NULL;
        }
    }
    lv = close_to(tx->js, tok, lv, -1);
    return lv.cur == SIZE_MAX ? NULL : o;
}

/* ==== API ==== */

bool pack_oracle_json(struct pack_oracle *pp, const char *text, size_t len, msgpack_sbuffer *sb)
{
    char *end = NULL;

    /* jsmn counts in int; the bridge's body limit is far below. */
    size_t first = skip_ws(text, 0, len);
    if (first == len || (text[first] != '{' && text[first] != '[') || len > INT_MAX) {
        goto out;
    }
    int ntok = tokenize_first(pp, text, len);
    if (ntok < 0) {
        goto out;
    }
    reserve_out(sb, OUT_PER_TOKEN * (size_t)ntok + len + OUT_SLACK);
    struct text tx = {.js = text, .len = len, .loc = pp->c_locale};
    /* Everything goes past sb->size, which moves only on success: a failure leaves sb as it was. */
    end = walk_tokens(&tx, pp->tok, ntok, sb->data + sb->size);
    if (end) {
        sb->size = (size_t)(end - sb->data);
    }
out:
    trim(pp);
    return end != NULL;
}

static enum pack_body_kind kind_of(const char *text, size_t len)
{
    return text[skip_ws(text, 0, len)] == '{' ? PACK_BODY_OBJECT : PACK_BODY_ARRAY;
}

/*
 * Kestra (1.x) decodes the body bytes as UTF-8 into a Java String first, each invalid sequence
 * becoming U+FFFD, and only then lets Jackson parse it: so {"a":"\xff"} is the object
 * {"a":"\ufffd"}, not raw text. Text with invalid UTF-8 takes the same two steps here; valid
 * text (nearly all of it) is parsed in place.
 */
enum pack_body_kind pack_oracle_body(struct pack_oracle *pp, const char *text, size_t len,
                                     msgpack_sbuffer *sb)
{
    const unsigned char *u = (const unsigned char *)text;
    enum pack_body_kind kind = PACK_BODY_STRING;
    msgpack_packer pk;
    size_t nbad;

    if (pack_oracle_json(pp, text, len, sb)) {
        return kind_of(text, len);
    }
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    size_t fixed_len = repair_len(u, len, &nbad);
    if (nbad == 0) {
        put(msgpack_pack_str_with_body(&pk, text, len));
        return kind;
    }
    char *fixed = xmalloc(fixed_len);
    repair_copy(u, len, fixed);
    if (pack_oracle_json(pp, fixed, fixed_len, sb)) {
        kind = kind_of(fixed, fixed_len);
    } else {
        put(msgpack_pack_str_with_body(&pk, fixed, fixed_len));
    }
    xfree(fixed);
    return kind;
}
