//! Child processes, from spawn to reaping: each runs as the leader of a process group of its
//! own, its stdout is framed into lines, its stderr's tail is kept, and when it ends, by itself
//! or because it was told to, its whole group ends with it.
//!
//! This is a leaf: it knows nothing of HTTP, agents or clients. It runs a program and reports
//! what happened.

mod env;
mod group;
mod lines;
mod supervise;
pub mod watchdog;

pub use env::child_environment;
pub use group::{ProcessGroup, signal_name};
pub use lines::{Frame, LineFramer};
pub use supervise::{Ending, Exit, Outcome};

use std::ffi::OsString;
use std::io;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::process::{Child, ChildStdin, Command};

/// How long a child may run and how its output is cut, the same for every child of a server.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Longest the whole run may take.
    pub timeout: Option<Duration>,
    /// Longest the child may go without writing a line.
    pub idle_timeout: Option<Duration>,
    /// Between SIGTERM and SIGKILL.
    pub stop_grace: Duration,
    /// Longest stdout line passed on; a longer one is dropped and reported.
    pub max_line_bytes: usize,
}

/// What to run.
#[derive(Debug, Clone)]
pub struct Spec {
    pub program: PathBuf,
    pub args: Vec<String>,
    /// The child's whole environment: nothing else of the server's reaches it.
    pub env: std::sync::Arc<Vec<(OsString, OsString)>>,
    pub cwd: PathBuf,
    /// Written to the child's stdin, which is then closed.
    pub input: Bytes,
}

/// A child that has been spawned and not yet supervised to its end.
#[derive(Debug)]
pub struct Spawned {
    child: Child,
    pid: u32,
    /// What is left to write of the input; None once it is all written.
    input_left: Option<(ChildStdin, Bytes)>,
    limits: Limits,
    started: Instant,
}

/// Starts the program as the leader of a new process group. Fails only when it cannot be
/// started at all.
pub fn spawn(spec: &Spec, limits: Limits) -> io::Result<Spawned> {
    let mut command = Command::new(&spec.program);
    command
        .current_dir(&spec.cwd)
        .args(&spec.args)
        .env_clear()
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        // A backstop only: every path through `Spawned::supervise` ends and reaps the group.
        .kill_on_drop(true);
    // No `pre_exec` hook: with one, the standard library forks instead of using posix_spawn,
    // which is several times slower and serializes spawns (see `watchdog`).
    let started = Instant::now();
    let mut child = command.spawn()?;
    let pid = child.id().expect("a child that was just spawned has a pid");
    watchdog::watch_group(pid);
    let stdin = child.stdin.take().expect("stdin is piped");
    Ok(Spawned {
        child,
        pid,
        input_left: hand_over_input(stdin, &spec.input),
        limits,
        started,
    })
}

/// Writes what the pipe takes of the input at once; closes stdin if that was all of it. The
/// CLI reads its prompt to the end before it starts, so it starts now, rather than when the
/// task that supervises it gets its first turn, which on a busy server can be hundreds of
/// milliseconds later. The pipe holds 64 KiB, more than most prompts.
fn hand_over_input(stdin: ChildStdin, input: &Bytes) -> Option<(ChildStdin, Bytes)> {
    // The pipe is non-blocking: a full pipe writes less, or nothing (EAGAIN).
    let written = nix::unistd::write(&stdin, input).unwrap_or(0);
    // Dropping stdin closes it: the child reads the end of its input.
    (written < input.len()).then(|| (stdin, input.slice(written..)))
}

impl Spawned {
    pub fn pid(&self) -> u32 {
        self.pid
    }
}

impl Drop for Spawned {
    /// The group has been ended by now (or, if a run was abandoned, its leader is killed by
    /// `kill_on_drop`): the watchdog can let it go.
    fn drop(&mut self) {
        watchdog::forget_group(self.pid);
    }
}
