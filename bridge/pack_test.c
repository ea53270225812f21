/*
 * pack_test.c: unit tests for pack.c. Cases are tables of body text → expected value, the value
 * written in a compact notation (render() below); plus golden bytes, limits and the payload files.
 * Runs with bridge/ as the working directory.
 */
#include <inttypes.h>
#include <locale.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <msgpack.h>

#include "pack.h"
#include "pack_oracle.h"
#include "util.h"
#include "../proto/proto.h"

/* A body deeper than this could not be decoded once it sits inside a message. */
_Static_assert(PACK_MAX_DEPTH == PROTO_MAX_BODY_DEPTH, "pack and proto disagree on body depth");

/* ==== Rendering msgpack as text ==== */

/*
 * The notation: null, true, false; integers in decimal; floats always with a '.' or an exponent
 * (1.0, 1e+300, -0.0, inf); strings in single quotes with \' and \\ escaped and bytes below 0x20
 * or 0x7f as \xNN (other bytes as they are); [a,b]; {k:v}. So `{'a':[1,2.5,'x']}`.
 */
static void render(struct sbuf *b, const msgpack_object *o);

static void render_double(struct sbuf *b, double d)
{
    char buf[40];
    if (isinf(d)) {
        sbuf_append_cstr(b, d < 0 ? "-inf" : "inf");
        return;
    }
    /* The shortest form that reads back the same, without an exponent below 1e17. */
    int prec = 1;
    while (prec < 17) {
        snprintf(buf, sizeof(buf), "%.*g", prec, d);
        if (strtod(buf, NULL) == d) {
            break;
        }
        prec++;
    }
    int int_digits = 1;
    for (double a = d < 0 ? -d : d; a >= 10 && int_digits <= 17; a /= 10) {
        int_digits++;
    }
    if (int_digits > prec && int_digits <= 17) {
        prec = int_digits;
    }
    snprintf(buf, sizeof(buf), "%.*g", prec, d);
    sbuf_append_cstr(b, buf);
    if (!strpbrk(buf, ".e")) {
        sbuf_append_cstr(b, ".0");
    }
}

static void render_str(struct sbuf *b, const char *s, size_t n)
{
    /* Whatever pack writes must be valid UTF-8. */
    for (size_t i = 0; i < n;) {
        size_t k = util_utf8_seq_len((const unsigned char *)s + i, n - i);
        assert_true(k > 0);
        i += k;
    }
    sbuf_append(b, "'", 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\'' || c == '\\') {
            sbuf_appendf(b, "\\%c", c);
        } else if (c < 0x20 || c == 0x7f) {
            sbuf_appendf(b, "\\x%02X", c);
        } else {
            sbuf_append(b, &s[i], 1);
        }
    }
    sbuf_append(b, "'", 1);
}

static void render(struct sbuf *b, const msgpack_object *o)
{
    switch (o->type) {
    case MSGPACK_OBJECT_NIL:
        sbuf_append_cstr(b, "null");
        break;
    case MSGPACK_OBJECT_BOOLEAN:
        sbuf_append_cstr(b, o->via.boolean ? "true" : "false");
        break;
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        sbuf_appendf(b, "%" PRIu64, o->via.u64);
        break;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        sbuf_appendf(b, "%" PRId64, o->via.i64);
        break;
    case MSGPACK_OBJECT_FLOAT64:
        render_double(b, o->via.f64);
        break;
    case MSGPACK_OBJECT_STR:
        render_str(b, o->via.str.ptr, o->via.str.size);
        break;
    case MSGPACK_OBJECT_ARRAY:
        sbuf_append(b, "[", 1);
        for (uint32_t i = 0; i < o->via.array.size; i++) {
            if (i) {
                sbuf_append(b, ",", 1);
            }
            render(b, &o->via.array.ptr[i]);
        }
        sbuf_append(b, "]", 1);
        break;
    case MSGPACK_OBJECT_MAP:
        sbuf_append(b, "{", 1);
        for (uint32_t i = 0; i < o->via.map.size; i++) {
            if (i) {
                sbuf_append(b, ",", 1);
            }
            render(b, &o->via.map.ptr[i].key);
            sbuf_append(b, ":", 1);
            render(b, &o->via.map.ptr[i].val);
        }
        sbuf_append(b, "}", 1);
        break;
    default:
        fail_msg("pack wrote a msgpack type it never should: %d", o->type);
    }
}

/* Unpacks exactly one object from buf (it must use every byte). */
static void unpack_one(const char *buf, size_t len, msgpack_unpacked *u)
{
    size_t off = 0;
    msgpack_unpacked_init(u);
    assert_int_equal(msgpack_unpack_next(u, buf, len, &off), MSGPACK_UNPACK_SUCCESS);
    assert_int_equal(off, len);
}

/* pack_body on text, checks the kind against the value written, returns the rendering. */
static char *pack_render(struct pack_parser *pp, const char *text, size_t len)
{
    msgpack_sbuffer sb;
    msgpack_unpacked u;
    struct sbuf b;
    msgpack_sbuffer_init(&sb);
    sbuf_init(&b);
    enum pack_body_kind kind = pack_body(pp, text, len, &sb);
    unpack_one(sb.data, sb.size, &u);
    msgpack_object_type want = kind == PACK_BODY_OBJECT  ? MSGPACK_OBJECT_MAP
                               : kind == PACK_BODY_ARRAY ? MSGPACK_OBJECT_ARRAY
                                                         : MSGPACK_OBJECT_STR;
    assert_int_equal(u.data.type, want);
    render(&b, &u.data);
    msgpack_unpacked_destroy(&u);
    msgpack_sbuffer_destroy(&sb);
    return b.data;
}

/* ==== Tables ==== */

struct pcase {
    const char *name;
    const char *in;
    size_t len;
    const char *want;
};

/* A case whose input is a string literal, NUL bytes included. */
/* clang-format off */
#define CASE(name, in, want) {name, in, sizeof(in) - 1, want}
/* clang-format on */

static void run_table(const struct pcase *cases, size_t n)
{
    struct pack_parser *pp = pack_parser_new();
    int failed = 0;
    for (size_t i = 0; i < n; i++) {
        char *got = pack_render(pp, cases[i].in, cases[i].len);
        if (strcmp(got, cases[i].want) != 0) {
            print_error("case '%s':\n  got  %s\n  want %s\n", cases[i].name, got, cases[i].want);
            failed++;
        }
        xfree(got);
    }
    pack_parser_free(pp);
    assert_int_equal(failed, 0);
}

#define RUN_TABLE(t) run_table((t), sizeof(t) / sizeof((t)[0]))

