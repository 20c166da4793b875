//! `rushes password <id>`: gives a running rushes the password of a password-protected transfer
//! (read from standard input, never from the command line where `ps` would show it), then the
//! delivery is queued again.

use std::io::{BufRead as _, Read as _};
use std::process::ExitCode;
use std::time::Duration;

use crate::config::{Config, Overrides};
use crate::logging;
use crate::net;

/// Longest password read from standard input (bytes).
const MAX_PASSWORD: usize = 1024;

pub(super) async fn password(id: i64, url: Option<String>) -> anyhow::Result<ExitCode> {
    logging::init_command();
    let base = match url {
        Some(url) => url,
        None => super::local_url(Config::load(&Overrides::default())?.service.bind),
    };
    if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        eprintln!("Transfer password for delivery {id} (one line; it is not shown):");
    }
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .take(MAX_PASSWORD as u64 + 2)
        .read_line(&mut line)?;
    let password = line.trim_end_matches(['\r', '\n']);
    if password.is_empty() || password.len() > MAX_PASSWORD {
        eprintln!("no password read (one line on standard input, at most {MAX_PASSWORD} bytes)");
        return Ok(ExitCode::from(2));
    }
    let endpoint = format!(
        "{}/api/deliveries/{id}/password",
        base.trim_end_matches('/')
    );
    let client = net::client(net::Timeouts {
        connect: Duration::from_secs(5),
        request: Some(Duration::from_secs(10)),
        read: None,
    })?;
    let mut request = client
        .post(&endpoint)
        .json(&serde_json::json!({ "password": password }));
    // The service's own token, when it has one (the same variable it reads).
    if let Some(token) = std::env::var("RUSHES_API_TOKEN")
        .ok()
        .filter(|t| !t.trim().is_empty())
    {
        request = request.bearer_auth(token.trim());
    }
    let response = match request.send().await {
        Ok(r) => r,
        Err(e) => {
            println!("rushes is not reachable at {base}: {}", net::error_text(&e));
            println!("{}", super::NOT_RUNNING_HINT);
            return Ok(ExitCode::from(1));
        }
    };
    let status = response.status();
    let body: serde_json::Value = response.json().await.unwrap_or_default();
    if status.is_success() {
        println!("delivery {id}: password given, queued again");
        Ok(ExitCode::SUCCESS)
    } else {
        let reason = body["error"].as_str().unwrap_or("");
        println!("delivery {id}: HTTP {status} {reason}");
        Ok(ExitCode::from(1))
    }
}
