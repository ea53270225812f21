/*
 * cond_test.c: condition types from YAML: what each one decides for a message, how failures
 * inside Not/Or propagate, the `when` rule, and the load errors (with positions) for unknown,
 * unsupported and misconfigured conditions.
 */
#include "cond.h"

#include "prune.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>
#include <msgpack.h>

/* 2024-05-06T10:15:30Z, a Monday. */
#define NOW 1714990530

/* ==== Helpers ==== */

static void pack_json(msgpack_packer *pk, const json_t *j)
{
    const char *k;
    json_t *v;
    size_t i;
    switch (json_typeof(j)) {
    case JSON_OBJECT:
        msgpack_pack_map(pk, json_object_size(j));
        json_object_foreach((json_t *)j, k, v)
        {
            msgpack_pack_str_with_body(pk, k, strlen(k));
            pack_json(pk, v);
        }
        break;
    case JSON_ARRAY:
        msgpack_pack_array(pk, json_array_size(j));
        json_array_foreach(j, i, v)
        {
            pack_json(pk, v);
        }
        break;
    case JSON_STRING:
        msgpack_pack_str_with_body(pk, json_string_value(j), json_string_length(j));
        break;
    case JSON_INTEGER:
        msgpack_pack_int64(pk, json_integer_value(j));
        break;
    case JSON_REAL:
        msgpack_pack_double(pk, json_real_value(j));
        break;
    case JSON_TRUE:
        msgpack_pack_true(pk);
        break;
    case JSON_FALSE:
        msgpack_pack_false(pk);
        break;
    default:
        msgpack_pack_nil(pk);
    }
}

struct msg {
    msgpack_sbuffer sb;
    msgpack_zone zone;
    msgpack_object obj;
};

static void msg_init(struct msg *m, const char *json)
{
    json_error_t je;
    json_t *j = json_loads(json, 0, &je);
    assert_non_null(j);
    msgpack_sbuffer_init(&m->sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &m->sb, msgpack_sbuffer_write);
    pack_json(&pk, j);
    json_decref(j);
    msgpack_zone_init(&m->zone, 1024);
    size_t off = 0;
    assert_int_equal(msgpack_unpack(m->sb.data, m->sb.size, &off, &m->zone, &m->obj),
                     MSGPACK_UNPACK_SUCCESS);
}

static void msg_deinit(struct msg *m)
{
    msgpack_zone_destroy(&m->zone);
    msgpack_sbuffer_destroy(&m->sb);
}

/* Compiles the trigger map in `yaml` (keys conditions / when); NULL with errors in dl. */
static struct cond *compile(const char *yaml, int compat, struct diag_list *dl)
{
    diag_list_init(dl);
    struct yml_doc *doc = yml_load_string("flow.yaml", yaml, strlen(yaml), dl);
    assert_non_null(doc);
    struct cond *c = cond_compile(yml_map_get(doc->root, "conditions"),
                                  yml_map_get(doc->root, "when"), "flow.yaml", doc, compat, dl);
    yml_doc_free(doc);
    return c;
}

/* Evaluates `yaml` against a trigger message (JSON) and labels; checks the answer and, when
 * `why_has` is set, the reason. */
static void expect(const char *yaml, int compat, const char *trigger, const char *labels, bool want,
                   const char *why_has)
{
    struct diag_list dl;
    struct cond *c = compile(yaml, compat, &dl);
    if (!c) {
        diag_print(&dl, stderr);
    }
    assert_non_null(c);
    struct msg t, l;
    msg_init(&t, trigger ? trigger : "{\"headers\":{},\"parameters\":{}}");
    if (labels) {
        msg_init(&l, labels);
    }
    struct expr_env env = {
        .trigger = &t.obj,
        .flow_id = STRV_LIT("my-flow"),
        .ns = STRV_LIT("company.team"),
        .tenant = STRV_LIT("main"),
        .execution_id = STRV_LIT("exec"),
        .labels = labels ? &l.obj : NULL,
        .now = {NOW, 0},
    };
    char why[512];
    bool got = cond_eval(c, &env, why, sizeof(why));
    /* The same with `trigger` unpacked only where the conditions read it, as webhook.c does. */
    struct prune_paths *reads = cond_reads_new(c);
    if (reads) {
        msgpack_zone zone;
        msgpack_zone_init(&zone, 256);
        msgpack_object pruned;
        assert_int_equal(prune_unpack(reads, NULL, 0, t.sb.data, t.sb.size, &zone, &pruned), 0);
        struct expr_env penv = env;
        penv.trigger = &pruned;
        char pwhy[512];
        assert_int_equal(cond_eval(c, &penv, pwhy, sizeof(pwhy)), got);
        assert_string_equal(pwhy, why);
        msgpack_zone_destroy(&zone);
        prune_free(reads);
    }
    if (got != want || (why_has && !strstr(why, why_has))) {
        print_error("%s\n=> %s, why: %s\n", yaml, got ? "true" : "false", why);
    }
    assert_int_equal(got, want);
    if (why_has) {
        assert_non_null(strstr(why, why_has));
    }
    if (labels) {
        msg_deinit(&l);
    }
    msg_deinit(&t);
    cond_free(c);
    diag_list_deinit(&dl);
}

