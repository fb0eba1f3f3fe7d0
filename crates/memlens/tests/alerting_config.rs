//! The `[alerting]` table on the real binary: `watch --print-config` shows
//! it and reads back the same; an unknown alert name or a negative `for` is
//! one line naming the key, exit 1, before the agent touches anything.

use memlens_testkit::TempDir;

#[path = "common/cli.rs"]
mod cli;
use cli::{memlens, memlens_refuses};

fn print_config(dir: &TempDir, name: &str, toml: &str) -> Vec<String> {
    let file = dir.join(name);
    std::fs::write(&file, toml).unwrap();
    let path = file.to_str().unwrap();
    vec![
        "watch".into(),
        "--config".into(),
        path.into(),
        "--data".into(),
        dir.join("never-created").to_str().unwrap().into(),
        "--print-config".into(),
    ]
}

#[test]
fn alerting_is_printed_and_bad_names_and_durations_are_refused() {
    let dir = TempDir::new("alerting-config");
    let good = "[alerting]\nalertmanager_url = \"http://127.0.0.1:9093\"\n\
                hold = \"30s\"\nqueue_capacity = 8\n\
                [alerting.for]\nMemoryFillingUp = \"2m\"\n";
    let args = print_config(&dir, "good.toml", good);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let printed = memlens(&args);
    for line in [
        "[alerting]",
        "alertmanager_url = \"http://127.0.0.1:9093\"",
        "hold = \"30s\"",
        "resend_interval = \"1m\"",
        "queue_capacity = 8",
        "[alerting.for]",
        "MemoryFillingUp = \"2m\"",
    ] {
        assert!(printed.lines().any(|l| l == line), "{line} in:\n{printed}");
    }
    let again = print_config(&dir, "again.toml", &printed);
    let again: Vec<&str> = again.iter().map(String::as_str).collect();
    assert_eq!(memlens(&again), printed);
    for (name, toml, wanted) in [
        (
            "unknown.toml",
            "[alerting.for]\nMemoryFillingUpp = \"1m\"\n",
            "alerting.for MemoryFillingUpp: no such alert",
        ),
        (
            "negative.toml",
            "[alerting.for]\nMemoryOOMKilled = \"-30s\"\n",
            "alerting.for MemoryOOMKilled: \"-30s\" is negative",
        ),
        (
            "negative-number.toml",
            "[alerting.for]\nMemoryNearLimit = -1\n",
            "alerting.for MemoryNearLimit: \"-1\" is negative",
        ),
        (
            "typo.toml",
            "[alerting]\nwebhook = \"http://127.0.0.1:1/\"\n",
            "unknown field `webhook`",
        ),
    ] {
        let args = print_config(&dir, name, toml);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let line = memlens_refuses(&args);
        assert!(line.contains(wanted), "{name}: {line}");
    }
    assert!(!dir.join("never-created").exists());
}