/* clang-format off */
static const struct pcase structure_cases[] = {
    CASE("object", "{\"a\":1,\"b\":\"x\"}", "{'a':1,'b':'x'}"),
    CASE("array", "[1,\"two\",3.5,true,false,null]", "[1,'two',3.5,true,false,null]"),
    CASE("nested", "{\"a\":{\"b\":[1,{\"c\":null}]},\"d\":[[],{}]}",
         "{'a':{'b':[1,{'c':null}]},'d':[[],{}]}"),
    CASE("empty object", "{}", "{}"),
    CASE("empty array", "[]", "[]"),
    CASE("empty with spaces", "{ \n}", "{}"),
    CASE("pretty printed", "{\r\n  \"a\" : [ 1 , 2 ] ,\r\n\t\"b\":{ }\r\n}", "{'a':[1,2],'b':{}}"),
    CASE("leading and trailing whitespace", " \n\t[1]\r\n ", "[1]"),
    CASE("duplicate keys kept in order", "{\"a\":1,\"b\":0,\"a\":2}", "{'a':1,'b':0,'a':2}"),
    CASE("nulls kept", "{\"a\":null,\"b\":[null,1]}", "{'a':null,'b':[null,1]}"),
    CASE("empty key and value", "{\"\":\"\"}", "{'':''}"),
    CASE("unicode as sent", "{\"é\":\"日本語🚀\"}", "{'é':'日本語🚀'}"),
    CASE("DEL is a plain character", "[\"a\x7f\"]", "['a\\x7F']"),
};
/* clang-format on */

/* clang-format off */
static const struct pcase raw_cases[] = {
    CASE("bare word", "bla", "'bla'"),
    CASE("JSON string stays raw", "\"bla\"", "'\"bla\"'"),
    CASE("escaped JSON stays raw", "\"{\\\"a\\\":1}\"", "'\"{\\\\\"a\\\\\":1}\"'"),
    CASE("number", "42", "'42'"),
    CASE("true", "true", "'true'"),
    CASE("null", "null", "'null'"),
    CASE("whitespace only", "   ", "'   '"),
    CASE("newlines only", "\n\r\n\t", "'\\x0A\\x0D\\x0A\\x09'"),
    CASE("form urlencoded", "a=1&b=2", "'a=1&b=2'"),
    CASE("NUL kept", "a\0b", "'a\\x00b'"),
    CASE("BOM is not whitespace", "\xEF\xBB\xBF{\"a\":1}", "'\xEF\xBB\xBF{\"a\":1}'"),
    CASE("invalid byte", "abc\xFF", "'abc\xEF\xBF\xBD'"),
    CASE("continuation alone", "\x80x", "'\xEF\xBF\xBDx'"),
    CASE("truncated at end", "x\xE2\x82", "'x\xEF\xBF\xBD'"),
    CASE("truncated before ASCII", "\xE2\x82" "A", "'\xEF\xBF\xBD" "A'"),
    CASE("overlong 2 bytes", "\xC0\xAF", "'\xEF\xBF\xBD\xEF\xBF\xBD'"),
    CASE("overlong 3 bytes", "\xE0\x80\x80", "'\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD'"),
    CASE("encoded surrogate", "\xED\xA0\x80", "'\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD'"),
    CASE("past U+10FFFF", "\xF4\x90\x80\x80", "'\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD'"),
    CASE("4 bytes truncated", "\xF0\x9F\x9A!", "'\xEF\xBF\xBD!'"),
    CASE("F5 never starts one", "\xF5\x80", "'\xEF\xBF\xBD\xEF\xBF\xBD'"),
    CASE("valid kept", "é\xFF🚀", "'é\xEF\xBF\xBD🚀'"),
    /* Kestra decodes the bytes (U+FFFD for invalid ones) before Jackson parses the text. */
    CASE("invalid UTF-8 in a JSON string", "{\"a\":\"\xFF\"}", "{'a':'\xEF\xBF\xBD'}"),
    CASE("invalid UTF-8 in a JSON key", "{\"\xC0\":1}", "{'\xEF\xBF\xBD':1}"),
    CASE("invalid UTF-8 between tokens", "[1,\xFF" "2]", "'[1,\xEF\xBF\xBD" "2]'"),
};
/* clang-format on */

/* clang-format off */
static const struct pcase string_cases[] = {
    CASE("simple escapes", "[\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"]",
         "['\"\\\\/\\x08\\x0C\\x0A\\x0D\\x09']"),
    CASE("u escapes", "[\"\\u00e9\\u20AC\\u0041\"]", "['é€A']"),
    CASE("surrogate pair", "[\"\\ud83d\\ude80\"]", "['🚀']"),
    CASE("surrogate pair upper case", "[\"\\uD834\\uDD1E\"]", "['𝄞']"),
    CASE("lone high surrogate", "[\"\\ud83dx\"]", "['\xEF\xBF\xBDx']"),
    CASE("lone high at end", "[\"\\ud83d\"]", "['\xEF\xBF\xBD']"),
    CASE("lone low surrogate", "[\"\\ude80\"]", "['\xEF\xBF\xBD']"),
    CASE("high then BMP escape", "[\"\\ud83d\\u0041\"]", "['\xEF\xBF\xBD" "A']"),
    CASE("two highs", "[\"\\ud83d\\ud83d\\ude80\"]", "['\xEF\xBF\xBD🚀']"),
    CASE("escaped NUL", "{\"a\\u0000\":\"\\u0000\"}", "{'a\\x00':'\\x00'}"),
    CASE("escape in key", "{\"\\u0061\":1}", "{'a':1}"),
    CASE("escapes and UTF-8 mixed", "[\"é\\n日\\t🚀\"]", "['é\\x0A日\\x09🚀']"),
    CASE("long plain string", "[\"abcdefghijklmnopqrstuvwxyz0123456789\"]",
         "['abcdefghijklmnopqrstuvwxyz0123456789']"),
    CASE("raw tab", "[\"a\tb\"]", "'[\"a\\x09b\"]'"),
    CASE("raw newline", "[\"a\nb\"]", "'[\"a\\x0Ab\"]'"),
    CASE("raw control after 8 bytes", "[\"abcdefgh\x01\"]", "'[\"abcdefgh\\x01\"]'"),
    CASE("raw control after escape", "[\"\\n\x1f\"]", "'[\"\\\\n\\x1F\"]'"),
    CASE("raw NUL", "[\"a\0b\"]", "'[\"a\\x00b\"]'"),
    CASE("bad escape letter", "[\"\\x41\"]", "'[\"\\\\x41\"]'"),
    CASE("short u escape", "[\"\\u12\"]", "'[\"\\\\u12\"]'"),
    CASE("bad hex", "[\"\\u12G4\"]", "'[\"\\\\u12G4\"]'"),
    CASE("backslash at end", "[\"\\", "'[\"\\\\'"),
    CASE("invalid UTF-8 after escape", "[\"\\n\xC3(\"]", "['\\x0A\xEF\xBF\xBD(']"),
};
/* clang-format on */

