#!/usr/bin/env python3
"""Compare the cost of `memlens snapshot` with prometheus-process-exporter, in one run.

Both read every process of the host. process-exporter (Debian package) runs as a
daemon tracking all processes with -threads=false; each cycle is one scrape of its
/metrics. memlens runs `snapshot --json` once per cycle as a fresh process (so its
start-up is counted against it). Both run with smaps off, then both with smaps on.

Prints, per setting: CPU per cycle of each (user+system), peak RSS of each, and
the ratio memlens / process-exporter. Goals (issue 3): memlens CPU <= 1/4 of
process-exporter's, memlens RSS <= 12 MiB.

Usage: scripts/bench_snapshot.py [--cycles N] [--memlens PATH]
"""
import argparse
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

EXPORTER = "/usr/bin/prometheus-process-exporter"
TIME = "/usr/bin/time"
TICKS = os.sysconf("SC_CLK_TCK")


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


def bench_exporter(cycles, smaps):
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
        # Warm up (first scrapes build its caches), then measure.
        for _ in range(3):
            urllib.request.urlopen(url, timeout=10).read()
        start = cpu_seconds(proc.pid)
        for _ in range(cycles):
            urllib.request.urlopen(url, timeout=10).read()
        cpu = (cpu_seconds(proc.pid) - start) / cycles
        return cpu, rss_kib(proc.pid), rss_kib(proc.pid, "VmHWM")
    finally:
        proc.kill()
        proc.wait()
        os.unlink(config.name)


def bench_memlens(binary, cycles, smaps):
    """CPU per run and peak RSS of `memlens snapshot`.

    CPU: memlens started directly, `cycles` times, summed from this script's
    children rusage (exec and start-up included, counted against memlens).
    Peak RSS: a few more runs under GNU time, which forks a small C process and
    execs memlens, so wait4's ru_maxrss (which survives exec) is memlens's own;
    a fork of this Python interpreter would report Python's RSS instead.
    """
    args = [binary, "snapshot", "--json", f"--smaps={'always' if smaps else 'never'}"]
    for _ in range(3):
        subprocess.run(args, stdout=subprocess.DEVNULL, check=True)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    for _ in range(cycles):
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


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cycles", type=int, default=100)
    parser.add_argument("--memlens", default="target/release/memlens")
    args = parser.parse_args()
    if not os.path.exists(EXPORTER):
        sys.exit(f"{EXPORTER} missing: apt-get install prometheus-process-exporter")
    if not os.path.exists(TIME):
        sys.exit(f"{TIME} missing: apt-get install time")
    if not os.path.exists(args.memlens):
        sys.exit(f"{args.memlens} missing: cargo build --release")
    print(f"processes on the host: {count_processes()}, cycles: {args.cycles}")
    print(f"{'smaps':<6} {'tool':<20} {'CPU ms/cycle':>13} {'RSS MiB':>8} {'peak MiB':>9}")
    ok = True
    for smaps in (False, True):
        e_cpu, e_rss, e_hwm = bench_exporter(args.cycles, smaps)
        m_cpu, m_peak = bench_memlens(args.memlens, args.cycles, smaps)
        label = "on" if smaps else "off"
        print(f"{label:<6} {'process-exporter':<20} {e_cpu*1000:>13.2f} {e_rss/1024:>8.1f} {e_hwm/1024:>9.1f}")
        print(f"{label:<6} {'memlens snapshot':<20} {m_cpu*1000:>13.2f} {'':>8} {m_peak/1024:>9.1f}")
        ratio = m_cpu / e_cpu if e_cpu > 0 else float("inf")
        cpu_ok = ratio <= 0.25
        rss_ok = m_peak <= 12 * 1024
        ok = ok and cpu_ok and rss_ok
        print(f"{label:<6} ratio memlens/process-exporter CPU = {ratio:.3f} "
              f"(goal <= 0.25: {'met' if cpu_ok else 'NOT met'}); "
              f"memlens peak RSS {m_peak/1024:.1f} MiB (goal <= 12: {'met' if rss_ok else 'NOT met'})")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
