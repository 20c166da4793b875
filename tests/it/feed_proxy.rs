//! `rushes feed-proxy` against a real upstream feed server, with real clients on loopback.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::support::feed_server::FeedServer;
use crate::support::service::{TestApp, config_for, temp_dir};
use crate::support::wait_for;
use rushes::proxy::{FeedProxy, ProxyConfig};
use serde_json::{Value, json};
use tokio::sync::oneshot;

const WAIT: Duration = Duration::from_secs(20);
const ALICE: &str = "alice-token-0123456789abcdef";
const BOB: &str = "bob-token-0123456789abcdef";

struct Proxy {
    url: String,
    audit: PathBuf,
    tokens: PathBuf,
    stop: Option<oneshot::Sender<()>>,
    done: Option<tokio::task::JoinHandle<()>>,
}

impl Proxy {
    async fn start(upstream: &str, dir: &Path, extra: &[(&str, &str)]) -> Self {
        let tokens = dir.join("tokens");
        std::fs::write(&tokens, format!("# studio\nalice:{ALICE}\n")).expect("tokens");
        let audit = dir.join("audit.jsonl");
        let mut vars: Vec<(String, String)> = vec![
            ("FEED_PROXY_UPSTREAM".into(), upstream.into()),
            ("FEED_PROXY_BIND".into(), "127.0.0.1:0".into()),
            (
                "FEED_PROXY_TOKENS_FILE".into(),
                tokens.display().to_string(),
            ),
            ("FEED_PROXY_AUDIT_LOG".into(), audit.display().to_string()),
            ("FEED_PROXY_RATE_PER_TOKEN".into(), "1000".into()),
            ("FEED_PROXY_RATE_PER_CLIENT".into(), "1000".into()),
        ];
        for (k, v) in extra {
            vars.retain(|(name, _)| name != k);
            vars.push((k.to_string(), v.to_string()));
        }
        let config = ProxyConfig::from_lookup(|name| {
            vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
        })
        .expect("config");
        let proxy = FeedProxy::bind(config).await.expect("bind");
        let url = format!("http://{}/feed", proxy.local_addr().expect("addr"));
        let (tx, rx) = oneshot::channel::<()>();
        let done = tokio::spawn(async move {
            proxy
                .run_until(async {
                    let _ = rx.await;
                })
                .await
                .expect("proxy run");
        });
        Self {
            url,
            audit,
            tokens,
            stop: Some(tx),
            done: Some(done),
        }
    }

    async fn get(&self, token: Option<&str>, headers: &[(&str, &str)]) -> reqwest::Response {
        let mut request = reqwest::Client::new().get(&self.url);
        if let Some(t) = token {
            request = request.bearer_auth(t);
        }
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        request.send().await.expect("GET /feed")
    }

    /// Stops the proxy (flushing the audit log) and returns the log's lines.
    async fn stop(mut self) -> Vec<Value> {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(done) = self.done.take() {
            done.await.expect("proxy task");
        }
        std::fs::read_to_string(&self.audit)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("a JSON line"))
            .collect()
    }
}

fn feed_body() -> String {
    json!([{ "url": "https://fromsmash.com/x", "timestamp": "2026-01-08 10:00:00" }]).to_string()
}

#[tokio::test]
async fn tokens_are_required_and_named_in_the_audit_log_never_shown() {
    let upstream = FeedServer::start(&feed_body()).await;
    let dir = temp_dir();
    let proxy = Proxy::start(&upstream.url(), dir.path(), &[]).await;
    let r = proxy.get(None, &[]).await;
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["www-authenticate"], "Bearer");
    let r = proxy.get(Some("alice-token-0123456789abcdeX"), &[]).await;
    assert_eq!(r.status(), 401);
    let body: Value = r.json().await.expect("json");
    assert!(body["error"].is_string());
    let r = proxy.get(Some(ALICE), &[]).await;
    assert_eq!(r.status(), 200);
    let etag = r.headers()["etag"].to_str().expect("etag").to_string();
    assert_eq!(r.text().await.expect("body"), feed_body());
    let r = proxy.get(Some(ALICE), &[("if-none-match", &etag)]).await;
    assert_eq!(r.status(), 304);
    let lines = proxy.stop().await;
    // The first refusal in full, the next one in the summary line written at the end.
    assert_eq!(lines.len(), 4, "{lines:?}");
    assert_eq!(lines[0]["status"], 401);
    assert_eq!(lines[0]["token"], Value::Null);
    assert_eq!(lines[1]["token"], "alice");
    assert_eq!(lines[1]["status"], 200);
    assert_eq!(lines[1]["bytes"], feed_body().len());
    assert!(lines[1]["upstream_ms"].is_number());
    assert_eq!(lines[2]["status"], 304);
    assert_eq!(lines[2]["client"], "127.0.0.1");
    assert!(lines[2]["time"].is_string());
    assert_eq!(lines[3]["summary"], "refused");
    assert_eq!(lines[3]["count"], 1);
    assert_eq!(lines[3]["by_client"]["127.0.0.1"], 1);
    let text = std::fs::read_to_string(dir.path().join("audit.jsonl")).unwrap_or_default();
    assert!(
        !text.contains("token-0123456789"),
        "a token in the audit log: {text}"
    );
    assert!(
        !text.contains("s3cret-feed-token"),
        "the upstream query in the audit log"
    );
}