/* clang-format off */
static const struct pcase number_cases[] = {
    CASE("small ints", "[0,1,-1,127,128,-32,-33,65536]", "[0,1,-1,127,128,-32,-33,65536]"),
    CASE("int64 max", "[9223372036854775807]", "[9223372036854775807]"),
    CASE("int64 min", "[-9223372036854775808]", "[-9223372036854775808]"),
    CASE("uint64 max", "[18446744073709551615]", "[18446744073709551615]"),
    CASE("2^64 is a float", "[18446744073709551616]", "[1.8446744073709552e+19]"),
    CASE("below int64 min is a float", "[-9223372036854775809]", "[-9.223372036854776e+18]"),
    CASE("huge int", "[123456789012345678901234567890]", "[1.2345678901234568e+29]"),
    CASE("minus zero", "[-0]", "[0]"),
    CASE("minus zero float", "[-0.0]", "[-0.0]"),
    CASE("decimals", "[1.5,-0.25,0.1,100.0]", "[1.5,-0.25,0.1,100.0]"),
    CASE("exponents", "[1e3,1E-2,2.5e+2,-1e0]", "[1000.0,0.01,250.0,-1.0]"),
    CASE("overflow to infinity", "[1e400,-1e400]", "[inf,-inf]"),
    CASE("underflow to zero", "[1e-400]", "[0.0]"),
    CASE("leading zero", "[01]", "'[01]'"),
    CASE("leading zero negative", "[-01]", "'[-01]'"),
    CASE("double zero", "[00]", "'[00]'"),
    CASE("no int part", "[.5]", "'[.5]'"),
    CASE("no fraction digits", "[1.]", "'[1.]'"),
    CASE("plus sign", "[+1]", "'[+1]'"),
    CASE("empty exponent", "[1e]", "'[1e]'"),
    CASE("signed empty exponent", "[1e+]", "'[1e+]'"),
    CASE("minus alone", "[-]", "'[-]'"),
    CASE("hex", "[0x10]", "'[0x10]'"),
    CASE("NaN", "[NaN]", "'[NaN]'"),
    CASE("Infinity", "[-Infinity]", "'[-Infinity]'"),
    CASE("two dots", "[1.5.2]", "'[1.5.2]'"),
    CASE("two exponents", "[1e5e5]", "'[1e5e5]'"),
};
/* clang-format on */

/* clang-format off */
static const struct pcase trailing_cases[] = {
    CASE("object then word", "{\"a\":1} x", "{'a':1}"),
    CASE("array then word", "[1,2] x", "[1,2]"),
    CASE("two objects", "{\"a\":1}{\"b\":2}", "{'a':1}"),
    CASE("extra bracket", "[1]]", "[1]"),
    CASE("extra brace", "{\"a\":1}}", "{'a':1}"),
    CASE("colon after nested array", "[[]]:1", "[[]]"),
    CASE("colon after string value", "{\"a\":\"b\"}:\"c\"", "{'a':'b'}"),
    CASE("colon then object", "[[1]]:{\"x\":[2]}", "[[1]]"),
    CASE("deep garbage after", "[1] [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[", "[1]"),
    CASE("garbage with NUL", "[1,2]\0[", "[1,2]"),
    CASE("invalid UTF-8 after", "{\"a\":1}\xFF", "{'a':1}"),
    CASE("truncated object", "{\"a\":1", "'{\"a\":1'"),
    CASE("truncated array", "[1,2", "'[1,2'"),
    CASE("truncated string", "{\"a\":\"x", "'{\"a\":\"x'"),
    CASE("truncated after colon", "{\"a\":", "'{\"a\":'"),
    CASE("open bracket", "[", "'['"),
    CASE("open brace", "{", "'{'"),
    CASE("truncated literal", "[tru", "'[tru'"),
    CASE("NUL inside", "{\"a\":1\0}", "'{\"a\":1\\x00}'"),
    CASE("garbage before", "x{\"a\":1}", "'x{\"a\":1}'"),
};
/* clang-format on */

/* clang-format off */
static const struct pcase syntax_cases[] = {
    CASE("trailing comma array", "[1,]", "'[1,]'"),
    CASE("trailing comma object", "{\"a\":1,}", "'{\"a\":1,}'"),
    CASE("comma only array", "[,]", "'[,]'"),
    CASE("leading comma", "[,1]", "'[,1]'"),
    CASE("comma only object", "{,}", "'{,}'"),
    CASE("double comma", "[1,,2]", "'[1,,2]'"),
    CASE("missing colon", "{\"a\" 1}", "'{\"a\" 1}'"),
    CASE("missing colon string", "{\"a\" \"b\"}", "'{\"a\" \"b\"}'"),
    CASE("missing comma object", "{\"a\":1 \"b\":2}", "'{\"a\":1 \"b\":2}'"),
    CASE("missing comma array", "[1 2]", "'[1 2]'"),
    CASE("missing comma strings", "[\"a\" \"b\"]", "'[\"a\" \"b\"]'"),
    CASE("adjacent strings", "[\"a\"\"b\"]", "'[\"a\"\"b\"]'"),
    CASE("adjacent objects", "[{}{}]", "'[{}{}]'"),
    CASE("adjacent arrays", "[[][]]", "'[[][]]'"),
    CASE("double colon", "{\"a\"::1}", "'{\"a\"::1}'"),
    CASE("colon in array", "[\"a\":1]", "'[\"a\":1]'"),
    CASE("colon after number", "[1:2]", "'[1:2]'"),
    CASE("two colons in pair", "{\"a\":1:2}", "'{\"a\":1:2}'"),
    CASE("chained pairs", "{\"a\":\"b\":\"c\"}", "'{\"a\":\"b\":\"c\"}'"),
    CASE("key without value", "{\"a\"}", "'{\"a\"}'"),
    CASE("key without value after pair", "{\"a\":1,\"b\"}", "'{\"a\":1,\"b\"}'"),
    CASE("colon without value", "{\"a\":}", "'{\"a\":}'"),
    CASE("number key", "{1:2}", "'{1:2}'"),
    CASE("null key", "{null:1}", "'{null:1}'"),
    CASE("object key", "{{}:1}", "'{{}:1}'"),
    CASE("array key", "{[]:1}", "'{[]:1}'"),
    CASE("mismatched close", "[1}", "'[1}'"),
    CASE("single quotes", "{'a':1}", "'{\\'a\\':1}'"),
    CASE("bare word value", "[abc]", "'[abc]'"),
    CASE("tru", "[tru]", "'[tru]'"),
    CASE("nulll", "[nulll]", "'[nulll]'"),
    CASE("True", "[True]", "'[True]'"),
    CASE("falsey", "[falsey]", "'[falsey]'"),
    CASE("truefalse", "[truefalse]", "'[truefalse]'"),
    CASE("literal glued to string", "[true\"x\"]", "'[true\"x\"]'"),
    CASE("comment", "[1/*c*/]", "'[1/*c*/]'"),
    CASE("form feed is not whitespace", "[1,\f2]", "'[1,\\x0C2]'"),
};
/* clang-format on */

static void test_structure(void **state)
{
    (void)state;
    RUN_TABLE(structure_cases);
}

