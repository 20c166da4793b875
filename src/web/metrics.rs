//! `GET /metrics` (Prometheus text format). The database is asked within [`DB_WAIT`]: when it
//! does not answer, the page still comes, with `rushes_database_up 0` and what the process
//! knows by itself (event outcomes, log size), so an alert can fire on it.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use super::AppState;
use crate::domain::{DeliveryState, FeedFetchOutcome, ReviewState};
use crate::store::StoreError;

/// How long the database queries of one scrape may take together.
pub const DB_WAIT: Duration = Duration::from_secs(2);

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let mut out = String::new();
    let mut from_db = String::new();
    let up = match tokio::time::timeout(DB_WAIT, database_metrics(&state, &mut from_db)).await {
        Ok(Ok(())) => true,
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "/metrics: the database did not answer");
            false
        }
        Err(_) => {
            tracing::warn!(
                wait_s = DB_WAIT.as_secs(),
                "/metrics: the database did not answer in time"
            );
            false
        }
    };
    family(
        &mut out,
        "rushes_database_up",
        "gauge",
        "1 when the database answered this scrape's queries in time, else 0.",
    );
    let _ = writeln!(out, "rushes_database_up {}", u8::from(up));
    if up {
        out.push_str(&from_db);
    }
    family(
        &mut out,
        "rushes_frameio_events_total",
        "counter",
        "Frame.io events this process finished, by outcome (retried: put back for a later attempt).",
    );
    for (outcome, n) in state.frameio.outcomes.counts() {
        let _ = writeln!(
            out,
            "rushes_frameio_events_total{{outcome=\"{outcome}\"}} {n}"
        );
    }
    family(
        &mut out,
        "rushes_webhook_inbox_waiting",
        "gauge",
        "Webhook events acknowledged from the inbox that SQLite has not taken yet (0 on PostgreSQL).",
    );
    let _ = writeln!(
        out,
        "rushes_webhook_inbox_waiting {}",
        state.frameio.receiver.inbox_waiting()
    );
    family(
        &mut out,
        "rushes_log_bytes",
        "gauge",
        "Bytes in app.log and its rotated copies.",
    );
    let _ = writeln!(
        out,
        "rushes_log_bytes {}",
        log_bytes(&state.config.service.log_dir)
    );
    if let Some(heap) = crate::memory::heap() {
        family(
            &mut out,
            "rushes_heap_bytes",
            "gauge",
            "The allocator's bytes: in use by rushes (allocated), in pages it keeps (resident).",
        );
        let _ = writeln!(
            out,
            "rushes_heap_bytes{{kind=\"allocated\"}} {}",
            heap.allocated
        );
        let _ = writeln!(
            out,
            "rushes_heap_bytes{{kind=\"resident\"}} {}",
            heap.resident
        );
    }
    if let Some(bytes) = state.store.sqlite_memory_bytes() {
        family(
            &mut out,
            "rushes_sqlite_memory_bytes",
            "gauge",
            "Heap SQLite holds in this process: page caches (at most 2 MiB per connection), schemas, statements.",
        );
        let _ = writeln!(out, "rushes_sqlite_memory_bytes {bytes}");
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out,
    )
}

/// Everything read from the database, into `out`.
async fn database_metrics(state: &AppState, out: &mut String) -> Result<(), StoreError> {
    let fetches = state.store.feed_fetch_counts().await?;
    let feed = state.store.feed_state().await?;
    let deliveries = state.store.delivery_counts().await?;
    let backlog = state.store.frameio_backlog().await?;
    let uploads = state.store.upload_counts().await?;
    let total: i64 = fetches.iter().map(|(_, n)| n).sum();
    let failures: i64 = fetches
        .iter()
        .filter(|(outcome, _)| *outcome == FeedFetchOutcome::Error)
        .map(|(_, n)| n)
        .sum();
    family(
        out,
        "rushes_feed_fetches_total",
        "counter",
        "Feed polls that asked the feed, by outcome.",
    );
    for outcome in FeedFetchOutcome::ALL {
        let n = fetches
            .iter()
            .find(|(o, _)| o == outcome)
            .map_or(0, |(_, n)| *n);
        let _ = writeln!(
            out,
            "rushes_feed_fetches_total{{outcome=\"{outcome}\"}} {n}"
        );
    }
    family(
        out,
        "rushes_feed_failures_total",
        "counter",
        "Feed polls that failed after all retries.",
    );
    let _ = writeln!(out, "rushes_feed_failures_total {failures}");
    family(
        out,
        "rushes_feed_polls_total",
        "counter",
        "Feed polls of any outcome.",
    );
    let _ = writeln!(out, "rushes_feed_polls_total {total}");
    family(
        out,
        "rushes_feed_records",
        "gauge",
        "Valid records in the last successful fetch.",
    );
    let _ = writeln!(out, "rushes_feed_records {}", feed.records_processed);
    family(out, "rushes_deliveries", "gauge", "Deliveries by state.");
    for s in DeliveryState::ALL {
        let n = deliveries
            .iter()
            .find(|(state, _)| state == s)
            .map_or(0, |(_, n)| *n);
        let _ = writeln!(out, "rushes_deliveries{{state=\"{s}\"}} {n}");
    }
    family(
        out,
        "rushes_frameio_events_pending",
        "gauge",
        "Acknowledged Frame.io events not processed yet.",
    );
    let _ = writeln!(out, "rushes_frameio_events_pending {}", backlog.pending);
    let lag = backlog.oldest.map_or(0.0, |at| at.elapsed().as_secs_f64());
    family(
        out,
        "rushes_frameio_event_lag_seconds",
        "gauge",
        "Age of the oldest pending Frame.io event (0 when none waits).",
    );
    let _ = writeln!(out, "rushes_frameio_event_lag_seconds {lag:.3}");
    family(
        out,
        "rushes_uploads",
        "gauge",
        "Tracked Frame.io uploads by review state.",
    );
    for s in ReviewState::ALL {
        let n = uploads
            .iter()
            .find(|(state, _)| state == s)
            .map_or(0, |(_, n)| *n);
        let _ = writeln!(out, "rushes_uploads{{state=\"{s}\"}} {n}");
    }
    Ok(())
}

/// `app.log` and its rotated copies (`app.log.1` ...), in bytes.
fn log_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("app.log"))
        .filter_map(|e| e.metadata().ok())
        .filter(|m| m.is_file())
        .map(|m| m.len())
        .sum()
}
