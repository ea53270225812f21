/*
 * metrics_test.c: counting and the Prometheus text rendering: exact sample lines, per-flow
 * counters found again by name (as after a reload), histogram buckets, label escaping, reloads.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"

static char *render(struct metrics *m)
{
    struct sbuf b;
    sbuf_init(&b);
    metrics_render(m, &b);
    return b.data;
}

static void assert_line(const char *text, const char *line)
{
    size_t n = strlen(line);
    for (const char *p = text; (p = strstr(p, line)) != NULL; p++) {
        if ((p == text || p[-1] == '\n') && p[n] == '\n') {
            return;
        }
    }
    fail_msg("no line '%s' in:\n%s", line, text);
}

static void assert_no_line_starting(const char *text, const char *prefix)
{
    for (const char *p = text; (p = strstr(p, prefix)) != NULL; p++) {
        if (p == text || p[-1] == '\n') {
            fail_msg("unexpected line starting '%s' in:\n%s", prefix, text);
        }
    }
}

static void requests_by_code(void **state)
{
    (void)state;
    struct metrics *m = metrics_new();
    struct metrics_flow *a = metrics_flow(m, "team", "a");
    metrics_body(a, 10);
    metrics_accepted(a);
    metrics_acked(m, a, HOOK_DELIVERED, 3000);
    metrics_body(a, 5);
    metrics_answer(m, a, HOOK_CONDITIONS_FALSE);
    metrics_answer(m, a, HOOK_FLOW_DISABLED);
    metrics_answer(m, metrics_flow(m, NULL, NULL), HOOK_NOT_FOUND);
    metrics_answer(m, metrics_flow(m, NULL, NULL), HOOK_NOT_FOUND);
    metrics_http_error(m, 413);
    char *t = render(m);
    assert_line(t, "webhook_bridge_requests_total{namespace=\"team\",flow=\"a\",code=\"200\"} 1");
    assert_line(t, "webhook_bridge_requests_total{namespace=\"team\",flow=\"a\",code=\"204\"} 1");
    assert_line(t, "webhook_bridge_requests_total{namespace=\"team\",flow=\"a\",code=\"409\"} 1");
    assert_line(t, "webhook_bridge_requests_total{namespace=\"\",flow=\"\",code=\"404\"} 2");
    assert_line(t, "webhook_bridge_requests_total{namespace=\"\",flow=\"\",code=\"413\"} 1");
    assert_no_line_starting(
        t, "webhook_bridge_requests_total{namespace=\"team\",flow=\"a\",code=\"503\"");
    assert_line(t, "webhook_bridge_request_body_bytes_total{namespace=\"team\",flow=\"a\"} 15");
    assert_line(t, "webhook_bridge_conditions_false_total{namespace=\"team\",flow=\"a\"} 1");
    assert_line(t, "webhook_bridge_accepted_total{namespace=\"team\",flow=\"a\"} 1");
    assert_line(t, "webhook_bridge_delivered_total{namespace=\"team\",flow=\"a\"} 1");
    assert_line(t, "webhook_bridge_delivery_failed_total{namespace=\"team\",flow=\"a\"} 0");
    assert_line(t, "webhook_bridge_rejected_total{code=\"404\",reason=\"not_found\"} 2");
    assert_line(t, "webhook_bridge_rejected_total{code=\"409\",reason=\"flow_disabled\"} 1");
    assert_line(t, "webhook_bridge_rejected_total{code=\"413\",reason=\"http_error\"} 1");
    assert_line(t, "# TYPE webhook_bridge_requests_total counter");
    free(t);
    metrics_free(m);
}

/* A flow found again by name keeps its counters: what a reload relies on. */
static void flow_counters_survive_lookup(void **state)
{
    (void)state;
    struct metrics *m = metrics_new();
    struct metrics_flow *first = metrics_flow(m, "ns", "f");
    metrics_answer(m, first, HOOK_CONDITIONS_FALSE);
    /* Enough flows to grow the table several times. */
    char name[32];
    for (int i = 0; i < 500; i++) {
        snprintf(name, sizeof(name), "f%d", i);
        metrics_answer(m, metrics_flow(m, "ns", name), HOOK_NOT_FOUND);
    }
    assert_ptr_equal(metrics_flow(m, "ns", "f"), first);
    assert_ptr_equal(metrics_flow(m, "ns", "f42"), metrics_flow(m, "ns", "f42"));
    /* "a/b" + "c" and "a" + "b/c" are different flows even though the refs look alike. */
    assert_ptr_not_equal(metrics_flow(m, "a/b", "c"), metrics_flow(m, "a", "b/c"));
    char *t = render(m);
    assert_line(t, "webhook_bridge_conditions_false_total{namespace=\"ns\",flow=\"f\"} 1");
    assert_line(t, "webhook_bridge_requests_total{namespace=\"ns\",flow=\"f499\",code=\"404\"} 1");
    assert_line(t, "webhook_bridge_rejected_total{code=\"404\",reason=\"not_found\"} 500");
    free(t);
    metrics_free(m);
}

