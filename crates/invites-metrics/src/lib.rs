//! The service's Prometheus metrics: one [`Metrics`] per server, its handles passed to where
//! things happen (the edge, authentication, the rate limiter, the list cache), the store's own
//! [`StoreMetrics`] registered beside them, and [`Metrics::encode`] for `GET /metrics`.
//!
//! Built on `prometheus-client` (no global registry; the text is its Prometheus 0.0.4 encoder).
//! Recording is meant for the hot path: every label set that requests use is resolved once, when
//! the server starts (operations from the OpenAPI document, a fixed list of authentication
//! failure reasons), so a request moves atomics (and a histogram's short lock) and allocates
//! nothing. Every series exists from the start, at zero.

use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

/// The `Content-Type` of what [`Metrics::encode`] writes (the Prometheus text format 0.0.4).
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Upper bounds of the request latency buckets, in seconds.
const LATENCY_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0,
];
/// Upper bounds of the writer's batch size buckets, in jobs (a batch holds at most 128).
const BATCH_BUCKETS: [f64; 8] = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0];
/// Upper bounds of the writer's commit latency buckets, in seconds.
const COMMIT_BUCKETS: [f64; 13] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
];

/// The status classes of the requests counter, by `status / 100 - 1`.
const STATUS_CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

type RequestLabels = [(&'static str, String); 3];
type OperationLabel = [(&'static str, String); 1];
type PoolLabel = [(&'static str, &'static str); 1];

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

fn batch_histogram() -> Histogram {
    Histogram::new(BATCH_BUCKETS)
}

fn commit_histogram() -> Histogram {
    Histogram::new(COMMIT_BUCKETS)
}

/// A family of histograms by removal queue (the `queue` label).
type QueueHistograms = Family<PoolLabel, Histogram, fn() -> Histogram>;

/// Why a request's credentials were not accepted (the `reason` label of
/// `invites_auth_failures_total`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthFailure {
    /// No `Authorization` header (the first request of every Digest exchange).
    Missing,
    /// A header that cannot be read or parsed, or a Bearer token of impossible length.
    Malformed,
    /// A scheme this API family does not take.
    Scheme,
    /// A Bearer token unknown or expired.
    TokenInvalid,
    /// A live Bearer token of the other family (a user's on Atlas, a service account's on the
    /// community API).
    TokenWrongFamily,
    /// A Digest answer for a key that does not exist.
    UnknownKey,
    /// A wrong Digest response (a wrong private key).
    WrongResponse,
    /// An expired Digest nonce (the client retries with the new one).
    StaleNonce,
    /// A Digest nonce count already used.
    Replayed,
    /// Any other Digest parameter refused: realm, qop, algorithm, uri, nonce or opaque.
    DigestRefused,
    /// A key used from an address off its access list.
    AccessList,
}

impl AuthFailure {
    /// Every reason, in the order of their counters.
    pub const ALL: [AuthFailure; 11] = [
        AuthFailure::Missing,
        AuthFailure::Malformed,
        AuthFailure::Scheme,
        AuthFailure::TokenInvalid,
        AuthFailure::TokenWrongFamily,
        AuthFailure::UnknownKey,
        AuthFailure::WrongResponse,
        AuthFailure::StaleNonce,
        AuthFailure::Replayed,
        AuthFailure::DigestRefused,
        AuthFailure::AccessList,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthFailure::Missing => "missing",
            AuthFailure::Malformed => "malformed",
            AuthFailure::Scheme => "scheme",
            AuthFailure::TokenInvalid => "token_invalid",
            AuthFailure::TokenWrongFamily => "token_wrong_family",
            AuthFailure::UnknownKey => "unknown_key",
            AuthFailure::WrongResponse => "wrong_response",
            AuthFailure::StaleNonce => "stale_nonce",
            AuthFailure::Replayed => "replayed",
            AuthFailure::DigestRefused => "digest_refused",
            AuthFailure::AccessList => "access_list",
        }
    }
}

/// What a lockout refused on (the `by` label of `invites_auth_lockouts_total`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lockout {
    /// The client address failed too often this minute.
    Address,
    /// The API key (Digest username) failed too often this minute.
    Key,
}

/// The handles of one operation: its request counters by status class and its latency.
#[derive(Clone, Debug)]
pub struct OperationMetrics {
    by_class: [Counter; 5],
    latency: Histogram,
}

impl OperationMetrics {
    /// Counts one answered request with `status`, which took `elapsed`.
    pub fn record(&self, status: u16, elapsed: Duration) {
        let class = (status / 100).clamp(1, 5) as usize - 1;
        self.by_class[class].inc();
        self.latency.observe(elapsed.as_secs_f64());
    }
}

/// Decrements the in-flight gauge when the request is done (or dropped half-way).
#[derive(Debug)]
pub struct InFlight<'a>(&'a Gauge);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// What the store records: the SQLite writer thread, the connection pools. The store keeps one
/// from its opening (recording costs a few atomics per batch or per wait) and the server
/// registers it with its [`Metrics`]; clones share the values.
#[derive(Clone, Debug)]
pub struct StoreMetrics {
    /// Jobs queued for the writer thread, not yet taken (set when scraped).
    pub writer_queue_depth: Gauge,
    /// Jobs per writer transaction.
    pub writer_batch_size: Histogram,
    /// How long each writer batch took from its first statement to its commit, in seconds.
    pub writer_commit_seconds: Histogram,
    /// Connections open in each pool (set when scraped).
    pub pool_size: Family<PoolLabel, Gauge>,
    /// Connections idle in each pool (set when scraped).
    pub pool_idle: Family<PoolLabel, Gauge>,
    /// Acquisitions that had to wait for a connection, per pool.
    pub pool_waits: Family<PoolLabel, Counter>,
    /// Time spent waiting for a connection, per pool, in seconds.
    pub pool_wait_seconds: Family<PoolLabel, Counter<f64, AtomicU64>>,
    /// The removal queues' batches (see [`StoreMetrics::removal_batch_handles`]).
    pub removal_batches: BatchFamilies,
    /// The PostgreSQL write queues' batches (see [`StoreMetrics::write_batch_handles`]).
    pub write_batches: BatchFamilies,
}

