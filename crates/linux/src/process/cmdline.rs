//! `/proc/PID/cmdline` and `/proc/PID/comm`.
//!
//! Command lines are shown and stored only after [`redact_args`](super::redact_args);
//! the raw arguments of [`parse_cmdline`] must not leave the process that read them.

/// Splits `/proc/PID/cmdline` into arguments (lossy UTF-8).
///
/// Arguments are NUL-separated and the last one ends with a NUL. Trailing empty
/// arguments are dropped: programs that rewrite their title in place (PostgreSQL,
/// nginx, `setproctitle`) pad the old argv area with NULs, which would otherwise
/// show as a run of empty arguments; a real empty last argument is lost with
/// them. Such programs also often write their whole title as one argument with
/// spaces (`"postgres: checkpointer"`); [`redact_args`](super::redact_args) looks inside those too.
/// Kernel threads and zombies have an empty cmdline: no arguments.
pub fn parse_cmdline(bytes: &[u8]) -> Vec<String> {
    let mut args: Vec<String> = bytes
        .split(|b| *b == 0)
        .map(|arg| String::from_utf8_lossy(arg).into_owned())
        .collect();
    while args.last().is_some_and(|arg| arg.is_empty()) {
        args.pop();
    }
    args
}

/// `/proc/PID/comm` without its trailing newline (the command name, at most 15 bytes).
pub fn parse_comm(text: &str) -> String {
    text.strip_suffix('\n').unwrap_or(text).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::process::redact_args;
    use proptest::prelude::*;

    const MYSQLD: &[u8] = include_bytes!("../../testdata/proc/linux6.18-cmdline-exec-a-mysqld.bin");
    const PYTHON: &[u8] =
        include_bytes!("../../testdata/proc/linux6.18-cmdline-python-secrets.bin");

    fn strings(args: &[&str]) -> Vec<String> {
        args.iter().map(|a| a.to_string()).collect()
    }

    #[test]
    fn captured_exec_a_title_with_spaces() {
        // Started as `bash -c 'exec -a "mysqld --password=hunter2" sleep 600'`;
        // `ps -o args=` showed "mysqld --password=hunter2 600".
        let args = parse_cmdline(MYSQLD);
        assert_eq!(args, strings(&["mysqld --password=hunter2", "600"]));
        assert_eq!(
            redact_args(&args),
            strings(&["mysqld --password=***", "600"])
        );
    }

    #[test]
    fn captured_python_with_secrets() {
        // Started as `python3 -c 'import time; time.sleep(600)' --token abc123
        // --password=hunter2 -pS3cret postgres://app:pw123@db.example:5432/x
        // -api-key=k1 API_TOKEN=t0k plain`.
        let args = parse_cmdline(PYTHON);
        assert_eq!(args.len(), 11);
        assert_eq!(args[0], "/root/.pyenv/versions/3.11.7/bin/python3");
        assert_eq!(args[2], "import time; time.sleep(600)");
        let shown = redact_args(&args);
        assert_eq!(
            shown[3..],
            strings(&[
                "--token",
                "***",
                "--password=***",
                "-p***",
                "postgres://app:***@db.example:5432/x",
                "-api-key=***",
                "API_TOKEN=***",
                "plain",
            ])[..]
        );
        assert_eq!(shown[..3], args[..3]);
        let all = format!("{shown:?}");
        for secret in ["abc123", "hunter2", "S3cret", "pw123", "k1\"", "t0k"] {
            assert!(!all.contains(secret), "{secret} leaked: {all}");
        }
    }

    #[test]
    fn cmdline_edges() {
        assert!(parse_cmdline(b"").is_empty());
        assert_eq!(parse_cmdline(b"a\0\0b\0"), strings(&["a", "", "b"]));
        assert_eq!(
            parse_cmdline(b"postgres: checkpointer \0\0\0\0"),
            strings(&["postgres: checkpointer "])
        );
        assert_eq!(parse_cmdline(b"no-nul"), strings(&["no-nul"]));
        assert_eq!(
            parse_cmdline(b"bad\xffutf8\0"),
            strings(&["bad\u{fffd}utf8"])
        );
        assert_eq!(parse_comm("a b) c\n"), "a b) c");
        assert_eq!(parse_comm(""), "");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let args = parse_cmdline(&bytes);
            prop_assert!(args.last().is_none_or(|a| !a.is_empty()));
            let _ = redact_args(&args);
        }
    }
}
