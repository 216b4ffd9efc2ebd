//! What a client may ask for, and the one type a checked request becomes: a [`Run`], which
//! goes unchanged from the check to the spawn.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::agent::admission::keys::Client;
use crate::agent::admission::policy::{Narrowing, PermissionMode, ToolPolicy};
use crate::agent::admission::run_options::{
    Effort, Subagent, check_json_schema, check_subagents, parse_model,
};
use crate::agent::admission::webhook::WebhookPolicy;
use crate::agent::status::AgentKind;
use crate::agent::{Agents, Error};
use crate::cli::{Input, Invocation, ToolFlags};

/// The body of /agent/start and /agent/stream. Unknown fields are refused, so a typo such as
/// `sesion_id` never silently starts a new session.
// Only a JSON object: see the `Deserialize` below.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, remote = "Self")]
pub struct AgentRequest {
    pub prompt: String,
    #[serde(default)]
    pub session_id: Option<String>,
    #[serde(default)]
    pub model: Option<String>,
    /// For /agent/stream: keep the agent running when the client goes away, so it can come
    /// back through /agent/{id}/events.
    #[serde(default)]
    pub detach_on_disconnect: bool,
    /// Narrowing of the operator's tool policy (never widening: that is 403).
    #[serde(default)]
    pub tools: Option<Vec<String>>,
    #[serde(default)]
    pub allowed_tools: Option<Vec<String>>,
    #[serde(default)]
    pub disallowed_tools: Vec<String>,
    #[serde(default)]
    pub permission_mode: Option<PermissionMode>,
    #[serde(default)]
    pub max_turns: Option<u32>,
    #[serde(default)]
    pub append_system_prompt: Option<String>,
    /// A directory below CLAUDE_WORKDIR to run in.
    #[serde(default)]
    pub cwd: Option<String>,
    /// The agent takes messages while it runs, and waits for more after each turn.
    #[serde(default)]
    pub interactive: bool,
    /// Tool approvals go to the client (interactive agents, when the operator allows it).
    #[serde(default)]
    pub approvals: bool,
    /// With `session_id`: the run goes on from that session as a new one (a new session_id),
    /// and the old session stays as it was.
    #[serde(default)]
    pub fork_session: bool,
    /// A JSON Schema (of an object) the answer must follow: the result line's
    /// `structured_output` holds the answer, parsed.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub json_schema: Option<serde_json::Value>,
    /// The most the run may cost, in US dollars: it ends with an `error_max_budget_usd` result
    /// once it has spent that. At most PROXY_MAX_BUDGET_USD, which applies when absent.
    #[serde(default)]
    #[schema(exclusive_minimum = 0)]
    pub max_budget_usd: Option<f64>,
    /// How hard the model thinks (`--effort`).
    #[serde(default)]
    pub effort: Option<Effort>,
    /// The model to use when `model` is overloaded.
    #[serde(default)]
    pub fallback_model: Option<String>,
    /// Custom subagents by name, which the run's agent may hand work to. A subagent's tools
    /// must be tools the run itself has (403 otherwise).
    #[serde(default)]
    pub agents: Option<BTreeMap<String, Subagent>>,
    /// MCP servers of the operator's (PROXY_MCP_SERVERS) that the run may use, by name: 403 for
    /// a name this key may not use. Their tools are allowed as any tool is, by the policy
    /// (`mcp__<server>__*` in CLAUDE_ALLOWED_TOOLS, narrowed by `allowed_tools`).
    #[serde(default)]
    pub mcp_servers: Vec<String>,
    /// A URL the proxy POSTs this agent's events to (`agent.completed`, `agent.failed`,
    /// `permission.requested`), signed: one of the operator's PROXY_WEBHOOK_URLS (an exact
    /// URL, or below a prefix that ends with `/`), else 403. Absent: PROXY_WEBHOOK_URL, if set.
    #[serde(default)]
    pub webhook: Option<String>,
}

/// A derived struct deserializer also takes a JSON array of the fields in order, so that
/// `["a prompt"]` would start an agent: only an object is a request.
impl<'de> Deserialize<'de> for AgentRequest {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjectOnly;
        impl<'de> serde::de::Visitor<'de> for ObjectOnly {
            type Value = AgentRequest;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str(r#"a JSON object such as {"prompt": "..."}"#)
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<AgentRequest, A::Error> {
                AgentRequest::deserialize(serde::de::value::MapAccessDeserializer::new(map))
            }
        }
        deserializer.deserialize_map(ObjectOnly)
    }
}

