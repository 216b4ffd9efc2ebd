//! What a client may ask for, checked before anything is spawned.

use axum::extract::{FromRequest, FromRequestParts, MatchedPath, Request};
use axum::http::request::Parts;
use serde::Deserialize;
use uuid::Uuid;

use std::path::PathBuf;

use crate::config::parse_model;
use crate::error::ApiError;
use crate::policy::{Narrowing, PermissionMode, ToolPolicy};
use crate::runner::Invocation;

/// The body of /agent/start and /agent/stream: a JSON object (see [`AgentRequest`]'s
/// `Deserialize`). Unknown fields are refused, so a typo such as `sesion_id` never silently
/// starts a new session.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, remote = "Self")]
pub struct AgentRequest {
    pub prompt: String,
    #[serde(default)]
    pub session_id: Option<String>,
    #[serde(default)]
    pub model: Option<String>,
    /// For /agent/stream: keep the agent running when the client goes away, so it can come
    /// back through /agent/{id}/events.
    #[serde(default)]
    pub detach_on_disconnect: bool,
    /// Narrowing of the operator's tool policy (never widening: that is 403).
    #[serde(default)]
    pub tools: Option<Vec<String>>,
    #[serde(default)]
    pub allowed_tools: Option<Vec<String>>,
    #[serde(default)]
    pub disallowed_tools: Vec<String>,
    #[serde(default)]
    pub permission_mode: Option<PermissionMode>,
    #[serde(default)]
    pub max_turns: Option<u32>,
    #[serde(default)]
    pub append_system_prompt: Option<String>,
    /// A directory below CLAUDE_WORKDIR to run in.
    #[serde(default)]
    pub cwd: Option<String>,
}

/// A derived struct deserializer also takes a JSON array of the fields in order, so that
/// `["a prompt"]` would start an agent: only an object is a request.
impl<'de> Deserialize<'de> for AgentRequest {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjectOnly;
        impl<'de> serde::de::Visitor<'de> for ObjectOnly {
            type Value = AgentRequest;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str(r#"a JSON object such as {"prompt": "..."}"#)
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<AgentRequest, A::Error> {
                AgentRequest::deserialize(serde::de::value::MapAccessDeserializer::new(map))
            }
        }
        deserializer.deserialize_map(ObjectOnly)
    }
}

/// A checked request, ready to run.
#[derive(Debug)]
pub struct RunRequest {
    pub invocation: Invocation,
    pub detach_on_disconnect: bool,
}

impl AgentRequest {
    /// Checks every field against the operator's settings and turns the request into a CLI
    /// invocation. `session_home` says where a known session lives, or refuses it.
    pub fn check(
        self,
        default_model: Option<&str>,
        policy: &ToolPolicy,
        session_home: impl FnOnce(&str) -> Result<Option<PathBuf>, ApiError>,
    ) -> Result<RunRequest, ApiError> {
        if self.prompt.trim().is_empty() {
            return Err(ApiError::InvalidField {
                field: "prompt",
                reason: "must not be empty".into(),
            });
        }
        if self.prompt.contains('\0') {
            return Err(ApiError::InvalidField {
                field: "prompt",
                reason: "must not contain NUL characters".into(),
            });
        }
        let resume = self
            .session_id
            .map(|id| {
                Uuid::try_parse(&id).map(|uuid| uuid.hyphenated().to_string()).map_err(|_| ApiError::InvalidField {
                    field: "session_id",
                    reason: "must be a UUID such as 0b6e7a43-5c3e-4a51-9d0f-0b8a3b8f7c11 (the session_id of an earlier result)".into(),
                })
            })
            .transpose()?;
        let model = match self.model {
            Some(model) => Some(
                parse_model(&model).map_err(|reason| ApiError::InvalidField {
                    field: "model",
                    reason,
                })?,
            ),
            None => default_model.map(str::to_owned),
        };
        let applied = policy.apply(&Narrowing {
            tools: self.tools,
            allowed_tools: self.allowed_tools,
            disallowed_tools: self.disallowed_tools,
            permission_mode: self.permission_mode,
            max_turns: self.max_turns,
            append_system_prompt: self.append_system_prompt,
            cwd: self.cwd.clone(),
        })?;
        // A session lives under the directory it was made in: resume it there.
        let session_cwd = match &resume {
            Some(session) => session_home(session)?,
            None => None,
        };
        let cwd = match (self.cwd, session_cwd) {
            (None, Some(home)) => home,
            _ => applied.cwd,
        };
        let invocation = Invocation {
            prompt: self.prompt,
            model,
            resume,
            policy_args: applied.args,
            cwd: Some(cwd),
        };
        Ok(RunRequest {
            invocation,
            detach_on_disconnect: self.detach_on_disconnect,
        })
    }
}

