/*
 * expr_print.c: the three ways Kestra prints a value: Java's toString (for `~`, `+` and join),
 * Jackson's compact JSON (lists and maps in `{{ }}`, toJson) and Pebble's writer for `{{ }}`,
 * with Java's Double.toString for decimals. No I/O; output goes to the caller's buffer.
 */
#include "expr_int.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_VALUE_DEPTH 128

/*
 * Java's Double.toString (JDK 19+: the shortest decimal that reads back as the same double):
 * plain notation from 1e-3 up to 1e7, computerized scientific notation ("1.0E20") outside it.
 */
/* The shortest decimal digits that read back as d (no sign), and the decimal exponent. */
static int shortest_digits(double d, char digits[24], int *exp)
{
    char buf[40];
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, sizeof(buf), "%.*e", prec - 1, fabs(d));
        if (strtod(buf, NULL) == fabs(d)) {
            break;
        }
    }
    int nd = 0;
    const char *p = buf;
    for (; *p && *p != 'e'; p++) {
        if (*p != '.') {
            digits[nd++] = *p;
        }
    }
    *exp = atoi(p + 1);
    while (nd > 1 && digits[nd - 1] == '0') {
        nd--;
    }
    return nd;
}

/*
 * Java's Double.toString (JDK 19+: the shortest decimal that reads back as the same double):
 * plain notation from 1e-3 up to 1e7, computerized scientific notation ("1.0E20") outside it.
 */
void java_double(double d, char out[32])
{
    if (isnan(d) || isinf(d) || d == 0) {
        strcpy(out, isnan(d)     ? "NaN"
                    : isinf(d)   ? (d > 0 ? "Infinity" : "-Infinity")
                    : signbit(d) ? "-0.0"
                                 : "0.0");
        return;
    }
    char digits[24];
    int exp;
    int nd = shortest_digits(d, digits, &exp);
    char *o = out;
    if (d < 0) {
        *o++ = '-';
    }
    if (exp >= -3 && exp < 7) {
        if (exp < 0) { /* 0.00ddd */
            o += sprintf(o, "0.%.*s", -exp - 1, "000");
            memcpy(o, digits, (size_t)nd);
            o[nd] = '\0';
            return;
        }
        for (int i = 0; i <= exp; i++) {
            *o++ = i < nd ? digits[i] : '0';
        }
        sprintf(o, ".%.*s", nd > exp + 1 ? nd - exp - 1 : 1, nd > exp + 1 ? digits + exp + 1 : "0");
        return;
    }
    sprintf(o, "%c.%.*sE%d", digits[0], nd > 1 ? nd - 1 : 1, nd > 1 ? digits + 1 : "0", exp);
}

static void append_scalar(struct sbuf *b, struct ev v)
{
    char num[32];
    switch (v.kind) {
    case EV_BOOL:
        sbuf_append_cstr(b, v.b ? "true" : "false");
        break;
    case EV_INT:
        sbuf_appendf(b, "%lld", (long long)v.i);
        break;
    case EV_UINT:
        sbuf_appendf(b, "%llu", (unsigned long long)v.u);
        break;
    case EV_FLOAT:
        java_double(v.d, num);
        sbuf_append_cstr(b, num);
        break;
    case EV_STR:
        sbuf_append(b, v.s, v.len);
        break;
    default:
        sbuf_append_cstr(b, "null");
    }
}

static bool java_at(struct ectx *cx, struct sbuf *b, struct ev v, int depth)
{
    if (b->len > EXPR_MAX_STRING || depth > MAX_VALUE_DEPTH) {
        return false;
    }
    if (v.kind == EV_LIST) {
        sbuf_append(b, "[", 1);
        for (uint32_t i = 0; i < v.o->via.array.size; i++) {
            if (i) {
                sbuf_append(b, ", ", 2);
            }
            if (!java_at(cx, b, ev_from_obj(&v.o->via.array.ptr[i]), depth + 1)) {
                return false;
            }
        }
        sbuf_append(b, "]", 1);
    } else if (v.kind == EV_MAP) {
        const msgpack_object *m = ev_map_dedupe(cx, v.o);
        sbuf_append(b, "{", 1);
        for (uint32_t i = 0; i < m->via.map.size; i++) {
            if (i) {
                sbuf_append(b, ", ", 2);
            }
            if (!java_at(cx, b, ev_from_obj(&m->via.map.ptr[i].key), depth + 1)) {
                return false;
            }
            sbuf_append(b, "=", 1);
            if (!java_at(cx, b, ev_from_obj(&m->via.map.ptr[i].val), depth + 1)) {
                return false;
            }
        }
        sbuf_append(b, "}", 1);
    } else {
        append_scalar(b, v);
    }
    return b->len <= EXPR_MAX_STRING;
}

