/*
 * config_test.c: the key table and its loader: defaults, every key, errors at file:line:col
 * (testdata/configs/bad-*.yaml carry their expected errors as "# error: L:C: msg" comments),
 * cross-checks, and configs/bridge.yaml kept in sync with the table.
 */
#include <glob.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"
#include "util.h"
#include "yaml.h"

#define REFERENCE_CONFIG "../configs/bridge.yaml"

/* ==== Helpers ==== */

/* Loads YAML text as if it were the file `name`; returns NULL on errors, left in dl. */
static struct cfg *load_text(const char *name, const char *text, struct diag_list *dl)
{
    diag_list_init(dl);
    struct yml_doc *doc = yml_load_string(name, text, strlen(text), dl);
    if (!doc) {
        return NULL;
    }
    struct cfg *cfg = cfg_load_doc(doc, dl);
    yml_doc_free(doc);
    return cfg;
}

/* Every diagnostic formatted, one per line. */
static char *format_all(const struct diag_list *dl)
{
    struct sbuf b;
    sbuf_init(&b);
    sbuf_append(&b, "", 0);
    for (size_t i = 0; i < dl->n; i++) {
        char *s = diag_format(&dl->v[i]);
        sbuf_appendf(&b, "%s\n", s);
        xfree(s);
    }
    return b.data;
}

/* Loading `text` fails with exactly these errors (one per line, formatted). */
static void expect_errors(const char *text, const char *want)
{
    struct diag_list dl;
    struct cfg *cfg = load_text("c.yaml", text, &dl);
    char *got = format_all(&dl);
    assert_null(cfg);
    assert_string_equal(got, want);
    xfree(got);
    diag_list_deinit(&dl);
}

/* The "# error: L:C: msg" comments of a file, as "file:L:C: msg" lines. */
static char *expected_errors(const char *path)
{
    struct sbuf b;
    sbuf_init(&b);
    sbuf_append(&b, "", 0);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char line[1024];
    while (fgets(line, sizeof(line), f)) {
        if (strncmp(line, "# error: ", 9) == 0) {
            const char *rest = line + 9;
            sbuf_appendf(&b, "%s:%s%s", path, rest[0] >= '0' && rest[0] <= '9' ? "" : " ", rest);
        }
    }
    fclose(f);
    return b.data;
}

/* ==== Defaults and every key ==== */

static void defaults(void **state)
{
    (void)state;
    struct cfg *cfg = cfg_new_defaults();
    assert_null(cfg->file);
    assert_string_equal(cfg->listen, "127.0.0.1:8080");
    assert_string_equal(cfg->flows_dir, "flows");
    assert_string_equal(cfg->tenant, "main");
    assert_string_equal(cfg->log_level, "info");
    assert_string_equal(cfg->kafka.bootstrap_servers, "");
    assert_true(cfg_kafka_embedded(cfg));
    assert_string_equal(cfg->kafka.topic_template, "webhooks.{namespace}.{flowId}");
    assert_int_equal(cfg->kafka.delivery_timeout_ms, 10000);
    assert_int_equal(cfg->kafka.thread_nice, 10);
    assert_int_equal(cfg->kafka.sticky_ms, 10);
    assert_int_equal(cfg->kafka.nproperties, 0);
    assert_int_equal(cfg->kafka.ntopics, 0);
    assert_int_equal(cfg->limits.max_body_bytes, 983040);
    assert_int_equal(cfg->limits.max_header_bytes, 16384);
    assert_int_equal(cfg->limits.max_headers, 100);
    assert_int_equal(cfg->limits.max_uri_bytes, 8192);
    assert_int_equal(cfg->limits.request_timeout_ms, 30000);
    struct diag_list dl;
    diag_list_init(&dl);
    assert_int_equal(cfg_validate(cfg, &dl), 0);
    int line = 0;
    int col = 0;
    assert_false(cfg_key_pos(cfg, "listen", &line, &col));
    cfg_free(cfg);
    cfg_free(NULL);
    diag_list_deinit(&dl);
}

