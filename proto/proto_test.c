/*
 * proto_test.c: cmocka tests for the codec: golden bytes, round trips, truncated, corrupted and
 * hostile input, every shape rule of SPEC.md, and encode's argument checks.
 * Runs with the working directory set to proto/ (it opens testdata/).
 */
#include "proto.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* ==== Fixtures: the inputs of the golden vectors (keep in step with golden.py) ==== */

static void pk_str(msgpack_packer *pk, const char *s)
{
    size_t n = strlen(s);

    assert_int_equal(msgpack_pack_str(pk, n), 0);
    assert_int_equal(msgpack_pack_str_body(pk, s, n), 0);
}

/* Packs a map of str → array of str from {name, value..., NULL, name, ..., NULL, NULL}. */
static void pk_strmap(msgpack_packer *pk, const char *const *spec)
{
    size_t n = 0;

    for (const char *const *p = spec; *p != NULL; p++, n++) {
        while (*++p != NULL) {
        }
    }
    msgpack_pack_map(pk, n);
    for (const char *const *p = spec; *p != NULL; p++) {
        const char *const *v = p + 1;
        size_t count = 0;
        while (v[count] != NULL) {
            count++;
        }
        pk_str(pk, *p);
        msgpack_pack_array(pk, count);
        for (size_t i = 0; i < count; i++) {
            pk_str(pk, v[i]);
        }
        p = v + count;
    }
}

/* clang-format off */
static void headers_object(msgpack_packer *pk)
{
    static const char *const spec[] = {
        "Host", "bridge.example.com", NULL, "Content-Type", "application/json", NULL,
        "X-Tag", "a", "b", NULL, "x-tag", "c", NULL, "User-Agent", "curl/8.5.0", NULL, NULL,
    };
    pk_strmap(pk, spec);
}
/* clang-format on */

static void params_object(msgpack_packer *pk)
{
    static const char *const spec[] = {
        "age", "12", "13", NULL, "flag", "", NULL, "name", "Zo\u00eb", NULL, NULL,
    };
    pk_strmap(pk, spec);
}

static void body_nested(msgpack_packer *pk)
{
    msgpack_pack_map(pk, 2);
    pk_str(pk, "empty");
    msgpack_pack_map(pk, 0);
    pk_str(pk, "list");
    msgpack_pack_array(pk, 0);
}

static void body_object(msgpack_packer *pk)
{
    msgpack_pack_map(pk, 17);
    pk_str(pk, "ref"), pk_str(pk, "refs/heads/main");
    pk_str(pk, "size"), msgpack_pack_int64(pk, 3);
    pk_str(pk, "neg"), msgpack_pack_int64(pk, -42);
    pk_str(pk, "max"), msgpack_pack_uint64(pk, UINT64_MAX);
    pk_str(pk, "min"), msgpack_pack_int64(pk, INT64_MIN);
    pk_str(pk, "huge"), msgpack_pack_double(pk, 1e20);
    pk_str(pk, "pi"), msgpack_pack_double(pk, 3.25);
    pk_str(pk, "tenth"), msgpack_pack_double(pk, 0.1);
    pk_str(pk, "nothing"), msgpack_pack_nil(pk);
    pk_str(pk, "ok"), msgpack_pack_true(pk);
    pk_str(pk, "no"), msgpack_pack_false(pk);
    pk_str(pk, "tags"), msgpack_pack_array(pk, 2), pk_str(pk, "a"), pk_str(pk, "b");
    pk_str(pk, "dup"), msgpack_pack_int64(pk, 1);
    pk_str(pk, "dup"), msgpack_pack_int64(pk, 2);
    pk_str(pk, "name"), pk_str(pk, "Zo\u00eb \u2014 \u65e5\u672c \U0001F389");
    pk_str(pk, "esc"), pk_str(pk, "q\"b\\n\nt\t\x01");
    pk_str(pk, "nested"), body_nested(pk);
}

static void headers_array(msgpack_packer *pk)
{
    static const char *const spec[] = {
        "Content-Type", "application/json", NULL, "Content-Length", "41", NULL, NULL,
    };
    pk_strmap(pk, spec);
}

static void empty_map(msgpack_packer *pk)
{
    msgpack_pack_map(pk, 0);
}

static void body_array(msgpack_packer *pk)
{
    msgpack_pack_array(pk, 7);
    msgpack_pack_int64(pk, 1);
    pk_str(pk, "two");
    msgpack_pack_map(pk, 1), pk_str(pk, "three"), msgpack_pack_double(pk, 3.0);
    msgpack_pack_array(pk, 0);
    msgpack_pack_nil(pk);
    msgpack_pack_false(pk);
    msgpack_pack_double(pk, -1.5e-07);
}

/* clang-format off */
static void headers_string(msgpack_packer *pk)
{
    static const char *const spec[] = {
        "Content-Type", "application/x-www-form-urlencoded", NULL, NULL,
    };
    pk_strmap(pk, spec);
}
/* clang-format on */

static void params_string(msgpack_packer *pk)
{
    static const char *const spec[] = {"q", "a b", NULL, NULL};
    pk_strmap(pk, spec);
}

static void body_string(msgpack_packer *pk)
{
    pk_str(pk, "a=1&b=caf\u00e9&bad=\uFFFD");
}

/* clang-format off */
static void headers_none(msgpack_packer *pk)
{
    static const char *const spec[] = {
        "Host", "localhost:8080", NULL, "Accept", "*/*", NULL, "X-Multi", "1", "2", "3", NULL,
        NULL,
    };
    pk_strmap(pk, spec);
}
/* clang-format on */

static void params_none(msgpack_packer *pk)
{
    static const char *const spec[] = {"flag", "", NULL, "id", "7", NULL, NULL};
    pk_strmap(pk, spec);
}

