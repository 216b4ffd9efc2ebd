//! Starting an agent and running it to its end: a place in the table, the spawn, and the task
//! that supervises the CLI while its lines become events.

use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::watch;
use tracing::Instrument;
use uuid::Uuid;

use crate::agent::Agents;
use crate::agent::admission::request::Run;
use crate::agent::conversation::{Conversation, ConversationSettings};
use crate::agent::error::CliProblem;
use crate::agent::error::Error;
use crate::agent::events::EventMaker;
use crate::agent::lifecycle::pool::Taken;
use crate::agent::lifecycle::queue::{Slot, Spot};
use crate::agent::lifecycle::run_file::{RunFile, RunFiles};
use crate::agent::lifecycle::state::Core;
use crate::agent::lifecycle::stop::{StopOnDrop, StopSignal};
use crate::agent::lifecycle::table::{NewAgent, Place};
use crate::agent::logs::journal::Journal;
use crate::agent::logs::log::{EventLog, LogReader};
use crate::agent::ports::cluster::{Admitted, Cluster, NotHere};
use crate::agent::ports::gateway::Pass;
use crate::agent::status::{AgentKind, StopReason};
use crate::agent::webhooks::Webhook;
use crate::cli::home::{self, session_file};
use crate::cli::stdin::{self, Control};
use crate::process::{self, Ending, Exit, Frame, Outcome, signal_name};

/// A running agent, as its starter sees it.
#[derive(Debug)]
pub struct Launched {
    pub agent_id: Uuid,
    pub pid: u32,
    /// Its events from the first, for a starter that reads them as they come.
    pub reader: LogReader,
    /// For a starter that follows the agent while its client is there: dropped when the
    /// client goes away, it stops the agent; None when the run was asked to go on without
    /// its client (`detach_on_disconnect`).
    pub client_leaving: Option<StopOnDrop>,
}

/// A run as its starter gets it back: started, or waiting for a place (PROXY_QUEUE).
#[derive(Debug)]
pub enum Start {
    Launched(Launched),
    /// Boxed: it holds its whole run while it waits.
    Queued(Box<Queued>),
}

impl Agents {
    /// Starts an agent for a checked run; when the queue is on and no place is free, once one
    /// is (dropped meanwhile, the run leaves the queue and nothing is spawned).
    pub async fn launch(&self, run: Run) -> Result<Launched, Error> {
        match self.launch_or_queue(run).await? {
            Start::Launched(launched) => Ok(launched),
            Start::Queued(mut queued) => loop {
                match queued.wait().await? {
                    Waited::Moved(_) => {}
                    Waited::Turn => match queued.try_place().await? {
                        Some(launched) => return Ok(launched),
                        None => continue,
                    },
                }
            },
        }
    }

    /// Starts an agent for a checked run, or puts it in the queue when every place is taken
    /// (or the subscription is rate limited) and the queue has room. Behind agents that
    /// already wait, a new one waits too, whatever is free: it does not jump the queue.
    pub async fn launch_or_queue(&self, run: Run) -> Result<Start, Error> {
        self.check_budget(run.owner).await?;
        let Some(queue) = &self.core.table.queue else {
            return launch(&self.core, run).await.map(Start::Launched);
        };
        if !queue.busy() {
            match launch(&self.core, run.clone()).await {
                Err(err) if waits_for_a_place(&err) => {
                    let spot = queue.join(run.owner).map_err(|_| err)?;
                    return Ok(Start::Queued(Box::new(Queued::new(self, run, spot))));
                }
                launched => return launched.map(Start::Launched),
            }
        }
        let spot = queue.join(run.owner).map_err(|_| Error::TooManyAgents {
            max_agents: self.core.settings.admission.max_agents,
        })?;
        Ok(Start::Queued(Box::new(Queued::new(self, run, spot))))
    }
}

/// What a run refused for now may wait out in the queue: a place, or the subscription's reset.
fn waits_for_a_place(err: &Error) -> bool {
    matches!(err, Error::TooManyAgents { .. } | Error::RateLimited { .. })
}

/// A run waiting in the queue for a place.
#[derive(Debug)]
pub struct Queued {
    agents: Agents,
    run: Run,
    spot: Spot,
    /// The position last told.
    told: Option<usize>,
    /// With the turn, the subscription's reset it waits for before trying again.
    retry_at: Option<tokio::time::Instant>,
}

