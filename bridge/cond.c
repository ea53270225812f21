/*
 * cond.c: Kestra's trigger condition types, read from the flow's YAML tree into a small tree of
 * compiled conditions, and their evaluation on one message. Expressions go through expr.c.
 * No I/O: load errors go to the caller's diag_list, evaluation reasons to the caller's buffer.
 */
#include "cond.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "prune.h"

#define COND_MAX_DEPTH 16
#define MULTIPLE_MSG "invalid webhook: conditions of type MultipleCondition are not supported"

enum ckind {
    K_EXPRESSION,
    K_NOT,
    K_OR,
    K_DAY_WEEK,
    K_DAY_WEEK_IN_MONTH,
    K_WEEKEND,
    K_TIME_BETWEEN,
    K_DATE_TIME_BETWEEN,
    K_EXECUTION_FLOW,
    K_EXECUTION_NAMESPACE,
    K_EXECUTION_STATUS,
    K_EXECUTION_LABELS,
    K_ALWAYS_FALSE, /* ExecutionOutputs, HasRetryAttempt: a new execution has neither */
};

/* One condition type: its short name, its properties (all others are errors, as Jackson reads
 * Kestra flows), and which of them are required. */
struct ctype {
    const char *name;
    enum ckind kind;
    bool suffix_only; /* only reachable through a "...Condition" name (deprecated types) */
    const char *props[4];
    const char *required[3];
};

static const struct ctype TYPES[] = {
    {"Expression", K_EXPRESSION, false, {"expression"}, {"expression"}},
    {"Not", K_NOT, false, {"conditions"}, {"conditions"}},
    {"Or", K_OR, false, {"conditions"}, {"conditions"}},
    {"DayWeek", K_DAY_WEEK, false, {"date", "dayOfWeek"}, {"dayOfWeek"}},
    {"DayWeekInMonth",
     K_DAY_WEEK_IN_MONTH,
     false,
     {"date", "dayOfWeek", "dayInMonth"},
     {"dayOfWeek", "dayInMonth"}},
    {"Weekend", K_WEEKEND, false, {"date"}, {0}},
    {"TimeBetween", K_TIME_BETWEEN, false, {"date", "after", "before"}, {0}},
    {"DateTimeBetween", K_DATE_TIME_BETWEEN, false, {"date", "after", "before"}, {0}},
    {"ExecutionFlow", K_EXECUTION_FLOW, false, {"namespace", "flowId"}, {"namespace", "flowId"}},
    {"ExecutionNamespace",
     K_EXECUTION_NAMESPACE,
     false,
     {"namespace", "comparison", "prefix"},
     {"namespace"}},
    {"ExecutionStatus", K_EXECUTION_STATUS, false, {"in", "notIn"}, {0}},
    {"ExecutionLabels", K_EXECUTION_LABELS, false, {"labels"}, {"labels"}},
    {"ExecutionOutputs", K_ALWAYS_FALSE, false, {"expression"}, {"expression"}},
    {"HasRetryAttempt", K_ALWAYS_FALSE, false, {"in", "notIn"}, {0}},
    {"Flow", K_EXECUTION_FLOW, true, {"namespace", "flowId"}, {"namespace", "flowId"}},
    {"FlowNamespace", K_EXECUTION_NAMESPACE, true, {"namespace", "prefix"}, {"namespace"}},
};

/* State.Type, 0.20 plus the newest values; a new execution is CREATED. */
static const char *const STATES[] = {
    "CREATED",  "SUBMITTED", "RUNNING", "PAUSED",     "RESTARTED",   "KILLING",
    "SUCCESS",  "WARNING",   "FAILED",  "KILLED",     "CANCELLED",   "QUEUED",
    "RETRYING", "RETRIED",   "SKIPPED", "BREAKPOINT", "RESUBMITTED",
};

enum comparison { CMP_EQUALS, CMP_PREFIX, CMP_SUFFIX };

struct cnode {
    const struct ctype *type;
    int line, col;
    struct expr_prog *prog;  /* expression or date */
    struct expr_prog *a, *b; /* after/before, namespace/flowId, dayOfWeek/dayInMonth */
    struct cnode *kids;      /* Not, Or */
    size_t nkids;
    enum comparison cmp;
    bool status_ok; /* ExecutionStatus, decided at load: the state is CREATED */
    char **labels;  /* ExecutionLabels: key, value, key, value, ... */
    size_t nlabels;
};

