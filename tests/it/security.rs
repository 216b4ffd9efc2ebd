//! Safe to expose: client keys, isolation between clients, the operator's tool policy, limits
//! that hold under abuse, and the rate-limit gate. Over real TCP, with the fake CLI.

use crate::support;

use crate::support::{TEST_LIMIT, within};

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::support::proxy::{Proxy, command};
use crate::support::sse::complete_of;
use crate::support::{FakeInstall, SseReader, TestServer};
use serde_json::{Value, json};

const KEY_A: &str = "key-a-0123456789abcdef";
const KEY_B: &str = "key-b-0123456789abcdef";

async fn keyed_server(extra: &[&str]) -> TestServer {
    let keys = format!("{KEY_A},{KEY_B}");
    let mut args = vec!["--api-key", keys.as_str()];
    args.extend_from_slice(extra);
    TestServer::with_args(&args).await
}

/// A request as one client makes it: `key` None sends no key.
fn as_client(
    server: &TestServer,
    method: &str,
    path: &str,
    key: Option<&str>,
) -> reqwest::RequestBuilder {
    let request = server
        .client
        .request(method.parse().unwrap(), server.url(path));
    match key {
        Some(key) => request.bearer_auth(key),
        None => request,
    }
}

/// What `GET /agents` lists for `key`.
async fn agents_of(server: &TestServer, key: &str) -> Value {
    let listed: Value = as_client(server, "GET", "/agents", Some(key))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    listed["agents"].clone()
}

async fn start_as(server: &TestServer, key: &str, body: Value) -> reqwest::Response {
    as_client(server, "POST", "/agent/start", Some(key))
        .json(&body)
        .send()
        .await
        .unwrap()
}

