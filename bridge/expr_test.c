/*
 * expr_test.c: runs the table of cases in testdata/expr.cases (run from bridge/), then unit
 * tests for what a table cannot express: error positions in YAML, truth rules, duplicate map
 * keys, limits. The JSON → msgpack conversion uses jansson: a cold path, fine for tests.
 */
#include "expr.h"

#include "prune.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <jansson.h>
#include <msgpack.h>

#define CASES_FILE "testdata/expr.cases"
#define MIN_CASES 200

/* 2024-05-06T10:15:30.123456Z, a Monday. */
#define DEFAULT_NOW_SEC 1714990530
#define DEFAULT_NOW_NSEC 123456000

/* ==== JSON → msgpack ==== */

static void pack_json(msgpack_packer *pk, const json_t *j)
{
    switch (json_typeof(j)) {
    case JSON_OBJECT: {
        const char *k;
        json_t *v;
        msgpack_pack_map(pk, json_object_size(j));
        json_object_foreach((json_t *)j, k, v)
        {
            msgpack_pack_str_with_body(pk, k, strlen(k));
            pack_json(pk, v);
        }
        break;
    }
    case JSON_ARRAY: {
        size_t i;
        json_t *v;
        msgpack_pack_array(pk, json_array_size(j));
        json_array_foreach(j, i, v)
        {
            pack_json(pk, v);
        }
        break;
    }
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

/* A msgpack value for j, unpacked into a zone the caller frees. */
struct packed {
    msgpack_sbuffer sb;
    msgpack_zone zone;
    msgpack_object obj;
};

static void packed_init(struct packed *p, const json_t *j)
{
    msgpack_sbuffer_init(&p->sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &p->sb, msgpack_sbuffer_write);
    pack_json(&pk, j);
    msgpack_zone_init(&p->zone, 2048);
    size_t off = 0;
    int rc = msgpack_unpack(p->sb.data, p->sb.size, &off, &p->zone, &p->obj);
    assert_int_equal(rc, MSGPACK_UNPACK_SUCCESS);
}

static void packed_deinit(struct packed *p)
{
    msgpack_zone_destroy(&p->zone);
    msgpack_sbuffer_destroy(&p->sb);
}

/* ==== One environment from the input line ==== */

struct tenv {
    json_t *root;
    struct packed trigger, labels;
    bool has_labels;
    struct expr_env env;
};

static struct strv jstr(json_t *obj, const char *key, const char *dflt)
{
    json_t *v = json_object_get(obj, key);
    if (json_is_null(v) && v) {
        return (struct strv){NULL, 0};
    }
    const char *s = json_is_string(v) ? json_string_value(v) : dflt;
    return (struct strv){s, s ? strlen(s) : 0};
}

/* Input JSON: {"trigger": {...}, "flow": {"id", "namespace", "tenantId"}, "execution": {"id"},
 * "labels": {...}, "compat": 2, "now": seconds}; "-" is {} (a trigger without a body). */
static bool tenv_init(struct tenv *t, const char *input, char *err, size_t errsz)
{
    memset(t, 0, sizeof(*t));
    json_error_t je;
    t->root = json_loads(strcmp(input, "-") ? input : "{}", 0, &je);
    if (!t->root || !json_is_object(t->root)) {
        snprintf(err, errsz, "bad input JSON: %s", t->root ? "not an object" : je.text);
        json_decref(t->root);
        t->root = NULL;
        return false;
    }
    json_t *trig = json_object_get(t->root, "trigger");
    json_t *empty = json_pack("{s:{},s:{}}", "headers", "parameters");
    packed_init(&t->trigger, trig ? trig : empty);
    json_decref(empty);
    t->env.trigger = &t->trigger.obj;
    json_t *labels = json_object_get(t->root, "labels");
    if (labels) {
        packed_init(&t->labels, labels);
        t->has_labels = true;
        t->env.labels = &t->labels.obj;
    }
    json_t *flow = json_object_get(t->root, "flow");
    t->env.flow_id = jstr(flow, "id", "my-flow");
    t->env.ns = jstr(flow, "namespace", "company.team");
    t->env.tenant = jstr(flow, "tenantId", "main");
    t->env.execution_id =
        jstr(json_object_get(t->root, "execution"), "id", "4wjtkzwVGBM9yKnjm3yv8r");
    t->env.compat = (int)json_integer_value(json_object_get(t->root, "compat"));
    json_t *now = json_object_get(t->root, "now");
    t->env.now.tv_sec = now ? (time_t)json_integer_value(now) : DEFAULT_NOW_SEC;
    t->env.now.tv_nsec = now ? 0 : DEFAULT_NOW_NSEC;
    return true;
}

static void tenv_deinit(struct tenv *t)
{
    if (!t->root) {
        return;
    }
    packed_deinit(&t->trigger);
    if (t->has_labels) {
        packed_deinit(&t->labels);
    }
    json_decref(t->root);
}

/* ==== The case table ==== */

struct tcase {
    int line;
    char *tmpl;
    char *input;
    char *expect;
};

static char *chomp_dup(const char *s)
{
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r')) {
        n--;
    }
    return xstrndup(s, n);
}

/* "esc:" lines are C-escaped (\n, \t, \\), so a case can hold a multi-line template. */
static char *unescape_line(const char *s)
{
    if (strncmp(s, "esc:", 4) != 0) {
        return xstrdup(s);
    }
    char *out = xmalloc(strlen(s) + 1);
    size_t o = 0;
    for (const char *p = s + 4; *p; p++) {
        if (*p == '\\' && p[1]) {
            p++;
            out[o++] = *p == 'n' ? '\n' : *p == 't' ? '\t' : *p;
        } else {
            out[o++] = *p;
        }
    }
    out[o] = '\0';
    return out;
}

static size_t load_cases(struct tcase **out)
{
    FILE *f = fopen(CASES_FILE, "r");
    if (!f) {
        fail_msg("cannot open %s: run the test from bridge/", CASES_FILE);
    }
    char buf[8192];
    char *lines[3];
    int first = 0, lineno = 0, have = 0;
    size_t n = 0, cap = 0;
    struct tcase *v = NULL;
    for (;;) {
        char *got = fgets(buf, sizeof(buf), f);
        lineno++;
        bool blank = !got || buf[strspn(buf, " \t\r\n")] == '\0';
        if (got && have == 0 && buf[0] == '#') {
            continue;
        }
        if (!blank) {
            assert_true(have < 3); /* a case is three lines, then a blank line */
            if (have == 0) {
                first = lineno;
            }
            lines[have++] = chomp_dup(buf);
            continue;
        }
        if (have) {
            if (have != 3) {
                fail_msg("%s:%d: a case needs three lines, found %d", CASES_FILE, first, have);
            }
            if (n == cap) {
                cap = cap ? 2 * cap : 256;
                v = xrealloc(v, cap * sizeof(*v));
            }
            v[n].line = first;
            v[n].tmpl = unescape_line(lines[0]);
            v[n].input = lines[1];
            v[n].expect = lines[2];
            xfree(lines[0]);
            n++;
            have = 0;
        }
        if (!got) {
            break;
        }
    }
    fclose(f);
    *out = v;
    return n;
}

/*
 * Renders prog again with `trigger` unpacked only where expr_trigger_reads says it is read
 * (prune_unpack), as webhook.c does; any difference from the full render is a bug of the
 * analysis. Returns NULL when both agree, else a message (static buffer).
 */
static const char *pruned_differs(const struct expr_prog *prog, const struct tenv *t, int rc,
                                  const struct sbuf *out, bool wrote, const char *why)
{
    static char msg[512];
    struct prune_paths *reads = prune_new();
    expr_trigger_reads(prog, reads);
    msgpack_zone zone;
    msgpack_zone_init(&zone, 256);
    msgpack_object trigger;
    struct expr_env env = t->env;
    struct sbuf out2;
    sbuf_init(&out2);
    char why2[256] = "";
    bool wrote2 = false;
    msg[0] = '\0';
    if (prune_unpack(reads, NULL, 0, t->trigger.sb.data, t->trigger.sb.size, &zone, &trigger)) {
        snprintf(msg, sizeof(msg), "prune_unpack failed");
        goto out;
    }
    env.trigger = &trigger;
    int rc2 = expr_render_ex(prog, &env, &out2, &wrote2, why2, sizeof(why2));
    if (rc2 != rc || wrote2 != wrote || out2.len != out->len ||
        (out->len && memcmp(out2.data, out->data, out->len)) || strcmp(why, why2)) {
        snprintf(msg, sizeof(msg),
                 "pruned render differs: rc %d/%d, '%.*s' / '%.*s', why '%s' / '%s'", rc, rc2,
                 (int)out->len, out->data ? out->data : "", (int)out2.len,
                 out2.data ? out2.data : "", why, why2);
    }
out:
    sbuf_deinit(&out2);
    msgpack_zone_destroy(&zone);
    prune_free(reads);
    return msg[0] ? msg : NULL;
}

/* Returns NULL when the case passes, else a message (static buffer). */
static const char *run_case(const struct tcase *c)
{
    static char msg[1024];
    char err[256];
    struct tenv t;
    if (!tenv_init(&t, c->input, err, sizeof(err))) {
        snprintf(msg, sizeof(msg), "%s", err);
        return msg;
    }
    struct expr_error ee;
    struct expr_prog *prog = expr_compile(c->tmpl, strlen(c->tmpl), t.env.compat, &ee);
    const char *e = c->expect;
    struct sbuf out;
    sbuf_init(&out);
    char why[256] = "";
    bool wrote = false;
    int rc = prog ? expr_render_ex(prog, &t.env, &out, &wrote, why, sizeof(why)) : 0;
    const char *got_text = out.data ? out.data : "";
    msg[0] = '\0';
    const char *differs = prog ? pruned_differs(prog, &t, rc, &out, wrote, why) : NULL;
    if (differs) {
        snprintf(msg, sizeof(msg), "%s", differs);
    } else if (!strncmp(e, "error@", 6)) {
        char *colon = strchr(e, ':');
        long off = strtol(e + 6, NULL, 10);
        if (prog) {
            snprintf(msg, sizeof(msg), "compiled, but expected %s", e);
        } else if ((long)ee.offset != off || !colon || !strstr(ee.msg, colon + 2)) {
            snprintf(msg, sizeof(msg), "got error@%zu: %s", ee.offset, ee.msg);
        }
    } else if (!prog) {
        snprintf(msg, sizeof(msg), "compile error@%zu: %s", ee.offset, ee.msg);
    } else if (!strncmp(e, "render-error: ", 14)) {
        if (rc == 0) {
            snprintf(msg, sizeof(msg), "rendered '%s', expected %s", got_text, e);
        } else if (!strstr(why, e + 14)) {
            snprintf(msg, sizeof(msg), "render error '%s', expected %s", why, e);
        }
    } else if (!strncmp(e, "truth=> ", 8) || !strncmp(e, "when=> ", 7)) {
        bool when = e[0] == 'w';
        bool want = !strcmp(e + (when ? 7 : 8), "true");
        bool got = rc == 0 && (when ? (!wrote || expr_when_true(got_text, out.len))
                                    : expr_kestra_true(got_text, out.len));
        if (got != want) {
            snprintf(msg, sizeof(msg), "%s is %s (rendered '%s'%s%s)", when ? "when" : "truth",
                     got ? "true" : "false", got_text, rc ? ", error: " : "", why);
        }
    } else if (!strncmp(e, "=>", 2)) {
        const char *want = e[2] == ' ' ? e + 3 : e + 2;
        if (rc != 0) {
            snprintf(msg, sizeof(msg), "render error: %s", why);
        } else if (strcmp(got_text, want) != 0 || strlen(want) != out.len) {
            snprintf(msg, sizeof(msg), "rendered '%s'", got_text);
        }
    } else {
        snprintf(msg, sizeof(msg), "bad expectation line '%s'", e);
    }
    sbuf_deinit(&out);
    expr_free(prog);
    tenv_deinit(&t);
    return msg[0] ? msg : NULL;
}

static void test_cases(void **state)
{
    (void)state;
    struct tcase *cases;
    size_t n = load_cases(&cases);
    int failed = 0;
    for (size_t i = 0; i < n; i++) {
        const char *m = run_case(&cases[i]);
        if (m) {
            print_error("%s:%d: %s\n    template: %s\n    expected: %s\n", CASES_FILE,
                        cases[i].line, m, cases[i].tmpl, cases[i].expect);
            failed++;
        }
        xfree(cases[i].tmpl);
        xfree(cases[i].input);
        xfree(cases[i].expect);
    }
    xfree(cases);
    print_message("%zu cases, %d failed\n", n, failed);
    assert_true(n >= MIN_CASES);
    assert_int_equal(failed, 0);
}

/* ==== Unit tests ==== */

/* What expr_trigger_reads finds: which templates prune (a path set) and which fall back (*). */
static void test_trigger_reads(void **state)
{
    (void)state;
    static const struct {
        const char *tmpl;
        const char *want;
    } CASES[] = {
        {"{{ trigger.body.ref == 'refs/heads/main' }}", "{body:{ref:*}}"},
        {"{{ trigger.headers['X-GitHub-Event'][0] == 'push' }}", "{headers:{X-GitHub-Event:*}}"},
        {"{{ trigger.body.commits | length > 0 }}", "{body:{commits:*}}"},
        {"{{ trigger['body'].ref is defined and trigger.body.ref.length > 3 }}", "{body:{ref:*}}"},
        {"{{ trigger.body.ref ~ \"#{trigger.body.after}\" }}", "{body:{ref:*,after:*}}"},
        {"{% if trigger.parameters.a %}{{ trigger.body }}{% endif %}", "{parameters:{a:*},body:*}"},
        {"{{ trigger.body.a ?? trigger.body.b ??? 'x' }}", "{body:{a:*,b:*}}"},
        {"{{ (trigger.body).ref | default('none') }}", "{body:{ref:*}}"},
        {"{{ {'k': trigger.headers, 'l': [trigger.body.x]} }}", "{headers:*,body:{x:*}}"},
        {"{{ trigger.body.x ? trigger.body.y : trigger.parameters }}",
         "{body:{x:*,y:*},parameters:*}"},
        {"{{ trigger.body.list contains 'x' }}", "{body:{list:*}}"},
        {"{{ now() | date('yyyy') }} {{ trigger.body.a.b.c }}", "{body:{a:{b:{c:*}}}}"},
        /* Dynamic or non-string keys: the part before them is read whole. */
        {"{{ trigger.body[trigger.parameters.k[0]] }}", "{body:*,parameters:{k:*}}"},
        {"{{ trigger.body[0] }}", "{body:*}"},
        {"{{ trigger.body.0 }}", "{body:*}"},
        {"{{ trigger.body[1 + 1] }}", "{body:*}"},
        {"{{ trigger.body[true].x }}", "{body:*}"},
        /* trigger itself: everything (webhook.c then unpacks the message whole). */
        {"{{ trigger }}", "*"},
        {"{{ trigger is defined }}", "*"},
        {"{{ trigger | keys }}", "*"},
        {"{{ trigger[trigger.body.k] }}", "*"},
        {"{{ trigger[0] }}", "*"},
        {"{{ trigger.body.ref }} {{ trigger == null }}", "*"},
        /* No trigger at all. */
        {"plain text", "{}"},
        {"{{ flow.id == 'x' and labels.trigger == execution.trigger ?? 1 }}", "{}"},
        {"{{ triggers.body }}", "{}"},
    };
    for (size_t i = 0; i < sizeof(CASES) / sizeof(CASES[0]); i++) {
        struct expr_error err;
        struct expr_prog *prog =
            expr_compile(CASES[i].tmpl, strlen(CASES[i].tmpl), EXPR_COMPAT_DEFAULT, &err);
        if (!prog) {
            print_error("%s: %s\n", CASES[i].tmpl, err.msg);
        }
        assert_non_null(prog);
        struct prune_paths *reads = prune_new();
        expr_trigger_reads(prog, reads);
        struct sbuf b;
        sbuf_init(&b);
        prune_format(reads, &b);
        sbuf_append(&b, "", 1);
        if (strcmp(b.data, CASES[i].want) != 0) {
            print_error("%s: got %s, want %s\n", CASES[i].tmpl, b.data, CASES[i].want);
        }
        assert_string_equal(b.data, CASES[i].want);
        sbuf_deinit(&b);
        prune_free(reads);
        expr_free(prog);
    }
}

static void test_truth_rules(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        bool kestra, when;
    } T[] = {
        {"true", true, true},
        {"false", false, false},
        {" false\n", false, false},
        {"False", true, true},
        {"0", true, false},
        {"-0", true, false},
        {"", false, false},
        {"   ", false, false},
        {"null", true, true},
        {"\xe2\x80\x83", false, true}, /* U+2003 is blank for isBlank, not for trim */
        {"no", true, true},
        {"falsey", true, true},
    };
    for (size_t i = 0; i < ARRAY_LEN(T); i++) {
        assert_int_equal(expr_kestra_true(T[i].text, strlen(T[i].text)), T[i].kestra);
        assert_int_equal(expr_when_true(T[i].text, strlen(T[i].text)), T[i].when);
    }
}

