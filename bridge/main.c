/*
 * main.c: command line, --check-config, signals and wiring of config → flows → routes →
 * producer → HTTP server. No request logic lives here.
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "admin.h"
#include "config.h"
#include "diag.h"
#include "execstate.h"
#include "flow.h"
#include "lag.h"
#include "log.h"
#include "metrics.h"
#include "publish.h"
#include "reload.h"
#include "route.h"
#include "server.h"
#include "webhook.h"

#ifndef BRIDGE_VERSION
#define BRIDGE_VERSION "0.1.0"
#endif

/* How long the first read of the trigger-state topic may take before startup fails. */
#define XS_LOAD_TIMEOUT_MS 30000

struct opts {
    const char *config;
    const char *listen;
    const char *flows;
    const char *bootstrap;
    const char *admin_listen;
    const char **lag_groups; /* --lag-group, repeatable; points into argv */
    size_t nlag_groups;
    bool check;
};

struct app {
    struct event_base *base;
    struct cfg *cfg;          /* loaded at start, then owned by reload */
    struct flow_set *flows;   /* loaded at start, then owned by reload */
    struct reload *reload;    /* what serves now: config, flows, routes */
    struct hook_ctx *hook;
    struct pub *pub;
    struct xs *xs;
    struct srv *srv;
    struct metrics *metrics;
    struct lag *lag;
    struct admin *admin;
    struct event *ev_term;
    struct event *ev_int;
    struct event *ev_deadline;
    int signals;
};

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: webhook-bridge [--config FILE] [options]\n"
            "\n"
            "Receives Kestra webhooks and publishes them to Kafka; 200 means acknowledged.\n"
            "\n"
            "  -c, --config FILE            bridge config (YAML); defaults apply without one\n"
            "  -l, --listen HOST:PORT       override `listen` (port 0 picks a free port)\n"
            "  -f, --flows DIR              override `flows_dir`\n"
            "  -b, --bootstrap-servers LIST override `kafka.bootstrap_servers`\n"
            "                               (empty or 'embedded': in-process mock, not durable)\n"
            "  -a, --admin-listen HOST:PORT override `admin_listen` (/metrics, /health, /ready,\n"
            "                               /lag; empty turns it off)\n"
            "  -g, --lag-group NAME         watch this consumer group's lag on every flow topic\n"
            "                               (repeatable; adds to `lag.groups`)\n"
            "  -t, --check-config           load config and flows, print OK or every error\n"
            "  -h, --help                   this text\n"
            "  -V, --version                print the version\n");
}