struct cond {
    struct cnode *v;
    size_t n;
    struct expr_prog *when;
    int when_line, when_col;
    char *file;
    int compat;
};

/* ==== Loading ==== */

struct comp {
    const char *file;
    const struct yml_doc *doc;
    int compat;
    struct diag_list *dl;
    bool failed;
};

__attribute__((format(printf, 3, 4))) static void err_at(struct comp *cc, const struct yml_node *n,
                                                         const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    diag_add(cc->dl, cc->file, n ? n->line : 0, n ? n->col : 0, "%s", msg);
    size_t len;
    const char *line = cc->doc && n ? yml_line_text(cc->doc, n->line, &len) : NULL;
    if (line) {
        diag_set_snippet(cc->dl, line, n->col);
    }
    cc->failed = true;
}

static bool has_suffix(const char *s, size_t len, const char *suffix)
{
    size_t n = strlen(suffix);
    return len >= n && memcmp(s + len - n, suffix, n) == 0;
}

/*
 * Resolves a type name: io.kestra.plugin.core.condition.X, its alias ...XCondition, and the
 * legacy io.kestra.core.models.conditions.types.XCondition (VariableCondition is Expression).
 * Returns NULL after reporting why the name is refused.
 */
static const struct ctype *resolve_type(struct comp *cc, const struct yml_node *tn)
{
    static const char NEW_PKG[] = "io.kestra.plugin.core.condition.";
    static const char OLD_PKG[] = "io.kestra.core.models.conditions.types.";
    const char *t = tn->str;
    size_t len = tn->len;
    bool legacy = len > strlen(OLD_PKG) && !strncmp(t, OLD_PKG, strlen(OLD_PKG));
    bool current = len > strlen(NEW_PKG) && !strncmp(t, NEW_PKG, strlen(NEW_PKG));
    const char *base = legacy ? t + strlen(OLD_PKG) : current ? t + strlen(NEW_PKG) : t;
    size_t blen = len - (size_t)(base - t);
    bool suffixed = has_suffix(base, blen, "Condition");
    size_t short_len = suffixed ? blen - strlen("Condition") : blen;
    if ((legacy || current) && !strcmp(base, "MultipleCondition")) {
        err_at(cc, tn, MULTIPLE_MSG);
        return NULL;
    }
    if ((legacy || current) && (!strcmp(base, "VariableCondition"))) {
        return &TYPES[0];
    }
    for (size_t i = 0; (legacy || current) && (suffixed || !legacy) && i < ARRAY_LEN(TYPES); i++) {
        if (strlen(TYPES[i].name) == short_len && !memcmp(TYPES[i].name, base, short_len) &&
            (!TYPES[i].suffix_only || suffixed)) {
            return &TYPES[i];
        }
    }
    if ((legacy || current) && (!strncmp(base, "PublicHoliday", 13))) {
        err_at(cc, tn,
               "condition type %s is not supported by webhook-bridge (it needs a holiday "
               "calendar); use an Expression condition",
               t);
    } else if (!legacy && !current && short_len > 0) {
        err_at(cc, tn, "unknown condition type '%s' (did you mean %s%s?)", t, NEW_PKG, t);
    } else {
        err_at(cc, tn, "unknown condition type '%s'", t);
    }
    return NULL;
}

static struct expr_prog *compile_scalar(struct comp *cc, const struct yml_node *v, const char *what)
{
    if (v->kind != YML_SCALAR) {
        err_at(cc, v, "'%s' must be a string, not %s", what, yml_kind_name(v));
        return NULL;
    }
    struct expr_error err;
    struct expr_prog *prog = expr_compile(v->str, v->len, cc->compat, &err);
    if (!prog) {
        struct expr_src src = {
            .line = v->line, .col = v->col, .file_text = cc->doc ? cc->doc->text : NULL};
        expr_error_report(&err, v->str, v->len, cc->file, &src, cc->dl);
        cc->failed = true;
    }
    return prog;
}