/* The load must fail; the first error must read `want` (file:line:col: message). */
static void expect_load_error(const char *yaml, const char *want)
{
    struct diag_list dl;
    struct cond *c = compile(yaml, 1, &dl);
    assert_null(c);
    assert_true(dl.n >= 1);
    char *got = diag_format(&dl.v[0]);
    if (strcmp(got, want) != 0) {
        print_error("got:  %s\nwant: %s\n", got, want);
    }
    assert_string_equal(got, want);
    xfree(got);
    diag_list_deinit(&dl);
}

#define EXPR(e)                                                                                    \
    "conditions:\n  - type: io.kestra.plugin.core.condition.Expression\n    expression: \"" e "\"" \
    "\n"

static const char BODY[] = "{\"headers\":{\"X-GitHub-Event\":[\"push\"]},\"parameters\":{},"
                           "\"body\":{\"hello\":\"world\",\"n\":5}}";

/* ==== Evaluation ==== */

static void no_conditions(void **state)
{
    (void)state;
    struct diag_list dl;
    struct cond *c = compile("id: x\n", 1, &dl);
    assert_non_null(c);
    assert_true(cond_is_empty(c));
    struct expr_env env = {.now = {NOW, 0}};
    assert_true(cond_eval(c, &env, NULL, 0));
    cond_free(c);
    diag_list_deinit(&dl);
    c = compile("conditions: []\n", 1, &dl);
    assert_non_null(c);
    assert_true(cond_is_empty(c));
    cond_free(c);
    diag_list_deinit(&dl);
    c = compile("conditions:\n", 1, &dl);
    assert_non_null(c);
    cond_free(c);
    diag_list_deinit(&dl);
    cond_free(NULL);
}

static void expression(void **state)
{
    (void)state;
    expect(EXPR("{{ trigger.body.hello == 'world' }}"), 1, BODY, NULL, true, NULL);
    expect(EXPR("{{ trigger.body.hello == 'mars' }}"), 1, BODY, NULL, false,
           "condition 1 (Expression at flow.yaml:2:5) is false");
    /* strict variables: an undefined name is an error, so the condition is false */
    expect(EXPR("{{ trigger.body.missing == 1 }}"), 1, BODY, NULL, false,
           "failed: could not perform equals comparison: trigger.body has no key 'missing'");
    expect(EXPR("{{ trigger.body.hello }}"), 1, "{\"headers\":{},\"parameters\":{}}", NULL, false,
           "trigger has no key 'body'");
    /* Kestra's truth rule: only blank and "false" are false */
    expect(EXPR("0"), 1, BODY, NULL, true, NULL);
    expect(EXPR("False"), 1, BODY, NULL, true, NULL);
    expect(EXPR(" false "), 1, BODY, NULL, false, NULL);
    expect(EXPR("{{ '' }}"), 1, BODY, NULL, false, NULL);
    /* AND of all, in order */
    expect("conditions:\n"
           "  - type: io.kestra.plugin.core.condition.Expression\n"
           "    expression: \"{{ trigger.body.n > 1 }}\"\n"
           "  - type: io.kestra.core.models.conditions.types.VariableCondition\n"
           "    expression: \"{{ trigger.body.n > 10 }}\"\n",
           1, BODY, NULL, false, "condition 2 (Expression at flow.yaml:4:5) is false");
    /* legacy and alias names */
    expect("conditions:\n  - type: io.kestra.core.models.conditions.types.ExpressionCondition\n"
           "    expression: \"{{ trigger.headers['X-GitHub-Event'][0] == 'push' }}\"\n",
           1, BODY, NULL, true, NULL);
    expect("conditions:\n  - type: io.kestra.plugin.core.condition.ExpressionCondition\n"
           "    expression: true\n",
           1, BODY, NULL, true, NULL);
}

