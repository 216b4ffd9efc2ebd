//! PostgreSQL for the tests: `scripts/test` starts one server for the run (Debian's package, in
//! a temporary directory) and names it in `PROXY_TEST_POSTGRES`; each test makes a database of
//! its own in it. Without it the tests that need it fail, and say how to run them.

use postgres::{Client, NoTls};

/// A database of the test's own, empty until a proxy migrates it.
pub struct TestDatabase {
    pub name: String,
    server: String,
}

impl TestDatabase {
    pub fn new() -> Self {
        let server = server();
        let name = format!("test_{}", uuid::Uuid::new_v4().simple());
        let mut admin = connect(&server);
        let create = format!("CREATE DATABASE {name}");
        off_the_runtime(move || admin.batch_execute(&create)).unwrap();
        Self { name, server }
    }

    /// The `postgres://` URL a proxy is given.
    pub fn url(&self) -> String {
        // postgres://USER@HOST/DATABASE?PARAMETERS, with this test's database.
        let (address, parameters) = self.server.split_once('?').unwrap_or((&self.server, ""));
        let (server, _) = address
            .rsplit_once('/')
            .expect("PROXY_TEST_POSTGRES names a database");
        format!("{server}/{}?{parameters}", self.name)
    }

    /// A connection of the test's own, to look at what the proxies wrote. Use it through
    /// [`off_the_runtime`]: the blocking client runs a runtime of its own.
    pub fn connect(&self) -> Client {
        connect(&self.url())
    }
}

fn connect(url: &str) -> Client {
    let target = url.to_owned();
    off_the_runtime(move || Client::connect(&target, NoTls))
        .unwrap_or_else(|err| panic!("PostgreSQL at {url}: {err}"))
}

/// Runs `work` on a thread of its own, away from the test's runtime.
pub fn off_the_runtime<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::spawn(work)
        .join()
        .expect("the work does not panic")
}

/// The server `scripts/test` started.
fn server() -> String {
    std::env::var("PROXY_TEST_POSTGRES").unwrap_or_else(|_| {
        panic!(
            "PROXY_TEST_POSTGRES is not set: run the tests with scripts/test, which starts PostgreSQL for them"
        )
    })
}