static void locate(const char *file_text, int line, int col, const char *value, size_t off,
                   int want_line, int want_col, bool want_exact)
{
    struct expr_error err = {.offset = off};
    struct expr_src src = {.line = line, .col = col, .file_text = file_text};
    int l = 0, c = 0;
    bool exact = expr_error_locate(&err, value, strlen(value), &src, &l, &c);
    assert_int_equal(exact, want_exact);
    assert_int_equal(l, want_line);
    assert_int_equal(c, want_col);
}

static void test_error_positions(void **state)
{
    (void)state;
    /* plain: the value starts at column 17 of line 2 */
    const char *f1 = "conditions:\n  - expression: {{ a == }}\n";
    locate(f1, 2, 17, "{{ a == }}", 8, 2, 25, true);
    /* double quotes with an escape before the error */
    const char *f2 = "x:\n  expression: \"{{ 'a\\tb' ~ @ }}\"\n";
    locate(f2, 2, 15, "{{ 'a\tb' ~ @ }}", 11, 2, 28, true);
    /* single quotes with a doubled quote */
    const char *f3 = "expression: '{{ ''it''s'' ~ ! }}'\n";
    locate(f3, 1, 13, "{{ 'it's' ~ ! }}", 12, 1, 29, true);
    /* literal block: the third content line */
    const char *f4 = "expression: |\n    {% if a %}\n      x\n    {{ b ]] }}\n";
    locate(f4, 1, 13, "{% if a %}\n  x\n{{ b ]] }}\n", 20, 4, 10, true);
    /* without the file: approximate (the scalar's column plus the offset) */
    struct expr_error err = {.offset = 3};
    struct expr_src src = {.line = 7, .col = 5, .style = EXPR_SRC_DOUBLE};
    int l, c;
    assert_false(expr_error_locate(&err, "{{ @ }}", 7, &src, &l, &c));
    assert_int_equal(l, 7);
    assert_int_equal(c, 9);
}

