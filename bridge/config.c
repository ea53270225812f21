/*
 * config.c: the key table (every configuration key with its type, bounds, default and meaning)
 * and the loader that maps a yml tree onto struct cfg through it. No sockets, no Kafka, no flows.
 */
#include "config.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"
#include "util.h"
#include "yaml.h"

/* ==== The key table ==== */

enum key_type { KEY_STR, KEY_INT, KEY_PROPS, KEY_TOPICS, KEY_LIST, KEY_FLOW_GROUPS };

/* Checks a string value: NULL when it is fine, else the rest of "'key' must be …". */
typedef const char *(*key_check_fn)(const char *value);

struct key {
    const char *name; /* dotted path, exactly as written nested in YAML */
    enum key_type type;
    size_t off; /* offsetof the member in struct cfg */
    const char *def;
    long min, max; /* KEY_INT only */
    key_check_fn check;
    bool live; /* a reload applies it; else it needs a restart (cfg_keep_restart_keys) */
    const char *desc;
};

static const char *check_listen(const char *v);
static const char *check_admin_listen(const char *v);
static const char *check_nonempty(const char *v);
static const char *check_tenant(const char *v);
static const char *check_log_level(const char *v);
static const char *check_topic_template(const char *v);
static const char *check_topic(const char *v);

/* clang-format off */
#define STR_KEY(n, m, d, chk, live, desc) \
    {n, KEY_STR, offsetof(struct cfg, m), d, 0, 0, chk, live, desc}
#define INT_KEY(n, m, d, lo, hi, live, desc) \
    {n, KEY_INT, offsetof(struct cfg, m), d, lo, hi, NULL, live, desc}
#define LIVE true
#define RESTART false
/* clang-format on */

/*
 * The documentation of every key. configs/bridge.yaml repeats it (config_test.c keeps the two in
 * sync) and cfg_print_reference() prints it.
 *
 * LIVE keys take effect on a reload (SIGHUP, or a change in flows_dir). RESTART keys are bound
 * into something built once at start: the listening socket (listen), the route digests and every
 * 200 body (tenant), the Kafka producer (kafka.bootstrap_servers, delivery_timeout_ms, properties,
 * and max_in_flight*, which size its queue). The limits on requests apply to connections opened
 * after the reload.
 *
 * limits.max_body_bytes defaults to 983040 (960 KiB), not 1 MiB: a body travels in one Kafka
 * message, librdkafka refuses messages above message.max.bytes (1000000 by default), and the
 * message also carries the headers, query parameters and envelope. 1000000 - 983040 leaves
 * 16960 bytes, about limits.max_header_bytes, for them.
 */
