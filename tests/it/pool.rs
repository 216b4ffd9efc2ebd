//! The warm pool (PROXY_WARM_POOL): CLIs started ahead of the runs they serve. With the fake
//! CLI, whose `runs` file names every CLI started (see `FakeInstall`), and, for the events of
//! a warm run against a cold one, the real CLI and the Messages API stand-in.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::anthropic::Reply;
use crate::support::proxy::Proxy;
use crate::support::real::RealSetup;
use crate::support::sse::complete_of;
use crate::support::{
    FakeInstall, SseEvent, SseReader, TEST_LIMIT, process_alive, process_gone, process_tree, until,
    within,
};

const KEY_A: &str = "key-a-0123456789abcdef";
const KEY_B: &str = "key-b-0123456789abcdef";
/// How long a pool may take to fill, or to refill, on a busy machine.
const FILL_LIMIT: Duration = Duration::from_secs(30);

/// The proxy with the fake CLI, these settings and flags on top of the tests' usual ones.
struct Pooled {
    proxy: Proxy,
    fake: FakeInstall,
}

impl Pooled {
    fn start(env: &[(&str, &str)], args: &[&str]) -> Self {
        let fake = FakeInstall::new();
        let cli = fake.cli_path().display().to_string();
        let workdir = fake.dir.path().join("work");
        std::fs::create_dir_all(workdir.join("sub")).unwrap();
        let workdir = workdir.display().to_string();
        let mut argv = vec![
            "--cli-path",
            &cli,
            "--stop-grace-secs",
            "2",
            "--workdir",
            &workdir,
        ];
        argv.extend_from_slice(args);
        let proxy = Proxy::launch(fake.dir.path(), env, &argv);
        Self { proxy, fake }
    }

    /// Every CLI started so far, in order.
    fn started(&self) -> Vec<u32> {
        std::fs::read_to_string(self.fake.dir.path().join("runs"))
            .unwrap_or_default()
            .lines()
            .map(|pid| pid.parse().unwrap())
            .collect()
    }

    async fn pool(&self, key: Option<&str>) -> Value {
        let health = self.proxy.health(key).await;
        health["warm_pool"].clone()
    }

    /// Waits until `waiting` CLIs wait and `started` CLIs were started in all.
    async fn until_pool(&self, key: Option<&str>, waiting: u64, started: usize) {
        until(
            &format!("{waiting} CLIs wait in the pool, {started} started in all"),
            FILL_LIMIT,
            || async {
                self.pool(key).await["waiting"] == waiting && self.started().len() == started
            },
        )
        .await;
    }

    /// A whole /agent/stream run as `key`: its CLI's pid and its events.
    async fn run(&self, key: Option<&str>, body: Value) -> (u32, Vec<SseEvent>) {
        let mut request = self.proxy.client.post(self.proxy.url("/agent/stream"));
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        let response = request.json(&body).send().await.unwrap();
        assert_eq!(response.status(), 200, "{:?}", response.text().await);
        let events = SseReader::new(response).collect_all().await;
        let pid = events[0].json()["pid"].as_u64().unwrap() as u32;
        (pid, events)
    }
}

/// The CLI's lines of a run, as JSON.
fn lines(events: &[SseEvent]) -> Vec<Value> {
    events
        .iter()
        .filter(|e| e.event == "message")
        .map(SseEvent::json)
        .collect()
}

fn result_of(events: &[SseEvent]) -> Value {
    lines(events)
        .into_iter()
        .find(|l| l["type"] == "result")
        .expect("a result line")
}

fn init_of(events: &[SseEvent]) -> Value {
    lines(events)
        .into_iter()
        .find(|l| l["subtype"] == "init")
        .expect("an init line")
}

