#!/usr/bin/env bash
# Captures Go's text heap profile (/debug/pprof/heap?debug=1) from the repo's
# workload (--mode heap-leak), built with Go 1.19 and Go 1.27, into
# crates/goruntime/testdata/heap-text/, together with what `go tool pprof`
# (of the same toolchain, GOTOOLCHAIN=local) prints for it:
#
#   goX.Y-heap-debug1.txt      the text profile, byte-for-byte as served
#   goX.Y-heap.pb.gz           the protobuf heap profile fetched between two text
#                              fetches that were identical (so all three show the
#                              same GC cycle: the profile only changes when a GC
#                              completes, and its counts only grow)
#   goX.Y-heap-debug1.top-addresses-S.txt
#       go tool pprof -top -addresses BINARY goX.Y-heap-debug1.txt
#       (pprof symbolises the text file from the binary: one row per address)
#   goX.Y-heap-debug1.top-S.txt
#       go tool pprof -top BINARY goX.Y-heap-debug1.txt (one row per function)
#   goX.Y-heap.pb.gz.top-S.txt
#       go tool pprof -top goX.Y-heap.pb.gz (symbols from the protobuf itself)
#
# for S in alloc_objects alloc_space inuse_objects inuse_space, all with
# -nodefraction=0 -edgefraction=0 and exact units (-unit=B for bytes, none for
# counts). The binaries are not kept (10 MB each). Rerun to refresh everything.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
out="$repo/crates/goruntime/testdata/heap-text"
go119=${MEMLENS_GO119:-/usr/lib/go-1.19/bin/go}
go127=${MEMLENS_GO127:-$(python3 -c "import go,os;print(os.path.join(os.path.dirname(go.__file__),'bin','go'))")}
work=$(mktemp -d)
wpid=
cleanup() {
    if [ -n "$wpid" ]; then kill "$wpid" 2>/dev/null || true; wait "$wpid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT
mkdir -p "$out"
export GOTOOLCHAIN=local GOFLAGS=-mod=mod CGO_ENABLED=0

# The records of a text heap profile: everything before the MemStats trailer.
records() { sed '/^# runtime.MemStats/,$d' "$1"; }

capture() {
    local go=$1 name=$2
    local bin="$work/workload-$name"
    (cd "$repo/workloads" && "$go" build -trimpath -o "$bin" .)
    "$bin" --mode heap-leak --leak-kib 1024 --duration 60s >"$work/$name.out" 2>"$work/$name.err" &
    wpid=$!
    local deadline=$((SECONDS + 30))
    until grep -q '^TICK 50 ' "$work/$name.out"; do
        [ $SECONDS -lt $deadline ] || { echo "workload $name: no TICK 50 in 30 s" >&2; exit 1; }
        sleep 0.2
    done
    local addr
    addr=$(awk '/^LISTEN/{print $2; exit}' "$work/$name.out")
    local ok=
    for _ in $(seq 1 50); do
        curl -sf "http://$addr/debug/pprof/heap?debug=1" -o "$work/a.txt"
        curl -sf "http://$addr/debug/pprof/heap" -o "$work/p.pb.gz"
        curl -sf "http://$addr/debug/pprof/heap?debug=1" -o "$work/b.txt"
        if [ "$(records "$work/a.txt")" = "$(records "$work/b.txt")" ]; then ok=1; break; fi
    done
    [ -n "$ok" ] || { echo "$name: no two identical text profiles in 50 tries" >&2; exit 1; }
    kill "$wpid"; wait "$wpid" 2>/dev/null || true; wpid=
    cp "$work/a.txt" "$out/$name-heap-debug1.txt"
    cp "$work/p.pb.gz" "$out/$name-heap.pb.gz"
    local s unit
    for s in alloc_objects alloc_space inuse_objects inuse_space; do
        case $s in *_space) unit=B ;; *) unit=none ;; esac
        local flags=(-top -nodefraction=0 -edgefraction=0 "-unit=$unit" "-sample_index=$s")
        "$go" tool pprof "${flags[@]}" -addresses "$bin" "$out/$name-heap-debug1.txt" \
            >"$out/$name-heap-debug1.top-addresses-$s.txt" 2>/dev/null
        "$go" tool pprof "${flags[@]}" "$bin" "$out/$name-heap-debug1.txt" \
            >"$out/$name-heap-debug1.top-$s.txt" 2>/dev/null
        "$go" tool pprof "${flags[@]}" "$out/$name-heap.pb.gz" \
            >"$out/$name-heap.pb.gz.top-$s.txt" 2>/dev/null
    done
    echo "$name: $("$go" version) ok"
}

capture "$go119" go1.19
capture "$go127" go1.27
