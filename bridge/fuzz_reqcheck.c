/*
 * fuzz_reqcheck.c: libFuzzer target for the framing check (reqcheck.c). The first byte picks a
 * split size. Whether a stream is refused, at which message, and how many messages before it
 * were complete must not depend on how its bytes were split into reads, and the bad message's
 * offset never lies past the bytes fed (conn.c cuts the input buffer there). The status may
 * differ when one message has two faults (say a bad version and a doubled space): which one is
 * seen first can depend on the split, and either refusal is right.
 *
 * reqcheck_body_left() is what conn.c reads ahead by: within a body it must count down by exactly
 * the bytes fed, and the message must end exactly when it reaches them.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "reqcheck.h"

static const struct reqcheck_limits lim = {
    .max_uri_bytes = 256, .max_header_bytes = 1024, .max_headers = 16};

struct outcome {
    int status;
    uint64_t bad, completed, begun, off;
};

/* The read-ahead's promise, checked around one feed of n bytes that the stream took. */
static void check_body_left(const struct reqcheck *rc, uint64_t left, uint64_t done, size_t n)
{
    if (reqcheck_phase(rc) != RC_BODY && reqcheck_body_left(rc) != 0) {
        abort();
    }
    if (left == 0) {
        return;
    }
    if (n < left) {
        if (reqcheck_completed(rc) != done || reqcheck_body_left(rc) != left - n) {
            abort();
        }
    } else if (reqcheck_completed(rc) < done + 1) {
        abort();
    }
}

static struct outcome run(const uint8_t *data, size_t size, size_t step)
{
    struct reqcheck *rc = reqcheck_new(&lim);
    struct outcome o = {0};
    for (size_t i = 0; i < size; i += step) {
        size_t n = size - i < step ? size - i : step;
        uint64_t left = reqcheck_body_left(rc), done = reqcheck_completed(rc);
        if (reqcheck_feed(rc, (const char *)data + i, n) < 0) {
            break;
        }
        check_body_left(rc, left, done, n);
    }
    o.status = reqcheck_verdict(rc)->status;
    o.bad = reqcheck_verdict(rc)->bad_msg_start;
    o.completed = reqcheck_completed(rc);
    o.begun = reqcheck_begun(rc);
    o.off = reqcheck_offset(rc);
    if (o.status && o.bad > o.off) {
        abort();
    }
    if (o.completed > o.begun) {
        abort();
    }
    reqcheck_free(rc);
    return o;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) {
        return 0;
    }
    size_t step = (size_t)data[0] % 17 + 1;
    data++;
    size--;
    struct outcome whole = run(data, size, size ? size : 1);
    struct outcome split = run(data, size, step);
    if ((whole.status != 0) != (split.status != 0) || whole.completed != split.completed ||
        (whole.status && whole.bad != split.bad)) {
        abort();
    }
    return 0;
}
