/*
 * flow.c: Kestra flow files → struct flow with its webhook triggers, keys rendered and topics
 * named. Reads files and the environment (secrets); no sockets, no Kafka. Never puts a key or a
 * secret into an error or a log line.
 */
#include "flow.h"

#include <assert.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "expr.h"
#include "log.h"
#include "proto.h"
#include "prune.h"
#include "util.h"
#include "yaml.h"

/* Kestra's limits: Flow.id @Size(max = 100), Flow.namespace @Size(max = 150). */
#define FLOW_ID_MAX 100
#define FLOW_NS_MAX 150
#define SECRET_NAME_CHARS "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_"
/* Folders below flows_dir deeper than this are an error: likely a symlink loop. */
#define FLOW_DIR_DEPTH_MAX 16

/* ==== Errors ==== */

static void err_at(struct diag_list *dl, const char *file, const struct yml_node *n,
                   const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void err_at(struct diag_list *dl, const char *file, const struct yml_node *n,
                   const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    diag_add(dl, file, n ? n->line : 0, n ? n->col : 0, "%s", msg);
}

/* A user-supplied name made safe to quote in a message: printable ASCII, at most 64 bytes. */
static const char *printable(const char *s, char out[72])
{
    size_t i = 0;
    for (; s[i] && i < 64; i++) {
        out[i] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
    }
    strcpy(out + i, s[i] ? "..." : "");
    return out;
}

/* ==== Identifiers ==== */

/* Kestra's patterns: id ^[a-zA-Z0-9][a-zA-Z0-9._-]*$, namespace ^[a-z0-9][a-z0-9._-]*$. */
static bool ident_valid(const char *s, bool lower_only, size_t max)
{
    size_t n = strlen(s);
    if (n == 0 || n > max || !isalnum((unsigned char)s[0])) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        bool ok = isdigit(c) || islower(c) || (!lower_only && isupper(c)) ||
                  (i > 0 && (c == '.' || c == '_' || c == '-'));
        if (!ok || c >= 0x80) {
            return false;
        }
    }
    return true;
}

/*
 * A string property. Jackson coerces YAML numbers and booleans to strings for Kestra, so any
 * non-null scalar is taken as its text. Returns NULL, with an error, when absent or not a scalar.
 */
static const char *string_prop(struct diag_list *dl, const char *file, const struct yml_node *map,
                               const char *name, const char *owner)
{
    const struct yml_node *n = yml_map_get(map, name);
    if (!n || yml_is_null(n)) {
        err_at(dl, file, n ? n : map, "%s needs '%s'", owner, name);
        return NULL;
    }
    if (n->kind != YML_SCALAR) {
        err_at(dl, file, n, "'%s' must be a string, not %s", name, yml_kind_name(n));
        return NULL;
    }
    if (strlen(n->str) != n->len) {
        err_at(dl, file, n, "'%s' must not contain a NUL character", name);
        return NULL;
    }
    return n->str;
}

/* The optional `disabled` flag of a flow or trigger. */
static bool disabled_prop(struct diag_list *dl, const char *file, const struct yml_node *map)
{
    const struct yml_node *n = yml_map_get(map, "disabled");
    if (!n || yml_is_null(n)) {
        return false;
    }
    int v = yml_bool(n);
    if (v < 0) {
        err_at(dl, file, n, "'disabled' must be true or false");
        return false;
    }
    return v == 1;
}

/* ==== Key rendering ==== */

/*
 * Kestra's open-source secret backend reads SECRET_<NAME> from the environment and base64-decodes
 * it with java.util.Base64.getDecoder(): standard alphabet, padding optional but, when present,
 * correct. Surrounding white space (a trailing newline from $(cat file)) is tolerated here.
 * EVP_DecodeBlock needs whole 4-character groups and decodes '=' as zero bits anywhere, so the
 * input is checked first and padded, and the padding bytes are taken off its result.
 */
static int decode_base64(const char *in, struct sbuf *dst)
{
    size_t len = strlen(in);
    while (len > 0 && isspace((unsigned char)in[len - 1])) {
        len--;
    }
    while (len > 0 && isspace((unsigned char)*in)) {
        in++;
        len--;
    }
    size_t pad = 0;
    while (pad < 2 && len > pad && in[len - 1 - pad] == '=') {
        pad++;
    }
    size_t data = len - pad;
    for (size_t i = 0; i < data; i++) {
        if (!isalnum((unsigned char)in[i]) && in[i] != '+' && in[i] != '/') {
            return -EINVAL;
        }
    }
    if (data % 4 == 1 || (pad > 0 && len % 4 != 0)) {
        return -EINVAL;
    }
    size_t fill = (4 - data % 4) % 4;
    unsigned char *padded = xmalloc(data + fill + 1);
    unsigned char *out = xmalloc((data + fill) / 4 * 3 + 1);
    memcpy(padded, in, data);
    memset(padded + data, '=', fill);
    int n = EVP_DecodeBlock(out, padded, (int)(data + fill));
    if (n >= 0) {
        sbuf_append(dst, out, (size_t)n - fill);
    }
    OPENSSL_cleanse(padded, data + fill);
    OPENSSL_cleanse(out, (data + fill) / 4 * 3);
    xfree(padded);
    xfree(out);
    return n >= 0 ? 0 : -EINVAL;
}

