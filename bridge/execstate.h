/*
 * execstate.h: the channel back from the executors (proto/SPEC-STATE.md). Follows the state topic
 * (every partition, from its end: each replica sees every execution's end, so the one holding a
 * `wait: true` request answers it, whatever partition the executor's record went to) and the
 * compacted trigger-state topic (read whole before the bridge starts serving, then followed: the
 * only store of the triggers `stopAfter` disabled). Writes a trigger-state record when a terminal
 * state listed in a trigger's stopAfter arrives, and when an operator enables a trigger again.
 * Everything runs on the libevent loop's thread; librdkafka wakes it through a pipe.
 */
#ifndef BRIDGE_EXECSTATE_H
#define BRIDGE_EXECSTATE_H

#include <stdbool.h>
#include <stddef.h>

#include <msgpack.h>

#include "config.h"
#include "flow.h"
#include "util.h"

struct event_base;
struct xs;
struct xs_wait;

/** The end of an execution, as the executor reported it. Borrowed for the callback only. */
struct xs_end {
    const char *exec_id;            /* 22 characters, NUL-terminated */
    const char *state;              /* State.Type name, NUL-terminated */
    bool failed;                    /* state is FAILED */
    const msgpack_object *outputs;  /* the flow outputs map, or NULL when the event had none */
};

/**
 * Called once per wait, on the loop's thread: with the execution's end, or with end NULL when
 * the wait limit passed (or xs_expire_all ran). The wait is freed by the time it returns: do not
 * call xs_wait_free on it afterwards.
 */
typedef void (*xs_end_fn)(void *opaque, const struct xs_end *end);

/**
 * Creates the consumer (assign(), never a group rebalance: every replica reads every partition)
 * and the producer of trigger-state records, with cfg's kafka.properties. bootstrap overrides
 * cfg->kafka.bootstrap_servers (the embedded mock cluster's list; NULL: the config's). Nothing is
 * read yet: call xs_load. NULL with a message in err on failure. On the embedded cluster (a
 * non-NULL bootstrap) xs_free neither commits nor leaves the group: that cluster dies with the
 * process, and in main it is gone already (the publisher that owns it stops first).
 */
struct xs *xs_new(const struct cfg *cfg, const char *bootstrap, struct event_base *base,
                  char *err, size_t errsz);

/**
 * Blocks (before the loop runs) until the trigger-state topic was read up to the high
 * watermarks it had at the call, every partition, keeping the last record per key; assigns the
 * state topic from where the replicas had applied it (offsets committed under one shared group
 * that never joins; its end on the very first start), so stopAfter also applies to executions
 * that ended while no replica ran; then follows both from the loop, committing every second.
 * Returns 0, or -ETIMEDOUT / -EIO with a message in err.
 */
int xs_load(struct xs *x, int timeout_ms, char *err, size_t errsz);

/**
 * The flows whose stopAfter applies (borrowed; set again after a reload; NULL: none). Set it
 * before xs_load: events read while loading (published while no replica ran) apply it too.
 */
void xs_set_flows(struct xs *x, const struct flow_set *fs);

/** True when tr (in tenant) is disabled by a trigger-state record. Cheap when none is. */
bool xs_is_disabled(const struct xs *x, const char *tenant, const struct flow_trigger *tr);

/**
 * Waits for the terminal state of execution exec_id, at most timeout_ms; cb is called exactly
 * once (see xs_end_fn) unless xs_wait_free cancels the wait first. Returns the wait (owned by x).
 */
struct xs_wait *xs_wait_new(struct xs *x, const char *exec_id, long timeout_ms, xs_end_fn cb,
                            void *opaque);

/** Cancels a wait whose callback has not run (the client went away). NULL is a no-op. */
void xs_wait_free(struct xs_wait *w);

/** Calls every pending wait's callback with end NULL (shutdown). */
void xs_expire_all(struct xs *x);

/** Pending waits. */
size_t xs_waiting(const struct xs *x);

/* ==== For the admin listener ==== */

/**
 * Appends the disabled triggers as a JSON array to out, sorted by key:
 * [{"tenantId","namespace","flowId","triggerId","executionId","state","time"}, ...].
 */
void xs_disabled_json(const struct xs *x, struct sbuf *out);

/** Number of disabled triggers. */
size_t xs_disabled_count(const struct xs *x);

/**
 * Enables the trigger again: writes a `disabled: false` record (SPEC-STATE.md §3) and forgets
 * the trigger locally at once; other replicas follow when they read the record. Returns 0,
 * -ENOENT when it was not disabled (nothing written), -EINVAL for names a trigger cannot have,
 * -EIO when the record could not be queued (message in err).
 */
int xs_enable(struct xs *x, const char *tenant, const char *ns, const char *flow_id,
              const char *trigger_id, char *err, size_t errsz);

/** Flushes the producer (bounded), cancels every wait without calling it, frees. NULL: no-op. */
void xs_free(struct xs *x);

#endif
