//! `/proc/PID/task/TID/schedstat`: a thread's time on a CPU and time spent
//! waiting on a run queue for one (the scheduler's own accounting, needs
//! `CONFIG_SCHED_INFO`; present on Debian's kernels).
//!
//! The sum of the waits over a process's threads says whether it was held
//! back by CPU contention: a Go stop-the-world pause waits for every thread
//! the runtime must stop, so on a starved machine the pause grows with the
//! wait, whatever the GC does.

use crate::ParseError;

/// One thread's `schedstat` line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Schedstat {
    /// Time it ran on a CPU, ns.
    pub run_ns: u64,
    /// Time it was runnable and waited on a run queue, ns.
    pub run_queue_wait_ns: u64,
    /// Times it was given a CPU.
    pub timeslices: u64,
}

impl Schedstat {
    /// Parses the one line `RUN_NS WAIT_NS TIMESLICES`; `input` names the
    /// file in errors.
    pub fn parse(input: &str, text: &str) -> Result<Schedstat, ParseError> {
        let fields: Vec<&str> = text.split_whitespace().collect();
        if fields.len() != 3 {
            return Err(ParseError::at_line(
                input,
                1,
                format!("expected 3 numbers, found {} fields", fields.len()),
            ));
        }
        let number = |i: usize, name: &str| super::parse_number::<u64>(input, 1, name, fields[i]);
        Ok(Schedstat {
            run_ns: number(0, "run time")?,
            run_queue_wait_ns: number(1, "run queue wait")?,
            timeslices: number(2, "timeslices")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> String {
        std::fs::read_to_string(format!(
            "{}/testdata/proc/linux6.18-schedstat-{name}.txt",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    }

    #[test]
    fn reads_a_busy_threads_run_and_wait() {
        let s = Schedstat::parse("busy", &fixture("busy-task")).unwrap();
        assert_eq!(
            s,
            Schedstat {
                run_ns: 14_732_023_224,
                run_queue_wait_ns: 7_381_182_514,
                timeslices: 8656
            }
        );
        let s = Schedstat::parse("systemd", &fixture("systemd-task")).unwrap();
        assert_eq!(s.run_queue_wait_ns, 16_088_401);
    }

    #[test]
    fn refuses_what_is_not_three_numbers() {
        let e = Schedstat::parse("x/schedstat", "1 2").unwrap_err();
        assert!(e.to_string().contains("x/schedstat"), "{e}");
        assert!(e.to_string().contains("3 numbers"), "{e}");
        let e = Schedstat::parse("x/schedstat", "1 two 3\n").unwrap_err();
        assert!(e.to_string().contains("run queue wait"), "{e}");
    }
}
