//! Agents in a sandbox, with the real CLI running what the model asks (`CLAUDE_ALLOWED_TOOLS=
//! Bash`): a tool sees its agent's workspace and its key's home, and nothing of the proxy, its
//! keys or other clients. The same probe with `PROXY_SANDBOX=off` shows every leak, so it is
//! the sandbox that does the work.

use crate::support;

use std::path::{Path, PathBuf};

use crate::support::anthropic::{Reply, StandIn};
use crate::support::proxy::Proxy;
use crate::support::sse::complete_of;
use crate::support::{SseEvent, TEST_LIMIT, within};
use serde_json::{Value, json};

const KEY: &str = "sandbox-key-a-0123456789";
const OTHER_KEY: &str = "sandbox-key-b-0123456789";
/// A marker in the proxy's own environment, which a tool must not be able to read.
const MARKER: &str = "PROXY_SECRET_MARKER_7f3a";
/// A process a tool leaves behind in a session of its own, found by its argument.
const LEFT_BEHIND: &str = "1717.5";

/// A proxy running the real CLI with Bash allowed, keys from a file, and a data dir and key
/// file beside its workdir.
struct Site {
    standin: StandIn,
    proxy: Proxy,
    dir: tempfile::TempDir,
}

impl Site {
    async fn start(sandbox: &str, replies: Vec<Reply>) -> Self {
        Self::start_with_login(sandbox, replies, None).await
    }

    /// With `login` as the operator's stored login (`~/.claude/.credentials.json`).
    async fn start_with_login(sandbox: &str, replies: Vec<Reply>, login: Option<&str>) -> Self {
        Self::start_with(sandbox, replies, login, &[]).await
    }

    /// With these settings (and environment) besides.
    async fn start_with(
        sandbox: &str,
        replies: Vec<Reply>,
        login: Option<&str>,
        extra: &[(&str, &str)],
    ) -> Self {
        Self::with_standin(StandIn::start(replies).await, sandbox, login, extra)
    }

    /// With this stand-in.
    fn with_standin(
        standin: StandIn,
        sandbox: &str,
        login: Option<&str>,
        extra: &[(&str, &str)],
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (home, work) = (dir.path().join("home"), dir.path().join("work"));
        std::fs::create_dir_all(home.join(".claude")).unwrap();
        if let Some(login) = login {
            std::fs::write(home.join(".claude/.credentials.json"), login).unwrap();
        }
        std::fs::create_dir_all(&work).unwrap();
        let keys = dir.path().join("keys");
        std::fs::write(&keys, format!("{KEY}\n{OTHER_KEY}\n")).unwrap();
        let keys = keys.display().to_string();
        let mut settings = vec![
            ("PROXY_SANDBOX", sandbox),
            ("PROXY_API_KEY_FILE", &keys),
            ("CLAUDE_ALLOWED_TOOLS", "Bash"),
            (MARKER, "1"),
            ("PROXY_STOP_GRACE_SECS", "1"),
        ];
        settings.extend_from_slice(extra);
        let proxy = support::real::start_proxy(&standin, &home, &work, &settings);
        Self {
            standin,
            proxy,
            dir,
        }
    }

    async fn stream(&self, key: &str, body: Value) -> Vec<SseEvent> {
        let response = self
            .proxy
            .client
            .post(self.proxy.url("/agent/stream"))
            .bearer_auth(key)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{:?}", response.text().await);
        support::SseReader::new(response).collect_all().await
    }

    fn work(&self) -> PathBuf {
        self.dir.path().join("work")
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }
}

/// The workspaces under the workdir, one per key that has run an agent.
fn workspaces(work: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(work)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    dirs
}

fn session_of(events: &[SseEvent]) -> String {
    events
        .iter()
        .find(|e| e.kind() == "result")
        .expect("a result")
        .json()["session_id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Pids of the host's processes whose command line holds `needle`.
fn processes_with(needle: &str) -> Vec<i32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| {
                    String::from_utf8_lossy(&c)
                        .replace('\0', " ")
                        .contains(needle)
                })
                .unwrap_or(false)
        })
        .collect()
}

/// What one probe found: each leak it could make, by name.
#[derive(Debug, PartialEq, Eq)]
struct Found {
    leaks: Vec<&'static str>,
    left_behind: bool,
}

