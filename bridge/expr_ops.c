/*
 * expr_ops.c: Pebble's arithmetic (OperatorUtils) and `contains` on evaluator values.
 * Java semantics where users can see them: long arithmetic wraps, integer division truncates,
 * `+` concatenates when a side is a string. No I/O.
 */
#include "expr_int.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *op_name(int op)
{
    switch (op) {
    case OP_ADD:
        return "ADD";
    case OP_SUB:
        return "SUBTRACT";
    case OP_MUL:
        return "MULTIPLICATION";
    case OP_DIV:
        return "DIVISION";
    default:
        return "MODULUS";
    }
}

/* Pebble 4.1 (Kestra 2.0) reads numeric strings as numbers for - * / %. */
static struct ev numeric_string(struct ev v)
{
    if (v.kind != EV_STR || v.len == 0 || v.len > 64) {
        return v;
    }
    char buf[72];
    memcpy(buf, v.s, v.len);
    buf[v.len] = '\0';
    char *end;
    errno = 0;
    long long i = strtoll(buf, &end, 10);
    if (*end == '\0' && errno == 0 && (buf[0] == '-' || (buf[0] >= '0' && buf[0] <= '9'))) {
        return ev_int(i);
    }
    bool plain = true; /* digits, one '.', an optional sign and exponent: no hex, inf or nan */
    for (size_t k = 0; k < v.len && plain; k++) {
        plain = strchr("0123456789.eE+-", buf[k]) != NULL;
    }
    double d = strtod(buf, &end);
    if (plain && *end == '\0' && end != buf) {
        return ev_float(d);
    }
    return v;
}

static struct ev int_op(struct ectx *cx, const struct node *n, int op, int64_t a, int64_t b)
{
    uint64_t ua = (uint64_t)a, ub = (uint64_t)b;
    switch (op) {
    case OP_ADD:
        return ev_int((int64_t)(ua + ub));
    case OP_SUB:
        return ev_int((int64_t)(ua - ub));
    case OP_MUL:
        return ev_int((int64_t)(ua * ub));
    case OP_DIV:
        if (b == 0) {
            return ev_err(cx, false, "/ by zero (%s)", node_text(cx, n));
        }
        return ev_int(b == -1 ? (int64_t)(0 - ua) : a / b);
    default:
        if (b == 0) {
            return ev_err(cx, false, "/ by zero (%s)", node_text(cx, n));
        }
        return ev_int(b == -1 ? 0 : a % b);
    }
}

static struct ev float_op(int op, double a, double b)
{
    switch (op) {
    case OP_ADD:
        return ev_float(a + b);
    case OP_SUB:
        return ev_float(a - b);
    case OP_MUL:
        return ev_float(a * b);
    case OP_DIV:
        return ev_float(a / b);
    default:
        return ev_float(fmod(a, b));
    }
}

static struct ev string_plus(struct ectx *cx, struct ev a, struct ev b)
{
    struct sbuf buf;
    sbuf_init(&buf);
    bool ok = append_java(cx, &buf, a) && append_java(cx, &buf, b);
    struct ev r = ok ? ev_sbuf_str(cx, &buf) : ev_limit(cx);
    sbuf_deinit(&buf);
    return r;
}

/* The deprecated list forms Pebble still has: list + x appends, list - x removes. */
static struct ev list_plus(struct ectx *cx, struct ev a, struct ev b)
{
    uint32_t na = a.o->via.array.size;
    uint32_t nb = b.kind == EV_LIST ? b.o->via.array.size : 1;
    msgpack_object *items;
    struct ev r = ev_new_list(cx, (size_t)na + nb, &items);
    if (r.kind == EV_ERR) {
        return r;
    }
    if (na) {
        memcpy(items, a.o->via.array.ptr, na * sizeof(*items));
    }
    if (b.kind == EV_LIST) {
        if (nb) {
            memcpy(items + na, b.o->via.array.ptr, nb * sizeof(*items));
        }
    } else {
        ev_to_obj(b, &items[na]);
    }
    return r;
}

static bool list_has(const msgpack_object *list, struct ev v)
{
    for (uint32_t i = 0; i < list->via.array.size; i++) {
        if (ev_equal(ev_from_obj(&list->via.array.ptr[i]), v)) {
            return true;
        }
    }
    return false;
}

static struct ev list_minus(struct ectx *cx, struct ev a, struct ev b)
{
    uint32_t na = a.o->via.array.size;
    msgpack_object *items;
    struct ev r = ev_new_list(cx, na, &items);
    if (r.kind == EV_ERR) {
        return r;
    }
    uint32_t m = 0;
    bool removed = false;
    for (uint32_t i = 0; i < na; i++) {
        struct ev e = ev_from_obj(&a.o->via.array.ptr[i]);
        bool drop = b.kind == EV_LIST ? list_has(b.o, e) : (!removed && ev_equal(e, b));
        removed |= drop && b.kind != EV_LIST;
        if (!drop) {
            items[m++] = a.o->via.array.ptr[i];
        }
    }
    ((msgpack_object *)r.o)->via.array.size = m;
    return r;
}

struct ev ev_arith(struct ectx *cx, const struct node *n, int op, struct ev a, struct ev b)
{
    if (op == OP_ADD && (a.kind == EV_STR || b.kind == EV_STR)) {
        return string_plus(cx, a, b);
    }
    if (op == OP_ADD && a.kind == EV_LIST) {
        return list_plus(cx, a, b);
    }
    if (op == OP_SUB && a.kind == EV_LIST) {
        return list_minus(cx, a, b);
    }
    if (cx->compat == EXPR_COMPAT_2 && op != OP_ADD) {
        a = numeric_string(a);
        b = numeric_string(b);
    }
    if (!ev_is_num(a) || !ev_is_num(b)) {
        return ev_err(cx, false, "invalid operands for mathematical operation [%s]: %s and %s (%s)",
                      op_name(op), ev_type_name(a), ev_type_name(b), node_text(cx, n));
    }
    if (a.kind == EV_INT && b.kind == EV_INT) {
        return int_op(cx, n, op, a.i, b.i);
    }
    return float_op(op, ev_num(a), ev_num(b));
}

/* ContainsExpression: list membership (all of a list on the right), map keys, substrings. */
struct ev ev_contains(struct ectx *cx, const struct node *n, struct ev a, struct ev b)
{
    if (a.kind == EV_LIST) {
        if (b.kind != EV_LIST) {
            return ev_bool(list_has(a.o, b));
        }
        for (uint32_t i = 0; i < b.o->via.array.size; i++) {
            if (!list_has(a.o, ev_from_obj(&b.o->via.array.ptr[i]))) {
                return ev_bool(false);
            }
        }
        return ev_bool(true);
    }
    if (a.kind == EV_MAP) {
        for (uint32_t i = 0; i < a.o->via.map.size; i++) {
            if (ev_equal(ev_from_obj(&a.o->via.map.ptr[i].key), b)) {
                return ev_bool(true);
            }
        }
        return ev_bool(false);
    }
    if (a.kind == EV_STR) {
        struct ev s = b.kind == EV_NULL ? ev_str("null", 4) : ev_tostring(cx, b);
        if (s.kind == EV_ERR) {
            return s;
        }
        return ev_bool(s.len == 0 || memmem(a.s, a.len, s.s, s.len) != NULL);
    }
    return ev_err(cx, false, "contains can only be used on lists, maps and strings, not %s (%s)",
                  ev_type_name(a), node_text(cx, n->a));
}
