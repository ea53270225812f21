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

#include "config.h"
#include "diag.h"
#include "execstate.h"
#include "flow.h"
#include "log.h"
#include "publish.h"
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
    bool check;
};

struct app {
    struct event_base *base;
    struct cfg *cfg;
    struct flow_set *flows;
    struct route_table *routes;
    struct hook_ctx *hook;
    struct pub *pub;
    struct xs *xs;
    struct srv *srv;
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
        {"check-config", no_argument, NULL, 't'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    int c;
    while ((c = getopt_long(argc, argv, "c:l:f:b:thV", longopts, NULL)) != -1) {
        switch (c) {
        case 'c': o->config = optarg; break;
        case 'l': o->listen = optarg; break;
        case 'f': o->flows = optarg; break;
        case 'b': o->bootstrap = optarg; break;
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

/* Config, overrides, cross-checks and flows; every error goes to dl. */
static int load_all(const struct opts *o, struct app *a, struct diag_list *dl)
{
    a->cfg = o->config ? cfg_load(o->config, dl) : cfg_new_defaults();
    if (!a->cfg) {
        return -1;
    }
    if (o->listen) {
        cfg_set_str(&a->cfg->listen, o->listen);
    }
    if (o->flows) {
        cfg_set_str(&a->cfg->flows_dir, o->flows);
    }
    if (o->bootstrap) {
        cfg_set_str(&a->cfg->kafka.bootstrap_servers, o->bootstrap);
    }
    if (cfg_validate(a->cfg, dl) > 0) {
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
    struct timeval tv = {(a->cfg->kafka.delivery_timeout_ms + 2000) / 1000, 0};
    a->ev_deadline = evtimer_new(a->base, on_deadline, a);
    evtimer_add(a->ev_deadline, &tv);
    srv_drain(a->srv, on_drained, a);
}

static int start(struct app *a)
{
    char err[512];
    a->base = event_base_new();
    a->routes = route_table_new(a->flows, a->cfg->tenant);
    a->hook = hook_ctx_new(a->routes, a->cfg->tenant, (int)a->cfg->kestra_compat);
    a->srv = srv_new(a->base, a->cfg, a->hook, err, sizeof(err));
    if (!a->srv) {
        log_kv(LOG_ERROR, "cannot start the HTTP server", "error", err, NULL);
        return -1;
    }
    a->pub = pub_new(a->cfg, a->base, srv_on_delivery, err, sizeof(err));
    if (!a->pub) {
        log_kv(LOG_ERROR, "cannot start the Kafka producer", "error", err, NULL);
        return -1;
    }
    srv_set_pub(a->srv, a->pub);
    /* The disabled set must be complete before the first request is served. */
    a->xs = xs_new(a->cfg, pub_embedded_bootstrap(a->pub), a->base, err, sizeof(err));
    if (a->xs) {
        xs_set_flows(a->xs, a->flows); /* events read while loading apply stopAfter too */
    }
    if (!a->xs || xs_load(a->xs, XS_LOAD_TIMEOUT_MS, err, sizeof(err)) < 0) {
        log_kv(LOG_ERROR, "cannot read the execution-state topics", "error", err, NULL);
        return -1;
    }
    hook_ctx_set_states(a->hook, a->xs);
    srv_set_states(a->srv, a->xs);
    a->ev_term = evsignal_new(a->base, SIGTERM, on_signal, a);
    a->ev_int = evsignal_new(a->base, SIGINT, on_signal, a);
    evsignal_add(a->ev_term, NULL);
    evsignal_add(a->ev_int, NULL);
    char nflows[32], nroutes[32];
    snprintf(nflows, sizeof(nflows), "%zu", a->flows->nflows);
    snprintf(nroutes, sizeof(nroutes), "%zu", route_table_size(a->routes));
    log_kv(LOG_INFO, "flows loaded", "dir", a->cfg->flows_dir, "flows", nflows, "webhooks",
           nroutes, NULL);
    log_kv(LOG_INFO, "listening", "addr", srv_address(a->srv), "tenant", a->cfg->tenant, NULL);
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
    /* The producer goes first: its last reports still answer through the server. */
    pub_free(a->pub);
    xs_free(a->xs);
    srv_free(a->srv);
    hook_ctx_free(a->hook);
    route_table_free(a->routes);
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
        return pr == 1 ? 0 : 2;
    }
    log_setup(LOG_INFO, !isatty(STDERR_FILENO));
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
    if (start(&a) < 0) {
        goto out;
    }
    event_base_dispatch(a.base);
    log_kv(LOG_INFO, "stopped", NULL);
    rc = 0;
out:
    stop(&a);
    diag_list_deinit(&dl);
    return rc;
}