/// Runs, as key A's agent, a Bash command that tries each leak, after key B has made a
/// session and a file of its own; returns what the tool saw, and whether what it left
/// behind outlived the agent.
async fn probe(sandbox: &str) -> Found {
    let site = Site::start(sandbox, vec![Reply::Text("B's turn.".into())]).await;
    // Key B: a session, and a file in its workspace.
    let b = site
        .stream(OTHER_KEY, json!({"prompt": "Remember B."}))
        .await;
    let b_session = session_of(&b);
    let b_workspace = workspaces(&site.work()).pop().expect("B's workspace");
    std::fs::write(b_workspace.join("b-secret.txt"), "B's secret").unwrap();

    let proxy_pid = site.proxy.pid();
    let keys = site.dir.path().join("keys");
    let checks = [
        (
            "environ",
            format!("tr '\\0' '\\n' < /proc/{proxy_pid}/environ | grep -q {MARKER}"),
        ),
        ("find-proxy", format!("test -e /proc/{proxy_pid}/cmdline")),
        ("signal", format!("kill -0 {proxy_pid}")),
        ("key-file", format!("grep -q {KEY} {}", keys.display())),
        (
            "data-dir",
            format!("ls -A {} | grep -q .", site.data().display()),
        ),
        (
            "other-sessions",
            format!("ls -R \"$HOME\"/.claude/projects 2>/dev/null | grep -q {b_session}"),
        ),
        (
            "other-workspace",
            format!("cat {}", b_workspace.join("b-secret.txt").display()),
        ),
    ];
    let mut command = format!("setsid sleep {LEFT_BEHIND} </dev/null >/dev/null 2>&1 &\n");
    for (name, check) in &checks {
        command.push_str(&format!(
            "if {check} >/dev/null 2>&1; then echo LEAK:{name}; fi\n"
        ));
    }
    command.push_str("echo PROBED");
    site.standin
        .push([Reply::Bash(command), Reply::Text("Probed.".into())]);

    let a = site.stream(KEY, json!({"prompt": "Look around."})).await;
    assert_eq!(complete_of(&a)["status"], "completed");
    let tool_result = site
        .standin
        .texts_received()
        .into_iter()
        .find(|t| t.contains("PROBED"))
        .expect("the probe ran and its output reached the API");
    let leaks = checks
        .iter()
        .map(|(name, _)| *name)
        .filter(|name| tool_result.contains(&format!("LEAK:{name}")))
        .collect();
    let left = processes_with(&format!("sleep {LEFT_BEHIND}"));
    for pid in &left {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(*pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    Found {
        leaks,
        left_behind: !left.is_empty(),
    }
}

#[tokio::test]
async fn in_the_sandbox_a_tool_sees_nothing_of_the_proxy_its_keys_or_other_clients() {
    within(TEST_LIMIT, async {
        assert_eq!(
            probe("bwrap").await,
            Found {
                leaks: vec![],
                left_behind: false
            }
        );
    })
    .await;
}

#[tokio::test]
async fn without_the_sandbox_the_same_tool_sees_all_of_it() {
    within(TEST_LIMIT, async {
        assert_eq!(
            probe("off").await,
            Found {
                leaks: vec![
                    "environ",
                    "find-proxy",
                    "signal",
                    "key-file",
                    "data-dir",
                    "other-sessions",
                    "other-workspace"
                ],
                left_behind: true
            }
        );
    })
    .await;
}

#[tokio::test]
async fn a_session_resumes_within_its_key_in_the_sandbox_and_health_says_so() {
    within(TEST_LIMIT, async {
        let site = Site::start(
            "bwrap",
            vec![
                Reply::Text("Noted: 7.".into()),
                Reply::Text("It was 7.".into()),
            ],
        )
        .await;
        let health = site.proxy.health(Some(KEY)).await;
        assert_eq!(health["sandbox"], "bwrap");
        let first = site.stream(KEY, json!({"prompt": "Remember 7."})).await;
        let session = session_of(&first);
        let second = site
            .stream(
                KEY,
                json!({"prompt": "What was it?", "session_id": session}),
            )
            .await;
        assert_eq!(complete_of(&second)["status"], "completed");
        assert_eq!(session_of(&second), session);
        let earlier = site.standin.requests()[1]["messages"].to_string();
        assert!(
            earlier.contains("Remember 7.") && earlier.contains("Noted: 7."),
            "{earlier}"
        );
    })
    .await;
}

/// The operator's API key in these tests: split in two wherever a command names it, so that
/// no command line holds it whole.
const REAL_KEY: (&str, &str) = ("sk-ant-operator-", "real-key-5b1e9d");

/// A Bash command that gathers everything a tool could read the operator's credential from
/// (its environment, every `/proc/*/environ` and `/proc/*/cmdline` it can see, every file in
/// its home, `~/.claude` included), and prints how often `secret` (given in two halves)
/// occurs in it, the size of what it read, and the `ANTHROPIC_*` variables it saw.
fn gather_and_count(secret: (&str, &str)) -> String {
    let (a, b) = secret;
    format!(
        "A='{a}'; B='{b}'; D=/tmp/gathered\n\
         {{ env; ls -la \"$HOME\" \"$HOME/.claude\"; find \"$HOME\" -type f -exec cat {{}} +;\n\
         for f in /proc/[0-9]*/environ /proc/[0-9]*/cmdline; do tr '\\0' '\\n' < \"$f\"; echo; done; }} > $D 2>&1\n\
         echo \"FOUND:$(grep -c \"$A$B\" $D)\"\n\
         echo \"BYTES:$(wc -c < $D)\"\n\
         grep '^ANTHROPIC_' $D | sort -u\n\
         echo GATHERED"
    )
}

/// What [`gather_and_count`] printed, as the API received it.
fn gathered(standin: &StandIn) -> String {
    standin
        .texts_received()
        .into_iter()
        .find(|t| t.contains("GATHERED"))
        .expect("the command ran and its output reached the API")
}

/// The value of `NAME=` in what a tool printed.
fn printed_var(output: &str, name: &str) -> String {
    output
        .lines()
        .find_map(|line| line.strip_prefix(&format!("{name}=")))
        .unwrap_or_else(|| panic!("{name} is not in {output}"))
        .trim()
        .to_owned()
}

#[tokio::test]
async fn no_credential_of_the_operators_reaches_a_sandboxed_tool_and_the_api_sees_only_it() {
    within(TEST_LIMIT, async {
        let real = format!("{}{}", REAL_KEY.0, REAL_KEY.1);
        let site = Site::start_with(
            "bwrap",
            vec![
                Reply::Bash(gather_and_count(REAL_KEY)),
                Reply::Text("Gathered.".into()),
            ],
            None,
            &[("ANTHROPIC_API_KEY", &real)],
        )
        .await;
        let events = site.stream(KEY, json!({"prompt": "Look for it."})).await;
        assert_eq!(complete_of(&events)["status"], "completed");

        let output = gathered(&site.standin);
        assert!(output.contains("FOUND:0"), "{output}");
        let bytes: usize = output
            .lines()
            .find_map(|l| l.strip_prefix("BYTES:"))
            .and_then(|n| n.trim().parse().ok())
            .expect("the size of what it read");
        assert!(bytes > 1000, "it read its environment and more: {output}");
        let credential = printed_var(&output, "ANTHROPIC_API_KEY");
        let gateway = printed_var(&output, "ANTHROPIC_BASE_URL");
        assert!(credential.starts_with("claude-proxy-agent-"), "{output}");
        assert!(gateway.starts_with("http://127.0.0.1:"), "{output}");
        assert_ne!(gateway, site.standin.base_url());
        for event in &events {
            assert!(
                !event.data.contains(&real),
                "the stream shows it: {event:?}"
            );
        }

        // The API saw the operator's key on every request, and never the agent's.
        let seen = site.standin.seen();
        assert!(seen.len() >= 2, "{seen:?}");
        for request in &seen {
            assert_eq!(
                request.x_api_key.as_deref(),
                Some(real.as_str()),
                "{request:?}"
            );
            assert_eq!(request.authorization, None, "{request:?}");
        }

        // Its agent has ended: the credential is worth nothing now, as is none at all.
        let refused = |key: Option<String>| {
            let mut request = site
                .proxy
                .client
                .post(format!("{gateway}/v1/messages"))
                .json(&json!({"model": "claude-sonnet-4-5", "max_tokens": 1, "messages": []}));
            if let Some(key) = key {
                request = request.header("x-api-key", key);
            }
            async move {
                let response = request.send().await.unwrap();
                assert_eq!(response.status(), 401);
                let body: Value = response.json().await.unwrap();
                assert_eq!(body["error"]["type"], "authentication_error", "{body}");
            }
        };
        refused(Some(credential)).await;
        refused(None).await;
        refused(Some(real.clone())).await;
        assert_eq!(
            site.standin.seen().len(),
            seen.len(),
            "nothing refused reached the API"
        );
    })
    .await;
}

#[tokio::test]
async fn the_operators_stored_login_stays_out_of_the_sandbox_and_the_gateway_uses_it() {
    within(TEST_LIMIT, async {
        let token = ("operator-login-", "7c1f");
        let login = format!(
            r#"{{"claudeAiOauth":{{"accessToken":"{}{}","refreshToken":"refresh-9a2e"}}}}"#,
            token.0, token.1
        );
        let site = Site::start_with(
            "bwrap",
            vec![],
            Some(&login),
            &[("CLAUDE_USE_SUBSCRIPTION", "true")],
        )
        .await;
        site.standin.push([
            Reply::Bash(gather_and_count(token)),
            Reply::Text("Gathered.".into()),
        ]);
        let events = site.stream(KEY, json!({"prompt": "Look for it."})).await;
        assert_eq!(complete_of(&events)["status"], "completed");
        let output = gathered(&site.standin);
        assert!(output.contains("FOUND:0"), "{output}");
        assert!(!output.contains("refresh-9a2e"), "{output}");
        let seen = site.standin.seen();
        assert!(!seen.is_empty());
        for request in &seen {
            assert_eq!(
                request.authorization.as_deref(),
                Some("Bearer operator-login-7c1f"),
                "{request:?}"
            );
            assert_eq!(request.x_api_key, None, "{request:?}");
            let betas = request.anthropic_beta.as_deref().unwrap_or_default();
            if request.path.starts_with("/v1/messages") {
                assert!(betas.contains("oauth-2025-04-20"), "{request:?}");
            }
        }
    })
    .await;
}

/// A proxy running the fake CLI itself (no wrapper script: the sandbox shows the program's
/// directory read-only) in the sandbox.
fn fake_in_sandbox(dir: &Path, extra: &[(&str, &str)]) -> Proxy {
    let work = dir.join("work");
    let data = dir.join("data");
    std::fs::create_dir_all(&work).unwrap();
    let cli = support::fake_cli().display().to_string();
    let (work, data) = (work.display().to_string(), data.display().to_string());
    let mut env = vec![
        ("PROXY_SANDBOX", "bwrap"),
        ("CLAUDE_CLI_PATH", cli.as_str()),
        ("CLAUDE_WORKDIR", work.as_str()),
        ("PROXY_DATA_DIR", data.as_str()),
        ("PROXY_STOP_GRACE_SECS", "1"),
    ];
    env.extend_from_slice(extra);
    Proxy::start(dir, &env)
}

/// Starts an agent that leaves `sleep TAG` behind in a session of its own, and waits until it
/// has (the process is there, on the host).
async fn leave_behind(proxy: &Proxy, tag: &str, detach: bool) -> (String, support::SseReader) {
    let mut reader = proxy
        .stream_with(&json!({
            "prompt": format!("@escape {tag}\n@text ready\n@hang"),
            "detach_on_disconnect": detach,
        }))
        .await;
    let id = reader.next_of("agent").await.json()["agent_id"]
        .as_str()
        .unwrap()
        .to_owned();
    reader.next_of("assistant").await;
    assert_eq!(
        processes_with(&format!("sleep {tag}")).len(),
        1,
        "{tag} was left behind"
    );
    (id, reader)
}

async fn gone(tag: &str) {
    let needle = format!("sleep {tag}");
    support::until(&format!("{needle} is gone"), TEST_LIMIT, || {
        let left = processes_with(&needle);
        async move { left.is_empty() }
    })
    .await;
}

#[tokio::test]
async fn stop_timeout_disconnect_and_shutdown_end_everything_in_the_sandbox() {
    within(TEST_LIMIT, async {
        let dir = tempfile::tempdir().unwrap();
        let mut proxy = fake_in_sandbox(dir.path(), &[("PROXY_AGENT_TIMEOUT_SECS", "3")]);

        let (id, reader) = leave_behind(&proxy, "4001.1", true).await;
        let stopped = proxy.post(&format!("/agent/stop/{id}"), &json!({})).await;
        assert_eq!(stopped.status(), 200);
        assert_eq!(
            complete_of(&reader.collect_all().await)["status"],
            "stopped"
        );
        assert!(
            processes_with("sleep 4001.1").is_empty(),
            "gone by the time stop answers"
        );

        let (_, reader) = leave_behind(&proxy, "4001.2", false).await;
        let ended = reader.collect_all().await;
        assert_eq!(complete_of(&ended)["status"], "timed_out");
        assert!(
            processes_with("sleep 4001.2").is_empty(),
            "gone by `complete`"
        );

        let (_, reader) = leave_behind(&proxy, "4001.3", false).await;
        drop(reader);
        gone("4001.3").await;

        let (_, _reader) = leave_behind(&proxy, "4001.4", true).await;
        let status = proxy.terminate().await.unwrap();
        assert!(status.success());
        assert!(
            processes_with("sleep 4001.4").is_empty(),
            "gone when the proxy exits"
        );
    })
    .await;
}

#[tokio::test]
async fn the_watchdog_ends_the_sandbox_when_the_proxy_is_killed() {
    within(TEST_LIMIT, async {
        let dir = tempfile::tempdir().unwrap();
        let mut proxy = fake_in_sandbox(dir.path(), &[]);
        let (_, _reader) = leave_behind(&proxy, "4002.1", true).await;
        proxy.signal(nix::sys::signal::Signal::SIGKILL);
        proxy.exited().await;
        gone("4002.1").await;
    })
    .await;
}

#[tokio::test]
async fn without_bubblewrap_bwrap_refuses_to_start_and_auto_starts_without_it() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty-path");
    std::fs::create_dir_all(&empty).unwrap();
    let run = |mode: &str| {
        support::proxy::command(&[
            ("PROXY_SANDBOX", mode),
            ("PATH", empty.to_str().unwrap()),
            ("PROXY_PORT", "0"),
            ("CLAUDE_WORKDIR", dir.path().join("work").to_str().unwrap()),
            ("PROXY_DATA_DIR", dir.path().join("data").to_str().unwrap()),
        ])
    };
    let refused = run("bwrap").output().unwrap();
    assert_eq!(refused.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("PROXY_SANDBOX=bwrap") && stderr.contains("bubblewrap"),
        "{stderr}"
    );

    let proxy = Proxy::start(
        dir.path(),
        &[
            ("PROXY_SANDBOX", "auto"),
            ("PATH", empty.to_str().unwrap()),
            ("CLAUDE_WORKDIR", dir.path().join("work").to_str().unwrap()),
            ("PROXY_DATA_DIR", dir.path().join("data").to_str().unwrap()),
        ],
    );
    support::eventually("the warning is logged", TEST_LIMIT, || {
        let log = proxy.log().join("\n");
        log.contains("without a sandbox") && log.contains("not installed")
    })
    .await;
    let health = proxy.health(None).await;
    assert_eq!(health["sandbox"], "off");
}

#[tokio::test]
async fn a_sandboxed_run_completes_when_its_cli_exits_not_a_grace_period_later() {
    within(TEST_LIMIT, async {
        let dir = tempfile::tempdir().unwrap();
        // bubblewrap's init outlives the bwrap that reports the exit: a proxy that waited for
        // the group to be empty would wait out this whole grace period, past the test's limit.
        let proxy = fake_in_sandbox(dir.path(), &[("PROXY_STOP_GRACE_SECS", "600")]);
        for _ in 0..3 {
            let events = proxy
                .stream("@text hi\n@result done")
                .await
                .collect_all()
                .await;
            let complete = complete_of(&events);
            assert_eq!(complete["status"], "completed", "{events:?}");
            assert_eq!(complete["exit_code"], 0);
        }
    })
    .await;
}

#[tokio::test]
async fn a_sandbox_dies_with_the_proxy_even_when_its_watchdog_cannot_act() {
    within(TEST_LIMIT, async {
        use nix::sys::signal::{Signal, kill};
        use nix::unistd::Pid;
        let dir = tempfile::tempdir().unwrap();
        let mut proxy = fake_in_sandbox(dir.path(), &[]);
        let health = proxy.health(None).await;
        let watchdog = Pid::from_raw(health["watchdog"]["pid"].as_u64().unwrap() as i32);
        let (_, _reader) = leave_behind(&proxy, "4003.1", true).await;
        // The proxy stopped first, so that it cannot resume its watchdog; then the watchdog
        // stopped, neither dead (to be replaced) nor able to kill anything.
        proxy.signal(Signal::SIGSTOP);
        let pid = proxy.pid();
        support::eventually("every thread of the proxy stopped", TEST_LIMIT, || {
            support::all_threads_stopped(pid)
        })
        .await;
        kill(watchdog, Signal::SIGSTOP).unwrap();
        support::eventually("the watchdog stopped", TEST_LIMIT, || {
            support::all_threads_stopped(watchdog.as_raw() as u32)
        })
        .await;
        proxy.signal(Signal::SIGKILL);
        proxy.exited().await;
        gone("4003.1").await;
        kill(watchdog, Signal::SIGKILL).unwrap();
    })
    .await;
}

#[tokio::test]
async fn a_missing_cli_is_503_with_the_sandbox_as_without() {
    within(TEST_LIMIT, async {
        let dir = tempfile::tempdir().unwrap();
        for sandbox in ["bwrap", "off"] {
            let proxy = fake_in_sandbox(
                dir.path(),
                &[
                    ("PROXY_SANDBOX", sandbox),
                    ("CLAUDE_CLI_PATH", "/nonexistent/claude"),
                ],
            );
            let response = proxy.post("/agent/stream", &json!({"prompt": "hi"})).await;
            assert_eq!(response.status(), 503, "sandbox {sandbox}");
            let body: Value = response.json().await.unwrap();
            let detail = body["detail"].as_str().unwrap();
            assert!(
                detail.contains("/nonexistent/claude") && detail.contains("CLAUDE_CLI_PATH"),
                "sandbox {sandbox}: {detail}"
            );
        }
    })
    .await;
}

#[tokio::test]
async fn what_a_tool_left_in_a_session_of_its_own_is_reaped_when_it_exits() {
    within(TEST_LIMIT, async {
        use nix::sys::signal::{Signal, kill};
        use nix::unistd::Pid;
        let dir = tempfile::tempdir().unwrap();
        // Unconfined, the process outlives its agent; the sweep comes every second.
        let proxy = fake_in_sandbox(
            dir.path(),
            &[
                ("PROXY_SANDBOX", "off"),
                ("PROXY_AGENT_RETENTION_SECS", "4"),
            ],
        );
        let (id, reader) = leave_behind(&proxy, "4004.1", true).await;
        let stopped = proxy.post(&format!("/agent/stop/{id}"), &json!({})).await;
        assert_eq!(stopped.status(), 200);
        reader.collect_all().await;
        let left = processes_with("sleep 4004.1");
        assert_eq!(
            left.len(),
            1,
            "it left its CLI's group, so it outlived the agent"
        );
        // Its CLI is gone: the proxy, as subreaper, is its parent now, and must reap it.
        kill(Pid::from_raw(left[0]), Signal::SIGKILL).unwrap();
        support::until("the orphan is reaped", TEST_LIMIT, || {
            let pid = left[0] as u32;
            async move { support::reaped(pid) }
        })
        .await;
    })
    .await;
}

/// A Bash command that tries the stand-in (the API, straight) and the gateway, and says which
/// it reached: `REACHED:`/`BLOCKED:` the stand-in, and the gateway's answer to a request
/// without a credential.
fn try_the_network(standin: &StandIn) -> String {
    let port = standin.addr.port();
    format!(
        "if (exec 3<>/dev/tcp/127.0.0.1/{port}) 2>/dev/null; then echo REACHED:standin; else echo BLOCKED:standin; fi\n\
         echo \"GATEWAY:$(curl -s -o /dev/null -w '%{{http_code}}' -X POST \"$ANTHROPIC_BASE_URL/v1/messages\" -d '{{}}')\"\n\
         echo NETWORKED"
    )
}

/// What [`try_the_network`] printed, as the API received it.
fn networked(standin: &StandIn) -> String {
    standin
        .texts_received()
        .into_iter()
        .find(|t| t.contains("NETWORKED"))
        .expect("the command ran and its output reached the API")
}

#[tokio::test]
async fn with_the_gateway_network_a_tool_reaches_the_gateway_and_nothing_else() {
    within(TEST_LIMIT, async {
        for (network, expected) in [("gateway", "BLOCKED:standin"), ("host", "REACHED:standin")] {
            let site =
                Site::start_with("bwrap", vec![], None, &[("PROXY_SANDBOX_NETWORK", network)])
                    .await;
            site.standin.push([
                Reply::Bash(try_the_network(&site.standin)),
                Reply::Text("Tried.".into()),
            ]);
            let events = site
                .stream(KEY, json!({"prompt": "Try the network."}))
                .await;
            assert_eq!(complete_of(&events)["status"], "completed", "{network}");
            let output = networked(&site.standin);
            assert!(output.contains(expected), "{network}: {output}");
            // The gateway answers, and refuses what has no credential.
            assert!(output.contains("GATEWAY:401"), "{network}: {output}");
        }
    })
    .await;
}

#[tokio::test]
async fn the_gateway_network_without_a_sandbox_refuses_to_start_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let output = support::proxy::command(&[
        ("PROXY_SANDBOX", "off"),
        ("PROXY_SANDBOX_NETWORK", "gateway"),
        ("PROXY_PORT", "0"),
        ("CLAUDE_WORKDIR", dir.path().join("work").to_str().unwrap()),
        ("PROXY_DATA_DIR", dir.path().join("data").to_str().unwrap()),
    ])
    .output()
    .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("PROXY_SANDBOX_NETWORK=gateway"), "{stderr}");
}

