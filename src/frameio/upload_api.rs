//! The Frame.io v4 calls of an upload: `local_upload` (a placeholder file and its presigned part
//! URLs), the upload status, deleting a half-made file, version stacks and moving a file into one.

use reqwest::Method;
use serde::Deserialize;
use serde_json::{Value, json};

use super::client::{Client, ClientError, Replay};

/// One presigned part URL as `local_upload` gives it (`size` is not trusted: parts are cut evenly).
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct UploadUrl {
    pub url: String,
    #[serde(default)]
    pub size: Option<u64>,
}

/// A file just made by `local_upload`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct CreatedFile {
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub media_type: Option<String>,
    #[serde(default)]
    pub view_url: Option<String>,
    #[serde(default)]
    pub upload_urls: Vec<UploadUrl>,
}

/// One child of a folder as `…/folders/{id}/children` lists it.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Child {
    pub id: String,
    /// `file`, `folder` or `version_stack`.
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub file_size: Option<u64>,
    #[serde(default)]
    pub created_at: Option<String>,
}

/// What `GET …/files/{id}/status` (and the file's own `status`) say of an upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UploadProgress {
    /// Frame.io has every byte.
    Complete,
    /// Not yet.
    Pending,
    /// Frame.io says the upload failed.
    Failed,
}

impl Client {
    /// `POST /v4/accounts/{a}/folders/{folder}/files/local_upload` `{"data":{"name","file_size"}}`.
    pub async fn create_local_upload(
        &self,
        account: &str,
        folder: &str,
        name: &str,
        file_size: u64,
    ) -> Result<CreatedFile, ClientError> {
        let url = self.url(
            &[
                "v4",
                "accounts",
                account,
                "folders",
                folder,
                "files",
                "local_upload",
            ],
            &[],
        );
        let path = url.path().to_string();
        let body = json!({ "data": { "name": name, "file_size": file_size } });
        // Not idempotent: a lost answer may have made a file (the caller looks for it).
        let answer = self
            .send_as(Method::POST, url, Some(&body), Replay::Once)
            .await?;
        // A success the answer of which cannot be read: the file exists, its URLs are unknown.
        let lost = |message: String| ClientError::Unknown {
            path: path.clone(),
            last: message,
            server_error: false,
        };
        let file: CreatedFile =
            Self::decode(&path, answer.get("data").cloned().unwrap_or(Value::Null))
                .map_err(|e| lost(e.to_string()))?;
        if file.upload_urls.is_empty() && file_size > 0 {
            return Err(lost("no upload_urls in the answer".into()));
        }
        Ok(file)
    }

    /// Whether Frame.io has the whole file: `GET …/files/{id}/status` (`upload_complete`), else
    /// the file's `status` (`created` → `uploaded` → `transcoded`).
    pub async fn upload_progress(
        &self,
        account: &str,
        file_id: &str,
    ) -> Result<UploadProgress, ClientError> {
        let url = self.url(
            &["v4", "accounts", account, "files", file_id, "status"],
            &[],
        );
        let answer = self.send(Method::GET, url, None).await?;
        let data = answer.get("data").unwrap_or(&Value::Null);
        if data.get("upload_failed").and_then(Value::as_bool) == Some(true) {
            return Ok(UploadProgress::Failed);
        }
        if data.get("upload_complete").and_then(Value::as_bool) == Some(true) {
            return Ok(UploadProgress::Complete);
        }
        let file = self.file(account, file_id).await?;
        Ok(progress_of_status(
            file.get("status").and_then(Value::as_str).unwrap_or(""),
        ))
    }

    /// Every child of a folder (files, folders, version stacks; all pages):
    /// `GET /v4/accounts/{a}/folders/{folder}/children`.
    pub async fn folder_children(
        &self,
        account: &str,
        folder: &str,
    ) -> Result<Vec<Child>, ClientError> {
        let url = self.url(
            &["v4", "accounts", account, "folders", folder, "children"],
            &[("page_size", "100")],
        );
        let path = url.path().to_string();
        self.list_all(url)
            .await?
            .into_iter()
            .map(|v| Self::decode(&path, v))
            .collect()
    }

    /// `DELETE /v4/accounts/{a}/files/{id}` (a half-made file whose URLs expired).
    pub async fn delete_file(&self, account: &str, file_id: &str) -> Result<(), ClientError> {
        let url = self.url(&["v4", "accounts", account, "files", file_id], &[]);
        self.send(Method::DELETE, url, None).await.map(|_| ())
    }

    /// `POST /v4/accounts/{a}/folders/{folder}/version_stacks` `{"data":{"file_ids":[older, newer]}}`;
    /// returns the stack's id.
    pub async fn create_version_stack(
        &self,
        account: &str,
        folder: &str,
        file_ids: &[&str],
    ) -> Result<String, ClientError> {
        let url = self.url(
            &[
                "v4",
                "accounts",
                account,
                "folders",
                folder,
                "version_stacks",
            ],
            &[],
        );
        let path = url.path().to_string();
        let body = json!({ "data": { "file_ids": file_ids } });
        // Not idempotent: a lost answer may have made the stack (the caller looks for it).
        let answer = self
            .send_as(Method::POST, url, Some(&body), Replay::Once)
            .await?;
        answer
            .get("data")
            .and_then(|d| d.get("id"))
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or(ClientError::Decode {
                path,
                message: "no data.id in the version stack answer".into(),
            })
    }

    /// `PATCH /v4/accounts/{a}/files/{id}/move` `{"data":{"parent_id": stack}}`.
    pub async fn move_file(
        &self,
        account: &str,
        file_id: &str,
        parent_id: &str,
    ) -> Result<(), ClientError> {
        let url = self.url(&["v4", "accounts", account, "files", file_id, "move"], &[]);
        let body = json!({ "data": { "parent_id": parent_id } });
        self.send(Method::PATCH, url, Some(&body)).await.map(|_| ())
    }
}

/// A file's `status` as upload progress.
fn progress_of_status(status: &str) -> UploadProgress {
    match status.to_ascii_lowercase().as_str() {
        "uploaded" | "transcoded" | "transcoding" | "ready" | "processing" => {
            UploadProgress::Complete
        }
        "upload_failed" | "failed" => UploadProgress::Failed,
        _ => UploadProgress::Pending,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_status_words() {
        assert_eq!(progress_of_status("created"), UploadProgress::Pending);
        assert_eq!(progress_of_status("uploaded"), UploadProgress::Complete);
        assert_eq!(progress_of_status("Transcoded"), UploadProgress::Complete);
        assert_eq!(progress_of_status("upload_failed"), UploadProgress::Failed);
        assert_eq!(progress_of_status(""), UploadProgress::Pending);
    }
}