static const struct key keys[] = {
    STR_KEY("listen", listen, "127.0.0.1:8080", check_listen, RESTART,
            "address to serve webhooks on, HOST:PORT ([::1]:8080 for IPv6; port 0: any free port)"),
    STR_KEY("admin_listen", admin_listen, "127.0.0.1:8081", check_admin_listen, RESTART,
            "address of /metrics, /health, /ready and /lag, HOST:PORT; \"\" turns it off"),
    STR_KEY("flows_dir", flows_dir, "flows", check_nonempty, LIVE,
            "folder of Kestra flows (*.yml, *.yaml, recursively); relative to this file's folder"),
    STR_KEY("tenant", tenant, "main", check_tenant, RESTART,
            "Kestra tenant, as in /api/v1/{tenant}/executions/webhook/..., and {tenant} in topics"),
    STR_KEY("log_level", log_level, "info", check_log_level, LIVE, "debug, info, warn or error"),
    INT_KEY("kestra_compat", kestra_compat, "1", 1, 2, LIVE,
            "1: Kestra 0.20-1.x expression rules; 2: Kestra 2.0 rules (?? precedence, nulls, <)"),
    STR_KEY(
        "kafka.bootstrap_servers", kafka.bootstrap_servers, "", NULL, RESTART,
        "brokers, host:port[,host:port...]; \"\" or \"embedded\" runs an in-process mock cluster"),
    STR_KEY("kafka.topic_template", kafka.topic_template, "webhooks.{namespace}.{flowId}",
            check_topic_template, LIVE,
            "topic of each flow; placeholders {namespace}, {flowId}, {tenant}"),
    INT_KEY("kafka.delivery_timeout_ms", kafka.delivery_timeout_ms, "10000", 1, 300000, RESTART,
            "how long librdkafka may try to deliver (message.timeout.ms); < request_timeout_ms"),
    STR_KEY("kafka.state_topic", kafka.state_topic, "webhook-bridge.execution-states", check_topic,
            RESTART,
            "execution states from the executors (proto/SPEC-STATE.md), read by every replica"),
    STR_KEY("kafka.triggers_topic", kafka.triggers_topic, "webhook-bridge.trigger-states",
            check_topic, RESTART,
            "compacted topic of triggers disabled by stopAfter, read whole at start"),
    INT_KEY("kafka.thread_nice", kafka.thread_nice, "10", 0, 19, RESTART,
            "nice of librdkafka's broker threads, so a busy loop thread batches messages"),
    INT_KEY("kafka.sticky_ms", kafka.sticky_ms, "10", 0, 1000, RESTART,
            "how long a topic's messages go to the same partitions (ids drawn to hash there); 0: off"),
    {"kafka.properties", KEY_PROPS, offsetof(struct cfg, kafka.properties), "{}", 0, 0, NULL,
     RESTART,
     "librdkafka properties, passed as is; acks stays all (a 200 means all in-sync replicas)"},
    {"kafka.topics", KEY_TOPICS, offsetof(struct cfg, kafka.topics), "{}", 0, 0, NULL, LIVE,
     "topic overrides, \"namespace/flowId\": topic, taking precedence over topic_template"},
    INT_KEY("limits.max_body_bytes", limits.max_body_bytes, "983040", 0, 1073741824, LIVE,
            "largest request body; at most the producer's message.max.bytes (1000000)"),
    INT_KEY("limits.max_header_bytes", limits.max_header_bytes, "16384", 256, 1048576, LIVE,
            "all request headers together"),
    INT_KEY("limits.max_headers", limits.max_headers, "100", 1, 10000, LIVE,
            "number of request headers"),
    INT_KEY("limits.max_uri_bytes", limits.max_uri_bytes, "8192", 1024, 1048576, LIVE,
            "request URI, query string included"),
    INT_KEY("limits.max_in_flight", limits.max_in_flight, "10000", 1, 1000000, RESTART,
            "webhooks waiting for their Kafka acknowledgement; past it, 503 at once"),
    INT_KEY("limits.max_in_flight_bytes", limits.max_in_flight_bytes, "67108864", 1048576,
            4294967296L, RESTART,
            "bytes of messages waiting for their acknowledgement; past it, 503"),
    INT_KEY("limits.max_loop_delay_ms", limits.max_loop_delay_ms, "100", 0, 60000, LIVE,
            "event loop running this far behind: new requests get 503 before parsing; 0: off"),
    INT_KEY("limits.header_timeout_ms", limits.header_timeout_ms, "10000", 100, 3600000, LIVE,
            "a request head (and a new connection's first byte) must arrive within this; 408"),
    INT_KEY("limits.body_timeout_ms", limits.body_timeout_ms, "30000", 100, 3600000, LIVE,
            "a request body must arrive within this after its head; else 408"),
    INT_KEY("limits.idle_timeout_ms", limits.idle_timeout_ms, "75000", 100, 3600000, LIVE,
            "a kept-alive connection idle this long after its last answer is closed"),
    INT_KEY("limits.max_connections", limits.max_connections, "10000", 1, 1000000, LIVE,
            "open client connections; one more gets 503 with Retry-After and is closed"),
    INT_KEY("limits.request_timeout_ms", limits.request_timeout_ms, "30000", 100, 3600000, LIVE,
            "connection inactivity while reading or writing, and keep-alive idle time"),
    INT_KEY("limits.wait_timeout_ms", limits.wait_timeout_ms, "300000", 100, 3600000, LIVE,
            "wait: true: longest wait for the execution's end; then 504 with the execution id"),
    INT_KEY("reload.debounce_ms", reload.debounce_ms, "200", 0, 60000, LIVE,
            "quiet time after a change in flows_dir before reloading (editors write in steps)"),
    {"lag.groups", KEY_LIST, offsetof(struct cfg, lag.groups), "[]", 0, 0, NULL, LIVE,
     "consumer groups whose lag is watched on every flow's topic"},
    {"lag.flow_groups", KEY_FLOW_GROUPS, offsetof(struct cfg, lag.flow_groups), "{}", 0, 0, NULL,
     LIVE, "more groups for one flow's topic, \"namespace/flowId\": [group, ...]"},
    INT_KEY("lag.interval_ms", lag.interval_ms, "5000", 100, 3600000, RESTART,
            "how often consumer lag is refreshed"),
};

#define NKEYS ARRAY_LEN(keys)

/* librdkafka's default message.max.bytes, which bounds a body when the config does not set it. */
#define RDKAFKA_MESSAGE_MAX_BYTES 1000000L

static const struct key *key_find(const char *name)
{
    for (size_t i = 0; i < NKEYS; i++) {
        if (strcmp(keys[i].name, name) == 0) {
            return &keys[i];
        }
    }
    return NULL;
}

/* True when `path` is a section ("kafka"), a dotted prefix of some key. */
static bool is_section(const char *path)
{
    size_t n = strlen(path);
    for (size_t i = 0; i < NKEYS; i++) {
        if (strncmp(keys[i].name, path, n) == 0 && keys[i].name[n] == '.') {
            return true;
        }
    }
    return false;
}

static char **str_field(struct cfg *cfg, const struct key *k)
{
    return (char **)((char *)cfg + k->off);
}

static long *int_field(struct cfg *cfg, const struct key *k)
{
    return (long *)((char *)cfg + k->off);
}

/* Length of the section part of a dotted key name: 5 for "kafka.topics", 0 for "listen". */
static size_t section_len(const char *name)
{
    const char *dot = strrchr(name, '.');
    return dot ? (size_t)(dot - name) : 0;
}

/* ==== Value checks ==== */

static bool topic_char(char c)
{
    return isalnum((unsigned char)c) || c == '.' || c == '_' || c == '-';
}

bool cfg_topic_name_valid(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > 249 || strcmp(name, ".") == 0 || strcmp(name, "..") == 0) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (!topic_char(name[i]) || (unsigned char)name[i] >= 0x80) {
            return false;
        }
    }
    return true;
}

