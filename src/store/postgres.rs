//! PostgreSQL, through the `postgres` crate (the blocking face of tokio-postgres, which suits
//! the store's writer thread and blocking reads). Its migrations have the same versions as
//! SQLite's, kept in a table of their own, and run under an advisory lock: instances that
//! start together upgrade the schema once.

use std::collections::HashMap;
use std::error::Error as _;

use bytes::BytesMut;
use postgres::types::{IsNull, ToSql, Type, to_sql_checked};
use postgres::{Client, NoTls, Statement};

use super::db::{Db, DbError, DbResult, Row, Value};

pub const MIGRATIONS: &[&str] = &[
    include_str!("migrations/postgres/0001_agents.sql"),
    include_str!("migrations/postgres/0002_instances.sql"),
    include_str!("migrations/postgres/0003_counts.sql"),
    include_str!("migrations/postgres/0004_conversations.sql"),
    include_str!("migrations/postgres/0005_usage.sql"),
    include_str!("migrations/postgres/0006_webhooks.sql"),
    include_str!("migrations/postgres/0007_agent_run.sql"),
];

/// The advisory lock held while the schema changes or a crash's agents are ended.
const SCHEMA_LOCK: i64 = 0x636c_6175_6465;

pub struct Postgres {
    client: Client,
    /// Each statement prepared once: its text is `'static`, so it is its own key.
    prepared: HashMap<&'static str, Statement>,
}

impl std::fmt::Debug for Postgres {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Postgres").finish_non_exhaustive()
    }
}

impl Postgres {
    /// Connects to `url`, a `postgres://` URL or key=value parameters.
    pub fn connect(url: &str) -> DbResult<Self> {
        let client = Client::connect(url, NoTls).map_err(error)?;
        Ok(Self {
            client,
            prepared: HashMap::new(),
        })
    }

    /// The client itself, for what only PostgreSQL does (notifications).
    pub fn client(&mut self) -> &mut Client {
        &mut self.client
    }

    fn statement(&mut self, sql: &'static str) -> DbResult<Statement> {
        if let Some(statement) = self.prepared.get(sql) {
            return Ok(statement.clone());
        }
        let statement = self.client.prepare(&numbered(sql)).map_err(error)?;
        self.prepared.insert(sql, statement.clone());
        Ok(statement)
    }
}

/// The database's own message, which `postgres::Error`'s display leaves out.
pub fn error(err: postgres::Error) -> DbError {
    match err.source() {
        Some(source) => DbError(format!("{err}: {source}")),
        None => DbError(err.to_string()),
    }
}

/// `?1` as PostgreSQL writes it: `$1`.
fn numbered(sql: &str) -> String {
    sql.replace('?', "$")
}

impl ToSql for Value {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match self {
            Value::Null => Ok(IsNull::Yes),
            Value::Int(n) => match *ty {
                Type::INT2 => i16::try_from(*n)?.to_sql(ty, out),
                Type::INT4 => i32::try_from(*n)?.to_sql(ty, out),
                Type::FLOAT8 => (*n as f64).to_sql(ty, out),
                _ => n.to_sql(ty, out),
            },
            Value::Real(x) => x.to_sql(ty, out),
            Value::Bool(b) => b.to_sql(ty, out),
            Value::Text(s) => s.to_sql(ty, out),
            Value::Blob(b) => b.to_sql(ty, out),
        }
    }

    fn accepts(ty: &Type) -> bool {
        matches!(
            *ty,
            Type::INT2
                | Type::INT4
                | Type::INT8
                | Type::FLOAT8
                | Type::BOOL
                | Type::TEXT
                | Type::VARCHAR
                | Type::BYTEA
        )
    }

    to_sql_checked!();
}

fn row_of(row: &postgres::Row) -> DbResult<Row> {
    let get = |i: usize| -> Result<Value, postgres::Error> {
        Ok(match *row.columns()[i].type_() {
            Type::INT8 => row.try_get::<_, Option<i64>>(i)?.into(),
            Type::INT4 => row.try_get::<_, Option<i32>>(i)?.map(i64::from).into(),
            Type::INT2 => row.try_get::<_, Option<i16>>(i)?.map(i64::from).into(),
            Type::FLOAT8 => row.try_get::<_, Option<f64>>(i)?.into(),
            Type::BOOL => row.try_get::<_, Option<bool>>(i)?.into(),
            Type::BYTEA => row.try_get::<_, Option<Vec<u8>>>(i)?.into(),
            _ => row.try_get::<_, Option<String>>(i)?.into(),
        })
    };
    (0..row.len())
        .map(get)
        .collect::<Result<Vec<_>, _>>()
        .map(Row)
        .map_err(error)
}

fn params(values: &[Value]) -> Vec<&(dyn ToSql + Sync)> {
    values.iter().map(|v| v as &(dyn ToSql + Sync)).collect()
}

impl Db for Postgres {
    fn batch(&mut self, sql: &str) -> DbResult<()> {
        self.client.batch_execute(sql).map_err(error)
    }

    fn execute(&mut self, sql: &'static str, values: &[Value]) -> DbResult<u64> {
        let statement = self.statement(sql)?;
        self.client
            .execute(&statement, &params(values))
            .map_err(error)
    }

    fn query(&mut self, sql: &'static str, values: &[Value]) -> DbResult<Vec<Row>> {
        let statement = self.statement(sql)?;
        self.client
            .query(&statement, &params(values))
            .map_err(error)?
            .iter()
            .map(row_of)
            .collect()
    }

    fn begin_exclusive(&mut self) -> DbResult<()> {
        self.batch(&format!(
            "BEGIN; SELECT pg_advisory_xact_lock({SCHEMA_LOCK})"
        ))
    }

    fn announce(&mut self, channel: &'static str, payloads: Vec<String>) -> DbResult<()> {
        if payloads.is_empty() {
            return Ok(());
        }
        self.client
            .execute(
                "SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p",
                &[&channel, &payloads],
            )
            .map(drop)
            .map_err(error)
    }

    fn schema_version(&mut self) -> DbResult<usize> {
        self.batch(
            "CREATE TABLE IF NOT EXISTS claude_proxy_schema (version BIGINT NOT NULL);
             INSERT INTO claude_proxy_schema SELECT 0 WHERE NOT EXISTS (SELECT 1 FROM claude_proxy_schema)",
        )?;
        let row = self
            .client
            .query_one("SELECT version FROM claude_proxy_schema", &[])
            .map_err(error)?;
        Ok(row.get::<_, i64>(0).max(0) as usize)
    }

    fn set_schema_version(&mut self, version: usize) -> DbResult<()> {
        self.client
            .execute(
                "UPDATE claude_proxy_schema SET version = $1",
                &[&(version as i64)],
            )
            .map(drop)
            .map_err(error)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn placeholders_are_numbered_as_postgresql_writes_them() {
        assert_eq!(
            super::numbered("SELECT a FROM t WHERE b = ?1 AND c > ?12"),
            "SELECT a FROM t WHERE b = $1 AND c > $12"
        );
    }
}
