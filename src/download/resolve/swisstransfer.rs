//! SwissTransfer, through the API its own open-source client uses:
//! `GET <api>/links/<linkUUID>` (password base64-encoded in `Authorization`) gives the container
//! (`containerUUID`, `downloadHost`, `downloadCounterCredit`, `container.needPassword`,
//! `container.files[]` with `UUID`, `fileName`, `fileSizeInBytes`, `path`); a password-protected
//! transfer needs a token per file from `POST <api>/generateDownloadToken`
//! (`{password, containerUUID, fileUUID}`); each file is then
//! `<scheme>://<downloadHost>/api/download/<linkUUID>/<fileUUID>[?token=…]` (the API base's
//! scheme: https in production).

use base64::Engine as _;
use futures::future::BoxFuture;
use reqwest::StatusCode;
use reqwest::header;
use serde::Deserialize;
use url::Url;

use super::resolver::{AllowedHosts, RemoteFile, ResolveError, Resolved, Resolver};
use crate::config::ResolverSettings;
use crate::domain::LinkKind;

/// SwissTransfer in the registry.
pub struct SwissTransfer;

impl Resolver for SwissTransfer {
    fn name(&self) -> &'static str {
        "SwissTransfer"
    }

    fn kind(&self) -> LinkKind {
        LinkKind::Swisstransfer
    }

    fn enabled(&self, settings: &ResolverSettings) -> bool {
        settings.fetches(self.kind())
    }

    /// `*.swisstransfer.com` (its API and its `dl-…` download hosts), or the configured API base.
    fn hosts(&self, settings: &ResolverSettings) -> AllowedHosts {
        AllowedHosts::new(&["swisstransfer.com"], &[&settings.swisstransfer_api])
    }

    /// The delivery's own password, else `SWISSTRANSFER_PASSWORD`.
    fn resolve<'a>(
        &'a self,
        client: &'a reqwest::Client,
        settings: &'a ResolverSettings,
        link: &'a Url,
        password: Option<&'a str>,
    ) -> BoxFuture<'a, Option<Result<Resolved, ResolveError>>> {
        Box::pin(async move {
            use secrecy::ExposeSecret as _;
            let uuid = link_uuid(link)?;
            let password = password.or(settings
                .swisstransfer_password
                .as_ref()
                .map(|p| p.expose_secret()));
            Some(resolve(client, &settings.swisstransfer_api, &uuid, password).await)
        })
    }
}

/// API answers larger than this are refused.
const MAX_ANSWER: usize = 4 << 20;
/// At most this many files per transfer.
const MAX_FILES: usize = 10_000;

