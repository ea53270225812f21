/*
 * lag.c: consumer lag, computed in a thread of its own with a Kafka client of its own (blocking
 * metadata, watermark and offset queries are fine there), published to the renderers under a
 * mutex. Never touches the event loop or the producer.
 */
#include "lag.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <librdkafka/rdkafka.h>

#include "log.h"
#include "metrics.h"

#define QUERY_TIMEOUT_MS 5000

struct part {
    int32_t id;
    int64_t low, high;
    int64_t committed; /* -1: the group has no commit on this partition */
    int64_t lag;
};

struct result {
    char *topic;
    char *group;
    char *error; /* NULL when the offsets were read */
    int64_t lag;
    struct part *parts;
    size_t nparts;
};

struct target {
    char *topic;
    char **groups;
    size_t ngroups;
};

struct lag {
    rd_kafka_t *rk;
    pthread_t thread;
    bool started;
    pthread_mutex_t mu;
    pthread_cond_t cond;
    bool stop;
    long interval_ms;
    /* under mu */
    struct target *targets;
    size_t ntargets;
    struct result *results;
    size_t nresults;
    double refreshed_at; /* Unix time; 0: never */
};

/* ==== Results ==== */

static void results_free(struct result *r, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        xfree(r[i].topic);
        xfree(r[i].group);
        xfree(r[i].error);
        xfree(r[i].parts);
    }
    xfree(r);
}

static void targets_free(struct target *t, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        xfree(t[i].topic);
        for (size_t g = 0; g < t[i].ngroups; g++) {
            xfree(t[i].groups[g]);
        }
        xfree(t[i].groups);
    }
    xfree(t);
}

static struct target *targets_dup(const struct lag_target *t, size_t n)
{
    struct target *c = xcalloc(n ? n : 1, sizeof(*c));
    for (size_t i = 0; i < n; i++) {
        c[i].topic = xstrdup(t[i].topic);
        c[i].groups = xcalloc(t[i].ngroups ? t[i].ngroups : 1, sizeof(char *));
        for (size_t g = 0; g < t[i].ngroups; g++) {
            c[i].groups[g] = xstrdup(t[i].groups[g]);
        }
        c[i].ngroups = t[i].ngroups;
    }
    return c;
}

/* ==== One refresh (lag thread) ==== */

/*
 * Each query may wait QUERY_TIMEOUT_MS for an absent broker; checking between queries keeps a
 * shutdown from waiting for a whole refresh of many topics.
 */
static bool stopping(struct lag *l)
{
    pthread_mutex_lock(&l->mu);
    bool stop = l->stop;
    pthread_mutex_unlock(&l->mu);
    return stop;
}

/* The partitions of topic with their watermarks; nparts 0 when the topic does not exist yet. */
static int topic_parts(struct lag *l, const rd_kafka_metadata_t *md, const char *topic,
                       struct part **out, size_t *nout, char *err, size_t errsz)
{
    *out = NULL;
    *nout = 0;
    for (int i = 0; i < md->topic_cnt; i++) {
        const rd_kafka_metadata_topic_t *t = &md->topics[i];
        if (strcmp(t->topic, topic) != 0 || t->err) {
            continue;
        }
        struct part *p = xcalloc(t->partition_cnt ? (size_t)t->partition_cnt : 1, sizeof(*p));
        for (int k = 0; k < t->partition_cnt; k++) {
            if (stopping(l)) {
                snprintf(err, errsz, "stopped");
                xfree(p);
                return -ECANCELED;
            }
            p[k].id = t->partitions[k].id;
            rd_kafka_resp_err_t e = rd_kafka_query_watermark_offsets(
                l->rk, topic, p[k].id, &p[k].low, &p[k].high, QUERY_TIMEOUT_MS);
            if (e) {
                snprintf(err, errsz, "watermarks of %s[%d]: %s", topic, p[k].id,
                         rd_kafka_err2str(e));
                xfree(p);
                return -EIO;
            }
        }
        *out = p;
        *nout = (size_t)t->partition_cnt;
        return 0;
    }
    return 0;
}

