/*
 * expr_convert.c: the filters that convert values: numbers (abs, number), URL and base64
 * encodings, digests, JSON and dates. A table of their own, searched after expr_filters.c's.
 * No I/O; digests come from libcrypto's EVP interface.
 */
#include "expr_int.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>


/* ==== Numbers ==== */

F(f_abs)
{
    (void)args;
    switch (in.kind) {
    case EV_INT:
        return ev_int(in.i < 0 ? (int64_t)(0 - (uint64_t)in.i) : in.i);
    case EV_UINT:
        return in;
    case EV_FLOAT:
        return ev_float(fabs(in.d));
    default:
        return filter_wrong_type(cx, n, in, "a number");
    }
}

/* commons-lang NumberUtils.createNumber, for the forms a webhook sends. */
static struct ev parse_number(struct ectx *cx, const struct node *n, struct ev s, const char *type)
{
    char buf[72];
    if (s.len == 0 || s.len >= sizeof(buf)) {
        return ev_err(cx, false, "filter 'number': not a number (%s)", node_text(cx, n->a));
    }
    memcpy(buf, s.s, s.len);
    buf[s.len] = '\0';
    size_t len = s.len;
    bool hex = strstr(buf, "0x") || strstr(buf, "0X");
    char suffix = hex ? '\0' : buf[len - 1];
    if (len > 1 && suffix && strchr("lLfFdD", suffix)) {
        buf[--len] = '\0';
    }
    bool want_int = !strcmp(type, "INT") || !strcmp(type, "LONG") || !strcmp(type, "BIGINTEGER") ||
                    suffix == 'l' || suffix == 'L';
    char *end;
    errno = 0;
    int base = hex ? 16 : 10;
    long long i = strtoll(buf, &end, base);
    if (*end == '\0' && errno == 0 && end != buf) {
        if (!strcmp(type, "INT") && (i > INT32_MAX || i < INT32_MIN)) {
            return ev_err(cx, false, "filter 'number': out of range for INT");
        }
        bool decimal = (suffix && strchr("fFdD", suffix) && len < s.len) ||
                       !strcmp(type, "FLOAT") || !strcmp(type, "DOUBLE");
        return decimal ? ev_float((double)i) : ev_int(i);
    }
    double d = strtod(buf, &end);
    if (*end != '\0' || end == buf || want_int || isinf(d) || isnan(d) || strpbrk(buf, "xXnNiI")) {
        return ev_err(cx, false, "filter 'number': not a %snumber (%s)", want_int ? "whole " : "",
                      node_text(cx, n->a));
    }
    return ev_float(d);
}

F(f_number)
{
    if (in.kind == EV_NULL) {
        return in;
    }
    if (in.kind != EV_STR) {
        return filter_wrong_type(cx, n, in, "a string");
    }
    const char *type = "";
    char tbuf[16] = "";
    if (ARG_GIVEN(args[0]) && args[0].kind == EV_STR && args[0].len < sizeof(tbuf)) {
        memcpy(tbuf, args[0].s, args[0].len);
        tbuf[args[0].len] = '\0';
        type = tbuf;
    }
    return parse_number(cx, n, in, type);
}

/* ==== Encodings and hashes ==== */

F(f_urlencode)
{
    (void)args;
    static const char HEX[] = "0123456789ABCDEF";
    if (in.kind == EV_NULL) {
        return in;
    }
    if (in.kind != EV_STR) {
        return filter_wrong_type(cx, n, in, "a string");
    }
    struct sbuf b;
    sbuf_init(&b);
    for (size_t i = 0; i < in.len; i++) {
        unsigned char c = (unsigned char)in.s[i];
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            strchr(".-*_", c)) {
            sbuf_append(&b, &in.s[i], 1);
        } else if (c == ' ') {
            sbuf_append(&b, "+", 1);
        } else {
            char e[3] = {'%', HEX[c >> 4], HEX[c & 15]};
            sbuf_append(&b, e, 3);
        }
    }
    return filter_finish(cx, &b);
}

