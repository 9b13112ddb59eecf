#!/usr/bin/env python3
"""Two flat profiles from bench/flat.sh, per request: microseconds of server CPU per request for
each (thread, object, symbol), the largest increases from A to B first, then totals by thread
and object. Samples are taken at 2999 Hz for 4 s; requests in that window are estimated from
wrk's rate, so compare the two columns rather than trust the absolute figures.

    python3 bench/flat_diff.py NAME_A NAME_B [ROWS]
"""
import collections
import re
import subprocess
import sys

HZ = 2999
WINDOW_S = 4


def load(name):
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", open(f"/tmp/flat-{name}.wrk").read()).group(1))
    out = subprocess.run(
        ["perf", "report", "-i", f"/tmp/flat-{name}.data", "--no-children", "--sort", "comm,dso,symbol",
         "--stdio", "-g", "none", "-F", "sample,comm,dso,sym"],
        capture_output=True, text=True, check=True).stdout
    per = collections.Counter()
    for line in out.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        parts = line.split(None, 3)
        if len(parts) < 4 or not parts[0].isdigit():
            continue
        per[(parts[1], parts[2], parts[3].strip()[:100])] += int(parts[0])
    requests = rate * WINDOW_S
    return {k: v * 1e6 / HZ / requests for k, v in per.items()}


def main():
    a, b = load(sys.argv[1]), load(sys.argv[2])
    rows = int(sys.argv[3]) if len(sys.argv) > 3 else 40
    print(f"total µs per request: {sum(a.values()):.2f} ({sys.argv[1]}), {sum(b.values()):.2f} ({sys.argv[2]})")
    keys = sorted(set(a) | set(b), key=lambda k: -(b.get(k, 0) - a.get(k, 0)))
    for k in keys[:rows]:
        print(f"{a.get(k, 0):7.3f} {b.get(k, 0):7.3f} {b.get(k, 0) - a.get(k, 0):+7.3f}  {k[0][:14]:14} {k[1][:12]:12} {k[2]}")
    print("by thread and object:")
    ga, gb = collections.Counter(), collections.Counter()
    for k, v in a.items():
        ga[k[:2]] += v
    for k, v in b.items():
        gb[k[:2]] += v
    for g in sorted(set(ga) | set(gb), key=lambda g: -gb.get(g, 0)):
        print(f"{ga.get(g, 0):7.3f} {gb.get(g, 0):7.3f}  {g[0]} {g[1]}")


if __name__ == "__main__":
    main()
