//! Several instances on one database: named leases (the feed poll), the instances seen, and the
//! leases of running downloads. On SQLite there is one instance (the data-folder lock), so the
//! same calls always find this instance holding everything.

use serde::Serialize;

use super::{Delivery, Store, StoreError};
use crate::domain::{DeliveryState, Timestamp};

/// The lease of the feed poll.
pub const FEED_LEASE: &str = "feed";

/// What [`Store::hold_lease`] found.
#[derive(Debug, Clone, PartialEq)]
pub struct LeaseState {
    /// This instance holds it (until `expires_at`).
    pub held: bool,
    pub holder: String,
    pub expires_at: Timestamp,
    /// Set by [`Store::request_refresh`] on any instance; the holder acts on it.
    pub refresh_requested_at: Option<Timestamp>,
}

/// An instance that uses this database.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct InstanceRow {
    pub name: String,
    pub address: Option<String>,
    pub started_at: Timestamp,
    pub seen_at: Timestamp,
    pub version: String,
}

/// A lease as stored.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct LeaseRow {
    pub name: String,
    pub holder: String,
    pub expires_at: Timestamp,
    pub acquired_at: Timestamp,
}

impl Store {
    /// Takes the lease `name` if it is free or expired, renews it if this instance holds it, and
    /// says who holds it either way (one statement: two instances can never both hold it).
    pub async fn hold_lease(&self, name: &str) -> Result<LeaseState, StoreError> {
        // The holder may release (delete) the row between the two statements: then try again.
        for _ in 0..3 {
            if let Some(state) = self.try_hold_lease(name).await? {
                return Ok(state);
            }
        }
        Err(StoreError::Corrupt(format!(
            "the lease {name} kept changing hands while being read"
        )))
    }

    async fn try_hold_lease(&self, name: &str) -> Result<Option<LeaseState>, StoreError> {
        let now = Timestamp::now();
        let until = now.plus(self.lease());
        let me = self.instance();
        let taken: Option<(String, Timestamp, Option<Timestamp>)> = sqlx::query_as(
            "INSERT INTO leases (name, holder, expires_at, acquired_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (name) DO UPDATE SET
                 holder = excluded.holder,
                 expires_at = excluded.expires_at,
                 acquired_at = CASE WHEN leases.holder = excluded.holder
                                    THEN leases.acquired_at ELSE excluded.acquired_at END
             WHERE leases.holder = excluded.holder OR leases.expires_at <= $4
             RETURNING holder, expires_at, refresh_requested_at",
        )
        .bind(name)
        .bind(me)
        .bind(until)
        .bind(now)
        .fetch_optional(self.pool())
        .await?;
        if let Some((holder, expires_at, refresh_requested_at)) = taken {
            return Ok(Some(LeaseState {
                held: holder == me,
                holder,
                expires_at,
                refresh_requested_at,
            }));
        }
        let other: Option<(String, Timestamp, Option<Timestamp>)> = sqlx::query_as(
            "SELECT holder, expires_at, refresh_requested_at FROM leases WHERE name = $1",
        )
        .bind(name)
        .fetch_optional(self.pool())
        .await?;
        Ok(
            other.map(|(holder, expires_at, refresh_requested_at)| LeaseState {
                held: false,
                holder,
                expires_at,
                refresh_requested_at,
            }),
        )
    }

    /// Gives the lease up now (clean shutdown), so that another instance takes it at once.
    pub async fn release_lease(&self, name: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM leases WHERE name = $1 AND holder = $2")
            .bind(name)
            .bind(self.instance())
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Asks whoever holds the lease to act now (a feed refresh asked on any instance).
    pub async fn request_refresh(&self, name: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE leases SET refresh_requested_at = $2 WHERE name = $1")
            .bind(name)
            .bind(Timestamp::now())
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Every lease, for `rushes status` and `/api/cluster`.
    pub async fn leases(&self) -> Result<Vec<LeaseRow>, StoreError> {
        Ok(
            sqlx::query_as(
                "SELECT name, holder, expires_at, acquired_at FROM leases ORDER BY name",
            )
            .fetch_all(self.pool())
            .await?,
        )
    }

    /// Records this instance as running (at start, then now and then as a heartbeat).
    pub async fn instance_seen(
        &self,
        address: Option<&str>,
        started_at: Timestamp,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO instances (name, address, started_at, seen_at, version)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (name) DO UPDATE SET address = excluded.address,
                 started_at = excluded.started_at, seen_at = excluded.seen_at,
                 version = excluded.version",
        )
        .bind(self.instance())
        .bind(address)
        .bind(started_at)
        .bind(Timestamp::now())
        .bind(env!("CARGO_PKG_VERSION"))
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Instances seen on this database, most recently seen first.
    pub async fn instances(&self) -> Result<Vec<InstanceRow>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT name, address, started_at, seen_at, version FROM instances
             ORDER BY seen_at DESC, name LIMIT 100",
        )
        .fetch_all(self.pool())
        .await?)
    }

    /// Downloads left `downloading` that this instance may run now, claimed for it: on SQLite
    /// every one (the only instance; they were interrupted); on a shared database those of this
    /// instance's previous life and those whose lease expired (their instance died).
    pub async fn reclaim_downloads(&self) -> Result<Vec<Delivery>, StoreError> {
        let now = Timestamp::now();
        let mut rows: Vec<Delivery> = sqlx::query_as(&format!(
            "UPDATE deliveries SET owner = $1, lease_until = $2
             WHERE id IN (
                 SELECT id FROM deliveries
                 WHERE state = $3 AND ($4 OR owner IS NULL OR owner = $1 OR lease_until <= $5)
                 ORDER BY started_at, id{}
             )
             RETURNING *",
            self.skip_locked()
        ))
        .bind(self.instance())
        .bind(now.plus(self.lease()))
        .bind(DeliveryState::Downloading)
        .bind(!self.backend().shared())
        .bind(now)
        .fetch_all(self.pool())
        .await?;
        rows.sort_by_key(|d| (d.started_at, d.id));
        Ok(rows)
    }

    /// Renews the leases of this instance's running downloads `ids`; returns those it still
    /// holds (a download missing from the answer was taken over and must stop writing).
    pub async fn renew_download_leases(&self, ids: &[i64]) -> Result<Vec<i64>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let ids = &ids[..ids.len().min(1000)];
        let mut params = super::params::Params::new(self.backend());
        let mut sql = String::from("UPDATE deliveries SET lease_until = ");
        params.push(&mut sql);
        sql.push_str(" WHERE owner = ");
        params.push(&mut sql);
        sql.push_str(" AND state = ");
        params.push(&mut sql);
        sql.push_str(" AND id IN ");
        params.push_rows(&mut sql, 1, ids.len());
        sql.push_str(" RETURNING id");
        let mut renew = sqlx::query_scalar::<_, i64>(&sql)
            .bind(Timestamp::now().plus(self.lease()))
            .bind(self.instance())
            .bind(DeliveryState::Downloading);
        for id in ids {
            renew = renew.bind(*id);
        }
        Ok(renew.fetch_all(self.pool()).await?)
    }
}