/* Returns 0 to run, 1 to exit successfully (help/version), 2 on a usage error. */
static int parse_args(int argc, char **argv, struct opts *o)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},
        {"listen", required_argument, NULL, 'l'},
        {"flows", required_argument, NULL, 'f'},
        {"bootstrap-servers", required_argument, NULL, 'b'},
        {"admin-listen", required_argument, NULL, 'a'},
        {"lag-group", required_argument, NULL, 'g'},
        {"check-config", no_argument, NULL, 't'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    int c;
    while ((c = getopt_long(argc, argv, "c:l:f:b:a:g:thV", longopts, NULL)) != -1) {
        switch (c) {
        case 'c': o->config = optarg; break;
        case 'l': o->listen = optarg; break;
        case 'f': o->flows = optarg; break;
        case 'b': o->bootstrap = optarg; break;
        case 'a': o->admin_listen = optarg; break;
        case 'g':
            o->lag_groups = xrealloc(o->lag_groups, (o->nlag_groups + 1) * sizeof(char *));
            o->lag_groups[o->nlag_groups++] = optarg;
            break;
        case 't': o->check = true; break;
        case 'h': usage(stdout); return 1;
        case 'V': printf("webhook-bridge %s\n", BRIDGE_VERSION); return 1;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "webhook-bridge: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    return 0;
}

/*
 * Config, command-line overrides and cross-checks; every error goes to dl. At start and at each
 * reload (a reload_load_fn), so the overrides keep winning over the file.
 */
static struct cfg *load_config(void *arg, struct diag_list *dl)
{
    const struct opts *o = arg;
    struct cfg *cfg = o->config ? cfg_load(o->config, dl) : cfg_new_defaults();
    if (!cfg) {
        return NULL;
    }
    if (o->listen) {
        cfg_set_str(&cfg->listen, o->listen);
    }
    if (o->flows) {
        cfg_set_str(&cfg->flows_dir, o->flows);
    }
    if (o->bootstrap) {
        cfg_set_str(&cfg->kafka.bootstrap_servers, o->bootstrap);
    }
    if (o->admin_listen) {
        cfg_set_str(&cfg->admin_listen, o->admin_listen);
    }
    for (size_t i = 0; i < o->nlag_groups; i++) {
        if (!o->lag_groups[i][0]) {
            diag_add(dl, NULL, 0, 0, "--lag-group: a consumer group name must not be empty");
            cfg_free(cfg);
            return NULL;
        }
        cfg_add_lag_group(cfg, o->lag_groups[i]);
    }
    if (cfg_validate(cfg, dl) > 0) {
        cfg_free(cfg);
        return NULL;
    }
    return cfg;
}

static int load_all(struct opts *o, struct app *a, struct diag_list *dl)
{
    a->cfg = load_config(o, dl);
    if (!a->cfg) {
        return -1;
    }
    a->flows = flow_set_load(a->cfg, dl);
    return a->flows ? 0 : -1;
}

/* ==== Signals and shutdown ==== */

static void on_drained(void *arg)
{
    struct app *a = arg;
    event_base_loopexit(a->base, NULL);
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
    struct app *a = arg;
    (void)fd;
    (void)what;
    char n[32];
    snprintf(n, sizeof(n), "%zu", srv_in_flight(a->srv));
    log_kv(LOG_WARN, "shutdown deadline reached; remaining requests get 503", "in_flight", n,
           NULL);
    event_base_loopexit(a->base, NULL);
}

/*
 * First signal: stop accepting, let every accepted request get its real delivery outcome, bounded
 * by the delivery timeout plus a margin. Second signal: leave at once.
 */
static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    struct app *a = arg;
    (void)what;
    if (++a->signals > 1) {
        log_kv(LOG_WARN, "second signal: exiting now", NULL);
        _exit(1);
    }
    log_kv(LOG_INFO, "shutting down", "signal", sig == SIGTERM ? "SIGTERM" : "SIGINT", NULL);
    reload_stop(a->reload);
    struct timeval tv = {(reload_cfg(a->reload)->kafka.delivery_timeout_ms + 2000) / 1000, 0};
    a->ev_deadline = evtimer_new(a->base, on_deadline, a);
    evtimer_add(a->ev_deadline, &tv);
    srv_drain(a->srv, on_drained, a);
}

/* ==== Operations: metrics, lag, admin ==== */

static void read_gauges(void *arg, struct metrics_gauges *g)
{
    const struct app *a = arg;
    g->in_flight = a->srv ? srv_in_flight(a->srv) : 0;
    g->in_flight_bytes = a->srv ? srv_in_flight_bytes(a->srv) : 0;
    g->queue_msgs = a->pub ? pub_queue_len(a->pub) : 0;
    g->flows = a->reload ? reload_flows(a->reload)->nflows : 0;
    g->disabled = a->xs ? xs_disabled_count(a->xs) : 0;
    g->waiting = a->xs ? xs_waiting(a->xs) : 0;
    g->loop_delay_us = a->srv ? srv_loop_delay_us(a->srv) : 0;
    g->busy_share = a->srv ? srv_refused_share(a->srv) : 0.0;
}

/* Ready: flows loaded, not shutting down, and the producer sees a broker up (statistics). */
static bool is_ready(void *arg, char *why, size_t whysz)
{
    const struct app *a = arg;
    if (!a->reload) {
        snprintf(why, whysz, "flows are not loaded");
        return false;
    }
    if (a->signals > 0) {
        snprintf(why, whysz, "shutting down");
        return false;
    }
    int up = pub_brokers_up(a->pub, 5000);
    if (up <= 0) {
        snprintf(why, whysz, up < 0 ? "Kafka: no broker state yet" : "Kafka: no broker reachable");
        return false;
    }
    return true;
}

/* The groups watched on fl's topic: lag.groups, then lag.flow_groups for this flow. */
static size_t flow_lag_groups(const struct cfg *cfg, const struct flow *fl, const char ***out)
{
    size_t n = 0;
    const char **g = xcalloc(cfg->lag.ngroups + 1, sizeof(char *));
    for (size_t i = 0; i < cfg->lag.ngroups; i++) {
        g[n++] = cfg->lag.groups[i];
    }
    for (size_t i = 0; i < cfg->lag.nflow_groups; i++) {
        const struct cfg_flow_groups *fg = &cfg->lag.flow_groups[i];
        size_t nslen = strlen(fl->ns);
        if (strncmp(fg->flow_ref, fl->ns, nslen) != 0 || fg->flow_ref[nslen] != '/' ||
            strcmp(fg->flow_ref + nslen + 1, fl->id) != 0) {
            continue;
        }
        g = xrealloc(g, (n + fg->ngroups + 1) * sizeof(char *));
        for (size_t k = 0; k < fg->ngroups; k++) {
            g[n++] = fg->groups[k];
        }
    }
    *out = g;
    return n;
}

/* Hands the loaded flows' topics and their groups to the lag thread (at start, after a reload). */
static void update_lag_targets(struct app *a)
{
    const struct flow_set *fs = reload_flows(a->reload);
    size_t nf = fs->nflows, n = 0;
    struct lag_target *t = xcalloc(nf ? nf : 1, sizeof(*t));
    for (size_t i = 0; i < nf; i++) {
        const char **groups = NULL;
        size_t ng = flow_lag_groups(reload_cfg(a->reload), &fs->flows[i], &groups);
        if (ng == 0) {
            xfree(groups);
            continue;
        }
        t[n++] = (struct lag_target){fs->flows[i].topic, groups, ng};
    }
    lag_set_targets(a->lag, t, n);
    for (size_t i = 0; i < n; i++) {
        xfree((void *)t[i].groups);
    }
    xfree(t);
}

static bool lag_wanted(const struct cfg *cfg)
{
    return cfg->lag.ngroups > 0 || cfg->lag.nflow_groups > 0;
}

/* After each reload: the metrics count it; a new set of flows means new lag targets. */
static void on_reloaded(void *arg, bool ok)
{
    struct app *a = arg;
    metrics_reload(a->metrics, ok);
    if (ok && a->xs) {
        xs_set_flows(a->xs, reload_flows(a->reload)); /* stopAfter of the flows now served */
    }
    if (ok && a->lag) {
        update_lag_targets(a);
    }
}

static int start_ops(struct app *a)
{
    char err[512];
    const struct cfg *cfg = reload_cfg(a->reload);
    if (lag_wanted(cfg)) {
        const char *bootstrap = pub_embedded_bootstrap(a->pub);
        a->lag = lag_new(cfg, bootstrap ? bootstrap : cfg->kafka.bootstrap_servers, err,
                         sizeof(err));
        if (!a->lag) {
            log_kv(LOG_ERROR, "cannot start the consumer lag refresh", "error", err, NULL);
            return -1;
        }
        update_lag_targets(a);
    }
    reload_on_done(a->reload, on_reloaded, a);
    if (!cfg->admin_listen[0]) {
        return 0;
    }
    struct admin_deps deps = {.metrics = a->metrics,
                              .lag = a->lag,
                              .xs = a->xs,
                              .tenant = cfg->tenant,
                              .ready = is_ready,
                              .ready_arg = a};
    a->admin = admin_new(a->base, cfg->admin_listen, &deps, err, sizeof(err));
    if (!a->admin) {
        log_kv(LOG_ERROR, "cannot start the admin listener", "error", err, NULL);
        return -1;
    }
    log_kv(LOG_INFO, "admin listening", "addr", admin_address(a->admin), NULL);
    return 0;
}

/*
 * epoll's change list: libevent collects the event_add/event_del calls of one loop iteration
 * and hands epoll only the net change per fd. A webhook toggles its connection's read, write
 * and close interest several times per request (evhttp stops reading while the answer waits,
 * server.c watches for the client leaving, the answer is written, reading resumes); with the
 * list that is 3 epoll_ctl calls per request instead of 6 (strace -c, 500 requests). Its known
 * limitation, fds shared through dup(2), does not apply: no fd of ours is duplicated.
 */
static struct event_base *new_base(void)
{
    struct event_config *ecfg = event_config_new();
    if (!ecfg) {
        return NULL;
    }
    event_config_set_flag(ecfg, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
    struct event_base *base = event_base_new_with_config(ecfg);
    event_config_free(ecfg);
    return base;
}

static int start(struct app *a, struct opts *o)
{
    char err[512];
    a->base = new_base();
    if (!a->base) {
        log_kv(LOG_ERROR, "cannot create the event loop", NULL);
        return -1;
    }
    a->reload = reload_new_take(a->cfg, a->flows);
    a->cfg = NULL;
    a->flows = NULL;
    const struct cfg *cfg = reload_cfg(a->reload);
    a->hook = hook_ctx_new(reload_routes(a->reload), cfg->tenant, (int)cfg->kestra_compat);
    a->metrics = metrics_new();
    metrics_set_gauges(a->metrics, read_gauges, a);
    a->srv = srv_new(a->base, cfg, a->hook, err, sizeof(err));
    if (!a->srv) {
        log_kv(LOG_ERROR, "cannot start the HTTP server", "error", err, NULL);
        return -1;
    }
    srv_set_metrics(a->srv, a->metrics);
    reload_attach(a->reload, a->hook, a->srv);
    if (reload_start(a->reload, a->base, load_config, o) < 0) {
        log_kv(LOG_ERROR, "cannot install the SIGHUP handler", NULL);
        return -1;
    }
    a->pub = pub_new(cfg, a->base, srv_on_delivery, err, sizeof(err));
    if (!a->pub) {
        log_kv(LOG_ERROR, "cannot start the Kafka producer", "error", err, NULL);
        return -1;
    }
    srv_set_pub(a->srv, a->pub);
    pub_set_metrics(a->pub, a->metrics);
    /* The disabled set must be complete before the first request is served. */
    a->xs = xs_new(reload_cfg(a->reload), pub_embedded_bootstrap(a->pub), a->base, err, sizeof(err));
    if (a->xs) {
        xs_set_flows(a->xs, reload_flows(a->reload)); /* events read while loading apply stopAfter too */
    }
    if (!a->xs || xs_load(a->xs, XS_LOAD_TIMEOUT_MS, err, sizeof(err)) < 0) {
        log_kv(LOG_ERROR, "cannot read the execution-state topics", "error", err, NULL);
        return -1;
    }
    hook_ctx_set_states(a->hook, a->xs);
    srv_set_states(a->srv, a->xs);
    if (start_ops(a) < 0) {
        return -1;
    }
    a->ev_term = evsignal_new(a->base, SIGTERM, on_signal, a);
    a->ev_int = evsignal_new(a->base, SIGINT, on_signal, a);
    evsignal_add(a->ev_term, NULL);
    evsignal_add(a->ev_int, NULL);
    char nflows[32], nroutes[32];
    snprintf(nflows, sizeof(nflows), "%zu", reload_flows(a->reload)->nflows);
    snprintf(nroutes, sizeof(nroutes), "%zu", route_table_size(reload_routes(a->reload)));
    log_kv(LOG_INFO, "flows loaded", "dir", cfg->flows_dir, "flows", nflows, "webhooks", nroutes,
           NULL);
    log_kv(LOG_INFO, "listening", "addr", srv_address(a->srv), "tenant", cfg->tenant, NULL);
    return 0;
}

static void stop(struct app *a)
{
    if (a->pub) {
        size_t left = pub_flush(a->pub, 2000);
        if (left > 0) {
            char n[32];
            snprintf(n, sizeof(n), "%zu", left);
            log_kv(LOG_WARN, "undelivered messages answered 503 at exit", "count", n, NULL);
        }
    }
    admin_free(a->admin);
    lag_free(a->lag);
    /*
     * The producer goes first: its last reports still answer through the server, and release
     * the flow sets those requests held. The set being served goes with reload.
     */
    pub_free(a->pub);
    xs_free(a->xs);
    srv_free(a->srv);
    metrics_free(a->metrics);
    hook_ctx_free(a->hook);
    reload_free(a->reload);
    flow_set_free(a->flows);
    cfg_free(a->cfg);
    if (a->ev_term) {
        event_free(a->ev_term);
    }
    if (a->ev_int) {
        event_free(a->ev_int);
    }
    if (a->ev_deadline) {
        event_free(a->ev_deadline);
    }
    if (a->base) {
        event_base_free(a->base);
    }
}

int main(int argc, char **argv)
{
    struct opts o = {0};
    struct app a = {0};
    struct diag_list dl;
    int rc = 1;

    diag_list_init(&dl);
    int pr = parse_args(argc, argv, &o);
    if (pr != 0) {
        xfree(o.lag_groups);
        return pr == 1 ? 0 : 2;
    }
    log_setup(LOG_INFO, !isatty(STDERR_FILENO));
    /* Until reload.c handles it, a SIGHUP (a config tool's "reload") must not end the process. */
    signal(SIGHUP, SIG_IGN);
    if (load_all(&o, &a, &dl) < 0) {
        diag_print(&dl, o.check ? stdout : stderr);
        goto out;
    }
    if (o.check) {
        printf("OK\n");
        rc = 0;
        goto out;
    }
    int lvl = log_level_parse(a.cfg->log_level);
    log_setup(lvl < 0 ? LOG_INFO : (enum log_level)lvl, !isatty(STDERR_FILENO));
    signal(SIGPIPE, SIG_IGN);
    if (start(&a, &o) < 0) {
        goto out;
    }
    event_base_dispatch(a.base);
    log_kv(LOG_INFO, "stopped", NULL);
    rc = 0;
out:
    stop(&a);
    xfree(o.lag_groups);
    diag_list_deinit(&dl);
    return rc;
}
