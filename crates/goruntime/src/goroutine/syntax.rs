//! The shapes of single lines in goroutine dumps: the `goroutine N [state]:`
//! header, a frame's function line and file line, `created by`, and the `#` frame
//! lines of `?debug=1`. Each parser returns `None` for a line of another shape.

/// A parsed `goroutine N ... [state, N minutes, locked to thread]:` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Header<'a> {
    pub(crate) id: u64,
    /// The state without ` (leaked)` / ` (scan)`.
    pub(crate) state: &'a str,
    pub(crate) wait_minutes: Option<u64>,
    pub(crate) locked_to_thread: bool,
    pub(crate) leaked: bool,
}

/// Parses a goroutine header, in every form from Go 1.17 to 1.27:
/// `goroutine 7 [chan receive, 47 minutes]:`,
/// `goroutine 1 gp=0xc000002380 m=0 mp=0x5a3c20 [running]:` (SIGQUIT, Go 1.22+),
/// `goroutine 23 [chan receive (leaked)]:`, `goroutine 9 [select, locked to thread]:`,
/// and the labels Go 1.27 may print after the bracket (`[...] {k=v}:`).
pub(crate) fn parse_header(line: &str) -> Option<Header<'_>> {
    let rest = line.strip_prefix("goroutine ")?;
    let digits_end = rest
        .bytes()
        .position(|b| !b.is_ascii_digit())
        .unwrap_or(rest.len());
    if digits_end == 0 {
        return None;
    }
    let id: u64 = rest[..digits_end].parse().ok()?;
    let after_id = &rest[digits_end..];
    if !after_id.starts_with(' ') {
        return None;
    }
    let open = after_id.find('[')?;
    // Between the id and the bracket only `gp=... m=... mp=...` may appear.
    let between = &after_id[..open];
    if !between
        .split_whitespace()
        .all(|word| word.starts_with("gp=") || word.starts_with("m=") || word.starts_with("mp="))
    {
        return None;
    }
    let inside_and_rest = &after_id[open + 1..];
    let close = inside_and_rest.find(']')?;
    let inside = &inside_and_rest[..close];
    let tail = inside_and_rest[close + 1..].trim_end();
    if !tail.ends_with(':') {
        return None;
    }
    let mut parts = inside.split(", ");
    let mut state = parts.next().unwrap_or("").trim();
    let mut leaked = false;
    loop {
        if let Some(s) = state.strip_suffix(" (leaked)") {
            leaked = true;
            state = s;
        } else if let Some(s) = state.strip_suffix(" (scan)") {
            state = s;
        } else {
            break;
        }
    }
    let mut wait_minutes = None;
    let mut locked_to_thread = false;
    for part in parts {
        if let Some(n) = part.strip_suffix(" minutes") {
            wait_minutes = n.trim().parse().ok();
        } else if part == "locked to thread" {
            locked_to_thread = true;
        }
    }
    Some(Header {
        id,
        state,
        wait_minutes,
        locked_to_thread,
        leaked,
    })
}

/// The function of a frame's first line, `pkg.(*T).method(0x1, {0x2, 0x3}, ...)`,
/// without its arguments. `None` when the line is not a call.
pub(crate) fn parse_function_line(line: &str) -> Option<&str> {
    if line.starts_with(['\t', ' ', '[', '#']) || !line.ends_with(')') {
        return None;
    }
    // Arguments never contain parentheses, so the last `(` opens them.
    let open = line.rfind('(')?;
    let function = &line[..open];
    if function.is_empty() || function.contains(": ") || function.starts_with("goroutine ") {
        return None;
    }
    Some(function)
}

/// A frame's second line, `\t/path/file.go:123 +0x1d fp=0x.. sp=0x.. pc=0x..`,
/// as (file, line).
pub(crate) fn parse_file_line(line: &str) -> Option<(&str, u32)> {
    let body = line.strip_prefix('\t')?;
    split_file_and_line(body[..location_end(body)].trim_end())
}

/// Where the `file:line` of a frame's second line (tab removed) ends: at the
/// first ` +0x`, ` fp=` or ` pc=`, else at the end. One pass over the spaces
/// (this runs once per frame of a million-goroutine dump).
fn location_end(body: &str) -> usize {
    let bytes = body.as_bytes();
    let mut from = 0;
    while let Some(i) = memchr::memchr(b' ', &bytes[from..]) {
        let at = from + i;
        let rest = &bytes[at..];
        if rest.starts_with(b" +0x") || rest.starts_with(b" fp=") || rest.starts_with(b" pc=") {
            return at;
        }
        from = at + 1;
    }
    bytes.len()
}

/// `file.go:123` as (`file.go`, 123).
fn split_file_and_line(location: &str) -> Option<(&str, u32)> {
    let (file, number) = location.rsplit_once(':')?;
    if file.is_empty() || number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((file, number.parse().unwrap_or(u32::MAX)))
}

/// `created by F in goroutine 7` (Go 1.21+) or `created by F`: (F, Some(7)).
pub(crate) fn parse_created_by(line: &str) -> Option<(&str, Option<u64>)> {
    let rest = line.strip_prefix("created by ")?;
    if let Some((function, creator)) = rest.rsplit_once(" in goroutine ") {
        if let Ok(id) = creator.trim().parse() {
            return Some((function, Some(id)));
        }
    }
    Some((rest.trim_end(), None))
}