static void not_or(void **state)
{
    (void)state;
    const char *or_ = "conditions:\n"
                      "  - type: io.kestra.plugin.core.condition.Or\n"
                      "    conditions:\n"
                      "      - type: io.kestra.plugin.core.condition.Expression\n"
                      "        expression: \"{{ trigger.body.n == 1 }}\"\n"
                      "      - type: io.kestra.plugin.core.condition.Expression\n"
                      "        expression: \"{{ trigger.body.n == 5 }}\"\n";
    expect(or_, 1, BODY, NULL, true, NULL);
    const char *not_ = "conditions:\n"
                       "  - type: io.kestra.plugin.core.condition.Not\n"
                       "    conditions:\n"
                       "      - type: io.kestra.plugin.core.condition.Expression\n"
                       "        expression: \"{{ trigger.body.n == 1 }}\"\n"
                       "      - type: io.kestra.core.models.conditions.types.OrCondition\n"
                       "        conditions:\n"
                       "          - type: io.kestra.plugin.core.condition.Expression\n"
                       "            expression: \"{{ trigger.body.hello == 'x' }}\"\n";
    expect(not_, 1, BODY, NULL, true, NULL);
    /* a failing child makes the whole condition false, even under Not (Kestra's throwPredicate) */
    const char *not_err = "conditions:\n"
                          "  - type: io.kestra.plugin.core.condition.Not\n"
                          "    conditions:\n"
                          "      - type: io.kestra.plugin.core.condition.Expression\n"
                          "        expression: \"{{ unknown }}\"\n";
    expect(not_err, 1, BODY, NULL, false,
           "condition 1 (Not at flow.yaml:2:5) failed: nested Expression at flow.yaml:4:9 failed: "
           "variable 'unknown' is not defined");
    /* Or stops at the first true child: a later failure is not reached */
    const char *or_short = "conditions:\n"
                           "  - type: io.kestra.plugin.core.condition.Or\n"
                           "    conditions:\n"
                           "      - type: io.kestra.plugin.core.condition.Expression\n"
                           "        expression: \"true\"\n"
                           "      - type: io.kestra.plugin.core.condition.Expression\n"
                           "        expression: \"{{ unknown }}\"\n";
    expect(or_short, 1, BODY, NULL, true, NULL);
}