static const char *skip_ws(const char *p, const char *end)
{
    while (p < end && isspace((unsigned char)*p)) {
        p++;
    }
    return p;
}

static bool word_is(const char *p, const char *end, const char *word)
{
    size_t n = strlen(word);
    return (size_t)(end - p) == n && memcmp(p, word, n) == 0;
}

/*
 * secret('NAME') or secret("NAME"), white space allowed between the tokens. On error sets *at to
 * where the problem is and fills err; the secret's value never reaches err.
 */
static int render_secret(const char *p, const char *end, struct sbuf *dst, char *err, size_t errsz,
                         const char **at)
{
    const char *name = NULL;
    const char *close = NULL;
    p = skip_ws(p + strlen("secret"), end);
    if (p < end && *p == '(') {
        p = skip_ws(p + 1, end);
        if (p < end && (*p == '\'' || *p == '"')) {
            name = p + 1;
            close = memchr(name, *p, (size_t)(end - name));
        }
    }
    if (close) {
        p = skip_ws(close + 1, end);
        p = p < end && *p == ')' ? skip_ws(p + 1, end) : NULL;
    }
    if (!close || p != end) {
        snprintf(err, errsz, "unsupported expression in key; write {{ secret('NAME') }}");
        return -EINVAL;
    }
    *at = name;
    size_t n = (size_t)(close - name);
    if (n == 0 || n > 200 || strspn(name, SECRET_NAME_CHARS) < n) {
        snprintf(err, errsz, "secret name must be letters, digits and '_'");
        return -EINVAL;
    }
    char var[256];
    snprintf(var, sizeof(var), "SECRET_%.*s", (int)n, name);
    const char *value = getenv(var);
    if (!value) {
        snprintf(err, errsz, "secret '%.*s' is not set (environment variable %s)", (int)n, name,
                 var);
        return -ENOENT;
    }
    if (decode_base64(value, dst) != 0) {
        snprintf(err, errsz, "secret '%.*s' is not valid base64 (environment variable %s)", (int)n,
                 name, var);
        return -EINVAL;
    }
    return 0;
}

/* One {{ … }} between p and end. */
static int render_expr(const char *p, const char *end, const char *flow_id, const char *ns,
                       struct sbuf *dst, char *err, size_t errsz, const char **at)
{
    p = skip_ws(p, end);
    while (end > p && isspace((unsigned char)end[-1])) {
        end--;
    }
    *at = p;
    if (word_is(p, end, "flow.id")) {
        sbuf_append_cstr(dst, flow_id);
        return 0;
    }
    if (word_is(p, end, "flow.namespace")) {
        sbuf_append_cstr(dst, ns);
        return 0;
    }
    if ((size_t)(end - p) > 6 && memcmp(p, "secret", 6) == 0) {
        return render_secret(p, end, dst, err, errsz, at);
    }
    snprintf(err, errsz,
             "unsupported expression in key; only {{ secret('NAME') }}, "
             "{{ flow.id }} and {{ flow.namespace }} are supported");
    return -EINVAL;
}

/* Java's String.trim(), which Kestra applies to the rendered key: every byte <= ' '. */
static void trim_key(struct sbuf *b)
{
    size_t start = 0;
    while (start < b->len && (unsigned char)b->data[start] <= ' ') {
        start++;
    }
    size_t end = b->len;
    while (end > start && (unsigned char)b->data[end - 1] <= ' ') {
        end--;
    }
    memmove(b->data, b->data + start, end - start);
    b->len = end - start;
    b->data[b->len] = '\0';
}

/* Pebble's other tags ({% … %}, {# … #}) would change the key in Kestra; refuse them too. */
static int render_all(const char *tmpl, const char *flow_id, const char *ns, struct sbuf *b,
                      char *err, size_t errsz, const char **at)
{
    const char *p = tmpl;
    while (*p) {
        if (p[0] != '{' || (p[1] != '{' && p[1] != '%' && p[1] != '#')) {
            sbuf_append(b, p++, 1);
            continue;
        }
        *at = p;
        if (p[1] != '{') {
            snprintf(err, errsz, "unsupported expression in key; only {{ … }} is supported");
            return -EINVAL;
        }
        const char *close = strstr(p + 2, "}}");
        if (!close) {
            snprintf(err, errsz, "unterminated '{{' in key");
            return -EINVAL;
        }
        int rc = render_expr(p + 2, close, flow_id, ns, b, err, errsz, at);
        if (rc != 0) {
            return rc;
        }
        p = close + 2;
    }
    return 0;
}

char *flow_render_key(const char *tmpl, const char *flow_id, const char *ns, size_t *out_len,
                      char *err, size_t errsz, int *errcol)
{
    struct sbuf b;
    sbuf_init(&b);
    sbuf_reserve(&b, strlen(tmpl));
    const char *at = tmpl;
    int rc = render_all(tmpl, flow_id, ns, &b, err, errsz, &at);
    if (rc == 0) {
        trim_key(&b);
        if (b.len == 0) {
            snprintf(err, errsz, "key is empty once rendered and trimmed");
            at = NULL;
            rc = -EINVAL;
        }
    }
    if (rc != 0) {
        OPENSSL_cleanse(b.data, b.cap);
        sbuf_deinit(&b);
        *errcol = at ? (int)(at - tmpl) + 1 : 0;
        return NULL;
    }
    *out_len = b.len;
    return b.data;
}

