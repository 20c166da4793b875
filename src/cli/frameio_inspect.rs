//! `rushes frameio events [--follow]` and `rushes frameio doctor` (the inspector's side of the
//! `frameio` group).

use std::process::ExitCode;
use std::time::Duration;

use secrecy::ExposeSecret as _;
use serde_json::{Value, json};

use crate::config::Config;
use crate::config::tunnel::webhook_url;
use crate::frameio::client::{Client, ClientError};
use crate::frameio::inspector;
use crate::frameio::webhook::{SECRET_KEY, sign};
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
    let store = Store::for_config(config).await?;
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

struct Doctor {
    failed: bool,
}

impl Doctor {
    fn ok(&self, check: &str, detail: impl AsRef<str>) {
        println!("[ok]   {check}: {}", detail.as_ref());
    }

    fn fail(&mut self, check: &str, detail: impl AsRef<str>, fix: impl AsRef<str>) {
        println!("[FAIL] {check}: {}", detail.as_ref());
        println!("       fix: {}", fix.as_ref());
        self.failed = true;
    }

    fn skip(&self, checks: &[&str]) {
        for c in checks {
            println!("[skip] {c}");
        }
    }
}

const CHECKS: [&str; 6] = [
    "credentials",
    "account and workspace ids",
    "webhook presence",
    "webhook URL and activity",
    "public URL",
    "reachability from outside",
];

