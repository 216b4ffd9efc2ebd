//! Talking to a running agent: follow-up messages, queueing, interrupt, model and mode changes,
//! and tool approvals answered over HTTP, with the pinned real CLI against the Messages API
//! stand-in.

use std::sync::Arc;

use crate::support::anthropic::Reply;
use crate::support::real::RealSetup;
use crate::support::sse::complete_of;
use crate::support::{SseEvent, SseReader, TEST_LIMIT, until, within};
use serde_json::{Value, json};
use tokio::sync::Notify;

const KEY: &str = "interactive-key-0123456789";
const OTHER_KEY: &str = "someone-elses-key-0123456789";

/// A proxy with two client keys and client approvals on, answering approvals quickly.
async fn setup(replies: impl IntoIterator<Item = Reply>) -> RealSetup {
    setup_with(replies, &[]).await
}

async fn setup_with(replies: impl IntoIterator<Item = Reply>, extra: &[(&str, &str)]) -> RealSetup {
    let keys = format!("{KEY},{OTHER_KEY}");
    let mut settings = vec![
        ("PROXY_API_KEY", keys.as_str()),
        ("PROXY_CLIENT_APPROVALS", "true"),
    ];
    settings.extend_from_slice(extra);
    RealSetup::with_settings(replies, &settings).await
}

/// An interactive stream and its agent's id.
async fn start(setup: &RealSetup, body: Value) -> (SseReader, String) {
    let mut body = body;
    body["interactive"] = true.into();
    let mut reader = setup.proxy.stream_with(&body).await;
    let agent = reader.next_of("agent").await.json();
    (reader, agent["agent_id"].as_str().unwrap().to_owned())
}

