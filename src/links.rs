//! What a link is, from the link alone: the service its host belongs to, and whether it is a
//! Dropbox folder share (which downloads as a zip). Used by feed classification and by naming.

use url::Url;

use crate::domain::LinkKind;

pub fn host_is(host: &str, domain: &str) -> bool {
    host == domain
        || host
            .strip_suffix(domain)
            .is_some_and(|rest| rest.ends_with('.'))
}

/// A Dropbox share link (`dropbox.com` and its subdomains): these take `dl=1`.
pub fn is_dropbox_share_host(host: &str) -> bool {
    host_is(host, "dropbox.com")
}

/// Kind of a URL on its own, from its host (an R2 proxy copy of a Dropbox delivery,
/// `*.workers.dev/dropbox/...`, is Dropbox).
pub fn kind_of_url(url: &Url) -> LinkKind {
    kind_of(
        &url.host_str().unwrap_or("").to_ascii_lowercase(),
        url.path(),
    )
}

/// [`kind_of_url`] from a link's lower-case host and its path.
pub fn kind_of(host: &str, path: &str) -> LinkKind {
    if host_is(host, "dropbox.com")
        || host_is(host, "dropboxusercontent.com")
        || (host_is(host, "workers.dev") && path.starts_with("/dropbox/"))
    {
        LinkKind::Dropbox
    } else if host_is(host, "fromsmash.com") || host_is(host, "fromsmash.co") {
        LinkKind::Fromsmash
    } else if host_is(host, "swisstransfer.com") {
        LinkKind::Swisstransfer
    } else {
        LinkKind::External
    }
}

/// Whether the link is a Dropbox folder share (`/scl/fo/` or the older `/sh/`), which downloads as a zip.
pub fn is_dropbox_folder(url: &Url) -> bool {
    kind_of_url(url) == LinkKind::Dropbox
        && (url.path().starts_with("/scl/fo/") || url.path().starts_with("/sh/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u(s: &str) -> Url {
        Url::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn dropbox_folders() {
        assert!(is_dropbox_folder(&u(
            "https://www.dropbox.com/scl/fo/abc/def?dl=1"
        )));
        assert!(!is_dropbox_folder(&u(
            "https://www.dropbox.com/scl/fi/abc/file.mov?dl=1"
        )));
        assert!(!is_dropbox_folder(&u("https://example.com/scl/fo/abc")));
    }
}
