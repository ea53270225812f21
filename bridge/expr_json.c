/*
 * expr_json.c: JSON text → evaluator values, for the fromJson()/json() functions and the `json`
 * test. Jackson's reading rules: any value at the top level, text after it ignored, duplicate
 * keys kept (lookups take the last), integers as longs, other numbers as doubles. The values live
 * in the render's arena. No I/O.
 */
#include "expr_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define JSON_MAX_DEPTH 64

struct jp {
    struct ectx *cx;
    const char *s;
    size_t len, i;
    int depth;
    const char *err;
};

static void ws(struct jp *p)
{
    while (p->i < p->len &&
           (p->s[p->i] == ' ' || p->s[p->i] == '\t' || p->s[p->i] == '\n' || p->s[p->i] == '\r')) {
        p->i++;
    }
}

static bool value(struct jp *p, msgpack_object *out);

static int hex4(const char *s)
{
    int v = 0;
    for (int k = 0; k < 4; k++) {
        char c = s[k];
        int d = (c >= '0' && c <= '9')   ? c - '0'
                : (c >= 'a' && c <= 'f') ? c - 'a' + 10
                : (c >= 'A' && c <= 'F') ? c - 'A' + 10
                                         : -1;
        if (d < 0) {
            return -1;
        }
        v = v * 16 + d;
    }
    return v;
}

static bool escape(struct jp *p, struct sbuf *b)
{
    static const char FROM[] = "\"\\/bfnrt";
    static const char TO[] = "\"\\/\b\f\n\r\t";
    char c = p->s[p->i++];
    const char *k = c ? strchr(FROM, c) : NULL;
    if (k) {
        sbuf_append(b, &TO[k - FROM], 1);
        return true;
    }
    if (c != 'u' || p->i + 4 > p->len || hex4(p->s + p->i) < 0) {
        return false;
    }
    uint32_t cp = (uint32_t)hex4(p->s + p->i);
    p->i += 4;
    if (cp >= 0xD800 && cp <= 0xDBFF && p->i + 6 <= p->len && p->s[p->i] == '\\' &&
        p->s[p->i + 1] == 'u') {
        int lo = hex4(p->s + p->i + 2);
        if (lo >= 0xDC00 && lo <= 0xDFFF) {
            cp = 0x10000 + ((cp - 0xD800) << 10) + (uint32_t)(lo - 0xDC00);
            p->i += 6;
        }
    }
    utf8_put(b, cp >= 0xD800 && cp <= 0xDFFF ? 0xFFFD : cp);
    return true;
}

static bool string(struct jp *p, msgpack_object *out)
{
    struct sbuf b;
    sbuf_init(&b);
    p->i++; /* the opening quote */
    bool ok = false;
    while (p->i < p->len) {
        unsigned char c = (unsigned char)p->s[p->i];
        if (c == '"') {
            p->i++;
            ok = true;
            break;
        }
        if (c < 0x20) {
            break;
        }
        if (c == '\\') {
            p->i++;
            if (p->i >= p->len || !escape(p, &b)) {
                break;
            }
            continue;
        }
        sbuf_append(&b, &p->s[p->i++], 1);
    }
    struct ev v = ok ? ev_sbuf_str(p->cx, &b) : ev_null();
    sbuf_deinit(&b);
    if (!ok) {
        p->err = "bad string";
        return false;
    }
    if (v.kind == EV_ERR) {
        p->err = "string too long";
        return false;
    }
    ev_to_obj(v, out);
    return true;
}

static bool number(struct jp *p, msgpack_object *out)
{
    size_t start = p->i;
    bool frac = false;
    if (p->s[p->i] == '-') {
        p->i++;
    }
    while (p->i < p->len && strchr("0123456789.eE+-", p->s[p->i]) && p->s[p->i]) {
        frac |= p->s[p->i] == '.' || p->s[p->i] == 'e' || p->s[p->i] == 'E';
        p->i++;
    }
    char buf[64];
    size_t n = p->i - start;
    if (n == 0 || n >= sizeof(buf)) {
        p->err = "bad number";
        return false;
    }
    memcpy(buf, p->s + start, n);
    buf[n] = '\0';
    char *end;
    errno = 0;
    if (!frac) {
        long long i = strtoll(buf, &end, 10);
        if (*end == '\0' && errno == 0) {
            ev_to_obj(ev_int(i), out);
            return true;
        }
    }
    double d = strtod(buf, &end);
    if (*end != '\0' || end == buf) {
        p->err = "bad number";
        return false;
    }
    ev_to_obj(ev_float(d), out);
    return true;
}