static void test_error_report(void **state)
{
    (void)state;
    const char *file =
        "triggers:\n  - conditions:\n      - expression: \"{{ trigger.body.x = 1 }}\"\n";
    const char *value = "{{ trigger.body.x = 1 }}";
    struct expr_error err;
    struct expr_prog *prog = expr_compile(value, strlen(value), 1, &err);
    assert_null(prog);
    assert_int_equal(err.offset, 18);
    struct diag_list dl;
    diag_list_init(&dl);
    struct expr_src src = {.line = 3, .col = 21, .file_text = file};
    expr_error_report(&err, value, strlen(value), "flows/x.yaml", &src, &dl);
    assert_int_equal(dl.n, 1);
    char *s = diag_format(&dl.v[0]);
    assert_string_equal(s, "flows/x.yaml:3:40: expected '}}', found '='");
    xfree(s);
    assert_non_null(dl.v[0].snippet);
    /* the caret sits under column 40: 4 spaces of indent plus 39 */
    char caret[64];
    snprintf(caret, sizeof(caret), "\n%44s", "^");
    if (!strstr(dl.v[0].snippet, caret)) {
        print_error("snippet:\n%s\n", dl.v[0].snippet);
    }
    assert_non_null(strstr(dl.v[0].snippet, caret));
    diag_list_deinit(&dl);
}

