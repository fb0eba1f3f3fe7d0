//! A headless Chromium (Debian `chromium`) driven over the DevTools protocol
//! through `--remote-debugging-pipe` (NUL-separated JSON on fds 3 and 4; no
//! websocket, no driver package). One page; its console errors, uncaught
//! exceptions, log errors and HTTP answers are collected as they arrive.
//! Chromium and its children (one process group) are killed on drop.

use crate::TempDir;
use serde_json::{json, Value};
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::FromRawFd;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

/// How long one DevTools call may take (a loaded 2-core machine starts
/// Chromium in a few seconds; a page call answers in milliseconds).
const CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// A headless Chromium with one page.
pub struct Browser {
    child: Child,
    to_chrome: File,
    from_chrome: Receiver<Value>,
    next_id: u64,
    session: String,
    /// Events of the page so far (console, exceptions, log, network).
    events: Vec<Value>,
    _profile: TempDir,
}

/// A pipe whose ends are above fd 9 (so the child's dup2 onto 3 and 4
/// cannot clobber one with the other), close-on-exec.
fn pipe() -> (i32, i32) {
    let mut fds = [0i32; 2];
    // SAFETY: fds is a valid array of two ints.
    assert_eq!(
        unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) },
        0,
        "pipe2"
    );
    let high = |fd: i32| {
        // SAFETY: fd is ours and open.
        let new = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 10) };
        assert!(new >= 10, "fcntl F_DUPFD_CLOEXEC");
        // SAFETY: closing our own descriptor once.
        unsafe { libc::close(fd) };
        new
    };
    (high(fds[0]), high(fds[1]))
}

