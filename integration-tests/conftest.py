"""Fixtures for the black-box integration tests.

What they start, and how they talk to it:
  * ``kafka``: one mock-kafka process per session (librdkafka's mock cluster over TCP on 127.0.0.1).
    ``kafka.cmd("broker-down 1")`` sends a fault-injection command and returns its answer.
  * ``kafka_private``: a mock-kafka of the test's own, for tests that break brokers.
  * ``bridge_factory`` / ``bridge``: webhook-bridge started from a config and flow YAML written into
    the test's tmp dir, on 127.0.0.1 port 0; the bound port is read back from the "listening" log line.
    The admin listener (/metrics, /health, /ready, /lag) is on 127.0.0.1 port 0 too, read back from
    the "admin listening" line into ``Bridge.admin_addr`` (None when the config turns it off).
    Stopped with SIGTERM at the end of the test, which must exit 0. Logs stay in the tmp dir and are
    attached to the report of a failing test.

Every wait here is bounded. Run with Debian's /usr/bin/python3 (pytest, confluent-kafka, msgpack):
    meson test -C build --suite integration
or directly (the binaries default to build/…, so the variables are optional there):
    BRIDGE_BIN=build/bridge/webhook-bridge MOCK_KAFKA_BIN=build/integration-tests/mock-kafka \
    PROTO_DECODE_BIN=build/proto/proto-decode /usr/bin/python3 -m pytest -q integration-tests
"""

import base64
import datetime
import http.client
import json
import os
import queue
import re
import secrets
import signal
import string
import subprocess
import threading
import time
import uuid
from pathlib import Path

import msgpack
import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, TopicPartition

REPO = Path(__file__).resolve().parent.parent

WEBHOOK_TYPE = "io.kestra.plugin.core.trigger.Webhook"
LEGACY_WEBHOOK_TYPE = "io.kestra.core.models.triggers.types.Webhook"
CONTENT_TYPE_V1 = "application/vnd.webhook-bridge.trigger.v1+msgpack"
NOT_FOUND_BODY = b'{"message":"Not Found: Webhook not found"}'
MASK = "********"

ID_RE = re.compile(r"^[0-9A-Za-z]{22}$")
RECEIVED_AT_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")

START_TIMEOUT = 10.0  # bridge: process start to the "listening" line
STOP_TIMEOUT = 15.0  # bridge: SIGTERM to exit (it flushes the producer first)
HTTP_TIMEOUT = 30.0  # one request, answer included (the answer waits for the broker's ack)
CONSUME_TIMEOUT = 20.0  # reading the expected messages back
QUIET_WAIT = 0.5  # after the expected count: how long to watch for an extra message


# ==== Binaries ====


def _binary(env_name, default_rel):
    """A path from the environment (meson sets them), else the default build folder."""
    path = os.path.abspath(os.environ.get(env_name) or str(REPO / "build" / default_rel))
    if not os.access(path, os.X_OK):
        pytest.fail(f"{env_name}: {path} is not an executable (build first, or set {env_name})",
                    pytrace=False)
    return path


@pytest.fixture(scope="session")
def bridge_bin():
    return _binary("BRIDGE_BIN", "bridge/webhook-bridge")


@pytest.fixture(scope="session")
def mock_kafka_bin():
    return _binary("MOCK_KAFKA_BIN", "integration-tests/mock-kafka")


@pytest.fixture(scope="session")
def proto_decode_bin():
    return _binary("PROTO_DECODE_BIN", "proto/proto-decode")


@pytest.fixture(scope="session")
def executor_bin():
    return _binary("EXECUTOR_BIN", "proto/webhook-bridge-executor")


# ==== Failure reports: attach the logs of what a test started ====


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)
    if not rep.failed:
        return
    for proc in getattr(item, "_it_logged", []):
        rep.sections.append((f"{proc.label} log ({proc.log_path})", proc.read_log()))


def _register_log(request, proc):
    if not hasattr(request.node, "_it_logged"):
        request.node._it_logged = []
    request.node._it_logged.append(proc)


# ==== mock-kafka ====


