//! Whether the CLI is logged in, as `claude auth status` says (offline, in about 0.3 s): asked
//! at start, then at most once a minute, so that `/health` can say so.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

use super::Agents;
use crate::process;

/// How long an answer stands before it is asked again.
const FRESH_FOR: Duration = Duration::from_secs(60);
/// How long the CLI may take to answer.
const ANSWER_LIMIT: Duration = Duration::from_secs(10);
/// A stored login that expires sooner than this is warned of.
const EXPIRES_SOON: chrono::TimeDelta = chrono::TimeDelta::days(1);

/// The CLI's login, as it reported it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CliLogin {
    pub logged_in: bool,
    /// `api_key`, `oauth_token`, `claude.ai`, `none`, ...
    pub auth_method: String,
    /// When a stored subscription login expires.
    pub login_expires_at: Option<DateTime<Utc>>,
}

impl CliLogin {
    /// From `claude auth status`'s JSON; None when it is not that.
    fn parse(stdout: &[u8]) -> Option<Self> {
        let status: Value = serde_json::from_slice(stdout).ok()?;
        let expires = match &status["loginExpiresAt"] {
            Value::Number(ms) => DateTime::from_timestamp_millis(ms.as_i64()?),
            Value::String(text) => DateTime::parse_from_rfc3339(text)
                .ok()
                .map(|t| t.with_timezone(&Utc)),
            _ => None,
        };
        Some(Self {
            logged_in: status["loggedIn"].as_bool()?,
            auth_method: status["authMethod"].as_str().unwrap_or("none").to_owned(),
            login_expires_at: expires,
        })
    }
}

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
                .filter(|(at, _)| at.elapsed() < FRESH_FOR)
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
        let answer = process::run_briefly(
            &cli,
            &["auth", "status"],
            &settings.cli_env,
            &settings.policy.workdir,
            ANSWER_LIMIT,
        )
        .await;
        match answer {
            // It exits with 1 when not logged in, and says so.
            Ok(brief) => CliLogin::parse(&brief.stdout),
            Err(err) => {
                tracing::warn!(%err, "could not ask the CLI whether it is logged in");
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clis_answers_are_read() {
        let none = br#"{"loggedIn": false, "authMethod": "none", "loginExpiresAt": null}"#;
        assert_eq!(
            CliLogin::parse(none),
            Some(CliLogin {
                logged_in: false,
                auth_method: "none".into(),
                login_expires_at: None
            })
        );
        let stored =
            br#"{"loggedIn": true, "authMethod": "claude.ai", "loginExpiresAt": 1800000000000}"#;
        assert_eq!(
            CliLogin::parse(stored).unwrap().login_expires_at,
            DateTime::from_timestamp(1_800_000_000, 0)
        );
        assert_eq!(CliLogin::parse(b"Unknown command"), None);
    }
}
