//! An asset's version stack is arranged by one process at a time (across instances on
//! PostgreSQL): a turn per (folder, asset) held for a short lease, so that two versions finishing
//! at the same moment never make two stacks. Also the versions of an asset, in version order.

use super::sends::{COLUMNS, Send};
use super::{Store, StoreError};
use crate::domain::Timestamp;

impl Store {
    /// Takes the turn to arrange the stack of (`folder_id`, `asset_key`) for `holder` until
    /// `lease` from now; `false` while another holder's turn runs.
    pub async fn take_stack_turn(
        &self,
        folder_id: &str,
        asset_key: &str,
        holder: &str,
        lease: std::time::Duration,
    ) -> Result<bool, StoreError> {
        let _turn = self.write_turn().await;
        let now = Timestamp::now();
        let taken: Option<String> = sqlx::query_scalar(
            "INSERT INTO frameio_stack_turns (folder_id, asset_key, holder, turn_until)
             VALUES ($1, $2, $3, $4)
             ON CONFLICT (folder_id, asset_key) DO UPDATE
                 SET holder = excluded.holder, turn_until = excluded.turn_until
                 WHERE frameio_stack_turns.turn_until <= $5 OR frameio_stack_turns.holder = $3
             RETURNING holder",
        )
        .bind(folder_id)
        .bind(super::storable(asset_key))
        .bind(holder)
        .bind(now.plus(lease))
        .bind(now)
        .fetch_optional(self.pool())
        .await?;
        Ok(taken.is_some())
    }

    /// Gives the turn back.
    pub async fn release_stack_turn(
        &self,
        folder_id: &str,
        asset_key: &str,
        holder: &str,
    ) -> Result<(), StoreError> {
        let _turn = self.write_turn().await;
        sqlx::query(
            "DELETE FROM frameio_stack_turns WHERE folder_id = $1 AND asset_key = $2 AND holder = $3",
        )
        .bind(folder_id)
        .bind(super::storable(asset_key))
        .bind(holder)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// The sends of an asset in a folder without an explicit `--version-of`, oldest version
    /// first (at most `limit`).
    pub async fn asset_versions(
        &self,
        folder_id: &str,
        asset_key: &str,
        limit: i64,
    ) -> Result<Vec<Send>, StoreError> {
        Ok(sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM frameio_sends
             WHERE folder_id = $1 AND asset_key = $2 AND version_of IS NULL
             ORDER BY version, created_at, id LIMIT $3"
        ))
        .bind(folder_id)
        .bind(super::storable(asset_key))
        .bind(limit)
        .fetch_all(self.pool())
        .await?)
    }
}
