//! `rushes frameio doctor`: six checks in order, from the credentials to a signed test call that
//! goes out through the public URL and is seen arriving in the running rushes' inspector. The
//! first failure says what to fix and the checks after it are skipped.

use std::process::ExitCode;
use std::time::Duration;

use secrecy::ExposeSecret as _;
use serde_json::{Value, json};

use crate::config::Config;
use crate::config::tunnel::webhook_url;
use crate::frameio::client::{Client, ClientError, Webhook};
use crate::frameio::webhook::{SECRET_KEY, sign};
use crate::store::Store;

const CHECKS: [&str; 6] = [
    "credentials",
    "account and workspace ids",
    "webhook presence",
    "webhook URL and activity",
    "public URL",
    "reachability from outside",
];

/// A check that failed: it has been printed, with its fix, and the rest skipped.
struct Failed;

type Check<T> = Result<T, Failed>;

/// The report on the terminal.
struct Report;

impl Report {
    fn ok(&self, check: usize, detail: impl AsRef<str>) {
        println!("[ok]   {}: {}", CHECKS[check], detail.as_ref());
    }

    /// Prints the failure of check `check` and skips the ones after it.
    fn fail(&self, check: usize, detail: impl AsRef<str>, fix: impl AsRef<str>) -> Failed {
        println!("[FAIL] {}: {}", CHECKS[check], detail.as_ref());
        println!("       fix: {}", fix.as_ref());
        for later in &CHECKS[check + 1..] {
            println!("[skip] {later}");
        }
        Failed
    }
}

/// What the running rushes answers about itself (`None`: nothing answers at `base`).
struct Service {
    http: reqwest::Client,
    token: Option<String>,
    base: String,
    status: Option<Value>,
}

impl Service {
    async fn ask(config: &Config, base: &str) -> anyhow::Result<Self> {
        let http = crate::net::client(crate::net::Timeouts {
            connect: Duration::from_secs(5),
            request: Some(Duration::from_secs(10)),
            read: None,
        })?;
        let mut service = Self {
            http,
            token: config
                .service
                .api_token
                .as_ref()
                .map(|t| t.expose_secret().to_string()),
            base: base.trim_end_matches('/').to_string(),
            status: None,
        };
        service.status = service.get_json("/api/frameio/status").await;
        Ok(service)
    }

    async fn get_json(&self, path: &str) -> Option<Value> {
        let mut request = self.http.get(format!("{}{path}", self.base));
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        match request.send().await {
            Ok(r) if r.status().is_success() => r.json().await.ok(),
            _ => None,
        }
    }

    /// The call whose resource id is `nonce` in the inspector, waited for up to 10 s.
    async fn find_call(&self, nonce: &str) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let found = self
                .get_json("/api/frameio/events?per_page=50")
                .await
                .and_then(|v| {
                    v["events"].as_array().and_then(|list| {
                        list.iter()
                            .find(|e| e["resource_id"].as_str() == Some(nonce))
                            .cloned()
                    })
                });
            if found.is_some() || tokio::time::Instant::now() >= deadline {
                return found;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// Runs the checks in order; stops at the first failure and says what to fix.
pub async fn doctor(config: &Config, service: &str) -> anyhow::Result<ExitCode> {
    let r = Report;
    let Ok((account, workspace)) = ids(&r, config) else {
        return Ok(ExitCode::from(1));
    };
    let store = Store::for_settings(&config.database, &config.database_path()).await?;
    let outcome = checks(&r, config, &store, service, account, workspace).await;
    store.close().await;
    Ok(match outcome? {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failed) => ExitCode::from(1),
    })
}

/// Checks 1 and 2 as far as the settings go: credentials and ids are set.
fn ids<'a>(r: &Report, config: &'a Config) -> Check<(&'a str, &'a str)> {
    let settings = &config.frameio;
    let Some(auth) = settings.auth.as_ref() else {
        return Err(r.fail(
            0,
            "no Frame.io credentials",
            "set FRAMEIO_TOKEN, or FRAMEIO_CLIENT_ID + FRAMEIO_CLIENT_SECRET (+ FRAMEIO_REFRESH_TOKEN)",
        ));
    };
    match (
        settings.account_id.as_deref(),
        settings.workspace_id.as_deref(),
    ) {
        (Some(account), Some(workspace)) => Ok((account, workspace)),
        _ => {
            r.ok(0, format!("{auth:?} configured (not yet tried)"));
            Err(r.fail(
                1,
                "FRAMEIO_ACCOUNT_ID or FRAMEIO_WORKSPACE_ID is not set",
                "set FRAMEIO_ACCOUNT_ID and FRAMEIO_WORKSPACE_ID (Frame.io v4 ids, in the web app's URLs)",
            ))
        }
    }
}

