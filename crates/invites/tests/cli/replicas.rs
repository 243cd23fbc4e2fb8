//! Two `invites serve` processes over one PostgreSQL database, as behind a load balancer: a Digest
//! nonce issued by one is accepted by the other, a request replayed to either is refused, a
//! service-account token from one works on the
//! other, concurrent deletes of one invitation give exactly one 204 and one 404, and concurrent
//! overlapping bulk community removals never leave a half-done state; and the per-key rate limit
//! and the failed-authentication lockout hold for both together.
//!
//! Needs `INVITES_TEST_POSTGRES_URL` (a PostgreSQL server's maintenance database); the test
//! command starts a throwaway cluster and sets it. Without it each test says it was skipped and
//! passes, except under `CI=true`, where it fails (`support::postgres_url`).

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use crate::support::{
    community_manager_token, create_community_user, create_org_invitation, digest_header,
    fresh_database, invite_to_group, owner_api_key, pending_in_group, postgres_url, serve,
    service_account_token,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_over_one_postgres_database() {
    let Some(admin_url) = postgres_url("two_replicas_over_one_postgres_database") else {
        return;
    };
    let db = fresh_database(&admin_url, "replicas").await;
    let dir = tempfile::tempdir().unwrap();
    let creds_file = dir.path().join("demo.json");
    let a = serve(&db, &["--demo", "--demo-out", creds_file.to_str().unwrap()]);
    // B with pools of 4 (`--database-connections`) and one worker thread (`--worker-threads`,
    // the current-thread scheduler), a replica's share beside another: it serves everything
    // below as A, with 8 and a thread per core, does.
    let b = serve(
        &db,
        &["--database-connections", "4", "--worker-threads", "1"],
    );
    let demo: Value = serde_json::from_str(&std::fs::read_to_string(&creds_file).unwrap()).unwrap();
    let client = reqwest::Client::new();
    let org = demo["org_id"].as_str().unwrap();
    let (user, pass) = owner_api_key(&demo);
    let (user, pass) = (user.as_str(), pass.as_str());

    // A nonce issued by A answers a challenge on B.
    let path = format!(
        "/api/atlas/v2/orgs/{org}/invites/{}",
        demo["pending_org_invitation_id"].as_str().unwrap()
    );
    let r = client
        .get(format!("{}{path}", a.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let challenge = r.headers()["www-authenticate"].to_str().unwrap().to_owned();
    let r = client
        .delete(format!("{}{path}", b.base))
        .header(
            "Authorization",
            digest_header(&challenge, user, pass, "DELETE", &path),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204, "B accepts A's nonce");
    // The same request again, to either replica, is a replay: refused before it reaches the
    // operation (a 401, not the 404 of an invitation already gone).
    let replay = digest_header(&challenge, user, pass, "DELETE", &path);
    for (name, base) in [("A", &a.base), ("B", &b.base)] {
        let r = client
            .delete(format!("{base}{path}"))
            .header("Authorization", &replay)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{name} refuses the replayed nonce count");
        let body: Value = r.json().await.unwrap();
        assert_eq!(
            body["detail"], "The Digest nonce count was already used.",
            "{name}: {body}"
        );
    }

    // A service-account token issued by A works on B.
    let token = service_account_token(&client, &a.base, &demo).await;
    let r = client
        .get(format!("{}/api/atlas/v2/orgs/{org}/invites", b.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "B accepts A's token");

    // Concurrent deletes of one invitation through both: exactly one 204 and one 404.
    for round in 0..10 {
        let username = format!("race{round}@example.com");
        let id = create_org_invitation(&client, &a.base, org, &token, &username).await;
        let delete = |base: String| {
            let client = client.clone();
            let token = token.clone();
            let id = id.clone();
            async move {
                client
                    .delete(format!("{base}/api/atlas/v2/orgs/{org}/invites/{id}"))
                    .bearer_auth(token)
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16()
            }
        };
        let (x, y) = tokio::join!(delete(a.base.clone()), delete(b.base.clone()));
        let mut statuses = [x, y];
        statuses.sort_unstable();
        assert_eq!(statuses, [204, 404], "round {round}");
    }

    // Concurrent overlapping bulk removals: each all or nothing, never half-done.
    let group = demo["community_group_id"].as_i64().unwrap();
    let manager = community_manager_token(&demo);
    let users: Vec<i64> = (0..6)
        .map(|i| create_community_user(&db, &format!("bulk{i}@example.com")))
        .collect();
    let invite_path = format!("/api/v2/group/{group}/invite/");
    for round in 0..10 {
        invite_to_group(&client, &a.base, group, &manager, &users).await;
        let first: Vec<i64> = users[..4].to_vec();
        let second: Vec<i64> = users[2..].to_vec();
        let remove = |base: String, ids: Vec<i64>| {
            let client = client.clone();
            let manager = manager.clone();
            let invite_path = invite_path.clone();
            async move {
                client
                    .delete(format!("{base}{invite_path}"))
                    .bearer_auth(manager)
                    .json(&json!({ "users": ids }))
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16()
            }
        };
        let (x, y) = tokio::join!(
            remove(a.base.clone(), first.clone()),
            remove(b.base.clone(), second.clone())
        );
        let left: BTreeSet<i64> = pending_in_group(&client, &a.base, group, &manager)
            .await
            .into_iter()
            .filter(|id| users.contains(id))
            .collect();
        let all: BTreeSet<i64> = users.iter().copied().collect();
        let minus = |s: &[i64]| -> BTreeSet<i64> {
            all.difference(&s.iter().copied().collect())
                .copied()
                .collect()
        };
        // The two lists overlap, so at most one can succeed; whichever did removed all of its
        // users, the other removed none.
        match (x, y) {
            (204, 400) => assert_eq!(left, minus(&first), "round {round}"),
            (400, 204) => assert_eq!(left, minus(&second), "round {round}"),
            other => panic!("round {round}: statuses {other:?}, still pending {left:?}"),
        }
    }
    drop((a, b));
}

/// Sleeps into the next minute unless at least `needed` of the current one is left: the limits
/// count in windows of the wall clock's minutes, and a phase that straddled two would be counted
/// twice over.
async fn within_one_window(needed: Duration) {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let into = Duration::from_millis((now.as_millis() % 60_000) as u64);
    let left = Duration::from_secs(60) - into;
    if left < needed {
        tokio::time::sleep(left + Duration::from_millis(500)).await;
    }
}

/// How long a replica may take to see another's counts: two merge intervals (100 ms each) and
/// room for a busy machine.
const MERGED: Duration = Duration::from_millis(300);

/// The per-key rate limit and the failed-authentication lockout count for the two replicas
/// together, not for each: a key limited to 60 a minute gets about 60 answers from both, and a
/// guesser spread over both is locked out at the configured number of failures.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_hold_across_two_replicas() {
    let Some(admin_url) = postgres_url("limits_hold_across_two_replicas") else {
        return;
    };
    let db = fresh_database(&admin_url, "replica_limits").await;
    let dir = tempfile::tempdir().unwrap();
    let creds_file = dir.path().join("demo.json");
    let limits = [
        "--rate-limit-per-minute",
        "60",
        "--failed-auth-per-key",
        "6",
        "--failed-auth-per-address",
        "10",
    ];
    let mut first = vec!["--demo", "--demo-out", creds_file.to_str().unwrap()];
    first.extend(limits);
    let a = serve(&db, &first);
    // B on one worker thread, as replicas sharing a host's cores are sized.
    let b = serve(&db, &[&limits[..], &["--worker-threads", "1"]].concat());
    let demo: Value = serde_json::from_str(&std::fs::read_to_string(&creds_file).unwrap()).unwrap();
    let client = reqwest::Client::new();
    let org = demo["org_id"].as_str().unwrap();
    let token = service_account_token(&client, &a.base, &demo).await;
    let path = format!("/api/atlas/v2/orgs/{org}/invites");
    let bases = [&a.base, &b.base];

    // The rate limit: 140 requests of one service account, alternating between the replicas at
    // about 40 a second. Counted per replica, 120 would pass. Counted together, 60 pass, and a
    // few more at most: a replica learns the other's counts within a merge interval (100 ms) and
    // its round trip, in which this client sends about 5 requests; 10 allows for a merge delayed
    // on a busy machine. Never fewer than 60: a replica refuses only once the counts it knows,
    // which never exceed the true total, reach the limit.
    within_one_window(Duration::from_secs(20)).await;
    let mut ok = [0u32; 2];
    let mut limited = [0u32; 2];
    for i in 0..140 {
        let r = client
            .get(format!("{}{path}", bases[i % 2]))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        match r.status().as_u16() {
            200 => ok[i % 2] += 1,
            429 => {
                let body: Value = r.json().await.unwrap();
                assert_eq!(body["errorCode"], "RATE_LIMITED", "{body}");
                limited[i % 2] += 1;
            }
            other => panic!("request {i}: status {other}"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let served = ok[0] + ok[1];
    eprintln!("rate limit 60: answered {ok:?} (A, B), refused {limited:?}");
    assert!(
        (60..=70).contains(&served),
        "answered {ok:?} (A, B), refused {limited:?}: {served} in all where the limit is 60"
    );
    assert!(
        ok.iter().all(|n| *n < 60) && limited.iter().all(|n| *n > 0),
        "each replica refused before it had answered 60 itself: answered {ok:?}, refused {limited:?}"
    );

    // The lockout: 6 wrong Digest passwords for one key, alternating (3 on each replica, each
    // after the last was merged, so the count is exact), lock the key out on both, even with
    // the right password.
    within_one_window(Duration::from_secs(20)).await;
    let (user, pass) = owner_api_key(&demo);
    let (user, pass) = (user.as_str(), pass.as_str());
    let digest = |base: String, password: String| {
        let client = client.clone();
        let path = path.clone();
        let user = user.to_owned();
        async move {
            let r = client.get(format!("{base}{path}")).send().await.unwrap();
            assert_eq!(r.status(), 401);
            let challenge = r.headers()["www-authenticate"].to_str().unwrap().to_owned();
            let r = client
                .get(format!("{base}{path}"))
                .header(
                    "Authorization",
                    digest_header(&challenge, &user, &password, "GET", &path),
                )
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap())
        }
    };
    for i in 0..6 {
        let (status, body) = digest(bases[i % 2].clone(), format!("wrong-{i}")).await;
        assert_eq!(status, 401, "guess {i}: {body}");
        tokio::time::sleep(MERGED).await;
    }
    for (name, base) in [("A", &a.base), ("B", &b.base)] {
        let (status, body) = digest(base.clone(), pass.to_owned()).await;
        assert_eq!(
            status, 429,
            "{name} locks the key out after 6 failures in all: {body}"
        );
        assert!(
            body["detail"]
                .as_str()
                .unwrap()
                .starts_with("Too many failed authentication attempts"),
            "{name}: {body}"
        );
    }

    // The address: those 6 failures and 4 invalid Bearer tokens make 10, the per-address limit,
    // after which even the valid token is refused on both.
    for i in 0..4 {
        let r = client
            .get(format!("{}{path}", bases[i % 2]))
            .bearer_auth(format!("not-a-token-{i}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "invalid token {i}");
        tokio::time::sleep(MERGED).await;
    }
    for (name, base) in [("A", &a.base), ("B", &b.base)] {
        let r = client
            .get(format!("{base}{path}"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 429, "{name}");
        let body: Value = r.json().await.unwrap();
        assert!(
            body["detail"]
                .as_str()
                .unwrap()
                .starts_with("Too many failed authentication attempts"),
            "{name} locks the address out after 10 failures in all: {body}"
        );
    }
    drop((a, b));
}
