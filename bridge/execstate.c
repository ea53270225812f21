/*
 * execstate.c: follows the state topic and the trigger-state topic (proto/SPEC-STATE.md): waits
 * for executions' ends, applies stopAfter, keeps the disabled set. A second librdkafka user besides
 * publish.c, because a consumer has concerns of its own (assignment, offsets, a blocking first
 * read). Runs on the libevent loop's thread; no locks.
 */
#include "execstate.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <librdkafka/rdkafka.h>

#include "log.h"
#include "proto.h"

/* A batch of records per loop wake-up, so one busy topic cannot starve HTTP. */
#define XS_BATCH 500
#define XS_FLUSH_MS 5000
/* The last commit's wait at exit; with the session timeout below it bounds a stop with Kafka down. */
#define XS_CLOSE_MS 3000
#define XS_KEY_MAX 1024
/* Waits hashed by execution id: each state event looks at one bucket, not every wait. */
#define XS_WAIT_BUCKETS 1024

/*
 * The last trigger-state record of one key. Enabled entries are kept too: their time stops an
 * older execution-state event, read again after a restart, from disabling the trigger anew.
 */
struct disabled {
    bool disabled;
    char *key; /* tenant/namespace/flowId/triggerId */
    char *tenant, *ns, *flow_id, *trigger_id;
    char *execution_id, *state, *time;
    int64_t offset; /* where this record was read in the triggers topic; -1: decided here */
};

struct xs_wait {
    struct xs *x;
    char id[PROTO_ID_LEN + 1];
    xs_end_fn cb;
    void *opaque;
    struct event *timer;
    struct xs_wait *prev, *next;
};

struct xs {
    const struct cfg *cfg;
    const struct flow_set *fs;
    struct event_base *base;
    rd_kafka_t *rk;  /* consumer, assign() only */
    bool embedded;   /* on the embedded cluster: no commit or group leave at exit (xs_new) */
    rd_kafka_t *rkp; /* producer of trigger-state records */
    rd_kafka_queue_t *q;
    int pipefd[2];
    struct event *ev_read;
    struct event *ev_tick;
    struct disabled *dis; /* every key with a record, disabled or enabled */
    size_t ndis;
    size_t ndisabled;     /* entries with disabled set */
    struct xs_wait *waits[XS_WAIT_BUCKETS];
    rd_kafka_topic_partition_list_t *state_parts; /* the state topic's partitions, for commits */
    int64_t *state_start; /* where reading began, per partition: committed until a record is read */
    bool state_assigned;
    size_t nwaits;
};

static size_t bucket_of(const char *id)
{
    uint32_t h = 2166136261u;
    for (; *id; id++) {
        h = (h ^ (unsigned char)*id) * 16777619u;
    }
    return h % XS_WAIT_BUCKETS;
}

static bool commit_states(struct xs *x, rd_kafka_queue_t *result_q);

/* ==== The disabled set ==== */

static struct disabled *dis_find(const struct xs *x, const char *key)
{
    for (size_t i = 0; i < x->ndis; i++) {
        if (strcmp(x->dis[i].key, key) == 0) {
            return &x->dis[i];
        }
    }
    return NULL;
}

static void dis_clear(struct disabled *d)
{
    xfree(d->key);
    xfree(d->tenant);
    xfree(d->ns);
    xfree(d->flow_id);
    xfree(d->trigger_id);
    xfree(d->execution_id);
    xfree(d->state);
    xfree(d->time);
}

static void dis_remove(struct xs *x, const char *key)
{
    struct disabled *d = dis_find(x, key);
    if (!d) {
        return;
    }
    x->ndisabled -= d->disabled;
    dis_clear(d);
    *d = x->dis[--x->ndis];
}

static char *dup_str(struct proto_str s)
{
    return xstrndup(s.ptr ? s.ptr : "", s.len);
}

/* Applies one record (the last one per key wins). */
static void dis_put(struct xs *x, const char *key, const struct proto_trigger_state *t,
                    int64_t offset)
{
    struct disabled *d = dis_find(x, key);
    if (d) {
        x->ndisabled -= d->disabled;
        dis_clear(d);
    } else {
        x->dis = xrealloc(x->dis, (x->ndis + 1) * sizeof(*x->dis));
        d = &x->dis[x->ndis++];
    }
    d->disabled = t->disabled;
    x->ndisabled += t->disabled;
    d->key = xstrdup(key);
    d->tenant = dup_str(t->tenant_id);
    d->ns = dup_str(t->ns);
    d->flow_id = dup_str(t->flow_id);
    d->trigger_id = dup_str(t->trigger_id);
    d->execution_id = dup_str(t->execution_id);
    d->state = dup_str(t->state);
    d->time = dup_str(t->time);
    d->offset = offset;
}

