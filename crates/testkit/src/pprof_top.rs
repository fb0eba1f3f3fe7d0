//! Reading what `go tool pprof -top` prints, the reference memlens's heap
//! analyses are compared with. Exact numbers need `-unit=B` (bytes) or
//! `-unit=none` (counts) and `-nodefraction=0 -edgefraction=0` (no row left
//! out); with `-addresses` each row is one address (`ADDR FUNC FILE:LINE`).

use std::collections::{BTreeMap, BTreeSet};

/// What `go tool pprof -top` printed.
#[derive(Debug, Clone, Default)]
pub struct PprofTop {
    /// The `of TOTAL total` figure.
    pub total: i64,
    /// Row name (function, or `ADDR FUNC FILE:LINE` with `-addresses`) →
    /// (flat, cum). The ` (inline)` / ` (partial-inline)` markers are removed.
    pub rows: BTreeMap<String, (i64, i64)>,
    /// Row names in the order pprof printed them.
    pub order: Vec<String>,
    /// Rows pprof marked ` (inline)` or ` (partial-inline)`.
    pub inlined: BTreeSet<String>,
}

/// One exact number as pprof prints it with `-unit=B` or `-unit=none`.
fn number(text: &str) -> i64 {
    let digits = text.trim_end_matches("none").trim_end_matches('B');
    digits
        .parse()
        .unwrap_or_else(|e| panic!("pprof printed {text:?}, not an exact number: {e}"))
}

/// Parses the stdout of `go tool pprof -top` (exact units). Panics, naming
/// the line, on anything it does not understand.
pub fn parse_pprof_top(stdout: &str) -> PprofTop {
    let mut top = PprofTop::default();
    let mut in_table = false;
    for line in stdout.lines() {
        if let Some(rest) = line.strip_prefix("Showing nodes accounting for ") {
            // "X, 100% of TOTAL total"
            let of = rest.split(" of ").nth(1).expect("'of' in the Showing line");
            top.total = number(of.split_whitespace().next().expect("a total"));
            continue;
        }
        if line.trim_start().starts_with("flat") {
            in_table = true;
            continue;
        }
        if !in_table || line.trim().is_empty() {
            continue;
        }
        let mut fields = line.split_whitespace();
        let mut next = || {
            fields
                .next()
                .unwrap_or_else(|| panic!("short pprof row: {line:?}"))
        };
        let flat = number(next());
        let _flat_pct = next();
        let _sum_pct = next();
        let cum = number(next());
        let _cum_pct = next();
        let name = fields.collect::<Vec<&str>>().join(" ");
        let bare = name
            .trim_end_matches(" (partial-inline)")
            .trim_end_matches(" (inline)")
            .to_string();
        if bare != name {
            top.inlined.insert(bare.clone());
        }
        assert!(
            top.rows.insert(bare.clone(), (flat, cum)).is_none(),
            "pprof printed {bare} twice"
        );
        top.order.push(bare);
    }
    top
}

/// One row of `-top -addresses`: `ADDR FUNC FILE:LINE`, split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressRow {
    /// The address (hex in the output).
    pub address: u64,
    /// The function pprof named it by.
    pub function: String,
    /// `file:line` as printed.
    pub place: String,
}

/// Splits a row name of `go tool pprof -top -addresses`.
pub fn parse_address_row(name: &str) -> AddressRow {
    let mut parts = name.split(' ');
    let address = parts
        .next()
        .and_then(|a| u64::from_str_radix(a, 16).ok())
        .unwrap_or_else(|| panic!("no hex address first in {name:?}"));
    let rest: Vec<&str> = parts.collect();
    let (place, function) = rest
        .split_last()
        .unwrap_or_else(|| panic!("no function in {name:?}"));
    AddressRow {
        address,
        function: function.join(" "),
        place: place.to_string(),
    }
}

/// Runs `go tool pprof -top -nodefraction=0 -edgefraction=0 -unit=UNIT
/// -sample_index=SAMPLE EXTRA... FILES...` with `go`'s own pprof
/// (`GOTOOLCHAIN=local`) and parses what it prints. `unit` is `B` or `none`
/// for exact numbers. Panics with pprof's stderr when it fails.
pub fn go_tool_pprof_top(
    go: &crate::GoToolchain,
    sample: &str,
    unit: &str,
    extra: &[&str],
    files: &[&std::path::Path],
) -> PprofTop {
    let out = std::process::Command::new(&go.go_binary)
        .args([
            "tool",
            "pprof",
            "-top",
            "-nodefraction=0",
            "-edgefraction=0",
        ])
        .arg(format!("-sample_index={sample}"))
        .arg(format!("-unit={unit}"))
        .args(extra)
        .args(files)
        .env("GOTOOLCHAIN", "local")
        .env("PPROF_TMPDIR", std::env::temp_dir())
        .output()
        .expect("run go tool pprof");
    assert!(
        out.status.success(),
        "go tool pprof {extra:?} {files:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    parse_pprof_top(&String::from_utf8_lossy(&out.stdout))
}

/// Compares memlens's per-function totals of a text heap profile (symbols from
/// its `#` lines, inlined calls expanded) with `go tool pprof -top BINARY FILE`
/// on the same file, whose binary symboliser names each address by the function
/// whose code holds it (inlined calls are not expanded): `inline_reference` is
/// pprof's `-top` of a profile that expands them (Go's protobuf of the same GC
/// cycle), telling which functions were inlined.
///
/// Holds: the totals are equal; every function pprof lists (but
/// `runtime.goexit`, which Go's text never names) has memlens's cum, or at
/// least it when pprof marks it partly inlined (memlens also counts its inlined
/// copies); every function only memlens lists is one pprof marks inlined.
/// Returns what does not hold.
pub fn compare_with_binary_symbolised(
    got_total: i64,
    got: &BTreeMap<String, (i64, i64)>,
    binary: &PprofTop,
    inline_reference: &PprofTop,
) -> Result<(), String> {
    if got_total != binary.total {
        return Err(format!(
            "total: memlens {got_total}, pprof {}",
            binary.total
        ));
    }
    for (function, &(_, cum)) in &binary.rows {
        if function == "runtime.goexit" {
            continue;
        }
        let mine = got.get(function).map(|p| p.1);
        let ok = match mine {
            Some(m) if inline_reference.inlined.contains(function) => m >= cum,
            Some(m) => m == cum,
            None => false,
        };
        if !ok {
            return Err(format!("cum of {function}: memlens {mine:?}, pprof {cum}"));
        }
    }
    for function in got.keys().filter(|f| !binary.rows.contains_key(*f)) {
        if !inline_reference.inlined.contains(function) {
            return Err(format!(
                "{function}: listed by memlens only and not inlined"
            ));
        }
    }
    Ok(())
}
