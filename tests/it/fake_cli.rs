//! The proxy's rules, shown over real TCP with the fake CLI (`src/bin/fake_claude.rs`), whose
//! prompt says what it does.

use crate::support;

use crate::support::{TEST_LIMIT, within};

use std::time::Duration;

use crate::support::sse::{complete_of, error_codes};
use crate::support::{
    FAMILY, SseEvent, TestServer, eventually, process_alive, process_gone, reaped, until,
};
use serde_json::{Value, json};

fn lines_of(events: &[SseEvent]) -> Vec<&SseEvent> {
    events.iter().filter(|e| e.event == "message").collect()
}

#[tokio::test]
async fn a_stream_is_agent_then_every_cli_line_then_complete() {
    within(TEST_LIMIT, async {
        let server = TestServer::start().await;
        let reader = server.stream("What is 2 + 2?").await;
        let headers = reader.response_headers.clone();
        let events = reader.collect_all().await;

        assert_eq!(headers["content-type"], "text/event-stream");
        assert_eq!(headers["cache-control"], "no-cache");
        assert_eq!(headers["x-accel-buffering"], "no");
        let ids: Vec<u64> = events.iter().map(SseEvent::id_number).collect();
        assert_eq!(
            ids,
            (1..=events.len() as u64).collect::<Vec<_>>(),
            "ids count up from 1"
        );

        let agent = events[0].json();
        assert_eq!(events[0].event, "agent");
        assert_eq!(agent["type"], "agent");
        assert_eq!(
            headers["x-agent-id"].to_str().unwrap(),
            agent["agent_id"].as_str().unwrap()
        );
        let kinds: Vec<String> = lines_of(&events).iter().map(|e| e.kind()).collect();
        assert_eq!(kinds, ["system", "assistant", "result"]);
        let init = lines_of(&events)[0].json();
        assert_eq!(
            init["pid"], agent["pid"],
            "the agent event names the CLI's pid"
        );

        let complete = complete_of(&events);
        assert_eq!(complete["status"], "completed");
        assert_eq!(complete["exit_code"], 0);
        assert_eq!(complete["agent_id"], agent["agent_id"]);
        assert!(complete["duration_ms"].is_u64());
        assert!(error_codes(&events).is_empty());
        assert!(
            reaped(agent["pid"].as_u64().unwrap() as u32),
            "the CLI was reaped"
        );
    })
    .await;
}

#[tokio::test]
async fn json_lines_pass_byte_for_byte_and_other_lines_are_wrapped() {
    within(TEST_LIMIT, async {
        let server = TestServer::start().await;
        let odd_json = r#"{"type":"assistant",  "spacing" : [1 ,2],"text":"caf\u00e9 \"q\""}"#;
        let prompt = format!(
            "@line {odd_json}\n@line not json at all\n@result\n@no-newline {{\"type\":\"tail\"}}"
        );
        let events = server.stream_all(&prompt).await;
        let lines = lines_of(&events);

        assert_eq!(
            lines[1].data, odd_json,
            "valid JSON is passed exactly as written"
        );
        assert_eq!(
            lines[2].json(),
            json!({"type": "proxy_raw", "line": "not json at all"})
        );
        assert_eq!(
            lines.last().unwrap().data,
            r#"{"type":"tail"}"#,
            "a last line without newline still arrives"
        );
        assert_eq!(complete_of(&events)["status"], "completed");
    })
    .await;
}

#[tokio::test]
async fn an_overlong_line_is_dropped_and_the_stream_goes_on() {
    within(TEST_LIMIT, async {
        let server = TestServer::with_args(&["--max-line-bytes", "1048576"]).await;
        let events = server
            .stream_all("@text before\n@big 104857600\n@text after\n@result")
            .await;

        let error = events
            .iter()
            .find(|e| e.event == "error")
            .expect("an error event");
        assert_eq!(error.json()["code"], "line_too_long");
        assert_eq!(error.json()["bytes"], 104857600);
        let texts: Vec<Value> = lines_of(&events)
            .iter()
            .filter(|e| e.kind() == "assistant")
            .map(|e| e.json()["message"]["content"][0]["text"].clone())
            .collect();
        assert_eq!(texts, ["before", "after"]);
        assert_eq!(complete_of(&events)["status"], "completed");
    })
    .await;
}