static void every_key(void **state)
{
    (void)state;
    struct diag_list dl;
    diag_list_init(&dl);
    struct cfg *cfg = cfg_load("testdata/configs/good-full.yaml", &dl);
    assert_int_equal(dl.n, 0);
    assert_non_null(cfg);
    assert_string_equal(cfg->file, "testdata/configs/good-full.yaml");
    assert_string_equal(cfg->listen, "[::1]:0");
    assert_string_equal(cfg->flows_dir, "testdata/configs/../flows/good");
    assert_string_equal(cfg->tenant, "acme-prod");
    assert_string_equal(cfg->log_level, "debug");
    assert_string_equal(cfg->kafka.bootstrap_servers, "broker1:9092,broker2:9092");
    assert_false(cfg_kafka_embedded(cfg));
    assert_string_equal(cfg->kafka.topic_template, "{tenant}.hooks.{namespace}.{flowId}");
    assert_int_equal(cfg->kafka.delivery_timeout_ms, 5000);
    assert_int_equal(cfg->kafka.nproperties, 5);
    assert_string_equal(cfg_kafka_prop(cfg, "message.max.bytes"), "2000000");
    assert_string_equal(cfg_kafka_prop(cfg, "enable.idempotence"), "true");
    assert_string_equal(cfg_kafka_prop(cfg, "linger.ms"), "5");
    assert_null(cfg_kafka_prop(cfg, "acks.missing"));
    assert_int_equal(cfg->kafka.properties[0].line, 11);
    assert_int_equal(cfg->kafka.properties[0].col, 9);
    assert_int_equal(cfg->kafka.ntopics, 1);
    assert_string_equal(cfg->kafka.topics[0].flow_ref, "company.team/hello");
    assert_string_equal(cfg->kafka.topics[0].topic, "hello-events");
    assert_int_equal(cfg->limits.max_body_bytes, 1048576);
    assert_int_equal(cfg->limits.max_header_bytes, 8192);
    assert_int_equal(cfg->limits.max_headers, 50);
    assert_int_equal(cfg->limits.max_uri_bytes, 4096);
    assert_int_equal(cfg->limits.request_timeout_ms, 20000);
    int line = 0;
    int col = 0;
    assert_true(cfg_key_pos(cfg, "limits.max_headers", &line, &col));
    assert_int_equal(line, 21);
    assert_int_equal(col, 18);
    assert_false(cfg_key_pos(cfg, "no.such.key", &line, &col));
    /* cfg_load already ran the cross-checks; running them again finds nothing new. */
    assert_int_equal(cfg_validate(cfg, &dl), 0);
    cfg_free(cfg);
    diag_list_deinit(&dl);
}

static void good_files(void **state)
{
    (void)state;
    const char *files[] = {"testdata/configs/good-empty.yaml", "testdata/configs/good-nulls.yaml",
                           "testdata/configs/good-kafka-properties.yaml",
                           "testdata/configs/flows-topics.yaml"};
    for (size_t i = 0; i < ARRAY_LEN(files); i++) {
        struct diag_list dl;
        diag_list_init(&dl);
        struct cfg *cfg = cfg_load(files[i], &dl);
        char *got = format_all(&dl);
        assert_string_equal(got, "");
        assert_non_null(cfg);
        xfree(got);
        cfg_free(cfg);
        diag_list_deinit(&dl);
    }
}

/* ==== Errors ==== */

/* Every testdata/configs/bad-*.yaml fails with exactly the errors its comments list, in order. */
static void bad_files(void **state)
{
    (void)state;
    glob_t g;
    assert_int_equal(glob("testdata/configs/bad-*.yaml", 0, NULL, &g), 0);
    assert_true(g.gl_pathc >= 10);
    for (size_t i = 0; i < g.gl_pathc; i++) {
        struct diag_list dl;
        diag_list_init(&dl);
        struct cfg *cfg = cfg_load(g.gl_pathv[i], &dl);
        char *want = expected_errors(g.gl_pathv[i]);
        char *got = format_all(&dl);
        if (strcmp(want, got) != 0) {
            print_error("%s:\nwant:\n%sgot:\n%s", g.gl_pathv[i], want, got);
        }
        assert_string_equal(got, want);
        assert_true(want[0] != '\0');
        assert_null(cfg);
        xfree(want);
        xfree(got);
        diag_list_deinit(&dl);
    }
    globfree(&g);
}

