#!/usr/bin/python3
"""golden.py: the golden vectors of proto/testdata/ (SPEC.md section 9), built independently of the
C codec with python3-msgpack, and the check that proto-decode prints their .json twins.

  /usr/bin/python3 golden.py write [DIR]        (re)write DIR/*.msgpack and DIR/*.json
  /usr/bin/python3 golden.py check PROTO_DECODE [DIR]
      the files equal what this script generates (skipped without python3-msgpack), proto-decode
      prints each twin exactly, --stream prints them all, and its error paths exit 1.

Run with Debian's /usr/bin/python3 (python3-msgpack). proto_test.c builds the same inputs in C
and compares proto_encode's bytes with these files: keep the two in step.
"""

import base64
import json
import os
import subprocess
import sys

TRIGGER_TYPE = "io.kestra.plugin.core.trigger.Webhook"
ABSENT = object()


class OMap(list):
    """A msgpack map as a list of (key, value) pairs: keeps order and duplicate keys."""


def envelope(vid, ns, flow, received, method, path, remote, trigger_id, headers, parameters,
             body=ABSENT):
    variables = OMap([("headers", headers), ("parameters", parameters)])
    if body is not ABSENT:
        variables.append(("body", body))
    return OMap([
        ("formatVersion", 1),
        ("id", vid),
        ("tenantId", "main"),
        ("namespace", ns),
        ("flowId", flow),
        ("receivedAt", received),
        ("request", OMap([("method", method), ("path", path), ("remoteAddress", remote)])),
        ("trigger", OMap([("id", trigger_id), ("type", TRIGGER_TYPE), ("variables", variables)])),
    ])


def vectors():
    v = {}
    v["object_body"] = envelope(
        "4wjtEiJZgcJ8jQ7ZAH8Gtq", "company.team", "github-push", "2026-11-27T14:20:19.123Z",
        "POST", "/api/v1/main/executions/webhook/company.team/github-push/********",
        "203.0.113.7", "on-push",
        OMap([("Host", ["bridge.example.com"]), ("Content-Type", ["application/json"]),
              ("X-Tag", ["a", "b"]), ("x-tag", ["c"]), ("User-Agent", ["curl/8.5.0"])]),
        OMap([("age", ["12", "13"]), ("flag", [""]), ("name", ["Zo\u00eb"])]),
        OMap([("ref", "refs/heads/main"), ("size", 3), ("neg", -42),
              ("max", 18446744073709551615), ("min", -9223372036854775808),
              ("huge", 1e20), ("pi", 3.25), ("tenth", 0.1), ("nothing", None),
              ("ok", True), ("no", False), ("tags", ["a", "b"]), ("dup", 1), ("dup", 2),
              ("name", "Zo\u00eb \u2014 \u65e5\u672c \U0001f389"),
              ("esc", "q\"b\\n\nt\t\x01"),
              ("nested", OMap([("empty", OMap()), ("list", [])]))]))
    v["array_body"] = envelope(
        "0000000000000000000001", "ops", "batch-import", "2024-02-29T23:59:59.999Z",
        "PUT", "/api/v1/executions/webhook/ops/batch-import/********", "2001:db8::1", "import",
        OMap([("Content-Type", ["application/json"]), ("Content-Length", ["41"])]),
        OMap(),
        [1, "two", OMap([("three", 3.0)]), [], None, False, -1.5e-07])
    v["string_body"] = envelope(
        "zzzzzzzzzzzzzzzzzzzzzz", "shop.payments", "stripe-event", "2026-01-01T00:00:00.000Z",
        "POST", "/api/v1/main/executions/webhook/shop.payments/stripe-event/********",
        "198.51.100.23", "stripe",
        OMap([("Content-Type", ["application/x-www-form-urlencoded"])]),
        OMap([("q", ["a b"])]),
        "a=1&b=caf\u00e9&bad=\ufffd")
    v["no_body"] = envelope(
        "7NC8AzqXGdmPnx3rwQcY2b", "company.team", "ping", "2026-11-27T09:05:00.001Z",
        "GET", "/api/v1/main/executions/webhook/company.team/ping/********", "127.0.0.1",
        "ping",
        OMap([("Host", ["localhost:8080"]), ("Accept", ["*/*"]), ("X-Multi", ["1", "2", "3"])]),
        OMap([("flag", [""]), ("id", ["7"])]))
    v["large_maps"] = envelope(
        "1Pq2Rs3Tu4Vw5Xy6Za7Bc8", "company.team.with.a.rather.long.namespace", "big",
        "2026-11-27T14:20:19.000Z", "POST",
        "/api/v1/main/executions/webhook/company.team.with.a.rather.long.namespace/big/********",
        "10.0.0.1", "big",
        OMap([("X-H%02d" % i, ["v%d" % i]) for i in range(17)]),
        OMap([("p", ["x" * 40])]),
        OMap([("k%02d" % i, i * 1000) for i in range(17)] + [("long", "abcdefghij" * 30)]))
    v.update(state_vectors())
    return v