static void test_raw(void **state)
{
    (void)state;
    RUN_TABLE(raw_cases);
}

static void test_strings(void **state)
{
    (void)state;
    RUN_TABLE(string_cases);
}

static void test_numbers(void **state)
{
    (void)state;
    RUN_TABLE(number_cases);
}

static void test_trailing_and_truncated(void **state)
{
    (void)state;
    RUN_TABLE(trailing_cases);
}

static void test_syntax_errors(void **state)
{
    (void)state;
    RUN_TABLE(syntax_cases);
}

/* Floats read the same under a locale whose decimal point is a comma (skipped if none is
 * installed). */
static void test_locale_independent(void **state)
{
    (void)state;
    static const char *const names[] = {"de_DE.UTF-8", "fr_FR.UTF-8", "de_DE", "fr_FR"};
    const char *found = NULL;
    for (size_t i = 0; i < ARRAY_LEN(names) && !found; i++) {
        found = setlocale(LC_NUMERIC, names[i]);
    }
    if (!found) {
        skip();
    }
    struct pack_parser *pp = pack_parser_new();
    msgpack_sbuffer sb;
    msgpack_unpacked u;
    msgpack_sbuffer_init(&sb);
    assert_true(pack_json(pp, "[1.5,2e-1]", 10, &sb));
    setlocale(LC_NUMERIC, "C");
    unpack_one(sb.data, sb.size, &u);
    assert_true(u.data.via.array.ptr[0].via.f64 == 1.5);
    assert_true(u.data.via.array.ptr[1].via.f64 == 0.2);
    msgpack_unpacked_destroy(&u);
    msgpack_sbuffer_destroy(&sb);
    pack_parser_free(pp);
}

/* ==== Golden bytes ==== */

/* The exact encoding, written out by hand rather than with msgpack-c. */
static void test_golden_bytes(void **state)
{
    (void)state;
    static const char in[] =
        "{\"a\":[1,-1,300,1.5,null,true,\"\\u00e9\"],"
        "\"b\":[18446744073709551615,-9223372036854775808,18446744073709551616]}";
    static const unsigned char want[] = {
        0x82,                                                 /* map of 2 */
        0xa1, 'a',  0x97,                                     /* "a": array of 7 */
        0x01, 0xff, 0xcd, 0x01, 0x2c,                         /* 1, -1, 300 */
        0xcb, 0x3f, 0xf8, 0,    0,    0,    0,    0,    0,    /* 1.5 */
        0xc0, 0xc3, 0xa2, 0xc3, 0xa9,                         /* null, true, "é" */
        0xa1, 'b',  0x93,                                     /* "b": array of 3 */
        0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, /* uint64 max */
        0xd3, 0x80, 0,    0,    0,    0,    0,    0,    0,    /* int64 min */
        0xcb, 0x43, 0xf0, 0,    0,    0,    0,    0,    0,    /* 2^64 as float64 */
    };
    struct pack_parser *pp = pack_parser_new();
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    assert_int_equal(pack_body(pp, in, sizeof(in) - 1, &sb), PACK_BODY_OBJECT);
    assert_int_equal(sb.size, sizeof(want));
    assert_memory_equal(sb.data, want, sizeof(want));
    msgpack_sbuffer_destroy(&sb);
    pack_parser_free(pp);
}

/*
 * Every size class of the str, array and map headers pack.c writes itself, against msgpack-c:
 * each value is packed from JSON and by hand, and the bytes must match. Escaped strings also
 * take the path where the decoded string needs a shorter header than the escaped one.
 */
static void check_same_bytes(struct pack_parser *pp, const struct sbuf *json,
                             const msgpack_sbuffer *want)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    assert_true(pack_json(pp, json->data, json->len, &sb));
    assert_int_equal(sb.size, want->size);
    assert_memory_equal(sb.data, want->data, want->size);
    msgpack_sbuffer_destroy(&sb);
}

/*
 * Writes the same value as JSON and, by hand, as msgpack. Shape 0: ["xx..."] with n bytes;
 * 1: the same string with every byte escaped; 2: an array of n zeros; 3: a map of n "":0 pairs.
 */
static void same_value(int shape, size_t n, struct sbuf *json, msgpack_packer *pk)
{
    static const char *const open[] = {"[\"", "[\"", "[", "{"};
    static const char *const item[] = {"x", "\\u0078", "0", "\"\":0"};
    static const char *const close[] = {"\"]", "\"]", "]", "}"};
    sbuf_append_cstr(json, open[shape]);
    if (shape < 2) {
        msgpack_pack_array(pk, 1);
        msgpack_pack_str(pk, n);
    } else if (shape == 2) {
        msgpack_pack_array(pk, n);
    } else {
        msgpack_pack_map(pk, n);
    }
    for (size_t i = 0; i < n; i++) {
        if (i > 0 && shape >= 2) {
            sbuf_append_cstr(json, ",");
        }
        sbuf_append_cstr(json, item[shape]);
        if (shape < 2) {
            msgpack_pack_str_body(pk, "x", 1);
            continue;
        }
        if (shape == 3) {
            msgpack_pack_str(pk, 0);
        }
        msgpack_pack_int64(pk, 0);
    }
    sbuf_append_cstr(json, close[shape]);
}

static void test_header_sizes(void **state)
{
    (void)state;
    static const size_t sizes[] = {0, 15, 16, 31, 32, 255, 256, 65535, 65536};
    struct pack_parser *pp = pack_parser_new();
    for (size_t k = 0; k < ARRAY_LEN(sizes); k++) {
        for (int shape = 0; shape < 4; shape++) {
            struct sbuf json;
            msgpack_sbuffer want;
            msgpack_packer pk;
            sbuf_init(&json);
            msgpack_sbuffer_init(&want);
            msgpack_packer_init(&pk, &want, msgpack_sbuffer_write);
            same_value(shape, sizes[k], &json, &pk);
            check_same_bytes(pp, &json, &want);
            msgpack_sbuffer_destroy(&want);
            sbuf_deinit(&json);
        }
    }
    pack_parser_free(pp);
}

/* ==== Buffer contract ==== */

/* pack_json leaves the buffer as it was when it fails, even after writing part of the value. */
static void test_failure_leaves_buffer(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "{\"a\":[1,2,3],\"b\":tru}", "[1,2,\"\\ud83d\\ude80\",[", "bla", "[1,]", "   ",
    };
    struct pack_parser *pp = pack_parser_new();
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_sbuffer_write(&sb, "prefix", 6);
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        assert_false(pack_json(pp, bad[i], strlen(bad[i]), &sb));
        assert_int_equal(sb.size, 6);
        assert_memory_equal(sb.data, "prefix", 6);
    }
    /* pack_body appends after what is there. */
    assert_int_equal(pack_body(pp, "[7]", 3, &sb), PACK_BODY_ARRAY);
    assert_int_equal(sb.size, 8);
    assert_memory_equal(sb.data, "prefix\x91\x07", 8);
    msgpack_sbuffer_destroy(&sb);
    pack_parser_free(pp);
}