/* A literal property checked at load (templates are checked when they render). */
static bool literal_ok(const struct expr_prog *prog, bool (*check)(const char *, size_t))
{
    size_t len;
    const char *s = expr_text(prog, &len);
    return !expr_is_constant(prog) || check(s, len);
}

static bool is_datetime(const char *s, size_t len)
{
    struct expr_time t;
    return expr_parse_datetime(s, len, &t);
}

static bool is_offset_time(const char *s, size_t len)
{
    int64_t ns;
    return expr_parse_offset_time(s, len, &ns);
}

static bool is_day_of_week(const char *s, size_t len)
{
    return expr_day_of_week(s, len) != 0;
}

static bool is_day_in_month(const char *s, size_t len)
{
    return expr_day_in_month(s, len) != 0;
}

/* A string property: compiled, and checked when it is literal text. */
static struct expr_prog *prop(struct comp *cc, const struct yml_node *map, const char *key,
                              bool (*check)(const char *, size_t), const char *expect)
{
    const struct yml_node *v = yml_map_get(map, key);
    if (!v || yml_is_null(v)) {
        return NULL;
    }
    struct expr_prog *prog = compile_scalar(cc, v, key);
    if (prog && check && !literal_ok(prog, check)) {
        err_at(cc, v, "'%s' must be %s", key, expect);
    }
    return prog;
}

static void compile_node(struct comp *cc, const struct yml_node *n, struct cnode *out, int depth);

static void compile_list(struct comp *cc, const struct yml_node *list, struct cnode **v, size_t *n,
                         int depth)
{
    *v = list->nitems ? xcalloc(list->nitems, sizeof(**v)) : NULL;
    *n = list->nitems;
    for (size_t i = 0; i < list->nitems; i++) {
        compile_node(cc, list->items[i], &(*v)[i], depth);
    }
}

static bool state_name(struct comp *cc, const struct yml_node *v)
{
    for (size_t i = 0; v->kind == YML_SCALAR && i < ARRAY_LEN(STATES); i++) {
        if (!strcmp(v->str, STATES[i])) {
            return true;
        }
    }
    err_at(cc, v, "unknown execution state '%s'", v->kind == YML_SCALAR ? v->str : "?");
    return false;
}

/* ExecutionStatus against the new execution's state, CREATED; decided once here. */
static void compile_status(struct comp *cc, const struct yml_node *map, struct cnode *c)
{
    c->status_ok = true;
    static const char *const KEYS[] = {"in", "notIn"};
    for (int k = 0; k < 2; k++) {
        const struct yml_node *list = yml_map_get(map, KEYS[k]);
        if (!list || yml_is_null(list)) {
            continue;
        }
        if (list->kind != YML_SEQ) {
            err_at(cc, list, "'%s' must be a list of states", KEYS[k]);
            continue;
        }
        bool has_created = false;
        for (size_t i = 0; i < list->nitems; i++) {
            if (state_name(cc, list->items[i])) {
                has_created |= !strcmp(list->items[i]->str, "CREATED");
            }
        }
        if ((k == 0 && !has_created) || (k == 1 && has_created)) {
            c->status_ok = false;
        }
    }
}

static void add_label(struct comp *cc, struct cnode *c, const struct yml_node *k,
                      const struct yml_node *v)
{
    if (!k || !v || k->kind != YML_SCALAR || v->kind != YML_SCALAR) {
        err_at(cc, v ? v : k, "a label needs a string key and a string value");
        return;
    }
    if (!strncmp(k->str, "system.", 7)) {
        err_at(cc, k, "system labels cannot be used in conditions");
        return;
    }
    c->labels = xrealloc(c->labels, (c->nlabels + 2) * sizeof(*c->labels));
    c->labels[c->nlabels++] = xstrndup(k->str, k->len);
    c->labels[c->nlabels++] = xstrndup(v->str, v->len);
}

