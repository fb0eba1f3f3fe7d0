//! A minimal pprof encoder: one profile per event with the sampled stacks as
//! samples (values scaled to the exact totals), gzipped, which `go tool pprof`
//! reads. Each distinct function name is one function and one location; the
//! process is a `pid` label; the sampling is stated in the profile's comments.
//!
//! Wire format: protobuf fields of `perftools.profiles.Profile` (profile.proto):
//! sample_type 1, sample 2, location 4, function 5, string_table 6,
//! duration_nanos 10, period_type 11, period 12, comment 13.

use std::collections::HashMap;
use std::io::Write;

use crate::event::Event;
use crate::report::Report;

#[derive(Default)]
struct Buf(Vec<u8>);

impl Buf {
    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.0.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
    }
    fn key(&mut self, field: u32, wire: u8) {
        self.varint(u64::from(field) << 3 | u64::from(wire));
    }
    fn uint(&mut self, field: u32, v: u64) {
        self.key(field, 0);
        self.varint(v);
    }
    fn bytes(&mut self, field: u32, b: &[u8]) {
        self.key(field, 2);
        self.varint(b.len() as u64);
        self.0.extend_from_slice(b);
    }
    fn packed(&mut self, field: u32, values: &[u64]) {
        let mut inner = Buf::default();
        for &v in values {
            inner.varint(v);
        }
        self.bytes(field, &inner.0);
    }
}

#[derive(Default)]
struct Strings {
    table: Vec<String>,
    index: HashMap<String, u64>,
}

impl Strings {
    fn id(&mut self, s: &str) -> u64 {
        if self.table.is_empty() {
            self.table.push(String::new());
            self.index.insert(String::new(), 0);
        }
        if let Some(&i) = self.index.get(s) {
            return i;
        }
        let i = self.table.len() as u64;
        self.table.push(s.to_string());
        self.index.insert(s.to_string(), i);
        i
    }
}

/// The profile of `event` in `report`, protobuf-encoded (not compressed).
pub fn encode(report: &Report, event: Event) -> Vec<u8> {
    let mut strings = Strings::default();
    let mut out = Buf::default();
    let value_types: Vec<(&str, &str)> = if event.has_bytes() {
        vec![(event.name(), "count"), ("bytes", "bytes")]
    } else {
        vec![(event.name(), "count")]
    };
    for (kind, unit) in &value_types {
        let mut vt = Buf::default();
        vt.uint(1, strings.id(kind));
        vt.uint(2, strings.id(unit));
        out.bytes(1, &vt.0);
    }
    let mut functions: HashMap<String, u64> = HashMap::new();
    let pid_key = strings.id("pid");
    for p in &report.processes {
        for e in p.events.iter().filter(|e| e.event == event) {
            for s in &e.stacks {
                let mut ids = Vec::with_capacity(s.frames.len());
                for frame in s.frames.iter().rev() {
                    let next = functions.len() as u64 + 1;
                    ids.push(*functions.entry(frame.clone()).or_insert(next));
                }
                let mut sample = Buf::default();
                sample.packed(1, &ids);
                let mut values = vec![s.events_estimated.round() as u64];
                if event.has_bytes() {
                    values.push(s.bytes_estimated.round() as u64);
                }
                sample.packed(2, &values);
                let mut label = Buf::default();
                label.uint(1, pid_key);
                label.uint(3, u64::from(p.pid));
                sample.bytes(3, &label.0);
                out.bytes(2, &sample.0);
            }
        }
    }
    let mut by_id: Vec<(&String, &u64)> = functions.iter().collect();
    by_id.sort_by_key(|&(_, id)| *id);
    for &(_, &id) in &by_id {
        let mut line = Buf::default();
        line.uint(1, id);
        let mut location = Buf::default();
        location.uint(1, id);
        location.bytes(4, &line.0);
        out.bytes(4, &location.0);
    }
    for (name, &id) in by_id {
        let mut function = Buf::default();
        function.uint(1, id);
        let name_id = strings.id(name);
        function.uint(2, name_id);
        function.uint(3, name_id);
        out.bytes(5, &function.0);
    }
    out.uint(10, (report.duration_seconds * 1e9) as u64);
    let mut period_type = Buf::default();
    period_type.uint(1, strings.id(event.name()));
    period_type.uint(2, strings.id("count"));
    out.bytes(11, &period_type.0);
    let every = if event == Event::Faults {
        report.stack_every
    } else {
        report.syscall_stack_every
    };
    out.uint(12, every);
    let comment = strings.id(&format!("memlens trace: {}", report.sampling));
    out.uint(13, comment);
    for s in &strings.table {
        out.bytes(6, s.as_bytes());
    }
    out.0
}

/// The profile of `event`, gzipped (what `go tool pprof` reads).
pub fn gzipped(report: &Report, event: Event) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&encode(report, event))
        .expect("writing to memory");
    gz.finish().expect("writing to memory")
}
