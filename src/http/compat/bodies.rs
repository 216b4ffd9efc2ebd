//! The compatible APIs' bodies, as the handlers read and write them and as the OpenAPI document
//! describes them: one type for both. A request is read into its type after the refusals
//! (fields the proxy cannot honour) have been checked on the raw JSON; what a request may
//! carry besides is accepted and ignored, as each type's doc says.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::literal::literal;

literal!(ChatCompletionObject, "chat.completion");
literal!(ChatCompletionChunkObject, "chat.completion.chunk");
literal!(ListObject, "list");
literal!(ModelObject, "model");
literal!(MessageType, "message");
literal!(ErrorType, "error");
literal!(AssistantRole, "assistant");

/// An OpenAI chat completion request. Refused with 400, naming the field, since they would change
/// what the model does and the proxy cannot honour them: `tools`, `functions`, `tool_choice`
/// other than `none`, `n` > 1, `logprobs`, audio, `stop`, `logit_bias`, a `response_format` type
/// other than text, json_object and json_schema, `prediction`, `web_search_options`,
/// `reasoning_effort`. Accepted and ignored, as
/// tuning: `temperature`, `top_p`, `seed`, the penalties, `user`, `max_tokens` and
/// `max_completion_tokens` (not enforced), `metadata`, `store`, `service_tier`.
#[derive(Deserialize, ToSchema)]
pub struct OpenAiChatRequest {
    /// sonnet, opus, haiku, a claude-* name, or a name of PROXY_MODEL_MAP.
    #[serde(default)]
    #[schema(required = true)]
    pub model: String,
    /// The conversation; the last message is the user's.
    #[serde(default)]
    #[schema(required = true)]
    pub messages: Vec<OpenAiMessage>,
    #[serde(default)]
    pub stream: Option<bool>,
    #[serde(default)]
    #[schema(inline)]
    pub stream_options: Option<OpenAiStreamOptions>,
    #[serde(default)]
    #[schema(inline)]
    pub response_format: Option<OpenAiResponseFormat>,
    /// Functions the model may call, for the client to run: the reply then ends with
    /// `tool_calls` (`finish_reason: "tool_calls"`), and the request that brings their results
    /// (`tool` messages) goes on with the same run. `tool_choice` is `auto` or `none`.
    #[serde(default)]
    pub tools: Option<Vec<OpenAiTool>>,
    /// Continues the conversation of this name for the key: the request carries only its new
    /// messages, and the CLI resumes the session that gave the conversation's last reply. A CLI
    /// session id of the key's (as `x-claude-session-id` gave it) continues that session. The
    /// header `X-Claude-Session-Id` says the same.
    #[serde(default)]
    pub session_id: Option<String>,
    /// true: the tools the operator gives the compatible APIs (PROXY_COMPAT_TOOLS; 400 when it
    /// gives none); false: none; absent: PROXY_COMPAT_TOOLS's.
    #[serde(default)]
    pub enable_tools: Option<bool>,
}

/// `text`; `json_object` (any JSON object); or `json_schema`: the message's content is JSON
/// text that follows `json_schema.schema` (an object's schema), through the CLI's
/// `--json-schema`. `json_schema.name` and `strict` are accepted: the CLI checks every answer
/// against the schema.
#[derive(Deserialize, ToSchema)]
pub struct OpenAiResponseFormat {
    #[serde(rename = "type", default)]
    #[schema(rename = "type")]
    pub kind: String,
    #[serde(default)]
    #[schema(inline)]
    pub json_schema: Option<OpenAiJsonSchema>,
}

#[derive(Deserialize, ToSchema)]
pub struct OpenAiJsonSchema {
    #[serde(default)]
    #[schema(value_type = Object)]
    pub schema: Option<serde_json::Value>,
}

#[derive(Deserialize, ToSchema)]
pub struct OpenAiStreamOptions {
    /// A last chunk with the usage, and no choices.
    #[serde(default)]
    pub include_usage: Option<bool>,
}

/// A function the client offers the model.
#[derive(Deserialize, ToSchema)]
pub struct OpenAiTool {
    /// `function`.
    #[serde(rename = "type", default)]
    #[schema(rename = "type")]
    pub kind: String,
    #[schema(inline)]
    pub function: OpenAiFunction,
}

#[derive(Deserialize, ToSchema)]
pub struct OpenAiFunction {
    /// 1 to 64 of a-z A-Z 0-9 _ -.
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    /// A JSON Schema of its arguments (an object's).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub parameters: Option<Value>,
}

