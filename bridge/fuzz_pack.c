/*
 * fuzz_pack.c: libFuzzer target for pack.c. pack_body and pack_json must write exactly the bytes
 * the previous jsmn implementation (pack_oracle.c) writes; pack_body must append exactly one
 * msgpack value with all strings valid UTF-8 and nesting within PACK_MAX_DEPTH; raw valid UTF-8
 * must come back as it was; and its JSON verdict and values must match jansson's wherever the
 * two agree on JSON.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <msgpack.h>

#include "pack.h"
#include "pack_oracle.h"
#include "prune.h"
#include "util.h"

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_pack: check failed at line %d: %s\n", __LINE__, #cond);          \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static bool utf8_ok(const char *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        size_t k = util_utf8_seq_len((const unsigned char *)s + i, n - i);
        if (k == 0) {
            return false;
        }
        i += k;
    }
    return true;
}

/* The rules for what pack writes: the types it uses, valid strings, bounded nesting. */
static void check_value(const msgpack_object *o, int depth)
{
    switch (o->type) {
    case MSGPACK_OBJECT_STR:
        CHECK(utf8_ok(o->via.str.ptr, o->via.str.size));
        break;
    case MSGPACK_OBJECT_ARRAY:
        CHECK(depth < PACK_MAX_DEPTH);
        for (uint32_t i = 0; i < o->via.array.size; i++) {
            check_value(&o->via.array.ptr[i], depth + 1);
        }
        break;
    case MSGPACK_OBJECT_MAP:
        CHECK(depth < PACK_MAX_DEPTH);
        for (uint32_t i = 0; i < o->via.map.size; i++) {
            CHECK(o->via.map.ptr[i].key.type == MSGPACK_OBJECT_STR);
            check_value(&o->via.map.ptr[i].key, depth + 1);
            check_value(&o->via.map.ptr[i].val, depth + 1);
        }
        break;
    case MSGPACK_OBJECT_NIL:
    case MSGPACK_OBJECT_BOOLEAN:
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
    case MSGPACK_OBJECT_FLOAT64:
        break;
    default:
        CHECK(!"unexpected msgpack type");
    }
}

/* ==== Cross-check with jansson ==== */

static bool same(const msgpack_object *o, const json_t *j);

static bool same_map(const msgpack_object *o, const json_t *j)
{
    size_t distinct = 0;
    for (uint32_t i = 0; i < o->via.map.size; i++) {
        const msgpack_object_str *k = &o->via.map.ptr[i].key.via.str;
        bool later = false;
        for (uint32_t l = i + 1; l < o->via.map.size && !later; l++) {
            const msgpack_object_str *k2 = &o->via.map.ptr[l].key.via.str;
            later = k2->size == k->size && memcmp(k2->ptr, k->ptr, k->size) == 0;
        }
        if (later) {
            continue; /* jansson, like Jackson, keeps the last duplicate */
        }
        distinct++;
        /* msgpack-c gives an empty string a NULL pointer, which jansson refuses. */
        const json_t *v = json_object_getn(j, k->size ? k->ptr : "", k->size);
        if (!v || !same(&o->via.map.ptr[i].val, v)) {
            return false;
        }
    }
    return distinct == json_object_size(j);
}

static bool same(const msgpack_object *o, const json_t *j)
{
    switch (o->type) {
    case MSGPACK_OBJECT_NIL:
        return json_is_null(j);
    case MSGPACK_OBJECT_BOOLEAN:
        return json_is_boolean(j) && o->via.boolean == json_is_true(j);
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        return json_is_integer(j) && (uint64_t)json_integer_value(j) == o->via.u64;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        return json_is_integer(j) && json_integer_value(j) == o->via.i64;
    case MSGPACK_OBJECT_FLOAT64:
        return json_is_real(j) && json_real_value(j) == o->via.f64;
    case MSGPACK_OBJECT_STR:
        return json_is_string(j) && json_string_length(j) == o->via.str.size &&
               (o->via.str.size == 0 ||
                memcmp(json_string_value(j), o->via.str.ptr, o->via.str.size) == 0);
    case MSGPACK_OBJECT_ARRAY:
        if (!json_is_array(j) || json_array_size(j) != o->via.array.size) {
            return false;
        }
        for (uint32_t i = 0; i < o->via.array.size; i++) {
            if (!same(&o->via.array.ptr[i], json_array_get(j, i))) {
                return false;
            }
        }
        return true;
    case MSGPACK_OBJECT_MAP:
        return json_is_object(j) && same_map(o, j);
    default:
        return false;
    }
}

