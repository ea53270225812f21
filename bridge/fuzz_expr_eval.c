/*
 * fuzz_expr_eval.c: libFuzzer target for expr evaluation. The input is a template, a newline,
 * then a request body, packed by pack.c exactly as the request path does; the template is
 * rendered against that message with realistic headers, parameters, labels and flow. Evaluation
 * must never crash, fail only with -EINVAL or -E2BIG (with a reason), and stay within limits.
 *
 * Differential: the template is rendered a second time with `trigger` unpacked only where
 * expr_trigger_reads says it is read (prune_unpack, as webhook.c does); result, error text,
 * output and the wrote flag must be identical. A body starting with byte 0xff is instead taken
 * as raw msgpack for `trigger` (odd types, duplicate and non-string keys, truncation, garbage):
 * prune_unpack must then accept exactly what msgpack_unpack accepts, and agree when both do.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "expr.h"
#include "pack.h"
#include "prune.h"
#include "util.h"

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_expr_eval: check failed at line %d: %s\n", __LINE__, #cond);     \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static struct pack_parser *pp;

static void pack_strs(msgpack_packer *pk, const char *name, const char *const *v, size_t n)
{
    msgpack_pack_str_with_body(pk, name, strlen(name));
    msgpack_pack_array(pk, n);
    for (size_t i = 0; i < n; i++) {
        msgpack_pack_str_with_body(pk, v[i], strlen(v[i]));
    }
}

/* trigger.variables as webhook.c builds it: headers, parameters, and the body when there is one. */
static void pack_trigger(msgpack_sbuffer *sb, const char *body, size_t len)
{
    static const char *const EVENT[] = {"push"};
    static const char *const CTYPE[] = {"application/json"};
    static const char *const AGE[] = {"12", "13"};
    static const char *const FLAG[] = {""};
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, len ? 3 : 2);
    msgpack_pack_str_with_body(&pk, "headers", 7);
    msgpack_pack_map(&pk, 2);
    pack_strs(&pk, "X-GitHub-Event", EVENT, 1);
    pack_strs(&pk, "Content-Type", CTYPE, 1);
    msgpack_pack_str_with_body(&pk, "parameters", 10);
    msgpack_pack_map(&pk, 2);
    pack_strs(&pk, "age", AGE, 2);
    pack_strs(&pk, "flag", FLAG, 1);
    if (len) {
        msgpack_pack_str_with_body(&pk, "body", 4);
        pack_body(pp, body, len, sb);
    }
}

/* Renders prog with env and with env's trigger replaced by `pruned`: both must agree. */
static void check_same_render(const struct expr_prog *prog, const struct expr_env *env,
                              const msgpack_object *pruned)
{
    struct expr_env penv = *env;
    penv.trigger = pruned;
    struct sbuf out, pout;
    sbuf_init(&out);
    sbuf_init(&pout);
    char why[256] = "", pwhy[256] = "";
    bool wrote = false, pwrote = false;
    int rc = expr_render_ex(prog, env, &out, &wrote, why, sizeof(why));
    int prc = expr_render_ex(prog, &penv, &pout, &pwrote, pwhy, sizeof(pwhy));
    CHECK(rc == prc);
    CHECK(wrote == pwrote);
    CHECK(strcmp(why, pwhy) == 0);
    CHECK(out.len == pout.len && (out.len == 0 || memcmp(out.data, pout.data, out.len) == 0));
    sbuf_deinit(&out);
    sbuf_deinit(&pout);
}

/*
 * Raw msgpack as `trigger`. Array 32 and map 32 headers are left out: msgpack_unpack allocates
 * for their declared size before reading it, up to 2^32 entries, which the fuzzer calls a crash.
 */
