/*
 * proto.h: the wire format webhook-bridge publishes to Kafka (see SPEC.md): encode, decode,
 * strerror. The only header of proto/ that other folders include. No I/O, no global state:
 * every function may be called from any thread.
 */
#ifndef PROTO_H
#define PROTO_H

#include <stdbool.h>
#include <stddef.h>

#include <msgpack.h>

/** The format version this library writes (map key "formatVersion"). */
#define PROTO_FORMAT_VERSION 1

/** Kafka header `content-type` value for this format version. */
#define PROTO_CONTENT_TYPE "application/vnd.webhook-bridge.trigger.v1+msgpack"

/** Kafka record header names. The record key is the execution id as well. */
#define PROTO_HEADER_CONTENT_TYPE "content-type"
#define PROTO_HEADER_EXECUTION_ID "execution-id"

/** The value of trigger.type in format version 1. */
#define PROTO_TRIGGER_TYPE "io.kestra.plugin.core.trigger.Webhook"

/** What replaces the key segment in request.path. */
#define PROTO_PATH_MASK "********"

/** Length of an execution id: base62 characters [0-9A-Za-z], left-padded with '0'. */
#define PROTO_ID_LEN 22

/** Length of receivedAt, "YYYY-MM-DDTHH:MM:SS.mmmZ". */
#define PROTO_TIME_LEN 24

/**
 * Nesting limits. No map or array of a message may sit inside more than PROTO_MAX_DEPTH - 1
 * others (the root map is level 1): msgpack-c's unpacker refuses deeper input. The body is at
 * level 4, so a body may nest PROTO_MAX_BODY_DEPTH levels, counting itself. A producer must
 * send a deeper JSON body as its raw text.
 */
#define PROTO_MAX_DEPTH 32
#define PROTO_MAX_BODY_DEPTH (PROTO_MAX_DEPTH - 3)

/** Result codes: 0 is success, the others are negative. */
enum proto_rc {
    PROTO_OK = 0,
    PROTO_ETRUNC = -1,    /* input ends inside a value */
    PROTO_EMSGPACK = -2,  /* not valid msgpack */
    PROTO_ESHAPE = -3,    /* valid msgpack, but not the map SPEC.md describes */
    PROTO_EVERSION = -4,  /* formatVersion this library cannot read */
    PROTO_ETRAILING = -5, /* bytes after the message */
    PROTO_ENOMEM = -6,    /* out of memory, or the packer's write callback failed */
    PROTO_EINVAL = -7,    /* encode: the struct proto_msg breaks a rule of SPEC.md */
};

/** A counted string; borrowed. ptr == NULL means "absent" where SPEC.md allows absence. */
struct proto_str {
    const char *ptr;
    size_t len;
};

/**
 * One trigger message. For encoding every string is borrowed from the caller. headers, parameters
 * and body are already msgpack-encoded values, embedded verbatim (body.ptr == NULL: no body).
 * Every string field is required (ptr != NULL; len 0 is the empty string) and must be valid
 * UTF-8; id must be PROTO_ID_LEN base62 characters and received_at PROTO_TIME_LEN characters of
 * "YYYY-MM-DDTHH:MM:SS.mmmZ" naming a real UTC time.
 */
struct proto_msg {
    struct proto_str id;           /* execution id, 22 base62 characters */
    struct proto_str tenant_id;    /* "tenantId", e.g. "main" */
    struct proto_str ns;           /* "namespace" */
    struct proto_str flow_id;      /* "flowId" */
    struct proto_str received_at;  /* RFC 3339 UTC with milliseconds */
    struct proto_str method;       /* as sent: GET, POST, PUT */
    struct proto_str path;         /* the request path with the key segment masked */
    struct proto_str remote_addr;  /* IP address without port */
    struct proto_str trigger_id;   /* the webhook trigger's id in the flow */
    struct proto_str trigger_type; /* PROTO_TRIGGER_TYPE */
    struct proto_str headers;      /* msgpack map: name → array of str */
    struct proto_str parameters;   /* msgpack map: name → array of str */
    struct proto_str body;         /* msgpack value, or ptr NULL when absent */
};

/**
 * Appends the whole message to sb: proto_encode_head() followed by the raw body when body.ptr is
 * not NULL. headers and parameters must each be exactly one msgpack map of str → array of str,
 * and body exactly one msgpack value within PROTO_MAX_BODY_DEPTH, all strings valid UTF-8.
 * Returns PROTO_OK; PROTO_EINVAL when m breaks a rule of SPEC.md (nothing is written);
 * PROTO_ENOMEM when the buffer cannot grow. On failure sb is left as it was.
 */
int proto_encode(const struct proto_msg *m, msgpack_sbuffer *sb);

/**
 * Appends everything up to the body: when has_body is true, the message ends with the key "body"
 * and the caller must pack exactly one value next (so a body can be packed straight into the
 * message without a copy); when false the message is complete. m->body is ignored. Checks m like
 * proto_encode (not the body the caller packs: keep it UTF-8 and within PROTO_MAX_BODY_DEPTH)
 * and returns the same codes; nothing is written on PROTO_EINVAL, but after PROTO_ENOMEM the
 * packer's output holds a partial message that the caller must discard.
 */
int proto_encode_head(const struct proto_msg *m, bool has_body, msgpack_packer *pk);

/**
 * A decoded message: m's strings and raw headers/parameters/body point into `buf` as given to
 * proto_decode (which must outlive it); the msgpack_object views live in the zone, but their
 * strings, bin and ext payloads point into `buf` too.
 */
struct proto_decoded {
    struct proto_msg m;
    int format_version;
    msgpack_zone zone;
    msgpack_object root;       /* the whole message, unknown keys included */
    msgpack_object headers;    /* MSGPACK_OBJECT_MAP */
    msgpack_object parameters; /* MSGPACK_OBJECT_MAP */
    msgpack_object body;       /* MSGPACK_OBJECT_NIL type with has_body false when absent */
    bool has_body;
};

/**
 * Decodes and validates one message: exactly one msgpack value filling all `len` bytes, with
 * every key SPEC.md requires present once with the right type, formatVersion known, every string
 * valid UTF-8. Unknown keys are ignored; keys are found by name, not position. buf may be NULL
 * when len is 0. Never reads outside buf; allocates at most about 24 bytes per input byte.
 * On success call proto_decoded_deinit(). On failure out is zeroed and holds nothing to free
 * (proto_decoded_deinit() on it is a no-op). The first failing check decides the code: framing
 * (PROTO_ETRUNC, PROTO_EMSGPACK, PROTO_ETRAILING, and PROTO_ESHAPE for invalid UTF-8 or nesting
 * beyond PROTO_MAX_DEPTH), then formatVersion (PROTO_EVERSION), then the shape (PROTO_ESHAPE).
 */
int proto_decode(const void *buf, size_t len, struct proto_decoded *out);

/** Frees what proto_decode allocated and zeroes d. NULL, and a second call, are no-ops. */
void proto_decoded_deinit(struct proto_decoded *d);

/**
 * Measures the msgpack value at the start of buf (for a stream of concatenated messages): on
 * success stores its size in *msg_len. Checks framing only, as proto_decode's first step does:
 * returns PROTO_OK, PROTO_ETRUNC, PROTO_EMSGPACK or PROTO_ESHAPE (invalid UTF-8, too deep).
 */
int proto_value_len(const void *buf, size_t len, size_t *msg_len);

/** Static text for a result code (a generic text for unknown codes). */
const char *proto_strerror(int rc);

#endif
