//! The OpenAPI document (`GET /openapi.json`) and its reference page (`GET /docs`). The routes
//! and bodies come from the handlers' annotations, as the router registers them; the events of
//! a stream, which are SSE rather than JSON bodies, are described here.

use std::sync::OnceLock;

use axum::extract::Path;
use axum::http::header;
use axum::response::{Html, IntoResponse, Response};
use serde::Serialize;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

use super::error::ApiError;
use crate::agent::{
    AgentEvent, CompleteEvent, ErrorEvent, GapEvent, PermissionCancelledEvent,
    PermissionDecisionEvent, PermissionRequestEvent, ProxyRawEvent,
};

/// The document's parts that no handler carries.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "claude-proxy",
        description = "Runs the Claude Code CLI for HTTP clients: a prompt in, the CLI's stream-json output out as Server-Sent Events. When keys are configured, every route but /health, /openapi.json and /docs needs one.",
    ),
    modifiers(&Security),
    security(("bearer" = []), ("api_key" = [])),
    components(schemas(StreamEvent, ErrorBody)),
    tags(
        (name = "agents", description = "Start, stream, follow and stop agents."),
        (name = "interactive", description = "Talk to a running interactive agent."),
        (name = "service", description = "Health, metrics and this document."),
        (name = "compatible", description = "The OpenAI- and Anthropic-compatible APIs: each request is an agent of kind `openai` or `anthropic`."),
    )
)]
pub struct ApiDoc;

/// The two ways a client key may come: what the OpenAI SDK sends, and what the Anthropic SDK
/// sends.
struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("x-api-key"))),
        );
    }
}

/// The body of every 4xx and 5xx answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// What was wrong, naming the field when a field was.
    pub detail: String,
    /// On a 500: the request's id, as in the logs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

/// A `type` (or `subtype`) with one value: the schema of a string that is always `$value`.
macro_rules! literal {
    ($name:ident, $value:literal) => {
        pub struct $name;

        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::schema::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .enum_values(Some([$value]))
                    .into()
            }
        }

        impl ToSchema for $name {}
    };
}
pub(crate) use literal;

literal!(SystemType, "system");
literal!(InitSubtype, "init");
literal!(AssistantType, "assistant");
literal!(UserType, "user");
literal!(ResultType, "result");
literal!(StreamEventType, "stream_event");

/// One event of an agent's stream: the `data` of a Server-Sent Event, whose `id` is the
/// event's number (from 1) and whose `event` field names the proxy's own events (`agent`,
/// `error`, `gap`, `permission_*`, `complete`; the CLI's lines have none, so `message`). The
/// CLI's lines pass as it wrote them; each has more fields than these, and a later CLI may
/// write lines of other types.
#[derive(ToSchema)]
#[allow(dead_code)]
#[serde(untagged)]
pub enum StreamEvent {
    Agent(AgentEvent),
    SystemInit(SystemInitEvent),
    System(SystemEvent),
    Assistant(AssistantEvent),
    User(UserEvent),
    Result(ResultEvent),
    PartialMessage(StreamEventLine),
    Error(ErrorEvent),
    Gap(GapEvent),
    ProxyRaw(ProxyRawEvent),
    PermissionRequest(PermissionRequestEvent),
    PermissionDecision(PermissionDecisionEvent),
    PermissionCancelled(PermissionCancelledEvent),
    Complete(CompleteEvent),
}

/// The CLI's first line: its session, model, tools and working directory.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct SystemInitEvent {
    #[schema(rename = "type", inline)]
    kind: SystemType,
    #[schema(inline)]
    subtype: InitSubtype,
    session_id: String,
    model: String,
    cwd: String,
    tools: Vec<String>,
    #[schema(rename = "permissionMode")]
    permission_mode: String,
    claude_code_version: Option<String>,
}

/// Another `system` line of the CLI (such as `compact_boundary` or `status`).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct SystemEvent {
    #[schema(rename = "type", inline)]
    kind: SystemType,
    subtype: String,
    session_id: Option<String>,
}

/// A message of the model, whole, as the Messages API gives it (`content` blocks of `text`,
/// `thinking`, `tool_use`, ...).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct AssistantEvent {
    #[schema(rename = "type", inline)]
    kind: AssistantType,
    #[schema(inline)]
    message: ApiMessage,
    session_id: String,
    /// Set when a subagent's tool use made this message.
    parent_tool_use_id: Option<String>,
}

