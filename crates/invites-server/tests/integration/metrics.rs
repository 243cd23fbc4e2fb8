//! The metrics listener: `GET /metrics` parsed by a Prometheus text parser (`prometheus-parse`),
//! its counters moving by what a known sequence of requests did, and nothing on the public port.

use prometheus_parse::{Scrape, Value};
use reqwest::{Method, StatusCode};

use crate::support::{TestServer, VND};

/// The samples of one scrape.
async fn scrape(s: &TestServer) -> Scrape {
    let url = format!(
        "{}/metrics",
        s.metrics.as_deref().expect("a metrics listener")
    );
    let r = s.client.get(url).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        r.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let text = r.text().await.unwrap();
    Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).unwrap()
}

/// The value of the counter, gauge or untyped sample `name` with exactly `labels`.
fn value(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    let sample = scrape
        .samples
        .iter()
        .find(|s| {
            s.metric == name
                && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v))
                && s.labels.len() == labels.len()
        })
        .unwrap_or_else(|| panic!("no sample {name} {labels:?}"));
    match sample.value {
        Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => v,
        _ => panic!("{name} is not a single value"),
    }
}

/// The buckets of histogram `name` with `labels`: (upper bound, cumulative count).
fn buckets(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> Vec<(f64, f64)> {
    let sample = scrape
        .samples
        .iter()
        .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .unwrap_or_else(|| panic!("no histogram {name} {labels:?}"));
    match &sample.value {
        Value::Histogram(b) => b.iter().map(|b| (b.less_than, b.count)).collect(),
        _ => panic!("{name} is not a histogram"),
    }
}

fn requests(scrape: &Scrape, operation: &str, family: &str, class: &str) -> f64 {
    value(
        scrape,
        "invites_http_requests_total",
        &[
            ("operation", operation),
            ("family", family),
            ("status_class", class),
        ],
    )
}

#[tokio::test]
async fn metrics_count_what_the_server_did() {
    let s = TestServer::start_with_metrics().await;
    let before = scrape(&s).await;

    let org = s.demo.org_id.clone();
    // Digest: the bare request's challenge (401, no credentials), then the answer (200).
    let invitation = format!(
        "/api/atlas/v2/orgs/{org}/invites/{}",
        s.demo.pending_org_invitation_id
    );
    let r = s.digest(Method::GET, &invitation, &s.key("owner")).await;
    assert_eq!(r.status(), StatusCode::OK);
    // Bearer: a service account's token, then the organization's list twice (read, then kept).
    let token = s.service_account_token().await;
    let list = s.url(&format!("/api/atlas/v2/orgs/{org}/invites"));
    for _ in 0..2 {
        let r = s
            .client
            .get(&list)
            .bearer_auth(&token)
            .header("Accept", VND)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
    }
    // A token nobody issued.
    let r = s
        .client
        .get(&list)
        .bearer_auth("not-a-token")
        .header("Accept", VND)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // A community bulk removal, through the SQLite writer thread.
    let users = &s.demo.invited_user_ids;
    let r = s
        .client
        .delete(s.url(&format!(
            "/api/v2/group/{}/invite/",
            s.demo.community_group_id
        )))
        .bearer_auth(s.user_token("manager"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(format!("users={}&users={}", users[0], users[1]))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    // The invitation read above removed, through the removal queue.
    let r = s
        .client
        .delete(s.url(&invitation))
        .bearer_auth(&token)
        .header("Accept", VND)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    // Metrics are not served on the public port: a 404 like any unknown path.
    let r = s.anonymous(Method::GET, "/metrics").await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

    let after = scrape(&s).await;
    let moved = |name: &str, labels: &[(&str, &str)]| {
        value(&after, name, labels) - value(&before, name, labels)
    };
    let requests_moved = |op: &str, family: &str, class: &str| {
        requests(&after, op, family, class) - requests(&before, op, family, class)
    };
    assert_eq!(requests_moved("getOrgInvite", "atlas", "2xx"), 1.0);
    assert_eq!(requests_moved("getOrgInvite", "atlas", "4xx"), 1.0);
    assert_eq!(requests_moved("listOrgInvites", "atlas", "2xx"), 2.0);
    assert_eq!(requests_moved("listOrgInvites", "atlas", "4xx"), 1.0);
    assert_eq!(requests_moved("listOrgInvites", "atlas", "5xx"), 0.0);
    assert_eq!(
        requests_moved("createServiceAccountToken", "service", "2xx"),
        1.0
    );
    assert_eq!(
        requests_moved("removeGroupInvitations", "community", "2xx"),
        1.0
    );
    assert_eq!(requests_moved("unmatched", "none", "4xx"), 1.0);
    assert_eq!(
        moved("invites_auth_failures_total", &[("reason", "missing")]),
        1.0
    );
    assert_eq!(
        moved(
            "invites_auth_failures_total",
            &[("reason", "token_invalid")]
        ),
        1.0
    );
    assert_eq!(
        moved(
            "invites_auth_failures_total",
            &[("reason", "wrong_response")]
        ),
        0.0
    );
    assert_eq!(
        moved("invites_list_cache_lookups_total", &[("result", "miss")]),
        1.0
    );
    assert_eq!(
        moved("invites_list_cache_lookups_total", &[("result", "hit")]),
        1.0
    );
    assert_eq!(moved("invites_rate_limit_refusals_total", &[]), 0.0);
    assert_eq!(value(&after, "invites_http_requests_in_flight", &[]), 0.0);

    // Latency: the list's three requests, in cumulative buckets ending at +Inf.
    let latency = buckets(
        &after,
        "invites_http_request_duration_seconds",
        &[("operation", "listOrgInvites")],
    );
    assert!(latency.len() > 5, "{latency:?}");
    assert!(latency
        .windows(2)
        .all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1));
    assert_eq!(latency.last().unwrap(), &(f64::INFINITY, 3.0));
    assert_eq!(
        moved(
            "invites_http_request_duration_seconds_count",
            &[("operation", "listOrgInvites")]
        ),
        3.0
    );
    // The writer committed the removal (and the demo's own writes before it).
    let batches = buckets(&after, "invites_sqlite_writer_batch_size", &[]);
    assert!(batches.last().unwrap().1 >= 1.0, "{batches:?}");
    assert!(moved("invites_sqlite_writer_batch_size_count", &[]) >= 1.0);
    assert!(moved("invites_sqlite_writer_commit_duration_seconds_count", &[]) >= 1.0);
    assert!(value(&after, "invites_sqlite_writer_queue_depth", &[]) >= 0.0);
    // The removal queue: the one removal, a batch of one. SQLite has no bulk removal queue.
    let removals = [("queue", "removals")];
    assert_eq!(moved("invites_removal_batch_size_count", &removals), 1.0);
    assert_eq!(moved("invites_removal_batch_size_sum", &removals), 1.0);
    assert_eq!(
        moved("invites_removal_batch_duration_seconds_count", &removals),
        1.0
    );
    // One writer thread: one batch at a time.
    assert_eq!(
        value(&after, "invites_removal_batches_allowed", &removals),
        1.0
    );
    assert!(!after
        .samples
        .iter()
        .any(|s| s.labels.get("queue") == Some("bulk_removals")));
    // The pools, read when scraped.
    assert!(
        value(
            &after,
            "invites_db_pool_connections",
            &[("pool", "sqlx_read")]
        ) >= 1.0
    );
    assert!(
        value(
            &after,
            "invites_db_pool_connections",
            &[("pool", "sqlite_readers")]
        ) >= 1.0
    );
    assert!(
        value(
            &after,
            "invites_db_pool_idle_connections",
            &[("pool", "sqlx_write")]
        ) >= 0.0
    );
    // Every pool's waits are counted, off the hot paths as on them.
    for pool in ["sqlx_read", "sqlx_write", "sqlite_readers"] {
        for name in [
            "invites_db_pool_waits_total",
            "invites_db_pool_wait_seconds_total",
        ] {
            assert!(value(&after, name, &[("pool", pool)]) >= 0.0);
        }
    }
    assert_eq!(
        value(
            &after,
            "invites_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        1.0
    );
    // A metrics listener answers nothing else.
    let r = s
        .client
        .get(format!(
            "{}/api/atlas/v2/orgs/{org}/invites",
            s.metrics.as_deref().unwrap()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    s.stop().await;
}

#[tokio::test]
async fn without_a_metrics_listener_there_is_none() {
    let s = TestServer::start().await;
    assert_eq!(s.metrics, None);
    let r = s.anonymous(Method::GET, "/metrics").await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    s.stop().await;
}
