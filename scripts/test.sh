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
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo test --workspace --no-fail-fast
