//! The module info text of a Go binary (the part of `go version -m` after the
//! version line), parsed as Go's `runtime/debug.ParseBuildInfo` does.
//!
//! ```text
//! path  memlens.dev/hello
//! mod  memlens.dev/hello  (devel)
//! dep  memlens.dev/greet  v0.0.0
//! =>  ./greet  (devel)
//! build  -ldflags="-s -w"
//! build  GOARCH=amd64
//! ```
//!
//! Fields are separated by tabs (shown as spaces above). `mod` and `dep` lines
//! have a path, a version and an optional checksum; a `=>` line replaces the
//! module of the line before it.
//! `build` keys and values that contain spaces, tabs, newlines, quotes or (for
//! keys) `=` are written as Go string literals and unquoted here.

/// A module: the main module (`mod` line) or a dependency (`dep` line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Module {
    /// The module path, e.g. `github.com/prometheus/common`.
    pub path: String,
    /// The version, e.g. `v0.42.0`, or `(devel)` for a main module built from a
    /// working tree.
    pub version: String,
    /// The `go.sum` checksum (`h1:...`), when the line has a non-empty one.
    pub sum: Option<String>,
    /// The module that replaced this one (the `=>` line after it).
    pub replace: Option<Box<Module>>,
}

/// The parsed module info text.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModInfo {
    /// The import path of the main package (`path` line).
    pub path: Option<String>,
    /// The main module (`mod` line).
    pub main: Option<Module>,
    /// The dependencies (`dep` lines), in order.
    pub deps: Vec<Module>,
    /// The build settings (`build` lines), unquoted, in order.
    pub settings: Vec<(String, String)>,
    /// 1-based numbers of the lines Go's parser would reject (wrong column count,
    /// a `=>` with nothing to replace, a bad quoted key or value). They are
    /// skipped; every other line is still read.
    pub malformed_lines: Vec<usize>,
}

/// Parses module info text. Never fails: lines Go would reject are listed in
/// [`ModInfo::malformed_lines`], lines with unknown prefixes (and empty lines)
/// are ignored, as Go ignores them. Unlike Go, a last line without a trailing
/// newline is read too.
pub fn parse_modinfo(text: &str) -> ModInfo {
    let mut info = ModInfo::default();
    // Where a `=>` line puts its replacement: the main module, or a dependency.
    enum Last {
        None,
        Main,
        Dep(usize),
    }
    let mut last = Last::None;
    // Split on '\n' only, as Go does: a '\r' stays part of its line.
    for (index, line) in text.split('\n').enumerate() {
        let ok = if let Some(rest) = line.strip_prefix("path\t") {
            info.path = Some(rest.to_string()).filter(|p| !p.is_empty());
            true
        } else if let Some(rest) = line.strip_prefix("mod\t") {
            info.main = module_line(rest);
            last = Last::Main;
            info.main.is_some()
        } else if let Some(rest) = line.strip_prefix("dep\t") {
            match module_line(rest) {
                Some(m) => {
                    info.deps.push(m);
                    last = Last::Dep(info.deps.len() - 1);
                    true
                }
                None => {
                    last = Last::None;
                    false
                }
            }
        } else if let Some(rest) = line.strip_prefix("=>\t") {
            let target = match last {
                Last::None => None,
                Last::Main => info.main.as_mut(),
                Last::Dep(i) => info.deps.get_mut(i),
            };
            last = Last::None;
            let cols: Vec<&str> = rest.split('\t').collect();
            match (target, cols.as_slice()) {
                (Some(target), [path, version, sum]) => {
                    target.replace = Some(Box::new(module(path, version, sum)));
                    true
                }
                _ => false,
            }
        } else if let Some(rest) = line.strip_prefix("build\t") {
            match build_setting(rest) {
                Some(kv) => {
                    info.settings.push(kv);
                    true
                }
                None => false,
            }
        } else {
            true
        };
        if !ok {
            info.malformed_lines.push(index + 1);
        }
    }
    info
}

/// `PATH\tVERSION[\tSUM]` (Go accepts 2 or 3 columns).
fn module_line(rest: &str) -> Option<Module> {
    match rest.split('\t').collect::<Vec<_>>().as_slice() {
        [path, version] => Some(module(path, version, "")),
        [path, version, sum] => Some(module(path, version, sum)),
        _ => None,
    }
}

