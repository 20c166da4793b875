//! Making rushes reachable from outside: a fixed public URL (`RUSHES_PUBLIC_URL`), or a
//! supervised ngrok / cloudflared agent whose public URL is discovered, published and watched.
//! The agent is restarted with capped exponential backoff when it exits, stopped with SIGTERM
//! then SIGKILL at shutdown, and run under `rushes tunnel-guard` so it dies with rushes.
//!
//! Middle floor: knows nothing of Frame.io; it publishes the public base URL on a watch channel
//! and the wiring (`app.rs`) hands that to whoever needs it.

pub mod agent;
mod group;
pub mod guard;
mod ngrok;

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::config::tunnel::{TunnelMode, TunnelSettings};
use crate::domain::Timestamp;
use crate::net::{Backoff, RetryPolicy, Timeouts};
use agent::{Agent, AgentError};

/// Where the agent stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentState {
    /// No agent in this mode.
    NotUsed,
    Starting,
    Running,
    /// Exited; waiting before the next start.
    Restarting,
    /// Could not start (missing binary, refused token…); retried with growing delays.
    Failed,
    Stopped,
}

impl AgentState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotUsed => "not_used",
            Self::Starting => "starting",
            Self::Running => "running",
            Self::Restarting => "restarting",
            Self::Failed => "failed",
            Self::Stopped => "stopped",
        }
    }
}

/// What `/api/frameio/status` and the dashboard show about reachability.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TunnelStatus {
    /// `none`, `ngrok` or `cloudflared`.
    pub mode: &'static str,
    /// Where the public URL comes from: `RUSHES_PUBLIC_URL`, `ngrok`, `cloudflared` or null.
    pub url_source: Option<&'static str>,
    pub public_url: Option<String>,
    pub agent_state: AgentState,
    pub agent_pid: Option<u32>,
    pub restarts: u32,
    pub last_error: Option<String>,
    /// `missing_binary`, `auth_refused`, `exited`, `no_url`…
    pub last_error_kind: Option<&'static str>,
    pub next_start_at: Option<Timestamp>,
    pub url_changed_at: Option<Timestamp>,
}

/// What the rest of rushes reads: the status and the public base URL.
#[derive(Clone)]
pub struct TunnelHandle {
    status: watch::Receiver<TunnelStatus>,
    url: watch::Receiver<Option<String>>,
}

impl TunnelHandle {
    pub fn status(&self) -> TunnelStatus {
        self.status.borrow().clone()
    }

    /// The public base URL (no trailing slash), `None` while unknown.
    pub fn url_watch(&self) -> watch::Receiver<Option<String>> {
        self.url.clone()
    }

    pub fn status_watch(&self) -> watch::Receiver<TunnelStatus> {
        self.status.clone()
    }
}

/// The agent loop, not yet running. Absent in modes without an agent.
pub struct Supervisor {
    settings: TunnelSettings,
    addr: std::net::SocketAddr,
    status: Arc<watch::Sender<TunnelStatus>>,
    url: watch::Sender<Option<String>>,
}

fn base(url: &str) -> String {
    url.trim_end_matches('/').to_string()
}

/// Builds the handle (and the supervisor when an agent is needed) for rushes listening on `addr`.
pub fn build(
    settings: &TunnelSettings,
    addr: std::net::SocketAddr,
) -> (TunnelHandle, Option<Supervisor>) {
    let fixed = settings.public_url.as_ref().map(|u| base(u.as_str()));
    let agent_runs = settings.mode != TunnelMode::None;
    let initial_url = match settings.mode {
        TunnelMode::None => fixed.clone(),
        // A named tunnel's hostname is fixed; it is published once the agent runs.
        _ => None,
    };
    let status = TunnelStatus {
        mode: settings.mode.as_str(),
        url_source: match settings.mode {
            TunnelMode::None => fixed.as_ref().map(|_| "RUSHES_PUBLIC_URL"),
            TunnelMode::Ngrok => Some("ngrok"),
            TunnelMode::Cloudflared if settings.named_cloudflared() => Some("RUSHES_PUBLIC_URL"),
            TunnelMode::Cloudflared => Some("cloudflared"),
        },
        public_url: initial_url.clone(),
        agent_state: if agent_runs {
            AgentState::Starting
        } else {
            AgentState::NotUsed
        },
        agent_pid: None,
        restarts: 0,
        last_error: None,
        last_error_kind: None,
        next_start_at: None,
        url_changed_at: initial_url.as_ref().map(|_| Timestamp::now()),
    };
    let (status_tx, status_rx) = watch::channel(status);
    let (url_tx, url_rx) = watch::channel(initial_url);
    let handle = TunnelHandle {
        status: status_rx,
        url: url_rx,
    };
    let supervisor = agent_runs.then(|| Supervisor {
        settings: settings.clone(),
        addr,
        status: Arc::new(status_tx),
        url: url_tx,
    });
    (handle, supervisor)
}

