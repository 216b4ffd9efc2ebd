//! Where the gateway forwards to, and with which of the operator's credentials: an API key
//! (`x-api-key`), a token for a gateway of the operator's own (`Authorization: Bearer`), or a
//! subscription's OAuth token (`Authorization: Bearer` and the oauth beta, as the CLI sends
//! it), given in the environment or read from the stored login (`claude login`).

use std::ffi::OsString;
use std::sync::Arc;

use axum::http::header::{AUTHORIZATION, HeaderMap, HeaderValue};

use super::login::StoredLogin;
use crate::cli;

/// The public Messages API, when neither PROXY_UPSTREAM_URL nor the operator's own
/// ANTHROPIC_BASE_URL says otherwise.
pub const PUBLIC_API: &str = "https://api.anthropic.com";

/// The beta the API asks of a request made with a subscription's OAuth token; the CLI sends it
/// with one (`anthropic-beta: claude-code-20250219,oauth-2025-04-20,...`), and not with a key.
const OAUTH_BETA: &str = "oauth-2025-04-20";

/// The real API and the credential the gateway puts on each request.
#[derive(Debug, Clone)]
pub struct Upstream {
    /// Without a trailing slash: a request's path is appended as it came.
    pub url: String,
    pub credential: Credential,
}

/// The operator's credential. Its `Debug` never shows a secret.
#[derive(Clone)]
pub enum Credential {
    ApiKey(String),
    /// ANTHROPIC_AUTH_TOKEN: a bearer token, as is.
    Bearer(String),
    /// CLAUDE_CODE_OAUTH_TOKEN (`claude setup-token`).
    OAuth(String),
    /// The stored login, which the gateway refreshes (`login.rs`).
    StoredLogin(Arc<StoredLogin>),
    /// None at all: requests go on without one, and the API says why it refuses them.
    None,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.kind())
    }
}

/// Why a credential could not be put on a request.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct CredentialError(String);

impl Upstream {
    /// From the settings and the server's environment: PROXY_UPSTREAM_URL, else the operator's
    /// ANTHROPIC_BASE_URL, else the public API. Under a subscription (`use_subscription`) the
    /// credential is CLAUDE_CODE_OAUTH_TOKEN, else the stored login; otherwise an API key or
    /// auth token comes first.
    pub fn from_env(
        upstream_url: Option<&str>,
        server_env: &[(OsString, OsString)],
        use_subscription: bool,
        token_url: &str,
    ) -> Self {
        let var = |name: &str| {
            server_env
                .iter()
                .find(|(key, _)| key == name)
                .and_then(|(_, value)| value.to_str())
                .filter(|value| !value.is_empty())
                .map(str::to_owned)
        };
        let url = upstream_url
            .map(str::to_owned)
            .or_else(|| var(cli::BASE_URL))
            .unwrap_or_else(|| PUBLIC_API.to_owned());
        let login = cli::config_dir(server_env)
            .map(|dir| cli::home::login_file_in(&dir))
            .filter(|file| file.is_file());
        let key = (!use_subscription)
            .then(|| {
                var(cli::API_KEY)
                    .map(Credential::ApiKey)
                    .or_else(|| var(cli::AUTH_TOKEN).map(Credential::Bearer))
            })
            .flatten();
        let credential = key
            .or_else(|| var(cli::OAUTH_TOKEN).map(Credential::OAuth))
            .or_else(|| {
                login.map(|file| {
                    Credential::StoredLogin(Arc::new(StoredLogin::new(file, token_url.to_owned())))
                })
            })
            .unwrap_or(Credential::None);
        Self {
            url: url.trim_end_matches('/').to_owned(),
            credential,
        }
    }
}

