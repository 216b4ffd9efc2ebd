//! What the CLI may do: set by the operator, narrowed by a request, never widened.

use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use crate::agent::Error;
use crate::cli::ToolFlags;

/// The CLI's permission modes, from the most restricted to the least.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    clap::ValueEnum,
    serde::Deserialize,
    serde::Serialize,
    utoipa::ToSchema,
)]
pub enum PermissionMode {
    /// Plans only: no edits, no commands.
    #[value(name = "plan")]
    #[serde(rename = "plan")]
    Plan,
    /// Refuses whatever is not allowed beforehand.
    #[value(name = "dontAsk")]
    #[serde(rename = "dontAsk")]
    DontAsk,
    /// The CLI's default: read-only commands run, others are refused in `-p` mode.
    #[value(name = "default")]
    #[serde(rename = "default")]
    Default,
    #[value(name = "manual")]
    #[serde(rename = "manual")]
    Manual,
    #[value(name = "acceptEdits")]
    #[serde(rename = "acceptEdits")]
    AcceptEdits,
    #[value(name = "auto")]
    #[serde(rename = "auto")]
    Auto,
    /// Everything runs. Only ever by the operator's choice.
    #[value(name = "bypassPermissions")]
    #[serde(rename = "bypassPermissions")]
    BypassPermissions,
}

impl PermissionMode {
    pub fn as_cli(self) -> &'static str {
        match self {
            PermissionMode::Plan => "plan",
            PermissionMode::DontAsk => "dontAsk",
            PermissionMode::Default => "default",
            PermissionMode::Manual => "manual",
            PermissionMode::AcceptEdits => "acceptEdits",
            PermissionMode::Auto => "auto",
            PermissionMode::BypassPermissions => "bypassPermissions",
        }
    }

    /// How much it lets through; `manual` asks like `default` does.
    fn reach(self) -> u8 {
        match self {
            PermissionMode::Plan | PermissionMode::DontAsk => 0,
            PermissionMode::Default | PermissionMode::Manual => 1,
            PermissionMode::AcceptEdits => 2,
            PermissionMode::Auto => 3,
            PermissionMode::BypassPermissions => 4,
        }
    }
}

/// The operator's policy (CLAUDE_TOOLS, CLAUDE_ALLOWED_TOOLS, ...).
#[derive(Debug, Clone)]
pub struct ToolPolicy {
    /// The built-in tools that exist at all; None: the CLI's default set.
    pub tools: Option<Vec<String>>,
    pub allowed_tools: Vec<String>,
    pub disallowed_tools: Vec<String>,
    pub permission_mode: Option<PermissionMode>,
    pub max_turns: Option<u32>,
    /// The most a run may cost, in US dollars (PROXY_MAX_BUDGET_USD): every run's budget
    /// when it asks none, and the most it may ask.
    pub max_budget_usd: Option<f64>,
    /// The MCP servers a request may name (PROXY_MCP_SERVERS).
    pub mcp_servers: crate::agent::admission::mcp::McpCatalog,
    /// Where agents run, resolved (symlinks followed) at start-up.
    pub workdir: Arc<Path>,
}

/// What a request asks to narrow.
#[derive(Debug, Clone, Default)]
pub struct Narrowing {
    pub tools: Option<Vec<String>>,
    pub allowed_tools: Option<Vec<String>>,
    pub disallowed_tools: Vec<String>,
    pub permission_mode: Option<PermissionMode>,
    pub max_turns: Option<u32>,
    pub append_system_prompt: Option<String>,
    pub cwd: Option<String>,
    /// The client's own workspace, within CLAUDE_WORKDIR; None: CLAUDE_WORKDIR itself.
    pub workspace: Option<Arc<Path>>,
}

/// The most an appended system prompt may hold.
pub const MAX_SYSTEM_PROMPT_BYTES: usize = 64 * 1024;

/// A run's policy: the CLI's flags, and where it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    pub flags: ToolFlags,
    /// The workdir itself is shared, not copied, by every run in it.
    pub cwd: Arc<Path>,
}

