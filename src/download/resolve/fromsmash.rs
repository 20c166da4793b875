//! FromSmash (experimental, `SMASH_AUTO=1`): not an official integration. The routes are the ones
//! FromSmash's own public SDK (`smash-sdk-js`, `smash-downloader-js` on GitHub) calls, on which the
//! web app is built; they may change without notice, and any error sends the delivery back to
//! manual with the reason shown.
//!
//! 1. A token: `SMASH_TOKEN` (a Smash API key) when set, else an anonymous account,
//!    `POST https://iam.eu-west-3.fromsmash.co/account?version=07-2020` with `{}` ->
//!    `{"account": {"token": {"token": …}}}`. Every other call sends `Authorization: Bearer <token>`.
//! 2. The link's target: `GET https://link.fromsmash.co/target/<host + path of the link,
//!    percent-encoded>?version=10-2019` -> `{"target": {"target": <transfer id>, "region": …}}`.
//! 3. The transfer: `GET https://transfer.<region>.fromsmash.co/transfer/<id>/preview?version=07-2022`
//!    -> `{"transfer": {"id", "title", "status", "size", …}}`; only `Uploaded` is downloadable.
//! 4. Its files, paged: `GET …/transfer/<id>/files/preview?version=07-2022&limit=100[&start=<next>]`
//!    -> `{"files": [{"id", "name", "size", "download"}], "next"}`; each `download` is a signed
//!    URL fetched by the normal engine.
//!
//! `SMASH_API_BASE` (tests) puts every service under one base: `<base>/iam/<region>/…`,
//! `<base>/link/…`, `<base>/transfer/<region>/…`.

use futures::future::BoxFuture;
use reqwest::StatusCode;
use reqwest::header;
use serde::Deserialize;
use url::Url;

use super::resolver::{AllowedHosts, RemoteFile, ResolveError, Resolved, Resolver};
use crate::config::ResolverSettings;
use crate::domain::LinkKind;

/// FromSmash in the registry.
pub struct FromSmash;

impl Resolver for FromSmash {
    fn name(&self) -> &'static str {
        "FromSmash"
    }

    fn kind(&self) -> LinkKind {
        LinkKind::Fromsmash
    }

    fn enabled(&self, settings: &ResolverSettings) -> bool {
        settings.fetches(self.kind())
    }

    fn experimental(&self) -> bool {
        true
    }

    /// FromSmash's own domains (its services and signed file URLs), or `SMASH_API_BASE`.
    fn hosts(&self, settings: &ResolverSettings) -> AllowedHosts {
        let bases: Vec<&Url> = settings.smash_api.iter().collect();
        AllowedHosts::new(&["fromsmash.co", "fromsmash.com"], &bases)
    }

    fn resolve<'a>(
        &'a self,
        client: &'a reqwest::Client,
        settings: &'a ResolverSettings,
        link: &'a Url,
        password: Option<&'a str>,
    ) -> BoxFuture<'a, Option<Result<Resolved, ResolveError>>> {
        Box::pin(async move {
            use secrecy::ExposeSecret as _;
            let hosts = Hosts {
                base: settings.smash_api.clone(),
            };
            let token = settings.smash_token.as_ref().map(|t| t.expose_secret());
            Some(resolve(client, &hosts, token, link, password).await)
        })
    }
}

/// Answers larger than this are refused.
const MAX_ANSWER: usize = 4 << 20;
/// At most this many files per transfer, and pages of them.
const MAX_FILES: usize = 10_000;
const MAX_PAGES: usize = 200;
/// Region of the anonymous account (the SDK's examples use it).
const ACCOUNT_REGION: &str = "eu-west-3";

/// Where FromSmash's services are.
#[derive(Debug, Clone)]
pub struct Hosts {
    /// `None`: FromSmash's own hosts; `Some(base)`: everything under one base (tests).
    pub base: Option<Url>,
}

impl Hosts {
    fn iam(&self, region: &str, path: &str) -> Result<Url, ResolveError> {
        self.url("iam", Some(region), path)
    }
    fn link(&self, path: &str) -> Result<Url, ResolveError> {
        self.url("link", None, path)
    }
    fn transfer(&self, region: &str, path: &str) -> Result<Url, ResolveError> {
        self.url("transfer", Some(region), path)
    }