class MockKafka:
    """One mock-kafka process: its bootstrap string and its command channel."""

    label = "mock-kafka"

    def __init__(self, binary, log_dir, brokers=3):
        self.log_path = Path(log_dir) / "mock-kafka.log"
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen([binary, "--brokers", str(brokers)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self._log, text=True, bufsize=1)
        self._lines = queue.Queue()
        self._reader = threading.Thread(target=self._read_stdout, daemon=True)
        self._reader.start()
        self._lock = threading.Lock()
        first = self._next_line(10.0)
        if first is None or not first.startswith("BOOTSTRAP "):
            self.stop()
            raise RuntimeError(f"mock-kafka did not print BOOTSTRAP (got {first!r}); "
                               f"log: {self.read_log()}")
        self.bootstrap = first.split(" ", 1)[1].strip()
        self.brokers = brokers

    def _read_stdout(self):
        for line in self.proc.stdout:
            self._lines.put(line.rstrip("\n"))
        self._lines.put(None)

    def _next_line(self, timeout):
        try:
            return self._lines.get(timeout=timeout)
        except queue.Empty:
            return None

    def cmd(self, line, check=True):
        """Sends one command; returns the answer ("OK" or "ERR ..."). check: ERR raises."""
        with self._lock:
            self.proc.stdin.write(line + "\n")
            self.proc.stdin.flush()
            answer = self._next_line(10.0)
        if answer is None:
            raise RuntimeError(f"mock-kafka gave no answer to {line!r}")
        if check and answer != "OK":
            raise RuntimeError(f"mock-kafka: {line!r} -> {answer!r}")
        return answer

    def all_rtt(self, ms):
        """Every broker answers ms milliseconds late (0: on time again)."""
        for b in range(1, self.brokers + 1):
            self.cmd(f"rtt {b} {ms}")

    def all_brokers(self, state):
        for b in range(1, self.brokers + 1):
            self.cmd(f"broker-{state} {b}")

    def read_log(self):
        try:
            return self.log_path.read_text(errors="replace")
        except OSError as e:
            return f"(cannot read: {e})"

    def stop(self):
        """quit on stdin, then SIGTERM, then SIGKILL; each step bounded. Returns the exit code."""
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write("quit\n")
                self.proc.stdin.flush()
            except (BrokenPipeError, ValueError):
                pass
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.terminate()
                try:
                    self.proc.wait(5)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(5)
        try:
            self.proc.stdin.close()
        except (BrokenPipeError, ValueError, OSError):
            pass
        self._log.close()
        return self.proc.returncode


@pytest.fixture(scope="session")
def kafka(mock_kafka_bin, tmp_path_factory):
    """The shared mock cluster. Tests must leave it as they found it (use kafka_private to break it)."""
    mk = MockKafka(mock_kafka_bin, tmp_path_factory.mktemp("mock-kafka"))
    yield mk
    rc = mk.stop()
    assert rc == 0, f"mock-kafka exited {rc}; log:\n{mk.read_log()}"


@pytest.fixture
def kafka_private(mock_kafka_bin, tmp_path, request):
    """A mock cluster for one test, free to be broken."""
    d = tmp_path / "mock-kafka"
    d.mkdir()
    mk = MockKafka(mock_kafka_bin, d)
    _register_log(request, mk)
    yield mk
    rc = mk.stop()
    assert rc == 0, f"mock-kafka exited {rc}"


# ==== YAML writing (no PyYAML needed) ====


def _yaml_scalar(v):
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    # A JSON string is a valid YAML double-quoted scalar.
    return json.dumps(str(v))


def to_yaml(obj, indent=0):
    """Block-style YAML for dicts, lists and scalars."""
    pad = " " * indent
    out = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            if isinstance(v, (dict, list)) and v:
                out.append(f"{pad}{_yaml_scalar(k) if not _plain_key(k) else k}:")
                out.append(to_yaml(v, indent + 2))
            else:
                key = k if _plain_key(k) else _yaml_scalar(k)
                out.append(f"{pad}{key}: {_empty_or_scalar(v)}")
    elif isinstance(obj, list):
        for v in obj:
            if isinstance(v, (dict, list)) and v:
                inner = to_yaml(v, indent + 2).split("\n")
                out.append(f"{pad}- {inner[0].lstrip()}")
                out.extend(inner[1:])
            else:
                out.append(f"{pad}- {_empty_or_scalar(v)}")
    else:
        out.append(pad + _yaml_scalar(obj))
    return "\n".join(out)


def _plain_key(k):
    return isinstance(k, str) and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", k) is not None


def _empty_or_scalar(v):
    if isinstance(v, dict):
        return "{}"
    if isinstance(v, list):
        return "[]"
    return _yaml_scalar(v)


# ==== Flows ====


def uid(n=8):
    """A random lower-case suffix; every test builds its namespace and flow ids from one."""
    alphabet = string.ascii_lowercase + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(n))


