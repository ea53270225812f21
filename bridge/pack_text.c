/*
 * pack_text.c: raw text → msgpack str with each invalid UTF-8 sequence replaced by U+FFFD
 * (pack_text), and the same repair for pack_body's text that is not valid UTF-8. No JSON here
 * (pack.c), no I/O.
 */
#include "pack.h"

#include <stdint.h>
#include <string.h>

#include "pack_int.h"
#include "util.h"

/* Length of the leading run of ASCII bytes, eight at a time. */
static size_t ascii_run(const unsigned char *s, size_t n)
{
    size_t i = 0;
    uint64_t x;
    while (i + 8 <= n) {
        memcpy(&x, s + i, 8);
        if (x & HIGHS) {
            break;
        }
        i += 8;
    }
    while (i < n && s[i] < 0x80) {
        i++;
    }
    return i;
}

/*
 * s does not start a valid UTF-8 sequence: returns the length of its maximal subpart, the
 * longest prefix that could still have begun one (Unicode ch. 3), so that it becomes one U+FFFD.
 * Java's decoder replaces the same spans for all but a few overlong and surrogate forms.
 */
static size_t subpart_len(const unsigned char *s, size_t n)
{
    unsigned char lo, hi;
    size_t need = utf8_lead(s[0], &lo, &hi);
    if (need == 0) {
        return 1;
    }
    size_t i = 1;
    if (i < n && s[i] >= lo && s[i] <= hi) {
        i++;
        while (i < need && i < n && (s[i] & 0xC0) == 0x80) {
            i++;
        }
    }
    return i;
}

/* The length of s once each maximal invalid UTF-8 subpart is U+FFFD; *nbad counts them. */
size_t pack_repair_len(const unsigned char *s, size_t n, size_t *nbad)
{
    size_t out = 0, run = 0, i = 0;
    *nbad = 0;
    while ((i += ascii_run(s + i, n - i)) < n) {
        size_t k = util_utf8_seq_len(s + i, n - i);
        if (k > 0) {
            i += k;
            continue;
        }
        k = subpart_len(s + i, n - i);
        out += i - run + 3;
        (*nbad)++;
        i += k;
        run = i;
    }
    return out + n - run;
}

/*
 * Copies s into out (pack_repair_len() bytes) with each maximal invalid subpart replaced by
 * U+FFFD.
 */
void pack_repair_copy(const unsigned char *s, size_t n, char *out)
{
    size_t o = 0, run = 0, i = 0;
    while ((i += ascii_run(s + i, n - i)) < n) {
        size_t k = util_utf8_seq_len(s + i, n - i);
        if (k > 0) {
            i += k;
            continue;
        }
        k = subpart_len(s + i, n - i);
        memcpy(out + o, s + run, i - run);
        o += i - run;
        memcpy(out + o, "\xEF\xBF\xBD", 3);
        o += 3;
        i += k;
        run = i;
    }
    memcpy(out + o, s + run, n - run);
}

void pack_text(msgpack_packer *pk, const char *s, size_t len)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t nbad;
    size_t out = len ? pack_repair_len(u, len, &nbad) : 0;
    if (len == 0 || nbad == 0) {
        put(msgpack_pack_str_with_body(pk, s, len));
        return;
    }
    /* Rare (invalid text): one copy with the replacements, then the str. */
    char *fixed = xmalloc(out);
    pack_repair_copy(u, len, fixed);
    put(msgpack_pack_str_with_body(pk, fixed, out));
    xfree(fixed);
}
