//! The server's own HTTP/1.1 connection loop (hyper under poem's endpoints), for the limits on
//! slow and malformed clients that poem's `Server` does not expose (it sets no hyper timer, so no
//! header timeout, and no header limits of its own).
//!
//! - At most `max_connections` connections are open at once: at the limit the loop stops
//!   accepting, and new connections wait in the kernel's listen backlog, so the process's file
//!   descriptors stay bounded.
//! - `header_timeout` is hyper's header read timeout. hyper starts it when it begins waiting for a
//!   request head (on accepting, and again after each answer), so it ends both a slowloris that
//!   dribbles its head and a keep-alive connection left idle: the connection is closed without an
//!   answer (there is no request to answer).
//! - `body_timeout`: a request whose body has not been received in full that long after its head
//!   is answered 408 with an `ApiError` body and `Connection: close`; the handler's future is
//!   dropped.
//! - `max_headers` and `max_header_bytes` bound a request head; beyond either hyper answers 431.
//! - hyper answers a head it cannot parse (400), a target too long (414) and too many headers
//!   (431) itself, with no body and no way to change that. `ErrorBodies`, a thin wrapper on the
//!   accepted socket, recognises those answers (the only bodiless 400, 414 and 431 written on a
//!   connection: the application's errors always carry an `ApiError`) and writes an `ApiError`
//!   answer in their place.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use hyper::body::{Body as HttpBody, Frame, Incoming, SizeHint};
use hyper::header::{HeaderValue, CONNECTION};
use hyper_util::rt::{TokioIo, TokioTimer};
use invites_api::edge::{new_request_id, request_id_from, X_REQUEST_ID};
use invites_api::error::{error_response, ApiError};
use invites_domain::{Error, ErrorCode};
use poem::endpoint::BoxEndpoint;
use poem::http::uri::Scheme;
use poem::listener::{Acceptor, TcpAcceptor};
use poem::web::{LocalAddr, RemoteAddr};
use poem::{Endpoint, EndpointExt};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{watch, Semaphore};

/// How long a client may take to send a request head (and a keep-alive connection may stay idle).
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a client may take to send a request body, counted from its head.
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(30);
/// Connections open at once.
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
/// Header fields in a request head (hyper's own default).
pub const DEFAULT_MAX_HEADERS: usize = 100;
/// Bytes of a request head, request line included.
pub const DEFAULT_MAX_HEADER_BYTES: usize = 64 * 1024;

/// How long a stopping server lets requests in flight finish.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// The limits on every connection of a listener.
#[derive(Clone, Debug)]
pub struct ConnectionLimits {
    pub header_timeout: Duration,
    pub body_timeout: Duration,
    pub max_connections: usize,
    pub max_headers: usize,
    pub max_header_bytes: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            header_timeout: DEFAULT_HEADER_TIMEOUT,
            body_timeout: DEFAULT_BODY_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_headers: DEFAULT_MAX_HEADERS,
            max_header_bytes: DEFAULT_MAX_HEADER_BYTES,
        }
    }
}

/// Connections open now, for the tests and the benchmark: what `max_connections` bounds.
#[derive(Clone, Debug)]
pub struct OpenConnections {
    permits: Arc<Semaphore>,
    max: usize,
}

impl OpenConnections {
    pub fn count(&self) -> usize {
        self.max - self.permits.available_permits()
    }
}

/// The accept loop over `acceptor`, until `signal`; then it stops accepting, lets requests in
/// flight finish (up to 10 s) and returns.
pub(crate) struct ConnectionLoop {
    acceptor: TcpAcceptor,
    limits: ConnectionLimits,
    permits: Arc<Semaphore>,
}

impl ConnectionLoop {
    pub(crate) fn new(acceptor: TcpAcceptor, limits: ConnectionLimits) -> Self {
        let max = limits.max_connections.clamp(1, Semaphore::MAX_PERMITS);
        ConnectionLoop {
            acceptor,
            limits: ConnectionLimits {
                max_connections: max,
                ..limits
            },
            permits: Arc::new(Semaphore::new(max)),
        }
    }