/// What a queued run waited for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Waited {
    /// Its position (1: next) is now this.
    Moved(usize),
    /// Its turn: [`Queued::try_place`].
    Turn,
}

impl Queued {
    fn new(agents: &Agents, run: Run, spot: Spot) -> Self {
        let mut queued = Self {
            agents: agents.clone(),
            run,
            spot,
            told: None,
            retry_at: None,
        };
        queued.told = Some(queued.position());
        queued
    }

    /// Its position now, 1 being next (as it is when its turn has come).
    pub fn position(&self) -> usize {
        match self.spot.slot() {
            Slot::Waiting(position) => position,
            Slot::Turn => 1,
        }
    }

    /// Waits until its position changes or its turn comes; cancel safe, so a caller may wait
    /// on other things beside it. Fails when the server shuts down.
    pub async fn wait(&mut self) -> Result<Waited, Error> {
        loop {
            let slot = match self.spot.slot() {
                Slot::Waiting(position) if self.told != Some(position) => Slot::Waiting(position),
                Slot::Turn => Slot::Turn,
                Slot::Waiting(_) => tokio::select! {
                    slot = self.spot.changed() => slot,
                    () = self.agents.core.shutdown.cancelled() => return Err(Error::ShuttingDown),
                },
            };
            match slot {
                Slot::Waiting(position) if self.told != Some(position) => {
                    self.told = Some(position);
                    return Ok(Waited::Moved(position));
                }
                Slot::Waiting(_) => {}
                Slot::Turn => {
                    if let Some(at) = self.retry_at {
                        tokio::select! {
                            () = tokio::time::sleep_until(at) => {}
                            () = self.agents.core.shutdown.cancelled() => return Err(Error::ShuttingDown),
                        }
                        self.retry_at = None;
                    }
                    return Ok(Waited::Turn);
                }
            }
        }
    }

    /// With its turn, tries for a place: the agent, or None when it is back in the queue (no
    /// place after all, or the subscription limited: its turn then waits for the reset). An
    /// error ends its wait: the run cannot start (its key's budget is spent meanwhile, ...).
    pub async fn try_place(&mut self) -> Result<Option<Launched>, Error> {
        let attempt = match self.agents.check_budget(self.run.owner).await {
            Ok(()) => launch(&self.agents.core, self.run.clone()).await,
            Err(err) => Err(err),
        };
        match attempt {
            Ok(launched) => {
                self.spot.leave();
                Ok(Some(launched))
            }
            Err(Error::RateLimited { until }) => {
                let wait = (until - chrono::Utc::now()).to_std().unwrap_or_default();
                self.retry_at = Some(tokio::time::Instant::now() + wait);
                Ok(None)
            }
            Err(Error::TooManyAgents { .. }) => {
                self.spot.back_to_front();
                Ok(None)
            }
            Err(err) => {
                self.spot.leave();
                Err(err)
            }
        }
    }
}

