"""The reference executor (proto/executor.c): it consumes what the bridge published and answers each
execution with state events (proto/SPEC-STATE.md) on the state topic: RUNNING, then the terminal
state configured for the flow, with the configured outputs; a HANG flow never ends."""

from conftest import (STATE_CONTENT_TYPE_V1, assert_accepted, consume, decode_value, proto_decode,
                      uid, webhook_flow)


def _events_by_id(records):
    by_id = {}
    for r in records:
        by_id.setdefault(r.key.decode(), []).append(r)
    return by_id


def test_executor_publishes_states(kafka, bridge_factory, executor_factory, names,
                                   proto_decode_bin):
    flows = {"ok": "SUCCESS", "bad": "FAILED", "stuck": "HANG"}
    bridge = bridge_factory.start([webhook_flow(names.ns, f, names.key, trigger_id=f"t-{f}")
                                   for f in flows])
    state_topic = f"it.states.{uid()}"
    outputs = {"status": "deployed", "n": 3, "list": [1, "two"], "nested": {"ok": True}}

    ids = {}
    for f in flows:
        resp = bridge.post(names.path(flow=f), body='{"x":1}')
        ids[f] = assert_accepted(resp, names.ns, f, trigger_id=f"t-{f}")
    executor_factory.start(names.ns, state_topic, outcomes=flows, outputs={"ok": outputs})

    # RUNNING + SUCCESS, RUNNING + FAILED, RUNNING alone: five events, and no sixth.
    recs = consume(kafka, state_topic, 5, timeout=30, quiet=2.0)
    by_id = _events_by_id(recs)
    assert sorted(by_id) == sorted(ids.values()), recs
    for f, want in flows.items():
        events = by_id[ids[f]]
        # Keyed by execution id: one partition, so in order.
        assert len({r.partition for r in events}) == 1
        states = [decode_value(r.value)["state"] for r in events]
        assert states == (["RUNNING"] if want == "HANG" else ["RUNNING", want]), (f, states)
        for r in events:
            assert r.header_values("content-type") == [STATE_CONTENT_TYPE_V1.encode()]
            assert r.header_values("execution-id") == [ids[f].encode()]
            msg = proto_decode(proto_decode_bin, r.value)
            assert msg["message"] == "executionState"
            assert msg["id"] == ids[f]
            assert (msg["tenantId"], msg["namespace"], msg["flowId"], msg["triggerId"]) == \
                ("main", names.ns, f, f"t-{f}")
            if f == "ok" and msg["state"] == "SUCCESS":
                assert msg["outputs"] == outputs
            else:
                assert "outputs" not in msg, msg


def test_executor_commits_offsets(kafka, bridge_factory, executor_factory, names):
    """A second executor in the same group does not execute again what the first committed."""
    bridge = bridge_factory.start([webhook_flow(names.ns, names.flow, names.key)])
    state_topic = f"it.states.{uid()}"
    group = f"it-exec-{uid()}"
    exec_id = assert_accepted(bridge.post(names.path(), body="one"), names.ns, names.flow)
    first = executor_factory.start(names.ns, state_topic, group=group)
    recs = consume(kafka, state_topic, 2, timeout=30)
    assert [decode_value(r.value)["state"] for r in recs] == ["RUNNING", "SUCCESS"], recs
    assert first.stop() == 0

    executor_factory.start(names.ns, state_topic, group=group)
    second_id = assert_accepted(bridge.post(names.path(), body="two"), names.ns, names.flow)
    recs = consume(kafka, state_topic, 4, timeout=30, quiet=2.0)
    by_id = _events_by_id(recs)
    assert {k: len(v) for k, v in by_id.items()} == {exec_id: 2, second_id: 2}, recs


def test_executor_usage(executor_bin):
    import subprocess
    r = subprocess.run([executor_bin, "--help"], capture_output=True, timeout=10)
    assert r.returncode == 0 and b"--outcome" in r.stdout
    r = subprocess.run([executor_bin, "--bootstrap-servers", "127.0.0.1:1", "--outcome",
                        "ns/f=RUNNING"], capture_output=True, timeout=10)
    assert r.returncode == 2 and b"terminal state" in r.stderr
    r = subprocess.run([executor_bin, "--bootstrap-servers", "127.0.0.1:1", "--outputs",
                        "ns/f=[1]"], capture_output=True, timeout=10)
    assert r.returncode == 2 and b"JSON object" in r.stderr
    r = subprocess.run([executor_bin], capture_output=True, timeout=10)
    assert r.returncode == 2