/// How an agent run ended.
enum RunEnd {
    Cancelled,
    Failed(AgentError, bool),
}

impl Supervisor {
    fn update(&self, f: impl FnOnce(&mut TunnelStatus)) {
        self.status.send_modify(f);
    }

    fn publish(&self, url: &str) {
        let url = base(url);
        let changed = self.url.borrow().as_deref() != Some(url.as_str());
        if changed {
            tracing::info!(agent = self.settings.mode.as_str(), url = %url, "tunnel: public URL is {url}");
            self.url.send_replace(Some(url.clone()));
        }
        self.update(|s| {
            s.public_url = Some(url);
            if changed {
                s.url_changed_at = Some(Timestamp::now());
            }
        });
    }

    /// Runs the agent until `cancel`, restarting it as needed, and stops it.
    pub async fn run(self, cancel: CancellationToken) {
        let Some(plan) = agent::plan(&self.settings, self.addr) else {
            return;
        };
        // Restart delays: doubling with jitter, capped; longer for what a restart cannot fix.
        let backoff = |cap: Duration| -> Backoff {
            RetryPolicy {
                attempts: u32::MAX,
                base_delay: self.settings.backoff_base,
                max_delay: cap,
            }
            .backoff()
        };
        let mut crash_backoff = backoff(self.settings.backoff_cap);
        let mut setup_backoff = backoff(self.settings.failure_cap);
        loop {
            self.update(|s| {
                s.agent_state = AgentState::Starting;
                s.next_start_at = None;
            });
            let started = Instant::now();
            let end = self.run_once(&plan, &cancel).await;
            let (error, ran) = match end {
                RunEnd::Cancelled => {
                    self.update(|s| {
                        s.agent_state = AgentState::Stopped;
                        s.agent_pid = None;
                    });
                    return;
                }
                RunEnd::Failed(error, ran) => (error, ran),
            };
            // A run that stayed up a while starts the backoff over.
            if ran && started.elapsed() > self.settings.backoff_cap {
                crash_backoff = backoff(self.settings.backoff_cap);
                setup_backoff = backoff(self.settings.failure_cap);
            }
            let (wait, cap) = if error.is_setup_problem() {
                (setup_backoff.next_wait(None), self.settings.failure_cap)
            } else {
                (crash_backoff.next_wait(None), self.settings.backoff_cap)
            };
            let delay = wait.unwrap_or(cap).min(cap);
            let next = Timestamp::now().plus(delay);
            tracing::error!(
                agent = plan.agent,
                kind = error.kind(),
                retry_in_s = delay.as_secs_f64(),
                "tunnel: {error}; rushes keeps serving locally and tries again in {:.0} s",
                delay.as_secs_f64().ceil()
            );
            self.update(|s| {
                s.agent_state = if ran {
                    AgentState::Restarting
                } else {
                    AgentState::Failed
                };
                s.agent_pid = None;
                s.last_error = Some(error.to_string());
                s.last_error_kind = Some(error.kind());
                s.next_start_at = Some(next);
            });
            tokio::select! {
                () = cancel.cancelled() => {
                    self.update(|s| s.agent_state = AgentState::Stopped);
                    return;
                }
                () = tokio::time::sleep(delay) => {}
            }
            self.update(|s| s.restarts += 1);
        }
    }

