"""The command line: --check-config (OK, or file:line:col errors), --help, --version, and the log
format on stderr."""

import json
import re
import subprocess

import pytest

from conftest import Names, assert_accepted, assert_not_found, to_yaml, uid, webhook_flow

RUN_TIMEOUT = 15


def run(bridge_bin, *args, cwd=None):
    return subprocess.run([bridge_bin, *args], capture_output=True, text=True, cwd=cwd,
                          timeout=RUN_TIMEOUT, stdin=subprocess.DEVNULL)


def write_setup(tmp_path, config_text, flows=None):
    d = tmp_path / f"cfg-{uid(4)}"
    (d / "flows").mkdir(parents=True)
    for name, text in (flows or {}).items():
        (d / "flows" / name).write_text(text)
    cfg = d / "bridge.yaml"
    cfg.write_text(config_text)
    return cfg


GOOD_CONFIG = to_yaml({
    "listen": "127.0.0.1:0",
    "flows_dir": "flows",
    "tenant": "main",
    "log_level": "info",
    "kafka": {
        "bootstrap_servers": "127.0.0.1:9",
        "topic_template": "webhooks.{namespace}.{flowId}",
        "delivery_timeout_ms": 5000,
        "properties": {"linger.ms": "5"},
        "topics": {"it.ns/flow": "custom"},
    },
    "limits": {
        "max_body_bytes": 983040,
        "max_header_bytes": 16384,
        "max_headers": 100,
        "max_uri_bytes": 8192,
        "request_timeout_ms": 30000,
    },
}) + "\n"


def errors_of(proc):
    """Every "file:line:col: message" line, from stdout and stderr."""
    out = []
    for line in (proc.stdout + proc.stderr).splitlines():
        m = re.match(r"^(.+?):(\d+):(\d+): (.+)$", line)
        if m:
            out.append((m.group(1), int(m.group(2)), int(m.group(3)), m.group(4)))
    return out


