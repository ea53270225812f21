/*
 * webhook_test.c: route shape, methods, key lookup, disabled answers, and the message built for
 * an accepted request (headers, parameters by Netty's rules, body, masked path).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "webhook.h"
#include "yaml.h"

static struct flow flows[2];
static struct flow_trigger trigs[3];
static struct flow_set fs = {flows, 2, 1, 1};
static struct route_table *rt;
static struct hook_ctx *ctx;

static int setup(void **state)
{
    (void)state;
    flows[0] = (struct flow){.id = "hello", .ns = "company.team", .topic = "t1",
                             .triggers = &trigs[0], .ntriggers = 2};
    flows[1] = (struct flow){.id = "off", .ns = "company.team", .topic = "t2", .disabled = true,
                             .triggers = &trigs[2], .ntriggers = 1};
    trigs[0] = (struct flow_trigger){.id = "hook", .key = "s3cret", .key_len = 6, .flow = &flows[0]};
    trigs[1] = (struct flow_trigger){.id = "paused", .key = "other", .key_len = 5,
                                     .disabled = true, .flow = &flows[0]};
    trigs[2] = (struct flow_trigger){.id = "hook", .key = "k", .key_len = 1, .flow = &flows[1]};
    rt = route_table_new(&fs, "main");
    ctx = hook_ctx_new(rt, "main", 1);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    hook_ctx_free(ctx);
    route_table_free(rt);
    return 0;
}

static enum hook_verdict run(const char *method, const char *path, const char *query,
                             const struct hook_header *h, size_t nh, const char *body,
                             struct hook_req *hr)
{
    struct hook_input in = {
        .method = strv_of(method),
        .path = strv_of(path),
        .query = query ? strv_of(query) : (struct strv){NULL, 0},
        .headers = h,
        .nheaders = nh,
        .body = strv_of(body ? body : ""),
        .remote_addr = "127.0.0.1",
    };
    return hook_process(ctx, &in, hr);
}

static enum hook_verdict verdict(const char *method, const char *path)
{
    struct hook_req *hr = hook_req_new();
    enum hook_verdict v = run(method, path, NULL, NULL, 0, NULL, hr);
    hook_req_free(hr);
    return v;
}

static void routes_and_methods(void **state)
{
    (void)state;
    assert_int_equal(verdict("POST", "/api/v1/executions/webhook/company.team/hello/s3cret"),
                     HOOK_ACCEPTED);
    assert_int_equal(verdict("GET", "/api/v1/main/executions/webhook/company.team/hello/s3cret"),
                     HOOK_ACCEPTED);
    assert_int_equal(verdict("PUT", "/api/v1/executions/webhook/company%2Eteam/hel%6co/s3cret"),
                     HOOK_ACCEPTED);
    assert_int_equal(verdict("DELETE", "/api/v1/executions/webhook/company.team/hello/s3cret"),
                     HOOK_METHOD_NOT_ALLOWED);
    assert_int_equal(verdict("HEAD", "/api/v1/executions/webhook/company.team/hello/s3cret"),
                     HOOK_METHOD_NOT_ALLOWED);
    assert_int_equal(verdict("POST", "/api/v1/executions/webhook/company.team/hello/s3cret/"),
                     HOOK_NOT_FOUND);
    assert_int_equal(verdict("POST", "/api/v1/executions/webhook/company.team/hello/s3cret/x"),
                     HOOK_NOT_FOUND);
    assert_int_equal(verdict("POST", "/api/v1/executions/webhook/company.team//s3cret"),
                     HOOK_NOT_FOUND);
    assert_int_equal(verdict("POST", "/api/v1/other/executions/webhook/company.team/hello/s3cret"),
                     HOOK_NOT_FOUND);
    assert_int_equal(verdict("POST", "/api/v1/executions/webhook/company.team/hello/wrong"),
                     HOOK_NOT_FOUND);
    assert_int_equal(verdict("POST", "/api/v1/executions/webhook/company.team/nope/s3cret"),
                     HOOK_NOT_FOUND);
    assert_int_equal(verdict("POST", "/"), HOOK_NOT_FOUND);
    assert_int_equal(verdict("POST", ""), HOOK_NOT_FOUND);
    assert_int_equal(verdict("POST", "/api/v1/executions/webhook/company.team/hello/%zz"),
                     HOOK_BAD_ESCAPE);
    assert_int_equal(verdict("POST", "/api/v1/executions/webhook/company.team/hello/s3cret%"),
                     HOOK_BAD_ESCAPE);
}

static void disabled(void **state)
{
    (void)state;
    assert_int_equal(verdict("POST", "/api/v1/executions/webhook/company.team/hello/other"),
                     HOOK_TRIGGER_DISABLED);
    assert_int_equal(verdict("POST", "/api/v1/executions/webhook/company.team/off/k"),
                     HOOK_FLOW_DISABLED);
    /* Without the key a disabled flow is indistinguishable from a missing one. */
    assert_int_equal(verdict("POST", "/api/v1/executions/webhook/company.team/off/x"),
                     HOOK_NOT_FOUND);
}

