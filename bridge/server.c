/*
 * server.c: evhttp glue. Turns an evhttp request into a hook_input, sends accepted messages
 * through publish.c and answers when the delivery report arrives. Holds no Kestra rules
 * (webhook.c) and no Kafka calls (publish.c).
 */
#include "server.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>
#include <netdb.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <event2/util.h>

#include "bufpool.h"
#include "conn.h"
#include "execstate.h"
#include "log.h"
#include "loopdelay.h"
#include "metrics.h"

struct srv {
    struct event_base *base;
    struct evhttp *http;
    struct evconnlistener *listener;
    struct evhttp_bound_socket *bound;
    const struct cfg *cfg;
    struct hook_ctx *hook;
    struct pub *pub;
    struct conns *conns;      /* every client connection: framing check, timeouts, cap */
    struct xs *xs;            /* execution states, for wait: true; NULL: wait is not honoured */
    size_t waiting;           /* acknowledged wait: true requests waiting for their execution */
    size_t in_flight;
    size_t in_flight_bytes;
    size_t writing;           /* answers handed to evhttp and not yet written out */
    struct event *ev_grace;   /* last writes while draining */
    bool draining;
    void (*on_drained)(void *arg);
    void *drained_arg;
    struct hook_header *hdrs; /* reused per request */
    size_t hdrs_cap;
    struct sbuf out;          /* reused answer body */
    struct sbuf logpath;      /* reused masked path for log lines */
    struct metrics *metrics;  /* borrowed; NULL: nothing is counted */
    struct loopdelay *delay;  /* how far behind the loop runs: the overload signal */
    char addr[80];
};

/* The webhook server, for the answers libevent gives by itself (see evhttp_send_error). */
static struct srv *the_srv;

static const char *method_name(enum evhttp_cmd_type cmd)
{
    switch (cmd) {
    case EVHTTP_REQ_GET:
        return "GET";
    case EVHTTP_REQ_POST:
        return "POST";
    case EVHTTP_REQ_HEAD:
        return "HEAD";
    case EVHTTP_REQ_PUT:
        return "PUT";
    case EVHTTP_REQ_DELETE:
        return "DELETE";
    case EVHTTP_REQ_OPTIONS:
        return "OPTIONS";
    case EVHTTP_REQ_TRACE:
        return "TRACE";
    case EVHTTP_REQ_CONNECT:
        return "CONNECT";
    case EVHTTP_REQ_PATCH:
        return "PATCH";
    }
    return "UNKNOWN";
}

/* ==== Answers ==== */

static void finish_drain(struct srv *s)
{
    if (s->on_drained) {
        void (*cb)(void *) = s->on_drained;
        s->on_drained = NULL;
        cb(s->drained_arg);
    }
}

static void on_grace(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    finish_drain(arg);
}

/*
 * Draining ends when every accepted request is answered and every answer is on the wire.
 * libevent does not report an answer whose connection failed mid-write, so once nothing waits
 * for Kafka any more, the last writes get a short grace period, not the whole deadline.
 */
static void check_drained(struct srv *s)
{
    if (!s->draining || s->in_flight > 0 || s->waiting > 0 || !s->on_drained) {
        return;
    }
    if (s->writing == 0) {
        finish_drain(s);
    } else if (!s->ev_grace) {
        struct timeval grace = {2, 0};
        s->ev_grace = evtimer_new(s->base, on_grace, s);
        evtimer_add(s->ev_grace, &grace);
    }
}

/* libevent calls this once the answer's bytes were written (not when the connection failed). */
static void on_reply_written(struct evhttp_request *req, void *arg)
{
    struct srv *s = arg;
    s->writing--;
    conns_answer_written(s->conns, evhttp_request_get_connection(req));
    check_drained(s);
}

