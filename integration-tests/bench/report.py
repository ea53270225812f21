#!/usr/bin/python3
"""report.py: prints the benchmark's results.tsv (written by `run`) as tables: every run, then the
median of each column per scenario over the rounds, the bridge as a percentage of the ceiling, and
the issue's targets with a verdict. Usage: report.py results.tsv
"""

import csv
import os
import statistics
import sys

BUSY_LIMIT = float(os.environ.get("BENCH_BUSY_LIMIT", "10"))

COLUMNS = [  # (tsv column, heading, width)
    ("scenario", "scenario", 26),
    ("conns", "conns", 8),
    ("rps", "req/s", 7),
    ("ok_rps", "2xx/s", 7),
    ("p50_ms", "p50 ms", 7),
    ("p99_ms", "p99 ms", 7),
    ("non2xx", "non-2xx", 8),
    ("c503", "503", 6),
    ("p99_503_ms", "503 p99", 7),
    ("accepted", "accepted", 9),
    ("delivered", "delivered", 9),
    ("lost", "lost", 5),
    ("rss_mb", "RSS MB", 7),
    ("cpu_srv", "cpu srv%", 8),
    ("cpu_mock", "cpu mock%", 9),
    ("us_req", "us/req", 6),
    ("cpu_load", "cpu load%", 9),
    ("other", "other%", 7),
    ("ceil", "of ceil", 8),
]

PAIRS = {"bridge-7.3KB": "ceiling-7.3KB", "bridge-243B": "ceiling-243B",
         "bridge-overload-7.3KB": "ceiling-7.3KB", "bridge-overload-open-7.3KB": "ceiling-7.3KB"}
# Same fixed request rate: the ratio of CPU time per request, ceiling / bridge (a stable proxy
# for the throughput ratio, which moves with the VM's mood).
COST_PAIRS = {"bridge-fixed-7.3KB": "ceiling-fixed-7.3KB"}


def num(v):
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def fmt(v):
    if v is None:
        return "-"
    if isinstance(v, str):
        return v
    if abs(v) >= 100 or v == int(v):
        return f"{v:.0f}"
    return f"{v:.2f}"


def add_ratios(rows):
    by_round = {}
    for r in rows:
        by_round.setdefault(r["round"], {})[r["scenario"]] = r
    for r in rows:
        base = by_round[r["round"]].get(PAIRS.get(r["scenario"], ""))
        cost = by_round[r["round"]].get(COST_PAIRS.get(r["scenario"], ""))
        if base and num(base["rps"]):
            r["ceil"] = f"{100 * float(r['rps']) / float(base['rps']):.0f}%"
        elif cost and num(cost["us_req"]) and num(r["us_req"]):
            r["ceil"] = f"{100 * float(cost['us_req']) / float(r['us_req']):.0f}%c"
        else:
            r["ceil"] = "-"


def cell(r, k):
    s = fmt(r.get(k))
    if k == "other" and num(r.get(k)) is not None and num(r.get(k)) > BUSY_LIMIT:
        s += "!"  # the machine was busy with other work during this measurement
    return s


def print_table(title, rows, with_round):
    cols = ([("round", "rnd", 3)] if with_round else []) + COLUMNS
    print(f"\n{title}")
    print("  ".join(h.rjust(w) if i else h.ljust(w) for i, (_, h, w) in enumerate(cols)))
    for r in rows:
        print("  ".join((cell(r, k).rjust(w) if i else cell(r, k).ljust(w))
                        for i, (k, _, w) in enumerate(cols)))


def medians(rows):
    out = []
    order = []
    groups = {}
    for r in rows:
        if r["scenario"] not in groups:
            order.append(r["scenario"])
        groups.setdefault(r["scenario"], []).append(r)
    for name in order:
        g = groups[name]
        m = {"scenario": name, "conns": g[0]["conns"]}
        for k, _, _ in COLUMNS[2:]:
            if k == "ceil":
                suffix = "%c" if g[0]["ceil"].endswith("%c") else "%"
                vals = [num(x["ceil"].rstrip("%c")) for x in g]
                vals = [v for v in vals if v is not None]
                m[k] = f"{statistics.median(vals):.0f}{suffix}" if vals else "-"
                continue
            vals = [num(x.get(k)) for x in g]
            vals = [v for v in vals if v is not None]
            m[k] = statistics.median(vals) if vals else None
        m["n"] = len(g)
        out.append(m)
    return out


def ok_rate(m):
    """2xx answers per second (older results files lack the column: estimate it)."""
    if m.get("ok_rps") is not None:
        return m["ok_rps"]
    return m["rps"] * m["accepted"] / (m["accepted"] + (m["non2xx"] or 0))


