//! Goroutines as groups by creation site, with counts. The grouping by
//! stack is `memlens_goruntime::goroutine`'s (the one of `memlens
//! goroutines`). The agent keeps the protobuf profile (`?debug=0`: exact
//! counts, no `created by` line) and, next to it, the `?debug=2` dump (each
//! goroutine with its `created by` line: the function that ran the `go`
//! statement). Groups are by creation site when a dump was read
//! (`"grouping": "created_by"`); from the protobuf profile alone they are by
//! where the goroutines start: the root-most frame of the stack (the
//! function named in the `go` statement), `"grouping": "start"`. Each row
//! says which it is (`"site"`): under `created_by`, goroutines without a
//! creator (the main goroutine) are still rows of their start function.

use memlens_goruntime::goroutine::{analyse_profile, read_dump, Analysis, GoroutineError, Limits};
use memlens_goruntime::pprof::Profile;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::Read;

/// Groups shown at most (the rest are summed into `other_goroutines`).
const MAX_SITES: usize = 200;

/// The most bytes of dump text read out of one stored (gzipped) `?debug=2`
/// dump: the runtime's own cap (64 MiB) and a little more.
pub const MAX_DEBUG2_TEXT_BYTES: u64 = 65 << 20;

/// The groups of a protobuf goroutine profile (no creation sites).
pub fn analyse_counts(profile: &Profile) -> Result<Analysis, GoroutineError> {
    analyse_profile(profile, Limits::default(), 0)
}

/// The groups of a stored `?debug=2` dump (gzipped text), read as a stream:
/// at most [`MAX_DEBUG2_TEXT_BYTES`] of text. A dump that is cut (by the
/// runtime, or by that cap) is refused: its counts would be short.
pub fn analyse_debug2(gzipped: &[u8]) -> Result<Analysis, GoroutineError> {
    let text =
        std::io::BufReader::new(flate2::read::GzDecoder::new(gzipped).take(MAX_DEBUG2_TEXT_BYTES));
    let analysis = read_dump(text, Limits::default(), &mut |_| {})?;
    if let Some(cut) = &analysis.truncation {
        return Err(GoroutineError::Profile(format!(
            "the dump is cut ({}): its counts would be short",
            cut.reason
        )));
    }
    if analysis.bytes_read >= MAX_DEBUG2_TEXT_BYTES {
        return Err(GoroutineError::Profile(format!(
            "the dump is longer than {MAX_DEBUG2_TEXT_BYTES} bytes"
        )));
    }
    Ok(analysis)
}

#[derive(Default)]
struct Site {
    count: u64,
    stacks: u64,
    states: HashMap<String, u64>,
    leaf: String,
    leaf_count: u64,
}

