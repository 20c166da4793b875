//! Access control over HTTP: tokens, the login cookie, cross-site refusal, start-up refusal.

use crate::support::feed_server::FeedServer;
use crate::support::service::{TestApp, bin, config_for, temp_dir};
use secrecy::SecretString;

#[tokio::test]
async fn with_a_token_the_api_needs_it_and_login_sets_a_strict_cookie() {
    let feed = FeedServer::start("[]").await;
    let dir = temp_dir();
    let mut config = config_for(dir.path(), &feed.url());
    config.service.api_token = Some(SecretString::from("t0ken-for-tests".to_string()));
    let app = TestApp::spawn(config).await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");

    let r = http
        .get(app.url("/api/deliveries"))
        .send()
        .await
        .expect("GET");
    assert_eq!(r.status().as_u16(), 401);
    let body: serde_json::Value = r.json().await.expect("json");
    assert!(
        body["error"]
            .as_str()
            .unwrap_or_default()
            .contains("Bearer")
    );
    let r = http
        .get(app.url("/api/deliveries"))
        .bearer_auth("t0ken-for-tests")
        .send()
        .await
        .expect("GET");
    assert_eq!(r.status().as_u16(), 200);
    let r = http
        .get(app.url("/api/deliveries"))
        .bearer_auth("nope")
        .send()
        .await
        .expect("GET");
    assert_eq!(r.status().as_u16(), 401);
    let r = http.get(app.url("/metrics")).send().await.expect("GET");
    assert_eq!(r.status().as_u16(), 401);
    // Health stays open for load balancers; the page shows the login form.
    assert_eq!(
        http.get(app.url("/healthz"))
            .send()
            .await
            .expect("GET")
            .status()
            .as_u16(),
        200
    );
    let page = http.get(app.url("/")).send().await.expect("GET");
    assert_eq!(page.status().as_u16(), 401);
    assert!(page.text().await.expect("text").contains("name=\"token\""));

    let r = http
        .post(app.url("/login"))
        .form(&[("token", "t0ken-for-tests")])
        .send()
        .await
        .expect("POST /login");
    assert_eq!(r.status().as_u16(), 303);
    let cookie = r
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Strict"), "{cookie}");
    assert!(
        !cookie.contains("t0ken-for-tests"),
        "the token itself is in the cookie"
    );
    let session = cookie.split(';').next().unwrap_or_default().to_string();
    let r = http
        .get(app.url("/"))
        .header("cookie", &session)
        .send()
        .await
        .expect("GET");
    assert_eq!(r.status().as_u16(), 200);
    assert!(
        r.text()
            .await
            .expect("text")
            .contains("table class=\"deliveries\"")
    );

    // A cross-site POST carrying the cookie is refused; the same-origin one goes through.
    let r = http
        .post(app.url("/api/feed/refresh"))
        .header("cookie", &session)
        .header("origin", "https://evil.example")
        .send()
        .await
        .expect("POST");
    assert_eq!(r.status().as_u16(), 403);
    let r = http
        .post(app.url("/api/feed/refresh"))
        .header("cookie", &session)
        .header("origin", format!("http://{}", app.addr))
        .send()
        .await
        .expect("POST");
    assert_eq!(r.status().as_u16(), 200);
    app.stop().await;
}

#[tokio::test]
async fn without_a_token_cross_site_posts_are_still_refused() {
    let feed = FeedServer::start("[]").await;
    let dir = temp_dir();
    let app = TestApp::spawn(config_for(dir.path(), &feed.url())).await;
    let http = reqwest::Client::new();
    let r = http
        .post(app.url("/api/feed/refresh"))
        .header("sec-fetch-site", "cross-site")
        .send()
        .await
        .expect("POST");
    assert_eq!(r.status().as_u16(), 403);
    let r = http
        .post(app.url("/api/feed/refresh"))
        .send()
        .await
        .expect("POST");
    assert_eq!(r.status().as_u16(), 200);
    app.stop().await;
}

#[test]
fn a_network_bind_without_a_token_is_refused_at_start_up() {
    let dir = temp_dir();
    let out = bin()
        .arg("serve")
        .current_dir(dir.path())
        .env("WEBHOOK_JSON_URL", "https://feed.example.com/list")
        .env("RUSHES_BIND", "0.0.0.0:0")
        .output()
        .expect("run rushes");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("RUSHES_API_TOKEN"), "{stderr}");
}
