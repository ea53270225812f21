/*
 * reqcheck.c: the strict framing check ahead of evhttp (see reqcheck.h). http_parser does the
 * HTTP/1.x grammar; this file adds the rules where evhttp 2.1.12 would read the same bytes
 * differently, and the bridge's URI and header limits.
 */
#include "reqcheck.h"

#include <string.h>
#include <strings.h>

#include <http_parser.h>

#include "util.h"

enum hdr_kind { H_OTHER, H_TE };

/* Where the request line is: the spacing rules http_parser (built lenient) lets through. */
enum rl_state { RL_START, RL_METHOD, RL_SP1, RL_TARGET, RL_SP2, RL_VERSION, RL_DONE };

struct reqcheck {
    http_parser p;
    struct reqcheck_limits lim;
    struct reqcheck_verdict v;
    uint64_t off;       /* bytes fed so far */
    uint64_t msg_start; /* stream offset where the current (or next) message starts */
    uint64_t begun, heads, completed;
    enum reqcheck_phase phase;
    bool failed;
    bool upgraded; /* the stream left HTTP: bytes are taken unchecked */
    /* The feed in progress, for callbacks that look at the byte before theirs. */
    const char *chunk;
    char prev_last; /* last byte of the previous feed */
    char carry[64]; /* the last bytes fed, oldest first (carry_len of them) */
    size_t carry_len;
    enum rl_state rl;
    bool chunk_line; /* paused at the end of a chunk-size line */
    bool msg_done;   /* paused at the end of a message */
    /* The message in progress. */
    size_t uri_bytes, header_bytes, nheaders;
    bool sized;    /* its head gave a Content-Length body (not chunked): reqcheck_body_left */
    bool in_value; /* the last header callback was a value */
    bool named;    /* a header name was seen since the last value */
    char name[20]; /* the current header name, lowercased, while it fits */
    size_t name_len;
    enum hdr_kind kind;
    int te_count;
    char te[24]; /* the Transfer-Encoding value, while it fits */
    size_t te_len;
};

/* ==== Verdicts ==== */

static int fail(struct reqcheck *rc, int status, const char *reason, const char *message)
{
    if (!rc->v.status) {
        rc->v.status = status;
        rc->v.reason = reason;
        rc->v.message = message;
        rc->v.bad_msg_start = rc->msg_start;
    }
    return -1;
}

static int bad_request(struct reqcheck *rc, const char *message)
{
    return fail(rc, 400, "Bad Request", message);
}

/* What http_parser's own errors mean to the sender. */
static void fail_parser(struct reqcheck *rc, enum http_errno e, bool overflow)
{
    switch (e) {
    case HPE_HEADER_OVERFLOW:
        fail(rc, 431, "Request Header Fields Too Large",
             "Request Header Fields Too Large: the request headers are larger than "
             "limits.max_header_bytes");
        break;
    case HPE_INVALID_CONTENT_LENGTH:
        if (overflow) {
            fail(rc, 413, "Payload Too Large",
                 "Payload Too Large: the body length is larger than limits.max_body_bytes");
            break;
        }
        /* fall through */
    case HPE_UNEXPECTED_CONTENT_LENGTH:
        bad_request(rc,
                    "Bad Request: malformed HTTP request: invalid or conflicting Content-Length");
        break;
    case HPE_INVALID_TRANSFER_ENCODING:
        fail(rc, 501, "Not Implemented",
             "Not Implemented: only Transfer-Encoding: chunked is supported");
        break;
    case HPE_INVALID_CHUNK_SIZE:
        bad_request(rc, "Bad Request: malformed HTTP request: bad chunk size in a chunked body");
        break;
    case HPE_INVALID_HEADER_TOKEN:
        bad_request(
            rc, "Bad Request: malformed HTTP request: invalid character in a header name or value");
        break;
    case HPE_INVALID_URL:
        bad_request(rc,
                    "Bad Request: malformed HTTP request: invalid character in the request target");
        break;
    case HPE_INVALID_METHOD:
        /* An unknown method and a line of garbage look the same until the line ends, and the
         * verdict must not depend on how the bytes were split: both are a 400. */
        bad_request(rc, "Bad Request: malformed HTTP request: unknown or malformed method "
                        "(methods are case-sensitive; webhooks accept GET, POST and PUT)");
        break;
    case HPE_INVALID_VERSION:
        bad_request(rc,
                    "Bad Request: malformed HTTP request: bad HTTP version in the request line");
        break;
    default:
        bad_request(rc, "Bad Request: malformed HTTP request");
        break;
    }
}

