//! The `claude-proxy` program as an operator runs it: settings from the environment, --help,
//! start-up errors, signals, and what its CLI children inherit.

use crate::support;

use crate::support::{TEST_LIMIT, within};

use std::io::{BufRead, BufReader};

use std::process::Stdio;

use crate::support::proxy::{Proxy, command};
use crate::support::sse::{complete_of, error_codes};
use crate::support::{FAMILY, FakeInstall, eventually, process_gone};
use serde_json::Value;

/// Every setting the issue lists, each of which --help and .env.example must show.
const SETTINGS: &[&str] = &[
    "PROXY_HOST",
    "PROXY_PORT",
    "PROXY_API_KEY",
    "PROXY_API_KEY_FILE",
    "PROXY_ALLOW_UNAUTHENTICATED",
    "PROXY_MAX_AGENTS_PER_KEY",
    "PROXY_QUEUE",
    "PROXY_MAX_CONNECTIONS",
    "PROXY_HEADER_READ_TIMEOUT_SECS",
    "PROXY_BODY_READ_TIMEOUT_SECS",
    "PROXY_ALLOWED_HOSTS",
    "PROXY_METRICS_KEY",
    "CLAUDE_TOOLS",
    "PROXY_MODEL_MAP",
    "PROXY_COMPAT_TOOLS",
    "PROXY_COMPAT_SYSTEM_PROMPT",
    "CLAUDE_ALLOWED_TOOLS",
    "CLAUDE_DISALLOWED_TOOLS",
    "CLAUDE_PERMISSION_MODE",
    "CLAUDE_MAX_TURNS",
    "PROXY_MAX_BUDGET_USD",
    "PROXY_MCP_SERVERS",
    "PROXY_TOOL_RESULT_TIMEOUT_SECS",
    "CLAUDE_WORKDIR",
    "CLAUDE_CLI_PATH",
    "CLAUDE_USE_SUBSCRIPTION",
    "PROXY_UPSTREAM_URL",
    "PROXY_SANDBOX_NETWORK",
    "PROXY_KEY_BUDGETS",
    "PROXY_WEBHOOK_URLS",
    "PROXY_WEBHOOK_URL",
    "PROXY_WEBHOOK_SECRET",
    "PROXY_WEBHOOK_RETRY_BASE_MS",
    "PROXY_OAUTH_TOKEN_URL",
    "CLAUDE_DEFAULT_MODEL",
    "PROXY_MAX_AGENTS",
    "PROXY_AGENT_TIMEOUT_SECS",
    "PROXY_IDLE_TIMEOUT_SECS",
    "PROXY_STOP_GRACE_SECS",
    "PROXY_MAX_LINE_BYTES",
    "PROXY_MAX_BODY_BYTES",
    "PROXY_AGENT_LOG_BYTES",
    "PROXY_LOGS_TOTAL_BYTES",
    "PROXY_AGENT_RETENTION_SECS",
    "PROXY_MAX_FINISHED_AGENTS",
    "PROXY_SHUTDOWN_TIMEOUT_SECS",
    "PROXY_KEEPALIVE_SECS",
    "PROXY_LOG_FORMAT",
    "PROXY_INTERACTIVE_IDLE_SECS",
    "PROXY_WARM_POOL",
    "PROXY_WARM_IDLE_SECS",
    "PROXY_WARM_SHAPES",
    "PROXY_CLIENT_APPROVALS",
    "PROXY_PERMISSION_TIMEOUT_SECS",
    "PROXY_MAX_IMAGE_BYTES",
    "PROXY_DATA_DIR",
    "PROXY_DATABASE_URL",
    "PROXY_STORE_FLUSH_MS",
    "PROXY_INSTANCE_ID",
    "PROXY_INSTANCE_TIMEOUT_SECS",
    "PROXY_FORWARD_TIMEOUT_SECS",
    "PROXY_MAX_SESSION_BYTES",
    "PROXY_SANDBOX",
];