static void test_pack_text(void **state)
{
    (void)state;
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    pack_text(&pk, NULL, 0);
    pack_text(&pk, "a\xFF", 2);
    assert_int_equal(sb.size, 1 + 5);
    assert_memory_equal(sb.data,
                        "\xa0\xa4"
                        "a\xEF\xBF\xBD",
                        6);
    pack_parser_free(NULL);
    msgpack_sbuffer_destroy(&sb);
}

/* ==== Limits ==== */

/* '[' * depth, then ']' * depth, optionally with `"a":` chains in between. */
static char *nested(size_t depth, size_t *len)
{
    char *s = xmalloc(2 * depth);
    memset(s, '[', depth);
    memset(s + depth, ']', depth);
    *len = 2 * depth;
    return s;
}

static enum pack_body_kind pack_kind(struct pack_parser *pp, const char *s, size_t len)
{
    msgpack_sbuffer sb;
    msgpack_unpacked u;
    msgpack_sbuffer_init(&sb);
    enum pack_body_kind kind = pack_body(pp, s, len, &sb);
    unpack_one(sb.data, sb.size, &u);
    if (kind == PACK_BODY_STRING) {
        assert_int_equal(u.data.via.str.size, len);
        assert_memory_equal(u.data.via.str.ptr, s, len);
    }
    msgpack_unpacked_destroy(&u);
    msgpack_sbuffer_destroy(&sb);
    return kind;
}

static void test_depth_limit(void **state)
{
    (void)state;
    struct pack_parser *pp = pack_parser_new();
    size_t len;
    char *s = nested(PACK_MAX_DEPTH, &len);
    assert_int_equal(pack_kind(pp, s, len), PACK_BODY_ARRAY);
    xfree(s);
    s = nested(PACK_MAX_DEPTH + 1, &len);
    assert_int_equal(pack_kind(pp, s, len), PACK_BODY_STRING);
    xfree(s);
    /* Objects count too: {"a":{"a":...}}. */
    struct sbuf b;
    sbuf_init(&b);
    for (int i = 0; i < PACK_MAX_DEPTH + 1; i++) {
        sbuf_append_cstr(&b, "{\"a\":");
    }
    sbuf_append_cstr(&b, "1");
    for (int i = 0; i < PACK_MAX_DEPTH + 1; i++) {
        sbuf_append_cstr(&b, "}");
    }
    assert_int_equal(pack_kind(pp, b.data, b.len), PACK_BODY_STRING);
    assert_int_equal(pack_kind(pp, b.data + 5, b.len - 6), PACK_BODY_OBJECT);
    sbuf_deinit(&b);
    pack_parser_free(pp);
}

static double seconds_since(const struct timespec *t0)
{
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (double)(t1.tv_sec - t0->tv_sec) + (double)(t1.tv_nsec - t0->tv_nsec) / 1e9;
}

/*
 * 100000 levels: no recursion, no crash, and no quadratic time (jsmn alone takes 20 s here).
 * The bound is loose enough for a sanitizer build on a busy machine.
 */
static void test_deep_nesting(void **state)
{
    (void)state;
    struct pack_parser *pp = pack_parser_new();
    struct timespec t0;
    size_t len;
    char *s = nested(100000, &len);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    assert_int_equal(pack_kind(pp, s, len), PACK_BODY_STRING);
    s[len / 2 - 1] = '1'; /* [[[...1]]]...: now the innermost is not an empty array */
    s[len / 2] = ' ';
    assert_int_equal(pack_kind(pp, s, len), PACK_BODY_STRING);
    assert_true(seconds_since(&t0) < 2.0);
    xfree(s);
    pack_parser_free(pp);
}

/*
 * jsmn makes a parent chain out of `"a":"b":"c":...`, and commas let the chain grow while the
 * current container stays shallow; closing brackets then walk the chain. Must stay linear.
 */
static void test_colon_chain(void **state)
{
    (void)state;
    struct pack_parser *pp = pack_parser_new();
    struct sbuf b;
    struct timespec t0;
    sbuf_init(&b);
    for (int i = 0; i < 20; i++) {
        sbuf_append_cstr(&b, "[");
    }
    for (int i = 0; i < 50000; i++) {
        sbuf_append_cstr(&b, "\"a\":");
    }
    sbuf_append_cstr(&b, "\"z\"");
    for (int i = 0; i < 50000; i++) {
        sbuf_append_cstr(&b, i % 64 == 0 ? ",1:" : ",");
    }
    for (int i = 0; i < 20; i++) {
        sbuf_append_cstr(&b, "]");
    }
    clock_gettime(CLOCK_MONOTONIC, &t0);
    assert_int_equal(pack_kind(pp, b.data, b.len), PACK_BODY_STRING);
    assert_true(seconds_since(&t0) < 2.0);
    sbuf_deinit(&b);
    pack_parser_free(pp);
}

/* A big flat body packs, and the parser keeps no more memory afterwards than before. */
static void test_growth_and_trim(void **state)
{
    (void)state;
    struct pack_parser *pp = pack_parser_new();
    size_t base = pack_parser_retained(pp);
    struct sbuf b;
    sbuf_init(&b);
    sbuf_append_cstr(&b, "[");
    for (int i = 0; i < 200000; i++) {
        sbuf_appendf(&b, "%s%d", i ? "," : "", i);
    }
    sbuf_append_cstr(&b, ",\"");
    for (int i = 0; i < 100000; i++) {
        sbuf_append_cstr(&b, "\\n");
    }
    sbuf_append_cstr(&b, "\"]");
    msgpack_sbuffer sb;
    msgpack_unpacked u;
    msgpack_sbuffer_init(&sb);
    assert_int_equal(pack_body(pp, b.data, b.len, &sb), PACK_BODY_ARRAY);
    unpack_one(sb.data, sb.size, &u);
    assert_int_equal(u.data.via.array.size, 200001);
    assert_int_equal(u.data.via.array.ptr[199999].via.u64, 199999);
    assert_int_equal(u.data.via.array.ptr[200000].via.str.size, 100000);
    assert_true(pack_parser_retained(pp) <= base);
    msgpack_unpacked_destroy(&u);
    msgpack_sbuffer_destroy(&sb);
    sbuf_deinit(&b);
    pack_parser_free(pp);
}

static void test_number_length_limit(void **state)
{
    (void)state;
    struct pack_parser *pp = pack_parser_new();
    char s[PACK_MAX_NUMBER_LEN + 3];
    s[0] = '[';
    memset(s + 1, '7', PACK_MAX_NUMBER_LEN);
    s[PACK_MAX_NUMBER_LEN + 1] = ']';
    assert_int_equal(pack_kind(pp, s, PACK_MAX_NUMBER_LEN + 2), PACK_BODY_ARRAY);
    memset(s + 1, '7', PACK_MAX_NUMBER_LEN + 1);
    s[PACK_MAX_NUMBER_LEN + 2] = ']';
    assert_int_equal(pack_kind(pp, s, PACK_MAX_NUMBER_LEN + 3), PACK_BODY_STRING);
    pack_parser_free(pp);
}

