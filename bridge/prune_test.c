/*
 * prune_test.c: the path trie, and the pruned unpack against msgpack_unpack: what it keeps
 * (duplicates, missing keys, non-map values on a path, the prefix), and that it accepts exactly
 * the inputs msgpack_unpack accepts (truncated, corrupted, too deep, trailing bytes).
 */
#include "prune.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <msgpack.h>

#include "pack.h"

/* ==== Helpers ==== */

static void pstr(msgpack_packer *pk, const char *s)
{
    msgpack_pack_str_with_body(pk, s, strlen(s));
}

/* Paths from a list of dotted strings; a trailing ".*" is implied (each path is read whole). */
static struct prune_paths *paths_of(const char *const *list, size_t n)
{
    struct prune_paths *root = prune_new();
    for (size_t i = 0; i < n; i++) {
        struct prune_paths *p = root;
        const char *s = list[i];
        while (*s) {
            const char *dot = strchr(s, '.');
            size_t len = dot ? (size_t)(dot - s) : strlen(s);
            p = prune_child(p, s, len);
            s += len + (dot ? 1 : 0);
        }
        prune_set_whole(p);
    }
    return root;
}

static char *format(const struct prune_paths *p)
{
    static char text[512];
    struct sbuf b;
    sbuf_init(&b);
    prune_format(p, &b);
    snprintf(text, sizeof(text), "%.*s", (int)b.len, b.data ? b.data : "");
    sbuf_deinit(&b);
    return text;
}

static char *packed_text(const msgpack_object *o)
{
    static char text[2][4096];
    static int which;
    which ^= 1;
    msgpack_object_print_buffer(text[which], sizeof(text[which]), *o);
    return text[which];
}

/*
 * Checks that `pruned` is what prune_unpack promises for `full` along p: a whole node (or a
 * value that is not a non-empty map) is identical; a map keeps exactly its entries with a string
 * key that p has a child for, in order.
 */
static void check_pruned(const struct prune_paths *p, const msgpack_object *full,
                         const msgpack_object *pruned, struct sbuf *keys);

static const struct prune_paths *kid_of(const struct prune_paths *p, const msgpack_object *k)
{
    if (k->type != MSGPACK_OBJECT_STR) {
        return NULL;
    }
    return prune_find(p, k->via.str.ptr, k->via.str.size);
}

static void check_pruned(const struct prune_paths *p, const msgpack_object *full,
                         const msgpack_object *pruned, struct sbuf *keys)
{
    if (prune_is_whole(p) || full->type != MSGPACK_OBJECT_MAP || full->via.map.size == 0) {
        if (!msgpack_object_equal(*full, *pruned)) {
            print_error("at %.*s: %s != %s\n", (int)keys->len, keys->data, packed_text(full),
                        packed_text(pruned));
        }
        assert_true(msgpack_object_equal(*full, *pruned));
        return;
    }
    assert_int_equal(pruned->type, MSGPACK_OBJECT_MAP);
    uint32_t j = 0;
    for (uint32_t i = 0; i < full->via.map.size; i++) {
        const msgpack_object_kv *kv = &full->via.map.ptr[i];
        const struct prune_paths *kid = kid_of(p, &kv->key);
        if (!kid) {
            continue;
        }
        assert_true(j < pruned->via.map.size);
        assert_true(msgpack_object_equal(kv->key, pruned->via.map.ptr[j].key));
        size_t mark = keys->len;
        sbuf_append_cstr(keys, ".");
        sbuf_append(keys, kv->key.via.str.ptr, kv->key.via.str.size);
        check_pruned(kid, &kv->val, &pruned->via.map.ptr[j].val, keys);
        keys->len = mark;
        j++;
    }
    assert_int_equal(j, pruned->via.map.size);
}