static void headers_large(msgpack_packer *pk)
{
    char name[16], value[16];

    msgpack_pack_map(pk, 17);
    for (int i = 0; i < 17; i++) {
        snprintf(name, sizeof(name), "X-H%02d", i);
        snprintf(value, sizeof(value), "v%d", i);
        pk_str(pk, name);
        msgpack_pack_array(pk, 1);
        pk_str(pk, value);
    }
}

static void params_large(msgpack_packer *pk)
{
    msgpack_pack_map(pk, 1);
    pk_str(pk, "p");
    msgpack_pack_array(pk, 1);
    pk_str(pk, "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
}

static void body_large(msgpack_packer *pk)
{
    char key[16], text[301] = "";

    msgpack_pack_map(pk, 18);
    for (int i = 0; i < 17; i++) {
        snprintf(key, sizeof(key), "k%02d", i);
        pk_str(pk, key);
        msgpack_pack_int64(pk, i * 1000);
    }
    for (int i = 0; i < 30; i++) {
        strcat(text, "abcdefghij");
    }
    pk_str(pk, "long");
    pk_str(pk, text);
}

typedef void pack_fn(msgpack_packer *pk);

struct vector {
    const char *name;
    const char *id, *ns, *flow, *received, *method, *path, *remote, *trigger_id;
    pack_fn *headers, *parameters, *body; /* body NULL: no body */
    msgpack_object_type body_type;
};

/* clang-format off */
static const struct vector vectors[] = {
    {"object_body", "4wjtEiJZgcJ8jQ7ZAH8Gtq", "company.team", "github-push",
     "2026-11-27T14:20:19.123Z", "POST",
     "/api/v1/main/executions/webhook/company.team/github-push/********", "203.0.113.7",
     "on-push", headers_object, params_object, body_object, MSGPACK_OBJECT_MAP},
    {"array_body", "0000000000000000000001", "ops", "batch-import", "2024-02-29T23:59:59.999Z",
     "PUT", "/api/v1/executions/webhook/ops/batch-import/********", "2001:db8::1", "import",
     headers_array, empty_map, body_array, MSGPACK_OBJECT_ARRAY},
    {"string_body", "zzzzzzzzzzzzzzzzzzzzzz", "shop.payments", "stripe-event",
     "2026-01-01T00:00:00.000Z", "POST",
     "/api/v1/main/executions/webhook/shop.payments/stripe-event/********", "198.51.100.23",
     "stripe", headers_string, params_string, body_string, MSGPACK_OBJECT_STR},
    {"no_body", "7NC8AzqXGdmPnx3rwQcY2b", "company.team", "ping", "2026-11-27T09:05:00.001Z",
     "GET", "/api/v1/main/executions/webhook/company.team/ping/********", "127.0.0.1", "ping",
     headers_none, params_none, NULL, MSGPACK_OBJECT_NIL},
    {"large_maps", "1Pq2Rs3Tu4Vw5Xy6Za7Bc8", "company.team.with.a.rather.long.namespace", "big",
     "2026-11-27T14:20:19.000Z", "POST",
     "/api/v1/main/executions/webhook/company.team.with.a.rather.long.namespace/big/********",
     "10.0.0.1", "big", headers_large, params_large, body_large, MSGPACK_OBJECT_MAP},
};
/* clang-format on */

struct fixture {
    struct proto_msg m;
    msgpack_sbuffer headers, parameters, body;
};

static struct proto_str cstr(const char *s)
{
    return (struct proto_str){s, strlen(s)};
}

static struct proto_str pack_into(msgpack_sbuffer *sb, pack_fn *fn)
{
    msgpack_packer pk;

    msgpack_sbuffer_init(sb);
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    fn(&pk);
    return (struct proto_str){sb->data, sb->size};
}

static void fixture_init(struct fixture *fx, const struct vector *v)
{
    memset(fx, 0, sizeof(*fx));
    fx->m.id = cstr(v->id);
    fx->m.tenant_id = cstr("main");
    fx->m.ns = cstr(v->ns);
    fx->m.flow_id = cstr(v->flow);
    fx->m.received_at = cstr(v->received);
    fx->m.method = cstr(v->method);
    fx->m.path = cstr(v->path);
    fx->m.remote_addr = cstr(v->remote);
    fx->m.trigger_id = cstr(v->trigger_id);
    fx->m.trigger_type = cstr(PROTO_TRIGGER_TYPE);
    fx->m.headers = pack_into(&fx->headers, v->headers);
    fx->m.parameters = pack_into(&fx->parameters, v->parameters);
    msgpack_sbuffer_init(&fx->body);
    if (v->body != NULL) {
        fx->m.body = pack_into(&fx->body, v->body);
    }
}

static void fixture_deinit(struct fixture *fx)
{
    msgpack_sbuffer_destroy(&fx->headers);
    msgpack_sbuffer_destroy(&fx->parameters);
    msgpack_sbuffer_destroy(&fx->body);
}

/* ==== Helpers ==== */

static const size_t msg_strs[] = {
    offsetof(struct proto_msg, id),          offsetof(struct proto_msg, tenant_id),
    offsetof(struct proto_msg, ns),          offsetof(struct proto_msg, flow_id),
    offsetof(struct proto_msg, received_at), offsetof(struct proto_msg, method),
    offsetof(struct proto_msg, path),        offsetof(struct proto_msg, remote_addr),
    offsetof(struct proto_msg, trigger_id),  offsetof(struct proto_msg, trigger_type),
    offsetof(struct proto_msg, headers),     offsetof(struct proto_msg, parameters),
    offsetof(struct proto_msg, body),
};

static void assert_msg_equal(const struct proto_msg *a, const struct proto_msg *b)
{
    for (size_t i = 0; i < ARRAY_SIZE(msg_strs); i++) {
        const struct proto_str *x = (const void *)((const char *)a + msg_strs[i]);
        const struct proto_str *y = (const void *)((const char *)b + msg_strs[i]);
        assert_int_equal(x->ptr == NULL, y->ptr == NULL);
        assert_int_equal(x->len, y->len);
        if (x->len > 0) {
            assert_memory_equal(x->ptr, y->ptr, x->len);
        }
    }
}

static void read_file(const char *path, char **buf, size_t *len)
{
    FILE *f = fopen(path, "rb");
    long size;

    assert_non_null(f);
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    size = ftell(f);
    assert_true(size > 0);
    rewind(f);
    *buf = malloc((size_t)size);
    assert_non_null(*buf);
    assert_int_equal(fread(*buf, 1, (size_t)size, f), (size_t)size);
    *len = (size_t)size;
    fclose(f);
}

static void read_vector(const struct vector *v, char **buf, size_t *len)
{
    char path[256];

    snprintf(path, sizeof(path), "testdata/%s.msgpack", v->name);
    read_file(path, buf, len);
}

/* Decodes from an exactly sized heap copy, so that AddressSanitizer sees any read past the end. */
static int decode_copy(const void *buf, size_t len, struct proto_decoded *d, char **copy)
{
    *copy = malloc(len ? len : 1);
    assert_non_null(*copy);
    if (len > 0) {
        memcpy(*copy, buf, len);
    }
    return proto_decode(*copy, len, d);
}

static int decode_rc(const void *buf, size_t len)
{
    struct proto_decoded d;
    char *copy;
    int rc = decode_copy(buf, len, &d, &copy);

    proto_decoded_deinit(&d);
    free(copy);
    return rc;
}

/* ==== Golden vectors and round trips ==== */

static void test_golden_bytes(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_SIZE(vectors); i++) {
        struct fixture fx;
        msgpack_sbuffer sb;
        char *want;
        size_t want_len;

        fixture_init(&fx, &vectors[i]);
        msgpack_sbuffer_init(&sb);
        read_vector(&vectors[i], &want, &want_len);
        assert_int_equal(proto_encode(&fx.m, &sb), PROTO_OK);
        print_message("%s: %zu bytes\n", vectors[i].name, sb.size);
        assert_int_equal(sb.size, want_len);
        assert_memory_equal(sb.data, want, want_len);
        free(want);
        msgpack_sbuffer_destroy(&sb);
        fixture_deinit(&fx);
    }
}