static void framing(void **state)
{
    (void)state;
    struct hook_header dup[] = {{STRV_LIT("Content-Length"), STRV_LIT("2")},
                                {STRV_LIT("content-length"), STRV_LIT("2")}};
    struct hook_header te[] = {{STRV_LIT("Content-Length"), STRV_LIT("2")},
                               {STRV_LIT("Transfer-Encoding"), STRV_LIT("chunked")}};
    struct hook_req *hr = hook_req_new();
    const char *p = "/api/v1/executions/webhook/company.team/hello/s3cret";
    assert_int_equal(run("POST", p, NULL, dup, 2, "{}", hr), HOOK_BAD_FRAMING);
    assert_int_equal(run("POST", p, NULL, te, 2, "{}", hr), HOOK_BAD_FRAMING);
    assert_int_equal(run("POST", p, NULL, dup, 1, "{}", hr), HOOK_ACCEPTED);
    hook_req_free(hr);
}

/* ==== The message ==== */

static const msgpack_object *get(const msgpack_object *map, const char *key)
{
    assert_int_equal(map->type, MSGPACK_OBJECT_MAP);
    const msgpack_object *found = NULL;
    for (uint32_t i = 0; i < map->via.map.size; i++) {
        const msgpack_object *k = &map->via.map.ptr[i].key;
        if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == strlen(key) &&
            memcmp(k->via.str.ptr, key, k->via.str.size) == 0) {
            found = &map->via.map.ptr[i].val;
        }
    }
    return found;
}

static void assert_str(const msgpack_object *o, const char *want)
{
    assert_non_null(o);
    assert_int_equal(o->type, MSGPACK_OBJECT_STR);
    assert_int_equal(o->via.str.size, strlen(want));
    assert_memory_equal(o->via.str.ptr, want, strlen(want));
}

/* Asserts that map[key] is the list of strings `want` (NULL-terminated). */
static void assert_list(const msgpack_object *map, const char *key, const char *const *want)
{
    const msgpack_object *l = get(map, key);
    assert_non_null(l);
    assert_int_equal(l->type, MSGPACK_OBJECT_ARRAY);
    uint32_t n = 0;
    while (want[n]) {
        n++;
    }
    assert_int_equal(l->via.array.size, n);
    for (uint32_t i = 0; i < n; i++) {
        assert_str(&l->via.array.ptr[i], want[i]);
    }
}

static void unpack(struct hook_req *hr, msgpack_unpacked *u)
{
    size_t off = 0;
    msgpack_unpacked_init(u);
    assert_int_equal(msgpack_unpack_next(u, hr->msg.data, hr->msg.size, &off),
                     MSGPACK_UNPACK_SUCCESS);
    assert_int_equal(off, hr->msg.size);
}

