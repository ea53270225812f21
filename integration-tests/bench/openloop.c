/*
 * openloop.c: fixed-schedule HTTP load for the benchmark (Debian has no wrk2): the low-rate
 * latency scenario and the open-loop overload. Request i is due at start + i / rate, whether or
 * not earlier answers came back, and its answer time is measured from that due time, so a stalled
 * server cannot hide its stalls (no coordinated omission). Keep-alive connections are reused; a
 * new one is opened only when every open one waits for an answer, up to --conns; beyond that,
 * due requests wait in the client and their wait counts. Bench tooling only: one thread, epoll,
 * plain writes.
 *
 * Prints one line, counting only requests due after --warmup:
 *   OPENLOOP {"sent":N,"c2xx":N,"c503":N,"cother":N,"errors":N,"p50_us":N,...}
 * p50/p90/p99/max over every answer; ok_p50/ok_p99 over 2xx; rej_p50/rej_p99 over 503.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define OL_MAX_CONNS 4096
#define OL_BUF 16384

struct conn {
    int fd;
    bool busy;
    int64_t due_us; /* due time of the request in flight */
    size_t len;
    char buf[OL_BUF];
};

struct opts {
    const char *host;
    int port;
    const char *path;
    const char *body_file;
    double rate;
    double duration;
    double warmup;
    int max_conns;
};

struct lat {
    int64_t *v;
    size_t n;
};

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static long long pct(const struct lat *l, double p)
{
    if (l->n == 0) {
        return -1;
    }
    size_t i = (size_t)(p / 100.0 * (double)l->n);
    return (long long)l->v[i >= l->n ? l->n - 1 : i];
}

static int dial(const struct opts *o, int ep, int idx)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return -1;
    }
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)o->port)};
    inet_pton(AF_INET, o->host, &sa.sin_addr);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)idx};
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
        epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static char *build_request(const struct opts *o, size_t *len)
{
    FILE *f = fopen(o->body_file, "rb");
    if (!f) {
        perror(o->body_file);
        exit(2);
    }
    static char body[1 << 20];
    size_t blen = fread(body, 1, sizeof(body), f);
    fclose(f);
    size_t cap = blen + 1024;
    char *req = malloc(cap);
    int h = snprintf(req, cap,
                     "POST %s HTTP/1.1\r\nHost: %s:%d\r\nUser-Agent: GitHub-Hookshot/bench\r\n"
                     "Content-Type: application/json\r\nX-GitHub-Event: push\r\n"
                     "X-GitHub-Delivery: 72d3162e-cc78-11e3-81ab-4c9367dc0958\r\n"
                     "Content-Length: %zu\r\n\r\n",
                     o->path, o->host, o->port, blen);
    memcpy(req + h, body, blen);
    *len = (size_t)h + blen;
    return req;
}

/* Returns the status of a complete answer at the head of c->buf and drops it, 0 if incomplete. */
static int take_answer(struct conn *c, bool *close_after)
{
    char *end = memmem(c->buf, c->len, "\r\n\r\n", 4);
    if (!end) {
        return c->len == sizeof(c->buf) ? -1 : 0;
    }
    size_t hlen = (size_t)(end - c->buf) + 4;
    size_t clen = 0;
    *close_after = false;
    for (char *p = c->buf; p && p < end; p = memchr(p, '\n', (size_t)(end - p))) {
        p += (*p == '\n');
        if (strncasecmp(p, "Content-Length:", 15) == 0) {
            clen = strtoul(p + 15, NULL, 10);
        } else if (strncasecmp(p, "Connection: close", 17) == 0) {
            *close_after = true;
        }
    }
    if (hlen + clen > sizeof(c->buf)) {
        return -1;
    }
    if (c->len < hlen + clen) {
        return 0;
    }
    int status = atoi(c->buf + 9);
    memmove(c->buf, c->buf + hlen + clen, c->len - hlen - clen);
    c->len -= hlen + clen;
    return status > 0 ? status : -1;
}

