//! PostgreSQL under faults, with two `invites serve` replicas under a mixed create/delete/list
//! load (issue 18): (a) PostgreSQL stopped: every request is answered within 5 s, a failure is
//! the contract's "retry later" answer (never a server error, never a hang), the processes stay
//! up, and each replica serves again within 2 s of PostgreSQL's return without a restart; (b)
//! the service's backend connections terminated (`pg_terminate_backend`) mid-load: at most the
//! requests on them fail, with that answer; (c) one replica SIGKILLed: the other keeps serving.
//! Throughout, nothing acknowledged is lost: every create answered 200 is there unless its
//! delete was answered 204, every delete answered 204 is gone. Half the clients delete and list
//! with Digest, whose nonce counts are written to PostgreSQL (in batches) before a request is
//! served, the others with a Bearer token. While PostgreSQL is down, eight removals sent at once
//! (which share batches), three community bulk removals sent at once (which share batches too,
//! and remove nothing) and a Digest list to each replica must each be told to retry later.
//!
//! "Retry later" is `errorCode` `SERVICE_UNAVAILABLE` with `Retry-After`: status 503 where the
//! operation documents it, else the documented 500 (the Atlas operations, like the real Atlas
//! document, document no 503; see invites-api's `error_responses!`). A 500 without them, the
//! answer to a bug, fails the test.
//!
//! The faults need a cluster of the test's own (the shared one of the test command serves other
//! tests meanwhile): `INVITES_TEST_POSTGRES_BIN` names PostgreSQL's `bin` directory, which
//! `cargo xtask test` sets with `INVITES_TEST_POSTGRES_URL`. Without it the test says it is
//! skipped, except under CI, where it fails (as the other tests over PostgreSQL do: see
//! `support::postgres_url`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::support::{
    community_manager_token, create_community_user, create_org_invitation, digest_header,
    fresh_database, invite_to_group, owner_api_key, pending_in_group, postgres_url, serve,
    service_account_token, Acknowledged, Served,
};

/// A PostgreSQL cluster the test may stop and start: a temporary data directory, a free
/// loopback port, trust authentication, run as the `postgres` user when the test runs as root
/// (`initdb` refuses root). Stopped and removed when dropped.
struct OwnCluster {
    bin: PathBuf,
    dir: tempfile::TempDir,
    run_as: Option<&'static str>,
    port: u16,
    url: String,
}

impl OwnCluster {
    fn command(&self, program: &str) -> Command {
        command(self.run_as, &self.bin.join(program))
    }

