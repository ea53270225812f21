"""Hot reload: SIGHUP and changes in the flows folder (inotify) swap in a new flow set; a broken
set is refused and the running one keeps serving, with the error at file:line:col in the log; a
reload under load answers every request to an unchanged flow with 200; a request in flight when
its flow is removed is still answered 200 from the set it started with.

Every wait polls with a deadline; none sleeps for a fixed time."""

import concurrent.futures
import http.client
import json
import os
import re
import signal
import threading
import time

from conftest import (Names, assert_accepted, assert_not_found, check_message, consume,
                      consume_one, decode_value, http_request, to_yaml, uid, webhook_flow)

WAIT = 15.0  # a reload, from the change to its log line (the debounce is 200 ms)
QUIET = 1.0  # how long to watch for a reload that must not happen


# ==== Helpers ====


def flows_dir(b):
    return b.workdir / "flows"


def write_atomic(path, text):
    """As editors and Kubernetes do: a hidden temporary file renamed over the flow file."""
    tmp = path.parent / f".{path.name}.{uid(4)}.tmp"
    tmp.write_text(text)
    os.replace(tmp, path)


def outcomes(b):
    """The reload outcome lines so far: msg "reloaded" or "reload failed: ..."."""
    return [r for r in b.log_records()
            if r.get("msg") == "reloaded" or str(r.get("msg", "")).startswith("reload failed")]


def wait_outcome(b, before, what="a reload"):
    """Waits until a reload after the first `before` outcomes has finished; returns its line."""
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        recs = outcomes(b)
        if len(recs) > before:
            return recs[before]
        assert b.proc.poll() is None, f"the bridge exited:\n{b.read_log()}"
        time.sleep(0.05)
    raise AssertionError(f"no reload outcome for {what} within {WAIT}s; log:\n{b.read_log()}")


def sighup(b):
    """SIGHUP, then the outcome line of the reload it caused."""
    before = len(outcomes(b))
    b.proc.send_signal(signal.SIGHUP)
    return wait_outcome(b, before, "SIGHUP")


def counts(rec):
    return {k: int(rec[k]) for k in ("added", "removed", "changed", "unchanged")}


def wait_status(b, path, status):
    """Polls path with POST until it answers `status`; returns that answer."""
    deadline = time.monotonic() + WAIT
    last = None
    while time.monotonic() < deadline:
        last = b.post(path, body='{"poll":true}')
        if last.status == status:
            return last
        time.sleep(0.05)
    raise AssertionError(f"{path} still answers {last} after {WAIT}s; log:\n{b.read_log()}")


def errors_after(b, before):
    """The "reload error" lines logged after the first `before` log records."""
    return [r for r in b.log_records()[before:] if r.get("msg") == "reload error"]


def wait_error_for(b, before, path):
    """Waits for a "reload error" line about file `path` after the first `before` records, and
    for the "reload failed" line that closes that reload; returns the error line."""
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        recs = b.log_records()[before:]
        for i, r in enumerate(recs):
            if r.get("msg") == "reload error" and r.get("file") == str(path):
                if any(str(x.get("msg", "")).startswith("reload failed") for x in recs[i:]):
                    return r
        time.sleep(0.05)
    raise AssertionError(f"no reload error for {path} within {WAIT}s; log:\n{b.read_log()}")


POS_RE = r":(\d+):(\d+): "


# ==== SIGHUP ====


def test_sighup_adds_a_flow(kafka, bridge_factory):
    a, n = Names(), Names()
    b = bridge_factory.start([webhook_flow(a.ns, a.flow, a.key)])
    assert_not_found(b.post(n.path(), body="{}"))
    (flows_dir(b) / "new.yaml").write_text(webhook_flow(n.ns, n.flow, n.key))
    rec = sighup(b)
    assert rec["msg"] == "reloaded" and rec["trigger"] == "SIGHUP", rec
    assert counts(rec) == {"added": 1, "removed": 0, "changed": 0, "unchanged": 1}, rec
    exec_id = assert_accepted(b.post(n.path(), body='{"after":"reload"}'), n.ns, n.flow)
    var = check_message(consume_one(kafka, n.topic), exec_id, n.ns, n.flow, "POST", key=n.key)
    assert var["body"] == {"after": "reload"}
    assert_accepted(b.post(a.path(), body="{}"), a.ns, a.flow)
    assert any(r.get("msg") == "flow added" and r.get("flow") == n.flow for r in b.log_records())


