//! What a delivery link is, decided in one place: its kind (dropbox, fromsmash, swisstransfer,
//! external), whether rushes downloads it or a person opens it, and its normalised form, which is
//! also the delivery's dedupe key.

#[cfg(test)]
use url::Url;

use super::link::Link;

use crate::domain::{DeliveryMode, LinkKind};
use crate::links::{is_dropbox_share_host, kind_of};

/// The verdict on one record's link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Classification {
    pub kind: LinkKind,
    pub mode: DeliveryMode,
}

/// Classifies a record: the source link's host, or `provider: "dropbox"`, gives the kind;
/// Dropbox links and any record with an R2 copy are downloaded automatically.
pub fn classify(source: &Link<'_>, has_r2: bool, provider: &str) -> Classification {
    let mut kind = kind_of(source.host(), source.path());
    if kind == LinkKind::External && provider.trim().eq_ignore_ascii_case("dropbox") {
        kind = LinkKind::Dropbox;
    }
    let mode = if kind == LinkKind::Dropbox || has_r2 {
        DeliveryMode::Automatic
    } else {
        DeliveryMode::Manual
    };
    Classification { kind, mode }
}

/// Normalises a link so that the spellings of one delivery found in real feeds compare equal:
/// lower-case scheme and host (done by `url`), no fragment, `&amp;` and `amp%3B` artefacts turned
/// into plain parameters, empty parameters dropped, exactly one `dl=1` on Dropbox share hosts
/// (whatever the case and value of their `dl`),
/// parameters sorted, no trailing `/` on the path.
#[cfg(test)]
pub fn normalize_url(url: &Url) -> Url {
    let text = normalized_text(&Link::Parsed(url.clone()));
    // The text is built from the pieces of a parsed URL, already in their serialised form.
    Url::parse(&text).unwrap_or_else(|_| url.clone())
}

/// [`normalize_url`] as text, built from the parsed link in one allocation (no second parse):
/// the pieces are already in their serialised, encoded form. This is the dedupe key.
pub fn normalized_text(url: &Link<'_>) -> String {
    let dropbox = is_dropbox_share_host(url.host());
    let mut pairs = Pairs::default();
    if let Some(query) = url.query() {
        for raw in query.split('&') {
            let mut part = raw;
            // `&amp;dl=0` splits into `amp;dl=0`; double encoding gives `amp%3Bdl=0`.
            loop {
                if let Some(rest) = strip_prefix_ignore_case(part, "amp;") {
                    part = rest;
                } else if let Some(rest) = strip_prefix_ignore_case(part, "amp%3b") {
                    part = rest;
                } else {
                    break;
                }
            }
            let (key, value) = match part.bytes().position(|c| c == b'=') {
                Some(at) => (&part[..at], &part[at + 1..]),
                None => (part, ""),
            };
            if key.is_empty() || value.is_empty() {
                continue;
            }
            // `DL=0` is `dl=0`: Dropbox reads the parameter whatever its case.
            if dropbox && key.eq_ignore_ascii_case("dl") {
                continue;
            }
            if !pairs.as_slice().contains(&(key, value)) {
                pairs.push((key, value));
            }
        }
    }
    if dropbox {
        pairs.push(("dl", "1"));
    }
    let pairs = pairs.as_mut_slice();
    pairs.sort_unstable();

    let mut path = url.path();
    if path.len() > 1 && path.ends_with('/') {
        path = path.trim_end_matches('/');
        if path.is_empty() {
            path = "/";
        }
    }
    let head = url.before_path();
    let mut out = String::with_capacity(url.as_str().len() + 5);
    out.push_str(head);
    out.push_str(path);
    for (i, (key, value)) in pairs.iter().enumerate() {
        out.push(if i == 0 { '?' } else { '&' });
        out.push_str(key);
        out.push('=');
        out.push_str(value);
    }
    out
}

/// The parameters of a link: the first few on the stack (a link rarely has more than 8).
#[derive(Default)]
struct Pairs<'s> {
    inline: [(&'s str, &'s str); 8],
    len: usize,
    spilled: Vec<(&'s str, &'s str)>,
}

impl<'s> Pairs<'s> {
    fn push(&mut self, pair: (&'s str, &'s str)) {
        if self.len < self.inline.len() && self.spilled.is_empty() {
            self.inline[self.len] = pair;
            self.len += 1;
        } else {
            if self.spilled.is_empty() {
                self.spilled.extend_from_slice(&self.inline[..self.len]);
            }
            self.spilled.push(pair);
        }
    }

