//! Access control. On loopback without `RUSHES_API_TOKEN` everything is open. With a token, the
//! API needs `Authorization: Bearer <token>` or the session cookie that `/login` sets (HttpOnly,
//! SameSite=Strict); the page shows a login form. Whatever the setting, a state-changing request
//! coming from another site (Origin / Sec-Fetch-Site) is refused.

use axum::Form;
use axum::extract::{FromRequest, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use secrecy::ExposeSecret;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::AppState;
use super::dashboard;
use super::error::ApiError;
use super::shield;

const COOKIE: &str = "rushes_session";

/// Equality whose time does not depend on where the inputs differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    let (a, b) = (Sha256::digest(a), Sha256::digest(b));
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Paths anyone may reach: health, assets, the login form, signed webhooks.
fn is_public(path: &str) -> bool {
    path == "/healthz"
        || path == "/login"
        || path.starts_with("/static/")
        || path.starts_with("/webhooks/")
}

/// Whether a browser tells us this request comes from another site.
fn is_cross_site(headers: &HeaderMap) -> bool {
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok())
        && site == "cross-site"
    {
        return true;
    }
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let origin_host = origin
        .split_once("://")
        .map_or(origin, |(_, rest)| rest)
        .trim_end_matches('/');
    origin == "null" || !origin_host.eq_ignore_ascii_case(host)
}

pub async fn guard(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let path = request.uri().path().to_string();
    let changes_state = !matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    );
    let headers = request.headers();

    if changes_state && !path.starts_with("/webhooks/") && is_cross_site(headers) {
        return ApiError::Forbidden("cross-site request refused".into()).into_response();
    }
    let Some(token) = state.config.service.api_token.as_ref() else {
        return next.run(request).await;
    };
    if is_public(&path) {
        return next.run(request).await;
    }
    let token = token.expose_secret();
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if let Some(given) = bearer {
        let client = shield::client_ip(&request);
        if let Some(wait) = state.shield.blocked_for(client) {
            return shield::too_many(wait);
        }
        if same(given.trim().as_bytes(), token.as_bytes()) {
            return next.run(request).await;
        }
        // The guessed value is never logged.
        tracing::warn!(%client, %path, "API request refused: wrong bearer token");
        if let Some(wait) = state.shield.failed(client) {
            return shield::too_many(wait);
        }
    } else if cookie(headers, COOKIE).is_some_and(|id| state.shield.session_valid(id)) {
        return next.run(request).await;
    }
    if path.starts_with("/api/") || path == "/metrics" || changes_state {
        return ApiError::Unauthorized(
            "authentication required: send Authorization: Bearer <RUSHES_API_TOKEN>".into(),
        )
        .into_response();
    }
    (StatusCode::UNAUTHORIZED, dashboard::login_page(None)).into_response()
}

/// Whether the browser reached us over HTTPS (directly or through a TLS-terminating proxy).
fn over_https(request: &Request) -> bool {
    let headers = request.headers();
    let forwarded_https = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("https"))
        || headers
            .get(header::FORWARDED)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.to_ascii_lowercase().contains("proto=https"));
    forwarded_https || request.uri().scheme_str() == Some("https")
}

#[derive(Deserialize)]
pub struct LoginForm {
    token: String,
}

pub async fn login_form() -> Response {
    dashboard::login_page(None).into_response()
}

pub async fn login(State(state): State<AppState>, request: Request) -> Response {
    let Some(token) = state.config.service.api_token.clone() else {
        return Redirect::to("/").into_response();
    };
    let client = shield::client_ip(&request);
    let secure = if over_https(&request) { "; Secure" } else { "" };
    if let Some(wait) = state.shield.blocked_for(client) {
        return shield::too_many(wait);
    }
    let Ok(Form(form)) = Form::<LoginForm>::from_request(request, &state).await else {
        return (
            StatusCode::BAD_REQUEST,
            dashboard::login_page(Some("Send the token in the form.")),
        )
            .into_response();
    };
    if !same(
        form.token.trim().as_bytes(),
        token.expose_secret().as_bytes(),
    ) {
        // The guessed value is never logged.
        tracing::warn!(%client, "dashboard sign-in refused: wrong token");
        if let Some(wait) = state.shield.failed(client) {
            return shield::too_many(wait);
        }
        return (
            StatusCode::UNAUTHORIZED,
            dashboard::login_page(Some("That token is not right.")),
        )
            .into_response();
    }
    let cookie = format!(
        "{COOKIE}={}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}{secure}",
        state.shield.open_session(),
        shield::SESSION_TTL.as_secs()
    );
    ([(header::SET_COOKIE, cookie)], Redirect::to("/")).into_response()
}

/// Ends the session on the server too: a copied cookie stops working.
pub async fn logout(State(state): State<AppState>, request: Request) -> Response {
    if let Some(id) = cookie(request.headers(), COOKIE) {
        state.shield.close_session(id);
    }
    let secure = if over_https(&request) { "; Secure" } else { "" };
    let cookie = format!("{COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0{secure}");
    ([(header::SET_COOKIE, cookie)], Redirect::to("/")).into_response()
}

/// A plain HTML form posted to the JSON API (the page without JavaScript) gets the page back.
pub async fn form_posts_return_to_the_page(request: Request, next: Next) -> Response {
    let from_form = request.method() == Method::POST
        && request
            .headers()
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.starts_with("text/html"));
    let response = next.run(request).await;
    if from_form && response.status().is_success() {
        return Redirect::to("/").into_response();
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn cross_site_detection() {
        assert!(!is_cross_site(&headers(&[("host", "127.0.0.1:5000")])));
        assert!(!is_cross_site(&headers(&[
            ("host", "127.0.0.1:5000"),
            ("origin", "http://127.0.0.1:5000")
        ])));
        assert!(is_cross_site(&headers(&[
            ("host", "127.0.0.1:5000"),
            ("origin", "https://evil.test")
        ])));
        assert!(is_cross_site(&headers(&[
            ("host", "127.0.0.1:5000"),
            ("origin", "null")
        ])));
        assert!(is_cross_site(&headers(&[
            ("host", "127.0.0.1:5000"),
            ("sec-fetch-site", "cross-site")
        ])));
    }

    #[test]
    fn cookies_and_tokens() {
        let h = headers(&[("cookie", "a=1; rushes_session=abc; b=2")]);
        assert_eq!(cookie(&h, COOKIE), Some("abc"));
        assert!(same(b"token", b"token"));
        assert!(!same(b"token", b"tokem"));
    }
}
