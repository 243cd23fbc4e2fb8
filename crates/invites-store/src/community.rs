//! Community groups and courses, and invitations to them.

use chrono::{DateTime, Utc};

use crate::{Result, Store};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommunityGroupRecord {
    pub id: i64,
    pub name: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CourseRecord {
    pub id: i64,
    pub name: String,
    pub creator_user_id: i64,
}

impl Store {
    pub async fn create_community_group(
        &self,
        name: &str,
        now: DateTime<Utc>,
    ) -> Result<CommunityGroupRecord> {
        let (id,): (i64,) = sqlx::query_as(
            "INSERT INTO community_groups (name, created_at) VALUES ($1, $2) RETURNING id",
        )
        .bind(name)
        .bind(now.timestamp_millis())
        .fetch_one(self.pool())
        .await?;
        Ok(CommunityGroupRecord {
            id,
            name: name.to_owned(),
        })
    }

    pub async fn create_course(
        &self,
        name: &str,
        creator_user_id: i64,
        now: DateTime<Utc>,
    ) -> Result<CourseRecord> {
        let (id,): (i64,) = sqlx::query_as(
            "INSERT INTO courses (name, creator_user_id, created_at) VALUES ($1, $2, $3) RETURNING id",
        )
        .bind(name)
        .bind(creator_user_id)
        .bind(now.timestamp_millis())
        .fetch_one(self.pool())
        .await?;
        Ok(CourseRecord {
            id,
            name: name.to_owned(),
            creator_user_id,
        })
    }

    /// Invites `user_id` to a community group (`group_id`) or course (`course_id`); exactly one is set.
    /// Inviting someone already invited is a no-op. Returns the invitation id.
    pub async fn invite_to_community(
        &self,
        group_id: Option<i64>,
        course_id: Option<i64>,
        user_id: i64,
        inviter_user_id: Option<i64>,
        now: DateTime<Utc>,
    ) -> Result<i64> {
        let (id,): (i64,) = sqlx::query_as(
            "INSERT INTO community_invitations (group_id, course_id, user_id, inviter_user_id, status, created_at) \
             VALUES ($1, $2, $3, $4, 'PENDING', $5) RETURNING id",
        )
        .bind(group_id)
        .bind(course_id)
        .bind(user_id)
        .bind(inviter_user_id)
        .bind(now.timestamp_millis())
        .fetch_one(self.pool())
        .await?;
        Ok(id)
    }

    /// Marks a community invitation accepted.
    pub async fn accept_community_invitation(&self, id: i64, now: DateTime<Utc>) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE community_invitations SET status = 'ACCEPTED', accepted_at = $2 WHERE id = $1 AND status = 'PENDING'",
        )
        .bind(id)
        .bind(now.timestamp_millis())
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }
}
