/*
 * execstate_test.c: the functions the admin listener mounts (xs_disabled_json, xs_enable) and
 * the stopAfter path, against librdkafka's mock cluster in this process (the embedded bootstrap
 * that publish.c starts). Every wait is bounded.
 */
#include "execstate.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>
#include <librdkafka/rdkafka.h>

#include "proto.h"
#include "publish.h"
#include "util.h"
#include "yaml.h"

#define DEADLINE_US (20 * 1000000LL)

static const char flow_yaml[] = "id: deploy\n"
                                "namespace: company.team\n"
                                "triggers:\n"
                                "  - id: hook\n"
                                "    type: io.kestra.plugin.core.trigger.Webhook\n"
                                "    key: k\n"
                                "    stopAfter: [FAILED, KILLED]\n";

static void no_delivery(void *opaque, enum pub_result result, const char *reason)
{
    (void)opaque;
    (void)result;
    (void)reason;
}

struct fixture {
    struct event_base *base;
    struct cfg *cfg;
    struct pub *pub;
    struct flow_set *fs;
    rd_kafka_t *rk; /* the executor's part: writes state events */
};

#define OLD_TIME "2026-11-27T10:00:00.000Z"

static void produce_state_at(struct fixture *fx, const char *id, const char *state,
                             const char *when)
{
    struct proto_exec_state e = {{id, strlen(id)},     {"main", 4},
                                 {"company.team", 12}, {"deploy", 6},
                                 {"hook", 4},          {state, strlen(state)},
                                 {when, strlen(when)}, {NULL, 0}};
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    assert_int_equal(proto_exec_state_encode(&e, &sb), PROTO_OK);
    assert_int_equal(rd_kafka_producev(fx->rk, RD_KAFKA_V_TOPIC(fx->cfg->kafka.state_topic),
                                       RD_KAFKA_V_KEY(id, strlen(id)),
                                       RD_KAFKA_V_VALUE(sb.data, sb.size),
                                       RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END),
                     RD_KAFKA_RESP_ERR_NO_ERROR);
    assert_int_equal(rd_kafka_flush(fx->rk, 10000), RD_KAFKA_RESP_ERR_NO_ERROR);
    msgpack_sbuffer_destroy(&sb);
}

static void produce_state(struct fixture *fx, const char *id, const char *state)
{
    produce_state_at(fx, id, state, OLD_TIME);
}