/* prune_unpack succeeds exactly when msgpack_unpack does, and then keeps what it promises. */
static void check_same(const struct prune_paths *p, const char *data, size_t len)
{
    msgpack_zone zf, zp;
    msgpack_zone_init(&zf, 1024);
    msgpack_zone_init(&zp, 1024);
    msgpack_object full, pruned;
    size_t off = 0;
    bool ok_full = msgpack_unpack(data, len, &off, &zf, &full) == MSGPACK_UNPACK_SUCCESS;
    int rc = prune_unpack(p, NULL, 0, data, len, &zp, &pruned);
    assert_true(rc == 0 || rc == -EBADMSG);
    if (ok_full != (rc == 0)) {
        print_error("msgpack_unpack %s, prune_unpack %d, %zu bytes\n", ok_full ? "ok" : "failed",
                    rc, len);
    }
    assert_int_equal(ok_full, rc == 0);
    if (ok_full) {
        struct sbuf keys;
        sbuf_init(&keys);
        check_pruned(p, &full, &pruned, &keys);
        sbuf_deinit(&keys);
    }
    msgpack_zone_destroy(&zf);
    msgpack_zone_destroy(&zp);
}

/* A message with every msgpack type, duplicates, non-string keys and more than 8 matches. */
static void pack_sample(msgpack_sbuffer *sb)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 6);
    pstr(&pk, "id");
    pstr(&pk, "abc");
    pstr(&pk, "body");
    msgpack_pack_map(&pk, 8);
    pstr(&pk, "ref");
    pstr(&pk, "refs/heads/main");
    pstr(&pk, "commits");
    msgpack_pack_array(&pk, 2);
    msgpack_pack_map(&pk, 1);
    pstr(&pk, "id");
    msgpack_pack_uint64(&pk, UINT64_MAX);
    msgpack_pack_float(&pk, 1.5f);
    pstr(&pk, "ref"); /* a duplicate, after other keys */
    msgpack_pack_map(&pk, 1);
    pstr(&pk, "x");
    msgpack_pack_int8(&pk, -3);
    msgpack_pack_int64(&pk, 1); /* a non-string key */
    pstr(&pk, "one");
    msgpack_pack_bin_with_body(&pk, "ref", 3); /* a bin key spelled like "ref": not a string */
    msgpack_pack_true(&pk);
    pstr(&pk, "empty");
    msgpack_pack_map(&pk, 0);
    pstr(&pk, "ext");
    msgpack_pack_ext_with_body(&pk, "\x01\x02", 2, 7);
    pstr(&pk, "list");
    msgpack_pack_array(&pk, 3);
    msgpack_pack_nil(&pk);
    msgpack_pack_double(&pk, -0.25);
    msgpack_pack_str_with_body(&pk, "", 0);
    pstr(&pk, "dup");
    msgpack_pack_map(&pk, 20);
    for (int i = 0; i < 20; i++) {
        pstr(&pk, i % 2 ? "k" : "other");
        msgpack_pack_int(&pk, i);
    }
    pstr(&pk, "str");
    pstr(&pk, "not a map");
    pstr(&pk, "");
    msgpack_pack_ext_with_body(&pk, "\xff", 1, 1); /* fixext 1 */
    pstr(&pk, "body");                             /* a second body, later: lookups take the last */
    msgpack_pack_map(&pk, 1);
    pstr(&pk, "ref");
    pstr(&pk, "second");
}

static const char *const SAMPLE_PATHS[][4] = {
    {"body.ref"},
    {"body.commits", "id"},
    {"body.ref.x", "body.nothing.here"},
    {"body.empty.x", "body.ext.x", "list.0"},
    {"dup.k"},
    {"str.length", ""},
    {"body"},
    {"missing.a.b"},
};

/* ==== Paths ==== */

static void trie(void **state)
{
    (void)state;
    const char *const list[] = {"body.ref", "headers.X-GitHub-Event", "body.commits"};
    struct prune_paths *p = paths_of(list, 3);
    assert_string_equal(format(p), "{body:{ref:*,commits:*},headers:{X-GitHub-Event:*}}");
    /* A whole node covers its children: adding below it changes nothing. */
    struct prune_paths *body = prune_child(p, "body", 4);
    prune_set_whole(body);
    assert_ptr_equal(prune_child(body, "x", 1), body);
    assert_string_equal(format(p), "{body:*,headers:{X-GitHub-Event:*}}");

    struct prune_paths *q = prune_new();
    assert_string_equal(format(q), "{}");
    prune_child(prune_child(q, "body", 4), "a", 1);
    prune_set_whole(prune_child(q, "parameters", 10));
    prune_merge(q, p);
    assert_string_equal(format(q), "{body:*,parameters:*,headers:{X-GitHub-Event:*}}");
    prune_set_whole(q);
    assert_true(prune_is_whole(q));
    assert_string_equal(format(q), "*");
    prune_free(q);
    prune_free(p);
    prune_free(NULL);
}

