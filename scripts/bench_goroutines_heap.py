#!/usr/bin/env python3
"""Compare `memlens goroutines` and `memlens heap` with panicparse and go tool pprof, in one run.

Builds memlens (cargo build --release -p memlens) and the input generator
workloads/gen (go build, Go 1.27 by default; it is also built with Go 1.19 to
check that it still builds), makes every input in a temporary directory from a
real Go program, runs both sides on the same files and prints a table.

1. `?debug=2` dump of 100,000 goroutines over 1,000 distinct stacks, fetched over
   HTTP from `gen goroutines`: `memlens goroutines FILE --json` vs
   `panicparse -aggressive -parse=false FILE` (Debian package panicparse).
   Goals: memlens >= 20x faster (wall, median of --runs) and peak RSS <= 1/10.
2. SIGQUIT dump (GOTRACEBACK=all, stderr of `gen goroutines`) of 1,000,000
   goroutines over 10,000 distinct stacks: `memlens goroutines FILE --json`.
   Goal: peak RSS < 256 MiB.
3. Heap profile of `gen heap` (MemProfileRate=1, 2^18 objects each allocated
   through its own call path): `memlens heap FILE --top 20` vs
   `go tool pprof -top FILE` (Go 1.27). Goal: memlens >= 3x faster.

Wall time is measured around `/usr/bin/time -f '%e %M'`, whose %M is the peak
RSS of the measured program itself (GNU time forks a small C process that execs
it; a fork of this Python interpreter would report Python's RSS). Every output
goes to /dev/null in the timed runs.

Exit status: 1 when a side fails to run or an input cannot be made, else 0
(a missed goal is printed as NOT MET, it does not change the exit status).

Usage: scripts/bench_goroutines_heap.py [--runs N] [--parts 1,2,3] [--keep DIR]
           [--dump-goroutines N] [--sigquit-goroutines N] [--heap-depth D]
           [--gen-go 1.27|1.19] [--no-build]
"""
import argparse
import gzip
import os
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TIME = "/usr/bin/time"
PANICPARSE = "/usr/bin/panicparse"
GO127 = os.environ.get(
    "MEMLENS_GO127", "/root/.pyenv/versions/3.11.7/lib/python3.11/site-packages/go/bin/go")
GO119 = os.environ.get("MEMLENS_GO119", "/usr/lib/go-1.19/bin/go")
GO_ENV = {"GOTOOLCHAIN": "local", "GOFLAGS": "-mod=mod", "CGO_ENABLED": "0"}
MIB = 1024 * 1024
DEBUG2_CAP_BYTES = 64 * MIB


class SideFailed(Exception):
    """A measured program or a generator did not run to completion."""


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def go_env(extra=None):
    env = dict(os.environ)
    env.update(GO_ENV)
    env.update(extra or {})
    return env


def build(args, tmp):
    """cargo build --release -p memlens; go build of workloads/gen. Returns gen's path."""
    if not args.no_build:
        log("building memlens: cargo build --release -p memlens")
        subprocess.run(["cargo", "build", "--release", "-p", "memlens"], cwd=REPO, check=True)
    gens = {}
    for label, go in (("1.27", GO127), ("1.19", GO119)):
        if not os.path.exists(go):
            sys.exit(f"Go {label} toolchain missing at {go} (set MEMLENS_GO{label.replace('.', '')})")
        out = os.path.join(tmp, f"gen-go{label}")
        log(f"building workloads/gen with Go {label}: {go}")
        subprocess.run([go, "build", "-trimpath", "-o", out, "."],
                       cwd=os.path.join(REPO, "workloads", "gen"), env=go_env(), check=True)
        gens[label] = out
    return gens[args.gen_go]