static void unknown_key_position(void **state)
{
    (void)state;
    expect_errors("listen: 127.0.0.1:1\nlimits:\n    max_body: 1\n",
                  "c.yaml:3:5: unknown key 'limits.max_body'\n");
    expect_errors("kafka:\n  topics: {}\n  topic_templat: x\n",
                  "c.yaml:3:3: unknown key 'kafka.topic_templat' (did you mean "
                  "'kafka.topic_template'?)\n");
    /* An unknown section is one error; its contents are not reported one by one. */
    expect_errors("server:\n    port: 1\n    host: x\n", "c.yaml:1:1: unknown key 'server'\n");
}

static void wrong_type(void **state)
{
    (void)state;
    expect_errors("limits:\n    max_body_bytes: lots\n",
                  "c.yaml:2:21: 'limits.max_body_bytes' must be an integer\n");
    expect_errors("limits:\n    max_body_bytes: 1.5\n",
                  "c.yaml:2:21: 'limits.max_body_bytes' must be an integer\n");
    expect_errors("limits:\n    max_body_bytes: '100'\n",
                  "c.yaml:2:21: 'limits.max_body_bytes' must be an integer\n");
    expect_errors("limits:\n    max_body_bytes: [1]\n",
                  "c.yaml:2:21: 'limits.max_body_bytes' must be an integer\n");
    expect_errors("listen: {a: 1}\n", "c.yaml:1:9: 'listen' must be a string, not a map\n");
    expect_errors("kafka: [1]\n", "c.yaml:1:8: 'kafka' must be a map, not a list\n");
    expect_errors("- a\n", "c.yaml:1:1: the configuration must be a map of keys, not a list\n");
    expect_errors("just text\n",
                  "c.yaml:1:1: the configuration must be a map of keys, not a string\n");
    /* Any scalar is a string: a port-like number for listen is fine as text. */
    struct diag_list dl;
    struct cfg *cfg =
        load_text("c.yaml", "tenant: 42\nkafka: {bootstrap_servers: embedded}\n", &dl);
    assert_non_null(cfg);
    assert_string_equal(cfg->tenant, "42");
    assert_true(cfg_kafka_embedded(cfg));
    cfg_free(cfg);
    diag_list_deinit(&dl);
}

static void range(void **state)
{
    (void)state;
    expect_errors("limits:\n    max_body_bytes: 1073741825\n",
                  "c.yaml:2:21: 'limits.max_body_bytes' must be between 0 and 1073741824 (got "
                  "1073741825)\n");
    expect_errors(
        "kafka:\n    delivery_timeout_ms: 0\n",
        "c.yaml:2:26: 'kafka.delivery_timeout_ms' must be between 1 and 300000 (got 0)\n");
    expect_errors("kafka:\n    delivery_timeout_ms: 300001\n",
                  "c.yaml:2:26: 'kafka.delivery_timeout_ms' must be between 1 and 300000 (got "
                  "300001)\n");
    /* The bounds themselves are allowed. */
    struct diag_list dl;
    struct cfg *cfg = load_text("c.yaml",
                                "kafka: {delivery_timeout_ms: 300000}\n"
                                "limits: {max_body_bytes: 0, request_timeout_ms: 3600000}\n",
                                &dl);
    assert_non_null(cfg);
    assert_int_equal(cfg->kafka.delivery_timeout_ms, 300000);
    assert_int_equal(cfg->limits.max_body_bytes, 0);
    cfg_free(cfg);
    diag_list_deinit(&dl);
}