/// Runs the checks in order; stops at the first failure and says what to fix.
pub async fn doctor(config: &Config, service: &str) -> anyhow::Result<ExitCode> {
    let mut d = Doctor { failed: false };
    let settings = &config.frameio;
    let done = |d: &Doctor| {
        Ok(if d.failed {
            ExitCode::from(1)
        } else {
            ExitCode::SUCCESS
        })
    };

    // 1. Credentials.
    let Some(auth) = settings.auth.as_ref() else {
        d.fail(
            CHECKS[0],
            "no Frame.io credentials",
            "set FRAMEIO_TOKEN, or FRAMEIO_CLIENT_ID + FRAMEIO_CLIENT_SECRET (+ FRAMEIO_REFRESH_TOKEN)",
        );
        d.skip(&CHECKS[1..]);
        return done(&d);
    };
    // 2. Ids (the listing below also proves the credentials).
    let (Some(account), Some(workspace)) = (
        settings.account_id.as_deref(),
        settings.workspace_id.as_deref(),
    ) else {
        d.ok(CHECKS[0], format!("{auth:?} configured (not yet tried)"));
        d.fail(
            CHECKS[1],
            "FRAMEIO_ACCOUNT_ID or FRAMEIO_WORKSPACE_ID is not set",
            "set FRAMEIO_ACCOUNT_ID and FRAMEIO_WORKSPACE_ID (Frame.io v4 ids, in the web app's URLs)",
        );
        d.skip(&CHECKS[2..]);
        return done(&d);
    };
    let store = Store::for_config(config).await?;
    let Some(client) = Client::from_config(settings, Some(store.clone())) else {
        d.fail(
            CHECKS[0],
            "cannot build the Frame.io client",
            "check the FRAMEIO_* settings",
        );
        return done(&d);
    };
    let hooks = match client.webhooks(account, workspace).await {
        Ok(h) => {
            d.ok(CHECKS[0], "accepted by Frame.io");
            d.ok(
                CHECKS[1],
                format!("account {account}, workspace {workspace}"),
            );
            h
        }
        Err(ClientError::Unauthorized { .. } | ClientError::Ims(_)) => {
            d.fail(
                CHECKS[0],
                "Frame.io refused the credentials",
                "renew FRAMEIO_TOKEN (or check FRAMEIO_CLIENT_ID / FRAMEIO_CLIENT_SECRET / FRAMEIO_REFRESH_TOKEN)",
            );
            d.skip(&CHECKS[1..]);
            store.close().await;
            return done(&d);
        }
        Err(
            e @ ClientError::Api {
                status: 403 | 404, ..
            },
        ) => {
            d.ok(CHECKS[0], "accepted by Frame.io");
            d.fail(
                CHECKS[1],
                e.to_string(),
                "check FRAMEIO_ACCOUNT_ID and FRAMEIO_WORKSPACE_ID (the token must have access to them)",
            );
            d.skip(&CHECKS[2..]);
            store.close().await;
            return done(&d);
        }
        Err(e) => {
            d.fail(
                CHECKS[0],
                e.to_string(),
                "check the network and FRAMEIO_API_BASE",
            );
            d.skip(&CHECKS[1..]);
            store.close().await;
            return done(&d);
        }
    };

    // 3. Webhook presence.
    let named: Vec<_> = hooks
        .iter()
        .filter(|h| h.name == settings.webhook_name)
        .collect();
    let hook = match named.as_slice() {
        [one] => {
            d.ok(CHECKS[2], format!("{} named {:?}", one.id, one.name));
            (*one).clone()
        }
        [] => {
            d.fail(
                CHECKS[2],
                format!("no webhook named {:?} in workspace {workspace}", settings.webhook_name),
                "start `rushes serve` with RUSHES_PUBLIC_URL or --tunnel ngrok|cloudflared (it creates it), or run `rushes frameio webhook ensure --url https://…/webhooks/frameio`",
            );
            d.skip(&CHECKS[3..]);
            store.close().await;
            return done(&d);
        }
        many => {
            d.fail(
                CHECKS[2],
                format!("{} webhooks are named {:?}", many.len(), settings.webhook_name),
                "delete the extra ones (`rushes frameio webhook list`, `rushes frameio webhook delete ID`)",
            );
            d.skip(&CHECKS[3..]);
            store.close().await;
            return done(&d);
        }
    };

    // The running rushes says where it is reachable.
    let http = crate::net::client(crate::net::Timeouts {
        connect: Duration::from_secs(5),
        request: Some(Duration::from_secs(10)),
        read: None,
    })?;
    let authed = |r: reqwest::RequestBuilder| match &config.api_token {
        Some(t) => r.bearer_auth(t.expose_secret()),
        None => r,
    };
    let base = service.trim_end_matches('/');
    let status: Option<Value> = match authed(http.get(format!("{base}/api/frameio/status")))
        .send()
        .await
    {
        Ok(r) if r.status().is_success() => r.json().await.ok(),
        _ => None,
    };
    let public = status
        .as_ref()
        .and_then(|s| s["public_url"].as_str().map(str::to_string))
        .or_else(|| {
            config
                .tunnel
                .public_url
                .as_ref()
                .map(|u| u.as_str().trim_end_matches('/').to_string())
        });

    // 4. URL and activity.
    let Some(public) = public else {
        d.fail(
            CHECKS[3],
            format!(
                "the webhook points at {}, but rushes has no public URL{}",
                hook.url,
                if status.is_none() {
                    format!(" (no rushes answering at {base})")
                } else {
                    String::new()
                }
            ),
            "start `rushes serve` with RUSHES_PUBLIC_URL=https://… or --tunnel ngrok|cloudflared (or pass --url to this command)",
        );
        d.skip(&CHECKS[4..]);
        store.close().await;
        return done(&d);
    };
    let target = webhook_url(&public);
    if hook.url != target || hook.active == Some(false) {
        let what = if hook.url != target {
            format!("the webhook points at {}, rushes is at {target}", hook.url)
        } else {
            "the webhook is inactive (active: false)".to_string()
        };
        d.fail(
            CHECKS[3],
            what,
            format!("run `rushes frameio webhook ensure --url {target}` (a running `rushes serve` with a tunnel does it by itself)"),
        );
        d.skip(&CHECKS[4..]);
        store.close().await;
        return done(&d);
    }
    d.ok(CHECKS[3], format!("points at {target}, active"));

    // 5. Public URL: rushes must be running to see the call.
    if status.is_none() {
        d.fail(
            CHECKS[4],
            format!("no rushes answers at {base}, so a test call cannot be seen arriving"),
            "start `rushes serve` (or pass --url http://HOST:PORT of the running rushes)",
        );
        d.skip(&CHECKS[5..]);
        store.close().await;
        return done(&d);
    }
    d.ok(CHECKS[4], &public);

    // 6. A signed test call through the public URL, seen in the inspector.
    let secret = match &settings.webhook_secret {
        Some(s) => Some(s.expose_secret().to_string()),
        None => store.frameio_credential(SECRET_KEY).await?.map(|(v, _)| v),
    };
    store.close().await;
    let Some(secret) = secret else {
        d.fail(
            CHECKS[5],
            "rushes has no signing secret, so it refuses every delivery",
            "set FRAMEIO_WEBHOOK_SECRET, or delete the webhook and let rushes create it again (the secret is shown only at creation)",
        );
        return done(&d);
    };
    let nonce = format!("doctor-{:016x}", rand::random::<u64>());
    let body = json!({
        "type": "rushes.doctor",
        "resource": {"id": nonce, "type": "doctor"},
        "account": {"id": account},
        "workspace": {"id": workspace},
    })
    .to_string();
    let ts = chrono::Utc::now().timestamp().to_string();
    let signature = sign(secret.as_bytes(), &ts, body.as_bytes());
    let sent = http
        .post(&target)
        .header("content-type", "application/json")
        .header("X-Frameio-Request-Timestamp", &ts)
        .header("X-Frameio-Signature", signature)
        .body(body)
        .send()
        .await;
    let answer = match sent {
        Ok(r) => r.status().as_u16(),
        Err(e) => {
            d.fail(
                CHECKS[5],
                format!("cannot reach {target}: {}", crate::net::error_text(&e)),
                "check that the tunnel runs (`rushes frameio events`, /api/frameio/status) and that the public URL resolves",
            );
            return done(&d);
        }
    };
    // Seen in the inspector?
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let seen = loop {
        let found = match authed(http.get(format!("{base}/api/frameio/events?per_page=50")))
            .send()
            .await
        {
            Ok(r) if r.status().is_success() => r.json::<Value>().await.ok().and_then(|v| {
                v["events"].as_array().and_then(|list| {
                    list.iter()
                        .find(|e| e["resource_id"].as_str() == Some(nonce.as_str()))
                        .cloned()
                })
            }),
            _ => None,
        };
        if found.is_some() || tokio::time::Instant::now() >= deadline {
            break found;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    match seen {
        Some(call) if call["verdict"] == "accepted" => {
            d.ok(
                CHECKS[5],
                format!("a signed test call to {target} arrived (HTTP {answer}) and was accepted"),
            );
        }
        Some(call) => d.fail(
            CHECKS[5],
            format!(
                "the test call arrived but was refused: {} ({})",
                call["verdict"].as_str().unwrap_or("?"),
                call["reason"].as_str().unwrap_or("")
            ),
            "the running rushes uses another signing secret: make FRAMEIO_WEBHOOK_SECRET match the webhook's, or unset it to use the stored one",
        ),
        None => d.fail(
            CHECKS[5],
            format!("the test call to {target} (HTTP {answer}) never reached the rushes at {base}"),
            "the public URL leads elsewhere: restart the tunnel (`rushes serve --tunnel …`) or fix RUSHES_PUBLIC_URL / the reverse proxy",
        ),
    }
    done(&d)
}