static void dates(void **state)
{
    (void)state;
    /* the default date is {{ trigger.date }}: undefined for webhooks, so false, as in Kestra */
    expect(
        "conditions:\n  - type: io.kestra.plugin.core.condition.DayWeek\n    dayOfWeek: MONDAY\n",
        1, BODY, NULL, false, "trigger has no key 'date'");
    expect("conditions:\n  - type: io.kestra.plugin.core.condition.Weekend\n    date:\n", 1, BODY,
           NULL, false, "trigger has no key 'date'");
    expect("conditions:\n  - type: io.kestra.plugin.core.condition.DayWeek\n"
           "    date: \"{{ now() }}\"\n    dayOfWeek: MONDAY\n",
           1, BODY, NULL, true, NULL);
    expect("conditions:\n  - type: io.kestra.plugin.core.condition.DayWeek\n"
           "    date: \"2024-05-07\"\n    dayOfWeek: MONDAY\n",
           1, BODY, NULL, false, NULL);
    expect("conditions:\n  - type: io.kestra.core.models.conditions.types.WeekendCondition\n"
           "    date: \"2024-05-05T23:30:00-02:00\"\n",
           1, BODY, NULL, true, NULL);
    expect("conditions:\n  - type: io.kestra.plugin.core.condition.Weekend\n"
           "    date: \"{{ now() }}\"\n",
           1, BODY, NULL, false, NULL);
    expect("conditions:\n  - type: io.kestra.plugin.core.condition.DayWeekInMonth\n"
           "    date: \"{{ now() }}\"\n    dayOfWeek: MONDAY\n    dayInMonth: FIRST\n",
           1, BODY, NULL, true, NULL);
    expect("conditions:\n  - type: io.kestra.plugin.core.condition.DayWeekInMonth\n"
           "    date: \"2024-05-27\"\n    dayOfWeek: MONDAY\n    dayInMonth: LAST\n",
           1, BODY, NULL, true, NULL);
    expect("conditions:\n  - type: io.kestra.plugin.core.condition.DayWeekInMonth\n"
           "    date: \"2024-05-20\"\n    dayOfWeek: MONDAY\n    dayInMonth: LAST\n",
           1, BODY, NULL, false, NULL);
    /* now is 10:15:30Z = 12:15:30+02:00 */
    expect("conditions:\n  - type: io.kestra.plugin.core.condition.TimeBetween\n"
           "    date: \"{{ now() }}\"\n    after: \"12:00:00+02:00\"\n    before: "
           "\"13:00:00+02:00\"\n",
           1, BODY, NULL, true, NULL);
    expect("conditions:\n  - type: io.kestra.plugin.core.condition.TimeBetween\n"
           "    date: \"{{ now() }}\"\n    after: \"11:00:00Z\"\n",
           1, BODY, NULL, false, NULL);
    expect("conditions:\n  - type: io.kestra.plugin.core.condition.DateTimeBetween\n"
           "    date: \"{{ now() }}\"\n    after: \"2024-01-01T00:00:00Z\"\n"
           "    before: \"2024-12-31T23:59:59Z\"\n",
           1, BODY, NULL, true, NULL);
    /* bounds are exclusive in 0.20-1.x and inclusive in 2.0 */
    const char *edge = "conditions:\n  - type: io.kestra.plugin.core.condition.DateTimeBetween\n"
                       "    date: \"2024-05-06T12:15:30+02:00\"\n"
                       "    after: \"2024-05-06T10:15:30Z\"\n";
    expect(edge, 1, BODY, NULL, false, NULL);
    expect(edge, 2, BODY, NULL, true, NULL);
    expect("conditions:\n  - type: io.kestra.plugin.core.condition.DateTimeBetween\n"
           "    date: \"{{ trigger.body.hello }}\"\n    before: \"2030-01-01T00:00:00Z\"\n",
           1, BODY, NULL, false, "did not render to an ISO-8601 date-time");
}

static void execution_conditions(void **state)
{
    (void)state;
    expect("conditions:\n  - type: io.kestra.plugin.core.condition.ExecutionFlow\n"
           "    namespace: company.team\n    flowId: my-flow\n",
           1, BODY, NULL, true, NULL);
    expect("conditions:\n  - type: io.kestra.plugin.core.condition.ExecutionFlow\n"
           "    namespace: company.team\n    flowId: other\n",
           1, BODY, NULL, false, NULL);
    expect("conditions:\n  - type: io.kestra.plugin.core.condition.ExecutionNamespace\n"
           "    namespace: company\n    comparison: PREFIX\n",
           1, BODY, NULL, true, NULL);
    expect("conditions:\n  - type: io.kestra.plugin.core.condition.ExecutionNamespace\n"
           "    namespace: company\n",
           1, BODY, NULL, false, NULL);
    expect("conditions:\n  - type: io.kestra.plugin.core.condition.ExecutionNamespace\n"
           "    namespace: .team\n    comparison: SUFFIX\n",
           1, BODY, NULL, true, NULL);
    expect("conditions:\n  - type: io.kestra.core.models.conditions.types.FlowNamespaceCondition\n"
           "    namespace: company\n    prefix: true\n",
           1, BODY, NULL, true, NULL);
    expect("conditions:\n  - type: io.kestra.plugin.core.condition.ExecutionStatus\n"
           "    in: [CREATED, RUNNING]\n",
           1, BODY, NULL, true, NULL);
    expect("conditions:\n  - type: io.kestra.plugin.core.condition.ExecutionStatus\n"
           "    in: [FAILED]\n",
           1, BODY, NULL, false, NULL);
    expect("conditions:\n  - type: io.kestra.plugin.core.condition.ExecutionStatus\n"
           "    notIn: [CREATED]\n",
           1, BODY, NULL, false, NULL);
    expect("conditions:\n  - type: io.kestra.plugin.core.condition.ExecutionLabels\n"
           "    labels:\n      team: data\n",
           1, BODY, "{\"team\":\"data\",\"env\":\"prod\"}", true, NULL);
    expect("conditions:\n  - type: io.kestra.plugin.core.condition.ExecutionLabels\n"
           "    labels:\n      - key: team\n        value: web\n",
           1, BODY, "{\"team\":\"data\"}", false, NULL);
    expect("conditions:\n  - type: io.kestra.plugin.core.condition.ExecutionLabels\n"
           "    labels:\n      team: data\n",
           1, BODY, NULL, false, NULL);
    expect("conditions:\n  - type: io.kestra.plugin.core.condition.ExecutionOutputs\n"
           "    expression: \"{{ true }}\"\n",
           1, BODY, NULL, false, NULL);
}

