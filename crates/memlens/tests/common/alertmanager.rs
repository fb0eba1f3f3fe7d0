//! A real Alertmanager (Debian's prometheus-alertmanager) on loopback,
//! running `memlens alertmanager-config`, for the tests that send it alerts.
#![allow(dead_code)]

use memlens_testkit::{free_loopback_port, http_get, ChildGuard, TempDir};
use serde_json::Value;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A running Alertmanager; killed when dropped.
pub struct Alertmanager {
    /// `127.0.0.1:PORT`.
    pub addr: String,
    _child: ChildGuard,
}

impl Alertmanager {
    /// Starts one on the generated config (in `dir`) and waits until it is
    /// ready (deadline 30 s).
    pub fn start(dir: &TempDir) -> Alertmanager {
        let file = dir.join("alertmanager.yml");
        super::cli::memlens(&["alertmanager-config", "-o", file.to_str().unwrap()]);
        let addr = format!("127.0.0.1:{}", free_loopback_port());
        let child = ChildGuard(
            Command::new("/usr/bin/prometheus-alertmanager")
                .arg(format!("--config.file={}", file.display()))
                .arg(format!("--storage.path={}", dir.join("am").display()))
                .arg(format!("--web.listen-address={addr}"))
                .arg("--cluster.listen-address=")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start prometheus-alertmanager (Debian package prometheus-alertmanager)"),
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        while http_get(&addr, "/-/ready").is_err() {
            assert!(Instant::now() < deadline, "Alertmanager never got ready");
            std::thread::sleep(Duration::from_millis(100));
        }
        Alertmanager {
            addr,
            _child: child,
        }
    }

    /// The alerts it holds now (`GET /api/v2/alerts`: active, silenced and
    /// inhibited; not the resolved); empty when it does not answer.
    pub fn alerts(&self) -> Vec<Value> {
        let body = http_get(&self.addr, "/api/v2/alerts").unwrap_or_default();
        serde_json::from_str(&body).unwrap_or_default()
    }
}

/// A webhook receiver on `listener`: answers 200 to each POST and keeps its
/// JSON body, as `keep` makes it into an entry (e.g. with the time it came).
pub fn receive_webhooks<T: Send + 'static>(
    listener: std::net::TcpListener,
    keep: fn(Value) -> T,
) -> std::sync::Arc<std::sync::Mutex<Vec<T>>> {
    use std::io::{BufRead, BufReader, Read, Write};
    let received = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let kept = received.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream);
            let mut length = 0usize;
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 0) && line != "\r\n" {
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
                line.clear();
            }
            let mut body = vec![0u8; length];
            if reader.read_exact(&mut body).is_err() {
                continue;
            }
            let json = serde_json::from_slice(&body).unwrap_or(Value::Null);
            kept.lock().unwrap().push(keep(json));
            let _ = reader
                .get_mut()
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        }
    });
    received
}
