//! The MySQL/MariaDB section: each server's buffer pool, its hit ratio over
//! the window (from counter deltas between a read at the window's start and
//! one at its end; live windows only), the ledger of its anonymous RSS, and
//! RSS against the pool (memlens_analyze::mysql). A server that could not be
//! read shows as not available. With `--mysql`.

use super::{Context, Section};
use crate::show::human_bytes;
use memlens_analyze::mysql::{ledger, rss_vs_pool, MysqlConfig, ServerPoint};
use memlens_model::MysqlSample;

fn point(m: &MysqlSample, ts_ms: u64, rss: Option<u64>) -> Option<ServerPoint> {
    Some(ServerPoint {
        ts_ms: ts_ms as i64,
        pool_size_bytes: m.pool_size_bytes? as f64,
        pages_data: m.pool_pages_data.unwrap_or(0) as f64,
        read_requests: m.pool_read_requests? as f64,
        reads: m.pool_reads? as f64,
        rss_bytes: rss.map(|r| r as f64),
        major_faults: None,
        refaults: None,
    })
}

/// Builds the `mysql` section.
pub fn section(context: &Context) -> Section {
    let mut text = Vec::new();
    let mut rows = Vec::new();
    let end = context.snapshot;
    for m in &end.mysql {
        let pid = m.process.pid;
        let process = end
            .processes
            .iter()
            .find(|p| p.pid == pid && p.start_time == m.process.start_time);
        if let Some(error) = &m.error {
            text.push(format!(
                "  mysql {pid} ({}): not available: {error}",
                m.endpoint
            ));
            rows.push(serde_json::json!({ "pid": pid, "endpoint": m.endpoint, "error": error }));
            continue;
        }
        let start = context
            .first
            .mysql
            .iter()
            .find(|s| s.process == m.process && s.error.is_none());
        let start_rss = context
            .first
            .processes
            .iter()
            .find(|p| p.pid == pid && p.start_time == m.process.start_time)
            .and_then(|p| p.rss_bytes);
        let rss = process.and_then(|p| p.rss_bytes);
        let a = start.and_then(|s| point(s, context.first.taken_at_unix_ms, start_rss));
        let b = point(m, end.taken_at_unix_ms, rss);
        let hit_ratio = a.zip(b).and_then(|(a, b)| {
            let req = b.read_requests - a.read_requests;
            let miss = b.reads - a.reads;
            (req > 0.0 && miss >= 0.0).then(|| 1.0 - (miss / req).min(1.0))
        });
        let page = m.page_size_bytes.unwrap_or(16384) as f64;
        let data = m.pool_pages_data.unwrap_or(0) as f64 * page;
        let anon = process
            .and_then(|p| p.anon_bytes.or(p.rss_bytes))
            .unwrap_or(0) as f64;
        let l = ledger(
            anon,
            m.pool_resident_bytes.map(|v| v as f64),
            data,
            m.memory_used_bytes.map(|v| v as f64),
            m.memory_used_initial_bytes.map(|v| v as f64),
        );
        let points: Vec<ServerPoint> = a.into_iter().chain(b).collect();
        let vs = rss_vs_pool(&points, &MysqlConfig::default());
        let b_opt = |v: Option<f64>| v.map_or("-".to_string(), |v| human_bytes(v as u64));
        text.push(format!(
            "  mysql {pid} ({}) {}: pool {}  hit ratio over the window {}  RSS/pool {}",
            m.endpoint,
            m.version.as_deref().unwrap_or("-"),
            b_opt(m.pool_size_bytes.map(|v| v as f64)),
            hit_ratio.map_or(
                "not available (no reading at the window's start)".to_string(),
                |h| format!("{:.4}", h)
            ),
            vs.map_or("-".to_string(), |v| format!("{:.0} %", v.ratio * 100.0)),
        ));
        text.push(format!(
            "    ledger of anon RSS {}: pool resident {} (data pages {}), connections {}, allocator/untracked {}",
            human_bytes(l.anon_rss_bytes as u64),
            b_opt(l.pool_resident_bytes),
            human_bytes(l.pool_data_bytes as u64),
            b_opt(l.connections_bytes),
            human_bytes(l.untracked_bytes as u64),
        ));
        rows.push(serde_json::json!({
            "pid": pid,
            "endpoint": m.endpoint,
            "pool_size_bytes": m.pool_size_bytes,
            "pool_pages_data": m.pool_pages_data,
            "page_size_bytes": m.page_size_bytes,
            "hit_ratio": hit_ratio,
            "rss_to_pool_ratio": vs.map(|v| v.ratio),
            "ledger": {
                "anon_rss_bytes": l.anon_rss_bytes,
                "pool_resident_bytes": l.pool_resident_bytes,
                "pool_data_bytes": l.pool_data_bytes,
                "connections_bytes": l.connections_bytes,
                "untracked_bytes": l.untracked_bytes,
            },
        }));
    }
    let mut lines = vec![format!(
        "{} MySQL/MariaDB servers read (a hit-ratio drop by cause is judged live by `memlens watch` over its window)",
        end.mysql.len()
    )];
    lines.extend(text);
    Section {
        name: "mysql",
        title: "MySQL/MariaDB: buffer pool and memory ledger".to_string(),
        findings: Vec::new(),
        text: lines,
        data: serde_json::json!({ "servers": rows }),
    }
}
