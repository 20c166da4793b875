//! What the Rust benchmarks share: their settings, their section of BENCHMARKS.md, and a signed
//! Frame.io delivery. Included with `#[path = "common.rs"] mod common;` (each bench is its own
//! crate, so a bench may leave some of it unused).
#![allow(dead_code)]

use rushes::frameio::webhook::sign;

/// A whole-number setting of the benchmark (`default` when unset or not a number).
pub fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Replaces the section between `<!-- {name}:start -->` and `<!-- {name}:end -->` of
/// BENCHMARKS.md with `section` (which carries both markers), or appends it.
pub fn write_section(name: &str, section: &str) -> anyhow::Result<()> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("BENCHMARKS.md");
    let current = std::fs::read_to_string(&path).unwrap_or_else(|_| {
        "# Benchmarks\n\nMeasured numbers, written by the benchmarks themselves.\n\n".into()
    });
    let (start_marker, end_marker) = (
        format!("<!-- {name}:start -->"),
        format!("<!-- {name}:end -->\n"),
    );
    let start = current.find(&start_marker);
    let end = current.find(&end_marker).map(|i| i + end_marker.len());
    let updated = match (start, end) {
        (Some(s), Some(e)) if s < e => format!("{}{section}{}", &current[..s], &current[e..]),
        _ => format!("{current}\n{section}"),
    };
    std::fs::write(&path, updated)?;
    Ok(())
}

/// A `comment.created` delivery with Frame.io's fields, numbered `n`.
pub fn delivery_body(n: u64) -> String {
    format!(
        r#"{{"type":"comment.created","resource":{{"id":"c-{n}","type":"comment"}},"account":{{"id":"acc"}},"workspace":{{"id":"ws"}},"project":{{"id":"p"}},"user":{{"id":"u"}}}}"#
    )
}

/// Posts delivery `n` signed with `secret`; whether it was acknowledged.
pub async fn send_delivery(client: &reqwest::Client, url: &str, secret: &str, n: u64) -> bool {
    let ts = chrono::Utc::now().timestamp().to_string();
    let body = delivery_body(n);
    let sig = sign(secret.as_bytes(), &ts, body.as_bytes());
    client
        .post(url)
        .header("content-type", "application/json")
        .header("X-Frameio-Request-Timestamp", ts)
        .header("X-Frameio-Signature", sig)
        .body(body)
        .send()
        .await
        .map(|r| r.status().is_success())
        .unwrap_or(false)
}