/* ==== http_parser callbacks ==== */

static int on_message_begin(http_parser *p)
{
    struct reqcheck *rc = p->data;
    rc->phase = RC_HEAD;
    rc->begun++;
    rc->uri_bytes = rc->header_bytes = rc->nheaders = 0;
    rc->in_value = false;
    rc->named = false;
    rc->name_len = 0;
    rc->kind = H_OTHER;
    rc->te_count = 0;
    rc->te_len = 0;
    return 0;
}

static int on_url(http_parser *p, const char *at, size_t n)
{
    struct reqcheck *rc = p->data;
    (void)at;
    rc->uri_bytes += n;
    if (rc->uri_bytes > rc->lim.max_uri_bytes) {
        return fail(rc, 414, "URI Too Long",
                    "URI Too Long: the request target is longer than limits.max_uri_bytes");
    }
    return 0;
}

static int count_header_bytes(struct reqcheck *rc, size_t n)
{
    rc->header_bytes += n;
    if (rc->header_bytes > rc->lim.max_header_bytes || rc->nheaders > rc->lim.max_headers) {
        return fail(rc, 431, "Request Header Fields Too Large",
                    "Request Header Fields Too Large: the request headers are larger than "
                    "limits.max_header_bytes or more than limits.max_headers");
    }
    return 0;
}

/* RFC 9110 §5.6.2 tchar. Debian's http_parser is built lenient and lets a space through, so
 * `Content-Length : 2` would reach evhttp as an unknown header named "Content-Length ". */
static bool is_tchar(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) {
        return true;
    }
    /* A switch, not strchr: '-' is in most header names, and this runs for every byte. */
    switch (c) {
    /* clang-format off */
    case '!': case '#': case '$': case '%': case '&': case '\'': case '*': case '+':
    case '-': case '.': case '^': case '_': case '`': case '|': case '~':
        /* clang-format on */
        return true;
    default:
        return false;
    }
}

static int on_header_field(http_parser *p, const char *at, size_t n)
{
    struct reqcheck *rc = p->data;
    if (rc->in_value || rc->nheaders == 0) {
        rc->nheaders++;
        rc->in_value = false;
        rc->name_len = 0;
        rc->header_bytes += 4; /* ": " and CRLF */
    }
    rc->named = true;
    for (size_t i = 0; i < n; i++) {
        if (!is_tchar((unsigned char)at[i])) {
            return bad_request(
                rc, "Bad Request: malformed HTTP request: invalid character in a header name");
        }
    }
    for (size_t i = 0; i < n && rc->name_len < sizeof(rc->name); i++) {
        char c = at[i];
        rc->name[rc->name_len++] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
    }
    return count_header_bytes(rc, n);
}

static void name_done(struct reqcheck *rc)
{
    rc->kind = H_OTHER;
    if (rc->name_len == 17 && memcmp(rc->name, "transfer-encoding", 17) == 0) {
        rc->kind = H_TE;
        rc->te_count++;
        rc->te_len = 0;
    }
}

static int on_header_value(http_parser *p, const char *at, size_t n)
{
    struct reqcheck *rc = p->data;
    char before = at > rc->chunk ? at[-1] : rc->prev_last;
    if (!rc->in_value) {
        if (!rc->named) {
            return bad_request(rc,
                               "Bad Request: malformed HTTP request: a header line without a name");
        }
        rc->in_value = true;
        rc->named = false;
        name_done(rc);
    } else if (before == '\n') {
        /* A value piece right after a line end is a continuation line (obs-fold). evhttp
         * joins it to the previous header; RFC 9112 §5.2 lets a server refuse it instead. */
        return bad_request(
            rc, "Bad Request: malformed HTTP request: obsolete line folding in a header");
    }
    /* The parser runs with lenient_http_headers (other control characters are kept, RFC 9110
     * §5.5); NUL and a bare CR are still refused. */
    if (memchr(at, '\0', n) || memchr(at, '\r', n)) {
        return bad_request(rc,
                           "Bad Request: malformed HTTP request: NUL or bare CR in a header value");
    }
    if (rc->kind == H_TE) {
        for (size_t i = 0; i < n && rc->te_len < sizeof(rc->te); i++) {
            rc->te[rc->te_len++] = at[i];
        }
    }
    return count_header_bytes(rc, n);
}

