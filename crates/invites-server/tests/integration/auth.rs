//! Authentication: Digest challenges, bad and malformed credentials, stale and replayed nonces,
//! service-account tokens and community Bearer tokens.

use std::time::Duration;

use reqwest::{Method, StatusCode};

use crate::support::{api_error, challenge_param, DigestAnswer, TestServer, VND};

fn org_invites(s: &TestServer) -> String {
    format!("/api/atlas/v2/orgs/{}/invites", s.demo.org_id)
}

#[tokio::test]
async fn no_credentials_get_a_digest_challenge() {
    let s = TestServer::start().await;
    let r = s.anonymous(Method::GET, &org_invites(&s)).await;
    let challenge = r.headers()["www-authenticate"].to_str().unwrap().to_owned();
    assert!(
        challenge.starts_with("Digest realm=\"MMS Public API\""),
        "{challenge}"
    );
    assert_eq!(challenge_param(&challenge, "qop").as_deref(), Some("auth"));
    assert_eq!(
        challenge_param(&challenge, "algorithm").as_deref(),
        Some("MD5")
    );
    assert_eq!(
        challenge_param(&challenge, "stale").as_deref(),
        Some("false")
    );
    let nonce = challenge_param(&challenge, "nonce").unwrap();
    assert!(!nonce.contains(',') && !nonce.contains('"'));
    let body = api_error(r, 401, "NOT_AUTHENTICATED").await;
    insta::assert_json_snapshot!("no_credentials", body);
    s.stop().await;
}

#[tokio::test]
async fn the_right_key_is_let_in() {
    let s = TestServer::start().await;
    let r = s
        .digest(Method::GET, &org_invites(&s), &s.key("owner"))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], VND);
    s.stop().await;
}

#[tokio::test]
async fn a_wrong_private_key_is_refused() {
    let s = TestServer::start().await;
    let (public, _) = s.key("owner");
    let r = s
        .digest(Method::GET, &org_invites(&s), &(public, "wrong".into()))
        .await;
    assert!(r.headers().contains_key("www-authenticate"));
    let body = api_error(r, 401, "NOT_AUTHENTICATED").await;
    insta::assert_json_snapshot!("wrong_private_key", body);
    s.stop().await;
}

#[tokio::test]
async fn an_unknown_public_key_is_refused_like_a_wrong_secret() {
    let s = TestServer::start().await;
    let r = s
        .digest(
            Method::GET,
            &org_invites(&s),
            &("nosuchky".into(), "x".into()),
        )
        .await;
    let body = api_error(r, 401, "NOT_AUTHENTICATED").await;
    assert_eq!(body["detail"], "You are not authorized for this resource.");
    s.stop().await;
}

#[tokio::test]
async fn malformed_authorization_headers_are_401_with_a_reason() {
    let s = TestServer::start().await;
    let path = org_invites(&s);
    let cases = [
        ("Digest username=\"unterminated", "The Authorization header is malformed."),
        ("Digest realm=\"MMS Public API\"", "The Authorization header is malformed."),
        ("Basic dXNlcjpwYXNz", "The Authorization scheme is not accepted here."),
        ("", "The Authorization scheme is not accepted here."),
        (
            "Digest username=\"a\", realm=\"elsewhere\", nonce=\"n\", uri=\"/\", response=\"r\", qop=auth, nc=00000001, cnonce=\"c\"",
            "The Digest realm must be \"MMS Public API\".",
        ),
    ];
    for (header, detail) in cases {
        let r = s
            .client
            .get(s.url(&path))
            .header("Authorization", header)
            .send()
            .await
            .unwrap();
        assert!(r.headers().contains_key("www-authenticate"), "{header}");
        let body = api_error(r, 401, "NOT_AUTHENTICATED").await;
        assert_eq!(body["detail"], detail, "for header {header:?}");
    }
    s.stop().await;
}

