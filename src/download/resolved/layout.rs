//! Where a resolved delivery's files land, and how a file that already landed is recognised.
//!
//! - **One folder per delivery**: `<name>`, else `<name> (2)`, … : the first that is new, or
//!   already this delivery's. A folder says whose it is in its `.rushes-transfer` file (the
//!   owner: the delivery's id and link, or the CLI's link); two deliveries whose names come out
//!   the same never share a folder, so one never sees (or overwrites) the other's files or
//!   `SHA256SUMS`.
//! - **A file is adopted on a verified identity only**: `.rushes-transfer` gets one line per file
//!   that landed (the host's file id, size, SHA-256 and where it is), written before the rename;
//!   after a restart a file counts as landed only if its line is there and its bytes still hash
//!   to the recorded SHA-256. A file of the right size is not enough.
//! - **Every file has its own name**, planned before anything is fetched: two files of the
//!   transfer whose sanitised paths are the same (case ignored, as on macOS and Windows disks), or
//!   a file named like `SHA256SUMS`, get `name (2).ext`, … .

use std::collections::{HashMap, HashSet};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

use sha2::Digest as _;

use crate::download::resolve::RemoteFile;
use crate::naming::SafeFileName;

/// The folder's ownership and landed-files record.
pub const MARKER: &str = ".rushes-transfer";
/// The checksums of the delivery's files, written last.
pub const SUMS: &str = "SHA256SUMS";
const HEADER: &str = "rushes-transfer 1";
/// `<name> (2)` … `<name> (N)`: past this, the delivery fails rather than looping.
const MAX_FOLDERS: u32 = 10_000;
/// A record larger than this is not ours (one line per file, at most 10,000 files).
const MAX_MARKER: u64 = 8 << 20;

/// A file recorded as landed.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Landed {
    size: u64,
    sha256: String,
    rel: String,
}

/// A delivery's own folder.
#[derive(Debug)]
pub struct Folder {
    pub dir: PathBuf,
    landed: HashMap<String, Landed>,
}

