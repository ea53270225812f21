"""Bad and hostile inputs, one test case per row of BAD_INPUTS.md.

Each row starts its own bridge (small limits, so the cases run fast), sends its input over a raw
socket (client libraries refuse to send most of these), and checks:
  * the answer: status, an `HTTP/1.x` status line, and for every error a JSON body with a non-empty
    "message" (Content-Type application/json) that is framed (Content-Length, or the connection
    closes after it);
  * where the stream cannot be trusted any more: that the bridge closes the connection;
  * Kafka: after the row, a normal request on the same flow still gets 200 (the bridge is alive),
    then the flow's topic holds exactly the messages of the 200s (each once) plus that one;
  * the fixture's teardown: SIGTERM exits 0 (no crash, no sanitizer report).

Problems are collected and reported together at the end of a row, so one bug does not hide the
next. The table in BAD_INPUTS.md is generated from the `row(...)` declarations below (number,
input, answer, why): change them together.

Every wait is bounded; all traffic goes to the bridge on 127.0.0.1.
"""

import json
import math
import re
import socket
import struct
import time

from pathlib import Path

import pytest

from conftest import (Names, assert_accepted, check_message, consume, decode_value,
                      http_request, masked_path, webhook_flow)

LIMITS = {"max_body_bytes": 4096, "max_header_bytes": 2048, "max_headers": 20,
          "max_uri_bytes": 1024}
ANSWER_TIMEOUT = 10.0  # one answer (a 200 waits for the broker's acknowledgement)
UNFRAMED_WAIT = 2.0  # an answer without Content-Length: how long to wait for the close
CLOSE_WAIT = 2.0  # how long a connection that must close may take to do so
SLOW_TIMEOUT_MS = 2000  # limits.header_timeout_ms and body_timeout_ms of the slow-client rows
SLOW_MARGIN = 1.5  # seconds past the timeout a slow client may still be connected
SLOW_LIMITS = dict(LIMITS, header_timeout_ms=SLOW_TIMEOUT_MS, body_timeout_ms=SLOW_TIMEOUT_MS,
                   request_timeout_ms=SLOW_TIMEOUT_MS)
SLOW_KAFKA = {"delivery_timeout_ms": 1500}  # must stay below request_timeout_ms
ALLOW = "GET, POST, PUT"


# ==== Raw HTTP ====


class Answer:
    """One answer as read off the socket. status None: the bytes were not an HTTP answer."""

    def __init__(self, raw, version=None, status=None, reason="", headers=(), body=b"",
                 framing=None):
        self.raw = raw
        self.version = version
        self.status = status
        self.reason = reason
        self.headers = list(headers)
        self.body = body
        self.framing = framing  # "length", "close", "none" (no body allowed), "unframed"

    def header(self, name):
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    def __repr__(self):
        if self.status is None:
            return f"<not an HTTP answer: {self.raw[:300]!r}>"
        return f"<{self.version} {self.status} {self.headers} {self.body[:300]!r}>"


class Raw:
    """One client connection that sends bytes as given and parses the answers."""

    def __init__(self, addr):
        host, port = addr.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=ANSWER_TIMEOUT)
        self.buf = b""
        self.eof = False
        self.send_error = None

    def send(self, data):
        """Sends everything it can: a server that answers early and closes may cut it short."""
        try:
            self.sock.sendall(data)
        except OSError as e:
            self.send_error = e

    def _recv(self, deadline):
        """One read into buf; False at EOF, on a reset or at the deadline."""
        if self.eof:
            return False
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        self.sock.settimeout(left)
        try:
            chunk = self.sock.recv(65536)
        except socket.timeout:
            return False
        except OSError:
            self.eof = True
            return False
        if not chunk:
            self.eof = True
            return False
        self.buf += chunk
        return True

    def answer(self, head=False, timeout=ANSWER_TIMEOUT):
        """The next answer; None when the connection closed (or stayed silent) before any byte."""
        deadline = time.monotonic() + timeout
        while b"\r\n\r\n" not in self.buf:
            if not self._recv(deadline):
                if not self.buf:
                    return None
                raw, self.buf = self.buf, b""
                return Answer(raw)
        head_bytes, _, rest = self.buf.partition(b"\r\n\r\n")
        lines = head_bytes.split(b"\r\n")
        m = re.fullmatch(rb"(HTTP/\d\.\d) (\d{3})(?: (.*))?", lines[0])
        if not m:
            raw, self.buf = self.buf, b""
            return Answer(raw)
        version, status = m.group(1).decode(), int(m.group(2))
        reason = (m.group(3) or b"").decode("latin-1")
        headers = []
        for ln in lines[1:]:
            k, _, v = ln.decode("latin-1").partition(":")
            headers.append((k.strip(), v.strip()))
        a = Answer(head_bytes, version, status, reason, headers)
        self.buf = rest
        cl = a.header("Content-Length")
        if head or 100 <= status < 200 or status in (204, 304):
            a.framing = "none"
        elif cl is not None and cl.isdigit():
            want = int(cl)
            while len(self.buf) < want and self._recv(deadline):
                pass
            a.body, self.buf = self.buf[:want], self.buf[want:]
            a.framing = "length" if len(a.body) == want else "close"
        else:
            end = min(deadline, time.monotonic() + UNFRAMED_WAIT)
            while self._recv(end):
                pass
            a.body, self.buf = self.buf, b""
            a.framing = "close" if self.eof else "unframed"
        return a

    def exchange(self, data, head=False):
        self.send(data)
        return self.answer(head=head)

    def wait_closed(self, within):
        """(closed, bytes that arrived meanwhile): waits up to `within` seconds for EOF."""
        deadline = time.monotonic() + within
        while self._recv(deadline):
            pass
        extra, self.buf = self.buf, b""
        return self.eof, extra

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


# ==== One row ====


class Row:
    """A bridge with one flow, the checks of one row, and the problems found."""

    def __init__(self, kafka, bridge_factory, limits=None, kafka_cfg=None, key=None):
        self.kafka = kafka
        self.n = Names()
        if key is not None:
            self.n.key = key
        self.b = bridge_factory.start([webhook_flow(self.n.ns, self.n.flow, self.n.key)],
                                      config={"limits": limits or LIMITS}, kafka=kafka_cfg)
        self.addr = self.b.addr
        self.P = self.n.path()
        self.problems = []
        self.ids = []  # execution ids of the 200s this row expects in Kafka
        self.msgs = {}  # execution id -> decoded message, after finish()
        self.anon = []  # decoded messages without a known id (a client that hung up)
        self.conns = []
        self.finished = False

    # -- helpers for the rows --

    def conn(self):
        c = Raw(self.addr)
        self.conns.append(c)
        return c

    def problem(self, text):
        self.problems.append(text)

    def check(self, cond, text):
        if not cond:
            self.problem(text)
        return cond

    def _valid_answer(self, a, what):
        if a is None:
            self.problem(f"{what}: no answer, the connection closed or stayed silent")
            return False
        if a.status is None:
            self.problem(f"{what}: not an HTTP answer: {a.raw[:300]!r}")
            return False
        status_line = a.raw.split(b"\r\n")[0]
        self.check(a.version in ("HTTP/1.1", "HTTP/1.0"),
                   f"{what}: status line {status_line!r} is not HTTP/1.0 or HTTP/1.1")
        return True

    def refused(self, a, status, words=None, what="answer", head=False, allow=False):
        """An error answer: one of the statuses, JSON with a message, framed."""
        statuses = status if isinstance(status, tuple) else (status,)
        if not self._valid_answer(a, what):
            return None
        self.check(a.status in statuses,
                   f"{what}: status {a.status}, expected {' or '.join(map(str, statuses))}: {a!r}")
        if allow or a.status == 405:
            self.check(a.header("Allow") == ALLOW,
                       f"{what}: Allow is {a.header('Allow')!r}, expected {ALLOW!r}")
        if head:
            return None
        self.check(a.framing in ("length", "close"),
                   f"{what}: answer body not framed (no Content-Length and the connection stays "
                   f"open): {a!r}")
        ct = (a.header("Content-Type") or "").split(";")[0].strip()
        self.check(ct == "application/json", f"{what}: Content-Type {ct!r}, not application/json")
        try:
            body = json.loads(a.body)
        except ValueError:
            self.problem(f"{what}: body is not JSON: {a.body[:300]!r}")
            return None
        if not (isinstance(body, dict) and isinstance(body.get("message"), str)
                and body["message"]):
            self.problem(f"{what}: no non-empty \"message\" in {body!r}")
            return None
        if words:
            self.check(words.lower() in body["message"].lower(),
                       f"{what}: message {body['message']!r} does not mention {words!r}")
        return body["message"]

    def accepted(self, a, what="answer"):
        """A 200 whose message must be in Kafka exactly once; returns the execution id."""
        if not self._valid_answer(a, what):
            return None
        if a.status != 200:
            self.problem(f"{what}: status {a.status}, expected 200: {a!r}")
            return None
        ct = (a.header("Content-Type") or "").split(";")[0].strip()
        try:
            body = json.loads(a.body)
        except ValueError:
            self.problem(f"{what}: 200 body is not JSON: {a.body[:300]!r}")
            return None
        ok = ct == "application/json" and isinstance(body, dict) and body.get("namespace") == \
            self.n.ns and body.get("flowId") == self.n.flow and isinstance(body.get("id"), str)
        if not self.check(ok, f"{what}: not the success answer of this flow: {a!r}"):
            return None
        self.ids.append(body["id"])
        return body["id"]

    def closes(self, c, what="connection", within=CLOSE_WAIT):
        """The bridge must close the connection (and send nothing more)."""
        closed, extra = c.wait_closed(within)
        self.check(not extra, f"{what}: more bytes after the answer: {extra[:300]!r}")
        self.check(closed, f"{what}: still open {within}s after an answer that must close it")

    def var(self, exec_id):
        """trigger.variables of an accepted message (after finish)."""
        m = self.msgs.get(exec_id)
        return m["trigger"]["variables"] if m else None

    # -- end of a row --

    def finish(self, anonymous=0, method_of=None):
        """A normal request must still work; then Kafka must hold exactly the accepted messages."""
        if self.finished:
            return
        self.finished = True
        for c in self.conns:
            c.close()
        canary = http_request(self.addr, "POST", self.P, body='{"canary":true}')
        try:
            cid = assert_accepted(canary, self.n.ns, self.n.flow)
        except AssertionError as e:
            self.problem(f"a normal request afterwards did not get 200: {e}")
            cid = None
        known = list(self.ids) + ([cid] if cid else [])
        recs = consume(self.kafka, self.n.topic, len(known) + anonymous)
        keys = [r.key.decode(errors="replace") for r in recs]
        for i in known:
            self.check(keys.count(i) == 1,
                       f"Kafka: execution {i} is there {keys.count(i)} times, expected once")
        for r in recs:
            k = r.key.decode(errors="replace")
            msg = decode_value(r.value)
            if k in known:
                self.msgs[k] = msg
                if k != cid:
                    try:
                        check_message(r, k, self.n.ns, self.n.flow, msg["request"]["method"],
                                      key=self.n.key)
                    except AssertionError as e:
                        self.problem(f"Kafka: message {k} breaks the contract: {e}")
            else:
                self.anon.append(msg)
        if len(self.anon) != anonymous:
            shown = [(m["request"]["method"], m["trigger"]["variables"].get("body", "<no body>"))
                     for m in self.anon]
            self.problem(f"Kafka: {len(self.anon)} message(s) no 200 accounts for "
                         f"(expected {anonymous}): {str(shown)[:500]}")

    def done(self):
        self.finish()
        assert not self.problems, "\n".join(["problems:"] + [f"  - {p}" for p in self.problems])


