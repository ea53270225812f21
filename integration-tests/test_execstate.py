"""The channel back from the executors (proto/SPEC-STATE.md), end to end: two bridge replicas, the
reference executor and one mock cluster. stopAfter disables a trigger on every replica and after a
restart; wait: true answers with the execution's end, as Kestra 1.x does."""

import json
import threading
import time

import msgpack

from conftest import (CONTENT_TYPE_V1, assert_accepted, consume, decode_value, proto_decode, sample,
                      uid, webhook_flow)

DISABLED_BODY = {"message": "Conflict: Cannot execute flow: the webhook trigger is disabled."}
POLL_LIMIT = 30.0  # seconds to wait for a state to show on a replica


def topics():
    s = uid()
    return {"state_topic": f"it.states.{s}", "triggers_topic": f"it.triggers.{s}"}


def create_flow_topics(kafka, ns, flows):
    """The executor's regex subscription must see the flow topics at its first join (conftest)."""
    for f in flows:
        kafka.cmd(f"create-topic webhooks.{ns}.{f} 4 1")


def poll_status(bridge, path, want, limit=POLL_LIMIT):
    """Posts until the answer has status `want` (each post may start an execution); bounded."""
    deadline = time.monotonic() + limit
    while True:
        resp = bridge.post(path, body="{}")
        if resp.status == want or time.monotonic() >= deadline:
            return resp
        time.sleep(0.3)


def trigger_records(kafka, topic, expected):
    recs = consume(kafka, topic, expected, timeout=20)
    return [(r.key.decode(), r.value) for r in recs]


# ==== stopAfter ====


def test_stop_after_disables_on_every_replica_and_survives_restart(
        kafka, bridge_factory, executor_factory, names, proto_decode_bin):
    t = topics()
    stop = "    stopAfter: [FAILED]"
    flows = [webhook_flow(names.ns, "bad", names.key, trigger_extra=stop),
             webhook_flow(names.ns, "good", names.key, trigger_extra=stop)]
    a = bridge_factory.start(flows, kafka=t)
    b = bridge_factory.start(flows, kafka=t)
    create_flow_topics(kafka, names.ns, ["bad", "good"])
    executor_factory.start(names.ns, t["state_topic"], outcomes={"bad": "FAILED", "good": "SUCCESS"})

    good_id = assert_accepted(a.post(names.path(flow="good"), body="{}"), names.ns, "good")
    bad_id = assert_accepted(a.post(names.path(flow="bad"), body="{}"), names.ns, "bad")
    # The replicas write the record when they read the FAILED event.
    assert trigger_records(kafka, t["triggers_topic"], 1)

    # Both replicas answer 409 once the failure is known, whichever replica saw it first.
    for br in (a, b):
        resp = poll_status(br, names.path(flow="bad"), 409)
        assert resp.status == 409, resp
        assert resp.json() == DISABLED_BODY

    # The successful execution ended too, and did not disable its trigger.
    ends = [decode_value(r.value) for r in consume(kafka, t["state_topic"], 4, timeout=30)]
    assert {"id": good_id, "state": "SUCCESS"} in [{"id": e["id"], "state": e["state"]}
                                                  for e in ends]
    for br in (a, b):
        assert_accepted(br.post(names.path(flow="good"), body="{}"), names.ns, "good")

    # The record: one key per trigger; every replica may have written it, all say the same.
    recs = trigger_records(kafka, t["triggers_topic"], 1)
    assert recs and {k for k, _ in recs} == {f"main/{names.ns}/bad/hook"}, recs
    msg = proto_decode(proto_decode_bin, recs[-1][1])
    assert msg["message"] == "triggerState" and msg["disabled"] is True
    assert msg["state"] == "FAILED"
    assert (msg["namespace"], msg["flowId"], msg["triggerId"]) == (names.ns, "bad", "hook")
    # The first failed execution disabled it (later calls were refused, none of them ran).
    assert msg["executionId"] == bad_id

    # A replica started now reads the disabled set before it serves.
    assert a.stop() == 0
    c = bridge_factory.start(flows, kafka=t)
    resp = c.post(names.path(flow="bad"), body="{}")
    assert resp.status == 409 and resp.json() == DISABLED_BODY
    assert_accepted(c.post(names.path(flow="good"), body="{}"), names.ns, "good")


