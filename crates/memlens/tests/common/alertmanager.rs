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
