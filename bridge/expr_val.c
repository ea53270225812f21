/*
 * expr_val.c: values of the evaluator: conversion from and to msgpack objects, duplicate map
 * keys, Pebble's equality and numeric comparison, UTF-8/UTF-16 and case mapping, truth and
 * emptiness. No I/O; temporary values live in the render's arena.
 */
#include "expr_int.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_VALUE_DEPTH 128

/* ==== msgpack objects ==== */

struct ev ev_from_obj(const msgpack_object *o)
{
    switch (o->type) {
    case MSGPACK_OBJECT_BOOLEAN:
        return ev_bool(o->via.boolean);
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        if (o->via.u64 > (uint64_t)INT64_MAX) {
            struct ev v = {.kind = EV_UINT, .u = o->via.u64};
            return v;
        }
        return ev_int((int64_t)o->via.u64);
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        return ev_int(o->via.i64);
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        return ev_float(o->via.f64);
    case MSGPACK_OBJECT_STR:
        return ev_str(o->via.str.ptr, o->via.str.size);
    case MSGPACK_OBJECT_BIN:
        return ev_str(o->via.bin.ptr, o->via.bin.size);
    case MSGPACK_OBJECT_ARRAY: {
        struct ev v = {.kind = EV_LIST, .o = o};
        return v;
    }
    case MSGPACK_OBJECT_MAP: {
        struct ev v = {.kind = EV_MAP, .o = o};
        return v;
    }
    default:
        return ev_null();
    }
}

/* The value as an element of a built list or map (never called with an error). */
void ev_to_obj(struct ev v, msgpack_object *o)
{
    memset(o, 0, sizeof(*o));
    switch (v.kind) {
    case EV_BOOL:
        o->type = MSGPACK_OBJECT_BOOLEAN;
        o->via.boolean = v.b;
        break;
    case EV_INT:
        o->type = v.i < 0 ? MSGPACK_OBJECT_NEGATIVE_INTEGER : MSGPACK_OBJECT_POSITIVE_INTEGER;
        o->via.i64 = v.i;
        break;
    case EV_UINT:
        o->type = MSGPACK_OBJECT_POSITIVE_INTEGER;
        o->via.u64 = v.u;
        break;
    case EV_FLOAT:
        o->type = MSGPACK_OBJECT_FLOAT64;
        o->via.f64 = v.d;
        break;
    case EV_STR:
        o->type = MSGPACK_OBJECT_STR;
        o->via.str.ptr = v.s;
        o->via.str.size = (uint32_t)v.len;
        break;
    case EV_LIST:
    case EV_MAP:
        *o = *v.o;
        break;
    default:
        o->type = MSGPACK_OBJECT_NIL;
    }
}

struct ev ev_new_list(struct ectx *cx, size_t n, msgpack_object **items)
{
    msgpack_object *o = arena_alloc(&cx->ar, sizeof(*o));
    *items = n ? arena_alloc(&cx->ar, n * sizeof(**items)) : NULL;
    if (!o || (n && !*items)) {
        return ev_limit(cx);
    }
    o->type = MSGPACK_OBJECT_ARRAY;
    o->via.array.size = (uint32_t)n;
    o->via.array.ptr = *items;
    struct ev v = {.kind = EV_LIST, .o = o};
    return v;
}

struct ev ev_new_map(struct ectx *cx, size_t n, msgpack_object_kv **kvs)
{
    msgpack_object *o = arena_alloc(&cx->ar, sizeof(*o));
    *kvs = n ? arena_alloc(&cx->ar, n * sizeof(**kvs)) : NULL;
    if (!o || (n && !*kvs)) {
        return ev_limit(cx);
    }
    o->type = MSGPACK_OBJECT_MAP;
    o->via.map.size = (uint32_t)n;
    o->via.map.ptr = *kvs;
    struct ev v = {.kind = EV_MAP, .o = o};
    return v;
}

/* Copies a built string into the arena, enforcing EXPR_MAX_STRING. */
struct ev ev_sbuf_str(struct ectx *cx, struct sbuf *b)
{
    if (b->len > EXPR_MAX_STRING) {
        return ev_limit(cx);
    }
    char *s = arena_alloc(&cx->ar, b->len + 1);
    if (!s) {
        return ev_limit(cx);
    }
    if (b->len) {
        memcpy(s, b->data, b->len);
    }
    s[b->len] = '\0';
    return ev_str(s, b->len);
}

