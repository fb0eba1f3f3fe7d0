//! The JSON API over a history this test writes: ranking by risk, series
//! downsampled per column, findings over a range, and time travel (`at`).

use memlens_model::series::{Entity, Labels};
use memlens_store::{FindingRecord, Store};
use memlens_web::{handle, Query};
use serde_json::Value;
use std::path::PathBuf;

const T0: i64 = 1_700_000_000_000;
const STEPS: i64 = 300; // 5 min at 1 s: two sealed groups and a head
const MIB: f64 = 1048576.0;

struct History {
    dir: PathBuf,
    leaky: i64,
    quiet: i64,
    late: i64,
    cgroup: i64,
}

impl Drop for History {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn leaky_rss(i: i64) -> f64 {
    (20 + i / 3) as f64 * MIB // 20 MiB, +1 MiB every 3 s
}

fn write(name: &str) -> History {
    let dir = std::env::temp_dir().join(format!("memlens-web-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut store = Store::open(&dir).unwrap();
    let mut labels = Labels::new();
    labels.insert("comm", "leaky".to_string());
    labels.insert(
        "cmdline",
        "leaky --payload=\"><img src=x onerror=alert(1)>".to_string(),
    );
    labels.insert("cgroup", "/memlens-test-web".to_string());
    labels.insert("go_version", "go1.27".to_string());
    let leaky = store
        .entity(
            &Entity::Process {
                pid: 100,
                start_time: 1,
            },
            &labels,
        )
        .unwrap();
    let mut labels = Labels::new();
    labels.insert("comm", "quiet".to_string());
    let quiet = store
        .entity(
            &Entity::Process {
                pid: 200,
                start_time: 1,
            },
            &labels,
        )
        .unwrap();
    let cg = Entity::Cgroup {
        path: "/memlens-test-web".to_string(),
    };
    let cgroup = store.entity(&cg, &Labels::new()).unwrap();
    let host = store.entity(&Entity::Host, &Labels::new()).unwrap();
    let s = |store: &mut Store, e, m| store.series_id(e, m).unwrap();
    let (rss, heap, faults) = (
        s(&mut store, leaky, "rss_bytes"),
        s(&mut store, leaky, "go_heap_inuse_bytes"),
        s(&mut store, leaky, "minor_faults"),
    );
    let quiet_rss = s(&mut store, quiet, "rss_bytes");
    let (usage, inactive, limit) = (
        s(&mut store, cgroup, "usage_bytes"),
        s(&mut store, cgroup, "inactive_file_bytes"),
        s(&mut store, cgroup, "effective_limit_bytes"),
    );
    let (total, available) = (
        s(&mut store, host, "mem_total_bytes"),
        s(&mut store, host, "mem_available_bytes"),
    );
    let mut late = 0;
    for i in 0..STEPS {
        let t = T0 + i * 1000;
        let mut values = vec![
            (rss, leaky_rss(i)),
            (faults, (i * i) as f64),  // rate 2i - 1 per second
            (quiet_rss, 3000.0 * MIB), // far more bytes, but of the host's 8 GiB
            (usage, leaky_rss(i) + 30.0 * MIB),
            (inactive, 10.0 * MIB),
            (limit, 200.0 * MIB),
            (total, 8192.0 * MIB),
            (available, 4096.0 * MIB),
        ];
        if i % 5 == 0 {
            values.push((heap, leaky_rss(i) / 2.0)); // Go values at their own cadence
        }
        if i == 200 {
            let mut labels = Labels::new();
            labels.insert("comm", "late".to_string());
            late = store
                .entity(
                    &Entity::Process {
                        pid: 300,
                        start_time: 9,
                    },
                    &labels,
                )
                .unwrap();
        }
        if i >= 200 {
            let r = s(&mut store, late, "rss_bytes");
            values.push((r, MIB));
        }
        store.append(t, &values).unwrap();
        store.commit().unwrap();
    }
    let finding = |id: &str,
                   sev: &str,
                   target: String,
                   entity,
                   fired: i64,
                   cleared: Option<i64>,
                   evidence: &str| FindingRecord {
        id: id.to_string(),
        severity: sev.to_string(),
        entity,
        target,
        fired_ms: T0 + fired * 1000,
        cleared_ms: cleared.map(|c| T0 + c * 1000),
        evidence_json: evidence.to_string(),
        recommendation: "set GOMEMLIMIT <b>below</b> the limit".to_string(),
        links_json: "[]".to_string(),
        ..Default::default()
    };
    store
        .put_finding(&finding("memory.time_to_oom", "critical", "process:100:1".into(), Some(leaky), 150, Some(250),
            r#"[{"name":"time_left_seconds","value":300,"unit":"seconds","layer":"cgroup"},{"name":"time_left_earliest_seconds","value":240,"unit":"seconds","layer":"cgroup"},{"name":"time_left_latest_seconds","value":400,"unit":"seconds","layer":"cgroup"}]"#))
        .unwrap();
    store
        .put_finding(&finding(
            "memory.near_limit",
            "warning",
            cg.key(),
            None,
            100,
            None,
            "[]",
        ))
        .unwrap();
    drop(store);
    History {
        dir,
        leaky,
        quiet,
        late,
        cgroup,
    }
}

fn get(h: &History, path: &str, query: &str) -> (u16, Value) {
    let store = Store::open_read_only(&h.dir).unwrap();
    let r = handle(Some(&store), path, &Query::parse(query));
    let body: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
    assert_eq!(r.content_type, "application/json", "{path}?{query}");
    (r.status, body)
}

fn ids(v: &Value) -> Vec<i64> {
    v["entities"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] != "host")
        .map(|e| e["id"].as_i64().unwrap())
        .collect()
}

#[test]
fn entities_are_ranked_by_findings_then_usage_against_the_kill_point_as_they_stood_at_the_instant()
{
    let h = write("rank");
    let (status, info) = get(&h, "/api/v1/info", "");
    assert_eq!(status, 200);
    assert_eq!(
        (info["first_ms"].as_i64(), info["last_ms"].as_i64()),
        (Some(T0), Some(T0 + (STEPS - 1) * 1000))
    );

    // At 50 s: no finding yet. leaky 36 MiB of its cgroup's 200 MiB (18 %)
    // ranks below quiet's 3000 MiB of the host's 8192 (37 %); late does not exist yet.
    let (_, at50) = get(&h, "/api/v1/entities", &format!("at={}", T0 + 50_000));
    assert_eq!(ids(&at50)[..2], [h.quiet, h.cgroup], "{at50:#}");
    assert!(!ids(&at50).contains(&h.late));
    let leaky = at50["entities"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["id"] == h.leaky)
        .unwrap();
    assert_eq!(leaky["used_bytes"].as_f64(), Some(leaky_rss(50)));
    assert_eq!(leaky["kill_point_bytes"].as_f64(), Some(200.0 * MIB));
    assert_eq!(
        leaky["cmdline"],
        "leaky --payload=\"><img src=x onerror=alert(1)>"
    );

    // At 200 s: leaky's critical (fired 150 s, cleared only at 250 s) puts it
    // first, its cgroup's warning next; the forecast is the fired instant + 300 s.
    let (_, at200) = get(&h, "/api/v1/entities", &format!("at={}", T0 + 200_000));
    assert_eq!(ids(&at200)[..3], [h.leaky, h.cgroup, h.quiet], "{at200:#}");
    let first = &at200["entities"][0];
    assert_eq!(first["findings"][0]["id"], "memory.time_to_oom");
    assert_eq!(first["forecast"]["kill_ms"].as_i64(), Some(T0 + 450_000));
    assert_eq!(
        first["forecast"]["earliest_ms"].as_i64(),
        Some(T0 + 390_000)
    );
    assert!(ids(&at200).contains(&h.late));

    // At the end the critical has cleared.
    let (_, last) = get(&h, "/api/v1/entities", "");
    assert_eq!(ids(&last)[0], h.cgroup, "{last:#}");
    assert!(last["entities"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["id"] != h.leaky || e["findings"].as_array().unwrap().is_empty()));
}

#[test]
fn series_plot_the_stored_samples_and_downsample_to_the_width() {
    let h = write("series");
    let q = |from: i64, to: i64, extra: &str| {
        format!("from={}&to={}&s={}:rss_bytes&s={}:go_heap_inuse_bytes&s={}:working_set_bytes&s={}:minor_faults{extra}",
            T0 + from * 1000, T0 + to * 1000, h.leaky, h.leaky, h.cgroup, h.leaky)
    };
    // 60 s into 1000 columns: every sample has its own column, as stored.
    let (status, v) = get(&h, "/api/v1/series", &q(100, 159, "&width=1000"));
    assert_eq!(status, 200, "{v}");
    let t: Vec<i64> = v["t"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_i64().unwrap())
        .collect();
    assert_eq!(t.len(), 60);
    // The column holding the sample at 130 s (what the page's cursor reads).
    let col = t.iter().rposition(|&x| x <= T0 + 130_000).unwrap();
    assert!(t[col + 1] > T0 + 130_000 && t[col] > T0 + 129_000);
    let s = &v["series"];
    assert_eq!(s[0]["last"][col].as_f64(), Some(leaky_rss(130)));
    assert_eq!(s[1]["last"][col].as_f64(), Some(leaky_rss(130) / 2.0));
    assert_eq!(
        s[1]["last"][col + 1],
        Value::Null,
        "Go values only every 5 s"
    );
    assert_eq!(
        s[2]["last"][col].as_f64(),
        Some(leaky_rss(130) + 20.0 * MIB),
        "usage - inactive file"
    );
    assert_eq!(s[3]["rate"], true);
    assert_eq!(
        s[3]["last"][col].as_f64(),
        Some((2 * 130 - 1) as f64),
        "a counter's rate per second"
    );
    assert_eq!(
        s[3]["last"][0].as_f64(),
        Some((2 * 100 - 1) as f64),
        "the first rate reads before from"
    );

    // The whole history into 20 columns: min and max of each 15 s.
    let (_, v) = get(&h, "/api/v1/series", &q(0, STEPS - 1, "&width=20"));
    assert_eq!(v["t"].as_array().unwrap().len(), 20);
    assert_eq!(v["series"][0]["min"][0].as_f64(), Some(leaky_rss(0)));
    assert_eq!(v["series"][0]["max"][0].as_f64(), Some(leaky_rss(14)));
    assert_eq!(v["series"][0]["samples"], STEPS);
    // A counter's column: the extremes of its rates, and their mean (rates
    // 2i - 1 at i = 1..14 s: the first sample has none before it).
    let faults = &v["series"][3];
    assert_eq!(
        (faults["min"][0].as_f64(), faults["max"][0].as_f64()),
        (Some(1.0), Some(27.0))
    );
    assert_eq!(faults["last"][0].as_f64(), Some(14.0));

    // Time travel: nothing after `at`.
    let (_, v) = get(
        &h,
        "/api/v1/series",
        &q(0, STEPS - 1, &format!("&width=1000&at={}", T0 + 60_000)),
    );
    assert_eq!(v["to"].as_i64(), Some(T0 + 60_000));
    assert_eq!(v["series"][0]["samples"], 61);

    for (bad, named) in [
        ("from=x&to=1&s=1:rss_bytes", "from"),
        ("from=1&to=2", "s:"),
        ("from=1&to=2&s=rss", "s=\"rss\""),
        ("from=1&to=2&width=0&s=1:a", "width=0"),
        ("from=5&to=2&s=1:a", "from=5"),
    ] {
        let (status, v) = get(&h, "/api/v1/series", bad);
        assert_eq!(status, 400, "{bad}");
        assert!(v["error"].as_str().unwrap().contains(named), "{bad}: {v}");
    }
}

#[test]
fn findings_over_a_range_as_known_at_the_instant() {
    let h = write("findings");
    let range = |from: i64, to: i64, at: i64| {
        format!(
            "entity={}&from={}&to={}&at={}",
            h.leaky,
            T0 + from * 1000,
            T0 + to * 1000,
            T0 + at * 1000
        )
    };
    // The process's page shows its own finding and its cgroup's.
    let (_, v) = get(&h, "/api/v1/findings", &range(0, 299, 299));
    let found: Vec<(&str, bool)> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["id"].as_str().unwrap(), f["active"].as_bool().unwrap()))
        .collect();
    assert_eq!(
        found,
        [("memory.near_limit", true), ("memory.time_to_oom", false)]
    );
    let ttl = &v["findings"][1];
    assert_eq!(ttl["cleared_ms"].as_i64(), Some(T0 + 250_000));
    assert_eq!(ttl["evidence"][0]["name"], "time_left_seconds");
    assert_eq!(ttl["forecast"]["latest_ms"].as_i64(), Some(T0 + 550_000));
    // At 200 s the clear is not known yet; at 120 s the critical had not fired.
    let (_, v) = get(&h, "/api/v1/findings", &range(0, 299, 200));
    assert_eq!(v["findings"][1]["active"], true);
    assert_eq!(v["findings"][1]["cleared_ms"], Value::Null);
    let (_, v) = get(&h, "/api/v1/findings", &range(0, 299, 120));
    assert_eq!(v["findings"].as_array().unwrap().len(), 1);
    // A range after the clear leaves the cleared one out; quiet has none.
    let (_, v) = get(&h, "/api/v1/findings", &range(260, 299, 299));
    assert_eq!(v["findings"].as_array().unwrap().len(), 1);
    let (_, v) = get(
        &h,
        "/api/v1/findings",
        &format!("entity={}&to={}", h.quiet, T0 + 299_000),
    );
    assert_eq!(v["findings"].as_array().unwrap().len(), 0);
    let (status, _) = get(&h, "/api/v1/findings", &format!("entity=9999&to={}", T0));
    assert_eq!(status, 404);
}

#[test]
fn an_entity_at_an_instant_with_its_cgroup() {
    let h = write("entity");
    let (status, v) = get(
        &h,
        "/api/v1/entity",
        &format!("id={}&at={}", h.leaky, T0 + 42_000),
    );
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        v["values"]["rss_bytes"]["value"].as_f64(),
        Some(leaky_rss(42))
    );
    assert_eq!(
        v["values"]["go_heap_inuse_bytes"]["ts"].as_i64(),
        Some(T0 + 40_000),
        "the latest by then"
    );
    assert_eq!(v["cgroup_entity"].as_i64(), Some(h.cgroup));
    assert_eq!(
        v["cgroup_values"]["effective_limit_bytes"]["value"].as_f64(),
        Some(200.0 * MIB)
    );
    assert_eq!(v["go_version"], "go1.27");
    let (status, v) = get(&h, "/api/v1/entity", "id=x");
    assert_eq!(status, 400);
    assert!(v["error"].as_str().unwrap().contains("id="), "{v}");
}
