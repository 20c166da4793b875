//! The labelled comment corpus in tests/data: the project's own table (`review_comments.tsv`)
//! and the batches written outside the project (`blind/NN-slug.json`, each with its writer's
//! persona in `NN-slug.meta.txt`). The trainer, the floor test and the benchmark read it.

use std::path::{Path, PathBuf};

use super::eval::{Labelled, SetError, parse_set};
use crate::domain::Verdict;

/// One writer's comments.
#[derive(Debug, Clone)]
pub struct Batch {
    /// `home` for the project's table, else the batch file's stem.
    pub name: String,
    pub persona: String,
    pub items: Vec<Labelled>,
}

#[derive(Debug, thiserror::Error)]
pub enum CorpusError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Set { path: PathBuf, source: SetError },
    #[error("{path} line {line}: {reason}")]
    Table {
        path: PathBuf,
        line: usize,
        reason: String,
    },
}

fn read(path: &Path) -> Result<String, CorpusError> {
    std::fs::read_to_string(path).map_err(|source| CorpusError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// The project's table: `expected<TAB>language<TAB>comment`, `none` for no decision.
pub fn parse_table(raw: &str, path: &Path) -> Result<Vec<Labelled>, CorpusError> {
    let mut out = Vec::new();
    for (n, line) in raw.lines().enumerate() {
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = |reason: String| CorpusError::Table {
            path: path.to_path_buf(),
            line: n + 1,
            reason,
        };
        let mut cols = line.splitn(3, '\t');
        let (Some(expected), Some(_lang), Some(text)) = (cols.next(), cols.next(), cols.next())
        else {
            return Err(bad("expected 3 tab-separated columns".into()));
        };
        let expected = match expected {
            "none" => None,
            other => {
                Some(Verdict::parse(other).ok_or_else(|| bad(format!("bad label {other:?}")))?)
            }
        };
        out.push(Labelled {
            text: text.to_string(),
            expected,
        });
    }
    Ok(out)
}

/// Every batch under `dir` (tests/data): the table first, then the blind batches by name.
pub fn load(dir: &Path) -> Result<Vec<Batch>, CorpusError> {
    let table = dir.join("review_comments.tsv");
    let mut out = vec![Batch {
        name: "home".into(),
        persona: "the rushes project's own table".into(),
        items: parse_table(&read(&table)?, &table)?,
    }];
    let blind = dir.join("blind");
    let mut files: Vec<PathBuf> = match std::fs::read_dir(&blind) {
        Ok(entries) => entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(source) => {
            return Err(CorpusError::Read {
                path: blind,
                source,
            });
        }
    };
    files.sort();
    for path in files {
        let items = parse_set(&read(&path)?).map_err(|source| CorpusError::Set {
            path: path.clone(),
            source,
        })?;
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let persona = read(&path.with_extension("meta.txt"))
            .map(|p| p.split_whitespace().collect::<Vec<_>>().join(" "))
            .unwrap_or_default();
        out.push(Batch {
            name,
            persona,
            items,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_are_checked() {
        let p = Path::new("t.tsv");
        let ok = parse_table("# c\napproved\tfr\tok\nnone\ten\tthanks\n", p);
        assert!(ok.is_ok_and(|v| v.len() == 2 && v[1].expected.is_none()));
        assert!(matches!(
            parse_table("maybe\tfr\tx\n", p),
            Err(CorpusError::Table { line: 1, .. })
        ));
        assert!(parse_table("approved only\n", p).is_err());
    }
}