static void parse_args(int argc, char **argv, struct opts *o)
{
    *o = (struct opts){"127.0.0.1", 0, "/", NULL, 100, 10, 0, 64};
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *k = argv[i], *v = argv[i + 1];
        if (!strcmp(k, "--host")) {
            o->host = v;
        } else if (!strcmp(k, "--port")) {
            o->port = atoi(v);
        } else if (!strcmp(k, "--path")) {
            o->path = v;
        } else if (!strcmp(k, "--body")) {
            o->body_file = v;
        } else if (!strcmp(k, "--rate")) {
            o->rate = atof(v);
        } else if (!strcmp(k, "--duration")) {
            o->duration = atof(v);
        } else if (!strcmp(k, "--warmup")) {
            o->warmup = atof(v);
        } else if (!strcmp(k, "--conns")) {
            o->max_conns = atoi(v);
        }
    }
    if (!o->port || !o->body_file || o->rate <= 0 || o->rate > 200000 || o->duration <= 0 ||
        o->duration > 600 || o->warmup < 0 || o->warmup > 60 || o->max_conns < 1 ||
        o->max_conns > OL_MAX_CONNS) {
        fprintf(stderr, "usage: openloop --port P --body FILE [--host H] [--path P] [--rate R/s] "
                        "[--duration S] [--warmup S] [--conns N<=%d]\n",
                OL_MAX_CONNS);
        exit(2);
    }
}

struct state {
    struct opts o;
    int ep;
    struct conn *conns;
    int nconns;
    int *idle; /* stack of idle connection slots (fd open or not) */
    int nidle;
    int busy;
    int64_t measure_from;
    struct lat all, ok, rej;
    size_t sent, c2xx, c503, cother, errors, late;
};

static void finish(struct state *st, struct conn *c, int status, int64_t at)
{
    if (c->due_us >= st->measure_from) {
        if (status > 0) {
            int64_t d = at - c->due_us;
            st->all.v[st->all.n++] = d;
            if (status >= 200 && status < 300) {
                st->c2xx++;
                st->ok.v[st->ok.n++] = d;
            } else if (status == 503) {
                st->c503++;
                st->rej.v[st->rej.n++] = d;
            } else {
                st->cother++;
            }
        } else {
            st->errors++;
        }
    }
    c->busy = false;
    st->busy--;
    st->idle[st->nidle++] = (int)(c - st->conns);
}

