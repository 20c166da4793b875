//! The dashboard in a real headless Chromium, against the demo's sample server in-process.

use std::net::SocketAddr;
use std::time::Duration;

use crate::support::browser::Browser;
use crate::support::feed_server::FeedServer;
use crate::support::service::{TestApp, temp_dir};
use crate::support::wait_for;
use fantoccini::Locator;
use rushes::demo::{SampleServer, demo_config};
use secrecy::SecretString;
use serde_json::json;

const WAIT: Duration = Duration::from_secs(30);
const XSS_NAME: &str = "<img src=x onerror=alert(1)>.mov";

/// A manual record whose file name is markup: it must show as text.
fn xss_record() -> serde_json::Value {
    json!({
        "source_url": "https://example.com/shared/xss",
        "provider": "webhook",
        "created_at": "2026-11-25T10:00:00Z",
        "original_filename": XSS_NAME
    })
}

async fn demo_app(dir: &std::path::Path, token: Option<&str>) -> TestApp {
    let extra = vec![xss_record()];
    let sample = SampleServer::start(extra).await.expect("sample server");
    let mut config = demo_config(
        dir,
        &sample.feed_url(),
        SocketAddr::from(([127, 0, 0, 1], 0)),
    );
    config.service.api_token = token.map(|t| SecretString::from(t.to_string()));
    TestApp::spawn(config).await
}

async fn text_of(browser: &Browser, css: &str) -> String {
    match browser.client.find(Locator::Css(css)).await {
        Ok(el) => el.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    }
}

/// The row of the delivery whose file name is `name`.
fn row_of(name: &str) -> Locator<'static> {
    let xpath = format!("//tr[@data-id][.//*[contains(@class,'name') and text()='{name}']]");
    Locator::XPath(Box::leak(xpath.into_boxed_str()))
}

async fn row_state(browser: &Browser, name: &str) -> String {
    match browser.client.find(row_of(name)).await {
        Ok(row) => row
            .attr("data-state")
            .await
            .ok()
            .flatten()
            .unwrap_or_default(),
        Err(_) => String::new(),
    }
}

async fn click_in_row(browser: &Browser, name: &str, button: &str) {
    let row = browser.client.find(row_of(name)).await.expect("row");
    let xpath = format!(".//button[text()='{button}']");
    row.find(Locator::XPath(&xpath))
        .await
        .unwrap_or_else(|_| panic!("no {button} button in the row of {name}"))
        .click()
        .await
        .expect("click");
}

