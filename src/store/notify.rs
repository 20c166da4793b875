//! PostgreSQL's `LISTEN`/`NOTIFY`, so that what happens on one instance reaches the live views of
//! all of them. Nothing on SQLite (one instance).

use secrecy::ExposeSecret;
use sqlx::postgres::PgListener;

use super::{Backend, Store, StoreError};

/// The channel rushes' instances talk on.
pub const CHANNEL: &str = "rushes_events";

/// NOTIFY payloads must stay under 8,000 bytes.
pub const MAX_PAYLOAD: usize = 7_500;

/// A connection that listens on [`CHANNEL`] (reconnects by itself after a lost connection).
pub struct Listener(PgListener);

impl std::fmt::Debug for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Listener")
    }
}

impl Listener {
    /// The next payload sent on the channel.
    pub async fn recv(&mut self) -> Result<String, StoreError> {
        Ok(self.0.recv().await?.payload().to_string())
    }
}

impl Store {
    /// Listens on [`CHANNEL`]; `None` on SQLite.
    pub async fn listen(&self) -> Result<Option<Listener>, StoreError> {
        let Some(url) = self
            .url
            .as_ref()
            .filter(|_| self.backend == Backend::Postgres)
        else {
            return Ok(None);
        };
        let mut listener = PgListener::connect(url.expose_secret()).await?;
        listener.listen(CHANNEL).await?;
        Ok(Some(Listener(listener)))
    }

    /// Sends `payload` (at most [`MAX_PAYLOAD`] bytes) to every listening instance.
    pub async fn notify(&self, payload: &str) -> Result<(), StoreError> {
        if self.backend != Backend::Postgres {
            return Ok(());
        }
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(CHANNEL)
            .bind(payload)
            .execute(self.pool())
            .await?;
        Ok(())
    }
}
