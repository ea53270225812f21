/*
 * admin.c: the operations endpoints over evhttp (a second evhttp on the webhook loop). It only
 * renders what metrics.c, lag.c, execstate.c and the readiness callback provide; it holds no
 * counters and no state.
 */
#include "admin.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>

#include "execstate.h"
#include "lag.h"
#include "metrics.h"
#include "server.h"
#include "util.h"

struct admin {
    struct evhttp *http;
    struct admin_deps deps;
    char *tenant; /* deps.tenant, copied: a reload may free the config it came from */
    char addr[80];
};

static void reply(struct evhttp_request *req, int status, const char *reason, const char *ctype,
                  const struct sbuf *body)
{
    struct evkeyvalq *oh = evhttp_request_get_output_headers(req);
    evhttp_add_header(oh, "Content-Type", ctype);
    evhttp_add_header(oh, "Cache-Control", "no-store");
    evbuffer_add(evhttp_request_get_output_buffer(req), body->data, body->len);
    evhttp_send_reply(req, status, reason, NULL);
}

static void reply_message(struct evhttp_request *req, int status, const char *reason,
                          const char *msg)
{
    struct sbuf b;
    sbuf_init(&b);
    sbuf_append_cstr(&b, "{\"message\":");
    sbuf_append_json_str(&b, msg, strlen(msg));
    sbuf_append_cstr(&b, "}");
    reply(req, status, reason, "application/json", &b);
    sbuf_deinit(&b);
}

static void serve_metrics(struct admin *a, struct evhttp_request *req)
{
    struct sbuf b;
    sbuf_init(&b);
    metrics_render(a->deps.metrics, &b);
    if (a->deps.lag) {
        lag_render_prom(a->deps.lag, &b);
    }
    reply(req, 200, "OK", "text/plain; version=0.0.4; charset=utf-8", &b);
    sbuf_deinit(&b);
}

static void serve_ready(struct admin *a, struct evhttp_request *req)
{
    char why[256] = "not ready";
    if (a->deps.ready && !a->deps.ready(a->deps.ready_arg, why, sizeof(why))) {
        char msg[300];
        snprintf(msg, sizeof(msg), "Service Unavailable: %s", why);
        reply_message(req, 503, "Service Unavailable", msg);
        return;
    }
    reply_message(req, 200, "OK", "ready");
}

static void serve_lag(struct admin *a, struct evhttp_request *req)
{
    struct sbuf b;
    sbuf_init(&b);
    if (a->deps.lag) {
        lag_render_json(a->deps.lag, &b);
    } else {
        sbuf_append_cstr(&b, "{\"interval_ms\":null,\"refreshed_at\":null,\"lag\":[]}");
    }
    reply(req, 200, "OK", "application/json", &b);
    sbuf_deinit(&b);
}

/* GET /triggers/disabled: the triggers stopAfter disabled, with the execution and state. */
static void serve_disabled(struct admin *a, struct evhttp_request *req)
{
    struct sbuf b;
    sbuf_init(&b);
    sbuf_append_cstr(&b, "{\"disabled\":");
    if (a->deps.xs) {
        xs_disabled_json(a->deps.xs, &b);
    } else {
        sbuf_append_cstr(&b, "[]");
    }
    sbuf_append_cstr(&b, "}");
    reply(req, 200, "OK", "application/json", &b);
    sbuf_deinit(&b);
}