/* detail, when not NULL, is Kafka's own words for a failed delivery, added to the message. */
static void send_answer(struct srv *s, struct evhttp_request *req, enum hook_verdict v,
                        const struct hook_req *hr, const char *detail)
{
    const struct hook_answer *a = hook_answer(v);
    struct evkeyvalq *oh = evhttp_request_get_output_headers(req);
    sbuf_reset(&s->out);
    if (v == HOOK_DELIVERED) {
        hook_success_body(hr, s->cfg->tenant, &s->out);
    } else if (a->message) {
        sbuf_append_cstr(&s->out, "{\"message\":");
        if (detail) {
            char msg[512];
            snprintf(msg, sizeof(msg), "%s (Kafka: %s)", a->message, detail);
            sbuf_append_json_str(&s->out, msg, strlen(msg));
        } else {
            sbuf_append_json_str(&s->out, a->message, strlen(a->message));
        }
        sbuf_append_cstr(&s->out, "}");
    }
    bool head = evhttp_request_get_command(req) == EVHTTP_REQ_HEAD;
    if (s->out.len > 0 && !head) { /* an answer to HEAD has no body (RFC 9110 §9.3.2) */
        evhttp_add_header(oh, "Content-Type", "application/json");
        evbuffer_add(evhttp_request_get_output_buffer(req), s->out.data, s->out.len);
    }
    if (a->retry_after) {
        evhttp_add_header(oh, "Retry-After", "1");
    }
    /* evhttp would add it too, through gmtime and strftime for every answer (3k instructions). */
    evhttp_add_header(oh, "Date", util_http_date());
    if (v == HOOK_METHOD_NOT_ALLOWED) {
        evhttp_add_header(oh, "Allow", "GET, POST, PUT");
    }
    /*
     * evhttp takes an absolute-form target (`POST http://host/path`) for a proxy request: it
     * then reads keep-alive from Proxy-Connection headers only, and without them drops our
     * Connection header and closes, so a pipelined request behind it is never answered.
     * Servers must accept absolute-form (RFC 9112 §3.2.2): the client's own Connection choice
     * is copied into Proxy-Connection on both sides (after the message was built, so nothing
     * of it is published; the client sees an extra Proxy-Connection header).
     */
    const char *target = evhttp_request_get_uri(req);
    if (target && target[0] != '/') {
        struct evkeyvalq *ih = evhttp_request_get_input_headers(req);
        const char *conn = evhttp_find_header(ih, "Connection");
        const char *keep = conn && strcasecmp(conn, "close") == 0 ? "close" : "keep-alive";
        evhttp_remove_header(ih, "Proxy-Connection");
        evhttp_add_header(ih, "Proxy-Connection", keep);
        evhttp_add_header(oh, "Proxy-Connection", keep);
    }
    /* After conflicting framing headers the rest of the stream cannot be trusted; after an
     * upgrade request it is not HTTP. */
    if (s->draining || v == HOOK_BAD_FRAMING ||
        conns_must_close(s->conns, evhttp_request_get_connection(req))) {
        evhttp_add_header(oh, "Connection", "close");
    }
    s->writing++;
    evhttp_request_set_on_complete_cb(req, on_reply_written, s);
    evhttp_send_reply(req, a->status, a->reason, NULL);
}

/*
 * libevent answers some requests itself, before on_request: a malformed request line or header,
 * a Content-Length over limits.max_body_bytes (413, before the body is read), headers past its
 * own size limit. It does so through evhttp_send_error(), with an HTML page. Its calls go through
 * the PLT, so this definition takes its place for the whole process and every answer the bridge
 * gives is JSON with a message, whoever decided on it. It keeps libevent's behaviour otherwise:
 * the connection closes after the answer.
 */
void evhttp_send_error(struct evhttp_request *req, int error, const char *reason)
{
    char msg[160];
    struct sbuf b;
    struct evbuffer *buf = evbuffer_new();
    struct evkeyvalq *oh = evhttp_request_get_output_headers(req);
    const char *detail = error == 413   ? "Payload Too Large: the request is larger than the "
                                          "configured limits"
                         : error == 400 ? "Bad Request: malformed HTTP request"
                         : error == 408 ? "Request Timeout"
                                        : "the HTTP request was refused";
    if (!buf) {
        evhttp_connection_free(evhttp_request_get_connection(req));
        return;
    }
    /* The admin listener's evhttp answers through here too; only webhook answers are counted. */
    if (the_srv && the_srv->metrics &&
        evhttp_connection_get_server(evhttp_request_get_connection(req)) == the_srv->http) {
        metrics_http_error(the_srv->metrics, error);
    }
    snprintf(msg, sizeof(msg), "%s", detail);
    sbuf_init(&b);
    sbuf_append_cstr(&b, "{\"message\":");
    sbuf_append_json_str(&b, msg, strlen(msg));
    sbuf_append_cstr(&b, "}");
    if (evhttp_request_get_command(req) != EVHTTP_REQ_HEAD) {
        evbuffer_add(buf, b.data, b.len);
    }
    sbuf_deinit(&b);
    evhttp_clear_headers(oh);
    evhttp_add_header(oh, "Connection", "close");
    evhttp_add_header(oh, "Content-Type", "application/json");
    evhttp_send_reply(req, error, reason, buf);
    evbuffer_free(buf);
}