/* Jackson keeps the last of duplicate keys; printing shows each key once at its first place. */
static void test_duplicate_keys(void **state)
{
    (void)state;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 1);
    msgpack_pack_str_with_body(&pk, "body", 4);
    msgpack_pack_map(&pk, 3);
    msgpack_pack_str_with_body(&pk, "a", 1);
    msgpack_pack_int(&pk, 1);
    msgpack_pack_str_with_body(&pk, "b", 1);
    msgpack_pack_int(&pk, 2);
    msgpack_pack_str_with_body(&pk, "a", 1);
    msgpack_pack_int(&pk, 3);
    msgpack_zone zone;
    msgpack_zone_init(&zone, 1024);
    msgpack_object obj;
    size_t off = 0;
    assert_int_equal(msgpack_unpack(sb.data, sb.size, &off, &zone, &obj), MSGPACK_UNPACK_SUCCESS);
    struct expr_env env = {.trigger = &obj, .now = {1, 0}};
    const char *t = "{{ trigger.body.a }} {{ trigger.body }} {{ trigger.body | length }} "
                    "{{ trigger.body | keys }}";
    struct expr_prog *prog = expr_compile(t, strlen(t), 1, NULL);
    assert_non_null(prog);
    struct sbuf out;
    sbuf_init(&out);
    assert_int_equal(expr_render(prog, &env, &out, NULL, 0), 0);
    assert_string_equal(out.data, "3 {\"a\":3,\"b\":2} 2 [\"a\",\"b\"]");
    sbuf_deinit(&out);
    expr_free(prog);
    msgpack_zone_destroy(&zone);
    msgpack_sbuffer_destroy(&sb);
}

