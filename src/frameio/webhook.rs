//! The webhook receiver: verify the signature over the exact bytes, write the event durably
//! (group commit through one writer task), acknowledge; processing happens afterwards from the
//! store (`processor.rs`), so an event acknowledged just before a crash is still processed.

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret as _, SecretString};
use serde::Deserialize;
use sha2::{Digest as _, Sha256};
use tokio::sync::{Notify, RwLock, mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::inbox::{self, Queued};
use crate::store::{NewFrameioEvent, Store};

pub const SIGNATURE_HEADER: &str = "x-frameio-signature";
pub const TIMESTAMP_HEADER: &str = "x-frameio-request-timestamp";
/// Frame.io deliveries are a few hundred bytes; anything much larger is not one.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// Deliveries older or newer than this are refused (replay protection).
pub const TOLERANCE_SECS: i64 = 5 * 60;
/// Store key of the secret `webhook ensure` received.
pub const SECRET_KEY: &str = "webhook_secret";
/// Most deliveries written in one transaction.
const MAX_BATCH: usize = 512;

type HmacSha256 = Hmac<Sha256>;

/// Why a delivery was refused. Messages never contain the secret or the signature.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("no X-Frameio-Signature header")]
    MissingSignature,
    #[error("no X-Frameio-Request-Timestamp header")]
    MissingTimestamp,
    #[error("X-Frameio-Request-Timestamp is not Unix seconds")]
    BadTimestamp,
    #[error("timestamp is {skew_secs} s away from now (more than {TOLERANCE_SECS} s)")]
    Stale { skew_secs: i64 },
    #[error("signature is not v0=<hex>")]
    Malformed,
    #[error("signature does not match the body")]
    Mismatch,
}

/// `v0=` + lowercase hex HMAC-SHA256(secret, `v0:{timestamp}:{body}`), as Frame.io signs.
pub fn sign(secret: &[u8], timestamp: &str, body: &[u8]) -> String {
    let mac = mac_for(secret, timestamp, body);
    format!("v0={}", hex::encode(mac.finalize().into_bytes()))
}

fn mac_for(secret: &[u8], timestamp: &str, body: &[u8]) -> HmacSha256 {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = <HmacSha256 as Mac>::new_from_slice(secret).unwrap_or_else(|_| {
        <HmacSha256 as Mac>::new_from_slice(&[]).expect("HMAC takes any key length")
    });
    mac.update(b"v0:");
    mac.update(timestamp.as_bytes());
    mac.update(b":");
    mac.update(body);
    mac
}

/// Checks the timestamp window and the signature (constant time). Returns the timestamp.
pub fn verify(
    secret: &[u8],
    timestamp: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
    now_unix: i64,
) -> Result<i64, SignatureError> {
    let signature = signature.ok_or(SignatureError::MissingSignature)?;
    let timestamp = timestamp.ok_or(SignatureError::MissingTimestamp)?;
    let ts: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| SignatureError::BadTimestamp)?;
    let skew = (now_unix - ts).abs();
    if skew > TOLERANCE_SECS {
        return Err(SignatureError::Stale { skew_secs: skew });
    }
    let hex_part = signature
        .trim()
        .strip_prefix("v0=")
        .ok_or(SignatureError::Malformed)?;
    let expected = hex::decode(hex_part).map_err(|_| SignatureError::Malformed)?;
    mac_for(secret, timestamp, body)
        .verify_slice(&expected)
        .map_err(|_| SignatureError::Mismatch)?;
    Ok(ts)
}

