#!/usr/bin/env bash
# The cost of `memlens trace` on a Go HTTP service under bounded load: the
# service's CPU time (utime + stime from /proc/PID/stat, which includes the
# kernel-side BPF work done in its context) over the same fixed load, without
# and with `memlens trace --pid` attached at its defaults. Goal (issue 15): < 3 %
# more. Not CI; needs root and Go (MEMLENS_GO127, else `go` on PATH).
#
# The service (Go, standard library only, built here) answers GET /work with a
# JSON document built from a freshly allocated 64 KiB buffer and a few hundred
# small objects: allocation, GC, page faults and the runtime's mmaps, as a real
# service has. The load generator (the same program, `load` mode) sends
# REQUESTS requests (default 8000) at RATE per second (default 400) from 8
# connections to 127.0.0.1 only, then stops: the work is the same in every run,
# so CPU seconds compare directly.
#
# RUNS rounds (default 3), each a fresh service untraced then a fresh service
# traced; the median of the pairwise ratios is printed with the medians of the
# CPU seconds, and memlens's own CPU (its user-space side) apart.
#
#   scripts/bench_trace_http.sh
#   MEMLENS=target/debug/memlens RUNS=5 RATE=600 scripts/bench_trace_http.sh
#   TRACE_ARGS="--stack-every 16" scripts/bench_trace_http.sh   # other options
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
RATE=${RATE:-400}
REQUESTS=${REQUESTS:-8000}
MEMLENS=${MEMLENS:-target/release/memlens}
GO=${MEMLENS_GO127:-$(command -v go || true)}
[ "$(id -u)" -eq 0 ] || { echo "bench_trace_http.sh: needs root" >&2; exit 1; }
[ -n "$GO" ] && [ -x "$GO" ] || { echo "bench_trace_http.sh: no Go toolchain (set MEMLENS_GO127)" >&2; exit 1; }
[ -x "$MEMLENS" ] || cargo build --release -p memlens
work=$(mktemp -d /tmp/bench-trace-http.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

mkdir "$work/svc"
cat > "$work/svc/main.go" <<'GO'
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"
)

type item struct {
	ID    int    `json:"id"`
	Name  string `json:"name"`
	Score int    `json:"score"`
}

func work(w http.ResponseWriter, r *http.Request) {
	buf := make([]byte, 64<<10)
	for i := range buf {
		buf[i] = byte(i)
	}
	items := make([]*item, 300)
	sum := 0
	for i := range items {
		items[i] = &item{ID: i, Name: "item-" + strconv.Itoa(i), Score: int(buf[i*7%len(buf)])}
		sum += items[i].Score
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]interface{}{"items": items, "sum": sum})
}

func serve() {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Printf("LISTEN %s\n", ln.Addr())
	http.HandleFunc("/work", work)
	_ = http.Serve(ln, nil)
}

// load sends n requests at rate per second from conns workers, then exits.
func load(url string, n, rate, conns int) {
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: conns}, Timeout: 10 * time.Second}
	jobs := make(chan struct{}, conns)
	var wg sync.WaitGroup
	failed := 0
	var mu sync.Mutex
	for c := 0; c < conns; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range jobs {
				resp, err := client.Get(url)
				if err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				if err != nil || resp.StatusCode != 200 {
					mu.Lock()
					failed++
					mu.Unlock()
				}
			}
		}()
	}
	start := time.Now()
	for i := 0; i < n; i++ {
		if d := time.Until(start.Add(time.Duration(i) * time.Second / time.Duration(rate))); d > 0 {
			time.Sleep(d)
		}
		jobs <- struct{}{}
	}
	close(jobs)
	wg.Wait()
	fmt.Printf("%d requests in %.3f s, %d failed\n", n, time.Since(start).Seconds(), failed)
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "load" {
		n, _ := strconv.Atoi(os.Args[3])
		rate, _ := strconv.Atoi(os.Args[4])
		load(os.Args[2], n, rate, 8)
		return
	}
	serve()
}
GO
printf 'module svc\n\ngo 1.19\n' > "$work/svc/go.mod"
(cd "$work/svc" && GOTOOLCHAIN=local GOFLAGS=-mod=mod CGO_ENABLED=0 "$GO" build -o "$work/svcbin" .)

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)

