//! Fresh memory cgroups for tests, removed on drop.

pub use memlens_linux::cgroup::CgroupVersion;
use memlens_linux::cgroup::FlatKeyed;
use memlens_linux::mountinfo::CgroupMounts;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Names of the cgroups this harness creates start with this.
const NAME_PREFIX: &str = "memlens-test-";

/// A memory cgroup created for one test, with a hard limit.
///
/// Dropping it kills every process still inside (only processes the test put
/// there can be inside) and removes the directory.
#[derive(Debug)]
pub struct TestCgroup {
    dir: PathBuf,
    version: CgroupVersion,
    /// Where the memory hierarchy is mounted (the root cgroup's directory).
    mount_point: PathBuf,
}

impl TestCgroup {
    /// Creates a cgroup limited to `limit_bytes` of memory (and no swap).
    ///
    /// Uses v2 when the host's unified hierarchy has the memory controller, v1
    /// otherwise. Panics with the reason when neither can be used: tests that
    /// need a cgroup fail, they do not skip.
    pub fn with_limit(limit_bytes: u64) -> TestCgroup {
        let (version, parent) = memory_hierarchy();
        remove_stale(&parent);
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "{NAME_PREFIX}{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        TestCgroup::create(version, &parent, parent.join(name), Some(limit_bytes))
    }

    /// Creates a child cgroup `name` of this one, limited to `limit_bytes`
    /// when given (else only by this one's limit: siblings under a limited
    /// parent share it). Drop the children before the parent (declare them
    /// after it); a parent dropped first removes them too.
    pub fn child(&self, name: &str, limit_bytes: Option<u64>) -> TestCgroup {
        TestCgroup::create(
            self.version,
            &self.mount_point,
            self.dir.join(name),
            limit_bytes,
        )
    }

    fn create(
        version: CgroupVersion,
        mount_point: &Path,
        dir: PathBuf,
        limit_bytes: Option<u64>,
    ) -> TestCgroup {
        std::fs::create_dir(&dir).unwrap_or_else(|e| {
            panic!(
                "cannot create memory cgroup {}: {e} (tests with cgroups must run as root)",
                dir.display()
            )
        });
        let cgroup = TestCgroup {
            dir,
            version,
            mount_point: mount_point.to_path_buf(),
        };
        if let CgroupVersion::V2 = version {
            // Children get the memory controller only when it is delegated.
            if let Some(parent) = cgroup.dir.parent() {
                let _ = std::fs::write(parent.join("cgroup.subtree_control"), "+memory");
            }
        }
        let Some(limit_bytes) = limit_bytes else {
            return cgroup;
        };
        match version {
            CgroupVersion::V1 => {
                cgroup.write("memory.limit_in_bytes", &limit_bytes.to_string());
                // Keep the kill point at the limit: no swapping past it.
                if cgroup.dir.join("memory.memsw.limit_in_bytes").exists() {
                    cgroup.write("memory.memsw.limit_in_bytes", &limit_bytes.to_string());
                }
            }
            CgroupVersion::V2 => {
                cgroup.write("memory.max", &limit_bytes.to_string());
                if cgroup.dir.join("memory.swap.max").exists() {
                    cgroup.write("memory.swap.max", "0");
                }
            }
        }
        cgroup
    }

    /// The cgroup's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The cgroup's version.
    pub fn version(&self) -> CgroupVersion {
        self.version
    }

    /// The cgroup's path as `/proc/PID/cgroup` shows it, e.g.
    /// `/memlens-test-12-0`, or `/memlens-test-12-0/db` for a child.
    pub fn path_in_hierarchy(&self) -> String {
        let relative = self
            .dir
            .strip_prefix(&self.mount_point)
            .expect("a test cgroup lies under its hierarchy's mount point");
        format!("/{}", relative.to_string_lossy())
    }

    /// The `cgroup.procs` file a process writes its pid to in order to join.
    pub fn procs_file(&self) -> PathBuf {
        self.dir.join("cgroup.procs")
    }

    /// The pids now in the cgroup.
    pub fn pids(&self) -> Vec<i32> {
        std::fs::read_to_string(self.procs_file())
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    }

