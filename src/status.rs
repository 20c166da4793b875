//! The legacy `/api/csv_monitor_status` contract, in one serializer (also read back by `rushes status`).

use serde::{Deserialize, Serialize};

use crate::store::FeedState;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MonitorStatus {
    pub data_source: String,
    pub monitor_interval: u64,
    pub webhook: WebhookStatus,
    pub csv_monitor: CsvMonitorStatus,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WebhookStatus {
    pub available: bool,
    /// `YYYY-MM-DD HH:MM:SS` (UTC) of the last successful fetch.
    pub last_fetch_ts: Option<String>,
    pub error: Option<String>,
    pub records_processed: i64,
    /// Same number as `records_processed`: the original front-end reads this name.
    pub records: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CsvMonitorStatus {
    pub status: String,
    pub last_check: Option<String>,
    pub error: String,
}

impl MonitorStatus {
    pub fn from_feed_state(state: &FeedState, monitor_interval_secs: u64) -> Self {
        let last_fetch_ts = state
            .last_success_at
            .map(|t| t.as_datetime().format("%Y-%m-%d %H:%M:%S").to_string());
        Self {
            data_source: "webhook".into(),
            monitor_interval: monitor_interval_secs,
            webhook: WebhookStatus {
                available: state.last_error.is_none() && state.last_success_at.is_some(),
                last_fetch_ts,
                error: state.last_error.clone(),
                records_processed: state.records_processed,
                records: state.records_processed,
            },
            csv_monitor: CsvMonitorStatus {
                status: "inactive".into(),
                last_check: None,
                error: "Webhook monitoring is active".into(),
            },
        }
    }
}
