"""Flows and triggers: which trigger a key selects, how keys are written (secret(), flow.*,
trimming), disabled flows and triggers, and where messages go (topic template and overrides)."""

import json

import pytest

from conftest import (LEGACY_WEBHOOK_TYPE, WEBHOOK_TYPE, Names, assert_accepted,
                      assert_json_error, assert_not_found, b64, check_message, consume,
                      consume_one, decode_value, default_topic, topic_count, uid, webhook_flow,
                      webhook_path)


def flow_with_triggers(ns, flow_id, triggers, flow_extra=""):
    """triggers: list of (id, key, extra_yaml_lines) webhook triggers, in declaration order."""
    lines = [f"id: {flow_id}", f"namespace: {ns}"]
    if flow_extra:
        lines.append(flow_extra)
    lines += ["tasks:", "  - id: t", "    type: io.kestra.plugin.core.debug.Return",
              "    format: x", "triggers:"]
    for tid, key, extra in triggers:
        lines += [f"  - id: {tid}", f"    type: {WEBHOOK_TYPE}", f"    key: {json.dumps(key)}"]
        lines += [f"    {e}" for e in extra]
    return "\n".join(lines) + "\n"


# ==== Which trigger ====


def test_two_webhook_triggers_each_with_its_key(kafka, bridge_factory):
    n = Names()
    k1, k2 = f"first-{uid()}", f"second-{uid()}"
    b = bridge_factory.start([flow_with_triggers(n.ns, n.flow, [("first", k1, []),
                                                                ("second", k2, [])])])
    id1 = assert_accepted(b.post(n.path(key=k1), body="1"), n.ns, n.flow, trigger_id="first")
    id2 = assert_accepted(b.post(n.path(key=k2), body="2"), n.ns, n.flow, trigger_id="second")
    assert_not_found(b.post(n.path(key=f"third-{uid()}"), body="3"))
    recs = consume(kafka, n.topic, 2)
    assert len(recs) == 2
    by_id = {decode_value(r.value)["id"]: r for r in recs}
    assert set(by_id) == {id1, id2}
    check_message(by_id[id1], id1, n.ns, n.flow, "POST", key=k1, trigger_id="first")
    check_message(by_id[id2], id2, n.ns, n.flow, "POST", key=k2, trigger_id="second")
    for key, r in ((k2, by_id[id1]), (k1, by_id[id2])):
        assert key.encode() not in r.value, "the other trigger's key leaked"


def test_equal_keys_first_declared_wins(kafka, bridge_factory):
    n = Names()
    b = bridge_factory.start([flow_with_triggers(n.ns, n.flow, [("first", n.key, []),
                                                                ("second", n.key, [])])])
    for _ in range(2):
        assert_accepted(b.post(n.path(), body="x"), n.ns, n.flow, trigger_id="first")
    recs = consume(kafka, n.topic, 2)
    assert [decode_value(r.value)["trigger"]["id"] for r in recs] == ["first", "first"]


def test_webhook_after_a_schedule_trigger(kafka, bridge_factory):
    n = Names()
    text = f"""\
id: {n.flow}
namespace: {n.ns}
triggers:
  - id: nightly
    type: io.kestra.plugin.core.trigger.Schedule
    cron: "0 0 * * *"
  - id: hook
    type: {WEBHOOK_TYPE}
    key: {n.key}
tasks:
  - id: t
    type: io.kestra.plugin.core.log.Log
    message: hi
labels:
  team: it
description: keys Kestra knows but the bridge ignores
"""
    b = bridge_factory.start([text])
    exec_id = assert_accepted(b.post(n.path(), body="x"), n.ns, n.flow)
    check_message(consume_one(kafka, n.topic), exec_id, n.ns, n.flow, "POST", key=n.key)


def test_legacy_trigger_type(kafka, bridge_factory):
    """The pre-0.17 type name is an alias: answer and message report the current name (SPEC §3)."""
    n = Names()
    b = bridge_factory.start([webhook_flow(n.ns, n.flow, n.key, trigger_type=LEGACY_WEBHOOK_TYPE)])
    exec_id = assert_accepted(b.post(n.path(), body="x"), n.ns, n.flow)
    check_message(consume_one(kafka, n.topic), exec_id, n.ns, n.flow, "POST", key=n.key)


