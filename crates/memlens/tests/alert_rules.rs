//! The generated alerting files checked by the real tools: `promtool check
//! rules` and `promtool test rules` (Debian's prometheus) on both namings,
//! with the default thresholds and with changed ones; `amtool check-config`
//! (Debian's prometheus-alertmanager) on the Alertmanager config; every
//! Grafana panel query as PromQL, and the dashboard round-tripped through
//! Grafana's own model (PyPI's grafana-foundation-sdk, from scripts/env.sh). The generated tests must be able to fail:
//! rules made with other thresholds than their tests fail them.

use std::path::Path;
use std::process::{Command, Output};

#[path = "common/cli.rs"]
mod cli;
use cli::memlens;

#[path = "common/alertmanager.rs"]
mod alertmanager;
use alertmanager::Alertmanager;

#[path = "common/grafana.rs"]
mod grafana;
use grafana::{dashboard, panel_queries};

use memlens_testkit::{free_loopback_port, http_get, ChildGuard, TempDir};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

const PROMTOOL: &str = "/usr/bin/promtool";
const AMTOOL: &str = "/usr/bin/amtool";

fn tool(path: &str, package: &str) -> &'static str {
    assert!(
        Path::new(path).exists(),
        "{path} missing: install the Debian package {package}"
    );
    if path == PROMTOOL {
        PROMTOOL
    } else {
        AMTOOL
    }
}

