/*
 * prune.c: a trie of constant paths, and a pruned unpack that walks packed msgpack with a skip
 * cursor and hands only the values the paths reach to msgpack_unpack. No I/O; per call it
 * allocates only from the caller's zone.
 */
#include "prune.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>

/*
 * msgpack-c's unpacker fails (MSGPACK_UNPACK_NOMEM_ERROR) on a container below 32 open ones
 * (MSGPACK_EMBED_STACK_SIZE, not exported by <msgpack.h>). prune_unpack must fail exactly where
 * it does, so it counts the same way; prune_test.c checks both sides of the edge.
 */
#define MSGPACK_DEPTH 32

/* Pruned maps collect their matches here before they know how many there are. */
#define LOCAL_KVS 8

struct prune_kid {
    char *key;
    size_t len;
    struct prune_paths *node;
};

struct prune_paths {
    bool whole;
    struct prune_kid *kids;
    size_t nkids;
};

/* ==== Paths ==== */

struct prune_paths *prune_new(void)
{
    return xcalloc(1, sizeof(struct prune_paths));
}

static void drop_kids(struct prune_paths *p)
{
    for (size_t i = 0; i < p->nkids; i++) {
        prune_free(p->kids[i].node);
        xfree(p->kids[i].key);
    }
    xfree(p->kids);
    p->kids = NULL;
    p->nkids = 0;
}

void prune_free(struct prune_paths *p)
{
    if (!p) {
        return;
    }
    drop_kids(p);
    xfree(p);
}

static struct prune_paths *find_kid(const struct prune_paths *p, const char *key, size_t len)
{
    for (size_t i = 0; i < p->nkids; i++) {
        if (p->kids[i].len == len && (len == 0 || memcmp(p->kids[i].key, key, len) == 0)) {
            return p->kids[i].node;
        }
    }
    return NULL;
}

const struct prune_paths *prune_find(const struct prune_paths *p, const char *key, size_t len)
{
    return find_kid(p, key, len);
}

struct prune_paths *prune_child(struct prune_paths *p, const char *key, size_t len)
{
    if (p->whole) {
        return p;
    }
    struct prune_paths *kid = find_kid(p, key, len);
    if (kid) {
        return kid;
    }
    p->kids = xrealloc(p->kids, (p->nkids + 1) * sizeof(*p->kids));
    struct prune_kid *k = &p->kids[p->nkids++];
    k->key = xmalloc(len + 1);
    memcpy(k->key, key, len);
    k->key[len] = '\0';
    k->len = len;
    k->node = prune_new();
    return k->node;
}

void prune_set_whole(struct prune_paths *p)
{
    drop_kids(p);
    p->whole = true;
}

bool prune_is_whole(const struct prune_paths *p)
{
    return p->whole;
}

void prune_merge(struct prune_paths *dst, const struct prune_paths *src)
{
    if (dst->whole) {
        return;
    }
    if (src->whole) {
        prune_set_whole(dst);
        return;
    }
    for (size_t i = 0; i < src->nkids; i++) {
        prune_merge(prune_child(dst, src->kids[i].key, src->kids[i].len), src->kids[i].node);
    }
}

void prune_format(const struct prune_paths *p, struct sbuf *out)
{
    if (p->whole) {
        sbuf_append_cstr(out, "*");
        return;
    }
    sbuf_append_cstr(out, "{");
    for (size_t i = 0; i < p->nkids; i++) {
        sbuf_append_cstr(out, i ? "," : "");
        sbuf_append(out, p->kids[i].key, p->kids[i].len);
        sbuf_append_cstr(out, ":");
        prune_format(p->kids[i].node, out);
    }
    sbuf_append_cstr(out, "}");
}

/* ==== Skip cursor ==== */

enum item_kind { IT_SCALAR, IT_STR, IT_ARRAY, IT_MAP };

/* One msgpack header: a scalar with its payload, or a container with its entry count. */
struct item {
    enum item_kind kind;
    uint32_t n;      /* IT_ARRAY: elements; IT_MAP: pairs; IT_STR: bytes */
    const char *str; /* IT_STR: the bytes, borrowed from the input */
};

