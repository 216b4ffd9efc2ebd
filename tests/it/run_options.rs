//! A run's own choices within the operator's policy (`json_schema`, `fork_session`,
//! `max_budget_usd`, `effort`, `fallback_model`, `agents`): with the real CLI against the
//! Messages API stand-in, what each does; with the fake CLI, that a bad one is refused before
//! anything is spawned.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::support;
use crate::support::real::RealSetup;
use crate::support::sse::complete_of;
use crate::support::{SseEvent, TEST_LIMIT, within};

fn cli_lines(events: &[SseEvent]) -> Vec<Value> {
    events
        .iter()
        .filter(|e| e.event == "message")
        .map(SseEvent::json)
        .collect()
}

fn result_of(events: &[SseEvent]) -> Value {
    cli_lines(events)
        .into_iter()
        .rfind(|line| line["type"] == "result")
        .unwrap_or_else(|| panic!("no result line: {events:#?}"))
}

const NAME_SCHEMA: &str =
    r#"{"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}"#;

#[tokio::test]
async fn a_json_schema_gives_a_result_with_the_structured_output() {
    within(TEST_LIMIT, async {
        let setup = RealSetup::start([]).await;
        let schema: Value = serde_json::from_str(NAME_SCHEMA).unwrap();
        let events = setup
            .proxy
            .stream_with(&json!({
                "prompt": r#"Who wrote the first program? STRUCT[{"name": "Ada"}]"#,
                "json_schema": schema,
            }))
            .await
            .collect_all()
            .await;
        assert_eq!(complete_of(&events)["status"], "completed", "{events:#?}");
        let result = result_of(&events);
        assert_eq!(
            result["structured_output"],
            json!({"name": "Ada"}),
            "{result}"
        );
        // The CLI offered the API its StructuredOutput tool, with the request's schema.
        let requests = setup.standin.requests();
        let tool = requests[0]["tools"]
            .as_array()
            .unwrap()
            .iter()
            .find(|tool| tool["name"] == "StructuredOutput")
            .expect("the StructuredOutput tool");
        assert_eq!(tool["input_schema"], schema);
    })
    .await;
}

/// The session file of `session` under the CLI's home.
fn session_file(home: &Path, session: &str) -> PathBuf {
    let projects = home.join(".claude/projects");
    std::fs::read_dir(&projects)
        .unwrap()
        .map(|project| project.unwrap().path().join(format!("{session}.jsonl")))
        .find(|file| file.exists())
        .unwrap_or_else(|| panic!("no file of session {session} in {}", projects.display()))
}

#[tokio::test]
async fn a_forked_session_is_a_new_one_and_the_old_one_stays_as_it_was() {
    within(TEST_LIMIT, async {
        let setup = RealSetup::start([
            support::anthropic::Reply::Text("Noted: 7.".into()),
            support::anthropic::Reply::Text("It was 7.".into()),
        ])
        .await;
        let first = setup
            .proxy
            .stream("Remember the number 7.")
            .await
            .collect_all()
            .await;
        let session = result_of(&first)["session_id"].as_str().unwrap().to_owned();
        let file = session_file(&setup.home, &session);
        let before = std::fs::read(&file).unwrap();

        let forked = setup
            .proxy
            .stream_with(&json!({
                "prompt": "What was my number?",
                "session_id": session,
                "fork_session": true,
            }))
            .await
            .collect_all()
            .await;
        assert_eq!(complete_of(&forked)["status"], "completed", "{forked:#?}");
        let fork = result_of(&forked)["session_id"]
            .as_str()
            .unwrap()
            .to_owned();
        assert_ne!(fork, session, "the fork has a session of its own");
        // It went on from the old session: the API got the earlier turn.
        let requests = setup.standin.requests();
        assert!(requests[1]["messages"].to_string().contains("Noted: 7."));
        assert_eq!(
            std::fs::read(&file).unwrap(),
            before,
            "the old session's file is unchanged"
        );
        assert!(session_file(&setup.home, &fork).exists());
    })
    .await;
}