/// A call of a function by the model, as a reply gives it and the next request repeats it.
#[derive(Deserialize, Serialize, ToSchema)]
pub struct OpenAiToolCall {
    /// The call's id, which the `tool` message with its result names.
    pub id: String,
    /// `function`.
    #[serde(rename = "type", default = "function")]
    #[schema(rename = "type")]
    pub kind: String,
    #[schema(inline)]
    pub function: OpenAiFunctionCall,
}

fn function() -> String {
    "function".to_owned()
}

#[derive(Deserialize, Serialize, ToSchema)]
pub struct OpenAiFunctionCall {
    pub name: String,
    /// Its arguments, as JSON text.
    pub arguments: String,
}

/// One message: system, developer, user, assistant, or tool (a function's result).
#[derive(Deserialize, ToSchema)]
pub struct OpenAiMessage {
    #[serde(default)]
    #[schema(required = true)]
    pub role: String,
    /// Null only in an assistant's message that called tools.
    #[serde(default)]
    pub content: Option<OpenAiContent>,
    /// An assistant's calls of the client's functions.
    #[serde(default)]
    pub tool_calls: Option<Vec<OpenAiToolCall>>,
    /// A tool message's: the call whose result it is.
    #[serde(default)]
    pub tool_call_id: Option<String>,
}

/// Text, or parts of text and images.
#[derive(Deserialize, ToSchema)]
#[serde(untagged)]
pub enum OpenAiContent {
    Text(String),
    Parts(Vec<OpenAiContentPart>),
}

/// A `text` part, or an `image_url` part whose URL is a `data:` URL (the proxy fetches
/// nothing).
#[derive(Deserialize, ToSchema)]
pub struct OpenAiContentPart {
    #[serde(rename = "type", default)]
    #[schema(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default)]
    #[schema(inline)]
    pub image_url: Option<OpenAiImageUrl>,
}

#[derive(Deserialize, ToSchema)]
pub struct OpenAiImageUrl {
    /// data:image/png;base64,...
    #[serde(default)]
    pub url: String,
}

/// The run's cost and session, beside the API's own fields.
#[derive(Serialize, ToSchema)]
pub struct ProxyExtension {
    pub total_cost_usd: Option<f64>,
    pub session_id: Option<String>,
}

/// A chat completion, not streamed.
#[derive(Serialize, ToSchema)]
pub struct OpenAiChatCompletion {
    /// chatcmpl- and the agent's id.
    pub id: String,
    #[schema(inline)]
    pub object: ChatCompletionObject,
    pub created: i64,
    pub model: String,
    pub choices: Vec<OpenAiChoice>,
    pub usage: OpenAiUsage,
    pub x_claude_proxy: ProxyExtension,
}

#[derive(Serialize, ToSchema)]
pub struct OpenAiChoice {
    pub index: u32,
    #[schema(inline)]
    pub message: OpenAiReplyMessage,
    /// Always null: the proxy gives none.
    #[schema(value_type = Option<Object>)]
    pub logprobs: Option<()>,
    /// stop, length when the model ran out of tokens, or tool_calls.
    pub finish_reason: &'static str,
}

#[derive(Serialize, ToSchema)]
pub struct OpenAiReplyMessage {
    #[schema(inline)]
    pub role: AssistantRole,
    /// The reply's text; null when it only calls functions.
    pub content: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<OpenAiToolCall>>,
    /// Always null.
    pub refusal: Option<String>,
}

/// The usage, from the CLI's result: prompt tokens count input, cache-read and
/// cache-creation tokens.
#[derive(Serialize, ToSchema)]
pub struct OpenAiUsage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub total_tokens: u64,
    #[schema(inline)]
    pub prompt_tokens_details: OpenAiPromptDetails,
}

#[derive(Serialize, ToSchema)]
pub struct OpenAiPromptDetails {
    pub cached_tokens: u64,
}

/// One chunk of a streamed completion: `data: {chunk}`, and `data: [DONE]` last. The first
/// chunk's delta has the role; the last with choices has the finish reason; with
/// `include_usage`, a chunk with no choices has the usage.
#[derive(Serialize, ToSchema)]
pub struct OpenAiChatCompletionChunk {
    pub id: String,
    #[schema(inline)]
    pub object: ChatCompletionChunkObject,
    pub created: i64,
    pub model: String,
    pub choices: Vec<OpenAiChunkChoice>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<OpenAiUsage>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub x_claude_proxy: Option<ProxyExtension>,
}