#[tokio::test]
async fn a_stderr_flood_never_blocks_and_its_tail_explains_the_exit() {
    within(TEST_LIMIT, async {
        let server = TestServer::start().await;
        let events = server
            .stream_all("@stderr 10000000\n@stderr-line fatal: the disk is on fire\n@exit 3")
            .await;

        let error = events.iter().find(|e| e.event == "error").unwrap().json();
        assert_eq!(error["code"], "exit_nonzero");
        assert_eq!(error["exit_code"], 3);
        assert!(
            error["message"]
                .as_str()
                .unwrap()
                .contains("fatal: the disk is on fire"),
            "{error}"
        );
        let stderr = error["stderr"].as_str().unwrap();
        assert!(
            stderr.len() <= 4096 && stderr.ends_with("fatal: the disk is on fire\n"),
            "{stderr:?}"
        );
        assert_eq!(error_codes(&events), ["exit_nonzero", "no_result"]);
        let complete = complete_of(&events);
        assert_eq!(complete["status"], "failed");
        assert_eq!(complete["exit_code"], 3);
    })
    .await;
}

#[tokio::test]
async fn a_run_without_result_or_with_an_error_result_fails() {
    within(TEST_LIMIT, async {
        let server = TestServer::start().await;
        let events = server.stream_all("@text thinking").await;
        assert_eq!(error_codes(&events), ["no_result"]);
        assert_eq!(complete_of(&events)["status"], "failed");

        let events = server.stream_all("@result-error it went wrong").await;
        assert!(
            error_codes(&events).is_empty(),
            "the CLI's own error result says it all"
        );
        assert_eq!(complete_of(&events)["status"], "failed");
        assert_eq!(complete_of(&events)["exit_code"], 0);
    })
    .await;
}

#[tokio::test]
async fn a_cli_killed_by_a_signal_has_no_exit_code_but_its_signal() {
    within(TEST_LIMIT, async {
        let server = TestServer::start().await;
        let events = server.stream_all("@text going down\n@kill SEGV").await;
        let complete = complete_of(&events);
        assert_eq!(complete["status"], "failed");
        assert_eq!(complete["exit_code"], Value::Null);
        assert_eq!(complete["signal"], "SIGSEGV");
        assert!(error_codes(&events).contains(&"exit_nonzero".to_owned()));
    })
    .await;
}

#[tokio::test]
async fn a_two_mib_prompt_arrives_whole_on_stdin_and_never_on_argv() {
    within(TEST_LIMIT, async {
        let server = TestServer::start().await;
        let body: String = (0..2 * 1024 * 1024 / 64)
            .map(|i| format!("{i:063}\n"))
            .collect();
        let prompt = format!("@echo-stdin\n@result\n{body}");
        let events = server.stream_all(&prompt).await;
        let lines = lines_of(&events);

        assert_eq!(
            lines[0].json()["argv"].as_array().unwrap().len(),
            5,
            "no prompt among the arguments"
        );
        let echoed = lines
            .iter()
            .find(|e| e.kind() == "fake_stdin")
            .unwrap()
            .json();
        assert!(
            echoed["stdin"].as_str().unwrap() == prompt,
            "the prompt arrived changed"
        );
        assert_eq!(complete_of(&events)["status"], "completed");
    })
    .await;
}

#[tokio::test]
async fn a_prompt_that_looks_like_a_flag_stays_a_prompt() {
    within(TEST_LIMIT, async {
        let server = TestServer::start().await;
        let prompt = "--dangerously-skip-permissions";
        let events = server.stream_all(prompt).await;
        let init = lines_of(&events)[0].json();
        let argv: Vec<&str> = init["argv"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap())
            .collect();
        assert_eq!(
            &argv[1..],
            ["-p", "--output-format", "stream-json", "--verbose"]
        );
        assert_eq!(init["stdin_bytes"], prompt.len());
        assert_eq!(complete_of(&events)["status"], "completed");
    })
    .await;
}

#[tokio::test]
async fn model_and_session_reach_the_cli_as_single_arguments() {
    within(TEST_LIMIT, async {
        let server = TestServer::with_args(&["--default-model", "claude-haiku-4-5"]).await;
        let session = "0b6e7a43-5c3e-4a51-9d0f-0b8a3b8f7c11";
        let response = server
            .post_json(
                "/agent/stream",
                json!({"prompt": "hi", "session_id": session, "model": "claude-opus-4[1m]"}),
            )
            .await;
        let events = support::SseReader::new(response).collect_all().await;
        let init = lines_of(&events)[0].json();
        let argv: Vec<&str> = init["argv"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap())
            .collect();
        assert!(argv.contains(&"--model=claude-opus-4[1m]"), "{argv:?}");
        assert!(
            argv.contains(&format!("--resume={session}").as_str()),
            "{argv:?}"
        );

        let events = server.stream_all("hi").await;
        assert_eq!(
            lines_of(&events)[0].json()["model"],
            "claude-haiku-4-5",
            "the default model applies"
        );
    })
    .await;
}