struct walk {
    const unsigned char *p;
    const unsigned char *end;
    msgpack_zone *zone;
    const char *const *prefix;
    size_t nprefix;
    /* The caller's trusted containers (prune_unpack_known), and the first not yet passed. */
    const unsigned char *base;
    const struct byte_range *known;
    size_t nknown;
    size_t next_known;
};

static uint32_t load_be(const unsigned char *s, size_t n)
{
    uint32_t v = 0;
    for (size_t i = 0; i < n; i++) {
        v = v << 8 | s[i];
    }
    return v;
}

/* The size of a variable-length value's length field (0: none) and its fixed payload bytes. */
static void header_shape(unsigned char b, size_t *lenlen, size_t *fixed, enum item_kind *kind)
{
    *lenlen = 0;
    *fixed = 0;
    *kind = IT_SCALAR;
    switch (b) {
    case 0xc4:
    case 0xc5:
    case 0xc6: /* bin 8/16/32 */
        *lenlen = (size_t)1 << (b - 0xc4);
        break;
    case 0xc7:
    case 0xc8:
    case 0xc9: /* ext 8/16/32: the type byte follows the length */
        *lenlen = (size_t)1 << (b - 0xc7);
        *fixed = 1;
        break;
    case 0xca: /* float 32 */
        *fixed = 4;
        break;
    case 0xcb: /* float 64 */
        *fixed = 8;
        break;
    case 0xcc:
    case 0xcd:
    case 0xce:
    case 0xcf: /* uint 8..64 */
        *fixed = (size_t)1 << (b - 0xcc);
        break;
    case 0xd0:
    case 0xd1:
    case 0xd2:
    case 0xd3: /* int 8..64 */
        *fixed = (size_t)1 << (b - 0xd0);
        break;
    case 0xd4:
    case 0xd5:
    case 0xd6:
    case 0xd7:
    case 0xd8: /* fixext 1..16 */
        *fixed = 1 + ((size_t)1 << (b - 0xd4));
        break;
    case 0xd9:
    case 0xda:
    case 0xdb: /* str 8/16/32 */
        *lenlen = (size_t)1 << (b - 0xd9);
        *kind = IT_STR;
        break;
    case 0xdc:
    case 0xdd: /* array 16/32 */
        *lenlen = (size_t)2 << (b - 0xdc);
        *kind = IT_ARRAY;
        break;
    case 0xde:
    case 0xdf: /* map 16/32 */
        *lenlen = (size_t)2 << (b - 0xde);
        *kind = IT_MAP;
        break;
    default: /* nil, false, true */
        break;
    }
}

/*
 * Reads the header at w->p, and a scalar's payload, advancing past them. False when the input
 * ends first or the byte is 0xc1 (never used), which is where msgpack_unpack fails too.
 */
static bool read_item(struct walk *w, struct item *it)
{
    if (w->p >= w->end) {
        return false;
    }
    unsigned char b = *w->p++;
    it->n = 0;
    if (b <= 0x7f || b >= 0xe0) {
        it->kind = IT_SCALAR;
        return true;
    }
    if (b <= 0x8f || (b >= 0x90 && b <= 0x9f)) {
        it->kind = b <= 0x8f ? IT_MAP : IT_ARRAY;
        it->n = b & 0x0f;
        return true;
    }
    if (b == 0xc1) {
        return false;
    }
    size_t lenlen = 0, fixed = 0, payload = 0;
    if (b >= 0xa0 && b <= 0xbf) {
        it->kind = IT_STR;
        payload = b & 0x1f;
    } else {
        header_shape(b, &lenlen, &fixed, &it->kind);
        if ((size_t)(w->end - w->p) < lenlen) {
            return false;
        }
        uint32_t n = load_be(w->p, lenlen);
        w->p += lenlen;
        if (it->kind == IT_ARRAY || it->kind == IT_MAP) {
            it->n = n;
            return true;
        }
        payload = fixed + n;
    }
    if ((size_t)(w->end - w->p) < payload) {
        return false;
    }
    it->str = (const char *)w->p;
    it->n = (uint32_t)(payload - fixed);
    w->p += payload;
    return true;
}

