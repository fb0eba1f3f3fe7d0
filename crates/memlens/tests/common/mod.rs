//! What several `memlens watch` tests share: the agent's report of what it
//! stored, and what the store holds per instant.

use memlens_store::{Store, Value};
use std::collections::HashMap;

/// `(ts_ms, values)` of an agent status line `… ts_ms=T stored=N values, …`.
pub fn stored_cycle(line: &str) -> Option<(i64, usize)> {
    let ts = line.split("ts_ms=").nth(1)?.split_whitespace().next()?;
    let n = line.split("stored=").nth(1)?.split_whitespace().next()?;
    Some((ts.parse().ok()?, n.parse().ok()?))
}

/// How many values the store holds at each instant (through the SQL view).
pub fn values_per_instant(store: &Store) -> HashMap<i64, usize> {
    store
        .query("SELECT ts, count(*) FROM samples GROUP BY ts")
        .expect("count samples per ts")
        .rows
        .iter()
        .map(|row| match (&row[0], &row[1]) {
            (Value::Integer(ts), Value::Integer(n)) => (*ts, *n as usize),
            other => panic!("unexpected row {other:?}"),
        })
        .collect()
}