#[tokio::test]
async fn a_silent_cli_gets_keep_alive_comments() {
    within(TEST_LIMIT, async {
        let server = TestServer::with_args(&["--keepalive-secs", "0.1"]).await;
        let mut reader = server.stream("@text ready\n@hang").await;
        reader.next_of("assistant").await;
        reader.wait_for_comments(2).await;
    })
    .await;
}

#[tokio::test]
async fn stop_ends_the_stream_and_the_whole_process_group() {
    within(TEST_LIMIT, async {
        let server = TestServer::start().await;
        let mut reader = server.stream(FAMILY).await;
        let agent = reader.next_of("agent").await.json();
        let pid = agent["pid"].as_u64().unwrap() as u32;
        let grandchild = reader.next_of("fake_grandchild").await.json()["pid"]
            .as_u64()
            .unwrap() as u32;
        reader.next_of("assistant").await;
        assert!(process_alive(pid) && process_alive(grandchild));

        let id = agent["agent_id"].as_str().unwrap();
        let response = server.stop(id).await;
        assert_eq!(response.status(), 200);
        assert_eq!(
            response.json::<Value>().await.unwrap(),
            json!({"status": "stopped", "agent_id": id})
        );

        let rest = reader.collect_all().await;
        assert_eq!(error_codes(&rest), ["stopped"]);
        let complete = complete_of(&rest);
        assert_eq!(complete["status"], "stopped");
        assert_eq!(complete["exit_code"], Value::Null);
        assert_eq!(complete["signal"], "SIGTERM");
        process_gone(pid).await;
        process_gone(grandchild).await; // it ignored SIGTERM: SIGKILL after the grace period

        let again = server.stop(id).await;
        assert_eq!(again.status(), 404, "a finished agent is not found");
    })
    .await;
}

#[tokio::test]
async fn a_cli_that_ignores_sigterm_is_killed_after_the_grace_period() {
    within(TEST_LIMIT, async {
        let server = TestServer::with_args(&["--stop-grace-secs", "0.5"]).await;
        let mut reader = server.stream("@ignore-term\n@text ready\n@hang").await;
        let agent = reader.next_of("agent").await.json();
        reader.next_of("assistant").await;
        let id = agent["agent_id"].as_str().unwrap();
        let response = server.stop(id).await;
        assert_eq!(response.status(), 200);
        let complete = complete_of(&reader.collect_all().await);
        assert_eq!(complete["status"], "stopped");
        assert_eq!(complete["signal"], "SIGKILL");
        process_gone(agent["pid"].as_u64().unwrap() as u32).await;
    })
    .await;
}

#[tokio::test]
async fn a_run_past_its_timeout_is_ended() {
    within(TEST_LIMIT, async {
        let server =
            TestServer::with_args(&["--agent-timeout-secs", "1", "--keepalive-secs", "0.2"]).await;
        let mut reader = server.stream("@grandchild\n@lines 1000000 50 100").await;
        let pid = reader.next_of("agent").await.json()["pid"]
            .as_u64()
            .unwrap() as u32;
        let grandchild = reader.next_of("fake_grandchild").await.json()["pid"]
            .as_u64()
            .unwrap() as u32;
        let rest = reader.collect_all().await;
        assert_eq!(error_codes(&rest), ["timeout"]);
        assert_eq!(complete_of(&rest)["status"], "timed_out");
        process_gone(pid).await;
        process_gone(grandchild).await;
    })
    .await;
}

#[tokio::test]
async fn a_cli_silent_past_the_idle_timeout_is_ended() {
    within(TEST_LIMIT, async {
        let server = TestServer::with_args(&["--idle-timeout-secs", "0.5"]).await;
        let events = server.stream_all("@text ready\n@hang").await;
        assert_eq!(error_codes(&events), ["idle_timeout"]);
        assert_eq!(complete_of(&events)["status"], "timed_out");
    })
    .await;
}

