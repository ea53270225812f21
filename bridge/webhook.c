/*
 * webhook.c: Kestra's webhook rules for one request: route shape, method, key lookup, disabled
 * checks, then the message (proto/SPEC.md) with headers, parameters and body. No I/O: server.c
 * hands requests in, publish.c sends what comes out.
 */
#include "webhook.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>

#include "bufpool.h"
#include "execstate.h"
#include "expr.h"
#include "log.h"
#include "pack.h"
#include "proto.h"
#include "prune.h"

/* Map key and message texts follow Kestra's ErrorController ("<Reason>: <detail>"). */
static const struct hook_answer answers[HOOK_VERDICT_COUNT] = {
    [HOOK_ACCEPTED] = {200, "OK", NULL, false},
    [HOOK_DELIVERED] = {200, "OK", NULL, false},
    [HOOK_NOT_FOUND] = {404, "Not Found", "Not Found: Webhook not found", false},
    [HOOK_BAD_ESCAPE] = {400, "Bad Request", "Bad Request: malformed percent-encoding in the URL",
                         false},
    [HOOK_METHOD_NOT_ALLOWED] = {405, "Method Not Allowed",
                                 "Method Not Allowed: allowed methods are GET, POST and PUT", false},
    [HOOK_FLOW_DISABLED] = {409, "Conflict", "Conflict: Cannot execute flow: flow is disabled.",
                            false},
    [HOOK_TRIGGER_DISABLED] = {409, "Conflict",
                               "Conflict: Cannot execute flow: the webhook trigger is disabled.",
                               false},
    [HOOK_CONDITIONS_FALSE] = {204, "No Content", NULL, false},
    [HOOK_BAD_FRAMING] = {400, "Bad Request",
                          "Bad Request: conflicting Content-Length or Transfer-Encoding headers",
                          false},
    [HOOK_TOO_LARGE] = {413, "Payload Too Large",
                        "Payload Too Large: the message exceeds limits.max_body_bytes or Kafka's "
                        "message.max.bytes", false},
    [HOOK_URI_TOO_LONG] = {414, "URI Too Long",
                           "URI Too Long: the request URI exceeds limits.max_uri_bytes", false},
    [HOOK_HEADERS_TOO_LARGE] = {431, "Request Header Fields Too Large",
                                "Request Header Fields Too Large: the request headers exceed "
                                "limits.max_header_bytes or limits.max_headers",
                                false},
    [HOOK_QUEUE_FULL] = {503, "Service Unavailable",
                         "Service Unavailable: the Kafka producer queue is full, retry later", true},
    [HOOK_OVERLOADED] = {503, "Service Unavailable",
                         "Service Unavailable: too many webhooks wait for Kafka, retry later",
                         true},
    [HOOK_BUSY] = {503, "Service Unavailable",
                   "Service Unavailable: the bridge is overloaded (its event loop runs more than "
                   "limits.max_loop_delay_ms behind), retry later",
                   true},
    [HOOK_DELIVERY_FAILED] = {503, "Service Unavailable",
                              "Service Unavailable: Kafka did not acknowledge the message, retry",
                              true},
    [HOOK_TOPIC_FAILED] = {500, "Internal Server Error",
                           "Internal Server Error: Kafka refused the topic", false},
    [HOOK_SHUTTING_DOWN] = {503, "Service Unavailable", "Service Unavailable: shutting down", true},
    [HOOK_INTERNAL] = {500, "Internal Server Error", "Internal Server Error", false},
};

const struct hook_answer *hook_answer(enum hook_verdict v)
{
    if ((unsigned)v >= HOOK_VERDICT_COUNT) {
        v = HOOK_INTERNAL;
    }
    return &answers[v];
}

/* Query pairs reuse the header struct: both are (name, value) pairs grouped the same way. */
#define kv hook_header

/* One name's values, chained through next[] in arrival order. */
struct group {
    size_t first;
    size_t last;
    size_t count;
};

struct hook_ctx {
    const struct route_table *rt;
    struct flow_set *fs; /* the set rt was built from, or NULL; requests reference it */
    const struct xs *xs;       /* the stopAfter disabled set; NULL: none */
    char *tenant;
    int compat;
    struct pack_parser *pp;
    /* The body's containers in the message being built (pack_extents of pp); 0 when none. */
    const struct byte_range *known;
    size_t nknown;
    struct sbuf scratch;       /* decoded path segments and query */
    struct sbuf path;          /* the masked path of the message being built */
    struct kv *kvs;            /* query pairs */
    size_t kvs_cap;
    struct group *groups;      /* grouping state, reused */
    size_t *next;
    size_t *slots;             /* hash slots: group index + 1, 0 = empty */
    size_t groups_cap;
    msgpack_sbuffer vars;      /* packed headers then parameters */
    msgpack_zone zone;         /* the message unpacked for conditions, cleared per request */
    hook_id_fn new_id;         /* NULL: hook_new_id */
    void *new_id_opaque;
};