/// Starts an agent: takes a place in the table, spawns the CLI, and runs it to its end in the
/// background while its events go to its log. Nothing is spawned when a limit is reached (on
/// this instance, or for its key across the instances of a shared database), the subscription
/// is known to be rate limited, or a session to resume cannot be had here.
async fn launch(core: &Arc<Core>, run: Run) -> Result<Launched, Error> {
    // A started agent runs in the background; the others are their client's, unless asked not
    // to be.
    let follows_its_client = run.kind != AgentKind::Start && !run.detach_on_disconnect;
    let cluster = core.cluster.as_ref();
    core.rate_limit
        .check(cluster.and_then(|c| c.rate_limited_until()))?;
    if let process::WatchdogStatus::Down { why, .. } = process::watchdog::status() {
        return Err(Error::NoWatchdog(why));
    }
    if core.settings.sandbox.is_some() {
        // bwrap would start, and the missing CLI be a failed run rather than this answer.
        process::find_program(&core.settings.cli).map_err(|err| Error::CliUnavailable {
            problem: CliProblem::of(core.settings.cli.clone(), err),
        })?;
    }
    if let (Some(cluster), Some(session)) = (cluster, run.resume) {
        restore_session(core, cluster.as_ref(), &run, session).await?;
    }
    let stop = StopSignal::new(&core.shutdown);
    let log = EventLog::new(core.settings.agent_log_bytes, Arc::clone(&core.all_logs));
    // Registered before the first event, so it is a reader keeping up from the start.
    let reader = log.reader(0);
    let place = core.table.admit(NewAgent {
        owner: run.owner,
        kind: run.kind,
        requested_model: run.model.clone(),
        session: run.resume.filter(|_| !run.fork_session),
        stop: stop.clone(),
        log: Arc::clone(&log),
        mcp_servers: Arc::clone(&run.mcp_servers),
        webhook: run.webhook.clone(),
    })?;
    let agent_id = place.agent_id();
    // Across the instances too: the key's limit, and the session it resumes (its record names
    // it from the start).
    let max = core.settings.admission.max_agents_per_key;
    let resumes = run.resume.is_some() && !run.fork_session;
    let counted_across_instances = match cluster {
        Some(cluster) if max.is_some() || resumes => {
            let mut record = core.table.record(agent_id).expect("just admitted");
            record.instance = Some(Arc::clone(&core.settings.instance_id));
            // Refused, the place is dropped unspawned: it leaves no trace.
            match admit_across_instances(cluster.as_ref(), record, max).await {
                Ok(Admitted::Yes) => true,
                Ok(Admitted::TooMany) => {
                    return Err(Error::TooManyAgentsForKey {
                        max: max.unwrap_or_default(),
                    });
                }
                Ok(Admitted::SessionInUse(running)) => {
                    return Err(Error::SessionInUse {
                        session: run.resume.expect("it resumes"),
                        agent_id: running,
                    });
                }
                Err(err) => return Err(Error::SharedStore(err.0)),
            }
        }
        _ => false,
    };
    // Taken once the run is admitted: a refused run leaves the pool as it was.
    let warm = match (run.resume, core.pool.is_on()) {
        (None, true) => core.pool.take(&run).await,
        _ => None,
    };
    if core.pool.is_on() {
        // Running and waiting CLIs together stay within PROXY_MAX_AGENTS processes.
        core.pool.make_room(
            core.settings
                .admission
                .max_agents
                .saturating_sub(core.table.running()),
        );
    }
    let spawning = Instant::now();
    let from_pool = warm.is_some();
    // Every log line of this agent's task carries its id, pid and (once known) session; as a
    // trace, it is the request's child, with its CLI's spawn, turns and tool approvals in it.
    let span = tracing::info_span!(
        "agent",
        %agent_id,
        pid = tracing::field::Empty,
        session_id = tracing::field::Empty,
        key_id = run.owner.to_stored(),
        kind = run.kind.as_str(),
        model = run.model.as_deref(),
        interactive = run.interactive,
        from_pool,
        trace_id = tracing::field::Empty,
        status = tracing::field::Empty,
        exit_code = tracing::field::Empty,
        usage.input_tokens = tracing::field::Empty,
        usage.output_tokens = tracing::field::Empty,
        usage.cache_read_input_tokens = tracing::field::Empty,
        usage.cache_creation_input_tokens = tracing::field::Empty,
    );
    crate::telemetry::record_trace_id(&span);
    let (cli, run_files, stdin, idle_paused, controls_sent) = match warm {
        Some(taken) => {
            let controls = taken_for(&taken, &run);
            let controls_sent = !controls.is_empty();
            // What it asks the API from now on is this agent's.
            taken.files.pass.bind(agent_id);
            let first = match &run.message {
                Some(message) => crate::agent::conversation::user_line(message),
                None => crate::agent::conversation::user_line(&crate::agent::MessageContent::Text(
                    run.prompt.clone(),
                )),
            };
            for line in controls.into_iter().chain([first]) {
                // A new queue, with room for these few lines.
                let _ = taken.stdin.try_send(line);
            }
            (
                taken.cli,
                taken.files,
                Some(taken.stdin),
                taken.idle_paused,
                controls_sent,
            )
        }
        None => {
            let (idle_paused, paused) = watch::channel(false);
            let (cli_input, input, stdin) = if run.interactive {
                let (stdin, rest, first) = Conversation::stdin(&run.prompt);
                (
                    crate::cli::Input::Conversation,
                    process::Input::Stream(first, rest),
                    Some(stdin),
                )
            } else if let Some(message) = &run.message {
                (
                    crate::cli::Input::Message,
                    process::Input::Whole(crate::agent::conversation::user_line(message)),
                    None,
                )
            } else {
                (
                    crate::cli::Input::Prompt,
                    process::Input::Whole(Bytes::from(run.prompt.clone())),
                    None,
                )
            };
            let spawn_span =
                tracing::info_span!(parent: &span, "spawn", pid = tracing::field::Empty);
            let (cli, run_files) = spawn_span.in_scope(|| {
                let (mut spec, run_files) = command(
                    core,
                    &run,
                    agent_id,
                    cli_input,
                    input,
                    run.interactive.then_some(paused),
                )?;
                // The CLI's own spans (when its telemetry is on) are the agent's children.
                if let Some(traceparent) = crate::telemetry::traceparent(&span) {
                    spec.env = Arc::new(crate::cli::with_traceparent(&spec.env, &traceparent));
                }
                let cli = process::spawn(spec, core.settings.limits).map_err(|err| {
                    if let (true, Some(store)) = (counted_across_instances, &core.store) {
                        // Recorded to be counted, and never run.
                        store.forget(agent_id);
                    }
                    Error::CliUnavailable {
                        problem: CliProblem::of(core.settings.cli.clone(), err),
                    }
                })?;
                spawn_span.record("pid", cli.pid());
                Ok::<_, Error>((cli, run_files))
            })?;
            (cli, run_files, stdin, idle_paused, false)
        }
    };
    // A one-shot run's input stays open until its result, then closes: the CLI exits as one
    // given its prompt to the end of stdin does.
    let (stdin, close_after_result) = match run.interactive {
        true => (stdin, None),
        false => (None, stdin),
    };
    let pid = cli.pid();
    match from_pool {
        true => core.metrics.started_warm(run.kind.as_str()),
        false => core.metrics.spawned(run.kind.as_str(), spawning.elapsed()),
    }
    let first_line = FirstLine::Awaited {
        since: spawning,
        from_pool,
    };

    span.record("pid", pid);
    span.in_scope(|| {
        tracing::info!(
            kind = run.kind.as_str(), client = %run.owner, model = run.model.as_deref(),
            resume = run.resume.map(|s| s.to_string()), interactive = run.interactive,
            from_pool, "agent started"
        );
    });

    // The `agent` event is in the log before anyone can ask for it.
    let mut maker = EventMaker::new(agent_id, pid, core.settings.limits.max_line_bytes);
    // The answers to the control requests that set a pooled CLI's model and mode are not
    // the run's events.
    if run.interactive || controls_sent {
        maker.set_controls_aside();
    }
    let journal = Arc::new(Mutex::new(Journal::new(
        maker,
        Arc::clone(&log),
        Arc::clone(&core.metrics),
        core.store.clone().map(|store| (store, agent_id)),
    )));
    let webhook = match (&run.webhook, &core.store) {
        (Some(url), Some(store)) => Some(Arc::new(Webhook::new(
            Arc::clone(store),
            Arc::clone(&core.settings.webhook_wake),
            Arc::clone(url),
            agent_id,
            run.owner,
        ))),
        _ => None,
    };
    let conversation = stdin.map(|stdin| {
        Conversation::start(
            stdin,
            idle_paused,
            ConversationSettings {
                idle_limit: core.settings.interactive_idle,
                permission_limit: core.settings.permission_timeout,
                approvals: run.approvals,
                webhook: webhook.clone(),
            },
            Arc::clone(&core.settings.policy),
            Arc::clone(&journal),
            Arc::clone(&core.metrics),
            &core.tasks,
            span.clone(),
        )
    });
    place.spawned(pid, conversation.clone());
    let mut recorder = Recorder {
        core: Arc::clone(core),
        agent_id,
        journal,
        conversation,
        span: span.clone(),
        run,
        session: None,
        turns_saved: 0,
        close_after_result,
        first_line,
        from_pool_in_first_turn: from_pool,
        webhook,
    };
    recorder.store_record();

    let run_stop = stop.clone();
    let supervised = async move {
        let outcome = cli
            .supervise(run_stop.token(), |lines| recorder.lines(lines))
            .await;
        // Reaped: its files are gone and its credential worth nothing before its end is told.
        drop(run_files);
        recorder.finish(place, outcome, run_stop.reason()).await;
    };
    core.tasks.spawn(supervised.instrument(span));
    if let (Some(store), Some(_)) = (&core.store, cluster) {
        // In the shared database before its id is given out: any instance can answer for it.
        store.flush().await;
    }
    let client_leaving = follows_its_client.then(|| stop.stop_on_drop(StopReason::ClientGone));
    Ok(Launched {
        agent_id,
        pid,
        reader,
        client_leaving,
    })
}