fn module(path: &str, version: &str, sum: &str) -> Module {
    Module {
        path: path.to_string(),
        version: version.to_string(),
        sum: Some(sum.to_string()).filter(|s| !s.is_empty()),
        replace: None,
    }
}

/// `KEY=VALUE` where either side may be a Go string literal.
fn build_setting(kv: &str) -> Option<(String, String)> {
    let (key, raw_value) = match kv.as_bytes().first()? {
        b'=' => return None,
        b'"' | b'`' => {
            let raw_key = quoted_prefix(kv)?;
            let after = kv[raw_key.len()..].strip_prefix('=')?;
            (unquote(raw_key)?, after)
        }
        _ => {
            let (key, value) = kv.split_once('=')?;
            if key.is_empty() || key.contains(['=', ' ', '\t', '\r', '\n', '"', '`']) {
                return None;
            }
            (key.to_string(), value)
        }
    };
    let value = match raw_value.as_bytes().first() {
        None => String::new(),
        Some(b'"' | b'`') => unquote(raw_value)?,
        Some(_) if raw_value.contains([' ', '\t', '\r', '\n', '"', '`']) => return None,
        Some(_) => raw_value.to_string(),
    };
    Some((key, value))
}

/// The Go string literal at the start of `s` (as `strconv.QuotedPrefix`).
fn quoted_prefix(s: &str) -> Option<&str> {
    let b = s.as_bytes();
    let quote = *b.first()?;
    let mut i = 1;
    while i < b.len() {
        match b[i] {
            c if c == quote => return Some(&s[..=i]),
            b'\\' if quote == b'"' => i += 2,
            b'\n' if quote == b'"' => return None,
            _ => i += 1,
        }
    }
    None
}

/// Unquotes a whole Go string literal, `"..."` or `` `...` `` (as
/// `strconv.Unquote`; single-quoted runes are not build setting values).
fn unquote(s: &str) -> Option<String> {
    if let Some(raw) = s.strip_prefix('`') {
        let raw = raw.strip_suffix('`')?;
        return (!raw.contains('`')).then(|| raw.replace('\r', ""));
    }
    let body = s.strip_prefix('"')?.strip_suffix('"')?.as_bytes();
    let mut out: Vec<u8> = Vec::with_capacity(body.len());
    let mut i = 0;
    while i < body.len() {
        let c = body[i];
        i += 1;
        match c {
            b'"' | b'\n' => return None,
            b'\\' => {
                let e = *body.get(i)?;
                i += 1;
                let simple = match e {
                    b'a' => Some(0x07),
                    b'b' => Some(0x08),
                    b'f' => Some(0x0c),
                    b'n' => Some(b'\n'),
                    b'r' => Some(b'\r'),
                    b't' => Some(b'\t'),
                    b'v' => Some(0x0b),
                    b'\\' | b'"' => Some(e),
                    _ => None,
                };
                if let Some(byte) = simple {
                    out.push(byte);
                    continue;
                }
                match e {
                    b'x' => {
                        out.push(u8::try_from(hex(body.get(i..i + 2)?)?).ok()?);
                        i += 2;
                    }
                    b'0'..=b'7' => {
                        let digits = body.get(i - 1..i + 2)?;
                        let mut v: u32 = 0;
                        for &d in digits {
                            (b'0'..=b'7').contains(&d).then_some(())?;
                            v = v * 8 + u32::from(d - b'0');
                        }
                        out.push(u8::try_from(v).ok()?);
                        i += 2;
                    }
                    b'u' | b'U' => {
                        let n = if e == b'u' { 4 } else { 8 };
                        let ch = char::from_u32(hex(body.get(i..i + n)?)?)?;
                        out.extend_from_slice(ch.encode_utf8(&mut [0; 4]).as_bytes());
                        i += n;
                    }
                    _ => return None,
                }
            }
            _ => out.push(c),
        }
    }
    Some(String::from_utf8_lossy(&out).into_owned())
}

