/*
 * metrics.c: counters kept on the loop's thread and rendered in the Prometheus text format.
 * Counting costs a hash lookup at most; rendering (a scrape every few seconds) sorts and formats.
 * No sockets, no Kafka, no locks.
 */
#include "metrics.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Seconds; fixed so that counting is an index search over 14 doubles. */
static const double latency_bounds[METRICS_LATENCY_BUCKETS] = {
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30,
};

/* The `reason` label of each verdict answered 4xx or 5xx. */
static const char *const verdict_reasons[HOOK_VERDICT_COUNT] = {
    [HOOK_NOT_FOUND] = "not_found",
    [HOOK_BAD_ESCAPE] = "bad_escape",
    [HOOK_METHOD_NOT_ALLOWED] = "method_not_allowed",
    [HOOK_FLOW_DISABLED] = "flow_disabled",
    [HOOK_TRIGGER_DISABLED] = "trigger_disabled",
    [HOOK_BAD_FRAMING] = "bad_framing",
    [HOOK_TOO_LARGE] = "too_large",
    [HOOK_URI_TOO_LONG] = "uri_too_long",
    [HOOK_HEADERS_TOO_LARGE] = "headers_too_large",
    [HOOK_QUEUE_FULL] = "queue_full",
    [HOOK_OVERLOADED] = "overloaded",
    [HOOK_DELIVERY_FAILED] = "delivery_failed",
    [HOOK_TOPIC_FAILED] = "topic_failed",
    [HOOK_SHUTTING_DOWN] = "shutting_down",
    [HOOK_BUSY] = "busy",
    [HOOK_INTERNAL] = "internal",
};

/* Distinct status codes one flow can be answered with (hook_answer's table has 12). */
#define MAX_CODES 24

struct code_count {
    int code;
    uint64_t n;
};

struct metrics_flow {
    char *ns;
    char *flow;
    char *ref; /* "namespace/flowId"; "" for requests that matched no flow */
    struct code_count codes[MAX_CODES];
    size_t ncodes;
    uint64_t body_bytes;
    uint64_t conditions_false;
    uint64_t accepted;
    uint64_t delivered;
    uint64_t failed;
    uint64_t lat_buckets[METRICS_LATENCY_BUCKETS + 1]; /* last: above every bound (+Inf only) */
    uint64_t lat_count;
    double lat_sum;
};

struct named_count {
    char *name;
    uint64_t n;
};

struct metrics {
    struct metrics_flow **slots; /* open addressing on ref */
    size_t mask;
    size_t nflows;
    struct metrics_flow *none; /* requests that matched no flow */
    uint64_t rejected[HOOK_VERDICT_COUNT];
    struct code_count http_errors[MAX_CODES];
    size_t nhttp_errors;
    struct named_count *delivery_errors;
    size_t ndelivery_errors;
    struct metrics_broker *brokers;
    size_t nbrokers;
    uint64_t reloads_ok, reloads_failed;
    double last_reload_ok; /* Unix time; 0: never */
    metrics_gauges_fn gauges;
    void *gauges_arg;
};

/* ==== Flows ==== */

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    while (*s) {
        h = (h ^ (unsigned char)*s++) * 1099511628211ULL;
    }
    return h;
}

static struct metrics_flow *flow_new(const char *ns, const char *flow)
{
    struct metrics_flow *mf = xcalloc(1, sizeof(*mf));
    mf->ns = xstrdup(ns);
    mf->flow = xstrdup(flow);
    mf->ref = ns[0] ? xasprintf("%s/%s", ns, flow) : xstrdup("");
    return mf;
}

static void flow_free(struct metrics_flow *mf)
{
    xfree(mf->ns);
    xfree(mf->flow);
    xfree(mf->ref);
    xfree(mf);
}

static void grow(struct metrics *m)
{
    struct metrics_flow **old = m->slots;
    size_t oldcap = m->mask + 1;
    m->mask = oldcap * 2 - 1;
    m->slots = xcalloc(oldcap * 2, sizeof(*m->slots));
    for (size_t i = 0; i < oldcap; i++) {
        if (old[i]) {
            size_t s = hash_str(old[i]->ref) & m->mask;
            while (m->slots[s]) {
                s = (s + 1) & m->mask;
            }
            m->slots[s] = old[i];
        }
    }
    xfree(old);
}

