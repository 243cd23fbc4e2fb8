//! The comparison behind the choice of sqlx's drivers on PostgreSQL (ARCHITECTURE.md,
//! "Choices"): the PostgreSQL hot paths (create, get, list, delete) through an `AnyPool`, as
//! everything off the hot paths runs, and through a `PgPool`, the native driver the hot paths
//! run on, with the same SQL texts, binds, row type and decoding, so only the driver differs. Run by `invites-bench drivers` in
//! `cargo xtask bench server --database postgres`; not used by the service.
//!
//! One body per path, written once in `hot_paths!` and expanded for each driver, mirrors the
//! engine's (`postgres::invitations`, `postgres::removals`): a create is one transaction (the
//! invitation and its audit row) and a read back by id; a delete one transaction (a one-removal
//! DELETE ... RETURNING and its audit row). Eight tasks share each pool of eight, each writing to
//! its own organization so that no two writes wait for one scope's version row.

use std::time::Instant;

use chrono::Utc;
use invites_domain::ObjectId;
use serde::Serialize;

use crate::audit::{self, AuditEntry, AuditRow};
use crate::invitations::{audit_row, by_id_sql, col, pending_sql, InvitationRow, INSERT_SQL};
use crate::{InvitationScope, Result, Store, StoreError};

/// Tasks at once, as many as the engine's pool has connections.
const TASKS: usize = 8;
/// Invitations in the listed organization.
const LISTED: usize = 1000;

/// The figures of one path through one driver: the median round by operations per second.
#[derive(Clone, Debug, Serialize)]
pub struct PathFigures {
    /// `create`, `get`, `list` (1,000 invitations) or `delete`.
    pub path: &'static str,
    /// `any` or `pg`.
    pub driver: &'static str,
    pub operations: usize,
    pub ops_per_s: f64,
    /// The lowest and highest operations per second of the rounds.
    pub ops_per_s_range: (f64, f64),
    /// CPU time of this process (user and system, every thread) per operation, in microseconds,
    /// of the median round.
    pub cpu_us_per_op: f64,
}

/// One measured run of a path.
struct Run {
    ops_per_s: f64,
    cpu_us_per_op: f64,
}

/// This process's CPU time so far (user and system, all threads), in microseconds, from
/// `/proc/self/stat` (clock ticks of 10 ms: runs last long enough for that).
fn cpu_us() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are the 14th and 15th fields; `rest` starts at the 3rd.
    (ticks(11) + ticks(12)) * 10_000.0
}

/// Runs `per_task` operations on each of [`TASKS`] tasks; `op(task, i)` is one operation.
async fn timed<F, Fut>(per_task: usize, op: F) -> Result<Run>
where
    F: Fn(usize, usize) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = Result<()>> + Send,
{
    let (started, cpu) = (Instant::now(), cpu_us());
    let mut tasks = Vec::with_capacity(TASKS);
    for task in 0..TASKS {
        let op = op.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..per_task {
                op(task, i).await?;
            }
            Ok::<(), StoreError>(())
        }));
    }
    for t in tasks {
        t.await
            .map_err(|e| StoreError::Corrupt(format!("benchmark task: {e}")))??;
    }
    let n = (per_task * TASKS) as f64;
    Ok(Run {
        ops_per_s: n / started.elapsed().as_secs_f64(),
        cpu_us_per_op: (cpu_us() - cpu) / n,
    })
}