fn fake_argv(init: &Value) -> Vec<String> {
    init["argv"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn every_route_but_health_needs_a_valid_key() {
    within(TEST_LIMIT, async {
        let server = keyed_server(&[]).await;
        let some_id = uuid::Uuid::new_v4();
        let routes = [
            ("POST", "/agent/start".to_owned()),
            ("POST", "/agent/stream".to_owned()),
            ("POST", format!("/agent/stop/{some_id}")),
            ("GET", "/agents".to_owned()),
            ("GET", format!("/agent/{some_id}")),
            ("DELETE", format!("/agent/{some_id}")),
            ("GET", format!("/agent/{some_id}/events")),
        ];
        for (method, path) in &routes {
            for key in [None, Some("wrong-key-0123456789abc"), Some("")] {
                let response = as_client(&server, method, path, key)
                    .json(&json!({"prompt": "hi"}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), 401, "{method} {path} with {key:?}");
                assert_eq!(response.headers()["www-authenticate"], "Bearer");
                let detail: Value = response.json().await.unwrap();
                assert!(
                    detail["detail"]
                        .as_str()
                        .unwrap()
                        .contains("Authorization: Bearer"),
                    "{detail}"
                );
            }
        }
        assert_eq!(
            server.fake.runs(),
            0,
            "no request without a valid key ran the CLI"
        );
        for (method, path) in &routes {
            let response = as_client(&server, method, path, Some(KEY_A))
                .json(&json!({"prompt": "hi"}))
                .send()
                .await
                .unwrap();
            assert_ne!(response.status(), 401, "{method} {path} with the right key");
        }
        let with_header = server
            .client
            .get(server.url("/agents"))
            .header("x-api-key", KEY_B)
            .send()
            .await
            .unwrap();
        assert_eq!(with_header.status(), 200, "x-api-key is accepted too");
        assert_eq!(server.get("/health").await.status(), 200);
    })
    .await;
}

#[tokio::test]
async fn another_clients_agents_are_invisible() {
    within(TEST_LIMIT, async {
        let server = keyed_server(&[]).await;
        let started: Value = start_as(&server, KEY_A, json!({"prompt": "@hang"}))
            .await
            .json()
            .await
            .unwrap();
        let id = started["agent_id"].as_str().unwrap();

        for (method, path) in [
            ("GET", format!("/agent/{id}")),
            ("GET", format!("/agent/{id}/events")),
            ("POST", format!("/agent/stop/{id}")),
            ("DELETE", format!("/agent/{id}")),
        ] {
            let response = as_client(&server, method, &path, Some(KEY_B))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 404, "{method} {path} by another key");
        }
        assert_eq!(agents_of(&server, KEY_B).await, json!([]));
        assert_eq!(agents_of(&server, KEY_A).await[0]["agent_id"], id);
        let stop = as_client(&server, "POST", &format!("/agent/stop/{id}"), Some(KEY_A))
            .send()
            .await
            .unwrap();
        assert_eq!(
            stop.status(),
            200,
            "still running: the other key's stop did nothing"
        );
    })
    .await;
}

#[tokio::test]
async fn a_session_belongs_to_the_client_that_made_it() {
    within(TEST_LIMIT, async {
        let server = keyed_server(&[]).await;
        let response = as_client(&server, "POST", "/agent/stream", Some(KEY_A))
            .json(&json!({"prompt": "hi"}))
            .send()
            .await
            .unwrap();
        let events = SseReader::new(response).collect_all().await;
        let session = events.iter().find(|e| e.kind() == "result").unwrap().json()["session_id"]
            .as_str()
            .unwrap()
            .to_owned();

        let theirs = as_client(&server, "POST", "/agent/stream", Some(KEY_B))
            .json(&json!({"prompt": "what did they say?", "session_id": session}))
            .send()
            .await
            .unwrap();
        assert_eq!(theirs.status(), 403);
        let theirs = theirs.json::<Value>().await.unwrap()["detail"]
            .as_str()
            .unwrap()
            .replace(&session, "SESSION");
        let unknown = uuid::Uuid::new_v4().to_string();
        let nobodys = as_client(&server, "POST", "/agent/stream", Some(KEY_B))
            .json(&json!({"prompt": "hi", "session_id": unknown}))
            .send()
            .await
            .unwrap();
        assert_eq!(nobodys.status(), 403);
        let nobodys = nobodys.json::<Value>().await.unwrap()["detail"]
            .as_str()
            .unwrap()
            .replace(&unknown, "SESSION");
        assert_eq!(
            theirs, nobodys,
            "another key's session is told apart from one never made"
        );

        let mine = as_client(&server, "POST", "/agent/stream", Some(KEY_A))
            .json(&json!({"prompt": "and then?", "session_id": session}))
            .send()
            .await
            .unwrap();
        assert_eq!(mine.status(), 200);
        let events = SseReader::new(mine).collect_all().await;
        assert_eq!(complete_of(&events)["status"], "completed");
        assert_eq!(server.fake.runs(), 2, "the refused resume spawned nothing");
    })
    .await;
}

#[tokio::test]
async fn each_key_has_its_own_agent_limit() {
    within(TEST_LIMIT, async {
        let server = keyed_server(&["--max-agents-per-key", "1"]).await;
        // Started, and seen running: its init line proves the CLI ran.
        let started_and_running = |key: &'static str| {
            let server = &server;
            async move {
                let response = start_as(server, key, json!({"prompt": "@hang"})).await;
                assert_eq!(response.status(), 200);
                let id = response.json::<Value>().await.unwrap()["agent_id"]
                    .as_str()
                    .unwrap()
                    .to_owned();
                let events = as_client(server, "GET", &format!("/agent/{id}/events"), Some(key))
                    .send()
                    .await
                    .unwrap();
                SseReader::new(events).next_of("system").await;
            }
        };
        started_and_running(KEY_A).await;
        let second = start_as(&server, KEY_A, json!({"prompt": "@hang"})).await;
        assert_eq!(second.status(), 429);
        assert!(second.headers().contains_key("retry-after"));
        assert!(
            second.json::<Value>().await.unwrap()["detail"]
                .as_str()
                .unwrap()
                .contains("PROXY_MAX_AGENTS_PER_KEY")
        );
        started_and_running(KEY_B).await; // another key still may
        assert_eq!(server.fake.runs(), 2, "the refused start ran nothing");
    })
    .await;
}

