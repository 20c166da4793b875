//! A real headless Chromium driven over WebDriver (Debian's chromium + chromium-driver).

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder};
use serde_json::json;

use super::service::free_port;
use super::wait_for;

pub struct Browser {
    pub client: Client,
    /// Kept for its `Drop`, which ends chromedriver.
    _driver: Driver,
    _profile: tempfile::TempDir,
}

/// chromedriver, killed when dropped (also when a test panics before the browser is up).
struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Browser {
    /// Starts chromedriver and a headless Chromium with the flags a closed network needs.
    pub async fn start(width: u32, height: u32) -> Self {
        // Two rustls crypto providers are linked into test builds: pick one for the process.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let port = free_port();
        let driver = Driver(
            Command::new("chromedriver")
                .arg(format!("--port={port}"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("chromedriver (apt-get install chromium-driver; scripts/test.sh does it)"),
        );
        let url = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        wait_for("chromedriver to answer", Duration::from_secs(20), || {
            let http = http.clone();
            let status = format!("{url}/status");
            async move {
                http.get(status)
                    .send()
                    .await
                    .ok()
                    .filter(|r| r.status().is_success())
            }
        })
        .await;
        let profile = tempfile::tempdir().expect("profile dir");
        let binary = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())
            .unwrap_or("chromium");
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": binary,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    "--no-first-run", "--disable-quic", "--disable-extensions",
                    format!("--user-data-dir={}", profile.path().display()),
                    format!("--window-size={width},{height}"),
                ]
            }),
        );
        let client = ClientBuilder::rustls()
            .expect("rustls")
            .capabilities(caps)
            .connect(&url)
            .await
            .expect("connect to chromedriver");
        Self {
            client,
            _driver: driver,
            _profile: profile,
        }
    }

    /// Saves a PNG screenshot under target/screenshots/.
    pub async fn screenshot(&self, name: &str) -> std::path::PathBuf {
        let png = self.client.screenshot().await.expect("screenshot");
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/screenshots");
        std::fs::create_dir_all(&dir).expect("screenshots dir");
        let path = dir.join(name);
        std::fs::write(&path, png).expect("write screenshot");
        path
    }

    /// Ends the WebDriver session; chromedriver goes with `self`.
    pub async fn close(self) {
        let _ = self.client.clone().close().await;
    }
}

impl Drop for Browser {
    /// A test that panics never calls `close`, and Chromium outlives chromedriver: end the
    /// Chromium processes of this browser's own profile (a unique temporary folder).
    fn drop(&mut self) {
        let profile = self._profile.path().display().to_string();
        let _ = Command::new("pkill")
            .args(["-f", "--", &format!("--user-data-dir={profile}")])
            .status();
    }
}
