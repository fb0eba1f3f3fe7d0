#!/usr/bin/env python3
"""CPU of `memlens watch` with the live checks of diagnose against the same agent without them.

Two agents run side by side for the same wall time over the same host:
BASE (a memlens built before the live checks, e.g. from main) and NEW (this
tree's), each `watch --interval 1 --runtime-interval 5s --no-profiles` over
every process into its own fresh history. So that the Go checks have work,
the script starts Go workloads (workloads/, built with $MEMLENS_GO127 or
`go`): 4 `steady` with /metrics and GOMEMLIMIT, 2 `goroutine-leak` with
/metrics, 2 `fd-leak`, 1 `mmap` of 5000 mappings; they are killed at the end.

Prints each agent's CPU % (user+system over the measured wall time, after a
warm-up) and the ratio NEW / BASE, the anchor being BASE. Run it on a quiet
machine, twice: the agents share the cores with whatever else runs, and
each sees the other as one more process.

Usage: scripts/bench_livedet.py --base PATH --new PATH [--seconds N]
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def build_workload(out):
    go = os.environ.get("MEMLENS_GO127") or shutil.which("go")
    if not go:
        sys.exit("no Go toolchain: source scripts/env.sh")
    env = dict(os.environ, GOTOOLCHAIN="local", GOFLAGS="-mod=mod", CGO_ENABLED="0")
    here = os.path.dirname(os.path.abspath(__file__))
    subprocess.run([go, "build", "-trimpath", "-o", out, "."],
                   cwd=os.path.join(here, "..", "workloads"), env=env, check=True)


def start_workloads(binary):
    specs = (
        [(["--mode", "steady", "--alloc-mib-per-tick", "2", "--metrics"], "200MiB")] * 4
        + [(["--mode", "goroutine-leak", "--goroutines", "2000", "--goroutine-rate", "2",
             "--metrics"], "200MiB")] * 2
        + [(["--mode", "fd-leak", "--fds", "500", "--fd-rate", "1"], None)] * 2
        + [(["--mode", "mmap", "--mappings", "5000", "--mapping-kib", "4"], None)]
    )
    procs = []
    for args, limit in specs:
        env = dict(os.environ)
        if limit:
            env["GOMEMLIMIT"] = limit
        procs.append(subprocess.Popen([binary, "--duration", "0"] + args, env=env,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    return procs


def agent(binary, data):
    return subprocess.Popen(
        [binary, "watch", "--interval", "1", "--runtime-interval", "5s", "--no-profiles",
         "--quiet", "--data", data],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--base", required=True, help="memlens without the live checks")
    parser.add_argument("--new", required=True, help="memlens with them")
    parser.add_argument("--seconds", type=int, default=120)
    parser.add_argument("--warmup", type=int, default=20)
    a = parser.parse_args()
    tmp = tempfile.mkdtemp(prefix="memlens-bench-livedet-")
    workload = os.path.join(tmp, "workload")
    build_workload(workload)
    workloads = start_workloads(workload)
    agents = {}
    try:
        agents = {name: agent(path, os.path.join(tmp, name))
                  for name, path in (("base", a.base), ("new", a.new))}
        time.sleep(a.warmup)
        start = {n: cpu_seconds(p.pid) for n, p in agents.items()}
        t0 = time.monotonic()
        time.sleep(a.seconds)
        wall = time.monotonic() - t0
        used = {n: cpu_seconds(p.pid) - start[n] for n, p in agents.items()}
        for n, p in agents.items():
            if p.poll() is not None:
                sys.exit(f"{n} agent died: {p.stderr.read()}")
        for n in ("base", "new"):
            print(f"{n:>4}: CPU {100 * used[n] / wall:.2f} % ({used[n]:.2f} s over {wall:.0f} s)")
        ratio = used["new"] / used["base"] if used["base"] > 0 else float("nan")
        print(f"ratio new / base (anchor: base, the agent without the live checks): {ratio:.3f}")
    finally:
        for p in list(agents.values()) + workloads:
            p.terminate()
        for p in list(agents.values()) + workloads:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
