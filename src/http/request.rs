//! What a client may ask for, checked before anything is spawned.

use axum::extract::{FromRequest, Request};
use serde::Deserialize;
use uuid::Uuid;

use crate::config::parse_model;
use crate::error::ApiError;
use crate::runner::Invocation;

/// The body of /agent/start and /agent/stream. Unknown fields are refused, so a typo such as
/// `sesion_id` never silently starts a new session.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
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
}

impl AgentRequest {
    /// Checks every field and turns the request into a CLI invocation, and whether the agent
    /// is to outlive its stream's client.
    pub fn into_invocation(
        self,
        default_model: Option<&str>,
    ) -> Result<(Invocation, bool), ApiError> {
        if self.prompt.trim().is_empty() {
            return Err(ApiError::InvalidField {
                field: "prompt",
                reason: "must not be empty".into(),
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
        let invocation = Invocation {
            prompt: self.prompt,
            model,
            resume,
        };
        Ok((invocation, self.detach_on_disconnect))
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
        AgentRequest {
            prompt: prompt.into(),
            session_id: session_id.map(Into::into),
            model: model.map(Into::into),
            detach_on_disconnect: false,
        }
    }

    #[test]
    fn empty_prompts_bad_sessions_and_bad_models_are_refused() {
        assert!(request("  \n", None, None).into_invocation(None).is_err());
        assert!(
            request("hi", Some("not-a-uuid"), None)
                .into_invocation(None)
                .is_err()
        );
        assert!(
            request("hi", None, Some("--model x"))
                .into_invocation(None)
                .is_err()
        );
    }

    #[test]
    fn the_default_model_applies_when_none_is_asked_for() {
        let got = request("hi", None, None)
            .into_invocation(Some("sonnet"))
            .unwrap()
            .0;
        assert_eq!(got.model.as_deref(), Some("sonnet"));
        let got = request("hi", None, Some("opus"))
            .into_invocation(Some("sonnet"))
            .unwrap()
            .0;
        assert_eq!(got.model.as_deref(), Some("opus"));
    }

    #[test]
    fn session_ids_are_normalized() {
        let got = request("hi", Some("0B6E7A43-5C3E-4A51-9D0F-0B8A3B8F7C11"), None)
            .into_invocation(None)
            .unwrap()
            .0;
        assert_eq!(
            got.resume.as_deref(),
            Some("0b6e7a43-5c3e-4a51-9d0f-0b8a3b8f7c11")
        );
    }
}
