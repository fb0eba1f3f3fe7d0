//! What a Go-runtime command reads from: a PID (its debug endpoints are found
//! from its listening sockets), a URL, a file, or `-` for stdin.
//!
//! - [`Target::parse`]: the command-line argument.
//! - [`Resource`]: what is wanted (heap profile, goroutine dump, expvar, /metrics).
//! - [`open`]: a byte stream of that resource from the target, within [`FetchLimits`].
//! - [`discover`]: a PID's HTTP endpoints and what each serves.

mod discover;
pub mod http;

pub use discover::{discover, Endpoint};
pub use http::{FetchError, FetchLimits};

use memlens_linux::fs::Root;
use std::io::Read;
use std::path::PathBuf;

/// Where a command reads a Go runtime's data from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A running process, found through its listening TCP sockets.
    Pid(i32),
    /// A URL: a base (`http://host:port`, the standard paths are appended) or a
    /// full URL of the resource (used as is).
    Url(String),
    /// A saved profile, dump, JSON or text file.
    File(PathBuf),
    /// Standard input.
    Stdin,
}

/// Why a target could not be read.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    /// The argument is none of the accepted forms.
    #[error("{0:?} is not a PID, an http:// URL, an existing file or -")]
    Unrecognised(String),
    /// A file could not be opened.
    #[error("{path}: {cause}")]
    File {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        cause: std::io::Error,
    },
    /// The process does not exist or shows no endpoint serving what is needed.
    #[error("process {pid}: {reason}")]
    NoEndpoint {
        /// The process.
        pid: i32,
        /// What was looked at and not found.
        reason: String,
    },
    /// The HTTP request failed.
    #[error(transparent)]
    Fetch(#[from] FetchError),
}

/// What a command wants from a target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    /// `/debug/pprof/heap` (protobuf).
    Heap,
    /// `/debug/pprof/allocs` (protobuf).
    Allocs,
    /// `/debug/pprof/goroutine?debug=N` (0: protobuf, 1: grouped text, 2: full text).
    Goroutine {
        /// The `debug` parameter.
        debug: u8,
    },
    /// `/debug/pprof/goroutineleak?debug=N` (Go 1.26 with the experiment, 1.27 on by default).
    GoroutineLeak {
        /// The `debug` parameter.
        debug: u8,
    },
    /// `/debug/vars` (expvar JSON).
    Vars,
    /// `/metrics` (Prometheus text).
    Metrics,
}

impl Resource {
    /// The path (and query) under an endpoint's base URL.
    pub fn path(self) -> String {
        match self {
            Resource::Heap => "/debug/pprof/heap".to_string(),
            Resource::Allocs => "/debug/pprof/allocs".to_string(),
            Resource::Goroutine { debug } => format!("/debug/pprof/goroutine?debug={debug}"),
            Resource::GoroutineLeak { debug } => {
                format!("/debug/pprof/goroutineleak?debug={debug}")
            }
            Resource::Vars => "/debug/vars".to_string(),
            Resource::Metrics => "/metrics".to_string(),
        }
    }

    /// Whether `endpoint` serves this resource.
    fn served_by(self, endpoint: &Endpoint) -> bool {
        match self {
            Resource::Vars => endpoint.expvar,
            Resource::Metrics => endpoint.metrics,
            _ => endpoint.pprof,
        }
    }
}

impl Target {
    /// Reads a command-line target: `-`, a PID, an `http://` URL or a file path.
    pub fn parse(arg: &str) -> Result<Target, TargetError> {
        if arg == "-" {
            return Ok(Target::Stdin);
        }
        if let Ok(pid) = arg.parse::<i32>() {
            if pid > 0 {
                return Ok(Target::Pid(pid));
            }
        }
        if arg.starts_with("http://") || arg.starts_with("https://") {
            return Ok(Target::Url(arg.to_string()));
        }
        let path = PathBuf::from(arg);
        if path.is_file() {
            return Ok(Target::File(path));
        }
        Err(TargetError::Unrecognised(arg.to_string()))
    }

