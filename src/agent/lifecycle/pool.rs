//! The pool of CLIs started ahead of the requests they serve (PROXY_WARM_POOL): each already
//! past its start-up, in streaming-input mode, waiting for its first message. A request whose
//! run has the same [`Shape`] takes one; a CLI serves one run only and never comes back.
//!
//! This file is the pool's book (which CLIs wait, for which shapes, which shapes are wanted)
//! and the task that keeps each waiting CLI until it is taken, dies, waits too long, or the
//! server shuts down. `warm.rs` starts them.

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use sha2::{Digest, Sha256};
use tokio::sync::{Notify, mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::agent::admission::keys::Client;
use crate::agent::admission::request::Run;
use crate::agent::lifecycle::run_file::RunFiles;
use crate::metrics::Metrics;
use crate::process;

/// How many shapes learned from requests are remembered, the most recent first: a shape
/// beyond them is not kept warm.
pub const LEARNED_SHAPES: usize = 32;
/// How much a new cold run's time to its first line weighs in the average the time saved is
/// measured against.
const COLD_WEIGHT: f64 = 0.2;
/// A CLI's start-up until a cold run has measured it.
const START_UP_GUESS: Duration = Duration::from_secs(1);
/// How many start-ups the pool waits once requests outrun it. The gaps between a burst's
/// requests come and go: with a pause of one start-up, 200 requests from 4 clients on 2 cores
/// found it refilling three times mid-burst (8 hits), and their median was 1.10x a cold
/// proxy's, each refill starting two CLIs beside the requests' four.
const OUTRUN_PAUSE_START_UPS: u32 = 3;

/// A shape the operator asks to keep warm (PROXY_WARM_SHAPES), for each client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OperatorShape {
    /// `/agent/stream` (and `/agent/start`) with only a prompt.
    Stream,
    /// The same with `"interactive": true`.
    Interactive,
    /// The compatible APIs' default: their tools and system prompt, partial messages.
    Chat,
}

impl OperatorShape {
    pub const NAMES: &'static str = "stream, interactive, chat";

    pub fn parse(name: &str) -> Result<Self, String> {
        match name.trim() {
            "stream" => Ok(Self::Stream),
            "interactive" => Ok(Self::Interactive),
            "chat" => Ok(Self::Chat),
            other => Err(format!(
                "`{other}` is not a shape: name some of {}",
                Self::NAMES
            )),
        }
    }
}

/// The pool's settings, fixed at start.
#[derive(Debug, Clone)]
pub struct WarmSettings {
    /// Most CLIs waiting at once; 0: no pool.
    pub size: usize,
    /// Longest a CLI waits to be taken before it is ended (and replaced, if its shape is
    /// still wanted).
    pub idle: Duration,
    pub shapes: Vec<OperatorShape>,
    /// Whose CLIs the operator's shapes are: each client key's, or the one anonymous
    /// client's.
    pub owners: Vec<Client>,
}

impl Default for WarmSettings {
    fn default() -> Self {
        Self {
            size: 0,
            idle: Duration::from_secs(600),
            shapes: Vec::new(),
            owners: Vec::new(),
        }
    }
}

/// Everything about a run that is fixed when its CLI starts, but its model and permission
/// mode (a taken CLI is told those): two runs of one shape can be served by the same CLI.
/// It is the CLI's arguments themselves (so a flag added to `cli::Invocation` is part of it
/// with no change here), the system prompt they name a file of, the working directory, and
/// the owner, so a CLI started for one key never serves another.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Shape {
    owner: Client,
    cwd: Arc<Path>,
    interactive: bool,
    /// The CLI's arguments, without the model, the permission mode and the system prompt's
    /// file (a file of each CLI's own).
    args: Vec<String>,
    system_prompt: Option<String>,
}

impl Shape {
    /// None for a run no CLI started ahead can serve: one that resumes a session, which is
    /// named when the CLI starts.
    pub fn of(run: &Run) -> Option<Self> {
        // Nor one with MCP servers: its configuration is a file of its own, with a client
        // tool server's token or the servers it named.
        if run.resume.is_some() || run.mcp_config.is_some() {
            return None;
        }
        let mut invocation = run.invocation(None, None);
        invocation.model = None;
        invocation.tools.permission_mode = None;
        // As a CLI of the pool reads its input: a conversation, or one message.
        invocation.input = pool_input(run);
        Some(Self {
            owner: run.owner,
            cwd: Arc::clone(&run.cwd),
            interactive: run.interactive,
            args: invocation.args(),
            system_prompt: run.system_prompt.clone(),
        })
    }

