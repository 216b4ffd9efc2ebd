//! Where agents are kept beyond the process: the backends of the agent core's [`Store`]
//! (`crate::agent::Store`). SQLite by default; `memory` keeps them in the process only.
//!
//! A backend depends on the agent core (it stores its records and events); the core knows none
//! of them, and only the app chooses one.

mod chunk;
pub mod sqlite;

use std::path::PathBuf;

pub use sqlite::{Limits, OpenError, SqliteStore};

/// Which database, from `PROXY_DATABASE_URL`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Database {
    /// In the process only: nothing outlives it.
    Memory,
    Sqlite(PathBuf),
}

impl Database {
    pub fn parse(url: &str) -> Result<Self, String> {
        match url.trim() {
            "memory" => Ok(Database::Memory),
            url => match url.strip_prefix("sqlite://") {
                Some(path) if !path.is_empty() => Ok(Database::Sqlite(PathBuf::from(path))),
                _ => Err("expected memory, or sqlite://PATH (such as sqlite:///var/lib/claude-proxy/claude-proxy.db)".into()),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_urls() {
        assert_eq!(Database::parse("memory"), Ok(Database::Memory));
        assert_eq!(
            Database::parse("sqlite:///var/lib/x.db"),
            Ok(Database::Sqlite("/var/lib/x.db".into()))
        );
        assert_eq!(
            Database::parse("sqlite://data/x.db"),
            Ok(Database::Sqlite("data/x.db".into()))
        );
        assert!(Database::parse("postgres://localhost/x").is_err());
        assert!(Database::parse("sqlite://").is_err());
    }
}
