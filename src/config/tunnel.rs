//! Tunnel settings: `RUSHES_TUNNEL` (or `--tunnel`), `RUSHES_PUBLIC_URL`, `NGROK_*`,
//! `CLOUDFLARED_*`, `--tunnel-cleanup`. Plain values only; the supervisor lives in the tunnel module.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use secrecy::SecretString;
use url::Url;

use super::{ConfigError, Env};

/// Which agent makes rushes reachable from outside.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TunnelMode {
    None,
    Ngrok,
    Cloudflared,
}

impl TunnelMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Ngrok => "ngrok",
            Self::Cloudflared => "cloudflared",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "none" | "" | "off" => Some(Self::None),
            "ngrok" => Some(Self::Ngrok),
            "cloudflared" | "cloudflare" => Some(Self::Cloudflared),
            _ => None,
        }
    }
}

impl fmt::Display for TunnelMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

pub const DEFAULT_NGROK_API_ADDR: &str = "127.0.0.1:4040";

#[derive(Clone)]
pub struct TunnelSettings {
    pub mode: TunnelMode,
    /// `RUSHES_PUBLIC_URL`: the fixed public base URL (production, or a named cloudflared tunnel).
    pub public_url: Option<Url>,
    pub ngrok_bin: PathBuf,
    /// Given to the ngrok child only, in its environment.
    pub ngrok_authtoken: Option<SecretString>,
    /// `host:port` of ngrok's local agent API.
    pub ngrok_api_addr: String,
    pub cloudflared_bin: PathBuf,
    /// A named tunnel's token, given to the cloudflared child only (as `TUNNEL_TOKEN`).
    pub cloudflared_token: Option<SecretString>,
    /// `--tunnel-cleanup`: deactivate the webhook on exit.
    pub cleanup: bool,
    /// The rushes executable, run as `rushes tunnel-guard` around the agent so that the agent
    /// dies with rushes even when rushes is SIGKILLed. `None`: the agent is spawned directly.
    pub guard: Option<PathBuf>,
    /// First restart delay; doubles up to `backoff_cap` (crashes) or `failure_cap` (missing
    /// binary, refused token).
    pub backoff_base: Duration,
    pub backoff_cap: Duration,
    pub failure_cap: Duration,
    /// How long the agent has to show its public URL.
    pub discovery_timeout: Duration,
    /// SIGTERM, then SIGKILL after this.
    pub grace: Duration,
    /// How often ngrok's API is asked whether the URL changed.
    pub recheck_every: Duration,
    /// Host names (and their subdomains) a public URL read from ngrok's API may have: ngrok's
    /// own domains, or `RUSHES_TUNNEL_DOMAINS` for custom ones. Anything else is refused.
    pub tunnel_domains: Vec<String>,
}

/// ngrok's domains for free and paid endpoints.
pub const NGROK_DOMAINS: &[&str] = &[
    "ngrok-free.app",
    "ngrok-free.dev",
    "ngrok.app",
    "ngrok.dev",
    "ngrok.io",
];

impl fmt::Debug for TunnelSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TunnelSettings")
            .field("mode", &self.mode)
            .field("public_url", &self.public_url.as_ref().map(Url::as_str))
            .field("ngrok_bin", &self.ngrok_bin)
            .field(
                "ngrok_authtoken",
                &self.ngrok_authtoken.as_ref().map(|_| "…"),
            )
            .field("ngrok_api_addr", &self.ngrok_api_addr)
            .field("cloudflared_bin", &self.cloudflared_bin)
            .field(
                "cloudflared_token",
                &self.cloudflared_token.as_ref().map(|_| "…"),
            )
            .field("cleanup", &self.cleanup)
            .finish_non_exhaustive()
    }
}