def test_flows_in_other_namespaces_do_not_mix(kafka, bridge_factory):
    a, b_ = Names(), Names()
    b_.flow = a.flow  # same flow id, other namespace
    b = bridge_factory.start([webhook_flow(a.ns, a.flow, a.key), webhook_flow(b_.ns, b_.flow, b_.key)])
    ida = assert_accepted(b.post(a.path(), body="a"), a.ns, a.flow)
    idb = assert_accepted(b.post(b_.path(), body="b"), b_.ns, b_.flow)
    assert_not_found(b.post(a.path(key=b_.key), body="x"))  # a key belongs to its own flow
    check_message(consume_one(kafka, a.topic), ida, a.ns, a.flow, "POST", key=a.key)
    check_message(consume_one(kafka, b_.topic), idb, b_.ns, b_.flow, "POST", key=b_.key)


# ==== How keys are written ====


def test_secret_key_from_environment(kafka, bridge_factory):
    n = Names()
    secret_name = f"HOOK_KEY_{uid().upper()}"
    b = bridge_factory.start([webhook_flow(n.ns, n.flow, f"{{{{ secret('{secret_name}') }}}}")],
                             env={f"SECRET_{secret_name}": b64(n.key)})
    assert_not_found(b.post(n.path(key=b64(n.key)), body="x"))  # the base64 text is not the key
    exec_id = assert_accepted(b.post(n.path(), body="x"), n.ns, n.flow)
    check_message(consume_one(kafka, n.topic), exec_id, n.ns, n.flow, "POST", key=n.key)


def test_secret_key_is_trimmed(kafka, bridge_factory):
    n = Names()
    b = bridge_factory.start([webhook_flow(n.ns, n.flow, "{{ secret('PADDED') }}")],
                             env={"SECRET_PADDED": b64(f" {n.key}\n")})
    exec_id = assert_accepted(b.post(n.path(), body="x"), n.ns, n.flow)
    check_message(consume_one(kafka, n.topic), exec_id, n.ns, n.flow, "POST", key=n.key)


def test_literal_key_is_trimmed(kafka, bridge_factory):
    n = Names()
    b = bridge_factory.start([webhook_flow(n.ns, n.flow, f"  {n.key}  ")])
    assert_not_found(b.post(n.path(key=f"%20%20{n.key}%20%20"), body="x"))
    exec_id = assert_accepted(b.post(n.path(), body="x"), n.ns, n.flow)
    check_message(consume_one(kafka, n.topic), exec_id, n.ns, n.flow, "POST", key=n.key)


@pytest.mark.parametrize("template,attr", [("{{ flow.id }}", "flow"),
                                           ("{{ flow.namespace }}", "ns")])
def test_key_from_flow_variables(kafka, bridge_factory, template, attr):
    n = Names()
    b = bridge_factory.start([webhook_flow(n.ns, n.flow, template)])
    key = getattr(n, attr)
    assert_not_found(b.post(n.path(key=template.replace(" ", "%20")), body="x"))
    exec_id = assert_accepted(b.post(n.path(key=key), body="x"), n.ns, n.flow)
    # The key equals the flow id or namespace here, so it does appear in the message.
    check_message(consume_one(kafka, n.topic), exec_id, n.ns, n.flow, "POST")


def test_longest_key(kafka, bridge_factory):
    n = Names()
    n.key = ("k" + uid(31)) * 8  # 256 characters, the maximum
    assert len(n.key) == 256
    b = bridge_factory.start([webhook_flow(n.ns, n.flow, n.key)])
    exec_id = assert_accepted(b.post(n.path(), body="x"), n.ns, n.flow)
    check_message(consume_one(kafka, n.topic), exec_id, n.ns, n.flow, "POST", key=n.key)


# ==== Disabled ====