/* Every error of a file is reported, not only the first. */
static void all_errors(void **state)
{
    (void)state;
    expect_errors("a: 1\nlimits: {max_headers: 0}\nb: 2\nlog_level: loud\n",
                  "c.yaml:1:1: unknown key 'a'\n"
                  "c.yaml:2:23: 'limits.max_headers' must be between 1 and 10000 (got 0)\n"
                  "c.yaml:3:1: unknown key 'b'\n"
                  "c.yaml:4:12: 'log_level' must be one of debug, info, warn, error\n");
}

/* ==== flows_dir ==== */

static void flows_dir_resolution(void **state)
{
    (void)state;
    struct {
        const char *file;
        const char *text;
        const char *want;
    } cases[] = {
        {"etc/bridge/bridge.yaml", "{}", "etc/bridge/flows"},
        {"etc/bridge/bridge.yaml", "flows_dir: ../flows", "etc/bridge/../flows"},
        {"etc/bridge/bridge.yaml", "flows_dir: /srv/flows", "/srv/flows"},
        {"bridge.yaml", "flows_dir: my-flows", "my-flows"},
        {"/bridge.yaml", "{}", "/flows"},
        {"./bridge.yaml", "{}", "./flows"},
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        struct diag_list dl;
        struct cfg *cfg = load_text(cases[i].file, cases[i].text, &dl);
        assert_non_null(cfg);
        assert_string_equal(cfg->flows_dir, cases[i].want);
        cfg_free(cfg);
        diag_list_deinit(&dl);
    }
}

/* ==== Cross-checks ==== */

static void acks_rejected(void **state)
{
    (void)state;
    const char *bad[] = {"acks: 1",
                         "acks: 0",
                         "acks: ALL",
                         "request.required.acks: 1",
                         "enable.idempotence: false",
                         "enable.idempotence: 0"};
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        char *text = xasprintf("kafka:\n    properties:\n        %s\n", bad[i]);
        struct diag_list dl;
        struct cfg *cfg = load_text("c.yaml", text, &dl);
        assert_null(cfg);
        assert_int_equal(dl.n, 1);
        assert_int_equal(dl.v[0].line, 3);
        assert_int_equal(dl.v[0].col, 9);
        assert_non_null(strstr(dl.v[0].msg, "kafka.properties '"));
        xfree(text);
        diag_list_deinit(&dl);
    }
    const char *good[] = {"acks: all", "acks: -1", "request.required.acks: all",
                          "enable.idempotence: true", "enable.idempotence: TRUE"};
    for (size_t i = 0; i < ARRAY_LEN(good); i++) {
        char *text = xasprintf("kafka:\n    properties:\n        %s\n", good[i]);
        struct diag_list dl;
        struct cfg *cfg = load_text("c.yaml", text, &dl);
        assert_non_null(cfg);
        cfg_free(cfg);
        xfree(text);
        diag_list_deinit(&dl);
    }
}

static void max_body_vs_message_max_bytes(void **state)
{
    (void)state;
    expect_errors("limits: {max_body_bytes: 1000001}\n",
                  "c.yaml:1:26: 'limits.max_body_bytes' (1000001) must not exceed the producer's "
                  "message.max.bytes (1000000, librdkafka's default): a body travels in one "
                  "Kafka message\n");
    struct diag_list dl;
    struct cfg *cfg = load_text("c.yaml", "limits: {max_body_bytes: 1000000}\n", &dl);
    assert_non_null(cfg);
    /* A config changed after loading (main.c's overrides) is checked again. */
    cfg->limits.max_body_bytes = 1048576;
    assert_int_equal(cfg_validate(cfg, &dl), 1);
    cfg_free(cfg);
    diag_list_deinit(&dl);
    cfg = load_text("c.yaml",
                    "limits: {max_body_bytes: 4000000}\n"
                    "kafka: {properties: {message.max.bytes: 4000000}}\n",
                    &dl);
    assert_non_null(cfg);
    cfg_free(cfg);
    diag_list_deinit(&dl);
    struct cfg *def = cfg_new_defaults();
    def->limits.max_body_bytes = 1048576;
    diag_list_init(&dl);
    assert_int_equal(cfg_validate(def, &dl), 1);
    char *got = diag_format(&dl.v[0]);
    assert_string_equal(got, "'limits.max_body_bytes' (1048576) must not exceed the producer's "
                             "message.max.bytes (1000000, librdkafka's default): a body travels "
                             "in one Kafka message");
    xfree(got);
    cfg_free(def);
    diag_list_deinit(&dl);
}

