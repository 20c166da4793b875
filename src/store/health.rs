//! Whether the database takes writes now. Reads keep working while another process holds the
//! write lock (WAL), so a health check that only reads says "ok" while every poll and download
//! stalls. The probe is a no-op write, waited for a short time; it keeps running in the
//! background if the lock outlasts the wait, and no second probe starts meanwhile.

use std::sync::atomic::Ordering;
use std::time::Duration;

use super::Store;

impl Store {
    /// `Ok(())` when a write went through within `wait`, else why not.
    pub async fn writable_within(&self, wait: Duration) -> Result<(), String> {
        if self.probing.swap(true, Ordering::AcqRel) {
            return Err("the database is locked (an earlier write is still waiting)".into());
        }
        let pool = self.pool.clone();
        let probing = self.probing.clone();
        let probe = tokio::spawn(async move {
            let result = sqlx::query("UPDATE feed_state SET id = id WHERE id = 1")
                .execute(&pool)
                .await;
            probing.store(false, Ordering::Release);
            result
        });
        match tokio::time::timeout(wait, probe).await {
            Ok(Ok(Ok(_))) => Ok(()),
            Ok(Ok(Err(e))) => Err(format!("the database refuses writes: {e}")),
            Ok(Err(e)) => Err(format!("the write probe failed: {e}")),
            Err(_) => Err(format!(
                "the database is locked: a write waited more than {} s",
                wait.as_secs_f32()
            )),
        }
    }
}
