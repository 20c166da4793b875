//! Download bookkeeping on `deliveries` (claiming, progress, outcome, hook) and the
//! `download_attempts` log.

use serde::Serialize;

use super::{Delivery, Store, StoreError, storable};
use crate::domain::{DeliveryState, Timestamp, UrlRole};

/// One HTTP try of a delivery, as logged.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct DownloadAttempt {
    pub id: i64,
    pub delivery_id: i64,
    pub url_role: UrlRole,
    pub url: String,
    pub try_number: i64,
    pub at: Timestamp,
    pub outcome: String,
    pub error: Option<String>,
}

/// What a finished download stores.
#[derive(Debug, Clone)]
pub struct DownloadDone {
    pub served_by: Option<UrlRole>,
    pub served_url: String,
    pub sha256: String,
    pub final_path: String,
    pub bytes: i64,
    pub duration_ms: i64,
    pub mean_speed_bps: i64,
}

impl Store {
    /// Queued deliveries, oldest first, at most `limit`.
    pub async fn queued_deliveries(&self, limit: u32) -> Result<Vec<Delivery>, StoreError> {
        Ok(sqlx::query_as::<_, Delivery>(
            "SELECT * FROM deliveries WHERE state = $1 AND (retry_at IS NULL OR retry_at <= $3)
             ORDER BY created_at ASC, id ASC LIMIT $2",
        )
        .bind(DeliveryState::Queued)
        .bind(i64::from(limit))
        .bind(Timestamp::now())
        .fetch_all(self.pool())
        .await?)
    }

    /// Atomically moves one delivery from `queued` to `downloading`; `None` if someone else
    /// (another worker, a cancel) changed it first.
    pub async fn claim_queued(&self, id: i64) -> Result<Option<Delivery>, StoreError> {
        self.claim_delivery(id, DeliveryState::Queued).await
    }

    /// Moves one delivery from `from` to `downloading` for this instance, with a lease it renews
    /// while the download runs; `None` if it is not in `from` any more or another instance is
    /// claiming it right now (skipped, not waited for).
    pub(crate) async fn claim_delivery(
        &self,
        id: i64,
        from: DeliveryState,
    ) -> Result<Option<Delivery>, StoreError> {
        let now = Timestamp::now();
        Ok(sqlx::query_as::<_, Delivery>(&format!(
            "UPDATE deliveries
             SET state = $2, state_changed_at = $3, error = NULL, attempts = attempts + 1,
                 started_at = $3, finished_at = NULL, duration_ms = NULL, mean_speed_bps = NULL,
                 owner = $5, lease_until = $6
             WHERE id = (SELECT id FROM deliveries WHERE id = $1 AND state = $4{})
             RETURNING *",
            self.skip_locked()
        ))
        .bind(id)
        .bind(DeliveryState::Downloading)
        .bind(now)
        .bind(from)
        .bind(self.instance())
        .bind(now.plus(self.lease()))
        .fetch_optional(self.pool())
        .await?)
    }

