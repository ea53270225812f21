/*
 * proto_state_test.c: cmocka tests for SPEC-STATE.md: golden bytes of execution-state events and
 * trigger-state records, round trips, every cut, the shape and cross-field rules, kinds, keys.
 * Runs with the working directory set to proto/ (it opens testdata/).
 */
#include "proto.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define S(lit) ((struct proto_str){(lit), sizeof(lit) - 1})
#define NONE ((struct proto_str){NULL, 0})

/* ==== Fixtures: the inputs of the golden vectors (keep in step with golden.py) ==== */

/*
 * The outputs map of state_success, packed by hand in the packer's smallest forms: status,
 * count, ratio (float64), tags, detail {ok, none}, text (UTF-8).
 */
static const char success_outputs[] =
    "\x86"
    "\xa6status\xa8" "deployed"
    "\xa5" "count\x03"
    "\xa5ratio\xcb\x3f\xe0\x00\x00\x00\x00\x00\x00"
    "\xa4tags\x92\xa1" "a\xa1" "b"
    "\xa6" "detail\x82\xa2ok\xc3\xa4none\xc0"
    "\xa4text\xadZo\xc3\xab \xe2\x80\x94 \xf0\x9f\x8e\x89";

static struct proto_exec_state exec_fixture(const char *name)
{
    struct proto_exec_state e = {S("4wjtEiJZgcJ8jQ7ZAH8Gtq"), S("main"), S("company.team"),
                                 S("github-push"), S("on-push"), S("RUNNING"),
                                 S("2026-11-27T14:20:19.200Z"), NONE};

    if (strcmp(name, "state_success") == 0) {
        e.state = S("SUCCESS");
        e.time = S("2026-11-27T14:20:21.005Z");
        e.outputs = (struct proto_str){success_outputs, sizeof(success_outputs) - 1};
    } else if (strcmp(name, "state_failed") == 0) {
        e = (struct proto_exec_state){S("0000000000000000000001"), S("main"), S("ops"),
                                      S("batch-import"), S("import"), S("FAILED"),
                                      S("2024-02-29T23:59:59.999Z"), NONE};
    }
    return e;
}

static struct proto_trigger_state trigger_fixture(bool disabled)
{
    struct proto_trigger_state t = {S("main"), S("ops"), S("batch-import"), S("import"),
                                    disabled,  NONE,     NONE,              NONE};

    if (disabled) {
        t.execution_id = S("0000000000000000000001");
        t.state = S("FAILED");
        t.time = S("2024-02-29T23:59:59.999Z");
    } else {
        t.time = S("2024-03-01T08:00:00.000Z");
    }
    return t;
}

static const char *const exec_names[] = {"state_running", "state_success", "state_failed"};