    /// A name that tells shapes apart and says nothing of what they hold (their owner, paths
    /// and prompts): for /health and /metrics.
    pub fn label(&self) -> String {
        let digest = Sha256::digest(format!("{self:?}").as_bytes());
        let kind = if self.interactive {
            "interactive"
        } else {
            "one-shot"
        };
        let hex: String = digest[..6].iter().map(|b| format!("{b:02x}")).collect();
        format!("{kind}-{hex}")
    }
}

/// How a CLI of the pool started for `run` reads its input: an interactive run's is a
/// conversation; a one-shot run's is its prompt as one message, then the end of its input.
pub fn pool_input(run: &Run) -> crate::cli::Input {
    match run.interactive {
        true => crate::cli::Input::Conversation,
        false => crate::cli::Input::Message,
    }
}

/// A CLI of the pool, handed to the run that took it.
#[derive(Debug)]
pub struct Taken {
    pub cli: process::Spawned,
    /// Its stdin's queue: nothing has been written to it.
    pub stdin: mpsc::Sender<Bytes>,
    /// For a conversation: tells the process layer when the CLI may be silent.
    pub idle_paused: watch::Sender<bool>,
    pub files: RunFiles,
    /// What it was started with.
    pub model: Option<String>,
    pub permission_mode: Option<&'static str>,
}

/// A taken CLI on its way to the run that took it. Dropped with the CLI still in it (the
/// request went away as it was handed over), it ends the CLI and its group.
#[derive(Debug)]
pub struct Handover {
    taken: Option<Taken>,
    tasks: TaskTracker,
}

impl Drop for Handover {
    fn drop(&mut self) {
        if let Some(taken) = self.taken.take() {
            self.tasks.spawn(async move {
                end_group(taken.cli).await;
            });
        }
    }
}

/// A CLI just started for the pool, before it waits.
#[derive(Debug)]
pub struct Started {
    pub cli: process::Spawned,
    pub stdin: mpsc::Sender<Bytes>,
    pub idle_paused: watch::Sender<bool>,
    pub files: RunFiles,
    /// The run it was started from (its prompt empty).
    pub template: Run,
}

/// The pool, as /health shows it.
#[derive(Debug, Clone, Default)]
pub struct WarmView {
    pub size: usize,
    pub waiting: usize,
    pub hits: u64,
    pub misses: u64,
    pub saved: Duration,
    pub shapes: Vec<WarmShapeView>,
}

#[derive(Debug, Clone)]
pub struct WarmShapeView {
    /// [`Shape::label`].
    pub shape: String,
    /// operator or learned.
    pub source: &'static str,
    pub waiting: usize,
}

#[derive(Debug)]
pub struct WarmPool {
    pub settings: WarmSettings,
    state: Mutex<State>,
    /// Told whenever the pool may want another CLI: one was taken or asked for, one ended, an
    /// agent ended (and gave its place back).
    pub wanted: Notify,
    next_id: AtomicU64,
    metrics: Arc<Metrics>,
}

#[derive(Debug, Default)]
struct State {
    waiting: Vec<Waiting>,
    /// The operator's shapes, in the order named.
    operator: Vec<Want>,
    /// Shapes of recent requests, the most recent first.
    learned: VecDeque<Want>,
    hits: u64,
    misses: u64,
    saved: Duration,
    /// Average time from a cold CLI's spawn to its first line.
    cold_first_line: Option<Duration>,
    /// Requests outrun the pool (one took a CLI still in its start-up): it starts none until
    /// then, a few start-ups on (`OUTRUN_PAUSE_START_UPS`). On a machine busy starting the
    /// requests' CLIs, one more started ahead only slows them (measured with 200 requests from
    /// 4 clients on 2 cores: the slowest was 1.34x the cold proxy's), and the requests have no
    /// CLI of the pool's to wait for anyway.
    paused_until: Option<Instant>,
    /// Runs that took a waiting CLI and whose first turn is under way: the pool starts none
    /// until each has its result (`first_turn_done`), or a start-up's time after the last was
    /// taken, whichever is first. A CLI starting beside a hit's first turn takes the cores that
    /// turn needs: measured with the pinned CLI on 2 cores, its first answer came 197-285 ms
    /// after the message instead of 144-192 ms.
    first_turns: usize,
    first_turn_until: Option<Instant>,
    /// The shape labels /metrics has a gauge for.
    exported: HashSet<String>,
}