/* The value without the whitespace around it is exactly "chunked" (any case). */
static bool te_is_chunked(const struct reqcheck *rc)
{
    size_t a = 0, b = rc->te_len;
    while (a < b && (rc->te[a] == ' ' || rc->te[a] == '\t')) {
        a++;
    }
    while (b > a && (rc->te[b - 1] == ' ' || rc->te[b - 1] == '\t')) {
        b--;
    }
    return b - a == 7 && strncasecmp(rc->te + a, "chunked", 7) == 0 && rc->te_len < sizeof(rc->te);
}

/* "chunked" is one of the codings listed, but not the last one (RFC 9112 §6.3: a 400). */
static bool te_chunked_not_last(const struct reqcheck *rc)
{
    size_t i = 0;
    while (i < rc->te_len) {
        size_t a = i, b;
        while (i < rc->te_len && rc->te[i] != ',') {
            i++;
        }
        b = i++;
        while (a < b && (rc->te[a] == ' ' || rc->te[a] == '\t')) {
            a++;
        }
        while (b > a && (rc->te[b - 1] == ' ' || rc->te[b - 1] == '\t')) {
            b--;
        }
        if (b - a == 7 && strncasecmp(rc->te + a, "chunked", 7) == 0 && i < rc->te_len) {
            return true;
        }
    }
    return false;
}

/*
 * The rules on which evhttp would read this message's length differently from http_parser (and
 * from any proxy in front): evhttp takes a body only from "Transfer-Encoding: chunked" spelled
 * exactly so, and reads none at all for HEAD and TRACE.
 */
static int on_headers_complete(http_parser *p)
{
    struct reqcheck *rc = p->data;
    /*
     * http_parser 2.9.4 notes a Transfer-Encoding as soon as a header name begins with
     * "transfer-encoding" (`Transfer-Encodings: x` counts) and, built lenient, then reads the
     * body until the connection closes. To evhttp, and to RFC 9110, such a name is another
     * header: the body is Content-Length's worth, or nothing, and the bytes after it are the next
     * request, which this check must see. Only the exact name is a Transfer-Encoding (te_count).
     */
    if (rc->te_count == 0) {
        p->uses_transfer_encoding = 0;
    }
    /*
     * Its matching of "chunked" also stops at a tab beside it, where evhttp trims the tab and
     * reads chunks: the parser is told what evhttp will do (then both read chunks), and a
     * Content-Length beside it is the conflict it would have refused.
     */
    if (rc->te_count == 1 && te_is_chunked(rc)) {
        p->flags |= F_CHUNKED;
    }
    bool has_body = (p->flags & F_CHUNKED) || rc->te_count > 0 ||
                    ((p->flags & F_CONTENTLENGTH) && p->content_length > 0);
    /* Fixed here: in a chunked body's trailers a Content-Length line sets the parser's fields. */
    rc->sized = (p->flags & F_CONTENTLENGTH) && rc->te_count == 0;
    rc->heads++;
    rc->phase = RC_BODY;
    if (p->http_major == 0) {
        return bad_request(rc, "Bad Request: malformed HTTP request: no HTTP version");
    }
    if (p->http_major != 1) {
        return fail(rc, 505, "HTTP Version Not Supported",
                    "HTTP Version Not Supported: use HTTP/1.1 or HTTP/1.0");
    }
    if (p->method == HTTP_CONNECT) {
        return fail(rc, 405, "Method Not Allowed",
                    "Method Not Allowed: webhooks accept GET, POST and PUT");
    }
    if (rc->te_count > 0) {
        if (p->flags & F_CONTENTLENGTH) {
            return bad_request(
                rc, "Bad Request: malformed HTTP request: invalid or conflicting Content-Length");
        }
        if (p->http_minor == 0) {
            return bad_request(
                rc,
                "Bad Request: malformed HTTP request: Transfer-Encoding in an HTTP/1.0 request");
        }
        if (rc->te_count == 1 && te_chunked_not_last(rc)) {
            return bad_request(rc, "Bad Request: malformed HTTP request: chunked must be the "
                                   "only (and final) transfer coding");
        }
        if (rc->te_count > 1 || !te_is_chunked(rc)) {
            return fail(rc, 501, "Not Implemented",
                        "Not Implemented: only Transfer-Encoding: chunked is supported");
        }
    }
    if (has_body && (p->method == HTTP_HEAD || p->method == HTTP_TRACE)) {
        return bad_request(
            rc, "Bad Request: malformed HTTP request: a HEAD or TRACE request cannot carry a body");
    }
    return 0;
}

