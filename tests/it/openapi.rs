//! `GET /openapi.json` and `GET /docs`: public, valid OpenAPI 3.1 (by an independent validator),
//! covering every route the router serves, and a reference page that a browser renders with no
//! internet.

use crate::support;

use crate::support::proxy::Proxy;
use crate::support::{FakeInstall, TEST_LIMIT, within};
use serde_json::Value;

const KEY: &str = "openapi-test-key-0123456789";

fn proxy(fake: &FakeInstall) -> Proxy {
    let cli = fake.cli_path().display().to_string();
    Proxy::start(
        fake.dir.path(),
        &[("CLAUDE_CLI_PATH", &cli), ("PROXY_API_KEY", KEY)],
    )
}

async fn document(proxy: &Proxy) -> Value {
    // No key: the document is public.
    let response = reqwest::get(proxy.url("/openapi.json")).await.unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

#[tokio::test]
async fn the_document_is_public_and_valid_openapi_3_1() {
    within(TEST_LIMIT, async {
        let fake = FakeInstall::new();
        let proxy = proxy(&fake);
        let document = document(&proxy).await;
        assert_eq!(document["openapi"], "3.1.0");
        let file = fake.dir.path().join("openapi.json");
        std::fs::write(&file, document.to_string()).unwrap();
        let output = tokio::process::Command::new("node")
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/openapi/validate.mjs"
            ))
            .arg(&file)
            .output()
            .await
            .unwrap();
        assert!(
            output.status.success(),
            "the validator refused the document (scripts/test installs it):\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        // Keys, as both SDKs send them.
        let schemes = &document["components"]["securitySchemes"];
        assert_eq!(schemes["bearer"]["scheme"], "bearer");
        assert_eq!(schemes["api_key"]["name"], "x-api-key");
        // Every event type a stream carries has its schema.
        let events = document["components"]["schemas"]["StreamEvent"].to_string();
        for event in [
            "AgentEvent",
            "SystemInitEvent",
            "SystemEvent",
            "AssistantEvent",
            "UserEvent",
            "ResultEvent",
            "StreamEventLine",
            "ErrorEvent",
            "GapEvent",
            "ProxyRawEvent",
            "PermissionRequestEvent",
            "PermissionDecisionEvent",
            "PermissionCancelledEvent",
            "CompleteEvent",
        ] {
            assert!(
                events.contains(event),
                "StreamEvent lacks {event}: {events}"
            );
        }
    })
    .await;
}

#[tokio::test]
async fn the_typescript_clients_types_are_the_documents() {
    within(TEST_LIMIT, async {
        let fake = FakeInstall::new();
        let proxy = proxy(&fake);
        let file = fake.dir.path().join("openapi.json");
        // As served: the order of its keys is the order of the types.
        let served = reqwest::get(proxy.url("/openapi.json")).await.unwrap();
        std::fs::write(&file, served.text().await.unwrap()).unwrap();
        let client = concat!(env!("CARGO_MANIFEST_DIR"), "/clients/typescript");
        let output = tokio::process::Command::new("node")
            .arg(format!("{client}/scripts/generate.mjs"))
            .arg(&file)
            .output()
            .await
            .unwrap();
        assert!(output.status.success(), "{output:?}");
        let committed = std::fs::read_to_string(format!("{client}/src/openapi.ts")).unwrap();
        assert!(
            String::from_utf8(output.stdout).unwrap() == committed,
            "clients/typescript/src/openapi.ts is not the document's: run `npm run generate` there against this build"
        );
    })
    .await;
}

/// A documented path with its parameters filled in.
fn concrete(path: &str) -> String {
    let file = if path.starts_with("/ui/") {
        "style.css"
    } else {
        "swagger-ui.css"
    };
    path.replace("{agent_id}", "00000000-0000-4000-8000-000000000000")
        .replace("{request_id}", "no-such-request")
        .replace("{file}", file)
}