/* labels: a map {key: value} or a list of {key, value} (ListOrMapOfLabelDeserializer). */
static void compile_labels(struct comp *cc, const struct yml_node *map, struct cnode *c)
{
    const struct yml_node *l = yml_map_get(map, "labels");
    if (l->kind == YML_MAP) {
        for (size_t i = 0; i < l->npairs; i++) {
            add_label(cc, c, l->pairs[i].key, l->pairs[i].value);
        }
    } else if (l->kind == YML_SEQ) {
        for (size_t i = 0; i < l->nitems; i++) {
            const struct yml_node *item = l->items[i];
            add_label(cc, c, yml_map_get(item, "key"), yml_map_get(item, "value"));
        }
    } else {
        err_at(cc, l, "'labels' must be a map or a list of {key, value}");
    }
}

static void compile_namespace(struct comp *cc, const struct yml_node *map, struct cnode *c)
{
    c->a = prop(cc, map, "namespace", NULL, NULL);
    const struct yml_node *cmp = yml_map_get(map, "comparison");
    const struct yml_node *prefix = yml_map_get(map, "prefix");
    c->cmp = CMP_EQUALS;
    if (prefix && !yml_is_null(prefix)) {
        int b = yml_bool(prefix);
        if (b < 0) {
            err_at(cc, prefix, "'prefix' must be true or false");
        }
        c->cmp = b == 1 ? CMP_PREFIX : CMP_EQUALS;
    }
    if (cmp && !yml_is_null(cmp)) {
        static const char *const NAMES[] = {"EQUALS", "PREFIX", "SUFFIX"};
        size_t i = 0;
        while (i < 3 && !(cmp->kind == YML_SCALAR && !strcmp(cmp->str, NAMES[i]))) {
            i++;
        }
        if (i == 3) {
            err_at(cc, cmp, "'comparison' must be EQUALS, PREFIX or SUFFIX");
        }
        c->cmp = i < 3 ? (enum comparison)i : CMP_EQUALS;
    }
}

static void compile_kind(struct comp *cc, const struct yml_node *map, struct cnode *c, int depth)
{
    static const char DEFAULT_DATE[] = "{{ trigger.date }}";
    switch (c->type->kind) {
    case K_EXPRESSION:
    case K_ALWAYS_FALSE:
        c->prog = prop(cc, map, "expression", NULL, NULL);
        if (c->type->kind == K_ALWAYS_FALSE) { /* HasRetryAttempt: check the state names */
            compile_status(cc, map, c);
        }
        break;
    case K_NOT:
    case K_OR: {
        const struct yml_node *list = yml_map_get(map, "conditions");
        if (list->kind != YML_SEQ || list->nitems == 0) {
            err_at(cc, list, "'conditions' must be a non-empty list");
        } else {
            compile_list(cc, list, &c->kids, &c->nkids, depth + 1);
        }
        break;
    }
    case K_DAY_WEEK:
    case K_DAY_WEEK_IN_MONTH:
    case K_WEEKEND:
    case K_TIME_BETWEEN:
    case K_DATE_TIME_BETWEEN:
        c->prog = prop(cc, map, "date", NULL, NULL);
        if (!c->prog) { /* absent or null: Kestra's default, undefined for webhooks */
            c->prog = expr_compile(DEFAULT_DATE, strlen(DEFAULT_DATE), cc->compat, NULL);
        }
        if (c->type->kind == K_DAY_WEEK || c->type->kind == K_DAY_WEEK_IN_MONTH) {
            c->a = prop(cc, map, "dayOfWeek", is_day_of_week, "MONDAY ... SUNDAY");
            c->b = prop(cc, map, "dayInMonth", is_day_in_month,
                        "FIRST, SECOND, THIRD, FOURTH or LAST");
        } else if (c->type->kind == K_TIME_BETWEEN || c->type->kind == K_DATE_TIME_BETWEEN) {
            bool dt = c->type->kind == K_DATE_TIME_BETWEEN;
            const char *expect = dt ? "an ISO-8601 date-time with an offset (2025-01-01T00:00:00Z)"
                                    : "an ISO-8601 time with an offset (16:00:00+02:00)";
            c->a = prop(cc, map, "after", dt ? is_datetime : is_offset_time, expect);
            c->b = prop(cc, map, "before", dt ? is_datetime : is_offset_time, expect);
            if (!yml_map_get(map, "after") && !yml_map_get(map, "before")) {
                err_at(cc, map, "condition %s needs 'after' or 'before'", c->type->name);
            }
        }
        break;
    case K_EXECUTION_FLOW:
        c->a = prop(cc, map, "namespace", NULL, NULL);
        c->b = prop(cc, map, "flowId", NULL, NULL);
        break;
    case K_EXECUTION_NAMESPACE:
        compile_namespace(cc, map, c);
        break;
    case K_EXECUTION_STATUS:
        compile_status(cc, map, c);
        break;
    case K_EXECUTION_LABELS:
        compile_labels(cc, map, c);
        break;
    }
}