static void read_vector(const char *name, char **buf, size_t *len)
{
    char path[256];
    FILE *f;
    long n;

    snprintf(path, sizeof(path), "testdata/%s.msgpack", name);
    f = fopen(path, "rb");
    assert_non_null(f);
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    n = ftell(f);
    assert_true(n > 0);
    rewind(f);
    *buf = malloc((size_t)n);
    assert_non_null(*buf);
    assert_int_equal(fread(*buf, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
}

static void assert_str(struct proto_str got, struct proto_str want)
{
    assert_int_equal(got.ptr == NULL, want.ptr == NULL);
    assert_int_equal(got.len, want.len);
    if (want.len > 0) {
        assert_memory_equal(got.ptr, want.ptr, want.len);
    }
}

static void assert_exec_equal(const struct proto_exec_state *a, const struct proto_exec_state *b)
{
    assert_str(a->id, b->id);
    assert_str(a->tenant_id, b->tenant_id);
    assert_str(a->ns, b->ns);
    assert_str(a->flow_id, b->flow_id);
    assert_str(a->trigger_id, b->trigger_id);
    assert_str(a->state, b->state);
    assert_str(a->time, b->time);
    assert_str(a->outputs, b->outputs);
}

/* Decodes from an exactly sized heap copy, so that AddressSanitizer sees any read past the end. */
static int exec_rc(const void *buf, size_t len)
{
    struct proto_exec_state_decoded d;
    char *copy = malloc(len ? len : 1);
    int rc;

    assert_non_null(copy);
    if (len > 0) {
        memcpy(copy, buf, len);
    }
    rc = proto_exec_state_decode(copy, len, &d);
    proto_exec_state_deinit(&d);
    free(copy);
    return rc;
}

static int trigger_rc(const void *buf, size_t len)
{
    struct proto_trigger_state t;
    char *copy = malloc(len ? len : 1);
    int rc;

    assert_non_null(copy);
    if (len > 0) {
        memcpy(copy, buf, len);
    }
    rc = proto_trigger_state_decode(copy, len, &t);
    free(copy);
    return rc;
}

/* ==== Golden vectors ==== */

static void test_exec_golden(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_SIZE(exec_names); i++) {
        struct proto_exec_state e = exec_fixture(exec_names[i]);
        struct proto_exec_state_decoded d;
        msgpack_sbuffer sb;
        char *want;
        size_t want_len;

        read_vector(exec_names[i], &want, &want_len);
        msgpack_sbuffer_init(&sb);
        assert_int_equal(proto_exec_state_encode(&e, &sb), PROTO_OK);
        assert_int_equal(sb.size, want_len);
        assert_memory_equal(sb.data, want, want_len);
        assert_int_equal(proto_message_kind(want, want_len), PROTO_KIND_EXEC_STATE);
        assert_int_equal(proto_exec_state_decode(want, want_len, &d), PROTO_OK);
        assert_exec_equal(&d.e, &e);
        assert_int_equal(d.state, proto_state_from_name(e.state.ptr, e.state.len));
        assert_int_equal(d.outputs.type,
                         e.outputs.ptr ? MSGPACK_OBJECT_MAP : MSGPACK_OBJECT_NIL);
        proto_exec_state_deinit(&d);
        msgpack_sbuffer_destroy(&sb);
        free(want);
    }
}

static void test_trigger_golden(void **state)
{
    static const char *const names[] = {"trigger_enabled", "trigger_disabled"};

    (void)state;
    for (int disabled = 0; disabled <= 1; disabled++) {
        struct proto_trigger_state t = trigger_fixture(disabled), got;
        msgpack_sbuffer sb;
        char *want;
        size_t want_len;

        read_vector(names[disabled], &want, &want_len);
        msgpack_sbuffer_init(&sb);
        assert_int_equal(proto_trigger_state_encode(&t, &sb), PROTO_OK);
        assert_int_equal(sb.size, want_len);
        assert_memory_equal(sb.data, want, want_len);
        assert_int_equal(proto_message_kind(want, want_len), PROTO_KIND_TRIGGER_STATE);
        assert_int_equal(proto_trigger_state_decode(want, want_len, &got), PROTO_OK);
        assert_int_equal(got.disabled, t.disabled);
        assert_str(got.tenant_id, t.tenant_id);
        assert_str(got.ns, t.ns);
        assert_str(got.flow_id, t.flow_id);
        assert_str(got.trigger_id, t.trigger_id);
        assert_str(got.execution_id, t.execution_id);
        assert_str(got.state, t.state);
        assert_str(got.time, t.time);
        msgpack_sbuffer_destroy(&sb);
        free(want);
    }
}

/* The trigger message is still told apart, and the wrong decoder refuses each message. */
static void test_kinds(void **state)
{
    char *buf;
    size_t len;

    (void)state;
    read_vector("no_body", &buf, &len);
    assert_int_equal(proto_message_kind(buf, len), PROTO_KIND_TRIGGER);
    assert_int_equal(exec_rc(buf, len), PROTO_ESHAPE);
    assert_int_equal(trigger_rc(buf, len), PROTO_ESHAPE);
    free(buf);
    read_vector("state_success", &buf, &len);
    assert_int_equal(trigger_rc(buf, len), PROTO_ESHAPE);
    free(buf);
    read_vector("trigger_disabled", &buf, &len);
    assert_int_equal(exec_rc(buf, len), PROTO_ESHAPE);
    free(buf);
    assert_int_equal(proto_message_kind("\x81\xa7message\xa1x", 12), PROTO_KIND_UNKNOWN);
    assert_int_equal(proto_message_kind("\xc1", 1), PROTO_KIND_TRIGGER);
    assert_int_equal(proto_message_kind(NULL, 0), PROTO_KIND_TRIGGER);
}

/* ==== Hostile and malformed input ==== */

static void test_truncations(void **state)
{
    static const char *const names[] = {"state_running", "state_success", "state_failed",
                                        "trigger_disabled", "trigger_enabled"};

    (void)state;
    for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
        bool exec = strncmp(names[i], "state_", 6) == 0;
        char *buf;
        size_t len;

        read_vector(names[i], &buf, &len);
        for (size_t cut = 0; cut < len; cut++) {
            assert_int_equal(exec ? exec_rc(buf, cut) : trigger_rc(buf, cut), PROTO_ETRUNC);
        }
        buf = realloc(buf, len + 1);
        assert_non_null(buf);
        buf[len] = 0;
        assert_int_equal(exec ? exec_rc(buf, len + 1) : trigger_rc(buf, len + 1),
                         PROTO_ETRAILING);
        free(buf);
    }
}