# ==== inotify ====


def test_flows_folder_changes_reload_without_a_signal(kafka, bridge_factory):
    a, n = Names(), Names()
    b = bridge_factory.start([webhook_flow(a.ns, a.flow, a.key)])
    sub = flows_dir(b) / "team" / "deep"
    sub.mkdir(parents=True)  # a folder created after the start, two levels down

    # Added: reachable within a bounded wait, no signal sent.
    (sub / "new.yaml").write_text(webhook_flow(n.ns, n.flow, n.key))
    exec_id = assert_accepted(wait_status(b, n.path(), 200), n.ns, n.flow)
    check_message(consume_one(kafka, n.topic), exec_id, n.ns, n.flow, "POST", key=n.key)

    # Key changed (rename over the file): the old key is gone, the new one answers.
    before = len(outcomes(b))
    new_key = f"key-{uid(12)}"
    write_atomic(flows_dir(b) / "flow0.yaml", webhook_flow(a.ns, a.flow, new_key))
    rec = wait_outcome(b, before, "a changed key")
    assert rec["msg"] == "reloaded" and rec["trigger"] == "flows_dir changed", rec
    assert counts(rec) == {"added": 0, "removed": 0, "changed": 1, "unchanged": 1}, rec
    assert_not_found(b.post(a.path(), body="{}"))
    assert_accepted(b.post(a.path(key=new_key), body="{}"), a.ns, a.flow)

    # Removed: 404.
    before = len(outcomes(b))
    (sub / "new.yaml").unlink()
    rec = wait_outcome(b, before, "a removed flow")
    assert counts(rec) == {"added": 0, "removed": 1, "changed": 0, "unchanged": 1}, rec
    assert_not_found(b.post(n.path(), body="{}"))

    # Editor leftovers (dot-files, backups) cause no reload: watched for five debounce periods,
    # like consume()'s quiet wait.
    before = len(outcomes(b))
    (flows_dir(b) / ".flow0.yaml.swp").write_text("junk")
    (flows_dir(b) / "flow0.yaml~").write_text("junk")
    quiet_until = time.monotonic() + QUIET
    while time.monotonic() < quiet_until:
        assert len(outcomes(b)) == before, outcomes(b)[before:]
        time.sleep(0.05)


# ==== Refused reloads ====


def test_broken_flow_keeps_the_running_set(kafka, bridge_factory):
    a = Names()
    b = bridge_factory.start([webhook_flow(a.ns, a.flow, a.key)])
    fdir = flows_dir(b)
    new_key = f"key-{uid(12)}"

    # A YAML syntax error in one file, then a good change in another: the broken file is there
    # for every reload from now on, so the change is not applied either.
    nlog = len(b.log_records())
    (fdir / "broken.yaml").write_text("id: x\nnamespace: it.x\ntriggers: [\n")
    write_atomic(fdir / "flow0.yaml", webhook_flow(a.ns, a.flow, new_key))
    err = wait_error_for(b, nlog, fdir / "broken.yaml")
    assert err["level"] == "error", err
    assert re.match(re.escape(str(fdir / "broken.yaml")) + POS_RE, err["error"]), err
    assert int(err["line"]) == 4 and int(err["col"]) >= 1, err
    failed = [r for r in b.log_records()[nlog:] if r.get("msg", "").startswith("reload failed")]
    assert failed and failed[0]["level"] == "error", failed
    assert_accepted(b.post(a.path(), body="{}"), a.ns, a.flow)  # the old key is still served
    assert_not_found(b.post(a.path(key=new_key), body="{}"))

    # A condition that does not compile: refused the same way, at the expression's line.
    c = Names()
    bad = webhook_flow(c.ns, c.flow, c.key, trigger_extra=(
        "    conditions:\n      - type: io.kestra.plugin.core.condition.Expression\n"
        "        expression: \"{{ trigger.body.x == }}\""))
    nlog = len(b.log_records())
    (fdir / "cond.yaml").write_text(bad)
    (fdir / "broken.yaml").unlink()
    err = wait_error_for(b, nlog, fdir / "cond.yaml")
    m = re.match(re.escape(str(fdir / "cond.yaml")) + POS_RE, err["error"])
    assert m and int(m.group(1)) >= 10, err
    assert_not_found(b.post(c.path(), body="{}"))
    assert_accepted(b.post(a.path(), body="{}"), a.ns, a.flow)

    # Fixed: the pending change goes through.
    (fdir / "cond.yaml").unlink()
    rec = sighup(b)
    assert rec["msg"] == "reloaded", rec
    assert_accepted(b.post(a.path(key=new_key), body="{}"), a.ns, a.flow)
    assert_not_found(b.post(a.path(), body="{}"))
    failed = [r for r in outcomes(b) if r["msg"].startswith("reload failed")]
    assert len(failed) >= 2, failed