/* Every key must be `type` or a property of the type; required ones must be set (not null). */
static bool check_props(struct comp *cc, const struct yml_node *map, const struct ctype *t)
{
    bool ok = true;
    for (size_t i = 0; i < map->npairs; i++) {
        const char *k = map->pairs[i].key->str;
        bool known = !strcmp(k, "type");
        for (size_t j = 0; !known && j < ARRAY_LEN(t->props) && t->props[j]; j++) {
            known = !strcmp(k, t->props[j]);
        }
        if (!known) {
            err_at(cc, map->pairs[i].key, "unknown property '%s' for condition %s", k, t->name);
            ok = false;
        }
    }
    for (size_t j = 0; j < ARRAY_LEN(t->required) && t->required[j]; j++) {
        const struct yml_node *v = yml_map_get(map, t->required[j]);
        if (!v || yml_is_null(v)) {
            err_at(cc, v ? v : map, "condition %s needs '%s'", t->name, t->required[j]);
            ok = false;
        }
    }
    return ok;
}

static void compile_node(struct comp *cc, const struct yml_node *n, struct cnode *out, int depth)
{
    memset(out, 0, sizeof(*out));
    out->line = n->line;
    out->col = n->col;
    if (depth > COND_MAX_DEPTH) {
        err_at(cc, n, "conditions nested more than %d levels", COND_MAX_DEPTH);
        return;
    }
    if (n->kind != YML_MAP) {
        err_at(cc, n, "a condition must be a map with a 'type', not %s", yml_kind_name(n));
        return;
    }
    const struct yml_node *tn = yml_map_get(n, "type");
    if (!tn || tn->kind != YML_SCALAR || yml_is_null(tn)) {
        err_at(cc, tn ? tn : n, "a condition needs a 'type'");
        return;
    }
    if (!(out->type = resolve_type(cc, tn)) || !check_props(cc, n, out->type)) {
        return;
    }
    compile_kind(cc, n, out, depth);
}

static void free_nodes(struct cnode *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        expr_free(v[i].prog);
        expr_free(v[i].a);
        expr_free(v[i].b);
        free_nodes(v[i].kids, v[i].nkids);
        for (size_t k = 0; k < v[i].nlabels; k++) {
            xfree(v[i].labels[k]);
        }
        xfree(v[i].labels);
    }
    xfree(v);
}

void cond_free(struct cond *c)
{
    if (!c) {
        return;
    }
    free_nodes(c->v, c->n);
    expr_free(c->when);
    xfree(c->file);
    xfree(c);
}

struct cond *cond_compile(const struct yml_node *conditions, const struct yml_node *when,
                          const char *file, const struct yml_doc *doc, int compat,
                          struct diag_list *dl)
{
    struct comp cc = {.file = file, .doc = doc, .compat = compat, .dl = dl};
    struct cond *c = xcalloc(1, sizeof(*c));
    c->file = xstrdup(file ? file : "");
    c->compat = compat;
    if (conditions && !yml_is_null(conditions)) {
        if (conditions->kind != YML_SEQ) {
            err_at(&cc, conditions, "'conditions' must be a list, not %s",
                   yml_kind_name(conditions));
        } else {
            compile_list(&cc, conditions, &c->v, &c->n, 0);
        }
    }
    if (when && !yml_is_null(when)) {
        c->when = compile_scalar(&cc, when, "when");
        c->when_line = when->line;
        c->when_col = when->col;
    }
    if (cc.failed) {
        cond_free(c);
        return NULL;
    }
    return c;
}

bool cond_is_empty(const struct cond *c)
{
    return c->n == 0 && !c->when;
}

/* ==== What conditions read ==== */

