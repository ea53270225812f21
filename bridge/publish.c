/*
 * publish.c: librdkafka producer wired into the libevent loop. Delivery reports arrive on the
 * main queue; librdkafka writes a byte to our pipe when that queue becomes non-empty, and the
 * loop serves it. No thread of ours, no sleeps. The only file that includes rdkafka.h.
 */
#include "publish.h"

#include <errno.h>
#include <stdatomic.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <event2/event.h>
#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include "bufpool.h"
#include "log.h"
#include "metrics.h"
#include "proto.h"
#include "util.h"

/*
 * Sticky partitions. A message goes to the partition murmur2(key) % partitions names (the Java
 * client's rule, so a key keeps its affinity), and the key is the execution id, which the bridge
 * draws at random. Spread that way, the messages of one linger interval make one small batch per
 * partition, i.e. a produce request to every broker. Drawing the id until it hashes into the group
 * of partitions the topic "sticks" to for kafka.sticky_ms instead gives one batch per interval,
 * while the key still says where its message is (pub_sticky, pub_sticky_fits).
 */
struct topic_state {
    _Atomic int32_t partitions; /* learned by the partitioner; 0: not known yet */
    int32_t first;              /* the group: `width` partitions from `first`, wrapping */
    int32_t width;
    long long until_us;         /* when the group moves on */
    struct topic_state *next;   /* retired states, freed once their producer is gone */
};

struct topic_slot {
    char *name; /* NULL: empty */
    rd_kafka_topic_t *rkt;
    struct topic_state *ts; /* NULL: no sticky partitions for this topic */
};

struct pub {
    rd_kafka_t *rk;
    rd_kafka_queue_t *mainq;
    rd_kafka_t *mock_rk;
    rd_kafka_mock_cluster_t *mcluster;
    char *mock_bootstrap;
    int pipefd[2];
    struct event *ev_read;
    struct event *ev_tick;
    struct event *ev_recreate; /* activated after a fatal error */
    rd_kafka_conf_t *conf;     /* a copy of the producer's settings, to build a new one */
    bool fatal;                /* the producer hit a fatal error and is being replaced */
    unsigned long recreated;   /* producers replaced so far */
    pub_delivery_fn cb;
    size_t in_flight;
    struct topic_slot *topics;
    size_t topics_mask;
    size_t ntopics;
    struct metrics *metrics;   /* borrowed; NULL: nothing is counted */
    int brokers_up;            /* from the last statistics; -1 before the first */
    int thread_nice;           /* kafka.thread_nice, read by librdkafka's new threads */
    long long sticky_us;       /* kafka.sticky_ms; 0: off (or another partitioner is set) */
    struct topic_state *retired; /* states of dropped topic handles, see free_retired */
    long long stats_at_us;     /* when they arrived */
};

/* ==== Configuration ==== */

static int set_prop(rd_kafka_conf_t *conf, const char *name, const char *value, char *err,
                    size_t errsz)
{
    char rkerr[256];
    if (rd_kafka_conf_set(conf, name, value, rkerr, sizeof(rkerr)) != RD_KAFKA_CONF_OK) {
        snprintf(err, errsz, "kafka property %s: %s", name, rkerr);
        return -EINVAL;
    }
    return 0;
}

