/*
 * expr_eval.c: the tree-walking evaluator: variables, attribute access, operators, filters,
 * tests and calls, with Pebble's strict-variables rules. Errors are values, never longjmps, and
 * nothing here allocates outside the render's arena. No I/O.
 */
#include "expr_int.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ==== Variables ==== */

static void kv_str(msgpack_object_kv *kv, const char *key, struct strv val)
{
    ev_to_obj(ev_str(key, strlen(key)), &kv->key);
    ev_to_obj(ev_str(val.ptr ? val.ptr : "", val.len), &kv->val);
}

/* flow: id, namespace and, when there is one, tenantId (Kestra's RunVariables). */
static struct ev var_flow(struct ectx *cx)
{
    if (!cx->have_flow) {
        msgpack_object_kv *kv;
        bool tenant = cx->env->tenant.ptr != NULL;
        struct ev m = ev_new_map(cx, tenant ? 3 : 2, &kv);
        if (m.kind == EV_ERR) {
            return m;
        }
        kv_str(&kv[0], "id", cx->env->flow_id);
        kv_str(&kv[1], "namespace", cx->env->ns);
        if (tenant) {
            kv_str(&kv[2], "tenantId", cx->env->tenant);
        }
        cx->flow = *m.o;
        cx->have_flow = true;
    }
    struct ev v = {.kind = EV_MAP, .o = &cx->flow};
    return v;
}

/* execution: id and startDate (the new execution starts now). */
static struct ev var_execution(struct ectx *cx)
{
    if (!cx->have_execution) {
        msgpack_object_kv *kv;
        struct ev start = expr_instant_str(cx, &cx->now);
        struct ev m = ev_new_map(cx, 2, &kv);
        if (m.kind == EV_ERR || start.kind == EV_ERR) {
            return ev_limit(cx);
        }
        kv_str(&kv[0], "id", cx->env->execution_id);
        ev_to_obj(ev_str("startDate", 9), &kv[1].key);
        ev_to_obj(start, &kv[1].val);
        cx->execution = *m.o;
        cx->have_execution = true;
    }
    struct ev v = {.kind = EV_MAP, .o = &cx->execution};
    return v;
}

/* Root names were resolved by the parser (node op: enum expr_root). */
static struct ev eval_var(struct ectx *cx, const struct node *n)
{
    const struct expr_env *env = cx->env;
    switch (n->op) {
    case ROOT_TRIGGER:
        if (env->trigger) {
            return ev_from_obj(env->trigger);
        }
        break;
    case ROOT_FLOW:
        return var_flow(cx);
    case ROOT_EXECUTION:
        if (env->execution) {
            return ev_from_obj(env->execution);
        }
        return var_execution(cx);
    case ROOT_LABELS:
        if (env->labels && env->labels->type == MSGPACK_OBJECT_MAP) {
            return ev_from_obj(env->labels);
        }
        cx->labels_empty.type = MSGPACK_OBJECT_MAP;
        struct ev v = {.kind = EV_MAP, .o = &cx->labels_empty};
        return v;
    default:
        break;
    }
    return ev_err(cx, true, "variable '%.*s' is not defined", (int)n->name_len, n->name);
}

/* ==== Attributes ==== */

/* A key for a message: NUL-terminated and shortened. */
static const char *key_text(struct ectx *cx, struct ev key)
{
    struct ev s = ev_tostring(cx, key);
    size_t len = s.kind == EV_STR ? (s.len > 64 ? 64 : s.len) : 0;
    char *t = s.kind == EV_STR ? arena_alloc(&cx->ar, len + 1) : NULL;
    if (!t) {
        return "?";
    }
    memcpy(t, s.s, len);
    t[len] = '\0';
    return t;
}

/* Members of java.lang.String that Pebble's DefaultAttributeResolver finds without arguments. */
static struct ev string_member(struct ectx *cx, const struct node *n, struct ev str, struct ev key)
{
    struct strv k = {key.s, key.len};
    if (strv_eq_cstr(k, "length")) {
        return ev_int((int64_t)utf16_len(str.s, str.len));
    }
    if (strv_eq_cstr(k, "empty") || strv_eq_cstr(k, "isEmpty")) {
        return ev_bool(str.len == 0);
    }
    if (strv_eq_cstr(k, "blank") || strv_eq_cstr(k, "isBlank")) {
        size_t i = 0;
        while (i < str.len) {
            if (!java_is_whitespace(utf8_next(str.s, str.len, &i))) {
                return ev_bool(false);
            }
        }
        return ev_bool(true);
    }
    if (strv_eq_cstr(k, "toString")) {
        return str;
    }
    return ev_err(cx, true, "a string has no attribute '%s' (%s)", key_text(cx, key),
                  node_text(cx, n->a));
}

