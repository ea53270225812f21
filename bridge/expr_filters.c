/*
 * expr_filters.c: the filter table (name, arity, argument names, function) and the string, list
 * and map filters of Pebble core and Kestra; expr_convert.c has the converting ones. Adding a
 * filter is one row in a table and one case in testdata/expr.cases. Each follows the Java
 * original's null handling and error cases. No I/O.
 */
#include "expr_int.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

struct ev filter_wrong_type(struct ectx *cx, const struct node *n, struct ev in, const char *want)
{
    return ev_err(cx, false, "filter '%s' expects %s, got %s (%s)", n->fn->name, want,
                  ev_type_name(in), node_text(cx, n->a));
}

struct ev filter_finish(struct ectx *cx, struct sbuf *b)
{
    struct ev r = ev_sbuf_str(cx, b);
    sbuf_deinit(b);
    return r;
}

/* ==== Strings ==== */

static struct ev map_case(struct ectx *cx, struct ev in, bool upper)
{
    struct ev s = ev_tostring(cx, in);
    if (s.kind == EV_ERR) {
        return s;
    }
    char *out = arena_alloc(&cx->ar, 2 * s.len + 1);
    if (!out) {
        return ev_limit(cx);
    }
    size_t len = case_map(s.s, s.len, out, upper);
    return ev_str(out, len);
}

F(f_lower)
{
    (void)n, (void)args;
    return in.kind == EV_NULL ? in : map_case(cx, in, false);
}

F(f_upper)
{
    (void)n, (void)args;
    return in.kind == EV_NULL ? in : map_case(cx, in, true);
}

F(f_capitalize)
{
    (void)args;
    if (in.kind == EV_NULL) {
        return in;
    }
    if (in.kind != EV_STR) {
        return filter_wrong_type(cx, n, in, "a string");
    }
    size_t i = 0;
    if (in.len == 0) {
        return in;
    }
    utf8_next(in.s, in.len, &i);
    struct sbuf b;
    sbuf_init(&b);
    char head[8];
    sbuf_append(&b, head, case_map(in.s, i, head, true));
    sbuf_append(&b, in.s + i, in.len - i);
    return filter_finish(cx, &b);
}

/* TitleFilter: the first letter after white space is upper-cased, the rest left alone. */
F(f_title)
{
    (void)args;
    if (in.kind == EV_NULL) {
        return in;
    }
    struct ev s = ev_tostring(cx, in);
    if (s.kind == EV_ERR) {
        return s;
    }
    (void)n;
    struct sbuf b;
    sbuf_init(&b);
    bool next_upper = true;
    for (size_t i = 0; i < s.len;) {
        size_t start = i;
        uint32_t cp = utf8_next(s.s, s.len, &i);
        if (java_is_whitespace(cp)) {
            next_upper = true;
            sbuf_append(&b, s.s + start, i - start);
        } else if (next_upper) {
            char up[8];
            sbuf_append(&b, up, case_map(s.s + start, i - start, up, true));
            next_upper = false;
        } else {
            sbuf_append(&b, s.s + start, i - start);
        }
    }
    return filter_finish(cx, &b);
}

F(f_trim)
{
    (void)args;
    if (in.kind == EV_NULL) {
        return in;
    }
    if (in.kind != EV_STR) {
        return filter_wrong_type(cx, n, in, "a string");
    }
    size_t a = 0, b = in.len;
    while (a < b && (unsigned char)in.s[a] <= ' ') {
        a++;
    }
    while (b > a && (unsigned char)in.s[b - 1] <= ' ') {
        b--;
    }
    return ev_str(in.s + a, b - a);
}

F(f_length)
{
    (void)n, (void)args;
    switch (in.kind) {
    case EV_STR:
        return ev_int((int64_t)utf16_len(in.s, in.len));
    case EV_LIST:
        return ev_int(in.o->via.array.size);
    case EV_MAP:
        return ev_int(ev_map_dedupe(cx, in.o)->via.map.size);
    default:
        return ev_int(0);
    }
}

/* DefaultFilter: a missing input (strict mode's exception) or an empty one gives the fallback. */
F(f_default)
{
    (void)cx, (void)n;
    if (in.kind == EV_ERR || ev_empty(in)) {
        return args[0];
    }
    return in;
}

