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

/* ==== Execution-state events and trigger-state records (SPEC-STATE.md) ==== */

/*
 * Two more messages travel on their own topics, each with its own content type and its own
 * formatVersion (1). Both carry the root key "message" naming what they are, so that a reader
 * that meets a record without its headers can still tell the three messages apart
 * (proto_message_kind); the trigger message has no such key.
 */
#define PROTO_STATE_FORMAT_VERSION 1
#define PROTO_STATE_CONTENT_TYPE "application/vnd.webhook-bridge.execution-state.v1+msgpack"
#define PROTO_STATE_MESSAGE "executionState"
#define PROTO_TRIGGER_STATE_CONTENT_TYPE "application/vnd.webhook-bridge.trigger-state.v1+msgpack"
#define PROTO_TRIGGER_STATE_MESSAGE "triggerState"

/** Documented default topics: executors publish states here; bridges keep disabled triggers. */
#define PROTO_STATE_TOPIC_DEFAULT "webhook-bridge.execution-states"
#define PROTO_TRIGGERS_TOPIC_DEFAULT "webhook-bridge.trigger-states"

/** Which message a buffer holds, judged by its root key "message" only (nothing validated). */
enum proto_kind {
    PROTO_KIND_UNKNOWN = 0,   /* not a map, or a "message" value this library does not know */
    PROTO_KIND_TRIGGER,       /* no "message" key: the trigger message of SPEC.md */
    PROTO_KIND_EXEC_STATE,    /* "message": "executionState" */
    PROTO_KIND_TRIGGER_STATE, /* "message": "triggerState" */
};

/** Never fails: a buffer that is not even msgpack is PROTO_KIND_TRIGGER (its decoder says why). */
enum proto_kind proto_message_kind(const void *buf, size_t len);

/** Kestra's State.Type names (core/.../models/flows/State.java, newest version). */
enum proto_state {
    PROTO_STATE_UNKNOWN = 0, /* a name this library does not know: treated as not terminal */
    PROTO_STATE_CREATED,
    PROTO_STATE_SUBMITTED,
    PROTO_STATE_RUNNING,
    PROTO_STATE_PAUSED,
    PROTO_STATE_RESTARTED,
    PROTO_STATE_KILLING,
    PROTO_STATE_SUCCESS,
    PROTO_STATE_WARNING,
    PROTO_STATE_FAILED,
    PROTO_STATE_KILLED,
    PROTO_STATE_CANCELLED,
    PROTO_STATE_QUEUED,
    PROTO_STATE_RETRYING,
    PROTO_STATE_RETRIED,
    PROTO_STATE_SKIPPED,
    PROTO_STATE_BREAKPOINT,
    PROTO_STATE_RESUBMITTED,
    PROTO_STATE_COUNT_,
};

/** The state named by the n bytes at s (exact, case-sensitive), or PROTO_STATE_UNKNOWN. */
enum proto_state proto_state_from_name(const char *s, size_t n);

/** The State.Type name, or NULL for PROTO_STATE_UNKNOWN and out-of-range values. */
const char *proto_state_name(enum proto_state st);

/**
 * Kestra's terminated states: FAILED, WARNING, SUCCESS, KILLED, CANCELLED, RETRIED, SKIPPED,
 * RESUBMITTED. Only these may carry outputs, and only these can disable a trigger.
 */
bool proto_state_terminal(enum proto_state st);

/**
 * One execution-state event (value on the state topic; the record key is the execution id).
 * Strings are borrowed and required, like struct proto_msg's: id a 22-character base62 id, time
 * in receivedAt's format, state a State.Type name. outputs is one msgpack map with str keys
 * (the flow's outputs), allowed only with a terminal state; ptr NULL means "no outputs".
 */
struct proto_exec_state {
    struct proto_str id;         /* execution id, the trigger message's id */
    struct proto_str tenant_id;  /* "tenantId" */
    struct proto_str ns;         /* "namespace" */
    struct proto_str flow_id;    /* "flowId" */
    struct proto_str trigger_id; /* "triggerId": trigger.id of the trigger message */
    struct proto_str state;      /* "state": a State.Type name */
    struct proto_str time;       /* "time": when the execution entered the state */
    struct proto_str outputs;    /* "outputs": msgpack map, or ptr NULL when absent */
};

/**
 * Appends the event to sb. Returns PROTO_OK; PROTO_EINVAL when e breaks a rule of SPEC-STATE.md
 * (an unknown state name included: producers write only names they know); PROTO_ENOMEM. On
 * failure sb is left as it was.
 */
int proto_exec_state_encode(const struct proto_exec_state *e, msgpack_sbuffer *sb);

/**
 * A decoded event. e's strings point into the buffer given to the decoder (which must outlive
 * it); root and outputs are views in the zone whose strings point into that buffer as well.
 */
struct proto_exec_state_decoded {
    struct proto_exec_state e;
    enum proto_state state; /* PROTO_STATE_UNKNOWN for a name this library does not know */
    msgpack_zone zone;
    msgpack_object root;
    msgpack_object outputs; /* MSGPACK_OBJECT_NIL when absent */
};

/**
 * Decodes and validates one event, with the same framing rules and codes as proto_decode:
 * formatVersion 1, "message" PROTO_STATE_MESSAGE, every required key once with its type, a valid
 * id and time, outputs (when present) a map with str keys and a terminal state. A state name
 * this library does not know is accepted (Kestra adds states) and decodes as PROTO_STATE_UNKNOWN.
 * On success call proto_exec_state_deinit(); on failure out holds nothing to free.
 */
int proto_exec_state_decode(const void *buf, size_t len, struct proto_exec_state_decoded *out);

/** Frees what proto_exec_state_decode allocated and zeroes d. NULL is a no-op. */
void proto_exec_state_deinit(struct proto_exec_state_decoded *d);

/**
 * One record of the compacted trigger-state topic, keyed by proto_trigger_key(). disabled true:
 * the trigger was stopped by execution_id reaching state (its stopAfter) at time. disabled false:
 * an operator enabled it again at time; execution_id and state are then absent (ptr NULL). A
 * tombstone (null value) for the key also means "enabled". Strings borrowed, as above.
 */
struct proto_trigger_state {
    struct proto_str tenant_id;
    struct proto_str ns;
    struct proto_str flow_id;
    struct proto_str trigger_id;
    bool disabled;
    struct proto_str execution_id; /* required when disabled, absent otherwise */
    struct proto_str state;        /* required when disabled (a terminal state), absent otherwise */
    struct proto_str time;         /* required: when it was disabled or enabled */
};

/** Appends the record to sb; codes as proto_exec_state_encode. */
int proto_trigger_state_encode(const struct proto_trigger_state *t, msgpack_sbuffer *sb);

/**
 * Decodes and validates one record into out, whose strings then point into buf. Codes as
 * proto_decode. Allocates nothing: there is nothing to free.
 */
int proto_trigger_state_decode(const void *buf, size_t len, struct proto_trigger_state *out);

/**
 * Writes the record key "tenant/namespace/flowId/triggerId" (Kestra ids never contain '/') with
 * a terminating NUL into key. Returns its length, or -ENOSPC (nothing useful written) when cap
 * is too small.
 */
int proto_trigger_key(const struct proto_str *tenant_id, const struct proto_str *ns,
                      const struct proto_str *flow_id, const struct proto_str *trigger_id,
                      char *key, size_t cap);

#endif
