#!/usr/bin/env bash
# Installs what the tests need when it is missing, then runs the whole suite:
# formatting, lints, and every test (unit, fixture, and real-process tests).
#
# Needs: the Rust toolchain, python3 with pip, and root (or sudo) for apt-get
# and for the memory cgroups the tests create.
set -euo pipefail
cd "$(dirname "$0")/.."

# Toolchains, Debian packages and the environment the tests read.
# shellcheck source=scripts/env.sh
source scripts/env.sh

# --- checks and tests --------------------------------------------------------
if ! cargo nextest --version >/dev/null 2>&1; then
  echo "test.sh: cargo-nextest is missing; installing it (cargo install cargo-nextest --locked)"
  cargo install cargo-nextest --locked
fi
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
# Two tests at a time (.config/nextest.toml: the heavy ones and the
# self-serializing binaries one at a time), then the doc tests, which
# nextest does not run.
cargo nextest run --workspace --no-fail-fast
cargo test --workspace --doc --no-fail-fast
