//! The MySQL/MariaDB server's memory, pure: the ledger of its resident
//! memory, RSS against the buffer pool, and a hit-ratio drop told apart by
//! cause. Samples in (with their times), verdicts out; no IO, no clock.
//!
//! - [`ledger`]: the server's anonymous RSS split into the resident buffer
//!   pool (split in turn into block descriptors, misc pages, and the frames
//!   of data pages and once-used free pages, against MariaDB's own counts),
//!   the redo log buffers, the connections' memory (the threads'
//!   `MEMORY_USED`, MariaDB), and the rest named allocator/untracked.
//! - [`rss_vs_pool`]: RSS above 110 % of the pool with swings above 15 % of
//!   it over the window (the seeds' danger sign).
//! - [`hit_ratio_drop`]: the hit ratio of the window's second half against
//!   its first half, from counter deltas (never lifetime totals), and the
//!   cause: the pool shrank (its size or its data pages fell), its pages
//!   were reclaimed or faulted back (the server's major faults or its
//!   cgroup's refaults rose), or the query mix changed (no memory signal,
//!   and the read requests per second rose, or the pages read from disk per
//!   second did: the queries now reach pages the pool does not hold).

/// One instant of a server and its process.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ServerPoint {
    /// When, ms since the Unix epoch.
    pub ts_ms: i64,
    /// `innodb_buffer_pool_size`.
    pub pool_size_bytes: f64,
    /// `Innodb_buffer_pool_pages_data`.
    pub pages_data: f64,
    /// `Innodb_buffer_pool_read_requests` (counter).
    pub read_requests: f64,
    /// `Innodb_buffer_pool_reads` (counter).
    pub reads: f64,
    /// The server process's RSS.
    pub rss_bytes: Option<f64>,
    /// The process's major faults that can be pool pages (counter): all of
    /// them when the host has swap, none without (the engine's choice).
    pub major_faults: Option<f64>,
    /// Its cgroup's anon refaults (counter): the pool is anonymous memory.
    pub refaults: Option<f64>,
}

/// Tuning; the defaults are the documented ones.
#[derive(Debug, Clone, PartialEq)]
pub struct MysqlConfig {
    /// The window both detectors look at.
    pub window_seconds: f64,
    /// RSS against the pool fires above this ratio...
    pub rss_pool_ratio: f64,
    /// ...with RSS swings (max − min over the window) above this share of the pool.
    pub rss_swing_ratio: f64,
    /// A drop: the second half's hit ratio at least this much below the first's.
    pub min_hit_ratio_drop: f64,
    /// Each half needs at least this many read requests to have a hit ratio.
    pub min_read_requests: f64,
    /// The pool shrank: its size or its data pages fell by this share.
    pub shrink_ratio: f64,
    /// A memory signal: major faults or refaults per second at least this...
    pub min_faults_per_second: f64,
    /// ...and this many times the first half's.
    pub fault_rise_factor: f64,
    /// The query mix changed: read requests per second rose this many times.
    pub request_rise_factor: f64,
}

impl Default for MysqlConfig {
    fn default() -> Self {
        MysqlConfig {
            window_seconds: 30.0,
            rss_pool_ratio: 1.10,
            rss_swing_ratio: 0.15,
            min_hit_ratio_drop: 0.05,
            min_read_requests: 1000.0,
            shrink_ratio: 0.10,
            min_faults_per_second: 10.0,
            fault_rise_factor: 2.0,
            request_rise_factor: 1.5,
        }
    }
}

/// What a ledger is built from: one reading of a server and its process.
/// Counts are MariaDB's own (`SHOW GLOBAL STATUS`/`VARIABLES`); resident
/// bytes are the kernel's.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LedgerInput {
    /// The process's anonymous RSS (`RssAnon`).
    pub anon_rss_bytes: f64,
    /// `innodb_buffer_pool_size`.
    pub pool_size_bytes: Option<f64>,
    /// InnoDB page size.
    pub page_size_bytes: f64,
    /// `Innodb_buffer_pool_pages_total`.
    pub pages_total: Option<f64>,
    /// `Innodb_buffer_pool_pages_data`.
    pub pages_data: f64,
    /// `Innodb_buffer_pool_pages_free`.
    pub pages_free: Option<f64>,
    /// `Innodb_buffer_pool_pages_misc`.
    pub pages_misc: Option<f64>,
    /// Resident bytes of the pool (collector: its range, or a mapping).
    pub pool_resident_bytes: Option<f64>,
    /// Whether `pool_resident_bytes` is of the pool's own range (`range`):
    /// only then is it split into parts.
    pub pool_resident_exact: bool,
    /// The redo log buffers (2 × `innodb_log_buffer_size`).
    pub log_buffer_bytes: Option<f64>,
    /// Sum of `PROCESSLIST.MEMORY_USED` (MariaDB): the threads' memory.
    pub threads_memory_bytes: Option<f64>,
    /// `Memory_used` (MariaDB).
    pub memory_used_bytes: Option<f64>,
    /// `Memory_used_initial` (MariaDB).
    pub memory_used_initial_bytes: Option<f64>,
}