/// The bodies of the four paths for one driver: `$db` is the sqlx database type, `$row` its row.
macro_rules! hot_paths {
    ($module:ident, $db:ty, $row:ty) => {
        mod $module {
            use super::*;

            pub(super) type Pool = sqlx::Pool<$db>;

            fn row(r: &$row) -> sqlx::Result<InvitationRow> {
                use sqlx::Row;
                Ok(InvitationRow {
                    id: r.try_get(col::ID)?,
                    org_id: r.try_get(col::ORG_ID)?,
                    org_name: r.try_get(col::ORG_NAME)?,
                    project_id: r.try_get(col::PROJECT_ID)?,
                    project_name: r.try_get(col::PROJECT_NAME)?,
                    username: r.try_get(col::USERNAME)?,
                    inviter_username: r.try_get(col::INVITER_USERNAME)?,
                    roles: r.try_get(col::ROLES)?,
                    team_ids: r.try_get(col::TEAM_IDS)?,
                    group_role_assignments: r.try_get(col::GROUP_ROLE_ASSIGNMENTS)?,
                    status: r.try_get(col::STATUS)?,
                    created_at: r.try_get(col::CREATED_AT)?,
                    expires_at: r.try_get(col::EXPIRES_AT)?,
                })
            }

            async fn write_audit(
                conn: &mut <$db as sqlx::Database>::Connection,
                rows: &[AuditRow<'_>],
            ) -> Result<()> {
                let mut query = sqlx::query(audit::insert_sql(rows.len()));
                for row in rows {
                    query = query
                        .bind(row.entry.at.timestamp_millis())
                        .bind(&row.entry.actor_kind)
                        .bind(&row.entry.actor_id)
                        .bind(&row.entry.actor_display)
                        .bind(row.action)
                        .bind(row.target_kind)
                        .bind(&row.target_id)
                        .bind(&row.entry.remote_addr)
                        .bind(&row.detail);
                }
                query.execute(&mut *conn).await?;
                Ok(())
            }

            pub(super) async fn get(pool: &Pool, id: ObjectId) -> Result<()> {
                let found = sqlx::query(by_id_sql())
                    .bind(id.to_string())
                    .fetch_optional(pool)
                    .await?;
                let found = found.map(|r| row(&r)).transpose()?;
                found
                    .map(InvitationRow::decode)
                    .transpose()?
                    .ok_or_else(|| StoreError::Corrupt(format!("invitation {id} missing")))?;
                Ok(())
            }

            pub(super) async fn create(
                pool: &Pool,
                org: ObjectId,
                username: String,
                entry: &AuditEntry,
            ) -> Result<ObjectId> {
                let id = ObjectId::generate(entry.at.timestamp());
                let roles = r#"["ORG_MEMBER"]"#;
                let detail = serde_json::json!({"username": username, "roles": ["ORG_MEMBER"]});
                let mut tx = pool.begin().await?;
                sqlx::query(INSERT_SQL)
                    .bind(id.to_string())
                    .bind(org.to_string())
                    .bind(None::<String>)
                    .bind(&username)
                    .bind("bench")
                    .bind(roles)
                    .bind("[]")
                    .bind("[]")
                    .bind(entry.at.timestamp_millis())
                    .bind(entry.at.timestamp_millis() + 30 * 86_400_000)
                    .execute(&mut *tx)
                    .await?;
                write_audit(&mut tx, &[audit_row(entry, "invitation.created", id, &detail)])
                    .await?;
                tx.commit().await?;
                get(pool, id).await?;
                Ok(id)
            }

            pub(super) async fn list(pool: &Pool, org: ObjectId) -> Result<()> {
                let (sql, id) = pending_sql(InvitationScope::Org(org), false);
                let rows = sqlx::query(sql).bind(id.to_string()).fetch_all(pool).await?;
                let decoded = rows
                    .iter()
                    .map(|r| row(r)?.decode())
                    .collect::<Result<Vec<_>>>()?;
                if decoded.len() != LISTED {
                    return Err(StoreError::Corrupt(format!("listed {}", decoded.len())));
                }
                Ok(())
            }

            pub(super) async fn delete(
                pool: &Pool,
                org: ObjectId,
                id: ObjectId,
                entry: &AuditEntry,
            ) -> Result<()> {
                let mut tx = pool.begin().await?;
                let removed = sqlx::query(crate::removals::delete_sql(1))
                    .bind(id.to_string())
                    .bind(None::<String>)
                    .bind(Some(org.to_string()))
                    .fetch_all(&mut *tx)
                    .await?;
                if removed.len() != 1 {
                    return Err(StoreError::Corrupt(format!("{id} not removed")));
                }
                let audit = AuditRow {
                    entry,
                    action: "invitation.removed",
                    target_kind: "invitation",
                    target_id: id.to_string(),
                    detail: "{}".to_owned(),
                };
                write_audit(&mut tx, &[audit]).await?;
                tx.commit().await?;
                Ok(())
            }
        }
    };
}

hot_paths!(any, sqlx::Any, sqlx::any::AnyRow);
hot_paths!(pg, sqlx::Postgres, sqlx::postgres::PgRow);

/// Runs the four paths of one driver once: `operations` creates, gets and deletes, a twentieth
/// as many lists. `round` keeps usernames distinct across rounds.
macro_rules! round {
    ($module:ident, $pool:expr, $orgs:expr, $listed:expr, $operations:expr, $round:expr) => {{
        let pool: $module::Pool = $pool.clone();
        let orgs: std::sync::Arc<Vec<ObjectId>> = $orgs.clone();
        let per_task = $operations / TASKS;
        let entry = std::sync::Arc::new(AuditEntry::operator(Utc::now()));
        let created = std::sync::Arc::new(std::sync::Mutex::new(vec![Vec::new(); TASKS]));
        let tag = format!("{}-{}", stringify!($module), $round);
        let create = {
            let (pool, orgs, entry, created) =
                (pool.clone(), orgs.clone(), entry.clone(), created.clone());
            timed(per_task, move |task, i| {
                let (pool, orgs, entry, created) =
                    (pool.clone(), orgs.clone(), entry.clone(), created.clone());
                let username = format!("{tag}-{task}-{i}@bench.example");
                async move {
                    let id = $module::create(&pool, orgs[task], username, &entry).await?;
                    created.lock().expect("not poisoned")[task].push(id);
                    Ok(())
                }
            })
            .await?
        };
        let ids = std::sync::Arc::new(created.lock().expect("not poisoned").clone());
        let get = {
            let (pool, ids) = (pool.clone(), ids.clone());
            timed(per_task, move |task, i| {
                let (pool, id) = (pool.clone(), ids[task][i]);
                async move { $module::get(&pool, id).await }
            })
            .await?
        };
        let list = {
            let (pool, listed) = (pool.clone(), $listed);
            timed((per_task / 20).max(1), move |_, _| {
                let pool = pool.clone();
                async move { $module::list(&pool, listed).await }
            })
            .await?
        };
        let delete = {
            let (pool, orgs, ids) = (pool.clone(), orgs.clone(), ids.clone());
            timed(per_task, move |task, i| {
                let (pool, org, id, entry) =
                    (pool.clone(), orgs[task], ids[task][i], entry.clone());
                async move { $module::delete(&pool, org, id, &entry).await }
            })
            .await?
        };
        [
            ("create", per_task * TASKS, create),
            ("get", per_task * TASKS, get),
            ("list", (per_task / 20).max(1) * TASKS, list),
            ("delete", per_task * TASKS, delete),
        ]
    }};
}

/// Migrates the PostgreSQL database `url` names, fills it (an organization per task and one
/// with `LISTED` pending invitations) and measures each path through both drivers, `rounds`
/// times each, the drivers alternating; the median round of each path and driver.
pub async fn compare(url: &str, operations: usize, rounds: usize) -> Result<Vec<PathFigures>> {
    let store = Store::open(url).await?;
    if store.backend() != crate::Backend::Postgres {
        return Err(StoreError::Corrupt(
            "the driver comparison needs PostgreSQL".into(),
        ));
    }
    let now = Utc::now();
    let mut orgs = Vec::with_capacity(TASKS);
    for task in 0..TASKS {
        orgs.push(store.create_org(&format!("Drivers-{task}"), now).await?.id);
    }
    let orgs = std::sync::Arc::new(orgs);
    let listed = store.create_org("Drivers-List", now).await?.id;
    let t = now.timestamp_millis();
    store
        .run_script(&format!(
            "INSERT INTO invitations (id, org_id, project_id, username, inviter_username, roles, \
             team_ids, group_role_assignments, status, created_at, expires_at) \
             SELECT 'ee' || lpad(to_hex(x), 22, '0'), '{listed}', NULL, 'list' || x || '@bench.example', \
             'bench', '[\"ORG_MEMBER\"]', '[]', '[]', 'PENDING', {t}, {} \
             FROM generate_series(0, {}) AS x;",
            t + 30 * 86_400_000,
            LISTED - 1
        ))
        .await?;
    store.close().await;
    let any_pool = sqlx::any::AnyPoolOptions::new()
        .max_connections(TASKS as u32)
        .connect(url)
        .await?;
    let pg_pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(TASKS as u32)
        .connect(url)
        .await?;
    let mut runs: Vec<(&'static str, &'static str, usize, Run)> = Vec::new();
    for round in 0..rounds {
        for (path, n, run) in round!(any, any_pool, orgs, listed, operations, round) {
            runs.push((path, "any", n, run));
        }
        for (path, n, run) in round!(pg, pg_pool, orgs, listed, operations, round) {
            runs.push((path, "pg", n, run));
        }
    }
    any_pool.close().await;
    pg_pool.close().await;
    let mut figures = Vec::new();
    for path in ["create", "get", "list", "delete"] {
        for driver in ["any", "pg"] {
            let mut these: Vec<&(&str, &str, usize, Run)> = runs
                .iter()
                .filter(|(p, d, _, _)| *p == path && *d == driver)
                .collect();
            these.sort_by(|x, y| x.3.ops_per_s.total_cmp(&y.3.ops_per_s));
            let (Some(low), Some(high)) = (these.first(), these.last()) else {
                continue;
            };
            let median = these[these.len() / 2];
            figures.push(PathFigures {
                path,
                driver,
                operations: median.2,
                ops_per_s: median.3.ops_per_s,
                ops_per_s_range: (low.3.ops_per_s, high.3.ops_per_s),
                cpu_us_per_op: median.3.cpu_us_per_op,
            });
        }
    }
    Ok(figures)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_time_is_read_and_moves() {
        let before = cpu_us();
        let mut x = 0u64;
        let started = Instant::now();
        while started.elapsed() < std::time::Duration::from_millis(50) {
            x = x.wrapping_mul(31).wrapping_add(7);
        }
        std::hint::black_box(x);
        assert!(cpu_us() > before, "{before} did not move");
    }

    #[tokio::test]
    async fn both_drivers_run_every_path_on_postgres() {
        let Ok(admin_url) = std::env::var("INVITES_STORE_TEST_POSTGRES_URL") else {
            // The comparison needs PostgreSQL; SQLite is refused, with a reason.
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("t.db");
            let err = compare(path.to_str().unwrap(), 16, 1).await.unwrap_err();
            assert!(err.to_string().contains("PostgreSQL"), "{err}");
            return;
        };
        let url = crate::test_util::fresh_postgres(&admin_url).await;
        let figures = compare(&url, 16, 1).await.unwrap();
        let names: Vec<(&str, &str)> = figures.iter().map(|f| (f.path, f.driver)).collect();
        assert_eq!(
            names,
            [
                ("create", "any"),
                ("create", "pg"),
                ("get", "any"),
                ("get", "pg"),
                ("list", "any"),
                ("list", "pg"),
                ("delete", "any"),
                ("delete", "pg"),
            ]
        );
        assert!(figures.iter().all(|f| f.ops_per_s > 0.0), "{figures:?}");
    }
}
