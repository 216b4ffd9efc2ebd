//! Agents: one CLI run each, from its request to its last event.

pub mod events;
pub mod registry;

use std::io;

use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

pub use events::{AgentEvents, Event, FinalStatus};
pub use registry::{AgentKind, Registry};

use crate::error::ApiError;
use crate::runner::{self, Invocation, StopSignal};
use crate::state::AppState;

/// Lines the runner may read ahead of the slowest consumer. Past this the CLI's pipe fills and
/// the CLI waits: memory stays bounded whatever the CLI writes.
const LINES_AHEAD: usize = 64;

/// A running agent, as its starter sees it.
#[derive(Debug)]
pub struct Launched {
    pub agent_id: Uuid,
    pub pid: u32,
    pub stop: StopSignal,
    pub events: AgentEvents,
}

/// Starts an agent: takes a place in the registry, spawns the CLI and runs it to its end in
/// the background. Nothing is spawned when the registry is full.
pub fn launch(
    state: &AppState,
    kind: AgentKind,
    invocation: &Invocation,
) -> Result<Launched, ApiError> {
    let stop = StopSignal::new(&state.shutdown);
    let slot =
        state
            .registry
            .reserve(kind, stop.clone())
            .map_err(|full| ApiError::TooManyAgents {
                max_agents: full.max_agents,
            })?;
    let agent_id = slot.agent_id();
    let cli = runner::spawn(&state.cli, invocation).map_err(|err| cli_unavailable(state, err))?;
    let pid = cli.pid();
    slot.running(pid);
    tracing::info!(%agent_id, pid, ?kind, model = invocation.model.as_deref(), resume = invocation.resume.as_deref(), "agent started");

    let (lines_tx, lines_rx) = mpsc::channel(LINES_AHEAD);
    let (outcome_tx, outcome_rx) = oneshot::channel();
    let run_stop = stop.clone();
    state.tasks.spawn(async move {
        let outcome = cli.run(lines_tx, run_stop).await;
        tracing::info!(
            %agent_id, pid, ending = ?outcome.ending, exit_code = outcome.exit_code, signal = outcome.signal,
            duration_ms = outcome.duration.as_millis() as u64, "agent ended"
        );
        // Leave the registry before the last event goes out: a client that reads `complete`
        // and then asks /health sees the agent gone.
        drop(slot);
        let _ = outcome_tx.send(outcome);
    });

    let events = AgentEvents::new(
        agent_id,
        pid,
        state.cli.limits.max_line_bytes,
        lines_rx,
        outcome_rx,
    );
    Ok(Launched {
        agent_id,
        pid,
        stop,
        events,
    })
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