def test_config_reload_live_and_restart_keys(kafka, bridge_factory):
    a = Names()
    b = bridge_factory.start([webhook_flow(a.ns, a.flow, a.key)])
    cfg_path = b.config_path
    original = cfg_path.read_text()

    # An unknown key: refused, with the position in bridge.yaml; the flow keeps working.
    nlog = len(b.log_records())
    cfg_path.write_text(original + "bogus_key: 1\n")
    rec = sighup(b)
    assert rec["msg"].startswith("reload failed"), rec
    errs = errors_after(b, nlog)
    assert re.match(re.escape(str(cfg_path)) + POS_RE + "unknown key 'bogus_key'",
                    errs[0]["error"]), errs
    assert_accepted(b.post(a.path(), body="{}"), a.ns, a.flow)

    # A live key (a topic override) applies; a restart-only key (delivery timeout) is kept with
    # a warning at its position, and the rest of the reload still applies.
    topic = f"reloaded.{uid()}"
    cfg = {"listen": "127.0.0.1:0", "admin_listen": "127.0.0.1:0", "flows_dir": "flows",
           "log_level": "info",
           "kafka": {"bootstrap_servers": kafka.bootstrap, "delivery_timeout_ms": 9000,
                     "topics": {f"{a.ns}/{a.flow}": topic}}}
    cfg_path.write_text(to_yaml(cfg) + "\n")
    nlog = len(b.log_records())
    rec = sighup(b)
    assert rec["msg"] == "reloaded" and counts(rec)["changed"] == 1, rec
    warns = [r for r in b.log_records()[nlog:] if r.get("level") == "warn"
             and "needs a restart" in r.get("msg", "")]
    assert len(warns) == 1, b.log_records()[nlog:]
    assert re.match(re.escape(str(cfg_path)) + POS_RE + "'kafka.delivery_timeout_ms' changed",
                    warns[0]["warning"]), warns
    exec_id = assert_accepted(b.post(a.path(), body="{}"), a.ns, a.flow)
    check_message(consume_one(kafka, topic), exec_id, a.ns, a.flow, "POST", key=a.key)


# ==== Under load ====

THREADS = 8
REQUESTS = 400
RELOADS = 20


