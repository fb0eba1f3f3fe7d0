//! The frames `go tool pprof` drops from a legacy heap profile's stacks: the
//! allocator at the leaf end. A legacy profile carries no `drop_frames`, so
//! pprof sets its built-in allocator list (`runtime\..*`, `malloc`,
//! `operator new`, ...; keeping `runtime.panic`, `runtime.reflectcall` and
//! `runtime.callN`) and prunes with it (`Profile.Prune` in
//! github.com/google/pprof, `profile/prune.go`; facts only, the code is ours):
//!
//! - a location whose outermost line is an allocator frame is dropped as a
//!   whole; one where only inner (inlined) lines are is cut to the lines outside
//!   the outermost allocator line, in every stack;
//! - in each stack, walking from the root, nothing is cut before the first
//!   location that is not an allocator; at the first allocator location after
//!   it, that location (when dropped as a whole) and everything towards the leaf
//!   go.
//!
//! Go's text heap profile already hides the runtime frames at the leaf end
//! (they have no `#` line), so for Go this only matters for runtime frames met
//! between user frames.

/// A location for pruning: its lines' function names, innermost first.
pub(super) trait Lines {
    /// Function names of the lines, innermost (inlined) first.
    fn names(&self) -> Vec<&str>;
    /// Keeps only the lines `from..` (the outer ones).
    fn keep_outer_from(&mut self, from: usize);
}

/// What pruning decided for one location.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Cut {
    /// No allocator frame.
    Keep,
    /// The outermost line is an allocator: the location goes.
    Whole,
    /// Inner lines were allocators and were removed; the location stays as the
    /// new leaf.
    Beneath,
}

/// Trims each location's lines and says how stacks must be cut at it.
pub(super) fn cut_locations<L: Lines>(locations: &mut [L]) -> Vec<Cut> {
    locations
        .iter_mut()
        .map(|loc| {
            let names = loc.names();
            let outermost_drop = (0..names.len()).rev().find(|&i| is_dropped(names[i]));
            match outermost_drop {
                None => Cut::Keep,
                Some(i) if i + 1 == names.len() => Cut::Whole,
                Some(i) => {
                    loc.keep_outer_from(i + 1);
                    Cut::Beneath
                }
            }
        })
        .collect()
}

/// Cuts one stack (location indices, leaf first) by the decisions of
/// [`cut_locations`].
pub(super) fn cut_stack(stack: &mut Vec<u32>, cuts: &[Cut]) {
    let mut found_user = false;
    for i in (0..stack.len()).rev() {
        match cuts[stack[i] as usize] {
            Cut::Keep => found_user = true,
            _ if !found_user => {}
            Cut::Whole => {
                stack.drain(..=i);
                return;
            }
            Cut::Beneath => {
                stack.drain(..i);
                return;
            }
        }
    }
}

/// pprof's `simplifyFunc`: the name without a leading `.` and cut at the first
/// `(` that does not start `(anonymous namespace)` or belong to `operator()`.
fn simplify(name: &str) -> &str {
    let name = name.strip_prefix('.').unwrap_or(name);
    let bytes = name.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        // Byte-wise: the markers are ASCII, so `i` at a `(` is a char boundary.
        let rest = &bytes[i..];
        if rest.starts_with(b"(anonymous namespace)") {
            i += "(anonymous namespace)".len();
        } else if rest.starts_with(b"operator()") {
            i += "operator()".len();
        } else if bytes[i] == b'(' {
            return &name[..i];
        } else {
            i += 1;
        }
    }
    name
}

/// Names that match pprof's allocator list exactly (`^(...)$`).
const DROPPED_EXACT: &[&str] = &[
    "calloc",
    "cfree",
    "malloc",
    "free",
    "memalign",
    "do_memalign",
    "posix_memalign",
    "__posix_memalign",
    "pvalloc",
    "valloc",
    "realloc",
    "tc_calloc",
    "tc_cfree",
    "tc_malloc",
    "tc_free",
    "tc_memalign",
    "tc_posix_memalign",
    "tc_pvalloc",
    "tc_valloc",
    "tc_realloc",
    "tc_new",
    "tc_delete",
    "tc_newarray",
    "tc_deletearray",
    "tc_new_nothrow",
    "tc_newarray_nothrow",
    "malloc_zone_malloc",
    "malloc_zone_calloc",
    "malloc_zone_valloc",
    "malloc_zone_realloc",
    "malloc_zone_memalign",
    "malloc_zone_free",
    "do_malloc_no_errno",
    "::do_malloc_no_errno",
    "do_malloc_pages",
    "::do_malloc_pages",
    "do_malloc",
    "::do_malloc",
    "DoSampledAllocation",
    "MallocedMemBlock::MallocedMemBlock",
    "_M_allocate",
    "__builtin_delete",
    "__builtin_vec_delete",
    "__builtin_new",
    "__builtin_vec_new",
    "__gnu_cxx::new_allocator::allocate",
    "__libc_malloc",
    "__malloc_alloc_template::allocate",
    "allocate",
    "cpp_alloc",
    "operator new",
    "operator new[]",
    "simple_alloc::allocate",
];

