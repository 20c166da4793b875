//! The original app's download list, `GET /api/csv_downloads_status`, in the shape its page
//! (`static/` JavaScript) reads, so a studio can switch its backend to rushes before its page.

use axum::Json;
use axum::extract::{Query, State};
use serde::{Deserialize, Serialize};

use super::AppState;
use super::error::ApiError;
use crate::domain::{DeliveryMode, DeliveryState, Timestamp, UrlRole};
use crate::store::Delivery;

/// Most items the list holds, as in the original.
pub const MAX_ITEMS: u32 = 50;

/// One item, field for field as the original page reads it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CsvDownload {
    /// `csv_<id>`: the page calls `id.startsWith(...)`, so it must be a string.
    pub id: String,
    pub filename: String,
    /// The link as the feed gave it.
    pub original_url: String,
    /// The link a download uses (or used).
    pub url: String,
    pub url_type: String,
    /// `pending` | `downloading` | `completed` | `failed` | `cancelled`.
    pub status: &'static str,
    /// 0-100.
    pub progress: u8,
    pub message: String,
    /// Latest activity, `YYYY-MM-DD HH:MM:SS` in `FEED_TIMEZONE`.
    pub display_timestamp: String,
    /// The feed's own time of the record, same format.
    pub csv_timestamp: String,
    /// A person opens the link in a new tab (manual deliveries).
    pub manual_open: bool,
}

#[derive(Debug, Default, Deserialize)]
pub struct CsvQuery {
    include_manual: Option<String>,
}

/// `GET /api/csv_downloads_status[?include_manual=1]`: newest activity first, at most 50,
/// automatic deliveries only unless `include_manual` is set.
pub async fn csv_downloads_status(
    State(state): State<AppState>,
    Query(query): Query<CsvQuery>,
) -> Result<Json<Vec<CsvDownload>>, ApiError> {
    let include_manual = match query.include_manual.as_deref().map(str::trim) {
        None | Some("" | "0" | "false" | "no") => false,
        Some("1" | "true" | "yes") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "include_manual must be 1 or 0, not {other:?}"
            )));
        }
    };
    let tz = state.config.feed.timezone;
    let items = state
        .store
        .recent_activity(include_manual, MAX_ITEMS)
        .await?
        .iter()
        .map(|d| item(d, tz))
        .collect();
    Ok(Json(items))
}

/// The original's status names.
pub fn status_of(state: DeliveryState) -> &'static str {
    match state {
        DeliveryState::Queued | DeliveryState::Available | DeliveryState::Manual => "pending",
        DeliveryState::Downloading => "downloading",
        DeliveryState::Done | DeliveryState::Handled | DeliveryState::DryRun => "completed",
        DeliveryState::Failed => "failed",
        DeliveryState::Cancelled => "cancelled",
    }
}

/// Sizes as the original shows them: decimal megabytes, one decimal (`160.0 MB`).
pub fn megabytes(bytes: i64) -> String {
    format!("{:.1} MB", bytes.max(0) as f64 / 1_000_000.0)
}

fn local_time(t: Timestamp, tz: chrono_tz::Tz) -> String {
    t.as_datetime()
        .with_timezone(&tz)
        .format("%Y-%m-%d %H:%M:%S")
        .to_string()
}

pub fn item(d: &Delivery, tz: chrono_tz::Tz) -> CsvDownload {
    let filename = d
        .file_name
        .clone()
        .or_else(|| d.original_filename.clone())
        .unwrap_or_else(|| format!("download-{}", d.id));
    let served_by_source = d.served_by.as_deref().and_then(UrlRole::parse) == Some(UrlRole::Source);
    // Signed query strings stay out, as in the rest of the API (R2 links are always signed).
    let url = match &d.r2_url {
        Some(r2) if !served_by_source => super::api::shown_link(r2, true),
        _ => super::api::shown_link(&d.source_url, false),
    };
    let progress = match d.state {
        DeliveryState::Done | DeliveryState::Handled | DeliveryState::DryRun => 100,
        _ => match d.bytes_total {
            Some(total) if total > 0 => (d.bytes_done.clamp(0, total) * 100 / total) as u8,
            _ => 0,
        },
    };
    let size = d.bytes_total.unwrap_or(d.bytes_done);
    let message = match d.state {
        DeliveryState::Queued => "Queued".to_string(),
        DeliveryState::Available => {
            "Available: older than DOWNLOAD_MAX_AGE, download it from the dashboard".to_string()
        }
        DeliveryState::Manual => "Open the link to download it manually".to_string(),
        DeliveryState::Downloading => match d.bytes_total {
            Some(total) => format!("{} / {}", megabytes(d.bytes_done), megabytes(total)),
            None => megabytes(d.bytes_done),
        },
        DeliveryState::Done => format!("File {filename} ({}) downloaded", megabytes(size)),
        DeliveryState::Handled => "Handled manually".to_string(),
        DeliveryState::DryRun => "Dry run: nothing downloaded".to_string(),
        DeliveryState::Failed => d.error.clone().unwrap_or_else(|| "Failed".to_string()),
        DeliveryState::Cancelled => "Cancelled".to_string(),
    };
    CsvDownload {
        id: format!("csv_{}", d.id),
        filename,
        original_url: super::api::shown_link(&d.raw_source_url, false),
        url,
        url_type: d.kind.as_str().to_string(),
        status: status_of(d.state),
        progress,
        message,
        display_timestamp: local_time(d.state_changed_at, tz),
        csv_timestamp: local_time(d.created_at, tz),
        manual_open: d.mode == DeliveryMode::Manual,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_in_decimal_megabytes() {
        assert_eq!(megabytes(160_000_000), "160.0 MB");
        assert_eq!(megabytes(12_040_000), "12.0 MB");
        assert_eq!(megabytes(-5), "0.0 MB");
    }

    #[test]
    fn every_state_has_an_original_status() {
        for s in DeliveryState::ALL {
            assert!(
                ["pending", "downloading", "completed", "failed", "cancelled"]
                    .contains(&status_of(*s))
            );
        }
    }
}
