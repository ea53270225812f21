/*
 * reload.h: hot reload of the flows and of the reloadable part of the config, on SIGHUP and on a
 * change in flows_dir (inotify, debounced). Owns what serves requests now: the config, the flow
 * set and its route table. Runs on the libevent loop's thread only; no locks.
 *
 * A reload loads the config file again (through the caller's loader, which applies the command
 * line's overrides), puts back the running value of every key that needs a restart (a warning
 * each: cfg_keep_restart_keys), validates the whole config and every flow, builds the new route
 * table, and only then swaps: the hook context and the server point at the new set between two
 * requests. Any error keeps everything as it was; each error is logged at level error with its
 * file:line:col and counted. Requests already routed keep the flow set they matched (they hold
 * a reference, see hook_req.flows); the old set is freed with the last of them.
 */
#ifndef BRIDGE_RELOAD_H
#define BRIDGE_RELOAD_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "diag.h"
#include "flow.h"
#include "route.h"

struct event_base;
struct hook_ctx;
struct srv;

/** Counters of reload outcomes since start, for the metrics endpoint and the logs. */
struct reload_stats {
    unsigned long ok;       /* reloads swapped in */
    unsigned long failed;   /* reloads refused (the running set stayed) */
    long long last_ok_unix; /* wall-clock seconds of the last successful reload; 0: none yet */
    char last_error[512];   /* first error of the last failed reload, "file:line:col: msg";
                             * kept after later successes; "" until a reload fails */
};

/** What a reload changed, flow by flow (namespace and id name a flow). */
struct reload_counts {
    size_t added;
    size_t removed;
    size_t changed; /* same namespace and id; another file, text, topic or expression rules */
    size_t unchanged;
};

/**
 * Loads the config as at start: the file (if any) with the command line's overrides, checked
 * with cfg_validate(). Returns a new config, or NULL with every error in dl.
 */
typedef struct cfg *(*reload_load_fn)(void *arg, struct diag_list *dl);

struct reload;

/**
 * Takes cfg and fs (both loaded and valid; never NULL), builds their route table, and returns
 * the reload state that owns all three. Nothing is watched yet. Always succeeds.
 */
struct reload *reload_new_take(struct cfg *cfg, struct flow_set *fs);

/**
 * The current config, flow set and route table. Borrowed: valid until the next successful reload
 * (callers on the loop must not keep them across iterations).
 */
const struct cfg *reload_cfg(const struct reload *rl);
struct flow_set *reload_flows(const struct reload *rl);
const struct route_table *reload_routes(const struct reload *rl);

/**
 * Remembers what a swap must repoint (both borrowed, each optional: unit tests pass NULL) and
 * points them at the current set now: hook_ctx_set_routes(hook, routes, flows) and
 * srv_set_cfg(srv, cfg).
 */
void reload_attach(struct reload *rl, struct hook_ctx *hook, struct srv *srv);

/**
 * Starts reacting on base: SIGHUP reloads at once; a change below cfg->flows_dir (a file
 * .yml or .yaml created, written, renamed, removed or touched; a folder created or removed; the
 * `..data` link Kubernetes swaps for a mounted ConfigMap) reloads after reload.debounce_ms of
 * quiet. load (with arg) reads the config again at each reload. Returns 0, or a negative errno
 * when the SIGHUP handler cannot be installed. When inotify is unavailable it logs a warning and
 * returns 0: SIGHUP still works.
 */
int reload_start(struct reload *rl, struct event_base *base, reload_load_fn load, void *arg);

/**
 * One reload, now (what SIGHUP runs). `why` names the trigger in the log. Returns 0 when the new
 * set was swapped in, -EINVAL when it was refused (errors logged, the running set stays). Needs
 * reload_start's loader; before that, or after reload_stop, returns -EAGAIN and changes nothing.
 */
int reload_run(struct reload *rl, const char *why);

/**
 * Stops reloading (shutdown): the flows_dir watch is closed and a later SIGHUP is logged and
 * ignored (the handler stays installed, so SIGHUP never kills a draining bridge).
 */
void reload_stop(struct reload *rl);

/**
 * fn(arg, ok) runs after every reload attempt, once the counters are updated and, when ok, the
 * new set is in place (main.c feeds the metrics and the lag thread's topics from it).
 */
void reload_on_done(struct reload *rl, void (*fn)(void *arg, bool ok), void *arg);

/** The counters; borrowed, updated in place by each reload. The metrics module reads them. */
const struct reload_stats *reload_stats(const struct reload *rl);

/** Compares two flow sets by namespace and id (see reload_counts). Neither is modified. */
void reload_diff(const struct flow_set *old, const struct flow_set *cur, struct reload_counts *out);

/**
 * Frees the state: events, the route table, the config, and this holder's reference to the flow
 * set (requests still in flight keep it alive). NULL is a no-op. Call it after the server and
 * the hook context are gone, or at least no longer used.
 */
void reload_free(struct reload *rl);

#endif
