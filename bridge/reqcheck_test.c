/*
 * reqcheck_test.c: the framing check: well-formed streams pass in any split, each rule refuses
 * with its status, and the offset of the message at fault is exact (conn.c cuts the buffer there).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "reqcheck.h"

static const struct reqcheck_limits lim = {
    .max_uri_bytes = 64, .max_header_bytes = 256, .max_headers = 5};

/* Feeds s in pieces of step bytes; returns the status (0: fine). */
static int check_split(const char *s, size_t len, size_t step, uint64_t *bad_start,
                       uint64_t *completed)
{
    struct reqcheck *rc = reqcheck_new(&lim);
    int rv = 0;
    for (size_t i = 0; i < len && rv == 0; i += step) {
        size_t n = len - i < step ? len - i : step;
        rv = reqcheck_feed(rc, s + i, n);
    }
    int status = reqcheck_verdict(rc)->status;
    assert_true((rv == 0) == (status == 0));
    if (bad_start) {
        *bad_start = reqcheck_verdict(rc)->bad_msg_start;
    }
    if (completed) {
        *completed = reqcheck_completed(rc);
    }
    reqcheck_free(rc);
    return status;
}

/* The status, the same whether fed at once or byte by byte. */
static int check(const char *s)
{
    size_t len = strlen(s);
    int whole = check_split(s, len, len ? len : 1, NULL, NULL);
    int bytes = check_split(s, len, 1, NULL, NULL);
    assert_int_equal(whole, bytes);
    return whole;
}