/* Bytes as text the way a Java decoder reads them: each invalid sequence becomes U+FFFD. */
static struct ev utf8_text(struct ectx *cx, const char *s, size_t len)
{
    struct sbuf b;
    sbuf_init(&b);
    for (size_t i = 0; i < len;) {
        size_t n = util_utf8_seq_len((const unsigned char *)s + i, len - i);
        if (n == 0) {
            sbuf_append(&b, "\xEF\xBF\xBD", 3);
            i++;
        } else {
            sbuf_append(&b, s + i, n);
            i += n;
        }
    }
    return filter_finish(cx, &b);
}

F(f_urldecode)
{
    (void)args;
    if (in.kind == EV_NULL) {
        return in;
    }
    if (in.kind != EV_STR) {
        return filter_wrong_type(cx, n, in, "a string");
    }
    char *out = arena_alloc(&cx->ar, in.len + 1);
    if (!out) {
        return ev_limit(cx);
    }
    long len = util_percent_decode((struct strv){in.s, in.len}, out, true);
    if (len < 0) {
        return ev_err(cx, false, "filter 'urldecode': malformed %% escape (%s)",
                      node_text(cx, n->a));
    }
    return utf8_text(cx, out, (size_t)len);
}

F(f_base64encode)
{
    (void)args;
    static const char A[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    if (in.kind == EV_NULL) {
        return in;
    }
    if (in.kind != EV_STR) {
        return filter_wrong_type(cx, n, in, "a string");
    }
    struct sbuf b;
    sbuf_init(&b);
    const unsigned char *s = (const unsigned char *)in.s;
    for (size_t i = 0; i < in.len; i += 3) {
        uint32_t v = (uint32_t)s[i] << 16;
        size_t rest = in.len - i;
        v |= rest > 1 ? (uint32_t)s[i + 1] << 8 : 0;
        v |= rest > 2 ? s[i + 2] : 0;
        char q[4] = {A[v >> 18], A[(v >> 12) & 63], rest > 1 ? A[(v >> 6) & 63] : '=',
                     rest > 2 ? A[v & 63] : '='};
        sbuf_append(&b, q, 4);
    }
    return filter_finish(cx, &b);
}

static int b64_val(char c)
{
    if (c >= 'A' && c <= 'Z') {
        return c - 'A';
    }
    if (c >= 'a' && c <= 'z') {
        return c - 'a' + 26;
    }
    if (c >= '0' && c <= '9') {
        return c - '0' + 52;
    }
    return c == '+' ? 62 : c == '/' ? 63 : -1;
}

/* java.util.Base64.getDecoder(): the standard alphabet, padding optional but never wrong. */
F(f_base64decode)
{
    (void)args;
    if (in.kind == EV_NULL) {
        return in;
    }
    if (in.kind != EV_STR) {
        return filter_wrong_type(cx, n, in, "a string");
    }
    size_t len = in.len, pad = 0;
    while (len > 0 && in.s[len - 1] == '=' && pad < 2) {
        len--;
        pad++;
    }
    if (len % 4 == 1 || (pad && (len + pad) % 4 != 0)) {
        return ev_err(cx, false, "filter 'base64decode': not valid base64 (%s)",
                      node_text(cx, n->a));
    }
    char *out = arena_alloc(&cx->ar, len);
    if (!out) {
        return ev_limit(cx);
    }
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < len; i++) {
        int v = b64_val(in.s[i]);
        if (v < 0) {
            return ev_err(cx, false, "filter 'base64decode': not valid base64 (%s)",
                          node_text(cx, n->a));
        }
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (char)((acc >> bits) & 0xFF);
        }
    }
    return utf8_text(cx, out, o);
}

