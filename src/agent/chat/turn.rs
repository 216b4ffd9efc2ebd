//! What the compatible APIs (OpenAI's and Anthropic's) ask of the core: one chat turn, run as a
//! chat model would answer it. Its model is an alias, a `claude-*` name or one the operator maps
//! (`PROXY_MODEL_MAP`); its tools are the operator's for these APIs (`PROXY_COMPAT_TOOLS`, none by
//! default); its system prompt is the client's, or the operator's neutral one, never Claude
//! Code's own.
//!
//! These APIs send the whole conversation each time. The proxy remembers, per key and bounded,
//! which CLI session produced each reply it gave, by a hash of the conversation up to and
//! including that reply: a request that carries such a conversation resumes a fork of that
//! session with only its new message, so the API gets the earlier turns from the session, not
//! from a transcript. Any other history is set out in the prompt.
//!
//! The Responses API names the response it continues (`previous_response_id`): its turn
//! resumes a fork of the session that gave that response, with only the new input, and the new
//! response is kept (`chat/responses.rs`) unless the client asked it not to be (`store: false`).

use std::path::Path;
use std::sync::Arc;

use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::agent::admission::policy::Narrowing;
use crate::agent::admission::run_options::check_json_schema;
use crate::agent::chat::client_tools::{
    ClientTool, McpAnswer, McpRefusal, Paused, SERVER, TOOL_PREFIX, ToolCall, ToolResult,
    ToolsGuard,
};
use crate::agent::chat::memory::{ChatSession, Recall};
use crate::agent::chat::responses::ResponseRecord;
use crate::agent::ports::store::ConversationRecord;
use crate::agent::status::AgentKind;
use crate::agent::{Agents, Client, Error, MessageContent, Run, parse_model};
use crate::cli::home::session_file;

/// The model aliases the CLI knows.
pub const ALIASES: [&str; 3] = ["sonnet", "opus", "haiku"];

/// The operator's settings for the compatible APIs.
#[derive(Debug, Clone)]
pub struct CompatSettings {
    /// A client's model name, and the model the CLI is given for it.
    pub model_map: Vec<(String, String)>,
    /// The tools the CLI has (`--tools`), within the operator's policy.
    pub tools: Vec<String>,
    /// The system prompt when a request has none.
    pub system_prompt: String,
}

/// One turn asked through a compatible API.
#[derive(Debug)]
pub struct ChatTurn {
    pub kind: AgentKind,
    /// As the client named it.
    pub model: String,
    /// The request's system text, joined.
    pub system: Option<String>,
    /// The turns before the last, each `(role, text)` with role `user` or `assistant`.
    pub earlier: Vec<(String, String)>,
    /// The last user message.
    pub last: String,
    /// Its images, as Messages API blocks (`{"type":"image","source":{"type":"base64",...}}`).
    pub images: Vec<serde_json::Value>,
    /// The conversation's name, as a client migrating from another wrapper gives it
    /// (`session_id`): its messages continue that conversation's session, whose earlier turns
    /// the request need not carry.
    pub session: Option<String>,
    /// Whether the CLI has the compatible APIs' tools: None, as the operator says.
    pub enable_tools: Option<bool>,
    /// The client's own tools, which the model may call for the client to run.
    pub client_tools: Vec<ClientTool>,
    /// The JSON Schema the reply must follow (structured output), checked as a request's.
    pub json_schema: Option<serde_json::Value>,
    /// A Responses API turn: what it continues, and whether it is kept.
    pub response: Option<ResponseTurn>,
    /// How hard the model thinks (the Responses API's `reasoning.effort`).
    pub effort: Option<crate::agent::admission::run_options::Effort>,
}

/// What a Responses API request adds to its turn.
#[derive(Debug, Clone)]
pub struct ResponseTurn {
    /// The response it continues (`previous_response_id`), one of the key's kept ones.
    pub previous: Option<String>,
    /// false (`store: false`): nothing of it is kept, and its session's file is removed.
    pub store: bool,
}