static const char *json_str(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

/*
 * POST /triggers/enable {"namespace","flowId","triggerId"[, "tenantId"]}: writes the record that
 * re-enables a trigger stopAfter disabled; every replica follows it.
 */
static void serve_enable(struct admin *a, struct evhttp_request *req)
{
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(in);
    json_error_t jerr;
    json_t *doc = json_loadb(len ? (const char *)evbuffer_pullup(in, -1) : "", len, 0, &jerr);
    const char *ns = doc ? json_str(doc, "namespace") : NULL;
    const char *flow = doc ? json_str(doc, "flowId") : NULL;
    const char *trig = doc ? json_str(doc, "triggerId") : NULL;
    const char *tenant = doc && json_str(doc, "tenantId") ? json_str(doc, "tenantId") : a->tenant;
    char err[256] = "";
    if (!ns || !flow || !trig) {
        reply_message(req, 400, "Bad Request",
                      "Bad Request: send a JSON object with \"namespace\", \"flowId\" and "
                      "\"triggerId\" strings");
        goto out;
    }
    if (!a->deps.xs) {
        reply_message(req, 503, "Service Unavailable",
                      "Service Unavailable: execution states are not followed");
        goto out;
    }
    int rc = xs_enable(a->deps.xs, tenant ? tenant : "", ns, flow, trig, err, sizeof(err));
    if (rc == 0) {
        reply_message(req, 200, "OK", "enabled");
    } else if (rc == -ENOENT) {
        reply_message(req, 404, "Not Found", "Not Found: that trigger is not disabled");
    } else if (rc == -EINVAL) {
        reply_message(req, 400, "Bad Request", "Bad Request: not a valid trigger name");
    } else {
        char msg[320];
        snprintf(msg, sizeof(msg), "Service Unavailable: %s", err[0] ? err : "Kafka");
        reply_message(req, 503, "Service Unavailable", msg);
    }
out:
    json_decref(doc);
}

static bool allowed(const char *path, enum evhttp_cmd_type cmd, const char **allow)
{
    if (strcmp(path, "/triggers/enable") == 0) {
        *allow = "POST";
        return cmd == EVHTTP_REQ_POST;
    }
    *allow = "GET, HEAD";
    return cmd == EVHTTP_REQ_GET || cmd == EVHTTP_REQ_HEAD;
}

static void on_request(struct evhttp_request *req, void *arg)
{
    struct admin *a = arg;
    const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
    enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
    bool known = path && (strcmp(path, "/metrics") == 0 || strcmp(path, "/health") == 0 ||
                          strcmp(path, "/ready") == 0 || strcmp(path, "/lag") == 0 ||
                          strcmp(path, "/triggers/disabled") == 0 ||
                          strcmp(path, "/triggers/enable") == 0);
    const char *allow = NULL;
    if (!known) {
        reply_message(req, 404, "Not Found",
                      "Not Found: the admin endpoints are /metrics, /health, /ready, /lag, "
                      "/triggers/disabled and /triggers/enable");
        return;
    }
    if (!allowed(path, cmd, &allow)) {
        evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", allow);
        reply_message(req, 405, "Method Not Allowed",
                      strcmp(allow, "POST") == 0 ? "Method Not Allowed: use POST"
                                                 : "Method Not Allowed: use GET");
        return;
    }
    if (strcmp(path, "/triggers/enable") == 0) {
        serve_enable(a, req);
        return;
    }
    if (strcmp(path, "/metrics") == 0) {
        serve_metrics(a, req);
    } else if (strcmp(path, "/health") == 0) {
        reply_message(req, 200, "OK", "alive");
    } else if (strcmp(path, "/ready") == 0) {
        serve_ready(a, req);
    } else if (strcmp(path, "/triggers/disabled") == 0) {
        serve_disabled(a, req);
    } else {
        serve_lag(a, req);
    }
}

struct admin *admin_new(struct event_base *base, const char *listen, const struct admin_deps *deps,
                        char *err, size_t errsz)
{
    struct admin *a = xcalloc(1, sizeof(*a));
    a->deps = *deps;
    a->tenant = deps->tenant ? xstrdup(deps->tenant) : NULL;
    a->deps.tenant = NULL;
    a->http = evhttp_new(base);
    if (!a->http) {
        snprintf(err, errsz, "admin: evhttp_new failed");
        goto out;
    }
    /* Every method reaches on_request, which answers 405 with a JSON body itself. */
    evhttp_set_allowed_methods(a->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
                                            EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
                                            EVHTTP_REQ_OPTIONS | EVHTTP_REQ_PATCH);
    evhttp_set_max_body_size(a->http, 65536);
    evhttp_set_timeout(a->http, 10);
    evhttp_set_gencb(a->http, on_request, a);
    char why[400];
    struct evconnlistener *lev =
        srv_listen(base, listen, false, a->addr, sizeof(a->addr), why, sizeof(why));
    if (!lev) {
        snprintf(err, errsz, "admin_listen: %s", why);
        goto out;
    }
    if (!evhttp_bind_listener(a->http, lev)) {
        evconnlistener_free(lev);
        snprintf(err, errsz, "admin_listen on %s: evhttp refused the listener", listen);
        goto out;
    }
    return a;
out:
    admin_free(a);
    return NULL;
}

const char *admin_address(const struct admin *a)
{
    return a->addr;
}

void admin_free(struct admin *a)
{
    if (!a) {
        return;
    }
    if (a->http) {
        evhttp_free(a->http);
    }
    xfree(a->tenant);
    xfree(a);
}