struct metrics_flow *metrics_flow(struct metrics *m, const char *ns, const char *flow)
{
    if (!ns) {
        return m->none;
    }
    uint64_t h = 1469598103934665603ULL;
    for (const char *p = ns; *p; p++) {
        h = (h ^ (unsigned char)*p) * 1099511628211ULL;
    }
    h = (h ^ (unsigned char)'/') * 1099511628211ULL;
    for (const char *p = flow; *p; p++) {
        h = (h ^ (unsigned char)*p) * 1099511628211ULL;
    }
    size_t s = h & m->mask;
    while (m->slots[s]) {
        if (strcmp(m->slots[s]->ns, ns) == 0 && strcmp(m->slots[s]->flow, flow) == 0) {
            return m->slots[s];
        }
        s = (s + 1) & m->mask;
    }
    struct metrics_flow *mf = flow_new(ns, flow);
    m->slots[s] = mf;
    if (++m->nflows * 2 > m->mask) {
        grow(m);
    }
    return mf;
}

struct metrics *metrics_new(void)
{
    struct metrics *m = xcalloc(1, sizeof(*m));
    m->mask = 63;
    m->slots = xcalloc(m->mask + 1, sizeof(*m->slots));
    m->none = flow_new("", "");
    return m;
}

void metrics_free(struct metrics *m)
{
    if (!m) {
        return;
    }
    for (size_t i = 0; i <= m->mask; i++) {
        if (m->slots[i]) {
            flow_free(m->slots[i]);
        }
    }
    xfree(m->slots);
    flow_free(m->none);
    for (size_t i = 0; i < m->ndelivery_errors; i++) {
        xfree(m->delivery_errors[i].name);
    }
    xfree(m->delivery_errors);
    xfree(m->brokers);
    xfree(m);
}

void metrics_set_gauges(struct metrics *m, metrics_gauges_fn fn, void *arg)
{
    m->gauges = fn;
    m->gauges_arg = arg;
}

/* ==== Counting ==== */

static void count_code(struct code_count *codes, size_t *n, int code)
{
    for (size_t i = 0; i < *n; i++) {
        if (codes[i].code == code) {
            codes[i].n++;
            return;
        }
    }
    /* Only our own status codes reach here, fewer than MAX_CODES; a surplus one is merged. */
    size_t i = *n < MAX_CODES ? (*n)++ : MAX_CODES - 1;
    codes[i].code = code;
    codes[i].n++;
}

void metrics_body(struct metrics_flow *mf, size_t bytes)
{
    mf->body_bytes += bytes;
}

void metrics_answer(struct metrics *m, struct metrics_flow *mf, enum hook_verdict v)
{
    int status = hook_answer(v)->status;
    count_code(mf->codes, &mf->ncodes, status);
    if (v == HOOK_CONDITIONS_FALSE) {
        mf->conditions_false++;
    }
    if (status >= 400 && (unsigned)v < HOOK_VERDICT_COUNT) {
        m->rejected[v]++;
    }
}

void metrics_accepted(struct metrics_flow *mf)
{
    mf->accepted++;
}

void metrics_acked(struct metrics *m, struct metrics_flow *mf, enum hook_verdict v,
                   long long latency_us)
{
    if (v == HOOK_DELIVERED) {
        mf->delivered++;
    } else {
        mf->failed++;
    }
    double s = (double)latency_us / 1e6;
    size_t i = 0;
    while (i < METRICS_LATENCY_BUCKETS && s > latency_bounds[i]) {
        i++;
    }
    mf->lat_buckets[i]++;
    mf->lat_count++;
    mf->lat_sum += s;
    metrics_answer(m, mf, v);
}

void metrics_http_error(struct metrics *m, int status)
{
    count_code(m->none->codes, &m->none->ncodes, status);
    count_code(m->http_errors, &m->nhttp_errors, status);
}

