//! Who is asking, and how often they failed: the client address (through trusted proxies only)
//! and a limit on failed authentication attempts per address and per API key.
//!
//! `X-Forwarded-For` is honoured only when the socket peer is a configured trusted proxy; the
//! client is then the right-most address in the header that is not itself a trusted proxy, so a
//! client cannot choose its own address by sending the header. The address is used by API-key
//! access lists, the audit log and the failed-attempt limit.
//!
//! The limit counts failed credential checks (a wrong secret, an unknown key or token, a replayed
//! nonce count; not a missing `Authorization` header, an expired nonce, a scheme the API family
//! does not take, nor a live Bearer token of the other family) in a fixed one-minute window, per
//! client address and per Digest username. Past it, authentication is refused for the
//! rest of the window even with the right secret, with `Retry-After`: 429 where the operation
//! documents it (the Atlas family), else the family's documented 401. Counted in memory per
//! replica, bounded in size.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Instant;

use ipnet::IpNet;
use poem::Request;

/// The client's address as the service sees it, put in the request's extensions by the
/// authentication middleware.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientAddr(pub Option<IpAddr>);

/// Proxies whose `X-Forwarded-For` is believed.
#[derive(Clone, Debug, Default)]
pub struct TrustedProxies(pub Vec<IpNet>);

impl TrustedProxies {
    fn trusts(&self, ip: &IpAddr) -> bool {
        self.0.iter().any(|net| net.contains(ip))
    }

    /// The client address of a request: the socket peer, or, when the peer is a trusted proxy,
    /// the right-most untrusted address of `X-Forwarded-For` (the peer if there is none).
    pub fn client_addr(&self, req: &Request) -> Option<IpAddr> {
        let peer = req.remote_addr().as_socket_addr().map(|a| a.ip())?;
        if !self.trusts(&peer) {
            return Some(peer);
        }
        let forwarded: Vec<IpAddr> = req
            .headers()
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .map(|s| s.parse::<IpAddr>().ok())
            .collect::<Option<Vec<_>>>()
            // A malformed header is not believed at all.
            .unwrap_or_default();
        Some(
            forwarded
                .iter()
                .rev()
                .find(|ip| !self.trusts(ip))
                .copied()
                .unwrap_or(peer),
        )
    }
}

/// Most counters kept; past it, expired windows are dropped first, then everything.
const MAX_ENTRIES: usize = 100_000;
const WINDOW_SECS: u64 = 60;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Subject {
    Addr(IpAddr),
    Key(String),
}

/// Failed-authentication counters.
#[derive(Debug)]
pub struct FailedAuthLimiter {
    per_address: u32,
    per_key: u32,
    started: Instant,
    counts: Mutex<HashMap<Subject, (u64, u32)>>,
}

impl FailedAuthLimiter {
    /// At most `per_address` failures per client address and `per_key` per Digest username in a
    /// minute; 0 turns that limit off.
    pub fn new(per_address: u32, per_key: u32) -> Self {
        FailedAuthLimiter {
            per_address,
            per_key,
            started: Instant::now(),
            counts: Mutex::new(HashMap::new()),
        }
    }

    fn window(&self) -> u64 {
        self.started.elapsed().as_secs() / WINDOW_SECS
    }

    fn retry_after(&self) -> u64 {
        WINDOW_SECS - self.started.elapsed().as_secs() % WINDOW_SECS
    }

    fn over(&self, subject: &Subject, limit: u32) -> Option<u64> {
        if limit == 0 {
            return None;
        }
        let window = self.window();
        let counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        match counts.get(subject) {
            Some((w, n)) if *w == window && *n >= limit => Some(self.retry_after()),
            _ => None,
        }
    }

    /// Seconds to wait when this address is over its limit.
    pub fn address_blocked(&self, addr: Option<IpAddr>) -> Option<u64> {
        addr.and_then(|a| self.over(&Subject::Addr(a), self.per_address))
    }