#[tokio::test]
async fn an_expired_stored_login_is_refreshed_once_for_twenty_agents_and_written_back() {
    within(TEST_LIMIT, async {
        // Expired an hour ago, as `claude login` leaves it.
        let expired = chrono::Utc::now().timestamp_millis() - 3_600_000;
        let login = json!({"claudeAiOauth": {
            "accessToken": "expired-access", "refreshToken": "refresh-0",
            "expiresAt": expired, "scopes": ["user:inference", "user:profile"],
            "subscriptionType": "max"}})
        .to_string();
        let standin = StandIn::start([]).await;
        let token_url = format!("{}/v1/oauth/token", standin.base_url());
        let site = Site::with_standin(
            standin,
            "bwrap",
            Some(&login),
            &[
                ("CLAUDE_USE_SUBSCRIPTION", "true"),
                ("PROXY_MAX_AGENTS", "20"),
                ("PROXY_OAUTH_TOKEN_URL", &token_url),
            ],
        );
        let runs = (0..20).map(|i| {
            let site = &site;
            async move {
                site.stream(KEY, json!({"prompt": format!("Agent {i}.")}))
                    .await
            }
        });
        for events in futures_util::future::join_all(runs).await {
            assert_eq!(complete_of(&events)["status"], "completed", "{events:?}");
        }
        let refreshes = site.standin.refreshes();
        assert_eq!(refreshes.len(), 1, "{refreshes:?}");
        assert_eq!(refreshes[0]["grant_type"], "refresh_token");
        assert_eq!(refreshes[0]["refresh_token"], "refresh-0");
        assert_eq!(refreshes[0]["scope"], "user:inference user:profile");
        for request in site.standin.seen() {
            assert_eq!(
                request.authorization.as_deref(),
                Some("Bearer refreshed-access-1"),
                "{request:?}"
            );
        }
        // Written back where the operator's CLI reads it, for the owner only.
        let file = site.dir.path().join("home/.claude/.credentials.json");
        let written: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
        let oauth = &written["claudeAiOauth"];
        assert_eq!(oauth["accessToken"], "refreshed-access-1");
        assert_eq!(oauth["refreshToken"], "rotated-refresh-1");
        assert!(oauth["expiresAt"].as_i64().unwrap() > chrono::Utc::now().timestamp_millis());
        assert_eq!(oauth["subscriptionType"], "max", "the rest is kept");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
            0o600
        );
    })
    .await;
}
