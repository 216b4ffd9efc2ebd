//! The `claude-proxy` program run as a separate process, as operators run it.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

use super::SseReader;

pub const PROGRAM: &str = env!("CARGO_BIN_EXE_claude-proxy");

/// The program with a clean environment: PATH, a quiet log filter, and the given variables.
pub fn command(env: &[(&str, &str)]) -> Command {
    let mut command = Command::new(PROGRAM);
    command
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap())
        .env("RUST_LOG", "claude_proxy=info");
    for (name, value) in env {
        command.env(name, value);
    }
    command
}

/// A running claude-proxy process on a free port.
pub struct Proxy {
    pub child: Child,
    pub base: String,
    pub client: reqwest::Client,
    log: Arc<Mutex<Vec<String>>>,
}

impl Proxy {
    /// Starts the program in `cwd` with `env` (plus PROXY_PORT=0) and waits for its address.
    /// Requests present the first client key of PROXY_API_KEY, if it is set.
    pub fn start(cwd: &Path, env: &[(&str, &str)]) -> Self {
        let mut all = vec![("PROXY_PORT", "0")];
        all.extend_from_slice(env);
        let mut child = command(&all)
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
                if let Some((_, addr)) = line.split_once("listening on ") {
                    // The rest of a pretty line, or the rest of a JSON log's message.
                    let addr = addr
                        .split(|c: char| c == '"' || c.is_whitespace())
                        .next()
                        .unwrap_or(addr);
                    let _ = tx.send(addr.to_owned());
                }
                kept.lock().unwrap().push(line);
            }
        });
        let base = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the server logs its address");
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
            .build()
            .unwrap();
        Self {
            child,
            base,
            client,
            log,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
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
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.child.id() as i32), signal).unwrap();
    }

    /// The most memory the server has held so far, in bytes.
    pub fn peak_rss(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
        line.split_whitespace()
            .nth(1)
            .unwrap()
            .parse::<u64>()
            .unwrap()
            * 1024
    }

    /// What the server has logged so far.
    pub fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