static bool key_is(const msgpack_object *k, const char *key, size_t klen)
{
    return k->type == MSGPACK_OBJECT_STR && k->via.str.size == klen &&
           (klen == 0 || memcmp(k->via.str.ptr, key, klen) == 0);
}

/* Jackson keeps the last of duplicate keys, so the search runs from the end. */
struct ev ev_map_get(const msgpack_object *map, const char *key, size_t klen, bool *found)
{
    for (uint32_t i = map->via.map.size; i-- > 0;) {
        if (key_is(&map->via.map.ptr[i].key, key, klen)) {
            *found = true;
            return ev_from_obj(&map->via.map.ptr[i].val);
        }
    }
    *found = false;
    return ev_null();
}

static bool obj_key_equal(const msgpack_object *a, const msgpack_object *b)
{
    return ev_equal(ev_from_obj(a), ev_from_obj(b));
}

/*
 * A hash index over a map's keys, so that duplicate detection and map equality stay linear even
 * for a body with thousands of keys. String keys hash by content (FNV-1a); other keys (only
 * map literals have them) share one hash and are told apart by ev_equal.
 */
struct kindex {
    uint32_t mask;
    uint32_t *slot; /* 0: empty; else 1 + an index chosen by the caller */
};

static uint32_t key_hash(const msgpack_object *k)
{
    uint32_t h = 2166136261u;
    if (k->type == MSGPACK_OBJECT_STR) {
        for (uint32_t i = 0; i < k->via.str.size; i++) {
            h = (h ^ (unsigned char)k->via.str.ptr[i]) * 16777619u;
        }
    }
    return h;
}

static void kindex_init(struct kindex *ix, uint32_t n)
{
    uint32_t cap = 16;
    while (cap < 2 * n) {
        cap *= 2;
    }
    ix->mask = cap - 1;
    ix->slot = xcalloc(cap, sizeof(*ix->slot));
}

/* Finds `key` among keys[slot - 1]; inserts `idx` when absent. Returns the found index or idx. */
static uint32_t kindex_put(struct kindex *ix, const msgpack_object *key,
                           const msgpack_object_kv *kv, uint32_t idx)
{
    for (uint32_t h = key_hash(key) & ix->mask;; h = (h + 1) & ix->mask) {
        if (ix->slot[h] == 0) {
            ix->slot[h] = idx + 1;
            return idx;
        }
        if (obj_key_equal(&kv[ix->slot[h] - 1].key, key)) {
            return ix->slot[h] - 1;
        }
    }
}

/*
 * A map as Java's LinkedHashMap would hold it: each key once, at its first position, with the
 * value of its last occurrence. Returns the map itself when it has no duplicate key.
 */
const msgpack_object *ev_map_dedupe(struct ectx *cx, const msgpack_object *map)
{
    uint32_t n = map->via.map.size;
    const msgpack_object_kv *kv = map->via.map.ptr;
    if (n < 2) {
        return map;
    }
    struct kindex ix;
    kindex_init(&ix, n);
    msgpack_object_kv *out = NULL;
    uint32_t *pos = NULL; /* output position of each key's first occurrence */
    struct ev v = ev_null();
    uint32_t m = 0;
    for (uint32_t i = 0; i < n && v.kind != EV_ERR; i++) {
        uint32_t first = kindex_put(&ix, &kv[i].key, kv, i);
        if (first != i && !out) { /* the first duplicate: copy what came before */
            if ((v = ev_new_map(cx, n, &out)).kind == EV_ERR) {
                break;
            }
            memcpy(out, kv, i * sizeof(*out));
            pos = xmalloc(n * sizeof(*pos));
            for (m = 0; m < i; m++) {
                pos[m] = m;
            }
        }
        if (out && first == i) {
            pos[i] = m;
            out[m++] = kv[i];
        } else if (out) {
            out[pos[first]].val = kv[i].val;
        }
    }
    xfree(ix.slot);
    xfree(pos);
    if (!out || v.kind == EV_ERR) {
        return map;
    }
    ((msgpack_object *)v.o)->via.map.size = m;
    return v.o;
}

/* ==== Kinds, numbers, equality ==== */

const char *ev_type_name(struct ev v)
{
    static const char *const NAMES[] = {"an error",   "null",       "a boolean",
                                        "an integer", "an integer", "a decimal",
                                        "a string",   "a list",     "a map"};
    return NAMES[v.kind];
}