#[tokio::test]
async fn an_exhausted_budget_ends_with_the_clis_max_budget_result() {
    within(TEST_LIMIT, async {
        let setup = RealSetup::with_settings([], &[("PROXY_MAX_BUDGET_USD", "0.5")]).await;
        // Above the operator's budget: refused, as any widening is.
        let wider = setup
            .proxy
            .post(
                "/agent/stream",
                &json!({"prompt": "hi", "max_budget_usd": 2}),
            )
            .await;
        assert_eq!(wider.status(), 403);
        let detail: Value = wider.json().await.unwrap();
        assert!(
            detail["detail"]
                .as_str()
                .unwrap()
                .contains("PROXY_MAX_BUDGET_USD"),
            "{detail}"
        );
        assert!(setup.standin.requests().is_empty());

        // A budget the first answer's cost already passes.
        let events = setup
            .proxy
            .stream_with(&json!({"prompt": "Say hello", "max_budget_usd": 0.000001}))
            .await
            .collect_all()
            .await;
        let result = result_of(&events);
        assert_eq!(result["subtype"], "error_max_budget_usd", "{result}");
        assert_eq!(result["is_error"], true, "{result}");
        assert_eq!(setup.standin.requests().len(), 1);
    })
    .await;
}

#[tokio::test]
async fn a_subagent_gets_only_tools_its_run_has() {
    within(TEST_LIMIT, async {
        let setup = RealSetup::with_settings([], &[("CLAUDE_TOOLS", "Task,Read,Grep")]).await;
        let subagent = |tools: &[&str]| {
            json!({"reviewer": {"description": "Reviews code", "prompt": "You review code.", "tools": tools}})
        };
        for (body, why) in [
            (
                json!({"prompt": "hi", "agents": subagent(&["Read", "Bash"])}),
                "Bash is not among the operator's tools",
            ),
            (
                json!({"prompt": "hi", "disallowed_tools": ["Grep"], "agents": subagent(&["Grep"])}),
                "the request removed Grep from its run",
            ),
        ] {
            let response = setup.proxy.post("/agent/stream", &body).await;
            assert_eq!(response.status(), 403, "{why}");
            let detail: Value = response.json().await.unwrap();
            assert!(
                detail["detail"].as_str().unwrap().starts_with("agents: reviewer asks for"),
                "{why}: {detail}"
            );
        }
        assert!(setup.standin.requests().is_empty(), "nothing ran");

        // Within the run's tools, the CLI has the subagent.
        let events = setup
            .proxy
            .stream_with(&json!({"prompt": "hi", "agents": subagent(&["Read"]), "effort": "low"}))
            .await
            .collect_all()
            .await;
        assert_eq!(complete_of(&events)["status"], "completed", "{events:#?}");
        let init = &cli_lines(&events)[0];
        assert!(
            init["agents"]
                .as_array()
                .unwrap()
                .iter()
                .any(|agent| agent == "reviewer"),
            "{init}"
        );
    })
    .await;
}

