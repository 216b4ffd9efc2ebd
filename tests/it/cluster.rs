//! Two instances on one PostgreSQL behind a real nginx, round robin: a client that knows only
//! one address, or asks the instance that does not run its agent, gets the same answers as
//! from the one that does. The survivor of an instance's death ends its agents.

use crate::support;

use std::net::SocketAddr;

use crate::support::nginx::Nginx;
use crate::support::postgres::TestDatabase;
use crate::support::proxy::Proxy;
use crate::support::sse::{complete_of, error_codes};
use crate::support::{FakeInstall, SseEvent, SseReader, TEST_LIMIT, until, within};
use nix::sys::signal::Signal;
use serde_json::{Value, json};

const KEY: &str = "cluster-key-0123456789";
const KEYS: &str = "cluster-key-0123456789,other-key-0123456789";

/// Two instances, `a` and `b`, sharing a database, a fake CLI and a workspace, each with a home
/// of its own; nginx in front.
struct Cluster {
    _database: TestDatabase,
    fake: FakeInstall,
    instances: Vec<Proxy>,
    nginx: Nginx,
    client: reqwest::Client,
}

impl Cluster {
    fn start(extra: &[(&str, &str)]) -> Self {
        let database = TestDatabase::new();
        let fake = FakeInstall::new();
        let url = database.url();
        let cli = fake.cli_path().display().to_string();
        let work = fake.dir.path().join("work").display().to_string();
        let instances: Vec<Proxy> = ["a", "b"]
            .into_iter()
            .map(|name| {
                let home = fake.dir.path().join(format!("home-{name}"));
                std::fs::create_dir_all(&home).unwrap();
                let home = home.display().to_string();
                let mut env = vec![
                    ("PROXY_DATABASE_URL", url.as_str()),
                    ("PROXY_INSTANCE_ID", name),
                    ("PROXY_API_KEY", KEYS),
                    ("CLAUDE_CLI_PATH", cli.as_str()),
                    ("CLAUDE_WORKDIR", work.as_str()),
                    ("HOME", home.as_str()),
                    ("PROXY_STOP_GRACE_SECS", "1"),
                ];
                env.extend_from_slice(extra);
                Proxy::start(fake.dir.path(), &env)
            })
            .collect();
        let upstreams: Vec<SocketAddr> = instances.iter().map(|p| p.addr).collect();
        let nginx = Nginx::round_robin(&upstreams);
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert("authorization", format!("Bearer {KEY}").parse().unwrap());
        let client = reqwest::Client::builder()
            .default_headers(headers)
            .build()
            .unwrap();
        Self {
            _database: database,
            fake,
            instances,
            nginx,
            client,
        }
    }

    /// A path through nginx.
    fn balanced(&self, path: &str) -> String {
        self.nginx.url(path)
    }

    /// A path at one instance.
    fn at(&self, instance: usize, path: &str) -> String {
        self.instances[instance].url(path)
    }