/// A shape to keep warm, and the run its CLIs are started from.
#[derive(Debug, Clone)]
struct Want {
    shape: Shape,
    /// [`Shape::label`], made once.
    label: String,
    template: Run,
    seen: Instant,
}

/// A CLI that waits to be taken. Its process is with its keeper task; this is how to claim it.
#[derive(Debug)]
struct Waiting {
    id: u64,
    pid: u32,
    shape: Shape,
    label: String,
    model: Option<String>,
    permission_mode: Option<&'static str>,
    claim: oneshot::Sender<oneshot::Sender<Handover>>,
    spawned: Instant,
}

impl WarmPool {
    pub fn new(settings: WarmSettings, metrics: Arc<Metrics>) -> Self {
        Self {
            settings,
            state: Mutex::default(),
            wanted: Notify::new(),
            next_id: AtomicU64::new(1),
            metrics,
        }
    }

    pub fn is_on(&self) -> bool {
        self.settings.size > 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        crate::sync::lock(&self.state)
    }

    /// The runs the operator's shapes are started from.
    pub fn set_operator_shapes(&self, templates: Vec<Run>) {
        let now = Instant::now();
        self.lock().operator = templates
            .into_iter()
            .filter_map(|run| {
                let shape = Shape::of(&run)?;
                Some(Want {
                    label: shape.label(),
                    shape,
                    template: blank(run),
                    seen: now,
                })
            })
            .collect();
        self.wanted.notify_one();
    }

    /// A waiting CLI of the run's shape, if there is one, which no one else can take from now
    /// on; the shape is learned either way. None for a run no CLI of the pool can serve, or
    /// with no pool.
    pub async fn take(&self, run: &Run) -> Option<Taken> {
        if !self.is_on() {
            return None;
        }
        let shape = Shape::of(run)?;
        let waiting = {
            let mut state = self.lock();
            state.learn(&shape, run);
            let of_shape = |w: &Waiting| w.shape == shape;
            // One started with the run's model and mode needs no control request.
            let at = state
                .waiting
                .iter()
                .position(|w| {
                    of_shape(w)
                        && w.model == run.model
                        && w.permission_mode == run.tools.permission_mode
                })
                .or_else(|| state.waiting.iter().position(of_shape));
            let waiting = at.map(|at| state.waiting.remove(at));
            // Outrun: taken in its start-up, or none left while the pool already waits (for a
            // start-up, or for the first turns of those just taken).
            let now = Instant::now();
            let start_up = state.start_up();
            let outrun = match &waiting {
                Some(taken) => now - taken.spawned < start_up,
                None => state.starts_held_at(now).is_some(),
            };
            if outrun {
                state.paused_until = Some(now + start_up * OUTRUN_PAUSE_START_UPS);
            }
            // Held before the pool is told: it would start the replacement at once.
            if waiting.is_some() {
                state.took_for_first_turn(now);
            }
            self.export(&mut state);
            waiting
        };
        let found = waiting.is_some();
        self.wanted.notify_one();
        let taken = match waiting {
            Some(waiting) => {
                let (reply, handed) = oneshot::channel();
                match waiting.claim.send(reply) {
                    // None when it died as it was taken (its keeper ends it). Out of its
                    // wrapper at once: from here the caller holds the CLI.
                    Ok(()) => handed
                        .await
                        .ok()
                        .and_then(|mut handover| handover.taken.take()),
                    Err(_) => None,
                }
            }
            None => None,
        };
        let mut state = self.lock();
        match &taken {
            Some(_) => {
                state.hits += 1;
                self.metrics.warm_hits.inc();
            }
            None => {
                state.misses += 1;
                self.metrics.warm_misses.inc();
            }
        }
        if found && taken.is_none() {
            // It died as it was taken: no first turn holds the pool.
            drop(state);
            self.first_turn_done();
        }
        taken
    }

    /// Until when the pool starts no CLI: requests outrun it, or a CLI taken is in its first
    /// turn.
    pub fn paused_until(&self) -> Option<Instant> {
        self.lock().starts_held_at(Instant::now())
    }

    /// The first turn of a run that took a waiting CLI has ended (or the run did before it):
    /// once no other is under way, the pool may start CLIs again (unless requests outrun it).
    pub fn first_turn_done(&self) {
        let mut state = self.lock();
        state.first_turns = state.first_turns.saturating_sub(1);
        if state.first_turns == 0 {
            state.first_turn_until = None;
            drop(state);
            self.wanted.notify_one();
        }
    }