impl Default for StoreMetrics {
    fn default() -> Self {
        StoreMetrics {
            writer_queue_depth: Gauge::default(),
            writer_batch_size: batch_histogram(),
            writer_commit_seconds: commit_histogram(),
            pool_size: Family::default(),
            pool_idle: Family::default(),
            pool_waits: Family::default(),
            pool_wait_seconds: Family::default(),
            removal_batches: BatchFamilies::default(),
            write_batches: BatchFamilies::default(),
        }
    }
}

impl StoreMetrics {
    /// Sets a pool's size and idle gauges.
    pub fn set_pool(&self, pool: &'static str, size: u32, idle: usize) {
        self.pool_size
            .get_or_create(&[("pool", pool)])
            .set(size.into());
        self.pool_idle
            .get_or_create(&[("pool", pool)])
            .set(idle as i64);
    }

    /// The batch size and time histograms and the batches-allowed gauge of the removal queue
    /// `queue` (`removals`: Atlas and Ops Manager removals, both engines; `bulk_removals`:
    /// community bulk removals, PostgreSQL), resolved once by the queue when it starts, so its
    /// series exist from then on.
    pub fn removal_batch_handles(&self, queue: &'static str) -> BatchHandles {
        self.removal_batches.handles(queue)
    }

    /// The handles of a PostgreSQL write queue (`creates`: Atlas and Ops Manager invitation
    /// creates; `updates`: their updates), as [`StoreMetrics::removal_batch_handles`]'s of a
    /// removal queue.
    pub fn write_batch_handles(&self, queue: &'static str) -> BatchHandles {
        self.write_batches.handles(queue)
    }

