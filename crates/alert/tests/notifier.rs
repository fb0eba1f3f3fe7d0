//! The notifier against real sockets on loopback: a receiver that is down
//! and comes back gets, in order, the notification that was being retried
//! and the newest `capacity` ones (the older waiting ones dropped and
//! counted); a 503 is retried until taken, a 400 is rejected and not
//! retried. Every wait is for a condition with a deadline: the back-off is
//! 50 ms to 200 ms, so a retry comes within a fraction of a second however
//! loaded the host; the deadlines are 30 s.

use memlens_alert::live::http::HttpUrl;
use memlens_alert::live::notify::{Counters, Notifier, NotifierConfig};
use memlens_testkit::RefusingLoopbackPort;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::time::{Duration, Instant};

fn notifier(port: u16, capacity: usize) -> Notifier {
    Notifier::start(NotifierConfig {
        name: "test".into(),
        url: HttpUrl::parse(&format!("http://127.0.0.1:{port}/hook")).unwrap(),
        timeout: Duration::from_secs(2),
        min_backoff: Duration::from_millis(50),
        max_backoff: Duration::from_millis(200),
        capacity,
    })
    .unwrap()
}

/// Serves `listener`, answering each POST with the next of `statuses`
/// (then 200) and handing its body over.
fn serve(listener: TcpListener, statuses: Vec<u16>) -> mpsc::Receiver<(u16, String)> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut statuses = statuses.into_iter();
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream);
            let (mut line, mut length) = (String::new(), 0usize);
            while reader.read_line(&mut line).is_ok_and(|n| n > 0) && line != "\r\n" {
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
                line.clear();
            }
            let mut body = vec![0u8; length];
            reader.read_exact(&mut body).unwrap();
            let status = statuses.next().unwrap_or(200);
            let answer =
                format!("HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            let _ = reader.get_mut().write_all(answer.as_bytes());
            if tx.send((status, String::from_utf8(body).unwrap())).is_err() {
                return;
            }
        }
    });
    rx
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn get(counter: &std::sync::atomic::AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}

fn totals(c: &Counters) -> [u64; 6] {
    [
        get(&c.enqueued),
        get(&c.sent),
        get(&c.dropped),
        get(&c.rejected),
        get(&c.queued),
        get(&c.retries).min(1),
    ]
}

#[test]
fn a_receiver_back_from_an_outage_gets_the_retried_and_the_newest_in_order() {
    // Down until the test listens on it; nobody else can take it meanwhile.
    let down = RefusingLoopbackPort::bind();
    let n = notifier(down.port(), 3);
    n.send(b"0".to_vec());
    wait_for("a first failed attempt", || get(&n.counters().retries) >= 1);
    for body in ["1", "2", "3", "4", "5"] {
        n.send(body.as_bytes().to_vec());
    }
    // 0 is being retried; 3 wait; 1 and 2 were dropped for 4 and 5.
    assert_eq!(totals(n.counters()), [6, 0, 2, 0, 4, 1]);
    let listener = down.listen();
    let received = serve(listener, Vec::new());
    let bodies: Vec<String> = (0..4)
        .map(|_| received.recv_timeout(Duration::from_secs(30)).unwrap().1)
        .collect();
    assert_eq!(bodies, ["0", "3", "4", "5"]);
    wait_for("the queue drained", || get(&n.counters().queued) == 0);
    assert_eq!(totals(n.counters()), [6, 4, 2, 0, 0, 1]);
}

#[test]
fn a_503_is_retried_and_a_400_is_rejected() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let received = serve(listener, vec![503, 503, 400]);
    let n = notifier(port, 8);
    n.send(b"a".to_vec());
    n.send(b"b".to_vec());
    let got: Vec<(u16, String)> = (0..4)
        .map(|_| received.recv_timeout(Duration::from_secs(30)).unwrap())
        .collect();
    let expected = [(503, "a"), (503, "a"), (400, "a"), (200, "b")];
    let expected: Vec<(u16, String)> = expected.iter().map(|(s, b)| (*s, b.to_string())).collect();
    assert_eq!(got, expected);
    wait_for("b counted", || get(&n.counters().sent) == 1);
    assert_eq!(get(&n.counters().retries), 2);
    assert_eq!(totals(n.counters()), [2, 1, 0, 1, 0, 1]);
}