/// A request with a key, its status and its JSON body.
async fn call(
    setup: &RealSetup,
    key: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = setup
        .proxy
        .client
        .request(method.parse().unwrap(), setup.proxy.url(path))
        .bearer_auth(key);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn send(setup: &RealSetup, id: &str, content: Value) -> (u16, Value) {
    call(
        setup,
        KEY,
        "POST",
        &format!("/agent/{id}/messages"),
        Some(json!({ "content": content })),
    )
    .await
}

/// Reads until the next CLI line of this `type`; returns it and what came before it.
async fn until_line(reader: &mut SseReader, kind: &str) -> (Value, Vec<SseEvent>) {
    let mut before = Vec::new();
    loop {
        let event = reader
            .next()
            .await
            .unwrap_or_else(|| panic!("the stream ended before a {kind} line: {before:#?}"));
        if event.event == "message" && event.kind() == kind {
            return (event.json(), before);
        }
        before.push(event);
    }
}

/// Reads until the next event named `name` (the proxy's own events).
async fn until_event(reader: &mut SseReader, name: &str) -> Value {
    loop {
        let event = reader
            .next()
            .await
            .unwrap_or_else(|| panic!("the stream ended before a {name} event"));
        if event.event == name {
            return event.json();
        }
    }
}

/// A key's answer to a permission request of agent `id`.
async fn answer(
    setup: &RealSetup,
    key: &str,
    id: &str,
    request_id: &str,
    body: Value,
) -> (u16, Value) {
    let path = format!("/agent/{id}/permissions/{request_id}");
    call(setup, key, "POST", &path, Some(body)).await
}

async fn detail(setup: &RealSetup, id: &str) -> Value {
    call(setup, KEY, "GET", &format!("/agent/{id}"), None)
        .await
        .1
}

#[tokio::test]
async fn two_turns_run_in_one_process_and_the_second_carries_the_first() {
    within(TEST_LIMIT, async {
        let setup = setup([
            Reply::Text("Noted: the word is teal.".into()),
            Reply::Text("The word was teal.".into()),
        ])
        .await;
        let (mut reader, id) = start(&setup, json!({"prompt": "Remember the word teal."})).await;
        let (first, before) = until_line(&mut reader, "result").await;
        let replayed = before
            .iter()
            .find(|e| e.kind() == "user")
            .expect("the prompt comes back as a replayed user line")
            .json();
        assert_eq!(replayed["message"]["content"], "Remember the word teal.");
        until("the agent waits for a message", TEST_LIMIT, || async {
            detail(&setup, &id).await["status"] == "waiting"
        })
        .await;
        let agent = detail(&setup, &id).await;
        assert_eq!(
            (agent["interactive"].clone(), agent["turns"].clone()),
            (json!(true), json!(1))
        );

        let (status, queued) = send(&setup, &id, json!("What was the word?")).await;
        assert_eq!(status, 202, "{queued}");
        assert_eq!(queued["queued"], 0, "it starts at once");
        let (second, _) = until_line(&mut reader, "result").await;
        assert_eq!(second["session_id"], first["session_id"], "one session");
        assert_eq!(second["result"], "The word was teal.");

        let requests = setup.standin.requests();
        assert_eq!(requests.len(), 2);
        let history = requests[1]["messages"].to_string();
        assert!(
            history.contains("Remember the word teal.")
                && history.contains("Noted: the word is teal.")
                && history.contains("What was the word?"),
            "the second request carries the first turn"
        );

        let (status, _) = call(&setup, KEY, "POST", &format!("/agent/{id}/close"), None).await;
        assert_eq!(status, 202);
        let rest = reader.collect_all().await;
        assert_eq!(complete_of(&rest)["status"], "completed");
        let agent = detail(&setup, &id).await;
        assert_eq!(agent["turns"], 2);
        assert_eq!(agent["result"]["result"], "The word was teal.");
    })
    .await;
}

#[tokio::test]
async fn a_message_sent_while_a_turn_runs_is_queued_and_becomes_the_next_turn() {
    within(TEST_LIMIT, async {
        let release = Arc::new(Notify::new());
        let setup = setup([
            Reply::Held(Arc::clone(&release), "First, done.".into()),
            Reply::Text("Second, done.".into()),
        ])
        .await;
        let (mut reader, id) = start(&setup, json!({"prompt": "Take the first task."})).await;
        until("the first turn reached the API", TEST_LIMIT, || async {
            !setup.standin.requests().is_empty()
        })
        .await;
        assert_eq!(detail(&setup, &id).await["status"], "running");
        let (status, queued) = send(&setup, &id, json!("Then the second task.")).await;
        assert_eq!(
            (status, queued["queued"].clone()),
            (202, json!(1)),
            "behind the running turn"
        );
        release.notify_one();

        let (first, _) = until_line(&mut reader, "result").await;
        assert_eq!(first["result"], "First, done.");
        let (second, _) = until_line(&mut reader, "result").await;
        assert_eq!(second["result"], "Second, done.");
        assert!(
            setup.standin.requests()[1]["messages"]
                .to_string()
                .contains("Then the second task.")
        );
        call(&setup, KEY, "POST", &format!("/agent/{id}/close"), None).await;
        assert_eq!(
            complete_of(&reader.collect_all().await)["status"],
            "completed"
        );
    })
    .await;
}

#[tokio::test]
async fn an_interrupt_ends_a_stalled_turn_and_a_follow_up_is_answered() {
    within(TEST_LIMIT, async {
        let setup = setup([
            Reply::Stall,
            Reply::Text("Answered after the interrupt.".into()),
        ])
        .await;
        let (mut reader, id) = start(&setup, json!({"prompt": "Think for a long time."})).await;
        until("the turn reached the API", TEST_LIMIT, || async {
            !setup.standin.requests().is_empty()
        })
        .await;
        let (status, answer) =
            call(&setup, KEY, "POST", &format!("/agent/{id}/interrupt"), None).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["still_queued"], 0);
        let (interrupted, _) = until_line(&mut reader, "result").await;
        assert_eq!(interrupted["terminal_reason"], "aborted_streaming");

        send(&setup, &id, json!("Are you there?")).await;
        let (answered, _) = until_line(&mut reader, "result").await;
        assert_eq!(answered["result"], "Answered after the interrupt.");
        call(&setup, KEY, "POST", &format!("/agent/{id}/close"), None).await;
        assert_eq!(
            complete_of(&reader.collect_all().await)["status"],
            "completed"
        );
        let metrics = setup
            .proxy
            .client
            .get(setup.proxy.url("/metrics"))
            .bearer_auth(KEY)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            metrics.contains("claude_proxy_interrupts_total 1"),
            "{metrics}"
        );
        assert!(
            metrics.contains("claude_proxy_messages_total 1"),
            "{metrics}"
        );
    })
    .await;
}