/// The pool's resident bytes split into what MariaDB accounts for.
///
/// The pool's range holds frames of `page_size` bytes: `pages_total` of them
/// hold pages (data, free, or misc: the adaptive hash index, row locks) and
/// the rest, `innodb_buffer_pool_size / page_size − pages_total`, hold the
/// block descriptors (control blocks) at the start of each extent. The
/// descriptors are initialised at start (resident); a free frame is
/// resident only once it has held a page (never-used frames are not touched).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PoolLedger {
    /// The range's resident bytes (kernel: pagemap).
    pub resident_bytes: f64,
    /// Frames of block descriptors: `pool_size − pages_total × page_size`.
    pub descriptor_bytes: f64,
    /// `pages_misc × page_size`: the adaptive hash index, row locks.
    pub misc_bytes: f64,
    /// `resident − descriptors − misc`: the resident frames that hold data
    /// pages or are free after having held one. The pool's data part by the
    /// kernel's count: at least `data_bytes` (data pages are resident) and
    /// at most `data_bytes + free_bytes`.
    pub page_frames_resident_bytes: f64,
    /// `pages_data × page_size`: the data pages by MariaDB's count.
    pub data_bytes: f64,
    /// `pages_free × page_size`: the free frames by MariaDB's count.
    pub free_bytes: f64,
    /// `page_frames_resident − data` (≥ 0): free frames that hold memory
    /// since they held a page.
    pub free_resident_bytes: f64,
}

/// The server's resident memory by part, each with its source.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ledger {
    /// The process's anonymous RSS (`RssAnon`).
    pub anon_rss_bytes: f64,
    /// Resident bytes of the pool (its range or the mapping taken), when known.
    pub pool_resident_bytes: Option<f64>,
    /// The pool split into its parts (only from its own range).
    pub pool: Option<PoolLedger>,
    /// `pages_data × page_size`: what the pool holds by InnoDB's count.
    pub pool_data_bytes: f64,
    /// The redo log buffers, 2 × `innodb_log_buffer_size` (resident from start).
    pub log_buffer_bytes: Option<f64>,
    /// The connections' memory: the sum of the threads' `MEMORY_USED`, else
    /// `Memory_used − Memory_used_initial`.
    pub connections_bytes: Option<f64>,
    /// Where `connections_bytes` comes from: `processlist` or `memory_used`.
    pub connections_source: Option<&'static str>,
    /// The rest: allocator retention (glibc arenas keep freed buffers), the
    /// server's other caches and heaps, thread stacks, untracked memory.
    pub untracked_bytes: f64,
}

/// Splits the anonymous RSS; the pool counts as its resident bytes when
/// known, else as its data pages.
pub fn ledger(i: &LedgerInput) -> Ledger {
    let page = i.page_size_bytes;
    let data = i.pages_data * page;
    let (connections, source) = match (
        i.threads_memory_bytes,
        i.memory_used_bytes,
        i.memory_used_initial_bytes,
    ) {
        (Some(t), _, _) => (Some(t), Some("processlist")),
        (None, Some(u), Some(init)) => (Some((u - init).max(0.0)), Some("memory_used")),
        _ => (None, None),
    };
    let pool = match (i.pool_resident_bytes, i.pool_size_bytes, i.pages_total) {
        (Some(resident), Some(size), Some(total)) if i.pool_resident_exact && page > 0.0 => {
            let descriptor = (size - total * page).max(0.0);
            let misc = i.pages_misc.unwrap_or(0.0) * page;
            let frames = (resident - descriptor - misc).max(0.0);
            Some(PoolLedger {
                resident_bytes: resident,
                descriptor_bytes: descriptor,
                misc_bytes: misc,
                page_frames_resident_bytes: frames,
                data_bytes: data,
                free_bytes: i.pages_free.unwrap_or(0.0) * page,
                free_resident_bytes: (frames - data).max(0.0),
            })
        }
        _ => None,
    };
    let pool_part = i.pool_resident_bytes.unwrap_or(data);
    Ledger {
        anon_rss_bytes: i.anon_rss_bytes,
        pool_resident_bytes: i.pool_resident_bytes,
        pool,
        pool_data_bytes: data,
        log_buffer_bytes: i.log_buffer_bytes,
        connections_bytes: connections,
        connections_source: source,
        untracked_bytes: (i.anon_rss_bytes
            - pool_part
            - i.log_buffer_bytes.unwrap_or(0.0)
            - connections.unwrap_or(0.0))
        .max(0.0),
    }
}