#[tokio::test]
async fn a_client_that_goes_away_takes_its_cli_with_it() {
    within(TEST_LIMIT, async {
        let server = TestServer::start().await;
        let mut reader = server.stream(FAMILY).await;
        let (pid, grandchild) = reader.family_pids().await;
        assert_eq!(server.health().await["active_agents"], 1);

        drop(reader);
        process_gone(pid).await;
        process_gone(grandchild).await;
        until(
            "the agent left the table",
            Duration::from_secs(10),
            || async { server.health().await["active_agents"] == 0 },
        )
        .await;
    })
    .await;
}

#[tokio::test]
async fn shutdown_ends_every_agent_and_finishes_open_streams() {
    within(TEST_LIMIT, async {
        let mut server = TestServer::with_args(&["--shutdown-timeout-secs", "5"]).await;
        let mut streamed = server.stream(FAMILY).await;
        let pid = streamed.next_of("agent").await.json()["pid"]
            .as_u64()
            .unwrap() as u32;
        let grandchild = streamed.next_of("fake_grandchild").await.json()["pid"]
            .as_u64()
            .unwrap() as u32;
        streamed.next_of("assistant").await;
        let (_, started_pid) = server.start_agent("@hang").await;

        let finished = server.trigger_shutdown();
        let rest = streamed.collect_all().await;
        assert_eq!(error_codes(&rest), ["shutdown"]);
        assert_eq!(complete_of(&rest)["status"], "stopped");
        finished
            .await
            .unwrap()
            .expect("the server shut down cleanly");
        for pid in [pid, grandchild, started_pid] {
            process_gone(pid).await;
        }
    })
    .await;
}

#[tokio::test]
async fn shutdown_does_not_wait_forever_for_a_client_that_stopped_reading() {
    within(TEST_LIMIT, async {
        let mut server = TestServer::with_args(&["--shutdown-timeout-secs", "1"]).await;
        // A flood that nobody reads: the socket and the pipe fill and the stream cannot finish.
        let reader = server.stream("@lines 100000000 1000").await;
        let health = server.health().await;
        assert_eq!(health["active_agents"], 1);
        server
            .shutdown()
            .await
            .expect("run returns despite the stuck client");
        drop(reader);
    })
    .await;
}

#[tokio::test]
async fn a_started_agent_runs_in_the_background_and_is_reaped() {
    within(TEST_LIMIT, async {
        let server = TestServer::start().await;
        let response = server
            .post_json(
                "/agent/start",
                json!({"prompt": "@lines 20000 2000\n@result"}),
            )
            .await;
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["status"], "started");
        assert!(uuid::Uuid::parse_str(body["agent_id"].as_str().unwrap()).is_ok());
        let pid = body["pid"].as_u64().unwrap() as u32;
        // 40 MB of output that nobody reads must not leave the CLI waiting on a full pipe.
        eventually(
            "the started agent was reaped",
            Duration::from_secs(30),
            || reaped(pid),
        )
        .await;
    })
    .await;
}

#[tokio::test]
async fn a_started_agent_can_be_stopped() {
    within(TEST_LIMIT, async {
        let server = TestServer::start().await;
        let (id, pid) = server.start_agent("@grandchild\n@hang").await;
        assert_eq!(server.health().await["active_agents"], 1);

        let response = server.stop(&id).await;
        assert_eq!(response.status(), 200);
        assert_eq!(
            server.health().await["active_agents"],
            0,
            "stop answers once the agent is gone"
        );
        assert!(reaped(pid), "the CLI was reaped before stop answered");
    })
    .await;
}

#[tokio::test]
async fn the_agent_limit_gives_429_and_spawns_nothing() {
    within(TEST_LIMIT, async {
        let server = TestServer::with_args(&["--max-agents", "1"]).await;
        let mut first = server.stream("@text ready\n@hang").await;
        first.next_of("assistant").await;

        for path in ["/agent/stream", "/agent/start"] {
            let response = server.post_json(path, json!({"prompt": "hi"})).await;
            assert_eq!(response.status(), 429);
            assert!(response.headers().contains_key("retry-after"));
            let detail: Value = response.json().await.unwrap();
            assert!(
                detail["detail"]
                    .as_str()
                    .unwrap()
                    .contains("PROXY_MAX_AGENTS"),
                "{detail}"
            );
        }
        assert_eq!(server.fake.runs(), 1);
    })
    .await;
}

