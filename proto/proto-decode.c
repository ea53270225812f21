/*
 * proto-decode.c: reads webhook-bridge messages (SPEC.md, SPEC-STATE.md), validates each with its
 * decoder (proto_decode, proto_exec_state_decode, proto_trigger_state_decode) and
 * prints it as one line of canonical JSON (SPEC.md §8), for operators and integration tests.
 * A cold path: it reads the whole input into memory and favours clarity over speed.
 */
#include "proto.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
    "usage: proto-decode [--stream] [FILE]\n"
    "\n"
    "Reads one webhook-bridge message (msgpack, see proto/SPEC.md) from FILE, or from standard\n"
    "input when FILE is missing or '-', validates it and prints it as one line of JSON: keys in\n"
    "message order, compact, UTF-8; floats keep a fraction or exponent, bin becomes base64.\n"
    "The message may be a trigger message (SPEC.md), an execution-state event or a trigger-state\n"
    "record (SPEC-STATE.md): the root key \"message\" tells which, and its decoder validates it.\n"
    "\n"
    "  --stream   the input holds any number of concatenated messages: print one line each\n"
    "  --help     show this text\n"
    "\n"
    "Exit status: 0 all printed; 1 a message is invalid (\"proto-decode: <reason>\" on stderr)\n"
    "or holds a value JSON cannot show (ext, a map key that is not a str); 2 usage or I/O error.\n";

/* ==== JSON printer ==== */

struct printer {
    FILE *f;
    const char *err; /* why the value cannot be printed */
};

static const char *escape(unsigned char ch)
{
    switch (ch) {
    case '"':
        return "\\\"";
    case '\\':
        return "\\\\";
    case '\b':
        return "\\b";
    case '\f':
        return "\\f";
    case '\n':
        return "\\n";
    case '\r':
        return "\\r";
    case '\t':
        return "\\t";
    default:
        return NULL;
    }
}

/* proto_decode checked that every str is UTF-8: bytes from 0x20 up are copied as they are. */
static void print_string(FILE *f, const char *s, size_t n)
{
    fputc('"', f);
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        const char *esc = escape(ch);
        if (esc != NULL) {
            fputs(esc, f);
        } else if (ch < 0x20) {
            fprintf(f, "\\u%04x", ch);
        } else {
            fputc(ch, f);
        }
    }
    fputc('"', f);
}

static void print_base64(FILE *f, const unsigned char *s, size_t n)
{
    static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

    fputc('"', f);
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)s[i] << 16;
        if (i + 1 < n) {
            v |= (uint32_t)s[i + 1] << 8;
        }
        if (i + 2 < n) {
            v |= s[i + 2];
        }
        fputc(abc[v >> 18 & 63], f);
        fputc(abc[v >> 12 & 63], f);
        fputc(i + 1 < n ? abc[v >> 6 & 63] : '=', f);
        fputc(i + 2 < n ? abc[v & 63] : '=', f);
    }
    fputc('"', f);
}

/*
 * The shortest of %.15g, %.16g and %.17g that reads back as the same double, with ".0" added
 * when that looks like an integer, so a float stays a float for the reader. JSON has no NaN or
 * infinity: they print as the strings Jackson writes for them.
 */
static void print_float(FILE *f, double v)
{
    char text[40];

    if (isnan(v)) {
        fputs("\"NaN\"", f);
        return;
    }
    if (isinf(v)) {
        fputs(v > 0 ? "\"Infinity\"" : "\"-Infinity\"", f);
        return;
    }
    for (int precision = 15; precision <= 17; precision++) {
        snprintf(text, sizeof(text), "%.*g", precision, v);
        if (strtod(text, NULL) == v) {
            break;
        }
    }
    fputs(text, f);
    if (strspn(text, "-0123456789") == strlen(text)) {
        fputs(".0", f);
    }
}

static int print_value(struct printer *p, const msgpack_object *o);

static int print_array(struct printer *p, const msgpack_object_array *a)
{
    fputc('[', p->f);
    for (uint32_t i = 0; i < a->size; i++) {
        if (i > 0) {
            fputc(',', p->f);
        }
        if (print_value(p, &a->ptr[i]) != 0) {
            return -1;
        }
    }
    fputc(']', p->f);
    return 0;
}

/* Keys keep their message order, duplicates included: a JSON library would merge them. */
static int print_map(struct printer *p, const msgpack_object_map *m)
{
    fputc('{', p->f);
    for (uint32_t i = 0; i < m->size; i++) {
        const msgpack_object *key = &m->ptr[i].key;
        if (key->type != MSGPACK_OBJECT_STR) {
            p->err = "a map key is not a str and cannot be printed as JSON";
            return -1;
        }
        if (i > 0) {
            fputc(',', p->f);
        }
        print_string(p->f, key->via.str.ptr, key->via.str.size);
        fputc(':', p->f);
        if (print_value(p, &m->ptr[i].val) != 0) {
            return -1;
        }
    }
    fputc('}', p->f);
    return 0;
}