def webhook_flow(ns, flow_id, key, trigger_id="hook", extra_trigger="", flow_extra="",
                 trigger_extra="", trigger_type=WEBHOOK_TYPE):
    """A Kestra flow YAML with one webhook trigger. key is written as a YAML double-quoted scalar."""
    return f"""\
id: {flow_id}
namespace: {ns}
{flow_extra}
tasks:
  - id: hello
    type: io.kestra.plugin.core.log.Log
    message: "{{{{ trigger.body }}}}"
triggers:
  - id: {trigger_id}
    type: {trigger_type}
    key: {json.dumps(key)}
{trigger_extra}
{extra_trigger}
"""


def default_topic(ns, flow_id):
    return f"webhooks.{ns}.{flow_id}"


def webhook_path(ns, flow_id, key, tenant=None):
    if tenant is None:
        return f"/api/v1/executions/webhook/{ns}/{flow_id}/{key}"
    return f"/api/v1/{tenant}/executions/webhook/{ns}/{flow_id}/{key}"


def masked_path(ns, flow_id, tenant=None):
    return webhook_path(ns, flow_id, MASK, tenant)


def b64(s):
    if isinstance(s, str):
        s = s.encode()
    return base64.b64encode(s).decode()


# ==== HTTP ====


class Response:
    def __init__(self, status, reason, headers, body):
        self.status = status
        self.reason = reason
        self.headers = headers  # list of (name, value) as received
        self.body = body

    def header(self, name):
        """The first value of a header (case-insensitive), or None."""
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    def header_all(self, name):
        return [v for k, v in self.headers if k.lower() == name.lower()]

    def json(self):
        return json.loads(self.body)

    def comparable(self):
        """status, body and the header set without Date: what must be identical between two 404s."""
        hdrs = sorted((k.lower(), v) for k, v in self.headers if k.lower() != "date")
        return (self.status, self.body, hdrs)

    def __repr__(self):
        return f"<Response {self.status} {self.headers!r} {self.body[:300]!r}>"


def http_request(addr, method, path, body=None, headers=None, host=True, timeout=HTTP_TIMEOUT):
    """One request on a new connection, with exactly the headers given (in order, casing kept).

    headers: list of (name, value). host=True adds "Host: <addr>" first unless headers has one.
    A body gets a Content-Length unless headers already carry one.
    """
    h, p = addr.rsplit(":", 1)
    conn = http.client.HTTPConnection(h, int(p), timeout=timeout)
    try:
        conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        headers = list(headers or [])
        names = {k.lower() for k, _ in headers}
        if host and "host" not in names:
            conn.putheader("Host", addr)
        for k, v in headers:
            conn.putheader(k, v)
        if isinstance(body, str):
            body = body.encode()
        if body is not None and "content-length" not in names and "transfer-encoding" not in names:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        r = conn.getresponse()
        data = r.read()
        return Response(r.status, r.reason, r.getheaders(), data)
    finally:
        conn.close()


# ==== Prometheus text ====

_SAMPLE_RE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
_LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_metrics(text):
    """Prometheus text format → {(name, frozenset((label, value), ...)): float}. Every line that is
    not a comment must be a well-formed sample, and no sample may appear twice."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE_RE.match(line)
        assert m, f"malformed sample line: {line!r}"
        name, labels, value = m.group(1), m.group(2) or "", m.group(3)
        pairs = _LABEL_RE.findall(labels)
        assert ",".join(f'{k}="{v}"' for k, v in pairs) == labels, f"bad labels: {line!r}"
        key = (name, frozenset((k, v.replace('\\"', '"').replace("\\n", "\n")
                                .replace("\\\\", "\\")) for k, v in pairs))
        assert key not in out, f"duplicate sample: {line!r}"
        out[key] = float(value)
    return out


def sample(metrics, name, **labels):
    """The value of one sample (None when absent)."""
    return metrics.get((name, frozenset(labels.items())))


def samples(metrics, name):
    """Every sample of one name: [(labels dict, value)]."""
    return [(dict(k[1]), v) for k, v in metrics.items() if k[0] == name]


# ==== webhook-bridge ====


def terminate(proc, log):
    """SIGTERM, wait up to STOP_TIMEOUT, then SIGKILL; closes log. The exit code, None if killed."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
            log.close()
            return None
    log.close()
    return proc.returncode