#[tokio::test]
async fn a_burst_asks_upstream_once() {
    let upstream = FeedServer::start(&feed_body()).await;
    upstream.set_delay(Duration::from_millis(300));
    let dir = temp_dir();
    let proxy = Proxy::start(
        &upstream.url(),
        dir.path(),
        &[("FEED_PROXY_CACHE_TTL", "60")],
    )
    .await;
    let client = reqwest::Client::new();
    let requests: Vec<_> = (0..20)
        .map(|_| {
            let request = client.get(&proxy.url).bearer_auth(ALICE).send();
            tokio::spawn(request)
        })
        .collect();
    for r in requests {
        let r = r.await.expect("join").expect("GET");
        assert_eq!(r.status(), 200);
    }
    assert_eq!(upstream.requests(), 1);
    proxy.stop().await;
}

#[tokio::test]
async fn upstream_failures_are_502_json_without_upstream_details() {
    let upstream = FeedServer::start(&feed_body()).await;
    upstream.fail_next(1, 500, r#"{"error": "internal detail s3cret-db-password"}"#);
    let dir = temp_dir();
    let proxy = Proxy::start(
        &upstream.url(),
        dir.path(),
        &[
            ("FEED_PROXY_CACHE_TTL", "0"),
            ("FEED_PROXY_MAX_BYTES", "100000"),
        ],
    )
    .await;
    let r = proxy.get(Some(ALICE), &[]).await;
    assert_eq!(r.status(), 502);
    let text = r.text().await.expect("body");
    let body: Value = serde_json::from_str(&text).expect("json");
    assert!(
        body["error"].as_str().unwrap_or("").contains("HTTP 500"),
        "{text}"
    );
    assert!(
        !text.contains("s3cret") && !text.contains("127.0.0.1"),
        "{text}"
    );
    // Too large: the cap holds.
    upstream.set_body(format!("[\"{}\"]", "x".repeat(200_000)));
    let r = proxy.get(Some(ALICE), &[]).await;
    assert_eq!(r.status(), 502);
    // The upstream down altogether.
    let gone = Proxy::start("http://127.0.0.1:9/feed?key=s3cret", dir.path(), &[]).await;
    let r = gone.get(Some(ALICE), &[]).await;
    assert_eq!(r.status(), 502);
    gone.stop().await;
    proxy.stop().await;
}

#[tokio::test]
async fn rate_limits_per_token_and_per_client() {
    let upstream = FeedServer::start(&feed_body()).await;
    let dir = temp_dir();
    let proxy = Proxy::start(
        &upstream.url(),
        dir.path(),
        &[
            ("FEED_PROXY_RATE_PER_TOKEN", "3"),
            ("FEED_PROXY_CACHE_TTL", "60"),
        ],
    )
    .await;
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for _ in 0..5 {
        let r = proxy.get(Some(ALICE), &[]).await;
        statuses.push(r.status().as_u16());
        if let Some(v) = r.headers().get("retry-after") {
            retry_after = v.to_str().ok().and_then(|v| v.parse::<u64>().ok());
        }
    }
    assert_eq!(statuses, vec![200, 200, 200, 429, 429]);
    assert!(retry_after.is_some_and(|s| s >= 1), "{retry_after:?}");
    proxy.stop().await;

    let dir = temp_dir();
    let proxy = Proxy::start(
        &upstream.url(),
        dir.path(),
        &[("FEED_PROXY_RATE_PER_CLIENT", "4")],
    )
    .await;
    let mut statuses = Vec::new();
    for i in 0..6 {
        let r = proxy
            .get(Some(&format!("guess-{i}-0123456789abcdef")), &[])
            .await;
        statuses.push(r.status().as_u16());
    }
    assert_eq!(statuses, vec![401, 401, 401, 401, 429, 429]);
    proxy.stop().await;
}

#[tokio::test]
async fn a_rotated_token_works_without_a_restart() {
    let upstream = FeedServer::start(&feed_body()).await;
    let dir = temp_dir();
    let proxy = Proxy::start(&upstream.url(), dir.path(), &[]).await;
    assert_eq!(proxy.get(Some(ALICE), &[]).await.status(), 200);
    assert_eq!(proxy.get(Some(BOB), &[]).await.status(), 401);
    std::fs::write(&proxy.tokens, format!("bob:{BOB}\n")).expect("rotate");
    wait_for("the new tokens to be in force", WAIT, || async {
        (proxy.get(Some(BOB), &[]).await.status() == 200).then_some(())
    })
    .await;
    assert_eq!(proxy.get(Some(ALICE), &[]).await.status(), 401);
    proxy.stop().await;
}

#[tokio::test]
async fn cors_only_for_listed_origins() {
    let upstream = FeedServer::start(&feed_body()).await;
    let dir = temp_dir();
    let proxy = Proxy::start(&upstream.url(), dir.path(), &[]).await;
    let r = proxy
        .get(Some(ALICE), &[("origin", "https://app.example")])
        .await;
    assert!(!r.headers().contains_key("access-control-allow-origin"));
    proxy.stop().await;
    let dir = temp_dir();
    let proxy = Proxy::start(
        &upstream.url(),
        dir.path(),
        &[("FEED_PROXY_CORS_ORIGINS", "https://app.example")],
    )
    .await;
    let r = proxy
        .get(Some(ALICE), &[("origin", "https://app.example")])
        .await;
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "https://app.example"
    );
    let r = proxy
        .get(Some(ALICE), &[("origin", "https://evil.example")])
        .await;
    assert!(!r.headers().contains_key("access-control-allow-origin"));
    let pre = reqwest::Client::new()
        .request(reqwest::Method::OPTIONS, &proxy.url)
        .header("origin", "https://app.example")
        .header("access-control-request-headers", "authorization")
        .send()
        .await
        .expect("preflight");
    assert_eq!(pre.status(), 204);
    let allowed = pre.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap_or("");
    assert!(allowed.contains("Authorization"), "{allowed}");
    proxy.stop().await;
}