/* Thousands of keys, with a duplicate: linear, and Jackson's last-wins rule still holds. */
static void test_big_map(void **state)
{
    (void)state;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 1);
    msgpack_pack_str_with_body(&pk, "body", 4);
    msgpack_pack_map(&pk, 20001);
    for (int i = 0; i < 20000; i++) {
        char k[16];
        int n = snprintf(k, sizeof(k), "k%d", i);
        msgpack_pack_str_with_body(&pk, k, (size_t)n);
        msgpack_pack_int(&pk, i);
    }
    msgpack_pack_str_with_body(&pk, "k10", 3);
    msgpack_pack_str_with_body(&pk, "last", 4);
    msgpack_zone zone;
    msgpack_zone_init(&zone, 1 << 20);
    msgpack_object obj;
    size_t off = 0;
    assert_int_equal(msgpack_unpack(sb.data, sb.size, &off, &zone, &obj), MSGPACK_UNPACK_SUCCESS);
    struct expr_env env = {.trigger = &obj, .now = {1, 0}};
    const char *t = "{{ trigger.body | length }} {{ trigger.body.k10 }} "
                    "{{ trigger.body == trigger.body }} {{ (trigger.body | values)[10] }}";
    struct expr_prog *prog = expr_compile(t, strlen(t), 1, NULL);
    assert_non_null(prog);
    struct sbuf out;
    sbuf_init(&out);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    assert_int_equal(expr_render(prog, &env, &out, NULL, 0), 0);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    assert_string_equal(out.data, "20000 last true last");
    double ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
    assert_true(ms < 500); /* quadratic would be seconds, even unoptimized */
    sbuf_deinit(&out);
    expr_free(prog);
    msgpack_zone_destroy(&zone);
    msgpack_sbuffer_destroy(&sb);
}

