//! `claude auth status`: whether the CLI is logged in, and how (offline, in about 0.3 s).

use std::ffi::OsString;
use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

use crate::process;

/// How long the CLI may take to answer.
const ANSWER_LIMIT: Duration = Duration::from_secs(10);

/// The CLI's login, as it reported it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Login {
    pub logged_in: bool,
    /// `api_key`, `oauth_token`, `claude.ai`, `none`, ...
    pub auth_method: String,
    /// When a stored subscription login expires.
    pub login_expires_at: Option<DateTime<Utc>>,
}

impl Login {
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

/// Asks the CLI at `cli`, run with `env` in `cwd`; None when it cannot be run or does not say.
pub async fn ask_login(cli: &Path, env: &[(OsString, OsString)], cwd: &Path) -> Option<Login> {
    match process::run_briefly(cli, &["auth", "status"], env, cwd, ANSWER_LIMIT).await {
        // It exits with 1 when not logged in, and says so.
        Ok(brief) => Login::parse(&brief.stdout),
        Err(err) => {
            tracing::warn!(%err, "could not ask the CLI whether it is logged in");
            None
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
            Login::parse(none),
            Some(Login {
                logged_in: false,
                auth_method: "none".into(),
                login_expires_at: None
            })
        );
        let stored =
            br#"{"loggedIn": true, "authMethod": "claude.ai", "loginExpiresAt": 1800000000000}"#;
        assert_eq!(
            Login::parse(stored).unwrap().login_expires_at,
            DateTime::from_timestamp(1_800_000_000, 0)
        );
        assert_eq!(Login::parse(b"Unknown command"), None);
    }
}
