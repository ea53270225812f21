/*
 * webhook.h: one webhook request, from its method, path, query, headers and body to a verdict
 * and, when accepted, the encoded Kafka message. Knows Kestra's rules; knows nothing of evhttp
 * (server.c translates) or librdkafka (publish.c sends).
 */
#ifndef BRIDGE_WEBHOOK_H
#define BRIDGE_WEBHOOK_H

#include <stdbool.h>
#include <stddef.h>

#include <msgpack.h>

#include "flow.h"
#include "route.h"
#include "util.h"

/** One request header as received: name with the sender's casing, raw value. Borrowed. */
struct hook_header {
    struct strv name;
    struct strv value;
};

/** A request as server.c hands it over; every pointer is borrowed for the call. */
struct hook_input {
    struct strv method;     /* "GET", "POST", ... */
    struct strv path;       /* raw (still percent-encoded), without the query */
    struct strv query;      /* raw, without '?'; ptr NULL when there is none */
    const struct hook_header *headers;
    size_t nheaders;
    struct strv body;       /* len 0: no body */
    const char *remote_addr; /* IP address text */
};

/** Every way a request can end; hook_answer() maps each to its HTTP answer. */
enum hook_verdict {
    HOOK_ACCEPTED = 0,      /* message built; publish it, answer after the delivery report */
    HOOK_DELIVERED,         /* 200 after the broker acknowledged */
    HOOK_NOT_FOUND,
    HOOK_BAD_ESCAPE,
    HOOK_METHOD_NOT_ALLOWED,
    HOOK_FLOW_DISABLED,
    HOOK_TRIGGER_DISABLED,
    HOOK_CONDITIONS_FALSE,  /* 204: nothing is published */
    HOOK_BAD_FRAMING,       /* duplicate Content-Length, Content-Length with Transfer-Encoding */
    HOOK_TOO_LARGE,
    HOOK_URI_TOO_LONG,      /* 414: past limits.max_uri_bytes */
    HOOK_HEADERS_TOO_LARGE, /* 431: past limits.max_header_bytes or limits.max_headers */
    HOOK_QUEUE_FULL,
    HOOK_OVERLOADED,        /* the in-flight budget is spent: 503 before any parsing */
    HOOK_BUSY,              /* the loop runs behind (loopdelay.h): 503 before any parsing */
    HOOK_DELIVERY_FAILED,
    HOOK_TOPIC_FAILED,      /* permanent: unknown topic, authorization */
    HOOK_SHUTTING_DOWN,
    HOOK_INTERNAL,
    HOOK_VERDICT_COUNT
};

/** The HTTP answer of a verdict. message is the JSON "message" text (static). */
struct hook_answer {
    int status;
    const char *reason;
    const char *message;
    bool retry_after; /* send Retry-After: the sender should retry */
};

const struct hook_answer *hook_answer(enum hook_verdict v);

/** Per-thread request-processing state: the routes, the tenant, a reusable body parser. */
struct hook_ctx;

/**
 * The route table is borrowed and must outlive the context (or the next hook_ctx_set_routes);
 * tenant is copied. compat (EXPR_COMPAT_*) is the expression rule set conditions are evaluated
 * with. Requests take no reference to a flow set until hook_ctx_set_routes names one.
 */
struct hook_ctx *hook_ctx_new(const struct route_table *rt, const char *tenant, int compat);
void hook_ctx_free(struct hook_ctx *ctx);

/**
 * Points the context at a new route table and the flow set it was built from (both borrowed:
 * the caller keeps them alive while they are current), and evaluates conditions with fs->compat
 * from now on. Every request that matches a trigger takes a reference to fs (hook_req.flows), so
 * the caller may drop its own reference when it swaps in the next set: the set lives until the
 * last such request is freed. fs may be NULL (tests): requests then take no reference. Between
 * two requests only; the loop is single-threaded.
 */
void hook_ctx_set_routes(struct hook_ctx *ctx, const struct route_table *rt, struct flow_set *fs);

