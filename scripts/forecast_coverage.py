#!/usr/bin/env python3
"""How often a recorded real kill lies inside the time-to-OOM range, over
every evaluation with at most 10 minutes left (not only the first critical);
or, with --first-critical, the first critical of every leak of kept
oom_live/oom_fast_live recordings replayed through today's forecast.

Usage: scripts/forecast_coverage.py HISTORY CGROUP_SUFFIX [COVERAGE]
           [--memlens PATH] [--trace PATH] [--misses]
       scripts/forecast_coverage.py --first-critical RECORDING... [--coverage C]

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

A RECORDING is a directory MEMLENS_KEEP_RECORDING kept (history/ and the
test's report.txt, whose lines name each leak's cgroup and how long it ran
from its LEAK_START to its kill). --first-critical prints, per leak, the
first critical's lead (% of the leak) and error (% of the time left) as
today's code would fire them, its range and whether the kill was inside,
and marks those past oom_live's bounds (slow leaks: lead >= 70 %, error <=
20 %; others: lead >= 60 %, error <= 25 %). Use it to check a forecast
change against every kill recorded so far: e.g.
`scripts/forecast_coverage.py --first-critical /var/tmp/rec*/oom_*`.
"""
import argparse
import json
import os
import re
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def build_trace(trace):
    """The forecast_trace binary: `trace` when given, else built here."""
    if trace is None:
        subprocess.run(["cargo", "build", "--release", "-q", "-p", "memlens-analyze",
                        "--example", "forecast_trace"], cwd=REPO, check=True)
        trace = os.path.join(REPO, "target", "release", "examples", "forecast_trace")
    return trace


def killed_series(memlens, history, cgroup_suffix):
    """(cgroup key, forecast_trace input lines, kill ms) of the killed cgroup."""
    def query(sql):
        out = subprocess.run([memlens, "query", "--data", history, "--json", sql],
                             capture_output=True, text=True, check=True).stdout
        return json.loads(out)

    suffix = cgroup_suffix.replace("'", "''")
    found = query(f"SELECT id, key FROM entities WHERE kind = 'cgroup' AND key LIKE '%{suffix}'")
    if len(found) != 1:
        sys.exit(f"{history}: {len(found)} cgroups end in {cgroup_suffix!r}: {found}")
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
    return found[0]["key"], lines, kill_ms


def evaluations(trace, lines, coverage):
    """Every forecast of the series: (ts, left, earliest, latest, severity, fast)."""
    out = subprocess.run([trace, coverage], input="\n".join(lines) + "\n",
                         capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        ts, left, earliest, latest, severity, fast, _span = line.split()
        yield int(ts), float(left), float(earliest), float(latest), severity, fast


def coverage_of_one(args, trace):
    key, lines, kill_ms = killed_series(args.memlens, args.history, args.cgroup_suffix)
    n = inside = early = late = 0
    first = None
    for ts, left, earliest, latest, severity, fast in evaluations(trace, lines, args.coverage):
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
    print(f"{key}: {args.coverage} range, {n} evaluations with <= 600 s left: "
          f"kill inside {inside}, before the earliest end {early}, after the latest end {late}")
    if first:
        print("  first critical: %.0f s left, predicted %.0f s, range %.0f .. %.0f s "
              "(fast rule %s)" % first)


# A report.txt line of oom_live/oom_fast_live naming a leak, its duration and cgroup.
LEAK_LINE = re.compile(r"^(?P<name>[^:]+): leak (?P<leak>\d+) s, critical on cgroup:(?P<cgroup>\S+) ")


def first_criticals(args, trace):
    """The first critical of every leak of every recording, as today's code fires it."""
    past = total = 0
    for recording in args.recordings:
        report = os.path.join(recording, "report.txt")
        history = os.path.join(recording, "history")
        if not (os.path.isfile(report) and os.path.isdir(history)):
            sys.exit(f"{recording}: not a kept recording (no report.txt and history/)")
        for line in open(report):
            m = LEAK_LINE.match(line)
            if not m:
                continue
            name, leak_s, cgroup = m["name"], float(m["leak"]), m["cgroup"]
            _key, lines, kill_ms = killed_series(args.memlens, history, cgroup)
            slow = name.startswith("slow")
            min_lead, max_error = (0.7, 0.2) if slow else (0.6, 0.25)
            total += 1
            label = f"{os.path.basename(recording.rstrip('/'))} {name}"
            first = next((e for e in evaluations(trace, lines, args.coverage)
                          if e[4] == "Critical"), None)
            if first is None:
                past += 1
                print(f"{label:40} no critical before the kill  PAST THE BOUNDS")
                continue
            ts, left, earliest, latest, _severity, fast = first
            true_left = (kill_ms - ts) / 1000
            lead, error = true_left / leak_s, abs(left - true_left) / true_left
            bad = lead < min_lead or error > max_error
            past += bad
            inside = "inside" if earliest <= true_left <= latest else "OUTSIDE"
            print(f"{label:40} lead {100 * lead:3.0f} %  error {100 * error:5.1f} %  "
                  f"range {earliest:.0f} .. {latest:.0f} s, kill at {true_left:.0f} s: {inside}"
                  f"{' (fast rule)' if fast == 'true' else ''}{'  PAST THE BOUNDS' if bad else ''}")
    print(f"{total} leaks, {past} past oom_live's bounds (kill times up to one interval late)")
    return 1 if past else 0


def main():
    if "--first-critical" in sys.argv:
        parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
        parser.add_argument("--first-critical", action="store_true", required=True)
        parser.add_argument("recordings", nargs="+")
        parser.add_argument("--coverage", default="0.9")
        parser.add_argument("--memlens", default=os.path.join(REPO, "target", "release", "memlens"))
        parser.add_argument("--trace", help="the forecast_trace example binary")
        args = parser.parse_args()
        return first_criticals(args, build_trace(args.trace))
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("history")
    parser.add_argument("cgroup_suffix")
    parser.add_argument("coverage", nargs="?", default="0.9")
    parser.add_argument("--memlens", default=os.path.join(REPO, "target", "release", "memlens"))
    parser.add_argument("--trace", help="the forecast_trace example binary")
    parser.add_argument("--misses", action="store_true", help="print every evaluation that missed")
    args = parser.parse_args()
    coverage_of_one(args, build_trace(args.trace))
    return 0


if __name__ == "__main__":
    sys.exit(main())