static struct ev str_arg(struct ectx *cx, const struct node *n, struct ev v, const char *what)
{
    if (v.kind == EV_STR) {
        return v;
    }
    return ev_err(cx, false, "filter '%s': %s must be a string, not %s", n->fn->name, what,
                  ev_type_name(v));
}

F(f_starts_with)
{
    if (in.kind == EV_NULL) {
        return ev_err(cx, false, "filter '%s' got null (%s)", n->fn->name, node_text(cx, n->a));
    }
    struct ev s = ev_tostring(cx, in), p = ev_tostring(cx, args[0]);
    if (s.kind == EV_ERR || p.kind == EV_ERR) {
        return s.kind == EV_ERR ? s : p;
    }
    bool ends = n->fn->name[0] == 'e';
    if (p.len > s.len) {
        return ev_bool(false);
    }
    return ev_bool(memcmp(ends ? s.s + s.len - p.len : s.s, p.s, p.len) == 0);
}

/* commons-lang StringUtils.substringBefore/After[Last]. */
F(f_substring)
{
    if (in.kind == EV_NULL) {
        return in;
    }
    struct ev s = ev_tostring(cx, in), sep = str_arg(cx, n, args[0], "the separator");
    if (s.kind == EV_ERR || sep.kind == EV_ERR) {
        return s.kind == EV_ERR ? s : sep;
    }
    const char *name = n->fn->name;
    bool after = strstr(name, "After") != NULL, last = strstr(name, "Last") != NULL;
    if (sep.len == 0) {
        return after == last ? ev_str("", 0) : s;
    }
    const char *hit = NULL;
    for (const char *p = s.s; (p = memmem(p, s.len - (size_t)(p - s.s), sep.s, sep.len)); p++) {
        hit = p;
        if (!last) {
            break;
        }
    }
    if (!hit) {
        return after ? ev_str("", 0) : s;
    }
    if (after) {
        size_t from = (size_t)(hit - s.s) + sep.len;
        return ev_str(s.s + from, s.len - from);
    }
    return ev_str(s.s, (size_t)(hit - s.s));
}

/* Kestra's Slugify: white space to '-', accents dropped (NFD), non-word characters removed. */
static char slug_base(uint32_t cp)
{
    static const char LATIN1[] = "AAAAAA CEEEEIIII NOOOOO  UUUUY  aaaaaa ceeeeiiii nooooo  uuuuy y";
    static const char EXT_A[] = "AaAaAaCcCcCcCcDd  EeEeEeEeEeGgGgGgGgHh  IiIiIiIiI   JjKk LlLlLl "
                                "   NnNnNn   OoOoOo  RrRrRrSsSsSsSsTtTt  UuUuUuUuUuUuWwYyYZzZzZz ";
    char c = ' ';
    if (cp >= 0xC0 && cp <= 0xFF) {
        c = LATIN1[cp - 0xC0];
    } else if (cp >= 0x100 && cp <= 0x17F) {
        c = EXT_A[cp - 0x100];
    }
    return c == ' ' ? 0 : c;
}

F(f_slugify)
{
    (void)n, (void)args;
    if (in.kind == EV_NULL) {
        return in;
    }
    struct ev s = ev_tostring(cx, in);
    if (s.kind == EV_ERR) {
        return s;
    }
    struct sbuf b;
    sbuf_init(&b);
    for (size_t i = 0; i < s.len;) {
        uint32_t cp = utf8_next(s.s, s.len, &i);
        char c = cp < 0x80 ? (char)cp : slug_base(cp);
        if (c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r' || c == '_' ||
            c == '-') {
            c = '-';
        } else if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))) {
            continue;
        }
        if (c == '-' && b.len > 0 && b.data[b.len - 1] == '-') {
            continue;
        }
        c = (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c;
        sbuf_append(&b, &c, 1);
    }
    size_t from = b.len > 0 && b.data[0] == '-' ? 1 : 0;
    size_t to = b.len > from && b.data[b.len - 1] == '-' ? b.len - 1 : b.len;
    struct ev r = ev_str("", 0);
    if (to > from) {
        struct sbuf t;
        sbuf_init(&t);
        sbuf_append(&t, b.data + from, to - from);
        r = filter_finish(cx, &t);
    }
    sbuf_deinit(&b);
    return r;
}

