//! One connection to a database, whichever engine: what the store's SQL needs of SQLite and
//! of PostgreSQL, so that the store is written once. Statements are written with `?1`, `?2`...
//! placeholders and in the SQL both engines speak (`ON CONFLICT`, `GREATEST`, `CAST(... AS
//! BIGINT)`); a backend translates what it must (PostgreSQL's `$1`) and gives SQLite the
//! functions it lacks.

use std::fmt;

use chrono::{DateTime, SecondsFormat, Utc};

/// A time as the store writes it: RFC 3339 in UTC, to the nanosecond, so that text order is
/// time order.
pub fn stored_time(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Nanos, true)
}

/// A value bound to a statement or read from a row.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
    Bool(bool),
}

impl From<i64> for Value {
    fn from(n: i64) -> Self {
        Value::Int(n)
    }
}

impl From<u64> for Value {
    fn from(n: u64) -> Self {
        Value::Int(i64::try_from(n).unwrap_or(i64::MAX))
    }
}

impl From<usize> for Value {
    fn from(n: usize) -> Self {
        Value::from(n as u64)
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Bool(b)
    }
}

impl From<f64> for Value {
    fn from(x: f64) -> Self {
        Value::Real(x)
    }
}

impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::Text(s)
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::Text(s.to_owned())
    }
}

impl From<Vec<u8>> for Value {
    fn from(b: Vec<u8>) -> Self {
        Value::Blob(b)
    }
}

impl From<&[u8]> for Value {
    fn from(b: &[u8]) -> Self {
        Value::Blob(b.to_vec())
    }
}

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Self {
        v.map_or(Value::Null, Into::into)
    }
}

/// A row read back: its columns in the order the statement named them.
#[derive(Debug, Clone, Default)]
pub struct Row(pub Vec<Value>);

impl Row {
    fn at(&self, i: usize) -> &Value {
        self.0.get(i).unwrap_or(&Value::Null)
    }

    pub fn int(&self, i: usize) -> Option<i64> {
        match *self.at(i) {
            Value::Int(n) => Some(n),
            Value::Bool(b) => Some(i64::from(b)),
            Value::Real(x) => Some(x as i64),
            _ => None,
        }
    }

    pub fn real(&self, i: usize) -> Option<f64> {
        match *self.at(i) {
            Value::Real(x) => Some(x),
            Value::Int(n) => Some(n as f64),
            _ => None,
        }
    }

    /// SQLite keeps a boolean as an integer.
    pub fn bool(&self, i: usize) -> Option<bool> {
        match *self.at(i) {
            Value::Bool(b) => Some(b),
            Value::Int(n) => Some(n != 0),
            _ => None,
        }
    }

    pub fn text(&self, i: usize) -> Option<&str> {
        match self.at(i) {
            Value::Text(s) => Some(s),
            _ => None,
        }
    }

    pub fn blob(&self, i: usize) -> Option<&[u8]> {
        match self.at(i) {
            Value::Blob(b) => Some(b),
            Value::Text(s) => Some(s.as_bytes()),
            _ => None,
        }
    }
}

/// A database that failed, in its own words.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct DbError(pub String);

pub type DbResult<T> = Result<T, DbError>;

/// One connection. Statements are `&'static str`, so a backend may keep each one prepared.
pub trait Db: Send + fmt::Debug {
    /// Runs statements with no parameters, one after another (migrations).
    fn batch(&mut self, sql: &str) -> DbResult<()>;

    /// Runs a statement; returns how many rows it changed.
    fn execute(&mut self, sql: &'static str, params: &[Value]) -> DbResult<u64>;

    fn query(&mut self, sql: &'static str, params: &[Value]) -> DbResult<Vec<Row>>;

    /// Begins a transaction that no other writer of the schema runs beside (migrations, and
    /// ending the agents a crash left running).
    fn begin_exclusive(&mut self) -> DbResult<()>;

    /// How many migrations the database has had; set within a transaction.
    fn schema_version(&mut self) -> DbResult<usize>;
    fn set_schema_version(&mut self, version: usize) -> DbResult<()>;

    /// Tells the database's other clients something on `channel`, when the transaction commits
    /// (PostgreSQL's NOTIFY). A database with one client has nobody to tell.
    fn announce(&mut self, _channel: &'static str, _payloads: Vec<String>) -> DbResult<()> {
        Ok(())
    }

    /// Why what this connection writes no longer reaches the database it opened (its file
    /// deleted or replaced under it: the writes go to a file nobody will open again); None
    /// while it does. Cheap: asked at every write and every few seconds.
    fn lost(&self) -> Option<String> {
        None
    }

    fn query_row(&mut self, sql: &'static str, params: &[Value]) -> DbResult<Option<Row>> {
        Ok(self.query(sql, params)?.into_iter().next())
    }

    /// Runs `work` in a transaction: committed if it succeeds, rolled back if it fails.
    fn transaction<T>(&mut self, work: impl FnOnce(&mut Self) -> DbResult<T>) -> DbResult<T>
    where
        Self: Sized,
    {
        self.batch("BEGIN")?;
        finish(self, work)
    }

    /// [`Db::transaction`], begun with [`Db::begin_exclusive`].
    fn exclusive<T>(&mut self, work: impl FnOnce(&mut Self) -> DbResult<T>) -> DbResult<T>
    where
        Self: Sized,
    {
        self.begin_exclusive()?;
        finish(self, work)
    }
}

fn finish<D: Db, T>(db: &mut D, work: impl FnOnce(&mut D) -> DbResult<T>) -> DbResult<T> {
    match work(db) {
        Ok(value) => {
            db.batch("COMMIT")?;
            Ok(value)
        }
        Err(err) => {
            let _ = db.batch("ROLLBACK");
            Err(err)
        }
    }
}