static int make_key(const char *tenant, const char *ns, const char *flow_id,
                    const char *trigger_id, char key[XS_KEY_MAX])
{
    struct proto_str t = {tenant, strlen(tenant)}, n = {ns, strlen(ns)};
    struct proto_str f = {flow_id, strlen(flow_id)}, g = {trigger_id, strlen(trigger_id)};
    return proto_trigger_key(&t, &n, &f, &g, key, XS_KEY_MAX);
}

bool xs_is_disabled(const struct xs *x, const char *tenant, const struct flow_trigger *tr)
{
    char key[XS_KEY_MAX];
    if (!x || x->ndisabled == 0 || make_key(tenant, tr->flow->ns, tr->flow->id, tr->id, key) < 0) {
        return false;
    }
    const struct disabled *d = dis_find(x, key);
    return d && d->disabled;
}

size_t xs_disabled_count(const struct xs *x)
{
    return x ? x->ndisabled : 0;
}

static int cmp_dis(const void *a, const void *b)
{
    return strcmp(((const struct disabled *)a)->key, ((const struct disabled *)b)->key);
}

static void json_field(struct sbuf *out, const char *name, const char *v, bool first)
{
    sbuf_appendf(out, "%s\"%s\":", first ? "" : ",", name);
    sbuf_append_json_str(out, v, strlen(v));
}

void xs_disabled_json(const struct xs *x, struct sbuf *out)
{
    if (x->ndis > 1) { /* qsort's base must not be NULL, even for 0 elements (UBSan) */
        qsort(x->dis, x->ndis, sizeof(*x->dis), cmp_dis);
    }
    bool first = true;
    sbuf_append_cstr(out, "[");
    for (size_t i = 0; i < x->ndis; i++) {
        const struct disabled *d = &x->dis[i];
        if (!d->disabled) {
            continue;
        }
        sbuf_append_cstr(out, first ? "{" : ",{");
        first = false;
        json_field(out, "tenantId", d->tenant, true);
        json_field(out, "namespace", d->ns, false);
        json_field(out, "flowId", d->flow_id, false);
        json_field(out, "triggerId", d->trigger_id, false);
        json_field(out, "executionId", d->execution_id, false);
        json_field(out, "state", d->state, false);
        json_field(out, "time", d->time, false);
        sbuf_append_cstr(out, "}");
    }
    sbuf_append_cstr(out, "]");
}

/* ==== Writing trigger-state records ==== */

static void on_record_delivered(rd_kafka_t *rk, const rd_kafka_message_t *rkm, void *opaque)
{
    (void)rk;
    (void)opaque;
    if (rkm->err) {
        log_kv(LOG_ERROR, "trigger-state record not written", "error",
               rd_kafka_err2str(rkm->err), NULL);
    }
}

static int write_record(struct xs *x, const char *key, const struct proto_trigger_state *t,
                        char *err, size_t errsz)
{
    msgpack_sbuffer sb;
    int rc = -EIO;

    msgpack_sbuffer_init(&sb);
    int prc = proto_trigger_state_encode(t, &sb);
    if (prc != PROTO_OK) {
        snprintf(err, errsz, "encode: %s", proto_strerror(prc));
        rc = -EINVAL;
        goto out;
    }
    rd_kafka_resp_err_t kerr = rd_kafka_producev(
        x->rkp, RD_KAFKA_V_TOPIC(x->cfg->kafka.triggers_topic), RD_KAFKA_V_KEY(key, strlen(key)),
        RD_KAFKA_V_VALUE(sb.data, sb.size), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_HEADER(PROTO_HEADER_CONTENT_TYPE, PROTO_TRIGGER_STATE_CONTENT_TYPE, -1),
        RD_KAFKA_V_END);
    if (kerr) {
        snprintf(err, errsz, "%s", rd_kafka_err2str(kerr));
        goto out;
    }
    rc = 0;
out:
    msgpack_sbuffer_destroy(&sb);
    return rc;
}

static struct proto_str pstr(const char *s)
{
    struct proto_str p = {s, s ? strlen(s) : 0};
    return p;
}