/* The group's committed offsets on the partitions, into parts[].committed. */
static int group_offsets(struct lag *l, const char *group, const char *topic, struct part *parts,
                         size_t nparts, char *err, size_t errsz)
{
    int rc = -EIO;
    rd_kafka_queue_t *q = rd_kafka_queue_new(l->rk);
    rd_kafka_topic_partition_list_t *tpl = rd_kafka_topic_partition_list_new((int)nparts);
    rd_kafka_event_t *ev = NULL;
    for (size_t i = 0; i < nparts; i++) {
        rd_kafka_topic_partition_list_add(tpl, topic, parts[i].id);
    }
    rd_kafka_ListConsumerGroupOffsets_t *req = rd_kafka_ListConsumerGroupOffsets_new(group, tpl);
    rd_kafka_ListConsumerGroupOffsets(l->rk, &req, 1, NULL, q);
    rd_kafka_ListConsumerGroupOffsets_destroy(req);
    ev = rd_kafka_queue_poll(q, QUERY_TIMEOUT_MS * 2);
    if (!ev) {
        snprintf(err, errsz, "committed offsets of group %s: timed out", group);
        goto out;
    }
    if (rd_kafka_event_error(ev)) {
        snprintf(err, errsz, "committed offsets of group %s: %s", group,
                 rd_kafka_event_error_string(ev));
        goto out;
    }
    size_t ng = 0;
    const rd_kafka_group_result_t **gr = rd_kafka_ListConsumerGroupOffsets_result_groups(
        rd_kafka_event_ListConsumerGroupOffsets_result(ev), &ng);
    if (ng != 1 || rd_kafka_group_result_error(gr[0])) {
        snprintf(err, errsz, "committed offsets of group %s: %s", group,
                 ng == 1 ? rd_kafka_error_string(rd_kafka_group_result_error(gr[0])) : "no result");
        goto out;
    }
    const rd_kafka_topic_partition_list_t *got = rd_kafka_group_result_partitions(gr[0]);
    for (size_t i = 0; i < nparts; i++) {
        parts[i].committed = -1;
        for (int k = 0; got && k < got->cnt; k++) {
            const rd_kafka_topic_partition_t *tp = &got->elems[k];
            if (tp->partition == parts[i].id && strcmp(tp->topic, topic) == 0 && !tp->err &&
                tp->offset >= 0) {
                parts[i].committed = tp->offset;
            }
        }
    }
    rc = 0;
out:
    if (ev) {
        rd_kafka_event_destroy(ev);
    }
    rd_kafka_topic_partition_list_destroy(tpl);
    rd_kafka_queue_destroy(q);
    return rc;
}

/* A partition without a commit counts from its low watermark: what a new group would read. */
static void compute_lag(struct result *r)
{
    r->lag = 0;
    for (size_t i = 0; i < r->nparts; i++) {
        struct part *p = &r->parts[i];
        int64_t from = p->committed >= 0 ? p->committed : p->low;
        p->lag = p->high > from ? p->high - from : 0;
        r->lag += p->lag;
    }
}

static void refresh_target(struct lag *l, const rd_kafka_metadata_t *md, const struct target *t,
                           struct result *out)
{
    char err[512] = "";
    struct part *parts = NULL;
    size_t nparts = 0;
    int rc = md ? topic_parts(l, md, t->topic, &parts, &nparts, err, sizeof(err)) : -EIO;
    if (!md) {
        snprintf(err, sizeof(err), "metadata: no answer from the cluster");
    }
    for (size_t g = 0; g < t->ngroups; g++) {
        struct result *r = &out[g];
        r->topic = xstrdup(t->topic);
        r->group = xstrdup(t->groups[g]);
        char gerr[512] = "";
        if (rc == 0 && nparts > 0 && stopping(l)) {
            r->error = xstrdup("stopped");
        } else if (rc == 0 && nparts > 0) {
            r->parts = xmalloc(nparts * sizeof(*parts));
            memcpy(r->parts, parts, nparts * sizeof(*parts));
            r->nparts = nparts;
            if (group_offsets(l, t->groups[g], t->topic, r->parts, nparts, gerr, sizeof(gerr)) <
                0) {
                r->error = xstrdup(gerr);
            }
        } else if (rc < 0) {
            r->error = xstrdup(err);
        }
        compute_lag(r);
    }
    xfree(parts);
}

static int cmp_result(const void *a, const void *b)
{
    const struct result *x = a, *y = b;
    int c = strcmp(x->topic, y->topic);
    return c ? c : strcmp(x->group, y->group);
}