    /// The wait counters of `pool`, resolved once by who records them.
    pub fn pool_wait_handles(&self, pool: &'static str) -> (Counter, Counter<f64, AtomicU64>) {
        (
            self.pool_waits.get_or_create_owned(&[("pool", pool)]),
            self.pool_wait_seconds
                .get_or_create_owned(&[("pool", pool)]),
        )
    }
}

/// The series of one kind of batching queue, by queue: batch sizes and times, and the batches
/// each may have in flight. A clone shares the series, as the families' clones do.
#[derive(Clone, Debug)]
pub struct BatchFamilies {
    /// Requests per batch.
    pub size: QueueHistograms,
    /// Time of each batch, in seconds.
    pub seconds: QueueHistograms,
    /// Batches the queue may have in flight now.
    pub allowed: Family<PoolLabel, Gauge>,
}

impl Default for BatchFamilies {
    fn default() -> Self {
        BatchFamilies {
            size: Family::new_with_constructor(batch_histogram as fn() -> _),
            seconds: Family::new_with_constructor(commit_histogram as fn() -> _),
            allowed: Family::default(),
        }
    }
}

impl BatchFamilies {
    /// `queue`'s series, resolved once by the queue when it starts, so they exist from then on.
    fn handles(&self, queue: &'static str) -> BatchHandles {
        let queue = [("queue", queue)];
        BatchHandles {
            allowed: self.allowed.get_or_create_owned(&queue),
            size: self.size.get_or_create_owned(&queue),
            seconds: self.seconds.get_or_create_owned(&queue),
        }
    }
}

/// A batching queue's batch histograms and gauge ([`StoreMetrics::removal_batch_handles`],
/// [`StoreMetrics::write_batch_handles`]).
#[derive(Clone, Debug)]
pub struct BatchHandles {
    size: Histogram,
    seconds: Histogram,
    allowed: Gauge,
}

impl BatchHandles {
    /// Records a batch of `requests` that took `took`.
    pub fn record(&self, requests: usize, took: Duration) {
        self.size.observe(requests as f64);
        self.seconds.observe(took.as_secs_f64());
    }

    /// Sets how many batches the queue may have in flight now.
    pub fn set_allowed(&self, batches: usize) {
        self.allowed.set(batches as i64);
    }
}

/// The metrics of one server.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<OperationLabel, Histogram>,
    in_flight: Gauge,
    auth_failures: [Counter; AuthFailure::ALL.len()],
    lockouts: [Counter; 2],
    rate_limited: Counter,
    list_cache: [Counter; 2],
}

