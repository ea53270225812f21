/*
 * proto_state.c: the codec for SPEC-STATE.md: execution-state events (executors → bridges) and
 * trigger-state records (the compacted topic of disabled triggers), plus proto_message_kind.
 * No I/O, no global state. Framing goes through proto.c's bounded reader before msgpack-c
 * allocates anything, exactly as for the trigger message.
 */
#include "proto.h"
#include "proto_int.h"

#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <string.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* ==== State names ==== */

static const char *const state_names[PROTO_STATE_COUNT_] = {
    [PROTO_STATE_CREATED] = "CREATED",         [PROTO_STATE_SUBMITTED] = "SUBMITTED",
    [PROTO_STATE_RUNNING] = "RUNNING",         [PROTO_STATE_PAUSED] = "PAUSED",
    [PROTO_STATE_RESTARTED] = "RESTARTED",     [PROTO_STATE_KILLING] = "KILLING",
    [PROTO_STATE_SUCCESS] = "SUCCESS",         [PROTO_STATE_WARNING] = "WARNING",
    [PROTO_STATE_FAILED] = "FAILED",           [PROTO_STATE_KILLED] = "KILLED",
    [PROTO_STATE_CANCELLED] = "CANCELLED",     [PROTO_STATE_QUEUED] = "QUEUED",
    [PROTO_STATE_RETRYING] = "RETRYING",       [PROTO_STATE_RETRIED] = "RETRIED",
    [PROTO_STATE_SKIPPED] = "SKIPPED",         [PROTO_STATE_BREAKPOINT] = "BREAKPOINT",
    [PROTO_STATE_RESUBMITTED] = "RESUBMITTED",
};

enum proto_state proto_state_from_name(const char *s, size_t n)
{
    for (int st = 1; st < PROTO_STATE_COUNT_; st++) {
        if (strlen(state_names[st]) == n && memcmp(state_names[st], s, n) == 0) {
            return (enum proto_state)st;
        }
    }
    return PROTO_STATE_UNKNOWN;
}

const char *proto_state_name(enum proto_state st)
{
    return st > PROTO_STATE_UNKNOWN && st < PROTO_STATE_COUNT_ ? state_names[st] : NULL;
}

bool proto_state_terminal(enum proto_state st)
{
    switch (st) {
    case PROTO_STATE_FAILED:
    case PROTO_STATE_WARNING:
    case PROTO_STATE_SUCCESS:
    case PROTO_STATE_KILLED:
    case PROTO_STATE_CANCELLED:
    case PROTO_STATE_RETRIED:
    case PROTO_STATE_SKIPPED:
    case PROTO_STATE_RESUBMITTED:
        return true;
    default:
        return false;
    }
}

/* ==== Field tables (SPEC-STATE.md §2 and §3) ==== */

/*
 * One table per message, in the order the producer writes the keys. The decoder looks keys up
 * by name and writes each string into the struct at `off`; the encoder walks the table in order.
 */
enum sfield_kind { S_VERSION, S_MESSAGE, S_ID, S_TIME, S_STR, S_STATE, S_BOOL, S_OUTPUTS };

struct sfield {
    const char *name;
    enum sfield_kind kind;
    size_t off;    /* offsetof the struct proto_str (or the bool, for S_BOOL) */
    bool optional; /* may be absent; the cross-field rules decide when */
};

struct stable {
    const struct sfield *fields;
    size_t n;
    const char *message; /* the value of "message" */
};

#define ES_AT(member) offsetof(struct proto_exec_state, member)
#define TS_AT(member) offsetof(struct proto_trigger_state, member)

static const struct sfield exec_fields[] = {
    {"formatVersion", S_VERSION, 0, false},
    {"message", S_MESSAGE, 0, false},
    {"id", S_ID, ES_AT(id), false},
    {"tenantId", S_STR, ES_AT(tenant_id), false},
    {"namespace", S_STR, ES_AT(ns), false},
    {"flowId", S_STR, ES_AT(flow_id), false},
    {"triggerId", S_STR, ES_AT(trigger_id), false},
    {"state", S_STATE, ES_AT(state), false},
    {"time", S_TIME, ES_AT(time), false},
    {"outputs", S_OUTPUTS, ES_AT(outputs), true},
};
static const struct stable exec_table = {exec_fields, ARRAY_SIZE(exec_fields),
                                         PROTO_STATE_MESSAGE};

