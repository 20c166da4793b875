//! File naming, decided in one place: sanitising any name that comes from outside
//! (feed, Content-Disposition, URL) and choosing the final name of a delivery.

use std::fmt;

use url::Url;

/// Longest name most file systems accept, in bytes.
pub const MAX_NAME_BYTES: usize = 255;

const WINDOWS_RESERVED: [&str; 22] = [
    "CON", "PRN", "AUX", "NUL", "COM1", "COM2", "COM3", "COM4", "COM5", "COM6", "COM7", "COM8",
    "COM9", "LPT1", "LPT2", "LPT3", "LPT4", "LPT5", "LPT6", "LPT7", "LPT8", "LPT9",
];

const ARCHIVE_EXTENSIONS: [&str; 8] = ["zip", "rar", "7z", "tar", "gz", "tgz", "bz2", "xz"];

/// A file name that is safe to create inside the downloads folder: one path component, no `..`,
/// no control characters, not a Windows device name, at most 255 bytes. Unicode is kept.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SafeFileName(String);

impl SafeFileName {
    /// Sanitises `raw`; `None` when nothing usable is left.
    pub fn new(raw: &str) -> Option<Self> {
        // Path separators split the name; empty, `.` and `..` parts are dropped, the rest joined.
        let parts: Vec<String> = raw
            .split(['/', '\\'])
            .map(clean_component)
            .filter(|p| !p.is_empty())
            .collect();
        let mut name = parts.join("_");
        name = name.trim_start_matches(['.', ' ']).to_string();
        name = name.trim_end_matches(['.', ' ']).to_string();
        if name.is_empty() {
            return None;
        }
        let stem = name.split('.').next().unwrap_or("").trim_end();
        if WINDOWS_RESERVED
            .iter()
            .any(|r| r.eq_ignore_ascii_case(stem))
        {
            name.insert(0, '_');
        }
        Some(Self(truncate_keeping_extension(&name, MAX_NAME_BYTES)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The extension (after the last dot), if any.
    pub fn extension(&self) -> Option<&str> {
        self.0
            .rsplit_once('.')
            .map(|(_, ext)| ext)
            .filter(|ext| !ext.is_empty())
    }

    /// `name (n).ext`, for collisions.
    pub fn numbered(&self, n: u32) -> Self {
        let suffix = format!(" ({n})");
        let (stem, ext) = match self.0.rsplit_once('.') {
            Some((stem, ext)) if !stem.is_empty() => (stem, format!(".{ext}")),
            _ => (self.0.as_str(), String::new()),
        };
        let room = MAX_NAME_BYTES.saturating_sub(suffix.len() + ext.len());
        Self(format!("{}{suffix}{ext}", truncate_bytes(stem, room)))
    }

    /// Adds `.zip` unless the name already ends with an archive extension.
    pub fn with_archive_extension(self) -> Self {
        let is_archive = self.extension().is_some_and(|ext| {
            ARCHIVE_EXTENSIONS
                .iter()
                .any(|a| a.eq_ignore_ascii_case(ext))
        });
        if is_archive {
            self
        } else {
            let base = truncate_bytes(&self.0, MAX_NAME_BYTES - 4);
            Self(format!("{base}.zip"))
        }
    }
}

impl fmt::Display for SafeFileName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn clean_component(part: &str) -> String {
    let cleaned: String = part
        .chars()
        .filter(|c| !c.is_control())
        .map(|c| match c {
            '<' | '>' | ':' | '"' | '|' | '?' | '*' => '_',
            c => c,
        })
        .collect();
    // Runs of dots collapse to one, so no `..` survives anywhere in the name.
    let mut out = String::with_capacity(cleaned.len());
    for c in cleaned.chars() {
        if c == '.' && out.ends_with('.') {
            continue;
        }
        out.push(c);
    }
    let trimmed = out.trim();
    if trimmed == "." {
        String::new()
    } else {
        trimmed.to_string()
    }
}

fn truncate_bytes(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

fn dot_or_space(c: char) -> bool {
    c == '.' || c.is_whitespace()
}

fn truncate_keeping_extension(name: &str, max: usize) -> String {
    if name.len() <= max {
        return name.to_string();
    }
    match name.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() && ext.len() <= 16 => {
            let stem = truncate_bytes(stem, max - ext.len() - 1);
            format!("{}.{ext}", stem.trim_end_matches(dot_or_space))
        }
        // The cut may expose any white space (a no-break space, say), not only ' ': trim it as
        // `clean_component` would, so that sanitising stays idempotent.
        _ => truncate_bytes(name, max)
            .trim_end_matches(dot_or_space)
            .to_string(),
    }
}

/// The last non-empty path segment of a URL, percent-decoded.
pub fn name_from_url(url: &Url) -> Option<SafeFileName> {
    let segment = url.path_segments()?.rev().find(|s| !s.is_empty())?;
    let decoded = percent_encoding::percent_decode_str(segment).decode_utf8_lossy();
    SafeFileName::new(&decoded)
}

/// The name a delivery will get, known before downloading: `original_filename` when given, else
/// the last segment of the source link (a Content-Disposition name, known only while downloading,
/// comes between the two). `archive`: the link downloads as a zip (a Dropbox folder share).
pub fn planned_name(
    original_filename: Option<&str>,
    source_url: &Url,
    archive: bool,
) -> Option<SafeFileName> {
    let name = original_filename
        .and_then(SafeFileName::new)
        .or_else(|| name_from_url(source_url))?;
    Some(if archive {
        name.with_archive_extension()
    } else {
        name
    })
}

/// The file name given by a `Content-Disposition` header: `filename*` (RFC 5987/6266,
/// UTF-8 or ISO-8859-1, percent-encoded) first, else `filename` (quoted or a token).
pub fn name_from_content_disposition(header: &str) -> Option<SafeFileName> {
    let params = disposition_params(header);
    let extended = params
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("filename*"))
        .and_then(|(_, v)| decode_rfc5987(v));
    extended.and_then(|n| SafeFileName::new(&n)).or_else(|| {
        params
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("filename"))
            .and_then(|(_, v)| SafeFileName::new(v))
    })
}

/// `key=value` parameters after the disposition type; quoted values unquoted.
fn disposition_params(header: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = header;
    // Skip the disposition type (`attachment`, `inline`).
    match rest.find(';') {
        Some(i) => rest = &rest[i + 1..],
        None => return out,
    }
    loop {
        rest = rest.trim_start_matches([' ', '\t', ';']);
        if rest.is_empty() {
            break;
        }
        let Some(eq) = rest.find('=') else { break };
        let key = rest[..eq].trim().to_string();
        rest = rest[eq + 1..].trim_start();
        let value;
        if let Some(quoted) = rest.strip_prefix('"') {
            let mut v = String::new();
            let mut chars = quoted.char_indices();
            let mut end = quoted.len();
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, n)) = chars.next() {
                            v.push(n);
                        }
                    }
                    '"' => {
                        end = i + 1;
                        break;
                    }
                    c => v.push(c),
                }
            }
            value = v;
            rest = &quoted[end.min(quoted.len())..];
        } else {
            let end = rest.find(';').unwrap_or(rest.len());
            value = rest[..end].trim().to_string();
            rest = &rest[end..];
        }
        out.push((key, value));
    }
    out
}

