/*
 * metrics.h: the bridge's counters and gauges, and their rendering in the Prometheus text format
 * (every name prefixed webhook_bridge_). No sockets, no Kafka, no locks: everything here is
 * called from the event loop's thread only.
 *
 * Per-flow counters are keyed by "namespace/flowId" inside this module, not in struct flow, so
 * they survive a flow reload: a reloaded flow finds its old counters again.
 */
#ifndef BRIDGE_METRICS_H
#define BRIDGE_METRICS_H

#include <stdbool.h>
#include <stddef.h>

#include "util.h"
#include "webhook.h"

struct metrics;

/** One flow's counters. Lives as long as its struct metrics; never freed on its own. */
struct metrics_flow;

/** Upper bounds (seconds) of the ack latency histogram's buckets, +Inf excluded. */
#define METRICS_LATENCY_BUCKETS 14

/** Gauges read when /metrics is rendered; filled by the metrics_gauges_fn. */
struct metrics_gauges {
    size_t in_flight;       /* requests waiting for their delivery report */
    size_t in_flight_bytes; /* bytes of their messages */
    size_t queue_msgs;      /* messages in the producer's queue (librdkafka outq) */
    size_t flows;           /* flows loaded */
    size_t disabled;        /* triggers stopAfter disabled */
    size_t waiting;         /* wait: true requests waiting for their execution's end */
    long long loop_delay_us; /* how far behind the event loop runs (loopdelay.h) */
    double busy_share;       /* share of new requests refused for it, 0 to 1 */
};

/** Called at render time on the loop's thread to read the live gauges. */
typedef void (*metrics_gauges_fn)(void *arg, struct metrics_gauges *g);

/** One broker as the producer's last statistics described it. */
struct metrics_broker {
    char name[128];              /* librdkafka's "host:port/nodeid" */
    int nodeid;                  /* -1 for a bootstrap entry */
    bool up;                     /* state "UP" */
    double rtt_avg_s, rtt_p99_s; /* request round-trip time over the statistics window */
};

struct metrics *metrics_new(void);

/** Frees m and every metrics_flow in it; NULL is a no-op. */
void metrics_free(struct metrics *m);

/** Sets the function that reads the live gauges at render time (fn may be NULL: all zero). */
void metrics_set_gauges(struct metrics *m, metrics_gauges_fn fn, void *arg);

/**
 * The counters of flow ns/flow, created on first use. ns NULL: the bucket of requests that matched
 * no flow (rendered with empty namespace and flow labels). Borrowed from m.
 */
struct metrics_flow *metrics_flow(struct metrics *m, const char *ns, const char *flow);

/* ==== Request path (loop thread; constant time, no allocation after a flow's first request) ====
 */

/** Counts the body bytes of a request received for mf. */
void metrics_body(struct metrics_flow *mf, size_t bytes);

/**
 * Counts one answered request with verdict v (its status from hook_answer): requests_total by
 * code, rejected_total by code and reason for 4xx/5xx, conditions_false_total for 204.
 * For requests that went to Kafka, call metrics_acked instead: it calls this too.
 */
void metrics_answer(struct metrics *m, struct metrics_flow *mf, enum hook_verdict v);

/** A request handed to the producer: accepted_total (its answer follows with metrics_acked). */
void metrics_accepted(struct metrics_flow *mf);

/**
 * The delivery report of an accepted request: delivered_total or delivery_failed_total, the ack
 * latency histogram (latency_us from acceptance) and the answer (metrics_answer with v). Counted
 * even when the client left before its answer.
 */
void metrics_acked(struct metrics *m, struct metrics_flow *mf, enum hook_verdict v,
                   long long latency_us);

/** An answer libevent gave by itself (malformed request, body over the limit): status only. */
void metrics_http_error(struct metrics *m, int status);

/* ==== Producer (loop thread) ==== */

/** A delivery report with a Kafka error; code is librdkafka's error name ("_MSG_TIMED_OUT"). */
void metrics_delivery_error(struct metrics *m, const char *code);

/** Replaces the broker list with the producer's latest statistics (copied). */
void metrics_set_brokers(struct metrics *m, const struct metrics_broker *b, size_t n);

/* ==== Reloads ==== */

/**
 * One flow reload finished: reloads_total{result="ok"|"failed"}; an ok one also sets
 * last_reload_success_timestamp_seconds to now. Call it from the loop's thread.
 */
void metrics_reload(struct metrics *m, bool ok);

/* ==== Rendering ==== */

/** Appends every metric of m to b in the Prometheus text format (version 0.0.4). */
void metrics_render(struct metrics *m, struct sbuf *b);

/** Appends s as a Prometheus label value: quoted, with \\, \" and \n escaped. */
void metrics_label_value(struct sbuf *b, const char *s);

#endif