static int json_depth(json_t *j)
{
    int d = 0;
    if (json_is_array(j)) {
        for (size_t i = 0; i < json_array_size(j); i++) {
            int sub = json_depth(json_array_get(j, i));
            d = sub > d ? sub : d;
        }
        return d + 1;
    }
    if (json_is_object(j)) {
        for (void *it = json_object_iter(j); it; it = json_object_iter_next(j, it)) {
            int sub = json_depth(json_object_iter_value(it));
            d = sub > d ? sub : d;
        }
        return d + 1;
    }
    return 0;
}

/* A run of number characters longer than pack's limit (jansson has none). */
static bool long_number(const uint8_t *data, size_t size)
{
    size_t run = 0;
    for (size_t i = 0; i < size; i++) {
        run = strchr("0123456789.eE+-", data[i]) && data[i] ? run + 1 : 0;
        if (run > PACK_MAX_NUMBER_LEN) {
            return true;
        }
    }
    return false;
}

/* True when the whole input is valid UTF-8. */
static bool valid_utf8(const uint8_t *data, size_t size)
{
    for (size_t i = 0; i < size;) {
        size_t k = util_utf8_seq_len(data + i, size - i);
        if (k == 0) {
            return false;
        }
        i += k;
    }
    return true;
}

/*
 * Where jansson and Jackson (pack) differ on purpose: jansson rejects integers beyond 64 bits
 * and reals beyond double (Jackson: BigInteger, Infinity), lone surrogates (Jackson keeps them,
 * pack writes U+FFFD) and NUL in keys; pack refuses nesting and numbers past Jackson's limits.
 * And jansson's reader skips raw NUL bytes outside strings (it uses NUL as its own "refill"
 * mark), where Jackson and pack stop.
 */
static void cross_check(const uint8_t *data, size_t size, const msgpack_object *o, bool json)
{
    json_error_t err;
    json_t *j = json_loadb((const char *)data, size, JSON_DISABLE_EOF_CHECK | JSON_ALLOW_NUL, &err);
    if (json && !j) {
        enum json_error_code code = json_error_code(&err);
        CHECK(code == json_error_numeric_overflow || code == json_error_null_byte_in_key ||
              strncmp(err.text, "invalid Unicode", 15) == 0);
    } else if (!json && j) {
        CHECK(json_depth(j) > PACK_MAX_DEPTH || long_number(data, size) ||
              memchr(data, 0, size) != NULL);
    } else if (json && j) {
        CHECK(same(o, j));
    }
    json_decref(j);
}

/* ==== Cross-check with the oracle ==== */

/*
 * A buffer holding only the byte c0 with no spare room, so that every byte pack.c writes beyond
 * what it reserved lands outside the allocation, where AddressSanitizer sees it.
 */
static void tight_buffer(msgpack_sbuffer *sb)
{
    sb->data = xmalloc(1);
    sb->data[0] = '\xc0';
    sb->size = 1;
    sb->alloc = 1;
}

/* The same bytes after the c0 as the oracle, which starts from an ordinary buffer. */
static void same_as_oracle(const msgpack_sbuffer *sb, const msgpack_sbuffer *want)
{
    CHECK(sb->size == want->size);
    CHECK(memcmp(sb->data, want->data, want->size) == 0);
}

/* pack_json alone, on the bytes as they are (no repair): the same verdict and bytes. */
static void check_json(struct pack_parser *pp, struct pack_oracle *op, const uint8_t *data,
                       size_t size)
{
    msgpack_sbuffer sb, want;
    tight_buffer(&sb);
    msgpack_sbuffer_init(&want);
    msgpack_sbuffer_write(&want, "\xc0", 1);
    bool ok = pack_json(pp, (const char *)data, size, &sb);
    CHECK(ok == pack_oracle_json(op, (const char *)data, size, &want));
    same_as_oracle(&sb, &want);
    msgpack_sbuffer_destroy(&want);
    msgpack_sbuffer_destroy(&sb);
}

/* A pruned read of body[0..len) along p answers the same with the extents trusted as without. */
static void same_pruned(const struct prune_paths *p, const char *body, size_t len,
                        const struct byte_range *known, size_t n)
{
    msgpack_zone z1, z2;
    msgpack_object plain, fast;
    msgpack_zone_init(&z1, 1024);
    msgpack_zone_init(&z2, 1024);
    int rc1 = prune_unpack(p, NULL, 0, body, len, &z1, &plain);
    int rc2 = prune_unpack_known(p, NULL, 0, body, len, known, n, &z2, &fast);
    CHECK(rc1 == 0 && rc2 == 0);
    CHECK(msgpack_object_equal(plain, fast));
    msgpack_zone_destroy(&z1);
    msgpack_zone_destroy(&z2);
}

/*
 * pack_extents: each range holds exactly one map or array of what pack_body wrote (after the
 * byte before it), in opening order, one per container up to PACK_MAX_EXTENTS; and a pruned
 * read trusting them answers as one that does not, reading nothing or the first key's value.
 */
