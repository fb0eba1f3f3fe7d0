//! A goroutine count memlens read from a live Go process (a workload or a
//! Debian service), bracketed by the runtime's own count read by the test just
//! before and just after memlens ran.
//!
//! Both sides are read inside an HTTP request to the process, and Go's
//! net/http server adds goroutines of its own for each request. Counted from
//! its behaviour (HTTP/1.0 requests without a body, as the test and memlens
//! send them):
//!
//! - while a request is served: its connection goroutine and the background
//!   reader the server starts before calling the handler (`startBackgroundRead`):
//!   **+2** in the runtime's `goroutine profile: total N` (`?debug=1`), which the
//!   test reads, and in the goroutine profile memlens reads; they cancel out;
//! - the server closes a finished connection's socket before its goroutine
//!   returns, so a reading may still count the goroutine of a request that just
//!   ended (the client saw the end of the answer): **+1 per earlier request** at
//!   most, each of the test's readings (the request just before it) and
//!   memlens's (the test's reading before it and the requests memlens made
//!   before it in the same run: discovery probes, other resources).
//!   A probe stops reading after 64 KiB; with a longer answer the server's
//!   reader would live on as well, but every body probed here is shorter.
//!
//! The process's own goroutines may change between the readings (a service
//! starting a worker); memlens's must lie between the two. Nothing is widened
//! beyond these counts.
#![allow(dead_code)]

use memlens_testkit::http_get;

/// The requests `memlens` makes to each port of a process it is given by PID,
/// before it reads anything: `target::discover` probes `/debug/pprof/`,
/// `/debug/vars` and `/metrics`.
pub const DISCOVERY_PROBES_PER_PORT: u64 = 3;

/// The runtime's own count: the header `goroutine profile: total N` of `?debug=1`,
/// read by the test (one request, whole answer read).
pub fn runtime_total(addr: &str) -> u64 {
    let text = http_get(addr, "/debug/pprof/goroutine?debug=1").expect("GET goroutine?debug=1");
    let first = text.lines().next().unwrap_or_default();
    first
        .strip_prefix("goroutine profile: total ")
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no total in the first line {first:?} of {addr}"))
}

/// Asserts that memlens's count, read from a goroutine profile after
/// `memlens_earlier_requests` requests of its own to the process, lies within
/// the runtime's counts `before` and `after` (each read by [`runtime_total`]),
/// widened only by what the requests create (see the module's comment):
/// down by 1 (a reading of the test may count the goroutine of the request
/// before it), up by 1 + `memlens_earlier_requests`.
pub fn assert_between_runtime_counts(
    what: &str,
    memlens: u64,
    before: u64,
    after: u64,
    memlens_earlier_requests: u64,
) {
    let low = before.min(after).saturating_sub(1);
    let high = before.max(after) + 1 + memlens_earlier_requests;
    assert!(
        (low..=high).contains(&memlens),
        "{what}: memlens counts {memlens} goroutines, the runtime {before} before and {after} \
         after it; allowed {low}..={high} (the runtime's counts, -1 for a request of the test \
         just ending, +1 for the test's request before memlens and +{memlens_earlier_requests} \
         for memlens's own earlier requests)"
    );
}
