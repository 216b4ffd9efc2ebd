//! Webhooks: an agent's events POSTed, signed, to a receiver inside the test that fails the
//! first attempts; the allowlist that keeps the proxy from calling other addresses; and an
//! event still pending at a shutdown delivered after the restart.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use tokio::sync::mpsc;

use crate::support::postgres::{TestDatabase, off_the_runtime};
use crate::support::proxy::Proxy;
use crate::support::{FakeInstall, SseReader, TEST_LIMIT, TestServer, until, within};

const SECRET: &str = "a-webhook-secret-of-the-tests";

/// One request the receiver got, and what it answered.
#[derive(Debug, Clone)]
struct Received {
    event: String,
    delivery: String,
    signature: String,
    body: Bytes,
    answered: u16,
}

impl Received {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

#[derive(Clone)]
struct Receiver {
    /// Requests answered 500 before the first 200.
    failures_left: Arc<AtomicUsize>,
    seen: mpsc::Sender<Received>,
}

/// A receiver on 127.0.0.1 that answers the first `failures` requests 500, then 200; each
/// request goes to the channel. Its base URL and the channel.
async fn receiver(failures: usize) -> (String, Arc<AtomicUsize>, mpsc::Receiver<Received>) {
    let (seen, received) = mpsc::channel(64);
    let failures_left = Arc::new(AtomicUsize::new(failures));
    let state = Receiver {
        failures_left: Arc::clone(&failures_left),
        seen,
    };
    let app = axum::Router::new()
        .route("/hooks/{*rest}", axum::routing::post(receive))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, failures_left, received)
}

async fn receive(State(receiver): State<Receiver>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let fail = receiver
        .failures_left
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    let status = match fail {
        true => StatusCode::INTERNAL_SERVER_ERROR,
        false => StatusCode::OK,
    };
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let _ = receiver
        .seen
        .send(Received {
            event: header("x-claude-proxy-event"),
            delivery: header("x-claude-proxy-delivery"),
            signature: header("x-claude-proxy-signature"),
            body,
            answered: status.as_u16(),
        })
        .await;
    status
}

/// The README's Node.js check of a signature, run on what the receiver got.
async fn readme_verifies(received: &Received) -> bool {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let snippet = readme
        .split("```js\n")
        .skip(1)
        .map(|rest| rest.split("```").next().unwrap())
        .find(|block| block.contains("export function verify("))
        .expect("the README's verification snippet");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("verify.mjs"), snippet).unwrap();
    let output = tokio::process::Command::new("node")
        .current_dir(dir.path())
        .args([
            "--input-type=module",
            "-e",
            "import { verify } from './verify.mjs'; \
             console.log(verify(process.env.SECRET, process.env.HEADER, process.env.BODY));",
        ])
        .env("SECRET", SECRET)
        .env("HEADER", &received.signature)
        .env("BODY", std::str::from_utf8(&received.body).unwrap())
        .output()
        .await
        .expect("node runs");
    assert!(output.status.success(), "{output:?}");
    String::from_utf8_lossy(&output.stdout).trim() == "true"
}

/// The next request the receiver got.
async fn next(received: &mut mpsc::Receiver<Received>) -> Received {
    received.recv().await.expect("the receiver runs")
}

/// The signature checked as the README's snippet does: HMAC-SHA256 of `<t>.<body>`.
fn assert_signed(received: &Received) {
    let (t, v1) = received
        .signature
        .split_once(',')
        .and_then(|(t, v1)| Some((t.strip_prefix("t=")?, v1.strip_prefix("v1=")?)))
        .unwrap_or_else(|| panic!("a signature header: {:?}", received.signature));
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(t.as_bytes());
    mac.update(b".");
    mac.update(&received.body);
    let expected: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(v1, expected, "the signature of {received:?}");
}

fn webhook_flags(allowed: &str) -> Vec<String> {
    vec![
        "--webhook-urls".into(),
        allowed.into(),
        "--webhook-secret".into(),
        SECRET.into(),
        "--webhook-retry-base-ms".into(),
        "20".into(),
    ]
}

async fn server(flags: &[String]) -> TestServer {
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    TestServer::with_args(&flags).await
}

/// The agent's detail once its webhook events are in the state `state`.
async fn detail_once(server: &TestServer, id: &str, state: &str) -> Value {
    let path = format!("/agent/{id}");
    let reached = |detail: &Value| {
        detail["webhooks"]
            .as_array()
            .is_some_and(|w| !w.is_empty() && w.iter().all(|d| d["state"] == state))
    };
    until(
        &format!("the agent's webhook events to be {state}"),
        TEST_LIMIT,
        || {
            let request = server.get(&path);
            async move { reached(&request.await.json().await.unwrap()) }
        },
    )
    .await;
    // A state it reached, it keeps.
    server.get(&path).await.json().await.unwrap()
}

