"""/metrics after known traffic: every counter of the operations issue asserted with its exact
value (requests by flow and status, body bytes, conditions false, rejections by reason, accepted =
delivered + failed + in flight, ack latency histogram, delivery errors, producer queue, brokers),
and the request log line: JSON, with flow, execution id, status and latency, never the key."""

import socket
import threading
import time

from conftest import (Names, assert_accepted, assert_json_error, assert_not_found, sample,
                      samples, webhook_flow)

COND = ("    conditions:\n      - type: io.kestra.plugin.core.condition.Expression\n"
        "        expression: \"{{ trigger.body.ok == true }}\"\n")
JSON = [("Content-Type", "application/json")]
NONE = {"namespace": "", "flow": ""}


def labels(n):
    return {"namespace": n.ns, "flow": n.flow}


def raw_status(addr, data, timeout=5):
    host, port = addr.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=timeout) as s:
        s.sendall(data)
        out = b""
        while b"\r\n" not in out:
            chunk = s.recv(4096)
            if not chunk:
                break
            out += chunk
    return int(out.split(b" ")[1])


def codes(m, n):
    """{code: count} of requests_total for one flow's labels."""
    want = labels(n) if isinstance(n, Names) else n
    return {lb["code"]: v for lb, v in samples(m, "webhook_bridge_requests_total")
            if lb["namespace"] == want["namespace"] and lb["flow"] == want["flow"]}


def wait_metric(b, cond, timeout=15.0):
    deadline = time.monotonic() + timeout
    m = b.metrics()
    while not cond(m) and time.monotonic() < deadline:
        time.sleep(0.1)
        m = b.metrics()
    return m