#[tokio::test]
async fn a_missing_cli_gives_503_saying_how_to_fix_it() {
    within(TEST_LIMIT, async {
        let server = TestServer::with_args(&["--cli-path", "/nonexistent/bin/claude"]).await;
        let response = server
            .post_json("/agent/stream", json!({"prompt": "hi"}))
            .await;
        assert_eq!(response.status(), 503);
        let detail = response.json::<Value>().await.unwrap()["detail"]
            .as_str()
            .unwrap()
            .to_owned();
        for needle in [
            "/nonexistent/bin/claude",
            "@anthropic-ai/claude-code",
            "CLAUDE_CLI_PATH",
        ] {
            assert!(detail.contains(needle), "{needle} in {detail}");
        }
        let response = server.get("/health").await;
        assert_eq!(response.status(), 503, "a container's health check says so");
        let health: Value = response.json().await.unwrap();
        assert_eq!(health["status"], "unavailable");
        assert_eq!(health["cli"]["found"], false);
        assert_eq!(health["active_agents"], 0);

        let server = TestServer::with_args(&["--cli-path", "no-such-claude-here"]).await;
        let response = server
            .post_json("/agent/start", json!({"prompt": "hi"}))
            .await;
        assert_eq!(response.status(), 503);
        assert!(response.text().await.unwrap().contains("on PATH"));
    })
    .await;
}

#[tokio::test]
async fn health_reports_the_cli_and_the_running_agents() {
    within(TEST_LIMIT, async {
        let server = TestServer::start().await;
        let health = server.health().await;
        assert_eq!(health["status"], "ok");
        assert_eq!(health["active_agents"], 0);
        assert_eq!(health["cli"]["found"], true);
        assert_eq!(
            health["cli"]["path"],
            server.fake.cli_path().display().to_string()
        );
        assert_eq!(health["version"], env!("CARGO_PKG_VERSION"));
        assert_eq!(health["max_agents"], 8, "PROXY_MAX_AGENTS' default");
        assert_eq!(health["rate_limited_until"], Value::Null);
        let timestamp = health["timestamp"].as_str().unwrap();
        assert!(
            chrono::DateTime::parse_from_rfc3339(timestamp).is_ok() && timestamp.ends_with('Z'),
            "{timestamp}"
        );
    })
    .await;
}