async fn checks(
    r: &Report,
    config: &Config,
    store: &Store,
    base: &str,
    account: &str,
    workspace: &str,
) -> anyhow::Result<Check<()>> {
    let settings = &config.frameio;
    let Some(client) = Client::from_config(settings, Some(store.clone())) else {
        return Ok(Err(r.fail(
            0,
            "cannot build the Frame.io client",
            "check the FRAMEIO_* settings",
        )));
    };
    let hook = match webhooks(r, &client, account, workspace).await {
        Ok(hooks) => match named(r, hooks, &settings.webhook_name, workspace) {
            Ok(hook) => hook,
            Err(f) => return Ok(Err(f)),
        },
        Err(f) => return Ok(Err(f)),
    };
    // The running rushes says where it is reachable.
    let service = Service::ask(config, base).await?;
    let target = match pointed(r, config, &service, &hook) {
        Ok(target) => target,
        Err(f) => return Ok(Err(f)),
    };
    let secret = match &settings.webhook_secret {
        Some(s) => Some(s.expose_secret().to_string()),
        None => store.frameio_credential(SECRET_KEY).await?.map(|(v, _)| v),
    };
    Ok(test_call(r, &service, &target, secret, account, workspace).await)
}

/// Checks 1 and 2 against Frame.io: listing the workspace's webhooks proves both.
async fn webhooks(
    r: &Report,
    client: &Client,
    account: &str,
    workspace: &str,
) -> Check<Vec<Webhook>> {
    match client.webhooks(account, workspace).await {
        Ok(hooks) => {
            r.ok(0, "accepted by Frame.io");
            r.ok(1, format!("account {account}, workspace {workspace}"));
            Ok(hooks)
        }
        Err(ClientError::Unauthorized { .. } | ClientError::Ims(_)) => Err(r.fail(
            0,
            "Frame.io refused the credentials",
            "renew FRAMEIO_TOKEN (or check FRAMEIO_CLIENT_ID / FRAMEIO_CLIENT_SECRET / FRAMEIO_REFRESH_TOKEN)",
        )),
        Err(
            e @ ClientError::Api {
                status: 403 | 404, ..
            },
        ) => {
            r.ok(0, "accepted by Frame.io");
            Err(r.fail(
                1,
                e.to_string(),
                "check FRAMEIO_ACCOUNT_ID and FRAMEIO_WORKSPACE_ID (the token must have access to them)",
            ))
        }
        Err(e) => Err(r.fail(
            0,
            e.to_string(),
            "check the network and FRAMEIO_API_BASE",
        )),
    }
}

/// Check 3: exactly one webhook carries rushes' name.
fn named(r: &Report, hooks: Vec<Webhook>, name: &str, workspace: &str) -> Check<Webhook> {
    let mut named: Vec<Webhook> = hooks.into_iter().filter(|h| h.name == name).collect();
    match named.len() {
        1 => {
            let one = named.remove(0);
            r.ok(2, format!("{} named {:?}", one.id, one.name));
            Ok(one)
        }
        0 => Err(r.fail(
            2,
            format!("no webhook named {name:?} in workspace {workspace}"),
            "start `rushes serve` with RUSHES_PUBLIC_URL or --tunnel ngrok|cloudflared (it creates it), or run `rushes frameio webhook ensure --url https://…/webhooks/frameio`",
        )),
        many => Err(r.fail(
            2,
            format!("{many} webhooks are named {name:?}"),
            "delete the extra ones (`rushes frameio webhook list`, `rushes frameio webhook delete ID`)",
        )),
    }
}

