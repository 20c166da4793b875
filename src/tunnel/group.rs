//! The tunnel agent runs in a process group of its own: a wrapper script that does not `exec`,
//! an agent that starts helpers or forks and exits, all stay in that group, and stopping the
//! agent signals the whole group, so nothing it started outlives rushes.

use rustix::process::{Pid, Signal};

/// The group an agent started with `process_group(0)` leads (its id is the agent's pid).
#[derive(Debug, Clone, Copy)]
pub struct Group(Pid);

impl Group {
    /// The group led by the process `pid` (`None` once the child is reaped: no id to signal).
    pub fn of(pid: Option<u32>) -> Option<Self> {
        pid.and_then(|p| i32::try_from(p).ok())
            .and_then(Pid::from_raw)
            .map(Self)
    }

    /// Asks every process of the group to stop.
    pub fn terminate(self) {
        let _ = rustix::process::kill_process_group(self.0, Signal::TERM);
    }

    /// Kills what is left of the group (nothing when it is gone).
    pub fn kill(self) {
        let _ = rustix::process::kill_process_group(self.0, Signal::KILL);
    }
}