static bool inside(const void *p, const char *buf, size_t len)
{
    return (const char *)p >= buf && (const char *)p <= buf + len;
}

static void check_views(const struct proto_decoded *d, const struct vector *v, const char *buf,
                        size_t len)
{
    assert_int_equal(d->format_version, PROTO_FORMAT_VERSION);
    assert_int_equal(d->root.type, MSGPACK_OBJECT_MAP);
    assert_int_equal(d->root.via.map.size, 8);
    assert_int_equal(d->headers.type, MSGPACK_OBJECT_MAP);
    assert_int_equal(d->parameters.type, MSGPACK_OBJECT_MAP);
    assert_int_equal(d->body.type, v->body_type);
    assert_int_equal(d->has_body, v->body != NULL);
    assert_int_equal(d->m.body.ptr != NULL, v->body != NULL);
    assert_true(inside(d->m.id.ptr, buf, len));
    assert_true(inside(d->m.headers.ptr, buf, len));
    assert_true(inside(d->m.headers.ptr + d->m.headers.len, buf, len));
    if (d->headers.via.map.size > 0) {
        assert_true(inside(d->headers.via.map.ptr[0].key.via.str.ptr, buf, len));
    }
}

static void test_golden_decode(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_SIZE(vectors); i++) {
        struct fixture fx;
        struct proto_decoded d;
        char *buf;
        size_t len;

        fixture_init(&fx, &vectors[i]);
        read_vector(&vectors[i], &buf, &len);
        assert_int_equal(proto_decode(buf, len, &d), PROTO_OK);
        assert_msg_equal(&d.m, &fx.m);
        check_views(&d, &vectors[i], buf, len);
        proto_decoded_deinit(&d);
        free(buf);
        fixture_deinit(&fx);
    }
}

static void test_round_trip(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_SIZE(vectors); i++) {
        struct fixture fx;
        struct proto_decoded d;
        msgpack_sbuffer sb, again;

        fixture_init(&fx, &vectors[i]);
        msgpack_sbuffer_init(&sb);
        msgpack_sbuffer_init(&again);
        assert_int_equal(proto_encode(&fx.m, &sb), PROTO_OK);
        assert_int_equal(proto_decode(sb.data, sb.size, &d), PROTO_OK);
        assert_msg_equal(&d.m, &fx.m);
        assert_int_equal(proto_encode(&d.m, &again), PROTO_OK);
        assert_int_equal(again.size, sb.size);
        assert_memory_equal(again.data, sb.data, sb.size);
        proto_decoded_deinit(&d);
        msgpack_sbuffer_destroy(&again);
        msgpack_sbuffer_destroy(&sb);
        fixture_deinit(&fx);
    }
}

/* The producer's path: proto_encode_head, then the body packed straight into the same buffer. */
static void test_encode_head(void **state)
{
    static const char body_key[] = {(char)0xa4, 'b', 'o', 'd', 'y'};

    (void)state;
    for (size_t i = 0; i < ARRAY_SIZE(vectors); i++) {
        const struct vector *v = &vectors[i];
        struct fixture fx;
        msgpack_sbuffer whole, head;
        msgpack_packer pk;

        fixture_init(&fx, v);
        msgpack_sbuffer_init(&whole);
        msgpack_sbuffer_init(&head);
        msgpack_packer_init(&pk, &head, msgpack_sbuffer_write);
        assert_int_equal(proto_encode(&fx.m, &whole), PROTO_OK);
        assert_int_equal(proto_encode_head(&fx.m, v->body != NULL, &pk), PROTO_OK);
        if (v->body != NULL) {
            /* It ends with the key "body": the last bytes are a fixstr "body". */
            assert_memory_equal(head.data + head.size - 5, body_key, sizeof(body_key));
            v->body(&pk);
        }
        assert_int_equal(head.size, whole.size);
        assert_memory_equal(head.data, whole.data, whole.size);
        msgpack_sbuffer_destroy(&head);
        msgpack_sbuffer_destroy(&whole);
        fixture_deinit(&fx);
    }
}