class Bridge:
    label = "webhook-bridge"

    def __init__(self, binary, workdir, config_path, args, env):
        self.workdir = workdir
        self.config_path = config_path
        self.log_path = workdir / "bridge.log"
        self._log = open(self.log_path, "wb")
        self.argv = [binary, "--config", str(config_path)] + args
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=subprocess.STDOUT, env=env, cwd=workdir / "cwd")
        self.addr = None
        self.admin_addr = None
        self.stopped = False
        self.expected_rc = 0  # a test that kills it on purpose says what exit code to expect

    def wait_listening(self, timeout=START_TIMEOUT):
        """Reads the log until a JSON line with msg == "listening" names the bound address.

        The admin listener's "admin listening" line comes before it, when there is one."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            recs = self.log_records()
            for rec in recs:
                if rec.get("msg") == "listening" and rec.get("addr"):
                    self.addr = rec["addr"]
                    for a in recs:
                        if a.get("msg") == "admin listening" and a.get("addr"):
                            self.admin_addr = a["addr"]
                    return self.addr
            if self.proc.poll() is not None:
                raise AssertionError(f"webhook-bridge exited with {self.proc.returncode} before "
                                     f"listening; log:\n{self.read_log()}")
            time.sleep(0.05)
        raise AssertionError(f"webhook-bridge: no 'listening' line within {timeout}s; "
                             f"log:\n{self.read_log()}")

    def read_log(self):
        try:
            return self.log_path.read_text(errors="replace")
        except OSError as e:
            return f"(cannot read: {e})"

    def log_records(self):
        """Every complete log line that parses as a JSON object."""
        recs = []
        for line in self.read_log().splitlines():
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if isinstance(rec, dict):
                recs.append(rec)
        return recs

    def request(self, method, path, body=None, headers=None, **kw):
        return http_request(self.addr, method, path, body=body, headers=headers, **kw)

    def post(self, path, body=None, headers=None, **kw):
        return self.request("POST", path, body=body, headers=headers, **kw)

    def get(self, path, headers=None, **kw):
        return self.request("GET", path, headers=headers, **kw)

    def admin(self, method, path, **kw):
        """A request to the admin listener."""
        assert self.admin_addr, "this bridge has no admin listener"
        return http_request(self.admin_addr, method, path, **kw)

    def metrics(self):
        """GET /metrics parsed: {(name, frozenset of (label, value)): float}."""
        r = self.admin("GET", "/metrics")
        assert r.status == 200, r
        return parse_metrics(r.body.decode())

    def stop(self):
        """SIGTERM, bounded wait; returns the exit code (SIGKILL and None on a hang)."""
        if self.stopped:
            return self.proc.returncode
        self.stopped = True
        return terminate(self.proc, self._log)


class BridgeFactory:
    """Writes a config and a flows folder, starts webhook-bridge on them.

    start(flows=[yaml, ...], config={...extra/overriding keys...}, kafka={...kafka keys...},
          env={...}, args=[...], bootstrap=None, listen=True)
    """

    def __init__(self, binary, kafka, tmp_path, request):
        self.binary = binary
        self.kafka = kafka
        self.tmp_path = tmp_path
        self.request = request
        self.bridges = []

    def write(self, flows=(), config=None, kafka=None, name=None, flow_files=None):
        """Creates <tmp>/<name>/{bridge.yaml, flows/, cwd/}; returns that folder."""
        name = name or f"bridge{len(self.bridges)}-{uid(4)}"
        d = self.tmp_path / name
        (d / "flows").mkdir(parents=True)
        (d / "cwd").mkdir()
        for i, text in enumerate(flows):
            (d / "flows" / f"flow{i}.yaml").write_text(text)
        for fname, text in (flow_files or {}).items():
            (d / "flows" / fname).write_text(text)
        cfg = {"listen": "127.0.0.1:0", "admin_listen": "127.0.0.1:0", "flows_dir": "flows",
               "log_level": "info",
               "kafka": {"bootstrap_servers": self.kafka.bootstrap if self.kafka else "",
                         "delivery_timeout_ms": 10000}}
        for k, v in (config or {}).items():
            cfg[k] = v
        for k, v in (kafka or {}).items():
            cfg["kafka"][k] = v
        (d / "bridge.yaml").write_text(to_yaml(cfg) + "\n")
        return d

    def start(self, flows=(), config=None, kafka=None, env=None, args=None, bootstrap=None,
              flow_files=None, wait=True):
        d = self.write(flows, config=config, kafka=kafka, flow_files=flow_files)
        bootstrap = bootstrap or (self.kafka.bootstrap if self.kafka else None)
        argv = ["--listen", "127.0.0.1:0"]
        if bootstrap:
            argv += ["--bootstrap-servers", bootstrap]
        argv += list(args or [])
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("SECRET_")}
        full_env.update(env or {})
        b = Bridge(self.binary, d, d / "bridge.yaml", argv, full_env)
        self.bridges.append(b)
        _register_log(self.request, b)
        if wait:
            b.wait_listening()
        return b

    def stop_all(self):
        problems = []
        for b in self.bridges:
            rc = b.stop()
            if rc != b.expected_rc:
                problems.append(f"webhook-bridge {b.addr} exited {rc} after SIGTERM; "
                                f"log:\n{b.read_log()}")
        return problems


@pytest.fixture
def bridge_factory(bridge_bin, kafka, tmp_path, request):
    f = BridgeFactory(bridge_bin, kafka, tmp_path, request)
    yield f
    problems = f.stop_all()
    assert not problems, "\n".join(problems)


@pytest.fixture
def bridge_private_factory(bridge_bin, kafka_private, tmp_path, request):
    """Like bridge_factory, against the test's own mock cluster (kafka_private)."""
    f = BridgeFactory(bridge_bin, kafka_private, tmp_path, request)
    yield f
    problems = f.stop_all()
    assert not problems, "\n".join(problems)