/// What the compatible API hands back after the reply, so that the conversation, with it, can
/// be resumed.
#[derive(Debug)]
pub struct Continuation {
    owner: Client,
    /// The conversation so far, the last user message included, as hashed.
    hasher: Sha256,
    /// The name it goes on under, if the client named it.
    named: Option<String>,
    /// A Responses API turn's: kept as a response (`Agents::keep_response`), not by its hash.
    response: Option<ResponseTurn>,
    cwd: Arc<Path>,
    /// The run's client tool server, while it may call the client's tools.
    pub tools: Option<ToolsGuard>,
}

impl Continuation {
    /// Whether the turn was a Responses API turn, which `keep_response` remembers.
    pub fn is_response(&self) -> bool {
        self.response.is_some()
    }

    /// Where its run works: its session's file is found by it.
    pub fn cwd(&self) -> Arc<Path> {
        Arc::clone(&self.cwd)
    }

    /// A response that went on with a run which waited for its client's tool results: kept
    /// like the first, by its own id, with the run's session.
    pub fn of_answered_response(owner: Client, cwd: Arc<Path>, response: ResponseTurn) -> Self {
        Self {
            owner,
            hasher: Sha256::new(),
            named: None,
            response: Some(response),
            cwd,
            tools: None,
        }
    }
}

/// A turn, as it enters the hash: its role and text, each length-prefixed, so no two
/// conversations hash alike by moving text across a boundary.
fn hash_turn(hasher: &mut Sha256, role: &str, text: &str) {
    for part in [role, text] {
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part.as_bytes());
    }
}

/// The hash of a conversation's system text and turns.
fn conversation_hasher<'a>(
    system: Option<&str>,
    turns: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Sha256 {
    let mut hasher = Sha256::new();
    hash_turn(&mut hasher, "system", system.unwrap_or_default());
    for (role, text) in turns {
        hash_turn(&mut hasher, role, text);
    }
    hasher
}

/// How the store recalls a response: by its id.
const RESPONSE: &str = "response:";

fn response_recall(id: &str) -> String {
    format!("{RESPONSE}{id}")
}

/// A conversation's name: what a client can type and a log can show.
fn check_session_name(name: &str) -> Result<(), Error> {
    let fits = (1..=128).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_graphic());
    match fits {
        true => Ok(()),
        false => Err(Error::invalid(
            "session_id",
            "must be 1 to 128 printable ASCII characters, without spaces",
        )),
    }
}

/// An earlier conversation set out in the prompt, turn by turn with roles, then the new
/// message.
fn transcript(earlier: &[(String, String)], last: &str) -> String {
    if earlier.is_empty() {
        return last.to_owned();
    }
    let mut prompt = String::from(
        "The conversation so far, turn by turn (the user's turns, and your answers):\n\n",
    );
    for (role, text) in earlier {
        prompt.push_str(&format!("[{role}]\n{text}\n\n"));
    }
    prompt.push_str("[user, now: answer this turn]\n");
    prompt.push_str(last);
    prompt
}

impl CompatSettings {
    /// The model the CLI is given for a client's name; None: no such model here.
    pub fn resolve_model(&self, name: &str) -> Option<String> {
        if let Some((_, model)) = self.model_map.iter().find(|(from, _)| from == name) {
            return Some(model.clone());
        }
        let passes = ALIASES.contains(&name) || name.starts_with("claude-");
        passes.then(|| parse_model(name).ok()).flatten()
    }

    /// The names `/v1/models` lists: the aliases, the operator's default model, the map's.
    pub fn model_names(&self, default_model: Option<&str>) -> Vec<String> {
        let mut names: Vec<String> = ALIASES.map(str::to_owned).into();
        names.extend(default_model.map(str::to_owned));
        names.extend(self.model_map.iter().map(|(from, _)| from.clone()));
        let mut seen = std::collections::HashSet::new();
        names.retain(|name| seen.insert(name.clone()));
        names
    }
}