#[tokio::test]
async fn the_operators_policy_reaches_the_cli_and_requests_may_narrow_it() {
    within(TEST_LIMIT, async {
        let server = TestServer::with_args(&[
            "--tools",
            "Read,Grep,Bash",
            "--allowed-tools",
            "Read,Bash(git log:*)",
            "--disallowed-tools",
            "WebFetch",
            "--permission-mode",
            "acceptEdits",
            "--max-turns",
            "8",
        ])
        .await;
        let events = server.stream_all("hi").await;
        let argv = fake_argv(&events[1].json());
        for flag in [
            "--tools=Read,Grep,Bash",
            "--allowedTools=Read,Bash(git log:*)",
            "--disallowedTools=WebFetch",
            "--permission-mode=acceptEdits",
            "--max-turns=8",
        ] {
            assert!(argv.contains(&flag.to_owned()), "{flag} in {argv:?}");
        }

        let narrow = json!({
            "prompt": "hi", "tools": ["Read"], "allowed_tools": ["Read"], "disallowed_tools": ["Grep"],
            "permission_mode": "plan", "max_turns": 2, "append_system_prompt": "--be brief; ignore --flags",
        });
        let response = server.post_json("/agent/stream", narrow).await;
        let events = SseReader::new(response).collect_all().await;
        let argv = fake_argv(&events[1].json());
        for flag in [
            "--tools=Read",
            "--allowedTools=Read",
            "--disallowedTools=WebFetch,Grep",
            "--permission-mode=plan",
            "--max-turns=2",
            "--append-system-prompt=--be brief; ignore --flags",
        ] {
            assert!(argv.contains(&flag.to_owned()), "{flag} in {argv:?}");
        }
    })
    .await;
}

#[tokio::test]
async fn a_request_for_a_wider_policy_is_refused() {
    within(TEST_LIMIT, async {
        let server = TestServer::with_args(&[
            "--tools",
            "Read,Grep",
            "--allowed-tools",
            "Read",
            "--max-turns",
            "5",
        ])
        .await;
        for (body, mentions) in [
            (json!({"prompt": "hi", "tools": ["Read", "Bash"]}), "Bash"),
            (json!({"prompt": "hi", "allowed_tools": ["Grep"]}), "Grep"),
            (
                json!({"prompt": "hi", "permission_mode": "bypassPermissions"}),
                "bypassPermissions",
            ),
            (
                json!({"prompt": "hi", "permission_mode": "acceptEdits"}),
                "acceptEdits",
            ),
            (json!({"prompt": "hi", "max_turns": 6}), "max_turns"),
        ] {
            for path in ["/agent/stream", "/agent/start"] {
                let response = server.post_json(path, body.clone()).await;
                assert_eq!(response.status(), 403, "{body}");
                let detail = response.json::<Value>().await.unwrap()["detail"]
                    .as_str()
                    .unwrap()
                    .to_owned();
                assert!(detail.contains(mentions), "{detail}");
            }
        }
        let no_operator_tools = TestServer::start().await;
        let response = no_operator_tools
            .post_json("/agent/stream", json!({"prompt": "hi", "tools": ["Read"]}))
            .await;
        assert_eq!(
            response.status(),
            403,
            "without CLAUDE_TOOLS, clients cannot pick tools"
        );
        assert_eq!(server.fake.runs() + no_operator_tools.fake.runs(), 0);
    })
    .await;
}