struct hook_ctx *hook_ctx_new(const struct route_table *rt, const char *tenant, int compat)
{
    struct hook_ctx *ctx = xcalloc(1, sizeof(*ctx));
    ctx->rt = rt;
    ctx->tenant = xstrdup(tenant);
    ctx->compat = compat;
    ctx->pp = pack_parser_new();
    sbuf_init(&ctx->scratch);
    sbuf_init(&ctx->path);
    msgpack_sbuffer_init(&ctx->vars);
    msgpack_zone_init(&ctx->zone, 16384);
    return ctx;
}

void hook_ctx_set_id_source(struct hook_ctx *ctx, hook_id_fn fn, void *opaque)
{
    ctx->new_id = fn;
    ctx->new_id_opaque = opaque;
}

void hook_ctx_set_states(struct hook_ctx *ctx, const struct xs *xs)
{
    ctx->xs = xs;
}

void hook_ctx_free(struct hook_ctx *ctx)
{
    if (!ctx) {
        return;
    }
    pack_parser_free(ctx->pp);
    xfree(ctx->tenant);
    sbuf_deinit(&ctx->scratch);
    sbuf_deinit(&ctx->path);
    xfree(ctx->kvs);
    xfree(ctx->groups);
    xfree(ctx->next);
    xfree(ctx->slots);
    msgpack_sbuffer_destroy(&ctx->vars);
    msgpack_zone_destroy(&ctx->zone);
    xfree(ctx);
}

void hook_ctx_set_routes(struct hook_ctx *ctx, const struct route_table *rt, struct flow_set *fs)
{
    ctx->rt = rt;
    ctx->fs = fs;
    if (fs) {
        ctx->compat = fs->compat;
    }
}

struct hook_req *hook_req_new(void)
{
    struct hook_req *hr = xcalloc(1, sizeof(*hr));
    msgpack_sbuffer_init(&hr->msg);
    sbuf_init(&hr->end_body);
    return hr;
}

void hook_req_free(struct hook_req *hr)
{
    if (!hr) {
        return;
    }
    /* Unpublished (204, 409, an error): the buffer serves the next message. */
    bufpool_put(hr->msg.data);
    flow_set_free(hr->flows);
    sbuf_deinit(&hr->end_body);
    xfree(hr);
}

/* ==== Execution ids ==== */

