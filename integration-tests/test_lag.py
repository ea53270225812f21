"""Consumer lag against groups that committed known offsets: end offsets minus commits, per
partition and summed, a partition without a commit counted from its low watermark; groups from
lag.groups, lag.flow_groups and --lag-group; /metrics and /lag agree."""

import time
import uuid

from confluent_kafka import Consumer, TopicPartition

from conftest import Names, assert_accepted, sample, samples, topic_partitions, webhook_flow

N = 23


def committer(kafka, group):
    return Consumer({"bootstrap.servers": kafka.bootstrap, "group.id": group,
                     "enable.auto.commit": False, "log_level": 3})


def watermarks(kafka, topic):
    c = committer(kafka, f"it-wm-{uuid.uuid4().hex}")
    try:
        return {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=5)
                for p in topic_partitions(c, topic)}
    finally:
        c.close()


def commit(kafka, group, topic, offsets):
    """Commits {partition: offset} for group on explicit partitions (no subscription)."""
    c = committer(kafka, group)
    try:
        c.commit(offsets=[TopicPartition(topic, p, o) for p, o in offsets.items()],
                 asynchronous=False)
    finally:
        c.close()


def test_lag_against_known_commits(kafka, bridge_factory):
    n, other = Names(), Names()
    g_half, g_flow, g_none, g_cli = (f"it-{x}-{n.suffix}" for x in ("half", "flow", "none", "cli"))
    # sticky_ms 0: the messages spread over every partition (with the default 10 ms groups, a
    # fast run could put them all in one), so that per-partition commits are tested.
    b = bridge_factory.start(
        [webhook_flow(n.ns, n.flow, n.key), webhook_flow(other.ns, other.flow, other.key)],
        config={"lag": {"groups": [g_half, g_none], "interval_ms": 300,
                        "flow_groups": {f"{n.ns}/{n.flow}": [g_flow]}}},
        kafka={"sticky_ms": 0}, args=["--lag-group", g_cli])
    for i in range(N):
        assert_accepted(b.post(n.path(), body=str(i)), n.ns, n.flow)
    wm = watermarks(kafka, n.topic)
    assert len(wm) == 4 and sum(hi - lo for lo, hi in wm.values()) == N, wm

    # g_half: half of each partition that has messages, except the first such one (no commit:
    # it counts from the low watermark). g_flow: everything.
    with_msgs = sorted(p for p, (lo, hi) in wm.items() if hi > lo)
    assert with_msgs
    half = {p: wm[p][1] // 2 for p in with_msgs[1:]}
    commit(kafka, g_half, n.topic, half)
    commit(kafka, g_flow, n.topic, {p: hi for p, (lo, hi) in wm.items()})
    want_part = {p: hi - half.get(p, lo) for p, (lo, hi) in wm.items()}
    want_half = sum(want_part.values())
    assert 0 < want_half < N

    def lag(m, group, topic=n.topic):
        return sample(m, "webhook_bridge_consumer_lag", topic=topic, group=group)

    deadline = time.monotonic() + 20
    m = b.metrics()
    while (lag(m, g_half), lag(m, g_flow)) != (want_half, 0) and time.monotonic() < deadline:
        time.sleep(0.2)
        m = b.metrics()
    assert lag(m, g_half) == want_half
    assert lag(m, g_flow) == 0
    assert lag(m, g_none) == N, "no commit: everything from the low watermark"
    assert lag(m, g_cli) == N
    parts = {int(lb["partition"]): v for lb, v in samples(m, "webhook_bridge_consumer_lag_partition")
             if lb["topic"] == n.topic and lb["group"] == g_half}
    assert parts == want_part
    # The other flow's topic: only the global groups, and no messages yet.
    assert {lb["group"] for lb, _ in samples(m, "webhook_bridge_consumer_lag")
            if lb["topic"] == other.topic} == {g_half, g_none, g_cli}
    assert lag(m, g_half, other.topic) == 0
    assert sample(m, "webhook_bridge_consumer_lag_refresh_timestamp_seconds") > time.time() - 60

    r = b.admin("GET", "/lag")
    assert r.status == 200 and r.header("Content-Type") == "application/json"
    doc = r.json()
    assert doc["interval_ms"] == 300 and doc["refreshed_at"]
    entry = {(e["topic"], e["group"]): e for e in doc["lag"]}
    assert len(entry) == 7
    e = entry[(n.topic, g_half)]
    assert e["error"] is None
    json_parts = {p["partition"]: p for p in e["partitions"]}
    assert set(json_parts) == set(wm)
    for p, (lo, hi) in wm.items():
        assert json_parts[p]["low"] == lo and json_parts[p]["high"] == hi
        assert json_parts[p]["committed"] == half.get(p)
        assert json_parts[p]["lag"] == want_part[p]
    # /metrics and /lag come from the same refresh only if none happened in between; the
    # commits are fixed and no traffic flows now, so both must show the same numbers.
    for (topic, group), ent in entry.items():
        assert ent["lag"] == lag(b.metrics(), group, topic), (topic, group)


def test_lag_unreadable_while_brokers_down(kafka_private, bridge_private_factory):
    """No answer from the cluster: /lag names the error, /metrics drops the samples rather than
    show a stale or invented value, and both come back with the brokers."""
    n = Names()
    group = f"it-down-{n.suffix}"
    b = bridge_private_factory.start([webhook_flow(n.ns, n.flow, n.key)],
                                     config={"lag": {"groups": [group], "interval_ms": 200}})
    assert_accepted(b.post(n.path(), body="x"), n.ns, n.flow)

    def lag(m):
        return sample(m, "webhook_bridge_consumer_lag", topic=n.topic, group=group)

    def wait(cond, timeout=30.0):
        deadline = time.monotonic() + timeout
        m = b.metrics()
        while not cond(m) and time.monotonic() < deadline:
            time.sleep(0.2)
            m = b.metrics()
        return m

    assert lag(wait(lambda m: lag(m) == 1)) == 1
    kafka_private.all_brokers("down")
    try:
        # A refresh that began just before the brokers went down may first wait out its queries
        # (5 s each, lag.c QUERY_TIMEOUT_MS); on a loaded machine that adds up.
        m = wait(lambda m: lag(m) is None, timeout=90.0)
        assert lag(m) is None
        doc = b.admin("GET", "/lag").json()
        assert len(doc["lag"]) == 1, doc
        assert doc["lag"][0]["lag"] is None and doc["lag"][0]["error"], doc
    finally:
        kafka_private.all_brokers("up")
    assert lag(wait(lambda m: lag(m) == 1)) == 1