/// A proxy running the fake CLI, with a short grace period.
fn start_with_fake(fake: &FakeInstall, env: &[(&str, &str)]) -> Proxy {
    let cli = fake.cli_path().display().to_string();
    let mut all = vec![
        ("CLAUDE_CLI_PATH", cli.as_str()),
        ("PROXY_STOP_GRACE_SECS", "1"),
    ];
    all.extend_from_slice(env);
    Proxy::start(fake.dir.path(), &all)
}

#[test]
fn help_lists_every_setting() {
    let output = command(&[]).arg("--help").output().unwrap();
    assert!(output.status.success());
    let help = String::from_utf8(output.stdout).unwrap();
    for setting in SETTINGS {
        assert!(help.contains(setting), "--help does not mention {setting}");
    }
    assert!(
        help.contains("/health, /openapi.json, /docs and /ui needs"),
        "--help names every public route: {help}"
    );
}

#[test]
fn env_example_documents_every_setting() {
    let example =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/.env.example")).unwrap();
    for setting in SETTINGS {
        let line = example.lines().position(|l| {
            l.trim_start_matches("# ")
                .starts_with(&format!("{setting}="))
        });
        let line = line.unwrap_or_else(|| panic!(".env.example does not set {setting}"));
        assert!(
            line > 0 && example.lines().nth(line - 1).unwrap().starts_with('#'),
            "{setting} has no comment above it"
        );
    }
}

#[test]
fn a_bad_setting_stops_start_up_with_one_line_naming_it() {
    for (name, value, accepted) in [
        ("PROXY_MAX_AGENTS", "lots", "whole number"),
        ("PROXY_PORT", "99999", "65535"),
        ("CLAUDE_USE_SUBSCRIPTION", "maybe", "true or false"),
        ("PROXY_IDLE_TIMEOUT_SECS", "-1", "seconds"),
        ("PROXY_LOG_FORMAT", "xml", "pretty, json"),
        ("CLAUDE_DEFAULT_MODEL", "a b", "characters"),
    ] {
        let output = command(&[(name, value)]).output().unwrap();
        assert_eq!(output.status.code(), Some(2), "{name}={value}");
        let stderr = String::from_utf8(output.stderr).unwrap();
        assert_eq!(stderr.lines().count(), 1, "{name}={value}: {stderr}");
        assert!(
            stderr.contains(name) && stderr.contains(accepted),
            "{name}={value}: {stderr}"
        );
    }
}

#[test]
fn a_port_in_use_is_said_plainly() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    // Its data dir and workspace are made before it binds: in a place of the test's own.
    let dir = tempfile::tempdir().unwrap();
    let output = command(&[("PROXY_PORT", &port)])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        stderr.contains(&format!("cannot listen on 127.0.0.1:{port}"))
            && stderr.contains("PROXY_PORT"),
        "{stderr}"
    );
}

/// The environment the CLI gets, as the fake CLI prints it.
async fn env_seen_by_cli(proxy: &Proxy) -> Value {
    let events = proxy.stream("@env\n@result").await.collect_all().await;
    events
        .iter()
        .find(|e| e.kind() == "fake_env")
        .unwrap()
        .json()["env"]
        .clone()
}