#[tokio::test]
async fn rushes_reads_its_feed_through_the_proxy_with_its_token() {
    let upstream = FeedServer::start(&feed_body()).await;
    let dir = temp_dir();
    let proxy = Proxy::start(&upstream.url(), dir.path(), &[]).await;
    let root = temp_dir();
    let mut config = config_for(root.path(), &proxy.url);
    config.download.dry_run = true;
    config.feed.monitor_interval = Duration::from_secs(3600);
    config.feed.auth_token = Some(ALICE.to_string().into());
    let app = TestApp::spawn(config).await;
    wait_for("the delivery through the proxy", WAIT, || async {
        let (_, body) = app.get("/api/deliveries").await;
        (body["deliveries"].as_array().map(Vec::len) == Some(1)).then_some(())
    })
    .await;
    app.stop().await;
    let lines = proxy.stop().await;
    assert!(
        lines
            .iter()
            .any(|l| l["token"] == "alice" && l["status"] == 200),
        "{lines:?}"
    );
}

// Issue 22, item 5: everyone waiting behind a failed upstream gets that one failure.
#[tokio::test]
async fn clients_waiting_behind_a_hanging_upstream_share_its_failure() {
    let upstream = FeedServer::start(&feed_body()).await;
    upstream.set_delay(Duration::from_secs(30));
    let dir = temp_dir();
    let proxy = Proxy::start(
        &upstream.url(),
        dir.path(),
        &[("FEED_PROXY_CACHE_TTL", "0"), ("FEED_PROXY_TIMEOUT", "1")],
    )
    .await;
    let client = reqwest::Client::new();
    let started = std::time::Instant::now();
    let requests: Vec<_> = (0..6)
        .map(|_| {
            let request = client.get(&proxy.url).bearer_auth(ALICE).send();
            tokio::spawn(async move {
                let r = request.await.expect("GET");
                (r.status().as_u16(), started.elapsed())
            })
        })
        .collect();
    let mut slowest = Duration::ZERO;
    for r in requests {
        let (status, took) = r.await.expect("join");
        assert_eq!(status, 502);
        slowest = slowest.max(took);
    }
    // One wait of the 1 s timeout for all six (one after the other: 6 s).
    assert!(
        slowest < Duration::from_millis(2500),
        "the last 502 after {slowest:?}"
    );
    assert_eq!(upstream.requests(), 1, "upstream asked once");
    proxy.stop().await;
}