#[tokio::test]
async fn a_pooled_cli_serves_one_conversation_of_one_key() {
    within(TEST_LIMIT, async {
        let keys = format!("{KEY_A},{KEY_B}");
        let pooled = Pooled::start(
            &[("PROXY_API_KEY", keys.as_str())],
            &["--warm-pool", "2", "--warm-shapes", "stream"],
        );
        // One CLI for each key's shape.
        pooled.until_pool(Some(KEY_A), 2, 2).await;
        let warm = pooled.started();

        let (a1, events_a1) = pooled.run(Some(KEY_A), json!({"prompt": "hi"})).await;
        let (b1, events_b1) = pooled.run(Some(KEY_B), json!({"prompt": "hi"})).await;
        assert!(warm.contains(&a1) && warm.contains(&b1), "both were hits");
        assert_ne!(a1, b1, "each key has a CLI of its own");
        let cwd_a = init_of(&events_a1)["cwd"].as_str().unwrap().to_owned();
        let cwd_b = init_of(&events_b1)["cwd"].as_str().unwrap().to_owned();
        assert_ne!(cwd_a, cwd_b, "each started in its key's workspace");

        // However the pool stands now (refilled or not), no later run, of either key, gets a
        // CLI that already served one; every run is its CLI's first turn.
        let mut seen = vec![a1, b1];
        for key in [KEY_A, KEY_B, KEY_A, KEY_B] {
            let (pid, events) = pooled.run(Some(key), json!({"prompt": "hi"})).await;
            assert!(!seen.contains(&pid), "{pid} served a second run");
            seen.push(pid);
            // A pooled CLI's first turn, or a cold one-shot CLI (the pool may pause while
            // runs outrun it).
            let result = result_of(&events)["result"].clone();
            assert!(
                result == "turn 1" || result == "Hello from fake-claude",
                "{result}"
            );
            let cwd = init_of(&events)["cwd"].as_str().unwrap().to_owned();
            assert_eq!(&cwd, if key == KEY_A { &cwd_a } else { &cwd_b });
            assert_eq!(complete_of(&events)["exit_code"], 0);
        }
        for events in [&events_a1, &events_b1] {
            assert_eq!(result_of(events)["result"], "turn 1");
        }
        assert!(
            pooled.pool(Some(KEY_A)).await["hits"].as_u64().unwrap() >= 2,
            "{}",
            pooled.pool(Some(KEY_A)).await
        );
    })
    .await;
}

#[tokio::test]
async fn runs_arriving_together_never_share_a_pooled_cli() {
    within(TEST_LIMIT, async {
        let pooled = Pooled::start(
            &[],
            &[
                "--warm-pool",
                "3",
                "--warm-shapes",
                "stream",
                "--max-agents",
                "64",
            ],
        );
        pooled.until_pool(None, 3, 3).await;
        let runs = futures_util::future::join_all(
            (0..30).map(|_| pooled.run(None, json!({"prompt": "hi"}))),
        )
        .await;
        let mut pids: Vec<u32> = runs.iter().map(|(pid, _)| *pid).collect();
        let mut warm_runs = 0;
        for (_, events) in &runs {
            // A pooled CLI's first turn, or a cold one's answer: never a second turn.
            match result_of(events)["result"].as_str().unwrap() {
                "turn 1" => warm_runs += 1,
                result => assert_eq!(result, "Hello from fake-claude"),
            }
            assert_eq!(complete_of(events)["exit_code"], 0);
        }
        pids.sort_unstable();
        pids.dedup();
        assert_eq!(pids.len(), 30, "each run had a CLI of its own");
        let pool = pooled.pool(None).await;
        assert_eq!(
            pool["hits"].as_u64().unwrap() + pool["misses"].as_u64().unwrap(),
            30
        );
        assert_eq!(pool["hits"], warm_runs, "{pool}");
        assert!(warm_runs >= 3, "{pool}");
    })
    .await;
}

