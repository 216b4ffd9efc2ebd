//! The proxy with the real Claude Code CLI (the pinned npm release), which talks to a stand-in
//! of the Anthropic API instead of the network. These tests never skip: without the CLI they
//! fail and say how to install it.

use crate::support;

use crate::support::{TEST_LIMIT, within};

use std::time::Instant;

use crate::support::anthropic::{Reply, StandIn};
use crate::support::real::{RealSetup, start_proxy};
use crate::support::sse::{complete_of, error_codes};
use crate::support::{SseEvent, process_gone, process_tree};
use serde_json::{Value, json};

fn cli_lines(events: &[SseEvent]) -> Vec<Value> {
    events
        .iter()
        .filter(|e| e.event == "message")
        .map(SseEvent::json)
        .collect()
}

fn text_of(assistant: &Value) -> String {
    assistant["message"]["content"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["text"].as_str())
        .collect()
}

#[tokio::test]
async fn a_stream_carries_the_real_cli_from_init_to_result() {
    within(TEST_LIMIT, async {
        let setup = RealSetup::start([Reply::Text("The answer is 4.".into())]).await;
        let started = Instant::now();
        let mut reader = setup
            .proxy
            .stream_with(&json!({"prompt": "What is 2 + 2?", "model": "claude-sonnet-4-5"}))
            .await;
        let agent = reader.next().await.unwrap();
        assert_eq!(agent.event, "agent");
        let first_cli_line = reader.next().await.unwrap();
        eprintln!(
            "time from request to the first CLI line: {:?}",
            started.elapsed()
        );
        let mut events = vec![agent, first_cli_line];
        events.extend(reader.collect_all().await);

        let lines = cli_lines(&events);
        let kinds: Vec<&str> = lines.iter().map(|l| l["type"].as_str().unwrap()).collect();
        assert_eq!(kinds, ["system", "assistant", "result"], "{events:#?}");
        assert_eq!(lines[0]["subtype"], "init");
        assert_eq!(text_of(&lines[1]), "The answer is 4.");
        assert_eq!(lines[2]["is_error"], false);
        assert_eq!(lines[2]["result"], "The answer is 4.");
        let complete = complete_of(&events);
        assert_eq!(complete["status"], "completed");
        assert_eq!(complete["exit_code"], 0);

        let requests = setup.standin.requests();
        assert_eq!(requests.len(), 1);
        assert_eq!(
            requests[0]["model"], "claude-sonnet-4-5",
            "the requested model reached the API"
        );
        assert!(
            setup
                .standin
                .texts_received()
                .iter()
                .any(|t| t == "What is 2 + 2?")
        );
    })
    .await;
}

#[tokio::test]
async fn a_resumed_session_continues_the_conversation() {
    within(TEST_LIMIT, async {
        let setup = RealSetup::start([
            Reply::Text("Noted: your number is 7.".into()),
            Reply::Text("It was 7.".into()),
        ])
        .await;
        let first = setup
            .proxy
            .stream("Remember the number 7.")
            .await
            .collect_all()
            .await;
        let result = cli_lines(&first)
            .into_iter()
            .find(|l| l["type"] == "result")
            .unwrap();
        let session = result["session_id"].as_str().unwrap().to_owned();

        let second = setup
            .proxy
            .stream_with(&json!({"prompt": "What was my number?", "session_id": session}))
            .await
            .collect_all()
            .await;
        assert_eq!(complete_of(&second)["status"], "completed");
        let init = &cli_lines(&second)[0];
        assert_eq!(
            init["session_id"], session,
            "the CLI resumed the same session"
        );
        let requests = setup.standin.requests();
        assert_eq!(requests.len(), 2);
        let earlier = requests[1]["messages"].to_string();
        assert!(
            earlier.contains("Remember the number 7.")
                && earlier.contains("Noted: your number is 7."),
            "the earlier turn was sent again"
        );
    })
    .await;
}

#[tokio::test]
async fn resuming_an_unknown_session_fails_with_the_clis_reason() {
    within(TEST_LIMIT, async {
        let setup = RealSetup::start([]).await;
        let unknown = "00000000-0000-4000-8000-000000000000";
        let events = setup
            .proxy
            .stream_with(&json!({"prompt": "hello again", "session_id": unknown}))
            .await
            .collect_all()
            .await;

        let lines = cli_lines(&events);
        assert_eq!(lines.last().unwrap()["type"], "result");
        assert_eq!(lines.last().unwrap()["is_error"], true);
        let error = events.iter().find(|e| e.event == "error").unwrap().json();
        assert_eq!(error["code"], "exit_nonzero");
        assert_eq!(error["exit_code"], 1);
        assert!(
            error["message"]
                .as_str()
                .unwrap()
                .contains(&format!("No conversation found with session ID: {unknown}")),
            "{error}"
        );
        assert_eq!(complete_of(&events)["status"], "failed");
        assert!(setup.standin.requests().is_empty());
    })
    .await;
}