static void node_reads(const struct cnode *v, size_t n, struct prune_paths *reads)
{
    for (size_t i = 0; i < n; i++) {
        /* ExecutionOutputs keeps a compiled `expression` it never renders: counting it is safe. */
        const struct expr_prog *progs[] = {v[i].prog, v[i].a, v[i].b};
        for (size_t k = 0; k < ARRAY_LEN(progs); k++) {
            if (progs[k]) {
                expr_trigger_reads(progs[k], reads);
            }
        }
        node_reads(v[i].kids, v[i].nkids, reads);
    }
}

struct prune_paths *cond_reads_new(const struct cond *c)
{
    if (!c) {
        return NULL;
    }
    struct prune_paths *reads = prune_new();
    node_reads(c->v, c->n, reads);
    if (c->when) {
        expr_trigger_reads(c->when, reads);
    }
    if (prune_is_whole(reads)) {
        prune_free(reads);
        return NULL;
    }
    return reads;
}

/* ==== Evaluation ==== */

enum result { R_ERROR = -1, R_FALSE = 0, R_TRUE = 1 };

/* The render buffer, reused across requests on this thread; a big one is not kept. */
static _Thread_local struct sbuf scratch;

static void scratch_done(void)
{
    if (scratch.cap > 64 * 1024) {
        sbuf_deinit(&scratch);
    }
}

/* Renders a property into `scratch`; R_ERROR with the reason in why. */
static enum result render(const struct expr_prog *p, const struct expr_env *env, char *why,
                          size_t whysz)
{
    sbuf_reset(&scratch);
    return expr_render(p, env, &scratch, why, whysz) == 0 ? R_TRUE : R_ERROR;
}

static enum result fail(char *why, size_t whysz, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static enum result fail(char *why, size_t whysz, const char *fmt, ...)
{
    if (whysz) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(why, whysz, fmt, ap);
        va_end(ap);
    }
    return R_ERROR;
}

/* The rendered `date` as a day number (DateUtils.parseLocalDate). */
static enum result date_days(const struct cnode *c, const struct expr_env *env, int64_t *days,
                             char *why, size_t whysz)
{
    if (render(c->prog, env, why, whysz) != R_TRUE) {
        return R_ERROR;
    }
    if (!expr_parse_local_date(scratch.data, scratch.len, days)) {
        return fail(why, whysz, "'date' did not render to an ISO-8601 date or date-time");
    }
    return R_TRUE;
}

/* dayOfWeek / dayInMonth: rendered, then read as the enum Kestra expects. */
static int enum_prop(const struct expr_prog *p, const struct expr_env *env,
                     int (*parse)(const char *, size_t), char *why, size_t whysz)
{
    if (render(p, env, why, whysz) != R_TRUE) {
        return -1;
    }
    int v = parse(scratch.data, scratch.len);
    if (!v) {
        fail(why, whysz, "a day property rendered to an unknown value");
        return -1;
    }
    return v;
}

static enum result eval_days(const struct cnode *c, const struct expr_env *env, char *why,
                             size_t whysz)
{
    int64_t days;
    if (date_days(c, env, &days, why, whysz) != R_TRUE) {
        return R_ERROR;
    }
    int wd = expr_weekday(days);
    if (c->type->kind == K_WEEKEND) {
        return wd >= 6 ? R_TRUE : R_FALSE;
    }
    int dow = enum_prop(c->a, env, expr_day_of_week, why, whysz);
    if (dow < 0) {
        return R_ERROR;
    }
    if (c->type->kind == K_DAY_WEEK) {
        return wd == dow ? R_TRUE : R_FALSE;
    }
    int pos = enum_prop(c->b, env, expr_day_in_month, why, whysz);
    if (pos < 0) {
        return R_ERROR;
    }
    return expr_is_day_week_in_month(days, dow, pos) ? R_TRUE : R_FALSE;
}

/* A bound of TimeBetween (nanoseconds on the UTC line within a day) or of DateTimeBetween
 * (nanoseconds since the epoch). R_FALSE when the bound is not set. */
