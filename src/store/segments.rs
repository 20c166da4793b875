//! `download_segments`: the ranges of a segmented download and the bytes of each on disk.

use super::{Store, StoreError};

/// One range `[start, end)` of a delivery's partial file, `done` bytes of it on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::FromRow)]
pub struct SegmentRow {
    pub start_byte: i64,
    pub end_byte: i64,
    pub done_bytes: i64,
}

impl Store {
    /// The stored segments of `id`'s partial file, by start.
    pub async fn download_segments(&self, id: i64) -> Result<Vec<SegmentRow>, StoreError> {
        Ok(sqlx::query_as::<_, SegmentRow>(
            "SELECT start_byte, end_byte, done_bytes FROM download_segments
             WHERE delivery_id = $1 ORDER BY start_byte ASC",
        )
        .bind(id)
        .fetch_all(self.pool())
        .await?)
    }

    /// Replaces `id`'s segments (empty: forgets them), in one transaction; nothing when another
    /// instance owns the download now.
    pub async fn set_download_segments(
        &self,
        id: i64,
        segments: &[SegmentRow],
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        let ours: Option<i64> = sqlx::query_scalar(
            "SELECT id FROM deliveries WHERE id = $1 AND (owner IS NULL OR owner = $2)",
        )
        .bind(id)
        .bind(self.instance())
        .fetch_optional(&mut *tx)
        .await?;
        if ours.is_none() {
            return Ok(());
        }
        sqlx::query("DELETE FROM download_segments WHERE delivery_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        for (seq, s) in segments.iter().enumerate() {
            sqlx::query(
                "INSERT INTO download_segments (delivery_id, seq, start_byte, end_byte, done_bytes)
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(id)
            .bind(seq as i64)
            .bind(s.start_byte)
            .bind(s.end_byte)
            .bind(s.done_bytes)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

impl Store {
    /// Manual deliveries of `kind`, oldest first: links a resolver can now fetch by itself.
    pub async fn manual_deliveries_of(
        &self,
        kind: crate::domain::LinkKind,
        limit: u32,
    ) -> Result<Vec<super::Delivery>, StoreError> {
        Ok(sqlx::query_as::<_, super::Delivery>(
            "SELECT * FROM deliveries WHERE state = $1 AND kind = $2
             ORDER BY created_at ASC, id ASC LIMIT $3",
        )
        .bind(crate::domain::DeliveryState::Manual)
        .bind(kind)
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await?)
    }

    /// Atomically moves a `manual` delivery to `downloading` (a resolver fetches it).
    pub async fn claim_manual(&self, id: i64) -> Result<Option<super::Delivery>, StoreError> {
        self.claim_delivery(id, crate::domain::DeliveryState::Manual)
            .await
    }
}