def test_admin_lists_and_re_enables_disabled_triggers(kafka, bridge_factory, executor_factory,
                                                      names):
    """The admin listener lists what stopAfter disabled (with the execution and state that did
    it), and POST /triggers/enable on one replica re-enables the trigger on every replica."""
    t = topics()
    flows = [webhook_flow(names.ns, "bad", names.key, trigger_extra="    stopAfter: [FAILED]")]
    a = bridge_factory.start(flows, kafka=t)
    b = bridge_factory.start(flows, kafka=t)
    create_flow_topics(kafka, names.ns, ["bad"])
    executor_factory.start(names.ns, t["state_topic"], outcomes={"bad": "FAILED"})
    bad_id = assert_accepted(a.post(names.path(flow="bad"), body="{}"), names.ns, "bad")
    for br in (a, b):
        assert poll_status(br, names.path(flow="bad"), 409).status == 409

    assert sample(b.metrics(), "webhook_bridge_triggers_disabled") == 1
    listed = b.admin("GET", "/triggers/disabled").json()["disabled"]
    assert [(d["namespace"], d["flowId"], d["triggerId"], d["state"])
            for d in listed] == [(names.ns, "bad", "hook", "FAILED")], listed
    # The execution that disabled it: bad_id or one started while the failure was on its way.
    ended = {decode_value(r.value)["id"] for r in consume(kafka, t["state_topic"], 2, timeout=30)}
    assert listed[0]["executionId"] in ended | {bad_id}, (listed, ended)

    # Wrong method, malformed body, a trigger that is not disabled: clear answers.
    assert b.admin("GET", "/triggers/enable").status == 405
    assert b.admin("POST", "/triggers/enable", body="not json").status == 400
    other = {"namespace": names.ns, "flowId": "nope", "triggerId": "hook"}
    assert b.admin("POST", "/triggers/enable", body=json.dumps(other)).status == 404

    # No executor from here: the executions started below must not fail and disable it again.
    executor_factory.stop_all()
    body = {"namespace": names.ns, "flowId": "bad", "triggerId": "hook"}
    resp = b.admin("POST", "/triggers/enable", body=json.dumps(body),
                   headers=[("Content-Type", "application/json")])
    assert resp.status == 200, resp
    for br in (a, b):
        resp = poll_status(br, names.path(flow="bad"), 200)
        assert resp.status == 200, resp
        assert br.admin("GET", "/triggers/disabled").json()["disabled"] == []
        assert sample(br.metrics(), "webhook_bridge_triggers_disabled") == 0


def state_record(names, disabled, time_, execution_id=None):
    """A trigger-state record as a replica writes it (proto/SPEC.md), packed."""
    rec = {"formatVersion": 1, "message": "triggerState", "tenantId": "main",
           "namespace": names.ns, "flowId": names.flow, "triggerId": "hook",
           "disabled": disabled, "time": time_}
    if execution_id:
        rec.update(executionId=execution_id, state="FAILED")
    return msgpack.packb(rec)


def disabled_then_enabled(kafka, bridge_factory, names):
    """Writes a disable (execution ended 10:00), starts two replicas that answer 409, writes an
    enable (11:00) and waits until both answer 200. Returns (topics, key, producer, replicas,
    flows, the disable record)."""
    from confluent_kafka import Producer
    t = topics()
    key = f"main/{names.ns}/{names.flow}/hook"
    disabled = state_record(names, True, "2026-11-27T10:00:00.000Z", "0000000000000000000001")
    p = Producer({"bootstrap.servers": kafka.bootstrap})
    p.produce(t["triggers_topic"], disabled, key=key)
    p.flush(10)
    flows = [webhook_flow(names.ns, names.flow, names.key, trigger_extra="    stopAfter: [FAILED]")]
    replicas = (bridge_factory.start(flows, kafka=t), bridge_factory.start(flows, kafka=t))
    for br in replicas:
        resp = br.post(names.path(), body="{}")
        assert resp.status == 409 and resp.json() == DISABLED_BODY, resp
    p.produce(t["triggers_topic"], state_record(names, False, "2026-11-27T11:00:00.000Z"), key=key)
    p.flush(10)
    for br in replicas:
        assert poll_status(br, names.path(), 200).status == 200
    return t, key, p, replicas, flows, disabled


