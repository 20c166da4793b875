//! A link of a feed record, in the pieces classification and normalisation read (host, path,
//! query), as the `url` crate serialises them. Most feed links are already in that form (lower-case
//! scheme and host, nothing to encode, no dot segment, no port, no user): those are checked and cut
//! in one pass over their text, without `Url::parse` and without a copy. Anything else is parsed by
//! `url`. A property test checks that every link taken by the short way is one `url` parses to
//! the same text and pieces.

use std::borrow::Cow;
use std::ops::Range;

use url::{Position, Url};

/// An absolute http(s) link with a host.
#[derive(Debug, Clone)]
pub enum Link<'a> {
    /// Text that `url` would serialise unchanged, and where its pieces are.
    Plain {
        text: Cow<'a, str>,
        host: Range<usize>,
        path: Range<usize>,
        query: Option<Range<usize>>,
    },
    Parsed(Url),
}

impl<'a> Link<'a> {
    /// Reads `text` (already trimmed): the short way when it is plain, else through `url`.
    pub fn parse(text: Cow<'a, str>) -> Result<Self, String> {
        if let Some((host, path, query, upper)) = plain_pieces(&text) {
            // `url` writes an ASCII host in lower case: the same text with its host lowered.
            let text = if upper {
                let mut owned = text.into_owned();
                owned[host.clone()].make_ascii_lowercase();
                Cow::Owned(owned)
            } else {
                text
            };
            return Ok(Link::Plain {
                text,
                host,
                path,
                query,
            });
        }
        let url = Url::parse(&text).map_err(|e| e.to_string())?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!("scheme {:?} is not http(s)", url.scheme()));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err("no host".into());
        }
        Ok(Link::Parsed(url))
    }

    /// The whole link as `url` serialises it.
    pub fn as_str(&self) -> &str {
        match self {
            Link::Plain { text, .. } => text,
            Link::Parsed(url) => url.as_str(),
        }
    }

    pub fn host(&self) -> &str {
        match self {
            Link::Plain { text, host, .. } => &text[host.clone()],
            Link::Parsed(url) => url.host_str().unwrap_or(""),
        }
    }

    pub fn path(&self) -> &str {
        match self {
            Link::Plain { text, path, .. } => &text[path.clone()],
            Link::Parsed(url) => url.path(),
        }
    }

    pub fn query(&self) -> Option<&str> {
        match self {
            Link::Plain { text, query, .. } => query.clone().map(|q| &text[q]),
            Link::Parsed(url) => url.query(),
        }
    }

    /// Scheme, `//`, user, host and port: everything before the path.
    pub fn before_path(&self) -> &str {
        match self {
            Link::Plain { text, path, .. } => &text[..path.start],
            Link::Parsed(url) => &url[..Position::BeforePath],
        }
    }

    /// The serialised text, owned or borrowed from the feed body.
    pub fn into_text(self) -> Cow<'a, str> {
        match self {
            Link::Plain { text, .. } => text,
            Link::Parsed(url) => Cow::Owned(url.into()),
        }
    }
}

/// Bytes a piece may hold for `url` to leave it unchanged: printable ASCII minus `bad`.
const fn allowed(bad: &[u8]) -> [bool; 256] {
    let mut table = [false; 256];
    let mut c = 0x21;
    while c < 0x7f {
        table[c] = true;
        c += 1;
    }
    let mut i = 0;
    while i < bad.len() {
        table[bad[i] as usize] = false;
        i += 1;
    }
    table
}

/// The path encode set, `\` (a separator in http(s) links) and the delimiters `?` and `#`.
const PATH: [bool; 256] = allowed(b"\"<>`{}\\?#");
/// What a path holds between the bytes that need a look: [`PATH`] minus `/` and `%`.
const PATH_RUN: [bool; 256] = allowed(b"\"<>`{}\\?#/%");
/// The special-query encode set and the delimiter `#`.
const QUERY: [bool; 256] = allowed(b"\"<>'#");
/// The fragment encode set (and no second `#`).
const FRAGMENT: [bool; 256] = allowed(b"\"<>`#");

/// Where the host, the path and the query (if any) of a plain link are, and whether the host
/// has upper-case letters (`url` lowers them).
type Pieces = (Range<usize>, Range<usize>, Option<Range<usize>>, bool);

/// Where the bytes of `table` stop from `i` on.
fn run(b: &[u8], mut i: usize, table: &[bool; 256]) -> usize {
    while let Some(c) = b.get(i) {
        if !table[*c as usize] {
            break;
        }
        i += 1;
    }
    i
}