/* ==== Topics ==== */

char *flow_topic_name(const char *tmpl, const char *ns, const char *flow_id, const char *tenant,
                      char *err, size_t errsz)
{
    struct sbuf b;
    sbuf_init(&b);
    sbuf_append(&b, "", 0);
    for (const char *p = tmpl; *p;) {
        if (*p != '{') {
            sbuf_append(&b, p++, 1);
            continue;
        }
        const char *close = strchr(p, '}');
        size_t n = close ? (size_t)(close - p) + 1 : 0;
        const char *value = NULL;
        if (n == 11 && memcmp(p, "{namespace}", n) == 0) {
            value = ns;
        } else if (n == 8 && memcmp(p, "{flowId}", n) == 0) {
            value = flow_id;
        } else if (n == 8 && memcmp(p, "{tenant}", n) == 0) {
            value = tenant;
        }
        if (!value) {
            snprintf(err, errsz,
                     "unknown placeholder in topic template; use {namespace}, "
                     "{flowId} and {tenant}");
            sbuf_deinit(&b);
            return NULL;
        }
        sbuf_append_cstr(&b, value);
        p += n;
    }
    return b.data;
}

bool flow_topic_valid(const char *name)
{
    return cfg_topic_name_valid(name);
}

/* ==== One flow ==== */

/*
 * Column of an error inside a key template. Exact when the scalar's source text is the template
 * itself (plain or quoted without escapes on one line); otherwise the key's own position.
 */
static int key_error_col(const struct yml_doc *doc, const struct yml_node *kn, int errcol)
{
    size_t len = 0;
    const char *line = yml_line_text(doc, kn->line, &len);
    size_t col0 = (size_t)kn->col - 1;
    if (!line || col0 >= len || errcol <= 0) {
        return kn->col;
    }
    size_t q = (line[col0] == '"' || line[col0] == '\'') ? 1 : 0;
    if (col0 + q + kn->len <= len && memcmp(line + col0 + q, kn->str, kn->len) == 0) {
        return kn->col + (int)q + errcol - 1;
    }
    return kn->col;
}

/* Kestra's @Size(max = 256) counts UTF-16 units of the unrendered key. */
static size_t utf16_len(const char *s, size_t n)
{
    size_t units = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        units += (c & 0xC0) != 0x80;
        units += c >= 0xF0;
    }
    return units;
}

static int parse_key(const struct yml_doc *doc, struct flow *fl, struct flow_trigger *tr,
                     const struct yml_node *map, struct diag_list *dl)
{
    char what[96];
    snprintf(what, sizeof(what), "webhook trigger '%s'", tr->id);
    const char *tmpl = string_prop(dl, doc->file, map, "key", what);
    if (!tmpl) {
        return -EINVAL;
    }
    const struct yml_node *kn = yml_map_get(map, "key");
    size_t units = utf16_len(kn->str, kn->len);
    if (units > FLOW_KEY_MAX) {
        err_at(dl, doc->file, kn, "key is longer than %d characters (%zu) before rendering",
               FLOW_KEY_MAX, units);
        return -EINVAL;
    }
    if (!fl->id || !fl->ns) {
        return 0; /* the flow is already in error; flow.id could not be rendered */
    }
    char err[256];
    int errcol = 1;
    tr->key = flow_render_key(tmpl, fl->id, fl->ns, &tr->key_len, err, sizeof(err), &errcol);
    if (!tr->key) {
        diag_add(dl, doc->file, kn->line, key_error_col(doc, kn, errcol), "%s", err);
        return -EINVAL;
    }
    return 0;
}

/* ==== Execution properties: stopAfter, wait and the answer ==== */

/* An optional boolean property; false when absent. */
static bool bool_prop(struct diag_list *dl, const char *file, const struct yml_node *map,
                      const char *name)
{
    const struct yml_node *n = yml_map_get(map, name);
    if (!n || yml_is_null(n)) {
        return false;
    }
    int v = yml_bool(n);
    if (v < 0) {
        err_at(dl, file, n, "'%s' must be true or false", name);
        return false;
    }
    return v == 1;
}

/* `stopAfter`: a list of Kestra State.Type names, each checked at its own position. */
static uint32_t parse_stop_after(struct diag_list *dl, const char *file, const struct yml_node *map)
{
    const struct yml_node *n = yml_map_get(map, "stopAfter");
    uint32_t mask = 0;
    char shown[72];

    if (!n || yml_is_null(n)) {
        return 0;
    }
    if (n->kind != YML_SEQ) {
        err_at(dl, file, n, "'stopAfter' must be a list of execution states, not %s",
               yml_kind_name(n));
        return 0;
    }
    for (size_t i = 0; i < n->nitems; i++) {
        const struct yml_node *it = n->items[i];
        enum proto_state st = it->kind == YML_SCALAR ? proto_state_from_name(it->str, it->len)
                                                     : PROTO_STATE_UNKNOWN;
        if (st == PROTO_STATE_UNKNOWN) {
            err_at(dl, file, it,
                   "'stopAfter' entry '%s' is not an execution state (SUCCESS, WARNING, FAILED, "
                   "KILLED, CANCELLED, RETRIED, SKIPPED, RESUBMITTED, ...)",
                   it->kind == YML_SCALAR ? printable(it->str, shown) : yml_kind_name(it));
            continue;
        }
        mask |= UINT32_C(1) << st;
    }
    return mask;
}

