//! Hiding the secrets command lines carry (`--password=...`, tokens, URL credentials).

/// What a hidden secret is replaced with.
const MASK: &str = "***";

/// Returns the arguments with secrets replaced by `***`. It errs on the side of
/// hiding: a harmless value may be hidden, a secret should not be shown.
///
/// A *secret name* is one that, lower-cased with `-`, `_` and `.` removed,
/// contains `password`, `passwd`, `passphrase`, `secret`, `token`, `apikey` or
/// `credential`, or whose last part (split at `-`, `_`, `.`) is `pass`, `pwd`,
/// `auth`, `key`, `creds` or `authorization` (`--db-password`, `--client-secret`,
/// `--api-key`, `--apikey`, `--auth`, `-Ddb.password`, `MYSQL_PWD`).
///
/// - `--NAME=value` and `-NAME=value` (Go's flag package takes one dash) with a
///   secret name become `--NAME=***`.
/// - `--NAME value` / `-NAME value` with a secret name hide the next argument,
///   unless it starts with `--` (then it is taken for the next flag).
/// - `NAME=value` (environment style, e.g. `API_TOKEN=x` before a command) with a
///   secret name becomes `NAME=***`.
/// - `-pVALUE` (MySQL's password, also `sshpass`, `7z`) becomes `-p***`. A lone
///   `-p` is MySQL's "ask for the password": it and the argument after it (a
///   database name) are kept. Single-dash long flags that merely start with `p`
///   are kept when they are well known (`-port=8080`, `-pprof`, `-pid`,
///   `-pthread`, `-print`, `-prune`, `-path`, ...); `-password`, `-passwd`,
///   `-pass` and `-pwd` are flags whose value follows.
/// - Anywhere in an argument, URL credentials `scheme://user:pass@host` become
///   `scheme://user:***@host`, and Go MySQL DSNs `user:pass@tcp(host)` (also
///   `@tcp4(`, `@tcp6(`, `@unix(`) become `user:***@tcp(host)`. A user name
///   alone (`https://user@host`) is kept.
/// - An argument with spaces (a rewritten title) is redacted word by word with
///   the same rules, spacing kept.
pub fn redact_args(args: &[String]) -> Vec<String> {
    redact_words(args.iter().map(String::as_str))
}

fn redact_words<'a>(words: impl Iterator<Item = &'a str>) -> Vec<String> {
    let mut out = Vec::new();
    let mut hide_next = false;
    for word in words {
        if hide_next && !word.is_empty() {
            hide_next = false;
            if !word.starts_with("--") {
                out.push(MASK.to_string());
                continue;
            }
        }
        if word.contains(' ') {
            out.push(redact_words(word.split(' ')).join(" "));
            continue;
        }
        let (redacted, takes_value) = redact_word(word);
        hide_next |= takes_value;
        out.push(redacted);
    }
    out
}

/// Redacts one word; the flag is true when the word is a secret flag whose value
/// is the next word.
fn redact_word(word: &str) -> (String, bool) {
    let body = word.trim_start_matches('-');
    let dashes = &word[..word.len() - body.len()];
    let (name, value) = match body.split_once('=') {
        Some((name, value)) => (name, Some(value)),
        None => (body, None),
    };
    if dashes.len() == 1 && name.starts_with('p') && name.len() > 1 {
        if value.is_none() && ["password", "passwd", "pass", "pwd"].contains(&name) {
            return (word.to_string(), true);
        }
        let long_flag = is_known_p_flag(name) || (value.is_some() && is_secret_name(name));
        if !long_flag {
            return (format!("-p{MASK}"), false);
        }
    }
    let flag_or_env = !dashes.is_empty() || is_env_name(name);
    match value {
        Some(value) if flag_or_env && is_secret_name(name) => {
            let shown = if value.is_empty() { "" } else { MASK };
            (format!("{dashes}{name}={shown}"), false)
        }
        None if !dashes.is_empty() && is_secret_name(name) => (word.to_string(), true),
        _ => (redact_credentials(word), false),
    }
}

