/*
 * proto.c: the codec for SPEC.md: a bounded msgpack reader, the field table, encode, decode.
 * No I/O, no global state; every function may run on any thread.
 */
#include "proto.h"
#include "proto_int.h"

#include <stdint.h>
#include <string.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* ==== Bounded msgpack reader ==== */

/*
 * msgpack-c's unpacker trusts the counts in array and map headers and allocates room for them
 * before it has seen the elements, so five hostile bytes (dd ff ff ff ff) ask it for 100 GB.
 * Every message therefore goes through this reader first: it checks each length against the
 * bytes that are left, limits nesting, and validates UTF-8. Only input it accepts reaches
 * msgpack_unpack(), which then allocates at most a small multiple of the input size.
 */

enum kind { K_BAD, K_NIL, K_BOOL, K_UINT, K_INT, K_FLOAT, K_STR, K_BIN, K_EXT, K_ARRAY, K_MAP };

/* What follows a type byte 0xc0..0xdf. */
struct fmt {
    uint8_t kind;
    uint8_t width; /* bytes of the big-endian length, count or value */
    uint8_t fixed; /* payload bytes besides the length: float size, ext type byte, fixext data */
};

static const struct fmt fmts[32] = {
    {K_NIL, 0, 0},   {K_BAD, 0, 0},   {K_BOOL, 0, 0}, {K_BOOL, 0, 0}, /* c0 - c3 */
    {K_BIN, 1, 0},   {K_BIN, 2, 0},   {K_BIN, 4, 0},                  /* c4 - c6 */
    {K_EXT, 1, 1},   {K_EXT, 2, 1},   {K_EXT, 4, 1},                  /* c7 - c9 */
    {K_FLOAT, 0, 4}, {K_FLOAT, 0, 8},                                 /* ca - cb */
    {K_UINT, 1, 0},  {K_UINT, 2, 0},  {K_UINT, 4, 0}, {K_UINT, 8, 0}, /* cc - cf */
    {K_INT, 1, 0},   {K_INT, 2, 0},   {K_INT, 4, 0},  {K_INT, 8, 0},  /* d0 - d3 */
    {K_EXT, 0, 2},   {K_EXT, 0, 3},   {K_EXT, 0, 5},  {K_EXT, 0, 9},  /* d4 - d7 */
    {K_EXT, 0, 17},                                                   /* d8 */
    {K_STR, 1, 0},   {K_STR, 2, 0},   {K_STR, 4, 0},                  /* d9 - db */
    {K_ARRAY, 2, 0}, {K_ARRAY, 4, 0}, {K_MAP, 2, 0},  {K_MAP, 4, 0},  /* dc - df */
};

struct cur {
    const uint8_t *p;
    size_t len;
    size_t off;
};

/* One item: a scalar, a str/bin/ext with its payload, or the header of an array or map. */
struct item {
    enum kind kind;
    uint64_t n;         /* uint value, payload size, or entry count */
    int64_t i;          /* K_INT value */
    const uint8_t *ptr; /* str/bin/ext payload */
};

static int take(struct cur *c, size_t n, const uint8_t **out)
{
    if (c->len - c->off < n) {
        return PROTO_ETRUNC;
    }
    *out = c->p + c->off;
    c->off += n;
    return PROTO_OK;
}

static int take_be(struct cur *c, size_t width, uint64_t *v)
{
    const uint8_t *b;
    int rc;

    *v = 0;
    if (width == 0) {
        return PROTO_OK;
    }
    rc = take(c, width, &b);
    if (rc != PROTO_OK) {
        return rc;
    }
    for (size_t i = 0; i < width; i++) {
        *v = *v << 8 | b[i];
    }
    return PROTO_OK;
}

static int64_t sign_extend(uint64_t v, size_t width)
{
    switch (width) {
    case 1:
        return (int8_t)v;
    case 2:
        return (int16_t)v;
    case 4:
        return (int32_t)v;
    default:
        return (int64_t)v;
    }
}

/*
 * A count that the remaining bytes cannot hold (every element takes at least one byte) means
 * the input was cut short, whatever the count says.
 */
static int check_count(const struct cur *c, struct item *it)
{
    uint64_t need = it->kind == K_MAP ? 2 * it->n : it->n;

    return need > c->len - c->off ? PROTO_ETRUNC : PROTO_OK;
}