/* ==== Payload files ==== */

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    struct sbuf b;
    sbuf_init(&b);
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), f)) > 0) {
        sbuf_append(&b, buf, n);
    }
    fclose(f);
    *len = b.len;
    return b.data;
}

/* Looks up a dotted path of map keys ("repository.owner.login"). */
static const msgpack_object *lookup(const msgpack_object *o, const char *path)
{
    while (*path) {
        const char *dot = strchr(path, '.');
        size_t n = dot ? (size_t)(dot - path) : strlen(path);
        assert_int_equal(o->type, MSGPACK_OBJECT_MAP);
        const msgpack_object *found = NULL;
        for (uint32_t i = 0; i < o->via.map.size; i++) {
            const msgpack_object *k = &o->via.map.ptr[i].key;
            if (k->via.str.size == n && memcmp(k->via.str.ptr, path, n) == 0) {
                found = &o->via.map.ptr[i].val;
            }
        }
        assert_non_null(found);
        o = found;
        path += n + (dot != NULL);
    }
    return o;
}

static void assert_str_at(const msgpack_object *root, const char *path, const char *want)
{
    const msgpack_object *o = lookup(root, path);
    assert_int_equal(o->type, MSGPACK_OBJECT_STR);
    assert_int_equal(o->via.str.size, strlen(want));
    assert_memory_equal(o->via.str.ptr, want, strlen(want));
}

/* Counts of each kind of value, to compare with what Python's json module finds in the file. */
struct tally {
    int maps, arrays, bools, nils, ints, floats, strs;
    size_t str_bytes;
};

static void count(const msgpack_object *o, struct tally *t)
{
    switch (o->type) {
    case MSGPACK_OBJECT_MAP:
        t->maps++;
        for (uint32_t i = 0; i < o->via.map.size; i++) {
            count(&o->via.map.ptr[i].key, t);
            count(&o->via.map.ptr[i].val, t);
        }
        break;
    case MSGPACK_OBJECT_ARRAY:
        t->arrays++;
        for (uint32_t i = 0; i < o->via.array.size; i++) {
            count(&o->via.array.ptr[i], t);
        }
        break;
    case MSGPACK_OBJECT_STR:
        t->strs++;
        t->str_bytes += o->via.str.size;
        break;
    case MSGPACK_OBJECT_BOOLEAN:
        t->bools++;
        break;
    case MSGPACK_OBJECT_NIL:
        t->nils++;
        break;
    case MSGPACK_OBJECT_FLOAT64:
        t->floats++;
        break;
    default:
        t->ints++;
    }
}

static void test_github_push(void **state)
{
    (void)state;
    size_t len;
    char *text = read_file("testdata/payloads/github-push.json", &len);
    struct pack_parser *pp = pack_parser_new();
    msgpack_sbuffer sb;
    msgpack_unpacked u;
    msgpack_sbuffer_init(&sb);
    assert_in_range(len, 7000, 7600);
    assert_int_equal(pack_body(pp, text, len, &sb), PACK_BODY_OBJECT);
    unpack_one(sb.data, sb.size, &u);
    /* The numbers python3 -c 'import json; ...' gives for the same file. */
    struct tally t = {0};
    count(&u.data, &t);
    assert_int_equal(u.data.via.map.size, 13);
    assert_int_equal(t.maps, 12);
    assert_int_equal(t.arrays, 8);
    assert_int_equal(t.bools, 20);
    assert_int_equal(t.nils, 3);
    assert_int_equal(t.ints, 14);
    assert_int_equal(t.floats, 0);
    assert_int_equal(t.strs, 288);
    assert_int_equal(t.str_bytes, 6139);
    size_t next;
    pack_extents(pp, &next);
    assert_int_equal(next, t.maps + t.arrays);
    assert_str_at(&u.data, "repository.owner.login", "acme");
    assert_str_at(&u.data, "repository.description",
                  "Kestra-style webhooks → Kafka, in C (évènements, 事件)");
    assert_str_at(&u.data, "head_commit.message",
                  "Merge pull request #17 from acme/pack-json\n\npack: validate strings "
                  "(été — 🚀 /api/v1)\nRejects \"lone\" surrogates; C:\\tmp paths stay.\n"
                  "Naïve café — “quotes” ✓ 🚀 (résumé \b\f\r)\n\n* tabs\tand\\backslashes\n\n"
                  "Co-authored-by: 王小明 <xm@acme.example>");
    assert_int_equal(lookup(&u.data, "repository.owner.id")->via.u64, 48213377);
    assert_int_equal(lookup(&u.data, "repository.pushed_at")->via.u64, 1732698019);
    assert_int_equal(lookup(&u.data, "base_ref")->type, MSGPACK_OBJECT_NIL);
    assert_int_equal(lookup(&u.data, "commits")->via.array.size, 1);
    msgpack_unpacked_destroy(&u);
    msgpack_sbuffer_destroy(&sb);
    pack_parser_free(pp);
    xfree(text);
}

static void test_small_payload(void **state)
{
    (void)state;
    size_t len;
    char *text = read_file("testdata/payloads/small.json", &len);
    struct pack_parser *pp = pack_parser_new();
    char *got = pack_render(pp, text, len);
    assert_string_equal(
        got, "{'ref':'refs/heads/main','after':'e5f6a7b8c9d0e1f2a3b4c5d6e7f8a9b0c1d2e3f4',"
             "'repository':{'full_name':'acme/wh-bridge','private':false},"
             "'pusher':{'name':'zoe-a'},"
             "'commits':[{'message':'Fast path — jsmn ✓','distinct':true}],"
             "'size':-1500.0}");
    xfree(got);
    pack_parser_free(pp);
    xfree(text);
}

/* ==== Extents ==== */

static void tight_buffer(msgpack_sbuffer *sb);

/*
 * Each extent holds exactly one map or array of sb, header included, and they come in opening
 * order (strictly rising starts). Returns how many there are.
 */
static size_t check_extents(const struct pack_parser *pp, const msgpack_sbuffer *sb)
{
    size_t n;
    const struct byte_range *ext = pack_extents(pp, &n);
    for (size_t k = 0; k < n; k++) {
        assert_true(ext[k].start < ext[k].end && ext[k].end <= sb->size);
        assert_true(k == 0 || ext[k - 1].start < ext[k].start);
        unsigned char b = (unsigned char)sb->data[ext[k].start];
        assert_true((b >= 0x80 && b <= 0x9f) || (b >= 0xdc && b <= 0xdf));
        msgpack_zone z;
        msgpack_object o;
        size_t off = ext[k].start;
        msgpack_zone_init(&z, 256);
        /* SUCCESS, not EXTRA_BYTES or CONTINUE: one value ends exactly at end. */
        assert_int_equal(msgpack_unpack(sb->data, ext[k].end, &off, &z, &o),
                         MSGPACK_UNPACK_SUCCESS);
        assert_int_equal(off, ext[k].end);
        assert_true(o.type == MSGPACK_OBJECT_MAP || o.type == MSGPACK_OBJECT_ARRAY);
        msgpack_zone_destroy(&z);
    }
    return n;
}

