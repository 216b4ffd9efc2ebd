//! The dashboard at /ui: in headless Chromium against the real CLI (tests/ui/dashboard.test.mjs,
//! driven by puppeteer-core), and what it is served with.

use crate::support;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::support::anthropic::{Reply, Rule};
use crate::support::real::RealSetup;
use crate::support::{TEST_LIMIT, TestServer, within};

const KEY: &str = "dashboard-key-0123456789";
const OTHER_KEY: &str = "other-dashboard-key-0123456789";
const DENY_MESSAGE: &str = "Not on my watch, says the dashboard.";
/// A Bash command whose output is markup.
const MARKUP_COMMAND: &str = "printf '%s\\n' '<script>window.pwned=1</script>' '<img src=x onerror=window.pwned=2>' ui-tool-done";

/// The stand-in asks for a tool once per marked prompt; the request carrying the tool's result
/// (or its denial) gets the usual text.
fn tool_rule() -> Rule {
    Arc::new(|texts: &[String]| {
        let has = |needle: &str| texts.iter().any(|t| t.contains(needle));
        if has("ui-tool-done") || has(DENY_MESSAGE) {
            return None;
        }
        let command = if has("[approve-me]") {
            "touch ui-approved.txt && echo ui-tool-done"
        } else if has("[reload-me]") {
            "touch ui-reloaded.txt && echo ui-tool-done"
        } else if has("[interrupt-me]") {
            "touch ui-interrupted.txt && echo ui-tool-done"
        } else if has("[edit-me]") {
            "touch ui-unedited.txt && echo ui-tool-done"
        } else if has("[deny-me]") {
            "touch ui-denied.txt && echo ui-tool-done"
        } else if has("[script-me]") {
            MARKUP_COMMAND
        } else {
            return None;
        };
        Some(Reply::Bash(command.into()))
    })
}

fn chromium() -> PathBuf {
    std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .map(|dir| dir.join("chromium"))
        .find(|path| path.is_file())
        .expect("chromium (Debian's package; scripts/test installs it)")
}

fn found_under(dir: &Path, name: &str) -> bool {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .any(|entry| {
            let path = entry.path();
            path.file_name().is_some_and(|n| n == name)
                || (path.is_dir() && found_under(&path, name))
        })
}

#[tokio::test]
async fn the_dashboard_works_in_headless_chromium_against_the_real_cli() {
    within(Duration::from_secs(300), async {
        let keys = format!("{KEY},{OTHER_KEY}");
        let setup = RealSetup::with_rule(
            tool_rule(),
            &[
                ("PROXY_API_KEY", keys.as_str()),
                ("PROXY_CLIENT_APPROVALS", "true"),
                ("PROXY_MAX_AGENTS", "5"),
            ],
        )
        .await;
        // The subscription's windows, for the server page to show.
        let resets = (chrono::Utc::now() + chrono::Duration::hours(3)).timestamp();
        setup.standin.answer_with_headers(&[
            ("anthropic-ratelimit-unified-status", "allowed".to_owned()),
            ("anthropic-ratelimit-unified-reset", resets.to_string()),
            (
                "anthropic-ratelimit-unified-5h-status",
                "allowed".to_owned(),
            ),
            (
                "anthropic-ratelimit-unified-5h-utilization",
                "0.25".to_owned(),
            ),
            ("anthropic-ratelimit-unified-5h-reset", resets.to_string()),
            (
                "anthropic-ratelimit-unified-7d-status",
                "allowed_warning".to_owned(),
            ),
            (
                "anthropic-ratelimit-unified-7d-utilization",
                "0.8".to_owned(),
            ),
            ("anthropic-ratelimit-unified-7d-reset", resets.to_string()),
        ]);
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let screenshots = root.join("target/ui-screenshots");
        let _ = std::fs::remove_dir_all(&screenshots);
        let output = tokio::process::Command::new("node")
            .args([
                "--test",
                "--test-reporter=spec",
                "--test-concurrency=1",
                "tests/ui/dashboard.test.mjs",
            ])
            .current_dir(root)
            .env("CLAUDE_PROXY_URL", &setup.proxy.base)
            .env("KEY", KEY)
            .env("OTHER_KEY", OTHER_KEY)
            .env("EXPECTED_TEXT", support::anthropic::DEFAULT_TEXT)
            .env("DENY_MESSAGE", DENY_MESSAGE)
            .env("CHROMIUM", chromium())
            .env("SCREENSHOTS", &screenshots)
            .output()
            .await
            .expect("node runs");
        let report = support::printed(&output);
        assert!(
            output.status.success() && report.contains("pass 10") && report.contains("fail 0"),
            "the dashboard's tests failed:\n{report}"
        );
        assert!(
            found_under(&setup.work, "ui-approved.txt"),
            "the approved tool ran"
        );
        assert!(
            !found_under(&setup.work, "ui-denied.txt"),
            "the denied tool did not run"
        );
        assert!(
            found_under(&setup.work, "ui-edited.txt")
                && !found_under(&setup.work, "ui-unedited.txt"),
            "the tool ran with the input as edited"
        );
        for page in [
            "key",
            "agent",
            "agents",
            "agent-after-reload",
            "approval",
            "denied",
            "markup-as-text",
            "other-key",
        ] {
            let file = screenshots.join(format!("{page}.png"));
            let bytes = std::fs::read(&file).unwrap_or_default();
            assert!(
                bytes.starts_with(b"\x89PNG"),
                "no screenshot at {}",
                file.display()
            );
        }
    })
    .await;
}