# One run: a fresh service, a warm-up, then (traced or not) the measured load.
# Prints "service_cpu_seconds memlens_cpu_seconds".
run() {
  local traced=$1 out="$work/svc.$RANDOM.out" err="$work/memlens.$RANDOM.err"
  "$work/svcbin" > "$out" &
  local svc=$!
  pids+=("$svc")
  until grep -q '^LISTEN ' "$out" 2>/dev/null; do sleep 0.02; done
  local url="http://$(awk '/^LISTEN /{print $2; exit}' "$out")/work"
  "$work/svcbin" load "$url" 1000 1000 > /dev/null
  local tracer=""
  if [ "$traced" = 1 ]; then
    # shellcheck disable=SC2086 # TRACE_ARGS is a list of options
    "$MEMLENS" trace --pid "$svc" --duration 600s --json ${TRACE_ARGS:-} > "$work/report.json" 2> "$err" &
    tracer=$!
    pids+=("$tracer")
    until grep -q "attached" "$err" 2>/dev/null; do
      kill -0 "$tracer" 2>/dev/null || { cat "$err" >&2; exit 1; }
      sleep 0.05
    done
  fi
  local before
  before=$(cpu_ticks "$svc")
  local load
  load=$("$work/svcbin" load "$url" "$REQUESTS" "$RATE")
  echo "$load" >> "$work/load.log"
  case $load in *" 0 failed") ;; *) echo "bench_trace_http.sh: load failed: $load" >&2; exit 1 ;; esac
  local after tracer_cpu=0
  after=$(cpu_ticks "$svc")
  if [ -n "$tracer" ]; then
    tracer_cpu=$(cpu_ticks "$tracer")
    kill -INT "$tracer"
    wait "$tracer" || true
    python3 -c "import json,sys; r=json.load(open(sys.argv[1])); print(r['lost_events'], r['lost_stacks'])" "$work/report.json" >> "$work/lost"
  fi
  kill "$svc"
  wait "$svc" 2>/dev/null || true
  echo "$(echo "($after - $before) / $hz" | bc -l) $(echo "$tracer_cpu / $hz" | bc -l)"
}

median() { sort -g | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
alone=() traced=() tracer=() ratios=()
for round in $(seq "$RUNS"); do
  read -r a _ < <(run 0)
  read -r t m < <(run 1)
  [ -n "$a" ] && [ -n "$t" ] || { echo "bench_trace_http.sh: round $round failed" >&2; exit 1; }
  alone+=("$a") traced+=("$t") tracer+=("$m")
  ratios+=("$(echo "$t / $a" | bc -l)")
  printf 'round %d: service CPU %.3f s alone, %.3f s traced (%.3fx); memlens %.3f s\n' "$round" "$a" "$t" "$(echo "$t / $a" | bc -l)" "$m" >&2
done
printf '%-50s %12s %8s  %s\n' "run" "CPU (s)" "ratio" "median of $RUNS rounds; $REQUESTS requests at $RATE/s"
printf '%-50s %12.3f %8s\n' "service alone" "$(printf '%s\n' "${alone[@]}" | median)" "1.00x"
printf '%-50s %12.3f %7.3fx  lost events/stacks: %s\n' "service under memlens trace ${TRACE_ARGS:-(defaults)}" \
  "$(printf '%s\n' "${traced[@]}" | median)" "$(printf '%s\n' "${ratios[@]}" | median)" "$(sort -u "$work/lost" | tr '\n' ' ')"
printf '%-50s %12.3f %8s  %s\n' "memlens trace itself (user space)" "$(printf '%s\n' "${tracer[@]}" | median)" "" "goal: service ratio < 1.03x"
