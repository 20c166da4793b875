//! A real rushes: in-process (`TestApp`, bound to 127.0.0.1:0) or as a child process
//! (`ChildService`, the built binary, killable with SIGKILL).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use rushes::app::App;
use rushes::config::{Config, FeedLocation};
use rushes::net::RetryPolicy;
use rushes::web::AppState;
use serde_json::Value;
use tempfile::TempDir;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::wait_for;

/// Retries with short waits, so failure tests stay quick.
pub fn quick_retry() -> RetryPolicy {
    RetryPolicy {
        attempts: 3,
        base_delay: Duration::from_millis(20),
        max_delay: Duration::from_millis(200),
    }
}

pub fn config_for(dir: &Path, feed_url: &str) -> Config {
    let feed = FeedLocation::parse(feed_url).expect("feed url");
    let mut config = Config::for_dir(dir, feed);
    super::db::apply(&mut config);
    config
}

pub struct TestApp {
    pub addr: SocketAddr,
    pub state: AppState,
    pub client: reqwest::Client,
    shutdown: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<()>>,
}

impl TestApp {
    /// Builds and runs rushes with `config` until `stop()` or drop.
    pub async fn spawn(config: Config) -> Self {
        // Restarting in the same process: the data folder's lock (an `flock` on an open file) is
        // released when the previous app drops it, but a child another test spawns at that
        // moment holds a copy of the descriptor between its fork and its exec (the descriptor is
        // close-on-exec). The holder is then this very process: wait for that copy to go.
        let own = std::process::id().to_string();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        let app = loop {
            match App::build_with_retry(config.clone(), quick_retry()).await {
                Err(rushes::app::AppError::Locked(rushes::instance::LockError::InUse {
                    pid,
                    ..
                })) if pid == own && std::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                built => break built.expect("build app"),
            }
        };
        let addr = app.local_addr();
        let state = app.state().clone();
        let (tx, rx) = oneshot::channel::<()>();
        let handle = tokio::spawn(async move {
            app.run_until(async {
                let _ = rx.await;
            })
            .await
            .expect("run app");
        });
        Self {
            addr,
            state,
            client: reqwest::Client::new(),
            shutdown: Some(tx),
            handle: Some(handle),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let r = self.client.get(self.url(path)).send().await.expect("GET");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn get_text(&self, path: &str) -> (u16, String) {
        let r = self.client.get(self.url(path)).send().await.expect("GET");
        (r.status().as_u16(), r.text().await.expect("body"))
    }

    pub async fn post(&self, path: &str) -> (u16, Value) {
        let r = self.client.post(self.url(path)).send().await.expect("POST");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> (u16, Value) {
        let r = self
            .client
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .expect("POST");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// Stops it cleanly and waits until it has.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(handle) = self.handle.take() {
            handle.await.expect("app task");
        }
    }
}

/// The `rushes` binary as a child process.
pub struct ChildService {
    pub child: Child,
    pub addr: SocketAddr,
    pub root: PathBuf,
}

pub fn bin() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rushes"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", std::env::var("HOME").unwrap_or_default());
    cmd
}

/// A free loopback port (bound then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

impl ChildService {
    /// Starts `rushes serve` with everything under `root` and `envs` added; waits until /healthz answers.
    pub async fn start(root: &Path, envs: &[(&str, &str)]) -> Self {
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
        Self::start_at(root, addr, envs).await
    }

    /// Same as [`ChildService::start`] on a chosen address.
    pub async fn start_at(root: &Path, addr: SocketAddr, envs: &[(&str, &str)]) -> Self {
        let mut cmd = bin();
        cmd.arg("serve")
            .current_dir(root)
            .env("RUSHES_BIND", addr.to_string())
            .env("RUSHES_DATA_DIR", root.join("data"))
            .env("LOCAL_DOWNLOADS_DIR", root.join("downloads"))
            .env("RUSHES_LOG_DIR", root.join("logs"))
            // Test feeds use fixed dates: no age limit unless a test sets one (as `Config::for_dir`).
            .env("DOWNLOAD_MAX_AGE", "0")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        cmd.envs(super::db::env_for(&root.join("data")));
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("spawn rushes");
        let service = Self {
            child,
            addr,
            root: root.to_path_buf(),
        };
        let client = reqwest::Client::new();
        let url = format!("http://{addr}/healthz");
        wait_for("rushes to answer /healthz", Duration::from_secs(20), || {
            let client = client.clone();
            let url = url.clone();
            async move {
                client
                    .get(&url)
                    .send()
                    .await
                    .ok()
                    .filter(|r| r.status().is_success())
                    .map(|_| ())
            }
        })
        .await;
        service
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// `GET path` as JSON; `None` while the service does not answer with JSON (for `wait_for`).
    pub async fn get_json(&self, client: &reqwest::Client, path: &str) -> Option<Value> {
        client
            .get(self.url(path))
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.root.join("logs/app.log")).unwrap_or_default()
    }

    pub async fn wait_for_log(&self, needle: &str) -> String {
        wait_for(
            &format!("log line {needle:?}"),
            Duration::from_secs(20),
            || async {
                let log = self.log();
                log.contains(needle).then_some(log)
            },
        )
        .await
    }

    /// The child's process id (to send it a signal).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill(); // SIGKILL
        let _ = self.child.wait();
    }

    /// Sends SIGTERM and returns the exit status.
    pub async fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill -TERM");
        wait_for(
            "rushes to exit after SIGTERM",
            Duration::from_secs(20),
            || {
                let status = self.child.try_wait().expect("try_wait");
                async move { status }
            },
        )
        .await
    }
}

impl Drop for ChildService {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn temp_dir() -> TempDir {
    tempfile::tempdir().expect("temp dir")
}