# ==== Row declarations ====

CASES = []


def row(num, slug, input, answer, why, **setup):
    """Declares a row: its number and the three texts of its BAD_INPUTS.md line."""

    def deco(fn):
        fn.row = {"num": num, "slug": slug, "input": input, "answer": answer, "why": why}
        CASES.append(pytest.param(fn, setup, id=f"{num:03d}-{slug}"))
        return fn

    return deco


def req(path, body=None, method="POST", version="HTTP/1.1", headers=(), host=True,
        length=True):
    """Request bytes; str parts are latin-1, so every byte value can be written as a char."""
    lines = [f"{method} {path} {version}"]
    if host:
        lines.append("Host: 127.0.0.1")
    lines.extend(headers)
    if body is not None and length:
        lines.append(f"Content-Length: {len(body.encode('latin-1'))}")
    return ("\r\n".join(lines) + "\r\n\r\n" + (body or "")).encode("latin-1")


def overlong(ch):
    """The two-byte overlong UTF-8 form of an ASCII character, percent-encoded."""
    o = ord(ch)
    return "%%%02X%%%02X" % (0xC0 | (o >> 6), 0x80 | (o & 0x3F))


def refused_only(r, data, status, words=None, close=False, **kw):
    """The common shape: one request, one error answer, maybe a close, nothing in Kafka."""
    c = r.conn()
    r.refused(c.exchange(data), status, words, **kw)
    if close:
        r.closes(c)


def accepted_only(r, data):
    """The common shape: one request, one 200; returns trigger.variables of its message."""
    c = r.conn()
    eid = r.accepted(c.exchange(data))
    r.finish()
    return r.var(eid) if eid else None


BODYLESS = object()


def check_body(r, var, expected):
    if var is None:
        return
    got = var.get("body", BODYLESS)
    r.check(got == expected and type(got) is type(expected),
            f"published body {str(got)[:200]!r}, expected {str(expected)[:200]!r}")


# ---- A. Request line ----


@row(1, "garbage-request-line", "`GARBAGE\\r\\n\\r\\n`",
     "400, \"Bad Request: malformed HTTP request\"; connection closed",
     "Not a request line (RFC 9112 §3).")
def r001(r):
    refused_only(r, b"GARBAGE\r\n\r\n", 400, close=True)


@row(2, "http09-request", "`GET /api/v1/executions/webhook/{ns}/{flow}/{key}\\r\\n\\r\\n` "
     "(HTTP/0.9, no version)",
     "400, malformed request; connection closed",
     "HTTP/0.9 is not spoken; the answer must still be an HTTP/1.1 status line.")
def r002(r):
    refused_only(r, f"GET {r.P}\r\n\r\n".encode(), 400, close=True)


@row(3, "http2-version", "Request line ending in `HTTP/2.0`",
     "400 (or 505), JSON message; connection closed",
     "Only HTTP/1.x is served on this port.")
def r003(r):
    refused_only(r, req(r.P, method="GET", version="HTTP/2.0"), (400, 505), close=True)


@row(4, "h2-prior-knowledge-preface", "`PRI * HTTP/2.0\\r\\n\\r\\nSM\\r\\n\\r\\n` (HTTP/2 preface)",
     "400, malformed request; connection closed",
     "An h2c client with prior knowledge must get a clean refusal, not a hang.")
def r004(r):
    refused_only(r, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 400, close=True)


@row(5, "tab-separated-request-line", "`GET\\t{path}\\tHTTP/1.1`",
     "400, malformed request; connection closed",
     "Request-line parts are separated by single spaces (RFC 9112 §3).")
def r005(r):
    refused_only(r, f"GET\t{r.P}\tHTTP/1.1\r\nHost: x\r\n\r\n".encode(), 400, close=True)


@row(6, "space-inside-path", "`POST {path} extra HTTP/1.1` (a raw space inside the target)",
     "400, malformed request",
     "A request-target has no spaces; four words are not a request line (RFC 9112 §3).")
def r006(r):
    refused_only(r, req(r.P + " extra", body="{}"), 400)


@row(7, "space-inside-query", "`POST {path}?a=b c HTTP/1.1` (a raw space inside the query)",
     "400, malformed request; nothing published",
     "As #6; it must not be accepted with `parameters.a = [\"b c\"]`.")
def r007(r):
    refused_only(r, req(r.P + "?a=b c", body="{}"), 400)


@row(8, "two-spaces-after-method", "`GET  {path} HTTP/1.1` (two spaces)",
     "400, malformed request",
     "Exactly one SP between method and target (RFC 9112 §3).")
def r008(r):
    refused_only(r, f"GET  {r.P} HTTP/1.1\r\nHost: x\r\n\r\n".encode(), 400)


@row(9, "empty-line-before-request-line", "`\\r\\n` then a valid GET",
     "200 (the empty line ignored) or 400 JSON; either way framed, and published only with a 200",
     "RFC 9112 §2.2: a server SHOULD ignore at least one empty line before the request line.")
def r009(r):
    c = r.conn()
    a = c.exchange(b"\r\n" + req(r.P, method="GET"))
    if a is not None and a.status == 200:
        r.accepted(a)
    else:
        r.refused(a, 400)


@row(10, "nul-after-version", "`POST {path} HTTP/1.1\\0junk` (NUL byte in the request line)",
     "400, malformed request; nothing published",
     "A NUL is never valid in a request line; text after it must not be silently dropped.")
def r010(r):
    refused_only(r, req(r.P, body="{}", version="HTTP/1.1\0junk"), 400)


@row(11, "nul-inside-uri", "`POST {path}\\0junk HTTP/1.1` (raw NUL byte in the target)",
     "400, malformed request; connection closed",
     "As #10.")
def r011(r):
    refused_only(r, req(r.P + "\0junk", body="{}"), 400, close=True)


@row(12, "absolute-form-uri",
     "`POST http://127.0.0.1:PORT{path}?q=1 HTTP/1.1`, a second request pipelined behind it",
     "200; published `request.path` is the origin path with the key masked, `parameters.q=[\"1\"]`;"
     " the pipelined request is answered too (or the first answer says `Connection: close`)",
     "Servers MUST accept absolute-form (RFC 9112 §3.2.2); closing silently drops the next "
     "request without a word.")