#[tokio::test]
async fn an_interactive_run_keeps_its_pooled_cli_to_itself() {
    within(TEST_LIMIT, async {
        let pooled = Pooled::start(&[], &["--warm-pool", "1", "--warm-shapes", "interactive"]);
        pooled.until_pool(None, 1, 1).await;
        let warm = pooled.started()[0];
        let response = pooled
            .proxy
            .post(
                "/agent/start",
                &json!({"prompt": "first", "interactive": true}),
            )
            .await;
        assert_eq!(response.status(), 200);
        let started: Value = response.json().await.unwrap();
        assert_eq!(started["pid"], warm, "a hit");
        let id = started["agent_id"].as_str().unwrap().to_owned();
        // The pool refills; the conversation goes on in its own CLI.
        pooled.until_pool(None, 1, 2).await;
        let response = pooled
            .proxy
            .post(
                &format!("/agent/{id}/messages"),
                &json!({"content": "second"}),
            )
            .await;
        assert!(
            response.status().is_success(),
            "{:?}",
            response.text().await
        );
        let response = pooled
            .proxy
            .post(
                "/agent/start",
                &json!({"prompt": "another", "interactive": true}),
            )
            .await;
        let other: Value = response.json().await.unwrap();
        assert_eq!(other["pid"], pooled.started()[1], "the refilled one");
        assert_ne!(
            other["pid"], warm,
            "a CLI in a conversation is never handed out again"
        );
        pooled
            .proxy
            .post(&format!("/agent/{id}/close"), &json!({}))
            .await;
        let mut reader = SseReader::new(
            pooled
                .proxy
                .client
                .get(pooled.proxy.url(&format!("/agent/{id}/events")))
                .send()
                .await
                .unwrap(),
        );
        let mut results = Vec::new();
        while let Some(event) = reader.next().await {
            if event.event == "message" && event.json()["type"] == "result" {
                results.push(event.json()["result"].clone());
            }
        }
        assert_eq!(results, ["turn 1", "turn 2"], "two turns, one conversation");
    })
    .await;
}

#[tokio::test]
async fn a_pooled_cli_that_dies_is_replaced() {
    within(TEST_LIMIT, async {
        let pooled = Pooled::start(&[], &["--warm-pool", "1", "--warm-shapes", "stream"]);
        pooled.until_pool(None, 1, 1).await;
        let first = pooled.started()[0];
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(first as i32),
            nix::sys::signal::Signal::SIGKILL,
        )
        .unwrap();
        process_gone(first).await;
        pooled.until_pool(None, 1, 2).await;
        let second = pooled.started()[1];
        assert_ne!(first, second);

        let (pid, events) = pooled.run(None, json!({"prompt": "hi"})).await;
        assert_eq!(pid, second, "the replacement serves the run");
        assert_eq!(result_of(&events)["result"], "turn 1");
        assert_eq!(complete_of(&events)["status"], "completed");
        let metrics = pooled
            .proxy
            .client
            .get(pooled.proxy.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            metrics.contains("claude_proxy_warm_ended_total{reason=\"died\"} 1"),
            "{metrics}"
        );
    })
    .await;
}

#[tokio::test]
async fn shutdown_ends_every_pooled_cli_and_what_it_started() {
    within(TEST_LIMIT, async {
        let mut pooled = Pooled::start(
            &[("FAKE_CLAUDE_GRANDCHILD_AT_START", "1")],
            &["--warm-pool", "2", "--warm-shapes", "stream,interactive"],
        );
        pooled.until_pool(None, 2, 2).await;
        let warm = pooled.started();
        let mut family = Vec::new();
        for pid in &warm {
            until("the CLI has started its grandchild", FILL_LIMIT, || async {
                process_tree(*pid).len() == 2
            })
            .await;
            family.extend(process_tree(*pid));
        }
        assert_eq!(family.len(), 4);
        let exited = pooled.proxy.terminate().await.unwrap();
        assert!(exited.success(), "{exited}");
        for pid in family {
            process_gone(pid).await;
        }
    })
    .await;
}

