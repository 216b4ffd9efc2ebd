//! What the compatible APIs (OpenAI's and Anthropic's) ask of the core: one chat turn, run as a
//! chat model would answer it. Its model is an alias, a `claude-*` name or one the operator maps
//! (`PROXY_MODEL_MAP`); its tools are the operator's for these APIs (`PROXY_COMPAT_TOOLS`, none by
//! default); its system prompt is the client's, or the operator's neutral one, never Claude
//! Code's own.

use super::request::AgentRequest;
use super::status::AgentKind;
use super::{Agents, Client, Error, Run, parse_model};

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
    /// What goes to the CLI on stdin.
    pub prompt: String,
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
    /// compatible tools, a whole system prompt, and partial messages for token streaming.
    pub async fn check_chat(&self, owner: Client, turn: ChatTurn) -> Result<Run, Error> {
        let compat = &self.core.settings.compat;
        let model = compat
            .resolve_model(&turn.model)
            .ok_or_else(|| Error::UnknownModel(turn.model.clone()))?;
        let request = AgentRequest {
            prompt: turn.prompt,
            session_id: None,
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
        };
        let mut run = self.check(owner, turn.kind, request).await?;
        // Within the operator's policy: the app checked the compatible tools against it.
        run.policy_args.retain(|arg| !arg.starts_with("--tools="));
        run.policy_args
            .push(format!("--tools={}", compat.tools.join(",")));
        run.system_prompt = Some(turn.system.unwrap_or_else(|| compat.system_prompt.clone()));
        run.partial_messages = true;
        Ok(run)
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
