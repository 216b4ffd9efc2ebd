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

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::agent::admission::request::AgentRequest;
use crate::agent::status::AgentKind;
use crate::agent::{Agents, Client, Error, Run, parse_model};
use crate::cli::home::session_file;

/// How many conversations are remembered per key; past it, the oldest is forgotten and its
/// session's file removed.
pub const REMEMBERED_PER_KEY: usize = 256;

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
    /// The JSON Schema the reply must follow (structured output), checked as a request's.
    pub json_schema: Option<serde_json::Value>,
}

/// What the compatible API hands back after the reply, so that the conversation, with it, can
/// be resumed.
#[derive(Debug)]
pub struct Continuation {
    owner: Client,
    /// The conversation so far, the last user message included, as hashed.
    hasher: Sha256,
    cwd: Arc<Path>,
}

/// A remembered conversation: the session that produced its last reply.
#[derive(Debug)]
struct Remembered {
    key: [u8; 32],
    session: Uuid,
    /// Its file, removed when it is forgotten.
    file: Option<PathBuf>,
}

/// The conversations remembered, per key, oldest first.
#[derive(Debug, Default)]
pub struct ChatMemory {
    by_owner: Mutex<HashMap<Client, VecDeque<Remembered>>>,
}

impl ChatMemory {
    fn session_of(&self, owner: Client, key: &[u8; 32]) -> Option<Uuid> {
        crate::sync::lock(&self.by_owner)
            .get(&owner)?
            .iter()
            .find(|r| &r.key == key)
            .map(|r| r.session)
    }

    fn remember(&self, owner: Client, remembered: Remembered) {
        let forgotten = {
            let mut by_owner = crate::sync::lock(&self.by_owner);
            let entries = by_owner.entry(owner).or_default();
            entries.push_back(remembered);
            (entries.len() > REMEMBERED_PER_KEY)
                .then(|| entries.pop_front())
                .flatten()
        };
        if let Some(file) = forgotten.and_then(|r| r.file) {
            let _ = std::fs::remove_file(file);
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
    /// Checks a chat turn as any request is checked, then makes it a chat model's: the
    /// compatible tools, a whole system prompt, and partial messages for token streaming. A
    /// conversation this key was answered before resumes a fork of that session.
    pub async fn check_chat(
        &self,
        owner: Client,
        turn: ChatTurn,
    ) -> Result<(Run, Continuation), Error> {
        let compat = &self.core.settings.compat;
        let model = compat
            .resolve_model(&turn.model)
            .ok_or_else(|| Error::UnknownModel(turn.model.clone()))?;
        let mut hasher = conversation_hasher(
            turn.system.as_deref(),
            turn.earlier.iter().map(|(r, t)| (r.as_str(), t.as_str())),
        );
        let resumed = match turn.earlier.is_empty() {
            true => None,
            false => self
                .core
                .chat_memory
                .session_of(owner, &hasher.clone().finalize().into()),
        };
        hash_turn(&mut hasher, "user", &turn.last);
        let prompt = match resumed {
            Some(_) => turn.last,
            None => transcript(&turn.earlier, &turn.last),
        };
        // Images alone are a question: the CLI gets them without a text block (the API refuses
        // an empty one), and the check, which wants a prompt, gets a stand-in the CLI never sees.
        let images_only = prompt.trim().is_empty() && !turn.images.is_empty();
        let request = AgentRequest {
            prompt: match images_only {
                true => "(images)".to_owned(),
                false => prompt,
            },
            session_id: resumed.map(|s| s.to_string()),
            model: Some(model),
            detach_on_disconnect: false,
            tools: None,
            allowed_tools: None,
            disallowed_tools: Vec::new(),
            permission_mode: None,
            max_turns: None,
            append_system_prompt: None,
            cwd: None,
            interactive: false,
            approvals: false,
            json_schema: turn.json_schema,
            ..AgentRequest::default()
        };
        let mut run = self.check(owner, turn.kind, request).await?;
        // Within the operator's policy: the app checked the compatible tools against it.
        run.tools.tools = Some(compat.tools.clone());
        run.system_prompt = Some(turn.system.unwrap_or_else(|| compat.system_prompt.clone()));
        run.partial_messages = true;
        run.fork_session = resumed.is_some();
        if !turn.images.is_empty() {
            let text =
                (!images_only).then(|| serde_json::json!({"type": "text", "text": run.prompt}));
            let blocks: Vec<serde_json::Value> = text.into_iter().chain(turn.images).collect();
            run.message = Some(crate::agent::MessageContent::check(
                serde_json::Value::Array(blocks),
                self.core.settings.max_image_bytes,
            )?);
        }
        let continuation = Continuation {
            owner,
            hasher,
            cwd: Arc::clone(&run.cwd),
        };
        Ok((run, continuation))
    }

    /// Remembers that `session` gave `reply` to the conversation, so that a request carrying
    /// both resumes it.
    pub fn remember_reply(&self, continuation: Continuation, reply: &str, session: &str) {
        let Ok(session) = Uuid::try_parse(session) else {
            return;
        };
        let Continuation {
            owner,
            mut hasher,
            cwd,
        } = continuation;
        hash_turn(&mut hasher, "assistant", reply);
        let file = self
            .core
            .claude_config_dir(owner)
            .map(|dir| session_file(&dir, &cwd, session));
        self.core.chat_memory.remember(
            owner,
            Remembered {
                key: hasher.finalize().into(),
                session,
                file,
            },
        );
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
    fn a_forgotten_conversation_takes_its_session_file_with_it() {
        let dir = tempfile::tempdir().unwrap();
        let memory = ChatMemory::default();
        let owner = Client::Anonymous;
        let keys: Vec<[u8; 32]> = (0..=REMEMBERED_PER_KEY)
            .map(|n| Sha256::digest(n.to_le_bytes()).into())
            .collect();
        let files: Vec<PathBuf> = (0..keys.len())
            .map(|n| dir.path().join(format!("{n}.jsonl")))
            .collect();
        for (key, file) in keys.iter().zip(&files) {
            std::fs::write(file, "{}").unwrap();
            memory.remember(
                owner,
                Remembered {
                    key: *key,
                    session: Uuid::new_v4(),
                    file: Some(file.clone()),
                },
            );
        }
        // One past the bound: the oldest is forgotten, and its file removed.
        assert_eq!(memory.session_of(owner, &keys[0]), None);
        assert!(!files[0].exists());
        assert!(memory.session_of(owner, &keys[1]).is_some());
        assert!(files[1].exists() && files[REMEMBERED_PER_KEY].exists());
    }

    #[test]
    fn the_list_has_the_aliases_the_default_and_the_maps_names_once_each() {
        assert_eq!(
            settings().model_names(Some("sonnet")),
            ["sonnet", "opus", "haiku", "gpt-4o"]
        );
    }
}