// Issue 22, item 5: the last good body, fresh enough, is served when upstream fails, said so.
#[tokio::test]
async fn the_last_good_feed_is_served_marked_stale_when_upstream_fails() {
    let upstream = FeedServer::start(&feed_body()).await;
    let dir = temp_dir();
    let proxy = Proxy::start(
        &upstream.url(),
        dir.path(),
        &[("FEED_PROXY_CACHE_TTL", "0")],
    )
    .await;
    let r = proxy.get(Some(ALICE), &[]).await;
    assert_eq!(r.status(), 200);
    assert!(r.headers().get(rushes::proxy::STALE_HEADER).is_none());
    upstream.fail_next(1, 503, "down for maintenance");
    let r = proxy.get(Some(ALICE), &[]).await;
    assert_eq!(r.status(), 200);
    let stale = r.headers()[rushes::proxy::STALE_HEADER]
        .to_str()
        .expect("header")
        .to_string();
    assert!(stale.contains("HTTP 503"), "{stale}");
    assert!(r.headers().get("warning").is_some());
    assert_eq!(r.text().await.expect("body"), feed_body());
    // Not when stale serving is off.
    let strict = Proxy::start(
        &upstream.url(),
        dir.path(),
        &[("FEED_PROXY_CACHE_TTL", "0"), ("FEED_PROXY_MAX_STALE", "0")],
    )
    .await;
    assert_eq!(strict.get(Some(ALICE), &[]).await.status(), 200);
    upstream.fail_next(1, 503, "down");
    assert_eq!(strict.get(Some(ALICE), &[]).await.status(), 502);
    strict.stop().await;
    proxy.stop().await;
}

// Issue 22, item 11: only JSON is relayed; refused requests are summed up; the audit rotates.
#[tokio::test]
async fn a_non_json_upstream_is_refused_and_the_audit_log_stays_small() {
    let upstream = FeedServer::start("<html><script>alert(1)</script></html>").await;
    let dir = temp_dir();
    let proxy = Proxy::start(
        &upstream.url(),
        dir.path(),
        &[
            ("FEED_PROXY_CACHE_TTL", "0"),
            ("FEED_PROXY_AUDIT_MAX_BYTES", "4000"),
        ],
    )
    .await;
    let r = proxy.get(Some(ALICE), &[]).await;
    assert_eq!(r.status(), 502);
    let text = r.text().await.expect("body");
    assert!(
        text.contains("not JSON") && !text.contains("script"),
        "{text}"
    );
    upstream.set_body(feed_body());
    let r = proxy.get(Some(ALICE), &[]).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/json");
    for i in 0..300 {
        let guess = format!("guess-{i:04}-0123456789abcdef");
        assert_eq!(proxy.get(Some(&guess), &[]).await.status(), 401);
    }
    for _ in 0..40 {
        assert_eq!(proxy.get(Some(ALICE), &[]).await.status(), 200);
    }
    let audit = proxy.audit.clone();
    let current = proxy.stop().await;
    let rotated: Vec<Value> = (1..=3)
        .filter_map(|n| std::fs::read_to_string(format!("{}.{n}", audit.display())).ok())
        .flat_map(|t| {
            t.lines()
                .map(|l| serde_json::from_str(l).expect("a JSON line"))
                .collect::<Vec<Value>>()
        })
        .collect();
    assert!(!rotated.is_empty(), "the audit log was rotated");
    assert!(
        std::fs::metadata(format!("{}.4", audit.display())).is_err(),
        "three old files at most"
    );
    let size = std::fs::metadata(&audit).map(|m| m.len()).unwrap_or(0);
    assert!(size <= 4000, "current audit file of {size} bytes");
    let all: Vec<&Value> = rotated.iter().chain(current.iter()).collect();
    let refused_lines = all.iter().filter(|l| l["status"] == 401).count();
    let summed: u64 = all
        .iter()
        .filter(|l| l["summary"] == "refused")
        .filter_map(|l| l["count"].as_u64())
        .sum();
    assert_eq!(refused_lines, 1, "the first refusal in full");
    assert_eq!(summed, 299, "the others summed up");
}