/* `responseCode`: a template rendered against the finished execution; compiled here. */
static struct expr_prog *parse_response_code(struct diag_list *dl, const struct yml_doc *doc,
                                             const struct yml_node *n, int compat)
{
    struct expr_error xe;
    struct expr_prog *prog;

    if (n->kind != YML_SCALAR) {
        err_at(dl, doc->file, n, "'responseCode' must be an integer or a template, not %s",
               yml_kind_name(n));
        return NULL;
    }
    prog = expr_compile(n->str, n->len, compat, &xe);
    if (!prog) {
        diag_add(dl, doc->file, n->line, n->col, "responseCode: %s (at byte %zu)", xe.msg,
                 xe.offset);
    }
    return prog;
}

/*
 * wait, returnOutputs, responseContentType, responseCode, with the dependencies Kestra's
 * validator enforces (reference/kestra-webhook.md §1.2).
 */
static void parse_wait(const struct yml_doc *doc, struct flow_trigger *tr,
                       const struct yml_node *map, int compat, struct diag_list *dl)
{
    const struct yml_node *ro = yml_map_get(map, "returnOutputs");
    const struct yml_node *ct = yml_map_get(map, "responseContentType");
    const struct yml_node *rc = yml_map_get(map, "responseCode");

    tr->wait = bool_prop(dl, doc->file, map, "wait");
    tr->return_outputs = bool_prop(dl, doc->file, map, "returnOutputs");
    if (tr->return_outputs && !tr->wait) {
        err_at(dl, doc->file, ro, "'returnOutputs' needs 'wait: true'");
    }
    if (ct && !yml_is_null(ct)) {
        bool json = ct->kind == YML_SCALAR && strcmp(ct->str, "application/json") == 0;
        tr->text_plain = ct->kind == YML_SCALAR && strcmp(ct->str, "text/plain") == 0;
        if (!json && !tr->text_plain) {
            err_at(dl, doc->file, ct,
                   "'responseContentType' must be application/json or text/plain");
        } else if (!tr->return_outputs) {
            err_at(dl, doc->file, ct,
                   "'responseContentType' needs 'wait: true' and 'returnOutputs: true'");
        }
    }
    if (rc && !yml_is_null(rc)) {
        if (!tr->wait) {
            err_at(dl, doc->file, rc, "'responseCode' needs 'wait: true'");
        }
        tr->response_code = parse_response_code(dl, doc, rc, compat);
    }
}

static bool is_webhook_type(const char *type)
{
    return strcmp(type, FLOW_TRIGGER_TYPE) == 0 || strcmp(type, FLOW_TRIGGER_TYPE_LEGACY) == 0;
}

static void parse_webhook(const struct yml_doc *doc, struct flow *fl, const struct yml_node *map,
                          int compat, struct diag_list *dl)
{
    const char *id = string_prop(dl, doc->file, map, "id", "a webhook trigger");
    char shown[72];
    if (id && !ident_valid(id, false, FLOW_ID_MAX)) {
        err_at(dl, doc->file, yml_map_get(map, "id"),
               "trigger id '%s' must match ^[a-zA-Z0-9][a-zA-Z0-9._-]*$ (at most %d characters)",
               printable(id, shown), FLOW_ID_MAX);
        id = NULL;
    }
    fl->triggers = xrealloc(fl->triggers, (fl->ntriggers + 1) * sizeof(*fl->triggers));
    struct flow_trigger *tr = &fl->triggers[fl->ntriggers];
    memset(tr, 0, sizeof(*tr));
    tr->id = xstrdup(id ? id : "");
    tr->line = map->line;
    tr->col = map->col;
    tr->disabled = disabled_prop(dl, doc->file, map);
    fl->ntriggers++;
    parse_key(doc, fl, tr, map, dl);
    tr->cond = cond_compile(yml_map_get(map, "conditions"), yml_map_get(map, "when"), doc->file,
                            doc, compat, dl);
    tr->reads = cond_reads_new(tr->cond);
    tr->stop_after = parse_stop_after(dl, doc->file, map);
    parse_wait(doc, tr, map, compat, dl);
}

