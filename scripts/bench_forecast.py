#!/usr/bin/env python3
"""Forecast quality of memlens's time-to-OOM against real OOM kills, in one run.

Runs every case at once, each in its own cgroup-v1 memory cgroup created here
(under /sys/fs/cgroup/memory/memlens-bench-forecast-PID/, removed at the end,
also on failure or Ctrl-C), recorded by ONE `memlens watch --interval 1`
(--no-profiles --smaps never, restricted to those cgroups):

- Go heap leaks (workloads/, heap-leak mode, built with Go 1.19 and 1.27) that
  the kernel kills after about 1, 3, 10 and 30 minutes, each plain and under a
  batch sawtooth (--spike-mib); the leak starts --leak-after (30 s) after the
  process, so the trend has a flat history before it;
- healthy shapes that must not be killed: steady, alloc-churn, a start-up ramp,
  a batch sawtooth without a leak, a heap that grows then levels off under the
  limit (--leak-max-mib);
- a real third-party Go service: Debian victoria-metrics in its own cgroup,
  ingesting ever more new series this script pushes over its import API on
  127.0.0.1 (bounded in count and time).

The kill time is the kernel's: the cgroup's memory.oom_control `oom_kill`
counter, polled every 100 ms. Then the history is replayed with memlens's
detectors (`memlens replay --json --step S`) thinned to 1 s (as recorded),
5 s and 15 s, and the seeds' naive rule (EWMA alpha 0.15 of the cgroup's
usage, slope over the last 3 smoothed points, time to the limit = (limit -
ewma) / slope, warning under 30 min, critical under 15 min, fire on the first
crossing) is run over the same thinned samples (scripts/forecast_score.py).

The first line printed is the command to rerun. With --keep DIR the run's
history and bench.json stay in DIR and `--replay DIR [--memlens PATH]` scores
them again with any build, without running the cases.

Usage: scripts/bench_forecast.py [--quick] [--cases a,b] [--memlens PATH]
           [--steps 1,5,15] [--limit-mib 256] [--leak-after S] [--keep DIR]
           [--replay DIR] [--list]
"""
import argparse
import importlib.util
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

sys.dont_write_bytecode = True  # no __pycache__ in the tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import forecast_score  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CGROUP_ROOT = "/sys/fs/cgroup/memory"
VICTORIA = "/usr/bin/victoria-metrics"
GO_ENV = {"GOTOOLCHAIN": "local", "GOFLAGS": "-mod=mod", "CGO_ENABLED": "0"}
MIB = 1 << 20
TICK_SECONDS = 0.25
GARBAGE_KIB = 1024           # per tick: 4 MiB/s of garbage, GC cycles all along
LIVE_AT_KILL = 0.6           # the leaked bytes at the kill, as a share of the limit
HEALTHY_SECONDS = 360        # healthy shapes run at least this long (growth needs 5 min)
VM_SERIES_PER_SECOND = 4500  # new series pushed to victoria-metrics every second
VM_MAX_SERIES = 5_000_000


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def now_ms():
    return int(time.time() * 1000)


def go127_default():
    spec = importlib.util.find_spec("go")
    if spec and spec.origin:
        return os.path.join(os.path.dirname(spec.origin), "bin", "go")
    return "/root/.pyenv/versions/3.11.7/lib/python3.11/site-packages/go/bin/go"


GO = {"1.19": os.environ.get("MEMLENS_GO119", "/usr/lib/go-1.19/bin/go"),
      "1.27": os.environ.get("MEMLENS_GO127") or go127_default()}


def leak_case(name, go, seconds, spike_mib, limit_mib):
    """A heap leak planned to be killed `seconds` after it starts. The GC
    sawtooth on top of the live heap makes the kill come when the leak plus a
    spike reach about 60 % of the limit (measured here: 57-74 % at 256 MiB,
    Go 1.19 and 1.27, 4 MiB/s of garbage); the table shows the real time."""
    retained_mib = max(LIVE_AT_KILL * limit_mib - spike_mib, 8)
    kib = max(1, round(retained_mib * 1024 / (seconds / TICK_SECONDS)))
    args = ["--mode=heap-leak", f"--leak-kib={kib}", f"--garbage-kib={GARBAGE_KIB}"]
    if spike_mib:
        args += [f"--spike-mib={spike_mib}", "--spike-every=30s"]
    return {"name": name, "kind": "go", "go": go, "leak": True, "planned_seconds": seconds,
            "args": args, "leak_after": True}