/* ==== Requests ==== */

static void collect_headers(struct srv *s, struct evhttp_request *req, struct hook_input *in)
{
    struct evkeyvalq *ih = evhttp_request_get_input_headers(req);
    struct evkeyval *kv;
    size_t n = 0;
    TAILQ_FOREACH(kv, ih, next)
    {
        if (n == s->hdrs_cap) {
            s->hdrs_cap = s->hdrs_cap ? s->hdrs_cap * 2 : 32;
            s->hdrs = xrealloc(s->hdrs, s->hdrs_cap * sizeof(*s->hdrs));
        }
        s->hdrs[n].name = strv_of(kv->key);
        s->hdrs[n].value = strv_of(kv->value);
        n++;
    }
    in->headers = s->hdrs;
    in->nheaders = n;
}

static void fill_input(struct srv *s, struct evhttp_request *req, struct hook_input *in,
                       char **peer)
{
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *query = evhttp_uri_get_query(uri);
    struct evbuffer *body = evhttp_request_get_input_buffer(req);
    size_t blen = evbuffer_get_length(body);
    ev_uint16_t port;

    in->method = strv_of(method_name(evhttp_request_get_command(req)));
    in->path = strv_of(evhttp_uri_get_path(uri));
    in->query = query ? strv_of(query) : (struct strv){NULL, 0};
    collect_headers(s, req, in);
    in->body = (struct strv){blen ? (const char *)evbuffer_pullup(body, -1) : "", blen};
    evhttp_connection_get_peer(evhttp_request_get_connection(req), peer, &port);
    in->remote_addr = *peer;
}

static void unwatch(struct hook_req *hr)
{
    if (hr->watch) {
        event_free(hr->watch);
        hr->watch = NULL;
    }
}

static void forget_waiter(struct srv *s, struct hook_req *hr);
static void drop_client(struct hook_req *hr);

static void on_conn_close(void *arg)
{
    struct hook_req *hr = arg;
    /* libevent frees the request with the connection: never touch it again. The watch goes
     * first, while its fd is still open. */
    unwatch(hr);
    hr->conn = NULL;
    hr->client_gone = true;
    if (hr->delivered) {
        forget_waiter(hr->owner, hr);
    }
}

/*
 * evhttp stops reading a connection while its request waits for our answer, so it cannot see
 * the client hang up. EV_CLOSED (EPOLLRDHUP) can: the request is then logged as one whose client
 * left. The answer is still written, for a client that only half-closed; for one that is gone
 * the write fails and libevent frees the connection.
 */
static void on_peer_closed(evutil_socket_t fd, short what, void *arg)
{
    struct hook_req *hr = arg;
    (void)fd;
    (void)what;
    hr->client_gone = true;
    unwatch(hr);
    /*
     * A wait: true request whose message is in Kafka has nothing left to say to a client that is
     * gone, and may wait up to limits.wait_timeout_ms: close the connection and free it all now.
     */
    if (hr->delivered && hr->conn) {
        drop_client(hr);
        log_kv(LOG_INFO, "client left while waiting; wait released", "execution", hr->id, NULL);
        forget_waiter(hr->owner, hr);
    }
}

static void watch_client(struct srv *s, struct evhttp_request *req, struct hook_req *hr)
{
    struct evhttp_connection *evcon = evhttp_request_get_connection(req);
    conns_set_close_hook(s->conns, evcon, on_conn_close, hr);
    evutil_socket_t fd = bufferevent_getfd(evhttp_connection_get_bufferevent(evcon));
    if (fd >= 0) {
        hr->watch = event_new(s->base, fd, EV_CLOSED, on_peer_closed, hr);
        if (hr->watch && event_add(hr->watch, NULL) < 0) {
            unwatch(hr);
        }
    }
}

/* Counts an answer given without going to Kafka (metrics_acked counts the others). */
static void count(struct srv *s, struct metrics_flow *mf, enum hook_verdict v)
{
    if (s->metrics) {
        metrics_answer(s->metrics, mf, v);
    }
}

