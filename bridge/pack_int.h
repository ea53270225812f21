/*
 * pack_int.h: what pack.c, pack_number.c and pack_text.c share: the out-of-memory check, the
 * UTF-8 lead-byte rule, the msgpack integer writers and the functions pack.c calls in the other
 * two files. Not an API: only pack*.c include it. The helpers are static inline because the
 * parser calls them per value or per byte, where a call across files would cost what it saves.
 */
#ifndef BRIDGE_PACK_INT_H
#define BRIDGE_PACK_INT_H

#include <locale.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* ==== Checks ==== */

/*
 * An sbuffer's write callback fails only when realloc does. Out of memory aborts everywhere
 * else in the bridge (xmalloc), and a half-written str would corrupt the message, so it does
 * here too.
 */
static inline void put(int rc)
{
    if (rc != 0) {
        fprintf(stderr, "webhook-bridge: msgpack write failed (out of memory)\n");
        abort();
    }
}

/* ==== Bytes ==== */

#define ONES UINT64_C(0x0101010101010101)
#define HIGHS UINT64_C(0x8080808080808080)

/*
 * The length of the UTF-8 sequence lead byte c starts, 0 if it starts none, and the range its
 * second byte must be in (Unicode table 3-7: no overlong forms, surrogates, or past U+10FFFF).
 */
static inline size_t utf8_lead(unsigned char c, unsigned char *lo, unsigned char *hi)
{
    *lo = 0x80;
    *hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) {
        return 2;
    }
    if (c >= 0xE0 && c <= 0xEF) {
        *lo = c == 0xE0 ? 0xA0 : 0x80;
        *hi = c == 0xED ? 0x9F : 0xBF;
        return 3;
    }
    if (c >= 0xF0 && c <= 0xF4) {
        *lo = c == 0xF0 ? 0x90 : 0x80;
        *hi = c == 0xF4 ? 0x8F : 0xBF;
        return 4;
    }
    return 0;
}

/* ==== msgpack writers ==== */

/* Writes v big-endian in `bytes` bytes at o; returns the end. */
static inline char *put_be(char *o, uint64_t v, int bytes)
{
    for (int i = bytes - 1; i >= 0; i--) {
        o[i] = (char)(v & 0xFF);
        v >>= 8;
    }
    return o + bytes;
}

/* The smallest msgpack form of a non-negative integer, as msgpack_pack_uint64/int64 choose it. */
static inline char *put_uint(char *o, uint64_t v)
{
    if (v < 128) {
        *o = (char)v;
        return o + 1;
    }
    if (v < 256) {
        o[0] = (char)0xcc;
        o[1] = (char)v;
        return o + 2;
    }
    if (v < 65536) {
        *o = (char)0xcd;
        return put_be(o + 1, v, 2);
    }
    if (v <= UINT32_MAX) {
        *o = (char)0xce;
        return put_be(o + 1, v, 4);
    }
    *o = (char)0xcf;
    return put_be(o + 1, v, 8);
}

/* The smallest msgpack form of an integer, as msgpack_pack_int64 chooses it. */
static inline char *put_int(char *o, int64_t v)
{
    if (v >= 0) {
        return put_uint(o, (uint64_t)v);
    }
    if (v >= -32) {
        *o = (char)(uint8_t)v;
        return o + 1;
    }
    if (v >= INT8_MIN) {
        o[0] = (char)0xd0;
        o[1] = (char)(uint8_t)v;
        return o + 2;
    }
    if (v >= INT16_MIN) {
        *o = (char)0xd1;
        return put_be(o + 1, (uint64_t)v, 2);
    }
    if (v >= INT32_MIN) {
        *o = (char)0xd2;
        return put_be(o + 1, (uint64_t)v, 4);
    }
    *o = (char)0xd3;
    return put_be(o + 1, (uint64_t)v, 8);
}

/* ==== Numbers (pack_number.c) ==== */

/**
 * Writes the number literal s[0, n) at o as msgpack: an integer when it has neither fraction nor
 * exponent and fits 64 bits, else a float64 read by strtod under `loc` (a C locale). Returns the
 * end, or NULL when s is not a JSON number or is longer than PACK_MAX_NUMBER_LEN. o has room for
 * 9 bytes; n >= 1. pack.c packs short integers itself and comes here for everything else.
 */
char *pack_put_number_text(char *o, const char *s, size_t n, locale_t loc);

/* ==== Raw text (pack_text.c) ==== */

/**
 * The length of s[0, n) once each maximal invalid UTF-8 subpart is U+FFFD (3 bytes); *nbad is
 * set to the number of such subparts (0: the text is valid UTF-8 and needs no copy).
 */
size_t pack_repair_len(const unsigned char *s, size_t n, size_t *nbad);

/**
 * Copies s[0, n) into out, which has room for pack_repair_len() bytes, with each maximal invalid
 * UTF-8 subpart replaced by U+FFFD.
 */
void pack_repair_copy(const unsigned char *s, size_t n, char *out);

#endif
