//! The compatible APIs with the official `openai` and `@anthropic-ai/sdk` npm packages as clients, the real
//! CLI behind the proxy and the Messages API stand-in behind the CLI (tests/compat/*.test.mjs);
//! and what only the stand-in can see: the system prompt the API received, and the earlier
//! turns set out in the prompt.

use crate::support;

use crate::support::anthropic::Reply;
use crate::support::real::RealSetup;
use crate::support::{TEST_LIMIT, within};
use serde_json::Value;

const KEY: &str = "compat-test-key-0123456789";
/// Another client's key, for the tests that need two.
const OTHER_KEY: &str = "compat-other-key-0123456789";

/// Runs the Node.js test files against the setup's proxy; the report, once they all passed.
async fn node_tests(setup: &RealSetup, files: &[&str]) -> String {
    let output = tokio::process::Command::new("node")
        .args(["--test", "--test-reporter=spec"])
        .args(files)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("CLAUDE_PROXY_URL", &setup.proxy.base)
        .env("CLAUDE_PROXY_KEY", KEY)
        .env("CLAUDE_PROXY_OTHER_KEY", OTHER_KEY)
        .env("EXPECTED_TEXT", support::anthropic::DEFAULT_TEXT)
        .output()
        .await
        .expect("node runs");
    let report = support::printed(&output);
    assert!(output.status.success(), "{report}");
    report
}