static int print_value(struct printer *p, const msgpack_object *o)
{
    switch (o->type) {
    case MSGPACK_OBJECT_NIL:
        fputs("null", p->f);
        return 0;
    case MSGPACK_OBJECT_BOOLEAN:
        fputs(o->via.boolean ? "true" : "false", p->f);
        return 0;
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        fprintf(p->f, "%" PRIu64, o->via.u64);
        return 0;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        fprintf(p->f, "%" PRId64, o->via.i64);
        return 0;
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        print_float(p->f, o->via.f64);
        return 0;
    case MSGPACK_OBJECT_STR:
        print_string(p->f, o->via.str.ptr, o->via.str.size);
        return 0;
    case MSGPACK_OBJECT_BIN:
        print_base64(p->f, (const unsigned char *)o->via.bin.ptr, o->via.bin.size);
        return 0;
    case MSGPACK_OBJECT_ARRAY:
        return print_array(p, &o->via.array);
    case MSGPACK_OBJECT_MAP:
        return print_map(p, &o->via.map);
    default:
        p->err = "an ext value cannot be printed as JSON";
        return -1;
    }
}

/* ==== Messages ==== */

/*
 * Validates one message with the decoder its root key "message" names (SPEC-STATE.md §1), then
 * unpacks it into `zone` for printing. The decoders' own views are not reused, so that all three
 * messages print through the same path.
 */
static int validate(const char *buf, size_t len)
{
    struct proto_decoded d;
    struct proto_exec_state_decoded e;
    struct proto_trigger_state t;
    int rc;

    switch (proto_message_kind(buf, len)) {
    case PROTO_KIND_EXEC_STATE:
        rc = proto_exec_state_decode(buf, len, &e);
        proto_exec_state_deinit(&e);
        return rc;
    case PROTO_KIND_TRIGGER_STATE:
        return proto_trigger_state_decode(buf, len, &t);
    case PROTO_KIND_TRIGGER:
        rc = proto_decode(buf, len, &d);
        proto_decoded_deinit(&d);
        return rc;
    default:
        return PROTO_ESHAPE;
    }
}

/* Decodes and prints one message. The line is built in memory so that a failure prints nothing. */
static int print_message(const char *buf, size_t len)
{
    msgpack_zone zone;
    msgpack_object root;
    struct printer p = {NULL, NULL};
    char *line = NULL;
    size_t line_len = 0, off = 0;
    bool zone_live = false;
    int rc = validate(buf, len);
    int status = 1;

    if (rc != PROTO_OK) {
        fprintf(stderr, "proto-decode: %s\n", proto_strerror(rc));
        goto out;
    }
    zone_live = msgpack_zone_init(&zone, MSGPACK_ZONE_CHUNK_SIZE);
    if (!zone_live || msgpack_unpack(buf, len, &off, &zone, &root) != MSGPACK_UNPACK_SUCCESS) {
        fprintf(stderr, "proto-decode: %s\n", proto_strerror(PROTO_ENOMEM));
        goto out;
    }
    p.f = open_memstream(&line, &line_len);
    if (p.f == NULL) {
        fprintf(stderr, "proto-decode: %s\n", strerror(errno));
        goto out;
    }
    if (print_value(&p, &root) != 0) {
        fprintf(stderr, "proto-decode: %s\n", p.err);
        goto out;
    }
    fputc('\n', p.f);
    fflush(p.f);
    fwrite(line, 1, line_len, stdout);
    status = 0;
out:
    if (p.f != NULL) {
        fclose(p.f);
    }
    free(line);
    if (zone_live) {
        msgpack_zone_destroy(&zone);
    }
    return status;
}

static int print_stream(const char *buf, size_t len)
{
    size_t off = 0;

    while (off < len) {
        size_t n = 0;
        int rc = proto_value_len(buf + off, len - off, &n);
        if (rc != PROTO_OK) {
            fprintf(stderr, "proto-decode: %s\n", proto_strerror(rc));
            return 1;
        }
        if (print_message(buf + off, n) != 0) {
            return 1;
        }
        off += n;
    }
    return 0;
}

/* ==== Input and main ==== */

static int read_all(FILE *in, char **out, size_t *out_len)
{
    char *buf = NULL;
    size_t len = 0, cap = 0;
    int rc = -1;

    for (;;) {
        if (cap - len < 4096) {
            char *grown = realloc(buf, cap ? cap * 2 : 65536);
            if (grown == NULL) {
                goto out;
            }
            buf = grown;
            cap = cap ? cap * 2 : 65536;
        }
        size_t n = fread(buf + len, 1, cap - len, in);
        len += n;
        if (n == 0) {
            break;
        }
    }
    if (ferror(in)) {
        goto out;
    }
    *out = buf;
    *out_len = len;
    buf = NULL;
    rc = 0;
out:
    free(buf);
    return rc;
}

static int run(const char *file, bool stream)
{
    FILE *in = stdin;
    char *buf = NULL;
    size_t len = 0;
    int status = 2;

    if (file != NULL && strcmp(file, "-") != 0) {
        in = fopen(file, "rb");
    }
    if (in == NULL || read_all(in, &buf, &len) != 0) {
        fprintf(stderr, "proto-decode: %s: %s\n", file ? file : "stdin", strerror(errno));
        goto out;
    }
    status = stream ? print_stream(buf, len) : print_message(buf, len);
    if (fflush(stdout) != 0) {
        fprintf(stderr, "proto-decode: stdout: %s\n", strerror(errno));
        status = 2;
    }
out:
    if (in != NULL && in != stdin) {
        fclose(in);
    }
    free(buf);
    return status;
}

int main(int argc, char **argv)
{
    const char *file = NULL;
    bool stream = false;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(usage, stdout);
            return 0;
        }
        if (strcmp(argv[i], "--stream") == 0) {
            stream = true;
        } else if ((argv[i][0] == '-' && argv[i][1] != '\0') || file != NULL) {
            fputs(usage, stderr);
            return 2;
        } else {
            file = argv[i];
        }
    }
    return run(file, stream);
}
