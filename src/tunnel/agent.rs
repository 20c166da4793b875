//! One run of a tunnel agent (ngrok or cloudflared): spawn it (through `rushes tunnel-guard` when
//! available), keep the tail of its output, find its public URL, stop it.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use secrecy::ExposeSecret as _;
use tokio::io::{AsyncRead, AsyncReadExt as _};
use tokio::process::{Child, ChildStdin, Command};

use super::group::Group;
use tokio::sync::mpsc;

use crate::config::tunnel::{TunnelMode, TunnelSettings};

/// Longest output line kept (longer ones are cut).
const MAX_LINE: usize = 2048;
/// Output lines kept for error messages.
const TAIL_LINES: usize = 40;

/// Why an agent run could not give a URL or ended.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AgentError {
    #[error("{program} not found: install it or set {var} to its path")]
    Missing { program: String, var: &'static str },
    #[error("cannot start {program}: {reason}")]
    Spawn { program: String, reason: String },
    #[error("{agent} refused the auth token: {hint} (agent said: {said})")]
    AuthRefused {
        agent: &'static str,
        hint: &'static str,
        said: String,
    },
    #[error("{agent} exited ({status}){said}")]
    Exited {
        agent: &'static str,
        status: String,
        said: String,
    },
    #[error(
        "something already answers on {addr} (NGROK_API_ADDR) before ngrok started: it is not \
         the agent rushes runs, so its answers are not trusted; stop it or set NGROK_API_ADDR \
         to a free address"
    )]
    ApiTaken { addr: String },
    #[error("{agent} gave no public https URL within {secs} s ({where_})")]
    NoUrl {
        agent: &'static str,
        secs: u64,
        where_: String,
    },
}

impl AgentError {
    /// Errors a restart will not fix by itself: retried with longer delays.
    pub fn is_setup_problem(&self) -> bool {
        matches!(
            self,
            Self::Missing { .. }
                | Self::Spawn { .. }
                | Self::AuthRefused { .. }
                | Self::ApiTaken { .. }
        )
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Self::Missing { .. } => "missing_binary",
            Self::Spawn { .. } => "spawn_failed",
            Self::AuthRefused { .. } => "auth_refused",
            Self::Exited { .. } => "exited",
            Self::NoUrl { .. } => "no_url",
            Self::ApiTaken { .. } => "api_taken",
        }
    }
}

/// The program to run and how.
pub struct Plan {
    pub agent: &'static str,
    pub program: PathBuf,
    pub var: &'static str,
    pub args: Vec<OsString>,
    pub env: Vec<(&'static str, String)>,
    /// Secrets never written to the log or the status (cut from the agent's output).
    pub secrets: Vec<String>,
}

/// What to run for `settings` with rushes listening on `addr`. A wildcard or loopback address
/// is reached on 127.0.0.1 (ngrok is given the bare port, as `ngrok http 5000`).
pub fn plan(settings: &TunnelSettings, addr: std::net::SocketAddr) -> Option<Plan> {
    let port = addr.port();
    let local = addr.ip().is_unspecified() || addr.ip().is_loopback();
    let origin = if local {
        format!("127.0.0.1:{port}")
    } else {
        addr.to_string()
    };
    match settings.mode {
        TunnelMode::None => None,
        TunnelMode::Ngrok => {
            let mut env = Vec::new();
            let mut secrets = Vec::new();
            if let Some(token) = &settings.ngrok_authtoken {
                env.push(("NGROK_AUTHTOKEN", token.expose_secret().to_string()));
                secrets.push(token.expose_secret().to_string());
            }
            Some(Plan {
                agent: "ngrok",
                program: settings.ngrok_bin.clone(),
                var: "NGROK_BIN",
                args: [
                    "http",
                    &if local {
                        port.to_string()
                    } else {
                        origin.clone()
                    },
                    "--log",
                    "stdout",
                    "--log-format",
                    "json",
                ]
                .iter()
                .map(OsString::from)
                .collect(),
                env,
                secrets,
            })
        }
        TunnelMode::Cloudflared => {
            let mut args: Vec<OsString> = vec!["tunnel".into(), "--no-autoupdate".into()];
            let mut env = Vec::new();
            let mut secrets = Vec::new();
            match &settings.cloudflared_token {
                Some(token) => {
                    // Named tunnel: the token goes in the environment, never on the command line.
                    args.push("run".into());
                    env.push(("TUNNEL_TOKEN", token.expose_secret().to_string()));
                    secrets.push(token.expose_secret().to_string());
                }
                None => {
                    args.push("--url".into());
                    args.push(format!("http://{origin}").into());
                }
            }
            Some(Plan {
                agent: "cloudflared",
                program: settings.cloudflared_bin.clone(),
                var: "CLOUDFLARED_BIN",
                args,
                env,
                secrets,
            })
        }
    }
}

/// `program` as the OS would find it: a path is taken as is, a bare name is looked up in PATH.
pub fn resolve(program: &Path) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt as _;
    let runnable = |p: &Path| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if program.components().count() > 1 || program.is_absolute() {
        return runnable(program).then(|| program.to_path_buf());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| runnable(candidate))
}