static void timeouts(void **state)
{
    (void)state;
    expect_errors("kafka: {delivery_timeout_ms: 40000}\n",
                  "c.yaml:1:30: 'kafka.delivery_timeout_ms' (40000) must be less than "
                  "'limits.request_timeout_ms' (30000): a request is answered only once Kafka "
                  "has acknowledged or given up\n");
}

/* ==== Operations: admin_listen and lag ==== */

static void admin_and_lag_keys(void **state)
{
    (void)state;
    struct diag_list dl;
    struct cfg *cfg = load_text("c.yaml",
                                "admin_listen: \"\"\n"
                                "lag:\n"
                                "  groups: [exec, audit]\n"
                                "  flow_groups:\n"
                                "    team/hook: [one, two]\n"
                                "  interval_ms: 250\n",
                                &dl);
    assert_int_equal(dl.n, 0);
    assert_non_null(cfg);
    assert_string_equal(cfg->admin_listen, "");
    assert_int_equal(cfg->lag.ngroups, 2);
    assert_string_equal(cfg->lag.groups[1], "audit");
    assert_int_equal(cfg->lag.nflow_groups, 1);
    assert_string_equal(cfg->lag.flow_groups[0].flow_ref, "team/hook");
    assert_int_equal(cfg->lag.flow_groups[0].ngroups, 2);
    assert_string_equal(cfg->lag.flow_groups[0].groups[1], "two");
    assert_int_equal(cfg->lag.interval_ms, 250);
    /* --lag-group adds once. */
    cfg_add_lag_group(cfg, "exec");
    cfg_add_lag_group(cfg, "cli");
    char *t = cfg_get_text(cfg, "lag.groups");
    assert_string_equal(t, "[\"exec\", \"audit\", \"cli\"]");
    xfree(t);
    t = cfg_get_text(cfg, "lag.flow_groups");
    assert_string_equal(t, "{\"team/hook\": [\"one\", \"two\"]}");
    xfree(t);
    cfg_free(cfg);
    diag_list_deinit(&dl);

    expect_errors("admin_listen: \"8081\"\n",
                  "c.yaml:1:15: 'admin_listen' must be HOST:PORT, for example 127.0.0.1:8080\n");
    expect_errors("lag:\n  groups: exec\n",
                  "c.yaml:2:11: 'lag.groups' must be a list, not a string\n");
    expect_errors("lag:\n  groups: [\"\"]\n",
                  "c.yaml:2:12: a consumer group name must not be empty\n");
    expect_errors("lag:\n  flow_groups:\n    nohook: [a]\n",
                  "c.yaml:3:5: lag.flow_groups entries must be named \"namespace/flowId\"\n");
    expect_errors("lag:\n  interval_ms: 10\n",
                  "c.yaml:2:16: 'lag.interval_ms' must be between 100 and 3600000 (got 10)\n");
}

/* ==== Reference ==== */