#[tokio::test]
async fn the_page_is_live_escapes_feed_text_and_acts_on_deliveries() {
    // The files come from the demo's sample server; the feed is a fake we fill later, so the
    // page is already open when the deliveries arrive.
    let sample = SampleServer::start(Vec::new())
        .await
        .expect("sample server");
    let base = format!("http://{}", sample.addr);
    let feed = FeedServer::start("[]").await;
    let dir = temp_dir();
    let mut config = demo_config(
        dir.path(),
        &feed.url(),
        SocketAddr::from(([127, 0, 0, 1], 0)),
    );
    config.feed.monitor_interval = Duration::from_secs(3600);
    let app = TestApp::spawn(config).await;

    let browser = Browser::start(1280, 900).await;
    browser
        .client
        .goto(&app.url("/"))
        .await
        .expect("open dashboard");
    assert_eq!(
        browser.client.title().await.expect("title"),
        "rushes · deliveries"
    );
    assert_eq!(text_of(&browser, "#feed-host").await, "127.0.0.1");
    assert!(
        text_of(&browser, ".empty")
            .await
            .contains("No deliveries yet")
    );
    wait_for("the live indicator", WAIT, || async {
        (text_of(&browser, "#live").await == "Live").then_some(())
    })
    .await;
    // Remember the highest progress every bar shows, and mark the page to prove it is never reloaded.
    browser
        .client
        .execute(
            r#"window.__notReloaded = true; window.__pct = {};
            const seen = () => document.querySelectorAll('[data-progress]').forEach(el => {
              const p = parseInt(el.dataset.pct || '0', 10), id = el.dataset.progress;
              const s = window.__pct[id] || (window.__pct[id] = {max: 0, values: []});
              if (!s.values.includes(p)) s.values.push(p);
              s.max = Math.max(s.max, p);
            });
            new MutationObserver(seen).observe(document.body, {subtree: true, childList: true, attributes: true, attributeFilter: ['data-pct']});"#,
            vec![],
        )
        .await
        .expect("install observer");

    let mut items = rushes::demo::sample_feed(&base);
    items.push(xss_record());
    feed.set_body(serde_json::Value::Array(items).to_string());
    browser
        .client
        .find(Locator::Css("#feed-panel button"))
        .await
        .expect("Refresh now")
        .click()
        .await
        .expect("click Refresh now");
    wait_for("8 rows to arrive without a reload", WAIT, || async {
        let rows = browser
            .client
            .find_all(Locator::Css("table.deliveries tbody tr[data-id]"))
            .await
            .map(|r| r.len())
            .unwrap_or(0);
        (rows == 8).then_some(())
    })
    .await;
    // Every time, including those of rows that arrived live, is shown in the viewer's zone.
    let unlocalized = browser
        .client
        .execute(
            "return document.querySelectorAll('time[datetime]:not([data-local])').length",
            vec![],
        )
        .await
        .expect("count times");
    assert_eq!(unlocalized.as_u64(), Some(0));
    wait_for("the counts to follow", WAIT, || async {
        (text_of(&browser, "#counts a:first-child b").await == "8").then_some(())
    })
    .await;
    // Rows that arrived live are in the server's order: newest first.
    // Read in one script run: rows are re-rendered while downloads progress.
    let keys: Vec<String> = serde_json::from_value(
        browser
            .client
            .execute(
                "return Array.from(document.querySelectorAll('table.deliveries tbody tr[data-id]')).map(r => r.dataset.sort)",
                vec![],
            )
            .await
            .expect("row keys"),
    )
    .expect("keys");
    assert_eq!(keys.len(), 8);
    let mut sorted = keys.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(keys, sorted, "live rows are not newest first");
    wait_for("the records count in the feed panel", WAIT, || async {
        (text_of(&browser, "#records-processed").await == "8").then_some(())
    })
    .await;

    // A download's bar moves and reaches 100 %, then the row turns done, all without a reload.
    wait_for("61 Camille.zip to be done", WAIT, || async {
        (row_state(&browser, "61 Camille.zip").await == "done").then_some(())
    })
    .await;
    let (_, camille) = app.get("/api/deliveries?state=done").await;
    let camille_id = camille["deliveries"]
        .as_array()
        .and_then(|list| list.iter().find(|d| d["file_name"] == "61 Camille.zip"))
        .and_then(|d| d["id"].as_i64())
        .expect("Camille is done");
    let seen = browser
        .client
        .execute("return window.__pct", vec![])
        .await
        .expect("read observer");
    let bar = &seen[camille_id.to_string()];
    assert_eq!(bar["max"], 100, "the bar never showed 100 %: {seen}");
    assert!(
        bar["values"].as_array().map_or(0, Vec::len) >= 3,
        "the bar did not move: {seen}"
    );
    let done_row = browser
        .client
        .find(row_of("61 Camille.zip"))
        .await
        .expect("row");
    let details = done_row.text().await.expect("text");
    assert!(
        details.contains("24.0 MiB") && details.contains("sha256"),
        "{details}"
    );

    // The file name from the feed is shown as text, never as markup.
    let originals = browser
        .client
        .find_all(Locator::Css(".orig"))
        .await
        .expect("names");
    let mut found = false;
    for name in originals {
        if name.text().await.unwrap_or_default() == format!("feed name: {XSS_NAME}") {
            found = true;
        }
    }
    assert!(found, "the XSS file name is not shown as text");
    let images = browser
        .client
        .find_all(Locator::Css("main img"))
        .await
        .expect("imgs");
    assert!(images.is_empty(), "feed text became an <img> element");
    assert!(
        browser.client.get_alert_text().await.is_err(),
        "an alert fired"
    );

    // Manual links open in a new tab, without opener or referrer.
    let open = browser
        .client
        .find(Locator::XPath(
            "//tr[.//*[contains(@class,'name') and text()='Rushes-Jour-2']]//a[text()='Open']",
        ))
        .await
        .expect("Open link of the FromSmash delivery");
    assert_eq!(
        open.attr("target").await.expect("target").as_deref(),
        Some("_blank")
    );
    assert_eq!(
        open.attr("rel").await.expect("rel").as_deref(),
        Some("noopener noreferrer")
    );
    assert_eq!(
        open.attr("href").await.expect("href").as_deref(),
        Some("https://fromsmash.com/Rushes-Jour-2")
    );
    let before = browser.client.windows().await.expect("windows").len();
    open.click().await.expect("click Open");
    wait_for("a new tab", WAIT, || async {
        let n = browser.client.windows().await.map(|w| w.len()).unwrap_or(0);
        (n == before + 1).then_some(())
    })
    .await;

    // Mark handled changes the row.
    click_in_row(&browser, "65 Making-of.zip", "Mark handled").await;
    wait_for("the SwissTransfer row to be handled", WAIT, || async {
        (row_state(&browser, "65 Making-of.zip").await == "handled").then_some(())
    })
    .await;
    wait_for("the counts to show the handled delivery", WAIT, || async {
        let text = text_of(&browser, "#counts").await;
        text.contains("Handled").then_some(())
    })
    .await;
    let (_, handled) = app.get("/api/deliveries?state=handled").await;
    assert_eq!(handled["deliveries"].as_array().map_or(0, Vec::len), 1);

    // Retry on the failed one re-queues it: it is tried again (and fails again: the link is gone).
    wait_for("the expired link to fail", WAIT, || async {
        (row_state(&browser, "66 Expired link.mov").await == "failed").then_some(())
    })
    .await;
    let failed_row = browser
        .client
        .find(row_of("66 Expired link.mov"))
        .await
        .expect("row");
    assert!(failed_row.text().await.expect("text").contains("404"));
    let expired_id: i64 = failed_row
        .attr("data-id")
        .await
        .ok()
        .flatten()
        .and_then(|v| v.parse().ok())
        .expect("id");
    let attempts = |body: serde_json::Value| body["attempts"].as_array().map_or(0, Vec::len);
    let (_, before) = app
        .get(&format!("/api/deliveries/{expired_id}/attempts"))
        .await;
    let tries_before = attempts(before);
    assert!(tries_before > 0);
    click_in_row(&browser, "66 Expired link.mov", "Retry").await;
    wait_for("the retry to be attempted", WAIT, || async {
        let (_, now) = app
            .get(&format!("/api/deliveries/{expired_id}/attempts"))
            .await;
        (attempts(now) > tries_before).then_some(())
    })
    .await;
    wait_for("the retried row to fail again", WAIT, || async {
        (row_state(&browser, "66 Expired link.mov").await == "failed").then_some(())
    })
    .await;

    let not_reloaded = browser
        .client
        .execute("return window.__notReloaded === true", vec![])
        .await
        .expect("marker");
    assert_eq!(not_reloaded.as_bool(), Some(true), "the page was reloaded");

    let shot = browser.screenshot("dashboard.png").await;
    assert!(
        std::fs::metadata(&shot)
            .map(|m| m.len() > 10_000)
            .unwrap_or(false)
    );
    browser.close().await;

    // A narrow window still shows every delivery (as cards).
    let narrow = Browser::start(420, 1000).await;
    narrow
        .client
        .goto(&app.url("/"))
        .await
        .expect("open dashboard");
    let rows = narrow
        .client
        .find_all(Locator::Css("table.deliveries tbody tr[data-id]"))
        .await
        .expect("rows");
    assert_eq!(rows.len(), 8);
    narrow.screenshot("dashboard-narrow.png").await;
    narrow.close().await;
    app.stop().await;
}

