/*
 * pack_number.c: JSON number literals → msgpack, for what pack.c's inline integer path leaves:
 * fractions, exponents, integers too long for it, and bad syntax. Integers from -2^63 to 2^64-1
 * stay integers, every other number is a float64 (pack.h). No I/O, no JSON structure.
 */
#include "pack.h"

#include <locale.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pack_int.h"

static char *put_double(char *o, double d)
{
    uint64_t bits;
    memcpy(&bits, &d, sizeof(bits));
    *o = (char)0xcb;
    return put_be(o + 1, bits, 8);
}

static size_t digits(const char *s, size_t i, size_t n)
{
    size_t start = i;
    while (i < n && s[i] >= '0' && s[i] <= '9') {
        i++;
    }
    return i - start;
}

/* True when s[0, n) is a JSON number; *is_int says whether it has neither fraction nor exponent. */
static bool number_syntax(const char *s, size_t n, bool *is_int)
{
    size_t i = s[0] == '-' ? 1 : 0;
    size_t d = digits(s, i, n);
    if (d == 0 || (d > 1 && s[i] == '0')) {
        return false;
    }
    i += d;
    *is_int = true;
    if (i < n && s[i] == '.') {
        d = digits(s, i + 1, n);
        if (d == 0) {
            return false;
        }
        i += 1 + d;
        *is_int = false;
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        i += i < n && (s[i] == '+' || s[i] == '-');
        d = digits(s, i, n);
        if (d == 0) {
            return false;
        }
        i += d;
        *is_int = false;
    }
    return i == n;
}

/* Writes an integer literal at o; NULL when it does not fit 64 bits (then it is a float64). */
static char *put_int_text(char *o, const char *s, size_t n)
{
    bool neg = s[0] == '-';
    uint64_t v = 0;
    for (size_t i = neg; i < n; i++) {
        unsigned int d = (unsigned int)(s[i] - '0');
        if (v > (UINT64_MAX - d) / 10) {
            return NULL;
        }
        v = v * 10 + d;
    }
    if (!neg) {
        return put_uint(o, v);
    }
    if (v <= INT64_MAX) {
        return put_int(o, -(int64_t)v);
    }
    return v == (uint64_t)INT64_MAX + 1 ? put_int(o, INT64_MIN) : NULL;
}

/* Writes the number s[0, n) at o; returns the end, or NULL if it is not a JSON number. */
char *pack_put_number_text(char *o, const char *s, size_t n, locale_t loc)
{
    bool is_int;
    if (n > PACK_MAX_NUMBER_LEN || !number_syntax(s, n, &is_int)) {
        return NULL;
    }
    char *end = is_int ? put_int_text(o, s, n) : NULL;
    if (end) {
        return end;
    }
    /*
     * strtod needs a terminated string (the syntax check above leaves it nothing to reject)
     * and reads the decimal point of the thread's locale, so it runs under the C locale
     * (uselocale is POSIX; strtod_l would need _GNU_SOURCE).
     */
    char buf[PACK_MAX_NUMBER_LEN + 1];
    memcpy(buf, s, n);
    buf[n] = '\0';
    locale_t prev = uselocale(loc);
    double d = strtod(buf, NULL);
    uselocale(prev);
    return put_double(o, d);
}