def assert_error_at(proc, path, line, cols):
    errs = errors_of(proc)
    hits = [e for e in errs if e[0].endswith(path.name) and e[1] == line and e[2] in cols]
    assert hits, (f"no error at {path}:{line}:{cols}; got {errs}\n"
                  f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
    assert all(e[3].strip() for e in hits)
    return hits


def assert_failed(proc):
    assert proc.returncode == 1, (proc.returncode, proc.stdout, proc.stderr)
    assert "OK" not in proc.stdout.split(), proc.stdout


# ==== --check-config ====


def test_check_config_good(bridge_bin, tmp_path):
    n = Names()
    cfg = write_setup(tmp_path, GOOD_CONFIG, {"a.yaml": webhook_flow(n.ns, n.flow, n.key)})
    p = run(bridge_bin, "--check-config", "--config", str(cfg), cwd=tmp_path)
    assert p.returncode == 0, (p.stdout, p.stderr)
    assert p.stdout.strip().splitlines() == ["OK"], p.stdout


def test_check_config_reference_config(bridge_bin, tmp_path):
    """configs/bridge.yaml, the documented reference, must pass as shipped."""
    from conftest import REPO
    ref = REPO / "configs" / "bridge.yaml"
    if not ref.exists():
        pytest.skip("configs/bridge.yaml not written yet")
    p = run(bridge_bin, "--check-config", "--config", str(ref), cwd=tmp_path)
    assert p.returncode == 0, (p.stdout, p.stderr)
    assert p.stdout.strip().splitlines() == ["OK"], p.stdout


def test_check_config_unknown_keys(bridge_bin, tmp_path):
    cfg = write_setup(tmp_path, (
        'listen: "127.0.0.1:0"\n'
        "flows_dir: flows\n"
        "bogus_key: 1\n"
        "kafka:\n"
        '  bootstrap_servers: "127.0.0.1:9"\n'
        "  nope: 2\n"
        "limits:\n"
        "  max_body_bytez: 10\n"
    ))
    p = run(bridge_bin, "--check-config", "--config", str(cfg), cwd=tmp_path)
    assert_failed(p)
    # Every error is reported, each at the unknown key.
    assert_error_at(p, cfg, 3, {1})
    assert_error_at(p, cfg, 6, {3})
    assert_error_at(p, cfg, 8, {3})


def test_check_config_wrong_type(bridge_bin, tmp_path):
    cfg = write_setup(tmp_path, (
        "flows_dir: flows\n"
        "limits:\n"
        "  max_body_bytes: lots\n"
    ))
    p = run(bridge_bin, "--check-config", "--config", str(cfg), cwd=tmp_path)
    assert_failed(p)
    assert_error_at(p, cfg, 3, {3, 19})


def test_check_config_yaml_syntax_error(bridge_bin, tmp_path):
    cfg = write_setup(tmp_path, "flows_dir: flows\nkafka: [unclosed\n")
    p = run(bridge_bin, "--check-config", "--config", str(cfg), cwd=tmp_path)
    assert_failed(p)
    errs = [e for e in errors_of(p) if e[0].endswith(cfg.name)]
    assert errs and all(e[1] >= 2 for e in errs), (p.stdout, p.stderr)


def key_flow(ns, flow_id, key_line):
    return (f"id: {flow_id}\n"
            f"namespace: {ns}\n"
            "triggers:\n"
            "  - id: hook\n"
            "    type: io.kestra.plugin.core.trigger.Webhook\n"
            f"{key_line}"
            "tasks:\n"
            "  - id: t\n"
            "    type: io.kestra.plugin.core.log.Log\n"
            "    message: hi\n")


def test_check_config_key_too_long(bridge_bin, tmp_path):
    n = Names()
    ok = key_flow(n.ns, n.flow + "-ok", "    key: " + "k" * 256 + "\n")
    bad = key_flow(n.ns, n.flow, "    key: " + "k" * 257 + "\n")
    cfg = write_setup(tmp_path, GOOD_CONFIG, {"ok.yaml": ok, "bad.yaml": bad})
    p = run(bridge_bin, "--check-config", "--config", str(cfg), cwd=tmp_path)
    assert_failed(p)
    bad_path = cfg.parent / "flows" / "bad.yaml"
    assert_error_at(p, bad_path, 6, {5, 10})  # at "key" or at its value
    assert not [e for e in errors_of(p) if e[0].endswith("ok.yaml")], "256 characters is allowed"


def test_check_config_missing_key(bridge_bin, tmp_path):
    n = Names()
    cfg = write_setup(tmp_path, GOOD_CONFIG, {"nokey.yaml": key_flow(n.ns, n.flow, "")})
    p = run(bridge_bin, "--check-config", "--config", str(cfg), cwd=tmp_path)
    assert_failed(p)
    errs = [e for e in errors_of(p) if e[0].endswith("nokey.yaml")]
    assert errs and all(4 <= e[1] <= 5 for e in errs), (p.stdout, p.stderr)


def test_bad_config_refuses_to_start(bridge_bin, tmp_path, kafka):
    cfg = write_setup(tmp_path, "flows_dir: flows\nbogus_key: 1\n")
    p = run(bridge_bin, "--config", str(cfg), "--listen", "127.0.0.1:0",
            "--bootstrap-servers", kafka.bootstrap, cwd=tmp_path)
    assert p.returncode != 0, (p.stdout, p.stderr)
    assert_error_at(p, cfg, 2, {1})


# ==== --help, --version, bad options ====


def test_help(bridge_bin):
    p = run(bridge_bin, "--help")
    assert p.returncode == 0, p.stderr
    text = p.stdout + p.stderr
    for opt in ("--config", "--listen", "--flows", "--bootstrap-servers", "--check-config"):
        assert opt in text, (opt, text)


def test_version(bridge_bin):
    p = run(bridge_bin, "--version")
    assert p.returncode == 0, p.stderr
    assert re.search(r"\b\d+\.\d+\.\d+\b", p.stdout), p.stdout


def test_unknown_option(bridge_bin):
    p = run(bridge_bin, "--no-such-option")
    assert p.returncode != 0


# ==== Logs ====


def test_log_lines_are_json(kafka, bridge, names):
    assert_accepted(bridge.post(names.path(), body="x"), names.ns, names.flow)
    assert_not_found(bridge.post(names.path(key="wrong"), body="x"))
    assert bridge.request("DELETE", names.path()).status == 405
    assert bridge.stop() == 0
    lines = [ln for ln in bridge.read_log().splitlines() if ln.strip()]
    assert lines
    for ln in lines:
        rec = json.loads(ln)  # every line, librdkafka's included, is one JSON object
        assert isinstance(rec, dict), ln
        for k in ("time", "level", "msg"):
            assert isinstance(rec.get(k), str), (k, ln)
    listening = [json.loads(ln) for ln in lines if json.loads(ln)["msg"] == "listening"]
    assert len(listening) == 1 and listening[0]["addr"] == bridge.addr


# ==== Options over config ====


def test_bootstrap_option_overrides_config(kafka, bridge_factory):
    """kafka.bootstrap_servers in the file points nowhere; --bootstrap-servers wins."""
    n = Names()
    b = bridge_factory.start([webhook_flow(n.ns, n.flow, n.key)],
                             kafka={"bootstrap_servers": "127.0.0.1:9"})
    assert "127.0.0.1:9" in b.config_path.read_text()
    assert_accepted(b.post(n.path(), body="x"), n.ns, n.flow)


def test_embedded_kafka_bridge_stops_on_sigterm(bridge_bin, tmp_path, request):
    """README's first command runs the bridge on the embedded cluster; Ctrl-C or SIGTERM must end
    it. The embedded cluster goes with the producer, before the execution-state consumer, whose
    last commit and group leave used to wait for it for ever (SIGKILL after STOP_TIMEOUT: None)."""
    from conftest import BridgeFactory
    f = BridgeFactory(bridge_bin, None, tmp_path, request)
    n = Names()
    b = f.start([webhook_flow(n.ns, n.flow, n.key)])
    assert any("EMBEDDED KAFKA" in r.get("msg", "") for r in b.log_records()), b.read_log()
    assert_accepted(b.post(n.path(), body='{"a":1}'), n.ns, n.flow)
    assert b.stop() == 0, b.read_log()