static const struct sfield trigger_fields[] = {
    {"formatVersion", S_VERSION, 0, false},
    {"message", S_MESSAGE, 0, false},
    {"tenantId", S_STR, TS_AT(tenant_id), false},
    {"namespace", S_STR, TS_AT(ns), false},
    {"flowId", S_STR, TS_AT(flow_id), false},
    {"triggerId", S_STR, TS_AT(trigger_id), false},
    {"disabled", S_BOOL, TS_AT(disabled), false},
    {"executionId", S_ID, TS_AT(execution_id), true},
    {"state", S_STATE, TS_AT(state), true},
    {"time", S_TIME, TS_AT(time), false},
};
static const struct stable trigger_table = {trigger_fields, ARRAY_SIZE(trigger_fields),
                                            PROTO_TRIGGER_STATE_MESSAGE};

static struct proto_str *str_at(void *base, const struct sfield *f)
{
    return (struct proto_str *)((char *)base + f->off);
}

static const struct proto_str *cstr_at(const void *base, const struct sfield *f)
{
    return (const struct proto_str *)((const char *)base + f->off);
}

/* A value that may sit in a string field: the format of its kind (UTF-8 is checked apart). */
static bool string_ok(enum sfield_kind kind, const char *s, size_t n)
{
    switch (kind) {
    case S_ID:
        return proto_id_valid_(s, n);
    case S_TIME:
        return proto_time_valid_(s, n);
    case S_STATE:
        return n > 0;
    default:
        return true;
    }
}

/* ==== Decode ==== */

static bool obj_is(const msgpack_object *o, const char *s)
{
    size_t n = strlen(s);

    return o->type == MSGPACK_OBJECT_STR && o->via.str.size == n &&
           memcmp(o->via.str.ptr, s, n) == 0;
}

static const msgpack_object *root_get(const msgpack_object *root, const char *key)
{
    for (uint32_t i = 0; i < root->via.map.size; i++) {
        if (obj_is(&root->via.map.ptr[i].key, key)) {
            return &root->via.map.ptr[i].val;
        }
    }
    return NULL;
}

/* As for the trigger message, the version decides before the shape does (SPEC.md §7.4). */
static int check_version(const msgpack_object *root)
{
    const msgpack_object *v = root_get(root, "formatVersion");

    if (v == NULL) {
        return PROTO_ESHAPE;
    }
    if (v->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
        return v->via.u64 == PROTO_STATE_FORMAT_VERSION ? PROTO_OK : PROTO_EVERSION;
    }
    return v->type == MSGPACK_OBJECT_NEGATIVE_INTEGER ? PROTO_EVERSION : PROTO_ESHAPE;
}

static bool outputs_ok(const msgpack_object *o)
{
    if (o->type != MSGPACK_OBJECT_MAP) {
        return false;
    }
    for (uint32_t i = 0; i < o->via.map.size; i++) {
        if (o->via.map.ptr[i].key.type != MSGPACK_OBJECT_STR) {
            return false;
        }
    }
    return true;
}

/*
 * One known key's value. Strings and outputs are recorded as slices of buf: msgpack-c's str views
 * already point into it, and outputs' bytes are found again by re-measuring from its offset.
 */
static int parse_value(const struct stable *t, const struct sfield *f, const msgpack_object *v,
                       void *out)
{
    struct proto_str *s = str_at(out, f);

    switch (f->kind) {
    case S_VERSION:
        return PROTO_OK; /* check_version() did it */
    case S_MESSAGE:
        return obj_is(v, t->message) ? PROTO_OK : PROTO_ESHAPE;
    case S_BOOL:
        if (v->type != MSGPACK_OBJECT_BOOLEAN) {
            return PROTO_ESHAPE;
        }
        *(bool *)((char *)out + f->off) = v->via.boolean;
        return PROTO_OK;
    case S_OUTPUTS:
        return outputs_ok(v) ? PROTO_OK : PROTO_ESHAPE;
    default:
        if (v->type != MSGPACK_OBJECT_STR || !string_ok(f->kind, v->via.str.ptr, v->via.str.size)) {
            return PROTO_ESHAPE;
        }
        s->ptr = v->via.str.size > 0 ? v->via.str.ptr : "";
        s->len = v->via.str.size;
        return PROTO_OK;
    }
}

static const struct sfield *find_field(const struct stable *t, const msgpack_object *key)
{
    for (size_t k = 0; k < t->n; k++) {
        if (obj_is(key, t->fields[k].name)) {
            return &t->fields[k];
        }
    }
    return NULL;
}