def test_enable_record_enables_on_every_replica(kafka, bridge_factory, names):
    """Re-enabling is a `disabled: false` record (what xs_enable writes) or a tombstone."""
    t, key, p, replicas, _, _ = disabled_then_enabled(kafka, bridge_factory, names)

    # And again: disabled by a later execution, then a tombstone.
    later = state_record(names, True, "2026-11-27T12:00:00.000Z", "0000000000000000000002")
    p.produce(t["triggers_topic"], later, key=key)
    p.flush(10)
    for br in replicas:
        assert poll_status(br, names.path(), 409).status == 409
    p.produce(t["triggers_topic"], None, key=key)
    p.flush(10)
    for br in replicas:
        assert poll_status(br, names.path(), 200).status == 200


def test_stale_disable_after_an_enable_is_ignored_and_the_enable_restated(kafka, bridge_factory,
                                                                          names):
    """Replicas write trigger-state records independently: a disable decided from an execution
    that ended before an enable can land in the topic after it (its replica was slower to
    produce). Read in topic order it would disable the trigger again on every replica, without a
    word. The bridges must keep it enabled, say so in the log, and write the enable again so that
    the key's last record (what compaction keeps, what a restart reads) is an enable."""
    t, key, p, (a, b), flows, disabled = disabled_then_enabled(kafka, bridge_factory, names)

    # The stale disable (its execution ended at 10:00, before the 11:00 enable) lands last.
    p.produce(t["triggers_topic"], disabled, key=key)
    p.flush(10)
    recs = trigger_records(kafka, t["triggers_topic"], 5)  # 3 written here, 2 restated enables
    assert [k for k, _ in recs] == [key] * len(recs)
    values = [msgpack.unpackb(v) for _, v in recs]
    # Each replica read the stale disable before either restatement, so each restates once.
    assert values[2]["disabled"] is True and len(values) == 5, values
    restated = values[3:]
    assert all(v["disabled"] is False and v["time"] == "2026-11-27T11:00:00.000Z"
               for v in restated), restated
    for br in (a, b):
        resp = br.post(names.path(), body="{}")
        assert resp.status == 200, resp
        assert any(r.get("msg") == "stale trigger-state record ignored" for r in br.log_records())
        assert br.admin("GET", "/triggers/disabled").json()["disabled"] == []

    # A restart reads the topic to its end: the last record is an enable.
    c = bridge_factory.start(flows, kafka=t)
    assert c.post(names.path(), body="{}").status == 200


# ==== wait: true ====


WAIT_FLOWS = {
    # flow: (trigger properties, executor outcome, outputs)
    "outs": ("    wait: true\n    returnOutputs: true", "SUCCESS",
             {"status": "done", "n": 7, "list": [1, "x"], "ok": True}),
    "fails": ("    wait: true", "FAILED", None),
    "fails-outs": ("    wait: true\n    returnOutputs: true", "FAILED", {"why": "boom"}),
    "code": ("    wait: true\n"
             "    responseCode: \"{{ execution.state.current == 'SUCCESS' ? 201 : 418 }}\"",
             "SUCCESS", None),
    "code-out": ("    wait: true\n    returnOutputs: true\n"
                 "    responseCode: \"{{ execution.outputs.code }}\"", "FAILED",
                 {"code": 422}),
    "text": ("    wait: true\n    returnOutputs: true\n    responseContentType: text/plain",
             "SUCCESS", {"challenge": "abc123"}),
    "hang": ("    wait: true", "HANG", None),
}


