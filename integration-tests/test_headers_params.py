"""trigger.variables.headers and .parameters: names as the sender wrote them, every value kept.

Requests go through http.client with exactly the headers listed (plus Host and Content-Length
where noted), so casing, repetition and order are under the test's control."""

import pytest

from conftest import assert_accepted, check_message, consume_one, masked_path


def send(kafka, bridge, names, path_suffix="", headers=None, body=None, host=True,
         method="POST"):
    resp = bridge.request(method, names.path() + path_suffix, body=body, headers=headers,
                          host=host)
    exec_id = assert_accepted(resp, names.ns, names.flow)
    rec = consume_one(kafka, names.topic)
    return check_message(rec, exec_id, names.ns, names.flow, method, key=names.key)


# ==== Headers ====


def test_headers_exact(kafka, bridge, names):
    var = send(kafka, bridge, names, body="hi", headers=[
        ("X-Event", "push"),
        ("X-Multi", "a"),
        ("X-Multi", "b"),
        ("x-multi", "c"),
        ("Content-Type", "text/plain"),
    ])
    assert var["headers"] == {
        "Host": [bridge.addr],
        "X-Event": ["push"],
        "X-Multi": ["a", "b"],
        "x-multi": ["c"],
        "Content-Type": ["text/plain"],
        "Content-Length": ["2"],
    }
    # Entries in the order each name first appeared (SPEC.md §5); http.client sent Host first and
    # Content-Length last.
    assert list(var["headers"]) == ["Host", "X-Event", "X-Multi", "x-multi", "Content-Type",
                                    "Content-Length"]


def test_header_casing_kept(kafka, bridge, names):
    var = send(kafka, bridge, names, method="GET", host=False, headers=[
        ("host", bridge.addr),
        ("x-lower", "1"),
        ("X-UPPER", "2"),
        ("X-MiXeD-CaSe", "3"),
        ("content-type", "application/json"),
    ])
    assert var["headers"] == {
        "host": [bridge.addr],
        "x-lower": ["1"],
        "X-UPPER": ["2"],
        "X-MiXeD-CaSe": ["3"],
        "content-type": ["application/json"],
    }


def test_repeated_header_values_keep_their_order(kafka, bridge, names):
    values = [f"v{i}" for i in (3, 1, 2, 1)]
    var = send(kafka, bridge, names, method="GET", headers=[("X-Rep", v) for v in values])
    assert var["headers"]["X-Rep"] == values


def test_header_values_are_not_split(kafka, bridge, names):
    var = send(kafka, bridge, names, method="GET", headers=[
        ("Accept", "text/html, application/json;q=0.9"),
        ("X-Sig", "sha256=abc,def"),
        ("X-Empty", ""),
    ])
    assert var["headers"]["Accept"] == ["text/html, application/json;q=0.9"]
    assert var["headers"]["X-Sig"] == ["sha256=abc,def"]
    assert var["headers"]["X-Empty"] == [""]


# ==== Query parameters ====

PARAM_CASES = [
    # (id, query, expected in key order)
    ("none", "", {}),
    ("simple", "?a=1&b=2", {"a": ["1"], "b": ["2"]}),
    ("repeated keep order", "?z=1&a=2&z=3", {"z": ["1", "3"], "a": ["2"]}),
    ("plus is a space", "?b=x+y", {"b": ["x y"]}),
    ("percent decoded", "?c=%2B%20%26%3D%25", {"c": ["+ &=%"]}),
    ("percent decoded utf-8 names", "?%C3%A9t%C3%A9=%E2%82%AC", {"\u00e9t\u00e9": ["\u20ac"]}),
    ("flag without value", "?flag", {"flag": [""]}),
    ("empty value", "?e=", {"e": [""]}),
    ("semicolon separates", "?x=1;y=2", {"x": ["1"], "y": ["2"]}),
    ("flag, empty and value", "?k&k=&k=v", {"k": ["", "", "v"]}),
    ("invalid utf-8 after decoding", "?a=%FF&%FE=b", {"a": ["\ufffd"], "\ufffd": ["b"]}),
    ("value with equals", "?a=1=2", {"a": ["1=2"]}),
    ("empty pieces skipped", "?a=1&&b=2&", {"a": ["1"], "b": ["2"]}),
    ("mixed", "?a=1&a=2&b=x+y&c=%2B%20&flag&e=&x=1;y=2",
     {"a": ["1", "2"], "b": ["x y"], "c": ["+ "], "flag": [""], "e": [""], "x": ["1"],
      "y": ["2"]}),
]


@pytest.mark.parametrize("query,expected", [c[1:] for c in PARAM_CASES],
                         ids=[c[0] for c in PARAM_CASES])
def test_parameters(kafka, bridge, names, query, expected):
    var = send(kafka, bridge, names, path_suffix=query, method="GET")
    assert var["parameters"] == expected
    assert list(var["parameters"]) == list(expected), "first-seen key order"


def test_parameters_on_tenant_url_and_post(kafka, bridge, names):
    resp = bridge.post(names.path(tenant="main") + "?a=1&a=2", body='{"x":1}')
    exec_id = assert_accepted(resp, names.ns, names.flow)
    rec = consume_one(kafka, names.topic)
    var = check_message(rec, exec_id, names.ns, names.flow, "POST", key=names.key,
                        path=masked_path(names.ns, names.flow, "main"))
    assert var["parameters"] == {"a": ["1", "2"]}
    assert var["body"] == {"x": 1}
