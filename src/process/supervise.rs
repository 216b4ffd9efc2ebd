//! Supervision of one child in three phases, each a function of its own, as cargo-nextest's
//! runner does it:
//!
//! 1. **running**: its output is passed on until it exits by itself, is told to stop, or runs
//!    past a deadline;
//! 2. **terminating**: SIGTERM to its whole group, SIGKILL after the grace period, output still
//!    read so a child that writes while it exits never blocks, until the leader is reaped;
//! 3. **draining**: the rest of its output, and whatever it left behind in its group, ended
//!    politely, then not.

use std::future::Future;
use std::io;
use std::os::unix::process::ExitStatusExt;
use std::pin::Pin;
use std::process::ExitStatus;
use std::time::Duration;

use bytes::Bytes;
use nix::sys::signal::Signal;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, ChildStdin, ChildStdout};
use tokio::signal::unix::{Signal as SignalStream, SignalKind, signal};
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, sleep, sleep_until};
use tokio_util::sync::CancellationToken;

use super::group::ProcessGroup;
use super::lines::{Frame, LineReader};

/// How much of the child's stderr is kept to explain a failure.
pub const STDERR_TAIL_BYTES: usize = 4096;
/// How often a group whose leader is gone is checked for processes left behind.
const GROUP_POLL: Duration = Duration::from_millis(20);

/// Why a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// By itself.
    Exited,
    /// It was told to stop.
    Stopped,
    /// It ran past the whole run's limit.
    TimedOut,
    /// It wrote no line for the idle limit.
    IdleTimedOut,
}

/// How the leader's life ended, as `wait` reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exit {
    Code(i32),
    Signal(i32),
    /// `wait` itself failed, so how the child ended is unknown; the reason.
    WaitFailed(String),
}

impl Exit {
    fn of(waited: io::Result<ExitStatus>) -> Self {
        match waited {
            Ok(status) => match (status.code(), status.signal()) {
                (Some(code), _) => Exit::Code(code),
                (None, Some(signal)) => Exit::Signal(signal),
                (None, None) => Exit::WaitFailed(format!(
                    "wait reported neither an exit code nor a signal (status {})",
                    status.into_raw()
                )),
            },
            Err(err) => Exit::WaitFailed(format!("waiting for the process failed: {err}")),
        }
    }

    pub fn code(&self) -> Option<i32> {
        match self {
            Exit::Code(code) => Some(*code),
            _ => None,
        }
    }

