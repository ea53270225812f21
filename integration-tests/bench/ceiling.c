/*
 * ceiling.c: the bare evhttp server of the benchmark. It accepts every request with the same
 * evhttp settings as bridge/server.c and answers 200 with a tiny JSON body: no routing, no body
 * parsing, no Kafka. Its throughput is the ceiling the bridge is compared with. Bench tooling only.
 *
 * Build: cc -O2 -std=c17 -D_GNU_SOURCE -o ceiling ceiling.c $(pkg-config --cflags --libs libevent)
 * Run:   ceiling --listen 127.0.0.1:0     (logs {"msg":"listening","addr":"HOST:PORT"} on stderr)
 */
#include <errno.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/listener.h>
#include <event2/util.h>

/*
 * The bridge's defaults (configs/bridge.yaml), so evhttp enforces the same limits: srv_new() sets
 * evhttp's header limit to 2 * max_header_bytes + max_uri_bytes + 1024.
 */
#define CEIL_MAX_BODY 983040
#define CEIL_MAX_HEADERS (2 * 16384 + 8192 + 1024)
#define CEIL_TIMEOUT_MS 30000
#define CEIL_BODY "{\"ok\":true}"

static void on_request(struct evhttp_request *req, void *arg)
{
    (void)arg;
    struct evkeyvalq *oh = evhttp_request_get_output_headers(req);
    evhttp_add_header(oh, "Content-Type", "application/json");
    evbuffer_add(evhttp_request_get_output_buffer(req), CEIL_BODY, sizeof(CEIL_BODY) - 1);
    evhttp_send_reply(req, 200, "OK", NULL);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)sig;
    (void)what;
    event_base_loopexit(arg, NULL);
}

static int parse_listen(const char *listen, struct sockaddr_storage *ss, int *sslen)
{
    const char *colon = strrchr(listen, ':');
    if (!colon || colon == listen) {
        return -EINVAL;
    }
    char host[256];
    size_t hlen = (size_t)(colon - listen);
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

int main(int argc, char **argv)
{
    const char *listen = "127.0.0.1:0";
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--listen") == 0 && i + 1 < argc) {
            listen = argv[++i];
        } else {
            fprintf(stderr, "usage: ceiling [--listen HOST:PORT]\n");
            return 2;
        }
    }
    signal(SIGPIPE, SIG_IGN);
    struct event_base *base = event_base_new();
    struct evhttp *http = evhttp_new(base);
    if (!base || !http) {
        fprintf(stderr, "ceiling: libevent set-up failed\n");
        return 1;
    }
    /* Same settings as srv_new() in bridge/server.c. */
    evhttp_set_allowed_methods(http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
                                         EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
                                         EVHTTP_REQ_OPTIONS | EVHTTP_REQ_TRACE |
                                         EVHTTP_REQ_CONNECT | EVHTTP_REQ_PATCH);
    evhttp_set_max_body_size(http, CEIL_MAX_BODY);
    evhttp_set_max_headers_size(http, CEIL_MAX_HEADERS);
    struct timeval tv = {CEIL_TIMEOUT_MS / 1000, (CEIL_TIMEOUT_MS % 1000) * 1000};
    evhttp_set_timeout_tv(http, &tv);
    evhttp_set_gencb(http, on_request, NULL);

    struct sockaddr_storage ss;
    int sslen = sizeof(ss);
    if (parse_listen(listen, &ss, &sslen) < 0) {
        fprintf(stderr, "ceiling: cannot parse --listen %s\n", listen);
        return 2;
    }
    unsigned flags = LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC | LEV_OPT_REUSEABLE |
                     LEV_OPT_REUSEABLE_PORT;
    struct evconnlistener *lev =
        evconnlistener_new_bind(base, NULL, NULL, flags, 1024, (struct sockaddr *)&ss, sslen);
    if (!lev || !evhttp_bind_listener(http, lev)) {
        fprintf(stderr, "ceiling: listen on %s: %s\n", listen, strerror(errno));
        return 1;
    }
    struct sockaddr_in got;
    socklen_t gotlen = sizeof(got);
    char host[64];
    getsockname(evconnlistener_get_fd(lev), (struct sockaddr *)&got, &gotlen);
    evutil_inet_ntop(AF_INET, &got.sin_addr, host, sizeof(host));
    fprintf(stderr, "{\"level\":\"info\",\"msg\":\"listening\",\"addr\":\"%s:%d\"}\n", host,
            ntohs(got.sin_port));

    struct event *ev_term = evsignal_new(base, SIGTERM, on_signal, base);
    struct event *ev_int = evsignal_new(base, SIGINT, on_signal, base);
    evsignal_add(ev_term, NULL);
    evsignal_add(ev_int, NULL);
    event_base_dispatch(base);

    event_free(ev_term);
    event_free(ev_int);
    evhttp_free(http);
    event_base_free(base);
    return 0;
}
