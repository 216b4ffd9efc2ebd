//! What the handlers share.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::agent::{Registry, Retention, SharedBytes};
use crate::auth::ApiKeys;
use crate::config::{Config, Validated};
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::policy::ToolPolicy;
use crate::runner::{CliCommand, Limits, child_environment};

#[derive(Debug, Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub keys: ApiKeys,
    pub policy: Arc<ToolPolicy>,
    pub cli: CliCommand,
    pub registry: Arc<Registry>,
    /// The bytes held by all agents' event logs together.
    pub all_logs: SharedBytes,
    pub rate_limit: RateLimitGate,
    pub metrics: Arc<Metrics>,
    /// Cancelled when the server shuts down; every agent's stop signal is a child of it.
    pub shutdown: CancellationToken,
    /// Every agent's tasks, so a shutdown can wait until each CLI has been reaped.
    pub tasks: TaskTracker,
}

impl AppState {
    /// Checks the settings (see [`Config::validate`]); the child environment is the server's
    /// own, filtered once here.
    pub fn new(config: Config) -> Result<Self, String> {
        let Validated { keys, policy } = config.validate()?;
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
        Ok(Self {
            registry: Registry::new(
                config.max_agents,
                config.max_agents_per_key,
                Retention {
                    keep_for: config.agent_retention,
                    max_finished: config.max_finished_agents,
                },
            ),
            keys,
            policy: Arc::new(policy),
            all_logs: SharedBytes::default(),
            rate_limit: RateLimitGate::default(),
            metrics: Arc::default(),
            config: Arc::new(config),
            cli,
            shutdown: CancellationToken::new(),
            tasks: TaskTracker::new(),
        })
    }
}

/// While the subscription is known to be rate limited, new agents are refused instead of
/// spawned only to fail.
#[derive(Debug, Clone, Default)]
pub struct RateLimitGate {
    until: Arc<Mutex<Option<DateTime<Utc>>>>,
}

impl RateLimitGate {
    pub fn limited_until(&self, until: DateTime<Utc>) {
        let mut current = crate::lock(&self.until);
        if current.is_none_or(|c| c < until) {
            *current = Some(until);
        }
    }

    pub fn check(&self) -> Result<(), ApiError> {
        match *crate::lock(&self.until) {
            Some(until) if until > Utc::now() => Err(ApiError::RateLimited { until }),
            _ => Ok(()),
        }
    }
}
