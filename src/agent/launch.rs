//! Starting an agent and running it to its end: a place in the table, the spawn, and the task
//! that supervises the CLI while its lines become events.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use bytes::Bytes;
use tracing::Instrument;
use uuid::Uuid;

use super::error::CliProblem;
use super::events::EventMaker;
use super::log::{EventLog, LogReader};
use super::request::Run;
use super::status::StopReason;
use super::stop::StopSignal;
use super::table::{NewAgent, Place};
use super::{Core, Error};
use crate::process::{self, Ending, Exit, Frame, Outcome, signal_name};

/// A running agent, as its starter sees it.
#[derive(Debug)]
pub struct Launched {
    pub agent_id: Uuid,
    pub pid: u32,
    pub stop: StopSignal,
    /// Its events from the first, for a starter that reads them as they come.
    pub reader: LogReader,
}

/// Starts an agent: takes a place in the table, spawns the CLI, and runs it to its end in the
/// background while its events go to its log. Nothing is spawned when a limit is reached or
/// the subscription is known to be rate limited.
pub(super) fn launch(core: &Arc<Core>, run: Run) -> Result<Launched, Error> {
    core.rate_limit.check()?;
    let stop = StopSignal::new(&core.shutdown);
    let log = EventLog::new(core.settings.agent_log_bytes, Arc::clone(&core.all_logs));
    // Registered before the first event, so it is a reader keeping up from the start.
    let reader = log.reader(0);
    let place = core.table.admit(NewAgent {
        owner: run.owner,
        kind: run.kind,
        requested_model: run.model.clone(),
        stop: stop.clone(),
        log: Arc::clone(&log),
    })?;
    let agent_id = place.agent_id();
    let spec = process::Spec {
        program: core.settings.cli.clone(),
        args: run.cli_args(),
        env: Arc::clone(&core.settings.cli_env),
        cwd: run.cwd.to_path_buf(),
        input: Bytes::from(run.prompt.clone()),
    };
    let spawning = Instant::now();
    let cli = process::spawn(&spec, core.settings.limits).map_err(|err| Error::CliUnavailable {
        problem: CliProblem::of(spec.program.clone(), err),
    })?;
    let pid = cli.pid();
    place.spawned(pid);
    core.metrics.spawned(run.kind.as_str(), spawning.elapsed());

    // Every log line of this agent's task carries its id, pid and (once known) session.
    let span = tracing::info_span!("agent", %agent_id, pid, session_id = tracing::field::Empty);
    span.in_scope(|| {
        tracing::info!(
            kind = run.kind.as_str(), client = %run.owner, model = run.model.as_deref(),
            resume = run.resume.map(|s| s.to_string()), "agent started"
        );
    });

    // The `agent` event is in the log before anyone can ask for it.
    let mut recorder = Recorder {
        core: Arc::clone(core),
        agent_id,
        maker: EventMaker::new(agent_id, pid, core.settings.limits.max_line_bytes),
        log,
        span: span.clone(),
        run,
        session_known: false,
    };
    recorder.keep();

    let run_stop = stop.clone();
    let supervised = async move {
        let outcome = cli
            .supervise(run_stop.token(), |lines| recorder.lines(lines))
            .await;
        recorder.finish(place, outcome, run_stop.reason());
    };
    core.tasks.spawn(supervised.instrument(span));
    Ok(Launched {
        agent_id,
        pid,
        stop,
        reader,
    })
}

/// Makes an agent's events and keeps them: into its log (which never waits for a reader, so
/// this runs right in the supervising task), and into the table's view of the run.
struct Recorder {
    core: Arc<Core>,
    agent_id: Uuid,
    maker: EventMaker,
    log: Arc<EventLog>,
    span: tracing::Span,
    run: Run,
    session_known: bool,
}

impl Recorder {
    fn lines(&mut self, lines: Vec<Frame>) {
        self.maker.lines(lines);
        self.keep();
    }

    /// Appends the events made so far, then records what they changed.
    fn keep(&mut self) {
        let events = self.maker.take_events();
        self.core.metrics.events.inc_by(events.len() as u64);
        self.log.extend(events);
        if let Some(summary) = self.maker.summary_update() {
            self.core.table.observe(self.agent_id, summary);
            if let Some(until) = summary.rate_limited_until {
                self.core.rate_limit.limited_until(until);
            }
            if let (Some(session), false) = (&summary.session_id, self.session_known) {
                self.session_known = true;
                self.span.record("session_id", session.as_str());
                if let Ok(session) = Uuid::try_parse(session) {
                    crate::lock(&self.core.sessions).record(session, self.run.owner, &self.run.cwd);
                }
            }
        }
        self.keep_within_budget();
    }

    /// The process is reaped: its place is freed and the agent recorded as ended before the
    /// last event goes out, so a client that reads `complete` and then asks finds it ended.
    fn finish(mut self, place: Place, outcome: Outcome, stopped_by: StopReason) {
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
        self.maker.ending(outcome, stopped_by);
        let summary = self
            .maker
            .summary_update()
            .expect("the ending changes the summary")
            .clone();
        let ended = place.end(&summary);
        let events = self.maker.take_events();
        metrics.events.inc_by(events.len() as u64);
        self.log.extend(events);
        ended.cancel();
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

    fn keep_within_budget(&self) {
        let total = self.core.all_logs.load(Ordering::Relaxed);
        let budget = self.core.settings.logs_total_bytes;
        if total > budget {
            self.core.table.shrink_logs(total - budget);
        }
    }
}