int xs_enable(struct xs *x, const char *tenant, const char *ns, const char *flow_id,
              const char *trigger_id, char *err, size_t errsz)
{
    char key[XS_KEY_MAX], now[25];
    if (strchr(tenant, '/') || strchr(ns, '/') || strchr(flow_id, '/') || strchr(trigger_id, '/') ||
        make_key(tenant, ns, flow_id, trigger_id, key) < 0) {
        snprintf(err, errsz, "not a trigger name");
        return -EINVAL;
    }
    const struct disabled *d = dis_find(x, key);
    if (!d || !d->disabled) {
        snprintf(err, errsz, "trigger %s is not disabled", key);
        return -ENOENT;
    }
    util_rfc3339_now(now);
    struct proto_trigger_state t = {pstr(tenant), pstr(ns),  pstr(flow_id), pstr(trigger_id),
                                    false,        pstr(NULL), pstr(NULL),    pstr(now)};
    int rc = write_record(x, key, &t, err, errsz);
    if (rc == 0) {
        dis_put(x, key, &t, -1);
        log_kv(LOG_INFO, "trigger enabled", "trigger", key, NULL);
    }
    return rc;
}

/* ==== Reading ==== */

/*
 * Replicas write their records independently. A disable decided from an execution that ended
 * before an enable can therefore land in the topic after that enable, when the replica that
 * wrote it was slower to produce. Read in topic order it would disable the trigger again, on
 * every replica and without a word. Time decides instead, by apply_stop_after's rule: a disable
 * whose event is not newer than the enable held here is stale, and is ignored. When that enable
 * was itself read from the topic before this record (a lower offset: one key, one partition), the
 * stale disable is the key's last record, the one compaction keeps and a restart reads last, so
 * the enable is written again. Every replica may do so; the copies agree, and an enable read over
 * an enable writes nothing. An enable decided here and not read back yet (offset -1) is still to
 * come in the topic, after this record: nothing to write. Returns true when `t` is stale.
 */
static bool stale_disable(struct xs *x, const char *key, const struct proto_trigger_state *t,
                          int64_t offset)
{
    const struct disabled *held = dis_find(x, key);
    char err[256], exec_id[PROTO_ID_LEN + 1];

    if (!t->disabled || !held || held->disabled || !held->time || !t->time.ptr ||
        strncmp(t->time.ptr, held->time, t->time.len) > 0) {
        return false;
    }
    snprintf(exec_id, sizeof(exec_id), "%.*s", (int)t->execution_id.len,
             t->execution_id.ptr ? t->execution_id.ptr : "");
    log_kv(LOG_INFO, "stale trigger-state record ignored", "trigger", key, "execution", exec_id,
           "enabled_at", held->time, NULL);
    if (held->offset < 0 || held->offset > offset) {
        return true;
    }
    struct proto_trigger_state again = {
        pstr(held->tenant), pstr(held->ns), pstr(held->flow_id), pstr(held->trigger_id),
        false,              pstr(NULL),     pstr(NULL),          pstr(held->time)};
    if (write_record(x, key, &again, err, sizeof(err)) < 0) {
        log_kv(LOG_ERROR, "trigger-state record not written", "trigger", key, "error", err, NULL);
    }
    return true;
}

static void on_trigger_record(struct xs *x, const rd_kafka_message_t *rkm)
{
    char key[XS_KEY_MAX];
    struct proto_trigger_state t;

    if (!rkm->key || rkm->key_len == 0 || rkm->key_len >= sizeof(key)) {
        return;
    }
    memcpy(key, rkm->key, rkm->key_len);
    key[rkm->key_len] = '\0';
    if (!rkm->payload) {
        dis_remove(x, key); /* a tombstone: enabled */
        return;
    }
    int rc = proto_trigger_state_decode(rkm->payload, rkm->len, &t);
    if (rc != PROTO_OK) {
        log_kv(LOG_WARN, "trigger-state record skipped", "key", key, "error", proto_strerror(rc),
               NULL);
        return;
    }
    if (stale_disable(x, key, &t, rkm->offset)) {
        return;
    }
    dis_put(x, key, &t, rkm->offset);
}

static const struct flow_trigger *find_trigger(const struct xs *x, const struct proto_exec_state *e)
{
    char ns[256], flow_id[256];
    if (!x->fs || e->ns.len >= sizeof(ns) || e->flow_id.len >= sizeof(flow_id)) {
        return NULL;
    }
    snprintf(ns, sizeof(ns), "%.*s", (int)e->ns.len, e->ns.ptr);
    snprintf(flow_id, sizeof(flow_id), "%.*s", (int)e->flow_id.len, e->flow_id.ptr);
    const struct flow *fl = flow_set_find(x->fs, ns, flow_id);
    for (size_t i = 0; fl && i < fl->ntriggers; i++) {
        const char *id = fl->triggers[i].id;
        if (strlen(id) == e->trigger_id.len && memcmp(id, e->trigger_id.ptr, e->trigger_id.len) == 0) {
            return &fl->triggers[i];
        }
    }
    return NULL;
}

/*
 * stopAfter. Every replica reads every event, so each writes the same record: harmless, the last
 * one wins and they agree. The set is updated at once so this replica answers 409 from now on.
 */