    /// What to start now, at most `room` CLIs (the process slots free): each wanted shape's
    /// share of the pool that is not waiting yet. The operator's shapes come first, then the
    /// learned ones, the most recent first; a learned shape not asked for within the idle time
    /// is forgotten. A full pool ends its CLIs beyond their shape's share (the oldest first,
    /// such as those of a shape no longer wanted) to make room for the shapes that lack.
    pub fn wanted_now(&self, room: usize) -> Vec<Run> {
        let now = Instant::now();
        let mut state = self.lock();
        if state.starts_held_at(now).is_some() {
            return Vec::new();
        }
        let idle = self.settings.idle;
        state.learned.retain(|want| now - want.seen < idle);
        let State {
            waiting,
            operator,
            learned,
            ..
        } = &mut *state;
        let wants: Vec<&Want> = operator.iter().chain(learned.iter()).collect();
        let mut share = vec![0usize; wants.len()];
        let slots = if wants.is_empty() {
            0
        } else {
            self.settings.size
        };
        for slot in 0..slots {
            share[slot % wants.len()] += 1;
        }
        let share_of = |shape: &Shape| {
            wants
                .iter()
                .zip(&share)
                .find(|(want, _)| want.shape == *shape)
                .map_or(0, |(_, share)| *share)
        };
        let mut start = Vec::new();
        for (want, share) in wants.iter().zip(&share) {
            let have = waiting.iter().filter(|w| w.shape == want.shape).count();
            for _ in have..*share {
                start.push(want.template.clone());
            }
        }
        // The waiting CLIs past their shape's share, the oldest first.
        let mut kept: HashMap<&Shape, usize> = HashMap::new();
        let mut surplus = Vec::new();
        for w in waiting.iter() {
            let kept = kept.entry(&w.shape).or_default();
            if *kept < share_of(&w.shape) {
                *kept += 1;
            } else {
                surplus.push(w.id);
            }
        }
        let free = self.settings.size.saturating_sub(waiting.len());
        surplus.truncate(start.len().saturating_sub(free));
        let evicted = surplus.len();
        if evicted > 0 {
            // Dropped, a claim tells its keeper to end its CLI.
            waiting.retain(|w| !surplus.contains(&w.id));
            self.export(&mut state);
        }
        start.truncate((free + evicted).min(room + evicted));
        start
    }

    /// Puts a started CLI in the book; returns its id and the channel it is claimed on.
    pub fn add(&self, started: &Started) -> (u64, oneshot::Receiver<oneshot::Sender<Handover>>) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (claim, claimed) = oneshot::channel();
        let shape = Shape::of(&started.template).expect("a template has a shape");
        let mut state = self.lock();
        state.waiting.push(Waiting {
            id,
            pid: started.cli.pid(),
            label: shape.label(),
            shape,
            model: started.template.model.clone(),
            permission_mode: started.template.tools.permission_mode,
            claim,
            spawned: Instant::now(),
        });
        self.export(&mut state);
        (id, claimed)
    }

    /// Ends the oldest waiting CLIs until at most `slots` wait: the processes PROXY_MAX_AGENTS
    /// allows are the running agents' first.
    pub fn make_room(&self, slots: usize) {
        let mut state = self.lock();
        let over = state.waiting.len().saturating_sub(slots);
        if over > 0 {
            // Dropped, a claim tells its keeper to end its CLI.
            state.waiting.drain(..over);
            self.export(&mut state);
        }
    }

    /// Takes a CLI out of the book (it ended), if it is still there.
    fn forget(&self, id: u64) {
        let mut state = self.lock();
        state.waiting.retain(|w| w.id != id);
        self.export(&mut state);
    }

    pub fn len(&self) -> usize {
        self.lock().waiting.len()
    }

    /// The waiting CLIs' process ids (each the leader of its group).
    pub fn pids(&self) -> Vec<u32> {
        self.lock().waiting.iter().map(|w| w.pid).collect()
    }

    /// A CLI started for its run (not taken from the pool) wrote its first line this long
    /// after its spawn.
    pub fn cold_first_line(&self, took: Duration) {
        let mut state = self.lock();
        state.cold_first_line = Some(match state.cold_first_line {
            Some(average) => average.mul_f64(1.0 - COLD_WEIGHT) + took.mul_f64(COLD_WEIGHT),
            None => took,
        });
    }

    /// A CLI taken from the pool wrote its first line this long after it was handed its run:
    /// the time saved is what a cold CLI takes on average, less that.
    pub fn warm_first_line(&self, took: Duration) {
        let mut state = self.lock();
        if let Some(saved) = state.cold_first_line.and_then(|c| c.checked_sub(took)) {
            state.saved += saved;
            self.metrics.warm_saved_seconds.inc_by(saved.as_secs_f64());
        }
    }

    pub fn view(&self) -> WarmView {
        let state = self.lock();
        let count = |shape: &Shape| state.waiting.iter().filter(|w| w.shape == *shape).count();
        let shapes = state
            .operator
            .iter()
            .map(|w| ("operator", w))
            .chain(state.learned.iter().map(|w| ("learned", w)))
            .map(|(source, want)| WarmShapeView {
                shape: want.label.clone(),
                source,
                waiting: count(&want.shape),
            })
            .collect();
        WarmView {
            size: self.settings.size,
            waiting: state.waiting.len(),
            hits: state.hits,
            misses: state.misses,
            saved: state.saved,
            shapes,
        }
    }

    /// The gauges of /metrics, from the book as it is.
    fn export(&self, state: &mut State) {
        let mut counts: HashMap<&str, i64> = HashMap::new();
        for waiting in &state.waiting {
            *counts.entry(waiting.label.as_str()).or_default() += 1;
        }
        for gone in state
            .exported
            .iter()
            .filter(|l| !counts.contains_key(l.as_str()))
        {
            self.metrics.warm_clis.remove(&crate::metrics::ShapeLabel {
                shape: gone.clone(),
            });
        }
        for (label, count) in &counts {
            self.metrics
                .warm_clis
                .get_or_create(&crate::metrics::ShapeLabel {
                    shape: (*label).to_owned(),
                })
                .set(*count);
        }
        state.exported = counts.keys().map(|l| (*l).to_owned()).collect();
    }
}