static const char *check_listen(const char *v)
{
    const char *colon = strrchr(v, ':');
    if (!colon || colon == v) {
        return "must be HOST:PORT, for example 127.0.0.1:8080";
    }
    if (v[0] != '[' && memchr(v, ':', (size_t)(colon - v))) {
        return "must put an IPv6 address in brackets, for example [::1]:8080";
    }
    const char *p = colon + 1;
    size_t digits = strspn(p, "0123456789");
    if (digits == 0 || digits > 5 || p[digits] != '\0' || atol(p) > 65535) {
        return "must end in a port from 0 to 65535";
    }
    return NULL;
}

static const char *check_admin_listen(const char *v)
{
    return v[0] ? check_listen(v) : NULL;
}

static const char *check_nonempty(const char *v)
{
    return v[0] ? NULL : "must not be empty";
}

/* Kestra's tenant ids; the tenant is a URL segment and may appear in topic names. */
static const char *check_tenant(const char *v)
{
    const char *msg = "must match ^[a-z0-9][a-z0-9_-]*$";
    if (!islower((unsigned char)v[0]) && !isdigit((unsigned char)v[0])) {
        return msg;
    }
    return v[strspn(v, "abcdefghijklmnopqrstuvwxyz0123456789_-")] ? msg : NULL;
}

static const char *check_log_level(const char *v)
{
    return log_level_parse(v) < 0 ? "must be one of debug, info, warn, error" : NULL;
}

/*
 * Namespaces, flow ids and tenants only hold topic-legal characters, so a template whose literal
 * parts are legal can only yield an illegal name by length; flow.c reports that per flow.
 */
static const char *check_topic(const char *v)
{
    return cfg_topic_name_valid(v) ? NULL
                                   : "must be a Kafka topic name: 1 to 249 of [A-Za-z0-9._-]";
}

static const char *check_topic_template(const char *v)
{
    static const char *const names[] = {"{namespace}", "{flowId}", "{tenant}"};
    if (!v[0]) {
        return "must not be empty";
    }
    for (const char *p = v; *p;) {
        if (*p != '{') {
            if (!topic_char(*p) || (unsigned char)*p >= 0x80) {
                return "may hold only [A-Za-z0-9._-] besides {namespace}, {flowId} and {tenant}";
            }
            p++;
            continue;
        }
        size_t i = 0;
        while (i < ARRAY_LEN(names) && strncmp(p, names[i], strlen(names[i])) != 0) {
            i++;
        }
        if (i == ARRAY_LEN(names)) {
            return "has an unknown placeholder; use {namespace}, {flowId} and {tenant}";
        }
        p += strlen(names[i]);
    }
    return NULL;
}

/*
 * Decimal only: YAML 1.1 octal and hex forms and "1_000" are more surprising than useful here.
 * Returns 0, -EINVAL when s is not an integer, -ERANGE when it is one too large for a long.
 */
static int parse_long(const char *s, long *out)
{
    const char *p = s + (s[0] == '-' || s[0] == '+');
    if (!isdigit((unsigned char)*p)) {
        return -EINVAL;
    }
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (*end != '\0') {
        return -EINVAL;
    }
    if (errno == ERANGE) {
        return -ERANGE;
    }
    *out = v;
    return 0;
}

/* ==== Loading ==== */

struct loader {
    struct cfg *cfg;
    const char *file;
    struct diag_list *dl;
};

static void note_pos(struct loader *ld, const struct key *k, const struct yml_node *n)
{
    ld->cfg->pos[k - keys].line = n->line;
    ld->cfg->pos[k - keys].col = n->col;
}

/* A non-null scalar without NUL bytes, or an error naming `what`. */
static const char *scalar_text(struct loader *ld, const struct yml_node *n, const char *what)
{
    if (!n || n->kind != YML_SCALAR || yml_is_null(n)) {
        diag_add(ld->dl, ld->file, n ? n->line : 0, n ? n->col : 0, "%s must be a string, not %s",
                 what, yml_kind_name(n));
        return NULL;
    }
    if (strlen(n->str) != n->len) {
        diag_add(ld->dl, ld->file, n->line, n->col, "%s must not contain a NUL character", what);
        return NULL;
    }
    return n->str;
}

static void set_str(struct loader *ld, const struct key *k, const struct yml_node *n)
{
    char what[80];
    snprintf(what, sizeof(what), "'%s'", k->name);
    const char *v = scalar_text(ld, n, what);
    if (!v) {
        return;
    }
    const char *why = k->check ? k->check(v) : NULL;
    if (why) {
        diag_add(ld->dl, ld->file, n->line, n->col, "'%s' %s", k->name, why);
        return;
    }
    cfg_set_str(str_field(ld->cfg, k), v);
}

static void set_int(struct loader *ld, const struct key *k, const struct yml_node *n)
{
    long v = 0;
    int rc = n->kind == YML_SCALAR && n->plain ? parse_long(n->str, &v) : -EINVAL;
    if (rc == -EINVAL) {
        diag_add(ld->dl, ld->file, n->line, n->col, "'%s' must be an integer", k->name);
        return;
    }
    if (rc == -ERANGE) {
        diag_add(ld->dl, ld->file, n->line, n->col, "'%s' must be between %ld and %ld", k->name,
                 k->min, k->max);
        return;
    }
    if (v < k->min || v > k->max) {
        diag_add(ld->dl, ld->file, n->line, n->col, "'%s' must be between %ld and %ld (got %ld)",
                 k->name, k->min, k->max, v);
        return;
    }
    *int_field(ld->cfg, k) = v;
}