#[tokio::test]
async fn every_route_the_router_serves_is_in_the_document_and_every_documented_one_is_served() {
    within(TEST_LIMIT, async {
        let fake = FakeInstall::new();
        let proxy = proxy(&fake);
        let document = document(&proxy).await;
        let paths = document["paths"].as_object().unwrap();
        let mut operations = Vec::new();
        for (path, item) in paths {
            for method in item.as_object().unwrap().keys() {
                operations.push((method.to_uppercase(), path.clone()));
            }
        }
        operations.sort();
        // What the router serves: each answers something of its own, never the fallback's
        // "no route" or "method not allowed".
        for (method, path) in &operations {
            let response = proxy
                .client
                .request(method.parse().unwrap(), proxy.url(&concrete(path)))
                .header("content-type", "application/json")
                .body("{}")
                .send()
                .await
                .unwrap();
            let status = response.status();
            let body = response.text().await.unwrap();
            assert!(
                status != 405 && !body.contains("no route"),
                "{method} {path}: {status} {body}"
            );
        }
        // And the other way: every route of the router, as the README lists them.
        let served = [
            ("GET", "/health"),
            ("GET", "/metrics"),
            ("GET", "/openapi.json"),
            ("GET", "/docs"),
            ("GET", "/docs/{file}"),
            ("GET", "/ui"),
            ("GET", "/ui/"),
            ("GET", "/ui/{file}"),
            ("POST", "/agent/start"),
            ("POST", "/agent/stream"),
            ("POST", "/agent/stop/{agent_id}"),
            ("GET", "/agents"),
            ("GET", "/usage"),
            ("GET", "/agent/{agent_id}"),
            ("DELETE", "/agent/{agent_id}"),
            ("PATCH", "/agent/{agent_id}"),
            ("GET", "/agent/{agent_id}/events"),
            ("POST", "/agent/{agent_id}/messages"),
            ("POST", "/agent/{agent_id}/interrupt"),
            ("POST", "/agent/{agent_id}/close"),
            ("GET", "/agent/{agent_id}/permissions"),
            ("POST", "/agent/{agent_id}/permissions/{request_id}"),
            ("POST", "/v1/chat/completions"),
            ("GET", "/v1/models"),
            ("POST", "/v1/messages"),
            ("POST", "/v1/responses"),
            ("GET", "/v1/responses/{response_id}"),
            ("DELETE", "/v1/responses/{response_id}"),
            ("GET", "/v1/sessions"),
            ("GET", "/v1/sessions/{id}"),
            ("DELETE", "/v1/sessions/{id}"),
            ("POST", "/internal/mcp/{token}"),
        ];
        let mut served: Vec<(String, String)> = served
            .iter()
            .map(|(m, p)| (m.to_string(), p.to_string()))
            .collect();
        served.sort();
        assert_eq!(operations, served);
    })
    .await;
}

#[tokio::test]
async fn docs_renders_every_route_in_a_headless_browser() {
    within(TEST_LIMIT, async {
        let fake = FakeInstall::new();
        let proxy = proxy(&fake);
        // Time enough for the page's script to fetch the document and render it.
        let dom = support::rendered_dom(&proxy.url("/docs"), 20_000).await;
        for path in [
            "/agent/stream",
            "/agent/start",
            "/agent/{agent_id}/events",
            "/agent/{agent_id}/permissions/{request_id}",
            "/health",
        ] {
            assert!(
                dom.contains(&format!("data-path=\"{path}\"")),
                "/docs does not show {path}:\n{}",
                &dom[..dom.len().min(3000)]
            );
        }
    })
    .await;
}