impl Browser {
    /// Starts `chromium` (or `$MEMLENS_CHROMIUM`) headless with a page of
    /// `width` x `height` CSS pixels. A missing Chromium is a failure.
    pub fn launch(width: u32, height: u32) -> Browser {
        let binary = std::env::var("MEMLENS_CHROMIUM").unwrap_or_else(|_| "chromium".to_string());
        let profile = TempDir::new("chromium-profile");
        let (to_read, to_write) = pipe();
        let (from_read, from_write) = pipe();
        let mut command = Command::new(&binary);
        command
            .args([
                "--headless",
                "--no-sandbox", // Chromium refuses to run as root without it
                "--disable-gpu",
                "--no-first-run",
                "--disable-extensions",
                "--disable-background-networking",
                "--remote-debugging-pipe",
                &format!("--window-size={width},{height}"),
                &format!("--user-data-dir={}", profile.path().display()),
                "about:blank",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0);
        // SAFETY: only async-signal-safe calls (dup2) between fork and exec.
        unsafe {
            command.pre_exec(move || {
                if libc::dup2(to_read, 3) < 0 || libc::dup2(from_write, 4) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {binary} (Debian package chromium): {e}"));
        // SAFETY: the parent's ends are ours; the child's are closed here.
        let (to_chrome, from) = unsafe {
            libc::close(to_read);
            libc::close(from_write);
            (File::from_raw_fd(to_write), File::from_raw_fd(from_read))
        };
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut from = from;
            let mut buf = Vec::new();
            let mut chunk = [0u8; 65536];
            while let Ok(n) = from.read(&mut chunk) {
                if n == 0 {
                    break;
                }
                buf.extend_from_slice(&chunk[..n]);
                while let Some(end) = buf.iter().position(|&b| b == 0) {
                    let message: Vec<u8> = buf.drain(..=end).collect();
                    if let Ok(v) = serde_json::from_slice::<Value>(&message[..end]) {
                        if tx.send(v).is_err() {
                            return;
                        }
                    }
                }
            }
        });
        let mut browser = Browser {
            child,
            to_chrome,
            from_chrome: rx,
            next_id: 0,
            session: String::new(),
            events: Vec::new(),
            _profile: profile,
        };
        let target = browser.send(None, "Target.createTarget", json!({ "url": "about:blank" }));
        let target_id = target["targetId"]
            .as_str()
            .expect("a target id")
            .to_string();
        let attached = browser.send(
            None,
            "Target.attachToTarget",
            json!({ "targetId": target_id, "flatten": true }),
        );
        browser.session = attached["sessionId"]
            .as_str()
            .expect("a session")
            .to_string();
        for domain in [
            "Page.enable",
            "Runtime.enable",
            "Log.enable",
            "Network.enable",
        ] {
            browser.call(domain, json!({}));
        }
        browser.call(
            "Emulation.setDeviceMetricsOverride",
            json!({ "width": width, "height": height, "deviceScaleFactor": 1, "mobile": false }),
        );
        browser
    }

    fn send(&mut self, session: Option<String>, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut message = json!({ "id": id, "method": method, "params": params });
        if let Some(s) = session {
            message["sessionId"] = json!(s);
        }
        let mut bytes = message.to_string().into_bytes();
        bytes.push(0);
        self.to_chrome
            .write_all(&bytes)
            .unwrap_or_else(|e| panic!("{method}: chromium is gone: {e}"));
        let deadline = Instant::now() + CALL_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.from_chrome.recv_timeout(left) {
                Ok(v) if v["id"] == id => {
                    if let Some(err) = v.get("error") {
                        panic!("{method}: {err}");
                    }
                    return v["result"].clone();
                }
                Ok(v) => {
                    if v.get("method").is_some() {
                        self.events.push(v);
                    }
                }
                Err(RecvTimeoutError::Timeout) => panic!("{method}: no answer in {CALL_TIMEOUT:?}"),
                Err(RecvTimeoutError::Disconnected) => panic!("{method}: chromium exited"),
            }
        }
    }

    /// Calls `method` on the page and returns its result.
    pub fn call(&mut self, method: &str, params: Value) -> Value {
        let session = Some(self.session.clone());
        self.send(session, method, params)
    }

    /// Evaluates `expression` in the page (promises awaited) and returns its
    /// value (JSON-serialisable values only).
    pub fn eval(&mut self, expression: &str) -> Value {
        let r = self.call(
            "Runtime.evaluate",
            json!({ "expression": expression, "returnByValue": true, "awaitPromise": true }),
        );
        if let Some(e) = r.get("exceptionDetails") {
            panic!("{expression}: {e}");
        }
        r["result"]["value"].clone()
    }

    /// Loads `url` and waits until `ready` (an expression) is true, or
    /// panics after `timeout` with the page's errors.
    pub fn open(&mut self, url: &str, ready: &str, timeout: Duration) {
        let r = self.call("Page.navigate", json!({ "url": url }));
        if let Some(e) = r.get("errorText") {
            panic!("{url}: {e}");
        }
        self.wait_until(ready, timeout);
    }

    /// Waits until `condition` (an expression) is true, or panics after
    /// `timeout` with the page's errors.
    pub fn wait_until(&mut self, condition: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.eval(&format!("!!({condition})")) != json!(true) {
            if Instant::now() > deadline {
                panic!(
                    "not true in {timeout:?}: {condition}; errors: {:?}",
                    self.errors()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Moves the mouse to (`x`, `y`) CSS pixels of the page's viewport.
    pub fn move_mouse(&mut self, x: f64, y: f64) {
        self.call(
            "Input.dispatchMouseEvent",
            json!({ "type": "mouseMoved", "x": x, "y": y }),
        );
    }

    /// The page's errors so far: uncaught exceptions, console.error, log
    /// entries of level error (failed loads, CSP violations), HTTP answers
    /// of 400 and more.
    pub fn errors(&mut self) -> Vec<String> {
        while let Ok(v) = self.from_chrome.try_recv() {
            if v.get("method").is_some() {
                self.events.push(v);
            }
        }
        let mut out = Vec::new();
        for e in &self.events {
            let p = &e["params"];
            match e["method"].as_str().unwrap_or("") {
                "Runtime.exceptionThrown" => {
                    out.push(format!("exception: {}", p["exceptionDetails"]))
                }
                "Runtime.consoleAPICalled" if p["type"] == "error" => {
                    out.push(format!("console.error: {}", p["args"]))
                }
                "Log.entryAdded" if p["entry"]["level"] == "error" => {
                    out.push(format!("log: {}", p["entry"]["text"]))
                }
                "Network.responseReceived" if p["response"]["status"].as_u64() >= Some(400) => out
                    .push(format!(
                        "HTTP {} {}",
                        p["response"]["status"], p["response"]["url"]
                    )),
                _ => {}
            }
        }
        out
    }

    /// The HTTP answers the page received so far: (status, url).
    pub fn responses(&mut self) -> Vec<(u64, String)> {
        let _ = self.errors();
        self.events
            .iter()
            .filter(|e| e["method"] == "Network.responseReceived")
            .map(|e| {
                let r = &e["params"]["response"];
                (
                    r["status"].as_u64().unwrap_or(0),
                    r["url"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect()
    }

    /// Saves a PNG of the whole page at `path`.
    pub fn screenshot(&mut self, path: &std::path::Path) {
        let r = self.call(
            "Page.captureScreenshot",
            json!({ "format": "png", "captureBeyondViewport": true }),
        );
        let png = base64_decode(r["data"].as_str().expect("screenshot data"));
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).unwrap();
        }
        std::fs::write(path, png).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // The group is Chromium and the helpers it started (renderer, GPU).
        // SAFETY: kill has no memory preconditions; the group is our child's.
        unsafe { libc::kill(-(self.child.id() as i32), libc::SIGKILL) };
        let _ = self.child.wait();
    }
}

fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => panic!("not base64: {c}"),
    };
    let clean: Vec<u8> = text
        .bytes()
        .filter(|&c| c != b'=' && !c.is_ascii_whitespace())
        .collect();
    let mut out = Vec::with_capacity(clean.len() * 3 / 4);
    for chunk in clean.chunks(4) {
        let mut n = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            n |= u32::from(value(c)) << (18 - 6 * i);
        }
        out.extend_from_slice(&n.to_be_bytes()[1..chunk.len()]);
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn base64_of_known_strings() {
        assert_eq!(super::base64_decode("aGVsbG8="), b"hello");
        assert_eq!(super::base64_decode("aGk="), b"hi");
        assert_eq!(super::base64_decode("YWJj"), b"abc");
    }
}
