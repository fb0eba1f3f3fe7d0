//! memlens-alert: what memlens knows about memory, put into the tools SREs
//! already run. Pure generators (text out, no IO):
//!
//! - [`catalogue::catalogue`]: every alert over memlens's own `/metrics`
//!   names or over cAdvisor / node-exporter / client_golang names
//!   ([`Naming`]), with thresholds from [`Thresholds`] (the agent config's
//!   `[alerts]` table);
//! - [`rules::rule_file`]: the Prometheus rule file;
//! - [`ruletests::test_file`]: `promtool test rules` unit tests, with series
//!   generated here (a leak that must fire with a stated lead, a GC
//!   sawtooth, a start-up ramp and a plateau that must not);
//! - [`alertmanager::config`]: an Alertmanager route tree and inhibition;
//! - [`grafana::dashboard`]: a Grafana dashboard (classic JSON model).
//!
//! - [`inhibit`]: the inhibition rules, shared by the Alertmanager config
//!   and [`live`], the agent's built-in alerting (states and notifiers).
//!
//! docs/alerts.md is the catalogue in words ([`catalogue::markdown`]).

pub mod alertmanager;
pub mod catalogue;
mod goruntime;
pub mod grafana;
pub mod inhibit;
pub mod live;
mod memory;
pub mod rules;
pub mod ruletests;
mod ruletests_memlens;
mod series;
mod system;
pub mod thresholds;
pub mod yaml;

pub use catalogue::{catalogue, Catalogue, Naming, Severity};
pub use thresholds::Thresholds;