/// Whether the line is the runtime's note that frames were left out:
/// `...additional frames elided...` or `...7 frames elided...`.
pub(crate) fn is_elision(line: &str) -> bool {
    line.starts_with("...") && line.ends_with("elided...")
}

/// A `?debug=1` frame line, `#\t0x4a1b2c\tmain.f+0x2c\t/path/main.go:42`, as
/// (function, file, line). `None` for other lines (`# labels: ...`).
pub(crate) fn parse_debug1_frame(line: &str) -> Option<(&str, &str, u32)> {
    let rest = line.strip_prefix('#')?;
    let mut fields = rest.split('\t').filter(|f| !f.is_empty());
    let address = fields.next()?.trim();
    if !address.starts_with("0x") {
        return None;
    }
    let function_and_offset = fields.next()?.trim();
    let function = match function_and_offset.rfind("+0x") {
        Some(at) => &function_and_offset[..at],
        None => function_and_offset,
    };
    let (file, line_number) = fields
        .next()
        .and_then(|f| split_file_and_line(f.trim()))
        .unwrap_or(("", 0));
    if function.is_empty() {
        return None;
    }
    Some((function, file, line_number))
}

/// A `?debug=1` block header `100 @ 0x48acaa 0x41814e`: the count.
pub(crate) fn parse_debug1_count(line: &str) -> Option<u64> {
    let (count, addresses) = line.split_once(" @")?;
    if !addresses.is_empty() && !addresses.starts_with(' ') {
        return None;
    }
    count.trim().parse().ok()
}

/// `goroutine profile: total 105` (or `goroutineleak profile: ...`): (name, total).
pub(crate) fn parse_debug1_total(line: &str) -> Option<(&str, u64)> {
    let (name, total) = line.split_once(" profile: total ")?;
    Some((name, total.trim().parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_of_every_go_version() {
        let h = parse_header("goroutine 7 [chan receive, 47 minutes]:").unwrap();
        assert_eq!(
            (h.id, h.state, h.wait_minutes),
            (7, "chan receive", Some(47))
        );
        let h = parse_header("goroutine 1 gp=0xc000002380 m=0 mp=0x5a3c20 [running]:").unwrap();
        assert_eq!((h.id, h.state), (1, "running"));
        let h = parse_header("goroutine 3 gp=0x12b7f43b90e0 m=nil [GC sweep wait]:").unwrap();
        assert_eq!(h.state, "GC sweep wait");
        let h = parse_header("goroutine 23 [chan receive (leaked)]:").unwrap();
        assert!(h.leaked);
        assert_eq!(h.state, "chan receive");
        let h = parse_header("goroutine 9 [select, 2 minutes, locked to thread]:").unwrap();
        assert!(h.locked_to_thread);
        assert_eq!(h.wait_minutes, Some(2));
        let h = parse_header("goroutine 5 [running (scan)]:").unwrap();
        assert_eq!(h.state, "running");
        let h = parse_header("goroutine 4 [chan receive (durable), synctest bubble 1] {a=b}:");
        assert_eq!(h.unwrap().state, "chan receive (durable)");
        assert!(parse_header("goroutine profile: total 5").is_none());
        assert!(parse_header("goroutine 5 [running]").is_none());
        assert!(parse_header("goroutine x [running]:").is_none());
    }

    #[test]
    fn frame_lines() {
        assert_eq!(
            parse_function_line("net/http.(*conn).serve(0xc0001, {0x9, 0x2})"),
            Some("net/http.(*conn).serve")
        );
        assert_eq!(
            parse_function_line("runtime.goparkunlock(...)"),
            Some("runtime.goparkunlock")
        );
        assert_eq!(parse_function_line("panic: boom (x)"), None);
        assert_eq!(parse_function_line("\tfoo()"), None);
        assert_eq!(
            parse_file_line("\truntime/proc.go:474 +0xca fp=0x12 sp=0x1 pc=0x48acaa"),
            Some(("runtime/proc.go", 474))
        );
        assert_eq!(
            parse_file_line("\t/a b/main.go:3"),
            Some(("/a b/main.go", 3))
        );
        assert_eq!(parse_file_line("\tgoroutine running on other thread"), None);
        assert_eq!(
            parse_created_by("created by main.spawn in goroutine 10"),
            Some(("main.spawn", Some(10)))
        );
        assert_eq!(
            parse_created_by("created by main.spawn"),
            Some(("main.spawn", None))
        );
        assert!(is_elision("...additional frames elided..."));
        assert!(is_elision("...12 frames elided..."));
    }

    #[test]
    fn debug1_lines() {
        assert_eq!(
            parse_debug1_frame(
                "#\t0x6e2054\tmain.leakyWorker+0x14\tmemlens.dev/workload/modes_leak.go:19"
            ),
            Some(("main.leakyWorker", "memlens.dev/workload/modes_leak.go", 19))
        );
        assert_eq!(parse_debug1_frame("# labels: {\"a\":\"b\"}"), None);
        assert_eq!(parse_debug1_count("100 @ 0x48acaa 0x41814e"), Some(100));
        assert_eq!(
            parse_debug1_total("goroutine profile: total 105"),
            Some(("goroutine", 105))
        );
    }
}