#[tokio::test]
async fn the_dashboard_needs_no_key_and_forbids_inline_scripts_and_other_origins() {
    within(TEST_LIMIT, async {
        let server = TestServer::with_args(&["--api-key", KEY]).await;
        let client = reqwest::Client::new();
        for (path, content_type) in [
            ("/ui", "text/html; charset=utf-8"),
            ("/ui/app.js", "text/javascript; charset=utf-8"),
            ("/ui/style.css", "text/css; charset=utf-8"),
        ] {
            let response = client.get(server.url(path)).send().await.unwrap();
            assert_eq!(response.status(), 200, "{path} needs no key");
            let headers = response.headers();
            assert_eq!(headers["content-type"], content_type, "{path}");
            assert_eq!(headers["x-content-type-options"], "nosniff");
            let policy = headers["content-security-policy"].to_str().unwrap();
            for directive in [
                "default-src 'none'",
                "script-src 'self'",
                "connect-src 'self'",
                "frame-ancestors 'none'",
            ] {
                assert!(policy.contains(directive), "{path}: {policy}");
            }
            assert!(!policy.contains("unsafe"), "{path}: {policy}");
        }
        let page = server.get("/ui").await.text().await.unwrap();
        // Every script is a file of the page's own origin: none inline, none from elsewhere.
        assert!(page.contains(r#"<script type="module" src="ui/app.js"></script>"#));
        assert_eq!(page.matches("<script").count(), 1, "{page}");
        assert!(
            !page.contains("http://") && !page.contains("https://"),
            "{page}"
        );

        // `/ui/`, as people type it, is sent to the page.
        let slash = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap()
            .get(server.url("/ui/"))
            .send()
            .await
            .unwrap();
        assert_eq!(slash.status(), 308);
        assert_eq!(slash.headers()["location"], "../ui");
        let followed = client.get(server.url("/ui/")).send().await.unwrap();
        assert_eq!(followed.url().path(), "/ui");
        assert_eq!(followed.text().await.unwrap(), page);

        let missing = client
            .get(server.url("/ui/secrets.txt"))
            .send()
            .await
            .unwrap();
        assert_eq!(missing.status(), 404);
        let body: serde_json::Value = missing.json().await.unwrap();
        assert!(body["detail"].is_string(), "{body}");
        // The API calls the page makes need the key.
        let listed = client.get(server.url("/agents")).send().await.unwrap();
        assert_eq!(listed.status(), 401);
    })
    .await;
}

/// The page once its script has had time to ask the proxy and show what it said.
async fn rendered(url: &str) -> String {
    support::rendered_dom(url, 10_000).await
}

#[tokio::test]
async fn with_no_keys_configured_the_dashboard_asks_for_none() {
    within(TEST_LIMIT, async {
        let server = TestServer::start().await;
        let (agent_id, _) = server.start_agent("@text hello").await;
        let dom = rendered(&server.url("/ui")).await;
        assert!(
            dom.contains(&format!(r#"data-agent-id="{agent_id}""#)),
            "the agent is listed without a key:\n{dom}"
        );
        assert!(
            dom.contains(r#"<form id="key-form" class="card" hidden="">"#),
            "no key asked for:\n{dom}"
        );
    })
    .await;
}

#[tokio::test]
async fn a_long_agents_page_keeps_its_newest_events_and_says_so() {
    within(TEST_LIMIT, async {
        let server = TestServer::start().await;
        // The agent event, init, 5,100 lines, the result and complete.
        let events = server.stream_all("@lines 5100 20\n@result").await;
        let agent_id = events[0].json()["agent_id"].as_str().unwrap().to_owned();
        let last = events.last().unwrap().id.clone().expect("numbered");
        let dom = rendered(&server.url(&format!("/ui#/agent/{agent_id}"))).await;
        let shown: Vec<u64> = dom
            .split(r#"data-event-id=""#)
            .skip(1)
            .map(|rest| rest[..rest.find('"').unwrap()].parse().unwrap())
            .collect();
        let last: u64 = last.parse().unwrap();
        assert_eq!(
            (shown.len(), shown.first(), shown.last()),
            (5000, Some(&(last - 4999)), Some(&last)),
            "{}",
            &dom[..dom.len().min(3000)]
        );
        assert!(
            shown.windows(2).all(|w| w[1] == w[0] + 1),
            "in order, none twice"
        );
        assert!(
            dom.contains(&format!(
                "Events before #{} are not shown here.",
                last - 4999
            )),
            "{}",
            &dom[..dom.len().min(3000)]
        );
    })
    .await;
}

#[tokio::test]
async fn an_agents_page_shows_its_mcp_servers_and_its_webhook_deliveries() {
    within(TEST_LIMIT, async {
        // A receiver that takes every event.
        let app = axum::Router::new().route(
            "/hooks/{*rest}",
            axum::routing::post(|| async { axum::http::StatusCode::OK }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let receiver = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        let dir = tempfile::tempdir().unwrap();
        let catalog = dir.path().join("mcp-servers.json");
        let secret = "an-mcp-secret-the-page-never-shows";
        std::fs::write(
            &catalog,
            serde_json::json!({"mcpServers": {
                "notes": {"command": "node", "args": ["notes.mjs"], "env": {"TOKEN": secret}, "keys": ["*"]},
                "tides": {"type": "http", "url": "http://127.0.0.1:9/mcp", "keys": ["*"]},
            }})
            .to_string(),
        )
        .unwrap();
        let allowed = format!("{receiver}/hooks/");
        let server = TestServer::with_args(&[
            "--mcp-servers",
            catalog.to_str().unwrap(),
            "--webhook-urls",
            &allowed,
            "--webhook-secret",
            "a-secret-of-the-tests",
        ])
        .await;
        let started: serde_json::Value = server
            .post_json(
                "/agent/start",
                serde_json::json!({"prompt": "@result done", "mcp_servers": ["tides", "notes"],
                    "webhook": format!("{receiver}/hooks/page")}),
            )
            .await
            .json()
            .await
            .unwrap();
        let agent_id = started["agent_id"].as_str().unwrap().to_owned();
        let path = format!("/agent/{agent_id}");
        support::until("the agent's webhook event delivered", TEST_LIMIT, || {
            let request = server.get(&path);
            async move {
                let detail: serde_json::Value = request.await.json().await.unwrap();
                detail["webhooks"][0]["state"] == "delivered"
            }
        })
        .await;
        let dom = rendered(&server.url(&format!("/ui#/agent/{agent_id}"))).await;
        assert!(
            dom.contains(r#"<span id="agent-mcp-servers" class="mono">notes, tides</span>"#),
            "the MCP servers its run named:\n{dom}"
        );
        assert!(
            dom.contains(r#"class="webhook webhook-delivered""#)
                && dom.contains("agent.completed"),
            "its webhook event, delivered:\n{dom}"
        );
        assert!(!dom.contains(secret), "no server's secret:\n{dom}");
    })
    .await;
}