def test_counters_after_known_traffic(kafka, bridge_factory):
    a, c, d, e = Names(), Names(), Names(), Names()
    b = bridge_factory.start(
        [webhook_flow(a.ns, a.flow, a.key),
         webhook_flow(c.ns, c.flow, c.key, trigger_extra=COND),
         webhook_flow(d.ns, d.flow, d.key, flow_extra="disabled: true"),
         webhook_flow(e.ns, e.flow, e.key, trigger_extra="    disabled: true\n")],
        config={"limits": {"max_body_bytes": 4096}})
    m0 = b.metrics()
    assert codes(m0, a) == {}, "no sample for a status code never answered"

    for body in ("a", "bb", "ccc"):
        assert_accepted(b.post(a.path(), body=body), a.ns, a.flow)
    for body in ('{"ok": false}', '{"ok": 0}'):
        assert b.post(c.path(), body=body, headers=JSON).status == 204
    assert_accepted(b.post(c.path(), body='{"ok": true}', headers=JSON), c.ns, c.flow)
    assert_json_error(b.post(d.path(), body="dd"), 409)
    assert_json_error(b.post(e.path(), body="eee"), 409)
    assert_not_found(b.post(a.path(key="wrong"), body="12345"))
    assert_not_found(b.post(a.path(key="wrong2"), body="1234567"))
    assert_json_error(b.request("DELETE", a.path()), 405)
    status = raw_status(b.addr, f"POST {a.path()} HTTP/1.1\r\nHost: x\r\n"
                                f"Content-Length: 5000\r\n\r\n".encode())
    assert status == 413

    m = b.metrics()
    assert codes(m, a) == {"200": 3}
    assert codes(m, c) == {"200": 1, "204": 2}
    assert codes(m, d) == {"409": 1}
    assert codes(m, e) == {"409": 1}
    assert codes(m, NONE) == {"404": 2, "405": 1, "413": 1}

    body_bytes = "webhook_bridge_request_body_bytes_total"
    assert sample(m, body_bytes, **labels(a)) == 6
    assert sample(m, body_bytes, **labels(c)) == len('{"ok": false}{"ok": 0}{"ok": true}')
    assert sample(m, body_bytes, **labels(d)) == 2
    assert sample(m, body_bytes, **labels(e)) == 3
    assert sample(m, body_bytes, **NONE) == 12  # the 404s; 405 had none, 413 was never read

    assert sample(m, "webhook_bridge_conditions_false_total", **labels(c)) == 2
    assert sample(m, "webhook_bridge_conditions_false_total", **labels(a)) == 0
    rejected = {(lb["code"], lb["reason"]): v
                for lb, v in samples(m, "webhook_bridge_rejected_total")}
    assert rejected == {("404", "not_found"): 2, ("405", "method_not_allowed"): 1,
                        ("409", "flow_disabled"): 1, ("409", "trigger_disabled"): 1,
                        ("413", "http_error"): 1}

    for n, accepted in ((a, 3), (c, 1), (d, 0), (e, 0)):
        assert sample(m, "webhook_bridge_accepted_total", **labels(n)) == accepted
        assert sample(m, "webhook_bridge_delivered_total", **labels(n)) == accepted
        assert sample(m, "webhook_bridge_delivery_failed_total", **labels(n)) == 0
        assert sample(m, "webhook_bridge_ack_duration_seconds_count", **labels(n)) == accepted
        assert sample(m, "webhook_bridge_ack_duration_seconds_bucket", le="+Inf",
                      **labels(n)) == accepted
    assert sample(m, "webhook_bridge_in_flight_requests") == 0
    assert sample(m, "webhook_bridge_in_flight_bytes") == 0
    assert sample(m, "webhook_bridge_flows_loaded") == 4
    # requests = sum over status codes, per flow: the total the senders saw.
    total = sum(v for _, v in samples(m, "webhook_bridge_requests_total"))
    assert total == 3 + 3 + 1 + 1 + 2 + 1 + 1
    hist = sorted((float(lb["le"]), v) for lb, v in
                  samples(m, "webhook_bridge_ack_duration_seconds_bucket")
                  if lb["flow"] == a.flow)
    assert [v for _, v in hist] == sorted(v for _, v in hist), "buckets are cumulative"
    assert sample(m, "webhook_bridge_ack_duration_seconds_sum", **labels(a)) > 0
    assert sample(m, "webhook_bridge_reloads_total", result="ok") == 0
    assert sample(m, "webhook_bridge_reloads_total", result="failed") == 0
    assert sample(m, "webhook_bridge_last_reload_success_timestamp_seconds") == 0

    # Brokers from librdkafka's statistics (every second): all three mock brokers are known, and
    # the ones the producer talks to (partition leaders; librdkafka connects sparsely) are up.
    def known(x):
        return [lb["broker"] for lb, _ in samples(x, "webhook_bridge_broker_up")
                if not lb["broker"].endswith("/bootstrap")]
    m = wait_metric(b, lambda x: len(known(x)) == 3)
    assert len(known(m)) == 3, samples(m, "webhook_bridge_broker_up")
    assert sum(v for _, v in samples(m, "webhook_bridge_broker_up")) >= 1
    rtt = samples(m, "webhook_bridge_broker_rtt_seconds")
    assert {lb["quantile"] for lb, _ in rtt} == {"avg", "0.99"}
    assert all(v >= 0 for _, v in rtt)


