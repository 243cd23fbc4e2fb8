//! Credential and role lookups used to authenticate and authorize requests.

use std::sync::atomic::Ordering;

use chrono::{DateTime, Utc};
use invites_domain::{GroupRole, ObjectId, OrgRole, Principal, PrincipalKind};

use crate::{from_millis, parse_object_id, OrgRecord, ProjectRecord, Result, Store, StoreError};

/// What Digest verification needs to know about an API key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiKeyAuth {
    pub principal_id: ObjectId,
    pub org_id: ObjectId,
    pub public_key: String,
    pub ha1_md5: String,
    pub ha1_sha256: String,
    /// Addresses or CIDR blocks the key may be used from; empty means anywhere.
    pub access_list: Vec<String>,
}

/// What the OAuth2 token endpoint needs to know about a service account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceAccountAuth {
    pub principal_id: ObjectId,
    pub org_id: ObjectId,
    pub client_id: String,
    pub secret_sha256: String,
}

/// The principal an access token belongs to, and when the token expires (None: never).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenOwner {
    pub principal: Principal,
    pub expires_at: Option<DateTime<Utc>>,
}

impl TokenOwner {
    /// The principal, if the token is still valid at `now`; it is not from `expires_at` on.
    pub fn principal_at(&self, now: DateTime<Utc>) -> Option<&Principal> {
        self.expires_at
            .is_none_or(|e| e > now)
            .then_some(&self.principal)
    }
}

/// Principal id, kind, service-account client id, username, community user id and expiry.
type TokenRow = (
    String,
    String,
    Option<String>,
    Option<String>,
    Option<i64>,
    Option<i64>,
);

/// Expired nonce counts are deleted once every this many records (by each replica).
const NONCE_PURGE_EVERY: u64 = 1024;

impl Store {
    /// Records that a Digest nonce count was used, where every replica sees it: false if it was
    /// already recorded (a replay). `nonce` identifies the nonce (its signature), which is valid
    /// until `expires_ms`; counts of nonces expired by `now_ms` are deleted now and then.
    ///
    /// On SQLite this records nothing and answers true: one process serves an SQLite database,
    /// and the verifier's memory of the counts it accepted is the whole record. On PostgreSQL
    /// the record is a row written through the relaxed pool, whose commits do not wait for the
    /// disk (see `Postgres::relaxed` for what that risks), in a batch with the records of other
    /// requests of this store that queued meanwhile (`nonce_counts`).
    pub async fn record_nonce_count(
        &self,
        nonce: &[u8; 16],
        nc: u32,
        expires_ms: u64,
        now_ms: u64,
    ) -> Result<bool> {
        let (crate::Engine::Postgres(db), Some(queue)) = (&self.engine, &self.nonce_records) else {
            return Ok(true);
        };
        let recorded = crate::nonce_counts::record(
            queue,
            hex::encode(nonce),
            i64::from(nc),
            i64::try_from(expires_ms).unwrap_or(i64::MAX),
        )
        .await?;
        if self
            .nonce_counts
            .fetch_add(1, Ordering::Relaxed)
            .is_multiple_of(NONCE_PURGE_EVERY)
        {
            sqlx::query("DELETE FROM digest_nonce_counts WHERE expires_at < $1")
                .bind(i64::try_from(now_ms).unwrap_or(i64::MAX))
                .execute(&mut *db.relaxed.acquire().await?)
                .await?;
        }
        Ok(recorded)
    }

    pub async fn api_key_by_public_key(&self, public_key: &str) -> Result<Option<ApiKeyAuth>> {
        let row: Option<(String, String, String, String, String)> = sqlx::query_as(
            "SELECT principal_id, org_id, public_key, ha1_md5, ha1_sha256 FROM api_keys WHERE public_key = $1",
        )
        .bind(public_key)
        .fetch_optional(&mut *self.read_connection().await?)
        .await?;
        let Some((principal, org, public_key, ha1_md5, ha1_sha256)) = row else {
            return Ok(None);
        };
        let access_list: Vec<(String,)> = sqlx::query_as(
            "SELECT cidr FROM api_key_access_list WHERE api_key_id = $1 ORDER BY cidr",
        )
        .bind(&principal)
        .fetch_all(&mut *self.read_connection().await?)
        .await?;
        Ok(Some(ApiKeyAuth {
            principal_id: parse_object_id(&principal)?,
            org_id: parse_object_id(&org)?,
            public_key,
            ha1_md5,
            ha1_sha256,
            access_list: access_list.into_iter().map(|(c,)| c).collect(),
        }))
    }