/// The `{agent_id}` of a route. An id that is not a UUID, or not even UTF-8, names no agent:
/// 404 in JSON, like an unknown one, where axum's own path extractor would answer 400 in text.
pub struct AgentId {
    pub id: Uuid,
    /// As the client wrote it, for the error message.
    raw: String,
}

impl AgentId {
    pub fn not_found(&self) -> ApiError {
        not_found(&self.raw)
    }
}

fn not_found(raw: &str) -> ApiError {
    ApiError::AgentNotFound(raw.chars().take(100).collect())
}

impl<S: Send + Sync> FromRequestParts<S> for AgentId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<String>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(raw)) => match Uuid::try_parse(&raw) {
                Ok(id) => Ok(AgentId { id, raw }),
                Err(_) => Err(not_found(&raw)),
            },
            Err(_) => {
                // Not UTF-8 once decoded: name it as sent, the segment where the route has it.
                let route = parts
                    .extensions
                    .get::<MatchedPath>()
                    .map(|m| m.as_str().to_owned())
                    .unwrap_or_default();
                let position = route.split('/').position(|segment| segment == "{agent_id}");
                let raw = position
                    .and_then(|i| parts.uri.path().split('/').nth(i))
                    .unwrap_or_default()
                    .to_owned();
                Err(not_found(&raw))
            }
        }
    }
}

/// axum's `Json`, with its rejections answered as JSON errors.
pub struct ValidJson<T>(pub T);

impl<S, T> FromRequest<S> for ValidJson<T>
where
    axum::Json<T>: FromRequest<S, Rejection = axum::extract::rejection::JsonRejection>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let axum::Json(value) = axum::Json::<T>::from_request(req, state).await?;
        Ok(ValidJson(value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(prompt: &str, session_id: Option<&str>, model: Option<&str>) -> AgentRequest {
        serde_json::from_value(
            serde_json::json!({"prompt": prompt, "session_id": session_id, "model": model}),
        )
        .unwrap()
    }

    fn check(request: AgentRequest, default_model: Option<&str>) -> Result<Invocation, ApiError> {
        let policy = ToolPolicy {
            tools: None,
            allowed_tools: vec![],
            disallowed_tools: vec![],
            permission_mode: None,
            max_turns: None,
            workdir: std::env::temp_dir(),
        };
        request
            .check(default_model, &policy, |_| Ok(None))
            .map(|r| r.invocation)
    }

    #[test]
    fn empty_prompts_bad_sessions_and_bad_models_are_refused() {
        assert!(check(request("  \n", None, None), None).is_err());
        assert!(check(request("a\0b", None, None), None).is_err());
        assert!(check(request("hi", Some("not-a-uuid"), None), None).is_err());
        assert!(check(request("hi", None, Some("--model x")), None).is_err());
    }

    #[test]
    fn the_default_model_applies_when_none_is_asked_for() {
        let got = check(request("hi", None, None), Some("sonnet")).unwrap();
        assert_eq!(got.model.as_deref(), Some("sonnet"));
        let got = check(request("hi", None, Some("opus")), Some("sonnet")).unwrap();
        assert_eq!(got.model.as_deref(), Some("opus"));
    }

    #[test]
    fn only_an_object_is_a_request() {
        assert!(serde_json::from_str::<AgentRequest>(r#"["hi"]"#).is_err());
        assert!(serde_json::from_str::<AgentRequest>(r#"{"prompt": "hi"}"#).is_ok());
    }

    #[test]
    fn session_ids_are_normalized() {
        let got = check(
            request("hi", Some("0B6E7A43-5C3E-4A51-9D0F-0B8A3B8F7C11"), None),
            None,
        )
        .unwrap();
        assert_eq!(
            got.resume.as_deref(),
            Some("0b6e7a43-5c3e-4a51-9d0f-0b8a3b8f7c11")
        );
    }
}
