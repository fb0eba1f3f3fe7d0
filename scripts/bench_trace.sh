#!/usr/bin/env bash
# The cost of `memlens trace` on a fault-bound loop, against perf and bpftrace,
# in one run (not CI; needs root, clang or cc, perf, bpftrace).
#
# The loop (C, built here) maps 64 MiB, writes one byte per 4 KiB page, unmaps,
# 64 times: 1,048,576 page faults. It waits for a go file before starting and
# prints its own loop time, so tool start-up and attach are not counted.
#
#   alone                     the loop untraced
#   memlens N                 memlens trace --pid P --stack-every N (the default
#                             is read from `memlens trace --help` and marked)
#   perf -g                   perf record -e exceptions:page_fault_user -g
#   bpftrace ustack           count by user stack in the kernel
#
# RUNS rounds (default 3), each the loop alone then under every tool; the
# median loop time and the median of the pairwise ratios to the round's alone
# run are printed, with the events memlens lost (0 expected).
#
#   scripts/bench_trace.sh                 # builds target/release/memlens if missing
#   MEMLENS=target/debug/memlens RUNS=5 scripts/bench_trace.sh
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
MEMLENS=${MEMLENS:-target/release/memlens}
[ "$(id -u)" -eq 0 ] || { echo "bench_trace.sh: needs root" >&2; exit 1; }
[ -x "$MEMLENS" ] || cargo build --release -p memlens
default_every=$("$MEMLENS" trace --help | grep -A4 -- '--stack-every' | grep -o 'default: [0-9]*' | head -1 | grep -o '[0-9]*')
work=$(mktemp -d /tmp/bench-trace.XXXXXX)
trap 'rm -rf "$work"' EXIT

cat > "$work/loop.c" <<'C'
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>
#define SIZE (64UL << 20)
#define ROUNDS 64
__attribute__((noinline)) static void touch(char *p) {
  for (unsigned long i = 0; i < SIZE; i += 4096) p[i] = 1;
}
int main(int argc, char **argv) {
  if (argc > 1) while (access(argv[1], F_OK) != 0) usleep(1000);
  struct timespec a, b;
  clock_gettime(CLOCK_MONOTONIC, &a);
  for (int r = 0; r < ROUNDS; r++) {
    char *p = mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) { perror("mmap"); return 1; }
    touch(p);
    munmap(p, SIZE);
  }
  clock_gettime(CLOCK_MONOTONIC, &b);
  printf("%.6f\n", (b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) / 1e9);
  return 0;
}
C
${CC:-cc} -O2 -fno-omit-frame-pointer -o "$work/loop" "$work/loop.c"

median() { sort -g | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }

alone() { "$work/loop"; }

# memlens: start the loop waiting, attach, let it go, read its time.
memlens_run() {
  local every=$1 go="$work/go.$RANDOM" out="$work/loop.out" err="$work/memlens.err"
  "$work/loop" "$go" > "$out" &
  local pid=$!
  "$MEMLENS" trace --pid "$pid" --duration 120s --stack-every "$every" --json > "$work/report.json" 2> "$err" &
  local tracer=$!
  until grep -q "attached" "$err" 2>/dev/null; do
    kill -0 "$tracer" 2>/dev/null || { cat "$err" >&2; exit 1; }
    sleep 0.05
  done
  touch "$go"
  wait "$pid"
  wait "$tracer"
  lost=$(python3 -c "import json,sys; r=json.load(open(sys.argv[1])); print(r['lost_events'], r['lost_stacks'])" "$work/report.json")
  echo "$lost" >> "$work/lost.$every"
  cat "$out"
}

perf_run() {
  perf record -q -e exceptions:page_fault_user -g -o "$work/perf.data" -- "$work/loop" 2>/dev/null | tail -1
}

bpftrace_run() {
  bpftrace -q -c "$work/loop" -e 'tracepoint:exceptions:page_fault_user /pid == cpid/ { @[ustack] = count(); } END { clear(@); }' 2>/dev/null | grep -E '^[0-9.]+$'
}

# Rounds: in each, the loop alone then under every tool, so each ratio pairs
# runs a few seconds apart (the machine is shared: its speed drifts).
configs=(counts:1000000000 memlens:256 memlens:64 memlens:16 memlens:1 perf:- bpftrace:-)
declare -A times ratios
alone_times=()
for round in $(seq "$RUNS"); do
  base=$(alone)
  alone_times+=("$base")
  for c in "${configs[@]}"; do
    kind=${c%%:*} arg=${c#*:}
    case $kind in
      counts|memlens) t=$(memlens_run "$arg") ;;
      perf) t=$(perf_run) ;;
      bpftrace) t=$(bpftrace_run) ;;
    esac
    times[$c]+="$t "
    ratios[$c]+="$(echo "$t / $base" | bc -l) "
  done
done
med() { tr ' ' '\n' | grep -v '^$' | median; }
printf '%-36s %10s %8s  %s\n' "run" "loop (s)" "ratio" "median of $RUNS rounds (ratio: pairwise to the round's alone run); 1,048,576 faults"
printf '%-36s %10.3f %8s\n' "alone" "$(printf '%s\n' "${alone_times[@]}" | median)" "1.00x"
for c in "${configs[@]}"; do
  kind=${c%%:*} arg=${c#*:}
  case $kind in
    counts) label="memlens counts only (no stacks)" ;;
    memlens) label="memlens --stack-every $arg"; [ "$arg" = "$default_every" ] && label="$label (default)" ;;
    perf) label="perf record -g" ;;
    bpftrace) label="bpftrace count by ustack" ;;
  esac
  extra=""
  [ -f "$work/lost.$arg" ] && extra="lost events/stacks: $(sort -u "$work/lost.$arg" | tr '\n' ' ')"
  printf '%-36s %10.3f %7.2fx  %s\n' "$label" "$(echo "${times[$c]}" | med)" "$(echo "${ratios[$c]}" | med)" "$extra"
done