def exec_state(eid, ns, flow, trigger_id, state, time, outputs=ABSENT):
    m = OMap([
        ("formatVersion", 1),
        ("message", "executionState"),
        ("id", eid),
        ("tenantId", "main"),
        ("namespace", ns),
        ("flowId", flow),
        ("triggerId", trigger_id),
        ("state", state),
        ("time", time),
    ])
    if outputs is not ABSENT:
        m.append(("outputs", outputs))
    return m


def trigger_state(ns, flow, trigger_id, time, execution_id=None, state=None):
    m = OMap([
        ("formatVersion", 1),
        ("message", "triggerState"),
        ("tenantId", "main"),
        ("namespace", ns),
        ("flowId", flow),
        ("triggerId", trigger_id),
        ("disabled", execution_id is not None),
    ])
    if execution_id is not None:
        m += [("executionId", execution_id), ("state", state)]
    m.append(("time", time))
    return m


def state_vectors():
    """SPEC-STATE.md section 5: execution-state events and trigger-state records."""
    return {
        "state_running": exec_state("4wjtEiJZgcJ8jQ7ZAH8Gtq", "company.team", "github-push",
                                    "on-push", "RUNNING", "2026-11-27T14:20:19.200Z"),
        "state_success": exec_state(
            "4wjtEiJZgcJ8jQ7ZAH8Gtq", "company.team", "github-push", "on-push", "SUCCESS",
            "2026-11-27T14:20:21.005Z",
            OMap([("status", "deployed"), ("count", 3), ("ratio", 0.5), ("tags", ["a", "b"]),
                  ("detail", OMap([("ok", True), ("none", None)])),
                  ("text", "Zo\u00eb \u2014 \U0001f389")])),
        "state_failed": exec_state("0000000000000000000001", "ops", "batch-import", "import",
                                   "FAILED", "2024-02-29T23:59:59.999Z"),
        "trigger_disabled": trigger_state("ops", "batch-import", "import",
                                          "2024-02-29T23:59:59.999Z",
                                          "0000000000000000000001", "FAILED"),
        "trigger_enabled": trigger_state("ops", "batch-import", "import",
                                         "2024-03-01T08:00:00.000Z"),
    }


# ---- msgpack ----

def pack(value, packer, out):
    if isinstance(value, OMap):
        out += packer.pack_map_header(len(value))
        for key, item in value:
            pack(key, packer, out)
            pack(item, packer, out)
    elif isinstance(value, list):
        out += packer.pack_array_header(len(value))
        for item in value:
            pack(item, packer, out)
    else:
        out += packer.pack(value)
    return out


def to_msgpack(value):
    import msgpack  # only needed here: check works without python3-msgpack
    return bytes(pack(value, msgpack.Packer(use_bin_type=True), bytearray()))


# ---- canonical JSON, as proto-decode prints it (SPEC.md section 8) ----