impl State {
    /// The end of the pause `now` is in, if it is in one.
    fn pause_at(&self, now: Instant) -> Option<Instant> {
        self.paused_until.filter(|until| now < *until)
    }

    /// The end of the pause or first turn that holds the pool's starts at `now`, if any.
    fn starts_held_at(&self, now: Instant) -> Option<Instant> {
        let first_turn = self.first_turn_until.filter(|until| now < *until);
        self.pause_at(now).max(first_turn)
    }

    /// A run took a waiting CLI for its first turn.
    fn took_for_first_turn(&mut self, now: Instant) {
        if self.first_turn_until.is_none_or(|until| until <= now) {
            // Those the hold ran out on no longer count: it is bounded even if one never says.
            self.first_turns = 0;
        }
        self.first_turns += 1;
        self.first_turn_until = Some(now + self.start_up());
    }

    /// How long a CLI takes to start, as cold runs measured it.
    fn start_up(&self) -> Duration {
        self.cold_first_line.unwrap_or(START_UP_GUESS)
    }

    /// A request of this shape came: the shape is the most recent, and its CLIs are started
    /// from then on with the model and permission mode it asked for.
    fn learn(&mut self, shape: &Shape, run: &Run) {
        let now = Instant::now();
        if let Some(want) = self.operator.iter_mut().find(|w| w.shape == *shape) {
            want.seen = now;
            want.template = blank(run.clone());
            return;
        }
        let label = match self.learned.iter().position(|w| w.shape == *shape) {
            Some(at) => self.learned.remove(at).expect("found").label,
            None => shape.label(),
        };
        self.learned.push_front(Want {
            label,
            shape: shape.clone(),
            template: blank(run.clone()),
            seen: now,
        });
        self.learned.truncate(LEARNED_SHAPES);
    }
}

/// The run with nothing of its request's content: a CLI started from it is given no prompt.
fn blank(run: Run) -> Run {
    Run {
        prompt: String::new(),
        message: None,
        ..run
    }
}

/// Why a waiting CLI was ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    Died,
    Idle,
    Shutdown,
    /// Its process slot went to an agent.
    Evicted,
}

impl End {
    fn as_str(self) -> &'static str {
        match self {
            End::Died => "died",
            End::Idle => "idle",
            End::Shutdown => "shutdown",
            End::Evicted => "evicted",
        }
    }
}

