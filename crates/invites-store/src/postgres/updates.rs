//! PostgreSQL invitation updates, batched (`write_batches`): one UPDATE of every invitation of a
//! batch from a list of their new values, the INSERT of their audit rows and the read of what was
//! written, in one statement. A batch holds no invitation twice (the UPDATE would apply one of
//! the two at random).

use std::sync::OnceLock;

use invites_domain::{Invitation, ObjectId};

use super::write_batches::{audited_cte, shifted, PgQuery, Write};
use super::{select_written, Postgres};
use crate::audit::{self, AuditEntry, AuditRow};
use crate::invitations::{audit_row, InvitationRow, UPDATED};
use crate::Result;

/// Most updates per batch.
pub(crate) const MAX_JOBS: usize = 32;
/// Parameters of an update's new values: the id, the roles, teams and project role assignments
/// (JSON, each kept as it was when NULL), as `crate::invitations::UPDATE_SQL` numbers them.
const ROW_PARAMETERS: usize = 4;
/// Parameters of one update in [`batch_sql`]: its values, then its audit row's.
const PARAMETERS: usize = ROW_PARAMETERS + audit::COLUMNS;

/// One requested update of the pending invitation `id`: the JSON of what changes, `detail` the
/// audit row's.
pub(crate) struct Update {
    pub(crate) id: ObjectId,
    pub(crate) roles: Option<String>,
    pub(crate) team_ids: Option<String>,
    pub(crate) group_role_assignments: Option<String>,
    pub(crate) audit: AuditEntry,
    pub(crate) detail: serde_json::Value,
}

impl Write for Update {
    /// The invitation as updated; none if no pending invitation has the id.
    type Answer = Option<Invitation>;
    type Key = ObjectId;
    const MOST: usize = MAX_JOBS;

    fn id(&self) -> ObjectId {
        self.id
    }

    fn key(&self) -> ObjectId {
        self.id
    }

    fn audit(&self) -> AuditRow<'_> {
        audit_row(&self.audit, UPDATED, self.id, &self.detail)
    }

    fn batch_sql(n: usize) -> &'static str {
        batch_sql(n)
    }

    fn bind<'q>(&'q self, query: PgQuery<'q>) -> PgQuery<'q> {
        query
            .bind(self.id.to_string())
            .bind(&self.roles)
            .bind(&self.team_ids)
            .bind(&self.group_role_assignments)
    }

    async fn alone(&self, db: &Postgres) -> Result<Option<Invitation>> {
        db.update_invitation(
            self.id,
            self.roles.clone(),
            self.team_ids.clone(),
            self.group_role_assignments.clone(),
            &self.audit,
            &self.detail,
        )
        .await
    }

    fn answer(&self, written: Option<InvitationRow>) -> Result<Option<Invitation>> {
        written.map(InvitationRow::decode).transpose()
    }
}

/// The updates of `n` invitations in one statement: one UPDATE of the pending ones among them
/// from the list of their new values (`written`), the INSERT of the audit row of each updated,
/// in statement order, and the invitations as written ([`select_written`]). Update `i` takes
/// parameters `PARAMETERS * i + 1 ..= PARAMETERS * (i + 1)`: its id and values, then its audit
/// row's. Built once per number of updates.
pub(crate) fn batch_sql(n: usize) -> &'static str {
    static TEXTS: OnceLock<Vec<String>> = OnceLock::new();
    let texts = TEXTS.get_or_init(|| (1..=MAX_JOBS).map(build_batch_sql).collect());
    &texts[n.clamp(1, MAX_JOBS) - 1]
}

