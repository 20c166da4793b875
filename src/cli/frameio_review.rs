//! `rushes frameio corrections`: the comment verdicts a person corrected on the dashboard or
//! through the API, as `{"text","expected"}` JSON lines (the shape `rushes frameio verdict`
//! evaluation and the review corpus read).

use std::io::Write as _;
use std::process::ExitCode;

use crate::config::Config;
use crate::store::Store;

#[derive(serde::Serialize)]
struct Line<'a> {
    text: &'a str,
    expected: &'a str,
}

pub async fn corrections(config: &Config) -> anyhow::Result<ExitCode> {
    let store = Store::for_settings(&config.database, &config.database_path()).await?;
    let labels = store.comment_labels().await;
    store.close().await;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for label in labels? {
        let line = Line {
            text: &label.text,
            expected: &label.expected,
        };
        let written = serde_json::to_writer(&mut out, &line)
            .map_err(std::io::Error::from)
            .and_then(|()| out.write_all(b"\n"));
        match written {
            // The reader went away (`| head`): not an error.
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(ExitCode::SUCCESS),
            other => other?,
        }
    }
    match out.flush() {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(ExitCode::SUCCESS),
        other => other.map(|()| ExitCode::SUCCESS).map_err(Into::into),
    }
}
