//! Test harness: a server over a fresh database with the demo data set, and a Digest client.

use chrono::Utc;
use invites_digest::{ha1, response, Algorithm};
use invites_domain::{GroupRole, OrgRole};
use invites_server::credentials::new_api_key;
use invites_server::demo::{self, DemoCredentials};
use invites_server::{Running, ServiceConfig};
use invites_store::Store;
use reqwest::{Method, StatusCode};

pub const VND: &str = "application/vnd.atlas.2023-01-01+json";

pub struct TestServer {
    pub base: String,
    pub demo: DemoCredentials,
    pub store: Store,
    /// An owner key of another organization, which must see nothing of the demo org.
    pub foreign_key: (String, String),
    pub foreign_org: String,
    /// The other organization's project, owned by `foreign_key`.
    pub foreign_project: String,
    pub client: reqwest::Client,
    /// `http://host:port` of the metrics listener, for a server started with one.
    pub metrics: Option<String>,
    running: Option<Running>,
    db: std::path::PathBuf,
    _dir: Option<tempfile::TempDir>,
}

impl TestServer {
    pub async fn start() -> TestServer {
        Self::start_with(ServiceConfig::default()).await
    }

    pub async fn start_with(config: ServiceConfig) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("test.db");
        Self::start_at(config, db, Some(dir)).await
    }

    /// A server over the SQLite file `db` (which the caller provides the directory for).
    pub async fn start_at(
        config: ServiceConfig,
        db: std::path::PathBuf,
        dir: Option<tempfile::TempDir>,
    ) -> TestServer {
        Self::start_full(config, db, dir, false).await
    }

    /// A server with a metrics listener (`GET /metrics`) on a port of its own.
    pub async fn start_with_metrics() -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("test.db");
        Self::start_full(ServiceConfig::default(), db, Some(dir), true).await
    }

    async fn start_full(
        config: ServiceConfig,
        db: std::path::PathBuf,
        dir: Option<tempfile::TempDir>,
        metrics: bool,
    ) -> TestServer {
        let store = Store::open(db.to_str().unwrap()).await.unwrap();
        let demo = demo::seed(&store).await.unwrap();
        let now = Utc::now();
        let other = store.create_org("Other-Org", now).await.unwrap();
        let other_project = store
            .create_project(other.id, "Other-Project", now)
            .await
            .unwrap();
        let k = new_api_key();
        let rec = store
            .create_api_key(
                other.id,
                &k.public_key,
                "foreign",
                &k.ha1_md5,
                &k.ha1_sha256,
                now,
            )
            .await
            .unwrap();
        store
            .grant_org_role(other.id, rec.principal_id, OrgRole::Owner)
            .await
            .unwrap();
        store
            .grant_project_role(other_project.id, rec.principal_id, GroupRole::Owner)
            .await
            .unwrap();
        let metrics = match metrics {
            true => Some(invites_server::listen_metrics("127.0.0.1:0").await.unwrap()),
            false => None,
        };
        let running = invites_server::listen("127.0.0.1:0")
            .await
            .unwrap()
            .serve_starting(&config.connections)
            .serve_with_metrics(store.clone(), &config, metrics)
            .await
            .unwrap();
        TestServer {
            base: format!("http://{}", running.addr),
            demo,
            store,
            foreign_key: (k.public_key, k.private_key),
            foreign_org: other.id.to_string(),
            foreign_project: other_project.id.to_string(),
            client: reqwest::Client::new(),
            metrics: running.metrics_addr().map(|a| format!("http://{a}")),
            running: Some(running),
            db,
            _dir: dir,
        }
    }

    /// The API's connections open now, as the server counts them.
    pub fn open_connections(&self) -> usize {
        self.running.as_ref().map_or(0, Running::open_connections)
    }

    /// The SQLite file the server uses.
    pub fn db_path(&self) -> std::path::PathBuf {
        self.db.clone()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// The demo API key with this role (`owner`, `member`, `user-admin`).
    pub fn key(&self, role: &str) -> (String, String) {
        let k = self.demo.api_keys.iter().find(|k| k.role == role).unwrap();
        (k.public_key.clone(), k.private_key.clone())
    }

    pub fn user_token(&self, role: &str) -> String {
        self.demo
            .community_users
            .iter()
            .find(|u| u.role == role)
            .unwrap()
            .token
            .clone()
    }

    /// Sends a request without credentials, returning the response (normally the 401 challenge).
    pub async fn anonymous(&self, method: Method, path: &str) -> reqwest::Response {
        self.client
            .request(method, self.url(path))
            .send()
            .await
            .unwrap()
    }

    /// Runs the Digest exchange as curl does: a bare request, then the answer to its challenge.
    pub async fn digest(
        &self,
        method: Method,
        path: &str,
        key: &(String, String),
    ) -> reqwest::Response {
        self.digest_request(method, path, key)
            .await
            .send()
            .await
            .unwrap()
    }

    /// The Digest exchange with a JSON body in the Atlas media type.
    pub async fn digest_json(
        &self,
        method: Method,
        path: &str,
        key: &(String, String),
        body: &serde_json::Value,
    ) -> reqwest::Response {
        self.digest_request(method, path, key)
            .await
            .header("Content-Type", VND)
            .body(body.to_string())
            .send()
            .await
            .unwrap()
    }

    /// A request answering a fresh challenge for `path`.
    async fn digest_request(
        &self,
        method: Method,
        path: &str,
        key: &(String, String),
    ) -> reqwest::RequestBuilder {
        let challenge = self.challenge(path).await;
        let auth = DigestAnswer::new(&challenge, &key.0, &key.1).header(method.as_str(), path, 1);
        self.client
            .request(method, self.url(path))
            .header("Authorization", auth)
            .header("Accept", VND)
    }

    /// A Bearer token for the demo service account, from the token endpoint.
    pub async fn service_account_token(&self) -> String {
        let sa = &self.demo.service_account;
        let r = self
            .client
            .post(self.url("/api/oauth/token"))
            .basic_auth(&sa.client_id, Some(&sa.client_secret))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap();
        let v: serde_json::Value = r.json().await.unwrap();
        v["access_token"].as_str().unwrap().to_owned()
    }

    /// A fresh challenge for `path`.
    pub async fn challenge(&self, path: &str) -> String {
        // The nonce does not depend on the path; ask without the query so `envelope` stays off.
        let bare = path.split('?').next().unwrap();
        let r = self.anonymous(Method::GET, bare).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        r.headers()["www-authenticate"].to_str().unwrap().to_owned()
    }

    pub async fn stop(mut self) {
        if let Some(r) = self.running.take() {
            r.stop().await.unwrap();
        }
    }
}

