/*
 * fuzz_request.c: libFuzzer target for the request → message path (webhook.c + pack.c).
 * Input: "METHOD\nPATH[?QUERY]\nName: value\n...\n\nBODY". Every accepted request's message
 * must be exactly one valid msgpack value.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "webhook.h"

static struct flow fl = {.id = "hello", .ns = "company.team", .topic = "t"};
static struct flow_trigger trig = {.id = "hook", .key = "k", .key_len = 1, .flow = &fl};
static struct flow_set fs = {&fl, 1, 1, 1};
static struct route_table *rt;
static struct hook_ctx *ctx;

static struct strv next_line(const char **p, const char *end)
{
    const char *nl = memchr(*p, '\n', (size_t)(end - *p));
    struct strv line = {*p, (size_t)((nl ? nl : end) - *p)};
    *p = nl ? nl + 1 : end;
    return line;
}

static size_t parse_headers(const char **p, const char *end, struct hook_header *h, size_t max)
{
    size_t n = 0;
    while (*p < end && n < max) {
        struct strv line = next_line(p, end);
        if (line.len == 0) {
            break;
        }
        const char *colon = memchr(line.ptr, ':', line.len);
        size_t nlen = colon ? (size_t)(colon - line.ptr) : line.len;
        h[n].name = (struct strv){line.ptr, nlen};
        h[n].value = colon ? (struct strv){colon + 1, line.len - nlen - 1} : (struct strv){"", 0};
        n++;
    }
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!ctx) {
        fl.triggers = &trig;
        fl.ntriggers = 1;
        rt = route_table_new(&fs, "main");
        ctx = hook_ctx_new(rt, "main", 1);
    }
    const char *p = (const char *)data, *end = p + size;
    struct hook_header h[64];
    struct hook_input in = {.remote_addr = "127.0.0.1"};
    in.method = next_line(&p, end);
    struct strv target = next_line(&p, end);
    const char *q = memchr(target.ptr, '?', target.len);
    in.path = (struct strv){target.ptr, q ? (size_t)(q - target.ptr) : target.len};
    in.query = q ? (struct strv){q + 1, target.len - in.path.len - 1} : (struct strv){NULL, 0};
    in.nheaders = parse_headers(&p, end, h, 64);
    in.headers = h;
    in.body = (struct strv){p, (size_t)(end - p)};

    struct hook_req *hr = hook_req_new();
    if (hook_process(ctx, &in, hr) == HOOK_ACCEPTED) {
        msgpack_unpacked u;
        size_t off = 0;
        msgpack_unpacked_init(&u);
        if (msgpack_unpack_next(&u, hr->msg.data, hr->msg.size, &off) != MSGPACK_UNPACK_SUCCESS ||
            off != hr->msg.size) {
            abort();
        }
        msgpack_unpacked_destroy(&u);
    }
    hook_req_free(hr);
    return 0;
}
