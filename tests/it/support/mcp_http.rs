//! A small MCP server over HTTP (the Streamable HTTP transport, answering each JSON-RPC request
//! with a JSON body), for tests/it/mcp.rs: one tool, `search`, whose answer says whether the
//! request carried the header the operator's catalog gave it, without saying the header.

use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};
use tokio::net::TcpListener;

pub struct McpHttpServer {
    pub url: String,
}

impl McpHttpServer {
    /// Serves on a free loopback port; `authorization` is the header value it expects.
    pub async fn start(authorization: &'static str) -> Self {
        let expected: Arc<str> = Arc::from(authorization);
        let app = Router::new().route(
            "/mcp",
            post(move |headers: HeaderMap, body: String| {
                let expected = Arc::clone(&expected);
                async move { answer(&headers, &body, &expected) }
            })
            // No stream of server-sent messages: the client does without one.
            .get(|| async { StatusCode::METHOD_NOT_ALLOWED }),
        );
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self {
            url: format!("http://{addr}/mcp"),
        }
    }
}

fn answer(headers: &HeaderMap, body: &str, expected: &str) -> Response {
    let Ok(request) = serde_json::from_str::<Value>(body) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let id = request["id"].clone();
    if id.is_null() {
        // A notification.
        return StatusCode::ACCEPTED.into_response();
    }
    let result = match request["method"].as_str().unwrap_or_default() {
        "initialize" => json!({
            "protocolVersion": request["params"]["protocolVersion"],
            "capabilities": {"tools": {}},
            "serverInfo": {"name": "docs", "version": "1.0.0"},
        }),
        "tools/list" => json!({"tools": [{
            "name": "search",
            "description": "Searches the docs.",
            "inputSchema": {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]},
        }]}),
        "tools/call" => {
            let authorized = headers
                .get("authorization")
                .is_some_and(|value| value == expected);
            let query = request["params"]["arguments"]["query"]
                .as_str()
                .unwrap_or_default();
            let text = format!("docs on {query}: see chapter 3 (authorized: {authorized})");
            json!({"content": [{"type": "text", "text": text}]})
        }
        "ping" => json!({}),
        method => {
            let error = json!({"code": -32601, "message": format!("no method {method}")});
            return axum::Json(json!({"jsonrpc": "2.0", "id": id, "error": error})).into_response();
        }
    };
    axum::Json(json!({"jsonrpc": "2.0", "id": id, "result": result})).into_response()
}