    fn start(bin: &Path) -> OwnCluster {
        let root = Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
        let run_as = root.then_some("postgres");
        let dir = tempfile::tempdir().unwrap();
        if let Some(user) = run_as {
            let chown = Command::new("chown")
                .args(["-R", &format!("{user}:{user}")])
                .arg(dir.path())
                .status()
                .unwrap();
            assert!(chown.success());
        }
        let out = command(run_as, &bin.join("initdb"))
            .arg("-D")
            .arg(dir.path().join("data"))
            .args(["-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let cluster = OwnCluster {
            bin: bin.to_owned(),
            dir,
            run_as,
            port,
            url: format!("postgres://postgres@127.0.0.1:{port}/postgres"),
        };
        cluster.pg_start();
        cluster
    }

    fn pg_ctl(&self, args: &[&str]) {
        let data = self.dir.path().join("data");
        let out = self
            .command("pg_ctl")
            .arg("-D")
            .arg(&data)
            .arg("-l")
            .arg(self.dir.path().join("server.log"))
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "pg_ctl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Starts the server and waits until it accepts connections.
    fn pg_start(&self) {
        let options = format!(
            "-p {} -h 127.0.0.1 -k {} -c fsync=off -c max_connections=100",
            self.port,
            self.dir.path().display()
        );
        self.pg_ctl(&["-w", "-t", "30", "-o", &options, "start"]);
    }

    /// Stops the server the way an operator's restart does: a fast shutdown (open sessions are
    /// terminated, their transactions rolled back).
    fn pg_stop(&self) {
        self.pg_ctl(&["-w", "-t", "30", "-m", "fast", "stop"]);
    }

    /// Runs one SQL statement on `db` and returns its single value.
    fn psql(&self, db: &str, sql: &str) -> String {
        let out = self
            .command("psql")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(["-U", "postgres", "-d", db, "-tAc", sql])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "psql: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }
}

impl Drop for OwnCluster {
    fn drop(&mut self) {
        let _ = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .args(["-m", "immediate", "-w", "stop"])
            .output();
    }
}

fn command(run_as: Option<&str>, program: &Path) -> Command {
    match run_as {
        Some(user) => {
            let mut c = Command::new("runuser");
            c.args(["-u", user, "--"]).arg(program);
            c
        }
        None => Command::new(program),
    }
}

/// One answer the load got: when its replica was picked and when it came (since the load began;
/// a Digest delete's challenge comes between the two), which replica, the status (0: no answer at
/// all), whether it said `Retry-After`, its `errorCode`, and how long the request took.
#[derive(Clone, Debug)]
struct Answer {
    sent: Duration,
    ended: Duration,
    replica: usize,
    status: u16,
    retry_after: bool,
    error_code: Option<String>,
    took: Duration,
    /// Why there was no answer (status 0): the client's error and its sources.
    #[allow(dead_code)] // read through Debug, in the failure messages
    failure: Option<String>,
}

impl Answer {
    fn succeeded(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The contract's "retry later": 503, or the 500 of an operation that documents no 503,
    /// with `SERVICE_UNAVAILABLE` and `Retry-After`.
    fn retry_later(&self) -> bool {
        (self.status == 503 || self.status == 500)
            && self.retry_after
            && self.error_code.as_deref() == Some("SERVICE_UNAVAILABLE")
    }
}

struct Load {
    answers: Mutex<Vec<Answer>>,
    ack: Mutex<Acknowledged>,
    /// Replicas still up (indexes into the bases); a killed one leaves, as a load balancer's
    /// health check would take it out.
    up: Mutex<Vec<usize>>,
    stop: AtomicBool,
    started: Instant,
    /// When each request sent with Digest (whose nonce counts are written to PostgreSQL) was.
    digest_sent: Mutex<Vec<Duration>>,
}

/// Sends `request` and records its answer; the JSON body of a 200.
/// Sends `request` to `replica`, picked at `sent` (since the load started), and records the answer.
async fn send(
    load: &Load,
    (replica, sent): (usize, Duration),
    request: reqwest::RequestBuilder,
) -> (u16, Value) {
    let began = Instant::now();
    let (status, retry_after, body, failure) = match request.send().await {
        Ok(r) => {
            let status = r.status().as_u16();
            let retry_after = r.headers().contains_key("retry-after");
            let body = r.json::<Value>().await.unwrap_or(Value::Null);
            (status, retry_after, body, None)
        }
        Err(e) => {
            let mut why = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                why.push_str(&format!(": {s}"));
                source = s.source();
            }
            (0, false, Value::Null, Some(why))
        }
    };
    load.answers.lock().unwrap().push(Answer {
        sent,
        ended: load.started.elapsed(),
        replica,
        status,
        retry_after,
        error_code: body["errorCode"].as_str().map(str::to_owned),
        took: began.elapsed(),
        failure,
    });
    (status, body)
}

/// One client: creates invitations on the replicas in turn (with the token), deletes every other
/// one it made and lists now and then (with `digest`'s API key when given, else the token).
async fn client_loop(
    load: Arc<Load>,
    client: reqwest::Client,
    bases: Vec<String>,
    (token, digest): (String, Option<(String, String)>),
    org: String,
    task: usize,
) {
    let turn = AtomicUsize::new(task);
    // The replica of each request is picked when it is sent, as a load balancer would (a delete
    // sent to the replica its create went to could go to a replica taken out meanwhile), and the
    // request counts as sent then: under the lock that the replica list changes under.
    let pick = || {
        let up = load.up.lock().unwrap();
        let replica = up[turn.fetch_add(1, Ordering::Relaxed) % up.len()];
        (replica, load.started.elapsed())
    };
    for i in 0..1_000_000u32 {
        if load.stop.load(Ordering::Relaxed) {
            break;
        }
        let picked = pick();
        let base = &bases[picked.0];
        let invites = format!("{base}/api/atlas/v2/orgs/{org}/invites");
        if i % 5 == 4 {
            let list = match &digest {
                None => Some(client.get(&invites).bearer_auth(&token)),
                Some(key) => {
                    let path = format!("/api/atlas/v2/orgs/{org}/invites");
                    with_digest(&load, &client, key, reqwest::Method::GET, base, &path).await
                }
            };
            if let Some(list) = list {
                send(&load, picked, list).await;
            }
            continue;
        }
        let body =
            json!({"username": format!("fault-{task}-{i}@example.com"), "roles": ["ORG_MEMBER"]});
        let create = client
            .post(&invites)
            .bearer_auth(&token)
            .header("Content-Type", "application/vnd.atlas.2023-01-01+json")
            .body(body.to_string());
        let (status, created) = send(&load, picked, create).await;
        if status != 200 {
            // Not acknowledged (or not answered): it may or may not exist; not checked.
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        }
        let id = created["id"].as_str().unwrap().to_owned();
        load.ack.lock().unwrap().created.push(id.clone());
        if i % 2 == 0 {
            load.ack.lock().unwrap().delete_sent.push(id.clone());
            let picked = pick();
            let path = format!("/api/atlas/v2/orgs/{org}/invites/{id}");
            let delete = match &digest {
                None => client
                    .delete(format!("{}{path}", bases[picked.0]))
                    .bearer_auth(&token),
                Some(key) => {
                    let delete = with_digest(
                        &load,
                        &client,
                        key,
                        reqwest::Method::DELETE,
                        &bases[picked.0],
                        &path,
                    );
                    // No challenge: this delete stays unsent (its id counts as maybe deleted).
                    let Some(delete) = delete.await else {
                        continue;
                    };
                    delete
                }
            };
            if send(&load, picked, delete).await.0 == 204 {
                load.ack.lock().unwrap().deleted.push(id);
            }
        }
    }
}

/// `method` on `base` + `path` with Digest for `user:pass`, after the challenge that asks for it
/// (not an answer of the load: it is always a 401 and reads nothing from the database); None
/// when the challenge got no answer. The send time of each such request goes into `load`.
async fn with_digest(
    load: &Load,
    client: &reqwest::Client,
    (user, pass): &(String, String),
    method: reqwest::Method,
    base: &str,
    path: &str,
) -> Option<reqwest::RequestBuilder> {
    let url = format!("{base}{path}");
    let challenge = client
        .request(method.clone(), &url)
        .send()
        .await
        .ok()?
        .headers()
        .get("www-authenticate")?
        .to_str()
        .ok()?
        .to_owned();
    let answer = digest_header(&challenge, user, pass, method.as_str(), path);
    load.digest_sent
        .lock()
        .unwrap()
        .push(load.started.elapsed());
    Some(client.request(method, &url).header("Authorization", answer))
}

/// The first answer of `replica` sent at or after `from` that succeeded, if any.
fn first_success(answers: &[Answer], replica: usize, from: Duration) -> Option<Duration> {
    answers
        .iter()
        .filter(|a| a.replica == replica && a.sent >= from && a.succeeded())
        .map(|a| a.sent)
        .min()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicas_ride_out_postgresql_faults_and_lose_nothing_acknowledged() {
    let test = "replicas_ride_out_postgresql_faults";
    if postgres_url(test).is_none() {
        return;
    }
    let bin = std::env::var("INVITES_TEST_POSTGRES_BIN").expect(
        "INVITES_TEST_POSTGRES_BIN is set with INVITES_TEST_POSTGRES_URL (cargo xtask test)",
    );
    let cluster = OwnCluster::start(Path::new(&bin));
    let db = fresh_database(&cluster.url, "faults").await;
    let db_name = db.rsplit('/').next().unwrap().to_owned();
    let dir = tempfile::tempdir().unwrap();
    let creds = dir.path().join("demo.json");
    let limits = ["--rate-limit-per-minute", "100000000"];
    // A on one worker thread (the current-thread scheduler), B with the default (a thread per
    // core): both ride out (a) and (b); A is the one left serving in (c).
    let a = serve(
        &db,
        &[
            &limits[..],
            &["--demo", "--demo-out", creds.to_str().unwrap()],
            &["--worker-threads", "1"],
        ]
        .concat(),
    );
    let mut b: Served = serve(&db, &limits);
    let demo: Value = serde_json::from_str(&std::fs::read_to_string(&creds).unwrap()).unwrap();
    let org = demo["org_id"].as_str().unwrap().to_owned();
    // A client's timeout well past the 5 s bound: a hang shows as a slow answer, not an error.
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let token = service_account_token(&client, &a.base, &demo).await;
    let bases = vec![a.base.clone(), b.base.clone()];
    // Invitations to remove all at once while PostgreSQL is down (below).
    let mut doomed = Vec::new();
    for i in 0..8 {
        let username = format!("doomed-{i}@example.com");
        doomed.push(create_org_invitation(&client, &a.base, &org, &token, &username).await);
    }
    // And community users invited to the demo group, to remove in bulk while it is down.
    let group = demo["community_group_id"].as_i64().unwrap();
    let manager = community_manager_token(&demo);
    let invite_path = format!("/api/v2/group/{group}/invite/");
    let bulk_users: Vec<i64> = (0..6)
        .map(|i| create_community_user(&db, &format!("bulk-doomed-{i}@example.com")))
        .collect();
    invite_to_group(&client, &a.base, group, &manager, &bulk_users).await;
    let load = Arc::new(Load {
        answers: Mutex::new(Vec::new()),
        ack: Mutex::new(Acknowledged::default()),
        up: Mutex::new(vec![0, 1]),
        stop: AtomicBool::new(false),
        started: Instant::now(),
        digest_sent: Mutex::new(Vec::new()),
    });
    // Half the clients delete and list with Digest: each of those requests records its nonce
    // count in PostgreSQL before it is served, so they meet the faults on that path too.
    let digest = owner_api_key(&demo);
    let clients: Vec<_> = (0..6)
        .map(|task| {
            tokio::spawn(client_loop(
                load.clone(),
                client.clone(),
                bases.clone(),
                (token.clone(), (task % 2 == 1).then(|| digest.clone())),
                org.clone(),
                task,
            ))
        })
        .collect();
    let pause = |ms| tokio::time::sleep(Duration::from_millis(ms));
    pause(1_000).await;

    // (a) PostgreSQL stopped for 4 s under the load, then started again.
    let stopped_at = load.started.elapsed();
    tokio::task::block_in_place(|| cluster.pg_stop());
    // Besides the load, a Digest list to each replica while PostgreSQL is down: its nonce count
    // cannot be recorded, so it must be told to retry later (within the 5 s of every answer).
    let probes = async {
        let path = format!("/api/atlas/v2/orgs/{org}/invites");
        let mut answers = Vec::new();
        for (replica, base) in bases.iter().enumerate() {
            let picked = (replica, load.started.elapsed());
            let list = with_digest(&load, &client, &digest, reqwest::Method::GET, base, &path)
                .await
                .expect("a Digest challenge needs no database");
            answers.push(send(&load, picked, list).await.0);
        }
        answers
    };
    // And eight removals sent to A at once: they queue for the same batches, which cannot
    // reach the database; each must be told to retry later within the 5 s, not retried one
    // after the other (a pool's acquire timeout each).
    let removals = async {
        {
            let mut ack = load.ack.lock().unwrap();
            ack.created.extend(doomed.iter().cloned());
            ack.delete_sent.extend(doomed.iter().cloned());
        }
        let sends = doomed.iter().map(|id| {
            let picked = (0, load.started.elapsed());
            let delete = client
                .delete(format!("{}/api/atlas/v2/orgs/{org}/invites/{id}", a.base))
                .bearer_auth(&token);
            send(&load, picked, delete)
        });
        futures_util::future::join_all(sends).await
    };
    // And three bulk removals of two users each, sent to A at once: they share a batch too
    // (postgres::bulk_removals), with the same bound.
    let bulk = async {
        let sends = bulk_users.chunks(2).map(|users| {
            let picked = (0, load.started.elapsed());
            let delete = client
                .delete(format!("{}{invite_path}", a.base))
                .bearer_auth(&manager)
                .json(&json!({ "users": users }));
            send(&load, picked, delete)
        });
        futures_util::future::join_all(sends).await
    };
    let (_, probed, removed, removed_in_bulk) = tokio::join!(pause(4_000), probes, removals, bulk);
    assert!(
        removed_in_bulk
            .iter()
            .all(|(status, _)| *status == 500 || *status == 503),
        "bulk removals while PostgreSQL was down: {:?}",
        removed_in_bulk
            .iter()
            .map(|(status, _)| status)
            .collect::<Vec<_>>()
    );
    assert!(
        removed
            .iter()
            .all(|(status, _)| *status == 500 || *status == 503),
        "removals while PostgreSQL was down: {:?}",
        removed.iter().map(|(status, _)| status).collect::<Vec<_>>()
    );
    tokio::task::block_in_place(|| cluster.pg_start());
    let back_at = load.started.elapsed();
    pause(3_000).await;

    // (b) Every backend connection of the service's database terminated mid-load.
    let terminate_at = load.started.elapsed();
    let terminated: usize = tokio::task::block_in_place(|| {
        cluster.psql(
            "postgres",
            &format!(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
                 WHERE datname = '{db_name}' AND pid <> pg_backend_pid()"
            ),
        )
    })
    .parse()
    .unwrap();
    pause(2_000).await;

    // (c) Replica B killed without warning; the load balancer takes it out.
    let kill_at = load.started.elapsed();
    b.child.kill().unwrap(); // SIGKILL
    b.child.wait().unwrap();
    pause(200).await;
    // Every request picked from here on (under the same lock) goes to A.
    let only_a_from = {
        let mut up = load.up.lock().unwrap();
        *up = vec![0];
        load.started.elapsed()
    };
    pause(2_000).await;
    load.stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.await.unwrap();
    }
    let answers = load.answers.lock().unwrap().clone();
    // The probes' answers are among those checked above (each a success or "retry later");
    // with PostgreSQL down they cannot be a success.
    assert!(
        probed.iter().all(|&status| status == 500 || status == 503),
        "Digest requests while PostgreSQL was down: {probed:?}"
    );
    let digest_sent = load.digest_sent.lock().unwrap().clone();
    let digest_requests = digest_sent.len();
    let digest_in_outage = digest_sent
        .iter()
        .filter(|&&t| t >= stopped_at && t < back_at)
        .count();

    // Every answer of a replica that was up was within 5 s, and a failure is "retry later": no
    // server error, no hang, no other status.
    let mut seen: BTreeMap<u16, usize> = BTreeMap::new();
    for x in &answers {
        *seen.entry(x.status).or_default() += 1;
        let killed = x.replica == 1 && x.ended >= kill_at;
        if killed {
            continue; // requests in flight to the killed replica die with it
        }
        assert!(
            x.took <= Duration::from_secs(5),
            "an answer took {:?}: {x:?}",
            x.took
        );
        assert!(
            x.succeeded() || x.retry_later(),
            "neither a success nor \"retry later\": {x:?} (PostgreSQL stopped at {stopped_at:?}, \
             back at {back_at:?}, connections terminated at {terminate_at:?}, B killed at \
             {kill_at:?})"
        );
    }
    let during_outage = answers
        .iter()
        .filter(|x| x.sent >= stopped_at && x.sent < back_at)
        .count();
    let slowest = answers
        .iter()
        .filter(|x| !(x.replica == 1 && x.ended >= kill_at))
        .map(|x| x.took)
        .max()
        .unwrap();
    assert!(
        during_outage > 0,
        "the load kept sending while PostgreSQL was down"
    );
    // Both processes stayed up through the outage and served again within 2 s of its end.
    let mut recovered = Vec::new();
    for replica in [0, 1] {
        let first = first_success(&answers, replica, back_at)
            .unwrap_or_else(|| panic!("replica {replica} never served again"));
        assert!(
            first - back_at <= Duration::from_secs(2),
            "replica {replica} served again {:?} after PostgreSQL returned",
            first - back_at
        );
        recovered.push(first - back_at);
    }
    // At most the requests on the terminated connections failed.
    let failed_after_terminate = answers
        .iter()
        .filter(|x| x.ended >= terminate_at && x.sent < kill_at && !x.succeeded())
        .count();
    assert!(
        failed_after_terminate <= terminated,
        "{failed_after_terminate} requests failed after {terminated} connections were terminated"
    );
    // The survivor served everything sent to it alone.
    let after_kill: Vec<&Answer> = answers.iter().filter(|x| x.sent >= only_a_from).collect();
    assert!(!after_kill.is_empty());
    assert!(
        after_kill.iter().all(|x| x.replica == 0 && x.succeeded()),
        "{after_kill:?}"
    );

    // Nothing acknowledged was lost: read back through the survivor.
    let told = load.ack.lock().unwrap().clone();
    told.check_nothing_lost(&client, &a.base, &org, &token, "pg faults")
        .await;
    // The bulk removals told to retry later removed nothing.
    let pending = pending_in_group(&client, &a.base, group, &manager).await;
    assert!(
        bulk_users.iter().all(|id| pending.contains(id)),
        "{bulk_users:?} not all in {pending:?}"
    );
    eprintln!(
        "pg faults: {} answers {seen:?}; outage 4 s with {during_outage} requests sent, slowest \
         answer {slowest:?}, served again {recovered:?} after PostgreSQL returned; \
         {terminated} connections terminated, {failed_after_terminate} requests failed; \
         {} answers from the survivor alone; {} creates and {} deletes acknowledged ({} requests \
         sent with Digest, {digest_in_outage} of them during the outage, the probes answered \
         {probed:?}), all checked",
        answers.len(),
        after_kill.len(),
        told.created.len(),
        told.deleted.len(),
        digest_requests
    );
    drop(a);
}
