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
    let mut child = match Command::new(&program)
        .args(&args)
        .stdin(std::process::Stdio::null())
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
    tokio::select! {
        status = child.wait() => {
            let code = status.ok().and_then(|s| s.code()).unwrap_or(1);
            return ExitCode::from(u8::try_from(code).unwrap_or(1));
        }
        _ = eof_rx => {}
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    if let Some(pid) = child
        .id()
        .and_then(|p| i32::try_from(p).ok())
        .and_then(rustix::process::Pid::from_raw)
    {
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        if tokio::time::timeout(grace, child.wait()).await.is_ok() {
            return ExitCode::SUCCESS;
        }
    }
    let _ = child.kill().await;
    ExitCode::SUCCESS
}
