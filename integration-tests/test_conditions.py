"""Conditions on a webhook trigger (Kestra's condition types, and 2.0's `when`): a request whose
conditions hold gets 200 and one message; one whose conditions fail gets 204 with an empty body
and nothing reaches Kafka. Every test counts the topic's messages after all its requests."""

import pytest

from conftest import Names, assert_accepted, consume, decode_value, webhook_flow

GITHUB_PUSH = """\
    conditions:
      - type: io.kestra.plugin.core.condition.Expression
        expression: "{{ trigger.headers['X-GitHub-Event'][0] == 'push' }}"
      - type: io.kestra.plugin.core.condition.ExpressionCondition
        expression: "{{ trigger.body.ref | startsWith('refs/heads/') }}"
"""


def assert_no_content(resp):
    assert resp.status == 204, resp
    assert resp.body == b"", resp


def test_conditions_decide_between_200_and_204(kafka, bridge_factory):
    n = Names()
    b = bridge_factory.start([webhook_flow(n.ns, n.flow, n.key, trigger_extra=GITHUB_PUSH)])
    push = [("X-GitHub-Event", "push"), ("Content-Type", "application/json")]
    ok = assert_accepted(b.post(n.path(), body='{"ref":"refs/heads/main"}', headers=push),
                         n.ns, n.flow)
    assert_no_content(b.post(n.path(), body='{"ref":"refs/tags/v1"}', headers=push))
    assert_no_content(b.post(n.path(), body='{"ref":"refs/heads/main"}',
                             headers=[("X-GitHub-Event", "issues")]))
    # The header's case matters, as in Kestra: 'x-github-event' is another name, so the lookup
    # of 'X-GitHub-Event' fails (strict variables) and the condition is false.
    assert_no_content(b.post(n.path(), body='{"ref":"refs/heads/main"}',
                             headers=[("x-github-event", "push")]))
    # No body at all: trigger.body is undefined, the condition fails, nothing is published.
    assert_no_content(b.post(n.path(), headers=push))
    recs = consume(kafka, n.topic, 1)
    assert [decode_value(r.value)["id"] for r in recs] == [ok]


@pytest.mark.parametrize("expression,body,fires", [
    ("{{ trigger.body.n > 10 }}", '{"n": 11}', True),
    ("{{ trigger.body.n > 10 }}", '{"n": 10.0}', False),
    # Kestra's Expression truth rule: only blank or "false" is false; "0" and "False" are true.
    ("{{ trigger.body.n }}", '{"n": 0}', True),
    ("{{ trigger.body.s }}", '{"s": "False"}', True),
    ("{{ trigger.body.s }}", '{"s": "  "}', False),
    ("{{ trigger.body.missing ?? 'x' }}", '{}', True),
    ("{{ trigger.body.items | length > 0 }}", '{"items": []}', False),
    ("{{ trigger.body.name | lower contains 'prod' }}", '{"name": "EU-PROD-1"}', True),
    ("{{ trigger.parameters.env[0] == 'prod' }}", '{}', False),
])
def test_expression_rules(kafka, bridge_factory, expression, body, fires):
    n = Names()
    extra = ("    conditions:\n      - type: io.kestra.plugin.core.condition.Expression\n"
             "        expression: |-\n          " + expression + "\n")
    b = bridge_factory.start([webhook_flow(n.ns, n.flow, n.key, trigger_extra=extra)])
    resp = b.post(n.path(), body=body)
    if fires:
        assert_accepted(resp, n.ns, n.flow)
    else:
        assert_no_content(resp)
    assert len(consume(kafka, n.topic, 1 if fires else 0)) == (1 if fires else 0)