    /// The URL `resource` is fetched from, for PID and URL targets (`None` for
    /// files and stdin).
    pub fn url_of(
        &self,
        resource: Resource,
        root: &Root,
        limits: &FetchLimits,
    ) -> Result<Option<String>, TargetError> {
        match self {
            Target::File(_) | Target::Stdin => Ok(None),
            Target::Url(url) => {
                let parsed = http::HttpUrl::parse(url)?;
                Ok(Some(if parsed.path == "/" {
                    format!("{}{}", url.trim_end_matches('/'), resource.path())
                } else {
                    url.clone()
                }))
            }
            Target::Pid(pid) => {
                let endpoints = discover(root, *pid, limits)?;
                let endpoint = endpoints
                    .iter()
                    .find(|e| resource.served_by(e))
                    .ok_or_else(|| TargetError::NoEndpoint {
                        pid: *pid,
                        reason: no_endpoint_reason(resource, &endpoints),
                    })?;
                Ok(Some(format!("{}{}", endpoint.base_url, resource.path())))
            }
        }
    }
}

fn no_endpoint_reason(resource: Resource, endpoints: &[Endpoint]) -> String {
    let wanted = resource.path();
    if endpoints.is_empty() {
        format!(
            "it listens on no TCP port that answers HTTP, so {wanted} cannot be fetched; \
             pass --url or a saved file"
        )
    } else {
        let seen: Vec<&str> = endpoints.iter().map(|e| e.base_url.as_str()).collect();
        format!(
            "none of its HTTP ports ({}) serves {wanted}",
            seen.join(", ")
        )
    }
}

/// Opens `resource` of `target` as a byte stream.
pub fn open(
    target: &Target,
    resource: Resource,
    root: &Root,
    limits: &FetchLimits,
) -> Result<Box<dyn Read>, TargetError> {
    match target {
        Target::Stdin => Ok(Box::new(std::io::stdin().lock())),
        Target::File(path) => {
            let file = std::fs::File::open(path).map_err(|source| TargetError::File {
                path: path.clone(),
                cause: source,
            })?;
            Ok(Box::new(file))
        }
        Target::Url(_) | Target::Pid(_) => {
            let url = target
                .url_of(resource, root, limits)?
                .expect("URL and PID targets have a URL");
            Ok(Box::new(http::open(&url, limits)?))
        }
    }
}

/// Reads all of `resource` of `target`, at most `limits.max_body_bytes`.
pub fn read_all(
    target: &Target,
    resource: Resource,
    root: &Root,
    limits: &FetchLimits,
) -> Result<Vec<u8>, TargetError> {
    if let Target::Url(_) | Target::Pid(_) = target {
        let url = target
            .url_of(resource, root, limits)?
            .expect("URL and PID targets have a URL");
        return Ok(http::get(&url, limits)?);
    }
    let mut bytes = Vec::new();
    open(target, resource, root, limits)?
        .take(limits.max_body_bytes + 1)
        .read_to_end(&mut bytes)
        .map_err(|source| TargetError::File {
            path: match target {
                Target::File(path) => path.clone(),
                _ => PathBuf::from("-"),
            },
            cause: source,
        })?;
    if bytes.len() as u64 > limits.max_body_bytes {
        return Err(TargetError::File {
            path: match target {
                Target::File(path) => path.clone(),
                _ => PathBuf::from("-"),
            },
            cause: std::io::Error::other(format!("larger than {} bytes", limits.max_body_bytes)),
        });
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_recognised() {
        assert_eq!(Target::parse("-").unwrap(), Target::Stdin);
        assert_eq!(Target::parse("1234").unwrap(), Target::Pid(1234));
        assert_eq!(
            Target::parse("http://127.0.0.1:6060").unwrap(),
            Target::Url("http://127.0.0.1:6060".into())
        );
        assert_eq!(
            Target::parse("/proc/self/status").unwrap(),
            Target::File("/proc/self/status".into())
        );
        let err = Target::parse("no-such-file.pb.gz").unwrap_err();
        assert!(err.to_string().contains("not a PID"), "{err}");
        assert!(Target::parse("0").is_err());
    }

    #[test]
    fn base_urls_get_the_standard_paths() {
        let root = Root::host();
        let limits = FetchLimits::default();
        let base = Target::Url("http://127.0.0.1:6060/".into());
        assert_eq!(
            base.url_of(Resource::Heap, &root, &limits)
                .unwrap()
                .unwrap(),
            "http://127.0.0.1:6060/debug/pprof/heap"
        );
        let full = Target::Url("http://127.0.0.1:6060/debug/pprof/heap?gc=1".into());
        assert_eq!(
            full.url_of(Resource::Heap, &root, &limits)
                .unwrap()
                .unwrap(),
            "http://127.0.0.1:6060/debug/pprof/heap?gc=1"
        );
        assert_eq!(
            Resource::Goroutine { debug: 2 }.path(),
            "/debug/pprof/goroutine?debug=2"
        );
    }
}