static void when_rule(void **state)
{
    (void)state;
    expect("when: \"{{ trigger.body.hello == 'world' }}\"\n", 2, BODY, NULL, true, NULL);
    expect("when: \"{{ trigger.body.n - 5 }}\"\n", 2, BODY, NULL, false,
           "when at flow.yaml:1:7 is false");
    expect("when: \"{{ 'False' }}\"\n", 2, BODY, NULL, true, NULL);
    expect("when: \"{{ unknown }}\"\n", 2, BODY, NULL, false, "when at flow.yaml:1:7 failed");
    expect("when: \"{{ null }}\"\n", 2, BODY, NULL, true, NULL);
    expect("when: false\n", 1, BODY, NULL, false, NULL);
    expect("when:\n", 2, BODY, NULL, true, NULL);
    /* conditions and when together: both must hold */
    expect(EXPR("true") "when: \"0\"\n", 1, BODY, NULL, false, "when");
    /* 2.0 precedence applies to when under compat 2 */
    expect("when: \"{{ trigger.body.hello ?? 'x' | upper == 'world' }}\"\n", 2, BODY, NULL, true,
           NULL);
}

/* ==== Load errors ==== */

static void load_errors(void **state)
{
    (void)state;
    expect_load_error("conditions:\n  - type: io.kestra.plugin.core.condition.MultipleCondition\n"
                      "    id: x\n",
                      "flow.yaml:2:11: invalid webhook: conditions of type MultipleCondition are "
                      "not supported");
    expect_load_error(
        "conditions:\n  - type: io.kestra.core.models.conditions.types.MultipleCondition\n",
        "flow.yaml:2:11: invalid webhook: conditions of type MultipleCondition are "
        "not supported");
    expect_load_error(
        "conditions:\n  - type: io.kestra.plugin.core.condition.PublicHoliday\n",
        "flow.yaml:2:11: condition type io.kestra.plugin.core.condition.PublicHoliday "
        "is not supported by webhook-bridge (it needs a holiday calendar); use an "
        "Expression condition");
    expect_load_error(
        "conditions:\n  - type: io.kestra.plugin.core.condition.Nope\n",
        "flow.yaml:2:11: unknown condition type 'io.kestra.plugin.core.condition.Nope'");
    expect_load_error("conditions:\n  - type: Expression\n    expression: x\n",
                      "flow.yaml:2:11: unknown condition type 'Expression' (did you mean "
                      "io.kestra.plugin.core.condition.Expression?)");
    expect_load_error("conditions:\n  - type: io.kestra.core.models.conditions.types.Expression\n",
                      "flow.yaml:2:11: unknown condition type "
                      "'io.kestra.core.models.conditions.types.Expression'");
    expect_load_error("conditions:\n  - type: io.kestra.plugin.core.condition.Expression\n"
                      "    expresion: x\n",
                      "flow.yaml:3:5: unknown property 'expresion' for condition Expression");
    expect_load_error("conditions:\n  - type: io.kestra.plugin.core.condition.Expression\n",
                      "flow.yaml:2:5: condition Expression needs 'expression'");
    expect_load_error("conditions:\n  - expression: x\n",
                      "flow.yaml:2:5: a condition needs a 'type'");
    expect_load_error("conditions:\n  - just a string\n",
                      "flow.yaml:2:5: a condition must be a map with a 'type', not a string");
    expect_load_error("conditions: {}\n", "flow.yaml:1:13: 'conditions' must be a list, not a map");
    expect_load_error("conditions:\n  - type: io.kestra.plugin.core.condition.DayWeek\n"
                      "    dayOfWeek: MONDAYS\n",
                      "flow.yaml:3:16: 'dayOfWeek' must be MONDAY ... SUNDAY");
    expect_load_error("conditions:\n  - type: io.kestra.plugin.core.condition.DateTimeBetween\n"
                      "    after: 2025-13-01T00:00:00Z\n",
                      "flow.yaml:3:12: 'after' must be an ISO-8601 date-time with an offset "
                      "(2025-01-01T00:00:00Z)");
    expect_load_error("conditions:\n  - type: io.kestra.plugin.core.condition.TimeBetween\n"
                      "    date: \"{{ now() }}\"\n",
                      "flow.yaml:2:5: condition TimeBetween needs 'after' or 'before'");
    expect_load_error("conditions:\n  - type: io.kestra.plugin.core.condition.Not\n"
                      "    conditions: []\n",
                      "flow.yaml:3:17: 'conditions' must be a non-empty list");
    expect_load_error("conditions:\n  - type: io.kestra.plugin.core.condition.Or\n    conditions:\n"
                      "      - type: io.kestra.plugin.core.condition.MultipleCondition\n",
                      "flow.yaml:4:15: invalid webhook: conditions of type MultipleCondition are "
                      "not supported");
    expect_load_error("conditions:\n  - type: io.kestra.plugin.core.condition.ExecutionStatus\n"
                      "    in: [CREATED, DONE]\n",
                      "flow.yaml:3:19: unknown execution state 'DONE'");
    expect_load_error("conditions:\n  - type: io.kestra.plugin.core.condition.ExecutionNamespace\n"
                      "    namespace: a\n    comparison: STARTS\n",
                      "flow.yaml:4:17: 'comparison' must be EQUALS, PREFIX or SUFFIX");
    expect_load_error("conditions:\n  - type: io.kestra.plugin.core.condition.ExecutionLabels\n"
                      "    labels:\n      system.from: x\n",
                      "flow.yaml:4:7: system labels cannot be used in conditions");
    expect_load_error("conditions:\n  - type: io.kestra.plugin.core.condition.HasRetryAttempt\n"
                      "    notIn: [NOPE]\n",
                      "flow.yaml:3:13: unknown execution state 'NOPE'");
    expect_load_error("conditions:\n  - type: io.kestra.plugin.core.condition.Expression\n"
                      "    expression: {a: 1}\n",
                      "flow.yaml:3:17: 'expression' must be a string, not a map");
    expect_load_error("when: [a]\n", "flow.yaml:1:7: 'when' must be a string, not a list");
}

