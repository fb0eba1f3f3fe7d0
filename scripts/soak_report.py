#!/usr/bin/env python3
"""The table of scripts/soak.sh: pass/fail per test function over every run,
the first failure of each (its assertion message) and the machine's load.

Usage: soak_report.py SOAK_DIR [SOAK_DIR...]
       (directories soak.sh wrote: logs/, load.txt; several are summed,
       e.g. soaks of one commit on several days, each with its load)

Reads each run's libtest output (logs/RUN-TARGET.out: `test NAME ... ok`,
`... FAILED` and the `---- NAME stdout ----` sections with the panic message)
and its exit status (.rc). A run that ended without a result for its tests
(killed, timed out, crashed) counts as one failure of `BINARY::<binary>`.
Exit status 1 when anything failed.
"""

import os
import re
import sys
from collections import OrderedDict

RESULT = re.compile(r"^test (\S+) \.\.\. (ok|FAILED|ignored)")
SECTION = re.compile(r"^---- (\S+) stdout ----$")
PANIC = re.compile(r"^thread '[^']*'(?: \(\d+\))? panicked at (\S+):$")
MESSAGE_LINES = 8
MESSAGE_CHARS = 600


def failure_messages(stdout):
    """Test name -> 'file:line: message' from the failures section."""
    messages = {}
    name, lines = None, []
    for line in stdout.splitlines() + ["---- end stdout ----"]:
        section = SECTION.match(line)
        if section or line == "failures:" and name:
            if name:
                messages[name] = summarize(lines)
            name, lines = (section.group(1) if section else None), []
        elif name is not None:
            lines.append(line)
    return messages


def summarize(lines):
    """The panic location and message of a captured failure output."""
    for i, line in enumerate(lines):
        panic = PANIC.match(line)
        if panic:
            body = []
            for text in lines[i + 1:]:
                if text.startswith("note: run with") or text.startswith("stack backtrace"):
                    break
                body.append(text)
            while body and not body[-1].strip():
                body.pop()
            message = "\n".join(body[:MESSAGE_LINES])
            return f"{panic.group(1)}: {message[:MESSAGE_CHARS]}"
    text = "\n".join(l for l in lines if l.strip())
    return text[-MESSAGE_CHARS:] or "(no output)"


def exit_reason(rc, stderr):
    if rc == 124 or rc == 137:
        why = f"exit {rc}: timed out (SOAK_TIMEOUT) and killed"
    elif rc > 128:
        why = f"exit {rc}: killed by signal {rc - 128}"
    else:
        why = f"exit {rc} with no test result"
    tail = "\n".join(stderr.strip().splitlines()[-5:])
    return f"{why}\n{tail}" if tail else why


def load_summary(path):
    samples = []
    for line in open(path):
        parts = line.split()
        if len(parts) == 4:
            samples.append((int(parts[0]), float(parts[1])))
    if not samples:
        return "no load samples"
    ones = [s[1] for s in samples]
    minutes = (samples[-1][0] - samples[0][0]) / 60
    return (
        f"load average (1 min) over {minutes:.0f} min: start {ones[0]:.2f}, end {ones[-1]:.2f}, "
        f"min {min(ones):.2f}, mean {sum(ones) / len(ones):.2f}, max {max(ones):.2f} "
        f"({len(ones)} samples, every 15 s; {os.cpu_count()} cores)"
    )


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    # test -> {"pass": n, "fail": n, "ignored": n, "first": (run, message, logs)}
    table = OrderedDict()
    seconds = {}
    for out in sys.argv[1:]:
        read_soak(out, table, seconds)
    report(sys.argv[1:], table, seconds)
    return 1 if any(r["fail"] for r in table.values()) else 0


def read_soak(out, table, seconds):
    """Adds the runs of one soak directory to `table` and `seconds`."""
    logs = os.path.join(out, "logs")
    if not os.path.isdir(logs):
        sys.exit(f"soak_report.py: {out}: no logs/ directory (not a soak.sh output)")
    names = sorted(n[:-3] for n in os.listdir(logs) if n.endswith(".rc"))
    for name in names:
        run, target = name.split("-", 1)
        target = target.split("+")[0]  # BINARY[--TEST][+COPY]
        binary = target.split("--")[0]
        read = lambda ext: open(os.path.join(logs, name + ext), errors="replace").read()
        stdout, stderr, rc = read(".out"), read(".err"), int(read(".rc").strip() or 1)
        seconds.setdefault(binary, []).append(int(read(".seconds").strip() or 0))
        messages = failure_messages(stdout)
        results = [RESULT.match(l).groups() for l in stdout.splitlines() if RESULT.match(l)]
        finished = "test result:" in stdout
        for test, outcome in results:
            row = table.setdefault(f"{binary}::{test}", {"pass": 0, "fail": 0, "ignored": 0, "first": None})
            if outcome == "ok":
                row["pass"] += 1
            elif outcome == "ignored":
                row["ignored"] += 1
            else:
                row["fail"] += 1
                if row["first"] is None:
                    row["first"] = (int(run), messages.get(test, "(no message)"), logs)
        if rc == 0 and not results:
            rc, stderr = 0, f"ran no test: no test named {target.replace('--', '::')}"
            row = table.setdefault(f"{binary}::<binary>", {"pass": 0, "fail": 0, "ignored": 0, "first": None})
            row["fail"] += 1
            if row["first"] is None:
                row["first"] = (int(run), stderr, logs)
        elif rc != 0 and (not finished or not results):
            row = table.setdefault(f"{binary}::<binary>", {"pass": 0, "fail": 0, "ignored": 0, "first": None})
            row["fail"] += 1
            if row["first"] is None:
                row["first"] = (int(run), exit_reason(rc, stderr), logs)


def report(outs, table, seconds):
    """Prints the table, the wall times, each directory's load and the
    first failure of each failing test."""
    width = max([len(t) for t in table] + [4])
    print()
    print(f"{'test'.ljust(width)}  pass  fail  of")
    for test, row in table.items():
        runs = row["pass"] + row["fail"]
        mark = "" if row["fail"] == 0 else "  <-- FLAKY" if row["pass"] else "  <-- FAILS"
        print(f"{test.ljust(width)}  {row['pass']:4}  {row['fail']:4}  {runs:2}{mark}")
    print()
    print("wall time per run of each binary (s): " + ", ".join(
        f"{b} {min(s)}..{max(s)}" for b, s in sorted(seconds.items())))
    for out in outs:
        where = f"{out}: " if len(outs) > 1 else ""
        print(where + load_summary(os.path.join(out, "load.txt")))
    failed = [(t, r) for t, r in table.items() if r["fail"]]
    for test, row in failed:
        run, message, logs = row["first"]
        print(f"\nFIRST FAILURE of {test} (run {run}, logs in {logs}):")
        print("  " + message.replace("\n", "\n  "))
    passes = sum(r["pass"] for r in table.values())
    fails = sum(r["fail"] for r in table.values())
    print(f"\nsoak: {passes} passed, {fails} failed")


if __name__ == "__main__":
    sys.exit(main())
