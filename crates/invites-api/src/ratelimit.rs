//! Per-principal rate limiting of the Atlas family, and the headers that go with it: `RateLimit-Limit`
//! and `RateLimit-Remaining` on answers, 429 `RATE_LIMITED` with `Retry-After` past the limit,
//! `Deprecation`/`Sunset` on the deprecated invitation operations, and the versioned media type on
//! bodiless 204 answers.
//!
//! The limit is a fixed one-minute window of the wall clock per principal, counted in memory
//! ([`crate::limits`]) and, over PostgreSQL, merged with the other replicas' counts every 100 ms,
//! so it holds for the deployment. Handlers read the counts from [`RateInfo`] to fill the
//! documented response headers.

use invites_domain::{Error, ObjectId, Principal};
use poem::http::{header, HeaderName, HeaderValue};
use poem::{Endpoint, IntoResponse, Middleware, Request, Response};

use crate::error::error_response;

use crate::limits::{unix_secs, until_next_window, window_of, WindowCounts};

/// `RateLimit-Limit` and `RateLimit-Remaining` for this request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateInfo {
    pub limit: i64,
    pub remaining: i64,
}

/// The counters.
pub struct Limiter {
    per_minute: u64,
    counts: WindowCounts<ObjectId>,
    /// Where refusals are counted.
    metrics: Option<std::sync::Arc<invites_metrics::Metrics>>,
}

/// What the limiter decided.
#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    Allowed(RateInfo),
    /// Over the limit; retry after this many seconds.
    Limited {
        limit: i64,
        retry_after: u64,
    },
}

impl Limiter {
    /// A limiter allowing `per_minute` requests per principal per minute.
    pub fn new(per_minute: u64) -> Self {
        Limiter {
            per_minute: per_minute.max(1),
            counts: WindowCounts::default(),
            metrics: None,
        }
    }

    /// Counts its refusals in `metrics`.
    pub fn with_metrics(
        mut self,
        metrics: Option<std::sync::Arc<invites_metrics::Metrics>>,
    ) -> Self {
        self.metrics = metrics;
        self
    }

    pub fn per_minute(&self) -> u64 {
        self.per_minute
    }

    /// The counts (for the merge with other replicas').
    pub(crate) fn counts(&self) -> &WindowCounts<ObjectId> {
        &self.counts
    }

    /// Counts one request of `who` at `secs` (UNIX time).
    pub fn check_at(&self, who: ObjectId, secs: u64) -> Decision {
        let limit = self.per_minute as i64;
        match self.counts.add_below(who, window_of(secs), self.per_minute) {
            Ok(count) => Decision::Allowed(RateInfo {
                limit,
                remaining: self.per_minute.saturating_sub(count) as i64,
            }),
            Err(_) => Decision::Limited {
                limit,
                retry_after: until_next_window(secs),
            },
        }
    }

    pub fn check(&self, who: ObjectId) -> Decision {
        self.check_at(who, unix_secs())
    }
}

/// Sunset of the deprecated invitation operations (`x-sunset: 2027-07-01` in the contract).
pub const SUNSET: &str = "Thu, 01 Jul 2027 00:00:00 GMT";
/// RFC 9745 `Deprecation` date: the contract marks the operations deprecated without a date, so
/// this is the date this service adopted (2025-01-01T00:00:00Z); replace it if Atlas publishes one.
pub const DEPRECATION: &str = "@1735689600";

/// The middleware; runs after authentication, on Atlas paths.
pub struct RateLimit(pub std::sync::Arc<Limiter>);

impl<E: Endpoint> Middleware<E> for RateLimit {
    type Output = RateLimitEndpoint<E>;

    fn transform(&self, ep: E) -> Self::Output {
        RateLimitEndpoint {
            inner: ep,
            limiter: self.0.clone(),
        }
    }
}

pub struct RateLimitEndpoint<E> {
    inner: E,
    limiter: std::sync::Arc<Limiter>,
}

fn set(resp: &mut Response, name: &'static str, value: impl Into<HeaderValue>) {
    resp.headers_mut()
        .insert(HeaderName::from_static(name), value.into());
}

impl<E: Endpoint> Endpoint for RateLimitEndpoint<E> {
    type Output = Response;

    async fn call(&self, mut req: Request) -> poem::Result<Response> {
        if !req.uri().path().starts_with("/api/atlas/") {
            return self.inner.call(req).await.map(IntoResponse::into_response);
        }
        let Some(who) = req.extensions().get::<Principal>().map(|p| p.id) else {
            return self.inner.call(req).await.map(IntoResponse::into_response);
        };
        let mut resp = match self.limiter.check(who) {
            Decision::Allowed(info) => {
                req.extensions_mut().insert(info);
                match self.inner.call(req).await {
                    Ok(r) => r.into_response(),
                    Err(e) => return Err(e),
                }
            }
            Decision::Limited { limit, retry_after } => {
                if let Some(metrics) = &self.limiter.metrics {
                    metrics.rate_limited();
                }
                let mut resp = error_response(&Error::rate_limited(limit, retry_after));
                set(&mut resp, "ratelimit-limit", HeaderValue::from(limit));
                set(&mut resp, "ratelimit-remaining", HeaderValue::from(0));
                resp
            }
        };
        set(
            &mut resp,
            "deprecation",
            HeaderValue::from_static(DEPRECATION),
        );
        set(&mut resp, "sunset", HeaderValue::from_static(SUNSET));
        // The contract declares the versioned media type on the bodiless 204 too.
        if resp.status() == poem::http::StatusCode::NO_CONTENT {
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(crate::atlas::ATLAS_MEDIA_TYPE),
            );
        }
        Ok(resp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_principal_per_minute() {
        let l = Limiter::new(2);
        let a = ObjectId::from_bytes([1; 12]);
        let b = ObjectId::from_bytes([2; 12]);
        assert_eq!(
            l.check_at(a, 0),
            Decision::Allowed(RateInfo {
                limit: 2,
                remaining: 1
            })
        );
        assert_eq!(
            l.check_at(a, 10),
            Decision::Allowed(RateInfo {
                limit: 2,
                remaining: 0
            })
        );
        assert_eq!(
            l.check_at(a, 15),
            Decision::Limited {
                limit: 2,
                retry_after: 45
            }
        );
        assert_eq!(
            l.check_at(b, 15),
            Decision::Allowed(RateInfo {
                limit: 2,
                remaining: 1
            })
        );
        assert_eq!(
            l.check_at(a, 60),
            Decision::Allowed(RateInfo {
                limit: 2,
                remaining: 1
            })
        );
    }
}