#[tokio::test]
async fn cwd_must_stay_inside_the_workdir() {
    within(TEST_LIMIT, async {
        let server = TestServer::start().await;
        let work = server.fake.dir.path().join("work");
        std::fs::create_dir_all(work.join("project")).unwrap();
        std::os::unix::fs::symlink("/etc", work.join("to-etc")).unwrap();

        for cwd in ["..", "project/../..", "/tmp", "to-etc", "to-etc/ssl"] {
            let response = server
                .post_json("/agent/stream", json!({"prompt": "hi", "cwd": cwd}))
                .await;
            assert_eq!(response.status(), 403, "{cwd}");
        }
        let missing = server
            .post_json("/agent/stream", json!({"prompt": "hi", "cwd": "nowhere"}))
            .await;
        assert_eq!(missing.status(), 422);
        assert_eq!(server.fake.runs(), 0);

        let response = server
            .post_json("/agent/stream", json!({"prompt": "hi", "cwd": "project"}))
            .await;
        let events = SseReader::new(response).collect_all().await;
        let cwd = events[1].json()["cwd"].as_str().unwrap().to_owned();
        assert_eq!(
            std::path::Path::new(&cwd),
            work.canonicalize().unwrap().join("project")
        );
        let default = server.stream_all("hi").await;
        assert_eq!(
            std::path::Path::new(default[1].json()["cwd"].as_str().unwrap()),
            work.canonicalize().unwrap()
        );
    })
    .await;
}

#[tokio::test]
async fn whether_a_path_outside_the_workdir_exists_is_not_told() {
    within(TEST_LIMIT, async {
        let server = TestServer::start().await;
        let work = server.fake.dir.path().join("work");
        std::fs::create_dir_all(&work).unwrap();
        let missing = format!("/no-such-place-{}", uuid::Uuid::new_v4().simple());
        std::os::unix::fs::symlink(&missing, work.join("to-nowhere")).unwrap();
        std::os::unix::fs::symlink("/etc", work.join("to-etc")).unwrap();
        let up = "../".repeat(40);
        let detail_of = |cwd: String| {
            let server = &server;
            async move {
                let response = server
                    .post_json("/agent/stream", json!({"prompt": "hi", "cwd": cwd}))
                    .await;
                let status = response.status().as_u16();
                let detail = response.json::<Value>().await.unwrap()["detail"].clone();
                (status, detail)
            }
        };
        let existing = detail_of(format!("{up}etc")).await;
        assert_eq!(existing.0, 403, "{existing:?}");
        for cwd in [
            format!("{up}etc/no-such-file-here"),
            format!("{up}{}", &missing[1..]),
            format!("nowhere/{up}etc"),
            "to-nowhere".to_owned(),
            "to-nowhere/below".to_owned(),
            "to-etc/no-such-file-here".to_owned(),
        ] {
            assert_eq!(detail_of(cwd.clone()).await, existing, "{cwd}");
        }
        let (status, _) = detail_of("nowhere/below".to_owned()).await;
        assert_eq!(status, 422, "what is missing inside the workdir is said");
        assert_eq!(server.fake.runs(), 0);
    })
    .await;
}

#[tokio::test]
async fn a_session_its_agent_still_runs_on_is_not_resumed_again() {
    within(TEST_LIMIT, async {
        let server = TestServer::start().await;
        let started: Value = server
            .post_json("/agent/start", json!({"prompt": "@hang"}))
            .await
            .json()
            .await
            .unwrap();
        let running = started["agent_id"].as_str().unwrap().to_owned();
        let detail = || async {
            let response = server.get(&format!("/agent/{running}")).await;
            response.json::<Value>().await.unwrap()
        };
        support::until("the agent shows its session", TEST_LIMIT, || async {
            detail().await["session_id"].is_string()
        })
        .await;
        let session = detail().await["session_id"].as_str().unwrap().to_owned();

        for (path, interactive) in [("/agent/stream", false), ("/agent/start", true)] {
            let again = server
                .post_json(
                    path,
                    json!({"prompt": "hi", "session_id": session, "interactive": interactive}),
                )
                .await;
            assert_eq!(again.status(), 409, "{path}");
            let detail = again.json::<Value>().await.unwrap()["detail"]
                .as_str()
                .unwrap()
                .to_owned();
            assert!(detail.contains(&running), "{detail}");
        }
        assert_eq!(server.fake.runs(), 1, "the refused resumes ran nothing");

        assert_eq!(server.stop(&running).await.status(), 200);
        let resumed = server
            .post_json(
                "/agent/stream",
                json!({"prompt": "hi", "session_id": session}),
            )
            .await;
        assert_eq!(
            resumed.status(),
            200,
            "once it has ended, it may be resumed"
        );
        let events = SseReader::new(resumed).collect_all().await;
        assert_eq!(complete_of(&events)["status"], "completed");
    })
    .await;
}