static void set_props(struct loader *ld, const struct key *k, const struct yml_node *n)
{
    struct cfg *cfg = ld->cfg;
    if (n->kind != YML_MAP) {
        diag_add(ld->dl, ld->file, n->line, n->col, "'%s' must be a map, not %s", k->name,
                 yml_kind_name(n));
        return;
    }
    for (size_t i = 0; i < n->npairs; i++) {
        const struct yml_node *kn = n->pairs[i].key;
        const char *name = scalar_text(ld, kn, "a kafka.properties name");
        if (!name) {
            continue;
        }
        char what[128];
        snprintf(what, sizeof(what), "kafka.properties '%.64s'", name);
        const char *value = scalar_text(ld, n->pairs[i].value, what);
        if (!value) {
            continue;
        }
        cfg->kafka.properties =
            xrealloc(cfg->kafka.properties, (cfg->kafka.nproperties + 1) * sizeof(struct cfg_prop));
        struct cfg_prop *p = &cfg->kafka.properties[cfg->kafka.nproperties++];
        p->name = xstrdup(name);
        p->value = xstrdup(value);
        p->line = kn->line;
        p->col = kn->col;
    }
}

static bool flow_ref_valid(const char *ref)
{
    const char *slash = strchr(ref, '/');
    return slash && slash != ref && slash[1] && !strchr(slash + 1, '/');
}

/* One "namespace/flowId": value entry of a per-flow map (kafka.topics, lag.flow_groups). */
typedef void (*flow_entry_fn)(struct loader *ld, const char *ref, const struct yml_node *kn,
                              const struct yml_node *vn);

/*
 * Walks map n of key k: each entry named "namespace/flowId" goes to fn; a map of another kind or
 * a malformed name is reported at its position.
 */
static void each_flow_entry(struct loader *ld, const struct key *k, const struct yml_node *n,
                            flow_entry_fn fn)
{
    if (n->kind != YML_MAP) {
        diag_add(ld->dl, ld->file, n->line, n->col, "'%s' must be a map, not %s", k->name,
                 yml_kind_name(n));
        return;
    }
    char what[80];
    snprintf(what, sizeof(what), "a %s entry", k->name);
    for (size_t i = 0; i < n->npairs; i++) {
        const struct yml_node *kn = n->pairs[i].key;
        const char *ref = scalar_text(ld, kn, what);
        if (!ref) {
            continue;
        }
        if (!flow_ref_valid(ref)) {
            diag_add(ld->dl, ld->file, kn->line, kn->col,
                     "%s entries must be named \"namespace/flowId\"", k->name);
            continue;
        }
        fn(ld, ref, kn, n->pairs[i].value);
    }
}

static void add_topic(struct loader *ld, const char *ref, const struct yml_node *kn,
                      const struct yml_node *vn)
{
    struct cfg *cfg = ld->cfg;
    const char *topic = scalar_text(ld, vn, "a kafka.topics topic");
    if (!topic) {
        return;
    }
    if (!cfg_topic_name_valid(topic)) {
        diag_add(ld->dl, ld->file, vn->line, vn->col,
                 "'%.249s' is not a valid Kafka topic name (1 to 249 characters of "
                 "[A-Za-z0-9._-], not '.' or '..')",
                 topic);
        return;
    }
    cfg->kafka.topics =
        xrealloc(cfg->kafka.topics, (cfg->kafka.ntopics + 1) * sizeof(struct cfg_topic));
    struct cfg_topic *t = &cfg->kafka.topics[cfg->kafka.ntopics++];
    t->flow_ref = xstrdup(ref);
    t->topic = xstrdup(topic);
    t->line = kn->line;
    t->col = kn->col;
}

static void set_topics(struct loader *ld, const struct key *k, const struct yml_node *n)
{
    each_flow_entry(ld, k, n, add_topic);
}

/* A list of non-empty strings (consumer group names) into *out; false after an error. */
static bool load_groups(struct loader *ld, const char *what, const struct yml_node *n, char ***out,
                        size_t *nout)
{
    if (n->kind != YML_SEQ) {
        diag_add(ld->dl, ld->file, n->line, n->col, "%s must be a list, not %s", what,
                 yml_kind_name(n));
        return false;
    }
    for (size_t i = 0; i < n->nitems; i++) {
        const char *g = scalar_text(ld, n->items[i], "a consumer group name");
        if (!g) {
            continue;
        }
        if (!g[0]) {
            diag_add(ld->dl, ld->file, n->items[i]->line, n->items[i]->col,
                     "a consumer group name must not be empty");
            continue;
        }
        *out = xrealloc(*out, (*nout + 1) * sizeof(char *));
        (*out)[(*nout)++] = xstrdup(g);
    }
    return true;
}

static void set_list(struct loader *ld, const struct key *k, const struct yml_node *n)
{
    char what[80];
    snprintf(what, sizeof(what), "'%s'", k->name);
    load_groups(ld, what, n, &ld->cfg->lag.groups, &ld->cfg->lag.ngroups);
}

