//! OpenTelemetry: the proxy's spans, exported over OTLP/HTTP (protobuf) to a receiver of the
//! test's own, which decodes each `ExportTraceServiceRequest` as a collector would.

use std::collections::HashMap;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as OtlpValue;
use prost::Message;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use crate::support::{FakeInstall, Proxy, SseReader, within};

const TEST_LIMIT: Duration = Duration::from_secs(60);
const CLIENT_KEY: &str = "otel-client-key-must-not-leak-0123456789";
const COLLECTOR_SECRET: &str = "collector-secret-for-the-server-alone";
/// The caller's trace and span, as a backend with its own tracing would send them.
const CALLER_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

/// One span as the receiver got it.
#[derive(Debug, Clone)]
struct Received {
    service: String,
    trace_id: String,
    span_id: String,
    parent_span_id: String,
    name: String,
    attributes: HashMap<String, String>,
}

/// What one export brought: its spans, the whole body and the authorization it came with.
#[derive(Debug)]
struct Export {
    spans: Vec<Received>,
    body: Bytes,
    authorization: Option<String>,
    content_type: String,
}

/// An OTLP/HTTP receiver on a port of its own: each `POST /v1/traces` is decoded and handed to
/// the returned channel.
async fn receiver() -> (String, mpsc::UnboundedReceiver<Export>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let app = Router::new()
        .route("/v1/traces", post(receive))
        .with_state(tx);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), rx)
}

async fn receive(
    State(tx): State<mpsc::UnboundedSender<Export>>,
    headers: HeaderMap,
    body: Bytes,
) -> ([(&'static str, &'static str); 1], Vec<u8>) {
    let request = match headers["content-type"].to_str().unwrap() {
        "application/x-protobuf" => {
            ExportTraceServiceRequest::decode(body.clone()).expect("an OTLP trace export")
        }
        "application/json" => serde_json::from_slice(&body).expect("an OTLP trace export"),
        other => panic!("an OTLP content type: {other}"),
    };
    let mut spans = Vec::new();
    for resource_spans in &request.resource_spans {
        let service = resource_spans
            .resource
            .iter()
            .flat_map(|resource| &resource.attributes)
            .find(|kv| kv.key == "service.name")
            .map(|kv| text(kv.value.as_ref()))
            .unwrap_or_default();
        for scope in &resource_spans.scope_spans {
            for span in &scope.spans {
                spans.push(Received {
                    service: service.clone(),
                    trace_id: hex(&span.trace_id),
                    span_id: hex(&span.span_id),
                    parent_span_id: hex(&span.parent_span_id),
                    name: span.name.clone(),
                    attributes: span
                        .attributes
                        .iter()
                        .map(|kv| (kv.key.clone(), text(kv.value.as_ref())))
                        .collect(),
                });
            }
        }
    }
    let authorization = headers
        .get("authorization")
        .map(|value| value.to_str().unwrap().to_owned());
    let _ = tx.send(Export {
        spans,
        body,
        authorization,
        content_type: headers["content-type"].to_str().unwrap().to_owned(),
    });
    // An empty ExportTraceServiceResponse: all accepted.
    ([("content-type", "application/x-protobuf")], Vec::new())
}

fn text(value: Option<&opentelemetry_proto::tonic::common::v1::AnyValue>) -> String {
    match value.and_then(|value| value.value.as_ref()) {
        Some(OtlpValue::StringValue(s)) => s.clone(),
        Some(OtlpValue::IntValue(i)) => i.to_string(),
        Some(OtlpValue::BoolValue(b)) => b.to_string(),
        Some(OtlpValue::DoubleValue(d)) => d.to_string(),
        other => format!("{other:?}"),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Everything received, until `done` holds for it.
async fn spans_until(
    exports: &mut mpsc::UnboundedReceiver<Export>,
    received: &mut Vec<Received>,
    bodies: &mut Vec<Export>,
    done: impl Fn(&[Received]) -> bool,
) {
    while !done(received) {
        let export = exports
            .recv()
            .await
            .expect("the receiver runs as long as the test");
        received.extend(export.spans.iter().cloned());
        bodies.push(export);
    }
}

fn named<'a>(spans: &'a [Received], name: &str) -> Vec<&'a Received> {
    spans.iter().filter(|span| span.name == name).collect()
}

