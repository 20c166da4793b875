//! Notifications: `NOTIFY_URL` (a Slack-compatible incoming webhook, secret), `NOTIFY_ON_DOWNLOAD`,
//! and the `ON_REVIEW_CHANGE` command (with `ON_REVIEW_CHANGE_ENV`).

use secrecy::SecretString;
use url::Url;

use super::{ConfigError, Env, HookCommand};

#[derive(Debug, Clone, Default)]
pub struct NotifySettings {
    /// `NOTIFY_URL`: where messages are posted as `{"text": ...}` (its path is a credential).
    pub url: Option<SecretString>,
    /// `NOTIFY_ON_DOWNLOAD=1`: a message for each delivery downloaded, too.
    pub on_download: bool,
    /// `ON_REVIEW_CHANGE`: run on each verdict change with `RUSHES_UPLOAD_*` variables.
    pub on_review_change: Option<HookCommand>,
    /// `ON_REVIEW_CHANGE_ENV`: further variables that command may see.
    pub review_hook_env: Vec<String>,
}

impl NotifySettings {
    /// Anything to do at all.
    pub fn enabled(&self) -> bool {
        self.url.is_some() || self.on_review_change.is_some()
    }

    pub(super) fn read(env: &Env<'_>) -> Result<Self, ConfigError> {
        let url = match env.text("NOTIFY_URL").filter(|u| !u.is_empty()) {
            None => None,
            Some(raw) => {
                let ok = Url::parse(&raw)
                    .ok()
                    .filter(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some());
                if ok.is_none() {
                    return Err(ConfigError::Invalid {
                        var: "NOTIFY_URL",
                        // The URL is a credential: never shown.
                        value: "(hidden)".into(),
                        reason: "expected an http(s) URL with a host".into(),
                    });
                }
                Some(SecretString::from(raw))
            }
        };
        let on_review_change = Env::parse(
            "ON_REVIEW_CHANGE",
            env.get("ON_REVIEW_CHANGE").filter(|v| !v.trim().is_empty()),
            HookCommand::parse,
        )?;
        let review_hook_env = env
            .text("ON_REVIEW_CHANGE_ENV")
            .map(|v| {
                v.split(',')
                    .map(str::trim)
                    .filter(|n| !n.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        Ok(Self {
            url,
            on_download: env.switch("NOTIFY_ON_DOWNLOAD")?,
            on_review_change,
            review_hook_env,
        })
    }
}