#[tokio::test]
async fn the_digest_uri_must_be_the_request_target() {
    let s = TestServer::start().await;
    let path = org_invites(&s);
    let challenge = s.challenge(&path).await;
    let answer = DigestAnswer::new(&challenge, &s.key("owner").0, &s.key("owner").1);
    // Signed for another path, sent to this one: a replay across paths.
    let header = answer.header(
        "GET",
        &format!("/api/atlas/v2/orgs/{}/invites", s.foreign_org),
        1,
    );
    let r = s
        .client
        .get(s.url(&path))
        .header("Authorization", header)
        .send()
        .await
        .unwrap();
    let body = api_error(r, 401, "NOT_AUTHENTICATED").await;
    assert_eq!(
        body["detail"],
        "The Digest uri does not match the request target."
    );
    s.stop().await;
}

#[tokio::test]
async fn a_replayed_nonce_count_is_refused_and_increasing_counts_pass() {
    let s = TestServer::start().await;
    let path = org_invites(&s);
    let key = s.key("owner");
    let answer = DigestAnswer::new(&s.challenge(&path).await, &key.0, &key.1);
    let send = |nc: u32| {
        let header = answer.header("GET", &path, nc);
        let req = s.client.get(s.url(&path)).header("Authorization", header);
        async move { req.send().await.unwrap() }
    };
    assert_eq!(send(1).await.status(), StatusCode::OK);
    let r = send(1).await;
    assert_eq!(
        challenge_param(r.headers()["www-authenticate"].to_str().unwrap(), "stale").as_deref(),
        Some("false")
    );
    let body = api_error(r, 401, "NOT_AUTHENTICATED").await;
    insta::assert_json_snapshot!("replayed_nonce_count", body);
    // Clients that keep one counter across nonces jump ahead: accepted.
    assert_eq!(send(5).await.status(), StatusCode::OK);
    assert_eq!(send(6).await.status(), StatusCode::OK);
    s.stop().await;
}

#[tokio::test]
async fn an_expired_nonce_gets_a_stale_challenge() {
    let s = TestServer::start_with(invites_server::ServiceConfig {
        // Long enough that the fresh nonce below stays fresh on a loaded CI machine.
        nonce_lifetime: Duration::from_millis(1000),
        ..Default::default()
    })
    .await;
    let path = org_invites(&s);
    let key = s.key("owner");
    let answer = DigestAnswer::new(&s.challenge(&path).await, &key.0, &key.1);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let r = s
        .client
        .get(s.url(&path))
        .header("Authorization", answer.header("GET", &path, 1))
        .send()
        .await
        .unwrap();
    let challenge = r.headers()["www-authenticate"].to_str().unwrap().to_owned();
    assert_eq!(
        challenge_param(&challenge, "stale").as_deref(),
        Some("true"),
        "{challenge}"
    );
    let body = api_error(r, 401, "NOT_AUTHENTICATED").await;
    insta::assert_json_snapshot!("stale_nonce", body);
    // The new nonce works at once.
    let fresh = DigestAnswer::new(&challenge, &key.0, &key.1);
    let r = s
        .client
        .get(s.url(&path))
        .header("Authorization", fresh.header("GET", &path, 1))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    s.stop().await;
}

#[tokio::test]
async fn sha256_digest_is_accepted() {
    let s = TestServer::start_with(invites_server::ServiceConfig {
        challenge_algorithm: invites_digest::Algorithm::Sha256,
        ..Default::default()
    })
    .await;
    let path = org_invites(&s);
    let challenge = s.challenge(&path).await;
    assert_eq!(
        challenge_param(&challenge, "algorithm").as_deref(),
        Some("SHA-256")
    );
    let r = s.digest(Method::GET, &path, &s.key("owner")).await;
    assert_eq!(r.status(), StatusCode::OK);
    s.stop().await;
}

