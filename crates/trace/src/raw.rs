//! What the kernel side hands back: exact counts and sampled stacks, before
//! symbolization and scaling.

use crate::event::Event;

/// Exact count of one (process, event, size class, detail).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CountRow {
    /// The process (tgid).
    pub pid: u32,
    /// The event.
    pub event: Event,
    /// `floor(log2(bytes)) + 1`, 0 without bytes.
    pub size_class: u32,
    /// Event-specific detail ([`Event::describe_detail`]).
    pub detail: u32,
    /// Events counted.
    pub events: u64,
    /// Bytes summed over them.
    pub bytes: u64,
}

/// Sampled events with one user stack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackRow {
    /// The process (tgid).
    pub pid: u32,
    /// The event.
    pub event: Event,
    /// The kernel's error when the stack walk failed (negative errno).
    pub stack_error: Option<i32>,
    /// Return addresses, innermost first (the first is the faulting or
    /// syscall instruction's address).
    pub frames: Vec<u64>,
    /// Sampled events with this stack.
    pub events: u64,
    /// Their bytes.
    pub bytes: u64,
}

/// Everything read from the kernel's maps at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RawTrace {
    /// Exact counts.
    pub counts: Vec<CountRow>,
    /// Sampled stacks.
    pub stacks: Vec<StackRow>,
    /// Events not counted because the count map was full.
    pub lost_counts: u64,
    /// Sampled events dropped because the stack-count map was full.
    pub lost_stacks: u64,
}