def _disabled_case(kafka, bridge_factory, flow_extra, trigger_extra):
    n = Names()
    b = bridge_factory.start([flow_with_triggers(n.ns, n.flow, [("hook", n.key, trigger_extra)],
                                                 flow_extra=flow_extra)])
    for tenant in (None, "main"):
        body = assert_json_error(b.post(n.path(tenant=tenant), body="x"), 409)
        assert "disabled" in body["message"], body
    # Without the key a disabled flow is just as unknown as a missing one.
    wrong = b.post(n.path(key="wrong-" + uid()), body="x")
    assert_not_found(wrong)
    unknown = b.post(n.path(flow="nope-" + uid()), body="x")
    assert wrong.comparable() == unknown.comparable()
    assert topic_count(kafka, n.topic) == 0


def test_disabled_flow_is_409_with_key_404_without(kafka, bridge_factory):
    _disabled_case(kafka, bridge_factory, "disabled: true", [])


def test_disabled_trigger_is_409_with_key_404_without(kafka, bridge_factory):
    _disabled_case(kafka, bridge_factory, "", ["disabled: true"])


def test_disabled_trigger_leaves_the_others_working(kafka, bridge_factory):
    n = Names()
    k_off, k_on = f"off-{uid()}", f"on-{uid()}"
    b = bridge_factory.start([flow_with_triggers(
        n.ns, n.flow, [("hook-off", k_off, ["disabled: true"]), ("hook-on", k_on, ["disabled: false"])])])
    assert_json_error(b.post(n.path(key=k_off), body="x"), 409)
    exec_id = assert_accepted(b.post(n.path(key=k_on), body="x"), n.ns, n.flow, trigger_id="hook-on")
    check_message(consume_one(kafka, n.topic), exec_id, n.ns, n.flow, "POST", key=k_on,
                  trigger_id="hook-on")


# ==== Topics ====


def test_topic_override(kafka, bridge_factory):
    n = Names()
    custom = f"it-custom-{n.suffix}"
    b = bridge_factory.start([webhook_flow(n.ns, n.flow, n.key)],
                             kafka={"topics": {f"{n.ns}/{n.flow}": custom}})
    exec_id = assert_accepted(b.post(n.path(), body="x"), n.ns, n.flow)
    assert topic_count(kafka, custom) == 1
    check_message(consume_one(kafka, custom), exec_id, n.ns, n.flow, "POST", key=n.key)
    assert topic_count(kafka, n.topic) == 0


def test_topic_template(kafka, bridge_factory):
    n = Names()
    b = bridge_factory.start([webhook_flow(n.ns, n.flow, n.key)],
                             kafka={"topic_template": "it-tpl.{flowId}.{namespace}"})
    exec_id = assert_accepted(b.post(n.path(), body="x"), n.ns, n.flow)
    topic = f"it-tpl.{n.flow}.{n.ns}"
    check_message(consume_one(kafka, topic), exec_id, n.ns, n.flow, "POST", key=n.key)
    assert topic_count(kafka, n.topic) == 0


def test_default_topic_name(kafka, bridge, names):
    assert names.topic == default_topic(names.ns, names.flow) == f"webhooks.{names.ns}.{names.flow}"
    exec_id = assert_accepted(bridge.post(names.path(), body="x"), names.ns, names.flow)
    assert topic_count(kafka, f"webhooks.{names.ns}.{names.flow}") == 1
    assert exec_id


# ==== Where flows come from ====


def test_flows_option_overrides_flows_dir(kafka, bridge_factory, tmp_path):
    n = Names()
    alt = tmp_path / "alt-flows"
    alt.mkdir()
    (alt / "hook.yaml").write_text(webhook_flow(n.ns, n.flow, n.key))
    b = bridge_factory.start([], args=["--flows", str(alt)])
    exec_id = assert_accepted(b.post(n.path(), body="x"), n.ns, n.flow)
    check_message(consume_one(kafka, n.topic), exec_id, n.ns, n.flow, "POST", key=n.key)


def test_flows_dir_is_relative_to_the_config_file(kafka, bridge_factory):
    """The bridge runs in another folder (cwd/); flows_dir "flows" still means <config dir>/flows."""
    n = Names()
    b = bridge_factory.start([webhook_flow(n.ns, n.flow, n.key)])
    assert (b.workdir / "cwd").is_dir()
    assert not (b.workdir / "cwd" / "flows").exists()
    assert_accepted(b.post(webhook_path(n.ns, n.flow, n.key), body="x"), n.ns, n.flow)