/// Keeps a started CLI until it is taken, dies, waits past the idle time, or the server shuts
/// down; a CLI that is not taken is ended with its whole group and reaped here.
pub async fn keep(
    pool: Arc<WarmPool>,
    id: u64,
    started: Started,
    claimed: oneshot::Receiver<oneshot::Sender<Handover>>,
    shutdown: CancellationToken,
    tasks: TaskTracker,
) {
    let Started {
        mut cli,
        stdin,
        idle_paused,
        files,
        template,
    } = started;
    let claim = tokio::select! {
        biased;
        () = shutdown.cancelled() => Err(End::Shutdown),
        claimed = claimed => claimed.map_err(|_| End::Evicted),
        () = cli.exited() => Err(End::Died),
        () = tokio::time::sleep(pool.settings.idle) => Err(End::Idle),
    };
    let end = match claim {
        Ok(reply) if !cli.has_exited() => {
            // The run's limits count from its first message.
            cli.restart_clock();
            let taken = Taken {
                cli,
                stdin,
                idle_paused,
                files,
                model: template.model,
                permission_mode: template.tools.permission_mode,
            };
            // Whatever becomes of it, the run has it or the handover ends it.
            let _ = reply.send(Handover {
                taken: Some(taken),
                tasks,
            });
            return;
        }
        Ok(_) => End::Died,
        Err(end) => end,
    };
    pool.forget(id);
    pool.metrics
        .warm_ended
        .get_or_create(&crate::metrics::ReasonLabel {
            reason: end.as_str(),
        })
        .inc();
    pool.wanted.notify_one();
    // Its input ends: a CLI that waits for its first message exits by itself.
    drop(stdin);
    let outcome = end_group(cli).await;
    tracing::info!(?end, exit = ?outcome.exit, "a waiting CLI of the pool ended");
    drop(files);
}

