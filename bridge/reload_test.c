/*
 * reload_test.c: the diff of two flow sets, a reload that swaps, one that is refused and keeps
 * the running set, a request that outlives the set it matched, restart-only keys, and the loop
 * side: SIGHUP and an inotify change (debounced) each reload once.
 */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>

#include "log.h"
#include "reload.h"
#include "webhook.h"
#include "yaml.h"

/* ==== Helpers ==== */

#define FLOW_FMT                                                                                   \
    "id: %s\nnamespace: company.team\n%s"                                                          \
    "triggers:\n  - id: hook\n"                                                                    \
    "    type: io.kestra.plugin.core.trigger.Webhook\n"                                            \
    "    key: %s\n"

static char *flow_text(const char *id, const char *key, const char *extra)
{
    return xasprintf(FLOW_FMT, id, extra, key);
}

/* A set built from (file name, text) pairs, as flow_set_load builds one. */
static struct flow_set *set_of(const char *const *files, size_t n, const char *tmpl)
{
    struct diag_list dl;
    diag_list_init(&dl);
    struct cfg *cfg = cfg_new_defaults();
    if (tmpl) {
        cfg_set_str(&cfg->kafka.topic_template, tmpl);
    }
    struct flow_set *fs = flow_set_new();
    for (size_t i = 0; i < n; i++) {
        struct yml_doc *doc =
            yml_load_string(files[2 * i], files[2 * i + 1], strlen(files[2 * i + 1]), &dl);
        assert_non_null(doc);
        assert_int_equal(flow_set_add_doc(fs, doc, &dl), 0);
        yml_doc_free(doc);
    }
    assert_int_equal(flow_set_finish(fs, cfg, &dl), 0);
    cfg_free(cfg);
    diag_list_deinit(&dl);
    return fs;
}

struct fixture {
    char dir[64];
    const char *listen; /* a value for `listen` in each reloaded config, or NULL */
};