/* ==== wait: true ==== */

static void send_end(struct srv *s, struct evhttp_request *req, struct hook_req *hr)
{
    struct evkeyvalq *oh = evhttp_request_get_output_headers(req);
    if (hr->end_body.len > 0) {
        evhttp_add_header(oh, "Content-Type", hr->end_type);
        evbuffer_add(evhttp_request_get_output_buffer(req), hr->end_body.data, hr->end_body.len);
    }
    if (s->draining) {
        evhttp_add_header(oh, "Connection", "close");
    }
    s->writing++;
    evhttp_request_set_on_complete_cb(req, on_reply_written, s);
    /* NULL: libevent's standard reason phrase for the status (responseCode may be anything). */
    evhttp_send_reply(req, hr->end_status, NULL, NULL);
}

/* A waiting request is done: answered, or its client left. */
static void forget_waiter(struct srv *s, struct hook_req *hr)
{
    xs_wait_free(hr->wait);
    hr->wait = NULL;
    unwatch(hr);
    s->waiting--;
    hook_req_free(hr);
    check_drained(s);
}

/* Closes a waiting request's connection: its client is gone, nothing more will be written. */
static void drop_client(struct hook_req *hr)
{
    struct srv *s = hr->owner;
    struct evhttp_connection *evcon = evhttp_request_get_connection(hr->conn);
    conns_set_close_hook(s->conns, evcon, NULL, NULL);
    hr->conn = NULL;
    evhttp_connection_free(evcon);
}

static void log_end(const struct hook_req *hr);

/* Sends the prepared answer of an acknowledged, ended request (if its client is there), frees. */
static void answer_waiter(struct srv *s, struct hook_req *hr)
{
    log_end(hr);
    if (hr->conn) {
        struct evhttp_request *req = hr->conn;
        conns_set_close_hook(s->conns, evhttp_request_get_connection(req), NULL, NULL);
        hr->conn = NULL;
        send_end(s, req, hr);
    }
    forget_waiter(s, hr);
}

static void log_end(const struct hook_req *hr)
{
    char st[8];
    snprintf(st, sizeof(st), "%d", hr->end_status);
    log_kv(hr->end_status >= 500 ? LOG_INFO : LOG_DEBUG, "execution answered", "namespace",
           hr->trigger->flow->ns, "flow", hr->trigger->flow->id, "execution", hr->id, "status",
           st, NULL);
}

/*
 * The execution ended (end NULL: the wait limit passed). The answer is built now; it is sent
 * now if the message's acknowledgement came already, else by srv_on_delivery.
 */
static void on_end(void *opaque, const struct xs_end *end)
{
    struct hook_req *hr = opaque;
    struct srv *s = hr->owner;
    hr->wait = NULL;
    hr->ended = true;
    if (end) {
        hr->end_status = hook_wait_answer(hr, s->cfg->tenant, end->state, end->failed,
                                          end->outputs, &hr->end_body, &hr->end_type);
    } else {
        hr->end_status = 504;
        hr->end_type = "application/json";
        sbuf_appendf(&hr->end_body,
                     "{\"message\":\"Gateway Timeout: execution %s did not end within %ld ms; "
                     "it goes on\",\"id\":\"%s\"}",
                     hr->id, s->cfg->limits.wait_timeout_ms, hr->id);
    }
    if (hr->delivered) {
        answer_waiter(s, hr);
    }
}

static void publish(struct srv *s, struct evhttp_request *req, struct hook_req *hr)
{
    size_t len = hr->msg.size;
    char *payload = msgpack_sbuffer_release(&hr->msg);
    int rc = pub_send(s->pub, hr->trigger->flow->topic, hr->id, HOOK_ID_LEN, payload, len, hr);
    if (rc < 0) {
        bufpool_put(payload);
        enum hook_verdict v = rc == -ENOBUFS  ? HOOK_QUEUE_FULL
                              : rc == -EAGAIN ? HOOK_DELIVERY_FAILED
                              : rc == -EMSGSIZE ? HOOK_TOO_LARGE
                                                : HOOK_INTERNAL;
        count(s, hr->metrics, v);
        send_answer(s, req, v, hr, NULL);
        hook_req_free(hr);
        return;
    }
    if (hr->metrics) {
        metrics_accepted(hr->metrics);
    }
    hr->conn = req;
    hr->owner = s;
    hr->size = len;
    s->in_flight++;
    s->in_flight_bytes += len;
    watch_client(s, req, hr);
    /*
     * The wait starts before the acknowledgement: the executor may read the message, and its end
     * may reach us, before librdkafka's delivery report does.
     */
    if (s->xs && hr->trigger->wait) {
        hr->wait = xs_wait_new(s->xs, hr->id, s->cfg->limits.wait_timeout_ms, on_end, hr);
    }
}

