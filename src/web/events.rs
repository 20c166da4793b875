//! `GET /api/events`: server-sent events for the dashboard. Each event is one JSON object with a
//! `type`: `delivery_changed` (id, state and the delivery as `/api/deliveries/{id}` shows it,
//! read from the store), `deliveries_added` (count, and the ids when there are at most
//! [`LISTED_IDS`]: one event for a batch of new deliveries from the feed), `progress` (id, bytes,
//! total, speed_bps, eta_s) or `feed_updated`.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures::Stream;
use futures::StreamExt;
use serde_json::json;
use tokio_stream::wrappers::BroadcastStream;

use super::AppState;
use crate::events::Event;

/// Largest batch of new deliveries whose ids an event lists (a larger one says only how many:
/// the page then reloads its table once).
pub const LISTED_IDS: usize = 50;

pub async fn sse(
    State(state): State<AppState>,
) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
    let store = state.store.clone();
    let closed = state.events.closed();
    let stream = BroadcastStream::new(state.events.subscribe())
        .take_until(closed)
        .filter_map(move |event| {
            let store = store.clone();
            async move {
                // A lagging client loses old events; the next delivery_changed catches it up.
                let event = event.ok()?;
                let data = match &event {
                    Event::DeliveryChanged { id } => {
                        let delivery = store.delivery(id.0).await.ok().flatten()?;
                        json!({
                            "type": "delivery_changed",
                            "id": id,
                            "state": delivery.state,
                            "delivery": delivery,
                        })
                    }
                    Event::DeliveriesAdded { ids } if ids.len() <= LISTED_IDS => json!({
                        "type": "deliveries_added",
                        "count": ids.len(),
                        "ids": ids,
                    }),
                    Event::DeliveriesAdded { ids } => json!({
                        "type": "deliveries_added",
                        "count": ids.len(),
                    }),
                    other => serde_json::to_value(other).ok()?,
                };
                Some(Ok(SseEvent::default().data(data.to_string())))
            }
        });
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}
