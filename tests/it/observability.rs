//! What operators see: /metrics in the Prometheus text format, and logs tied to their agent.

use crate::support;

use crate::support::{TEST_LIMIT, within};

use crate::support::proxy::Proxy;
use crate::support::sse::complete_of;
use crate::support::{FakeInstall, TestServer, eventually};
use serde_json::{Value, json};

/// The value of one sample (`name{labels} value`) in a Prometheus exposition.
fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

async fn metrics(server: &TestServer) -> String {
    server.get("/metrics").await.text().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_agents_events_exits_requests_and_kills() {
    within(TEST_LIMIT, async {
        let server = TestServer::start().await;
        let events = server.stream_all("@lines 3\n@result").await;
        let (id, _) = server.start_agent("@hang").await;
        assert_eq!(server.stop(&id).await.status(), 200);
        let mut gone = server.stream("@text hi\n@hang").await;
        gone.next_of("assistant").await;
        drop(gone);
        let unknown = uuid::Uuid::new_v4();
        assert_eq!(server.get(&format!("/agent/{unknown}")).await.status(), 404);

        let mut text = String::new();
        eventually(
            "the disconnected agent has finished",
            std::time::Duration::from_secs(15),
            || {
                // Its finish is counted last, after its kill and its exit.
                text = futures_executor_block(metrics(&server));
                sample(
                    &text,
                    r#"claude_proxy_agents_finished_total{status="stopped"}"#,
                ) == Some(2.0)
            },
        )
        .await;
        for (series, value) in [
            (r#"claude_proxy_agents_started_total{kind="stream"}"#, 2.0),
            (r#"claude_proxy_agents_started_total{kind="start"}"#, 1.0),
            (
                r#"claude_proxy_agents_finished_total{status="completed"}"#,
                1.0,
            ),
            (
                r#"claude_proxy_agents_finished_total{status="stopped"}"#,
                2.0,
            ),
            (r#"claude_proxy_cli_exits_total{code="0"}"#, 1.0),
            (r#"claude_proxy_cli_exits_total{code="SIGTERM"}"#, 2.0),
            (r#"claude_proxy_kills_total{reason="stopped"}"#, 1.0),
            (r#"claude_proxy_kills_total{reason="client_gone"}"#, 1.0),
            (r#"claude_proxy_client_disconnects_total"#, 1.0),
            (r#"claude_proxy_spawn_seconds_count"#, 3.0),
            (r#"claude_proxy_agents_running"#, 0.0),
            (
                r#"claude_proxy_http_requests_total{route="/agent/stream",method="POST",status="200"}"#,
                2.0,
            ),
            (
                r#"claude_proxy_http_requests_total{route="/agent/{agent_id}",method="GET",status="404"}"#,
                1.0,
            ),
        ] {
            assert_eq!(sample(&text, series), Some(value), "{series} in\n{text}");
        }
        let events_total = sample(&text, "claude_proxy_stream_events_total").unwrap();
        assert!(events_total >= events.len() as f64, "{events_total}");
        assert!(sample(&text, "claude_proxy_stream_bytes_total").unwrap() > 0.0);
        assert!(
            !text.contains(&unknown.to_string()),
            "raw paths never become labels"
        );
    })
    .await;
}

/// Runs a future to completion from inside a synchronous closure of an async test.
fn futures_executor_block<F: std::future::Future>(future: F) -> F::Output {
    tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(future))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_need_a_key_like_every_route_but_health() {
    within(TEST_LIMIT, async {
        let server = TestServer::with_args(&["--api-key", "metrics-key-0123456789"]).await;
        assert_eq!(server.get("/metrics").await.status(), 401);
        let response = server
            .client
            .get(server.url("/metrics"))
            .bearer_auth("metrics-key-0123456789")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert!(
            response.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("application/openmetrics-text")
        );
    })
    .await;
}

#[tokio::test]
async fn json_log_lines_carry_their_agents_id_pid_and_session() {
    within(TEST_LIMIT, async {
        let fake = FakeInstall::new();
        let cli = fake.cli_path().display().to_string();
        let proxy = Proxy::start(
            fake.dir.path(),
            &[("CLAUDE_CLI_PATH", &cli), ("PROXY_LOG_FORMAT", "json")],
        );
        let events = proxy.stream("hi").await.collect_all().await;
        let agent = events[0].json();
        let session =
            events.iter().find(|e| e.kind() == "result").unwrap().json()["session_id"].clone();
        assert_eq!(complete_of(&events)["status"], "completed");

        let mut ended = None;
        eventually(
            "the agent's end is logged",
            std::time::Duration::from_secs(15),
            || {
                ended = proxy
                    .log()
                    .iter()
                    .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                    .find(|l| l["message"] == "agent ended");
                ended.is_some()
            },
        )
        .await;
        let span = &ended.unwrap()["span"];
        assert_eq!(span["agent_id"], agent["agent_id"]);
        assert_eq!(span["pid"], agent["pid"]);
        assert_eq!(span["session_id"], session);
    })
    .await;
}

#[tokio::test]
async fn every_answer_carries_a_request_id_and_the_log_lines_of_its_request_too() {
    within(TEST_LIMIT, async {
        let fake = FakeInstall::new();
        let cli = fake.cli_path().display().to_string();
        let key = "request-id-key-0123456789";
        let proxy = Proxy::start(
            fake.dir.path(),
            &[
                ("CLAUDE_CLI_PATH", &cli),
                ("PROXY_LOG_FORMAT", "json"),
                ("PROXY_API_KEY", key),
            ],
        );
        let anonymous = reqwest::Client::new();
        let answers = [
            anonymous.get(proxy.url("/health")).send().await.unwrap(),
            anonymous.get(proxy.url("/agents")).send().await.unwrap(),
            proxy.client.get(proxy.url("/nope")).send().await.unwrap(),
            proxy
                .client
                .post(proxy.url("/agent/start"))
                .json(&json!({"prompt": ""}))
                .send()
                .await
                .unwrap(),
        ];
        let statuses: Vec<u16> = answers.iter().map(|r| r.status().as_u16()).collect();
        assert_eq!(statuses, [200, 401, 404, 422]);
        for answer in &answers {
            let id = answer.headers()["x-request-id"].to_str().unwrap();
            assert!(uuid::Uuid::try_parse(id).is_ok(), "{id}");
        }

        // A client's own id is kept, in the answer (a stream's too) and in the log.
        let response = proxy
            .client
            .post(proxy.url("/agent/stream"))
            .header("x-request-id", "backend-req-7")
            .json(&json!({"prompt": "hi"}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.headers()["x-request-id"], "backend-req-7");
        let events = support::SseReader::new(response).collect_all().await;
        assert_eq!(complete_of(&events)["status"], "completed");
        let mut started = None;
        eventually(
            "the agent's start is logged",
            std::time::Duration::from_secs(15),
            || {
                started = proxy
                    .log()
                    .iter()
                    .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                    .find(|l| l["message"] == "agent started");
                started.is_some()
            },
        )
        .await;
        let started = started.unwrap();
        assert_eq!(started["span"]["agent_id"], events[0].json()["agent_id"]);
        assert!(
            started.to_string().contains("backend-req-7"),
            "the request's id is on its log line: {started}"
        );
    })
    .await;
}
