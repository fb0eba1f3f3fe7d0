//! [`Store::integrity_check`]: SQLite's own check plus the store's
//! invariants (every chunk and frame decodes, timestamps ascend, groups do
//! not overlap, chunks name known series).

use crate::codec::chunk::{decode_bundle, decode_chunk_as, decode_timestamps};
use crate::codec::frame::{decode_frame, FrameState};
use crate::error::{AtPath, StoreError};
use crate::store::Store;
use std::collections::HashSet;

/// The outcome of [`Store::integrity_check`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IntegrityReport {
    /// Every problem found; empty when the store is sound.
    pub problems: Vec<String>,
    /// Groups checked.
    pub groups: u64,
    /// Chunks decoded.
    pub chunks: u64,
    /// Head frames decoded.
    pub frames: u64,
    /// Samples decoded in total.
    pub samples: u64,
}

impl IntegrityReport {
    /// Whether no problem was found.
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }
}

const MAX_PROBLEMS: usize = 100;

impl Store {
    /// Checks the whole store. Problems are reported, never repaired; an
    /// error means the check itself could not run.
    pub fn integrity_check(&self) -> Result<IntegrityReport, StoreError> {
        let path = &self.path;
        let mut report = IntegrityReport::default();
        {
            let mut stmt = self.conn.prepare("PRAGMA integrity_check").at(path)?;
            let rows = stmt.query_map([], |r| r.get::<_, String>(0)).at(path)?;
            for row in rows {
                let line = row.at(path)?;
                if line != "ok" {
                    report.problems.push(format!("sqlite: {line}"));
                }
            }
        }
        let series: HashSet<i64> = {
            let mut stmt = self.conn.prepare("SELECT id FROM series").at(path)?;
            let rows = stmt.query_map([], |r| r.get(0)).at(path)?;
            rows.collect::<Result<_, _>>().at(path)?
        };
        let problem = |report: &mut IntegrityReport, p: String| {
            if report.problems.len() < MAX_PROBLEMS {
                report.problems.push(p);
            }
        };
        let mut prev_last: Option<i64> = None;
        let mut groups = self
            .conn
            .prepare("SELECT id, first_ts, last_ts, frame_count, ts_data FROM groups ORDER BY id")
            .at(path)?;
        let mut chunks = self
            .conn
            .prepare(
                "SELECT key & 4294967295, data FROM chunks
                 WHERE key BETWEEN (?1 << 32) AND (?1 << 32) + 4294967295",
            )
            .at(path)?;
        let mut rows = groups.query([]).at(path)?;
        while let Some(row) = rows.next().at(path)? {
            report.groups += 1;
            let id: i64 = row.get(0).at(path)?;
            let first: i64 = row.get(1).at(path)?;
            let last: i64 = row.get(2).at(path)?;
            let count: i64 = row.get(3).at(path)?;
            let blob: Vec<u8> = row.get(4).at(path)?;
            let ts = match decode_timestamps(&blob) {
                Ok(ts) => ts,
                Err(e) => {
                    problem(&mut report, format!("group {id}: timestamps: {}", e.0));
                    continue;
                }
            };
            if ts.len() as i64 != count || ts.first() != Some(&first) || ts.last() != Some(&last) {
                problem(
                    &mut report,
                    format!("group {id}: header does not match its timestamps"),
                );
            }
            if ts.windows(2).any(|w| w[0] >= w[1]) {
                problem(&mut report, format!("group {id}: timestamps not ascending"));
            }
            if prev_last.is_some_and(|p| p >= first) {
                problem(
                    &mut report,
                    format!("group {id}: overlaps the previous group"),
                );
            }
            prev_last = Some(last);
            let mut crows = chunks.query([id]).at(path)?;
            while let Some(c) = crows.next().at(path)? {
                let entity: i64 = c.get(0).at(path)?;
                let data: Vec<u8> = c.get(1).at(path)?;
                let bundle = match decode_bundle(&data) {
                    Ok(b) => b,
                    Err(e) => {
                        problem(
                            &mut report,
                            format!("group {id}: chunks of entity {entity}: {}", e.0),
                        );
                        continue;
                    }
                };
                for (metric, chunk) in &bundle.chunks {
                    report.chunks += 1;
                    let sid = (entity << 16) | *metric as i64;
                    if !series.contains(&sid) {
                        problem(
                            &mut report,
                            format!("group {id}: chunk of unknown series {sid}"),
                        );
                    }
                    match decode_chunk_as(chunk, ts.len() as u32, bundle.codec) {
                        Ok(values) => report.samples += values.len() as u64,
                        Err(e) => problem(
                            &mut report,
                            format!("group {id}: chunk of series {sid}: {}", e.0),
                        ),
                    }
                }
            }
        }
        drop(rows);
        let mut frames = self
            .conn
            .prepare("SELECT ts, data FROM frames ORDER BY ts")
            .at(path)?;
        let mut rows = frames.query([]).at(path)?;
        let mut state = FrameState::new();
        while let Some(row) = rows.next().at(path)? {
            report.frames += 1;
            let ts: i64 = row.get(0).at(path)?;
            let data: Vec<u8> = row.get(1).at(path)?;
            if prev_last.is_some_and(|p| p >= ts) {
                problem(
                    &mut report,
                    format!("head frame {ts}: not after the last group"),
                );
            }
            match decode_frame(&data, &mut state) {
                Ok(samples) => {
                    report.samples += samples.len() as u64;
                    if let Some((sid, _)) =
                        samples.iter().find(|(s, _)| !series.contains(&(*s as i64)))
                    {
                        problem(
                            &mut report,
                            format!("head frame {ts}: unknown series {sid}"),
                        );
                    }
                }
                Err(e) => problem(&mut report, format!("head frame {ts}: {e:?}")),
            }
        }
        Ok(report)
    }
}
