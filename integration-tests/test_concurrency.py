"""Many requests at once: every 200 has its message, and no message lacks its 200."""

from concurrent.futures import ThreadPoolExecutor

from conftest import ID_RE, consume, decode_value, topic_count

N = 200
THREADS = 16


def test_concurrent_requests_each_give_one_message(kafka, bridge, names):
    def call(i):
        resp = bridge.post(names.path() + f"?n={i}", body=f'{{"n":{i}}}')
        return i, resp

    with ThreadPoolExecutor(THREADS) as pool:
        results = list(pool.map(call, range(N)))

    bad = [(i, r) for i, r in results if r.status != 200]
    assert not bad, f"{len(bad)} of {N} requests failed, first: {bad[:3]}"
    ids = {i: r.json()["id"] for i, r in results}
    assert all(ID_RE.match(v) for v in ids.values())
    assert len(set(ids.values())) == N, "execution ids must be unique"

    # Counted over all partitions from the watermarks: exactly N, no more.
    assert topic_count(kafka, names.topic) == N
    recs = consume(kafka, names.topic, N)
    assert len(recs) == N
    partitions = {r.partition for r in recs}
    assert len(partitions) > 1, "ids as keys should spread over the 4 partitions"
    got = {}
    for r in recs:
        msg = decode_value(r.value)
        n = msg["trigger"]["variables"]["body"]["n"]
        assert msg["trigger"]["variables"]["parameters"] == {"n": [str(n)]}
        assert r.key == msg["id"].encode()
        assert n not in got, f"request {n} has two messages"
        got[n] = msg["id"]
    # Each answer's id is the id of the message made from that very request.
    assert got == ids