static const char base62[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/* Random bytes come from a pool refilled by getrandom(2), so an id costs no system call. */
static void random_bytes(unsigned char *out, size_t n)
{
    static _Thread_local unsigned char pool[4096];
    static _Thread_local size_t avail;
    while (n > 0) {
        if (avail == 0) {
            size_t got = 0;
            while (got < sizeof(pool)) {
                ssize_t r = getrandom(pool + got, sizeof(pool) - got, 0);
                if (r <= 0) {
                    abort(); /* no entropy source: ids would collide; never continue */
                }
                got += (size_t)r;
            }
            avail = sizeof(pool);
        }
        size_t take = n < avail ? n : avail;
        memcpy(out, pool + sizeof(pool) - avail, take);
        memset(pool + sizeof(pool) - avail, 0, take);
        avail -= take;
        out += take;
        n -= take;
    }
}

/*
 * Base62 with a fixed width of 22 digits (62^22 > 2^128). Two divisions by 62^10, the largest
 * power below 2^64, leave three parts that plain 64-bit arithmetic finishes: about a fifth of
 * the instructions of 22 long divisions, which counts since ids are drawn several times for
 * sticky partitions (server.c).
 */
__extension__ typedef unsigned __int128 u128; /* GCC and Clang on 64-bit targets */

void hook_id_of_uuid(const unsigned char uuid[16], char out[HOOK_ID_LEN + 1])
{
    const uint64_t p10 = 839299365868340224ULL; /* 62^10 */
    u128 v = 0;
    for (int i = 0; i < 16; i++) {
        v = v << 8 | uuid[i];
    }
    uint64_t low = (uint64_t)(v % p10);
    v /= p10;
    uint64_t mid = (uint64_t)(v % p10);
    uint64_t high = (uint64_t)(v / p10); /* < 2^128 / 62^20, two digits */
    for (int pos = HOOK_ID_LEN - 1; pos >= 12; pos--) {
        out[pos] = base62[low % 62];
        low /= 62;
    }
    for (int pos = 11; pos >= 2; pos--) {
        out[pos] = base62[mid % 62];
        mid /= 62;
    }
    out[1] = base62[high % 62];
    out[0] = base62[high / 62];
    out[HOOK_ID_LEN] = '\0';
}

void hook_new_id(char out[HOOK_ID_LEN + 1])
{
    unsigned char rnd[16];
    random_bytes(rnd, sizeof(rnd));
    /* A version-4 UUID, as Kestra's IdUtils draws one, then base62 with a fixed width. */
    rnd[6] = (unsigned char)((rnd[6] & 0x0F) | 0x40);
    rnd[8] = (unsigned char)((rnd[8] & 0x3F) | 0x80);
    hook_id_of_uuid(rnd, out);
}

/* ==== Route shape ==== */

enum { MAX_SEGMENTS = 9 };

struct route_parts {
    struct strv tenant;
    struct strv ns;
    struct strv flow_id;
    struct strv key;
};

/*
 * Splits the raw path on '/' and percent-decodes each segment into ctx->scratch. Returns the
 * number of segments, -1 for a malformed escape, or MAX_SEGMENTS + 1 when there are too many.
 */
static int split_path(struct hook_ctx *ctx, struct strv path, struct strv seg[MAX_SEGMENTS])
{
    if (path.len == 0 || path.ptr[0] != '/') {
        return 0;
    }
    sbuf_reset(&ctx->scratch);
    sbuf_reserve(&ctx->scratch, path.len);
    char *out = ctx->scratch.data;
    int n = 0;
    size_t i = 1;
    for (;;) {
        size_t j = i;
        while (j < path.len && path.ptr[j] != '/') {
            j++;
        }
        if (n == MAX_SEGMENTS) {
            return MAX_SEGMENTS + 1;
        }
        long dl = util_percent_decode((struct strv){path.ptr + i, j - i}, out, false);
        if (dl < 0) {
            return -1;
        }
        seg[n++] = (struct strv){out, (size_t)dl};
        out += dl;
        if (j >= path.len) {
            return n;
        }
        i = j + 1;
    }
}

/*
 * Matches /api/v1/executions/webhook/{ns}/{flowId}/{key} and
 * /api/v1/{tenant}/executions/webhook/{ns}/{flowId}/{key}. Empty segments (a trailing slash, a
 * doubled slash) never match, as in Kestra.
 */
static bool match_route(const struct strv *seg, int n, const char *tenant, struct route_parts *rp)
{
    int base;
    if (n == 7) {
        base = 2;
        rp->tenant = strv_of(tenant);
    } else if (n == 8) {
        base = 3;
        rp->tenant = seg[2];
    } else {
        return false;
    }
    if (!strv_eq_cstr(seg[0], "api") || !strv_eq_cstr(seg[1], "v1") ||
        !strv_eq_cstr(seg[base], "executions") || !strv_eq_cstr(seg[base + 1], "webhook")) {
        return false;
    }
    rp->ns = seg[base + 2];
    rp->flow_id = seg[base + 3];
    rp->key = seg[base + 4];
    for (int i = 0; i < n; i++) {
        if (seg[i].len == 0) {
            return false;
        }
    }
    return true;
}

static bool method_allowed(struct strv m)
{
    return strv_eq_cstr(m, "GET") || strv_eq_cstr(m, "POST") || strv_eq_cstr(m, "PUT");
}

/* Request smuggling guard: one Content-Length at most, and never together with Transfer-Encoding. */
static bool framing_ok(const struct hook_input *in)
{
    int cl = 0, te = 0;
    for (size_t i = 0; i < in->nheaders; i++) {
        struct strv name = in->headers[i].name;
        if (name.len == 14 && strncasecmp(name.ptr, "Content-Length", 14) == 0) {
            cl++;
        } else if (name.len == 17 && strncasecmp(name.ptr, "Transfer-Encoding", 17) == 0) {
            te++;
        }
    }
    return cl <= 1 && !(cl && te);
}

/* ==== Query string (Netty's QueryStringDecoder rules, Kestra 0.20–1.x) ==== */

static void push_kv(struct hook_ctx *ctx, size_t *n, struct strv name, struct strv value)
{
    if (*n == ctx->kvs_cap) {
        ctx->kvs_cap = ctx->kvs_cap ? ctx->kvs_cap * 2 : 16;
        ctx->kvs = xrealloc(ctx->kvs, ctx->kvs_cap * sizeof(*ctx->kvs));
    }
    ctx->kvs[(*n)++] = (struct kv){name, value};
}

/*
 * Decodes one "name[=value]" component into out. A leading '=' is skipped and an empty name is
 * dropped, as Netty does; a missing value is "". Returns false on a malformed escape.
 */
static bool decode_component(struct hook_ctx *ctx, size_t *n, struct strv comp, char **out)
{
    size_t s = 0;
    while (s < comp.len && comp.ptr[s] == '=') {
        s++;
    }
    if (s == comp.len) {
        return true;
    }
    const char *eq = memchr(comp.ptr + s, '=', comp.len - s);
    size_t name_end = eq ? (size_t)(eq - comp.ptr) : comp.len;
    struct strv raw_name = {comp.ptr + s, name_end - s};
    struct strv raw_val = {eq ? eq + 1 : comp.ptr + comp.len, eq ? comp.len - name_end - 1 : 0};
    long nl = util_percent_decode(raw_name, *out, true);
    if (nl < 0) {
        return false;
    }
    struct strv name = {*out, (size_t)nl};
    *out += nl;
    long vl = util_percent_decode(raw_val, *out, true);
    if (vl < 0) {
        return false;
    }
    struct strv value = {*out, (size_t)vl};
    *out += vl;
    push_kv(ctx, n, name, value);
    return true;
}

/* Parses the query into ctx->kvs; the decoded text lives in ctx->scratch after the path. */
static long parse_query(struct hook_ctx *ctx, struct strv q)
{
    size_t n = 0;
    if (!q.ptr || q.len == 0) {
        return 0;
    }
    sbuf_reset(&ctx->scratch);
    sbuf_reserve(&ctx->scratch, q.len);
    char *out = ctx->scratch.data;
    size_t start = 0;
    for (size_t i = 0; i <= q.len; i++) {
        if (i < q.len && q.ptr[i] == '#') {
            q.len = i;
        }
        if (i == q.len || q.ptr[i] == '&' || q.ptr[i] == ';') {
            if (!decode_component(ctx, &n, (struct strv){q.ptr + start, i - start}, &out)) {
                return -1;
            }
            start = i + 1;
        }
    }
    return (long)n;
}

/* ==== Grouping name → list of values, first-seen order ==== */

static uint64_t hash_strv(struct strv s)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < s.len; i++) {
        h = (h ^ (unsigned char)s.ptr[i]) * 1099511628211ULL;
    }
    return h;
}

