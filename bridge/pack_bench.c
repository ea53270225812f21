/*
 * pack_bench.c: prints the time per call of pack_body on the payload files, next to the jsmn
 * version it replaced (pack_oracle.c), jsmn's tokenizer alone and jansson's json_loadb. Figures
 * for pack.c's header comment; not a test.
 * Usage: pack_bench [file...] (default: the files in testdata/payloads/, run from bridge/).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
/* The same jsmn configuration as pack_oracle.c. */
#define JSMN_STATIC
#define JSMN_STRICT
#define JSMN_PARENT_LINKS
#include <jsmn.h>
#include <msgpack.h>

#include "pack.h"
#include "pack_oracle.h"
#include "util.h"

#define RUNS 5

struct input {
    const char *path;
    char *text;
    size_t len;
};

/* What one timed loop runs: `iters` calls on the input; returns something to keep. */
typedef size_t bench_fn(const struct input *in, long iters);

/*
 * CPU time of this thread, not wall time: the build machines are shared, and time spent
 * descheduled would otherwise land in the figures.
 */
static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static size_t run_pack(const struct input *in, long iters)
{
    struct pack_parser *pp = pack_parser_new();
    msgpack_sbuffer sb;
    size_t sum = 0;
    msgpack_sbuffer_init(&sb);
    for (long i = 0; i < iters; i++) {
        sb.size = 0;
        sum += (size_t)pack_body(pp, in->text, in->len, &sb) + sb.size;
    }
    msgpack_sbuffer_destroy(&sb);
    pack_parser_free(pp);
    return sum;
}

static size_t run_oracle(const struct input *in, long iters)
{
    struct pack_oracle *pp = pack_oracle_new();
    msgpack_sbuffer sb;
    size_t sum = 0;
    msgpack_sbuffer_init(&sb);
    for (long i = 0; i < iters; i++) {
        sb.size = 0;
        sum += (size_t)pack_oracle_body(pp, in->text, in->len, &sb) + sb.size;
    }
    msgpack_sbuffer_destroy(&sb);
    pack_oracle_free(pp);
    return sum;
}

static size_t run_jsmn(const struct input *in, long iters)
{
    static jsmntok_t tok[1 << 14];
    size_t sum = 0;
    for (long i = 0; i < iters; i++) {
        jsmn_parser jp;
        jsmn_init(&jp);
        sum += (size_t)jsmn_parse(&jp, in->text, in->len, tok, 1 << 14);
    }
    return sum;
}

static size_t run_jansson(const struct input *in, long iters)
{
    size_t sum = 0;
    for (long i = 0; i < iters; i++) {
        json_t *j = json_loadb(in->text, in->len, 0, NULL);
        sum += json_object_size(j);
        json_decref(j);
    }
    return sum;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median over RUNS timed loops, in ns per call, after one untimed warm-up loop. */
static double median_ns(bench_fn *fn, const struct input *in, long iters, size_t *keep)
{
    double ns[RUNS];
    *keep += fn(in, iters / 10 + 1);
    for (int r = 0; r < RUNS; r++) {
        double t0 = now_ns();
        *keep += fn(in, iters);
        ns[r] = (now_ns() - t0) / (double)iters;
    }
    qsort(ns, RUNS, sizeof(ns[0]), cmp_double);
    return ns[RUNS / 2];
}

static int load(struct input *in)
{
    FILE *f = fopen(in->path, "rb");
    if (!f) {
        perror(in->path);
        return -1;
    }
    struct sbuf b;
    char buf[4096];
    size_t n;
    sbuf_init(&b);
    while ((n = fread(buf, 1, sizeof(buf), f)) > 0) {
        sbuf_append(&b, buf, n);
    }
    fclose(f);
    in->text = b.data;
    in->len = b.len;
    return 0;
}

static void bench_file(struct input *in, size_t *keep)
{
    /* About 200k calls for a small body, fewer for big ones so a run stays near a second. */
    long iters = 200000 / (long)(1 + in->len / 1024);
    long slow_iters = iters / 10 + 1;
    double pack = median_ns(run_pack, in, iters, keep);
    double oracle = median_ns(run_oracle, in, iters, keep);
    double jsmn = median_ns(run_jsmn, in, iters, keep);
    double jans = median_ns(run_jansson, in, slow_iters, keep);
    printf("%s (%zu bytes), median of %d runs, CPU time:\n", in->path, in->len, RUNS);
    printf("  pack_body         %9.0f ns/call  %6.2f ns/byte  (%ld calls per run)\n", pack,
           pack / (double)in->len, iters);
    printf("  oracle (jsmn)     %9.0f ns/call  %6.2f ns/byte  (%ld calls per run)\n", oracle,
           oracle / (double)in->len, iters);
    printf("  jsmn tokens only  %9.0f ns/call  %6.2f ns/byte  (%ld calls per run)\n", jsmn,
           jsmn / (double)in->len, iters);
    printf("  jansson loadb     %9.0f ns/call  %6.2f ns/byte  (%ld calls per run)\n", jans,
           jans / (double)in->len, slow_iters);
}

int main(int argc, char **argv)
{
    static const char *const defaults[] = {"testdata/payloads/github-push.json",
                                           "testdata/payloads/github-push-pretty.json",
                                           "testdata/payloads/small.json"};
    const char *const *paths = argc > 1 ? (const char *const *)argv + 1 : defaults;
    int n = argc > 1 ? argc - 1 : (int)ARRAY_LEN(defaults);
    size_t keep = 0;
    for (int i = 0; i < n; i++) {
        struct input in = {.path = paths[i]};
        if (load(&in) < 0) {
            return 1;
        }
        bench_file(&in, &keep);
        xfree(in.text);
    }
    /* Printed so the compiler cannot drop the loops. */
    printf("(checksum %zu)\n", keep);
    return 0;
}