/// The control requests that make a CLI of the pool, started with the model and permission
/// mode its shape was last asked with, the run's.
fn taken_for(taken: &Taken, run: &Run) -> Vec<Bytes> {
    let mut lines = Vec::new();
    if taken.model != run.model {
        lines.push(stdin::control_request(
            &format!("proxy-{}", Uuid::new_v4()),
            Control::SetModel(run.model.as_deref()),
        ));
    }
    if taken.permission_mode != run.tools.permission_mode {
        lines.push(stdin::control_request(
            &format!("proxy-{}", Uuid::new_v4()),
            Control::SetPermissionMode(run.tools.permission_mode.unwrap_or("default")),
        ));
    }
    lines
}

/// Whether a run's first line has come, and how long after its CLI was given the run.
#[derive(Debug, Clone, Copy)]
enum FirstLine {
    Awaited { since: Instant, from_pool: bool },
    Seen,
}

/// Puts a session's file where the CLI will read it, as the shared database keeps it, unless
/// it is already there; a session too large to be kept is resumed only on its instance.
async fn restore_session(
    core: &Core,
    cluster: &dyn Cluster,
    run: &Run,
    session: Uuid,
) -> Result<(), Error> {
    let Some(config_dir) = core.claude_config_dir(run.owner) else {
        return Ok(());
    };
    let file = session_file(&config_dir, &run.cwd, session);
    match cluster.restore_session(session, file).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(NotHere::TooLarge { instance })) => Err(Error::Conflict(format!(
            "session_id: session {session} is larger than PROXY_MAX_SESSION_BYTES, so only the instance {instance} that ran it has it; resume it there"
        ))),
        Err(err) => Err(Error::SharedStore(err.0)),
    }
}

