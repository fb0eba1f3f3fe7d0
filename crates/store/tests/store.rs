//! Store behaviour: round trips through every read path, reopen, pid reuse,
//! errors (unwritable, locked, disk full, corrupt files), retention, profiles.

use memlens_model::series::{Entity, Labels};
use memlens_store::{Retention, Store, StoreError, StoreOptions, Value};
use std::path::PathBuf;

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("memlens-store-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn labels(comm: &str) -> Labels {
    let mut l = Labels::new();
    l.insert("comm", comm.to_string());
    l.insert("cmdline", format!("/usr/bin/{comm} --flag"));
    l.insert("go_version", "go1.22.1".to_string());
    l
}

fn process(pid: i32, start_time: u64) -> Entity {
    Entity::Process { pid, start_time }
}

/// Writes `ticks` instants of 3 metrics for 2 processes; returns what was
/// appended per (pid, metric).
fn record(store: &mut Store, start_ts: i64, ticks: i64) -> Vec<(i32, &'static str, i64, f64)> {
    let mut written = Vec::new();
    for t in 0..ticks {
        let ts = start_ts + t * 1000;
        let mut batch = Vec::new();
        for pid in [100, 200] {
            let e = store
                .entity(&process(pid, 5), &labels(&format!("p{pid}")))
                .unwrap();
            for (metric, v) in [
                ("rss_bytes", (50_000 + t * 3 + pid as i64) as f64 * 4096.0),
                ("cpu_user_seconds", t as f64 * 0.01 * pid as f64),
                ("ratio", (t as f64).sqrt()),
            ] {
                batch.push((store.series_id(e, metric).unwrap(), v));
                written.push((pid, metric, ts, v));
            }
        }
        store.append(ts, &batch).unwrap();
        let report = store.commit().unwrap();
        assert_eq!(report.last_ts_ms(), Some(ts));
        assert_eq!(report.samples(), 6);
    }
    written
}

fn read_all(store: &Store, pid: i64, metric: &str) -> Vec<(i64, f64)> {
    let e = store.entities_by_pid(pid).unwrap();
    assert_eq!(e.len(), 1);
    store.series(e[0].id, metric, i64::MIN, i64::MAX).unwrap()
}

fn expected(written: &[(i32, &str, i64, f64)], pid: i32, metric: &str) -> Vec<(i64, f64)> {
    written
        .iter()
        .filter(|w| w.0 == pid && w.1 == metric)
        .map(|w| (w.2, w.3))
        .collect()
}

