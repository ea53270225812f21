/*
 * conn.c: the connection table under evhttp (see conn.h).
 *
 * Life of a record. conns_bev_new() makes the socket bufferevent evhttp asked for, takes a
 * reference on it and queues the "hookup" (event_active): evhttp finishes setting up the
 * connection in the same call, so by the time the hookup runs the bufferevent's callback
 * argument is the evhttp_connection, and the close callback is set on it. evhttp may also have
 * freed the connection already (a failed set-up): bufferevent_free() clears the callbacks, and
 * the reference kept the memory valid to see it. From the hookup on, evhttp's close callback
 * ends the record.
 *
 * The bytes. An evbuffer callback on the bufferevent's input sees each read before evhttp's
 * read callback does, and feeds it to reqcheck. A bad message is cut off the buffer (evhttp
 * never parses it) and answered by the table once every earlier request on the connection has
 * its answer written, so answers stay in order.
 */
#include "conn.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>

#include <http_parser.h>

#include "log.h"
#include "util.h"

enum timer_kind {
    T_NONE,
    T_HOOKUP, /* right after accept: find the evhttp_connection */
    T_FIRST,  /* a new connection's first byte */
    T_IDLE,   /* kept alive with nothing to do */
    T_HEAD,   /* a request head is arriving */
    T_BODY,   /* its body is arriving */
    T_REJECT, /* write the pending error answer now */
    T_LINGER, /* answer written and shut down: read what the client still sends, then close */
};

struct conn {
    struct conns *t;
    struct bufferevent *bev;
    struct evhttp_connection *evcon; /* NULL until the hookup */
    struct evbuffer_cb_entry *watch;
    struct event *timer;
    enum timer_kind kind;
    uint64_t timed; /* the message (begun or heads count) the running timer is for */
    struct reqcheck *rc;
    uint64_t answered; /* answers written */
    bool reject;       /* an error answer is due once the earlier answers are written */
    bool cutting;      /* our own change to the input buffer is in progress */
    bool reading;      /* read_rest() is adding to the input buffer */
    void (*hook)(void *);
    void *hook_arg;
    struct conn *next; /* hash chain by evcon */
    struct conn *prev_all, *next_all;
};

#define NBUCKETS 4096

struct conns {
    struct event_base *base;
    struct conn_limits lim;
    size_t live;
    struct conn *all;
    void (*on_answer)(void *arg, int status);
    void *on_answer_arg;
    struct conn *buckets[NBUCKETS];
};

/* ==== Table ==== */

static size_t bucket_of(const struct evhttp_connection *evcon)
{
    uintptr_t h = (uintptr_t)evcon;
    return (size_t)((h >> 4) ^ (h >> 16)) & (NBUCKETS - 1);
}

static struct conn *find(struct conns *t, const struct evhttp_connection *evcon)
{
    struct conn *c = evcon ? t->buckets[bucket_of(evcon)] : NULL;
    while (c && c->evcon != evcon) {
        c = c->next;
    }
    return c;
}

static void unhash(struct conn *c)
{
    if (!c->evcon) {
        return;
    }
    struct conn **pp = &c->t->buckets[bucket_of(c->evcon)];
    while (*pp && *pp != c) {
        pp = &(*pp)->next;
    }
    if (*pp) {
        *pp = c->next;
    }
}

/* Frees the record only: the bufferevent and the socket are evhttp's (or already gone). */
static void conn_destroy(struct conn *c)
{
    struct conns *t = c->t;
    unhash(c);
    if (c->prev_all) {
        c->prev_all->next_all = c->next_all;
    } else {
        t->all = c->next_all;
    }
    if (c->next_all) {
        c->next_all->prev_all = c->prev_all;
    }
    t->live--;
    event_free(c->timer);
    reqcheck_free(c->rc);
    xfree(c);
}

/* ==== Timers ==== */

static void arm(struct conn *c, enum timer_kind kind, long ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    c->kind = kind;
    evtimer_del(c->timer);
    evtimer_add(c->timer, &tv);
}

static void fire_now(struct conn *c, enum timer_kind kind)
{
    c->kind = kind;
    evtimer_del(c->timer);
    event_active(c->timer, EV_TIMEOUT, 1);
}

static uint64_t outstanding(const struct conn *c)
{
    return reqcheck_completed(c->rc) - c->answered;
}

/*
 * Sets the timer for where the stream is. A timer already running for the same head or body
 * keeps its deadline: bytes trickling in do not extend it (that is the slow-loris defence).
 */