    /// How many processes the kernel's OOM killer has killed in this cgroup
    /// (`oom_kill` of `memory.oom_control` in v1, of `memory.events` in v2).
    pub fn oom_kill_count(&self) -> u64 {
        let file = match self.version {
            CgroupVersion::V1 => "memory.oom_control",
            CgroupVersion::V2 => "memory.events",
        };
        let text = self.read(file);
        let parsed = FlatKeyed::parse(file, &text).unwrap_or_else(|e| panic!("{e}"));
        parsed
            .get("oom_kill")
            .unwrap_or_else(|| panic!("{file} of {} has no oom_kill", self.dir.display()))
    }

    /// Current memory charged to the cgroup, in bytes.
    pub fn usage_bytes(&self) -> u64 {
        let file = match self.version {
            CgroupVersion::V1 => "memory.usage_in_bytes",
            CgroupVersion::V2 => "memory.current",
        };
        let text = self.read(file);
        text.trim()
            .parse()
            .unwrap_or_else(|_| panic!("{file}: not a number: {text:?}"))
    }

    /// Reads one of the cgroup's files; panics naming it when that fails.
    pub fn read(&self, file: &str) -> String {
        let path = self.dir.join(file);
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
    }

    /// The cgroup's peak memory usage since it was created, as the kernel
    /// counts it (`memory.max_usage_in_bytes` in v1, `memory.peak` in v2).
    pub fn peak_usage_bytes(&self) -> u64 {
        let file = match self.version() {
            CgroupVersion::V1 => "memory.max_usage_in_bytes",
            CgroupVersion::V2 => "memory.peak",
        };
        let text = self.read(file);
        text.trim()
            .parse()
            .unwrap_or_else(|_| panic!("{file}: not a number: {text:?}"))
    }

    fn write(&self, file: &str, value: &str) {
        let path = self.dir.join(file);
        std::fs::write(&path, value)
            .unwrap_or_else(|e| panic!("write {value:?} to {}: {e}", path.display()));
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        empty_and_remove(&self.dir);
    }
}

/// Kills what is left in `dir` and removes it (its child cgroups first),
/// trying for up to ten seconds.
fn empty_and_remove(dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                empty_and_remove(&entry.path());
            }
        }
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
        for pid in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
            // SAFETY: kill(2) has no memory-safety preconditions.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        match std::fs::remove_dir(dir) {
            Ok(()) => return,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
            Err(e) if Instant::now() > deadline => {
                eprintln!("testkit: could not remove cgroup {}: {e}", dir.display());
                return;
            }
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// Removes cgroups an earlier, killed test run of this harness left behind
/// (their creator pid no longer exists).
fn remove_stale(parent: &Path) {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix(NAME_PREFIX) else {
            continue;
        };
        let creator: Option<i32> = rest.split('-').next().and_then(|p| p.parse().ok());
        if let Some(pid) = creator {
            if !Path::new(&format!("/proc/{pid}")).exists() {
                empty_and_remove(&entry.path());
            }
        }
    }
}

/// The version and directory under which test cgroups are created.
fn memory_hierarchy() -> (CgroupVersion, PathBuf) {
    let text = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_else(|e| panic!("read /proc/self/mountinfo: {e}"));
    let mounts =
        CgroupMounts::parse("/proc/self/mountinfo", &text).unwrap_or_else(|e| panic!("{e}"));
    if let Some(v2) = mounts.unified() {
        let root = PathBuf::from(&v2.mount_point);
        let controllers =
            std::fs::read_to_string(root.join("cgroup.controllers")).unwrap_or_default();
        if controllers.split_whitespace().any(|c| c == "memory") {
            // Children of the root get the memory controller only when the root
            // delegates it.
            let _ = std::fs::write(root.join("cgroup.subtree_control"), "+memory");
            return (CgroupVersion::V2, root);
        }
    }
    if let Some(v1) = mounts.memory_v1() {
        return (CgroupVersion::V1, PathBuf::from(&v1.mount_point));
    }
    panic!("no memory cgroup controller is mounted (neither v1 nor v2 with memory)");
}