    pub fn signal(&self) -> Option<i32> {
        match self {
            Exit::Signal(signal) => Some(*signal),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Outcome {
    pub ending: Ending,
    pub exit: Exit,
    /// The last bytes of the child's stderr.
    pub stderr_tail: Bytes,
    pub duration: Duration,
}

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

/// A child that has been spawned and not yet supervised to its end.
#[derive(Debug)]
pub struct Spawned {
    pub(super) child: Child,
    pub(super) pid: u32,
    /// What is left to write to its stdin; None once it is all written and stdin is closed.
    pub(super) input_left: Option<InputLeft>,
    pub(super) idle_paused: Option<watch::Receiver<bool>>,
    pub(super) limits: Limits,
    pub(super) started: std::time::Instant,
    /// Its exit code says which signal ended the program it ran (`128 + n`, as bwrap and
    /// shells report it).
    pub(super) signal_in_exit_code: bool,
}

/// The child's stdin, and what is still to be written to it.
#[derive(Debug)]
pub(super) struct InputLeft {
    pub(super) stdin: ChildStdin,
    pub(super) now: Bytes,
    pub(super) later: Option<mpsc::Receiver<Bytes>>,
}

impl Drop for Spawned {
    /// The group has been ended by now (or, if a run was abandoned, its leader is killed by
    /// `kill_on_drop`): the watchdog can let it go.
    fn drop(&mut self) {
        super::watchdog::forget_group(self.pid);
    }
}

/// What the running phase ended with.
enum Running {
    Exited(io::Result<ExitStatus>),
    MustEnd(Ending),
}

impl Spawned {
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Resolves once the leader has exited (it is not reaped of its group: `supervise` still
    /// does that). Cancel-safe, so a child kept waiting can be watched for its death.
    pub async fn exited(&mut self) {
        let _ = self.child.wait().await;
    }

    /// The leader has already exited.
    pub fn has_exited(&mut self) -> bool {
        !matches!(self.child.try_wait(), Ok(None))
    }

    /// The run's clock (its whole-run limit, and the duration its outcome reports) starts now:
    /// for a child started ahead of the run it serves, the run begins when it is handed over.
    pub fn restart_clock(&mut self) {
        self.started = std::time::Instant::now();
    }

    /// Supervises the child to its end, and reaps it and its group. Its stdout lines go to
    /// `on_lines` as they come, all that were ready together in one call; it must not block,
    /// since `stop` and the deadlines wait while it runs.
    pub async fn supervise(
        mut self,
        stop: &CancellationToken,
        mut on_lines: impl FnMut(Vec<Frame>),
    ) -> Outcome {
        let stdout = self.child.stdout.take().expect("stdout is piped");
        let stderr = self.child.stderr.take().expect("stderr is piped");
        let mut output = Output::new(
            stdout,
            stderr,
            self.input_left.take(),
            self.limits.max_line_bytes,
        );
        let mut termination = Termination::NotBegun;

        let (ending, waited) = match self.running(&mut output, stop, &mut on_lines).await {
            Running::Exited(waited) => (Ending::Exited, waited),
            Running::MustEnd(ending) => {
                let waited = self
                    .terminating(&mut output, &mut termination, &mut on_lines)
                    .await;
                (ending, waited)
            }
        };
        self.draining(&mut output, &mut termination, &mut on_lines)
            .await;

        let mut exit = Exit::of(waited);
        if let (true, Exit::Code(code @ 129..=192)) = (self.signal_in_exit_code, &exit) {
            exit = Exit::Signal(code - 128);
        }
        if let Exit::WaitFailed(why) = &exit {
            tracing::error!(pid = self.pid, %why, "could not learn how the CLI ended");
        }
        Outcome {
            ending,
            exit,
            stderr_tail: output.stderr_tail.take().unwrap_or_default(),
            duration: self.started.elapsed(),
        }
    }

    fn group(&self) -> ProcessGroup {
        ProcessGroup::of_leader(self.pid)
    }

    /// Passes the output on until the child exits, or must be ended.
    async fn running(
        &mut self,
        output: &mut Output,
        stop: &CancellationToken,
        on_lines: &mut impl FnMut(Vec<Frame>),
    ) -> Running {
        let limits = self.limits;
        let deadline = limits.timeout.map(|t| Instant::from_std(self.started) + t);
        let mut paused = self.idle_paused.take();
        // From now, unless the idle timeout is paused (the child is waiting, and may).
        let idle_deadline = |paused: &Option<watch::Receiver<bool>>| {
            let is_paused = paused.as_ref().is_some_and(|p| *p.borrow());
            limits
                .idle_timeout
                .filter(|_| !is_paused)
                .map(|t| Instant::now() + t)
        };
        let mut idle = idle_deadline(&paused);
        loop {
            tokio::select! {
                biased;
                () = stop.cancelled() => return Running::MustEnd(Ending::Stopped),
                () = sleep_until_some(deadline) => return Running::MustEnd(Ending::TimedOut),
                () = sleep_until_some(idle) => return Running::MustEnd(Ending::IdleTimedOut),
                waited = self.child.wait() => return Running::Exited(waited),
                () = changed(&mut paused) => idle = idle_deadline(&paused),
                batch = output.next(), if !output.finished() => if let Some(batch) = batch {
                    idle = idle_deadline(&paused);
                    on_lines(batch);
                },
            }
        }
    }

    /// Ends the group, and reads on until the leader has exited.
    async fn terminating(
        &mut self,
        output: &mut Output,
        termination: &mut Termination,
        on_lines: &mut impl FnMut(Vec<Frame>),
    ) -> io::Result<ExitStatus> {
        let group = self.group();
        termination.begin(group, self.limits.stop_grace);
        loop {
            tokio::select! {
                waited = self.child.wait() => return waited,
                () = sleep_until_some(termination.kill_at()) => termination.kill(group),
                batch = output.next(), if !output.finished() => batch.into_iter().for_each(&mut *on_lines),
            }
        }
    }

    /// With the leader reaped: ends what it left behind in its group, and reads the rest of
    /// the output, for as long as it keeps coming.
    async fn draining(
        &mut self,
        output: &mut Output,
        termination: &mut Termination,
        on_lines: &mut impl FnMut(Vec<Frame>),
    ) {
        let group = self.group();
        // Whatever of the group exits from now on is announced by SIGCHLD, when the server
        // is its subreaper: listened for before the first look, so no exit falls in between.
        let mut child_exited = signal(SignalKind::child()).ok();
        group.reap_exited();
        let mut group_alive = group.is_alive();
        if group_alive {
            termination.begin(group, self.limits.stop_grace);
        }
        let linger = self.limits.stop_grace.max(Duration::from_secs(1));
        let mut output_deadline = Instant::now() + linger;
        while group_alive || !output.finished() {
            tokio::select! {
                () = sleep_until_some(termination.kill_at()), if group_alive => termination.kill(group),
                Some(()) = recv_some(&mut child_exited), if group_alive => {
                    group.reap_exited();
                    group_alive = group.is_alive();
                }
                () = sleep(GROUP_POLL), if group_alive => {
                    group.reap_exited();
                    // After SIGKILL whatever still shows is a zombie waiting for a parent other
                    // than this server to reap it, which is not ours to do.
                    group_alive = !termination.is_killed() && group.is_alive();
                }
                () = sleep_until(output_deadline), if !output.finished() => {
                    // A process that left the group still holds the pipes open: stop reading.
                    tracing::warn!(pid = self.pid, "the CLI's pipes stayed open after it exited; closing them");
                    output.abandon();
                }
                // None ends this select too: the loop's condition then sees the output finished.
                batch = output.next(), if !output.finished() => if let Some(batch) = batch {
                    output_deadline = Instant::now() + linger;
                    on_lines(batch);
                },
            }
        }
    }
}

/// Resolves when the value changes; never, without a receiver or once its sender is gone.
async fn changed(receiver: &mut Option<watch::Receiver<bool>>) {
    if let Some(rx) = receiver {
        if rx.changed().await.is_ok() {
            return;
        }
        *receiver = None;
    }
    std::future::pending().await
}

/// The next signal; never, without a listener.
async fn recv_some(listener: &mut Option<SignalStream>) -> Option<()> {
    match listener {
        Some(listener) => listener.recv().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until_some(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// Where the ending of a group stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Termination {
    NotBegun,
    Terminating { kill_at: Instant },
    Killed,
}

impl Termination {
    /// SIGTERM to the whole group now, SIGKILL once the grace period is over; a group that
    /// was already told is left to its schedule.
    fn begin(&mut self, group: ProcessGroup, grace: Duration) {
        if *self == Termination::NotBegun {
            group.signal(Signal::SIGTERM);
            *self = Termination::Terminating {
                kill_at: Instant::now() + grace,
            };
        }
    }

    fn kill_at(self) -> Option<Instant> {
        match self {
            Termination::Terminating { kill_at } => Some(kill_at),
            _ => None,
        }
    }

    fn kill(&mut self, group: ProcessGroup) {
        group.signal(Signal::SIGKILL);
        *self = Termination::Killed;
    }

    fn is_killed(self) -> bool {
        self == Termination::Killed
    }
}

type Pending<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// The child's pipes: stdout framed into lines, stderr drained to its tail, and the rest of
/// its input being written.
struct Output {
    lines: LineReader<ChildStdout>,
    stdout_open: bool,
    stderr: Pending<Bytes>,
    stderr_tail: Option<Bytes>,
    input: Option<Pending<io::Result<()>>>,
}

impl Output {
    fn new(
        stdout: ChildStdout,
        stderr: tokio::process::ChildStderr,
        input_left: Option<InputLeft>,
        max_line_bytes: usize,
    ) -> Self {
        Self {
            lines: LineReader::new(stdout, max_line_bytes),
            stdout_open: true,
            stderr: Box::pin(async move {
                let mut stderr = stderr;
                read_tail(&mut stderr, STDERR_TAIL_BYTES).await
            }),
            stderr_tail: None,
            input: input_left.map(|left| Box::pin(write_input(left)) as Pending<_>),
        }
    }

    /// stdout and stderr are both at their end (or abandoned).
    fn finished(&self) -> bool {
        !self.stdout_open && self.stderr_tail.is_some()
    }

    /// Stops reading pipes that a process outside the group keeps open.
    fn abandon(&mut self) {
        self.stdout_open = false;
        self.stderr_tail.get_or_insert_with(Bytes::new);
    }

    /// The next lines of stdout, with all that are ready beside them; None once the output is
    /// finished. Cancel-safe: every source it waits on keeps its place between calls.
    async fn next(&mut self) -> Option<Vec<Frame>> {
        while !self.finished() {
            tokio::select! {
                written = async { self.input.as_mut().expect("guarded").await }, if self.input.is_some() => {
                    self.input = None;
                    if let Err(err) = written {
                        tracing::debug!(%err, "the CLI did not read its whole input");
                    }
                }
                tail = &mut self.stderr, if self.stderr_tail.is_none() => self.stderr_tail = Some(tail),
                batch = self.lines.next_batch(), if self.stdout_open => match batch {
                    Some(Ok(batch)) => return Some(batch),
                    Some(Err(err)) => {
                        tracing::warn!(%err, "reading the CLI's stdout failed");
                        self.stdout_open = false;
                    }
                    None => self.stdout_open = false,
                },
            }
        }
        None
    }
}

/// Writes the rest of the input, then each buffer that comes, and closes stdin once no more
/// can come: the CLI reads its prompt until EOF (and waits 3 s for a stdin that stays open),
/// and a conversation ends with its input.
async fn write_input(left: InputLeft) -> io::Result<()> {
    let InputLeft {
        mut stdin,
        now,
        later,
    } = left;
    stdin.write_all(&now).await?;
    if let Some(mut later) = later {
        while let Some(buffer) = later.recv().await {
            stdin.write_all(&buffer).await?;
        }
    }
    stdin.shutdown().await
}

async fn read_tail(reader: &mut (impl AsyncRead + Unpin), keep: usize) -> Bytes {
    // Read into the tail's own spare room, which is touched only as bytes arrive: a zeroed
    // read buffer would cost every agent its pages, though most write nothing on stderr.
    let mut tail: Vec<u8> = Vec::with_capacity(keep * 2);
    loop {
        if tail.len() == keep * 2 {
            tail.drain(..keep);
        }
        let room = (keep * 2 - tail.len()) as u64;
        match (&mut *reader).take(room).read_buf(&mut tail).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
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

    #[tokio::test]
    async fn the_stderr_tail_keeps_the_last_bytes() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let tail = read_tail(&mut data.as_slice(), 4096).await;
        assert_eq!(&tail[..], &data[data.len() - 4096..]);
    }

    #[test]
    fn a_failed_wait_is_no_exit_code() {
        let exit = Exit::of(Err(io::Error::from_raw_os_error(nix::libc::ECHILD)));
        assert!(
            matches!(&exit, Exit::WaitFailed(why) if why.contains("No child processes")),
            "{exit:?}"
        );
        assert_eq!(exit.code(), None, "a failed wait is not exit code 0");
        assert_eq!(exit.signal(), None);
    }

    #[test]
    fn exit_codes_and_signals_are_told_apart() {
        assert_eq!(Exit::of(Ok(ExitStatus::from_raw(3 << 8))), Exit::Code(3));
        assert_eq!(Exit::of(Ok(ExitStatus::from_raw(9))), Exit::Signal(9));
    }
}
