//! Versions of one asset: a name's version mark (` v2`, `_v2`, `-V03`, `v2` right before the
//! extension, any case) and the version stack a new version goes into on Frame.io: the first
//! time a stack of [older, newer] is made, later versions are moved into it.

use super::client::{Client, ClientError};
use crate::store::{Send, Store, StoreError};

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

/// What stacking did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stacked {
    /// A new stack of [older, newer].
    Created { stack_id: String, older: String },
    /// Moved into the asset's stack.
    Moved { stack_id: String },
    /// No earlier version.
    Alone,
}

/// Puts the just-completed `send` on top of its earlier version: `version_of` (a file id) when
/// given, else the newest complete earlier send of the same asset in the same folder.
pub async fn stack(
    client: &Client,
    store: &Store,
    account: &str,
    send: &Send,
) -> Result<Stacked, StackError> {
    let Some(newer) = send.file_id.as_deref() else {
        return Ok(Stacked::Alone);
    };
    let older: Option<(String, Option<String>)> = match &send.version_of {
        Some(file_id) => {
            let known = store.send_by_file(file_id).await?;
            Some((file_id.clone(), known.and_then(|s| s.stack_id)))
        }
        None => store
            .previous_version(&send.folder_id, &send.asset_key, send.version, &send.id)
            .await?
            .and_then(|s| s.file_id.clone().map(|f| (f, s.stack_id))),
    };
    let Some((older, older_stack)) = older else {
        return Ok(Stacked::Alone);
    };
    let stack_id = match older_stack {
        Some(s) => Some(s),
        None if send.version_of.is_none() => {
            store.asset_stack(&send.folder_id, &send.asset_key).await?
        }
        None => None,
    };
    match stack_id {
        Some(stack_id) => {
            client.move_file(account, newer, &stack_id).await?;
            store.set_send_stack(&[newer], &stack_id).await?;
            tracing::info!(file = %newer, stack = %stack_id, "Frame.io: new version moved into its version stack");
            Ok(Stacked::Moved { stack_id })
        }
        None => {
            let stack_id = client
                .create_version_stack(account, &send.folder_id, &[&older, newer])
                .await?;
            store.set_send_stack(&[&older, newer], &stack_id).await?;
            tracing::info!(older = %older, newer = %newer, stack = %stack_id, "Frame.io: version stack made");
            Ok(Stacked::Created { stack_id, older })
        }
    }
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