/* ==== Truncated, corrupted and hostile input ==== */

static void test_truncations(void **state)
{
    (void)state;
    assert_int_equal(decode_rc(NULL, 0), PROTO_ETRUNC);
    for (size_t i = 0; i < ARRAY_SIZE(vectors); i++) {
        char *buf;
        size_t len, used;

        read_vector(&vectors[i], &buf, &len);
        for (size_t n = 0; n < len; n++) {
            assert_int_equal(decode_rc(buf, n), PROTO_ETRUNC);
            assert_int_equal(proto_value_len(buf, n, &used), PROTO_ETRUNC);
        }
        free(buf);
    }
}

/* A corrupted message that still decodes must survive a re-encode unchanged. */
static void check_reencode(const struct proto_decoded *d)
{
    struct proto_decoded again;
    msgpack_sbuffer sb;

    msgpack_sbuffer_init(&sb);
    assert_int_equal(proto_encode(&d->m, &sb), PROTO_OK);
    assert_int_equal(proto_decode(sb.data, sb.size, &again), PROTO_OK);
    assert_msg_equal(&again.m, &d->m);
    proto_decoded_deinit(&again);
    msgpack_sbuffer_destroy(&sb);
}

static void corrupt_one(char *buf, size_t len, size_t *failed, size_t *passed)
{
    static const unsigned char values[] = {0x00, 0x7f, 0x80, 0x90, 0xa0, 0xc1, 0xcf, 0xdd, 0xff};

    for (size_t pos = 0; pos < len; pos++) {
        char saved = buf[pos];
        for (size_t k = 0; k <= ARRAY_SIZE(values); k++) {
            struct proto_decoded d;
            char *copy;
            buf[pos] = (char)(k < ARRAY_SIZE(values) ? values[k] : saved ^ 0x01);
            int rc = decode_copy(buf, len, &d, &copy);
            assert_true(rc <= 0 && rc >= PROTO_ENOMEM);
            if (rc == PROTO_OK) {
                check_reencode(&d);
                (*passed)++;
            } else {
                (*failed)++;
            }
            proto_decoded_deinit(&d);
            free(copy);
        }
        buf[pos] = saved;
    }
}

static void test_corrupted_bytes(void **state)
{
    size_t failed = 0, passed = 0;

    (void)state;
    for (size_t i = 0; i < ARRAY_SIZE(vectors); i++) {
        char *buf;
        size_t len;

        read_vector(&vectors[i], &buf, &len);
        corrupt_one(buf, len, &failed, &passed);
        free(buf);
    }
    print_message("corrupted inputs: %zu rejected, %zu still valid\n", failed, passed);
    assert_true(failed > 0 && passed > 0);
}

struct raw_case {
    const char *what;
    const char *bytes;
    size_t len;
    int want;
};

/* clang-format off */
#define RAW(what_, bytes_, want_) {what_, bytes_, sizeof(bytes_) - 1, want_}

/* Headers that claim more than the input holds must fail before anything is allocated. */
static const struct raw_case raw_cases[] = {
    RAW("reserved byte", "\xc1", PROTO_EMSGPACK),
    RAW("array32 of 4G", "\xdd\xff\xff\xff\xff", PROTO_ETRUNC),
    RAW("map32 of 4G", "\xdf\xff\xff\xff\xff", PROTO_ETRUNC),
    RAW("str32 of 4G", "\xdb\xff\xff\xff\xff", PROTO_ETRUNC),
    RAW("bin32 of 4G", "\xc6\xff\xff\xff\xff", PROTO_ETRUNC),
    RAW("ext32 of 4G", "\xc9\xff\xff\xff\xff\x01", PROTO_ETRUNC),
    RAW("map16 of 2 entries, 3 bytes", "\xde\x00\x02\xa1x\x01", PROTO_ETRUNC),
    RAW("fixext16 cut", "\xd8\x01\x00", PROTO_ETRUNC),
    RAW("float64 cut", "\xcb\x00\x00", PROTO_ETRUNC),
    RAW("uint64 cut", "\xcf\x00", PROTO_ETRUNC),
    RAW("root is an array", "\x91\x01", PROTO_ESHAPE),
    RAW("root is a str", "\xa1x", PROTO_ESHAPE),
    RAW("root is nil", "\xc0", PROTO_ESHAPE),
    RAW("empty map", "\x80", PROTO_ESHAPE),
    RAW("only the version", "\x81\xad" "formatVersion\x01", PROTO_ESHAPE),
    RAW("newer version alone", "\x81\xad" "formatVersion\x02", PROTO_EVERSION),
    RAW("version under a non-str key", "\x82\x01\x02\xad" "formatVersion\x07", PROTO_EVERSION),
    RAW("two values", "\x80\x80", PROTO_ETRAILING),
    RAW("bad byte after a value", "\x80\xc1", PROTO_ETRAILING),
    RAW("invalid UTF-8 key", "\x81\xa1\xff\x01", PROTO_ESHAPE),
};
/* clang-format on */

static void test_raw_inputs(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_SIZE(raw_cases); i++) {
        const struct raw_case *c = &raw_cases[i];
        print_message("%s\n", c->what);
        assert_int_equal(decode_rc(c->bytes, c->len), c->want);
    }
}

static void test_trailing_bytes(void **state)
{
    char *buf, *two;
    size_t len, used = 0;

    (void)state;
    read_vector(&vectors[0], &buf, &len);
    two = malloc(2 * len);
    assert_non_null(two);
    memcpy(two, buf, len);
    memcpy(two + len, buf, len);
    assert_int_equal(decode_rc(two, len + 1), PROTO_ETRAILING);
    assert_int_equal(decode_rc(two, 2 * len), PROTO_ETRAILING);
    assert_int_equal(proto_value_len(two, 2 * len, &used), PROTO_OK);
    assert_int_equal(used, len);
    two[len] = (char)0xc1;
    assert_int_equal(decode_rc(two, len + 1), PROTO_ETRAILING);
    assert_int_equal(proto_value_len(two + len, 1, &used), PROTO_EMSGPACK);
    free(two);
    free(buf);
}

