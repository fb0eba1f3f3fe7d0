#!/usr/bin/env python3
"""Cost of `memlens watch` (with its history) next to prometheus-process-exporter, in one run.

Both watch every process of the host for the same wall time, side by side:
memlens as `watch --interval 1` writing its history to a fresh data directory,
process-exporter (Debian package, -threads=false) scraped every second. Both
read smaps_rollup (memlens: --smaps auto, its default; process-exporter:
-gather-smaps=true), then both without (memlens --smaps never,
-gather-smaps=false) unless --smaps on|off picks one.

Prints, per setting: CPU % of each (user+system over the wall time), RSS and
peak RSS of each, the CPU ratio memlens / process-exporter, and for memlens the
bytes of its data directory after its clean stop (flush + checkpoint) divided by
the numeric values it stored (counted with `memlens query`).

Goals (issue 5): memlens CPU <= 1/4 of process-exporter's, memlens RSS <= 20 MiB
while storing history, <= 2 bytes per stored sample (on a one-hour recording:
--seconds 3600).

Usage: scripts/bench_watch.py [--seconds N] [--smaps on|off|both] [--memlens PATH]
"""
import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

EXPORTER = "/usr/bin/prometheus-process-exporter"
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def status_kib(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def dir_bytes(path):
    return sum(os.path.getsize(os.path.join(path, n)) for n in os.listdir(path)
               if os.path.isfile(os.path.join(path, n)))


def start_exporter(smaps):
    config = tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False)
    config.write("process_names:\n  - name: '{{.Comm}}'\n    cmdline:\n    - '.*'\n")
    config.close()
    addr = f"127.0.0.1:{free_port()}"
    proc = subprocess.Popen(
        [EXPORTER, f"-config.path={config.name}", f"-web.listen-address={addr}",
         "-threads=false", f"-gather-smaps={'true' if smaps else 'false'}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://{addr}/metrics"
    deadline = time.time() + 30
    while True:
        try:
            urllib.request.urlopen(url, timeout=5).read()
            return proc, url, config.name
        except OSError:
            if time.time() > deadline or proc.poll() is not None:
                proc.kill()
                sys.exit("process-exporter did not start")
            time.sleep(0.1)


def scrape_every_second(url, stop):
    next_at = time.monotonic()
    while not stop.is_set():
        try:
            urllib.request.urlopen(url, timeout=10).read()
        except OSError as err:
            print(f"scrape failed: {err}", file=sys.stderr)
        next_at += 1.0
        stop.wait(max(0.0, next_at - time.monotonic()))


def run_setting(binary, seconds, smaps, profiles):
    data = tempfile.mkdtemp(prefix="memlens-bench-")
    exporter, url, config = start_exporter(smaps)
    stop = threading.Event()
    scraper = threading.Thread(target=scrape_every_second, args=(url, stop))
    agent = subprocess.Popen(
        [binary, "watch", "--interval", "1", "--quiet", "--data", data,
         f"--smaps={'auto' if smaps else 'never'}"] + ([] if profiles else ["--no-profiles"]),
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        # Let both settle (first scrape, first cycles, Go discovery), then measure.
        scraper.start()
        time.sleep(5)
        if agent.poll() is not None:
            sys.exit(f"memlens watch exited: {agent.stderr.read()}")
        e0, m0, t0 = cpu_seconds(exporter.pid), cpu_seconds(agent.pid), time.monotonic()
        e_rss_max = m_rss_max = 0
        end = t0 + seconds
        while time.monotonic() < end:
            time.sleep(min(5.0, max(0.0, end - time.monotonic())))
            e_rss_max = max(e_rss_max, status_kib(exporter.pid, "VmRSS"))
            m_rss_max = max(m_rss_max, status_kib(agent.pid, "VmRSS"))
        wall = time.monotonic() - t0
        e_cpu = (cpu_seconds(exporter.pid) - e0) / wall
        m_cpu = (cpu_seconds(agent.pid) - m0) / wall
        e_hwm = status_kib(exporter.pid, "VmHWM")
        m_hwm = status_kib(agent.pid, "VmHWM")
    finally:
        stop.set()
        if scraper.is_alive():
            scraper.join()
        exporter.kill()
        exporter.wait()
        os.unlink(config)
        agent.send_signal(signal.SIGTERM)
        try:
            agent.wait(timeout=60)
        except subprocess.TimeoutExpired:
            agent.kill()
            sys.exit("memlens watch did not stop within 60 s of SIGTERM")
    if agent.returncode != 0:
        sys.exit(f"memlens watch failed ({agent.returncode}): {agent.stderr.read()}")
    count = subprocess.run(
        [binary, "query", "--data", data, "--csv", "SELECT count(*) FROM samples"],
        check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
    values = int(count)
    profile_out = subprocess.run(
        [binary, "query", "--data", data, "--csv",
         "SELECT count(*), coalesce(sum(size_bytes), 0) FROM profiles"],
        check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
    profile_count, profile_bytes = (int(x) for x in profile_out.split(","))
    entities = int(subprocess.run(
        [binary, "query", "--data", data, "--csv", "SELECT count(*) FROM entities"],
        check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1])
    # Where the bytes are: pages per table and index (SQLite's dbstat).
    makeup_rows = subprocess.run(
        [binary, "query", "--data", data, "--csv",
         "SELECT name, sum(pgsize) FROM dbstat GROUP BY name ORDER BY 2 DESC"],
        capture_output=True, text=True).stdout.strip().splitlines()[1:]
    makeup = ", ".join(f"{r.split(',')[0]} {r.split(',')[1]}" for r in makeup_rows[:8])
    size = dir_bytes(data)
    subprocess.run(["rm", "-rf", data], check=True)
    return {
        "e_cpu": e_cpu, "m_cpu": m_cpu, "e_rss": e_rss_max, "m_rss": m_rss_max,
        "e_hwm": e_hwm, "m_hwm": m_hwm, "values": values, "bytes": size, "wall": wall,
        "profiles": profile_count, "profile_bytes": profile_bytes, "entities": entities,
        "makeup": makeup,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=int, default=120)
    parser.add_argument("--smaps", choices=["on", "off", "both"], default="both")
    parser.add_argument("--memlens", default="target/release/memlens")
    parser.add_argument("--profiles", choices=["on", "off"], default="on",
                        help="whether the agent also fetches and keeps Go profiles "
                             "(their blobs are in the data directory too)")
    args = parser.parse_args()
    if not os.path.exists(EXPORTER):
        sys.exit(f"{EXPORTER} missing: apt-get install prometheus-process-exporter")
    if not os.path.exists(args.memlens):
        sys.exit(f"{args.memlens} missing: cargo build --release")
    processes = sum(1 for d in os.listdir("/proc") if d.isdigit())
    print(f"rerun: {' '.join(sys.argv)}")
    print(f"processes on the host: {processes}; {args.seconds} s per setting, 1 s interval")
    print(f"{'smaps':<6} {'tool':<18} {'CPU %':>7} {'RSS MiB':>8} {'peak MiB':>9}")
    ok = True
    settings = {"on": [True], "off": [False], "both": [True, False]}[args.smaps]
    for smaps in settings:
        r = run_setting(args.memlens, args.seconds, smaps, args.profiles == "on")
        label = "on" if smaps else "off"
        print(f"{label:<6} {'process-exporter':<18} {r['e_cpu']*100:>7.2f} "
              f"{r['e_rss']/1024:>8.1f} {r['e_hwm']/1024:>9.1f}")
        print(f"{label:<6} {'memlens watch':<18} {r['m_cpu']*100:>7.2f} "
              f"{r['m_rss']/1024:>8.1f} {r['m_hwm']/1024:>9.1f}")
        ratio = r["m_cpu"] / r["e_cpu"] if r["e_cpu"] > 0 else float("inf")
        per_sample = r["bytes"] / r["values"] if r["values"] else float("inf")
        cpu_ok, rss_ok, bytes_ok = ratio <= 0.25, r["m_hwm"] <= 20 * 1024, per_sample <= 2.0
        ok = ok and cpu_ok and rss_ok and bytes_ok
        met = lambda b: "met" if b else "NOT met"
        print(f"{label:<6} CPU ratio memlens/process-exporter = {ratio:.3f} (goal <= 0.25: {met(cpu_ok)}); "
              f"memlens peak RSS {r['m_hwm']/1024:.1f} MiB (goal <= 20: {met(rss_ok)}); "
              f"{r['values']} values in {r['bytes']} bytes = {per_sample:.3f} bytes/sample "
              f"(goal <= 2: {met(bytes_ok)})")
        print(f"{label:<6} data directory: {r['bytes']} bytes = {r['entities']} entities' series "
              f"+ {r['profiles']} profiles of {r['profile_bytes']} bytes; without the profiles "
              f"{(r['bytes'] - r['profile_bytes']) / max(r['values'], 1):.3f} bytes/sample")
        print(f"{label:<6} largest tables/indexes (bytes): {r['makeup'] or 'dbstat unavailable'}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