def verdicts(med):
    by = {m["scenario"]: m for m in med}
    checks = []

    def ratio(name):
        m = by.get(name)
        return num(m["ceil"].rstrip("%")) if m and m["ceil"] != "-" else None

    def check(label, value, ok, shown):
        checks.append((label, shown if value is not None else "not run",
                       "-" if value is None else ("ok" if ok(value) else "MISSED")))

    r = ratio("bridge-7.3KB")
    check("bridge-7.3KB >= 50% of ceiling", r, lambda v: v >= 50, f"{fmt(r)}%")
    r = ratio("bridge-243B")
    check("bridge-243B >= 60% of ceiling", r, lambda v: v >= 60, f"{fmt(r)}%")
    for name in ("bridge-7.3KB", "bridge-243B"):
        p = by.get(name, {}).get("p99_ms")
        check(f"{name} p99 <= 3 ms at 64 connections", p, lambda v: v <= 3, f"{fmt(p)} ms")
    rss = max((m["rss_mb"] for m in med if m["scenario"].startswith("bridge")
               and m["rss_mb"] is not None), default=None)
    check("bridge peak RSS <= 16 MB (every scenario)", rss, lambda v: v <= 16, f"{fmt(rss)} MB")
    base = by.get("bridge-7.3KB")
    ov = by.get("bridge-overload-7.3KB")
    if ov and base and ov["rps"] and base["rps"]:
        flat = 100 * ok_rate(ov) / base["rps"]
        check(f"wrk {ov['conns']} connections: 2xx/s flat (>= 90% of 64 connections)", flat,
              lambda v: v >= 90, f"{flat:.0f}%")
        check(f"wrk {ov['conns']} connections: p99 <= 3 ms (excess answered 503 at once)",
              ov["p99_ms"], lambda v: v <= 3,
              f"p99 {fmt(ov['p99_ms'])} ms, {fmt(ov['c503'])} x 503")
    ovo = by.get("bridge-overload-open-7.3KB")
    if ovo and base and ovo["rps"] and base["rps"]:
        flat = 100 * ok_rate(ovo) / base["rps"]
        check(f"open loop {ovo['conns']}: 2xx/s flat (>= 90% of saturation)", flat,
              lambda v: v >= 90, f"{flat:.0f}%")
        check(f"open loop {ovo['conns']}: excess gets 503, p99 of 503s <= 3 ms",
              ovo["p99_503_ms"] if ovo["c503"] else 1e9, lambda v: v <= 3,
              f"{fmt(ovo['c503'])} x 503, their p99 {fmt(ovo['p99_503_ms'])} ms; "
              f"p99 of all answers {fmt(ovo['p99_ms'])} ms")
    fx = by.get("bridge-fixed-7.3KB")
    r = num(fx["ceil"].rstrip("%c")) if fx and fx["ceil"] != "-" else None
    check("(proxy) CPU per request, ceiling/bridge at the same fixed rate >= 50%", r,
          lambda v: v >= 50, f"{fmt(r)}%")
    lo = by.get("bridge-lowrate-7.3KB")
    p = lo["p50_ms"] if lo else None
    check("100 req/s: median answer < 2 ms", p, lambda v: v < 2, f"{fmt(p)} ms")
    lost = sum((m["lost"] or 0) for m in med if m["lost"] is not None)
    check("no accepted message lost", lost, lambda v: v == 0, f"{fmt(lost)}")
    print("\nTargets (issue 6), on the medians:")
    for label, shown, v in checks:
        print(f"  {v:7s} {label}: {shown}")


def main():
    with open(sys.argv[1], newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    if not rows:
        sys.exit("report.py: no results")
    for r in rows:
        for k, v in r.items():
            if k not in ("scenario", "conns", "round") and num(v) is not None:
                r[k] = float(v)
        # CPU time of the server per answer, in microseconds.
        rps, cpu = num(r.get("rps")), num(r.get("cpu_srv"))
        r["us_req"] = 1e4 * cpu / rps if rps and cpu is not None else None
    add_ratios(rows)
    print_table("Every run (CPU in % of one core over the measured window; other% = processes "
                f"outside the benchmark, '!' above {BUSY_LIMIT:.0f}%: machine busy):", rows, True)
    med = medians(rows)
    n = max(m["n"] for m in med)
    print_table(f"Median over {n} round(s), column by column ('of ceil': req/s ratio; "
                "with 'c': ratio of CPU per request at the same fixed rate):", med, False)
    verdicts(med)


if __name__ == "__main__":
    main()
