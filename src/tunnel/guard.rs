//! `rushes tunnel-guard -- <agent> <args…>`: runs the agent and makes sure it does not outlive
//! rushes. rushes holds the write end of the guard's stdin; when rushes dies for any reason
//! (even SIGKILL) the kernel closes it, the guard reads end-of-file and stops the agent. The
//! guard also asks the kernel for SIGTERM when its parent dies (PR_SET_PDEATHSIG, set on itself,
//! so no `unsafe` pre-exec hook is needed) and forwards SIGTERM/SIGINT as a stop.

use std::ffi::OsString;
use std::io::Read as _;
use std::process::ExitCode;
use std::time::Duration;

use tokio::process::Command;
use tokio::signal::unix::{SignalKind, signal};

use super::group::Group;

/// Runs the guard; never returns normally (exits the process with the agent's code).
pub async fn run(grace: Duration, program: OsString, args: Vec<OsString>) -> ExitCode {
    let parent = rustix::process::getppid();
    #[cfg(target_os = "linux")]
    let _ = rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::TERM));
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        eprintln!("rushes tunnel-guard: cannot watch signals");
        return ExitCode::from(1);
    };
    // The parent may have died before the death signal was armed.
    if rustix::process::getppid() != parent {
        return ExitCode::from(1);
    }
    // The agent leads a process group of its own: what it starts (a wrapper script's child,
    // a forked helper) is stopped with it.
    let mut child = match Command::new(&program)
        .args(&args)
        .stdin(std::process::Stdio::null())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!(
                "rushes tunnel-guard: cannot start {}: {e}",
                program.to_string_lossy()
            );
            return ExitCode::from(127);
        }
    };
    let (eof_tx, eof_rx) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin();
        let mut buf = [0u8; 256];
        while let Ok(n) = stdin.read(&mut buf) {
            if n == 0 {
                break;
            }
        }
        let _ = eof_tx.send(());
    });
    let group = Group::of(child.id());
    tokio::select! {
        status = child.wait() => {
            // An agent that forked and exited leaves its children in the group: not one more
            // process per restart.
            if let Some(group) = group {
                group.kill();
            }
            let code = status.ok().and_then(|s| s.code()).unwrap_or(1);
            return ExitCode::from(u8::try_from(code).unwrap_or(1));
        }
        _ = eof_rx => {}
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    if let Some(group) = group {
        group.terminate();
        let stopped = tokio::time::timeout(grace, child.wait()).await.is_ok();
        // The leader has stopped or the grace is over: whatever is left of the group goes.
        group.kill();
        if stopped {
            return ExitCode::SUCCESS;
        }
    }
    let _ = child.kill().await;
    ExitCode::SUCCESS
}
