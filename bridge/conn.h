/*
 * conn.h: every client connection below evhttp: strict framing, timeouts and the connection cap.
 *
 * libevent 2.1's evhttp has one inactivity timeout, restarted by every byte (a client trickling
 * one byte a second holds a connection for ever), it cannot cap connections, and it parses
 * leniently (see reqcheck.h). The conn table makes the bufferevent of each connection
 * (evhttp_set_bevcb) and watches the bytes as they arrive, before evhttp parses them:
 *
 *  - every byte goes through reqcheck; a stream that is not strict HTTP/1.x, or a request past
 *    the URI or header limits, gets its JSON error (400, 405, 414, 431, 501, 505) written by
 *    the conn table itself, after the answers owed to the requests before it, and the connection
 *    closes: evhttp never parses the bad bytes;
 *  - a request head must arrive within header_timeout_ms of its first byte and its body within
 *    body_timeout_ms of the head, else 408 with a JSON message and the connection closes;
 *  - a new connection must send its first byte within header_timeout_ms, and a kept-alive one
 *    that stays idle for idle_timeout_ms after its last answer is closed (no answer is owed);
 *  - past max_connections, a new connection gets 503 with Retry-After and is closed.
 *
 * While a request waits for its answer (Kafka), no timer runs: delivery has its own bound.
 */
#ifndef BRIDGE_CONN_H
#define BRIDGE_CONN_H

#include <stdbool.h>
#include <stddef.h>

#include "reqcheck.h"

struct event_base;
struct bufferevent;
struct evhttp_connection;

struct conn_limits {
    long header_timeout_ms;
    long body_timeout_ms;
    long idle_timeout_ms;
    long max_connections;
    struct reqcheck_limits check;
};

struct conns;

/** An empty table; conns_set_limits() must run before the first connection. */
struct conns *conns_new(struct event_base *base);

/**
 * Sets the limits (copied). Timers armed from now on and connections opened from now on use
 * them (a reload); a connection's framing limits stay those it was opened with.
 */
void conns_set_limits(struct conns *t, const struct conn_limits *limits);

/** Frees the table. evhttp_free() must have run first (it closes every connection). */
void conns_free(struct conns *t);

/** The evhttp_set_bevcb callback (arg: the table). evhttp owns what it returns. */
struct bufferevent *conns_bev_new(struct event_base *base, void *arg);

/** An answer on evcon is fully written (evhttp's on_complete callback). */
void conns_answer_written(struct conns *t, struct evhttp_connection *evcon);

/** The connection must close after the current answer (the stream stopped being HTTP). */
bool conns_must_close(struct conns *t, struct evhttp_connection *evcon);

/**
 * fn(arg) runs when evcon closes, before evhttp frees it and its requests (evhttp has one close
 * callback per connection, and the conn table holds it). fn NULL removes the hook.
 */
void conns_set_close_hook(struct conns *t, struct evhttp_connection *evcon, void (*fn)(void *),
                          void *arg);

/**
 * fn(arg, status) runs for every answer the table writes itself (400, 405, 408, 414, 431, 501,
 * 503, 505), so the server's metrics count every request answered.
 */
void conns_on_answer(struct conns *t, void (*fn)(void *arg, int status), void *arg);

/** Connections open now. */
size_t conns_open(const struct conns *t);

#endif