#[derive(Debug, Deserialize)]
struct Envelope {
    data: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Link {
    #[serde(rename = "containerUUID")]
    container_uuid: String,
    download_host: String,
    download_counter_credit: Option<i64>,
    container: Container,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Container {
    #[serde(default)]
    need_password: serde_json::Value,
    message: Option<String>,
    files: Vec<File>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct File {
    #[serde(rename = "UUID")]
    uuid: String,
    file_name: String,
    file_size_in_bytes: Option<u64>,
    path: Option<String>,
}

/// `https://www.swisstransfer.com/d/<uuid>` -> `<uuid>`.
pub fn link_uuid(link: &Url) -> Option<String> {
    let mut segments = link.path_segments()?;
    let uuid = match (segments.next(), segments.next()) {
        (Some("d"), Some(uuid)) => uuid,
        _ => return None,
    };
    (!uuid.is_empty()
        && uuid.len() <= 64
        && uuid.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
    .then(|| uuid.to_string())
}

fn endpoint(api: &Url, path: &str) -> Result<Url, ResolveError> {
    let base = api.as_str().trim_end_matches('/');
    Url::parse(&format!("{base}/{path}")).map_err(|e| ResolveError::Api(format!("bad URL: {e}")))
}

async fn body_text(response: reqwest::Response) -> Result<String, ResolveError> {
    if response
        .content_length()
        .is_some_and(|l| l > MAX_ANSWER as u64)
    {
        return Err(ResolveError::Api("answer too large".into()));
    }
    let bytes = response
        .bytes()
        .await
        .map_err(|e| ResolveError::Network(crate::net::error_text(&e)))?;
    if bytes.len() > MAX_ANSWER {
        return Err(ResolveError::Api("answer too large".into()));
    }
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// Reads the error states the API answers with (status + `data.type` / message markers).
fn error_state(status: StatusCode, body: &str, password: Option<&str>) -> ResolveError {
    let lower = body.to_ascii_lowercase();
    if lower.contains("virus") {
        return ResolveError::VirusCheck;
    }
    match status {
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => match password {
            Some(_) => ResolveError::PasswordWrong,
            None => ResolveError::PasswordNeeded,
        },
        StatusCode::NOT_FOUND | StatusCode::GONE => {
            if lower.contains("quota") || lower.contains("credit") {
                ResolveError::NoCredit
            } else {
                ResolveError::Expired
            }
        }
        s if s.is_server_error() || s == StatusCode::TOO_MANY_REQUESTS => {
            ResolveError::Network(format!("HTTP {s}"))
        }
        s => ResolveError::Api(format!("HTTP {s}")),
    }
}

fn auth_value(password: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(password.as_bytes())
}

/// Resolves the transfer `uuid` through the API at `api`.
pub async fn resolve(
    client: &reqwest::Client,
    api: &Url,
    uuid: &str,
    password: Option<&str>,
) -> Result<Resolved, ResolveError> {
    let mut request = client
        .get(endpoint(api, &format!("links/{uuid}"))?)
        .header(header::ACCEPT, "application/json");
    if let Some(p) = password {
        request = request.header(header::AUTHORIZATION, auth_value(p));
    }
    let response = request
        .send()
        .await
        .map_err(|e| ResolveError::Network(crate::net::error_text(&e)))?;
    let status = response.status();
    let body = body_text(response).await?;
    if !status.is_success() {
        return Err(error_state(status, &body, password));
    }
    let envelope: Envelope = serde_json::from_str(&body)
        .map_err(|e| ResolveError::Api(format!("not the expected JSON ({e})")))?;
    let data = envelope
        .data
        .ok_or_else(|| ResolveError::Api("no `data` in the answer".into()))?;
    let link: Link = serde_json::from_value(data)
        .map_err(|e| ResolveError::Api(format!("not the expected container ({e})")))?;
    let needs_password = match &link.container.need_password {
        serde_json::Value::Bool(b) => *b,
        serde_json::Value::Number(n) => n.as_i64().is_some_and(|n| n != 0),
        _ => false,
    };
    if needs_password && password.is_none() {
        return Err(ResolveError::PasswordNeeded);
    }
    match link.download_counter_credit {
        Some(n) if n <= 0 => return Err(ResolveError::NoCredit),
        Some(1) => return Err(ResolveError::LastCredit),
        _ => {}
    }
    if link.container.files.is_empty() || link.container.files.len() > MAX_FILES {
        return Err(ResolveError::Api(format!(
            "{} files in the transfer",
            link.container.files.len()
        )));
    }
    let host = link.download_host.trim();
    if host.is_empty() || host.contains(['/', '?', '#', '@']) {
        return Err(ResolveError::Api("no usable downloadHost".into()));
    }
    let mut files = Vec::with_capacity(link.container.files.len());
    for f in link.container.files {
        let mut url = Url::parse(&format!(
            "{}://{host}/api/download/{uuid}/{}",
            api.scheme(),
            f.uuid
        ))
        .map_err(|e| ResolveError::Api(format!("bad download URL: {e}")))?;
        if needs_password && let Some(p) = password {
            let token = download_token(client, api, p, &link.container_uuid, &f.uuid).await?;
            url.query_pairs_mut().append_pair("token", &token);
        }
        files.push(RemoteFile {
            id: f.uuid,
            url,
            name: f.file_name,
            size: f.file_size_in_bytes,
            path: f.path.filter(|p| !p.trim().is_empty()),
            headers: Vec::new(),
        });
    }
    Ok(Resolved {
        title: link.container.message.filter(|m| !m.trim().is_empty()),
        files,
        credits_left: link
            .download_counter_credit
            .and_then(|n| u64::try_from(n).ok()),
    })
}

/// `POST <api>/generateDownloadToken`: a token for one file of a password-protected transfer.
async fn download_token(
    client: &reqwest::Client,
    api: &Url,
    password: &str,
    container: &str,
    file: &str,
) -> Result<String, ResolveError> {
    let response = client
        .post(endpoint(api, "generateDownloadToken")?)
        .json(&serde_json::json!({
            "password": password,
            "containerUUID": container,
            "fileUUID": file,
        }))
        .send()
        .await
        .map_err(|e| ResolveError::Network(crate::net::error_text(&e)))?;
    let status = response.status();
    let body = body_text(response).await?;
    if !status.is_success() {
        return Err(error_state(status, &body, Some(password)));
    }
    let token = body.trim().trim_matches('"').to_string();
    if token.is_empty() || token.len() > 4096 || token.contains(char::is_whitespace) {
        return Err(ResolveError::Api("no usable download token".into()));
    }
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_uuids() {
        let u = |s: &str| Url::parse(s).expect("url");
        assert_eq!(
            link_uuid(&u(
                "https://www.swisstransfer.com/d/0b1c2d3e-aaaa-bbbb-cccc-0123456789ab"
            )),
            Some("0b1c2d3e-aaaa-bbbb-cccc-0123456789ab".into())
        );
        assert_eq!(link_uuid(&u("https://www.swisstransfer.com/")), None);
        assert_eq!(link_uuid(&u("https://www.swisstransfer.com/d/a%2Fb")), None);
    }

    #[test]
    fn error_states_are_distinct() {
        assert!(matches!(
            error_state(StatusCode::NOT_FOUND, "{}", None),
            ResolveError::Expired
        ));
        assert!(matches!(
            error_state(
                StatusCode::NOT_FOUND,
                r#"{"data":{"type":"wait_virus_check"}}"#,
                None
            ),
            ResolveError::VirusCheck
        ));
        assert!(matches!(
            error_state(StatusCode::UNAUTHORIZED, "", None),
            ResolveError::PasswordNeeded
        ));
        assert!(matches!(
            error_state(StatusCode::UNAUTHORIZED, "", Some("x")),
            ResolveError::PasswordWrong
        ));
        assert!(matches!(
            error_state(
                StatusCode::NOT_FOUND,
                r#"{"data":{"type":"expired_download_quota"}}"#,
                None
            ),
            ResolveError::NoCredit
        ));
        assert_eq!(auth_value("secret"), "c2VjcmV0");
    }
}