#[tokio::test]
async fn a_rate_limit_is_reported_and_holds_new_requests_back() {
    within(TEST_LIMIT, async {
        let server = TestServer::start().await;
        let prompt = concat!(
            "@line {\"type\":\"assistant\",\"error\":\"rate_limit\",\"api_error_status\":429,\"message\":{\"content\":[]}}\n",
            "@line {\"type\":\"rate_limit_event\",\"rate_limit_info\":{\"status\":\"rejected\",\"resetsAt\":4102444800}}\n",
            "@result-error API Error: Request rejected (429)\n@exit 1"
        );
        let events = server.stream_all(prompt).await;
        let limited = events
            .iter()
            .find(|e| e.event == "error" && e.json()["code"] == "rate_limited")
            .expect("a rate_limited event");
        assert!(
            limited.json()["message"]
                .as_str()
                .unwrap()
                .contains("rate limited")
        );
        assert_eq!(complete_of(&events)["status"], "failed");

        for path in ["/agent/stream", "/agent/start"] {
            let response = server.post_json(path, json!({"prompt": "hi"})).await;
            assert_eq!(response.status(), 429, "{path}");
            let retry_after: u64 = response.headers()["retry-after"]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            assert!(
                retry_after > 3600,
                "until the reset the CLI reported (2100-01-01)"
            );
            assert!(
                response.json::<Value>().await.unwrap()["detail"]
                    .as_str()
                    .unwrap()
                    .contains("2100-01-01")
            );
        }
        assert_eq!(server.fake.runs(), 1);
        // An operator sees the gate in /health (the dashboard shows it).
        let health = server.health().await;
        assert!(
            health["rate_limited_until"]
                .as_str()
                .is_some_and(|until| until.starts_with("2100-01-01")),
            "{health}"
        );
    })
    .await;
}

#[tokio::test]
async fn keys_never_reach_the_log() {
    within(TEST_LIMIT, async {
        let fake = FakeInstall::new();
        let cli = fake.cli_path().display().to_string();
        let proxy = Proxy::start(
            fake.dir.path(),
            &[
                ("CLAUDE_CLI_PATH", &cli),
                ("PROXY_API_KEY", KEY_A),
                ("RUST_LOG", "trace"),
                ("PROXY_LOG_FORMAT", "json"),
            ],
        );
        let events = proxy.stream("hi").await.collect_all().await;
        assert_eq!(complete_of(&events)["status"], "completed");
        let wrong = reqwest::Client::new()
            .get(proxy.url("/agents"))
            .bearer_auth("a-wrong-key-0123456789")
            .send()
            .await
            .unwrap();
        assert_eq!(wrong.status(), 401);
        let log = proxy.log().join("\n");
        assert!(log.contains("agent started"), "the log was read: {log}");
        assert!(
            !log.contains(KEY_A) && !log.contains("a-wrong-key-0123456789"),
            "a key is in the log"
        );
    })
    .await;
}

#[test]
fn a_network_address_without_a_key_is_refused_at_start_up() {
    let output = command(&[("PROXY_HOST", "0.0.0.0"), ("PROXY_PORT", "0")])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("PROXY_API_KEY") && stderr.contains("PROXY_ALLOW_UNAUTHENTICATED"),
        "{stderr}"
    );
    let short = command(&[("PROXY_API_KEY", "short")]).output().unwrap();
    assert_eq!(short.status.code(), Some(2));
    assert!(
        !String::from_utf8(short.stderr).unwrap().contains("short\""),
        "the key is not echoed"
    );
}

