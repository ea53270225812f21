"""Broker faults, a first simple case (the full fault matrix belongs to a later issue).

Each test has its own mock cluster (kafka_private) so that breaking it cannot disturb the others.
Every wait is bounded: the bridge's kafka.delivery_timeout_ms is 2000 here."""

import re
import time

from conftest import (Names, assert_accepted, assert_json_error, consume, decode_value,
                      sample, webhook_flow)

DELIVERY_TIMEOUT_MS = 2000
MARGIN_S = 3.0  # librdkafka scans for timed-out messages about once a second, plus slack
RECOVERY_S = 30.0

# With every broker down, librdkafka's broker threads sleep in reconnect back-off (up to
# reconnect.backoff.max.ms, 10 s by default) and only scan for timed-out messages between those
# sleeps: a 2 s message.timeout.ms was measured to fail after 2.4 to 10.5 s against this mock.
# Capping the back-off at 1 s keeps the delivery report within about a second of the timeout
# (measured 2.2 to 2.9 s), so the bound below tests the bridge and not librdkafka's back-off.
PROPERTIES = {"reconnect.backoff.max.ms": "1000"}


def start(bridge_private_factory, n, delivery_timeout_ms=DELIVERY_TIMEOUT_MS, properties=None):
    return bridge_private_factory.start(
        [webhook_flow(n.ns, n.flow, n.key)],
        kafka={"delivery_timeout_ms": delivery_timeout_ms,
               "properties": {**PROPERTIES, **(properties or {})}})


def test_all_brokers_down_gives_503_then_recovers(kafka_private, bridge_private_factory):
    n = Names()
    b = start(bridge_private_factory, n)
    first = assert_accepted(b.post(n.path(), body="before"), n.ns, n.flow)

    kafka_private.all_brokers("down")
    t0 = time.monotonic()
    resp = b.post(n.path(), body="during")
    elapsed = time.monotonic() - t0
    assert_json_error(resp, 503)
    assert elapsed < DELIVERY_TIMEOUT_MS / 1000 + MARGIN_S, f"503 took {elapsed:.1f}s"
    retry_after = resp.header("Retry-After")
    assert retry_after is not None and re.fullmatch(r"\d+", retry_after), resp

    kafka_private.all_brokers("up")
    deadline = time.monotonic() + RECOVERY_S
    statuses = []
    while True:
        resp = b.post(n.path(), body="after")
        statuses.append(resp.status)
        if resp.status == 200 or time.monotonic() > deadline:
            break
        assert resp.status == 503, resp
        time.sleep(0.5)
    after = assert_accepted(resp, n.ns, n.flow)

    recs = consume(kafka_private, n.topic, 2)
    ids = [decode_value(r.value)["id"] for r in recs]
    assert first in ids and after in ids, (ids, statuses)


def test_retriable_produce_error_is_retried(kafka_private, bridge_private_factory):
    n = Names()
    b = start(bridge_private_factory, n)
    assert_accepted(b.post(n.path(), body="warm-up"), n.ns, n.flow)
    kafka_private.cmd("push-errors 0 2 NOT_ENOUGH_REPLICAS")
    exec_id = assert_accepted(b.post(n.path(), body="retried"), n.ns, n.flow)
    recs = consume(kafka_private, n.topic, 2)
    bodies = sorted(decode_value(r.value)["trigger"]["variables"]["body"] for r in recs)
    assert bodies == ["retried", "warm-up"], "the retried message arrives exactly once"
    assert exec_id in [decode_value(r.value)["id"] for r in recs]


def test_answer_waits_for_a_slow_ack(kafka_private, bridge_private_factory):
    """With every broker answering 1 s late, the 200 cannot come sooner: it follows the ack.
    The delivery timeout is the default 10 s here: a metadata refresh and the produce request can
    each take the extra second, which 2 s would not always cover."""
    n = Names()
    b = start(bridge_private_factory, n, delivery_timeout_ms=10000)
    assert_accepted(b.post(n.path(), body="warm-up"), n.ns, n.flow)
    kafka_private.all_rtt(1000)
    t0 = time.monotonic()
    exec_id = assert_accepted(b.post(n.path(), body="slow"), n.ns, n.flow)
    elapsed = time.monotonic() - t0
    kafka_private.all_rtt(0)
    assert elapsed >= 0.9, f"answered after {elapsed:.2f}s, before the broker's ack"
    recs = consume(kafka_private, n.topic, 2)
    assert exec_id in [decode_value(r.value)["id"] for r in recs]