/* ==== Pruned unpack ==== */

static void keeps_what_paths_reach(void **state)
{
    (void)state;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    pack_sample(&sb);
    msgpack_zone z;
    msgpack_zone_init(&z, 1024);
    msgpack_object o;
    size_t off = 0;
    assert_int_equal(msgpack_unpack(sb.data, sb.size, &off, &z, &o), MSGPACK_UNPACK_SUCCESS);
    msgpack_zone_destroy(&z);
    for (size_t i = 0; i < ARRAY_LEN(SAMPLE_PATHS); i++) {
        size_t n = 0;
        while (n < 4 && SAMPLE_PATHS[i][n]) {
            n++;
        }
        struct prune_paths *p = paths_of(SAMPLE_PATHS[i], n);
        check_same(p, sb.data, sb.size);
        prune_free(p);
    }
    msgpack_sbuffer_destroy(&sb);
}

/* The exact trees for a few cases, so check_pruned itself is checked. */
static void exact_trees(void **state)
{
    (void)state;
    static const struct {
        const char *paths[3];
        const char *want;
    } CASES[] = {
        {{"body.ref"},
         "{\"body\"=>{\"ref\"=>\"refs/heads/main\", \"ref\"=>{\"x\"=>-3}}, \"body\"=>{\"ref\"=>"
         "\"second\"}}"},
        {{"missing.a"}, "{}"},
        {{"str.x", "id"}, "{\"id\"=>\"abc\", \"str\"=>\"not a map\"}"},
        {{"body.empty.x"}, "{\"body\"=>{\"empty\"=>{}}, \"body\"=>{}}"},
        {{"body.ext.x"}, "{\"body\"=>{\"ext\"=>(ext: 7)\"\\x01\\x02\"}, \"body\"=>{}}"},
    };
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    pack_sample(&sb);
    msgpack_zone z;
    msgpack_zone_init(&z, 256);
    for (size_t i = 0; i < ARRAY_LEN(CASES); i++) {
        size_t n = CASES[i].paths[1] ? 2 : 1;
        struct prune_paths *p = paths_of(CASES[i].paths, n);
        msgpack_object o;
        assert_int_equal(prune_unpack(p, NULL, 0, sb.data, sb.size, &z, &o), 0);
        const char *got = packed_text(&o);
        if (strcmp(got, CASES[i].want) != 0) {
            print_error("%s: got %s\n", CASES[i].paths[0], got);
        }
        assert_string_equal(got, CASES[i].want);
        prune_free(p);
        msgpack_zone_clear(&z);
    }
    msgpack_zone_destroy(&z);
    msgpack_sbuffer_destroy(&sb);
}

/* The prefix walks trigger.variables the way webhook.c reads it, keeping every duplicate. */
static void prefix(void **state)
{
    (void)state;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 3);
    pstr(&pk, "id");
    pstr(&pk, "x");
    pstr(&pk, "trigger");
    msgpack_pack_map(&pk, 3);
    pstr(&pk, "variables");
    msgpack_pack_map(&pk, 2);
    pstr(&pk, "headers");
    msgpack_pack_map(&pk, 0);
    pstr(&pk, "body");
    msgpack_pack_map(&pk, 2);
    pstr(&pk, "ref");
    pstr(&pk, "main");
    pstr(&pk, "big");
    msgpack_pack_array(&pk, 1);
    pstr(&pk, "skipped");
    pstr(&pk, "type");
    pstr(&pk, "webhook");
    pstr(&pk, "variables");
    msgpack_pack_nil(&pk);
    pstr(&pk, "trigger");
    pstr(&pk, "a later duplicate");
    const char *const list[] = {"body.ref"};
    struct prune_paths *p = paths_of(list, 1);
    static const char *const PREFIX[] = {"trigger", "variables"};
    msgpack_zone z;
    msgpack_zone_init(&z, 256);
    msgpack_object o;
    assert_int_equal(prune_unpack(p, PREFIX, 2, sb.data, sb.size, &z, &o), 0);
    assert_string_equal(packed_text(&o),
                        "{\"trigger\"=>{\"variables\"=>{\"body\"=>{\"ref\"=>\"main\"}}, "
                        "\"variables\"=>nil}, \"trigger\"=>\"a later duplicate\"}");
    /* Nothing read under the prefix: the variables map is kept empty. */
    struct prune_paths *none = prune_new();
    assert_int_equal(prune_unpack(none, PREFIX, 2, sb.data, sb.size, &z, &o), 0);
    assert_string_equal(packed_text(&o), "{\"trigger\"=>{\"variables\"=>{}, \"variables\"=>nil}, "
                                         "\"trigger\"=>\"a later duplicate\"}");
    prune_free(none);
    msgpack_zone_destroy(&z);
    prune_free(p);
    msgpack_sbuffer_destroy(&sb);
}

