//! Creating tenants, principals, roles and credentials: what `invites admin` and the demo seed do.
//!
//! Credentials arrive here already reduced to what is stored (HA1 values, SHA-256 digests); the
//! caller generates and shows the secret once.

use chrono::{DateTime, Utc};
use invites_domain::{CommunityRole, GroupRole, ObjectId, OrgRole, PrincipalKind};

use sqlx::Acquire;

use crate::{Result, Store, StoreError};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrgRecord {
    pub id: ObjectId,
    pub name: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProjectRecord {
    pub id: ObjectId,
    pub org_id: ObjectId,
    pub name: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserRecord {
    pub id: i64,
    pub principal_id: ObjectId,
    pub username: String,
    pub real_name: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiKeyRecord {
    pub principal_id: ObjectId,
    pub org_id: ObjectId,
    pub public_key: String,
    pub description: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceAccountRecord {
    pub principal_id: ObjectId,
    pub org_id: ObjectId,
    pub client_id: String,
    pub name: String,
}

impl Store {
    async fn insert_principal(
        &self,
        tx: &mut sqlx::AnyConnection,
        kind: PrincipalKind,
        now: DateTime<Utc>,
    ) -> Result<ObjectId> {
        let id = ObjectId::generate(now.timestamp());
        sqlx::query("INSERT INTO principals (id, kind, created_at) VALUES ($1, $2, $3)")
            .bind(id.to_string())
            .bind(kind.as_str())
            .bind(now.timestamp_millis())
            .execute(&mut *tx)
            .await?;
        Ok(id)
    }

    pub async fn create_org(&self, name: &str, now: DateTime<Utc>) -> Result<OrgRecord> {
        let id = ObjectId::generate(now.timestamp());
        sqlx::query("INSERT INTO orgs (id, name, created_at) VALUES ($1, $2, $3)")
            .bind(id.to_string())
            .bind(name)
            .bind(now.timestamp_millis())
            .execute(&mut *self.write_connection().await?)
            .await?;
        self.auth_changed();
        Ok(OrgRecord {
            id,
            name: name.to_owned(),
        })
    }

    pub async fn create_project(
        &self,
        org_id: ObjectId,
        name: &str,
        now: DateTime<Utc>,
    ) -> Result<ProjectRecord> {
        let id = ObjectId::generate(now.timestamp());
        sqlx::query("INSERT INTO projects (id, org_id, name, created_at) VALUES ($1, $2, $3, $4)")
            .bind(id.to_string())
            .bind(org_id.to_string())
            .bind(name)
            .bind(now.timestamp_millis())
            .execute(&mut *self.write_connection().await?)
            .await
            .map_err(|e| not_found_on_fk(e, "organization"))?;
        self.auth_changed();
        Ok(ProjectRecord {
            id,
            org_id,
            name: name.to_owned(),
        })
    }

    pub async fn create_user(
        &self,
        username: &str,
        real_name: &str,
        now: DateTime<Utc>,
    ) -> Result<UserRecord> {
        let mut conn = self.write_connection().await?;
        let mut tx = conn.begin().await?;
        let principal_id = self
            .insert_principal(&mut tx, PrincipalKind::User, now)
            .await?;
        let (id,): (i64,) = sqlx::query_as(
            "INSERT INTO users (principal_id, username, real_name, created_at) \
             VALUES ($1, $2, $3, $4) RETURNING id",
        )
        .bind(principal_id.to_string())
        .bind(username)
        .bind(real_name)
        .bind(now.timestamp_millis())
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        self.auth_changed();
        Ok(UserRecord {
            id,
            principal_id,
            username: username.to_owned(),
            real_name: real_name.to_owned(),
        })
    }

    /// Finds a user by community id.
    pub async fn user_by_id(&self, id: i64) -> Result<Option<UserRecord>> {
        let row: Option<(String,)> = sqlx::query_as("SELECT username FROM users WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *self.read_connection().await?)
            .await?;
        match row {
            Some((username,)) => self.user_by_username(&username).await,
            None => Ok(None),
        }
    }

    /// Finds a user by username.
    pub async fn user_by_username(&self, username: &str) -> Result<Option<UserRecord>> {
        let row: Option<(i64, String, String, String)> = sqlx::query_as(
            "SELECT id, principal_id, username, real_name FROM users WHERE username = $1",
        )
        .bind(username)
        .fetch_optional(&mut *self.read_connection().await?)
        .await?;
        row.map(|(id, p, username, real_name)| {
            Ok(UserRecord {
                id,
                principal_id: crate::parse_object_id(&p)?,
                username,
                real_name,
            })
        })
        .transpose()
    }

    /// Creates an API key of `org_id`. `ha1_md5`/`ha1_sha256` are the Digest HA1 values for the
    /// public key, the realm and the private key; the private key itself is not stored.
    pub async fn create_api_key(
        &self,
        org_id: ObjectId,
        public_key: &str,
        description: &str,
        ha1_md5: &str,
        ha1_sha256: &str,
        now: DateTime<Utc>,
    ) -> Result<ApiKeyRecord> {
        let mut conn = self.write_connection().await?;
        let mut tx = conn.begin().await?;
        let principal_id = self
            .insert_principal(&mut tx, PrincipalKind::ApiKey, now)
            .await?;
        sqlx::query(
            "INSERT INTO api_keys (principal_id, org_id, public_key, description, ha1_md5, ha1_sha256, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(principal_id.to_string())
        .bind(org_id.to_string())
        .bind(public_key)
        .bind(description)
        .bind(ha1_md5)
        .bind(ha1_sha256)
        .bind(now.timestamp_millis())
        .execute(&mut *tx)
        .await
        .map_err(|e| not_found_on_fk(e, "organization"))?;
        tx.commit().await?;
        self.auth_changed();
        Ok(ApiKeyRecord {
            principal_id,
            org_id,
            public_key: public_key.to_owned(),
            description: description.to_owned(),
        })
    }

    /// Replaces an API key's Digest HA1 values (a new private key). Returns false if no such key.
    pub async fn rotate_api_key(
        &self,
        public_key: &str,
        ha1_md5: &str,
        ha1_sha256: &str,
    ) -> Result<bool> {
        let done =
            sqlx::query("UPDATE api_keys SET ha1_md5 = $2, ha1_sha256 = $3 WHERE public_key = $1")
                .bind(public_key)
                .bind(ha1_md5)
                .bind(ha1_sha256)
                .execute(&mut *self.write_connection().await?)
                .await?;
        self.auth_changed();
        Ok(done.rows_affected() == 1)
    }

    /// Replaces a service account's secret digest. Returns false if no such account.
    pub async fn rotate_service_account_secret(
        &self,
        client_id: &str,
        secret_sha256: &str,
    ) -> Result<bool> {
        let done =
            sqlx::query("UPDATE service_accounts SET secret_sha256 = $2 WHERE client_id = $1")
                .bind(client_id)
                .bind(secret_sha256)
                .execute(&mut *self.write_connection().await?)
                .await?;
        self.auth_changed();
        Ok(done.rows_affected() == 1)
    }

    /// Adds an address or CIDR block to an API key's access list.
    pub async fn add_access_list_entry(&self, api_key: ObjectId, cidr: &str) -> Result<()> {
        sqlx::query("INSERT INTO api_key_access_list (api_key_id, cidr) VALUES ($1, $2)")
            .bind(api_key.to_string())
            .bind(cidr)
            .execute(&mut *self.write_connection().await?)
            .await
            .map_err(|e| not_found_on_fk(e, "API key"))?;
        self.auth_changed();
        Ok(())
    }

    pub async fn create_service_account(
        &self,
        org_id: ObjectId,
        client_id: &str,
        name: &str,
        secret_sha256: &str,
        now: DateTime<Utc>,
    ) -> Result<ServiceAccountRecord> {
        let mut conn = self.write_connection().await?;
        let mut tx = conn.begin().await?;
        let principal_id = self
            .insert_principal(&mut tx, PrincipalKind::ServiceAccount, now)
            .await?;
        sqlx::query(
            "INSERT INTO service_accounts (principal_id, org_id, client_id, name, secret_sha256, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(principal_id.to_string())
        .bind(org_id.to_string())
        .bind(client_id)
        .bind(name)
        .bind(secret_sha256)
        .bind(now.timestamp_millis())
        .execute(&mut *tx)
        .await
        .map_err(|e| not_found_on_fk(e, "organization"))?;
        tx.commit().await?;
        self.auth_changed();
        Ok(ServiceAccountRecord {
            principal_id,
            org_id,
            client_id: client_id.to_owned(),
            name: name.to_owned(),
        })
    }

    /// Stores an access token (its SHA-256) for a principal; `expires_at` None never expires.
    pub async fn create_access_token(
        &self,
        principal_id: ObjectId,
        token_sha256: &str,
        expires_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO access_tokens (token_sha256, principal_id, expires_at, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(token_sha256)
        .bind(principal_id.to_string())
        .bind(expires_at.map(|t| t.timestamp_millis()))
        .bind(now.timestamp_millis())
        .execute(&mut *self.write_connection().await?)
        .await
        .map_err(|e| not_found_on_fk(e, "principal"))?;
        Ok(())
    }

    /// Removes expired access tokens; returns how many.
    pub async fn purge_expired_tokens(&self, now: DateTime<Utc>) -> Result<u64> {
        let done = sqlx::query(
            "DELETE FROM access_tokens WHERE expires_at IS NOT NULL AND expires_at <= $1",
        )
        .bind(now.timestamp_millis())
        .execute(&mut *self.write_connection().await?)
        .await?;
        self.auth_changed();
        Ok(done.rows_affected())
    }

    pub async fn grant_org_role(
        &self,
        org_id: ObjectId,
        principal: ObjectId,
        role: OrgRole,
    ) -> Result<()> {
        sqlx::query("INSERT INTO org_roles (org_id, principal_id, role) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
            .bind(org_id.to_string())
            .bind(principal.to_string())
            .bind(role.as_str())
            .execute(&mut *self.write_connection().await?)
            .await
            .map_err(|e| not_found_on_fk(e, "organization or principal"))?;
        self.auth_changed();
        Ok(())
    }

    pub async fn grant_project_role(
        &self,
        project_id: ObjectId,
        principal: ObjectId,
        role: GroupRole,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO project_roles (project_id, principal_id, role) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        )
        .bind(project_id.to_string())
        .bind(principal.to_string())
        .bind(role.as_str())
        .execute(&mut *self.write_connection().await?)
        .await
        .map_err(|e| not_found_on_fk(e, "project or principal"))?;
        self.auth_changed();
        Ok(())
    }

    pub async fn set_community_group_role(
        &self,
        group_id: i64,
        user_id: i64,
        role: CommunityRole,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO community_group_members (group_id, user_id, role) VALUES ($1, $2, $3) \
             ON CONFLICT (group_id, user_id) DO UPDATE SET role = excluded.role",
        )
        .bind(group_id)
        .bind(user_id)
        .bind(role.as_str())
        .execute(&mut *self.write_connection().await?)
        .await
        .map_err(|e| not_found_on_fk(e, "community group or user"))?;
        self.auth_changed();
        Ok(())
    }

    pub async fn set_course_role(
        &self,
        course_id: i64,
        user_id: i64,
        role: CommunityRole,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO course_members (course_id, user_id, role) VALUES ($1, $2, $3) \
             ON CONFLICT (course_id, user_id) DO UPDATE SET role = excluded.role",
        )
        .bind(course_id)
        .bind(user_id)
        .bind(role.as_str())
        .execute(&mut *self.write_connection().await?)
        .await
        .map_err(|e| not_found_on_fk(e, "course or user"))?;
        self.auth_changed();
        Ok(())
    }
}

/// A foreign-key failure on insert means the referenced thing does not exist.
fn not_found_on_fk(e: sqlx::Error, what: &str) -> StoreError {
    if let sqlx::Error::Database(db) = &e {
        if db.is_foreign_key_violation() {
            return StoreError::NotFound(what.to_owned());
        }
    }
    StoreError::from(e)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::fresh;

    #[tokio::test]
    async fn creates_a_tenant_with_keys_and_roles() {
        let (store, _d) = fresh().await;
        let now = Utc::now();
        let org = store.create_org("Acme", now).await.unwrap();
        let project = store.create_project(org.id, "web", now).await.unwrap();
        let key = store
            .create_api_key(org.id, "abcdefgh", "ci key", "aa", "bb", now)
            .await
            .unwrap();
        store
            .grant_org_role(org.id, key.principal_id, OrgRole::Owner)
            .await
            .unwrap();
        store
            .grant_project_role(project.id, key.principal_id, GroupRole::Owner)
            .await
            .unwrap();
        // Granting twice is harmless.
        store
            .grant_org_role(org.id, key.principal_id, OrgRole::Owner)
            .await
            .unwrap();
        assert_eq!(
            store.org_roles(key.principal_id, org.id).await.unwrap(),
            vec![OrgRole::Owner]
        );
    }

    #[tokio::test]
    async fn unknown_parents_are_not_found_and_duplicates_conflict() {
        let (store, _d) = fresh().await;
        let now = Utc::now();
        let missing = ObjectId::generate(0);
        assert!(matches!(
            store.create_project(missing, "x", now).await,
            Err(StoreError::NotFound(_))
        ));
        store.create_user("a@example.com", "A", now).await.unwrap();
        assert!(matches!(
            store.create_user("a@example.com", "A", now).await,
            Err(StoreError::Conflict(_))
        ));
    }
}