#[tokio::test]
async fn the_cli_never_sees_proxy_settings_or_the_operators_credentials_only_its_own() {
    within(TEST_LIMIT, async {
        let fake = FakeInstall::new();
        let secrets = [
            ("PROXY_API_KEY", "client-key-must-not-leak"),
            ("PROXY_SOMETHING_ELSE", "x"),
            ("ANTHROPIC_API_KEY", "sk-ant-test"),
            ("ANTHROPIC_AUTH_TOKEN", "token-test"),
            ("CLAUDE_CODE_OAUTH_TOKEN", "oauth-test"),
            ("CLAUDE_CODE_OAUTH_REFRESH_TOKEN", "refresh-test"),
            ("ANTHROPIC_BASE_URL", "http://upstream.invalid"),
            ("CLAUDECODE", "1"),
            ("KEEP_ME", "visible"),
        ];
        for subscription in ["true", "false"] {
            let mut settings = secrets.to_vec();
            settings.push(("CLAUDE_USE_SUBSCRIPTION", subscription));
            let proxy = start_with_fake(&fake, &settings);
            let env = env_seen_by_cli(&proxy).await;
            let names: Vec<&str> = env
                .as_object()
                .unwrap()
                .keys()
                .map(String::as_str)
                .collect();
            assert!(names.iter().all(|n| !n.starts_with("PROXY_")), "{names:?}");
            for hidden in [
                "ANTHROPIC_AUTH_TOKEN",
                "CLAUDE_CODE_OAUTH_TOKEN",
                "CLAUDE_CODE_OAUTH_REFRESH_TOKEN",
                "CLAUDECODE",
            ] {
                assert!(!names.contains(&hidden), "{hidden} reached the CLI");
            }
            let text = env.to_string();
            for (_, secret) in secrets
                .iter()
                .filter(|(n, _)| n.contains("ANTHROPIC_") || n.contains("OAUTH"))
            {
                assert!(!text.contains(secret), "{secret} reached the CLI: {text}");
            }
            // Its own key, for the proxy's gateway, and nothing else.
            let key = env["ANTHROPIC_API_KEY"].as_str().unwrap();
            assert!(key.starts_with("claude-proxy-agent-"), "{key}");
            let base = env["ANTHROPIC_BASE_URL"].as_str().unwrap();
            assert!(base.starts_with("http://127.0.0.1:"), "{base}");
            assert_eq!(
                env["KEEP_ME"], "visible",
                "the rest of the environment passes"
            );
        }
    })
    .await;
}

#[tokio::test]
async fn sigterm_ends_every_agent_finishes_streams_and_exits() {
    within(TEST_LIMIT, async {
        use nix::sys::signal::Signal;
        let fake = FakeInstall::new();
        let mut proxy = start_with_fake(&fake, &[]);
        let mut reader = proxy.stream(FAMILY).await;
        let (pid, grandchild) = reader.family_pids().await;

        proxy.signal(Signal::SIGTERM);
        let rest = reader.collect_all().await;
        assert_eq!(error_codes(&rest), ["shutdown"]);
        assert_eq!(complete_of(&rest)["status"], "stopped");
        let status = proxy.exited().await;
        assert!(status.success(), "{status}");
        process_gone(pid).await;
        process_gone(grandchild).await;
    })
    .await;
}

/// Starts a CLI with a grandchild, kills the server with SIGKILL, and waits until both are
/// gone. SIGKILL leaves the server no chance to clean up: its watchdog process does it.
async fn family_dies_with_the_killed_server(proxy: &Proxy) {
    let mut reader = proxy.stream(FAMILY).await;
    let (pid, grandchild) = reader.family_pids().await;
    proxy.signal(nix::sys::signal::Signal::SIGKILL);
    process_gone(pid).await;
    process_gone(grandchild).await;
}

#[tokio::test]
async fn a_killed_server_takes_its_cli_and_what_it_started_along() {
    within(TEST_LIMIT, async {
        let fake = FakeInstall::new();
        let proxy = start_with_fake(&fake, &[]);
        family_dies_with_the_killed_server(&proxy).await;
    })
    .await;
}

/// The watchdog /health names: its pid and how many times it was started again.
async fn watchdog_of(proxy: &Proxy) -> (u32, u64) {
    let health = proxy.health(None).await;
    let watchdog = &health["watchdog"];
    assert_eq!(watchdog["status"], "running", "{health}");
    (
        watchdog["pid"].as_u64().unwrap() as u32,
        watchdog["restarts"].as_u64().unwrap(),
    )
}

