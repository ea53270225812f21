/*
 * executor.c: webhook-bridge-executor, the reference executor. It consumes trigger messages
 * (SPEC.md) from the flow topics in a consumer group and answers each with execution-state
 * events (SPEC-STATE.md): RUNNING, then a terminal state chosen per flow on the command line.
 * It runs no tasks: it exists so the tests and docker-compose can close the loop with the bridge.
 * One thread; a cold path that favours clarity over throughput.
 */
#include "proto.h"

#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <librdkafka/rdkafka.h>

static const char usage[] =
    "usage: webhook-bridge-executor --bootstrap-servers HOST:PORT[,...] [options]\n"
    "\n"
    "Consumes webhook-bridge trigger messages (proto/SPEC.md) from every topic matching\n"
    "--topic-regex in consumer group --group and publishes, for each, a RUNNING event and then a\n"
    "terminal one (proto/SPEC-STATE.md) to --state-topic, keyed by execution id. Offsets are\n"
    "committed once the events are acknowledged: a crash repeats events, never loses them.\n"
    "\n"
    "  --bootstrap-servers LIST   Kafka brokers (required)\n"
    "  --group ID                 consumer group (default webhook-bridge-executor)\n"
    "  --topic-regex RE           flow topics (default ^webhooks\\..*; must start with '^').\n"
    "                             The state and trigger-state topics are never executed.\n"
    "  --state-topic NAME         where events go (default " PROTO_STATE_TOPIC_DEFAULT ")\n"
    "  --triggers-topic NAME      skipped when the regex matches it (default\n"
    "                             " PROTO_TRIGGERS_TOPIC_DEFAULT ")\n"
    "  --outcome NS/FLOW=STATE    end state for one flow: a terminal State.Type name (SUCCESS,\n"
    "                             FAILED, WARNING, KILLED, ...) or HANG (RUNNING, never ends).\n"
    "                             Repeatable. NS/FLOW '*' sets the default (SUCCESS).\n"
    "  --outputs NS/FLOW=JSON     flow outputs (a JSON object) sent with the terminal state\n"
    "  --delay-ms N               pause between RUNNING and the terminal state (default 0)\n"
    "  -X NAME=VALUE              any librdkafka property, for consumer and producer\n"
    "  --help                     show this text\n"
    "\n"
    "Logs one line per execution on stderr. SIGTERM or SIGINT: stop after the current message.\n"
    "Exit status: 0 after a signal, 1 when Kafka fails, 2 for a usage error.\n";

#define EXEC_MAX_RULES 64
#define EXEC_FLUSH_MS 10000

/* One --outcome or --outputs argument, for one "namespace/flowId" (or "*"). */
struct rule {
    char *flow;             /* "namespace/flowId" or "*" */
    bool hang;              /* --outcome HANG */
    enum proto_state state; /* --outcome, else PROTO_STATE_UNKNOWN */
    msgpack_sbuffer outputs; /* --outputs packed as msgpack; size 0 when none */
};

struct executor {
    const char *bootstrap;
    const char *group;
    const char *regex;
    const char *state_topic;
    const char *triggers_topic;
    long delay_ms;
    struct rule rules[EXEC_MAX_RULES];
    size_t nrules;
    const char *props[64]; /* -X NAME=VALUE, as given */
    size_t nprops;
    rd_kafka_t *consumer;
    rd_kafka_t *producer;
    int delivery_errors;
};

static volatile sig_atomic_t stopping;

static void on_signal(int sig)
{
    (void)sig;
    stopping = 1;
}

/* ==== Command line ==== */

static struct rule *rule_for(struct executor *x, const char *flow, size_t n)
{
    for (size_t i = 0; i < x->nrules; i++) {
        if (strlen(x->rules[i].flow) == n && memcmp(x->rules[i].flow, flow, n) == 0) {
            return &x->rules[i];
        }
    }
    if (x->nrules == EXEC_MAX_RULES) {
        return NULL;
    }
    struct rule *r = &x->rules[x->nrules++];
    r->flow = strndup(flow, n);
    r->state = PROTO_STATE_UNKNOWN;
    msgpack_sbuffer_init(&r->outputs);
    return r;
}