static struct ev list_member(struct ectx *cx, const struct node *n, struct ev list, struct ev key)
{
    uint32_t size = list.o->via.array.size;
    int64_t idx = -1;
    bool numeric = false;
    if (key.kind == EV_INT) {
        idx = key.i;
        numeric = true;
    } else if (key.kind == EV_STR && key.len > 0 && key.len < 19) {
        numeric = true;
        idx = 0;
        for (size_t i = 0; i < key.len && numeric; i++) {
            numeric = key.s[i] >= '0' && key.s[i] <= '9';
            idx = idx * 10 + (key.s[i] - '0');
        }
    }
    if (numeric) {
        if (idx < 0 || idx >= (int64_t)size) {
            return ev_err(cx, true, "index %lld out of range for %s (length %u)", (long long)idx,
                          node_text(cx, n->a), size);
        }
        return ev_from_obj(&list.o->via.array.ptr[idx]);
    }
    if (key.kind == EV_STR && strv_eq_cstr((struct strv){key.s, key.len}, "size")) {
        return ev_int(size);
    }
    if (key.kind == EV_STR && (strv_eq_cstr((struct strv){key.s, key.len}, "empty") ||
                               strv_eq_cstr((struct strv){key.s, key.len}, "isEmpty"))) {
        return ev_bool(size == 0);
    }
    return ev_err(cx, true, "a list has no attribute '%s' (%s)", key_text(cx, key),
                  node_text(cx, n->a));
}

static struct ev map_member(struct ectx *cx, const struct node *n, struct ev map, struct ev key)
{
    bool found = false;
    struct ev v;
    if (key.kind == EV_STR) {
        v = ev_map_get(map.o, key.s, key.len, &found);
    } else {
        v = ev_null();
        for (uint32_t i = map.o->via.map.size; !found && i-- > 0;) {
            if (ev_equal(ev_from_obj(&map.o->via.map.ptr[i].key), key)) {
                v = ev_from_obj(&map.o->via.map.ptr[i].val);
                found = true;
            }
        }
    }
    if (!found) {
        return ev_err(cx, true, "%s has no key '%s'", node_text(cx, n->a), key_text(cx, key));
    }
    return v;
}

/* `obj.name` and `obj[key]`: one rule, as in Pebble's GetAttributeExpression. */
static struct ev get_member(struct ectx *cx, const struct node *n, struct ev obj, struct ev key)
{
    switch (obj.kind) {
    case EV_ERR:
        return obj;
    case EV_MAP:
        return map_member(cx, n, obj, key);
    case EV_LIST:
        return list_member(cx, n, obj, key);
    case EV_STR:
        if (key.kind == EV_STR) {
            return string_member(cx, n, obj, key);
        }
        break;
    case EV_NULL:
        return ev_err(cx, true, "cannot read '%s' of null (%s)", key_text(cx, key),
                      node_text(cx, n->a));
    default:
        break;
    }
    return ev_err(cx, true, "%s has no attribute '%s' (%s)", ev_type_name(obj), key_text(cx, key),
                  node_text(cx, n->a));
}

static struct ev eval_attr(struct ectx *cx, const struct node *n)
{
    struct ev obj = expr_eval(cx, n->a);
    struct ev key = n->name ? ev_str(n->name, n->name_len) : n->lit;
    return get_member(cx, n, obj, key);
}

static struct ev eval_index(struct ectx *cx, const struct node *n)
{
    struct ev obj = expr_eval(cx, n->a);
    if (obj.kind == EV_ERR) {
        return obj;
    }
    struct ev key = expr_eval(cx, n->b);
    if (key.kind == EV_ERR) {
        return key;
    }
    return get_member(cx, n, obj, key);
}

/* ==== Operators ==== */

/* `==` and `!=` evaluate both sides inside a try and re-throw any failure as a plain error, so
 * `??`, `default` and `is defined` around a comparison no longer catch a missing operand. */