void metrics_delivery_error(struct metrics *m, const char *code)
{
    for (size_t i = 0; i < m->ndelivery_errors; i++) {
        if (strcmp(m->delivery_errors[i].name, code) == 0) {
            m->delivery_errors[i].n++;
            return;
        }
    }
    m->delivery_errors =
        xrealloc(m->delivery_errors, (m->ndelivery_errors + 1) * sizeof(*m->delivery_errors));
    m->delivery_errors[m->ndelivery_errors++] = (struct named_count){xstrdup(code), 1};
}

void metrics_set_brokers(struct metrics *m, const struct metrics_broker *b, size_t n)
{
    xfree(m->brokers);
    m->brokers = n ? xmalloc(n * sizeof(*b)) : NULL;
    if (n) {
        memcpy(m->brokers, b, n * sizeof(*b));
    }
    m->nbrokers = n;
}

void metrics_reload(struct metrics *m, bool ok)
{
    if (ok) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        m->reloads_ok++;
        m->last_reload_ok = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
    } else {
        m->reloads_failed++;
    }
}

/* ==== Rendering ==== */

void metrics_label_value(struct sbuf *b, const char *s)
{
    sbuf_append(b, "\"", 1);
    for (; *s; s++) {
        if (*s == '\\' || *s == '"') {
            sbuf_append(b, "\\", 1);
            sbuf_append(b, s, 1);
        } else if (*s == '\n') {
            sbuf_append(b, "\\n", 2);
        } else {
            sbuf_append(b, s, 1);
        }
    }
    sbuf_append(b, "\"", 1);
}

static void family(struct sbuf *b, const char *name, const char *type, const char *help)
{
    sbuf_appendf(b, "# HELP webhook_bridge_%s %s\n# TYPE webhook_bridge_%s %s\n", name, help, name,
                 type);
}

/* `name{namespace="..",flow=".."` without the closing brace: callers add labels, then "} v". */
static void flow_sample(struct sbuf *b, const char *name, const struct metrics_flow *mf)
{
    sbuf_appendf(b, "webhook_bridge_%s{namespace=", name);
    metrics_label_value(b, mf->ns);
    sbuf_append_cstr(b, ",flow=");
    metrics_label_value(b, mf->flow);
}

static int cmp_flow(const void *a, const void *b)
{
    const struct metrics_flow *x = *(struct metrics_flow *const *)a;
    const struct metrics_flow *y = *(struct metrics_flow *const *)b;
    return strcmp(x->ref, y->ref);
}

static int cmp_code(const void *a, const void *b)
{
    return ((const struct code_count *)a)->code - ((const struct code_count *)b)->code;
}

/* Every flow, sorted by "namespace/flowId", the no-flow bucket first. The caller frees. */
static struct metrics_flow **sorted_flows(const struct metrics *m, size_t *n)
{
    struct metrics_flow **v = xmalloc((m->nflows + 1) * sizeof(*v));
    size_t k = 0;
    v[k++] = m->none;
    for (size_t i = 0; i <= m->mask; i++) {
        if (m->slots[i]) {
            v[k++] = m->slots[i];
        }
    }
    qsort(v + 1, k - 1, sizeof(*v), cmp_flow);
    *n = k;
    return v;
}

static void render_requests(struct sbuf *b, struct metrics_flow **v, size_t n)
{
    family(
        b, "requests_total", "counter",
        "Requests answered, by flow and status code (namespace and flow empty: no flow matched).");
    for (size_t i = 0; i < n; i++) {
        struct code_count codes[MAX_CODES];
        memcpy(codes, v[i]->codes, sizeof(codes));
        qsort(codes, v[i]->ncodes, sizeof(codes[0]), cmp_code);
        for (size_t c = 0; c < v[i]->ncodes; c++) {
            flow_sample(b, "requests_total", v[i]);
            sbuf_appendf(b, ",code=\"%d\"} %llu\n", codes[c].code, (unsigned long long)codes[c].n);
        }
    }
}

