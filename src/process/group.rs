//! A CLI's process group, and the signals sent to it.

use nix::errno::Errno;
use nix::sys::signal::{Signal, killpg};
use nix::sys::wait::{Id, WaitPidFlag, WaitStatus, waitid};
use nix::unistd::Pid;

/// The CLI's process group. The CLI is spawned as the leader of a new group, so the group id
/// is its pid and every process it starts (tools, shells, their children) belongs to it
/// unless it leaves on purpose.
#[derive(Debug, Clone, Copy)]
pub struct ProcessGroup(Pid);

impl ProcessGroup {
    pub fn of_leader(pid: u32) -> Self {
        Self(Pid::from_raw(pid as i32))
    }

    /// Sends `signal` to every process of the group; a group that is already gone is fine.
    pub fn signal(self, signal: Signal) {
        match killpg(self.0, signal) {
            Ok(()) | Err(Errno::ESRCH) => {}
            Err(err) => {
                tracing::warn!(pgid = self.0.as_raw(), %signal, %err, "could not signal the CLI's process group")
            }
        }
    }

    /// Whether any process of the group is left (zombies not yet reaped by their new parent
    /// count as left).
    pub fn is_alive(self) -> bool {
        !matches!(killpg(self.0, None), Err(Errno::ESRCH))
    }

    /// Reaps the processes of the group that have exited and are this process's to reap: with
    /// the server a child subreaper ([`become_subreaper`]), what the leader left behind becomes
    /// ours once the leader is gone (bubblewrap's init, which outlives the bwrap that reports
    /// the sandbox's exit, among them). Call it only once the leader itself has been reaped by
    /// its own waiter, or this would take the leader's exit status from it.
    pub fn reap_exited(self) {
        let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG;
        // Each call reaps one; it stops at "none has exited" or "none of ours is left".
        while let Ok(status) = waitid(Id::PGid(self.0), flags) {
            if status == WaitStatus::StillAlive {
                break;
            }
        }
    }
}

/// Reaps the exited processes this server adopted: a tool's process that outlived its CLI is
/// the subreaper's when it exits, and no group's draining may be left to reap it (it left the
/// group with `setsid`, or it died of the SIGKILL that ended the draining). Never one that is
/// another waiter's to reap: each process the server spawns itself (a CLI, `auth status`) is
/// the leader of a group of its own, and the watchdog is waited for by its keeper.
pub fn reap_adopted_orphans() {
    let Ok(own_session) = nix::unistd::getsid(None) else {
        return;
    };
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return;
    };
    let children = tasks.flatten().flat_map(|task| {
        std::fs::read_to_string(task.path().join("children"))
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|pid| pid.parse::<i32>().ok())
            .collect::<Vec<_>>()
    });
    for pid in children {
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // After the command's name, in parentheses: state, ppid, pgrp, session.
        let Some((_, after_name)) = stat.rsplit_once(')') else {
            continue;
        };
        let fields: Vec<&str> = after_name.split_whitespace().collect();
        let number = |at: usize| fields.get(at).and_then(|f| f.parse::<i32>().ok());
        let (Some(&"Z"), Some(group), Some(session)) = (fields.first(), number(2), number(3))
        else {
            continue;
        };
        let spawned_here = session == own_session.as_raw() && group == pid;
        if !spawned_here && !super::watchdog::is_watchdog(pid as u32) {
            let _ = nix::sys::wait::waitpid(Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG));
        }
    }
}

/// Makes this process the reaper of its descendants' orphans, in place of PID 1: a process that
/// a CLI leaves behind is then reaped by the server as soon as it exits (see
/// [`ProcessGroup::reap_exited`]), instead of lingering as a zombie in the CLI's group until an
/// init that may never reap it (a container's first process often does not) gets to it.
pub fn become_subreaper() -> std::io::Result<()> {
    nix::sys::prctl::set_child_subreaper(true).map_err(std::io::Error::from)
}

/// Names a signal the way people know it ("SIGTERM"), or its number when it has no name.
pub fn signal_name(signal: i32) -> String {
    Signal::try_from(signal)
        .map(|s| s.as_str().to_owned())
        .unwrap_or_else(|_| signal.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_have_their_usual_names() {
        assert_eq!(signal_name(15), "SIGTERM");
        assert_eq!(signal_name(9), "SIGKILL");
        assert_eq!(signal_name(1000), "1000");
    }
}