    pub(crate) fn open_connections(&self) -> OpenConnections {
        OpenConnections {
            permits: Arc::clone(&self.permits),
            max: self.limits.max_connections,
        }
    }

    pub(crate) async fn run(
        self,
        app: impl Endpoint + 'static,
        signal: impl Future<Output = ()>,
    ) -> io::Result<()> {
        let ConnectionLoop {
            mut acceptor,
            limits,
            permits,
        } = self;
        let app: Arc<BoxEndpoint<'static>> = Arc::new(app.map_to_response().boxed());
        let mut http1 = hyper::server::conn::http1::Builder::new();
        http1
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_timeout)
            .max_headers(limits.max_headers)
            .max_header_size(limits.max_header_bytes)
            // One flat buffer per write, so that `ErrorBodies` sees each of hyper's own answers
            // whole in one `poll_write`.
            .writev(false);
        let http1 = Arc::new(http1);
        let (stop_tx, stop_rx) = watch::channel(false);
        tokio::pin!(signal);
        loop {
            let permit = tokio::select! {
                _ = &mut signal => break,
                p = Arc::clone(&permits).acquire_owned() => p.expect("the semaphore is never closed"),
            };
            let accepted = tokio::select! {
                _ = &mut signal => break,
                a = acceptor.accept() => a,
            };
            let (socket, local, remote, scheme) = match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors, most likely: wait rather than spin.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let connection = Connection {
                app: Arc::clone(&app),
                local,
                remote,
                scheme,
                body_timeout: limits.body_timeout,
            };
            let http1 = Arc::clone(&http1);
            let mut stop = stop_rx.clone();
            tokio::spawn(async move {
                let _permit = permit;
                let service = hyper::service::service_fn(move |req| {
                    let connection = connection.clone();
                    async move { Ok::<_, Infallible>(connection.answer(req).await) }
                });
                let conn = http1.serve_connection(TokioIo::new(ErrorBodies::new(socket)), service);
                tokio::pin!(conn);
                tokio::select! {
                    _ = conn.as_mut() => return,
                    _ = stop.wait_for(|stopping| *stopping) => {}
                }
                conn.as_mut().graceful_shutdown();
                let _ = tokio::time::timeout(SHUTDOWN_GRACE, conn).await;
            });
        }
        drop(acceptor);
        let _ = stop_tx.send(true);
        // Every connection gives its permit back when it ends.
        let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
        let _ = tokio::time::timeout(
            SHUTDOWN_GRACE + Duration::from_secs(1),
            permits.acquire_many(all),
        )
        .await;
        Ok(())
    }
}

/// What every request of one connection needs.
#[derive(Clone)]
struct Connection {
    app: Arc<BoxEndpoint<'static>>,
    local: LocalAddr,
    remote: RemoteAddr,
    scheme: Scheme,
    body_timeout: Duration,
}

type ResponseBody = BoxBody<Bytes, io::Error>;

impl Connection {
    /// The application's answer, or 408 when the body has not arrived within the body timeout.
    async fn answer(self, req: hyper::Request<Incoming>) -> hyper::Response<ResponseBody> {
        let received = Arc::new(AtomicBool::new(req.body().is_end_stream()));
        let request_id = req.headers().get(&X_REQUEST_ID).cloned();
        let mut req: poem::Request = (
            req,
            self.local.clone(),
            self.remote.clone(),
            self.scheme.clone(),
        )
            .into();
        if !received.load(Ordering::Acquire) {
            let body: ResponseBody = req.take_body().into();
            req.set_body(poem::Body::from(BoxBody::new(Watched {
                inner: body,
                received: Arc::clone(&received),
            })));
        }
        let call = self.app.get_response(req);
        tokio::pin!(call);
        let resp = if received.load(Ordering::Acquire) {
            call.await
        } else {
            match tokio::time::timeout(self.body_timeout, &mut call).await {
                Ok(resp) => resp,
                // The body is in: the handler is merely slow, and is not cut short.
                Err(_) if received.load(Ordering::Acquire) => call.await,
                Err(_) => body_timeout_answer(request_id.as_ref(), self.body_timeout),
            }
        };
        resp.into()
    }
}

