//! memlens's detectors, pure: samples in (with their timestamps: no clock,
//! no IO), findings out. Used by `memlens watch` live and by `memlens
//! replay` over a recorded history, so both see the same findings.
//!
//! - [`robust`]: median, MAD, Theil–Sen, and the seeds' EWMA slope.
//! - [`trend`]: a growth trend blind to the GC sawtooth and start-up ramps.
//! - [`forecast`]: time left until the OOM kill point.
//! - [`finding`]: the finding model and its stable ids (docs/findings.md).
//! - [`engine`]: per-entity state and the fire/clear lifecycle.
//! - [`gomemconfig`]: GOMEMLIMIT and GOGC against the cgroup limit, and the
//!   recommended settings (`memlens advise`).
//! - [`victims`]: OOM victim ranking, the kernel's `oom_badness` order of a
//!   cgroup's or the host's processes.
//! - [`fds`]: file-descriptor exhaustion against the soft limit, with a
//!   forecast from a window's growth.
//! - [`vmas`]: the VMA count against `vm.max_map_count`, mmap fragmentation.
//! - [`contention`]: which neighbour took whose memory: a neighbour's growth
//!   preceding and correlated with a victim's refaults, faults, stalls.
//! - [`gcpressure`]: Go GC cycles, pauses and allocation rate over a window.
//! - [`heapgap`]: RSS far above the Go heap, and where the rest is.
//! - [`goroutine_leak`]: goroutine leaks, growth of blocked goroutines over a
//!   window and the goroutineleak profile's proof, by creation site.
//! - [`heap_growth`]: in-use heap growth per allocation site between two
//!   heap profiles.
//! - [`map_bloat`]: Go maps holding memory after they stopped growing.
//! - [`mysql`]: a MySQL/MariaDB server: its memory ledger, RSS against the
//!   buffer pool, a hit-ratio drop by cause.

pub mod contention;
pub mod engine;
pub mod fds;
pub mod finding;
pub mod forecast;
pub mod gcpressure;
pub mod gomemconfig;
pub mod goroutine_leak;
pub mod heap_growth;
pub mod heapgap;
pub mod map_bloat;
pub mod mysql;
pub mod robust;
pub mod trend;
pub mod victims;
pub mod vmas;

pub use engine::{metric_name, Config, Engine, KernelKill, LimitsConfig, METRICS, RUN_QUEUE_WAIT};
pub use finding::{Evidence, Finding, Layer, Severity, Target, OOM_KILL};
