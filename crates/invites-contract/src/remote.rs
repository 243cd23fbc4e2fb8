//! Fetching a `$ref` that names an `http://` URL, only when the load allows it: one HTTP/1.0 GET
//! over the standard library's `TcpStream`, with one deadline for connecting, sending and reading
//! and a limit on the answer's size, no redirect followed.
//!
//! No HTTP client crate: the loader is synchronous and used by `xtask` and the fuzz targets,
//! which must stay free of large crates, and the workspace's reqwest is asynchronous and built
//! without TLS. `https://` is therefore refused with its reason (a TLS stack, rustls and its
//! cryptography, would be a new dependency of every user of this crate for a mock meant to read
//! local files); download such a file beside the document instead. Names are resolved by the
//! system resolver, which the deadline does not bound.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

/// Largest status line and header block accepted.
const MAX_HEAD_BYTES: usize = 64 * 1024;

/// Whether a `$ref`'s file part names a URL on the network (`http:`, `https:` or a
/// scheme-relative `//host/...`).
pub fn is_remote(file_part: &str) -> bool {
    let lower = file_part.to_ascii_lowercase();
    lower.starts_with("http://") || lower.starts_with("https://") || lower.starts_with("//")
}

/// `reference` (a URL or a relative reference) resolved against the URL `base` (RFC 3986,
/// section 5.2, for the shapes `$ref`s take: no query or fragment kept).
pub fn join(base: &str, reference: &str) -> String {
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let scheme = &base[..scheme_end.saturating_sub(3)];
    if is_remote(reference) {
        if let Some(rest) = reference.strip_prefix("//") {
            return normalize(&format!("{scheme}://{rest}"));
        }
        return normalize(reference);
    }
    let path_start = base[scheme_end..]
        .find('/')
        .map(|i| scheme_end + i)
        .unwrap_or(base.len());
    let origin = &base[..path_start];
    let path = base[path_start..]
        .split(['?', '#'])
        .next()
        .unwrap_or_default();
    if reference.starts_with('/') {
        return normalize(&format!("{origin}{reference}"));
    }
    let dir = &path[..path.rfind('/').map(|i| i + 1).unwrap_or(0)];
    let dir = if dir.is_empty() { "/" } else { dir };
    normalize(&format!("{origin}{dir}{reference}"))
}

/// A URL with `.` and `..` segments of its path removed and its scheme and host in lower case.
fn normalize(url: &str) -> String {
    let scheme_end = url.find("://").map(|i| i + 3).unwrap_or(0);
    let path_start = url[scheme_end..]
        .find('/')
        .map(|i| scheme_end + i)
        .unwrap_or(url.len());
    let origin = url[..path_start].to_ascii_lowercase();
    let path = &url[path_start..];
    let mut out: Vec<&str> = Vec::new();
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    for (i, segment) in segments.iter().enumerate() {
        let last = i + 1 == segments.len();
        match *segment {
            "." => {
                if last {
                    out.push("");
                }
            }
            ".." => {
                out.pop();
                if last {
                    out.push("");
                }
            }
            s => out.push(s),
        }
    }
    format!("{origin}/{}", out.join("/"))
}

