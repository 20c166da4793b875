//! `rushes frameio verdict [TEXT]`: the comment analysis on the command line. With TEXT, prints
//! the verdict, whether the reader is sure and its reason; without, reads one comment a line from
//! stdin and writes one JSON object a line (`{"text", "verdict", "confident", "reason"}`,
//! `verdict` null when there is no decision). `--eval FILE.json` scores a labelled set.

use std::io::{BufRead, IsTerminal as _, Write};
use std::path::Path;
use std::process::ExitCode;

use crate::domain::Verdict;
use crate::frameio::{Reader, eval as review_eval};

/// Longest line kept from stdin (bytes); the rest of a longer line is skipped.
const MAX_LINE_BYTES: usize = 64 * 1024;

#[derive(serde::Serialize)]
struct Line<'a> {
    text: &'a str,
    verdict: Option<Verdict>,
    confident: bool,
    reason: &'a str,
}

pub async fn run(text: &[String], reader: &Reader) -> anyhow::Result<ExitCode> {
    match write_verdicts(text, reader).await {
        // The reader went away (`| head`): not an error.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(ExitCode::SUCCESS),
        Err(e) => Err(e.into()),
        Ok(()) => Ok(ExitCode::SUCCESS),
    }
}

async fn write_verdicts(text: &[String], reader: &Reader) -> std::io::Result<()> {
    let mut out = std::io::BufWriter::new(std::io::stdout());
    if !text.is_empty() {
        let text = text.join(" ");
        let a = reader.analyse_text_with_opinion(&text).await;
        writeln!(
            out,
            "verdict: {}",
            a.verdict.map_or("none", Verdict::as_str)
        )?;
        writeln!(out, "sure:    {}", if a.confident { "yes" } else { "no" })?;
        writeln!(out, "reason:  {}", a.reason)?;
        return out.flush();
    }
    let stdin = std::io::stdin();
    let interactive = stdin.is_terminal();
    if interactive {
        eprintln!("one comment a line, Ctrl-D to end");
    }
    let mut input = stdin.lock();
    let mut buf = Vec::new();
    while read_line(&mut input, &mut buf)? {
        let raw = String::from_utf8_lossy(&buf);
        let text = raw.trim_end_matches(['\n', '\r']);
        let a = reader.analyse_text_with_opinion(text).await;
        serde_json::to_writer(
            &mut out,
            &Line {
                text,
                verdict: a.verdict,
                confident: a.confident,
                reason: &a.reason,
            },
        )?;
        out.write_all(b"\n")?;
        if interactive {
            out.flush()?;
        }
    }
    out.flush()
}

/// `--eval FILE.json`: the score of the reader on a labelled set; exit 1 below the targets.
pub async fn eval(path: &Path, show_misses: bool, reader: &Reader) -> anyhow::Result<ExitCode> {
    let shown = path.display();
    let meta = std::fs::metadata(path).map_err(|e| anyhow::anyhow!("cannot read {shown}: {e}"))?;
    if meta.len() > review_eval::MAX_SET_BYTES as u64 {
        anyhow::bail!("{shown}: {}", review_eval::SetError::TooLarge);
    }
    let raw =
        std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("cannot read {shown}: {e}"))?;
    let set = review_eval::parse_set(&raw).map_err(|e| anyhow::anyhow!("{shown}: {e}"))?;
    let mut score = review_eval::Score::default();
    let mut out = std::io::stdout();
    for item in &set {
        let a = reader.analyse_text_with_opinion(&item.text).await;
        if !score.add(item.expected, &a) && show_misses {
            writeln!(
                out,
                "miss: expected {:<17} got {:<17} {} {:?} ({})",
                item.expected.map_or("none", Verdict::as_str),
                a.verdict.map_or("none", Verdict::as_str),
                if a.confident { "sure    " } else { "not sure" },
                item.text,
                a.reason
            )?;
        }
    }
    write!(out, "{}", score.report())?;
    out.flush()?;
    Ok(if score.meets_targets() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Reads one line into `buf` (at most MAX_LINE_BYTES kept); false at the end of input.
fn read_line(input: &mut impl BufRead, buf: &mut Vec<u8>) -> std::io::Result<bool> {
    buf.clear();
    let mut any = false;
    loop {
        let chunk = input.fill_buf()?;
        if chunk.is_empty() {
            return Ok(any);
        }
        any = true;
        let (line, used, done) = match chunk.iter().position(|b| *b == b'\n') {
            Some(i) => (&chunk[..i], i + 1, true),
            None => (chunk, chunk.len(), false),
        };
        let room = MAX_LINE_BYTES.saturating_sub(buf.len());
        buf.extend_from_slice(&line[..line.len().min(room)]);
        input.consume(used);
        if done {
            return Ok(true);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_bounded() -> std::io::Result<()> {
        let long = "a".repeat(MAX_LINE_BYTES * 2);
        let data = format!("one\r\n{long}\nthree");
        let mut input = std::io::Cursor::new(data.into_bytes());
        let mut buf = Vec::new();
        let mut lines = Vec::new();
        while read_line(&mut input, &mut buf)? {
            lines.push(buf.len());
        }
        assert_eq!(lines, [4, MAX_LINE_BYTES, 5]);
        Ok(())
    }
}