static void good_streams(void **state)
{
    (void)state;
    assert_int_equal(check("POST /a HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}"), 0);
    assert_int_equal(check("GET /a?b=c HTTP/1.0\r\n\r\n"), 0);
    assert_int_equal(check("POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                           "2\r\n{}\r\n0\r\nX-Trailer: t;x\r\n\r\n"),
                     0);
    assert_int_equal(check("POST /a HTTP/1.1\r\nX-Ctl: a\x01b\x7f\r\n\r\n"), 0);
    assert_int_equal(check("POST /a HTTP/1.1\r\nTransfer-Encoding:  Chunked \r\n\r\n0\r\n\r\n"), 0);
    assert_int_equal(check("GET /a HTTP/1.1\nHost: x\n\n"), 0);
    assert_int_equal(check("POST http://h/a HTTP/1.1\r\nContent-Length: 0\r\n\r\n"), 0);
    assert_int_equal(check("HEAD /a HTTP/1.1\r\nContent-Length: 0\r\n\r\n"), 0);
}

static void phases_and_counts(void **state)
{
    (void)state;
    struct reqcheck *rc = reqcheck_new(&lim);
    assert_int_equal(reqcheck_phase(rc), RC_IDLE);
    const char *a = "POST /a HTTP/1.1\r\nContent-", *b = "Length: 4\r\n\r\n{}",
               *c = "{}GET /b HTTP/1.1\r\n\r\nGET /c";
    assert_int_equal(reqcheck_feed(rc, a, strlen(a)), 0);
    assert_int_equal(reqcheck_phase(rc), RC_HEAD);
    assert_int_equal(reqcheck_begun(rc), 1);
    assert_int_equal(reqcheck_feed(rc, b, strlen(b)), 0);
    assert_int_equal(reqcheck_phase(rc), RC_BODY);
    assert_int_equal(reqcheck_heads(rc), 1);
    assert_int_equal(reqcheck_feed(rc, c, strlen(c)), 0);
    assert_int_equal(reqcheck_completed(rc), 2);
    assert_int_equal(reqcheck_begun(rc), 3);
    assert_int_equal(reqcheck_phase(rc), RC_HEAD);
    assert_int_equal(reqcheck_offset(rc), strlen(a) + strlen(b) + strlen(c));
    reqcheck_free(rc);
}

/* What conn.c reads ahead of libevent: the body bytes a Content-Length still promises. */
static void body_left(void **state)
{
    (void)state;
    struct reqcheck *rc = reqcheck_new(&lim);
    const char *head = "POST /a HTTP/1.1\r\nContent-Length: 10\r\n";
    assert_int_equal(reqcheck_feed(rc, head, strlen(head)), 0);
    assert_int_equal(reqcheck_body_left(rc), 0); /* the head is not over yet */
    assert_int_equal(reqcheck_feed(rc, "\r\n{\"a", 5), 0);
    assert_int_equal(reqcheck_body_left(rc), 7);
    assert_int_equal(reqcheck_feed(rc, "\":12}", 6), 0);
    assert_int_equal(reqcheck_body_left(rc), 1);
    /* The body ends, the next head begins: nothing promised. */
    const char *rest = "}POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n{}";
    assert_int_equal(reqcheck_feed(rc, rest, strlen(rest)), 0);
    assert_int_equal(reqcheck_completed(rc), 1);
    assert_int_equal(reqcheck_phase(rc), RC_BODY);
    assert_int_equal(reqcheck_body_left(rc), 0); /* chunked: the total is unknown */
    reqcheck_free(rc);

    /*
     * Nor do trailers: a Transfer-Encoding line there clears http_parser's chunked flag and a
     * Content-Length line sets its length, but the body was chunked.
     */
    rc = reqcheck_new(&lim);
    const char *trailers = "POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n"
                           "0\r\nTransfer-Encoding: x\r\nContent-Length: 300\r\n";
    assert_int_equal(reqcheck_feed(rc, trailers, strlen(trailers)), 0);
    assert_int_equal(reqcheck_phase(rc), RC_BODY);
    assert_int_equal(reqcheck_body_left(rc), 0);
    assert_int_equal(reqcheck_feed(rc, "\r\n", 2), 0);
    assert_int_equal(reqcheck_completed(rc), 1);
    reqcheck_free(rc);

    /* A failed stream promises nothing, whatever its Content-Length said. */
    rc = reqcheck_new(&lim);
    const char *bad = "POST /a HTTP/1.1\r\nContent-Length: 10\r\nBad Name: x\r\n\r\n{}";
    assert_int_equal(reqcheck_feed(rc, bad, strlen(bad)), -1);
    assert_int_equal(reqcheck_body_left(rc), 0);
    reqcheck_free(rc);
}

static void framing_rules(void **state)
{
    (void)state;
    /* Header names: every tchar of RFC 9110 §5.6.2 is one, and nothing else. */
    assert_int_equal(check("GET /a HTTP/1.1\r\nX-!#$%&'*+-.^_`|~09az: 1\r\n\r\n"), 0);
    static const char *not_tchar[] = {"@", "(", "\"", "/", "[", "{", ";", "=", "?", "\x7f", "\x80"};
    for (size_t i = 0; i < sizeof(not_tchar) / sizeof(not_tchar[0]); i++) {
        char req[64];
        snprintf(req, sizeof(req), "GET /a HTTP/1.1\r\nX-%s: 1\r\n\r\n", not_tchar[i]);
        assert_int_equal(check(req), 400);
    }
    /* Content-Length forms evhttp would take. */
    assert_int_equal(check("POST /a HTTP/1.1\r\nContent-Length : 2\r\n\r\n{}"), 400);
    assert_int_equal(check("POST /a HTTP/1.1\r\nContent-Length: +2\r\n\r\n{}"), 400);
    assert_int_equal(check("POST /a HTTP/1.1\r\nContent-Length: 40\r\nContent-Length: 2\r\n\r\n"),
                     400);
    assert_int_equal(
        check("POST /a HTTP/1.1\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n"), 400);
    /* Transfer codings evhttp would read as "no body". */
    assert_int_equal(check("POST /a HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"), 501);
    assert_int_equal(check("POST /a HTTP/1.1\r\nTransfer-Encoding: identity\r\n\r\n"), 501);
    assert_int_equal(check("POST /a HTTP/1.1\r\nTransfer-Encoding: xchunked\r\n\r\n"), 501);
    assert_int_equal(check("POST /a HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n"), 400);
    assert_int_equal(check("POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n"
                           "Transfer-Encoding: chunked\r\n\r\n"),
                     501);
    assert_int_equal(check("POST /a HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"), 400);
    /* Bodies evhttp does not read at all. */
    assert_int_equal(check("HEAD /a HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}"), 400);
    assert_int_equal(check("TRACE /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"), 400);
    /* Chunk sizes. */
    assert_int_equal(check("POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"), 400);
    assert_int_equal(check("POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n-2\r\n"), 400);
    assert_int_equal(check("POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                           "1000000000000000000\r\n"),
                     413);
    /* evhttp cannot read a chunk extension: refused with a 400 that says so, in any split. */
    assert_int_equal(check("POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                           "2;ext=1\r\n{}\r\n0\r\n\r\n"),
                     400);
    assert_int_equal(check("POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                           "2\r\n{}\r\n0;last\r\n\r\n"),
                     400);
    /*
     * A header whose name only begins with "Transfer-Encoding" is an unknown header to evhttp,
     * which reads Content-Length's worth (or nothing); http_parser 2.9.4 took it for a
     * Transfer-Encoding and read on to the end of the stream, so the request after it went
     * unchecked. Both must read it the same way: the next request is checked, and refused here.
     */
    {
        uint64_t bad = 0, done = 0;
        const char *te_prefix[] = {
            "POST /a HTTP/1.1\r\nTransfer-Encodingx: y\r\nContent-Length: 2\r\n\r\n{}",
            "POST /a HTTP/1.1\r\nTransfer-Encodings: chunked\r\nContent-Length: 2\r\n\r\n{}",
            "GET /a HTTP/1.1\r\nTransfer-Encoding-Note: y\r\n\r\n",
        };
        for (size_t i = 0; i < sizeof(te_prefix) / sizeof(te_prefix[0]); i++) {
            char s[256];
            int n = snprintf(s, sizeof(s), "%sGET /b HTTP/1.1\r\n\r\n", te_prefix[i]);
            assert_int_equal(check(s), 0);
            assert_int_equal(check_split(s, (size_t)n, (size_t)n, NULL, &done), 0);
            assert_int_equal(done, 2);
            n = snprintf(s, sizeof(s), "%sGET /b HTTP/1.1\r\nContent-Length : 3\r\n\r\nabc",
                         te_prefix[i]);
            assert_int_equal(check_split(s, (size_t)n, (size_t)n, &bad, &done), 400);
            assert_int_equal(bad, strlen(te_prefix[i]));
            assert_int_equal(done, 1);
        }
    }
    /*
     * "chunked" with a tab beside it: evhttp trims the tab and reads chunks; http_parser 2.9.4
     * did not see chunked and read on to the end of the stream, and with a Content-Length it
     * raised no conflict. It must read chunks too, and refuse the pair.
     */
    {
        uint64_t bad = 0, done = 0;
        const char *tab = "POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\t\r\n\r\n2\r\n{}\r\n0\r\n\r\n";
        char s[256];
        int n = snprintf(s, sizeof(s), "%sGET /b HTTP/1.1\r\n\r\n", tab);
        assert_int_equal(check(s), 0);
        assert_int_equal(check_split(s, (size_t)n, (size_t)n, NULL, &done), 0);
        assert_int_equal(done, 2);
        n = snprintf(s, sizeof(s), "%sGET /b HTTP/1.1\r\nContent-Length : 3\r\n\r\nabc", tab);
        assert_int_equal(check_split(s, (size_t)n, (size_t)n, &bad, &done), 400);
        assert_int_equal(bad, strlen(tab));
        assert_int_equal(
            check("POST /a HTTP/1.1\r\nTransfer-Encoding:\tchunked\r\n\r\n0\r\n\r\n"), 0);
        assert_int_equal(check("POST /a HTTP/1.1\r\nContent-Length: 2\r\n"
                               "Transfer-Encoding: chunked\t\r\n\r\n"),
                         400);
        assert_int_equal(check("POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\t\r\n"
                               "Content-Length: 2\r\n\r\n"),
                         400);
    }
    /* A length past 64 bits is too large, not malformed. */
    assert_int_equal(check("POST /a HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n"),
                     413);
}

static void grammar_rules(void **state)
{
    (void)state;
    assert_int_equal(check("GARBAGE\r\n\r\n"), 400);
    assert_int_equal(check("\r\nGET /a HTTP/1.1\r\n\r\n"), 400);
    assert_int_equal(check("GET  /a HTTP/1.1\r\n\r\n"), 400);
    assert_int_equal(check("GET /a  HTTP/1.1\r\n\r\n"), 400);
    assert_int_equal(check("GET /a HTTP/1.1 \r\n\r\n"), 400);
    assert_int_equal(check_split("post /a HTTP/1.1\r\n\r\n", 20, 20, NULL, NULL), 400);
    assert_int_equal(check("GET /a\r\n\r\n"), 400);
    assert_int_equal(check("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), 400);
    {
        uint64_t done = 1;
        assert_int_equal(check_split("GET  /a HTTP/1.1\r\n\r\n", 21, 21, NULL, &done), 400);
        assert_int_equal(done, 0); /* a refused message never counts as complete */
    }
    assert_int_equal(check("POST /a extra HTTP/1.1\r\n\r\n"), 400);
    assert_int_equal(check("POST /a\0b HTTP/1.1\r\n\r\n"), 0); /* strlen stops at the NUL */
    assert_int_equal(check_split("POST /a\0b HTTP/1.1\r\n\r\n", 22, 22, NULL, NULL), 400);
    assert_int_equal(check_split("POST /a HTTP/1.1\r\nX: a\0b\r\n\r\n", 27, 27, NULL, NULL), 400);
    assert_int_equal(check("POST /a HTTP/1.1\r\nX-Sp : v\r\n\r\n"), 400);
    assert_int_equal(check("POST /a HTTP/1.1\r\n: v\r\n\r\n"), 400);
    assert_int_equal(check("POST /a HTTP/1.1\r\nX-A: a\r\n b\r\n\r\n"), 400);
    assert_int_equal(check("POST /a HTTP/1.1\r\nX: a\rb\r\n\r\n"), 400);
    assert_int_equal(check("POST /a HTTP/2.0\r\n\r\n"), 505);
    assert_int_equal(check("CONNECT 127.0.0.1:443 HTTP/1.1\r\n\r\n"), 405);
}

static void limits(void **state)
{
    (void)state;
    char uri[200];
    memset(uri, 'a', sizeof(uri));
    char req[400];
    snprintf(req, sizeof(req), "GET /%.*s HTTP/1.1\r\n\r\n", 100, uri);
    assert_int_equal(check(req), 414);
    snprintf(req, sizeof(req), "GET / HTTP/1.1\r\nX: %.*s\r\n\r\n", 300, uri);
    assert_int_equal(check("GET / HTTP/1.1\r\nA: 1\r\nB: 1\r\nC: 1\r\nD: 1\r\nE: 1\r\n\r\n"), 0);
    assert_int_equal(
        check("GET / HTTP/1.1\r\nA: 1\r\nB: 1\r\nC: 1\r\nD: 1\r\nE: 1\r\nF: 1\r\n\r\n"), 431);
    char big[600];
    snprintf(big, sizeof(big), "GET / HTTP/1.1\r\nX: %.*s%.*s\r\n\r\n", 150, uri, 150, uri);
    assert_int_equal(check(big), 431);
}

static void upgrade_stops_checking(void **state)
{
    (void)state;
    const char *s =
        "GET /a HTTP/1.1\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n\x01\x02 not http";
    struct reqcheck *rc = reqcheck_new(&lim);
    assert_int_equal(reqcheck_feed(rc, s, strlen(s)), 0);
    assert_true(reqcheck_close_after(rc));
    assert_int_equal(reqcheck_completed(rc), 1);
    assert_int_equal(reqcheck_feed(rc, "\xff\xff", 2), 0);
    reqcheck_free(rc);
}

static void offset_of_the_bad_message(void **state)
{
    (void)state;
    const char *s = "POST /a HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}"
                    "GET /b HTTP/1.1\r\n\r\n"
                    "GARBAGE\r\n\r\n";
    size_t len = strlen(s);
    for (size_t step = 1; step <= len; step++) {
        uint64_t bad = 0, done = 0;
        assert_int_equal(check_split(s, len, step, &bad, &done), 400);
        assert_int_equal(done, 2);
        assert_int_equal(bad, strlen("POST /a HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}"
                                     "GET /b HTTP/1.1\r\n\r\n"));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(good_streams),
        cmocka_unit_test(phases_and_counts),
        cmocka_unit_test(body_left),
        cmocka_unit_test(framing_rules),
        cmocka_unit_test(grammar_rules),
        cmocka_unit_test(limits),
        cmocka_unit_test(upgrade_stops_checking),
        cmocka_unit_test(offset_of_the_bad_message),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