    /// Seconds to wait when this API key (Digest username) is over its limit.
    pub fn key_blocked(&self, username: &str) -> Option<u64> {
        self.over(&Subject::Key(username.to_owned()), self.per_key)
    }

    /// Counts one failed attempt from `addr`, naming `username` if it was a Digest attempt.
    pub fn record_failure(&self, addr: Option<IpAddr>, username: Option<&str>) {
        let window = self.window();
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        if counts.len() >= MAX_ENTRIES {
            counts.retain(|_, (w, _)| *w == window);
            if counts.len() >= MAX_ENTRIES {
                counts.clear();
            }
        }
        let subjects = addr
            .map(Subject::Addr)
            .into_iter()
            .chain(username.map(|u| Subject::Key(u.chars().take(64).collect())));
        for subject in subjects {
            let entry = counts.entry(subject).or_insert((window, 0));
            if entry.0 != window {
                *entry = (window, 0);
            }
            entry.1 = entry.1.saturating_add(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(peer: &str, xff: Option<&str>) -> Request {
        let mut b = poem::http::Request::builder().uri("/");
        if let Some(v) = xff {
            b = b.header("X-Forwarded-For", v);
        }
        let (head, ()) = b.body(()).unwrap().into_parts();
        let addr: std::net::SocketAddr = peer.parse().unwrap();
        let parts = poem::RequestParts::from((
            head,
            poem::web::LocalAddr(poem::Addr::SocketAddr("127.0.0.1:8080".parse().unwrap())),
            poem::web::RemoteAddr(poem::Addr::SocketAddr(addr)),
            poem::http::uri::Scheme::HTTP,
        ));
        Request::from_parts(parts, poem::Body::empty())
    }

    #[test]
    fn forwarded_addresses_count_only_from_trusted_proxies() {
        let trusted = TrustedProxies(vec!["10.0.0.0/8".parse().unwrap()]);
        let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        // An untrusted peer cannot pick its address.
        assert_eq!(
            trusted.client_addr(&request("203.0.113.5:1", Some("192.0.2.1"))),
            ip("203.0.113.5")
        );
        // Through a trusted proxy: the right-most untrusted hop (earlier hops are the client's word).
        assert_eq!(
            trusted.client_addr(&request(
                "10.0.0.2:1",
                Some("198.51.100.9, 192.0.2.1, 10.0.0.7")
            )),
            ip("192.0.2.1")
        );
        // A trusted proxy without the header, or with a malformed one: the proxy itself.
        assert_eq!(
            trusted.client_addr(&request("10.0.0.2:1", None)),
            ip("10.0.0.2")
        );
        assert_eq!(
            trusted.client_addr(&request("10.0.0.2:1", Some("192.0.2.1, nonsense"))),
            ip("10.0.0.2")
        );
        assert_eq!(
            TrustedProxies::default().client_addr(&request("10.0.0.2:1", Some("192.0.2.1"))),
            ip("10.0.0.2")
        );
    }

    #[test]
    fn failures_block_an_address_and_a_key_for_the_window() {
        let l = FailedAuthLimiter::new(3, 2);
        let a: Option<IpAddr> = Some("192.0.2.1".parse().unwrap());
        let b: Option<IpAddr> = Some("192.0.2.2".parse().unwrap());
        l.record_failure(a, Some("key1"));
        assert_eq!(l.key_blocked("key1"), None);
        l.record_failure(b, Some("key1"));
        assert!(l.key_blocked("key1").is_some_and(|s| (1..=60).contains(&s)));
        assert_eq!(l.key_blocked("key2"), None);
        assert_eq!(l.address_blocked(a), None);
        l.record_failure(a, None);
        l.record_failure(a, None);
        assert!(l.address_blocked(a).is_some());
        assert_eq!(l.address_blocked(b), None);
        assert_eq!(l.address_blocked(None), None);
        let off = FailedAuthLimiter::new(0, 0);
        for _ in 0..10 {
            off.record_failure(a, Some("k"));
        }
        assert_eq!((off.address_blocked(a), off.key_blocked("k")), (None, None));
    }
}
