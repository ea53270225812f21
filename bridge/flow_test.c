/*
 * flow_test.c: Kestra flow files → struct flow: good flows, key rendering and secrets, topics,
 * and the errors of testdata/flows/bad-* (each file lists its expected errors as
 * "# error: L:C: msg" comments; every error of every file must be reported, and nothing else).
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"
#include "flow.h"
#include "log.h"
#include "proto.h"
#include "util.h"
#include "yaml.h"

/* ==== Helpers ==== */

static struct cfg *cfg_for(const char *flows_dir)
{
    struct cfg *cfg = cfg_new_defaults();
    cfg_set_str(&cfg->flows_dir, flows_dir);
    return cfg;
}

static int cmp_lines(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* A sorted list of lines, for comparing errors without caring about their order. */
struct lines {
    char **v;
    size_t n;
};

static void lines_add(struct lines *l, char *s)
{
    l->v = xrealloc(l->v, (l->n + 1) * sizeof(*l->v));
    l->v[l->n++] = s;
}

static void lines_free(struct lines *l)
{
    for (size_t i = 0; i < l->n; i++) {
        xfree(l->v[i]);
    }
    xfree(l->v);
    l->v = NULL;
    l->n = 0;
}

static struct lines *expected; /* nftw has no context argument */

static int collect(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    size_t n = strlen(path);
    bool yaml = n > 5 && (strcmp(path + n - 5, ".yaml") == 0 || strcmp(path + n - 4, ".yml") == 0);
    if (type != FTW_F || !yaml || strstr(path, "/.")) {
        return 0;
    }
    FILE *f = fopen(path, "r");
    char line[1024];
    while (f && fgets(line, sizeof(line), f)) {
        if (strncmp(line, "# error: ", 9) == 0) {
            const char *rest = line + 9;
            lines_add(expected,
                      xasprintf("%s:%s%.*s", path, rest[0] >= '0' && rest[0] <= '9' ? "" : " ",
                                (int)strcspn(rest, "\n"), rest));
        }
    }
    if (f) {
        fclose(f);
    }
    return 0;
}

/* Loads cfg's flows_dir and checks that it fails with exactly the errors its files announce. */
static void expect_dir_errors(const struct cfg *cfg)
{
    struct lines want = {NULL, 0};
    struct lines got = {NULL, 0};
    expected = &want;
    assert_int_equal(nftw(cfg->flows_dir, collect, 8, FTW_PHYS), 0);
    struct diag_list dl;
    diag_list_init(&dl);
    struct flow_set *fs = flow_set_load(cfg, &dl);
    for (size_t i = 0; i < dl.n; i++) {
        lines_add(&got, diag_format(&dl.v[i]));
    }
    qsort(want.v, want.n, sizeof(*want.v), cmp_lines);
    qsort(got.v, got.n, sizeof(*got.v), cmp_lines);
    bool same = want.n == got.n;
    for (size_t i = 0; same && i < want.n; i++) {
        same = strcmp(want.v[i], got.v[i]) == 0;
    }
    if (!same) {
        for (size_t i = 0; i < want.n; i++) {
            print_error("want: %s\n", want.v[i]);
        }
        for (size_t i = 0; i < got.n; i++) {
            print_error("got:  %s\n", got.v[i]);
        }
    }
    assert_true(same);
    assert_true(want.n > 0);
    assert_null(fs);
    lines_free(&want);
    lines_free(&got);
    diag_list_deinit(&dl);
}

/* Runs fn with stderr (where log lines go) captured at `lvl`; returns what was written. */
static char *capture_stderr(enum log_level lvl, void (*fn)(void *), void *arg)
{
    FILE *tmp = tmpfile();
    assert_non_null(tmp);
    int saved = dup(STDERR_FILENO);
    dup2(fileno(tmp), STDERR_FILENO);
    log_setup(lvl, false);
    fn(arg);
    log_setup(LOG_ERROR, false);
    dup2(saved, STDERR_FILENO);
    close(saved);
    off_t n = lseek(fileno(tmp), 0, SEEK_END);
    assert_true(n >= 0);
    char *out = xcalloc(1, (size_t)n + 1);
    assert_int_equal(pread(fileno(tmp), out, (size_t)n, 0), n);
    fclose(tmp);
    return out;
}

static const struct flow *find(const struct flow_set *fs, const char *ns, const char *id)
{
    const struct flow *fl = flow_set_find(fs, ns, id);
    if (!fl) {
        fail_msg("flow %s/%s not loaded", ns, id);
    }
    return fl;
}

/* ==== Good flows ==== */

static void good_flows(void **state)
{
    (void)state;
    struct cfg *cfg = cfg_for("testdata/flows/good");
    struct diag_list dl;
    diag_list_init(&dl);
    struct flow_set *fs = flow_set_load(cfg, &dl);
    assert_int_equal(dl.n, 0);
    assert_non_null(fs);
    /* Sorted by path; dot-files, dot-folders and README.txt are not loaded. */
    const char *files[] = {"disabled.yaml", "legacy.yml",      "no_triggers.yaml", "plain.yaml",
                           "rendered.yaml", "sub/nested.yaml", "two_triggers.yaml"};
    assert_int_equal(fs->nflows, ARRAY_LEN(files));
    for (size_t i = 0; i < ARRAY_LEN(files); i++) {
        char *want = xasprintf("testdata/flows/good/%s", files[i]);
        assert_string_equal(fs->flows[i].file, want);
        xfree(want);
    }
    const struct flow *fl = find(fs, "company.team", "plain");
    assert_int_equal(fl->line, 2);
    assert_int_equal(fl->col, 5);
    assert_false(fl->disabled);
    assert_string_equal(fl->topic, "webhooks.company.team.plain");
    assert_int_equal(fl->ntriggers, 1);
    assert_string_equal(fl->triggers[0].id, "hook");
    assert_int_equal(fl->triggers[0].key_len, 9);
    assert_memory_equal(fl->triggers[0].key, "plain-key", 9);
    assert_int_equal(fl->triggers[0].line, 30);
    assert_int_equal(fl->triggers[0].col, 7);
    assert_ptr_equal(fl->triggers[0].flow, fl);
    fl = find(fs, "company.team", "legacy");
    assert_int_equal(fl->ntriggers, 1);
    assert_string_equal(fl->triggers[0].key, "legacy-key");
    fl = find(fs, "company.team.sub", "nested");
    assert_string_equal(fl->topic, "webhooks.company.team.sub.nested");
    fl = find(fs, "company.team", "no_triggers");
    assert_int_equal(fl->ntriggers, 0);
    flow_set_free(fs);
    cfg_free(cfg);
    diag_list_deinit(&dl);
}

static void triggers_in_order(void **state)
{
    (void)state;
    struct cfg *cfg = cfg_for("testdata/flows/good");
    struct diag_list dl;
    diag_list_init(&dl);
    struct flow_set *fs = flow_set_load(cfg, &dl);
    assert_non_null(fs);
    const struct flow *fl = find(fs, "company.team", "two_triggers");
    assert_int_equal(fl->ntriggers, 3); /* the Schedule and Flow triggers are left out */
    assert_string_equal(fl->triggers[0].id, "first");
    assert_string_equal(fl->triggers[1].id, "second");
    assert_string_equal(fl->triggers[2].id, "again");
    assert_string_equal(fl->triggers[1].key, "key-two");
    assert_false(fl->triggers[0].disabled);
    assert_true(fl->triggers[1].disabled);
    /* The first declared trigger with a key wins; the later one is kept and flagged. */
    assert_false(fl->triggers[0].shadowed);
    assert_false(fl->triggers[1].shadowed);
    assert_true(fl->triggers[2].shadowed);
    for (size_t i = 0; i < fl->ntriggers; i++) {
        assert_ptr_equal(fl->triggers[i].flow, fl);
    }
    fl = find(fs, "company.team", "disabled");
    assert_true(fl->disabled);
    assert_false(fl->triggers[0].disabled);
    fl = find(fs, "company.team", "rendered");
    assert_string_equal(fl->triggers[0].key, "company.team/rendered-key");
    flow_set_free(fs);
    cfg_free(cfg);
    diag_list_deinit(&dl);
}

static void load_good(void *arg)
{
    struct diag_list dl;
    diag_list_init(&dl);
    flow_set_free(flow_set_load(arg, &dl));
    assert_int_equal(dl.n, 0);
    diag_list_deinit(&dl);
}

static void shadowed_warning(void **state)
{
    (void)state;
    struct cfg *cfg = cfg_for("testdata/flows/good");
    char *log = capture_stderr(LOG_INFO, load_good, cfg);
    assert_non_null(strstr(log, "testdata/flows/good/two_triggers.yaml:25:7: webhook trigger "
                                "'again' has the same key as trigger 'first' declared before it"));
    assert_null(strstr(log, "key-one"));
    xfree(log);
    cfg_free(cfg);
}

static void secret_from_environment(void **state)
{
    (void)state;
    /* base64 of "  s3cr3t-value\n": the padding-free form Java also accepts. */
    setenv("SECRET_BRIDGE_TEST_KEY", "ICBzM2NyM3QtdmFsdWUK", 1);
    struct cfg *cfg = cfg_for("testdata/flows/secret");
    struct diag_list dl;
    diag_list_init(&dl);
    struct flow_set *fs = flow_set_load(cfg, &dl);
    assert_int_equal(dl.n, 0);
    assert_non_null(fs);
    const struct flow *fl = find(fs, "company.team", "github_push");
    assert_string_equal(fl->triggers[0].key, "s3cr3t-value");
    assert_string_equal(fl->triggers[1].key, "s3cr3t-value\n-github_push");
    flow_set_free(fs);
    cfg_free(cfg);
    diag_list_deinit(&dl);
    unsetenv("SECRET_BRIDGE_TEST_KEY");
}

/* ==== Key rendering ==== */

struct render_case {
    const char *tmpl;
    const char *want; /* NULL: an error */
    const char *err;  /* start of the message */
    int errcol;
};

static void render_keys(void **state)
{
    (void)state;
    static const struct render_case cases[] = {
        {"abc", "abc", NULL, 0},
        {"  abc \n", "abc", NULL, 0},
        {"\n\t{{ flow.id }}\r\n", "hook_flow", NULL, 0},
        {"{{flow.id}}", "hook_flow", NULL, 0},
        {"{{   flow.namespace   }}", "company.team", NULL, 0},
        {"a{{ flow.id }}b{{ flow.namespace }}c", "ahook_flowbcompany.teamc", NULL, 0},
        {"a}}b", "a}}b", NULL, 0},
        {"{ {flow.id} }", "{ {flow.id} }", NULL, 0},
        {"x\x01", "x", NULL, 0},
        {"{{ flow }}", NULL, "unsupported expression in key", 4},
        {"ab{{ flow.id | upper }}", NULL, "unsupported expression in key", 6},
        {"{{ flow.tenantId }}", NULL, "unsupported expression in key", 4},
        {"{{ envs.key }}", NULL, "unsupported expression in key", 4},
        {"{{}}", NULL, "unsupported expression in key", 3},
        {"{% raw %}", NULL, "unsupported expression in key", 1},
        {"x {# note #}", NULL, "unsupported expression in key", 3},
        {"abc{{ flow.id", NULL, "unterminated '{{' in key", 4},
        {"", NULL, "key is empty once rendered and trimmed", 0},
        {" \n\t ", NULL, "key is empty once rendered and trimmed", 0},
        {"{{ secret() }}", NULL, "unsupported expression in key", 4},
        {"{{ secret('A') x }}", NULL, "unsupported expression in key", 4},
        {"{{ secret('A\") }}", NULL, "unsupported expression in key", 4},
        {"{{ secret('A-B') }}", NULL, "secret name must be letters", 12},
        {"{{ secrets('A') }}", NULL, "unsupported expression in key", 4},
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        const struct render_case *c = &cases[i];
        char err[256] = "";
        int errcol = -1;
        size_t len = 0;
        char *key =
            flow_render_key(c->tmpl, "hook_flow", "company.team", &len, err, sizeof(err), &errcol);
        if (c->want) {
            if (!key) {
                fail_msg("case %zu '%s': %s", i, c->tmpl, err);
            }
            assert_int_equal(len, strlen(c->want));
            assert_string_equal(key, c->want);
        } else {
            if (key) {
                fail_msg("case %zu '%s': rendered '%s'", i, c->tmpl, key);
            }
            assert_int_equal(strncmp(err, c->err, strlen(c->err)), 0);
            assert_int_equal(errcol, c->errcol);
        }
        xfree(key);
    }
}

static char *render(const char *tmpl, size_t *len, char *err, size_t errsz, int *errcol)
{
    return flow_render_key(tmpl, "f", "n", len, err, errsz, errcol);
}

/* Kestra's open-source secrets: SECRET_<NAME>, base64 as java.util.Base64 reads it. */
static void secrets(void **state)
{
    (void)state;
    struct {
        const char *env;
        const char *want; /* NULL: not valid base64 */
        size_t len;
    } cases[] = {
        {"aHVudGVyMg==", "hunter2", 7}, /* padded */
        {"aHVudGVyMg", "hunter2", 7},   /* padding is optional */
        {"aHVudGVyMjM=", "hunter23", 8},
        {"aHVudGVyMjM", "hunter23", 8},
        {"aHVudGVyMjM0", "hunter234", 9},
        {"aHVudGVyMg==\n", "hunter2", 7}, /* $(cat file) leftovers */
        {"YQBi", "a\0b", 3},              /* NUL bytes survive: key_len is exact */
        {"aHVudGVyMg=", NULL, 0},         /* padding present must be complete */
        {"aHVudGVyMg===", NULL, 0},
        {"aHVu dGVyMg==", NULL, 0},
        {"aHVudGVyM", NULL, 0}, /* 4n+1 characters */
        {"aH=udGVyMg", NULL, 0},
        {"aHVudGVyMg-_", NULL, 0}, /* the URL alphabet is not Kestra's */
        {"!!!!", NULL, 0},
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        setenv("SECRET_BRIDGE_T", cases[i].env, 1);
        char err[256] = "";
        int errcol = 0;
        size_t len = 0;
        char *key = render("{{ secret('BRIDGE_T') }}", &len, err, sizeof(err), &errcol);
        if (cases[i].want) {
            if (!key) {
                fail_msg("case %zu: %s", i, err);
            }
            assert_int_equal(len, cases[i].len);
            assert_memory_equal(key, cases[i].want, len);
        } else {
            if (key) {
                fail_msg("case %zu: decoded '%s'", i, cases[i].env);
            }
            assert_string_equal(err, "secret 'BRIDGE_T' is not valid base64 (environment "
                                     "variable SECRET_BRIDGE_T)");
            assert_int_equal(errcol, 12);
        }
        xfree(key);
    }
    setenv("SECRET_BRIDGE_T", "aHVudGVyMg==", 1);
    char err[256];
    int errcol = 0;
    size_t len = 0;
    char *key = render("{{secret(\"BRIDGE_T\")}}:{{ secret( 'BRIDGE_T' ) }}", &len, err,
                       sizeof(err), &errcol);
    assert_string_equal(key, "hunter2:hunter2");
    xfree(key);
    unsetenv("SECRET_BRIDGE_T");
    assert_null(render("x{{ secret('BRIDGE_T') }}", &len, err, sizeof(err), &errcol));
    assert_string_equal(err, "secret 'BRIDGE_T' is not set (environment variable SECRET_BRIDGE_T)");
    assert_int_equal(errcol, 13);
}

/* A webhook key is a password: no error and no log line may show it. */
static void never_shows_the_key(void **state)
{
    (void)state;
    setenv("SECRET_BRIDGE_TEST_BAD", "not base64!", 1);
    unsetenv("SECRET_BRIDGE_TEST_UNSET");
    struct cfg *cfg = cfg_for("testdata/flows/bad-keys");
    struct diag_list dl;
    diag_list_init(&dl);
    assert_null(flow_set_load(cfg, &dl));
    const char *secrets[] = {"kkkkkkkkkk", "not base64", "prefix-", "abc"};
    for (size_t i = 0; i < dl.n; i++) {
        for (size_t j = 0; j < ARRAY_LEN(secrets); j++) {
            if (strstr(dl.v[i].msg, secrets[j])) {
                fail_msg("'%s' shows part of a key: %s", secrets[j], dl.v[i].msg);
            }
        }
    }
    cfg_free(cfg);
    diag_list_deinit(&dl);
    unsetenv("SECRET_BRIDGE_TEST_BAD");
}

/* Kestra's @Size(max = 256) on the unrendered key; the error names file, line and column. */
static void key_length(void **state)
{
    (void)state;
    struct sbuf b;
    sbuf_init(&b);
    sbuf_append_cstr(&b, "id: f\nnamespace: n\ntriggers:\n  - id: t\n"
                         "    type: io.kestra.plugin.core.trigger.Webhook\n    key: ");
    for (int i = 0; i < 257; i++) {
        sbuf_append(&b, "k", 1);
    }
    sbuf_append_cstr(&b, "\n");
    struct diag_list dl;
    diag_list_init(&dl);
    struct yml_doc *doc = yml_load_string("mem.yaml", b.data, b.len, &dl);
    struct flow fl;
    assert_int_equal(flow_parse_doc(doc, &fl, &dl), -EINVAL);
    assert_int_equal(dl.n, 1);
    char *got = diag_format(&dl.v[0]);
    assert_string_equal(got, "mem.yaml:6:10: key is longer than 256 characters (257) before "
                             "rendering");
    xfree(got);
    yml_doc_free(doc);
    diag_list_deinit(&dl);
    /* 256 is fine, and so is a {{ }} key whose rendering is longer than 256. */
    b.data[b.len - 2] = '\n';
    b.data[b.len - 1] = '\0';
    b.len--;
    diag_list_init(&dl);
    doc = yml_load_string("mem.yaml", b.data, b.len, &dl);
    assert_int_equal(flow_parse_doc(doc, &fl, &dl), 0);
    assert_int_equal(fl.triggers[0].key_len, 256);
    flow_deinit(&fl);
    yml_doc_free(doc);
    diag_list_deinit(&dl);
    sbuf_deinit(&b);
}

/* ==== Errors across files ==== */

static void bad_keys(void **state)
{
    (void)state;
    setenv("SECRET_BRIDGE_TEST_BAD", "not base64!", 1);
    unsetenv("SECRET_BRIDGE_TEST_UNSET");
    struct cfg *cfg = cfg_for("testdata/flows/bad-keys");
    expect_dir_errors(cfg);
    cfg_free(cfg);
    unsetenv("SECRET_BRIDGE_TEST_BAD");
}

static void bad_flows(void **state)
{
    (void)state;
    struct cfg *cfg = cfg_for("testdata/flows/bad-flow");
    expect_dir_errors(cfg);
    cfg_free(cfg);
}

static void duplicate_flows(void **state)
{
    (void)state;
    struct cfg *cfg = cfg_for("testdata/flows/bad-duplicate");
    expect_dir_errors(cfg);
    cfg_free(cfg);
}

/* Syntax errors, missing keys, bad ids, duplicates, two documents, an alias bomb: all reported. */
static void every_error_collected(void **state)
{
    (void)state;
    struct cfg *cfg = cfg_for("testdata/flows/bad-many");
    expect_dir_errors(cfg);
    cfg_free(cfg);
}

/* Overrides, '.'/'_' collisions, a template result too long; the config names the folder. */
static void load_topics(void *arg)
{
    expect_dir_errors(arg);
}

static void topics(void **state)
{
    (void)state;
    struct diag_list dl;
    diag_list_init(&dl);
    struct cfg *cfg = cfg_load("testdata/configs/flows-topics.yaml", &dl);
    assert_non_null(cfg);
    /* As main.c's --flows does; keeps the paths in the expected errors short. */
    cfg_set_str(&cfg->flows_dir, "testdata/flows/bad-topics");
    char *log = capture_stderr(LOG_WARN, load_topics, cfg);
    assert_non_null(strstr(log, "testdata/configs/flows-topics.yaml:8:9: kafka.topics names flow "
                                "'shop/ghost', which is not loaded"));
    xfree(log);
    cfg_free(cfg);
    diag_list_deinit(&dl);
}

static void topic_template_and_override(void **state)
{
    (void)state;
    struct diag_list dl;
    diag_list_init(&dl);
    struct cfg *cfg = cfg_load("testdata/configs/good-full.yaml", &dl);
    assert_non_null(cfg);
    const char *hello = "id: hello\nnamespace: company.team\n";
    const char *other = "id: other\nnamespace: company.team\n";
    struct yml_doc *doc = yml_load_string("hello.yaml", hello, strlen(hello), &dl);
    struct yml_doc *doc2 = yml_load_string("other.yaml", other, strlen(other), &dl);
    struct flow_set *fs = flow_set_new();
    assert_int_equal(flow_set_add_doc(fs, doc, &dl), 0);
    assert_int_equal(flow_set_add_doc(fs, doc2, &dl), 0);
    assert_int_equal(flow_set_add_doc(fs, doc, &dl), -EEXIST);
    assert_int_equal(dl.n, 1);
    assert_int_equal(flow_set_finish(fs, cfg, &dl), 0);
    assert_string_equal(find(fs, "company.team", "hello")->topic, "hello-events");
    assert_string_equal(find(fs, "company.team", "other")->topic,
                        "acme-prod.hooks.company.team.other");
    assert_null(flow_set_find(fs, "company.team", "nope"));
    flow_set_free(fs);
    yml_doc_free(doc);
    yml_doc_free(doc2);
    cfg_free(cfg);
    diag_list_deinit(&dl);
}

static void topic_names(void **state)
{
    (void)state;
    char err[128];
    char *t = flow_topic_name("{tenant}-{namespace}.{flowId}.x", "ns.a", "Flow_1", "main", err,
                              sizeof(err));
    assert_string_equal(t, "main-ns.a.Flow_1.x");
    xfree(t);
    t = flow_topic_name("fixed", "n", "f", "t", err, sizeof(err));
    assert_string_equal(t, "fixed");
    xfree(t);
    assert_null(flow_topic_name("a.{flow}", "n", "f", "t", err, sizeof(err)));
    assert_non_null(strstr(err, "unknown placeholder"));
    assert_null(flow_topic_name("a.{flowId", "n", "f", "t", err, sizeof(err)));
    assert_true(flow_topic_valid("webhooks.a.b"));
    assert_false(flow_topic_valid(".."));
    assert_false(flow_topic_valid("a:b"));
}

static void flows_dir_problems(void **state)
{
    (void)state;
    struct cfg *cfg = cfg_for("testdata/flows/no-such-folder");
    struct diag_list dl;
    diag_list_init(&dl);
    assert_null(flow_set_load(cfg, &dl));
    assert_int_equal(dl.n, 1);
    char *got = diag_format(&dl.v[0]);
    assert_string_equal(got, "testdata/flows/no-such-folder: cannot open flows_dir: No such file "
                             "or directory");
    xfree(got);
    diag_list_deinit(&dl);
    cfg_set_str(&cfg->flows_dir, "testdata/flows/good/plain.yaml");
    diag_list_init(&dl);
    assert_null(flow_set_load(cfg, &dl));
    assert_string_equal(dl.v[0].msg, "flows_dir is not a folder");
    diag_list_deinit(&dl);
    /* An empty folder loads no flows: a warning, not an error. */
    char dir[] = "/tmp/bridge-flows-XXXXXX";
    assert_non_null(mkdtemp(dir));
    cfg_set_str(&cfg->flows_dir, dir);
    diag_list_init(&dl);
    struct flow_set *fs = flow_set_load(cfg, &dl);
    assert_non_null(fs);
    assert_int_equal(fs->nflows, 0);
    flow_set_free(fs);
    rmdir(dir);
    cfg_free(cfg);
    diag_list_deinit(&dl);
}

/* The shipped example flows load with the shipped config, without any environment. */
static void example_flows(void **state)
{
    (void)state;
    struct diag_list dl;
    diag_list_init(&dl);
    struct cfg *cfg = cfg_load("../configs/bridge.yaml", &dl);
    assert_non_null(cfg);
    struct flow_set *fs = flow_set_load(cfg, &dl);
    for (size_t i = 0; i < dl.n; i++) {
        char *s = diag_format(&dl.v[i]);
        print_error("%s\n", s);
        xfree(s);
    }
    assert_non_null(fs);
    assert_int_equal(fs->nflows, 4);
    assert_non_null(find(fs, "company.team", "hello_webhook"));
    assert_non_null(find(fs, "company.team", "github_push"));
    assert_non_null(find(fs, "billing", "stripe_invoice"));
    /* The execution properties as parsed. */
    const struct flow_trigger *g = &find(fs, "company.team", "graph_validation")->triggers[0];
    assert_true(g->wait && g->return_outputs && g->text_plain);
    assert_null(g->response_code);
    assert_int_equal(g->stop_after, UINT32_C(1) << PROTO_STATE_FAILED);
    const struct flow_trigger *h = &find(fs, "company.team", "hello_webhook")->triggers[0];
    assert_false(h->wait || h->return_outputs || h->text_plain);
    assert_int_equal(h->stop_after, 0);
    flow_set_free(fs);
    cfg_free(cfg);
    diag_list_deinit(&dl);
}

int main(void)
{
    log_setup(LOG_ERROR, false);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(good_flows),
        cmocka_unit_test(triggers_in_order),
        cmocka_unit_test(shadowed_warning),
        cmocka_unit_test(secret_from_environment),
        cmocka_unit_test(render_keys),
        cmocka_unit_test(secrets),
        cmocka_unit_test(never_shows_the_key),
        cmocka_unit_test(key_length),
        cmocka_unit_test(bad_keys),
        cmocka_unit_test(bad_flows),
        cmocka_unit_test(duplicate_flows),
        cmocka_unit_test(every_error_collected),
        cmocka_unit_test(topics),
        cmocka_unit_test(topic_template_and_override),
        cmocka_unit_test(topic_names),
        cmocka_unit_test(flows_dir_problems),
        cmocka_unit_test(example_flows),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