static void write_file(const struct fixture *fx, const char *name, const char *text)
{
    char *path = xasprintf("%s/%s", fx->dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    xfree(path);
}

static void write_flow(const struct fixture *fx, const char *name, const char *id, const char *key)
{
    char *text = flow_text(id, key, "");
    write_file(fx, name, text);
    xfree(text);
}

static void remove_file(const struct fixture *fx, const char *name)
{
    char *path = xasprintf("%s/%s", fx->dir, name);
    assert_int_equal(unlink(path), 0);
    xfree(path);
}

/* The reload_load_fn of these tests: defaults, flows_dir = the fixture's folder. */
static struct cfg *load_cfg(void *arg, struct diag_list *dl)
{
    const struct fixture *fx = arg;
    (void)dl;
    struct cfg *cfg = cfg_new_defaults();
    cfg_set_str(&cfg->flows_dir, fx->dir);
    if (fx->listen) {
        cfg_set_str(&cfg->listen, fx->listen);
    }
    return cfg;
}

static struct reload *start_reload(struct fixture *fx)
{
    struct diag_list dl;
    diag_list_init(&dl);
    struct cfg *cfg = load_cfg(fx, &dl);
    struct flow_set *fs = flow_set_load(cfg, &dl);
    assert_non_null(fs);
    diag_list_deinit(&dl);
    return reload_new_take(cfg, fs);
}

static int setup(void **state)
{
    struct fixture *fx = xcalloc(1, sizeof(*fx));
    snprintf(fx->dir, sizeof(fx->dir), "/tmp/reload_test.XXXXXX");
    assert_non_null(mkdtemp(fx->dir));
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *fx = *state;
    char *cmd = xasprintf("rm -rf '%s'", fx->dir);
    assert_int_equal(system(cmd), 0);
    xfree(cmd);
    xfree(fx);
    return 0;
}

static enum hook_verdict post(struct hook_ctx *ctx, const char *path, struct hook_req *hr)
{
    struct hook_input in = {.method = strv_of("POST"),
                            .path = strv_of(path),
                            .body = strv_of(""),
                            .remote_addr = "127.0.0.1"};
    return hook_process(ctx, &in, hr);
}

static enum hook_verdict verdict(struct hook_ctx *ctx, const char *path)
{
    struct hook_req *hr = hook_req_new();
    enum hook_verdict v = post(ctx, path, hr);
    hook_req_free(hr);
    return v;
}

#define URL(flow, key) "/api/v1/executions/webhook/company.team/" flow "/" key

/* ==== Diff ==== */

static void diff_counts(void **state)
{
    (void)state;
    char *a1 = flow_text("a", "k", "");
    char *b1 = flow_text("b", "k", "");
    char *b2 = flow_text("b", "k2", "");
    char *c1 = flow_text("c", "k", "");
    char *d1 = flow_text("d", "k", "");
    const char *old_files[] = {"f/a.yaml", a1, "f/b.yaml", b1, "f/c.yaml", c1};
    const char *new_files[] = {"f/d.yaml", d1, "f/b.yaml", b2, "f/a.yaml", a1};
    struct flow_set *old = set_of(old_files, 3, NULL);
    struct flow_set *cur = set_of(new_files, 3, NULL);
    struct reload_counts c;
    reload_diff(old, cur, &c);
    assert_int_equal(c.added, 1);     /* d */
    assert_int_equal(c.removed, 1);   /* c */
    assert_int_equal(c.changed, 1);   /* b: another key */
    assert_int_equal(c.unchanged, 1); /* a */
    reload_diff(old, old, &c);
    assert_int_equal(c.unchanged, 3);
    assert_int_equal(c.added + c.removed + c.changed, 0);

    /* The same text under another topic, in another file, or with other rules is a change. */
    struct flow_set *topic = set_of(old_files, 3, "t.{flowId}");
    reload_diff(old, topic, &c);
    assert_int_equal(c.changed, 3);
    const char *moved_files[] = {"f/sub/a.yaml", a1, "f/b.yaml", b1, "f/c.yaml", c1};
    struct flow_set *moved = set_of(moved_files, 3, NULL);
    reload_diff(old, moved, &c);
    assert_int_equal(c.changed, 1);
    assert_int_equal(c.unchanged, 2);
    moved->compat = 2;
    reload_diff(old, moved, &c);
    assert_int_equal(c.changed, 3);

    struct flow_set *none = flow_set_new();
    reload_diff(none, old, &c);
    assert_int_equal(c.added, 3);
    reload_diff(old, none, &c);
    assert_int_equal(c.removed, 3);
    flow_set_free(none);
    flow_set_free(moved);
    flow_set_free(topic);
    flow_set_free(cur);
    flow_set_free(old);
    xfree(a1);
    xfree(b1);
    xfree(b2);
    xfree(c1);
    xfree(d1);
}

/* ==== reload_run ==== */

static void swap_and_refuse(void **state)
{
    struct fixture *fx = *state;
    write_flow(fx, "a.yaml", "a", "ka");
    write_flow(fx, "b.yaml", "b", "kb");
    struct reload *rl = start_reload(fx);
    struct hook_ctx *ctx = hook_ctx_new(reload_routes(rl), "main", 1);
    reload_attach(rl, ctx, NULL);
    struct event_base *base = event_base_new();
    assert_int_equal(reload_run(rl, "test"), -EAGAIN); /* not started: no loader yet */
    assert_int_equal(reload_start(rl, base, load_cfg, fx), 0);

    /* Add c, change b's key, remove a. */
    write_flow(fx, "c.yaml", "c", "kc");
    write_flow(fx, "b.yaml", "b", "kb2");
    remove_file(fx, "a.yaml");
    assert_int_equal(reload_run(rl, "test"), 0);
    assert_int_equal(reload_stats(rl)->ok, 1);
    assert_true(reload_stats(rl)->last_ok_unix > 0);
    assert_int_equal(verdict(ctx, URL("c", "kc")), HOOK_ACCEPTED);
    assert_int_equal(verdict(ctx, URL("b", "kb2")), HOOK_ACCEPTED);
    assert_int_equal(verdict(ctx, URL("b", "kb")), HOOK_NOT_FOUND);
    assert_int_equal(verdict(ctx, URL("a", "ka")), HOOK_NOT_FOUND);

    /* A broken file: refused, every flow keeps being served, the error has its position. */
    struct flow_set *running = reload_flows(rl);
    write_file(fx, "d.yaml", "id: d\nnamespace: company.team\ntriggers: [\n");
    write_flow(fx, "c.yaml", "c", "kc-new");
    assert_int_equal(reload_run(rl, "test"), -EINVAL);
    assert_ptr_equal(reload_flows(rl), running);
    assert_int_equal(reload_stats(rl)->failed, 1);
    assert_int_equal(reload_stats(rl)->ok, 1);
    char *want = xasprintf("%s/d.yaml:4:1: ", fx->dir);
    assert_memory_equal(reload_stats(rl)->last_error, want, strlen(want));
    xfree(want);
    assert_int_equal(verdict(ctx, URL("c", "kc")), HOOK_ACCEPTED);
    assert_int_equal(verdict(ctx, URL("c", "kc-new")), HOOK_NOT_FOUND);

    /* A condition that does not compile is refused the same way. */
    remove_file(fx, "d.yaml");
    char *bad = flow_text("e", "ke", "");
    char *cond =
        xasprintf("%s    conditions:\n      - type: io.kestra.plugin.core.condition.Expression\n"
                  "        expression: \"{{ 1 + }}\"\n",
                  bad);
    write_file(fx, "e.yaml", cond);
    assert_int_equal(reload_run(rl, "test"), -EINVAL);
    assert_int_equal(reload_stats(rl)->failed, 2);
    assert_non_null(strstr(reload_stats(rl)->last_error, "/e.yaml:"));
    assert_int_equal(verdict(ctx, URL("c", "kc")), HOOK_ACCEPTED);
    xfree(bad);
    xfree(cond);

    /* Fixed: the pending change to c goes through now. */
    remove_file(fx, "e.yaml");
    assert_int_equal(reload_run(rl, "test"), 0);
    assert_int_equal(verdict(ctx, URL("c", "kc-new")), HOOK_ACCEPTED);
    assert_int_equal(reload_stats(rl)->ok, 2);
    assert_non_null(strstr(reload_stats(rl)->last_error, "/e.yaml:")); /* kept */

    reload_free(rl);
    hook_ctx_free(ctx);
    event_base_free(base);
}

/* A request routed before a reload that removes its flow still reads it (ASan checks). */
static void request_outlives_its_set(void **state)
{
    struct fixture *fx = *state;
    write_flow(fx, "gone.yaml", "gone", "kg");
    struct reload *rl = start_reload(fx);
    struct hook_ctx *ctx = hook_ctx_new(reload_routes(rl), "main", 1);
    reload_attach(rl, ctx, NULL);
    struct event_base *base = event_base_new();
    assert_int_equal(reload_start(rl, base, load_cfg, fx), 0);
    struct hook_req *hr = hook_req_new();
    assert_int_equal(post(ctx, URL("gone", "kg"), hr), HOOK_ACCEPTED);
    struct flow_set *old = reload_flows(rl);
    assert_ptr_equal(hr->flows, old);
    remove_file(fx, "gone.yaml");
    assert_int_equal(reload_run(rl, "test"), 0);
    assert_ptr_not_equal(reload_flows(rl), old);
    assert_int_equal(old->refs, 1); /* only the request's */
    assert_int_equal(verdict(ctx, URL("gone", "kg")), HOOK_NOT_FOUND);
    assert_string_equal(hr->trigger->flow->id, "gone");
    assert_string_equal(hr->trigger->flow->topic, "webhooks.company.team.gone");
    hook_req_free(hr); /* frees the old set: LeakSanitizer reports it otherwise */
    reload_free(rl);
    hook_ctx_free(ctx);
    event_base_free(base);
}

/* A changed restart-only key keeps its running value; the reload itself goes through. */
static void restart_key_kept(void **state)
{
    struct fixture *fx = *state;
    write_flow(fx, "a.yaml", "a", "ka");
    struct reload *rl = start_reload(fx);
    struct event_base *base = event_base_new();
    assert_int_equal(reload_start(rl, base, load_cfg, fx), 0);
    write_flow(fx, "b.yaml", "b", "kb");
    fx->listen = "127.0.0.1:9999";
    assert_int_equal(reload_run(rl, "test"), 0);
    assert_string_equal(reload_cfg(rl)->listen, "127.0.0.1:8080");
    assert_int_equal(reload_flows(rl)->nflows, 2);
    fx->listen = NULL;
    reload_free(rl);
    event_base_free(base);
}

/* ==== The loop: inotify and SIGHUP ==== */

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    event_base_loopbreak(arg);
}

