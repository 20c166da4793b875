//! `rushes frameio events [--follow]`: the webhook inspector's calls on the terminal.

use std::process::ExitCode;
use std::time::Duration;

use crate::config::Config;
use crate::frameio::inspector;
use crate::store::{ReceivedCall, Store};

fn line(call: &ReceivedCall) -> String {
    let verdict = if call.verdict == "accepted" {
        "accepted".to_string()
    } else {
        format!("{} {}", call.http_status, call.verdict)
    };
    format!(
        "{:<24} {:<8} {:<22} {:<28} {:<22} {}",
        call.received_at.text(),
        call.call_id,
        call.event_type.as_deref().unwrap_or("?"),
        format!(
            "{} {}",
            call.resource_type.as_deref().unwrap_or(""),
            call.resource_id.as_deref().unwrap_or("")
        )
        .trim(),
        verdict,
        inspector::outcome_text(call)
    )
}

/// Prints received calls, oldest of the page first; `follow` keeps printing new ones.
pub async fn events(
    config: &Config,
    limit: i64,
    follow: bool,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<ExitCode> {
    let store = Store::for_settings(&config.database, &config.database_path()).await?;
    let first = store.received_calls(limit.clamp(1, 1000), 0).await?;
    println!(
        "{:<24} {:<8} {:<22} {:<28} {:<22} outcome",
        "received", "call", "event", "resource", "signature"
    );
    let mut seen: std::collections::HashSet<String> =
        first.iter().map(|c| c.call_id.clone()).collect();
    for call in first.iter().rev() {
        println!("{}", line(call));
    }
    println!(
        "({} refused call(s) in all; the last 100 are kept)",
        store.rejected_call_count().await?
    );
    if !follow {
        store.close().await;
        return Ok(ExitCode::SUCCESS);
    }
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            () = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
        let recent = store.received_calls(200, 0).await?;
        for call in recent.iter().rev() {
            if seen.insert(call.call_id.clone()) {
                println!("{}", line(call));
            }
        }
        if seen.len() > 10_000 {
            seen = recent.iter().map(|c| c.call_id.clone()).collect();
        }
    }
    store.close().await;
    Ok(ExitCode::SUCCESS)
}