static void update_timer(struct conn *c)
{
    const struct conn_limits *l = &c->t->lim;
    if (c->reject || c->kind == T_LINGER || c->kind == T_HOOKUP) {
        return;
    }
    if (outstanding(c) > 0) {
        c->kind = T_NONE;
        evtimer_del(c->timer);
        return;
    }
    switch (reqcheck_phase(c->rc)) {
    case RC_HEAD:
        if (c->kind != T_HEAD || c->timed != reqcheck_begun(c->rc)) {
            c->timed = reqcheck_begun(c->rc);
            arm(c, T_HEAD, l->header_timeout_ms);
        }
        break;
    case RC_BODY:
        if (c->kind != T_BODY || c->timed != reqcheck_heads(c->rc)) {
            c->timed = reqcheck_heads(c->rc);
            arm(c, T_BODY, l->body_timeout_ms);
        }
        break;
    case RC_IDLE:
        if (c->kind != T_IDLE && c->kind != T_FIRST) {
            arm(c, T_IDLE, l->idle_timeout_ms);
        }
        break;
    }
}

/* ==== Answers written by the table ==== */

static void on_linger_read(struct bufferevent *bev, void *arg)
{
    (void)arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    evbuffer_drain(in, evbuffer_get_length(in));
}

static void on_linger_event(struct bufferevent *bev, short what, void *arg)
{
    struct conn *c = arg;
    (void)bev;
    (void)what;
    evhttp_connection_free(c->evcon); /* runs on_close: c is gone */
}

/*
 * Writes the answer straight to the socket (evhttp may be half-way through parsing; the buffer
 * of an answer this small always fits the socket's) and shuts the writing side. The connection
 * then lingers: what the client still sends is read and dropped until it closes or 2 s pass, so
 * the close does not turn into a reset that could destroy the answer before the client read it.
 */
static void answer_and_close(struct conn *c, int status, const char *reason, const char *message)
{
    evutil_socket_t fd = bufferevent_getfd(c->bev);
    struct sbuf head, body;
    sbuf_init(&head);
    sbuf_init(&body);
    sbuf_append_cstr(&body, "{\"message\":");
    sbuf_append_json_str(&body, message, strlen(message));
    sbuf_append_cstr(&body, "}");
    sbuf_appendf(&head,
                 "HTTP/1.1 %d %s\r\nDate: %s\r\nContent-Type: application/json\r\n"
                 "Content-Length: %zu\r\nConnection: close\r\n%s%s\r\n",
                 status, reason, util_http_date(), body.len, status == 405 ? "Allow: GET, POST, PUT\r\n" : "",
                 status == 503 ? "Retry-After: 1\r\n" : "");
    sbuf_append(&head, body.data, body.len);
    if (fd >= 0) {
        (void)send(fd, head.data, head.len, MSG_NOSIGNAL | MSG_DONTWAIT);
        shutdown(fd, SHUT_WR);
    }
    sbuf_deinit(&head);
    sbuf_deinit(&body);
    log_kv(LOG_DEBUG, "connection refused by the framing check or a limit", "reason", message,
           NULL);
    if (c->t->on_answer) {
        c->t->on_answer(c->t->on_answer_arg, status);
    }
    /* evhttp's callbacks are replaced: it will not see this connection again until it frees it. */
    c->reject = true;
    bufferevent_setcb(c->bev, on_linger_read, NULL, on_linger_event, c);
    bufferevent_disable(c->bev, EV_WRITE);
    bufferevent_enable(c->bev, EV_READ);
    on_linger_read(c->bev, c);
    arm(c, T_LINGER, 2000);
}

/* ==== The evhttp_connection behind a new bufferevent ==== */

static void on_close(struct evhttp_connection *evcon, void *arg)
{
    struct conn *c = arg;
    (void)evcon;
    if (c->hook) {
        c->hook(c->hook_arg);
    }
    evbuffer_remove_cb_entry(bufferevent_get_input(c->bev), c->watch);
    conn_destroy(c);
}

