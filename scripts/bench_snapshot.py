#!/usr/bin/env python3
"""Compare the cost of `memlens snapshot` with prometheus-process-exporter, in one run.

All read every process of the host, one cycle every --interval seconds (a fixed
rate, not back to back, so the processes on the host change between cycles as
they do in real life):

- process-exporter (Debian package) runs as a daemon tracking all processes with
  -threads=false; each cycle is one scrape of its /metrics.
- `memlens snapshot --json`, a fresh process per cycle (start-up counted against
  it): CPU from this script's children rusage.
- `memlens snapshot --every INTERVAL --json`, one process for the whole run (as
  `memlens watch` collects): CPU per cycle = its CPU delta over N cycles / N,
  measured after warm-up cycles, cycles counted from its output lines (stdout
  drained by this script). It reuses a process's last smaps_rollup reading while
  the process's fault and RSS counters stay still, for at most --pss-max-age.

Each runs with smaps off (exporter -gather-smaps=false, memlens --smaps never),
then on (-gather-smaps=true, --smaps always). Prints, per setting: CPU per cycle
of each (user+system), RSS and peak RSS, and each memlens mode's ratio to
process-exporter. Goals (issue 3): memlens CPU <= 1/4 of process-exporter's,
memlens peak RSS <= 12 MiB. Exits 0 when the --every mode meets both, smaps
off and on.

With --busy N, the run also starts N Go workloads (steady mode: a 64 MiB live
heap, 8 MiB allocated every 100 ms; --workload, built from workloads/ when
missing) for its whole length, each bounded by --duration: processes whose
memory changes every cycle, so their smaps_rollup is walked every cycle by
both tools.

Usage: scripts/bench_snapshot.py [--cycles N] [--interval S] [--pss-max-age S]
                                 [--busy N [--workload PATH]] [--memlens PATH]
"""
import argparse
import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

EXPORTER = "/usr/bin/prometheus-process-exporter"
TIME = "/usr/bin/time"
TICKS = os.sysconf("SC_CLK_TCK")
WARMUP_CYCLES = 3


def cpu_seconds(pid):
    """utime + stime of a running process, in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def rss_kib(pid, key="VmRSS"):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def count_processes():
    return sum(1 for d in os.listdir("/proc") if d.isdigit())


class Pacer:
    """Fixed-rate cycles: wait() returns at start + k * interval."""

    def __init__(self, interval):
        self.interval = interval
        self.next = time.monotonic()

    def wait(self):
        self.next += self.interval
        pause = self.next - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        else:
            self.next = time.monotonic()


def bench_exporter(cycles, interval, smaps):
    config = tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False)
    config.write("process_names:\n  - name: '{{.Comm}}'\n    cmdline:\n    - '.*'\n")
    config.close()
    addr = f"127.0.0.1:{free_port()}"
    proc = subprocess.Popen(
        [EXPORTER, f"-config.path={config.name}", f"-web.listen-address={addr}",
         "-threads=false", f"-gather-smaps={'true' if smaps else 'false'}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://{addr}/metrics"
        deadline = time.time() + 30
        while True:
            try:
                urllib.request.urlopen(url, timeout=5).read()
                break
            except OSError:
                if time.time() > deadline or proc.poll() is not None:
                    sys.exit("process-exporter did not start")
                time.sleep(0.1)
        pacer = Pacer(interval)
        # Warm up (first scrapes build its caches), then measure.
        for _ in range(WARMUP_CYCLES):
            pacer.wait()
            urllib.request.urlopen(url, timeout=10).read()
        start = cpu_seconds(proc.pid)
        for _ in range(cycles):
            pacer.wait()
            urllib.request.urlopen(url, timeout=10).read()
        cpu = (cpu_seconds(proc.pid) - start) / cycles
        return cpu, rss_kib(proc.pid), rss_kib(proc.pid, "VmHWM")
    finally:
        proc.kill()
        proc.wait()
        os.unlink(config.name)


def smaps_flag(smaps):
    return f"--smaps={'always' if smaps else 'never'}"


def bench_memlens_fresh(binary, cycles, interval, smaps):
    """CPU per run and peak RSS of a fresh `memlens snapshot --json` per cycle.

    CPU: memlens started directly, once per cycle, summed from this script's
    children rusage (exec and start-up included, counted against memlens).
    Peak RSS: a few more runs under GNU time, which forks a small C process and
    execs memlens, so wait4's ru_maxrss (which survives exec) is memlens's own;
    a fork of this Python interpreter would report Python's RSS instead.
    """
    args = [binary, "snapshot", "--json", smaps_flag(smaps)]
    pacer = Pacer(interval)
    for _ in range(WARMUP_CYCLES):
        pacer.wait()
        subprocess.run(args, stdout=subprocess.DEVNULL, check=True)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    for _ in range(cycles):
        pacer.wait()
        subprocess.run(args, stdout=subprocess.DEVNULL, check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = ((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)) / cycles
    peak_kib = 0
    for _ in range(10):
        done = subprocess.run([TIME, "-f", "%M"] + args, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)
        if done.returncode != 0:
            sys.exit(f"memlens snapshot failed: {done.stderr}")
        peak_kib = max(peak_kib, int(done.stderr.strip().splitlines()[-1]))
    return cpu, peak_kib


class LineCounter:
    """Drains a process's stdout on a thread, counting JSON lines and how many
    rows had PSS read in that snapshot (age 0) or reused (age > 0)."""

    def __init__(self, stream):
        self.cond = threading.Condition()
        self.lines = 0
        self.read_rows = 0
        self.reused_rows = 0
        self.counting = False
        self.thread = threading.Thread(target=self._drain, args=(stream,), daemon=True)
        self.thread.start()

    def _drain(self, stream):
        for line in stream:
            read = reused = 0
            if self.counting:
                for p in json.loads(line)["processes"]:
                    age = p.get("pss_age_seconds")
                    if age == 0:
                        read += 1
                    elif age is not None:
                        reused += 1
            with self.cond:
                self.lines += 1
                self.read_rows += read
                self.reused_rows += reused
                self.cond.notify_all()
        with self.cond:
            self.lines = -1
            self.cond.notify_all()

    def wait_for(self, lines, timeout):
        """Waits until `lines` lines came; returns the count (-1: EOF)."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while 0 <= self.lines < lines:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self.cond.wait(left)
            return self.lines