/// RSS against the pool over the window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RssVsPool {
    /// The median RSS over the pool size.
    pub ratio: f64,
    /// (max − min RSS) over the pool size.
    pub swing_ratio: f64,
    /// Whether it is the danger sign.
    pub fires: bool,
}

/// RSS against the pool; `None` without RSS or pool size.
pub fn rss_vs_pool(points: &[ServerPoint], config: &MysqlConfig) -> Option<RssVsPool> {
    let rss: Vec<f64> = points.iter().filter_map(|p| p.rss_bytes).collect();
    let pool = points.last()?.pool_size_bytes;
    if pool <= 0.0 || rss.is_empty() {
        return None;
    }
    let median = crate::robust::median(&rss)?;
    let max = rss.iter().copied().fold(f64::MIN, f64::max);
    let min = rss.iter().copied().fold(f64::MAX, f64::min);
    let ratio = median / pool;
    let swing_ratio = (max - min) / pool;
    Some(RssVsPool {
        ratio,
        swing_ratio,
        fires: ratio > config.rss_pool_ratio && swing_ratio > config.rss_swing_ratio,
    })
}

/// Why the hit ratio fell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// The pool's size or its data pages fell.
    PoolShrank,
    /// The server's major faults or its cgroup's refaults rose: the kernel
    /// took pool pages and they come back from disk.
    PagesReclaimed,
    /// No memory signal, and more read requests per second, or (the
    /// memory signals known) more pages read from disk per second.
    QueryMixChanged,
    /// None of the above (a drop at the same load with no fault counters
    /// to rule the kernel out).
    Unknown,
}

impl Cause {
    /// `pool_shrank`, `pages_reclaimed`, `query_mix_changed` or `unknown`.
    pub fn as_str(self) -> &'static str {
        match self {
            Cause::PoolShrank => "pool_shrank",
            Cause::PagesReclaimed => "pages_reclaimed",
            Cause::QueryMixChanged => "query_mix_changed",
            Cause::Unknown => "unknown",
        }
    }
}

/// The two halves of the window compared.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HitRatioDrop {
    /// Hit ratio of the first half.
    pub before: f64,
    /// Hit ratio of the second half.
    pub after: f64,
    /// Pool size at the start and at the end.
    pub pool_size_bytes: (f64, f64),
    /// Data pages: the first half's largest, the second half's smallest.
    pub pages_data: (f64, f64),
    /// Read requests per second in each half.
    pub requests_per_second: (f64, f64),
    /// Pages read from disk (`Innodb_buffer_pool_reads`) per second in each
    /// half.
    pub disk_reads_per_second: (f64, f64),
    /// Major faults + refaults per second in each half (0 when unknown).
    pub faults_per_second: (f64, f64),
    /// Whether the drop is large enough to report.
    pub fires: bool,
    /// Its cause.
    pub cause: Cause,
}

fn rate(a: &ServerPoint, b: &ServerPoint, f: impl Fn(&ServerPoint) -> Option<f64>) -> Option<f64> {
    let secs = (b.ts_ms - a.ts_ms) as f64 / 1000.0;
    (secs > 0.0).then_some(())?;
    Some((f(b)? - f(a)?).max(0.0) / secs)
}

fn faults(p: &ServerPoint) -> Option<f64> {
    match (p.major_faults, p.refaults) {
        (None, None) => None,
        (m, r) => Some(m.unwrap_or(0.0) + r.unwrap_or(0.0)),
    }
}

