//! The CLI's arguments, from a plain description of a run. The prompt is never among them: it
//! goes on stdin, so a prompt of any size works and a prompt like
//! `--dangerously-skip-permissions` stays a prompt. Values use the `--flag=value` form, so none
//! is ever read as a flag.

use std::path::PathBuf;

use uuid::Uuid;

/// How the CLI reads what it is asked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Input {
    /// The prompt as text, to the end of stdin.
    #[default]
    Prompt,
    /// One user message as a stream-json line (text and images), then the end of stdin.
    Message,
    /// A conversation: user messages and control requests as stream-json lines, for as long as
    /// stdin stays open; the CLI echoes each user message back.
    Conversation,
}

/// The tools a run may use and how far it may go, as the CLI's flags say it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct ToolFlags {
    /// `--tools`: the built-in tools that exist at all; None: the CLI's default set.
    pub tools: Option<Vec<String>>,
    /// `--allowedTools`: those run without asking.
    pub allowed_tools: Vec<String>,
    /// `--disallowedTools`.
    pub disallowed_tools: Vec<String>,
    /// `--permission-mode`, as the CLI names it (`default`, `acceptEdits`, `plan`, ...).
    pub permission_mode: Option<&'static str>,
    /// `--max-turns`.
    pub max_turns: Option<u32>,
    /// `--append-system-prompt`.
    pub append_system_prompt: Option<String>,
}

impl ToolFlags {
    /// The flags, in the order the CLI's help lists them.
    pub fn args(&self) -> Vec<String> {
        let mut args = Vec::new();
        if let Some(tools) = &self.tools {
            args.push(format!("--tools={}", tools.join(",")));
        }
        if !self.allowed_tools.is_empty() {
            args.push(format!("--allowedTools={}", self.allowed_tools.join(",")));
        }
        if !self.disallowed_tools.is_empty() {
            args.push(format!(
                "--disallowedTools={}",
                self.disallowed_tools.join(",")
            ));
        }
        if let Some(mode) = self.permission_mode {
            args.push(format!("--permission-mode={mode}"));
        }
        if let Some(turns) = self.max_turns {
            args.push(format!("--max-turns={turns}"));
        }
        if let Some(prompt) = &self.append_system_prompt {
            args.push(format!("--append-system-prompt={prompt}"));
        }
        args
    }
}

/// One run of the CLI, as its arguments describe it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Invocation {
    pub input: Input,
    /// Tool approvals are asked on stdout and answered on stdin (`--permission-prompt-tool
    /// stdio`), rather than decided by the flags alone.
    pub approvals_on_stdio: bool,
    pub model: Option<String>,
    /// `--fallback-model`: the model the CLI turns to when `model` is overloaded.
    pub fallback_model: Option<String>,
    /// `--effort`, as the CLI names the level (`low` ... `max`).
    pub effort: Option<&'static str>,
    /// The session to go on with.
    pub resume: Option<Uuid>,
    /// The resumed session goes on as a new one, the old one unchanged.
    pub fork_session: bool,
    /// A `stream_event` line for each piece the API streams.
    pub partial_messages: bool,
    pub tools: ToolFlags,
    /// `--max-budget-usd`: the CLI ends the run with `error_max_budget_usd` once its cost
    /// reaches this.
    pub max_budget_usd: Option<f64>,
    /// `--json-schema`, as JSON text: the answer is a `StructuredOutput` tool call the CLI
    /// checks against it, and its result carries `structured_output`.
    pub json_schema: Option<String>,
    /// `--agents`, as JSON text: custom subagents by name.
    pub agents: Option<String>,
    /// The whole system prompt, in place of Claude Code's, from a file (one argument is capped
    /// at 128 KiB).
    pub system_prompt_file: Option<PathBuf>,
    /// `--mcp-config`: a file of the run's own with the MCP servers it named (their secrets
    /// are in it, never in an argument).
    pub mcp_config_file: Option<PathBuf>,
}

