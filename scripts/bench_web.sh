#!/usr/bin/env bash
# The dashboard's benchmark (issue 19; not CI): a generated 24 h history at
# 1 s (one Go process, its cgroup, the host), then the API's series request
# latency and the process page's time from navigation start to charts drawn
# in headless Chromium. Prints both. The history is generated once into
# target/bench-web-history (delete it to regenerate).
#
#   scripts/bench_web.sh [DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo run --release -q -p memlens-web --example bench_web -- "$@"