static void raw_trigger(const struct expr_prog *prog, const char *raw, size_t len,
                        const struct prune_paths *reads, struct expr_env *env)
{
    if (memchr(raw, 0xdd, len) || memchr(raw, 0xdf, len)) {
        return;
    }
    msgpack_zone zone, pzone;
    msgpack_zone_init(&zone, 4096);
    msgpack_zone_init(&pzone, 4096);
    msgpack_object trigger, pruned;
    size_t off = 0;
    bool ok = msgpack_unpack(raw, len, &off, &zone, &trigger) == MSGPACK_UNPACK_SUCCESS;
    int prc = prune_unpack(reads, NULL, 0, raw, len, &pzone, &pruned);
    CHECK(prc == 0 || prc == -EBADMSG);
    CHECK(ok == (prc == 0));
    if (ok) {
        env->trigger = &trigger;
        check_same_render(prog, env, &pruned);
    }
    msgpack_zone_destroy(&pzone);
    msgpack_zone_destroy(&zone);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!pp) {
        pp = pack_parser_new();
    }
    const char *text = (const char *)data;
    const char *nl = memchr(text, '\n', size);
    size_t tlen = nl ? (size_t)(nl - text) : size;
    const char *body = nl ? nl + 1 : "";
    size_t blen = nl ? size - tlen - 1 : 0;
    int compat = size % 2 ? EXPR_COMPAT_2 : EXPR_COMPAT_DEFAULT;

    struct expr_prog *prog = expr_compile(text, tlen, compat, NULL);
    if (!prog) {
        return 0;
    }
    struct prune_paths *reads = prune_new();
    expr_trigger_reads(prog, reads);
    bool raw = blen > 0 && (unsigned char)body[0] == 0xff;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    pack_trigger(&sb, raw ? "" : body, raw ? 0 : blen);
    msgpack_zone zone;
    msgpack_zone_init(&zone, 4096);
    msgpack_object trigger;
    size_t off = 0;
    CHECK(msgpack_unpack(sb.data, sb.size, &off, &zone, &trigger) == MSGPACK_UNPACK_SUCCESS);

    msgpack_sbuffer lsb;
    msgpack_sbuffer_init(&lsb);
    msgpack_packer lpk;
    msgpack_packer_init(&lpk, &lsb, msgpack_sbuffer_write);
    msgpack_pack_map(&lpk, 1);
    msgpack_pack_str_with_body(&lpk, "team", 4);
    msgpack_pack_str_with_body(&lpk, "data", 4);
    msgpack_object labels;
    off = 0;
    CHECK(msgpack_unpack(lsb.data, lsb.size, &off, &zone, &labels) == MSGPACK_UNPACK_SUCCESS);

    struct expr_env env = {
        .trigger = &trigger,
        .flow_id = STRV_LIT("my-flow"),
        .ns = STRV_LIT("company.team"),
        .tenant = STRV_LIT("main"),
        .execution_id = STRV_LIT("4wjtkzwVGBM9yKnjm3yv8r"),
        .labels = &labels,
        .now = {1714990530, 123456000},
    };
    if (raw) {
        raw_trigger(prog, body + 1, blen - 1, reads, &env);
        env.trigger = &trigger;
    } else {
        msgpack_zone pzone;
        msgpack_zone_init(&pzone, 4096);
        msgpack_object pruned;
        CHECK(prune_unpack(reads, NULL, 0, sb.data, sb.size, &pzone, &pruned) == 0);
        check_same_render(prog, &env, &pruned);
        msgpack_zone_destroy(&pzone);
    }
    prune_free(reads);

    struct sbuf out;
    sbuf_init(&out);
    char why[256];
    bool wrote;
    int rc = expr_render_ex(prog, &env, &out, &wrote, why, sizeof(why));
    CHECK(rc == 0 || rc == -EINVAL || rc == -E2BIG);
    CHECK(rc == 0 || why[0] != '\0');
    CHECK(out.len <= EXPR_MAX_OUTPUT + EXPR_MAX_STRING);
    CHECK(rc != 0 || wrote || out.len == 0);
    sbuf_deinit(&out);
    msgpack_sbuffer_destroy(&lsb);
    msgpack_zone_destroy(&zone);
    msgpack_sbuffer_destroy(&sb);
    expr_free(prog);
    return 0;
}