static void apply_stop_after(struct xs *x, const struct proto_exec_state_decoded *d)
{
    const struct flow_trigger *tr = find_trigger(x, &d->e);
    char key[XS_KEY_MAX], err[256];

    if (!tr || !(tr->stop_after & (UINT32_C(1) << d->state))) {
        return;
    }
    struct proto_trigger_state t = {d->e.tenant_id, d->e.ns,    d->e.flow_id, d->e.trigger_id,
                                    true,           d->e.id,    d->e.state,   d->e.time};
    if (proto_trigger_key(&t.tenant_id, &t.ns, &t.flow_id, &t.trigger_id, key, sizeof(key)) < 0) {
        return;
    }
    /*
     * Already disabled: keep the record of the first execution that stopped it (later ones were
     * started before the trigger was disabled, or are duplicates of the same event). Enabled
     * after this event's time: the event is an old one read again after a restart.
     */
    const struct disabled *old = dis_find(x, key);
    if (old && (old->disabled || strncmp(t.time.ptr, old->time, t.time.len) <= 0)) {
        return;
    }
    dis_put(x, key, &t, -1);
    const struct disabled *now = dis_find(x, key);
    log_kv(LOG_WARN, "trigger disabled by stopAfter", "trigger", key, "execution",
           now->execution_id, "state", now->state, NULL);
    if (write_record(x, key, &t, err, sizeof(err)) < 0) {
        log_kv(LOG_ERROR, "trigger-state record not written", "trigger", key, "error", err, NULL);
    }
}

static void fire_waits(struct xs *x, const struct proto_exec_state_decoded *d)
{
    char id[PROTO_ID_LEN + 1], state[32];
    snprintf(id, sizeof(id), "%.*s", (int)d->e.id.len, d->e.id.ptr);
    snprintf(state, sizeof(state), "%.*s", (int)d->e.state.len, d->e.state.ptr);
    struct xs_end end = {id, state, d->state == PROTO_STATE_FAILED,
                         d->outputs.type == MSGPACK_OBJECT_MAP ? &d->outputs : NULL};
    struct xs_wait *w = x->waits[bucket_of(id)];
    while (w) {
        struct xs_wait *next = w->next;
        if (strcmp(w->id, id) == 0) {
            xs_end_fn cb = w->cb;
            void *opaque = w->opaque;
            xs_wait_free(w);
            cb(opaque, &end);
        }
        w = next;
    }
}

static void on_state_event(struct xs *x, const rd_kafka_message_t *rkm)
{
    struct proto_exec_state_decoded d;
    int rc = proto_exec_state_decode(rkm->payload, rkm->len, &d);

    if (rc != PROTO_OK) {
        log_kv(LOG_WARN, "execution-state event skipped", "error", proto_strerror(rc), NULL);
        return;
    }
    if (proto_state_terminal(d.state)) {
        fire_waits(x, &d);
        apply_stop_after(x, &d);
    }
    proto_exec_state_deinit(&d);
}

static void on_message(struct xs *x, const rd_kafka_message_t *rkm)
{
    if (rkm->err) {
        if (rkm->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            log_kv(LOG_WARN, "state consumer", "error", rd_kafka_message_errstr(rkm), NULL);
        }
        return;
    }
    const char *topic = rd_kafka_topic_name(rkm->rkt);
    if (strcmp(topic, x->cfg->kafka.triggers_topic) == 0) {
        on_trigger_record(x, rkm);
    } else {
        on_state_event(x, rkm);
    }
}

/* Serves a batch; asks the loop to come back when more may be waiting. */
static void drain(struct xs *x)
{
    for (int i = 0; i < XS_BATCH; i++) {
        rd_kafka_message_t *rkm = rd_kafka_consume_queue(x->q, 0);
        if (!rkm) {
            return;
        }
        on_message(x, rkm);
        rd_kafka_message_destroy(rkm);
    }
    event_active(x->ev_read, EV_READ, 0);
}

static void on_readable(evutil_socket_t fd, short what, void *arg)
{
    char buf[256];
    (void)what;
    while (read(fd, buf, sizeof(buf)) > 0) {
    }
    drain(arg);
}

/*
 * Records how far this replica applied the state topic. Several replicas commit to one group; a
 * replica behind the others moves the offsets back a little, which only means some events are
 * applied twice after a restart (applying stopAfter is idempotent).
 */
/* Commits how far the state topic has been read. result_q NULL: fire and forget; otherwise the
 * outcome arrives on result_q as an RD_KAFKA_EVENT_OFFSET_COMMIT. False when there was nothing to
 * commit (no event will come). */
