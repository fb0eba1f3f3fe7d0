#!/usr/bin/env bash
# Runs the README's main command exactly as written, `cargo run --release --
# watch`, until it has recorded a cycle, stops it with Ctrl-C (SIGINT) as the
# README says, and checks the history it wrote holds that cycle.
#
# As root the agent writes /var/lib/memlens: the run happens in a private
# mount namespace (unshare -m) with a tmpfs over that path, so the machine is
# left as it was (no directory, no history). As another user it writes
# $HOME/.local/state/memlens: HOME points at a temporary directory.
set -euo pipefail
cd "$(dirname "$0")/.."

# Build first, so that the deadline below covers the agent, not the compiler.
cargo build --release --quiet

run_and_check() {
  local log status cycles
  log=$(mktemp)
  cargo run --release --quiet -- watch >"$log" 2>&1 &
  local pid=$!   # cargo run execs the binary: this is the agent itself
  local deadline=$((SECONDS + 60))
  until grep -q ' stored=' "$log"; do
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "check_main_command: the agent exited before its first cycle:" >&2
      cat "$log" >&2
      exit 1
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "check_main_command: no cycle recorded within 60 s:" >&2
      cat "$log" >&2
      kill -KILL "$pid" 2>/dev/null || true
      exit 1
    fi
    sleep 0.2
  done
  kill -INT "$pid"
  status=0
  wait "$pid" || status=$?
  if [ "$status" -ne 0 ]; then
    echo "check_main_command: the agent exited with $status after Ctrl-C:" >&2
    cat "$log" >&2
    exit 1
  fi
  cycles=$(cargo run --release --quiet -- query --csv \
    "SELECT count(DISTINCT ts) FROM samples" | tail -n 1)
  if ! [ "$cycles" -ge 1 ] 2>/dev/null; then
    echo "check_main_command: the history holds no cycle (query said: $cycles):" >&2
    cat "$log" >&2
    exit 1
  fi
  echo "check_main_command: 'cargo run --release -- watch' recorded $cycles cycle(s) and stopped on Ctrl-C:"
  sed 's/^/  /' "$log"
  rm -f "$log"
}

if [ "${1:-}" = "--inside" ]; then
  # In the private mount namespace: a tmpfs over the agent's data dir (over
  # its parent when the dir does not exist, so that nothing is created on
  # the real file system).
  if [ -d /var/lib/memlens ]; then
    mount -t tmpfs memlens-check /var/lib/memlens
  else
    mount -t tmpfs memlens-check /var/lib
    mkdir /var/lib/memlens
  fi
  run_and_check
elif [ "$(id -u)" -eq 0 ]; then
  exec unshare --mount --propagation private "$0" --inside
else
  # Keep the toolchain where it is; only the agent's state moves.
  export CARGO_HOME="${CARGO_HOME:-$HOME/.cargo}" RUSTUP_HOME="${RUSTUP_HOME:-$HOME/.rustup}"
  home=$(mktemp -d)
  trap 'rm -rf "$home"' EXIT
  HOME="$home" run_and_check
fi
