//! The dashboard in a real headless Chromium, against the demo's sample server in-process.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use fantoccini::Locator;
use rushes::demo::{SampleServer, demo_config};
use secrecy::SecretString;
use serde_json::json;
use support::browser::Browser;
use support::service::{TestApp, temp_dir};
use support::wait_for;

const WAIT: Duration = Duration::from_secs(30);
const XSS_NAME: &str = "<img src=x onerror=alert(1)>.mov";

async fn demo_app(dir: &std::path::Path, token: Option<&str>) -> TestApp {
    let extra = vec![json!({
        "source_url": "https://example.com/shared/xss",
        "provider": "webhook",
        "created_at": "2026-11-25T10:00:00Z",
        "original_filename": XSS_NAME
    })];
    let sample = SampleServer::start(extra).await.expect("sample server");
    let mut config = demo_config(
        dir,
        &sample.feed_url(),
        SocketAddr::from(([127, 0, 0, 1], 0)),
    );
    config.api_token = token.map(|t| SecretString::from(t.to_string()));
    TestApp::spawn(config).await
}

async fn text_of(browser: &Browser, css: &str) -> String {
    match browser.client.find(Locator::Css(css)).await {
        Ok(el) => el.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    }
}

#[tokio::test]
async fn the_page_shows_deliveries_escapes_feed_text_and_opens_manual_links() {
    let dir = temp_dir();
    let app = demo_app(dir.path(), None).await;
    wait_for("the demo feed to be taken in", WAIT, || async {
        let (_, body) = app.get("/api/deliveries").await;
        (body["deliveries"].as_array().map_or(0, Vec::len) == 8).then_some(())
    })
    .await;

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
    assert_eq!(text_of(&browser, "#records-processed").await, "8");
    let rows = browser
        .client
        .find_all(Locator::Css("table.deliveries tbody tr[data-id]"))
        .await
        .expect("rows");
    assert_eq!(rows.len(), 8);

    // The file name from the feed is shown as text, never as markup.
    let names = browser
        .client
        .find_all(Locator::Css(".orig"))
        .await
        .expect("names");
    let mut found = false;
    for name in names {
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
