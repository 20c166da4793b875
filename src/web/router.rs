//! Routes. `router(state)` is all a test needs to call handlers with `oneshot`.

use axum::Router;
use axum::routing::{get, post};
use tower_http::trace::TraceLayer;

use super::{AppState, api, events};

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/api/csv_monitor_status", get(api::csv_monitor_status))
        .route("/api/deliveries", get(api::list_deliveries))
        .route("/api/deliveries/{id}", get(api::get_delivery))
        .route("/api/deliveries/{id}/attempts", get(api::delivery_attempts))
        .route("/api/deliveries/{id}/retry", post(api::retry_delivery))
        .route("/api/deliveries/{id}/cancel", post(api::cancel_delivery))
        .route("/api/deliveries/{id}/handled", post(api::mark_handled))
        .route("/api/events", get(events::sse))
        .route("/api/feed/refresh", post(api::refresh_feed))
        .route("/healthz", get(api::healthz))
        .route("/metrics", get(api::metrics))
        .fallback(api::not_found)
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}