/*
 * Producer defaults. acks=all and idempotence are the "200 means acknowledged by every in-sync
 * replica" promise (config.c refuses overrides). A request waits for its ack, so any batching
 * delay is answer latency. linger.ms=0 with max.in.flight.requests.per.connection=1 batches the
 * way Nagle's algorithm does: a message for an idle broker connection leaves at once, and what
 * arrives while that connection's request is out waits and leaves together when its answer
 * comes. Batches so grow with the load and the broker's round trip, with no timer.
 * Measured with integration-tests/bench (7.3 KB, mock brokers; README "Performance"): median
 * answer at 100 req/s 0.94 ms against 2.0-2.3 ms with the earlier linger.ms=1 (librdkafka's
 * linger timer has 1 ms steps: 0.5 acts as 1; its default 5 gave 6.2 ms); at a steady 4000 req/s
 * p50 0.29 ms and p99 2.65 ms against 2.39 / 5.48 ms; at saturation pinned about even, unpinned
 * 5-10 % below. linger.ms=0 alone (up to 5 requests out per connection) sends every message on
 * its own under load: half the throughput and a 62 ms p99 at 4000 req/s. One request out also
 * means a failed batch is retried before the next one leaves, so librdkafka's "implicitly acked
 * by subsequent batch success" (see on_delivery) cannot arise unless kafka.properties raises it.
 * The broker threads' lower priority (kafka.thread_nice) adds to the batching. message.timeout.ms
 * bounds every answer below the HTTP deadline.
 */
static int apply_defaults(rd_kafka_conf_t *conf, const struct cfg *cfg, const char *bootstrap,
                          char *err, size_t errsz)
{
    char timeout[32], qmsgs[32], qkb[32];
    snprintf(timeout, sizeof(timeout), "%ld", cfg->kafka.delivery_timeout_ms);
    /* librdkafka's own queue is sized above the bridge's in-flight budget, so requests meet the
     * budget's clear 503 first, not QUEUE_FULL. */
    snprintf(qmsgs, sizeof(qmsgs), "%ld", cfg->limits.max_in_flight * 2 + 1000);
    snprintf(qkb, sizeof(qkb), "%ld", cfg->limits.max_in_flight_bytes / 1024 * 2 + 1024);
    const char *defaults[][2] = {
        {"bootstrap.servers", bootstrap},
        {"acks", "all"},
        {"enable.idempotence", "true"},
        {"partitioner", "murmur2_random"},
        {"linger.ms", "0"},
        {"max.in.flight.requests.per.connection", "1"},
        /*
         * librdkafka expires queued messages only between reconnect attempts, whose back-off
         * grows to 10 s by default: with every broker down a 2 s delivery timeout answered after
         * up to 11 s. A 1 s ceiling keeps the 503 close to kafka.delivery_timeout_ms.
         */
        {"reconnect.backoff.max.ms", "1000"},
        {"socket.nagle.disable", "true"},
        {"message.timeout.ms", timeout},
        {"queue.buffering.max.messages", qmsgs},
        {"queue.buffering.max.kbytes", qkb},
        {"log.connection.close", "false"},
        {"client.id", "webhook-bridge"},
        /* Broker states and round-trip times for /metrics and /ready (on_stats). */
        {"statistics.interval.ms", "1000"},
    };
    for (size_t i = 0; i < ARRAY_LEN(defaults); i++) {
        if (set_prop(conf, defaults[i][0], defaults[i][1], err, errsz) < 0) {
            return -EINVAL;
        }
    }
    for (size_t i = 0; i < cfg->kafka.nproperties; i++) {
        const struct cfg_prop *p = &cfg->kafka.properties[i];
        if (set_prop(conf, p->name, p->value, err, errsz) < 0) {
            return -EINVAL;
        }
    }
    return 0;
}

/* ==== Callbacks (loop thread, from rd_kafka_poll) ==== */

static enum pub_result classify(rd_kafka_resp_err_t e)
{
    switch (e) {
    case RD_KAFKA_RESP_ERR_NO_ERROR:
        return PUB_DELIVERED;
    case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:
    case RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE:
        return PUB_TOO_LARGE;
    case RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_TOPIC_EXCEPTION:
    case RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC:
    case RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED:
        return PUB_TOPIC_FAILED;
    default:
        return PUB_FAILED;
    }
}

