//! SQLite body of a batch of removals (see `crate::removals`): run on the writer thread, inside
//! its transaction.

use std::collections::{HashMap, HashSet};

use crate::removals::{
    audit_rows, delete_sql, mark_project_invitations, org_misses, outcomes, project_owners_sql,
    scope_columns, Removal, Request,
};
use crate::Result;

/// Removes `requests` (distinct ids) and audits each removal; an outcome per request, in order.
pub(crate) fn remove(conn: &rusqlite::Connection, requests: &[Request]) -> Result<Vec<Removal>> {
    let mut delete = conn.prepare_cached(delete_sql(requests.len()))?;
    let mut rows = delete.query(rusqlite::params_from_iter(requests.iter().flat_map(|r| {
        let (project, org) = scope_columns(r.scope);
        [Some(r.id.to_string()), project, org]
    })))?;
    let mut removed = HashSet::with_capacity(requests.len());
    while let Some(row) = rows.next()? {
        removed.insert(row.get::<_, String>(0)?);
    }
    drop(rows);
    let mut outcomes = outcomes(requests, &removed);
    let misses = org_misses(requests, &outcomes);
    if !misses.is_empty() {
        let mut owners_query = conn.prepare_cached(project_owners_sql(misses.len()))?;
        let owners = owners_query
            .query_map(
                rusqlite::params_from_iter(misses.iter().map(|(_, id, _)| id.to_string())),
                |row| Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?)),
            )?
            .collect::<rusqlite::Result<HashMap<String, String>>>()?;
        mark_project_invitations(&mut outcomes, &misses, &owners);
    }
    super::write_audit(conn, &audit_rows(requests, &outcomes))?;
    Ok(outcomes)
}
