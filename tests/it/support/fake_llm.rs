//! A fake OpenAI-compatible chat completions endpoint on 127.0.0.1:0 (`POST
//! /v1/chat/completions`, the shape Ollama, llama.cpp's server and hosted APIs share): the answer
//! is `{"choices": [{"index": 0, "message": {"role": "assistant", "content": …}, "finish_reason":
//! "stop"}], …}`. The test picks the behaviour: a good JSON verdict, garbage content, no answer
//! at all (a hung model), or `429 Too Many Requests` with `Retry-After`. Records each request's
//! body and `Authorization` header, and the most calls it saw in flight at once.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

#[derive(Debug, Clone, PartialEq)]
pub enum Behaviour {
    /// Answers `{"verdict": <this>}`.
    Verdict(&'static str),
    /// Answers a content that is not the JSON asked for.
    Garbage,
    /// Never answers.
    Hang,
    /// 429 with Retry-After.
    TooMany,
}

struct Inner {
    behaviour: Behaviour,
    requests: Vec<(Value, Option<String>)>,
    in_flight: usize,
    max_in_flight: usize,
}

#[derive(Clone)]
pub struct FakeLlm {
    pub addr: SocketAddr,
    inner: Arc<Mutex<Inner>>,
}

impl FakeLlm {
    pub async fn start(behaviour: Behaviour) -> Self {
        let inner = Arc::new(Mutex::new(Inner {
            behaviour,
            requests: Vec::new(),
            in_flight: 0,
            max_in_flight: 0,
        }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let app = Router::new()
            .route("/v1/chat/completions", post(completions))
            .with_state(inner.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { addr, inner }
    }

    /// `FRAMEIO_REVIEW_LLM_URL`.
    pub fn url(&self) -> String {
        format!("http://{}/v1/chat/completions", self.addr)
    }

    pub fn set(&self, behaviour: Behaviour) {
        self.inner.lock().expect("lock").behaviour = behaviour;
    }

    /// Bodies and Authorization headers received, oldest first.
    pub fn requests(&self) -> Vec<(Value, Option<String>)> {
        self.inner.lock().expect("lock").requests.clone()
    }

    pub fn max_in_flight(&self) -> usize {
        self.inner.lock().expect("lock").max_in_flight
    }
}

struct Leaving(Arc<Mutex<Inner>>);

impl Drop for Leaving {
    fn drop(&mut self) {
        if let Ok(mut i) = self.0.lock() {
            i.in_flight -= 1;
        }
    }
}

async fn completions(
    State(inner): State<Arc<Mutex<Inner>>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let behaviour = {
        let mut i = inner.lock().expect("lock");
        let auth = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        i.requests.push((body.clone(), auth));
        i.in_flight += 1;
        i.max_in_flight = i.max_in_flight.max(i.in_flight);
        i.behaviour.clone()
    };
    let _leaving = Leaving(inner);
    let content = match behaviour {
        Behaviour::Verdict(v) => json!({ "verdict": v }).to_string(),
        Behaviour::Garbage => "I think the client is mostly happy with it!".to_string(),
        Behaviour::Hang => std::future::pending::<String>().await,
        Behaviour::TooMany => {
            return (
                StatusCode::TOO_MANY_REQUESTS,
                [(header::RETRY_AFTER, "30")],
                Json(
                    json!({"error": {"message": "Rate limit reached", "type": "rate_limit_error"}}),
                ),
            )
                .into_response();
        }
    };
    Json(json!({
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1_765_000_000,
        "model": body["model"],
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": content},
            "finish_reason": "stop"
        }],
        "usage": {"prompt_tokens": 90, "completion_tokens": 8, "total_tokens": 98}
    }))
    .into_response()
}