double ev_num(struct ev v)
{
    switch (v.kind) {
    case EV_INT:
        return (double)v.i;
    case EV_UINT:
        return (double)v.u;
    case EV_FLOAT:
        return v.d;
    default:
        return 0;
    }
}

/* Numbers compare by value whatever their types (our policy; Pebble goes through doubles). */
int ev_cmp_num(struct ev a, struct ev b)
{
    if (a.kind == EV_INT && b.kind == EV_INT) {
        return a.i < b.i ? -1 : a.i > b.i;
    }
    if (a.kind == EV_UINT && b.kind == EV_UINT) {
        return a.u < b.u ? -1 : a.u > b.u;
    }
    if ((a.kind == EV_INT && b.kind == EV_UINT) || (a.kind == EV_UINT && b.kind == EV_INT)) {
        return a.kind == EV_INT ? -1 : 1; /* EV_UINT is above INT64_MAX */
    }
    double x = ev_num(a), y = ev_num(b);
    return x < y ? -1 : x > y ? 1 : 0;
}

static bool list_equal(const msgpack_object *a, const msgpack_object *b, int depth);
static bool map_equal(const msgpack_object *a, const msgpack_object *b, int depth);

static bool equal_at(struct ev a, struct ev b, int depth)
{
    if (depth > MAX_VALUE_DEPTH) {
        return false;
    }
    if (ev_is_num(a) && ev_is_num(b)) {
        return ev_cmp_num(a, b) == 0 && !(a.kind == EV_FLOAT && isnan(a.d)) &&
               !(b.kind == EV_FLOAT && isnan(b.d));
    }
    if (a.kind != b.kind) {
        return false;
    }
    switch (a.kind) {
    case EV_NULL:
        return true;
    case EV_BOOL:
        return a.b == b.b;
    case EV_STR:
        return a.len == b.len && (a.len == 0 || memcmp(a.s, b.s, a.len) == 0);
    case EV_LIST:
        return list_equal(a.o, b.o, depth + 1);
    case EV_MAP:
        return map_equal(a.o, b.o, depth + 1);
    default:
        return false;
    }
}

static bool list_equal(const msgpack_object *a, const msgpack_object *b, int depth)
{
    if (a->via.array.size != b->via.array.size) {
        return false;
    }
    for (uint32_t i = 0; i < a->via.array.size; i++) {
        if (!equal_at(ev_from_obj(&a->via.array.ptr[i]), ev_from_obj(&b->via.array.ptr[i]),
                      depth)) {
            return false;
        }
    }
    return true;
}

/* The value of the last entry whose key equals `key`, through an index of the map's keys. */
static const msgpack_object *indexed_get(const struct kindex *ix, const msgpack_object *map,
                                         const msgpack_object *key)
{
    const msgpack_object_kv *kv = map->via.map.ptr;
    for (uint32_t h = key_hash(key) & ix->mask; ix->slot[h]; h = (h + 1) & ix->mask) {
        if (obj_key_equal(&kv[ix->slot[h] - 1].key, key)) {
            return &kv[ix->slot[h] - 1].val;
        }
    }
    return NULL;
}

/* An index whose slots point at the last occurrence of each key. */
static void index_last(struct kindex *ix, const msgpack_object *map)
{
    const msgpack_object_kv *kv = map->via.map.ptr;
    kindex_init(ix, map->via.map.size);
    for (uint32_t i = 0; i < map->via.map.size; i++) {
        for (uint32_t h = key_hash(&kv[i].key) & ix->mask;; h = (h + 1) & ix->mask) {
            if (ix->slot[h] == 0 || obj_key_equal(&kv[ix->slot[h] - 1].key, &kv[i].key)) {
                ix->slot[h] = i + 1;
                break;
            }
        }
    }
}

/* Java Map.equals: same key set, equal values, order ignored. Duplicate keys: last one wins. */
static bool map_equal(const msgpack_object *a, const msgpack_object *b, int depth)
{
    struct kindex ia, ib;
    index_last(&ia, a);
    index_last(&ib, b);
    bool eq = true;
    for (int pass = 0; pass < 2 && eq; pass++) {
        const msgpack_object *x = pass ? b : a;
        for (uint32_t i = 0; i < x->via.map.size && eq; i++) {
            const msgpack_object *key = &x->via.map.ptr[i].key;
            const msgpack_object *av = indexed_get(&ia, a, key), *bv = indexed_get(&ib, b, key);
            eq = av && bv && (pass == 1 || equal_at(ev_from_obj(av), ev_from_obj(bv), depth));
        }
    }
    xfree(ia.slot);
    xfree(ib.slot);
    return eq;
}