/*
 * Where the trusted container starting at p ends, or NULL when none starts there. The walk only
 * moves forward, and asks only at container headers, so one cursor serves the whole call.
 */
static const unsigned char *known_end(struct walk *w, const unsigned char *p)
{
    size_t at = (size_t)(p - w->base);
    while (w->next_known < w->nknown && w->known[w->next_known].start < at) {
        w->next_known++;
    }
    if (w->next_known == w->nknown || w->known[w->next_known].start != at) {
        return NULL;
    }
    const struct byte_range *r = &w->known[w->next_known++];
    /* A range past the input (a caller's bug) is not trusted: the walk reads it and fails. */
    if (r->end <= r->start || r->end > (size_t)(w->end - w->base)) {
        return NULL;
    }
    return w->base + r->end;
}

/*
 * Skips the value at w->p, which sits below `depth` open containers, checking it as
 * msgpack_unpack would (depth included), except that a trusted container (prune_unpack_known)
 * is jumped over whole once its own depth is checked. Iterative: a body may be deep, the stack
 * stays small. This walk is most of prune_unpack's cost when nothing is trusted (every byte of
 * the message is checked), so the headers JSON bodies are mostly made of (fixstr, fixint,
 * nil/bool, fix containers, str 8) take a short path with the cursor in a local; the rest goes
 * through read_item.
 */
static bool skip(struct walk *w, unsigned depth)
{
    uint64_t stack[MSGPACK_DEPTH];
    unsigned top = 0;
    uint64_t pending = 1;
    const unsigned char *p = w->p;
    const unsigned char *end = w->end;
    for (;;) {
        while (pending == 0) {
            if (top == 0) {
                w->p = p;
                return true;
            }
            pending = stack[--top];
        }
        if (p >= end) {
            return false;
        }
        const unsigned char *at = p;
        unsigned char b = *p;
        pending--;
        uint32_t n;
        bool map;
        if ((b & 0xe0) == 0xa0) {
            if ((size_t)(end - p) <= (size_t)(b & 0x1f)) {
                return false;
            }
            p += 1 + (b & 0x1f);
            continue;
        }
        if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3) {
            p++;
            continue;
        }
        if (b <= 0x9f) {
            p++;
            n = b & 0x0f;
            map = b <= 0x8f;
        } else if (b == 0xd9) {
            if (end - p < 2 || (size_t)(end - p - 2) < p[1]) {
                return false;
            }
            p += 2 + p[1];
            continue;
        } else {
            struct item it;
            w->p = p;
            if (!read_item(w, &it)) {
                return false;
            }
            p = w->p;
            if (it.kind != IT_ARRAY && it.kind != IT_MAP) {
                continue;
            }
            n = it.n;
            map = it.kind == IT_MAP;
        }
        if (depth + top >= MSGPACK_DEPTH) {
            return false;
        }
        const unsigned char *jump = w->nknown ? known_end(w, at) : NULL;
        if (jump) {
            p = jump;
            continue;
        }
        if (n > 0) {
            stack[top++] = pending;
            pending = map ? 2 * (uint64_t)n : n;
        }
    }
}

/* ==== Pruned unpack ==== */

/* Where the walk stands in the paths: along the prefix (level < nprefix), then at a node. */
struct view {
    const struct prune_paths *node;
    size_t level;
};

static bool view_whole(const struct walk *w, struct view v)
{
    return v.level >= w->nprefix && v.node->whole;
}

static bool view_kid(const struct walk *w, struct view v, const char *key, size_t len,
                     struct view *kid)
{
    if (v.level < w->nprefix) {
        const char *want = w->prefix[v.level];
        *kid = (struct view){v.node, v.level + 1};
        return strlen(want) == len && memcmp(want, key, len) == 0;
    }
    *kid = (struct view){find_kid(v.node, key, len), v.level};
    return kid->node != NULL;
}

/* The value [start, w->p) that skip() has just checked, unpacked whole into the zone. */
static int unpack_whole(struct walk *w, const unsigned char *start, msgpack_object *out)
{
    size_t off = 0;
    msgpack_unpack_return r =
        msgpack_unpack((const char *)start, (size_t)(w->p - start), &off, w->zone, out);
    if (r == MSGPACK_UNPACK_SUCCESS) {
        return 0;
    }
    return r == MSGPACK_UNPACK_NOMEM_ERROR ? -ENOMEM : -EBADMSG;
}

