//! What a team migrating from another OpenAI-compatible wrapper of Claude Code sends: a named
//! conversation (`session_id`, or the `X-Claude-Session-Id` header) that the CLI resumes,
//! the conversations listed and forgotten under `/v1/sessions`, `enable_tools`, and the fields
//! the proxy cannot honour refused by name while tuning fields pass.

use reqwest::header::HeaderValue;
use serde_json::{Value, json};

use crate::support;
use crate::support::real::RealSetup;
use crate::support::{TEST_LIMIT, within};

const KEY: &str = "migration-test-key-0123456789";
const OTHER_KEY: &str = "migration-other-key-9876543210";

/// The last API request whose messages hold `text`: the CLI's own side requests hold none.
fn request_holding(setup: &RealSetup, text: &str) -> Value {
    setup
        .standin
        .requests()
        .into_iter()
        .rev()
        .find(|r| r["messages"].to_string().contains(text))
        .unwrap_or_else(|| panic!("no API request holds {text:?}"))
}

async fn chat(setup: &RealSetup, key: &str, body: Value) -> reqwest::Response {
    setup
        .proxy
        .client
        .post(setup.proxy.url("/v1/chat/completions"))
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .unwrap()
}

fn session_header(response: &reqwest::Response) -> String {
    response.headers()["x-claude-session-id"]
        .to_str()
        .unwrap()
        .to_owned()
}

