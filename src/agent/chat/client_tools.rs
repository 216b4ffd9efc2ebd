//! Tools a compatible API's client brings (OpenAI functions, Anthropic tools): the CLI gets
//! them from an MCP server of the proxy's own, one per run (`mcp__client__<name>`), and when the
//! model calls one the turn ends with the call, for the client to run. The CLI waits on that
//! call, alive, until the client's next request brings the result (or
//! PROXY_TOOL_RESULT_TIMEOUT_SECS passes, which stops it); that request goes on reading the
//! same run, in the same session.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::oneshot;
use uuid::Uuid;

use crate::agent::admission::keys::Client;

/// The name of the proxy's MCP server in a run's configuration: its tools reach the model as
/// `mcp__client__<name>`.
pub const SERVER: &str = "client";
/// What the model calls a client tool: the CLI's prefix for the server's tools, then its name.
pub const TOOL_PREFIX: &str = "mcp__client__";

/// A tool of the client's, as the model is told of it.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientTool {
    pub name: String,
    pub description: String,
    /// A JSON Schema of its input (an object's).
    pub input_schema: Value,
}

/// A call of a client tool by the model, for the client to run.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolCall {
    /// The model's id of the call (`toolu_...`): the client answers it by this id.
    pub id: String,
    /// The client's name of the tool.
    pub name: String,
    pub input: Value,
}

/// The result a client gives a call.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolResult {
    pub call_id: String,
    pub text: String,
    pub is_error: bool,
}

/// One run's tools and the calls of them that wait for their results.
#[derive(Debug)]
struct ToolServer {
    owner: Client,
    tools: Vec<ClientTool>,
    /// Calls the CLI made, by the model's call id, answered when the result comes.
    waiting: Mutex<HashMap<String, oneshot::Sender<ToolResult>>>,
    /// Results that came before the CLI asked (the client can be quicker than the CLI).
    early: Mutex<HashMap<String, ToolResult>>,
}

/// A run that waits for its client's tool results: what its next request reads, and the
/// guard that stops it when none comes.
#[derive(Debug)]
pub struct Paused {
    pub owner: Client,
    pub agent_id: Uuid,
    /// The last event the client was given.
    pub cursor: u64,
    /// What stops the run when dropped (its client's stop guard): held while the run waits,
    /// then handed to the request that brings the results.
    pub stop: RunGuard,
    pub tools: ToolsGuard,
    /// Where the run works, when a response of the Responses API is to be kept of what it
    /// says next.
    pub cwd: Option<Arc<std::path::Path>>,
}

/// A guard that stops a run when dropped, whatever its type.
pub type RunGuard = Box<dyn std::fmt::Debug + Send + Sync>;

/// Every run's tool server, by its token, and the runs that wait for results, by call id.
#[derive(Debug, Default)]
pub struct ClientTools {
    servers: Mutex<HashMap<String, Arc<ToolServer>>>,
    paused: Mutex<HashMap<String, Arc<Mutex<Option<Paused>>>>>,
}

/// A run's hold on its tool server: dropped, the server is gone.
#[derive(Debug)]
pub struct ToolsGuard {
    registry: Arc<ClientTools>,
    token: String,
}

impl Drop for ToolsGuard {
    fn drop(&mut self) {
        crate::sync::lock(&self.registry.servers).remove(&self.token);
    }
}

/// What a request may send as a run's MCP server's answer.
#[derive(Debug)]
pub enum McpAnswer {
    /// A JSON-RPC response.
    Reply(Value),
    /// A notification: nothing to answer.
    Accepted,
}

/// Why no run's tool server can answer.
#[derive(Debug, thiserror::Error)]
pub enum McpRefusal {
    #[error("no such tool server")]
    UnknownServer,
}

impl ClientTools {
    /// A tool server for a run of `owner`'s: its token, which is in the run's MCP configuration
    /// alone, and its guard.
    pub fn serve(self: &Arc<Self>, owner: Client, tools: Vec<ClientTool>) -> (String, ToolsGuard) {
        let token = format!("{}{}", Uuid::new_v4().simple(), Uuid::new_v4().simple());
        let server = Arc::new(ToolServer {
            owner,
            tools,
            waiting: Mutex::default(),
            early: Mutex::default(),
        });
        crate::sync::lock(&self.servers).insert(token.clone(), server);
        let guard = ToolsGuard {
            registry: Arc::clone(self),
            token: token.clone(),
        };
        (token, guard)
    }

