//! `memlens report`'s page over a history this test writes: an hour of 5 s
//! samples of every charted series (noisy values, so gzip cannot make them
//! vanish), findings, and captured heap and goroutine profiles. Checks the
//! size budget, that the embedded profile is the last kept heap profile
//! byte for byte, and that the inlined data unpack to the API's answers
//! (goroutines by creation site, from the `?debug=2` dumps kept).

use memlens_model::series::{Entity, Labels};
use memlens_store::{Store, GOROUTINE_DEBUG2_KIND};
use memlens_web::report::{self, extract_profile, gunzip, gzip, unbase64};
use serde_json::Value;

const T0: i64 = 1_700_000_000_000;
const STEP_MS: i64 = 5_000;
const STEPS: i64 = 720; // an hour at 5 s

fn fixture(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/../goruntime/testdata/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn an_hour_at_5_s_fits_the_budget_and_the_profile_reads_back() {
    let dir = std::env::temp_dir().join(format!("memlens-web-report-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut store = Store::open(&dir).unwrap();
    let mut labels = Labels::new();
    labels.insert("comm", "leaky".to_string());
    labels.insert("cgroup", "/memlens-test-report".to_string());
    let process = Entity::Process {
        pid: 100,
        start_time: 1,
    };
    let leaky = store.entity(&process, &labels).unwrap();
    let cg = Entity::Cgroup {
        path: "/memlens-test-report".to_string(),
    };
    let cgroup = store.entity(&cg, &Labels::new()).unwrap();
    let mut ids = Vec::new();
    for m in [
        "rss_bytes",
        "go_heap_inuse_bytes",
        "go_next_gc_bytes",
        "go_gomemlimit_bytes",
        "go_goroutines",
        "go_gc_cycles_total",
        "minor_faults",
        "major_faults",
    ] {
        ids.push(store.series_id(leaky, m).unwrap());
    }
    for m in [
        "usage_bytes",
        "inactive_file_bytes",
        "effective_limit_bytes",
    ] {
        ids.push(store.series_id(cgroup, m).unwrap());
    }
    let mut noise: u64 = 12345;
    let dump = fixture("captures/go1.21.13-goroutine-leak-goroutine-debug2.txt");
    let heaps = [
        fixture("heap-text/go1.19-heap.pb.gz"),
        fixture("heap-text/go1.27-heap.pb.gz"),
    ];
    for i in 0..STEPS {
        let ts = T0 + i * STEP_MS;
        let samples: Vec<_> = ids
            .iter()
            .enumerate()
            .map(|(k, &id)| {
                noise = noise
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let jitter = (noise >> 40) as f64;
                (id, (k as f64 + 1.0) * 1e7 + i as f64 * 1e5 + jitter)
            })
            .collect();
        store.append(ts, &samples).unwrap();
        store.commit().unwrap();
        if i % 60 == 0 {
            let heap = &heaps[(i / 60) as usize % 2];
            store.put_profile(leaky, "heap", ts, heap).unwrap();
            let goroutines = fixture("captures/go1.21.13-goroutine-leak-goroutine.pb.gz");
            store
                .put_profile(leaky, "goroutine", ts, &goroutines)
                .unwrap();
            // Its ?debug=2 twin, gzipped, as the agent keeps it.
            store
                .put_profile(leaky, GOROUTINE_DEBUG2_KIND, ts, &gzip(&dump))
                .unwrap();
        }
    }
    drop(store);
    let store = Store::open_read_only(&dir).unwrap();
    let to = T0 + (STEPS - 1) * STEP_MS;
    let built = report::build(&store, leaky, to - 3_600_000, to, "leaky (pid 100)").unwrap();
    eprintln!(
        "report: {} bytes, {} of data, {} of profile, {} budgeted",
        built.html.len(),
        built.data_bytes,
        built.profile_bytes,
        built.budgeted_bytes()
    );
    assert!(built.budgeted_bytes() <= report::BUDGET_BYTES);
    // The last heap profile kept is the 12th (i = 660): heaps[11 % 2].
    assert_eq!(extract_profile(&built.html).unwrap(), heaps[1]);

    // The data unpack to a document with every sample of the hour.
    let start = built.html.find("id=\"memlens-data\">").unwrap() + "id=\"memlens-data\">".len();
    let end = start + built.html[start..].find("</pre>").unwrap();
    let json = gunzip(&unbase64(&built.html[start..end]).unwrap(), 64 << 20).unwrap();
    let data: Value = serde_json::from_slice(&json).unwrap();
    let memory = &data["charts"][0];
    assert_eq!(memory["key"], "memory");
    assert_eq!(memory["data"]["series"][0]["samples"], STEPS);
    assert!(data["growth"]["base"]["id"].as_i64().is_some());
    assert!(data["goroutines"]["total"].as_u64() > Some(0));
    // Grouped by creation site, in the last dump and over the window's 12.
    let spawned = String::from_utf8_lossy(&dump)
        .lines()
        .filter(|l| l.starts_with("created by main.leakyWorkerSpawner "))
        .count() as u64;
    assert_eq!(data["goroutines"]["grouping"], "created_by");
    let top = &data["goroutines"]["sites"][0];
    assert_eq!(top["function"], "main.leakyWorkerSpawner", "{top}");
    assert_eq!(top["count"].as_u64(), Some(spawned), "{top}");
    let over_time = &data["goroutines_over_time"];
    assert_eq!(over_time["grouping"], "created_by");
    assert_eq!(over_time["t"].as_array().map(Vec::len), Some(12));
    assert_eq!(
        over_time["sites"][0]["counts"],
        serde_json::json!(vec![spawned; 12])
    );
    let _ = std::fs::remove_dir_all(&dir);
}