static struct ev wrap(struct ectx *cx, struct ev e, const char *what)
{
    if (e.kind != EV_ERR || e.len == 1) {
        return e;
    }
    return ev_err(cx, false, "could not perform %s comparison: %s", what, e.s);
}

static struct ev eval_equality(struct ectx *cx, const struct node *n)
{
    struct ev a = expr_eval(cx, n->a);
    if (a.kind == EV_ERR) {
        return wrap(cx, a, "equals");
    }
    struct ev b = expr_eval(cx, n->b);
    if (b.kind == EV_ERR) {
        return wrap(cx, b, "equals");
    }
    bool eq = ev_equal(a, b);
    return ev_bool(n->op == OP_EQ ? eq : !eq);
}

static bool cmp_result(int op, int c)
{
    switch (op) {
    case OP_LT:
        return c < 0;
    case OP_GT:
        return c > 0;
    case OP_LE:
        return c <= 0;
    default:
        return c >= 0;
    }
}

/*
 * Pebble: both sides must be numbers; a null side gives false; anything else fails. Kestra 2.0
 * compares two strings by UTF-16 code units first, and evaluates its operands outside the try, so
 * a missing operand reaches `??` unwrapped there.
 */
static struct ev eval_compare(struct ectx *cx, const struct node *n)
{
    static const char *const NAMES[] = {
        [OP_LT] = "<", [OP_GT] = ">", [OP_LE] = "<=", [OP_GE] = ">="};
    bool v2 = cx->compat == EXPR_COMPAT_2;
    struct ev a = expr_eval(cx, n->a);
    if (a.kind == EV_ERR) {
        return v2 ? a : wrap(cx, a, NAMES[n->op]);
    }
    struct ev b = expr_eval(cx, n->b);
    if (b.kind == EV_ERR) {
        return v2 ? b : wrap(cx, b, NAMES[n->op]);
    }
    if (v2 && a.kind == EV_STR && b.kind == EV_STR) {
        return ev_bool(cmp_result(n->op, utf16_cmp(a.s, a.len, b.s, b.len)));
    }
    if (a.kind == EV_NULL || b.kind == EV_NULL) {
        return ev_bool(false);
    }
    if (!ev_is_num(a) || !ev_is_num(b)) {
        return ev_err(cx, false, "could not perform %s comparison between %s and %s (%s)",
                      NAMES[n->op], ev_type_name(a), ev_type_name(b), node_text(cx, n));
    }
    if ((a.kind == EV_FLOAT && isnan(a.d)) || (b.kind == EV_FLOAT && isnan(b.d))) {
        return ev_bool(false);
    }
    return ev_bool(cmp_result(n->op, ev_cmp_num(a, b)));
}

static struct ev eval_logic(struct ectx *cx, const struct node *n)
{
    const char *where = n->op == OP_AND ? "'and'" : "'or'";
    struct ev a = ev_truth(cx, n->a, expr_eval(cx, n->a), where);
    if (a.kind == EV_ERR || (n->op == OP_AND && !a.b) || (n->op == OP_OR && a.b)) {
        return a;
    }
    return ev_truth(cx, n->b, expr_eval(cx, n->b), where);
}

static struct ev eval_coalesce(struct ectx *cx, const struct node *n)
{
    struct ev a = expr_eval(cx, n->a);
    bool missing = a.kind == EV_ERR && a.undef;
    if (missing || (n->op == OP_COALESCE && a.kind == EV_NULL)) {
        return expr_eval(cx, n->b);
    }
    return a;
}

/* ConcatenateExpression: Java toString of each side; a null side adds nothing. */
static struct ev eval_concat(struct ectx *cx, const struct node *n)
{
    struct ev a = expr_eval(cx, n->a);
    if (a.kind == EV_ERR) {
        return a;
    }
    struct ev b = expr_eval(cx, n->b);
    if (b.kind == EV_ERR) {
        return b;
    }
    struct sbuf buf;
    sbuf_init(&buf);
    bool ok = (a.kind == EV_NULL || append_java(cx, &buf, a)) &&
              (b.kind == EV_NULL || append_java(cx, &buf, b));
    struct ev r = ok ? ev_sbuf_str(cx, &buf) : ev_limit(cx);
    sbuf_deinit(&buf);
    return r;
}

