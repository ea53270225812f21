"""Request limits and malformed requests: each gets its own status and a JSON body with a
message, including the answers libevent's parser gives before the bridge sees the request, and
nothing reaches Kafka. Raw sockets, because HTTP client libraries refuse to send most of these."""

import json
import socket

from conftest import Names, assert_accepted, consume, webhook_flow

LIMITS = {"max_body_bytes": 4096, "max_header_bytes": 2048, "max_headers": 20,
          "max_uri_bytes": 1024}


def raw(addr, data, timeout=5):
    """Sends bytes, reads until the server closes or goes quiet; returns (status, headers, body)."""
    host, port = addr.rsplit(":", 1)
    out = b""
    with socket.create_connection((host, int(port)), timeout=timeout) as s:
        s.sendall(data)
        try:
            while b"\r\n\r\n" not in out or not _complete(out):
                chunk = s.recv(65536)
                if not chunk:
                    break
                out += chunk
        except socket.timeout:
            pass
    head, _, body = out.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
    return status, headers, body


def _complete(out):
    head, _, body = out.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return len(body) >= int(line.split(b":")[1])
    return False


def assert_json_answer(answer, status, words):
    got, headers, body = answer
    assert got == status, answer
    assert headers.get("content-type") == "application/json", answer
    # Whoever wrote the answer (libevent, the bridge, the connection layer), it is dated.
    assert headers.get("date", "").endswith(" GMT"), answer
    msg = json.loads(body)["message"]
    assert words.lower() in msg.lower(), msg


def start(bridge_factory, n):
    return bridge_factory.start([webhook_flow(n.ns, n.flow, n.key)], config={"limits": LIMITS})


def test_limits_and_framing(kafka, bridge_factory):
    n = Names()
    b = start(bridge_factory, n)
    p = n.path()
    post = f"POST {p} HTTP/1.1\r\nHost: x\r\n"
    assert_json_answer(raw(b.addr, (post + "Content-Length: 5000\r\n\r\n").encode()),
                       413, "too large")
    assert_json_answer(raw(b.addr, (post + "Transfer-Encoding: chunked\r\n\r\n"
                                    "1400\r\n" + "a" * 5120 + "\r\n0\r\n\r\n").encode()),
                       413, "too large")
    long_uri = p + "?q=" + "a" * 1100
    assert_json_answer(raw(b.addr, f"GET {long_uri} HTTP/1.1\r\nHost: x\r\n\r\n".encode()),
                       414, "URI")
    many = "".join(f"X-H{i}: v\r\n" for i in range(25))
    assert_json_answer(raw(b.addr, (post + many + "Content-Length: 2\r\n\r\n{}").encode()),
                       431, "header")
    big = "X-Big: " + "b" * 3000 + "\r\n"
    assert_json_answer(raw(b.addr, (post + big + "Content-Length: 2\r\n\r\n{}").encode()),
                       431, "header")
    answer = raw(b.addr, (post + "Content-Length: 2\r\nContent-Length: 2\r\n\r\n{}").encode())
    assert_json_answer(answer, 400, "Content-Length")
    assert answer[1].get("connection") == "close", answer
    assert_json_answer(raw(b.addr, (post + "Content-Length: 2\r\nTransfer-Encoding: chunked"
                                    "\r\n\r\n2\r\n{}\r\n0\r\n\r\n").encode()), 400, "")
    assert_json_answer(raw(b.addr, b"GARBAGE\r\n\r\n"), 400, "malformed")
    assert_json_answer(raw(b.addr, (post + "Bad Header Line\r\n\r\n").encode()), 400, "malformed")
    # Within the limits everything still works, and only that request reached Kafka.
    assert_accepted(b.post(p, body="x" * 4000), n.ns, n.flow)
    assert len(consume(kafka, n.topic, 1)) == 1