#[derive(Serialize, ToSchema)]
pub struct OpenAiChunkChoice {
    pub index: u32,
    #[schema(inline)]
    pub delta: OpenAiDelta,
    /// Always null.
    #[schema(value_type = Option<Object>)]
    pub logprobs: Option<()>,
    pub finish_reason: Option<&'static str>,
}

#[derive(Serialize, ToSchema)]
pub struct OpenAiDelta {
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(inline)]
    pub role: Option<AssistantRole>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// The calls of the client's functions, each whole in one chunk.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<OpenAiToolCallChunk>>,
}

#[derive(Serialize, ToSchema)]
pub struct OpenAiToolCallChunk {
    pub index: u32,
    #[serde(flatten)]
    pub call: OpenAiToolCall,
}

/// OpenAI's error body.
#[derive(Serialize, ToSchema)]
pub struct OpenAiError {
    #[schema(inline)]
    pub error: OpenAiErrorFields,
}

#[derive(Serialize, ToSchema)]
pub struct OpenAiErrorFields {
    pub message: String,
    /// invalid_request_error, authentication_error, permission_error, rate_limit_error,
    /// api_error.
    #[serde(rename = "type")]
    #[schema(rename = "type")]
    pub kind: &'static str,
    /// The request field at fault.
    pub param: Option<String>,
    /// invalid_api_key, model_not_found, or null.
    pub code: Option<&'static str>,
}

/// The models: OpenAI's list shape, or Anthropic's when the request carries
/// `anthropic-version`.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum ModelList {
    OpenAi(OpenAiModelList),
    Anthropic(AnthropicModelList),
}

#[derive(Serialize, ToSchema)]
pub struct OpenAiModelList {
    #[schema(inline)]
    pub object: ListObject,
    pub data: Vec<OpenAiModel>,
}

#[derive(Serialize, ToSchema)]
pub struct OpenAiModel {
    pub id: String,
    #[schema(inline)]
    pub object: ModelObject,
    pub created: i64,
    pub owned_by: &'static str,
}