static void refresh(struct lag *l)
{
    pthread_mutex_lock(&l->mu);
    size_t nt = l->ntargets;
    struct target *t = xcalloc(nt ? nt : 1, sizeof(*t));
    size_t nres = 0;
    for (size_t i = 0; i < nt; i++) {
        struct lag_target lt = {l->targets[i].topic, (const char *const *)l->targets[i].groups,
                                l->targets[i].ngroups};
        struct target *c = targets_dup(&lt, 1);
        t[i] = *c;
        xfree(c);
        nres += t[i].ngroups;
    }
    pthread_mutex_unlock(&l->mu);

    const rd_kafka_metadata_t *md = NULL;
    /* All topics, not one: asking for a missing topic by name could auto-create it. */
    if (nres > 0 && rd_kafka_metadata(l->rk, 1, NULL, &md, QUERY_TIMEOUT_MS)) {
        md = NULL;
    }
    struct result *res = xcalloc(nres ? nres : 1, sizeof(*res));
    size_t k = 0;
    for (size_t i = 0; i < nt; i++) {
        refresh_target(l, md, &t[i], res + k);
        k += t[i].ngroups;
    }
    qsort(res, nres, sizeof(*res), cmp_result);
    if (md) {
        rd_kafka_metadata_destroy(md);
    }
    targets_free(t, nt);

    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    pthread_mutex_lock(&l->mu);
    results_free(l->results, l->nresults);
    l->results = res;
    l->nresults = nres;
    l->refreshed_at = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
    pthread_mutex_unlock(&l->mu);
}

static void *run(void *arg)
{
    struct lag *l = arg;
    pthread_mutex_lock(&l->mu);
    while (!l->stop) {
        pthread_mutex_unlock(&l->mu);
        refresh(l);
        pthread_mutex_lock(&l->mu);
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += l->interval_ms / 1000;
        until.tv_nsec += (l->interval_ms % 1000) * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        while (!l->stop && pthread_cond_timedwait(&l->cond, &l->mu, &until) != ETIMEDOUT) {
        }
    }
    pthread_mutex_unlock(&l->mu);
    return NULL;
}

/* ==== Set-up ==== */

/* librdkafka's threads log through here; log.c writes whole lines, so it is safe. */
static void on_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    (void)rk;
    log_kv(level <= 3 ? LOG_WARN : LOG_DEBUG, "kafka (lag)", "facility", fac, "detail", buf, NULL);
}

static rd_kafka_t *new_client(const struct cfg *cfg, const char *bootstrap, char *err, size_t errsz)
{
    char rkerr[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set_log_cb(conf, on_log);
    const char *props[][2] = {
        {"bootstrap.servers", bootstrap},
        {"client.id", "webhook-bridge-lag"},
        {"log.connection.close", "false"},
        {"reconnect.backoff.max.ms", "1000"},
    };
    for (size_t i = 0; i < ARRAY_LEN(props); i++) {
        if (rd_kafka_conf_set(conf, props[i][0], props[i][1], rkerr, sizeof(rkerr))) {
            goto fail;
        }
    }
    /* Security settings and the like are the producer's too; a producer handle accepts them. */
    for (size_t i = 0; i < cfg->kafka.nproperties; i++) {
        const struct cfg_prop *p = &cfg->kafka.properties[i];
        if (rd_kafka_conf_set(conf, p->name, p->value, rkerr, sizeof(rkerr))) {
            goto fail;
        }
    }
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, rkerr, sizeof(rkerr));
    if (!rk) {
        goto fail;
    }
    return rk;
fail:
    rd_kafka_conf_destroy(conf);
    snprintf(err, errsz, "lag client: %s", rkerr);
    return NULL;
}

struct lag *lag_new(const struct cfg *cfg, const char *bootstrap, char *err, size_t errsz)
{
    struct lag *l = xcalloc(1, sizeof(*l));
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->cond, NULL);
    l->interval_ms = cfg->lag.interval_ms;
    l->rk = new_client(cfg, bootstrap, err, errsz);
    if (!l->rk) {
        goto out;
    }
    if (pthread_create(&l->thread, NULL, run, l) != 0) {
        snprintf(err, errsz, "lag: cannot start the refresh thread");
        goto out;
    }
    l->started = true;
    return l;
out:
    lag_free(l);
    return NULL;
}

void lag_set_targets(struct lag *l, const struct lag_target *t, size_t n)
{
    struct target *c = targets_dup(t, n);
    pthread_mutex_lock(&l->mu);
    targets_free(l->targets, l->ntargets);
    l->targets = c;
    l->ntargets = n;
    pthread_cond_signal(&l->cond); /* refresh now, not at the end of the interval */
    pthread_mutex_unlock(&l->mu);
}