static void add_flow_groups(struct loader *ld, const char *ref, const struct yml_node *kn,
                            const struct yml_node *vn)
{
    struct cfg *cfg = ld->cfg;
    struct cfg_flow_groups fg = {xstrdup(ref), NULL, 0, kn->line, kn->col};
    char what[128];
    snprintf(what, sizeof(what), "lag.flow_groups '%.64s'", ref);
    load_groups(ld, what, vn, &fg.groups, &fg.ngroups);
    cfg->lag.flow_groups = xrealloc(cfg->lag.flow_groups, (cfg->lag.nflow_groups + 1) * sizeof(fg));
    cfg->lag.flow_groups[cfg->lag.nflow_groups++] = fg;
}

static void set_flow_groups(struct loader *ld, const struct key *k, const struct yml_node *n)
{
    each_flow_entry(ld, k, n, add_flow_groups);
}

static void set_key(struct loader *ld, const struct key *k, const struct yml_node *n)
{
    note_pos(ld, k, n);
    switch (k->type) {
    case KEY_STR:
        set_str(ld, k, n);
        break;
    case KEY_INT:
        set_int(ld, k, n);
        break;
    case KEY_PROPS:
        set_props(ld, k, n);
        break;
    case KEY_TOPICS:
        set_topics(ld, k, n);
        break;
    case KEY_LIST:
        set_list(ld, k, n);
        break;
    case KEY_FLOW_GROUPS:
        set_flow_groups(ld, k, n);
        break;
    }
}

/* ==== Unknown keys ==== */

/* Levenshtein distance of two short strings (callers keep both under 64 bytes). */
static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a);
    size_t lb = strlen(b);
    size_t row[64];
    for (size_t j = 0; j <= lb; j++) {
        row[j] = j;
    }
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j];
            size_t best = diag + (a[i - 1] != b[j - 1]);
            best = up + 1 < best ? up + 1 : best;
            best = row[j - 1] + 1 < best ? row[j - 1] + 1 : best;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

/* The key or section closest to a misspelt path, when it is close enough to be the intent. */
static bool suggest(const char *path, char *out, size_t outsz)
{
    size_t best_d = 3;
    if (strlen(path) >= 63) {
        return false;
    }
    for (size_t i = 0; i < NKEYS; i++) {
        size_t slen = section_len(keys[i].name);
        char cand[64];
        for (int pass = 0; pass < 2; pass++) {
            size_t n = pass == 0 ? strlen(keys[i].name) : slen;
            if (n == 0 || n >= sizeof(cand)) {
                continue;
            }
            memcpy(cand, keys[i].name, n);
            cand[n] = '\0';
            size_t d = edit_distance(path, cand);
            /* A one-letter key is no typo of "lag": replacing most of a word is no hint. */
            if (d < best_d && d < strlen(path)) {
                best_d = d;
                snprintf(out, outsz, "%s", cand);
            }
        }
    }
    return best_d < 3;
}

static void unknown_key(struct loader *ld, const struct yml_node *kn, const char *path)
{
    char hint[64];
    const char *dot = strrchr(path, '.');
    if (strchr(kn->str, '.') && (key_find(path) || is_section(path))) {
        diag_add(ld->dl, ld->file, kn->line, kn->col,
                 "unknown key '%.128s' (write it nested: '%s' inside '%.*s')", path, dot + 1,
                 (int)(dot - path), path);
    } else if (suggest(path, hint, sizeof(hint))) {
        diag_add(ld->dl, ld->file, kn->line, kn->col, "unknown key '%.128s' (did you mean '%s'?)",
                 path, hint);
    } else {
        diag_add(ld->dl, ld->file, kn->line, kn->col, "unknown key '%.128s'", path);
    }
}

/*
 * Walks one map of the tree. A key is looked up by its dotted path; a path that is a section
 * ("kafka") recurses into the nested map. Dotted keys written flat ("kafka.topic_template: x")
 * are unknown: each key has one spelling, the nested one.
 */
static void load_map(struct loader *ld, const struct yml_node *map, const char *prefix)
{
    for (size_t i = 0; i < map->npairs; i++) {
        const struct yml_node *kn = map->pairs[i].key;
        const struct yml_node *vn = map->pairs[i].value;
        char *path = prefix ? xasprintf("%s.%s", prefix, kn->str) : xstrdup(kn->str);
        bool plain_name = !strchr(kn->str, '.') && strlen(kn->str) == kn->len;
        const struct key *k = plain_name ? key_find(path) : NULL;
        if (k) {
            set_key(ld, k, vn);
        } else if (plain_name && is_section(path)) {
            if (vn->kind == YML_MAP) {
                load_map(ld, vn, path);
            } else if (!yml_is_null(vn)) {
                diag_add(ld->dl, ld->file, vn->line, vn->col, "'%s' must be a map, not %s", path,
                         yml_kind_name(vn));
            }
        } else {
            unknown_key(ld, kn, path);
        }
        xfree(path);
    }
}

/* flows_dir is relative to the config file's folder, so the file works from any directory. */
static void resolve_flows_dir(struct cfg *cfg)
{
    const char *slash = cfg->file ? strrchr(cfg->file, '/') : NULL;
    if (!slash || cfg->flows_dir[0] == '/') {
        return;
    }
    char *p = xasprintf("%.*s%s", (int)(slash - cfg->file + 1), cfg->file, cfg->flows_dir);
    xfree(cfg->flows_dir);
    cfg->flows_dir = p;
}