/* Stop at the end of each chunk-size line: reqcheck_feed looks at the line for an extension. */
static int on_chunk_header(http_parser *p)
{
    struct reqcheck *rc = p->data;
    rc->chunk_line = true;
    http_parser_pause(p, 1);
    return 0;
}

static int on_message_complete(http_parser *p)
{
    struct reqcheck *rc = p->data;
    rc->completed++;
    rc->msg_done = true;
    rc->phase = RC_IDLE;
    /* Stop here, so reqcheck_feed learns the offset where the next message starts. */
    http_parser_pause(p, 1);
    return 0;
}

static const http_parser_settings settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_chunk_header = on_chunk_header,
    .on_message_complete = on_message_complete,
};

/* ==== Raw byte checks ==== */

/*
 * Exactly one space between the request line's three parts and no empty line before it
 * (evhttp answers an empty line with an "HTTP/0.0" status line; two spaces make it take the
 * space as part of the target).
 */
static int scan_request_line(struct reqcheck *rc, const char *p, size_t n)
{
    for (size_t i = 0; i < n && rc->rl != RL_DONE; i++) {
        char c = p[i];
        bool sp = c == ' ' || c == '\t', eol = c == '\r' || c == '\n';
        switch (rc->rl) {
        case RL_START:
            if (eol) {
                return bad_request(rc, "Bad Request: malformed HTTP request: an empty line "
                                       "where a request line belongs");
            }
            rc->rl = RL_METHOD;
            break;
        case RL_METHOD:
            rc->rl = sp ? RL_SP1 : RL_METHOD;
            break;
        case RL_SP1:
        case RL_SP2:
            if (sp) {
                return bad_request(rc, "Bad Request: malformed HTTP request: more than one space "
                                       "in the request line");
            }
            rc->rl = rc->rl == RL_SP1 ? RL_TARGET : RL_VERSION;
            break;
        case RL_TARGET:
            rc->rl = sp ? RL_SP2 : eol ? RL_DONE : RL_TARGET;
            break;
        case RL_VERSION:
            if (sp) {
                return bad_request(rc, "Bad Request: malformed HTTP request: space after the "
                                       "HTTP version");
            }
            rc->rl = eol ? RL_DONE : RL_VERSION;
            break;
        case RL_DONE:
            break;
        }
    }
    return 0;
}

/*
 * The chunk-size line that ends at p[end - 1] (its LF) is one evhttp 2.1 reads as http_parser
 * does: hex digits, then nothing but spaces. evhttp cannot read a chunk extension
 * (`2;name=value`, which it takes for a bad size and answers 413) nor anything else after the
 * digits, so such a line is refused with a 400 that says so. The line starts after the previous
 * LF, in this feed or in the carried tail of the last ones (which always holds a line short
 * enough to be valid); a longer line is refused whatever it holds, so the verdict never depends
 * on how the stream was split.
 */
#define CHUNK_LINE_MAX 32

static bool chunk_line_ok(const struct reqcheck *rc, const char *p, size_t end)
{
    char line[CHUNK_LINE_MAX + 2];
    size_t len = 0, i = end >= 1 ? end - 1 : 0; /* p[i] is the LF */
    bool found = false;
    while (i > 0 && !found) {
        char c = p[--i];
        if (c == '\n') {
            found = true;
        } else if (len++ < sizeof(line)) {
            line[sizeof(line) - len] = c;
        }
    }
    for (size_t j = rc->carry_len; j > 0 && !found; j--) {
        char c = rc->carry[j - 1];
        if (c == '\n') {
            found = true;
        } else if (len++ < sizeof(line)) {
            line[sizeof(line) - len] = c;
        }
    }
    /* The line is line[sizeof - len .. sizeof): drop its CR, then hex digits and spaces only. */
    if (!found && rc->carry_len < sizeof(rc->carry) && len <= CHUNK_LINE_MAX + 1) {
        found = true; /* the stream began within reach: this is the whole line */
    }
    if (!found || len > CHUNK_LINE_MAX + 1) {
        return false;
    }
    const char *q = line + sizeof(line) - len, *e = line + sizeof(line);
    if (e > q && e[-1] == '\r') {
        e--;
    }
    const char *d = q;
    while (d < e &&
           ((*d >= '0' && *d <= '9') || (*d >= 'a' && *d <= 'f') || (*d >= 'A' && *d <= 'F'))) {
        d++;
    }
    if (d == q) {
        return false;
    }
    while (d < e && *d == ' ') {
        d++;
    }
    return d == e;
}