/// The parts of a delivery body rushes uses.
#[derive(Debug, Clone, Deserialize)]
pub struct DeliveryBody {
    #[serde(rename = "type")]
    pub event_type: String,
    pub resource: ResourceRef,
    #[serde(default)]
    pub account: Option<IdRef>,
    #[serde(default)]
    pub workspace: Option<IdRef>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ResourceRef {
    pub id: String,
    #[serde(rename = "type", default)]
    pub kind: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct IdRef {
    pub id: String,
}

/// A verified delivery turned into a row to write.
pub fn new_event(timestamp: i64, body: &[u8]) -> Result<NewFrameioEvent, String> {
    let text = std::str::from_utf8(body).map_err(|_| "body is not UTF-8".to_string())?;
    let parsed: DeliveryBody =
        serde_json::from_str(text).map_err(|e| format!("body is not a Frame.io event: {e}"))?;
    if parsed.event_type.trim().is_empty() || parsed.resource.id.trim().is_empty() {
        return Err("event type or resource id is empty".into());
    }
    let mut hasher = Sha256::new();
    hasher.update(timestamp.to_string().as_bytes());
    hasher.update(b":");
    hasher.update(body);
    Ok(NewFrameioEvent {
        delivery_hash: hex::encode(hasher.finalize()),
        received_at: crate::domain::Timestamp::now(),
        request_timestamp: timestamp,
        event_type: parsed.event_type,
        resource_type: parsed.resource.kind,
        resource_id: parsed.resource.id,
        account_id: parsed.account.map(|a| a.id),
        workspace_id: parsed.workspace.map(|w| w.id),
        body: text.to_string(),
    })
}

/// The signing secret: `FRAMEIO_WEBHOOK_SECRET`, else the one `webhook ensure` stored (re-read
/// at most once a second, so a new `ensure` is picked up without a restart).
pub struct SecretSource {
    configured: Option<SecretString>,
    store: Store,
    loaded: RwLock<(Option<SecretString>, Option<Instant>)>,
}

impl SecretSource {
    pub fn new(configured: Option<SecretString>, store: Store) -> Self {
        Self {
            configured,
            store,
            loaded: RwLock::new((None, None)),
        }
    }

    /// The current secret; `reload` asks the store again (rate-limited).
    pub async fn get(&self, reload: bool) -> Option<SecretString> {
        if let Some(s) = &self.configured {
            return Some(s.clone());
        }
        {
            let loaded = self.loaded.read().await;
            let fresh = loaded
                .1
                .is_some_and(|at| at.elapsed() < Duration::from_secs(1));
            if loaded.1.is_some() && (!reload || fresh) {
                return loaded.0.clone();
            }
        }
        let mut loaded = self.loaded.write().await;
        let fresh = loaded
            .1
            .is_some_and(|at| at.elapsed() < Duration::from_secs(1));
        if loaded.1.is_none() || (reload && !fresh) {
            match self.store.frameio_credential(SECRET_KEY).await {
                Ok(value) => {
                    *loaded = (
                        value.map(|(v, _)| SecretString::from(v)),
                        Some(Instant::now()),
                    );
                }
                Err(e) => {
                    tracing::error!(error = %e, "Frame.io: cannot read the stored webhook secret")
                }
            }
        }
        loaded.0.clone()
    }

    pub fn is_configured(&self) -> bool {
        self.configured.is_some()
    }
}

/// Why a delivery was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum ReceiveError {
    #[error(
        "no webhook secret (set FRAMEIO_WEBHOOK_SECRET or run `rushes frameio webhook ensure`)"
    )]
    NoSecret,
    #[error("{0}")]
    Signature(#[from] SignatureError),
    #[error("{0}")]
    BadBody(String),
    #[error("cannot store the event: {0}")]
    Store(String),
}

/// What the receiver did with an accepted delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accepted {
    New(i64),
    Duplicate,
    /// Durable in the webhook inbox; in the database moments later (see `inbox.rs`).
    InInbox,
}

impl Accepted {
    /// What the writer's insert said: the new event's id, or `None` when it was stored already.
    pub(super) fn stored(id: Option<i64>) -> Self {
        id.map_or(Self::Duplicate, Self::New)
    }
}

pub(super) struct Pending {
    pub(super) event: NewFrameioEvent,
    /// Told when the delivery is durable in the webhook inbox (SQLite, see `inbox.rs`); dropped
    /// unsaid when the database's answer is the acknowledgement (PostgreSQL, or no inbox).
    pub(super) durable: Option<oneshot::Sender<()>>,
    pub(super) reply: oneshot::Sender<Result<Option<i64>, String>>,
}

/// Cheap to clone; what the HTTP handler uses.
#[derive(Clone)]
pub struct Receiver {
    secret: Arc<SecretSource>,
    writer: mpsc::Sender<Queued>,
    /// Deliveries in the webhook inbox that SQLite has not taken yet (see `inbox.rs`).
    inbox_waiting: Arc<AtomicUsize>,
}

impl Receiver {
    /// Deliveries acknowledged from the webhook inbox that the database has not taken yet.
    pub fn inbox_waiting(&self) -> usize {
        self.inbox_waiting
            .load(std::sync::atomic::Ordering::Acquire)
    }

