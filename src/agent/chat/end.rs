//! How a chat turn (a compatible API's request) ended, as the core judges it from the run's
//! result line, its errors and its `complete`: answered, or failed and why. The compatible
//! routes put the judgement in their API's words.

use serde_json::Value;

use crate::agent::chat::responses::TokenUsage;

/// How a chat agent's run ended.
#[derive(Debug, Default)]
pub struct TurnEnd {
    /// The CLI's result line.
    pub result: Option<Value>,
    /// The proxy's `error` events.
    pub errors: Vec<Value>,
    /// `complete`'s status.
    pub status: Option<String>,
    /// The turn ended on calls of the client's tools: the run waits for their results.
    pub tool_calls: Vec<crate::agent::chat::client_tools::ToolCall>,
}

/// Why a chat turn failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TurnFailure {
    /// The API refused the subscription's request for its rate limit (the result's
    /// `api_error_status` 429): worth retrying later.
    RateLimited,
    /// Anything else: the CLI, the API or the proxy failed; `failure_message` says how.
    Failed,
}

impl TurnEnd {
    /// Why the turn failed; None when it answered.
    pub fn failure(&self) -> Option<TurnFailure> {
        if !self.failed() {
            return None;
        }
        let rate_limited = self
            .result
            .as_ref()
            .is_some_and(|r| r["api_error_status"] == 429);
        Some(match rate_limited {
            true => TurnFailure::RateLimited,
            false => TurnFailure::Failed,
        })
    }

    pub fn failed(&self) -> bool {
        if !self.tool_calls.is_empty() {
            return false;
        }
        self.status.as_deref() != Some("completed")
            || self.result.as_ref().is_none_or(|r| r["is_error"] != false)
    }

    pub fn failure_message(&self) -> String {
        let said = self
            .errors
            .iter()
            .filter_map(|e| e["message"].as_str())
            .next_back()
            .map(str::to_owned)
            .or_else(|| {
                self.result
                    .as_ref()
                    .and_then(|r| r["result"].as_str())
                    .map(str::to_owned)
            });
        said.unwrap_or_else(|| "the Claude Code CLI failed without saying why".to_owned())
    }

    /// The result's text: the whole reply, when no piece of it streamed.
    pub fn result_text(&self) -> &str {
        self.result
            .as_ref()
            .and_then(|r| r["result"].as_str())
            .unwrap_or_default()
    }

    /// The tokens the result counted; none when there is no result.
    pub fn usage(&self) -> TokenUsage {
        let usage = self.result.as_ref().map(|r| &r["usage"]);
        let tokens = |name: &str| usage.and_then(|u| u[name].as_u64()).unwrap_or(0);
        TokenUsage {
            input_tokens: tokens("input_tokens"),
            output_tokens: tokens("output_tokens"),
            cache_read_input_tokens: tokens("cache_read_input_tokens"),
            cache_creation_input_tokens: tokens("cache_creation_input_tokens"),
        }
    }

    pub fn session_id(&self) -> Option<&str> {
        self.result.as_ref().and_then(|r| r["session_id"].as_str())
    }

    pub fn total_cost_usd(&self) -> Option<f64> {
        self.result
            .as_ref()
            .and_then(|r| r["total_cost_usd"].as_f64())
    }
}