/// 408 with an `ApiError`, closing the connection (the rest of the body is never read).
fn body_timeout_answer(request_id: Option<&HeaderValue>, timeout: Duration) -> poem::Response {
    let id = request_id_from(request_id);
    tracing::info!(
        request_id = %id,
        timeout_ms = timeout.as_millis() as u64,
        "request body not received within the body timeout: answered 408"
    );
    let e = Error::new(
        ErrorCode::RequestTimeout,
        format!(
            "The request body did not arrive within {} ms.",
            timeout.as_millis()
        ),
    );
    let mut resp = error_response(&e);
    resp.headers_mut()
        .insert(CONNECTION, HeaderValue::from_static("close"));
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert(X_REQUEST_ID.clone(), v);
    }
    resp
}

/// A request body that records when it has been received in full (or failed).
struct Watched {
    inner: ResponseBody,
    received: Arc<AtomicBool>,
}

impl HttpBody for Watched {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        let done = match &polled {
            Poll::Ready(None | Some(Err(_))) => true,
            Poll::Ready(Some(Ok(_))) => self.inner.is_end_stream(),
            Poll::Pending => false,
        };
        if done {
            self.received.store(true, Ordering::Release);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The accepted socket, with hyper's bodiless answers to unparsable heads replaced by `ApiError`
/// answers (see the module's documentation). Everything else passes through untouched.
pub(crate) struct ErrorBodies<T> {
    inner: T,
    /// Our answer, written in place of hyper's, and how much of it is out.
    pending: Vec<u8>,
    written: usize,
}

impl<T> ErrorBodies<T> {
    pub(crate) fn new(inner: T) -> Self {
        ErrorBodies {
            inner,
            pending: Vec::new(),
            written: 0,
        }
    }
}

impl<T: AsyncWrite + Unpin> ErrorBodies<T> {
    fn poll_pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.written < self.pending.len() {
            let n =
                ready!(Pin::new(&mut self.inner).poll_write(cx, &self.pending[self.written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.written += n;
        }
        if !self.pending.is_empty() {
            self.pending = Vec::new();
            self.written = 0;
        }
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for ErrorBodies<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for ErrorBodies<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.poll_pending(cx))?;
        if let Some(answer) = with_error_body(buf) {
            this.pending = answer;
            // hyper's bytes are taken whole; ours go out now or on the next write or flush.
            if let Poll::Ready(Err(e)) = this.poll_pending(cx) {
                return Poll::Ready(Err(e));
            }
            return Poll::Ready(Ok(buf.len()));
        }
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_pending(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_pending(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

/// When `buf` is exactly one of hyper's own answers to a head it could not read (status line
/// 400, 414 or 431, `content-length: 0`, no body), the same answer with an `ApiError` body,
/// `Connection: close` and an `X-Request-Id`; else `None`.
fn with_error_body(buf: &[u8]) -> Option<Vec<u8>> {
    let (code, detail) = match buf.get(..13)? {
        b"HTTP/1.1 400 " => (
            ErrorCode::ValidationError,
            "The request line or a header field is not valid HTTP/1.1.",
        ),
        b"HTTP/1.1 414 " => (ErrorCode::UriTooLong, "The request target is too long."),
        b"HTTP/1.1 431 " => (
            ErrorCode::RequestHeadersTooLarge,
            "The request has too many header fields, or too many bytes of them.",
        ),
        _ => return None,
    };
    let head = std::str::from_utf8(buf).ok()?.strip_suffix("\r\n\r\n")?;
    if head.contains("\r\n\r\n") {
        return None;
    }
    let mut lines = head.split("\r\n");
    let status_line = lines.next()?;
    let fields: Vec<&str> = lines.collect();
    if !fields
        .iter()
        .any(|f| f.eq_ignore_ascii_case("content-length: 0"))
    {
        return None;
    }
    let body = serde_json::to_vec(&ApiError::from(&Error::new(code, detail))).ok()?;
    let id = new_request_id();
    tracing::info!(
        request_id = %id,
        status = code.status(),
        "a request head that could not be read: answered {}",
        code.status()
    );
    let mut out = format!(
        "{status_line}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
         connection: close\r\nx-request-id: {id}\r\n",
        body.len()
    );
    for field in fields {
        let name = field.split(':').next().unwrap_or("");
        if !name.eq_ignore_ascii_case("content-length") && !name.eq_ignore_ascii_case("connection")
        {
            out.push_str(field);
            out.push_str("\r\n");
        }
    }
    out.push_str("\r\n");
    let mut out = out.into_bytes();
    out.extend_from_slice(&body);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewritten(buf: &str) -> Option<String> {
        with_error_body(buf.as_bytes()).map(|b| String::from_utf8(b).unwrap())
    }

    #[test]
    fn hyper_bare_answers_get_an_api_error_body() {
        let out = rewritten(
            "HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\ndate: Wed, 02 Dec 2026 14:00:00 GMT\r\n\r\n",
        )
        .unwrap();
        let (head, body) = out.split_once("\r\n\r\n").unwrap();
        let mut lines: Vec<&str> = head.lines().collect();
        let id = lines
            .iter()
            .position(|l| l.starts_with("x-request-id: "))
            .unwrap();
        assert_eq!(lines.remove(id).len(), "x-request-id: ".len() + 32);
        assert_eq!(
            lines,
            [
                "HTTP/1.1 400 Bad Request",
                "content-type: application/json",
                &format!("content-length: {}", body.len()),
                "connection: close",
                "date: Wed, 02 Dec 2026 14:00:00 GMT",
            ]
        );
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["error"], 400);
        assert_eq!(v["errorCode"], "VALIDATION_ERROR");
        for (status, code) in [(414, "URI_TOO_LONG"), (431, "REQUEST_HEADERS_TOO_LARGE")] {
            let out = rewritten(&format!(
                "HTTP/1.1 {status} X\r\ndate: x\r\ncontent-length: 0\r\n\r\n"
            ))
            .unwrap();
            let body = out.split_once("\r\n\r\n").unwrap().1;
            let v: serde_json::Value = serde_json::from_str(body).unwrap();
            assert_eq!(
                (v["error"].as_u64(), v["errorCode"].as_str()),
                (Some(status), Some(code))
            );
        }
    }

    #[test]
    fn the_application_answers_pass_untouched() {
        for buf in [
            // An ApiError 400 of the application: it has a body.
            "HTTP/1.1 400 Bad Request\r\ncontent-length: 2\r\n\r\n{}",
            // Another status, or a bodiless answer the application may give.
            "HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n",
            "HTTP/1.1 204 No Content\r\n\r\n",
            // A 400 head whose length is not 0 (a HEAD answer), or two answers in one write.
            "HTTP/1.1 400 Bad Request\r\ncontent-length: 120\r\n\r\n",
            "HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\nHTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n",
            // Part of a body that happens to start like a status line.
            "HTTP/1.1 400 Bad Request",
            "",
        ] {
            assert_eq!(rewritten(buf), None, "{buf:?}");
        }
    }

    #[tokio::test]
    async fn the_answer_is_written_in_full_in_place_of_hyper_s() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (client, server) = tokio::io::duplex(16);
        let mut server = ErrorBodies::new(server);
        let bare = b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\n\r\n";
        let reader = tokio::spawn(async move {
            let mut client = client;
            let mut all = Vec::new();
            client.read_to_end(&mut all).await.unwrap();
            all
        });
        // A duplex of 16 bytes takes our answer in many writes: all of it must get through.
        assert_eq!(server.write(bare).await.unwrap(), bare.len());
        server.write_all(b"tail").await.unwrap();
        server.shutdown().await.unwrap();
        drop(server);
        let all = String::from_utf8(reader.await.unwrap()).unwrap();
        let (head, rest) = all.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 431 "), "{head}");
        let body = rest.strip_suffix("tail").unwrap();
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["errorCode"], "REQUEST_HEADERS_TOO_LARGE");
    }
}
