//! Whether this instance can run agents, and what is wrong when it cannot: the CLI and its
//! login, the store, and the watchdog. The edge turns the answer into `/health`.

use std::path::PathBuf;

use crate::agent::lifecycle::login::CliLogin;
use crate::agent::{Agents, StoreHealth, WatchdogStatus};

/// How this instance is, as a whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition {
    /// Agents run.
    Ok,
    /// Agents run, but something is failing that needs the operator: a write to the store
    /// failed in the last minute, or its file is gone, or no watchdog runs (new agents are then
    /// refused).
    Degraded,
    /// Every agent would fail: the CLI is missing or not logged in.
    Unavailable,
}

impl Condition {
    pub fn as_str(self) -> &'static str {
        match self {
            Condition::Ok => "ok",
            Condition::Degraded => "degraded",
            Condition::Unavailable => "unavailable",
        }
    }
}

/// What [`Agents::health`] found.
#[derive(Debug, Clone)]
pub struct Health {
    pub condition: Condition,
    /// Where the CLI was found; None: it was not.
    pub cli: Option<PathBuf>,
    /// What the CLI says of its login; None when it cannot be asked.
    pub login: Option<CliLogin>,
    /// None: agents are kept in memory only.
    pub storage: Option<StoreHealth>,
    pub watchdog: WatchdogStatus,
}

impl Health {
    pub fn logged_in(&self) -> bool {
        self.login.as_ref().is_some_and(|l| l.logged_in)
    }
}

impl Agents {
    /// Looks at the CLI (its login asked at most once a minute), the store and the watchdog.
    pub async fn health(&self) -> Health {
        let cli = self.find_cli();
        let login = match cli {
            Some(_) => self.cli_login().await,
            None => None,
        };
        let storage = self.storage();
        let watchdog = self.watchdog();
        let usable = cli.is_some() && login.as_ref().is_some_and(|l| l.logged_in);
        let failing = storage.as_ref().is_some_and(|s| s.error.is_some())
            || matches!(watchdog, WatchdogStatus::Down { .. });
        let condition = match (usable, failing) {
            (false, _) => Condition::Unavailable,
            (true, true) => Condition::Degraded,
            (true, false) => Condition::Ok,
        };
        Health {
            condition,
            cli,
            login,
            storage,
            watchdog,
        }
    }
}
