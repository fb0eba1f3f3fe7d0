//! `/api/v1/goroutines` over a history this test writes with captured
//! goroutine profiles and their `?debug=2` twins (gzipped, as the agent keeps
//! them): groups are by creation site where a dump was kept with the
//! profile, by start function where none was (or it does not read), and the
//! answer says which. The expected counts are counted in the dump's text,
//! line by line.

use memlens_model::series::{Entity, Labels};
use memlens_store::{Store, GOROUTINE_DEBUG2_KIND};
use memlens_web::report::gzip;
use memlens_web::{handle, Query};
use serde_json::Value;

fn capture(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/../goruntime/testdata/captures/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Goroutines a dump shows created by `function`, counted in its text.
fn created_by(text: &[u8], function: &str) -> u64 {
    String::from_utf8_lossy(text)
        .lines()
        .filter(|l| {
            l.strip_prefix("created by ") == Some(function) || {
                // Go 1.21+: `created by F in goroutine N`.
                l.strip_prefix("created by ")
                    .and_then(|rest| rest.strip_prefix(function))
                    .is_some_and(|rest| rest.starts_with(" in goroutine "))
            }
        })
        .count() as u64
}

fn get(store: &Store, path: &str, query: &str) -> (u16, Value) {
    let response = handle(Some(store), path, &Query::parse(query));
    let body = serde_json::from_slice(&response.body).unwrap();
    (response.status, body)
}

#[test]
fn groups_are_by_creation_site_where_a_dump_was_kept_and_say_so() {
    let dir = std::env::temp_dir().join(format!("memlens-web-groups-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut store = Store::open(&dir).unwrap();
    let process = Entity::Process {
        pid: 100,
        start_time: 1,
    };
    let e = store.entity(&process, &Labels::new()).unwrap();
    store.commit().unwrap();
    let old = capture("go1.21.13-goroutine-leak-goroutine-debug2.txt");
    let new = capture("go1.27.3-goroutine-leak-goroutine-debug2.txt");
    let counts = capture("go1.27.3-goroutine-leak-goroutine.pb.gz");
    let (t1, t2, t3, t4) = (1_000, 2_000, 3_000, 4_000);
    let p1 = store.put_profile(e, "goroutine", t1, &counts).unwrap();
    let d1 = store
        .put_profile(e, GOROUTINE_DEBUG2_KIND, t1, &gzip(&old))
        .unwrap();
    let p2 = store.put_profile(e, "goroutine", t2, &counts).unwrap();
    store
        .put_profile(e, GOROUTINE_DEBUG2_KIND, t2, &gzip(&new))
        .unwrap();
    let p3 = store.put_profile(e, "goroutine", t3, &counts).unwrap();
    let p4 = store.put_profile(e, "goroutine", t4, &counts).unwrap();
    let d4 = store
        .put_profile(e, GOROUTINE_DEBUG2_KIND, t4, &gzip(b"not a dump at all\n"))
        .unwrap();
    drop(store);
    let store = Store::open_read_only(&dir).unwrap();
    let spawner = "main.leakyWorkerSpawner";
    let (old_n, new_n) = (created_by(&old, spawner), created_by(&new, spawner));
    assert!(old_n >= 100 && new_n >= 100, "{old_n} {new_n}");

    // A profile with its dump: by creation site, the counts of the dump.
    let (status, v) = get(&store, "/api/v1/goroutines", &format!("id={p1}"));
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["grouping"], "created_by", "{v:#}");
    assert_eq!(v["dump_id"].as_i64(), Some(d1));
    assert_eq!(v["sites"][0]["function"], spawner, "{v:#}");
    assert_eq!(v["sites"][0]["site"], "created_by");
    assert_eq!(v["sites"][0]["count"].as_u64(), Some(old_n));
    // The dump asked for by its own id: the same groups.
    let (_, by_dump) = get(&store, "/api/v1/goroutines", &format!("id={d1}"));
    assert_eq!(by_dump["sites"], v["sites"]);

    // Without a dump: by start function, and why.
    let (_, v) = get(&store, "/api/v1/goroutines", &format!("id={p3}"));
    assert_eq!(v["grouping"], "start", "{v:#}");
    assert!(
        v["fallback"].as_str().unwrap().contains("no ?debug=2 dump"),
        "{v:#}"
    );
    assert_eq!(v["sites"][0]["function"], "main.leakyWorker", "{v:#}");
    assert_eq!(v["sites"][0]["site"], "start");
    // A dump that does not read: by start function, naming the dump.
    let (_, v) = get(&store, "/api/v1/goroutines", &format!("id={p4}"));
    assert_eq!(v["grouping"], "start", "{v:#}");
    assert!(
        v["fallback"]
            .as_str()
            .unwrap()
            .contains(&format!("dump {d4}")),
        "{v:#}"
    );

    // Over time, by t2: both dumps, by creation site.
    let (_, v) = get(&store, "/api/v1/goroutines", &format!("entity={e}&at={t2}"));
    assert_eq!(v["grouping"], "created_by", "{v:#}");
    assert_eq!(v["t"], serde_json::json!([t1, t2]));
    assert_eq!(v["sites"][0]["function"], spawner);
    assert_eq!(v["sites"][0]["counts"], serde_json::json!([old_n, new_n]));
    // By t3 the last profile has no dump: by start function over all profiles.
    let (_, v) = get(&store, "/api/v1/goroutines", &format!("entity={e}&at={t3}"));
    assert_eq!(v["grouping"], "start", "{v:#}");
    assert_eq!(v["t"], serde_json::json!([t1, t2, t3]));
    assert!(v["fallback"].as_str().is_some(), "{v:#}");

    // A dump is not a pprof profile: the flame graph refuses it by name.
    let (status, v) = get(&store, "/api/v1/flame", &format!("id={d1}"));
    assert_eq!(status, 400, "{v}");
    assert!(
        v["error"].as_str().unwrap().contains(GOROUTINE_DEBUG2_KIND),
        "{v}"
    );
    let (_, v) = get(
        &store,
        "/api/v1/profiles",
        &format!("entity={e}&kind={GOROUTINE_DEBUG2_KIND}"),
    );
    assert_eq!(v["profiles"].as_array().unwrap().len(), 3, "{v}");
    let _ = p2;
    let _ = std::fs::remove_dir_all(&dir);
}