/* ==== Shape rules: a message writer with mutations ==== */

/*
 * The message of vector object_body as a tree, written back with up to two mutations: drop an
 * entry, duplicate it, replace its value, give it an int key, move it last in its map, or add an
 * unknown sibling after it. Paths name entries as "trigger.variables.body".
 */
enum mut_op { MUT_NONE, MUT_DROP, MUT_DUP, MUT_SET, MUT_STR, MUT_KEYINT, MUT_LAST, MUT_ADD };

struct mutation {
    const char *path;
    enum mut_op op;
    const char *raw; /* MUT_SET: value bytes; MUT_STR: text */
    size_t len;
};

struct node {
    const char *key;
    struct proto_str str; /* a str value, or raw bytes when raw is set */
    bool raw;
    const struct node *kids;
    size_t nkids;
};

struct tree {
    struct node root[8], request[3], trigger[3], variables[3];
};

/* clang-format off */
#define STR_NODE(k, s) {k, s, false, NULL, 0}
#define RAW_NODE(k, s) {k, s, true, NULL, 0}
#define MAP_NODE(k, a) {k, {NULL, 0}, false, a, ARRAY_SIZE(a)}
/* clang-format on */

/* clang-format off */
static void tree_init(struct tree *t, const struct proto_msg *m)
{
    const struct node root[8] = {
        RAW_NODE("formatVersion", cstr("\x01")), STR_NODE("id", m->id),
        STR_NODE("tenantId", m->tenant_id),   STR_NODE("namespace", m->ns),
        STR_NODE("flowId", m->flow_id),       STR_NODE("receivedAt", m->received_at),
        MAP_NODE("request", t->request),      MAP_NODE("trigger", t->trigger),
    };
    const struct node request[3] = {
        STR_NODE("method", m->method), STR_NODE("path", m->path),
        STR_NODE("remoteAddress", m->remote_addr),
    };
    const struct node trigger[3] = {
        STR_NODE("id", m->trigger_id), STR_NODE("type", m->trigger_type),
        MAP_NODE("variables", t->variables),
    };
    const struct node variables[3] = {
        RAW_NODE("headers", m->headers), RAW_NODE("parameters", m->parameters),
        RAW_NODE("body", m->body),
    };
    memcpy(t->root, root, sizeof(root));
    memcpy(t->request, request, sizeof(request));
    memcpy(t->trigger, trigger, sizeof(trigger));
    memcpy(t->variables, variables, sizeof(variables));
}
/* clang-format on */

static const struct mutation *find_mut(const struct mutation *mu, const char *path)
{
    for (size_t i = 0; i < 2; i++) {
        if (mu[i].path != NULL && strcmp(mu[i].path, path) == 0) {
            return &mu[i];
        }
    }
    return NULL;
}

static void write_map(msgpack_packer *pk, const struct node *kids, size_t n, const char *prefix,
                      const struct mutation *mu);

static void write_value(msgpack_packer *pk, const struct node *nd, const char *path,
                        const struct mutation *mu, const struct mutation *mine)
{
    if (mine != NULL && mine->op == MUT_SET) {
        pk->callback(pk->data, mine->raw, mine->len);
    } else if (mine != NULL && mine->op == MUT_STR) {
        msgpack_pack_str(pk, mine->len);
        msgpack_pack_str_body(pk, mine->raw, mine->len);
    } else if (nd->kids != NULL) {
        write_map(pk, nd->kids, nd->nkids, path, mu);
    } else if (nd->raw) {
        pk->callback(pk->data, nd->str.ptr, nd->str.len);
    } else {
        msgpack_pack_str(pk, nd->str.len);
        msgpack_pack_str_body(pk, nd->str.ptr, nd->str.len);
    }
}

static void write_entry(msgpack_packer *pk, const struct node *nd, const char *path,
                        const struct mutation *mu)
{
    const struct mutation *mine = find_mut(mu, path);

    if (mine != NULL && mine->op == MUT_KEYINT) {
        msgpack_pack_int(pk, 7);
    } else {
        pk_str(pk, nd->key);
    }
    write_value(pk, nd, path, mu, mine);
    if (mine != NULL && mine->op == MUT_DUP) {
        pk_str(pk, nd->key);
        write_value(pk, nd, path, mu, mine);
    }
    if (mine != NULL && mine->op == MUT_ADD) {
        pk_str(pk, "x-unknown");
        msgpack_pack_map(pk, 1), pk_str(pk, "list"), msgpack_pack_array(pk, 1);
        msgpack_pack_int(pk, 1);
    }
}

static void write_map(msgpack_packer *pk, const struct node *kids, size_t n, const char *prefix,
                      const struct mutation *mu)
{
    char paths[8][64];
    const struct mutation *muts[8];
    size_t count = n, last = n;

    for (size_t i = 0; i < n; i++) {
        snprintf(paths[i], sizeof(paths[i]), "%s%s%s", prefix, *prefix ? "." : "", kids[i].key);
        muts[i] = find_mut(mu, paths[i]);
        enum mut_op op = muts[i] ? muts[i]->op : MUT_NONE;
        if (op == MUT_DUP || op == MUT_ADD) {
            count++;
        } else if (op == MUT_DROP) {
            count--;
        } else if (op == MUT_LAST) {
            last = i;
        }
    }
    msgpack_pack_map(pk, count);
    for (size_t i = 0; i < n; i++) {
        if (i != last && !(muts[i] && muts[i]->op == MUT_DROP)) {
            write_entry(pk, &kids[i], paths[i], mu);
        }
    }
    if (last < n) {
        write_entry(pk, &kids[last], paths[last], mu);
    }
}