def bench_memlens_every(binary, cycles, interval, smaps, pss_max_age):
    """CPU per cycle and peak RSS of one `memlens snapshot --every` process."""
    args = [binary, "snapshot", "--json", smaps_flag(smaps), f"--every={interval}"]
    if pss_max_age is not None:
        args.append(f"--pss-max-age={pss_max_age}")
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        counter = LineCounter(proc.stdout)
        timeout = 30 + 3 * interval * (cycles + WARMUP_CYCLES)
        if counter.wait_for(WARMUP_CYCLES, timeout) < WARMUP_CYCLES:
            sys.exit(f"memlens snapshot --every failed: {proc.stderr.read()}")
        # The CPU right after a line came is that of whole cycles: between two
        # lines memlens collects, writes, then sleeps.
        with counter.cond:
            first_line = counter.lines
            start = cpu_seconds(proc.pid)
            counter.counting = True
        got = counter.wait_for(first_line + cycles, timeout)
        with counter.cond:
            end = cpu_seconds(proc.pid)
            done = counter.lines
        if got < 0 or done < first_line + cycles:
            sys.exit(f"memlens snapshot --every stopped: {proc.stderr.read()}")
        counted = done - first_line
        return ((end - start) / counted, rss_kib(proc.pid), rss_kib(proc.pid, "VmHWM"),
                counted, counter.read_rows, counter.reused_rows)
    finally:
        proc.kill()
        proc.wait()


def verdict(ok):
    return "met" if ok else "NOT met"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cycles", type=int, default=60)
    parser.add_argument("--interval", type=float, default=1.0,
                        help="seconds between two cycles of every tool (default 1)")
    parser.add_argument("--pss-max-age", type=float, default=None,
                        help="memlens --pss-max-age for the --every mode (default: memlens's, 30 s)")
    parser.add_argument("--memlens", default="target/release/memlens")
    parser.add_argument("--busy", type=int, default=0,
                        help="Go workloads allocating all the time, running during the whole run")
    parser.add_argument("--workload", default="target/workloads/bench/workload",
                        help="the Go workload binary (built here when missing)")
    args = parser.parse_args()
    if not os.path.exists(EXPORTER):
        sys.exit(f"{EXPORTER} missing: apt-get install prometheus-process-exporter")
    if not os.path.exists(TIME):
        sys.exit(f"{TIME} missing: apt-get install time")
    if not os.path.exists(args.memlens):
        sys.exit(f"{args.memlens} missing: cargo build --release")
    # Every tool runs 2 x (cycles + warm-up) cycles; the workloads stop by
    # themselves a while after that even if this script is killed.
    bound_seconds = int(6 * (args.cycles + WARMUP_CYCLES) * args.interval + 300)
    busy = start_busy(args.workload, args.busy, bound_seconds)
    try:
        run(args)
    finally:
        for proc in busy:
            proc.kill()
            proc.wait()