/* Pebble's RangeExpression: integers, or single characters ('a'..'e'), both ends included. */
static struct ev eval_range(struct ectx *cx, const struct node *n, struct ev a, struct ev b)
{
    bool chars = a.kind == EV_STR && b.kind == EV_STR && a.len == 1 && b.len == 1;
    if (!chars && (a.kind != EV_INT || b.kind != EV_INT)) {
        return ev_err(cx, false, "a range needs two integers or two characters (%s)",
                      node_text(cx, n));
    }
    int64_t from = chars ? (unsigned char)a.s[0] : a.i;
    int64_t to = chars ? (unsigned char)b.s[0] : b.i;
    int64_t step = from <= to ? 1 : -1;
    uint64_t count = (uint64_t)(step > 0 ? to - from : from - to) + 1;
    if (count > EXPR_MAX_RANGE) {
        return ev_err(cx, false, "a range of more than %d elements (%s)", EXPR_MAX_RANGE,
                      node_text(cx, n));
    }
    msgpack_object *items;
    struct ev list = ev_new_list(cx, (size_t)count, &items);
    char *text = chars ? arena_alloc(&cx->ar, (size_t)count) : NULL;
    if (list.kind == EV_ERR || (chars && !text)) {
        return ev_limit(cx);
    }
    for (uint64_t i = 0; i < count; i++) {
        int64_t x = from + (int64_t)i * step;
        if (chars) {
            text[i] = (char)x;
            ev_to_obj(ev_str(text + i, 1), &items[i]);
        } else {
            ev_to_obj(ev_int(x), &items[i]);
        }
    }
    return list;
}

/* Kestra's isIn (0.24+): membership by toString() form, so `1 isIn ['1']` holds. */
static struct ev eval_isin(struct ectx *cx, const struct node *n, struct ev a, struct ev b)
{
    if (b.kind == EV_NULL) {
        return ev_bool(false);
    }
    if (b.kind != EV_LIST) {
        return ev_err(cx, false, "isIn needs a list on its right (%s)", node_text(cx, n));
    }
    struct ev sa = ev_tostring(cx, a);
    if (sa.kind == EV_ERR) {
        return sa;
    }
    for (uint32_t i = 0; i < b.o->via.array.size; i++) {
        struct ev e = ev_tostring(cx, ev_from_obj(&b.o->via.array.ptr[i]));
        if (e.kind == EV_ERR) {
            return e;
        }
        if (e.len == sa.len && memcmp(e.s, sa.s, sa.len) == 0) {
            return ev_bool(true);
        }
    }
    return ev_bool(false);
}

static struct ev eval_binary(struct ectx *cx, const struct node *n)
{
    switch (n->op) {
    case OP_AND:
    case OP_OR:
        return eval_logic(cx, n);
    case OP_EQ:
    case OP_NE:
        return eval_equality(cx, n);
    case OP_LT:
    case OP_GT:
    case OP_LE:
    case OP_GE:
        return eval_compare(cx, n);
    case OP_COALESCE:
    case OP_UNDEF_COALESCE:
        return eval_coalesce(cx, n);
    case OP_CONCAT:
        return eval_concat(cx, n);
    default:
        break;
    }
    struct ev a = expr_eval(cx, n->a);
    if (a.kind == EV_ERR) {
        return a;
    }
    if (n->op == OP_CONTAINS && a.kind == EV_NULL) {
        return ev_bool(false); /* Pebble does not evaluate the right side then */
    }
    struct ev b = expr_eval(cx, n->b);
    if (b.kind == EV_ERR) {
        return b;
    }
    switch (n->op) {
    case OP_CONTAINS:
        return ev_contains(cx, n, a, b);
    case OP_RANGE:
        return eval_range(cx, n, a, b);
    case OP_ISIN:
        return eval_isin(cx, n, a, b);
    default:
        return ev_arith(cx, n, n->op, a, b);
    }
}

static struct ev eval_unary(struct ectx *cx, const struct node *n)
{
    struct ev v = expr_eval(cx, n->a);
    if (v.kind == EV_ERR) {
        return v;
    }
    if (n->op == OP_NOT) {
        if (v.kind == EV_NULL) {
            return ev_err(cx, false, "null value given to not (%s)", node_text(cx, n->a));
        }
        struct ev t = ev_truth(cx, n->a, v, "not");
        return t.kind == EV_ERR ? t : ev_bool(!t.b);
    }
    /* Pebble: unaryMinus(x) is multiply(-1, x), unaryPlus(x) is multiply(1, x). */
    return ev_arith(cx, n, OP_MUL, ev_int(n->op == OP_SUB ? -1 : 1), v);
}

