//! A notifier: a bounded queue of request bodies and one thread POSTing
//! them in order to one URL. The agent's cycle only enqueues (never waits
//! on the network).
//!
//! - a 2xx sends the body (`sent`);
//! - a network error, a timeout (a receiver that accepts and never answers
//!   costs `timeout` per attempt), a 5xx or a 429 is retried with
//!   exponential back-off from `min_backoff` up to `max_backoff`, the body
//!   kept at the head of the queue (`retries`);
//! - another 4xx will never be taken: the body is dropped (`rejected`);
//! - a full queue drops its oldest waiting body for the new one
//!   (`dropped`): nothing is lost while no more than `capacity` bodies wait
//!   behind the one being sent.

use super::http::{post, HttpUrl};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How a notifier sends.
#[derive(Debug, Clone, PartialEq)]
pub struct NotifierConfig {
    /// Its name on `/metrics` (`alertmanager`, `webhook`).
    pub name: String,
    /// Where to POST.
    pub url: HttpUrl,
    /// Connect timeout, and each read or write.
    pub timeout: Duration,
    /// The first wait after a failure.
    pub min_backoff: Duration,
    /// The longest wait between two attempts.
    pub max_backoff: Duration,
    /// The most bodies waiting behind the one being sent.
    pub capacity: usize,
}

/// What a notifier did since it started.
#[derive(Debug, Default)]
pub struct Counters {
    /// Bodies queued since the start: each is sent, rejected, dropped or
    /// still queued.
    pub enqueued: AtomicU64,
    /// Bodies the receiver took (2xx).
    pub sent: AtomicU64,
    /// Failed attempts that were retried.
    pub retries: AtomicU64,
    /// Bodies dropped from a full queue.
    pub dropped: AtomicU64,
    /// Bodies refused with a 4xx (not 429).
    pub rejected: AtomicU64,
    /// Bodies waiting or being sent now.
    pub queued: AtomicU64,
}

struct Queue {
    bodies: VecDeque<Vec<u8>>,
    stop: bool,
}

/// A running notifier.
pub struct Notifier {
    shared: Arc<(Mutex<Queue>, Condvar)>,
    counters: Arc<Counters>,
    handle: Option<JoinHandle<()>>,
    capacity: usize,
}

impl Notifier {
    /// Starts its thread.
    pub fn start(config: NotifierConfig) -> std::io::Result<Notifier> {
        let shared = Arc::new((
            Mutex::new(Queue {
                bodies: VecDeque::new(),
                stop: false,
            }),
            Condvar::new(),
        ));
        let counters = Arc::new(Counters::default());
        let capacity = config.capacity.max(1);
        let (s, c) = (shared.clone(), counters.clone());
        let handle = std::thread::Builder::new()
            .name(format!("memlens-notify-{}", config.name))
            .spawn(move || run(config, &s, &c))?;
        Ok(Notifier {
            shared,
            counters,
            handle: Some(handle),
            capacity,
        })
    }

    /// Queues `body`; a full queue drops its oldest waiting body (not the
    /// one being sent).
    pub fn send(&self, body: Vec<u8>) {
        let (lock, wake) = &*self.shared;
        let mut queue = lock.lock().unwrap_or_else(|e| e.into_inner());
        self.counters.enqueued.fetch_add(1, Ordering::Relaxed);
        // The head is the body being sent (or retried): never dropped.
        if queue.bodies.len() > self.capacity {
            queue.bodies.remove(1);
            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
        } else {
            self.counters.queued.fetch_add(1, Ordering::Relaxed);
        }
        queue.bodies.push_back(body);
        wake.notify_all();
    }

    /// Its counters.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }
}

impl Drop for Notifier {
    /// Stops the thread: an attempt under way ends within its timeout;
    /// what still waits is not sent.
    fn drop(&mut self) {
        let (lock, wake) = &*self.shared;
        lock.lock().unwrap_or_else(|e| e.into_inner()).stop = true;
        wake.notify_all();
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
    }
}

fn run(config: NotifierConfig, shared: &(Mutex<Queue>, Condvar), counters: &Counters) {
    let (lock, wake) = shared;
    let mut backoff = config.min_backoff;
    loop {
        // The head of the queue, left there until it is sent.
        let body = {
            let mut queue = lock.lock().unwrap_or_else(|e| e.into_inner());
            while queue.bodies.is_empty() && !queue.stop {
                queue = wake.wait(queue).unwrap_or_else(|e| e.into_inner());
            }
            if queue.stop {
                return;
            }
            queue.bodies[0].clone()
        };
        let headers = [("Content-Type", "application/json")];
        let outcome = post(&config.url, &headers, &body, config.timeout, config.timeout);
        let done = match outcome {
            Ok(r) if (200..300).contains(&r.status) => {
                counters.sent.fetch_add(1, Ordering::Relaxed);
                true
            }
            Ok(r) if r.status != 429 && (400..500).contains(&r.status) => {
                counters.rejected.fetch_add(1, Ordering::Relaxed);
                eprintln!(
                    "memlens: {} refused an alert notification ({}): {}",
                    config.name, r.status, r.body_excerpt
                );
                true
            }
            _ => false,
        };
        let mut queue = lock.lock().unwrap_or_else(|e| e.into_inner());
        if done {
            // The head may have been dropped for a newer body meanwhile.
            queue.bodies.pop_front();
            counters.queued.fetch_sub(1, Ordering::Relaxed);
            backoff = config.min_backoff;
            continue;
        }
        counters.retries.fetch_add(1, Ordering::Relaxed);
        let until = Instant::now() + backoff;
        while !queue.stop && Instant::now() < until {
            let left = until.saturating_duration_since(Instant::now());
            queue = wake
                .wait_timeout(queue, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        backoff = (backoff * 2).min(config.max_backoff);
    }
}