def healthy_case(name, go, args, level_off=False):
    return {"name": name, "kind": "go", "go": go, "leak": False, "planned_seconds": 0,
            "args": args, "level_off": level_off}


def all_cases(limit_mib):
    cases = []
    for seconds, plain_go, saw_go in ((60, "1.27", "1.19"), (180, "1.19", "1.27"),
                                      (600, "1.27", "1.19"), (1800, "1.19", "1.27")):
        label = f"{seconds // 60}m"
        cases.append(leak_case(f"leak-{label}", plain_go, seconds, 0, limit_mib))
        cases.append(leak_case(f"leak-{label}-saw", saw_go, seconds, 40, limit_mib))
    cases.append({"name": "vm-series", "kind": "vm", "go": "vm", "leak": True,
                  "planned_seconds": 180, "args": []})
    ticks = int(40 / TICK_SECONDS)
    cases += [
        healthy_case("steady", "1.27", ["--mode=steady", "--live-mib=64", "--alloc-mib-per-tick=4"]),
        healthy_case("churn", "1.19", ["--mode=alloc-churn", "--alloc-mib-per-tick=4"]),
        # 60 MiB kept over the first 40 s, then flat: a cache warming up.
        healthy_case("ramp", "1.27", ["--mode=heap-leak", f"--leak-kib={60 * 1024 // ticks}",
                                      "--leak-max-mib=60", f"--garbage-kib={GARBAGE_KIB}"]),
        # A batch job's 80 MiB working set every minute, no leak.
        healthy_case("batch", "1.19", ["--mode=heap-leak", "--leak-kib=0", "--spike-mib=80",
                                       "--spike-every=60s", f"--garbage-kib={GARBAGE_KIB}"]),
        # 30 s flat, 90 MiB kept over 150 s (RSS ~ 2 x 90 MiB + base, ~75 % of
        # 256 MiB), then flat: growth that levels off under the limit.
        healthy_case("level-off", "1.27",
                     ["--mode=heap-leak", "--leak-after=30s", "--leak-max-mib=90",
                      f"--leak-kib={90 * 1024 // int(150 / TICK_SECONDS)}",
                      f"--garbage-kib={GARBAGE_KIB}"], level_off=True),
    ]
    return cases


class Cgroups:
    """The memory cgroups of this run, under one parent; removes them all."""

    def __init__(self):
        self.name = f"memlens-bench-forecast-{os.getpid()}"
        self.parent = os.path.join(CGROUP_ROOT, self.name)
        self.children = []
        os.mkdir(self.parent)

    def create(self, case_name, limit_bytes):
        path = os.path.join(self.parent, case_name)
        os.mkdir(path)
        self.children.append(path)
        with open(os.path.join(path, "memory.limit_in_bytes"), "w") as f:
            f.write(str(limit_bytes))
        return path, f"/{self.name}/{case_name}"

    def remove(self):
        for path in self.children + [self.parent]:
            deadline = time.monotonic() + 10
            while os.path.isdir(path):
                for pid in read_pids(path):
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                try:
                    os.rmdir(path)
                except OSError:
                    if time.monotonic() > deadline:
                        log(f"could not remove {path}: remove it by hand")
                        break
                    time.sleep(0.1)


def read_pids(path):
    try:
        with open(os.path.join(path, "cgroup.procs")) as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


def oom_kills(path):
    with open(os.path.join(path, "memory.oom_control")) as f:
        for line in f:
            key, value = line.split()
            if key == "oom_kill":
                return int(value)
    raise RuntimeError(f"{path}/memory.oom_control has no oom_kill counter (kernel < 4.13)")


