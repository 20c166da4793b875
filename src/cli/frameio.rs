//! `rushes frameio …`: track uploads, list them, manage the workspace webhook.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::Subcommand;

use super::Exit;
use crate::config::{Config, Overrides};
use crate::events::EventBus;
use crate::frameio::client::Client;
use crate::frameio::manage::{self, DEFAULT_EVENTS, EnsureOutcome};
use crate::frameio::tracker::{TrackError, Tracker};
use crate::frameio::webhook::SECRET_KEY;
use crate::logging;
use crate::store::{RegisterError, Registered, Store};

#[derive(Debug, Subcommand)]
pub enum FrameioCommand {
    /// Track a Frame.io file through review (same as POST /api/uploads).
    Track {
        /// Frame.io file id
        file_id: String,
        /// Name shown in lists
        #[arg(long)]
        name: Option<String>,
        /// Your id for this upload [default: the file id]
        #[arg(long, value_name = "ID")]
        upload_id: Option<String>,
    },
    /// Send a file to Frame.io (v4 local upload, parts in parallel) and track it through review;
    /// run it again after an interruption to finish the same upload.
    Upload {
        /// The file to send
        path: std::path::PathBuf,
        /// Frame.io folder id [default: $FRAMEIO_UPLOAD_FOLDER_ID]
        #[arg(long, value_name = "FOLDER_ID")]
        folder: Option<String>,
        /// Make it a new version of this Frame.io file (a version stack)
        #[arg(long, value_name = "FILE_ID")]
        version_of: Option<String>,
        /// Parts sent at once
        #[arg(long, default_value_t = crate::frameio::upload::DEFAULT_PARALLEL)]
        parallel: usize,
    },
    /// List tracked uploads with their review state and its reason.
    Uploads,
    /// Print the comment verdicts a person corrected, one {"text","expected"} JSON object a line.
    Corrections,
    /// Print the verdict a comment gives, whether the reader is sure, and its reason; without
    /// TEXT, read one comment a line from stdin and write one JSON object a line:
    /// {"text", "verdict", "confident", "reason"}. With --eval, score a labelled set.
    Verdict {
        /// Score the reader on FILE.json, a list of {"text", "expected"} (expected: approved,
        /// changes_requested, rejected or null): confusion matrix, confidently wrong %, not
        /// confident %, false approvals. Exit code 1 below the targets (confidently wrong ≤ 3 %,
        /// not confident ≤ 12 %, no confident false approval)
        #[arg(long, value_name = "FILE.json", conflicts_with = "text")]
        eval: Option<std::path::PathBuf>,
        /// With --eval: also print each miss (expected, verdict, sure or not, reason, text)
        #[arg(long, requires = "eval")]
        show_misses: bool,
        /// The comment (several words are joined with spaces)
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        text: Vec<String>,
    },
    /// Manage the one workspace webhook (named $FRAMEIO_WEBHOOK_NAME).
    #[command(subcommand)]
    Webhook(WebhookCommand),
    /// Print the webhook calls rushes received, newest last: time, event, resource, signature
    /// verdict (accepted or the 401 reason) and what processing did.
    Events {
        /// Keep printing calls as they arrive (Ctrl-C stops)
        #[arg(long, short)]
        follow: bool,
        /// How many recent calls to print first
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
    /// Check, in order, credentials, account and workspace ids, webhook presence, its URL and
    /// activity, the public URL, and reachability from outside (a signed test call sent to the
    /// public URL and seen arriving); say what to fix for the first failing check. Exit code 1
    /// when a check fails.
    Doctor {
        /// Base URL of the running rushes [default: http://$RUSHES_BIND]
        #[arg(long, value_name = "URL")]
        url: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum WebhookCommand {
    /// Create the webhook if absent (storing its secret), correct url/events/active if they
    /// differ, do nothing otherwise.
    Ensure {
        /// Public URL Frame.io posts to, e.g. https://rushes.example.com/webhooks/frameio
        #[arg(long)]
        url: String,
        /// Events to subscribe (comma-separated or repeated) [default: file.*, comment.*, metadata.value.updated]
        #[arg(long, value_delimiter = ',', num_args = 1..)]
        events: Vec<String>,
    },
    /// List the workspace's webhooks.
    List,
    /// Delete a webhook [default: the one named $FRAMEIO_WEBHOOK_NAME].
    Delete {
        /// Webhook id
        id: Option<String>,
    },
}

async fn open_store(config: &Config) -> anyhow::Result<Store> {
    Ok(Store::for_settings(&config.database, &config.database_path()).await?)
}

pub async fn run(command: FrameioCommand) -> anyhow::Result<ExitCode> {
    logging::init_command();
    if let FrameioCommand::Verdict {
        text,
        eval,
        show_misses,
    } = &command
    {
        return verdict(text, eval.as_deref(), *show_misses).await;
    }
    let config = Config::load(&Overrides::default())?;
    match command {
        FrameioCommand::Track {
            file_id,
            name,
            upload_id,
        } => track(&config, &file_id, name.as_deref(), upload_id.as_deref()).await,
        FrameioCommand::Upload {
            path,
            folder,
            version_of,
            parallel,
        } => {
            let args = super::frameio_upload::Args {
                path: &path,
                folder,
                version_of,
                parallel,
            };
            super::frameio_upload::run(&config, args).await
        }
        FrameioCommand::Uploads => uploads(&config).await,
        FrameioCommand::Corrections => super::frameio_review::corrections(&config).await,
        FrameioCommand::Webhook(cmd) => webhook(&config, cmd).await,
        FrameioCommand::Verdict { .. } => unreachable!("handled above"),
        FrameioCommand::Events { follow, limit } => {
            super::frameio_inspect::events(&config, limit, follow, crate::cli::shutdown_signal())
                .await
        }
        FrameioCommand::Doctor { url } => {
            let base = url.unwrap_or_else(|| super::local_url(config.service.bind));
            super::frameio_doctor::doctor(&config, &base).await
        }
    }
}

/// Only the Frame.io settings matter here (the lexicon), not the feed's.
async fn verdict(
    text: &[String],
    eval: Option<&std::path::Path>,
    show_misses: bool,
) -> anyhow::Result<ExitCode> {
    let settings = crate::config::FrameioConfig::from_lookup(|name| std::env::var(name).ok())?;
    let reader = crate::frameio::Reader::from_settings(&settings.review)?;
    match eval {
        Some(path) => super::verdict::eval(path, show_misses, &reader).await,
        None => super::verdict::run(text, &reader).await,
    }
}

async fn track(
    config: &Config,
    file_id: &str,
    name: Option<&str>,
    upload_id: Option<&str>,
) -> anyhow::Result<ExitCode> {
    let store = open_store(config).await?;
    let tracker = Tracker::new(
        store.clone(),
        EventBus::new(),
        None,
        Arc::new(config.frameio.clone()),
    );
    let result = tracker.register(upload_id, file_id, name).await;
    store.close().await;
    match result {
        Ok(Registered::Created(u)) => {
            println!(
                "tracking upload {} (file {}), state {}",
                u.id,
                u.file_id,
                u.state.as_str()
            );
            Ok(ExitCode::SUCCESS)
        }
        Ok(Registered::Existing(u)) => {
            println!(
                "already tracked: upload {} (file {}), state {}",
                u.id,
                u.file_id,
                u.state.as_str()
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(TrackError::Invalid(m)) => Err(Exit::error(Exit::CONFIG, m)),
        Err(TrackError::Register(
            e @ (RegisterError::FileTaken { .. } | RegisterError::IdTaken(_)),
        )) => Err(Exit::error(Exit::FAILURE, e.to_string())),
        Err(TrackError::Register(RegisterError::Store(e))) => Err(e.into()),
    }
}

async fn uploads(config: &Config) -> anyhow::Result<ExitCode> {
    let store = open_store(config).await?;
    let list = store.uploads().await;
    let credentials = store
        .frameio_credential(crate::frameio::client::CREDENTIALS_ERROR_KEY)
        .await;
    store.close().await;
    let list = list?;
    if let Some((detail, since)) = credentials? {
        println!(
            "{} ({detail}{})",
            crate::frameio::client::CREDENTIALS_EXPIRED,
            since.map(|s| format!(", since {s}")).unwrap_or_default()
        );
    }
    if list.is_empty() {
        println!("no tracked upload (rushes frameio track FILE_ID)");
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<24} {:<38} {:<18} {:<25} reason",
        "upload", "file", "state", "since"
    );
    for u in list {
        let mut reason = match &u.needs_look {
            Some(look) => format!(
                "NEEDS A LOOK (not sure of comment {}, guess: {}): {}",
                look.comment_id,
                look.guess.map_or("no decision", |v| v.as_str()),
                look.reason
            ),
            None => u.state_reason.clone(),
        };
        if reason.chars().count() > 160 {
            reason = reason.chars().take(159).collect::<String>() + "…";
        }
        println!(
            "{:<24} {:<38} {:<18} {:<25} {reason}",
            u.id,
            u.file_id,
            u.state.as_str(),
            u.state_changed_at
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// The database now holds a secret: only the owner may read it.
fn restrict(db: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        for suffix in ["", "-wal", "-shm"] {
            let mut path = db.as_os_str().to_owned();
            path.push(suffix);
            let path = std::path::PathBuf::from(path);
            if path.exists()
                && let Err(e) =
                    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
            {
                tracing::warn!(path = %path.display(), error = %e, "cannot make the database private (0600)");
            }
        }
    }
}

async fn webhook(config: &Config, command: WebhookCommand) -> anyhow::Result<ExitCode> {
    let settings = &config.frameio;
    settings.require_auth()?;
    let account = settings.require_account()?;
    let store = open_store(config).await?;
    let client = Client::from_config(settings, Some(store.clone()))
        .context("cannot build the HTTP client")?;
    let ctx = WebhookContext {
        config,
        client: &client,
        store: &store,
        account,
    };
    let result = match command {
        WebhookCommand::Ensure { url, events } => ensure_webhook(&ctx, &url, events).await,
        WebhookCommand::List => list_webhooks(&ctx).await,
        WebhookCommand::Delete { id } => delete_webhook(&ctx, id).await,
    };
    store.close().await;
    result.map(|()| ExitCode::SUCCESS)
}

/// What every `webhook` subcommand needs.
struct WebhookContext<'a> {
    config: &'a Config,
    client: &'a Client,
    store: &'a Store,
    account: &'a str,
}

async fn ensure_webhook(
    ctx: &WebhookContext<'_>,
    url: &str,
    events: Vec<String>,
) -> anyhow::Result<()> {
    let settings = &ctx.config.frameio;
    let parsed = url::Url::parse(url.trim())
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
        .ok_or_else(|| Exit::error(Exit::CONFIG, format!("--url {url:?} is not an http(s) URL")))?;
    let events: Vec<String> = if events.is_empty() {
        DEFAULT_EVENTS.iter().map(|e| e.to_string()).collect()
    } else {
        events
            .iter()
            .map(|e| e.trim().to_string())
            .filter(|e| !e.is_empty())
            .collect()
    };
    let workspace = settings.require_workspace()?;
    let outcome = manage::ensure(
        ctx.client,
        ctx.store,
        ctx.account,
        workspace,
        &settings.webhook_name,
        parsed.as_str(),
        &events,
    )
    .await?;
    match outcome {
        EnsureOutcome::Created { id } => {
            restrict(&ctx.config.database_path());
            println!(
                "created webhook {id} ({:?} -> {parsed}); its signing secret is stored in {}",
                settings.webhook_name,
                ctx.config.database_path().display()
            );
        }
        EnsureOutcome::Updated { id, patch } => {
            let mut what = Vec::new();
            if patch.url.is_some() {
                what.push("url");
            }
            if patch.events.is_some() {
                what.push("events");
            }
            if patch.active.is_some() {
                what.push("active");
            }
            println!("updated webhook {id}: {}", what.join(", "));
            warn_without_secret(settings, ctx.store).await;
        }
        EnsureOutcome::Unchanged { id } => {
            println!("webhook {id} is up to date, nothing changed");
            warn_without_secret(settings, ctx.store).await;
        }
    }
    Ok(())
}

async fn list_webhooks(ctx: &WebhookContext<'_>) -> anyhow::Result<()> {
    let workspace = ctx.config.frameio.require_workspace()?;
    let hooks = ctx.client.webhooks(ctx.account, workspace).await?;
    if hooks.is_empty() {
        println!("no webhook in workspace {workspace}");
    }
    for h in hooks {
        println!(
            "{}  {:<16} {}  {}  [{}]",
            h.id,
            h.name,
            if h.active == Some(false) {
                "inactive"
            } else {
                "active  "
            },
            h.url,
            h.events.join(",")
        );
    }
    Ok(())
}

async fn delete_webhook(ctx: &WebhookContext<'_>, id: Option<String>) -> anyhow::Result<()> {
    let settings = &ctx.config.frameio;
    let id = match id {
        Some(id) => id,
        None => {
            let workspace = settings.require_workspace()?;
            let hooks = ctx.client.webhooks(ctx.account, workspace).await?;
            hooks
                .into_iter()
                .find(|h| h.name == settings.webhook_name)
                .map(|h| h.id)
                .ok_or_else(|| {
                    Exit::error(
                        Exit::FAILURE,
                        format!("no webhook named {:?}", settings.webhook_name),
                    )
                })?
        }
    };
    ctx.client.delete_webhook(ctx.account, &id).await?;
    if let Some((_, Some(origin))) = ctx.store.frameio_credential(SECRET_KEY).await?
        && origin == id
    {
        ctx.store.delete_frameio_credential(SECRET_KEY).await?;
    }
    println!("deleted webhook {id}");
    Ok(())
}

async fn warn_without_secret(settings: &crate::config::FrameioConfig, store: &Store) {
    if settings.webhook_secret.is_none()
        && matches!(store.frameio_credential(SECRET_KEY).await, Ok(None))
    {
        println!(
            "warning: rushes has no signing secret for this webhook (Frame.io shows it only at creation): \
             set FRAMEIO_WEBHOOK_SECRET, or delete the webhook and run ensure again"
        );
    }
}