impl Agents {
    /// Checks a chat turn and makes it a chat model's run: the compatible tools, a whole
    /// system prompt, and partial messages for token streaming. A conversation this key was
    /// answered before resumes a fork of that session.
    pub async fn check_chat(
        &self,
        owner: Client,
        turn: ChatTurn,
    ) -> Result<(Run, Continuation), Error> {
        let settings = &self.core.settings;
        let compat = &settings.compat;
        let model = compat
            .resolve_model(&turn.model)
            .ok_or_else(|| Error::UnknownModel(turn.model.clone()))?;
        let mut hasher = conversation_hasher(
            turn.system.as_deref(),
            turn.earlier.iter().map(|(r, t)| (r.as_str(), t.as_str())),
        );
        let previous = turn.response.as_ref().and_then(|r| r.previous.as_ref());
        let (resumed, fork) = match (&turn.session, previous) {
            (_, Some(id)) => {
                // Another key's response, or one forgotten, is not found either.
                let session = match &self.core.store {
                    None => self.core.responses.session_of(owner, id),
                    Some(_) => self.kept_response(owner, id).await.map(|(_, s)| s),
                }
                .ok_or_else(|| Error::ResponseNotFound(id.clone()))?;
                (Some(session), true)
            }
            (Some(name), None) => {
                check_session_name(name)?;
                let named = Recall::Named(name.clone());
                // Else a CLI session of this key's, by its id (as x-claude-session-id gave it),
                // which the session check below refuses if it is another key's.
                let session = match self.recalled(owner, &named).await {
                    Some(session) => Some(session),
                    None => Uuid::try_parse(name).ok(),
                };
                (session, false)
            }
            // A Responses API turn continues only the response it names.
            (None, None) if turn.earlier.is_empty() || turn.response.is_some() => (None, false),
            (None, None) => {
                let hashed = Recall::Hash(hasher.clone().finalize().into());
                let session = self.recalled(owner, &hashed).await;
                (session, session.is_some())
            }
        };
        hash_turn(&mut hasher, "user", &turn.last);
        // A named conversation's request, and a response's that names the one it continues,
        // carry only what is new: all of it goes on the session. A conversation found by its
        // hash carries its history, which the session has.
        let found_by_hash = turn.session.is_none() && previous.is_none() && resumed.is_some();
        let prompt = match found_by_hash {
            true => turn.last,
            false => transcript(&turn.earlier, &turn.last),
        };
        // The request's field, in its API's name.
        let input = match turn.response {
            Some(_) => "input",
            None => "messages",
        };
        // Images alone are a question: the CLI gets them without a text block (the API refuses
        // an empty one).
        if prompt.trim().is_empty() && turn.images.is_empty() {
            return Err(Error::invalid(input, "the last user message is empty"));
        }
        if prompt.contains('\0') {
            return Err(Error::invalid(
                input,
                "must not contain NUL characters (the CLI would cut the text there)",
            ));
        }
        let message = match turn.images.is_empty() {
            true => None,
            false => {
                let text = (!prompt.trim().is_empty())
                    .then(|| serde_json::json!({"type": "text", "text": prompt}));
                let blocks: Vec<serde_json::Value> = text.into_iter().chain(turn.images).collect();
                Some(MessageContent::check(
                    serde_json::Value::Array(blocks),
                    settings.max_image_bytes,
                )?)
            }
        };
        // The operator's policy with nothing narrowed, and the tools the operator chose for
        // these APIs (checked against that policy when the proxy started).
        let applied = settings.policy.apply(&Narrowing {
            workspace: self.core.workspace_of(owner)?,
            ..Narrowing::default()
        })?;
        let mut tools = applied.flags;
        // The client's tools, from a tool server of the run's own: they run at the client,
        // never here, so they are allowed as the client asked.
        let client_tools = match turn.client_tools.is_empty() {
            true => None,
            false => {
                let url = self.core.own_url.get().ok_or_else(|| {
                    Error::Conflict("client tools: the proxy is not serving yet".into())
                })?;
                let (token, guard) = self.core.client_tools.serve(owner, turn.client_tools);
                tools.allowed_tools.push(format!("{TOOL_PREFIX}*"));
                let config = serde_json::json!({"mcpServers": {SERVER: {
                    "type": "http", "url": format!("{url}/internal/mcp/{token}"),
                }}});
                Some((config.to_string(), guard))
            }
        };
        let (mcp_config, tools_guard) = client_tools.unzip();
        tools.tools = Some(match turn.enable_tools {
            Some(true) if compat.tools.is_empty() => {
                return Err(Error::invalid(
                    "enable_tools",
                    "the operator gives the compatible APIs no tools: it can name them in PROXY_COMPAT_TOOLS (within CLAUDE_TOOLS), or use /agent/stream, whose agents have Claude Code's tools",
                ));
            }
            Some(false) => Vec::new(),
            _ => compat.tools.clone(),
        });
        let cwd = match resumed {
            Some(session) => self.session_home(owner, session).await?,
            None => None,
        }
        .unwrap_or(applied.cwd);
        let run = Run {
            owner,
            kind: turn.kind,
            prompt,
            model: Some(model),
            resume: resumed,
            tools,
            cwd,
            detach_on_disconnect: false,
            interactive: false,
            approvals: false,
            system_prompt: Some(turn.system.unwrap_or_else(|| compat.system_prompt.clone())),
            partial_messages: true,
            fork_session: fork,
            message,
            fallback_model: None,
            effort: turn.effort,
            max_budget_usd: settings.policy.budget(None)?,
            json_schema: turn
                .json_schema
                .as_ref()
                .map(check_json_schema)
                .transpose()?,
            agents: None,
            mcp_config,
            mcp_servers: Arc::default(),
            // The operator's URL for all: a compatible request cannot name one.
            webhook: settings.webhooks.target(None)?,
        };
        let continuation = Continuation {
            owner,
            hasher,
            named: turn.session,
            response: turn.response,
            cwd: Arc::clone(&run.cwd),
            tools: tools_guard,
        };
        Ok((run, continuation))
    }

