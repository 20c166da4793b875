//! ngrok's local agent API (`GET /api/tunnels`): which public URL it names for rushes' tunnel,
//! trusted only for a tunnel forwarding to rushes' port with an https URL on ngrok's domains
//! (or `RUSHES_TUNNEL_DOMAINS`), and only when nothing answered there before rushes started its
//! agent.

use std::time::Duration;

use serde::Deserialize;

#[derive(Debug, Deserialize)]
struct TunnelList {
    #[serde(default)]
    tunnels: Vec<NgrokTunnel>,
}

#[derive(Debug, Deserialize)]
struct NgrokTunnel {
    #[serde(default)]
    public_url: String,
    #[serde(default)]
    proto: String,
    #[serde(default)]
    config: Option<NgrokTunnelConfig>,
}

#[derive(Debug, Deserialize)]
struct NgrokTunnelConfig {
    #[serde(default)]
    addr: String,
}

/// The public https URL in ngrok's `GET /api/tunnels` answer for the tunnel to `port`: only a
/// tunnel that names rushes' port as its upstream, and only an https URL whose host is one of
/// `domains` or below one (whatever answers on the API's port must not choose where Frame.io
/// sends its events).
pub fn ngrok_https_url(body: &[u8], port: u16, domains: &[String]) -> Option<String> {
    let list: TunnelList = serde_json::from_slice(body).ok()?;
    let suffix = format!(":{port}");
    let mut refused = None;
    let found = list
        .tunnels
        .into_iter()
        .filter(|t| {
            t.config
                .as_ref()
                .is_some_and(|c| c.addr.trim_end_matches('/').ends_with(&suffix))
        })
        .filter(|t| t.proto == "https" || t.public_url.starts_with("https://"))
        .map(|t| t.public_url.trim_end_matches('/').to_string())
        .find(|u| {
            let allowed = allowed_https_url(u, domains);
            if !allowed {
                refused = Some(u.clone());
            }
            allowed
        });
    if found.is_none()
        && let Some(url) = refused
    {
        tracing::warn!(
            url = %url.split('?').next().unwrap_or_default(),
            "tunnel: ngrok's API named a public URL outside ngrok's domains and \
             RUSHES_TUNNEL_DOMAINS; not used"
        );
    }
    found
}

/// An `https://` URL with no credentials, no port but 443, and a host equal to or below one of
/// `domains`.
fn allowed_https_url(raw: &str, domains: &[String]) -> bool {
    let Ok(url) = url::Url::parse(raw) else {
        return false;
    };
    let Some(host) = url.host_str().map(str::to_ascii_lowercase) else {
        return false;
    };
    url.scheme() == "https"
        && url.username().is_empty()
        && url.password().is_none()
        && url.port().is_none()
        && domains.iter().any(|d| {
            host == *d
                || host
                    .strip_suffix(d.as_str())
                    .is_some_and(|h| h.ends_with('.'))
        })
}

/// Whether something already listens on ngrok's API address (before rushes starts its agent:
/// then it is not rushes' agent).
pub async fn api_taken(api_addr: &str) -> bool {
    matches!(
        tokio::time::timeout(
            Duration::from_millis(500),
            tokio::net::TcpStream::connect(api_addr)
        )
        .await,
        Ok(Ok(_))
    )
}

/// Asks ngrok's local API once.
pub async fn ask_ngrok(
    client: &reqwest::Client,
    api_addr: &str,
    port: u16,
    domains: &[String],
) -> Option<String> {
    let response = client
        .get(format!("http://{api_addr}/api/tunnels"))
        .send()
        .await
        .ok()?;
    if !response.status().is_success() {
        return None;
    }
    let body = response.bytes().await.ok()?;
    if body.len() > 1024 * 1024 {
        return None;
    }
    ngrok_https_url(&body, port, domains)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tunnel::TunnelSettings;

    #[test]
    fn ngrok_api_answer() {
        let body = br#"{"tunnels":[
            {"name":"command_line (http)","uri":"/api/tunnels/command_line%20%28http%29","public_url":"http://ab12.ngrok-free.app","proto":"http","config":{"addr":"http://localhost:5000","inspect":true}},
            {"name":"command_line","uri":"/api/tunnels/command_line","public_url":"https://ab12.ngrok-free.app","proto":"https","config":{"addr":"http://localhost:5000","inspect":true},"metrics":{}}
        ],"uri":"/api/tunnels"}"#;
        let ngrok = TunnelSettings::default().tunnel_domains;
        assert_eq!(
            ngrok_https_url(body, 5000, &ngrok).as_deref(),
            Some("https://ab12.ngrok-free.app")
        );
        // Another agent's tunnel (another port) is not ours.
        assert_eq!(ngrok_https_url(body, 5001, &ngrok), None);
        assert_eq!(
            ngrok_https_url(br#"{"tunnels":[],"uri":"/api/tunnels"}"#, 5000, &ngrok),
            None
        );
        assert_eq!(ngrok_https_url(b"not json", 5000, &ngrok), None);
    }

    #[test]
    fn only_ngrok_domains_or_the_configured_ones_are_taken_from_the_api() {
        let answer = |url: &str, addr: &str| {
            format!(
                r#"{{"tunnels":[{{"public_url":"{url}","proto":"https","config":{{"addr":"{addr}"}}}}]}}"#
            )
        };
        let ngrok = TunnelSettings::default().tunnel_domains;
        let ours = "http://localhost:5000";
        for bad in [
            "https://evil.example/x",
            "https://ngrok-free.app.evil.example",
            "https://evilngrok-free.app",
            "https://user:pw@ab.ngrok-free.app",
            "https://ab.ngrok-free.app:8443",
            "http://ab.ngrok-free.app",
        ] {
            assert_eq!(
                ngrok_https_url(answer(bad, ours).as_bytes(), 5000, &ngrok),
                None,
                "{bad}"
            );
        }
        assert_eq!(
            ngrok_https_url(
                answer("https://AB.ngrok.app", ours).as_bytes(),
                5000,
                &ngrok
            )
            .as_deref(),
            Some("https://AB.ngrok.app")
        );
        // A tunnel that does not say where it forwards is not taken as ours.
        let no_config = r#"{"tunnels":[{"public_url":"https://ab.ngrok.app","proto":"https"}]}"#;
        assert_eq!(ngrok_https_url(no_config.as_bytes(), 5000, &ngrok), None);
        // A custom domain only when listed.
        let custom = answer("https://hooks.studio.example", ours);
        assert_eq!(ngrok_https_url(custom.as_bytes(), 5000, &ngrok), None);
        let listed = vec!["studio.example".to_string()];
        assert_eq!(
            ngrok_https_url(custom.as_bytes(), 5000, &listed).as_deref(),
            Some("https://hooks.studio.example")
        );
    }
}
