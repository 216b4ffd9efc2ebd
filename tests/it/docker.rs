//! The image and `compose.yaml` as the README says to use them, on a Docker engine, with the
//! real CLI in the container talking to the Messages API stand-in on this machine.
//! `scripts/test-docker` builds the image, names it in `CLAUDE_PROXY_IMAGE`, and runs these
//! (`--features docker-test`); without the feature `main.rs` leaves this module out.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::support::anthropic::{Reply, Rule, StandIn};
use crate::support::sse::{SseReader, complete_of};
use crate::support::{SseEvent, until, within};
use serde_json::{Value, json};
use tokio::process::Command;

const KEY: &str = "docker-test-key-0123456789";
/// A port the image does not use by default.
const PORT: &str = "18080";
/// Container starts, image builds by compose and CLI runs take longer than a unit test.
const LIMIT: Duration = Duration::from_secs(180);
/// What a tool runs until it is stopped, found by its argument.
/// (The CLI refuses a bare long `sleep`.)
const SLEEPER: &str = "timeout 1717.25 tail -f /dev/null";
const WAIT: &str = "Wait until stopped.";

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn image() -> String {
    std::env::var("CLAUDE_PROXY_IMAGE")
        .expect("CLAUDE_PROXY_IMAGE names the image to test: run scripts/test-docker")
}

/// Runs a command, failing the test with its output when it fails.
async fn run(program: &str, args: &[&str]) -> String {
    let output = Command::new(program).args(args).output().await.unwrap();
    stdout_of_success(&format!("{program} {args:?}"), output)
}