static enum result bound(const struct expr_prog *p, bool datetime, const struct expr_env *env,
                         int64_t *out, char *why, size_t whysz)
{
    if (!p) {
        return R_FALSE;
    }
    if (render(p, env, why, whysz) != R_TRUE) {
        return R_ERROR;
    }
    struct expr_time t;
    if (datetime ? !expr_parse_datetime(scratch.data, scratch.len, &t)
                 : !expr_parse_offset_time(scratch.data, scratch.len, out)) {
        return fail(why, whysz, "'after' or 'before' did not render to an ISO-8601 %s",
                    datetime ? "date-time" : "time");
    }
    if (datetime) {
        *out = t.secs * 1000000000LL + t.nanos;
    }
    return R_TRUE;
}

/*
 * TimeBetween compares OffsetTimes, DateTimeBetween instants. Bounds are exclusive, as in
 * 0.20-1.x; Kestra 2.0's DateTimeBetween made them inclusive.
 */
static enum result eval_between(const struct cnode *c, const struct expr_env *env, int compat,
                                char *why, size_t whysz)
{
    bool dt = c->type->kind == K_DATE_TIME_BETWEEN;
    if (render(c->prog, env, why, whysz) != R_TRUE) {
        return R_ERROR;
    }
    struct expr_time t;
    if (!expr_parse_datetime(scratch.data, scratch.len, &t)) {
        return fail(why, whysz, "'date' did not render to an ISO-8601 date-time with an offset");
    }
    int64_t local = t.secs + t.offset;
    int64_t sod = ((local % 86400) + 86400) % 86400;
    int64_t x = dt ? t.secs * 1000000000LL + t.nanos : (sod - t.offset) * 1000000000LL + t.nanos;
    int64_t after, before;
    enum result ra = bound(c->a, dt, env, &after, why, whysz);
    if (ra == R_ERROR) {
        return R_ERROR;
    }
    enum result rb = bound(c->b, dt, env, &before, why, whysz);
    if (rb == R_ERROR) {
        return R_ERROR;
    }
    bool inclusive = dt && compat == EXPR_COMPAT_2;
    bool ok_after = ra != R_TRUE || (inclusive ? x >= after : x > after);
    bool ok_before = rb != R_TRUE || (inclusive ? x <= before : x < before);
    return ok_after && ok_before ? R_TRUE : R_FALSE;
}

static bool prop_equals(const struct expr_prog *p, const struct expr_env *env, struct strv want,
                        enum comparison cmp, enum result *r, char *why, size_t whysz)
{
    if ((*r = render(p, env, why, whysz)) != R_TRUE) {
        return false;
    }
    struct strv got = {scratch.data, scratch.len};
    const char *actual = want.ptr ? want.ptr : "";
    if (cmp == CMP_PREFIX) {
        return want.len >= got.len && !memcmp(actual, got.ptr, got.len);
    }
    if (cmp == CMP_SUFFIX) {
        return want.len >= got.len && !memcmp(actual + want.len - got.len, got.ptr, got.len);
    }
    return strv_eq((struct strv){actual, want.len}, got);
}

/* ExecutionLabels: every label must be on the execution with the same (string) value. */
static enum result eval_labels(const struct cnode *c, const struct expr_env *env)
{
    const msgpack_object *l = env->labels;
    for (size_t i = 0; i + 1 < c->nlabels; i += 2) {
        bool found = false;
        for (uint32_t k = 0; l && l->type == MSGPACK_OBJECT_MAP && k < l->via.map.size; k++) {
            const msgpack_object *key = &l->via.map.ptr[k].key, *val = &l->via.map.ptr[k].val;
            found |=
                key->type == MSGPACK_OBJECT_STR && val->type == MSGPACK_OBJECT_STR &&
                strv_eq_cstr((struct strv){key->via.str.ptr, key->via.str.size}, c->labels[i]) &&
                strv_eq_cstr((struct strv){val->via.str.ptr, val->via.str.size}, c->labels[i + 1]);
        }
        if (!found) {
            return R_FALSE;
        }
    }
    return R_TRUE;
}

static enum result eval_node(const struct cond *root, const struct cnode *c,
                             const struct expr_env *env, int compat, char *why, size_t whysz);

/* Or: the first true wins; Not: true when none is. A failing child fails the whole condition,
 * as Kestra's throwPredicate makes the stream throw. */