#[tokio::test]
async fn a_killed_server_takes_its_pooled_clis_and_what_they_started_with_it() {
    within(TEST_LIMIT, async {
        let mut pooled = Pooled::start(
            &[("FAKE_CLAUDE_GRANDCHILD_AT_START", "1")],
            &["--warm-pool", "1", "--warm-shapes", "stream"],
        );
        pooled.until_pool(None, 1, 1).await;
        let warm = pooled.started()[0];
        until("the CLI has started its grandchild", FILL_LIMIT, || async {
            process_tree(warm).len() == 2
        })
        .await;
        let family = process_tree(warm);
        // No shutdown: the watchdog ends them.
        pooled.proxy.signal(nix::sys::signal::Signal::SIGKILL);
        pooled.proxy.exited().await;
        for pid in family {
            process_gone(pid).await;
        }
    })
    .await;
}

#[tokio::test]
async fn a_run_of_another_shape_never_gets_a_pooled_cli() {
    within(TEST_LIMIT, async {
        let pooled = Pooled::start(&[], &["--warm-pool", "1", "--warm-shapes", "stream"]);
        pooled.until_pool(None, 1, 1).await;
        let warm = pooled.started()[0];
        for other in [
            json!({"prompt": "hi", "disallowed_tools": ["Bash"]}),
            json!({"prompt": "hi", "disallowed_tools": ["Bash", "Write"]}),
            json!({"prompt": "hi", "append_system_prompt": "be brief"}),
            json!({"prompt": "hi", "cwd": "sub"}),
            json!({"prompt": "hi", "max_turns": 3}),
            json!({"prompt": "hi", "interactive": true}),
            // Not a shape at all: the session is named when the CLI starts.
            json!({"prompt": "hi", "session_id": "0b6e7a43-5c3e-4a51-9d0f-0b8a3b8f7c11"}),
        ] {
            let response = pooled.proxy.post("/agent/start", &other).await;
            assert_eq!(
                response.status(),
                200,
                "{other}: {:?}",
                response.text().await
            );
            let started: Value = response.json().await.unwrap();
            assert_ne!(started["pid"], warm, "{other} got the pooled CLI");
            assert!(process_alive(warm));
        }
        let pool = pooled.pool(None).await;
        assert_eq!(pool["hits"], 0, "{pool}");
        assert_eq!(
            pool["misses"], 6,
            "a resumed session is not even a miss: {pool}"
        );
        let (pid, events) = pooled.run(None, json!({"prompt": "hi"})).await;
        assert_eq!(pid, warm, "the operator's shape gets it");
        assert_eq!(complete_of(&events)["exit_code"], 0);
    })
    .await;
}

#[tokio::test]
async fn the_pool_learns_the_shapes_of_recent_requests() {
    within(TEST_LIMIT, async {
        let pooled = Pooled::start(&[], &["--warm-pool", "1"]);
        let body = json!({"prompt": "hi", "disallowed_tools": ["Bash"], "model": "opus"});
        let (first, _) = pooled.run(None, body.clone()).await;
        // A miss (nothing was warm), which the pool learns from at once.
        pooled.until_pool(None, 1, 2).await;
        let pool = pooled.pool(None).await;
        assert_eq!(pool["misses"], 1, "{pool}");
        assert_eq!(pool["shapes"][0]["source"], "learned", "{pool}");
        assert_eq!(pool["shapes"][0]["waiting"], 1, "{pool}");
        let learned = *pooled.started().iter().find(|pid| **pid != first).unwrap();

        let (second, events) = pooled.run(None, body).await;
        assert_eq!(second, learned, "a hit");
        let argv = init_of(&events)["argv"].to_string();
        assert!(
            argv.contains("--model=opus") && !argv.contains("\"hi\""),
            "started with the shape's last model, and no prompt: {argv}"
        );
        assert_eq!(result_of(&events)["result"], "turn 1");
    })
    .await;
}