def r012(r):
    c = r.conn()
    c.send(req(f"http://{r.addr}{r.P}?q=1", body='{"n":1}') + req(r.P, body='{"n":2}'))
    a1 = c.answer()
    e1 = r.accepted(a1, "absolute-form answer")
    closing = a1 is not None and (a1.header("Connection") or "").lower() == "close"
    a2 = c.answer()
    if closing:
        r.check(a2 is None, f"answer after Connection: close: {a2!r}")
    else:
        r.accepted(a2, "pipelined request after the absolute-form one")
    r.finish()
    v = r.var(e1) if e1 else None
    if v is not None:
        r.check(v["parameters"] == {"q": ["1"]}, f"parameters {v['parameters']}")
        check_body(r, v, {"n": 1})
        r.check(r.msgs[e1]["request"]["path"] == masked_path(r.n.ns, r.n.flow),
                f"request.path {r.msgs[e1]['request']['path']!r}")


@row(13, "very-long-method", "Method of 5000 `A`s",
     "501 (or 405 with Allow, or 400), JSON message; nothing published",
     "An unknown method is refused; the length must not matter.")
def r013(r):
    refused_only(r, req(r.P, method="A" * 5000), (400, 405, 501))


@row(14, "lowercase-method", "`post {path} HTTP/1.1` with a body",
     "400, \"unknown or malformed method\"; connection closed; nothing published",
     "Methods are case-sensitive (RFC 9110 §9.1): `post` is not POST. Until the line ends it looks "
     "like garbage (#1), and the answer must not depend on how the bytes were split.")
def r014(r):
    refused_only(r, req(r.P, body="{}", method="post"), 400, words="method", close=True)


@row(15, "unknown-method", "`PROPFIND {path} HTTP/1.1`",
     "501 (or 405 with Allow), JSON message",
     "A method the server does not know: 501 (RFC 9110 §15.6.2).")
def r015(r):
    refused_only(r, req(r.P, method="PROPFIND"), (405, 501))


# ---- B. Every method on the webhook path ----


@row(16, "method-get", "`GET {path}?a=1` on a valid webhook",
     "200; published with `parameters.a=[\"1\"]` and no body",
     "Baseline for the method rows.")
def r016(r):
    v = accepted_only(r, req(r.P + "?a=1", method="GET"))
    if v is not None:
        r.check(v["parameters"] == {"a": ["1"]} and "body" not in v, f"variables {v}")


@row(17, "method-post", "`POST {path}` with `{\"a\":1}`",
     "200; body `{\"a\":1}` published", "Baseline.")
def r017(r):
    check_body(r, accepted_only(r, req(r.P, body='{"a":1}')), {"a": 1})


@row(18, "method-put", "`PUT {path}` with `[1]`", "200; body `[1]` published", "Baseline.")
def r018(r):
    check_body(r, accepted_only(r, req(r.P, body="[1]", method="PUT")), [1])


@row(19, "method-head", "`HEAD {path}`, a GET pipelined behind it",
     "405 with `Allow: GET, POST, PUT` and no body bytes; then the GET's 200",
     "An answer to HEAD never has a body (RFC 9110 §9.3.2); body bytes would be read as the "
     "start of the next answer.")
def r019(r):
    c = r.conn()
    c.send(req(r.P, method="HEAD") + req(r.P, method="GET"))
    r.refused(c.answer(head=True), 405, head=True, what="HEAD answer")
    a2 = c.answer()
    if a2 is not None and a2.status is not None:
        r.accepted(a2, "GET after HEAD")
        r.finish()
    else:
        r.problem(f"GET after HEAD: the next bytes are not an HTTP answer "
                  f"(HEAD answer had a body?): {a2!r}")
        r.finish(anonymous=1)  # the GET itself went through


@row(20, "method-delete", "`DELETE {path}`",
     "405, Allow, \"Method Not Allowed: ...\"; nothing published", "Only GET, POST, PUT.")
def r020(r):
    refused_only(r, req(r.P, method="DELETE"), 405, "Method Not Allowed")


@row(21, "method-options", "`OPTIONS {path}`", "405, Allow, JSON message", "As #20.")
def r021(r):
    refused_only(r, req(r.P, method="OPTIONS"), 405, "Method Not Allowed")


@row(22, "method-patch", "`PATCH {path}` with a body", "405, Allow, JSON message", "As #20.")
def r022(r):
    refused_only(r, req(r.P, body='{"a":1}', method="PATCH"), 405, "Method Not Allowed")


@row(23, "method-trace", "`TRACE {path}`", "405, Allow, JSON message", "As #20.")
def r023(r):
    refused_only(r, req(r.P, method="TRACE"), 405, "Method Not Allowed")


@row(24, "method-connect-webhook-path", "`CONNECT {path} HTTP/1.1`",
     "405, Allow, JSON message with Content-Length (or the connection closes)",
     "Every method but GET/POST/PUT is 405; an answer without length on a kept-alive connection "
     "leaves the client waiting for the end of the body.")
def r024(r):
    refused_only(r, req(r.P, method="CONNECT"), 405, "Method Not Allowed")


@row(25, "method-connect-authority-form", "`CONNECT 127.0.0.1:443 HTTP/1.1`",
     "404 or 405, JSON message, framed", "Not a proxy; the answer must still be delimited.")
def r025(r):
    refused_only(r, b"CONNECT 127.0.0.1:443 HTTP/1.1\r\nHost: 127.0.0.1:443\r\n\r\n", (404, 405))


@row(26, "options-asterisk", "`OPTIONS * HTTP/1.1`", "404 or 405, JSON message",
     "Asterisk-form is no webhook.")
