//! How much memory a long-running rushes keeps. glibc's malloc gives each thread that
//! allocates under contention an arena of its own (up to eight per core) and keeps what is freed
//! in that arena: with SQLite's connection threads and tokio's workers each in their own, RSS
//! crept up under a steady load (the soak of issue 28: 53 -> 75 MiB in 15 minutes, 82 at 36,
//! still rising) while the same run with two arenas was at 41-46 MiB over 5 minutes. The count can
//! only be set before the first allocation, so `serve` and `demo` start again as the same
//! process (`exec`: same pid, same arguments) with `MALLOC_ARENA_MAX=2` in their environment.
//!
//! Two arenas still keep what is freed in them: a page stays in RSS as long as any chunk on it
//! is in use, and the part of an arena below its top is never given back by `free` at all. Under
//! the soak load (issue 28, item 5) RSS kept rising after warm-up (+9.0 MiB/hour over 2 hours)
//! while the heap in use did not: `malloc_trim(0)` on that process at minute 20 returned 6.5 of
//! its 62 MiB. [`release_free_heap`], run every [`TRIM_EVERY`] by [`trim_periodically`], gives
//! the free pages of every arena back to the system, so RSS follows the heap in use.

/// The variable glibc reads at start-up.
pub const ARENA_VAR: &str = "MALLOC_ARENA_MAX";
/// Arenas a serving rushes uses (glibc's own default is eight per core).
const ARENAS: &str = "2";

/// Replaces this process by itself with [`ARENA_VAR`] set, unless it is set already (by the
/// operator, or by this same step). Returns only when it is set, or when the start-over failed
/// (then rushes runs on with glibc's default).
pub fn with_few_malloc_arenas() {
    if !cfg!(all(target_os = "linux", target_env = "gnu")) || std::env::var_os(ARENA_VAR).is_some()
    {
        return;
    }
    use std::os::unix::process::CommandExt as _;
    // A binary replaced on disk since it started ("… (deleted)") cannot be started again.
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    let mut args = std::env::args_os();
    let mut again = std::process::Command::new(exe);
    if let Some(name) = args.next() {
        again.arg0(name);
    }
    let error = again.args(args).env(ARENA_VAR, ARENAS).exec();
    eprintln!("rushes: could not start again with {ARENA_VAR}={ARENAS} ({error}); going on");
}

/// How often a serving rushes hands its free heap pages back ([`trim_periodically`]).
pub const TRIM_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

/// Gives the whole free pages of every malloc arena back to the system (glibc's
/// `malloc_trim(0)`); true when some memory was released. A no-op (false) off glibc.
pub fn release_free_heap() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        trim()
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn trim() -> bool {
    // SAFETY: takes a plain size (0: keep no padding at the top), locks each arena in turn and
    // only hands free pages back (`madvise(MADV_DONTNEED)`, `brk`): no chunk in use is touched.
    // Callable from any thread at any time.
    unsafe { libc::malloc_trim(0) != 0 }
}

/// Runs [`release_free_heap`] every `every` (on a blocking thread: it holds each arena's lock
/// while it walks it) until `stop`; returns how many passes released memory.
pub async fn trim_periodically(
    every: std::time::Duration,
    stop: tokio_util::sync::CancellationToken,
) -> u64 {
    let mut released = 0;
    loop {
        tokio::select! {
            () = stop.cancelled() => return released,
            () = tokio::time::sleep(every) => {}
        }
        match tokio::task::spawn_blocking(release_free_heap).await {
            Ok(true) => released += 1,
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "releasing the free heap failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Frees most of 32 MiB of small blocks, keeping one in eight: whole pages come free between
    /// the survivors, which only a trim gives back.
    #[test]
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fn free_pages_between_live_blocks_are_released() {
        let mut blocks: Vec<Vec<u8>> = (0..8192).map(|i| vec![i as u8; 4096]).collect();
        let kept: Vec<Vec<u8>> = blocks.iter_mut().step_by(8).map(std::mem::take).collect();
        drop(blocks);
        assert!(release_free_heap(), "28 MiB freed, nothing released");
        assert!(
            kept.iter()
                .enumerate()
                .all(|(i, b)| b.len() == 4096 && b[0] == (i * 8) as u8)
        );
    }

    #[tokio::test]
    async fn the_trimming_task_stops_when_told() {
        let stop = tokio_util::sync::CancellationToken::new();
        let task = tokio::spawn(trim_periodically(
            std::time::Duration::from_millis(1),
            stop.clone(),
        ));
        stop.cancel();
        let ended = tokio::time::timeout(std::time::Duration::from_secs(10), task).await;
        assert!(
            matches!(ended, Ok(Ok(_))),
            "the task did not stop: {ended:?}"
        );
    }
}