/* Every key of the table has a line in configs/bridge.yaml, which holds exactly the defaults. */
static void bridge_yaml_in_sync(void **state)
{
    (void)state;
    struct diag_list dl;
    diag_list_init(&dl);
    struct cfg *cfg = cfg_load(REFERENCE_CONFIG, &dl);
    char *errs = format_all(&dl);
    assert_string_equal(errs, "");
    assert_non_null(cfg);
    struct cfg *def = cfg_new_defaults();
    assert_true(cfg_key_count() >= 14);
    assert_null(cfg_key_name(cfg_key_count()));
    for (size_t i = 0; i < cfg_key_count(); i++) {
        const char *name = cfg_key_name(i);
        int line = 0;
        int col = 0;
        if (!cfg_key_pos(cfg, name, &line, &col)) {
            fail_msg("%s has no line for key '%s'", REFERENCE_CONFIG, name);
        }
        char *got = cfg_get_text(cfg, name);
        char *want = cfg_get_text(def, name);
        if (strcmp(name, "flows_dir") == 0) {
            assert_string_equal(got, "../configs/flows");
        } else if (strcmp(got, want) != 0) {
            fail_msg("%s:%d: '%s' is %s, but its default is %s", REFERENCE_CONFIG, line, name, got,
                     want);
        }
        xfree(got);
        xfree(want);
    }
    assert_null(cfg_get_text(cfg, "nope"));
    xfree(errs);
    cfg_free(def);
    cfg_free(cfg);
    diag_list_deinit(&dl);
}

/*
 * The comment above each key in configs/bridge.yaml says "Needs a restart." exactly for the keys
 * a reload does not apply.
 */
static void restart_keys_documented(void **state)
{
    (void)state;
    struct diag_list dl;
    diag_list_init(&dl);
    struct cfg *cfg = cfg_load(REFERENCE_CONFIG, &dl);
    assert_non_null(cfg);
    FILE *f = fopen(REFERENCE_CONFIG, "r");
    assert_non_null(f);
    char *lines[512];
    size_t n = 0;
    char buf[512];
    while (n < 512 && fgets(buf, sizeof(buf), f)) {
        lines[n++] = xstrdup(buf);
    }
    fclose(f);
    for (size_t i = 0; i < cfg_key_count(); i++) {
        const char *name = cfg_key_name(i);
        int line = 0;
        int col = 0;
        assert_true(cfg_key_pos(cfg, name, &line, &col));
        bool marked = false;
        /* The comment block right above the key's line. */
        for (int l = line - 2; l >= 0 && strstr(lines[l], "#"); l--) {
            marked = marked || strstr(lines[l], "Needs a restart.");
        }
        if (marked == cfg_key_live(name)) {
            fail_msg("%s:%d: '%s' is %s but its comment %s \"Needs a restart.\"", REFERENCE_CONFIG,
                     line, name, cfg_key_live(name) ? "reloadable" : "not reloadable",
                     marked ? "says" : "does not say");
        }
    }
    for (size_t i = 0; i < n; i++) {
        xfree(lines[i]);
    }
    cfg_free(cfg);
    diag_list_deinit(&dl);
}

/* A reload keeps the running value of every restart-only key, notes it, and takes the rest. */
static void keep_restart_keys(void **state)
{
    (void)state;
    struct diag_list dl;
    struct cfg *cur = load_text("c.yaml",
                                "listen: 127.0.0.1:1000\n"
                                "kafka:\n  properties:\n    linger.ms: 5\n",
                                &dl);
    assert_non_null(cur);
    diag_list_deinit(&dl);
    struct cfg *next = load_text("c.yaml",
                                 "listen: 127.0.0.1:2000\n"
                                 "log_level: debug\n"
                                 "kafka:\n  properties:\n    linger.ms: 7\n    batch.size: 10\n"
                                 "  topic_template: t.{flowId}\n",
                                 &dl);
    assert_non_null(next);
    diag_list_deinit(&dl);
    diag_list_init(&dl);
    assert_int_equal(cfg_keep_restart_keys(next, cur, &dl), 2);
    char *got = format_all(&dl);
    assert_string_equal(got,
                        "c.yaml:1:9: 'listen' changed: needs a restart; the running value stays\n"
                        "c.yaml:5:5: 'kafka.properties' changed: needs a restart; the running "
                        "value stays\n");
    xfree(got);
    assert_string_equal(next->listen, "127.0.0.1:1000");
    assert_int_equal(next->kafka.nproperties, 1);
    assert_string_equal(cfg_kafka_prop(next, "linger.ms"), "5");
    assert_string_equal(next->log_level, "debug");
    assert_string_equal(next->kafka.topic_template, "t.{flowId}");
    /* Nothing changed the second time. */
    diag_list_deinit(&dl);
    diag_list_init(&dl);
    assert_int_equal(cfg_keep_restart_keys(next, cur, &dl), 0);
    assert_int_equal(dl.n, 0);
    assert_true(cfg_key_live("reload.debounce_ms"));
    assert_false(cfg_key_live("tenant"));
    assert_false(cfg_key_live("nope"));
    diag_list_deinit(&dl);
    cfg_free(next);
    cfg_free(cur);
}