/* ==== Public functions ==== */

static void set_default(struct cfg *cfg, const struct key *k)
{
    long v = 0;
    int rc = 0;
    switch (k->type) {
    case KEY_STR:
        cfg_set_str(str_field(cfg, k), k->def);
        break;
    case KEY_INT:
        rc = parse_long(k->def, &v);
        assert(rc == 0); /* a typo in the key table; config_test.c loads every default */
        (void)rc;
        *int_field(cfg, k) = v;
        break;
    default:
        break; /* maps start empty */
    }
}

struct cfg *cfg_new_defaults(void)
{
    struct cfg *cfg = xcalloc(1, sizeof(*cfg));
    cfg->pos = xcalloc(NKEYS, sizeof(*cfg->pos));
    for (size_t i = 0; i < NKEYS; i++) {
        set_default(cfg, &keys[i]);
    }
    return cfg;
}

struct cfg *cfg_load_doc(const struct yml_doc *doc, struct diag_list *dl)
{
    size_t nerr = dl->n;
    struct cfg *cfg = cfg_new_defaults();
    cfg->file = xstrdup(doc->file);
    struct loader ld = {cfg, cfg->file, dl};
    const struct yml_node *root = doc->root;
    if (root && root->kind == YML_MAP) {
        load_map(&ld, root, NULL);
    } else if (root && !yml_is_null(root)) {
        diag_add(dl, cfg->file, root->line, root->col,
                 "the configuration must be a map of keys, not %s", yml_kind_name(root));
    }
    resolve_flows_dir(cfg);
    if (dl->n == nerr) {
        cfg_validate(cfg, dl);
    }
    if (dl->n != nerr) {
        cfg_free(cfg);
        return NULL;
    }
    return cfg;
}

struct cfg *cfg_load(const char *path, struct diag_list *dl)
{
    struct yml_doc *doc = yml_load_file(path, dl);
    if (!doc) {
        return NULL;
    }
    struct cfg *cfg = cfg_load_doc(doc, dl);
    yml_doc_free(doc);
    return cfg;
}

static void free_groups(char **groups, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        xfree(groups[i]);
    }
    xfree(groups);
}

void cfg_free(struct cfg *cfg)
{
    if (!cfg) {
        return;
    }
    for (size_t i = 0; i < NKEYS; i++) {
        if (keys[i].type == KEY_STR) {
            xfree(*str_field(cfg, &keys[i]));
        }
    }
    for (size_t i = 0; i < cfg->kafka.nproperties; i++) {
        xfree(cfg->kafka.properties[i].name);
        xfree(cfg->kafka.properties[i].value);
    }
    xfree(cfg->kafka.properties);
    for (size_t i = 0; i < cfg->kafka.ntopics; i++) {
        xfree(cfg->kafka.topics[i].flow_ref);
        xfree(cfg->kafka.topics[i].topic);
    }
    xfree(cfg->kafka.topics);
    free_groups(cfg->lag.groups, cfg->lag.ngroups);
    for (size_t i = 0; i < cfg->lag.nflow_groups; i++) {
        xfree(cfg->lag.flow_groups[i].flow_ref);
        free_groups(cfg->lag.flow_groups[i].groups, cfg->lag.flow_groups[i].ngroups);
    }
    xfree(cfg->lag.flow_groups);
    xfree(cfg->pos);
    xfree(cfg->file);
    xfree(cfg);
}

void cfg_set_str(char **field, const char *value)
{
    char *copy = xstrdup(value);
    xfree(*field);
    *field = copy;
}

void cfg_add_lag_group(struct cfg *cfg, const char *group)
{
    for (size_t i = 0; i < cfg->lag.ngroups; i++) {
        if (strcmp(cfg->lag.groups[i], group) == 0) {
            return;
        }
    }
    cfg->lag.groups = xrealloc(cfg->lag.groups, (cfg->lag.ngroups + 1) * sizeof(char *));
    cfg->lag.groups[cfg->lag.ngroups++] = xstrdup(group);
}

bool cfg_kafka_embedded(const struct cfg *cfg)
{
    const char *b = cfg->kafka.bootstrap_servers;
    return !b || b[0] == '\0' || strcmp(b, "embedded") == 0;
}

static const struct cfg_prop *prop_find(const struct cfg *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->kafka.nproperties; i++) {
        if (strcmp(cfg->kafka.properties[i].name, name) == 0) {
            return &cfg->kafka.properties[i];
        }
    }
    return NULL;
}

const char *cfg_kafka_prop(const struct cfg *cfg, const char *name)
{
    const struct cfg_prop *p = prop_find(cfg, name);
    return p ? p->value : NULL;
}

bool cfg_key_pos(const struct cfg *cfg, const char *name, int *line, int *col)
{
    const struct key *k = key_find(name);
    if (!k || !cfg->pos || cfg->pos[k - keys].line == 0) {
        return false;
    }
    *line = cfg->pos[k - keys].line;
    *col = cfg->pos[k - keys].col;
    return true;
}

size_t cfg_key_count(void)
{
    return NKEYS;
}

const char *cfg_key_name(size_t i)
{
    return i < NKEYS ? keys[i].name : NULL;
}

/* ==== Reloading ==== */

bool cfg_key_live(const char *name)
{
    const struct key *k = key_find(name);
    return k && k->live;
}