    fn url(&self, service: &str, region: Option<&str>, path: &str) -> Result<Url, ResolveError> {
        let raw = match (&self.base, region) {
            (Some(base), Some(r)) => {
                format!(
                    "{}/{service}/{r}{path}",
                    base.as_str().trim_end_matches('/')
                )
            }
            (Some(base), None) => {
                format!("{}/{service}{path}", base.as_str().trim_end_matches('/'))
            }
            (None, Some(r)) => format!("https://{service}.{r}.fromsmash.co{path}"),
            (None, None) => format!("https://{service}.fromsmash.co{path}"),
        };
        Url::parse(&raw).map_err(|e| ResolveError::Api(format!("bad URL: {e}")))
    }
}

/// `fromsmash.com/<id>` links (the part the link service knows them by).
pub fn target_id(link: &Url) -> Option<String> {
    let host = link.host_str()?;
    let path = link.path().trim_end_matches('/');
    let id = path.strip_prefix('/')?;
    (!id.is_empty()
        && id.len() <= 200
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/')))
    .then(|| format!("{host}{path}"))
}

/// A region as FromSmash names them (`eu-west-3`): anything else is refused (it becomes a host).
fn region_ok(region: &str) -> bool {
    !region.is_empty()
        && region.len() <= 32
        && region
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

#[derive(Deserialize)]
struct AccountAnswer {
    account: Account,
}
#[derive(Deserialize)]
struct Account {
    token: Token,
}
#[derive(Deserialize)]
struct Token {
    token: String,
}

#[derive(Deserialize)]
struct TargetAnswer {
    target: Target,
}
#[derive(Deserialize)]
struct Target {
    target: String,
    region: String,
}

#[derive(Deserialize)]
struct PreviewAnswer {
    transfer: Transfer,
}
#[derive(Deserialize)]
struct Transfer {
    title: Option<String>,
    status: Option<String>,
}

#[derive(Deserialize)]
struct FilesAnswer {
    files: Vec<File>,
    next: Option<String>,
}
#[derive(Deserialize)]
struct File {
    id: String,
    name: String,
    size: Option<u64>,
    download: String,
}

async fn get_json<T: serde::de::DeserializeOwned>(
    request: reqwest::RequestBuilder,
    what: &str,
    password: Option<&str>,
) -> Result<T, ResolveError> {
    let response = request
        .header(header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(|e| ResolveError::Network(crate::net::error_text(&e)))?;
    let status = response.status();
    if response
        .content_length()
        .is_some_and(|l| l > MAX_ANSWER as u64)
    {
        return Err(ResolveError::Api(format!("{what}: answer too large")));
    }
    let bytes = response
        .bytes()
        .await
        .map_err(|e| ResolveError::Network(crate::net::error_text(&e)))?;
    if bytes.len() > MAX_ANSWER {
        return Err(ResolveError::Api(format!("{what}: answer too large")));
    }
    if !status.is_success() {
        return Err(match status {
            StatusCode::NOT_FOUND | StatusCode::GONE => ResolveError::Expired,
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN if what == "transfer" => {
                match password {
                    Some(_) => ResolveError::PasswordWrong,
                    None => ResolveError::PasswordNeeded,
                }
            }
            s if s.is_server_error() || s == StatusCode::TOO_MANY_REQUESTS => {
                ResolveError::Network(format!("{what}: HTTP {s}"))
            }
            s => ResolveError::Api(format!("{what}: HTTP {s}")),
        });
    }
    serde_json::from_slice(&bytes)
        .map_err(|e| ResolveError::Api(format!("{what}: not the expected JSON ({e})")))
}

/// Resolves a FromSmash link into its files.
pub async fn resolve(
    client: &reqwest::Client,
    hosts: &Hosts,
    token: Option<&str>,
    link: &Url,
    password: Option<&str>,
) -> Result<Resolved, ResolveError> {
    let target_id =
        target_id(link).ok_or_else(|| ResolveError::Api("not a fromsmash.com/<id> link".into()))?;
    let token = match token {
        Some(t) => t.to_string(),
        None => {
            let mut url = hosts.iam(ACCOUNT_REGION, "/account")?;
            url.query_pairs_mut().append_pair("version", "07-2020");
            let answer: AccountAnswer = get_json(
                client.post(url).json(&serde_json::json!({})),
                "account",
                None,
            )
            .await?;
            answer.account.token.token
        }
    };
    if token.is_empty() || token.len() > 8192 {
        return Err(ResolveError::Api("no usable token".into()));
    }
    let encoded: String = url::form_urlencoded::byte_serialize(target_id.as_bytes()).collect();
    let mut url = hosts.link(&format!("/target/{encoded}"))?;
    url.query_pairs_mut().append_pair("version", "10-2019");
    let target: TargetAnswer = get_json(client.get(url).bearer_auth(&token), "link", None).await?;
    let (id, region) = (target.target.target, target.target.region);
    if !region_ok(&region) {
        return Err(ResolveError::Api("the link's region is not usable".into()));
    }
    if id.is_empty() || id.len() > 200 || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    {
        return Err(ResolveError::Api(
            "the link's transfer id is not usable".into(),
        ));
    }
    let mut url = hosts.transfer(&region, &format!("/transfer/{id}/preview"))?;
    url.query_pairs_mut().append_pair("version", "07-2022");
    let mut request = client.get(url).bearer_auth(&token);
    if let Some(p) = password {
        let encoded: String = url::form_urlencoded::byte_serialize(p.as_bytes()).collect();
        request = request.header("smash-authorization", encoded);
    }
    let preview: PreviewAnswer = get_json(request, "transfer", password).await?;
    match preview.transfer.status.as_deref() {
        Some("Uploaded") | None => {}
        Some("Expired" | "Deleted" | "Deleting") => return Err(ResolveError::Expired),
        Some(other) => {
            return Err(ResolveError::Api(format!(
                "the transfer is {:?}, not ready to download",
                other.chars().take(40).collect::<String>()
            )));
        }
    }
    let mut files = Vec::new();
    let mut start: Option<String> = None;
    for _ in 0..MAX_PAGES {
        let mut url = hosts.transfer(&region, &format!("/transfer/{id}/files/preview"))?;
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("version", "07-2022")
                .append_pair("limit", "100");
            if let Some(s) = &start {
                q.append_pair("start", s);
            }
        }
        let mut request = client.get(url).bearer_auth(&token);
        if let Some(p) = password {
            let encoded: String = url::form_urlencoded::byte_serialize(p.as_bytes()).collect();
            request = request.header("smash-authorization", encoded);
        }
        let page: FilesAnswer = get_json(request, "transfer", password).await?;
        for f in page.files {
            let url = Url::parse(&f.download)
                .ok()
                .filter(|u| matches!(u.scheme(), "http" | "https"))
                .ok_or_else(|| {
                    ResolveError::Api(format!("no usable download URL for {}", f.name))
                })?;
            files.push(RemoteFile {
                id: f.id,
                url,
                name: f.name,
                size: f.size,
                path: None,
                headers: Vec::new(),
            });
            if files.len() > MAX_FILES {
                return Err(ResolveError::Api("too many files in the transfer".into()));
            }
        }
        match page.next.filter(|n| !n.is_empty()) {
            Some(next) if next.len() <= 1024 => start = Some(next),
            Some(_) => return Err(ResolveError::Api("unusable page cursor".into())),
            None => {
                start = None;
                break;
            }
        }
    }
    if start.is_some() {
        return Err(ResolveError::Api("too many pages of files".into()));
    }
    if files.is_empty() {
        return Err(ResolveError::Api("no files in the transfer".into()));
    }
    Ok(Resolved {
        title: preview.transfer.title.filter(|t| !t.trim().is_empty()),
        files,
        credits_left: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_ids_and_regions() {
        let u = |s: &str| Url::parse(s).expect("url");
        assert_eq!(
            target_id(&u("https://fromsmash.com/Ab3-x_Y")),
            Some("fromsmash.com/Ab3-x_Y".into())
        );
        assert_eq!(target_id(&u("https://fromsmash.com/")), None);
        assert_eq!(target_id(&u("https://fromsmash.com/a%20b")), None);
        assert!(region_ok("eu-west-3"));
        assert!(!region_ok("evil.example/x"));
        let hosts = Hosts { base: None };
        assert_eq!(
            hosts
                .transfer("eu-west-1", "/transfer/x/preview")
                .map(|u| u.to_string())
                .ok(),
            Some("https://transfer.eu-west-1.fromsmash.co/transfer/x/preview".into())
        );
        assert_eq!(
            hosts.link("/target/a").map(|u| u.to_string()).ok(),
            Some("https://link.fromsmash.co/target/a".into())
        );
    }
}