/// One run of the CLI, checked against the operator's settings: everything the spawn needs,
/// and nothing a client wrote that was not checked.
#[derive(Debug, Clone)]
pub struct Run {
    pub owner: Client,
    pub kind: AgentKind,
    /// Goes to the CLI on stdin, never as an argument.
    pub prompt: String,
    pub model: Option<String>,
    pub resume: Option<Uuid>,
    /// The tool policy's flags.
    pub tools: ToolFlags,
    /// Where the CLI runs: inside CLAUDE_WORKDIR, or where the resumed session lives.
    pub cwd: Arc<Path>,
    /// A streamed agent goes on when its client goes away.
    pub detach_on_disconnect: bool,
    /// Its prompt is the first message of a conversation (see `conversation.rs`).
    pub interactive: bool,
    /// The CLI asks the client before a tool that needs permission runs.
    pub approvals: bool,
    /// The CLI's whole system prompt, in place of Claude Code's (the compatible APIs). It goes
    /// to the CLI in a file (`--system-prompt-file`): one argument is capped at 128 KiB.
    pub system_prompt: Option<String>,
    /// The CLI writes a `stream_event` line for each piece the API streams
    /// (`--include-partial-messages`).
    pub partial_messages: bool,
    /// The resumed session goes on as a new one (`--fork-session`), the old one unchanged.
    pub fork_session: bool,
    /// The model when `model` is overloaded (`--fallback-model`).
    pub fallback_model: Option<String>,
    pub effort: Option<Effort>,
    /// The run's budget, in US dollars (`--max-budget-usd`).
    pub max_budget_usd: Option<f64>,
    /// The checked schema of a structured answer, as JSON text (`--json-schema`).
    pub json_schema: Option<String>,
    /// The checked subagents, as the CLI's JSON (`--agents`).
    pub agents: Option<String>,
    /// The MCP servers it named, as the CLI's configuration (it goes to the CLI in a file of
    /// its own: it holds the servers' secrets).
    pub mcp_config: Option<String>,
    /// Their names, as the agent's detail shows them.
    pub mcp_servers: Arc<[String]>,
    /// The prompt as one user message of text and images, written to the CLI's stream-json
    /// input, which then closes (the compatible APIs' images).
    pub message: Option<crate::agent::MessageContent>,
    /// Where its webhook events go, allowed by the operator.
    pub webhook: Option<Arc<str>>,
}

impl Run {
    /// The run as the CLI's arguments say it; its system prompt, if any, is in `system_prompt_file`.
    pub fn invocation(
        &self,
        system_prompt_file: Option<PathBuf>,
        mcp_config_file: Option<PathBuf>,
    ) -> Invocation {
        Invocation {
            input: match (self.interactive, &self.message) {
                (true, _) => Input::Conversation,
                (false, Some(_)) => Input::Message,
                (false, None) => Input::Prompt,
            },
            approvals_on_stdio: self.approvals,
            model: self.model.clone(),
            fallback_model: self.fallback_model.clone(),
            effort: self.effort.map(Effort::as_cli),
            resume: self.resume,
            fork_session: self.fork_session,
            partial_messages: self.partial_messages,
            tools: self.tools.clone(),
            max_budget_usd: self.max_budget_usd,
            json_schema: self.json_schema.clone(),
            agents: self.agents.clone(),
            system_prompt_file,
            mcp_config_file,
        }
    }
}

/// What a check needs besides the request.
pub struct Context<'a> {
    pub owner: Client,
    pub kind: AgentKind,
    pub default_model: Option<&'a str>,
    pub policy: &'a ToolPolicy,
    /// The operator lets clients answer tool approvals (PROXY_CLIENT_APPROVALS).
    pub client_approvals: bool,
    /// The client's own workspace; None: CLAUDE_WORKDIR, shared.
    pub workspace: Option<Arc<Path>>,
    /// Where webhook events may go.
    pub webhooks: &'a WebhookPolicy,
}