/// A running agent.
pub struct Agent {
    pub agent: &'static str,
    child: Child,
    /// Held open: when rushes dies, the guard reads end-of-file and stops the agent.
    _stdin: Option<ChildStdin>,
    lines: Option<mpsc::Receiver<String>>,
    readers: Vec<tokio::task::JoinHandle<()>>,
    tail: Arc<Mutex<VecDeque<String>>>,
    guarded: bool,
}

/// Variables of rushes' own configuration never handed to an agent (the agent's own token is
/// set again by its plan). The agents' other settings (NGROK_CONFIG, TUNNEL_LOGLEVEL…) pass.
fn is_rushes_variable(name: &str) -> bool {
    ["FRAMEIO_", "RUSHES_", "WEBHOOK_"]
        .iter()
        .any(|p| name.starts_with(p))
        || matches!(
            name,
            "ON_DOWNLOAD_COMPLETE"
                | "LOCAL_DOWNLOADS_DIR"
                | "NGROK_AUTHTOKEN"
                | "NGROK_BIN"
                | "NGROK_API_ADDR"
                | "CLOUDFLARED_BIN"
                | "CLOUDFLARED_TUNNEL_TOKEN"
                | "TUNNEL_TOKEN"
        )
}

impl Agent {
    pub fn spawn(plan: &Plan, guard: Option<&Path>, grace: Duration) -> Result<Self, AgentError> {
        let program = resolve(&plan.program).ok_or_else(|| AgentError::Missing {
            program: plan.program.display().to_string(),
            var: plan.var,
        })?;
        let mut command = match guard {
            Some(guard) => {
                let mut c = Command::new(guard);
                c.arg("tunnel-guard")
                    .arg("--grace-ms")
                    .arg(grace.as_millis().to_string())
                    .arg("--")
                    .arg(&program)
                    .args(&plan.args)
                    .stdin(Stdio::piped());
                c
            }
            None => {
                // Its own process group, stopped as a whole (see `group.rs`).
                let mut c = Command::new(&program);
                c.args(&plan.args).stdin(Stdio::null()).process_group(0);
                c
            }
        };
        for (name, _) in std::env::vars_os() {
            if name.to_str().is_some_and(is_rushes_variable) {
                command.env_remove(&name);
            }
        }
        for (name, value) in &plan.env {
            command.env(name, value);
        }
        command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = command.spawn().map_err(|e| AgentError::Spawn {
            program: program.display().to_string(),
            reason: e.to_string(),
        })?;
        let tail = Arc::new(Mutex::new(VecDeque::new()));
        let (tx, lines) = mpsc::channel(256);
        let secrets = Arc::new(plan.secrets.clone());
        let mut readers = Vec::new();
        if let Some(out) = child.stdout.take() {
            readers.push(tokio::spawn(read_lines(
                out,
                plan.agent,
                tx.clone(),
                tail.clone(),
                secrets.clone(),
            )));
        }
        if let Some(err) = child.stderr.take() {
            readers.push(tokio::spawn(read_lines(
                err,
                plan.agent,
                tx,
                tail.clone(),
                secrets,
            )));
        }
        Ok(Self {
            agent: plan.agent,
            _stdin: child.stdin.take(),
            child,
            lines: Some(lines),
            readers,
            tail,
            guarded: guard.is_some(),
        })
    }

