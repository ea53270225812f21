#!/usr/bin/python3
"""perf_summary.py: summarizes `perf script` output (cpu-clock samples with call graphs) of the
bridge: top functions by self time, time per thread and per library, the inclusive share of the
request path's stages, and who calls epoll_ctl. Usage: perf_summary.py perf.script [TOP]
"""

import collections
import re
import sys

FRAME = re.compile(r"^\s*[0-9a-f]+ (.+?) \((.*)\)$")

# Stages of one request, in the order they happen; a sample counts for each one on its stack.
STAGES = [
    ("evbuffer_read", "read request bytes (evhttp)"),
    ("on_request", "on_request: our request callback, all of it"),
    ("hook_process", "  hook_process: route, key, body, conditions, message"),
    ("pack_body", "    pack_body: JSON body -> msgpack (one pass)"),
    ("msgpack_unpack", "    msgpack_unpack: message unpacked again for the conditions"),
    ("pub_send", "  pub_send: rd_kafka_producev"),
    ("event_add", "  event_add (all callers)"),
    ("rd_kafka_poll", "rd_kafka_poll: delivery reports"),
    ("srv_on_delivery", "  srv_on_delivery: answer + free"),
    ("evhttp_send_reply", "    evhttp_send_reply"),
    ("evbuffer_write_atmost", "write answers (evhttp)"),
    ("__GI_epoll_ctl", "epoll_ctl (all callers)"),
    ("epoll_wait", "epoll_wait"),
]


def parse(path):
    samples = []
    comm, stack = None, None
    with open(path, errors="replace") as f:
        for line in f:
            if not line.strip():
                if stack is not None:
                    samples.append((comm, stack))
                stack = None
                continue
            if not line[0].isspace():
                comm, stack = line.split()[0], []
                continue
            m = FRAME.match(line.rstrip())
            if m and stack is not None:
                sym = re.sub(r"\+0x[0-9a-f]+$", "", m.group(1))
                dso = m.group(2).rsplit("/", 1)[-1]
                stack.append((sym, dso))
    if stack is not None:
        samples.append((comm, stack))
    return samples


def pct(n, total):
    return f"{100.0 * n / total:5.1f}%"


def main():
    samples = parse(sys.argv[1])
    top = int(sys.argv[2]) if len(sys.argv) > 2 else 15
    n = len(samples)
    if n == 0:
        sys.exit("perf_summary.py: no samples")
    self_c, comm_c, dso_c = collections.Counter(), collections.Counter(), collections.Counter()
    incl = collections.Counter()
    epoll_callers = collections.Counter()
    for comm, stack in samples:
        comm_c[comm] += 1
        if not stack:
            continue
        sym, dso = stack[0]
        self_c[(sym, dso, comm)] += 1
        dso_c[dso] += 1
        names = [s for s, _ in stack]
        for fn in set(names):
            incl[fn] += 1
        if "__GI_epoll_ctl" in names:
            i = names.index("__GI_epoll_ctl")
            named = [s for s in names[i + 1:] if s != "[unknown]"][:4]
            epoll_callers[" < ".join(named)] += 1

    print(f"\n{n} samples (cpu-clock). Top {top} by self time, share of all samples of the process:")
    print(f"  {'self':>6}  {'function':40} {'library':24} thread")
    for (sym, dso, comm), c in self_c.most_common(top):
        print(f"  {pct(c, n)}  {sym[:40]:40} {dso[:24]:24} {comm}")
    print("\nBy thread:")
    for comm, c in comm_c.most_common():
        print(f"  {pct(c, n)}  {comm}")
    print("\nBy library (self):")
    for dso, c in dso_c.most_common(10):
        print(f"  {pct(c, n)}  {dso}")
    print("\nRequest path, inclusive (a sample counts for every stage on its stack):")
    for fn, label in STAGES:
        print(f"  {pct(incl[fn], n)}  {label}")
    print("\nepoll_ctl by caller:")
    for k, c in epoll_callers.most_common(6):
        print(f"  {pct(c, n)}  {k}")


if __name__ == "__main__":
    main()
