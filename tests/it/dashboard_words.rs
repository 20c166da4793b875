//! The page as a newcomer reads it (issue 26), in a real headless Chromium against the real
//! binary: no word cut in the middle at any width, labelled lines on the narrow layout, the
//! provider a person knows (FromSmash, not the legacy "webhook"), the feed's invalid items shown
//! with their reasons and counts that agree with the table, and times that name their zone.

use std::time::Duration;

use fantoccini::Locator;
use serde_json::{Value, json};

use crate::support::browser::Browser;
use crate::support::service::{ChildService, temp_dir};
use crate::support::wait_for;

const WAIT: Duration = Duration::from_secs(30);

fn ago(minutes: i64) -> String {
    (chrono::Utc::now() - chrono::Duration::minutes(minutes)).to_rfc3339()
}

/// Seven items: five deliveries, one of them listed a second time, one invalid item.
fn feed() -> Value {
    json!([
        {"source_url": "https://www.dropbox.com/scl/fo/abc/def?rlkey=k1&dl=0", "provider": "dropbox",
         "r2_url": "http://127.0.0.1:9/dropbox/bucket/object/Camille interview.zip",
         "created_at": ago(30), "original_filename": "61 Camille interview.zip"},
        {"url": "https://www.dropbox.com/scl/fo/abc/def?rlkey=k1&DL=0", "timestamp": ago(29)},
        {"url": "https://fromsmash.com/Tournage-jour-2", "timestamp": ago(20), "source": "webhook"},
        {"source_url": "https://www.swisstransfer.com/d/6f1c2b9e-5a4d-4c1e-9f7a-1b2c3d4e5f60",
         "provider": "swisstransfer", "created_at": ago(15), "original_filename": "Plans drone"},
        {"url": "https://example.com/shared/teaser", "timestamp": "yesterday"},
        {"source_url": "https://files.example.org/deliveries/2026/promo-final-master.mov",
         "provider": "studio-ftp", "created_at": ago(10), "original_filename": "Promo final master.mov"},
        {"url": "https://www.dropbox.com/s/xyz/Archive%20interview.mov?dl=1", "timestamp": ago(5)}
    ])
}

/// Words of `css` elements' text split over more than one line box.
const SPLIT_WORDS: &str = r#"
const out = [];
for (const root of document.querySelectorAll(arguments[0])) {
  const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
  let node;
  while ((node = walker.nextNode())) {
    const re = /\S+/g;
    let m;
    while ((m = re.exec(node.textContent))) {
      const range = document.createRange();
      range.setStart(node, m.index);
      range.setEnd(node, m.index + m[0].length);
      const rects = Array.from(range.getClientRects()).filter((r) => r.width > 0);
      const lines = new Set(rects.map((r) => Math.round(r.top)));
      if (lines.size > 1) out.push(m[0]);
    }
  }
}
return out;
"#;

const BEFORE: &str = r#"
const el = document.querySelector(arguments[0]);
return el ? getComputedStyle(el, "::before").content : "(no element)";
"#;

async fn js(browser: &Browser, script: &str, args: Vec<Value>) -> Value {
    browser
        .client
        .execute(script, args)
        .await
        .unwrap_or_else(|e| panic!("script failed: {e}"))
}

async fn text_of(browser: &Browser, css: &str) -> String {
    match browser.client.find(Locator::Css(css)).await {
        Ok(el) => el.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    }
}