def json_float(x):
    if x != x:
        return '"NaN"'
    if x in (float("inf"), float("-inf")):
        return '"Infinity"' if x > 0 else '"-Infinity"'
    for precision in (15, 16, 17):
        text = "%.*g" % (precision, x)
        if float(text) == x:
            break
    if all(ch in "-0123456789" for ch in text):
        text += ".0"
    return text


def to_json(value):
    if isinstance(value, OMap):
        return "{" + ",".join(to_json(k) + ":" + to_json(v) for k, v in value) + "}"
    if isinstance(value, list):
        return "[" + ",".join(to_json(v) for v in value) + "]"
    if value is None:
        return "null"
    if value is True or value is False:
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return json_float(value)
    if isinstance(value, bytes):
        return json.dumps(base64.b64encode(value).decode("ascii"))
    return json.dumps(value, ensure_ascii=False)


# ---- modes ----

def write(directory):
    for name, value in sorted(vectors().items()):
        with open(os.path.join(directory, name + ".msgpack"), "wb") as f:
            f.write(to_msgpack(value))
        with open(os.path.join(directory, name + ".json"), "w", encoding="utf-8") as f:
            f.write(to_json(value) + "\n")
        print("wrote", name)


def read(path, mode="rb"):
    with open(path, mode) as f:
        return f.read()


def run(tool, args, data=None):
    return subprocess.run([tool] + args, input=data, capture_output=True, timeout=30)