/* Kestra rejects two triggers with one id; the id is also what trigger.id reports. */
static void check_trigger_ids(const struct yml_doc *doc, const struct yml_node *list,
                              struct diag_list *dl)
{
    for (size_t j = 1; j < list->nitems; j++) {
        const struct yml_node *b = yml_map_get(list->items[j], "id");
        if (!b || b->kind != YML_SCALAR) {
            continue;
        }
        for (size_t i = 0; i < j; i++) {
            const struct yml_node *a = yml_map_get(list->items[i], "id");
            if (a && a->kind == YML_SCALAR && a->len == b->len &&
                memcmp(a->str, b->str, a->len) == 0) {
                char shown[72];
                err_at(dl, doc->file, b, "trigger id '%s' is already used at line %d",
                       printable(b->str, shown), a->line);
                break;
            }
        }
    }
}

/*
 * Routing takes the first trigger whose key matches (Kestra's order), so a later trigger with
 * the same rendered key can never be reached. It is kept, flagged, and reported as a warning.
 */
static void flag_shadowed(struct flow *fl)
{
    for (size_t j = 1; j < fl->ntriggers; j++) {
        struct flow_trigger *b = &fl->triggers[j];
        for (size_t i = 0; i < j && b->key; i++) {
            const struct flow_trigger *a = &fl->triggers[i];
            if (a->key && a->key_len == b->key_len && memcmp(a->key, b->key, a->key_len) == 0) {
                b->shadowed = true;
                log_warn("%s:%d:%d: webhook trigger '%s' has the same key as trigger '%s' "
                         "declared before it; requests go to '%s'",
                         fl->file, b->line, b->col, b->id, a->id, a->id);
                break;
            }
        }
    }
}

static void parse_triggers(const struct yml_doc *doc, struct flow *fl, int compat,
                           struct diag_list *dl)
{
    const struct yml_node *list = yml_map_get(doc->root, "triggers");
    if (!list || yml_is_null(list)) {
        return;
    }
    if (list->kind != YML_SEQ) {
        err_at(dl, doc->file, list, "'triggers' must be a list, not %s", yml_kind_name(list));
        return;
    }
    for (size_t i = 0; i < list->nitems; i++) {
        const struct yml_node *t = list->items[i];
        if (t->kind != YML_MAP) {
            err_at(dl, doc->file, t, "a trigger must be a map, not %s", yml_kind_name(t));
            continue;
        }
        const char *type = string_prop(dl, doc->file, t, "type", "a trigger");
        if (type && is_webhook_type(type)) {
            parse_webhook(doc, fl, t, compat, dl);
        }
    }
    check_trigger_ids(doc, list, dl);
    flag_shadowed(fl);
}

static char *parse_ident(const struct yml_doc *doc, const char *name, bool lower_only, size_t max,
                         const char *pattern, struct diag_list *dl)
{
    const char *s = string_prop(dl, doc->file, doc->root, name, "a flow");
    if (!s) {
        return NULL;
    }
    if (!ident_valid(s, lower_only, max)) {
        char shown[72];
        err_at(dl, doc->file, yml_map_get(doc->root, name),
               "flow %s '%s' must match %s (at most %zu characters)", name, printable(s, shown),
               pattern, max);
        return NULL;
    }
    return xstrdup(s);
}

/* ==== Labels ==== */

static bool label_scalar(struct diag_list *dl, const char *file, const struct yml_node *n)
{
    if (!n || n->kind != YML_SCALAR || yml_is_null(n)) {
        err_at(dl, file, n, "a label key and value must be strings");
        return false;
    }
    return true;
}

static void pack_label(msgpack_packer *pk, const struct yml_node *k, const struct yml_node *v)
{
    msgpack_pack_str_with_body(pk, k->str, k->len);
    msgpack_pack_str_with_body(pk, v->str, v->len);
}

/*
 * Kestra accepts labels as a map or as a list of {key, value}; both become one msgpack map of
 * strings, unpacked once into a zone the flow keeps, so conditions read it without copying.
 */
static void parse_labels(const struct yml_doc *doc, struct flow *fl, struct diag_list *dl)
{
    const struct yml_node *n = yml_map_get(doc->root, "labels");
    msgpack_sbuffer sb;
    msgpack_packer pk;
    fl->labels.type = MSGPACK_OBJECT_NIL;
    if (!n || yml_is_null(n)) {
        return;
    }
    if (n->kind == YML_SCALAR) {
        err_at(dl, doc->file, n, "'labels' must be a map or a list of {key, value}");
        return;
    }
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    size_t count = n->kind == YML_MAP ? n->npairs : n->nitems;
    msgpack_pack_map(&pk, count);
    for (size_t i = 0; i < count; i++) {
        const struct yml_node *k = n->kind == YML_MAP ? n->pairs[i].key
                                                      : yml_map_get(n->items[i], "key");
        const struct yml_node *v = n->kind == YML_MAP ? n->pairs[i].value
                                                      : yml_map_get(n->items[i], "value");
        if (!label_scalar(dl, doc->file, k ? k : n) || !label_scalar(dl, doc->file, v ? v : n)) {
            msgpack_sbuffer_destroy(&sb);
            return;
        }
        pack_label(&pk, k, v);
    }
    size_t off = 0;
    fl->labels_zone = msgpack_zone_new(MSGPACK_ZONE_CHUNK_SIZE);
    if (msgpack_unpack(sb.data, sb.size, &off, fl->labels_zone, &fl->labels) !=
        MSGPACK_UNPACK_SUCCESS) {
        fl->labels.type = MSGPACK_OBJECT_NIL;
    }
    msgpack_sbuffer_destroy(&sb);
}