/* Runs the loop until the reload count reaches `want` or 10 s pass; returns the count. */
static unsigned long loop_until(struct event_base *base, const struct reload *rl,
                                unsigned long want)
{
    struct event *tick = event_new(base, -1, EV_PERSIST, on_tick, base);
    struct timeval tv = {0, 20000};
    event_add(tick, &tv);
    long long deadline = util_now_us() + 10000000;
    while (reload_stats(rl)->ok + reload_stats(rl)->failed < want && util_now_us() < deadline) {
        event_base_loop(base, 0);
    }
    event_free(tick);
    return reload_stats(rl)->ok + reload_stats(rl)->failed;
}

/* Runs the loop for ms milliseconds whatever happens. */
static void loop_for(struct event_base *base, long ms)
{
    struct event *stop = evtimer_new(base, on_tick, base);
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    evtimer_add(stop, &tv);
    event_base_loop(base, 0);
    event_free(stop);
}

static void watch_and_sighup(void **state)
{
    struct fixture *fx = *state;
    write_flow(fx, "a.yaml", "a", "ka");
    char *sub = xasprintf("%s/sub", fx->dir);
    assert_int_equal(mkdir(sub, 0700), 0);
    struct reload *rl = start_reload(fx);
    struct hook_ctx *ctx = hook_ctx_new(reload_routes(rl), "main", 1);
    reload_attach(rl, ctx, NULL);
    struct event_base *base = event_base_new();
    assert_int_equal(reload_start(rl, base, load_cfg, fx), 0);

    /* A burst of writes in a subfolder is one reload once quiet. */
    for (int i = 0; i < 5; i++) {
        write_flow(fx, "sub/b.yaml", "b", "kb");
    }
    assert_int_equal(loop_until(base, rl, 1), 1);
    assert_int_equal(reload_stats(rl)->ok, 1);
    assert_int_equal(verdict(ctx, URL("b", "kb")), HOOK_ACCEPTED);
    /* The reload's own reads trigger nothing; a swap file neither. */
    write_file(fx, ".b.yaml.swp", "x");
    loop_for(base, 3 * reload_cfg(rl)->reload.debounce_ms + 100);
    assert_int_equal(reload_stats(rl)->ok, 1);

    /* A folder created after the start is watched from the reload it causes on. */
    char *sub2 = xasprintf("%s/sub2", fx->dir);
    assert_int_equal(mkdir(sub2, 0700), 0);
    assert_int_equal(loop_until(base, rl, 2), 2);
    write_flow(fx, "sub2/c.yaml", "c", "kc");
    assert_int_equal(loop_until(base, rl, 3), 3);
    assert_int_equal(verdict(ctx, URL("c", "kc")), HOOK_ACCEPTED);

    /* SIGHUP reloads at once. */
    fx->listen = NULL;
    assert_int_equal(raise(SIGHUP), 0);
    assert_int_equal(loop_until(base, rl, 4), 4);
    assert_int_equal(reload_stats(rl)->ok, 4);

    /* After reload_stop, SIGHUP is ignored and does not kill the process. */
    reload_stop(rl);
    assert_int_equal(raise(SIGHUP), 0);
    loop_for(base, 100);
    assert_int_equal(reload_stats(rl)->ok, 4);
    assert_int_equal(reload_run(rl, "test"), -EAGAIN);

    reload_free(rl);
    hook_ctx_free(ctx);
    event_base_free(base);
    xfree(sub);
    xfree(sub2);
}