impl Applied {
    /// Whether the run has this tool at all: among its `--tools` when it lists them, and not
    /// removed whole by its `--disallowedTools`. A rule such as `Bash(git log:*)` stands for its
    /// tool; a rule of the run's removes only part of one, and the CLI applies it to the run's
    /// subagents too.
    pub fn has_tool(&self, tool: &str) -> bool {
        let name = tool.split_once('(').map_or(tool, |(name, _)| name);
        let listed = self
            .flags
            .tools
            .as_ref()
            .is_none_or(|tools| tools.iter().any(|t| t == name));
        listed && !self.flags.disallowed_tools.iter().any(|t| t == name)
    }
}

impl ToolPolicy {
    /// Checks that the request stays within the operator's policy (403 with the reason when
    /// it does not) and gives the flags that apply. Values use the `--flag=value` form, so
    /// none can be read as another flag.
    pub fn apply(&self, request: &Narrowing) -> Result<Applied, Error> {
        let forbidden = |reason: String| Error::Forbidden(reason);

        let tools = match (&request.tools, &self.tools) {
            (None, operator) => operator.clone(),
            (Some(_), None) => {
                return Err(forbidden(
                    "tools: the operator has not set CLAUDE_TOOLS, so clients cannot choose tools (use disallowed_tools to remove some)".into(),
                ));
            }
            (Some(asked), Some(operator)) => {
                check_names("tools", asked)?;
                if let Some(wider) = asked.iter().find(|t| !operator.contains(t)) {
                    return Err(forbidden(format!(
                        "tools: {wider} is not among the operator's tools (CLAUDE_TOOLS)"
                    )));
                }
                Some(asked.clone())
            }
        };

        let allowed = match &request.allowed_tools {
            None => self.allowed_tools.clone(),
            Some(asked) => {
                check_names("allowed_tools", asked)?;
                if let Some(wider) = asked
                    .iter()
                    .find(|t| !self.allowed_tools.iter().any(|allowed| within(t, allowed)))
                {
                    return Err(forbidden(format!(
                        "allowed_tools: {wider} is not among the operator's allowed tools (CLAUDE_ALLOWED_TOOLS)"
                    )));
                }
                asked.clone()
            }
        };

        check_names("disallowed_tools", &request.disallowed_tools)?;
        let mut disallowed = self.disallowed_tools.clone();
        disallowed.extend(
            request
                .disallowed_tools
                .iter()
                .filter(|t| !self.disallowed_tools.contains(t))
                .cloned(),
        );

        let mode = match request.permission_mode {
            Some(asked) => Some(self.check_permission_mode(asked)?),
            None => self.permission_mode,
        };

        let max_turns = match (request.max_turns, self.max_turns) {
            (Some(0), _) => {
                return Err(Error::InvalidField {
                    field: "max_turns",
                    reason: "must be at least 1".into(),
                });
            }
            (Some(asked), Some(operator)) if asked > operator => {
                return Err(forbidden(format!(
                    "max_turns: {asked} is more than the operator's {operator} (CLAUDE_MAX_TURNS)"
                )));
            }
            (asked, operator) => asked.or(operator),
        };

        if let Some(prompt) = &request.append_system_prompt {
            if prompt.len() > MAX_SYSTEM_PROMPT_BYTES || prompt.contains('\0') {
                return Err(Error::InvalidField {
                    field: "append_system_prompt",
                    reason: format!(
                        "must be at most {MAX_SYSTEM_PROMPT_BYTES} bytes, without NUL characters"
                    ),
                });
            }
        }

        let workspace = request.workspace.as_ref().unwrap_or(&self.workdir);
        let cwd = match &request.cwd {
            None => Arc::clone(workspace),
            Some(cwd) => Arc::from(resolve_cwd(cwd, workspace)?),
        };
        let flags = ToolFlags {
            tools,
            allowed_tools: allowed,
            disallowed_tools: disallowed,
            permission_mode: mode.map(PermissionMode::as_cli),
            max_turns,
            append_system_prompt: request.append_system_prompt.clone(),
        };
        Ok(Applied { flags, cwd })
    }

