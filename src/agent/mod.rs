//! Agents: one CLI run each, from its request to its last event, kept for a while after.

pub mod events;
pub mod log;
pub mod registry;

use std::io;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use std::time::Instant;

use futures_util::{FutureExt, StreamExt};
use tokio::sync::{mpsc, oneshot};
use tracing::Instrument;
use uuid::Uuid;

pub use events::{AgentEvents, Event, FinalStatus, RunSummary};
pub use log::{EventLog, SharedBytes};
pub use registry::{AgentKind, Registry, Retention};

use registry::{Full, Launch};

use crate::auth::Client;
use crate::error::ApiError;
use crate::metrics::StatusLabel;
use crate::runner::{self, Invocation, StopSignal};
use crate::state::AppState;

/// Batches of lines the runner may read ahead of the agent's task, which logs them at once: a
/// small buffer between two tasks, not a place where output waits for readers. A batch holds
/// at most about 256 KiB (or one longer line), so this bounds memory in bytes too.
const LINES_AHEAD: usize = 4;
/// The most events, and about the most bytes, one append takes.
const EVENTS_PER_APPEND: usize = 1024;
const BYTES_PER_APPEND: usize = 256 * 1024;

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
pub async fn launch(
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

    let (lines_tx, lines_rx) = mpsc::channel(LINES_AHEAD);
    let (outcome_tx, outcome_rx) = oneshot::channel();
    let run_stop = stop.clone();
    let metrics = Arc::clone(&state.metrics);
    let run = async move {
        let outcome = cli.run(lines_tx, run_stop).await;
        tracing::debug!(
            ending = ?outcome.ending, exit_code = outcome.exit_code, signal = outcome.signal,
            duration_ms = outcome.duration.as_millis() as u64, "CLI reaped"
        );
        metrics.ended(&outcome);
        // The process is reaped: its place is free before the last event goes out, so a
        // client that reads `complete` and then asks /health sees it gone.
        drop(slot);
        let _ = outcome_tx.send(outcome);
    };
    state.tasks.spawn(run.instrument(span.clone()));

    let events = AgentEvents::new(
        agent_id,
        pid,
        state.cli.limits.max_line_bytes,
        lines_rx,
        outcome_rx,
    );
    let keep = keep_events(
        state.clone(),
        agent_id,
        events,
        Arc::clone(&log),
        span.clone(),
    );
    state.tasks.spawn(keep.instrument(span));
    Ok(Launched {
        agent_id,
        pid,
        stop,
        log,
    })
}

/// Moves the agent's events into its log as fast as they come (all that are ready at once, in
/// one append), keeping the registry's view of the run up to date and all logs within their
/// budget. The summary is recorded after the events that changed it are in the log, so whoever
/// waits for `complete` finds it there.
async fn keep_events(
    state: AppState,
    agent_id: Uuid,
    mut events: AgentEvents,
    log: Arc<EventLog>,
    span: tracing::Span,
) {
    let budget = state.config.logs_total_bytes;
    let mut session_known = false;
    while let Some(first) = events.next().await {
        let mut bytes = first.data.len();
        let mut batch = vec![first];
        while batch.len() < EVENTS_PER_APPEND && bytes < BYTES_PER_APPEND {
            match events.next().now_or_never() {
                Some(Some(event)) => {
                    bytes += event.data.len();
                    batch.push(event);
                }
                _ => break,
            }
        }
        state.metrics.events.inc_by(batch.len() as u64);
        log.extend(batch);
        if let Some(summary) = events.summary_update() {
            state.registry.observe(agent_id, summary);
            if let Some(until) = summary.rate_limited_until {
                state.rate_limit.limited_until(until);
            }
            if let (Some(session), false) = (&summary.session_id, session_known) {
                span.record("session_id", session.as_str());
                session_known = true;
            }
            if let Some(status) = summary.status {
                state
                    .metrics
                    .agents_finished
                    .get_or_create(&StatusLabel {
                        status: status.as_str(),
                    })
                    .inc();
                // Logged here rather than where the CLI is reaped: the session is on the span.
                tracing::info!(
                    status = status.as_str(),
                    exit_code = summary.exit_code,
                    "agent ended"
                );
            }
        }
        let total = state.all_logs.load(Ordering::Relaxed);
        if total > budget {
            state.registry.shrink_logs(total - budget);
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
