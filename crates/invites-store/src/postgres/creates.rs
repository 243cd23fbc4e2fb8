//! PostgreSQL invitation creates, batched (`write_batches`): one INSERT of every invitation of
//! a batch, the INSERT of their audit rows and the read of what was written, in one statement.
//! A batch holds no two creates for the same user of the same scope (one would conflict with the
//! other).

use std::sync::OnceLock;

use invites_domain::{Invitation, NewInvitation, ObjectId};

use super::write_batches::{audited_cte, shifted, PgQuery, Write};
use super::{select_written, Postgres};
use crate::audit::{self, AuditEntry, AuditRow};
use crate::invitations::{audit_row, vanished, InvitationRow, CREATED, INSERT_SQL};
use crate::Result;

/// Most creates per batch.
pub(crate) const MAX_JOBS: usize = 32;
/// Parameters of the invitation's row in [`INSERT_SQL`].
const ROW_PARAMETERS: usize = 10;
/// Parameters of one create in [`batch_sql`]: its row's, then its audit row's.
const PARAMETERS: usize = ROW_PARAMETERS + audit::COLUMNS;

/// One requested create: `id` is the new invitation's, `detail` its audit row's.
pub(crate) struct Create {
    pub(crate) id: ObjectId,
    pub(crate) new: NewInvitation,
    pub(crate) audit: AuditEntry,
    pub(crate) detail: serde_json::Value,
}

impl Write for Create {
    type Answer = Invitation;
    type Key = (ObjectId, Option<ObjectId>, String);
    const MOST: usize = MAX_JOBS;

    fn id(&self) -> ObjectId {
        self.id
    }

    fn key(&self) -> Self::Key {
        (
            self.new.org_id,
            self.new.project_id,
            self.new.username.clone(),
        )
    }

    fn audit(&self) -> AuditRow<'_> {
        audit_row(&self.audit, CREATED, self.id, &self.detail)
    }

    fn batch_sql(n: usize) -> &'static str {
        batch_sql(n)
    }

    fn bind<'q>(&'q self, query: PgQuery<'q>) -> PgQuery<'q> {
        super::invitations::bind_new(query, self.id, &self.new, self.audit.at)
    }

    async fn alone(&self, db: &Postgres) -> Result<Invitation> {
        db.create_invitation(self.id, &self.new, &self.audit, &self.detail)
            .await
    }

    fn answer(&self, written: Option<InvitationRow>) -> Result<Invitation> {
        written.ok_or_else(|| vanished(self.id))?.decode()
    }
}

/// The creates of `n` invitations in one statement: one INSERT of their rows (`written`), the
/// INSERT of the audit row of each, in statement order, joined on the invitation it names, and
/// the invitations as written ([`select_written`]). Create `i` takes the parameters
/// `PARAMETERS * i + 1 ..= PARAMETERS * (i + 1)`: its row's, as [`INSERT_SQL`] numbers them,
/// then its audit row's. Built once per number of creates.
pub(crate) fn batch_sql(n: usize) -> &'static str {
    static TEXTS: OnceLock<Vec<String>> = OnceLock::new();
    let texts = TEXTS.get_or_init(|| (1..=MAX_JOBS).map(build_batch_sql).collect());
    &texts[n.clamp(1, MAX_JOBS) - 1]
}

