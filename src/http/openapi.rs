//! The OpenAPI document (`GET /openapi.json`) and its reference page (`GET /docs`). The routes
//! and bodies come from the handlers' annotations, as the router registers them; the events of
//! a stream, which are SSE rather than JSON bodies, are described here.

use std::sync::OnceLock;

use axum::extract::Path;
use axum::http::header;
use axum::response::{Html, IntoResponse, Response};
use serde::Serialize;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, PartialSchema, ToSchema};

use super::error::ApiError;
use crate::agent::{
    AgentEvent, CompleteEvent, ErrorEvent, GapEvent, PermissionCancelledEvent,
    PermissionDecisionEvent, PermissionRequestEvent, ProxyRawEvent, QueuedEvent,
};
use crate::cli::stdout::{
    AssistantEvent, ResultEvent, StreamEventLine, SystemEvent, SystemInitEvent, UserEvent,
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

const STREAM_EVENT: &str =
    "One event of an agent's stream: the `data` of a Server-Sent Event, whose `id` is the
event's number (from 1) and whose `event` field names the proxy's own events (`queued`,
`agent`, `error`, `gap`, `permission_*`, `complete`; the CLI's lines have none, so
`message`). `queued` (PROXY_QUEUE), before the agent exists, has no `id`. The
CLI's lines pass as it wrote them; each has more fields than these, and a later CLI may
write lines of other types.";

/// One event of an agent's stream (its schema says what it may be: [`STREAM_EVENT`]).
pub struct StreamEvent;

/// The shapes a stream's event may have, each a schema of its own, with the `type` each has.
macro_rules! stream_event_shapes {
    ($($shape:ty = $kind:literal),* $(,)?) => {
        fn stream_event_shapes() -> Vec<utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>> {
            vec![
                $(utoipa::openapi::Ref::from_schema_name(<$shape as ToSchema>::name()).into(),)*
                utoipa::openapi::Ref::from_schema_name("OtherCliLine").into(),
            ]
        }

        fn stream_event_schemas(
            schemas: &mut Vec<(String, utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>)>,
        ) {
            $(
                schemas.push((<$shape as ToSchema>::name().into_owned(), <$shape as PartialSchema>::schema()));
                <$shape as ToSchema>::schemas(schemas);
            )*
            schemas.push(("OtherCliLine".into(), other_cli_line([$($kind),*])));
        }
    };
}

stream_event_shapes!(
    QueuedEvent = "queued",
    AgentEvent = "agent",
    SystemInitEvent = "system",
    SystemEvent = "system",
    AssistantEvent = "assistant",
    UserEvent = "user",
    ResultEvent = "result",
    StreamEventLine = "stream_event",
    ErrorEvent = "error",
    GapEvent = "gap",
    ProxyRawEvent = "proxy_raw",
    PermissionRequestEvent = "permission_request",
    PermissionDecisionEvent = "permission_decision",
    PermissionCancelledEvent = "permission_cancelled",
    CompleteEvent = "complete",
);

/// A line of the CLI of a type none of the shapes has (such as `rate_limit_event`), passed as
/// it wrote it.
fn other_cli_line<const N: usize>(
    known: [&'static str; N],
) -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    let mut known = known.to_vec();
    known.dedup();
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .description(Some(
            "A line of the CLI of another type (such as `rate_limit_event`), passed as it wrote it.",
        ))
        .required("type")
        .property(
            "type",
            ObjectBuilder::new()
                .schema_type(Type::String)
                .description(Some("Any but the types of the other shapes."))
                .pattern(Some(format!("^(?!({})$)", known.join("|")))),
        )
        .into()
}

/// Any of the shapes, not one of them: the CLI's lines have more fields than documented, so an
/// `init` line is a `SystemEvent` too.
impl PartialSchema for StreamEvent {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        stream_event_shapes()
            .into_iter()
            .fold(
                utoipa::openapi::schema::AnyOfBuilder::new(),
                |any, shape| any.item(shape),
            )
            .description(Some(STREAM_EVENT))
            .into()
    }
}

impl ToSchema for StreamEvent {
    fn schemas(
        schemas: &mut Vec<(
            String,
            utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
        )>,
    ) {
        stream_event_schemas(schemas);
    }
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