    /// One start: spawn, discover the URL, watch until exit or cancel. The bool says whether
    /// the agent got as far as running.
    async fn run_once(&self, plan: &agent::Plan, cancel: &CancellationToken) -> RunEnd {
        let grace = self.settings.grace;
        if self.settings.mode == TunnelMode::Ngrok
            && ngrok::api_taken(&self.settings.ngrok_api_addr).await
        {
            let addr = self.settings.ngrok_api_addr.clone();
            return RunEnd::Failed(AgentError::ApiTaken { addr }, false);
        }
        let mut agent = match Agent::spawn(plan, self.settings.guard.as_deref(), grace) {
            Ok(a) => a,
            Err(e) => return RunEnd::Failed(e, false),
        };
        self.update(|s| s.agent_pid = agent.pid());
        let mut lines = agent.take_lines();
        // Cleared when the agent closes its output, so a closed channel is not polled in a loop.
        let mut lines_open = true;
        tracing::info!(
            agent = plan.agent,
            pid = agent.pid(),
            "tunnel: {} started",
            plan.agent
        );
        let http = crate::net::loopback_client(Timeouts {
            connect: Duration::from_secs(2),
            request: Some(Duration::from_secs(2)),
            read: None,
        })
        .unwrap_or_default();

        // Discovery.
        let deadline = tokio::time::Instant::now() + self.settings.discovery_timeout;
        let mut tick = tokio::time::interval(Duration::from_millis(200));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let url = loop {
            let found = tokio::select! {
                () = cancel.cancelled() => {
                    agent.stop(grace).await;
                    return RunEnd::Cancelled;
                }
                error = agent.wait() => return RunEnd::Failed(error, false),
                () = tokio::time::sleep_until(deadline) => {
                    let where_ = match self.settings.mode {
                        TunnelMode::Ngrok => format!("asked http://{}/api/tunnels (NGROK_API_ADDR)", self.settings.ngrok_api_addr),
                        _ if self.fixed_url().is_some() => "no \"Registered tunnel connection\" line in its output".to_string(),
                        _ => "no https://….trycloudflare.com line in its output".to_string(),
                    };
                    let error = AgentError::NoUrl { agent: plan.agent, secs: self.settings.discovery_timeout.as_secs(), where_ };
                    agent.stop(grace).await;
                    return RunEnd::Failed(error, false);
                }
                line = lines.recv(), if lines_open && self.settings.mode == TunnelMode::Cloudflared => {
                    lines_open = line.is_some();
                    match (line, self.fixed_url()) {
                        // A named tunnel is up once it registered a connection to the edge.
                        (Some(l), Some(fixed)) => l.contains("Registered tunnel connection").then_some(fixed),
                        (Some(l), None) => agent::quick_tunnel_url(&l),
                        (None, _) => None,
                    }
                }
                _ = tick.tick(), if self.settings.mode == TunnelMode::Ngrok => {
                    ngrok::ask_ngrok(&http, &self.settings.ngrok_api_addr, self.addr.port(), &self.settings.tunnel_domains).await
                }
            };
            if let Some(url) = found {
                break url;
            }
        };
        self.publish(&url);
        self.update(|s| {
            s.agent_state = AgentState::Running;
            s.last_error = None;
            s.last_error_kind = None;
        });

        // Watch: exit, URL change, cancel.
        let mut recheck = tokio::time::interval(self.settings.recheck_every);
        recheck.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        recheck.tick().await;
        loop {
            tokio::select! {
                () = cancel.cancelled() => {
                    agent.stop(grace).await;
                    return RunEnd::Cancelled;
                }
                error = agent.wait() => return RunEnd::Failed(error, true),
                line = lines.recv(), if lines_open && self.settings.mode == TunnelMode::Cloudflared && self.fixed_url().is_none() => {
                    lines_open = line.is_some();
                    if let Some(url) = line.and_then(|l| agent::quick_tunnel_url(&l)) {
                        self.publish(&url);
                    }
                }
                _ = recheck.tick(), if self.settings.mode == TunnelMode::Ngrok => {
                    if let Some(url) = ngrok::ask_ngrok(&http, &self.settings.ngrok_api_addr, self.addr.port(), &self.settings.tunnel_domains).await {
                        self.publish(&url);
                    }
                }
            }
        }
    }

    /// A named cloudflared tunnel's URL: `RUSHES_PUBLIC_URL`.
    fn fixed_url(&self) -> Option<String> {
        if self.settings.named_cloudflared() {
            self.settings.public_url.as_ref().map(|u| base(u.as_str()))
        } else {
            None
        }
    }
}
