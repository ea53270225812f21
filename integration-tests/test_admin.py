"""The admin listener: /health, /ready (flows loaded and a broker reachable; 503 with a reason
while every broker is down), 404 for unknown paths and 405 for other methods with JSON bodies,
--admin-listen over the config, "" turning it off, and two bridges sharing one webhook port
(SO_REUSEPORT), both serving."""

import time

from conftest import Names, assert_accepted, assert_json_error, sample, webhook_flow


def wait_status(b, path, status, timeout=20.0):
    deadline = time.monotonic() + timeout
    r = b.admin("GET", path)
    while r.status != status and time.monotonic() < deadline:
        time.sleep(0.2)
        r = b.admin("GET", path)
    return r


def test_health_ready_and_errors(kafka, bridge_factory):
    n = Names()
    b = bridge_factory.start([webhook_flow(n.ns, n.flow, n.key)])
    r = b.admin("GET", "/health")
    assert r.status == 200 and r.json() == {"message": "alive"}, r
    r = wait_status(b, "/ready", 200)
    assert r.status == 200 and r.json() == {"message": "ready"}, r
    for path in ("/", "/metrics/x", "/api/v1/executions/webhook/a/b/c", "/healthz"):
        body = assert_json_error(b.admin("GET", path), 404)
        assert "/metrics" in body["message"]
    for method in ("POST", "PUT", "DELETE", "PATCH"):
        for path in ("/metrics", "/health", "/ready", "/lag"):
            r = b.admin(method, path, body="x")
            assert_json_error(r, 405)
            assert r.header("Allow") == "GET, HEAD"
    r = b.admin("GET", "/metrics")
    assert r.status == 200
    assert r.header("Content-Type").startswith("text/plain; version=0.0.4")
    r = b.admin("GET", "/lag")
    assert r.status == 200 and r.json()["lag"] == []
    # The admin requests are not webhook requests: nothing was counted.
    m = b.metrics()
    assert [k for k in m if k[0] == "webhook_bridge_requests_total"] == []


def test_ready_follows_the_brokers(kafka_private, bridge_private_factory):
    n = Names()
    b = bridge_private_factory.start([webhook_flow(n.ns, n.flow, n.key)])
    assert_accepted(b.post(n.path(), body="x"), n.ns, n.flow)
    assert wait_status(b, "/ready", 200).status == 200
    kafka_private.all_brokers("down")
    try:
        r = wait_status(b, "/ready", 503)
        body = assert_json_error(r, 503)
        assert "Kafka" in body["message"], body
        assert b.admin("GET", "/health").status == 200, "alive while Kafka is away"
    finally:
        kafka_private.all_brokers("up")
    r = wait_status(b, "/ready", 200, timeout=30.0)
    assert r.status == 200, r


def test_admin_listen_option_and_off(kafka, bridge_factory):
    n = Names()
    off = bridge_factory.start([webhook_flow(n.ns, n.flow, n.key)], config={"admin_listen": ""})
    assert off.admin_addr is None
    assert not [r for r in off.log_records() if r.get("msg") == "admin listening"]
    on = bridge_factory.start([webhook_flow(n.ns, n.flow, n.key)], config={"admin_listen": ""},
                              args=["--admin-listen", "127.0.0.1:0"])
    assert on.admin_addr and on.admin("GET", "/health").status == 200


def test_two_bridges_share_one_port(kafka, bridge_factory):
    """SO_REUSEPORT: the second bridge binds the first one's port; the kernel spreads new
    connections over both, and between them they answer every request exactly once."""
    n = Names()
    flow = webhook_flow(n.ns, n.flow, n.key)
    first = bridge_factory.start([flow])
    second = bridge_factory.start([flow], args=["--listen", first.addr])
    assert second.addr == first.addr
    sent = 0
    deadline = time.monotonic() + 60

    def served(b):
        return sample(b.metrics(), "webhook_bridge_requests_total", namespace=n.ns, flow=n.flow,
                      code="200") or 0

    while sent < 200 and time.monotonic() < deadline:
        for _ in range(10):
            assert_accepted(first.post(n.path(), body=str(sent)), n.ns, n.flow)
            sent += 1
        if served(first) > 0 and served(second) > 0:
            break
    a, b = served(first), served(second)
    assert a > 0 and b > 0, f"one bridge took all {sent} connections ({a}, {b})"
    assert a + b == sent
