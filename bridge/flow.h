/*
 * flow.h: Kestra flow files → struct flow with its webhook triggers (key rendered, topic named).
 * Reads files and SECRET_* environment variables; no sockets, no Kafka.
 */
#ifndef BRIDGE_FLOW_H
#define BRIDGE_FLOW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

#include "cond.h"
#include "config.h"
#include "diag.h"

struct yml_doc;

#define FLOW_TRIGGER_TYPE "io.kestra.plugin.core.trigger.Webhook"
#define FLOW_TRIGGER_TYPE_LEGACY "io.kestra.core.models.triggers.types.Webhook"
#define FLOW_KEY_MAX 256

#define FLOW_DIGEST_LEN 32

struct flow;

/** A webhook trigger of a flow, in declaration order. */
struct flow_trigger {
    char *id;
    char *key; /* rendered and trimmed; owned; never logged; may hold NUL bytes (secrets) */
    size_t key_len;
    bool disabled; /* the trigger's `disabled: true`; routing decides what it means */
    bool shadowed; /* an earlier trigger of the flow has the same key: routing never gets here */
    int line, col; /* position of the trigger's map in its file */
    struct cond *cond; /* compiled `conditions` and `when`; owned; never NULL after loading */
    /*
     * What the conditions read of `trigger` (cond_reads_new), so a request unpacks only that part
     * of its message; owned; NULL when they may read all of it (the message is unpacked whole).
     */
    struct prune_paths *reads;
    /*
     * `stopAfter`: bit (1u << enum proto_state) for each listed State.Type. A terminal state
     * listed here, reached by an execution this trigger started, disables the trigger
     * (execstate.h). 0 when absent.
     */
    uint32_t stop_after;
    bool wait;           /* `wait`: hold the request until the execution ends */
    bool return_outputs; /* `returnOutputs`: answer with the flow outputs (needs wait) */
    bool text_plain;     /* `responseContentType: text/plain` (needs returnOutputs) */
    struct expr_prog *response_code; /* `responseCode` (needs wait), owned; NULL when absent */
    struct flow *flow; /* back pointer, borrowed */
};

struct flow {
    char *file;
    char *id;
    char *ns;      /* namespace */
    bool disabled; /* the flow's `disabled: true`; the flow is loaded and routed all the same */
    char *topic;   /* Kafka topic, from the template or a kafka.topics override */
    struct flow_trigger *triggers; /* webhook triggers only, in declaration order */
    size_t ntriggers;
    int line, col; /* position of the flow's `id` value (of the root map when id is missing) */
    /*
     * The flow's `labels` (a map, or Kestra's list of {key, value}) as a msgpack map of strings,
     * for the `labels` variable and ExecutionLabels; type NIL when the flow has none. Lives in
     * labels_zone, owned.
     */
    msgpack_object labels;
    msgpack_zone *labels_zone;
    /*
     * SHA-256 of the file's text, set by flow_set_add_doc (zero from flow_parse_doc alone): a
     * reload tells a changed flow from an unchanged one with it (flow_same()).
     */
    unsigned char digest[FLOW_DIGEST_LEN];
};

/**
 * Every flow loaded from one flows directory, in sorted path order. Owns the flows.
 *
 * Reference counted, because a reload replaces the set while requests that matched one of its
 * triggers still wait for Kafka: each such request holds a reference (flow_set_ref), the running
 * service holds one, and the set is freed when the last is dropped (flow_set_free). One thread.
 */
struct flow_set {
    struct flow *flows;
    size_t nflows;
    int compat; /* expression rules for conditions (EXPR_COMPAT_*), from cfg->kestra_compat */
    unsigned long refs; /* 1 when new */
};

/**
 * Loads every *.yml / *.yaml file below cfg->flows_dir (recursively, in sorted path order,
 * skipping names that start with '.'). Collects every error of every file (file:line:col) into
 * dl and returns NULL if there was any; the result is owned by the caller. Errors: YAML syntax,
 * missing or malformed id/namespace/key, a key over FLOW_KEY_MAX characters, a key that does not
 * render (missing secret, bad base64, unsupported {{ }}), two flows with one namespace and id,
 * an invalid topic, two flows on one topic. Warnings (log_warn): a kafka.topics entry for a flow
 * that is not loaded, a trigger shadowed by an earlier one with the same key, no flow files.
 */
struct flow_set *flow_set_load(const struct cfg *cfg, struct diag_list *dl);