/*
 * The path as logged for a refused request. It may hold a key anywhere: a wrong key, a right
 * key with a trailing slash or a misspelt prefix. Only the namespace and flow segments after
 * ".../executions/webhook/" are kept; everything after them, and any path of another shape,
 * becomes "********".
 */
static const char *log_path(struct srv *s, struct strv path)
{
    static const char prefix[] = "/executions/webhook/";
    sbuf_reset(&s->logpath);
    const char *p = path.ptr ? memmem(path.ptr, path.len, prefix, sizeof(prefix) - 1) : NULL;
    if (p) {
        const char *end = path.ptr + path.len;
        const char *q = p + sizeof(prefix) - 1;
        for (int seg = 0; seg < 2 && q < end; seg++) {
            const char *slash = memchr(q, '/', (size_t)(end - q));
            q = slash ? slash + 1 : end;
        }
        sbuf_append(&s->logpath, path.ptr, (size_t)(q - path.ptr));
        if (q > path.ptr && q[-1] != '/') {
            sbuf_append(&s->logpath, "/", 1);
        }
    }
    sbuf_append_cstr(&s->logpath, "********");
    return s->logpath.data;
}

/* A request answered without going to Kafka; the key never reaches the log (log_path). */
static void log_rejected(struct srv *s, const struct hook_input *in, const struct hook_req *hr,
                         enum hook_verdict v)
{
    int status = hook_answer(v)->status;
    enum log_level lvl = status >= 500 ? LOG_WARN : LOG_DEBUG;
    if (!log_enabled(lvl)) {
        return;
    }
    char st[8], lat[32];
    snprintf(st, sizeof(st), "%d", status);
    snprintf(lat, sizeof(lat), "%.3f", (double)(util_now_us() - hr->start_us) / 1000.0);
    const struct flow *fl = hr->trigger ? hr->trigger->flow : NULL;
    log_kv(lvl, "request", "namespace", fl ? fl->ns : "", "flow", fl ? fl->id : "", "method",
           in->method.ptr, "path", log_path(s, in->path), "status", st, "latency_ms", lat, NULL);
}

/* Answers before any parsing (shutdown, limits, budget): counted without a flow. */
static void refuse_early(struct srv *s, struct evhttp_request *req, enum hook_verdict v,
                         size_t body_len)
{
    if (s->metrics) {
        struct metrics_flow *none = metrics_flow(s->metrics, NULL, NULL);
        metrics_body(none, body_len);
        metrics_answer(s->metrics, none, v);
    }
    send_answer(s, req, v, NULL, NULL);
}

static void on_request(struct evhttp_request *req, void *arg)
{
    struct srv *s = arg;
    struct hook_input in;
    char *peer = NULL;
    size_t body_len = evbuffer_get_length(evhttp_request_get_input_buffer(req));

    if (s->draining) {
        refuse_early(s, req, HOOK_SHUTTING_DOWN, body_len);
        return;
    }
    /*
     * The in-flight budget is checked before anything is parsed: with a slow or absent broker
     * the cheapest answer is the right one, and memory stays bounded.
     */
    if (s->in_flight >= (size_t)s->cfg->limits.max_in_flight ||
        s->in_flight_bytes + body_len > (size_t)s->cfg->limits.max_in_flight_bytes) {
        refuse_early(s, req, HOOK_OVERLOADED, body_len);
        return;
    }
    if (loopdelay_refuse(s->delay)) {
        refuse_early(s, req, HOOK_BUSY, body_len);
        return;
    }
    struct hook_req *hr = hook_req_new();
    hr->start_us = util_now_us();
    fill_input(s, req, &in, &peer);
    enum hook_verdict v = hook_process(s->hook, &in, hr);
    if (s->metrics) {
        const struct flow *fl = hr->trigger ? hr->trigger->flow : NULL;
        hr->metrics = metrics_flow(s->metrics, fl ? fl->ns : NULL, fl ? fl->id : NULL);
        metrics_body(hr->metrics, body_len);
    }
    if (v != HOOK_ACCEPTED) {
        log_rejected(s, &in, hr, v);
        count(s, hr->metrics, v);
        send_answer(s, req, v, hr, NULL);
        hook_req_free(hr);
        return;
    }
    /*
     * The message holds the body now, and nothing reads evhttp's copy again: freed here, it does
     * not wait beside the message for Kafka's answer (a request in flight holds its body once).
     */
    evbuffer_drain(evhttp_request_get_input_buffer(req), body_len);
    publish(s, req, hr);
}