static int read_fix(struct cur *c, uint8_t b, struct item *it)
{
    if (b < 0x90) {
        it->kind = K_MAP;
        it->n = b & 0x0f;
        return check_count(c, it);
    }
    if (b < 0xa0) {
        it->kind = K_ARRAY;
        it->n = b & 0x0f;
        return check_count(c, it);
    }
    it->kind = K_STR;
    it->n = b & 0x1f;
    return take(c, it->n, &it->ptr);
}

static int read_rest(struct cur *c, const struct fmt *f, uint64_t v, struct item *it)
{
    const uint8_t *skip;

    switch (f->kind) {
    case K_STR:
    case K_BIN:
    case K_EXT:
        it->n = v;
        if (v > c->len - c->off) {
            return PROTO_ETRUNC;
        }
        return take(c, v + f->fixed, &it->ptr);
    case K_FLOAT:
        return take(c, f->fixed, &skip);
    case K_UINT:
        it->n = v;
        return PROTO_OK;
    case K_INT:
        it->i = sign_extend(v, f->width);
        return PROTO_OK;
    case K_ARRAY:
    case K_MAP:
        it->n = v;
        return check_count(c, it);
    default:
        return PROTO_OK;
    }
}

static int read_item(struct cur *c, struct item *it)
{
    const uint8_t *b;
    const struct fmt *f;
    uint64_t v;
    int rc;

    it->ptr = NULL;
    it->i = 0;
    rc = take(c, 1, &b);
    if (rc != PROTO_OK) {
        return rc;
    }
    if (*b <= 0x7f) {
        it->kind = K_UINT;
        it->n = *b;
        return PROTO_OK;
    }
    if (*b >= 0xe0) {
        it->kind = K_INT;
        it->i = (int8_t)*b;
        return PROTO_OK;
    }
    if (*b < 0xc0) {
        return read_fix(c, *b, it);
    }
    f = &fmts[*b - 0xc0];
    it->kind = f->kind;
    it->n = *b & 1;
    if (f->kind == K_BAD) {
        return PROTO_EMSGPACK;
    }
    rc = take_be(c, f->width, &v);
    return rc != PROTO_OK ? rc : read_rest(c, f, v, it);
}

/* Length of the UTF-8 sequence at s, or 0 when it is not a valid one (RFC 3629). */
static size_t utf8_seq(const uint8_t *s, size_t n)
{
    size_t need;
    uint32_t cp, min;

    if (s[0] < 0x80) {
        return 1;
    }
    if ((s[0] & 0xe0) == 0xc0) {
        need = 1, cp = s[0] & 0x1f, min = 0x80;
    } else if ((s[0] & 0xf0) == 0xe0) {
        need = 2, cp = s[0] & 0x0f, min = 0x800;
    } else if ((s[0] & 0xf8) == 0xf0) {
        need = 3, cp = s[0] & 0x07, min = 0x10000;
    } else {
        return 0;
    }
    if (n - 1 < need) {
        return 0;
    }
    for (size_t k = 1; k <= need; k++) {
        if ((s[k] & 0xc0) != 0x80) {
            return 0;
        }
        cp = cp << 6 | (s[k] & 0x3f);
    }
    /* Overlong forms, UTF-16 surrogates and code points past U+10FFFF are not UTF-8. */
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
        return 0;
    }
    return need + 1;
}

static bool utf8_valid(const uint8_t *s, size_t n)
{
    size_t i = 0;

    while (i < n) {
        uint64_t word;
        size_t k;

        /* Most text is ASCII: skip it eight bytes at a time. */
        if (n - i >= 8) {
            memcpy(&word, s + i, 8);
            if ((word & UINT64_C(0x8080808080808080)) == 0) {
                i += 8;
                continue;
            }
        }
        k = s[i] < 0x80 ? 1 : utf8_seq(s + i, n - i);
        if (k == 0) {
            return false;
        }
        i += k;
    }
    return true;
}

/*
 * Skips one whole value, checking it as it goes. `depth` is the number of maps and arrays around
 * it; the recursion is therefore at most PROTO_MAX_DEPTH deep.
 */
