//! MCP servers per request: the operator's catalog (PROXY_MCP_SERVERS) names them and who may
//! use each; a request names the ones its run gets. The real CLI runs a small stdio server of
//! the tests' own (tests/mcp/notes-server.mjs), and the stand-in calls its tool.

use serde_json::{Value, json};

use crate::support::anthropic::{Reply, StandIn};
use crate::support::{TEST_LIMIT, within};

const KEY: &str = "mcp-test-key-0123456789";
const SECRET: &str = "secret-mcp-token-77";

/// The catalog: `notes` for every key, `billing` for a key that is not this test's.
fn catalog(dir: &std::path::Path) -> std::path::PathBuf {
    let server = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/mcp/notes-server.mjs");
    let path = dir.join("mcp-servers.json");
    let catalog = json!({"mcpServers": {
        "notes": {"command": "node", "args": [server], "env": {"NOTES_TOKEN": SECRET}, "keys": ["*"]},
        "billing": {"command": "node", "args": [server], "keys": ["ab".repeat(16)]},
    }});
    std::fs::write(&path, catalog.to_string()).unwrap();
    path
}

#[tokio::test]
async fn a_run_gets_the_mcp_servers_it_named_and_their_secrets_stay_with_them() {
    within(TEST_LIMIT, async {
        let standin = StandIn::start([
            Reply::Tool("mcp__notes__lookup".into(), json!({"topic": "tides"})),
            Reply::Text("The note says 42.".into()),
        ])
        .await;
        let dir = tempfile::tempdir().unwrap();
        let (home, work) = (dir.path().join("home"), dir.path().join("work"));
        std::fs::create_dir_all(&home).unwrap();
        std::fs::create_dir_all(&work).unwrap();
        let catalog = catalog(dir.path());
        let proxy = crate::support::real::start_proxy(
            &standin,
            &home,
            &work,
            &[
                ("PROXY_API_KEY", KEY),
                ("PROXY_MCP_SERVERS", catalog.to_str().unwrap()),
                ("CLAUDE_ALLOWED_TOOLS", "mcp__notes__*"),
            ],
        );

        // A server this key may not use, and one that does not exist: the same 403, and no CLI.
        for name in ["billing", "nowhere"] {
            let refused = proxy
                .post(
                    "/agent/stream",
                    &json!({"prompt": "hi", "mcp_servers": [name]}),
                )
                .await;
            assert_eq!(refused.status(), 403, "{name}");
            let detail = refused.json::<Value>().await.unwrap()["detail"].to_string();
            assert!(
                detail.contains("is not an MCP server this key may use"),
                "{detail}"
            );
        }
        assert!(
            standin.requests().is_empty(),
            "nothing refused reached a CLI"
        );

        // Narrowed to the one tool, within the operator's mcp__notes__*.
        let events = proxy
            .stream_with(
                &json!({"prompt": "Consult the notes on tides.", "mcp_servers": ["notes"],
                "allowed_tools": ["mcp__notes__lookup"]}),
            )
            .await
            .collect_all()
            .await;
        let stream: Vec<String> = events.iter().map(|e| e.data.clone()).collect();
        let stream = stream.join("\n");
        assert!(
            stream.contains("note on tides: 42 (token ok: yes)"),
            "the server ran with its secret and answered: {stream}"
        );
        assert!(
            !stream.contains(SECRET),
            "the secret is in no event: {stream}"
        );
        let sent = standin.requests()[1]["messages"].to_string();
        assert!(sent.contains("note on tides: 42"), "{sent}");

        // Its detail names the servers it ran with, and shows nothing of their settings.
        let agent_id = events[0].json()["agent_id"].as_str().unwrap().to_owned();
        let detail: Value = proxy
            .get(&format!("/agent/{agent_id}"))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(detail["mcp_servers"], json!(["notes"]), "{detail}");
        assert!(!detail.to_string().contains(SECRET), "{detail}");
        let listed: Value = proxy.get("/agents").await.json().await.unwrap();
        assert_eq!(
            listed["agents"][0]["mcp_servers"],
            json!(["notes"]),
            "{listed}"
        );

        // The run's configuration is gone with it.
        let run_files = work.with_file_name("data").join("prompts");
        crate::support::eventually(
            "the run's MCP configuration is removed",
            std::time::Duration::from_secs(10),
            || std::fs::read_dir(&run_files).is_ok_and(|mut dir| dir.next().is_none()),
        )
        .await;
    })
    .await;
}

/// A client key's id, as the logs show it and the catalog names it.
fn key_id(key: &str) -> String {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    hasher.update(b"claude-proxy key id\0");
    hasher.update(key.as_bytes());
    hasher.finalize()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[tokio::test]
async fn an_http_mcp_server_is_reached_with_its_headers_by_the_keys_it_names() {
    const OTHER_KEY: &str = "mcp-other-key-9876543210";
    const HEADER: &str = "Bearer http-mcp-secret-55";
    within(TEST_LIMIT, async {
        let docs = crate::support::mcp_http::McpHttpServer::start(HEADER).await;
        let standin = StandIn::start([
            Reply::Tool("mcp__docs__search".into(), json!({"query": "tides"})),
            Reply::Text("Chapter 3.".into()),
        ])
        .await;
        let dir = tempfile::tempdir().unwrap();
        let (home, work) = (dir.path().join("home"), dir.path().join("work"));
        std::fs::create_dir_all(&home).unwrap();
        std::fs::create_dir_all(&work).unwrap();
        let catalog = dir.path().join("mcp-servers.json");
        let servers = json!({"mcpServers": {"docs": {"type": "http", "url": docs.url,
            "headers": {"Authorization": HEADER}, "keys": [key_id(KEY)]}}});
        std::fs::write(&catalog, servers.to_string()).unwrap();
        let keys = format!("{KEY},{OTHER_KEY}");
        let proxy = crate::support::real::start_proxy(
            &standin,
            &home,
            &work,
            &[
                ("PROXY_API_KEY", &keys),
                ("PROXY_MCP_SERVERS", catalog.to_str().unwrap()),
                ("CLAUDE_ALLOWED_TOOLS", "mcp__docs__*"),
            ],
        );

        let refused = proxy
            .client
            .post(proxy.url("/agent/stream"))
            .bearer_auth(OTHER_KEY)
            .json(&json!({"prompt": "hi", "mcp_servers": ["docs"]}))
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), 403, "a key the catalog does not name");

        let events = proxy
            .stream_with(&json!({"prompt": "Search the docs for tides.", "mcp_servers": ["docs"]}))
            .await
            .collect_all()
            .await;
        let stream: Vec<String> = events.iter().map(|e| e.data.clone()).collect();
        let stream = stream.join("\n");
        assert!(
            stream.contains("docs on tides: see chapter 3 (authorized: true)"),
            "{stream}"
        );
        assert!(!stream.contains("http-mcp-secret-55"), "{stream}");
    })
    .await;
}
