//! The choices a request may make for its run beyond the tool policy: model names, a JSON
//! Schema its answer must follow (structured output), an effort level, and custom subagents. Each is checked
//! before anything is spawned, and none lets a run do more than the operator's policy: a
//! subagent gets no tool its parent run could not use.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::agent::Error;
use crate::agent::admission::policy::{Applied, check_names};

/// The most a JSON value given to the CLI as one argument may hold once serialized: Linux caps
/// one argument at 128 KiB, and the rest of the command line needs room too.
pub const MAX_ARGUMENT_JSON_BYTES: usize = 64 * 1024;

/// Model names are short tokens that start with a letter or a digit; anything else could be
/// read as a flag (`--dangerously-skip-permissions`) or smuggle other text into the command.
pub fn parse_model(value: &str) -> Result<String, String> {
    let ok = (1..=100).contains(&value.len())
        && value.starts_with(|c: char| c.is_ascii_alphanumeric())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._:[]-".contains(&b));
    if ok {
        Ok(value.to_owned())
    } else {
        Err(
            "expected 1 to 100 of the characters A-Z a-z 0-9 . _ : [ ] -, starting with a letter or a digit"
                .into(),
        )
    }
}

/// How hard the model thinks (`--effort`), as the CLI names its levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Effort {
    Low,
    Medium,
    High,
    Xhigh,
    Max,
}

impl Effort {
    pub fn as_cli(self) -> &'static str {
        match self {
            Effort::Low => "low",
            Effort::Medium => "medium",
            Effort::High => "high",
            Effort::Xhigh => "xhigh",
            Effort::Max => "max",
        }
    }
}

/// A custom subagent the run's main agent may hand work to (the CLI's `--agents`).
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Subagent {
    /// When to use it: the main agent reads this to choose it.
    pub description: String,
    /// Its system prompt.
    pub prompt: String,
    /// Its tools, each one the run itself has; absent: the run's own.
    #[serde(default)]
    pub tools: Option<Vec<String>>,
    /// Tools it does without.
    #[serde(default)]
    pub disallowed_tools: Vec<String>,
    /// A model name, or `inherit`; absent: the CLI's choice for subagents.
    #[serde(default)]
    pub model: Option<String>,
}

/// The most subagents one run may define.
pub const MAX_SUBAGENTS: usize = 32;

/// A structured-output schema as the CLI's `--json-schema` takes it: a valid JSON Schema whose
/// instances are objects (the CLI makes it the input schema of its `StructuredOutput` tool,
/// which the Messages API takes only of type object). Nothing it names is fetched.
pub fn check_json_schema(schema: &Value) -> Result<String, Error> {
    let invalid = |reason: String| Error::invalid("json_schema", reason);
    if !schema.is_object() {
        return Err(invalid("must be a JSON Schema object".into()));
    }
    if schema["type"] != "object" {
        return Err(invalid(
            "must describe an object (\"type\": \"object\"): the answer is given as a tool's input, which is an object".into(),
        ));
    }
    if let Err(err) = jsonschema::validator_for(schema) {
        return Err(invalid(format!("is not a valid JSON Schema: {err}")));
    }
    let text = schema.to_string();
    if text.len() > MAX_ARGUMENT_JSON_BYTES {
        return Err(invalid(format!(
            "must be at most {MAX_ARGUMENT_JSON_BYTES} bytes as JSON"
        )));
    }
    Ok(text)
}