#[derive(Serialize, ToSchema)]
pub struct AnthropicModelList {
    pub data: Vec<AnthropicModel>,
    pub has_more: bool,
    pub first_id: Option<String>,
    pub last_id: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct AnthropicModel {
    #[serde(rename = "type")]
    #[schema(rename = "type", inline)]
    pub kind: ModelObject,
    pub id: String,
    pub display_name: String,
    pub created_at: &'static str,
}

/// An Anthropic Messages API request. Refused with 400, naming the field: `tools`,
/// `tool_choice` other than none, content other than text and base64 images,
/// `stop_sequences`, `thinking`, `mcp_servers`, `container`. Accepted and ignored, as tuning:
/// `max_tokens` (not enforced), `temperature`, `top_p`, `top_k`, `metadata`, `service_tier`.
#[derive(Deserialize, ToSchema)]
pub struct AnthropicRequest {
    #[serde(default)]
    #[schema(required = true)]
    pub model: String,
    #[serde(default)]
    #[schema(required = true)]
    pub messages: Vec<AnthropicMessage>,
    /// The whole system prompt: a string, or text blocks.
    #[serde(default)]
    pub system: Option<AnthropicContent>,
    #[serde(default)]
    pub stream: Option<bool>,
    /// The beta API's name for `output_config.format`.
    #[serde(default)]
    #[schema(inline)]
    pub output_format: Option<AnthropicOutputFormat>,
    #[serde(default)]
    #[schema(inline)]
    pub output_config: Option<AnthropicOutputConfig>,
    /// Tools the model may use, for the client to run: the reply then ends with `tool_use`
    /// blocks (`stop_reason: "tool_use"`), and the request that brings their `tool_result`
    /// blocks goes on with the same run. `tool_choice` is `auto` or `none`.
    #[serde(default)]
    pub tools: Option<Vec<AnthropicTool>>,
    /// Continues the conversation of this name for the key: the request carries only its new
    /// messages, and the CLI resumes the session that gave the conversation's last reply. A CLI
    /// session id of the key's (as `x-claude-session-id` gave it) continues that session. The
    /// header `X-Claude-Session-Id` says the same.
    #[serde(default)]
    pub session_id: Option<String>,
    /// true: the tools the operator gives the compatible APIs (PROXY_COMPAT_TOOLS; 400 when it
    /// gives none); false: none; absent: PROXY_COMPAT_TOOLS's.
    #[serde(default)]
    pub enable_tools: Option<bool>,
}

/// A tool the client offers the model.
#[derive(Deserialize, ToSchema)]
pub struct AnthropicTool {
    /// 1 to 64 of a-z A-Z 0-9 _ -.
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    /// A JSON Schema of its input (an object's).
    #[serde(default)]
    #[schema(value_type = Object)]
    pub input_schema: Option<Value>,
    /// Absent (a custom tool): the API's own tools (`bash_...`, `web_search_...`) are not
    /// taken.
    #[serde(rename = "type", default)]
    #[schema(rename = "type")]
    pub kind: Option<String>,
}

#[derive(Deserialize, ToSchema)]
pub struct AnthropicOutputConfig {
    #[serde(default)]
    #[schema(inline)]
    pub format: Option<AnthropicOutputFormat>,
}

/// Structured output: the message's text is JSON that follows `schema` (an object's schema),
/// through the CLI's `--json-schema`.
#[derive(Deserialize, ToSchema)]
pub struct AnthropicOutputFormat {
    /// `json_schema`.
    #[serde(rename = "type", default)]
    #[schema(rename = "type")]
    pub kind: String,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub schema: Option<serde_json::Value>,
}

/// One message: user or assistant.
#[derive(Deserialize, ToSchema)]
pub struct AnthropicMessage {
    #[serde(default)]
    #[schema(required = true)]
    pub role: String,
    #[serde(default)]
    #[schema(required = true, value_type = AnthropicContent)]
    pub content: Option<AnthropicContent>,
}

/// A string, or `text` and base64 `image` blocks.
#[derive(Deserialize, ToSchema)]
#[serde(untagged)]
pub enum AnthropicContent {
    Text(String),
    #[schema(value_type = Vec<crate::agent::Block>)]
    Blocks(Vec<serde_json::Value>),
}

/// A message, not streamed. Streamed, the answer is the Messages API's own events
/// (`message_start`, `content_block_start`, `content_block_delta`, `content_block_stop`,
/// `message_delta`, `message_stop`, or `error`), as the CLI received them.
#[derive(Serialize, ToSchema)]
pub struct AnthropicResponse {
    /// msg_ and the agent's id.
    pub id: String,
    #[serde(rename = "type")]
    #[schema(rename = "type", inline)]
    pub kind: MessageType,
    #[schema(inline)]
    pub role: AssistantRole,
    pub model: String,
    pub content: Vec<AnthropicBlock>,
    /// end_turn, max_tokens, stop_sequence, or tool_use.
    pub stop_reason: String,
    pub stop_sequence: Option<String>,
    #[schema(inline)]
    pub usage: AnthropicUsage,
    pub x_claude_proxy: ProxyExtension,
}

/// A block of a reply: its text, or a call of one of the client's tools.
#[derive(Serialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AnthropicBlock {
    Text {
        text: String,
    },
    ToolUse {
        id: String,
        name: String,
        #[schema(value_type = Object)]
        input: Value,
    },
}

#[derive(Serialize, ToSchema)]
pub struct AnthropicUsage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_creation_input_tokens: u64,
    pub cache_read_input_tokens: u64,
}

/// Anthropic's error body; in a stream, the data of `event: error`.
#[derive(Serialize, ToSchema)]
pub struct AnthropicError {
    #[serde(rename = "type")]
    #[schema(rename = "type", inline)]
    pub kind: ErrorType,
    #[schema(inline)]
    pub error: AnthropicErrorFields,
}

#[derive(Serialize, ToSchema)]
pub struct AnthropicErrorFields {
    /// invalid_request_error, authentication_error, permission_error, not_found_error,
    /// request_too_large, rate_limit_error, api_error.
    #[serde(rename = "type")]
    #[schema(rename = "type")]
    pub kind: &'static str,
    pub message: String,
}

/// An error in either API's format.
#[derive(Serialize)]
#[serde(untagged)]
pub enum CompatErrorBody {
    OpenAi(OpenAiError),
    Anthropic(AnthropicError),
}

/// The conversations a key's compatible requests made, newest first.
#[derive(Serialize, ToSchema)]
pub struct SessionList {
    #[schema(inline)]
    pub object: ListObject,
    pub data: Vec<crate::agent::ChatSession>,
}

literal!(SessionDeletedObject, "session.deleted");

/// A conversation forgotten: the proxy no longer continues it, and its session's file is
/// removed.
#[derive(Serialize, ToSchema)]
pub struct SessionDeleted {
    pub id: String,
    #[schema(inline)]
    pub object: SessionDeletedObject,
    pub deleted: bool,
}
