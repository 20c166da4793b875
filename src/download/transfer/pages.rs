//! Dropbox's own failures, named. Dropbox answers some failures with an HTML page (and a 200 or a
//! 4xx) where the file was expected: a folder too large to zip, a link disabled for excess
//! bandwidth, a deleted link, a link that needs signing in. Each is recognised by status, content
//! type and page markers (the final URL's path for a sign-in redirect) and turned into a specific
//! message with a next step; only a failure that waiting can fix is retried, and only later.

use std::time::Duration;

use futures::StreamExt;
use reqwest::StatusCode;
use reqwest::header;

use super::part::{Part, TryError};

/// At most this much of an error page is read.
const PAGE_LIMIT: usize = 256 << 10;
/// Reading an error page takes at most this long.
const PAGE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long Dropbox disables a link for excess bandwidth.
const SUSPENSION: chrono::TimeDelta = chrono::TimeDelta::hours(24);

/// A failure page Dropbox serves instead of the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropboxFailure {
    /// "The zip file is too large": a shared folder over ~20 GB or 10,000 files.
    ZipTooLarge,
    /// "This account's links are generating too much traffic and have been temporarily disabled".
    BandwidthSuspended,
    /// The link or the file behind it was deleted (404/410 or the page says so).
    Deleted,
    /// The link only opens for a signed-in Dropbox account.
    SignInRequired,
}

impl DropboxFailure {
    /// The message shown on the delivery: what happened and what to do next.
    pub fn message(self, now: chrono::DateTime<chrono::Utc>) -> String {
        match self {
            Self::ZipTooLarge => "Dropbox cannot zip this shared folder (the zip file is too large: over about 20 GB or 10,000 files); download the folder's files one by one from Dropbox, or ask the sender for smaller folders or per-file links".into(),
            Self::BandwidthSuspended => format!(
                "Dropbox has suspended this link for excess bandwidth (usually for 24 h): retry after {} UTC, or ask the sender for another link",
                (now + SUSPENSION).format("%Y-%m-%d %H:%M")
            ),
            Self::Deleted => "the Dropbox link was deleted or the file is no longer there; ask the sender for a new link".into(),
            Self::SignInRequired => "this Dropbox link needs a signed-in Dropbox account (it is not shared publicly); open it in a browser signed in to the right account, or ask the sender for a public link".into(),
        }
    }
}

fn has_any(text: &str, markers: &[&str]) -> bool {
    markers.iter().any(|m| text.contains(m))
}

/// Recognises a Dropbox failure page. `path` is the final URL's path (after redirects); `body` the
/// start of the page.
pub fn classify(
    status: StatusCode,
    content_type: &str,
    path: &str,
    body: &str,
) -> Option<DropboxFailure> {
    let html = content_type
        .trim_start()
        .to_ascii_lowercase()
        .starts_with("text/html");
    let page = body.to_lowercase();
    let dropbox = page.contains("dropbox");
    if !html || !dropbox {
        return None;
    }
    if has_any(
        &page,
        &[
            "zip file is too large",
            "too large to download",
            "folder is too large",
            "too many files to zip",
            "zip_too_large",
        ],
    ) {
        return Some(DropboxFailure::ZipTooLarge);
    }
    if status == StatusCode::TOO_MANY_REQUESTS
        || has_any(
            &page,
            &[
                "too much traffic",
                "temporarily disabled",
                "links are temporarily suspended",
                "bandwidth limit",
            ],
        )
    {
        return Some(DropboxFailure::BandwidthSuspended);
    }
    if matches!(status, StatusCode::NOT_FOUND | StatusCode::GONE)
        || has_any(
            &page,
            &[
                "has been deleted",
                "was deleted",
                "isn't here anymore",
                "isn\u{2019}t here anymore",
                "link has been disabled",
                "this link was removed",
                "file has been removed",
            ],
        )
    {
        return Some(DropboxFailure::Deleted);
    }
    let login_path = path.starts_with("/login") || path.starts_with("/ajax_login");
    if login_path
        || matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN)
            && has_any(&page, &["sign in", "log in", "signin", "login"])
        || has_any(
            &page,
            &[
                "sign in to view",
                "sign in to access",
                "you need to sign in",
                "sign in to dropbox to",
                "log in to view",
            ],
        )
    {
        return Some(DropboxFailure::SignInRequired);
    }
    None
}