def test_failures_overload_and_reconciliation(kafka_private, bridge_private_factory):
    """Every broker down: an accepted request waits (in flight, in the producer queue), the next
    one meets the in-flight budget (503 overloaded), the first fails at its delivery timeout
    (503 delivery failed, a delivery error by Kafka error name). accepted = delivered + failed +
    in flight holds at every step."""
    n = Names()
    b = bridge_private_factory.start(
        [webhook_flow(n.ns, n.flow, n.key)],
        config={"limits": {"max_in_flight": 1}}, kafka={"delivery_timeout_ms": 2000})
    assert_accepted(b.post(n.path(), body="warm-up"), n.ns, n.flow)
    kafka_private.all_brokers("down")
    try:
        first = {}
        t = threading.Thread(target=lambda: first.update(r=b.post(n.path(), body="waits")))
        t.start()
        m = wait_metric(b, lambda x: sample(x, "webhook_bridge_in_flight_requests") == 1)
        lb = labels(n)
        assert sample(m, "webhook_bridge_in_flight_requests") == 1
        assert sample(m, "webhook_bridge_in_flight_bytes") > len("waits")
        assert sample(m, "webhook_bridge_producer_queue_messages") >= 1
        assert sample(m, "webhook_bridge_accepted_total", **lb) == 2
        assert sample(m, "webhook_bridge_delivered_total", **lb) == 1
        assert sample(m, "webhook_bridge_delivery_failed_total", **lb) == 0
        second = b.post(n.path(), body="refused")
        assert_json_error(second, 503)
        t.join(30)
        assert not t.is_alive()
        assert_json_error(first["r"], 503)
    finally:
        kafka_private.all_brokers("up")

    m = b.metrics()
    assert codes(m, n) == {"200": 1, "503": 1}
    assert codes(m, NONE) == {"503": 1}
    assert sample(m, "webhook_bridge_accepted_total", **lb) == 2
    assert sample(m, "webhook_bridge_delivered_total", **lb) == 1
    assert sample(m, "webhook_bridge_delivery_failed_total", **lb) == 1
    assert sample(m, "webhook_bridge_in_flight_requests") == 0
    assert sample(m, "webhook_bridge_ack_duration_seconds_count", **lb) == 2
    # The failed one waited its 2 s delivery timeout: it is above the 1 s bucket.
    assert sample(m, "webhook_bridge_ack_duration_seconds_bucket", le="1", **lb) == 1
    assert sample(m, "webhook_bridge_ack_duration_seconds_sum", **lb) >= 1.5
    rejected = {(x["code"], x["reason"]): v for x, v in samples(m, "webhook_bridge_rejected_total")}
    assert rejected == {("503", "overloaded"): 1, ("503", "delivery_failed"): 1}
    errors = samples(m, "webhook_bridge_delivery_errors_total")
    assert [v for _, v in errors] == [1], errors
    assert errors[0][0]["error"] == "_MSG_TIMED_OUT", errors


def test_request_log_line(kafka, bridge_factory):
    n = Names()
    b = bridge_factory.start([webhook_flow(n.ns, n.flow, n.key)], config={"log_level": "debug"})
    exec_id = assert_accepted(b.post(n.path(), body="x"), n.ns, n.flow)
    wrong = "wrongkey-" + n.suffix
    assert_not_found(b.post(n.path(key=wrong), body="x"))
    # The right key in paths that do not route: after it, and in a misspelt prefix.
    assert_not_found(b.post(n.path() + "/extra", body="x"))
    assert_not_found(b.post(f"/api/v1/executions/webhok/{n.ns}/{n.flow}/{n.key}", body="x"))
    assert b.stop() == 0
    text = b.read_log()
    assert n.key not in text and wrong not in text, "a webhook key reached the log"
    recs = [r for r in b.log_records() if r.get("msg") == "request"]
    ok = [r for r in recs if r.get("execution") == exec_id]
    assert len(ok) == 1, recs
    r = ok[0]
    assert r["level"] == "debug" and r["time"] and r["status"] == "200"
    assert r["namespace"] == n.ns and r["flow"] == n.flow
    assert float(r["latency_ms"]) >= 0
    miss = [r for r in recs if r.get("status") == "404"]
    assert [r["path"] for r in miss] == [n.path(key="********")] * 2 + ["********"], miss
    assert all(float(r["latency_ms"]) >= 0 for r in miss)


def test_broker_rtt_from_statistics(kafka_private, bridge_private_factory):
    """The mock brokers answer 300 ms late: librdkafka's statistics report it, and so do we."""
    n = Names()
    b = bridge_private_factory.start([webhook_flow(n.ns, n.flow, n.key)])
    assert_accepted(b.post(n.path(), body="warm-up"), n.ns, n.flow)
    kafka_private.all_rtt(300)
    try:
        def slow(m):
            return [v for lb, v in samples(m, "webhook_bridge_broker_rtt_seconds")
                    if lb["quantile"] == "avg" and v >= 0.25]
        deadline = time.monotonic() + 20
        m = b.metrics()
        while not slow(m) and time.monotonic() < deadline:
            assert_accepted(b.post(n.path(), body="x"), n.ns, n.flow)
            m = b.metrics()
        assert slow(m), samples(m, "webhook_bridge_broker_rtt_seconds")
        assert all(v < 5 for v in slow(m))
    finally:
        kafka_private.all_rtt(0)