/// Sleeps into the next minute unless at least `needed_secs` of the current one are left: the
/// rate limit and the lockout count in minutes of the wall clock, and a test whose requests
/// straddled two minutes would see its counts start over.
pub async fn within_one_window(needed_secs: u64) {
    let left = invites_api::limits::until_next_window(invites_api::limits::unix_secs());
    if left < needed_secs {
        tokio::time::sleep(std::time::Duration::from_secs(left)).await;
    }
}

/// Reads one parameter of a challenge.
pub fn challenge_param(challenge: &str, name: &str) -> Option<String> {
    let body = challenge.strip_prefix("Digest ")?;
    body.split(", ").find_map(|part| {
        let (k, v) = part.split_once('=')?;
        (k == name).then(|| v.trim_matches('"').to_owned())
    })
}

/// Computes Digest `Authorization` headers for one challenge.
pub struct DigestAnswer {
    pub nonce: String,
    pub opaque: String,
    pub algorithm: Algorithm,
    user: String,
    ha1: String,
}

impl DigestAnswer {
    pub fn new(challenge: &str, user: &str, pass: &str) -> Self {
        let algorithm =
            Algorithm::parse(challenge_param(challenge, "algorithm").as_deref()).unwrap();
        DigestAnswer {
            nonce: challenge_param(challenge, "nonce").unwrap(),
            opaque: challenge_param(challenge, "opaque").unwrap(),
            algorithm,
            user: user.to_owned(),
            ha1: ha1(algorithm, user, "MMS Public API", pass),
        }
    }

    pub fn header(&self, method: &str, uri: &str, nc: u32) -> String {
        let nc = format!("{nc:08x}");
        let resp = response(
            self.algorithm,
            &self.ha1,
            &self.nonce,
            &nc,
            "0a4f113b",
            "auth",
            method,
            uri,
        );
        format!(
            "Digest username=\"{}\", realm=\"MMS Public API\", nonce=\"{}\", uri=\"{uri}\", \
             algorithm={}, response=\"{resp}\", opaque=\"{}\", qop=auth, nc={nc}, cnonce=\"0a4f113b\"",
            self.user,
            self.nonce,
            self.algorithm.as_str(),
            self.opaque
        )
    }
}

/// Asserts an ApiError body and returns it.
pub async fn api_error(r: reqwest::Response, status: u16, code: &str) -> serde_json::Value {
    assert_eq!(r.status().as_u16(), status, "status");
    assert_eq!(
        r.headers().get("content-type").map(|v| v.to_str().unwrap()),
        Some("application/json"),
        "errors are application/json"
    );
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"], status, "{body}");
    assert_eq!(body["errorCode"], code, "{body}");
    assert!(body["detail"].is_string(), "{body}");
    body
}

/// Replaces ids, timestamps and the server address in a body so it can be snapshotted.
pub fn redact(mut v: serde_json::Value, s: &TestServer) -> serde_json::Value {
    let mut text = v.to_string().replace(&s.base, "http://[host]");
    for k in &s.demo.api_keys {
        text = text.replace(&k.public_key, &format!("[{}-key]", k.role));
    }
    v = serde_json::from_str(&text).unwrap();
    fn walk(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, x) in m.iter_mut() {
                    match k.as_str() {
                        "id" | "orgId" | "groupId" => *x = "[id]".into(),
                        "createdAt" | "expiresAt" => *x = "[timestamp]".into(),
                        "href" => {
                            *x = serde_json::Value::String(redact_ids(x.as_str().unwrap_or("")))
                        }
                        _ => walk(x),
                    }
                }
            }
            serde_json::Value::Array(a) => a.iter_mut().for_each(walk),
            _ => {}
        }
    }
    fn redact_ids(s: &str) -> String {
        s.split('/')
            .map(|seg| {
                if seg.len() == 24 && seg.bytes().all(|b| b.is_ascii_hexdigit()) {
                    "[id]"
                } else {
                    seg
                }
            })
            .collect::<Vec<_>>()
            .join("/")
    }
    walk(&mut v);
    v
}