    async fn post(&self, url: String, body: Value) -> (u16, Value) {
        let response = self.client.post(url).json(&body).send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn get(&self, url: String) -> (u16, Value) {
        let response = self.client.get(url).send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn stream(&self, url: String, body: Value) -> (SseReader, String) {
        let response = self.client.post(url).json(&body).send().await.unwrap();
        assert_eq!(response.status(), 200, "{:?}", response.text().await);
        let mut reader = SseReader::new(response);
        let agent = reader.next_of("agent").await.json();
        (reader, agent["agent_id"].as_str().unwrap().to_owned())
    }

    async fn events(&self, url: String, last_event_id: Option<u64>) -> SseReader {
        let mut request = self.client.get(url);
        if let Some(last) = last_event_id {
            request = request.header("last-event-id", last.to_string());
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 200);
        SseReader::new(response)
    }

    /// The instance that runs an agent, and the other one, by index.
    async fn runner_and_other(&self, id: &str) -> (usize, usize) {
        let (status, detail) = self.get(self.balanced(&format!("/agent/{id}"))).await;
        assert_eq!(status, 200, "{detail}");
        let runner = match detail["instance_id"].as_str() {
            Some("a") => 0,
            Some("b") => 1,
            other => panic!("instance_id {other:?}"),
        };
        (runner, 1 - runner)
    }
}

/// Reads until an event whose JSON `type` is `kind`.
async fn until_line(reader: &mut SseReader, kind: &str) -> Value {
    reader.next_of(kind).await.json()
}

#[tokio::test]
async fn a_stream_is_followed_dropped_picked_up_and_stopped_through_the_other_instance() {
    within(TEST_LIMIT, async {
        let cluster = Cluster::start(&[]);
        let (mut reader, id) = cluster
            .stream(
                cluster.balanced("/agent/stream"),
                json!({"prompt": "@lines 100000 80 20", "detach_on_disconnect": true}),
            )
            .await;
        let mut seen = Vec::new();
        while seen.len() < 5 {
            seen.push(reader.next_of("assistant").await);
        }
        let last_seen = seen.last().unwrap().id_number();
        drop(reader);

        let (runner, other) = cluster.runner_and_other(&id).await;
        let mut reader = cluster
            .events(
                cluster.at(other, &format!("/agent/{id}/events")),
                Some(last_seen),
            )
            .await;
        let mut picked_up: Vec<SseEvent> = Vec::new();
        while picked_up.len() < 20 {
            picked_up.push(
                reader
                    .next()
                    .await
                    .expect("live events from the other instance"),
            );
        }
        let ids: Vec<u64> = picked_up.iter().map(SseEvent::id_number).collect();
        let expected: Vec<u64> = (last_seen + 1..=last_seen + 20).collect();
        assert_eq!(ids, expected, "each event once, in order, none missing");
        assert!(picked_up.iter().all(|e| e.kind() == "assistant"));

        // Through nginx too, whichever instance answers.
        let mut balanced = cluster
            .events(
                cluster.balanced(&format!("/agent/{id}/events")),
                Some(last_seen),
            )
            .await;
        assert_eq!(balanced.next().await.unwrap().id_number(), last_seen + 1);

        let (status, stopped) = cluster
            .post(cluster.at(other, &format!("/agent/stop/{id}")), json!({}))
            .await;
        assert_eq!((status, &stopped["status"]), (200, &json!("stopped")));
        let rest = reader.collect_all().await;
        assert_eq!(complete_of(&rest)["status"], "stopped");
        assert_eq!(
            complete_of(&balanced.collect_all().await)["status"],
            "stopped"
        );
        for instance in [runner, other] {
            let (_, detail) = cluster
                .get(cluster.at(instance, &format!("/agent/{id}")))
                .await;
            assert_eq!(
                detail["status"], "stopped",
                "as instance {instance} sees it"
            );
        }
        let (_, listed) = cluster.get(cluster.at(other, "/agents")).await;
        assert_eq!(listed["agents"][0]["agent_id"], id.as_str());
        assert_eq!(cluster.fake.runs(), 1);
    })
    .await;
}

#[tokio::test]
async fn follow_ups_approvals_and_changes_reach_an_agent_on_the_other_instance() {
    within(TEST_LIMIT, async {
        let cluster = Cluster::start(&[("PROXY_CLIENT_APPROVALS", "true")]);
        let (mut reader, id) = cluster
            .stream(
                cluster.balanced("/agent/stream"),
                json!({"prompt": "hello", "interactive": true, "approvals": true}),
            )
            .await;
        until_line(&mut reader, "result").await;
        let (_, other) = cluster.runner_and_other(&id).await;
        let path = |rest: &str| cluster.at(other, &format!("/agent/{id}{rest}"));

        let (status, queued) = cluster
            .post(path("/messages"), json!({"content": "@ask Read"}))
            .await;
        assert_eq!(status, 202, "{queued}");
        let asked = reader.next_of("permission_request").await.json();
        let request_id = asked["request_id"].as_str().unwrap().to_owned();
        let (_, pending) = cluster.get(path("/permissions")).await;
        assert_eq!(
            pending["pending_permissions"][0]["request_id"],
            request_id.as_str()
        );
        let (_, detail) = cluster.get(path("")).await;
        assert_eq!(
            detail["pending_permissions"][0]["request_id"],
            request_id.as_str()
        );
        let (status, answered) = cluster
            .post(
                path(&format!("/permissions/{request_id}")),
                json!({"behavior": "allow"}),
            )
            .await;
        assert_eq!((status, &answered["behavior"]), (200, &json!("allow")));
        assert_eq!(
            until_line(&mut reader, "fake_answer").await["response"]["behavior"],
            "allow"
        );
        until_line(&mut reader, "result").await;

        // A refusal there is the same refusal here.
        let (status, refused) = cluster
            .post(
                path("/permissions/no-such-request"),
                json!({"behavior": "allow"}),
            )
            .await;
        assert_eq!(status, 404, "{refused}");
        let (status, refused) = cluster
            .post(path("/messages"), json!({"content": []}))
            .await;
        assert_eq!(status, 422, "{refused}");

        let response = cluster
            .client
            .patch(path(""))
            .json(&json!({"model": "claude-other"}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let changed: Value = response.json().await.unwrap();
        assert_eq!(changed["model"], "claude-other", "{changed}");
        let (status, interrupted) = cluster.post(path("/interrupt"), json!({})).await;
        assert_eq!(status, 200, "{interrupted}");

        // Follow-ups through nginx, whichever instance answers each.
        for n in 0..2 {
            let (status, _) = cluster
                .post(
                    cluster.balanced(&format!("/agent/{id}/messages")),
                    json!({"content": format!("@result follow-up {n}")}),
                )
                .await;
            assert_eq!(status, 202);
            assert_eq!(
                until_line(&mut reader, "result").await["result"],
                format!("follow-up {n}")
            );
        }
        let (status, _) = cluster.post(path("/close"), json!({})).await;
        assert_eq!(status, 202);
        assert_eq!(
            complete_of(&reader.collect_all().await)["status"],
            "completed"
        );
        let (status, _) = cluster
            .post(path("/messages"), json!({"content": "late"}))
            .await;
        assert_eq!(
            status, 409,
            "an ended agent takes no message, on any instance"
        );
    })
    .await;
}

#[tokio::test]
async fn the_per_key_limit_holds_across_instances() {
    within(TEST_LIMIT, async {
        let cluster = Cluster::start(&[("PROXY_MAX_AGENTS_PER_KEY", "2")]);
        let mut ids = Vec::new();
        for instance in [0, 1] {
            let (status, started) = cluster
                .post(
                    cluster.at(instance, "/agent/start"),
                    json!({"prompt": "@hang"}),
                )
                .await;
            assert_eq!(status, 200, "{started}");
            ids.push(started["agent_id"].as_str().unwrap().to_owned());
        }
        for instance in [0, 1] {
            let (status, refused) = cluster
                .post(
                    cluster.at(instance, "/agent/start"),
                    json!({"prompt": "@hang"}),
                )
                .await;
            assert_eq!(status, 429, "{refused}");
            assert!(
                refused["detail"]
                    .as_str()
                    .unwrap()
                    .contains("PROXY_MAX_AGENTS_PER_KEY")
            );
        }
        assert_eq!(cluster.fake.runs(), 2, "the refused ones spawned nothing");
        // Another key has its own.
        let other = cluster
            .client
            .post(cluster.balanced("/agent/start"))
            .bearer_auth("other-key-0123456789")
            .json(&json!({"prompt": "@result hi"}))
            .send()
            .await
            .unwrap();
        assert_eq!(other.status(), 200);

        // Stopped on one instance (through the other), its place is free on both.
        let (status, _) = cluster
            .post(cluster.at(1, &format!("/agent/stop/{}", ids[0])), json!({}))
            .await;
        assert_eq!(status, 200);
        let (status, started) = cluster
            .post(cluster.at(1, "/agent/start"), json!({"prompt": "@hang"}))
            .await;
        assert_eq!(status, 200, "{started}");
    })
    .await;
}

#[tokio::test]
async fn a_session_an_agent_runs_on_one_instance_is_not_resumed_on_the_other() {
    within(TEST_LIMIT, async {
        let cluster = Cluster::start(&[]);
        let (mut first, _) = cluster
            .stream(cluster.at(0, "/agent/stream"), json!({"prompt": "hi"}))
            .await;
        let session = until_line(&mut first, "result").await["session_id"]
            .as_str()
            .unwrap()
            .to_owned();
        first.collect_all().await;
        let (status, started) = cluster
            .post(
                cluster.at(0, "/agent/start"),
                json!({"prompt": "@hang", "session_id": session}),
            )
            .await;
        assert_eq!(status, 200, "{started}");
        let running = started["agent_id"].as_str().unwrap();

        let (status, refused) = cluster
            .post(
                cluster.at(1, "/agent/stream"),
                json!({"prompt": "again", "session_id": session}),
            )
            .await;
        assert_eq!(status, 409, "{refused}");
        assert!(
            refused["detail"].as_str().unwrap().contains(running),
            "{refused}"
        );
        assert_eq!(cluster.fake.runs(), 2, "the refused resume ran nothing");
    })
    .await;
}

#[tokio::test]
async fn a_killed_instances_agents_are_interrupted_by_the_survivor_whose_clients_go_on() {
    within(TEST_LIMIT, async {
        let mut cluster = Cluster::start(&[("PROXY_INSTANCE_TIMEOUT_SECS", "2")]);
        let (status, started) = cluster
            .post(
                cluster.at(0, "/agent/start"),
                json!({"prompt": "@text working\n@hang"}),
            )
            .await;
        assert_eq!(status, 200);
        let doomed = started["agent_id"].as_str().unwrap().to_owned();
        let mut watching = cluster
            .events(cluster.at(1, &format!("/agent/{doomed}/events")), None)
            .await;
        watching.next_of("assistant").await;
        let (mut survivor, _) = cluster
            .stream(
                cluster.at(1, "/agent/stream"),
                json!({"prompt": "@lines 100000 80 20"}),
            )
            .await;
        survivor.next_of("assistant").await;

        cluster.instances[0].signal(Signal::SIGKILL);
        cluster.instances[0].exited().await;

        // The survivor's reader of the dead instance's agent gets its end.
        let rest = watching.collect_all().await;
        assert_eq!(error_codes(&rest), ["interrupted"]);
        assert_eq!(complete_of(&rest)["status"], "stopped");
        let (_, detail) = cluster
            .get(cluster.at(1, &format!("/agent/{doomed}")))
            .await;
        assert_eq!(detail["status"], "stopped");

        // The survivor's own stream never noticed.
        let mut last = survivor.next_of("assistant").await.id_number();
        for _ in 0..20 {
            let next = survivor.next().await.unwrap();
            assert_eq!(next.id_number(), last + 1, "{next:?}");
            last = next.id_number();
        }
        // New agents go to the survivor through nginx.
        for _ in 0..2 {
            let (status, _) = cluster
                .post(
                    cluster.balanced("/agent/start"),
                    json!({"prompt": "@result hi"}),
                )
                .await;
            assert_eq!(status, 200);
        }
    })
    .await;
}

#[tokio::test]
async fn a_rate_limit_one_instance_meets_holds_back_the_other() {
    within(TEST_LIMIT, async {
        let cluster = Cluster::start(&[]);
        let limited = concat!(
            "@line {\"type\":\"assistant\",\"error\":\"rate_limit\",\"api_error_status\":429,\"message\":{\"content\":[]}}\n",
            "@line {\"type\":\"rate_limit_event\",\"rate_limit_info\":{\"status\":\"rejected\",\"resetsAt\":4102444800}}\n",
            "@result-error limited"
        );
        let (reader, _) = cluster
            .stream(cluster.at(0, "/agent/stream"), json!({"prompt": limited}))
            .await;
        reader.collect_all().await;
        until("the other instance knows of the limit", TEST_LIMIT, || async {
            let (status, _) = cluster
                .post(cluster.at(1, "/agent/start"), json!({"prompt": "@result hi"}))
                .await;
            status == 429
        })
        .await;
        let (status, refused) = cluster
            .post(cluster.at(1, "/agent/start"), json!({"prompt": "@result hi"}))
            .await;
        assert_eq!(status, 429);
        assert!(refused["detail"].as_str().unwrap().contains("rate limited"), "{refused}");
    })
    .await;
}

#[tokio::test]
async fn an_action_for_an_instance_that_does_not_answer_is_a_504() {
    within(TEST_LIMIT, async {
        let cluster = Cluster::start(&[("PROXY_FORWARD_TIMEOUT_SECS", "1")]);
        let (status, started) = cluster
            .post(cluster.at(0, "/agent/start"), json!({"prompt": "@hang"}))
            .await;
        assert_eq!(status, 200);
        let id = started["agent_id"].as_str().unwrap().to_owned();
        cluster.instances[0].signal(Signal::SIGSTOP);
        let (status, refused) = cluster
            .post(cluster.at(1, &format!("/agent/stop/{id}")), json!({}))
            .await;
        cluster.instances[0].signal(Signal::SIGCONT);
        assert_eq!(status, 504, "{refused}");
        assert!(
            refused["detail"]
                .as_str()
                .unwrap()
                .contains("PROXY_FORWARD_TIMEOUT_SECS")
        );
        // The instance reads what it is sent in order: once it has answered a later action, it
        // has seen the one that got 504, which was withdrawn, never done.
        let (status, _) = cluster
            .get(cluster.at(1, &format!("/agent/{id}/permissions")))
            .await;
        assert_eq!(status, 200);
        let (_, detail) = cluster.get(cluster.at(1, &format!("/agent/{id}"))).await;
        assert_eq!(detail["status"], "running", "{detail}");
        // Once it answers again, so does the action.
        let (status, again) = cluster
            .post(cluster.at(1, &format!("/agent/stop/{id}")), json!({}))
            .await;
        assert_eq!(status, 200, "{again}");
        let (_, detail) = cluster.get(cluster.at(1, &format!("/agent/{id}"))).await;
        assert_eq!(detail["status"], "stopped");
    })
    .await;
}

/// The real CLI on two instances with homes of their own: a session is a file in one of them,
/// until the database carries it.
#[tokio::test]
async fn a_session_made_on_one_instance_is_resumed_on_the_other_with_its_earlier_turn() {
    use crate::support::anthropic::{Reply, StandIn};
    within(TEST_LIMIT, async {
        let standin = StandIn::start([
            Reply::Text("Noted: your number is 7.".into()),
            Reply::Text("It was 7.".into()),
            Reply::Text("Still 7.".into()),
        ])
        .await;
        let (dir, _database, instances) = real_pair(&standin, &[]);
        let first = instances[0]
            .stream("Remember the number 7.")
            .await
            .collect_all()
            .await;
        let session = session_of(&first);
        let in_home = |name: &str| {
            walk(&dir.path().join(format!("home-{name}/.claude/projects")))
                .into_iter()
                .any(|file| file.ends_with(format!("{session}.jsonl")))
        };
        assert!(
            in_home("a") && !in_home("b"),
            "the session is a file of a's alone"
        );

        let second = resume(&instances[1], "What was my number?", &session).await;
        assert_eq!(complete_of(&second)["status"], "completed");
        assert_eq!(session_of(&second), session, "resumed, not begun anew");
        let requests = standin.requests();
        let earlier = requests[1]["messages"].to_string();
        assert!(
            earlier.contains("Remember the number 7.")
                && earlier.contains("Noted: your number is 7."),
            "the earlier turn was sent again: {earlier}"
        );

        // And back: a's copy is older than b's second turn, so it is replaced.
        let third = resume(&instances[0], "And now?", &session).await;
        assert_eq!(complete_of(&third)["status"], "completed");
        let latest = standin.requests()[2]["messages"].to_string();
        assert!(
            latest.contains("What was my number?") && latest.contains("It was 7."),
            "{latest}"
        );

        // Another key cannot resume it, on either instance.
        for instance in &instances {
            let refused = instance
                .client
                .post(instance.url("/agent/stream"))
                .bearer_auth("other-key-0123456789")
                .json(&json!({"prompt": "mine now", "session_id": session}))
                .send()
                .await
                .unwrap();
            assert_eq!(refused.status(), 403);
        }
    })
    .await;
}

/// A chat client's follow-up may reach the other instance: the conversation the first one
/// answered is resumed there (its session's file comes through the database), and both list
/// and forget the same conversations.
#[tokio::test]
async fn a_chat_follow_up_on_the_other_instance_resumes_the_conversation() {
    use crate::support::anthropic::{Reply, StandIn};
    within(TEST_LIMIT, async {
        let standin = StandIn::start([
            Reply::Text("Noted: the word is KITE-9.".into()),
            Reply::Text("It was KITE-9.".into()),
        ])
        .await;
        let (_dir, _database, instances) = real_pair(&standin, &[]);
        let asked = json!({"role": "user", "content": "Remember the word KITE-9."});
        let first = instances[0]
            .post(
                "/v1/chat/completions",
                &json!({"model": "sonnet", "messages": [asked]}),
            )
            .await;
        assert_eq!(first.status(), 200);
        let first: Value = first.json().await.unwrap();
        let reply = first["choices"][0]["message"]["content"].clone();

        let follow_up = instances[1]
            .post(
                "/v1/chat/completions",
                &json!({"model": "sonnet", "messages": [
                    asked,
                    {"role": "assistant", "content": reply},
                    {"role": "user", "content": "Which word was it?"},
                ]}),
            )
            .await;
        assert_eq!(follow_up.status(), 200);
        let sent = standin.requests()[1]["messages"].to_string();
        assert!(
            sent.contains("Noted: the word is KITE-9.")
                && !sent.contains("The conversation so far"),
            "resumed from the session, not a transcript: {sent}"
        );

        let listed = |instance: &Proxy| {
            let url = instance.url("/v1/sessions");
            let client = instance.client.clone();
            async move {
                let listed: Value = client.get(url).send().await.unwrap().json().await.unwrap();
                listed["data"].as_array().unwrap().len()
            }
        };
        assert_eq!(listed(&instances[0]).await, 2);
        assert_eq!(listed(&instances[1]).await, 2);
        let first_session = first["x_claude_proxy"]["session_id"].as_str().unwrap();
        let forgotten = instances[1]
            .client
            .delete(instances[1].url(&format!("/v1/sessions/{first_session}")))
            .send()
            .await
            .unwrap();
        assert_eq!(forgotten.status(), 200);
        assert_eq!(listed(&instances[0]).await, 1, "forgotten on both");

        // A response of the Responses API, continued and shown through the other instance.
        let response: Value = instances[0]
            .post(
                "/v1/responses",
                &json!({"model": "sonnet", "input": "Remember the word LARK-4."}),
            )
            .await
            .json()
            .await
            .unwrap();
        let id = response["id"].as_str().unwrap().to_owned();
        let shown = instances[1].get(&format!("/v1/responses/{id}")).await;
        assert_eq!(shown.status(), 200);
        let follow_up = instances[1]
            .post(
                "/v1/responses",
                &json!({"model": "sonnet", "input": "Which word? (responses)", "previous_response_id": id}),
            )
            .await;
        assert_eq!(follow_up.status(), 200);
        let requests = standin.requests();
        let sent = requests
            .iter()
            .rev()
            .find(|r| r["messages"].to_string().contains("(responses)"))
            .unwrap()["messages"]
            .to_string();
        assert!(sent.contains("LARK-4"), "resumed from the session: {sent}");
        assert_eq!(listed(&instances[0]).await, 1, "responses are not conversations");
        let deleted = instances[1]
            .client
            .delete(instances[1].url(&format!("/v1/responses/{id}")))
            .send()
            .await
            .unwrap();
        assert_eq!(deleted.status(), 200);
        let gone = instances[0].get(&format!("/v1/responses/{id}")).await;
        assert_eq!(gone.status(), 404, "forgotten on both");
    })
    .await;
}

/// Two instances running the real CLI against `standin`, on a database of their own, with
/// homes of their own and one workspace.
fn real_pair(
    standin: &support::anthropic::StandIn,
    extra: &[(&str, &str)],
) -> (tempfile::TempDir, TestDatabase, Vec<Proxy>) {
    let database = TestDatabase::new();
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    let url = database.url();
    let instances = ["a", "b"]
        .into_iter()
        .map(|name| {
            let home = dir.path().join(format!("home-{name}"));
            std::fs::create_dir_all(&home).unwrap();
            let mut env = vec![
                ("PROXY_DATABASE_URL", url.as_str()),
                ("PROXY_INSTANCE_ID", name),
                ("PROXY_API_KEY", KEYS),
            ];
            env.extend_from_slice(extra);
            support::real::start_proxy(standin, &home, &work, &env)
        })
        .collect();
    (dir, database, instances)
}

#[tokio::test]
async fn a_session_too_large_to_keep_is_resumed_only_where_it_was_made() {
    use crate::support::anthropic::{Reply, StandIn};
    within(TEST_LIMIT, async {
        let standin = StandIn::start([
            Reply::Text("Noted.".into()),
            Reply::Text("Here, yes.".into()),
        ])
        .await;
        let (_dir, _database, instances) =
            real_pair(&standin, &[("PROXY_MAX_SESSION_BYTES", "100")]);
        let first = instances[0].stream("Remember 7.").await.collect_all().await;
        let session = session_of(&first);
        let refused = instances[1]
            .post(
                "/agent/stream",
                &json!({"prompt": "there?", "session_id": session}),
            )
            .await;
        assert_eq!(refused.status(), 409);
        let detail = refused.json::<Value>().await.unwrap()["detail"].to_string();
        assert!(
            detail.contains("PROXY_MAX_SESSION_BYTES") && detail.contains("instance a"),
            "{detail}"
        );
        let resumed = resume(&instances[0], "here?", &session).await;
        assert_eq!(complete_of(&resumed)["status"], "completed");
        assert_eq!(
            standin.requests().len(),
            2,
            "the refused one reached no CLI"
        );
    })
    .await;
}

/// The session a run's result names.
fn session_of(events: &[SseEvent]) -> String {
    events
        .iter()
        .find(|e| e.kind() == "result")
        .expect("a result")
        .json()["session_id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// A stream that resumes `session` on `instance`, read to its end.
async fn resume(instance: &Proxy, prompt: &str, session: &str) -> Vec<SseEvent> {
    instance
        .stream_with(&json!({"prompt": prompt, "session_id": session}))
        .await
        .collect_all()
        .await
}

/// Every file under `dir`.
fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .flat_map(|entry| {
            let path = entry.path();
            if path.is_dir() {
                walk(&path)
            } else {
                vec![path]
            }
        })
        .collect()
}

#[tokio::test]
async fn a_line_larger_than_the_log_reaches_only_readers_on_the_instance_that_runs_the_agent() {
    within(TEST_LIMIT, async {
        let cluster = Cluster::start(&[("PROXY_AGENT_LOG_BYTES", "20000")]);
        let go = cluster.fake.dir.path().join("go");
        let (mut here, id) = cluster
            .stream(
                cluster.at(0, "/agent/stream"),
                json!({"prompt": format!(
                    "@text before\n@wait-for {}\n@big 50000\n@text after\n@result done",
                    go.display()
                )}),
            )
            .await;
        here.next_of("assistant").await;
        let mut elsewhere = cluster
            .events(cluster.at(1, &format!("/agent/{id}/events")), None)
            .await;
        elsewhere.next_of("assistant").await;
        std::fs::write(&go, "").unwrap();

        let here = here.collect_all().await;
        let big = here
            .iter()
            .find(|e| e.kind() == "proxy_raw")
            .expect("the big line, here");
        assert_eq!(big.json()["line"].as_str().unwrap().len(), 50000);
        let elsewhere = elsewhere.collect_all().await;
        assert!(elsewhere.iter().all(|e| e.kind() != "proxy_raw"));
        let gap = elsewhere
            .iter()
            .find(|e| e.event == "gap")
            .expect("a gap, elsewhere");
        assert_eq!(gap.json()["from"], big.id_number());
        assert!(elsewhere.iter().any(|e| e.data.contains("after")));
        assert_eq!(complete_of(&elsewhere)["status"], "completed");
    })
    .await;
}

#[test]
fn the_cluster_deployment_is_a_compose_file_that_names_what_it_needs() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = |env: &[(&str, &str)]| {
        std::process::Command::new("docker-compose")
            .args(["-f", "deploy/compose-cluster.yml", "config"])
            .current_dir(root)
            .env_remove("POSTGRES_PASSWORD")
            .env_remove("PROXY_API_KEY")
            .env_remove("CLAUDE_CODE_OAUTH_TOKEN")
            .envs(env.iter().copied())
            .output()
            .expect("docker-compose runs: run the tests with scripts/test, which installs it")
    };
    let output = config(&[
        ("POSTGRES_PASSWORD", "pg-secret"),
        ("PROXY_API_KEY", "client-key-0123456789"),
        ("CLAUDE_CODE_OAUTH_TOKEN", "oauth-token"),
    ]);
    let resolved = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for expected in [
        "postgres:16",
        "nginx:1.27",
        "PROXY_INSTANCE_ID: proxy-a",
        "PROXY_INSTANCE_ID: proxy-b",
        "PROXY_DATABASE_URL: postgres://claude:pg-secret@postgres:5432/claude",
        "nginx-cluster.conf:/etc/nginx/conf.d/default.conf",
    ] {
        assert!(resolved.contains(expected), "{expected} in:\n{resolved}");
    }
    let unset = config(&[]);
    assert!(!unset.status.success());
    assert!(String::from_utf8_lossy(&unset.stderr).contains("set POSTGRES_PASSWORD"));
}