impl Folder {
    /// Claims the folder of `owner` under `parent`: `base`, `base (2)`, … , the first that does
    /// not exist (created now, with the marker) or whose marker names `owner`. A folder without
    /// a marker is someone else's (a person's, another tool's), except one that holds `hint`,
    /// the partial file the store says this delivery was writing (a folder made before markers).
    pub fn claim(
        parent: &Path,
        base: &SafeFileName,
        owner: &str,
        hint: Option<&Path>,
    ) -> io::Result<Self> {
        for n in 1..=MAX_FOLDERS {
            let name = if n == 1 {
                base.clone()
            } else {
                base.numbered(n)
            };
            let dir = parent.join(name.as_str());
            match std::fs::create_dir(&dir) {
                Ok(()) => {
                    write_marker(&dir, owner)?;
                    return Ok(Self {
                        dir,
                        landed: HashMap::new(),
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e),
            }
            if !dir.symlink_metadata().is_ok_and(|m| m.is_dir()) {
                continue; // a file (or a link) of that name
            }
            match read_marker(&dir) {
                Some((who, landed)) if who == owner => return Ok(Self { dir, landed }),
                Some(_) => continue,
                None if !dir.join(MARKER).exists()
                    && hint.is_some_and(|h| h.starts_with(&dir) && h.is_file()) =>
                {
                    write_marker(&dir, owner)?;
                    return Ok(Self {
                        dir,
                        landed: HashMap::new(),
                    });
                }
                None => continue,
            }
        }
        Err(io::Error::other(format!(
            "{MAX_FOLDERS} folders named like {base} already exist in {}",
            parent.display()
        )))
    }

    /// The file recorded as landed for `key`, when it is still there with its recorded size
    /// and SHA-256: (path, SHA-256, size).
    pub async fn landed(&self, key: &str) -> Option<(PathBuf, String, u64)> {
        let entry = self.landed.get(key)?.clone();
        let path = self.dir.join(&entry.rel);
        if std::fs::metadata(&path).ok()?.len() != entry.size {
            return None;
        }
        let check = path.clone();
        let actual = tokio::task::spawn_blocking(move || sha256_of(&check))
            .await
            .ok()?
            .ok()?;
        (actual == entry.sha256).then_some((path, actual, entry.size))
    }

    /// Records that `key` lands at `path` with these bytes (before the rename, synced).
    pub fn record(&mut self, key: &str, path: &Path, sha256: &str, size: u64) -> io::Result<()> {
        let rel = path
            .strip_prefix(&self.dir)
            .map_err(|_| io::Error::other("a file outside the delivery's folder"))?
            .to_string_lossy()
            .into_owned();
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(self.dir.join(MARKER))?;
        writeln!(file, "landed {key} {size} {sha256} {rel}")?;
        file.sync_all()?;
        self.landed.insert(
            key.to_string(),
            Landed {
                size,
                sha256: sha256.to_string(),
                rel,
            },
        );
        Ok(())
    }

    /// Writes `SHA256SUMS` (replacing only this delivery's own, through a rename); returns the
    /// SHA-256 of its text.
    pub fn write_sums(&self, text: &str) -> io::Result<String> {
        let tmp = self.dir.join(format!("{MARKER}.sums"));
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&tmp, self.dir.join(SUMS))?;
        Ok(hex::encode(sha2::Sha256::digest(text.as_bytes())))
    }
}

/// An owner key that names no secret: `what` and a digest of `identity`.
pub fn owner_key(what: &str, identity: &str) -> String {
    let digest = hex::encode(sha2::Sha256::digest(identity.as_bytes()));
    format!("{what} {}", &digest[..32])
}

/// A file's key in the record: a digest of the host's file id (any characters, any length).
pub fn file_key(file: &RemoteFile) -> String {
    let digest = hex::encode(sha2::Sha256::digest(file.id.as_bytes()));
    digest[..32].to_string()
}

fn write_marker(dir: &Path, owner: &str) -> io::Result<()> {
    let tmp = dir.join(format!("{MARKER}.tmp"));
    let mut file = std::fs::File::create(&tmp)?;
    writeln!(file, "{HEADER}\nowner {owner}")?;
    file.sync_all()?;
    std::fs::rename(&tmp, dir.join(MARKER))
}

/// (owner, landed files) of a folder's marker; `None` when there is none or it is not one.
fn read_marker(dir: &Path) -> Option<(String, HashMap<String, Landed>)> {
    let path = dir.join(MARKER);
    if std::fs::symlink_metadata(&path).ok()?.len() > MAX_MARKER {
        return None;
    }
    let text = std::fs::read_to_string(path).ok()?;
    let mut lines = text.lines();
    if lines.next()? != HEADER {
        return None;
    }
    let owner = lines.next()?.strip_prefix("owner ")?.to_string();
    let mut landed = HashMap::new();
    for line in lines {
        // A torn last line (a crash while appending) is skipped: that file is fetched again.
        let mut words = line.splitn(5, ' ');
        let (Some("landed"), Some(key), Some(size), Some(sha), Some(rel)) = (
            words.next(),
            words.next(),
            words.next(),
            words.next(),
            words.next(),
        ) else {
            continue;
        };
        let (Ok(size), true) = (size.parse(), sha.len() == 64) else {
            continue;
        };
        if rel.split('/').any(|p| p.is_empty() || p == "..") {
            continue;
        }
        landed.insert(
            key.to_string(),
            Landed {
                size,
                sha256: sha.to_string(),
                rel: rel.to_string(),
            },
        );
    }
    Some((owner, landed))
}

fn sha256_of(path: &Path) -> io::Result<String> {
    use std::io::Read as _;
    let mut file = std::fs::File::open(path)?;
    let mut hasher = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// One file of the transfer with its planned place.
#[derive(Debug, Clone)]
pub struct Planned {
    /// The folder it goes into (the delivery's, or a subfolder of it).
    pub dir: PathBuf,
    pub name: SafeFileName,
    /// Its key in the record (`file_key`).
    pub key: String,
}

/// Plans every file's place in `root`: subfolders from its path (each part sanitised, empty
/// ones dropped), a name from its own name, numbered when an earlier file, a subfolder or the
/// record files took it (case ignored).
pub fn plan(root: &Path, files: &[RemoteFile]) -> Vec<Planned> {
    let folders: Vec<Vec<SafeFileName>> = files
        .iter()
        .map(|f| {
            f.path
                .iter()
                .flat_map(|p| p.split(['/', '\\']))
                .filter_map(SafeFileName::new)
                .collect()
        })
        .collect();
    let fold = |parts: &[&str]| parts.join("/").to_lowercase();
    let mut taken: HashSet<String> = [SUMS, MARKER].iter().map(|n| n.to_lowercase()).collect();
    for parts in &folders {
        for end in 1..=parts.len() {
            let names: Vec<&str> = parts[..end].iter().map(SafeFileName::as_str).collect();
            taken.insert(fold(&names));
        }
    }
    files
        .iter()
        .zip(&folders)
        .enumerate()
        .map(|(i, (file, parts))| {
            let base = crate::naming::download_name(
                Some(&file.name),
                None,
                &file.url,
                &format!("file-{}", i + 1),
                false,
            );
            let folder: Vec<&str> = parts.iter().map(SafeFileName::as_str).collect();
            let mut name = base.clone();
            let mut n = 1;
            loop {
                let mut names = folder.clone();
                names.push(name.as_str());
                if taken.insert(fold(&names)) {
                    break;
                }
                n += 1;
                name = base.numbered(n);
            }
            let dir = parts
                .iter()
                .fold(root.to_path_buf(), |d, p| d.join(p.as_str()));
            Planned {
                dir,
                name,
                key: file_key(file),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(id: &str, name: &str, path: Option<&str>) -> RemoteFile {
        RemoteFile {
            id: id.into(),
            url: url::Url::parse("https://dl.example.test/f").expect("url"),
            name: name.into(),
            size: None,
            path: path.map(str::to_string),
            headers: Vec::new(),
        }
    }

    #[test]
    fn every_file_gets_its_own_place() {
        let root = Path::new("/d");
        let files = [
            file("1", "clip.mov", None),
            file("2", "clip.mov", Some("")),
            file("3", "clip.mov", Some("sub")),
            file("4", "clip.mov", Some("sub/")),
            file("5", "CLIP.MOV", None),
            file("6", "SHA256SUMS", None),
            file("7", "sub", None),
        ];
        let shown: Vec<String> = plan(root, &files)
            .iter()
            .map(|p| p.dir.join(p.name.as_str()).display().to_string())
            .collect();
        assert_eq!(
            shown,
            [
                "/d/clip.mov",
                "/d/clip (2).mov",
                "/d/sub/clip.mov",
                "/d/sub/clip (2).mov",
                "/d/CLIP (3).MOV",
                "/d/SHA256SUMS (2)",
                "/d/sub (2)",
            ]
        );
    }

    #[test]
    fn two_owners_never_share_a_folder() -> io::Result<()> {
        let parent = tempfile::tempdir()?;
        let base = SafeFileName::new("Clips").expect("name");
        let a = Folder::claim(parent.path(), &base, "delivery a", None)?;
        let b = Folder::claim(parent.path(), &base, "delivery b", None)?;
        assert_ne!(a.dir, b.dir);
        assert_eq!(b.dir, parent.path().join("Clips (2)"));
        let again = Folder::claim(parent.path(), &base, "delivery b", None)?;
        assert_eq!(again.dir, b.dir, "the same owner finds its folder again");
        std::fs::create_dir(parent.path().join("Other"))?;
        let other = SafeFileName::new("Other").expect("name");
        let c = Folder::claim(parent.path(), &other, "delivery c", None)?;
        assert_eq!(c.dir, parent.path().join("Other (2)"), "an unmarked folder");
        Ok(())
    }

    #[tokio::test]
    async fn a_file_is_adopted_only_with_its_recorded_sha256() -> io::Result<()> {
        let parent = tempfile::tempdir()?;
        let base = SafeFileName::new("T").expect("name");
        let mut folder = Folder::claim(parent.path(), &base, "delivery x", None)?;
        let path = folder.dir.join("a.mov");
        std::fs::write(&path, b"first version")?;
        let sha = sha256_of(&path)?;
        folder.record("k1", &path, &sha, 13)?;
        let again = Folder::claim(parent.path(), &base, "delivery x", None)?;
        assert_eq!(again.landed("k1").await, Some((path.clone(), sha, 13)));
        assert_eq!(again.landed("k2").await, None, "never recorded");
        std::fs::write(&path, b"other version")?; // same size, other bytes
        assert_eq!(again.landed("k1").await, None);
        Ok(())
    }
}
