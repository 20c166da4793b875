//! A fake delivery feed: a real HTTP server that serves a JSON body and can be told to fail,
//! to send validators and answer 304, and that counts what it was asked.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use axum::routing::get;

#[derive(Debug, Default)]
struct Behaviour {
    body: Vec<u8>,
    /// The next N requests fail with this status and body.
    fail_next: u32,
    fail_status: u16,
    fail_body: Vec<u8>,
    etag: Option<String>,
    requests: u32,
    conditional_requests: u32,
    not_modified_sent: u32,
    /// Every answer waits this long first (a slow feed).
    delay: std::time::Duration,
}

#[derive(Clone)]
pub struct FeedServer {
    pub addr: SocketAddr,
    state: Arc<Mutex<Behaviour>>,
}

impl FeedServer {
    pub async fn start(body: &str) -> Self {
        let state = Arc::new(Mutex::new(Behaviour {
            body: body.as_bytes().to_vec(),
            ..Default::default()
        }));
        let app = Router::new()
            .route("/feed.json", get(serve))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { addr, state }
    }

    /// The feed URL, with a secret-looking query string that must never be logged.
    pub fn url(&self) -> String {
        format!("http://{}/feed.json?token=s3cret-feed-token", self.addr)
    }

    fn with<T>(&self, f: impl FnOnce(&mut Behaviour) -> T) -> T {
        f(&mut self.state.lock().expect("lock"))
    }

    pub fn set_body(&self, body: impl Into<Vec<u8>>) {
        let body = body.into();
        self.with(|b| b.body = body);
    }

    pub fn fail_next(&self, n: u32, status: u16, body: &str) {
        self.with(|b| {
            b.fail_next = n;
            b.fail_status = status;
            b.fail_body = body.as_bytes().to_vec();
        });
    }

    pub fn set_etag(&self, etag: Option<&str>) {
        self.with(|b| b.etag = etag.map(str::to_string));
    }

    /// Every answer waits `delay` before it starts.
    pub fn set_delay(&self, delay: std::time::Duration) {
        self.with(|b| b.delay = delay);
    }

    pub fn requests(&self) -> u32 {
        self.with(|b| b.requests)
    }

    pub fn conditional_requests(&self) -> u32 {
        self.with(|b| b.conditional_requests)
    }

    pub fn not_modified_sent(&self) -> u32 {
        self.with(|b| b.not_modified_sent)
    }
}

async fn serve(State(state): State<Arc<Mutex<Behaviour>>>, headers: HeaderMap) -> Response {
    let delay = {
        let mut b = state.lock().expect("lock");
        b.requests += 1;
        b.delay
    };
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let mut b = state.lock().expect("lock");
    if b.fail_next > 0 {
        b.fail_next -= 1;
        return Response::builder()
            .status(b.fail_status)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(b.fail_body.clone()))
            .expect("response");
    }
    let if_none_match = headers.get(header::IF_NONE_MATCH).cloned();
    if if_none_match.is_some() {
        b.conditional_requests += 1;
    }
    if let (Some(etag), Some(sent)) = (b.etag.clone(), if_none_match)
        && sent == HeaderValue::from_str(&etag).expect("etag")
    {
        b.not_modified_sent += 1;
        return Response::builder()
            .status(StatusCode::NOT_MODIFIED)
            .header(header::ETAG, etag.as_str())
            .body(Body::empty())
            .expect("response");
    }
    let mut response = Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json");
    if let Some(etag) = &b.etag {
        response = response.header(header::ETAG, etag.as_str());
    }
    response.body(Body::from(b.body.clone())).expect("response")
}