static void grow_groups(struct hook_ctx *ctx, size_t n)
{
    if (n <= ctx->groups_cap) {
        return;
    }
    size_t cap = 16;
    while (cap < n) {
        cap *= 2;
    }
    ctx->groups = xrealloc(ctx->groups, cap * sizeof(*ctx->groups));
    ctx->next = xrealloc(ctx->next, cap * sizeof(*ctx->next));
    ctx->slots = xrealloc(ctx->slots, 2 * cap * sizeof(*ctx->slots));
    ctx->groups_cap = cap;
}

/* Fills ctx->groups / ctx->next for n pairs; returns the number of distinct names. */
static size_t group_pairs(struct hook_ctx *ctx, const struct kv *kvs, size_t n)
{
    if (n == 0) {
        return 0;
    }
    grow_groups(ctx, n);
    size_t nslots = 2 * ctx->groups_cap;
    memset(ctx->slots, 0, nslots * sizeof(*ctx->slots));
    size_t ng = 0;
    for (size_t i = 0; i < n; i++) {
        size_t s = hash_strv(kvs[i].name) & (nslots - 1);
        while (ctx->slots[s] && !strv_eq(kvs[ctx->groups[ctx->slots[s] - 1].first].name,
                                         kvs[i].name)) {
            s = (s + 1) & (nslots - 1);
        }
        ctx->next[i] = SIZE_MAX;
        if (!ctx->slots[s]) {
            ctx->groups[ng] = (struct group){i, i, 1};
            ctx->slots[s] = ++ng;
        } else {
            struct group *g = &ctx->groups[ctx->slots[s] - 1];
            ctx->next[g->last] = i;
            g->last = i;
            g->count++;
        }
    }
    return ng;
}