/*
 * A success report is a 200 only when the broker answered this message's own batch with an
 * offset. librdkafka's idempotent producer also reports success, status PERSISTED, without one:
 * - "implicitly acked by subsequent batch success": a batch failed (even NOT_ENOUGH_REPLICAS,
 *   which librdkafka itself marks not persisted) and a later batch of the same partition was
 *   accepted, from which it infers the broker holds the first (it would refuse sequence n+1
 *   before n). Apache Kafka accepts any sequence from a producer id it holds no state for on that
 *   partition (its first batch there, or after producer.id.expiration.ms), and librdkafka's mock
 *   checks no sequence at all without a transactional.id: the message may be in no log.
 * - DUPLICATE_SEQUENCE_NUMBER on a retry: the broker says it has the batch, without an offset.
 * Such a message is answered 503 so the sender retries: at worst the flow sees it twice
 * (at-least-once), never zero times. rd_kafka_message_status() says PERSISTED for both, as for a
 * real acknowledgement; only the missing offset tells them apart.
 */
static bool confirmed(const rd_kafka_message_t *rkm)
{
    return rd_kafka_message_status(rkm) == RD_KAFKA_MSG_STATUS_PERSISTED && rkm->offset >= 0;
}

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *rkm, void *opaque)
{
    struct pub *p = opaque;
    (void)rk;
    p->in_flight--;
    /* The last use of the payload: librdkafka neither reads nor frees it after this report. */
    bufpool_put(rkm->payload);
    if (rkm->err && p->metrics) {
        metrics_delivery_error(p->metrics, rd_kafka_err2name(rkm->err));
    }
    if (rkm->err == RD_KAFKA_RESP_ERR_NO_ERROR && !confirmed(rkm)) {
        char part[16];
        snprintf(part, sizeof(part), "%d", (int)rkm->partition);
        log_kv(LOG_WARN, "kafka reported delivery without an offset: answered 503", "topic",
               rd_kafka_topic_name(rkm->rkt), "partition", part, NULL);
        if (p->metrics) {
            metrics_delivery_error(p->metrics, "UNCONFIRMED_NO_OFFSET");
        }
        p->cb(rkm->_private, PUB_FAILED, "delivery not confirmed by the broker (no offset)");
        return;
    }
    p->cb(rkm->_private, classify(rkm->err), rd_kafka_err2str(rkm->err));
}

static double json_us_to_s(json_t *obj, const char *key)
{
    return (double)json_integer_value(json_object_get(obj, key)) / 1e6;
}

/*
 * librdkafka's statistics (every statistics.interval.ms, served by rd_kafka_poll on the loop's
 * thread): broker states and round-trip times. jansson's tree is fine here: this is a few KB a
 * second, off the request path.
 */
static int on_stats(rd_kafka_t *rk, char *json, size_t json_len, void *opaque)
{
    struct pub *p = opaque;
    (void)rk;
    json_t *root = json_loadb(json, json_len, 0, NULL);
    json_t *brokers = root ? json_object_get(root, "brokers") : NULL;
    if (!json_is_object(brokers)) {
        json_decref(root);
        return 0;
    }
    size_t n = json_object_size(brokers), k = 0;
    struct metrics_broker *mb = xcalloc(n ? n : 1, sizeof(*mb));
    const char *name;
    json_t *b;
    int up = 0;
    json_object_foreach(brokers, name, b)
    {
        json_t *rtt = json_object_get(b, "rtt");
        snprintf(mb[k].name, sizeof(mb[k].name), "%s", name);
        mb[k].nodeid = (int)json_integer_value(json_object_get(b, "nodeid"));
        const char *state = json_string_value(json_object_get(b, "state"));
        mb[k].up = state && strcmp(state, "UP") == 0;
        mb[k].rtt_avg_s = json_us_to_s(rtt, "avg");
        mb[k].rtt_p99_s = json_us_to_s(rtt, "p99");
        up += mb[k].up;
        k++;
    }
    p->brokers_up = up;
    p->stats_at_us = util_now_us();
    if (p->metrics) {
        metrics_set_brokers(p->metrics, mb, k);
    }
    xfree(mb);
    json_decref(root);
    return 0;
}