/// Subagents as the CLI's `--agents` takes them (its field names), once each is checked
/// against the run's tools: a subagent's tools are a part of its parent's.
pub fn check_subagents(
    agents: &BTreeMap<String, Subagent>,
    run: &Applied,
) -> Result<String, Error> {
    let invalid = |reason: String| Error::invalid("agents", reason);
    if agents.len() > MAX_SUBAGENTS {
        return Err(invalid(format!("at most {MAX_SUBAGENTS} subagents")));
    }
    let mut cli = serde_json::Map::new();
    for (name, agent) in agents {
        let named = (1..=64).contains(&name.len())
            && name.starts_with(|c: char| c.is_ascii_alphanumeric())
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_-".contains(&b));
        if !named {
            return Err(invalid(format!(
                "{name:?} is not a subagent name (1 to 64 of A-Z a-z 0-9 _ -, starting with a letter or a digit)"
            )));
        }
        for (field, text) in [
            ("description", &agent.description),
            ("prompt", &agent.prompt),
        ] {
            if text.trim().is_empty() {
                return Err(invalid(format!("{name}.{field} must not be empty")));
            }
        }
        check_names("agents", &agent.disallowed_tools)?;
        if let Some(tools) = &agent.tools {
            check_names("agents", tools)?;
            if let Some(wider) = tools.iter().find(|tool| !run.has_tool(tool)) {
                return Err(Error::Forbidden(format!(
                    "agents: {name} asks for {wider}, which this run does not have (the operator's CLAUDE_TOOLS and CLAUDE_DISALLOWED_TOOLS, narrowed by the request)"
                )));
            }
        }
        let model = match &agent.model {
            Some(model) => Some(
                parse_model(model).map_err(|reason| invalid(format!("{name}.model: {reason}")))?,
            ),
            None => None,
        };
        let mut definition = json!({"description": agent.description, "prompt": agent.prompt});
        if let Some(tools) = &agent.tools {
            definition["tools"] = json!(tools);
        }
        if !agent.disallowed_tools.is_empty() {
            definition["disallowedTools"] = json!(agent.disallowed_tools);
        }
        if let Some(model) = model {
            definition["model"] = json!(model);
        }
        cli.insert(name.clone(), definition);
    }
    let text = Value::Object(cli).to_string();
    if text.len() > MAX_ARGUMENT_JSON_BYTES {
        return Err(invalid(format!(
            "must be at most {MAX_ARGUMENT_JSON_BYTES} bytes as JSON"
        )));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::sync::Arc;

    use super::*;
    use crate::cli::ToolFlags;

    fn run(tools: Option<&[&str]>, disallowed: &[&str]) -> Applied {
        let names = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        Applied {
            flags: ToolFlags {
                tools: tools.map(names),
                disallowed_tools: names(disallowed),
                ..ToolFlags::default()
            },
            cwd: Arc::from(Path::new("/")),
        }
    }

    fn agents(value: Value) -> BTreeMap<String, Subagent> {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn a_schema_is_an_object_schema_the_validator_takes() {
        let good = json!({"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]});
        assert_eq!(check_json_schema(&good).unwrap(), good.to_string());
        for bad in [
            json!("object"),
            json!([1]),
            json!({"type": "string"}),
            json!({"properties": {}}),
            json!({"type": "object", "properties": {"n": {"type": 12}}}),
            json!({"type": "object", "required": "name"}),
            json!({"type": "object", "$ref": "https://example.com/schema.json"}),
        ] {
            let err = check_json_schema(&bad).unwrap_err();
            assert!(
                matches!(
                    err,
                    Error::InvalidField {
                        field: "json_schema",
                        ..
                    }
                ),
                "{bad}: {err}"
            );
        }
        let huge = json!({"type": "object", "description": "x".repeat(MAX_ARGUMENT_JSON_BYTES)});
        assert!(check_json_schema(&huge).is_err());
    }

    #[test]
    fn subagents_go_to_the_cli_in_its_field_names() {
        let asked = agents(json!({"reviewer": {
            "description": "Reviews code", "prompt": "You review.",
            "tools": ["Read", "Bash(git diff:*)"], "disallowed_tools": ["Grep"], "model": "haiku"
        }}));
        let text = check_subagents(&asked, &run(Some(&["Read", "Grep", "Bash"]), &[])).unwrap();
        let cli: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            cli,
            json!({"reviewer": {"description": "Reviews code", "prompt": "You review.",
                "tools": ["Read", "Bash(git diff:*)"], "disallowedTools": ["Grep"], "model": "haiku"}})
        );
    }

    #[test]
    fn a_subagent_gets_no_tool_its_parent_run_lacks() {
        let asking = |tool: &str| {
            agents(json!({"helper": {"description": "d", "prompt": "p", "tools": [tool]}}))
        };
        // Not among the run's tools, or removed from it: refused as widening.
        let listed = run(Some(&["Read"]), &[]);
        let err = check_subagents(&asking("Bash"), &listed).unwrap_err();
        assert!(matches!(err, Error::Forbidden(_)), "{err}");
        let removed = run(None, &["Bash"]);
        for tool in ["Bash", "Bash(ls:*)"] {
            let err = check_subagents(&asking(tool), &removed).unwrap_err();
            assert!(matches!(err, Error::Forbidden(_)), "{tool}: {err}");
        }
        // A rule of the run removes only part of a tool, which the CLI still applies.
        assert!(check_subagents(&asking("Bash"), &run(None, &["Bash(rm:*)"])).is_ok());
        // Without tools of its own, a subagent has its parent's.
        let inheriting = agents(json!({"helper": {"description": "d", "prompt": "p"}}));
        assert!(check_subagents(&inheriting, &listed).is_ok());
    }

    #[test]
    fn bad_subagents_are_refused_naming_the_field() {
        let open = run(None, &[]);
        for bad in [
            json!({"-rm": {"description": "d", "prompt": "p"}}),
            json!({"a": {"description": " ", "prompt": "p"}}),
            json!({"a": {"description": "d", "prompt": "p", "model": "--x"}}),
            json!({"a": {"description": "d", "prompt": "p", "tools": ["a,b"]}}),
        ] {
            let err = check_subagents(&agents(bad.clone()), &open).unwrap_err();
            assert!(
                matches!(
                    err,
                    Error::InvalidField {
                        field: "agents",
                        ..
                    }
                ),
                "{bad}: {err}"
            );
        }
        // A field the proxy does not check (permissions, MCP servers, hooks) is not taken.
        assert!(
            serde_json::from_value::<BTreeMap<String, Subagent>>(json!({"a": {
                "description": "d", "prompt": "p", "permissionMode": "bypassPermissions"
            }}))
            .is_err()
        );
    }

    #[test]
    fn model_names_are_restricted() {
        assert!(parse_model("claude-sonnet-4-5-20250929").is_ok());
        assert!(parse_model("claude-opus-4[1m]").is_ok());
        assert!(parse_model("--dangerously-skip-permissions x").is_err());
        assert!(parse_model("").is_err());
        assert!(parse_model(&"a".repeat(101)).is_err());
    }

    #[test]
    fn a_model_that_looks_like_a_flag_is_refused() {
        assert!(parse_model("--dangerously-skip-permissions").is_err());
        assert!(parse_model("-m").is_err());
        assert!(parse_model(".hidden").is_err());
        assert!(parse_model("4o").is_ok());
    }
}
