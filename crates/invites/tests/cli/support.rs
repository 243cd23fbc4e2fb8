//! Starting `invites serve` as a process for the tests: where it listens, read from its output.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use invites_digest::{ha1, response, Algorithm};

/// A running `invites serve`; killed when dropped.
pub struct Served {
    pub child: Child,
    pub base: String,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `invites serve --listen 127.0.0.1:0 --database-url DB EXTRA...` and returns once it has
/// printed where it listens (and, with `--demo`, written its credentials).
pub fn serve(db: &str, extra: &[&str]) -> Served {
    let mut child = Command::new(env!("CARGO_BIN_EXE_invites"))
        .args(["serve", "--listen", "127.0.0.1:0", "--database-url", db])
        .args(extra)
        .env("INVITES_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let base = wait_until_started(&mut child, extra.contains(&"--demo"));
    Served { child, base }
}

/// Reads a started `invites serve`'s standard output (piped) until it has printed where it
/// listens and, with `demo`, written its demo credentials; keeps draining it afterwards so the
/// server never blocks on a full pipe. Returns the base URL it printed.
pub fn wait_until_started(child: &mut Child, demo: bool) -> String {
    wait_until_started_with_line(child, demo).0
}

/// As [`wait_until_started`], with the line that said where it listens.
pub fn wait_until_started_with_line(child: &mut Child, demo: bool) -> (String, String) {
    let mut lines = BufReader::new(child.stdout.take().expect("stdout piped")).lines();
    let mut base = None;
    for line in lines.by_ref().take(200) {
        let line = line.unwrap();
        if base.is_none() {
            base = line
                .split_whitespace()
                .find(|w| w.starts_with("http://127.0.0.1:"))
                .map(|w| (w.to_owned(), line.clone()));
        }
        let done = if demo {
            line.contains("demo credentials written")
        } else {
            line.contains("OpenAPI document")
        };
        if done {
            break;
        }
    }
    std::thread::spawn(move || for _ in lines {});
    base.expect("the server printed where it listens")
}

/// A Bearer token for the demo service account (as `--demo-out` wrote it), from `base`'s token
/// endpoint.
pub async fn service_account_token(
    client: &reqwest::Client,
    base: &str,
    demo: &serde_json::Value,
) -> String {
    let sa = &demo["service_account"];
    let r = client
        .post(format!("{base}/api/oauth/token"))
        .basic_auth(
            sa["client_id"].as_str().unwrap(),
            sa["client_secret"].as_str(),
        )
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json::<serde_json::Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// A parameter of a Digest challenge.
pub fn param(challenge: &str, name: &str) -> String {
    challenge
        .strip_prefix("Digest ")
        .unwrap()
        .split(", ")
        .find_map(|p| {
            let (k, v) = p.split_once('=')?;
            (k == name).then(|| v.trim_matches('"').to_owned())
        })
        .unwrap()
}

/// The `Authorization` value answering `challenge` for `user:pass` (nc 1, cnonce `c0ffee`).
pub fn digest_header(challenge: &str, user: &str, pass: &str, method: &str, uri: &str) -> String {
    let algorithm = Algorithm::parse(Some(&param(challenge, "algorithm"))).unwrap();
    let nonce = param(challenge, "nonce");
    let ha1 = ha1(algorithm, user, "MMS Public API", pass);
    let resp = response(
        algorithm, &ha1, &nonce, "00000001", "c0ffee", "auth", method, uri,
    );
    format!(
        "Digest username=\"{user}\", realm=\"MMS Public API\", nonce=\"{nonce}\", uri=\"{uri}\", \
         algorithm={}, response=\"{resp}\", opaque=\"{}\", qop=auth, nc=00000001, cnonce=\"c0ffee\"",
        algorithm.as_str(),
        param(challenge, "opaque")
    )
}

/// The demo organization owner's Digest API key (public key, private key) from `demo`, the
/// credentials `invites serve --demo --demo-out` wrote.
pub fn owner_api_key(demo: &serde_json::Value) -> (String, String) {
    let key = demo["api_keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["role"] == "owner")
        .unwrap();
    (
        key["public_key"].as_str().unwrap().to_owned(),
        key["private_key"].as_str().unwrap().to_owned(),
    )
}

/// The demo community group's manager's Bearer token from `demo` (as in [`owner_api_key`]).
pub fn community_manager_token(demo: &serde_json::Value) -> String {
    demo["community_users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["role"] == "manager")
        .unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Creates the community user `username` in the database `db` with `invites admin`; its id.
pub fn create_community_user(db: &str, username: &str) -> i64 {
    let out = Command::new(env!("CARGO_BIN_EXE_invites"))
        .args(["admin", "--database-url", db, "create-user"])
        .args(["--username", username])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let user: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    user["id"].as_i64().unwrap()
}

/// Invites `users` to the community group `group` through `base` with the manager's `token`
/// (the answer must be 204).
pub async fn invite_to_group(
    client: &reqwest::Client,
    base: &str,
    group: i64,
    token: &str,
    users: &[i64],
) {
    let r = client
        .post(format!("{base}/api/v2/group/{group}/invite/"))
        .bearer_auth(token)
        .json(&serde_json::json!({ "users": users }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
}

/// The users with a pending invitation to the community group `group` (its first 1,000), read
/// through `base` with the manager's `token`.
pub async fn pending_in_group(
    client: &reqwest::Client,
    base: &str,
    group: i64,
    token: &str,
) -> std::collections::BTreeSet<i64> {
    let page: serde_json::Value = client
        .get(format!("{base}/api/v2/group/{group}/invite/?limit=1000"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    page["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["id"].as_i64().unwrap())
        .collect()
}

/// Creates an invitation of `username` to `org` through `base` with `token`; its id (the answer
/// must be 200).
pub async fn create_org_invitation(
    client: &reqwest::Client,
    base: &str,
    org: &str,
    token: &str,
    username: &str,
) -> String {
    let r = client
        .post(format!("{base}/api/atlas/v2/orgs/{org}/invites"))
        .bearer_auth(token)
        .header("Content-Type", "application/vnd.atlas.2023-01-01+json")
        .body(serde_json::json!({"username": username, "roles": ["ORG_MEMBER"]}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json::<serde_json::Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// The PostgreSQL server the tests over several replicas run on: `INVITES_TEST_POSTGRES_URL`
/// (its maintenance database), which `cargo xtask test` sets after starting a throwaway cluster.
/// Unset, `test` prints that it is skipped and gets None, except under CI (`CI` set and neither
/// empty, `0` nor `false`), where it fails: CI must not pass a test that did not run.
pub fn postgres_url(test: &str) -> Option<String> {
    if let Some(url) = std::env::var("INVITES_TEST_POSTGRES_URL")
        .ok()
        .filter(|u| !u.is_empty())
    {
        return Some(url);
    }
    let ci = std::env::var("CI").is_ok_and(|v| !matches!(v.as_str(), "" | "0" | "false"));
    assert!(
        !ci,
        "{test}: INVITES_TEST_POSTGRES_URL is not set under CI; `cargo xtask test` starts a \
         PostgreSQL cluster and sets it (did the cluster fail to start?)"
    );
    eprintln!("{test}: SKIPPED, INVITES_TEST_POSTGRES_URL is not set (cargo xtask test sets it)");
    None
}

/// A new, empty PostgreSQL database `<prefix>_<pid>` on the server of `admin_url`; its URL.
pub async fn fresh_database(admin_url: &str, prefix: &str) -> String {
    use sqlx::{Connection, Executor};
    sqlx::any::install_default_drivers();
    let name = format!("{prefix}_{}", std::process::id());
    let mut admin = sqlx::AnyConnection::connect(admin_url).await.unwrap();
    admin
        .execute(format!("DROP DATABASE IF EXISTS {name}").as_str())
        .await
        .unwrap();
    admin
        .execute(format!("CREATE DATABASE {name}").as_str())
        .await
        .unwrap();
    admin.close().await.unwrap();
    format!("{}/{name}", admin_url.rsplit_once('/').unwrap().0)
}

/// What the clients of a create/delete load were told: created ids (POST 200), ids a DELETE was
/// sent for, and deleted ids (DELETE 204).
#[derive(Clone, Default)]
pub struct Acknowledged {
    pub created: Vec<String>,
    pub delete_sent: Vec<String>,
    pub deleted: Vec<String>,
}

impl Acknowledged {
    /// Reads every created invitation of `org` back through `base`: one deleted (204) must be
    /// gone, one whose DELETE was sent but never answered may or may not be, every other must be
    /// there. Failures start with `context`; returns the statuses seen, counted.
    pub async fn check_nothing_lost(
        &self,
        client: &reqwest::Client,
        base: &str,
        org: &str,
        token: &str,
        context: &str,
    ) -> std::collections::BTreeMap<u16, usize> {
        use std::collections::HashSet;
        let deleted: HashSet<&String> = self.deleted.iter().collect();
        let delete_sent: HashSet<&String> = self.delete_sent.iter().collect();
        let mut seen = std::collections::BTreeMap::new();
        for id in &self.created {
            let status = client
                .get(format!("{base}/api/atlas/v2/orgs/{org}/invites/{id}"))
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16();
            *seen.entry(status).or_default() += 1;
            if deleted.contains(id) {
                assert_eq!(status, 404, "{context}: {id} was deleted (204) but is back");
            } else if delete_sent.contains(id) {
                assert!(status == 200 || status == 404, "{context}: {id}: {status}");
            } else {
                assert_eq!(
                    status, 200,
                    "{context}: {id} was created (200) but is missing"
                );
            }
        }
        seen
    }
}