static bool commit_states(struct xs *x, rd_kafka_queue_t *result_q)
{
    bool sent = false;

    if (!x->state_assigned || rd_kafka_position(x->rk, x->state_parts) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        return false;
    }
    /* A partition with no record read yet has no position: where reading began is recorded. */
    rd_kafka_topic_partition_list_t *done = rd_kafka_topic_partition_list_new(x->state_parts->cnt);
    for (int i = 0; i < x->state_parts->cnt; i++) {
        const rd_kafka_topic_partition_t *tp = &x->state_parts->elems[i];
        int64_t off = tp->offset >= 0 ? tp->offset : x->state_start[i];
        if (off >= 0) {
            rd_kafka_topic_partition_list_add(done, tp->topic, tp->partition)->offset = off;
        }
    }
    if (done->cnt > 0) {
        /* Not rd_kafka_commit_queue with a NULL queue: that form waits for the answer. */
        rd_kafka_resp_err_t kerr = result_q ? rd_kafka_commit_queue(x->rk, done, result_q, NULL, NULL)
                                            : rd_kafka_commit(x->rk, done, 1);
        sent = kerr == RD_KAFKA_RESP_ERR_NO_ERROR;
    }
    rd_kafka_topic_partition_list_destroy(done);
    return sent;
}

/* The last commit before exit, waited for at most XS_CLOSE_MS: rd_kafka_commit's synchronous form
 * waits for ever when no broker answers, and a bridge must stop on SIGTERM with Kafka down. */
static void commit_final(struct xs *x)
{
    rd_kafka_queue_t *q = rd_kafka_queue_new(x->rk);
    long long deadline_us = util_now_us() + XS_CLOSE_MS * 1000LL;
    bool answered = false;

    if (!commit_states(x, q)) {
        goto out;
    }
    while (!answered) {
        long long left_ms = (deadline_us - util_now_us()) / 1000;
        if (left_ms <= 0) {
            log_warn("execution states: no answer to the last commit in %d ms; exiting without it",
                     XS_CLOSE_MS);
            break;
        }
        rd_kafka_event_t *ev = rd_kafka_queue_poll(q, (int)left_ms);
        if (ev && rd_kafka_event_type(ev) == RD_KAFKA_EVENT_OFFSET_COMMIT) {
            answered = true;
            if (rd_kafka_event_error(ev)) {
                log_kv(LOG_WARN, "execution states: last commit failed", "error",
                       rd_kafka_event_error_string(ev), NULL);
            }
        }
        if (ev) {
            rd_kafka_event_destroy(ev);
        }
    }
out:
    rd_kafka_queue_destroy(q);
}

/* Serves the producer's delivery reports and the consumer's errors even when idle. */
static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    struct xs *x = arg;
    (void)fd;
    (void)what;
    rd_kafka_poll(x->rkp, 0);
    drain(x);
    commit_states(x, NULL);
}

/* ==== Waits ==== */

static void on_wait_timeout(evutil_socket_t fd, short what, void *arg)
{
    struct xs_wait *w = arg;
    xs_end_fn cb = w->cb;
    void *opaque = w->opaque;
    (void)fd;
    (void)what;
    xs_wait_free(w);
    cb(opaque, NULL);
}

struct xs_wait *xs_wait_new(struct xs *x, const char *exec_id, long timeout_ms, xs_end_fn cb,
                            void *opaque)
{
    struct xs_wait *w = xcalloc(1, sizeof(*w));
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};

    w->x = x;
    snprintf(w->id, sizeof(w->id), "%s", exec_id);
    w->cb = cb;
    w->opaque = opaque;
    w->timer = evtimer_new(x->base, on_wait_timeout, w);
    if (w->timer) {
        evtimer_add(w->timer, &tv);
    }
    struct xs_wait **head = &x->waits[bucket_of(w->id)];
    w->next = *head;
    if (*head) {
        (*head)->prev = w;
    }
    *head = w;
    x->nwaits++;
    return w;
}

void xs_wait_free(struct xs_wait *w)
{
    if (!w) {
        return;
    }
    struct xs *x = w->x;
    if (w->prev) {
        w->prev->next = w->next;
    } else {
        x->waits[bucket_of(w->id)] = w->next;
    }
    if (w->next) {
        w->next->prev = w->prev;
    }
    x->nwaits--;
    if (w->timer) {
        event_free(w->timer);
    }
    xfree(w);
}

void xs_expire_all(struct xs *x)
{
    for (size_t b = 0; x && b < XS_WAIT_BUCKETS; b++) {
        while (x->waits[b]) {
            struct xs_wait *w = x->waits[b];
            xs_end_fn cb = w->cb;
            void *opaque = w->opaque;
            xs_wait_free(w);
            cb(opaque, NULL);
        }
    }
}