#[tokio::test]
async fn each_parameter_is_where_the_route_reads_it() {
    within(TEST_LIMIT, async {
        let fake = FakeInstall::new();
        let proxy = proxy(&fake);
        let document = document(&proxy).await;
        let parameters = document["paths"]["/agent/{agent_id}/events"]["get"]["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    p["name"].as_str().unwrap().to_owned(),
                    p["in"].as_str().unwrap().to_owned(),
                )
            })
            .collect::<Vec<_>>();
        for (name, place) in [
            ("agent_id", "path"),
            ("after", "query"),
            ("last-event-id", "header"),
        ] {
            assert!(
                parameters.contains(&(name.to_owned(), place.to_owned())),
                "{name} in {place}: {parameters:?}"
            );
        }
        // `?after=` is read as the document says.
        let response = proxy
            .client
            .post(proxy.url("/agent/stream"))
            .bearer_auth(KEY)
            .json(&serde_json::json!({"prompt": "@lines 3\n@result"}))
            .send()
            .await
            .unwrap();
        let events = support::SseReader::new(response).collect_all().await;
        let agent = events[0].json()["agent_id"].as_str().unwrap().to_owned();
        let after = proxy
            .client
            .get(proxy.url(&format!("/agent/{agent}/events?after=2")))
            .bearer_auth(KEY)
            .send()
            .await
            .unwrap();
        let read = support::SseReader::new(after).collect_all().await;
        assert_eq!(read[0].id.as_deref(), Some("3"), "{read:?}");
    })
    .await;
}

// What routes serve, checked against what the served document says they serve.

mod served_bodies {
    use std::time::Duration;

    use super::*;
    use crate::support::TestServer;
    use crate::support::sse::{SseEvent, SseReader};
    use serde_json::json;

    /// The served document, against which bodies are checked: each schema of its own, with the
    /// document's components beside it so that its `#/components/schemas/...` refs resolve.
    struct Documented {
        document: Value,
        stream_event: jsonschema::Validator,
    }

    impl Documented {
        async fn of(server: &TestServer) -> Self {
            let document: Value = server.get("/openapi.json").await.json().await.unwrap();
            let stream_event = validator(
                &document,
                &json!({"$ref": "#/components/schemas/StreamEvent"}),
            );
            Self {
                document,
                stream_event,
            }
        }

        /// Every event of a stream is a `StreamEvent`.
        fn events(&self, what: &str, events: &[SseEvent]) {
            assert!(!events.is_empty(), "{what}: no events");
            for event in events {
                let data = event.json();
                if self.stream_event.is_valid(&data) {
                    continue;
                }
                // Say why by the shape its `type` names.
                let kind = data["type"].as_str().unwrap_or_default();
                let schemas = &self.document["components"]["schemas"];
                let why: Vec<String> = schemas["StreamEvent"]["anyOf"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter_map(|shape| shape["$ref"].as_str())
                    .filter(|name| {
                        let name = name.rsplit('/').next().unwrap();
                        schemas[name].to_string().contains(&format!("[\"{kind}\"]"))
                    })
                    .map(|name| {
                        let errors =
                            errors(&validator(&self.document, &json!({"$ref": name})), &data);
                        format!("as {name}: {}", errors.join("; "))
                    })
                    .collect();
                panic!(
                    "{what}: event {} ({}) is not a StreamEvent: {}\n{}",
                    event.id.as_deref().unwrap_or("?"),
                    event.event,
                    if why.is_empty() {
                        "no shape has this type".into()
                    } else {
                        why.join(" | ")
                    },
                    event.data
                );
            }
        }

        /// The response's JSON body is what the document says `method path` answers with its
        /// status; the body, for the test to go on with.
        async fn response(&self, method: &str, path: &str, response: reqwest::Response) -> Value {
            let status = response.status().as_u16();
            let text = response.text().await.unwrap();
            let body: Value = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{method} {path} {status}: not JSON ({e}): {text}"));
            let documented = &self.document["paths"][path][method.to_lowercase()]["responses"]
                [status.to_string()];
            let schema = &documented["content"]["application/json"]["schema"];
            assert!(
                !schema.is_null(),
                "{method} {path}: {status} is not documented with a JSON body ({documented}): {body}"
            );
            let errors = errors(&validator(&self.document, schema), &body);
            assert!(
                errors.is_empty(),
                "{method} {path} {status}: the body is not the documented {schema}: {}\n{body}",
                errors.join("; ")
            );
            body
        }
    }

