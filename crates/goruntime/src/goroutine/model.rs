//! What an analysed goroutine dump is: groups of identical stacks, the view by
//! creation site, and what was read (format, totals, truncation).

/// Which kind of input a dump was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DumpFormat {
    /// `/debug/pprof/goroutine?debug=2` (or `goroutineleak?debug=2`): one block
    /// per goroutine, runtime frames hidden.
    Debug2,
    /// A SIGQUIT or crash dump on stderr: like `Debug2` plus runtime frames,
    /// `fp= sp= pc=` and a register dump.
    Sigquit,
    /// `?debug=1`: `goroutine profile: total N` and one block per distinct stack
    /// with its count.
    Debug1,
    /// The protobuf profile (`?debug=0`, gzipped): counts per stack, no states.
    Protobuf,
}

impl DumpFormat {
    /// A short name for tables and JSON: `debug2`, `sigquit`, `debug1`, `protobuf`.
    pub fn name(self) -> &'static str {
        match self {
            DumpFormat::Debug2 => "debug2",
            DumpFormat::Sigquit => "sigquit",
            DumpFormat::Debug1 => "debug1",
            DumpFormat::Protobuf => "protobuf",
        }
    }

    /// Whether this format carries goroutine states and wait times.
    pub fn has_states(self) -> bool {
        matches!(self, DumpFormat::Debug2 | DumpFormat::Sigquit)
    }

    /// Whether this format names each goroutine's creation site (`created by
    /// F` with the file:line of the `go` statement).
    pub fn has_creation_sites(self) -> bool {
        matches!(self, DumpFormat::Debug2 | DumpFormat::Sigquit)
    }
}

/// One stack frame: the function and where in it the goroutine is.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Frame {
    /// The function, package-qualified, without arguments:
    /// `net/http.(*conn).serve`.
    pub function: String,
    /// The source file as the binary records it (`-trimpath` shortens it).
    pub file: String,
    /// The line in `file`; 0 when the dump did not give one.
    pub line: u32,
}

/// Where a goroutine was started: the `created by` function and the line of its
/// `go` statement.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CreationSite {
    /// The function that ran the `go` statement.
    pub function: String,
    /// Its source file.
    pub file: String,
    /// The line of the `go` statement.
    pub line: u32,
}

/// How many goroutines of a group were in one state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateCount {
    /// The state as the runtime prints it, without the wait time, `(scan)`,
    /// `(leaked)` or `locked to thread` (those are counted apart): `chan receive`.
    pub state: String,
    /// Goroutines in that state.
    pub count: u64,
}

/// How many goroutines of a group came from one creation site.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreationCount {
    /// The site; `None` for goroutines the dump shows no creator for (the main
    /// goroutine, or formats without `created by`).
    pub site: Option<CreationSite>,
    /// Goroutines created there.
    pub count: u64,
}

/// Goroutines with the same stack (function names and file:line, leaf first;
/// arguments, addresses and goroutine ids ignored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    /// The stack, leaf first, with the scheduler's own leaf frames
    /// (`runtime.gopark`, ...), `runtime.goexit` and `gowrap` wrappers left out so
    /// that every format yields the same key. At most [`Limits::max_frames`].
    pub frames: Vec<Frame>,
    /// Whether the stack had more frames than were kept, or the dump itself
    /// elided some (`...additional frames elided...`).
    pub frames_elided: bool,
    /// Goroutines in the group.
    pub count: u64,
    /// Their states, most common first; empty for formats without states.
    pub states: Vec<StateCount>,
    /// Whether `states` were guessed from the frames (`runtime.chanrecv` means
    /// `chan receive`) because the format has none.
    pub states_inferred: bool,
    /// Goroutines the runtime marked `(leaked)` (Go 1.26+, after a goroutineleak
    /// profile ran) or that came from the goroutineleak profile itself.
    pub leaked: u64,
    /// Goroutines `locked to thread`.
    pub locked_to_thread: u64,
    /// The shortest wait shown, in minutes (the runtime prints it from 1 minute on).
    pub wait_minutes_min: Option<u64>,
    /// The longest wait shown, in minutes.
    pub wait_minutes_max: Option<u64>,
    /// Where its goroutines were created, most common first.
    pub created_by: Vec<CreationCount>,
    /// A few ids of the goroutines that created them (`in goroutine N`, Go 1.21+).
    pub creator_ids: Vec<u64>,
    /// A few ids of its goroutines.
    pub goroutine_ids: Vec<u64>,
}

/// Goroutines grouped by where they were created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreationGroup {
    /// The site; `None` for goroutines without `created by`.
    pub site: Option<CreationSite>,
    /// Goroutines created there.
    pub count: u64,
    /// Their states, most common first.
    pub states: Vec<StateCount>,
    /// How many of them were marked leaked.
    pub leaked: u64,
    /// The longest wait among them, in minutes.
    pub wait_minutes_max: Option<u64>,
    /// How many distinct stacks they have.
    pub stacks: u64,
}

/// Why the dump is known or suspected to be incomplete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Truncation {
    /// What gave it away, in words.
    pub reason: String,
    /// Goroutines read before the cut (the one cut in half included).
    pub goroutines_read: u64,
}

/// Goroutines that did not get their own group because a memory cap was hit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Overflow {
    /// Goroutines counted but not grouped.
    pub goroutines: u64,
    /// Of which marked leaked.
    pub leaked: u64,
}

/// Caps that bound the memory an analysis takes, whatever the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest line kept; the rest of a longer line is skipped (and counted).
    pub max_line_bytes: usize,
    /// Frames kept per stack (the key); deeper frames are dropped.
    pub max_frames: usize,
    /// Longest function or file name kept, in bytes.
    pub max_name_bytes: usize,
    /// Distinct stacks kept; goroutines with further stacks go to [`Overflow`].
    pub max_groups: usize,
    /// Distinct creation sites kept; more are counted under "no site".
    pub max_creation_sites: usize,
    /// Bytes of names kept over all groups and sites.
    pub max_stored_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_line_bytes: 64 * 1024,
            max_frames: 64,
            max_name_bytes: 1024,
            max_groups: 100_000,
            max_creation_sites: 100_000,
            max_stored_bytes: 128 * 1024 * 1024,
        }
    }
}

/// The result of reading one dump.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Analysis {
    /// What the input was.
    pub format: DumpFormat,
    /// Goroutines read (the sum of the groups and the overflow); SIGQUIT dumps'
    /// `goroutine 0` (an M's scheduler stack, not a goroutine) is not counted.
    pub total_goroutines: u64,
    /// What the dump's own header says (`goroutine profile: total N`), if any.
    pub declared_total: Option<u64>,
    /// Distinct stacks, in input order of first appearance (rank them with
    /// [`crate::goroutine::rank`]).
    pub groups: Vec<Group>,
    /// The same goroutines by creation site, largest first.
    pub by_creation: Vec<CreationGroup>,
    /// Goroutines not grouped because a cap of [`Limits`] was reached.
    pub overflow: Overflow,
    /// Set when the dump is cut (the runtime's 64 MiB cap of `?debug=2`).
    pub truncation: Option<Truncation>,
    /// Whether the goroutines come from the goroutineleak profile: every one of
    /// them was proven leaked by the garbage collector.
    pub from_leak_profile: bool,
    /// Bytes of input read.
    pub bytes_read: u64,
    /// Lines that were not understood and skipped (register dumps, panic text...).
    pub skipped_lines: u64,
    /// Lines longer than [`Limits::max_line_bytes`] (their tail was skipped).
    pub overlong_lines: u64,
}