int flow_parse_doc(const struct yml_doc *doc, struct flow *fl, struct diag_list *dl)
{
    return flow_parse_doc_compat(doc, EXPR_COMPAT_DEFAULT, fl, dl);
}

int flow_parse_doc_compat(const struct yml_doc *doc, int compat, struct flow *fl,
                          struct diag_list *dl)
{
    size_t nerr = dl->n;
    memset(fl, 0, sizeof(*fl));
    fl->file = xstrdup(doc->file);
    const struct yml_node *root = doc->root;
    if (!root || root->kind != YML_MAP) {
        err_at(dl, doc->file, root,
               "a flow must be a map with 'id', 'namespace' and 'tasks', not %s",
               root ? yml_kind_name(root) : "an empty file");
        flow_deinit(fl);
        return -EINVAL;
    }
    fl->line = root->line;
    fl->col = root->col;
    const struct yml_node *idn = yml_map_get(root, "id");
    if (idn) {
        fl->line = idn->line;
        fl->col = idn->col;
    }
    fl->id = parse_ident(doc, "id", false, FLOW_ID_MAX, "^[a-zA-Z0-9][a-zA-Z0-9._-]*$", dl);
    fl->ns = parse_ident(doc, "namespace", true, FLOW_NS_MAX, "^[a-z0-9][a-z0-9._-]*$", dl);
    fl->disabled = disabled_prop(dl, doc->file, root);
    parse_labels(doc, fl, dl);
    parse_triggers(doc, fl, compat, dl);
    if (dl->n != nerr) {
        flow_deinit(fl);
        return -EINVAL;
    }
    return 0;
}

void flow_deinit(struct flow *fl)
{
    for (size_t i = 0; i < fl->ntriggers; i++) {
        xfree(fl->triggers[i].id);
        if (fl->triggers[i].key) {
            OPENSSL_cleanse(fl->triggers[i].key, fl->triggers[i].key_len);
        }
        xfree(fl->triggers[i].key);
        cond_free(fl->triggers[i].cond);
        prune_free(fl->triggers[i].reads);
        expr_free(fl->triggers[i].response_code);
    }
    if (fl->labels_zone) {
        msgpack_zone_free(fl->labels_zone);
    }
    xfree(fl->triggers);
    xfree(fl->file);
    xfree(fl->id);
    xfree(fl->ns);
    xfree(fl->topic);
    memset(fl, 0, sizeof(*fl));
}

/* ==== The set ==== */

struct flow_set *flow_set_new(void)
{
    struct flow_set *fs = xcalloc(1, sizeof(struct flow_set));
    fs->refs = 1;
    return fs;
}

struct flow_set *flow_set_ref(struct flow_set *fs)
{
    assert(fs->refs > 0);
    fs->refs++;
    return fs;
}

void flow_set_free(struct flow_set *fs)
{
    if (!fs) {
        return;
    }
    assert(fs->refs > 0);
    if (--fs->refs > 0) {
        return;
    }
    for (size_t i = 0; i < fs->nflows; i++) {
        flow_deinit(&fs->flows[i]);
    }
    xfree(fs->flows);
    xfree(fs);
}

/* The flows array moves when it grows, so back pointers are set again after each change. */
static void link_triggers(struct flow_set *fs)
{
    for (size_t i = 0; i < fs->nflows; i++) {
        for (size_t j = 0; j < fs->flows[i].ntriggers; j++) {
            fs->flows[i].triggers[j].flow = &fs->flows[i];
        }
    }
}

const struct flow *flow_set_find(const struct flow_set *fs, const char *ns, const char *flow_id)
{
    for (size_t i = 0; i < fs->nflows; i++) {
        if (strcmp(fs->flows[i].ns, ns) == 0 && strcmp(fs->flows[i].id, flow_id) == 0) {
            return &fs->flows[i];
        }
    }
    return NULL;
}

int flow_set_add_doc(struct flow_set *fs, const struct yml_doc *doc, struct diag_list *dl)
{
    struct flow fl;
    if (flow_parse_doc_compat(doc, fs->compat ? fs->compat : EXPR_COMPAT_DEFAULT, &fl, dl) != 0) {
        return -EINVAL;
    }
    const struct flow *first = flow_set_find(fs, fl.ns, fl.id);
    if (first) {
        diag_add(dl, fl.file, fl.line, fl.col, "flow '%s/%s' is already defined in %s:%d:%d", fl.ns,
                 fl.id, first->file, first->line, first->col);
        flow_deinit(&fl);
        return -EEXIST;
    }
    if (doc->text) {
        unsigned int n = FLOW_DIGEST_LEN;
        EVP_Digest(doc->text, strlen(doc->text), fl.digest, &n, EVP_sha256(), NULL);
    }
    fs->flows = xrealloc(fs->flows, (fs->nflows + 1) * sizeof(*fs->flows));
    fs->flows[fs->nflows++] = fl;
    link_triggers(fs);
    return 0;
}