    fn validator(document: &Value, schema: &Value) -> jsonschema::Validator {
        let root = json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "allOf": [schema],
            "components": document["components"],
        });
        jsonschema::draft202012::new(&root)
            .unwrap_or_else(|e| panic!("the document's {schema} is not a schema: {e}"))
    }

    fn errors(validator: &jsonschema::Validator, body: &Value) -> Vec<String> {
        validator
            .iter_errors(body)
            .map(|e| format!("{e} (at {})", e.instance_path()))
            .collect()
    }

    /// The events up to the next `permission_request`, kept; its request's id.
    async fn next_request(reader: &mut SseReader, events: &mut Vec<SseEvent>) -> String {
        loop {
            let event = reader.next().await.expect("the stream went on");
            events.push(event.clone());
            if event.event == "permission_request" {
                return event.json()["request_id"].as_str().unwrap().to_owned();
            }
        }
    }

    async fn read_all(server: &TestServer, path: &str) -> Vec<SseEvent> {
        SseReader::new(server.get(path).await).collect_all().await
    }

    #[tokio::test]
    async fn streams_events_are_as_documented() {
        within(TEST_LIMIT, async {
            let server = TestServer::with_args(&["--agent-log-bytes", "20000"]).await;
            let documented = Documented::of(&server).await;
            // The CLI's lines of many kinds, one that is not JSON, and the proxy's events.
            let events = server
                .stream_all("@text hello\n@stream-text one two\n@line not json\n@lines 2\n@result")
                .await;
            let kinds: Vec<String> = events.iter().map(SseEvent::kind).collect();
            for kind in [
                "agent",
                "system",
                "assistant",
                "stream_event",
                "proxy_raw",
                "result",
                "complete",
            ] {
                assert!(kinds.iter().any(|k| k == kind), "no {kind}: {kinds:?}");
            }
            documented.events("a fake CLI's stream", &events);
            // A CLI that fails: exit_nonzero, no_result.
            let failed = server.stream_all("@stderr-line it broke\n@exit 3").await;
            documented.events("a failed CLI's stream", &failed);
            // A stopped agent, and its events read back.
            let (id, _) = server.start_agent("@hang").await;
            let stopped = server.stop(&id).await;
            documented
                .response("POST", "/agent/stop/{agent_id}", stopped)
                .await;
            let read = read_all(&server, &format!("/agent/{id}/events")).await;
            assert!(
                read.iter().any(|e| e.json()["code"] == "stopped"),
                "{read:?}"
            );
            documented.events("a stopped agent's events", &read);
            // An agent read back with a gap: its first events are no longer kept.
            let (id, _) = server.start_agent("@lines 200 500\n@result").await;
            crate::support::until("the agent ends", Duration::from_secs(10), || async {
                let detail: Value = server
                    .get(&format!("/agent/{id}"))
                    .await
                    .json()
                    .await
                    .unwrap();
                detail["status"] != "running" && detail["status"] != "starting"
            })
            .await;
            let read = read_all(&server, &format!("/agent/{id}/events")).await;
            assert_eq!(read[0].event, "gap", "{:?}", &read[..2]);
            documented.events("an agent read back with a gap", &read);
        })
        .await;
    }

    #[tokio::test]
    async fn an_interactive_agents_approvals_are_as_documented() {
        within(TEST_LIMIT, async {
            let server = TestServer::with_args(&["--client-approvals", "true"]).await;
            let documented = Documented::of(&server).await;
            let response = server
                .post_json(
                    "/agent/stream",
                    json!({"prompt": "@ask Read", "interactive": true, "approvals": true}),
                )
                .await;
            let mut reader = SseReader::new(response);
            let mut events = vec![reader.next_of("agent").await];
            let id = events[0].json()["agent_id"].as_str().unwrap().to_owned();
            // One approval answered...
            let request_id = next_request(&mut reader, &mut events).await;
            let pending = server.get(&format!("/agent/{id}/permissions")).await;
            let pending = documented
                .response("GET", "/agent/{agent_id}/permissions", pending)
                .await;
            assert_eq!(
                pending["pending_permissions"][0]["request_id"],
                request_id.as_str()
            );
            let path = format!("/agent/{id}/permissions/{request_id}");
            let template = "/agent/{agent_id}/permissions/{request_id}";
            let answered = server.post_json(&path, json!({"behavior": "allow"})).await;
            documented.response("POST", template, answered).await;
            let again = server.post_json(&path, json!({"behavior": "deny"})).await;
            assert_eq!(again.status(), 409);
            documented.response("POST", template, again).await;
            // ... and one cancelled: the agent is stopped while it waits.
            let sent = server
                .post_json(
                    &format!("/agent/{id}/messages"),
                    json!({"content": "@ask Read"}),
                )
                .await;
            documented
                .response("POST", "/agent/{agent_id}/messages", sent)
                .await;
            next_request(&mut reader, &mut events).await;
            let stopped = server.stop(&id).await;
            documented
                .response("POST", "/agent/stop/{agent_id}", stopped)
                .await;
            events.extend(reader.collect_all().await);
            let names: Vec<&str> = events.iter().map(|e| e.event.as_str()).collect();
            for name in [
                "permission_request",
                "permission_decision",
                "permission_cancelled",
                "complete",
            ] {
                assert!(names.contains(&name), "no {name}: {names:?}");
            }
            documented.events("an interactive agent's stream", &events);
        })
        .await;
    }

    #[tokio::test]
    async fn the_json_answers_are_as_documented() {
        within(TEST_LIMIT, async {
            let server = TestServer::start().await;
            let documented = Documented::of(&server).await;
            documented.response("GET", "/health", server.get("/health").await).await;
            let started = server
                .post_json("/agent/start", json!({"prompt": "@text hi\n@result"}))
                .await;
            let started = documented.response("POST", "/agent/start", started).await;
            let id = started["agent_id"].as_str().unwrap().to_owned();
            crate::support::until("the agent ends", Duration::from_secs(10), || async {
                let detail: Value = server.get(&format!("/agent/{id}")).await.json().await.unwrap();
                detail["status"] != "running" && detail["status"] != "starting"
            })
            .await;
            let path = "/agent/{agent_id}";
            documented.response("GET", path, server.get(&format!("/agent/{id}")).await).await;
            documented.response("GET", "/agents", server.get("/agents").await).await;
            for query in ["", "?by=agent&from=2026-01-01", "?by=model&to=2100-01-01T00:00:00Z"] {
                let usage = server.get(&format!("/usage{query}")).await;
                assert_eq!(usage.status(), 200, "{query}");
                documented.response("GET", "/usage", usage).await;
            }
            let refused = server.get("/usage?by=week").await;
            assert_eq!(refused.status(), 422);
            documented.response("GET", "/usage", refused).await;
            // 4xx: the error body.
            let unknown = format!("/agent/{}", uuid_like());
            documented.response("GET", path, server.get(&unknown).await).await;
            let stopped = server.stop(&id).await;
            assert_eq!(stopped.status(), 404, "it has ended");
            documented.response("POST", "/agent/stop/{agent_id}", stopped).await;
            let invalid = server.post_json("/agent/start", json!({"prompt": 5})).await;
            assert_eq!(invalid.status(), 422);
            documented.response("POST", "/agent/start", invalid).await;
            // The compatible APIs, not streamed.
            let completion = server
                .post_json(
                    "/v1/chat/completions",
                    json!({"model": "sonnet", "messages": [{"role": "user", "content": "@text four\n@result four"}]}),
                )
                .await;
            documented.response("POST", "/v1/chat/completions", completion).await;
            let refused = server
                .post_json("/v1/chat/completions", json!({"model": "sonnet", "messages": []}))
                .await;
            documented.response("POST", "/v1/chat/completions", refused).await;
            let message = server
                .post_json(
                    "/v1/messages",
                    json!({"model": "sonnet", "max_tokens": 10, "messages": [{"role": "user", "content": "@text four\n@result four"}]}),
                )
                .await;
            documented.response("POST", "/v1/messages", message).await;
            let refused = server
                .post_json("/v1/messages", json!({"model": "sonnet", "messages": []}))
                .await;
            documented.response("POST", "/v1/messages", refused).await;
            // A response, kept, shown, then forgotten; and its streamed events.
            let response = server
                .post_json(
                    "/v1/responses",
                    json!({"model": "sonnet", "instructions": "Be brief.", "input": "@text four\n@result four"}),
                )
                .await;
            let response = documented.response("POST", "/v1/responses", response).await;
            let refused = server
                .post_json("/v1/responses", json!({"model": "sonnet", "input": []}))
                .await;
            documented.response("POST", "/v1/responses", refused).await;
            let id = response["id"].as_str().unwrap().to_owned();
            let path = "/v1/responses/{response_id}";
            documented.response("GET", path, server.get(&format!("/v1/responses/{id}")).await).await;
            documented.response("DELETE", path, server.delete(&format!("/v1/responses/{id}")).await).await;
            let gone = server.get(&format!("/v1/responses/{id}")).await;
            assert_eq!(gone.status(), 404);
            documented.response("GET", path, gone).await;
            documented.response("DELETE", path, server.delete(&format!("/v1/responses/{id}")).await).await;
            let stream_event = validator(
                &documented.document,
                &json!({"$ref": "#/components/schemas/ResponsesStreamEvent"}),
            );
            for input in ["@stream-text 3\n@result tok tok tok ", "@result whole", "@stream-text 2\n@result-error gone"] {
                let streamed = server
                    .post_json("/v1/responses", json!({"model": "sonnet", "stream": true, "input": input}))
                    .await
                    .text()
                    .await
                    .unwrap();
                for event in streamed.split("\n\n").filter(|e| !e.trim().is_empty()) {
                    let (name, data) = event
                        .strip_prefix("event: ")
                        .and_then(|e| e.split_once("\ndata: "))
                        .unwrap_or_else(|| panic!("an event with its data: {streamed}"));
                    let data: Value = serde_json::from_str(data).unwrap();
                    assert_eq!(data["type"], name, "{streamed}");
                    let errors = errors(&stream_event, &data);
                    assert!(errors.is_empty(), "{input}: {name} is not a ResponsesStreamEvent: {}\n{data}", errors.join("; "));
                }
            }
            // The conversations those requests made, one shown, then forgotten.
            let listed = documented.response("GET", "/v1/sessions", server.get("/v1/sessions").await).await;
            let id = listed["data"][0]["id"].as_str().expect("a reply was remembered").to_owned();
            let path = "/v1/sessions/{id}";
            documented.response("GET", path, server.get(&format!("/v1/sessions/{id}")).await).await;
            documented.response("DELETE", path, server.delete(&format!("/v1/sessions/{id}")).await).await;
            let gone = server.get(&format!("/v1/sessions/{id}")).await;
            assert_eq!(gone.status(), 404);
            documented.response("GET", path, gone).await;
            // Both list shapes of the models.
            let openai_list = documented.response("GET", "/v1/models", server.get("/v1/models").await).await;
            assert_eq!(openai_list["object"], "list", "{openai_list}");
            let anthropic_list = server
                .client
                .get(server.url("/v1/models"))
                .header("anthropic-version", "2023-06-01")
                .send()
                .await
                .unwrap();
            let anthropic_list = documented.response("GET", "/v1/models", anthropic_list).await;
            assert_eq!(anthropic_list["has_more"], false, "{anthropic_list}");
        })
        .await;
    }

    fn uuid_like() -> &'static str {
        "00000000-0000-4000-8000-000000000000"
    }
}