def test_no_failed_request_while_reloading(kafka, bridge_factory):
    a, o = Names(), Names()
    b = bridge_factory.start([webhook_flow(a.ns, a.flow, a.key),
                              webhook_flow(o.ns, o.flow, o.key)])
    fdir = flows_dir(b)
    other = fdir / "flow1.yaml"
    results = {}
    lock = threading.Lock()
    next_req = [0]
    reloading_done = threading.Event()
    reload_recs = []

    def sender():
        while True:
            with lock:
                i = next_req[0]
                if i >= REQUESTS or (reloading_done.is_set() and i >= REQUESTS // 4):
                    return
                next_req[0] += 1
            try:
                r = b.post(a.path(), body=f'{{"request":{i}}}', timeout=30)
                out = (r.status, r.json().get("id") if r.status == 200 else r.body)
            except OSError as e:
                out = ("error", repr(e))
            with lock:
                results[i] = out
            # Spread the requests over the reloads rather than finish before them.
            if not reloading_done.is_set():
                time.sleep(0.1)

    def reloader():
        try:
            for k in range(RELOADS):
                before = len(outcomes(b))
                step = k % 4
                if step == 0:
                    b.proc.send_signal(signal.SIGHUP)
                elif step == 1:
                    os.utime(other)  # touch: same content
                elif step == 2:
                    (fdir / "extra.yaml").write_text(webhook_flow(f"it.x{k}", "extra", "k"))
                else:
                    (fdir / "extra.yaml").unlink()
                reload_recs.append(wait_outcome(b, before, f"reload {k}"))
        finally:
            reloading_done.set()

    with concurrent.futures.ThreadPoolExecutor(max_workers=THREADS + 1) as pool:
        futs = [pool.submit(sender) for _ in range(THREADS)]
        rel = pool.submit(reloader)
        rel.result()
        for f in futs:
            f.result()

    print(f"\nrequests: {len(results)}, reloads: {len(reload_recs)}")
    assert len(reload_recs) == RELOADS
    assert all(r["msg"] == "reloaded" for r in reload_recs), reload_recs
    for r in reload_recs:  # the flow under load was never removed nor changed
        assert int(r["unchanged"]) >= 2 and int(r["changed"]) == 0, r
    bad = {i: out for i, out in results.items() if out[0] != 200}
    assert not bad, f"{len(bad)} requests not answered 200: {list(bad.items())[:5]}"
    ids = {out[1] for out in results.values()}
    assert len(ids) == len(results)
    records = consume(kafka, a.topic, len(results), quiet=1.0)
    stored = {}
    for rec in records:
        msg = decode_value(rec.value)
        stored[msg["trigger"]["variables"]["body"]["request"]] = msg["id"]
    assert len(records) == len(results), f"{len(records)} messages for {len(results)} 200s"
    assert stored == {i: out[1] for i, out in results.items()}


# ==== A request in flight across a reload ====


def test_request_in_flight_keeps_its_flow(kafka_private, bridge_private_factory):
    g = Names()
    b = bridge_private_factory.start([webhook_flow(g.ns, g.flow, g.key)],
                                     kafka={"delivery_timeout_ms": 25000})
    # The topic exists and its metadata is known before acks are slowed down.
    assert_accepted(b.post(g.path(), body='{"warm":true}'), g.ns, g.flow)
    kafka_private.all_rtt(3000)
    answer = {}
    sent = threading.Event()

    def slow_request():
        host, port = b.addr.rsplit(":", 1)
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
        try:
            conn.request("POST", g.path(), body='{"in":"flight"}',
                         headers={"Content-Type": "application/json"})
            sent.set()
            r = conn.getresponse()
            answer["resp"] = (r.status, r.read())
        finally:
            conn.close()

    t = threading.Thread(target=slow_request)
    t.start()
    try:
        assert sent.wait(10)
        # A barrier: this request's connection opens after the slow one's bytes were sent, so by
        # the time its immediate 404 arrives the bridge has routed the slow one.
        assert_not_found(http_request(b.addr, "POST", g.path(key="nope"), body="{}"))
        assert "resp" not in answer, f"answered before the reload: {answer}"
        (flows_dir(b) / "flow0.yaml").unlink()
        rec = sighup(b)
        assert "resp" not in answer, f"answered before the reload finished: {answer}"
        assert counts(rec) == {"added": 0, "removed": 1, "changed": 0, "unchanged": 0}, rec
        assert_not_found(b.post(g.path(), body="{}"))
        t.join(40)
        assert not t.is_alive()
    finally:
        kafka_private.all_rtt(0)
    status, body = answer["resp"]
    assert status == 200, (status, body)
    got = json.loads(body)
    assert got["namespace"] == g.ns and got["flowId"] == g.flow, got
    recs = consume(kafka_private, g.topic, 2)
    ids = {decode_value(r.value)["id"] for r in recs}
    assert got["id"] in ids and len(recs) == 2, recs