#[tokio::test]
async fn an_interrupted_then_closed_agent_has_completed() {
    within(TEST_LIMIT, async {
        let setup = setup([Reply::Stall]).await;
        let (mut reader, id) = start(&setup, json!({"prompt": "Think for a long time."})).await;
        until("the turn reached the API", TEST_LIMIT, || async {
            !setup.standin.requests().is_empty()
        })
        .await;
        call(&setup, KEY, "POST", &format!("/agent/{id}/interrupt"), None).await;
        until_line(&mut reader, "result").await;
        call(&setup, KEY, "POST", &format!("/agent/{id}/close"), None).await;
        let rest = reader.collect_all().await;
        assert!(rest.iter().all(|e| e.event != "error"), "{rest:#?}");
        let complete = complete_of(&rest);
        assert_eq!(
            complete["status"], "completed",
            "the interrupt was the client's choice"
        );
        assert_eq!(complete["exit_code"], 1, "though the CLI exits 1 for it");
    })
    .await;
}

/// A Bash command that creates a file, which the CLI asks before it runs.
/// The workspace of the one key whose agents ran: with keys, each has its own under the
/// workdir.
fn key_workspace(setup: &RealSetup) -> std::path::PathBuf {
    let dirs: Vec<_> = std::fs::read_dir(&setup.work)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.is_dir())
        .collect();
    assert_eq!(dirs.len(), 1, "one key, one workspace: {dirs:?}");
    dirs.into_iter().next().unwrap()
}

fn touch(file: &str) -> Reply {
    Reply::Bash(format!("touch {file}"))
}

#[tokio::test]
async fn an_approved_tool_runs_and_a_denied_one_does_not() {
    within(TEST_LIMIT, async {
        let setup = setup([
            touch("approved.txt"),
            Reply::Text("Made it.".into()),
            touch("denied.txt"),
            Reply::Text("Could not.".into()),
        ])
        .await;
        let (mut reader, id) =
            start(&setup, json!({"prompt": "Make approved.txt.", "approvals": true})).await;

        let asked = until_event(&mut reader, "permission_request").await;
        assert_eq!(asked["tool_name"], "Bash");
        assert_eq!(asked["input"]["command"], "touch approved.txt");
        assert!(asked["expires_at"].is_string() && asked["tool_use_id"].is_string());
        let request_id = asked["request_id"].as_str().unwrap().to_owned();
        let agent = detail(&setup, &id).await;
        assert_eq!(agent["pending_permissions"][0]["request_id"], request_id.as_str());
        let (_, listed) = call(&setup, KEY, "GET", "/agents", None).await;
        assert_eq!(listed["agents"][0]["pending_permissions"], 1);

        // The answers in turn, and the proxy's reply to each.
        let allow = json!({"behavior": "allow"});
        // Permission updates would outlive the agent: not accepted.
        let widening = json!({"behavior": "allow", "updatedPermissions": [{"type": "setMode", "mode": "acceptEdits"}]});
        let asked_id = request_id.as_str();
        for (key, request, body, expected) in [
            (OTHER_KEY, asked_id, &allow, 404), // another key's answer finds no such agent
            (KEY, asked_id, &widening, 422),
            (KEY, asked_id, &allow, 200),
            (KEY, asked_id, &allow, 409), // already answered
            (KEY, "no-such-request", &allow, 404),
        ] {
            let (status, reply) = answer(&setup, key, &id, request, body.clone()).await;
            assert_eq!(status, expected, "{key} answers {request} with {body}: {reply}");
        }
        let decision = until_event(&mut reader, "permission_decision").await;
        assert_eq!(
            (decision["behavior"].clone(), decision["decided_by"].clone()),
            (json!("allow"), json!("client"))
        );
        until_line(&mut reader, "result").await;
        assert!(key_workspace(&setup).join("approved.txt").exists(), "the approved command ran");

        send(&setup, &id, json!("Now make denied.txt.")).await;
        let asked = until_event(&mut reader, "permission_request").await;
        let request_id = asked["request_id"].as_str().unwrap();
        let (status, _) = answer(&setup, KEY, &id, request_id, json!({"behavior": "deny", "message": "Not today, says the reviewer."})).await;
        assert_eq!(status, 200);
        let (tool_result, _) = until_line(&mut reader, "user").await;
        assert!(
            tool_result.to_string().contains("Not today, says the reviewer."),
            "the tool_result carries the message: {tool_result}"
        );
        until_line(&mut reader, "result").await;
        assert!(!key_workspace(&setup).join("denied.txt").exists(), "the denied command did not run");
        assert!(
            setup
                .standin
                .texts_received()
                .iter()
                .any(|t| t.contains("Not today, says the reviewer.")),
            "the model was told"
        );
        call(&setup, KEY, "POST", &format!("/agent/{id}/close"), None).await;
        assert_eq!(complete_of(&reader.collect_all().await)["status"], "completed");
        let metrics = metrics(&setup).await;
        for line in [
            "claude_proxy_permission_requests_total 2",
            r#"claude_proxy_permissions_settled_total{outcome="allowed"} 1"#,
            r#"claude_proxy_permissions_settled_total{outcome="denied"} 1"#,
        ] {
            assert!(metrics.contains(line), "{line} in {metrics}");
        }
    })
    .await;
}