def r026(r):
    refused_only(r, b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n", (404, 405))


# ---- C. Path and key ----


@row(27, "trailing-slash", "`POST {path}/`", "404, \"Not Found: Webhook not found\"",
     "Empty segments never match (Kestra).")
def r027(r):
    refused_only(r, req(r.P + "/", body="{}"), 404, "Webhook not found")


@row(28, "dot-dot-segment", "`GET /api/v1/executions/webhook/{ns}/{flow}/x/../{key}`",
     "404", "Paths are not normalised; `..` is just a segment.")
def r028(r):
    refused_only(r, req(r.n.path(key="x/../" + r.n.key), method="GET"), 404, "not found")


@row(29, "encoded-dot-dot", "`GET /api/v1/executions/%2E%2E/executions/webhook/{ns}/{flow}/{key}`",
     "404", "Decoded segments are compared as they are, never resolved.")
def r029(r):
    p = f"/api/v1/executions/%2E%2E/executions/webhook/{r.n.ns}/{r.n.flow}/{r.n.key}"
    refused_only(r, req(p, method="GET"), 404)


@row(30, "key-with-pct00", "`GET .../{key}%00` (the right key, then an encoded NUL)", "404",
     "A NUL must not end the key early (C-string truncation would make this match).")
def r030(r):
    refused_only(r, req(r.n.path(key=r.n.key + "%00"), method="GET"), 404)


@row(31, "key-overlong-utf8", "The key with its last character as a 2-byte overlong UTF-8 "
     "escape (`x` → `%C1%B8`)", "404",
     "Overlong forms are not the character they spell (no UTF-8 normalisation of keys).")
def r031(r):
    refused_only(r, req(r.n.path(key=r.n.key[:-1] + overlong(r.n.key[-1])), method="GET"), 404)


@row(32, "overlong-slash", "`.../{flow}%C0%AF{key}` (overlong `/` joining two segments)", "404",
     "An overlong slash is not a separator.")
def r032(r):
    p = f"/api/v1/executions/webhook/{r.n.ns}/{r.n.flow}%C0%AF{r.n.key}"
    refused_only(r, req(p, method="GET"), 404)


@row(33, "raw-0xff-in-key", "The key followed by a raw 0xFF byte (not escaped)", "404",
     "Invalid UTF-8 in the path is a miss, not an error or a crash.")
def r033(r):
    refused_only(r, req(r.n.path(key=r.n.key + "\xff"), method="GET"), 404)


@row(34, "double-encoded-key", "The key with its first character written as `%25XX`", "404",
     "Segments are decoded once (`%2561` is `%61`, not `a`).")
def r034(r):
    k = r.n.key
    refused_only(r, req(r.n.path(key="%%25%02X" % ord(k[0]) + k[1:]), method="GET"), 404)


@row(35, "fully-encoded-key", "Every character of the key percent-encoded", "200; published "
     "path has the key masked", "The positive control for #30-#34.")
def r035(r):
    accepted_only(r, req(r.n.path(key="".join("%%%02X" % ord(ch) for ch in r.n.key)),
                         method="GET"))


@row(36, "key-257-chars", "A key of 257 characters (keys load with at most 256)", "404",
     "An over-long key cannot exist, so it is a miss like any other.")
def r036(r):
    refused_only(r, req(r.n.path(key="k" * 257), method="GET"), 404, "not found")


@row(37, "key-256-chars", "A flow whose key has exactly 256 characters, called with it", "200",
     "The boundary is inclusive.", key="K" * 256)
def r037(r):
    accepted_only(r, req(r.P, method="GET"))


@row(38, "key-5000-chars", "A key of 5000 characters (URI over `max_uri_bytes` 1024)",
     "414, \"URI Too Long: ...\"", "The URI limit comes before routing.")
def r038(r):
    refused_only(r, req(r.n.path(key="k" * 5000), method="GET"), 414, "URI")


@row(39, "bad-escape-pct-zz-in-key", "`.../{key}%zz`",
     "400, \"Bad Request: malformed percent-encoding in the URL\"", "Not a valid escape.")
def r039(r):
    refused_only(r, req(r.n.path(key=r.n.key + "%zz"), method="GET"), 400, "percent")


@row(40, "bad-escape-pct-u", "`.../%u0041` (IIS-style escape as the key)", "400, "
     "malformed percent-encoding", "`%u` is not URL syntax.")
def r040(r):
    refused_only(r, req(r.n.path(key="%u0041"), method="GET"), 400, "percent")


@row(41, "bad-escape-query-trailing-pct", "`{path}?a=%`", "400, malformed percent-encoding",
     "A lone `%` at the end of the query.")
def r041(r):
    refused_only(r, req(r.P + "?a=%", method="GET"), 400, "percent")


@row(42, "bad-escape-query-pct-pct", "`{path}?a=%%41`", "400, malformed percent-encoding",
     "`%%` is not an escape.")
def r042(r):
    refused_only(r, req(r.P + "?a=%%41", method="GET"), 400, "percent")


@row(43, "target-without-leading-slash", "`GET api/v1/executions/webhook/... HTTP/1.1`",
     "404 (or 400), JSON message", "Origin-form starts with `/`; this is no webhook.")
def r043(r):
    refused_only(r, req(r.P[1:], method="GET"), (400, 404))


# ---- D. Content-Length and framing ----


@row(44, "duplicate-content-length", "`Content-Length: 2` twice, body `{}`",
     "400, \"Bad Request: conflicting Content-Length or Transfer-Encoding headers\"; "
     "connection closed", "Request smuggling guard (README).")
def r044(r):
    refused_only(r, req(r.P, body="{}", headers=["Content-Length: 2"]), 400, "Content-Length",
                 close=True)


@row(45, "duplicate-content-length-different",
     "`Content-Length: 40` then `Content-Length: 2`, body `{}` (2 bytes)",
     "400 as soon as the headers are in; connection closed",
     "Two different lengths: the stream cannot be trusted, so no body is awaited for either.")
def r045(r):
    refused_only(r, req(r.P, body="{}", headers=["Content-Length: 40"]), 400, close=True)


@row(46, "duplicate-content-length-casing", "`content-length: 2` and `CONTENT-LENGTH: 2`",
     "400; connection closed", "Header names are case-insensitive.")
def r046(r):
    refused_only(r, req(r.P, body="{}", length=False,
                        headers=["content-length: 2", "CONTENT-LENGTH: 2"]), 400, close=True)


@row(47, "duplicate-content-length-unknown-path",
     "`POST /nope` with `Content-Length: 2` twice",
     "400; connection closed (framing is judged before routing)",
     "Otherwise the bytes after the first length are read as the next request on a kept-alive "
     "connection: smuggling through any path (see #49).")
def r047(r):
    refused_only(r, req("/nope", body="{}", headers=["Content-Length: 2"]), 400, close=True)


@row(48, "duplicate-content-length-delete", "`DELETE {path}` with `Content-Length: 2` twice",
     "400; connection closed (framing before the method check)", "As #47.")
def r048(r):
    refused_only(r, req(r.P, body="{}", method="DELETE", headers=["Content-Length: 2"]), 400,
                 close=True)


@row(49, "smuggling-via-unknown-path",
     "`POST /nope` with `Content-Length: 0` and `Content-Length: 60`, then `GET {path}` as the "
     "60 bytes", "400; connection closed; the embedded GET never runs (nothing published)",
     "A proxy using the last length forwards one request; the bridge must not run a second one.")
def r049(r):
    inner = req(r.P, method="GET")
    data = req("/nope", length=False,
               headers=["Content-Length: 0", f"Content-Length: {len(inner)}"]) + inner
    refused_only(r, data, 400, close=True)


@row(50, "content-length-and-chunked", "`Content-Length: 2` with `Transfer-Encoding: chunked`",
     "400; connection closed", "RFC 9112 §6.3: such a message is a smuggling attempt.")
def r050(r):
    refused_only(r, req(r.P, body="2\r\n{}\r\n0\r\n\r\n", length=False,
                        headers=["Content-Length: 2", "Transfer-Encoding: chunked"]), 400,
                 close=True)


@row(51, "content-length-negative", "`Content-Length: -1`",
     "400, malformed request; connection closed", "Not a length.")
def r051(r):
    refused_only(r, req(r.P, body="{}", length=False, headers=["Content-Length: -1"]), 400,
                 close=True)


@row(52, "content-length-not-a-number", "`Content-Length: abc`", "400; connection closed",
     "Not a length.")
def r052(r):
    refused_only(r, req(r.P, body="{}", length=False, headers=["Content-Length: abc"]), 400,
                 close=True)


@row(53, "content-length-empty", "`Content-Length:` (empty value)", "400; connection closed",
     "Not a length.")
def r053(r):
    refused_only(r, req(r.P, body="{}", length=False, headers=["Content-Length:"]), 400,
                 close=True)


@row(54, "content-length-plus-sign", "`Content-Length: +2`", "400; connection closed; nothing "
     "published", "Content-Length is 1*DIGIT (RFC 9110 §8.6); a front proxy may read `+2` "
     "differently, which is how smuggling starts.")
def r054(r):
    refused_only(r, req(r.P, body="{}", length=False, headers=["Content-Length: +2"]), 400,
                 close=True)


@row(55, "content-length-list", "`Content-Length: 2, 2`", "400; connection closed",
     "A list is not a length.")
def r055(r):
    refused_only(r, req(r.P, body="{}", length=False, headers=["Content-Length: 2, 2"]), 400,
                 close=True)


@row(56, "content-length-huge", "`Content-Length: 99999999999999999999999`",
     "413, \"Payload Too Large: ...\"; connection closed", "Larger than any limit.")
def r056(r):
    refused_only(r, req(r.P, body="{}", length=False,
                        headers=["Content-Length: 99999999999999999999999"]), 413, "large",
                 close=True)


@row(57, "content-length-space-before-colon", "`Content-Length : 2` (space before the colon)",
     "400; connection closed; nothing published",
     "RFC 9112 §5.1: MUST be rejected; a proxy that trims the name sees a 2-byte body, the "
     "bridge a request with none followed by `{}` as the next request.")
def r057(r):
    refused_only(r, req(r.P, body="{}", length=False, headers=["Content-Length : 2"]), 400,
                 close=True)


@row(58, "body-longer-than-content-length", "`Content-Length: 2`, then `{}garbage\\r\\n\\r\\n`",
     "200 with body `{}`; then 400 JSON for `garbage` and the connection closes",
     "The bytes after the body are the next request, which is malformed.")
def r058(r):
    c = r.conn()
    c.send(req(r.P, body="{}", length=False, headers=["Content-Length: 2"]) + b"garbage\r\n\r\n")
    eid = r.accepted(c.answer())
    r.refused(c.answer(), 400, what="answer to the trailing garbage")
    r.closes(c)
    r.finish()
    if eid:
        check_body(r, r.var(eid), {})


@row(59, "post-without-length", "`POST {path}` with neither Content-Length nor Transfer-Encoding",
     "200; no `body` key published", "A request without framing headers has no body "
     "(RFC 9112 §6.3).")
def r059(r):
    check_body(r, accepted_only(r, req(r.P)), BODYLESS)


@row(60, "get-with-body", "`GET {path}` with `Content-Length: 7` and `{\"a\":1}`",
     "200; body `{\"a\":1}` published", "Kestra keeps a GET body too.")
def r060(r):
    check_body(r, accepted_only(r, req(r.P, body='{"a":1}', method="GET")), {"a": 1})


@row(61, "body-over-max-body-bytes", "Body of `max_body_bytes` + 1 (4097) bytes",
     "413, \"Payload Too Large: ...\"; connection closed", "limits.max_body_bytes.")
def r061(r):
    refused_only(r, req(r.P, body="x" * 4097), 413, "large", close=True)


# ---- E. Transfer-Encoding ----


@row(62, "chunked-mixed-case", "`Transfer-Encoding: Chunked`, chunks `{\"a\":` and `1}`, then `0`",
     "200; body `{\"a\":1}`", "Codings are case-insensitive; chunks are joined.")
def r062(r):
    body = '5\r\n{"a":\r\n2\r\n1}\r\n0\r\n\r\n'
    v = accepted_only(r, req(r.P, body=body, length=False,
                             headers=["Transfer-Encoding: Chunked"]))
    check_body(r, v, {"a": 1})


@row(63, "chunk-size-not-hex", "Chunked body with chunk size `zz`",
     "400, JSON message; connection closed",
     "A malformed chunk is a bad request, not a payload that is too large.")
def r063(r):
    refused_only(r, req(r.P, body="zz\r\nab\r\n0\r\n\r\n", length=False,
                        headers=["Transfer-Encoding: chunked"]), 400, close=True)


@row(64, "chunk-size-negative", "Chunked body with chunk size `-2`",
     "400; connection closed", "As #63.")
def r064(r):
    refused_only(r, req(r.P, body="-2\r\nab\r\n0\r\n\r\n", length=False,
                        headers=["Transfer-Encoding: chunked"]), 400, close=True)


@row(65, "chunk-extension", "Chunk header `2;name=value`, data `{}`",
     "400, \"chunk extensions ... are not supported\"; connection closed; nothing published",
     "RFC 9112 §7.1.1 says to ignore unknown extensions, but libevent 2.1 cannot parse them (it "
     "would answer 413): a clear 400 beats a wrong reason. No webhook sender uses them.")
def r065(r):
    refused_only(r, req(r.P, body="2;name=value\r\n{}\r\n0\r\n\r\n", length=False,
                        headers=["Transfer-Encoding: chunked"]), 400, close=True,
                 words="chunk extension")


@row(66, "chunk-size-overflow", "Chunk size `1000000000000000000` (2^72)",
     "413 (or 400), JSON message; connection closed", "Past every limit; no integer overflow.")
def r066(r):
    refused_only(r, req(r.P, body="1000000000000000000\r\nab\r\n0\r\n\r\n", length=False,
                        headers=["Transfer-Encoding: chunked"]), (400, 413), close=True)


@row(67, "chunked-with-trailer", "Chunked `{}` with trailer `X-Trailer: t`",
     "200; body `{}`; the trailer is not added to `headers`",
     "Trailers are not headers (RFC 9110 §6.5); Kestra does not see them either.")
def r067(r):
    v = accepted_only(r, req(r.P, body="2\r\n{}\r\n0\r\nX-Trailer: t\r\n\r\n", length=False,
                             headers=["Transfer-Encoding: chunked"]))
    check_body(r, v, {})
    if v is not None:
        r.check("X-Trailer" not in v["headers"], f"headers {v['headers']}")


@row(68, "chunked-over-max-body-bytes", "Chunks adding up to 4097 bytes (`max_body_bytes` 4096)",
     "413; connection closed", "The limit holds for chunked bodies too.")
def r068(r):
    body = "1000\r\n" + "a" * 4096 + "\r\n1\r\nb\r\n0\r\n\r\n"
    refused_only(r, req(r.P, body=body, length=False, headers=["Transfer-Encoding: chunked"]),
                 413, close=True)


@row(69, "te-chunked-not-last", "`Transfer-Encoding: chunked, gzip`",
     "400; connection closed", "RFC 9112 §6.3: chunked must be the final coding.")
def r069(r):
    refused_only(r, req(r.P, body="2\r\n{}\r\n0\r\n\r\n", length=False,
                        headers=["Transfer-Encoding: chunked, gzip"]), 400, close=True)


@row(70, "te-gzip-then-chunked", "`Transfer-Encoding: gzip, chunked`",
     "501 (or 400), JSON message; connection closed; nothing published",
     "The bridge does not decode gzip; publishing the compressed bytes as text would corrupt the "
     "body (RFC 9112 §6.1: 501 for an unknown coding).")
def r070(r):
    refused_only(r, req(r.P, body="2\r\n{}\r\n0\r\n\r\n", length=False,
                        headers=["Transfer-Encoding: gzip, chunked"]), (400, 501), close=True)


@row(71, "te-identity", "`Transfer-Encoding: identity`, no Content-Length, then chunk bytes",
     "501 (or 400); connection closed; nothing published",
     "Not a coding of HTTP/1.1; reading no body and the rest as a new request loses the body "
     "and desynchronises the connection.")
def r071(r):
    refused_only(r, req(r.P, body="2\r\n{}\r\n0\r\n\r\n", length=False,
                        headers=["Transfer-Encoding: identity"]), (400, 501), close=True)


@row(72, "te-unknown-coding", "`Transfer-Encoding: xchunked`", "501 (or 400); connection closed; "
     "nothing published", "As #71 (a classic smuggling probe).")
def r072(r):
    refused_only(r, req(r.P, body="2\r\n{}\r\n0\r\n\r\n", length=False,
                        headers=["Transfer-Encoding: xchunked"]), (400, 501), close=True)


@row(73, "te-in-http10", "HTTP/1.0 request with `Transfer-Encoding: chunked`",
     "400; connection closed; nothing published",
     "RFC 9112 §6.1: Transfer-Encoding in an HTTP/1.0 message MUST be treated as faulty framing.")
def r073(r):
    refused_only(r, req(r.P, body="2\r\n{}\r\n0\r\n\r\n", version="HTTP/1.0", length=False,
                        headers=["Transfer-Encoding: chunked"]), 400, close=True)


# ---- F. Header lines ----


@row(74, "header-without-colon", "Header line `NoColonHere`",
     "400, malformed request; connection closed", "Not a header field.")
def r074(r):
    refused_only(r, req(r.P, body="{}", headers=["NoColonHere"]), 400, close=True)


@row(75, "obs-fold", "`X-Fold: a` then the continuation line `  b`",
     "400, \"obsolete line folding\"; connection closed; nothing published",
     "RFC 9112 §5.2: a server rejects obs-fold or replaces it by a space; the bridge rejects it: "
     "a folded Transfer-Encoding is a smuggling vector, and no current sender folds.")
def r075(r):
    refused_only(r, req(r.P, body="{}", headers=["X-Fold: a", "  b"]), 400, close=True,
                 words="folding")


@row(76, "obs-fold-first-line", "A continuation line (`  b`) as the first header line",
     "400; connection closed", "Nothing to continue.")
def r076(r):
    refused_only(r, f"POST {r.P} HTTP/1.1\r\n  b\r\nHost: x\r\nContent-Length: 2\r\n\r\n{{}}"
                 .encode(), 400, close=True)


@row(77, "space-before-colon", "`X-Sp : v`", "400; connection closed; nothing published",
     "RFC 9112 §5.1: whitespace between name and colon MUST be rejected with 400 (see #57 for "
     "why).")
def r077(r):
    refused_only(r, req(r.P, body="{}", headers=["X-Sp : v"]), 400, close=True)


@row(78, "empty-header-name", "`: v`", "400; nothing published",
     "A field name is a non-empty token.")
def r078(r):
    refused_only(r, req(r.P, body="{}", headers=[": v"]), 400)


@row(79, "nul-in-header-value", "`X-Nul: ab\\0cd`",
     "400 (or 200 with the NUL replaced by a space, `\"ab cd\"`); never silently truncated",
     "RFC 9110 §5.5: NUL in a field value MUST be rejected or replaced by SP.")
def r079(r):
    c = r.conn()
    a = c.exchange(req(r.P, body="{}", headers=["X-Nul: ab\0cd"]))
    if a is not None and a.status == 200:
        eid = r.accepted(a)
        r.finish()
        v = r.var(eid) if eid else None
        if v is not None:
            r.check(v["headers"].get("X-Nul") == ["ab cd"],
                    f"X-Nul published as {v['headers'].get('X-Nul')!r}, expected 400 or "
                    f"['ab cd']")
    else:
        r.refused(a, 400)


@row(80, "bare-cr-in-header-value", "`X-Cr: a\\rb`",
     "400; connection closed (or 200 with `\"a b\"`)",
     "RFC 9110 §5.5, as #79.")
def r080(r):
    c = r.conn()
    a = c.exchange(req(r.P, body="{}", headers=["X-Cr: a\rb"]))
    if a is not None and a.status == 200:
        eid = r.accepted(a)
        r.finish()
        v = r.var(eid) if eid else None
        if v is not None:
            r.check(v["headers"].get("X-Cr") == ["a b"], f"X-Cr {v['headers'].get('X-Cr')!r}")
    else:
        r.refused(a, 400)
        r.closes(c)


@row(81, "control-chars-in-header-value", "`X-Ctl: a\\x01b\\x7fc`",
     "200; value kept as sent", "RFC 9110 §5.5 lets a recipient retain other CTLs.")
def r081(r):
    v = accepted_only(r, req(r.P, body="{}", headers=["X-Ctl: a\x01b\x7fc"]))
    if v is not None:
        r.check(v["headers"].get("X-Ctl") == ["a\x01b\x7fc"], f"headers {v['headers']}")


INVALID_UTF8 = b"a\xff\xfeb\xc0\xaf\xed\xa0\x80c"  # stray bytes, an overlong '/', a surrogate


@row(82, "invalid-utf8-header-value", "`X-B: a\\xff\\xfeb\\xc0\\xaf\\xed\\xa0\\x80c`",
     "200; each invalid sequence replaced by U+FFFD as Python's `decode('utf-8', 'replace')` "
     "does (`\\xc0\\xaf` gives two, `\\xed\\xa0\\x80` three)",
     "README: invalid UTF-8 in headers is replaced (the maximal-subpart rule, like Java's "
     "decoder).")
def r082(r):
    v = accepted_only(r, req(r.P, body="{}", headers=["X-B: " + INVALID_UTF8.decode("latin-1")]))
    if v is not None:
        want = INVALID_UTF8.decode("utf-8", "replace")
        r.check(v["headers"].get("X-B") == [want], f"X-B {v['headers'].get('X-B')!r} != {want!r}")


@row(83, "invalid-utf8-header-name", "Header `X-\\xff: v`",
     "400, malformed request (invalid character in a header name); connection closed",
     "A field name is a token (RFC 9110 §5.1); values, not names, may carry other bytes.")
def r083(r):
    refused_only(r, req(r.P, body="{}", headers=["X-\xff: v"]), 400, close=True)


@row(84, "bare-lf-line-endings", "The whole request with `\\n` instead of `\\r\\n`",
     "200; body published", "RFC 9112 §2.2: a recipient MAY accept a bare LF as line end.")
def r084(r):
    data = f"POST {r.P} HTTP/1.1\nHost: x\nContent-Length: 7\n\n{{\"a\":1}}".encode()
    check_body(r, accepted_only(r, data), {"a": 1})


@row(85, "too-many-headers", "25 headers (`max_headers` 20)",
     "431, \"Request Header Fields Too Large: ...\"", "limits.max_headers.")
def r085(r):
    refused_only(r, req(r.P, body="{}", headers=[f"X-H{i}: v" for i in range(25)]), 431,
                 "header")


@row(86, "ten-thousand-headers", "10 000 headers `X-Hn: v` (about 100 KB)",
     "431, JSON message", "Past max_headers and max_header_bytes: the same answer as #85, "
     "however far past.")
def r086(r):
    refused_only(r, req(r.P, body="{}", headers=[f"X-H{i}: v" for i in range(10000)]), 431,
                 "header")


@row(87, "header-over-max-header-bytes", "One 3 KiB header (`max_header_bytes` 2048)",
     "431, JSON message", "limits.max_header_bytes.")
def r087(r):
    refused_only(r, req(r.P, body="{}", headers=["X-Big: " + "b" * 3072]), 431, "header")


@row(88, "one-mebibyte-header-line", "One header line of 1 MiB",
     "431, JSON message; connection may close", "As #87, however far past; memory stays bounded.")
def r088(r):
    refused_only(r, req(r.P, body="{}", headers=["X-Big: " + "b" * (1 << 20)]), 431, "header")


@row(89, "http10-without-host", "`POST {path} HTTP/1.0` without Host",
     "200 (HTTP/1.0 answer); connection closed after it; body published",
     "Host is optional in HTTP/1.0; Kestra accepts it, so do we.")
def r089(r):
    c = r.conn()
    eid = r.accepted(c.exchange(req(r.P, body='{"a":1}', version="HTTP/1.0", host=False)))
    r.closes(c)
    r.finish()
    if eid:
        v = r.var(eid)
        check_body(r, v, {"a": 1})
        r.check("Host" not in v["headers"], f"headers {v['headers']}")


@row(90, "http11-without-host", "`POST {path} HTTP/1.1` without Host",
     "200 (Kestra accepts it)",
     "RFC 9112 §3.2 says 400; the bridge follows Kestra, which routes without Host.")
def r090(r):
    accepted_only(r, req(r.P, body="{}", host=False))


@row(91, "expect-100-continue", "`Expect: 100-continue`, body sent after the interim answer",
     "`100 Continue`, then 200; body published", "RFC 9110 §10.1.1.")
def r091(r):
    c = r.conn()
    c.send(req(r.P, length=False, headers=["Expect: 100-continue", "Content-Length: 7"]))
    interim = c.answer()
    if r._valid_answer(interim, "interim answer"):
        r.check(interim.status == 100, f"interim answer {interim!r}, expected 100 Continue")
    eid = r.accepted(c.exchange(b'{"a":1}'))
    r.finish()
    if eid:
        check_body(r, r.var(eid), {"a": 1})


@row(92, "expect-100-too-large", "`Expect: 100-continue` with `Content-Length: 5000` (limit "
     "4096), no body sent", "413 before any body is sent; connection closed",
     "The client learns the refusal without uploading.")
def r092(r):
    c = r.conn()
    c.send(req(r.P, length=False, headers=["Expect: 100-continue", "Content-Length: 5000"]))
    r.refused(c.answer(), 413)
    r.closes(c)


@row(93, "expect-unknown", "`Expect: tea`", "417, JSON message; connection closed",
     "RFC 9110 §10.1.1: an expectation the server cannot meet.")
def r093(r):
    refused_only(r, req(r.P, body="{}", headers=["Expect: tea"]), 417, close=True)


# ---- G. URI and query ----


@row(94, "uri-over-max-uri-bytes", "A 2000-byte URI (`max_uri_bytes` 1024)",
     "414, \"URI Too Long: ...\"", "limits.max_uri_bytes.")
def r094(r):
    refused_only(r, req(r.P + "?q=" + "a" * 2000, method="GET"), 414, "URI")


@row(95, "uri-100k", "A 100 000-byte URI", "414, \"URI Too Long: ...\" (HTTP/1.1 status line)",
     "As #94, however far past.")
def r095(r):
    refused_only(r, req(r.P + "?q=" + "a" * 100000, method="GET"), 414, "URI")


@row(96, "ten-thousand-parameters", "`?p0=0&p1=1&...&p9999=9999` (`max_uri_bytes` 131072)",
     "200; all 10 000 parameters published in order",
     "Grouping stays linear; nothing dropped.",
     limits=dict(LIMITS, max_uri_bytes=131072))
def r096(r):
    q = "&".join(f"p{i}={i}" for i in range(10000))
    v = accepted_only(r, req(f"{r.P}?{q}", method="GET"))
    if v is not None:
        want = {f"p{i}": [str(i)] for i in range(10000)}
        r.check(v["parameters"] == want and list(v["parameters"]) == list(want),
                "the 10 000 parameters are not published as sent")


@row(97, "ten-thousand-repeats", "`?a=1&a=2&...` 10 000 times the same name",
     "200; `parameters.a` has the 10 000 values in order", "Repeated names keep every value.",
     limits=dict(LIMITS, max_uri_bytes=131072))
def r097(r):
    q = "&".join(f"a={i}" for i in range(10000))
    v = accepted_only(r, req(f"{r.P}?{q}", method="GET"))
    if v is not None:
        r.check(v["parameters"] == {"a": [str(i) for i in range(10000)]},
                "the 10 000 values are not published as sent")


@row(98, "raw-invalid-utf8-query", "`?v=\\xff\\xc3\\xa9` (raw bytes, not escaped)",
     "200; `parameters.v = [\"\\ufffdé\"]`", "Invalid UTF-8 is replaced, valid UTF-8 kept.")
def r098(r):
    v = accepted_only(r, req(r.P + "?v=\xff\xc3\xa9", method="GET"))
    if v is not None:
        r.check(v["parameters"] == {"v": ["\ufffd\u00e9"]}, f"parameters {v['parameters']}")


@row(99, "fragment-in-target", "`{path}?a=1#frag`", "200; `parameters = {\"a\": [\"1\"]}`",
     "A fragment is never part of the query.")
def r099(r):
    v = accepted_only(r, req(r.P + "?a=1#frag", method="GET"))
    if v is not None:
        r.check(v["parameters"] == {"a": ["1"]}, f"parameters {v['parameters']}")


# ---- H. Body ----


@row(100, "empty-body", "`POST` with `Content-Length: 0`", "200; no `body` key",
     "Kestra: absent when the body is empty.")
def r100(r):
    check_body(r, accepted_only(r, req(r.P, body="")), BODYLESS)


@row(101, "empty-chunked-body", "Chunked body with only the last chunk `0`",
     "200; no `body` key", "As #100.")
def r101(r):
    check_body(r, accepted_only(r, req(r.P, body="0\r\n\r\n", length=False,
                                       headers=["Transfer-Encoding: chunked"])), BODYLESS)


@row(102, "nul-bytes-in-body", "Body `a\\0b\\0c`", "200; body is the raw string with both NULs",
     "Body bytes are data, not C strings.")
def r102(r):
    check_body(r, accepted_only(r, req(r.P, body="a\0b\0c")), "a\0b\0c")


@row(103, "invalid-utf8-body", "Body `a\\xff\\xfeb\\xc0\\xaf\\xed\\xa0\\x80c`",
     "200; raw string, invalid sequences replaced by U+FFFD as in #82", "Kestra decodes with "
     "U+FFFD.")
def r103(r):
    v = accepted_only(r, req(r.P, body=INVALID_UTF8.decode("latin-1")))
    check_body(r, v, INVALID_UTF8.decode("utf-8", "replace"))


@row(104, "deeply-nested-arrays", "`[` × 100 000 then `]` × 100 000",
     "200; body kept as the raw string", "Deeper than 29 levels is text; no stack overflow.",
     limits=dict(LIMITS, max_body_bytes=262144))
def r104(r):
    body = "[" * 100000 + "]" * 100000
    check_body(r, accepted_only(r, req(r.P, body=body)), body)


@row(105, "deeply-nested-objects", "`{\"a\":` × 40 000, `1`, `}` × 40 000",
     "200; body kept as the raw string", "As #104 with objects.",
     limits=dict(LIMITS, max_body_bytes=262144))
def r105(r):
    body = '{"a":' * 40000 + "1" + "}" * 40000
    check_body(r, accepted_only(r, req(r.P, body=body)), body)


@row(106, "unclosed-nesting", "`[` × 200 000, never closed", "200; body kept as the raw string",
     "Truncated JSON is text.", limits=dict(LIMITS, max_body_bytes=262144))
def r106(r):
    body = "[" * 200000
    check_body(r, accepted_only(r, req(r.P, body=body)), body)


@row(107, "integer-1000-digits", "`{\"n\":111…1}` with a 1000-digit integer",
     "200; `n` is a float64 (+inf, the integer is past float64's range)",
     "Integers beyond 64 bits become float64 (README).")
def r107(r):
    v = accepted_only(r, req(r.P, body='{"n":' + "1" * 1000 + "}"))
    if v is not None:
        n = v.get("body", {}).get("n") if isinstance(v.get("body"), dict) else None
        r.check(isinstance(n, float) and math.isinf(n) and n > 0, f"n = {str(n)[:80]}")


@row(108, "number-1001-digits", "`{\"n\":111…1}` with a 1001-digit number",
     "200; body kept as the raw string", "Numbers longer than 1000 characters are text.")
def r108(r):
    body = '{"n":' + "1" * 1001 + "}"
    check_body(r, accepted_only(r, req(r.P, body=body)), body)


@row(109, "extreme-floats", "`[1e400,1e-400,-0,123456789012345678901234567890]`",
     "200; `[+inf, 0.0, 0, 1.2345678901234568e29]`",
     "Overflow is infinity, underflow zero, -0 the integer 0, a 30-digit integer a float.")
def r109(r):
    v = accepted_only(r, req(r.P, body="[1e400,1e-400,-0,123456789012345678901234567890]"))
    if v is not None:
        b = v.get("body")
        ok = (isinstance(b, list) and len(b) == 4 and b[0] == float("inf")
              and b[1] == 0.0 and type(b[1]) is float and b[2] == 0 and type(b[2]) is int
              and b[3] == 1.2345678901234568e29 and type(b[3]) is float)
        r.check(ok, f"body {b!r}")


@row(110, "fraction-2000-digits", "`{\"n\":0.111…1}` with 2000 fraction digits",
     "200; body kept as the raw string", "As #108.")
def r110(r):
    body = '{"n":0.' + "1" * 2000 + "}"
    check_body(r, accepted_only(r, req(r.P, body=body)), body)


# ---- I. Connections ----


@row(111, "pipelined-three", "Three POSTs (`{\"i\":1..3}`) in one send on one connection",
     "Three 200s in order; each message in Kafka once with its own body",
     "HTTP/1.1 pipelining.")
def r111(r):
    c = r.conn()
    c.send(b"".join(req(r.P, body=f'{{"i":{i}}}') for i in (1, 2, 3)))
    ids = [r.accepted(c.answer(), f"answer {i}") for i in (1, 2, 3)]
    r.finish()
    for i, eid in enumerate(ids, 1):
        if eid:
            check_body(r, r.var(eid), {"i": i})


@row(112, "pipelined-good-404-good", "POST, POST to an unknown path, POST, in one send",
     "200, 404, 200 in order; the two good ones in Kafka", "A miss does not break the connection.")
def r112(r):
    c = r.conn()
    c.send(req(r.P, body='{"i":1}') + req("/nope", body="x") + req(r.P, body='{"i":3}'))
    e1 = r.accepted(c.answer(), "answer 1")
    r.refused(c.answer(), 404, what="answer 2")
    e3 = r.accepted(c.answer(), "answer 3")
    r.finish()
    for i, eid in ((1, e1), (3, e3)):
        if eid:
            check_body(r, r.var(eid), {"i": i})


@row(113, "pipelined-good-garbage-good", "POST, `GARBAGE\\r\\n\\r\\n`, POST, in one send",
     "200; then 400 JSON and the connection closes; the third request never runs",
     "The first, accepted, is not lost; nothing after garbage is trusted.")
def r113(r):
    accepted_then_refused(r, req(r.P, body='{"i":1}') + b"GARBAGE\r\n\r\n"
                          + req(r.P, body='{"i":3}'))


def accepted_then_refused(r, data):
    """data in one send: a POST of {"i":1}, then something that is not a request to run. The
    first is answered and published, the next answer is a 400, and the connection closes."""
    c = r.conn()
    c.send(data)
    e1 = r.accepted(c.answer(), "answer 1")
    r.refused(c.answer(), 400, what="answer 2")
    r.closes(c)
    r.finish()
    if e1:
        check_body(r, r.var(e1), {"i": 1})


def _partial_then(r, data, rst):
    c = r.conn()
    if rst:
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    c.send(data)
    time.sleep(0.2)
    c.close()
    time.sleep(0.3)


@row(114, "disconnect-mid-body", "`Content-Length: 100`, 5 body bytes, then FIN",
     "No answer possible; nothing published; the bridge keeps serving",
     "An incomplete body is never published.")
def r114(r):
    _partial_then(r, req(r.P, length=False, headers=["Content-Length: 100"]) + b'{"a":', False)


@row(115, "reset-mid-body", "As #114, but the client resets the connection (RST)",
     "Nothing published; the bridge keeps serving", "As #114.")
def r115(r):
    _partial_then(r, req(r.P, length=False, headers=["Content-Length: 100"]) + b'{"a":', True)


@row(116, "disconnect-mid-headers", "Request line and half a header, then FIN",
     "Nothing published; the bridge keeps serving", "As #114.")
def r116(r):
    _partial_then(r, f"POST {r.P} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Half: ab".encode(), False)


@row(117, "hang-up-after-full-request", "A complete POST, then the client closes at once",
     "The message is published exactly once",
     "A complete request is accepted work: never lost, never doubled.")
def r117(r):
    _partial_then(r, req(r.P, body='{"hung":"up"}'), False)
    r.finish(anonymous=1)
    if len(r.anon) == 1:
        r.check(r.anon[0]["trigger"]["variables"].get("body") == {"hung": "up"},
                f"published {r.anon[0]['trigger']['variables']}")


def _trickle(r, head, drip, what):
    """Sends head, then drip every 0.25 s; the bridge must close (or answer 408) in time."""
    c = r.conn()
    c.send(head)
    start = time.monotonic()
    limit = SLOW_TIMEOUT_MS / 1000 + SLOW_MARGIN
    closed_at = None
    answered = False
    while time.monotonic() - start < 3 * SLOW_TIMEOUT_MS / 1000:
        c.send(drip)
        if c.send_error is not None:
            closed_at = time.monotonic() - start
            break
        closed, extra = c.wait_closed(0.25)
        if extra:
            c.buf = extra
            r.refused(c.answer(), 408, what=f"{what}: answer")
            answered = True
        if closed:
            closed_at = time.monotonic() - start
            break
    r.check(closed_at is not None and closed_at <= limit,
            f"{what}: connection still open {time.monotonic() - start:.1f}s after its first byte"
            if closed_at is None else f"{what}: closed only after {closed_at:.1f}s")
    r.check(answered, f"{what}: closed without a 408 answer")


@row(118, "slow-headers", "Request line, then one header line every 0.25 s, forever "
     "(`header_timeout_ms` 2000)",
     "408 JSON, connection closed, by header_timeout_ms + 1.5 s; nothing published",
     "header_timeout_ms bounds the whole head from its first byte, however the bytes trickle in, "
     "so a slowloris client cannot hold a connection.", limits=SLOW_LIMITS, kafka_cfg=SLOW_KAFKA)
def r118(r):
    _trickle(r, f"POST {r.P} HTTP/1.1\r\nHost: 127.0.0.1\r\n".encode(), b"X-Slow: 1\r\n",
             "slow headers")


@row(119, "slow-body", "`Content-Length: 4000`, then one body byte every 0.25 s",
     "408 JSON, connection closed, by body_timeout_ms + 1.5 s; nothing published",
     "As #118, for body_timeout_ms.", limits=SLOW_LIMITS, kafka_cfg=SLOW_KAFKA)
def r119(r):
    _trickle(r, req(r.P, length=False, headers=["Content-Length: 4000"]), b"a", "slow body")


@row(120, "stalled-request", "Half a request, then silence (`body_timeout_ms` 2000)",
     "408 JSON, connection closed, by body_timeout_ms + 1.5 s; nothing published",
     "Idle partial requests do not pile up.", limits=SLOW_LIMITS, kafka_cfg=SLOW_KAFKA)
def r120(r):
    c = r.conn()
    c.send(req(r.P, length=False, headers=["Content-Length: 10"]) + b"abc")
    closed, extra = c.wait_closed(SLOW_TIMEOUT_MS / 1000 + SLOW_MARGIN)
    if extra:
        c.buf = extra
        r.refused(c.answer(), 408)
    r.check(closed, "stalled request: connection still open past request_timeout_ms")


@row(121, "tls-client-hello", "A TLS 1.3 ClientHello (fixed bytes, no 0x0A) sent to the "
     "plain-HTTP port",
     "400 JSON, or closed without an answer by request_timeout_ms + 1.5 s",
     "A client with the wrong scheme gets a prompt end, not a hung connection.",
     limits=SLOW_LIMITS, kafka_cfg=SLOW_KAFKA)
def r121(r):
    # Fixed bytes without 0x0A: with a newline in it, libevent would see a (malformed) line.
    hello = (bytes.fromhex("16030100c4010000c00303") + b"\x5a" * 32
             + b"\x00\x00\x02\x13\x01\x01\x00\x00\x95" + b"\x00" * 0x95)
    assert b"\n" not in hello
    c = r.conn()
    c.send(hello)
    closed, extra = c.wait_closed(SLOW_TIMEOUT_MS / 1000 + SLOW_MARGIN)
    if extra:
        c.buf = extra
        r.refused(c.answer(), 400)
    r.check(closed, "TLS ClientHello: connection still open past request_timeout_ms")



# ---- J. Bodies past libevent's 4096-byte read ----
# libevent 2.1 reads a socket 4096 bytes at a time; conn.c reads the rest of a body whose
# Content-Length it knows in one go, ahead of evhttp (README "Performance"). These rows send
# bodies across that line in the ways that could go wrong: what follows the body, and a body
# that is not all there yet.


BIG_BODIES = dict(LIMITS, max_body_bytes=262144)


def padded(i, size):
    """A JSON object of about `size` bytes whose value says which request it was."""
    return {"i": i, "pad": "x" * size}


@row(122, "pipelined-large-bodies", "A 40 KB JSON POST, a 7 KB one and a 20-byte one, in one send",
     "Three 200s in order; each body in Kafka whole",
     "A body read ahead of libevent ends where its Content-Length says; the bytes after it are "
     "the next request.", limits=BIG_BODIES)
def r122(r):
    bodies = [padded(1, 40000), padded(2, 7000), {"i": 3}]
    c = r.conn()
    c.send(b"".join(req(r.P, body=json.dumps(b)) for b in bodies))
    ids = [r.accepted(c.answer(), f"answer {n}") for n in (1, 2, 3)]
    r.finish()
    for b, eid in zip(bodies, ids):
        if eid:
            check_body(r, r.var(eid), b)


@row(123, "large-body-then-garbage", "A 20 KB JSON POST, then `GARBAGE\\r\\n\\r\\n`, in one send",
     "200; then 400 JSON and the connection closes",
     "The framing check sees every byte read ahead, as it sees libevent's reads.",
     limits=BIG_BODIES)
def r123(r):
    body = padded(1, 20000)
    c = r.conn()
    c.send(req(r.P, body=json.dumps(body)) + b"GARBAGE\r\n\r\n")
    e1 = r.accepted(c.answer(), "answer 1")
    r.refused(c.answer(), 400, what="answer to the garbage")
    r.closes(c)
    r.finish()
    if e1:
        check_body(r, r.var(e1), body)


@row(124, "large-body-in-two-sends", "A 20 KB JSON POST: its head and 5000 body bytes, the rest "
     "0.2 s later",
     "200; the body in Kafka whole",
     "Reading ahead takes what the socket has; the rest comes with a later read.",
     limits=BIG_BODIES)
def r124(r):
    body = padded(1, 20000)
    data = req(r.P, body=json.dumps(body))
    cut = data.index(b"\r\n\r\n") + 4 + 5000
    c = r.conn()
    c.send(data[:cut])
    time.sleep(0.2)
    c.send(data[cut:])
    eid = r.accepted(c.answer())
    r.finish()
    if eid:
        check_body(r, r.var(eid), body)


@row(125, "large-body-cut-short", "`Content-Length: 20000`, 10000 body bytes in one send, then "
     "FIN",
     "No answer possible; nothing published; the bridge keeps serving", "As #114.",
     limits=BIG_BODIES)
def r125(r):
    _partial_then(r, req(r.P, length=False, headers=["Content-Length: 20000"]) + b"a" * 10000,
                  False)



def smuggle_behind(r, first):
    """first (a POST of {"i":1}), then a request only a lenient parser would take."""
    smuggled = req(r.P, length=False, headers=["Content-Length : 3"]) + b"abc"
    accepted_then_refused(r, first + smuggled)


@row(126, "te-prefixed-header-name", "A POST with `Transfer-Encodings: x` and `Content-Length: 7`, "
     "then, pipelined, a POST with `Content-Length : 3`",
     "200; then 400 JSON for the second and the connection closes; only the first in Kafka",
     "A name that only begins with Transfer-Encoding is another header: the body is "
     "Content-Length's worth, as evhttp reads it, so the request after it is checked too "
     "(http_parser 2.9.4 read on to the end of the stream, and that request went unchecked).")
def r126(r):
    smuggle_behind(r, req(r.P, body='{"i":1}', headers=["Transfer-Encodings: x"]))


@row(127, "te-prefixed-header-pipelined", "A POST with `Transfer-Encoding-Note: y` and a body, "
     "then another POST, in one send",
     "Two 200s in order; each body in Kafka", "As #126: such a header is an ordinary one.")
def r127(r):
    c = r.conn()
    c.send(req(r.P, body='{"i":1}', headers=["Transfer-Encoding-Note: y"])
           + req(r.P, body='{"i":2}'))
    ids = [r.accepted(c.answer(), f"answer {n}") for n in (1, 2)]
    r.finish()
    for n, eid in enumerate(ids, 1):
        if eid:
            check_body(r, r.var(eid), {"i": n})


@row(128, "te-chunked-tab", "A POST with `Transfer-Encoding: chunked\\t` (a tab after it) and a "
     "chunked body, then, pipelined, a POST with `Content-Length : 3`",
     "200; then 400 JSON for the second and the connection closes; only the first in Kafka",
     "evhttp trims the tab and reads chunks, and so does the check now (http_parser 2.9.4 "
     "did not see chunked there and read on to the end of the stream).")
def r128(r):
    smuggle_behind(r, req(r.P, length=False, headers=["Transfer-Encoding: chunked\t"])
                   + b'7\r\n{"i":1}\r\n0\r\n\r\n')


@row(129, "te-chunked-tab-with-length", "`Transfer-Encoding: chunked\\t` and `Content-Length: 7`",
     "400 JSON, \"invalid or conflicting Content-Length\"; connection closed",
     "The pair is refused whichever way \"chunked\" is spaced (RFC 9112 §6.1: request smuggling).")
def r129(r):
    refused_only(r, req(r.P, body='{"i":1}', headers=["Transfer-Encoding: chunked\t"]), 400,
                 "Content-Length", close=True)


# ==== The test ====


@pytest.mark.parametrize("fn,setup", CASES)
def test_bad_input(kafka, bridge_factory, fn, setup):
    r = Row(kafka, bridge_factory, **setup)
    try:
        fn(r)
        r.finish()
    finally:
        for c in r.conns:
            c.close()
    r.done()


def test_rows_are_numbered_in_order():
    nums = [p.values[0].row["num"] for p in CASES]
    assert nums == list(range(1, len(nums) + 1)), nums


def table_markdown():
    """The table of BAD_INPUTS.md, generated from the rows (`python3 test_bad_inputs.py`)."""
    lines = ["| # | Input | Answer | Why |", "|---|---|---|---|"]
    for p in CASES:
        r = p.values[0].row
        lines.append(f"| {r['num']} | {r['input']} | {r['answer']} | {r['why']} |")
    return "\n".join(lines) + "\n"


def test_doc_table_matches_the_rows():
    doc = (Path(__file__).parent / "BAD_INPUTS.md").read_text()
    assert table_markdown() in doc, "regenerate the table: python3 test_bad_inputs.py"


if __name__ == "__main__":
    print(table_markdown(), end="")