/// Reads until the server closes the connection; true if it did so.
fn closed_by_server(stream: &mut TcpStream) -> bool {
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut buf = [0u8; 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(err) if err.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

#[tokio::test]
async fn a_client_trickling_its_headers_is_cut_off_and_connections_are_capped() {
    within(TEST_LIMIT, async {
        let server = TestServer::with_args(&[
            "--header-read-timeout-secs",
            "0.5",
            "--max-connections",
            "2",
        ])
        .await;
        let addr = server.addr;
        let (slow_closed, third_closed) = tokio::task::spawn_blocking(move || {
            let mut slow = TcpStream::connect(addr).unwrap();
            slow.write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\n")
                .unwrap();
            let mut idle = TcpStream::connect(addr).unwrap();
            // Both slots are held: a third connection is closed at once.
            let mut third = TcpStream::connect(addr).unwrap();
            let third_closed = closed_by_server(&mut third);
            idle.write_all(b"X").unwrap();
            (closed_by_server(&mut slow), third_closed)
        })
        .await
        .unwrap();
        assert!(
            third_closed,
            "a connection past PROXY_MAX_CONNECTIONS is closed"
        );
        assert!(
            slow_closed,
            "headers not sent within the timeout: disconnected"
        );
        // The slots are free again.
        assert_eq!(server.health().await["status"], "ok");
    })
    .await;
}

/// A raw HTTP/1.1 request with this `Host`, and the status line's code.
fn status_for_host(addr: std::net::SocketAddr, host: &str, request_line: &str, body: &str) -> u16 {
    let mut tcp = TcpStream::connect(addr).unwrap();
    let request = format!(
        "{request_line} HTTP/1.1\r\nHost: {host}\r\nOrigin: http://{host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    tcp.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    tcp.read_to_string(&mut response).unwrap();
    response[9..12].parse().unwrap()
}

#[tokio::test]
async fn without_keys_only_loopback_names_and_allowed_hosts_are_answered() {
    within(TEST_LIMIT, async {
        let server = TestServer::with_args(&["--allowed-hosts", "proxy.internal"]).await;
        let addr = server.addr;
        let start = ("POST /agent/start", r#"{"prompt": "@text hi"}"#);
        let answers = tokio::task::spawn_blocking(move || {
            [
                "evil.example.com",
                "evil.example.com:8000",
                "localhost.evil.example",
                "10.0.0.1",
                "localhost",
                "localhost:8000",
                "127.0.0.1:8000",
                "[::1]:8000",
                "proxy.internal:8000",
                "PROXY.INTERNAL",
            ]
            .map(|host| (host, status_for_host(addr, host, start.0, start.1)))
        })
        .await
        .unwrap();
        for (host, status) in answers {
            let allowed = !host.contains("evil") && !host.starts_with("10.");
            assert_eq!(status == 200, allowed, "{host}: {status}");
            if !allowed {
                assert_eq!(status, 403, "{host}");
            }
        }
        let listed: Value = server.get("/agents").await.json().await.unwrap();
        assert_eq!(
            listed["agents"].as_array().unwrap().len(),
            6,
            "only the allowed hosts started agents: {listed}"
        );
        // Every route, the public ones too: a rebound page reads nothing.
        let health = tokio::task::spawn_blocking(move || {
            status_for_host(addr, "evil.example.com", "GET /health", "")
        });
        assert_eq!(health.await.unwrap(), 403);

        // What a browser never sends, but a client could: each way to name another host.
        let raw = tokio::task::spawn_blocking(move || {
            [
                "GET /agents HTTP/1.1\r\nHost: localhost\r\nHost: evil.example.com\r\n",
                "GET http://evil.example.com/agents HTTP/1.1\r\nHost: localhost\r\n",
                "GET /agents HTTP/1.1\r\n",
            ]
            .map(|head| {
                let mut tcp = TcpStream::connect(addr).unwrap();
                tcp.write_all(format!("{head}Connection: close\r\n\r\n").as_bytes())
                    .unwrap();
                let mut response = String::new();
                tcp.read_to_string(&mut response).unwrap();
                response[9..12].parse::<u16>().unwrap()
            })
        });
        assert_eq!(
            raw.await.unwrap(),
            [400, 403, 400],
            "two Hosts, another host in the target, no Host in HTTP/1.1"
        );

        // With keys, the key keeps strangers out, whatever name they use.
        let keyed = keyed_server(&[]).await;
        let addr = keyed.addr;
        let status = tokio::task::spawn_blocking(move || {
            status_for_host(addr, "proxy.example.com", "GET /health", "")
        });
        assert_eq!(status.await.unwrap(), 200);
    })
    .await;
}

#[tokio::test]
async fn silent_connections_are_closed_and_a_trickled_body_is_cut_off() {
    within(TEST_LIMIT, async {
        let server = keyed_server(&[
            "--header-read-timeout-secs",
            "0.5",
            "--body-read-timeout-secs",
            "1",
            "--max-connections",
            "5",
        ])
        .await;
        let addr = server.addr;
        // More silent connections than slots: each is closed without a byte sent, so the
        // slots come back.
        let silent_closed = tokio::task::spawn_blocking(move || {
            let mut silent: Vec<TcpStream> =
                (0..5).map(|_| TcpStream::connect(addr).unwrap()).collect();
            silent.iter_mut().all(closed_by_server)
        })
        .await
        .unwrap();
        assert!(silent_closed, "a connection that sends nothing is closed");
        assert_eq!(server.get("/health").await.status(), 200);

        // A body that keeps coming, a byte at a time, but never ends.
        let (answer, closed) = tokio::task::spawn_blocking(move || {
            let mut tcp = TcpStream::connect(addr).unwrap();
            let head = format!(
                "POST /agent/start HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {KEY_A}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{"
            );
            tcp.write_all(head.as_bytes()).unwrap();
            tcp.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
            let mut answer = Vec::new();
            let mut buf = [0u8; 4096];
            loop {
                // Each byte well within the header timeout of the one before.
                if tcp.write_all(b" ").is_err() {
                    break;
                }
                match tcp.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => answer.extend_from_slice(&buf[..n]),
                    Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(err) if err.kind() == std::io::ErrorKind::TimedOut => {}
                    Err(_) => break,
                }
            }
            let closed = closed_by_server(&mut tcp);
            (String::from_utf8_lossy(&answer).into_owned(), closed)
        })
        .await
        .unwrap();
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
        assert!(answer.contains("PROXY_BODY_READ_TIMEOUT_SECS"), "{answer}");
        assert!(closed);
        assert_eq!(server.fake.runs(), 0);
    })
    .await;
}

#[tokio::test]
async fn health_without_a_key_says_only_whether_it_is_up() {
    within(TEST_LIMIT, async {
        let server = keyed_server(&[]).await;
        for key in [None, Some("wrong-key-0123456789abc")] {
            let health: Value = as_client(&server, "GET", "/health", key)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let fields: Vec<&String> = health.as_object().unwrap().keys().collect();
            assert_eq!(fields, ["status", "timestamp"], "{key:?}: {health}");
            let text = health.to_string();
            assert!(!text.contains(&server.fake.cli_path().display().to_string()));
        }
        let health: Value = as_client(&server, "GET", "/health", Some(KEY_A))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(health["status"], "ok");
        assert_eq!(
            health["cli"]["path"],
            server.fake.cli_path().display().to_string()
        );
        assert_eq!(health["storage"]["ok"], true);
        assert_eq!(health["max_agents"], 8);
    })
    .await;
}

#[tokio::test]
async fn metrics_open_to_the_operators_key_only_when_there_is_one() {
    within(TEST_LIMIT, async {
        const METRICS_KEY: &str = "metrics-key-0123456789abc";
        let server = keyed_server(&["--metrics-key", METRICS_KEY]).await;
        let status = |key: Option<&'static str>| {
            let request = as_client(&server, "GET", "/metrics", key);
            async move { request.send().await.unwrap().status() }
        };
        assert_eq!(status(None).await, 401);
        assert_eq!(status(Some("wrong-key-0123456789abc")).await, 401);
        assert_eq!(
            status(Some(KEY_A)).await,
            403,
            "a client key does not open it"
        );
        assert_eq!(status(Some(METRICS_KEY)).await, 200);
        // The metrics key is no client key.
        assert_eq!(
            as_client(&server, "GET", "/agents", Some(METRICS_KEY))
                .send()
                .await
                .unwrap()
                .status(),
            401
        );

        // Without one, any client key reads the totals (the README says so).
        let open = keyed_server(&[]).await;
        let metrics = as_client(&open, "GET", "/metrics", Some(KEY_B))
            .send()
            .await
            .unwrap();
        assert_eq!(metrics.status(), 200);
    })
    .await;
}

#[tokio::test]
async fn two_keys_in_one_request_are_refused() {
    within(TEST_LIMIT, async {
        let server = keyed_server(&[]).await;
        for header in ["authorization", "x-api-key"] {
            let value = |key: &str| {
                if header == "authorization" {
                    format!("Bearer {key}")
                } else {
                    key.to_owned()
                }
            };
            let response = server
                .client
                .post(server.url("/agent/start"))
                .header(header, value(KEY_A))
                .header(header, value(KEY_B))
                .json(&json!({"prompt": "@text hi"}))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 400, "{header} twice");
            let detail: Value = response.json().await.unwrap();
            assert!(
                detail["detail"]
                    .as_str()
                    .unwrap()
                    .contains("more than once"),
                "{detail}"
            );
        }
        assert_eq!(server.fake.runs(), 0);
    })
    .await;
}

#[tokio::test]
async fn a_long_request_id_is_replaced_not_echoed() {
    within(TEST_LIMIT, async {
        let server = TestServer::start().await;
        let long = "r".repeat(7000);
        let response = server
            .client
            .get(server.url("/agents"))
            .header("x-request-id", &long)
            .send()
            .await
            .unwrap();
        let id = response.headers()["x-request-id"].to_str().unwrap();
        assert!(uuid::Uuid::try_parse(id).is_ok(), "a new id: {id}");
        let kept = server
            .client
            .get(server.url("/agents"))
            .header("x-request-id", "trace-42")
            .send()
            .await
            .unwrap();
        assert_eq!(kept.headers()["x-request-id"], "trace-42");
    })
    .await;
}

#[tokio::test]
async fn a_flood_of_refused_connections_is_not_a_flood_of_log_lines() {
    within(TEST_LIMIT, async {
        const FLOOD: usize = 100;
        let server =
            TestServer::with_args(&["--max-connections", "1", "--header-read-timeout-secs", "30"])
                .await;
        let addr = server.addr;
        let refused = tokio::task::spawn_blocking(move || {
            // The one slot is held (by the holder, or, if the flood's first connection is
            // accepted before it, by that one); every other connection is refused, at once.
            let _holder = TcpStream::connect(addr).unwrap();
            (0..FLOOD)
                .filter(|_| {
                    let mut tcp = TcpStream::connect(addr).unwrap();
                    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                    match tcp.read(&mut [0u8; 1]) {
                        Ok(0) => true,
                        Err(err) => err.kind() == std::io::ErrorKind::ConnectionReset,
                        Ok(_) => false,
                    }
                })
                .count()
        })
        .await
        .unwrap();
        assert!(refused >= FLOOD - 1, "{refused} of {FLOOD} refused");
        let lines = || {
            server
                .proxy
                .log()
                .into_iter()
                .filter(|line| line.contains("connections refused"))
                .count()
        };
        support::eventually("the refusals are logged", TEST_LIMIT, || lines() > 0).await;
        assert!(
            lines() < refused,
            "{} log lines for {refused} refused connections",
            lines()
        );
    })
    .await;
}
