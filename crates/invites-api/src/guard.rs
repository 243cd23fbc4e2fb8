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
//! window of the wall clock, bounded in size ([`crate::limits`]), and over PostgreSQL merged with
//! the other replicas' counts every 100 ms, so a guesser spread over replicas gets the limit
//! once, not once per replica.

use std::net::IpAddr;

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

use crate::backend::LimitKind;
use crate::limits::{unix_secs, until_next_window, window_of, WindowCounts};

/// Who failed: a client address or an API key (Digest username, at most 64 characters).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Subject {
    Addr(IpAddr),
    Key(String),
}

impl crate::limits::Subject for Subject {
    fn shard(&self) -> usize {
        match self {
            Subject::Addr(IpAddr::V4(a)) => a.octets()[3] as usize,
            Subject::Addr(IpAddr::V6(a)) => a.octets()[15] as usize,
            Subject::Key(k) => k
                .bytes()
                .fold(0usize, |h, b| h.wrapping_mul(31) ^ b as usize),
        }
    }

    fn kind(&self) -> LimitKind {
        match self {
            Subject::Addr(_) => LimitKind::FailedAuthAddress,
            Subject::Key(_) => LimitKind::FailedAuthKey,
        }
    }

    fn name(&self) -> String {
        match self {
            Subject::Addr(a) => a.to_string(),
            Subject::Key(k) => k.clone(),
        }
    }

    fn from_name(kind: LimitKind, name: &str) -> Option<Self> {
        match kind {
            LimitKind::FailedAuthAddress => name.parse().ok().map(Subject::Addr),
            LimitKind::FailedAuthKey => Some(Subject::Key(name.to_owned())),
            LimitKind::Rate => None,
        }
    }
}

/// Failed-authentication counters.
#[derive(Debug)]
pub struct FailedAuthLimiter {
    per_address: u32,
    per_key: u32,
    counts: WindowCounts<Subject>,
}

impl FailedAuthLimiter {
    /// At most `per_address` failures per client address and `per_key` per Digest username in a
    /// minute; 0 turns that limit off.
    pub fn new(per_address: u32, per_key: u32) -> Self {
        FailedAuthLimiter {
            per_address,
            per_key,
            counts: WindowCounts::default(),
        }
    }

    /// The counts (for the merge with other replicas').
    pub(crate) fn counts(&self) -> &WindowCounts<Subject> {
        &self.counts
    }

    fn over(&self, subject: &Subject, limit: u32, secs: u64) -> Option<u64> {
        if limit == 0 {
            return None;
        }
        (self.counts.get(subject, window_of(secs)) >= u64::from(limit))
            .then(|| until_next_window(secs))
    }

    /// Seconds to wait when this address is over its limit.
    pub fn address_blocked(&self, addr: Option<IpAddr>) -> Option<u64> {
        self.address_blocked_at(addr, unix_secs())
    }

    /// [`Self::address_blocked`] at `secs` (UNIX time).
    pub fn address_blocked_at(&self, addr: Option<IpAddr>, secs: u64) -> Option<u64> {
        addr.and_then(|a| self.over(&Subject::Addr(a), self.per_address, secs))
    }

    /// Seconds to wait when this API key (Digest username) is over its limit.
    pub fn key_blocked(&self, username: &str) -> Option<u64> {
        self.key_blocked_at(username, unix_secs())
    }

    /// [`Self::key_blocked`] at `secs` (UNIX time).
    pub fn key_blocked_at(&self, username: &str, secs: u64) -> Option<u64> {
        self.over(&key(username), self.per_key, secs)
    }

    /// Counts one failed attempt from `addr`, naming `username` if it was a Digest attempt.
    pub fn record_failure(&self, addr: Option<IpAddr>, username: Option<&str>) {
        self.record_failure_at(addr, username, unix_secs());
    }

    /// [`Self::record_failure`] at `secs` (UNIX time).
    pub fn record_failure_at(&self, addr: Option<IpAddr>, username: Option<&str>, secs: u64) {
        let window = window_of(secs);
        if let Some(a) = addr {
            self.counts.add(Subject::Addr(a), window);
        }
        if let Some(u) = username {
            self.counts.add(key(u), window);
        }
    }
}

/// The subject of a Digest username: its first 64 characters.
fn key(username: &str) -> Subject {
    Subject::Key(username.chars().take(64).collect())
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
        // 10 s into a minute of the wall clock.
        let t = 1_800_000_010;
        l.record_failure_at(a, Some("key1"), t);
        assert_eq!(l.key_blocked_at("key1", t), None);
        l.record_failure_at(b, Some("key1"), t + 5);
        assert_eq!(l.key_blocked_at("key1", t + 5), Some(45));
        assert_eq!(l.key_blocked_at("key2", t + 5), None);
        assert_eq!(l.address_blocked_at(a, t + 5), None);
        l.record_failure_at(a, None, t + 6);
        l.record_failure_at(a, None, t + 7);
        assert_eq!(l.address_blocked_at(a, t + 7), Some(43));
        assert_eq!(l.address_blocked_at(b, t + 7), None);
        assert_eq!(l.address_blocked_at(None, t + 7), None);
        // The next minute starts afresh.
        assert_eq!(l.address_blocked_at(a, t + 50), None);
        assert_eq!(l.key_blocked_at("key1", t + 50), None);
        // A long username counts by its first 64 characters, when recorded and when checked.
        let long = "k".repeat(100);
        l.record_failure_at(None, Some(&long), t);
        l.record_failure_at(None, Some(&long), t);
        assert_eq!(l.key_blocked_at(&long, t), Some(50));
        let off = FailedAuthLimiter::new(0, 0);
        for _ in 0..10 {
            off.record_failure_at(a, Some("k"), t);
        }
        assert_eq!(
            (off.address_blocked_at(a, t), off.key_blocked_at("k", t)),
            (None, None)
        );
    }
}
