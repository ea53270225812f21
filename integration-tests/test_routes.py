"""Routing: which URLs and methods reach a webhook, and the answers for everything else.

Every miss answers the same 404 (status, body and headers), so a caller cannot learn whether a
namespace, a flow or a trigger exists without the key (Kestra 2.0, GHSA-6wcq-4vx6-rx53)."""

import urllib.parse

import pytest

from conftest import (MASK, Names, assert_accepted, assert_json_error, assert_not_found,
                      check_message, consume_one, topic_count, uid, webhook_flow,
                      webhook_path)

SCHEDULE_ONLY = """\
id: {flow}
namespace: {ns}
tasks:
  - id: hello
    type: io.kestra.plugin.core.log.Log
    message: hi
triggers:
  - id: every-minute
    type: io.kestra.plugin.core.trigger.Schedule
    cron: "* * * * *"
"""

NO_TRIGGERS = """\
id: {flow}
namespace: {ns}
tasks:
  - id: hello
    type: io.kestra.plugin.core.log.Log
    message: hi
"""


def test_misses_all_get_the_same_404(kafka, bridge_factory):
    n = Names()
    sched_flow = f"sched-{n.suffix}"
    bare_flow = f"bare-{n.suffix}"
    b = bridge_factory.start([
        webhook_flow(n.ns, n.flow, n.key),
        SCHEDULE_ONLY.format(ns=n.ns, flow=sched_flow),
        NO_TRIGGERS.format(ns=n.ns, flow=bare_flow),
    ])
    misses = {
        "unknown namespace": n.path(ns=f"it.nope{uid()}"),
        "unknown flow": n.path(flow=f"nope-{uid()}"),
        "wrong key": n.path(key="wrong-" + uid()),
        "key in other case": n.path(key=n.key.upper()),
        "key prefix": n.path(key=n.key[:-1]),
        "key plus a char": n.path(key=n.key + "x"),
        "flow with only a schedule trigger": n.path(flow=sched_flow),
        "flow without triggers": n.path(flow=bare_flow),
        "wrong tenant": n.path(tenant="other"),
        "tenant in other case": n.path(tenant="Main"),
        "empty tenant": f"/api/v1//executions/webhook/{n.ns}/{n.flow}/{n.key}",
        "trailing slash": n.path() + "/",
        "extra segment": n.path() + "/extra",
        "tenant url, trailing slash": n.path(tenant="main") + "/",
        "missing key": f"/api/v1/executions/webhook/{n.ns}/{n.flow}",
        "missing key, trailing slash": f"/api/v1/executions/webhook/{n.ns}/{n.flow}/",
        "root": "/",
        "random path": f"/{uid()}",
        "api root": "/api/v1/executions",
        "other api": f"/api/v1/main/flows/{n.ns}/{n.flow}",
    }
    answers = {}
    for what, path in misses.items():
        for method in ("GET", "POST"):
            resp = b.request(method, path, body=None if method == "GET" else '{"a":1}')
            assert_not_found(resp)
            answers[(what, method)] = resp
    first = next(iter(answers.values())).comparable()
    different = {k: r.comparable() for k, r in answers.items() if r.comparable() != first}
    assert not different, f"404s differ from {first}: {different}"
    assert topic_count(kafka, n.topic) == 0
    # The flow itself still works: the misses above were misses, not a broken bridge.
    assert_accepted(b.post(n.path(), body="ok"), n.ns, n.flow)


@pytest.mark.parametrize("method", ["DELETE", "PATCH", "OPTIONS", "HEAD"])
def test_other_methods_get_405(kafka, bridge, names, method):
    answers = []
    for path in (names.path(), names.path(tenant="main"), names.path(key="wrong-" + uid()),
                 names.path(flow="nope-" + uid())):
        resp = bridge.request(method, path)
        assert resp.status == 405, (path, resp)
        assert resp.header("Allow") == "GET, POST, PUT", resp
        if method != "HEAD":
            assert_json_error(resp, 405)
        answers.append(resp.comparable())
    # The answer must not depend on whether the key was right.
    assert all(a == answers[0] for a in answers), answers
    assert topic_count(kafka, names.topic) == 0


@pytest.mark.parametrize("where,path_fn", [
    ("key %zz", lambda n: n.path(key="ab%zzcd")),
    ("key ends in %4", lambda n: n.path(key=n.key + "%4")),
    ("key ends in %", lambda n: n.path(key=n.key + "%")),
    ("namespace %G1", lambda n: n.path(ns="it%G1")),
    ("flow %zz", lambda n: n.path(flow="fl%zzow")),
    ("tenant url, key %zz", lambda n: n.path(key="%zz", tenant="main")),
    ("query value %zz", lambda n: n.path() + "?a=%zz"),
    ("query value ends in %4", lambda n: n.path() + "?a=%4"),
    ("query name %zz", lambda n: n.path() + "?%zz=1"),
])
def test_bad_percent_escape_is_400(kafka, bridge, names, where, path_fn):
    resp = bridge.get(path_fn(names))
    assert_json_error(resp, 400)
    assert topic_count(kafka, names.topic) == 0


def test_path_segments_are_percent_decoded(kafka, bridge_factory):
    n = Names()
    n.key = f"k+e y%~é-{uid()}"
    b = bridge_factory.start([webhook_flow(n.ns, n.flow, n.key)])
    enc_key = urllib.parse.quote(n.key, safe="+~")  # '+' stays literal: no form decoding in paths
    enc_ns = "".join(f"%{ord(c):02X}" for c in n.ns)  # every character escaped
    resp = b.post(webhook_path(enc_ns, n.flow, enc_key), body="x")
    exec_id = assert_accepted(resp, n.ns, n.flow)
    rec = consume_one(kafka, n.topic)
    # request.path is the path as received, percent-encoding kept (SPEC.md §3).
    var = check_message(rec, exec_id, n.ns, n.flow, "POST", key=n.key,
                        path=webhook_path(enc_ns, n.flow, MASK))
    assert var["body"] == "x"
    assert enc_key.encode() not in rec.value
    # '+' in a path is a plus, not a space.
    assert_not_found(b.post(webhook_path(n.ns, n.flow, enc_key.replace("+", "%20")), body="x"))

