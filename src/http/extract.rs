//! What the routes take from a request, with rejections answered as JSON errors.

use axum::extract::{FromRequest, FromRequestParts, MatchedPath, Request};
use axum::http::request::Parts;
use uuid::Uuid;

use super::error::ApiError;
use crate::agent;

/// The `{agent_id}` of a route. An id that is not a UUID, or not even UTF-8, names no agent:
/// 404 in JSON, like an unknown one, where axum's own path extractor would answer 400 in text.
pub struct AgentId {
    pub id: Uuid,
    /// As the client wrote it, for the error message.
    raw: String,
}

impl AgentId {
    /// The core's error, naming the agent as the client wrote it.
    pub fn error(&self, error: agent::Error) -> ApiError {
        match error {
            agent::Error::NotFound(_) => not_found(&self.raw),
            other => other.into(),
        }
    }
}

fn not_found(raw: &str) -> ApiError {
    ApiError::AgentNotFound(raw.chars().take(100).collect())
}

impl<S: Send + Sync> FromRequestParts<S> for AgentId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let raw = path_param(parts, state, "agent_id").await;
        match Uuid::try_parse(&raw) {
            Ok(id) => Ok(AgentId { id, raw }),
            Err(_) => Err(not_found(&raw)),
        }
    }
}

/// In the document: the `{agent_id}` of the route's path, a UUID.
impl utoipa::IntoParams for AgentId {
    fn into_params(
        _: impl Fn() -> Option<utoipa::openapi::path::ParameterIn>,
    ) -> Vec<utoipa::openapi::path::Parameter> {
        use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
        vec![
            utoipa::openapi::path::ParameterBuilder::new()
                .name("agent_id")
                .parameter_in(utoipa::openapi::path::ParameterIn::Path)
                .required(utoipa::openapi::Required::True)
                .schema(Some(
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Uuid))),
                ))
                .build(),
        ]
    }
}

/// The `{request_id}` of a route: the id of one of an agent's permission requests.
pub struct RequestId(pub String);

impl<S: Send + Sync> FromRequestParts<S> for RequestId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Ok(RequestId(path_param(parts, state, "request_id").await))
    }
}

/// A parameter of the route's path, decoded; one that is not UTF-8 once decoded is given as
/// the client sent it, so it can still be named in a 404.
async fn path_param<S: Send + Sync>(parts: &mut Parts, state: &S, name: &str) -> String {
    type Params = axum::extract::Path<std::collections::HashMap<String, String>>;
    if let Ok(axum::extract::Path(mut params)) = Params::from_request_parts(parts, state).await {
        if let Some(value) = params.remove(name) {
            return value;
        }
    }
    let route = parts
        .extensions
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned())
        .unwrap_or_default();
    let placeholder = format!("{{{name}}}");
    let position = route.split('/').position(|segment| segment == placeholder);
    position
        .and_then(|i| parts.uri.path().split('/').nth(i))
        .unwrap_or_default()
        .to_owned()
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