def start_in_cgroup(path, argv, **kw):
    """Starts argv inside the cgroup at `path`: a shell writes its pid to
    cgroup.procs, then execs argv (same pid)."""
    procs = os.path.join(path, "cgroup.procs")
    return subprocess.Popen(["sh", "-c", 'echo $$ > "$0" && exec "$@"', procs] + argv, **kw)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def build(args, workdir):
    if args.memlens is None:
        log("building memlens: cargo build --release -p memlens")
        subprocess.run(["cargo", "build", "--release", "-p", "memlens"], cwd=REPO, check=True)
        args.memlens = os.path.join(REPO, "target", "release", "memlens")
    binaries = {}
    for version, go in GO.items():
        if not os.path.exists(go):
            sys.exit(f"Go {version} missing at {go} (set MEMLENS_GO{version.replace('.', '')})")
        out = os.path.join(workdir, f"workload-go{version}")
        log(f"building workloads/ with Go {version}: {go}")
        env = dict(os.environ, **GO_ENV)
        subprocess.run([go, "build", "-trimpath", "-o", out, "."], cwd=os.path.join(REPO, "workloads"),
                       env=env, check=True)
        binaries[version] = out
    return binaries


class Case:
    """One running case: its cgroup, process, leak start and kill time."""

    def __init__(self, spec, path, cgroup, limit_bytes):
        self.spec, self.path, self.cgroup, self.limit_bytes = spec, path, cgroup, limit_bytes
        self.proc = None
        self.pids = []
        self.leak_start_ms = None
        self.kill_ms = None
        self.kills_before = oom_kills(path)
        self.deadline = None
        self.stop_pushing = threading.Event()

    def poll(self, t_ms):
        if self.kill_ms is None and oom_kills(self.path) > self.kills_before:
            self.kill_ms = t_ms
            log(f"{self.spec['name']}: OOM-killed by the kernel "
                f"{(t_ms - (self.leak_start_ms or t_ms)) / 1000:.0f} s after the leak started")

    def done(self, t_mono):
        if not self.spec["leak"]:
            return True
        return self.kill_ms is not None or t_mono > self.deadline

    def record(self, end_ms):
        return {"name": self.spec["name"], "go": self.spec["go"], "leak": self.spec["leak"],
                "level_off": self.spec.get("level_off", False),
                "planned_seconds": self.spec["planned_seconds"], "args": self.spec["args"],
                "cgroup": self.cgroup, "limit_bytes": self.limit_bytes, "pids": self.pids,
                "leak_start_ms": self.leak_start_ms, "kill_ms": self.kill_ms, "end_ms": end_ms}


def drain(case, stream):
    for line in stream:
        if line.startswith("LEAK_START") and case.leak_start_ms is None:
            case.leak_start_ms = now_ms()


def start_go(case, binary, args, bound_seconds):
    argv = [binary, f"--tick={TICK_SECONDS * 1000:.0f}ms", f"--duration={bound_seconds}s"]
    argv += case.spec["args"]
    if case.spec.get("leak_after"):
        argv.append(f"--leak-after={args.leak_after}s")
    env = dict(os.environ)
    if not case.spec["leak"]:
        # A healthy shape runs as a configured service does (as the real-kill
        # tests' healthy workloads do): GOMEMLIMIT at 3/4 of its cgroup's
        # limit. Without it `go.gomemlimit_missing` rightly warns.
        env["GOMEMLIMIT"] = f"{args.limit_mib * 3 // 4}MiB"
    case.proc = start_in_cgroup(case.path, argv, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, text=True, env=env)
    case.pids = [case.proc.pid]
    threading.Thread(target=drain, args=(case, case.proc.stdout), daemon=True).start()