    /// The output lines, once (cloudflared's URL is read from them).
    pub fn take_lines(&mut self) -> mpsc::Receiver<String> {
        self.lines.take().unwrap_or_else(|| mpsc::channel(1).1)
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// The last lines of output, newest last.
    pub fn tail(&self) -> Vec<String> {
        self.tail
            .lock()
            .map(|t| t.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Waits for the agent to end and says why, as an error to show.
    pub async fn wait(&mut self) -> AgentError {
        let status = self.child.wait().await;
        // Let the readers take the last lines (bounded: a grandchild may hold the pipes).
        let deadline = Instant::now() + Duration::from_millis(500);
        for reader in std::mem::take(&mut self.readers) {
            let left = deadline.saturating_duration_since(Instant::now());
            let _ = tokio::time::timeout(left, reader).await;
        }
        let status = match status {
            Ok(s) => match (s.code(), std::os::unix::process::ExitStatusExt::signal(&s)) {
                (Some(127), _) if self.guarded => "not runnable".to_string(),
                (Some(code), _) => format!("exit code {code}"),
                (None, Some(sig)) => format!("killed by signal {sig}"),
                _ => s.to_string(),
            },
            Err(e) => e.to_string(),
        };
        exit_error(self.agent, status, &self.tail())
    }

    /// SIGTERM, then SIGKILL after `grace`. Unguarded, the agent's whole process group.
    pub async fn stop(mut self, grace: Duration) {
        let group = (!self.guarded)
            .then(|| Group::of(self.child.id()))
            .flatten();
        if let Some(pid) = self.child.id().and_then(|p| i32::try_from(p).ok()) {
            match group {
                Some(group) => group.terminate(),
                None => {
                    if let Some(pid) = rustix::process::Pid::from_raw(pid) {
                        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
                    }
                }
            }
            // The guard gives the agent `grace`; leave it a little more before killing it.
            let wait = grace + Duration::from_millis(if self.guarded { 500 } else { 0 });
            if tokio::time::timeout(wait, self.child.wait()).await.is_ok() {
                if let Some(group) = group {
                    group.kill();
                }
                return;
            }
        }
        if let Some(group) = group {
            group.kill();
        }
        let _ = self.child.kill().await;
    }
}

fn exit_error(agent: &'static str, status: String, tail: &[String]) -> AgentError {
    if let Some(said) = auth_refusal(agent, tail) {
        return AgentError::AuthRefused {
            agent,
            hint: if agent == "ngrok" {
                "set NGROK_AUTHTOKEN to the token shown at https://dashboard.ngrok.com/get-started/your-authtoken"
            } else {
                "check CLOUDFLARED_TUNNEL_TOKEN (Cloudflare dashboard: Networks > Tunnels > your tunnel)"
            },
            said,
        };
    }
    let last = tail
        .iter()
        .rev()
        .find(|l| !l.trim().is_empty())
        .map(|l| format!(": {}", readable(l)))
        .unwrap_or_default();
    AgentError::Exited {
        agent,
        status,
        said: last,
    }
}

/// A line of the agent saying the credentials were refused, if any.
fn auth_refusal(agent: &str, tail: &[String]) -> Option<String> {
    let markers: &[&str] = if agent == "ngrok" {
        &[
            "ERR_NGROK_105",
            "ERR_NGROK_107",
            "ERR_NGROK_4018",
            "authentication failed",
            "authtoken",
        ]
    } else {
        &[
            "Unauthorized",
            "Invalid tunnel secret",
            "invalid token",
            "TUNNEL_TOKEN",
        ]
    };
    tail.iter()
        .rev()
        .find(|l| {
            let lower = l.to_ascii_lowercase();
            markers
                .iter()
                .any(|m| lower.contains(&m.to_ascii_lowercase()))
        })
        .map(|l| readable(l))
}

/// ngrok logs JSON: show its `err` or `msg`; other lines as they are.
fn readable(line: &str) -> String {
    if let Ok(value) = serde_json::from_str::<serde_json::Value>(line) {
        for key in ["err", "msg"] {
            if let Some(text) = value.get(key).and_then(|v| v.as_str())
                && !text.is_empty()
                && text != "<nil>"
            {
                return text.to_string();
            }
        }
    }
    line.trim().to_string()
}

async fn read_lines(
    mut from: impl AsyncRead + Unpin,
    agent: &'static str,
    to: mpsc::Sender<String>,
    tail: Arc<Mutex<VecDeque<String>>>,
    secrets: Arc<Vec<String>>,
) {
    let mut pending: Vec<u8> = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = match from.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        pending.extend_from_slice(&chunk[..n]);
        while let Some(end) = pending.iter().position(|b| *b == b'\n') {
            let raw: Vec<u8> = pending.drain(..=end).collect();
            emit(&raw, agent, &to, &tail, &secrets);
        }
        if pending.len() > MAX_LINE {
            let raw: Vec<u8> = std::mem::take(&mut pending);
            emit(&raw, agent, &to, &tail, &secrets);
        }
    }
    if !pending.is_empty() {
        emit(&pending, agent, &to, &tail, &secrets);
    }
}

fn emit(
    raw: &[u8],
    agent: &'static str,
    to: &mpsc::Sender<String>,
    tail: &Arc<Mutex<VecDeque<String>>>,
    secrets: &[String],
) {
    let cut = &raw[..raw.len().min(MAX_LINE)];
    let mut line = String::from_utf8_lossy(cut)
        .trim_end_matches(['\r', '\n'])
        .to_string();
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        line = line.replace(secret.as_str(), "…");
    }
    tracing::debug!(agent, "{line}");
    if let Ok(mut t) = tail.lock() {
        if t.len() == TAIL_LINES {
            t.pop_front();
        }
        t.push_back(line.clone());
    }
    // Nobody listening, or too far behind: the tail still has it.
    let _ = to.try_send(line);
}

/// `https://<name>.trycloudflare.com` in a line of cloudflared's output, if any.
pub fn quick_tunnel_url(line: &str) -> Option<String> {
    let mut rest = line;
    while let Some(start) = rest.find("https://") {
        let candidate = &rest[start..];
        let end = candidate
            .find(|c: char| c.is_whitespace() || c == '|' || c == '"' || c == '\'')
            .unwrap_or(candidate.len());
        let url = candidate[..end].trim_end_matches('/');
        if let Some(host) = url.strip_prefix("https://")
            && let Some(name) = host.strip_suffix(".trycloudflare.com")
            && !name.is_empty()
            && name != "api"
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        {
            return Some(url.to_string());
        }
        rest = &candidate[end.max(1)..];
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cloudflared_box_lines() {
        let lines = [
            "2026-11-26T10:00:00Z INF Requesting new quick Tunnel on trycloudflare.com...",
            "2026-11-26T10:00:01Z INF +--------------------------------------------------------------------------------------------+",
            "2026-11-26T10:00:01Z INF |  Your quick Tunnel has been created! Visit it at (it may take some time to be reachable):  |",
            "2026-11-26T10:00:01Z INF |  https://gentle-river-delta-four.trycloudflare.com                                         |",
        ];
        let found: Vec<String> = lines.iter().filter_map(|l| quick_tunnel_url(l)).collect();
        assert_eq!(found, ["https://gentle-river-delta-four.trycloudflare.com"]);
        assert_eq!(
            quick_tunnel_url(
                r#"ERR failed to request quick Tunnel error="Post \"https://api.trycloudflare.com/tunnel\": EOF""#
            ),
            None
        );
        assert_eq!(
            quick_tunnel_url("see https://www.cloudflare.com/website-terms/"),
            None
        );
    }

    #[test]
    fn agents_are_pointed_at_the_address_rushes_listens_on() {
        let args = |mode, addr: &str| -> Vec<String> {
            let settings = TunnelSettings {
                mode,
                ..TunnelSettings::default()
            };
            let addr = addr.parse().unwrap_or_else(|_| unreachable!());
            plan(&settings, addr)
                .map(|p| {
                    p.args
                        .iter()
                        .map(|a| a.to_string_lossy().into_owned())
                        .collect()
                })
                .unwrap_or_default()
        };
        assert_eq!(
            args(TunnelMode::Ngrok, "127.0.0.1:5000"),
            ["http", "5000", "--log", "stdout", "--log-format", "json"]
        );
        assert_eq!(
            args(TunnelMode::Ngrok, "192.168.1.5:5000")[1],
            "192.168.1.5:5000"
        );
        assert_eq!(
            args(TunnelMode::Cloudflared, "0.0.0.0:5000"),
            [
                "tunnel",
                "--no-autoupdate",
                "--url",
                "http://127.0.0.1:5000"
            ]
        );
        assert!(args(TunnelMode::None, "127.0.0.1:5000").is_empty());
    }

    #[test]
    fn refused_tokens_are_recognised() {
        let tail = vec![
            r#"{"lvl":"info","msg":"starting web service","obj":"web","addr":"127.0.0.1:4040"}"#.to_string(),
            r#"{"lvl":"eror","msg":"session closing","obj":"tunnels.session","err":"authentication failed: The authtoken you specified does not look like a proper ngrok tunnel authtoken.\n\nERR_NGROK_105"}"#.to_string(),
        ];
        match exit_error("ngrok", "exit code 1".into(), &tail) {
            AgentError::AuthRefused { said, .. } => {
                assert!(said.starts_with("authentication failed"), "{said}")
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            exit_error(
                "ngrok",
                "exit code 1".into(),
                &["bind: address in use".into()]
            ),
            AgentError::Exited { .. }
        ));
    }
}