/* Every truncation, trailing bytes, and every single-byte corruption: same verdict as msgpack. */
static void odd_input(void **state)
{
    (void)state;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    pack_sample(&sb);
    /* No map 32 or array 32: msgpack_unpack would allocate for up to 2^32 entries. */
    static const char *const BYTES[] = {"\xc1", "\x00", "\xff", "\xde", "\xdb", "\xc9",
                                        "\x9f", "\x8f", "\xd8", "\xc7", "\xcb", "\xa5"};
    const char *const list[] = {"body.ref", "dup.k", "list"};
    struct prune_paths *p = paths_of(list, 3);
    char *copy = xmalloc(sb.size + 8);
    for (size_t len = 0; len <= sb.size; len++) {
        check_same(p, sb.data, len);
    }
    memcpy(copy, sb.data, sb.size);
    memcpy(copy + sb.size, "\xc0", 1);
    check_same(p, copy, sb.size + 1);
    for (size_t i = 0; i < sb.size; i++) {
        for (size_t b = 0; b < ARRAY_LEN(BYTES); b++) {
            memcpy(copy, sb.data, sb.size);
            copy[i] = BYTES[b][0];
            check_same(p, copy, sb.size);
        }
    }
    xfree(copy);
    prune_free(p);
    msgpack_sbuffer_destroy(&sb);
}

/* Containers nested to msgpack-c's limit and one past it, on and off a pruned path. */
static void depth_limit(void **state)
{
    (void)state;
    const char *const list[] = {"a.a.a.a"};
    struct prune_paths *p = paths_of(list, 1);
    struct prune_paths *none = prune_new();
    for (int depth = 28; depth <= 36; depth++) {
        for (int kind = 0; kind < 3; kind++) {
            msgpack_sbuffer sb;
            msgpack_sbuffer_init(&sb);
            msgpack_packer pk;
            msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
            for (int i = 0; i < depth; i++) {
                if (kind == 0 || (kind == 2 && i % 2)) {
                    msgpack_pack_map(&pk, 1);
                    pstr(&pk, "a");
                } else {
                    msgpack_pack_array(&pk, 1);
                }
            }
            if (kind == 1) {
                msgpack_pack_map(&pk, 0); /* an empty container counts too */
            } else {
                pstr(&pk, "end");
            }
            check_same(p, sb.data, sb.size);
            check_same(none, sb.data, sb.size);
            msgpack_sbuffer_destroy(&sb);
        }
    }
    prune_free(none);
    prune_free(p);
}

/* ==== Trusted containers ==== */

/* {"id": 7, "body": <json through pack_body>}, with pack's extents for the body. */
static const struct byte_range *pack_message(struct pack_parser *pp, const char *json,
                                             msgpack_sbuffer *sb, size_t *n)
{
    msgpack_packer pk;
    msgpack_sbuffer_init(sb);
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 2);
    pstr(&pk, "id");
    msgpack_pack_int(&pk, 7);
    pstr(&pk, "body");
    assert_int_equal(pack_body(pp, json, strlen(json), sb), PACK_BODY_OBJECT);
    return pack_extents(pp, n);
}

static const char TRUSTED_JSON[] =
    "{\"ref\":\"refs/heads/main\",\"repository\":{\"owner\":{\"login\":\"acme\"},"
    "\"topics\":[\"a\",\"b\"]},\"commits\":[{\"id\":1},{\"id\":2}],\"after\":\"x\"}";

