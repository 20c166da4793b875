//! Link resolvers: a share link that is a page, not a file, turned into the files behind it
//! (URL, name, size, headers), which the normal engine then downloads one by one (resume,
//! segments, SHA-256). One file per host: `swisstransfer.rs`, and `fromsmash.rs` (experimental,
//! `SMASH_AUTO=1`: the routes of FromSmash's public SDK, not a documented integration).

pub mod fromsmash;
pub mod swisstransfer;

use url::Url;

use crate::config::ResolverSettings;
use crate::domain::LinkKind;
use crate::links;

/// One file behind a link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteFile {
    pub url: Url,
    /// As the sender named it (sanitised by the engine like any name).
    pub name: String,
    pub size: Option<u64>,
    /// Folder inside the transfer, if any (`a/b`).
    pub path: Option<String>,
    /// Headers the host needs on the download request.
    pub headers: Vec<(String, String)>,
}

impl RemoteFile {
    /// The headers as sent on every request for the file; a name or value that cannot be sent
    /// is the resolver's mistake, reported as an unexpected answer.
    pub fn header_map(&self) -> Result<reqwest::header::HeaderMap, ResolveError> {
        use reqwest::header::{HeaderName, HeaderValue};
        let mut map = reqwest::header::HeaderMap::new();
        for (name, value) in &self.headers {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| ResolveError::Api(format!("unusable header name {name:?}")))?;
            let mut value = HeaderValue::from_str(value)
                .map_err(|_| ResolveError::Api(format!("unusable value for header {name}")))?;
            value.set_sensitive(true);
            map.append(name, value);
        }
        Ok(map)
    }
}

/// What a link resolves to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The transfer's title or message, when it has one (a folder name candidate).
    pub title: Option<String>,
    pub files: Vec<RemoteFile>,
    /// Downloads the host still allows for this transfer, when it says.
    pub credits_left: Option<u64>,
}

/// Why a link could not be resolved. Each is a distinct state with its own message.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error("the transfer has expired or was deleted (404); ask the sender to send it again")]
    Expired,
    #[error("the host is still checking the transfer for viruses")]
    VirusCheck,
    #[error(
        "the transfer is password-protected: give its password on the dashboard, with `rushes password <id>` or in SWISSTRANSFER_PASSWORD"
    )]
    PasswordNeeded,
    #[error("the password given for this transfer is wrong (401)")]
    PasswordWrong,
    #[error("the transfer has no download credit left; ask the sender for a new transfer")]
    NoCredit,
    #[error(
        "the transfer has one download credit left: rushes does not spend the last one by itself; download it by hand from the link (or SWISSTRANSFER_AUTO=0)"
    )]
    LastCredit,
    #[error("unexpected answer from the transfer API: {0}")]
    Api(String),
    #[error("cannot reach the transfer API: {0}")]
    Network(String),
}

impl ResolveError {
    /// Whether trying again later can help (virus check, network), as opposed to a person acting.
    pub fn retry_later(&self) -> bool {
        matches!(self, Self::VirusCheck | Self::Network(_))
    }
}

/// Resolves `link` when a resolver is enabled for its host; `None` when the link is not one
/// (it is then downloaded, or left manual, as before).
pub async fn resolve(
    client: &reqwest::Client,
    settings: &ResolverSettings,
    link: &Url,
    password: Option<&str>,
) -> Option<Result<Resolved, ResolveError>> {
    match links::kind_of_url(link) {
        LinkKind::Swisstransfer if settings.swisstransfer => {
            let uuid = swisstransfer::link_uuid(link)?;
            Some(swisstransfer::resolve(client, &settings.swisstransfer_api, &uuid, password).await)
        }
        LinkKind::Fromsmash if settings.smash => {
            use secrecy::ExposeSecret as _;
            let hosts = fromsmash::Hosts {
                base: settings.smash_api.clone(),
            };
            let token = settings.smash_token.as_ref().map(|t| t.expose_secret());
            Some(fromsmash::resolve(client, &hosts, token, link, password).await)
        }
        _ => None,
    }
}