static void on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    char code[64];
    snprintf(code, sizeof(code), "%s", rd_kafka_err2name((rd_kafka_resp_err_t)err));
    if (err == RD_KAFKA_RESP_ERR__FATAL) {
        struct pub *p = opaque;
        char fatal[512];
        rd_kafka_fatal_error(rk, fatal, sizeof(fatal));
        log_kv(LOG_ERROR, "kafka fatal error: replacing the producer", "error", code, "reason",
               fatal, NULL);
        /* Never inside librdkafka's own callback: the loop runs the replacement next. */
        p->fatal = true;
        event_active(p->ev_recreate, 0, 0);
        return;
    }
    log_kv(LOG_WARN, "kafka error", "error", code, "reason", reason, NULL);
}

/* librdkafka threads call this; log.c writes each line with one write(2), so it is safe. */
static void on_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    (void)rk;
    enum log_level lvl = level <= 3 ? LOG_ERROR : level <= 4 ? LOG_WARN : level <= 6 ? LOG_INFO
                                                                                     : LOG_DEBUG;
    log_kv(lvl, "kafka", "facility", fac, "detail", buf, NULL);
}

/* ==== librdkafka's threads ==== */

/*
 * A broker thread woken for a queued message pre-empts the loop on a busy core (the benchmark
 * pins the bridge, librdkafka's threads included, to one) and sends what little is queued. At a
 * lower priority it runs once the loop has taken in every ready request, and sends them in one
 * produce request; an idle bridge still sends at once. librdkafka calls this from each new
 * thread, so the nice is the thread's own (Linux: setpriority on a thread id). Failure only
 * costs the batching: it is ignored.
 */
static rd_kafka_resp_err_t on_thread_start(rd_kafka_t *rk, rd_kafka_thread_type_t type,
                                           const char *name, void *ic_opaque)
{
    const int *nice = ic_opaque;
    (void)rk;
    (void)name;
    if (type == RD_KAFKA_THREAD_BROKER && *nice > 0) {
        setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), *nice);
    }
    return RD_KAFKA_RESP_ERR_NO_ERROR;
}

static rd_kafka_resp_err_t on_new(rd_kafka_t *rk, const rd_kafka_conf_t *conf, void *ic_opaque,
                                  char *errstr, size_t errstr_size)
{
    (void)conf;
    (void)errstr;
    (void)errstr_size;
    return rd_kafka_interceptor_add_on_thread_start(rk, "webhook-bridge", on_thread_start,
                                                    ic_opaque);
}

/* ==== Loop wiring ==== */

void pub_poll(struct pub *p)
{
    while (p->rk && rd_kafka_poll(p->rk, 0) > 0) {
    }
}

/*
 * librdkafka writes one byte each time the queue turns non-empty, so the pipe rarely holds more
 * than a few: one read empties it, and a second read only to meet EAGAIN would be a system call
 * per wake-up for nothing (the event stays readable if bytes remain).
 */
static void on_readable(evutil_socket_t fd, short what, void *arg)
{
    char drain[256];
    (void)what;
    while (read(fd, drain, sizeof(drain)) == (ssize_t)sizeof(drain)) {
    }
    pub_poll(arg);
}

/* A slow tick serves statistics and error events even when no delivery report is due. */
static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    pub_poll(arg);
}

static void attach_queue(struct pub *p)
{
    p->mainq = rd_kafka_queue_get_main(p->rk);
    rd_kafka_queue_io_event_enable(p->mainq, p->pipefd[1], "1", 1);
}

static void on_recreate(evutil_socket_t fd, short what, void *arg);

