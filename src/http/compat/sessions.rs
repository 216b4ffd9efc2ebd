//! `/v1/sessions`: the conversations a key's compatible requests made, which a later request
//! continues (by its history, or by the `session_id` it names), listed, shown and forgotten.
//! Errors in OpenAI's format, or Anthropic's when the request carries `anthropic-version`.

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::{Extension, Json};

use super::bodies::{ListObject, OpenAiError, SessionDeleted, SessionDeletedObject, SessionList};
use super::{Api, CompatError};
use crate::agent::{ChatSession, Client};
use crate::http::{ApiError, ApiState};

fn refused(headers: &HeaderMap, error: crate::agent::Error) -> CompatError {
    CompatError::from_api(Api::of("/v1/sessions", headers), ApiError::from(error))
}

/// The conversations this key's compatible requests made, newest first (at most 256 per key).
#[utoipa::path(get, path = "/v1/sessions", tag = "compatible",
    responses(
        (status = 200, description = "The conversations.", body = SessionList),
        (status = 401, description = "No key, or a wrong one.", body = OpenAiError),
    ))]
pub async fn list(
    State(state): State<ApiState>,
    Extension(client): Extension<Client>,
) -> Json<SessionList> {
    Json(SessionList {
        object: ListObject,
        data: state.agents.chat_sessions(client).await,
    })
}

/// One conversation, by its `id`: the name a request gave it, or its CLI session's id.
#[utoipa::path(get, path = "/v1/sessions/{id}", tag = "compatible",
    params(("id" = String, Path, description = "The conversation's name, or its CLI session's id.")),
    responses(
        (status = 200, description = "The conversation.", body = ChatSession),
        (status = 401, description = "No key, or a wrong one.", body = OpenAiError),
        (status = 404, description = "No conversation of this key's has that id.", body = OpenAiError),
    ))]
pub async fn show(
    State(state): State<ApiState>,
    Extension(client): Extension<Client>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<ChatSession>, CompatError> {
    state
        .agents
        .chat_session(client, &id)
        .await
        .map(Json)
        .map_err(|err| refused(&headers, err))
}

/// Forgets a conversation: a later request naming it starts a new one, and its session's file
/// is removed.
#[utoipa::path(delete, path = "/v1/sessions/{id}", tag = "compatible",
    params(("id" = String, Path, description = "The conversation's name, or its CLI session's id.")),
    responses(
        (status = 200, description = "Forgotten.", body = SessionDeleted),
        (status = 401, description = "No key, or a wrong one.", body = OpenAiError),
        (status = 404, description = "No conversation of this key's has that id.", body = OpenAiError),
    ))]
pub async fn forget(
    State(state): State<ApiState>,
    Extension(client): Extension<Client>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<SessionDeleted>, CompatError> {
    state
        .agents
        .forget_chat_session(client, &id)
        .await
        .map_err(|err| refused(&headers, err))?;
    Ok(Json(SessionDeleted {
        id,
        object: SessionDeletedObject,
        deleted: true,
    }))
}