static void pack_multimap(struct hook_ctx *ctx, msgpack_packer *pk, const struct kv *kvs, size_t n)
{
    size_t ng = group_pairs(ctx, kvs, n);
    msgpack_pack_map(pk, ng);
    for (size_t g = 0; g < ng; g++) {
        const struct group *grp = &ctx->groups[g];
        pack_text(pk, kvs[grp->first].name.ptr, kvs[grp->first].name.len);
        msgpack_pack_array(pk, grp->count);
        for (size_t i = grp->first; i != SIZE_MAX; i = ctx->next[i]) {
            pack_text(pk, kvs[i].value.ptr, kvs[i].value.len);
        }
    }
}

/* ==== The message ==== */

/* The path as logged and published: the key segment replaced, so it never leaves the bridge. */
static struct strv masked_path(struct strv raw, struct sbuf *b)
{
    const char *slash = raw.ptr + raw.len;
    while (slash > raw.ptr && slash[-1] != '/') {
        slash--;
    }
    sbuf_reset(b);
    sbuf_append(b, raw.ptr, (size_t)(slash - raw.ptr));
    sbuf_append(b, "********", 8);
    return (struct strv){b->data, b->len};
}

static struct proto_str pstr(struct strv s)
{
    return (struct proto_str){s.ptr, s.len};
}

static struct proto_str pcstr(const char *s)
{
    return (struct proto_str){s, strlen(s)};
}

/* Packs headers then parameters into ctx->vars; their offsets go to the message fields. */
static void pack_variables(struct hook_ctx *ctx, const struct hook_input *in, size_t nparams,
                           struct proto_msg *m)
{
    msgpack_packer pk;
    msgpack_sbuffer_clear(&ctx->vars);
    msgpack_packer_init(&pk, &ctx->vars, msgpack_sbuffer_write);
    pack_multimap(ctx, &pk, in->headers, in->nheaders);
    size_t hlen = ctx->vars.size;
    pack_multimap(ctx, &pk, ctx->kvs, nparams);
    m->headers = (struct proto_str){ctx->vars.data, hlen};
    m->parameters = (struct proto_str){ctx->vars.data + hlen, ctx->vars.size - hlen};
}

/*
 * The message buffer is allocated once at about its final size: the head (a few names and ids
 * besides headers, query and path) plus the body's length. pack_json keeps room for the rest of
 * the text plus OUT_SLACK as it goes, and msgpack is no longer than JSON text but for numbers
 * (9 bytes for "0.5,") and invalid UTF-8 (3 bytes of U+FFFD for 1): only such bodies grow, by
 * doubling. The GitHub push (7.3 KB) packs into 6.6 KB. Twice the body was reserved until the
 * sixth session: 16 KB for that payload where 8.5 KB do, and the capacity is what an in-flight
 * message costs in memory. The buffer comes from and goes back to the buffers of delivered
 * messages (bufpool.h).
 */
#define MSG_HEAD_SLACK 1024

static void reserve_message(msgpack_sbuffer *sb, size_t n)
{
    if (!sb->data) {
        sb->data = bufpool_get(n, &sb->alloc);
    } else if (sb->alloc - sb->size < n) {
        sb->data = xrealloc(sb->data, sb->size + n);
        sb->alloc = sb->size + n;
    }
}

/* Returns a proto_ error code when the message would break the spec (a bug of ours: 500). */
static int build_message(struct hook_ctx *ctx, const struct hook_input *in, size_t nparams,
                         struct hook_req *hr)
{
    const struct flow_trigger *trig = hr->trigger;
    const struct flow *fl = trig->flow;
    char received_at[25];
    struct proto_msg m;
    msgpack_packer pk;

    util_rfc3339_now(received_at);
    if (ctx->new_id) {
        ctx->new_id(ctx->new_id_opaque, trig, hr->id);
    } else {
        hook_new_id(hr->id);
    }
    memset(&m, 0, sizeof(m));
    m.id = (struct proto_str){hr->id, HOOK_ID_LEN};
    m.tenant_id = pcstr(ctx->tenant);
    m.ns = pcstr(fl->ns);
    m.flow_id = pcstr(fl->id);
    m.received_at = (struct proto_str){received_at, 24};
    m.method = pstr(in->method);
    m.path = pstr(masked_path(in->path, &ctx->path));
    m.remote_addr = pcstr(in->remote_addr ? in->remote_addr : "");
    m.trigger_id = pcstr(trig->id);
    m.trigger_type = pcstr(FLOW_TRIGGER_TYPE);
    pack_variables(ctx, in, nparams, &m);