    fn as_slice(&self) -> &[(&'s str, &'s str)] {
        if self.spilled.is_empty() {
            &self.inline[..self.len]
        } else {
            &self.spilled
        }
    }

    fn as_mut_slice(&mut self) -> &mut [(&'s str, &'s str)] {
        if self.spilled.is_empty() {
            &mut self.inline[..self.len]
        } else {
            &mut self.spilled
        }
    }
}

fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u(s: &str) -> Url {
        Url::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn classification_table() {
        let cases = [
            (
                "https://www.dropbox.com/scl/fo/abc?dl=0",
                None,
                "webhook",
                LinkKind::Dropbox,
                DeliveryMode::Automatic,
            ),
            (
                "https://dropbox.com/s/abc/file.mov",
                None,
                "webhook",
                LinkKind::Dropbox,
                DeliveryMode::Automatic,
            ),
            (
                "https://dl.dropboxusercontent.com/s/abc/file.mov",
                None,
                "webhook",
                LinkKind::Dropbox,
                DeliveryMode::Automatic,
            ),
            (
                "https://fromsmash.com/abc",
                None,
                "webhook",
                LinkKind::Fromsmash,
                DeliveryMode::Manual,
            ),
            (
                "https://fromsmash.co/abc",
                None,
                "webhook",
                LinkKind::Fromsmash,
                DeliveryMode::Manual,
            ),
            (
                "https://www.swisstransfer.com/d/abc",
                None,
                "webhook",
                LinkKind::Swisstransfer,
                DeliveryMode::Manual,
            ),
            (
                "https://wetransfer.com/downloads/abc",
                None,
                "webhook",
                LinkKind::External,
                DeliveryMode::Manual,
            ),
            (
                "https://notdropbox.com/abc",
                None,
                "webhook",
                LinkKind::External,
                DeliveryMode::Manual,
            ),
            (
                "https://dropbox.com.evil.test/abc",
                None,
                "webhook",
                LinkKind::External,
                DeliveryMode::Manual,
            ),
            (
                "https://files.example.com/abc",
                None,
                "dropbox",
                LinkKind::Dropbox,
                DeliveryMode::Automatic,
            ),
            (
                "https://x.workers.dev/dropbox/bucket/obj/file",
                None,
                "webhook",
                LinkKind::Dropbox,
                DeliveryMode::Automatic,
            ),
            (
                "https://x.workers.dev/other/file",
                None,
                "webhook",
                LinkKind::External,
                DeliveryMode::Manual,
            ),
        ];
        for (url, r2, provider, kind, mode) in cases {
            let r2: Option<&str> = r2;
            let c = classify(&Link::Parsed(u(url)), r2.is_some(), provider);
            assert_eq!((c.kind, c.mode), (kind, mode), "{url}");
        }
        let c = classify(
            &Link::Parsed(u("https://fromsmash.com/abc")),
            true,
            "fromsmash",
        );
        assert_eq!(
            (c.kind, c.mode),
            (LinkKind::Fromsmash, DeliveryMode::Automatic)
        );
    }

    #[test]
    fn real_feed_spellings_normalise_to_one_key() {
        let a = normalize_url(&u(
            "https://www.dropbox.com/scl/fo/oy6vg46u1vrdhsk080zs9/ALlPIDw5bpPaOMSZRVMZVUs?amp%3Bdl=0&dl=1&rlkey=itw",
        ));
        let b = normalize_url(&u(
            "https://www.dropbox.com/scl/fo/oy6vg46u1vrdhsk080zs9/ALlPIDw5bpPaOMSZRVMZVUs?dl=1&rlkey=itw",
        ));
        assert_eq!(a, b);
        assert_eq!(
            a.as_str(),
            "https://www.dropbox.com/scl/fo/oy6vg46u1vrdhsk080zs9/ALlPIDw5bpPaOMSZRVMZVUs?dl=1&rlkey=itw"
        );
        let c = normalize_url(&u("https://www.dropbox.com/scl/fo/x/y?rlkey=KEY&dl=1"));
        let d = normalize_url(&u("https://www.dropbox.com/scl/fo/x/y?dl=1&rlkey=KEY"));
        assert_eq!(c, d);
        let e = normalize_url(&u("https://www.dropbox.com/scl/fo/x/y?rlkey=KEY&amp;dl=0"));
        assert_eq!(e, d);
        let f = normalize_url(&u("https://www.dropbox.com/scl/fo/x/y?rlkey=KEY"));
        assert_eq!(f, d);
    }

    #[test]
    fn normalisation_rules() {
        assert_eq!(
            normalize_url(&u("HTTPS://Files.Example.COM/a/b/?z=1&a=2&empty=&x#frag")).as_str(),
            "https://files.example.com/a/b?a=2&z=1"
        );
        // Non-Dropbox hosts keep their own dl parameter.
        assert_eq!(
            normalize_url(&u("https://example.com/f?dl=0")).as_str(),
            "https://example.com/f?dl=0"
        );
        assert_eq!(
            normalize_url(&u("https://example.com/")).as_str(),
            "https://example.com/"
        );
    }

    #[test]
    fn dl_is_matched_whatever_its_case() {
        let upper = normalize_url(&u("https://www.dropbox.com/scl/fo/x/y?rlkey=KEY&DL=0"));
        let lower = normalize_url(&u("https://www.dropbox.com/scl/fo/x/y?rlkey=KEY&dl=1"));
        assert_eq!(upper, lower);
    }
}

