//! The compatible APIs' bodies, for the OpenAPI document only: the handlers read and write them
//! as JSON, since each API's own shape (and what it refuses) is the contract.
#![allow(dead_code)]

use utoipa::ToSchema;

use crate::literal::literal;

literal!(ChatCompletionObject, "chat.completion");
literal!(ChatCompletionChunkObject, "chat.completion.chunk");
literal!(MessageType, "message");
literal!(ErrorType, "error");

/// An OpenAI chat completion request. Refused with 400: `tools`, `functions`, `tool_choice`
/// other than `none`, `n` > 1, `logprobs`, audio. Accepted and ignored: `temperature`, `top_p`,
/// `stop`, `seed`, the penalties, `user`, `max_tokens`, and other optional fields.
#[derive(ToSchema)]
pub struct OpenAiChatRequest {
    /// sonnet, opus, haiku, a claude-* name, or a name of PROXY_MODEL_MAP.
    model: String,
    /// The conversation; the last message is the user's.
    messages: Vec<OpenAiMessage>,
    stream: Option<bool>,
    #[schema(inline)]
    stream_options: Option<OpenAiStreamOptions>,
    temperature: Option<f64>,
    max_tokens: Option<u32>,
    #[schema(inline)]
    response_format: Option<OpenAiResponseFormat>,
}

/// `text`; `json_object` (any JSON object); or `json_schema`: the message's content is JSON
/// text that follows `json_schema.schema` (an object's schema), through the CLI's
/// `--json-schema`.
#[derive(ToSchema)]
pub struct OpenAiResponseFormat {
    #[schema(rename = "type")]
    kind: String,
    #[schema(inline)]
    json_schema: Option<OpenAiJsonSchema>,
}

#[derive(ToSchema)]
pub struct OpenAiJsonSchema {
    name: String,
    #[schema(value_type = Object)]
    schema: serde_json::Value,
    /// Accepted: the CLI checks every answer against the schema.
    strict: Option<bool>,
}

#[derive(ToSchema)]
pub struct OpenAiStreamOptions {
    /// A last chunk with the usage, and no choices.
    include_usage: Option<bool>,
}

/// One message: system, developer, user or assistant.
#[derive(ToSchema)]
pub struct OpenAiMessage {
    role: String,
    content: OpenAiContent,
}

/// Text, or parts of text and images.
#[derive(ToSchema)]
#[serde(untagged)]
pub enum OpenAiContent {
    Text(String),
    Parts(Vec<OpenAiContentPart>),
}

/// A `text` part, or an `image_url` part whose URL is a `data:` URL (the proxy fetches
/// nothing).
#[derive(ToSchema)]
pub struct OpenAiContentPart {
    #[schema(rename = "type")]
    kind: String,
    text: Option<String>,
    #[schema(inline)]
    image_url: Option<OpenAiImageUrl>,
}

#[derive(ToSchema)]
pub struct OpenAiImageUrl {
    /// data:image/png;base64,...
    url: String,
}

/// The run's cost and session, beside the API's own fields.
#[derive(ToSchema)]
pub struct ProxyExtension {
    total_cost_usd: Option<f64>,
    session_id: Option<String>,
}

/// A chat completion, not streamed.
#[derive(ToSchema)]
pub struct OpenAiChatCompletion {
    /// chatcmpl- and the agent's id.
    id: String,
    #[schema(inline)]
    object: ChatCompletionObject,
    created: i64,
    model: String,
    choices: Vec<OpenAiChoice>,
    usage: OpenAiUsage,
    x_claude_proxy: ProxyExtension,
}

#[derive(ToSchema)]
pub struct OpenAiChoice {
    index: u32,
    #[schema(inline)]
    message: OpenAiReplyMessage,
    /// stop, or length when the model ran out of tokens.
    finish_reason: String,
}

#[derive(ToSchema)]
pub struct OpenAiReplyMessage {
    role: String,
    content: String,
}

/// The usage, from the CLI's result: prompt tokens count input, cache-read and
/// cache-creation tokens.
#[derive(ToSchema)]
pub struct OpenAiUsage {
    prompt_tokens: u64,
    completion_tokens: u64,
    total_tokens: u64,
    #[schema(inline)]
    prompt_tokens_details: OpenAiPromptDetails,
}

#[derive(ToSchema)]
pub struct OpenAiPromptDetails {
    cached_tokens: u64,
}

/// One chunk of a streamed completion: `data: {chunk}`, and `data: [DONE]` last. The first
/// chunk's delta has the role; the last with choices has the finish reason; with
/// `include_usage`, a chunk with no choices has the usage.
#[derive(ToSchema)]
pub struct OpenAiChatCompletionChunk {
    id: String,
    #[schema(inline)]
    object: ChatCompletionChunkObject,
    created: i64,
    model: String,
    choices: Vec<OpenAiChunkChoice>,
    usage: Option<OpenAiUsage>,
    x_claude_proxy: Option<ProxyExtension>,
}