static int wire_loop(struct pub *p, struct event_base *base, char *err, size_t errsz)
{
    if (pipe2(p->pipefd, O_NONBLOCK | O_CLOEXEC) < 0) {
        snprintf(err, errsz, "pipe: %s", strerror(errno));
        return -errno;
    }
    attach_queue(p);
    p->ev_read = event_new(base, p->pipefd[0], EV_READ | EV_PERSIST, on_readable, p);
    p->ev_tick = event_new(base, -1, EV_PERSIST, on_tick, p);
    p->ev_recreate = event_new(base, -1, 0, on_recreate, p);
    struct timeval tick = {1, 0};
    if (!p->ev_read || !p->ev_tick || !p->ev_recreate || event_add(p->ev_read, NULL) < 0 ||
        event_add(p->ev_tick, &tick) < 0) {
        snprintf(err, errsz, "cannot register Kafka events with the loop");
        return -ENOMEM;
    }
    return 0;
}

/* ==== Embedded mock cluster ==== */

static int start_embedded(struct pub *p, char *err, size_t errsz)
{
    char rkerr[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set_log_cb(conf, on_log);
    /* This handle only hosts the cluster; its "no bootstrap.servers" notice is noise. */
    rd_kafka_conf_set(conf, "log_level", "3", rkerr, sizeof(rkerr));
    p->mock_rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, rkerr, sizeof(rkerr));
    if (!p->mock_rk) {
        rd_kafka_conf_destroy(conf);
        snprintf(err, errsz, "embedded Kafka: %s", rkerr);
        return -EIO;
    }
    p->mcluster = rd_kafka_mock_cluster_new(p->mock_rk, 1);
    if (!p->mcluster) {
        snprintf(err, errsz, "embedded Kafka: cannot start the mock cluster");
        return -EIO;
    }
    p->mock_bootstrap = xstrdup(rd_kafka_mock_cluster_bootstraps(p->mcluster));
    log_kv(LOG_WARN,
           "EMBEDDED KAFKA: in-memory mock cluster, NOT DURABLE: every message is lost when "
           "the bridge stops; set kafka.bootstrap_servers for production",
           "bootstrap", p->mock_bootstrap, NULL);
    return 0;
}

/* Sticky partitions are drawn for murmur2: with another partitioner the ids would not land there. */
static bool murmur2_configured(const struct cfg *cfg)
{
    for (size_t i = 0; i < cfg->kafka.nproperties; i++) {
        const char *name = cfg->kafka.properties[i].name;
        if (strcmp(name, "partitioner") == 0 || strcmp(name, "topic.partitioner") == 0) {
            return strcmp(cfg->kafka.properties[i].value, "murmur2_random") == 0;
        }
    }
    return true;
}

struct pub *pub_new(const struct cfg *cfg, struct event_base *base, pub_delivery_fn cb,
                    char *err, size_t errsz)
{
    struct pub *p = xcalloc(1, sizeof(*p));
    rd_kafka_conf_t *conf = NULL;
    char rkerr[256];
    p->pipefd[0] = p->pipefd[1] = -1;
    p->cb = cb;
    p->brokers_up = -1;
    p->topics_mask = 63;
    p->topics = xcalloc(p->topics_mask + 1, sizeof(*p->topics));

    if (cfg_kafka_embedded(cfg) && start_embedded(p, err, errsz) < 0) {
        goto out;
    }
    conf = rd_kafka_conf_new();
    const char *bootstrap = p->mock_bootstrap ? p->mock_bootstrap : cfg->kafka.bootstrap_servers;
    if (apply_defaults(conf, cfg, bootstrap, err, errsz) < 0) {
        goto out;
    }
    p->thread_nice = (int)cfg->kafka.thread_nice;
    p->sticky_us = murmur2_configured(cfg) ? cfg->kafka.sticky_ms * 1000 : 0;
    if (rd_kafka_conf_interceptor_add_on_new(conf, "webhook-bridge", on_new, &p->thread_nice) !=
        RD_KAFKA_RESP_ERR_NO_ERROR) {
        snprintf(err, errsz, "kafka producer: cannot add the thread interceptor");
        goto out;
    }
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rd_kafka_conf_set_error_cb(conf, on_error);
    rd_kafka_conf_set_log_cb(conf, on_log);
    rd_kafka_conf_set_stats_cb(conf, on_stats);
    rd_kafka_conf_set_opaque(conf, p);
    p->conf = rd_kafka_conf_dup(conf);
    p->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, rkerr, sizeof(rkerr));
    if (!p->rk) {
        snprintf(err, errsz, "kafka producer: %s", rkerr);
        goto out;
    }
    conf = NULL; /* owned by rk now */
    if (wire_loop(p, base, err, errsz) < 0) {
        goto out;
    }
    return p;
