#!/usr/bin/env bash
# soak.sh N [TEST...]: runs the real-process test binaries N times, two at a
# time (the machine loaded as in CI), and prints a pass/fail table per test
# function with the first failure of each and the load average of the machine.
#
#   scripts/soak.sh 3                         every real-process test binary, 3 times
#   scripts/soak.sh 10 goroutines_live runtime_live
#   scripts/soak.sh 5 goroutines_live::debian_services_totals_match_their_go_goroutines_gauge
#
# A TEST is a test binary (the file name of crates/*/tests/NAME.rs) or
# BINARY::TEST_FUNCTION; a TEST named k times runs k times in each run. Without
# TESTs: every integration test binary whose source uses memlens_testkit or
# starts a process (Command::new); `all` among the TESTs stands for that list.
#
# The binaries are built once up front (cargo test --no-run); each run starts
# the binary itself, in its package's directory as cargo would, with the
# environment of scripts/env.sh. Logs stay in target/soak/<time>/ (SOAK_DIR
# overrides); a run taking longer than SOAK_TIMEOUT (default 1800 s) is killed
# with its process group and counted as failed. SOAK_PARALLEL (default 2) sets
# how many binaries run at once; each runs its tests as libtest does (two at a
# time on two cores), so the machine is loaded more than in CI.
#
# SOAK_LIKE_CI=1 loads it as CI's nextest does instead: at most two tests at a
# time, one from the heavy group of .config/nextest.toml and one from the rest
# (two lanes, each one binary at a time, RUST_TEST_THREADS=1). SOAK_PARALLEL
# is then ignored. SOAK_HEAVY_LANES=K (default 1) shares the RUNS rounds of
# the heavy targets among K lanes (lane k runs rounds k, k+K, ..., each
# through the heavy targets from a different starting point), so K heavy
# tests run at once, more than CI ever does: the heavy tests mostly wait on
# real kills, and their RUNS rounds take 1/K of the hours. SOAK_REST_LANES=K
# (default 1) splits the other targets over K lanes: the first runs every
# binary of the 'serial' test group (whose tests must not overlap) and its
# share of the rest, the others share the rest; each runs its list RUNS
# times; SOAK_WEIGHTS_FROM=DIR (an earlier soak's directory) deals the rest
# by how long each binary took there, so the rest lanes end together. E.g.
# twenty rounds of every test in about two hours on 2 cores (session 11:
# a heavy lane took ~22 min a round, the rest ~19 min of lane time a round):
#   SOAK_LIKE_CI=1 SOAK_HEAVY_LANES=4 SOAK_REST_LANES=4 \
#     SOAK_WEIGHTS_FROM=/work/soaklogs/soak23/s23 scripts/soak.sh 20
# Exit status 1 when anything failed.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() { sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
[ $# -ge 1 ] || usage
runs=$1
shift
[[ "$runs" =~ ^[1-9][0-9]*$ ]] || { echo "soak.sh: N must be a positive integer, not '$runs'" >&2; exit 2; }
selectors=("$@")
timeout_seconds=${SOAK_TIMEOUT:-1800}
parallel=${SOAK_PARALLEL:-2}
like_ci=${SOAK_LIKE_CI:-0}
heavy_lanes=${SOAK_HEAVY_LANES:-1}
[[ "$heavy_lanes" =~ ^[1-9][0-9]*$ ]] || { echo "soak.sh: SOAK_HEAVY_LANES must be a positive integer, not '$heavy_lanes'" >&2; exit 2; }
rest_lanes=${SOAK_REST_LANES:-1}
[[ "$rest_lanes" =~ ^[1-9][0-9]*$ ]] || { echo "soak.sh: SOAK_REST_LANES must be a positive integer, not '$rest_lanes'" >&2; exit 2; }
[[ "$parallel" =~ ^[1-9][0-9]*$ ]] || { echo "soak.sh: SOAK_PARALLEL must be a positive integer, not '$parallel'" >&2; exit 2; }

# shellcheck source=scripts/env.sh
source scripts/env.sh

out=${SOAK_DIR:-target/soak/$(date +%Y%m%d-%H%M%S)}
rm -rf "$out/logs" "$out/load.txt"
mkdir -p "$out/logs"
out=$(cd "$out" && pwd)

# The 1-, 5- and 15-minute load averages, sampled every 15 s while the soak runs.
echo "$(date +%s) $(cut -d' ' -f1-3 /proc/loadavg)" >"$out/load.txt"
echo "soak: load average at start: $(cut -d' ' -f1-3 /proc/loadavg) ($(nproc) cores)"
( while sleep 15; do echo "$(date +%s) $(cut -d' ' -f1-3 /proc/loadavg)" >>"$out/load.txt"; done ) &
sampler=$!
trap 'kill "$sampler" 2>/dev/null || true' EXIT

# --- build once -------------------------------------------------------------
echo "soak: building the test binaries (cargo test --workspace --no-run)"
cargo test --workspace --no-run --message-format=json >"$out/build.json"
# name <TAB> executable <TAB> package directory <TAB> source file
python3 - "$out/build.json" >"$out/binaries.tsv" <<'EOF'
import json, os, sys
for line in open(sys.argv[1]):
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("reason") != "compiler-artifact" or not m.get("executable"):
        continue
    t = m["target"]
    if t["kind"] != ["test"] or not m["profile"]["test"]:
        continue
    print("\t".join([t["name"], m["executable"], os.path.dirname(m["manifest_path"]), t["src_path"]]))
EOF

# --- what to run ------------------------------------------------------------
declare -A exe cwd
real=()
while IFS=$'\t' read -r name path dir src; do
  exe[$name]=$path
  cwd[$name]=$dir
  if grep -qE 'memlens_testkit|Command::new' "$src"; then real+=("$name"); fi
done <"$out/binaries.tsv"
targets=() # BINARY or BINARY::TEST
if [ ${#selectors[@]} -eq 0 ]; then
  mapfile -t targets < <(printf '%s\n' "${real[@]}" | sort)
else
  for s in "${selectors[@]}"; do
    if [ "$s" = all ]; then targets+=("${real[@]}"); continue; fi
    bin=${s%%::*}
    [ -n "${exe[$bin]:-}" ] || { echo "soak.sh: no test binary '$bin' (known: $(printf '%s ' "${!exe[@]}"))" >&2; exit 2; }
    targets+=("$s")
  done
fi
total=$((runs * ${#targets[@]}))
if [ "$like_ci" = 1 ]; then
  echo "soak: $runs run(s) of ${#targets[@]} target(s), like CI: ${targets[*]}"
else
  echo "soak: $runs run(s) of ${#targets[@]} target(s), $parallel at a time: ${targets[*]}"
fi

# --- run --------------------------------------------------------------------
# One job: a test binary (or one of its tests) once. Its stdout (libtest's
# results and the failures' captured output) and stderr are kept apart, so the
# results parse even when a test writes to stderr past the capture.
run_job() {
  local run=$1 target=$2 log=$3 bin=${2%%::*} args=()
  if [[ "$target" == *::* ]]; then args=("${target#*::}" --exact); fi
  local started=$SECONDS
  set +e
  (cd "${cwd[$bin]}" && RUST_BACKTRACE=0 exec timeout --kill-after=30 "$timeout_seconds" \
    "${exe[$bin]}" "${args[@]}") >"$log.out" 2>"$log.err" </dev/null
  echo $? >"$log.rc"
  set -e
  echo "$((SECONDS - started))" >"$log.seconds"
}

done_jobs=0
lane_name="" # "heavy " or "rest " in a lane of SOAK_LIKE_CI (its own count)
report_job() { # prints the line of a finished job
  local log=$1 rc
  rc=$(cat "$log.rc")
  done_jobs=$((done_jobs + 1))
  printf 'soak: %s[%d/%d] %s: %s in %ss (load %s)\n' "$lane_name" "$done_jobs" "$total" "$(basename "$log")" \
    "$([ "$rc" = 0 ] && echo ok || echo "FAILED (exit $rc)")" "$(cat "$log.seconds")" \
    "$(cut -d' ' -f1 /proc/loadavg)"
}

# The log of TARGET's COPY-th copy in RUN: logs/RUN-BINARY[--TEST][+COPY].
log_of() {
  local log
  log="$out/logs/$(printf '%03d' "$1")-${2//::/--}"
  [ "$3" -eq 1 ] || log="$log+$3"
  echo "$log"
}

if [ "$like_ci" = 1 ]; then
  # The heavy group's binaries, from the filter of the override that puts
  # them in test-group 'heavy'.
  group_binaries() { # the binaries of test group $1 in .config/nextest.toml
    grep -B1 "test-group = '$1'" .config/nextest.toml | grep -o 'binary([a-z0-9_]*)' |
      sed 's/binary(\(.*\))/\1/' | sort -u
  }
  heavy=$(group_binaries heavy)
  serial=$(group_binaries serial)
  [ -n "$heavy" ] || { echo "soak.sh: no heavy test group in .config/nextest.toml" >&2; exit 2; }
  export RUST_TEST_THREADS=1
  # One lane: its targets, one at a time, RUNS times.
  # A lane runs rounds first_round, first_round + round_step, ... (1, 1
  # unless set) up to RUNS.
  lane() {
    local run target copy log
    for ((run = ${first_round:-1}; run <= runs; run += ${round_step:-1})); do
      declare -A copies=()
      for target in "$@"; do
        copies[$target]=$((${copies[$target]:-0} + 1))
        copy=${copies[$target]}
        log=$(log_of "$run" "$target" "$copy")
        run_job "$run" "$target" "$log"
        report_job "$log"
      done
      unset copies
    done
  }
  heavy_targets=() rest_targets=()
  for target in "${targets[@]}"; do
    if grep -qxF "${target%%::*}" <<<"$heavy"; then heavy_targets+=("$target"); else rest_targets+=("$target"); fi
  done
  echo "soak: like CI: ${#heavy_targets[@]} heavy target(s) one at a time in $heavy_lanes lane(s) beside ${#rest_targets[@]} other(s) one at a time in $rest_lanes lane(s), one test at a time each"
  lanes=()
  for ((k = 1; k <= heavy_lanes; k++)); do
    # Lane k starts (k-1)/K of the way through the heavy targets.
    offset=$(((k - 1) * ${#heavy_targets[@]} / heavy_lanes))
    rotated=("${heavy_targets[@]:offset}" "${heavy_targets[@]:0:offset}")
    name="heavy "
    if [ "$k" -gt 1 ]; then name="heavy$k "; fi
    [ "$k" -le "$runs" ] || continue
    rounds=$(((runs - k) / heavy_lanes + 1))
    (lane_name=$name first_round=$k round_step=$heavy_lanes total=$((rounds * ${#heavy_targets[@]})) &&
      lane "${rotated[@]}") &
    lanes+=($!)
  done
  # The rest: lane 1 takes the serial group's binaries; the others are
  # dealt round-robin over the lanes, or, with SOAK_WEIGHTS_FROM=DIR (an
  # earlier soak's directory), longest first, each to the lane with the
  # least work so far, by the median seconds a run of its binary took in
  # DIR (binaries DIR did not run count as its median binary).
  mapfile -t rest_lane_of < <(python3 -c '
import glob, os, statistics, sys
lanes, weights_dir, serial = int(sys.argv[1]), sys.argv[2], set(sys.argv[3].split())
targets = sys.argv[4:]
runs = {}
for path in glob.glob(os.path.join(weights_dir, "logs", "*.seconds")) if weights_dir else []:
    binary = os.path.basename(path)[: -len(".seconds")].split("-", 1)[1]
    binary = binary.split("--")[0].split("+")[0]
    try:
        runs.setdefault(binary, []).append(float(open(path).read().split()[0]))
    except (ValueError, IndexError):
        pass
medians = {b: statistics.median(s) for b, s in runs.items()}
typical = statistics.median(medians.values()) if medians else 1.0
def weight(i):
    return medians.get(targets[i].split("::")[0], typical)
lane_of, work = [0] * len(targets), [0.0] * (lanes + 1)
for i, t in enumerate(targets):
    if t.split("::")[0] in serial:
        lane_of[i], work[1] = 1, work[1] + weight(i)
others = [i for i in range(len(targets)) if not lane_of[i]]
if medians:
    others.sort(key=lambda i: -weight(i))
for n, i in enumerate(others):
    k = min(range(1, lanes + 1), key=lambda k: (work[k], k)) if medians else n % lanes + 1
    lane_of[i], work[k] = k, work[k] + weight(i)
print("\n".join(map(str, lane_of)))
if medians:
    print("soak: rest lanes by " + weights_dir + ": about " + ", ".join(
        "%.0f" % (w / 60) for w in work[1:]) + " min a round", file=sys.stderr)
' "$rest_lanes" "${SOAK_WEIGHTS_FROM:-}" "$serial" "${rest_targets[@]}")
  for ((k = 1; k <= rest_lanes; k++)); do
    list=()
    for i in "${!rest_targets[@]}"; do
      [ "${rest_lane_of[$i]}" -ne "$k" ] || list+=("${rest_targets[$i]}")
    done
    name="rest "
    if [ "$k" -gt 1 ]; then name="rest$k "; fi
    (lane_name=$name total=$((runs * ${#list[@]})) && lane "${list[@]}") &
    lanes+=($!)
  done
  wait "${lanes[@]}" || true
else
declare -A running # pid -> log
for ((run = 1; run <= runs; run++)); do
  declare -A copies=()
  for target in "${targets[@]}"; do
    copies[$target]=$((${copies[$target]:-0} + 1))
    log=$(log_of "$run" "$target" "${copies[$target]}")
    while [ "$(jobs -rp | grep -cv "^$sampler$")" -ge "$parallel" ]; do
      wait -n || true
      for pid in "${!running[@]}"; do
        if ! kill -0 "$pid" 2>/dev/null; then report_job "${running[$pid]}"; unset "running[$pid]"; fi
      done
    done
    run_job "$run" "$target" "$log" &
    running[$!]=$log
  done
  unset copies
done
for pid in "${!running[@]}"; do
  wait "$pid" || true
  report_job "${running[$pid]}"
done
fi

kill "$sampler" 2>/dev/null || true
echo "$(date +%s) $(cut -d' ' -f1-3 /proc/loadavg)" >>"$out/load.txt"
echo "soak: load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
exec python3 scripts/soak_report.py "$out"
