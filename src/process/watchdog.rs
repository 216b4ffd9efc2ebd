//! A watchdog process that ends every CLI process group when the server dies without the
//! chance to do it (SIGKILL, a crash, the OOM killer).
//!
//! The parent-death signal would need a `pre_exec` hook, and any `pre_exec` makes the standard
//! library fork instead of `posix_spawn`: each spawn then copies the server's page tables under
//! its memory lock, 0.5 ms for a small server and over 2 ms under load, one spawn at a time.
//! It also reaches only the CLI itself, not the tools the CLI started. The watchdog is one
//! process for all of them, covering whole groups: the server tells it each group as it starts
//! and ends, and when the server is gone (the pipe between them closes) it sends SIGKILL to
//! every group it still knows.
//!
//! The watchdog is the server's own program run again with [`ARG`] (as cargo-nextest's
//! double-spawn is), not a fork: a server with threads may start a new one safely. A thread of
//! the server waits on it, so its death is seen at once; a new one is started and told every
//! group still running, and while none can be started the server is not safe to run CLIs in,
//! which [`status`] says.

use std::collections::HashSet;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use nix::fcntl::OFlag;
use nix::sys::signal::{SigHandler, Signal, killpg, signal};
use nix::unistd::{Pid, pipe2};

use crate::sync::lock;

/// The first argument that makes the server's program the watchdog (see [`serve_if_asked`]).
pub const ARG: &str = "__claude-proxy-watchdog";

/// How long to wait between tries to start a watchdog that could not be started.
const RETRY: Duration = Duration::from_secs(1);

static WATCHDOG: OnceLock<Mutex<Watch>> = OnceLock::new();

/// What the server knows of its watchdog, and the groups it has told it of.
#[derive(Debug)]
struct Watch {
    /// The write end of the pipe the running watchdog reads; None while there is none.
    pipe: Option<File>,
    pid: Option<u32>,
    groups: HashSet<u32>,
    /// How many times a watchdog died and another was started.
    restarts: u64,
    /// Why none runs now.
    down: Option<String>,
}

/// The watchdog as the server sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// None was started (a library user's own process, the tests of the library).
    NotStarted,
    Running {
        pid: u32,
        restarts: u64,
    },
    /// It died and no other could be started: a CLI started now would outlive a killed server.
    Down {
        why: String,
        restarts: u64,
    },
}

/// Starts the watchdog, and a thread that starts another whenever it dies. Without it (in
/// tests, or a library user's own process) groups are still ended on every path but the
/// server's sudden death.
pub fn start() -> io::Result<()> {
    let (child, pipe) = spawn_watchdog(&HashSet::new())?;
    let pid = child.id();
    let watch = Watch {
        pipe: Some(pipe),
        pid: Some(pid),
        groups: HashSet::new(),
        restarts: 0,
        down: None,
    };
    if WATCHDOG.set(Mutex::new(watch)).is_err() {
        return Err(io::Error::other("the watchdog was already started"));
    }
    std::thread::Builder::new()
        .name("watchdog-keeper".into())
        .spawn(move || keep(child))?;
    Ok(())
}

/// What the server knows of its watchdog now.
pub fn status() -> Status {
    let Some(watch) = WATCHDOG.get() else {
        return Status::NotStarted;
    };
    let watch = lock(watch);
    match (watch.pid, &watch.down) {
        (Some(pid), None) => Status::Running {
            pid,
            restarts: watch.restarts,
        },
        (_, down) => Status::Down {
            why: down.clone().unwrap_or_else(|| "it is being started".into()),
            restarts: watch.restarts,
        },
    }
}

/// Whether `pid` is the watchdog (its keeper reaps it).
pub(super) fn is_watchdog(pid: u32) -> bool {
    WATCHDOG
        .get()
        .is_some_and(|watch| lock(watch).pid == Some(pid))
}

/// Tells the watchdog about a new group.
pub fn watch_group(pgid: u32) {
    update(b'+', pgid);
}

/// Tells the watchdog a group is gone.
pub fn forget_group(pgid: u32) {
    update(b'-', pgid);
}

fn update(op: u8, pgid: u32) {
    let Some(watch) = WATCHDOG.get() else { return };
    let mut watch = lock(watch);
    if op == b'+' {
        watch.groups.insert(pgid);
    } else {
        watch.groups.remove(&pgid);
    }
    if let Some(pipe) = &mut watch.pipe {
        // Five bytes to a pipe the watchdog keeps reading: one atomic write that does not
        // block. A failed one means the watchdog is gone, which its keeper sees at once and
        // mends, telling the next one every group.
        let _ = pipe.write_all(&record(op, pgid));
    }
}