static void copy_props(struct cfg *dst, const struct cfg *src)
{
    for (size_t i = 0; i < dst->kafka.nproperties; i++) {
        xfree(dst->kafka.properties[i].name);
        xfree(dst->kafka.properties[i].value);
    }
    xfree(dst->kafka.properties);
    dst->kafka.properties = NULL;
    dst->kafka.nproperties = src->kafka.nproperties;
    if (src->kafka.nproperties == 0) {
        return;
    }
    dst->kafka.properties = xcalloc(src->kafka.nproperties, sizeof(struct cfg_prop));
    for (size_t i = 0; i < src->kafka.nproperties; i++) {
        dst->kafka.properties[i] = src->kafka.properties[i];
        dst->kafka.properties[i].name = xstrdup(src->kafka.properties[i].name);
        dst->kafka.properties[i].value = xstrdup(src->kafka.properties[i].value);
    }
}

/* Gives key k of dst the value it has in src. Positions stay those of dst's file. */
static void copy_value(struct cfg *dst, const struct cfg *src, const struct key *k)
{
    switch (k->type) {
    case KEY_STR:
        cfg_set_str(str_field(dst, k), *str_field((struct cfg *)src, k));
        break;
    case KEY_INT:
        *int_field(dst, k) = *int_field((struct cfg *)src, k);
        break;
    case KEY_PROPS:
        copy_props(dst, src);
        break;
    case KEY_TOPICS:
    case KEY_LIST:
    case KEY_FLOW_GROUPS:
        assert(!"kafka.topics and lag groups are live"); /* a reload applies them */
        break;
    }
}

/* Values are compared as text, never logged: kafka.properties may hold passwords. */
int cfg_keep_restart_keys(struct cfg *next, const struct cfg *cur, struct diag_list *notes)
{
    int n = 0;
    for (size_t i = 0; i < NKEYS; i++) {
        const struct key *k = &keys[i];
        if (k->live) {
            continue;
        }
        char *a = cfg_get_text(next, k->name);
        char *b = cfg_get_text(cur, k->name);
        if (strcmp(a, b) != 0) {
            int line = 0;
            int col = 0;
            cfg_key_pos(next, k->name, &line, &col);
            diag_add(notes, next->file, line, col,
                     "'%s' changed: needs a restart; the running value stays", k->name);
            copy_value(next, cur, k);
            n++;
        }
        xfree(a);
        xfree(b);
    }
    return n;
}

/* ==== Cross-checks ==== */

/* Adds an error at the position of key `name` when the file set it, else without a position. */
static void error_at_key(const struct cfg *cfg, struct diag_list *dl, const char *name,
                         const char *msg)
{
    int line = 0;
    int col = 0;
    cfg_key_pos(cfg, name, &line, &col);
    diag_add(dl, cfg->file, line, col, "%s", msg);
}

static bool ieq_any(const char *v, const char *const *words, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (strcasecmp(v, words[i]) == 0) {
            return true;
        }
    }
    return false;
}

/*
 * Properties that would break a promise of the bridge, or that have a key of their own. A 200
 * means the message is on every in-sync replica: that needs acks=all, and the idempotent
 * producer keeps librdkafka's retries from duplicating or reordering it.
 */
static const char *prop_problem(const struct cfg_prop *p)
{
    static const char *const yes[] = {"true", "t", "1"};
    if (strcmp(p->name, "acks") == 0 || strcmp(p->name, "request.required.acks") == 0) {
        bool all = strcmp(p->value, "all") == 0 || strcmp(p->value, "-1") == 0;
        return all ? NULL
                   : "must be \"all\" or \"-1\": a 200 means every in-sync replica has "
                     "the message";
    }
    if (strcmp(p->name, "enable.idempotence") == 0) {
        return ieq_any(p->value, yes, ARRAY_LEN(yes))
                   ? NULL
                   : "must stay true: retries must not duplicate or reorder acknowledged messages";
    }
    if (strcmp(p->name, "bootstrap.servers") == 0 || strcmp(p->name, "metadata.broker.list") == 0) {
        return "is set by kafka.bootstrap_servers; set that instead";
    }
    if (strcmp(p->name, "message.timeout.ms") == 0 || strcmp(p->name, "delivery.timeout.ms") == 0) {
        return "is set by kafka.delivery_timeout_ms; set that instead";
    }
    return NULL;
}

static int check_props(const struct cfg *cfg, struct diag_list *dl)
{
    int n = 0;
    for (size_t i = 0; i < cfg->kafka.nproperties; i++) {
        const struct cfg_prop *p = &cfg->kafka.properties[i];
        const char *why = prop_problem(p);
        if (why) {
            diag_add(dl, cfg->file, p->line, p->col, "kafka.properties '%s' %s", p->name, why);
            n++;
        }
    }
    return n;
}

