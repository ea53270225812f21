/*
 * reqcheck.h: strict HTTP/1.x framing check of one connection's byte stream, ahead of evhttp.
 *
 * libevent 2.1's evhttp parses leniently: it takes `Content-Length : 2`, `Content-Length: +2`,
 * `Transfer-Encoding: gzip, chunked` (as "no body"), chunked framing in HTTP/1.0, header names
 * with spaces, and it answers unparsable request lines with an `HTTP/0.0` status line. Where
 * its reading of a message differs from a client's or a proxy's, bytes of one request are run
 * as another (request smuggling). reqcheck runs every byte through Node.js's http_parser (strict
 * build) first, adds the rules on which evhttp and http_parser would read a message differently,
 * and the bridge's own limits (414, 431), so evhttp only ever sees messages both read the same.
 *
 * Pure: no I/O, no libevent. conn.c feeds it the bytes of each read and acts on the result.
 */
#ifndef BRIDGE_REQCHECK_H
#define BRIDGE_REQCHECK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct reqcheck_limits {
    size_t max_uri_bytes;    /* request-target; past it 414 */
    size_t max_header_bytes; /* all header lines together; past it 431 */
    size_t max_headers;      /* header lines; past it 431 */
};

/** Where the stream is: between messages, inside a head, inside a body. */
enum reqcheck_phase { RC_IDLE, RC_HEAD, RC_BODY };

/** The verdict on the stream so far. status 0: every byte fed is a well-framed HTTP stream. */
struct reqcheck_verdict {
    int status;             /* 400, 405, 414, 431, 501, 505; 0 when fine */
    const char *reason;     /* HTTP reason phrase (static) */
    const char *message;    /* JSON "message" text (static) */
    uint64_t bad_msg_start; /* stream offset of the first byte of the message at fault */
};

struct reqcheck;

/** limits is copied. */
struct reqcheck *reqcheck_new(const struct reqcheck_limits *limits);
void reqcheck_free(struct reqcheck *rc);

/**
 * Feeds the next n bytes of the stream. Returns 0 while the stream is fine, -1 once it is not
 * (then reqcheck_verdict() says why, and later calls return -1 at once). After an upgrade
 * request (Upgrade + Connection: upgrade) the rest is not HTTP: it is taken as is and
 * reqcheck_close_after() turns true.
 */
int reqcheck_feed(struct reqcheck *rc, const char *p, size_t n);

const struct reqcheck_verdict *reqcheck_verdict(const struct reqcheck *rc);

enum reqcheck_phase reqcheck_phase(const struct reqcheck *rc);

/** Messages begun / heads completed / messages completed since the start of the stream. */
uint64_t reqcheck_begun(const struct reqcheck *rc);
uint64_t reqcheck_heads(const struct reqcheck *rc);
uint64_t reqcheck_completed(const struct reqcheck *rc);

/** Bytes fed so far (the stream offset of the next byte). */
uint64_t reqcheck_offset(const struct reqcheck *rc);

/**
 * Bytes of the current message's body still to come, when its head gave a Content-Length and
 * was fine; 0 otherwise (between messages, in a head, a chunked body, a failed stream).
 */
uint64_t reqcheck_body_left(const struct reqcheck *rc);

/** True when the connection must close after the answers owed: the stream stopped being HTTP. */
bool reqcheck_close_after(const struct reqcheck *rc);

#endif