/// `{"grouping": "created_by"|"start", "format", "total": N, "sites":
/// [{"function", "file", "line", "site": "created_by"|"start", "count",
/// "stacks", "states": {state: n}, "leaf"}], "other_goroutines": n}`,
/// largest first. `grouping` is `created_by` when the analysis comes from a
/// format with `created by` lines (`?debug=2`, SIGQUIT).
pub fn goroutine_groups(analysis: &Analysis) -> Value {
    let grouping = if analysis.format.has_creation_sites() {
        "created_by"
    } else {
        "start"
    };
    let mut sites: HashMap<(String, String, u32, &'static str), Site> = HashMap::new();
    for group in &analysis.groups {
        let key = match group.created_by.first().and_then(|c| c.site.as_ref()) {
            Some(s) => (s.function.clone(), s.file.clone(), s.line, "created_by"),
            None => match group.frames.last() {
                Some(f) => (f.function.clone(), f.file.clone(), f.line, "start"),
                None => (String::new(), String::new(), 0, "start"),
            },
        };
        let site = sites.entry(key).or_default();
        site.count += group.count;
        site.stacks += 1;
        for s in &group.states {
            *site.states.entry(s.state.clone()).or_default() += s.count;
        }
        if group.count > site.leaf_count {
            site.leaf_count = group.count;
            site.leaf = group
                .frames
                .first()
                .map(|f| f.function.clone())
                .unwrap_or_default();
        }
    }
    let mut rows: Vec<_> = sites.into_iter().collect();
    rows.sort_by(|a, b| b.1.count.cmp(&a.1.count).then(a.0.cmp(&b.0)));
    let other: u64 =
        rows.iter().skip(MAX_SITES).map(|r| r.1.count).sum::<u64>() + analysis.overflow.goroutines;
    let sites: Vec<Value> = rows
        .into_iter()
        .take(MAX_SITES)
        .map(|((function, file, line, how), s)| {
            json!({"function": function, "file": file, "line": line, "site": how,
                   "count": s.count, "stacks": s.stacks, "states": s.states, "leaf": s.leaf})
        })
        .collect();
    json!({"grouping": grouping, "format": analysis.format.name(),
           "total": analysis.total_goroutines, "sites": sites, "other_goroutines": other})
}

/// Sites followed over time at most (the largest of the last profile).
const MAX_SITES_OVER_TIME: usize = 10;

/// The goroutines of each of the largest sites of the last profile in
/// `profiles` (`(ts_ms, groups)` as [`goroutine_groups`] gives them, oldest
/// first), at every profile: `{"t": [ts...], "total": [n...], "sites":
/// [{"function", "file", "line", "site", "counts": [n...]}]}` (0 where a
/// profile has none of the site).
pub fn sites_over_time(profiles: &[(i64, Value)]) -> Value {
    let key = |s: &Value| {
        (
            s["function"].clone(),
            s["file"].clone(),
            s["line"].clone(),
            s["site"].clone(),
        )
    };
    let last = profiles.last().map(|p| &p.1["sites"]);
    let followed: Vec<&Value> = last
        .and_then(Value::as_array)
        .map(|a| a.iter().take(MAX_SITES_OVER_TIME).collect())
        .unwrap_or_default();
    let sites: Vec<Value> = followed
        .iter()
        .map(|site| {
            let counts: Vec<u64> = profiles
                .iter()
                .map(|(_, groups)| {
                    groups["sites"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter(|s| key(s) == key(site))
                        .map(|s| s["count"].as_u64().unwrap_or(0))
                        .sum()
                })
                .collect();
            json!({"function": site["function"], "file": site["file"], "line": site["line"],
                   "site": site["site"], "counts": counts})
        })
        .collect();
    json!({
        "t": profiles.iter().map(|p| p.0).collect::<Vec<_>>(),
        "total": profiles.iter().map(|p| p.1["total"].clone()).collect::<Vec<_>>(),
        "sites": sites,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sites_are_followed_across_profiles_with_zero_where_absent() {
        let site = |f: &str, n: u64| json!({"function": f, "file": "x.go", "line": 1, "site": "start", "count": n});
        let older = json!({"total": 3, "sites": [site("main.a", 3)]});
        let newer = json!({"total": 12, "sites": [site("main.leak", 10), site("main.a", 2)]});
        let v = sites_over_time(&[(1, older), (2, newer)]);
        assert_eq!(v["t"], json!([1, 2]));
        assert_eq!(v["total"], json!([3, 12]));
        assert_eq!(v["sites"][0]["function"], "main.leak");
        assert_eq!(v["sites"][0]["counts"], json!([0, 10]));
        assert_eq!(v["sites"][1]["counts"], json!([3, 2]));
    }

    #[test]
    fn a_captured_leak_profile_groups_at_its_start_function() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../goruntime/testdata/captures/go1.21.13-goroutine-leak-goroutine.pb.gz"
        );
        let profile = Profile::decode_any(&std::fs::read(path).unwrap()).unwrap();
        let value = goroutine_groups(&analyse_counts(&profile).unwrap());
        assert_eq!(value["grouping"], "start");
        let sites = value["sites"].as_array().unwrap();
        let summed: u64 = sites
            .iter()
            .map(|s| s["count"].as_u64().unwrap())
            .sum::<u64>()
            + value["other_goroutines"].as_u64().unwrap();
        assert_eq!(summed, value["total"].as_u64().unwrap());
        // The leaked goroutines are the biggest group; the capture's debug=2
        // twin names where they were created.
        let debug2 = std::fs::read_to_string(path.replace(".pb.gz", "-debug2.txt")).unwrap();
        let top = &sites[0];
        let function = top["function"].as_str().unwrap();
        assert!(debug2.contains(&format!("\n{function}(")), "{top}");
        assert!(
            top["count"].as_u64().unwrap() > value["total"].as_u64().unwrap() / 2,
            "{top}"
        );
    }

    #[test]
    fn a_captured_debug2_dump_groups_by_the_function_that_ran_the_go_statement() {
        let dir = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../goruntime/testdata/captures"
        );
        for version in ["1.19.8", "1.27.3"] {
            let path = format!("{dir}/go{version}-goroutine-leak-goroutine-debug2.txt");
            let text = std::fs::read(&path).unwrap();
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            std::io::Write::write_all(&mut gz, &text).unwrap();
            let value = goroutine_groups(&analyse_debug2(&gz.finish().unwrap()).unwrap());
            assert_eq!(value["grouping"], "created_by", "{path}");
            // Counted in the text itself, line by line: the goroutines the
            // spawner created and all goroutines.
            let text = String::from_utf8(text).unwrap();
            let spawned = text
                .lines()
                .filter(|l| l.starts_with("created by main.leakyWorkerSpawner"))
                .count() as u64;
            let all = text.lines().filter(|l| l.starts_with("goroutine ")).count() as u64;
            assert!(spawned >= 100, "{path}: {spawned}");
            assert_eq!(value["total"].as_u64(), Some(all), "{path}");
            let top = &value["sites"][0];
            assert_eq!(top["function"], "main.leakyWorkerSpawner", "{path}: {top}");
            assert_eq!(top["site"], "created_by", "{path}: {top}");
            assert_eq!(top["count"].as_u64(), Some(spawned), "{path}: {top}");
            assert_eq!(top["leaf"], "main.leakyWorker", "{path}: {top}");
            assert!(top["file"].as_str().unwrap().ends_with("modes_leak.go"));
            // The main goroutine has no creator: a row of its start function.
            assert!(
                value["sites"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|s| s["function"] == "main.main" && s["site"] == "start"),
                "{path}: no main.main start row: {value:#}"
            );
        }
    }

    #[test]
    fn a_dump_that_is_not_gzip_or_not_a_dump_is_refused() {
        assert!(analyse_debug2(b"goroutine 1 [running]:\nmain.main()\n").is_err());
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, b"").unwrap();
        assert!(analyse_debug2(&gz.finish().unwrap()).is_err());
    }
}