/// Ends a CLI and its group, and reaps them.
async fn end_group(cli: process::Spawned) -> process::Outcome {
    let now = CancellationToken::new();
    now.cancel();
    cli.supervise(&now, |_| {}).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::status::AgentKind;

    fn run(owner: Client, cwd: &str, model: Option<&str>) -> Run {
        Run {
            owner,
            kind: AgentKind::Stream,
            prompt: "a secret prompt".into(),
            model: model.map(str::to_owned),
            resume: None,
            tools: crate::cli::ToolFlags::default(),
            cwd: Arc::from(Path::new(cwd)),
            detach_on_disconnect: false,
            interactive: false,
            approvals: false,
            system_prompt: None,
            partial_messages: false,
            fork_session: false,
            fallback_model: None,
            effort: None,
            max_budget_usd: None,
            json_schema: None,
            agents: None,
            mcp_config: None,
            mcp_servers: Arc::default(),
            message: None,
            webhook: None,
        }
    }

    fn pool(size: usize) -> WarmPool {
        WarmPool::new(
            WarmSettings {
                size,
                ..WarmSettings::default()
            },
            Arc::default(),
        )
    }

    #[test]
    fn a_run_with_mcp_servers_has_no_shape_a_cli_started_ahead_could_serve() {
        let with_servers = Run {
            mcp_config: Some(r#"{"mcpServers":{}}"#.into()),
            ..run(Client::Anonymous, "/w", None)
        };
        assert!(Shape::of(&with_servers).is_none());
        assert!(Shape::of(&run(Client::Anonymous, "/w", None)).is_some());
    }

    #[test]
    fn the_model_and_mode_are_not_the_shape_and_the_rest_is() {
        let a = run(Client::Anonymous, "/w", Some("opus"));
        let mut b = run(Client::Anonymous, "/w", Some("sonnet"));
        b.tools.permission_mode = Some("plan");
        assert_eq!(Shape::of(&a), Shape::of(&b));
        let mut c = a.clone();
        c.tools.disallowed_tools = vec!["Bash".into()];
        assert_ne!(Shape::of(&a), Shape::of(&c));
        let mut d = a.clone();
        d.system_prompt = Some("be brief".into());
        assert_ne!(Shape::of(&a), Shape::of(&d));
        assert_ne!(
            Shape::of(&a),
            Shape::of(&run(Client::Anonymous, "/w/sub", None))
        );
        let mut e = a.clone();
        e.resume = Some(uuid::Uuid::new_v4());
        assert_eq!(Shape::of(&e), None, "a resumed session is fixed at start");
        // Whatever the CLI's arguments say is the shape.
        for change in [
            |r: &mut Run| r.partial_messages = true,
            |r: &mut Run| r.tools.max_turns = Some(3),
            |r: &mut Run| r.interactive = true,
            |r: &mut Run| {
                r.interactive = true;
                r.approvals = true;
            },
        ] {
            let mut changed = a.clone();
            change(&mut changed);
            assert_ne!(Shape::of(&a), Shape::of(&changed), "{changed:?}");
        }
        let mut images = a.clone();
        images.message = Some(crate::agent::MessageContent::Text("x".into()));
        assert_eq!(
            Shape::of(&a),
            Shape::of(&images),
            "a one-shot CLI of the pool takes any first message"
        );
    }

    #[test]
    fn the_label_names_no_path_or_prompt() {
        let mut a = run(Client::Anonymous, "/very/private/dir", None);
        a.system_prompt = Some("the system prompt".into());
        let label = Shape::of(&a).unwrap().label();
        assert!(label.starts_with("one-shot-"), "{label}");
        assert!(!label.contains("private") && !label.contains("system"));
    }

    #[test]
    fn the_pool_is_shared_among_the_wanted_shapes_and_learns_without_the_prompt() {
        let pool = pool(3);
        assert!(pool.wanted_now(10).is_empty(), "nothing asked for yet");
        let a = run(Client::Anonymous, "/a", Some("opus"));
        let b = run(Client::Anonymous, "/b", None);
        pool.lock().learn(&Shape::of(&a).unwrap(), &a);
        let wanted = pool.wanted_now(10);
        assert_eq!(wanted.len(), 3, "one shape: the whole pool");
        assert!(wanted.iter().all(|w| w.prompt.is_empty()));
        assert_eq!(wanted[0].model.as_deref(), Some("opus"));
        pool.lock().learn(&Shape::of(&b).unwrap(), &b);
        let wanted = pool.wanted_now(10);
        let cwds: Vec<&Path> = wanted.iter().map(|w| &*w.cwd).collect();
        assert_eq!(
            cwds,
            [Path::new("/b"), Path::new("/b"), Path::new("/a")],
            "the most recent first"
        );
        assert_eq!(pool.wanted_now(1).len(), 1, "within the room there is");
    }

    #[test]
    fn learned_shapes_are_bounded() {
        let pool = pool(1);
        for i in 0..LEARNED_SHAPES + 10 {
            let r = run(Client::Anonymous, &format!("/{i}"), None);
            pool.lock().learn(&Shape::of(&r).unwrap(), &r);
        }
        assert_eq!(pool.lock().learned.len(), LEARNED_SHAPES);
    }

    fn waiting(pool: &WarmPool, run: &Run) -> oneshot::Receiver<oneshot::Sender<Handover>> {
        let (claim, claimed) = oneshot::channel();
        let mut state = pool.lock();
        let id = state.waiting.len() as u64;
        let shape = Shape::of(run).unwrap();
        state.waiting.push(Waiting {
            id,
            pid: 0,
            label: shape.label(),
            shape,
            model: None,
            permission_mode: None,
            claim,
            spawned: Instant::now(),
        });
        claimed
    }

    #[test]
    fn a_full_pool_makes_room_for_the_shape_that_lacks() {
        let pool = pool(1);
        let (a, b) = (
            run(Client::Anonymous, "/a", None),
            run(Client::Anonymous, "/b", None),
        );
        pool.lock().learn(&Shape::of(&a).unwrap(), &a);
        let mut a_claimed = waiting(&pool, &a);
        assert!(pool.wanted_now(10).is_empty(), "a's CLI is its share");
        pool.lock().learn(&Shape::of(&b).unwrap(), &b);
        let wanted = pool.wanted_now(10);
        assert_eq!(wanted.len(), 1);
        assert_eq!(&*wanted[0].cwd, Path::new("/b"), "the most recent shape");
        assert!(
            matches!(
                a_claimed.try_recv(),
                Err(oneshot::error::TryRecvError::Closed)
            ),
            "a's CLI is told to end"
        );
        assert_eq!(pool.len(), 0);
    }

    #[tokio::test]
    async fn requests_that_outrun_the_pool_pause_its_refills_for_a_few_start_ups() {
        let pool = pool(1);
        let a = run(Client::Anonymous, "/a", None);
        pool.lock().learn(&Shape::of(&a).unwrap(), &a);
        assert_eq!(pool.wanted_now(10).len(), 1, "a CLI is wanted");
        // Taken as soon as it was started: still in its start-up.
        let claimed = waiting(&pool, &a);
        let keeper = tokio::spawn(async move {
            let reply = claimed.await.unwrap();
            drop(reply);
        });
        assert!(pool.take(&a).await.is_none(), "its keeper handed nothing");
        keeper.await.unwrap();
        let paused = pool.paused_until().expect("the pool pauses");
        assert!(
            paused >= Instant::now() + 2 * START_UP_GUESS,
            "for more than a start-up: a burst's gaps come and go"
        );
        assert!(
            pool.wanted_now(10).is_empty(),
            "no CLI started beside the requests'"
        );
        // A miss while paused holds the pause.
        assert!(pool.take(&a).await.is_none());
        assert!(pool.paused_until().unwrap() >= paused);
        // Once the pause has passed with no request outrunning it, the pool refills.
        pool.lock().paused_until = Some(Instant::now());
        assert!(pool.paused_until().is_none());
        assert_eq!(pool.wanted_now(10).len(), 1, "refilled");
    }

    #[test]
    fn a_hits_first_turn_holds_the_pools_starts_until_its_result_or_a_start_up() {
        let pool = pool(1);
        let a = run(Client::Anonymous, "/a", None);
        pool.lock().learn(&Shape::of(&a).unwrap(), &a);
        // Two hits: the pool waits for both first turns.
        pool.lock().took_for_first_turn(Instant::now());
        pool.lock().took_for_first_turn(Instant::now());
        assert!(pool.paused_until().is_some());
        assert!(pool.wanted_now(10).is_empty(), "none starts beside them");
        pool.first_turn_done();
        assert!(
            pool.wanted_now(10).is_empty(),
            "one is still in its first turn"
        );
        pool.first_turn_done();
        assert!(pool.paused_until().is_none());
        assert_eq!(pool.wanted_now(10).len(), 1, "refilled once both answered");
        // A first turn that never ends holds the pool no longer than a start-up, and does not
        // count once it has run out.
        pool.lock()
            .took_for_first_turn(Instant::now() - START_UP_GUESS);
        assert!(pool.paused_until().is_none());
        assert_eq!(pool.wanted_now(10).len(), 1);
        pool.lock().took_for_first_turn(Instant::now());
        pool.first_turn_done();
        assert!(
            pool.paused_until().is_none(),
            "the one that ran out is not waited for"
        );
    }

    #[tokio::test]
    async fn a_miss_while_a_hits_first_turn_holds_the_pool_pauses_it() {
        let pool = pool(1);
        let a = run(Client::Anonymous, "/a", None);
        pool.lock().learn(&Shape::of(&a).unwrap(), &a);
        pool.lock().took_for_first_turn(Instant::now());
        // Requests come faster than the pool has CLIs: it stays off when the turn is done.
        assert!(pool.take(&a).await.is_none());
        pool.first_turn_done();
        assert!(pool.paused_until().is_some(), "paused by the miss");
        assert!(pool.wanted_now(10).is_empty());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_hit_holds_the_pool_before_it_tells_it_a_cli_was_taken() {
        let pool = Arc::new(pool(1));
        let a = run(Client::Anonymous, "/a", None);
        pool.lock().learn(&Shape::of(&a).unwrap(), &a);
        let claimed = waiting(&pool, &a);
        pool.lock().waiting[0].spawned = Instant::now() - 2 * START_UP_GUESS;
        // As the pool's loop does: told, it asks what to start.
        let told = pool.wanted.notified();
        let taking = tokio::spawn({
            let (pool, a) = (Arc::clone(&pool), a.clone());
            async move { pool.take(&a).await.is_none() }
        });
        told.await;
        assert!(
            pool.wanted_now(10).is_empty(),
            "no CLI starts beside the taken one's first turn"
        );
        // Its keeper hands nothing over (it died as it was taken): the hold goes with it.
        drop(claimed.await.unwrap());
        assert!(taking.await.unwrap());
        assert!(pool.paused_until().is_none());
        assert_eq!(pool.wanted_now(10).len(), 1);
    }

    #[tokio::test]
    async fn a_request_that_takes_a_cli_past_its_start_up_does_not_pause_the_pool() {
        let pool = pool(1);
        let a = run(Client::Anonymous, "/a", None);
        pool.lock().learn(&Shape::of(&a).unwrap(), &a);
        let claimed = waiting(&pool, &a);
        pool.lock().waiting[0].spawned = Instant::now() - 2 * START_UP_GUESS;
        let keeper = tokio::spawn(async move { drop(claimed.await.unwrap()) });
        let _ = pool.take(&a).await;
        keeper.await.unwrap();
        assert!(pool.paused_until().is_none());
        assert_eq!(
            pool.wanted_now(10).len(),
            1,
            "its place is refilled at once"
        );
    }

    #[tokio::test]
    async fn without_a_pool_nothing_is_taken_or_learned() {
        let pool = pool(0);
        assert!(
            pool.take(&run(Client::Anonymous, "/a", None))
                .await
                .is_none()
        );
        assert!(pool.lock().learned.is_empty());
        assert_eq!(pool.view().misses, 0);
    }
}