static enum result eval_kids(const struct cond *root, const struct cnode *c,
                             const struct expr_env *env, int compat, char *why, size_t whysz)
{
    for (size_t i = 0; i < c->nkids; i++) {
        char inner[256] = "";
        enum result r = eval_node(root, &c->kids[i], env, compat, inner, sizeof(inner));
        if (r == R_ERROR) {
            const struct cnode *k = &c->kids[i];
            return fail(why, whysz, "nested %s at %s:%d:%d failed: %s", k->type->name, root->file,
                        k->line, k->col, inner);
        }
        if (r == R_TRUE) {
            return c->type->kind == K_OR ? R_TRUE : R_FALSE;
        }
    }
    return c->type->kind == K_OR ? R_FALSE : R_TRUE;
}

static enum result eval_node(const struct cond *root, const struct cnode *c,
                             const struct expr_env *env, int compat, char *why, size_t whysz)
{
    enum result r = R_FALSE;
    switch (c->type->kind) {
    case K_EXPRESSION:
        if ((r = render(c->prog, env, why, whysz)) == R_TRUE) {
            r = expr_kestra_true(scratch.data, scratch.len) ? R_TRUE : R_FALSE;
        }
        return r;
    case K_NOT:
    case K_OR:
        return eval_kids(root, c, env, compat, why, whysz);
    case K_DAY_WEEK:
    case K_DAY_WEEK_IN_MONTH:
    case K_WEEKEND:
        return eval_days(c, env, why, whysz);
    case K_TIME_BETWEEN:
    case K_DATE_TIME_BETWEEN:
        return eval_between(c, env, compat, why, whysz);
    case K_EXECUTION_FLOW: {
        bool ok = prop_equals(c->a, env, env->ns, CMP_EQUALS, &r, why, whysz) &&
                  prop_equals(c->b, env, env->flow_id, CMP_EQUALS, &r, why, whysz);
        return r == R_ERROR ? R_ERROR : ok ? R_TRUE : R_FALSE;
    }
    case K_EXECUTION_NAMESPACE: {
        bool ok = prop_equals(c->a, env, env->ns, c->cmp, &r, why, whysz);
        return r == R_ERROR ? R_ERROR : ok ? R_TRUE : R_FALSE;
    }
    case K_EXECUTION_STATUS:
        return c->status_ok ? R_TRUE : R_FALSE;
    case K_EXECUTION_LABELS:
        return eval_labels(c, env);
    case K_ALWAYS_FALSE:
        return R_FALSE;
    }
    return R_FALSE;
}

/* Kestra 2.0's `when`: a render error is false; a template that wrote nothing (null) is true. */
static bool eval_when(const struct cond *c, const struct expr_env *env, char *why, size_t whysz)
{
    char inner[256] = "";
    bool wrote = false;
    sbuf_reset(&scratch);
    if (expr_render_ex(c->when, env, &scratch, &wrote, inner, sizeof(inner)) != 0) {
        fail(why, whysz, "when at %s:%d:%d failed: %s", c->file, c->when_line, c->when_col, inner);
        return false;
    }
    if (wrote && !expr_when_true(scratch.data, scratch.len)) {
        fail(why, whysz, "when at %s:%d:%d is false", c->file, c->when_line, c->when_col);
        return false;
    }
    return true;
}

bool cond_eval(const struct cond *c, const struct expr_env *env, char *why, size_t whysz)
{
    int compat = env->compat ? env->compat : c->compat;
    bool ok = true;
    if (whysz) {
        why[0] = '\0';
    }
    for (size_t i = 0; ok && i < c->n; i++) {
        const struct cnode *n = &c->v[i];
        char inner[384] = "";
        enum result r = eval_node(c, n, env, compat, inner, sizeof(inner));
        if (r != R_TRUE) {
            if (whysz) {
                snprintf(why, whysz, "condition %zu (%s at %s:%d:%d) %s%s", i + 1, n->type->name,
                         c->file, n->line, n->col, r == R_ERROR ? "failed: " : "is false", inner);
            }
            ok = false;
        }
    }
    if (ok && c->when) {
        ok = eval_when(c, env, why, whysz);
    }
    scratch_done();
    return ok;
}