def start_vm(case, workdir, args):
    port = free_port()
    data = os.path.join(workdir, "vm-data")
    case.proc = start_in_cgroup(case.path, [VICTORIA, f"-storageDataPath={data}",
                                            f"-httpListenAddr=127.0.0.1:{port}", "-loggerLevel=ERROR"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    case.pids = [case.proc.pid]
    threading.Thread(target=push_series, args=(case, port, args.leak_after), daemon=True).start()


def push_series(case, port, wait_seconds):
    """Waits for victoria-metrics, then after wait_seconds pushes
    VM_SERIES_PER_SECOND new series every second (at most VM_MAX_SERIES, until
    the case's deadline or its kill)."""
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not case.stop_pushing.is_set():
        try:
            urllib.request.urlopen(base + "/health", timeout=2).read()
            break
        except OSError:
            time.sleep(0.2)
    if case.stop_pushing.wait(wait_seconds):
        return
    sent, tick = 0, time.monotonic()
    while sent < VM_MAX_SERIES and not case.stop_pushing.is_set() and case.kill_ms is None:
        if case.leak_start_ms is None:
            case.leak_start_ms = now_ms()
        ts = now_ms()
        body = "".join(f'bench_series{{id="{i}",host="host-{i % 1000}",path="/api/v1/item/{i * 7919}"}} '
                       f"{i} {ts}\n" for i in range(sent, sent + VM_SERIES_PER_SECOND))
        try:
            req = urllib.request.Request(base + "/api/v1/import/prometheus", data=body.encode())
            urllib.request.urlopen(req, timeout=10).read()
        except OSError:
            pass  # killed, or too slow to answer: the kill counter says which
        sent += VM_SERIES_PER_SECOND
        tick += 1.0
        case.stop_pushing.wait(max(0.0, tick - time.monotonic()))


def run_cases(args, specs, binaries, workdir, cgroups):
    limit_bytes = args.limit_mib * MIB
    history = os.path.join(workdir, "history")
    longest = max([s["planned_seconds"] for s in specs if s["leak"]] + [0])
    run_seconds = max(args.leak_after + 2 * longest + 60, HEALTHY_SECONDS)
    cases = []
    for spec in specs:
        path, cgroup = cgroups.create(spec["name"], limit_bytes)
        cases.append(Case(spec, path, cgroup, limit_bytes))
    watch = subprocess.Popen([args.memlens, "watch", "--interval", "1", "--data", history,
                              "--no-profiles", "--smaps", "never", "--quiet",
                              "--cgroup", "/" + cgroups.name], stdin=subprocess.DEVNULL)
    try:
        time.sleep(3)
        if watch.poll() is not None:
            sys.exit(f"memlens watch exited at once ({watch.returncode})")
        start_ms, start = now_ms(), time.monotonic()
        for case in cases:
            spec = case.spec
            case.deadline = start + args.leak_after + 2 * spec["planned_seconds"] + 60
            if spec["kind"] == "vm":
                start_vm(case, workdir, args)
            else:
                start_go(case, binaries[spec["go"]], args, int(run_seconds + 120))
        log(f"{len(cases)} cases started at once; this run lasts up to {run_seconds / 60:.0f} min")
        last_log = start
        while True:
            t_ms, t = now_ms(), time.monotonic()
            for case in cases:
                case.poll(t_ms)
                if case.spec["leak"] and case.kill_ms is None and t > case.deadline and case.proc.poll() is None:
                    log(f"{case.spec['name']}: not killed by its deadline; stopping it")
                    case.stop_pushing.set()
                    case.proc.kill()
            if all(c.done(t) for c in cases) and t - start >= HEALTHY_SECONDS:
                break
            if t - last_log >= 60:
                last_log = t
                left = [c.spec["name"] for c in cases if not c.done(t)]
                log(f"{(t - start) / 60:.0f} min: waiting for {', '.join(left) or 'the healthy shapes'}")
            time.sleep(0.1)
        # One more second of samples after the last kill.
        time.sleep(2)
        end_ms = now_ms()
    finally:
        for case in cases:
            case.stop_pushing.set()
            if case.proc and case.proc.poll() is None:
                case.proc.kill()
                case.proc.wait()
        if watch.poll() is None:
            watch.send_signal(signal.SIGINT)
            try:
                watch.wait(60)
            except subprocess.TimeoutExpired:
                watch.kill()
                watch.wait()
    run = {"start_ms": start_ms, "end_ms": end_ms, "limit_bytes": limit_bytes,
           "leak_after_seconds": args.leak_after, "memlens_recorder": args.memlens,
           "cases": [c.record(end_ms) for c in cases]}
    with open(os.path.join(workdir, "bench.json"), "w") as f:
        json.dump(run, f, indent=1)
    return run


def select(specs, args):
    if args.cases:
        wanted = args.cases.split(",")
        unknown = set(wanted) - {s["name"] for s in specs}
        if unknown:
            sys.exit(f"--cases: unknown {', '.join(sorted(unknown))} (--list shows them)")
        return [s for s in specs if s["name"] in wanted]
    if args.quick:
        return [s for s in specs if s["planned_seconds"] <= 180]
    return specs


def print_goals(goals):
    met = sum(1 for _, ok in goals if ok)
    print(f"\ngoals (issue 14 item 4): {met} of {len(goals)} met")
    for text, ok in goals:
        print(f"  {'met    ' if ok else 'NOT MET'} {text}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="only the cases of at most 3 minutes")
    parser.add_argument("--cases", help="comma-separated case names (--list)")
    parser.add_argument("--list", action="store_true", help="print the cases and exit")
    parser.add_argument("--memlens", help="the memlens binary (default: cargo build --release here)")
    parser.add_argument("--steps", default="1,5,15", help="replay steps in seconds (1 = as recorded)")
    parser.add_argument("--limit-mib", type=int, default=256, help="every case's cgroup limit")
    parser.add_argument("--leak-after", type=int, default=30, help="seconds before a leak starts")
    parser.add_argument("--keep", metavar="DIR", help="keep the history and bench.json in DIR")
    parser.add_argument("--replay", metavar="DIR", help="score a kept run again, running nothing")
    args = parser.parse_args()
    print("rerun: " + shlex.join(["python3", "scripts/bench_forecast.py"] + sys.argv[1:]), flush=True)
    specs = all_cases(args.limit_mib)
    if args.list:
        for s in specs:
            print(f"{s['name']:<14} go {s['go']:<5} planned kill {s['planned_seconds'] or '-':>5} s  "
                  f"{' '.join(s['args'])}")
        return
    # A step is "at least that far apart": 200 ms less, so a 1 s agent's
    # jitter does not turn a 5 s step into 6 s.
    steps = [(s, 0 if s == "1" else int(float(s) * 1000) - 200) for s in args.steps.split(",")]
    if args.replay:
        if args.memlens is None:
            args.memlens = os.path.join(REPO, "target", "release", "memlens")
        with open(os.path.join(args.replay, "bench.json")) as f:
            run = json.load(f)
        report(args, run, os.path.join(args.replay, "history"), steps)
        return
    if os.geteuid() != 0 or not os.path.isdir(CGROUP_ROOT):
        sys.exit(f"needs root and the cgroup-v1 memory controller at {CGROUP_ROOT}")
    specs = select(specs, args)
    if any(s["kind"] == "vm" for s in specs) and not os.path.exists(VICTORIA):
        sys.exit(f"{VICTORIA} missing: apt-get install victoria-metrics")
    # Ctrl-C cleans up even when started in the background (where the shell
    # ignores SIGINT for the job): KeyboardInterrupt runs the finally blocks.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("terminated"))
    signal.signal(signal.SIGHUP, lambda *_: sys.exit("hung up"))
    workdir = args.keep or tempfile.mkdtemp(prefix="memlens-bench-forecast-")
    os.makedirs(workdir, exist_ok=True)
    cgroups = None
    try:
        binaries = build(args, workdir)
        cgroups = Cgroups()
        run = run_cases(args, specs, binaries, workdir, cgroups)
        cgroups.remove()
        cgroups = None
        report(args, run, os.path.join(workdir, "history"), steps)
        if args.keep:
            print(f"\nkept in {workdir}; score again with another build: python3 scripts/bench_forecast.py "
                  f"--replay {shlex.quote(workdir)} --memlens PATH")
    finally:
        if cgroups is not None:
            cgroups.remove()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)


def report(args, run, history, steps):
    out = sys.stdout
    git = subprocess.run(["git", "-C", REPO, "log", "-1", "--format=%h %s"], stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, text=True).stdout.strip()[:80]
    print(f"\nmemlens replaying: {args.memlens} (tree: {git}); {len(run['cases'])} cases, limit "
          f"{run['limit_bytes'] // MIB} MiB each, leaks start {run['leak_after_seconds']} s after their "
          f"process; recorded {(run['end_ms'] - run['start_ms']) / 60000:.1f} min at 1 s", file=out)
    print("lead = kill - first memory.time_to_oom finding after the leak started (any severity), "
          "% of leak start -> kill; crit = the same for the first critical; err = |predicted - "
          "actual kill| / time left at the first critical; range = kill inside "
          "[earliest, latest] at the first critical (n/a: not in the evidence); ivl = median "
          "interval of the thinned samples (s); kill = a time-to-OOM finding active (on) or "
          "none (OFF) when the kernel killed; pre = findings (EWMA: fires) on the case before its "
          "leak began. EWMA: warning < 30 min, critical < 15 min; first = the first sample after the "
          "leak started at which it warns, held = the start of the alarm that then held until the "
          "kill.", file=out)
    goals = forecast_score.score(run, args.memlens, history, steps, out)
    print_goals(goals)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit("interrupted (its cgroups and processes were removed)")