out:
    if (conf) {
        rd_kafka_conf_destroy(conf);
    }
    pub_free(p);
    return NULL;
}

/* ==== Sending ==== */

static uint64_t hash_name(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    while (*s) {
        h = (h ^ (unsigned char)*s++) * 1099511628211ULL;
    }
    return h;
}

static void grow_topics(struct pub *p)
{
    struct topic_slot *old = p->topics;
    size_t oldcap = p->topics_mask + 1;
    p->topics_mask = oldcap * 2 - 1;
    p->topics = xcalloc(oldcap * 2, sizeof(*p->topics));
    for (size_t i = 0; i < oldcap; i++) {
        if (old[i].name) {
            size_t s = hash_name(old[i].name) & p->topics_mask;
            while (p->topics[s].name) {
                s = (s + 1) & p->topics_mask;
            }
            p->topics[s] = old[i];
        }
    }
    xfree(old);
}

/*
 * murmur2_random, as configured, which also tells the topic's state how many partitions there
 * are. librdkafka calls it from the loop thread (rd_kafka_producev) or, for a message that waited
 * for the topic's metadata, from one of its own threads: hence the atomic.
 */
static int32_t partition_murmur2(const rd_kafka_topic_t *rkt, const void *key, size_t keylen,
                                 int32_t partitions, void *rkt_opaque, void *msg_opaque)
{
    struct topic_state *ts = rkt_opaque;
    atomic_store_explicit(&ts->partitions, partitions, memory_order_relaxed);
    return rd_kafka_msg_partitioner_murmur2_random(rkt, key, keylen, partitions, rkt_opaque,
                                                   msg_opaque);
}

/* Topic handles are created once per name and kept: a lookup per message would cost a lock. */
static struct topic_slot *topic_slot(struct pub *p, const char *name)
{
    size_t s = hash_name(name) & p->topics_mask;
    while (p->topics[s].name) {
        if (strcmp(p->topics[s].name, name) == 0) {
            return &p->topics[s];
        }
        s = (s + 1) & p->topics_mask;
    }
    struct topic_state *ts = NULL;
    rd_kafka_topic_conf_t *tc = NULL;
    if (p->sticky_us > 0) {
        ts = xcalloc(1, sizeof(*ts));
        tc = rd_kafka_default_topic_conf_dup(p->rk);
        rd_kafka_topic_conf_set_partitioner_cb(tc, partition_murmur2);
        rd_kafka_topic_conf_set_opaque(tc, ts);
    }
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(p->rk, name, tc); /* takes tc, even on failure */
    if (!rkt) {
        xfree(ts);
        return NULL;
    }
    p->topics[s].name = xstrdup(name);
    p->topics[s].rkt = rkt;
    p->topics[s].ts = ts;
    struct topic_slot *slot = &p->topics[s];
    if (++p->ntopics * 2 > p->topics_mask) {
        grow_topics(p);
        slot = topic_slot(p, name);
    }
    return slot;
}

bool pub_sticky_on(const struct pub *p)
{
    return p->sticky_us > 0;
}