static void log_outcome(const struct hook_req *hr, int status, const char *reason)
{
    /* A client that left before its answer is always logged: the log is its only record. */
    enum log_level lvl = status >= 500 ? LOG_WARN : hr->client_gone ? LOG_INFO : LOG_DEBUG;
    if (!log_enabled(lvl)) {
        return;
    }
    char st[8], lat[32];
    snprintf(st, sizeof(st), "%d", status);
    snprintf(lat, sizeof(lat), "%.3f", (double)(util_now_us() - hr->start_us) / 1000.0);
    log_kv(lvl, hr->client_gone ? "request (client gone before the answer)" : "request", "namespace",
           hr->trigger->flow->ns, "flow", hr->trigger->flow->id, "execution", hr->id, "status",
           st, "latency_ms", lat, "kafka", reason, NULL);
}

/*
 * A wait: true message is in Kafka. The request now waits for its execution's end, unless the
 * end (or the wait limit) came first, or the client left: then it is answered or freed now.
 */
static void wait_delivered(struct srv *s, struct hook_req *hr)
{
    s->in_flight--;
    s->in_flight_bytes -= hr->size;
    s->waiting++;
    hr->delivered = true;
    if (hr->ended) {
        answer_waiter(s, hr);
    } else if (!hr->conn) {
        forget_waiter(s, hr);
    } else if (hr->client_gone) {
        /* The client hung up before the acknowledgement: nobody is left to wait for. */
        drop_client(hr);
        forget_waiter(s, hr);
    }
}

void srv_on_delivery(void *opaque, enum pub_result result, const char *reason)
{
    struct hook_req *hr = opaque;
    struct srv *s = hr->owner;
    static const enum hook_verdict verdicts[] = {
        [PUB_DELIVERED] = HOOK_DELIVERED,
        [PUB_FAILED] = HOOK_DELIVERY_FAILED,
        [PUB_TOO_LARGE] = HOOK_TOO_LARGE,
        [PUB_TOPIC_FAILED] = HOOK_TOPIC_FAILED,
    };
    enum hook_verdict v = verdicts[result];
    if (v == HOOK_DELIVERED && (hr->wait || hr->ended)) {
        wait_delivered(s, hr);
        return;
    }
    xs_wait_free(hr->wait);
    hr->wait = NULL;
    unwatch(hr);
    log_outcome(hr, hook_answer(v)->status, reason);
    if (s->metrics && hr->metrics) {
        metrics_acked(s->metrics, hr->metrics, v, util_now_us() - hr->start_us);
    }
    if (hr->conn) {
        struct evhttp_request *req = hr->conn;
        conns_set_close_hook(s->conns, evhttp_request_get_connection(req), NULL, NULL);
        send_answer(s, req, v, hr, v == HOOK_DELIVERED ? NULL : reason);
    }
    s->in_flight--;
    s->in_flight_bytes -= hr->size;
    hook_req_free(hr);
    check_drained(s);
}

/* ==== Set-up ==== */

/*
 * Resolves "HOST:PORT" or "[V6]:PORT" (port 0 allowed: the kernel picks one, tests read it back).
 * libevent's own parser refuses port 0, hence getaddrinfo.
 */