/* cfg_print_reference() writes a file that loads back to the defaults, every key present. */
static void print_reference_loads(void **state)
{
    (void)state;
    char path[] = "/tmp/bridge-reference-XXXXXX.yaml";
    int fd = mkstemps(path, 5);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    cfg_print_reference(f);
    fclose(f);
    struct diag_list dl;
    diag_list_init(&dl);
    struct cfg *cfg = cfg_load(path, &dl);
    assert_int_equal(dl.n, 0);
    assert_non_null(cfg);
    struct cfg *def = cfg_new_defaults();
    for (size_t i = 0; i < cfg_key_count(); i++) {
        int line = 0;
        int col = 0;
        assert_true(cfg_key_pos(cfg, cfg_key_name(i), &line, &col));
        char *got = cfg_get_text(cfg, cfg_key_name(i));
        char *want = cfg_get_text(def, cfg_key_name(i));
        if (strcmp(cfg_key_name(i), "flows_dir") != 0) {
            assert_string_equal(got, want);
        }
        xfree(got);
        xfree(want);
    }
    unlink(path);
    cfg_free(def);
    cfg_free(cfg);
    diag_list_deinit(&dl);
}

static void helpers(void **state)
{
    (void)state;
    struct cfg *cfg = cfg_new_defaults();
    cfg_set_str(&cfg->kafka.bootstrap_servers, "embedded");
    assert_true(cfg_kafka_embedded(cfg));
    cfg_set_str(&cfg->kafka.bootstrap_servers, "localhost:9092");
    assert_false(cfg_kafka_embedded(cfg));
    assert_true(cfg_topic_name_valid("a"));
    assert_true(cfg_topic_name_valid("webhooks.company-team_x.Flow1"));
    assert_false(cfg_topic_name_valid(""));
    assert_false(cfg_topic_name_valid("."));
    assert_false(cfg_topic_name_valid(".."));
    assert_true(cfg_topic_name_valid("..."));
    assert_false(cfg_topic_name_valid("a b"));
    assert_false(cfg_topic_name_valid("a/b"));
    assert_false(cfg_topic_name_valid("caf\xc3\xa9"));
    char name[251];
    memset(name, 'x', 250);
    name[250] = '\0';
    assert_false(cfg_topic_name_valid(name));
    name[249] = '\0';
    assert_true(cfg_topic_name_valid(name));
    cfg_free(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(defaults),
        cmocka_unit_test(every_key),
        cmocka_unit_test(good_files),
        cmocka_unit_test(bad_files),
        cmocka_unit_test(unknown_key_position),
        cmocka_unit_test(wrong_type),
        cmocka_unit_test(range),
        cmocka_unit_test(all_errors),
        cmocka_unit_test(flows_dir_resolution),
        cmocka_unit_test(acks_rejected),
        cmocka_unit_test(max_body_vs_message_max_bytes),
        cmocka_unit_test(timeouts),
        cmocka_unit_test(admin_and_lag_keys),
        cmocka_unit_test(bridge_yaml_in_sync),
        cmocka_unit_test(restart_keys_documented),
        cmocka_unit_test(keep_restart_keys),
        cmocka_unit_test(print_reference_loads),
        cmocka_unit_test(helpers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