#[tokio::test]
async fn a_rate_limited_subscription_is_the_sdks_rate_limit_error() {
    within(TEST_LIMIT, async {
        // As the API answers a rate limited key: the CLI does not retry it.
        let rule: support::anthropic::Rule = std::sync::Arc::new(|_: &[String]| {
            Some(Reply::Error {
                status: 429,
                kind: "rate_limit_error".into(),
                retry_after: Some(3600),
            })
        });
        let setup = RealSetup::with_rule(rule, &[("PROXY_API_KEY", KEY)]).await;
        let report = node_tests(&setup, &["tests/compat/rate_limit.test.mjs"]).await;
        assert!(
            report.contains("pass 1") && report.contains("fail 0"),
            "{report}"
        );
        // The CLI ran once: the proxy refused the next ones itself.
        let agents: Value = setup
            .proxy
            .client
            .get(setup.proxy.url("/agents"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(agents["agents"].as_array().unwrap().len(), 1, "{agents}");
    })
    .await;
}

/// The system prompts the API was sent, flattened to text.
fn systems(requests: &[Value]) -> Vec<String> {
    requests.iter().map(|r| r["system"].to_string()).collect()
}

#[tokio::test]
async fn the_official_sdks_work_against_the_real_cli() {
    within(TEST_LIMIT, async {
        let setup = RealSetup::with_settings(
            [],
            &[
                ("PROXY_API_KEY", KEY),
                ("PROXY_MODEL_MAP", "gpt-4o=sonnet"),
                // The system prompt's file must reach a sandboxed CLI too.
                ("PROXY_SANDBOX", "bwrap"),
            ],
        )
        .await;
        let report = node_tests(
            &setup,
            &[
                "tests/compat/openai.test.mjs",
                "tests/compat/anthropic.test.mjs",
            ],
        )
        .await;
        assert!(
            report.contains("pass 15") && report.contains("fail 0"),
            "{report}"
        );

        // Each system prompt's file is gone with its agent.
        let prompts = setup.work.with_file_name("data").join("prompts");
        support::eventually(
            "every system prompt file is removed",
            std::time::Duration::from_secs(10),
            || std::fs::read_dir(&prompts).is_ok_and(|mut dir| dir.next().is_none()),
        )
        .await;

        let requests = setup.standin.requests();
        // The client's system message is the whole system prompt: not Claude Code's.
        let with_marker: Vec<String> = systems(&requests)
            .into_iter()
            .filter(|s| s.contains("[system-marker-7]") || s.contains("[anthropic-system-9]"))
            .collect();
        assert_eq!(with_marker.len(), 2, "{:?}", systems(&requests));
        assert!(
            with_marker.iter().all(|s| !s.contains("Claude Code")),
            "{with_marker:?}"
        );
        // Without one, the operator's neutral line.
        assert!(
            systems(&requests)
                .iter()
                .any(|s| s.contains("You are a helpful assistant.")),
            "{:?}",
            systems(&requests)
        );
        // A conversation carrying the proxy's reply resumed its session: the API got the earlier
        // turns from it, as turns, once, and no transcript.
        let resumed = requests
            .iter()
            .rfind(|r| r["messages"].to_string().contains("[resume-2]"))
            .expect("the second turn reached the API");
        let turns = resumed["messages"].as_array().unwrap();
        let said = turns.iter().map(|m| m.to_string()).collect::<Vec<_>>();
        assert_eq!(
            said.iter()
                .filter(|m| m.contains("[resume-marker]"))
                .count(),
            1,
            "{said:?}"
        );
        assert!(
            turns.iter().any(|m| m["role"] == "assistant"
                && m.to_string().contains(support::anthropic::DEFAULT_TEXT)),
            "{said:?}"
        );
        assert!(
            !resumed.to_string().contains("The conversation so far"),
            "{said:?}"
        );
        // A chat model: the API was offered no tools.
        let marked: Vec<&Value> = requests
            .iter()
            .filter(|r| r["system"].to_string().contains("[system-marker-7]"))
            .collect();
        assert!(!marked.is_empty());
        for request in marked {
            assert!(
                request["tools"].as_array().is_none_or(|t| t.is_empty()),
                "{}",
                request["tools"]
            );
        }
        // The image reached the API as an image block of the user's message, from both APIs.
        for marker in ["[image-marker]", "[anthropic-image-marker]"] {
            let with_image = requests
                .iter()
                .rfind(|r| r["messages"].to_string().contains(marker))
                .expect("the image's turn reached the API");
            let blocks = with_image["messages"].to_string();
            assert!(
                blocks.contains(r#""type":"image""#) && blocks.contains("iVBORw0KGgo"),
                "{blocks}"
            );
        }
        // Earlier turns reach the API once, set out with their roles.
        let texts = setup.standin.texts_received();
        let history: Vec<&String> = texts
            .iter()
            .filter(|t| t.contains("[history-marker]"))
            .collect();
        assert_eq!(history.len(), 1, "{history:?}");
        assert!(
            history[0].contains("[assistant]\nNoted.")
                && history[0].contains("What was my number?"),
            "{}",
            history[0]
        );
    })
    .await;
}

/// A CLI that fails once its reply has begun: the stream says so in the API's own way.
#[tokio::test]
async fn a_cli_that_fails_mid_stream_ends_the_stream_with_the_apis_error() {
    within(TEST_LIMIT, async {
        let fake = support::FakeInstall::new();
        let cli = fake.cli_path().display().to_string();
        let proxy = support::proxy::Proxy::start(fake.dir.path(), &[("CLAUDE_CLI_PATH", &cli)]);
        let failing = "@stream-text 3\n@result-error the model went away";
        let openai = proxy
            .client
            .post(proxy.url("/v1/chat/completions"))
            .json(&serde_json::json!({"model": "sonnet", "stream": true,
                "messages": [{"role": "user", "content": failing}]}))
            .send()
            .await
            .unwrap();
        assert_eq!(openai.status(), 200);
        let body = openai.text().await.unwrap();
        let data: Vec<&str> = body
            .lines()
            .filter_map(|l| l.strip_prefix("data: "))
            .collect();
        assert!(
            data.iter().any(|d| d.contains(r#""content":"tok "#)),
            "{body}"
        );
        let error: Value = serde_json::from_str(data[data.len() - 2]).unwrap();
        assert_eq!(error["error"]["type"], "api_error", "{body}");
        assert!(
            error["error"]["message"]
                .as_str()
                .unwrap()
                .contains("the model went away")
        );
        assert_eq!(data[data.len() - 1], "[DONE]");

        let anthropic = proxy
            .client
            .post(proxy.url("/v1/messages"))
            .json(
                &serde_json::json!({"model": "sonnet", "stream": true, "max_tokens": 10,
                "messages": [{"role": "user", "content": failing}]}),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(anthropic.status(), 200);
        let body = anthropic.text().await.unwrap();
        assert!(body.contains("event: content_block_delta"), "{body}");
        let last = body.trim_end().rsplit("\n\n").next().unwrap();
        assert!(last.starts_with("event: error\ndata: "), "{body}");
        assert!(last.contains(r#""type":"api_error""#) && last.contains("the model went away"));
        assert!(!body.contains("event: message_stop"), "{body}");

        // Before any output, the same failure is an error answer, not a stream.
        let refused = proxy
            .client
            .post(proxy.url("/v1/chat/completions"))
            .json(&serde_json::json!({"model": "sonnet", "stream": true,
                "messages": [{"role": "user", "content": "@result-error no words at all"}]}))
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), 502);
        let refused: Value = refused.json().await.unwrap();
        assert!(
            refused["error"]["message"]
                .as_str()
                .unwrap()
                .contains("no words at all")
        );
    })
    .await;
}

/// The rest of what the APIs' SDKs read: a reply cut at the token limit, a body over the limit,
/// and a CLI that is not there, each in the API's own shape.
#[tokio::test]
async fn limits_and_a_missing_cli_answer_in_the_apis_shapes() {
    within(TEST_LIMIT, async {
        let fake = support::FakeInstall::new();
        let cli = fake.cli_path().display().to_string();
        let proxy = support::proxy::Proxy::start(
            fake.dir.path(),
            &[("CLAUDE_CLI_PATH", &cli), ("PROXY_MAX_BODY_BYTES", "2000")],
        );
        let post = |path: &'static str, body: Value| {
            proxy.client.post(proxy.url(path)).json(&body).send()
        };
        let cut = "@stream-text 3 max_tokens\n@result tok tok tok ";
        let openai: Value = post(
            "/v1/chat/completions",
            serde_json::json!({"model": "sonnet", "messages": [{"role": "user", "content": cut}]}),
        )
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
        assert_eq!(openai["choices"][0]["finish_reason"], "length", "{openai}");
        assert_eq!(openai["choices"][0]["message"]["content"], "tok tok tok ");
        let anthropic: Value = post(
            "/v1/messages",
            serde_json::json!({"model": "sonnet", "max_tokens": 3, "messages": [{"role": "user", "content": cut}]}),
        )
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
        assert_eq!(anthropic["stop_reason"], "max_tokens", "{anthropic}");

        let big = "x".repeat(4000);
        let too_big = post(
            "/v1/chat/completions",
            serde_json::json!({"model": "sonnet", "messages": [{"role": "user", "content": big}]}),
        )
        .await
        .unwrap();
        assert_eq!(too_big.status(), 413);
        let too_big: Value = too_big.json().await.unwrap();
        assert_eq!(too_big["error"]["type"], "invalid_request_error", "{too_big}");
        let too_big = post(
            "/v1/messages",
            serde_json::json!({"model": "sonnet", "max_tokens": 3, "messages": [{"role": "user", "content": big}]}),
        )
        .await
        .unwrap();
        assert_eq!(too_big.status(), 413);
        let too_big: Value = too_big.json().await.unwrap();
        assert_eq!(too_big["error"]["type"], "request_too_large", "{too_big}");

        let missing = support::proxy::Proxy::start(
            fake.dir.path(),
            &[("CLAUDE_CLI_PATH", "/nonexistent/claude")],
        );
        let refused = missing
            .client
            .post(missing.url("/v1/chat/completions"))
            .json(&serde_json::json!({"model": "sonnet", "messages": [{"role": "user", "content": "hi"}]}))
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), 503);
        let refused: Value = refused.json().await.unwrap();
        assert_eq!(refused["error"]["type"], "api_error", "{refused}");
        assert!(
            refused["error"]["message"]
                .as_str()
                .unwrap()
                .contains("CLAUDE_CLI_PATH"),
            "{refused}"
        );
    })
    .await;
}

/// A message the CLI could not take whole (a NUL would cut it), or a field of the wrong type, is
/// the API's 400 naming the request's own field, not one of the proxy's native API, and no CLI
/// runs.
#[tokio::test]
async fn a_bad_message_is_refused_naming_the_apis_own_field() {
    within(TEST_LIMIT, async {
        let fake = support::FakeInstall::new();
        let cli = fake.cli_path().display().to_string();
        let proxy = support::proxy::Proxy::start(fake.dir.path(), &[("CLAUDE_CLI_PATH", &cli)]);
        for (path, body, param) in [
            (
                "/v1/chat/completions",
                serde_json::json!({"model": "sonnet", "messages": [{"role": "user", "content": "a\0b"}]}),
                "messages",
            ),
            (
                "/v1/messages",
                serde_json::json!({"model": "sonnet", "max_tokens": 10, "messages": [{"role": "user", "content": "a\0b"}]}),
                "messages",
            ),
            (
                "/v1/chat/completions",
                serde_json::json!({"model": "sonnet", "messages": [{"role": 7, "content": "hi"}]}),
                "messages[0].role",
            ),
            (
                "/v1/messages",
                serde_json::json!({"model": "sonnet", "max_tokens": 10, "messages": [{"role": "user", "content": 7}]}),
                "messages[0].content",
            ),
        ] {
            let refused = proxy.post(path, &body).await;
            let status = refused.status();
            let refused: Value = refused.json().await.unwrap();
            assert_eq!(status, 400, "{path} {body}: {refused}");
            let message = refused["error"]["message"].as_str().unwrap();
            assert!(
                message.starts_with(&format!("{param}:")),
                "{path} {body}: {refused}"
            );
        }
        assert_eq!(fake.runs(), 0);
    })
    .await;
}

/// `stream` is a boolean in both APIs: anything else is the API's 400, and no CLI runs.
#[tokio::test]
async fn a_stream_that_is_not_a_boolean_is_refused_in_the_apis_formats() {
    within(TEST_LIMIT, async {
        let fake = support::FakeInstall::new();
        let cli = fake.cli_path().display().to_string();
        let proxy = support::proxy::Proxy::start(fake.dir.path(), &[("CLAUDE_CLI_PATH", &cli)]);
        let openai = proxy
            .post(
                "/v1/chat/completions",
                &serde_json::json!({"model": "sonnet", "stream": "yes",
                    "messages": [{"role": "user", "content": "hi"}]}),
            )
            .await;
        let status = openai.status();
        let openai: Value = openai.json().await.unwrap();
        assert_eq!(status, 400, "{openai}");
        assert_eq!(openai["error"]["type"], "invalid_request_error", "{openai}");
        assert_eq!(openai["error"]["param"], "stream", "{openai}");

        let anthropic = proxy
            .post(
                "/v1/messages",
                &serde_json::json!({"model": "sonnet", "max_tokens": 10, "stream": "yes",
                    "messages": [{"role": "user", "content": "hi"}]}),
            )
            .await;
        let status = anthropic.status();
        let anthropic: Value = anthropic.json().await.unwrap();
        assert_eq!(status, 400, "{anthropic}");
        assert_eq!(anthropic["type"], "error", "{anthropic}");
        assert_eq!(anthropic["error"]["type"], "invalid_request_error");
        assert!(
            anthropic["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with("stream:"),
            "{anthropic}"
        );
        assert_eq!(fake.runs(), 0);
    })
    .await;
}

/// A CLI that writes its successful result without the partial messages (no `stream_event`
/// line): the streamed Messages API answer is that result, as the API's events.
#[tokio::test]
async fn a_streamed_message_whose_cli_gave_only_its_result_streams_the_result() {
    within(TEST_LIMIT, async {
        let fake = support::FakeInstall::new();
        let cli = fake.cli_path().display().to_string();
        let proxy = support::proxy::Proxy::start(fake.dir.path(), &[("CLAUDE_CLI_PATH", &cli)]);
        let response = proxy
            .post(
                "/v1/messages",
                &serde_json::json!({"model": "sonnet", "max_tokens": 10, "stream": true,
                    "messages": [{"role": "user", "content": "@result the whole reply"}]}),
            )
            .await;
        let status = response.status();
        let body = response.text().await.unwrap();
        assert_eq!(status, 200, "{body}");
        let events: Vec<(&str, Value)> = body
            .split("\n\n")
            .filter(|e| !e.trim().is_empty())
            .map(|e| {
                let (name, data) = e
                    .strip_prefix("event: ")
                    .and_then(|e| e.split_once("\ndata: "))
                    .unwrap_or_else(|| panic!("an event with its data: {body}"));
                (name, serde_json::from_str(data).unwrap())
            })
            .collect();
        let names: Vec<&str> = events.iter().map(|(name, _)| *name).collect();
        assert_eq!(
            names,
            [
                "message_start",
                "content_block_start",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop"
            ],
            "{body}"
        );
        for (name, data) in &events {
            assert_eq!(data["type"], *name, "{body}");
        }
        assert_eq!(events[0].1["message"]["role"], "assistant", "{body}");
        assert_eq!(events[2].1["delta"]["text"], "the whole reply", "{body}");
        assert_eq!(events[4].1["delta"]["stop_reason"], "end_turn", "{body}");
        assert!(
            events[5].1["x_claude_proxy"]["session_id"].is_string(),
            "{body}"
        );
    })
    .await;
}

/// Two 1x1 PNGs: which API sent an image shows in what reached the Messages API.
const PNG_FROM_OPENAI: &str = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==";
const PNG_FROM_ANTHROPIC: &str = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==";

/// A user message of an image and no text is a question both APIs take: it reaches the API as
/// that image, and the reply comes back.
#[tokio::test]
async fn an_image_only_user_message_reaches_the_api_from_both_apis() {
    within(TEST_LIMIT, async {
        let setup = RealSetup::start([]).await;
        let openai = setup
            .proxy
            .post(
                "/v1/chat/completions",
                &serde_json::json!({"model": "sonnet", "messages": [{"role": "user", "content": [
                    {"type": "image_url", "image_url": {"url": format!("data:image/png;base64,{PNG_FROM_OPENAI}")}},
                ]}]}),
            )
            .await;
        let status = openai.status();
        let openai: Value = openai.json().await.unwrap();
        assert_eq!(status, 200, "{openai}");
        assert_eq!(
            openai["choices"][0]["message"]["content"],
            support::anthropic::DEFAULT_TEXT,
            "{openai}"
        );
        let anthropic = setup
            .proxy
            .post(
                "/v1/messages",
                &serde_json::json!({"model": "sonnet", "max_tokens": 100, "messages": [{"role": "user", "content": [
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG_FROM_ANTHROPIC}},
                ]}]}),
            )
            .await;
        let status = anthropic.status();
        let anthropic: Value = anthropic.json().await.unwrap();
        assert_eq!(status, 200, "{anthropic}");
        assert_eq!(
            anthropic["content"][0]["text"],
            support::anthropic::DEFAULT_TEXT,
            "{anthropic}"
        );

        let requests = setup.standin.requests();
        for png in [PNG_FROM_OPENAI, PNG_FROM_ANTHROPIC] {
            let image_block = serde_json::json!({"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": png}});
            assert!(
                requests
                    .iter()
                    .filter_map(|r| r["messages"].as_array())
                    .flatten()
                    .any(|message| message["role"] == "user"
                        && message["content"]
                            .as_array()
                            .is_some_and(|blocks| blocks.contains(&image_block))),
                "the image reached the API as an image block: {requests:?}"
            );
        }
    })
    .await;
}

/// An image is what its media type says, by its first bytes (the magic of each type both APIs
/// take): other bytes are the API's 400, naming the part, and no CLI runs.
#[tokio::test]
async fn an_image_whose_bytes_are_not_its_media_type_is_refused_naming_the_part() {
    use base64::Engine as _;
    within(TEST_LIMIT, async {
        let fake = support::FakeInstall::new();
        let cli = fake.cli_path().display().to_string();
        let proxy = support::proxy::Proxy::start(fake.dir.path(), &[("CLAUDE_CLI_PATH", &cli)]);
        // Text labelled a PNG, and a PNG labelled a JPEG.
        let not_a_png = base64::engine::general_purpose::STANDARD.encode(b"just some text, no image");
        for (media_type, data) in [("image/png", not_a_png.as_str()), ("image/jpeg", PNG_FROM_OPENAI)] {
            let openai = proxy
                .post(
                    "/v1/chat/completions",
                    &serde_json::json!({"model": "sonnet", "messages": [{"role": "user", "content": [
                        {"type": "text", "text": "What is in it?"},
                        {"type": "image_url", "image_url": {"url": format!("data:{media_type};base64,{data}")}},
                    ]}]}),
                )
                .await;
            assert_eq!(openai.status(), 400, "{media_type}");
            let openai: Value = openai.json().await.unwrap();
            assert_eq!(openai["error"]["type"], "invalid_request_error", "{openai}");
            assert_eq!(openai["error"]["param"], "messages[0].content[1]", "{openai}");
            assert!(
                openai["error"]["message"].as_str().unwrap().contains(media_type),
                "{openai}"
            );

            let anthropic = proxy
                .post(
                    "/v1/messages",
                    &serde_json::json!({"model": "sonnet", "max_tokens": 10, "messages": [{"role": "user", "content": [
                        {"type": "text", "text": "What is in it?"},
                        {"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}},
                    ]}]}),
                )
                .await;
            assert_eq!(anthropic.status(), 400, "{media_type}");
            let anthropic: Value = anthropic.json().await.unwrap();
            assert_eq!(anthropic["error"]["type"], "invalid_request_error", "{anthropic}");
            let message = anthropic["error"]["message"].as_str().unwrap();
            assert!(
                message.starts_with("messages[0].content[1]") && message.contains(media_type),
                "{anthropic}"
            );
        }
        assert_eq!(fake.runs(), 0);

        // The image as it says it is passes on.
        let accepted = proxy
            .post(
                "/v1/messages",
                &serde_json::json!({"model": "sonnet", "max_tokens": 10, "messages": [{"role": "user", "content": [
                    {"type": "text", "text": "What is in it?"},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG_FROM_OPENAI}},
                ]}]}),
            )
            .await;
        assert_eq!(accepted.status(), 200);
        assert_eq!(fake.runs(), 1);
    })
    .await;
}