static int parse_listen(const char *listen, struct sockaddr_storage *ss, int *sslen)
{
    const char *colon = strrchr(listen, ':');
    if (!colon || colon == listen || colon[1] == '\0') {
        return -EINVAL;
    }
    char host[256];
    size_t hlen = (size_t)(colon - listen);
    if (listen[0] == '[' && hlen >= 2 && listen[hlen - 1] == ']') {
        listen++;
        hlen -= 2;
    }
    if (hlen >= sizeof(host)) {
        return -EINVAL;
    }
    memcpy(host, listen, hlen);
    host[hlen] = '\0';
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    if (getaddrinfo(host, colon + 1, &hints, &res) != 0 || !res) {
        return -EINVAL;
    }
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    *sslen = (int)res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

struct evconnlistener *srv_listen(struct event_base *base, const char *listen, bool reuseport,
                                  char *addr, size_t addrsz, char *err, size_t errsz)
{
    struct sockaddr_storage ss;
    int sslen = sizeof(ss);
    if (parse_listen(listen, &ss, &sslen) < 0) {
        snprintf(err, errsz, "cannot parse address '%s' (want HOST:PORT)", listen);
        return NULL;
    }
    unsigned flags = LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC | LEV_OPT_REUSEABLE |
                     (reuseport ? LEV_OPT_REUSEABLE_PORT : 0);
    struct evconnlistener *lev =
        evconnlistener_new_bind(base, NULL, NULL, flags, 1024, (struct sockaddr *)&ss, sslen);
    if (!lev) {
        snprintf(err, errsz, "listen on %s: %s", listen, strerror(errno));
        return NULL;
    }
    struct sockaddr_storage got;
    socklen_t gotlen = sizeof(got);
    char host[64];
    getsockname(evconnlistener_get_fd(lev), (struct sockaddr *)&got, &gotlen);
    int port = ntohs(got.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&got)->sin6_port
                                               : ((struct sockaddr_in *)&got)->sin_port);
    const void *ip = got.ss_family == AF_INET6 ? (void *)&((struct sockaddr_in6 *)&got)->sin6_addr
                                               : (void *)&((struct sockaddr_in *)&got)->sin_addr;
    evutil_inet_ntop(got.ss_family, ip, host, sizeof(host));
    snprintf(addr, addrsz, got.ss_family == AF_INET6 ? "[%s]:%d" : "%s:%d", host, port);
    return lev;
}

/* SO_REUSEPORT: several bridges on one host share the port, the kernel spreads connections. */
static int bind_listener(struct srv *s, char *err, size_t errsz)
{
    char why[400];
    s->listener = srv_listen(s->base, s->cfg->listen, true, s->addr, sizeof(s->addr), why,
                             sizeof(why));
    if (!s->listener) {
        snprintf(err, errsz, "listen: %s", why);
        return -EINVAL;
    }
    s->bound = evhttp_bind_listener(s->http, s->listener);
    if (!s->bound) {
        snprintf(err, errsz, "listen on %s: evhttp refused the listener", s->cfg->listen);
        return -EIO;
    }
    return 0;
}

/* evhttp copies these into each connection it accepts: a change reaches new connections. */
/* Answers conn.c writes itself (framing refusals, 408, the connection cap) are counted too. */
static void count_conn_answer(void *arg, int status)
{
    struct srv *s = arg;
    if (s->metrics) {
        metrics_http_error(s->metrics, status);
    }
}

static void apply_limits(struct srv *s)
{
    const struct cfg *cfg = s->cfg;
    loopdelay_set_limit(s->delay, cfg->limits.max_loop_delay_ms * 1000);
    evhttp_set_max_body_size(s->http, (ev_ssize_t)cfg->limits.max_body_bytes);
    /*
     * evhttp's header limit covers the request line and the headers together and answers 413;
     * it is set well above ours so that conn.c (reqcheck) answers 414 and 431 first, and it still
     * bounds what a hostile client can make us buffer.
     */
    evhttp_set_max_headers_size(s->http, (ev_ssize_t)(2 * cfg->limits.max_header_bytes +
                                                      cfg->limits.max_uri_bytes + 1024));
    struct timeval tv = {cfg->limits.request_timeout_ms / 1000,
                         (cfg->limits.request_timeout_ms % 1000) * 1000};
    evhttp_set_timeout_tv(s->http, &tv);
    struct conn_limits cl = {
        .header_timeout_ms = cfg->limits.header_timeout_ms,
        .body_timeout_ms = cfg->limits.body_timeout_ms,
        .idle_timeout_ms = cfg->limits.idle_timeout_ms,
        .max_connections = cfg->limits.max_connections,
        .check = {.max_uri_bytes = (size_t)cfg->limits.max_uri_bytes,
                  .max_header_bytes = (size_t)cfg->limits.max_header_bytes,
                  .max_headers = (size_t)cfg->limits.max_headers},
    };
    conns_set_limits(s->conns, &cl);
}

