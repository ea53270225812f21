/*
 * publish.h: the Kafka producer. Sends encoded messages and reports each delivery back through a
 * callback on the libevent loop's thread. The only file that includes rdkafka.h.
 */
#ifndef BRIDGE_PUBLISH_H
#define BRIDGE_PUBLISH_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"

struct event_base;
struct metrics;

/** Delivery outcome of one message. */
enum pub_result {
    PUB_DELIVERED = 0,
    PUB_FAILED,       /* retriable: timed out, broker down, not enough replicas, or reported
                         delivered without an offset (not confirmed by the broker) */
    PUB_TOO_LARGE,    /* the broker or the producer refused the size */
    PUB_TOPIC_FAILED, /* permanent: unknown topic, authorization */
};

/**
 * Called once per message sent with pub_send, from the event loop's thread (inside the loop's
 * dispatch), with the opaque given to pub_send. `reason` is librdkafka's text (static).
 */
typedef void (*pub_delivery_fn)(void *opaque, enum pub_result result, const char *reason);

struct pub;

/**
 * Creates the producer (acks=all, idempotent, murmur2_random, settings from cfg). With an
 * embedded bootstrap list it first starts librdkafka's mock cluster in this process. Delivery
 * reports are served from `base` through librdkafka's queue I/O event: no thread of ours polls.
 * Returns NULL with a message in err on failure.
 */
struct pub *pub_new(const struct cfg *cfg, struct event_base *base, pub_delivery_fn cb,
                    char *err, size_t errsz);

/**
 * Sends `len` bytes of payload to topic with Kafka key `key` and the format headers. On success
 * (0) the producer takes ownership of payload (it must come from malloc) and cb will be called
 * exactly once with opaque; librdkafka sends it without a copy, and the delivery report hands it
 * to bufpool_put for a later message. On failure payload still belongs to the caller and cb is
 * not called:
 * -ENOBUFS when the local queue is full, -EAGAIN while the producer is being replaced after a
 * fatal error, -EMSGSIZE when the message is too large, -EIO otherwise.
 */
int pub_send(struct pub *p, const char *topic, const char *key, size_t keylen, void *payload,
             size_t len, void *opaque);

/**
 * Where a message to one topic should go now, so that the messages of a short interval leave in
 * one batch: `width` partitions from `first` (wrapping) of `partitions`. partitions 0: anywhere
 * (sticky partitions off, kafka.sticky_ms 0 or another partitioner, or the topic's partition
 * count not learned yet).
 */
struct pub_sticky {
    int partitions;
    int first;
    int width;
};

/** Whether this producer draws ids into sticky groups (kafka.sticky_ms > 0, murmur2). */
bool pub_sticky_on(const struct pub *p);

/**
 * Fills st for topic. The group moves on to the next partitions every kafka.sticky_ms, so over
 * time every partition gets its share. Cheap: a lookup and a clock read.
 */
void pub_sticky(struct pub *p, const char *topic, struct pub_sticky *st);

/**
 * Whether a message with this key lands in st's group: the partition murmur2_random gives the
 * key (the Java client's murmur2, as librdkafka computes it) is in the group. Always true when
 * st says "anywhere". The caller draws random keys (execution ids) until one fits.
 */
bool pub_sticky_fits(const struct pub_sticky *st, const char *key, size_t keylen);

/** Messages handed to pub_send whose delivery report has not been served yet. */
size_t pub_in_flight(const struct pub *p);

/** Serves delivery reports without waiting. */
void pub_poll(struct pub *p);

/** Waits up to timeout_ms for every outstanding delivery report (serving them); returns how many remain. */
size_t pub_flush(struct pub *p, int timeout_ms);

/** The embedded mock cluster's bootstrap list, or NULL when using a real cluster. */
const char *pub_embedded_bootstrap(const struct pub *p);

/**
 * Counts delivery errors by Kafka error name and publishes the brokers' state and round-trip
 * times from librdkafka's statistics (every second) into m (borrowed; must outlive p).
 */
void pub_set_metrics(struct pub *p, struct metrics *m);

/** Messages in the producer's queue: waiting to be sent or for their acknowledgement. */
size_t pub_queue_len(const struct pub *p);

/**
 * Brokers whose connection was up in librdkafka's last statistics, or -1 when there are none yet
 * or they are older than max_age_ms (statistics come every second, from the loop's poll).
 */
int pub_brokers_up(const struct pub *p, long long max_age_ms);

/** Producers replaced after a fatal error since start. */
unsigned long pub_recreated(const struct pub *p);

/** Destroys the producer; outstanding messages are purged and reported as failed first. */
void pub_free(struct pub *p);

#endif
