/*
 * lag.h: consumer lag of the executors' groups on the flow topics: end offsets minus committed
 * offsets, per partition and summed, refreshed by a thread of its own with its own Kafka client so
 * that the event loop never waits on a broker. Results are published under a mutex; the render
 * functions may be called from any thread.
 */
#ifndef BRIDGE_LAG_H
#define BRIDGE_LAG_H

#include <stddef.h>

#include "config.h"
#include "util.h"

/** One topic and the consumer groups whose lag on it is watched. Borrowed by lag_set_targets. */
struct lag_target {
    const char *topic;
    const char *const *groups;
    size_t ngroups;
};

struct lag;

/**
 * Starts the refresh thread: every cfg->lag.interval_ms, for each target topic and group, the
 * partitions (metadata), their low and high watermarks and the group's committed offsets
 * (ListConsumerGroupOffsets with explicit partitions). bootstrap is the broker list to use
 * (the embedded cluster's when there is one); cfg->kafka.properties apply too (security). cfg is
 * only read during the call. Returns NULL with err set on failure.
 */
struct lag *lag_new(const struct cfg *cfg, const char *bootstrap, char *err, size_t errsz);

/** Replaces the targets (copied; after a reload too). The next refresh uses them. */
void lag_set_targets(struct lag *l, const struct lag_target *t, size_t n);

/**
 * Appends webhook_bridge_consumer_lag{topic,group} (sum over partitions),
 * webhook_bridge_consumer_lag_partition{topic,group,partition} and the time of the last refresh,
 * in the Prometheus text format. A topic that does not exist yet has lag 0 and no partitions; a
 * group whose offsets could not be read is left out until a refresh succeeds.
 */
void lag_render_prom(struct lag *l, struct sbuf *b);

/**
 * Appends the same as JSON: {"interval_ms", "refreshed_at" (RFC 3339 or null), "lag": [{"topic",
 * "group", "lag", "error" (string or null), "partitions": [{"partition", "low", "high",
 * "committed" (null when the group has no commit there), "lag"}]}]}.
 */
void lag_render_json(struct lag *l, struct sbuf *b);

/** Stops the thread (waiting for a refresh in progress, bounded by librdkafka's timeouts). */
void lag_free(struct lag *l);

#endif
