//! Built-in alerting of `memlens watch` (docs/alerts.md, "Built-in
//! alerting"): the alerts' states with `for`, hold, dedup and the
//! catalogue's inhibition ([`state`]), what the notifiers send
//! ([`payload`]), and the notifiers themselves ([`notify`]: a bounded queue
//! and a thread POSTing over [`http`]). The agent builds the conditions
//! from its findings and wires the rest; [`builtin`] says which
//! catalogue alerts it raises and from what.

pub mod builtin;
pub mod notify;
pub mod payload;
pub mod state;

/// The HTTP client the notifiers POST with (shared with remote write).
pub use memlens_export::http;