#[tokio::test]
async fn an_access_list_refuses_other_addresses() {
    let s = TestServer::start().await;
    let key = s
        .store
        .api_key_by_public_key(&s.key("owner").0)
        .await
        .unwrap()
        .unwrap();
    s.store
        .add_access_list_entry(key.principal_id, "10.1.0.0/16")
        .await
        .unwrap();
    let r = s
        .digest(Method::GET, &org_invites(&s), &s.key("owner"))
        .await;
    let body = api_error(r, 403, "IP_ADDRESS_NOT_ON_ACCESS_LIST").await;
    assert_eq!(
        body["parameters"][0],
        serde_json::json!({"name": "address", "value": "127.0.0.1"})
    );
    s.store
        .add_access_list_entry(key.principal_id, "127.0.0.1")
        .await
        .unwrap();
    let r = s
        .digest(Method::GET, &org_invites(&s), &s.key("owner"))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    s.stop().await;
}

async fn token(s: &TestServer, id: &str, secret: &str) -> reqwest::Response {
    s.client
        .post(s.url("/api/oauth/token"))
        .basic_auth(id, Some(secret))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body("grant_type=client_credentials")
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn service_accounts_exchange_credentials_for_a_bearer_token() {
    let s = TestServer::start().await;
    let sa = &s.demo.service_account;
    let r = token(&s, &sa.client_id, &sa.client_secret).await;
    assert_eq!(r.status(), StatusCode::OK);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3600);
    let access = body["access_token"].as_str().unwrap();
    let r = s
        .client
        .get(s.url(&org_invites(&s)))
        .bearer_auth(access)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // A service-account token is not a community token.
    let r = s
        .client
        .get(s.url("/api/v2/group/1/invite/"))
        .bearer_auth(access)
        .send()
        .await
        .unwrap();
    api_error(r, 401, "NOT_AUTHENTICATED").await;
    s.stop().await;
}

