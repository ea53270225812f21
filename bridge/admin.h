/*
 * admin.h: the operations listener (admin_listen): /metrics (Prometheus text), /health, /ready
 * and /lag (JSON), on the same event loop as the webhooks but its own socket. Unknown paths get
 * 404, methods other than GET (and HEAD) 405, every error a JSON body with a message.
 */
#ifndef BRIDGE_ADMIN_H
#define BRIDGE_ADMIN_H

#include <stdbool.h>
#include <stddef.h>

struct event_base;
struct metrics;
struct lag;
struct admin;

/**
 * Decides /ready: true when the bridge can take webhooks; otherwise writes why (one sentence)
 * into why. Called on the loop's thread for every /ready request; must not block.
 */
typedef bool (*admin_ready_fn)(void *arg, char *why, size_t whysz);

struct xs;

struct admin_deps {
    struct metrics *metrics; /* rendered at /metrics */
    struct lag *lag;         /* optional: /metrics gains the lag samples, /lag its JSON */
    struct xs *xs;           /* optional: /triggers/disabled and /triggers/enable (stopAfter) */
    const char *tenant;      /* the bridge's tenant, for /triggers/enable (copied) */
    admin_ready_fn ready;
    void *ready_arg;
};

/**
 * Binds listen ("HOST:PORT", port 0 allowed; no SO_REUSEPORT: each bridge needs its own admin
 * port, or a scrape would reach a random one) and serves on base. deps' pointers are borrowed and
 * must outlive the listener. NULL with err set on failure.
 */
struct admin *admin_new(struct event_base *base, const char *listen, const struct admin_deps *deps,
                        char *err, size_t errsz);

/** "HOST:PORT" actually bound. */
const char *admin_address(const struct admin *a);

void admin_free(struct admin *a);

#endif
