//! Routes. `router(state)` is all a test needs to call handlers with `oneshot`.

use axum::Router;
use axum::middleware;
use axum::routing::{get, post};
use tower_http::trace::TraceLayer;

use super::{AppState, access, api, compat, dashboard, events, metrics, passwords, shield};

pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .route("/api/csv_monitor_status", get(api::csv_monitor_status))
        .route("/api/deliveries", get(api::list_deliveries))
        .route("/api/deliveries/{id}", get(api::get_delivery))
        .route("/api/deliveries/{id}/attempts", get(api::delivery_attempts))
        .route("/api/deliveries/{id}/retry", post(api::retry_delivery))
        .route("/api/deliveries/{id}/cancel", post(api::cancel_delivery))
        .route(
            "/api/deliveries/{id}/password",
            post(passwords::give_password),
        )
        .route(
            "/api/deliveries/{id}/download",
            post(api::download_delivery),
        )
        .route(
            "/api/csv_downloads_status",
            get(compat::csv_downloads_status),
        )
        .route("/api/deliveries/{id}/handled", post(api::mark_handled))
        .route("/api/events", get(events::sse))
        .route("/api/feed/refresh", post(api::refresh_feed))
        .route("/api/cluster", get(api::cluster))
        .merge(super::inspector::routes())
        .layer(middleware::from_fn(access::form_posts_return_to_the_page));
    let pages = Router::new()
        .route("/", get(dashboard::page))
        .route("/ui/deliveries/{id}/row", get(dashboard::row_fragment))
        .route("/ui/feed", get(dashboard::feed_fragment))
        .route("/ui/counts", get(dashboard::counts_fragment))
        .route("/ui/frameio", get(dashboard::frameio_fragment))
        .route("/static/dashboard.css", get(dashboard::stylesheet))
        .route("/static/dashboard.js", get(dashboard::script))
        .route("/login", get(access::login_form).post(access::login))
        .route("/logout", post(access::logout));
    Router::new()
        .merge(api)
        .merge(pages)
        .route("/healthz", get(api::healthz))
        .route("/metrics", get(metrics::metrics))
        .merge(super::frameio::routes())
        .merge(super::review::routes())
        .fallback(api::not_found)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            api::database_gate,
        ))
        .layer(middleware::from_fn_with_state(state.clone(), access::guard))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            shield::host_check,
        ))
        .layer(middleware::from_fn(shield::security_headers))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}