static size_t extents_of(struct pack_parser *pp, const char *text)
{
    msgpack_sbuffer sb;
    tight_buffer(&sb); /* offsets count from sb->data, this byte included */
    pack_body(pp, text, strlen(text), &sb);
    size_t n = check_extents(pp, &sb);
    msgpack_sbuffer_destroy(&sb);
    return n;
}

/* Extents are where the containers are in the output, through the moves of 16+ element ones. */
static void test_extents(void **state)
{
    (void)state;
    struct pack_parser *pp = pack_parser_new();
    assert_int_equal(extents_of(pp, "{\"a\":[1,{\"b\":2}],\"c\":{}}"), 4);
    assert_int_equal(extents_of(pp, "[]"), 1);

    /* A map of 16 arrays moves them by 2 bytes; an array of 65540 elements moves by 4 the map
     * and arrays it holds after 65536 numbers. 1 + 1 + 16 + 1 + 1 + 1 + 1 containers. */
    struct sbuf t;
    sbuf_init(&t);
    sbuf_append_cstr(&t, "{\"m\":{");
    for (int i = 0; i < 16; i++) {
        sbuf_appendf(&t, "%s\"k%d\":[%d,[]]", i ? "," : "", i, i);
    }
    /* (the inner [] of each are 16 more) */
    sbuf_append_cstr(&t, "},\"x\":[");
    for (int i = 0; i < 65536; i++) {
        sbuf_appendf(&t, "%d,", i % 10);
    }
    sbuf_append_cstr(&t, "[2],{\"y\":[3]}]}");
    assert_int_equal(extents_of(pp, t.data), 1 + 1 + 16 + 16 + 1 + 1 + 1 + 1);

    /* Past PACK_MAX_EXTENTS containers, the first ones opened are kept, still right. */
    sbuf_reset(&t);
    sbuf_append_cstr(&t, "[");
    for (int i = 0; i < PACK_MAX_EXTENTS + 500; i++) {
        sbuf_append_cstr(&t, i ? ",{\"k\":[1]}" : "{\"k\":[1]}");
    }
    sbuf_append_cstr(&t, "]");
    assert_int_equal(extents_of(pp, t.data), PACK_MAX_EXTENTS);
    sbuf_deinit(&t);

    /* Nothing is left from the call before when the text is not JSON. */
    assert_int_equal(extents_of(pp, "{\"a\":[1]}"), 2);
    assert_int_equal(extents_of(pp, "{\"a\":[1]"), 0);
    assert_int_equal(extents_of(pp, "[1]"), 1);
    assert_int_equal(extents_of(pp, "plain text"), 0);
    assert_int_equal(extents_of(pp, "[1]"), 1);
    assert_int_equal(extents_of(pp, "{\"a\":\"\xff\",\"b\":[]}"), 2); /* repaired, then JSON */
    pack_parser_free(pp);
}

/* ==== The same bytes as the oracle ==== */

/* A buffer holding one byte and no spare room: pack.c's own reservations must cover all it writes
 * (AddressSanitizer builds see any byte past them). */
static void tight_buffer(msgpack_sbuffer *sb)
{
    sb->data = xmalloc(1);
    sb->data[0] = '\x7f';
    sb->size = 1;
    sb->alloc = 1;
}

/* pack_body and the oracle agree on the kind and on every byte; so do pack_json and its oracle. */
static void check_oracle(struct pack_parser *pp, struct pack_oracle *op, const char *text,
                         size_t len)
{
    msgpack_sbuffer sb, want;
    tight_buffer(&sb);
    msgpack_sbuffer_init(&want);
    msgpack_sbuffer_write(&want, "\x7f", 1);
    assert_int_equal(pack_body(pp, text, len, &sb), pack_oracle_body(op, text, len, &want));
    assert_int_equal(sb.size, want.size);
    assert_memory_equal(sb.data, want.data, want.size);
    msgpack_sbuffer_destroy(&sb);
    msgpack_sbuffer_destroy(&want);

    tight_buffer(&sb);
    msgpack_sbuffer_init(&want);
    msgpack_sbuffer_write(&want, "\x7f", 1);
    assert_int_equal(pack_json(pp, text, len, &sb), pack_oracle_json(op, text, len, &want));
    assert_int_equal(sb.size, want.size);
    assert_memory_equal(sb.data, want.data, want.size);
    msgpack_sbuffer_destroy(&sb);
    msgpack_sbuffer_destroy(&want);
}

static void check_oracle_sbuf(struct sbuf *b)
{
    struct pack_parser *pp = pack_parser_new();
    struct pack_oracle *op = pack_oracle_new();
    check_oracle(pp, op, b->data, b->len);
    pack_oracle_free(op);
    pack_parser_free(pp);
}

static void oracle_table(struct pack_parser *pp, struct pack_oracle *op, const struct pcase *cases,
                         size_t n)
{
    for (size_t i = 0; i < n; i++) {
        check_oracle(pp, op, cases[i].in, cases[i].len);
    }
}

#define ORACLE_TABLE(pp, op, t) oracle_table((pp), (op), (t), sizeof(t) / sizeof((t)[0]))

static void test_oracle_tables(void **state)
{
    (void)state;
    struct pack_parser *pp = pack_parser_new();
    struct pack_oracle *op = pack_oracle_new();
    ORACLE_TABLE(pp, op, structure_cases);
    ORACLE_TABLE(pp, op, raw_cases);
    ORACLE_TABLE(pp, op, string_cases);
    ORACLE_TABLE(pp, op, number_cases);
    ORACLE_TABLE(pp, op, trailing_cases);
    ORACLE_TABLE(pp, op, syntax_cases);
    pack_oracle_free(op);
    pack_parser_free(pp);
}

/*
 * Each payload file, and its prefixes: a prefix fails after up to hundreds of containers and
 * strings (each left unfinished somewhere), and must become the same raw string. Every prefix of
 * the first 600 bytes, then every 7th (a sanitizer build runs all of them in about 10 s).
 */
static void test_oracle_payloads(void **state)
{
    (void)state;
    static const char *const files[] = {"testdata/payloads/github-push.json",
                                        "testdata/payloads/github-push-pretty.json",
                                        "testdata/payloads/small.json"};
    struct pack_parser *pp = pack_parser_new();
    struct pack_oracle *op = pack_oracle_new();
    for (size_t f = 0; f < ARRAY_LEN(files); f++) {
        size_t len;
        char *text = read_file(files[f], &len);
        for (size_t n = 1; n <= len; n += n < 600 ? 1 : 7) {
            check_oracle(pp, op, text, n);
        }
        check_oracle(pp, op, text, len);
        xfree(text);
    }
    pack_oracle_free(op);
    pack_parser_free(pp);
}

