"""The main path: a webhook call is answered 200 only once its message is in Kafka, and the message
carries exactly what the wire contract (proto/SPEC.md) promises."""

import json

import pytest

from conftest import (CONTENT_TYPE_V1, Pairs, assert_accepted, check_message, consume,
                      consume_one, decode_pairs, decode_value, masked_path, proto_decode,
                      topic_count, typed)


@pytest.mark.parametrize("tenant", [None, "main"], ids=["legacy-url", "tenant-url"])
def test_post_json_is_in_kafka_when_answered(kafka, bridge, names, tenant):
    path = names.path(tenant=tenant)
    body = '{"hello":"world","n":1}'
    resp = bridge.post(path, body=body,
                       headers=[("Content-Type", "application/json")])
    exec_id = assert_accepted(resp, names.ns, names.flow)

    # 200 means "acknowledged by the broker": the message must be there already, no waiting.
    assert topic_count(kafka, names.topic) == 1

    rec = consume_one(kafka, names.topic)
    var = check_message(rec, exec_id, names.ns, names.flow, "POST", key=names.key,
                        path=masked_path(names.ns, names.flow, tenant))
    assert var["headers"] == {
        "Host": [bridge.addr],
        "Content-Type": ["application/json"],
        "Content-Length": [str(len(body))],
    }
    assert var["parameters"] == {}
    assert var["body"] == {"hello": "world", "n": 1}


@pytest.mark.parametrize("method", ["GET", "POST", "PUT"])
def test_accepted_methods(kafka, bridge, names, method):
    body = None if method == "GET" else "payload"
    resp = bridge.request(method, names.path(), body=body)
    exec_id = assert_accepted(resp, names.ns, names.flow)
    rec = consume_one(kafka, names.topic)
    var = check_message(rec, exec_id, names.ns, names.flow, method, key=names.key)
    if body is None:
        assert "body" not in var
    else:
        assert var["body"] == "payload"


def test_every_answer_has_its_own_id(kafka, bridge, names):
    ids = [assert_accepted(bridge.post(names.path(), body=str(i)), names.ns, names.flow)
           for i in range(5)]
    assert len(set(ids)) == 5
    recs = consume(kafka, names.topic, 5)
    assert len(recs) == 5
    assert sorted(decode_value(r.value)["id"] for r in recs) == sorted(ids)
    # The body tells which request a message came from: each id belongs to its own request.
    by_body = {decode_value(r.value)["trigger"]["variables"]["body"]: decode_value(r.value)["id"]
               for r in recs}
    assert by_body == {str(i): ids[i] for i in range(5)}


def test_kafka_key_and_headers(kafka, bridge, names):
    exec_id = assert_accepted(bridge.post(names.path(), body="{}"), names.ns, names.flow)
    rec = consume_one(kafka, names.topic)
    assert rec.key == exec_id.encode()
    assert dict(rec.headers) == {"content-type": CONTENT_TYPE_V1.encode(),
                                 "execution-id": exec_id.encode()}
    assert len(rec.headers) == 2


def test_query_string_stays_out_of_the_path(kafka, bridge, names):
    exec_id = assert_accepted(bridge.get(names.path() + "?a=1"), names.ns, names.flow)
    rec = consume_one(kafka, names.topic)
    var = check_message(rec, exec_id, names.ns, names.flow, "GET", key=names.key)
    assert var["parameters"] == {"a": ["1"]}


def test_proto_decode_prints_the_message(kafka, bridge, names, proto_decode_bin):
    body = '{"s":"h\\u00e9llo \\ud83d\\ude00","f":1.5,"i":-7,"l":[true,null,"x"],"o":{"k":"v"}}'
    exec_id = assert_accepted(
        bridge.post(names.path() + "?q=1&q=2", body=body, headers=[("X-Event", "push")]),
        names.ns, names.flow)
    rec = consume_one(kafka, names.topic)
    msg = decode_value(rec.value)
    assert msg["id"] == exec_id
    printed = proto_decode(proto_decode_bin, rec.value)
    assert printed == msg
    # Same keys in the same order, same types (1.5 stays a float, true is not 1).
    as_pairs = json.loads(json.dumps(printed), object_pairs_hook=Pairs)
    assert typed(as_pairs) == typed(decode_pairs(rec.value))


def test_answers_carry_one_current_date(kafka, bridge, names):
    """Every answer has exactly one Date header (RFC 9110 §6.6.1), in IMF-fixdate, and current:
    the bridge formats it once a second instead of leaving it to libevent per answer."""
    import email.utils
    import time

    for path in (names.path(), names.path(key="wrong-key")):
        before = time.time()
        resp = bridge.post(path, body='{"a":1}')
        dates = resp.header_all("Date")
        assert len(dates) == 1, resp
        assert dates[0].endswith(" GMT") and len(dates[0]) == 29, dates
        when = email.utils.parsedate_to_datetime(dates[0]).timestamp()
        assert before - 2 <= when <= time.time() + 1, (dates, before)