struct srv *srv_new(struct event_base *base, const struct cfg *cfg, struct hook_ctx *hook,
                    char *err, size_t errsz)
{
    struct srv *s = xcalloc(1, sizeof(*s));
    s->base = base;
    s->cfg = cfg;
    s->hook = hook;
    s->delay = loopdelay_new(base);
    sbuf_init(&s->out);
    sbuf_init(&s->logpath);
    s->http = evhttp_new(base);
    if (!s->http) {
        snprintf(err, errsz, "evhttp_new failed");
        goto out;
    }
    /* Every method reaches on_request, so webhook.c answers 405 with an Allow header itself. */
    evhttp_set_allowed_methods(s->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
                                            EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
                                            EVHTTP_REQ_OPTIONS | EVHTTP_REQ_TRACE |
                                            EVHTTP_REQ_CONNECT | EVHTTP_REQ_PATCH);
    s->conns = conns_new(base);
    conns_on_answer(s->conns, count_conn_answer, s);
    apply_limits(s);
    evhttp_set_gencb(s->http, on_request, s);
    evhttp_set_bevcb(s->http, conns_bev_new, s->conns);
    if (bind_listener(s, err, errsz) < 0) {
        goto out;
    }
    return s;
out:
    srv_free(s);
    return NULL;
}

void srv_set_cfg(struct srv *s, const struct cfg *cfg)
{
    s->cfg = cfg;
    apply_limits(s);
}

/*
 * Draws: each misses the group with probability 3/4 at most (a quarter of the partitions), so 32
 * miss all together about once in ten thousand requests; that message then goes where its id
 * says, which is only a slightly smaller batch. The draws past the 16th cost 0.04 draws a request
 * on average; at 16, two requests in 30 strayed often enough (3 %) to make the tests that count
 * partition changes flaky.
 */
enum { ID_DRAWS = 32 };

/* An execution id whose partition is in the topic's current sticky group (publish.h). */
static void draw_id(void *opaque, const struct flow_trigger *trig, char *id)
{
    struct srv *s = opaque;
    struct pub_sticky st;
    hook_new_id(id);
    pub_sticky(s->pub, trig->flow->topic, &st);
    for (int i = 1; i < ID_DRAWS && !pub_sticky_fits(&st, id, HOOK_ID_LEN); i++) {
        hook_new_id(id);
    }
}

void srv_set_pub(struct srv *s, struct pub *pub)
{
    s->pub = pub;
    /* Without sticky groups an id is drawn once (hook_new_id): no topic lookup per request. */
    hook_ctx_set_id_source(s->hook, pub && pub_sticky_on(pub) ? draw_id : NULL, s);
}

void srv_set_metrics(struct srv *s, struct metrics *m)
{
    s->metrics = m;
    the_srv = s;
}

size_t srv_in_flight_bytes(const struct srv *s)
{
    return s->in_flight_bytes;
}

void srv_set_states(struct srv *s, struct xs *xs)
{
    s->xs = xs;
}

const char *srv_address(const struct srv *s)
{
    return s->addr;
}

long long srv_loop_delay_us(const struct srv *s)
{
    return loopdelay_us(s->delay);
}

double srv_refused_share(const struct srv *s)
{
    return loopdelay_share(s->delay);
}

size_t srv_in_flight(const struct srv *s)
{
    return s->in_flight;
}

void srv_drain(struct srv *s, void (*on_drained)(void *arg), void *arg)
{
    s->draining = true;
    s->on_drained = on_drained;
    s->drained_arg = arg;
    if (s->bound) {
        evhttp_del_accept_socket(s->http, s->bound);
        s->bound = NULL;
        s->listener = NULL; /* freed with the bound socket */
    }
    /* Waiting requests get their 504 now: the bridge does not outlive their executions. */
    xs_expire_all(s->xs);
    check_drained(s);
}

void srv_free(struct srv *s)
{
    if (!s) {
        return;
    }
    if (s->http) {
        evhttp_free(s->http); /* closes every connection: their records go first */
    } else if (s->listener) {
        evconnlistener_free(s->listener);
    }
    conns_free(s->conns);
    loopdelay_free(s->delay);
    if (s->ev_grace) {
        event_free(s->ev_grace);
    }
    if (the_srv == s) {
        the_srv = NULL;
    }
    xfree(s->hdrs);
    sbuf_deinit(&s->out);
    sbuf_deinit(&s->logpath);
    xfree(s);
}