def start_wait_setup(kafka, bridge_factory, executor_factory, names, replicas=1, config=None):
    t = topics()
    flows = [webhook_flow(names.ns, f, names.key, trigger_extra=extra)
             for f, (extra, _, _) in WAIT_FLOWS.items()]
    bridges = [bridge_factory.start(flows, kafka=t, config=config) for _ in range(replicas)]
    create_flow_topics(kafka, names.ns, WAIT_FLOWS)
    executor_factory.start(names.ns, t["state_topic"],
                           outcomes={f: o for f, (_, o, _) in WAIT_FLOWS.items()},
                           outputs={f: out for f, (_, _, out) in WAIT_FLOWS.items() if out})
    return bridges, t


def test_wait_answers_like_kestra(kafka, bridge_factory, executor_factory, names):
    (br,), t = start_wait_setup(kafka, bridge_factory, executor_factory, names,
                                config={"limits": {"wait_timeout_ms": 25000}})

    resp = br.post(names.path(flow="outs"), body='{"a":1}')
    assert resp.status == 200, resp
    assert resp.header("Content-Type") == "application/json"
    assert resp.json() == WAIT_FLOWS["outs"][2]

    resp = br.post(names.path(flow="fails"), body="{}")
    assert resp.status == 500 and resp.reason == "Internal Server Error", resp
    body = resp.json()
    assert body["state"] == {"current": "FAILED"} and body["flowId"] == "fails", body
    assert body["trigger"]["id"] == "hook"

    resp = br.post(names.path(flow="fails-outs"), body="{}")
    assert resp.status == 500 and resp.json() == {"why": "boom"}, resp

    resp = br.post(names.path(flow="code"), body="{}")
    assert resp.status == 201 and resp.reason == "Created", resp
    assert resp.json()["state"] == {"current": "SUCCESS"}

    resp = br.post(names.path(flow="code-out"), body="{}")
    assert resp.status == 422 and resp.json() == {"code": 422}, resp

    resp = br.post(names.path(flow="text"), body="{}")
    assert resp.status == 200, resp
    assert resp.header("Content-Type") == "text/plain"
    assert resp.body == b"abc123"


def test_wait_limit_gives_504_and_the_execution_goes_on(kafka, bridge_factory, executor_factory,
                                                         names):
    (br,), t = start_wait_setup(kafka, bridge_factory, executor_factory, names,
                                config={"limits": {"wait_timeout_ms": 8000}})
    resp = br.post(names.path(flow="hang"), body="{}")
    assert resp.status == 504, resp
    body = resp.json()
    assert "did not end" in body["message"]
    # The execution exists: its message is in Kafka and the executor reported it RUNNING.
    recs = consume(kafka, f"webhooks.{names.ns}.hang", 1)
    assert [r.key.decode() for r in recs] == [body["id"]]
    assert recs[0].header_values("content-type") == [CONTENT_TYPE_V1.encode()]
    states = [decode_value(r.value) for r in consume(kafka, t["state_topic"], 1, timeout=20)]
    assert [(s["id"], s["state"]) for s in states] == [(body["id"], "RUNNING")]


