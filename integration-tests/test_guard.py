"""Slow and idle clients (bridge/conn.c): a head or body slower than its timeout gets 408 with a
JSON message and the connection closes; a silent new connection and an idle keep-alive one are
closed; past max_connections a new connection gets 503 with Retry-After. Meanwhile other clients
are served, and a request waiting for Kafka is never timed out by these limits."""

import json
import socket
import time

from conftest import Names, assert_accepted, consume, decode_value, sample, webhook_flow

LIMITS = {"header_timeout_ms": 400, "body_timeout_ms": 400, "idle_timeout_ms": 600,
          "max_connections": 4}


def connect(addr):
    host, port = addr.rsplit(":", 1)
    return socket.create_connection((host, int(port)), timeout=5)


def read_all(s, limit=5.0):
    """Reads until the server closes the connection (bounded)."""
    s.settimeout(limit)
    out = b""
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            out += chunk
    except socket.timeout:
        out += b"<still open>"
    return out


def status_and_json(raw):
    head, _, body = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ")[1])
    return status, head.decode("latin-1"), json.loads(body)


def start(bridge_factory, n):
    return bridge_factory.start([webhook_flow(n.ns, n.flow, n.key)], config={"limits": LIMITS})


def test_slow_head_gets_408_and_others_are_served(kafka, bridge_factory):
    n = Names()
    b = start(bridge_factory, n)
    s = connect(b.addr)
    s.sendall(f"POST {n.path()} HTTP/1.1\r\nHost: x\r\n".encode())  # and then nothing
    t0 = time.monotonic()
    assert_accepted(b.post(n.path(), body="meanwhile"), n.ns, n.flow)
    raw = read_all(s)
    elapsed = time.monotonic() - t0
    status, head, body = status_and_json(raw)
    assert status == 408 and "header" in body["message"], raw
    assert "Connection: close" in head
    assert elapsed < 5.0, f"408 only after {elapsed:.1f}s (header_timeout_ms is 400)"
    s.close()
    assert len(consume(kafka, n.topic, 1)) == 1
    # Answers the connection layer writes itself are counted like any other (no flow: unrouted).
    m = b.metrics()
    assert sample(m, "webhook_bridge_requests_total", namespace="", flow="", code="408") == 1
    assert sample(m, "webhook_bridge_requests_total", namespace=n.ns, flow=n.flow, code="200") == 1


def test_slow_body_gets_408_and_nothing_is_published(kafka, bridge_factory):
    n = Names()
    b = start(bridge_factory, n)
    s = connect(b.addr)
    s.sendall(f"POST {n.path()} HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n{{\"a\"".encode())
    status, _, body = status_and_json(read_all(s))
    assert status == 408 and "body" in body["message"]
    s.close()
    assert_accepted(b.post(n.path(), body="after"), n.ns, n.flow)
    assert len(consume(kafka, n.topic, 1)) == 1


def test_idle_keep_alive_connection_is_closed(kafka, bridge_factory):
    n = Names()
    b = start(bridge_factory, n)
    s = connect(b.addr)
    body = b"{}"
    s.sendall(f"POST {n.path()} HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n".encode() + body)
    s.settimeout(5)
    first = s.recv(65536)
    assert first.startswith(b"HTTP/1.1 200"), first
    t0 = time.monotonic()
    rest = read_all(s)
    assert rest == b"", rest  # closed without another answer
    assert time.monotonic() - t0 > 0.4  # not before idle_timeout_ms
    s.close()


def test_silent_new_connection_is_closed(kafka, bridge_factory):
    n = Names()
    b = start(bridge_factory, n)
    s = connect(b.addr)
    assert read_all(s) == b""  # closed, no answer owed, well before read_all's 5 s
    s.close()


def test_trickled_head_is_bounded(kafka, bridge_factory):
    """A byte now and then does not extend the head's deadline (libevent's own timeout would)."""
    n = Names()
    b = start(bridge_factory, n)
    s = connect(b.addr)
    s.settimeout(0.1)
    data = f"POST {n.path()} HTTP/1.1\r\nHost: x\r\n".encode() + b"X-Slow: 1\r\n" * 100
    got = b""
    t0 = time.monotonic()
    for i in range(len(data)):
        try:
            s.send(data[i:i + 1])
        except OSError:
            break
        try:
            chunk = s.recv(65536)
            if not chunk:
                break
            got += chunk
        except socket.timeout:
            pass
        if got or time.monotonic() - t0 > 10:
            break
    got += read_all(s)
    status, _, body = status_and_json(got)
    assert status == 408 and "header" in body["message"], got
    assert time.monotonic() - t0 < 5.0
    s.close()


def test_waiting_for_kafka_is_not_a_timeout(kafka_private, bridge_private_factory):
    """Head and body timeouts stop once the request is read: with acks 1 s late (over 400 ms),
    the answer is still the 200 from the broker's ack."""
    n = Names()
    b = bridge_private_factory.start([webhook_flow(n.ns, n.flow, n.key)], config={"limits": LIMITS})
    assert_accepted(b.post(n.path(), body="warm-up"), n.ns, n.flow)
    kafka_private.all_rtt(1000)
    try:
        exec_id = assert_accepted(b.post(n.path(), body="slow"), n.ns, n.flow)
    finally:
        kafka_private.all_rtt(0)
    recs = consume(kafka_private, n.topic, 2)
    assert exec_id in [decode_value(r.value)["id"] for r in recs]


def test_connection_cap(kafka, bridge_factory):
    n = Names()
    b = start(bridge_factory, n)
    held = [connect(b.addr) for _ in range(4)]
    extra = connect(b.addr)
    status, head, body = status_and_json(read_all(extra))
    assert status == 503 and "Retry-After" in head and "connections" in body["message"]
    extra.close()
    for s in held:
        s.close()
    # The bridge notices the closed connections within a loop turn; retry briefly, bounded.
    deadline = time.monotonic() + 5
    while True:
        r = b.post(n.path(), body="after")
        if r.status != 503 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert_accepted(r, n.ns, n.flow)