def build_workload(workload):
    """Builds the Go workload (stdlib only) into `workload` with the first Go
    toolchain found: $MEMLENS_GO127, $MEMLENS_GO119, Debian's Go 1.19, `go`."""
    candidates = [os.environ.get("MEMLENS_GO127"), os.environ.get("MEMLENS_GO119"),
                  "/usr/lib/go-1.19/bin/go", shutil.which("go")]
    go = next((c for c in candidates if c and os.path.exists(c)), None)
    if go is None:
        sys.exit(f"{workload} missing and no Go toolchain found: apt-get install golang-go")
    os.makedirs(os.path.dirname(workload) or ".", exist_ok=True)
    source = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "workloads")
    env = dict(os.environ, GOTOOLCHAIN="local", GOFLAGS="-mod=mod", CGO_ENABLED="0")
    subprocess.run([go, "build", "-o", os.path.abspath(workload), "."], cwd=source,
                   env=env, check=True)


def start_busy(workload, count, bound_seconds):
    """Starts `count` steady Go workloads (each stops after `bound_seconds`);
    returns them once each filled its heap."""
    if count and not os.path.exists(workload):
        build_workload(workload)
    started = []
    try:
        for _ in range(count):
            proc = subprocess.Popen(
                [workload, "--mode=steady", "--live-mib=64", "--alloc-mib-per-tick=8",
                 f"--duration={bound_seconds}s"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            started.append(proc)
            for line in proc.stdout:
                if line.startswith("LIVE_FILLED"):
                    break
            else:
                sys.exit("a busy workload exited before LIVE_FILLED")
            # Its TICK lines go on: drain them so it never blocks on a full pipe.
            threading.Thread(target=proc.stdout.read, daemon=True).start()
    except BaseException:
        for proc in started:
            proc.kill()
            proc.wait()
        raise
    return started


def run(args):
    max_age = "30 (default)" if args.pss_max_age is None else f"{args.pss_max_age:g}"
    print(f"processes on the host: {count_processes()}, cycles: {args.cycles} measured "
          f"after {WARMUP_CYCLES} warm-up, one cycle every {args.interval:g} s for every tool; "
          f"memlens --every --pss-max-age {max_age} s; busy Go workloads started: {args.busy}")
    print(f"{'smaps':<6} {'tool':<32} {'CPU ms/cycle':>13} {'RSS MiB':>8} {'peak MiB':>9}")
    ok = {"fresh/cycle": True, "--every": True}
    for smaps in (False, True):
        label = "on" if smaps else "off"
        e_cpu, e_rss, e_hwm = bench_exporter(args.cycles, args.interval, smaps)
        f_cpu, f_peak = bench_memlens_fresh(args.memlens, args.cycles, args.interval, smaps)
        r_cpu, r_rss, r_peak, r_cycles, read, reused = bench_memlens_every(
            args.memlens, args.cycles, args.interval, smaps, args.pss_max_age)
        print(f"{label:<6} {'process-exporter':<32} {e_cpu*1000:>13.2f} "
              f"{e_rss/1024:>8.1f} {e_hwm/1024:>9.1f}")
        print(f"{label:<6} {'memlens snapshot (fresh/cycle)':<32} {f_cpu*1000:>13.2f} "
              f"{'':>8} {f_peak/1024:>9.1f}")
        print(f"{label:<6} {'memlens snapshot --every':<32} {r_cpu*1000:>13.2f} "
              f"{r_rss/1024:>8.1f} {r_peak/1024:>9.1f}")
        if smaps:
            rows = read + reused
            share = read / rows if rows else 0.0
            print(f"{label:<6} --every: {r_cycles} cycles counted from its output; PSS of "
                  f"{read} of {rows} process rows ({share:.0%}) walked in their cycle, "
                  f"{reused} reused (counters unchanged, younger than the max age)")
        for name, cpu, peak in (("fresh/cycle", f_cpu, f_peak), ("--every", r_cpu, r_peak)):
            ratio = cpu / e_cpu if e_cpu > 0 else float("inf")
            cpu_ok = ratio <= 0.25
            rss_ok = peak <= 12 * 1024
            ok[name] = ok[name] and cpu_ok and rss_ok
            print(f"{label:<6} {name:<11} ratio memlens/process-exporter CPU = {ratio:.3f} "
                  f"(goal <= 0.25: {verdict(cpu_ok)}); memlens peak RSS {peak/1024:.1f} MiB "
                  f"(goal <= 12: {verdict(rss_ok)})")
    print(f"issue 3 goals, smaps off and on: memlens snapshot --every {verdict(ok['--every'])}; "
          f"a fresh memlens process per cycle {verdict(ok['fresh/cycle'])}")
    sys.exit(0 if ok["--every"] else 1)


if __name__ == "__main__":
    main()