/* Builds an event from key/value pairs of raw msgpack, to break one rule at a time. */
struct kv {
    const char *key;
    const char *val; /* raw msgpack */
    size_t val_len;
};

#define KV(k, v) {(k), (v), sizeof(v) - 1}

static size_t build(const struct kv *kvs, size_t n, char *out)
{
    size_t len = 0;

    out[len++] = (char)(0x80 | n);
    for (size_t i = 0; i < n; i++) {
        size_t kl = strlen(kvs[i].key);
        out[len++] = (char)(0xa0 | kl);
        memcpy(out + len, kvs[i].key, kl);
        len += kl;
        memcpy(out + len, kvs[i].val, kvs[i].val_len);
        len += kvs[i].val_len;
    }
    return len;
}

static const struct kv base_exec[] = {
    KV("formatVersion", "\x01"),
    KV("message", "\xae" "executionState"),
    KV("id", "\xb6" "4wjtEiJZgcJ8jQ7ZAH8Gtq"),
    KV("tenantId", "\xa4main"),
    KV("namespace", "\xa2ns"),
    KV("flowId", "\xa1" "f"),
    KV("triggerId", "\xa1t"),
    KV("state", "\xa7SUCCESS"),
    KV("time", "\xb8" "2026-11-27T14:20:19.200Z"),
    KV("outputs", "\x81\xa1k\x01"),
};

struct exec_case {
    const char *what;
    size_t at;      /* index into base_exec to replace, or ARRAY_SIZE to append */
    struct kv with; /* key NULL: drop the entry at `at` */
    int rc;
};

static void test_exec_shapes(void **state)
{
    static const struct exec_case cases[] = {
        {"valid", 99, {NULL, NULL, 0}, PROTO_OK},
        {"no formatVersion", 0, {NULL, NULL, 0}, PROTO_ESHAPE},
        {"version 2", 0, KV("formatVersion", "\x02"), PROTO_EVERSION},
        {"version -1", 0, KV("formatVersion", "\xff"), PROTO_EVERSION},
        {"version str", 0, KV("formatVersion", "\xa1" "1"), PROTO_ESHAPE},
        {"no message", 1, {NULL, NULL, 0}, PROTO_ESHAPE},
        {"other message", 1, KV("message", "\xac" "triggerState"), PROTO_ESHAPE},
        {"short id", 2, KV("id", "\xa3" "abc"), PROTO_ESHAPE},
        {"id not base62", 2, KV("id", "\xb6" "4wjtEiJZgcJ8jQ7ZAH8Gt-"), PROTO_ESHAPE},
        {"tenant int", 3, KV("tenantId", "\x05"), PROTO_ESHAPE},
        {"no namespace", 4, {NULL, NULL, 0}, PROTO_ESHAPE},
        {"no triggerId", 6, {NULL, NULL, 0}, PROTO_ESHAPE},
        {"empty state", 7, KV("state", "\xa0"), PROTO_ESHAPE},
        {"unknown state, outputs", 7, KV("state", "\xa6" "ZOMBIE"), PROTO_OK},
        {"running with outputs", 7, KV("state", "\xa7RUNNING"), PROTO_ESHAPE},
        {"bad time", 8, KV("time", "\xb8" "2026-02-30T14:20:19.200Z"), PROTO_ESHAPE},
        {"outputs array", 9, KV("outputs", "\x91\x01"), PROTO_ESHAPE},
        {"outputs int key", 9, KV("outputs", "\x81\x01\x01"), PROTO_ESHAPE},
        {"no outputs", 9, {NULL, NULL, 0}, PROTO_OK},
        {"duplicate state", 10, KV("state", "\xa6" "FAILED"), PROTO_ESHAPE},
        {"unknown key", 10, KV("extra", "\x90"), PROTO_OK},
        {"invalid UTF-8", 10, KV("extra", "\xa1\xff"), PROTO_ESHAPE},
    };
    char buf[512];

    (void)state;
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        struct kv kvs[ARRAY_SIZE(base_exec) + 1];
        size_t n = 0;

        for (size_t k = 0; k <= ARRAY_SIZE(base_exec); k++) {
            if (k == cases[i].at) {
                if (cases[i].with.key != NULL) {
                    kvs[n++] = cases[i].with;
                }
            } else if (k < ARRAY_SIZE(base_exec)) {
                kvs[n++] = base_exec[k];
            }
        }
        size_t len = build(kvs, n, buf);
        print_message("%s\n", cases[i].what);
        assert_int_equal(exec_rc(buf, len), cases[i].rc);
    }
}

