//! The MySQL/MariaDB neighbour against a real server (testkit [`MariaDb`]):
//! what `memlens snapshot --mysql` and `memlens watch` report lies between the
//! test's own `SHOW GLOBAL STATUS` reads (through the `mariadb` client, as
//! root over the socket) taken just before and after with no load running;
//! bad inputs (wrong password, a server that stops answering) show as "not
//! available", are counted on /metrics, and the agent goes on.

#[path = "common/cli.rs"]
mod cli;
#[path = "common/metrics.rs"]
mod metrics;

use cli::{memlens, memlens_json, query};
use memlens_testkit::{
    free_loopback_port, http_get, wait_for, ChildGuard, MariaDb, MariaDbSpec, TempDir,
    TEST_PASSWORD, TEST_USER,
};
use metrics::sample;
use serde_json::Value;
use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A table of ~80 MiB (300k rows of 255 bytes) against a 32 MiB pool: a full
/// scan fills the pool and misses it.
fn load_table(db: &MariaDb) {
    db.sql(
        "CREATE DATABASE t; USE t; CREATE TABLE big (id INT PRIMARY KEY AUTO_INCREMENT, pad CHAR(255)) ENGINE=InnoDB;\
         INSERT INTO big (pad) SELECT REPEAT('x', 255) FROM seq_1_to_300000;",
    )
    .expect("load table");
}

fn scan(db: &MariaDb) {
    db.sql("SELECT COUNT(*), SUM(LENGTH(pad)) FROM t.big")
        .expect("scan");
}

fn n(map: &BTreeMap<String, String>, key: &str) -> u64 {
    map[key].parse().unwrap()
}

/// Whether `v[field]` lies between the server's own `key` before and after.
fn between(
    v: &Value,
    field: &str,
    before: &BTreeMap<String, String>,
    after: &BTreeMap<String, String>,
    key: &str,
) -> Result<(), String> {
    let (a, b) = (n(before, key), n(after, key));
    let v = v[field]
        .as_u64()
        .unwrap_or_else(|| panic!("{field} missing: {v}"));
    if a.min(b) <= v && v <= a.max(b) {
        Ok(())
    } else {
        Err(format!("{field}: {v} not within [{a}, {b}] of {key}"))
    }
}

fn option_file(dir: &TempDir, password: &str) -> String {
    let path = dir.join("my.cnf");
    std::fs::write(
        &path,
        format!("[client]\nuser={TEST_USER}\npassword={password}\n"),
    )
    .unwrap();
    path.to_str().unwrap().to_string()
}