    pub async fn service_account_by_client_id(
        &self,
        client_id: &str,
    ) -> Result<Option<ServiceAccountAuth>> {
        let row: Option<(String, String, String, String)> = sqlx::query_as(
            "SELECT principal_id, org_id, client_id, secret_sha256 FROM service_accounts WHERE client_id = $1",
        )
        .bind(client_id)
        .fetch_optional(&mut *self.read_connection().await?)
        .await?;
        row.map(|(p, o, client_id, secret_sha256)| {
            Ok(ServiceAccountAuth {
                principal_id: parse_object_id(&p)?,
                org_id: parse_object_id(&o)?,
                client_id,
                secret_sha256,
            })
        })
        .transpose()
    }

    /// The principal an unexpired access token (given as its SHA-256 hex) belongs to.
    pub async fn principal_by_token(
        &self,
        token_sha256: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Principal>> {
        Ok(self
            .token_owner(token_sha256)
            .await?
            .and_then(|owner| owner.principal_at(now).cloned()))
    }

    /// Who an access token (given as its SHA-256 hex) belongs to and when it expires, expired
    /// or not: for callers that keep it and check the expiry on each use.
    pub async fn token_owner(&self, token_sha256: &str) -> Result<Option<TokenOwner>> {
        let row: Option<TokenRow> = sqlx::query_as(
            "SELECT p.id, p.kind, sa.client_id, u.username, u.id, t.expires_at \
             FROM access_tokens t \
             JOIN principals p ON p.id = t.principal_id \
             LEFT JOIN service_accounts sa ON sa.principal_id = p.id \
             LEFT JOIN users u ON u.principal_id = p.id \
             WHERE t.token_sha256 = $1",
        )
        .bind(token_sha256)
        .fetch_optional(&mut *self.read_connection().await?)
        .await?;
        let Some((id, kind, client_id, username, user_id, expires_at)) = row else {
            return Ok(None);
        };
        let kind = match kind.as_str() {
            "service_account" => PrincipalKind::ServiceAccount,
            "user" => PrincipalKind::User,
            "api_key" => PrincipalKind::ApiKey,
            other => return Err(StoreError::Corrupt(format!("principal kind {other:?}"))),
        };
        let principal = Principal {
            kind,
            id: parse_object_id(&id)?,
            display: client_id.or(username).unwrap_or_else(|| id.clone()),
            user_id,
        };
        Ok(Some(TokenOwner {
            principal,
            expires_at: expires_at.map(from_millis).transpose()?,
        }))
    }

    /// The roles `principal` holds in `org_id` (empty when none, or when the org does not exist).
    pub async fn org_roles(&self, principal: ObjectId, org_id: ObjectId) -> Result<Vec<OrgRole>> {
        let rows: Vec<(String,)> = sqlx::query_as(
            "SELECT role FROM org_roles WHERE principal_id = $1 AND org_id = $2 ORDER BY role",
        )
        .bind(principal.to_string())
        .bind(org_id.to_string())
        .fetch_all(&mut *self.read_connection().await?)
        .await?;
        rows.into_iter()
            .map(|(r,)| {
                r.parse()
                    .map_err(|_| StoreError::Corrupt(format!("org role {r:?}")))
            })
            .collect()
    }

    /// The roles `principal` holds in `project_id`.
    pub async fn project_roles(
        &self,
        principal: ObjectId,
        project_id: ObjectId,
    ) -> Result<Vec<GroupRole>> {
        let rows: Vec<(String,)> = sqlx::query_as(
            "SELECT role FROM project_roles WHERE principal_id = $1 AND project_id = $2 ORDER BY role",
        )
        .bind(principal.to_string())
        .bind(project_id.to_string())
        .fetch_all(&mut *self.read_connection().await?)
        .await?;
        rows.into_iter()
            .map(|(r,)| {
                r.parse()
                    .map_err(|_| StoreError::Corrupt(format!("project role {r:?}")))
            })
            .collect()
    }

    pub async fn org(&self, org_id: ObjectId) -> Result<Option<OrgRecord>> {
        let row: Option<(String,)> = sqlx::query_as("SELECT name FROM orgs WHERE id = $1")
            .bind(org_id.to_string())
            .fetch_optional(&mut *self.read_connection().await?)
            .await?;
        Ok(row.map(|(name,)| OrgRecord { id: org_id, name }))
    }

    pub async fn project(&self, project_id: ObjectId) -> Result<Option<ProjectRecord>> {
        let row: Option<(String, String)> =
            sqlx::query_as("SELECT org_id, name FROM projects WHERE id = $1")
                .bind(project_id.to_string())
                .fetch_optional(&mut *self.read_connection().await?)
                .await?;
        row.map(|(org, name)| {
            Ok(ProjectRecord {
                id: project_id,
                org_id: parse_object_id(&org)?,
                name,
            })
        })
        .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::fresh;
    use chrono::Duration;

    #[tokio::test]
    async fn tokens_resolve_until_they_expire() {
        let (store, _d) = fresh().await;
        let now = Utc::now();
        let org = store.create_org("Acme", now).await.unwrap();
        let sa = store
            .create_service_account(org.id, "mdb_sa_id_1", "robot", "ff", now)
            .await
            .unwrap();
        store
            .create_access_token(
                sa.principal_id,
                "aa11",
                Some(now + Duration::seconds(3600)),
                now,
            )
            .await
            .unwrap();
        let p = store
            .principal_by_token("aa11", now)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(p.kind, PrincipalKind::ServiceAccount);
        assert_eq!(p.display, "mdb_sa_id_1");
        assert!(store
            .principal_by_token("aa11", now + Duration::seconds(3601))
            .await
            .unwrap()
            .is_none());
        assert!(store
            .principal_by_token("bb22", now)
            .await
            .unwrap()
            .is_none());
        assert_eq!(
            store
                .purge_expired_tokens(now + Duration::seconds(3601))
                .await
                .unwrap(),
            1
        );
    }

    #[tokio::test]
    async fn api_keys_carry_their_access_list() {
        let (store, _d) = fresh().await;
        let now = Utc::now();
        let org = store.create_org("Acme", now).await.unwrap();
        let key = store
            .create_api_key(org.id, "pubkey01", "", "m", "s", now)
            .await
            .unwrap();
        store
            .add_access_list_entry(key.principal_id, "127.0.0.1/32")
            .await
            .unwrap();
        let auth = store
            .api_key_by_public_key("pubkey01")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(auth.access_list, vec!["127.0.0.1/32".to_owned()]);
        assert_eq!(auth.ha1_md5, "m");
        assert!(store.api_key_by_public_key("nope").await.unwrap().is_none());
    }

    #[tokio::test]
    async fn community_users_resolve_with_their_integer_id() {
        let (store, _d) = fresh().await;
        let now = Utc::now();
        let user = store.create_user("m@example.com", "M", now).await.unwrap();
        store
            .create_access_token(user.principal_id, "cc33", None, now)
            .await
            .unwrap();
        let p = store
            .principal_by_token("cc33", now)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(p.kind, PrincipalKind::User);
        assert_eq!(p.user_id, Some(user.id));
    }

    #[tokio::test]
    async fn a_nonce_count_recorded_by_one_replica_is_a_replay_on_another() {
        let (a, url, _d) = crate::test_util::fresh_with_url().await;
        let nonce = [7u8; 16];
        if a.backend() == crate::Backend::Sqlite {
            // One process per SQLite database: the verifier's memory is the record.
            assert!(a.record_nonce_count(&nonce, 1, 10_000, 0).await.unwrap());
            assert!(a.record_nonce_count(&nonce, 1, 10_000, 0).await.unwrap());
            return;
        }
        // The counts' pool does not wait for the disk; the others keep the server's setting.
        let crate::Engine::Postgres(db) = &a.engine else {
            unreachable!("not SQLite")
        };
        let show = "SHOW synchronous_commit";
        let relaxed: String = sqlx::query_scalar(show)
            .fetch_one(&mut *db.relaxed.acquire().await.unwrap())
            .await
            .unwrap();
        assert_eq!(relaxed, "off");
        let native: String = sqlx::query_scalar(show)
            .fetch_one(&mut *db.native.acquire().await.unwrap())
            .await
            .unwrap();
        let fresh: String = {
            use sqlx::Connection;
            let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
            sqlx::query_scalar(show).fetch_one(&mut conn).await.unwrap()
        };
        assert_eq!(native, fresh);
        let b = Store::open(&url).await.unwrap();
        assert!(a.record_nonce_count(&nonce, 1, 10_000, 0).await.unwrap());
        assert!(!b.record_nonce_count(&nonce, 1, 10_000, 0).await.unwrap());
        assert!(!a.record_nonce_count(&nonce, 1, 10_000, 0).await.unwrap());
        assert!(b.record_nonce_count(&nonce, 2, 10_000, 0).await.unwrap());
        assert!(a
            .record_nonce_count(&[8u8; 16], 1, 10_000, 0)
            .await
            .unwrap());
        // Expired counts go when a store purges, once every NONCE_PURGE_EVERY records: make B's
        // next record one of those.
        b.nonce_counts.store(NONCE_PURGE_EVERY, Ordering::Relaxed);
        assert!(b
            .record_nonce_count(&[9u8; 16], 1, 30_000, 20_000)
            .await
            .unwrap());
        let (left,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM digest_nonce_counts")
            .fetch_one(a.pool())
            .await
            .unwrap();
        assert_eq!(
            left, 1,
            "only the count whose nonce is still valid at 20,000 ms is kept"
        );
    }
}