/// `UTF-8''na%C3%AFve.mov` -> `naïve.mov`.
fn decode_rfc5987(value: &str) -> Option<String> {
    let mut parts = value.splitn(3, '\'');
    let charset = parts.next()?.trim();
    let _language = parts.next()?;
    let encoded = parts.next()?;
    let bytes: Vec<u8> = percent_encoding::percent_decode_str(encoded).collect();
    if charset.eq_ignore_ascii_case("utf-8") {
        String::from_utf8(bytes).ok()
    } else if charset.eq_ignore_ascii_case("iso-8859-1") {
        Some(bytes.into_iter().map(char::from).collect())
    } else {
        None
    }
}

/// The final name of a download, in the spec's order: the forced name (`original_filename`,
/// `--name`), else the `Content-Disposition` name, else the last segment of `link`, else
/// `fallback` (`download-<id>`). A Dropbox folder link downloads as a zip.
pub fn download_name(
    forced: Option<&str>,
    content_disposition: Option<&str>,
    link: &Url,
    fallback: &str,
    archive: bool,
) -> SafeFileName {
    let name = forced
        .and_then(SafeFileName::new)
        .or_else(|| content_disposition.and_then(name_from_content_disposition))
        .or_else(|| name_from_url(link))
        .or_else(|| SafeFileName::new(fallback))
        .unwrap_or_else(|| SafeFileName("download".into()));
    if archive {
        name.with_archive_extension()
    } else {
        name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clean(raw: &str) -> Option<String> {
        SafeFileName::new(raw).map(|n| n.0)
    }

    #[test]
    fn sanitising_table() {
        assert_eq!(clean("61 Camille.zip").as_deref(), Some("61 Camille.zip"));
        assert_eq!(clean("../../etc/passwd").as_deref(), Some("etc_passwd"));
        assert_eq!(clean("..\\..\\boot.ini").as_deref(), Some("boot.ini"));
        assert_eq!(clean("CON.txt").as_deref(), Some("_CON.txt"));
        assert_eq!(clean("lpt1").as_deref(), Some("_lpt1"));
        assert_eq!(clean("a\u{0000}b").as_deref(), Some("ab"));
        assert_eq!(clean("tab\there\n.mov").as_deref(), Some("tabhere.mov"));
        assert_eq!(clean("trailing. . ").as_deref(), Some("trailing"));
        assert_eq!(
            clean("Rushes été – J1.mov").as_deref(),
            Some("Rushes été – J1.mov")
        );
        assert_eq!(clean("what?.mov").as_deref(), Some("what_.mov"));
        assert_eq!(clean("a..b.mov").as_deref(), Some("a.b.mov"));
        assert_eq!(clean(".hidden").as_deref(), Some("hidden"));
        assert_eq!(clean(""), None);
        assert_eq!(clean("../.."), None);
        assert_eq!(clean("   "), None);
    }

    #[test]
    fn long_names_are_cut_to_255_bytes_keeping_the_extension() {
        let long = format!("{}.mov", "é".repeat(150));
        let cut = clean(&long).unwrap_or_default();
        assert!(cut.len() <= 255, "{}", cut.len());
        assert!(cut.ends_with(".mov"));
        let plain = "x".repeat(300);
        assert_eq!(clean(&plain).map(|n| n.len()), Some(255));
    }

    #[test]
    fn numbering_and_archives() -> Result<(), String> {
        let name = SafeFileName::new("61 Camille.zip").ok_or("name")?;
        assert_eq!(name.numbered(1).as_str(), "61 Camille (1).zip");
        let bare = SafeFileName::new("README").ok_or("name")?;
        assert_eq!(bare.numbered(2).as_str(), "README (2)");
        let folder = SafeFileName::new("61 Camille").ok_or("name")?;
        assert_eq!(folder.with_archive_extension().as_str(), "61 Camille.zip");
        let zip = SafeFileName::new("61 Camille.ZIP").ok_or("name")?;
        assert_eq!(zip.with_archive_extension().as_str(), "61 Camille.ZIP");
        Ok(())
    }

    #[test]
    fn planned_names() -> Result<(), url::ParseError> {
        let folder = Url::parse("https://www.dropbox.com/scl/fo/abc/def?dl=1")?;
        assert_eq!(
            planned_name(Some("61 Camille"), &folder, true).map(|n| n.0),
            Some("61 Camille.zip".into())
        );
        let file = Url::parse("https://cdn.example.com/path/Clip%20A.mov?sig=x")?;
        assert_eq!(
            planned_name(None, &file, false).map(|n| n.0),
            Some("Clip A.mov".into())
        );
        let bare = Url::parse("https://cdn.example.com/")?;
        assert_eq!(planned_name(None, &bare, false), None);
        Ok(())
    }

    #[test]
    fn content_disposition_names() {
        let cd = |h: &str| name_from_content_disposition(h).map(|n| n.0);
        assert_eq!(
            cd("attachment; filename=\"a.mov\"; filename*=UTF-8''na%C3%AFve%20clip.mov").as_deref(),
            Some("naïve clip.mov")
        );
        assert_eq!(
            cd("attachment; filename=\"Clip \\\"B\\\".mov\"").as_deref(),
            Some("Clip _B_.mov")
        );
        assert_eq!(
            cd("attachment; filename=plain.zip").as_deref(),
            Some("plain.zip")
        );
        assert_eq!(
            cd("attachment; filename*=iso-8859-1'fr'caf%E9.mov").as_deref(),
            Some("café.mov")
        );
        assert_eq!(
            cd("attachment; filename=\"../../etc/passwd\"").as_deref(),
            Some("etc_passwd")
        );
        assert_eq!(cd("inline"), None);
    }

    #[test]
    fn download_name_order() -> Result<(), url::ParseError> {
        let link = Url::parse("https://cdn.example.com/x/segment.mov")?;
        let cd = Some("attachment; filename=\"from-header.mov\"");
        assert_eq!(
            download_name(Some("61 Camille.zip"), cd, &link, "download-1", false).0,
            "61 Camille.zip"
        );
        assert_eq!(
            download_name(None, cd, &link, "download-1", false).0,
            "from-header.mov"
        );
        assert_eq!(
            download_name(None, None, &link, "download-1", false).0,
            "segment.mov"
        );
        let bare = Url::parse("https://cdn.example.com/")?;
        assert_eq!(
            download_name(None, None, &bare, "download-7", false).0,
            "download-7"
        );
        let folder = Url::parse("https://www.dropbox.com/scl/fo/abc/def?dl=1")?;
        assert_eq!(
            download_name(
                None,
                Some("attachment; filename=\"Rushes\""),
                &folder,
                "d",
                true
            )
            .0,
            "Rushes.zip"
        );
        Ok(())
    }
}
