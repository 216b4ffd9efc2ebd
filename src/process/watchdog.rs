//! A watchdog process that ends every CLI process group when the server dies without the
//! chance to do it (SIGKILL, a crash, the OOM killer).
//!
//! The parent-death signal would need a `pre_exec` hook, and any `pre_exec` makes the standard
//! library fork instead of `posix_spawn`: each spawn then copies the server's page tables under
//! its memory lock, 0.5 ms for a small server and over 2 ms under load, one spawn at a time.
//! It also reaches only the CLI itself, not the tools the CLI started. The watchdog costs a
//! single fork at start-up, while the server is small and has one thread, and covers whole
//! groups: the server tells it each group as it starts and ends, and when the server is gone
//! (the pipe between them closes) it sends SIGKILL to every group it still knows.

use std::collections::HashSet;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::sync::{Mutex, OnceLock};

use nix::fcntl::OFlag;
use nix::sys::signal::{SigHandler, Signal, killpg, signal};
use nix::unistd::{ForkResult, Pid, fork, pipe2};

static WATCHDOG: OnceLock<Mutex<File>> = OnceLock::new();

/// Starts the watchdog. Call it before any other thread exists (first thing in `main`): it
/// forks. Without it (in tests, or a library user's own process) groups are still ended on
/// every path but the server's sudden death.
pub fn start() -> io::Result<()> {
    // Close-on-exec: a CLI that inherited the write end would keep the pipe open after the
    // server's death, and the watchdog would never notice.
    let (read_end, write_end) = pipe2(OFlag::O_CLOEXEC).map_err(io::Error::from)?;
    // SAFETY: called while the process has a single thread, so the child may run any code.
    match unsafe { fork() }.map_err(io::Error::from)? {
        ForkResult::Child => {
            drop(write_end);
            watch(read_end);
        }
        ForkResult::Parent { .. } => {
            drop(read_end);
            let _ = WATCHDOG.set(Mutex::new(File::from(write_end)));
            Ok(())
        }
    }
}

/// Tells the watchdog about a new group.
pub fn watch_group(pgid: u32) {
    send(b'+', pgid);
}

/// Tells the watchdog a group is gone.
pub fn forget_group(pgid: u32) {
    send(b'-', pgid);
}

fn send(op: u8, pgid: u32) {
    let Some(pipe) = WATCHDOG.get() else { return };
    let mut record = [0u8; 5];
    record[0] = op;
    record[1..].copy_from_slice(&pgid.to_le_bytes());
    // Five bytes to a pipe the watchdog keeps reading: one atomic write that does not block.
    let mut pipe = crate::lock(pipe);
    if let Err(err) = pipe.write_all(&record) {
        tracing::warn!(%err, "the watchdog is gone: CLIs would outlive a killed server");
    }
}

/// The watchdog's whole life: note groups until the server's end of the pipe closes, then
/// kill what is left and exit.
fn watch(read_end: OwnedFd) -> ! {
    // Ctrl-C in a terminal reaches the server's whole process group, this process included:
    // only the pipe's end may end the watchdog.
    // SAFETY: installing SIG_IGN runs no handler code.
    unsafe {
        let _ = signal(Signal::SIGINT, SigHandler::SigIgn);
        let _ = signal(Signal::SIGTERM, SigHandler::SigIgn);
        let _ = signal(Signal::SIGHUP, SigHandler::SigIgn);
    }
    let mut pipe = File::from(read_end);
    let mut groups = HashSet::new();
    let mut record = [0u8; 5];
    while pipe.read_exact(&mut record).is_ok() {
        let pgid = u32::from_le_bytes(record[1..].try_into().expect("four bytes"));
        match record[0] {
            b'+' => groups.insert(pgid),
            _ => groups.remove(&pgid),
        };
    }
    for pgid in groups {
        let _ = killpg(Pid::from_raw(pgid as i32), Signal::SIGKILL);
    }
    std::process::exit(0);
}