static void drop_conn(struct state *st, struct conn *c)
{
    epoll_ctl(st->ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->fd = -1;
    c->len = 0;
}

/* Sends one request due at `due` on an idle connection; false when none is free. */
static bool send_one(struct state *st, const char *req, size_t reqlen, int64_t due)
{
    if (st->nidle == 0) {
        if (st->nconns == st->o.max_conns) {
            return false;
        }
        st->conns[st->nconns] = (struct conn){.fd = -1};
        st->idle[st->nidle++] = st->nconns++;
    }
    int k = st->idle[--st->nidle];
    struct conn *c = &st->conns[k];
    if (c->fd < 0 && (c->fd = dial(&st->o, st->ep, k)) < 0) {
        perror("openloop: connect");
        exit(1);
    }
    if (now_us() - due > 1000) {
        st->late++;
    }
    c->busy = true;
    c->due_us = due;
    c->len = 0;
    st->busy++;
    st->sent += due >= st->measure_from;
    size_t off = 0;
    while (off < reqlen) {
        ssize_t w = write(c->fd, req + off, reqlen - off);
        if (w <= 0) {
            drop_conn(st, c);
            finish(st, c, -1, now_us());
            return true;
        }
        off += (size_t)w;
    }
    return true;
}

static void on_readable(struct state *st, struct conn *c)
{
    if (!c->busy) {
        /* Answer-less data or a close on an idle keep-alive connection. */
        char tmp[512];
        if (read(c->fd, tmp, sizeof(tmp)) <= 0) {
            drop_conn(st, c);
        }
        return;
    }
    ssize_t got = read(c->fd, c->buf + c->len, sizeof(c->buf) - c->len);
    int64_t at = now_us();
    bool close_after = false;
    int status = 0;
    if (got > 0) {
        c->len += (size_t)got;
        status = take_answer(c, &close_after);
    }
    if (got <= 0 || status != 0) {
        if (got <= 0 || close_after || status < 0) {
            drop_conn(st, c);
        }
        finish(st, c, got <= 0 ? -1 : status, at);
    }
}

int main(int argc, char **argv)
{
    struct state st = {0};
    parse_args(argc, argv, &st.o);
    signal(SIGPIPE, SIG_IGN);
    size_t reqlen;
    char *req = build_request(&st.o, &reqlen);
    st.ep = epoll_create1(EPOLL_CLOEXEC);
    st.conns = calloc((size_t)st.o.max_conns, sizeof(*st.conns));
    st.idle = calloc((size_t)st.o.max_conns, sizeof(*st.idle));

    double period = 1e6 / st.o.rate;
    int64_t start = now_us() + 1000;
    st.measure_from = start + (int64_t)(st.o.warmup * 1e6);
    int64_t end = st.measure_from + (int64_t)(st.o.duration * 1e6);
    size_t total = (size_t)((st.o.warmup + st.o.duration) * st.o.rate) + 1;
    st.all.v = calloc(total, sizeof(int64_t));
    st.ok.v = calloc(total, sizeof(int64_t));
    st.rej.v = calloc(total, sizeof(int64_t));
    size_t i = 0, next_pending = 0;
    int64_t drain_deadline = end + 3000000;

#define DUE(k) (start + (int64_t)((double)(k) * period))
    for (;;) {
        int64_t t = now_us();
        /* Every request due by now is sent if a connection is free; the rest wait their turn. */
        while (i < total && DUE(i) < end && DUE(i) <= t) {
            i++;
        }
        while (next_pending < i && send_one(&st, req, reqlen, DUE(next_pending))) {
            next_pending++;
        }
        bool schedule_done = i >= total || DUE(i) >= end;
        if (schedule_done && next_pending == i && st.busy == 0) {
            break;
        }
        if (t > drain_deadline) {
            size_t left = (size_t)st.busy + (i - next_pending);
            st.errors += left; /* unanswered at the deadline */
            break;
        }
        int64_t wait = schedule_done || next_pending < i ? 10000 : DUE(i) - now_us();
        if (next_pending < i) {
            wait = 1000; /* waiting for a free connection */
        }
        if (wait < 0) {
            wait = 0;
        }
        struct timespec ts = {wait / 1000000, (wait % 1000000) * 1000};
        struct epoll_event evs[256];
        int n = epoll_pwait2(st.ep, evs, 256, &ts, NULL);
        if (n < 0 && errno != EINTR) {
            perror("openloop: epoll_pwait2");
            return 1;
        }
        for (int e = 0; e < n; e++) {
            struct conn *c = &st.conns[evs[e].data.u32];
            if (c->fd >= 0) {
                on_readable(&st, c);
            }
        }
    }
    qsort(st.all.v, st.all.n, sizeof(int64_t), cmp_i64);
    qsort(st.ok.v, st.ok.n, sizeof(int64_t), cmp_i64);
    qsort(st.rej.v, st.rej.n, sizeof(int64_t), cmp_i64);
    printf("OPENLOOP {\"sent\":%zu,\"c2xx\":%zu,\"c503\":%zu,\"cother\":%zu,\"errors\":%zu,"
           "\"late\":%zu,\"conns\":%d,\"p50_us\":%lld,\"p90_us\":%lld,\"p99_us\":%lld,"
           "\"max_us\":%lld,\"ok_p50_us\":%lld,\"ok_p99_us\":%lld,\"rej_p50_us\":%lld,"
           "\"rej_p99_us\":%lld}\n",
           st.sent, st.c2xx, st.c503, st.cother, st.errors, st.late, st.nconns, pct(&st.all, 50),
           pct(&st.all, 90), pct(&st.all, 99), st.all.n ? (long long)st.all.v[st.all.n - 1] : -1LL,
           pct(&st.ok, 50), pct(&st.ok, 99), pct(&st.rej, 50), pct(&st.rej, 99));
    return 0;
}