    /// Remembers where the partial file is and what it came from, before writing to it.
    pub async fn set_download_part(
        &self,
        id: i64,
        part_path: Option<&str>,
        file_name: Option<&str>,
        validator: Option<&str>,
        bytes_total: Option<i64>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE deliveries SET part_path = $2, file_name = COALESCE($3, file_name),
                 validator = $4, bytes_total = $5
             WHERE id = $1 AND (owner IS NULL OR owner = $6)",
        )
        .bind(id)
        .bind(part_path)
        .bind(file_name)
        .bind(validator)
        .bind(bytes_total)
        .bind(self.instance())
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Progress of a running download (called about once a second, not per chunk).
    pub async fn set_download_progress(
        &self,
        id: i64,
        bytes_done: i64,
        bytes_total: Option<i64>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE deliveries SET bytes_done = $2, bytes_total = COALESCE($3, bytes_total)
             WHERE id = $1 AND (owner IS NULL OR owner = $4)",
        )
        .bind(id)
        .bind(bytes_done)
        .bind(bytes_total)
        .bind(self.instance())
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Logs one try and keeps its error as the delivery's latest one.
    pub async fn record_download_attempt(
        &self,
        id: i64,
        url_role: UrlRole,
        url: &str,
        try_number: u32,
        error: Option<&str>,
    ) -> Result<(), StoreError> {
        let now = Timestamp::now();
        sqlx::query(
            "INSERT INTO download_attempts (delivery_id, url_role, url, try_number, at, outcome, error)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(id)
        .bind(url_role)
        .bind(url)
        .bind(i64::from(try_number))
        .bind(now)
        .bind(if error.is_some() { "error" } else { "ok" })
        .bind(error.map(storable))
        .execute(self.pool())
        .await?;
        if let Some(error) = error {
            sqlx::query("UPDATE deliveries SET error = $2 WHERE id = $1")
                .bind(id)
                .bind(storable(error))
                .execute(self.pool())
                .await?;
        }
        Ok(())
    }

    /// Every try of a delivery, oldest first.
    pub async fn download_attempts(&self, id: i64) -> Result<Vec<DownloadAttempt>, StoreError> {
        Ok(sqlx::query_as::<_, DownloadAttempt>(
            "SELECT * FROM download_attempts WHERE delivery_id = $1 ORDER BY id ASC",
        )
        .bind(id)
        .fetch_all(self.pool())
        .await?)
    }

    /// Written just before the `.part` is renamed: if the process dies between the rename and
    /// `finish_download`, a restart finds the final file with this checksum and does not fetch again.
    pub async fn set_download_final(
        &self,
        id: i64,
        final_path: &str,
        sha256: &str,
        bytes: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE deliveries SET final_path = $2, sha256 = $3, bytes_done = $4
             WHERE id = $1 AND (owner IS NULL OR owner = $5)",
        )
        .bind(id)
        .bind(final_path)
        .bind(sha256)
        .bind(bytes)
        .bind(self.instance())
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// `downloading` -> `done` with the outcome; `None` if it was no longer downloading (cancelled)
    /// or another instance holds it now (took it over when this one's lease ran out). The writes
    /// of a running download (part, progress, final file, segments) are this instance's only
    /// while it is the owner: late ones from an instance that lost its lease change nothing.
    pub async fn finish_download(
        &self,
        id: i64,
        done: &DownloadDone,
    ) -> Result<Option<Delivery>, StoreError> {
        let now = Timestamp::now();
        Ok(sqlx::query_as::<_, Delivery>(
            "UPDATE deliveries
             SET state = $2, state_changed_at = $3, finished_at = $3, error = NULL,
                 served_by = $4, served_url = $5, sha256 = $6, final_path = $7,
                 bytes_done = $8, bytes_total = $8, duration_ms = $9, mean_speed_bps = $10,
                 part_path = NULL, validator = NULL
             WHERE id = $1 AND state = $11 AND (owner IS NULL OR owner = $12)
             RETURNING *",
        )
        .bind(id)
        .bind(DeliveryState::Done)
        .bind(now)
        .bind(done.served_by)
        .bind(&done.served_url)
        .bind(&done.sha256)
        .bind(&done.final_path)
        .bind(done.bytes)
        .bind(done.duration_ms)
        .bind(done.mean_speed_bps)
        .bind(DeliveryState::Downloading)
        .bind(self.instance())
        .fetch_optional(self.pool())
        .await?)
    }

    /// `downloading` -> `failed` with the reason; `None` if it was no longer downloading or
    /// another instance holds it now.
    pub async fn fail_download(
        &self,
        id: i64,
        error: &str,
        bytes_done: i64,
    ) -> Result<Option<Delivery>, StoreError> {
        let now = Timestamp::now();
        Ok(sqlx::query_as::<_, Delivery>(
            "UPDATE deliveries
             SET state = $2, state_changed_at = $3, finished_at = $3, error = $4, bytes_done = $5
             WHERE id = $1 AND state = $6 AND (owner IS NULL OR owner = $7)
             RETURNING *",
        )
        .bind(id)
        .bind(DeliveryState::Failed)
        .bind(now)
        .bind(storable(error))
        .bind(bytes_done)
        .bind(DeliveryState::Downloading)
        .bind(self.instance())
        .fetch_optional(self.pool())
        .await?)
    }

    /// Outcome of the `ON_DOWNLOAD_COMPLETE` command.
    pub async fn record_hook(
        &self,
        id: i64,
        exit_code: Option<i64>,
        output: &str,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE deliveries SET hook_exit_code = $2, hook_output = $3 WHERE id = $1")
            .bind(id)
            .bind(exit_code)
            .bind(storable(output))
            .execute(self.pool())
            .await?;
        Ok(())
    }
}
