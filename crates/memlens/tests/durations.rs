//! Durations on the real binary: every duration flag in every form (units,
//! fractions, bare seconds), the agent's config file in the new and the old
//! form, `--print-config` reading back, and the one-line errors naming the
//! flag or key and the value.
//!
//! Exact values are checked through `watch --print-config` (what was parsed,
//! printed back); the commands that wait (`snapshot --every`, `diagnose
//! --window`) are checked with a wall-clock lower bound only: a sleep never
//! ends early, so it holds on any machine however loaded, and tells a
//! duration read in the wrong unit (`500ms` as 500 ns) from the right one.

use serde_json::Value;
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[path = "common/cli.rs"]
mod cli;
use cli::{memlens, memlens_json, memlens_refuses};

/// A fresh directory for this test (removed at the end of the test that made it).
fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("memlens-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The value of `key` (a top-level or `[table]` key) in printed TOML.
fn printed(config: &str, key: &str) -> String {
    config
        .lines()
        .find_map(|line| line.strip_prefix(&format!("{key} = ")))
        .unwrap_or_else(|| panic!("no {key} in\n{config}"))
        .to_string()
}

#[test]
fn watch_flags_take_every_form_and_print_them_back() {
    let cases = [
        ("--interval", "1m30s", "1m30s"),
        ("--interval", "90", "1m30s"),
        ("--interval", "0.25", "250ms"),
        ("--interval", "1.5s", "1s500ms"),
        ("--interval", "100ms", "100ms"),
        ("--interval", "2h", "2h"),
        ("--runtime-interval", "1h30m", "1h30m"),
        ("--runtime-interval", "0.5h", "30m"),
        ("--profile-interval", "1d", "1d"),
        ("--profile-interval", "1w", "7d"),
        ("--profile-interval", "250000us", "250ms"),
        ("--profile-interval", "90000µs", "90ms"),
    ];
    for (flag, value, expected) in cases {
        let config = memlens(&["watch", "--print-config", flag, value]);
        // The key is the flag's name: --runtime-interval sets runtime_interval.
        let key = flag.trim_start_matches('-').replace('-', "_");
        let shown = printed(&config, &key);
        assert_eq!(shown, format!("{expected:?}"), "{flag} {value}");
    }
    // `--flag=VALUE` and the defaults.
    let config = memlens(&["watch", "--print-config", "--interval=2m"]);
    assert_eq!(printed(&config, "interval"), "\"2m\"");
    let config = memlens(&["watch", "--print-config"]);
    assert_eq!(printed(&config, "runtime_interval"), "\"30s\"");
    assert_eq!(printed(&config, "profile_interval"), "\"5m\"");
}

#[test]
fn config_files_new_and_old_print_back_and_read_back_the_same() {
    let dir = temp_dir("durations-config");
    let new = dir.join("new.toml");
    std::fs::write(
        &new,
        "interval = \"2s\"\nruntime_interval = 45\nprofile_interval = \"1h30m\"\n\
         [fetch]\nconnect_timeout = \"500ms\"\ntimeout = 2.5\n\
         [retention]\nmax_age = \"3d12h\"\n\
         [remote_write]\nurl = \"http://127.0.0.1:9/api/v1/write\"\n\
         timeout = \"5s\"\nmax_backoff = \"1m\"\nflush_timeout = \"3s\"\nmax_buffer_age = \"2h\"\n",
    )
    .unwrap();
    let old = dir.join("old.toml");
    std::fs::write(
        &old,
        "interval_seconds = 2\nruntime_interval_seconds = 45\nprofile_interval_seconds = 5400\n\
         [fetch]\nconnect_timeout_seconds = 0.5\ntimeout_seconds = 2.5\n\
         [retention]\nmax_age_days = 3.5\n\
         [remote_write]\nurl = \"http://127.0.0.1:9/api/v1/write\"\n\
         timeout_seconds = 5\nmax_backoff_seconds = 60\nflush_timeout_seconds = 3\n\
         max_buffer_age_seconds = 7200\n",
    )
    .unwrap();
    let from_new = memlens(&["watch", "--print-config", "--config", new.to_str().unwrap()]);
    let from_old = memlens(&["watch", "--print-config", "--config", old.to_str().unwrap()]);
    assert_eq!(from_new, from_old, "the old keys mean the same");
    for (key, expected) in [
        ("interval", "\"2s\""),
        ("runtime_interval", "\"45s\""),
        ("profile_interval", "\"1h30m\""),
        ("connect_timeout", "\"500ms\""),
        ("timeout", "\"2s500ms\""),
        ("max_age", "\"3d12h\""),
        ("max_backoff", "\"1m\""),
        ("flush_timeout", "\"3s\""),
        ("max_buffer_age", "\"2h\""),
    ] {
        assert_eq!(printed(&from_new, key), expected, "{key}");
    }
    // Printed, saved and read again: the same config. A flag still wins.
    let again = dir.join("printed.toml");
    std::fs::write(&again, &from_new).unwrap();
    let reread = memlens(&[
        "watch",
        "--print-config",
        "--config",
        again.to_str().unwrap(),
    ]);
    assert_eq!(reread, from_new);
    let overridden = memlens(&[
        "watch",
        "--print-config",
        "--config",
        again.to_str().unwrap(),
        "--interval",
        "750ms",
    ]);
    assert_eq!(printed(&overridden, "interval"), "\"750ms\"");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Runs `memlens COMMAND_LINE` (words split at spaces; it must succeed):
/// stdout, and the wall-clock time from before the start to after the exit.
fn timed(command_line: &str) -> (String, Duration) {
    let args: Vec<&str> = command_line.split(' ').collect();
    let started = Instant::now();
    let out = memlens(&args);
    (out, started.elapsed())
}

#[test]
fn snapshot_every_waits_its_interval() {
    let pid = std::process::id().to_string();
    for every in ["500ms", "0.5", "0.5s"] {
        let (out, took) = timed(&format!(
            "snapshot --pid {pid} --json --every {every} --count 2 --pss-max-age 1m30s"
        ));
        let lines: Vec<Value> = out
            .lines()
            .map(|l| serde_json::from_str(l).expect("a JSON line"))
            .collect();
        assert_eq!(lines.len(), 2, "--every {every} --count 2: {out}");
        assert!(
            took >= Duration::from_millis(500),
            "--every {every}: two snapshots {took:?} apart at the least"
        );
    }
}

#[test]
fn diagnose_window_and_history_take_durations() {
    let pid = std::process::id().to_string();
    for window in ["1s500ms", "1.5s", "1.5"] {
        let (out, took) = timed(&format!(
            "diagnose --pid {pid} --window {window} --no-history --no-profiles --json"
        ));
        let report: Value = serde_json::from_str(&out).expect("diagnose --json");
        assert_eq!(report["window_source"], "live", "--window {window}");
        assert!(
            took >= Duration::from_millis(1_500),
            "--window {window}: observed for {took:?}"
        );
    }
    // A history lookback in units: an explicit store that does not exist is
    // an error naming it, after --history was read.
    let dir = temp_dir("durations-no-store");
    let missing = dir.join("none");
    let err = memlens_refuses(&[
        "diagnose",
        "--pid",
        &pid,
        "--history",
        "1h30m",
        "--store",
        missing.to_str().unwrap(),
        "--no-profiles",
        "--window",
        "0",
    ]);
    assert!(err.contains(missing.to_str().unwrap()), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn history_from_takes_the_same_durations() {
    let dir = temp_dir("durations-history");
    let data = dir.to_str().unwrap();
    let pid = std::process::id().to_string();
    memlens(&[
        "watch",
        "--cycles",
        "2",
        "--interval",
        "200ms",
        "--no-profiles",
        "--quiet",
        "--pid",
        &pid,
        "--data",
        data,
    ]);
    let points = |from: &str, to: &str| -> usize {
        let json = memlens_json(&[
            "history",
            "--data",
            data,
            "--pid",
            &pid,
            "--metric",
            "rss_bytes",
            "--json",
            "--from",
            from,
            "--to",
            to,
        ]);
        json.as_array()
            .unwrap()
            .iter()
            .flat_map(|p| p["series"].as_array().unwrap())
            .map(|s| s["points"].as_array().unwrap().len())
            .sum()
    };
    assert_eq!(points("-1h30m", "now"), 2, "both cycles since 1h30m ago");
    assert_eq!(points("-2d", "-1d12h"), 0, "nothing a day and a half ago");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_durations_are_one_line_naming_the_flag_and_the_value() {
    // (command, flag, value, how the message shows the value: quoted as
    // given when it does not parse, as a duration when it is out of range).
    let cases = [
        ("watch --print-config", "--interval", "5x", None),
        ("watch --print-config", "--runtime-interval", "-1s", None),
        (
            "watch --print-config",
            "--profile-interval",
            "0",
            Some("0s"),
        ),
        ("watch --print-config", "--interval", "50ms", Some("50ms")),
        ("snapshot", "--every", "1h30", None),
        ("snapshot", "--every", "0s", Some("0s")),
        ("snapshot --every 1", "--pss-max-age", "30m1h", None),
        ("diagnose", "--window", "1.5.s", None),
        ("diagnose", "--window", "2h", Some("2h")),
        ("diagnose", "--history", "0", Some("0s")),
        ("advise --pid 1", "--history", "1 h", None),
        ("advise --pid 1", "--window", "soon", None),
        ("history --pid 1", "--from", "-2x", None),
        ("profiles -o /dev/null", "--at", "-3q", None),
    ];
    for (command, flag, value, shown) in cases {
        let mut args: Vec<&str> = command.split(' ').collect();
        args.extend([flag, value]);
        let err = memlens_refuses(&args);
        let shown = shown.map_or(format!("{value:?}"), str::to_string);
        assert!(
            err.contains(flag) && err.contains(&shown),
            "{args:?}: names {flag} and {shown}: {err}"
        );
    }
    let err = memlens_refuses(&["watch", "--print-config", "--interval", "5x"]);
    assert_eq!(
        err,
        "memlens: --interval: \"5x\" is not a duration: \"x\" is not a unit \
         (use 500ms, 5s, 2m, 1h30m or seconds)"
    );
    // A config file: the file, the key and the value.
    let dir = temp_dir("durations-bad-config");
    let file = dir.join("bad.toml");
    std::fs::write(&file, "[fetch]\ntimeout = \"10 s\"\n").unwrap();
    let err = memlens_refuses(&[
        "watch",
        "--print-config",
        "--config",
        file.to_str().unwrap(),
    ]);
    for part in [
        file.to_str().unwrap(),
        "timeout",
        "\"10 s\" is not a duration",
    ] {
        assert!(err.contains(part), "names {part}: {err}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn help_says_the_syntax_once_and_no_default_twice() {
    for command in [
        "watch", "snapshot", "diagnose", "advise", "history", "profiles", "report",
    ] {
        let help = memlens(&[command, "--help"]);
        assert_eq!(
            help.matches("DURATION: ").count(),
            1,
            "{command} --help explains DURATION once:\n{help}"
        );
    }
    for command in [
        "snapshot",
        "heap",
        "flame",
        "goroutines",
        "runtime",
        "watch",
        "history",
        "query",
        "replay",
        "profiles",
        "diagnose",
        "advise",
        "report",
    ] {
        let help = memlens(&[command, "--help"]);
        for line in help.lines() {
            assert!(
                line.matches("[default:").count() <= 1,
                "{command} --help: {line}"
            );
        }
    }
    let help = memlens(&["--help"]);
    assert!(!help.contains("today:"), "{help}");
}
