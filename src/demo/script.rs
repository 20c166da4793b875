//! The demo's timeline: a studio's review day replayed in about a minute. Cuts are dropped into
//! the watch folder (so rushes' own upload path sends them to the Frame.io stand-in), then the
//! client's comments arrive on them (French and English, a reply, change requests, an approval,
//! one the reader cannot be sure of), each announced by a signed webhook to rushes, plus one
//! forged call that rushes must refuse. Times count from the demo's start; a step whose cut is
//! not ready yet waits for it (at most [`STEP_WAIT`]).

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::AsyncWriteExt as _;
use tokio_util::sync::CancellationToken;

use super::frameio::{FileStatus, FrameioStandIn};

const MIB: u64 = 1024 * 1024;
/// Longest wait of a step for the cut it concerns.
const STEP_WAIT: Duration = Duration::from_secs(120);

/// What happens at one moment of the timeline.
#[derive(Debug, Clone, Copy)]
pub enum Step {
    /// A cut of `size` bytes appears in the watch folder.
    Cut { name: &'static str, size: u64 },
    /// `author` comments on the cut `on` once it is ready; `reply_to` is the index of an
    /// earlier comment step this one answers.
    Comment {
        on: &'static str,
        author: &'static str,
        text: &'static str,
        reply_to: Option<usize>,
    },
    /// A delivery signed with the wrong secret (the inspector shows it refused).
    Forged,
}

pub const CAMILLE_V1: &str = "Camille teaser v1.mov";
pub const CAMILLE_V2: &str = "Camille teaser v2.mov";
pub const INTERVIEW: &str = "Interview B-roll cut.mov";
pub const MAKING_OF: &str = "Making-of teaser.mov";
const CLAIRE: &str = "Claire Martin (client)";
const MARK: &str = "Mark Evans (client)";
const PAUL: &str = "Paul (studio)";
/// Claire's word on the Making-of: an approval with a doubt the reader cannot weigh, so the cut
/// shows **needs a look** (a unit test below keeps it one the reader is unsure of).
const MAKING_OF_UNSURE: &str = "Validé dans l'ensemble, le carton 00:42 me laisse un doute.";

/// The timeline: (seconds after the start, step).
pub const TIMELINE: [(u64, Step); 11] = [
    (
        1,
        Step::Cut {
            name: CAMILLE_V1,
            size: 24 * MIB,
        },
    ),
    (
        3,
        Step::Cut {
            name: INTERVIEW,
            size: 12 * MIB,
        },
    ),
    (
        5,
        Step::Cut {
            name: MAKING_OF,
            size: 8 * MIB,
        },
    ),
    (12, Step::Forged),
    (
        22,
        Step::Comment {
            on: CAMILLE_V1,
            author: CLAIRE,
            text: "Le son est trop fort à 00:42, vous pouvez le baisser ? Et le logo de fin est coupé.",
            reply_to: None,
        },
    ),
    (
        26,
        Step::Comment {
            on: INTERVIEW,
            author: MARK,
            text: "Nice pace overall, but please swap the shot at 01:10 for a wider one.",
            reply_to: None,
        },
    ),
    (
        28,
        Step::Cut {
            name: CAMILLE_V2,
            size: 24 * MIB,
        },
    ),
    (
        30,
        Step::Comment {
            on: CAMILLE_V1,
            author: PAUL,
            text: "Merci Claire, bien reçu : la v2 arrive dans la journée.",
            reply_to: Some(4),
        },
    ),
    (
        34,
        Step::Comment {
            on: MAKING_OF,
            author: CLAIRE,
            text: MAKING_OF_UNSURE,
            reply_to: None,
        },
    ),
    (
        46,
        Step::Comment {
            on: CAMILLE_V2,
            author: CLAIRE,
            text: "Parfait, rien à redire : c'est validé pour la diffusion !",
            reply_to: None,
        },
    ),
    (
        52,
        Step::Comment {
            on: INTERVIEW,
            author: MARK,
            text: "Also, could the lower third use our new logo?",
            reply_to: Some(5),
        },
    ),
];

pub struct Timeline {
    pub frameio: FrameioStandIn,
    /// The watch folder.
    pub outbox: PathBuf,
}

impl Timeline {
    /// Plays the timeline from now until it ends or `cancel`.
    pub async fn run(self, cancel: CancellationToken) {
        let start = tokio::time::Instant::now();
        let mut comment_ids: Vec<Option<String>> = vec![None; TIMELINE.len()];
        for (i, (at, step)) in TIMELINE.iter().enumerate() {
            tokio::select! {
                () = tokio::time::sleep_until(start + Duration::from_secs(*at)) => {}
                () = cancel.cancelled() => return,
            }
            match *step {
                Step::Cut { name, size } => {
                    if let Err(e) = drop_cut(&self.outbox, name, size).await {
                        tracing::warn!(error = %e, cut = name, "demo: cannot write the cut into the watch folder");
                    }
                }
                Step::Forged => {
                    if let Some(status) = self.frameio.forged_delivery().await {
                        tracing::info!(
                            status,
                            "demo: a forged webhook call was sent (rushes refuses it)"
                        );
                    }
                }
                Step::Comment {
                    on,
                    author,
                    text,
                    reply_to,
                } => {
                    let parent = reply_to.and_then(|p| comment_ids.get(p).cloned().flatten());
                    tokio::select! {
                        id = self.comment(on, parent.as_deref(), author, text) => {
                            if let Some(slot) = comment_ids.get_mut(i) {
                                *slot = id;
                            }
                        }
                        () = cancel.cancelled() => return,
                    }
                }
            }
        }
    }