size_t xs_waiting(const struct xs *x)
{
    return x ? x->nwaits : 0;
}

void xs_set_flows(struct xs *x, const struct flow_set *fs)
{
    x->fs = fs;
}

/* ==== Set-up ==== */

static void on_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    (void)rk;
    enum log_level lvl = level <= 3 ? LOG_ERROR : level <= 4 ? LOG_WARN : LOG_DEBUG;
    log_kv(lvl, "kafka (execution states)", "facility", fac, "detail", buf, NULL);
}

/*
 * The group under which replicas record how far they applied the state topic. It never joins or
 * rebalances (assign() only); it exists so that events published while every replica was down
 * still get their stopAfter applied by the first replica back.
 */
#define XS_GROUP "webhook-bridge-execution-states"

static rd_kafka_conf_t *make_conf(const struct cfg *cfg, const char *bootstrap, bool consumer,
                                  char *err, size_t errsz)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    /*
     * Offsets are committed by hand, for the state topic only (xs_commit); the trigger-state
     * topic is read from its beginning at every start. Records are written like the bridge's messages:
     * acknowledged by every in-sync replica.
     */
    const char *const consumer_props[][2] = {
        {"group.id", XS_GROUP},
        {"enable.auto.commit", "false"},
        {"enable.auto.offset.store", "false"},
        /* No group membership (assign() only), but rd_kafka_destroy waits this long for an
         * unreachable coordinator (librdkafka 2.0.2: 45 s by default, so a stop with Kafka down
         * outlived every orchestrator's grace period). 6 s is the brokers' smallest default. */
        {"session.timeout.ms", "6000"},
        {"allow.auto.create.topics", "true"},
    };
    const char *const producer_props[][2] = {
        {"acks", "all"},
        {"enable.idempotence", "true"},
        {"linger.ms", "5"},
        {"message.timeout.ms", "30000"},
    };
    const char *const(*props)[2] = consumer ? consumer_props : producer_props;
    size_t nprops = consumer ? sizeof(consumer_props) / sizeof(consumer_props[0])
                             : sizeof(producer_props) / sizeof(producer_props[0]);

    rd_kafka_conf_set_log_cb(conf, on_log);
    for (size_t i = 0; i < cfg->kafka.nproperties; i++) {
        /* The producer's tuning may not apply to a consumer: such properties are skipped. */
        rd_kafka_conf_set(conf, cfg->kafka.properties[i].name, cfg->kafka.properties[i].value,
                          err, errsz);
    }
    if (rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap, err, errsz) != RD_KAFKA_CONF_OK) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    for (size_t i = 0; i < nprops; i++) {
        if (rd_kafka_conf_set(conf, props[i][0], props[i][1], err, errsz) != RD_KAFKA_CONF_OK) {
            rd_kafka_conf_destroy(conf);
            return NULL;
        }
    }
    if (!consumer) {
        rd_kafka_conf_set_dr_msg_cb(conf, on_record_delivered);
    }
    return conf;
}

/* rd_kafka_new takes conf only on success. */
static rd_kafka_t *new_client(const struct cfg *cfg, const char *bootstrap, bool consumer,
                              char *err, size_t errsz)
{
    rd_kafka_conf_t *conf = make_conf(cfg, bootstrap, consumer, err, errsz);
    rd_kafka_t *rk = conf ? rd_kafka_new(consumer ? RD_KAFKA_CONSUMER : RD_KAFKA_PRODUCER, conf,
                                         err, errsz)
                          : NULL;
    if (conf && !rk) {
        rd_kafka_conf_destroy(conf);
    }
    return rk;
}

struct xs *xs_new(const struct cfg *cfg, const char *bootstrap, struct event_base *base,
                  char *err, size_t errsz)
{
    struct xs *x = xcalloc(1, sizeof(*x));
    int rc = -EIO;

    x->cfg = cfg;
    x->base = base;
    x->pipefd[0] = x->pipefd[1] = -1;
    x->embedded = bootstrap != NULL;
    bootstrap = bootstrap ? bootstrap : cfg->kafka.bootstrap_servers;
    x->rk = new_client(cfg, bootstrap, true, err, errsz);
    x->rkp = x->rk ? new_client(cfg, bootstrap, false, err, errsz) : NULL;
    if (!x->rkp) {
        goto out;
    }
    rd_kafka_poll_set_consumer(x->rk);
    x->q = rd_kafka_queue_get_consumer(x->rk);
    if (!x->q || pipe2(x->pipefd, O_NONBLOCK | O_CLOEXEC) < 0) {
        snprintf(err, errsz, "consumer queue or pipe: %s", strerror(errno));
        goto out;
    }
    rd_kafka_queue_io_event_enable(x->q, x->pipefd[1], "1", 1);
    x->ev_read = event_new(base, x->pipefd[0], EV_READ | EV_PERSIST, on_readable, x);
    x->ev_tick = event_new(base, -1, EV_PERSIST, on_tick, x);
    if (!x->ev_read || !x->ev_tick) {
        snprintf(err, errsz, "cannot create events");
        goto out;
    }
    rc = 0;
out:
    if (rc < 0) {
        xs_free(x);
        x = NULL;
    }
    return x;
}