def test_not_and_or(kafka, bridge_factory):
    n = Names()
    extra = """\
    conditions:
      - type: io.kestra.plugin.core.condition.Or
        conditions:
          - type: io.kestra.plugin.core.condition.Expression
            expression: "{{ trigger.body.kind == 'a' }}"
          - type: io.kestra.plugin.core.condition.Expression
            expression: "{{ trigger.body.kind == 'b' }}"
      - type: io.kestra.plugin.core.condition.Not
        conditions:
          - type: io.kestra.plugin.core.condition.Expression
            expression: "{{ trigger.body.draft ?? false }}"
"""
    b = bridge_factory.start([webhook_flow(n.ns, n.flow, n.key, trigger_extra=extra)])
    assert_accepted(b.post(n.path(), body='{"kind":"a"}'), n.ns, n.flow)
    assert_accepted(b.post(n.path(), body='{"kind":"b","draft":false}'), n.ns, n.flow)
    assert_no_content(b.post(n.path(), body='{"kind":"c"}'))
    assert_no_content(b.post(n.path(), body='{"kind":"a","draft":true}'))
    assert len(consume(kafka, n.topic, 2)) == 2


def test_when_expression(kafka, bridge_factory):
    """Kestra 2.0's `when`: false, 0, -0 and blank are falsy."""
    n = Names()
    extra = "    when: \"{{ trigger.body.count }}\"\n"
    b = bridge_factory.start([webhook_flow(n.ns, n.flow, n.key, trigger_extra=extra)])
    assert_accepted(b.post(n.path(), body='{"count": 2}'), n.ns, n.flow)
    assert_no_content(b.post(n.path(), body='{"count": 0}'))
    assert_no_content(b.post(n.path(), body='{"count": false}'))
    assert len(consume(kafka, n.topic, 1)) == 1


def test_date_condition_without_date_is_false(kafka, bridge_factory):
    """A date condition's default `date` is {{ trigger.date }}, undefined for webhooks: false."""
    n = Names()
    extra = """\
    conditions:
      - type: io.kestra.plugin.core.condition.Weekend
"""
    b = bridge_factory.start([webhook_flow(n.ns, n.flow, n.key, trigger_extra=extra)])
    assert_no_content(b.post(n.path(), body="{}"))
    assert len(consume(kafka, n.topic, 0)) == 0


def test_execution_conditions_see_the_new_execution(kafka, bridge_factory):
    n = Names()
    extra = f"""\
    conditions:
      - type: io.kestra.plugin.core.condition.ExecutionFlow
        namespace: {n.ns}
        flowId: {n.flow}
      - type: io.kestra.plugin.core.condition.ExecutionStatus
        in: [CREATED]
"""
    b = bridge_factory.start([webhook_flow(n.ns, n.flow, n.key, trigger_extra=extra)])
    assert_accepted(b.post(n.path(), body="{}"), n.ns, n.flow)
    assert len(consume(kafka, n.topic, 1)) == 1


@pytest.mark.parametrize("condition,message", [
    ("      - type: io.kestra.plugin.core.condition.MultipleCondition\n        id: x\n",
     "conditions of type MultipleCondition are not supported"),
    ("      - type: io.kestra.plugin.core.condition.PublicHoliday\n", "PublicHoliday"),
    ("      - type: io.kestra.plugin.core.condition.Expression\n"
     "        expression: \"{{ trigger.body.a == }}\"\n", ""),
])
def test_bad_conditions_are_load_errors(bridge_bin, tmp_path, condition, message):
    import subprocess
    n = Names()
    flows = tmp_path / "flows"
    flows.mkdir()
    (flows / "f.yaml").write_text(
        webhook_flow(n.ns, n.flow, n.key, trigger_extra="    conditions:\n" + condition))
    cfg = tmp_path / "bridge.yaml"
    cfg.write_text("flows_dir: flows\n")
    p = subprocess.run([bridge_bin, "--check-config", "--config", str(cfg)],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 1, p
    first = p.stdout.splitlines()[0]
    assert first.startswith(str(flows / "f.yaml") + ":"), p.stdout
    parts = first.split(":")
    assert parts[1].isdigit() and parts[2].isdigit(), first
    assert message in p.stdout, p.stdout