async fn sign_in(browser: &Browser, token: &str) {
    let field = browser
        .client
        .find(Locator::Css("#login input[name=token]"))
        .await
        .expect("token field");
    field.send_keys(token).await.expect("type");
    browser
        .client
        .find(Locator::Css("#login button"))
        .await
        .expect("sign-in button")
        .click()
        .await
        .expect("submit");
}

#[tokio::test]
async fn with_a_token_the_page_asks_to_log_in() {
    let dir = temp_dir();
    let app = demo_app(dir.path(), Some("studio-token-123")).await;
    let browser = Browser::start(1280, 900).await;
    browser
        .client
        .goto(&app.url("/"))
        .await
        .expect("open dashboard");
    assert_eq!(
        browser.client.title().await.expect("title"),
        "rushes · sign in"
    );
    assert!(
        browser
            .client
            .find(Locator::Css("table.deliveries"))
            .await
            .is_err()
    );

    sign_in(&browser, "wrong").await;
    wait_for("the wrong-token message", WAIT, || async {
        let text = text_of(&browser, ".feed-error").await;
        text.contains("not right").then_some(())
    })
    .await;

    sign_in(&browser, "studio-token-123").await;
    wait_for("the dashboard after sign-in", WAIT, || async {
        let title = browser.client.title().await.unwrap_or_default();
        (title == "rushes · deliveries").then_some(())
    })
    .await;
    assert!(
        browser
            .client
            .find(Locator::Css("table.deliveries"))
            .await
            .is_ok()
    );
    // The session cookie is not readable from scripts.
    let cookie_js = browser
        .client
        .execute("return document.cookie", vec![])
        .await
        .expect("execute");
    assert_eq!(cookie_js.as_str(), Some(""));
    browser.close().await;
    app.stop().await;
}

