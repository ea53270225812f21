/*
 * loopdelay.h: how far behind the event loop runs, and the share of new requests to refuse.
 *
 * The bridge serves every request on one thread. When requests arrive faster than that thread
 * answers them, they queue where it cannot count them: in the kernel's socket buffers, unread.
 * What it can see is its own lateness: a timer due every LOOPDELAY_PERIOD_MS runs late by the
 * time the loop spends on everything that was ready before it (Node.js's event-loop delay, the
 * signal of fastify's under-pressure). A request read while the loop runs far behind has waited
 * about as long in the kernel.
 *
 * The answer is a share of new requests refused at once with 503, before their bodies are parsed,
 * so the core goes to the requests that can still be answered in time and the queue stops
 * growing. The share rises by LOOPDELAY_STEP_UP for every tick later than the limit, from the
 * second in a row on (one long loop turn, e.g. a reload, is not overload), and falls by
 * LOOPDELAY_STEP_DOWN for every tick on time, so it settles where what is admitted is what the
 * core can answer.
 */
#ifndef BRIDGE_LOOPDELAY_H
#define BRIDGE_LOOPDELAY_H

#include <stdbool.h>

struct event_base;
struct loopdelay;

#define LOOPDELAY_PERIOD_MS 10
#define LOOPDELAY_STEP_UP 0.1
#define LOOPDELAY_STEP_DOWN 0.05

/** Starts the timer on base; nothing is refused until loopdelay_set_limit. Never NULL. */
struct loopdelay *loopdelay_new(struct event_base *base);

/** Stops the timer and frees. NULL: nothing. */
void loopdelay_free(struct loopdelay *ld);

/** The lateness past which ticks count as late, in microseconds; 0 turns refusing off. */
void loopdelay_set_limit(struct loopdelay *ld, long long limit_us);

/** Whether to refuse the request at hand: true for about loopdelay_share() of them. */
bool loopdelay_refuse(struct loopdelay *ld);

/** How late the timer ran last time, in microseconds (0: on time). */
long long loopdelay_us(const struct loopdelay *ld);

/** The share of new requests refused now, 0 to 1. */
double loopdelay_share(const struct loopdelay *ld);

#endif