static bool word(struct jp *p, const char *w, struct ev v, msgpack_object *out)
{
    size_t n = strlen(w);
    if (p->i + n > p->len || memcmp(p->s + p->i, w, n) != 0) {
        p->err = "unexpected character";
        return false;
    }
    p->i += n;
    ev_to_obj(v, out);
    return true;
}

/* Arrays and objects: elements are collected in a heap vector, then copied into the arena. */
static bool container(struct jp *p, msgpack_object *out, bool is_map)
{
    char close = is_map ? '}' : ']';
    size_t width = is_map ? 2 : 1;
    msgpack_object *v = NULL;
    size_t n = 0, cap = 0;
    bool ok = false;
    p->i++;
    ws(p);
    if (p->i < p->len && p->s[p->i] == close) {
        p->i++;
        ok = true;
    }
    while (!ok && !p->err) {
        if (n + width > cap) {
            cap = cap ? cap * 2 : 16;
            v = xrealloc(v, cap * sizeof(*v));
        }
        ws(p);
        if (is_map && (p->i >= p->len || p->s[p->i] != '"')) {
            p->err = "expected a key";
            break;
        }
        if (is_map) {
            if (!string(p, &v[n++])) {
                break;
            }
            ws(p);
            if (p->i >= p->len || p->s[p->i++] != ':') {
                p->err = "expected ':'";
                break;
            }
        }
        if (!value(p, &v[n++])) {
            break;
        }
        ws(p);
        char c = p->i < p->len ? p->s[p->i++] : '\0';
        if (c == close) {
            ok = true;
        } else if (c != ',') {
            p->err = "expected ',' or a closing bracket";
        }
    }
    if (ok) {
        msgpack_object *items = NULL;
        msgpack_object_kv *kv = NULL;
        struct ev r = is_map ? ev_new_map(p->cx, n / 2, &kv) : ev_new_list(p->cx, n, &items);
        if (r.kind == EV_ERR) {
            p->err = "out of memory";
            ok = false;
        } else {
            if (n) {
                memcpy(is_map ? (void *)kv : (void *)items, v, n * sizeof(*v));
            }
            *out = *r.o;
        }
    }
    xfree(v);
    return ok;
}

static bool value(struct jp *p, msgpack_object *out)
{
    ws(p);
    if (p->i >= p->len) {
        p->err = "unexpected end of input";
        return false;
    }
    if (++p->depth > JSON_MAX_DEPTH) {
        p->err = "nested too deeply";
        return false;
    }
    bool ok;
    char c = p->s[p->i];
    if (c == '{' || c == '[') {
        ok = container(p, out, c == '{');
    } else if (c == '"') {
        ok = string(p, out);
    } else if (c == '-' || (c >= '0' && c <= '9')) {
        ok = number(p, out);
    } else if (c == 't') {
        ok = word(p, "true", ev_bool(true), out);
    } else if (c == 'f') {
        ok = word(p, "false", ev_bool(false), out);
    } else if (c == 'n') {
        ok = word(p, "null", ev_null(), out);
    } else {
        p->err = "unexpected character";
        ok = false;
    }
    p->depth--;
    return ok;
}

/* msgpack_object_kv is two msgpack_objects: the vector above relies on that layout. */
_Static_assert(sizeof(msgpack_object_kv) == 2 * sizeof(msgpack_object), "kv layout");

struct ev expr_json_parse(struct ectx *cx, const char *s, size_t len)
{
    struct jp p = {.cx = cx, .s = s, .len = len};
    msgpack_object o;
    if (!value(&p, &o)) {
        return ev_err(cx, false, "invalid json: %s at offset %zu", p.err ? p.err : "error", p.i);
    }
    msgpack_object *keep = arena_alloc(&cx->ar, sizeof(*keep));
    if (!keep) {
        return ev_limit(cx);
    }
    *keep = o;
    return ev_from_obj(keep);
}