/// Turns an agent's lines into events (through its journal, which never waits for a reader, so
/// this runs right in the supervising task), and tells the table and the conversation what they
/// changed.
struct Recorder {
    core: Arc<Core>,
    agent_id: Uuid,
    journal: Arc<Mutex<Journal>>,
    conversation: Option<Arc<Conversation>>,
    span: tracing::Span,
    run: Run,
    /// The session, once the CLI has named it.
    session: Option<String>,
    /// Turns whose session file was kept for other instances.
    turns_saved: u64,
    /// A one-shot run's stdin, when it is a stream (its CLI came from the pool): closed
    /// after the result.
    close_after_result: Option<tokio::sync::mpsc::Sender<Bytes>>,
    first_line: FirstLine,
    /// Its CLI came from the pool, and its first result is yet to come.
    from_pool_in_first_turn: bool,
    /// Where its events go, if it has a webhook.
    webhook: Option<Arc<Webhook>>,
}

impl Recorder {
    fn lines(&mut self, lines: Vec<Frame>) {
        if let FirstLine::Awaited { since, from_pool } = self.first_line {
            self.first_line = FirstLine::Seen;
            match from_pool {
                true => self.core.pool.warm_first_line(since.elapsed()),
                false => self.core.pool.cold_first_line(since.elapsed()),
            }
        }
        let changes = crate::sync::lock(&self.journal).lines(lines);
        if let Some(conversation) = &self.conversation {
            // The turns' results first: a question read with the last turn's result is the next
            // turn's (the CLI ends no turn while a question of its waits for an answer).
            if let Some(summary) = &changes.summary {
                conversation.results_seen(summary.turns);
            }
            conversation.on_control_lines(changes.controls);
        }
        if let Some(summary) = &changes.summary {
            if self.from_pool_in_first_turn && summary.turns > 0 {
                self.from_pool_in_first_turn = false;
                self.core.pool.first_turn_done();
            }
            self.core.table.observe(self.agent_id, summary);
            self.store_record();
            if let Some(until) = summary.rate_limited_until {
                self.core.rate_limit.limited_until(until);
                if let Some(cluster) = &self.core.cluster {
                    cluster.share_rate_limit(until);
                }
            }
            if let (Some(session), None) = (&summary.session_id, &self.session) {
                self.session = Some(session.clone());
                self.span.record("session_id", session.as_str());
                if let Ok(session) = Uuid::try_parse(session) {
                    crate::sync::lock(&self.core.sessions).record(
                        session,
                        self.run.owner,
                        &self.run.cwd,
                    );
                    if let Some(store) = &self.core.store {
                        store.session(session, self.run.owner, self.run.cwd.to_path_buf());
                    }
                }
            }
            if summary.turns > 0 {
                self.close_after_result = None;
            }
            if summary.turns > self.turns_saved {
                self.turns_saved = summary.turns;
                if let Some(saving) = self.save_session() {
                    tokio::spawn(saving);
                }
            }
        }
        self.keep_within_budget();
    }

