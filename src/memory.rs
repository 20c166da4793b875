//! How much memory a long-running rushes keeps. glibc's malloc gives each thread that
//! allocates under contention an arena of its own (up to eight per core) and keeps what is freed
//! in that arena: with SQLite's connection threads and tokio's workers each in their own, RSS
//! crept up under a steady load (the soak of issue 28: 53 -> 75 MiB in 15 minutes, 82 at 36,
//! still rising) while the same run with two arenas was at 41-46 MiB over 5 minutes. The count can
//! only be set before the first allocation, so `serve` and `demo` start again as the same
//! process (`exec`: same pid, same arguments) with `MALLOC_ARENA_MAX=2` in their environment.

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