#[tokio::test]
async fn a_killed_watchdog_is_replaced_at_once_and_the_new_one_ends_every_cli() {
    within(TEST_LIMIT, async {
        use nix::sys::signal::{Signal, kill};
        use nix::unistd::Pid;
        let fake = FakeInstall::new();
        let proxy = start_with_fake(&fake, &[]);
        // An agent that runs while its watchdog is replaced: the new one must know its group.
        let mut before = proxy.stream(FAMILY).await;
        let (pid_before, grandchild_before) = before.family_pids().await;

        let (first, restarts) = watchdog_of(&proxy).await;
        assert_eq!(restarts, 0);
        kill(Pid::from_raw(first as i32), Signal::SIGKILL).unwrap();
        process_gone(first).await;
        support::until("a new watchdog", TEST_LIMIT, || async {
            let health = proxy.health(None).await;
            health["watchdog"]["restarts"] == 1 && health["watchdog"]["status"] == "running"
        })
        .await;
        let (second, _) = watchdog_of(&proxy).await;
        assert_ne!(second, first);
        assert_eq!(proxy.health(None).await["status"], "ok");

        let mut after = proxy.stream(FAMILY).await;
        let (pid_after, grandchild_after) = after.family_pids().await;
        proxy.signal(Signal::SIGKILL);
        for pid in [
            pid_before,
            grandchild_before,
            pid_after,
            grandchild_after,
            second,
        ] {
            process_gone(pid).await;
        }
    })
    .await;
}

#[tokio::test]
async fn a_stopped_watchdog_is_told_to_go_on() {
    within(TEST_LIMIT, async {
        use nix::sys::signal::{Signal, kill};
        use nix::unistd::Pid;
        let fake = FakeInstall::new();
        let proxy = start_with_fake(&fake, &[]);
        let (watchdog, _) = watchdog_of(&proxy).await;
        kill(Pid::from_raw(watchdog as i32), Signal::SIGSTOP).unwrap();
        // The proxy sees it stopped, and sends SIGCONT.
        support::eventually("the proxy saw its watchdog stopped", TEST_LIMIT, || {
            proxy.has_logged("the watchdog was stopped")
        })
        .await;
        support::eventually("the watchdog runs again", TEST_LIMIT, || {
            !support::all_threads_stopped(watchdog)
        })
        .await;
        assert_eq!(
            watchdog_of(&proxy).await,
            (watchdog, 0),
            "the same one, not replaced"
        );
        family_dies_with_the_killed_server(&proxy).await;
    })
    .await;
}

#[tokio::test]
async fn a_100_mib_line_costs_bounded_memory() {
    within(TEST_LIMIT, async {
        let fake = FakeInstall::new();
        let proxy = start_with_fake(&fake, &[("PROXY_MAX_LINE_BYTES", "1048576")]);
        let events = proxy
            .stream("@big 104857600\n@result")
            .await
            .collect_all()
            .await;
        assert_eq!(error_codes(&events), ["line_too_long"]);
        assert_eq!(complete_of(&events)["status"], "completed");
        let peak = proxy.peak_rss();
        assert!(
            peak < 48 << 20,
            "the server peaked at {} MiB for a 100 MiB line it dropped",
            peak >> 20
        );
    })
    .await;
}

#[tokio::test]
async fn json_logs_when_asked() {
    within(TEST_LIMIT, async {
        let fake = FakeInstall::new();
        let cli = fake.cli_path().display().to_string();
        let mut child = command(&[
            ("PROXY_PORT", "0"),
            ("CLAUDE_CLI_PATH", &cli),
            ("PROXY_LOG_FORMAT", "json"),
        ])
        .current_dir(fake.dir.path())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
        let mut first = String::new();
        BufReader::new(child.stderr.take().unwrap())
            .read_line(&mut first)
            .unwrap();
        let _ = child.kill();
        let _ = child.wait();
        let line: Value = serde_json::from_str(&first).unwrap_or_else(|e| panic!("{e}: {first}"));
        assert!(
            line["message"]
                .as_str()
                .unwrap()
                .starts_with("listening on http://127.0.0.1:"),
            "{line}"
        );
    })
    .await;
}

