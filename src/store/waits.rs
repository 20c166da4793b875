//! A delivery whose link resolver has to wait (issue 15): the host is still checking the transfer
//! for viruses (queued again, not before `retry_at`), or a password is needed or was refused
//! (failed until a person gives one). The password itself is never stored here.

use super::{Delivery, Store, StoreError};
use crate::domain::{DeliveryState, Timestamp, WaitReason};

impl Store {
    /// `downloading` -> `queued`, not started again before `retry_at`; `message` is shown meanwhile.
    pub async fn wait_and_retry(
        &self,
        id: i64,
        reason: WaitReason,
        retry_at: Timestamp,
        message: &str,
    ) -> Result<Option<Delivery>, StoreError> {
        Ok(sqlx::query_as::<_, Delivery>(
            "UPDATE deliveries
             SET state = $2, state_changed_at = $3, error = $4, wait_reason = $5, retry_at = $6,
                 wait_count = wait_count + 1
             WHERE id = $1 AND state = $7
             RETURNING *",
        )
        .bind(id)
        .bind(DeliveryState::Queued)
        .bind(Timestamp::now())
        .bind(message)
        .bind(reason)
        .bind(retry_at)
        .bind(DeliveryState::Downloading)
        .fetch_optional(self.pool())
        .await?)
    }

    /// `downloading` -> `failed`, waiting for a person to give the transfer's password.
    pub async fn wait_for_password(
        &self,
        id: i64,
        reason: WaitReason,
        message: &str,
    ) -> Result<Option<Delivery>, StoreError> {
        let now = Timestamp::now();
        Ok(sqlx::query_as::<_, Delivery>(
            "UPDATE deliveries
             SET state = $2, state_changed_at = $3, finished_at = $3, error = $4, wait_reason = $5,
                 retry_at = NULL, wait_count = wait_count + 1
             WHERE id = $1 AND state = $6
             RETURNING *",
        )
        .bind(id)
        .bind(DeliveryState::Failed)
        .bind(now)
        .bind(message)
        .bind(reason)
        .bind(DeliveryState::Downloading)
        .fetch_optional(self.pool())
        .await?)
    }

    /// The wait is over (a try starts): the reason and time go, the count stays (backoff).
    pub async fn end_wait(&self, id: i64) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE deliveries SET wait_reason = NULL, retry_at = NULL
             WHERE id = $1 AND wait_reason IS NOT NULL",
        )
        .bind(id)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// `downloading` -> `manual`, with why the automatic download did not work (an experimental
    /// resolver gave up: a person opens the link).
    pub async fn back_to_manual(
        &self,
        id: i64,
        message: &str,
    ) -> Result<Option<Delivery>, StoreError> {
        Ok(sqlx::query_as::<_, Delivery>(
            "UPDATE deliveries
             SET state = $2, state_changed_at = $3, finished_at = $3, error = $4,
                 wait_reason = NULL, retry_at = NULL
             WHERE id = $1 AND state = $5
             RETURNING *",
        )
        .bind(id)
        .bind(DeliveryState::Manual)
        .bind(Timestamp::now())
        .bind(message)
        .bind(DeliveryState::Downloading)
        .fetch_optional(self.pool())
        .await?)
    }

    /// A delivery failed for want of a password -> `queued` (a password was given); `None`
    /// when it is not waiting for one.
    pub async fn requeue_with_password(&self, id: i64) -> Result<Option<Delivery>, StoreError> {
        Ok(sqlx::query_as::<_, Delivery>(
            "UPDATE deliveries
             SET state = $2, state_changed_at = $3, error = NULL, wait_reason = NULL,
                 retry_at = NULL
             WHERE id = $1 AND state = $4 AND wait_reason IN ($5, $6)
             RETURNING *",
        )
        .bind(id)
        .bind(DeliveryState::Queued)
        .bind(Timestamp::now())
        .bind(DeliveryState::Failed)
        .bind(WaitReason::PasswordNeeded)
        .bind(WaitReason::PasswordWrong)
        .fetch_optional(self.pool())
        .await?)
    }
}