static int decode_mutated(const struct mutation *mu)
{
    struct fixture fx;
    struct tree t;
    msgpack_sbuffer sb;
    msgpack_packer pk;
    int rc;

    fixture_init(&fx, &vectors[0]);
    tree_init(&t, &fx.m);
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    write_map(&pk, t.root, ARRAY_SIZE(t.root), "", mu);
    rc = decode_rc(sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    fixture_deinit(&fx);
    return rc;
}

/* clang-format off */
static const char *const required[] = {
    "formatVersion",     "id",           "tenantId",
    "namespace",         "flowId",       "receivedAt",
    "request",           "request.method", "request.path",
    "request.remoteAddress", "trigger",  "trigger.id",
    "trigger.type",      "trigger.variables", "trigger.variables.headers",
    "trigger.variables.parameters",
};
/* clang-format on */

static void test_missing_and_mistyped(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_SIZE(required); i++) {
        const struct mutation drop[2] = {{required[i], MUT_DROP, NULL, 0}};
        const struct mutation nil[2] = {{required[i], MUT_SET, "\xc0", 1}};
        const struct mutation keyint[2] = {{required[i], MUT_KEYINT, NULL, 0}};
        const struct mutation dup[2] = {{required[i], MUT_DUP, NULL, 0}};
        const struct mutation last[2] = {{required[i], MUT_LAST, NULL, 0}};
        const struct mutation add[2] = {{required[i], MUT_ADD, NULL, 0}};

        print_message("%s\n", required[i]);
        assert_int_equal(decode_mutated(drop), PROTO_ESHAPE);
        assert_int_equal(decode_mutated(nil), PROTO_ESHAPE);
        assert_int_equal(decode_mutated(keyint), PROTO_ESHAPE);
        assert_int_equal(decode_mutated(dup), PROTO_ESHAPE);
        /* Readers find keys by name and skip keys they do not know. */
        assert_int_equal(decode_mutated(last), PROTO_OK);
        assert_int_equal(decode_mutated(add), PROTO_OK);
    }
}

struct shape_case {
    const char *what;
    struct mutation mu[2];
    int want;
};

/* clang-format off */
#define SET(p, bytes) {p, MUT_SET, bytes, sizeof(bytes) - 1}
#define STR(p, text) {p, MUT_STR, text, sizeof(text) - 1}
#define OP(p, op) {p, op, NULL, 0}
#define BODY "trigger.variables.body"
#define HEADERS "trigger.variables.headers"

static const struct shape_case shape_cases[] = {
    {"baseline", {{.path = NULL}}, PROTO_OK},
    {"absent body", {OP(BODY, MUT_DROP)}, PROTO_OK},
    {"nil body", {SET(BODY, "\xc0")}, PROTO_OK},
    {"bin body", {SET(BODY, "\xc4\x02hi")}, PROTO_OK},
    {"ext body", {SET(BODY, "\xd4\x01\x00")}, PROTO_OK},
    {"duplicate body", {OP(BODY, MUT_DUP)}, PROTO_ESHAPE},
    {"body under an int key", {OP(BODY, MUT_KEYINT)}, PROTO_ESHAPE},
    {"version 2", {SET("formatVersion", "\x02")}, PROTO_EVERSION},
    {"version 0", {SET("formatVersion", "\x00")}, PROTO_EVERSION},
    {"version -1", {SET("formatVersion", "\xff")}, PROTO_EVERSION},
    {"version 2^32+1", {SET("formatVersion", "\xcf\x00\x00\x00\x01\x00\x00\x00\x01")},
     PROTO_EVERSION},
    {"version 2, no id", {SET("formatVersion", "\x02"), OP("id", MUT_DROP)}, PROTO_EVERSION},
    {"version 1 as uint64", {SET("formatVersion", "\xcf\0\0\0\0\0\0\0\x01")}, PROTO_OK},
    {"version 1 as int8", {SET("formatVersion", "\xd0\x01")}, PROTO_OK},
    {"version 1.0", {SET("formatVersion", "\xcb\x3f\xf0\0\0\0\0\0\0")}, PROTO_ESHAPE},
    {"version \"1\"", {STR("formatVersion", "1")}, PROTO_ESHAPE},
    {"id of 21", {STR("id", "4wjtEiJZgcJ8jQ7ZAH8Gt")}, PROTO_ESHAPE},
    {"id of 23", {STR("id", "4wjtEiJZgcJ8jQ7ZAH8Gtqq")}, PROTO_ESHAPE},
    {"id with -", {STR("id", "4wjtEiJZgcJ8jQ7ZAH8Gt-")}, PROTO_ESHAPE},
    {"id as bin", {SET("id", "\xc4\x16" "4wjtEiJZgcJ8jQ7ZAH8Gtq")}, PROTO_ESHAPE},
    {"leap day", {STR("receivedAt", "2000-02-29T00:00:00.000Z")}, PROTO_OK},
    {"no millis", {STR("receivedAt", "2026-11-27T14:20:19Z")}, PROTO_ESHAPE},
    {"offset", {STR("receivedAt", "2026-11-27T14:20:19.123+00:00")}, PROTO_ESHAPE},
    {"space", {STR("receivedAt", "2026-11-27 14:20:19.123Z")}, PROTO_ESHAPE},
    {"lower z", {STR("receivedAt", "2026-11-27T14:20:19.123z")}, PROTO_ESHAPE},
    {"micros", {STR("receivedAt", "2026-11-27T14:20:19.123456Z")}, PROTO_ESHAPE},
    {"not a leap year", {STR("receivedAt", "1900-02-29T00:00:00.000Z")}, PROTO_ESHAPE},
    {"month 13", {STR("receivedAt", "2026-13-01T00:00:00.000Z")}, PROTO_ESHAPE},
    {"day 31 of 30", {STR("receivedAt", "2026-11-31T00:00:00.000Z")}, PROTO_ESHAPE},
    {"hour 24", {STR("receivedAt", "2026-11-27T24:00:00.000Z")}, PROTO_ESHAPE},
    {"second 60", {STR("receivedAt", "2026-11-27T23:59:60.000Z")}, PROTO_ESHAPE},
    {"empty strings", {STR("tenantId", ""), STR("request.method", "")}, PROTO_OK},
    {"invalid UTF-8", {STR("namespace", "a\xff")}, PROTO_ESHAPE},
    {"overlong NUL", {STR("flowId", "\xc0\x80")}, PROTO_ESHAPE},
    {"surrogate", {STR("flowId", "\xed\xa0\x80")}, PROTO_ESHAPE},
    {"past U+10FFFF", {STR("flowId", "\xf4\x90\x80\x80")}, PROTO_ESHAPE},
    {"cut sequence", {STR("flowId", "ab\xe2\x82")}, PROTO_ESHAPE},
    {"U+10FFFF", {STR("flowId", "\xf4\x8f\xbf\xbf")}, PROTO_OK},
    {"NUL is text", {SET("flowId", "\xa3" "a\0b")}, PROTO_OK},
    {"invalid UTF-8 in body", {SET(BODY, "\x92\xa1x\xa1\xfe")}, PROTO_ESHAPE},
    {"invalid UTF-8 body key", {SET(BODY, "\x81\xa2\xc3\x28\x01")}, PROTO_ESHAPE},
    {"headers empty", {SET(HEADERS, "\x80")}, PROTO_OK},
    {"header with no values", {SET(HEADERS, "\x81\xa1h\x90")}, PROTO_OK},
    {"headers as array", {SET(HEADERS, "\x90")}, PROTO_ESHAPE},
    {"header value a str", {SET(HEADERS, "\x81\xa1h\xa1v")}, PROTO_ESHAPE},
    {"header value an int", {SET(HEADERS, "\x81\xa1h\x91\x01")}, PROTO_ESHAPE},
    {"header value nil", {SET(HEADERS, "\x81\xa1h\x91\xc0")}, PROTO_ESHAPE},
    {"header name an int", {SET(HEADERS, "\x81\x01\x91\xa1v")}, PROTO_ESHAPE},
    {"header name bin", {SET(HEADERS, "\x81\xc4\x01h\x91\xa1v")}, PROTO_ESHAPE},
    {"parameters nil", {SET("trigger.variables.parameters", "\xc0")}, PROTO_ESHAPE},
    {"request a str", {STR("request", "GET")}, PROTO_ESHAPE},
    {"variables an array", {SET("trigger.variables", "\x90")}, PROTO_ESHAPE},
    {"trigger type other", {STR("trigger.type", "io.kestra.Other")}, PROTO_OK},
    {"unknown after body", {OP(BODY, MUT_ADD)}, PROTO_OK},
    {"body first", {OP(HEADERS, MUT_LAST), OP("trigger.variables.parameters", MUT_LAST)},
     PROTO_OK},
    {"non-minimal map header", {SET("request", "\xde\x00\x03\xa6method\xa3GET\xa4path\xa1/"
                                               "\xadremoteAddress\xa2::")},
     PROTO_OK},
    {"map32 header", {SET("request", "\xdf\x00\x00\x00\x03\xa6method\xa3GET\xa4path\xa1/"
                                        "\xadremoteAddress\xa2::")},
     PROTO_OK},
    {"request missing keys", {SET("request", "\x81\xa6method\xa3GET")}, PROTO_ESHAPE},
};
/* clang-format on */