async fn get(setup: &RealSetup, key: &str, path: &str) -> (u16, Value) {
    let response = setup
        .proxy
        .client
        .get(setup.proxy.url(path))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

#[tokio::test]
async fn a_named_conversation_resumes_its_session_and_is_listed_and_forgotten() {
    within(TEST_LIMIT, async {
        let keys = format!("{KEY},{OTHER_KEY}");
        let setup = RealSetup::with_settings([], &[("PROXY_API_KEY", &keys)]).await;

        let first = chat(
            &setup,
            KEY,
            json!({"model": "sonnet", "session_id": "support-42",
            "messages": [{"role": "user", "content": "Remember the word PELICAN-7."}]}),
        )
        .await;
        assert_eq!(first.status(), 200);
        let session = session_header(&first);

        // Only the new message: the session has the rest.
        let second = chat(
            &setup,
            KEY,
            json!({"model": "sonnet", "session_id": "support-42",
            "messages": [{"role": "user", "content": "Which word was it? (second)"}]}),
        )
        .await;
        assert_eq!(second.status(), 200);
        assert_eq!(session_header(&second), session, "the same session goes on");
        let sent = request_holding(&setup, "Which word was it? (second)").to_string();
        assert!(
            sent.contains("PELICAN-7"),
            "the earlier turn came from the session: {sent}"
        );
        assert!(
            !sent.contains("The conversation so far"),
            "no transcript: {sent}"
        );

        // The header says the same, through the other API.
        let third = setup
            .proxy
            .client
            .post(setup.proxy.url("/v1/messages"))
            .bearer_auth(KEY)
            .header(
                "x-claude-session-id",
                HeaderValue::from_static("support-42"),
            )
            .json(&json!({"model": "sonnet", "max_tokens": 100,
                "messages": [{"role": "user", "content": "And now? (third)"}]}))
            .send()
            .await
            .unwrap();
        assert_eq!(third.status(), 200);
        assert_eq!(session_header(&third), session);
        assert!(
            request_holding(&setup, "And now? (third)")
                .to_string()
                .contains("PELICAN-7")
        );

        let (status, listed) = get(&setup, KEY, "/v1/sessions").await;
        assert_eq!(status, 200, "{listed}");
        let entries = listed["data"].as_array().unwrap();
        assert_eq!(entries.len(), 1, "{listed}");
        assert_eq!(entries[0]["id"], "support-42");
        assert_eq!(entries[0]["session_id"], session.as_str());
        assert_eq!(entries[0]["replies"], 3);
        let (status, shown) = get(&setup, KEY, "/v1/sessions/support-42").await;
        assert_eq!((status, &shown["replies"]), (200, &json!(3)), "{shown}");

        // Another key sees none of it, and cannot resume the session by its id.
        let (status, theirs) = get(&setup, OTHER_KEY, "/v1/sessions").await;
        assert_eq!((status, theirs["data"].as_array().unwrap().len()), (200, 0));
        let (status, not_found) = get(&setup, OTHER_KEY, "/v1/sessions/support-42").await;
        assert_eq!(status, 404, "{not_found}");
        assert_eq!(not_found["error"]["type"], "invalid_request_error");
        let refused = chat(
            &setup,
            OTHER_KEY,
            json!({"model": "sonnet", "session_id": session,
            "messages": [{"role": "user", "content": "Which word?"}]}),
        )
        .await;
        assert_eq!(refused.status(), 403);
        let forgotten = setup
            .proxy
            .client
            .delete(setup.proxy.url("/v1/sessions/support-42"))
            .bearer_auth(OTHER_KEY)
            .send()
            .await
            .unwrap();
        assert_eq!(forgotten.status(), 404);

        // Forgotten: the name starts a new conversation, and the session's file is gone.
        let forgotten = setup
            .proxy
            .client
            .delete(setup.proxy.url("/v1/sessions/support-42"))
            .bearer_auth(KEY)
            .send()
            .await
            .unwrap();
        assert_eq!(forgotten.status(), 200);
        let forgotten: Value = forgotten.json().await.unwrap();
        assert_eq!(
            forgotten,
            json!({"id": "support-42", "object": "session.deleted", "deleted": true})
        );
        let (status, _) = get(&setup, KEY, "/v1/sessions/support-42").await;
        assert_eq!(status, 404);
        let fresh = chat(
            &setup,
            KEY,
            json!({"model": "sonnet", "session_id": "support-42",
            "messages": [{"role": "user", "content": "Which word was it? (fresh)"}]}),
        )
        .await;
        assert_eq!(fresh.status(), 200);
        assert_ne!(session_header(&fresh), session);
        assert!(
            !request_holding(&setup, "(fresh)")
                .to_string()
                .contains("PELICAN-7")
        );
    })
    .await;
}

#[tokio::test]
async fn enable_tools_gives_the_cli_the_compatible_tools_or_none() {
    within(TEST_LIMIT, async {
        let setup = RealSetup::with_settings(
            [],
            &[("PROXY_API_KEY", KEY), ("PROXY_COMPAT_TOOLS", "Read")],
        )
        .await;
        let tools_sent = |marker: &str| -> Vec<String> {
            request_holding(&setup, marker)["tools"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|tool| tool["name"].as_str().map(str::to_owned))
                .collect()
        };
        for (enable_tools, marker, has_read) in [
            (json!(null), "tools as the operator says", true),
            (json!(true), "tools enabled", true),
            (json!(false), "tools disabled", false),
        ] {
            let response = chat(
                &setup,
                KEY,
                json!({"model": "sonnet", "enable_tools": enable_tools,
                "messages": [{"role": "user", "content": marker}]}),
            )
            .await;
            assert_eq!(response.status(), 200, "{marker}");
            let sent = tools_sent(marker);
            assert_eq!(
                sent.iter().any(|t| t == "Read"),
                has_read,
                "{marker}: {sent:?}"
            );
        }
    })
    .await;
}

/// What the proxy cannot honour is a 400 naming the field, and no CLI runs; tuning fields pass.
#[tokio::test]
async fn fields_that_would_change_the_answer_are_refused_by_name_and_tuning_passes() {
    within(TEST_LIMIT, async {
        let fake = support::FakeInstall::new();
        let cli = fake.cli_path().display().to_string();
        let proxy = support::proxy::Proxy::start(fake.dir.path(), &[("CLAUDE_CLI_PATH", &cli)]);
        let openai = |extra: Value| {
            let mut body = json!({"model": "sonnet", "messages": [{"role": "user", "content": "hi"}]});
            body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
            ("/v1/chat/completions", body)
        };
        let anthropic = |extra: Value| {
            let mut body = json!({"model": "sonnet", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]});
            body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
            ("/v1/messages", body)
        };
        for ((path, body), field) in [
            (openai(json!({"stop": ["\n"]})), "stop"),
            (openai(json!({"logit_bias": {"50256": -100}})), "logit_bias"),
            (openai(json!({"response_format": {"type": "grammar"}})), "response_format.type"),
            (openai(json!({"reasoning_effort": "high"})), "reasoning_effort"),
            (openai(json!({"prediction": {"type": "content", "content": "x"}})), "prediction"),
            (openai(json!({"enable_tools": true})), "enable_tools"),
            (openai(json!({"session_id": "has a space"})), "session_id"),
            (anthropic(json!({"stop_sequences": ["END"]})), "stop_sequences"),
            (anthropic(json!({"thinking": {"type": "enabled", "budget_tokens": 1024}})), "thinking"),
            (anthropic(json!({"mcp_servers": [{"type": "url", "url": "http://x", "name": "x"}]})), "mcp_servers"),
            (anthropic(json!({"enable_tools": true})), "enable_tools"),
        ] {
            let refused = proxy.post(path, &body).await;
            let status = refused.status();
            let refused: Value = refused.json().await.unwrap();
            assert_eq!(status, 400, "{body}: {refused}");
            let message = refused["error"]["message"].as_str().unwrap();
            assert!(message.starts_with(&format!("{field}:")), "{body}: {refused}");
        }
        // The header and the body must agree.
        let disagreeing = proxy
            .client
            .post(proxy.url("/v1/chat/completions"))
            .header("x-claude-session-id", "one")
            .json(&openai(json!({"session_id": "two"})).1)
            .send()
            .await
            .unwrap();
        assert_eq!(disagreeing.status(), 400);
        assert_eq!(fake.runs(), 0, "nothing refused ran a CLI");

        for (path, body) in [
            openai(json!({"temperature": 0.2, "top_p": 0.9, "seed": 7, "max_tokens": 50,
                "presence_penalty": 0.1, "frequency_penalty": 0.1, "user": "u-1",
                "response_format": {"type": "text"}, "store": false, "metadata": {"a": "b"}})),
            anthropic(json!({"temperature": 0.2, "top_p": 0.9, "top_k": 5,
                "metadata": {"user_id": "u-1"}, "thinking": {"type": "disabled"}})),
        ] {
            let accepted = proxy.post(path, &body).await;
            assert_eq!(accepted.status(), 200, "{body}");
        }
        assert_eq!(fake.runs(), 2);
    })
    .await;
}