static int check_body_limit(const struct cfg *cfg, struct diag_list *dl)
{
    long mmb = RDKAFKA_MESSAGE_MAX_BYTES;
    const struct cfg_prop *p = prop_find(cfg, "message.max.bytes");
    if (p && (parse_long(p->value, &mmb) != 0 || mmb <= 0)) {
        diag_add(dl, cfg->file, p->line, p->col,
                 "kafka.properties 'message.max.bytes' must be a positive integer");
        return 1;
    }
    if (cfg->limits.max_body_bytes <= mmb) {
        return 0;
    }
    char msg[256];
    snprintf(msg, sizeof(msg),
             "'limits.max_body_bytes' (%ld) must not exceed the producer's message.max.bytes "
             "(%ld%s): a body travels in one Kafka message",
             cfg->limits.max_body_bytes, mmb, p ? "" : ", librdkafka's default");
    int line = 0;
    int col = 0;
    if (!cfg_key_pos(cfg, "limits.max_body_bytes", &line, &col) && p) {
        line = p->line;
        col = p->col;
    }
    diag_add(dl, cfg->file, line, col, "%s", msg);
    return 1;
}

/*
 * The request timeout must outlast the delivery timeout, so that every request is answered
 * from a delivery report (200 or 503) and never abandoned while Kafka may still take it.
 */
static int check_timeouts(const struct cfg *cfg, struct diag_list *dl)
{
    if (cfg->kafka.delivery_timeout_ms < cfg->limits.request_timeout_ms) {
        return 0;
    }
    char msg[256];
    snprintf(msg, sizeof(msg),
             "'kafka.delivery_timeout_ms' (%ld) must be less than 'limits.request_timeout_ms' "
             "(%ld): a request is answered only once Kafka has acknowledged or given up",
             cfg->kafka.delivery_timeout_ms, cfg->limits.request_timeout_ms);
    int line = 0;
    int col = 0;
    if (cfg_key_pos(cfg, "kafka.delivery_timeout_ms", &line, &col)) {
        error_at_key(cfg, dl, "kafka.delivery_timeout_ms", msg);
    } else {
        error_at_key(cfg, dl, "limits.request_timeout_ms", msg);
    }
    return 1;
}

int cfg_validate(const struct cfg *cfg, struct diag_list *dl)
{
    return check_props(cfg, dl) + check_body_limit(cfg, dl) + check_timeouts(cfg, dl);
}

/* ==== Printing ==== */

static void print_yaml_str(FILE *out, const char *s)
{
    fputc('"', out);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') {
            fprintf(out, "\\%c", *s);
        } else if ((unsigned char)*s < 0x20) {
            fprintf(out, "\\x%02x", (unsigned char)*s);
        } else {
            fputc(*s, out);
        }
    }
    fputc('"', out);
}

void cfg_print_reference(FILE *out)
{
    fprintf(out, "# webhook-bridge configuration: every key with its default value.\n");
    size_t prev_len = 0;
    for (size_t i = 0; i < NKEYS; i++) {
        const struct key *k = &keys[i];
        size_t slen = section_len(k->name);
        if (slen && (slen != prev_len || strncmp(keys[i - 1].name, k->name, slen) != 0)) {
            fprintf(out, "\n%.*s:\n", (int)slen, k->name);
        } else {
            fputc('\n', out);
        }
        prev_len = slen;
        const char *indent = slen ? "    " : "";
        fprintf(out, "%s# %s%s\n%s%s: ", indent, k->desc, k->live ? "" : " (needs a restart)",
                indent, k->name + (slen ? slen + 1 : 0));
        if (k->type == KEY_STR) {
            print_yaml_str(out, k->def);
        } else {
            fputs(k->def, out);
        }
        fputc('\n', out);
    }
}

static void append_groups(struct sbuf *b, char *const *groups, size_t n)
{
    sbuf_append_cstr(b, "[");
    for (size_t i = 0; i < n; i++) {
        sbuf_appendf(b, "%s\"%s\"", i ? ", " : "", groups[i]);
    }
    sbuf_append_cstr(b, "]");
}

char *cfg_get_text(const struct cfg *cfg, const char *name)
{
    const struct key *k = key_find(name);
    if (!k) {
        return NULL;
    }
    struct sbuf b;
    sbuf_init(&b);
    if (k->type == KEY_STR) {
        sbuf_append_cstr(&b, *str_field((struct cfg *)cfg, k));
    } else if (k->type == KEY_INT) {
        sbuf_appendf(&b, "%ld", *int_field((struct cfg *)cfg, k));
    } else if (k->type == KEY_LIST) {
        append_groups(&b, cfg->lag.groups, cfg->lag.ngroups);
    } else if (k->type == KEY_FLOW_GROUPS) {
        sbuf_append_cstr(&b, "{");
        for (size_t i = 0; i < cfg->lag.nflow_groups; i++) {
            sbuf_appendf(&b, "%s\"%s\": ", i ? ", " : "", cfg->lag.flow_groups[i].flow_ref);
            append_groups(&b, cfg->lag.flow_groups[i].groups, cfg->lag.flow_groups[i].ngroups);
        }
        sbuf_append_cstr(&b, "}");
    } else {
        bool props = k->type == KEY_PROPS;
        size_t n = props ? cfg->kafka.nproperties : cfg->kafka.ntopics;
        sbuf_append_cstr(&b, "{");
        for (size_t i = 0; i < n; i++) {
            const char *a = props ? cfg->kafka.properties[i].name : cfg->kafka.topics[i].flow_ref;
            const char *v = props ? cfg->kafka.properties[i].value : cfg->kafka.topics[i].topic;
            sbuf_appendf(&b, "%s\"%s\": \"%s\"", i ? ", " : "", a, v);
        }
        sbuf_append_cstr(&b, "}");
    }
    return b.data;
}