/* String.replace: every non-overlapping occurrence, left to right; "" inserts everywhere. */
static void replace_all(struct sbuf *b, struct ev s, struct ev from, struct ev to)
{
    if (from.len == 0) {
        for (size_t i = 0; i <= s.len;) {
            sbuf_append(b, to.s, to.len);
            if (i == s.len) {
                break;
            }
            size_t start = i;
            utf8_next(s.s, s.len, &i);
            sbuf_append(b, s.s + start, i - start);
        }
        return;
    }
    size_t i = 0;
    const char *hit;
    while ((hit = memmem(s.s + i, s.len - i, from.s, from.len))) {
        sbuf_append(b, s.s + i, (size_t)(hit - s.s) - i);
        sbuf_append(b, to.s, to.len);
        i = (size_t)(hit - s.s) + from.len;
    }
    sbuf_append(b, s.s + i, s.len - i);
}

static struct ev replace_value(struct ectx *cx, struct ev v, const msgpack_object *pairs,
                               int depth);

static struct ev replace_string(struct ectx *cx, struct ev s, const msgpack_object *pairs)
{
    for (uint32_t i = 0; i < pairs->via.map.size && s.kind != EV_ERR; i++) {
        struct ev from = ev_tostring(cx, ev_from_obj(&pairs->via.map.ptr[i].key));
        struct ev to = ev_tostring(cx, ev_from_obj(&pairs->via.map.ptr[i].val));
        if (from.kind == EV_ERR || to.kind == EV_ERR) {
            return from.kind == EV_ERR ? from : to;
        }
        struct sbuf b;
        sbuf_init(&b);
        replace_all(&b, s, from, to);
        s = b.len > EXPR_MAX_STRING ? ev_limit(cx) : ev_sbuf_str(cx, &b);
        sbuf_deinit(&b);
    }
    return s;
}

/* Kestra's ReplaceFilter walks maps and lists, turning every leaf into a replaced string. */
static struct ev replace_value(struct ectx *cx, struct ev v, const msgpack_object *pairs, int depth)
{
    if (depth > 64) {
        return ev_err(cx, false, "filter 'replace': value nested too deeply");
    }
    if (v.kind == EV_NULL) {
        return ev_err(cx, false, "filter 'replace': null inside the input");
    }
    if (v.kind != EV_LIST && v.kind != EV_MAP) {
        struct ev s = ev_tostring(cx, v);
        return s.kind == EV_ERR ? s : replace_string(cx, s, pairs);
    }
    bool map = v.kind == EV_MAP;
    uint32_t count = map ? v.o->via.map.size : v.o->via.array.size;
    msgpack_object *items = NULL;
    msgpack_object_kv *kv = NULL;
    struct ev r = map ? ev_new_map(cx, count, &kv) : ev_new_list(cx, count, &items);
    for (uint32_t i = 0; r.kind != EV_ERR && i < count; i++) {
        struct ev e = ev_from_obj(map ? &v.o->via.map.ptr[i].val : &v.o->via.array.ptr[i]);
        struct ev x = replace_value(cx, e, pairs, depth + 1);
        if (x.kind == EV_ERR) {
            return x;
        }
        if (map) {
            kv[i].key = v.o->via.map.ptr[i].key;
        }
        ev_to_obj(x, map ? &kv[i].val : &items[i]);
    }
    return r;
}

static const char *check_replace(const struct node *n)
{
    const struct node *re = n->args[1];
    if (re && re->kind == N_LIT && re->lit.kind == EV_BOOL && re->lit.b) {
        return "filter 'replace': regexp=true is not supported (regular expressions)";
    }
    if (n->args[0] && n->args[0]->kind == N_LIT) {
        return "filter 'replace' takes a map of replacements, e.g. replace({'a': 'b'})";
    }
    return NULL;
}

F(f_replace)
{
    if (in.kind == EV_NULL) {
        return in;
    }
    if (args[0].kind != EV_MAP) {
        return ev_err(cx, false, "filter 'replace' takes a map of replacements, not %s",
                      ev_type_name(args[0]));
    }
    if (ARG_GIVEN(args[1]) && !(args[1].kind == EV_BOOL && !args[1].b)) {
        return ev_err(cx, false, "filter 'replace': regexp=true is not supported");
    }
    (void)n;
    return replace_value(cx, in, args[0].o, 0);
}