/* Every key of the root: known keys once each with their type, unknown keys skipped. */
static int parse_root(const struct stable *t, const msgpack_object *root, void *out,
                      uint32_t *seen)
{
    *seen = 0;
    for (uint32_t i = 0; i < root->via.map.size; i++) {
        const msgpack_object *key = &root->via.map.ptr[i].key;
        const struct sfield *f;
        uint32_t bit;
        int rc;

        if (key->type != MSGPACK_OBJECT_STR) {
            return PROTO_ESHAPE;
        }
        f = find_field(t, key);
        if (f == NULL) {
            continue;
        }
        bit = UINT32_C(1) << (f - t->fields);
        if (*seen & bit) {
            return PROTO_ESHAPE;
        }
        *seen |= bit;
        rc = parse_value(t, f, &root->via.map.ptr[i].val, out);
        if (rc != PROTO_OK) {
            return rc;
        }
    }
    for (size_t k = 0; k < t->n; k++) {
        if (!t->fields[k].optional && !(*seen & UINT32_C(1) << k)) {
            return PROTO_ESHAPE;
        }
    }
    return PROTO_OK;
}

/* Framing, then msgpack-c's tree in `zone`, then the version: the steps of SPEC.md §7.4. */
static int unpack_checked(const void *buf, size_t len, msgpack_zone *zone, msgpack_object *root)
{
    size_t used = 0, off = 0;
    int rc = proto_check_value_(buf, len, 0, &used);

    if (rc != PROTO_OK) {
        return rc;
    }
    if (used != len) {
        return PROTO_ETRAILING;
    }
    if (!msgpack_zone_init(zone, MSGPACK_ZONE_CHUNK_SIZE)) {
        memset(zone, 0, sizeof(*zone));
        return PROTO_ENOMEM;
    }
    switch (msgpack_unpack(buf, len, &off, zone, root)) {
    case MSGPACK_UNPACK_SUCCESS:
        break;
    case MSGPACK_UNPACK_NOMEM_ERROR:
        return PROTO_ENOMEM;
    default:
        return PROTO_EMSGPACK; /* not reached: the bounded reader accepted these bytes */
    }
    if (root->type != MSGPACK_OBJECT_MAP) {
        return PROTO_ESHAPE;
    }
    return check_version(root);
}

static void zone_deinit(msgpack_zone *zone)
{
    /* chunk_size is 0 only in a zone that msgpack_zone_init() never set up. */
    if (zone->chunk_size != 0) {
        msgpack_zone_destroy(zone);
    }
    memset(zone, 0, sizeof(*zone));
}

/*
 * The raw bytes of the outputs value: msgpack-c gives a tree, but the bridge hands the value on
 * as it came, without re-encoding it.
 */
static int outputs_slice(const char *buf, size_t len, struct proto_str *out)
{
    size_t start = 0, end = 0;

    if (!proto_root_value_(buf, len, "outputs", &start, &end)) {
        return PROTO_OK;
    }
    out->ptr = buf + start;
    out->len = end - start;
    return PROTO_OK;
}

int proto_exec_state_decode(const void *buf, size_t len, struct proto_exec_state_decoded *out)
{
    uint32_t seen = 0;
    int rc;

    memset(out, 0, sizeof(*out));
    out->outputs.type = MSGPACK_OBJECT_NIL;
    rc = unpack_checked(buf, len, &out->zone, &out->root);
    if (rc != PROTO_OK) {
        goto out;
    }
    rc = parse_root(&exec_table, &out->root, &out->e, &seen);
    if (rc != PROTO_OK) {
        goto out;
    }
    out->state = proto_state_from_name(out->e.state.ptr, out->e.state.len);
    /* Outputs belong to a finished execution; an unknown state may be a new terminal one. */
    rc = PROTO_ESHAPE;
    const msgpack_object *o = root_get(&out->root, "outputs");
    if (o != NULL && out->state != PROTO_STATE_UNKNOWN && !proto_state_terminal(out->state)) {
        goto out;
    }
    if (o != NULL) {
        out->outputs = *o;
    }
    rc = outputs_slice(buf, len, &out->e.outputs);
out:
    if (rc != PROTO_OK) {
        proto_exec_state_deinit(out);
    }
    return rc;
}

void proto_exec_state_deinit(struct proto_exec_state_decoded *d)
{
    if (d == NULL) {
        return;
    }
    zone_deinit(&d->zone);
    memset(d, 0, sizeof(*d));
    d->outputs.type = MSGPACK_OBJECT_NIL;
}