/*
 * A Kubernetes ConfigMap volume: each file is a link into `..data`, a link to a timestamped
 * folder; an update writes a new folder and renames a new link over `..data`. Only that rename
 * happens in flows_dir, and it must reload.
 */
static void configmap_swap(void **state)
{
    struct fixture *fx = *state;
    char *path = xasprintf("%s/..v1", fx->dir);
    assert_int_equal(mkdir(path, 0700), 0);
    xfree(path);
    write_flow(fx, "..v1/a.yaml", "a", "ka");
    char *data = xasprintf("%s/..data", fx->dir);
    char *link = xasprintf("%s/a.yaml", fx->dir);
    assert_int_equal(symlink("..v1", data), 0);
    assert_int_equal(symlink("..data/a.yaml", link), 0);
    struct reload *rl = start_reload(fx);
    struct hook_ctx *ctx = hook_ctx_new(reload_routes(rl), "main", 1);
    reload_attach(rl, ctx, NULL);
    struct event_base *base = event_base_new();
    assert_int_equal(reload_start(rl, base, load_cfg, fx), 0);
    assert_int_equal(verdict(ctx, URL("a", "ka")), HOOK_ACCEPTED);

    path = xasprintf("%s/..v2", fx->dir);
    assert_int_equal(mkdir(path, 0700), 0);
    xfree(path);
    write_flow(fx, "..v2/a.yaml", "a", "ka2");
    char *tmp = xasprintf("%s/..data_tmp", fx->dir);
    assert_int_equal(symlink("..v2", tmp), 0);
    assert_int_equal(rename(tmp, data), 0);
    assert_int_equal(loop_until(base, rl, 1), 1);
    assert_int_equal(reload_stats(rl)->ok, 1);
    assert_int_equal(verdict(ctx, URL("a", "ka2")), HOOK_ACCEPTED);
    assert_int_equal(verdict(ctx, URL("a", "ka")), HOOK_NOT_FOUND);

    reload_free(rl);
    hook_ctx_free(ctx);
    event_base_free(base);
    xfree(tmp);
    xfree(link);
    xfree(data);
}

int main(void)
{
    log_setup(LOG_ERROR, false);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(diff_counts),
        cmocka_unit_test_setup_teardown(swap_and_refuse, setup, teardown),
        cmocka_unit_test_setup_teardown(request_outlives_its_set, setup, teardown),
        cmocka_unit_test_setup_teardown(restart_key_kept, setup, teardown),
        cmocka_unit_test_setup_teardown(watch_and_sighup, setup, teardown),
        cmocka_unit_test_setup_teardown(configmap_swap, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
