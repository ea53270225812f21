/*
 * fuzz_decode.c: libFuzzer target for proto_decode, proto_exec_state_decode and
 * proto_trigger_state_decode. Any input must decode or fail cleanly with each; an input that
 * decodes must re-encode, decode again to the same fields, and re-encode to the same bytes
 * (for the state messages: when the producer could have written it, i.e. a known state name).
 * Seeds: the golden vectors in testdata/; dictionary: fuzz_decode.dict.
 */
#include "proto.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static bool str_equal(const struct proto_str *a, const struct proto_str *b)
{
    if ((a->ptr == NULL) != (b->ptr == NULL) || a->len != b->len) {
        return false;
    }
    return a->len == 0 || memcmp(a->ptr, b->ptr, a->len) == 0;
}

static bool msg_equal(const struct proto_msg *a, const struct proto_msg *b)
{
    const struct proto_str *x[] = {&a->id,          &a->tenant_id,    &a->ns,      &a->flow_id,
                                   &a->received_at, &a->method,       &a->path,    &a->remote_addr,
                                   &a->trigger_id,  &a->trigger_type, &a->headers, &a->parameters,
                                   &a->body};
    const struct proto_str *y[] = {&b->id,          &b->tenant_id,    &b->ns,      &b->flow_id,
                                   &b->received_at, &b->method,       &b->path,    &b->remote_addr,
                                   &b->trigger_id,  &b->trigger_type, &b->headers, &b->parameters,
                                   &b->body};

    for (size_t i = 0; i < sizeof(x) / sizeof(x[0]); i++) {
        if (!str_equal(x[i], y[i])) {
            return false;
        }
    }
    return true;
}

static void round_trip(const struct proto_decoded *d)
{
    struct proto_decoded again;
    msgpack_sbuffer sb, sb2;

    msgpack_sbuffer_init(&sb);
    msgpack_sbuffer_init(&sb2);
    if (proto_encode(&d->m, &sb) != PROTO_OK) {
        abort();
    }
    if (proto_decode(sb.data, sb.size, &again) != PROTO_OK || !msg_equal(&again.m, &d->m) ||
        again.has_body != d->has_body) {
        abort();
    }
    if (proto_encode(&again.m, &sb2) != PROTO_OK || sb2.size != sb.size ||
        memcmp(sb2.data, sb.data, sb.size) != 0) {
        abort();
    }
    proto_decoded_deinit(&again);
    msgpack_sbuffer_destroy(&sb2);
    msgpack_sbuffer_destroy(&sb);
}

static void exec_round_trip(const struct proto_exec_state_decoded *d)
{
    struct proto_exec_state_decoded again;
    const struct proto_str *x[] = {&d->e.id, &d->e.tenant_id, &d->e.ns, &d->e.flow_id,
                                   &d->e.trigger_id, &d->e.state, &d->e.time, &d->e.outputs};
    msgpack_sbuffer sb;

    msgpack_sbuffer_init(&sb);
    int rc = proto_exec_state_encode(&d->e, &sb);
    if (d->state == PROTO_STATE_UNKNOWN) {
        /* Readers accept state names producers may not write. */
        if (rc != PROTO_EINVAL) {
            abort();
        }
        msgpack_sbuffer_destroy(&sb);
        return;
    }
    if (rc != PROTO_OK || proto_exec_state_decode(sb.data, sb.size, &again) != PROTO_OK) {
        abort();
    }
    const struct proto_str *y[] = {&again.e.id,         &again.e.tenant_id, &again.e.ns,
                                   &again.e.flow_id,    &again.e.trigger_id, &again.e.state,
                                   &again.e.time,       &again.e.outputs};
    for (size_t i = 0; i < sizeof(x) / sizeof(x[0]); i++) {
        if (!str_equal(x[i], y[i])) {
            abort();
        }
    }
    proto_exec_state_deinit(&again);
    msgpack_sbuffer_destroy(&sb);
}

static void trigger_round_trip(const struct proto_trigger_state *t)
{
    struct proto_trigger_state again;
    msgpack_sbuffer sb;

    msgpack_sbuffer_init(&sb);
    int rc = proto_trigger_state_encode(t, &sb);
    if (t->disabled && !proto_state_terminal(proto_state_from_name(t->state.ptr, t->state.len))) {
        if (rc != PROTO_EINVAL) {
            abort();
        }
        msgpack_sbuffer_destroy(&sb);
        return;
    }
    if (rc != PROTO_OK || proto_trigger_state_decode(sb.data, sb.size, &again) != PROTO_OK ||
        again.disabled != t->disabled || !str_equal(&again.execution_id, &t->execution_id) ||
        !str_equal(&again.state, &t->state) || !str_equal(&again.time, &t->time) ||
        !str_equal(&again.ns, &t->ns) || !str_equal(&again.trigger_id, &t->trigger_id)) {
        abort();
    }
    msgpack_sbuffer_destroy(&sb);
}

static void fuzz_states(const uint8_t *data, size_t size)
{
    struct proto_exec_state_decoded e;
    struct proto_trigger_state t;
    int rc = proto_exec_state_decode(data, size, &e);

    if (rc < PROTO_ENOMEM || rc > PROTO_OK) {
        abort();
    }
    if (rc == PROTO_OK) {
        if (proto_message_kind(data, size) != PROTO_KIND_EXEC_STATE) {
            abort();
        }
        exec_round_trip(&e);
    }
    proto_exec_state_deinit(&e);
    rc = proto_trigger_state_decode(data, size, &t);
    if (rc < PROTO_ENOMEM || rc > PROTO_OK) {
        abort();
    }
    if (rc == PROTO_OK) {
        trigger_round_trip(&t);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct proto_decoded d;
    size_t used = 0;
    int rc = proto_decode(data, size, &d);

    if (rc < PROTO_ENOMEM || rc > PROTO_OK) {
        abort();
    }
    if (rc == PROTO_OK) {
        if (proto_value_len(data, size, &used) != PROTO_OK || used != size) {
            abort();
        }
        round_trip(&d);
    }
    proto_decoded_deinit(&d);
    fuzz_states(data, size);
    return 0;
}
