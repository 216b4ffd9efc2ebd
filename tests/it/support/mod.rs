//! Shared by the integration tests: the proxy program on a free port (the one launcher, in
//! `proxy`), an SSE reader, the per-test time limit, and checks on processes.
#![allow(dead_code)]

pub mod anthropic;
pub mod mcp_http;
pub mod nginx;
pub mod postgres;
pub mod proxy;
pub mod real;
pub mod sse;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;

pub use proxy::Proxy;
pub use sse::{SseEvent, SseReader};

/// A prompt for the fake CLI: start a grandchild that ignores SIGTERM, say "ready", then hang
/// silent. See [`SseReader::family_pids`].
pub const FAMILY: &str = "@grandchild\n@text ready\n@hang";

/// The fake CLI, built by cargo with the tests.
pub fn fake_cli() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_fake-claude"))
}

/// A place of the test's own, with a `claude` in it that records each of its runs (not the
/// proxy's `claude auth status`), then becomes the fake CLI.
pub struct FakeInstall {
    pub dir: tempfile::TempDir,
}

impl FakeInstall {
    pub fn new() -> Self {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let script = format!(
            "#!/bin/sh\n[ \"$1\" = auth ] || echo $$ >> '{}/runs'\nexec '{}' \"$@\"\n",
            dir.path().display(),
            fake_cli().display()
        );
        let path = dir.path().join("claude");
        std::fs::write(&path, script).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        Self { dir }
    }

    pub fn cli_path(&self) -> PathBuf {
        self.dir.path().join("claude")
    }

    /// How many times the CLI was started.
    pub fn runs(&self) -> usize {
        std::fs::read_to_string(self.dir.path().join("runs"))
            .map(|s| s.lines().count())
            .unwrap_or(0)
    }
}

/// The proxy program with the fake CLI, in a place of its own.
pub struct TestServer {
    pub proxy: Proxy,
    pub addr: SocketAddr,
    pub fake: FakeInstall,
    pub client: reqwest::Client,
}

impl TestServer {
    pub async fn start() -> Self {
        Self::with_args(&[]).await
    }

    /// Starts with these flags on top of the test defaults.
    pub async fn with_args(args: &[&str]) -> Self {
        let fake = FakeInstall::new();
        let cli = fake.cli_path().display().to_string();
        let workdir = fake.dir.path().join("work").display().to_string();
        let mut argv = vec![
            "--cli-path",
            &cli,
            "--stop-grace-secs",
            "2",
            "--workdir",
            &workdir,
        ];
        argv.extend_from_slice(args);
        let proxy = Proxy::launch(fake.dir.path(), &[], &argv);
        Self {
            addr: proxy.addr,
            client: proxy.client.clone(),
            proxy,
            fake,
        }
    }

    pub fn url(&self, path: &str) -> String {
        self.proxy.url(path)
    }

    pub async fn post_json(&self, path: &str, body: serde_json::Value) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// Opens /agent/stream with this prompt.
    pub async fn stream(&self, prompt: &str) -> SseReader {
        let response = self
            .post_json("/agent/stream", serde_json::json!({"prompt": prompt}))
            .await;
        assert_eq!(
            response.status(),
            200,
            "stream refused: {:?}",
            response.text().await
        );
        SseReader::new(response)
    }

    /// Runs a whole stream and returns its events.
    pub async fn stream_all(&self, prompt: &str) -> Vec<SseEvent> {
        self.stream(prompt).await.collect_all().await
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.unwrap()
    }

    pub async fn delete(&self, path: &str) -> reqwest::Response {
        self.client.delete(self.url(path)).send().await.unwrap()
    }

    /// Starts an agent in the background with this prompt: its id and its CLI's pid.
    pub async fn start_agent(&self, prompt: &str) -> (String, u32) {
        let response = self
            .post_json("/agent/start", serde_json::json!({"prompt": prompt}))
            .await;
        assert_eq!(
            response.status(),
            200,
            "start refused: {:?}",
            response.text().await
        );
        let started: serde_json::Value = response.json().await.unwrap();
        assert_eq!(started["status"], "started");
        (
            started["agent_id"].as_str().unwrap().to_owned(),
            started["pid"].as_u64().unwrap() as u32,
        )
    }

    /// POST /agent/stop/{id}.
    pub async fn stop(&self, agent_id: &str) -> reqwest::Response {
        self.client
            .post(self.url(&format!("/agent/stop/{agent_id}")))
            .send()
            .await
            .unwrap()
    }

    pub async fn health(&self) -> serde_json::Value {
        self.get("/health").await.json().await.unwrap()
    }

    /// One metric's value from /metrics (the sum over its labels), 0 when it has none yet.
    pub async fn metric(&self, name: &str) -> f64 {
        self.proxy.metric(name).await
    }

