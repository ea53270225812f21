/*
 * pack.h: request text → msgpack, by Kestra's trigger-output rules: the body parsed as a JSON
 * object, else a JSON array, else kept as the raw string; every string valid UTF-8.
 * Pure functions over buffers: no I/O, no libevent, no Kafka. Implemented in pack.c (the JSON
 * parser), pack_number.c (number literals) and pack_text.c (raw text, UTF-8 repair).
 */
#ifndef BRIDGE_PACK_H
#define BRIDGE_PACK_H

#include <stdbool.h>
#include <stddef.h>

#include <msgpack.h>

#include "util.h"

/**
 * Deepest nesting of maps and arrays pack_json accepts, counting the body's own map or array.
 * A deeper body is not JSON for pack_json, so pack_body keeps it as the raw string. The limit is
 * proto.h's PROTO_MAX_BODY_DEPTH: msgpack-c's unpacker refuses anything nested more than 32
 * deep, and the body sits at level 4 of a message (pack_test.c checks that the two agree).
 * Jackson's own limit (StreamReadConstraints, 2.15 and later) is 1000, so bodies nested 30 to
 * 1000 deep are objects or arrays in Kestra and strings here.
 */
#define PACK_MAX_DEPTH 29

/**
 * Longest number literal, in bytes, pack_json accepts: Jackson's default maximum number length
 * (StreamReadConstraints, 2.15 and later). A longer number makes Jackson fail, and so the body
 * stays a raw string.
 */
#define PACK_MAX_NUMBER_LEN 1000

/** What pack_body wrote. */
enum pack_body_kind {
    PACK_BODY_OBJECT, /* a msgpack map */
    PACK_BODY_ARRAY,  /* a msgpack array */
    PACK_BODY_STRING, /* a msgpack str holding the raw text */
};

/**
 * Most containers whose extent one pack_json call records (see pack_extents): 16 KB of table,
 * where the GitHub push has 20 containers.
 */
#define PACK_MAX_EXTENTS 1024

/**
 * Reusable parser state: a C locale for strtod, and the extents of the last value's containers.
 * The parse itself keeps no other state between calls: the nesting stack (PACK_MAX_DEPTH
 * entries) is on the C stack and the value is written straight into the caller's sbuffer, so a
 * request allocates nothing here but the sbuffer's growth. One per thread; reuse it across
 * requests.
 *
 * pack_parser_new() never returns NULL (it aborts when out of memory, like xmalloc).
 * pack_parser_free(NULL) is a no-op.
 */
struct pack_parser;

struct pack_parser *pack_parser_new(void);
void pack_parser_free(struct pack_parser *pp);

/**
 * Bytes of buffer the parser keeps between calls (for tests and memory metrics): the fixed
 * extents table, never more whatever the body (the one-pass parser has no token buffer).
 */
size_t pack_parser_retained(const struct pack_parser *pp);

/**
 * Where the maps and arrays of the value the last pack_json call on pp wrote sit, as byte offsets
 * into that call's sb->data: each range holds one container, header included, exactly as
 * written. In the order the containers open, so sorted by start, outer before inner; the first
 * PACK_MAX_EXTENTS of them only. *n is 0 when that call wrote nothing (not JSON) and after a
 * pack_body call that wrote a raw string. Valid until the next call with pp; the offsets stay
 * right if sb grows or moves, not if bytes are inserted before the value.
 *
 * This lets a reader of the message jump over containers it does not need (prune_unpack_known)
 * instead of walking them: on the GitHub push, the condition's walk of the body was 10.7k
 * instructions a request.
 */
const struct byte_range *pack_extents(const struct pack_parser *pp, size_t *n);

/**
 * Appends Kestra's `trigger.body` value for `len` bytes of body text to `sb` (len > 0; an empty
 * body is "absent" and is the caller's case). If the whole text, ignoring trailing text after the
 * first complete value as Jackson does, is a JSON object or array, its msgpack form is written:
 * integers that fit 64 bits as msgpack integers, every other number as float64, strings unescaped,
 * key order and duplicate keys as sent, nulls kept. Otherwise the raw text is written as a str.
 * Never fails; returns what it wrote.
 *
 * Details, as Kestra 0.20 / 1.x with Jackson defaults behave:
 * - Only a text whose first non-whitespace byte is '{' or '[' can be JSON. Scalars at the top
 *   level ("x", 42, true, null), empty and whitespace-only texts stay raw strings. Whitespace is
 *   JSON's four characters; a UTF-8 byte order mark is not skipped.
 * - `{"a":1} x`, `[1,2] x` and `{"a":1}{"b":2}` give the first value; a truncated or otherwise
 *   invalid first value (`{"a":1`) leaves the whole text a raw string.
 * - Duplicate keys are all kept, in order, in the msgpack map. Jackson keeps the last one, so a
 *   reader that builds a dictionary must let later keys overwrite earlier ones.
 * - Integers from -2^63 to 2^64-1 become msgpack ints (`-0` is 0); any number with a fraction
 *   or an exponent, and any larger integer, becomes a float64 (1e400 is +inf, as in Java).
 * - \uXXXX escapes are decoded, surrogate pairs included; a lone surrogate becomes U+FFFD.
 *   Raw control characters inside strings make the text not JSON. Invalid UTF-8 is first
 *   replaced by U+FFFD over the whole text, then the text is parsed, as Kestra decodes the body
 *   into a Java String before Jackson reads it: {"a":"\xff"} is the object {"a":"\ufffd"}.
 * - Limits: PACK_MAX_DEPTH, PACK_MAX_NUMBER_LEN, and texts over INT_MAX bytes are not JSON.
 *
 * The text is borrowed and need not be NUL-terminated. Aborts, like xmalloc, only when `sb`
 * cannot grow (out of memory).
 */
enum pack_body_kind pack_body(struct pack_parser *pp, const char *text, size_t len,
                              msgpack_sbuffer *sb);

/**
 * Tries only the JSON part of pack_body on the bytes as they are (invalid UTF-8 makes it fail):
 * on success appends the value and returns true; on failure leaves `sb` exactly as it was (same
 * size and contents) and returns false. Either way `sb` may have grown its allocation: the value
 * is written in place, in one pass over the text, keeping room for the rest of the text plus a
 * few hundred bytes ahead of it, so JSON whose msgpack form is no longer than its text (nearly
 * all of it) needs no more than `len` plus that slack; number-heavy JSON grows it by doubling.
 */
bool pack_json(struct pack_parser *pp, const char *text, size_t len, msgpack_sbuffer *sb);

/**
 * Packs bytes as a msgpack str, replacing each invalid UTF-8 sequence with U+FFFD (what a Java
 * String decoder does), so every consumer can decode it as text. "Invalid sequence" means a
 * maximal subpart in Unicode's sense (chapter 3, "U+FFFD substitution of maximal subparts"): a
 * truncated sequence such as E2 82 becomes one U+FFFD, a byte that cannot start or continue a
 * sequence (80, C0, F5, ...) becomes one U+FFFD each. NUL bytes and control characters are kept.
 * `s` may be NULL when len is 0. Aborts, like xmalloc, when the packer's write callback fails
 * (an sbuffer's fails only when out of memory).
 */
void pack_text(msgpack_packer *pk, const char *s, size_t len);

#endif