/// The secret-name rule documented on [`redact_args`].
fn is_secret_name(name: &str) -> bool {
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    {
        return false;
    }
    let lower = name.to_ascii_lowercase();
    let joined: String = lower
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect();
    let last = lower.rsplit(['-', '_', '.']).next().unwrap_or("");
    [
        "password",
        "passwd",
        "passphrase",
        "secret",
        "token",
        "apikey",
        "credential",
    ]
    .iter()
    .any(|strong| joined.contains(strong))
        || ["pass", "pwd", "auth", "key", "creds", "authorization"].contains(&last)
}

/// `NAME` of an environment-style `NAME=value` argument: a letter or `_`, then
/// letters, digits, `_`, `-` or `.`.
fn is_env_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b))
}

/// Well-known single-dash flags starting with `p` that are not `-pPASSWORD`.
fn is_known_p_flag(name: &str) -> bool {
    const KNOWN: [&str; 21] = [
        "port", "pid", "pidfile", "pprof", "profile", "path", "pthread", "pedantic", "pipe",
        "print", "print0", "printf", "prune", "perm", "parallel", "procs", "prefix", "pkg",
        "plugin", "protocol", "proxy",
    ];
    KNOWN.iter().any(|known| {
        name.strip_prefix(known)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with(['-', '_', '.']))
    })
}