#[tokio::test]
async fn the_page_reads_well_at_every_width() {
    let root = temp_dir();
    let path = root.path().join("feed.json");
    std::fs::write(&path, feed().to_string()).expect("feed");
    let feed_url = path.to_string_lossy().into_owned();
    let service = ChildService::start(
        root.path(),
        &[
            ("WEBHOOK_JSON_URL", feed_url.as_str()),
            // Nothing moves while the page is measured; links stay for a person.
            ("DOWNLOAD_CONCURRENCY", "0"),
            ("SWISSTRANSFER_AUTO", "0"),
        ],
    )
    .await;
    let client = reqwest::Client::new();
    // (id, kind) of each delivery.
    let kinds: Vec<(i64, String)> = wait_for("five deliveries", WAIT, || {
        let client = client.clone();
        let url = service.url("/api/deliveries");
        async move {
            let answer: Value = client.get(&url).send().await.ok()?.json().await.ok()?;
            let rows = answer["deliveries"].as_array()?;
            (rows.len() == 5).then(|| {
                rows.iter()
                    .filter_map(|d| Some((d["id"].as_i64()?, d["kind"].as_str()?.to_string())))
                    .collect()
            })
        }
    })
    .await;

    for (width, narrow) in [(1280, false), (800, false), (360, true)] {
        let browser = Browser::start(width, 1400).await;
        browser
            .client
            .goto(&service.url("/"))
            .await
            .expect("open the page");
        wait_for("the live page", WAIT, || async {
            (text_of(&browser, "#live").await == "Live").then_some(())
        })
        .await;

        // No word is cut: prose, names, pills, buttons, hosts.
        let split = js(
            &browser,
            SPLIT_WORDS,
            vec![json!("main .panel, main table td, main button")],
        )
        .await;
        assert_eq!(split, json!([]), "{width} px: words split over two lines");
        let style = js(
            &browser,
            "return getComputedStyle(document.querySelector('td .sub')).wordBreak",
            vec![],
        )
        .await;
        assert_eq!(style, "normal", "{width} px");

        // The narrow layout labels its lines; the wide one has column headers.
        for (css, label) in [("td.provider", "\"Provider\""), ("td.when", "\"Received\"")] {
            let content = js(&browser, BEFORE, vec![json!(css)]).await;
            if narrow {
                assert_eq!(content, label, "{width} px: {css}");
            } else {
                assert_eq!(content, "none", "{width} px: {css}");
            }
        }

        // Providers as a person knows them.
        let providers = js(
            &browser,
            "return Array.from(document.querySelectorAll('tr[data-id]')).map((r) => \
             [Number(r.dataset.id), r.querySelector('td.provider').textContent])",
            vec![],
        )
        .await;
        let provider_of = |kind: &str| {
            let id = kinds.iter().find(|(_, k)| k == kind).map(|(id, _)| *id);
            providers
                .as_array()
                .and_then(|rows| rows.iter().find(|r| r[0].as_i64() == id))
                .and_then(|r| r[1].as_str())
                .map(str::to_string)
                .unwrap_or_default()
        };
        assert_eq!(provider_of("fromsmash"), "FromSmash", "{providers}");
        assert_eq!(provider_of("swisstransfer"), "SwissTransfer", "{providers}");
        assert_eq!(provider_of("external"), "studio-ftp", "{providers}");
        assert_eq!(provider_of("dropbox"), "Dropbox", "{providers}");
        assert!(!providers.to_string().contains("webhook"), "{providers}");

        // The feed panel agrees with the table, and shows the invalid item with its reason.
        let rows = browser
            .client
            .find_all(Locator::Css("table.deliveries tbody tr[data-id]"))
            .await
            .expect("rows");
        assert_eq!(rows.len(), 5);
        assert_eq!(text_of(&browser, "#feed-deliveries").await, "5");
        assert_eq!(text_of(&browser, "#records-processed").await, "6");
        assert_eq!(text_of(&browser, "#records-invalid").await, "1");
        let invalid = text_of(&browser, "#feed-invalid").await;
        assert!(
            invalid.contains("1 invalid item") && invalid.contains("item #4"),
            "{invalid}"
        );
        assert!(invalid.to_lowercase().contains("timestamp"), "{invalid}");

        // Every time on the page names its zone.
        let times = js(
            &browser,
            "return Array.from(document.querySelectorAll('main time')).map((t) => t.textContent)",
            vec![],
        )
        .await;
        let times: Vec<String> = times
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|t| t.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        assert!(times.len() >= 5, "{times:?}");
        for t in &times {
            let zoned = t.contains("UTC")
                || t.contains("GMT")
                || t.rsplit(' ').next().is_some_and(|z| {
                    z.starts_with('+')
                        || z.starts_with('-')
                        || z.chars().all(|c| c.is_ascii_uppercase())
                });
            assert!(zoned, "{width} px: a time without its zone: {t:?}");
        }
        if width == 1280 {
            browser.screenshot("dashboard-words.png").await;
        }
        browser.close().await;
    }
}