/* JSON → msgpack, the smallest forms (msgpack-c's packer); object keys in their order. */
static int pack_json(msgpack_packer *pk, const json_t *j)
{
    const char *k;
    json_t *v;
    size_t i;

    switch (json_typeof(j)) {
    case JSON_OBJECT:
        msgpack_pack_map(pk, json_object_size(j));
        json_object_foreach((json_t *)j, k, v) {
            msgpack_pack_str_with_body(pk, k, strlen(k));
            pack_json(pk, v);
        }
        return 0;
    case JSON_ARRAY:
        msgpack_pack_array(pk, json_array_size(j));
        json_array_foreach(j, i, v) {
            pack_json(pk, v);
        }
        return 0;
    case JSON_STRING:
        return msgpack_pack_str_with_body(pk, json_string_value(j), json_string_length(j));
    case JSON_INTEGER:
        return msgpack_pack_int64(pk, json_integer_value(j));
    case JSON_REAL:
        return msgpack_pack_double(pk, json_real_value(j));
    case JSON_TRUE:
        return msgpack_pack_true(pk);
    case JSON_FALSE:
        return msgpack_pack_false(pk);
    default:
        return msgpack_pack_nil(pk);
    }
}

/* "ns/flow=VALUE": returns the rule, and VALUE in *value. */
static struct rule *parse_rule(struct executor *x, const char *arg, const char **value)
{
    const char *eq = strchr(arg, '=');

    if (eq == NULL || eq == arg) {
        fprintf(stderr, "webhook-bridge-executor: expected NS/FLOW=VALUE, got '%s'\n", arg);
        return NULL;
    }
    *value = eq + 1;
    return rule_for(x, arg, (size_t)(eq - arg));
}

static int parse_outcome(struct executor *x, const char *arg)
{
    const char *v;
    struct rule *r = parse_rule(x, arg, &v);

    if (r == NULL) {
        return -1;
    }
    r->hang = strcmp(v, "HANG") == 0;
    r->state = proto_state_from_name(v, strlen(v));
    if (!r->hang && !proto_state_terminal(r->state)) {
        fprintf(stderr, "webhook-bridge-executor: '%s' is not HANG or a terminal state\n", v);
        return -1;
    }
    return 0;
}

static int parse_outputs(struct executor *x, const char *arg)
{
    json_error_t jerr;
    msgpack_packer pk;
    const char *v;
    struct rule *r = parse_rule(x, arg, &v);
    json_t *j = NULL;

    if (r == NULL) {
        return -1;
    }
    j = json_loads(v, JSON_DECODE_ANY, &jerr);
    if (j == NULL || !json_is_object(j)) {
        fprintf(stderr, "webhook-bridge-executor: --outputs needs a JSON object: %s\n",
                j == NULL ? jerr.text : "not an object");
        json_decref(j);
        return -1;
    }
    r->outputs.size = 0;
    msgpack_packer_init(&pk, &r->outputs, msgpack_sbuffer_write);
    pack_json(&pk, j);
    json_decref(j);
    return 0;
}