/* disabled: execution and state required, and the state terminal; enabled: neither. */
static int trigger_rules(const struct proto_trigger_state *t)
{
    bool has_exec = t->execution_id.ptr != NULL, has_state = t->state.ptr != NULL;

    if (!t->disabled) {
        return has_exec || has_state ? PROTO_ESHAPE : PROTO_OK;
    }
    if (!has_exec || !has_state) {
        return PROTO_ESHAPE;
    }
    return PROTO_OK;
}

int proto_trigger_state_decode(const void *buf, size_t len, struct proto_trigger_state *out)
{
    msgpack_zone zone;
    msgpack_object root;
    uint32_t seen = 0;
    int rc;

    memset(out, 0, sizeof(*out));
    memset(&zone, 0, sizeof(zone));
    rc = unpack_checked(buf, len, &zone, &root);
    if (rc != PROTO_OK) {
        goto out;
    }
    rc = parse_root(&trigger_table, &root, out, &seen);
    if (rc != PROTO_OK) {
        goto out;
    }
    rc = trigger_rules(out);
out:
    /* The strings point into buf, not into the zone: the zone can go. */
    zone_deinit(&zone);
    if (rc != PROTO_OK) {
        memset(out, 0, sizeof(*out));
    }
    return rc;
}

/* ==== Kind ==== */

/* The payload of the str at p (a value the bounded reader accepted), in any str encoding. */
static bool str_payload(const uint8_t *p, size_t n, const uint8_t **body, size_t *len)
{
    size_t head = (p[0] & 0xe0) == 0xa0 ? 1 : p[0] == 0xd9 ? 2 : p[0] == 0xda ? 3
                                                             : p[0] == 0xdb ? 5
                                                                            : 0;
    if (head == 0 || head > n) {
        return false;
    }
    *body = p + head;
    *len = n - head;
    return true;
}

enum proto_kind proto_message_kind(const void *buf, size_t len)
{
    static const struct {
        const char *name;
        enum proto_kind kind;
    } kinds[] = {
        {PROTO_STATE_MESSAGE, PROTO_KIND_EXEC_STATE},
        {PROTO_TRIGGER_STATE_MESSAGE, PROTO_KIND_TRIGGER_STATE},
    };
    size_t start = 0, end = 0, used = 0, n = 0;
    const uint8_t *body = NULL;

    if (proto_check_value_(buf, len, 0, &used) != PROTO_OK ||
        !proto_root_value_(buf, len, "message", &start, &end)) {
        return PROTO_KIND_TRIGGER;
    }
    if (!str_payload((const uint8_t *)buf + start, end - start, &body, &n)) {
        return PROTO_KIND_UNKNOWN;
    }
    for (size_t k = 0; k < ARRAY_SIZE(kinds); k++) {
        if (strlen(kinds[k].name) == n && memcmp(body, kinds[k].name, n) == 0) {
            return kinds[k].kind;
        }
    }
    return PROTO_KIND_UNKNOWN;
}

/* ==== Encode ==== */

static int check_field(const void *m, const struct sfield *f)
{
    const struct proto_str *s = cstr_at(m, f);
    size_t used = 0;

    switch (f->kind) {
    case S_VERSION:
    case S_MESSAGE:
    case S_BOOL:
        return PROTO_OK;
    case S_OUTPUTS:
        if (s->ptr == NULL) {
            return PROTO_OK;
        }
        /* The outputs map sits at level 2: the root is around it. */
        if (proto_check_value_(s->ptr, s->len, 1, &used) != PROTO_OK || used != s->len) {
            return PROTO_EINVAL;
        }
        return PROTO_OK;
    default:
        if (s->ptr == NULL) {
            return f->optional ? PROTO_OK : PROTO_EINVAL;
        }
        if (!proto_utf8_valid_(s->ptr, s->len) || !string_ok(f->kind, s->ptr, s->len)) {
            return PROTO_EINVAL;
        }
        if (f->kind == S_STATE && proto_state_from_name(s->ptr, s->len) == PROTO_STATE_UNKNOWN) {
            return PROTO_EINVAL;
        }
        return PROTO_OK;
    }
}

static int pack_cstr(msgpack_packer *pk, const char *s, size_t n)
{
    if (msgpack_pack_str(pk, n) != 0) {
        return PROTO_ENOMEM;
    }
    return n == 0 || msgpack_pack_str_body(pk, s, n) == 0 ? PROTO_OK : PROTO_ENOMEM;
}

static bool present(const void *m, const struct sfield *f)
{
    switch (f->kind) {
    case S_VERSION:
    case S_MESSAGE:
    case S_BOOL:
        return true;
    default:
        return cstr_at(m, f)->ptr != NULL;
    }
}