    msgpack_sbuffer_clear(&hr->msg);
    reserve_message(&hr->msg, ctx->vars.size + in->path.len + MSG_HEAD_SLACK + in->body.len);
    msgpack_packer_init(&pk, &hr->msg, msgpack_sbuffer_write);
    int rc = proto_encode_head(&m, in->body.len > 0, &pk);
    ctx->nknown = 0;
    if (rc == PROTO_OK && in->body.len > 0) {
        pack_body(ctx->pp, in->body.ptr, in->body.len, &hr->msg);
        ctx->known = pack_extents(ctx->pp, &ctx->nknown);
    }
    return rc;
}

/* ==== Conditions ==== */

static const msgpack_object *map_get(const msgpack_object *map, const char *key)
{
    if (!map || map->type != MSGPACK_OBJECT_MAP) {
        return NULL;
    }
    size_t klen = strlen(key);
    for (uint32_t i = 0; i < map->via.map.size; i++) {
        const msgpack_object *k = &map->via.map.ptr[i].key;
        if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == klen &&
            memcmp(k->via.str.ptr, key, klen) == 0) {
            return &map->via.map.ptr[i].val;
        }
    }
    return NULL;
}

/*
 * The message as conditions see it, in the context's zone. When the trigger's conditions read
 * only constant paths under `trigger` (trig->reads), only those are unpacked: on the 7.3 KB
 * GitHub push, `trigger.body.ref` cost 29k instructions a request unpacked whole. The walk
 * jumps over the body's containers it does not read, which pack_body has just written into this
 * very buffer (ctx->known): walking them cost 10.7k instructions more on that payload. Every
 * other byte is checked, and proto_encode_head has checked what it wrote, so a message
 * msgpack_unpack would refuse is still refused here.
 */
static bool unpack_message(struct hook_ctx *ctx, const struct hook_req *hr, msgpack_object *root)
{
    static const char *const VARIABLES[] = {"trigger", "variables"};
    const struct prune_paths *reads = hr->trigger->reads;
    size_t off = 0;

    if (reads) {
        return prune_unpack_known(reads, VARIABLES, ARRAY_LEN(VARIABLES), hr->msg.data,
                                  hr->msg.size, ctx->known, ctx->nknown, &ctx->zone, root) == 0;
    }
    return msgpack_unpack(hr->msg.data, hr->msg.size, &off, &ctx->zone, root) ==
           MSGPACK_UNPACK_SUCCESS;
}

/*
 * Conditions read the message exactly as it will be published (what a condition sees is what
 * the executor receives): it is unpacked once into the context's zone (only the parts they
 * read), borrowed by the evaluator, and the zone is cleared afterwards. Returns true when the
 * trigger fires.
 */
static bool conditions_hold(struct hook_ctx *ctx, const struct hook_req *hr)
{
    const struct flow_trigger *trig = hr->trigger;
    const struct flow *fl = trig->flow;
    msgpack_object root;
    char why[256];

    if (!trig->cond || cond_is_empty(trig->cond)) {
        return true;
    }
    if (!unpack_message(ctx, hr, &root)) {
        msgpack_zone_clear(&ctx->zone);
        return false;
    }
    struct expr_env env = {
        .trigger = map_get(map_get(&root, "trigger"), "variables"),
        .flow_id = strv_of(fl->id),
        .ns = strv_of(fl->ns),
        .tenant = strv_of(ctx->tenant),
        .execution_id = (struct strv){hr->id, HOOK_ID_LEN},
        .labels = fl->labels.type == MSGPACK_OBJECT_MAP ? &fl->labels : NULL,
        .compat = ctx->compat,
    };
    clock_gettime(CLOCK_REALTIME, &env.now);
    why[0] = '\0';
    bool ok = cond_eval(trig->cond, &env, why, sizeof(why));
    if (!ok) {
        log_kv(LOG_DEBUG, "conditions not met: 204", "namespace", fl->ns, "flow", fl->id,
               "trigger", trig->id, "execution", hr->id, "reason", why, NULL);
    }
    msgpack_zone_clear(&ctx->zone);
    return ok;
}

enum hook_verdict hook_process(struct hook_ctx *ctx, const struct hook_input *in,
                               struct hook_req *hr)
{
    struct strv seg[MAX_SEGMENTS];
    struct route_parts rp;