static void message_fields(void **state)
{
    (void)state;
    struct hook_header h[] = {
        {STRV_LIT("X-Event"), STRV_LIT("push")},
        {STRV_LIT("Accept"), STRV_LIT("a")},
        {STRV_LIT("x-event"), STRV_LIT("lower")},
        {STRV_LIT("X-Event"), STRV_LIT("again")},
    };
    struct hook_req *hr = hook_req_new();
    msgpack_unpacked u;
    assert_int_equal(run("POST", "/api/v1/main/executions/webhook/company.team/hello/s3cret",
                         "a=1&b=x+y&a=2;flag&=v&e=&c=%2B", h, 4, "{\"k\":[1,2.5,null]}", hr),
                     HOOK_ACCEPTED);
    assert_int_equal(strlen(hr->id), HOOK_ID_LEN);
    unpack(hr, &u);
    const msgpack_object *m = &u.data;
    assert_int_equal(get(m, "formatVersion")->via.u64, 1);
    assert_str(get(m, "id"), hr->id);
    assert_str(get(m, "tenantId"), "main");
    assert_str(get(m, "namespace"), "company.team");
    assert_str(get(m, "flowId"), "hello");
    const msgpack_object *req = get(m, "request");
    assert_str(get(req, "method"), "POST");
    assert_str(get(req, "path"), "/api/v1/main/executions/webhook/company.team/hello/********");
    assert_str(get(req, "remoteAddress"), "127.0.0.1");
    const msgpack_object *trig = get(m, "trigger");
    assert_str(get(trig, "id"), "hook");
    assert_str(get(trig, "type"), FLOW_TRIGGER_TYPE);
    const msgpack_object *vars = get(trig, "variables");
    const msgpack_object *hdrs = get(vars, "headers");
    assert_int_equal(hdrs->via.map.size, 3);
    assert_str(&hdrs->via.map.ptr[0].key, "X-Event");
    assert_list(hdrs, "X-Event", (const char *const[]){"push", "again", NULL});
    assert_list(hdrs, "x-event", (const char *const[]){"lower", NULL});
    const msgpack_object *params = get(vars, "parameters");
    assert_list(params, "a", (const char *const[]){"1", "2", NULL});
    assert_list(params, "b", (const char *const[]){"x y", NULL});
    assert_list(params, "flag", (const char *const[]){"", NULL});
    assert_list(params, "v", (const char *const[]){"", NULL});
    assert_list(params, "e", (const char *const[]){"", NULL});
    assert_list(params, "c", (const char *const[]){"+", NULL});
    assert_str(&params->via.map.ptr[0].key, "a");
    const msgpack_object *body = get(vars, "body");
    assert_int_equal(body->type, MSGPACK_OBJECT_MAP);
    assert_int_equal(get(body, "k")->via.array.size, 3);
    assert_null(strstr(hr->msg.data, "s3cret"));
    msgpack_unpacked_destroy(&u);
    hook_req_free(hr);
}

static void empty_body_is_absent(void **state)
{
    (void)state;
    struct hook_req *hr = hook_req_new();
    msgpack_unpacked u;
    assert_int_equal(run("GET", "/api/v1/executions/webhook/company.team/hello/s3cret", NULL,
                         NULL, 0, "", hr),
                     HOOK_ACCEPTED);
    unpack(hr, &u);
    const msgpack_object *vars = get(get(&u.data, "trigger"), "variables");
    assert_null(get(vars, "body"));
    assert_int_equal(get(vars, "headers")->via.map.size, 0);
    assert_int_equal(get(vars, "parameters")->via.map.size, 0);
    msgpack_unpacked_destroy(&u);
    hook_req_free(hr);
}

static void raw_string_body(void **state)
{
    (void)state;
    struct hook_req *hr = hook_req_new();
    msgpack_unpacked u;
    assert_int_equal(run("POST", "/api/v1/executions/webhook/company.team/hello/s3cret", NULL,
                         NULL, 0, "\"bla\"", hr),
                     HOOK_ACCEPTED);
    unpack(hr, &u);
    assert_str(get(get(get(&u.data, "trigger"), "variables"), "body"), "\"bla\"");
    msgpack_unpacked_destroy(&u);
    hook_req_free(hr);
}

static void bad_query_escape(void **state)
{
    (void)state;
    struct hook_req *hr = hook_req_new();
    assert_int_equal(run("POST", "/api/v1/executions/webhook/company.team/hello/s3cret", "a=%G1",
                         NULL, 0, "", hr),
                     HOOK_BAD_ESCAPE);
    hook_req_free(hr);
}

static void ids_unique(void **state)
{
    (void)state;
    enum { N = 20000 };
    static char ids[N][HOOK_ID_LEN + 1];
    for (int i = 0; i < N; i++) {
        hook_new_id(ids[i]);
        assert_int_equal(strspn(ids[i], "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"),
                         HOOK_ID_LEN);
    }
    qsort(ids, N, sizeof(ids[0]), (int (*)(const void *, const void *))strcmp);
    for (int i = 1; i < N; i++) {
        assert_string_not_equal(ids[i - 1], ids[i]);
    }
}

