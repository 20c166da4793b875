//! What every link resolver is and gives: the [`Resolver`] interface, the files behind a link
//! ([`Resolved`], [`RemoteFile`]), the hosts its files may come from ([`AllowedHosts`]) and why a
//! link could not be resolved ([`ResolveError`]).

use futures::future::BoxFuture;
use url::{Host, Url};

use crate::config::ResolverSettings;
use crate::domain::LinkKind;

/// One host's resolver. Implemented once per host, listed in `mod.rs`'s registry.
pub trait Resolver: Sync {
    /// The host's name as shown in logs and messages ("SwissTransfer").
    fn name(&self) -> &'static str;
    /// The links it takes (their kind is decided from the host by `links.rs`).
    fn kind(&self) -> LinkKind;
    /// Whether the settings switch it on (`SWISSTRANSFER_AUTO`, `SMASH_AUTO`).
    fn enabled(&self, settings: &ResolverSettings) -> bool;
    /// Experimental: any error sends the delivery back to manual with the reason, and a delivery
    /// sent back is left to a person (not tried again by itself).
    fn experimental(&self) -> bool {
        false
    }
    /// The hosts the files (and every redirect on the way to them) may come from.
    fn hosts(&self, settings: &ResolverSettings) -> AllowedHosts;
    /// The files behind `link`; `None` when the link is not one it can read (it is then
    /// downloaded as it is). `password`: the one given for this delivery, if any.
    fn resolve<'a>(
        &'a self,
        client: &'a reqwest::Client,
        settings: &'a ResolverSettings,
        link: &'a Url,
        password: Option<&'a str>,
    ) -> BoxFuture<'a, Option<Result<Resolved, ResolveError>>>;
}

/// Where a resolver's files may be fetched from: the provider's own domains (the domain or a
/// subdomain, https on its default port only), and the configured API base's origin as it is
/// (scheme, host and port: a test server, a mirror). Anything else (a loopback or private
/// address an answer points at, another port) is refused, before the request and on redirects.
#[derive(Debug, Clone, Default)]
pub struct AllowedHosts {
    domains: Vec<&'static str>,
    origins: Vec<url::Origin>,
}

impl AllowedHosts {
    pub fn new(domains: &[&'static str], bases: &[&Url]) -> Self {
        Self {
            domains: domains.to_vec(),
            origins: bases.iter().map(|b| b.origin()).collect(),
        }
    }

    pub fn permits(&self, url: &Url) -> bool {
        if self.origins.iter().any(|o| *o == url.origin()) {
            return true;
        }
        let Some(Host::Domain(host)) = url.host() else {
            return false;
        };
        let host = host.trim_end_matches('.');
        url.scheme() == "https"
            && url.port().is_none()
            && self
                .domains
                .iter()
                .any(|d| host == *d || host.strip_suffix(d).is_some_and(|rest| rest.ends_with('.')))
    }
}

/// One file behind a link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteFile {
    /// The host's own id of the file (a transfer's files can share a name, never an id): what
    /// a file that already landed is recognised by after a restart.
    pub id: String,
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
    #[error(
        "the transfer API gave {url} as the address of {name}: not one of the provider's own hosts, refused"
    )]
    ForeignHost { name: String, url: String },
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