impl Invocation {
    /// Its arguments, after the program's name.
    pub fn args(&self) -> Vec<String> {
        let mut args: Vec<String> = ["-p", "--output-format", "stream-json", "--verbose"]
            .map(String::from)
            .into();
        match self.input {
            Input::Prompt => {}
            Input::Message => args.extend(["--input-format", "stream-json"].map(String::from)),
            Input::Conversation => args.extend(
                ["--input-format", "stream-json", "--replay-user-messages"].map(String::from),
            ),
        }
        if self.approvals_on_stdio {
            args.extend(["--permission-prompt-tool", "stdio"].map(String::from));
        }
        if let Some(model) = &self.model {
            args.push(format!("--model={model}"));
        }
        if let Some(model) = &self.fallback_model {
            args.push(format!("--fallback-model={model}"));
        }
        if let Some(effort) = self.effort {
            args.push(format!("--effort={effort}"));
        }
        if let Some(session) = &self.resume {
            args.push(format!("--resume={}", session.hyphenated()));
            if self.fork_session {
                args.push("--fork-session".to_owned());
            }
        }
        if self.partial_messages {
            args.push("--include-partial-messages".to_owned());
        }
        args.extend(self.tools.args());
        if let Some(usd) = self.max_budget_usd {
            // Display never uses an exponent, which the CLI's number parsing may not take.
            args.push(format!("--max-budget-usd={usd}"));
        }
        if let Some(schema) = &self.json_schema {
            args.push(format!("--json-schema={schema}"));
        }
        if let Some(agents) = &self.agents {
            args.push(format!("--agents={agents}"));
        }
        if let Some(file) = &self.system_prompt_file {
            args.push(format!("--system-prompt-file={}", file.display()));
        }
        if let Some(file) = &self.mcp_config_file {
            // One value after `=`: the flag takes several when they follow it as arguments.
            args.push(format!("--mcp-config={}", file.display()));
        }
        args
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_is_its_flags_in_one_order() {
        let session = Uuid::parse_str("0b6e7a43-5c3e-4a51-9d0f-0b8a3b8f7c11").unwrap();
        let table: [(Invocation, &[&str]); 4] = [
            (
                Invocation::default(),
                &["-p", "--output-format", "stream-json", "--verbose"],
            ),
            (
                Invocation {
                    input: Input::Conversation,
                    approvals_on_stdio: true,
                    model: Some("sonnet".into()),
                    resume: Some(session),
                    fork_session: true,
                    ..Invocation::default()
                },
                &[
                    "-p",
                    "--output-format",
                    "stream-json",
                    "--verbose",
                    "--input-format",
                    "stream-json",
                    "--replay-user-messages",
                    "--permission-prompt-tool",
                    "stdio",
                    "--model=sonnet",
                    "--resume=0b6e7a43-5c3e-4a51-9d0f-0b8a3b8f7c11",
                    "--fork-session",
                ],
            ),
            (
                Invocation {
                    input: Input::Message,
                    partial_messages: true,
                    tools: ToolFlags {
                        tools: Some(vec!["Read".into(), "Grep".into()]),
                        permission_mode: Some("plan"),
                        append_system_prompt: Some("--be brief".into()),
                        ..ToolFlags::default()
                    },
                    system_prompt_file: Some("/p/1.txt".into()),
                    mcp_config_file: Some("/p/2.json".into()),
                    ..Invocation::default()
                },
                &[
                    "-p",
                    "--output-format",
                    "stream-json",
                    "--verbose",
                    "--input-format",
                    "stream-json",
                    "--include-partial-messages",
                    "--tools=Read,Grep",
                    "--permission-mode=plan",
                    "--append-system-prompt=--be brief",
                    "--system-prompt-file=/p/1.txt",
                    "--mcp-config=/p/2.json",
                ],
            ),
            (
                Invocation {
                    model: Some("opus".into()),
                    fallback_model: Some("sonnet".into()),
                    effort: Some("high"),
                    resume: Some(session),
                    fork_session: true,
                    tools: ToolFlags {
                        max_turns: Some(4),
                        ..ToolFlags::default()
                    },
                    max_budget_usd: Some(0.00005),
                    json_schema: Some(r#"{"type":"object"}"#.into()),
                    agents: Some(r#"{"rev":{"description":"d","prompt":"-p"}}"#.into()),
                    ..Invocation::default()
                },
                &[
                    "-p",
                    "--output-format",
                    "stream-json",
                    "--verbose",
                    "--model=opus",
                    "--fallback-model=sonnet",
                    "--effort=high",
                    "--resume=0b6e7a43-5c3e-4a51-9d0f-0b8a3b8f7c11",
                    "--fork-session",
                    "--max-turns=4",
                    "--max-budget-usd=0.00005",
                    r#"--json-schema={"type":"object"}"#,
                    r#"--agents={"rev":{"description":"d","prompt":"-p"}}"#,
                ],
            ),
        ];
        for (invocation, args) in table {
            assert_eq!(invocation.args(), args, "{invocation:?}");
        }
    }

    #[test]
    fn a_budget_is_written_without_an_exponent() {
        let tiny = Invocation {
            max_budget_usd: Some(1e-7),
            ..Invocation::default()
        };
        assert_eq!(tiny.args().last().unwrap(), "--max-budget-usd=0.0000001");
    }
}