static void test_limits(void **state)
{
    (void)state;
    struct expr_env env = {.now = {1, 0}};
    char why[128];
    struct sbuf out, tmpl;
    sbuf_init(&out);
    sbuf_init(&tmpl);
    /* a range past EXPR_MAX_RANGE fails, cleanly */
    struct expr_prog *prog = expr_compile("{{ 1..100000 }}", 15, 1, NULL);
    assert_non_null(prog);
    assert_int_equal(expr_render(prog, &env, &out, why, sizeof(why)), -EINVAL);
    assert_non_null(strstr(why, "range"));
    expr_free(prog);
    /* nesting past EXPR_MAX_DEPTH is a compile error, not a stack overflow */
    sbuf_append_cstr(&tmpl, "{{ ");
    for (int i = 0; i < 200; i++) {
        sbuf_append_cstr(&tmpl, "(");
    }
    sbuf_append_cstr(&tmpl, "1");
    for (int i = 0; i < 200; i++) {
        sbuf_append_cstr(&tmpl, ")");
    }
    sbuf_append_cstr(&tmpl, " }}");
    struct expr_error err;
    assert_null(expr_compile(tmpl.data, tmpl.len, 1, &err));
    assert_non_null(strstr(err.msg, "deeply"));
    /* so is a deep chain of unary operators and of nested ifs */
    sbuf_reset(&tmpl);
    sbuf_append_cstr(&tmpl, "{{ ");
    for (int i = 0; i < 100; i++) {
        sbuf_append_cstr(&tmpl, "not ");
    }
    sbuf_append_cstr(&tmpl, "true }}");
    assert_null(expr_compile(tmpl.data, tmpl.len, 1, &err));
    sbuf_reset(&tmpl);
    for (int i = 0; i < 100; i++) {
        sbuf_append_cstr(&tmpl, "{% if true %}");
    }
    assert_null(expr_compile(tmpl.data, tmpl.len, 1, &err));
    /* a template over EXPR_MAX_TEXT is refused */
    char *huge = xmalloc(EXPR_MAX_TEXT + 1);
    memset(huge, 'x', EXPR_MAX_TEXT + 1);
    assert_null(expr_compile(huge, EXPR_MAX_TEXT + 1, 1, &err));
    xfree(huge);
    sbuf_deinit(&tmpl);
    sbuf_deinit(&out);
}