void pub_sticky(struct pub *p, const char *topic, struct pub_sticky *st)
{
    memset(st, 0, sizeof(*st));
    struct topic_slot *slot = p->fatal ? NULL : topic_slot(p, topic);
    struct topic_state *ts = slot ? slot->ts : NULL;
    if (!ts) {
        return;
    }
    int32_t n = atomic_load_explicit(&ts->partitions, memory_order_relaxed);
    if (n <= 0) {
        return;
    }
    long long now = util_now_us();
    if (now >= ts->until_us || ts->width <= 0 || ts->width > n) {
        /* A quarter of the partitions: about four draws of an id, and small groups stay small. */
        ts->width = (n + 3) / 4;
        ts->first = (ts->first + ts->width) % n;
        ts->until_us = now + p->sticky_us;
    }
    st->partitions = n;
    st->first = ts->first;
    st->width = ts->width;
}

bool pub_sticky_fits(const struct pub_sticky *st, const char *key, size_t keylen)
{
    if (st->partitions <= 0) {
        return true;
    }
    int32_t part = rd_kafka_msg_partitioner_murmur2(NULL, key, keylen, st->partitions, NULL, NULL);
    return (part - st->first + st->partitions) % st->partitions < st->width;
}

int pub_send(struct pub *p, const char *topic, const char *key, size_t keylen, void *payload,
             size_t len, void *opaque)
{
    if (p->fatal) {
        return -EAGAIN;
    }
    struct topic_slot *slot = topic_slot(p, topic);
    if (!slot) {
        return -EIO;
    }
    rd_kafka_topic_t *rkt = slot->rkt;
    rd_kafka_resp_err_t e = rd_kafka_producev(
        /* No RD_KAFKA_MSG_F_FREE: on_delivery gives the buffer back to the pool instead. */
        p->rk, RD_KAFKA_V_RKT(rkt), RD_KAFKA_V_MSGFLAGS(0),
        RD_KAFKA_V_VALUE(payload, len), RD_KAFKA_V_KEY(key, keylen),
        RD_KAFKA_V_HEADER(PROTO_HEADER_CONTENT_TYPE, PROTO_CONTENT_TYPE, -1),
        RD_KAFKA_V_HEADER(PROTO_HEADER_EXECUTION_ID, key, (ssize_t)keylen), RD_KAFKA_V_OPAQUE(opaque),
        RD_KAFKA_V_END);
    switch (e) {
    case RD_KAFKA_RESP_ERR_NO_ERROR:
        p->in_flight++;
        return 0;
    case RD_KAFKA_RESP_ERR__QUEUE_FULL:
        return -ENOBUFS;
    case RD_KAFKA_RESP_ERR__FATAL:
        /* librdkafka knew before our error callback ran: the replacement is on its way. */
        return -EAGAIN;
    case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:
        return -EMSGSIZE;
    default:
        log_kv(LOG_ERROR, "kafka produce failed", "topic", topic, "error", rd_kafka_err2name(e),
               NULL);
        return -EIO;
    }
}

/* ==== Replacing a producer after a fatal error ==== */

static void drop_topics(struct pub *p)
{
    for (size_t i = 0; i <= p->topics_mask; i++) {
        if (p->topics[i].name) {
            rd_kafka_topic_destroy(p->topics[i].rkt);
            xfree(p->topics[i].name);
            p->topics[i].name = NULL;
            if (p->topics[i].ts) {
                p->topics[i].ts->next = p->retired;
                p->retired = p->topics[i].ts;
                p->topics[i].ts = NULL;
            }
        }
    }
    p->ntopics = 0;
}

/* A state is the partitioner's opaque: it may only go once the producer that calls it is gone. */
static void free_retired(struct pub *p)
{
    while (p->retired) {
        struct topic_state *ts = p->retired;
        p->retired = ts->next;
        xfree(ts);
    }
}