/* ==== Lists and maps ==== */

static struct ev first_char(struct ectx *cx, const struct node *n, struct ev s, bool last)
{
    if (s.len == 0) {
        return ev_err(cx, false, "filter '%s' on an empty string (%s)", n->fn->name,
                      node_text(cx, n->a));
    }
    size_t i = 0, start = 0;
    while (i < s.len) {
        start = i;
        utf8_next(s.s, s.len, &i);
        if (!last) {
            break;
        }
    }
    return ev_str(s.s + start, i - start);
}

F(f_first)
{
    (void)args;
    bool last = n->fn->name[0] == 'l';
    if (in.kind == EV_NULL) {
        return in;
    }
    if (in.kind == EV_STR) {
        return first_char(cx, n, in, last);
    }
    if (in.kind != EV_LIST) {
        return filter_wrong_type(cx, n, in, "a list or a string");
    }
    uint32_t size = in.o->via.array.size;
    if (size == 0) {
        return ev_null();
    }
    return ev_from_obj(&in.o->via.array.ptr[last ? size - 1 : 0]);
}

F(f_keys)
{
    (void)args;
    if (in.kind == EV_NULL) {
        return in;
    }
    bool values = n->fn->name[0] == 'v';
    if (in.kind == EV_LIST && !values) {
        msgpack_object *items;
        struct ev r = ev_new_list(cx, in.o->via.array.size, &items);
        for (uint32_t i = 0; r.kind != EV_ERR && i < in.o->via.array.size; i++) {
            ev_to_obj(ev_int(i), &items[i]);
        }
        return r;
    }
    if (in.kind != EV_MAP) {
        return filter_wrong_type(cx, n, in, values ? "a map" : "a map or a list");
    }
    const msgpack_object *m = ev_map_dedupe(cx, in.o);
    msgpack_object *items;
    struct ev r = ev_new_list(cx, m->via.map.size, &items);
    for (uint32_t i = 0; r.kind != EV_ERR && i < m->via.map.size; i++) {
        items[i] = values ? m->via.map.ptr[i].val : m->via.map.ptr[i].key;
    }
    return r;
}

F(f_join)
{
    if (in.kind == EV_NULL) {
        return in;
    }
    if (in.kind != EV_LIST) {
        return filter_wrong_type(cx, n, in, "a list");
    }
    struct ev sep = ARG_GIVEN(args[0]) ? str_arg(cx, n, args[0], "the separator") : ev_str("", 0);
    if (sep.kind == EV_ERR) {
        return sep;
    }
    struct sbuf b;
    sbuf_init(&b);
    for (uint32_t i = 0; i < in.o->via.array.size; i++) {
        if (i) {
            sbuf_append(&b, sep.s, sep.len);
        }
        if (!append_java(cx, &b, ev_from_obj(&in.o->via.array.ptr[i]))) {
            sbuf_deinit(&b);
            return ev_limit(cx);
        }
    }
    return filter_finish(cx, &b);
}

/* The delimiter is a Java regular expression; literal text and "\x" escapes are supported. */
static bool split_literal(struct ev d, char *buf, size_t *len)
{
    static const char META[] = ".$|()[]{}^?*+\\";
    if (d.len == 2 && d.s[0] == '\\' && strchr(META, d.s[1])) {
        buf[0] = d.s[1];
        *len = 1;
        return true;
    }
    for (size_t i = 0; i < d.len; i++) {
        if (strchr(META, d.s[i])) {
            return false;
        }
    }
    *len = 0;
    return true;
}

static const char *check_split(const struct node *n)
{
    const struct node *d = n->args[0];
    char buf[2];
    size_t len;
    if (d && d->kind == N_LIT && d->lit.kind == EV_STR && !split_literal(d->lit, buf, &len)) {
        return "filter 'split': regular expressions are not supported; escape the character "
               "(e.g. '\\\\.') or use a literal delimiter";
    }
    return NULL;
}