/* ==== Filters, tests, calls ==== */

static bool eval_args(struct ectx *cx, const struct node *n, struct ev *args, struct ev *err)
{
    for (size_t i = 0; i < EXPR_MAX_ARGS; i++) {
        args[i] = ev_absent();
    }
    for (size_t i = 0; i < n->nargs; i++) {
        if (!n->args[i]) {
            continue;
        }
        args[i] = expr_eval(cx, n->args[i]);
        if (args[i].kind == EV_ERR) {
            *err = args[i];
            return false;
        }
        args[i].undef = false;
    }
    return true;
}

static struct ev eval_fn(struct ectx *cx, const struct node *n)
{
    struct ev in = ev_null();
    if (n->kind != N_CALL) {
        in = expr_eval(cx, n->a);
        bool caught = in.kind == EV_ERR && in.undef && (n->fn->flags & FN_CATCH_UNDEF);
        if (in.kind == EV_ERR && !caught) {
            return in;
        }
    }
    struct ev args[EXPR_MAX_ARGS], err;
    if (!eval_args(cx, n, args, &err)) {
        return err;
    }
    if (n->kind == N_TEST && in.kind == EV_NULL && !(n->fn->flags & FN_NULL_IN_OK)) {
        return ev_err(cx, false, "null value given to test '%s' (%s)", n->fn->name,
                      node_text(cx, n->a));
    }
    struct ev r = n->fn->fn(cx, n, in, args);
    if (n->kind == N_TEST && r.kind == EV_BOOL && n->op) {
        r.b = !r.b;
    }
    return r;
}

static struct ev eval_list(struct ectx *cx, const struct node *n)
{
    msgpack_object *items;
    struct ev list = ev_new_list(cx, n->nargs, &items);
    for (size_t i = 0; list.kind != EV_ERR && i < n->nargs; i++) {
        struct ev v = expr_eval(cx, n->args[i]);
        if (v.kind == EV_ERR) {
            return v;
        }
        ev_to_obj(v, &items[i]);
    }
    return list;
}

static struct ev eval_map(struct ectx *cx, const struct node *n)
{
    msgpack_object_kv *kv;
    struct ev map = ev_new_map(cx, n->nargs / 2, &kv);
    for (size_t i = 0; map.kind != EV_ERR && i + 1 < n->nargs; i += 2) {
        struct ev k = expr_eval(cx, n->args[i]);
        if (k.kind == EV_ERR) {
            return k;
        }
        struct ev v = expr_eval(cx, n->args[i + 1]);
        if (v.kind == EV_ERR) {
            return v;
        }
        ev_to_obj(k, &kv[i / 2].key);
        ev_to_obj(v, &kv[i / 2].val);
    }
    return map;
}

/* TernaryExpression: a null condition takes the else branch; lists and maps fail. */
static struct ev eval_ternary(struct ectx *cx, const struct node *n)
{
    struct ev c = expr_eval(cx, n->a);
    if (c.kind == EV_ERR) {
        return c;
    }
    if (c.kind == EV_NULL) {
        return expr_eval(cx, n->c);
    }
    struct ev t = ev_truth(cx, n->a, c, "a ternary condition");
    if (t.kind == EV_ERR) {
        return t;
    }
    return expr_eval(cx, t.b ? n->b : n->c);
}

struct ev expr_eval(struct ectx *cx, const struct node *n)
{
    switch (n->kind) {
    case N_LIT:
        return n->lit;
    case N_VAR:
        return eval_var(cx, n);
    case N_ATTR:
        return eval_attr(cx, n);
    case N_INDEX:
        return eval_index(cx, n);
    case N_UNARY:
        return eval_unary(cx, n);
    case N_BINARY:
        return eval_binary(cx, n);
    case N_FILTER:
    case N_TEST:
    case N_CALL:
        return eval_fn(cx, n);
    case N_LIST:
        return eval_list(cx, n);
    case N_MAP:
        return eval_map(cx, n);
    case N_TERNARY:
        return eval_ternary(cx, n);
    default:
        return ev_err(cx, false, "internal error: node kind %d in an expression", n->kind);
    }
}