    /// The session that gave a conversation's last reply: remembered here, or in the store
    /// (after a restart, or by another instance).
    async fn recalled(&self, owner: Client, recall: &Recall) -> Option<Uuid> {
        // The store is every instance's: what another forgot is forgotten here too.
        let Some(store) = &self.core.store else {
            return self.core.chat_memory.session_of(owner, recall);
        };
        store.flush().await;
        match store.conversation_of(owner, recall.stored()).await {
            Ok(found) => found.map(|conversation| conversation.session),
            Err(err) => {
                tracing::warn!(%err, "could not look a conversation up in the store");
                None
            }
        }
    }

    /// Remembers that `session` gave `reply` to the conversation, so that a request carrying
    /// both (or naming the conversation) resumes it, here and, through the store, after a
    /// restart and on every instance. Instances that share a database see it once this
    /// resolves.
    pub async fn remember_reply(&self, continuation: Continuation, reply: &str, session: &str) {
        let Ok(session) = Uuid::try_parse(session) else {
            return;
        };
        let Continuation {
            owner,
            mut hasher,
            named,
            response: _,
            cwd,
            tools: _,
        } = continuation;
        let recall = match named {
            Some(name) => Recall::Named(name),
            None => {
                hash_turn(&mut hasher, "assistant", reply);
                Recall::Hash(hasher.finalize().into())
            }
        };
        if let Some(store) = &self.core.store {
            let now = chrono::Utc::now();
            store.conversation(ConversationRecord {
                owner,
                recall: recall.stored(),
                session,
                created_at: now,
                last_used_at: now,
                replies: 1,
                body: None,
            });
            if self.core.cluster.is_some() {
                store.flush().await;
            }
        }
        let file = self
            .core
            .claude_config_dir(owner)
            .map(|dir| session_file(&dir, &cwd, session));
        self.core.chat_memory.remember(owner, recall, session, file);
    }

