//! Prints the Go build info of each file named on the command line, with what it
//! cost to read: bytes read, number of reads and wall time.
//!
//! ```sh
//! cargo run --release -p memlens-goruntime --example buildinfo -- /usr/bin/prometheus /proc/self/exe
//! ```

use memlens_goruntime::{read_build_info, ReadAt};
use std::cell::Cell;
use std::fs::File;
use std::io;
use std::time::Instant;

/// A [`ReadAt`] that counts what it is asked for.
struct Counting {
    inner: File,
    bytes: Cell<u64>,
    reads: Cell<u64>,
}

impl ReadAt for Counting {
    fn read_at(&self, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        self.bytes.set(self.bytes.get() + len as u64);
        self.reads.set(self.reads.get() + 1);
        ReadAt::read_at(&self.inner, offset, len)
    }

    fn size(&self) -> io::Result<u64> {
        self.inner.size()
    }
}

fn main() {
    let paths: Vec<String> = std::env::args().skip(1).collect();
    if paths.is_empty() {
        eprintln!("usage: buildinfo FILE...");
        std::process::exit(2);
    }
    for path in paths {
        let file = match File::open(&path) {
            Ok(file) => file,
            Err(e) => {
                println!("{path}: cannot open: {e}");
                continue;
            }
        };
        let src = Counting {
            inner: file,
            bytes: Cell::new(0),
            reads: Cell::new(0),
        };
        let size = src.size().unwrap_or(0);
        let start = Instant::now();
        let result = read_build_info(&src);
        let elapsed = start.elapsed();
        let cost = format!(
            "[{} bytes in {} reads of a {size}-byte file, {:.1} µs]",
            src.bytes.get(),
            src.reads.get(),
            elapsed.as_secs_f64() * 1e6
        );
        match result {
            Ok(None) => println!("{path}: not a Go binary {cost}"),
            Err(e) => println!("{path}: error: {e} {cost}"),
            Ok(Some(info)) => {
                println!(
                    "{path}: {} ({:?} format) {cost}",
                    info.go_version, info.format
                );
                if let Some(main) = &info.main_module {
                    let version = info.main_module_version.as_deref().unwrap_or("-");
                    println!("\tmain\t{main}\t{version}");
                }
                for dep in &info.deps {
                    println!("\tdep\t{}\t{}", dep.path, dep.version);
                    if let Some(r) = &dep.replace {
                        println!("\t=>\t{}\t{}", r.path, r.version);
                    }
                }
                for (key, value) in &info.settings {
                    println!("\tbuild\t{key}={value}");
                }
            }
        }
    }
}