/// Properties of the dedupe key over generated Dropbox links and their real-world spellings.
#[cfg(test)]
mod properties {
    use super::normalize_url;
    use proptest::prelude::*;
    use url::Url;

    fn key(raw: &str) -> String {
        match Url::parse(raw) {
            Ok(url) => normalize_url(&url).to_string(),
            Err(e) => format!("unparsable {raw:?}: {e}"),
        }
    }

    /// A Dropbox share link: folder or file, a path id, an rlkey, maybe other parameters.
    #[derive(Debug, Clone)]
    struct Link {
        folder: bool,
        path: Vec<String>,
        rlkey: String,
        extra: Vec<(String, String)>,
    }

    fn link() -> impl Strategy<Value = Link> {
        (
            any::<bool>(),
            prop::collection::vec("[A-Za-z0-9_-]{1,12}", 1..4),
            "[a-z0-9]{4,20}",
            prop::collection::vec(("(e|st|v|x)", "[a-z0-9]{1,6}"), 0..3),
        )
            .prop_map(|(folder, path, rlkey, extra)| Link {
                folder,
                path,
                rlkey,
                extra,
            })
    }

    /// How a feed may spell one link: parameter order, `&amp;` / `amp%3B` artefacts, the `dl`
    /// parameter's case and value (or none), a fragment, the host's case, a trailing slash.
    #[derive(Debug, Clone)]
    struct Spelling {
        order_seed: usize,
        artefact: u8,
        dl: Option<(bool, &'static str)>,
        fragment: Option<String>,
        upper_host: bool,
        trailing_slash: bool,
    }

    fn spelling() -> impl Strategy<Value = Spelling> {
        (
            any::<usize>(),
            0u8..3,
            prop::option::of((any::<bool>(), prop::sample::select(vec!["0", "1"]))),
            prop::option::of("[a-z0-9]{1,8}"),
            any::<bool>(),
            any::<bool>(),
        )
            .prop_map(
                |(order_seed, artefact, dl, fragment, upper_host, trailing_slash)| Spelling {
                    order_seed,
                    artefact,
                    dl,
                    fragment,
                    upper_host,
                    trailing_slash,
                },
            )
    }

    fn spell(link: &Link, s: &Spelling) -> String {
        let mut params: Vec<String> = vec![format!("rlkey={}", link.rlkey)];
        params.extend(link.extra.iter().map(|(k, v)| format!("{k}={v}")));
        if let Some((upper, value)) = s.dl {
            params.push(format!("{}={value}", if upper { "DL" } else { "dl" }));
        }
        let n = params.len();
        params.rotate_left(s.order_seed % n);
        let mut query = String::new();
        for (i, p) in params.iter().enumerate() {
            if i > 0 {
                query.push_str(match s.artefact {
                    0 => "&",
                    1 => "&amp;",
                    _ => "&amp%3B",
                });
            }
            query.push_str(p);
        }
        let host = if s.upper_host {
            "WWW.Dropbox.COM"
        } else {
            "www.dropbox.com"
        };
        let kind = if link.folder { "scl/fo" } else { "scl/fi" };
        let slash = if s.trailing_slash { "/" } else { "" };
        let fragment = s
            .fragment
            .as_ref()
            .map(|f| format!("#{f}"))
            .unwrap_or_default();
        format!(
            "https://{host}/{kind}/{}{slash}?{query}{fragment}",
            link.path.join("/")
        )
    }