fn build_batch_sql(n: usize) -> String {
    let (insert, row) = INSERT_SQL
        .split_once(" VALUES ")
        .expect("INSERT_SQL has a VALUES list");
    let rows: Vec<String> = (0..n).map(|i| shifted(row, PARAMETERS * i)).collect();
    format!(
        "WITH written AS ({insert} VALUES {} RETURNING *), {} {}",
        rows.join(", "),
        audited_cte(n, PARAMETERS, ROW_PARAMETERS + 1),
        select_written(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::postgres::removals::tests::placeholders;
    use crate::postgres::write_batches::tests::{run_batch, transactions};
    use crate::postgres::write_batches::{distinct, Job};
    use crate::StoreError;

    fn create(org: ObjectId, project: Option<ObjectId>, username: &str) -> Create {
        let audit = AuditEntry::operator(chrono::Utc::now());
        Create {
            id: ObjectId::generate(audit.at.timestamp()),
            new: NewInvitation {
                org_id: org,
                project_id: project,
                username: username.to_owned(),
                inviter_username: "admin@example.com".to_owned(),
                roles: vec![],
                team_ids: vec![],
                group_role_assignments: vec![],
            },
            audit,
            detail: serde_json::json!({}),
        }
    }

    #[test]
    fn a_batch_takes_each_user_of_a_scope_once() {
        let (org, other, project) = (
            ObjectId::generate(1),
            ObjectId::generate(2),
            ObjectId::generate(3),
        );
        let waiting = [
            (org, None, "a"),
            (org, None, "b"),
            (org, None, "a"),
            (other, None, "a"),
            (org, Some(project), "a"),
            (org, Some(project), "a"),
        ]
        .map(|(o, p, u)| Job {
            write: create(o, p, u),
            reply: tokio::sync::oneshot::channel().0,
            queued: std::time::Instant::now(),
        });
        let (batch, later) = distinct(waiting.into_iter().collect());
        let keys =
            |jobs: &[Job<Create>]| -> Vec<_> { jobs.iter().map(|j| j.write.key()).collect() };
        let key = |o, p, u: &str| (o, p, u.to_owned());
        assert_eq!(
            keys(&batch),
            vec![
                key(org, None, "a"),
                key(org, None, "b"),
                key(other, None, "a"),
                key(org, Some(project), "a"),
            ]
        );
        assert_eq!(
            keys(&later),
            vec![key(org, None, "a"), key(org, Some(project), "a")]
        );
    }

    #[test]
    fn the_statement_numbers_every_parameter_once() {
        for n in [2, MAX_JOBS] {
            let mut seen = placeholders(batch_sql(n));
            seen.sort_unstable();
            assert_eq!(seen, (1..=PARAMETERS * n).collect::<Vec<_>>());
        }
        let sql = batch_sql(2);
        // The second create's row takes $20..$29, its audit row $30..$38.
        assert!(sql
            .contains("($20, $21, $22, $23, $24, $25, $26, $27, 'PENDING', $28, $29) RETURNING *"));
        assert!(sql.contains("(1, $30, $31, $32, $33, $34, $35, $36, $37, $38)"));
        assert!(sql.ends_with(&select_written()));
    }

    /// A batch is one statement (its rows share a transaction id); one that fails, here on a
    /// user already invited and on an organization that does not exist, writes nothing and runs
    /// each create alone, each with its own answer.
    #[tokio::test]
    async fn a_batch_is_one_statement_and_a_failed_one_runs_each_create_alone() {
        let (store, _dir) = crate::test_util::fresh().await;
        let crate::Engine::Postgres(db) = &store.engine else {
            return;
        };
        let now = chrono::Utc::now();
        let org = store.create_org("Acme", now).await.unwrap();
        let project = store.create_project(org.id, "web", now).await.unwrap();
        let batch = vec![
            create(org.id, None, "a@example.com"),
            create(org.id, Some(project.id), "a@example.com"),
            create(org.id, None, "b@example.com"),
        ];
        let ids: Vec<String> = batch.iter().map(|c| c.id.to_string()).collect();
        let created: Vec<Invitation> = run_batch(db, batch)
            .await
            .into_iter()
            .map(Result::unwrap)
            .collect();
        assert_eq!(
            created.iter().map(|i| i.id.to_string()).collect::<Vec<_>>(),
            ids
        );
        assert_eq!(created[1].project_name.as_deref(), Some("web"));
        assert!(created.iter().all(|i| i.org_name == "Acme"));
        assert_eq!(
            transactions(db, &ids).await,
            1,
            "one statement wrote the batch"
        );
        let audited = || async {
            sqlx::query_scalar::<_, String>(
                "SELECT target_id FROM audit_log WHERE action = $1 ORDER BY id",
            )
            .bind(CREATED)
            .fetch_all(db.native.inner())
            .await
            .unwrap()
        };
        let mut rows = audited().await;
        rows.sort();
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(rows, sorted, "an audit row each");
        // A user invited already, and an organization that does not exist.
        let failing = vec![
            create(org.id, None, "c@example.com"),
            create(org.id, None, "a@example.com"),
            create(ObjectId::generate(1), None, "d@example.com"),
            create(org.id, Some(project.id), "c@example.com"),
        ];
        let answers = run_batch(db, failing).await;
        assert_eq!(answers[0].as_ref().unwrap().username, "c@example.com");
        assert!(
            matches!(answers[1], Err(StoreError::Conflict(_))),
            "{:?}",
            answers[1]
        );
        assert!(
            matches!(answers[2], Err(StoreError::Conflict(_))),
            "{:?}",
            answers[2]
        );
        assert_eq!(answers[3].as_ref().unwrap().project_id, Some(project.id));
        assert_eq!(
            audited().await.len(),
            5,
            "the two created, each alone, audited"
        );
        let pending = store
            .pending_invitations(crate::InvitationScope::Org(org.id), None)
            .await
            .unwrap();
        assert_eq!(pending.len(), 3);
    }
}