static void test_shapes(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_SIZE(shape_cases); i++) {
        print_message("%s\n", shape_cases[i].what);
        assert_int_equal(decode_mutated(shape_cases[i].mu), shape_cases[i].want);
    }
}

static char *nested_arrays(size_t levels, size_t *len)
{
    char *raw = malloc(levels);

    assert_non_null(raw);
    memset(raw, 0x91, levels);
    raw[levels - 1] = (char)0x90;
    *len = levels;
    return raw;
}

/* msgpack-c refuses 33 nested containers; the body sits inside 3. */
static void test_depth(void **state)
{
    (void)state;
    for (size_t levels = PROTO_MAX_BODY_DEPTH - 1; levels <= PROTO_MAX_BODY_DEPTH + 2; levels++) {
        size_t len;
        char *raw = nested_arrays(levels, &len);
        const struct mutation mu[2] = {{BODY, MUT_SET, raw, len}};
        int want = levels <= PROTO_MAX_BODY_DEPTH ? PROTO_OK : PROTO_ESHAPE;

        assert_int_equal(decode_mutated(mu), want);
        free(raw);
    }
}

/* ==== Encode: argument checks and write failures ==== */

struct encode_case {
    const char *what;
    size_t field; /* offsetof(struct proto_msg, ...) */
    const char *bytes;
    size_t len;
    int want;
};

/* clang-format off */
#define ENC(what, member, bytes, want) \
    {what, offsetof(struct proto_msg, member), bytes, sizeof(bytes) - 1, want}
#define ENC_NULL(what, member) {what, offsetof(struct proto_msg, member), NULL, 0, PROTO_EINVAL}