/// Host, path and query ranges of a link `url` would serialise unchanged but for the case of
/// its host; `None` when unsure.
fn plain_pieces(text: &str) -> Option<Pieces> {
    let b = text.as_bytes();
    let host_start = if text.starts_with("https://") {
        8
    } else if text.starts_with("http://") {
        7
    } else {
        return None;
    };
    // Host: ASCII labels, none empty, none IDNA-encoded (`xn--`), the last one starting with a
    // letter (a host ending in a number is read as an IPv4 address). No port, no user. Then the
    // path, which must be there (the serialiser would add `/`).
    let mut upper = false;
    let mut i = host_start;
    let mut label_start = i;
    loop {
        match b.get(i) {
            Some(c) if c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-' => i += 1,
            Some(c) if c.is_ascii_uppercase() => {
                upper = true;
                i += 1;
            }
            Some(b'.') | Some(b'/') => {
                let label = &b[label_start..i];
                if label.is_empty()
                    || label
                        .get(..4)
                        .is_some_and(|p| p.eq_ignore_ascii_case(b"xn--"))
                {
                    return None;
                }
                if b[i] == b'/' {
                    if !label[0].is_ascii_alphabetic() {
                        return None;
                    }
                    break;
                }
                i += 1;
                label_start = i;
            }
            _ => return None,
        }
    }
    let host = host_start..i;
    // Path: nothing the path encode set changes, no dot segment (`.`, `..`, nor `%2e`).
    let path_start = i;
    let mut segment_start = i + 1;
    i += 1;
    loop {
        i = run(b, i, &PATH_RUN);
        match b.get(i) {
            Some(b'/') | Some(b'?') | Some(b'#') | None => {
                let segment = &b[segment_start..i];
                if segment == b"." || segment == b".." {
                    return None;
                }
                if b.get(i) != Some(&b'/') {
                    break;
                }
                segment_start = i + 1;
            }
            Some(b'%') if matches!(b.get(i + 1..i + 3), Some(b"2e" | b"2E")) => return None,
            Some(c) if PATH[*c as usize] => {}
            Some(_) => return None,
        }
        i += 1;
    }
    let path = path_start..i;
    // Query and fragment: nothing their encode sets change, not empty.
    let mut query = None;
    if b.get(i) == Some(&b'?') {
        let start = i + 1;
        i = run(b, start, &QUERY);
        if i == start || b.get(i).is_some_and(|c| *c != b'#') {
            return None;
        }
        query = Some(start..i);
    }
    if b.get(i) == Some(&b'#') {
        let fragment = &b[i + 1..];
        if fragment.is_empty() || run(fragment, 0, &FRAGMENT) != fragment.len() {
            return None;
        }
    }
    Some((host, path, query, upper))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn check(raw: &str) -> Result<(), TestCaseError> {
        if plain_pieces(raw).is_none() {
            return Ok(());
        }
        let Ok(Link::Plain {
            text,
            host,
            path,
            query,
        }) = Link::parse(Cow::Borrowed(raw))
        else {
            return Err(TestCaseError::fail(format!("{raw}: not plain")));
        };
        let url = Url::parse(raw).map_err(|e| TestCaseError::fail(format!("{raw}: {e}")))?;
        prop_assert_eq!(url.as_str(), &*text);
        prop_assert_eq!(url.host_str(), Some(&text[host]));
        prop_assert_eq!(url.path(), &text[path]);
        prop_assert_eq!(url.query(), query.map(|q| &text[q]));
        Ok(())
    }

    #[test]
    fn plain_links_and_the_others() {
        for plain in [
            "https://www.dropbox.com/scl/fo/abc/def?rlkey=k&dl=0",
            "https://www.dropbox.com/scl/fo/abc/def?rlkey=k&amp;dl=0#preview",
            "http://x.workers.dev/dropbox/b/o/file",
            "https://fromsmash.com/x",
            "https://example.com/",
            "https://WWW.Dropbox.com/scl/fi/abc/x.mov?dl=0",
            "http://Server.Example.WORKERS.dev/dropbox/b/o/file",
        ] {
            assert!(plain_pieces(plain).is_some(), "{plain}");
            check(plain).unwrap_or_else(|e| panic!("{e}"));
        }
        for other in [
            "HTTPS://example.com/a",
            "https://XN--nxasmq6b.com/a",
            "https://example.com",
            "https://example.com:443/a",
            "https://user@example.com/a",
            "https://127.0.0.1/a",
            "https://example.0x1/a",
            "https://xn--nxasmq6b.com/a",
            "https://example.com/a/../b",
            "https://example.com/a/%2e%2E/b",
            "https://example.com/a b",
            "https://example.com/é",
            "https://example.com/a?",
            "https://example.com/a?b='c'",
            "https://example.com/a#",
            "https://example.com/a\\b",
            "https://a..b/c",
            "ftp://example.com/a",
        ] {
            assert!(plain_pieces(other).is_none(), "{other}");
        }
    }

    proptest! {
        #[test]
        fn a_plain_link_is_what_url_makes_of_it(
            raw in "https?://[a-zA-Z0-9.:@x-]{0,16}(/[a-zA-Z0-9%._~!$&'()*+,;=:@\"<>`{}|\\\\^ \\[\\]-]{0,8}){0,4}(\\?[a-zA-Z0-9%._~!$&'()*+,;=:@\"<>`{}|\\\\^ /?\\[\\]-]{0,24})?(#[a-zA-Z0-9%._~!$&'()*+,;=:@\"<>`{}|\\\\^ /?#-]{0,8})?"
        ) {
            check(&raw)?;
        }

        #[test]
        fn dropbox_like_links_are_mostly_plain(
            id in "[a-z0-9]{4,20}", key in "[a-z0-9]{4,20}", upper in any::<bool>()
        ) {
            let raw = format!(
                "https://{}/scl/fo/{id}/x?rlkey={key}&amp;dl=0",
                if upper { "WWW.Dropbox.com" } else { "www.dropbox.com" }
            );
            check(&raw)?;
            prop_assert_eq!(plain_pieces(&raw).map(|p| p.3), Some(upper));
        }
    }
}