/// What a command printed, once it succeeded; else the test fails with all it said.
fn stdout_of_success(what: &str, output: std::process::Output) -> String {
    assert!(
        output.status.success(),
        "{what}: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

async fn docker(args: &[&str]) -> String {
    run("docker", args).await
}

/// A container of the test's, removed with what it made when the test ends.
struct Container {
    name: String,
}

impl Container {
    /// `docker run -d` of the image with these options, as the README's run command, pointed at
    /// the stand-in.
    async fn run(tag: &str, standin: &StandIn, options: &[&str]) -> Self {
        let name = format!("claude-proxy-test-{tag}-{}", std::process::id());
        let base_url = format!("http://host.docker.internal:{}", standin.addr.port());
        let seccomp = format!(
            "seccomp={}",
            repo().join("deploy/seccomp-sandbox.json").display()
        );
        let image = image();
        let mut args = vec![
            "run",
            "-d",
            "--name",
            &name,
            "--add-host",
            "host.docker.internal:host-gateway",
            "--security-opt",
            &seccomp,
            "--security-opt",
            "systempaths=unconfined",
            // The image's interval is 30 s; the test asks more often, the check is the same.
            "--health-interval",
            "1s",
            "-e",
            "ANTHROPIC_BASE_URL",
        ];
        args.extend_from_slice(options);
        args.push(&image);
        let output = Command::new("docker")
            .args(&args)
            .env("ANTHROPIC_BASE_URL", &base_url)
            .output()
            .await
            .unwrap();
        assert!(
            output.status.success(),
            "docker run: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        Self { name }
    }

    async fn health_status(&self) -> String {
        docker(&["inspect", "-f", "{{.State.Health.Status}}", &self.name]).await
    }

    async fn until_healthy(&self) {
        until("the container is healthy", LIMIT, || async {
            let status = self.health_status().await;
            assert_ne!(status, "unhealthy", "{}", self.logs().await);
            status == "healthy"
        })
        .await;
    }

    /// The address on this machine where the container's `port` is published.
    async fn url(&self, port: &str, path: &str) -> String {
        let published = docker(&["port", &self.name, &format!("{port}/tcp")]).await;
        let published = published.lines().next().unwrap().to_owned();
        format!("http://{published}{path}")
    }

    async fn exec(&self, command: &[&str]) -> String {
        let mut args = vec!["exec", self.name.as_str()];
        args.extend_from_slice(command);
        docker(&args).await
    }

    /// Every process in the container but the `ps` that lists them: its pid, then its name.
    async fn processes(&self) -> Vec<(u32, String)> {
        self.exec(&["ps", "-eo", "pid=,comm="])
            .await
            .lines()
            .filter_map(|line| {
                let (pid, name) = line.trim().split_once(' ')?;
                Some((pid.parse().ok()?, name.trim().to_owned()))
            })
            .filter(|(_, name)| name != "ps")
            .collect()
    }

    async fn logs(&self) -> String {
        let output = Command::new("docker")
            .args(["logs", &self.name])
            .output()
            .await
            .unwrap();
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = std::process::Command::new("docker")
            .args(["rm", "-f", "-v", &self.name])
            .output();
    }
}

async fn stream(client: &reqwest::Client, url: &str, body: Value) -> Vec<SseEvent> {
    let response = client
        .post(url)
        .bearer_auth(KEY)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    SseReader::new(response).collect_all().await
}

fn result_of(events: &[SseEvent]) -> Value {
    events
        .iter()
        .map(SseEvent::json)
        .find(|event| event["type"] == "result")
        .unwrap_or_else(|| panic!("no result among {events:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_image_serves_streams_stops_agents_and_shuts_down_as_the_readme_says() {
    within(LIMIT, async {
        // The agent asked to wait runs a tool until it is stopped, whichever request comes first.
        let rule: Rule = Arc::new(|texts: &[String]| {
            let asked = texts.iter().any(|t| t == WAIT);
            asked.then(|| Reply::Bash(SLEEPER.to_owned()))
        });
        let standin =
            StandIn::start_for_containers(Some(rule), [Reply::Text("Hello from Docker.".into())])
                .await;
        let container = Container::run(
            "run",
            &standin,
            &[
                "-p",
                &format!("127.0.0.1::{PORT}"),
                "-e",
                &format!("PROXY_PORT={PORT}"),
                "-e",
                &format!("PROXY_API_KEY={KEY}"),
                // The stand-in takes an API key, which subscription mode keeps from the CLI.
                "-e",
                "CLAUDE_USE_SUBSCRIPTION=false",
                "-e",
                "ANTHROPIC_API_KEY=stand-in-key",
                "-e",
                "CLAUDE_ALLOWED_TOOLS=Bash",
            ],
        )
        .await;
        eprintln!("docker test: healthy");
        container.until_healthy().await;
        let client = reqwest::Client::new();

        // Without a key /health says only whether it is up; the rest is a client's.
        let health: Value = client
            .get(container.url(PORT, "/health").await)
            .bearer_auth(KEY)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(health["status"], "ok", "{health}");
        assert_eq!(health["sandbox"], "bwrap", "{health}");
        assert_eq!(health["cli"]["logged_in"], true, "{health}");
        assert_eq!(health["storage"]["kind"], "sqlite", "{health}");
        // The dashboard is inside the image's binary.
        let dashboard = client
            .get(container.url(PORT, "/ui/app.js").await)
            .send()
            .await
            .unwrap();
        assert_eq!(dashboard.status(), 200);
        assert!(
            dashboard.headers()["content-security-policy"]
                .to_str()
                .unwrap()
                .contains("script-src 'self'")
        );

        assert_eq!(container.exec(&["id", "-u"]).await, "10001");
        let processes = container.processes().await;
        assert!(processes.contains(&(1, "tini".to_owned())), "{processes:?}");

        eprintln!("docker test: streaming");
        let events = stream(
            &client,
            &container.url(PORT, "/agent/stream").await,
            json!({"prompt": "Say hello."}),
        )
        .await;
        assert_eq!(complete_of(&events)["status"], "completed");
        assert_eq!(result_of(&events)["result"], "Hello from Docker.");

        eprintln!("docker test: starting an agent that waits");
        // An agent whose tool runs until it is stopped.
        let started: Value = client
            .post(container.url(PORT, "/agent/start").await)
            .bearer_auth(KEY)
            .json(&json!({"prompt": WAIT}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let agent_id = started["agent_id"].as_str().unwrap().to_owned();
        eprintln!("docker test: started {started}");
        let tool_runs = tokio::time::timeout(Duration::from_secs(60), async {
            loop {
                let processes = container.exec(&["ps", "-eo", "args="]).await;
                if processes.contains(SLEEPER) {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
        .await;
        if tool_runs.is_err() {
            panic!(
                "the tool never ran.\nprocesses: {}\nagent: {}\nthe API was sent: {:?}\nlog: {}",
                container.exec(&["ps", "-eo", "args="]).await,
                client
                    .get(
                        container
                            .url(PORT, &format!("/agent/{agent_id}/events"))
                            .await
                    )
                    .bearer_auth(KEY)
                    .send()
                    .await
                    .unwrap()
                    .text()
                    .await
                    .unwrap(),
                standin
                    .requests()
                    .iter()
                    .map(|r| r["messages"]
                        .to_string()
                        .chars()
                        .take(300)
                        .collect::<String>())
                    .collect::<Vec<_>>(),
                container.logs().await
            );
        }
        eprintln!("docker test: stopping it");
        let stopped = client
            .post(
                container
                    .url(PORT, &format!("/agent/stop/{agent_id}"))
                    .await,
            )
            .bearer_auth(KEY)
            .send()
            .await
            .unwrap();
        assert_eq!(stopped.status(), 200);
        until("the agent has ended", LIMIT, || async {
            let agent: Value = client
                .get(container.url(PORT, &format!("/agent/{agent_id}")).await)
                .bearer_auth(KEY)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            agent["status"] != "running" && agent["status"] != "stopping"
        })
        .await;
        eprintln!("docker test: checking what is left");
        // tini, the proxy and its watchdog (a fork of the proxy), and nothing else.
        let mut left: Vec<String> = container
            .processes()
            .await
            .into_iter()
            .map(|(_, name)| name)
            .collect();
        left.sort();
        assert_eq!(left, ["claude-proxy", "claude-proxy", "tini"]);

        eprintln!("docker test: docker stop");
        docker(&["stop", &container.name]).await;
        let exit_code = docker(&["inspect", "-f", "{{.State.ExitCode}}", &container.name]).await;
        // 137 would be Docker's SIGKILL after its grace period.
        assert_eq!(exit_code, "0", "{}", container.logs().await);
    })
    .await;
}

/// A directory of this machine owned by `uid`, as a user's home or project would be.
fn owned_by(path: PathBuf, uid: u32) -> PathBuf {
    std::fs::create_dir_all(&path).unwrap();
    std::os::unix::fs::chown(&path, Some(uid), Some(uid)).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_uid_runs_the_image_with_its_mounted_login_and_project() {
    within(LIMIT, async {
        const UID: u32 = 4242;
        let standin =
            StandIn::start_for_containers(None, [Reply::Bash("echo made > by-agent.txt".into())]).await;
        let dir = tempfile::tempdir().unwrap();
        let claude = owned_by(dir.path().join("claude"), UID);
        let project = owned_by(dir.path().join("project"), UID);
        // A stored login, readable by its owner only, as `claude login` leaves it.
        let login = claude.join(".credentials.json");
        std::fs::write(
            &login,
            r#"{"claudeAiOauth":{"accessToken":"sk-ant-oat01-test","refreshToken":"sk-ant-ort01-test","expiresAt":4102444800000,"scopes":["user:inference"],"subscriptionType":"max"}}"#,
        )
        .unwrap();
        std::os::unix::fs::chown(&login, Some(UID), Some(UID)).unwrap();
        std::fs::set_permissions(
            &login,
            std::os::unix::fs::PermissionsExt::from_mode(0o600),
        )
        .unwrap();

        let container = Container::run(
            "uid",
            &standin,
            &[
                "--user",
                &format!("{UID}:0"),
                "-v",
                &format!("{}:/home/claude/.claude", claude.display()),
                "-v",
                &format!("{}:/home/claude/workspace", project.display()),
                "-p",
                "127.0.0.1::8000",
                "-e",
                &format!("PROXY_API_KEY={KEY}"),
                "-e",
                "CLAUDE_ALLOWED_TOOLS=Bash",
            ],
        )
        .await;
        container.until_healthy().await;
        let client = reqwest::Client::new();
        let health: Value = client
            .get(container.url("8000", "/health").await)
            .bearer_auth(KEY)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(health["cli"]["logged_in"], true, "{health}");
        assert_eq!(health["cli"]["auth_method"], "claude.ai", "{health}");

        let events = stream(
            &client,
            &container.url("8000", "/agent/stream").await,
            json!({"prompt": "Make a file."}),
        )
        .await;
        assert_eq!(complete_of(&events)["status"], "completed", "{events:?}");
        // The agent's workspace is the key's own, inside the mounted project.
        let made: Vec<PathBuf> = std::fs::read_dir(&project)
            .unwrap()
            .flatten()
            .map(|entry| entry.path().join("by-agent.txt"))
            .filter(|file| file.is_file())
            .collect();
        assert_eq!(made.len(), 1, "{events:?}");
        use std::os::unix::fs::MetadataExt;
        assert_eq!(std::fs::metadata(&made[0]).unwrap().uid(), UID);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_compose_up_serves_the_node_backend() {
    within(LIMIT, async {
        let standin =
            StandIn::start_for_containers(None, [Reply::Text("Hello through compose.".into())])
                .await;
        let project = format!("claude-proxy-test-{}", std::process::id());
        // The stand-in in place of the API: compose.yaml as it is, and this on top.
        let dir = tempfile::tempdir().unwrap();
        let overlay = dir.path().join("stand-in.yaml");
        std::fs::write(
            &overlay,
            format!(
                r#"services:
  claude-proxy:
    image: {image}
    environment:
      - ANTHROPIC_BASE_URL=http://host.docker.internal:{port}
      - ANTHROPIC_API_KEY=stand-in-key
      - CLAUDE_USE_SUBSCRIPTION=false
    extra_hosts:
      - "host.docker.internal:host-gateway"
"#,
                image = image(),
                port = standin.addr.port(),
            ),
        )
        .unwrap();
        let compose = Compose {
            project,
            files: [repo().join("compose.yaml"), overlay],
        };
        compose.run(&["up", "-d", "--build"]).await;
        let backend = compose.run(&["port", "backend", "3000"]).await;
        let client = reqwest::Client::new();
        // Compose starts the backend once the proxy is healthy; then it takes a moment to listen.
        until("the backend listens", LIMIT, || async {
            let asked = client.get(format!("http://{backend}/")).send().await;
            !matches!(asked, Err(err) if err.is_connect())
        })
        .await;
        let answer: Value = client
            .get(format!("http://{backend}/ask"))
            .query(&[("prompt", "Say hello.")])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(answer["result"], "Hello through compose.", "{answer}");
        assert_eq!(answer["is_error"], false, "{answer}");
    })
    .await;
}

/// A compose project of the test's, taken down with its volumes when the test ends.
struct Compose {
    project: String,
    files: [PathBuf; 2],
}

impl Compose {
    fn command(&self, args: &[&str]) -> std::process::Command {
        let program = std::env::var("COMPOSE").unwrap_or_else(|_| "docker-compose".to_owned());
        let mut words = program.split_whitespace();
        let mut command = std::process::Command::new(words.next().unwrap());
        command.args(words).args(["-p", &self.project]);
        for file in &self.files {
            command.arg("-f").arg(file);
        }
        command
            .args(args)
            .current_dir(repo())
            .env("CLAUDE_PROXY_KEY", KEY)
            // Free ports, whatever this machine runs.
            .env("CLAUDE_PROXY_PORT", "0")
            .env("BACKEND_PORT", "0")
            .env_remove("CLAUDE_CODE_OAUTH_TOKEN");
        command
    }

    async fn run(&self, args: &[&str]) -> String {
        let command = self.command(args);
        let output = Command::from(command).output().await.unwrap();
        stdout_of_success(&format!("compose {args:?}"), output)
    }
}

impl Drop for Compose {
    fn drop(&mut self) {
        let _ = self.command(&["down", "-v", "--rmi", "local"]).output();
    }
}