/// The body of `url`'s answer, if it is a 200 within `timeout` and no larger than `max_bytes`.
/// Errors say what went wrong in a sentence (without the URL, which the caller names).
pub fn fetch(url: &str, timeout: Duration, max_bytes: u64) -> Result<Vec<u8>, String> {
    let lower = url.to_ascii_lowercase();
    if lower.starts_with("https://") {
        return Err(
            "https:// is not fetched: the mock has no TLS client (only http://; download the \
             file beside the document instead)"
                .into(),
        );
    }
    let Some(rest) = url
        .get("http://".len()..)
        .filter(|_| lower.starts_with("http://"))
    else {
        return Err("only http:// URLs are fetched".into());
    };
    let (authority, path) = match rest.find(['/', '?']) {
        Some(i) if rest.as_bytes()[i] == b'/' => (&rest[..i], &rest[i..]),
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let path = path.split('#').next().unwrap_or("/");
    if authority.contains('@') {
        return Err("a URL with credentials is not fetched".into());
    }
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !p.contains(']') => (
            h,
            p.parse::<u16>()
                .map_err(|_| format!("the port {p:?} is not a number"))?,
        ),
        _ => (authority, 80),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err("the URL names no host".into());
    }
    let deadline = Instant::now() + timeout;
    let timed_out = || format!("no complete answer within {timeout:?} (--remote-ref-timeout)");
    let remaining = || {
        deadline
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
    };
    let addrs: Vec<_> = (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("{host} cannot be resolved: {e}"))?
        .collect();
    let mut stream = None;
    let mut last_error = String::from("no address");
    for addr in addrs {
        let Some(left) = remaining() else {
            return Err(timed_out());
        };
        match TcpStream::connect_timeout(&addr, left) {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last_error = e.to_string(),
        }
    }
    let mut stream = stream.ok_or_else(|| format!("cannot connect: {last_error}"))?;
    let request = format!(
        "GET {path} HTTP/1.0\r\nHost: {authority}\r\nAccept: application/json, \
         application/yaml, */*\r\nUser-Agent: invites-mock\r\nConnection: close\r\n\r\n"
    );
    stream
        .set_write_timeout(remaining())
        .and_then(|_| stream.write_all(request.as_bytes()))
        .map_err(|e| match remaining() {
            None => timed_out(),
            Some(_) => format!("cannot send the request: {e}"),
        })?;
    let limit = MAX_HEAD_BYTES as u64 + max_bytes;
    let mut answer = Vec::new();
    let mut chunk = [0u8; 64 * 1024];
    let mut head_end = None;
    loop {
        let Some(left) = remaining() else {
            return Err(timed_out());
        };
        stream
            .set_read_timeout(Some(left))
            .map_err(|e| e.to_string())?;
        let n = match stream.read(&mut chunk) {
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Err(timed_out())
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(format!("reading the answer failed: {e}")),
        };
        if n == 0 {
            break;
        }
        answer.extend_from_slice(&chunk[..n]);
        if head_end.is_none() {
            head_end = answer
                .windows(4)
                .position(|w| w == b"\r\n\r\n")
                .map(|i| i + 4);
            match head_end {
                None if answer.len() > MAX_HEAD_BYTES => {
                    return Err(format!("headers longer than {MAX_HEAD_BYTES} bytes"))
                }
                None => {}
                Some(end) => {
                    let head = std::str::from_utf8(&answer[..end])
                        .map_err(|_| "headers that are not text".to_owned())?;
                    check_head(head, max_bytes)?;
                }
            }
        }
        if answer.len() as u64 > limit
            || head_end.is_some_and(|h| answer.len() - h > max_bytes as usize)
        {
            return Err(too_large(max_bytes));
        }
    }
    let Some(end) = head_end else {
        return Err("the connection closed before the headers ended".into());
    };
    let head = std::str::from_utf8(&answer[..end]).unwrap_or_default();
    let body = answer[end..].to_vec();
    if header(head, "transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        return dechunk(&body);
    }
    if let Some(length) = header(head, "content-length").and_then(|v| v.parse::<usize>().ok()) {
        if body.len() < length {
            return Err(format!(
                "the answer ended after {} of its {length} bytes",
                body.len()
            ));
        }
        return Ok(body[..length].to_vec());
    }
    Ok(body)
}

fn too_large(max_bytes: u64) -> String {
    format!("the answer is larger than {max_bytes} bytes (--max-file-bytes)")
}