static struct ev split_into(struct ectx *cx, struct ev s, struct ev d, int64_t limit)
{
    struct ev *parts = NULL;
    size_t n = 0, cap = 0, i = 0;
    for (;;) {
        if (n + 2 > cap) {
            cap = cap ? cap * 2 : 16;
            parts = xrealloc(parts, cap * sizeof(*parts));
        }
        if (limit > 0 && (int64_t)n + 1 >= limit) {
            break;
        }
        if (n > EXPR_MAX_MEMORY / sizeof(msgpack_object)) { /* the list could not be built */
            xfree(parts);
            return ev_limit(cx);
        }
        const char *hit;
        if (d.len == 0) { /* an empty delimiter splits between characters */
            if (i >= s.len) {
                break;
            }
            size_t start = i;
            utf8_next(s.s, s.len, &i);
            parts[n++] = ev_str(s.s + start, i - start);
            continue;
        }
        if (!(hit = memmem(s.s + i, s.len - i, d.s, d.len))) {
            break;
        }
        parts[n++] = ev_str(s.s + i, (size_t)(hit - s.s) - i);
        i = (size_t)(hit - s.s) + d.len;
    }
    if (d.len != 0 || i < s.len || n == 0) {
        parts[n++] = ev_str(s.s + i, s.len - i);
    }
    if (limit == 0 && n > 1) { /* String.split drops trailing empty strings */
        while (n > 0 && parts[n - 1].len == 0) {
            n--;
        }
    }
    msgpack_object *items;
    struct ev r = ev_new_list(cx, n, &items);
    for (size_t k = 0; r.kind != EV_ERR && k < n; k++) {
        ev_to_obj(parts[k], &items[k]);
    }
    xfree(parts);
    return r;
}

F(f_split)
{
    if (in.kind == EV_NULL) {
        return in;
    }
    if (in.kind != EV_STR) {
        return filter_wrong_type(cx, n, in, "a string");
    }
    struct ev d = str_arg(cx, n, args[0], "the delimiter");
    if (d.kind == EV_ERR) {
        return d;
    }
    char one[2];
    size_t one_len;
    if (!split_literal(d, one, &one_len)) {
        return ev_err(cx, false, "filter 'split': regular expressions are not supported");
    }
    if (one_len) {
        d = ev_str(one, 1);
    }
    int64_t limit = 0;
    if (ARG_GIVEN(args[1])) {
        if (!ev_is_num(args[1])) {
            return ev_err(cx, false, "filter 'split': the limit must be a number");
        }
        limit = (int64_t)ev_num(args[1]);
    }
    return split_into(cx, in, d, limit);
}

static int sort_cmp(const void *x, const void *y)
{
    struct ev a = ev_from_obj(x), b = ev_from_obj(y);
    if (ev_is_num(a) && ev_is_num(b)) {
        return ev_cmp_num(a, b);
    }
    return utf16_cmp(a.s, a.len, b.s, b.len);
}

F(f_sort)
{
    (void)args;
    if (in.kind == EV_NULL) {
        return in;
    }
    if (in.kind != EV_LIST) {
        return filter_wrong_type(cx, n, in, "a list");
    }
    uint32_t size = in.o->via.array.size;
    bool nums = true, strs = true;
    for (uint32_t i = 0; i < size; i++) {
        struct ev e = ev_from_obj(&in.o->via.array.ptr[i]);
        nums &= ev_is_num(e);
        strs &= e.kind == EV_STR;
    }
    if (size && !nums && !strs) {
        return ev_err(cx, false, "filter 'sort' needs a list of numbers or of strings (%s)",
                      node_text(cx, n->a));
    }
    msgpack_object *items;
    struct ev r = ev_new_list(cx, size, &items);
    if (r.kind != EV_ERR && size) {
        memcpy(items, in.o->via.array.ptr, size * sizeof(*items));
        qsort(items, size, sizeof(*items), sort_cmp);
    }
    return r;
}

F(f_reverse)
{
    (void)args;
    if (in.kind == EV_NULL) {
        return in;
    }
    if (in.kind != EV_LIST) {
        return filter_wrong_type(cx, n, in, "a list");
    }
    uint32_t size = in.o->via.array.size;
    msgpack_object *items;
    struct ev r = ev_new_list(cx, size, &items);
    for (uint32_t i = 0; r.kind != EV_ERR && i < size; i++) {
        items[i] = in.o->via.array.ptr[size - 1 - i];
    }
    return r;
}

