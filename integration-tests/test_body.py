"""trigger.variables.body, Kestra's rules (reference kestra-webhook.md §1.3, §8.6; proto/SPEC.md §6):
the whole text as a JSON object, else as a JSON array, else the raw string. Content-Type is never
consulted.

Values are compared with their msgpack types (an int is not a float, 1.0 stays a float) and with
map key order."""

import msgpack
import pytest

from conftest import Pairs, assert_accepted, check_message, consume_one, typed

ABSENT = object()


def body_of(rec):
    msg = msgpack.unpackb(rec.value, raw=False, object_pairs_hook=Pairs)
    variables = dict(dict(msg)["trigger"])["variables"]
    d = dict(variables)
    return d["body"] if "body" in d else ABSENT


def _nest(levels):
    v = []
    for _ in range(levels - 1):
        v = [v]
    return v


NEST_29 = _nest(29)

CASES = [
    # (id, body bytes, extra headers, expected body)
    ("object", b'{"a":1,"b":[1,2,{"c":null}],"d":1.5,"e":"x","f":true,"z":{"y":2,"x":1}}', [],
     {"a": 1, "b": [1, 2, {"c": None}], "d": 1.5, "e": "x", "f": True, "z": {"y": 2, "x": 1}}),
    ("key order kept", b'{"zeta":1,"alpha":2,"mid":3}', [], {"zeta": 1, "alpha": 2, "mid": 3}),
    ("array", b'[1,"two",null,{"x":true},[]]', [], [1, "two", None, {"x": True}, []]),
    ("empty object", b"{}", [], {}),
    ("empty array", b"[]", [], []),
    ("string scalar stays text", b'"bla"', [], '"bla"'),
    ("number scalar stays text", b"42", [], "42"),
    ("true stays text", b"true", [], "true"),
    ("null stays text", b"null", [], "null"),
    ("escaped json string stays a string", b'"{\\"a\\":1}"', [], '"{\\"a\\":1}"'),
    ("whitespace only", b"   ", [], "   "),
    ("form urlencoded stays raw", b"a=1&b=2",
     [("Content-Type", "application/x-www-form-urlencoded")], "a=1&b=2"),
    ("plain text", b"hello world", [("Content-Type", "text/plain")], "hello world"),
    ("invalid utf-8 replaced", b"ab\xffcd", [], "ab\ufffdcd"),
    ("invalid utf-8 in json", b'{"a":"\xff"}', [], {"a": "\ufffd"}),
    ("trailing text ignored", b'{"a":1} x', [], {"a": 1}),
    ("trailing text after array", b"[1,2] x", [], [1, 2]),
    ("second object ignored", b'{"a":1}{"b":2}', [], {"a": 1}),
    ("surrounding newlines", b'\n{"a":1}\n', [], {"a": 1}),
    ("truncated object stays text", b'{"a":1', [], '{"a":1'),
    ("json sent as text/plain", b'{"a":1}', [("Content-Type", "text/plain")], {"a": 1}),
    ("json sent as octet-stream", b'[1]', [("Content-Type", "application/octet-stream")], [1]),
    ("non-json sent as json", b"not json", [("Content-Type", "application/json")], "not json"),
    ("integers stay integers", b'{"big":9007199254740993,"neg":-5,"max":9223372036854775807,'
     b'"min":-9223372036854775808,"zero":0}', [],
     {"big": 9007199254740993, "neg": -5, "max": 9223372036854775807,
      "min": -9223372036854775808, "zero": 0}),
    ("decimals are floats", b'{"f":1e3,"g":-0.5,"h":1.0,"i":2.5E-3}', [],
     {"f": 1000.0, "g": -0.5, "h": 1.0, "i": 0.0025}),
    ("unicode escapes decoded", b'{"s":"h\\u00e9llo \\ud83d\\ude00","t":"\xc3\xa9"}', [],
     {"s": "h\u00e9llo \U0001F600", "t": "\u00e9"}),
    ("nul inside json string", b'{"a":"x\\u0000y"}', [], {"a": "x\x00y"}),
    ("nul in raw text", b"a\x00b", [], "a\x00b"),
    ("raw control character in a json string is not json", b'{"a":"x\ty"}', [], '{"a":"x\ty"}'),
    ("nested", b'{"a":{"b":{"c":{"d":[[[1]]]}}}}', [], {"a": {"b": {"c": {"d": [[[1]]]}}}}),
    # SPEC.md §6: duplicates are kept as sent (a reader wanting Kestra's view takes the last one).
    ("duplicate keys kept as sent", b'{"a":1,"b":0,"a":2}', [], Pairs([("a", 1), ("b", 0), ("a", 2)])),
    ("64-bit integer range", b'[18446744073709551615,-9223372036854775808,-0]', [],
     [18446744073709551615, -9223372036854775808, 0]),
    ("integer beyond 64 bits is a float", b'[100000000000000000000]', [], [1e20]),
    ("overflowing number is infinity", b'[1e400,-1e400]', [], [float("inf"), float("-inf")]),
    ("lone surrogate escape replaced", b'{"s":"a\\ud800b"}', [], {"s": "a\ufffdb"}),
    ("29 levels of nesting kept", b"[" * 29 + b"]" * 29, [], NEST_29),
    ("30 levels of nesting is raw text", b"[" * 30 + b"]" * 30, [], "[" * 30 + "]" * 30),
]


@pytest.mark.parametrize("raw,headers,expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_body(kafka, bridge, names, raw, headers, expected):
    resp = bridge.post(names.path(), body=raw, headers=headers)
    exec_id = assert_accepted(resp, names.ns, names.flow)
    rec = consume_one(kafka, names.topic)
    check_message(rec, exec_id, names.ns, names.flow, "POST", key=names.key)
    assert typed(body_of(rec)) == typed(expected)


@pytest.mark.parametrize("method,raw", [("POST", b""), ("PUT", b""), ("GET", None)],
                         ids=["post-empty", "put-empty", "get"])
def test_empty_body_is_absent(kafka, bridge, names, method, raw):
    resp = bridge.request(method, names.path(), body=raw)
    exec_id = assert_accepted(resp, names.ns, names.flow)
    rec = consume_one(kafka, names.topic)
    var = check_message(rec, exec_id, names.ns, names.flow, method, key=names.key)
    assert "body" not in var
    assert list(var) == ["headers", "parameters"]


def test_put_json(kafka, bridge, names):
    resp = bridge.request("PUT", names.path(), body=b'{"k":[1,2]}')
    exec_id = assert_accepted(resp, names.ns, names.flow)
    rec = consume_one(kafka, names.topic)
    check_message(rec, exec_id, names.ns, names.flow, "PUT", key=names.key)
    assert typed(body_of(rec)) == typed({"k": [1, 2]})