F(f_digest)
{
    (void)args;
    static const char HEX[] = "0123456789abcdef";
    if (in.kind == EV_NULL) {
        return in;
    }
    if (in.kind != EV_STR) {
        return filter_wrong_type(cx, n, in, "a string");
    }
    const char *name = n->fn->name;
    const EVP_MD *md = !strcmp(name, "md5")      ? EVP_md5()
                       : !strcmp(name, "sha1")   ? EVP_sha1()
                       : !strcmp(name, "sha512") ? EVP_sha512()
                                                 : EVP_sha256();
    unsigned char dig[EVP_MAX_MD_SIZE];
    unsigned int dlen = 0;
    if (!EVP_Digest(in.s, in.len, dig, &dlen, md, NULL)) {
        return ev_err(cx, false, "filter '%s': digest failed", name);
    }
    char *out = arena_alloc(&cx->ar, 2 * dlen + 1);
    if (!out) {
        return ev_limit(cx);
    }
    for (unsigned int i = 0; i < dlen; i++) {
        out[2 * i] = HEX[dig[i] >> 4];
        out[2 * i + 1] = HEX[dig[i] & 15];
    }
    return ev_str(out, 2 * dlen);
}

/* toJson: null gives "null"; null map entries follow the mapper of the mode (see append_print). */
F(f_json)
{
    (void)n;
    if (in.kind == EV_NULL) {
        return ev_str("null", 4);
    }
    bool keep = cx->compat != EXPR_COMPAT_2 || (args[0].kind == EV_BOOL && args[0].b);
    struct sbuf b;
    sbuf_init(&b);
    if (!append_json(cx, &b, in, keep)) {
        sbuf_deinit(&b);
        return ev_limit(cx);
    }
    return filter_finish(cx, &b);
}

/* ==== Dates ==== */

F(f_date)
{
    (void)n;
    if (in.kind == EV_NULL) {
        return in;
    }
    struct expr_time tm;
    struct ev ok = expr_to_tm(cx, in, "filter 'date'", &tm);
    if (ok.kind == EV_ERR) {
        return ok;
    }
    int32_t offset = 0;
    if (ARG_GIVEN(args[1]) && (ok = expr_zone_offset(cx, args[1], &offset)).kind == EV_ERR) {
        return ok;
    }
    tm.offset = offset;
    struct ev fmt = ARG_GIVEN(args[0]) ? ev_tostring(cx, args[0]) : ev_str("iso", 3);
    return fmt.kind == EV_ERR ? fmt : expr_format_date(cx, &tm, fmt.s, fmt.len);
}

static const char *check_date(const struct node *n)
{
    return n->args[2] ? "filter 'date': existingFormat is not supported (give an ISO-8601 date)"
                      : NULL;
}

/* ==== The table ==== */

static const struct expr_fn CONVERT_FILTERS[] = {
    {"abs", 0, 0, 0, {0}, f_abs, NULL},
    {"base64decode", 0, 0, 0, {0}, f_base64decode, NULL},
    {"base64encode", 0, 0, 0, {0}, f_base64encode, NULL},
    {"date", 0, 3, 0, {"format", "timeZone", "existingFormat"}, f_date, check_date},
    {"json", 0, 1, 0, {"includeNulls"}, f_json, NULL},
    {"md5", 0, 0, 0, {0}, f_digest, NULL},
    {"number", 0, 1, 0, {"type"}, f_number, NULL},
    {"sha1", 0, 0, 0, {0}, f_digest, NULL},
    {"sha256", 0, 0, 0, {0}, f_digest, NULL},
    {"sha512", 0, 0, 0, {0}, f_digest, NULL},
    {"toJson", 0, 1, 0, {"includeNulls"}, f_json, NULL},
    {"urldecode", 0, 0, 0, {0}, f_urldecode, NULL},
    {"urlencode", 0, 0, 0, {0}, f_urlencode, NULL},
};

const struct expr_fn *expr_find_convert_filter(const char *name, size_t len)
{
    for (size_t i = 0; i < ARRAY_LEN(CONVERT_FILTERS); i++) {
        if (strlen(CONVERT_FILTERS[i].name) == len &&
            memcmp(CONVERT_FILTERS[i].name, name, len) == 0) {
            return &CONVERT_FILTERS[i];
        }
    }
    return NULL;
}