/// A user turn the CLI sent: the prompt, or tool results (`tool_result` blocks).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct UserEvent {
    #[schema(rename = "type", inline)]
    kind: UserType,
    #[schema(inline)]
    message: ApiMessage,
    session_id: String,
    parent_tool_use_id: Option<String>,
}

/// A message in the Messages API's form.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ApiMessage {
    /// assistant or user.
    role: String,
    content: ApiContent,
    id: Option<String>,
    model: Option<String>,
    stop_reason: Option<String>,
    #[schema(value_type = Option<Object>)]
    usage: Option<serde_json::Value>,
}

/// A message's content: a string, or blocks.
#[derive(ToSchema)]
#[allow(dead_code)]
#[serde(untagged)]
pub enum ApiContent {
    Text(String),
    Blocks(Vec<ContentBlock>),
}

/// A block of a message, as the Messages API has them: `text`, `thinking`, `tool_use`,
/// `tool_result`, `image`, ..., each with the fields of its type.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ContentBlock {
    #[schema(rename = "type")]
    kind: String,
    /// Of a `text` block.
    text: Option<String>,
    /// Of a `thinking` block.
    thinking: Option<String>,
    /// Of a `tool_use` block: its id, the tool and its input.
    id: Option<String>,
    name: Option<String>,
    #[schema(value_type = Option<Object>)]
    input: Option<serde_json::Value>,
    /// Of a `tool_result` block: the `tool_use` it answers, and what the tool gave.
    tool_use_id: Option<String>,
    /// A string, or blocks.
    content: Option<serde_json::Value>,
    is_error: Option<bool>,
}

/// The end of a turn: what the agent answered (`result`), whether it failed, its session and
/// its cost. `subtype` is `success`, or names the error (`error_max_turns`,
/// `error_during_execution`, ...).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ResultEvent {
    #[schema(rename = "type", inline)]
    kind: ResultType,
    subtype: String,
    is_error: bool,
    /// The answer's text (absent on some errors).
    result: Option<String>,
    session_id: String,
    total_cost_usd: Option<f64>,
    num_turns: Option<u64>,
    duration_ms: Option<u64>,
    duration_api_ms: Option<u64>,
    #[schema(value_type = Option<Object>)]
    usage: Option<serde_json::Value>,
    /// The status the API answered when it failed the turn (429: rate limited).
    api_error_status: Option<u16>,
}

/// A piece of a message as the API streams it (with `--include-partial-messages`): `event`
/// is one Messages API streaming event (`message_start`, `content_block_delta`, ...).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct StreamEventLine {
    #[schema(rename = "type", inline)]
    kind: StreamEventType,
    #[schema(value_type = Object)]
    event: serde_json::Value,
    session_id: String,
    parent_tool_use_id: Option<String>,
}

/// This document, as JSON.
#[utoipa::path(get, path = "/openapi.json", tag = "service", security(()),
    responses((status = 200, description = "The OpenAPI 3.1 document.", content_type = "application/json", body = Object)))]
pub async fn document() -> impl IntoResponse {
    static DOCUMENT: OnceLock<String> = OnceLock::new();
    let json = DOCUMENT.get_or_init(|| {
        super::openapi_document()
            .to_pretty_json()
            .expect("the document serializes")
    });
    ([(header::CONTENT_TYPE, "application/json")], json.as_str())
}

/// The reference page: Swagger UI, from files inside the binary.
#[utoipa::path(get, path = "/docs", tag = "service", security(()),
    responses((status = 200, description = "The API reference page.", content_type = "text/html", body = String)))]
pub async fn docs_page() -> Html<&'static str> {
    Html(include_str!("docs/index.html"))
}

/// Swagger UI's script and style, inside the binary (no internet needed).
#[utoipa::path(get, path = "/docs/{file}", tag = "service", security(()),
    params(("file" = String, Path, description = "swagger-ui-bundle.js or swagger-ui.css")),
    responses(
        (status = 200, description = "The file.", body = String),
        (status = 404, description = "No such file.", body = ErrorBody),
    ))]
pub async fn docs_asset(Path(file): Path<String>) -> Response {
    let (body, kind): (&'static [u8], &str) = match file.as_str() {
        "swagger-ui-bundle.js" => (
            include_bytes!("docs/swagger-ui-bundle.js"),
            "text/javascript; charset=utf-8",
        ),
        "swagger-ui.css" => (
            include_bytes!("docs/swagger-ui.css"),
            "text/css; charset=utf-8",
        ),
        _ => return ApiError::RouteNotFound(format!("/docs/{file}")).into_response(),
    };
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        body,
    )
        .into_response()
}