static void hookup(struct conn *c)
{
    bufferevent_event_cb eventcb = NULL;
    void *arg = NULL;
    bufferevent_getcb(c->bev, NULL, NULL, &eventcb, &arg);
    c->kind = T_NONE;
    if (!eventcb || !arg) {
        /* evhttp gave up on the connection while setting it up: only our reference is left. */
        struct bufferevent *bev = c->bev;
        evbuffer_remove_cb_entry(bufferevent_get_input(bev), c->watch);
        conn_destroy(c);
        bufferevent_decref(bev);
        return;
    }
    c->evcon = arg;
    size_t b = bucket_of(c->evcon);
    c->next = c->t->buckets[b];
    c->t->buckets[b] = c;
    evhttp_connection_set_closecb(c->evcon, on_close, c);
    bufferevent_decref(c->bev); /* evhttp's close callback now tells us when it goes */
    if (c->t->live > (size_t)c->t->lim.max_connections) {
        answer_and_close(c, 503, "Service Unavailable",
                         "Service Unavailable: too many open connections (limits.max_connections), "
                         "retry later");
        return;
    }
    if (reqcheck_begun(c->rc) == 0 && reqcheck_offset(c->rc) == 0) {
        arm(c, T_FIRST, c->t->lim.header_timeout_ms);
    } else {
        update_timer(c);
    }
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;
    const struct reqcheck_verdict *v;
    (void)fd;
    (void)what;
    switch (c->kind) {
    case T_HOOKUP:
        hookup(c);
        break;
    case T_FIRST:
    case T_IDLE:
    case T_LINGER:
        evhttp_connection_free(c->evcon); /* nothing is owed: close; c is gone */
        break;
    case T_HEAD:
        answer_and_close(c, 408, "Request Timeout",
                         "Request Timeout: the request headers did not arrive within "
                         "limits.header_timeout_ms");
        break;
    case T_BODY:
        answer_and_close(c, 408, "Request Timeout",
                         "Request Timeout: the request body did not arrive within "
                         "limits.body_timeout_ms");
        break;
    case T_REJECT:
        v = reqcheck_verdict(c->rc);
        answer_and_close(c, v->status, v->reason, v->message);
        break;
    case T_NONE:
        break;
    }
}

/* ==== The byte stream ==== */

/* Keeps the first keep bytes of buf: the rest belongs to a message evhttp must never parse. */
static void cut_after(struct conn *c, struct evbuffer *buf, size_t keep)
{
    size_t len = evbuffer_get_length(buf);
    c->cutting = true;
    if (keep == 0) {
        evbuffer_drain(buf, len);
    } else if (keep < len) {
        struct evbuffer *head = evbuffer_new();
        evbuffer_remove_buffer(buf, head, keep);
        evbuffer_drain(buf, evbuffer_get_length(buf));
        evbuffer_prepend_buffer(buf, head);
        evbuffer_free(head);
    }
    c->cutting = false;
}

static void refuse(struct conn *c, struct evbuffer *buf, uint64_t buf_start)
{
    uint64_t bad = reqcheck_verdict(c->rc)->bad_msg_start;
    c->reject = true;
    evtimer_del(c->timer);
    c->kind = T_NONE;
    if (outstanding(c) == 0 || bad < buf_start) {
        /* evhttp is reading the bad message itself (or nothing before it is owed). */
        cut_after(c, buf, 0);
    } else {
        cut_after(c, buf, (size_t)(bad - buf_start));
    }
    if (outstanding(c) == 0 && c->evcon) {
        fire_now(c, T_REJECT);
    }
}

/*
 * libevent 2.1 reads at most 4096 bytes a time from a socket (EVBUFFER_MAX_READ; 2.2 makes it
 * settable), each read after an ioctl(FIONREAD), so a 7.3 KB webhook takes two turns of the loop
 * and four system calls to read. A read that filled those 4096 bytes in the middle of a body
 * whose length is known most likely left the rest in the socket: read_rest() reads it at once,
 * up to READ_REST_MAX, in one readv into the same buffer, before evhttp's read callback runs,
 * so evhttp finds the whole request in this turn. The bytes go through on_input() as any read's
 * do (the commit calls it again). Whatever the socket says (nothing yet, end of stream, an error)
 * is left for libevent's next read to find: the bytes it returns are only fewer.
 */
#define LIBEVENT_MAX_READ 4096
#define READ_REST_MAX (64 * 1024)

static void read_rest(struct conn *c, struct evbuffer *buf)
{
    uint64_t left = reqcheck_body_left(c->rc);
    size_t want = left < READ_REST_MAX ? (size_t)left : READ_REST_MAX;
    struct evbuffer_iovec v[2];
    struct iovec iov[2];
    int n = want ? evbuffer_reserve_space(buf, (ev_ssize_t)want, v, 2) : 0;
    if (n <= 0) {
        return;
    }
    size_t room = 0;
    for (int i = 0; i < n; i++) {
        /* The reservation may be bigger than asked: never read past the body. */
        size_t len = v[i].iov_len < want - room ? v[i].iov_len : want - room;
        iov[i] = (struct iovec){.iov_base = v[i].iov_base, .iov_len = len};
        room += len;
    }
    ssize_t got = readv(bufferevent_getfd(c->bev), iov, n);
    if (got <= 0) {
        return; /* an uncommitted reservation adds nothing */
    }
    int used = 0;
    for (size_t rest = (size_t)got; used < n && rest > 0; used++) {
        v[used].iov_len = rest < iov[used].iov_len ? rest : iov[used].iov_len;
        rest -= v[used].iov_len;
    }
    c->reading = true;
    evbuffer_commit_space(buf, v, used);
    c->reading = false;
}