impl Metrics {
    /// Every family registered, with `store`'s values beside the server's own.
    pub fn new(store: &StoreMetrics) -> Metrics {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "invites_http_requests",
            "HTTP requests answered, by operationId, API family and status class",
            requests.clone(),
        );
        let latency = Family::<OperationLabel, Histogram>::new_with_constructor(
            latency_histogram as fn() -> _,
        );
        registry.register(
            "invites_http_request_duration_seconds",
            "Time from a request's arrival to its answer's headers, by operationId",
            latency.clone(),
        );
        let in_flight = Gauge::default();
        registry.register(
            "invites_http_requests_in_flight",
            "Requests being answered",
            in_flight.clone(),
        );
        let by_reason = Family::<[(&'static str, &'static str); 1], Counter>::default();
        registry.register(
            "invites_auth_failures",
            "Requests whose credentials were missing or not accepted, by reason",
            by_reason.clone(),
        );
        let auth_failures =
            AuthFailure::ALL.map(|r| by_reason.get_or_create_owned(&[("reason", r.as_str())]));
        let by_subject = Family::<[(&'static str, &'static str); 1], Counter>::default();
        registry.register(
            "invites_auth_lockouts",
            "Requests refused for too many failed authentications this minute, by what failed",
            by_subject.clone(),
        );
        let lockouts = ["address", "key"].map(|by| by_subject.get_or_create_owned(&[("by", by)]));
        let rate_limited = Counter::default();
        registry.register(
            "invites_rate_limit_refusals",
            "Atlas requests refused (429) for a principal's per-minute rate limit",
            rate_limited.clone(),
        );
        let lookups = Family::<[(&'static str, &'static str); 1], Counter>::default();
        registry.register(
            "invites_list_cache_lookups",
            "Atlas and Ops Manager invitation lists served from the list cache (hit) or read (miss)",
            lookups.clone(),
        );
        let list_cache = ["hit", "miss"].map(|r| lookups.get_or_create_owned(&[("result", r)]));
        registry.register(
            "invites_sqlite_writer_queue_depth",
            "Jobs queued for the SQLite writer thread, not yet taken",
            store.writer_queue_depth.clone(),
        );
        registry.register(
            "invites_sqlite_writer_batch_size",
            "Jobs per SQLite writer transaction",
            store.writer_batch_size.clone(),
        );
        registry.register(
            "invites_sqlite_writer_commit_duration_seconds",
            "Time of each SQLite writer batch, from its first statement to its commit",
            store.writer_commit_seconds.clone(),
        );
        registry.register(
            "invites_removal_batch_size",
            "Removals per batch of a removal queue: removals (Atlas and Ops Manager, one statement \
             or writer job per batch) and bulk_removals (community bulk removals, PostgreSQL only)",
            store.removal_batches.size.clone(),
        );
        registry.register(
            "invites_removal_batch_duration_seconds",
            "Time of each removal batch, from its start to its answers (retries one by one included)",
            store.removal_batches.seconds.clone(),
        );
        registry.register(
            "invites_removal_batches_allowed",
            "Batches a removal queue may have in flight now: on PostgreSQL its share of the \
             deployment's, split between the replicas removing at once",
            store.removal_batches.allowed.clone(),
        );
        registry.register(
            "invites_write_batch_size",
            "Writes per batch of a write queue, PostgreSQL only (one statement per batch): \
             creates and updates (of Atlas and Ops Manager invitations)",
            store.write_batches.size.clone(),
        );
        registry.register(
            "invites_write_batch_duration_seconds",
            "Time of each write batch, from its start to its answers (runs one by one included)",
            store.write_batches.seconds.clone(),
        );
        registry.register(
            "invites_write_batches_allowed",
            "Batches a write queue may have in flight now: its share of the deployment's, split \
             between the replicas running the queue at once",
            store.write_batches.allowed.clone(),
        );
        registry.register(
            "invites_db_pool_connections",
            "Connections open in each database pool",
            store.pool_size.clone(),
        );
        registry.register(
            "invites_db_pool_idle_connections",
            "Connections idle in each database pool",
            store.pool_idle.clone(),
        );
        registry.register(
            "invites_db_pool_waits",
            "Acquisitions that waited for a connection, per pool",
            store.pool_waits.clone(),
        );
        registry.register(
            "invites_db_pool_wait_seconds",
            "Time spent waiting for a connection, per pool",
            store.pool_wait_seconds.clone(),
        );
        registry.register(
            "invites_build",
            "The running build",
            Info::new([("version", env!("CARGO_PKG_VERSION"))]),
        );
        Metrics {
            registry,
            requests,
            latency,
            in_flight,
            auth_failures,
            lockouts,
            rate_limited,
            list_cache,
        }
    }

    /// The handles of an operation (every status class's series is created, at zero).
    pub fn operation(&self, operation: &str, family: &str) -> OperationMetrics {
        let by_class = STATUS_CLASSES.map(|class| {
            self.requests.get_or_create_owned(&[
                ("operation", operation.to_owned()),
                ("family", family.to_owned()),
                ("status_class", class.to_owned()),
            ])
        });
        let latency = self
            .latency
            .get_or_create_owned(&[("operation", operation.to_owned())]);
        OperationMetrics { by_class, latency }
    }

    /// Counts a request in flight until the guard is dropped.
    pub fn in_flight(&self) -> InFlight<'_> {
        self.in_flight.inc();
        InFlight(&self.in_flight)
    }

    /// Counts a refused authentication.
    pub fn auth_failed(&self, reason: AuthFailure) {
        let index = AuthFailure::ALL
            .iter()
            .position(|r| *r == reason)
            .unwrap_or(0);
        self.auth_failures[index].inc();
    }

    /// Counts a request refused by a lockout.
    pub fn locked_out(&self, by: Lockout) {
        self.lockouts[by as usize].inc();
    }

    /// Counts a request refused by the rate limit.
    pub fn rate_limited(&self) {
        self.rate_limited.inc();
    }

    /// Counts a list cache lookup.
    pub fn list_cache(&self, hit: bool) {
        self.list_cache[usize::from(!hit)].inc();
    }

    /// Everything, in the Prometheus text format.
    pub fn encode(&self) -> String {
        let mut text = String::with_capacity(16 * 1024);
        prometheus_client::encoding::prometheus_text::encode(&mut text, &self.registry)
            .expect("writing to a String cannot fail");
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_values_show_in_the_text() {
        let store = StoreMetrics::default();
        let m = Metrics::new(&store);
        let op = m.operation("deleteOrgInvite", "atlas");
        op.record(204, Duration::from_millis(3));
        op.record(404, Duration::from_millis(1));
        m.auth_failed(AuthFailure::WrongResponse);
        m.locked_out(Lockout::Key);
        m.list_cache(false);
        store.writer_batch_size.observe(3.0);
        store.set_pool("sqlite_read", 4, 3);
        let bulk = store.removal_batch_handles("bulk_removals");
        bulk.record(3, Duration::from_millis(2));
        bulk.record(16, Duration::from_millis(7));
        bulk.set_allowed(1);
        let _removals = store.removal_batch_handles("removals");
        store
            .write_batch_handles("creates")
            .record(5, Duration::from_millis(3));
        let text = m.encode();
        for line in [
            "invites_http_requests_total{operation=\"deleteOrgInvite\",family=\"atlas\",status_class=\"2xx\"} 1",
            "invites_http_requests_total{operation=\"deleteOrgInvite\",family=\"atlas\",status_class=\"5xx\"} 0",
            "invites_http_request_duration_seconds_count{operation=\"deleteOrgInvite\"} 2",
            "invites_auth_failures_total{reason=\"wrong_response\"} 1",
            "invites_auth_failures_total{reason=\"missing\"} 0",
            "invites_auth_lockouts_total{by=\"key\"} 1",
            "invites_list_cache_lookups_total{result=\"miss\"} 1",
            "invites_sqlite_writer_batch_size_count 1",
            "invites_db_pool_connections{pool=\"sqlite_read\"} 4",
            "invites_removal_batch_size_sum{queue=\"bulk_removals\"} 19.0",
            "invites_removal_batch_size_count{queue=\"bulk_removals\"} 2",
            "invites_removal_batch_size_bucket{queue=\"bulk_removals\",le=\"4\"} 1",
            "invites_removal_batch_size_bucket{queue=\"bulk_removals\",le=\"16\"} 2",
            "invites_removal_batch_duration_seconds_count{queue=\"bulk_removals\"} 2",
            "invites_removal_batch_size_count{queue=\"removals\"} 0",
            "invites_removal_batches_allowed{queue=\"bulk_removals\"} 1",
            "invites_write_batch_size_sum{queue=\"creates\"} 5.0",
            "invites_write_batch_duration_seconds_count{queue=\"creates\"} 1",
            "invites_http_requests_in_flight 0",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing in:\n{text}");
        }
        assert!(text.contains(&format!(
            "invites_build_info{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        )));
        let guard = m.in_flight();
        assert!(m.encode().contains("invites_http_requests_in_flight 1"));
        drop(guard);
        assert!(m.encode().contains("invites_http_requests_in_flight 0"));
    }
}
