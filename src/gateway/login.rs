//! The operator's stored login (`claude login`, `~/.claude/.credentials.json`), held by the
//! gateway: its access token is put on the agents' requests, and when it expires (or the API
//! answers 401 to it) exactly one refresh happens while the other requests wait for it; the new
//! tokens are written back where the operator's CLI reads them (a file of 0600 renamed over
//! the old one). No CLI holds the refresh token: none refreshes, and two never spend one
//! rotated token twice.
//!
//! The refresh is the CLI's own (its program: `POST TOKEN_URL` with JSON `grant_type:
//! refresh_token`, the refresh token, its `client_id` and the login's scopes; the answer's
//! `access_token`, `refresh_token` (else the old one) and `expires_in` seconds).

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{Value, json};

/// Where the CLI refreshes a login (its program's TOKEN_URL).
pub const TOKEN_URL: &str = "https://platform.claude.com/v1/oauth/token";
/// The CLI's OAuth client.
const CLIENT_ID: &str = "9d1c250a-e61b-44d9-88ed-5944d1962f5e";
/// A token that expires sooner than this is refreshed before it is used.
const EARLY: TimeDelta = TimeDelta::seconds(60);
/// Longest a refresh may take.
const REFRESH_LIMIT: Duration = Duration::from_secs(30);

/// The access token in hand, and when it expires.
#[derive(Debug, Clone)]
struct Held {
    access: String,
    expires_at: Option<DateTime<Utc>>,
}

pub struct StoredLogin {
    file: PathBuf,
    token_url: String,
    held: Mutex<Option<Held>>,
    /// One refresh at a time: the requests that find the token expired wait for it.
    refreshing: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for StoredLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StoredLogin({})", self.file.display())
    }
}

/// Why there is no token.
#[derive(Debug, thiserror::Error)]
#[error("the stored login {file} cannot be used: {why}")]
pub struct LoginError {
    file: String,
    why: String,
}

impl StoredLogin {
    pub fn new(file: PathBuf, token_url: String) -> Self {
        Self {
            file,
            token_url,
            held: Mutex::new(None),
            refreshing: tokio::sync::Mutex::new(()),
        }
    }

    fn error(&self, why: impl Into<String>) -> LoginError {
        LoginError {
            file: self.file.display().to_string(),
            why: why.into(),
        }
    }

    /// An access token good for a while yet: the one in hand, else the file's, else a new one.
    pub async fn access_token(&self, client: &reqwest::Client) -> Result<String, LoginError> {
        if let Some(token) = self.fresh() {
            return Ok(token);
        }
        let _one_at_a_time = self.refreshing.lock().await;
        // Another request may have refreshed it while this one waited.
        if let Some(token) = self.fresh() {
            return Ok(token);
        }
        let login = self.read().await?;
        let held = held_of(&login);
        if held
            .as_ref()
            .is_some_and(|h| h.expires_at.is_none_or(|at| at - EARLY > Utc::now()))
            && !self.was_refused(held.as_ref())
        {
            let token = held.as_ref().expect("checked").access.clone();
            *crate::sync::lock(&self.held) = held;
            return Ok(token);
        }
        let refreshed = self.refresh(client, login).await?;
        let token = refreshed.access.clone();
        *crate::sync::lock(&self.held) = Some(refreshed);
        Ok(token)
    }

    /// The API answered 401 to `token`: it is refreshed before the next request.
    pub fn refused(&self, token: &str) {
        let mut held = crate::sync::lock(&self.held);
        if held.as_ref().is_some_and(|h| h.access == token) {
            // Marked expired: the file's, if it is the same token, is not taken either.
            *held = Some(Held {
                access: token.to_owned(),
                expires_at: Some(DateTime::<Utc>::UNIX_EPOCH),
            });
        }
    }

    /// Whether the token in hand was refused by the API (and `held` from the file is it).
    fn was_refused(&self, from_file: Option<&Held>) -> bool {
        let held = crate::sync::lock(&self.held);
        match (held.as_ref(), from_file) {
            (Some(h), Some(f)) => {
                h.access == f.access && h.expires_at == Some(DateTime::<Utc>::UNIX_EPOCH)
            }
            _ => false,
        }
    }

    fn fresh(&self) -> Option<String> {
        crate::sync::lock(&self.held)
            .as_ref()
            .filter(|h| h.expires_at.is_none_or(|at| at - EARLY > Utc::now()))
            .map(|h| h.access.clone())
    }

    async fn read(&self) -> Result<Value, LoginError> {
        let text = tokio::fs::read(&self.file)
            .await
            .map_err(|err| self.error(err.to_string()))?;
        serde_json::from_slice(&text).map_err(|err| self.error(err.to_string()))
    }