static int parse_args(struct executor *x, int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        int rc = 0;

        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            fputs(usage, stdout);
            exit(0);
        }
        if (v == NULL) {
            fputs(usage, stderr);
            return -1;
        }
        i++;
        if (strcmp(a, "--bootstrap-servers") == 0) {
            x->bootstrap = v;
        } else if (strcmp(a, "--group") == 0) {
            x->group = v;
        } else if (strcmp(a, "--topic-regex") == 0) {
            x->regex = v;
        } else if (strcmp(a, "--state-topic") == 0) {
            x->state_topic = v;
        } else if (strcmp(a, "--triggers-topic") == 0) {
            x->triggers_topic = v;
        } else if (strcmp(a, "--delay-ms") == 0) {
            char *end;
            x->delay_ms = strtol(v, &end, 10);
            rc = *end != '\0' || x->delay_ms < 0 || x->delay_ms > 3600000 ? -1 : 0;
        } else if (strcmp(a, "--outcome") == 0) {
            rc = parse_outcome(x, v);
        } else if (strcmp(a, "--outputs") == 0) {
            rc = parse_outputs(x, v);
        } else if (strcmp(a, "-X") == 0 && x->nprops < 64 && strchr(v, '=') != NULL) {
            x->props[x->nprops++] = v;
        } else {
            rc = -1;
        }
        if (rc != 0) {
            fprintf(stderr, "webhook-bridge-executor: bad argument %s %s\n", a, v);
            return -1;
        }
    }
    if (x->bootstrap == NULL || x->regex[0] != '^') {
        fputs(usage, stderr);
        return -1;
    }
    return 0;
}

/* ==== Kafka ==== */

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *rkm, void *opaque)
{
    struct executor *x = opaque;

    (void)rk;
    if (rkm->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        fprintf(stderr, "webhook-bridge-executor: state event not delivered: %s\n",
                rd_kafka_err2str(rkm->err));
        x->delivery_errors++;
    }
}

