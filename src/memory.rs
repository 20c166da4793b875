//! How much memory a long-running rushes keeps: the allocator, and what it reports.
//!
//! rushes allocates with jemalloc (on Linux, with the default feature `jemalloc`; for its own
//! Rust code and for the C it links: SQLite, ring), not glibc's malloc. Under the soak load of
//! issue 28, glibc kept what was freed in its arenas: with two arenas (`MALLOC_ARENA_MAX=2`) and
//! a `malloc_trim(0)` every minute, RSS still rose 5.7-10.2 MiB/hour over 2 hours while the heap
//! in use stayed flat (fragmentation by transient buffers of a few hundred KiB). jemalloc's
//! background thread hands pages that stay unused for about a second back to the system on its
//! own; what RSS adds to the heap in use is then the last second's bursts (a feed poll's, mostly:
//! docs/operations.md, "Bounded growth"). [`heap`] reads the allocator's counters for `/metrics`
//! (`rushes_heap_bytes`) and the soak. jemalloc reads `MALLOC_CONF` from the environment after
//! [`OPTIONS`]: an operator's setting wins.

#[cfg(all(feature = "jemalloc", target_os = "linux"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's start-up options, read before the first allocation (its `malloc_conf` symbol):
/// - `background_thread`: a thread of jemalloc's own purges unused pages (instead of whichever
///   thread happens to free);
/// - `narenas:1`: one arena for every thread (jemalloc's default is four per core): SQLite's
///   connection threads and tokio's workers otherwise each fill an arena of their own. The first
///   ingest of the 100,000-record feed peaked at 110-115 MiB with one arena, 116-122 with two,
///   121-132 with the default (issue 27's bound: 120), no slower; each thread still has its
///   cache of small blocks, so they rarely wait on the arena's lock;
/// - `dirty_decay_ms:1000`: a freed page is given back after about a second unused (jemalloc's
///   default is 10 s; a burst's buffers are still reused within the second);
/// - `muzzy_decay_ms:0`: given back with `MADV_DONTNEED`, so RSS drops at once, not
///   `MADV_FREE`, which leaves pages counted until the system is short of memory.
#[cfg(all(feature = "jemalloc", target_os = "linux"))]
pub const OPTIONS: &str = "background_thread:true,narenas:1,dirty_decay_ms:1000,muzzy_decay_ms:0\0";

#[cfg(all(feature = "jemalloc", target_os = "linux"))]
#[allow(unsafe_code, non_upper_case_globals)]
// SAFETY: jemalloc reads this symbol once, as a `const char *` to a NUL-terminated string; a
// `&u8` has that layout, points at the first byte of a static string that ends with NUL, and
// is never written.
#[unsafe(export_name = "malloc_conf")]
pub static malloc_conf: &u8 = &OPTIONS.as_bytes()[0];

/// What the allocator holds, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Heap {
    /// Bytes in use by rushes (and SQLite, ring): what the program holds.
    pub allocated: u64,
    /// Bytes in pages the allocator has touched and not given back: what it adds to RSS.
    pub resident: u64,
}

/// The allocator's counters now (refreshed first: jemalloc caches them per epoch); `None` in a
/// build without jemalloc or when it does not answer.
pub fn heap() -> Option<Heap> {
    #[cfg(all(feature = "jemalloc", target_os = "linux"))]
    {
        use tikv_jemalloc_ctl::{epoch, stats};
        epoch::advance().ok()?;
        Some(Heap {
            allocated: stats::allocated::read().ok()? as u64,
            resident: stats::resident::read().ok()? as u64,
        })
    }
    #[cfg(not(all(feature = "jemalloc", target_os = "linux")))]
    {
        None
    }
}

#[cfg(all(test, feature = "jemalloc", target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn the_options_are_the_ones_jemalloc_runs_with() {
        assert_eq!(
            tikv_jemalloc_ctl::opt::background_thread::read().ok(),
            Some(true)
        );
        assert_eq!(tikv_jemalloc_ctl::opt::narenas::read().ok(), Some(1));
        for (name, value) in [("dirty_decay_ms", 1000), ("muzzy_decay_ms", 0)] {
            assert!(OPTIONS.contains(&format!("{name}:{value}")));
            let key = format!("opt.{name}\0");
            #[allow(unsafe_code)]
            // SAFETY: both are documented mallctl names of type `ssize_t`.
            let read = unsafe { tikv_jemalloc_ctl::raw::read::<isize>(key.as_bytes()) };
            assert_eq!(read.ok(), Some(value), "{name}");
        }
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