#[tokio::test]
async fn structured_output_is_the_replys_json_content_in_both_sdks() {
    within(TEST_LIMIT, async {
        let setup = RealSetup::with_settings([], &[("PROXY_API_KEY", KEY)]).await;
        let report = node_tests(&setup, &["tests/compat/structured.test.mjs"]).await;
        assert!(
            report.contains("pass 4") && report.contains("fail 0"),
            "{report}"
        );
        // Each request reached the API with the CLI's StructuredOutput tool, of the client's
        // schema.
        let requests = setup.standin.requests();
        for marker in [
            "openai-whole",
            "openai-stream",
            "anthropic-whole",
            "anthropic-beta",
        ] {
            let request = requests
                .iter()
                .find(|r| r["messages"].to_string().contains(marker))
                .unwrap_or_else(|| panic!("no request of {marker}"));
            let tool = request["tools"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|tool| tool["name"] == "StructuredOutput")
                .unwrap_or_else(|| panic!("{marker}: no StructuredOutput tool in {request}"));
            assert_eq!(
                tool["input_schema"]["required"],
                serde_json::json!(["name", "year"])
            );
        }
    })
    .await;
}

/// The Responses API's function calls, through the official SDK: the response ends with the
/// call, its output (after `previous_response_id`, or with the whole input again) goes on with
/// the same run, and the response after it is kept like any other.
#[tokio::test]
async fn the_responses_apis_function_calls_go_on_with_the_same_run() {
    within(TEST_LIMIT, async {
        let setup = RealSetup::with_settings([], &[("PROXY_API_KEY", KEY)]).await;
        let report = node_tests(&setup, &["tests/compat/responses_tools.test.mjs"]).await;
        assert!(
            report.contains("pass 4") && report.contains("fail 0"),
            "{report}"
        );
        // The API saw the client's function offered, and its output, in the run that called it.
        let requests = setup.standin.requests();
        let with_output: Vec<&Value> = requests
            .iter()
            .filter(|r| r["messages"].to_string().contains("sunny in Paris, 22 C"))
            .filter(|r| !r["messages"].to_string().contains("Thank you."))
            .collect();
        assert_eq!(with_output.len(), 2, "one follow-up per test");
        for request in with_output {
            let offered = request["tools"].to_string();
            assert!(offered.contains("mcp__client__get_weather"), "{offered}");
        }
        assert!(
            requests
                .iter()
                .any(|r| r["messages"].to_string().contains("Thank you.")),
            "the third response resumed the conversation"
        );
        // Codex's reasoning effort reached the API, as the CLI's.
        let codex: Vec<&Value> = requests
            .iter()
            .filter(|r| r["messages"].to_string().contains("[responses-codex]"))
            .collect();
        assert!(!codex.is_empty());
        for request in codex {
            assert_eq!(request["output_config"]["effort"], "medium", "{request}");
        }
    })
    .await;
}