def test_client_that_leaves_before_the_ack(kafka_private, bridge_private_factory):
    """A sender that hangs up while its message waits for the broker must not crash the bridge
    (no use of the freed request); the message is still delivered and logged with its outcome,
    and the bridge keeps serving."""
    import socket
    n = Names()
    b = start(bridge_private_factory, n, delivery_timeout_ms=10000)
    assert_accepted(b.post(n.path(), body="warm-up"), n.ns, n.flow)
    kafka_private.all_rtt(1500)
    host, port = b.addr.rsplit(":", 1)
    body = b'{"left":"early"}'
    with socket.create_connection((host, int(port)), timeout=5) as s:
        s.sendall(b"POST " + n.path().encode() + b" HTTP/1.1\r\nHost: x\r\n"
                  b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
        time.sleep(0.2)  # the request is read and handed to Kafka, not yet acknowledged
    deadline = time.monotonic() + 15
    gone = []
    while time.monotonic() < deadline and not gone:
        gone = [r for r in b.log_records() if "client gone" in r.get("msg", "")]
        time.sleep(0.1)
    kafka_private.all_rtt(0)
    assert gone, "no log line for the request whose client left"
    assert gone[0]["status"] == "200"
    recs = consume(kafka_private, n.topic, 2)
    ids = [decode_value(r.value)["id"] for r in recs]
    assert gone[0]["execution"] in ids
    assert_accepted(b.post(n.path(), body="after"), n.ns, n.flow)


def test_in_flight_budget_gives_503_at_once(kafka_private, bridge_private_factory):
    """With limits.max_in_flight 2 and a broker that acknowledges 1.5 s late, two requests wait
    for their ack; the others are refused at once with 503 and Retry-After, and exactly the two
    accepted ones reach Kafka."""
    import concurrent.futures
    n = Names()
    b = bridge_private_factory.start(
        [webhook_flow(n.ns, n.flow, n.key)],
        config={"limits": {"max_in_flight": 2}},
        kafka={"delivery_timeout_ms": 10000, "properties": PROPERTIES})
    assert_accepted(b.post(n.path(), body="warm-up"), n.ns, n.flow)
    kafka_private.all_rtt(1500)
    try:
        def one(i):
            t0 = time.monotonic()
            r = b.post(n.path(), body=f'{{"i":{i}}}')
            return r, time.monotonic() - t0
        with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
            waiting = [pool.submit(one, i) for i in range(2)]
            time.sleep(0.5)  # both are now waiting for their ack
            refused = [one(i) for i in range(2, 6)]
            accepted = [f.result() for f in waiting]
    finally:
        kafka_private.all_rtt(0)
    for resp, elapsed in refused:
        assert_json_error(resp, 503)
        assert resp.header("Retry-After"), resp
        assert elapsed < 0.5, f"refusal took {elapsed:.2f}s"
    ids = [assert_accepted(resp, n.ns, n.flow) for resp, _ in accepted]
    bodies = {decode_value(r.value)["id"]: decode_value(r.value)["trigger"]["variables"]["body"]
              for r in consume(kafka_private, n.topic, 3)}
    assert len(bodies) == 3
    assert sorted(i for i, body in bodies.items() if body != "warm-up") == sorted(ids)


def test_sigterm_answers_every_accepted_request(kafka_private, bridge_private_factory):
    """SIGTERM while 20 requests wait for a slow broker: each gets its real outcome (200, and
    its message is in Kafka), nothing is answered twice, and the bridge exits 0 once they are
    all answered. New connections are refused from the signal on."""
    import concurrent.futures
    import signal
    import socket
    n = Names()
    b = start(bridge_private_factory, n, delivery_timeout_ms=10000)
    assert_accepted(b.post(n.path(), body="warm-up"), n.ns, n.flow)
    kafka_private.all_rtt(1000)
    try:
        with concurrent.futures.ThreadPoolExecutor(max_workers=20) as pool:
            futures = [pool.submit(b.post, n.path(), body=f'{{"i":{i}}}') for i in range(20)]
            time.sleep(0.5)  # all 20 are read and waiting for their ack
            t0 = time.monotonic()
            b.proc.send_signal(signal.SIGTERM)
            time.sleep(0.2)
            host, port = b.addr.rsplit(":", 1)
            try:
                socket.create_connection((host, int(port)), timeout=2).close()
                refused = False
            except OSError:
                refused = True
            answers = [f.result() for f in futures]
        code = b.proc.wait(15)
        elapsed = time.monotonic() - t0
    finally:
        kafka_private.all_rtt(0)
    assert refused, "the listener still accepted connections after SIGTERM"
    ids = [assert_accepted(r, n.ns, n.flow) for r in answers]
    assert code == 0
    assert elapsed < 10, f"shutdown took {elapsed:.1f}s"
    in_kafka = {decode_value(r.value)["id"] for r in consume(kafka_private, n.topic, 21)}
    assert set(ids) <= in_kafka and len(in_kafka) == 21
    b.stopped = True


def test_sigint_drains_like_sigterm(kafka_private, bridge_private_factory):
    """SIGINT (Ctrl-C) is a graceful stop too: a request waiting for a slow ack still gets its
    200, its message is in Kafka, and the exit code is 0."""
    import concurrent.futures
    import signal
    n = Names()
    b = start(bridge_private_factory, n, delivery_timeout_ms=10000)
    assert_accepted(b.post(n.path(), body="warm-up"), n.ns, n.flow)
    kafka_private.all_rtt(1000)
    try:
        with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
            fut = pool.submit(b.post, n.path(), body="in flight")
            time.sleep(0.5)
            b.proc.send_signal(signal.SIGINT)
            answer = fut.result()
        code = b.proc.wait(15)
    finally:
        kafka_private.all_rtt(0)
    exec_id = assert_accepted(answer, n.ns, n.flow)
    assert code == 0
    assert exec_id in {decode_value(r.value)["id"] for r in consume(kafka_private, n.topic, 2)}
    b.stopped = True


def test_second_signal_exits_at_once(kafka_private, bridge_private_factory):
    """An operator who signals twice wants out now: the second SIGTERM ends the process at once,
    though a request still waits for a broker that answers 5 s late (non-zero exit: it did not
    drain)."""
    import concurrent.futures
    import signal
    n = Names()
    b = start(bridge_private_factory, n, delivery_timeout_ms=10000)
    assert_accepted(b.post(n.path(), body="warm-up"), n.ns, n.flow)
    kafka_private.all_rtt(5000)
    try:
        with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
            fut = pool.submit(b.post, n.path(), body="abandoned", timeout=20)
            time.sleep(0.5)
            b.proc.send_signal(signal.SIGTERM)
            time.sleep(0.3)
            assert b.proc.poll() is None, "the first signal must drain, not exit"
            t0 = time.monotonic()
            b.proc.send_signal(signal.SIGTERM)
            code = b.proc.wait(5)
            elapsed = time.monotonic() - t0
            try:
                fut.result()
            except Exception:
                pass  # the connection died with the process: the sender retries
    finally:
        kafka_private.all_rtt(0)
    assert code != 0
    assert elapsed < 2, f"the second signal took {elapsed:.1f}s"
    b.stopped = True
    b.expected_rc = code


def test_sigterm_with_every_broker_down_exits_in_bounded_time(kafka_private,
                                                             bridge_private_factory):
    """With the whole cluster gone, SIGTERM still ends the bridge, exit code 0, within about
    9 s: the execution-state consumer's last commit is given up after 3 s and its destroy waits
    at most the 6 s session timeout. It used to wait for ever on a synchronous commit (then 45 s
    in rd_kafka_destroy), past every orchestrator's grace period."""
    import signal
    import subprocess
    n = Names()
    b = start(bridge_private_factory, n)
    assert_accepted(b.post(n.path(), body="before"), n.ns, n.flow)
    kafka_private.all_brokers("down")
    time.sleep(1.0)  # the broker connections see the cluster gone
    t0 = time.monotonic()
    b.proc.send_signal(signal.SIGTERM)
    try:
        code = b.proc.wait(20)
    except subprocess.TimeoutExpired:
        code = None
    elapsed = time.monotonic() - t0
    assert code == 0, (f"still running {elapsed:.1f}s after SIGTERM", b.read_log()[-3000:])
    assert elapsed < 12, f"shutdown took {elapsed:.1f}s"
    assert any(r.get("msg", "").startswith("execution states: no answer to the last commit")
               for r in b.log_records()), b.read_log()[-3000:]


def test_fatal_producer_error_replaces_the_producer(kafka_private, bridge_private_factory):
    """An out-of-order sequence error is fatal for librdkafka's idempotent producer: from then on
    it refuses every message. The bridge answers the message that hit it with a retriable 503,
    replaces the producer, and serves 200s again without a restart."""
    n = Names()
    b = start(bridge_private_factory, n, delivery_timeout_ms=10000)
    before = assert_accepted(b.post(n.path(), body="before"), n.ns, n.flow)
    kafka_private.cmd("push-errors 0 1 OUT_OF_ORDER_SEQUENCE_NUMBER")
    hit = b.post(n.path(), body="hit")
    assert_json_error(hit, 503)
    assert hit.header("Retry-After"), hit
    after, deadline = [], time.monotonic() + RECOVERY_S
    while len(after) < 3 and time.monotonic() < deadline:
        r = b.post(n.path(), body=f"after-{len(after)}")
        if r.status == 200:
            after.append(assert_accepted(r, n.ns, n.flow))
        else:
            assert_json_error(r, 503)
            time.sleep(0.2)
    assert len(after) == 3, "the bridge did not recover from the fatal error"
    assert any("replaced" in r.get("msg", "") for r in b.log_records())
    ids = {decode_value(r.value)["id"] for r in consume(kafka_private, n.topic, 4)}
    assert {before, *after} <= ids


def test_topic_authorization_failure_is_a_clear_5xx(kafka_private, bridge_private_factory):
    """A permanent refusal of the topic (here authorization) is not worth retrying: 500, and the
    message names Kafka's reason, so the operator sees the cause in the sender's logs too."""
    n = Names()
    b = start(bridge_private_factory, n)
    assert_accepted(b.post(n.path(), body="allowed"), n.ns, n.flow)
    # An ACL change on the broker: the produce request is refused for the topic.
    kafka_private.cmd("push-errors 0 1 TOPIC_AUTHORIZATION_FAILED")
    resp = b.post(n.path(), body="denied")
    body = assert_json_error(resp, 500)
    assert "authorization" in body["message"].lower(), body
    assert resp.header("Retry-After") is None
    assert len(consume(kafka_private, n.topic, 1)) == 1  # only the first one
    m = b.metrics()
    assert sample(m, "webhook_bridge_delivery_errors_total",
                  error="TOPIC_AUTHORIZATION_FAILED") == 1
    assert sample(m, "webhook_bridge_requests_total", namespace=n.ns, flow=n.flow, code="500") == 1


def test_broker_refuses_a_message_as_too_large(kafka_private, bridge_private_factory):
    """The broker's message.max.bytes can be lower than the bridge's limit: its refusal is a
    413 with Kafka's reason, not a retry loop; the next message is stored."""
    n = Names()
    b = start(bridge_private_factory, n)
    assert_accepted(b.post(n.path(), body="warm-up"), n.ns, n.flow)
    kafka_private.cmd("push-errors 0 1 MSG_SIZE_TOO_LARGE")
    resp = b.post(n.path(), body="big")
    body = assert_json_error(resp, 413)
    assert "kafka" in body["message"].lower(), body
    after = assert_accepted(b.post(n.path(), body="after"), n.ns, n.flow)
    ids = [decode_value(r.value)["id"] for r in consume(kafka_private, n.topic, 2)]
    assert after in ids


def test_partition_leaders_move_under_load(kafka_private, bridge_private_factory):
    """Leadership of every partition moves between brokers while 200 requests are sent: the
    producer follows the new leaders; every 200 is in Kafka exactly once, and every other
    answer is a retriable 503."""
    import concurrent.futures
    import threading
    n = Names()
    b = start(bridge_private_factory, n, delivery_timeout_ms=10000)
    assert_accepted(b.post(n.path(), body='{"request":-1}'), n.ns, n.flow)  # creates the topic
    stop = threading.Event()

    def move():
        k = 0
        while not stop.is_set():
            for p in range(4):
                kafka_private.cmd(f"leader {n.topic} {p} {1 + (p + k) % kafka_private.brokers}")
            k += 1
            stop.wait(0.2)

    mover = threading.Thread(target=move)
    mover.start()
    try:
        with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
            answers = list(pool.map(
                lambda i: b.post(n.path(), body=f'{{"request":{i}}}', timeout=30), range(200)))
    finally:
        stop.set()
        mover.join()
    ok = [r.json()["id"] for r in answers if r.status == 200]
    for r in answers:
        if r.status != 200:
            assert_json_error(r, 503)
    recs = consume(kafka_private, n.topic, len(ok) + 1)
    ids = [decode_value(r.value)["id"] for r in recs]
    assert len(ids) == len(set(ids)), "a message stored twice"
    assert set(ok) <= set(ids), f"{len(set(ok) - set(ids))} answered 200 but not in Kafka"
    print(f"\nleader moves: {len(ok)} x 200, {len(answers) - len(ok)} x 503, {len(ids)} in Kafka")


def _first_batch_refused(kafka_private, bridge_private_factory, properties, expect_stored):
    """Posts "warm-up", then "first" and, 1 s later, "second" while every broker answers 3 s late
    and the first Produce request on partition 0 is refused with NOT_ENOUGH_REPLICAS. Returns
    (bridge, names, warm-up id, {body: answer}, {id: body stored in Kafka})."""
    import concurrent.futures
    n = Names()
    kafka_private.cmd(f"create-topic {n.topic} 1 {kafka_private.brokers}")
    b = start(bridge_private_factory, n, delivery_timeout_ms=15000, properties=properties)
    warm = assert_accepted(b.post(n.path(), body="warm-up"), n.ns, n.flow)
    kafka_private.all_rtt(3000)
    kafka_private.cmd("push-errors 0 1 NOT_ENOUGH_REPLICAS")
    try:
        with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
            first = pool.submit(b.post, n.path(), body="first")
            time.sleep(1.0)
            second = pool.submit(b.post, n.path(), body="second")
            answers = {"first": first.result(), "second": second.result()}
    finally:
        kafka_private.all_rtt(0)
    recs = consume(kafka_private, n.topic, expect_stored, quiet=2.0)
    stored = {decode_value(r.value)["id"]: decode_value(r.value)["trigger"]["variables"]["body"]
              for r in recs}
    for body, resp in answers.items():
        if resp.status == 200:
            exec_id = assert_accepted(resp, n.ns, n.flow)
            assert stored.get(exec_id) == body, f"{body!r} answered 200 but is not in Kafka: {stored}"
    return b, n, warm, answers, stored


def test_implicit_ack_is_not_a_200(kafka_private, bridge_private_factory):
    """Two batches of one partition in flight; the broker refuses the first (NOT_ENOUGH_REPLICAS,
    nothing written) and accepts the second. librdkafka 2.0.2's idempotent producer then reports
    the first batch's message delivered ("implicitly acked by subsequent batch success": status
    PERSISTED, no offset) on the inference that a broker only accepts sequence n+1 after n. That
    inference fails on this mock (it checks no sequence for a producer without transactional.id)
    and on Apache Kafka when it holds no state for the producer id on that partition (its first
    batch there, or after producer.id.expiration.ms): it accepts any sequence then. The message is
    not in Kafka, so its request must get a retriable 503, never a 200.

    One partition (create-topic) so both batches share it; every broker answers 3 s late so the
    second request's batch is on the wire (1 s after the first) before the first one's error
    comes back. That needs two requests out on one connection: the bridge's default of one
    (max.in.flight.requests.per.connection 1) retries the first batch before the second leaves,
    so the case cannot arise there; a user may raise it, and the guard must hold then."""
    b, n, warm, answers, stored = _first_batch_refused(
        kafka_private, bridge_private_factory, {"max.in.flight.requests.per.connection": "5"}, 2)
    assert stored == {warm: "warm-up", assert_accepted(answers["second"], n.ns, n.flow): "second"}
    assert_json_error(answers["first"], 503)
    assert answers["first"].header("Retry-After"), answers["first"]
    assert sample(b.metrics(), "webhook_bridge_delivery_errors_total",
                  error="UNCONFIRMED_NO_OFFSET") == 1


def test_default_retries_a_refused_batch_before_the_next(kafka_private, bridge_private_factory):
    """The same refusal with the bridge's defaults (one Produce request out per broker
    connection): the first batch is retried and stored before the second leaves, so both senders
    get a 200, each message is in Kafka once, and nothing is reported without an offset."""
    b, n, warm, answers, stored = _first_batch_refused(kafka_private, bridge_private_factory, None, 3)
    assert stored == {warm: "warm-up",
                      assert_accepted(answers["first"], n.ns, n.flow): "first",
                      assert_accepted(answers["second"], n.ns, n.flow): "second"}, stored
    assert sample(b.metrics(), "webhook_bridge_delivery_errors_total",
                  error="UNCONFIRMED_NO_OFFSET") in (None, 0)