    /// Keeps a Responses API turn's answer with the session that gave it, so that a request
    /// naming it continues that session, here and (through the store) after a restart and on
    /// every instance. One that failed is not kept; with `store: false`, nothing is, and the
    /// session's file is removed.
    pub async fn keep_response(
        &self,
        continuation: Continuation,
        record: ResponseRecord,
        session: &str,
        answered: bool,
    ) {
        let Ok(session) = Uuid::try_parse(session) else {
            return;
        };
        let owner = continuation.owner;
        let file = self
            .core
            .claude_config_dir(owner)
            .map(|dir| session_file(&dir, &continuation.cwd, session));
        match (continuation.response, answered) {
            (Some(ResponseTurn { store: true, .. }), true) => {
                if let Some(store) = &self.core.store {
                    let now = chrono::Utc::now();
                    store.conversation(ConversationRecord {
                        owner,
                        recall: response_recall(&record.id),
                        session,
                        created_at: now,
                        last_used_at: now,
                        replies: 1,
                        body: serde_json::to_string(&record).ok(),
                    });
                    if self.core.cluster.is_some() {
                        store.flush().await;
                    }
                }
                self.core.responses.keep(owner, record, session, file)
            }
            // A failure asked to be kept is not kept, but its session stays as any run's does.
            (Some(ResponseTurn { store: true, .. }), false) => {}
            _ => {
                if let Some(file) = file {
                    let _ = std::fs::remove_file(file);
                }
            }
        }
    }

    /// A response of `owner`'s that the store keeps, and its session.
    async fn kept_response(&self, owner: Client, id: &str) -> Option<(ResponseRecord, Uuid)> {
        let store = self.core.store.as_ref()?;
        store.flush().await;
        match store.conversation_of(owner, response_recall(id)).await {
            Ok(found) => found.and_then(|conversation| {
                let record = serde_json::from_str(conversation.body.as_deref()?).ok()?;
                Some((record, conversation.session))
            }),
            Err(err) => {
                tracing::warn!(%err, "could not look a response up in the store");
                None
            }
        }
    }

    /// `owner`'s kept response `id`.
    pub async fn response(&self, owner: Client, id: &str) -> Result<ResponseRecord, Error> {
        // The store is every instance's: what another forgot is forgotten here too.
        match &self.core.store {
            None => self.core.responses.get(owner, id),
            Some(_) => self
                .kept_response(owner, id)
                .await
                .map(|(record, _)| record),
        }
        .ok_or_else(|| Error::ResponseNotFound(id.to_owned()))
    }

    /// Forgets `owner`'s response `id`, here and in the store, and removes its session's file
    /// here.
    pub async fn forget_response(&self, owner: Client, id: &str) -> Result<(), Error> {
        let mut found = self.core.responses.forget(owner, id);
        if !found {
            found = self.kept_response(owner, id).await.is_some();
        }
        if let Some(store) = &self.core.store {
            store.forget_conversations(owner, vec![response_recall(id)]);
            store.flush().await;
        }
        match found {
            true => Ok(()),
            false => Err(Error::ResponseNotFound(id.to_owned())),
        }
    }

    /// The conversations `owner`'s compatible requests made, the most recently used first: the
    /// store's when there is one (every instance's), else this instance's.
    pub async fn chat_sessions(&self, owner: Client) -> Vec<ChatSession> {
        if let Some(store) = &self.core.store {
            // What this instance remembered last may still wait for the store's writer.
            store.flush().await;
            match store.conversations(owner).await {
                Ok(kept) => {
                    // A response has GET and DELETE of its own, under /v1/responses.
                    let conversations = kept.iter().filter(|c| !c.recall.starts_with(RESPONSE));
                    return conversations.map(ChatSession::of_record).collect();
                }
                Err(err) => tracing::warn!(%err, "could not list conversations from the store"),
            }
        }
        self.core.chat_memory.list(owner)
    }

    /// One of them, by its `id`.
    pub async fn chat_session(&self, owner: Client, id: &str) -> Result<ChatSession, Error> {
        self.chat_sessions(owner)
            .await
            .into_iter()
            .find(|conversation| conversation.is(id))
            .ok_or_else(|| Error::ConversationNotFound(id.to_owned()))
    }

