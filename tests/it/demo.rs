//! `rushes demo` as a person runs it: the real binary as a child process on a free port, nothing
//! else started by the test. Within its first minute the demo shows both halves of the job (the
//! feed's downloads and Frame.io review), in the API and in a real Chromium, and Ctrl-C removes
//! its temporary folder.

use std::io::BufRead as _;
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use fantoccini::Locator;
use serde_json::Value;

use crate::support::browser::Browser;
use crate::support::service::{bin, free_port};
use crate::support::wait_for;

/// Longest wait for a step of the timeline (it plays within a minute; CI machines are slow).
const WAIT: Duration = Duration::from_secs(150);
/// The demo's file hosts serve at most 2 MiB/s a file: a download is never faster than this.
const MAX_DEMO_SPEED: f64 = 3.0 * 1024.0 * 1024.0;

/// The running demo; Ctrl-C'd (then killed) when dropped, so a failing test leaves nothing.
struct DemoChild {
    child: Child,
    lines: mpsc::Receiver<String>,
    banner: Vec<String>,
}

impl Drop for DemoChild {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl DemoChild {
    fn start(bind: &str) -> Self {
        let mut child = bin()
            .args(["demo", "--bind", bind])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("rushes demo");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut demo = Self {
            child,
            lines,
            banner: Vec::new(),
        };
        // The banner ends with the Ctrl-C line.
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(line) = demo.lines.recv_timeout(Duration::from_millis(200)) {
                let last = line.contains("Ctrl-C");
                demo.banner.push(line);
                if last {
                    break;
                }
            }
        }
        demo
    }

    /// The value printed after `label` on its banner line.
    fn banner_value(&self, label: &str) -> String {
        self.banner
            .iter()
            .find_map(|l| l.trim_start().strip_prefix(label))
            .map(|rest| rest.split_whitespace().next().unwrap_or("").to_string())
            .unwrap_or_else(|| panic!("no {label:?} line in {:#?}", self.banner))
    }