/// Prefixes of pprof's allocator list (`runtime\..*`, `tcmalloc::.*`, ...).
const DROPPED_PREFIX: &[&str] = &["runtime.", "tcmalloc::", "BaseArena::"];

/// Whether pprof drops a frame of this function from a legacy heap profile.
fn is_dropped(name: &str) -> bool {
    let name = simplify(name);
    let dropped =
        DROPPED_EXACT.contains(&name) || DROPPED_PREFIX.iter().any(|p| name.starts_with(p));
    dropped && !is_kept(name)
}

/// pprof's exceptions: `runtime\.panic`, `runtime\.reflectcall`, `runtime\.call[0-9]*`.
fn is_kept(name: &str) -> bool {
    name == "runtime.panic"
        || name == "runtime.reflectcall"
        || name
            .strip_prefix("runtime.call")
            .is_some_and(|digits| digits.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, PartialEq)]
    struct Loc(Vec<&'static str>);
    impl Lines for Loc {
        fn names(&self) -> Vec<&str> {
            self.0.clone()
        }
        fn keep_outer_from(&mut self, from: usize) {
            self.0.drain(..from);
        }
    }

    #[test]
    fn allocator_names_follow_pprofs_list() {
        assert!(is_dropped("runtime.mallocgc"));
        assert!(is_dropped("runtime.(*mheap).alloc"));
        assert!(is_dropped("operator new(unsigned long)"));
        assert!(is_dropped("tcmalloc::allocate_full"));
        assert!(!is_dropped("runtime.panic"));
        assert!(!is_dropped("runtime.call32"));
        assert!(!is_dropped("runtime.reflectcall"));
        assert!(is_dropped("runtime.panicmem"));
        assert!(is_dropped("runtime.callers"));
        assert!(!is_dropped("internal/runtime/maps.newarray"));
        assert!(!is_dropped("main.(*runtime).alloc"));
        assert!(!is_dropped("mallocx"));
        assert_eq!(
            simplify("a::(anonymous namespace)::f(int)"),
            "a::(anonymous namespace)::f"
        );
        assert_eq!(simplify("S::operator()(int)"), "S::operator()");
        // Found by the fuzzer: a multi-byte character before the `(`.
        assert_eq!(simplify("main.\u{fffd}x(y)"), "main.\u{fffd}x");
    }

    #[test]
    fn stacks_are_cut_below_the_first_allocator_after_a_user_frame() {
        // Locations: 0 user leaf, 1 runtime (whole), 2 user, 3 runtime.goexit,
        // 4 [runtime.inner inlined in main.outer] (beneath).
        let mut locs = vec![
            Loc(vec!["main.leaf"]),
            Loc(vec!["runtime.mid"]),
            Loc(vec!["main.f"]),
            Loc(vec!["runtime.goexit"]),
            Loc(vec!["runtime.inner", "main.outer"]),
        ];
        let cuts = cut_locations(&mut locs);
        assert_eq!(
            cuts,
            [Cut::Keep, Cut::Whole, Cut::Keep, Cut::Whole, Cut::Beneath]
        );
        assert_eq!(locs[4], Loc(vec!["main.outer"]));
        // Root-side runtime frames stay; the first one below a user frame cuts.
        let mut stack = vec![0, 1, 2, 3];
        cut_stack(&mut stack, &cuts);
        assert_eq!(stack, [2, 3]);
        let mut stack = vec![0, 4, 2, 3];
        cut_stack(&mut stack, &cuts);
        assert_eq!(stack, [4, 2, 3]);
        // Only allocator frames: nothing is cut.
        let mut stack = vec![1, 3];
        cut_stack(&mut stack, &cuts);
        assert_eq!(stack, [1, 3]);
    }
}