/// The value of 1 to 8 hex digits (and nothing else: no sign, no spaces).
fn hex(digits: &[u8]) -> Option<u32> {
    digits.iter().try_fold(0u32, |acc, &d| {
        let v = char::from(d).to_digit(16)?;
        Some((acc << 4) | v)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What Go 1.27 embeds in testdata/hello built with `-ldflags="-s -w"`
    /// (shortened DefaultGODEBUG), between the sentinels.
    const HELLO: &str = "path\tmemlens.dev/hello\n\
        mod\tmemlens.dev/hello\t(devel)\t\n\
        dep\tmemlens.dev/greet\tv0.0.0\n\
        =>\t./greet\t(devel)\t\n\
        \n\
        build\t-buildmode=exe\n\
        build\t-ldflags=\"-s -w\"\n\
        build\tDefaultGODEBUG=panicnil=1,tlssha1=1\n\
        build\tCGO_CFLAGS=\n\
        build\tGOARCH=amd64\n";

    #[test]
    fn parses_the_lines_go_version_m_prints() {
        let info = parse_modinfo(HELLO);
        assert_eq!(info.path.as_deref(), Some("memlens.dev/hello"));
        let main = info.main.unwrap();
        assert_eq!(
            (main.path.as_str(), main.version.as_str()),
            ("memlens.dev/hello", "(devel)")
        );
        assert_eq!(main.sum, None);
        assert_eq!(info.deps.len(), 1);
        let dep = &info.deps[0];
        assert_eq!(
            (dep.path.as_str(), dep.version.as_str()),
            ("memlens.dev/greet", "v0.0.0")
        );
        let replace = dep.replace.as_deref().unwrap();
        assert_eq!(
            (replace.path.as_str(), replace.version.as_str()),
            ("./greet", "(devel)")
        );
        let settings: Vec<(&str, &str)> = info
            .settings
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            settings,
            [
                ("-buildmode", "exe"),
                ("-ldflags", "-s -w"),
                ("DefaultGODEBUG", "panicnil=1,tlssha1=1"),
                ("CGO_CFLAGS", ""),
                ("GOARCH", "amd64"),
            ]
        );
        assert!(info.malformed_lines.is_empty());
    }

    #[test]
    fn dependency_sums_and_main_module_replacements() {
        let text = "path\tex.com/cmd/x\nmod\tex.com\tv1.2.3\th1:abc=\n=>\t../ex\t\t\n\
                    dep\tgolang.org/x/sys\tv0.5.0\th1:sum=\n";
        let info = parse_modinfo(text);
        let main = info.main.unwrap();
        assert_eq!(main.sum.as_deref(), Some("h1:abc="));
        assert_eq!(main.replace.unwrap().path, "../ex");
        assert_eq!(info.deps[0].sum.as_deref(), Some("h1:sum="));
        assert!(info.deps[0].replace.is_none());
    }

    #[test]
    fn lines_go_rejects_are_listed_and_skipped() {
        let text = "=>\t./orphan\t(devel)\t\n\
                    dep\tonly-one-column\n\
                    dep\tex.com/a\tv1\n\
                    =>\ttwo\tcolumns\n\
                    build\t=x\n\
                    build\tnoequals\n\
                    build\tkey with space=1\n\
                    build\tK=unquoted value\n\
                    build\tK=\"bad \\q escape\"\n\
                    build\t\"quoted key\"x\n\
                    build\tGOOS=linux\n\
                    unknown\tline\n";
        let info = parse_modinfo(text);
        assert_eq!(info.malformed_lines, [1, 2, 4, 5, 6, 7, 8, 9, 10]);
        assert_eq!(info.deps.len(), 1);
        assert!(info.deps[0].replace.is_none());
        assert_eq!(info.settings, [("GOOS".to_string(), "linux".to_string())]);
    }

    #[test]
    fn unquotes_go_string_literals() {
        // Expected values written from the Go spec's escape table.
        assert_eq!(unquote(r#""-s -w""#).as_deref(), Some("-s -w"));
        assert_eq!(
            unquote(r#""a\tb\n\"c\"\\""#).as_deref(),
            Some("a\tb\n\"c\"\\")
        );
        assert_eq!(
            unquote(r#""\x41\101\u00e9\U0001F600""#).as_deref(),
            Some("AAé😀")
        );
        assert_eq!(unquote("`raw \\n \"x\"`").as_deref(), Some("raw \\n \"x\""));
        for bad in [
            r#""open"#,
            r#""a"b""#,
            r#""\x+1""#,
            r#""\q""#,
            r#""\400""#,
            r#""\ud800""#,
            "`a`b`",
            r#""\'""#,
        ] {
            assert_eq!(unquote(bad), None, "{bad}");
        }
        let (k, v) = build_setting(r#""key=with=equals"="v a""#).unwrap();
        assert_eq!((k.as_str(), v.as_str()), ("key=with=equals", "v a"));
        assert_eq!(quoted_prefix(r#""a\"b"=c"#), Some(r#""a\"b""#));
    }
}