/* SliceFilter: [fromIndex, toIndex) of a list, or of a string counted in characters. */
F(f_slice)
{
    if (in.kind == EV_NULL) {
        return in;
    }
    if (in.kind != EV_LIST && in.kind != EV_STR) {
        return filter_wrong_type(cx, n, in, "a list or a string");
    }
    int64_t size = in.kind == EV_LIST ? in.o->via.array.size : 0;
    for (size_t i = 0; in.kind == EV_STR && i < in.len; size++) {
        utf8_next(in.s, in.len, &i);
    }
    int64_t from = ARG_GIVEN(args[0]) && ev_is_num(args[0]) ? (int64_t)ev_num(args[0]) : 0;
    int64_t to = ARG_GIVEN(args[1]) && ev_is_num(args[1]) ? (int64_t)ev_num(args[1]) : size;
    if (from < 0 || to > size || from > to) {
        return ev_err(cx, false, "filter 'slice': indices %lld..%lld out of range (length %lld)",
                      (long long)from, (long long)to, (long long)size);
    }
    if (in.kind == EV_LIST) {
        struct ev r = in;
        msgpack_object *o = arena_alloc(&cx->ar, sizeof(*o));
        if (!o) {
            return ev_limit(cx);
        }
        *o = *in.o;
        o->via.array.ptr += from;
        o->via.array.size = (uint32_t)(to - from);
        r.o = o;
        return r;
    }
    size_t i = 0, a = 0;
    for (int64_t k = 0; k < to; k++) {
        if (k == from) {
            a = i;
        }
        utf8_next(in.s, in.len, &i);
    }
    return ev_str(in.s + (from == to ? i : a), from == to ? 0 : i - a);
}

/* ==== The table ==== */

static const struct expr_fn FILTERS[] = {
    {"capitalize", 0, 0, 0, {0}, f_capitalize, NULL},
    {"default", 1, 1, FN_CATCH_UNDEF, {"default"}, f_default, NULL},
    {"endsWith", 1, 1, 0, {"value"}, f_starts_with, NULL},
    {"first", 0, 0, 0, {0}, f_first, NULL},
    {"join", 0, 1, 0, {"separator"}, f_join, NULL},
    {"keys", 0, 0, 0, {0}, f_keys, NULL},
    {"last", 0, 0, 0, {0}, f_first, NULL},
    {"length", 0, 0, 0, {0}, f_length, NULL},
    {"lower", 0, 0, 0, {0}, f_lower, NULL},
    {"replace", 1, 2, 0, {"replace_pairs", "regexp"}, f_replace, check_replace},
    {"reverse", 0, 0, 0, {0}, f_reverse, NULL},
    {"slice", 0, 2, 0, {"fromIndex", "toIndex"}, f_slice, NULL},
    {"slugify", 0, 0, 0, {0}, f_slugify, NULL},
    {"sort", 0, 0, 0, {0}, f_sort, NULL},
    {"split", 1, 2, 0, {"delimiter", "limit"}, f_split, check_split},
    {"startsWith", 1, 1, 0, {"value"}, f_starts_with, NULL},
    {"substringAfter", 1, 1, 0, {"separator"}, f_substring, NULL},
    {"substringAfterLast", 1, 1, 0, {"separator"}, f_substring, NULL},
    {"substringBefore", 1, 1, 0, {"separator"}, f_substring, NULL},
    {"substringBeforeLast", 1, 1, 0, {"separator"}, f_substring, NULL},
    {"title", 0, 0, 0, {0}, f_title, NULL},
    {"trim", 0, 0, 0, {0}, f_trim, NULL},
    {"upper", 0, 0, 0, {0}, f_upper, NULL},
    {"values", 0, 0, 0, {0}, f_keys, NULL},
};

const struct expr_fn *expr_find_filter(const char *name, size_t len)
{
    for (size_t i = 0; i < ARRAY_LEN(FILTERS); i++) {
        if (strlen(FILTERS[i].name) == len && memcmp(FILTERS[i].name, name, len) == 0) {
            return &FILTERS[i];
        }
    }
    return expr_find_convert_filter(name, len);
}