/// The reply text of a chat completion.
async fn reply_of(response: reqwest::Response) -> String {
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    body["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn a_conversation_is_resumed_after_a_restart() {
    within(TEST_LIMIT, async {
        let mut setup = RealSetup::with_settings([], &[("PROXY_API_KEY", KEY)]).await;
        let asked = "Remember the word OTTER-3.";
        let reply = reply_of(
            chat(
                &setup,
                KEY,
                json!({"model": "sonnet",
                "messages": [{"role": "user", "content": asked}]}),
            )
            .await,
        )
        .await;
        let named = chat(
            &setup,
            KEY,
            json!({"model": "sonnet", "session_id": "kept-1",
            "messages": [{"role": "user", "content": "Remember the word HERON-5."}]}),
        )
        .await;
        let named_session = session_header(&named);

        let response: Value = setup
            .proxy
            .client
            .post(setup.proxy.url("/v1/responses"))
            .bearer_auth(KEY)
            .json(&json!({"model": "sonnet", "input": "Remember the word WREN-8."}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let response_id = response["id"].as_str().unwrap().to_owned();

        let status = setup.proxy.terminate().await.unwrap();
        assert!(status.success(), "{status:?}");
        setup.proxy = support::real::start_proxy(
            &setup.standin,
            &setup.home,
            &setup.work,
            &[("PROXY_API_KEY", KEY)],
        );

        // The whole history, as a chat client sends it: resumed, not set out in the prompt.
        let follow_up = chat(
            &setup,
            KEY,
            json!({"model": "sonnet", "messages": [
                {"role": "user", "content": asked},
                {"role": "assistant", "content": reply},
                {"role": "user", "content": "Which word? (after the restart)"},
            ]}),
        )
        .await;
        assert_eq!(follow_up.status(), 200);
        let sent = request_holding(&setup, "(after the restart)").to_string();
        assert!(sent.contains("OTTER-3"), "{sent}");
        assert!(!sent.contains("The conversation so far"), "resumed: {sent}");

        let named = chat(
            &setup,
            KEY,
            json!({"model": "sonnet", "session_id": "kept-1",
            "messages": [{"role": "user", "content": "Which word? (named, after the restart)"}]}),
        )
        .await;
        assert_eq!(session_header(&named), named_session);
        let sent = request_holding(&setup, "(named, after the restart)").to_string();
        assert!(sent.contains("HERON-5"), "{sent}");

        // A response, shown and continued after the restart.
        let (status, shown) = get(&setup, KEY, &format!("/v1/responses/{response_id}")).await;
        assert_eq!(status, 200, "{shown}");
        let continued = setup
            .proxy
            .client
            .post(setup.proxy.url("/v1/responses"))
            .bearer_auth(KEY)
            .json(
                &json!({"model": "sonnet", "input": "Which word? (response, after the restart)",
                "previous_response_id": response_id, "store": false}),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(continued.status(), 200);
        let sent = request_holding(&setup, "(response, after the restart)").to_string();
        assert!(sent.contains("WREN-8"), "{sent}");

        let (_, listed) = get(&setup, KEY, "/v1/sessions").await;
        let ids: Vec<&str> = listed["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["id"].as_str().unwrap())
            .collect();
        assert_eq!(
            ids.len(),
            3,
            "the first reply, its follow-up, and kept-1: {listed}"
        );
        assert_eq!(ids[0], "kept-1", "the most recently used first: {listed}");
    })
    .await;
}