/* Partitions of topic; waits for the metadata (the mock cluster creates the topic on asking). */
static int partitions(struct xs *x, const char *topic, long long deadline_us, char *err,
                      size_t errsz)
{
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(x->rk, topic, NULL);
    int n = -ETIMEDOUT;

    while (rkt && util_now_us() < deadline_us) {
        const struct rd_kafka_metadata *md = NULL;
        rd_kafka_resp_err_t kerr = rd_kafka_metadata(x->rk, 0, rkt, &md, 2000);
        if (!kerr && md->topic_cnt == 1 && !md->topics[0].err && md->topics[0].partition_cnt > 0) {
            n = md->topics[0].partition_cnt;
        }
        if (md) {
            rd_kafka_metadata_destroy(md);
        }
        if (n > 0) {
            break;
        }
        usleep(100000);
    }
    if (rkt) {
        rd_kafka_topic_destroy(rkt);
    }
    if (n < 0) {
        snprintf(err, errsz, "no metadata for topic %s", topic);
    }
    return n;
}

/* Where the first read of the trigger-state topic must get to, per partition. */
struct goal {
    int64_t high;
    bool done;
};

static bool all_done(const struct goal *g, int n)
{
    for (int i = 0; i < n; i++) {
        if (!g[i].done) {
            return false;
        }
    }
    return true;
}

/* Reads until every trigger-state partition reached its goal; state events are served too. */
static int read_to_goals(struct xs *x, struct goal *g, int n, long long deadline_us, char *err,
                         size_t errsz)
{
    while (!all_done(g, n)) {
        if (util_now_us() >= deadline_us) {
            snprintf(err, errsz, "timed out reading %s", x->cfg->kafka.triggers_topic);
            return -ETIMEDOUT;
        }
        rd_kafka_message_t *rkm = rd_kafka_consume_queue(x->q, 100);
        if (!rkm) {
            continue;
        }
        on_message(x, rkm);
        if (!rkm->err && rkm->partition >= 0 && rkm->partition < n &&
            strcmp(rd_kafka_topic_name(rkm->rkt), x->cfg->kafka.triggers_topic) == 0 &&
            rkm->offset + 1 >= g[rkm->partition].high) {
            g[rkm->partition].done = true;
        }
        rd_kafka_message_destroy(rkm);
    }
    return 0;
}

/*
 * Where to start in the state topic: where the replicas had got to (the group's committed
 * offsets), so that stopAfter also applies to executions that ended while every replica was down;
 * the end for partitions with no committed offset (the first start). Waits do not need older
 * events: an execution that ended before this replica started has no one waiting here.
 */
static int state_offsets(struct xs *x, const char *st, int n, char *err, size_t errsz)
{
    x->state_parts = rd_kafka_topic_partition_list_new(n);
    for (int p = 0; p < n; p++) {
        rd_kafka_topic_partition_list_add(x->state_parts, st, p);
    }
    rd_kafka_resp_err_t kerr = rd_kafka_committed(x->rk, x->state_parts, 10000);
    if (kerr) {
        snprintf(err, errsz, "committed offsets of %s: %s", st, rd_kafka_err2str(kerr));
        return -EIO;
    }
    /*
     * No committed offset (the first start): the end, as an explicit offset so that it can be
     * committed at once; events published after it then survive a stop of every replica.
     */
    x->state_start = xcalloc((size_t)n, sizeof(*x->state_start));
    x->state_assigned = false;
    for (int p = 0; p < n; p++) {
        rd_kafka_topic_partition_t *tp = &x->state_parts->elems[p];
        int64_t lo = 0, hi = 0;
        if (tp->err || tp->offset < 0) {
            kerr = rd_kafka_query_watermark_offsets(x->rk, st, p, &lo, &hi, 5000);
            if (kerr) {
                snprintf(err, errsz, "watermarks of %s [%d]: %s", st, p, rd_kafka_err2str(kerr));
                return -EIO;
            }
            tp->offset = hi;
        }
        x->state_start[p] = tp->offset;
    }
    return 0;
}