impl Credential {
    /// What kind it is, for the log.
    pub fn kind(&self) -> &'static str {
        match self {
            Credential::ApiKey(_) => "api key",
            Credential::Bearer(_) => "auth token",
            Credential::OAuth(_) => "oauth token",
            Credential::StoredLogin(_) => "stored login",
            Credential::None => "none",
        }
    }

    /// Puts the credential on a request's `headers` (which hold none of the agent's); returns
    /// the stored login's token it put, to be told if the API refuses it.
    pub async fn apply(
        &self,
        headers: &mut HeaderMap,
        client: &reqwest::Client,
    ) -> Result<Option<String>, CredentialError> {
        match self {
            Credential::ApiKey(key) => {
                headers.insert("x-api-key", secret(key)?);
            }
            Credential::Bearer(token) => {
                headers.insert(AUTHORIZATION, secret(&format!("Bearer {token}"))?);
            }
            Credential::OAuth(token) => oauth(headers, token)?,
            Credential::StoredLogin(login) => {
                let token = login
                    .access_token(client)
                    .await
                    .map_err(|err| CredentialError(err.to_string()))?;
                oauth(headers, &token)?;
                return Ok(Some(token));
            }
            Credential::None => {}
        }
        Ok(None)
    }

    /// The API answered 401 to a request that carried the stored login's `token`.
    pub fn refused(&self, token: &str) {
        if let Credential::StoredLogin(login) = self {
            login.refused(token);
        }
    }
}

fn oauth(headers: &mut HeaderMap, token: &str) -> Result<(), CredentialError> {
    headers.insert(AUTHORIZATION, secret(&format!("Bearer {token}"))?);
    let betas = headers
        .get("anthropic-beta")
        .and_then(|value| value.to_str().ok())
        .unwrap_or("");
    if !betas.split(',').any(|beta| beta.trim() == OAUTH_BETA) {
        let betas = if betas.is_empty() {
            OAUTH_BETA.to_owned()
        } else {
            format!("{betas},{OAUTH_BETA}")
        };
        let value = HeaderValue::from_str(&betas)
            .map_err(|_| CredentialError("the request's anthropic-beta is not text".into()))?;
        headers.insert("anthropic-beta", value);
    }
    Ok(())
}

fn secret(value: &str) -> Result<HeaderValue, CredentialError> {
    let mut value = HeaderValue::from_str(value).map_err(|_| {
        CredentialError("the operator's credential is not a valid header value".into())
    })?;
    value.set_sensitive(true);
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(OsString, OsString)> {
        pairs.iter().map(|(k, v)| (k.into(), v.into())).collect()
    }

    #[test]
    fn the_upstream_is_the_setting_else_the_operators_base_url_else_the_public_api() {
        let with_base = env(&[("ANTHROPIC_BASE_URL", "http://127.0.0.1:9/")]);
        assert_eq!(
            Upstream::from_env(Some("https://gw.example/a/"), &with_base, true, "").url,
            "https://gw.example/a"
        );
        assert_eq!(
            Upstream::from_env(None, &with_base, true, "").url,
            "http://127.0.0.1:9"
        );
        assert_eq!(Upstream::from_env(None, &[], true, "").url, PUBLIC_API);
    }

    #[test]
    fn a_subscription_uses_its_token_and_a_key_is_used_only_outside_one() {
        let server = env(&[("ANTHROPIC_API_KEY", "k"), ("CLAUDE_CODE_OAUTH_TOKEN", "o")]);
        let kind = |env: &[(OsString, OsString)], subscription| {
            Upstream::from_env(None, env, subscription, "")
                .credential
                .kind()
        };
        assert_eq!(kind(&server, true), "oauth token");
        assert_eq!(kind(&server, false), "api key");
        assert_eq!(
            kind(&env(&[("ANTHROPIC_AUTH_TOKEN", "t")]), false),
            "auth token"
        );
        assert_eq!(kind(&env(&[("ANTHROPIC_API_KEY", "k")]), true), "none");
    }

    #[tokio::test]
    async fn an_oauth_token_goes_with_the_oauth_beta_once() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "anthropic-beta",
            HeaderValue::from_static("claude-code-20250219"),
        );
        let credential = Credential::OAuth("s3cr3t".into());
        let client = reqwest::Client::new();
        credential.apply(&mut headers, &client).await.unwrap();
        assert_eq!(headers["authorization"], "Bearer s3cr3t");
        assert_eq!(
            headers["anthropic-beta"],
            "claude-code-20250219,oauth-2025-04-20"
        );
        credential.apply(&mut headers, &client).await.unwrap();
        assert_eq!(
            headers["anthropic-beta"],
            "claude-code-20250219,oauth-2025-04-20"
        );
        assert!(format!("{credential:?}").find("s3cr3t").is_none());
    }
}
