//! Shared test support: real servers on 127.0.0.1:0, a real rushes (in-process or as a child
//! process), and waiting on conditions with a deadline instead of sleeping.

pub mod browser;
pub mod db;
pub mod fake_agents;
pub mod fake_frameio;
pub mod fake_frameio_children;
pub mod fake_frameio_upload;
pub mod fake_fromsmash;
pub mod fake_llm;
pub mod fake_swisstransfer;
pub mod feed_server;
pub mod file_server;
pub mod service;

use std::future::Future;
use std::time::{Duration, Instant};

/// Polls `check` until it returns `Some`, or panics with `what` after `timeout`.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
