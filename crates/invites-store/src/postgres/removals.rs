//! PostgreSQL body of a batch of removals (see `crate::removals`): one transaction of the pool.

use std::collections::{HashMap, HashSet};

use crate::removals::{
    audit_rows, delete_sql, mark_project_invitations, org_misses, outcomes, project_owners_sql,
    scope_columns, Removal, Request,
};
use crate::Result;

/// Removes `requests` (distinct ids) and audits each removal; an outcome per request, in order.
pub(crate) async fn remove(db: &super::Postgres, requests: &[Request]) -> Result<Vec<Removal>> {
    use sqlx::Acquire;
    let mut query = sqlx::query_as::<_, (String,)>(delete_sql(requests.len()));
    for request in requests {
        let (project, org) = scope_columns(request.scope);
        query = query.bind(request.id.to_string()).bind(project).bind(org);
    }
    let mut conn = db.connection().await?;
    let mut tx = conn.begin().await?;
    let removed: HashSet<String> = query
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .map(|(id,)| id)
        .collect();
    let mut outcomes = outcomes(requests, &removed);
    let misses = org_misses(requests, &outcomes);
    if !misses.is_empty() {
        let mut query = sqlx::query_as::<_, (String, String)>(project_owners_sql(misses.len()));
        for (_, id, _) in &misses {
            query = query.bind(id.to_string());
        }
        let owners: HashMap<String, String> =
            query.fetch_all(&mut *tx).await?.into_iter().collect();
        mark_project_invitations(&mut outcomes, &misses, &owners);
    }
    super::write_audit(&mut tx, &audit_rows(requests, &outcomes)).await?;
    tx.commit().await?;
    Ok(outcomes)
}