/// `memlens snapshot --json --mysql-option-file CNF` of the server, between
/// two reads of its status by the test: its pool numbers lie between them.
/// A bracket is only as good as the server's quiet: InnoDB's background
/// work (purge, page cleaner, LRU) can move `pages_data` down and up again
/// inside one with no load running (seen once in a soak: 2161, memlens 1642,
/// then 1646), so a bracket whose ends differ on a failing key is taken
/// again, at most five times; one whose ends agree is never retried.
fn bracketed_snapshot(db: &MariaDb, cnf: &str) -> Value {
    let pid = db.pid().to_string();
    let checks = [
        ("pool_pages_total", "Innodb_buffer_pool_pages_total"),
        ("pool_pages_data", "Innodb_buffer_pool_pages_data"),
        ("pool_read_requests", "Innodb_buffer_pool_read_requests"),
        ("pool_reads", "Innodb_buffer_pool_reads"),
    ];
    for attempt in 1..=5 {
        let before = db.global_status();
        let snap = memlens_json(&[
            "snapshot",
            "--json",
            "--pid",
            &pid,
            "--mysql-option-file",
            cnf,
        ]);
        let after = db.global_status();
        let servers = snap["mysql"].as_array().expect("a mysql array");
        assert_eq!(servers.len(), 1, "{snap}");
        let m = servers[0].clone();
        assert!(m["error"].is_null(), "{m}");
        assert_eq!(m["process"]["pid"].as_i64(), Some(db.pid() as i64));
        assert_eq!(
            m["pool_size_bytes"].as_u64(),
            Some(db.variable_u64("innodb_buffer_pool_size"))
        );
        let failed: Vec<(String, bool)> = checks
            .iter()
            .filter_map(|(field, key)| {
                let moved = n(&before, key) != n(&after, key);
                between(&m, field, &before, &after, key)
                    .err()
                    .map(|e| (e, moved))
            })
            .collect();
        if failed.is_empty() {
            return m;
        }
        let steady_miss = failed.iter().any(|(_, moved)| !moved);
        assert!(
            !steady_miss && attempt < 5,
            "attempt {attempt}: {:?}",
            failed.iter().map(|f| &f.0).collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    unreachable!("the last attempt returns or fails")
}

#[test]
fn with_performance_schema_memory_instruments_on() {
    let db = MariaDb::start(&MariaDbSpec {
        extra_args: vec![
            "--performance-schema=ON".into(),
            "--performance-schema-instrument=memory/%=ON".into(),
        ],
        ..MariaDbSpec::default()
    });
    load_table(&db);
    scan(&db);
    let dir = TempDir::new("mysql-pfs");
    let cnf = option_file(&dir, TEST_PASSWORD);
    let sum = "SELECT SUM(CURRENT_NUMBER_OF_BYTES_USED) FROM performance_schema.memory_summary_global_by_event_name";
    let own = || -> f64 { db.sql(sum).unwrap().trim().parse().unwrap() };
    let before = own();
    let m = bracketed_snapshot(&db, &cnf);
    let after = own();
    let got = m["instrumented_bytes"]
        .as_f64()
        .unwrap_or_else(|| panic!("{m}"));
    // Not a counter: each connection's own allocations come and go (the
    // test's client and memlens's differ), so 5 % around the test's reads.
    let (lo, hi) = (before.min(after) * 0.95, before.max(after) * 1.05);
    assert!(
        lo <= got && got <= hi,
        "instrumented {got} not within [{lo}, {hi}]"
    );
    eprintln!("performance_schema memory instruments: {got} B (test's reads {before}, {after})");
}

#[test]
fn snapshot_reads_lie_between_the_servers_own_reads() {
    let db = MariaDb::start(&MariaDbSpec::default());
    load_table(&db);
    scan(&db);
    let dir = TempDir::new("mysql-snapshot");
    let cnf = option_file(&dir, TEST_PASSWORD);
    let pid = db.pid().to_string();

    let m = &bracketed_snapshot(&db, &cnf);
    // The pool's resident bytes hold at least the data pages (there is no
    // swap to push them out on the test hosts; 5 % for pages read in
    // between); the split against MariaDB's counts is checked by
    // the_pool_ledger_matches_the_data_pages_after_a_full_scan.
    let data_bytes =
        m["pool_pages_data"].as_u64().unwrap() * m["page_size_bytes"].as_u64().unwrap();
    let resident = m["pool_resident_bytes"]
        .as_u64()
        .expect("pool mapping found");
    assert!(
        resident as f64 >= 0.95 * data_bytes as f64,
        "resident {resident} < data {data_bytes}"
    );
    eprintln!(
        "pool {} B, data pages {data_bytes} B, pool mapping resident {resident} B",
        m["pool_size_bytes"]
    );

    // diagnose over a 3 s live window with scans running: the hit ratio over
    // the window and the ledger of the server's anonymous RSS.
    let socket = db.socket().to_path_buf();
    let scans = std::thread::spawn(move || {
        let until = Instant::now() + Duration::from_secs(4);
        while Instant::now() < until {
            let _ = Command::new("mariadb")
                .args(["--no-defaults", "-uroot", "-N", "-B"])
                .arg(format!("--socket={}", socket.display()))
                .args(["-e", "SELECT COUNT(*), SUM(LENGTH(pad)) FROM t.big"])
                .output();
        }
    });
    let report = memlens_json(&[
        "diagnose",
        "--pid",
        &pid,
        "--window",
        "3s",
        "--no-history",
        "--no-profiles",
        "--json",
        "--mysql-option-file",
        &cnf,
    ]);
    scans.join().unwrap();
    let section = report["sections"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "mysql")
        .unwrap_or_else(|| panic!("no mysql section: {report}"));
    // Other servers on the host (other tests') are listed too.
    let server = section["data"]["servers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["pid"].as_i64() == Some(db.pid() as i64))
        .unwrap_or_else(|| panic!("server {pid} not in {section}"));
    let hr = server["hit_ratio"]
        .as_f64()
        .unwrap_or_else(|| panic!("{server}"));
    assert!((0.0..=1.0).contains(&hr), "{server}");
    let ledger = &server["ledger"];
    let anon = ledger["anon_rss_bytes"].as_f64().unwrap();
    let pool = ledger["pool_resident_bytes"].as_f64().unwrap();
    assert!(
        pool > 0.0 && pool < anon,
        "the pool is part of the anon RSS: {ledger}"
    );
    eprintln!("diagnose: hit ratio {hr:.4}, ledger {ledger}");

    // The table says it too; a wrong password is "not available", exit 0.
    let text = memlens(&["snapshot", "--pid", &pid, "--mysql-option-file", &cnf]);
    assert!(text.contains(&format!("mysql {pid} ")), "{text}");
    let bad = option_file(&dir, "wrong");
    let out = Command::new(env!("CARGO_BIN_EXE_memlens"))
        .args(["snapshot", "--pid", &pid, "--mysql-option-file", &bad])
        .output()
        .unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stdout.contains("not available") && stdout.contains("Access denied"),
        "{stdout}"
    );
    assert!(stderr.contains("Access denied"), "{stderr}");
}

/// The label naming the server's series on /metrics: the agent watches it
/// alone (`--pid`), and names its series by comm and cgroup, not pid.
fn server_label(pid: &str) -> String {
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap();
    format!("comm=\"{}\"", comm.trim_end())
}

fn agent(config: &str, data: &str, addr: &str, pid: &str) -> ChildGuard {
    ChildGuard(
        Command::new(env!("CARGO_BIN_EXE_memlens"))
            .args([
                "watch", "--config", config, "--data", data, "--listen", addr,
            ])
            .args(["--pid", pid, "--interval", "0.5", "--quiet"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start memlens watch"),
    )
}

#[test]
fn watch_stores_and_exports_the_server_and_survives_bad_inputs() {
    let mut db = MariaDb::start(&MariaDbSpec::default());
    load_table(&db);
    scan(&db);
    let dir = TempDir::new("mysql-watch");
    let pid = db.pid().to_string();
    let config = dir.join("watch.toml");
    // A 1 s read timeout: the stopped server below must fail the read fast.
    std::fs::write(
        &config,
        format!("[mysql]\nuser = \"{TEST_USER}\"\npassword = \"{TEST_PASSWORD}\"\nread_timeout = \"1s\"\n"),
    )
    .unwrap();
    let data = dir.join("history");
    let addr = format!("127.0.0.1:{}", free_loopback_port());
    let _agent = agent(
        config.to_str().unwrap(),
        data.to_str().unwrap(),
        &addr,
        &pid,
    );
    let label = server_label(&pid);
    let up = |text: &str| sample(text, "memlens_mysql_up", &label);
    let text = wait_for("the server on /metrics", Duration::from_secs(60), || {
        http_get(&addr, "/metrics")
            .ok()
            .filter(|t| up(t) == Some(1.0))
    });
    let pool = sample(&text, "memlens_mysql_pool_size_bytes", &label).unwrap();
    assert_eq!(pool as u64, db.variable_u64("innodb_buffer_pool_size"));
    assert!(
        text.contains("memlens_mysql_pool_read_requests_total{"),
        "counter named _total"
    );

    // The server stops answering (SIGSTOP): reads time out, it shows as down,
    // the error is counted, the agent goes on; after SIGCONT it is back.
    let errors = |t: &str| {
        sample(
            t,
            "memlens_agent_collector_errors_total",
            "collector=\"mysql\"",
        )
        .unwrap_or(0.0)
    };
    unsafe { libc::kill(db.pid(), libc::SIGSTOP) };
    let text = wait_for(
        "the stopped server counted",
        Duration::from_secs(60),
        || {
            http_get(&addr, "/metrics")
                .ok()
                .filter(|t| up(t) == Some(0.0) && errors(t) >= 1.0)
        },
    );
    let counted = errors(&text);
    unsafe { libc::kill(db.pid(), libc::SIGCONT) };
    wait_for("the server back", Duration::from_secs(60), || {
        http_get(&addr, "/metrics")
            .ok()
            .filter(|t| up(t) == Some(1.0))
    });
    eprintln!("{counted} mysql read errors while the server was stopped");

    // The history holds the server as its own entity kind, linked to its process.
    let data_s = data.to_str().unwrap();
    let rows = wait_for("the mysql entity stored", Duration::from_secs(60), || {
        cli::history_ready(data_s)
            .then(|| {
                query(
                    data_s,
                    "SELECT kind, pid, comm FROM entities WHERE kind = 'mysql'",
                )
            })
            .filter(|r| !r.is_empty())
    });
    assert_eq!(rows[0]["pid"].as_i64(), Some(db.pid() as i64), "{rows:?}");
    db.kill();
}

/// Full scans of `t.w` (~30 MiB: fits a 48 MiB pool, not a 16 MiB one) from
/// a thread until `stop`, bounded to 3 minutes.
fn read_load(
    socket: std::path::PathBuf,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let until = Instant::now() + Duration::from_secs(180);
        while !stop.load(std::sync::atomic::Ordering::Relaxed) && Instant::now() < until {
            let _ = Command::new("mariadb")
                .args(["--no-defaults", "-uroot", "-N", "-B"])
                .arg(format!("--socket={}", socket.display()))
                .args(["-e", "SELECT COUNT(*), SUM(LENGTH(pad)) FROM t.w"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    })
}

#[test]
fn a_shrunk_pool_under_read_load_is_named_as_the_cause() {
    let db = MariaDb::start(&MariaDbSpec::default());
    db.sql(
        "CREATE DATABASE t; USE t; CREATE TABLE w (id INT PRIMARY KEY AUTO_INCREMENT, pad CHAR(255)) ENGINE=InnoDB;\
         INSERT INTO w (pad) SELECT REPEAT('x', 255) FROM seq_1_to_100000;",
    )
    .expect("load table");
    let dir = TempDir::new("mysql-shrink");
    let pid = db.pid().to_string();
    let config = dir.join("watch.toml");
    std::fs::write(
        &config,
        format!(
            "[mysql]\nuser = \"{TEST_USER}\"\npassword = \"{TEST_PASSWORD}\"\n\n[findings]\nmysql_window = \"10s\"\n"
        ),
    )
    .unwrap();
    let data = dir.join("history");
    let addr = format!("127.0.0.1:{}", free_loopback_port());
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = read_load(db.socket().to_path_buf(), stop.clone());
    let _agent = agent(
        config.to_str().unwrap(),
        data.to_str().unwrap(),
        &addr,
        &pid,
    );
    let label = server_label(&pid);
    wait_for("the server on /metrics", Duration::from_secs(60), || {
        http_get(&addr, "/metrics")
            .ok()
            .filter(|t| sample(t, "memlens_mysql_up", &label) == Some(1.0))
    });
    // A full window (10 s) of the warm pool under load is the detector's
    // baseline: wall-clock pacing, since the window is wall-clock time; 15 s
    // leaves the agent's 0.5 s cycles slack on a loaded host.
    std::thread::sleep(Duration::from_secs(15));
    let active = |t: &str| {
        sample(
            t,
            "memlens_finding_active",
            "finding=\"mysql.hit_ratio_drop\"",
        )
    };
    let text = http_get(&addr, "/metrics").unwrap();
    assert_ne!(active(&text), Some(1.0), "no drop before the shrink");
    db.sql("SET GLOBAL innodb_buffer_pool_size = 16777216")
        .expect("shrink the pool");
    wait_for("the hit-ratio finding", Duration::from_secs(90), || {
        http_get(&addr, "/metrics")
            .ok()
            .filter(|t| active(t) == Some(1.0))
    });
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    load.join().unwrap();
    let data_s = data.to_str().unwrap();
    let rows = wait_for("the finding stored", Duration::from_secs(30), || {
        Some(query(
            data_s,
            "SELECT evidence, recommendation FROM findings WHERE finding = 'mysql.hit_ratio_drop'",
        ))
        .filter(|r| !r.is_empty())
    });
    let recommendation = rows[0]["recommendation"].as_str().unwrap_or_default();
    let evidence = rows[0]["evidence"].to_string();
    assert!(
        recommendation.starts_with("cause: pool_shrank"),
        "{recommendation}"
    );
    assert!(evidence.contains("cause_pool_shrank"), "{evidence}");
    eprintln!("{recommendation}\n{evidence}");
}

/// The server `pid`'s entry of `memlens diagnose --json`'s mysql section
/// (other servers on the host, such as other tests', are listed too).
fn diagnosed_server(pid: i32, cnf: &str) -> Value {
    let report = memlens_json(&[
        "diagnose",
        "--pid",
        &pid.to_string(),
        "--window",
        "1s",
        "--no-history",
        "--no-profiles",
        "--json",
        "--mysql-option-file",
        cnf,
    ]);
    let section = report["sections"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "mysql")
        .unwrap_or_else(|| panic!("no mysql section: {report}"));
    section["data"]["servers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["pid"].as_i64() == Some(pid as i64))
        .unwrap_or_else(|| panic!("server {pid} not in {section}"))
        .clone()
}

/// `RssAnon` of `pid` in bytes, read by the test.
fn rss_anon(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("RssAnon:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .expect("RssAnon")
        * 1024
}

/// Waits (deadline 60 s) until the pool's data and free pages stayed the
/// same over a second: the background work after a bulk load and scan (index
/// statistics, purge, LRU flushing) has settled.
fn wait_quiet(db: &MariaDb) {
    let read = || {
        let s = db.global_status();
        (
            n(&s, "Innodb_buffer_pool_pages_data"),
            n(&s, "Innodb_buffer_pool_pages_free"),
        )
    };
    let mut last = read();
    wait_for("a quiet pool", Duration::from_secs(60), || {
        std::thread::sleep(Duration::from_secs(1));
        let now = read();
        let quiet = now == last;
        last = now;
        quiet.then_some(())
    });
}

/// The pool's part of the ledger against MariaDB's own counts. MariaDB
/// 10.11.19 reserves `innodb_buffer_pool_size_max` (8 TiB) of address space
/// and commits the pool at its start; the frames of that range hold the
/// block descriptors (`pool size / page size − pages_total` of them), the
/// data pages, misc pages (hash index, locks) and free pages, and a free
/// frame is resident once it has held a page. So after a full scan of a
/// table larger than the pool, the resident frames that are neither
/// descriptors nor misc lie between `pages_data × page_size` and
/// `(pages_data + pages_free) × page_size`. `--innodb-lru-scan-depth=100`
/// (the minimum; the default 1536 is over a third of this 64 MiB pool: seen
/// 1068 free pages of which 364 once used, 18 % of the data pages, in a
/// 48 MiB pool) keeps the free list near 100-130 pages after the scan, ~3 %
/// of the ~3900 data pages; the test checks from its own reads that free
/// pages are at most 5 % of the data pages, so the pool's data part by the
/// kernel's count is within 5 % of `pages_data × page_size`, bracketed by
/// the test's reads. When the free list is longer (once 211 pages, 5.5 %,
/// all resident: memlens's count was exactly data + free pages), nothing is
/// judged: another scan turns free pages into data pages and the bracket is
/// taken again.
#[test]
fn the_pool_ledger_matches_the_data_pages_after_a_full_scan() {
    let db = MariaDb::start(&MariaDbSpec {
        buffer_pool_bytes: 64 << 20,
        extra_args: vec!["--innodb-lru-scan-depth=100".into()],
        ..MariaDbSpec::default()
    });
    load_table(&db);
    scan(&db);
    scan(&db);
    let dir = TempDir::new("mysql-pool-ledger");
    let cnf = option_file(&dir, TEST_PASSWORD);
    let pool_size = db.variable_u64("innodb_buffer_pool_size");
    let page = db.variable_u64("innodb_page_size");
    wait_quiet(&db);
    for attempt in 1..=5 {
        let before = db.global_status();
        let rss_before = rss_anon(db.pid());
        let server = diagnosed_server(db.pid(), &cnf);
        let rss_after = rss_anon(db.pid());
        let after = db.global_status();
        let ledger = &server["ledger"];
        assert_eq!(ledger["pool_resident_source"], "range", "{server}");
        let pool = &ledger["pool"];
        let f = |v: &Value| v.as_f64().unwrap_or_else(|| panic!("{server}"));
        let pages = |key: &str| (n(&before, key), n(&after, key));
        let (data_a, data_b) = pages("Innodb_buffer_pool_pages_data");
        let (free_a, free_b) = pages("Innodb_buffer_pool_pages_free");
        let (total_a, total_b) = pages("Innodb_buffer_pool_pages_total");
        assert_eq!(total_a, total_b);
        // The precondition the 5 % rests on, from the test's own reads.
        let small_free = free_a.max(free_b) * 20 <= data_a.min(data_b);
        // Descriptor frames: MariaDB's count, exactly.
        assert_eq!(
            f(&pool["descriptor_bytes"]) as u64,
            pool_size - total_a * page,
            "{pool}"
        );
        // The resident range is the pool's: never more than the pool.
        let resident = f(&pool["resident_bytes"]);
        assert!(resident <= pool_size as f64, "{pool}");
        let frames = f(&pool["page_frames_resident_bytes"]);
        let lo = 0.95 * (data_a.min(data_b) * page) as f64;
        let hi = 1.05 * (data_a.max(data_b) * page) as f64;
        let at_most = ((data_a.max(data_b) + free_a.max(free_b)) * page) as f64;
        // The anon RSS the ledger splits is the process's, between the
        // test's reads (4 MiB either side: the server allocates as it answers).
        let anon = f(&ledger["anon_rss_bytes"]);
        let rss_ok = (rss_before.min(rss_after) - (4 << 20)) as f64 <= anon
            && anon <= (rss_before.max(rss_after) + (4 << 20)) as f64;
        assert!(rss_ok, "anon {anon} not near [{rss_before}, {rss_after}]");
        if small_free && lo <= frames && frames <= hi && frames <= at_most {
            let untracked = f(&ledger["untracked_bytes"]);
            eprintln!(
                "pool ledger: resident {resident} B = descriptors {} + misc {} + page frames {frames} \
                 (data pages {data_a}..{data_b} x {page}, free {free_a}..{free_b}); \
                 anon {anon}, log buffers {}, connections {}, untracked {untracked} ({:.1} %)",
                pool["descriptor_bytes"],
                pool["misc_bytes"],
                ledger["log_buffer_bytes"],
                ledger["connections_bytes"],
                100.0 * untracked / anon
            );
            // The unexplained rest of the anon RSS, after the pool, the redo
            // log buffers and the connections: the server's binary's data,
            // glibc heaps and arenas, thread stacks, the MyISAM key cache and
            // the Aria page cache (128 MiB each, allocated at start and
            // touched as system tables are read), the table cache and the
            // dictionary. Measured 55-65 MiB on this fresh server whatever
            // the pool size; bound: 96 MiB.
            assert!(
                untracked <= (96 << 20) as f64,
                "untracked {untracked}: {server}"
            );
            return;
        }
        // InnoDB's background work (statistics, purge, LRU flushing) can
        // move pages between data and free inside the bracket: a bracket
        // whose ends moved is taken again once the pool is quiet. A free
        // list too long for the 5 % is shortened by another scan first.
        let moved = data_a != data_b || free_a != free_b;
        if !small_free && attempt < 5 {
            scan(&db);
            wait_quiet(&db);
            continue;
        }
        assert!(
            moved && attempt < 5,
            "attempt {attempt}: free pages {free_a}/{free_b}, data pages {data_a}/{data_b}: \
             page frames {frames} B not within [{lo}, {hi}] (and <= {at_most}): {server}"
        );
        wait_quiet(&db);
    }
}

/// `n` `mariadb` clients, each sorting `t.s` by `k` (a filesort, no
/// temporary table: "Using where; Using filesort") and sleeping 60 s at its
/// last row, id 200000: by then each sort buffer is full. MariaDB grows a
/// sort buffer as keys come in, up to sort_buffer_size, and packs the
/// VARCHAR keys to their length: 200,000 keys of 64 characters (~13 MB
/// packed) overflow 4 MiB. A 20,000-row table of 32-character keys held
/// ~287 KB per sort at 4 MiB on a quiet machine (it had passed under load).
struct Sorters {
    clients: Vec<ChildGuard>,
}

impl Sorters {
    fn start(db: &MariaDb, n: usize) -> Sorters {
        let clients = (0..n)
            .map(|_| {
                ChildGuard(
                    Command::new("mariadb")
                        .args(["--no-defaults", "-uroot", "-N", "-B"])
                        .arg(format!("--socket={}", db.socket().display()))
                        .args([
                            "-e",
                            "SELECT id FROM t.s WHERE SLEEP(IF(id = 200000, 60, 0)) = 0 ORDER BY k",
                        ])
                        .stdout(Stdio::null())
                        .stderr(Stdio::null())
                        .spawn()
                        .expect("start a mariadb client"),
                )
            })
            .collect();
        let sorters = Sorters { clients };
        let count =
            "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE STATE = 'User sleep'";
        wait_for(
            "the sorts at their last row",
            Duration::from_secs(120),
            || (db.sql(count).ok()?.trim().parse::<usize>().ok()? == n).then_some(()),
        );
        sorters
    }

    /// Ends the sorts (KILL QUERY) and waits for the clients to exit.
    fn stop(mut self, db: &MariaDb) {
        let ids = db
            .sql("SELECT ID FROM information_schema.PROCESSLIST WHERE STATE = 'User sleep'")
            .unwrap();
        let kills: String = ids
            .split_whitespace()
            .map(|id| format!("KILL QUERY {id};"))
            .collect();
        if !kills.is_empty() {
            db.sql(&kills).unwrap();
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        for c in &mut self.clients {
            while !matches!(c.0.try_wait(), Ok(Some(_))) {
                assert!(Instant::now() < deadline, "a sorting client did not exit");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

/// The connections' part of the ledger (the threads' MEMORY_USED) and the
/// test's own sum of it just before and after.
fn connections_part(db: &MariaDb, cnf: &str) -> (f64, f64, f64) {
    let sum = "SELECT SUM(MEMORY_USED) FROM information_schema.PROCESSLIST";
    let own = || -> f64 { db.sql(sum).unwrap().trim().parse().unwrap() };
    let before = own();
    let server = diagnosed_server(db.pid(), cnf);
    let after = own();
    let ledger = &server["ledger"];
    assert_eq!(ledger["connections_source"], "processlist", "{server}");
    let got = ledger["connections_bytes"]
        .as_f64()
        .unwrap_or_else(|| panic!("{server}"));
    (got, before, after)
}

/// 50 connections holding full sort buffers, at 256 KiB and at 4 MiB: the
/// connections' part grows by 50 × sort_buffer_size plus a per-connection
/// baseline that is the same in both runs, so the difference of the two
/// runs' growth is 50 × (4 MiB − 256 KiB) (188 MiB), within 10 %.
#[test]
fn fifty_sorting_connections_grow_the_connections_part_by_their_sort_buffers() {
    const N: usize = 50;
    let db = MariaDb::start(&MariaDbSpec::default());
    db.sql(
        "CREATE DATABASE t; USE t; CREATE TABLE s (id INT PRIMARY KEY, k VARCHAR(64)) ENGINE=InnoDB;\
         INSERT INTO s SELECT seq, CONCAT(MD5(seq), MD5(seq + 1)) FROM seq_1_to_200000;\
         ANALYZE TABLE s;",
    )
    .expect("load table");
    let plan = db
        .sql("EXPLAIN SELECT id FROM t.s WHERE SLEEP(IF(id = 200000, 60, 0)) = 0 ORDER BY k")
        .unwrap();
    assert!(
        plan.contains("Using filesort") && !plan.contains("Using temporary"),
        "{plan}"
    );
    let dir = TempDir::new("mysql-sorts");
    let cnf = option_file(&dir, TEST_PASSWORD);
    let mut growth = Vec::new();
    for sort_buffer in [256u64 << 10, 4 << 20] {
        db.sql(&format!("SET GLOBAL sort_buffer_size = {sort_buffer}"))
            .unwrap();
        let (idle, _, _) = connections_part(&db, &cnf);
        let sorters = Sorters::start(&db, N);
        let (busy, own_before, own_after) = connections_part(&db, &cnf);
        sorters.stop(&db);
        // The test's sum and memlens's differ by their own querying threads
        // (~150 KiB each): 1 MiB either side.
        let slack = (1 << 20) as f64;
        assert!(
            own_before.min(own_after) - slack <= busy && busy <= own_before.max(own_after) + slack,
            "connections part {busy} not within the test's reads {own_before}, {own_after}"
        );
        let grew = busy - idle;
        eprintln!(
            "sort_buffer_size {sort_buffer}: connections part {idle} -> {busy} B, {:.0} B per connection",
            grew / N as f64
        );
        // Each connection holds at least its full sort buffer.
        assert!(grew >= (N as u64 * sort_buffer) as f64, "grew {grew}");
        growth.push(grew);
    }
    let expected = (N as u64 * ((4 << 20) - (256 << 10))) as f64;
    let got = growth[1] - growth[0];
    eprintln!(
        "difference of the two runs {got} B, expected {expected} B ({:+.2} %)",
        100.0 * (got - expected) / expected
    );
    assert!(
        (got - expected).abs() <= 0.10 * expected,
        "the connections' part grew {got} B more at 4 MiB than at 256 KiB, expected {expected} B"
    );
}

/// Full scans of `table` by one client: back to back, or one a second
/// (wall-clock pacing) when `paced`; until `stop`, bounded to 3 minutes.
fn scan_load(
    socket: std::path::PathBuf,
    table: &'static str,
    paced: bool,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let start = Instant::now();
        let mut next = start;
        while !stop.load(std::sync::atomic::Ordering::Relaxed)
            && start.elapsed() < Duration::from_secs(180)
        {
            if paced {
                let now = Instant::now();
                if now < next {
                    std::thread::sleep((next - now).min(Duration::from_millis(100)));
                    continue;
                }
                next += Duration::from_secs(1);
            }
            let _ = Command::new("mariadb")
                .args(["--no-defaults", "-uroot", "-N", "-B"])
                .arg(format!("--socket={}", socket.display()))
                .args([
                    "-e",
                    &format!("SELECT COUNT(*), SUM(LENGTH(pad)) FROM t.{table}"),
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    })
}

/// The "query mix changed" cause: the pool keeps its size and stays full,
/// no faults, but more read requests a second and misses. A paced scan of
/// `t.w` (~30 MiB, fits the 48 MiB pool) once a second is the baseline;
/// then three clients scan back to back, two of them `t.big` (~80 MiB,
/// larger than the pool). `--innodb-lru-scan-depth=100` keeps InnoDB's free
/// list small: with the default 1536 (half this pool) the LRU flusher frees
/// pages while the big table streams through, the data pages fall by more
/// than 10 % and the drop would rightly read as the pool shrinking.
#[test]
fn a_new_query_mix_on_the_same_pool_is_named_as_the_cause() {
    let db = MariaDb::start(&MariaDbSpec {
        extra_args: vec!["--innodb-lru-scan-depth=100".into()],
        ..MariaDbSpec::default()
    });
    load_table(&db);
    db.sql(
        "USE t; CREATE TABLE w (id INT PRIMARY KEY AUTO_INCREMENT, pad CHAR(255)) ENGINE=InnoDB;\
         INSERT INTO w (pad) SELECT REPEAT('x', 255) FROM seq_1_to_100000;",
    )
    .expect("load table");
    let dir = TempDir::new("mysql-mix");
    let pid = db.pid().to_string();
    let config = dir.join("watch.toml");
    std::fs::write(
        &config,
        format!(
            "[mysql]\nuser = \"{TEST_USER}\"\npassword = \"{TEST_PASSWORD}\"\n\n[findings]\nmysql_window = \"10s\"\n"
        ),
    )
    .unwrap();
    let data = dir.join("history");
    let addr = format!("127.0.0.1:{}", free_loopback_port());
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let socket = db.socket().to_path_buf();
    let mut loads = vec![scan_load(socket.clone(), "w", true, stop.clone())];
    let _agent = agent(
        config.to_str().unwrap(),
        data.to_str().unwrap(),
        &addr,
        &pid,
    );
    let label = server_label(&pid);
    wait_for("the server on /metrics", Duration::from_secs(60), || {
        http_get(&addr, "/metrics")
            .ok()
            .filter(|t| sample(t, "memlens_mysql_up", &label) == Some(1.0))
    });
    // A full window (10 s) of the paced load is the baseline (wall-clock
    // pacing: the window is wall-clock time; 15 s leaves slack).
    std::thread::sleep(Duration::from_secs(15));
    let active = |t: &str| {
        sample(
            t,
            "memlens_finding_active",
            "finding=\"mysql.hit_ratio_drop\"",
        )
    };
    let text = http_get(&addr, "/metrics").unwrap();
    assert_ne!(active(&text), Some(1.0), "no drop before the new mix");
    let pool_before = db.variable_u64("innodb_buffer_pool_size");
    for table in ["big", "big", "w"] {
        loads.push(scan_load(socket.clone(), table, false, stop.clone()));
    }
    wait_for("the hit-ratio finding", Duration::from_secs(90), || {
        http_get(&addr, "/metrics")
            .ok()
            .filter(|t| active(t) == Some(1.0))
    });
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for l in loads {
        l.join().unwrap();
    }
    assert_eq!(db.variable_u64("innodb_buffer_pool_size"), pool_before);
    let data_s = data.to_str().unwrap();
    let rows = wait_for("the finding stored", Duration::from_secs(30), || {
        Some(query(
            data_s,
            "SELECT evidence, recommendation FROM findings WHERE finding = 'mysql.hit_ratio_drop'",
        ))
        .filter(|r| !r.is_empty())
    });
    let recommendation = rows[0]["recommendation"].as_str().unwrap_or_default();
    let evidence = rows[0]["evidence"].to_string();
    eprintln!("{recommendation}\n{evidence}");
    assert!(
        recommendation.starts_with("cause: query_mix_changed"),
        "{recommendation}"
    );
    assert!(evidence.contains("cause_query_mix_changed"), "{evidence}");
}
