//! Guessing what a goroutine waits on from its frames, for the formats that do
//! not print a state (`?debug=1`, protobuf): `runtime.chanrecv` means
//! `chan receive`, `internal/poll.runtime_pollWait` means `IO wait`, and so on.
//! The names match the runtime's own wait reasons so both kinds of dump read alike.

/// Frames looked at, from the leaf.
const FRAMES_LOOKED_AT: usize = 12;

/// The wait reason the leaf-most recognised frame stands for, if any.
pub(crate) fn infer_state<'a>(functions: impl Iterator<Item = &'a str>) -> Option<&'static str> {
    functions.take(FRAMES_LOOKED_AT).find_map(state_of)
}

fn state_of(function: &str) -> Option<&'static str> {
    Some(match function {
        "runtime.chanrecv" | "runtime.chanrecv1" | "runtime.chanrecv2" => "chan receive",
        "runtime.chansend" | "runtime.chansend1" => "chan send",
        "runtime.selectgo" => "select",
        "runtime.block" => "select (no cases)",
        "internal/poll.runtime_pollWait" => "IO wait",
        "time.Sleep" => "sleep",
        "sync.(*Mutex).Lock" | "sync.(*Mutex).lockSlow" | "internal/sync.(*Mutex).lockSlow" => {
            "sync.Mutex.Lock"
        }
        "sync.(*RWMutex).RLock" => "sync.RWMutex.RLock",
        "sync.(*RWMutex).Lock" => "sync.RWMutex.Lock",
        "sync.(*Cond).Wait" => "sync.Cond.Wait",
        "sync.(*WaitGroup).Wait" => "sync.WaitGroup.Wait",
        "runtime.gcBgMarkWorker" => "GC worker (idle)",
        "runtime.bgsweep" => "GC sweep wait",
        "runtime.bgscavenge" => "GC scavenge wait",
        "runtime.forcegchelper" => "force gc (idle)",
        "runtime.runfinq" => "finalizer wait",
        "os/signal.signal_recv" => "syscall",
        "syscall.Syscall" | "syscall.Syscall6" | "syscall.RawSyscall" | "syscall.RawSyscall6" => {
            "syscall"
        }
        "runtime/pprof.writeGoroutine"
        | "runtime/pprof.writeRuntimeProfile"
        | "runtime/pprof.writeGoroutineStacks" => "running",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leaf_most_known_frame_wins() {
        let frames = [
            "runtime.gopark",
            "runtime.chanrecv",
            "runtime.chanrecv1",
            "main.worker",
        ];
        assert_eq!(infer_state(frames.into_iter()), Some("chan receive"));
        let frames = ["internal/poll.runtime_pollWait", "net.(*conn).Read"];
        assert_eq!(infer_state(frames.into_iter()), Some("IO wait"));
        assert_eq!(infer_state(["main.main"].into_iter()), None);
    }
}