/// `GET /health`, sent within the caller's trace (`traceparent`).
async fn health_asked_by_the_caller(server: &Proxy) {
    let health = server
        .client
        .get(server.url("/health"))
        .header("traceparent", format!("00-{CALLER_TRACE}-{CALLER_SPAN}-01"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
}

/// The `request` span is a child of the caller's span, in the caller's trace.
fn assert_the_request_continues_the_callers_trace(spans: &[Received]) {
    let request = named(spans, "request")[0];
    assert_eq!(
        (request.trace_id.as_str(), request.parent_span_id.as_str()),
        (CALLER_TRACE, CALLER_SPAN)
    );
}

/// The proxy with the fake CLI, tool approvals on, a client key, and its traces exported to
/// `endpoint` every `delay_ms`, over http/protobuf.
fn proxy(fake: &FakeInstall, endpoint: &str, delay_ms: &str) -> Proxy {
    proxy_with(fake, endpoint, delay_ms, &[])
}

fn proxy_with(
    fake: &FakeInstall,
    endpoint: &str,
    delay_ms: &str,
    settings: &[(&str, &str)],
) -> Proxy {
    let cli = fake.cli_path().display().to_string();
    let workdir = fake.dir.path().join("work").display().to_string();
    let headers = format!("authorization=Bearer {COLLECTOR_SECRET}");
    let mut env = vec![
        ("PROXY_API_KEY", CLIENT_KEY),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint),
        ("OTEL_EXPORTER_OTLP_HEADERS", &headers),
        ("OTEL_SERVICE_NAME", "claude-proxy-under-test"),
        ("OTEL_BSP_SCHEDULE_DELAY", delay_ms),
    ];
    env.extend_from_slice(settings);
    Proxy::launch(
        fake.dir.path(),
        &env,
        &[
            "--cli-path",
            &cli,
            "--workdir",
            &workdir,
            "--client-approvals",
            "true",
        ],
    )
}

/// Starts an interactive agent with approvals, within the caller's trace (`traceparent`): its
/// stream, and its id.
async fn interactive_agent_in_callers_trace(server: &Proxy, prompt: &str) -> (SseReader, String) {
    let response = server
        .client
        .post(server.url("/agent/stream"))
        .header("traceparent", format!("00-{CALLER_TRACE}-{CALLER_SPAN}-01"))
        .json(&json!({"prompt": prompt, "interactive": true, "approvals": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut reader = SseReader::new(response);
    let agent_id = reader.next_of("agent").await.json()["agent_id"]
        .as_str()
        .unwrap()
        .to_owned();
    (reader, agent_id)
}

/// Sends the interactive agent a turn that asks to use Read, allows it, and closes the agent
/// once the fake CLI has the answer.
async fn ask_allow_and_close(server: &Proxy, reader: &mut SseReader, agent_id: &str) {
    let sent = server
        .post(
            &format!("/agent/{agent_id}/messages"),
            &json!({"content": "@ask Read"}),
        )
        .await;
    assert_eq!(sent.status(), 202);
    let asked = reader.next_of("permission_request").await.json();
    let answered = server
        .post(
            &format!(
                "/agent/{agent_id}/permissions/{}",
                asked["request_id"].as_str().unwrap()
            ),
            &json!({"behavior": "allow"}),
        )
        .await;
    assert_eq!(answered.status(), 200);
    until_line(reader, "fake_answer").await;
    server
        .post(&format!("/agent/{agent_id}/close"), &json!({}))
        .await;
}

/// Reads the agent's stream up to the fake CLI's line of `kind`.
async fn until_line(reader: &mut SseReader, kind: &str) -> Value {
    loop {
        let event = reader
            .next()
            .await
            .unwrap_or_else(|| panic!("the stream ended before a {kind} line"));
        if event.event == "message" && event.kind() == kind {
            return event.json();
        }
    }
}

#[tokio::test]
async fn a_request_its_agent_turns_and_approvals_are_one_trace_continued_from_the_caller() {
    within(TEST_LIMIT, async {
        let (endpoint, mut exports) = receiver().await;
        let fake = FakeInstall::new();
        let server = proxy_with(&fake, &endpoint, "100", &[("PROXY_LOG_FORMAT", "json")]);
        let key_id = server.get("/usage").await.json::<Value>().await.unwrap()["key_id"]
            .as_str()
            .unwrap()
            .to_owned();

        let (mut reader, agent_id) = interactive_agent_in_callers_trace(&server, "@env").await;
        let cli_env = until_line(&mut reader, "fake_env").await["env"].clone();

        // A second turn, with a tool approval the client allows.
        ask_allow_and_close(&server, &mut reader, &agent_id).await;
        let events = reader.collect_all().await;
        let complete = events
            .iter()
            .find(|e| e.event == "complete")
            .unwrap()
            .json();
        assert_eq!(complete["status"], "completed", "{events:#?}");

        // The agent's span ends with it; everything before it has been exported by then.
        let mut spans = Vec::new();
        let mut bodies = Vec::new();
        spans_until(&mut exports, &mut spans, &mut bodies, |spans| {
            named(spans, "agent")
                .iter()
                .any(|agent| agent.attributes.get("agent_id") == Some(&agent_id))
                && named(spans, "turn").len() >= 2
                && !named(spans, "approval").is_empty()
        })
        .await;

        let request = spans
            .iter()
            .find(|span| {
                span.name == "request"
                    && span.attributes.get("uri").map(String::as_str) == Some("/agent/stream")
            })
            .unwrap_or_else(|| panic!("the request's span: {spans:#?}"));
        assert_eq!(request.service, "claude-proxy-under-test");
        assert_eq!(request.trace_id, CALLER_TRACE, "the caller's trace goes on");
        assert_eq!(
            request.parent_span_id, CALLER_SPAN,
            "under the caller's span"
        );
        assert_eq!(request.attributes["http.response.status_code"], "200");

        let agent = named(&spans, "agent")[0];
        assert_eq!(agent.trace_id, CALLER_TRACE);
        assert_eq!(agent.parent_span_id, request.span_id, "the request's child");
        assert_eq!(agent.attributes["key_id"], key_id);
        assert_eq!(agent.attributes["status"], "completed");
        assert_eq!(agent.attributes["exit_code"], "0");
        assert_eq!(agent.attributes["interactive"], "true");
        assert!(agent.attributes.contains_key("usage.input_tokens"));

        let spawn = named(&spans, "spawn");
        assert_eq!(spawn.len(), 1, "{spawn:#?}");
        assert_eq!(
            (spawn[0].trace_id.as_str(), spawn[0].parent_span_id.as_str()),
            (CALLER_TRACE, agent.span_id.as_str())
        );
        assert_eq!(spawn[0].attributes["pid"], agent.attributes["pid"]);

        let mut turns = named(&spans, "turn");
        turns.sort_by_key(|turn| turn.attributes["turn"].clone());
        assert_eq!(turns.len(), 2, "{turns:#?}");
        for turn in &turns {
            assert_eq!(
                (turn.trace_id.as_str(), turn.parent_span_id.as_str()),
                (CALLER_TRACE, agent.span_id.as_str())
            );
        }
        let approval = named(&spans, "approval")[0];
        assert_eq!(approval.trace_id, CALLER_TRACE);
        assert_eq!(
            approval.parent_span_id, turns[1].span_id,
            "asked in the second turn"
        );
        assert_eq!(approval.attributes["tool_name"], "Read");
        assert_eq!(approval.attributes["decision"], "allowed");

        // The CLI continues the agent's trace; the collector's credential stays with the server.
        assert_eq!(
            cli_env["TRACEPARENT"],
            format!("00-{CALLER_TRACE}-{}-01", agent.span_id)
        );
        let cli_env = cli_env.to_string();
        assert!(!cli_env.contains(COLLECTOR_SECRET), "{cli_env}");
        assert!(!cli_env.contains("OTEL_EXPORTER_OTLP_HEADERS"), "{cli_env}");

        // The exporter sends the operator's headers, and no export holds the client's key.
        for export in &bodies {
            assert_eq!(export.content_type, "application/x-protobuf", "the default");
            assert_eq!(
                export.authorization.as_deref(),
                Some(format!("Bearer {COLLECTOR_SECRET}").as_str())
            );
            let body = String::from_utf8_lossy(&export.body);
            assert!(
                !body.contains(CLIENT_KEY),
                "the key itself is never exported"
            );
        }

        // The log lines of the request and its agent carry the trace's id.
        let log = server.log();
        let started: Value = log
            .iter()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .find(|line| line["message"] == "agent started")
            .unwrap_or_else(|| panic!("{log:#?}"));
        assert_eq!(started["span"]["trace_id"], CALLER_TRACE, "{started}");
        let spans = started["spans"].as_array().unwrap();
        assert_eq!(spans.len(), 2, "{started}");
        assert!(
            spans.iter().all(|span| span["trace_id"] == CALLER_TRACE),
            "the request's and the agent's: {started}"
        );
    })
    .await;
}

/// The CLI may write a turn's result and its next turn's question in one write (the next
/// message was waiting): the proxy reads them in one batch, and the question is the next turn's.
#[tokio::test]
async fn an_approval_read_with_the_last_turns_result_is_the_next_turns() {
    within(TEST_LIMIT, async {
        let (endpoint, mut exports) = receiver().await;
        let fake = FakeInstall::new();
        let server = proxy(&fake, &endpoint, "100");
        let (mut reader, agent_id) =
            interactive_agent_in_callers_trace(&server, "@hold-output").await;
        // The first turn's lines wait in the fake CLI until this turn asks.
        ask_allow_and_close(&server, &mut reader, &agent_id).await;
        reader.collect_all().await;

        let (mut spans, mut bodies) = (Vec::new(), Vec::new());
        spans_until(&mut exports, &mut spans, &mut bodies, |spans| {
            !named(spans, "agent").is_empty()
                && named(spans, "turn").len() >= 2
                && !named(spans, "approval").is_empty()
        })
        .await;
        let mut turns = named(&spans, "turn");
        turns.sort_by_key(|turn| turn.attributes["turn"].clone());
        let approval = named(&spans, "approval")[0];
        assert_eq!(
            (
                approval.parent_span_id.as_str(),
                turns[1].attributes["turn"].as_str()
            ),
            (turns[1].span_id.as_str(), "2"),
            "asked in the second turn: {turns:#?}"
        );
    })
    .await;
}

#[tokio::test]
async fn the_last_spans_are_sent_on_shutdown() {
    within(TEST_LIMIT, async {
        let (endpoint, mut exports) = receiver().await;
        let fake = FakeInstall::new();
        // Nothing would be sent for ten minutes, but for the shutdown's flush.
        let mut server = proxy(&fake, &endpoint, "600000");
        health_asked_by_the_caller(&server).await;
        let exited = server.terminate();
        let mut spans = Vec::new();
        spans_until(&mut exports, &mut spans, &mut Vec::new(), |spans| {
            spans.iter().any(|span| span.name == "request")
        })
        .await;
        assert!(exited.await.unwrap().success());
        assert_the_request_continues_the_callers_trace(&spans);
    })
    .await;
}

#[tokio::test]
async fn traces_go_as_json_when_asked() {
    within(TEST_LIMIT, async {
        let (endpoint, mut exports) = receiver().await;
        let fake = FakeInstall::new();
        let server = proxy_with(
            &fake,
            &endpoint,
            "100",
            &[("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")],
        );
        health_asked_by_the_caller(&server).await;
        let (mut spans, mut bodies) = (Vec::new(), Vec::new());
        spans_until(&mut exports, &mut spans, &mut bodies, |spans| {
            spans.iter().any(|span| span.name == "request")
        })
        .await;
        assert!(bodies.iter().all(|b| b.content_type == "application/json"));
        assert_the_request_continues_the_callers_trace(&spans);
    })
    .await;
}

#[tokio::test]
async fn an_otlp_protocol_this_build_cannot_speak_is_refused_at_start() {
    let fake = FakeInstall::new();
    let output = crate::support::proxy::command(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9"),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ("PROXY_PORT", "0"),
        ("CLAUDE_CLI_PATH", &fake.cli_path().display().to_string()),
    ])
    .current_dir(fake.dir.path())
    .output()
    .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(
        said.contains("OTEL_EXPORTER_OTLP_PROTOCOL=grpc is not supported"),
        "{said}"
    );
}

/// The real CLI, with its own session tracing on, continues the agent's trace from the
/// `TRACEPARENT` it is given: its spans reach the same receiver as the agent's child.
#[tokio::test]
async fn the_real_cli_continues_the_agents_trace() {
    within(Duration::from_secs(120), async {
        let (endpoint, mut exports) = receiver().await;
        let setup = crate::support::real::RealSetup::with_settings(
            [crate::support::anthropic::Reply::Text("4".into())],
            &[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
                ("OTEL_BSP_SCHEDULE_DELAY", "100"),
                // The CLI's own telemetry: traces only, to the same collector.
                ("CLAUDE_CODE_ENABLE_TELEMETRY", "1"),
                ("CLAUDE_CODE_ENHANCED_TELEMETRY_BETA", "1"),
                ("OTEL_TRACES_EXPORTER", "otlp"),
                ("OTEL_METRICS_EXPORTER", "none"),
                ("OTEL_LOGS_EXPORTER", "none"),
            ],
        )
        .await;
        let server = &setup.proxy;
        let response = server
            .client
            .post(server.url("/agent/stream"))
            .header("traceparent", format!("00-{CALLER_TRACE}-{CALLER_SPAN}-01"))
            .json(&json!({"prompt": "What is 2 + 2?"}))
            .send()
            .await
            .unwrap();
        let events = SseReader::new(response).collect_all().await;
        let complete = events
            .iter()
            .find(|e| e.event == "complete")
            .unwrap()
            .json();
        assert_eq!(complete["status"], "completed", "{events:#?}");

        let mut spans = Vec::new();
        spans_until(&mut exports, &mut spans, &mut Vec::new(), |spans| {
            let Some(agent) = named(spans, "agent").into_iter().next() else {
                return false;
            };
            spans
                .iter()
                .any(|span| span.parent_span_id == agent.span_id && span.name != "spawn")
        })
        .await;
        let agent = named(&spans, "agent")[0];
        assert_eq!(agent.trace_id, CALLER_TRACE);
        let cli = spans
            .iter()
            .find(|span| span.parent_span_id == agent.span_id && span.name != "spawn")
            .unwrap();
        assert_eq!(cli.trace_id, CALLER_TRACE, "{cli:#?}");
        assert_eq!(
            (cli.name.as_str(), cli.service.as_str()),
            ("claude_code.interaction", "claude-code"),
            "the CLI's own span: {cli:#?}"
        );
        // What the gateway counted of the stand-in's answer.
        assert_ne!(agent.attributes["usage.output_tokens"], "0", "{agent:#?}");
    })
    .await;
}