#[tokio::test]
async fn bad_requests_get_a_json_4xx_and_spawn_nothing() {
    within(TEST_LIMIT, async {
        let server = TestServer::with_args(&["--max-body-bytes", "4096"]).await;
        let json = Some("application/json");
        let too_large = format!(r#"{{"prompt":"{}"}}"#, "x".repeat(5000));
        let unknown = format!("POST /agent/stop/{}", uuid::Uuid::new_v4());
        // The request, its content type and body, its status, and what the detail mentions.
        #[rustfmt::skip]
        let cases = [
            ("POST /agent/stream", json, "{\"prompt\": ", 400, ""),
            ("POST /agent/stream", Some("text/plain"), r#"{"prompt":"hi"}"#, 415, ""),
            ("POST /agent/start", None, r#"{"prompt":"hi"}"#, 415, ""),
            ("POST /agent/stream", json, too_large.as_str(), 413, ""),
            ("POST /agent/stream", json, r#"{"prompt":""}"#, 422, "prompt"),
            ("POST /agent/start", json, r#"{"prompt":"   "}"#, 422, "prompt"),
            ("POST /agent/stream", json, r#"{"prompt":"hi","sesion_id":"x"}"#, 422, "sesion_id"),
            ("POST /agent/stream", json, r#"{"prompt":5}"#, 422, "invalid type"),
            ("POST /agent/start", json, "{}", 422, "prompt"),
            ("POST /agent/stream", json, r#"{"prompt":"hi","session_id":"abc"}"#, 422, "session_id"),
            ("POST /agent/stream", json, r#"{"prompt":"hi","model":"--x y"}"#, 422, "model"),
            // One argument, `--model=--dangerously-skip-permissions`, but no model is named so.
            ("POST /agent/stream", json, r#"{"prompt":"hi","model":"--dangerously-skip-permissions"}"#, 422, "model"),
            ("POST /agent/stop/not-a-uuid", None, "", 404, "Agent not-a-uuid not found"),
            // Not even UTF-8: still an unknown agent, still JSON.
            ("POST /agent/stop/%C3%28", None, "", 404, "not found"),
            ("GET /agent/%FF", None, "", 404, "Agent %FF not found"),
            ("GET /agent/%FF/events", None, "", 404, "not found"),
            ("DELETE /agent/%FF", None, "", 404, "not found"),
            (unknown.as_str(), None, "", 404, "not found"),
            ("GET /agent/stream", None, "", 405, ""),
            ("DELETE /health", None, "", 405, ""),
            ("GET /nope", None, "", 404, ""),
        ];
        for (request, content_type, body, status, needle) in cases {
            let (method, path) = request.split_once(' ').unwrap();
            let mut request = server
                .client
                .request(method.parse().unwrap(), server.url(path))
                .body(body.to_owned());
            if let Some(content_type) = content_type {
                request = request.header("content-type", content_type);
            }
            let response = request.send().await.unwrap();
            let what = format!("{method} {path} ({content_type:?})");
            assert_eq!(response.status().as_u16(), status, "{what}");
            assert_eq!(
                response.headers()["content-type"],
                "application/json",
                "{what}"
            );
            let detail: Value = response.json().await.unwrap();
            let detail = detail["detail"]
                .as_str()
                .unwrap_or_else(|| panic!("{what}: no detail"));
            assert!(
                detail.contains(needle),
                "{what}: {detail:?} should mention {needle:?}"
            );
        }
        // A valid request afterwards runs, and is the only run there was.
        let events = server.stream_all("hi").await;
        assert_eq!(complete_of(&events)["status"], "completed");
        assert_eq!(server.fake.runs(), 1);
    })
    .await;
}

#[tokio::test]
async fn health_says_whether_the_cli_is_logged_in_and_warns_of_a_login_about_to_expire() {
    within(TEST_LIMIT, async {
        let fake = support::FakeInstall::new();
        let cli = fake.cli_path().display().to_string();
        let work = fake.dir.path().join("work").display().to_string();
        let start = |env: &[(&str, &str)]| {
            let mut all = vec![
                ("CLAUDE_CLI_PATH", cli.as_str()),
                ("CLAUDE_WORKDIR", work.as_str()),
            ];
            all.extend_from_slice(env);
            support::Proxy::start(fake.dir.path(), &all)
        };
        let health = |proxy: &support::Proxy| {
            let request = proxy.client.get(proxy.url("/health"));
            async move {
                let response = request.send().await.unwrap();
                (
                    response.status().as_u16(),
                    response.json::<Value>().await.unwrap(),
                )
            }
        };

        let (status, body) = health(&start(&[])).await;
        assert_eq!((status, &body["status"]), (200, &json!("ok")));
        assert_eq!(body["cli"]["logged_in"], true);
        assert_eq!(body["cli"]["auth_method"], "api_key");

        let (status, body) = health(&start(&[("FAKE_CLAUDE_LOGGED_OUT", "1")])).await;
        assert_eq!((status, &body["status"]), (503, &json!("unavailable")));
        assert_eq!(body["cli"]["found"], true);
        assert_eq!(body["cli"]["logged_in"], false);
        assert_eq!(body["cli"]["auth_method"], "none");

        let soon = (chrono::Utc::now() + chrono::Duration::hours(3))
            .timestamp_millis()
            .to_string();
        let proxy = start(&[("FAKE_CLAUDE_LOGIN_EXPIRES_AT", &soon)]);
        let (status, body) = health(&proxy).await;
        assert_eq!(status, 200);
        assert_eq!(body["cli"]["auth_method"], "claude.ai");
        assert!(body["cli"]["login_expires_at"].is_string(), "{body}");
        support::eventually("the warning is logged", TEST_LIMIT, || {
            proxy.has_logged("expires within a day")
        })
        .await;
        // A CLI that does not answer in time (a busy host, at start) makes the proxy
        // unavailable only until it is asked again, seconds later, not for the minute an
        // answer stands: Docker's health check would call it unhealthy by then.
        let once = fake.dir.path().join("auth-asked").display().to_string();
        let proxy = start(&[("FAKE_CLAUDE_AUTH_SILENT_ONCE", &once)]);
        support::eventually("the first question goes unanswered", TEST_LIMIT, || {
            proxy.has_logged("could not ask the CLI whether it is logged in")
        })
        .await;
        let (status, body) = health(&proxy).await;
        assert_eq!(status, 503, "{body}");
        support::until(
            "health says the CLI is logged in once it answers",
            Duration::from_secs(30),
            || async { health(&proxy).await.0 == 200 },
        )
        .await;
        assert_eq!(fake.runs(), 0, "asking is not a run");
    })
    .await;
}