#[tokio::test]
async fn token_endpoint_refuses_bad_credentials_and_grants() {
    let s = TestServer::start().await;
    let sa = &s.demo.service_account;
    let body = api_error(
        token(&s, &sa.client_id, "wrong").await,
        401,
        "NOT_AUTHENTICATED",
    )
    .await;
    assert_eq!(body["detail"], "Invalid client credentials.");
    let r = s
        .client
        .post(s.url("/api/oauth/token"))
        .basic_auth(&sa.client_id, Some(&sa.client_secret))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body("grant_type=password")
        .send()
        .await
        .unwrap();
    api_error(r, 400, "INVALID_ATTRIBUTE").await;
    let r = s
        .client
        .post(s.url("/api/oauth/token"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body("grant_type=client_credentials")
        .send()
        .await
        .unwrap();
    api_error(r, 401, "NOT_AUTHENTICATED").await;
    s.stop().await;
}

#[tokio::test]
async fn bearer_tokens_that_do_not_exist_are_refused() {
    let s = TestServer::start().await;
    let r = s
        .client
        .get(s.url(&org_invites(&s)))
        .bearer_auth("mdb_sa_tk_nope")
        .send()
        .await
        .unwrap();
    api_error(r, 401, "NOT_AUTHENTICATED").await;
    s.stop().await;
}

#[tokio::test]
async fn community_paths_take_user_bearer_tokens() {
    let s = TestServer::start().await;
    let r = s.anonymous(Method::GET, "/api/v2/group/1/invite/").await;
    assert_eq!(
        r.headers()["www-authenticate"],
        "Bearer realm=\"community\""
    );
    api_error(r, 401, "NOT_AUTHENTICATED").await;
    // Authenticated, the request reaches routing (the community operations come with their issue).
    let r = s
        .client
        .get(s.url("/api/v2/no-such-resource/"))
        .bearer_auth(s.user_token("manager"))
        .send()
        .await
        .unwrap();
    api_error(r, 404, "RESOURCE_NOT_FOUND").await;
    s.stop().await;
}

/// A Digest request with an extra header, answered as curl does.
async fn digest_with(
    s: &TestServer,
    path: &str,
    key: &(String, String),
    extra: Option<(&str, &str)>,
) -> reqwest::Response {
    let challenge = s.challenge(path).await;
    let auth = DigestAnswer::new(&challenge, &key.0, &key.1).header("GET", path, 1);
    let mut req = s
        .client
        .get(s.url(path))
        .header("Authorization", auth)
        .header("Accept", VND);
    if let Some((name, value)) = extra {
        req = req.header(name, value);
    }
    req.send().await.unwrap()
}

#[tokio::test]
async fn repeated_failures_lock_out_a_key_then_its_address() {
    crate::support::within_one_window(20).await;
    let s = TestServer::start_with(invites_server::ServiceConfig {
        failed_auth_per_key: 3,
        failed_auth_per_address: 5,
        ..invites_server::ServiceConfig::default()
    })
    .await;
    let owner = s.key("owner");
    let wrong = (
        owner.0.clone(),
        "00000000-0000-4000-8000-000000000000".to_owned(),
    );
    for _ in 0..3 {
        let r = s.digest(Method::GET, &org_invites(&s), &wrong).await;
        api_error(r, 401, "NOT_AUTHENTICATED").await;
    }
    // The key is locked for the window, even with its right secret: 429 on the Atlas family...
    let r = s.digest(Method::GET, &org_invites(&s), &owner).await;
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    let body = api_error(r, 429, "RATE_LIMITED").await;
    assert!(body["detail"]
        .as_str()
        .unwrap()
        .contains("failed authentication"));
    // ...and the documented 401 where 429 is not documented (Ops Manager).
    let om = format!("/api/public/v1.0/groups/{}/invites", s.demo.project_id);
    let r = s.digest(Method::GET, &om, &owner).await;
    assert!(r.headers().contains_key("retry-after"));
    assert!(r.headers().contains_key("www-authenticate"));
    api_error(r, 401, "NOT_AUTHENTICATED").await;
    // Another key from the same address still gets in (3 failures < 5)...
    let r = s
        .digest(Method::GET, &org_invites(&s), &s.key("user-admin"))
        .await;
    assert_ne!(r.status().as_u16(), 429);
    assert_ne!(r.status().as_u16(), 401);
    // ...until the address has failed 5 times (unknown keys count for the address).
    for i in 0..2 {
        let r = s
            .digest(
                Method::GET,
                &org_invites(&s),
                &(format!("nokey{i}x"), "x".to_owned()),
            )
            .await;
        assert_eq!(r.status(), 401);
    }
    let r = s
        .digest(Method::GET, &org_invites(&s), &s.key("user-admin"))
        .await;
    api_error(r, 429, "RATE_LIMITED").await;
    // A request without credentials still gets its challenge, not a lockout.
    let r = s.anonymous(Method::GET, &org_invites(&s)).await;
    api_error(r, 401, "NOT_AUTHENTICATED").await;
    s.stop().await;
}

#[tokio::test]
async fn live_credentials_of_another_family_are_refused_without_counting_as_guesses() {
    crate::support::within_one_window(20).await;
    let s = TestServer::start_with(invites_server::ServiceConfig {
        failed_auth_per_key: 2,
        failed_auth_per_address: 2,
        ..invites_server::ServiceConfig::default()
    })
    .await;
    let user = s.user_token("manager");
    let sa = s.service_account_token().await;
    let om = format!("/api/public/v1.0/groups/{}/invites", s.demo.project_id);
    let bearer = |path: &str, token: &str| {
        s.client
            .get(s.url(path))
            .bearer_auth(token)
            .header("Accept", VND)
            .send()
    };
    for _ in 0..4 {
        // A user's token on Atlas, a service account's on the community API, any Bearer token
        // on Ops Manager (Digest only): each a 401 that says why.
        let body = api_error(
            bearer(&org_invites(&s), &user).await.unwrap(),
            401,
            "NOT_AUTHENTICATED",
        )
        .await;
        assert!(
            body["detail"].as_str().unwrap().contains("a user's"),
            "{body}"
        );
        let body = api_error(
            bearer("/api/v2/group/1/invite/", &sa).await.unwrap(),
            401,
            "NOT_AUTHENTICATED",
        )
        .await;
        assert!(
            body["detail"].as_str().unwrap().contains("service account"),
            "{body}"
        );
        api_error(bearer(&om, &sa).await.unwrap(), 401, "NOT_AUTHENTICATED").await;
    }
    // Twelve refusals past a limit of two, and the address is not locked out.
    let r = s
        .digest(Method::GET, &org_invites(&s), &s.key("owner"))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        bearer(&org_invites(&s), &sa).await.unwrap().status(),
        StatusCode::OK
    );
    // Unknown tokens are guesses and still count: two lock the address.
    for _ in 0..2 {
        let r = bearer(&org_invites(&s), "mdb_sa_tk_nope").await.unwrap();
        api_error(r, 401, "NOT_AUTHENTICATED").await;
    }
    let r = bearer(&org_invites(&s), &sa).await.unwrap();
    api_error(r, 429, "RATE_LIMITED").await;
    s.stop().await;
}

#[tokio::test]
async fn forwarded_for_is_believed_only_from_trusted_proxies() {
    for trusted in [true, false] {
        let s = TestServer::start_with(invites_server::ServiceConfig {
            trusted_proxies: if trusted {
                vec!["127.0.0.1/32".parse().unwrap()]
            } else {
                Vec::new()
            },
            ..invites_server::ServiceConfig::default()
        })
        .await;
        let key = s
            .store
            .api_key_by_public_key(&s.key("owner").0)
            .await
            .unwrap()
            .unwrap();
        s.store
            .add_access_list_entry(key.principal_id, "192.0.2.0/24")
            .await
            .unwrap();
        let path = org_invites(&s);
        let on_list = Some(("X-Forwarded-For", "192.0.2.7"));
        let r = digest_with(&s, &path, &s.key("owner"), on_list).await;
        if trusted {
            assert_eq!(r.status(), StatusCode::OK, "the proxy says 192.0.2.7");
        } else {
            // An untrusted peer cannot choose its address by sending the header.
            let body = api_error(r, 403, "IP_ADDRESS_NOT_ON_ACCESS_LIST").await;
            assert_eq!(body["parameters"][0]["value"], "127.0.0.1");
        }
        let off_list = Some(("X-Forwarded-For", "192.0.2.7, 198.51.100.1"));
        let r = digest_with(&s, &path, &s.key("owner"), off_list).await;
        let body = api_error(r, 403, "IP_ADDRESS_NOT_ON_ACCESS_LIST").await;
        let seen = if trusted { "198.51.100.1" } else { "127.0.0.1" };
        assert_eq!(body["parameters"][0]["value"], seen, "the right-most hop");
        s.stop().await;
    }
}

/// Credentials are cached in memory; a change made by another process (the admin command,
/// another replica) reaches this server through the database's auth epoch, polled every
/// `AUTH_POLL_INTERVAL`.
#[tokio::test]
async fn a_key_rotated_by_another_process_stops_working_soon_after() {
    let s = TestServer::start().await;
    let key = s.key("owner");
    let path = org_invites(&s);
    for _ in 0..3 {
        let r = s.digest(Method::GET, &path, &key).await;
        assert_eq!(r.status(), StatusCode::OK, "cached after the first");
    }
    // Another process: its own connections to the same database file.
    let other = invites_store::Store::open(s.db_path().to_str().unwrap())
        .await
        .unwrap();
    let fresh = invites_server::credentials::new_api_key();
    assert!(other
        .rotate_api_key(&key.0, &fresh.ha1_md5, &fresh.ha1_sha256)
        .await
        .unwrap());
    other.close().await;
    let bound = invites_server::cache::AUTH_POLL_INTERVAL * 30;
    let started = std::time::Instant::now();
    loop {
        let r = s.digest(Method::GET, &path, &key).await;
        if r.status() == StatusCode::UNAUTHORIZED {
            break;
        }
        assert_eq!(r.status(), StatusCode::OK);
        assert!(
            started.elapsed() < bound,
            "the old private key still works {bound:?} after the rotation"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    s.stop().await;
}
