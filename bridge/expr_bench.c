/*
 * expr_bench.c: nanoseconds per condition evaluation on the request path: the message is packed
 * by pack.c as webhook.c does, the condition compiled once by cond.c, then cond_eval runs in a
 * loop. Run from bridge/ (it reads testdata/payloads/). Prints one line per case.
 *
 *   gcc -O2 ... expr_bench.c -o /tmp/expr_bench && /tmp/expr_bench [iterations]
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <msgpack.h>

#include "cond.h"
#include "expr.h"
#include "pack.h"
#include "util.h"
#include "yaml.h"

#define GITHUB_PAYLOAD "testdata/payloads/github-push.json"

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        exit(1);
    }
    struct sbuf b;
    sbuf_init(&b);
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), f)) > 0) {
        sbuf_append(&b, buf, n);
    }
    fclose(f);
    *len = b.len;
    return b.data;
}

/* trigger.variables: GitHub's headers, no parameters, the packed body. */
static void pack_trigger(struct pack_parser *pp, const char *body, size_t len, msgpack_sbuffer *sb)
{
    static const char *const H[][2] = {
        {"X-GitHub-Event", "push"},
        {"X-GitHub-Delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958"},
        {"Content-Type", "application/json"},
        {"User-Agent", "GitHub-Hookshot/044aadd"},
    };
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 3);
    msgpack_pack_str_with_body(&pk, "headers", 7);
    msgpack_pack_map(&pk, ARRAY_LEN(H));
    for (size_t i = 0; i < ARRAY_LEN(H); i++) {
        msgpack_pack_str_with_body(&pk, H[i][0], strlen(H[i][0]));
        msgpack_pack_array(&pk, 1);
        msgpack_pack_str_with_body(&pk, H[i][1], strlen(H[i][1]));
    }
    msgpack_pack_str_with_body(&pk, "parameters", 10);
    msgpack_pack_map(&pk, 0);
    msgpack_pack_str_with_body(&pk, "body", 4);
    pack_body(pp, body, len, sb);
}

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* Best of 5 rounds of `iters` evaluations, in ns per evaluation. */
static double bench(const struct cond *c, const struct expr_env *env, long iters)
{
    double best = 1e30;
    for (int round = 0; round < 5; round++) {
        double t0 = now_ns();
        long ok = 0;
        for (long i = 0; i < iters; i++) {
            ok += cond_eval(c, env, NULL, 0);
        }
        double per = (now_ns() - t0) / (double)iters;
        if (ok != iters) {
            fprintf(stderr, "condition was false\n");
            exit(1);
        }
        best = per < best ? per : best;
    }
    return best;
}

static void run(const char *name, const char *yaml, const char *body, size_t blen, long iters,
                struct pack_parser *pp)
{
    struct diag_list dl;
    diag_list_init(&dl);
    struct yml_doc *doc = yml_load_string("bench.yaml", yaml, strlen(yaml), &dl);
    struct cond *c = doc ? cond_compile(yml_map_get(doc->root, "conditions"), NULL, "bench.yaml",
                                        doc, EXPR_COMPAT_DEFAULT, &dl)
                         : NULL;
    if (!c) {
        diag_print(&dl, stderr);
        exit(1);
    }
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    pack_trigger(pp, body, blen, &sb);
    msgpack_zone zone;
    msgpack_zone_init(&zone, 8192);
    msgpack_object trigger;
    size_t off = 0;
    if (msgpack_unpack(sb.data, sb.size, &off, &zone, &trigger) != MSGPACK_UNPACK_SUCCESS) {
        fprintf(stderr, "unpack failed\n");
        exit(1);
    }
    struct expr_env env = {
        .trigger = &trigger,
        .flow_id = STRV_LIT("github"),
        .ns = STRV_LIT("company.team"),
        .tenant = STRV_LIT("main"),
        .execution_id = STRV_LIT("4wjtkzwVGBM9yKnjm3yv8r"),
        .now = {1714990530, 0},
    };
    double ns = bench(c, &env, iters);
    printf("%-44s body %5zu B  %8.1f ns/eval\n", name, blen, ns);
    msgpack_zone_destroy(&zone);
    msgpack_sbuffer_destroy(&sb);
    cond_free(c);
    yml_doc_free(doc);
    diag_list_deinit(&dl);
}

int main(int argc, char **argv)
{
    long iters = argc > 1 ? atol(argv[1]) : 200000;
    struct pack_parser *pp = pack_parser_new();
    size_t glen;
    char *github = read_file(GITHUB_PAYLOAD, &glen);
    static const char hello[] = "{\"hello\":\"world\"}";

    run("{{ trigger.body.hello == 'world' }}",
        "conditions:\n  - type: io.kestra.plugin.core.condition.Expression\n"
        "    expression: \"{{ trigger.body.hello == 'world' }}\"\n",
        hello, strlen(hello), iters, pp);
    run("same, on the GitHub push payload",
        "conditions:\n  - type: io.kestra.plugin.core.condition.Expression\n"
        "    expression: \"{{ trigger.body.hello ?? 'world' == 'world' }}\"\n",
        github, glen, iters, pp);
    run("GitHub push: event, branch, repo, pusher",
        "conditions:\n  - type: io.kestra.plugin.core.condition.Expression\n"
        "    expression: >-\n"
        "      {{ trigger.headers['X-GitHub-Event'][0] == 'push'\n"
        "         and trigger.body.ref == 'refs/heads/main'\n"
        "         and trigger.body.repository.full_name == 'acme/wh-bridge'\n"
        "         and trigger.body.pusher.name != 'dependabot[bot]' }}\n",
        github, glen, iters, pp);
    run("GitHub push: filters (lower, contains, length)",
        "conditions:\n  - type: io.kestra.plugin.core.condition.Expression\n"
        "    expression: \"{{ trigger.body.head_commit.message | lower contains 'fix' or "
        "trigger.body.commits | length > 0 }}\"\n",
        github, glen, iters, pp);
    xfree(github);
    pack_parser_free(pp);
    return 0;
}