    /// A run's budget in US dollars: a positive amount, no more than the operator's, which
    /// applies when the request asks none.
    pub fn budget(&self, asked: Option<f64>) -> Result<Option<f64>, Error> {
        match (asked, self.max_budget_usd) {
            (Some(usd), _) if !(usd.is_finite() && usd > 0.0) => Err(Error::InvalidField {
                field: "max_budget_usd",
                reason: "must be a positive number of US dollars".into(),
            }),
            (Some(usd), Some(operator)) if usd > operator => Err(Error::Forbidden(format!(
                "max_budget_usd: {usd} is more than the operator's {operator} (PROXY_MAX_BUDGET_USD)"
            ))),
            (asked, operator) => Ok(asked.or(operator)),
        }
    }

    /// A permission mode a client asks for: no wider than the operator's.
    pub fn check_permission_mode(&self, asked: PermissionMode) -> Result<PermissionMode, Error> {
        let operator_mode = self.permission_mode.unwrap_or(PermissionMode::Default);
        if asked.reach() > operator_mode.reach() {
            return Err(Error::Forbidden(format!(
                "permission_mode: {} lets through more than the operator's {} (CLAUDE_PERMISSION_MODE)",
                asked.as_cli(),
                operator_mode.as_cli()
            )));
        }
        Ok(asked)
    }

    /// Whether the operator lets the CLI have this tool at all (CLAUDE_TOOLS, less
    /// CLAUDE_DISALLOWED_TOOLS). A rule such as `Bash(rm:*)` removes only part of a tool.
    pub fn tool_exists(&self, tool: &str) -> bool {
        let listed = self
            .tools
            .as_ref()
            .is_none_or(|tools| tools.iter().any(|t| t == tool));
        listed && !self.disallowed_tools.iter().any(|t| t == tool)
    }

    /// A working directory below CLAUDE_WORKDIR, once every symlink is followed.
    #[cfg(test)]
    pub fn resolve_cwd(&self, cwd: &str) -> Result<PathBuf, Error> {
        resolve_cwd(cwd, &self.workdir)
    }
}

/// Tool names and rules (such as `Bash(git log:*)`): short, one line, no separators the CLI
/// would split on.
/// Whether an asked tool is no wider than an allowed one: the same, or one tool of an MCP
/// server whose every tool is allowed (`mcp__notes__lookup` within `mcp__notes__*`).
fn within(asked: &str, allowed: &str) -> bool {
    if asked == allowed {
        return true;
    }
    match allowed.strip_suffix('*') {
        Some(server) if server.starts_with("mcp__") && server.ends_with("__") => asked
            .strip_prefix(server)
            .is_some_and(|tool| !tool.is_empty() && !tool.contains('*')),
        _ => false,
    }
}

pub fn check_names(field: &'static str, names: &[String]) -> Result<(), Error> {
    let bad = names.iter().find(|n| {
        n.is_empty() || n.len() > 200 || n.contains([',', '\0', '\n', '\r']) || n.starts_with('-')
    });
    match bad {
        Some(name) => Err(Error::InvalidField {
            field,
            reason: format!(
                "{name:?} is not a tool name (1 to 200 characters, no commas, newlines or leading '-')"
            ),
        }),
        None if names.len() > 100 => Err(Error::InvalidField {
            field,
            reason: "at most 100 tools".into(),
        }),
        None => Ok(()),
    }
}

/// A comma-separated list of tools from the environment (a newtype, so clap takes the list
/// as one value rather than as a repeated flag).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ToolList(pub Vec<String>);

/// An empty value is an empty list.
pub fn parse_list(value: &str) -> Result<ToolList, String> {
    let items: Vec<String> = value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    match items
        .iter()
        .find(|i| i.len() > 200 || i.contains(['\0', '\n', '\r']) || i.starts_with('-'))
    {
        Some(bad) => Err(format!("{bad:?} is not a tool name or rule")),
        None => Ok(ToolList(items)),
    }
}