/*
 * Containers of 15, 16, 65535 and 65536 elements (the last one-byte header, the first 16-bit
 * one, the last 16-bit, the first 32-bit), nested in each other, so that closing an inner one
 * moves bytes inside an outer one that moves them again.
 */
static void test_oracle_count_boundaries(void **state)
{
    (void)state;
    static const size_t sizes[] = {15, 16, 65535, 65536};
    for (size_t a = 0; a < ARRAY_LEN(sizes); a++) {
        for (size_t b = 0; b < ARRAY_LEN(sizes); b++) {
            struct sbuf t;
            sbuf_init(&t);
            /* {"":0,...,"k":[0,...,{"":0,...}]} with the inner array at the end of the map */
            sbuf_append_cstr(&t, "{");
            for (size_t i = 0; i + 1 < sizes[a]; i++) {
                sbuf_append_cstr(&t, "\"\":0,");
            }
            sbuf_append_cstr(&t, "\"k\":[");
            for (size_t i = 0; i + 1 < sizes[b]; i++) {
                sbuf_append_cstr(&t, "0,");
            }
            sbuf_append_cstr(&t, "{\"x\":1.5}]}");
            check_oracle_sbuf(&t);
            sbuf_deinit(&t);
        }
    }
}

/*
 * PACK_MAX_DEPTH arrays in each other, each with 65536 elements, the innermost ending in a
 * float: after the 9-byte float, every closing bracket in a row moves its array by 4 bytes,
 * the most a body can write beyond its own length, all at the very end of the reserved room.
 * One more level makes it a raw string.
 */
static void deep_wide(struct sbuf *t, int depth)
{
    for (int d = 0; d < depth; d++) {
        sbuf_append_cstr(t, "[");
        for (int i = 0; i < 65535; i++) {
            sbuf_append_cstr(t, "0,");
        }
    }
    sbuf_append_cstr(t, "0.5");
    for (int d = 0; d < depth; d++) {
        sbuf_append_cstr(t, "]");
    }
}

static void test_oracle_deep_and_wide(void **state)
{
    (void)state;
    for (int depth = PACK_MAX_DEPTH; depth <= PACK_MAX_DEPTH + 1; depth++) {
        struct sbuf t;
        sbuf_init(&t);
        deep_wide(&t, depth);
        struct pack_parser *pp = pack_parser_new();
        msgpack_sbuffer sb;
        tight_buffer(&sb);
        enum pack_body_kind kind = pack_body(pp, t.data, t.len, &sb);
        assert_int_equal(kind, depth == PACK_MAX_DEPTH ? PACK_BODY_ARRAY : PACK_BODY_STRING);
        msgpack_sbuffer_destroy(&sb);
        pack_parser_free(pp);
        check_oracle_sbuf(&t);
        sbuf_deinit(&t);
    }
}

/* Strings around the header guess: a quote within 32 bytes or not, escapes that shorten a
 * string across the 32- and 256-byte header sizes, and a string that ends the text. */
static void test_oracle_string_headers(void **state)
{
    (void)state;
    static const size_t lens[] = {0, 1, 15, 16, 30, 31, 32, 33, 47, 48, 255, 256, 257, 65535,
                                  65536};
    static const char *const fill[] = {"x", "\\u00e9", "\\\"", "\\n", "é"};
    struct pack_parser *pp = pack_parser_new();
    struct pack_oracle *op = pack_oracle_new();
    for (size_t l = 0; l < ARRAY_LEN(lens); l++) {
        for (size_t f = 0; f < ARRAY_LEN(fill); f++) {
            for (int tail = 0; tail < 3; tail++) {
                struct sbuf t;
                sbuf_init(&t);
                sbuf_append_cstr(&t, "[\"");
                for (size_t i = 0; i < lens[l]; i++) {
                    /* Mostly plain bytes, with the fill at the start, or everywhere. */
                    sbuf_append_cstr(&t, tail == 2 || i == 0 ? fill[f] : "y");
                }
                sbuf_append_cstr(&t, tail == 1 ? "\"" : "\",\"a\"]");
                check_oracle(pp, op, t.data, t.len);
                sbuf_deinit(&t);
            }
        }
    }
    pack_oracle_free(op);
    pack_parser_free(pp);
}

/* Whitespace of every kind and length between tokens, and where JSON allows none. */
static void test_oracle_whitespace(void **state)
{
    (void)state;
    static const char *const ws[] = {"", " ", "\n", "\r\n\t", "\n                              ",
                                     "\n\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t", "\f", "\v"};
    struct pack_parser *pp = pack_parser_new();
    struct pack_oracle *op = pack_oracle_new();
    for (size_t w = 0; w < ARRAY_LEN(ws); w++) {
        struct sbuf t;
        sbuf_init(&t);
        const char *parts[] = {"{", "\"a\"", ":", "[", "1", ",", "true", ",", "{", "}", ",",
                               "[", "]", ",", "-2.5e3", "]", ",", "\"b\"", ":", "null", "}"};
        for (size_t i = 0; i < ARRAY_LEN(parts); i++) {
            sbuf_append_cstr(&t, ws[w]);
            sbuf_append_cstr(&t, parts[i]);
        }
        sbuf_append_cstr(&t, ws[w]);
        check_oracle(pp, op, t.data, t.len);
        sbuf_deinit(&t);
    }
    pack_oracle_free(op);
    pack_parser_free(pp);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_structure),
        cmocka_unit_test(test_raw),
        cmocka_unit_test(test_strings),
        cmocka_unit_test(test_numbers),
        cmocka_unit_test(test_trailing_and_truncated),
        cmocka_unit_test(test_syntax_errors),
        cmocka_unit_test(test_locale_independent),
        cmocka_unit_test(test_golden_bytes),
        cmocka_unit_test(test_header_sizes),
        cmocka_unit_test(test_failure_leaves_buffer),
        cmocka_unit_test(test_pack_text),
        cmocka_unit_test(test_depth_limit),
        cmocka_unit_test(test_deep_nesting),
        cmocka_unit_test(test_colon_chain),
        cmocka_unit_test(test_growth_and_trim),
        cmocka_unit_test(test_number_length_limit),
        cmocka_unit_test(test_github_push),
        cmocka_unit_test(test_extents),
        cmocka_unit_test(test_small_payload),
        cmocka_unit_test(test_oracle_tables),
        cmocka_unit_test(test_oracle_payloads),
        cmocka_unit_test(test_oracle_count_boundaries),
        cmocka_unit_test(test_oracle_deep_and_wide),
        cmocka_unit_test(test_oracle_string_headers),
        cmocka_unit_test(test_oracle_whitespace),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