static const struct encode_case encode_cases[] = {
    ENC_NULL("id NULL", id),
    ENC_NULL("tenant NULL", tenant_id),
    ENC_NULL("trigger type NULL", trigger_type),
    ENC_NULL("headers NULL", headers),
    ENC_NULL("parameters NULL", parameters),
    ENC("id of 21", id, "4wjtEiJZgcJ8jQ7ZAH8Gt", PROTO_EINVAL),
    ENC("id with _", id, "4wjtEiJZgcJ8jQ7ZAH8Gt_", PROTO_EINVAL),
    ENC("receivedAt without millis", received_at, "2026-11-27T14:20:19Z", PROTO_EINVAL),
    ENC("namespace not UTF-8", ns, "\xff", PROTO_EINVAL),
    ENC("empty path", path, "", PROTO_OK),
    ENC("headers an array", headers, "\x91\xa1x", PROTO_EINVAL),
    ENC("headers value an int", headers, "\x81\xa1h\x91\x01", PROTO_EINVAL),
    ENC("headers plus a byte", headers, "\x80\x80", PROTO_EINVAL),
    ENC("headers cut", headers, "\x81\xa1h", PROTO_EINVAL),
    ENC("headers empty bytes", headers, "", PROTO_EINVAL),
    ENC("parameters reserved byte", parameters, "\xc1", PROTO_EINVAL),
    ENC("parameters key not UTF-8", parameters, "\x81\xa1\xff\x90", PROTO_EINVAL),
    ENC("headers value not UTF-8", headers, "\x81\xa1h\x91\xa1\xff", PROTO_EINVAL),
    ENC("headers second value overlong", headers, "\x81\xa1h\x92\xa1x\xa2\xc0\x80", PROTO_EINVAL),
    ENC("body of two values", body, "\x01\x02", PROTO_EINVAL),
    ENC("body empty bytes", body, "", PROTO_EINVAL),
    ENC("body str not UTF-8", body, "\xa2\xc3\x28", PROTO_EINVAL),
    ENC("body nil", body, "\xc0", PROTO_OK),
    ENC("body scalar", body, "\x2a", PROTO_OK),
};
/* clang-format on */

static void test_encode_invalid(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_SIZE(encode_cases); i++) {
        const struct encode_case *c = &encode_cases[i];
        struct fixture fx;
        msgpack_sbuffer sb;
        struct proto_str *s;

        print_message("%s\n", c->what);
        fixture_init(&fx, &vectors[0]);
        s = (struct proto_str *)((char *)&fx.m + c->field);
        *s = (struct proto_str){c->bytes, c->len};
        msgpack_sbuffer_init(&sb);
        msgpack_sbuffer_write(&sb, "prefix", 6);
        assert_int_equal(proto_encode(&fx.m, &sb), c->want);
        if (c->want != PROTO_OK) {
            assert_int_equal(sb.size, 6); /* sb left as it was */
        } else {
            assert_int_equal(decode_rc(sb.data + 6, sb.size - 6), PROTO_OK);
        }
        msgpack_sbuffer_destroy(&sb);
        fixture_deinit(&fx);
    }
}

static void test_encode_depth(void **state)
{
    (void)state;
    for (size_t levels = PROTO_MAX_BODY_DEPTH; levels <= PROTO_MAX_BODY_DEPTH + 1; levels++) {
        struct fixture fx;
        msgpack_sbuffer sb;
        size_t len;
        char *raw = nested_arrays(levels, &len);

        fixture_init(&fx, &vectors[0]);
        fx.m.body = (struct proto_str){raw, len};
        msgpack_sbuffer_init(&sb);
        assert_int_equal(proto_encode(&fx.m, &sb),
                         levels <= PROTO_MAX_BODY_DEPTH ? PROTO_OK : PROTO_EINVAL);
        msgpack_sbuffer_destroy(&sb);
        fixture_deinit(&fx);
        free(raw);
    }
}

struct budget {
    size_t left;
};

static int write_limited(void *data, const char *buf, size_t len)
{
    struct budget *b = data;

    (void)buf;
    if (len > b->left) {
        return -1;
    }
    b->left -= len;
    return 0;
}

/* A write callback that fails after every possible number of bytes: always PROTO_ENOMEM. */
static void test_encode_write_failure(void **state)
{
    struct fixture fx;
    msgpack_sbuffer sb;

    (void)state;
    fixture_init(&fx, &vectors[3]);
    msgpack_sbuffer_init(&sb);
    assert_int_equal(proto_encode(&fx.m, &sb), PROTO_OK);
    for (size_t limit = 0; limit < sb.size; limit++) {
        struct budget b = {limit};
        msgpack_packer pk;
        msgpack_packer_init(&pk, &b, write_limited);
        assert_int_equal(proto_encode_head(&fx.m, false, &pk), PROTO_ENOMEM);
    }
    msgpack_sbuffer_destroy(&sb);
    fixture_deinit(&fx);
}

/* ==== Small API contracts ==== */

static void test_deinit_and_failure_state(void **state)
{
    struct proto_decoded d;

    (void)state;
    proto_decoded_deinit(NULL);
    assert_int_equal(proto_decode("\x80", 1, &d), PROTO_ESHAPE);
    assert_null(d.m.id.ptr);
    assert_false(d.has_body);
    proto_decoded_deinit(&d);
    proto_decoded_deinit(&d);
}

static void test_strerror(void **state)
{
    static const int codes[] = {PROTO_OK,       PROTO_ETRUNC,    PROTO_EMSGPACK, PROTO_ESHAPE,
                                PROTO_EVERSION, PROTO_ETRAILING, PROTO_ENOMEM,   PROTO_EINVAL};
    const char *unknown = proto_strerror(-100);

    (void)state;
    assert_string_equal(unknown, "unknown proto error");
    assert_string_equal(proto_strerror(1), unknown);
    for (size_t i = 0; i < ARRAY_SIZE(codes); i++) {
        assert_true(strlen(proto_strerror(codes[i])) > 0);
        assert_string_not_equal(proto_strerror(codes[i]), unknown);
        for (size_t k = 0; k < i; k++) {
            assert_string_not_equal(proto_strerror(codes[i]), proto_strerror(codes[k]));
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_golden_bytes),
        cmocka_unit_test(test_golden_decode),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_encode_head),
        cmocka_unit_test(test_truncations),
        cmocka_unit_test(test_corrupted_bytes),
        cmocka_unit_test(test_raw_inputs),
        cmocka_unit_test(test_trailing_bytes),
        cmocka_unit_test(test_missing_and_mistyped),
        cmocka_unit_test(test_shapes),
        cmocka_unit_test(test_depth),
        cmocka_unit_test(test_encode_invalid),
        cmocka_unit_test(test_encode_depth),
        cmocka_unit_test(test_encode_write_failure),
        cmocka_unit_test(test_deinit_and_failure_state),
        cmocka_unit_test(test_strerror),
    };

    return cmocka_run_group_tests_name("proto", tests, NULL, NULL);
}
