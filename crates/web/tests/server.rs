//! The dashboard's HTTP server: loopback without a token, the token off
//! loopback (bearer for scripts, exchanged once for an HttpOnly SameSite
//! cookie), read-only, security headers, and idle connections (a browser's
//! speculative ones) never turning a request into a 503.

use memlens_model::series::{Entity, Labels};
use memlens_store::Store;
use memlens_web::server::{start, Published, ServerConfig, MAX_CONNECTIONS};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;

struct Dir(PathBuf);

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn history(name: &str) -> Dir {
    let dir =
        std::env::temp_dir().join(format!("memlens-web-server-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut store = Store::open(&dir).unwrap();
    let host = store.entity(&Entity::Host, &Labels::new()).unwrap();
    let total = store.series_id(host, "mem_total_bytes").unwrap();
    store.append(1_000, &[(total, 1e9)]).unwrap();
    store.commit().unwrap();
    Dir(dir)
}

/// Sends `request` (a whole HTTP request) and returns (status, head, body).
fn send(addr: SocketAddr, request: &str) -> (u16, String, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    let text = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, head.to_string(), body.to_string())
}

fn get(addr: SocketAddr, path: &str, extra: &str) -> (u16, String, String) {
    send(
        addr,
        &format!("GET {path} HTTP/1.1\r\nHost: x\r\n{extra}\r\n"),
    )
}

#[test]
fn off_loopback_without_a_token_is_refused() {
    let err = start(ServerConfig {
        addr: "0.0.0.0:0".parse().unwrap(),
        token: None,
        metrics: None,
        data_dir: None,
    })
    .unwrap_err();
    assert!(err.to_string().contains("no bearer token"), "{err}");
}

#[test]
fn the_token_is_required_and_exchanged_once_for_a_session_cookie() {
    let dir = history("token");
    let metrics = Published::default();
    metrics.publish("up 1\n".to_string());
    let addr = start(ServerConfig {
        addr: "127.0.0.1:0".parse().unwrap(),
        token: Some("s3cret".to_string()),
        metrics: Some(metrics),
        data_dir: Some(dir.0.clone()),
    })
    .unwrap();
    let (status, head, _) = get(addr, "/", "");
    assert_eq!(status, 303);
    assert!(head.contains("Location: /login"), "{head}");
    assert_eq!(get(addr, "/api/v1/info", "").0, 401);
    assert_eq!(get(addr, "/metrics", "").0, 401);
    let bearer = "Authorization: Bearer s3cret\r\n";
    assert_eq!(get(addr, "/metrics", bearer).2, "up 1\n");
    let (status, _, body) = get(addr, "/api/v1/info", bearer);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"last_ms\":1000"), "{body}");
    assert_eq!(get(addr, "/login", "").0, 200);

    let post = |form: &str| {
        send(addr, &format!(
            "POST /login HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{form}",
            form.len()
        ))
    };
    assert_eq!(post("token=wrong").0, 401);
    let (status, head, _) = post("token=s3cret");
    assert_eq!(status, 303);
    let cookie_line = head
        .lines()
        .find(|l| l.starts_with("Set-Cookie: "))
        .unwrap_or_else(|| panic!("no cookie: {head}"));
    assert!(
        cookie_line.contains("HttpOnly") && cookie_line.contains("SameSite=Strict"),
        "{cookie_line}"
    );
    assert!(
        !cookie_line.contains("s3cret"),
        "the cookie is a session, not the token"
    );
    let cookie = cookie_line["Set-Cookie: ".len()..]
        .split(';')
        .next()
        .unwrap();
    let with_cookie = format!("Cookie: other=1; {cookie}\r\n");
    assert_eq!(get(addr, "/api/v1/info", &with_cookie).0, 200);
    assert_eq!(get(addr, "/", &with_cookie).0, 200);
    assert_eq!(
        get(addr, "/metrics", &with_cookie).0,
        401,
        "scrapers use the bearer token"
    );
    let forged = "Cookie: memlens_session=00\r\n";
    assert_eq!(get(addr, "/api/v1/info", forged).0, 401);
}

#[test]
fn read_only_with_security_headers_and_idle_connections_never_cause_a_503() {
    let dir = history("loopback");
    let addr = start(ServerConfig {
        addr: "127.0.0.1:0".parse().unwrap(),
        token: None,
        metrics: None,
        data_dir: Some(dir.0.clone()),
    })
    .unwrap();
    let (status, head, body) = get(addr, "/", "");
    assert_eq!(status, 200);
    assert!(
        head.contains("Content-Security-Policy: default-src 'none'; script-src 'self';"),
        "{head}"
    );
    assert!(head.contains("X-Content-Type-Options: nosniff"), "{head}");
    assert!(
        body.contains("<script src=\"/assets/overview.js\""),
        "{body}"
    );
    let delete = send(addr, "DELETE /api/v1/info HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(delete.0, 405);
    assert_eq!(
        get(addr, "/metrics", "").0,
        404,
        "no /metrics without an agent"
    );
    assert_eq!(get(addr, "/api/v1/nothing", "").0, 404);
    // Idle connections that never send (a browser's speculative sockets),
    // more than a browser opens, short of the limit: requests still pass.
    let idle: Vec<TcpStream> = (0..MAX_CONNECTIONS / 2)
        .map(|_| TcpStream::connect(addr).unwrap())
        .collect();
    for _ in 0..8 {
        assert_eq!(get(addr, "/api/v1/info", "").0, 200);
    }
    drop(idle);
}