void lag_free(struct lag *l)
{
    if (!l) {
        return;
    }
    if (l->started) {
        pthread_mutex_lock(&l->mu);
        l->stop = true;
        pthread_cond_signal(&l->cond);
        pthread_mutex_unlock(&l->mu);
        pthread_join(l->thread, NULL);
    }
    if (l->rk) {
        rd_kafka_destroy(l->rk);
    }
    targets_free(l->targets, l->ntargets);
    results_free(l->results, l->nresults);
    pthread_cond_destroy(&l->cond);
    pthread_mutex_destroy(&l->mu);
    xfree(l);
}

/* ==== Rendering (any thread) ==== */

static void topic_group_labels(struct sbuf *b, const char *name, const struct result *r)
{
    sbuf_appendf(b, "webhook_bridge_%s{topic=", name);
    metrics_label_value(b, r->topic);
    sbuf_append_cstr(b, ",group=");
    metrics_label_value(b, r->group);
}

void lag_render_prom(struct lag *l, struct sbuf *b)
{
    sbuf_append_cstr(b, "# HELP webhook_bridge_consumer_lag Messages in the topic not yet "
                        "committed by the group (end offsets minus committed offsets).\n"
                        "# TYPE webhook_bridge_consumer_lag gauge\n");
    pthread_mutex_lock(&l->mu);
    for (size_t i = 0; i < l->nresults; i++) {
        const struct result *r = &l->results[i];
        if (!r->error) {
            topic_group_labels(b, "consumer_lag", r);
            sbuf_appendf(b, "} %lld\n", (long long)r->lag);
        }
    }
    sbuf_append_cstr(b, "# HELP webhook_bridge_consumer_lag_partition Consumer lag of one "
                        "partition.\n# TYPE webhook_bridge_consumer_lag_partition gauge\n");
    for (size_t i = 0; i < l->nresults; i++) {
        const struct result *r = &l->results[i];
        for (size_t k = 0; !r->error && k < r->nparts; k++) {
            topic_group_labels(b, "consumer_lag_partition", r);
            sbuf_appendf(b, ",partition=\"%d\"} %lld\n", (int)r->parts[k].id,
                         (long long)r->parts[k].lag);
        }
    }
    sbuf_appendf(b,
                 "# HELP webhook_bridge_consumer_lag_refresh_timestamp_seconds Unix time of the "
                 "last lag refresh; 0 before the first.\n"
                 "# TYPE webhook_bridge_consumer_lag_refresh_timestamp_seconds gauge\n"
                 "webhook_bridge_consumer_lag_refresh_timestamp_seconds %.3f\n",
                 l->refreshed_at);
    pthread_mutex_unlock(&l->mu);
}

static json_t *result_json(const struct result *r)
{
    json_t *parts = json_array();
    for (size_t k = 0; k < r->nparts; k++) {
        const struct part *p = &r->parts[k];
        json_array_append_new(
            parts, json_pack("{s:i, s:I, s:I, s:o, s:I}", "partition", (int)p->id, "low",
                             (json_int_t)p->low, "high", (json_int_t)p->high, "committed",
                             p->committed >= 0 ? json_integer(p->committed) : json_null(), "lag",
                             (json_int_t)p->lag));
    }
    return json_pack("{s:s, s:s, s:o, s:o, s:o}", "topic", r->topic, "group", r->group, "lag",
                     r->error ? json_null() : json_integer(r->lag), "error",
                     r->error ? json_string(r->error) : json_null(), "partitions", parts);
}

void lag_render_json(struct lag *l, struct sbuf *b)
{
    json_t *list = json_array();
    pthread_mutex_lock(&l->mu);
    for (size_t i = 0; i < l->nresults; i++) {
        json_array_append_new(list, result_json(&l->results[i]));
    }
    double at = l->refreshed_at;
    pthread_mutex_unlock(&l->mu);
    json_t *when = json_null();
    if (at > 0) {
        char ts[32];
        time_t sec = (time_t)at;
        struct tm tm;
        gmtime_r(&sec, &tm);
        strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", &tm);
        when = json_string(ts);
    }
    json_t *root = json_pack("{s:I, s:o, s:o}", "interval_ms", (json_int_t)l->interval_ms,
                             "refreshed_at", when, "lag", list);
    char *text = json_dumps(root, JSON_COMPACT);
    if (text) {
        sbuf_append_cstr(b, text);
        free(text);
    }
    json_decref(root);
}