    /// Asks the server to shut down as `docker stop` does, and waits for it to exit.
    pub async fn shutdown(&mut self) -> std::io::Result<()> {
        self.trigger_shutdown().await.unwrap()
    }

    /// Asks the server to shut down; the task resolves once it has, Ok for a clean exit.
    pub fn trigger_shutdown(&mut self) -> JoinHandle<std::io::Result<()>> {
        let exited = self.proxy.terminate();
        tokio::spawn(async move {
            let status = exited.await.unwrap();
            if status.success() {
                Ok(())
            } else {
                Err(std::io::Error::other(format!(
                    "the server exited with {status}"
                )))
            }
        })
    }
}

/// How long a test may take before it fails, saying so, instead of hanging; a load test
/// states its own.
pub const TEST_LIMIT: Duration = Duration::from_secs(60);

/// Runs a test's body, failing it when it takes longer than `limit`: a hang then fails within
/// that time, with a message, rather than at the proxy's ten-minute idle timeout.
pub async fn within<T>(limit: Duration, test: impl Future<Output = T>) -> T {
    match tokio::time::timeout(limit, test).await {
        Ok(out) => out,
        Err(_) => panic!(
            "the test ran past its limit of {limit:?}: something it waited for never happened"
        ),
    }
}

/// One step of a test that [`within`] guards as a whole, failing with the step's name when it
/// takes longer than `limit`: where a test hangs, the failure says at which step.
pub async fn step<T>(what: &str, limit: Duration, step: impl Future<Output = T>) -> T {
    match tokio::time::timeout(limit, step).await {
        Ok(out) => out,
        Err(_) => panic!("{what}: not done after {limit:?}"),
    }
}

/// The page at `url` as headless Chromium (Debian's; scripts/test installs it) leaves it once
/// its scripts have had `budget_ms` of (virtual) time.
pub async fn rendered_dom(url: &str, budget_ms: u32) -> String {
    let profile = tempfile::tempdir().unwrap();
    let output = tokio::process::Command::new("chromium")
        .args([
            "--headless",
            // Root (as in CI) cannot use Chromium's own sandbox.
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            &format!("--user-data-dir={}", profile.path().display()),
            &format!("--virtual-time-budget={budget_ms}"),
            "--dump-dom",
            url,
        ])
        .output()
        .await
        .expect("chromium (Debian's package; scripts/test installs it)");
    assert!(output.status.success(), "{}", printed(&output));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// What a program printed, stdout then stderr, for a test's report.
pub fn printed(output: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Whether a process still exists; a zombie, dead but not yet reaped by its new parent,
/// does not count.
pub fn process_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next());
            !matches!(state, Some("Z") | Some("X"))
        }
        Err(_) => false,
    }
}

/// Whether the proxy has reaped its child `pid`: no process of that pid at all, not even a
/// zombie, which is what a child the proxy forgot to wait for becomes. (Its grandchildren are
/// not its to reap: for them, see [`process_alive`].)
pub fn reaped(pid: u32) -> bool {
    !std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// Waits for a condition that the system brings about on its own time (a process dying, a
/// file appearing), checking it often; fails the test if it has not happened within `limit`.
pub async fn eventually(what: &str, limit: Duration, mut condition: impl FnMut() -> bool) {
    let start = Instant::now();
    while !condition() {
        assert!(
            start.elapsed() < limit,
            "{what}: still not so after {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// [`eventually`], for a condition that must be asked over the network.
pub async fn until<F, Fut>(what: &str, limit: Duration, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    while !condition().await {
        assert!(
            start.elapsed() < limit,
            "{what}: still not so after {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub async fn process_gone(pid: u32) {
    eventually(
        &format!("process {pid} is gone"),
        Duration::from_secs(15),
        || !process_alive(pid),
    )
    .await;
}

/// A process and every process below it, by walking /proc.
pub fn process_tree(root: u32) -> Vec<u32> {
    let mut parents: Vec<(u32, u32)> = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        if let Some(ppid) = rest.split_whitespace().nth(1).and_then(|p| p.parse().ok()) {
            parents.push((pid, ppid));
        }
    }
    let mut tree = vec![root];
    let mut i = 0;
    while i < tree.len() {
        let parent = tree[i];
        tree.extend(
            parents
                .iter()
                .filter(|(_, ppid)| *ppid == parent)
                .map(|(pid, _)| *pid),
        );
        i += 1;
    }
    tree
}

/// Whether every thread of process `pid` is stopped by a signal (state `T`).
pub fn all_threads_stopped(pid: u32) -> bool {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .map(|task| std::fs::read_to_string(task.unwrap().path().join("stat")).unwrap())
        .all(|stat| {
            stat.rsplit_once(')')
                .unwrap()
                .1
                .trim_start()
                .starts_with('T')
        })
}