#[tokio::test]
async fn bad_choices_are_refused_naming_the_field_and_nothing_is_spawned() {
    within(TEST_LIMIT, async {
        let fake = support::FakeInstall::new();
        let cli = fake.cli_path().display().to_string();
        let proxy = support::proxy::Proxy::start(fake.dir.path(), &[("CLAUDE_CLI_PATH", &cli)]);
        let cases = [
            (json!({"json_schema": {"type": "string"}}), "json_schema"),
            (json!({"json_schema": "{\"type\": \"object\"}"}), "json_schema"),
            (
                json!({"json_schema": {"type": "object", "properties": {"n": {"type": 12}}}}),
                "json_schema",
            ),
            (json!({"fork_session": true}), "fork_session"),
            (json!({"fallback_model": "--dangerously-skip-permissions"}), "fallback_model"),
            (json!({"max_budget_usd": 0}), "max_budget_usd"),
            (json!({"max_budget_usd": -1}), "max_budget_usd"),
            (json!({"max_budget_usd": "5"}), "max_budget_usd"),
            (json!({"effort": "huge"}), "effort"),
            (json!({"agents": {"rev": {"description": "d"}}}), "agents"),
            (
                json!({"agents": {"rev": {"description": "d", "prompt": "p", "permissionMode": "bypassPermissions"}}}),
                "agents",
            ),
            (json!({"agents": {"two words": {"description": "d", "prompt": "p"}}}), "agents"),
        ];
        for path in ["/agent/stream", "/agent/start"] {
            for (fields, field) in &cases {
                let mut body = fields.clone();
                body["prompt"] = json!("hi");
                let response = proxy.post(path, &body).await;
                let status = response.status();
                let detail: Value = response.json().await.unwrap();
                assert_eq!(status, 422, "{path} {body}: {detail}");
                assert!(
                    detail["detail"].as_str().unwrap().contains(field),
                    "{path} {body}: {detail}"
                );
            }
        }

        // The compatible APIs, in their own formats.
        let messages = json!([{"role": "user", "content": "hi"}]);
        let bad_schema = json!({"type": "object", "required": "name"});
        let openai = proxy
            .post(
                "/v1/chat/completions",
                &json!({"model": "sonnet", "messages": messages, "response_format":
                    {"type": "json_schema", "json_schema": {"name": "n", "schema": bad_schema}}}),
            )
            .await;
        assert_eq!(openai.status(), 400);
        let openai: Value = openai.json().await.unwrap();
        assert_eq!(openai["error"]["type"], "invalid_request_error", "{openai}");
        assert!(
            openai["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with("json_schema:"),
            "{openai}"
        );
        for body in [
            json!({"model": "sonnet", "max_tokens": 10, "messages": messages,
                "output_format": {"type": "json_schema", "schema": bad_schema}}),
            json!({"model": "sonnet", "max_tokens": 10, "messages": messages,
                "output_config": {"format": {"type": "json_schema", "schema": {"type": "array"}}}}),
        ] {
            let anthropic = proxy.post("/v1/messages", &body).await;
            assert_eq!(anthropic.status(), 400, "{body}");
            let anthropic: Value = anthropic.json().await.unwrap();
            assert_eq!(anthropic["error"]["type"], "invalid_request_error", "{anthropic}");
        }
        assert_eq!(fake.runs(), 0, "no CLI was started");
    })
    .await;
}

#[tokio::test]
async fn the_fallback_model_answers_when_the_model_is_overloaded() {
    within(TEST_LIMIT, async {
        let setup = RealSetup::start([]).await;
        setup.standin.overload("claude-sonnet-4-5");
        let events = setup
            .proxy
            .stream_with(&json!({
                "prompt": "Say hello",
                "model": "claude-sonnet-4-5",
                "fallback_model": "claude-haiku-4-5",
            }))
            .await
            .collect_all()
            .await;
        assert_eq!(complete_of(&events)["status"], "completed", "{events:#?}");
        let lines = cli_lines(&events);
        let fallback = lines
            .iter()
            .find(|line| line["subtype"] == "model_fallback")
            .unwrap_or_else(|| panic!("no model_fallback line: {lines:#?}"));
        assert_eq!(fallback["fallback_model"], "claude-haiku-4-5", "{fallback}");
        let requests = setup.standin.requests();
        assert_eq!(requests[0]["model"], "claude-sonnet-4-5");
        assert_eq!(requests.last().unwrap()["model"], "claude-haiku-4-5");
    })
    .await;
}

#[tokio::test]
async fn the_effort_reaches_the_api_of_a_model_that_takes_one() {
    within(TEST_LIMIT, async {
        let setup = RealSetup::start([]).await;
        let events = setup
            .proxy
            .stream_with(&json!({"prompt": "Say hello", "effort": "low"}))
            .await
            .collect_all()
            .await;
        assert_eq!(complete_of(&events)["status"], "completed", "{events:#?}");
        // The CLI's default model (claude-opus-5-5 in the pinned release) takes an effort.
        let requests = setup.standin.requests();
        assert_eq!(
            requests[0]["output_config"]["effort"], "low",
            "{}",
            requests[0]
        );
    })
    .await;
}