/// A request's check, where the handler finds it: the core's settings and what the proxy
/// knows of sessions, then the request's own check.
impl Agents {
    /// Checks a request of `owner` against the operator's settings.
    pub async fn check(
        &self,
        owner: Client,
        kind: AgentKind,
        request: AgentRequest,
    ) -> Result<Run, Error> {
        let home = match request.session()? {
            Some(session) => self.session_home(owner, session).await?,
            None => None,
        };
        let settings = &self.core.settings;
        let context = Context {
            owner,
            kind,
            default_model: settings.default_model.as_deref(),
            policy: &settings.policy,
            client_approvals: settings.client_approvals,
            workspace: self.core.workspace_of(owner)?,
            webhooks: &settings.webhooks,
        };
        request.check(context, |_| Ok(home))
    }

    /// Where a session lives, for `owner` to resume it there; another client's session is
    /// refused. With client keys, so is one the proxy does not know (never made here, or
    /// forgotten past its bound): it would be anybody's. Both get the same answer. Without
    /// keys there is one client, and a session the proxy does not know is the CLI's to judge.
    pub(in crate::agent) async fn session_home(
        &self,
        owner: Client,
        session: Uuid,
    ) -> Result<Option<Arc<Path>>, Error> {
        if let Some(home) = crate::sync::lock(&self.core.sessions).home(owner, session)? {
            return Ok(Some(home));
        }
        if let Some(store) = &self.core.store {
            store.flush().await;
            match store.session_owner(session).await {
                Ok(Some((made_by, _))) if made_by != owner => {
                    return Err(crate::agent::admission::sessions::not_yours(session));
                }
                Ok(Some((_, cwd))) => return Ok(Some(Arc::from(cwd))),
                Ok(None) => {}
                Err(err) => tracing::warn!(%err, "could not look a session up in the store"),
            }
        }
        if self.core.settings.known_sessions_only {
            return Err(crate::agent::admission::sessions::not_yours(session));
        }
        Ok(None)
    }
}

impl AgentRequest {
    /// The session to resume, if any.
    pub fn session(&self) -> Result<Option<Uuid>, Error> {
        self.session_id
            .as_deref()
            .map(|id| {
                Uuid::try_parse(id).map_err(|_| Error::invalid(
                    "session_id",
                    "must be a UUID such as 0b6e7a43-5c3e-4a51-9d0f-0b8a3b8f7c11 (the session_id of an earlier result)",
                ))
            })
            .transpose()
    }

    /// Checks every field against the operator's settings. `session_home` says where a known
    /// session lives, or refuses it.
    pub fn check(
        self,
        context: Context<'_>,
        session_home: impl FnOnce(Uuid) -> Result<Option<Arc<Path>>, Error>,
    ) -> Result<Run, Error> {
        check_prompt(&self.prompt)?;
        if self.approvals && !self.interactive {
            return Err(Error::invalid(
                "approvals",
                "only an interactive agent can ask for approvals: add \"interactive\": true",
            ));
        }
        if self.approvals && !context.client_approvals {
            return Err(Error::Forbidden(
                "approvals: the operator has not let clients answer tool approvals (PROXY_CLIENT_APPROVALS=true)".into(),
            ));
        }
        let resume = self.session()?;
        if self.fork_session && resume.is_none() {
            return Err(Error::invalid(
                "fork_session",
                "forks the session named by session_id: add one",
            ));
        }
        let model = match self.model {
            Some(model) => {
                Some(parse_model(&model).map_err(|reason| Error::invalid("model", reason))?)
            }
            None => context.default_model.map(str::to_owned),
        };
        let fallback_model = self
            .fallback_model
            .map(|model| parse_model(&model))
            .transpose()
            .map_err(|reason| Error::invalid("fallback_model", reason))?;
        let json_schema = self
            .json_schema
            .as_ref()
            .map(check_json_schema)
            .transpose()?;
        let max_budget_usd = context.policy.budget(self.max_budget_usd)?;
        let webhook = context.webhooks.target(self.webhook.as_deref())?;
        let applied = context.policy.apply(&Narrowing {
            tools: self.tools,
            allowed_tools: self.allowed_tools,
            disallowed_tools: self.disallowed_tools,
            permission_mode: self.permission_mode,
            max_turns: self.max_turns,
            append_system_prompt: self.append_system_prompt,
            cwd: self.cwd.clone(),
            workspace: context.workspace,
        })?;
        let agents = self
            .agents
            .map(|agents| check_subagents(&agents, &applied))
            .transpose()?;
        let mcp_config = context
            .policy
            .mcp_servers
            .config_for(context.owner, &self.mcp_servers)?;
        let mut mcp_servers = self.mcp_servers;
        mcp_servers.sort_unstable();
        mcp_servers.dedup();
        // A session lives under the directory it was made in: resume it there.
        let session_cwd = match resume {
            Some(session) => session_home(session)?,
            None => None,
        };
        let cwd = match (self.cwd, session_cwd) {
            (None, Some(home)) => home,
            _ => applied.cwd,
        };
        Ok(Run {
            owner: context.owner,
            kind: context.kind,
            prompt: self.prompt,
            model,
            resume,
            tools: applied.flags,
            cwd,
            detach_on_disconnect: self.detach_on_disconnect,
            interactive: self.interactive,
            approvals: self.approvals,
            system_prompt: None,
            partial_messages: false,
            fork_session: self.fork_session,
            fallback_model,
            effort: self.effort,
            max_budget_usd,
            json_schema,
            agents,
            mcp_config,
            mcp_servers: mcp_servers.into(),
            message: None,
            webhook,
        })
    }
}