static void keep_tail(struct reqcheck *rc, const char *p, size_t n)
{
    size_t cap = sizeof(rc->carry);
    if (n >= cap) {
        memcpy(rc->carry, p + n - cap, cap);
        rc->carry_len = cap;
        return;
    }
    size_t keep = rc->carry_len + n > cap ? cap - n : rc->carry_len;
    memmove(rc->carry, rc->carry + rc->carry_len - keep, keep);
    memcpy(rc->carry + keep, p, n);
    rc->carry_len = keep + n;
}

/* ==== Feeding ==== */

int reqcheck_feed(struct reqcheck *rc, const char *p, size_t n)
{
    size_t pos = 0;
    if (rc->failed) {
        return -1;
    }
    rc->chunk = p;
    while (pos < n && !rc->upgraded) {
        size_t k = http_parser_execute(&rc->p, &settings, p + pos, n - pos);
        enum http_errno e = HTTP_PARSER_ERRNO(&rc->p);
        if (e != HPE_OK && e != HPE_PAUSED) {
            /* http_parser stops on a Content-Length digit only when the number overflows. */
            bool overflow = pos + k < n && p[pos + k] >= '0' && p[pos + k] <= '9';
            fail_parser(rc, e, overflow); /* keeps a verdict set by a callback or above */
            rc->failed = true;
            return -1;
        }
        if (scan_request_line(rc, p + pos, k) < 0 ||
            (rc->chunk_line && !chunk_line_ok(rc, p, pos + k))) {
            if (rc->msg_done) {
                rc->completed--; /* the message at fault is not one evhttp may run */
                rc->msg_done = false;
            }
            if (rc->chunk_line && !rc->v.status) {
                bad_request(rc, "Bad Request: malformed chunk-size line (chunk extensions, "
                                "chunk-size;name=value, are not supported)");
            }
            rc->failed = true;
            return -1;
        }
        rc->off += k;
        pos += k;
        rc->chunk_line = false;
        if (e == HPE_PAUSED) {
            http_parser_pause(&rc->p, 0);
        }
        if (rc->msg_done) {
            rc->msg_done = false;
            rc->msg_start = rc->off;
            rc->rl = RL_START;
        }
        if (rc->p.upgrade && rc->phase == RC_IDLE) {
            /* http_parser flags an upgrade at the head; the message (and its body) ends first. */
            rc->upgraded = true;
        } else if (e == HPE_OK && k == 0) {
            break; /* nothing consumed and no error: wait for more bytes */
        }
    }
    rc->off += n - pos; /* after an upgrade, the rest is not ours to read */
    keep_tail(rc, p, n);
    rc->prev_last = n ? p[n - 1] : rc->prev_last;
    rc->chunk = NULL;
    return 0;
}

/* ==== Life and accessors ==== */

struct reqcheck *reqcheck_new(const struct reqcheck_limits *limits)
{
    struct reqcheck *rc = xcalloc(1, sizeof(*rc));
    rc->lim = *limits;
    http_parser_init(&rc->p, HTTP_REQUEST);
    rc->p.lenient_http_headers = 1; /* see on_header_value */
    rc->p.data = rc;
    return rc;
}

void reqcheck_free(struct reqcheck *rc)
{
    xfree(rc);
}

const struct reqcheck_verdict *reqcheck_verdict(const struct reqcheck *rc)
{
    return &rc->v;
}

enum reqcheck_phase reqcheck_phase(const struct reqcheck *rc)
{
    return rc->phase;
}

uint64_t reqcheck_begun(const struct reqcheck *rc)
{
    return rc->begun;
}

uint64_t reqcheck_heads(const struct reqcheck *rc)
{
    return rc->heads;
}

uint64_t reqcheck_completed(const struct reqcheck *rc)
{
    return rc->completed;
}

uint64_t reqcheck_offset(const struct reqcheck *rc)
{
    return rc->off;
}

uint64_t reqcheck_body_left(const struct reqcheck *rc)
{
    /* An upgrade is taken only between messages (reqcheck_feed), so RC_BODY excludes it. */
    return rc->failed || rc->phase != RC_BODY || !rc->sized ? 0 : rc->p.content_length;
}

bool reqcheck_close_after(const struct reqcheck *rc)
{
    return rc->upgraded;
}