/// A working directory below `workspace` (CLAUDE_WORKDIR, or a client's own part of it), once
/// every symlink is followed.
fn resolve_cwd(cwd: &str, workspace: &Path) -> Result<PathBuf, Error> {
    let forbidden = |why: &str| Error::Forbidden(format!("cwd: {why}"));
    let path = Path::new(cwd);
    if cwd.contains('\0') {
        return Err(Error::InvalidField {
            field: "cwd",
            reason: "must not contain NUL characters".into(),
        });
    }
    if path.is_absolute()
        || path
            .components()
            .any(|c| matches!(c, Component::Prefix(_) | Component::RootDir))
    {
        return Err(forbidden(
            "must be relative to the agents' working directory (CLAUDE_WORKDIR)",
        ));
    }
    // Outside is told before missing, and the same whether it exists or not: the answer says
    // nothing of the host's files.
    let outside = || forbidden("resolves outside the agents' working directory (CLAUDE_WORKDIR)");
    let lands = crate::process::resolve_path(&workspace.join(path)).map_err(|_| outside())?;
    if !lands.starts_with(workspace) {
        return Err(outside());
    }
    let resolved = workspace
        .join(path)
        .canonicalize()
        .map_err(|_| Error::InvalidField {
            field: "cwd",
            reason: format!("{cwd} does not exist in the agents' working directory"),
        })?;
    if !resolved.starts_with(workspace) {
        return Err(outside());
    }
    if !resolved.is_dir() {
        return Err(Error::InvalidField {
            field: "cwd",
            reason: format!("{cwd} is not a directory"),
        });
    }
    Ok(resolved)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_mcp_servers_tool_is_within_all_its_tools_and_nothing_else_is() {
        assert!(within("mcp__notes__lookup", "mcp__notes__*"));
        assert!(within("mcp__notes__*", "mcp__notes__*"));
        assert!(!within("mcp__notes__*", "mcp__notes__lookup"));
        assert!(!within("mcp__notesx__lookup", "mcp__notes__*"));
        assert!(!within("mcp__notes__", "mcp__notes__*"));
        assert!(!within("Bash", "B*"));
        assert!(!within("mcp__notes__a*", "mcp__notes__*"));
    }

    fn policy(workdir: &Path) -> ToolPolicy {
        ToolPolicy {
            tools: Some(vec!["Read".into(), "Grep".into(), "Bash".into()]),
            allowed_tools: vec!["Read".into()],
            disallowed_tools: vec!["WebFetch".into()],
            permission_mode: Some(PermissionMode::AcceptEdits),
            max_turns: Some(10),
            max_budget_usd: Some(1.0),
            mcp_servers: Default::default(),
            workdir: Arc::from(workdir.canonicalize().unwrap()),
        }
    }

    fn names(list: &[&str]) -> Option<Vec<String>> {
        Some(list.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn the_operators_policy_applies_as_flags() {
        let dir = tempfile::tempdir().unwrap();
        let applied = policy(dir.path()).apply(&Narrowing::default()).unwrap();
        assert_eq!(
            applied.flags.args(),
            [
                "--tools=Read,Grep,Bash",
                "--allowedTools=Read",
                "--disallowedTools=WebFetch",
                "--permission-mode=acceptEdits",
                "--max-turns=10"
            ]
        );
        assert_eq!(*applied.cwd, *dir.path().canonicalize().unwrap());
    }

    #[test]
    fn a_request_may_narrow() {
        let dir = tempfile::tempdir().unwrap();
        let request = Narrowing {
            tools: names(&["Read"]),
            allowed_tools: Some(vec![]),
            disallowed_tools: vec!["Grep".into(), "WebFetch".into()],
            permission_mode: Some(PermissionMode::Plan),
            max_turns: Some(3),
            append_system_prompt: Some("Answer briefly.".into()),
            cwd: None,
            workspace: None,
        };
        let applied = policy(dir.path()).apply(&request).unwrap();
        assert_eq!(
            applied.flags.args(),
            [
                "--tools=Read",
                "--disallowedTools=WebFetch,Grep",
                "--permission-mode=plan",
                "--max-turns=3",
                "--append-system-prompt=Answer briefly."
            ]
        );
    }

    #[test]
    fn a_request_may_not_widen() {
        let dir = tempfile::tempdir().unwrap();
        let policy = policy(dir.path());
        let wider = [
            Narrowing {
                tools: names(&["Read", "Write"]),
                ..Default::default()
            },
            Narrowing {
                allowed_tools: names(&["Bash"]),
                ..Default::default()
            },
            Narrowing {
                permission_mode: Some(PermissionMode::BypassPermissions),
                ..Default::default()
            },
            Narrowing {
                permission_mode: Some(PermissionMode::Auto),
                ..Default::default()
            },
            Narrowing {
                max_turns: Some(11),
                ..Default::default()
            },
        ];
        for request in wider {
            let err = policy.apply(&request).unwrap_err();
            assert!(matches!(err, Error::Forbidden(_)), "{request:?}: {err}");
        }
    }

    #[test]
    fn a_budget_is_positive_and_within_the_operators() {
        let dir = tempfile::tempdir().unwrap();
        let policy = policy(dir.path());
        assert_eq!(policy.budget(None).unwrap(), Some(1.0));
        assert_eq!(policy.budget(Some(0.25)).unwrap(), Some(0.25));
        assert!(matches!(policy.budget(Some(1.5)), Err(Error::Forbidden(_))));
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            assert!(
                matches!(
                    policy.budget(Some(bad)),
                    Err(Error::InvalidField {
                        field: "max_budget_usd",
                        ..
                    })
                ),
                "{bad}"
            );
        }
        let open = ToolPolicy {
            max_budget_usd: None,
            ..policy
        };
        assert_eq!(open.budget(None).unwrap(), None);
        assert_eq!(open.budget(Some(50.0)).unwrap(), Some(50.0));
    }

    #[test]
    fn without_operator_tools_clients_cannot_choose_tools() {
        let dir = tempfile::tempdir().unwrap();
        let policy = ToolPolicy {
            tools: None,
            ..policy(dir.path())
        };
        assert!(
            policy
                .apply(&Narrowing {
                    tools: names(&["Read"]),
                    ..Default::default()
                })
                .is_err()
        );
    }

    #[test]
    fn bypass_is_the_operators_choice_only() {
        let dir = tempfile::tempdir().unwrap();
        let open = ToolPolicy {
            permission_mode: None,
            ..policy(dir.path())
        };
        let bypass = Narrowing {
            permission_mode: Some(PermissionMode::BypassPermissions),
            ..Default::default()
        };
        assert!(open.apply(&bypass).is_err());
        let operator = ToolPolicy {
            permission_mode: Some(PermissionMode::BypassPermissions),
            ..policy(dir.path())
        };
        assert!(operator.apply(&bypass).is_ok());
    }

    #[test]
    fn cwd_stays_inside_the_workdir() {
        let dir = tempfile::tempdir().unwrap();
        let work = dir.path().join("work");
        std::fs::create_dir_all(work.join("project/src")).unwrap();
        std::os::unix::fs::symlink(dir.path(), work.join("escape")).unwrap();
        std::os::unix::fs::symlink(work.join("project"), work.join("alias")).unwrap();
        let policy = policy(&work);
        assert_eq!(
            policy.resolve_cwd("project/src").unwrap(),
            work.canonicalize().unwrap().join("project/src")
        );
        assert_eq!(
            policy.resolve_cwd("alias").unwrap(),
            work.canonicalize().unwrap().join("project")
        );
        for escape in ["..", "project/../..", "/tmp", "escape"] {
            assert!(
                matches!(policy.resolve_cwd(escape), Err(Error::Forbidden(_))),
                "{escape}"
            );
        }
        assert!(matches!(
            policy.resolve_cwd("missing"),
            Err(Error::InvalidField { .. })
        ));
    }
}