    /// Waits until the cut named `on` is ready on the stand-in, comments and announces it.
    async fn comment(
        &self,
        on: &str,
        parent: Option<&str>,
        author: &str,
        text: &str,
    ) -> Option<String> {
        let Some(file) = self.ready_file(on).await else {
            tracing::warn!(
                cut = on,
                "demo: the cut never became ready; its comment is skipped"
            );
            return None;
        };
        let id = self.frameio.comment(&file, parent, author, text)?;
        self.frameio
            .deliver("comment.created", "comment", &id)
            .await;
        Some(id)
    }

    /// The id of the cut named `name` once it is transcoded and its `file.ready` delivered
    /// (`None` after [`STEP_WAIT`]).
    async fn ready_file(&self, name: &str) -> Option<String> {
        let mut changes = self.frameio.changes();
        let deadline = tokio::time::Instant::now() + STEP_WAIT;
        loop {
            if let Some(file) = self.frameio.file_named(name)
                && file.status == FileStatus::Transcoded
                && file.ready_announced
            {
                return Some(file.id);
            }
            tokio::select! {
                changed = changes.changed() => changed.ok()?,
                () = tokio::time::sleep_until(deadline) => return None,
            }
        }
    }
}

/// Byte `i` of a demo cut.
fn cut_byte(i: u64) -> u8 {
    (i.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 56) as u8
}

/// Writes a cut as an export tool does: under a hidden name, then renamed into place.
pub async fn drop_cut(outbox: &Path, name: &str, size: u64) -> std::io::Result<()> {
    let hidden = outbox.join(format!(".{name}.part"));
    let mut file = tokio::fs::File::create(&hidden).await?;
    let mut written = 0u64;
    while written < size {
        let n = MIB.min(size - written);
        let chunk: Vec<u8> = (written..written + n).map(cut_byte).collect();
        file.write_all(&chunk).await?;
        written += n;
    }
    file.flush().await?;
    drop(file);
    tokio::fs::rename(&hidden, outbox.join(name)).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Verdict;
    use crate::frameio::review::Reader;

    /// The demo shows each kind of review: sure change requests, a sure approval, a reply that
    /// decides nothing, and one comment the reader is not sure of (needs a look). A new reader
    /// that reads one of them otherwise fails here, not in a two-minute run of the binary.
    #[test]
    fn each_comment_reads_as_the_demo_means_it() {
        let reader = Reader::builtin();
        let mut unsure = 0;
        for (_, step) in TIMELINE {
            let Step::Comment { text, .. } = step else {
                continue;
            };
            let a = reader.analyse_text(text);
            if text == MAKING_OF_UNSURE {
                assert!(!a.confident, "{text:?} should be unsure: {a:?}");
                unsure += 1;
            } else if text.starts_with("Parfait") {
                assert!(
                    a.confident && a.verdict == Some(Verdict::Approved),
                    "{text:?}: {a:?}"
                );
            } else if text.starts_with("Merci") {
                assert!(a.confident && a.verdict.is_none(), "{text:?}: {a:?}");
            } else {
                assert!(
                    a.confident && a.verdict == Some(Verdict::ChangesRequested),
                    "{text:?}: {a:?}"
                );
            }
        }
        assert_eq!(unsure, 1);
    }

    #[test]
    fn replies_answer_earlier_comments_and_times_only_grow() {
        let mut last = 0;
        for (i, (at, step)) in TIMELINE.iter().enumerate() {
            assert!(*at >= last, "step {i} goes back in time");
            last = *at;
            if let Step::Comment {
                reply_to: Some(p),
                on,
                ..
            } = step
            {
                assert!(*p < i, "step {i} answers a later one");
                assert!(
                    matches!(TIMELINE[*p].1, Step::Comment { on: parent_on, .. } if parent_on == *on),
                    "step {i} answers a comment on another cut"
                );
            }
        }
    }
}
