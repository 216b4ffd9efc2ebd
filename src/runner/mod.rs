//! Runs one Claude Code CLI process to its end: feeds it the prompt, passes on its stdout
//! line by line, keeps the tail of its stderr, enforces the deadlines, and ends its whole
//! process group. It knows nothing of HTTP.

mod lines;
mod process;
mod stop;
pub mod watchdog;

use std::ffi::OsString;
use std::io;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{FutureExt, StreamExt};
use nix::sys::signal::Signal;
use std::os::unix::process::ExitStatusExt;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, ChildStderr, ChildStdin, Command};
use tokio::time::{Instant as TokioInstant, sleep_until};
use tokio_util::codec::FramedRead;

pub use lines::{Frame, LineFramer};
pub use process::{ProcessGroup, child_environment, signal_name};
pub use stop::{StopOnDrop, StopReason, StopSignal};

/// How much of the CLI's stderr is kept to explain a failure.
pub const STDERR_TAIL_BYTES: usize = 4096;
/// How often a stopping group is checked for processes left behind by its leader.
const GROUP_POLL: Duration = Duration::from_millis(20);

/// What to run, the same for every run.
#[derive(Debug, Clone)]
pub struct CliCommand {
    pub program: PathBuf,
    pub env: Arc<Vec<(OsString, OsString)>>,
    pub limits: Limits,
}

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub timeout: Option<Duration>,
    pub idle_timeout: Option<Duration>,
    pub stop_grace: Duration,
    pub max_line_bytes: usize,
}

/// One run's request.
#[derive(Debug, Clone, Default)]
pub struct Invocation {
    pub prompt: String,
    pub model: Option<String>,
    pub resume: Option<String>,
    /// Further flags, each a single `--flag=value` argument (the tool policy).
    pub policy_args: Vec<String>,
    /// Where the CLI runs; None: the server's own working directory.
    pub cwd: Option<PathBuf>,
}

impl Invocation {
    /// The CLI's arguments. The prompt is never among them: it goes on stdin, so a prompt of
    /// any size works and a prompt like `--dangerously-skip-permissions` stays a prompt.
    /// Values use the `--flag=value` form so no value is ever read as a flag.
    pub fn args(&self) -> Vec<String> {
        let mut args: Vec<String> = ["-p", "--output-format", "stream-json", "--verbose"]
            .map(String::from)
            .into();
        if let Some(model) = &self.model {
            args.push(format!("--model={model}"));
        }
        if let Some(session) = &self.resume {
            args.push(format!("--resume={session}"));
        }
        args.extend(self.policy_args.iter().cloned());
        args
    }
}

/// What the CLI wrote on stdout, in order: the lines that were ready together, as one batch,
/// so a flood costs one message per read rather than one per line.
pub type Output = Vec<Frame>;

/// The most lines, and about the most bytes, one batch gathers.
const BATCH_LINES: usize = 1024;
const BATCH_BYTES: usize = 256 * 1024;

/// Why a run ended when the CLI did not end by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    Exited,
    Stopped(StopReason),
    TimedOut,
    IdleTimedOut,
}

#[derive(Debug, Clone)]
pub struct Outcome {
    pub ending: Ending,
    /// The CLI's exit code, or None when a signal ended it.
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    /// The last bytes of the CLI's stderr.
    pub stderr_tail: Bytes,
    pub duration: Duration,
}

/// A CLI that has been spawned and not yet run to its end.
#[derive(Debug)]
pub struct Cli {
    child: Child,
    pid: u32,
    group: ProcessGroup,
    /// What is left to write of the prompt, and where; None once it is all written.
    prompt_left: Option<(ChildStdin, Bytes)>,
    limits: Limits,
    started: Instant,
}