fn build_batch_sql(n: usize) -> String {
    let rows: Vec<String> = (0..n)
        .map(|i| shifted("($1, $2, $3, $4)", PARAMETERS * i))
        .collect();
    format!(
        "WITH v (id, roles, team_ids, group_role_assignments) AS (VALUES {}), \
         written AS (UPDATE invitations i SET roles = COALESCE(v.roles, i.roles), \
         team_ids = COALESCE(v.team_ids, i.team_ids), \
         group_role_assignments = COALESCE(v.group_role_assignments, i.group_role_assignments) \
         FROM v WHERE i.id = v.id AND i.status = 'PENDING' RETURNING i.*), {} {}",
        rows.join(", "),
        audited_cte(n, PARAMETERS, ROW_PARAMETERS + 1),
        select_written(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::invitations::to_json;
    use crate::postgres::removals::tests::placeholders;
    use crate::postgres::write_batches::tests::{run_batch, transactions};

    fn update(id: ObjectId, roles: Option<&[&str]>, teams: Option<&[&str]>) -> Update {
        Update {
            id,
            roles: roles.map(to_json),
            team_ids: teams.map(to_json),
            group_role_assignments: None,
            audit: AuditEntry::operator(chrono::Utc::now()),
            detail: serde_json::json!({}),
        }
    }

    #[test]
    fn the_statement_numbers_every_parameter_once() {
        for n in [2, MAX_JOBS] {
            let mut seen = placeholders(batch_sql(n));
            seen.sort_unstable();
            assert_eq!(seen, (1..=PARAMETERS * n).collect::<Vec<_>>());
        }
        let sql = batch_sql(2);
        // The second update's values take $14..$17, its audit row $18..$26.
        assert!(
            sql.contains("VALUES ($1, $2, $3, $4), ($14, $15, $16, $17))"),
            "{sql}"
        );
        assert!(
            sql.contains("(1, $18, $19, $20, $21, $22, $23, $24, $25, $26)"),
            "{sql}"
        );
        assert!(sql.ends_with(&select_written()));
    }

    /// A batch is one statement: the pending invitations among it updated (what each names
    /// changed, the rest kept), one audit row each, and none for an id no pending invitation
    /// has.
    #[tokio::test]
    async fn a_batch_updates_the_pending_ones_in_one_statement() {
        let (store, _dir) = crate::test_util::fresh().await;
        let crate::Engine::Postgres(db) = &store.engine else {
            return;
        };
        let now = chrono::Utc::now();
        let audit = AuditEntry::operator(now);
        let org = store.create_org("Acme", now).await.unwrap();
        let mut ids = Vec::new();
        for user in ["a", "b", "c"] {
            let new = invites_domain::NewInvitation {
                org_id: org.id,
                project_id: None,
                username: format!("{user}@example.com"),
                inviter_username: "owner@example.com".into(),
                roles: vec!["ORG_MEMBER".into()],
                team_ids: vec!["t1".into()],
                group_role_assignments: vec![],
            };
            ids.push(store.create_invitation(&new, &audit).await.unwrap().id);
        }
        store.accept_invitation(ids[2], &audit).await.unwrap();
        let answers = run_batch(
            db,
            vec![
                update(ids[0], Some(&["ORG_OWNER"]), None),
                update(ids[1], None, Some(&["t2", "t3"])),
                update(ids[2], Some(&["ORG_OWNER"]), None),
                update(ObjectId::generate(1), Some(&["ORG_OWNER"]), None),
            ],
        )
        .await;
        let answers: Vec<Option<Invitation>> = answers.into_iter().map(Result::unwrap).collect();
        let a = answers[0].as_ref().unwrap();
        assert_eq!(
            (a.roles.clone(), a.team_ids.clone()),
            (vec!["ORG_OWNER".to_owned()], vec!["t1".to_owned()])
        );
        assert_eq!(a.org_name, "Acme");
        let b = answers[1].as_ref().unwrap();
        assert_eq!(
            (b.roles.clone(), b.team_ids.clone()),
            (
                vec!["ORG_MEMBER".to_owned()],
                vec!["t2".to_owned(), "t3".to_owned()]
            )
        );
        assert!(answers[2].is_none(), "accepted: not pending");
        assert!(answers[3].is_none(), "no such invitation");
        let updated = [ids[0].to_string(), ids[1].to_string()];
        assert_eq!(
            transactions(db, &updated).await,
            1,
            "one statement updated both"
        );
        let audited: Vec<String> = sqlx::query_scalar(
            "SELECT target_id FROM audit_log WHERE action = $1 ORDER BY target_id",
        )
        .bind(UPDATED)
        .fetch_all(db.native.inner())
        .await
        .unwrap();
        let mut expected = updated.to_vec();
        expected.sort();
        assert_eq!(audited, expected);
        let stored = store.invitation(ids[2]).await.unwrap().unwrap();
        assert_eq!(
            stored.roles,
            vec!["ORG_MEMBER".to_owned()],
            "the accepted one kept"
        );
    }
}