class Checker:
    def __init__(self, tool, directory):
        self.tool = tool
        self.dir = directory
        self.failures = 0
        self.count = 0

    def expect(self, ok, what):
        self.count += 1
        if not ok:
            self.failures += 1
            print("FAIL:", what)

    def files_current(self):
        try:
            import msgpack  # noqa: F401
        except ImportError:
            print("skip: python3-msgpack missing, files not regenerated")
            return
        for name, value in sorted(vectors().items()):
            base = os.path.join(self.dir, name)
            self.expect(read(base + ".msgpack") == to_msgpack(value), name + ".msgpack is stale")
            self.expect(read(base + ".json", "r") == to_json(value) + "\n",
                        name + ".json is stale")

    def twins(self, names):
        for name in names:
            base = os.path.join(self.dir, name)
            r = run(self.tool, [base + ".msgpack"])
            self.expect(r.returncode == 0 and r.stdout == read(base + ".json"),
                        "proto-decode %s.msgpack: rc %d, %r" % (name, r.returncode, r.stderr))
            r = run(self.tool, [], read(base + ".msgpack"))
            self.expect(r.returncode == 0 and r.stdout == read(base + ".json"),
                        "proto-decode < %s.msgpack" % name)

    def stream(self, names):
        data = b"".join(read(os.path.join(self.dir, n + ".msgpack")) for n in names)
        want = b"".join(read(os.path.join(self.dir, n + ".json")) for n in names)
        r = run(self.tool, ["--stream"], data)
        self.expect(r.returncode == 0 and r.stdout == want, "--stream of all vectors")
        r = run(self.tool, ["--stream"], b"")
        self.expect(r.returncode == 0 and r.stdout == b"", "--stream of nothing")
        r = run(self.tool, ["--stream"], data + data[:5])
        self.expect(r.returncode == 1 and r.stdout == want and
                    r.stderr.startswith(b"proto-decode: truncated"), "--stream, cut last")

    def errors(self, names):
        one = read(os.path.join(self.dir, names[0] + ".msgpack"))
        cases = [
            (one[:-1], b"proto-decode: truncated message: input ends inside a value\n"),
            (one + b"\x00", b"proto-decode: trailing bytes after the message\n"),
            (b"", b"proto-decode: truncated message: input ends inside a value\n"),
            (b"\xc1", b"proto-decode: not valid msgpack\n"),
            (b"\x80", b"proto-decode: valid msgpack, but not the message SPEC.md describes\n"),
        ]
        shape = b"proto-decode: valid msgpack, but not the message SPEC.md describes\n"
        running = read(os.path.join(self.dir, "state_running.msgpack"))
        cases += [
            (running[:-1], b"proto-decode: truncated message: input ends inside a value\n"),
            # "message": "executionState" -> "executionStat_": a kind nobody knows
            (running.replace(b"executionState", b"executionStat_"), shape),
            # RUNNING with outputs: outputs belong to terminal states only
            (running[:1].replace(b"\x89", b"\x8a") + running[1:] + b"\xa7outputs\x80", shape),
            # formatVersion 2 of an execution-state event
            (running.replace(b"\xadformatVersion\x01", b"\xadformatVersion\x02"),
             b"proto-decode: unsupported formatVersion\n"),
        ]
        for data, err in cases:
            r = run(self.tool, [], data)
            self.expect(r.returncode == 1 and r.stdout == b"" and r.stderr == err,
                        "error for %r: %d %r" % (data[:8], r.returncode, r.stderr))
        r = run(self.tool, ["--help"])
        self.expect(r.returncode == 0 and b"usage: proto-decode" in r.stdout, "--help")
        r = run(self.tool, ["--nope"])
        self.expect(r.returncode == 2, "unknown option exits 2")
        r = run(self.tool, [os.path.join(self.dir, "does-not-exist")])
        self.expect(r.returncode == 2 and b"does-not-exist" in r.stderr, "missing file exits 2")

    def printer(self):
        """Values the producer never writes, but a reader may meet: bin, ext, odd floats."""
        try:
            import msgpack
        except ImportError:
            return
        base = vectors()["no_body"]
        cases = [
            (b"\xc4\x03abc", '"YWJj"'),
            (b"\xca\x3f\xc0\x00\x00", "1.5"),
            (b"\xcb\x7f\xf8\x00\x00\x00\x00\x00\x00", '"NaN"'),
            (b"\xcb\xff\xf0\x00\x00\x00\x00\x00\x00", '"-Infinity"'),
            (b"\xcb\x80\x00\x00\x00\x00\x00\x00\x00", "-0.0"),
            (b"\xcb\x43\x30\x00\x00\x00\x00\x00\x00", "4503599627370496.0"),
            (msgpack.packb(123456789.123456789), "123456789.12345679"),
            (msgpack.packb(5e-324), "4.94065645841247e-324"),
            (b"\xd0\x05", "5"),
        ]
        head = to_msgpack(base)
        # no_body's variables map is 0x82; make it 0x83 and append "body": value.
        at = head.index(b"\xa9variables") + len(b"\xa9variables")
        for raw, text in cases:
            data = head[:at] + b"\x83" + head[at + 1:] + b"\xa4body" + raw
            r = run(self.tool, [], data)
            want = to_json(base)[:-3] + ',"body":' + text + "}}}\n"
            self.expect(r.returncode == 0 and r.stdout.decode() == want,
                        "printing %r: %r %r" % (raw, r.stdout, r.stderr))
        data = head[:at] + b"\x83" + head[at + 1:] + b"\xa4body\xd4\x01\x00"
        r = run(self.tool, [], data)
        self.expect(r.returncode == 1 and r.stdout == b"" and b"ext" in r.stderr, "ext is an error")


def check(tool, directory):
    names = sorted(n[:-8] for n in os.listdir(directory) if n.endswith(".msgpack"))
    c = Checker(tool, directory)
    c.expect(len(names) >= 4, "at least 4 golden vectors")
    c.files_current()
    c.twins(names)
    c.stream(names)
    c.errors(names)
    c.printer()
    print("%d checks, %d failed, %d vectors" % (c.count, c.failures, len(names)))
    return 1 if c.failures else 0


def main(argv):
    here = os.path.dirname(os.path.abspath(__file__))
    if len(argv) >= 2 and argv[1] == "write":
        write(argv[2] if len(argv) > 2 else os.path.join(here, "testdata"))
        return 0
    if len(argv) >= 3 and argv[1] == "check":
        return check(argv[2], argv[3] if len(argv) > 3 else os.path.join(here, "testdata"))
    sys.stderr.write(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