async fn metrics(setup: &RealSetup) -> String {
    setup
        .proxy
        .client
        .get(setup.proxy.url("/metrics"))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[tokio::test]
async fn an_approval_with_updated_input_runs_the_changed_command() {
    within(TEST_LIMIT, async {
        let setup = setup([touch("asked-for.txt"), Reply::Text("Done.".into())]).await;
        let (mut reader, id) =
            start(&setup, json!({"prompt": "Make a file.", "approvals": true})).await;
        let asked = until_event(&mut reader, "permission_request").await;
        let request_id = asked["request_id"].as_str().unwrap();
        let (status, _) = answer(&setup, KEY, &id, request_id, json!({"behavior": "allow", "updated_input": {"command": "touch changed.txt", "description": "changed"}})).await;
        assert_eq!(status, 200);
        let decision = until_event(&mut reader, "permission_decision").await;
        assert_eq!(decision["updated_input"]["command"], "touch changed.txt");
        until_line(&mut reader, "result").await;
        assert!(key_workspace(&setup).join("changed.txt").exists());
        assert!(!key_workspace(&setup).join("asked-for.txt").exists());
        call(&setup, KEY, "POST", &format!("/agent/{id}/close"), None).await;
        reader.collect_all().await;
    })
    .await;
}

#[tokio::test]
async fn an_unanswered_approval_is_denied_at_the_timeout() {
    within(TEST_LIMIT, async {
        let setup = setup_with(
            [touch("never.txt"), Reply::Text("Understood.".into())],
            &[("PROXY_PERMISSION_TIMEOUT_SECS", "1")],
        )
        .await;
        let (mut reader, id) =
            start(&setup, json!({"prompt": "Make a file.", "approvals": true})).await;
        let asked = until_event(&mut reader, "permission_request").await;
        let decision = until_event(&mut reader, "permission_decision").await;
        assert_eq!(decision["request_id"], asked["request_id"]);
        assert_eq!(
            (decision["behavior"].clone(), decision["decided_by"].clone()),
            (json!("deny"), json!("timeout"))
        );
        assert!(decision["message"].as_str().unwrap().contains("expired"));
        let request_id = asked["request_id"].as_str().unwrap();
        let (status, _) = answer(&setup, KEY, &id, request_id, json!({"behavior": "allow"})).await;
        assert_eq!(status, 409, "expired");
        until_line(&mut reader, "result").await;
        assert!(!key_workspace(&setup).join("never.txt").exists());
        call(&setup, KEY, "POST", &format!("/agent/{id}/close"), None).await;
        reader.collect_all().await;
    })
    .await;
}

#[tokio::test]
async fn an_answer_after_an_interrupt_cancelled_the_request_is_409() {
    within(TEST_LIMIT, async {
        let setup = setup([touch("late.txt"), Reply::Text("ok".into())]).await;
        let (mut reader, id) =
            start(&setup, json!({"prompt": "Make a file.", "approvals": true})).await;
        let asked = until_event(&mut reader, "permission_request").await;
        let (status, _) = call(&setup, KEY, "POST", &format!("/agent/{id}/interrupt"), None).await;
        assert_eq!(status, 200);
        let cancelled = until_event(&mut reader, "permission_cancelled").await;
        assert_eq!(cancelled["request_id"], asked["request_id"]);
        let request_id = asked["request_id"].as_str().unwrap();
        let (status, body) =
            answer(&setup, KEY, &id, request_id, json!({"behavior": "allow"})).await;
        assert_eq!(status, 409, "{body}");
        until_line(&mut reader, "result").await;
        assert!(!key_workspace(&setup).join("late.txt").exists());
        call(&setup, KEY, "POST", &format!("/agent/{id}/close"), None).await;
        reader.collect_all().await;
    })
    .await;
}

#[tokio::test]
async fn approvals_need_the_operators_consent_and_an_interactive_agent() {
    within(TEST_LIMIT, async {
        let off = RealSetup::with_settings([], &[("PROXY_API_KEY", KEY)]).await;
        let (status, body) = call(
            &off,
            KEY,
            "POST",
            "/agent/stream",
            Some(json!({"prompt": "hi", "interactive": true, "approvals": true})),
        )
        .await;
        assert_eq!(status, 403);
        assert!(
            body["detail"]
                .as_str()
                .unwrap()
                .contains("PROXY_CLIENT_APPROVALS")
        );
        let on = setup([]).await;
        let (status, _) = call(
            &on,
            KEY,
            "POST",
            "/agent/start",
            Some(json!({"prompt": "hi", "approvals": true})),
        )
        .await;
        assert_eq!(status, 422, "approvals without interactive");
        assert!(off.standin.requests().is_empty() && on.standin.requests().is_empty());
    })
    .await;
}

#[tokio::test]
async fn an_image_message_reaches_the_api_as_an_image_block() {
    within(TEST_LIMIT, async {
        let setup = setup([
            Reply::Text("Ready.".into()),
            Reply::Text("A tiny picture.".into()),
        ])
        .await;
        let (mut reader, id) = start(&setup, json!({"prompt": "I will show you a picture."})).await;
        until_line(&mut reader, "result").await;
        // A 1x1 PNG.
        let png = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==";
        let (status, body) = send(
            &setup,
            &id,
            json!([
                {"type": "text", "text": "What is in it?"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": png}},
            ]),
        )
        .await;
        assert_eq!(status, 202, "{body}");
        until_line(&mut reader, "result").await;
        let request = setup.standin.requests()[1]["messages"].to_string();
        assert!(
            request.contains(png) && request.contains("\"image\""),
            "the image block reached the API"
        );
        call(&setup, KEY, "POST", &format!("/agent/{id}/close"), None).await;
        reader.collect_all().await;
    })
    .await;
}

#[tokio::test]
async fn a_model_change_reaches_the_api_and_a_mode_change_is_checked() {
    within(TEST_LIMIT, async {
        let setup = setup([]).await;
        let (mut reader, id) = start(
            &setup,
            json!({"prompt": "Hello.", "model": "claude-opus-4-5"}),
        )
        .await;
        until_line(&mut reader, "result").await;
        assert_eq!(setup.standin.requests()[0]["model"], "claude-opus-4-5");
        // Each change in turn, and the proxy's answer; an accepted one is echoed back.
        let path = format!("/agent/{id}");
        for (field, value, expected) in [
            ("model", "claude-sonnet-4-5", 200),
            ("model", "--evil", 422),
            ("permission_mode", "sideways", 422), // a mode the proxy does not know
            ("permission_mode", "acceptEdits", 403), // wider than the operator's default
            ("permission_mode", "plan", 200),
        ] {
            let change = json!({ field: value });
            let (status, changed) = call(&setup, KEY, "PATCH", &path, Some(change)).await;
            assert_eq!(status, expected, "{field} {value}: {changed}");
            if status == 200 {
                assert_eq!(changed[field], value, "{changed}");
            }
        }

        let before = setup.standin.requests().len();
        send(&setup, &id, json!("And now?")).await;
        until_line(&mut reader, "result").await;
        let last = setup.standin.requests().pop().unwrap();
        assert!(setup.standin.requests().len() > before);
        assert_eq!(
            last["model"], "claude-sonnet-4-5",
            "the next turn uses the new model"
        );
        call(&setup, KEY, "POST", &format!("/agent/{id}/close"), None).await;
        reader.collect_all().await;
    })
    .await;
}

#[tokio::test]
async fn another_keys_requests_and_a_one_shot_agents_routes_are_refused() {
    within(TEST_LIMIT, async {
        let setup = setup([]).await;
        let (mut reader, id) = start(&setup, json!({"prompt": "Hello."})).await;
        until_line(&mut reader, "result").await;
        for (method, path, body) in [
            (
                "POST",
                format!("/agent/{id}/messages"),
                Some(json!({"content": "hi"})),
            ),
            ("POST", format!("/agent/{id}/interrupt"), None),
            ("POST", format!("/agent/{id}/close"), None),
            ("PATCH", format!("/agent/{id}"), Some(json!({"model": "x"}))),
            ("GET", format!("/agent/{id}/permissions"), None),
        ] {
            let (status, _) = call(&setup, OTHER_KEY, method, &path, body).await;
            assert_eq!(status, 404, "{method} {path}");
        }
        let (status, _) = send(&setup, &id, json!({"not": "content"})).await;
        assert_eq!(status, 422);
        call(&setup, KEY, "POST", &format!("/agent/{id}/close"), None).await;
        reader.collect_all().await;
        let (status, _) = send(&setup, &id, json!("too late")).await;
        assert_eq!(status, 409, "the agent has ended");

        let one_shot = setup.proxy.stream("Just once.").await.collect_all().await;
        let id = one_shot[0].json()["agent_id"].as_str().unwrap().to_owned();
        let (status, body) = send(&setup, &id, json!("more?")).await;
        assert_eq!(status, 409, "{body}");
        assert!(body["detail"].as_str().unwrap().contains("not interactive"));
    })
    .await;
}

#[tokio::test]
async fn a_detached_interactive_agent_is_picked_up_again_with_last_event_id() {
    within(TEST_LIMIT, async {
        let setup = setup([]).await;
        let (mut reader, id) = start(
            &setup,
            json!({"prompt": "Hello.", "detach_on_disconnect": true}),
        )
        .await;
        let (_, seen) = until_line(&mut reader, "result").await;
        // The result came right after these: its id is the last one this reader saw.
        let last_seen = seen.last().unwrap().id_number() + 1;
        drop(reader);
        send(&setup, &id, json!("Still with me?")).await;
        let response = setup
            .proxy
            .client
            .get(setup.proxy.url(&format!("/agent/{id}/events")))
            .bearer_auth(KEY)
            .header("last-event-id", last_seen.to_string())
            .send()
            .await
            .unwrap();
        let mut again = SseReader::new(response);
        let (result, before) = until_line(&mut again, "result").await;
        assert_eq!(
            before[0].id_number(),
            last_seen + 1,
            "from the next event on"
        );
        assert!(
            before.iter().any(|e| e.data.contains("Still with me?")),
            "the message sent meanwhile is in the stream"
        );
        assert_eq!(result["subtype"], "success");
        call(&setup, KEY, "POST", &format!("/agent/{id}/close"), None).await;
        assert_eq!(
            complete_of(&again.collect_all().await)["status"],
            "completed"
        );
    })
    .await;
}

#[tokio::test]
async fn a_waiting_agent_is_closed_once_idle_past_its_limit() {
    within(TEST_LIMIT, async {
        let setup = setup_with([], &[("PROXY_INTERACTIVE_IDLE_SECS", "1")]).await;
        let (reader, _id) = start(&setup, json!({"prompt": "Hello."})).await;
        let events = reader.collect_all().await;
        assert_eq!(complete_of(&events)["status"], "completed");
    })
    .await;
}

#[tokio::test]
async fn a_waiting_agent_outlives_the_idle_timeout_for_output() {
    within(TEST_LIMIT, async {
        // Silence from a CLI that waits for a message is no hang. The timeout is well over what
        // the CLI takes to start on a busy machine (a second or two in this mode): its start is
        // no wait, and the idle timeout applies to it.
        let setup = setup_with(
            [],
            &[
                ("PROXY_IDLE_TIMEOUT_SECS", "5"),
                ("PROXY_KEEPALIVE_SECS", "1"),
            ],
        )
        .await;
        let (mut reader, id) = start(&setup, json!({"prompt": "Hello."})).await;
        until_line(&mut reader, "result").await;
        // Six keep-alives: the stream was silent for longer than the idle timeout.
        let seen = reader.comments();
        reader.wait_for_comments(seen + 6).await;
        assert_eq!(detail(&setup, &id).await["status"], "waiting");
        let (status, _) = send(&setup, &id, json!("Still there?")).await;
        assert_eq!(status, 202);
        until_line(&mut reader, "result").await;
        call(&setup, KEY, "POST", &format!("/agent/{id}/close"), None).await;
        assert_eq!(
            complete_of(&reader.collect_all().await)["status"],
            "completed"
        );
    })
    .await;
}

// The faults the real CLI cannot be made to show, with the fake CLI in its streaming mode.

mod faults {
    use super::*;
    use crate::support::TestServer;
    use crate::support::sse::error_codes;

    async fn start_fake(server: &TestServer, prompt: &str) -> (SseReader, String) {
        let response = server
            .post_json(
                "/agent/stream",
                json!({"prompt": prompt, "interactive": true}),
            )
            .await;
        assert_eq!(response.status(), 200);
        let mut reader = SseReader::new(response);
        let agent = reader.next_of("agent").await.json();
        (reader, agent["agent_id"].as_str().unwrap().to_owned())
    }

    async fn send_fake(server: &TestServer, id: &str, content: Value) -> u16 {
        server
            .post_json(
                &format!("/agent/{id}/messages"),
                json!({ "content": content }),
            )
            .await
            .status()
            .as_u16()
    }

    #[tokio::test]
    async fn a_tool_the_operator_removed_is_denied_without_asking_the_client() {
        within(TEST_LIMIT, async {
            let server = TestServer::with_args(&[
                "--client-approvals",
                "true",
                "--disallowed-tools",
                "Bash",
            ])
            .await;
            let response = server
                .post_json(
                    "/agent/stream",
                    json!({"prompt": "@ask Bash", "interactive": true, "approvals": true}),
                )
                .await;
            let mut reader = SseReader::new(response);
            let id = reader.next_of("agent").await.json()["agent_id"]
                .as_str()
                .unwrap()
                .to_owned();
            let (answer, before) = until_line(&mut reader, "fake_answer").await;
            assert_eq!(answer["response"]["behavior"], "deny");
            assert!(
                before.iter().all(|e| e.event != "permission_request"),
                "the client was not asked"
            );
            // A tool the operator left is the client's to decide.
            assert_eq!(send_fake(&server, &id, json!("@ask Read")).await, 202);
            let asked = reader.next_of("permission_request").await.json();
            assert_eq!(asked["tool_name"], "Read");
            let path = format!(
                "/agent/{id}/permissions/{}",
                asked["request_id"].as_str().unwrap()
            );
            let answered = server.post_json(&path, json!({"behavior": "allow"})).await;
            assert_eq!(answered.status(), 200);
            let (answer, _) = until_line(&mut reader, "fake_answer").await;
            assert_eq!(answer["response"]["behavior"], "allow");
            assert_eq!(answer["response"]["updatedInput"], json!({"path": "x"}));
            server
                .post_json(&format!("/agent/{id}/close"), json!({}))
                .await;
            assert_eq!(
                complete_of(&reader.collect_all().await)["status"],
                "completed"
            );
        })
        .await;
    }

    #[tokio::test]
    async fn a_cli_that_dies_mid_turn_ends_its_agent() {
        within(TEST_LIMIT, async {
            let server = TestServer::start().await;
            let (mut reader, id) = start_fake(&server, "hello").await;
            until_line(&mut reader, "result").await;
            assert_eq!(
                send_fake(&server, &id, json!("@text working\n@kill KILL")).await,
                202
            );
            let rest = reader.collect_all().await;
            assert_eq!(error_codes(&rest), ["exit_nonzero"]);
            let complete = complete_of(&rest);
            assert_eq!(
                (complete["status"].clone(), complete["signal"].clone()),
                (json!("failed"), json!("SIGKILL"))
            );
            assert_eq!(send_fake(&server, &id, json!("anyone?")).await, 409);
        })
        .await;
    }

    #[tokio::test]
    async fn a_cli_that_closes_its_stdin_ends_when_its_turn_does() {
        within(TEST_LIMIT, async {
            let server = TestServer::start().await;
            let (reader, id) = start_fake(&server, "@close-stdin\n@text closed").await;
            let events = reader.collect_all().await;
            assert_eq!(complete_of(&events)["status"], "completed");
            assert!(error_codes(&events).is_empty(), "{events:#?}");
            assert_eq!(send_fake(&server, &id, json!("anyone?")).await, 409);
        })
        .await;
    }

    #[tokio::test]
    async fn a_flood_of_control_requests_is_answered_and_never_reaches_the_stream() {
        within(TEST_LIMIT, async {
            let server = TestServer::start().await;
            let (mut reader, id) = start_fake(&server, "@control-flood 5000").await;
            let (result, before) = until_line(&mut reader, "result").await;
            assert_eq!(result["result"], "turn 1");
            assert!(
                before.iter().all(|e| !e.data.contains("control_request")),
                "control lines are the proxy's, not events"
            );
            assert_eq!(send_fake(&server, &id, json!("still there?")).await, 202);
            let (result, _) = until_line(&mut reader, "result").await;
            assert_eq!(result["result"], "turn 2");
            server
                .post_json(&format!("/agent/{id}/close"), json!({}))
                .await;
            assert_eq!(
                complete_of(&reader.collect_all().await)["status"],
                "completed"
            );
        })
        .await;
    }

    #[tokio::test]
    async fn a_malformed_message_never_reaches_the_cli_which_answers_the_next() {
        within(TEST_LIMIT, async {
            let server = TestServer::start().await;
            let (mut reader, id) = start_fake(&server, "hello").await;
            until_line(&mut reader, "result").await;
            let path = server.url(&format!("/agent/{id}/messages"));
            for (body, status) in [
                ("{\"content\": ", 400),
                ("not json at all\n", 400),
                ("{\"content\": 5}", 422),
                ("{\"content\": \"\"}", 422),
                ("{\"content\": \"x\", \"role\": \"system\"}", 422),
                (
                    "{\"content\": [{\"type\": \"tool_result\", \"content\": \"x\"}]}",
                    422,
                ),
            ] {
                let response = server
                    .client
                    .post(&path)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status().as_u16(), status, "{body}");
            }
            // Quotes and line breaks in a message are the JSON line's to escape.
            let tricky = "@stdin-lines\nline two \"quoted\" \\ end";
            assert_eq!(send_fake(&server, &id, json!(tricky)).await, 202);
            let (lines, _) = until_line(&mut reader, "fake_stdin_lines").await;
            let lines = lines["lines"].as_array().unwrap();
            assert_eq!(
                lines.len(),
                2,
                "the prompt and the valid message, nothing else: {lines:?}"
            );
            for line in lines {
                let message: Value = serde_json::from_str(line.as_str().unwrap()).unwrap();
                assert_eq!(message["type"], "user");
            }
            let (result, _) = until_line(&mut reader, "result").await;
            assert_eq!(result["result"], "turn 2");
            server
                .post_json(&format!("/agent/{id}/close"), json!({}))
                .await;
            assert_eq!(
                complete_of(&reader.collect_all().await)["status"],
                "completed"
            );
        })
        .await;
    }
}