int xs_load(struct xs *x, int timeout_ms, char *err, size_t errsz)
{
    const char *tt = x->cfg->kafka.triggers_topic, *st = x->cfg->kafka.state_topic;
    long long deadline = util_now_us() + (long long)timeout_ms * 1000;
    rd_kafka_topic_partition_list_t *parts = NULL;
    struct goal *g = NULL;
    int rc = -EIO;

    int nt = partitions(x, tt, deadline, err, errsz);
    int ns = nt > 0 ? partitions(x, st, deadline, err, errsz) : -ETIMEDOUT;
    if (nt < 0 || ns < 0) {
        rc = -ETIMEDOUT;
        goto out;
    }
    g = xcalloc((size_t)nt, sizeof(*g));
    parts = rd_kafka_topic_partition_list_new(nt + ns);
    for (int p = 0; p < nt; p++) {
        int64_t lo = 0, hi = 0;
        rd_kafka_resp_err_t kerr = rd_kafka_query_watermark_offsets(x->rk, tt, p, &lo, &hi, 5000);
        if (kerr) {
            snprintf(err, errsz, "watermarks of %s [%d]: %s", tt, p, rd_kafka_err2str(kerr));
            goto out;
        }
        g[p].high = hi;
        g[p].done = hi <= lo;
        rd_kafka_topic_partition_list_add(parts, tt, p)->offset = RD_KAFKA_OFFSET_BEGINNING;
    }
    rd_kafka_resp_err_t kerr = rd_kafka_assign(x->rk, parts);
    if (kerr) {
        snprintf(err, errsz, "assign: %s", rd_kafka_err2str(kerr));
        goto out;
    }
    rc = read_to_goals(x, g, nt, deadline, err, errsz);
    if (rc < 0) {
        goto out;
    }
    /*
     * The state topic only once the disabled set is complete: an old event read again must meet
     * the record it already produced, or the enable that came after it.
     */
    rc = state_offsets(x, st, ns, err, errsz);
    if (rc < 0) {
        goto out;
    }
    rc = -EIO;
    rd_kafka_error_t *kerror = rd_kafka_incremental_assign(x->rk, x->state_parts);
    if (kerror) {
        snprintf(err, errsz, "assign %s: %s", st, rd_kafka_error_string(kerror));
        rd_kafka_error_destroy(kerror);
        goto out;
    }
    x->state_assigned = true;
    struct timeval tick = {1, 0};
    if (event_add(x->ev_read, NULL) < 0 || event_add(x->ev_tick, &tick) < 0) {
        snprintf(err, errsz, "cannot watch the consumer queue");
        rc = -EIO;
        goto out;
    }
    /* Records that arrived while the loop was not running yet. */
    event_active(x->ev_read, EV_READ, 0);
    char n[32];
    snprintf(n, sizeof(n), "%zu", x->ndisabled);
    log_kv(LOG_INFO, "trigger states loaded", "topic", tt, "disabled", n, "state_topic", st, NULL);
    rc = 0;
out:
    if (parts) {
        rd_kafka_topic_partition_list_destroy(parts);
    }
    xfree(g);
    return rc;
}

void xs_free(struct xs *x)
{
    if (!x) {
        return;
    }
    for (size_t b = 0; b < XS_WAIT_BUCKETS; b++) {
        while (x->waits[b]) {
            xs_wait_free(x->waits[b]);
        }
    }
    if (x->rkp) {
        rd_kafka_flush(x->rkp, XS_FLUSH_MS);
        rd_kafka_destroy(x->rkp);
    }
    if (x->q) {
        rd_kafka_queue_io_event_enable(x->q, -1, NULL, 0);
        rd_kafka_queue_destroy(x->q);
    }
    /* The embedded cluster went with the publisher (main frees it first): a commit would wait for
     * it in vain, and its offsets die with the process anyway. */
    if (x->rk && x->state_parts && !x->embedded) {
        commit_final(x);
    }
    if (x->state_parts) {
        rd_kafka_topic_partition_list_destroy(x->state_parts);
    }
    xfree(x->state_start);
    /* No consumer close: with assign() only and manual commits it has nothing to do but wait for
     * the coordinator, which may be gone. */
    if (x->rk) {
        rd_kafka_destroy_flags(x->rk, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
    }
    if (x->ev_read) {
        event_free(x->ev_read);
    }
    if (x->ev_tick) {
        event_free(x->ev_tick);
    }
    for (int i = 0; i < 2; i++) {
        if (x->pipefd[i] >= 0) {
            close(x->pipefd[i]);
        }
    }
    for (size_t i = 0; i < x->ndis; i++) {
        dis_clear(&x->dis[i]);
    }
    xfree(x->dis);
    xfree(x);
}