static void check_extents(const struct pack_parser *pp, const msgpack_sbuffer *sb,
                          const msgpack_object *o, size_t containers)
{
    static struct byte_range local[PACK_MAX_EXTENTS];
    size_t n;
    const struct byte_range *ext = pack_extents(pp, &n);
    CHECK(n == (containers < PACK_MAX_EXTENTS ? containers : PACK_MAX_EXTENTS));
    for (size_t k = 0; k < n; k++) {
        CHECK(ext[k].start >= 1 && ext[k].start < ext[k].end && ext[k].end <= sb->size);
        CHECK(k == 0 || ext[k - 1].start < ext[k].start);
        msgpack_zone z;
        msgpack_object v;
        size_t off = ext[k].start;
        msgpack_zone_init(&z, 256);
        CHECK(msgpack_unpack(sb->data, ext[k].end, &off, &z, &v) == MSGPACK_UNPACK_SUCCESS);
        CHECK(v.type == MSGPACK_OBJECT_MAP || v.type == MSGPACK_OBJECT_ARRAY);
        msgpack_zone_destroy(&z);
        local[k] = (struct byte_range){ext[k].start - 1, ext[k].end - 1};
    }
    struct prune_paths *none = prune_new();
    same_pruned(none, sb->data + 1, sb->size - 1, local, n);
    prune_free(none);
    if (o->type == MSGPACK_OBJECT_MAP && o->via.map.size > 0) {
        const msgpack_object_str *k = &o->via.map.ptr[0].key.via.str;
        struct prune_paths *first = prune_new();
        struct prune_paths *kid = prune_child(first, k->ptr, k->size);
        const msgpack_object *v = &o->via.map.ptr[0].val;
        if (v->type == MSGPACK_OBJECT_MAP && v->via.map.size > 0) {
            const msgpack_object_str *k2 = &v->via.map.ptr[0].key.via.str;
            kid = prune_child(kid, k2->ptr, k2->size);
        }
        prune_set_whole(kid);
        same_pruned(first, sb->data + 1, sb->size - 1, local, n);
        prune_free(first);
    }
}

static size_t count_containers(const msgpack_object *o)
{
    size_t c = 0;
    if (o->type == MSGPACK_OBJECT_ARRAY) {
        c = 1;
        for (uint32_t i = 0; i < o->via.array.size; i++) {
            c += count_containers(&o->via.array.ptr[i]);
        }
    } else if (o->type == MSGPACK_OBJECT_MAP) {
        c = 1;
        for (uint32_t i = 0; i < o->via.map.size; i++) {
            c += count_containers(&o->via.map.ptr[i].val);
        }
    }
    return c;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct pack_parser *pp;
    static struct pack_oracle *op;
    if (!pp) {
        pp = pack_parser_new();
        op = pack_oracle_new();
    }
    msgpack_sbuffer sb, want;
    tight_buffer(&sb); /* pack_body appends: this byte must survive */
    enum pack_body_kind kind = pack_body(pp, (const char *)data, size, &sb);
    CHECK(sb.data[0] == '\xc0');
    msgpack_sbuffer_init(&want);
    msgpack_sbuffer_write(&want, "\xc0", 1);
    CHECK(kind == pack_oracle_body(op, (const char *)data, size, &want));
    same_as_oracle(&sb, &want);
    msgpack_sbuffer_destroy(&want);

    msgpack_unpacked u;
    size_t off = 1;
    msgpack_unpacked_init(&u);
    CHECK(msgpack_unpack_next(&u, sb.data, sb.size, &off) == MSGPACK_UNPACK_SUCCESS);
    CHECK(off == sb.size);
    check_value(&u.data, 0);
    const msgpack_object *o = &u.data;
    check_extents(pp, &sb, o, count_containers(o)); /* before pack_json below replaces them */
    check_json(pp, op, data, size);
    switch (kind) {
    case PACK_BODY_OBJECT:
        CHECK(o->type == MSGPACK_OBJECT_MAP);
        break;
    case PACK_BODY_ARRAY:
        CHECK(o->type == MSGPACK_OBJECT_ARRAY);
        break;
    case PACK_BODY_STRING:
        CHECK(o->type == MSGPACK_OBJECT_STR);
        if (utf8_ok((const char *)data, size)) {
            CHECK(o->via.str.size == size);
            CHECK(size == 0 || memcmp(o->via.str.ptr, data, size) == 0);
        }
        break;
    }
    /* Invalid UTF-8 is repaired before parsing (as Kestra decodes the body first); jansson
     * rejects it instead, so only valid text is compared. */
    if (valid_utf8(data, size)) {
        cross_check(data, size, o, kind != PACK_BODY_STRING);
    }
    msgpack_unpacked_destroy(&u);
    msgpack_sbuffer_destroy(&sb);
    return 0;
}