bool ev_equal(struct ev a, struct ev b)
{
    return equal_at(a, b, 0);
}

/* ==== UTF-8, UTF-16 and case ==== */

uint32_t utf8_next(const char *s, size_t len, size_t *i)
{
    const unsigned char *u = (const unsigned char *)s + *i;
    size_t n = util_utf8_seq_len(u, len - *i);
    if (n == 0) {
        (*i)++;
        return 0xFFFD;
    }
    *i += n;
    switch (n) {
    case 1:
        return u[0];
    case 2:
        return ((uint32_t)(u[0] & 0x1F) << 6) | (u[1] & 0x3F);
    case 3:
        return ((uint32_t)(u[0] & 0x0F) << 12) | ((uint32_t)(u[1] & 0x3F) << 6) | (u[2] & 0x3F);
    default:
        return ((uint32_t)(u[0] & 0x07) << 18) | ((uint32_t)(u[1] & 0x3F) << 12) |
               ((uint32_t)(u[2] & 0x3F) << 6) | (u[3] & 0x3F);
    }
}

void utf8_put(struct sbuf *b, uint32_t cp)
{
    char t[4];
    size_t n;
    if (cp < 0x80) {
        t[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        t[0] = (char)(0xC0 | (cp >> 6));
        t[1] = (char)(0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) {
        t[0] = (char)(0xE0 | (cp >> 12));
        t[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        t[2] = (char)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        t[0] = (char)(0xF0 | (cp >> 18));
        t[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        t[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
        t[3] = (char)(0x80 | (cp & 0x3F));
        n = 4;
    }
    sbuf_append(b, t, n);
}

/* Java strings count UTF-16 code units: a character outside the BMP counts 2. */
size_t utf16_len(const char *s, size_t len)
{
    size_t n = 0, i = 0;
    while (i < len) {
        n += utf8_next(s, len, &i) >= 0x10000 ? 2 : 1;
    }
    return n;
}

/* String.compareTo: by UTF-16 code unit, so U+10000.. sorts below U+E000..U+FFFF. */
int utf16_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
    size_t i = 0, j = 0;
    while (i < alen && j < blen) {
        uint32_t x = utf8_next(a, alen, &i), y = utf8_next(b, blen, &j);
        if (x == y) {
            continue;
        }
        uint32_t ux = x >= 0x10000 ? 0xD800 + ((x - 0x10000) >> 10) : x;
        uint32_t uy = y >= 0x10000 ? 0xD800 + ((y - 0x10000) >> 10) : y;
        if (ux == uy) { /* same high surrogate: compare the low ones */
            ux = 0xDC00 + ((x - 0x10000) & 0x3FF);
            uy = 0xDC00 + ((y - 0x10000) & 0x3FF);
        }
        return ux < uy ? -1 : 1;
    }
    return (i < alen) - (j < blen);
}

/* Character.isWhitespace (used by String.isBlank). */
bool java_is_whitespace(uint32_t cp)
{
    if ((cp >= 0x09 && cp <= 0x0D) || (cp >= 0x1C && cp <= 0x20)) {
        return true;
    }
    return cp == 0x1680 || (cp >= 0x2000 && cp <= 0x2006) || (cp >= 0x2008 && cp <= 0x200A) ||
           cp == 0x2028 || cp == 0x2029 || cp == 0x205F || cp == 0x3000;
}

/*
 * Case mapping for the scripts flows meet most (Latin-1, Latin Extended-A, Greek, Cyrillic),
 * with Java's special case ß → SS. Other characters are left as they are.
 */
static uint32_t map_cp(uint32_t c, bool upper)
{
    if (c < 0x80) {
        if (upper && c >= 'a' && c <= 'z') {
            return c - 32;
        }
        return !upper && c >= 'A' && c <= 'Z' ? c + 32 : c;
    }
    if (upper) {
        if ((c >= 0xE0 && c <= 0xFE && c != 0xF7) || (c >= 0x3B1 && c <= 0x3CB && c != 0x3C2) ||
            (c >= 0x430 && c <= 0x44F)) {
            return c - 32;
        }
        if (c == 0xFF) {
            return 0x178;
        }
        if (c == 0xB5) {
            return 0x39C;
        }
        if (c == 0x3C2) {
            return 0x3A3;
        }
        if (c >= 0x450 && c <= 0x45F) {
            return c - 80;
        }
    } else {
        if ((c >= 0xC0 && c <= 0xDE && c != 0xD7) || (c >= 0x391 && c <= 0x3AB && c != 0x3A2) ||
            (c >= 0x410 && c <= 0x42F)) {
            return c + 32;
        }
        if (c == 0x178) {
            return 0xFF;
        }
        if (c >= 0x400 && c <= 0x40F) {
            return c + 80;
        }
    }
    /* Latin Extended-A and the Cyrillic supplements pair upper (even) with lower (odd) ... */
    bool even_pairs = (c >= 0x100 && c <= 0x137) || (c >= 0x14A && c <= 0x177) ||
                      (c >= 0x460 && c <= 0x481) || (c >= 0x48A && c <= 0x4BF) ||
                      (c >= 0x4D0 && c <= 0x52F);
    /* ... except where the pairs start on an odd code point. */
    bool odd_pairs =
        (c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17E) || (c >= 0x4C1 && c <= 0x4CE);
    if (even_pairs) {
        return upper ? (c & ~1u) : (c | 1u);
    }
    if (odd_pairs) {
        return upper ? ((c & 1u) ? c : c - 1) : ((c & 1u) ? c + 1 : c);
    }
    return c;
}

static size_t put_utf8(char *o, uint32_t cp)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xC0 | (cp >> 6));
        o[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    o[0] = (char)(0xE0 | (cp >> 12));
    o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
    o[2] = (char)(0x80 | (cp & 0x3F));
    return 3;
}

/*
 * Writes the mapped text of s into out and returns its length. Every mapping above keeps the
 * UTF-8 length or shortens it (ß → SS is two bytes for two), so out needs len bytes.
 */
size_t case_map(const char *s, size_t len, char *out, bool upper)
{
    size_t o = 0;
    for (size_t i = 0; i < len;) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x80) {
            out[o++] = (char)(upper ? (c >= 'a' && c <= 'z' ? c - 32 : c)
                                    : (c >= 'A' && c <= 'Z' ? c + 32 : c));
            i++;
            continue;
        }
        size_t start = i;
        uint32_t cp = utf8_next(s, len, &i);
        if (i - start >= 4 || (cp == 0xFFFD && i - start == 1)) {
            memcpy(out + o, s + start, i - start); /* outside the mapped ranges, or invalid */
            o += i - start;
        } else if (upper && cp == 0xDF) {
            out[o++] = 'S';
            out[o++] = 'S';
        } else {
            o += put_utf8(out + o, map_cp(cp, upper));
        }
    }
    return o;
}

/* ==== Truth, emptiness ==== */

/* TypeUtils.compatibleCast(v, Boolean): non-zero numbers and non-empty strings are true. */
struct ev ev_truth(struct ectx *cx, const struct node *n, struct ev v, const char *where)
{
    switch (v.kind) {
    case EV_ERR:
        return v;
    case EV_BOOL:
        return v;
    case EV_INT:
    case EV_UINT:
    case EV_FLOAT: {
        double d = ev_num(v);
        return ev_bool(!isnan(d) && d != 0);
    }
    case EV_STR:
        return ev_bool(v.len > 0);
    case EV_NULL:
        return ev_err(cx, false, "null value used in %s (%s)", where, node_text(cx, n));
    default:
        return ev_err(cx, false,
                      "%s cannot be used in %s (%s); expected a boolean, string or number",
                      ev_type_name(v), where, node_text(cx, n));
    }
}

/* Pebble's EmptyTest: null, "" and blank strings, empty lists and maps. */
bool ev_empty(struct ev v)
{
    switch (v.kind) {
    case EV_NULL:
        return true;
    case EV_STR:
        for (size_t i = 0; i < v.len; i++) {
            if ((unsigned char)v.s[i] > ' ') {
                return false;
            }
        }
        return true;
    case EV_LIST:
        return v.o->via.array.size == 0;
    case EV_MAP:
        return v.o->via.map.size == 0;
    default:
        return false;
    }
}