#[tokio::test]
async fn the_frameio_panel_lists_tracked_uploads() {
    let dir = temp_dir();
    let app = demo_app(dir.path(), None).await;
    let (_, page) = app.get_text("/").await;
    assert!(
        page.contains("id=\"frameio-panel\" hidden"),
        "panel shown with nothing to show"
    );
    let r = app
        .client
        .post(app.url("/api/uploads"))
        .json(&json!({"file_id": "f-123", "name": "61 Camille <v2>.mov", "upload_id": "up-1"}))
        .send()
        .await
        .expect("POST /api/uploads");
    assert_eq!(r.status().as_u16(), 201);
    let (code, page) = app.get_text("/").await;
    assert_eq!(code, 200);
    assert!(page.contains("Frame.io review"), "{page}");
    assert!(
        page.contains("61 Camille &lt;v2&gt;.mov"),
        "name not escaped"
    );
    assert!(page.contains("pill review uploading"), "{page}");
    let (_, fragment) = app.get_text("/ui/frameio").await;
    assert!(fragment.contains("id=\"upload-up-1\""), "{fragment}");
    app.stop().await;
}

#[tokio::test]
async fn a_transfer_password_is_typed_into_the_page_and_leaves_it() {
    use crate::support::fake_swisstransfer::{FakeSwissTransfer, FakeTransfer, TransferState};
    const SECRET: &str = "page-Pw-7781";
    let api = FakeSwissTransfer::start().await;
    let uuid = "77777777-aaaa-bbbb-cccc-000000000001";
    api.add(
        uuid,
        FakeTransfer {
            state: TransferState::Ready,
            password: Some(SECRET.into()),
            credit: 250,
            message: "Jour 9".into(),
            files: vec![(
                "f-1".into(),
                "A009.mov".into(),
                crate::support::file_server::content(100_000, 91),
            )],
            ..Default::default()
        },
    );
    let feed = FeedServer::start(
        &json!([{
            "source_url": format!("https://www.swisstransfer.com/d/{uuid}"),
            "provider": "swisstransfer",
            "created_at": "2026-01-08T20:19:38+00:00",
            "original_filename": "Jour 9",
        }])
        .to_string(),
    )
    .await;
    let dir = temp_dir();
    let mut config = crate::support::service::config_for(dir.path(), &feed.url());
    config.feed.monitor_interval = Duration::from_secs(3600);
    config.download.resolvers.swisstransfer = true;
    config.download.resolvers.swisstransfer_api =
        url::Url::parse(&api.api_base()).expect("api base");
    let app = TestApp::spawn(config).await;
    let id = wait_for("the delivery waits for a password", WAIT, || async {
        let (_, body) = app.get("/api/deliveries?limit=10").await;
        let d = body["deliveries"][0].clone();
        (d["wait_reason"] == "password_needed").then(|| d["id"].as_i64().unwrap_or(0))
    })
    .await;

    let browser = Browser::start(1280, 900).await;
    browser
        .client
        .goto(&app.url("/"))
        .await
        .expect("open dashboard");
    wait_for("the live indicator", WAIT, || async {
        (text_of(&browser, "#live").await == "Live").then_some(())
    })
    .await;
    let field_css = format!("tr[data-id='{id}'] form.password input[name=password]");
    let field = browser
        .client
        .find(Locator::Css(&field_css))
        .await
        .expect("a password field in the delivery's row");
    assert_eq!(
        field.attr("type").await.ok().flatten().as_deref(),
        Some("password")
    );
    field.send_keys(SECRET).await.expect("type the password");
    browser
        .client
        .find(Locator::Css(&format!(
            "tr[data-id='{id}'] form.password button"
        )))
        .await
        .expect("the button")
        .click()
        .await
        .expect("submit");
    wait_for("the row done", WAIT, || async {
        let state = match browser
            .client
            .find(Locator::Css(&format!("tr[data-id='{id}']")))
            .await
        {
            Ok(row) => row
                .attr("data-state")
                .await
                .ok()
                .flatten()
                .unwrap_or_default(),
            Err(_) => String::new(),
        };
        (state == "done").then_some(())
    })
    .await;
    // No trace of it in the page: not in the markup, not in any field's value.
    let source = browser.client.source().await.expect("page source");
    assert!(
        !source.contains(SECRET),
        "the password is still in the page"
    );
    let values = browser
        .client
        .execute(
            "return Array.from(document.querySelectorAll('input')).map(i => i.value).join('|')",
            vec![],
        )
        .await
        .expect("execute");
    assert!(!values.as_str().unwrap_or("").contains(SECRET));
    let saved = std::fs::read(dir.path().join("downloads/Jour 9/A009.mov")).unwrap_or_default();
    assert_eq!(saved.len(), 100_000);
    browser.close().await;
    app.stop().await;
}