struct xs;
/**
 * The disabled set of stopAfter (execstate.h), borrowed: a trigger in it answers 409 like one
 * with `disabled: true`. NULL (the default) disables nothing.
 */
void hook_ctx_set_states(struct hook_ctx *ctx, const struct xs *xs);

#define HOOK_ID_LEN 22

/**
 * Writes the execution id of a new message for `trig` (HOOK_ID_LEN characters and a NUL), e.g.
 * hook_new_id drawn until the id suits the topic's partitions (server.c, publish.h pub_sticky).
 */
typedef void (*hook_id_fn)(void *opaque, const struct flow_trigger *trig, char *id);

/** Sets where new ids come from; fn NULL (the default): hook_new_id. */
void hook_ctx_set_id_source(struct hook_ctx *ctx, hook_id_fn fn, void *opaque);

/**
 * One request from acceptance to answer. Owns the encoded message until publish takes it.
 * `conn` is the server's handle to the HTTP request, NULL once the client has gone away.
 */
struct hook_req {
    enum hook_verdict verdict;
    const struct flow_trigger *trigger; /* borrowed from `flows`; NULL unless matched */
    struct flow_set *flows; /* a reference that keeps trigger alive; NULL without one */
    char id[HOOK_ID_LEN + 1];
    msgpack_sbuffer msg;
    void *conn;
    void *owner;      /* the server that accepted it */
    void *watch;      /* the server's watch for the client hanging up while we wait */
    void *wait;       /* wait: true: the execstate wait (struct xs_wait *) until the end comes */
    bool delivered;   /* wait: true: acknowledged, now waiting for the execution's end */
    bool ended;       /* wait: true: the answer below is ready (end, or the wait limit) */
    int end_status;   /* wait: true: the answer once ended */
    const char *end_type;
    struct sbuf end_body;
    bool client_gone; /* the client closed its side before the answer */
    size_t size;      /* bytes of the message handed to Kafka */
    long long start_us;
    void *metrics;    /* the server's per-flow counters (struct metrics_flow), borrowed */
};

struct hook_req *hook_req_new(void);
/** Frees hr and drops its reference to the flow set (possibly the last one: see flow_set_free). */
void hook_req_free(struct hook_req *hr);

/**
 * Decides what to do with `in` and, for HOOK_ACCEPTED, fills hr->msg with the message
 * (proto/SPEC.md) and hr->id with a new execution id. Returns hr->verdict.
 */
enum hook_verdict hook_process(struct hook_ctx *ctx, const struct hook_input *in,
                               struct hook_req *hr);

/** Appends the 200 body (Kestra's execution answer) for an accepted request to b. */
void hook_success_body(const struct hook_req *hr, const char *tenant, struct sbuf *b);

/**
 * The answer to a `wait: true` request once its execution ended (Kestra 1.x, reference §2.5):
 * the status is the trigger's rendered responseCode when it has one, else 500 for FAILED and 200
 * otherwise. The body is the execution answer with its final state, or with returnOutputs the
 * flow outputs as JSON (nothing when there are none); with responseContentType text/plain, an
 * outputs map of exactly one string is sent as that string (Kestra sends the JSON of the map
 * with a text/plain header: issue #19706, a difference we document). `outputs` may be NULL.
 * Appends the body to b, sets *content_type (static) and returns the status. A responseCode that
 * fails to render or is not an integer from 100 to 599 gives 500 with a JSON message.
 */
int hook_wait_answer(const struct hook_req *hr, const char *tenant, const char *state,
                     bool failed, const msgpack_object *outputs, struct sbuf *b,
                     const char **content_type);

/** Writes a new Kestra-style execution id: a random version-4 UUID in base62, 22 characters. */
void hook_new_id(char out[HOOK_ID_LEN + 1]);

/** The id of a 128-bit value (big-endian bytes): base62, 0-9A-Za-z, zero-padded to 22 digits. */
void hook_id_of_uuid(const unsigned char uuid[16], char out[HOOK_ID_LEN + 1]);

#endif
