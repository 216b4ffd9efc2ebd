//! Whether the CLI is logged in, as `claude auth status` says ([`cli::auth`]): asked at start,
//! then at most once a minute (every few seconds while it does not answer), so that `/health`
//! can say so.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::Utc;

use crate::agent::Agents;
use crate::cli;
pub use crate::cli::auth::Login as CliLogin;

/// How long an answer stands before it is asked again.
const FRESH_FOR: Duration = Duration::from_secs(60);
/// How long no answer stands (the CLI could not be run, or said nothing in time): a host too
/// busy to start it at once would otherwise be unavailable for a whole minute, long enough
/// for Docker's health check to call the container unhealthy.
const UNANSWERED_FRESH_FOR: Duration = Duration::from_secs(5);
/// A stored login that expires sooner than this is warned of.
const EXPIRES_SOON: chrono::TimeDelta = chrono::TimeDelta::days(1);

/// The last answer, and when it came.
#[derive(Debug, Default)]
pub struct LoginCache {
    last: Mutex<Option<(Instant, Option<CliLogin>)>>,
    asking: tokio::sync::Mutex<()>,
}

impl Agents {
    /// The CLI's login, asked anew when the last answer is over a minute old; None when the
    /// CLI cannot be run or does not say.
    pub async fn cli_login(&self) -> Option<CliLogin> {
        let cache = &self.core.login;
        let fresh = |cache: &LoginCache| {
            crate::sync::lock(&cache.last)
                .as_ref()
                .filter(|(at, login)| {
                    let fresh_for = match login {
                        Some(_) => FRESH_FOR,
                        None => UNANSWERED_FRESH_FOR,
                    };
                    at.elapsed() < fresh_for
                })
                .map(|(_, login)| login.clone())
        };
        if let Some(login) = fresh(cache) {
            return login;
        }
        // One question at a time: the others wait for its answer.
        let _asking = cache.asking.lock().await;
        if let Some(login) = fresh(cache) {
            return login;
        }
        let login = self.ask_cli_login().await;
        if let Some(expires) = login.as_ref().and_then(|l| l.login_expires_at) {
            if expires - Utc::now() < EXPIRES_SOON {
                tracing::warn!(
                    %expires,
                    "the CLI's stored login expires within a day; a long-lived token (claude setup-token, CLAUDE_CODE_OAUTH_TOKEN) does not"
                );
            }
        }
        *crate::sync::lock(&cache.last) = Some((Instant::now(), login.clone()));
        login
    }

    async fn ask_cli_login(&self) -> Option<CliLogin> {
        let settings = &self.core.settings;
        let cli = self.find_cli()?;
        cli::auth::ask_login(&cli, &settings.cli_login_env, &settings.policy.workdir).await
    }
}