impl Default for TunnelSettings {
    fn default() -> Self {
        Self {
            mode: TunnelMode::None,
            public_url: None,
            ngrok_bin: PathBuf::from("ngrok"),
            ngrok_authtoken: None,
            ngrok_api_addr: DEFAULT_NGROK_API_ADDR.into(),
            cloudflared_bin: PathBuf::from("cloudflared"),
            cloudflared_token: None,
            cleanup: false,
            guard: None,
            backoff_base: Duration::from_secs(1),
            backoff_cap: Duration::from_secs(60),
            failure_cap: Duration::from_secs(300),
            discovery_timeout: Duration::from_secs(30),
            grace: Duration::from_secs(5),
            recheck_every: Duration::from_secs(5),
            tunnel_domains: NGROK_DOMAINS.iter().map(|d| (*d).to_string()).collect(),
        }
    }
}

impl TunnelSettings {
    /// `flag_mode` is `--tunnel`, which wins over `RUSHES_TUNNEL`.
    pub fn from_lookup(
        flag_mode: Option<&str>,
        cleanup: bool,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        read(&Env::new(&lookup), flag_mode, cleanup)
    }

    /// Whether a named cloudflared tunnel runs (its URL is `RUSHES_PUBLIC_URL`).
    pub fn named_cloudflared(&self) -> bool {
        self.mode == TunnelMode::Cloudflared && self.cloudflared_token.is_some()
    }
}

/// Reads the tunnel variables (see [`TunnelSettings::from_lookup`]).
pub(super) fn read(
    env: &Env<'_>,
    flag_mode: Option<&str>,
    cleanup: bool,
) -> Result<TunnelSettings, ConfigError> {
    let mut settings = TunnelSettings {
        cleanup,
        ..TunnelSettings::default()
    };
    let parse_mode = |raw: &str| {
        TunnelMode::parse(raw).ok_or_else(|| "expected none, ngrok or cloudflared".to_string())
    };
    let mode = match flag_mode {
        Some(flag) => Env::parse("--tunnel", Some(flag.to_string()), parse_mode)?,
        None => Env::parse("RUSHES_TUNNEL", env.get("RUSHES_TUNNEL"), parse_mode)?,
    };
    if let Some(mode) = mode {
        settings.mode = mode;
    }
    if let Some(raw) = env.get("RUSHES_PUBLIC_URL") {
        settings.public_url = Some(parse_public_url(&raw)?);
    }
    if let Some(bin) = env.text("NGROK_BIN") {
        settings.ngrok_bin = PathBuf::from(bin);
    }
    if let Some(bin) = env.text("CLOUDFLARED_BIN") {
        settings.cloudflared_bin = PathBuf::from(bin);
    }
    settings.ngrok_authtoken = env.secret("NGROK_AUTHTOKEN");
    settings.cloudflared_token = env.secret("CLOUDFLARED_TUNNEL_TOKEN");
    let api_addr = Env::parse("NGROK_API_ADDR", env.get("NGROK_API_ADDR"), |raw| {
        let addr = raw.trim_start_matches("http://").trim_end_matches('/');
        let valid = addr
            .rsplit_once(':')
            .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok())
            && Url::parse(&format!("http://{addr}/api/tunnels")).is_ok();
        if valid {
            Ok(addr.to_string())
        } else {
            Err("expected HOST:PORT of ngrok's local API, such as 127.0.0.1:4040".to_string())
        }
    })?;
    if let Some(addr) = api_addr {
        settings.ngrok_api_addr = addr;
    }
    let domains = Env::parse(
        "RUSHES_TUNNEL_DOMAINS",
        env.get("RUSHES_TUNNEL_DOMAINS"),
        parse_domains,
    )?;
    if let Some(domains) = domains {
        settings.tunnel_domains = domains;
    }
    if settings.mode == TunnelMode::Cloudflared
        && settings.cloudflared_token.is_some()
        && settings.public_url.is_none()
    {
        return Err(ConfigError::Missing {
            var: "RUSHES_PUBLIC_URL",
            hint: "CLOUDFLARED_TUNNEL_TOKEN runs a named tunnel: set RUSHES_PUBLIC_URL to its \
                   fixed hostname, e.g. https://rushes.example.com"
                .into(),
        });
    }
    Ok(settings)
}