/// Compares the halves of `points` (time order, within the window); `None`
/// when a half has too few read requests or fewer than two points.
pub fn hit_ratio_drop(points: &[ServerPoint], config: &MysqlConfig) -> Option<HitRatioDrop> {
    let (first, last) = (points.first()?, points.last()?);
    let mid_ms = first.ts_ms + (last.ts_ms - first.ts_ms) / 2;
    let mid = points.iter().position(|p| p.ts_ms >= mid_ms)?;
    let (a, m, b) = (first, &points[mid], last);
    if mid == 0 || mid == points.len() - 1 {
        return None;
    }
    let ratio = |x: &ServerPoint, y: &ServerPoint| -> Option<f64> {
        let req = y.read_requests - x.read_requests;
        let miss = y.reads - x.reads;
        (req >= config.min_read_requests && miss >= 0.0).then(|| 1.0 - (miss / req).min(1.0))
    };
    let (before, after) = (ratio(a, m)?, ratio(m, b)?);
    let pages_before = points[..=mid]
        .iter()
        .map(|p| p.pages_data)
        .fold(0.0, f64::max);
    let pages_after = points[mid..]
        .iter()
        .map(|p| p.pages_data)
        .fold(f64::MAX, f64::min);
    let requests = (
        rate(a, m, |p| Some(p.read_requests)).unwrap_or(0.0),
        rate(m, b, |p| Some(p.read_requests)).unwrap_or(0.0),
    );
    let fault_rates = (
        rate(a, m, faults).unwrap_or(0.0),
        rate(m, b, faults).unwrap_or(0.0),
    );
    let pool_before = points[..=mid]
        .iter()
        .map(|p| p.pool_size_bytes)
        .fold(0.0, f64::max);
    let shrank = b.pool_size_bytes <= pool_before * (1.0 - config.shrink_ratio)
        || pages_after <= pages_before * (1.0 - config.shrink_ratio);
    let faulted = fault_rates.1 >= config.min_faults_per_second
        && fault_rates.1 >= fault_rates.0 * config.fault_rise_factor;
    // With no shrink and no memory signal, a drop at the same request rate
    // still means the queries now reach pages the pool does not hold: the
    // reads from disk rose. Only when the fault counters are known: without
    // them the kernel's reclaim cannot be ruled out.
    let misses = (
        rate(a, m, |p| Some(p.reads)).unwrap_or(0.0),
        rate(m, b, |p| Some(p.reads)).unwrap_or(0.0),
    );
    let faults_known = faults(a).is_some() && faults(b).is_some();
    let mix = requests.1 >= requests.0 * config.request_rise_factor
        || (faults_known && misses.1 > 0.0 && misses.1 >= misses.0 * config.request_rise_factor);
    let cause = if shrank {
        Cause::PoolShrank
    } else if faulted {
        Cause::PagesReclaimed
    } else if mix {
        Cause::QueryMixChanged
    } else {
        Cause::Unknown
    };
    Some(HitRatioDrop {
        before,
        after,
        pool_size_bytes: (pool_before, b.pool_size_bytes),
        pages_data: (pages_before, pages_after),
        requests_per_second: requests,
        disk_reads_per_second: misses,
        faults_per_second: fault_rates,
        fires: before - after >= config.min_hit_ratio_drop,
        cause,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 20 points a second apart: 10 000 requests/s, `miss_before` then
    /// `miss_after` misses per second; `tweak` changes the second half.
    fn series(
        miss_before: f64,
        miss_after: f64,
        tweak: impl Fn(&mut ServerPoint),
    ) -> Vec<ServerPoint> {
        let mut out = Vec::new();
        let mut p = ServerPoint {
            ts_ms: 0,
            pool_size_bytes: 128.0 * 1048576.0,
            pages_data: 8000.0,
            read_requests: 0.0,
            reads: 0.0,
            rss_bytes: Some(150.0 * 1048576.0),
            major_faults: Some(0.0),
            refaults: Some(0.0),
        };
        for i in 0..21 {
            let mut q = p;
            if i > 10 {
                tweak(&mut q);
            }
            out.push(q);
            p.ts_ms += 1000;
            p.read_requests += 10_000.0;
            p.reads += if i >= 10 { miss_after } else { miss_before };
        }
        out
    }

    #[test]
    fn no_drop_no_finding() {
        let d = hit_ratio_drop(&series(200.0, 200.0, |_| {}), &MysqlConfig::default()).unwrap();
        assert!(!d.fires, "{d:?}");
        assert!((d.before - 0.98).abs() < 1e-9 && (d.after - 0.98).abs() < 1e-9);
    }

    #[test]
    fn causes_are_told_apart() {
        let c = MysqlConfig::default();
        let shrank = series(200.0, 3800.0, |p| {
            p.pool_size_bytes = 64.0 * 1048576.0;
            p.pages_data = 4000.0;
        });
        let d = hit_ratio_drop(&shrank, &c).unwrap();
        assert!(d.fires && d.before > 0.97 && d.after < 0.63, "{d:?}");
        assert_eq!(d.cause, Cause::PoolShrank);

        // Same size and pages, the process faults pages back in.
        let mut faults = 0.0;
        let reclaimed: Vec<ServerPoint> = series(200.0, 3800.0, |_| {})
            .into_iter()
            .enumerate()
            .map(|(i, mut p)| {
                if i > 10 {
                    faults += 500.0;
                }
                p.major_faults = Some(faults);
                p
            })
            .collect();
        assert_eq!(
            hit_ratio_drop(&reclaimed, &c).unwrap().cause,
            Cause::PagesReclaimed
        );

        // Twice the requests per second, no memory signal.
        let mut extra = 0.0;
        let mix: Vec<ServerPoint> = series(200.0, 3800.0, |_| {})
            .into_iter()
            .enumerate()
            .map(|(i, mut p)| {
                if i > 10 {
                    extra += 10_000.0;
                }
                p.read_requests += extra;
                p
            })
            .collect();
        let d = hit_ratio_drop(&mix, &c).unwrap();
        assert!(d.fires, "{d:?}");
        assert_eq!(d.cause, Cause::QueryMixChanged);

        // The same requests per second reaching pages the pool lacks: the
        // reads from disk rose 19-fold, with the fault counters at zero.
        let same_rate = series(200.0, 3800.0, |_| {});
        let d = hit_ratio_drop(&same_rate, &c).unwrap();
        assert!(
            d.fires && d.requests_per_second.0 == d.requests_per_second.1,
            "{d:?}"
        );
        assert_eq!(d.cause, Cause::QueryMixChanged);
        // Without fault counters the kernel cannot be ruled out.
        let blind: Vec<ServerPoint> = same_rate
            .into_iter()
            .map(|mut p| {
                p.major_faults = None;
                p.refaults = None;
                p
            })
            .collect();
        assert_eq!(hit_ratio_drop(&blind, &c).unwrap().cause, Cause::Unknown);
    }

    #[test]
    fn rss_against_the_pool() {
        let c = MysqlConfig::default();
        let steady = series(0.0, 0.0, |_| {});
        let v = rss_vs_pool(&steady, &c).unwrap();
        assert!(!v.fires && (v.ratio - 150.0 / 128.0).abs() < 1e-9, "{v:?}");
        let swinging = series(0.0, 0.0, |p| p.rss_bytes = Some(180.0 * 1048576.0));
        let v = rss_vs_pool(&swinging, &c).unwrap();
        assert!(v.fires, "{v:?}");
    }

    #[test]
    fn ledger_parts_add_up() {
        let kib16 = 16384.0;
        // The numbers of a live 48 MiB pool after a scan (MariaDB 10.11.19):
        // 3072 frames, 3042 pages (30 frames of descriptors), all resident.
        let i = LedgerInput {
            anon_rss_bytes: 200e6,
            pool_size_bytes: Some(3072.0 * kib16),
            page_size_bytes: kib16,
            pages_total: Some(3042.0),
            pages_data: 2948.0,
            pages_free: Some(94.0),
            pages_misc: Some(0.0),
            pool_resident_bytes: Some(3072.0 * kib16),
            pool_resident_exact: true,
            log_buffer_bytes: Some(32.0 * 1048576.0),
            threads_memory_bytes: Some(1e6),
            memory_used_bytes: Some(5e8),
            memory_used_initial_bytes: Some(4e8),
        };
        let l = ledger(&i);
        let p = l.pool.unwrap();
        assert_eq!(p.descriptor_bytes, 30.0 * kib16);
        assert_eq!(p.page_frames_resident_bytes, 3042.0 * kib16);
        assert_eq!(p.free_resident_bytes, 94.0 * kib16);
        assert_eq!(l.connections_bytes, Some(1e6));
        assert_eq!(l.connections_source, Some("processlist"));
        let untracked = 200e6 - 3072.0 * kib16 - 32.0 * 1048576.0 - 1e6;
        assert!((l.untracked_bytes - untracked).abs() < 1e-6);

        // A heuristic mapping is not split; without the threads' sum the
        // connections are Memory_used above its initial value.
        let l = ledger(&LedgerInput {
            pool_resident_exact: false,
            threads_memory_bytes: None,
            ..i
        });
        assert_eq!(l.pool, None);
        assert_eq!(l.connections_bytes, Some(1e8));
        assert_eq!(l.connections_source, Some("memory_used"));
        let l = ledger(&LedgerInput {
            anon_rss_bytes: 100.0,
            page_size_bytes: kib16,
            ..Default::default()
        });
        assert_eq!(l.untracked_bytes, 100.0);
    }
}