static rd_kafka_conf_t *make_conf(struct executor *x, bool consumer)
{
    char err[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    /*
     * A regex subscription sees a new flow topic only at a metadata refresh: refresh every second
     * so an execution starts soon after its flow's first message. The producer waits for every
     * in-sync replica, as the bridge does.
     */
    const char *base[][2] = {
        {"bootstrap.servers", x->bootstrap},
        {"topic.metadata.refresh.interval.ms", "1000"},
        {consumer ? "group.id" : "acks", consumer ? x->group : "all"},
        {consumer ? "enable.auto.commit" : "enable.idempotence", consumer ? "false" : "true"},
        {consumer ? "auto.offset.reset" : "linger.ms", consumer ? "earliest" : "5"},
    };

    for (size_t i = 0; i < sizeof(base) / sizeof(base[0]); i++) {
        if (rd_kafka_conf_set(conf, base[i][0], base[i][1], err, sizeof(err)) != RD_KAFKA_CONF_OK) {
            goto fail;
        }
    }
    for (size_t i = 0; i < x->nprops; i++) {
        char name[256];
        const char *eq = strchr(x->props[i], '=');
        snprintf(name, sizeof(name), "%.*s", (int)(eq - x->props[i]), x->props[i]);
        /* One -X list for both clients: a property the other kind refuses is skipped there. */
        if (rd_kafka_conf_set(conf, name, eq + 1, err, sizeof(err)) == RD_KAFKA_CONF_UNKNOWN) {
            continue;
        }
    }
    if (!consumer) {
        rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
        rd_kafka_conf_set_opaque(conf, x);
    }
    return conf;
fail:
    fprintf(stderr, "webhook-bridge-executor: %s\n", err);
    rd_kafka_conf_destroy(conf);
    return NULL;
}

static int start_clients(struct executor *x)
{
    char err[512];
    rd_kafka_conf_t *conf = make_conf(x, false);
    rd_kafka_topic_partition_list_t *subs;
    rd_kafka_resp_err_t kerr;

    if (conf == NULL) {
        return -1;
    }
    x->producer = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
    if (x->producer == NULL) {
        fprintf(stderr, "webhook-bridge-executor: producer: %s\n", err);
        return -1;
    }
    conf = make_conf(x, true);
    if (conf == NULL) {
        return -1;
    }
    x->consumer = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
    if (x->consumer == NULL) {
        fprintf(stderr, "webhook-bridge-executor: consumer: %s\n", err);
        return -1;
    }
    rd_kafka_poll_set_consumer(x->consumer);
    subs = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(subs, x->regex, RD_KAFKA_PARTITION_UA);
    kerr = rd_kafka_subscribe(x->consumer, subs);
    rd_kafka_topic_partition_list_destroy(subs);
    if (kerr != RD_KAFKA_RESP_ERR_NO_ERROR) {
        fprintf(stderr, "webhook-bridge-executor: subscribe: %s\n", rd_kafka_err2str(kerr));
        return -1;
    }
    return 0;
}

/* ==== Executions ==== */

static void now_rfc3339(char out[PROTO_TIME_LEN + 1])
{
    struct timespec ts;
    struct tm tm;
    char sec[32];

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    strftime(sec, sizeof(sec), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, PROTO_TIME_LEN + 1, "%.19s.%03uZ", sec, (unsigned)(ts.tv_nsec / 1000000) % 1000u);
}

static int publish_state(struct executor *x, const struct proto_msg *m, enum proto_state st,
                         const msgpack_sbuffer *outputs)
{
    char when[PROTO_TIME_LEN + 1];
    const char *name = proto_state_name(st);
    struct proto_exec_state e = {m->id,         m->tenant_id, m->ns, m->flow_id, m->trigger_id,
                                 {name, strlen(name)}, {when, PROTO_TIME_LEN}, {NULL, 0}};
    msgpack_sbuffer sb;
    rd_kafka_resp_err_t kerr;
    int rc;

    now_rfc3339(when);
    if (outputs != NULL && outputs->size > 0) {
        e.outputs = (struct proto_str){outputs->data, outputs->size};
    }
    msgpack_sbuffer_init(&sb);
    rc = proto_exec_state_encode(&e, &sb);
    if (rc != PROTO_OK) {
        fprintf(stderr, "webhook-bridge-executor: encode: %s\n", proto_strerror(rc));
        msgpack_sbuffer_destroy(&sb);
        return -1;
    }
    kerr = rd_kafka_producev(
        x->producer, RD_KAFKA_V_TOPIC(x->state_topic), RD_KAFKA_V_KEY(m->id.ptr, m->id.len),
        RD_KAFKA_V_VALUE(sb.data, sb.size), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_HEADER(PROTO_HEADER_CONTENT_TYPE, PROTO_STATE_CONTENT_TYPE, -1),
        RD_KAFKA_V_HEADER(PROTO_HEADER_EXECUTION_ID, m->id.ptr, (ssize_t)m->id.len),
        RD_KAFKA_V_END);
    msgpack_sbuffer_destroy(&sb);
    if (kerr != RD_KAFKA_RESP_ERR_NO_ERROR) {
        fprintf(stderr, "webhook-bridge-executor: produce: %s\n", rd_kafka_err2str(kerr));
        return -1;
    }
    return 0;
}

static const struct rule *find_rule(const struct executor *x, const struct proto_msg *m,
                                    bool want_outputs)
{
    char flow[1024];

    snprintf(flow, sizeof(flow), "%.*s/%.*s", (int)m->ns.len, m->ns.ptr, (int)m->flow_id.len,
             m->flow_id.ptr);
    for (int pass = 0; pass < 2; pass++) {
        const char *want = pass == 0 ? flow : "*";
        for (size_t i = 0; i < x->nrules; i++) {
            const struct rule *r = &x->rules[i];
            bool has = want_outputs ? r->outputs.size > 0 : (r->hang || r->state != 0);
            if (has && strcmp(r->flow, want) == 0) {
                return r;
            }
        }
    }
    return NULL;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

    while (ms > 0 && nanosleep(&ts, &ts) != 0 && errno == EINTR && !stopping) {
    }
}

/* Publishes the events of one execution and waits for their acknowledgement. */
static int execute(struct executor *x, const struct proto_msg *m)
{
    const struct rule *outcome = find_rule(x, m, false);
    const struct rule *outputs = find_rule(x, m, true);
    enum proto_state end = outcome != NULL ? outcome->state : PROTO_STATE_SUCCESS;
    bool hang = outcome != NULL && outcome->hang;

    if (publish_state(x, m, PROTO_STATE_RUNNING, NULL) != 0) {
        return -1;
    }
    if (!hang) {
        sleep_ms(x->delay_ms);
        if (publish_state(x, m, end, outputs != NULL ? &outputs->outputs : NULL) != 0) {
            return -1;
        }
    }
    fprintf(stderr, "webhook-bridge-executor: %.*s %.*s/%.*s trigger %.*s: %s\n", (int)m->id.len,
            m->id.ptr, (int)m->ns.len, m->ns.ptr, (int)m->flow_id.len, m->flow_id.ptr,
            (int)m->trigger_id.len, m->trigger_id.ptr, hang ? "RUNNING (hangs)" : proto_state_name(end));
    if (rd_kafka_flush(x->producer, EXEC_FLUSH_MS) != RD_KAFKA_RESP_ERR_NO_ERROR ||
        x->delivery_errors > 0) {
        return -1;
    }
    return 0;
}

/* Not a trigger message (our own state topics, a foreign record): skipped, committed. */
static bool skip_topic(const struct executor *x, const char *topic)
{
    return strcmp(topic, x->state_topic) == 0 || strcmp(topic, x->triggers_topic) == 0;
}

static int handle(struct executor *x, rd_kafka_message_t *rkm)
{
    struct proto_decoded d;
    const char *topic = rd_kafka_topic_name(rkm->rkt);
    int rc;

    if (skip_topic(x, topic)) {
        return 0;
    }
    rc = proto_decode(rkm->payload, rkm->len, &d);
    if (rc != PROTO_OK) {
        fprintf(stderr, "webhook-bridge-executor: %s [%d] @%lld: skipped: %s\n", topic,
                (int)rkm->partition, (long long)rkm->offset, proto_strerror(rc));
        return 0;
    }
    rc = execute(x, &d.m);
    proto_decoded_deinit(&d);
    return rc;
}

static int run(struct executor *x)
{
    while (!stopping) {
        rd_kafka_message_t *rkm = rd_kafka_consumer_poll(x->consumer, 100);
        rd_kafka_resp_err_t kerr;

        if (rkm == NULL) {
            continue;
        }
        if (rkm->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
            /* Partition EOF and unknown-topic hints are normal with a regex subscription. */
            if (rkm->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
                fprintf(stderr, "webhook-bridge-executor: consumer: %s\n",
                        rd_kafka_message_errstr(rkm));
            }
            rd_kafka_message_destroy(rkm);
            continue;
        }
        if (handle(x, rkm) != 0) {
            rd_kafka_message_destroy(rkm);
            return 1;
        }
        /* Committed only after the events are acknowledged: at-least-once. */
        kerr = rd_kafka_commit_message(x->consumer, rkm, 0);
        rd_kafka_message_destroy(rkm);
        if (kerr != RD_KAFKA_RESP_ERR_NO_ERROR) {
            fprintf(stderr, "webhook-bridge-executor: commit: %s\n", rd_kafka_err2str(kerr));
        }
    }
    return 0;
}

int main(int argc, char **argv)
{
    struct executor x = {.group = "webhook-bridge-executor",
                         .regex = "^webhooks\\..*",
                         .state_topic = PROTO_STATE_TOPIC_DEFAULT,
                         .triggers_topic = PROTO_TRIGGERS_TOPIC_DEFAULT};
    int status = 2;

    if (parse_args(&x, argc, argv) != 0) {
        goto out;
    }
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    status = 1;
    if (start_clients(&x) != 0) {
        goto out;
    }
    fprintf(stderr, "webhook-bridge-executor: consuming %s in group %s, states to %s\n", x.regex,
            x.group, x.state_topic);
    status = run(&x);
out:
    if (x.consumer != NULL) {
        rd_kafka_consumer_close(x.consumer);
        rd_kafka_destroy(x.consumer);
    }
    if (x.producer != NULL) {
        rd_kafka_flush(x.producer, EXEC_FLUSH_MS);
        rd_kafka_destroy(x.producer);
    }
    for (size_t i = 0; i < x.nrules; i++) {
        free(x.rules[i].flow);
        msgpack_sbuffer_destroy(&x.rules[i].outputs);
    }
    return status;
}
