//! Versions of one asset: a name's version mark (` v2`, `_v2`, `-V03`, `v2` right before the
//! extension, any case) and the version stack a new version goes into on Frame.io: the first
//! time a stack of [older, newer] is made, later versions are moved into it.

use std::time::Duration;

use super::client::{Client, ClientError};
use crate::store::{Send, Store, StoreError, send_state};

/// A file name seen as a version of an asset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versioned {
    /// The name without its version mark, lowercased: versions of one asset share it.
    pub asset_key: String,
    /// The mark's number; 1 for a name without a mark.
    pub version: i64,
    /// The name had a mark.
    pub marked: bool,
}

/// Reads the version mark of `name` (the part before the extension ends with `v` and digits,
/// after a space, `_`, `-`, `.` or nothing).
pub fn split(name: &str) -> Versioned {
    let (stem, ext) = match name.rfind('.') {
        Some(dot) if dot > 0 => (&name[..dot], &name[dot..]),
        _ => (name, ""),
    };
    let digits = stem.chars().rev().take_while(char::is_ascii_digit).count();
    let before_digits = &stem[..stem.len() - digits];
    let marked =
        digits > 0 && digits <= 6 && before_digits.ends_with(['v', 'V']) && before_digits.len() > 1;
    if !marked {
        return Versioned {
            asset_key: name.to_lowercase(),
            version: 1,
            marked: false,
        };
    }
    let base = before_digits[..before_digits.len() - 1].trim_end_matches([' ', '_', '-', '.']);
    let version = stem[stem.len() - digits..].parse().unwrap_or(1);
    if base.is_empty() {
        return Versioned {
            asset_key: name.to_lowercase(),
            version: 1,
            marked: false,
        };
    }
    Versioned {
        asset_key: format!("{base}{ext}").to_lowercase(),
        version,
        marked: true,
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StackError {
    #[error(transparent)]
    Api(#[from] ClientError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What stacking did for one send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stacked {
    /// A new stack of [older, newer].
    Created { stack_id: String, older: String },
    /// Moved into the asset's stack.
    Moved { stack_id: String },
    /// An earlier version is still being sent: it stacks them both, in order, once it is complete.
    Waiting { version: i64 },
    /// No other version (or the stack could not be arranged: see the log).
    Alone,
}

/// How long one process may hold an asset's turn.
const TURN_LEASE: Duration = Duration::from_secs(60);
/// Longest wait for the turn before giving up (the next version to complete arranges again).
const TURN_WAIT: Duration = Duration::from_secs(90);
/// Most versions of one asset arranged.
const MAX_VERSIONS: i64 = 1000;

/// Puts the just-completed `send` in its asset's version stack. With `version_of` (a file id)
/// it goes on top of that file. Otherwise every complete version of the asset goes into one
/// stack in version order, whatever order they completed in: the first stack is made of the
/// two oldest, later ones are moved in; a version waits (unstacked) while an earlier version
/// is still being sent, and that one stacks both when it completes. One process at a time
/// arranges an asset (`holder` names this one).
pub async fn stack(
    client: &Client,
    store: &Store,
    account: &str,
    send: &Send,
    holder: &str,
) -> Result<Stacked, StackError> {
    let Some(newer) = send.file_id.as_deref() else {
        return Ok(Stacked::Alone);
    };
    if let Some(older) = &send.version_of {
        return stack_on(client, store, account, send, newer, older).await;
    }
    let holder = format!("{holder}/{}", send.id);
    let deadline = tokio::time::Instant::now() + TURN_WAIT;
    while !store
        .take_stack_turn(&send.folder_id, &send.asset_key, &holder, TURN_LEASE)
        .await?
    {
        if tokio::time::Instant::now() >= deadline {
            tracing::error!(asset = %send.asset_key, "Frame.io: another process kept the version stack of this asset too long; the next version arranges it");
            return Ok(Stacked::Alone);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let arranged = arrange(client, store, account, send).await;
    store
        .release_stack_turn(&send.folder_id, &send.asset_key, &holder)
        .await?;
    arranged
}

/// `--version-of`: on top of a file given by hand (into its stack when rushes made one).
async fn stack_on(
    client: &Client,
    store: &Store,
    account: &str,
    send: &Send,
    newer: &str,
    older: &str,
) -> Result<Stacked, StackError> {
    let known = store.send_by_file(older).await?;
    match known.and_then(|s| s.stack_id) {
        Some(stack_id) => {
            client.move_file(account, newer, &stack_id).await?;
            store.set_send_stack(&[newer], &stack_id).await?;
            Ok(Stacked::Moved { stack_id })
        }
        None => {
            let stack_id = make_stack(client, account, &send.folder_id, older, newer).await?;
            store.set_send_stack(&[older, newer], &stack_id).await?;
            tracing::info!(older = %older, newer = %newer, stack = %stack_id, "Frame.io: version stack made");
            Ok(Stacked::Created {
                stack_id,
                older: older.to_string(),
            })
        }
    }
}

/// Makes the stack of [older, newer]. Its create is not repeated blindly: when its answer is
/// lost, the newer file's parent says whether the stack was made (then it is that parent);
/// only a file still in the folder is stacked again.
async fn make_stack(
    client: &Client,
    account: &str,
    folder: &str,
    older: &str,
    newer: &str,
) -> Result<String, StackError> {
    let mut tries = 0;
    loop {
        tries += 1;
        let error = match client
            .create_version_stack(account, folder, &[older, newer])
            .await
        {
            Ok(id) => return Ok(id),
            Err(e @ ClientError::Unknown { .. }) => e,
            Err(e) => return Err(e.into()),
        };
        let file = client.file(account, newer).await?;
        let parent = file.get("parent_id").and_then(|p| p.as_str());
        if let Some(stack) = parent.filter(|p| *p != folder) {
            tracing::warn!(newer = %newer, stack = %stack, error = %error, "Frame.io: the version stack's answer was lost; the file is in a stack: that one is kept");
            return Ok(stack.to_string());
        }
        if tries >= 2 {
            return Err(error.into());
        }
        tracing::warn!(newer = %newer, error = %error, "Frame.io: the version stack's answer was lost and no stack holds the file; making it again");
    }
}

/// The asset's versions into one stack in version order (the caller holds the asset's turn).
async fn arrange(
    client: &Client,
    store: &Store,
    account: &str,
    send: &Send,
) -> Result<Stacked, StackError> {
    let versions = store
        .asset_versions(&send.folder_id, &send.asset_key, MAX_VERSIONS)
        .await?;
    let mut stack_id = versions.iter().find_map(|s| s.stack_id.clone());
    let mut top = versions
        .iter()
        .filter(|s| s.stack_id.is_some())
        .map(|s| s.version)
        .max();
    let mut outcome = match versions.iter().find(|s| s.id == send.id) {
        Some(Send {
            stack_id: Some(id), ..
        }) => Stacked::Moved {
            stack_id: id.clone(),
        },
        _ => Stacked::Alone,
    };
    // Complete versions in order, up to the first one still being sent.
    let mut older: Option<&Send> = None;
    for s in &versions {
        let Some(file) = s
            .file_id
            .as_deref()
            .filter(|_| s.state == send_state::COMPLETE)
        else {
            if s.state == send_state::FAILED {
                continue;
            }
            if s.version < send.version && outcome == Stacked::Alone {
                outcome = Stacked::Waiting { version: s.version };
            }
            break;
        };
        if s.stack_id.is_some() {
            continue;
        }
        match (&stack_id, older) {
            (None, None) => older = Some(s),
            (None, Some(first)) => {
                let first_file = first.file_id.as_deref().unwrap_or_default();
                let id = make_stack(client, account, &send.folder_id, first_file, file).await?;
                store.set_send_stack(&[first_file, file], &id).await?;
                tracing::info!(older = %first_file, newer = %file, stack = %id, "Frame.io: version stack made");
                if s.id == send.id || first.id == send.id {
                    outcome = Stacked::Created {
                        stack_id: id.clone(),
                        older: first_file.to_string(),
                    };
                }
                stack_id = Some(id);
                top = Some(s.version);
            }
            (Some(id), _) if top.is_some_and(|t| s.version < t) => {
                // Moving it in would put it on top of newer versions.
                tracing::warn!(file = %file, version = s.version, stack = %id, "Frame.io: an earlier version completed after newer ones were stacked; left beside the stack to keep the version order");
            }
            (Some(id), _) => {
                client.move_file(account, file, id).await?;
                store.set_send_stack(&[file], id).await?;
                tracing::info!(file = %file, stack = %id, "Frame.io: new version moved into its version stack");
                if s.id == send.id {
                    outcome = Stacked::Moved {
                        stack_id: id.clone(),
                    };
                }
                top = Some(s.version);
            }
        }
    }
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> (String, i64) {
        let v = split(name);
        (v.asset_key, v.version)
    }

    #[test]
    fn version_marks() {
        assert_eq!(key("Promo.mov"), ("promo.mov".into(), 1));
        assert_eq!(key("Promo v2.mov"), ("promo.mov".into(), 2));
        assert_eq!(key("Promo_v2.mov"), ("promo.mov".into(), 2));
        assert_eq!(key("promo-V03.MOV"), ("promo.mov".into(), 3));
        assert_eq!(key("Promov4.mov"), ("promo.mov".into(), 4));
        assert_eq!(key("Promo V12"), ("promo".into(), 12));
        // Not a mark: digits without v, v without digits, a mark not before the extension.
        assert_eq!(key("Promo 2.mov"), ("promo 2.mov".into(), 1));
        assert_eq!(key("Promo v.mov"), ("promo v.mov".into(), 1));
        assert_eq!(key("Promo v2 final.mov"), ("promo v2 final.mov".into(), 1));
        assert_eq!(key("v2.mov"), ("v2.mov".into(), 1));
        assert!(split("Promo_v2.mov").marked);
        assert!(!split("Promo.mov").marked);
    }
}
