use super::*;
use crate::inhibit;

fn cond(name: &str, severity: &str, target: &str, for_ms: i64, hold_ms: i64) -> Condition {
    let labels = [
        ("alertname", name),
        ("severity", severity),
        ("target", target),
        ("cgroup", "/a"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    Condition {
        labels,
        annotations: BTreeMap::new(),
        evidence: Vec::new(),
        profiles: Vec::new(),
        dashboard_url: None,
        for_ms,
        hold_ms,
        outlasts_inhibited: false,
    }
}

/// The kinds of changes, as `kind alertname/severity`.
fn kinds(changes: &[Change]) -> Vec<String> {
    changes
        .iter()
        .map(|c| {
            let (kind, a) = match c {
                Change::Fired(a) => ("fired", a),
                Change::Inhibited(a) => ("inhibited", a),
                Change::Resolved(a) => ("resolved", a),
            };
            format!(
                "{kind} {}/{}",
                a.labels()["alertname"],
                a.labels()["severity"]
            )
        })
        .collect()
}

#[test]
fn an_alert_fires_after_its_for_and_a_break_starts_it_again() {
    let mut alerts = Alerts::new(Vec::new());
    let c = cond("MemoryNearLimit", "warning", "cgroup:/a", 10_000, 0);
    assert!(alerts.evaluate(0, vec![c.clone()]).is_empty());
    assert!(alerts.evaluate(5_000, vec![c.clone()]).is_empty());
    // A break while pending drops it without a word, and the `for` restarts.
    assert!(alerts.evaluate(9_000, vec![]).is_empty());
    assert_eq!(alerts.all().count(), 0);
    assert!(alerts.evaluate(12_000, vec![c.clone()]).is_empty());
    assert!(alerts.evaluate(21_000, vec![c.clone()]).is_empty());
    let fired = alerts.evaluate(22_000, vec![c.clone()]);
    assert_eq!(kinds(&fired), ["fired MemoryNearLimit/warning"]);
    // Firing again is no change.
    assert!(alerts.evaluate(23_000, vec![c]).is_empty());
    assert_eq!(alerts.notified().count(), 1);
}

#[test]
fn a_firing_alert_resolves_only_after_its_hold_without_a_break() {
    let mut alerts = Alerts::new(Vec::new());
    let c = cond("MemoryOOMKilled", "critical", "process:1:2", 0, 30_000);
    assert_eq!(
        kinds(&alerts.evaluate(0, vec![c.clone()])),
        ["fired MemoryOOMKilled/critical"]
    );
    assert!(alerts.evaluate(20_000, vec![]).is_empty());
    // Back within the hold: the hold starts again from here.
    assert!(alerts.evaluate(25_000, vec![c.clone()]).is_empty());
    assert!(alerts.evaluate(50_000, vec![]).is_empty());
    let resolved = alerts.evaluate(55_000, vec![]);
    assert_eq!(kinds(&resolved), ["resolved MemoryOOMKilled/critical"]);
    let Change::Resolved(a) = &resolved[0] else {
        unreachable!()
    };
    assert_eq!(
        (a.firing_since_ms, a.resolved_at_ms),
        (Some(0), Some(55_000))
    );
    assert_eq!(alerts.all().count(), 0);
    // Next time it is a new episode.
    assert_eq!(
        kinds(&alerts.evaluate(60_000, vec![c])),
        ["fired MemoryOOMKilled/critical"]
    );
}

#[test]
fn the_same_labels_twice_are_one_alert_with_the_last_evidence() {
    let mut alerts = Alerts::new(Vec::new());
    let mut a = cond("MemoryGrowing", "warning", "cgroup:/a", 0, 0);
    let mut b = a.clone();
    a.evidence.push(Quantity {
        name: "slope_bytes_per_second".into(),
        value: 1.0,
        unit: "bytes/s".into(),
    });
    b.evidence.push(Quantity {
        name: "slope_bytes_per_second".into(),
        value: 2.0,
        unit: "bytes/s".into(),
    });
    let changes = alerts.evaluate(0, vec![a, b]);
    assert_eq!(kinds(&changes), ["fired MemoryGrowing/warning"]);
    assert_eq!(alerts.all().count(), 1);
    assert_eq!(
        alerts.all().next().unwrap().condition.evidence[0].value,
        2.0
    );
}

#[test]
fn a_critical_inhibits_its_warning_until_it_resolves() {
    let mut alerts = Alerts::new(inhibit::rules());
    let warn = cond("MemoryFillingUp", "warning", "cgroup:/a", 0, 20_000);
    let crit = cond("MemoryFillingUp", "critical", "cgroup:/a", 0, 20_000);
    let other = cond("MemoryFillingUp", "warning", "cgroup:/b", 0, 20_000);
    assert_eq!(
        kinds(&alerts.evaluate(0, vec![warn.clone(), other.clone()])),
        [
            "fired MemoryFillingUp/warning",
            "fired MemoryFillingUp/warning"
        ]
    );
    // The step up: the warning's condition ends as the critical's begins;
    // the warning stays for its hold, silenced.
    let step = alerts.evaluate(1_000, vec![crit.clone(), other.clone()]);
    let mut got = kinds(&step);
    got.sort();
    assert_eq!(
        got,
        [
            "fired MemoryFillingUp/critical",
            "inhibited MemoryFillingUp/warning"
        ]
    );
    let notified: Vec<String> = alerts
        .notified()
        .map(|a| a.labels()["target"].clone() + "/" + &a.labels()["severity"])
        .collect();
    assert_eq!(notified, ["cgroup:/a/critical", "cgroup:/b/warning"]);
    // The inhibited warning resolves after its hold too.
    assert_eq!(
        kinds(&alerts.evaluate(21_000, vec![crit.clone(), other.clone()])),
        ["resolved MemoryFillingUp/warning"]
    );
    // An OOM kill of the cgroup silences the critical; when the kill's
    // alert resolves, what still fires is notified again.
    let kill = cond("MemoryOOMKilled", "critical", "process:7:1", 0, 5_000);
    let k = alerts.evaluate(22_000, vec![crit.clone(), kill, other.clone()]);
    let mut got = kinds(&k);
    got.sort();
    assert_eq!(
        got,
        [
            "fired MemoryOOMKilled/critical",
            "inhibited MemoryFillingUp/critical",
            "inhibited MemoryFillingUp/warning"
        ],
        "the kill silences every filling-up of its cgroup"
    );
    // `other` is in its hold (absent since 22 s): released, it is not
    // announced again, only resolved later.
    let after = alerts.evaluate(28_000, vec![crit]);
    let mut got = kinds(&after);
    got.sort();
    assert_eq!(
        got,
        [
            "fired MemoryFillingUp/critical",
            "resolved MemoryOOMKilled/critical"
        ]
    );
    assert_eq!(
        kinds(&alerts.evaluate(42_000, vec![])),
        ["resolved MemoryFillingUp/warning"],
        "the critical, seen at 28 s, is in its hold till 48 s"
    );
}

#[test]
fn a_kill_stays_while_what_it_silences_holds_and_that_is_never_announced_again() {
    let mut alerts = Alerts::new(inhibit::rules());
    let near = cond("MemoryNearLimit", "warning", "cgroup:/a", 0, 10_000);
    let mut kill = cond("MemoryOOMKilled", "critical", "process:7:1", 0, 5_000);
    kill.outlasts_inhibited = true;
    assert_eq!(
        kinds(&alerts.evaluate(0, vec![near.clone()])),
        ["fired MemoryNearLimit/warning"]
    );
    let mut got = kinds(&alerts.evaluate(1_000, vec![near.clone(), kill]));
    got.sort();
    assert_eq!(
        got,
        [
            "fired MemoryOOMKilled/critical",
            "inhibited MemoryNearLimit/warning"
        ]
    );
    // The near limit's condition outlives the kill's hold: the kill stays.
    for t in [7_000, 20_000, 30_000] {
        assert!(alerts.evaluate(t, vec![near.clone()]).is_empty(), "{t}");
    }
    // Its condition gone, the kill resolves; the near limit, in its hold,
    // is not announced, and resolves after it.
    assert_eq!(
        kinds(&alerts.evaluate(31_000, vec![])),
        ["resolved MemoryOOMKilled/critical"]
    );
    assert_eq!(
        kinds(&alerts.evaluate(40_000, vec![])),
        ["resolved MemoryNearLimit/warning"]
    );
}