/// `RUSHES_TUNNEL_DOMAINS`: comma-separated host names such as `tunnel.example.com`.
fn parse_domains(raw: &str) -> Result<Vec<String>, String> {
    let domains: Vec<String> = raw
        .split(',')
        .map(|d| {
            d.trim()
                .trim_start_matches("*.")
                .trim_end_matches('.')
                .to_ascii_lowercase()
        })
        .filter(|d| !d.is_empty())
        .collect();
    let valid = |d: &String| {
        d.contains('.')
            && d.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
    };
    if domains.is_empty() || !domains.iter().all(valid) {
        return Err("expected host names separated by commas, such as tunnel.example.com".into());
    }
    Ok(domains)
}

fn parse_public_url(raw: &str) -> Result<Url, ConfigError> {
    let invalid = |reason: &str| ConfigError::Invalid {
        var: "RUSHES_PUBLIC_URL",
        value: raw.split('?').next().unwrap_or("").to_string(),
        reason: reason.to_string(),
    };
    let url = Url::parse(raw.trim()).map_err(|e| invalid(&format!("not a valid URL ({e})")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none_or(str::is_empty) {
        return Err(invalid(
            "expected the public https base URL, e.g. https://rushes.example.com",
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid("a base URL has no query string or fragment"));
    }
    Ok(url)
}

/// `<base>/webhooks/frameio` for a public base URL (a path prefix is kept).
pub fn webhook_url(base: &str) -> String {
    format!("{}/webhooks/frameio", base.trim_end_matches('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(flag: Option<&str>, vars: &[(&str, &str)]) -> Result<TunnelSettings, ConfigError> {
        TunnelSettings::from_lookup(flag, false, |name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        })
    }

    #[test]
    fn modes_and_defaults() -> Result<(), ConfigError> {
        let s = load(None, &[])?;
        assert_eq!(s.mode, TunnelMode::None);
        assert_eq!(s.ngrok_api_addr, "127.0.0.1:4040");
        assert_eq!(s.ngrok_bin, PathBuf::from("ngrok"));
        assert_eq!(
            load(None, &[("RUSHES_TUNNEL", "ngrok")])?.mode,
            TunnelMode::Ngrok
        );
        // The flag wins.
        let s = load(Some("cloudflared"), &[("RUSHES_TUNNEL", "ngrok")])?;
        assert_eq!(s.mode, TunnelMode::Cloudflared);
        Ok(())
    }

    #[test]
    fn mistakes_name_the_variable_and_hide_tokens() {
        for (flag, vars, var) in [
            (None, vec![("RUSHES_TUNNEL", "frp")], "RUSHES_TUNNEL"),
            (Some("frp"), vec![], "--tunnel"),
            (
                None,
                vec![("RUSHES_PUBLIC_URL", "ftp://x")],
                "RUSHES_PUBLIC_URL",
            ),
            (
                None,
                vec![("RUSHES_PUBLIC_URL", "https://")],
                "RUSHES_PUBLIC_URL",
            ),
            (None, vec![("NGROK_API_ADDR", "4040")], "NGROK_API_ADDR"),
            (
                Some("cloudflared"),
                vec![("CLOUDFLARED_TUNNEL_TOKEN", "cf-s3cret")],
                "RUSHES_PUBLIC_URL",
            ),
        ] {
            let err = load(flag, &vars)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(err.contains(var), "{vars:?}: {err}");
            assert!(!err.contains("cf-s3cret"), "{err}");
        }
        let shown = format!("{:?}", load(None, &[("NGROK_AUTHTOKEN", "ng-s3cret")]).ok());
        assert!(!shown.contains("ng-s3cret"), "{shown}");
    }

    #[test]
    fn webhook_url_keeps_a_prefix() {
        assert_eq!(
            webhook_url("https://a.example/"),
            "https://a.example/webhooks/frameio"
        );
        assert_eq!(
            webhook_url("https://a.example/studio"),
            "https://a.example/studio/webhooks/frameio"
        );
    }
}