/* Runs the loop for `ms` milliseconds. */
static void run_for(struct fixture *fx, long ms)
{
    long long end = util_now_us() + ms * 1000LL;
    while (util_now_us() < end) {
        event_base_loop(fx->base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
        usleep(10000);
    }
}

/* Runs the loop until xs has `want` disabled triggers; false past the deadline. */
static bool run_until(struct fixture *fx, struct xs *x, size_t want)
{
    long long end = util_now_us() + DEADLINE_US;
    while (xs_disabled_count(x) != want && util_now_us() < end) {
        event_base_loop(fx->base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
        usleep(10000);
    }
    return xs_disabled_count(x) == want;
}

/* Records in topic (sum of high watermarks); runs the loop meanwhile, so writes go out. */
static int64_t records_in(struct fixture *fx, const char *topic, int64_t want)
{
    long long end = util_now_us() + DEADLINE_US;
    int64_t total = 0;
    while (util_now_us() < end) {
        const struct rd_kafka_metadata *md = NULL;
        rd_kafka_topic_t *rkt = rd_kafka_topic_new(fx->rk, topic, NULL);
        total = 0;
        if (rd_kafka_metadata(fx->rk, 0, rkt, &md, 2000) == RD_KAFKA_RESP_ERR_NO_ERROR &&
            md->topic_cnt == 1) {
            for (int p = 0; p < md->topics[0].partition_cnt; p++) {
                int64_t lo = 0, hi = 0;
                rd_kafka_query_watermark_offsets(fx->rk, topic, p, &lo, &hi, 2000);
                total += hi;
            }
        }
        if (md) {
            rd_kafka_metadata_destroy(md);
        }
        rd_kafka_topic_destroy(rkt);
        if (total >= want) {
            break;
        }
        event_base_loop(fx->base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
        usleep(20000);
    }
    return total;
}

static int setup(void **state)
{
    static struct fixture fx;
    char err[256];
    struct diag_list dl;

    memset(&fx, 0, sizeof(fx));
    diag_list_init(&dl);
    fx.base = event_base_new();
    fx.cfg = cfg_new_defaults(); /* bootstrap "": the embedded mock cluster */
    fx.pub = pub_new(fx.cfg, fx.base, no_delivery, err, sizeof(err));
    assert_non_null(fx.pub);
    struct yml_doc *doc = yml_load_string("deploy.yaml", flow_yaml, strlen(flow_yaml), &dl);
    fx.fs = flow_set_new();
    assert_int_equal(flow_set_add_doc(fx.fs, doc, &dl), 0);
    yml_doc_free(doc);
    diag_list_deinit(&dl);
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", pub_embedded_bootstrap(fx.pub), err, sizeof(err));
    fx.rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
    assert_non_null(fx.rk);
    *state = &fx;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *fx = *state;
    rd_kafka_destroy(fx->rk);
    flow_set_free(fx->fs);
    pub_free(fx->pub);
    cfg_free(fx->cfg);
    event_base_free(fx->base);
    return 0;
}

static struct xs *start_xs(struct fixture *fx)
{
    char err[256] = "";
    struct xs *x = xs_new(fx->cfg, pub_embedded_bootstrap(fx->pub), fx->base, err, sizeof(err));
    assert_non_null(x);
    xs_set_flows(x, fx->fs);
    if (xs_load(x, 20000, err, sizeof(err)) != 0) {
        fail_msg("xs_load: %s", err);
    }
    return x;
}

/* stopAfter, the list, enabling again, and a second replica's view after each step. */
static void stop_list_enable(void **state)
{
    struct fixture *fx = *state;
    struct sbuf js;
    char err[256];
    const struct flow_trigger *tr = &flow_set_find(fx->fs, "company.team", "deploy")->triggers[0];

    sbuf_init(&js);
    struct xs *a = start_xs(fx);
    xs_disabled_json(a, &js);
    assert_int_equal(js.len, 2);
    assert_memory_equal(js.data, "[]", 2);
    assert_false(xs_is_disabled(a, "main", tr));

    /* A SUCCESS is not in stopAfter; a FAILED is. */
    produce_state(fx, "0000000000000000000001", "SUCCESS");
    produce_state(fx, "0000000000000000000002", "FAILED");
    assert_true(run_until(fx, a, 1));
    assert_true(xs_is_disabled(a, "main", tr));
    assert_false(xs_is_disabled(a, "other", tr));
    sbuf_reset(&js);
    xs_disabled_json(a, &js);
    sbuf_append(&js, "", 1);
    assert_string_equal(js.data, "[{\"tenantId\":\"main\",\"namespace\":\"company.team\","
                                 "\"flowId\":\"deploy\",\"triggerId\":\"hook\","
                                 "\"executionId\":\"0000000000000000000002\",\"state\":\"FAILED\","
                                 "\"time\":\"2026-11-27T10:00:00.000Z\"}]");

    /* A replica started now reads the record before it serves. */
    assert_int_equal(records_in(fx, fx->cfg->kafka.triggers_topic, 1), 1);
    struct xs *b = start_xs(fx);
    assert_int_equal(xs_disabled_count(b), 1);
    assert_true(xs_is_disabled(b, "main", tr));

    assert_int_equal(xs_enable(a, "main", "company.team", "deploy", "nope", err, sizeof(err)),
                     -ENOENT);
    assert_int_equal(xs_enable(a, "main", "company/team", "deploy", "hook", err, sizeof(err)),
                     -EINVAL);
    assert_int_equal(xs_enable(a, "main", "company.team", "deploy", "hook", err, sizeof(err)), 0);
    assert_int_equal(xs_disabled_count(a), 0);
    assert_false(xs_is_disabled(a, "main", tr));
    /* b follows the record a wrote. */
    assert_true(run_until(fx, b, 0));
    assert_false(xs_is_disabled(b, "main", tr));

    /* The old FAILED event, read again (a restart from older offsets), does not disable again. */
    produce_state(fx, "0000000000000000000002", "FAILED");
    run_for(fx, 1500);
    assert_int_equal(xs_disabled_count(a), 0);
    assert_int_equal(xs_disabled_count(b), 0);
    xs_free(a);
    xs_free(b);
    assert_int_equal(records_in(fx, fx->cfg->kafka.triggers_topic, 2), 2);

    /* After a restart, the last record per key wins: enabled. */
    struct xs *c = start_xs(fx);
    assert_int_equal(xs_disabled_count(c), 0);
    xs_free(c);

    /* Events published while no replica runs are applied by the next one (committed offsets). */
    produce_state_at(fx, "0000000000000000000003", "KILLED", "2099-01-01T00:00:00.000Z");
    struct xs *d = start_xs(fx);
    assert_true(run_until(fx, d, 1));
    sbuf_reset(&js);
    xs_disabled_json(d, &js);
    sbuf_append(&js, "", 1);
    assert_non_null(strstr(js.data, "\"executionId\":\"0000000000000000000003\",\"state\":\"KILLED\""));
    xs_free(d);
    sbuf_deinit(&js);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(stop_list_enable),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
