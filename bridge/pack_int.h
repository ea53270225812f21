/*
 * pack_int.h: what pack.c and pack_text.c share: the out-of-memory check, the UTF-8 lead-byte
 * rule and the repair pack_body calls in pack_text.c. Not an API: only pack*.c include it. The
 * helpers are static inline because the parser calls them per byte, where a call across files
 * would cost what it saves.
 */
#ifndef BRIDGE_PACK_INT_H
#define BRIDGE_PACK_INT_H

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
