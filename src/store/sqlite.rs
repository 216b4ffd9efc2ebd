//! SQLite (WAL mode), through rusqlite with SQLite built in: one file, no server. Its
//! migrations are embedded and versioned with `PRAGMA user_version`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::functions::FunctionFlags;
use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, ToSql, params_from_iter};

use super::db::{Db, DbError, DbResult, Row, Value};

/// The migrations, in order: the database's `user_version` is how many have run. PostgreSQL's
/// have the same versions.
pub const MIGRATIONS: &[&str] = &[
    include_str!("migrations/sqlite/0001_agents.sql"),
    include_str!("migrations/sqlite/0002_instances.sql"),
    include_str!("migrations/sqlite/0003_counts.sql"),
    include_str!("migrations/sqlite/0004_conversations.sql"),
    include_str!("migrations/sqlite/0005_usage.sql"),
    include_str!("migrations/sqlite/0006_webhooks.sql"),
    include_str!("migrations/sqlite/0007_agent_run.sql"),
];

#[derive(Debug)]
pub struct Sqlite {
    conn: Connection,
    path: PathBuf,
    /// The device and inode of the file opened, to tell when the path names another file, or
    /// none (see [`Db::lost`]).
    file: Option<(u64, u64)>,
}

/// The device and inode `path` names now.
fn identity(path: &Path) -> std::io::Result<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).map(|meta| (meta.dev(), meta.ino()))
}

impl Sqlite {
    pub fn open(path: &Path) -> DbResult<Self> {
        let conn = Connection::open(path).map_err(error)?;
        let file = identity(path).ok();
        conn.busy_timeout(Duration::from_secs(5)).map_err(error)?;
        conn.query_row("PRAGMA journal_mode = WAL", [], |row| {
            row.get::<_, String>(0)
        })
        .map_err(error)?;
        conn.execute_batch("PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = OFF;")
            .map_err(error)?;
        // PostgreSQL's GREATEST, which SQLite spells as a two-argument MAX.
        conn.create_scalar_function(
            "greatest",
            2,
            FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
            |ctx| Ok(ctx.get::<i64>(0)?.max(ctx.get::<i64>(1)?)),
        )
        .map_err(error)?;
        Ok(Self {
            conn,
            path: path.to_owned(),
            file,
        })
    }
}

fn error(err: rusqlite::Error) -> DbError {
    DbError(err.to_string())
}

impl ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(match self {
            Value::Null => ValueRef::Null,
            Value::Int(n) => ValueRef::Integer(*n),
            Value::Bool(b) => ValueRef::Integer(i64::from(*b)),
            Value::Real(x) => ValueRef::Real(*x),
            Value::Text(s) => ValueRef::Text(s.as_bytes()),
            Value::Blob(b) => ValueRef::Blob(b),
        }))
    }
}

impl Db for Sqlite {
    fn batch(&mut self, sql: &str) -> DbResult<()> {
        self.conn.execute_batch(sql).map_err(error)
    }

    fn execute(&mut self, sql: &'static str, params: &[Value]) -> DbResult<u64> {
        let mut statement = self.conn.prepare_cached(sql).map_err(error)?;
        statement
            .execute(params_from_iter(params))
            .map(|n| n as u64)
            .map_err(error)
    }

    fn query(&mut self, sql: &'static str, params: &[Value]) -> DbResult<Vec<Row>> {
        let mut statement = self.conn.prepare_cached(sql).map_err(error)?;
        let columns = statement.column_count();
        let rows = statement
            .query_map(params_from_iter(params), |row| {
                (0..columns)
                    .map(|i| {
                        Ok(match row.get_ref(i)? {
                            ValueRef::Null => Value::Null,
                            ValueRef::Integer(n) => Value::Int(n),
                            ValueRef::Real(x) => Value::Real(x),
                            ValueRef::Text(s) => Value::Text(String::from_utf8_lossy(s).into()),
                            ValueRef::Blob(b) => Value::Blob(b.to_vec()),
                        })
                    })
                    .collect::<rusqlite::Result<Vec<_>>>()
                    .map(Row)
            })
            .map_err(error)?;
        rows.collect::<rusqlite::Result<_>>().map_err(error)
    }

    fn lost(&self) -> Option<String> {
        let opened = self.file?;
        let what = match identity(&self.path) {
            Ok(now) if now == opened => return None,
            Ok(_) => "was replaced by another file",
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => "was deleted",
            Err(err) => {
                return Some(format!(
                    "the database file {} cannot be checked: {err}",
                    self.path.display()
                ));
            }
        };
        Some(format!(
            "the database file {} {what} while the proxy ran (was PROXY_DATA_DIR removed?): nothing written now is kept after a restart; restart the proxy (README, Troubleshooting)",
            self.path.display()
        ))
    }

    fn begin_exclusive(&mut self) -> DbResult<()> {
        self.batch("BEGIN IMMEDIATE")
    }

    fn schema_version(&mut self) -> DbResult<usize> {
        self.conn
            .query_row("PRAGMA user_version", [], |row| row.get::<_, i64>(0))
            .map(|v| v.max(0) as usize)
            .map_err(error)
    }

    fn set_schema_version(&mut self, version: usize) -> DbResult<()> {
        self.conn
            .pragma_update(None, "user_version", version as i64)
            .map_err(error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_deleted_or_replaced_under_it_is_told() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.db");
        let db = Sqlite::open(&path).unwrap();
        assert_eq!(db.lost(), None);
        std::fs::rename(&path, dir.path().join("moved.db")).unwrap();
        std::fs::write(&path, "").unwrap();
        assert!(db.lost().unwrap().contains("replaced"), "{:?}", db.lost());
        std::fs::remove_file(&path).unwrap();
        assert!(db.lost().unwrap().contains("deleted"), "{:?}", db.lost());
    }
}