static int skip_value(struct cur *c, unsigned depth)
{
    struct item it;
    uint64_t n;
    int rc = read_item(c, &it);

    if (rc != PROTO_OK) {
        return rc;
    }
    if (it.kind == K_STR && !utf8_valid(it.ptr, it.n)) {
        return PROTO_ESHAPE;
    }
    if (it.kind != K_ARRAY && it.kind != K_MAP) {
        return PROTO_OK;
    }
    if (depth >= PROTO_MAX_DEPTH) {
        return PROTO_ESHAPE;
    }
    n = it.kind == K_MAP ? 2 * it.n : it.n;
    for (uint64_t i = 0; i < n; i++) {
        rc = skip_value(c, depth + 1);
        if (rc != PROTO_OK) {
            return rc;
        }
    }
    return PROTO_OK;
}

static bool item_is(const struct item *it, const char *s)
{
    size_t n = strlen(s);

    return it->kind == K_STR && it->n == n && memcmp(it->ptr, s, n) == 0;
}

/*
 * headers and parameters: a map of str → array of str. With `utf8` the strings' text is checked
 * too (encoding); decoding checked every string of the message already (check_framing).
 */
static int check_strmap(struct cur *c, bool utf8)
{
    struct item map, it;
    int rc = read_item(c, &map);

    if (rc != PROTO_OK || map.kind != K_MAP) {
        return rc != PROTO_OK ? rc : PROTO_ESHAPE;
    }
    for (uint64_t i = 0; i < map.n; i++) {
        rc = read_item(c, &it);
        if (rc != PROTO_OK || it.kind != K_STR || (utf8 && !utf8_valid(it.ptr, it.n))) {
            return rc != PROTO_OK ? rc : PROTO_ESHAPE;
        }
        rc = read_item(c, &it);
        if (rc != PROTO_OK || it.kind != K_ARRAY) {
            return rc != PROTO_OK ? rc : PROTO_ESHAPE;
        }
        for (uint64_t k = it.n; k > 0; k--) {
            struct item s;
            rc = read_item(c, &s);
            if (rc != PROTO_OK || s.kind != K_STR || (utf8 && !utf8_valid(s.ptr, s.n))) {
                return rc != PROTO_OK ? rc : PROTO_ESHAPE;
            }
        }
    }
    return PROTO_OK;
}

/* ==== Field formats ==== */