    /// Keeps the session's file in the shared database, for another instance to resume it.
    fn save_session(&self) -> Option<impl Future<Output = ()> + Send + 'static> {
        let cluster = Arc::clone(self.core.cluster.as_ref()?);
        let session = Uuid::try_parse(self.session.as_deref()?).ok()?;
        let file = session_file(
            self.core.settings.claude_config_dir.as_deref()?,
            &self.run.cwd,
            session,
        );
        Some(async move {
            if let Err(err) = cluster.save_session(session, file).await {
                tracing::warn!(%err, %session, "could not keep the session's file in the shared database");
            }
        })
    }

    /// The process is reaped: its session's file is kept for other instances, and its place
    /// is freed and the agent recorded as ended before the last event goes out, so a client
    /// that reads `complete` and then asks (any instance) finds it ended and its session
    /// ready to resume.
    async fn finish(self, place: Place, outcome: Outcome, stopped_by: StopReason) {
        if self.from_pool_in_first_turn {
            // Ended before its first result: it holds the pool's starts no longer.
            self.core.pool.first_turn_done();
        }
        if let Some(saving) = self.save_session() {
            saving.await;
        }
        tracing::debug!(
            ending = ?outcome.ending, exit = ?outcome.exit,
            duration_ms = outcome.duration.as_millis() as u64, "CLI reaped"
        );
        let metrics = &self.core.metrics;
        metrics.cli_exited(match &outcome.exit {
            Exit::Code(code) => code.to_string(),
            Exit::Signal(signal) => signal_name(*signal),
            Exit::WaitFailed(_) => "unknown".to_owned(),
        });
        match outcome.ending {
            Ending::Exited => {}
            Ending::Stopped => metrics.killed(stopped_by.as_str()),
            Ending::TimedOut => metrics.killed("timeout"),
            Ending::IdleTimedOut => metrics.killed("idle_timeout"),
        }
        if let Some(conversation) = &self.conversation {
            conversation.end();
        }
        if let Some(over) = crate::sync::lock(&self.core.over_budget).remove(&self.agent_id) {
            crate::sync::lock(&self.journal).push(&over.event());
        }
        let summary = crate::sync::lock(&self.journal).ending(outcome, stopped_by);
        self.record_ending(&summary);
        let ended = place.end(&summary);
        // Its place is free: the pool may start a CLI in it.
        self.core.pool.wanted.notify_one();
        // Handed to the store before `complete` goes out: a client that reads it and then asks
        // the store finds the agent ended.
        self.store_record();
        if let (Some(webhook), Some(record)) =
            (&self.webhook, self.core.table.record(self.agent_id))
        {
            let usage = self
                .core
                .table
                .detail(self.run.owner, self.agent_id)
                .map(|detail| detail.usage)
                .unwrap_or_default();
            webhook.ended(&record, &usage);
        }
        crate::sync::lock(&self.journal).publish();
        ended.cancel();
        if let Some(store) = self.core.store.clone() {
            // Once the store has all of it, it answers for the agent, and memory lets it go.
            let (core, agent_id) = (Arc::clone(&self.core), self.agent_id);
            self.core.tasks.spawn(async move {
                store.written().await;
                core.table.hand_over(agent_id);
            });
        }
        if let Some(status) = summary.status {
            metrics.finished(status.as_str());
            tracing::info!(
                status = status.as_str(),
                exit_code = summary.exit_code,
                "agent ended"
            );
        }
        self.keep_within_budget();
    }

    /// Puts on the agent's span how it ended, its model and what the API counted for it.
    fn record_ending(&self, summary: &crate::agent::events::RunSummary) {
        let span = &self.span;
        span.record("status", summary.status.map(|status| status.as_str()));
        span.record("exit_code", summary.exit_code);
        if let Some(model) = &summary.model {
            span.record("model", model.as_str());
        }
        if let Ok(detail) = self.core.table.detail(self.run.owner, self.agent_id) {
            let mut total = crate::agent::usage::Usage::default();
            for used in &detail.usage {
                total.add(&used.usage);
            }
            span.record("usage.input_tokens", total.input_tokens);
            span.record("usage.output_tokens", total.output_tokens);
            span.record(
                "usage.cache_read_input_tokens",
                total.cache_read_input_tokens,
            );
            span.record(
                "usage.cache_creation_input_tokens",
                total.cache_creation_input_tokens,
            );
        }
    }

    /// Hands the store the agent's record as it stands.
    fn store_record(&self) {
        if let (Some(store), Some(mut record)) =
            (&self.core.store, self.core.table.record(self.agent_id))
        {
            record.instance = Some(Arc::clone(&self.core.settings.instance_id));
            store.record(record);
        }
    }

    fn keep_within_budget(&self) {
        let total = self.core.all_logs.load(Ordering::Relaxed);
        let budget = self.core.settings.logs_total_bytes;
        if total > budget {
            self.core.table.shrink_logs(total - budget);
        }
    }
}

