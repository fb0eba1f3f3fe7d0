//! The MySQL/MariaDB section: each server's buffer pool, its hit ratio over
//! the window (from counter deltas between a read at the window's start and
//! one at its end; live windows only), the ledger of its anonymous RSS, and
//! RSS against the pool (memlens_analyze::mysql). A server that could not be
//! read shows as not available. With `--mysql`.

use super::{Context, Section};
use crate::show::human_bytes;
use memlens_analyze::mysql::{ledger, rss_vs_pool, LedgerInput, MysqlConfig, ServerPoint};
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
        let anon = process
            .and_then(|p| p.anon_bytes.or(p.rss_bytes))
            .unwrap_or(0) as f64;
        let f = |v: Option<u64>| v.map(|v| v as f64);
        let l = ledger(&LedgerInput {
            anon_rss_bytes: anon,
            pool_size_bytes: f(m.pool_size_bytes),
            page_size_bytes: page,
            pages_total: f(m.pool_pages_total),
            pages_data: m.pool_pages_data.unwrap_or(0) as f64,
            pages_free: f(m.pool_pages_free),
            pages_misc: f(m.pool_pages_misc),
            pool_resident_bytes: f(m.pool_resident_bytes),
            pool_resident_exact: m.pool_resident_source.as_deref() == Some("range"),
            log_buffer_bytes: f(m.log_buffer_bytes),
            threads_memory_bytes: f(m.threads_memory_bytes),
            memory_used_bytes: f(m.memory_used_bytes),
            memory_used_initial_bytes: f(m.memory_used_initial_bytes),
        });
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
            "    ledger of anon RSS {}: pool resident {} ({}), redo log buffers {}, connections {} ({}), allocator/untracked {}",
            human_bytes(l.anon_rss_bytes as u64),
            b_opt(l.pool_resident_bytes),
            m.pool_resident_source.as_deref().unwrap_or("not found"),
            b_opt(l.log_buffer_bytes),
            b_opt(l.connections_bytes),
            l.connections_source.unwrap_or("-"),
            human_bytes(l.untracked_bytes as u64),
        ));
        match &l.pool {
            Some(p) => text.push(format!(
                "    pool: block descriptors {}, misc pages {}, resident page frames {} = data pages {} + once-used free frames {} (free pages {})",
                human_bytes(p.descriptor_bytes as u64),
                human_bytes(p.misc_bytes as u64),
                human_bytes(p.page_frames_resident_bytes as u64),
                human_bytes(p.data_bytes as u64),
                human_bytes(p.free_resident_bytes as u64),
                human_bytes(p.free_bytes as u64),
            )),
            None => text.push(format!(
                "    pool: data pages {} (the pool's own range was not found: not split)",
                human_bytes(l.pool_data_bytes as u64)
            )),
        }
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
                "pool_resident_source": m.pool_resident_source,
                "pool": l.pool.map(|p| serde_json::json!({
                    "resident_bytes": p.resident_bytes,
                    "descriptor_bytes": p.descriptor_bytes,
                    "misc_bytes": p.misc_bytes,
                    "page_frames_resident_bytes": p.page_frames_resident_bytes,
                    "data_bytes": p.data_bytes,
                    "free_bytes": p.free_bytes,
                    "free_resident_bytes": p.free_resident_bytes,
                })),
                "log_buffer_bytes": l.log_buffer_bytes,
                "connections_bytes": l.connections_bytes,
                "connections_source": l.connections_source,
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
