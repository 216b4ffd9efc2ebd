//! The MCP servers a request may name (`mcp_servers`), from the operator's catalog
//! (PROXY_MCP_SERVERS): each server's configuration as the CLI takes it (a command or a URL, with
//! the environment and headers it needs, secrets included), and which keys may use it. A run
//! gets a configuration of the servers it named and nothing else, for `--mcp-config`; a request
//! never carries a server's configuration, and no answer shows one.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::{Map, Value};

use crate::agent::Error;
use crate::agent::admission::keys::Client;

/// Who may use a server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum McpKeys {
    /// Every client.
    All,
    Only(Vec<Client>),
}

/// One server of the catalog.
#[derive(Clone)]
pub struct McpServer {
    /// As the CLI takes it under `mcpServers`.
    pub config: Map<String, Value>,
    pub keys: McpKeys,
}

/// The operator's MCP servers, by name.
#[derive(Clone, Default)]
pub struct McpCatalog {
    servers: BTreeMap<String, McpServer>,
}

/// Names only: a configuration holds secrets, and settings are logged.
impl fmt::Debug for McpCatalog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.servers.keys()).finish()
    }
}

impl McpCatalog {
    pub fn new(servers: BTreeMap<String, McpServer>) -> Self {
        Self { servers }
    }

    /// The CLI's MCP configuration for the servers `owner` named; None when it named none. A
    /// server that is not in the catalog and one the key may not use get the same answer, so
    /// that a key learns nothing of the servers it cannot use.
    pub fn config_for(&self, owner: Client, names: &[String]) -> Result<Option<String>, Error> {
        if names.is_empty() {
            return Ok(None);
        }
        if names.len() > 20 {
            return Err(Error::invalid("mcp_servers", "at most 20 servers"));
        }
        let mut chosen = Map::new();
        for name in names {
            let usable = self.servers.get(name).filter(|server| match &server.keys {
                McpKeys::All => true,
                McpKeys::Only(keys) => keys.contains(&owner),
            });
            let Some(server) = usable else {
                return Err(Error::Forbidden(format!(
                    "mcp_servers: {name:?} is not an MCP server this key may use (PROXY_MCP_SERVERS)"
                )));
            };
            chosen.insert(name.clone(), Value::Object(server.config.clone()));
        }
        let config = serde_json::json!({ "mcpServers": chosen });
        Ok(Some(config.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog() -> McpCatalog {
        let key = Client::from_stored(&"ab".repeat(16)).unwrap();
        let server = |keys| McpServer {
            config: serde_json::from_value(
                serde_json::json!({"command": "notes-server", "env": {"NOTES_TOKEN": "s3cret"}}),
            )
            .unwrap(),
            keys,
        };
        McpCatalog::new(BTreeMap::from([
            ("notes".to_owned(), server(McpKeys::All)),
            ("billing".to_owned(), server(McpKeys::Only(vec![key]))),
        ]))
    }

    #[test]
    fn a_run_gets_the_servers_it_named_and_only_those_its_key_may_use() {
        let catalog = catalog();
        let owner = Client::from_stored(&"ab".repeat(16)).unwrap();
        let config = catalog
            .config_for(owner, &["billing".into()])
            .unwrap()
            .unwrap();
        let config: Value = serde_json::from_str(&config).unwrap();
        assert_eq!(
            config["mcpServers"]["billing"]["env"]["NOTES_TOKEN"],
            "s3cret"
        );
        assert!(
            config["mcpServers"]["notes"].is_null(),
            "only what it named"
        );
        assert_eq!(catalog.config_for(owner, &[]).unwrap(), None);

        let stranger = Client::Anonymous;
        let refused = |name: &str| {
            catalog
                .config_for(stranger, &[name.into()])
                .unwrap_err()
                .to_string()
        };
        assert!(refused("billing").contains("\"billing\" is not an MCP server this key may use"));
        assert_eq!(
            refused("billing").replace("billing", "x"),
            refused("nowhere").replace("nowhere", "x"),
            "another key's server and no server get the same answer"
        );
        assert!(catalog.config_for(stranger, &["notes".into()]).is_ok());
    }

    #[test]
    fn the_catalog_is_shown_by_its_names_alone() {
        assert_eq!(format!("{:?}", catalog()), r#"{"billing", "notes"}"#);
    }
}
