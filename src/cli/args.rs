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
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Invocation {
    pub input: Input,
    /// Tool approvals are asked on stdout and answered on stdin (`--permission-prompt-tool
    /// stdio`), rather than decided by the flags alone.
    pub approvals_on_stdio: bool,
    pub model: Option<String>,
    /// The session to go on with.
    pub resume: Option<Uuid>,
    /// The resumed session goes on as a new one, the old one unchanged.
    pub fork_session: bool,
    /// A `stream_event` line for each piece the API streams.
    pub partial_messages: bool,
    pub tools: ToolFlags,
    /// The whole system prompt, in place of Claude Code's, from a file (one argument is capped
    /// at 128 KiB).
    pub system_prompt_file: Option<PathBuf>,
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
        if let Some(file) = &self.system_prompt_file {
            args.push(format!("--system-prompt-file={}", file.display()));
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
        let table: [(Invocation, &[&str]); 3] = [
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
                ],
            ),
        ];
        for (invocation, args) in table {
            assert_eq!(invocation.args(), args, "{invocation:?}");
        }
    }
}