/* With the body's extents the answer is the same as without, for paths on and off them. */
static void trusted_same_answer(void **state)
{
    (void)state;
    static const char *const LISTS[][2] = {
        {"body.ref", NULL},   {"body.after", NULL},           {"body.repository.owner", NULL},
        {"body.commits", NULL}, {"body", NULL},               {"id", "body.repository.topics"},
        {NULL, NULL},
    };
    struct pack_parser *pp = pack_parser_new();
    msgpack_sbuffer sb;
    size_t n;
    const struct byte_range *known = pack_message(pp, TRUSTED_JSON, &sb, &n);
    assert_int_equal(n, 7);
    for (size_t i = 0; i < ARRAY_LEN(LISTS); i++) {
        size_t np = LISTS[i][0] ? (LISTS[i][1] ? 2 : 1) : 0;
        struct prune_paths *p = paths_of(LISTS[i], np);
        msgpack_zone z1, z2;
        msgpack_object plain, fast;
        msgpack_zone_init(&z1, 1024);
        msgpack_zone_init(&z2, 1024);
        assert_int_equal(prune_unpack(p, NULL, 0, sb.data, sb.size, &z1, &plain), 0);
        assert_int_equal(
            prune_unpack_known(p, NULL, 0, sb.data, sb.size, known, n, &z2, &fast), 0);
        assert_true(msgpack_object_equal(plain, fast));
        msgpack_zone_destroy(&z1);
        msgpack_zone_destroy(&z2);
        prune_free(p);
    }
    msgpack_sbuffer_destroy(&sb);
    pack_parser_free(pp);
}

static int unpack_with(const struct prune_paths *p, const msgpack_sbuffer *sb,
                       const struct byte_range *known, size_t n)
{
    msgpack_zone z;
    msgpack_object o;
    msgpack_zone_init(&z, 1024);
    int rc = prune_unpack_known(p, NULL, 0, sb->data, sb->size, known, n, &z, &o);
    msgpack_zone_destroy(&z);
    return rc;
}

/*
 * A trusted container is jumped, not read: a byte msgpack never uses, put inside one the paths
 * do not reach, goes unseen (this is the saving, and why only the caller's own bytes may be
 * trusted), while a value read whole is still checked, and a range past the input is ignored.
 */
static void trusted_is_not_read(void **state)
{
    (void)state;
    struct pack_parser *pp = pack_parser_new();
    msgpack_sbuffer sb;
    size_t n;
    const struct byte_range *known = pack_message(pp, TRUSTED_JSON, &sb, &n);
    /* Extent 3 is "topics": fixarray 2, then fixstr "a". */
    assert_int_equal((unsigned char)sb.data[known[3].start], 0x92);
    assert_int_equal((unsigned char)sb.data[known[3].start + 1], 0xa1);
    sb.data[known[3].start + 1] = (char)0xc1;

    const char *const ref[] = {"body.ref"};
    const char *const topics[] = {"body.repository.topics"};
    struct prune_paths *p_ref = paths_of(ref, 1);
    struct prune_paths *p_topics = paths_of(topics, 1);
    assert_int_equal(unpack_with(p_ref, &sb, NULL, 0), -EBADMSG);
    assert_int_equal(unpack_with(p_ref, &sb, known, n), 0);
    assert_int_equal(unpack_with(p_topics, &sb, known, n), -EBADMSG);

    struct byte_range past[16];
    assert_true(n <= ARRAY_LEN(past));
    for (size_t i = 0; i < n; i++) {
        past[i] = (struct byte_range){known[i].start, sb.size + 1};
    }
    assert_int_equal(unpack_with(p_ref, &sb, past, n), -EBADMSG);
    prune_free(p_ref);
    prune_free(p_topics);
    msgpack_sbuffer_destroy(&sb);
    pack_parser_free(pp);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(trie),        cmocka_unit_test(keeps_what_paths_reach),
        cmocka_unit_test(exact_trees), cmocka_unit_test(prefix),
        cmocka_unit_test(odd_input),   cmocka_unit_test(depth_limit),
        cmocka_unit_test(trusted_same_answer), cmocka_unit_test(trusted_is_not_read),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