class Names:
    """A namespace and a flow id unique to one test; topics follow from them."""

    def __init__(self):
        s = uid()
        self.ns = f"it.{s}"
        self.flow = f"flow-{s}"
        self.key = f"key-{uid(12)}"
        self.suffix = s

    @property
    def topic(self):
        return default_topic(self.ns, self.flow)

    def path(self, key=None, tenant=None, ns=None, flow=None):
        return webhook_path(ns or self.ns, flow or self.flow, self.key if key is None else key,
                            tenant)


@pytest.fixture
def names():
    return Names()


@pytest.fixture
def bridge(bridge_factory, names):
    """A bridge with one flow: names.ns / names.flow, trigger "hook", key names.key."""
    return bridge_factory.start([webhook_flow(names.ns, names.flow, names.key)])


# ==== The reference executor (proto/executor.c) ====

STATE_CONTENT_TYPE_V1 = "application/vnd.webhook-bridge.execution-state.v1+msgpack"


class Executor:
    """One webhook-bridge-executor process; its log is attached to a failing test's report."""

    label = "webhook-bridge-executor"

    def __init__(self, binary, workdir, args):
        workdir.mkdir(parents=True, exist_ok=True)
        self.log_path = workdir / "executor.log"
        self._log = open(self.log_path, "wb")
        self.argv = [binary] + args
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=subprocess.STDOUT)

    def read_log(self):
        try:
            return self.log_path.read_text(errors="replace")
        except OSError as e:
            return f"(cannot read: {e})"

    def stop(self):
        """SIGTERM, bounded wait; returns the exit code (None after a SIGKILL)."""
        return terminate(self.proc, self._log)


class ExecutorFactory:
    """start(ns, state_topic, outcomes={flow: STATE}, outputs={flow: dict}, group=None, args=[...]):
    an executor in a group of its own (unless group is given) that consumes only the flow topics
    of namespace ns. Start it after the flow topics exist (after a first accepted call)."""

    def __init__(self, binary, kafka, tmp_path, request):
        self.binary = binary
        self.kafka = kafka
        self.tmp_path = tmp_path
        self.request = request
        self.executors = []

    def start(self, ns, state_topic, outcomes=None, outputs=None, group=None, args=None):
        argv = ["--bootstrap-servers", self.kafka.bootstrap,
                "--group", group or f"it-exec-{uid()}",
                "--topic-regex", "^" + re.escape(default_topic(ns, "")) + ".*",
                "--state-topic", state_topic,
                "-X", "log_level=3",
                # The mock cluster keeps the member of a join made before any topic matched the
                # regex until its session times out, and waits for it at the next rebalance: keep
                # that short, and start executors after the flow topics exist.
                "-X", "session.timeout.ms=6000", "-X", "heartbeat.interval.ms=500"]
        for flow, state in (outcomes or {}).items():
            argv += ["--outcome", f"{ns}/{flow}={state}"]
        for flow, out in (outputs or {}).items():
            argv += ["--outputs", f"{ns}/{flow}={json.dumps(out)}"]
        argv += list(args or [])
        x = Executor(self.binary, self.tmp_path / f"executor{len(self.executors)}", argv)
        self.executors.append(x)
        _register_log(self.request, x)
        return x

    def stop_all(self):
        problems = []
        for x in self.executors:
            rc = x.stop()
            if rc != 0:
                problems.append(f"executor exited {rc} after SIGTERM; log:\n{x.read_log()}")
        return problems