/// A header's value (the first of that name).
fn header<'h>(head: &'h str, name: &str) -> Option<&'h str> {
    head.lines().skip(1).find_map(|line| {
        let (n, v) = line.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// Refuses an answer by its status line and announced length.
fn check_head(head: &str, max_bytes: u64) -> Result<(), String> {
    let status_line = head.lines().next().unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    let status = parts.next().unwrap_or_default();
    if !version.starts_with("HTTP/1.") {
        return Err(format!("not an HTTP answer: {status_line:?}"));
    }
    if status != "200" {
        let redirect = header(head, "location")
            .map(|l| format!(" to {l} (redirects are not followed)"))
            .unwrap_or_default();
        return Err(format!(
            "answered {}{redirect}",
            status_line.get(9..).unwrap_or(status)
        ));
    }
    if let Some(length) = header(head, "content-length") {
        let length: u64 = length
            .parse()
            .map_err(|_| format!("a Content-Length that is not a number: {length:?}"))?;
        if length > max_bytes {
            return Err(too_large(max_bytes));
        }
    }
    Ok(())
}

/// The body of a chunked answer (RFC 9112, section 7.1; extensions and trailers ignored).
fn dechunk(mut body: &[u8]) -> Result<Vec<u8>, String> {
    let broken = || "a chunked answer that is cut or malformed".to_owned();
    let mut out = Vec::new();
    loop {
        let line_end = body
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or_else(broken)?;
        let size_text = std::str::from_utf8(&body[..line_end]).map_err(|_| broken())?;
        let size_text = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16).map_err(|_| broken())?;
        body = &body[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        if body.len() < size + 2 {
            return Err(broken());
        }
        out.extend_from_slice(&body[..size]);
        body = &body[size + 2..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    /// A server on 127.0.0.1:0 that answers one connection with `answer` after `delay`, and
    /// returns the request it read.
    fn serve_once(answer: Vec<u8>, delay: Duration) -> (String, std::thread::JoinHandle<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let handle = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut request = Vec::new();
            let mut buf = [0u8; 1024];
            while !request.ends_with(b"\r\n\r\n") {
                match s.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => request.extend_from_slice(&buf[..n]),
                }
            }
            std::thread::sleep(delay);
            let _ = s.write_all(&answer);
            String::from_utf8_lossy(&request).into_owned()
        });
        (url, handle)
    }

    #[test]
    fn urls_join_as_references_do() {
        let base = "http://Example.com:81/api/v1/root.yaml?x=1";
        assert_eq!(
            join(base, "pet.yaml"),
            "http://example.com:81/api/v1/pet.yaml"
        );
        assert_eq!(
            join(base, "../common/e.yaml"),
            "http://example.com:81/api/common/e.yaml"
        );
        assert_eq!(join(base, "/top.yaml"), "http://example.com:81/top.yaml");
        assert_eq!(join(base, "//other/x.yaml"), "http://other/x.yaml");
        assert_eq!(
            join(base, "https://h/a/./b/../c.json"),
            "https://h/a/c.json"
        );
        assert_eq!(join("http://h", "a.yaml"), "http://h/a.yaml");
        assert!(is_remote("HTTP://h/x") && is_remote("//h/x") && !is_remote("h/x.yaml"));
    }

    #[test]
    fn an_answer_is_read_within_its_limits() {
        let (url, server) = serve_once(
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello".to_vec(),
            Duration::ZERO,
        );
        let body = fetch(&format!("{url}/a/b.yaml#/x"), Duration::from_secs(5), 100).unwrap();
        assert_eq!(body, b"hello");
        let request = server.join().unwrap();
        assert!(
            request.starts_with("GET /a/b.yaml HTTP/1.0\r\n"),
            "{request}"
        );

        let (url, _) = serve_once(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n"
                .to_vec(),
            Duration::ZERO,
        );
        assert_eq!(fetch(&url, Duration::from_secs(5), 100).unwrap(), b"abcde");

        let (url, _) = serve_once(
            b"HTTP/1.0 200 OK\r\n\r\nuntil the end".to_vec(),
            Duration::ZERO,
        );
        assert_eq!(
            fetch(&url, Duration::from_secs(5), 100).unwrap(),
            b"until the end"
        );
    }

    #[test]
    fn what_is_slow_large_or_not_found_is_refused() {
        let (url, _) = serve_once(
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}".to_vec(),
            Duration::from_secs(2),
        );
        let started = Instant::now();
        let err = fetch(&url, Duration::from_millis(300), 100).unwrap_err();
        assert!(err.contains("within 300ms"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(2));

        let (url, _) = serve_once(
            b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n".to_vec(),
            Duration::ZERO,
        );
        let err = fetch(&url, Duration::from_secs(5), 100).unwrap_err();
        assert!(err.contains("larger than 100 bytes"), "{err}");
        // Without a length announced, the count of bytes read stops it.
        let mut big = b"HTTP/1.0 200 OK\r\n\r\n".to_vec();
        big.extend(std::iter::repeat_n(b'x', 300_000));
        let (url, _) = serve_once(big, Duration::ZERO);
        let err = fetch(&url, Duration::from_secs(5), 1000).unwrap_err();
        assert!(err.contains("larger than 1000 bytes"), "{err}");

        let (url, _) = serve_once(
            b"HTTP/1.1 302 Found\r\nLocation: http://elsewhere/\r\n\r\n".to_vec(),
            Duration::ZERO,
        );
        let err = fetch(&url, Duration::from_secs(5), 100).unwrap_err();
        assert!(
            err.contains("302 Found to http://elsewhere/ (redirects"),
            "{err}"
        );
        let (url, _) = serve_once(b"HTTP/1.1 404 Not Found\r\n\r\n".to_vec(), Duration::ZERO);
        let err = fetch(&url, Duration::from_secs(5), 100).unwrap_err();
        assert_eq!(err, "answered 404 Not Found");

        let err = fetch("https://example.com/x.yaml", Duration::from_secs(1), 100).unwrap_err();
        assert!(err.contains("no TLS client"), "{err}");
        let err = fetch("http://u:p@example.com/x", Duration::from_secs(1), 100).unwrap_err();
        assert!(err.contains("credentials"), "{err}");
    }
}