    /// Ctrl-C, as a person stops it; the exit status.
    fn interrupt(&mut self) -> std::process::ExitStatus {
        let _ = std::process::Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status;
            }
            assert!(Instant::now() < deadline, "the demo did not stop on Ctrl-C");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

async fn get(http: &reqwest::Client, url: String) -> Option<Value> {
    http.get(url).send().await.ok()?.json().await.ok()
}

fn uploads(body: &Value) -> Vec<Value> {
    body["uploads"].as_array().cloned().unwrap_or_default()
}

/// Bytes per second of a download in progress, from what the API reports.
fn speed_of(d: &Value) -> Option<f64> {
    let started = chrono::DateTime::parse_from_rfc3339(d["started_at"].as_str()?).ok()?;
    let elapsed = (chrono::Utc::now() - started.with_timezone(&chrono::Utc)).as_seconds_f64();
    let done = d["bytes_done"].as_f64()?;
    (elapsed >= 2.0 && done > 0.0).then(|| done / elapsed)
}

async fn count(browser: &Browser, css: &str) -> usize {
    browser
        .client
        .find_all(Locator::Css(css))
        .await
        .map(|l| l.len())
        .unwrap_or(0)
}

#[tokio::test]
async fn the_demo_shows_downloads_and_frameio_review_within_a_minute_and_cleans_up() {
    let mut demo = DemoChild::start(&format!("127.0.0.1:{}", free_port()));
    let banner = demo.banner.join("\n");
    // It says which parts are simulated.
    for part in ["the client feed", "the file hosts", "Frame.io"] {
        assert!(banner.contains(part), "{banner}");
    }
    assert!(banner.contains("Simulated"), "{banner}");
    let base = demo
        .banner_value("dashboard")
        .trim_end_matches('/')
        .to_string();
    let downloads = PathBuf::from(demo.banner_value("downloads"));
    let root = downloads.parent().expect("the demo's folder").to_path_buf();
    assert!(root.is_dir(), "{}", root.display());
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");

    // The page, opened at once, is never reloaded: everything below arrives live.
    let browser = Browser::start(1280, 1400).await;
    browser.client.goto(&base).await.expect("open dashboard");
    browser
        .client
        .execute("window.__notReloaded = true;", vec![])
        .await
        .expect("mark the page");

    let initial = wait_for("the feed's deliveries", WAIT, || async {
        let body = get(&http, format!("{base}/api/deliveries?limit=200")).await?;
        let n = body["deliveries"].as_array().map_or(0, Vec::len);
        (n > 0).then_some(n)
    })
    .await;

    // Downloads: one in progress, at a speed a person can watch.
    let speed = wait_for("a download in progress", WAIT, || async {
        let body = get(&http, format!("{base}/api/deliveries?state=downloading")).await?;
        body["deliveries"].as_array()?.iter().find_map(speed_of)
    })
    .await;
    assert!(speed < MAX_DEMO_SPEED, "{speed} B/s is not throttled");

    // Review: an upload goes uploading -> processing -> ready through the real upload path.
    let history = wait_for("an upload to reach ready", WAIT, || async {
        let body = get(&http, format!("{base}/api/uploads")).await?;
        for u in uploads(&body) {
            let id = u["id"].as_str()?;
            let u = get(&http, format!("{base}/api/uploads/{id}")).await?;
            let states: Vec<String> = u["history"]
                .as_array()?
                .iter()
                .filter_map(|t| t["to_state"].as_str().map(str::to_string))
                .collect();
            if states.iter().any(|s| s == "ready") {
                return Some(states);
            }
        }
        None
    })
    .await;
    let at = |s: &str| history.iter().position(|h| h == s);
    assert!(
        at("uploading") < at("processing") && at("processing") < at("ready"),
        "{history:?}"
    );

    // A verdict with its reason, a change request and an approval, and a needs-look.
    let all = wait_for(
        "an approval, a change request and a needs-look",
        WAIT,
        || async {
            let all = uploads(&get(&http, format!("{base}/api/uploads")).await?);
            let has = |state: &str| all.iter().any(|u| u["state"] == state);
            let look = all.iter().any(|u| u["needs_look"].is_object());
            (has("approved") && has("changes_requested") && look).then_some(all)
        },
    )
    .await;
    let approved = all
        .iter()
        .find(|u| u["state"] == "approved")
        .expect("approved");
    let reason = approved["state_reason"].as_str().unwrap_or("");
    assert!(reason.contains("by Claire"), "{approved}");
    assert!(reason.contains("approval"), "{approved}");
    let english = all
        .iter()
        .find(|u| {
            u["state"] == "changes_requested"
                && u["state_reason"]
                    .as_str()
                    .is_some_and(|r| r.contains("swap"))
        })
        .expect("the English change request");
    assert!(
        english["state_reason"]
            .as_str()
            .unwrap_or("")
            .contains("by Mark"),
        "{english}"
    );
    let look = all
        .iter()
        .find(|u| u["needs_look"].is_object())
        .expect("needs look");
    assert!(
        look["needs_look"]["reason"]
            .as_str()
            .unwrap_or("")
            .contains("not sure"),
        "{look}"
    );
    assert_ne!(look["state"], "approved", "{look}");

    // The inspector filled with signed calls, and refused the forged one.
    let events = get(&http, format!("{base}/api/frameio/events?per_page=200"))
        .await
        .expect("events");
    let calls = events["events"].as_array().cloned().unwrap_or_default();
    let accepted = calls.iter().filter(|c| c["verdict"] == "accepted").count();
    assert!(accepted >= 8, "{events}");
    assert!(events["rejected_total"].as_i64() >= Some(1), "{events}");
    let status = get(&http, format!("{base}/api/frameio/status"))
        .await
        .expect("status");
    assert_eq!(status["webhook"]["state"], "in_sync", "{status}");

    // The same on the page, live.
    wait_for("the review half on the page", WAIT, || async {
        let approved = count(
            &browser,
            "#frameio-panel tr[data-upload] .pill.review.approved",
        )
        .await;
        let look = count(&browser, "#frameio-panel tr[data-upload] .pill.needs-look").await;
        let calls = count(&browser, "#inspector tr[data-call]").await;
        (approved >= 1 && look >= 1 && calls >= 5).then_some(())
    })
    .await;
    let still = browser
        .client
        .execute("return window.__notReloaded === true", vec![])
        .await
        .expect("execute");
    assert_eq!(still.as_bool(), Some(true), "the page was reloaded");
    assert!(count(&browser, "table.deliveries tr[data-id]").await >= 10);
    browser.close().await;

    // The feed gained deliveries (one every 20 s) and a download is still on its way.
    let deliveries = get(&http, format!("{base}/api/deliveries?limit=200"))
        .await
        .expect("deliveries");
    let listed = deliveries["deliveries"].as_array().map_or(0, Vec::len);
    assert!(
        listed > initial,
        "{listed} deliveries: the feed gained none"
    );
    assert!(
        deliveries["deliveries"]
            .as_array()
            .is_some_and(|l| l.iter().any(|d| d["state"] == "downloading")),
        "nothing downloading any more"
    );

    let status = demo.interrupt();
    assert!(status.success(), "{status:?}");
    assert!(!root.exists(), "{} was left behind", root.display());
}
