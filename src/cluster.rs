//! Several rushes on one PostgreSQL: each instance says it is alive (for `rushes status`), and
//! relays its events (delivery changes, progress, feed polls, Frame.io changes) to the others
//! through `NOTIFY`, so that the page of any instance shows what runs on all of them. Progress is
//! coalesced (the latest per download, a few times a second) so that NOTIFY is never flooded.
//! Nothing runs on SQLite (one instance).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::domain::Timestamp;
use crate::events::{Event, EventBus};
use crate::store::{MAX_PAYLOAD, Store};

/// How often relayed events are sent (and progress sampled).
const RELAY_EVERY: Duration = Duration::from_millis(250);

/// Events waiting in the relay before it sends a catch-all instead.
const RELAY_QUEUE: usize = 4096;

/// One NOTIFY payload.
#[derive(Debug, Serialize, Deserialize)]
struct Batch {
    /// The instance that sent it (its own notifications come back to it: skipped).
    from: String,
    events: Vec<Event>,
}

/// Starts the heartbeat and the relay when the store is shared; returns when `cancel` fires.
pub async fn run(store: Store, events: EventBus, address: String, cancel: CancellationToken) {
    if !store.may_have_peers() {
        return;
    }
    let started = Timestamp::now();
    let outgoing = events.tap(RELAY_QUEUE);
    tokio::join!(
        heartbeat(&store, &address, started, &cancel),
        receive(&store, &events, &cancel),
        async {
            if let Some(outgoing) = outgoing {
                send(&store, outgoing, &cancel).await;
            }
        }
    );
}

async fn heartbeat(store: &Store, address: &str, started: Timestamp, cancel: &CancellationToken) {
    let mut ticker = tokio::time::interval((store.lease() / 3).max(Duration::from_secs(1)));
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            _ = ticker.tick() => {}
        }
        if let Err(e) = store.instance_seen(Some(address), started).await {
            tracing::warn!(error = %e, "cluster: cannot record this instance as alive");
        }
    }
}

/// Sends the events of this instance, batched every [`RELAY_EVERY`].
async fn send(
    store: &Store,
    mut outgoing: tokio::sync::mpsc::Receiver<Event>,
    cancel: &CancellationToken,
) {
    let me = store.instance().to_string();
    let mut ticker = tokio::time::interval(RELAY_EVERY);
    let mut pending: Vec<Event> = Vec::new();
    let mut progress: BTreeMap<crate::domain::DeliveryId, Event> = BTreeMap::new();
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            _ = ticker.tick() => {}
            Some(event) = outgoing.recv() => {
                absorb(event, &mut pending, &mut progress);
                while let Ok(event) = outgoing.try_recv() {
                    absorb(event, &mut pending, &mut progress);
                }
                continue;
            }
        }
        if pending.is_empty() && progress.is_empty() {
            continue;
        }
        let mut events = std::mem::take(&mut pending);
        events.extend(std::mem::take(&mut progress).into_values());
        for payload in payloads(&me, events) {
            if let Err(e) = store.notify(&payload).await {
                tracing::warn!(error = %e, "cluster: cannot relay events to the other instances");
            }
        }
    }
}

/// Keeps one progress event per download (the latest) and each distinct change once.
fn absorb(
    event: Event,
    pending: &mut Vec<Event>,
    progress: &mut BTreeMap<crate::domain::DeliveryId, Event>,
) {
    match event {
        Event::Progress { id, .. } => {
            progress.insert(id, event);
        }
        other => {
            if !pending.contains(&other) {
                pending.push(other);
            }
        }
    }
}

/// Payloads under NOTIFY's size limit; a batch too large for a few of them becomes one
/// "feed updated" (the pages read everything again).
fn payloads(me: &str, events: Vec<Event>) -> Vec<String> {
    let mut out = Vec::new();
    let mut current: Vec<Event> = Vec::new();
    let encode = |events: Vec<Event>| {
        serde_json::to_string(&Batch {
            from: me.to_string(),
            events,
        })
        .unwrap_or_default()
    };
    for event in events {
        current.push(event);
        if current.len() >= 40 {
            out.push(encode(std::mem::take(&mut current)));
        }
    }
    if !current.is_empty() {
        out.push(encode(current));
    }
    if out.len() > 8 || out.iter().any(|p| p.len() > MAX_PAYLOAD) {
        return vec![encode(vec![Event::FeedUpdated])];
    }
    out
}

/// Passes the other instances' events to this instance's listeners.
async fn receive(store: &Store, events: &EventBus, cancel: &CancellationToken) {
    let me = store.instance().to_string();
    let mut backoff = Duration::from_millis(500);
    loop {
        let mut listener = match store.listen().await {
            Ok(Some(listener)) => listener,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(error = %e, "cluster: cannot listen to the other instances; retrying");
                tokio::select! {
                    () = cancel.cancelled() => return,
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(30));
                continue;
            }
        };
        backoff = Duration::from_millis(500);
        loop {
            let payload = tokio::select! {
                () = cancel.cancelled() => return,
                payload = listener.recv() => payload,
            };
            match payload {
                Ok(payload) => match serde_json::from_str::<Batch>(&payload) {
                    Ok(batch) if batch.from != me => {
                        for event in batch.events {
                            events.inject(event);
                        }
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "cluster: unreadable notification skipped")
                    }
                },
                Err(e) => {
                    tracing::warn!(error = %e, "cluster: lost the notification connection; reconnecting");
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::DeliveryId;

    #[test]
    fn progress_is_coalesced_and_changes_kept_once() {
        let mut pending = Vec::new();
        let mut progress = BTreeMap::new();
        for bytes in [1, 2, 3] {
            absorb(
                Event::Progress {
                    id: DeliveryId(7),
                    bytes,
                    total: Some(10),
                    speed_bps: 1,
                    eta_s: None,
                    segments: 1,
                },
                &mut pending,
                &mut progress,
            );
        }
        absorb(
            Event::DeliveryChanged { id: DeliveryId(7) },
            &mut pending,
            &mut progress,
        );
        absorb(
            Event::DeliveryChanged { id: DeliveryId(7) },
            &mut pending,
            &mut progress,
        );
        assert_eq!(pending, vec![Event::DeliveryChanged { id: DeliveryId(7) }]);
        assert_eq!(progress.len(), 1);
        assert!(matches!(
            progress[&DeliveryId(7)],
            Event::Progress { bytes: 3, .. }
        ));
    }

    #[test]
    fn large_batches_stay_under_the_notify_limit() {
        let many: Vec<Event> = (0..100_000)
            .map(|id| Event::DeliveryChanged { id: DeliveryId(id) })
            .collect();
        let out = payloads("a", many);
        assert_eq!(out.len(), 1);
        assert!(out[0].contains("feed_updated"), "{}", out[0]);
        let few: Vec<Event> = (0..100)
            .map(|id| Event::DeliveryChanged { id: DeliveryId(id) })
            .collect();
        let out = payloads("a", few);
        assert_eq!(out.len(), 3);
        assert!(out.iter().all(|p| p.len() <= MAX_PAYLOAD));
        let back: Batch = serde_json::from_str(&out[0]).expect("json");
        assert_eq!(back.from, "a");
        assert_eq!(back.events.len(), 40);
    }
}