#[derive(ToSchema)]
pub struct OpenAiChunkChoice {
    index: u32,
    #[schema(inline)]
    delta: OpenAiDelta,
    finish_reason: Option<String>,
}

#[derive(ToSchema)]
pub struct OpenAiDelta {
    role: Option<String>,
    content: Option<String>,
}

/// OpenAI's error body.
#[derive(ToSchema)]
pub struct OpenAiError {
    #[schema(inline)]
    error: OpenAiErrorFields,
}

#[derive(ToSchema)]
pub struct OpenAiErrorFields {
    message: String,
    /// invalid_request_error, authentication_error, permission_error, rate_limit_error,
    /// api_error.
    #[schema(rename = "type")]
    kind: String,
    /// The request field at fault.
    param: Option<String>,
    /// invalid_api_key, model_not_found, or null.
    code: Option<String>,
}

/// The models, in OpenAI's list shape (Anthropic's: `data` of `{type, id, display_name,
/// created_at}`, with `has_more`, `first_id`, `last_id`).
#[derive(ToSchema)]
pub struct ModelList {
    object: Option<String>,
    data: Vec<ModelEntry>,
}

#[derive(ToSchema)]
pub struct ModelEntry {
    id: String,
}

/// An Anthropic Messages API request. Refused with 400: `tools`, `tool_choice` other than
/// none, content other than text and base64 images. Accepted and ignored: `max_tokens`,
/// `temperature`, `top_p`, `top_k`, `stop_sequences`, `metadata`.
#[derive(ToSchema)]
pub struct AnthropicRequest {
    model: String,
    messages: Vec<AnthropicMessage>,
    /// The whole system prompt: a string, or text blocks.
    system: Option<AnthropicContent>,
    max_tokens: Option<u32>,
    stream: Option<bool>,
    /// The beta API's name for `output_config.format`.
    #[schema(inline)]
    output_format: Option<AnthropicOutputFormat>,
    #[schema(inline)]
    output_config: Option<AnthropicOutputConfig>,
}

#[derive(ToSchema)]
pub struct AnthropicOutputConfig {
    #[schema(inline)]
    format: Option<AnthropicOutputFormat>,
}

/// Structured output: the message's text is JSON that follows `schema` (an object's schema),
/// through the CLI's `--json-schema`.
#[derive(ToSchema)]
pub struct AnthropicOutputFormat {
    /// `json_schema`.
    #[schema(rename = "type")]
    kind: String,
    #[schema(value_type = Object)]
    schema: serde_json::Value,
}

/// One message: user or assistant.
#[derive(ToSchema)]
pub struct AnthropicMessage {
    role: String,
    content: AnthropicContent,
}

/// A string, or `text` and base64 `image` blocks.
#[derive(ToSchema)]
#[serde(untagged)]
pub enum AnthropicContent {
    Text(String),
    Blocks(Vec<crate::agent::Block>),
}

/// A message, not streamed. Streamed, the answer is the Messages API's own events
/// (`message_start`, `content_block_start`, `content_block_delta`, `content_block_stop`,
/// `message_delta`, `message_stop`, or `error`), as the CLI received them.
#[derive(ToSchema)]
pub struct AnthropicResponse {
    /// msg_ and the agent's id.
    id: String,
    #[schema(rename = "type", inline)]
    kind: MessageType,
    role: String,
    model: String,
    content: Vec<AnthropicTextBlock>,
    /// end_turn, max_tokens, stop_sequence.
    stop_reason: String,
    stop_sequence: Option<String>,
    #[schema(inline)]
    usage: AnthropicUsage,
    x_claude_proxy: ProxyExtension,
}

#[derive(ToSchema)]
pub struct AnthropicTextBlock {
    #[schema(rename = "type")]
    kind: String,
    text: String,
}

#[derive(ToSchema)]
pub struct AnthropicUsage {
    input_tokens: u64,
    output_tokens: u64,
    cache_creation_input_tokens: u64,
    cache_read_input_tokens: u64,
}

/// Anthropic's error body; in a stream, the data of `event: error`.
#[derive(ToSchema)]
pub struct AnthropicError {
    #[schema(rename = "type", inline)]
    kind: ErrorType,
    #[schema(inline)]
    error: AnthropicErrorFields,
}

#[derive(ToSchema)]
pub struct AnthropicErrorFields {
    /// invalid_request_error, authentication_error, permission_error, not_found_error,
    /// request_too_large, rate_limit_error, api_error.
    #[schema(rename = "type")]
    kind: String,
    message: String,
}
