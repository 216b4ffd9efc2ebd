//! Starting a child: a new process group, the given environment only, and its input.

use std::ffi::OsString;
use std::io;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use tokio::process::{ChildStdin, Command};
use tokio::sync::{mpsc, watch};

use super::sandbox::{Confinement, Sandbox};
use super::supervise::{InputLeft, Limits, Spawned};

/// What to run.
#[derive(Debug)]
pub struct Spec {
    pub program: PathBuf,
    pub args: Vec<String>,
    /// The child's whole environment: nothing else of the server's reaches it.
    pub env: Arc<Vec<(OsString, OsString)>>,
    pub cwd: PathBuf,
    pub input: Input,
    /// While it holds true, the child may be silent for any time: the idle timeout waits.
    pub idle_paused: Option<watch::Receiver<bool>>,
    /// Run inside this sandbox, given this of the host; None: as it is.
    pub sandbox: Option<(Arc<Sandbox>, Confinement)>,
}

/// What the child reads on stdin.
#[derive(Debug)]
pub enum Input {
    /// These bytes, then the end of its input.
    Whole(Bytes),
    /// These bytes at once, then each buffer that comes on the channel; its input ends once
    /// every sender is gone.
    Stream(Bytes, mpsc::Receiver<Bytes>),
}

/// Starts the program as the leader of a new process group. Fails only when it cannot be
/// started at all.
pub fn spawn(spec: Spec, limits: Limits) -> io::Result<Spawned> {
    let (program, args): (PathBuf, Vec<OsString>) = match &spec.sandbox {
        Some((sandbox, confinement)) => sandbox.command(&spec.program, &spec.args, confinement),
        None => (
            spec.program.clone(),
            spec.args.iter().map(OsString::from).collect(),
        ),
    };
    let mut command = Command::new(program);
    command
        .current_dir(&spec.cwd)
        .args(&args)
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
    super::watchdog::watch_group(pid);
    let stdin = child.stdin.take().expect("stdin is piped");
    let (now, later) = match spec.input {
        Input::Whole(bytes) => (bytes, None),
        Input::Stream(first, rest) => (first, Some(rest)),
    };
    Ok(Spawned {
        child,
        pid,
        input_left: hand_over_input(stdin, now, later),
        idle_paused: spec.idle_paused,
        limits,
        started,
        // bwrap exits with 128 + the signal that ended its child.
        signal_in_exit_code: spec.sandbox.is_some(),
    })
}

/// Writes what the pipe takes of the input at once; closes stdin if that was all of it. The
/// CLI reads its prompt to the end before it starts, so it starts now, rather than when the
/// task that supervises it gets its first turn, which on a busy server can be hundreds of
/// milliseconds later. The pipe holds 64 KiB, more than most prompts.
fn hand_over_input(
    stdin: ChildStdin,
    now: Bytes,
    later: Option<mpsc::Receiver<Bytes>>,
) -> Option<InputLeft> {
    // The pipe is non-blocking: a full pipe writes less, or nothing (EAGAIN).
    let written = nix::unistd::write(&stdin, &now).unwrap_or(0);
    // Dropping stdin closes it: the child reads the end of its input.
    (written < now.len() || later.is_some()).then(|| InputLeft {
        stdin,
        now: now.slice(written..),
        later,
    })
}