#[tokio::test]
async fn a_bash_tool_really_runs_and_its_output_reaches_the_stream() {
    within(TEST_LIMIT, async {
        let nonce = uuid::Uuid::new_v4().to_string();
        let setup = RealSetup::start([
            Reply::Bash("cat nonce.txt".into()),
            Reply::Text("The file holds the nonce.".into()),
        ])
        .await;
        std::fs::write(setup.work.join("nonce.txt"), &nonce).unwrap();

        let events = setup
            .proxy
            .stream("What is in nonce.txt?")
            .await
            .collect_all()
            .await;
        let lines = cli_lines(&events);
        let tool_use = lines
            .iter()
            .find(|l| l["type"] == "assistant" && l.to_string().contains("tool_use"))
            .expect("a tool_use line");
        assert!(tool_use.to_string().contains("cat nonce.txt"));
        let tool_result = lines
            .iter()
            .find(|l| l["type"] == "user")
            .expect("a tool_result line");
        assert!(
            tool_result.to_string().contains(&nonce),
            "the command's output is in the stream: {tool_result}"
        );
        assert_eq!(complete_of(&events)["status"], "completed");
        let requests = setup.standin.requests();
        assert_eq!(requests.len(), 2);
        assert!(
            requests[1]["messages"].to_string().contains(&nonce),
            "the tool result went back to the API"
        );
    })
    .await;
}

#[tokio::test]
async fn stop_during_a_stalled_reply_ends_the_cli_and_all_it_started() {
    within(TEST_LIMIT, async {
        let setup = RealSetup::start([Reply::Stall]).await;
        let mut reader = setup.proxy.stream("Take your time.").await;
        let agent = reader.next_of("agent").await.json();
        reader.next_of("system").await;
        let pid = agent["pid"].as_u64().unwrap() as u32;
        support::eventually(
            "the stand-in got the request",
            std::time::Duration::from_secs(30),
            || !setup.standin.requests().is_empty(),
        )
        .await;
        let tree = process_tree(pid);
        eprintln!("the CLI runs as {} processes: {tree:?}", tree.len());
        assert!(tree.contains(&pid));

        let id = agent["agent_id"].as_str().unwrap();
        let response = setup
            .proxy
            .client
            .post(setup.proxy.url(&format!("/agent/stop/{id}")))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let rest = reader.collect_all().await;
        assert_eq!(error_codes(&rest), ["stopped"]);
        assert_eq!(complete_of(&rest)["status"], "stopped");
        for pid in tree {
            process_gone(pid).await;
        }
    })
    .await;
}

#[tokio::test]
async fn a_two_mib_prompt_reaches_the_api_intact() {
    within(TEST_LIMIT, async {
        let setup = RealSetup::start([Reply::Text("That was long.".into())]).await;
        let prompt: String = (0..2 * 1024 * 1024 / 64)
            .map(|i| format!("line {i:057}\n"))
            .collect();
        let events = setup.proxy.stream(&prompt).await.collect_all().await;
        assert_eq!(
            complete_of(&events)["status"],
            "completed",
            "{:?}",
            error_codes(&events)
        );
        assert!(
            setup.standin.texts_received().contains(&prompt),
            "the API received the prompt unchanged"
        );
    })
    .await;
}

#[tokio::test]
async fn the_typescript_client_package_works_against_the_real_cli() {
    within(TEST_LIMIT, async {
        // The approval test's prompt asks for a file, once: the request that carries the tool's
        // result gets the usual text.
        let rule: support::anthropic::Rule = std::sync::Arc::new(|texts: &[String]| {
            let asked = texts.iter().any(|t| t.contains("[approve-me]"));
            let answered = texts.iter().any(|t| t.contains("Bash completed"));
            (asked && !answered).then(|| Reply::Bash("touch node-approved.txt".into()))
        });
        let setup = RealSetup::with_rule(rule, &[("PROXY_CLIENT_APPROVALS", "true")]).await;
        let output = typescript_consumer(&setup).await;
        let report = support::printed(&output);
        assert!(
            output.status.success(),
            "the TypeScript client's tests failed:\n{report}"
        );
        assert!(
            setup.work.join("node-approved.txt").exists(),
            "the approved tool ran"
        );
        assert!(
            report.contains("pass 10") && report.contains("fail 0"),
            "{report}"
        );
    })
    .await;
}