    /// Verifies, then writes durably. `Ok` means the event is in the store.
    pub async fn accept(
        &self,
        timestamp: Option<&str>,
        signature: Option<&str>,
        body: &[u8],
    ) -> Result<Accepted, ReceiveError> {
        let now = chrono::Utc::now().timestamp();
        let Some(secret) = self.secret.get(false).await else {
            // Maybe `webhook ensure` ran since: look again.
            return match self.secret.get(true).await {
                Some(_) => Box::pin(self.accept(timestamp, signature, body)).await,
                None => Err(ReceiveError::NoSecret),
            };
        };
        let ts = match verify(
            secret.expose_secret().as_bytes(),
            timestamp,
            signature,
            body,
            now,
        ) {
            Ok(ts) => ts,
            Err(SignatureError::Mismatch) if !self.secret.is_configured() => {
                // The stored secret may have been replaced by a new `webhook ensure`.
                match self.secret.get(true).await {
                    Some(newer) if newer.expose_secret() != secret.expose_secret() => verify(
                        newer.expose_secret().as_bytes(),
                        timestamp,
                        signature,
                        body,
                        now,
                    )?,
                    _ => return Err(SignatureError::Mismatch.into()),
                }
            }
            Err(e) => return Err(e.into()),
        };
        let event = new_event(ts, body).map_err(ReceiveError::BadBody)?;
        let (reply, mut answer) = oneshot::channel();
        let (durable, in_inbox) = oneshot::channel();
        self.writer
            .send(Queued::Delivery(Pending {
                event,
                durable: Some(durable),
                reply,
            }))
            .await
            .map_err(|_| ReceiveError::Store("the event writer is stopped".into()))?;
        if let Some(accepted) = inbox::durable_answer(in_inbox, &mut answer).await {
            return Ok(accepted);
        }
        match answer.await {
            Ok(Ok(id)) => Ok(Accepted::stored(id)),
            Ok(Err(e)) => Err(ReceiveError::Store(e)),
            Err(_) => Err(ReceiveError::Store("the event writer stopped".into())),
        }
    }
}

/// The single writer: takes every delivery waiting and commits them in one transaction, then
/// answers each. Under load this is group commit; alone, a delivery is written at once. On
/// SQLite the deliveries go through the webhook inbox first (`inbox.rs`).
pub struct EventWriter {
    store: Store,
    queue: mpsc::Receiver<Queued>,
    inbox_waiting: Arc<AtomicUsize>,
    /// The writer's own way into its queue (the inbox's ticks and stop).
    control: mpsc::Sender<Queued>,
    written: Arc<Notify>,
}

impl EventWriter {
    pub async fn run(self, stop: CancellationToken) {
        let Self {
            store,
            mut queue,
            inbox_waiting,
            control,
            written,
        } = self;
        if let Some(dir) = store.sqlite_file().map(inbox::dir_for) {
            match inbox::run(
                &store,
                &dir,
                queue,
                &control,
                &written,
                &inbox_waiting,
                &stop,
            )
            .await
            {
                Ok(()) => return,
                Err((e, handed_back)) => {
                    tracing::error!(
                        error = %e,
                        "Frame.io: the webhook inbox cannot be used; deliveries are acknowledged once in the database"
                    );
                    queue = handed_back;
                }
            }
        }
        let writer = DirectWriter { store, written };
        loop {
            let first = tokio::select! {
                biased;
                item = queue.recv() => item,
                () = stop.cancelled() => None,
            };
            let Some(first) = first else { break };
            let mut batch = Vec::from_iter(delivery(first));
            while batch.len() < MAX_BATCH {
                match queue.try_recv() {
                    Ok(item) => batch.extend(delivery(item)),
                    Err(_) => break,
                }
            }
            writer.write(batch).await;
        }
        // Answer whatever is still queued before stopping.
        queue.close();
        let mut rest = Vec::new();
        while let Ok(item) = queue.try_recv() {
            rest.extend(delivery(item));
        }
        if !rest.is_empty() {
            writer.write(rest).await;
        }
    }
}

fn delivery(item: Queued) -> Option<Pending> {
    match item {
        Queued::Delivery(p) => Some(p),
        Queued::Tick | Queued::Stop => None,
    }
}

/// The commit is the acknowledgement (PostgreSQL, or no inbox).
struct DirectWriter {
    store: Store,
    written: Arc<Notify>,
}