    hr->trigger = NULL;
    /* Conflicting framing is refused whatever the path: the rest of the stream is suspect. */
    if (!framing_ok(in)) {
        return hr->verdict = HOOK_BAD_FRAMING;
    }
    int n = split_path(ctx, in->path, seg);
    if (n < 0) {
        return hr->verdict = HOOK_BAD_ESCAPE;
    }
    if (!match_route(seg, n, ctx->tenant, &rp)) {
        return hr->verdict = HOOK_NOT_FOUND;
    }
    if (!method_allowed(in->method)) {
        return hr->verdict = HOOK_METHOD_NOT_ALLOWED;
    }
    const struct flow_trigger *trig = route_lookup(ctx->rt, rp.tenant, rp.ns, rp.flow_id, rp.key);
    if (!trig) {
        return hr->verdict = HOOK_NOT_FOUND;
    }
    /* From here the key matched: answers are counted and logged under the flow. */
    hr->trigger = trig;
    if (trig->flow->disabled) {
        return hr->verdict = HOOK_FLOW_DISABLED;
    }
    if (trig->disabled || xs_is_disabled(ctx->xs, ctx->tenant, trig)) {
        return hr->verdict = HOOK_TRIGGER_DISABLED;
    }
    /* The path segments are no longer needed: the query may reuse the scratch buffer. */
    long nparams = parse_query(ctx, in->query);
    if (nparams < 0) {
        return hr->verdict = HOOK_BAD_ESCAPE;
    }
    /*
     * From here on the request may outlive the current flow set (it waits for Kafka while a
     * reload swaps in the next one): the reference keeps its trigger, flow and topic alive.
     */
    if (ctx->fs && !hr->flows) {
        hr->flows = flow_set_ref(ctx->fs);
    }
    int rc = build_message(ctx, in, (size_t)nparams, hr);
    if (rc != PROTO_OK) {
        log_kv(LOG_ERROR, "message encoding failed", "error", proto_strerror(rc), NULL);
        return hr->verdict = HOOK_INTERNAL;
    }
    if (!conditions_hold(ctx, hr)) {
        return hr->verdict = HOOK_CONDITIONS_FALSE;
    }
    return hr->verdict = HOOK_ACCEPTED;
}

/* The execution answer: Kestra's WebhookResponse without labels and url. */
static void execution_body(const struct hook_req *hr, const char *tenant, const char *state,
                           struct sbuf *b)
{
    const struct flow_trigger *trig = hr->trigger;
    sbuf_append_cstr(b, "{\"id\":");
    sbuf_append_json_str(b, hr->id, HOOK_ID_LEN);
    sbuf_append_cstr(b, ",\"namespace\":");
    sbuf_append_json_str(b, trig->flow->ns, strlen(trig->flow->ns));
    sbuf_append_cstr(b, ",\"flowId\":");
    sbuf_append_json_str(b, trig->flow->id, strlen(trig->flow->id));
    sbuf_append_cstr(b, ",\"tenantId\":");
    sbuf_append_json_str(b, tenant, strlen(tenant));
    sbuf_append_cstr(b, ",\"trigger\":{\"id\":");
    sbuf_append_json_str(b, trig->id, strlen(trig->id));
    sbuf_append_cstr(b, ",\"type\":\"" FLOW_TRIGGER_TYPE "\"},\"state\":{\"current\":");
    sbuf_append_json_str(b, state, strlen(state));
    sbuf_append_cstr(b, "}}");
}

void hook_success_body(const struct hook_req *hr, const char *tenant, struct sbuf *b)
{
    execution_body(hr, tenant, "CREATED", b);
}

/* ==== wait: true answers ==== */

/* A msgpack value as compact JSON (bin and ext, which outputs never hold, print as null). */
static void json_value(const msgpack_object *o, struct sbuf *b)
{
    switch (o->type) {
    case MSGPACK_OBJECT_BOOLEAN:
        sbuf_append_cstr(b, o->via.boolean ? "true" : "false");
        break;
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        sbuf_appendf(b, "%llu", (unsigned long long)o->via.u64);
        break;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        sbuf_appendf(b, "%lld", (long long)o->via.i64);
        break;
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        if (isfinite(o->via.f64)) {
            sbuf_appendf(b, "%.17g", o->via.f64);
        } else {
            sbuf_append_cstr(b, "null");
        }
        break;
    case MSGPACK_OBJECT_STR:
        sbuf_append_json_str(b, o->via.str.ptr, o->via.str.size);
        break;
    case MSGPACK_OBJECT_ARRAY:
        sbuf_append_cstr(b, "[");
        for (uint32_t i = 0; i < o->via.array.size; i++) {
            sbuf_append_cstr(b, i ? "," : "");
            json_value(&o->via.array.ptr[i], b);
        }
        sbuf_append_cstr(b, "]");
        break;
    case MSGPACK_OBJECT_MAP:
        sbuf_append_cstr(b, "{");
        for (uint32_t i = 0; i < o->via.map.size; i++) {
            sbuf_append_cstr(b, i ? "," : "");
            json_value(&o->via.map.ptr[i].key, b);
            sbuf_append_cstr(b, ":");
            json_value(&o->via.map.ptr[i].val, b);
        }
        sbuf_append_cstr(b, "}");
        break;
    default:
        sbuf_append_cstr(b, "null");
        break;
    }
}

