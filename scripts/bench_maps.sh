#!/usr/bin/env bash
# Benchmark of `memlens maps` (release build) against its goals: a Go process
# with 10,000 reachable maps (main.reachSlice, the map-bloat workload's
# --reach-maps) and one map of 10 million entries (main.bloatedMap, kept
# whole: --map-keep = --map-entries). Prints wall time and peak RSS of
# `memlens maps --pid N --json` (the first run, then best and median of RUNS
# runs, /usr/bin/time) and the ratio to the goals: 100 ms and 32 MiB.
#
#   scripts/bench_maps.sh [RUNS]          (default 5; Go 1.27 via $MEMLENS_GO127)
#
# Not CI: a timing. The workload (about 1.3 GB RSS) is killed at the end, also
# on failure or Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-5}
GO=${MEMLENS_GO127:-$(python3 -c 'import go,os;print(os.path.join(os.path.dirname(go.__file__),"bin","go"))' 2>/dev/null || echo go)}
echo "rerun: scripts/bench_maps.sh $RUNS   (go: $GO)"
nice -n 10 cargo build --release -q -p memlens
MEMLENS=target/release/memlens
TMP=$(mktemp -d /tmp/memlens-bench-maps.XXXXXX)
PID=
cleanup() {
	[ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null
	rm -rf "$TMP"
}
trap cleanup EXIT INT TERM
(cd workloads && GOTOOLCHAIN=local GOFLAGS=-mod=mod CGO_ENABLED=0 "$GO" build -trimpath -o "$TMP/workload" .)
"$TMP/workload" --mode=map-bloat --map-entries=10000000 --map-keep=10000000 \
	--reach-maps=10000 --duration=600s >"$TMP/out" 2>&1 &
PID=$!
for _ in $(seq 1 600); do
	grep -q SETUP_DONE "$TMP/out" && break
	kill -0 "$PID" 2>/dev/null || { cat "$TMP/out"; exit 1; }
	sleep 0.5
done
grep -q SETUP_DONE "$TMP/out" || { echo "workload never reached SETUP_DONE"; exit 1; }
echo "workload: $(grep 'var=main.bloatedMap' "$TMP/out" | tail -1)"
echo "workload RSS: $(awk '/VmRSS/{print $2, $3}' /proc/$PID/status)"
# The first run on the fresh process is timed too (nothing is cached between
# runs but the kernel's page cache of the binary).
/usr/bin/time -f "%e %M" -o "$TMP/first.time" "$MEMLENS" maps --pid "$PID" --json >"$TMP/maps.json"
read -r first_s first_kb <"$TMP/first.time"
echo "first run: wall $(python3 -c "print(round($first_s*1000))") ms, peak RSS $(python3 -c "print(round($first_kb/1024,1))") MiB"
python3 - "$TMP/maps.json" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
maps = r["maps"]
reach = [m for m in maps if m["path"].startswith("main.reachSlice[")]
big = [m for m in maps if m["path"] == "main.bloatedMap"]
print(f"maps listed: {len(maps)} ({len(reach)} in main.reachSlice), truncated: {r['truncated']}")
print(f"main.bloatedMap: len {big[0]['length']}, {big[0]['capacity_slots']} slots, tombstones {big[0]['tombstones']}")
EOF
for i in $(seq 1 "$RUNS"); do
	/usr/bin/time -f "%e %M" -o "$TMP/time.$i" "$MEMLENS" maps --pid "$PID" --json >/dev/null
done
cat "$TMP"/time.* | python3 -c '
import sys, statistics
rows = [tuple(map(float, l.split())) for l in sys.stdin if l.strip()]
wall = sorted(r[0] for r in rows); rss = sorted(r[1] / 1024 for r in rows)
print(f"memlens maps, {len(rows)} runs: wall best {wall[0]*1000:.0f} ms, median {statistics.median(wall)*1000:.0f} ms"
      f" (goal 100 ms: ratio {statistics.median(wall)/0.1:.2f})")
print(f"peak RSS best {rss[0]:.1f} MiB, median {statistics.median(rss):.1f} MiB"
      f" (goal 32 MiB: ratio {statistics.median(rss)/32:.2f})")
'