bool flow_same(const struct flow *a, int compat_a, const struct flow *b, int compat_b)
{
    return compat_a == compat_b && strcmp(a->file, b->file) == 0 &&
           strcmp(a->topic ? a->topic : "", b->topic ? b->topic : "") == 0 &&
           memcmp(a->digest, b->digest, FLOW_DIGEST_LEN) == 0;
}

/* ==== Topics of the set ==== */

static const struct cfg_topic *topic_override(const struct cfg *cfg, const struct flow *fl)
{
    size_t nl = strlen(fl->ns);
    for (size_t i = 0; i < cfg->kafka.ntopics; i++) {
        const char *ref = cfg->kafka.topics[i].flow_ref;
        if (strncmp(ref, fl->ns, nl) == 0 && ref[nl] == '/' && strcmp(ref + nl + 1, fl->id) == 0) {
            return &cfg->kafka.topics[i];
        }
    }
    return NULL;
}

static void assign_topic(struct flow *fl, const struct cfg *cfg, struct diag_list *dl)
{
    const struct cfg_topic *ov = topic_override(cfg, fl);
    if (ov) {
        fl->topic = xstrdup(ov->topic);
        return;
    }
    char err[160];
    char *name =
        flow_topic_name(cfg->kafka.topic_template, fl->ns, fl->id, cfg->tenant, err, sizeof(err));
    if (!name) {
        diag_add(dl, fl->file, fl->line, fl->col, "%s", err);
        return;
    }
    if (!flow_topic_valid(name)) {
        diag_add(dl, fl->file, fl->line, fl->col,
                 "topic '%.64s%s' from kafka.topic_template is not a valid Kafka topic name "
                 "(1 to 249 characters of [A-Za-z0-9._-], not '.' or '..'); set one in "
                 "kafka.topics",
                 name, strlen(name) > 64 ? "..." : "");
        xfree(name);
        return;
    }
    fl->topic = name;
}

/*
 * Kafka refuses to create a topic whose name differs from an existing one only by '.' versus '_'
 * (both become '_' in metric names), so such names count as the same topic.
 */
static int topic_cmp(const char *a, const char *b)
{
    for (;; a++, b++) {
        char x = *a == '.' ? '_' : *a;
        char y = *b == '.' ? '_' : *b;
        if (x != y || !x) {
            return (unsigned char)x - (unsigned char)y;
        }
    }
}

/* Flows are compared by topic, then by place in the set's array, which is load order. */
static int cmp_by_topic(const void *pa, const void *pb)
{
    const struct flow *a = *(const struct flow *const *)pa;
    const struct flow *b = *(const struct flow *const *)pb;
    int c = topic_cmp(a->topic, b->topic);
    return c ? c : (a > b) - (a < b);
}

static void report_collision(const struct flow *first, const struct flow *fl, struct diag_list *dl)
{
    bool same = strcmp(first->topic, fl->topic) == 0;
    diag_add(dl, fl->file, fl->line, fl->col,
             "flow '%s/%s' publishes to topic '%s', which flow '%s/%s' (%s:%d:%d) already "
             "uses%s%s%s; give one of them its own topic in kafka.topics",
             fl->ns, fl->id, fl->topic, first->ns, first->id, first->file, first->line, first->col,
             same ? "" : " as '", same ? "" : first->topic,
             same ? "" : "' (Kafka treats '.' and '_' alike)");
}

/* Each group of flows sharing a topic is reported against the group's first flow. */
static void check_collisions(const struct flow_set *fs, struct diag_list *dl)
{
    const struct flow **v = xcalloc(fs->nflows, sizeof(*v));
    size_t n = 0;
    for (size_t i = 0; i < fs->nflows; i++) {
        if (fs->flows[i].topic) {
            v[n++] = &fs->flows[i];
        }
    }
    qsort(v, n, sizeof(*v), cmp_by_topic);
    size_t group = 0;
    for (size_t k = 1; k < n; k++) {
        if (topic_cmp(v[group]->topic, v[k]->topic) == 0) {
            report_collision(v[group], v[k], dl);
        } else {
            group = k;
        }
    }
    xfree(v);
}

/* A kafka.topics entry for a flow that is not loaded is harmless, but likely a typo. */
static void warn_unused_overrides(const struct flow_set *fs, const struct cfg *cfg)
{
    for (size_t i = 0; i < cfg->kafka.ntopics; i++) {
        const struct cfg_topic *t = &cfg->kafka.topics[i];
        bool used = false;
        for (size_t j = 0; j < fs->nflows && !used; j++) {
            used = topic_override(cfg, &fs->flows[j]) == t;
        }
        if (!used) {
            log_warn("%s:%d:%d: kafka.topics names flow '%s', which is not loaded",
                     cfg->file ? cfg->file : "config", t->line, t->col, t->flow_ref);
        }
    }
}

/*
 * A flow topic that is also the state or trigger-state topic would mix trigger messages with
 * the executors' reports. The defaults sit outside the default template's "webhooks." prefix
 * (which the reference executor subscribes to), but either may be configured into it.
 */