static void on_input(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
    struct conn *c = arg;
    if (info->n_added == 0 || c->cutting || c->reject) {
        return;
    }
    size_t len = evbuffer_get_length(buf);
    uint64_t buf_start = reqcheck_offset(c->rc) - (len - info->n_added);
    struct evbuffer_ptr from;
    evbuffer_ptr_set(buf, &from, len - info->n_added, EVBUFFER_PTR_SET);
    struct evbuffer_iovec v[16];
    int bad = 0;
    size_t left = info->n_added;
    while (left > 0 && !bad) {
        int n = evbuffer_peek(buf, (ev_ssize_t)left, &from, v, 16);
        int m = n < 16 ? n : 16;
        for (int i = 0; i < m && left > 0 && !bad; i++) {
            size_t take = v[i].iov_len < left ? v[i].iov_len : left;
            bad = reqcheck_feed(c->rc, v[i].iov_base, take) < 0;
            left -= take;
            evbuffer_ptr_set(buf, &from, take, EVBUFFER_PTR_ADD);
        }
        if (n <= 0) {
            break;
        }
    }
    if (bad) {
        refuse(c, buf, buf_start);
        return;
    }
    if (c->evcon) {
        update_timer(c);
    }
    if (info->n_added >= LIBEVENT_MAX_READ && !c->reading) {
        read_rest(c, buf);
    }
}

struct bufferevent *conns_bev_new(struct event_base *base, void *arg)
{
    struct conns *t = arg;
    struct bufferevent *bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
    if (!bev) {
        return NULL;
    }
    struct conn *c = xcalloc(1, sizeof(*c));
    c->t = t;
    c->bev = bev;
    c->rc = reqcheck_new(&t->lim.check);
    c->timer = evtimer_new(base, on_timer, c);
    c->watch = evbuffer_add_cb(bufferevent_get_input(bev), on_input, c);
    if (!c->timer || !c->watch) {
        abort(); /* allocation failures abort everywhere else too (util.h) */
    }
    c->next_all = t->all;
    if (t->all) {
        t->all->prev_all = c;
    }
    t->all = c;
    t->live++;
    bufferevent_incref(bev);
    fire_now(c, T_HOOKUP);
    return bev;
}

/* ==== Server side ==== */

void conns_answer_written(struct conns *t, struct evhttp_connection *evcon)
{
    struct conn *c = find(t, evcon);
    if (!c) {
        return;
    }
    c->answered++;
    if (c->reject) {
        if (outstanding(c) == 0 && c->kind == T_NONE) {
            fire_now(c, T_REJECT);
        }
    } else {
        update_timer(c);
    }
}

bool conns_must_close(struct conns *t, struct evhttp_connection *evcon)
{
    struct conn *c = find(t, evcon);
    return c && reqcheck_close_after(c->rc);
}

void conns_set_close_hook(struct conns *t, struct evhttp_connection *evcon, void (*fn)(void *),
                          void *arg)
{
    struct conn *c = find(t, evcon);
    if (c) {
        c->hook = fn;
        c->hook_arg = arg;
    }
}

void conns_on_answer(struct conns *t, void (*fn)(void *arg, int status), void *arg)
{
    t->on_answer = fn;
    t->on_answer_arg = arg;
}

size_t conns_open(const struct conns *t)
{
    return t->live;
}

struct conns *conns_new(struct event_base *base)
{
    struct conns *t = xcalloc(1, sizeof(*t));
    t->base = base;
    return t;
}

void conns_set_limits(struct conns *t, const struct conn_limits *limits)
{
    t->lim = *limits;
    /* http_parser's own head limit (a process-wide setting) must not cut in before ours. */
    http_parser_set_max_header_size(
        (uint32_t)(limits->check.max_uri_bytes + limits->check.max_header_bytes + 4096));
}

void conns_free(struct conns *t)
{
    if (!t) {
        return;
    }
    /* Left: records whose hookup never ran (evhttp_free closed their connections first). */
    while (t->all) {
        struct conn *c = t->all;
        struct bufferevent *bev = c->evcon ? NULL : c->bev;
        if (bev) {
            evbuffer_remove_cb_entry(bufferevent_get_input(bev), c->watch);
        }
        conn_destroy(c);
        if (bev) {
            bufferevent_decref(bev);
        }
    }
    xfree(t);
}