@pytest.fixture
def executor_factory(executor_bin, kafka, tmp_path, request):
    f = ExecutorFactory(executor_bin, kafka, tmp_path, request)
    yield f
    problems = f.stop_all()
    assert not problems, "\n".join(problems)


# ==== Typed comparison ====


class Pairs(list):
    """A msgpack map decoded as its (key, value) pairs, in order, duplicates kept."""


def typed(x):
    """x with every value tagged by its type, so 1, 1.0 and True compare different."""
    if isinstance(x, Pairs):
        return ("map", [(k, typed(v)) for k, v in x])
    if isinstance(x, dict):
        return ("map", [(k, typed(v)) for k, v in x.items()])
    if isinstance(x, list):
        return ("array", [typed(v) for v in x])
    if x is None:
        return ("nil",)
    return (type(x).__name__, x)


# ==== Kafka read side ====


class Record:
    def __init__(self, msg):
        self.topic = msg.topic()
        self.partition = msg.partition()
        self.offset = msg.offset()
        self.key = msg.key()
        self.value = msg.value()
        self.headers = msg.headers() or []

    def decoded(self):
        return decode_value(self.value)

    def header_values(self, name):
        return [v for k, v in self.headers if k == name]

    def __repr__(self):
        return f"<Record {self.topic}[{self.partition}]@{self.offset} key={self.key!r}>"


def decode_value(value):
    """msgpack → Python, strings as str (invalid UTF-8 raises), maps keep their order."""
    return msgpack.unpackb(value, raw=False, strict_map_key=True)


def decode_pairs(value):
    """msgpack → Python with every map as Pairs: shows key order and duplicate keys."""
    return msgpack.unpackb(value, raw=False, object_pairs_hook=Pairs)


def _consumer(bootstrap):
    return Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": f"it-{uuid.uuid4().hex}",
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "enable.partition.eof": False,
        "allow.auto.create.topics": False,
        "topic.metadata.refresh.interval.ms": 1000,
        "fetch.wait.max.ms": 50,
        "log_level": 3,
    })


def topic_partitions(consumer, topic, timeout=5.0):
    """Partition ids of an existing topic, [] when the topic does not exist."""
    md = consumer.list_topics(topic, timeout=timeout)
    t = md.topics.get(topic)
    if t is None or t.error is not None:
        return []
    return sorted(t.partitions)


def topic_count(kafka, topic, timeout=5.0):
    """Messages in a topic, summed over every partition from the watermarks (no consuming)."""
    c = _consumer(kafka.bootstrap)
    try:
        total = 0
        for p in topic_partitions(c, topic, timeout):
            lo, hi = c.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout)
            total += hi - lo
        return total
    finally:
        c.close()


def consume(kafka, topic, expected, timeout=CONSUME_TIMEOUT, quiet=QUIET_WAIT):
    """Reads a topic from the beginning of every partition until `expected` messages arrived (or the
    deadline), then watches `quiet` seconds more so that an extra message shows. Returns Records,
    sorted by (partition, offset): there is no order across partitions."""
    c = _consumer(kafka.bootstrap)
    out = []
    try:
        deadline = time.monotonic() + timeout
        parts = []
        while not parts and time.monotonic() < deadline:
            parts = topic_partitions(c, topic)
            if not parts:
                time.sleep(0.2)
        if not parts:
            return out
        c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts])
        quiet_until = None
        while True:
            now = time.monotonic()
            if len(out) >= expected and quiet_until is None:
                quiet_until = now + quiet
            if quiet_until is not None and now >= quiet_until:
                break
            if quiet_until is None and now >= deadline:
                break
            msgs = c.consume(num_messages=500, timeout=0.2)
            for m in msgs:
                if m.error():
                    raise KafkaException(m.error())
                out.append(Record(m))
        out.sort(key=lambda r: (r.partition, r.offset))
        return out
    finally:
        c.close()