    /// Forgets one of them, here and in the store, and removes its session's file here.
    pub async fn forget_chat_session(&self, owner: Client, id: &str) -> Result<(), Error> {
        let mut found = self.core.chat_memory.forget(owner, id);
        if let Some(store) = &self.core.store {
            store.flush().await;
            let recalls: Vec<String> = match store.conversations(owner).await {
                Ok(kept) => kept
                    .into_iter()
                    .filter(|record| !record.recall.starts_with(RESPONSE))
                    .filter(|record| ChatSession::of_record(record).is(id))
                    .map(|record| record.recall)
                    .collect(),
                Err(err) => return Err(Error::SharedStore(err.0)),
            };
            found |= !recalls.is_empty();
            store.forget_conversations(owner, recalls);
            store.flush().await;
        }
        match found {
            true => Ok(()),
            false => Err(Error::ConversationNotFound(id.to_owned())),
        }
    }

    /// A chat run's turn ended on calls of its client's tools: it waits for their results,
    /// at most PROXY_TOOL_RESULT_TIMEOUT_SECS, then its guard stops it.
    pub fn pause_chat(&self, calls: &[ToolCall], paused: Paused) {
        let Some(first) = calls.first() else {
            return;
        };
        self.core.client_tools.pause(calls, paused);
        let registry = Arc::clone(&self.core.client_tools);
        let (first, patience) = (first.id.clone(), self.core.settings.tool_result_timeout);
        let shutdown = self.core.shutdown.clone();
        self.core.tasks.spawn(async move {
            tokio::select! {
                () = tokio::time::sleep(patience) => {}
                () = shutdown.cancelled() => {}
            }
            registry.give_up(&first);
        });
    }

    /// The run that waits for these results of its client's tools, given them: what the
    /// request that brought them reads.
    /// `field` is the request's that brought them.
    pub fn resume_chat(
        &self,
        owner: Client,
        results: &[ToolResult],
        field: &'static str,
    ) -> Result<Paused, Error> {
        self.core.client_tools.resume(owner, results).ok_or_else(|| {
            Error::invalid(
                field,
                "no call of a tool of this key's waits for this result here (a run waits PROXY_TOOL_RESULT_TIMEOUT_SECS, on the instance that ran it)",
            )
        })
    }

    /// Answers a message to a run's client tool server (the CLI's MCP client); a tool call
    /// waits for its result.
    pub async fn answer_tool_server(
        &self,
        token: &str,
        message: &serde_json::Value,
    ) -> Result<McpAnswer, McpRefusal> {
        let patience = self.core.settings.tool_result_timeout;
        self.core
            .client_tools
            .answer(token, message, patience)
            .await
    }

    /// Where the proxy listens, for its own CLIs to reach it (its client tool servers).
    pub fn listening_at(&self, addr: std::net::SocketAddr) {
        let ip = match addr.ip() {
            ip if ip.is_unspecified() && ip.is_ipv4() => std::net::Ipv4Addr::LOCALHOST.into(),
            ip if ip.is_unspecified() => std::net::Ipv6Addr::LOCALHOST.into(),
            ip => ip,
        };
        let _ = self.core.own_url.set(format!(
            "http://{}",
            std::net::SocketAddr::new(ip, addr.port())
        ));
    }

    /// The model names the compatible APIs list.
    pub fn compat_models(&self) -> Vec<String> {
        let settings = &self.core.settings;
        settings
            .compat
            .model_names(settings.default_model.as_deref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> CompatSettings {
        CompatSettings {
            model_map: vec![("gpt-4o".into(), "sonnet".into())],
            tools: Vec::new(),
            system_prompt: "You are a helpful assistant.".into(),
        }
    }

    #[test]
    fn aliases_and_claude_names_pass_the_map_maps_and_the_rest_is_unknown() {
        let compat = settings();
        assert_eq!(compat.resolve_model("sonnet").as_deref(), Some("sonnet"));
        assert_eq!(
            compat.resolve_model("claude-sonnet-4-5").as_deref(),
            Some("claude-sonnet-4-5")
        );
        assert_eq!(compat.resolve_model("gpt-4o").as_deref(), Some("sonnet"));
        assert_eq!(compat.resolve_model("gpt-3.5-turbo"), None);
        assert_eq!(compat.resolve_model("claude-a b"), None);
    }

    #[test]
    fn the_list_has_the_aliases_the_default_and_the_maps_names_once_each() {
        assert_eq!(
            settings().model_names(Some("sonnet")),
            ["sonnet", "opus", "haiku", "gpt-4o"]
        );
    }
}
