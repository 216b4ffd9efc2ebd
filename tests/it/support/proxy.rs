//! The one launcher of the proxy, for the tests and the benchmark: the `claude-proxy` program
//! run as a separate process, as operators run it, on a port it picks itself and reports.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

use super::SseReader;

pub const PROGRAM: &str = env!("CARGO_BIN_EXE_claude-proxy");

/// The longest a server may take to say where it listens.
const START_LIMIT: Duration = Duration::from_secs(30);

/// The program with a clean environment: PATH, a quiet log filter, and the given variables.
/// The CLI runs unconfined unless a test asks for `PROXY_SANDBOX` (`tests/it/sandbox.rs`): the
/// other tests watch its processes from outside, by the pids it reports.
pub fn command(env: &[(&str, &str)]) -> Command {
    let mut command = Command::new(PROGRAM);
    command
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap())
        .env("RUST_LOG", "claude_proxy=info")
        .env("PROXY_SANDBOX", "off");
    for (name, value) in env {
        command.env(name, value);
    }
    command
}

/// A running claude-proxy process on a port of its own choosing.
pub struct Proxy {
    child: Option<Child>,
    pid: u32,
    pub addr: SocketAddr,
    pub base: String,
    /// Presents the first client key of PROXY_API_KEY, if it is set.
    pub client: reqwest::Client,
    log: Arc<Mutex<Vec<String>>>,
}

impl Proxy {
    /// Starts the program in `cwd` with `env` (plus PROXY_PORT=0) and waits for its address.
    pub fn start(cwd: &Path, env: &[(&str, &str)]) -> Self {
        Self::launch(cwd, env, &[])
    }

    /// Starts the program with flags too.
    pub fn launch(cwd: &Path, env: &[(&str, &str)], args: &[&str]) -> Self {
        Self::launch_in(&[], cwd, env, args)
    }

    /// Starts the program through `wrapper`, a command that ends by running its arguments
    /// (such as `unshare --mount ... sh -c '...; exec "$0" "$@"'`), in the same process.
    pub fn launch_in(wrapper: &[&str], cwd: &Path, env: &[(&str, &str)], args: &[&str]) -> Self {
        let mut all = vec![("PROXY_PORT", "0")];
        all.extend_from_slice(env);
        let mut command = command(&all);
        if let Some((program, before)) = wrapper.split_first() {
            let proxy = command;
            command = Command::new(program);
            command
                .env_clear()
                .envs(proxy.get_envs().filter_map(|(k, v)| Some((k, v?))))
                .args(before)
                .arg(PROGRAM);
        }
        // A test process that dies, or ends without dropping this (a server shared by tests
        // lives in a static), takes its server along: the server is told as an operator's
        // SIGTERM would, and ends its agents. The signal comes when the thread that started it
        // ends, which for a test's own server is the end of the test.
        // SAFETY: prctl is async-signal-safe, and nothing else runs between fork and exec.
        #[allow(unsafe_code)]
        unsafe {
            use std::os::unix::process::CommandExt;
            command.pre_exec(|| {
                nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGTERM)
                    .map_err(std::io::Error::from)
            });
        }
        let mut child = command
            .args(args)
            .current_dir(cwd)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = BufReader::new(child.stderr.take().unwrap());
        let (tx, rx) = std::sync::mpsc::channel();
        let log = Arc::new(Mutex::new(Vec::new()));
        let kept = Arc::clone(&log);
        // Keep reading the log so the server never blocks on it; hand over the address.
        std::thread::spawn(move || {
            for line in stderr.lines().map_while(Result::ok) {
                if let Some((_, addr)) = line.split_once("listening on http://") {
                    // The rest of a pretty line, or the rest of a JSON log's message.
                    let addr = addr
                        .split(|c: char| c == '"' || c.is_whitespace())
                        .next()
                        .unwrap_or(addr);
                    let _ = tx.send(addr.parse::<SocketAddr>().ok());
                }
                kept.lock().unwrap().push(line);
            }
        });
        let addr = match rx.recv_timeout(START_LIMIT) {
            Ok(Some(addr)) => addr,
            _ => {
                let _ = child.kill();
                panic!(
                    "the server did not say where it listens within {START_LIMIT:?}; its log:\n{}",
                    log.lock().unwrap().join("\n")
                )
            }
        };
        let key = env
            .iter()
            .find(|(name, _)| *name == "PROXY_API_KEY")
            .and_then(|(_, keys)| keys.split(',').next());
        let mut headers = reqwest::header::HeaderMap::new();
        if let Some(key) = key {
            headers.insert(
                "authorization",
                format!("Bearer {}", key.trim()).parse().unwrap(),
            );
        }
        let client = reqwest::Client::builder()
            .default_headers(headers)
            // The server closes a connection idle for PROXY_HEADER_READ_TIMEOUT_SECS (10 s): a
            // pooled connection reused at that moment fails. A client lets go of them sooner.
            .pool_idle_timeout(Duration::from_secs(5))
            .build()
            .unwrap();
        Self {
            pid: child.id(),
            child: Some(child),
            addr,
            base: format!("http://{addr}"),
            client,
            log,
        }
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// `GET /health`'s body, asked with `key` (None: as a stranger).
    pub async fn health(&self, key: Option<&str>) -> Value {
        let mut request = self.client.get(self.url("/health"));
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        request.send().await.unwrap().json().await.unwrap()
    }

