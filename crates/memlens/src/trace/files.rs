//! The files `memlens trace -o DIR` writes, per event with sampled stacks:
//! `EVENT.folded` (by events), `EVENT-bytes.folded` (by bytes, events with a
//! length), `EVENT.svg` (flame graph) and `EVENT.pb.gz` (gzipped pprof,
//! `go tool pprof` opens it); and `summary.txt`, the table. Folded files have
//! no header (tools expect bare lines): the sampling is stated in
//! `summary.txt`, the SVG titles and the profiles' comments.

use anyhow::Context;
use inferno::flamegraph::{self, color::BasicPalette, Palette};
use memlens_trace::{Event, Report};
use std::path::Path;

/// Writes every output file for `report` into `dir`.
pub fn write_all(report: &Report, summary: &[u8], dir: &Path) -> anyhow::Result<()> {
    write(dir, "summary.txt", summary)?;
    for event in Event::ALL {
        let has_stacks = report
            .processes
            .iter()
            .flat_map(|p| &p.events)
            .any(|e| e.event == event && !e.stacks.is_empty());
        if !has_stacks {
            continue;
        }
        let name = event.name();
        let lines = report.folded(event, false);
        write(
            dir,
            &format!("{name}.folded"),
            folded_text(&lines).as_bytes(),
        )?;
        if event.has_bytes() {
            write(
                dir,
                &format!("{name}-bytes.folded"),
                folded_text(&report.folded(event, true)).as_bytes(),
            )?;
        }
        if !lines.is_empty() {
            let title = format!("memlens trace: {name} ({})", report.sampling);
            write(dir, &format!("{name}.svg"), &svg(&lines, &title, name)?)?;
        }
        write(
            dir,
            &format!("{name}.pb.gz"),
            &memlens_trace::pprof::gzipped(report, event),
        )?;
    }
    Ok(())
}

fn folded_text(lines: &[String]) -> String {
    lines.iter().map(|l| format!("{l}\n")).collect()
}

fn write(dir: &Path, file: &str, bytes: &[u8]) -> anyhow::Result<()> {
    let path = dir.join(file);
    std::fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))
}

fn svg(lines: &[String], title: &str, count_name: &str) -> anyhow::Result<Vec<u8>> {
    let mut options = flamegraph::Options::default();
    options.title = title.to_string();
    options.count_name = count_name.to_string();
    options.colors = Palette::Basic(BasicPalette::Mem);
    let mut svg = Vec::new();
    flamegraph::from_lines(&mut options, lines.iter().map(String::as_str), &mut svg)
        .context("drawing the flame graph")?;
    Ok(svg)
}