bool append_java(struct ectx *cx, struct sbuf *b, struct ev v)
{
    return java_at(cx, b, v, 0);
}

/* Jackson's string escaping: short forms for the usual controls, \u00XX (upper hex) for others. */
static void json_string(struct sbuf *b, const char *s, size_t len)
{
    static const char HEX[] = "0123456789ABCDEF";
    sbuf_reserve(b, len + 2);
    sbuf_append(b, "\"", 1);
    size_t run = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\') {
            continue;
        }
        sbuf_append(b, s + run, i - run);
        run = i + 1;
        const char *esc = c == '"'    ? "\\\""
                          : c == '\\' ? "\\\\"
                          : c == '\n' ? "\\n"
                          : c == '\r' ? "\\r"
                          : c == '\t' ? "\\t"
                          : c == '\b' ? "\\b"
                          : c == '\f' ? "\\f"
                                      : NULL;
        if (esc) {
            sbuf_append_cstr(b, esc);
        } else {
            char u[6] = {'\\', 'u', '0', '0', HEX[c >> 4], HEX[c & 15]};
            sbuf_append(b, u, 6);
        }
    }
    sbuf_append(b, s + run, len - run);
    sbuf_append(b, "\"", 1);
}

static bool json_at(struct ectx *cx, struct sbuf *b, struct ev v, bool keep_nulls, int depth)
{
    if (b->len > EXPR_MAX_STRING || depth > MAX_VALUE_DEPTH) {
        return false;
    }
    if (v.kind == EV_LIST) {
        sbuf_append(b, "[", 1);
        for (uint32_t i = 0; i < v.o->via.array.size; i++) {
            if (i) {
                sbuf_append(b, ",", 1);
            }
            if (!json_at(cx, b, ev_from_obj(&v.o->via.array.ptr[i]), keep_nulls, depth + 1)) {
                return false;
            }
        }
        sbuf_append(b, "]", 1);
    } else if (v.kind == EV_MAP) {
        const msgpack_object *m = ev_map_dedupe(cx, v.o);
        bool first = true;
        sbuf_append(b, "{", 1);
        for (uint32_t i = 0; i < m->via.map.size; i++) {
            struct ev val = ev_from_obj(&m->via.map.ptr[i].val);
            if (val.kind == EV_NULL && !keep_nulls) {
                continue;
            }
            if (!first) {
                sbuf_append(b, ",", 1);
            }
            first = false;
            struct ev key = ev_from_obj(&m->via.map.ptr[i].key);
            if (key.kind == EV_STR) {
                json_string(b, key.s, key.len);
            } else {
                struct sbuf k;
                sbuf_init(&k);
                append_scalar(&k, key);
                json_string(b, k.data, k.len);
                sbuf_deinit(&k);
            }
            sbuf_append(b, ":", 1);
            if (!json_at(cx, b, val, keep_nulls, depth + 1)) {
                return false;
            }
        }
        sbuf_append(b, "}", 1);
    } else if (v.kind == EV_STR) {
        json_string(b, v.s, v.len);
    } else if (v.kind == EV_FLOAT && (isnan(v.d) || isinf(v.d))) {
        sbuf_append(b, "\"", 1); /* Jackson quotes non-numeric numbers */
        append_scalar(b, v);
        sbuf_append(b, "\"", 1);
    } else {
        append_scalar(b, v);
    }
    return b->len <= EXPR_MAX_STRING;
}

bool append_json(struct ectx *cx, struct sbuf *b, struct ev v, bool keep_nulls)
{
    return json_at(cx, b, v, keep_nulls, 0);
}

/* Kestra's JsonWriter: nothing for null, JSON for lists and maps (null entries kept in 0.20 after
 * its mapper change, dropped by 2.0's NON_NULL mapper), Java text for everything else. */
bool append_print(struct ectx *cx, struct sbuf *b, struct ev v)
{
    if (v.kind == EV_NULL) {
        return true;
    }
    if (v.kind == EV_LIST || v.kind == EV_MAP) {
        return append_json(cx, b, v, cx->compat != EXPR_COMPAT_2);
    }
    append_scalar(b, v);
    return true;
}

struct ev ev_tostring(struct ectx *cx, struct ev v)
{
    if (v.kind == EV_STR) {
        return v;
    }
    struct sbuf b;
    sbuf_init(&b);
    bool ok = append_java(cx, &b, v);
    struct ev r = ok ? ev_sbuf_str(cx, &b) : ev_limit(cx);
    sbuf_deinit(&b);
    return r;
}