    /// One metric's value from /metrics (the sum over its labels), 0 when it has none yet.
    pub async fn metric(&self, name: &str) -> f64 {
        let text = self.get("/metrics").await.text().await.unwrap();
        text.lines()
            .filter(|line| {
                line.strip_prefix(name)
                    .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{'))
            })
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.unwrap()
    }

    pub async fn post(&self, path: &str, body: &Value) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .unwrap()
    }

    pub async fn stream_with(&self, body: &Value) -> SseReader {
        let response = self.post("/agent/stream", body).await;
        assert_eq!(response.status(), 200);
        SseReader::new(response)
    }

    pub async fn stream(&self, prompt: &str) -> SseReader {
        self.stream_with(&serde_json::json!({ "prompt": prompt }))
            .await
    }

    pub fn signal(&self, signal: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid as i32), signal).unwrap();
    }

    /// Sends SIGTERM, as `docker stop` does; the task resolves to the exit status.
    pub fn terminate(&mut self) -> tokio::task::JoinHandle<ExitStatus> {
        let mut child = self.child.take().expect("the server runs");
        self.signal(nix::sys::signal::Signal::SIGTERM);
        tokio::task::spawn_blocking(move || child.wait().unwrap())
    }

    /// Waits for the server to exit by itself (after a signal sent to it).
    pub async fn exited(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("the server runs");
        tokio::task::spawn_blocking(move || child.wait().unwrap())
            .await
            .unwrap()
    }

    /// The most memory the server has held so far, in bytes.
    pub fn peak_rss(&self) -> u64 {
        self.status_kib("VmHWM:") * 1024
    }

    /// The memory the server holds now, in bytes.
    pub fn rss(&self) -> u64 {
        self.status_kib("VmRSS:") * 1024
    }

    fn status_kib(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid)).unwrap();
        let line = status.lines().find(|l| l.starts_with(field)).unwrap();
        line.split_whitespace()
            .nth(1)
            .unwrap()
            .parse::<u64>()
            .unwrap()
    }

    /// CPU time the server has used: user, and system (the kernel on its behalf).
    pub fn cpu(&self) -> (Duration, Duration) {
        cpu_of(self.pid)
    }

    /// What the server has logged so far.
    pub fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// Whether a line the server has logged so far contains `text`.
    pub fn has_logged(&self, text: &str) -> bool {
        self.log
            .lock()
            .unwrap()
            .iter()
            .any(|line| line.contains(text))
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// CPU time process `pid` has used: user, and system (the kernel on its behalf).
pub fn cpu_of(pid: u32) -> (Duration, Duration) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    let ticks = |i: usize| Duration::from_millis(fields[i].parse::<u64>().unwrap() * 10);
    (ticks(11), ticks(12))
}