/// How long a resume waits for the shared database to show that the agent last on its
/// session has ended: an agent that ended on another instance is written there within that
/// instance's flush interval after its client saw `complete`, so a follow-up sent at once
/// would otherwise find it still running.
const SESSION_END_WAITS: [Duration; 5] = [
    Duration::from_millis(25),
    Duration::from_millis(50),
    Duration::from_millis(100),
    Duration::from_millis(200),
    Duration::from_millis(400),
];

/// The cluster's admission, asked again while it names a session's agent as running that the
/// database may not yet show as ended.
async fn admit_across_instances(
    cluster: &dyn Cluster,
    record: crate::agent::ports::store::AgentRecord,
    max: Option<usize>,
) -> Result<Admitted, crate::agent::ports::store::StoreError> {
    let mut waits = SESSION_END_WAITS.iter();
    loop {
        match cluster.admit(record.clone(), max).await? {
            Admitted::SessionInUse(running) => match waits.next() {
                Some(wait) => tokio::time::sleep(*wait).await,
                None => return Ok(Admitted::SessionInUse(running)),
            },
            admitted => return Ok(admitted),
        }
    }
}

/// What to spawn for `run`, reading `input` as the CLI's arguments say it does (`cli_input`);
/// and its files, which must outlive the CLI. The same whether the CLI is started for a request
/// or ahead of one (`warm.rs`).
pub fn command(
    core: &Core,
    run: &Run,
    pass_id: Uuid,
    cli_input: crate::cli::Input,
    input: process::Input,
    idle_paused: Option<watch::Receiver<bool>>,
) -> Result<(process::Spec, RunFiles), Error> {
    let run_file = |text: &Option<String>, extension| match text {
        Some(text) => RunFile::write(&core.settings.prompts, extension, text).map(Some),
        None => Ok(None),
    };
    let files = RunFiles {
        system_prompt: run_file(&run.system_prompt, "txt")?,
        mcp_config: run_file(&run.mcp_config, "json")?,
        pass: Pass::issue(&core.settings.gateway, pass_id, run.owner),
    };
    let path_of = |file: &Option<RunFile>| file.as_ref().map(|file| file.path.clone());
    let mut invocation = run.invocation(path_of(&files.system_prompt), path_of(&files.mcp_config));
    invocation.input = cli_input;
    let spec = process::Spec {
        program: core.settings.cli.clone(),
        args: invocation.args(),
        env: files.pass.env(&core.settings.cli_env),
        cwd: run.cwd.to_path_buf(),
        input,
        idle_paused,
        sandbox: match &core.settings.sandbox {
            Some(sandbox) => {
                let mut confinement = confinement(core, run)?;
                confinement.read_only.extend(files.paths());
                Some((Arc::clone(sandbox), confinement))
            }
            None => None,
        },
    };
    Ok((spec, files))
}
/// What a sandboxed CLI is given of the host: its working directory, and its client's home.
fn confinement(core: &Core, run: &Run) -> Result<process::Confinement, Error> {
    let home_inside = PathBuf::from(home::HOME_INSIDE_SANDBOX);
    // No login of the operator's: the CLI's credential is its agent's, for the gateway.
    Ok(process::Confinement {
        cwd: run.cwd.to_path_buf(),
        home: core.home_of(run.owner)?,
        home_inside,
        host_name: home::SANDBOX_HOST_NAME.to_owned(),
        read_only: Vec::new(),
        // Its sessions are in its home, whatever the operator's CLI uses.
        unset: vec![crate::cli::CONFIG_DIR.to_owned()],
    })
}