def test_waiting_replica_answered_whatever_partition(kafka, bridge_factory, executor_factory,
                                                      names):
    """Replica A holds every request; the executor's records land on every partition of the state
    topic, which replica B reads too. Each request on A gets its own execution's end."""
    (a, b), t = start_wait_setup(kafka, bridge_factory, executor_factory, names, replicas=2,
                                 config={"limits": {"wait_timeout_ms": 25000}})
    n = 8
    results = [None] * n

    def call(i):
        results[i] = a.post(names.path(flow="outs"), body=json.dumps({"i": i}))

    threads = [threading.Thread(target=call, args=(i,)) for i in range(n)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(40)
    assert all(r is not None and r.status == 200 for r in results), results
    assert all(r.json() == WAIT_FLOWS["outs"][2] for r in results)
    ends = consume(kafka, t["state_topic"], 2 * n, timeout=20)
    assert len({r.partition for r in ends}) > 1, "all events in one partition: test proves less"
    # B saw the same events: a wait on B is answered as well.
    resp = b.post(names.path(flow="fails"), body="{}")
    assert resp.status == 500 and resp.json()["state"] == {"current": "FAILED"}


def test_client_leaving_frees_the_wait(kafka, bridge_factory, executor_factory, names):
    import socket
    (br,), t = start_wait_setup(kafka, bridge_factory, executor_factory, names,
                                config={"limits": {"wait_timeout_ms": 25000}})
    host, port = br.addr.rsplit(":", 1)
    s = socket.create_connection((host, int(port)), timeout=10)
    path = names.path(flow="hang")
    s.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{{}}".encode())
    # The message reaches Kafka (the request waits), then the client leaves.
    assert len(consume(kafka, f"webhooks.{names.ns}.hang", 1)) == 1
    wait_id = consume(kafka, f"webhooks.{names.ns}.hang", 1)[0].key.decode()
    s.close()
    # The wait is released at once, not at the wait limit (25 s).
    deadline = time.monotonic() + 10
    released = []
    while not released and time.monotonic() < deadline:
        released = [r for r in br.log_records()
                    if r.get("msg") == "client left while waiting; wait released"]
        time.sleep(0.1)
    assert [r["execution"] for r in released] == [wait_id], br.read_log()
    # The bridge still serves, and exits cleanly at the end.
    resp = br.post(names.path(flow="outs"), body="{}")
    assert resp.status == 200


def test_shutdown_answers_waiting_requests(kafka, bridge_factory, executor_factory, names):
    (br,), t = start_wait_setup(kafka, bridge_factory, executor_factory, names,
                                config={"limits": {"wait_timeout_ms": 60000}})
    result = []
    th = threading.Thread(target=lambda: result.append(br.post(names.path(flow="hang"), body="{}")))
    th.start()
    # Wait until the executor reported it RUNNING: the request is then surely waiting.
    assert len(consume(kafka, t["state_topic"], 1, timeout=20)) == 1
    assert br.stop() == 0
    th.join(20)
    assert result and result[0].status == 504, result
    assert "did not end" in result[0].json()["message"]


def test_stop_after_applies_to_executions_that_ended_while_no_replica_ran(
        kafka, bridge_factory, executor_factory, names, proto_decode_bin):
    t = topics()
    flows = [webhook_flow(names.ns, "bad", names.key, trigger_extra="    stopAfter: [FAILED]")]
    a = bridge_factory.start(flows, kafka=t)
    assert a.stop() == 0  # records where it got to in the state topic

    # Another bridge, following other state topics, takes the call while no replica runs.
    other = bridge_factory.start(flows, kafka=topics())
    create_flow_topics(kafka, names.ns, ["bad"])
    executor_factory.start(names.ns, t["state_topic"], outcomes={"bad": "FAILED"})
    bad_id = assert_accepted(other.post(names.path(flow="bad"), body="{}"), names.ns, "bad")
    ends = [decode_value(r.value)["state"] for r in consume(kafka, t["state_topic"], 2, timeout=30)]
    assert ends == ["RUNNING", "FAILED"]

    # No call reaches b before the record shows: b must find the FAILED event by itself.
    b = bridge_factory.start(flows, kafka=t)
    recs = trigger_records(kafka, t["triggers_topic"], 1)
    assert recs, "the replica did not apply the event published while no replica ran"
    assert proto_decode(proto_decode_bin, recs[-1][1])["executionId"] == bad_id
    resp = b.post(names.path(flow="bad"), body="{}")
    assert resp.status == 409 and resp.json() == DISABLED_BODY, resp


def test_wait_outlives_the_inactivity_timeout(kafka, bridge_factory, executor_factory, names):
    """limits.request_timeout_ms bounds a silent connection while reading or writing; a request
    waiting for its execution is neither, and is bounded by limits.wait_timeout_ms only."""
    (br,), t = start_wait_setup(kafka, bridge_factory, executor_factory, names,
                                config={"limits": {"wait_timeout_ms": 7000,
                                                   "request_timeout_ms": 2000},
                                        "kafka": {"delivery_timeout_ms": 1000}})
    # Cut at the inactivity timeout, the connection would close without an answer.
    resp = br.post(names.path(flow="hang"), body="{}")
    assert resp.status == 504 and "did not end within 7000 ms" in resp.json()["message"], resp
