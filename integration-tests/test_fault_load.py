"""The promise under faults: a bounded concurrent load runs while the mock cluster is taken
down and brought back, slowed, and made to return produce errors, and while the bridge is
stopped with SIGTERM. Afterwards, from the requests' answers and the topic's contents:
- every 200 has exactly one message in Kafka, with its id;
- every message in Kafka belongs to a request that was sent (each body carries its request
  number), and no request has two;
- every answer that is not 200 is one a sender retries (503 with Retry-After), or the
  connection was refused after SIGTERM.
The counts are printed (pytest -s shows them)."""

import concurrent.futures
import signal
import threading
import time

from conftest import Names, consume, decode_value, topic_count, webhook_flow

REQUESTS = 600
THREADS = 16
PROPERTIES = {"reconnect.backoff.max.ms": "1000"}


def _send_all(b, n, stop_at=None, pace=0.0):
    """Sends REQUESTS numbered POSTs from THREADS threads, each thread waiting `pace` seconds
    between its requests; returns {number: outcome}."""
    results = {}
    lock = threading.Lock()

    def one(i):
        try:
            r = b.post(n.path(), body=f'{{"request":{i}}}', timeout=30)
            out = ("http", r.status, r.header("Retry-After"),
                   r.json().get("id") if r.status == 200 else None)
        except OSError as e:
            out = ("refused", type(e).__name__, None, None)
        with lock:
            results[i] = out
        if stop_at is not None and i == stop_at[0]:
            stop_at[1]()
        time.sleep(pace)

    with concurrent.futures.ThreadPoolExecutor(max_workers=THREADS) as pool:
        list(pool.map(one, range(REQUESTS)))
    return results


def _check(results, records, sigterm=False):
    by_request = {}
    for rec in records:
        msg = decode_value(rec.value)
        i = msg["trigger"]["variables"]["body"]["request"]
        by_request.setdefault(i, []).append(msg["id"])
    counts = {"200": 0, "503": 0, "refused": 0, "in_kafka": len(records),
              "in_kafka_without_200": 0}
    for i, (kind, status, retry_after, exec_id) in results.items():
        stored = by_request.get(i, [])
        assert len(stored) <= 1, f"request {i} has {len(stored)} messages"
        if kind == "refused":
            assert sigterm, f"request {i}: connection failed ({status}) without a shutdown"
            counts["refused"] += 1
        elif status == 200:
            counts["200"] += 1
            assert stored == [exec_id], f"request {i}: 200 with id {exec_id}, Kafka has {stored}"
        else:
            assert status == 503 and retry_after, f"request {i}: {status} is not retriable"
            counts["503"] += 1
            # A timed-out delivery can still have reached the broker: the sender retries and
            # the executor sees it twice (at-least-once). It is counted, never hidden.
            counts["in_kafka_without_200"] += len(stored)
    assert set(by_request) <= set(results), "a message in Kafka that no request sent"
    print(f"\n{counts}")
    return counts


def _chaos(kafka, stop):
    """Broker faults in a loop until stop is set: all down, back up, slow acks, produce errors.

    The produce errors (push-errors NOT_ENOUGH_REPLICAS / REQUEST_TIMED_OUT) fail one Produce
    request each, while later pipelined requests for the same partition succeed. librdkafka 2.0.2
    then reports the failed batch's messages delivered ("implicitly acked by subsequent batch
    success": NO_ERROR, PERSISTED, offset -1001) although the mock never appended them: its
    rd_kafka_mock_validate_records() returns before any sequence check when the producer has no
    transactional.id, so it accepts sequence n+1 after refusing n. (Apache Kafka refuses that with
    OUT_OF_ORDER_SEQUENCE_NUMBER, except when it holds no state for the producer id on the
    partition.) Before the bridge required an offset for a 200, 1-2 of ~550 answered-200 messages
    were missing in 3 of 4 runs; now those requests get a 503 and the checks below hold."""
    # Down for longer than the delivery timeout (3 s), so some requests must get their 503.
    steps = [("sleep", 1.0), ("all", "down"), ("sleep", 4.5), ("all", "up"), ("sleep", 1.0),
             ("rtt", 300), ("sleep", 1.0), ("rtt", 0),
             ("cmd", "push-errors 0 5 NOT_ENOUGH_REPLICAS"), ("sleep", 1.0),
             ("cmd", "push-errors 0 3 REQUEST_TIMED_OUT"), ("sleep", 1.0)]
    while not stop.is_set():
        for kind, arg in steps:
            if stop.is_set():
                break
            if kind == "sleep":
                stop.wait(arg)
            elif kind == "all":
                kafka.all_brokers(arg)
            elif kind == "rtt":
                kafka.all_rtt(arg)
            else:
                kafka.cmd(arg)
    kafka.all_brokers("up")
    kafka.all_rtt(0)


def test_load_under_broker_faults(kafka_private, bridge_private_factory):
    n = Names()
    b = bridge_private_factory.start(
        [webhook_flow(n.ns, n.flow, n.key)],
        kafka={"delivery_timeout_ms": 3000, "properties": PROPERTIES})
    stop = threading.Event()
    chaos = threading.Thread(target=_chaos, args=(kafka_private, stop))
    chaos.start()
    try:
        results = _send_all(b, n, pace=0.25)
    finally:
        stop.set()
        chaos.join(30)
    oks = sum(1 for r in results.values() if r[1] == 200)
    records = consume(kafka_private, n.topic, oks, quiet=3.0)
    print(f"\n200s: {oks}, consumed: {len(records)}, watermarks: {topic_count(kafka_private, n.topic)}")
    counts = _check(results, records)
    unconfirmed = sum(1 for r in b.log_records() if "without an offset" in r.get("msg", ""))
    print(f"reported delivered without an offset (answered 503): {unconfirmed}")
    assert counts["200"] > 0 and counts["503"] > 0, f"the faults had no visible effect: {counts}"


def test_sigterm_under_load(kafka_private, bridge_private_factory):
    n = Names()
    b = bridge_private_factory.start(
        [webhook_flow(n.ns, n.flow, n.key)],
        kafka={"delivery_timeout_ms": 3000, "properties": PROPERTIES})
    kafka_private.all_rtt(100)
    stop_at = [REQUESTS // 2, lambda: b.proc.send_signal(signal.SIGTERM)]
    try:
        results = _send_all(b, n, stop_at=stop_at)
        code = b.proc.wait(20)
    finally:
        kafka_private.all_rtt(0)
    b.stopped = True
    assert code == 0
    records = consume(kafka_private, n.topic, sum(1 for r in results.values() if r[1] == 200),
                      quiet=2.0)
    counts = _check(results, records, sigterm=True)
    assert counts["200"] >= REQUESTS // 2 - THREADS, counts