/// Hides the password of `scheme://user:pass@host` URLs and `user:pass@tcp(...)`
/// Go MySQL DSNs anywhere in `word`.
fn redact_credentials(word: &str) -> String {
    let mut out = word.to_string();
    // URLs: the userinfo is the authority up to its last '@'.
    let mut from = 0;
    while let Some(found) = out[from..].find("://") {
        let start = from + found + 3;
        let end = out[start..]
            .find(['/', '?', '#'])
            .map_or(out.len(), |i| start + i);
        from = end;
        if let Some(at) = out[start..end].rfind('@') {
            if let Some(colon) = out[start..start + at].find(':') {
                let (pass_start, pass_end) = (start + colon + 1, start + at);
                if pass_start < pass_end {
                    out.replace_range(pass_start..pass_end, MASK);
                    from = pass_start + MASK.len();
                }
            }
        }
    }
    // Go MySQL DSNs: the userinfo runs from the start of the value to the '@'
    // before the network name.
    for net in ["@tcp(", "@tcp4(", "@tcp6(", "@unix("] {
        let Some(at) = out.rfind(net) else { continue };
        let head = &out[..at];
        let mut value_start = 0;
        if let Some((before, _)) = head.split_once(':') {
            if let Some(eq) = before.find('=') {
                value_start = eq + 1;
            }
        }
        if let Some(colon) = head[value_start..].find(':') {
            let pass_start = value_start + colon + 1;
            if pass_start < at && &out[pass_start..at] != MASK {
                out.replace_range(pass_start..at, MASK);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn strings(args: &[&str]) -> Vec<String> {
        args.iter().map(|a| a.to_string()).collect()
    }

    fn redact(args: &[&str]) -> Vec<String> {
        redact_args(&strings(args))
    }

    #[test]
    fn flag_forms() {
        assert_eq!(
            redact(&["--PASSWORD=x", "--Token", "y", "-secret", "z"]),
            strings(&["--PASSWORD=***", "--Token", "***", "-secret", "***"])
        );
        assert_eq!(
            redact(&[
                "--client-secret=a",
                "--client_secret",
                "b",
                "--apikey=c",
                "--api-key",
                "d"
            ]),
            strings(&[
                "--client-secret=***",
                "--client_secret",
                "***",
                "--apikey=***",
                "--api-key",
                "***"
            ])
        );
        assert_eq!(
            redact(&[
                "--passwd=a",
                "--pass=b",
                "--auth=c",
                "--key=d",
                "--credentials=e",
                "--credential",
                "f"
            ]),
            strings(&[
                "--passwd=***",
                "--pass=***",
                "--auth=***",
                "--key=***",
                "--credentials=***",
                "--credential",
                "***"
            ])
        );
        assert_eq!(
            redact(&["--db-password", "--verbose"]),
            strings(&["--db-password", "--verbose"])
        );
        assert_eq!(
            redact(&["--password", "-dash-secret"]),
            strings(&["--password", "***"])
        );
        assert_eq!(redact(&["--password="]), strings(&["--password="]));
        assert_eq!(
            redact(&["-Ddb.password=x", "MYSQL_PWD=y", "PASSWORD=z"]),
            strings(&["-Ddb.password=***", "MYSQL_PWD=***", "PASSWORD=***"])
        );
        // Not secrets.
        let kept = [
            "--keyboard=us",
            "--monkey",
            "x",
            "--max-auth-tries=3",
            "HOME=/root",
            "GOGC=50",
            "--user=app",
        ];
        assert_eq!(redact(&kept), strings(&kept));
    }

    #[test]
    fn mysql_dash_p() {
        assert_eq!(
            redact(&["mysql", "-uroot", "-phunter2", "db"]),
            strings(&["mysql", "-uroot", "-p***", "db"])
        );
        // A lone -p prompts; the next argument is the database.
        assert_eq!(
            redact(&["mysql", "-p", "db"]),
            strings(&["mysql", "-p", "db"])
        );
        assert_eq!(
            redact(&["-pa=b", "-ppassword"]),
            strings(&["-p***", "-p***"])
        );
        let kept = [
            "-port=8080",
            "-pprof-addr=:6060",
            "-pid",
            "-pthread",
            "-print0",
            "-path",
            "/x",
        ];
        assert_eq!(redact(&kept), strings(&kept));
        assert_eq!(
            redact(&["-password", "x", "-pass=y", "-pwd", "z"]),
            strings(&["-password", "***", "-pass=***", "-pwd", "***"])
        );
    }

    #[test]
    fn credentials_in_urls_and_dsns() {
        assert_eq!(
            redact(&[
                "--db=mysql://root:p@ss@h:3306/x?a=b",
                "x=https://u:v@a/b;ftp://w:z@c"
            ]),
            strings(&[
                "--db=mysql://root:***@h:3306/x?a=b",
                "x=https://u:***@a/b;ftp://w:***@c"
            ])
        );
        assert_eq!(
            redact(&["https://user@host/x", "redis://:pw@h"]),
            strings(&["https://user@host/x", "redis://:***@h"])
        );
        assert_eq!(
            redact(&[
                "-dsn=root:ab=c@d@tcp(127.0.0.1:3306)/db",
                "app:pw@unix(/run/mysqld.sock)/db"
            ]),
            strings(&[
                "-dsn=root:***@tcp(127.0.0.1:3306)/db",
                "app:***@unix(/run/mysqld.sock)/db"
            ])
        );
    }

    #[test]
    fn rewritten_titles_are_redacted_word_by_word() {
        assert_eq!(
            redact(&["worker --token  abc -pXYZ keep"]),
            strings(&["worker --token  *** -p*** keep"])
        );
        assert_eq!(redact(&["a --password"]), strings(&["a --password"]));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn arbitrary_args_never_panic(args in proptest::collection::vec("\\PC{0,30}", 0..8)) {
            let _ = redact_args(&args);
        }

        #[test]
        fn flag_like_args_never_panic_and_keep_count(
            args in proptest::collection::vec("(-{0,2}[a-zA-Z_.]{0,10}(=[a-z:/@()]{0,12})?| )*", 0..8)
        ) {
            prop_assert_eq!(redact_args(&args).len(), args.len());
        }

        #[test]
        fn secret_values_never_survive(value in "[A-Za-z0-9]{6,12}") {
            let marked = format!("Zq{value}");
            let args = vec![
                format!("--password={marked}"), "--token".to_string(), marked.clone(),
                format!("-p{marked}"), format!("https://u:{marked}@h/"), format!("SECRET={marked}"),
            ];
            let shown = redact_args(&args).join(" ");
            prop_assert!(!shown.contains(&marked), "{}", shown);
        }
    }
}
