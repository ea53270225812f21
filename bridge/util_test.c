/*
 * util_test.c: percent-decoding, JSON string escaping, constant-time compare, time stamps.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <regex.h>
#include <string.h>

#include "util.h"

static void decode_case(const char *in, bool plus, const char *want, long want_len)
{
    char out[256];
    long n = util_percent_decode(strv_of(in), out, plus);
    assert_int_equal(n, want_len);
    if (want) {
        assert_memory_equal(out, want, (size_t)want_len);
    }
}

static void percent_decode(void **state)
{
    (void)state;
    decode_case("abc", false, "abc", 3);
    decode_case("a%20b", false, "a b", 3);
    decode_case("a+b", false, "a+b", 3);
    decode_case("a+b", true, "a b", 3);
    decode_case("%2B", true, "+", 1);
    decode_case("%2f%2F", false, "//", 2);
    decode_case("%00x", false, "\0x", 2);
    decode_case("%", false, NULL, -1);
    decode_case("%4", false, NULL, -1);
    decode_case("ab%", false, NULL, -1);
    decode_case("%zz", false, NULL, -1);
    decode_case("%4g", false, NULL, -1);
    decode_case("", false, "", 0);
}

static void json_escape(void **state)
{
    (void)state;
    struct sbuf b;
    sbuf_init(&b);
    sbuf_append_json_str(&b, "a\"b\\c\n\x01", 7);
    assert_string_equal(b.data, "\"a\\\"b\\\\c\\u000a\\u0001\"");
    sbuf_reset(&b);
    sbuf_append_json_str(&b, "h\xc3\xa9llo", 6);
    assert_string_equal(b.data, "\"h\xc3\xa9llo\"");
    sbuf_reset(&b);
    /* A lone continuation byte and an overlong NUL are not UTF-8. */
    sbuf_append_json_str(&b, "x\x80y\xc0\x80", 5);
    assert_string_equal(b.data, "\"x\\ufffdy\\ufffd\\ufffd\"");
    sbuf_reset(&b);
    /* Plain runs around escapes, DEL kept as it is, an escape last, and nothing at all. */
    sbuf_append_json_str(&b, "run one\x7f\"run two\\", 17);
    sbuf_append_json_str(&b, "", 0);
    sbuf_append_json_str(&b, "\t", 1);
    assert_string_equal(b.data, "\"run one\x7f\\\"run two\\\\\"\"\"\"\\u0009\"");
    sbuf_deinit(&b);
}

static void utf8_lengths(void **state)
{
    (void)state;
    assert_int_equal(util_utf8_seq_len((const unsigned char *)"a", 1), 1);
    assert_int_equal(util_utf8_seq_len((const unsigned char *)"\xc3\xa9", 2), 2);
    assert_int_equal(util_utf8_seq_len((const unsigned char *)"\xe2\x82\xac", 3), 3);
    assert_int_equal(util_utf8_seq_len((const unsigned char *)"\xf0\x9f\x98\x80", 4), 4);
    assert_int_equal(util_utf8_seq_len((const unsigned char *)"\xed\xa0\x80", 3), 0);
    assert_int_equal(util_utf8_seq_len((const unsigned char *)"\xe2\x82", 2), 0);
    assert_int_equal(util_utf8_seq_len((const unsigned char *)"\xf4\x90\x80\x80", 4), 0);
}

static void ct_equal(void **state)
{
    (void)state;
    assert_true(util_ct_equal("abcd", "abcd", 4));
    assert_false(util_ct_equal("abcd", "abce", 4));
    assert_true(util_ct_equal("", "", 0));
}

static void rfc3339(void **state)
{
    (void)state;
    char ts[25];
    regex_t re;
    util_rfc3339_now(ts);
    assert_int_equal(regcomp(&re, "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z$",
                             REG_EXTENDED | REG_NOSUB),
                     0);
    assert_int_equal(regexec(&re, ts, 0, NULL, 0), 0);
    regfree(&re);
}

static void http_date_format(void **state)
{
    (void)state;
    regex_t re;
    assert_int_equal(regcomp(&re,
                             "^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), [0-3][0-9] "
                             "(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) "
                             "[0-9]{4} [0-2][0-9]:[0-5][0-9]:[0-6][0-9] GMT$",
                             REG_EXTENDED | REG_NOSUB),
                     0);
    const char *d = util_http_date();
    assert_int_equal(strlen(d), 29);
    assert_int_equal(regexec(&re, d, 0, NULL, 0), 0);
    regfree(&re);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(percent_decode), cmocka_unit_test(json_escape),
        cmocka_unit_test(utf8_lengths),   cmocka_unit_test(ct_equal),
        cmocka_unit_test(rfc3339),        cmocka_unit_test(http_date_format),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
