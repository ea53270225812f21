/*
 * util.h: allocation that aborts on failure, counted strings, small string helpers.
 * Nothing here does I/O or knows about HTTP, Kafka or YAML.
 */
#ifndef BRIDGE_UTIL_H
#define BRIDGE_UTIL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/**
 * Allocation wrappers. Each aborts the process with a message when the allocator fails, so callers
 * never test for NULL (redis zmalloc). xfree(NULL) is a no-op.
 */
void *xmalloc(size_t n);
void *xcalloc(size_t nmemb, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
/** Returns a newly allocated string formatted like printf. */
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void xfree(void *p);

/** A counted, borrowed byte string; ptr need not be NUL-terminated. */
struct strv {
    const char *ptr;
    size_t len;
};

#define STRV_LIT(s) ((struct strv){(s), sizeof(s) - 1})

/** Bytes [start, end) of some buffer, as offsets into it. */
struct byte_range {
    size_t start;
    size_t end;
};

static inline struct strv strv_of(const char *s)
{
    struct strv v = {s, 0};
    if (s) {
        const char *e = s;
        while (*e) {
            e++;
        }
        v.len = (size_t)(e - s);
    }
    return v;
}

bool strv_eq(struct strv a, struct strv b);
bool strv_eq_cstr(struct strv a, const char *b);

/**
 * A growable byte buffer. Owns `data`; `len` bytes are used, `data[len]` is always NUL so the
 * contents can be used as a C string when they hold text.
 */
struct sbuf {
    char *data;
    size_t len;
    size_t cap;
};

void sbuf_init(struct sbuf *b);
void sbuf_deinit(struct sbuf *b);
void sbuf_reset(struct sbuf *b);
void sbuf_reserve(struct sbuf *b, size_t extra);
void sbuf_append(struct sbuf *b, const void *p, size_t n);
void sbuf_append_cstr(struct sbuf *b, const char *s);
void sbuf_appendf(struct sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/** Appends `s` as a JSON string literal, quotes included; control and non-ASCII bytes pass through valid UTF-8 or become \uFFFD. */
void sbuf_append_json_str(struct sbuf *b, const char *s, size_t n);

/**
 * Decodes %XX escapes of `in` into `out` (which must hold `in.len` bytes). When `plus_is_space`
 * is set, '+' decodes to a space (query strings, as Netty's QueryStringDecoder does).
 * Returns the decoded length, or -1 when an escape is malformed ("%", "%4", "%zz").
 */
long util_percent_decode(struct strv in, char *out, bool plus_is_space);

/**
 * Length (1..4) of the well-formed UTF-8 sequence at s, which has n > 0 bytes available, or 0 when
 * the bytes there are not valid UTF-8 (overlong forms, surrogates and truncation included).
 */
size_t util_utf8_seq_len(const unsigned char *s, size_t n);

/** Constant-time equality of two byte strings of the same length n. */
bool util_ct_equal(const void *a, const void *b, size_t n);

/** Monotonic clock in microseconds. */
long long util_now_us(void);

/** Writes the current UTC time as RFC 3339 with milliseconds ("2026-11-27T14:20:19.123Z"); out must hold 25 bytes. */
void util_rfc3339_now(char out[25]);

/**
 * The current time as an HTTP Date header value (IMF-fixdate, "Fri, 27 Nov 2026 21:04:13 GMT").
 * Formatted once a second per thread; the text is the thread's own until its next call.
 */
const char *util_http_date(void);

#endif