#[test]
fn the_readme_shows_the_node_example_as_it_is() {
    let root = env!("CARGO_MANIFEST_DIR");
    let readme = std::fs::read_to_string(format!("{root}/README.md")).unwrap();
    let example = std::fs::read_to_string(format!("{root}/examples/node/ask.ts")).unwrap();
    assert!(
        readme.contains(&format!("```ts\n{example}```")),
        "README.md's example block differs from examples/node/ask.ts"
    );
}

/// How many connections wait in the accept queue of the server listening on `port` on
/// 127.0.0.1, as the kernel reports it.
fn accept_queue(port: u16) -> Option<u32> {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    let local = format!("0100007F:{port:04X}");
    table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        // A listening socket's rx_queue is its count of established, unaccepted connections.
        (fields[1] == local && fields[3] == "0A")
            .then(|| u32::from_str_radix(fields[4].split_once(':').unwrap().1, 16).unwrap())
    })
}

#[tokio::test]
async fn a_burst_of_a_thousand_connections_waits_for_a_busy_server() {
    within(TEST_LIMIT, async {
        use nix::sys::signal::Signal;
        const BURST: u32 = 1000;
        const LIMIT: std::time::Duration = std::time::Duration::from_secs(5);
        claude_proxy::raise_open_files_limit();
        let fake = FakeInstall::new();
        let proxy = start_with_fake(&fake, &[]);
        let address = proxy.base.trim_start_matches("http://").to_owned();
        let port: u16 = address.rsplit_once(':').unwrap().1.parse().unwrap();

        // Stopped, the server accepts nothing: the burst has only the kernel's queue to wait in.
        // Past a backlog of 128 (tokio's default), the handshakes would be dropped, and their
        // clients would retry them a second later.
        proxy.signal(Signal::SIGSTOP);
        // When kill returns, one thread has been told; the others go on until it starts the
        // group's stop, and under load that took long enough to accept a quarter of the burst.
        let pid = proxy.pid();
        eventually("every thread of the server stopped", LIMIT, || {
            support::all_threads_stopped(pid)
        })
        .await;
        let connections = futures_util::future::join_all(
            (0..BURST).map(|_| tokio::net::TcpStream::connect(address.as_str())),
        )
        .await;
        eventually("the whole burst waits to be accepted", LIMIT, || {
            accept_queue(port) >= Some(BURST)
        })
        .await;
        let queued = accept_queue(port);
        proxy.signal(Signal::SIGCONT);
        assert_eq!(queued, Some(BURST), "connections waiting to be accepted");

        // And once it runs again, each of them is served.
        let served = futures_util::future::join_all(connections.into_iter().map(|tcp| async {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let mut tcp = tcp.unwrap();
            tcp.write_all(b"GET /health HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n")
                .await
                .unwrap();
            let mut response = Vec::new();
            tcp.read_to_end(&mut response).await.unwrap();
            response.starts_with(b"HTTP/1.1 200")
        }))
        .await;
        assert_eq!(served.iter().filter(|ok| **ok).count(), BURST as usize);
    })
    .await;
}

/// A SIGTERM as soon as the proxy says where it listens (an orchestrator that stops what it
/// just started) is a graceful stop, never a death by the signal.
#[tokio::test]
async fn a_sigterm_right_after_start_is_a_graceful_stop() {
    within(TEST_LIMIT, async {
        let fake = FakeInstall::new();
        let cli = fake.cli_path().display().to_string();
        for _ in 0..10 {
            let mut proxy = Proxy::start(fake.dir.path(), &[("CLAUDE_CLI_PATH", &cli)]);
            let status = proxy.terminate().await.unwrap();
            assert!(status.success(), "{status}");
        }
    })
    .await;
}
