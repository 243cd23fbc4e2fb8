//! The counts of the rate limit and the failed-authentication lockout that replicas over one
//! PostgreSQL database share (`limit_counts`, migration 9, PostgreSQL only).
//!
//! Each replica counts in memory and, every so often, calls [`Store::merge_limit_counts`] once:
//! one statement adds what it counted since its last call to the rows of the current minute
//! window, a second reads every row of that window changed since its last read (by the `seq`
//! each change takes from a sequence), so one round trip of two statements carries a replica's
//! counts out and everyone else's in, however many requests it served. On SQLite there is
//! nothing to share: one process serves the database, and its counts are the deployment's.

use std::sync::atomic::Ordering;

use crate::{Backend, Result, Store};

/// A count of one subject (an API key's requests, an address's or a key's failed
/// authentications) in one limit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LimitCount {
    /// Which limit: the caller's name for it, kept as it is.
    pub kind: String,
    /// Who is counted (an id, an address, a username), at most 64 characters.
    pub subject: String,
    pub count: i64,
}

/// What every replica counted, as far as the database knows.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LimitTotals {
    /// The window's totals changed since the `since` of the call.
    pub changed: Vec<LimitCount>,
    /// The `since` of the next call.
    pub seen: i64,
}

/// A row of `limit_counts` as read back.
#[derive(sqlx::FromRow)]
struct CountRow {
    kind: String,
    subject: String,
    count: i64,
    seq: i64,
}

/// Adds a batch of counts: the batch is a JSON array of `{kind, subject, n}`, taken in key order
/// so that two replicas adding to the same rows lock them in the same order.
const ADD: &str = "INSERT INTO limit_counts (kind, subject, window_start, count, seq) \
     SELECT t.kind, t.subject, $2, t.n, nextval('limit_counts_seq') \
     FROM jsonb_to_recordset(CAST($1 AS jsonb)) AS t(kind TEXT, subject TEXT, n BIGINT) \
     ORDER BY t.kind, t.subject \
     ON CONFLICT (kind, subject, window_start) \
     DO UPDATE SET count = limit_counts.count + EXCLUDED.count, seq = EXCLUDED.seq";

const CHANGED: &str = "SELECT kind, subject, count, seq FROM limit_counts \
     WHERE window_start = $1 AND seq > $2 ORDER BY seq";

impl Store {
    /// Adds `counted` (what this replica counted since its last call) to the shared counts of
    /// the window starting at `window_start_ms`, and returns the window's totals changed since
    /// `since` (the `seen` of the last call; 0 the first time) with every replica's counts in
    /// them. Rows of earlier windows are deleted the first time a store calls in a new window.
    ///
    /// None on SQLite, where there is nothing to share (one process serves the database).
    ///
    /// A change whose sequence number was taken before one already read but committed after it
    /// is not read; the next change of the same row (any replica's next count of that subject)
    /// carries it.
    pub async fn merge_limit_counts(
        &self,
        window_start_ms: i64,
        counted: &[LimitCount],
        since: i64,
    ) -> Result<Option<LimitTotals>> {
        if self.backend() == Backend::Sqlite {
            return Ok(None);
        }
        if self.limit_window.swap(window_start_ms, Ordering::Relaxed) != window_start_ms {
            sqlx::query("DELETE FROM limit_counts WHERE window_start < $1")
                .bind(window_start_ms)
                .execute(&mut *self.write_connection().await?)
                .await?;
        }
        if !counted.is_empty() {
            let batch: Vec<serde_json::Value> = counted
                .iter()
                .map(|c| {
                    serde_json::json!({
                        "kind": c.kind,
                        "subject": c.subject.chars().take(64).collect::<String>(),
                        "n": c.count,
                    })
                })
                .collect();
            sqlx::query(ADD)
                .bind(serde_json::Value::Array(batch).to_string())
                .bind(window_start_ms)
                .execute(&mut *self.write_connection().await?)
                .await?;
        }
        let rows: Vec<CountRow> = sqlx::query_as(CHANGED)
            .bind(window_start_ms)
            .bind(since)
            .fetch_all(&mut *self.read_connection().await?)
            .await?;
        let seen = rows.iter().map(|r| r.seq).max().unwrap_or(since).max(since);
        Ok(Some(LimitTotals {
            changed: rows
                .into_iter()
                .map(|r| LimitCount {
                    kind: r.kind,
                    subject: r.subject,
                    count: r.count,
                })
                .collect(),
            seen,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(kind: &str, subject: &str, count: i64) -> LimitCount {
        LimitCount {
            kind: kind.to_owned(),
            subject: subject.to_owned(),
            count,
        }
    }

    #[tokio::test]
    async fn replicas_see_each_others_counts_of_the_window() {
        let (a, url, _d) = crate::test_util::fresh_with_url().await;
        if a.backend() == Backend::Sqlite {
            assert_eq!(
                a.merge_limit_counts(60_000, &[count("rate", "k", 1)], 0)
                    .await
                    .unwrap(),
                None,
                "nothing is shared on SQLite"
            );
            return;
        }
        let b = Store::open(&url).await.unwrap();
        let got = a
            .merge_limit_counts(60_000, &[count("rate", "k", 3), count("auth", "k", 1)], 0)
            .await
            .unwrap()
            .unwrap();
        let mut changed = got.changed.clone();
        changed.sort_by(|x, y| x.kind.cmp(&y.kind));
        assert_eq!(changed, [count("auth", "k", 1), count("rate", "k", 3)]);
        // B adds to the same row and reads A's counts with its own.
        let from_b = b
            .merge_limit_counts(60_000, &[count("rate", "k", 2)], 0)
            .await
            .unwrap()
            .unwrap();
        assert!(from_b.changed.contains(&count("rate", "k", 5)));
        assert!(from_b.changed.contains(&count("auth", "k", 1)));
        // A reads only what changed since its last read.
        let again = a
            .merge_limit_counts(60_000, &[], got.seen)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(again.changed, [count("rate", "k", 5)]);
        let quiet = a
            .merge_limit_counts(60_000, &[], again.seen)
            .await
            .unwrap()
            .unwrap();
        assert_eq!((quiet.changed.len(), quiet.seen), (0, again.seen));
        // The next window starts from nothing, and its first merge deletes the last one's rows.
        let next = b
            .merge_limit_counts(120_000, &[count("rate", "k", 1)], from_b.seen)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(next.changed, [count("rate", "k", 1)]);
        let (left,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM limit_counts")
            .fetch_one(a.pool())
            .await
            .unwrap();
        assert_eq!(left, 1);
    }
}