    /// Refreshes the login, and writes the new tokens back.
    async fn refresh(
        &self,
        client: &reqwest::Client,
        mut login: Value,
    ) -> Result<Held, LoginError> {
        let oauth = &login["claudeAiOauth"];
        let refresh_token = oauth["refreshToken"]
            .as_str()
            .ok_or_else(|| self.error("its token expired, and it holds no refreshToken"))?
            .to_owned();
        let scopes = oauth["scopes"]
            .as_array()
            .map(|s| {
                s.iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default();
        let mut body = json!({
            "grant_type": "refresh_token",
            "refresh_token": refresh_token,
            "client_id": CLIENT_ID,
        });
        if !scopes.is_empty() {
            body["scope"] = Value::String(scopes);
        }
        tracing::info!(token_url = %self.token_url, "refreshing the stored login");
        let answer = client
            .post(&self.token_url)
            .header("content-type", "application/json")
            .body(body.to_string())
            .timeout(REFRESH_LIMIT)
            .send()
            .await
            .map_err(|err| self.error(format!("its refresh failed: {err}")))?;
        let status = answer.status();
        let bytes = answer
            .bytes()
            .await
            .map_err(|err| self.error(format!("its refresh failed: {err}")))?;
        if !status.is_success() {
            return Err(self.error(format!("its refresh was refused ({status})")));
        }
        let tokens: Value = serde_json::from_slice(&bytes)
            .map_err(|err| self.error(format!("its refresh answered no JSON: {err}")))?;
        let access = tokens["access_token"]
            .as_str()
            .ok_or_else(|| self.error("its refresh answered no access_token"))?
            .to_owned();
        let expires_at = tokens["expires_in"]
            .as_i64()
            .map(|secs| Utc::now() + TimeDelta::seconds(secs));
        let oauth = &mut login["claudeAiOauth"];
        oauth["accessToken"] = Value::String(access.clone());
        if let Some(rotated) = tokens["refresh_token"].as_str() {
            oauth["refreshToken"] = Value::String(rotated.to_owned());
        }
        if let Some(at) = expires_at {
            oauth["expiresAt"] = Value::from(at.timestamp_millis());
        }
        write_atomically(&self.file, &login)
            .await
            .map_err(|err| self.error(format!("the refreshed login cannot be written: {err}")))?;
        Ok(Held { access, expires_at })
    }
}

fn held_of(login: &Value) -> Option<Held> {
    let oauth = &login["claudeAiOauth"];
    Some(Held {
        access: oauth["accessToken"].as_str()?.to_owned(),
        expires_at: oauth["expiresAt"]
            .as_i64()
            .and_then(DateTime::from_timestamp_millis),
    })
}

/// Writes `login` to a file of 0600 beside `file`, then renames it over `file`: a reader sees
/// the old login or the new one, never half of one.
async fn write_atomically(file: &Path, login: &Value) -> std::io::Result<()> {
    let (file, text) = (file.to_owned(), serde_json::to_vec(login)?);
    tokio::task::spawn_blocking(move || {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let name = file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let temporary = file.with_file_name(format!(".{name}.{}", uuid::Uuid::new_v4().simple()));
        let mut out = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temporary)?;
        out.write_all(&text)?;
        out.sync_all()?;
        std::fs::rename(&temporary, &file)
    })
    .await
    .map_err(std::io::Error::other)?
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A token endpoint on a free port that counts its refreshes; its URL.
    async fn token_endpoint(count: Arc<AtomicUsize>) -> String {
        let app = axum::Router::new().route(
            "/token",
            axum::routing::post(move || {
                let n = count.fetch_add(1, Ordering::SeqCst) + 1;
                async move {
                    axum::Json(
                        json!({"access_token": format!("refreshed-{n}"), "expires_in": 3600}),
                    )
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/token", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        url
    }

    #[tokio::test]
    async fn a_good_token_is_used_as_it_is_and_one_the_api_refused_is_refreshed_once() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(".credentials.json");
        let good_until = Utc::now().timestamp_millis() + 3_600_000;
        std::fs::write(
            &file,
            json!({"claudeAiOauth": {"accessToken": "a", "refreshToken": "r", "expiresAt": good_until}})
                .to_string(),
        )
        .unwrap();
        let count = Arc::new(AtomicUsize::new(0));
        let login = Arc::new(StoredLogin::new(
            file.clone(),
            token_endpoint(Arc::clone(&count)).await,
        ));
        let client = reqwest::Client::new();
        assert_eq!(login.access_token(&client).await.unwrap(), "a");
        assert_eq!(count.load(Ordering::SeqCst), 0);

        login.refused("a");
        let asked = (0..10).map(|_| {
            let (login, client) = (Arc::clone(&login), client.clone());
            async move { login.access_token(&client).await.unwrap() }
        });
        for token in futures_util::future::join_all(asked).await {
            assert_eq!(token, "refreshed-1");
        }
        assert_eq!(count.load(Ordering::SeqCst), 1);
        let written: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
        assert_eq!(written["claudeAiOauth"]["accessToken"], "refreshed-1");
        assert_eq!(
            written["claudeAiOauth"]["refreshToken"], "r",
            "kept when not rotated"
        );
        // A token refused that is no longer the one in hand changes nothing.
        login.refused("a");
        assert_eq!(login.access_token(&client).await.unwrap(), "refreshed-1");
        assert_eq!(count.load(Ordering::SeqCst), 1);
    }
}
