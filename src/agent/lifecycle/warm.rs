//! Keeping the pool of CLIs started ahead (`pool.rs`) full: the operator's shapes and the
//! learned ones, within PROXY_WARM_POOL and the process slots PROXY_MAX_AGENTS leaves free.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::watch;
use tracing::Instrument;
use uuid::Uuid;

use crate::agent::Agents;
use crate::agent::admission::request::{AgentRequest, Run};
use crate::agent::chat::turn::ChatTurn;
use crate::agent::conversation::Conversation;
use crate::agent::error::{CliProblem, Error};
use crate::agent::lifecycle::launch::command;
use crate::agent::lifecycle::pool::{self, OperatorShape, Started};
use crate::agent::lifecycle::state::Core;
use crate::agent::status::AgentKind;
use crate::process;

/// How long the pool waits after a CLI could not be started before it tries again.
const RETRY_AFTER: Duration = Duration::from_secs(5);

impl Agents {
    /// Keeps the pool full until the server shuts down; returns at once without a pool.
    pub async fn keep_warm(&self) {
        let core = &self.core;
        if !core.pool.is_on() {
            return;
        }
        core.pool
            .set_operator_shapes(self.operator_templates().await);
        loop {
            let running = core.table.running() + core.pool.len();
            let room = core.settings.admission.max_agents.saturating_sub(running);
            let mut failed = false;
            for template in core.pool.wanted_now(room) {
                if core.shutdown.is_cancelled() {
                    return;
                }
                if let Err(err) = start(core, template) {
                    tracing::warn!(%err, "could not start a CLI for the warm pool");
                    failed = true;
                    break;
                }
            }
            let paused_until = core.pool.paused_until();
            tokio::select! {
                () = core.shutdown.cancelled() => return,
                () = core.pool.wanted.notified() => {}
                () = tokio::time::sleep(RETRY_AFTER), if failed => {}
                () = sleep_until(paused_until), if paused_until.is_some() => {}
            }
        }
    }

    /// The runs the operator's shapes stand for, for each owner, checked as requests are.
    async fn operator_templates(&self) -> Vec<Run> {
        let warm = &self.core.settings.warm;
        let mut templates = Vec::new();
        for shape in &warm.shapes {
            for owner in &warm.owners {
                let run = match shape {
                    OperatorShape::Stream | OperatorShape::Interactive => {
                        let request: AgentRequest = serde_json::from_value(serde_json::json!({
                            "prompt": "-",
                            "interactive": *shape == OperatorShape::Interactive,
                        }))
                        .expect("a request of these fields");
                        self.check(*owner, AgentKind::Stream, request).await
                    }
                    OperatorShape::Chat => {
                        let Some(model) = self.compat_models().into_iter().next() else {
                            continue;
                        };
                        let turn = ChatTurn {
                            kind: AgentKind::OpenAi,
                            model,
                            system: None,
                            earlier: Vec::new(),
                            last: "-".to_owned(),
                            images: Vec::new(),
                            session: None,
                            enable_tools: None,
                            client_tools: Vec::new(),
                            json_schema: None,
                            response: None,
                            effort: None,
                        };
                        self.check_chat(*owner, turn).await.map(|(run, _)| run)
                    }
                };
                match run {
                    Ok(run) => templates.push(run),
                    Err(err) => {
                        tracing::warn!(%err, ?shape, "PROXY_WARM_SHAPES: this shape cannot be kept warm");
                    }
                }
            }
        }
        templates
    }
}

/// Starts a CLI for the pool from `template`, in streaming-input mode with nothing written,
/// and hands it to a keeper task.
fn start(core: &Arc<Core>, template: Run) -> Result<(), Error> {
    if let process::WatchdogStatus::Down { why, .. } = process::watchdog::status() {
        return Err(Error::NoWatchdog(why));
    }
    let (stdin, queue) = Conversation::stdin_queue();
    let (idle_paused, paused) = watch::channel(false);
    let cli_input = pool::pool_input(&template);
    // Its agent is not known yet: its pass is bound to it when a run takes it.
    let (spec, files) = command(
        core,
        &template,
        Uuid::new_v4(),
        cli_input,
        process::Input::Stream(Bytes::new(), queue),
        template.interactive.then_some(paused),
    )?;
    let spawning = std::time::Instant::now();
    let cli = process::spawn(spec, core.settings.limits).map_err(|err| Error::CliUnavailable {
        problem: CliProblem::of(core.settings.cli.clone(), err),
    })?;
    core.metrics
        .spawn_seconds
        .observe(spawning.elapsed().as_secs_f64());
    let span = tracing::info_span!("warm", pid = cli.pid());
    let started = Started {
        cli,
        stdin,
        idle_paused,
        files,
        template,
    };
    let (id, claimed) = core.pool.add(&started);
    span.in_scope(|| tracing::debug!("a CLI started for the warm pool"));
    core.tasks.spawn(
        pool::keep(
            Arc::clone(&core.pool),
            id,
            started,
            claimed,
            core.shutdown.clone(),
            core.tasks.clone(),
        )
        .instrument(span),
    );
    Ok(())
}

/// Until `until`, if any.
async fn sleep_until(until: Option<std::time::Instant>) {
    if let Some(until) = until {
        tokio::time::sleep_until(tokio::time::Instant::from_std(until)).await;
    }
}