static void pack_cstr(msgpack_packer *pk, const char *s)
{
    msgpack_pack_str_with_body(pk, s, strlen(s));
}

/*
 * responseCode, rendered against the finished execution: `execution` is {id, namespace, flowId,
 * tenantId, state: {current}, outputs} (outputs {} when there are none). -1 when it fails.
 */
static int render_code(const struct hook_req *hr, const char *tenant, const char *state,
                       const msgpack_object *outputs)
{
    const struct flow_trigger *tr = hr->trigger;
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_zone *zone = msgpack_zone_new(MSGPACK_ZONE_CHUNK_SIZE);
    msgpack_object exec;
    struct sbuf out;
    char why[160] = "";
    size_t off = 0;
    int code = -1;

    msgpack_sbuffer_init(&sb);
    sbuf_init(&out);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 6);
    pack_cstr(&pk, "id");
    msgpack_pack_str_with_body(&pk, hr->id, HOOK_ID_LEN);
    pack_cstr(&pk, "namespace");
    pack_cstr(&pk, tr->flow->ns);
    pack_cstr(&pk, "flowId");
    pack_cstr(&pk, tr->flow->id);
    pack_cstr(&pk, "tenantId");
    pack_cstr(&pk, tenant);
    pack_cstr(&pk, "state");
    msgpack_pack_map(&pk, 1);
    pack_cstr(&pk, "current");
    pack_cstr(&pk, state);
    pack_cstr(&pk, "outputs");
    if (outputs) {
        msgpack_pack_object(&pk, *outputs);
    } else {
        msgpack_pack_map(&pk, 0);
    }
    if (!zone || msgpack_unpack(sb.data, sb.size, &off, zone, &exec) != MSGPACK_UNPACK_SUCCESS) {
        goto out;
    }
    struct expr_env env = {
        .flow_id = strv_of(tr->flow->id),
        .ns = strv_of(tr->flow->ns),
        .tenant = strv_of(tenant),
        .execution_id = {hr->id, HOOK_ID_LEN},
        .labels = tr->flow->labels.type == MSGPACK_OBJECT_MAP ? &tr->flow->labels : NULL,
        .execution = &exec,
    };
    if (expr_render(tr->response_code, &env, &out, why, sizeof(why)) < 0) {
        log_kv(LOG_WARN, "responseCode did not render", "execution", hr->id, "error", why, NULL);
        goto out;
    }
    sbuf_append(&out, "", 1);
    char *end;
    const char *p = out.data;
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') {
        p++;
    }
    long v = strtol(p, &end, 10);
    while (*end == ' ' || *end == '\t' || *end == '\n' || *end == '\r') {
        end++;
    }
    if (end != p && *end == '\0' && v >= 100 && v <= 599) {
        code = (int)v;
    } else {
        log_kv(LOG_WARN, "responseCode is not an HTTP status", "execution", hr->id, NULL);
    }
out:
    sbuf_deinit(&out);
    msgpack_sbuffer_destroy(&sb);
    if (zone) {
        msgpack_zone_free(zone);
    }
    return code;
}

int hook_wait_answer(const struct hook_req *hr, const char *tenant, const char *state,
                     bool failed, const msgpack_object *outputs, struct sbuf *b,
                     const char **content_type)
{
    const struct flow_trigger *tr = hr->trigger;
    int status = failed ? 500 : 200;

    if (tr->response_code) {
        status = render_code(hr, tenant, state, outputs);
        if (status < 0) {
            *content_type = "application/json";
            sbuf_append_cstr(b, "{\"message\":\"Internal Server Error: responseCode did not "
                                "render to an HTTP status\"}");
            return 500;
        }
    }
    *content_type = "application/json";
    if (!tr->return_outputs) {
        execution_body(hr, tenant, state, b);
        return status;
    }
    if (!outputs) {
        return status;
    }
    if (tr->text_plain) {
        *content_type = "text/plain";
        if (outputs->via.map.size == 1 && outputs->via.map.ptr[0].val.type == MSGPACK_OBJECT_STR) {
            const msgpack_object *v = &outputs->via.map.ptr[0].val;
            sbuf_append(b, v->via.str.ptr, v->via.str.size);
            return status;
        }
    }
    json_value(outputs, b);
    return status;
}