/* An expression that does not compile: file:line:col of the offending character, with a caret. */
static void expression_errors(void **state)
{
    (void)state;
    struct diag_list dl;
    struct cond *c = compile("triggers:\n"
                             "conditions:\n"
                             "  - type: io.kestra.plugin.core.condition.Expression\n"
                             "    expression: \"{{ trigger.body.hello => 'x' }}\"\n",
                             1, &dl);
    assert_null(c);
    assert_int_equal(dl.n, 1);
    char *s = diag_format(&dl.v[0]);
    assert_string_equal(s, "flow.yaml:4:40: expected '}}', found '='");
    xfree(s);
    assert_non_null(dl.v[0].snippet);
    assert_non_null(strstr(dl.v[0].snippet, "expression: \"{{ trigger.body.hello => 'x' }}\""));
    diag_list_deinit(&dl);

    /* block scalar: the error is on the second content line */
    c = compile("conditions:\n"
                "  - type: io.kestra.plugin.core.condition.Expression\n"
                "    expression: |\n"
                "      {{ trigger.body.hello\n"
                "         | nosuch }}\n",
                1, &dl);
    assert_null(c);
    s = diag_format(&dl.v[0]);
    assert_string_equal(s, "flow.yaml:5:12: unknown filter 'nosuch'");
    xfree(s);
    diag_list_deinit(&dl);

    /* all errors are reported, not only the first */
    c = compile("conditions:\n"
                "  - type: io.kestra.plugin.core.condition.Expression\n"
                "    expression: \"{{ a b }}\"\n"
                "  - type: io.kestra.plugin.core.condition.Nope\n"
                "when: \"{{ }}\"\n",
                1, &dl);
    assert_null(c);
    assert_int_equal(dl.n, 3);
    diag_list_deinit(&dl);
}

