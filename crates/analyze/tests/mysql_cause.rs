//! The hit-ratio drop's cause in the engine: the buffer pool is anonymous
//! memory, so the page cache's refaults and, on a host without swap, the
//! server's major faults (file pages) are not its pages coming back; with
//! swap, major faults are.

use memlens_analyze::finding::MYSQL_HIT_RATIO_DROP;
use memlens_analyze::{Config, Engine, Finding};
use memlens_model::series::{Entity, Point};

fn p(entity: &Entity, metric: &'static str, value: f64) -> Point {
    Point {
        entity: entity.clone(),
        metric,
        value,
    }
}

/// 90 s at 1 s of a server doing 10,000 read requests a second, 200 of
/// them from disk, then from 60 s on 3,800 from disk at the same rate,
/// while its process's major faults and its cgroup's file refaults climb
/// 500 a second (another process's I/O on the host); its anon refaults
/// stay at zero. The host has `swap_bytes` of swap.
fn cause(swap_bytes: f64) -> Vec<String> {
    let mut engine = Engine::new(Config::default());
    let (pid, start_time) = (4242, 77);
    let server = Entity::Mysql { pid, start_time };
    let process = Entity::Process { pid, start_time };
    let cgroup = Entity::Cgroup {
        path: "/db".to_string(),
    };
    engine.set_process_cgroup(&process, "/db");
    let mut findings: Vec<Finding> = Vec::new();
    let (mut reads, mut faults) = (0.0, 0.0);
    for t in 0..=90i64 {
        let after = t >= 60;
        reads += if after { 3800.0 } else { 200.0 };
        if after {
            faults += 500.0;
        }
        let points = vec![
            p(&Entity::Host, "mem_total_bytes", 24e9),
            p(&Entity::Host, "swap_total_bytes", swap_bytes),
            p(&cgroup, "usage_bytes", 300e6),
            p(&cgroup, "file_refaults", faults),
            p(&cgroup, "anon_refaults", 0.0),
            p(&process, "rss_bytes", 200e6),
            p(&process, "major_faults", faults),
            p(&server, "mysql_pool_size_bytes", 128.0 * 1048576.0),
            p(&server, "mysql_pool_pages_data", 8000.0),
            p(&server, "mysql_pool_reads", reads),
            p(&server, "mysql_pool_read_requests", 10_000.0 * t as f64),
        ];
        findings.extend(engine.observe(1_000_000 + t * 1000, &points));
    }
    findings
        .iter()
        .filter(|f| f.id == MYSQL_HIT_RATIO_DROP)
        .map(|f| f.recommendation.clone())
        .collect()
}

#[test]
fn file_faults_on_a_host_without_swap_are_not_the_pools_pages() {
    let recommendations = cause(0.0);
    assert!(!recommendations.is_empty(), "no drop found");
    assert!(
        recommendations[0].starts_with("cause: query_mix_changed"),
        "{recommendations:?}"
    );
}

#[test]
fn with_swap_the_servers_major_faults_may_be_the_pools_pages() {
    let recommendations = cause(8e9);
    assert!(!recommendations.is_empty(), "no drop found");
    assert!(
        recommendations[0].starts_with("cause: pages_reclaimed"),
        "{recommendations:?}"
    );
}
