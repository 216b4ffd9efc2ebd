//! What the handlers share.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::agent::{Registry, Retention, SharedBytes};
use crate::config::Config;
use crate::runner::{CliCommand, Limits, child_environment};

#[derive(Debug, Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub cli: CliCommand,
    pub registry: Arc<Registry>,
    /// The bytes held by all agents' event logs together.
    pub all_logs: SharedBytes,
    /// Cancelled when the server shuts down; every agent's stop signal is a child of it.
    pub shutdown: CancellationToken,
    /// Every agent's task, so a shutdown can wait until each CLI has been reaped.
    pub tasks: TaskTracker,
}

impl AppState {
    /// The child environment is the server's own, filtered once here.
    pub fn new(config: Config) -> Self {
        let nonzero = |d: std::time::Duration| (!d.is_zero()).then_some(d);
        let cli = CliCommand {
            program: config.cli_path.clone(),
            env: Arc::new(child_environment(
                std::env::vars_os(),
                config.use_subscription,
            )),
            limits: Limits {
                timeout: nonzero(config.agent_timeout),
                idle_timeout: nonzero(config.idle_timeout),
                stop_grace: config.stop_grace,
                max_line_bytes: config.max_line_bytes,
            },
        };
        Self {
            registry: Registry::new(
                config.max_agents,
                Retention {
                    keep_for: config.agent_retention,
                    max_finished: config.max_finished_agents,
                },
            ),
            all_logs: SharedBytes::default(),
            config: Arc::new(config),
            cli,
            shutdown: CancellationToken::new(),
            tasks: TaskTracker::new(),
        }
    }
}