#[tokio::test]
async fn a_cli_that_waits_past_the_idle_time_is_replaced() {
    within(TEST_LIMIT, async {
        let pooled = Pooled::start(
            &[],
            &[
                "--warm-pool",
                "1",
                "--warm-shapes",
                "stream",
                "--warm-idle-secs",
                "0.2",
            ],
        );
        // Each waits 0.2 s: however many have come and gone, three did.
        until("two CLIs were replaced", FILL_LIMIT, || async {
            pooled.started().len() >= 3
        })
        .await;
        let started = pooled.started();
        for pid in &started[..2] {
            process_gone(*pid).await;
        }
        let metrics = pooled
            .proxy
            .client
            .get(pooled.proxy.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            metrics.contains("claude_proxy_warm_ended_total{reason=\"idle\"}"),
            "{metrics}"
        );
    })
    .await;
}

#[tokio::test]
async fn an_agent_takes_the_process_slot_of_a_waiting_cli() {
    within(TEST_LIMIT, async {
        let pooled = Pooled::start(
            &[],
            &[
                "--max-agents",
                "2",
                "--warm-pool",
                "2",
                "--warm-shapes",
                "stream",
            ],
        );
        pooled.until_pool(None, 2, 2).await;
        let warm = pooled.started();
        // Of another shape: a miss, which runs until it is stopped.
        let response = pooled
            .proxy
            .post("/agent/start", &json!({"prompt": "@hang", "max_turns": 3}))
            .await;
        assert_eq!(response.status(), 200);
        let started: Value = response.json().await.unwrap();
        // Its CLI writes down its pid as it starts, maybe after the answer.
        until("the run's CLI started", FILL_LIMIT, || async {
            pooled.started().len() >= 3
        })
        .await;
        assert_eq!(started["pid"], pooled.started()[2]);
        until("one waiting CLI gave its slot", FILL_LIMIT, || async {
            pooled.pool(None).await["waiting"] == 1
        })
        .await;
        until("its process is gone", FILL_LIMIT, || async {
            warm.iter().filter(|pid| process_alive(**pid)).count() == 1
        })
        .await;
        let health = pooled.proxy.health(None).await;
        assert_eq!(health["active_agents"], 1);
        assert_eq!(pooled.started().len(), 3, "no CLI started past the limit");
    })
    .await;
}

#[tokio::test]
async fn a_proxy_started_with_other_settings_hands_out_only_clis_started_with_them() {
    within(TEST_LIMIT, async {
        let mut before = Pooled::start(&[], &["--warm-pool", "1", "--warm-shapes", "stream"]);
        before.until_pool(None, 1, 1).await;
        let old = before.started()[0];
        assert!(before.proxy.terminate().await.unwrap().success());
        process_gone(old).await;

        let after = Pooled::start(
            &[],
            &[
                "--warm-pool",
                "1",
                "--warm-shapes",
                "stream",
                "--disallowed-tools",
                "Bash",
            ],
        );
        after.until_pool(None, 1, 1).await;
        let (pid, events) = after.run(None, json!({"prompt": "hi"})).await;
        assert_eq!(pid, after.started()[0], "a hit");
        let argv = init_of(&events)["argv"].to_string();
        assert!(
            argv.contains("--disallowedTools=Bash"),
            "started with the new settings: {argv}"
        );
    })
    .await;
}

#[tokio::test]
async fn a_pooled_cli_is_told_the_runs_model_and_permission_mode() {
    within(TEST_LIMIT, async {
        let pooled = Pooled::start(&[], &["--warm-pool", "1", "--warm-shapes", "stream"]);
        pooled.until_pool(None, 1, 1).await;
        let warm = pooled.started()[0];
        let (pid, events) = pooled
            .run(
                None,
                json!({"prompt": "hi", "model": "opus", "permission_mode": "plan"}),
            )
            .await;
        assert_eq!(pid, warm, "model and mode are not the shape");
        assert_eq!(init_of(&events)["model"], "opus");
        assert!(
            lines(&events)
                .iter()
                .all(|l| l["type"] != "control_response"),
            "the answers to the proxy's control requests are not the run's events: {events:#?}"
        );
        let argv = init_of(&events)["argv"].to_string();
        assert!(!argv.contains("opus"), "started before the run: {argv}");
    })
    .await;
}