fn record(op: u8, pgid: u32) -> [u8; 5] {
    let mut record = [0u8; 5];
    record[0] = op;
    record[1..].copy_from_slice(&pgid.to_le_bytes());
    record
}

/// Runs the server's program as a watchdog, told `groups` before it is handed over.
fn spawn_watchdog(groups: &HashSet<u32>) -> io::Result<(Child, File)> {
    // Close-on-exec: a CLI that inherited the write end would keep the pipe open after the
    // server's death, and the watchdog would never notice.
    let (read_end, write_end) = pipe2(OFlag::O_CLOEXEC).map_err(io::Error::from)?;
    // This program, even if its file was replaced since it started.
    let child = Command::new("/proc/self/exe")
        .arg0("claude-proxy")
        .arg(ARG)
        .env_clear()
        .stdin(Stdio::from(read_end))
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()?;
    let mut pipe = File::from(write_end);
    for &pgid in groups {
        pipe.write_all(&record(b'+', pgid))?;
    }
    Ok((child, pipe))
}

/// The keeper's whole life: wait for the watchdog to end (it only does when killed), then
/// start another, telling it every group that runs.
fn keep(mut child: Child) {
    let watch = WATCHDOG.get().expect("set before the keeper starts");
    loop {
        let ended = wait_for_end(&child);
        {
            let mut watch = lock(watch);
            watch.pipe = None;
            watch.pid = None;
            watch.down = Some(ended);
            tracing::error!(
                why = watch.down.as_deref(),
                "the watchdog is gone; starting another"
            );
        }
        child = loop {
            let groups = lock(watch).groups.clone();
            match spawn_watchdog(&groups) {
                Ok((child, pipe)) => {
                    let mut watch = lock(watch);
                    // Groups that came and went while it started are told now.
                    let mut pipe = pipe;
                    for &pgid in watch.groups.difference(&groups) {
                        let _ = pipe.write_all(&record(b'+', pgid));
                    }
                    for &pgid in groups.difference(&watch.groups) {
                        let _ = pipe.write_all(&record(b'-', pgid));
                    }
                    watch.pipe = Some(pipe);
                    watch.pid = Some(child.id());
                    watch.down = None;
                    watch.restarts += 1;
                    tracing::info!(pid = child.id(), "a new watchdog runs");
                    break child;
                }
                Err(err) => {
                    let why = format!("no watchdog process can be started: {err}");
                    tracing::error!(%why, "CLIs would outlive a killed server; no agent is started until one runs");
                    lock(watch).down = Some(why);
                    std::thread::sleep(RETRY);
                }
            }
        };
    }
}

/// Waits until the watchdog has ended, and says how. A watchdog that is stopped (SIGSTOP) is
/// alive but could not act: it is told to go on at once.
fn wait_for_end(child: &Child) -> String {
    use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
    let pid = Pid::from_raw(child.id() as i32);
    loop {
        match waitpid(pid, Some(WaitPidFlag::WUNTRACED)) {
            Ok(WaitStatus::Stopped(_, signal)) => {
                tracing::warn!(%signal, "the watchdog was stopped; it goes on");
                let _ = nix::sys::signal::kill(pid, Signal::SIGCONT);
            }
            Ok(WaitStatus::Exited(_, code)) => {
                return format!("the watchdog process ended (exit status: {code})");
            }
            Ok(WaitStatus::Signaled(_, signal, _)) => {
                return format!("the watchdog process ended (signal: {signal})");
            }
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(err) => return format!("the watchdog process could not be waited for: {err}"),
        }
    }
}

/// When the program was started as the watchdog, serves as one and exits; else returns. Call
/// it first thing in `main`.
pub fn serve_if_asked() {
    if std::env::args_os().nth(1).is_some_and(|arg| arg == ARG) {
        // Run from /proc/self/exe, it would be `exe` in `ps`: it is the server's.
        let _ = nix::sys::prctl::set_name(c"claude-proxy");
        // The pipe is its standard input.
        // SAFETY: fd 0 is this process's own, and nothing else takes it.
        #[allow(unsafe_code)]
        let pipe = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(0) };
        watch(pipe);
    }
}

/// The watchdog's whole life: note groups until the server's end of the pipe closes, then
/// kill what is left and exit.
fn watch(read_end: OwnedFd) -> ! {
    // Ctrl-C in a terminal reaches the server's whole process group, this process included:
    // only the pipe's end may end the watchdog.
    // SAFETY: installing SIG_IGN runs no handler code.
    #[allow(unsafe_code)]
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