/* Non-minimal encodings are read; outputs keeps the bytes as they came. */
static void test_exec_nonminimal(void **state)
{
    static const struct kv kvs[] = {
        KV("outputs", "\xde\x00\x01\xd9\x01k\xcf\x00\x00\x00\x00\x00\x00\x00\x01"),
        KV("time", "\xd9\x18" "2026-11-27T14:20:19.200Z"),
        KV("state", "\xda\x00\x07SUCCESS"),
        KV("triggerId", "\xa1t"),
        KV("flowId", "\xa1" "f"),
        KV("namespace", "\xa2ns"),
        KV("tenantId", "\xa4main"),
        KV("id", "\xb6" "4wjtEiJZgcJ8jQ7ZAH8Gtq"),
        KV("message", "\xda\x00\x0e" "executionState"),
        KV("formatVersion", "\xcd\x00\x01"),
    };
    struct proto_exec_state_decoded d;
    char buf[512];
    size_t len = build(kvs, ARRAY_SIZE(kvs), buf);

    (void)state;
    assert_int_equal(proto_message_kind(buf, len), PROTO_KIND_EXEC_STATE);
    assert_int_equal(proto_exec_state_decode(buf, len, &d), PROTO_OK);
    assert_int_equal(d.state, PROTO_STATE_SUCCESS);
    assert_int_equal(d.e.outputs.len, kvs[0].val_len);
    assert_memory_equal(d.e.outputs.ptr, kvs[0].val, kvs[0].val_len);
    assert_int_equal(d.outputs.via.map.ptr[0].val.via.u64, 1);
    proto_exec_state_deinit(&d);
}

static void test_trigger_rules(void **state)
{
    struct proto_trigger_state t = trigger_fixture(true);
    msgpack_sbuffer sb;
    char buf[512];

    (void)state;
    msgpack_sbuffer_init(&sb);
    t.state = S("RUNNING"); /* only a terminal state disables */
    assert_int_equal(proto_trigger_state_encode(&t, &sb), PROTO_EINVAL);
    t.state = NONE;
    assert_int_equal(proto_trigger_state_encode(&t, &sb), PROTO_EINVAL);
    t = trigger_fixture(false);
    t.execution_id = S("0000000000000000000001");
    assert_int_equal(proto_trigger_state_encode(&t, &sb), PROTO_EINVAL);
    t = trigger_fixture(false);
    t.time = NONE;
    assert_int_equal(proto_trigger_state_encode(&t, &sb), PROTO_EINVAL);
    assert_int_equal(sb.size, 0);
    msgpack_sbuffer_destroy(&sb);

    /* Readers refuse the same: disabled without an execution, enabled with one. */
    static const struct kv disabled_no_exec[] = {
        KV("formatVersion", "\x01"), KV("message", "\xac" "triggerState"),
        KV("tenantId", "\xa4main"),  KV("namespace", "\xa2ns"),
        KV("flowId", "\xa1" "f"),    KV("triggerId", "\xa1t"),
        KV("disabled", "\xc3"),      KV("time", "\xb8" "2026-11-27T14:20:19.200Z"),
    };
    assert_int_equal(trigger_rc(buf, build(disabled_no_exec, 8, buf)), PROTO_ESHAPE);
    static const struct kv enabled_with_state[] = {
        KV("formatVersion", "\x01"), KV("message", "\xac" "triggerState"),
        KV("tenantId", "\xa4main"),  KV("namespace", "\xa2ns"),
        KV("flowId", "\xa1" "f"),    KV("triggerId", "\xa1t"),
        KV("disabled", "\xc2"),      KV("time", "\xb8" "2026-11-27T14:20:19.200Z"),
        KV("state", "\xa6" "FAILED"),
    };
    assert_int_equal(trigger_rc(buf, build(enabled_with_state, 9, buf)), PROTO_ESHAPE);
    assert_int_equal(trigger_rc(buf, build(enabled_with_state, 8, buf)), PROTO_OK);
    static const struct kv disabled_not_bool[] = {
        KV("formatVersion", "\x01"), KV("message", "\xac" "triggerState"),
        KV("tenantId", "\xa4main"),  KV("namespace", "\xa2ns"),
        KV("flowId", "\xa1" "f"),    KV("triggerId", "\xa1t"),
        KV("disabled", "\x01"),      KV("time", "\xb8" "2026-11-27T14:20:19.200Z"),
    };
    assert_int_equal(trigger_rc(buf, build(disabled_not_bool, 8, buf)), PROTO_ESHAPE);
}

