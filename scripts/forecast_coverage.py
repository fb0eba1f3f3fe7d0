#!/usr/bin/env python3
"""How often a recorded real kill lies inside the time-to-OOM range, over
every evaluation with at most 10 minutes left (not only the first critical).

Usage: scripts/forecast_coverage.py HISTORY CGROUP_SUFFIX [COVERAGE]
           [--memlens PATH] [--trace PATH] [--misses]

HISTORY is a recorded history directory (`memlens watch --data`; kept by
`MEMLENS_KEEP_RECORDING=DIR` in oom_live/oom_fast_live, or by
`scripts/bench_forecast.py --keep DIR`). The cgroup whose key ends in
CGROUP_SUFFIX must have been OOM-killed there: its `oom_kill_count` rises.
Its working set (usage - inactive_file), limit and active file cache are fed
to the analyze crate's `forecast_trace` example (built here with
`cargo build --release -p memlens-analyze --example forecast_trace` unless
--trace names it), which prints the forecast of every sample as the agent's
engine makes it (the agent's default trend settings, at COVERAGE, default
0.9). The kill time is the first sample whose counter rose (up to one
interval late).
"""
import argparse
import json
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("history")
    parser.add_argument("cgroup_suffix")
    parser.add_argument("coverage", nargs="?", default="0.9")
    parser.add_argument("--memlens", default=os.path.join(REPO, "target", "release", "memlens"))
    parser.add_argument("--trace", help="the forecast_trace example binary")
    parser.add_argument("--misses", action="store_true", help="print every evaluation that missed")
    args = parser.parse_args()
    trace = args.trace
    if trace is None:
        subprocess.run(["cargo", "build", "--release", "-q", "-p", "memlens-analyze",
                        "--example", "forecast_trace"], cwd=REPO, check=True)
        trace = os.path.join(REPO, "target", "release", "examples", "forecast_trace")

    def query(sql):
        out = subprocess.run([args.memlens, "query", "--data", args.history, "--json", sql],
                             capture_output=True, text=True, check=True).stdout
        return json.loads(out)

    suffix = args.cgroup_suffix.replace("'", "''")
    found = query(f"SELECT id, key FROM entities WHERE kind = 'cgroup' AND key LIKE '%{suffix}'")
    if len(found) != 1:
        sys.exit(f"{args.history}: {len(found)} cgroups end in {args.cgroup_suffix!r}: {found}")
    rows = query(
        f"SELECT ts, metric, value FROM samples WHERE entity = {found[0]['id']} AND metric IN "
        "('usage_bytes', 'inactive_file_bytes', 'active_file_bytes', 'effective_limit_bytes', "
        "'oom_kill_count') ORDER BY ts")
    by_ts = {}
    for r in rows:
        by_ts.setdefault(r["ts"], {})[r["metric"]] = r["value"]
    lines, kill_ms, kills = [], None, None
    for ts in sorted(by_ts):
        m = by_ts[ts]
        count = m.get("oom_kill_count")
        if count is not None:
            if kills is not None and count > kills:
                kill_ms = ts
                break
            kills = count
        if all(k in m for k in ("usage_bytes", "inactive_file_bytes", "effective_limit_bytes")):
            working_set = m["usage_bytes"] - m["inactive_file_bytes"]
            lines.append(f"{ts} {working_set} {m['effective_limit_bytes']} "
                         f"{m.get('active_file_bytes', 0)}")
    if kill_ms is None:
        sys.exit(f"{found[0]['key']}: no OOM kill recorded")
    out = subprocess.run([trace, args.coverage], input="\n".join(lines) + "\n",
                         capture_output=True, text=True, check=True).stdout
    n = inside = early = late = 0
    first = None
    for line in out.splitlines():
        ts, left, earliest, latest, severity, fast, span = line.split()
        ts, left, earliest, latest = int(ts), float(left), float(earliest), float(latest)
        true_left = (kill_ms - ts) / 1000
        if severity == "Critical" and first is None:
            first = (true_left, left, earliest, latest, fast)
        if left > 600:
            continue
        n += 1
        verdict = "inside"
        if true_left < earliest:
            early, verdict = early + 1, "before the earliest end"
        elif true_left > latest:
            late, verdict = late + 1, "after the latest end"
        else:
            inside += 1
        if args.misses and verdict != "inside":
            print(f"  {verdict}: {true_left:.0f} s left, predicted {left:.0f} s, "
                  f"range {earliest:.0f} .. {latest:.0f} s ({severity}, fast rule {fast})")
    print(f"{found[0]['key']}: {args.coverage} range, {n} evaluations with <= 600 s left: "
          f"kill inside {inside}, before the earliest end {early}, after the latest end {late}")
    if first:
        print("  first critical: %.0f s left, predicted %.0f s, range %.0f .. %.0f s "
              "(fast rule %s)" % first)


if __name__ == "__main__":
    main()
