//! `Profile::decode` and `Profile::stacks` against `go tool pprof` (Go 1.27):
//! the stacks of `-traces`, the sample types and period type of `-raw`.

use memlens_goruntime::pprof::Profile;
use memlens_testkit::GoToolchain;
use std::io::Read;
use std::path::PathBuf;
use std::process::Command;

fn capture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/captures")
        .join(name)
}

fn go_tool_pprof(args: &[&str], file: &PathBuf) -> String {
    let go = GoToolchain::go127();
    let out = Command::new(&go.go_binary)
        .args(["tool", "pprof"])
        .args(args)
        .arg(file)
        .env("GOTOOLCHAIN", "local")
        .output()
        .expect("run go tool pprof");
    assert!(
        out.status.success(),
        "go tool pprof {args:?} {}: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// (value, function names leaf first) of each block of `-traces`.
fn traces(text: &str) -> Vec<(i64, Vec<String>)> {
    let mut out: Vec<(i64, Vec<String>)> = Vec::new();
    let mut current: Option<(i64, Vec<String>)> = None;
    let mut started = false;
    for line in text.lines() {
        if line.starts_with("-----------+") {
            started = true;
            if let Some(block) = current.take() {
                out.push(block);
            }
            continue;
        }
        if !started || line.trim().is_empty() {
            continue;
        }
        let first = line.split_whitespace().next().unwrap();
        if first.ends_with(':') {
            continue; // a label line ("bytes:  320kB")
        }
        let strip = |s: &str| s.trim().trim_end_matches(" (inline)").to_string();
        match &mut current {
            None => {
                let (value, name) = line.trim_start().split_once(char::is_whitespace).unwrap();
                let value: i64 = value.trim_end_matches("none").parse().unwrap();
                current = Some((value, vec![strip(name)]));
            }
            Some((_, names)) => names.push(strip(line)),
        }
    }
    if let Some(block) = current.take() {
        out.push(block);
    }
    out
}

fn check_stacks(name: &str, sample: &str) {
    let file = capture(name);
    let profile = Profile::decode(&std::fs::read(&file).unwrap()).unwrap();
    let index = profile.sample_type_index(sample).unwrap();
    let mut want = traces(&go_tool_pprof(
        &[&format!("-sample_index={sample}"), "-unit=none", "-traces"],
        &file,
    ));
    let mut got: Vec<(i64, Vec<String>)> = profile
        .stacks()
        .map(|(frames, values, _)| {
            (
                values[index],
                frames.into_iter().map(|f| f.function).collect::<Vec<_>>(),
            )
        })
        .filter(|(_, frames)| !frames.is_empty())
        .collect();
    want.sort();
    got.sort();
    assert!(!want.is_empty(), "{name}: parsed no traces");
    assert_eq!(got.len(), want.len(), "{name}: number of stacks");
    assert_eq!(got, want, "{name}: stacks");
}

#[test]
fn stacks_match_go_tool_pprof_traces() {
    check_stacks("go1.27.3-heap-leak-heap-later.pb.gz", "inuse_objects");
    check_stacks("go1.19.8-heap-leak-heap-later.pb.gz", "alloc_objects");
    check_stacks("prometheus2.42.0-go1.19.8-goroutine.pb.gz", "goroutine");
    check_stacks(
        "go1.27.3-goroutine-leak-goroutineleak.pb.gz",
        "goroutineleak",
    );
}

#[test]
fn frames_carry_files_and_lines_leaf_first() {
    let profile =
        Profile::decode(&std::fs::read(capture("go1.27.3-heap-leak-heap-later.pb.gz")).unwrap())
            .unwrap();
    let leak = profile
        .stacks()
        .map(|(frames, _, _)| frames)
        .find(|frames| {
            frames.len() > 1
                && frames[0].function == "main.newChunk"
                && frames[1].function == "main.retainLeakChunk"
        })
        .expect("a stack main.newChunk <- main.retainLeakChunk");
    assert_eq!(leak[0].file, "memlens.dev/workload/modes_heap.go");
    assert!(leak[0].line > 0);
}

#[test]
fn sample_types_and_period_type_match_go_tool_pprof_raw() {
    for name in [
        "go1.19.8-heap-leak-heap.pb.gz",
        "go1.27.3-heap-leak-allocs.pb.gz",
        "go1.27.3-goroutine-leak-goroutine.pb.gz",
        "prometheus2.42.0-go1.19.8-heap.pb.gz",
    ] {
        let file = capture(name);
        let raw = go_tool_pprof(&["-raw"], &file);
        let profile = Profile::decode(&std::fs::read(&file).unwrap()).unwrap();
        let period = raw
            .lines()
            .find_map(|l| l.strip_prefix("PeriodType: "))
            .expect("PeriodType line");
        let (t, u) = profile.period_type().unwrap();
        assert_eq!(format!("{t} {u}"), period, "{name}");
        // The line after "Samples:" lists type/unit pairs.
        let header = raw.lines().skip_while(|l| *l != "Samples:").nth(1).unwrap();
        // pprof marks the default sample type with "[dflt]".
        let want: Vec<String> = header.split_whitespace().map(str::to_string).collect();
        let got: Vec<String> = profile
            .sample_types()
            .iter()
            .enumerate()
            .map(|(i, (t, u))| {
                let marked = want.iter().any(|w| w.ends_with("[dflt]"));
                if marked && i == profile.default_sample_index() {
                    format!("{t}/{u}[dflt]")
                } else {
                    format!("{t}/{u}")
                }
            })
            .collect();
        assert_eq!(got, want, "{name}");
        for (i, (t, _)) in profile.sample_types().iter().enumerate() {
            assert_eq!(profile.sample_type_index(t), Some(i));
        }
        assert_eq!(profile.sample_type_index("no_such_type"), None);
    }
}

#[test]
fn plain_protobuf_decodes_like_the_gzipped_one() {
    let gz = std::fs::read(capture("alertmanager0.25.0-go1.19.8-heap.pb.gz")).unwrap();
    let mut plain = Vec::new();
    flate2::read::GzDecoder::new(&gz[..])
        .read_to_end(&mut plain)
        .unwrap();
    assert_ne!(plain[..2], [0x1f, 0x8b]);
    let a = Profile::decode(&gz).unwrap();
    let b = Profile::decode(&plain).unwrap();
    let sa: Vec<_> = a.stacks().map(|(f, v, l)| (f, v.to_vec(), l)).collect();
    let sb: Vec<_> = b.stacks().map(|(f, v, l)| (f, v.to_vec(), l)).collect();
    assert_eq!(sa, sb);
    assert_eq!(a.sample_types(), b.sample_types());
}