/// Whether the file itself is an HTML page (by its chosen, forced or link name): then an HTML
/// answer is the file.
pub(super) fn expects_html(job: &super::job::Job, part: &Option<Part>) -> bool {
    let name = match part {
        Some(p) => p.name.as_str().to_string(),
        None => job.forced_name.clone().unwrap_or_else(|| {
            job.name_link
                .path_segments()
                .and_then(|mut s| s.next_back())
                .unwrap_or("")
                .to_string()
        }),
    };
    let lower = name.trim().to_ascii_lowercase();
    lower.ends_with(".html") || lower.ends_with(".htm")
}

/// Reads the start of an HTML answer (bounded in size and time).
async fn read_page(response: reqwest::Response) -> String {
    let mut body = Vec::new();
    let mut stream = response.bytes_stream();
    let read = async {
        while let Some(Ok(chunk)) = stream.next().await {
            let room = PAGE_LIMIT - body.len();
            body.extend_from_slice(&chunk[..chunk.len().min(room)]);
            if body.len() >= PAGE_LIMIT {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(PAGE_TIMEOUT, read).await;
    String::from_utf8_lossy(&body).into_owned()
}

/// Called with every first answer before its status is judged: an HTML page where a file was
/// expected (`expects_html` false) is read and, if it is one of Dropbox's failure pages, becomes
/// its named error. Anything else is given back untouched (`Ok`), or, when the page had to be
/// read to know, the error the generic checks would have given.
pub(super) async fn check(
    response: reqwest::Response,
    expects_html: bool,
) -> Result<reqwest::Response, TryError> {
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let status = response.status();
    let is_html = content_type
        .trim_start()
        .to_ascii_lowercase()
        .starts_with("text/html");
    if !is_html || expects_html || status == StatusCode::PARTIAL_CONTENT {
        return Ok(response);
    }
    let path = response.url().path().to_string();
    let page = read_page(response).await;
    if let Some(failure) = classify(status, &content_type, &path, &page) {
        tracing::warn!(?failure, status = status.as_u16(), "Dropbox failure page");
        return Err(TryError::NextUrl(failure.message(chrono::Utc::now())));
    }
    Err(match status {
        StatusCode::REQUEST_TIMEOUT | StatusCode::TOO_MANY_REQUESTS => {
            TryError::Retry(format!("HTTP {status}"))
        }
        s if s.is_server_error() => TryError::Retry(format!("HTTP {status}")),
        s if s.is_success() => TryError::NextUrl(
            "the server answered an HTML page instead of the file (expired or private link?)"
                .into(),
        ),
        s => TryError::NextUrl(format!("HTTP {s}")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const HTML: &str = "text/html; charset=utf-8";

    #[test]
    fn each_failure_page_is_named() {
        let zip = "<html><head><title>Dropbox - Error</title></head><body><h1>The zip file is too large.</h1><p>Please try downloading individual files.</p></body></html>";
        assert_eq!(
            classify(StatusCode::OK, HTML, "/scl/fo/x", zip),
            Some(DropboxFailure::ZipTooLarge)
        );
        let traffic = "<html><title>Dropbox - 429</title><body>Error (429) This account's links are generating too much traffic and have been temporarily disabled!</body></html>";
        assert_eq!(
            classify(StatusCode::TOO_MANY_REQUESTS, HTML, "/s/x", traffic),
            Some(DropboxFailure::BandwidthSuspended)
        );
        let gone = "<html><title>Dropbox - 404</title><body>Error (404) We can't find the page you're looking for.</body></html>";
        assert_eq!(
            classify(StatusCode::NOT_FOUND, HTML, "/s/x", gone),
            Some(DropboxFailure::Deleted)
        );
        let deleted =
            "<html><title>Dropbox</title><body>That file isn\u{2019}t here anymore</body></html>";
        assert_eq!(
            classify(StatusCode::OK, HTML, "/s/x", deleted),
            Some(DropboxFailure::Deleted)
        );
        let login = "<html><title>Sign in - Dropbox</title><body><form>Email</form></body></html>";
        assert_eq!(
            classify(StatusCode::OK, HTML, "/login", login),
            Some(DropboxFailure::SignInRequired)
        );
    }

    #[test]
    fn other_pages_and_files_are_not_dropbox_failures() {
        assert_eq!(
            classify(
                StatusCode::OK,
                HTML,
                "/x",
                "<html>This link has expired</html>"
            ),
            None
        );
        assert_eq!(
            classify(
                StatusCode::OK,
                "application/octet-stream",
                "/x",
                "dropbox too much traffic"
            ),
            None
        );
    }

    #[test]
    fn the_suspension_message_says_when_to_retry() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-03-01T10:00:00Z")
            .map(|t| t.with_timezone(&chrono::Utc))
            .expect("time");
        let m = DropboxFailure::BandwidthSuspended.message(now);
        assert!(m.contains("retry after 2026-03-02 10:00 UTC"), "{m}");
    }
}