static int build(struct walk *w, struct view v, unsigned depth, msgpack_object *out);

/* Moves the matches out of the on-stack array into the zone, sized for what may still come. */
static msgpack_object_kv *zone_kvs(struct walk *w, const msgpack_object_kv *from, uint32_t count,
                                   uint32_t cap)
{
    msgpack_object_kv *kv = msgpack_zone_malloc(w->zone, (size_t)cap * sizeof(*kv));
    if (kv && count) {
        memcpy(kv, from, (size_t)count * sizeof(*kv));
    }
    return kv;
}

/*
 * A map of n pairs (its header read; it sits below `depth` containers) keeping only the pairs
 * whose string key the view has a child for. Every other key and value is skipped, so the
 * input is still checked to its end.
 */
static int build_map(struct walk *w, struct view v, unsigned depth, uint32_t n, msgpack_object *out)
{
    msgpack_object_kv local[LOCAL_KVS], *kv = local;
    uint32_t count = 0;
    for (uint32_t i = 0; i < n; i++) {
        const unsigned char *kstart = w->p;
        struct item key;
        struct view kid;
        if (!read_item(w, &key)) {
            return -EBADMSG;
        }
        if (key.kind != IT_STR || !view_kid(w, v, key.str, key.n, &kid)) {
            w->p = kstart;
            if (!skip(w, depth + 1) || !skip(w, depth + 1)) {
                return -EBADMSG;
            }
            continue;
        }
        if (count == LOCAL_KVS && kv == local &&
            !(kv = zone_kvs(w, local, count, count + (n - i)))) {
            return -ENOMEM;
        }
        msgpack_object_kv *e = &kv[count];
        e->key.type = MSGPACK_OBJECT_STR;
        e->key.via.str.ptr = key.str;
        e->key.via.str.size = key.n;
        int rc = build(w, kid, depth + 1, &e->val);
        if (rc < 0) {
            return rc;
        }
        count++;
    }
    if (kv == local && count > 0 && !(kv = zone_kvs(w, local, count, count))) {
        return -ENOMEM;
    }
    out->type = MSGPACK_OBJECT_MAP;
    out->via.map.size = count;
    out->via.map.ptr = count > 0 ? kv : NULL;
    return 0;
}

/* The value at w->p, below `depth` containers: pruned when it is a non-empty map on a path. */
static int build(struct walk *w, struct view v, unsigned depth, msgpack_object *out)
{
    const unsigned char *start = w->p;
    if (!view_whole(w, v) && depth < MSGPACK_DEPTH) {
        struct item it;
        if (read_item(w, &it) && it.kind == IT_MAP && it.n > 0) {
            return build_map(w, v, depth, it.n, out);
        }
        w->p = start;
    }
    if (!skip(w, depth)) {
        return -EBADMSG;
    }
    return unpack_whole(w, start, out);
}

int prune_unpack(const struct prune_paths *p, const char *const *prefix, size_t nprefix,
                 const char *data, size_t len, msgpack_zone *zone, msgpack_object *out)
{
    return prune_unpack_known(p, prefix, nprefix, data, len, NULL, 0, zone, out);
}

int prune_unpack_known(const struct prune_paths *p, const char *const *prefix, size_t nprefix,
                       const char *data, size_t len, const struct byte_range *known,
                       size_t nknown, msgpack_zone *zone, msgpack_object *out)
{
    struct walk w = {
        .p = (const unsigned char *)data,
        .end = (const unsigned char *)data + len,
        .zone = zone,
        .prefix = prefix,
        .nprefix = nprefix,
        .base = (const unsigned char *)data,
        .known = known,
        .nknown = nknown,
    };
    int rc = build(&w, (struct view){p, 0}, 0, out);
    if (rc == 0 && w.p != w.end) {
        rc = -EBADMSG; /* msgpack_unpack's MSGPACK_UNPACK_EXTRA_BYTES */
    }
    return rc;
}
