//! The Go runtime settings in `/proc/PID/environ`, and nothing else.
//!
//! A process's environment holds secrets (database passwords, API tokens).
//! memlens needs four keys from it; this parser looks at each entry's key and
//! copies the value of those four only. No other key or value is kept, logged,
//! or put in an error: parsing cannot fail, so there is no error to leak into.

/// The Go runtime's environment settings of a process, raw as written.
///
/// Only `GOGC`, `GOMEMLIMIT`, `GODEBUG` and `GOMAXPROCS` are ever stored
/// (exact, case-sensitive key match, as the Go runtime reads them); `None` means
/// the key is not set. Values are not interpreted here (`"off"`, `"100MiB"`,
/// `"gctrace=1,madvdontneed=1"` stay strings).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GoEnv {
    /// `GOGC`: the GC target percentage, or `off`.
    pub gogc: Option<String>,
    /// `GOMEMLIMIT`: the soft memory limit (Go 1.19+), e.g. `100MiB` or `off`.
    pub gomemlimit: Option<String>,
    /// `GODEBUG`: comma-separated runtime debug settings, e.g. `gctrace=1`.
    pub godebug: Option<String>,
    /// `GOMAXPROCS`: the number of OS threads running Go code at once.
    pub gomaxprocs: Option<String>,
}

impl GoEnv {
    /// Reads the four Go keys from `/proc/PID/environ` (NUL-separated `KEY=value`
    /// entries, lossy UTF-8 for the kept values).
    ///
    /// When a key appears twice the first one wins, as in the Go runtime and in
    /// glibc's `getenv`. Entries without `=` are skipped. Note that the file
    /// shows the environment the process started with; a later `os.Setenv` in
    /// the target does not appear in it.
    pub fn parse(bytes: &[u8]) -> GoEnv {
        let mut env = GoEnv::default();
        for entry in bytes.split(|b| *b == 0) {
            let Some(eq) = entry.iter().position(|b| *b == b'=') else {
                continue;
            };
            let (key, value) = (&entry[..eq], &entry[eq + 1..]);
            let slot = match key {
                b"GOGC" => &mut env.gogc,
                b"GOMEMLIMIT" => &mut env.gomemlimit,
                b"GODEBUG" => &mut env.godebug,
                b"GOMAXPROCS" => &mut env.gomaxprocs,
                _ => continue,
            };
            if slot.is_none() {
                *slot = Some(String::from_utf8_lossy(value).into_owned());
            }
        }
        env
    }

    /// True when none of the four keys is set.
    pub fn is_empty(&self) -> bool {
        *self == GoEnv::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const CAPTURED: &[u8] = include_bytes!("../../testdata/proc/linux6.18-environ-go-vars.bin");

    #[test]
    fn captured_environ_keeps_only_go_keys() {
        // Started as `env -i PATH=/usr/bin:/bin HOME=/root GOGC=50 GOMEMLIMIT=100MiB
        // GODEBUG=gctrace=1 GOMAXPROCS=2 GOGCX=notme SECRET=dontkeep sleep 600`.
        let raw = String::from_utf8_lossy(CAPTURED);
        assert!(
            raw.contains("SECRET=dontkeep"),
            "the fixture must hold the secret"
        );
        let env = GoEnv::parse(CAPTURED);
        assert_eq!(
            env,
            GoEnv {
                gogc: Some("50".into()),
                gomemlimit: Some("100MiB".into()),
                godebug: Some("gctrace=1".into()),
                gomaxprocs: Some("2".into()),
            }
        );
        let shown = format!("{env:?} {env:#?}");
        for kept_out in ["dontkeep", "SECRET", "notme", "GOGCX", "/usr/bin", "/root"] {
            assert!(!shown.contains(kept_out), "{kept_out} was kept: {shown}");
        }
        assert!(!env.is_empty());
    }

    #[test]
    fn exact_keys_first_wins() {
        let env =
            GoEnv::parse(b"gogc=1\0GOGC=\0GOGC=200\0 GOMEMLIMIT=1\0GOMEMLIMIT\0GODEBUG=a=b,c=d\0");
        assert_eq!(env.gogc.as_deref(), Some(""));
        assert_eq!(env.gomemlimit, None);
        assert_eq!(env.godebug.as_deref(), Some("a=b,c=d"));
        assert!(GoEnv::parse(b"").is_empty());
        assert!(GoEnv::parse(b"PATH=/bin\0").is_empty());
        assert_eq!(GoEnv::parse(b"GOGC=\xff").gogc.as_deref(), Some("\u{fffd}"));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = GoEnv::parse(&bytes);
        }

        #[test]
        fn other_keys_never_stored(key in "[A-Z_]{1,12}", value in "[a-z]{8}") {
            prop_assume!(!["GOGC", "GOMEMLIMIT", "GODEBUG", "GOMAXPROCS"].contains(&key.as_str()));
            let env = GoEnv::parse(format!("{key}={value}\0GOGC=1\0").as_bytes());
            let shown = format!("{:?}", env);
            prop_assert!(!shown.contains(&value));
        }
    }
}