def measure(cmd, runs, what, env=None):
    """Runs cmd `runs` times under GNU time, stdout to /dev/null.

    Returns (median wall seconds, list of wall seconds, max peak RSS KiB)."""
    walls, peaks = [], []
    fd, timefile = tempfile.mkstemp(prefix="time-")
    os.close(fd)
    try:
        for i in range(runs):
            start = time.perf_counter()
            done = subprocess.run([TIME, "-f", "%e %M", "-o", timefile] + cmd,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
            wall = time.perf_counter() - start
            if done.returncode != 0:
                err = done.stderr.decode(errors="replace").strip()[-2000:]
                raise SideFailed(f"{what} failed (exit {done.returncode}): {shlex.join(cmd)}\n{err}")
            with open(timefile) as f:
                fields = f.read().split()
            walls.append(wall)
            peaks.append(int(fields[-1]))
            log(f"  {what} run {i + 1}/{runs}: {wall:.3f} s, {int(fields[-1]) / 1024:.1f} MiB")
    finally:
        os.unlink(timefile)
    return statistics.median(walls), walls, max(peaks)


def warm(path):
    """Reads a file once so that every timed run finds it in the page cache."""
    with open(path, "rb") as f:
        while f.read(8 * MIB):
            pass


def count_goroutine_headers(path):
    """Lines `goroutine N ...` with N != 0, one per goroutine (`goroutine 0` of a
    SIGQUIT dump is an M's scheduler stack, which memlens does not count either)."""
    n = 0
    with open(path, "rb") as f:
        for line in f:
            if line.startswith(b"goroutine ") and line[10:11].isdigit() \
                    and not line.startswith(b"goroutine 0 "):
                n += 1
    return n


class Generator:
    """A running `gen goroutines` process, killed on exit of the with block."""

    def __init__(self, gen, n, branches, depth, stderr_path, env=None):
        self.cmd = [gen, "goroutines", f"--n={n}", f"--branches={branches}", f"--depth={depth}"]
        self.stderr_file = open(stderr_path, "wb")
        env_all = dict(os.environ)
        env_all.update(env or {})
        self.proc = subprocess.Popen(self.cmd, stdout=subprocess.PIPE,
                                     stderr=self.stderr_file, env=env_all)
        self.addr = None
        self.ready = None

    def __enter__(self):
        return self

    def wait_ready(self, timeout_seconds):
        """Reads stdout lines until READY; the reads are bounded by a timer that kills."""
        timer = _KillTimer(self.proc, timeout_seconds)
        try:
            for raw in self.proc.stdout:
                line = raw.decode().strip()
                if line.startswith("LISTEN "):
                    self.addr = line.split()[1]
                elif line.startswith("READY"):
                    self.ready = line
                    return line
        finally:
            timer.cancel()
        raise SideFailed(f"{shlex.join(self.cmd)} exited before READY "
                         f"(exit {self.proc.poll()}, or no READY within {timeout_seconds} s)")

    def __exit__(self, *exc):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.proc.stdout.close()
        self.stderr_file.close()


class _KillTimer:
    """Kills a process if it is still running after a deadline."""

    def __init__(self, proc, seconds):
        import threading
        self.timer = threading.Timer(seconds, lambda: proc.poll() is None and proc.kill())
        self.timer.daemon = True
        self.timer.start()

    def cancel(self):
        self.timer.cancel()


def make_debug2_dump(gen, tmp, n):
    path = os.path.join(tmp, f"goroutines-{n}-debug2.txt")
    with Generator(gen, n, 10, 2, os.path.join(tmp, "gen-debug2.stderr")) as g:
        ready = g.wait_ready(300)
        url = f"http://{g.addr}/debug/pprof/goroutine?debug=2"
        log(f"fetching {url} ({ready})")
        with urllib.request.urlopen(url, timeout=300) as resp, open(path, "wb") as out:
            while True:
                chunk = resp.read(MIB)
                if not chunk:
                    break
                out.write(chunk)
    return path, ready


def make_sigquit_dump(gen, tmp, n):
    path = os.path.join(tmp, f"goroutines-{n}-sigquit.txt")
    with Generator(gen, n, 10, 3, path, env={"GOTRACEBACK": "all"}) as g:
        ready = g.wait_ready(600)
        log(f"sending SIGQUIT to {g.proc.pid} ({ready}); stderr -> {path}")
        g.proc.send_signal(signal.SIGQUIT)
        try:
            rc = g.proc.wait(timeout=900)
        except subprocess.TimeoutExpired:
            raise SideFailed("gen did not finish its SIGQUIT dump within 900 s")
        if rc != 2:
            log(f"note: gen exited {rc} after SIGQUIT (the Go runtime exits 2)")
    return path, ready


def read_varint(buf, i):
    result = shift = 0
    while True:
        b = buf[i]
        i += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, i
        shift += 7


def skip_field(buf, i, wire):
    if wire == 0:
        _, i = read_varint(buf, i)
        return i
    if wire == 1:
        return i + 8
    if wire == 2:
        n, i = read_varint(buf, i)
        return i + n
    if wire == 5:
        return i + 4
    raise ValueError(f"unsupported wire type {wire}")


def profile_stacks(path):
    """(samples, distinct location-id stacks) of a pprof profile, decoded here with
    the public field numbers (Profile.sample = 2, Sample.location_id = 1)."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    samples = 0
    stacks = set()
    i = 0
    while i < len(data):
        key, i = read_varint(data, i)
        field, wire = key >> 3, key & 7
        if field == 2 and wire == 2:
            n, i = read_varint(data, i)
            end = i + n
            locs = []
            j = i
            while j < end:
                k, j = read_varint(data, j)
                if k >> 3 == 1 and k & 7 == 2:  # packed location ids
                    m, j = read_varint(data, j)
                    stop = j + m
                    while j < stop:
                        v, j = read_varint(data, j)
                        locs.append(v)
                elif k >> 3 == 1 and k & 7 == 0:
                    v, j = read_varint(data, j)
                    locs.append(v)
                else:
                    j = skip_field(data, j, k & 7)
            samples += 1
            stacks.add(tuple(locs))
            i = end
        else:
            i = skip_field(data, i, wire)
    return samples, len(stacks)


def memlens_json_summary(memlens, path):
    """Total goroutines and groups as memlens reports them (one untimed run)."""
    import json
    done = subprocess.run([memlens, "goroutines", path, "--json"], capture_output=True)
    if done.returncode != 0:
        raise SideFailed(f"memlens goroutines {path} --json failed: "
                         f"{done.stderr.decode(errors='replace').strip()[-2000:]}")
    report = json.loads(done.stdout)
    trunc = report.get("truncation")
    return report.get("total_goroutines"), report.get("groups_total"), trunc


def panicparse_summary(cmd):
    """Goroutines and groups as panicparse prints them (one untimed run)."""
    done = subprocess.run(cmd, capture_output=True)
    if done.returncode != 0:
        raise SideFailed(f"panicparse failed: {done.stderr.decode(errors='replace')[-2000:]}")
    total = groups = 0
    for line in done.stdout.decode(errors="replace").splitlines():
        head = line.split(":", 1)[0]
        if head.isdigit() and not line.startswith(" "):
            groups += 1
            total += int(head)
    return total, groups


def verdict(ok):
    return "MET" if ok else "NOT MET"


def row(part, tool, wall, walls, peak_kib):
    runs = " ".join(f"{w:.3f}" for w in walls)
    print(f"{part:<5} {tool:<44} {wall:>9.3f} {peak_kib / 1024:>9.1f}   [{runs}]")


def part1(memlens, gen, tmp, args, results):
    path, ready = make_debug2_dump(gen, tmp, args.dump_goroutines)
    size = os.path.getsize(path)
    headers = count_goroutine_headers(path)
    warm(path)
    cut = " (at the runtime's 64 MiB cap: cut)" if size >= DEBUG2_CAP_BYTES - MIB else ""
    print(f"\n[1] ?debug=2 dump: {path}: {size / MIB:.1f} MiB, {headers} goroutine headers{cut}; "
          f"generator: {ready}")
    ml_cmd = [memlens, "goroutines", path, "--json"]
    pp_cmd = [PANICPARSE, "-aggressive", "-parse=false", path]
    total, groups, trunc = memlens_json_summary(memlens, path)
    pp_total, pp_groups = panicparse_summary(pp_cmd)
    print(f"    memlens: {total} goroutines in {groups} groups, truncation: {trunc}; "
          f"panicparse: {pp_total} goroutines in {pp_groups} groups")
    log("part 1: memlens")
    ml = measure(ml_cmd, args.runs, "memlens goroutines")
    log("part 1: panicparse")
    pp = measure(pp_cmd, args.runs, "panicparse")
    header(f"median of {args.runs}")
    row(1, shlex.join(["memlens"] + ml_cmd[1:2] + ["FILE", "--json"]), *ml)
    row(1, shlex.join(["panicparse"] + pp_cmd[1:3] + ["FILE"]), *pp)
    speed = pp[0] / ml[0]
    rss_ratio = ml[2] / pp[2]
    ok_t, ok_m = speed >= 20, rss_ratio <= 0.1
    print(f"      wall panicparse/memlens = {speed:.1f}x (goal >= 20x: {verdict(ok_t)}); "
          f"peak RSS memlens/panicparse = {rss_ratio:.3f} = 1/{1 / rss_ratio:.1f} "
          f"(goal <= 1/10: {verdict(ok_m)})")
    results.append(("1 speed >= 20x vs panicparse", ok_t, f"{speed:.1f}x"))
    results.append(("1 peak RSS <= 1/10 of panicparse", ok_m, f"1/{1 / rss_ratio:.1f}"))


def part2(memlens, gen, tmp, args, results):
    path, ready = make_sigquit_dump(gen, tmp, args.sigquit_goroutines)
    size = os.path.getsize(path)
    headers = count_goroutine_headers(path)
    warm(path)
    print(f"\n[2] SIGQUIT dump: {path}: {size / MIB:.1f} MiB, {headers} goroutine headers; "
          f"generator: {ready}")
    total, groups, trunc = memlens_json_summary(memlens, path)
    print(f"    memlens: {total} goroutines in {groups} groups, truncation: {trunc}")
    log("part 2: memlens")
    ml = measure([memlens, "goroutines", path, "--json"], args.runs, "memlens goroutines")
    header(f"median of {args.runs}")
    row(2, "memlens goroutines FILE --json", *ml)
    ok = ml[2] < 256 * 1024
    print(f"      peak RSS {ml[2] / 1024:.1f} MiB (goal < 256 MiB: {verdict(ok)}); "
          f"{size / MIB / ml[0]:.0f} MiB/s")
    results.append(("2 1M-goroutine dump < 256 MiB", ok, f"{ml[2] / 1024:.1f} MiB"))


def part3(memlens, gen, tmp, args, results):
    path = os.path.join(tmp, "heap.pb.gz")
    log(f"generating the heap profile: {gen} heap --depth={args.heap_depth}")
    done = subprocess.run([gen, "heap", f"--out={path}", f"--depth={args.heap_depth}"],
                          capture_output=True, timeout=900)
    if done.returncode != 0:
        raise SideFailed(f"gen heap failed: {done.stderr.decode(errors='replace')}")
    samples, stacks = profile_stacks(path)
    warm(path)
    print(f"\n[3] heap profile: {path}: {os.path.getsize(path) / MIB:.1f} MiB gzipped, "
          f"{samples} samples, {stacks} distinct stacks; generator: {done.stdout.decode().strip()}")
    ml_cmd = [memlens, "heap", path, "--top", "20"]
    pprof_cmd = [GO127, "tool", "pprof", "-top", path]
    log("part 3: memlens")
    ml = measure(ml_cmd, args.runs, "memlens heap")
    log("part 3: go tool pprof")
    gp = measure(pprof_cmd, args.runs, "go tool pprof",
                 env=go_env({"PPROF_TMPDIR": tmp}))
    header(f"median of {args.runs}")
    row(3, "memlens heap FILE --top 20", *ml)
    row(3, "go tool pprof -top FILE (Go 1.27)", *gp)
    speed = gp[0] / ml[0]
    ok = speed >= 3
    print(f"      wall pprof/memlens = {speed:.1f}x (goal >= 3x: {verdict(ok)}); "
          f"peak RSS memlens/pprof = {ml[2] / gp[2]:.3f}")
    results.append(("3 heap top >= 3x faster than pprof", ok, f"{speed:.1f}x"))


def header(runs):
    print(f"{'part':<5} {'command':<44} {'wall s':>9} {'peak MiB':>9}   [wall of each run, s] ({runs})")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="timed runs per side (median)")
    parser.add_argument("--parts", default="1,2,3", help="which parts to run, e.g. 1,3")
    parser.add_argument("--keep", metavar="DIR", help="make the inputs in DIR and keep them")
    parser.add_argument("--dump-goroutines", type=int, default=100_000)
    parser.add_argument("--sigquit-goroutines", type=int, default=1_000_000)
    parser.add_argument("--heap-depth", type=int, default=18, help="2^D distinct stacks")
    parser.add_argument("--gen-go", choices=("1.27", "1.19"), default="1.27",
                        help="toolchain of the generator whose runtime makes the inputs")
    parser.add_argument("--no-build", action="store_true", help="skip cargo build")
    args = parser.parse_args()
    parts = {p.strip() for p in args.parts.split(",") if p.strip()}

    print("rerun: " + shlex.join(["python3", "scripts/bench_goroutines_heap.py"] + sys.argv[1:])
          + f"   (in {REPO})", flush=True)
    for tool, pkg in ((TIME, "time"), (PANICPARSE, "panicparse")):
        if not os.path.exists(tool):
            sys.exit(f"{tool} missing: apt-get install {pkg}")
    if args.keep:
        os.makedirs(args.keep, exist_ok=True)
        tmp = os.path.abspath(args.keep)
        cleanup = None
    else:
        cleanup = tempfile.TemporaryDirectory(prefix="memlens-bench-")
        tmp = cleanup.name
    failed = []
    results = []
    try:
        gen = build(args, tmp)
        memlens = os.path.join(REPO, "target", "release", "memlens")
        print(f"memlens: {memlens}; generator: workloads/gen built with Go {args.gen_go}; "
              f"inputs in {tmp}; {os.cpu_count()} CPUs", flush=True)
        for name, fn in (("1", part1), ("2", part2), ("3", part3)):
            if name not in parts:
                continue
            try:
                fn(memlens, gen, tmp, args, results)
            except (SideFailed, subprocess.CalledProcessError, subprocess.TimeoutExpired,
                    OSError, ValueError) as e:
                print(f"\n[{name}] FAILED: {e}")
                failed.append(name)
            sys.stdout.flush()
    finally:
        if cleanup:
            cleanup.cleanup()
    print("\nsummary")
    for goal, ok, value in results:
        print(f"  {goal:<40} {value:>12}  {verdict(ok)}")
    for name in failed:
        print(f"  part {name}: a side FAILED to run")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