/// The shape of a CLI line: its type, subtype, and which fields it has.
fn shape_of(line: &Value) -> (String, String, Vec<String>) {
    let mut keys: Vec<String> = line
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    keys.sort();
    (
        line["type"].as_str().unwrap_or_default().to_owned(),
        line["subtype"].as_str().unwrap_or_default().to_owned(),
        keys,
    )
}

#[tokio::test]
async fn a_warm_run_of_the_real_cli_has_the_events_of_a_cold_one() {
    within(TEST_LIMIT, async {
        let answer = "The answer is 4.";
        let cold = RealSetup::start([Reply::Text(answer.into())]).await;
        let warm = RealSetup::with_settings(
            [Reply::Text(answer.into())],
            &[("PROXY_WARM_POOL", "1"), ("PROXY_WARM_SHAPES", "stream")],
        )
        .await;
        until("a CLI waits in the pool", FILL_LIMIT, || async {
            warm.proxy.health(None).await["warm_pool"]["waiting"] == 1
        })
        .await;
        let body = json!({"prompt": "What is 2 + 2?"});
        let cold_events = cold.proxy.stream_with(&body).await.collect_all().await;
        let warm_events = warm.proxy.stream_with(&body).await.collect_all().await;
        assert_eq!(
            warm.proxy.health(None).await["warm_pool"]["hits"],
            1,
            "the warm run was a hit"
        );

        let names =
            |events: &[SseEvent]| events.iter().map(|e| e.event.clone()).collect::<Vec<_>>();
        assert_eq!(names(&cold_events), names(&warm_events));
        let cold_lines: Vec<_> = lines(&cold_events).iter().map(shape_of).collect();
        let warm_lines: Vec<_> = lines(&warm_events).iter().map(shape_of).collect();
        assert_eq!(cold_lines, warm_lines, "the same lines, in the same order");
        let (cold_result, warm_result) = (result_of(&cold_events), result_of(&warm_events));
        assert_eq!(cold_result["result"], answer);
        assert_eq!(warm_result["result"], answer);
        assert_eq!(cold_result["is_error"], warm_result["is_error"]);
        let (cold_complete, warm_complete) = (complete_of(&cold_events), complete_of(&warm_events));
        assert_eq!(shape_of(&cold_complete), shape_of(&warm_complete));
        assert_eq!(cold_complete["status"], "completed");
        assert_eq!(warm_complete["status"], "completed");
        assert_eq!(cold_complete["exit_code"], 0);
        assert_eq!(warm_complete["exit_code"], 0);

        let requests = warm.standin.requests();
        assert_eq!(requests.len(), 1, "one request to the API, as cold");
        assert!(
            warm.standin
                .texts_received()
                .iter()
                .any(|t| t == "What is 2 + 2?")
        );
    })
    .await;
}