/// Checks 4 and 5: the webhook points at rushes' public URL, is active, and a rushes answers
/// there. Returns the webhook URL the test call goes to.
fn pointed(r: &Report, config: &Config, service: &Service, hook: &Webhook) -> Check<String> {
    let public = service
        .status
        .as_ref()
        .and_then(|s| s["public_url"].as_str().map(str::to_string))
        .or_else(|| {
            config
                .tunnel
                .public_url
                .as_ref()
                .map(|u| u.as_str().trim_end_matches('/').to_string())
        });
    let base = &service.base;
    let Some(public) = public else {
        let nobody = if service.status.is_none() {
            format!(" (no rushes answering at {base})")
        } else {
            String::new()
        };
        return Err(r.fail(
            3,
            format!(
                "the webhook points at {}, but rushes has no public URL{nobody}",
                hook.url
            ),
            "start `rushes serve` with RUSHES_PUBLIC_URL=https://… or --tunnel ngrok|cloudflared (or pass --url to this command)",
        ));
    };
    let target = webhook_url(&public);
    if hook.url != target {
        return Err(r.fail(
            3,
            format!("the webhook points at {}, rushes is at {target}", hook.url),
            format!("run `rushes frameio webhook ensure --url {target}` (a running `rushes serve` with a tunnel does it by itself)"),
        ));
    }
    if hook.active == Some(false) {
        return Err(r.fail(
            3,
            "the webhook is inactive (active: false)",
            format!("run `rushes frameio webhook ensure --url {target}` (a running `rushes serve` with a tunnel does it by itself)"),
        ));
    }
    r.ok(3, format!("points at {target}, active"));
    // Rushes must be running to see the test call.
    if service.status.is_none() {
        return Err(r.fail(
            4,
            format!("no rushes answers at {base}, so a test call cannot be seen arriving"),
            "start `rushes serve` (or pass --url http://HOST:PORT of the running rushes)",
        ));
    }
    r.ok(4, &public);
    Ok(target)
}

/// Check 6: a signed test call through the public URL, seen in the running rushes' inspector.
async fn test_call(
    r: &Report,
    service: &Service,
    target: &str,
    secret: Option<String>,
    account: &str,
    workspace: &str,
) -> Check<()> {
    let Some(secret) = secret else {
        return Err(r.fail(
            5,
            "rushes has no signing secret, so it refuses every delivery",
            "set FRAMEIO_WEBHOOK_SECRET, or delete the webhook and let rushes create it again (the secret is shown only at creation)",
        ));
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
    let sent = service
        .http
        .post(target)
        .header("content-type", "application/json")
        .header("X-Frameio-Request-Timestamp", &ts)
        .header("X-Frameio-Signature", signature)
        .body(body)
        .send()
        .await;
    let answer = match sent {
        Ok(response) => response.status().as_u16(),
        Err(e) => {
            return Err(r.fail(
                5,
                format!("cannot reach {target}: {}", crate::net::error_text(&e)),
                "check that the tunnel runs (`rushes frameio events`, /api/frameio/status) and that the public URL resolves",
            ));
        }
    };
    let base = &service.base;
    match service.find_call(&nonce).await {
        Some(call) if call["verdict"] == "accepted" => {
            r.ok(
                5,
                format!("a signed test call to {target} arrived (HTTP {answer}) and was accepted"),
            );
            Ok(())
        }
        Some(call) => Err(r.fail(
            5,
            format!(
                "the test call arrived but was refused: {} ({})",
                call["verdict"].as_str().unwrap_or("?"),
                call["reason"].as_str().unwrap_or("")
            ),
            "the running rushes uses another signing secret: make FRAMEIO_WEBHOOK_SECRET match the webhook's, or unset it to use the stored one",
        )),
        None => Err(r.fail(
            5,
            format!("the test call to {target} (HTTP {answer}) never reached the rushes at {base}"),
            "the public URL leads elsewhere: restart the tunnel (`rushes serve --tunnel …`) or fix RUSHES_PUBLIC_URL / the reverse proxy",
        )),
    }
}