/* What a trigger's conditions read of `trigger`, over every condition type and `when`. */
static void reads(void **state)
{
    (void)state;
    static const struct {
        const char *yaml;
        const char *want; /* NULL: everything (the message is unpacked whole) */
    } CASES[] = {
        {"conditions: []\n", "{}"},
        {EXPR("{{ trigger.body.ref == 'refs/heads/main' }}"), "{body:{ref:*}}"},
        {"conditions:\n"
         "  - type: io.kestra.plugin.core.condition.Expression\n"
         "    expression: \"{{ trigger.headers['X-GitHub-Event'][0] == 'push' }}\"\n"
         "  - type: io.kestra.plugin.core.condition.Not\n"
         "    conditions:\n"
         "      - type: io.kestra.plugin.core.condition.Or\n"
         "        conditions:\n"
         "          - type: io.kestra.core.models.conditions.types.VariableCondition\n"
         "            expression: \"{{ trigger.body.a }}\"\n"
         "          - type: io.kestra.plugin.core.condition.ExecutionFlow\n"
         "            namespace: \"{{ trigger.parameters.ns[0] }}\"\n"
         "            flowId: \"{{ trigger.parameters.id[0] }}\"\n"
         "  - type: io.kestra.plugin.core.condition.DayWeek\n"
         "    dayOfWeek: \"{{ trigger.body.day }}\"\n"
         "  - type: io.kestra.plugin.core.condition.TimeBetween\n"
         "    date: \"{{ trigger.body.at }}\"\n"
         "    after: \"{{ trigger.body.from }}\"\n"
         "when: \"{{ trigger.body.when }}\"\n",
         "{headers:{X-GitHub-Event:*},body:{a:*,day:*,at:*,from:*,when:*},"
         "parameters:{ns:*,id:*},date:*}"}, /* DayWeek has no date: trigger.date */
        /* DayWeek without a date reads Kestra's default, {{ trigger.date }}. */
        {"conditions:\n  - type: io.kestra.plugin.core.condition.Weekend\n", "{date:*}"},
        {"conditions:\n  - type: io.kestra.plugin.core.condition.ExecutionLabels\n"
         "    labels: {team: data}\n",
         "{}"},
        {"when: \"{{ trigger.body.ok }}\"\n", "{body:{ok:*}}"},
        {EXPR("{{ trigger.body[trigger.parameters.k[0]] }}"), "{body:*,parameters:{k:*}}"},
        {EXPR("{{ trigger | length > 0 }}"), NULL},
        {"conditions:\n"
         "  - type: io.kestra.plugin.core.condition.Expression\n"
         "    expression: \"{{ trigger.body.a }}\"\n"
         "when: \"{{ trigger }}\"\n",
         NULL},
    };
    for (size_t i = 0; i < ARRAY_LEN(CASES); i++) {
        struct diag_list dl;
        struct cond *c = compile(CASES[i].yaml, 1, &dl);
        if (!c) {
            diag_print(&dl, stderr);
        }
        assert_non_null(c);
        struct prune_paths *r = cond_reads_new(c);
        if (!CASES[i].want) {
            assert_null(r);
        } else {
            assert_non_null(r);
            struct sbuf b;
            sbuf_init(&b);
            prune_format(r, &b);
            sbuf_append(&b, "", 1);
            if (strcmp(b.data, CASES[i].want) != 0) {
                print_error("case %zu: got %s\n", i, b.data);
            }
            assert_string_equal(b.data, CASES[i].want);
            sbuf_deinit(&b);
        }
        prune_free(r);
        cond_free(c);
        diag_list_deinit(&dl);
    }
    assert_null(cond_reads_new(NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(no_conditions),
        cmocka_unit_test(expression),
        cmocka_unit_test(not_or),
        cmocka_unit_test(dates),
        cmocka_unit_test(execution_conditions),
        cmocka_unit_test(when_rule),
        cmocka_unit_test(load_errors),
        cmocka_unit_test(expression_errors),
        cmocka_unit_test(reads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
