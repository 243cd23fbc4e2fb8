//! Slow and malformed clients over raw TCP: a slowloris, a body that never finishes, thousands of
//! idle keep-alive connections, header floods and an invalid request line. Each is cut off or
//! answered with a bounded `ApiError`, and a normal request on another connection is served
//! meanwhile. Timeouts are short here (under a second) so the tests are fast.

use std::time::{Duration, Instant};

use invites_server::{ConnectionLimits, ServiceConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::TestServer;

async fn server(limits: ConnectionLimits) -> TestServer {
    TestServer::start_with(ServiceConfig {
        connections: limits,
        ..ServiceConfig::default()
    })
    .await
}

fn addr(s: &TestServer) -> String {
    s.base.trim_start_matches("http://").to_owned()
}

/// A normal request on a connection of its own: `/health` answers 200.
async fn normal_request_succeeds(s: &TestServer) {
    let r = tokio::time::timeout(
        Duration::from_secs(10),
        reqwest::Client::new().get(s.url("/health")).send(),
    )
    .await
    .expect("a normal request is answered during the attack")
    .unwrap();
    assert_eq!(r.status(), 200);
}

/// Everything the server writes until it closes the connection (bounded to 10 s).
async fn read_until_closed(stream: &mut TcpStream) -> Vec<u8> {
    let mut all = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => all.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(read.is_ok(), "the server did not close the connection");
    all
}

/// The status, the header lines (lower-cased names) and the JSON body of a raw answer.
fn parse(answer: &[u8]) -> (u16, Vec<String>, serde_json::Value) {
    let text = String::from_utf8_lossy(answer);
    let (head, body) = text.split_once("\r\n\r\n").expect("a whole answer");
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap()[9..12].parse().unwrap();
    let headers = lines.map(|l| l.to_ascii_lowercase()).collect();
    (
        status,
        headers,
        serde_json::from_str(body).expect("a JSON body"),
    )
}

/// Sends `request` on a fresh connection, makes a normal request on another meanwhile, and
/// returns the answer to `request`, read until the server closes the connection.
async fn raw_answer(s: &TestServer, request: &[u8]) -> (u16, Vec<String>, serde_json::Value) {
    let mut stream = TcpStream::connect(addr(s)).await.unwrap();
    stream.write_all(request).await.unwrap();
    normal_request_succeeds(s).await;
    let answer = read_until_closed(&mut stream).await;
    let (status, headers, body) = parse(&answer);
    assert!(
        headers.contains(&"content-type: application/json".to_owned()),
        "{headers:?}"
    );
    assert!(
        headers.contains(&"connection: close".to_owned()),
        "{headers:?}"
    );
    let id = headers
        .iter()
        .find_map(|h| h.strip_prefix("x-request-id: "))
        .expect("an X-Request-Id");
    assert_eq!(id.len(), 32, "{id}");
    (status, headers, body)
}

#[tokio::test]
async fn a_slowloris_is_cut_off_by_the_header_timeout() {
    let s = server(ConnectionLimits {
        header_timeout: Duration::from_millis(800),
        ..ConnectionLimits::default()
    })
    .await;
    let mut stream = TcpStream::connect(addr(&s)).await.unwrap();
    let head =
        b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    let started = Instant::now();
    let mut closed = false;
    // One byte every 100 ms: active all along, never a whole head (at most 4.5 s).
    for byte in head {
        if stream.write_all(&[*byte]).await.is_err() {
            closed = true;
            break;
        }
        let mut buf = [0u8; 64];
        match tokio::time::timeout(Duration::from_millis(100), stream.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => {
                closed = true;
                break;
            }
            Ok(Ok(n)) => panic!("answered a head never finished: {:?}", &buf[..n]),
            Err(_) => {}
        }
        if started.elapsed() > Duration::from_millis(300)
            && started.elapsed() < Duration::from_millis(500)
        {
            normal_request_succeeds(&s).await;
        }
    }
    let elapsed = started.elapsed();
    assert!(closed, "still open after {elapsed:?}");
    // The server's 800 ms start at its accept, which may come a hair before our clock started.
    assert!(
        elapsed >= Duration::from_millis(700) && elapsed < Duration::from_secs(3),
        "closed after {elapsed:?}"
    );
    normal_request_succeeds(&s).await;
    s.stop().await;
}

#[tokio::test]
async fn a_body_that_never_finishes_is_answered_408() {
    let s = server(ConnectionLimits {
        body_timeout: Duration::from_millis(800),
        ..ConnectionLimits::default()
    })
    .await;
    let g = s.demo.community_group_id;
    let token = s.user_token("manager");
    let request = format!(
        "POST /api/v2/group/{g}/invite/ HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{\"users\": [1"
    );
    let started = Instant::now();
    let (status, _, body) = raw_answer(&s, request.as_bytes()).await;
    assert!(
        started.elapsed() >= Duration::from_millis(800),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(status, 408);
    insta::assert_json_snapshot!(body, @r###"
    {
      "detail": "The request body did not arrive within 800 ms.",
      "error": 408,
      "errorCode": "REQUEST_TIMEOUT",
      "parameters": [],
      "reason": "Request Timeout"
    }
    "###);
    s.stop().await;
}

/// The soft limit on open files of this process, from `/proc/self/limits` (Linux).
fn open_file_limit() -> Option<usize> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

#[tokio::test]
async fn idle_keep_alive_connections_are_closed_and_bounded() {
    // 1,000 idle connections (fewer if the open-file limit is low: the test holds both ends).
    let idle = open_file_limit().map_or(1000, |l| (l.saturating_sub(200) / 2).min(1000));
    assert!(
        idle >= 100,
        "open-file limit too low for this test: {:?}",
        open_file_limit()
    );
    let max = idle / 4;
    let s = server(ConnectionLimits {
        header_timeout: Duration::from_millis(500),
        max_connections: max,
        ..ConnectionLimits::default()
    })
    .await;
    let mut streams = Vec::with_capacity(idle);
    for _ in 0..idle {
        streams.push(TcpStream::connect(addr(&s)).await.unwrap());
    }
    let started = Instant::now();
    let mut most = 0;
    let mut closed = 0;
    let mut normal = 0;
    // Each idle connection must see the server close it: in waves of `max`, each after 0.5 s.
    for stream in &mut streams {
        let mut buf = [0u8; 16];
        loop {
            most = most.max(s.open_connections());
            match tokio::time::timeout(Duration::from_millis(50), stream.read(&mut buf)).await {
                Ok(Ok(0) | Err(_)) => break,
                Ok(Ok(n)) => panic!("an idle connection was sent {:?}", &buf[..n]),
                Err(_) => assert!(
                    started.elapsed() < Duration::from_secs(20),
                    "{closed} closed in 20 s"
                ),
            }
        }
        closed += 1;
        if closed % (idle / 4) == 0 {
            normal_request_succeeds(&s).await;
            normal += 1;
        }
    }
    assert_eq!(closed, idle);
    assert!(normal >= 4);
    assert!(most <= max, "{most} connections open, limit {max}");
    assert!(most > 0);
    normal_request_succeeds(&s).await;
    s.stop().await;
}

#[tokio::test]
async fn too_many_headers_are_answered_431() {
    let s = server(ConnectionLimits {
        max_headers: 20,
        ..ConnectionLimits::default()
    })
    .await;
    let mut request = "GET /health HTTP/1.1\r\nHost: x\r\n".to_owned();
    for i in 0..30 {
        request.push_str(&format!("X-Flood-{i}: {i}\r\n"));
    }
    request.push_str("\r\n");
    let (status, _, body) = raw_answer(&s, request.as_bytes()).await;
    assert_eq!(status, 431);
    insta::assert_json_snapshot!(body, @r###"
    {
      "detail": "The request has too many header fields, or too many bytes of them.",
      "error": 431,
      "errorCode": "REQUEST_HEADERS_TOO_LARGE",
      "parameters": [],
      "reason": "Request Header Fields Too Large"
    }
    "###);
    s.stop().await;
}

#[tokio::test]
async fn a_huge_header_is_answered_431() {
    let s = server(ConnectionLimits {
        max_header_bytes: 16 * 1024,
        ..ConnectionLimits::default()
    })
    .await;
    let request = format!(
        "GET /health HTTP/1.1\r\nHost: x\r\nX-Huge: {}\r\n\r\n",
        "a".repeat(32 * 1024)
    );
    let (status, _, body) = raw_answer(&s, request.as_bytes()).await;
    assert_eq!(status, 431);
    assert_eq!(body["errorCode"], "REQUEST_HEADERS_TOO_LARGE");
    s.stop().await;
}

#[tokio::test]
async fn an_invalid_request_line_is_answered_400_with_an_api_error() {
    let s = TestServer::start().await;
    let (status, _, body) = raw_answer(&s, b"GE\x01T /health HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert_eq!(status, 400);
    insta::assert_json_snapshot!(body, @r###"
    {
      "detail": "The request line or a header field is not valid HTTP/1.1.",
      "error": 400,
      "errorCode": "VALIDATION_ERROR",
      "parameters": [],
      "reason": "Bad Request"
    }
    "###);
    // A header line without a colon is the same.
    let (status, _, body) = raw_answer(&s, b"GET /health HTTP/1.1\r\nHost x\r\n\r\n").await;
    assert_eq!(
        (status, body["errorCode"].as_str()),
        (400, Some("VALIDATION_ERROR"))
    );
    s.stop().await;
}
