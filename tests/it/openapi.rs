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
