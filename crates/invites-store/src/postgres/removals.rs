//! PostgreSQL body of a batch of removals (see `crate::removals`): one statement, its own
//! transaction.

use std::collections::{HashMap, HashSet};
use std::sync::OnceLock;

use crate::removals::{
    delete_sql, mark_project_invitations, org_misses, outcomes, scope_columns, Removal, Request,
    MAX_BATCH,
};
use crate::Result;

/// Parameters of a removal in [`remove_sql`]: the DELETE's three (`delete_sql`), then the audit
/// row's time, actor kind, id and display, and remote address.
const PARAMETERS: usize = 8;

/// The removal of `n` requests and the audit row of each one removed, in one statement: the
/// DELETE of `delete_sql` in a CTE, and an INSERT of the audit rows joined on what it returned,
/// in request order. It returns (id, NULL) for each invitation removed, and (id, organization)
/// for each requested id that is a pending project invitation (what `project_owners_sql` reads
/// for the misses of organization-scope removals; read in the statement's snapshot, so the ones
/// it removed show too, and only misses consult it). In the statement rather than after it: a
/// read that failed after the removal committed would fail a batch whose removals were done. One statement is one transaction without a BEGIN and a COMMIT of its own:
/// one round trip where the DELETE, the audit INSERT and the transaction's ends took four, each
/// a wait for the replica's next statement while the transaction held its rows and slot locks
/// (`pg_stat_activity` during benchmark (c): "idle in transaction" was most of a removal's
/// time on a busy machine). Built once per batch size.
pub(crate) fn remove_sql(n: usize) -> &'static str {
    static TEXTS: OnceLock<Vec<String>> = OnceLock::new();
    let texts = TEXTS.get_or_init(|| {
        (1..=MAX_BATCH)
            .map(|n| {
                let audited: Vec<String> = (0..n)
                    .map(|i| {
                        let p = 3 * n + (PARAMETERS - 3) * i + 1;
                        format!(
                            "({i}, ${}, ${p}, ${}, ${}, ${}, ${})",
                            3 * i + 1,
                            p + 1,
                            p + 2,
                            p + 3,
                            p + 4
                        )
                    })
                    .collect();
                let ids: Vec<String> = (0..n).map(|i| format!("${}", 3 * i + 1)).collect();
                format!(
                    "WITH removed AS ({}), audited AS (INSERT INTO audit_log ({names}) \
                     SELECT a.at, a.actor_kind, a.actor_id, a.actor_display, 'invitation.removed', \
                     'invitation', a.id, a.remote_addr, '{{}}' \
                     FROM (VALUES {}) AS a (n, id, at, actor_kind, actor_id, actor_display, \
                     remote_addr) JOIN removed ON removed.id = a.id ORDER BY a.n) \
                     SELECT id, NULL AS owner FROM removed UNION ALL \
                     SELECT id, org_id FROM invitations WHERE status = 'PENDING' \
                     AND project_id IS NOT NULL AND id IN ({})",
                    delete_sql(n),
                    audited.join(", "),
                    ids.join(", "),
                    names = crate::audit::COLUMN_NAMES,
                )
            })
            .collect()
    });
    &texts[n.clamp(1, MAX_BATCH) - 1]
}

/// Removes `requests` (distinct ids) and audits each removal; an outcome per request, in order.
pub(crate) async fn remove(db: &super::Postgres, requests: &[Request]) -> Result<Vec<Removal>> {
    let mut query = sqlx::query_as::<_, (String, Option<String>)>(remove_sql(requests.len()));
    for request in requests {
        let (project, org) = scope_columns(request.scope);
        query = query.bind(request.id.to_string()).bind(project).bind(org);
    }
    for request in requests {
        let entry = &request.audit;
        query = query
            .bind(entry.at.timestamp_millis())
            .bind(&entry.actor_kind)
            .bind(&entry.actor_id)
            .bind(&entry.actor_display)
            .bind(&entry.remote_addr);
    }
    let rows = db.native.run(async |c| query.fetch_all(c).await).await?;
    let mut removed = HashSet::new();
    let mut owners = HashMap::new();
    for (id, owner) in rows {
        match owner {
            None => {
                removed.insert(id);
            }
            Some(org) => {
                owners.insert(id, org);
            }
        }
    }
    let mut outcomes = outcomes(requests, &removed);
    let misses = org_misses(requests, &outcomes);
    mark_project_invitations(&mut outcomes, &misses, &owners);
    Ok(outcomes)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The `$N` placeholders of `sql`, in order of appearance (also `bulk_removals`' tests).
    pub(crate) fn placeholders(sql: &str) -> Vec<usize> {
        sql.split('$')
            .skip(1)
            .map(|s| {
                s.chars()
                    .take_while(char::is_ascii_digit)
                    .collect::<String>()
            })
            .map(|d| d.parse().expect("a number after $"))
            .collect()
    }

    #[test]
    fn the_statement_numbers_every_parameter_and_reuses_only_the_ids() {
        for n in [1, 2, MAX_BATCH] {
            let seen = placeholders(remove_sql(n));
            let distinct: std::collections::BTreeSet<usize> = seen.iter().copied().collect();
            assert_eq!(distinct, (1..=PARAMETERS * n).collect());
            // Each id three times (the DELETE, its audit row, the project owners' read), every
            // other parameter once.
            assert_eq!(seen.len(), PARAMETERS * n + 2 * n);
        }
        // n = 2: the second removal's audit row joins on its id, $4, and takes $12..$16.
        assert!(remove_sql(2)
            .contains("(0, $1, $7, $8, $9, $10, $11), (1, $4, $12, $13, $14, $15, $16)"));
    }
}