static void check_reserved(const struct flow_set *fs, const struct cfg *cfg, struct diag_list *dl)
{
    const char *reserved[] = {cfg->kafka.state_topic, cfg->kafka.triggers_topic};
    for (size_t i = 0; i < fs->nflows; i++) {
        const struct flow *fl = &fs->flows[i];
        for (size_t k = 0; fl->topic && k < 2; k++) {
            if (reserved[k] && topic_cmp(fl->topic, reserved[k]) == 0) {
                diag_add(dl, fl->file, fl->line, fl->col,
                         "topic '%.64s' is kafka.%s; set another one in kafka.topics", fl->topic,
                         k == 0 ? "state_topic" : "triggers_topic");
            }
        }
    }
}

int flow_set_finish(struct flow_set *fs, const struct cfg *cfg, struct diag_list *dl)
{
    size_t nerr = dl->n;
    link_triggers(fs);
    for (size_t i = 0; i < fs->nflows; i++) {
        xfree(fs->flows[i].topic);
        fs->flows[i].topic = NULL;
        assign_topic(&fs->flows[i], cfg, dl);
    }
    check_collisions(fs, dl);
    check_reserved(fs, cfg, dl);
    warn_unused_overrides(fs, cfg);
    return dl->n == nerr ? 0 : -EINVAL;
}

/* ==== Loading a folder ==== */

struct paths {
    char **v;
    size_t n;
};

static bool is_flow_file(const char *name)
{
    size_t n = strlen(name);
    return (n > 4 && strcmp(name + n - 4, ".yml") == 0) ||
           (n > 5 && strcmp(name + n - 5, ".yaml") == 0);
}

static void paths_push(struct paths *ps, char *path)
{
    ps->v = xrealloc(ps->v, (ps->n + 1) * sizeof(*ps->v));
    ps->v[ps->n++] = path;
}

static void list_dir(const char *dir, int depth, struct paths *ps, struct diag_list *dl);

/* One directory entry: a flow file is collected, a folder searched, anything else skipped. */
static void list_entry(const char *dir, const char *name, int depth, struct paths *ps,
                       struct diag_list *dl)
{
    size_t dl_len = strlen(dir);
    bool slash = dl_len > 0 && dir[dl_len - 1] == '/';
    char *path = xasprintf("%s%s%s", dir, slash ? "" : "/", name);
    struct stat st;
    if (stat(path, &st) != 0) {
        diag_add(dl, path, 0, 0, "cannot read: %s", strerror(errno));
    } else if (S_ISDIR(st.st_mode)) {
        list_dir(path, depth + 1, ps, dl);
    } else if (S_ISREG(st.st_mode) && is_flow_file(name)) {
        paths_push(ps, path);
        path = NULL;
    }
    xfree(path);
}

/* Dot-files and dot-folders (.git, editor swap files) are skipped. */
static void list_dir(const char *dir, int depth, struct paths *ps, struct diag_list *dl)
{
    if (depth > FLOW_DIR_DEPTH_MAX) {
        diag_add(dl, dir, 0, 0, "folders nested deeper than %d levels (a symlink loop?)",
                 FLOW_DIR_DEPTH_MAX);
        return;
    }
    DIR *d = opendir(dir);
    if (!d) {
        diag_add(dl, dir, 0, 0, "cannot open flows folder: %s", strerror(errno));
        return;
    }
    const struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] != '.') {
            list_entry(dir, de->d_name, depth, ps, dl);
        }
    }
    closedir(d);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/*
 * A missing flows_dir is reported under its own path, not at the config key: main.c may have
 * replaced the configured folder with a command-line one.
 */
static bool open_flows_dir(const struct cfg *cfg, struct diag_list *dl)
{
    struct stat st;
    if (stat(cfg->flows_dir, &st) != 0) {
        diag_add(dl, cfg->flows_dir, 0, 0, "cannot open flows_dir: %s", strerror(errno));
        return false;
    }
    if (!S_ISDIR(st.st_mode)) {
        diag_add(dl, cfg->flows_dir, 0, 0, "flows_dir is not a folder");
        return false;
    }
    return true;
}

struct flow_set *flow_set_load(const struct cfg *cfg, struct diag_list *dl)
{
    size_t nerr = dl->n;
    struct paths ps = {NULL, 0};
    struct flow_set *fs = flow_set_new();
    fs->compat = (int)cfg->kestra_compat;
    if (!open_flows_dir(cfg, dl)) {
        goto out;
    }
    list_dir(cfg->flows_dir, 0, &ps, dl);
    if (ps.n > 1) {
        qsort(ps.v, ps.n, sizeof(*ps.v), cmp_str);
    }
    for (size_t i = 0; i < ps.n; i++) {
        struct yml_doc *doc = yml_load_file(ps.v[i], dl);
        if (doc) {
            flow_set_add_doc(fs, doc, dl);
        }
        yml_doc_free(doc);
    }
    flow_set_finish(fs, cfg, dl);
    if (ps.n == 0) {
        log_warn("no flow files (*.yml, *.yaml) in %s", cfg->flows_dir);
    }
out:
    for (size_t i = 0; i < ps.n; i++) {
        xfree(ps.v[i]);
    }
    xfree(ps.v);
    if (dl->n != nerr) {
        flow_set_free(fs);
        fs = NULL;
    }
    return fs;
}
