/*
 * route.h: (tenant, namespace, flowId, key) → webhook trigger, in constant time.
 *
 * Every lookup hashes the four decoded URL parts with SHA-256 and probes a table of digests, so
 * an unknown namespace, an unknown flow and a wrong key cost exactly the same work and give the
 * same answer (no flow enumeration, no timing oracle on the key). No I/O.
 */
#ifndef BRIDGE_ROUTE_H
#define BRIDGE_ROUTE_H

#include "flow.h"
#include "util.h"

struct route_table;

/**
 * Builds the table for every webhook trigger of fs under `tenant`. Borrows fs, which must outlive
 * the table. Where two triggers of one flow render the same key, the first declared wins.
 */
struct route_table *route_table_new(const struct flow_set *fs, const char *tenant);
void route_table_free(struct route_table *rt);

/** Number of routes (webhook triggers reachable by a URL). */
size_t route_table_size(const struct route_table *rt);

/**
 * Finds the trigger for decoded URL parts; NULL when nothing matches. The returned trigger is
 * borrowed from the flow set; it may be disabled (or its flow may be): the caller answers 409.
 */
const struct flow_trigger *route_lookup(const struct route_table *rt, struct strv tenant,
                                        struct strv ns, struct strv flow_id, struct strv key);

#endif