#[tokio::test]
async fn a_warm_run_of_the_real_cli_is_told_another_model() {
    within(TEST_LIMIT, async {
        let warm = RealSetup::with_settings(
            [Reply::Text("Fine.".into())],
            &[("PROXY_WARM_POOL", "1"), ("PROXY_WARM_SHAPES", "stream")],
        )
        .await;
        until("a CLI waits in the pool", FILL_LIMIT, || async {
            warm.proxy.health(None).await["warm_pool"]["waiting"] == 1
        })
        .await;
        let body = json!({"prompt": "What is 2 + 2?", "model": "claude-sonnet-4-5", "permission_mode": "plan"});
        let events = warm.proxy.stream_with(&body).await.collect_all().await;
        assert_eq!(warm.proxy.health(None).await["warm_pool"]["hits"], 1);
        let lines = lines(&events);
        let kinds: Vec<(&str, &str)> = lines
            .iter()
            .map(|l| {
                (
                    l["type"].as_str().unwrap_or_default(),
                    l["subtype"].as_str().unwrap_or_default(),
                )
            })
            .collect();
        // What the README says differs: the mode's change is a status line of the CLI's own;
        // the answers to the proxy's control requests are not events.
        assert_eq!(
            kinds,
            [
                ("system", "status"),
                ("system", "init"),
                ("assistant", ""),
                ("result", "success")
            ],
            "{lines:#?}"
        );
        assert_eq!(lines[0]["permissionMode"], "plan");
        assert_eq!(lines[1]["model"], "claude-sonnet-4-5");
        assert_eq!(lines[1]["permissionMode"], "plan");
        let complete = complete_of(&events);
        assert_eq!(complete["status"], "completed");
        assert_eq!(complete["exit_code"], 0);
        // set_model makes the CLI send one short request to the new model first.
        let requests = warm.standin.requests();
        let turn = requests
            .iter()
            .find(|r| r["stream"] == true)
            .expect("the run's request");
        assert_eq!(turn["model"], "claude-sonnet-4-5");
        assert!(turn["messages"].to_string().contains("What is 2 + 2?"));
        assert!(
            !turn["messages"].to_string().contains("local-command"),
            "the model's change is not in the conversation"
        );
    })
    .await;
}

#[tokio::test]
async fn a_warm_chat_completion_of_the_real_cli_answers_as_a_cold_one() {
    within(TEST_LIMIT, async {
        let answer = "It is 4.";
        let cold = RealSetup::start([Reply::Text(answer.into())]).await;
        let warm = RealSetup::with_settings(
            [Reply::Text(answer.into())],
            &[("PROXY_WARM_POOL", "1"), ("PROXY_WARM_SHAPES", "chat")],
        )
        .await;
        until("a CLI waits in the pool", FILL_LIMIT, || async {
            warm.proxy.health(None).await["warm_pool"]["waiting"] == 1
        })
        .await;
        let body =
            json!({"model": "sonnet", "messages": [{"role": "user", "content": "What is 2 + 2?"}]});
        let mut answers = Vec::new();
        for setup in [&cold, &warm] {
            let response = setup.proxy.post("/v1/chat/completions", &body).await;
            assert_eq!(response.status(), 200);
            let completion: Value = response.json().await.unwrap();
            answers.push(completion);
        }
        assert_eq!(warm.proxy.health(None).await["warm_pool"]["hits"], 1);
        for completion in &answers {
            assert_eq!(completion["choices"][0]["message"]["content"], answer);
            assert_eq!(completion["choices"][0]["finish_reason"], "stop");
        }
        let turn = |setup: &RealSetup| {
            let requests = setup.standin.requests();
            assert_eq!(requests.len(), 1, "only the run's request");
            let request = requests[0].clone();
            (
                request["model"].clone(),
                request["system"].to_string(),
                request["tools"].clone(),
            )
        };
        assert_eq!(
            turn(&cold),
            turn(&warm),
            "the same model, system prompt and tools"
        );
    })
    .await;
}

#[tokio::test]
async fn the_dashboard_shows_the_pool() {
    within(TEST_LIMIT, async {
        let pooled = Pooled::start(&[], &["--warm-pool", "2", "--warm-shapes", "stream"]);
        pooled.until_pool(None, 2, 2).await;
        pooled.run(None, json!({"prompt": "hi"})).await;
        pooled.until_pool(None, 2, 3).await;
        let dom = crate::support::rendered_dom(&pooled.proxy.url("/ui"), 10_000).await;
        assert!(
            dom.contains(
                r#"<span id="server-warm-pool" class="value">2 / 2 waiting (1 shape)</span>"#
            ),
            "{dom}"
        );
        assert!(
            dom.contains(r#"<span id="server-warm-hits" class="value">1 of 1 runs served warm"#),
            "{dom}"
        );
    })
    .await;
}
