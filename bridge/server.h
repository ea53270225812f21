/*
 * server.h: the HTTP side: evhttp set-up, listening socket, request → webhook.c → publish.c,
 * and every answer. The only file that includes event2/http.h.
 */
#ifndef BRIDGE_SERVER_H
#define BRIDGE_SERVER_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "publish.h"
#include "webhook.h"

struct event_base;
struct evconnlistener;
struct metrics;
struct srv;

/**
 * Binds cfg->listen (SO_REUSEPORT, so several bridges can share a port) and serves webhooks on
 * base. hook and pub are borrowed and must outlive the server. NULL with err set on failure.
 */
struct srv *srv_new(struct event_base *base, const struct cfg *cfg, struct hook_ctx *hook,
                    char *err, size_t errsz);

/**
 * Serves with a new config from the next request on (after a reload); borrowed, it must outlive
 * the server or the next call. The request limits (body, headers, URI, in-flight budget) apply
 * at once to new requests; evhttp's own body, header and timeout settings to new connections.
 * listen is not re-read: the socket stays bound.
 */
void srv_set_cfg(struct srv *s, const struct cfg *cfg);

/** The producer the server sends through; set once, before the loop runs. Borrowed. */
void srv_set_pub(struct srv *s, struct pub *pub);

/**
 * Counts every answer into m (borrowed, must outlive the server), libevent's own error answers
 * included. Without it nothing is counted.
 */
void srv_set_metrics(struct srv *s, struct metrics *m);

/**
 * Binds a listening socket on "HOST:PORT" or "[V6]:PORT" (port 0: the kernel picks one), with
 * SO_REUSEPORT when reuseport is set. Writes the bound "HOST:PORT" to addr. The caller owns the
 * listener (evconnlistener_free, or hand it to evhttp_bind_listener). NULL with err set on
 * failure. Also used by admin.c.
 */
struct evconnlistener *srv_listen(struct event_base *base, const char *listen, bool reuseport,
                                  char *addr, size_t addrsz, char *err, size_t errsz);

struct xs;
/**
 * The execution-state follower (execstate.h) that `wait: true` requests wait on; set once, before
 * the loop runs. Borrowed. Without it, wait is ignored (the answer comes at the delivery).
 */
void srv_set_states(struct srv *s, struct xs *xs);

/** "HOST:PORT" actually bound (the real port when the config asked for port 0). */
const char *srv_address(const struct srv *s);

/** The pub_delivery_fn to give pub_new: answers the request behind opaque and frees it. */
void srv_on_delivery(void *opaque, enum pub_result result, const char *reason);

/**
 * Stops accepting connections; requests already accepted still get their real outcome, except
 * that `wait: true` requests waiting for their execution's end get 504 with the execution id at
 * once. When the last one is answered, on_drained(arg) runs (at once when none is in flight).
 */
void srv_drain(struct srv *s, void (*on_drained)(void *arg), void *arg);

/** Requests accepted and waiting for their delivery report. */
size_t srv_in_flight(const struct srv *s);

/** How far behind the event loop runs now, in microseconds (loopdelay.h). */
long long srv_loop_delay_us(const struct srv *s);

/** The share of new requests refused now because the loop runs behind (loopdelay.h), 0 to 1. */
double srv_refused_share(const struct srv *s);

/** Bytes of the messages of those requests. */
size_t srv_in_flight_bytes(const struct srv *s);

void srv_free(struct srv *s);

#endif
