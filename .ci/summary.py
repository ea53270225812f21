"""Counts test results of a .ci/run and prints one closing line "N passed, N failed".

Reads each build folder's meson-logs/testlog.json. A meson test that wrote a JUnit file
(cmocka's XML output, pytest's --junitxml) counts as its test cases; any other meson test
counts as one. A meson test that failed without a failing case in its JUnit file (a crash,
a sanitizer abort) counts as one more failure. Plain "name PASS|FAIL" result files count too.
Exit status: 0 when nothing failed.
"""
import json
import os
import sys
import xml.etree.ElementTree as ET


def junit_counts(path):
    passed = failed = skipped = 0
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError):
        return None
    for case in root.iter("testcase"):
        kinds = {child.tag for child in case}
        if kinds & {"failure", "error"}:
            failed += 1
        elif "skipped" in kinds:
            skipped += 1
        else:
            passed += 1
    return passed, failed, skipped


def junit_for(build, name):
    if name == "integration":
        return os.path.join(build, "junit", "integration.xml")
    if name.startswith("unit."):
        return os.path.join(build, "junit", "unit-" + name[5:] + ".xml")
    return None


def count_build(build):
    totals = [0, 0, 0]
    log = os.path.join(build, "meson-logs", "testlog.json")
    if not os.path.exists(log):
        return totals
    with open(log) as f:
        for line in f:
            t = json.loads(line)
            ok = t["result"] in ("OK", "EXPECTEDFAIL", "SKIP")
            # meson names tests "project:suite / name".
            name = t["name"].split(" / ")[-1]
            path = junit_for(build, name)
            c = junit_counts(path) if path and os.path.exists(path) else None
            if c is None:
                totals[0 if ok else 1] += 1
                if not ok:
                    print(f"{build}: {name} failed ({t['result']})")
                continue
            totals[0] += c[0]
            totals[1] += c[1]
            totals[2] += c[2]
            if not ok and c[1] == 0:
                totals[1] += 1
                print(f"{build}: {name} failed outside its test cases ({t['result']})")
            elif c[1]:
                print(f"{build}: {name}: {c[1]} failing case(s)")
    return totals


def main(args):
    totals = [0, 0, 0]
    for a in args:
        if os.path.isdir(a):
            part = count_build(a)
        elif os.path.isfile(a):
            part = [0, 0, 0]
            for line in open(a):
                name, _, res = line.strip().rpartition(" ")
                part[0 if res == "PASS" else 1] += 1
                if res != "PASS":
                    print(f"{a}: {name} failed")
        else:
            continue
        print(f"{a}: {part[0]} passed, {part[1]} failed, {part[2]} skipped")
        totals = [x + y for x, y in zip(totals, part)]
    line = f"{totals[0]} passed, {totals[1]} failed"
    if totals[2]:
        line += f", {totals[2]} skipped"
    print(line)
    return 1 if totals[1] or totals[0] == 0 else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