/* One counter per flow, from the field at `off` in struct metrics_flow. */
static void render_flow_counter(struct sbuf *b, struct metrics_flow **v, size_t n, const char *name,
                                size_t off, bool skip_none, const char *help)
{
    family(b, name, "counter", help);
    for (size_t i = skip_none ? 1 : 0; i < n; i++) {
        flow_sample(b, name, v[i]);
        sbuf_appendf(b, "} %llu\n",
                     (unsigned long long)*(const uint64_t *)((const char *)v[i] + off));
    }
}

static void render_latency(struct sbuf *b, struct metrics_flow **v, size_t n)
{
    const char *name = "ack_duration_seconds";
    family(b, name, "histogram",
           "Time from receiving a request to its delivery report (acknowledged or failed).");
    for (size_t i = 1; i < n; i++) {
        const struct metrics_flow *mf = v[i];
        uint64_t cum = 0;
        for (size_t k = 0; k <= METRICS_LATENCY_BUCKETS; k++) {
            cum += mf->lat_buckets[k];
            flow_sample(b, "ack_duration_seconds_bucket", mf);
            if (k < METRICS_LATENCY_BUCKETS) {
                sbuf_appendf(b, ",le=\"%g\"} %llu\n", latency_bounds[k], (unsigned long long)cum);
            } else {
                sbuf_appendf(b, ",le=\"+Inf\"} %llu\n", (unsigned long long)cum);
            }
        }
        flow_sample(b, "ack_duration_seconds_sum", mf);
        sbuf_appendf(b, "} %.6f\n", mf->lat_sum);
        flow_sample(b, "ack_duration_seconds_count", mf);
        sbuf_appendf(b, "} %llu\n", (unsigned long long)mf->lat_count);
    }
}

static void render_rejected(struct sbuf *b, const struct metrics *m)
{
    family(b, "rejected_total", "counter",
           "Requests answered 4xx or 5xx, by status code and reason (http_error: refused by the "
           "HTTP layer before routing).");
    for (size_t v = 0; v < HOOK_VERDICT_COUNT; v++) {
        if (m->rejected[v] > 0) {
            sbuf_appendf(b, "webhook_bridge_rejected_total{code=\"%d\",reason=\"%s\"} %llu\n",
                         hook_answer((enum hook_verdict)v)->status, verdict_reasons[v],
                         (unsigned long long)m->rejected[v]);
        }
    }
    for (size_t i = 0; i < m->nhttp_errors; i++) {
        sbuf_appendf(b, "webhook_bridge_rejected_total{code=\"%d\",reason=\"http_error\"} %llu\n",
                     m->http_errors[i].code, (unsigned long long)m->http_errors[i].n);
    }
}

static void render_gauges(struct sbuf *b, const struct metrics *m)
{
    struct metrics_gauges g = {0};
    if (m->gauges) {
        m->gauges(m->gauges_arg, &g);
    }
    family(b, "in_flight_requests", "gauge",
           "Accepted requests waiting for their delivery report.");
    sbuf_appendf(b, "webhook_bridge_in_flight_requests %zu\n", g.in_flight);
    family(b, "loop_delay_seconds", "gauge",
           "How late the event loop's 10 ms timer ran last; see limits.max_loop_delay_ms.");
    sbuf_appendf(b, "webhook_bridge_loop_delay_seconds %.6f\n", (double)g.loop_delay_us / 1e6);
    family(b, "busy_refused_share", "gauge",
           "Share of new requests answered 503 at once because the event loop runs behind.");
    sbuf_appendf(b, "webhook_bridge_busy_refused_share %.3f\n", g.busy_share);
    family(b, "in_flight_bytes", "gauge", "Bytes of the messages of in-flight requests.");
    sbuf_appendf(b, "webhook_bridge_in_flight_bytes %zu\n", g.in_flight_bytes);
    family(b, "producer_queue_messages", "gauge",
           "Messages in the Kafka producer's queue, not yet acknowledged.");
    sbuf_appendf(b, "webhook_bridge_producer_queue_messages %zu\n", g.queue_msgs);
    family(b, "flows_loaded", "gauge", "Flows loaded.");
    sbuf_appendf(b, "webhook_bridge_flows_loaded %zu\n", g.flows);
    family(b, "triggers_disabled", "gauge", "Triggers stopAfter disabled (409 until re-enabled).");
    sbuf_appendf(b, "webhook_bridge_triggers_disabled %zu\n", g.disabled);
    family(b, "waiting_requests", "gauge",
           "wait: true requests acknowledged and waiting for their execution's end.");
    sbuf_appendf(b, "webhook_bridge_waiting_requests %zu\n", g.waiting);
}