static int pack_field(msgpack_packer *pk, const struct stable *t, const void *m,
                      const struct sfield *f)
{
    const struct proto_str *s = cstr_at(m, f);
    int rc = pack_cstr(pk, f->name, strlen(f->name));

    if (rc != PROTO_OK) {
        return rc;
    }
    switch (f->kind) {
    case S_VERSION:
        return msgpack_pack_int(pk, PROTO_STATE_FORMAT_VERSION) == 0 ? PROTO_OK : PROTO_ENOMEM;
    case S_MESSAGE:
        return pack_cstr(pk, t->message, strlen(t->message));
    case S_BOOL:
        rc = *(const bool *)((const char *)m + f->off) ? msgpack_pack_true(pk)
                                                        : msgpack_pack_false(pk);
        return rc == 0 ? PROTO_OK : PROTO_ENOMEM;
    case S_OUTPUTS:
        return pk->callback(pk->data, s->ptr, s->len) == 0 ? PROTO_OK : PROTO_ENOMEM;
    default:
        return pack_cstr(pk, s->ptr, s->len);
    }
}

static int encode(const struct stable *t, const void *m, msgpack_sbuffer *sb)
{
    msgpack_packer pk;
    size_t start = sb->size, n = 0;
    int rc = PROTO_EINVAL;

    for (size_t k = 0; k < t->n; k++) {
        rc = check_field(m, &t->fields[k]);
        if (rc != PROTO_OK) {
            goto out;
        }
        n += present(m, &t->fields[k]);
    }
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    rc = msgpack_pack_map(&pk, n) == 0 ? PROTO_OK : PROTO_ENOMEM;
    for (size_t k = 0; k < t->n && rc == PROTO_OK; k++) {
        if (present(m, &t->fields[k])) {
            rc = pack_field(&pk, t, m, &t->fields[k]);
        }
    }
out:
    if (rc != PROTO_OK) {
        sb->size = start;
    }
    return rc;
}

int proto_exec_state_encode(const struct proto_exec_state *e, msgpack_sbuffer *sb)
{
    struct proto_exec_state_decoded d;
    size_t start = sb->size;
    int rc;

    if (e->outputs.ptr != NULL && e->state.ptr != NULL &&
        !proto_state_terminal(proto_state_from_name(e->state.ptr, e->state.len))) {
        return PROTO_EINVAL;
    }
    rc = encode(&exec_table, e, sb);
    if (rc != PROTO_OK) {
        return rc;
    }
    /*
     * The outputs map's keys must be str, which only a full read can tell: check the result with
     * the reader itself, so that no producer writes an event a bridge would refuse. Executors are
     * a cold path.
     */
    rc = proto_exec_state_decode(sb->data + start, sb->size - start, &d);
    proto_exec_state_deinit(&d);
    if (rc != PROTO_OK) {
        sb->size = start;
        return rc == PROTO_ENOMEM ? rc : PROTO_EINVAL;
    }
    return PROTO_OK;
}

int proto_trigger_state_encode(const struct proto_trigger_state *t, msgpack_sbuffer *sb)
{
    if (trigger_rules(t) != PROTO_OK) {
        return PROTO_EINVAL;
    }
    if (t->disabled &&
        !proto_state_terminal(proto_state_from_name(t->state.ptr, t->state.len))) {
        return PROTO_EINVAL;
    }
    return encode(&trigger_table, t, sb);
}

/* ==== Keys ==== */

int proto_trigger_key(const struct proto_str *tenant_id, const struct proto_str *ns,
                      const struct proto_str *flow_id, const struct proto_str *trigger_id,
                      char *key, size_t cap)
{
    const struct proto_str *parts[] = {tenant_id, ns, flow_id, trigger_id};
    size_t n = 0, need = ARRAY_SIZE(parts); /* three '/' and the NUL */

    for (size_t i = 0; i < ARRAY_SIZE(parts); i++) {
        need += parts[i]->len;
    }
    if (need > cap || need > (size_t)INT_MAX) {
        return -ENOSPC;
    }
    for (size_t i = 0; i < ARRAY_SIZE(parts); i++) {
        if (parts[i]->len > 0) {
            memcpy(key + n, parts[i]->ptr, parts[i]->len);
        }
        n += parts[i]->len;
        key[n++] = i + 1 < ARRAY_SIZE(parts) ? '/' : '\0';
    }
    return (int)(n - 1);
}