/// A prompt says something, and holds no NUL (the CLI would cut it there).
fn check_prompt(prompt: &str) -> Result<(), Error> {
    if prompt.trim().is_empty() {
        return Err(Error::invalid("prompt", "must not be empty"));
    }
    if prompt.contains('\0') {
        return Err(Error::invalid("prompt", "must not contain NUL characters"));
    }
    Ok(())
}

/// The body of `PATCH /agent/{id}`: what to change in a running interactive agent.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentUpdate {
    /// A model name, or null for the default.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<String>)]
    pub model: Option<Option<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permission_mode: Option<PermissionMode>,
}

/// A field that is there, null or not: absent is None, null is Some(None).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

impl AgentUpdate {
    /// Checks the change as a request's fields are checked at start: the model's name, and a
    /// permission mode no wider than the operator's. The model is then the one to send, the
    /// operator's default standing in for null.
    pub fn check(
        self,
        default_model: Option<&str>,
        policy: &ToolPolicy,
    ) -> Result<(Option<Option<String>>, Option<PermissionMode>), Error> {
        if self.model.is_none() && self.permission_mode.is_none() {
            return Err(Error::invalid(
                "body",
                "name a model, a permission_mode, or both",
            ));
        }
        let model = match self.model {
            Some(Some(model)) => Some(Some(
                parse_model(&model).map_err(|reason| Error::invalid("model", reason))?,
            )),
            Some(None) => Some(default_model.map(str::to_owned)),
            None => None,
        };
        if let Some(mode) = self.permission_mode {
            policy.check_permission_mode(mode)?;
        }
        Ok((model, self.permission_mode))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(prompt: &str, session_id: Option<&str>, model: Option<&str>) -> AgentRequest {
        serde_json::from_value(
            serde_json::json!({"prompt": prompt, "session_id": session_id, "model": model}),
        )
        .unwrap()
    }

    fn check(request: AgentRequest, default_model: Option<&str>) -> Result<Run, Error> {
        let policy = ToolPolicy {
            tools: None,
            allowed_tools: vec![],
            disallowed_tools: vec![],
            permission_mode: None,
            max_turns: None,
            max_budget_usd: None,
            mcp_servers: Default::default(),
            workdir: Arc::from(std::env::temp_dir()),
        };
        let context = Context {
            owner: Client::Anonymous,
            kind: AgentKind::Stream,
            default_model,
            policy: &policy,
            client_approvals: false,
            workspace: None,
            webhooks: &Default::default(),
        };
        request.check(context, |_| Ok(None))
    }

    #[test]
    fn empty_prompts_bad_sessions_and_bad_models_are_refused() {
        assert!(check(request("  \n", None, None), None).is_err());
        assert!(check(request("a\0b", None, None), None).is_err());
        assert!(check(request("hi", Some("not-a-uuid"), None), None).is_err());
        assert!(check(request("hi", None, Some("--model x")), None).is_err());
    }

    #[test]
    fn the_default_model_applies_when_none_is_asked_for() {
        let got = check(request("hi", None, None), Some("sonnet")).unwrap();
        assert_eq!(got.model.as_deref(), Some("sonnet"));
        let got = check(request("hi", None, Some("opus")), Some("sonnet")).unwrap();
        assert_eq!(got.model.as_deref(), Some("opus"));
    }

    #[test]
    fn only_an_object_is_a_request() {
        assert!(serde_json::from_str::<AgentRequest>(r#"["hi"]"#).is_err());
        assert!(serde_json::from_str::<AgentRequest>(r#"{"prompt": "hi"}"#).is_ok());
    }

    #[test]
    fn session_ids_are_normalized() {
        let got = check(
            request("hi", Some("0B6E7A43-5C3E-4A51-9D0F-0B8A3B8F7C11"), None),
            None,
        )
        .unwrap();
        assert!(
            got.invocation(None, None)
                .args()
                .contains(&"--resume=0b6e7a43-5c3e-4a51-9d0f-0b8a3b8f7c11".to_owned())
        );
    }

    #[test]
    fn the_prompt_is_never_an_argument() {
        let mut run = check(request("--dangerously-skip-permissions", None, None), None).unwrap();
        run.model = Some("sonnet".into());
        run.resume = Some(Uuid::parse_str("0b6e7a43-5c3e-4a51-9d0f-0b8a3b8f7c11").unwrap());
        assert_eq!(
            run.invocation(None, None).args(),
            [
                "-p",
                "--output-format",
                "stream-json",
                "--verbose",
                "--model=sonnet",
                "--resume=0b6e7a43-5c3e-4a51-9d0f-0b8a3b8f7c11"
            ]
        );
    }

    fn from(body: serde_json::Value) -> AgentRequest {
        serde_json::from_value(body).unwrap()
    }

    #[test]
    fn the_runs_own_choices_reach_the_cli() {
        let run = check(
            from(serde_json::json!({
                "prompt": "hi",
                "session_id": "0b6e7a43-5c3e-4a51-9d0f-0b8a3b8f7c11",
                "fork_session": true,
                "fallback_model": "haiku",
                "effort": "xhigh",
                "max_budget_usd": 0.5,
                "json_schema": {"type": "object", "properties": {"n": {"type": "integer"}}},
                "agents": {"rev": {"description": "Reviews", "prompt": "Review.", "tools": ["Read"]}},
            })),
            None,
        )
        .unwrap();
        assert_eq!(
            run.invocation(None, None).args()[4..],
            [
                "--fallback-model=haiku",
                "--effort=xhigh",
                "--resume=0b6e7a43-5c3e-4a51-9d0f-0b8a3b8f7c11",
                "--fork-session",
                "--max-budget-usd=0.5",
                r#"--json-schema={"properties":{"n":{"type":"integer"}},"type":"object"}"#,
                r#"--agents={"rev":{"description":"Reviews","prompt":"Review.","tools":["Read"]}}"#,
            ]
        );
    }

    #[test]
    fn bad_choices_are_refused_naming_their_field() {
        let cases = [
            (
                serde_json::json!({"prompt": "hi", "fork_session": true}),
                "fork_session",
            ),
            (
                serde_json::json!({"prompt": "hi", "fallback_model": "-x"}),
                "fallback_model",
            ),
            (
                serde_json::json!({"prompt": "hi", "max_budget_usd": 0}),
                "max_budget_usd",
            ),
            (
                serde_json::json!({"prompt": "hi", "max_budget_usd": -2.5}),
                "max_budget_usd",
            ),
            (
                serde_json::json!({"prompt": "hi", "json_schema": {"type": "string"}}),
                "json_schema",
            ),
            (
                serde_json::json!({"prompt": "hi", "json_schema": "{}"}),
                "json_schema",
            ),
            (
                serde_json::json!({"prompt": "hi", "agents": {"a b": {"description": "d", "prompt": "p"}}}),
                "agents",
            ),
        ];
        for (body, field) in cases {
            match check(from(body.clone()), None) {
                Err(Error::InvalidField { field: named, .. }) => assert_eq!(named, field, "{body}"),
                other => panic!("{body}: {other:?}"),
            }
        }
        assert!(
            serde_json::from_value::<AgentRequest>(
                serde_json::json!({"prompt": "hi", "effort": "huge"})
            )
            .is_err()
        );
    }
}