static void render_kafka(struct sbuf *b, const struct metrics *m)
{
    family(b, "delivery_errors_total", "counter",
           "Delivery reports with an error, by Kafka error.");
    for (size_t i = 0; i < m->ndelivery_errors; i++) {
        sbuf_append_cstr(b, "webhook_bridge_delivery_errors_total{error=");
        metrics_label_value(b, m->delivery_errors[i].name);
        sbuf_appendf(b, "} %llu\n", (unsigned long long)m->delivery_errors[i].n);
    }
    family(b, "broker_up", "gauge", "1 when the producer's connection to the broker is up.");
    for (size_t i = 0; i < m->nbrokers; i++) {
        sbuf_append_cstr(b, "webhook_bridge_broker_up{broker=");
        metrics_label_value(b, m->brokers[i].name);
        sbuf_appendf(b, "} %d\n", m->brokers[i].up ? 1 : 0);
    }
    family(b, "broker_rtt_seconds", "gauge",
           "Broker round-trip time from librdkafka statistics (avg and p99 over the window).");
    for (size_t i = 0; i < m->nbrokers; i++) {
        if (m->brokers[i].nodeid < 0) {
            continue;
        }
        for (int q = 0; q < 2; q++) {
            sbuf_append_cstr(b, "webhook_bridge_broker_rtt_seconds{broker=");
            metrics_label_value(b, m->brokers[i].name);
            sbuf_appendf(b, ",quantile=\"%s\"} %.6f\n", q ? "0.99" : "avg",
                         q ? m->brokers[i].rtt_p99_s : m->brokers[i].rtt_avg_s);
        }
    }
}

static void render_reloads(struct sbuf *b, const struct metrics *m)
{
    family(b, "reloads_total", "counter", "Flow reloads, by result.");
    sbuf_appendf(b, "webhook_bridge_reloads_total{result=\"ok\"} %llu\n",
                 (unsigned long long)m->reloads_ok);
    sbuf_appendf(b, "webhook_bridge_reloads_total{result=\"failed\"} %llu\n",
                 (unsigned long long)m->reloads_failed);
    family(b, "last_reload_success_timestamp_seconds", "gauge",
           "Unix time of the last successful reload; 0 when none happened.");
    sbuf_appendf(b, "webhook_bridge_last_reload_success_timestamp_seconds %.3f\n",
                 m->last_reload_ok);
}

void metrics_render(struct metrics *m, struct sbuf *b)
{
    size_t n = 0;
    struct metrics_flow **v = sorted_flows(m, &n);
    render_requests(b, v, n);
    render_flow_counter(b, v, n, "request_body_bytes_total",
                        offsetof(struct metrics_flow, body_bytes), false,
                        "Request body bytes received, by flow.");
    render_flow_counter(b, v, n, "conditions_false_total",
                        offsetof(struct metrics_flow, conditions_false), true,
                        "Requests whose trigger conditions were false (answered 204).");
    render_flow_counter(b, v, n, "accepted_total", offsetof(struct metrics_flow, accepted), true,
                        "Requests handed to the Kafka producer (delivered + failed + in flight).");
    render_flow_counter(b, v, n, "delivered_total", offsetof(struct metrics_flow, delivered), true,
                        "Accepted requests acknowledged by Kafka (answered 200).");
    render_flow_counter(b, v, n, "delivery_failed_total", offsetof(struct metrics_flow, failed),
                        true, "Accepted requests whose delivery failed (answered 503 or 500).");
    render_latency(b, v, n);
    render_rejected(b, m);
    render_gauges(b, m);
    render_kafka(b, m);
    render_reloads(b, m);
    xfree(v);
}
