#!/usr/bin/env python3
"""Remote-write throughput of one memlens agent, against VictoriaMetrics's ingest.

One run:
1. a real VictoriaMetrics (Debian victoria-metrics) on 127.0.0.1, not started
   yet; one `memlens watch --interval 0.5` recording every process of the
   host, with `[[remote_write]]` to it: for --backlog seconds (30) the
   receiver is down, so a backlog builds in the agent's history (and the
   agent's CPU for sampling alone is measured: the baseline);
2. VictoriaMetrics starts; the agent catches up. Measured until the sender's
   watermark passes the instant VictoriaMetrics answered:
   - samples/s the agent pushes (the state file's sent_samples_total),
   - the agent's CPU (utime+stime of /proc/PID/stat) per 1,000 samples sent,
     raw and minus the sampling baseline,
   - VictoriaMetrics's ingest (vm_rows_inserted_total{type="promremotewrite"}
     from its /metrics) over the same time, and the ratio of the two (the
     anchor: 1.0 means every sample pushed was ingested as fast).

Everything lives in a temp dir removed at the end (also on failure/Ctrl-C).
Usage: scripts/bench_fleet.py [--memlens PATH] [--backlog S]
"""
import argparse
import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TICKS = os.sysconf("SC_CLK_TCK")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def state(data):
    for path in glob.glob(os.path.join(data, "remote_write-*.json")):
        with open(path) as f:
            return json.load(f)
    return None


def vm_rows(addr):
    text = urllib.request.urlopen(f"http://{addr}/metrics", timeout=5).read().decode()
    total = 0.0
    for line in text.splitlines():
        if line.startswith("vm_rows_inserted_total") and 'type="promremotewrite"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def wait(what, timeout, probe):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.1)
    sys.exit(f"bench_fleet: timed out waiting for {what}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--memlens", default=None)
    ap.add_argument("--backlog", type=float, default=30.0)
    args = ap.parse_args()
    memlens = args.memlens
    if memlens is None:
        for build in ("release", "debug"):
            path = os.path.join(ROOT, "target", build, "memlens")
            if os.path.exists(path):
                memlens = path
                break
    if memlens is None:
        sys.exit("bench_fleet: build memlens first (cargo build --release)")
    print(f"# rerun: {sys.argv[0]} --memlens {memlens} --backlog {args.backlog}")
    tmp = tempfile.mkdtemp(prefix="memlens-bench-fleet-")
    children = []

    def cleanup(*_):
        for child in children:
            if child.poll() is None:
                child.terminate()
                try:
                    child.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    child.kill()
        shutil.rmtree(tmp, ignore_errors=True)

    signal.signal(signal.SIGTERM, lambda *_: (cleanup(), sys.exit(1)))
    try:
        addr = f"127.0.0.1:{free_port()}"
        data = os.path.join(tmp, "data")
        config = os.path.join(tmp, "watch.toml")
        with open(config, "w") as f:
            f.write(f'[[remote_write]]\nurl = "http://{addr}/api/v1/write"\n'
                    'max_backoff = "1s"\nextra_labels = { host = "bench" }\n')
        agent = subprocess.Popen(
            [memlens, "watch", "--quiet", "--no-profiles", "--interval", "0.5",
             "--data", data, "--config", config],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        children.append(agent)
        wait("the agent's state file", 30, lambda: state(data))
        time.sleep(2)  # past start-up work
        cpu0, t0 = cpu_seconds(agent.pid), time.monotonic()
        time.sleep(args.backlog)
        baseline_cpu_per_s = (cpu_seconds(agent.pid) - cpu0) / (time.monotonic() - t0)
        vm = subprocess.Popen(
            ["/usr/bin/victoria-metrics", f"-httpListenAddr={addr}",
             f"-storageDataPath={os.path.join(tmp, 'vm')}", "-retentionPeriod=1d"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        children.append(vm)

        def ready():
            try:
                return urllib.request.urlopen(f"http://{addr}/health", timeout=1).read()
            except OSError:
                return None
        wait("VictoriaMetrics", 60, ready)
        up_ms = int(time.time() * 1000)
        rows0, sent0 = vm_rows(addr), state(data)["sent_samples_total"]
        cpu1, t1 = cpu_seconds(agent.pid), time.monotonic()
        wait("the catch-up", 600, lambda: state(data)["watermark_ms"] >= up_ms)
        seconds = time.monotonic() - t1
        cpu = cpu_seconds(agent.pid) - cpu1
        sent = state(data)["sent_samples_total"] - sent0
        # The ratio compares like with like: the agent's total and
        # VictoriaMetrics's, read together once the agent is stopped and
        # flushed (VictoriaMetrics counts a row once it took it).
        agent.terminate()
        agent.wait(timeout=60)
        sent_all = state(data)["sent_samples_total"] - sent0
        rows = wait("VictoriaMetrics to count every row", 30,
                    lambda: (vm_rows(addr) - rows0 >= sent_all) and (vm_rows(addr) - rows0))
        push_rate = sent / seconds
        print(f"backlog of {args.backlog:.0f}s at a 0.5s interval; caught up in {seconds:.2f}s")
        print(f"agent push: {sent} samples, {push_rate:,.0f} samples/s")
        print(f"agent CPU: {cpu / sent * 1000 * 1000:.2f} ms per 1,000 samples "
              f"({(cpu - baseline_cpu_per_s * seconds) / sent * 1e6:.2f} ms without the "
              f"sampling baseline of {baseline_cpu_per_s * 1000:.1f} ms/s)")
        print(f"VictoriaMetrics ingest: {rows:,.0f} rows of the {sent_all} samples sent "
              f"up to the agent's stop")
        print(f"ratio agent push / VictoriaMetrics ingest: {sent_all / rows:.3f}")
    finally:
        cleanup()


if __name__ == "__main__":
    main()
