//! `rushes status`: what a running rushes says about the feed, readably.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;

use crate::config::{Config, Overrides};
use crate::logging;
use crate::net;
use crate::status::MonitorStatus;

pub(super) async fn status(url: Option<String>) -> anyhow::Result<ExitCode> {
    logging::init_command();
    let base = match url {
        Some(url) => url,
        None => super::local_url(Config::load(&Overrides::default())?.service.bind),
    };
    let endpoint = format!("{}/api/csv_monitor_status", base.trim_end_matches('/'));
    let client = net::client(net::Timeouts {
        connect: Duration::from_secs(5),
        request: Some(Duration::from_secs(10)),
        read: None,
    })?;
    // The service's own token, when it has one (the same variable it reads).
    let token = std::env::var("RUSHES_API_TOKEN")
        .ok()
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty());
    let get = |url: &str| {
        let request = client.get(url);
        match &token {
            Some(t) => request.bearer_auth(t),
            None => request,
        }
    };
    let answer = get(&endpoint).send().await;
    let response = match answer {
        Ok(r) => r,
        Err(e) => {
            println!("rushes is not reachable at {base}: {}", e.without_url());
            println!("{}", super::NOT_RUNNING_HINT);
            return Ok(ExitCode::from(1));
        }
    };
    if !response.status().is_success() {
        println!("{endpoint} answered HTTP {}", response.status());
        return Ok(ExitCode::from(1));
    }
    let status: MonitorStatus = response
        .json()
        .await
        .context("the status answer is not the expected JSON")?;
    let w = &status.webhook;
    println!(
        "data source       {} (checked every {} s)",
        status.data_source, status.monitor_interval
    );
    println!(
        "feed available    {}",
        if w.available { "yes" } else { "no" }
    );
    println!(
        "last fetch        {}",
        w.last_fetch_ts
            .as_deref()
            .map_or_else(|| "never".to_string(), |t| format!("{t} UTC"))
    );
    println!("records           {}", w.records_processed);
    println!("last error        {}", w.error.as_deref().unwrap_or("none"));
    // Best effort: Frame.io credentials refused for good (GET /api/uploads says so).
    let uploads = format!("{}/api/uploads", base.trim_end_matches('/'));
    if let Ok(r) = get(&uploads).send().await
        && r.status().is_success()
        && let Ok(body) = r.json::<serde_json::Value>().await
        && let Some(c) = body.get("frameio_credentials").filter(|c| !c.is_null())
    {
        println!(
            "frameio           {} ({})",
            c["error"].as_str().unwrap_or(""),
            c["detail"].as_str().unwrap_or("")
        );
    }
    // Best effort: several instances on one PostgreSQL (GET /api/cluster).
    let cluster = format!("{}/api/cluster", base.trim_end_matches('/'));
    if let Ok(r) = get(&cluster).send().await
        && r.status().is_success()
        && let Ok(body) = r.json::<serde_json::Value>().await
    {
        print_cluster(&body);
    }
    Ok(ExitCode::SUCCESS)
}

/// The database, who polls the feed and which instance runs each download.
fn print_cluster(body: &serde_json::Value) {
    let text = |v: &serde_json::Value| v.as_str().unwrap_or("?").to_string();
    println!(
        "database          {} (this is instance {})",
        text(&body["backend"]),
        text(&body["instance"])
    );
    if body["backend"] != "postgres" {
        return;
    }
    let leases = body["leases"].as_array().cloned().unwrap_or_default();
    match leases.iter().find(|l| l["name"] == "feed") {
        Some(l) => println!(
            "feed polled by    {} (lease until {})",
            text(&l["holder"]),
            text(&l["expires_at"])
        ),
        None => println!("feed polled by    nobody yet"),
    }
    for i in body["instances"].as_array().into_iter().flatten() {
        println!(
            "instance          {} at {} (seen {})",
            text(&i["name"]),
            text(&i["address"]),
            text(&i["seen_at"])
        );
    }
    for d in body["downloads"].as_array().into_iter().flatten() {
        println!(
            "downloading       #{} {} on {}",
            d["id"],
            text(&d["file_name"]),
            text(&d["owner"])
        );
    }
}