/* A doubling chain hits EXPR_MAX_STRING and fails cleanly. */
static void test_string_cap(void **state)
{
    (void)state;
    struct expr_env env = {.now = {1, 0}};
    struct sbuf tmpl, out;
    sbuf_init(&tmpl);
    sbuf_init(&out);
    /* each replace doubles the string: 32 << 16 bytes is past EXPR_MAX_STRING */
    sbuf_append_cstr(&tmpl, "{{ 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa'");
    for (int i = 0; i < 16; i++) {
        sbuf_append_cstr(&tmpl, " | replace({'a': 'aa'})");
    }
    sbuf_append_cstr(&tmpl, " }}");
    struct expr_prog *prog = expr_compile(tmpl.data, tmpl.len, 1, NULL);
    assert_non_null(prog);
    char why[128];
    assert_int_equal(expr_render(prog, &env, &out, why, sizeof(why)), -E2BIG);
    expr_free(prog);
    sbuf_deinit(&tmpl);
    sbuf_deinit(&out);
}

/* `when` renders to null when the template writes nothing: not falsy in Kestra 2.0. */
static void test_wrote_flag(void **state)
{
    (void)state;
    struct expr_env env = {.now = {1, 0}};
    struct {
        const char *t;
        bool wrote;
    } T[] = {{"{{ null }}", false},
             {"{{ '' }}", true},
             {"{% if false %}x{% endif %}", false},
             {"x", true},
             {"{{- null -}}  ", false}};
    for (size_t i = 0; i < ARRAY_LEN(T); i++) {
        struct expr_prog *prog = expr_compile(T[i].t, strlen(T[i].t), 2, NULL);
        assert_non_null(prog);
        struct sbuf out;
        sbuf_init(&out);
        bool wrote = !T[i].wrote;
        assert_int_equal(expr_render_ex(prog, &env, &out, &wrote, NULL, 0), 0);
        assert_int_equal(wrote, T[i].wrote);
        sbuf_deinit(&out);
        expr_free(prog);
    }
}

static void test_constant(void **state)
{
    (void)state;
    struct expr_prog *prog = expr_compile("plain text", 10, 1, NULL);
    assert_true(expr_is_constant(prog));
    size_t len;
    assert_string_equal(expr_text(prog, &len), "plain text");
    assert_int_equal(len, 10);
    expr_free(prog);
    prog = expr_compile("{{ 1 }}", 7, 1, NULL);
    assert_false(expr_is_constant(prog));
    expr_free(prog);
    expr_free(NULL);
}

int main(void)
{
    /* clang-format off */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cases),
        cmocka_unit_test(test_truth_rules),
        cmocka_unit_test(test_error_positions),
        cmocka_unit_test(test_error_report),
        cmocka_unit_test(test_duplicate_keys),
        cmocka_unit_test(test_big_map),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_string_cap),
        cmocka_unit_test(test_wrote_flag),
        cmocka_unit_test(test_constant),
        cmocka_unit_test(test_trigger_reads),
    };
    /* clang-format on */
    return cmocka_run_group_tests(tests, NULL, NULL);
}