#[tokio::test]
async fn a_completed_agent_is_posted_signed_after_the_receivers_failures() {
    within(TEST_LIMIT, async {
        let (url, _, mut received) = receiver(2).await;
        let server = server(&webhook_flags(&format!("{url}/hooks/"))).await;
        let started: Value = server
            .post_json(
                "/agent/start",
                json!({"prompt": "@result all done", "webhook": format!("{url}/hooks/build/1")}),
            )
            .await
            .json()
            .await
            .unwrap();
        let id = started["agent_id"].as_str().unwrap().to_owned();

        let first = next(&mut received).await;
        let second = next(&mut received).await;
        let third = next(&mut received).await;
        assert_eq!(
            [first.answered, second.answered, third.answered],
            [500, 500, 200]
        );
        for attempt in [&first, &second, &third] {
            assert_eq!(attempt.event, "agent.completed");
            assert_eq!(attempt.delivery, first.delivery, "one event, tried again");
            assert_signed(attempt);
        }
        assert!(
            readme_verifies(&third).await,
            "the README's snippet accepts it"
        );
        let mut forged = third.clone();
        forged.body = Bytes::from(String::from_utf8_lossy(&third.body).replace("done", "fine"));
        assert!(
            !readme_verifies(&forged).await,
            "and refuses a changed body"
        );
        let event = third.json();
        assert_eq!(event["type"], "agent.completed");
        assert_eq!(event["id"], first.delivery);
        assert_eq!(event["data"]["agent_id"], id);
        assert_eq!(event["data"]["status"], "completed");
        assert_eq!(event["data"]["result"]["text"], "all done");
        assert_eq!(event["data"]["result"]["exit_code"], 0);
        assert!(event["data"]["usage"].is_array());

        let detail = detail_once(&server, &id, "delivered").await;
        let delivery = &detail["webhooks"][0];
        assert_eq!(delivery["event"], "agent.completed");
        assert_eq!(delivery["id"], first.delivery);
        assert_eq!(delivery["attempts"], 3);
        assert_eq!(delivery["last_status"], 200);

        // And the dashboard's agent page shows it.
        let dom =
            crate::support::rendered_dom(&server.url(&format!("/ui#/agent/{id}")), 10_000).await;
        let shown = dom
            .split(r#"<li class="webhook webhook-delivered""#)
            .nth(1)
            .unwrap_or_else(|| panic!("a delivered webhook event on the page:\n{dom}"));
        assert!(
            shown[..shown.find("</li>").unwrap()].contains("agent.completed"),
            "{shown}"
        );
    })
    .await;
}

#[tokio::test]
async fn a_url_not_allowed_is_refused_and_nothing_runs() {
    within(TEST_LIMIT, async {
        let (url, _, _received) = receiver(0).await;
        let server = server(&webhook_flags(&format!("{url}/hooks/"))).await;
        for (path, webhook) in [
            ("/agent/start", "http://127.0.0.1:1/hooks/x".to_owned()),
            ("/agent/stream", format!("{url}/other")),
            ("/agent/start", format!("{url}/hooks/../admin")),
        ] {
            let response = server
                .post_json(path, json!({"prompt": "hi", "webhook": webhook}))
                .await;
            assert_eq!(response.status(), 403, "{path} {webhook}");
            let body: Value = response.json().await.unwrap();
            assert!(
                body["detail"]
                    .as_str()
                    .unwrap()
                    .contains("PROXY_WEBHOOK_URLS"),
                "{body}"
            );
        }
        let response = server
            .post_json(
                "/agent/start",
                json!({"prompt": "hi", "webhook": "not a url"}),
            )
            .await;
        assert_eq!(response.status(), 422);
        assert_eq!(server.fake.runs(), 0, "no CLI was started");
    })
    .await;
}

#[tokio::test]
async fn webhooks_are_refused_where_the_operator_set_none() {
    within(TEST_LIMIT, async {
        let server = TestServer::start().await;
        let response = server
            .post_json(
                "/agent/start",
                json!({"prompt": "hi", "webhook": "http://127.0.0.1:1/hooks/x"}),
            )
            .await;
        assert_eq!(response.status(), 403);
        assert_eq!(server.fake.runs(), 0);
    })
    .await;
}

#[tokio::test]
async fn a_failing_cli_is_posted_to_the_operators_url_as_agent_failed() {
    within(TEST_LIMIT, async {
        let (url, _, mut received) = receiver(0).await;
        let hook = format!("{url}/hooks/all");
        let server = server(&[
            "--webhook-url".into(),
            hook,
            "--webhook-secret".into(),
            SECRET.into(),
        ])
        .await;
        let (id, _) = server.start_agent("@exit 3").await;
        let event = next(&mut received).await;
        assert_eq!(event.event, "agent.failed");
        assert_signed(&event);
        let body = event.json();
        assert_eq!(body["data"]["agent_id"], id);
        assert_eq!(body["data"]["status"], "failed");
        assert_eq!(body["data"]["result"]["exit_code"], 3);
        detail_once(&server, &id, "delivered").await;
    })
    .await;
}

#[tokio::test]
async fn an_approval_the_agent_waits_for_is_posted() {
    within(TEST_LIMIT, async {
        let (url, _, mut received) = receiver(0).await;
        let mut flags = webhook_flags(&format!("{url}/hooks/"));
        flags.extend(["--client-approvals".into(), "true".into()]);
        let server = server(&flags).await;
        let response = server
            .post_json(
                "/agent/stream",
                json!({
                    "prompt": "@ask Bash", "interactive": true, "approvals": true,
                    "webhook": format!("{url}/hooks/approvals"),
                }),
            )
            .await;
        let mut reader = SseReader::new(response);
        let id = reader.next_of("agent").await.json()["agent_id"]
            .as_str()
            .unwrap()
            .to_owned();
        let asked = reader.next_of("permission_request").await.json();
        let event = next(&mut received).await;
        assert_eq!(event.event, "permission.requested");
        assert_signed(&event);
        let body = event.json();
        assert_eq!(body["data"]["agent_id"], id);
        assert_eq!(body["data"]["status"], "running");
        assert_eq!(body["data"]["permission"]["tool_name"], "Bash");
        assert_eq!(
            body["data"]["permission"]["request_id"],
            asked["request_id"]
        );
        server.stop(&id).await;
        // Its end is an event too: stopped is not completed.
        let ended = next(&mut received).await;
        assert_eq!(ended.event, "agent.failed");
        assert_eq!(ended.json()["data"]["status"], "stopped");
    })
    .await;
}

#[tokio::test]
async fn an_event_pending_at_a_shutdown_is_delivered_after_the_restart() {
    pending_at_a_shutdown_is_delivered_later(None).await;
}

/// On PostgreSQL, by another instance: the one that made the event is gone.
#[tokio::test]
async fn an_event_one_instance_left_pending_is_delivered_by_another_on_postgresql() {
    pending_at_a_shutdown_is_delivered_later(Some(TestDatabase::new())).await;
}

/// The proxies of one store, each the binary with the fake CLI: on SQLite, each start is the
/// same program on the same data dir; on PostgreSQL, each is an instance of its own (one silent
/// for 2 s is taken over).
struct Site {
    fake: FakeInstall,
    database: Option<TestDatabase>,
    /// The receiver's URLs, allowed.
    allowed: String,
    retry_base_ms: &'static str,
}

impl Site {
    fn new(receiver: &str, database: Option<TestDatabase>, retry_base_ms: &'static str) -> Self {
        Self {
            fake: FakeInstall::new(),
            database,
            allowed: format!("{receiver}/hooks/"),
            retry_base_ms,
        }
    }

    fn data_dir(&self) -> std::path::PathBuf {
        self.fake.dir.path().join("data")
    }

    fn start(&self, instance: &str) -> Proxy {
        let mut env = vec![
            (
                "CLAUDE_CLI_PATH",
                self.fake.cli_path().display().to_string(),
            ),
            (
                "CLAUDE_WORKDIR",
                self.fake.dir.path().join("work").display().to_string(),
            ),
            ("PROXY_DATA_DIR", self.data_dir().display().to_string()),
            ("PROXY_WEBHOOK_URLS", self.allowed.clone()),
            ("PROXY_WEBHOOK_SECRET", SECRET.to_owned()),
            ("PROXY_WEBHOOK_RETRY_BASE_MS", self.retry_base_ms.to_owned()),
        ];
        if let Some(database) = &self.database {
            env.push(("PROXY_DATABASE_URL", database.url()));
            env.push(("PROXY_INSTANCE_ID", instance.to_owned()));
            env.push(("PROXY_INSTANCE_TIMEOUT_SECS", "2".to_owned()));
        }
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        Proxy::start(self.fake.dir.path(), &env)
    }
}

/// Starts an agent in the background with `webhook`; its id.
async fn start_agent(proxy: &Proxy, prompt: &str, webhook: &str) -> String {
    let started: Value = proxy
        .post(
            "/agent/start",
            &json!({"prompt": prompt, "webhook": webhook}),
        )
        .await
        .json()
        .await
        .unwrap();
    started["agent_id"].as_str().unwrap().to_owned()
}

/// An event refused while its proxy runs, then the proxy stopped: the next one started on the
/// same store (the same program and data dir on SQLite; another instance on PostgreSQL)
/// delivers it.
async fn pending_at_a_shutdown_is_delivered_later(database: Option<TestDatabase>) {
    within(TEST_LIMIT, async {
        let (url, failures_left, mut received) = receiver(usize::MAX).await;
        // Long enough that the event is still pending when the proxy is stopped.
        let site = Site::new(&url, database, "2000");
        let start = |instance| site.start(instance);
        let mut proxy = start("a");
        let id = start_agent(&proxy, "@result kept", &format!("{url}/hooks/r")).await;
        let refused = next(&mut received).await;
        assert_eq!(
            (refused.event.as_str(), refused.answered),
            ("agent.completed", 500)
        );
        let status = proxy.terminate().await.unwrap();
        assert!(status.success(), "{status}");

        failures_left.store(0, Ordering::SeqCst);
        let proxy = start("b");
        let delivered = loop {
            let attempt = next(&mut received).await;
            if attempt.answered == 200 {
                break attempt;
            }
        };
        assert_eq!(delivered.delivery, refused.delivery, "the same event");
        assert_signed(&delivered);
        let path = format!("/agent/{id}");
        until("the event to show as delivered", TEST_LIMIT, || {
            let request = proxy.get(&path);
            async move {
                let detail: Value = request.await.json().await.unwrap();
                detail["webhooks"][0]["state"] == "delivered"
            }
        })
        .await;
    })
    .await;
}

#[tokio::test]
async fn an_agent_whose_proxy_was_killed_is_posted_as_failed_by_the_next_start() {
    killed_agent_is_posted_by_whoever_ends_it(None).await;
}

/// On PostgreSQL, by the other instance, once it finds the killed one silent.
#[tokio::test]
async fn an_agent_whose_instance_was_killed_is_posted_as_failed_by_another_on_postgresql() {
    killed_agent_is_posted_by_whoever_ends_it(Some(TestDatabase::new())).await;
}

/// An agent running when its proxy is killed (no chance to post anything): whoever records its
/// end (the next start on the same SQLite data dir; on PostgreSQL, another instance that finds
/// the killed one silent) posts its `agent.failed`, signed, to the URL it was started with.
async fn killed_agent_is_posted_by_whoever_ends_it(database: Option<TestDatabase>) {
    within(TEST_LIMIT, async {
        let (url, _, mut received) = receiver(0).await;
        let site = Site::new(&url, database, "20");
        let start = |instance| site.start(instance);
        let mut killed = start("a");
        // On PostgreSQL the other instance runs all along, and takes over when `a` falls silent.
        let other = site.database.as_ref().map(|_| start("b"));
        let id = start_agent(&killed, "@hang", &format!("{url}/hooks/crashed")).await;
        // Its record, with where its events go, is in the store before the kill.
        let stored = |webhook: Option<String>| webhook.is_some_and(|w| w.ends_with("/crashed"));
        match &site.database {
            None => {
                let file = site.data_dir().join("claude-proxy.db");
                until("the agent's record in the store", TEST_LIMIT, || {
                    let found = rusqlite::Connection::open(&file).ok().and_then(|db| {
                        db.query_row(
                            "SELECT webhook_url FROM agents WHERE agent_id = ?1",
                            [&id],
                            |row| row.get::<_, Option<String>>(0),
                        )
                        .ok()
                        .flatten()
                    });
                    async move { stored(found) }
                })
                .await;
            }
            Some(database) => {
                let db = Arc::new(std::sync::Mutex::new(database.connect()));
                until("the agent's record in the store", TEST_LIMIT, || {
                    let (db, id) = (Arc::clone(&db), id.clone());
                    let found = off_the_runtime(move || {
                        let mut db = db.lock().unwrap();
                        db.query_opt("SELECT webhook_url FROM agents WHERE agent_id = $1", &[&id])
                            .ok()
                            .flatten()
                            .and_then(|row| row.get::<_, Option<String>>(0))
                    });
                    async move { stored(found) }
                })
                .await;
                // The blocking client ends off the runtime too.
                off_the_runtime(move || drop(db));
            }
        }
        killed.signal(nix::sys::signal::Signal::SIGKILL);
        killed.exited().await;

        let ending = match other {
            Some(other) => other,
            None => start("a"),
        };
        let posted = next(&mut received).await;
        assert_eq!(posted.event, "agent.failed", "{posted:?}");
        assert_signed(&posted);
        let body = posted.json();
        assert_eq!(body["type"], "agent.failed", "{body}");
        assert_eq!(body["data"]["agent_id"], id.as_str(), "{body}");
        assert_eq!(body["data"]["status"], "stopped", "{body}");
        let path = format!("/agent/{id}");
        until("the event to show as delivered", TEST_LIMIT, || {
            let request = ending.get(&path);
            async move {
                let detail: Value = request.await.json().await.unwrap();
                detail["status"] == "stopped" && detail["webhooks"][0]["state"] == "delivered"
            }
        })
        .await;
    })
    .await;
}
