//! How much memory a long-running rushes keeps: the allocator, and what it reports.
//!
//! rushes allocates with jemalloc (on Linux, for its own Rust code and for the C it links:
//! SQLite, ring), not glibc's malloc. Under the soak load of issue 28 glibc kept what was freed in
//! its arenas: with two arenas (`MALLOC_ARENA_MAX=2`) and a `malloc_trim(0)` every minute, RSS still
//! rose 5.7-10.2 MiB/hour over 2 hours while the heap in use stayed flat; the lowest RSS of each
//! quarter hour (just after a trim) was flat, the peaks between trims rose (fragmentation of the
//! arenas by transient buffers of a few hundred KiB). jemalloc groups allocations by size class
//! in their own pages and its background thread hands pages that stay unused for
//! [`DIRTY_DECAY_MS`] back to the system, on its own, so RSS follows the heap in use.
//! [`heap`] reads its counters for `/metrics` (`rushes_heap_bytes`) and the soak.

#[cfg(target_os = "linux")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// How long a freed page stays in rushes before jemalloc's background thread gives it back
/// (jemalloc's own default is 10 s; 1 s keeps RSS close to the heap in use; a burst's buffers
/// are still reused within the second).
pub const DIRTY_DECAY_MS: u32 = 1000;

/// jemalloc's start-up options, read before the first allocation (its `malloc_conf` symbol):
/// a background thread that purges (instead of whichever thread happens to free), freed pages
/// kept [`DIRTY_DECAY_MS`], then given back at once (`muzzy_decay_ms:0`: `MADV_DONTNEED`, so RSS
/// drops, rather than `MADV_FREE`, which leaves them counted until the system is short).
#[cfg(target_os = "linux")]
#[allow(unsafe_code, non_upper_case_globals)]
// SAFETY: jemalloc reads this symbol once, as a `const char *` to a NUL-terminated string; a
// `&u8` has that layout, points into a static byte string that ends with NUL, and is never
// written.
#[unsafe(export_name = "malloc_conf")]
pub static malloc_conf: &u8 =
    &b"background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0\0"[0];

/// What the allocator holds, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Heap {
    /// Bytes in use by rushes (and SQLite, ring): what the program holds.
    pub allocated: u64,
    /// Bytes in pages the allocator has touched and not given back: what it adds to RSS.
    pub resident: u64,
}

/// The allocator's counters now (refreshed first: jemalloc caches them per epoch); `None` off
/// Linux or when jemalloc does not answer.
pub fn heap() -> Option<Heap> {
    #[cfg(target_os = "linux")]
    {
        use tikv_jemalloc_ctl::{epoch, stats};
        epoch::advance().ok()?;
        Some(Heap {
            allocated: stats::allocated::read().ok()? as u64,
            resident: stats::resident::read().ok()? as u64,
        })
    }
    #[cfg(not(target_os = "linux"))]
    {
        None
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn the_options_are_the_ones_jemalloc_runs_with() {
        assert_eq!(
            tikv_jemalloc_ctl::opt::background_thread::read().ok(),
            Some(true)
        );
        #[allow(unsafe_code)]
        // SAFETY: `opt.dirty_decay_ms` is a documented mallctl name of type `ssize_t`.
        let dirty = unsafe { tikv_jemalloc_ctl::raw::read::<isize>(b"opt.dirty_decay_ms\0") };
        assert_eq!(dirty.ok(), Some(DIRTY_DECAY_MS as isize));
    }

    /// 64 MiB allocated then freed: the allocator's count follows, and its background thread
    /// gives the pages back within seconds (resident falls back under what it was at the peak).
    #[test]
    fn freed_memory_is_counted_and_given_back() {
        let before = heap().expect("jemalloc answers");
        let blocks: Vec<Vec<u8>> = (0..16_384).map(|i| vec![i as u8; 4096]).collect();
        let peak = heap().expect("jemalloc answers");
        assert!(
            peak.allocated >= before.allocated + 60 * 1024 * 1024,
            "{before:?} -> {peak:?}"
        );
        assert!(blocks.iter().enumerate().all(|(i, b)| b[4095] == i as u8));
        drop(blocks);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let now = heap().expect("jemalloc answers");
            if now.resident + 48 * 1024 * 1024 < peak.resident {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "64 MiB freed, not given back in 30 s: {peak:?} -> {now:?}"
            );
            std::thread::park_timeout(std::time::Duration::from_millis(100));
        }
    }
}