/// Installs the packed client into a project of its own, as a user would from npm, type-checks
/// tests/typescript/consumer.test.ts against it with `tsc --strict`, and runs it.
async fn typescript_consumer(setup: &RealSetup) -> std::process::Output {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let packed = root.join(".tools/typescript-client");
    let tarball = std::fs::read_dir(&packed)
        .ok()
        .and_then(|mut dir| dir.find_map(|e| e.ok().map(|e| e.path())))
        .unwrap_or_else(|| {
            panic!(
                "no packed client in {}: scripts/test packs it",
                packed.display()
            )
        });
    let project = tempfile::tempdir().unwrap();
    std::fs::write(
        project.path().join("package.json"),
        r#"{"private": true, "type": "module"}"#,
    )
    .unwrap();
    for (from, to) in [
        ("tests/typescript/consumer.test.ts", "consumer.test.ts"),
        ("examples/node/ask.ts", "ask.ts"),
    ] {
        std::fs::copy(root.join(from), project.path().join(to)).unwrap();
    }
    let run = |program: &str, args: &[&str]| {
        let mut command = tokio::process::Command::new(program);
        command.args(args).current_dir(project.path());
        command
    };
    let tarball = tarball.display().to_string();
    let installed = run(
        "npm",
        &[
            "install",
            "--no-audit",
            "--no-fund",
            "--loglevel=error",
            &tarball,
        ],
    )
    .output()
    .await
    .expect("npm runs");
    assert!(installed.status.success(), "{installed:?}");
    let tools = root.join("clients/typescript/node_modules");
    let tsc = tools.join("typescript/bin/tsc").display().to_string();
    let type_roots = tools.join("@types").display().to_string();
    let checked = run(
        "node",
        &[
            &tsc,
            "--strict",
            "--exactOptionalPropertyTypes",
            "--noUncheckedIndexedAccess",
            "--module",
            "nodenext",
            "--moduleResolution",
            "nodenext",
            "--target",
            "es2022",
            "--lib",
            "es2022,dom",
            "--typeRoots",
            &type_roots,
            "--types",
            "node",
            "--outDir",
            "out",
            "consumer.test.ts",
            "ask.ts",
        ],
    )
    .output()
    .await
    .unwrap();
    assert!(
        checked.status.success(),
        "tsc --strict refused the consumer:\n{}{}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );
    // The README's example, as its header says to run it.
    let asked = run("node", &["out/ask.js", "Say hello"])
        .env("CLAUDE_PROXY_URL", &setup.proxy.base)
        .output()
        .await
        .unwrap();
    let printed = String::from_utf8_lossy(&asked.stdout);
    assert!(
        asked.status.success()
            && printed.contains(support::anthropic::DEFAULT_TEXT)
            && printed.contains("status: completed"),
        "examples/node/ask.ts: {asked:?}"
    );
    run(
        "node",
        &["--test", "--test-reporter=spec", "out/consumer.test.js"],
    )
    .env("CLAUDE_PROXY_URL", &setup.proxy.base)
    .env("EXPECTED_TEXT", support::anthropic::DEFAULT_TEXT)
    .output()
    .await
    .expect("node runs (Node.js 18 or later is needed)")
}

/// The README's curl examples, in order, with what each one's output must show.
const README_EXAMPLES: &[&str] = &[
    r#""status":"ok""#,
    r#""/agent/{agent_id}/permissions/{request_id}""#,
    r#""status":"completed""#,
    "No conversation found with session ID: 00000000-0000-4000-8000-000000000000",
    r#""status":"started""#,
    r#""status":"stopped""#,
    r#""structured_output":{"name":"Ada Lovelace","year":1843}"#,
    r#""status":"completed""#,
    r#""reviewer""#,
    r#""mcp_servers":[{"name":"notes","status":"connected""#,
    r#""subtype":"success""#,
    r#""result":{"#,
    r#""type":"complete""#,
    r#""content":"What was the word?""#,
    r#""status":"started""#,
    r#""object":"chat.completion""#,
    r#"{"id":"support-42","object":"session.deleted","deleted":true}"#,
    r#""previous_response_id":"resp_"#,
    r#""by":"model","from":"2026-01-01T00:00:00Z","to":null,"rows":[{"model":"#,
    "claude_proxy_agents_started_total",
    // OpenTelemetry: a request that continues the caller's trace.
    r#""type":"complete""#,
];

#[tokio::test]
async fn the_readme_curl_examples_work_as_written() {
    within(TEST_LIMIT, async {
        let readme =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
        let blocks: Vec<&str> = readme
            .split("```sh\n")
            .skip(1)
            .map(|rest| rest.split("```").next().unwrap())
            // The Docker ones run in tests/it/docker.rs.
            .filter(|block| block.contains("curl ") && !block.contains("docker"))
            .collect();
        assert_eq!(
            blocks.len(),
            README_EXAMPLES.len(),
            "the README's curl examples: {blocks:#?}"
        );

        // The stop example needs an agent that is still running when it is stopped; the
        // structured output example, an answer through the CLI's StructuredOutput tool.
        let rule: support::anthropic::Rule = std::sync::Arc::new(|texts: &[String]| {
            let asked = |what: &str| texts.iter().any(|t| t.contains(what));
            if asked("Who wrote the first computer program") {
                return Some(Reply::Tool(
                    "StructuredOutput".into(),
                    json!({"name": "Ada Lovelace", "year": 1843}),
                ));
            }
            asked("Explain this repository").then_some(Reply::Stall)
        });
        let dir = tempfile::tempdir().unwrap();
        let (home, work) = (dir.path().join("home"), dir.path().join("work"));
        std::fs::create_dir_all(&home).unwrap();
        std::fs::create_dir_all(&work).unwrap();
        let standin = StandIn::start_with(Some(rule), []).await;
        // The MCP example's server: the tests' own, by the name the README gives it.
        let server = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/mcp/notes-server.mjs");
        let catalog = dir.path().join("mcp-servers.json");
        let servers = serde_json::json!({"mcpServers": {
            "notes": {"command": "node", "args": [server], "keys": ["*"]}}});
        std::fs::write(&catalog, servers.to_string()).unwrap();
        let proxy = start_proxy(
            &standin,
            &home,
            &work,
            &[
                ("PROXY_MCP_SERVERS", catalog.to_str().unwrap()),
                // The webhook example's: its events go nowhere, and that is all right here.
                ("PROXY_WEBHOOK_URLS", "https://backend.internal/hooks/"),
                ("PROXY_WEBHOOK_SECRET", "the-readme-example-secret"),
            ],
        );
        let address = proxy.base.trim_start_matches("http://").to_owned();

        for (block, expected) in blocks.iter().zip(README_EXAMPLES) {
            let script = block.replace("127.0.0.1:8000", &address);
            let output = tokio::process::Command::new("bash")
                .args(["-eu", "-c", &script])
                .current_dir(dir.path())
                .output()
                .await
                .unwrap();
            let stdout = String::from_utf8_lossy(&output.stdout);
            assert!(
                output.status.success(),
                "{block}\nfailed: {}",
                String::from_utf8_lossy(&output.stderr)
            );
            assert!(
                stdout.contains(expected),
                "{block}\nprinted {stdout}\nwhich lacks {expected}"
            );
        }
    })
    .await;
}

/// Runs the nonce request ("cat nonce.txt" through Bash) with extra proxy settings; returns the
/// whole stream as text and the stream's CLI lines.
async fn nonce_run(extra: &[(&str, &str)], nonce: &str) -> (String, Vec<Value>, StandIn) {
    let dir = tempfile::tempdir().unwrap();
    let (home, work) = (dir.path().join("home"), dir.path().join("work"));
    std::fs::create_dir_all(&home).unwrap();
    std::fs::create_dir_all(&work).unwrap();
    std::fs::write(work.join("nonce.txt"), nonce).unwrap();
    let standin = StandIn::start([
        Reply::Bash("cat nonce.txt".into()),
        Reply::Text("Done.".into()),
    ])
    .await;
    let proxy = start_proxy(&standin, &home, &work, extra);
    let events = proxy
        .stream("What is in nonce.txt?")
        .await
        .collect_all()
        .await;
    assert_eq!(
        complete_of(&events)["status"],
        "completed",
        "{:?}",
        error_codes(&events)
    );
    let text = events
        .iter()
        .map(|e| e.data.as_str())
        .collect::<Vec<_>>()
        .join("\n");
    (text, cli_lines(&events), standin)
}

#[tokio::test]
async fn the_operators_disallowed_tools_keep_the_cli_from_running_them() {
    within(TEST_LIMIT, async {
        let nonce = uuid::Uuid::new_v4().to_string();

        // The control: without the policy the nonce comes through, so this test can fail.
        let (open, _, _) = nonce_run(&[], &nonce).await;
        assert!(open.contains(&nonce), "without a policy the tool runs");

        let (closed, lines, standin) =
            nonce_run(&[("CLAUDE_DISALLOWED_TOOLS", "Bash")], &nonce).await;
        assert!(
            !closed.contains(&nonce),
            "with Bash disallowed the nonce must not appear"
        );
        let tool_result = lines
            .iter()
            .find(|l| l["type"] == "user")
            .expect("a tool_result line")
            .to_string();
        assert!(
            tool_result.contains("No such tool available: Bash"),
            "{tool_result}"
        );
        assert!(
            !standin.requests()[1].to_string().contains(&nonce),
            "nor does it reach the API"
        );
    })
    .await;
}
