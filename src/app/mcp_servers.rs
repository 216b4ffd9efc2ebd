//! The operator's MCP servers (PROXY_MCP_SERVERS): a JSON file in the CLI's own `mcpServers`
//! shape, where each server also says which client keys may use it (`"keys": ["*"]`, or key
//! ids as the logs show them).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::agent::{Client, McpCatalog, McpKeys, McpServer};

/// A catalog that cannot be used. The message never shows a server's configuration.
#[derive(Debug, thiserror::Error)]
pub enum McpServersError {
    /// The file could not be read.
    #[error("PROXY_MCP_SERVERS ({}) cannot be read: {source}", path.display())]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not a catalog; what is wrong.
    #[error("PROXY_MCP_SERVERS ({}): {why}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong, naming the server.
        why: String,
    },
}

/// The catalog in `path`; none without one.
pub(crate) fn load(path: Option<&Path>) -> Result<McpCatalog, McpServersError> {
    let Some(path) = path else {
        return Ok(McpCatalog::default());
    };
    let text = std::fs::read_to_string(path).map_err(|source| McpServersError::Unreadable {
        path: path.to_owned(),
        source,
    })?;
    parse(&text).map_err(|why| McpServersError::Invalid {
        path: path.to_owned(),
        why,
    })
}

fn parse(text: &str) -> Result<McpCatalog, String> {
    let file: Value = serde_json::from_str(text).map_err(|err| format!("not JSON: {err}"))?;
    let Some(servers) = file["mcpServers"].as_object() else {
        return Err(r#"expected {"mcpServers": {"<name>": {...}}}"#.into());
    };
    let mut catalog = BTreeMap::new();
    for (name, server) in servers {
        let named = (1..=64).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !named {
            return Err(format!(
                "{name:?}: a server's name is 1 to 64 of A-Z a-z 0-9 _ - (its tools are mcp__<name>__<tool>)"
            ));
        }
        let Some(server) = server.as_object() else {
            return Err(format!("{name}: expected an object"));
        };
        let mut config: Map<String, Value> = server.clone();
        let keys = keys_of(config.remove("keys")).map_err(|why| format!("{name}: {why}"))?;
        let runs = config.get("command").is_some_and(Value::is_string);
        let reached = config.get("url").is_some_and(Value::is_string);
        if runs == reached {
            return Err(format!(
                "{name}: give a \"command\" (a program the CLI starts) or a \"url\" (with \"type\": \"http\" or \"sse\"), not both"
            ));
        }
        catalog.insert(name.clone(), McpServer { config, keys });
    }
    Ok(McpCatalog::new(catalog))
}

fn keys_of(keys: Option<Value>) -> Result<McpKeys, String> {
    let Some(Value::Array(keys)) = keys else {
        return Err(r#"say which keys may use it: "keys": ["*"] for every key, or the ids of keys (as the logs show them)"#.into());
    };
    if keys.iter().any(|key| key == "*") {
        return Ok(McpKeys::All);
    }
    keys.iter()
        .map(|key| {
            key.as_str()
                .and_then(Client::from_stored)
                .ok_or_else(|| format!("{key} is not a key id (32 hex digits) nor \"*\""))
        })
        .collect::<Result<Vec<_>, _>>()
        .map(McpKeys::Only)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_catalog_names_its_servers_and_who_may_use_each() {
        let id = "ab".repeat(16);
        let catalog = parse(&format!(
            r#"{{"mcpServers": {{
                "notes": {{"command": "notes-server", "env": {{"T": "s"}}, "keys": ["*"]}},
                "docs": {{"type": "http", "url": "http://127.0.0.1:9/mcp", "keys": ["{id}"]}}
            }}}}"#
        ))
        .unwrap();
        assert_eq!(format!("{catalog:?}"), r#"{"docs", "notes"}"#);
        let key = Client::from_stored(&id).unwrap();
        let config = catalog.config_for(key, &["docs".into()]).unwrap().unwrap();
        assert!(
            !config.contains("keys"),
            "the CLI never sees who may use it: {config}"
        );
        assert!(
            catalog
                .config_for(Client::Anonymous, &["docs".into()])
                .is_err()
        );
    }

    #[test]
    fn a_catalog_that_cannot_be_used_says_why() {
        for (text, why) in [
            ("[]", "mcpServers"),
            (
                r#"{"mcpServers": {"a b": {"command": "x", "keys": ["*"]}}}"#,
                "name",
            ),
            (r#"{"mcpServers": {"a": {"command": "x"}}}"#, "which keys"),
            (
                r#"{"mcpServers": {"a": {"command": "x", "keys": ["nope"]}}}"#,
                "not a key id",
            ),
            (r#"{"mcpServers": {"a": {"keys": ["*"]}}}"#, "\"command\""),
            (
                r#"{"mcpServers": {"a": {"command": "x", "url": "y", "keys": ["*"]}}}"#,
                "not both",
            ),
        ] {
            let err = parse(text).unwrap_err();
            assert!(err.contains(why), "{text}: {err}");
        }
    }
}