static void latency_histogram(void **state)
{
    (void)state;
    struct metrics *m = metrics_new();
    struct metrics_flow *f = metrics_flow(m, "n", "f");
    metrics_accepted(f);
    metrics_acked(m, f, HOOK_DELIVERED, 1000); /* exactly 1 ms: le="0.001" */
    metrics_accepted(f);
    metrics_acked(m, f, HOOK_DELIVERY_FAILED, 2000000); /* 2 s */
    metrics_accepted(f);
    metrics_acked(m, f, HOOK_DELIVERED, 60000000); /* 60 s: only +Inf */
    char *t = render(m);
    const char *p = "webhook_bridge_ack_duration_seconds_bucket{namespace=\"n\",flow=\"f\",le=";
    char line[256];
    snprintf(line, sizeof(line), "%s\"0.001\"} 1", p);
    assert_line(t, line);
    snprintf(line, sizeof(line), "%s\"1\"} 1", p);
    assert_line(t, line);
    snprintf(line, sizeof(line), "%s\"2.5\"} 2", p);
    assert_line(t, line);
    snprintf(line, sizeof(line), "%s\"30\"} 2", p);
    assert_line(t, line);
    snprintf(line, sizeof(line), "%s\"+Inf\"} 3", p);
    assert_line(t, line);
    assert_line(t, "webhook_bridge_ack_duration_seconds_count{namespace=\"n\",flow=\"f\"} 3");
    assert_line(t, "webhook_bridge_ack_duration_seconds_sum{namespace=\"n\",flow=\"f\"} 62.001000");
    assert_line(t, "webhook_bridge_requests_total{namespace=\"n\",flow=\"f\",code=\"503\"} 1");
    assert_line(t, "webhook_bridge_rejected_total{code=\"503\",reason=\"delivery_failed\"} 1");
    assert_line(t, "webhook_bridge_delivery_failed_total{namespace=\"n\",flow=\"f\"} 1");
    free(t);
    metrics_free(m);
}

static void label_escaping(void **state)
{
    (void)state;
    struct sbuf b;
    sbuf_init(&b);
    metrics_label_value(&b, "a\"b\\c\nd");
    assert_string_equal(b.data, "\"a\\\"b\\\\c\\nd\"");
    sbuf_deinit(&b);
}

static void gauges_fn(void *arg, struct metrics_gauges *g)
{
    (void)arg;
    g->in_flight = 3;
    g->in_flight_bytes = 300;
    g->queue_msgs = 4;
    g->flows = 2;
}

static void gauges_kafka_reloads(void **state)
{
    (void)state;
    struct metrics *m = metrics_new();
    metrics_set_gauges(m, gauges_fn, NULL);
    metrics_delivery_error(m, "_MSG_TIMED_OUT");
    metrics_delivery_error(m, "_MSG_TIMED_OUT");
    metrics_delivery_error(m, "NOT_ENOUGH_REPLICAS");
    struct metrics_broker br[2] = {
        {"127.0.0.1:9092/1", 1, true, 0.0005, 0.002},
        {"127.0.0.1:9093/bootstrap", -1, false, 0, 0},
    };
    metrics_set_brokers(m, br, 2);
    char *t = render(m);
    assert_line(t, "webhook_bridge_in_flight_requests 3");
    assert_line(t, "webhook_bridge_in_flight_bytes 300");
    assert_line(t, "webhook_bridge_producer_queue_messages 4");
    assert_line(t, "webhook_bridge_flows_loaded 2");
    assert_line(t, "webhook_bridge_delivery_errors_total{error=\"_MSG_TIMED_OUT\"} 2");
    assert_line(t, "webhook_bridge_delivery_errors_total{error=\"NOT_ENOUGH_REPLICAS\"} 1");
    assert_line(t, "webhook_bridge_broker_up{broker=\"127.0.0.1:9092/1\"} 1");
    assert_line(t, "webhook_bridge_broker_up{broker=\"127.0.0.1:9093/bootstrap\"} 0");
    assert_line(
        t,
        "webhook_bridge_broker_rtt_seconds{broker=\"127.0.0.1:9092/1\",quantile=\"avg\"} 0.000500");
    assert_line(t, "webhook_bridge_reloads_total{result=\"ok\"} 0");
    assert_line(t, "webhook_bridge_last_reload_success_timestamp_seconds 0.000");
    free(t);
    metrics_reload(m, true);
    metrics_reload(m, false);
    metrics_reload(m, false);
    t = render(m);
    assert_line(t, "webhook_bridge_reloads_total{result=\"ok\"} 1");
    assert_line(t, "webhook_bridge_reloads_total{result=\"failed\"} 2");
    const char *ts = strstr(t, "\nwebhook_bridge_last_reload_success_timestamp_seconds ");
    assert_non_null(ts);
    double when =
        strtod(ts + strlen("\nwebhook_bridge_last_reload_success_timestamp_seconds "), NULL);
    assert_true(when > 1.7e9);
    free(t);
    metrics_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(requests_by_code),     cmocka_unit_test(flow_counters_survive_lookup),
        cmocka_unit_test(latency_histogram),    cmocka_unit_test(label_escaping),
        cmocka_unit_test(gauges_kafka_reloads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