static void id_digits(void **state)
{
    (void)state;
    static const char digits[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    unsigned char u[16];
    char id[HOOK_ID_LEN + 1];
    memset(u, 0, sizeof(u));
    hook_id_of_uuid(u, id);
    assert_string_equal(id, "0000000000000000000000");
    u[15] = 61;
    hook_id_of_uuid(u, id);
    assert_string_equal(id, "000000000000000000000z");
    u[15] = 62;
    hook_id_of_uuid(u, id);
    assert_string_equal(id, "0000000000000000000010");
    memset(u, 0xFF, sizeof(u));
    hook_id_of_uuid(u, id); /* 2^128 - 1 */
    assert_string_equal(id, "7n42DGM5Tflk9n8mt7Fhc7");
    /* Any value: the digits read back, most significant first, give the bytes again. */
    uint64_t x = 0x9E3779B97F4A7C15ULL;
    for (int n = 0; n < 2000; n++) {
        for (int i = 0; i < 16; i++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            u[i] = (unsigned char)x;
        }
        hook_id_of_uuid(u, id);
        __extension__ unsigned __int128 v = 0, w = 0;
        for (int i = 0; i < HOOK_ID_LEN; i++) {
            v = v * 62 + (unsigned)(strchr(digits, id[i]) - digits);
        }
        for (int i = 0; i < 16; i++) {
            w = w << 8 | u[i];
        }
        assert_true(v == w);
    }
}

static void success_body(void **state)
{
    (void)state;
    struct hook_req *hr = hook_req_new();
    struct sbuf b;
    sbuf_init(&b);
    run("POST", "/api/v1/executions/webhook/company.team/hello/s3cret", NULL, NULL, 0, "", hr);
    hook_success_body(hr, "main", &b);
    char want[512];
    snprintf(want, sizeof(want),
             "{\"id\":\"%s\",\"namespace\":\"company.team\",\"flowId\":\"hello\",\"tenantId\":"
             "\"main\",\"trigger\":{\"id\":\"hook\",\"type\":\"" FLOW_TRIGGER_TYPE
             "\"},\"state\":{\"current\":\"CREATED\"}}",
             hr->id);
    assert_string_equal(b.data, want);
    sbuf_deinit(&b);
    hook_req_free(hr);
}

/* A real set of one flow, as flow_set_load builds it (refs 1); `extra` adds trigger keys. */
static struct flow_set *flow_set_with(const char *flow_id, const char *extra)
{
    struct diag_list dl;
    diag_list_init(&dl);
    char *text = xasprintf("id: %s\nnamespace: company.team\ntriggers:\n  - id: hook\n"
                           "    type: io.kestra.plugin.core.trigger.Webhook\n    key: k2\n%s",
                           flow_id, extra);
    struct yml_doc *doc = yml_load_string("f.yaml", text, strlen(text), &dl);
    struct cfg *cfg = cfg_new_defaults();
    struct flow_set *set = flow_set_new();
    assert_non_null(doc);
    assert_int_equal(flow_set_add_doc(set, doc, &dl), 0);
    assert_int_equal(flow_set_finish(set, cfg, &dl), 0);
    assert_int_equal(dl.n, 0);
    cfg_free(cfg);
    yml_doc_free(doc);
    xfree(text);
    diag_list_deinit(&dl);
    return set;
}

static struct flow_set *one_flow_set(const char *flow_id)
{
    return flow_set_with(flow_id, "");
}

/* 17 keys: the map moves its elements up when it closes, and the extents inside it. */
#define BIG_BODY \
    "{\"big\":{\"k0\":[0,{}],\"k1\":[1,{}],\"k2\":[2,{}],\"k3\":[3,{}]," \
    "\"k4\":[4,{}],\"k5\":[5,{}],\"k6\":[6,{}],\"k7\":[7,{}],\"k8\":[8,{}]," \
    "\"k9\":[9,{}],\"k10\":[10,{}],\"k11\":[11,{}],\"k12\":[12,{}],\"k13\":[13,{}]," \
    "\"k14\":[14,{}],\"k15\":[15,{}],\"k16\":[16,{}]},\"after\":\"x\"}"

/*
 * Conditions that read constant paths get the message unpacked only along them (reads set);
 * one that reads `trigger` whole gets all of it. Either way the verdicts are the real ones.
 */
static void conditions_read_what_they_need(void **state)
{
    (void)state;
    const struct hook_header PUSH[] = {{STRV_LIT("X-GitHub-Event"), STRV_LIT("push")}};
    static const struct {
        const char *when;
        bool pruned;
        const char *body;
        enum hook_verdict want;
    } CASES[] = {
        {"trigger.body.ref == 'main' and trigger.headers['X-GitHub-Event'][0] == 'push'", true,
         "{\"ref\":\"x\",\"big\":[1,2,{\"ref\":\"y\"}],\"ref\":\"main\"}", HOOK_ACCEPTED},
        {"trigger.body.ref == 'main'", true, "{\"ref\":\"main\",\"ref\":\"x\"}",
         HOOK_CONDITIONS_FALSE},
        {"trigger.body.ref == 'main'", true, NULL, HOOK_CONDITIONS_FALSE},
        {"trigger.body.commits | length == 2", true, "{\"commits\":[{},{}]}", HOOK_ACCEPTED},
        {"trigger.parameters.a[0] == '1'", true, NULL, HOOK_ACCEPTED},
        /* The body's containers are jumped over (pack_extents): a key after a 17-key map
         * whose elements moved up when it closed, and a value inside it, read right. */
        {"trigger.body.after == 'x'", true, BIG_BODY, HOOK_ACCEPTED},
        {"trigger.body.big.k16[0] == 16 and trigger.body.big.k3[0] == 3", true, BIG_BODY,
         HOOK_ACCEPTED},
        {"trigger.body.after == 'x'", true, "after", HOOK_CONDITIONS_FALSE},
        {"trigger | length == 3", false, "{}", HOOK_ACCEPTED},
        {"trigger | length == 3", false, NULL, HOOK_CONDITIONS_FALSE},
    };
    for (size_t i = 0; i < ARRAY_LEN(CASES); i++) {
        char *extra = xasprintf("    conditions:\n"
                                "      - type: io.kestra.plugin.core.condition.Expression\n"
                                "        expression: \"{{ %s }}\"\n",
                                CASES[i].when);
        struct flow_set *set = flow_set_with("cond", extra);
        struct route_table *rt2 = route_table_new(set, "main");
        hook_ctx_set_routes(ctx, rt2, set);
        assert_int_equal(set->flows[0].triggers[0].reads != NULL, CASES[i].pruned);
        struct hook_req *hr = hook_req_new();
        enum hook_verdict v = run("POST", "/api/v1/executions/webhook/company.team/cond/k2",
                                  "a=1", PUSH, 1, CASES[i].body, hr);
        if (v != CASES[i].want) {
            print_error("%s with %s: verdict %d\n", CASES[i].when, CASES[i].body, v);
        }
        assert_int_equal(v, CASES[i].want);
        hook_req_free(hr);
        hook_ctx_set_routes(ctx, rt, &fs);
        route_table_free(rt2);
        flow_set_free(set);
        xfree(extra);
    }
}

/*
 * A request that matched a trigger holds its flow set: after a reload swapped the set out and
 * dropped the service's reference, the request still reads its flow; its free releases the set
 * (ASan reports a use after free or a leak if either is wrong). A miss takes no reference.
 */
static void request_keeps_its_flow_set(void **state)
{
    (void)state;
    struct flow_set *set = one_flow_set("gone");
    struct route_table *rt2 = route_table_new(set, "main");
    hook_ctx_set_routes(ctx, rt2, set);
    assert_int_equal(verdict("POST", "/api/v1/executions/webhook/company.team/gone/nope"),
                     HOOK_NOT_FOUND);
    assert_int_equal(set->refs, 1);
    struct hook_req *hr = hook_req_new();
    assert_int_equal(run("POST", "/api/v1/executions/webhook/company.team/gone/k2", NULL, NULL, 0,
                         NULL, hr),
                     HOOK_ACCEPTED);
    assert_ptr_equal(hr->flows, set);
    assert_int_equal(set->refs, 2);
    /* The reload: the old routes go at once, the service drops its reference. */
    hook_ctx_set_routes(ctx, rt, &fs);
    route_table_free(rt2);
    flow_set_free(set);
    assert_int_equal(verdict("POST", "/api/v1/executions/webhook/company.team/gone/k2"),
                     HOOK_NOT_FOUND);
    assert_string_equal(hr->trigger->flow->id, "gone");
    assert_string_equal(hr->trigger->flow->topic, "webhooks.company.team.gone");
    hook_req_free(hr);
    assert_int_equal(fs.refs, 1);
}

static void answers_table(void **state)
{
    (void)state;
    for (int v = 0; v < HOOK_VERDICT_COUNT; v++) {
        const struct hook_answer *a = hook_answer((enum hook_verdict)v);
        assert_true(a->status >= 200 && a->status < 600);
        if (a->status >= 400) {
            assert_non_null(a->message);
        }
    }
    assert_int_equal(hook_answer(HOOK_NOT_FOUND)->status, 404);
    assert_string_equal(hook_answer(HOOK_NOT_FOUND)->message, "Not Found: Webhook not found");
    assert_true(hook_answer(HOOK_QUEUE_FULL)->retry_after);
    assert_true(hook_answer(HOOK_DELIVERY_FAILED)->retry_after);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(routes_and_methods), cmocka_unit_test(disabled),
        cmocka_unit_test(framing),            cmocka_unit_test(message_fields),
        cmocka_unit_test(empty_body_is_absent), cmocka_unit_test(raw_string_body),
        cmocka_unit_test(bad_query_escape),   cmocka_unit_test(ids_unique),
        cmocka_unit_test(id_digits),
        cmocka_unit_test(success_body),       cmocka_unit_test(answers_table),
        cmocka_unit_test(request_keeps_its_flow_set),
        cmocka_unit_test(conditions_read_what_they_need),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