def consume_one(kafka, topic):
    recs = consume(kafka, topic, 1)
    assert len(recs) == 1, f"expected exactly 1 message in {topic}, got {len(recs)}: {recs}"
    return recs[0]


def proto_decode(binary, value, timeout=10.0):
    """Runs proto-decode on one message (stdin) and returns its JSON output parsed."""
    r = subprocess.run([binary, "-"], input=value, capture_output=True, timeout=timeout)
    assert r.returncode == 0, (f"proto-decode exited {r.returncode}: "
                               f"{r.stderr.decode(errors='replace')}")
    return json.loads(r.stdout)


# ==== Assertions shared by the test files ====


def assert_not_found(resp):
    """The one 404 every miss gets: status, JSON content type and the exact body."""
    assert resp.status == 404, resp
    assert resp.header("Content-Type") == "application/json", resp
    assert resp.body == NOT_FOUND_BODY, resp


def assert_json_error(resp, status):
    assert resp.status == status, resp
    ct = resp.header("Content-Type") or ""
    assert ct.split(";")[0].strip() == "application/json", resp
    body = resp.json()
    assert isinstance(body, dict) and isinstance(body.get("message"), str) and body["message"], resp
    return body


def assert_accepted(resp, ns, flow_id, trigger_id="hook", trigger_type=WEBHOOK_TYPE):
    """A 200 answer: returns the execution id."""
    assert resp.status == 200, resp
    ct = resp.header("Content-Type") or ""
    assert ct.split(";")[0].strip() == "application/json", resp
    body = resp.json()
    assert isinstance(body.get("id"), str) and ID_RE.match(body["id"]), body
    assert body == {
        "id": body["id"],
        "namespace": ns,
        "flowId": flow_id,
        "tenantId": "main",
        "trigger": {"id": trigger_id, "type": trigger_type},
        "state": {"current": "CREATED"},
    }, body
    return body["id"]


def check_message(rec, exec_id, ns, flow_id, method, key=None, trigger_id="hook",
                  trigger_type=WEBHOOK_TYPE, path=None):
    """Checks one Kafka record against the wire contract; returns its trigger variables.

    key: the webhook key used; it must appear nowhere in the record (value, key or headers).
    path: the expected request.path (default: the untenanted webhook path with the key masked).
    """
    assert rec.key == exec_id.encode(), rec
    assert rec.header_values("content-type") == [CONTENT_TYPE_V1.encode()], rec.headers
    assert rec.header_values("execution-id") == [exec_id.encode()], rec.headers
    if key:
        for blob in [rec.value, rec.key] + [v or b"" for _, v in rec.headers]:
            assert key.encode() not in blob, f"the webhook key {key!r} leaked into Kafka"
    msg = decode_value(rec.value)
    assert list(msg) == ["formatVersion", "id", "tenantId", "namespace", "flowId", "receivedAt",
                         "request", "trigger"], msg
    assert msg["formatVersion"] == 1 and type(msg["formatVersion"]) is int, msg
    assert msg["id"] == exec_id
    assert msg["tenantId"] == "main"
    assert msg["namespace"] == ns
    assert msg["flowId"] == flow_id
    assert RECEIVED_AT_RE.match(msg["receivedAt"]), msg["receivedAt"]
    received = datetime.datetime.strptime(msg["receivedAt"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.timezone.utc)
    skew = abs((datetime.datetime.now(datetime.timezone.utc) - received).total_seconds())
    assert skew < 120, f"receivedAt {msg['receivedAt']} is {skew:.0f}s away from now"
    req = msg["request"]
    assert list(req) == ["method", "path", "remoteAddress"], req
    assert req["method"] == method
    assert req["path"] == (path if path is not None else masked_path(ns, flow_id)), req
    assert req["remoteAddress"] == "127.0.0.1"
    trig = msg["trigger"]
    assert list(trig) == ["id", "type", "variables"], trig
    assert trig["id"] == trigger_id
    assert trig["type"] == trigger_type
    var = trig["variables"]
    assert list(var) in (["headers", "parameters"], ["headers", "parameters", "body"]), var
    for section in ("headers", "parameters"):
        assert isinstance(var[section], dict), var
        for name, values in var[section].items():
            assert isinstance(values, list) and all(isinstance(v, str) for v in values), \
                (section, name, values)
    return var

