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
#include "flow.h"
#include "log.h"
#include "publish.h"
#include "reload.h"
#include "route.h"
#include "server.h"
#include "webhook.h"

#ifndef BRIDGE_VERSION
#define BRIDGE_VERSION "0.1.0"
#endif

struct opts {
    const char *config;
    const char *listen;
    const char *flows;
    const char *bootstrap;
    bool check;
};

struct app {
    struct event_base *base;
    struct cfg *cfg;        /* until start() hands it to reload */
    struct flow_set *flows; /* likewise */
    struct reload *reload;  /* owns the config, flows and routes being served */
    struct hook_ctx *hook;
    struct pub *pub;
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

static int start(struct app *a, struct opts *o)
{
    char err[512];
    a->base = event_base_new();
    a->reload = reload_new_take(a->cfg, a->flows);
    a->cfg = NULL;
    a->flows = NULL;
    const struct cfg *cfg = reload_cfg(a->reload);
    a->hook = hook_ctx_new(reload_routes(a->reload), cfg->tenant, (int)cfg->kestra_compat);
    a->srv = srv_new(a->base, cfg, a->hook, err, sizeof(err));
    if (!a->srv) {
        log_kv(LOG_ERROR, "cannot start the HTTP server", "error", err, NULL);
        return -1;
    }
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
    /*
     * The producer goes first: its last reports still answer through the server, and release
     * the flow sets those requests held. The set being served goes with reload.
     */
    pub_free(a->pub);
    srv_free(a->srv);
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
    diag_list_deinit(&dl);
    return rc;
}