static void test_exec_encode_invalid(void **state)
{
    struct proto_exec_state e = exec_fixture("state_success");
    msgpack_sbuffer sb;

    (void)state;
    msgpack_sbuffer_init(&sb);
    e.state = S("RUNNING");
    assert_int_equal(proto_exec_state_encode(&e, &sb), PROTO_EINVAL);
    e.state = S("ZOMBIE"); /* producers write only names they know */
    e.outputs = NONE;
    assert_int_equal(proto_exec_state_encode(&e, &sb), PROTO_EINVAL);
    e = exec_fixture("state_success");
    e.outputs = S("\x81\x01\x01"); /* int key */
    assert_int_equal(proto_exec_state_encode(&e, &sb), PROTO_EINVAL);
    e.outputs = S("\x91\x01"); /* not a map */
    assert_int_equal(proto_exec_state_encode(&e, &sb), PROTO_EINVAL);
    e.outputs = S("\x81\xa1k"); /* cut */
    assert_int_equal(proto_exec_state_encode(&e, &sb), PROTO_EINVAL);
    e = exec_fixture("state_running");
    e.id = S("short");
    assert_int_equal(proto_exec_state_encode(&e, &sb), PROTO_EINVAL);
    e = exec_fixture("state_running");
    e.ns = NONE;
    assert_int_equal(proto_exec_state_encode(&e, &sb), PROTO_EINVAL);
    e.ns = S("\xff");
    assert_int_equal(proto_exec_state_encode(&e, &sb), PROTO_EINVAL);
    assert_int_equal(sb.size, 0);
    msgpack_sbuffer_destroy(&sb);
}

/* ==== Names and keys ==== */

static void test_state_names(void **state)
{
    static const char *const terminal[] = {"FAILED",    "WARNING", "SUCCESS", "KILLED",
                                           "CANCELLED", "RETRIED", "SKIPPED", "RESUBMITTED"};
    int count = 0;

    (void)state;
    for (int st = 1; st < PROTO_STATE_COUNT_; st++) {
        const char *name = proto_state_name(st);
        assert_non_null(name);
        assert_int_equal(proto_state_from_name(name, strlen(name)), st);
        count += proto_state_terminal(st);
    }
    assert_int_equal(count, ARRAY_SIZE(terminal));
    for (size_t i = 0; i < ARRAY_SIZE(terminal); i++) {
        assert_true(proto_state_terminal(proto_state_from_name(terminal[i], strlen(terminal[i]))));
    }
    assert_int_equal(proto_state_from_name("success", 7), PROTO_STATE_UNKNOWN);
    assert_int_equal(proto_state_from_name("SUCCESSX", 8), PROTO_STATE_UNKNOWN);
    assert_int_equal(proto_state_from_name("SUCCES", 6), PROTO_STATE_UNKNOWN);
    assert_null(proto_state_name(PROTO_STATE_UNKNOWN));
    assert_null(proto_state_name(PROTO_STATE_COUNT_));
    assert_false(proto_state_terminal(PROTO_STATE_RUNNING));
    assert_false(proto_state_terminal(PROTO_STATE_UNKNOWN));
}

static void test_trigger_key(void **state)
{
    struct proto_str t = S("main"), ns = S("company.team"), f = S("flow"), id = S("hook");
    char key[64];

    (void)state;
    assert_int_equal(proto_trigger_key(&t, &ns, &f, &id, key, sizeof(key)), 27);
    assert_string_equal(key, "main/company.team/flow/hook");
    assert_int_equal(proto_trigger_key(&t, &ns, &f, &id, key, 28), 27);
    assert_int_equal(proto_trigger_key(&t, &ns, &f, &id, key, 27), -ENOSPC);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exec_golden),
        cmocka_unit_test(test_trigger_golden),
        cmocka_unit_test(test_kinds),
        cmocka_unit_test(test_truncations),
        cmocka_unit_test(test_exec_shapes),
        cmocka_unit_test(test_exec_nonminimal),
        cmocka_unit_test(test_trigger_rules),
        cmocka_unit_test(test_exec_encode_invalid),
        cmocka_unit_test(test_state_names),
        cmocka_unit_test(test_trigger_key),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