    /// The first form of the normalisation (mutating a `Url`), kept to check the text form.
    fn reference(url: &Url) -> Url {
        let mut out = url.clone();
        out.set_fragment(None);

        let dropbox = out
            .host_str()
            .is_some_and(crate::links::is_dropbox_share_host);
        let mut pairs: Vec<(String, String)> = Vec::new();
        if let Some(query) = url.query() {
            for raw in query.split('&') {
                let mut part = raw;
                // `&amp;dl=0` splits into `amp;dl=0`; double encoding gives `amp%3Bdl=0`.
                loop {
                    if let Some(rest) = super::strip_prefix_ignore_case(part, "amp;") {
                        part = rest;
                    } else if let Some(rest) = super::strip_prefix_ignore_case(part, "amp%3b") {
                        part = rest;
                    } else {
                        break;
                    }
                }
                let (key, value) = match part.bytes().position(|c| c == b'=') {
                    Some(at) => (&part[..at], &part[at + 1..]),
                    None => (part, ""),
                };
                if key.is_empty() || value.is_empty() {
                    continue;
                }
                // `DL=0` is `dl=0`: Dropbox reads the parameter whatever its case.
                if dropbox && key.eq_ignore_ascii_case("dl") {
                    continue;
                }
                let pair = (key.to_string(), value.to_string());
                if !pairs.contains(&pair) {
                    pairs.push(pair);
                }
            }
        }
        if dropbox {
            pairs.push(("dl".into(), "1".into()));
        }
        pairs.sort();
        if pairs.is_empty() {
            out.set_query(None);
        } else {
            let query = pairs
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("&");
            out.set_query(Some(&query));
        }

        let path = out.path().to_string();
        if path.len() > 1 && path.ends_with('/') {
            out.set_path(path.trim_end_matches('/'));
        }
        out
    }

    proptest! {
        #[test]
        fn the_text_form_is_the_url_form(link in link(), s in spelling(), raw in "https?://[a-zA-Z0-9.-]{1,20}(/[a-zA-Z0-9%._~-]{0,10}){0,4}/?(\\?[a-zA-Z0-9=&;%._-]{0,40})?(#[a-z]{0,5})?") {
            let spelled = Url::parse(&spell(&link, &s)).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let text = |url: &Url| super::normalized_text(&super::Link::Parsed(url.clone()));
            prop_assert_eq!(text(&spelled), reference(&spelled).to_string());
            if let Ok(url) = Url::parse(&raw) {
                prop_assert_eq!(text(&url), reference(&url).to_string());
                // The short way (plain links) gives the same key.
                if let Ok(link) = super::Link::parse(std::borrow::Cow::Borrowed(raw.as_str())) {
                    prop_assert_eq!(super::normalized_text(&link), reference(&url).to_string());
                }
            }
            if let Ok(link) = super::Link::parse(std::borrow::Cow::Owned(spell(&link, &s))) {
                prop_assert_eq!(super::normalized_text(&link), reference(&spelled).to_string());
            }
        }

        #[test]
        fn normalising_twice_is_normalising_once(link in link(), s in spelling()) {
            let once = key(&spell(&link, &s));
            prop_assert_eq!(key(&once), once);
        }

        #[test]
        fn spellings_of_one_link_share_a_key(link in link(), a in spelling(), b in spelling()) {
            prop_assert_eq!(key(&spell(&link, &a)), key(&spell(&link, &b)));
        }

        #[test]
        fn another_rlkey_or_path_is_another_key(
            link in link(),
            other_rlkey in "[a-z0-9]{4,20}",
            other_segment in "[A-Za-z0-9_-]{1,12}",
            a in spelling(),
            b in spelling(),
        ) {
            let base = key(&spell(&link, &a));
            if other_rlkey != link.rlkey {
                let mut other = link.clone();
                other.rlkey = other_rlkey;
                prop_assert_ne!(key(&spell(&other, &b)), base.clone());
            }
            let mut other = link.clone();
            let last = other.path.len() - 1;
            if other.path[last] != other_segment {
                other.path[last] = other_segment;
                prop_assert_ne!(key(&spell(&other, &b)), base);
            }
        }

        #[test]
        fn any_link_normalises_stably(raw in "https?://[a-zA-Z0-9.-]{1,20}(/[a-zA-Z0-9%._~-]{0,10}){0,4}/?(\\?[a-zA-Z0-9=&;%._-]{0,40})?(#[a-z]{0,5})?") {
            if let Ok(url) = Url::parse(&raw) {
                let once = normalize_url(&url);
                prop_assert_eq!(normalize_url(&once), once);
            }
        }
    }
}
