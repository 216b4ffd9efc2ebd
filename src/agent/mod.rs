//! Agents: one CLI run each, from its request to its last event, kept for a while after.

pub mod events;
mod json_line;
pub mod log;
pub mod registry;

use std::io;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use tracing::Instrument;
use uuid::Uuid;

pub use events::{Event, EventMaker, FinalStatus, RunSummary};
pub use log::{EventLog, SharedBytes};
pub use registry::{AgentKind, Registry, Retention};

use registry::{Full, Launch};

use crate::auth::Client;
use crate::error::ApiError;
use crate::metrics::StatusLabel;
use crate::runner::{self, Frame, Invocation, Outcome, StopSignal};
use crate::state::AppState;

/// A running agent, as its starter sees it.
#[derive(Debug)]
pub struct Launched {
    pub agent_id: Uuid,
    pub pid: u32,
    pub stop: StopSignal,
    pub log: Arc<EventLog>,
}

/// Starts an agent for `owner`: takes a place in the registry, spawns the CLI, and runs it to
/// its end in the background while its events go to its log. Nothing is spawned when a limit
/// is reached or the subscription is known to be rate limited.
pub fn launch(
    state: &AppState,
    owner: Client,
    kind: AgentKind,
    invocation: &Invocation,
) -> Result<Launched, ApiError> {
    state.rate_limit.check()?;
    let stop = StopSignal::new(&state.shutdown);
    let log = EventLog::new(state.config.agent_log_bytes, Arc::clone(&state.all_logs));
    let launch = Launch {
        stop: stop.clone(),
        requested_model: invocation.model.clone(),
        cwd: invocation
            .cwd
            .clone()
            .unwrap_or_else(|| state.policy.workdir.clone()),
        log: Arc::clone(&log),
    };
    let slot = state
        .registry
        .reserve(owner, kind, launch)
        .map_err(|full| match full {
            Full::All { max_agents } => ApiError::TooManyAgents { max_agents },
            Full::Client { max } => ApiError::TooManyAgentsForKey { max },
        })?;
    let agent_id = slot.agent_id();
    let spawning = Instant::now();
    let cli = runner::spawn(&state.cli, invocation).map_err(|err| cli_unavailable(state, err))?;
    let pid = cli.pid();
    slot.running(pid);
    state.metrics.spawned(kind.as_str(), spawning.elapsed());

    // Every log line of this agent's tasks carries its id, pid and (once known) session.
    let span = tracing::info_span!("agent", %agent_id, pid, session_id = tracing::field::Empty);
    span.in_scope(|| {
        tracing::info!(
            ?kind, client = %owner, model = invocation.model.as_deref(), resume = invocation.resume.as_deref(),
            "agent started"
        );
    });

    // The `agent` event is in the log before anyone can ask for it.
    let mut keeper = Keeper {
        state: state.clone(),
        agent_id,
        maker: EventMaker::new(agent_id, pid, state.cli.limits.max_line_bytes),
        log: Arc::clone(&log),
        span: span.clone(),
        session_known: false,
    };
    keeper.keep();

    let run_stop = stop.clone();
    let run = async move {
        let outcome = cli.run(|lines| keeper.lines(lines), run_stop).await;
        tracing::debug!(
            ending = ?outcome.ending, exit_code = outcome.exit_code, signal = outcome.signal,
            duration_ms = outcome.duration.as_millis() as u64, "CLI reaped"
        );
        keeper.state.metrics.ended(&outcome);
        // The process is reaped: its place is free before the last event goes out, so a
        // client that reads `complete` and then asks /health sees it gone.
        drop(slot);
        keeper.finish(outcome);
    };
    state.tasks.spawn(run.instrument(span));
    Ok(Launched {
        agent_id,
        pid,
        stop,
        log,
    })
}

/// Makes an agent's events and keeps them: into its log (which never waits for a reader, so
/// this runs right in the runner's task), and into the registry's view of the run.
struct Keeper {
    state: AppState,
    agent_id: Uuid,
    maker: EventMaker,
    log: Arc<EventLog>,
    span: tracing::Span,
    session_known: bool,
}

impl Keeper {
    fn lines(&mut self, lines: Vec<Frame>) {
        self.maker.lines(lines);
        self.keep();
    }

    fn finish(&mut self, outcome: Outcome) {
        self.maker.ending(outcome);
        self.keep();
    }

    /// Appends the events made so far, then records what they changed, so whoever waits for
    /// `complete` finds it in the log.
    fn keep(&mut self) {
        let events = self.maker.take_events();
        self.state.metrics.events.inc_by(events.len() as u64);
        self.log.extend(events);
        if let Some(summary) = self.maker.summary_update() {
            self.state.registry.observe(self.agent_id, summary);
            if let Some(until) = summary.rate_limited_until {
                self.state.rate_limit.limited_until(until);
            }
            if let (Some(session), false) = (&summary.session_id, self.session_known) {
                self.span.record("session_id", session.as_str());
                self.session_known = true;
            }
            if let Some(status) = summary.status {
                self.state
                    .metrics
                    .agents_finished
                    .get_or_create(&StatusLabel {
                        status: status.as_str(),
                    })
                    .inc();
                tracing::info!(
                    status = status.as_str(),
                    exit_code = summary.exit_code,
                    "agent ended"
                );
            }
        }
        let total = self.state.all_logs.load(Ordering::Relaxed);
        let budget = self.state.config.logs_total_bytes;
        if total > budget {
            self.state.registry.shrink_logs(total - budget);
        }
    }
}

fn cli_unavailable(state: &AppState, err: io::Error) -> ApiError {
    let program = state.cli.program.display().to_string();
    let looked = if state.cli.program.components().count() > 1 {
        format!("at {program}")
    } else {
        format!("as `{program}` on PATH")
    };
    let problem = match err.kind() {
        io::ErrorKind::NotFound => format!("the Claude Code CLI was not found {looked}"),
        io::ErrorKind::PermissionDenied => {
            format!("the Claude Code CLI {looked} is not executable")
        }
        _ => format!("the Claude Code CLI {looked} could not be started: {err}"),
    };
    ApiError::CliUnavailable(format!(
        "{problem}. Install it with `npm install -g @anthropic-ai/claude-code`, or set CLAUDE_CLI_PATH to the path of the `claude` program."
    ))
}