static bool id_valid(const uint8_t *s, size_t n)
{
    if (n != PROTO_ID_LEN) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        uint8_t ch = s[i];
        if (!((ch >= '0' && ch <= '9') || (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z'))) {
            return false;
        }
    }
    return true;
}

static int digits(const uint8_t *s, size_t n)
{
    int v = 0;

    for (size_t i = 0; i < n; i++) {
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

static int days_in_month(int year, int month)
{
    static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;

    return month == 2 && leap ? 29 : days[month - 1];
}

/* "YYYY-MM-DDTHH:MM:SS.mmmZ", a real date and time: what Java's Instant.toString() gives. */
static bool time_valid(const uint8_t *s, size_t n)
{
    static const char tmpl[] = "dddd-dd-ddTdd:dd:dd.dddZ";
    int year, month, day;

    if (n != PROTO_TIME_LEN) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        bool ok = tmpl[i] == 'd' ? s[i] >= '0' && s[i] <= '9' : s[i] == (uint8_t)tmpl[i];
        if (!ok) {
            return false;
        }
    }
    year = digits(s, 4);
    month = digits(s + 5, 2);
    day = digits(s + 8, 2);
    if (month < 1 || month > 12 || day < 1 || day > days_in_month(year, month)) {
        return false;
    }
    return digits(s + 11, 2) <= 23 && digits(s + 14, 2) <= 59 && digits(s + 17, 2) <= 59;
}

/* ==== The field table (SPEC.md §3) ==== */

/*
 * One table per map of the message, in the order the producer writes the keys. Encoding walks
 * them in order; decoding looks each key up by name. The body must stay the last entry of the
 * last map at every level: proto_encode_head relies on it.
 */
enum field_kind { F_VERSION, F_ID, F_TIME, F_STR, F_MAP, F_STRMAP, F_BODY };

struct table;

struct field {
    const char *name;
    enum field_kind kind;
    size_t off;              /* offsetof(struct proto_msg, ...) for strings and raw values */
    const struct table *sub; /* F_MAP */
};

struct table {
    const struct field *fields;
    size_t n;
};

#define STR_AT(member) offsetof(struct proto_msg, member)

static const struct field variables_fields[] = {
    {"headers", F_STRMAP, STR_AT(headers), NULL},
    {"parameters", F_STRMAP, STR_AT(parameters), NULL},
    {"body", F_BODY, STR_AT(body), NULL},
};
static const struct table variables_table = {variables_fields, ARRAY_SIZE(variables_fields)};

static const struct field trigger_fields[] = {
    {"id", F_STR, STR_AT(trigger_id), NULL},
    {"type", F_STR, STR_AT(trigger_type), NULL},
    {"variables", F_MAP, 0, &variables_table},
};
static const struct table trigger_table = {trigger_fields, ARRAY_SIZE(trigger_fields)};

static const struct field request_fields[] = {
    {"method", F_STR, STR_AT(method), NULL},
    {"path", F_STR, STR_AT(path), NULL},
    {"remoteAddress", F_STR, STR_AT(remote_addr), NULL},
};
static const struct table request_table = {request_fields, ARRAY_SIZE(request_fields)};

/* clang-format off */
static const struct field root_fields[] = {
    {"formatVersion", F_VERSION, 0, NULL},
    {"id", F_ID, STR_AT(id), NULL},
    {"tenantId", F_STR, STR_AT(tenant_id), NULL},
    {"namespace", F_STR, STR_AT(ns), NULL},
    {"flowId", F_STR, STR_AT(flow_id), NULL},
    {"receivedAt", F_TIME, STR_AT(received_at), NULL},
    {"request", F_MAP, 0, &request_table},
    {"trigger", F_MAP, 0, &trigger_table},
};
/* clang-format on */
static const struct table root_table = {root_fields, ARRAY_SIZE(root_fields)};

/* Depth of the maps holding headers, parameters and body: root, trigger, variables. */
#define VARIABLES_DEPTH 3

static struct proto_str *field_str(struct proto_msg *m, const struct field *f)
{
    return (struct proto_str *)((char *)m + f->off);
}

static const struct proto_str *field_cstr(const struct proto_msg *m, const struct field *f)
{
    return (const struct proto_str *)((const char *)m + f->off);
}

static bool string_ok(enum field_kind kind, const uint8_t *s, size_t n)
{
    switch (kind) {
    case F_ID:
        return id_valid(s, n);
    case F_TIME:
        return time_valid(s, n);
    default:
        return true;
    }
}

/* ==== Decode ==== */

/* Any integer is a version number; only PROTO_FORMAT_VERSION is one we can read. */
static int parse_version(struct cur *c, int *out)
{
    struct item it;
    int rc = read_item(c, &it);

    if (rc != PROTO_OK) {
        return rc;
    }
    if (it.kind != K_UINT && it.kind != K_INT) {
        return PROTO_ESHAPE;
    }
    if (it.kind == K_UINT ? it.n != PROTO_FORMAT_VERSION : it.i != PROTO_FORMAT_VERSION) {
        return PROTO_EVERSION;
    }
    if (out != NULL) {
        *out = PROTO_FORMAT_VERSION;
    }
    return PROTO_OK;
}

/*
 * The version is read before anything else is checked, so that a message of a newer version
 * reports PROTO_EVERSION whatever else it changed.
 */
static int check_version(const uint8_t *p, size_t len)
{
    struct cur c = {p, len, 0};
    struct item it, key;
    int rc = read_item(&c, &it);

    if (rc != PROTO_OK || it.kind != K_MAP) {
        return rc != PROTO_OK ? rc : PROTO_ESHAPE;
    }
    for (uint64_t i = 0; i < it.n; i++) {
        size_t at = c.off;
        rc = read_item(&c, &key);
        if (rc == PROTO_OK && item_is(&key, "formatVersion")) {
            return parse_version(&c, NULL);
        }
        c.off = at;
        rc = skip_value(&c, 0);
        if (rc == PROTO_OK) {
            rc = skip_value(&c, 0);
        }
        if (rc != PROTO_OK) {
            return rc;
        }
    }
    return PROTO_ESHAPE;
}

static int parse_string(struct cur *c, const struct field *f, struct proto_str *out)
{
    struct item it;
    int rc = read_item(c, &it);

    if (rc != PROTO_OK) {
        return rc;
    }
    if (it.kind != K_STR || !string_ok(f->kind, it.ptr, it.n)) {
        return PROTO_ESHAPE;
    }
    out->ptr = (const char *)it.ptr;
    out->len = it.n;
    return PROTO_OK;
}

/* Records where a value starts and ends in the input: the raw slices of struct proto_msg. */
static int parse_raw(struct cur *c, bool strmap, struct proto_str *out)
{
    size_t start = c->off;
    int rc = strmap ? check_strmap(c, false) : skip_value(c, 0);

    if (rc != PROTO_OK) {
        return rc;
    }
    out->ptr = (const char *)c->p + start;
    out->len = c->off - start;
    return PROTO_OK;
}

static int parse_map(struct cur *c, struct proto_decoded *d, const struct table *t);

static int parse_field(struct cur *c, struct proto_decoded *d, const struct field *f)
{
    switch (f->kind) {
    case F_VERSION:
        return parse_version(c, &d->format_version);
    case F_MAP:
        return parse_map(c, d, f->sub);
    case F_STRMAP:
        return parse_raw(c, true, field_str(&d->m, f));
    case F_BODY:
        d->has_body = true;
        return parse_raw(c, false, field_str(&d->m, f));
    default:
        return parse_string(c, f, field_str(&d->m, f));
    }
}

static const struct field *find_field(const struct table *t, const struct item *key)
{
    for (size_t k = 0; k < t->n; k++) {
        if (item_is(key, t->fields[k].name)) {
            return &t->fields[k];
        }
    }
    return NULL;
}

static int parse_entry(struct cur *c, struct proto_decoded *d, const struct table *t,
                       uint32_t *seen)
{
    struct item key;
    const struct field *f;
    uint32_t bit;
    int rc = read_item(c, &key);

    if (rc != PROTO_OK || key.kind != K_STR) {
        return rc != PROTO_OK ? rc : PROTO_ESHAPE;
    }
    f = find_field(t, &key);
    if (f == NULL) {
        /* Unknown keys are how compatible versions add fields (SPEC.md §6): skip them. */
        return skip_value(c, 0);
    }
    /* Two values for one known key: no reader could tell which one the producer meant. */
    bit = UINT32_C(1) << (f - t->fields);
    if (*seen & bit) {
        return PROTO_ESHAPE;
    }
    *seen |= bit;
    return parse_field(c, d, f);
}

static int parse_map(struct cur *c, struct proto_decoded *d, const struct table *t)
{
    struct item it;
    uint32_t seen = 0;
    int rc = read_item(c, &it);

    if (rc != PROTO_OK || it.kind != K_MAP) {
        return rc != PROTO_OK ? rc : PROTO_ESHAPE;
    }
    for (uint64_t i = 0; i < it.n; i++) {
        rc = parse_entry(c, d, t, &seen);
        if (rc != PROTO_OK) {
            return rc;
        }
    }
    for (size_t k = 0; k < t->n; k++) {
        if (t->fields[k].kind != F_BODY && !(seen & UINT32_C(1) << k)) {
            return PROTO_ESHAPE;
        }
    }
    return PROTO_OK;
}

static const msgpack_object *obj_get(const msgpack_object *map, const char *key)
{
    size_t n = strlen(key);

    if (map == NULL || map->type != MSGPACK_OBJECT_MAP) {
        return NULL;
    }
    for (uint32_t i = 0; i < map->via.map.size; i++) {
        const msgpack_object *k = &map->via.map.ptr[i].key;
        if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == n &&
            memcmp(k->via.str.ptr, key, n) == 0) {
            return &map->via.map.ptr[i].val;
        }
    }
    return NULL;
}

/* The msgpack_object views, for readers that want a tree (conditions, proto-decode). */
static int unpack_views(const char *buf, size_t len, struct proto_decoded *d)
{
    const msgpack_object *vars, *headers, *parameters, *body;
    size_t off = 0;

    if (!msgpack_zone_init(&d->zone, MSGPACK_ZONE_CHUNK_SIZE)) {
        memset(&d->zone, 0, sizeof(d->zone));
        return PROTO_ENOMEM;
    }
    switch (msgpack_unpack(buf, len, &off, &d->zone, &d->root)) {
    case MSGPACK_UNPACK_SUCCESS:
        break;
    case MSGPACK_UNPACK_NOMEM_ERROR:
        return PROTO_ENOMEM;
    default:
        /* Not reached: the bounded reader accepted these bytes. */
        return PROTO_EMSGPACK;
    }
    vars = obj_get(obj_get(&d->root, "trigger"), "variables");
    headers = obj_get(vars, "headers");
    parameters = obj_get(vars, "parameters");
    body = obj_get(vars, "body");
    if (headers == NULL || parameters == NULL) {
        /* Not reached either: parse_map found both. */
        return PROTO_EMSGPACK;
    }
    d->headers = *headers;
    d->parameters = *parameters;
    if (body != NULL) {
        d->body = *body;
    }
    return PROTO_OK;
}

static int check_framing(const void *buf, size_t len, size_t *used)
{
    struct cur c = {buf, len, 0};
    int rc = skip_value(&c, 0);

    *used = c.off;
    return rc;
}

int proto_value_len(const void *buf, size_t len, size_t *msg_len)
{
    size_t used;
    int rc = check_framing(buf, len, &used);

    if (rc == PROTO_OK) {
        *msg_len = used;
    }
    return rc;
}

int proto_decode(const void *buf, size_t len, struct proto_decoded *out)
{
    struct cur c = {buf, len, 0};
    size_t used;
    int rc;

    memset(out, 0, sizeof(*out));
    out->body.type = MSGPACK_OBJECT_NIL;
    rc = check_framing(buf, len, &used);
    if (rc != PROTO_OK) {
        goto out;
    }
    rc = PROTO_ETRAILING;
    if (used != len) {
        goto out;
    }
    rc = check_version(buf, len);
    if (rc != PROTO_OK) {
        goto out;
    }
    rc = parse_map(&c, out, &root_table);
    if (rc != PROTO_OK) {
        goto out;
    }
    rc = unpack_views(buf, len, out);
out:
    if (rc != PROTO_OK) {
        proto_decoded_deinit(out);
    }
    return rc;
}

void proto_decoded_deinit(struct proto_decoded *d)
{
    if (d == NULL) {
        return;
    }
    /* chunk_size is 0 only in a zone that msgpack_zone_init() never set up (d was zeroed). */
    if (d->zone.chunk_size != 0) {
        msgpack_zone_destroy(&d->zone);
    }
    memset(d, 0, sizeof(*d));
    d->body.type = MSGPACK_OBJECT_NIL;
}

/* ==== Encode ==== */

/*
 * The producer checks what it embeds with the same reader the consumers use, so that
 * proto_encode never writes a message proto_decode would refuse. One pass over the value: a
 * header map is checked for its shape and its text at once.
 */
static int check_raw(const struct proto_str *s, bool strmap)
{
    struct cur c = {(const uint8_t *)s->ptr, s->len, 0};

    if (s->ptr == NULL) {
        return PROTO_EINVAL;
    }
    int rc = strmap ? check_strmap(&c, true) : skip_value(&c, VARIABLES_DEPTH);
    return rc == PROTO_OK && c.off == s->len ? PROTO_OK : PROTO_EINVAL;
}

static int check_table(const struct proto_msg *m, const struct table *t)
{
    for (size_t k = 0; k < t->n; k++) {
        const struct field *f = &t->fields[k];
        const struct proto_str *s = field_cstr(m, f);
        int rc = PROTO_OK;

        if (f->kind == F_MAP) {
            rc = check_table(m, f->sub);
        } else if (f->kind == F_STRMAP) {
            rc = check_raw(s, true);
        } else if (f->kind != F_VERSION && f->kind != F_BODY) {
            const uint8_t *p = (const uint8_t *)s->ptr;
            bool ok = p != NULL && utf8_valid(p, s->len) && string_ok(f->kind, p, s->len);
            rc = ok ? PROTO_OK : PROTO_EINVAL;
        }
        if (rc != PROTO_OK) {
            return rc;
        }
    }
    return PROTO_OK;
}

static int pack_cstr(msgpack_packer *pk, const char *s)
{
    size_t n = strlen(s);

    return msgpack_pack_str(pk, n) == 0 && msgpack_pack_str_body(pk, s, n) == 0 ? PROTO_OK
                                                                                : PROTO_ENOMEM;
}

static int pack_str(msgpack_packer *pk, const struct proto_str *s)
{
    int rc = msgpack_pack_str(pk, s->len);

    if (rc == 0 && s->len > 0) {
        rc = msgpack_pack_str_body(pk, s->ptr, s->len);
    }
    return rc == 0 ? PROTO_OK : PROTO_ENOMEM;
}

/* An already-encoded value goes out as it is: msgpack_packer's own write callback. */
static int pack_raw(msgpack_packer *pk, const struct proto_str *s)
{
    return pk->callback(pk->data, s->ptr, s->len) == 0 ? PROTO_OK : PROTO_ENOMEM;
}

static int pack_map(msgpack_packer *pk, const struct proto_msg *m, const struct table *t,
                    bool has_body);

static int pack_field(msgpack_packer *pk, const struct proto_msg *m, const struct field *f,
                      bool has_body)
{
    int rc = pack_cstr(pk, f->name);

    if (rc != PROTO_OK) {
        return rc;
    }
    switch (f->kind) {
    case F_VERSION:
        return msgpack_pack_int(pk, PROTO_FORMAT_VERSION) == 0 ? PROTO_OK : PROTO_ENOMEM;
    case F_MAP:
        return pack_map(pk, m, f->sub, has_body);
    case F_STRMAP:
        return pack_raw(pk, field_cstr(m, f));
    case F_BODY:
        /* The value comes next: the caller's, or proto_encode's copy of m->body. */
        return PROTO_OK;
    default:
        return pack_str(pk, field_cstr(m, f));
    }
}

static int pack_map(msgpack_packer *pk, const struct proto_msg *m, const struct table *t,
                    bool has_body)
{
    size_t n = t->n;

    /* msgpack_pack_map writes the smallest header for the real count (SPEC.md §4). */
    if (t->fields[n - 1].kind == F_BODY && !has_body) {
        n--;
    }
    if (msgpack_pack_map(pk, n) != 0) {
        return PROTO_ENOMEM;
    }
    for (size_t k = 0; k < n; k++) {
        int rc = pack_field(pk, m, &t->fields[k], has_body);
        if (rc != PROTO_OK) {
            return rc;
        }
    }
    return PROTO_OK;
}

int proto_encode_head(const struct proto_msg *m, bool has_body, msgpack_packer *pk)
{
    int rc = check_table(m, &root_table);

    if (rc != PROTO_OK) {
        return rc;
    }
    return pack_map(pk, m, &root_table, has_body);
}

int proto_encode(const struct proto_msg *m, msgpack_sbuffer *sb)
{
    msgpack_packer pk;
    size_t start = sb->size;
    bool has_body = m->body.ptr != NULL;
    int rc = PROTO_EINVAL;

    if (has_body && check_raw(&m->body, false) != PROTO_OK) {
        goto out;
    }
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    rc = proto_encode_head(m, has_body, &pk);
    if (rc == PROTO_OK && has_body) {
        rc = pack_raw(&pk, &m->body);
    }
out:
    if (rc != PROTO_OK) {
        sb->size = start;
    }
    return rc;
}

/* ==== Shared with proto_state.c (proto_int.h) ==== */

int proto_check_value_(const void *buf, size_t len, unsigned depth, size_t *used)
{
    struct cur c = {buf, len, 0};
    int rc = skip_value(&c, depth);

    *used = c.off;
    return rc;
}

bool proto_id_valid_(const char *s, size_t n)
{
    return id_valid((const uint8_t *)s, n);
}

bool proto_time_valid_(const char *s, size_t n)
{
    return time_valid((const uint8_t *)s, n);
}

bool proto_utf8_valid_(const char *s, size_t n)
{
    return utf8_valid((const uint8_t *)s, n);
}

bool proto_root_value_(const void *buf, size_t len, const char *key, size_t *start, size_t *end)
{
    struct cur c = {buf, len, 0};
    struct item it, k;

    if (read_item(&c, &it) != PROTO_OK || it.kind != K_MAP) {
        return false;
    }
    for (uint64_t i = 0; i < it.n; i++) {
        size_t at = c.off;
        bool match = read_item(&c, &k) == PROTO_OK && item_is(&k, key);
        if (!match) {
            c.off = at;
            if (skip_value(&c, 1) != PROTO_OK) {
                return false;
            }
        }
        *start = c.off;
        if (skip_value(&c, 1) != PROTO_OK) {
            return false;
        }
        if (match) {
            *end = c.off;
            return true;
        }
    }
    return false;
}

/* ==== Errors ==== */

const char *proto_strerror(int rc)
{
    switch (rc) {
    case PROTO_OK:
        return "success";
    case PROTO_ETRUNC:
        return "truncated message: input ends inside a value";
    case PROTO_EMSGPACK:
        return "not valid msgpack";
    case PROTO_ESHAPE:
        return "valid msgpack, but not the message SPEC.md describes";
    case PROTO_EVERSION:
        return "unsupported formatVersion";
    case PROTO_ETRAILING:
        return "trailing bytes after the message";
    case PROTO_ENOMEM:
        return "out of memory";
    case PROTO_EINVAL:
        return "message fields break a rule of SPEC.md";
    default:
        return "unknown proto error";
    }
}