    /// Answers a JSON-RPC message to the tool server of `token`. A tool call waits for its
    /// result, at most `patience`.
    pub async fn answer(
        &self,
        token: &str,
        message: &Value,
        patience: Duration,
    ) -> Result<McpAnswer, McpRefusal> {
        let server = {
            let servers = crate::sync::lock(&self.servers);
            let found = servers.iter().find(|(known, _)| {
                subtle::ConstantTimeEq::ct_eq(known.as_bytes(), token.as_bytes()).into()
            });
            found.map(|(_, server)| Arc::clone(server))
        }
        .ok_or(McpRefusal::UnknownServer)?;
        let id = message["id"].clone();
        if id.is_null() {
            return Ok(McpAnswer::Accepted);
        }
        let reply =
            |result: Value| McpAnswer::Reply(json!({"jsonrpc": "2.0", "id": id, "result": result}));
        Ok(match message["method"].as_str().unwrap_or_default() {
            "initialize" => reply(json!({
                "protocolVersion": message["params"]["protocolVersion"],
                "capabilities": {"tools": {}},
                "serverInfo": {"name": "claude-proxy client tools", "version": env!("CARGO_PKG_VERSION")},
            })),
            "tools/list" => reply(json!({"tools": server.tools.iter().map(|tool| json!({
                "name": tool.name,
                "description": tool.description,
                "inputSchema": tool.input_schema,
            })).collect::<Vec<_>>()})),
            "tools/call" => {
                let call_id = message["params"]["_meta"]["claudecode/toolUseId"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                let result = server.result_of(call_id, patience).await;
                reply(json!({
                    "content": [{"type": "text", "text": result.text}],
                    "isError": result.is_error,
                }))
            }
            "ping" => reply(json!({})),
            method => McpAnswer::Reply(json!({"jsonrpc": "2.0", "id": id, "error": {
                "code": -32601, "message": format!("no method {method}"),
            }})),
        })
    }

    /// A run ended its turn on calls of its client's tools: it waits for their results.
    pub fn pause(&self, calls: &[ToolCall], paused: Paused) {
        let paused = Arc::new(Mutex::new(Some(paused)));
        let mut by_call = crate::sync::lock(&self.paused);
        for call in calls {
            by_call.insert(call.id.clone(), Arc::clone(&paused));
        }
    }

    /// Gives a paused run of `owner`'s the results of its calls, and hands it to the request
    /// that brought them; None when no run of `owner`'s waits on the first of them.
    pub fn resume(&self, owner: Client, results: &[ToolResult]) -> Option<Paused> {
        let first = results.first()?;
        let paused = {
            let mut by_call = crate::sync::lock(&self.paused);
            let paused = by_call.get(&first.call_id).map(Arc::clone)?;
            let mine = crate::sync::lock(&paused)
                .as_ref()
                .is_some_and(|p| p.owner == owner);
            if !mine {
                return None;
            }
            by_call.retain(|_, other| !Arc::ptr_eq(other, &paused));
            paused
        };
        let paused = crate::sync::lock(&paused).take()?;
        let server = crate::sync::lock(&self.servers)
            .get(&paused.tools.token)
            .map(Arc::clone)?;
        if server.owner != owner {
            return None;
        }
        for result in results {
            server.give(result.clone());
        }
        Some(paused)
    }

    /// Forgets a paused run whose client did not come back: its guard stops it.
    pub fn give_up(&self, call_id: &str) {
        let paused = crate::sync::lock(&self.paused).remove(call_id);
        if let Some(paused) = paused {
            crate::sync::lock(&self.paused).retain(|_, other| !Arc::ptr_eq(other, &paused));
            drop(crate::sync::lock(&paused).take());
        }
    }
}

impl ToolServer {
    async fn result_of(&self, call_id: String, patience: Duration) -> ToolResult {
        let waiting = {
            if let Some(result) = crate::sync::lock(&self.early).remove(&call_id) {
                return result;
            }
            let (give, take) = oneshot::channel();
            crate::sync::lock(&self.waiting).insert(call_id.clone(), give);
            take
        };
        let no_result = |why: &str| ToolResult {
            call_id: call_id.clone(),
            text: why.to_owned(),
            is_error: true,
        };
        match tokio::time::timeout(patience, waiting).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => no_result("the client's tool result will not come"),
            Err(_) => no_result("the client did not send this tool's result in time"),
        }
    }

    fn give(&self, result: ToolResult) {
        let waiting = crate::sync::lock(&self.waiting).remove(&result.call_id);
        match waiting {
            Some(give) => {
                let _ = give.send(result);
            }
            None => {
                crate::sync::lock(&self.early).insert(result.call_id.clone(), result);
            }
        }
    }
}