/* Every message of the producer gets its report (purged: failed, answered 503) before it goes. */
static void retire_producer(struct pub *p)
{
    rd_kafka_purge(p->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    long long deadline = util_now_us() + 5000000;
    while (rd_kafka_outq_len(p->rk) > 0 && util_now_us() < deadline) {
        rd_kafka_poll(p->rk, 50);
    }
    pub_poll(p);
    drop_topics(p);
    rd_kafka_queue_io_event_enable(p->mainq, -1, NULL, 0);
    rd_kafka_queue_destroy(p->mainq);
    p->mainq = NULL;
    rd_kafka_destroy(p->rk);
    p->rk = NULL;
    free_retired(p);
}

/*
 * An idempotent producer that hit a fatal error refuses every message from then on (a known way
 * peers went dark until restarted). Its messages are failed and answered 503, so senders retry;
 * then a new producer with the same settings takes its place. Requests arriving meanwhile get
 * 503 too (pub_send returns -EAGAIN).
 */
static void on_recreate(evutil_socket_t fd, short what, void *arg)
{
    struct pub *p = arg;
    char rkerr[256];
    (void)fd;
    (void)what;
    retire_producer(p);
    rd_kafka_conf_t *conf = rd_kafka_conf_dup(p->conf);
    p->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, rkerr, sizeof(rkerr));
    if (!p->rk) {
        rd_kafka_conf_destroy(conf);
        /* The same settings worked at start; retry shortly rather than give up serving. */
        log_kv(LOG_ERROR, "cannot create a new Kafka producer", "error", rkerr, NULL);
        struct timeval again = {1, 0};
        event_add(p->ev_recreate, &again);
        return;
    }
    attach_queue(p);
    p->fatal = false;
    p->recreated++;
    log_kv(LOG_WARN, "kafka producer replaced after a fatal error", NULL);
}

size_t pub_in_flight(const struct pub *p)
{
    return p->in_flight;
}

size_t pub_flush(struct pub *p, int timeout_ms)
{
    long long deadline = util_now_us() + (long long)timeout_ms * 1000;
    while (p->rk && p->in_flight > 0 && util_now_us() < deadline) {
        rd_kafka_poll(p->rk, 50);
    }
    return p->in_flight;
}

void pub_set_metrics(struct pub *p, struct metrics *m)
{
    p->metrics = m;
}

size_t pub_queue_len(const struct pub *p)
{
    return p->rk ? (size_t)rd_kafka_outq_len(p->rk) : 0;
}

int pub_brokers_up(const struct pub *p, long long max_age_ms)
{
    if (p->brokers_up < 0 || util_now_us() - p->stats_at_us > max_age_ms * 1000) {
        return -1;
    }
    return p->brokers_up;
}

unsigned long pub_recreated(const struct pub *p)
{
    return p->recreated;
}

const char *pub_embedded_bootstrap(const struct pub *p)
{
    return p->mock_bootstrap;
}

void pub_free(struct pub *p)
{
    if (!p) {
        return;
    }
    if (p->rk) {
        /* Anything still queued is reported as failed, so every request gets its answer. */
        rd_kafka_purge(p->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
        pub_flush(p, 1000);
    }
    drop_topics(p);
    xfree(p->topics);
    if (p->conf) {
        rd_kafka_conf_destroy(p->conf);
    }
    if (p->ev_recreate) {
        event_free(p->ev_recreate);
    }
    if (p->ev_read) {
        event_free(p->ev_read);
    }
    if (p->ev_tick) {
        event_free(p->ev_tick);
    }
    if (p->mainq) {
        rd_kafka_queue_io_event_enable(p->mainq, -1, NULL, 0);
        rd_kafka_queue_destroy(p->mainq);
    }
    if (p->rk) {
        rd_kafka_destroy(p->rk);
    }
    bufpool_drain(); /* every report was served: the pool holds all the buffers left */
    free_retired(p);
    if (p->mcluster) {
        rd_kafka_mock_cluster_destroy(p->mcluster);
    }
    if (p->mock_rk) {
        rd_kafka_destroy(p->mock_rk);
    }
    for (int i = 0; i < 2; i++) {
        if (p->pipefd[i] >= 0) {
            close(p->pipefd[i]);
        }
    }
    xfree(p->mock_bootstrap);
    xfree(p);
}