fn run(program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run {program}: {e}"))
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Writes the rules and the tests of one naming into `dir` (with `config`
/// when given) and returns (rule file, test file).
fn generate(dir: &TempDir, standard: bool, config: Option<&Path>, tag: &str) -> (String, String) {
    let rules = dir.join(&format!("{tag}-rules.yml"));
    let tests = dir.join(&format!("{tag}-tests.yml"));
    let rule_name = format!("{tag}-rules.yml");
    let mut base = vec!["rules".to_string()];
    if standard {
        base.push("--standard-names".to_string());
    }
    if let Some(config) = config {
        base.push("--config".to_string());
        base.push(config.display().to_string());
    }
    let mut rule_args = base.clone();
    rule_args.extend(["-o".to_string(), rules.display().to_string()]);
    let mut test_args = base;
    test_args.extend([
        "--tests".to_string(),
        "--rule-file".to_string(),
        rule_name,
        "-o".to_string(),
        tests.display().to_string(),
    ]);
    for args in [rule_args, test_args] {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        memlens(&args);
    }
    (rules.display().to_string(), tests.display().to_string())
}

fn promtool_passes(args: &[&str]) -> String {
    let out = run(tool(PROMTOOL, "prometheus"), args);
    assert!(out.status.success(), "promtool {args:?}:\n{}", text(&out));
    text(&out)
}

#[test]
fn rules_pass_promtool_check_and_their_generated_tests() {
    let dir = TempDir::new("alert-rules");
    for (standard, tag) in [(false, "memlens"), (true, "standard")] {
        let (rules, tests) = generate(&dir, standard, None, tag);
        let checked = promtool_passes(&["check", "rules", &rules]);
        assert!(checked.contains("SUCCESS"), "{checked}");
        let tested = promtool_passes(&["test", "rules", &tests]);
        eprintln!("{tag}: {}", tested.trim());
    }
}

#[test]
fn changed_thresholds_reach_both_the_rules_and_their_tests() {
    let dir = TempDir::new("alert-config");
    let config = dir.join("memlens.toml");
    // A longer trend window and time left, longer `for`s: the leak of the
    // tests is killed later and every check comes later.
    std::fs::write(
        &config,
        "[alerts]\ntrend_window = \"45m\"\ncritical_time_left = \"15m\"\n\
         warning_time_left = \"40m\"\nfilling_up_for = \"2m\"\nnear_limit_for = \"10m\"\n\
         settings_for = \"20m\"\nfinding_for = \"1m\"\n",
    )
    .unwrap();
    for (standard, tag) in [(false, "memlens"), (true, "standard")] {
        let (rules, tests) = generate(&dir, standard, Some(&config), tag);
        let text = std::fs::read_to_string(&rules).unwrap();
        if standard {
            assert!(text.contains("[45m]") && text.contains("<= 900"), "{text}");
        } else {
            assert!(text.contains("for: \"20m\""), "{text}");
        }
        promtool_passes(&["check", "rules", &rules]);
        promtool_passes(&["test", "rules", &tests]);
    }
}

#[test]
fn the_generated_tests_fail_rules_made_with_other_thresholds() {
    let dir = TempDir::new("alert-fail");
    let strict = dir.join("strict.toml");
    // Near limit from 80 % with 20 % of the limit required as headroom: the
    // healthy plateau at 85 % must now fire, which its quiet test forbids; a `for`
    // of 30 minutes on findings misses every firing check of memlens names.
    std::fs::write(
        &strict,
        "[alerts]\nnear_limit_ratio = 0.8\nmin_headroom_ratio = 0.2\nfinding_for = \"30m\"\n",
    )
    .unwrap();
    for (standard, tag, failing) in [
        (true, "standard", "plateau"),
        (false, "memlens", "MemoryNearLimit"),
    ] {
        let (_, tests) = generate(&dir, standard, None, tag);
        let (strict_rules, _) = generate(&dir, standard, Some(&strict), &format!("{tag}-strict"));
        std::fs::copy(&strict_rules, dir.join(&format!("{tag}-rules.yml"))).unwrap();
        let out = run(tool(PROMTOOL, "prometheus"), &["test", "rules", &tests]);
        let said = text(&out);
        assert!(
            !out.status.success(),
            "{tag}: the tests passed rules they must fail:\n{said}"
        );
        assert!(
            said.contains(failing),
            "{tag}: expected a failure about {failing}:\n{said}"
        );
    }
}

#[test]
fn the_alertmanager_config_passes_amtool() {
    let dir = TempDir::new("alertmanager");
    let file = dir.join("alertmanager.yml");
    memlens(&["alertmanager-config", "-o", file.to_str().unwrap()]);
    let out = run(
        tool(AMTOOL, "prometheus-alertmanager"),
        &["check-config", file.to_str().unwrap()],
    );
    let said = text(&out);
    assert!(out.status.success(), "amtool check-config:\n{said}");
    assert!(said.contains("2 inhibit rules"), "{said}");
}

#[test]
fn every_grafana_panel_query_is_valid_promql() {
    let dashboard = dashboard();
    assert!(dashboard["schemaVersion"].as_u64().is_some());
    let variables: Vec<&str> = dashboard["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v["name"].as_str())
        .collect();
    for name in ["datasource", "host", "process", "cgroup"] {
        assert!(
            variables.contains(&name),
            "no variable {name}: {variables:?}"
        );
    }
    let mut rules = String::from("groups:\n- name: grafana-panels\n  rules:\n");
    let queries = panel_queries(&dashboard);
    for (i, expr) in queries.iter().enumerate() {
        assert!(!expr.contains('$'), "a variable left in {expr}");
        rules.push_str(&format!(
            "  - record: grafana:panel_{i}\n    expr: {}\n",
            serde_json::to_string(expr).unwrap()
        ));
    }
    let count = queries.len();
    let dir = TempDir::new("grafana");
    let file = dir.join("panels.yml");
    std::fs::write(&file, &rules).unwrap();
    let checked = promtool_passes(&["check", "rules", file.to_str().unwrap()]);
    assert!(
        checked.contains(&format!("{count} rules found")),
        "{checked}"
    );
}

/// Loads `json` into Grafana's dashboard model and dumps it again; returns
/// the differences (none when it round-trips unchanged).
fn grafana_model_differences(json: &str) -> String {
    const SCRIPT: &str = r#"
import json, sys
from grafana_foundation_sdk.models.dashboard import Dashboard
from grafana_foundation_sdk.cog.encoder import JSONEncoder
original = json.load(sys.stdin)
again = json.loads(json.dumps(Dashboard.from_json(original), cls=JSONEncoder))
def diff(a, b, path):
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            if k not in a: print("added by the model:", path + "." + k)
            elif k not in b: print("dropped by the model:", path + "." + k)
            else: diff(a[k], b[k], path + "." + k)
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b)): diff(x, y, "%s[%d]" % (path, i))
    elif a != b: print("changed by the model:", path, json.dumps(a), "->", json.dumps(b))
diff(original, again, "")
"#;
    let mut child = Command::new("python3")
        .args(["-c", SCRIPT])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run python3");
    use std::io::Write as _;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(json.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "python3 with grafana-foundation-sdk (scripts/env.sh installs it):\n{}",
        text(&out)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_dashboard_round_trips_unchanged_through_grafanas_model() {
    let json = memlens(&["grafana"]);
    let differences = grafana_model_differences(&json);
    assert!(differences.is_empty(), "{differences}");
    // A misspelled key is caught: the model drops it.
    let misspelled = json.replacen("\"gridPos\"", "\"gridpos\"", 1);
    assert_ne!(misspelled, json);
    let differences = grafana_model_differences(&misspelled);
    assert!(differences.contains("gridpos"), "{differences}");
}

/// The alerts a real Alertmanager running the generated config holds,
/// after `amtool alert add` gave it `alerts` (label sets): the `name` label
/// of each one it says is inhibited.
fn inhibited_by_alertmanager(dir: &TempDir, alerts: &[&[&str]]) -> BTreeSet<String> {
    let alertmanager = Alertmanager::start(dir);
    let addr = &alertmanager.addr;
    let deadline = Instant::now() + Duration::from_secs(30);
    let url = format!("--alertmanager.url=http://{addr}");
    for labels in alerts {
        let mut args = vec!["alert", "add", url.as_str()];
        args.extend_from_slice(labels);
        let out = run(tool(AMTOOL, "prometheus-alertmanager"), &args);
        assert!(out.status.success(), "amtool {args:?}: {}", text(&out));
    }
    // Alertmanager works out inhibition as it answers: poll until it holds
    // every alert.
    loop {
        let held = alertmanager.alerts();
        if held.len() == alerts.len() {
            return held
                .iter()
                .filter(|a| {
                    a["status"]["inhibitedBy"]
                        .as_array()
                        .is_some_and(|i| !i.is_empty())
                })
                .map(|a| a["labels"]["name"].as_str().unwrap_or("?").to_string())
                .collect();
        }
        assert!(Instant::now() < deadline, "Alertmanager holds {held:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_real_alertmanager_inhibits_as_the_config_says_and_never_on_missing_labels() {
    let dir = TempDir::new("alertmanager-live");
    let alerts: [&[&str]; 8] = [
        &[
            "name=a-critical",
            "alertname=MemoryFillingUp",
            "severity=critical",
            "target=cgroup:/a",
            "cgroup=/a",
        ],
        &[
            "name=a-warning",
            "alertname=MemoryFillingUp",
            "severity=warning",
            "target=cgroup:/a",
            "cgroup=/a",
        ],
        &[
            "name=b-warning",
            "alertname=MemoryFillingUp",
            "severity=warning",
            "target=cgroup:/b",
            "cgroup=/b",
        ],
        &["name=bare-critical", "alertname=Bare", "severity=critical"],
        &["name=bare-warning", "alertname=Bare", "severity=warning"],
        &[
            "name=c-killed",
            "alertname=MemoryOOMKilled",
            "severity=critical",
            "target=process:1:2",
            "cgroup=/c",
        ],
        &[
            "name=c-near",
            "alertname=MemoryNearLimit",
            "severity=warning",
            "target=cgroup:/c",
            "cgroup=/c",
        ],
        &[
            "name=d-near",
            "alertname=MemoryNearLimit",
            "severity=warning",
            "target=cgroup:/d",
            "cgroup=/d",
        ],
    ];
    let inhibited = inhibited_by_alertmanager(&dir, &alerts);
    let expected: BTreeSet<String> = ["a-warning", "c-near"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(inhibited, expected);
}

/// Every `node_*`, `process_*` and `go_*` name the standard-names rules
/// read, except those newer than Debian's node-exporter (its client_golang
/// predates them), is a family of a real node-exporter's exposition (its
/// own node_* and client_golang's go_* and process_*). cAdvisor's
/// `container_*` names cannot be checked here: Debian has no cAdvisor.
#[test]
fn standard_names_are_real_node_exporter_and_client_golang_families() {
    // client_golang serves these by default from v1.20 (2024) on, and the
    // GC CPU classes only with its runtime metrics collector option.
    const NEWER: [&str; 4] = [
        "go_gc_gomemlimit_bytes",
        "go_gc_gogc_percent",
        "go_cpu_classes_gc_total_cpu_seconds_total",
        "go_cpu_classes_total_cpu_seconds_total",
    ];
    let rules = memlens(&["rules", "--standard-names"]);
    let mut names = BTreeSet::new();
    // Recorded names (`memlens:...`) are the rules' own.
    for word in rules.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':')) {
        if ["node_", "process_", "go_"]
            .iter()
            .any(|p| word.starts_with(p))
        {
            names.insert(word.to_string());
        }
    }
    assert!(names.len() >= 8, "{names:?}");
    let addr = format!("127.0.0.1:{}", free_loopback_port());
    let _exporter = ChildGuard(
        Command::new("/usr/bin/prometheus-node-exporter")
            .arg(format!("--web.listen-address={addr}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start prometheus-node-exporter (Debian package prometheus-node-exporter)"),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let exposition = loop {
        if let Ok(text) = http_get(&addr, "/metrics") {
            break text;
        }
        assert!(Instant::now() < deadline, "node-exporter never answered");
        std::thread::sleep(Duration::from_millis(100));
    };
    let missing: Vec<&String> = names
        .iter()
        .filter(|n| !NEWER.contains(&n.as_str()))
        .filter(|n| !exposition.contains(&format!("\n# TYPE {n} ")))
        .collect();
    assert!(
        missing.is_empty(),
        "not in node-exporter's /metrics: {missing:?}"
    );
}