/// Starts the CLI. Fails only when the program cannot be started at all.
pub fn spawn(command: &CliCommand, invocation: &Invocation) -> io::Result<Cli> {
    let mut cmd = Command::new(&command.program);
    if let Some(cwd) = &invocation.cwd {
        cmd.current_dir(cwd);
    }
    cmd.args(invocation.args())
        .env_clear()
        .envs(command.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        // A backstop only: every path through `Cli::run` ends and reaps the group itself.
        .kill_on_drop(true);
    // No `pre_exec` hook: with one, the standard library forks instead of using posix_spawn,
    // which is several times slower and serializes spawns (see `watchdog`).
    let started = Instant::now();
    let mut child = cmd.spawn()?;
    let pid = child.id().expect("a child that was just spawned has a pid");
    watchdog::watch_group(pid);
    let stdin = child.stdin.take().expect("stdin is piped");
    Ok(Cli {
        child,
        pid,
        group: ProcessGroup::of_leader(pid),
        prompt_left: hand_over_prompt(stdin, &invocation.prompt),
        limits: command.limits,
        started,
    })
}

/// Writes what the pipe takes of the prompt at once; closes stdin if that was all of it. The
/// CLI reads its prompt to the end before it starts, so it starts now, rather than when the
/// task that runs it gets its first turn, which on a busy server can be hundreds of
/// milliseconds later. The pipe holds 64 KiB, more than most prompts.
fn hand_over_prompt(stdin: ChildStdin, prompt: &str) -> Option<(ChildStdin, Bytes)> {
    // The pipe is non-blocking: a full pipe writes less, or nothing (EAGAIN).
    let written = nix::unistd::write(&stdin, prompt.as_bytes()).unwrap_or(0);
    let left = &prompt.as_bytes()[written..];
    // Dropping stdin closes it: the CLI reads the end of its prompt.
    (!left.is_empty()).then(|| (stdin, Bytes::copy_from_slice(left)))
}

impl Drop for Cli {
    /// The group has been ended by now (or, if a run was abandoned, its leader is killed by
    /// `kill_on_drop`): the watchdog can let it go.
    fn drop(&mut self) {
        watchdog::forget_group(self.pid);
    }
}

impl Cli {
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Runs the CLI to its end and reaps it and its group. The lines go to `on_lines` as they
    /// come, all that were ready together in one call; it must not block, since stop and the
    /// deadlines wait while it runs.
    pub async fn run(mut self, mut on_lines: impl FnMut(Output), stop: StopSignal) -> Outcome {
        let stdout = self.child.stdout.take().expect("stdout is piped");
        let stderr = self.child.stderr.take().expect("stderr is piped");
        let limits = self.limits;
        let started = TokioInstant::from_std(self.started);

        let feed = feed_prompt(self.prompt_left.take());
        tokio::pin!(feed);
        let drain = keep_tail(stderr);
        tokio::pin!(drain);
        let mut lines =
            FramedRead::with_capacity(stdout, LineFramer::new(limits.max_line_bytes), 64 * 1024);

        let far = started + Duration::from_secs(100 * 365 * 24 * 3600);
        let deadline = limits.timeout.map_or(far, |t| started + t);
        let mut idle_deadline = limits.idle_timeout.map_or(far, |t| TokioInstant::now() + t);

        let mut fed = false;
        let mut stdout_open = true;
        let mut stderr_tail: Option<Bytes> = None;
        let mut status: Option<ExitStatus> = None;
        let mut ending: Option<Ending> = None;
        let mut termination = Termination::NotStarted;
        let mut group_alive = true;
        let mut drain_deadline = far;

        loop {
            let running = status.is_none();
            if !running && !stdout_open && stderr_tail.is_some() && !group_alive {
                break;
            }
            tokio::select! {
                biased;

                _ = stop.cancelled(), if running && ending.is_none() => {
                    ending = Some(Ending::Stopped(stop.reason()));
                    self.terminate(&mut termination);
                }
                _ = sleep_until(deadline), if running && ending.is_none() => {
                    ending = Some(Ending::TimedOut);
                    self.terminate(&mut termination);
                }
                _ = sleep_until(idle_deadline), if running && ending.is_none() => {
                    ending = Some(Ending::IdleTimedOut);
                    self.terminate(&mut termination);
                }
                _ = sleep_until(termination.sigkill_at().unwrap_or(far)), if termination.sigkill_at().is_some() && group_alive => {
                    self.group.signal(Signal::SIGKILL);
                    termination = Termination::Killed;
                }
                exited = self.child.wait(), if running => {
                    let exited = exited.unwrap_or_else(|err| {
                        tracing::error!(pid = self.pid, %err, "could not wait for the CLI");
                        ExitStatus::from_raw(0)
                    });
                    status = Some(exited);
                    // Whatever the leader left behind in its group goes too: politely, then not.
                    group_alive = self.group.is_alive();
                    if group_alive {
                        self.terminate(&mut termination);
                    }
                    drain_deadline = TokioInstant::now() + limits.stop_grace.max(Duration::from_secs(1));
                }
                _ = tokio::time::sleep(GROUP_POLL), if !running && group_alive => {
                    // After SIGKILL whatever still shows is a zombie waiting for its new parent
                    // to reap it, which is not ours to do.
                    group_alive = self.group.is_alive() && termination != Termination::Killed;
                }
                _ = sleep_until(drain_deadline), if !running && (stdout_open || stderr_tail.is_none()) => {
                    // A process that left the group still holds the pipes open: stop reading.
                    tracing::warn!(pid = self.pid, "the CLI's pipes stayed open after it exited; closing them");
                    stdout_open = false;
                    stderr_tail.get_or_insert_with(Bytes::new);
                }
                result = &mut feed, if !fed => {
                    fed = true;
                    if let Err(err) = result {
                        tracing::debug!(pid = self.pid, %err, "the CLI did not read its whole prompt");
                    }
                }
                tail = &mut drain, if stderr_tail.is_none() => {
                    stderr_tail = Some(tail);
                }
                frame = lines.next(), if stdout_open => {
                    match frame {
                        Some(Ok(frame)) => {
                            if let Some(t) = limits.idle_timeout {
                                idle_deadline = TokioInstant::now() + t;
                            }
                            if !running {
                                drain_deadline = TokioInstant::now() + limits.stop_grace.max(Duration::from_secs(1));
                            }
                            let mut batch = vec![frame];
                            let mut bytes = 0;
                            // Whatever else is already framed, without waiting for more.
                            while batch.len() < BATCH_LINES && bytes < BATCH_BYTES {
                                match lines.next().now_or_never() {
                                    Some(Some(Ok(frame))) => {
                                        bytes += match &frame { Frame::Line(line) => line.len(), Frame::TooLong { .. } => 0 };
                                        batch.push(frame);
                                    }
                                    Some(None) => { stdout_open = false; break; }
                                    _ => break,
                                }
                            }
                            on_lines(batch);
                        }
                        Some(Err(err)) => {
                            tracing::warn!(pid = self.pid, %err, "reading the CLI's stdout failed");
                            stdout_open = false;
                        }
                        None => stdout_open = false,
                    }
                }
            }
        }

        let status = status.expect("the loop ends after the CLI exited");
        Outcome {
            ending: ending.unwrap_or(Ending::Exited),
            exit_code: status.code(),
            signal: status.signal(),
            stderr_tail: stderr_tail.unwrap_or_default(),
            duration: self.started.elapsed(),
        }
    }

    /// SIGTERM to the whole group now, SIGKILL once the grace period is over; a group that
    /// was already told is left to its schedule.
    fn terminate(&self, termination: &mut Termination) {
        if *termination == Termination::NotStarted {
            self.group.signal(Signal::SIGTERM);
            *termination = Termination::Terminating {
                sigkill_at: TokioInstant::now() + self.limits.stop_grace,
            };
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Termination {
    NotStarted,
    Terminating { sigkill_at: TokioInstant },
    Killed,
}

impl Termination {
    fn sigkill_at(self) -> Option<TokioInstant> {
        match self {
            Termination::Terminating { sigkill_at } => Some(sigkill_at),
            _ => None,
        }
    }
}

/// Writes the rest of the prompt and closes stdin: the CLI reads its prompt until EOF, and
/// waits 3 s for a stdin that stays open.
async fn feed_prompt(left: Option<(ChildStdin, Bytes)>) -> io::Result<()> {
    let Some((mut stdin, prompt)) = left else {
        return Ok(());
    };
    stdin.write_all(&prompt).await?;
    stdin.shutdown().await
}

/// Reads stderr to its end, so the CLI never blocks on it, and keeps its last bytes.
async fn keep_tail(mut stderr: ChildStderr) -> Bytes {
    read_tail(&mut stderr, STDERR_TAIL_BYTES).await
}

async fn read_tail(reader: &mut (impl AsyncRead + Unpin), keep: usize) -> Bytes {
    let mut tail: Vec<u8> = Vec::with_capacity(keep * 2);
    let mut chunk = vec![0u8; 16 * 1024];
    loop {
        match reader.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                tail.extend_from_slice(&chunk[..n]);
                if tail.len() > keep * 2 {
                    tail.drain(..tail.len() - keep);
                }
            }
        }
    }
    if tail.len() > keep {
        tail.drain(..tail.len() - keep);
    }
    Bytes::from(tail)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_prompt_is_never_an_argument() {
        let invocation = Invocation {
            prompt: "--dangerously-skip-permissions".into(),
            model: Some("sonnet".into()),
            resume: Some("0b6e7a43-5c3e-4a51-9d0f-0b8a3b8f7c11".into()),
            ..Default::default()
        };
        assert_eq!(
            invocation.args(),
            [
                "-p",
                "--output-format",
                "stream-json",
                "--verbose",
                "--model=sonnet",
                "--resume=0b6e7a43-5c3e-4a51-9d0f-0b8a3b8f7c11"
            ]
        );
    }

    #[tokio::test]
    async fn the_stderr_tail_keeps_the_last_bytes() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let tail = read_tail(&mut data.as_slice(), 4096).await;
        assert_eq!(&tail[..], &data[data.len() - 4096..]);
    }
}