/**
 * Drops one reference to the set; the last one frees the set and its flows. NULL is a no-op.
 * For a set nobody else referenced (the usual case outside a reload) this frees it at once.
 */
void flow_set_free(struct flow_set *fs);

/** Takes one more reference to fs (not NULL) and returns it; release it with flow_set_free(). */
struct flow_set *flow_set_ref(struct flow_set *fs);

/**
 * True when a and b would serve the same: same file, same text (digest), same topic and same
 * expression rules. A reload counts flows as changed or unchanged with it.
 */
bool flow_same(const struct flow *a, int compat_a, const struct flow *b, int compat_b);

/*
 * The steps of flow_set_load, for tests and fuzzers: flow_set_new(), flow_set_add_doc() for each
 * parsed file, then flow_set_finish() once.
 */

/** An empty set, owned by the caller. */
struct flow_set *flow_set_new(void);

/**
 * Parses doc (borrowed) as one flow and adds it to fs. A flow whose namespace and id are already
 * in fs is an error naming the first file. Returns 0, or a negative errno with errors in dl
 * (the flow is then not added). Trigger back pointers are valid until the next add.
 */
int flow_set_add_doc(struct flow_set *fs, const struct yml_doc *doc, struct diag_list *dl);

/**
 * Names every flow's topic (kafka.topics override, else kafka.topic_template) and reports
 * invalid names and collisions ('.' and '_' count as equal, as in Kafka), each at the later
 * flow, naming the earlier one. Returns 0 or -EINVAL with errors in dl.
 */
int flow_set_finish(struct flow_set *fs, const struct cfg *cfg, struct diag_list *dl);

/** The flow with this namespace and id, or NULL. Borrowed from fs. */
const struct flow *flow_set_find(const struct flow_set *fs, const char *ns, const char *flow_id);

/**
 * Parses one flow document into *fl (caller-owned storage, overwritten). Every error of the
 * document goes to dl; on any, returns -EINVAL and leaves *fl empty. On success release it with
 * flow_deinit(). fl->topic stays NULL (see flow_set_finish) and trigger back pointers are unset.
 * Top-level keys other than id, namespace, disabled, labels and triggers are ignored, as are
 * triggers of other types and webhook properties other than id, key, disabled, conditions,
 * when, stopAfter, wait, returnOutputs, responseContentType and responseCode (Kestra 1.x rules:
 * returnOutputs needs wait, responseContentType needs both and is application/json or
 * text/plain, responseCode needs wait; stopAfter names Kestra State.Type values). Conditions are compiled with the Kestra 0.20-1.x rules (flow_parse_doc_compat picks).
 */
int flow_parse_doc(const struct yml_doc *doc, struct flow *fl, struct diag_list *dl);
int flow_parse_doc_compat(const struct yml_doc *doc, int compat, struct flow *fl,
                          struct diag_list *dl);

/** Frees what *fl holds (keys are wiped first) and zeroes it. */
void flow_deinit(struct flow *fl);

/**
 * Renders a trigger key template: "{{ secret('NAME') }}" or "{{ secret(\"NAME\") }}" (env
 * SECRET_NAME, base64-decoded as Kestra's open-source secret backend does), "{{ flow.id }}",
 * "{{ flow.namespace }}" and literal text, white space allowed inside the braces; then trims
 * every byte <= ' ' from both ends (Java's String.trim(), as Kestra does). Anything else in
 * {{ }}, and {% %} or {# #}, is "unsupported expression in key"; an empty result is an error.
 * Returns a new string (owned; *out_len bytes, may hold NULs from a secret), or NULL with a
 * message in err (errsz bytes; never the key or a secret value) and *errcol set to the 1-based
 * column inside tmpl where the problem is, or 0 when it is the whole key (empty once trimmed).
 */
char *flow_render_key(const char *tmpl, const char *flow_id, const char *ns, size_t *out_len,
                      char *err, size_t errsz, int *errcol);

/**
 * Expands a topic template ({namespace}, {flowId}, {tenant}) into a new string (owned); NULL with
 * err set when the template names an unknown placeholder. Does not check the result: see
 * flow_topic_valid().
 */
char *flow_topic_name(const char *tmpl, const char *ns, const char *flow_id, const char *tenant,
                      char *err, size_t errsz);

/**
 * True when name is a legal Kafka topic name (1..249 chars of [A-Za-z0-9._-], not "." or ".."),
 * the same rule as cfg_topic_name_valid().
 */
bool flow_topic_valid(const char *name);

#endif