impl DirectWriter {
    async fn write(&self, batch: Vec<Pending>) {
        let events: Vec<&NewFrameioEvent> = batch.iter().map(|p| &p.event).collect();
        match self.store.insert_frameio_events(&events).await {
            Ok(ids) => {
                let any_new = ids.iter().any(Option::is_some);
                for (p, id) in batch.into_iter().zip(ids) {
                    let _ = p.reply.send(Ok(id));
                }
                if any_new {
                    self.written.notify_one();
                }
            }
            Err(e) => {
                tracing::error!(error = %e, count = events.len(), "Frame.io: cannot store webhook events");
                let message = e.to_string();
                for p in batch {
                    let _ = p.reply.send(Err(message.clone()));
                }
            }
        }
    }
}

/// Builds the receiver and its writer. `written` is notified when new events are stored.
pub fn receiver(
    configured_secret: Option<SecretString>,
    store: Store,
    written: Arc<Notify>,
) -> (Receiver, EventWriter) {
    let (tx, rx) = mpsc::channel(4096);
    let inbox_waiting = Arc::new(AtomicUsize::new(0));
    (
        Receiver {
            secret: Arc::new(SecretSource::new(configured_secret, store.clone())),
            writer: tx.clone(),
            inbox_waiting: inbox_waiting.clone(),
        },
        EventWriter {
            store,
            queue: rx,
            inbox_waiting,
            control: tx,
            written,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"whsec-test";
    const NOW: i64 = 1_767_225_600;

    #[test]
    fn signature_round_trip_and_failures() {
        let body = br#"{"type":"file.ready","resource":{"id":"f1","type":"file"}}"#;
        let ts = NOW.to_string();
        let sig = sign(SECRET, &ts, body);
        assert!(sig.starts_with("v0=") && sig.len() == 3 + 64);
        assert_eq!(verify(SECRET, Some(&ts), Some(&sig), body, NOW), Ok(NOW));
        // Within the window either way.
        assert!(verify(SECRET, Some(&ts), Some(&sig), body, NOW + 299).is_ok());
        assert!(verify(SECRET, Some(&ts), Some(&sig), body, NOW - 300).is_ok());

        let mut tampered = body.to_vec();
        tampered[10] ^= 1;
        assert_eq!(
            verify(SECRET, Some(&ts), Some(&sig), &tampered, NOW),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(b"other", Some(&ts), Some(&sig), body, NOW),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(SECRET, Some(&ts), Some(&sig), body, NOW + 301),
            Err(SignatureError::Stale { skew_secs: 301 })
        );
        assert_eq!(
            verify(SECRET, Some(&ts), None, body, NOW),
            Err(SignatureError::MissingSignature)
        );
        assert_eq!(
            verify(SECRET, None, Some(&sig), body, NOW),
            Err(SignatureError::MissingTimestamp)
        );
        assert_eq!(
            verify(SECRET, Some("yesterday"), Some(&sig), body, NOW),
            Err(SignatureError::BadTimestamp)
        );
        assert_eq!(
            verify(SECRET, Some(&ts), Some(&sig[3..]), body, NOW),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            verify(SECRET, Some(&ts), Some("v0=zz"), body, NOW),
            Err(SignatureError::Malformed)
        );
        // The timestamp is part of what is signed.
        let other_ts = (NOW + 1).to_string();
        assert_eq!(
            verify(SECRET, Some(&other_ts), Some(&sig), body, NOW),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn known_vector() {
        // HMAC-SHA256(key="secret", "v0:1700000000:{}") computed independently (openssl).
        let sig = sign(b"secret", "1700000000", b"{}");
        assert_eq!(
            sig,
            "v0=84dd7b277ba946b3a34369b43499bfd9258b410b8894583f1288b1911aa6a6d6"
        );
    }

    #[test]
    fn events_parse_and_hash_timestamp_and_body() -> Result<(), String> {
        let body = br#"{"type":"comment.created","resource":{"id":"c1","type":"comment"},"account":{"id":"a1"},"workspace":{"id":"w1"},"project":{"id":"p"},"user":{"id":"u"}}"#;
        let e = new_event(NOW, body)?;
        assert_eq!(e.event_type, "comment.created");
        assert_eq!(e.resource_type, "comment");
        assert_eq!(e.account_id.as_deref(), Some("a1"));
        assert_ne!(e.delivery_hash, new_event(NOW + 1, body)?.delivery_hash);
        assert_eq!(e.delivery_hash, new_event(NOW, body)?.delivery_hash);
        assert!(new_event(NOW, b"[]").is_err());
        assert!(new_event(NOW, br#"{"type":"","resource":{"id":"x"}}"#).is_err());
        Ok(())
    }
}