#[test]
fn samples_read_back_from_chunks_and_head_and_after_reopen() {
    let dir = temp_dir("roundtrip");
    let options = StoreOptions {
        frames_per_group: 7,
        ..StoreOptions::default()
    };
    let written = {
        let mut store = Store::open_with(&dir, options.clone()).unwrap();
        record(&mut store, 1_000_000, 30) // 4 sealed groups + 2 head frames
    };
    // Reopen without flush: the head comes back from its table.
    let mut store = Store::open_with(&dir, options).unwrap();
    for pid in [100, 200] {
        for metric in ["rss_bytes", "cpu_user_seconds", "ratio"] {
            let got = read_all(&store, pid as i64, metric);
            let want = expected(&written, pid, metric);
            assert_eq!(got.len(), want.len());
            for (g, w) in got.iter().zip(&want) {
                assert_eq!(g.0, w.0);
                assert_eq!(g.1.to_bits(), w.1.to_bits());
            }
        }
    }
    // Time range.
    let e = store.entities_by_comm("p100").unwrap()[0].id;
    let part = store.series(e, "rss_bytes", 1_005_000, 1_009_000).unwrap();
    assert_eq!(
        part.iter().map(|p| p.0).collect::<Vec<_>>(),
        (5..=9).map(|i| 1_000_000 + i * 1000).collect::<Vec<_>>()
    );
    // Appending continues after the reopened head; old instants are refused.
    let more = record(&mut store, 1_030_000, 3);
    assert_eq!(read_all(&store, 100, "ratio").len(), 33);
    assert!(matches!(
        store.append(1_000_000, &[]),
        Err(StoreError::TimestampNotAscending { .. })
    ));
    // The samples view agrees with series().
    let q = store
        .query(&format!(
            "SELECT count(*), sum(value), min(ts), max(ts) FROM samples WHERE entity = {e} AND metric = 'rss_bytes'"
        ))
        .unwrap();
    let want: Vec<(i64, f64)> = expected(&written, 100, "rss_bytes")
        .into_iter()
        .chain(expected(&more, 100, "rss_bytes"))
        .collect();
    assert_eq!(
        q.columns,
        vec!["count(*)", "sum(value)", "min(ts)", "max(ts)"]
    );
    assert_eq!(q.rows[0][0], Value::Integer(want.len() as i64));
    assert_eq!(q.rows[0][1], Value::Real(want.iter().map(|p| p.1).sum()));
    assert_eq!(q.rows[0][2], Value::Integer(want[0].0));
    assert_eq!(q.rows[0][3], Value::Integer(want.last().unwrap().0));
    let all = store.query("SELECT count(*) FROM samples").unwrap();
    assert_eq!(all.rows[0][0], Value::Integer(33 * 6));
    let ranged = store
        .query("SELECT count(*) FROM samples WHERE ts > 1005000 AND ts <= 1010000")
        .unwrap();
    assert_eq!(ranged.rows[0][0], Value::Integer(5 * 6));
    let joined = store
        .query("SELECT e.comm, count(*) FROM samples s JOIN entities e ON e.id = s.entity GROUP BY e.comm ORDER BY e.comm")
        .unwrap();
    assert_eq!(joined.rows.len(), 2);
    assert_eq!(joined.rows[0][0], Value::Text("p100".into()));
    // Entities, labels, metrics.
    let info = &store.entities_by_pid(200).unwrap()[0];
    assert_eq!(info.kind, "process");
    assert_eq!(info.key, "process:200:5");
    assert_eq!(info.cmdline.as_deref(), Some("/usr/bin/p200 --flag"));
    assert_eq!(info.go_version.as_deref(), Some("go1.22.1"));
    assert_eq!(info.labels.get("comm").map(String::as_str), Some("p200"));
    let metrics: Vec<String> = store
        .metrics(info.id)
        .unwrap()
        .into_iter()
        .map(|m| m.0)
        .collect();
    assert_eq!(metrics, vec!["cpu_user_seconds", "ratio", "rss_bytes"]);
    let empty = store
        .query("SELECT ts, value FROM samples WHERE 0")
        .unwrap();
    assert_eq!((empty.columns.len(), empty.rows.len()), (2, 0));
    let mut seen = 0;
    store
        .query_each("SELECT * FROM samples", |cols, row| {
            assert_eq!(cols, ["ts", "entity", "metric", "value"]);
            assert_eq!(row.len(), 4);
            seen += 1;
            seen < 3
        })
        .unwrap();
    assert_eq!(seen, 3);
    // query is read-only.
    assert!(matches!(
        store.query("DELETE FROM groups"),
        Err(StoreError::NotReadOnly { .. })
    ));
    assert!(store.integrity_check().unwrap().is_ok());
    drop(store);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_reused_pid_is_a_new_entity_and_labels_update() {
    let dir = temp_dir("pidreuse");
    let mut store = Store::open(&dir).unwrap();
    let a = store.entity(&process(42, 1000), &labels("old")).unwrap();
    let b = store.entity(&process(42, 2000), &labels("new")).unwrap();
    assert_ne!(a, b);
    let host = store.entity(&Entity::Host, &Labels::new()).unwrap();
    let cg = store
        .entity(
            &Entity::Cgroup {
                path: "/system.slice/x.service".into(),
            },
            &Labels::new(),
        )
        .unwrap();
    let sa = store.series_id(a, "rss_bytes").unwrap();
    let sb = store.series_id(b, "rss_bytes").unwrap();
    let sh = store.series_id(host, "mem_free_bytes").unwrap();
    let sc = store.series_id(cg, "usage_bytes").unwrap();
    store
        .append(10, &[(sa, 1.0), (sb, 2.0), (sh, 3.0), (sc, 4.0)])
        .unwrap();
    store.commit().unwrap();
    // comm changes after exec: same entity, new label.
    assert_eq!(
        store
            .entity(&process(42, 2000), &labels("renamed"))
            .unwrap(),
        b
    );
    store.commit().unwrap();
    let by_pid = store.entities_by_pid(42).unwrap();
    assert_eq!(by_pid.len(), 2);
    assert_eq!(by_pid[1].comm.as_deref(), Some("renamed"));
    assert_eq!(
        store.series(a, "rss_bytes", 0, 100).unwrap(),
        vec![(10, 1.0)]
    );
    assert_eq!(
        store.series(b, "rss_bytes", 0, 100).unwrap(),
        vec![(10, 2.0)]
    );
    let cgi = store
        .entities()
        .unwrap()
        .into_iter()
        .find(|e| e.kind == "cgroup")
        .unwrap();
    assert_eq!(cgi.cgroup.as_deref(), Some("/system.slice/x.service"));
    assert!(matches!(
        store.append(11, &[(999 << 16, 1.0)]),
        Err(StoreError::UnknownSeries(_))
    ));
    drop(store);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_late_value_keeps_the_labels_of_a_known_entity() {
    let dir = temp_dir("keeplabels");
    let mut store = Store::open(&dir).unwrap();
    let a = store.entity(&process(7, 70), &labels("workload")).unwrap();
    let s = store.series_id(a, "rss_bytes").unwrap();
    store.append(10, &[(s, 1.0)]).unwrap();
    store.commit().unwrap();
    // Known from the cache, then (after a reopen) only from the database.
    assert_eq!(store.entity_keeping_labels(&process(7, 70)).unwrap(), a);
    store.commit().unwrap();
    drop(store);
    let mut store = Store::open(&dir).unwrap();
    assert_eq!(store.entity_keeping_labels(&process(7, 70)).unwrap(), a);
    let late = store.series_id(a, "go_goroutines").unwrap();
    store.append(20, &[(late, 5.0)]).unwrap();
    store.commit().unwrap();
    let by_pid = store.entities_by_pid(7).unwrap();
    assert_eq!(by_pid.len(), 1);
    assert_eq!(by_pid[0].comm.as_deref(), Some("workload"));
    // Labels given afterwards are still written.
    assert_eq!(
        store.entity(&process(7, 70), &labels("renamed")).unwrap(),
        a
    );
    store.commit().unwrap();
    assert_eq!(
        store.entities_by_pid(7).unwrap()[0].comm.as_deref(),
        Some("renamed")
    );
    // An entity never seen is registered, without labels.
    let b = store.entity_keeping_labels(&process(8, 80)).unwrap();
    assert_ne!(a, b);
    let sb = store.series_id(b, "rss_bytes").unwrap();
    store.append(30, &[(sb, 2.0)]).unwrap();
    store.commit().unwrap();
    assert_eq!(store.entities_by_pid(8).unwrap()[0].comm, None);
    drop(store);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn unusable_directories_are_named_in_the_error() {
    let dir = temp_dir("unwritable");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("a-file");
    std::fs::write(&file, b"x").unwrap();
    let err = Store::open(file.join("data")).unwrap_err();
    assert!(matches!(err, StoreError::Unwritable { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains(&file.join("data").display().to_string()),
        "{msg}"
    );
    assert!(msg.contains("--data"), "{msg}");
    // A second writer on the same directory is refused.
    let data = dir.join("data");
    let _first = Store::open(&data).unwrap();
    let err = Store::open(&data).unwrap_err();
    assert!(matches!(err, StoreError::Locked { .. }), "{err:?}");
    assert!(err.to_string().contains("writer.lock"));
    // Reading while the writer runs is fine; a missing history is explained.
    assert!(Store::open_read_only(&data).is_ok());
    let err = Store::open_read_only(dir.join("nothing")).unwrap_err();
    assert!(err.to_string().contains("no memlens history"), "{err}");
    drop(_first);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_full_disk_fails_the_commit_and_keeps_what_was_stored() {
    let dir = temp_dir("full");
    let options = StoreOptions {
        frames_per_group: 10,
        max_file_bytes: Some(160 * 1024),
        ..StoreOptions::default()
    };
    let mut store = Store::open_with(&dir, options).unwrap();
    let mut committed = 0u64;
    let mut full = None;
    'outer: for t in 0..100_000i64 {
        let mut batch = Vec::new();
        for pid in 0..40 {
            let e = store.entity(&process(pid, 1), &labels("x")).unwrap();
            for m in 0..10 {
                let s = store.series_id(e, &format!("m{m}")).unwrap();
                batch.push((
                    s,
                    ((t * 7919 + pid as i64 * 31 + m) % 1_000_003) as f64 * 1.5e-3,
                ));
            }
        }
        store.append(t * 1000, &batch).unwrap();
        match store.commit() {
            Ok(r) => committed += r.samples() as u64,
            Err(e) => {
                full = Some(e);
                break 'outer;
            }
        }
    }
    let err = full.expect("the cap is reached");
    assert!(matches!(err, StoreError::DiskFull { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("history.db") && msg.contains("free disk space"),
        "{msg}"
    );
    let report = store.integrity_check().unwrap();
    assert!(report.is_ok(), "{:?}", report.problems);
    assert_eq!(report.samples, committed);
    drop(store);
    // Reopened, everything committed is there.
    let store = Store::open_read_only(&dir).unwrap();
    assert_eq!(store.integrity_check().unwrap().samples, committed);
    drop(store);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn corrupt_files_are_reported_and_kept() {
    let dir = temp_dir("corrupt");
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("history.db");
    // Not a database at all.
    std::fs::write(&db, vec![0x42u8; 10_000]).unwrap();
    let err = Store::open(&dir).unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains(&db.display().to_string()) && msg.contains("move it aside"),
        "{msg}"
    );
    assert_eq!(
        std::fs::read(&db).unwrap(),
        vec![0x42u8; 10_000],
        "file kept as is"
    );
    std::fs::remove_file(&db).unwrap();
    // Someone else's SQLite database.
    {
        let other = rusqlite_free_db(&db);
        assert!(other);
    }
    let err = Store::open(&dir).unwrap_err();
    assert!(err.to_string().contains("without memlens tables"), "{err}");
    std::fs::remove_file(&db).unwrap();
    // A real history with damaged chunk bytes: SQLite's structure is intact,
    // the bundle checksum finds it.
    {
        let mut store = Store::open_with(
            &dir,
            StoreOptions {
                frames_per_group: 5,
                ..Default::default()
            },
        )
        .unwrap();
        record(&mut store, 0, 40);
        store.flush().unwrap();
        store.checkpoint().unwrap();
    }
    let bundle: Vec<u8> = rusqlite::Connection::open(&db)
        .unwrap()
        .query_row(
            "SELECT data FROM chunks WHERE key >> 32 = 3 ORDER BY key",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let mut bytes = std::fs::read(&db).unwrap();
    // Every copy: free space in a page may still hold an old copy of the row.
    let copies: Vec<usize> = bytes
        .windows(bundle.len())
        .enumerate()
        .filter(|(_, w)| *w == bundle.as_slice())
        .map(|(at, _)| at)
        .collect();
    assert!(!copies.is_empty(), "the bundle is stored inline");
    for at in copies {
        bytes[at + bundle.len() / 2] ^= 0x10;
    }
    std::fs::write(&db, &bytes).unwrap();
    let store = Store::open(&dir).unwrap();
    let report = store.integrity_check().unwrap();
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.contains("group 3") && p.contains("checksum")),
        "{:?}",
        report.problems
    );
    let p100 = store.entities_by_pid(100).unwrap()[0].id;
    let p200 = store.entities_by_pid(200).unwrap()[0].id;
    let errors = [p100, p200]
        .iter()
        .filter(|&&e| {
            matches!(
                store.series(e, "ratio", 0, i64::MAX),
                Err(StoreError::Corrupt { .. })
            )
        })
        .count();
    assert_eq!(errors, 1, "reading the damaged entity's series says so");
    drop(store);
    // Damaged b-tree pages.
    let page = 4096;
    let pages = bytes.len() / page;
    for p in pages / 2..pages {
        for b in &mut bytes[p * page..(p + 1) * page] {
            *b ^= 0x5a;
        }
    }
    std::fs::write(&db, &bytes).unwrap();
    match Store::open(&dir) {
        Err(e) => assert!(matches!(e, StoreError::Corrupt { .. }), "{e:?}"),
        Ok(store) => match store.integrity_check() {
            Ok(r) => assert!(!r.is_ok(), "damage found"),
            Err(e) => assert!(matches!(e, StoreError::Corrupt { .. }), "{e:?}"),
        },
    }
    assert_eq!(std::fs::read(&db).unwrap().len(), bytes.len(), "file kept");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Writes a small SQLite database that is not a memlens history.
fn rusqlite_free_db(path: &std::path::Path) -> bool {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.execute_batch("CREATE TABLE notes(x); INSERT INTO notes VALUES (1);")
        .is_ok()
}

#[test]
fn retention_deletes_oldest_by_age_and_by_size() {
    let dir = temp_dir("retention");
    let mut store = Store::open_with(
        &dir,
        StoreOptions {
            frames_per_group: 10,
            ..Default::default()
        },
    )
    .unwrap();
    let written = record(&mut store, 0, 100); // groups of 10 s: [0,9s], ..., [90s,99s]
    let e100 = store.entities_by_pid(100).unwrap()[0].id;
    let old_profile = store.put_profile(e100, "heap", 10_000, b"old").unwrap();
    let new_profile = store.put_profile(e100, "heap", 90_000, b"new").unwrap();
    let report = store
        .apply_retention(
            &Retention {
                max_age_ms: Some(50_000),
                max_bytes: None,
            },
            100_000,
        )
        .unwrap();
    // Groups ending before 50 s: the first five; the profile of 10 s.
    assert_eq!(report.groups_deleted, 5);
    assert_eq!(report.profiles_deleted, 1);
    assert_eq!(store.profile_data(old_profile).unwrap(), None);
    assert_eq!(
        store.profile_data(new_profile).unwrap(),
        Some(b"new".to_vec())
    );
    let got = read_all(&store, 100, "rss_bytes");
    assert_eq!(got.first().unwrap().0, 50_000);
    assert_eq!(got, expected(&written, 100, "rss_bytes")[50..].to_vec());
    assert!(store.integrity_check().unwrap().is_ok());
    // By size: add enough data, then cap below what is used.
    let big = record(&mut store, 100_000, 3000);
    let used_before = store
        .apply_retention(&Retention::default(), 0)
        .unwrap()
        .used_bytes;
    let cap = used_before * 2 / 3;
    let report = store
        .apply_retention(
            &Retention {
                max_age_ms: None,
                max_bytes: Some(cap),
            },
            0,
        )
        .unwrap();
    assert!(report.groups_deleted > 0);
    assert!(report.used_bytes <= cap, "{} > {cap}", report.used_bytes);
    let got = read_all(&store, 200, "ratio");
    let want = expected(&big, 200, "ratio");
    // What is left is the newest part, intact.
    assert!(!got.is_empty() && got.len() < want.len());
    assert_eq!(got[..], want[want.len() - got.len()..]);
    store.checkpoint().unwrap();
    assert!(store.integrity_check().unwrap().is_ok());
    drop(store);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn profiles_are_kept_byte_for_byte_within_caps() {
    let dir = temp_dir("profiles");
    let mut store = Store::open_with(
        &dir,
        StoreOptions {
            max_profile_bytes: 1000,
            max_profiles_total_bytes: 2500,
            ..Default::default()
        },
    )
    .unwrap();
    let e = store.entity(&process(7, 7), &labels("svc")).unwrap();
    store.commit().unwrap();
    let blob = |n: usize, seed: u8| {
        (0..n)
            .map(|i| (i as u8).wrapping_mul(seed))
            .collect::<Vec<u8>>()
    };
    let a = store.put_profile(e, "heap", 1000, &blob(900, 3)).unwrap();
    let b = store
        .put_profile(e, "goroutine", 2000, &blob(800, 5))
        .unwrap();
    assert_eq!(store.profile_data(a).unwrap(), Some(blob(900, 3)));
    let err = store
        .put_profile(e, "heap", 3000, &blob(1001, 1))
        .unwrap_err();
    assert!(matches!(
        err,
        StoreError::ProfileTooLarge {
            bytes: 1001,
            cap_bytes: 1000
        }
    ));
    // A third one goes over the total: the oldest goes.
    let c = store.put_profile(e, "heap", 4000, &blob(900, 7)).unwrap();
    let kept: Vec<i64> = store
        .profiles(Some(e), None)
        .unwrap()
        .iter()
        .map(|p| p.id)
        .collect();
    assert_eq!(kept, vec![b, c]);
    assert_eq!(store.profile_data(a).unwrap(), None);
    let heaps = store.profiles(None, Some("heap")).unwrap();
    assert_eq!(heaps.len(), 1);
    assert_eq!((heaps[0].ts_ms, heaps[0].size_bytes), (4000, 900));
    let q = store
        .query("SELECT kind, size_bytes FROM profiles ORDER BY ts")
        .unwrap();
    assert_eq!(q.rows.len(), 2);
    drop(store);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn readers_see_whole_snapshots_while_the_writer_seals() {
    let dir = temp_dir("concurrent");
    let mut store = Store::open_with(
        &dir,
        StoreOptions {
            frames_per_group: 5,
            ..Default::default()
        },
    )
    .unwrap();
    let e = store.entity(&process(1, 1), &labels("w")).unwrap();
    let s = store.series_id(e, "v").unwrap();
    store.append(0, &[(s, 0.0)]).unwrap();
    store.commit().unwrap();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let done = done.clone();
        std::thread::spawn(move || {
            for t in 1..600i64 {
                store.append(t * 1000, &[(s, t as f64)]).unwrap();
                store.commit().unwrap();
            }
            done.store(true, std::sync::atomic::Ordering::SeqCst);
        })
    };
    let reader = Store::open_read_only(&dir).unwrap();
    let mut reads = 0;
    loop {
        let finished = done.load(std::sync::atomic::Ordering::SeqCst);
        let points = reader.series(e, "v", i64::MIN, i64::MAX).unwrap();
        for (i, p) in points.iter().enumerate() {
            assert_eq!(
                *p,
                (i as i64 * 1000, i as f64),
                "gap or reorder after {reads} reads"
            );
        }
        let q = reader
            .query(&format!(
                "SELECT count(*), max(ts) FROM samples WHERE entity = {e}"
            ))
            .unwrap();
        let (Value::Integer(n), Value::Integer(max)) = (&q.rows[0][0], &q.rows[0][1]) else {
            panic!("{:?}", q.rows)
        };
        assert_eq!(*n, max / 1000 + 1, "samples view saw a partial seal");
        reads += 1;
        if finished {
            assert_eq!(points.len(), 600);
            break;
        }
    }
    writer.join().unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_history_whose_tables_are_not_there_yet_is_not_damaged() {
    // What a reader sees between the writer's switch to WAL and the commit
    // of its tables (or what a writer killed at that moment leaves): an
    // SQLite header and no table at all.
    let dir = temp_dir("being-created");
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("history.db");
    {
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))
            .unwrap();
        let pages: i64 = conn
            .query_row("PRAGMA page_count", [], |r| r.get(0))
            .unwrap();
        assert!(pages > 0, "the header is written");
    }
    let err = match Store::open_read_only(&dir) {
        Err(err) => err,
        Ok(_) => panic!("a history with no tables read as one"),
    };
    let msg = err.to_string();
    assert!(msg.contains("no memlens history"), "{msg}");
    assert!(!msg.contains("damaged"), "{msg}");
    // The writer makes its tables in it, and then it reads.
    drop(Store::open(&dir).expect("the writer takes it over"));
    Store::open_read_only(&dir).expect("a history now");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A history written before the `mysql` kind existed has the old `entities`
/// view (anything not host or process shown as a cgroup); a writer opening it
/// makes the view anew, and the server shows as `mysql`.
#[test]
fn an_older_entities_view_is_made_anew_and_shows_the_mysql_kind() {
    let dir = temp_dir("mysql-kind");
    let server = Entity::Mysql {
        pid: 7,
        start_time: 99,
    };
    {
        let mut store = Store::open(&dir).unwrap();
        let mut l = Labels::new();
        l.insert("comm", "mariadbd".to_string());
        let e = store.entity(&server, &l).unwrap();
        let s = store.series_id(e, "mysql_pool_size_bytes").unwrap();
        store.append(1000, &[(s, 50331648.0)]).unwrap();
        store.commit().unwrap();
    }
    // The view as older builds made it.
    let conn = rusqlite::Connection::open(dir.join("history.db")).unwrap();
    conn.execute_batch(
        "DROP VIEW entities;
         CREATE VIEW entities(id, kind, key, pid, start_ticks, comm, cmdline, cgroup,
                go_version, labels, first_ts, last_ts) AS
            SELECT e.id,
                CASE WHEN e.key = 'host' THEN 'host'
                     WHEN substr(e.key, 1, 8) = 'process:' THEN 'process' ELSE 'cgroup' END,
                e.key, e.pid, e.start_ticks, NULL, NULL, NULL, NULL, NULL, e.first_ts, e.last_ts
            FROM entity_rows e;",
    )
    .unwrap();
    drop(conn);
    let kind = |store: &Store| {
        store
            .entities()
            .unwrap()
            .into_iter()
            .find(|e| e.key == "mysql:7:99")
            .map(|e| e.kind)
    };
    let old = Store::open_read_only(&dir).unwrap();
    assert_eq!(kind(&old).as_deref(), Some("cgroup"), "the old view");
    drop(old);
    let store = Store::open(&dir).unwrap();
    assert_eq!(kind(&store).as_deref(), Some("mysql"));
    let info = store.entities_by_pid(7).unwrap();
    assert_eq!(info[0].comm.as_deref(), Some("mariadbd"));
    drop(store);
    std::fs::remove_dir_all(&dir).unwrap();
}