/// The client's own tools: a function call (OpenAI) and a tool use (Anthropic) end the reply;
/// the result the client sends goes on with the same run, whose CLI waited on the call.
#[tokio::test]
async fn the_clients_own_tools_are_called_and_their_results_go_on_in_both_sdks() {
    within(TEST_LIMIT, async {
        let setup = RealSetup::with_settings([], &[("PROXY_API_KEY", KEY)]).await;
        let report = node_tests(&setup, &["tests/compat/tools.test.mjs"]).await;
        assert!(
            report.contains("pass 4") && report.contains("fail 0"),
            "{report}"
        );
        // The API saw the client's tool and, after the call, its result, in one session.
        let requests = setup.standin.requests();
        let with_result: Vec<&Value> = requests
            .iter()
            .filter(|r| r["messages"].to_string().contains("sunny in Paris, 22 C"))
            .collect();
        assert_eq!(with_result.len(), 4, "one follow-up per test");
        for request in with_result {
            let offered = request["tools"].to_string();
            assert!(offered.contains("mcp__client__get_weather"), "{offered}");
        }
        // No run is left waiting, and no tool server.
        let agents: Value = setup
            .proxy
            .client
            .get(setup.proxy.url("/agents"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        for agent in agents["agents"].as_array().unwrap() {
            assert_eq!(agent["status"], "completed", "{agent}");
        }
    })
    .await;
}

/// A run whose client never sends its tool's result is stopped once
/// PROXY_TOOL_RESULT_TIMEOUT_SECS has passed; a result that comes later is the API's 400, and
/// another key's results never reach a run that is not its own.
#[tokio::test]
async fn a_run_left_waiting_for_its_tools_result_is_stopped_and_no_other_key_can_answer_it() {
    const OTHER: &str = "compat-other-key-9876543210";
    within(TEST_LIMIT, async {
        let keys = format!("{KEY},{OTHER}");
        let setup = RealSetup::with_settings(
            [],
            &[
                ("PROXY_API_KEY", &keys),
                ("PROXY_TOOL_RESULT_TIMEOUT_SECS", "2"),
            ],
        )
        .await;
        let tools = serde_json::json!([{"type": "function", "function": {"name": "get_weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]);
        let asked = serde_json::json!({"role": "user",
            "content": r#"Weather? CALL[get_weather {"city": "Oslo"}]"#});
        let first: Value = setup
            .proxy
            .post(
                "/v1/chat/completions",
                &serde_json::json!({"model": "sonnet", "messages": [asked], "tools": tools}),
            )
            .await
            .json()
            .await
            .unwrap();
        let call = &first["choices"][0]["message"]["tool_calls"][0];
        assert_eq!(call["function"]["name"], "get_weather", "{first}");
        let answer = |key: &'static str| {
            let body = serde_json::json!({"model": "sonnet", "tools": tools, "messages": [
                asked,
                first["choices"][0]["message"],
                {"role": "tool", "tool_call_id": call["id"], "content": "rainy"},
            ]});
            let request = setup
                .proxy
                .client
                .post(setup.proxy.url("/v1/chat/completions"))
                .bearer_auth(key)
                .json(&body);
            async move { request.send().await.unwrap() }
        };
        let stranger = answer(OTHER).await;
        assert_eq!(
            stranger.status(),
            400,
            "another key's result reaches no run"
        );

        let agent = format!(
            "/agent/{}",
            uuid::Uuid::try_parse(
                first["id"]
                    .as_str()
                    .unwrap()
                    .trim_start_matches("chatcmpl-")
            )
            .unwrap()
        );
        support::until(
            "the waiting run is stopped",
            std::time::Duration::from_secs(30),
            || {
                let request = setup.proxy.client.get(setup.proxy.url(&agent));
                async move {
                    let detail: Value = request.send().await.unwrap().json().await.unwrap();
                    detail["status"] == "stopped"
                }
            },
        )
        .await;
        let late = answer(KEY).await;
        assert_eq!(late.status(), 400);
        let late: Value = late.json().await.unwrap();
        assert_eq!(late["error"]["param"], "messages", "{late}");
    })
    .await;
}

/// The session files under `dir` whose text holds `marker`.
fn session_files_with(dir: &std::path::Path, marker: &str) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "jsonl")
                && std::fs::read_to_string(&path).is_ok_and(|text| text.contains(marker))
            {
                found.push(path);
            }
        }
    }
    found
}

/// OpenAI's Responses API with the official SDK (`client.responses.create` and `.stream`);
/// what reached the stand-in shows that a `previous_response_id` resumed the earlier turns from
/// the session, and the session files show that `store: false` and DELETE leave none behind.
#[tokio::test]
async fn the_responses_api_works_with_the_official_sdk_against_the_real_cli() {
    within(TEST_LIMIT, async {
        let keys = format!("{KEY},{OTHER_KEY}");
        let setup = RealSetup::with_settings(
            [],
            &[
                ("PROXY_API_KEY", keys.as_str()),
                // Each key's session files in a home of its own, which the proxy knows.
                ("PROXY_SANDBOX", "bwrap"),
            ],
        )
        .await;
        let report = node_tests(&setup, &["tests/compat/responses.test.mjs"]).await;
        assert!(
            report.contains("pass 7") && report.contains("fail 0"),
            "{report}"
        );

        let requests = setup.standin.requests();
        let request_with = |marker: &str| {
            requests
                .iter()
                .rfind(|r| r["messages"].to_string().contains(marker))
                .unwrap_or_else(|| panic!("no request with {marker}"))
        };
        // The instructions and the developer message are the whole system prompt.
        let streamed = request_with("[responses-stream]");
        let system = streamed["system"].to_string();
        assert!(
            system.contains("[responses-instructions]")
                && system.contains("[responses-developer]")
                && !system.contains("Claude Code"),
            "{system}"
        );
        // Each continuation got the earlier turns from the resumed session, as turns, once.
        for (marker, earlier) in [
            ("[responses-resume-2]", &["[responses-resume-1]"][..]),
            (
                "[responses-resume-3]",
                &["[responses-resume-1]", "[responses-resume-2]"][..],
            ),
        ] {
            let resumed = request_with(marker);
            let turns = resumed["messages"].as_array().unwrap();
            let said: Vec<String> = turns.iter().map(|m| m.to_string()).collect();
            for earlier in earlier {
                assert_eq!(
                    said.iter().filter(|m| m.contains(earlier)).count(),
                    1,
                    "{marker}: {said:?}"
                );
            }
            assert!(
                turns.iter().any(|m| m["role"] == "assistant"
                    && m.to_string().contains(support::anthropic::DEFAULT_TEXT)),
                "{marker}: {said:?}"
            );
            assert!(
                !resumed.to_string().contains("The conversation so far"),
                "{marker}: {said:?}"
            );
        }
        // The image reached the API as an image block.
        let with_image = request_with("[responses-image]")["messages"].to_string();
        assert!(
            with_image.contains(r#""type":"image""#) && with_image.contains("iVBORw0KGgo"),
            "{with_image}"
        );
        // A response not stored, and one deleted, left no session file; a kept one did.
        let data = setup.work.with_file_name("data");
        assert!(!session_files_with(&data, "[responses-resume-1]").is_empty());
        assert_eq!(
            session_files_with(&data, "[responses-unstored]"),
            Vec::<std::path::PathBuf>::new()
        );
        assert_eq!(
            session_files_with(&data, "[responses-whole]"),
            Vec::<std::path::PathBuf>::new()
        );
    })
    .await;
}

/// A response whose CLI fails: before any text, OpenAI's error answer; once its text has begun,
/// `response.failed` and `error`, and no `response.completed`. A failed response is not kept.
/// What the proxy refuses spawns nothing.
#[tokio::test]
async fn a_failed_or_refused_response_is_answered_in_the_responses_apis_way() {
    within(TEST_LIMIT, async {
        let fake = support::FakeInstall::new();
        let cli = fake.cli_path().display().to_string();
        let proxy = support::proxy::Proxy::start(fake.dir.path(), &[("CLAUDE_CLI_PATH", &cli)]);
        for (body, param) in [
            (
                serde_json::json!({"model": "sonnet", "input": "hi", "tools": [{"type": "web_search"}]}),
                "tools[0].type",
            ),
            (
                serde_json::json!({"model": "sonnet", "input": "hi", "reasoning": {"effort": "none"}}),
                "reasoning.effort",
            ),
            (
                serde_json::json!({"model": "sonnet", "input": [{"type": "item_reference", "id": "x"}]}),
                "input[0].type",
            ),
            (
                serde_json::json!({"model": "sonnet", "input": [{"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}]}),
                "input[0].content[0]",
            ),
            (
                serde_json::json!({"model": "sonnet", "input": [{"role": "assistant", "content": "Hi."}]}),
                "input",
            ),
            (serde_json::json!({"model": "sonnet"}), "input"),
            (
                serde_json::json!({"model": "sonnet", "input": "hi", "stream": "yes"}),
                "stream",
            ),
        ] {
            let refused = proxy.post("/v1/responses", &body).await;
            let status = refused.status();
            let refused: Value = refused.json().await.unwrap();
            assert_eq!(status, 400, "{body}: {refused}");
            assert_eq!(refused["error"]["type"], "invalid_request_error", "{refused}");
            assert_eq!(refused["error"]["param"], param, "{body}: {refused}");
        }
        // What the core refuses names the Responses API's field too.
        let refused = proxy
            .post(
                "/v1/responses",
                &serde_json::json!({"model": "sonnet", "input": "a\0b"}),
            )
            .await;
        assert_eq!(refused.status(), 400);
        let refused: Value = refused.json().await.unwrap();
        assert!(
            refused["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with("input:"),
            "{refused}"
        );
        assert_eq!(fake.runs(), 0);

        let failing = "@stream-text 3\n@result-error the model went away";
        let response = proxy
            .post(
                "/v1/responses",
                &serde_json::json!({"model": "sonnet", "stream": true, "input": failing}),
            )
            .await;
        assert_eq!(response.status(), 200);
        let body = response.text().await.unwrap();
        let events: Vec<(&str, Value)> = body
            .split("\n\n")
            .filter(|e| !e.trim().is_empty())
            .map(|e| {
                let (name, data) = e
                    .strip_prefix("event: ")
                    .and_then(|e| e.split_once("\ndata: "))
                    .unwrap_or_else(|| panic!("an event with its data: {body}"));
                (name, serde_json::from_str(data).unwrap())
            })
            .collect();
        let names: Vec<&str> = events.iter().map(|(name, _)| *name).collect();
        assert_eq!(
            names[names.len() - 2..],
            ["response.failed", "error"],
            "{body}"
        );
        assert!(names.contains(&"response.output_text.delta"), "{body}");
        assert!(!names.contains(&"response.completed"), "{body}");
        let failed = &events[events.len() - 2].1["response"];
        assert_eq!(failed["status"], "failed", "{body}");
        assert_eq!(failed["error"]["code"], "server_error", "{body}");
        let error = &events[events.len() - 1].1;
        assert!(
            error["message"].as_str().unwrap().contains("the model went away"),
            "{body}"
        );
        let id = failed["id"].as_str().unwrap();
        let unkept = proxy
            .client
            .get(proxy.url(&format!("/v1/responses/{id}")))
            .send()
            .await
            .unwrap();
        assert_eq!(unkept.status(), 404);

        // Before any text, the same failure is an error answer, not a stream.
        let refused = proxy
            .post(
                "/v1/responses",
                &serde_json::json!({"model": "sonnet", "stream": true, "input": "@result-error no words at all"}),
            )
            .await;
        assert_eq!(refused.status(), 502);
        let refused: Value = refused.json().await.unwrap();
        assert_eq!(refused["error"]["type"], "api_error", "{refused}");
        assert!(
            refused["error"]["message"]
                .as_str()
                .unwrap()
                .contains("no words at all")
        );
    })
    .await;
}
