//! The on-disk format: a format-1 history (written here table by table as
//! format 1 laid it out) is refused by readers with the "older format"
//! message and upgraded in place by a writer, keeping every sample and label;
//! labels go through the dictionary and come back bit for bit; short-lived
//! entities stay cheap.

use memlens_model::series::{Entity, Labels};
use memlens_store::codec::chunk::{encode_bundle, encode_timestamps, ChunkBuilder};
use memlens_store::codec::frame::{encode_frame, FrameState};
use memlens_store::{Store, StoreError, Value, DB_FILE, FORMAT_VERSION};
use std::path::PathBuf;

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("memlens-format-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The tables of format 1, as its schema module created them.
const FORMAT_1_TABLES: &str = "
CREATE TABLE meta(key TEXT PRIMARY KEY, value) WITHOUT ROWID;
CREATE TABLE entities(
    id INTEGER PRIMARY KEY, kind TEXT NOT NULL, key TEXT NOT NULL UNIQUE,
    pid INTEGER, start_ticks INTEGER, comm TEXT, cmdline TEXT, cgroup TEXT,
    go_version TEXT, labels TEXT, first_ts INTEGER, last_ts INTEGER);
CREATE INDEX entities_pid ON entities(pid);
CREATE TABLE metrics(id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
CREATE TABLE series_ids(id INTEGER PRIMARY KEY);
CREATE VIEW series(id, entity, metric) AS
    SELECT s.id, s.id >> 16, m.name FROM series_ids s
    LEFT JOIN metrics m ON m.id = (s.id & 65535);
CREATE TABLE frames(ts INTEGER PRIMARY KEY, data BLOB NOT NULL);
CREATE TABLE groups(
    id INTEGER PRIMARY KEY, first_ts INTEGER NOT NULL, last_ts INTEGER NOT NULL,
    frame_count INTEGER NOT NULL, ts_data BLOB NOT NULL);
CREATE TABLE chunks(key INTEGER PRIMARY KEY, data BLOB NOT NULL);
CREATE TABLE profiles(
    id INTEGER PRIMARY KEY, entity INTEGER NOT NULL, kind TEXT NOT NULL,
    ts INTEGER NOT NULL, size_bytes INTEGER NOT NULL, data BLOB NOT NULL);
CREATE INDEX profiles_entity ON profiles(entity, ts);
INSERT INTO meta VALUES ('format', 1);
";

/// Writes a format-1 history: a process (odd command line) and a cgroup,
/// one sealed group of 3 frames and 2 head frames. Returns per series id
/// the samples written.
fn write_format_1(dir: &std::path::Path) -> Vec<(u64, Vec<(i64, f64)>)> {
    let conn = rusqlite::Connection::open(dir.join(DB_FILE)).unwrap();
    conn.execute_batch("PRAGMA journal_mode = WAL").unwrap();
    conn.execute_batch(FORMAT_1_TABLES).unwrap();
    conn.execute_batch(
        "INSERT INTO entities VALUES (1, 'process', 'process:42:7', 42, 7, 'rustc',
             '/usr/bin/rustc  --crate-name x é ', '/build.slice', 'go1.22', '{\"go_module\":\"m\"}',
             1000, 3000);
         INSERT INTO entities VALUES (2, 'cgroup', 'cgroup:/build.slice', NULL, NULL, NULL, NULL,
             '/build.slice', NULL, '{\"cgroup_version\":\"2\"}', 1000, 3000);
         INSERT INTO metrics VALUES (1, 'rss_bytes'), (2, 'cpu_user_seconds'), (3, 'usage_bytes');
         INSERT INTO series_ids VALUES (65537), (65538), (131075);",
    )
    .unwrap();
    let ts = [1000i64, 2000, 3000];
    let series: [(u64, Vec<f64>); 3] = [
        (65537, vec![4096.0, 8192.0, 8192.0, 12288.0, 4096.0]),
        (65538, vec![0.01, 0.02, 0.05, 0.25, 1.5]),
        (131075, vec![1e8, 1.1e8, 1.2e8, 1.25e8, 1.3e8]),
    ];
    let mut chunks: Vec<(u64, Vec<u8>)> = Vec::new();
    for (id, values) in &series {
        let mut b = ChunkBuilder::new();
        for (i, v) in values[..3].iter().enumerate() {
            b.push(i as u32, *v);
        }
        chunks.push((*id, b.finish()));
    }
    conn.execute(
        "INSERT INTO groups VALUES (1, 1000, 3000, 3, ?1)",
        [encode_timestamps(&ts).unwrap()],
    )
    .unwrap();
    for entity in [1u64, 2] {
        let bundle = encode_bundle(
            chunks
                .iter()
                .filter(|(id, _)| id >> 16 == entity)
                .map(|(id, c)| (id & 0xffff, c.as_slice())),
        );
        conn.execute(
            "INSERT INTO chunks VALUES ((1 << 32) | ?1, ?2)",
            rusqlite::params![entity as i64, bundle],
        )
        .unwrap();
    }
    let mut state = FrameState::new();
    for (i, t) in [4000i64, 5000].iter().enumerate() {
        let samples: Vec<(u64, f64)> = series.iter().map(|(id, v)| (*id, v[3 + i])).collect();
        conn.execute(
            "INSERT INTO frames VALUES (?1, ?2)",
            rusqlite::params![t, encode_frame(&samples, &mut state).unwrap()],
        )
        .unwrap();
    }
    let all_ts = [1000i64, 2000, 3000, 4000, 5000];
    series
        .iter()
        .map(|(id, v)| (*id, all_ts.iter().copied().zip(v.iter().copied()).collect()))
        .collect()
}

#[test]
fn a_format_1_history_is_refused_by_readers_and_upgraded_by_a_writer() {
    let dir = temp_dir("v1");
    let written = write_format_1(&dir);
    let err = Store::open_read_only(&dir).unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::OlderFormat {
                found: 1,
                supported: FORMAT_VERSION,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("memlens watch"), "{err}");
    // The writer upgrades it; everything reads back.
    let mut store = Store::open(&dir).unwrap();
    let check = |store: &Store| {
        let report = store.integrity_check().unwrap();
        assert!(report.is_ok(), "{:?}", report.problems);
        assert_eq!(report.samples, 15);
        for (id, samples) in &written {
            assert_eq!(
                &store.series_by_id(*id, i64::MIN, i64::MAX).unwrap(),
                samples
            );
        }
        let p = &store.entities_by_pid(42).unwrap()[0];
        assert_eq!(
            p.cmdline.as_deref(),
            Some("/usr/bin/rustc  --crate-name x é ")
        );
        assert_eq!(p.comm.as_deref(), Some("rustc"));
        assert_eq!(p.cgroup.as_deref(), Some("/build.slice"));
        assert_eq!(p.go_version.as_deref(), Some("go1.22"));
        assert_eq!(p.labels.get("go_module").map(String::as_str), Some("m"));
        assert_eq!((p.first_ts_ms, p.last_ts_ms), (Some(1000), Some(3000)));
        assert_eq!(p.kind, "process");
        let c = &store.entities().unwrap()[1];
        assert_eq!(
            (c.kind.as_str(), c.key.as_str()),
            ("cgroup", "cgroup:/build.slice")
        );
        let names: Vec<String> = store.metrics(1).unwrap().into_iter().map(|m| m.0).collect();
        assert_eq!(names, ["cpu_user_seconds", "rss_bytes"]);
        let rows = store
            .query("SELECT count(*) FROM samples s JOIN entities e ON e.id = s.entity WHERE e.comm = 'rustc'")
            .unwrap()
            .rows;
        assert_eq!(rows, vec![vec![Value::Integer(10)]]);
        assert_eq!(store.entities_by_comm("rustc").unwrap().len(), 1);
    };
    check(&store);
    // And it keeps recording on top.
    let e = store
        .entity(
            &Entity::Process {
                pid: 42,
                start_time: 7,
            },
            &Labels::new(),
        )
        .unwrap();
    assert_eq!(e, 1);
    let rss = store.series_id(e, "rss_bytes").unwrap();
    store.append(6000, &[(rss, 16384.0)]).unwrap();
    store.commit().unwrap();
    assert_eq!(
        store.series_by_id(rss, 6000, 6000).unwrap(),
        vec![(6000, 16384.0)]
    );
    // Sealing now writes a format-2 bundle next to the format-1 one.
    assert!(store.flush().unwrap().sealed.is_some());
    drop(store);
    let store = Store::open_read_only(&dir).unwrap();
    let mut rss_all = written[0].1.clone();
    rss_all.push((6000, 16384.0));
    assert_eq!(
        store.series_by_id(rss, i64::MIN, i64::MAX).unwrap(),
        rss_all
    );
    for (id, samples) in &written[1..] {
        assert_eq!(
            &store.series_by_id(*id, i64::MIN, i64::MAX).unwrap(),
            samples
        );
    }
    let report = store.integrity_check().unwrap();
    assert!(report.is_ok(), "{:?}", report.problems);
    assert_eq!((report.groups, report.samples), (2, 16));
    let rows = store.query("SELECT count(*) FROM samples").unwrap().rows;
    assert_eq!(rows, vec![vec![Value::Integer(16)]]);
    drop(store);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn labels_come_back_bit_for_bit_through_the_dictionary() {
    let dir = temp_dir("labels");
    let cmdlines = [
        "",
        " ",
        "a  b ",
        "/usr/bin/rustc --crate-name memlens_store --edition=2021",
        "/usr/bin/rustc --crate-name memlens_linux --edition=2021",
        "日本 語 \u{1f600} …",
    ];
    let mut store = Store::open(&dir).unwrap();
    for (i, cmdline) in cmdlines.iter().enumerate() {
        let mut labels = Labels::new();
        labels.insert("comm", "rustc".to_string());
        labels.insert("cmdline", cmdline.to_string());
        labels.insert("cgroup", "/a b".to_string());
        let e = store
            .entity(
                &Entity::Process {
                    pid: 10 + i as i32,
                    start_time: 1,
                },
                &labels,
            )
            .unwrap();
        let id = store.series_id(e, "rss_bytes").unwrap();
        store.append(1000 + i as i64, &[(id, 1.0)]).unwrap();
        store.commit().unwrap();
    }
    let host = store.entity(&Entity::Host, &Labels::new()).unwrap();
    let id = store.series_id(host, "mem_free_bytes").unwrap();
    store.append(9000, &[(id, 1.0)]).unwrap();
    store.flush().unwrap();
    drop(store);
    let store = Store::open_read_only(&dir).unwrap();
    for (i, cmdline) in cmdlines.iter().enumerate() {
        let e = &store.entities_by_pid(10 + i as i64).unwrap()[0];
        assert_eq!(e.cmdline.as_deref(), Some(*cmdline), "entity {i}");
        assert_eq!(e.cgroup.as_deref(), Some("/a b"));
        // The same through SQL, as `memlens query` shows it.
        let rows = store
            .query(&format!(
                "SELECT cmdline, kind FROM entities WHERE pid = {}",
                10 + i
            ))
            .unwrap()
            .rows;
        assert_eq!(
            rows,
            vec![vec![
                Value::Text(cmdline.to_string()),
                Value::Text("process".into())
            ]]
        );
    }
    let h = &store.entities().unwrap()[cmdlines.len()];
    assert_eq!(
        (h.kind.as_str(), h.cmdline.as_deref(), h.comm.as_deref()),
        ("host", None, None)
    );
    assert_eq!(
        store.entities_by_comm("rustc").unwrap().len(),
        cmdlines.len()
    );
    drop(store);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Bytes of the data directory after a clean stop.
fn dir_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter_map(|e| e.metadata().ok())
        .filter(|m| m.is_file())
        .map(|m| m.len())
        .sum()
}

/// Records `short` processes living 2 cycles each (18 metrics, a 300-byte
/// command line sharing most words with the others) next to one long-lived
/// one, over 600 cycles; returns the directory's bytes after a clean stop.
fn churn_bytes(name: &str, short: u64) -> u64 {
    let dir = temp_dir(name);
    let mut store = Store::open(&dir).unwrap();
    let metrics: Vec<String> = (0..18).map(|m| format!("metric_{m}_bytes")).collect();
    for cycle in 0..600u64 {
        let mut alive = vec![(1, 1u64)];
        let born = short * cycle / 600;
        if short > 0 {
            alive.extend((born.saturating_sub(1)..born).map(|n| (1000 + n as i32, n)));
        }
        let mut samples = Vec::new();
        for (pid, start) in alive {
            let mut labels = Labels::new();
            labels.insert("comm", "rustc".to_string());
            labels.insert(
                "cmdline",
                format!(
                    "/root/.rustup/toolchains/stable-x86_64-unknown-linux-gnu/bin/rustc \
                     --crate-name crate_{} --edition=2021 src/lib.rs --error-format=json \
                     --json=diagnostic-rendered-ansi,artifacts,future-incompat \
                     --crate-type lib --emit=dep-info,metadata,link -C opt-level=3 \
                     -C embed-bitcode=no --out-dir /work/main/target/release/deps",
                    pid % 40
                ),
            );
            labels.insert("cgroup", "/build.slice".to_string());
            let e = store
                .entity(
                    &Entity::Process {
                        pid,
                        start_time: start,
                    },
                    &labels,
                )
                .unwrap();
            for (m, name) in metrics.iter().enumerate() {
                let v = (4096 * (1000 + m as u64 + cycle % 3)) as f64;
                samples.push((store.series_id(e, name).unwrap(), v));
            }
        }
        store
            .append(1_700_000_000_000 + cycle as i64 * 1000, &samples)
            .unwrap();
        store.commit().unwrap();
    }
    store.flush().unwrap();
    store.checkpoint().unwrap();
    if std::env::var_os("MEMLENS_DBSTAT").is_some() {
        let r = store
            .query("SELECT name, sum(pgsize), sum(payload) FROM dbstat GROUP BY name")
            .unwrap();
        eprintln!("{name}: {:?}", r.rows);
    }
    drop(store);
    let bytes = dir_bytes(&dir);
    std::fs::remove_dir_all(&dir).unwrap();
    bytes
}

#[test]
fn a_short_lived_process_costs_little() {
    let base = churn_bytes("churn0", 0);
    let with = churn_bytes("churn300", 300);
    let per_entity = (with - base) / 300;
    eprintln!("{base} bytes without, {with} with 300 short-lived: {per_entity} bytes each");
    // Format 1 (labels as text, one row per series, 4 KiB pages) took 873
    // bytes per entity in this very test (399 with format 2); on the
    // synthetic hour of examples/churn.rs 1,169 bytes per entity.
    assert!(
        per_entity < 450,
        "{per_entity} bytes per short-lived entity"
    );
}

#[test]
fn a_newer_format_is_refused_untouched() {
    let dir = temp_dir("newer");
    drop(Store::open(&dir).unwrap());
    let db = dir.join(DB_FILE);
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute(
            "UPDATE meta SET value = ?1 WHERE key = 'format'",
            [FORMAT_VERSION + 1],
        )
        .unwrap();
    let before = std::fs::read(&db).unwrap();
    for err in [
        Store::open(&dir).unwrap_err(),
        Store::open_read_only(&dir).unwrap_err(),
    ] {
        assert!(
            matches!(err, StoreError::NewerFormat { found, .. } if found == FORMAT_VERSION + 1),
            "{err:?}"
        );
        assert!(err.to_string().contains("upgrade memlens"), "{err}");
    }
    assert_eq!(std::fs::read(&db).unwrap(), before, "file untouched");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn retention_drops_gone_entities_and_their_words_and_writing_goes_on() {
    let dir = temp_dir("retention-words");
    let mut store = Store::open_with(
        &dir,
        memlens_store::StoreOptions {
            frames_per_group: 5,
            ..Default::default()
        },
    )
    .unwrap();
    let labels = |word: &str| {
        let mut l = Labels::new();
        l.insert("comm", "cc".to_string());
        l.insert("cmdline", format!("cc -c {word}.c -o {word}.o"));
        l
    };
    // A short-lived process with words of its own, then a long-lived one.
    let mut ts = 0;
    let mut step = |store: &mut Store, pid: i32, word: &str| {
        ts += 1000;
        let e = store
            .entity(
                &Entity::Process {
                    pid,
                    start_time: pid as u64,
                },
                &labels(word),
            )
            .unwrap();
        let id = store.series_id(e, "rss_bytes").unwrap();
        store.append(ts, &[(id, 4096.0 * ts as f64)]).unwrap();
        store.commit().unwrap();
    };
    for _ in 0..5 {
        step(&mut store, 10, "gone_unique");
    }
    for _ in 0..10 {
        step(&mut store, 20, "kept");
    }
    let words = |store: &Store| -> Vec<Value> {
        store
            .query("SELECT text FROM strings WHERE text LIKE 'gone_unique%' ORDER BY text")
            .unwrap()
            .rows
            .into_iter()
            .flatten()
            .collect()
    };
    assert_eq!(words(&store).len(), 2);
    let report = store
        .apply_retention(
            &memlens_store::Retention {
                max_age_ms: Some(6_000),
                max_bytes: None,
            },
            12_000,
        )
        .unwrap();
    assert_eq!((report.groups_deleted, report.series_deleted), (1, 1));
    assert!(store.entities_by_pid(10).unwrap().is_empty());
    assert!(words(&store).is_empty(), "its own words went with it");
    // The shared words stay; the same process and words come back fine.
    for _ in 0..7 {
        step(&mut store, 10, "gone_unique");
        step(&mut store, 20, "kept");
    }
    store.flush().unwrap();
    let report = store.integrity_check().unwrap();
    assert!(report.is_ok(), "{:?}", report.problems);
    for (pid, word) in [(10, "gone_unique"), (20, "kept")] {
        let e = &store.entities_by_pid(pid).unwrap()[0];
        assert_eq!(e.cmdline, labels(word).get("cmdline").cloned());
        assert_eq!(e.comm.as_deref(), Some("cc"));
        let n = store
            .series(e.id, "rss_bytes", i64::MIN, i64::MAX)
            .unwrap()
            .len();
        assert_eq!(n, if pid == 10 { 7 } else { 17 });
    }
    drop(store);
    std::fs::remove_dir_all(&dir).unwrap();
}
