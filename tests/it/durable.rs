//! Nothing lost on restart: agents, results, events and session owners kept in the database,
//! through the real binary, stopped gracefully, killed, and on a full disk. Each test of what
//! is kept runs on both engines: SQLite in the data dir, and PostgreSQL.

use crate::support;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::support::postgres::TestDatabase;
use crate::support::proxy::{Proxy, command};
use crate::support::sse::{complete_of, error_codes};
use crate::support::{FakeInstall, SseEvent, SseReader, TEST_LIMIT, until, within};
use nix::sys::signal::Signal;
use serde_json::{Value, json};

/// Where a site keeps its agents.
enum Engine {
    /// The default: a file in the data dir.
    Sqlite,
    /// A database of the test's own; the proxy has the same instance id at every start, so it
    /// ends what it left running as SQLite's only instance does.
    Postgres(TestDatabase),
}

/// Runs each test named on both engines, as `NAME::sqlite` and `NAME::postgres`.
macro_rules! on_both_engines {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test]
            async fn sqlite() {
                super::$name(super::Engine::Sqlite).await
            }
            #[tokio::test]
            async fn postgres() {
                super::$name(super::Engine::Postgres(super::TestDatabase::new())).await
            }
        }
    )*};
}

on_both_engines!(
    agents_results_and_events_are_read_back_whole_after_a_restart,
    an_agent_running_at_a_graceful_shutdown_is_kept_stopped,
    an_agent_running_when_the_proxy_is_killed_is_interrupted_and_nothing_older_is_lost,
    a_killed_agent_counts_the_events_it_has_and_those_lost_and_its_time_ends_at_the_kill,
    session_owners_survive_a_restart_and_unknown_sessions_are_nobodys,
    retention_by_count_and_time_holds_for_what_was_kept,
);

/// A proxy's home: its fake CLI, its workspace, its data dir and its database, kept across
/// restarts.
struct Site {
    fake: FakeInstall,
    work: PathBuf,
    data: PathBuf,
    engine: Engine,
}

impl Site {
    fn new(engine: Engine) -> Self {
        let fake = FakeInstall::new();
        let work = fake.dir.path().join("work");
        let data = fake.dir.path().join("data");
        Self {
            fake,
            work,
            data,
            engine,
        }
    }

    fn env(&self) -> Vec<(String, String)> {
        let mut env = match &self.engine {
            Engine::Sqlite => vec![],
            Engine::Postgres(database) => vec![
                ("PROXY_DATABASE_URL".into(), database.url()),
                ("PROXY_INSTANCE_ID".into(), "the-only-one".into()),
            ],
        };
        env.extend([
            (
                "CLAUDE_CLI_PATH".into(),
                self.fake.cli_path().display().to_string(),
            ),
            ("CLAUDE_WORKDIR".into(), self.work.display().to_string()),
            ("PROXY_DATA_DIR".into(), self.data.display().to_string()),
            ("PROXY_STOP_GRACE_SECS".into(), "1".into()),
        ]);
        env
    }

    fn start(&self, extra: &[(&str, &str)]) -> Proxy {
        self.start_in(&[], extra)
    }

    fn start_in(&self, wrapper: &[&str], extra: &[(&str, &str)]) -> Proxy {
        let env = self.env();
        let mut all: Vec<(&str, &str)> =
            env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        all.extend_from_slice(extra);
        Proxy::launch_in(wrapper, self.fake.dir.path(), &all, &[])
    }

    fn database(&self) -> PathBuf {
        self.data.join("claude-proxy.db")
    }
}

async fn get(proxy: &Proxy, path: &str) -> (u16, Value) {
    let response = proxy.client.get(proxy.url(path)).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn events(proxy: &Proxy, id: &str, last_event_id: Option<u64>) -> Vec<SseEvent> {
    let mut request = proxy.client.get(proxy.url(&format!("/agent/{id}/events")));
    if let Some(last) = last_event_id {
        request = request.header("last-event-id", last.to_string());
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 200, "events of {id}");
    SseReader::new(response).collect_all().await
}

/// Stops the proxy as `docker stop` does and waits for it to exit cleanly.
async fn stop(proxy: &mut Proxy) {
    let status = proxy.terminate().await.unwrap();
    assert!(status.success(), "{status}");
}

/// What of an agent's record must read back the same after a restart.
fn kept_fields(agent: &Value) -> Value {
    let mut kept = agent.clone();
    // The pid of a CLI long gone is kept too; nothing here changes but for these.
    kept.as_object_mut().unwrap().remove("pending_permissions");
    kept
}

async fn agents_results_and_events_are_read_back_whole_after_a_restart(engine: Engine) {
    within(TEST_LIMIT, async {
        let site = Site::new(engine);
        let mut proxy = site.start(&[]);
        let streamed = proxy
            .stream("@lines 50 300\n@result the first answer")
            .await
            .collect_all()
            .await;
        assert_eq!(complete_of(&streamed)["status"], "completed");
        let first = streamed[0].json()["agent_id"].as_str().unwrap().to_owned();
        let response = proxy
            .post("/agent/start", &json!({"prompt": "@exit 3"}))
            .await;
        let second = response.json::<Value>().await.unwrap()["agent_id"]
            .as_str()
            .unwrap()
            .to_owned();
        let failed = events(&proxy, &second, None).await;
        assert_eq!(complete_of(&failed)["status"], "failed");

        let (_, list) = get(&proxy, "/agents").await;
        let (_, first_detail) = get(&proxy, &format!("/agent/{first}")).await;
        let (_, second_detail) = get(&proxy, &format!("/agent/{second}")).await;
        assert_eq!(first_detail["result"]["result"], "the first answer");
        stop(&mut proxy).await;

        let proxy = site.start(&[]);
        let (status, list_again) = get(&proxy, "/agents").await;
        assert_eq!(status, 200);
        assert_eq!(
            list_again, list,
            "the same agents, in the same order, as they were"
        );
        for (id, before) in [(&first, &first_detail), (&second, &second_detail)] {
            let (status, after) = get(&proxy, &format!("/agent/{id}")).await;
            assert_eq!(status, 200);
            assert_eq!(kept_fields(&after), kept_fields(before));
        }
        assert_eq!(
            events(&proxy, &first, None).await,
            streamed,
            "every event, byte for byte"
        );
        assert_eq!(events(&proxy, &second, None).await, failed);
        let rest = events(&proxy, &first, Some(20)).await;
        assert_eq!(rest, streamed[20..], "picked up after event 20");
    })
    .await;
}

async fn an_agent_running_at_a_graceful_shutdown_is_kept_stopped(engine: Engine) {
    within(TEST_LIMIT, async {
        let site = Site::new(engine);
        let mut proxy = site.start(&[]);
        let response = proxy
            .post("/agent/start", &json!({"prompt": "@text working\n@hang"}))
            .await;
        let id = response.json::<Value>().await.unwrap()["agent_id"]
            .as_str()
            .unwrap()
            .to_owned();
        until("the agent is at work", TEST_LIMIT, || async {
            get(&proxy, &format!("/agent/{id}")).await.1["events"].as_u64() >= Some(3)
        })
        .await;
        stop(&mut proxy).await;

        let proxy = site.start(&[]);
        let kept = events(&proxy, &id, None).await;
        assert_eq!(error_codes(&kept), ["shutdown"]);
        assert_eq!(complete_of(&kept)["status"], "stopped");
        assert_eq!(
            get(&proxy, &format!("/agent/{id}")).await.1["status"],
            "stopped"
        );
    })
    .await;
}

async fn an_agent_running_when_the_proxy_is_killed_is_interrupted_and_nothing_older_is_lost(
    engine: Engine,
) {
    within(TEST_LIMIT, async {
        let site = Site::new(engine);
        let mut proxy = site.start(&[]);
        let mut reader = proxy
            .stream_with(&json!({"prompt": "@lines 100000 200 10", "detach_on_disconnect": true}))
            .await;
        let started = Instant::now();
        let mut received: Vec<(SseEvent, Instant)> = Vec::new();
        while started.elapsed() < Duration::from_millis(2500) {
            let event = reader.next().await.unwrap();
            received.push((event, Instant::now()));
        }
        proxy.signal(Signal::SIGKILL);
        let killed = Instant::now();
        proxy.exited().await;
        drop(reader);
        let id = received[0].0.json()["agent_id"]
            .as_str()
            .unwrap()
            .to_owned();

        let proxy = site.start(&[]);
        let kept = events(&proxy, &id, None).await;
        let old_enough: Vec<&SseEvent> = received
            .iter()
            .filter(|(_, at)| *at + Duration::from_secs(1) < killed)
            .map(|(event, _)| event)
            .collect();
        assert!(
            old_enough.len() > 50,
            "{} events over a second old",
            old_enough.len()
        );
        for event in old_enough {
            assert!(
                kept.contains(event),
                "event {} was received over a second before the kill, and is lost",
                event.id_number()
            );
        }
        let last_kept = &kept[kept.len() - 3..];
        assert_eq!(last_kept[0].event, "gap", "what the kill lost is a gap");
        assert_eq!(last_kept[1].json()["code"], "interrupted");
        assert_eq!(complete_of(&kept)["status"], "stopped");
        assert_eq!(
            get(&proxy, &format!("/agent/{id}")).await.1["status"],
            "stopped"
        );

        // A client that reconnects with the last id it got gets the gap and the end, however
        // far it got before the kill.
        let last_seen = received.last().unwrap().0.id_number();
        let rest = events(&proxy, &id, Some(last_seen)).await;
        assert_eq!(rest.len(), 3, "{rest:#?}");
        assert_eq!(rest[0].event, "gap");
        assert_eq!(rest[0].json()["from"], last_seen + 1);
        assert_eq!(rest[1].json()["code"], "interrupted");
        assert!(rest[1].id_number() > last_seen);
        assert_eq!(rest[2].event, "complete");

        if let Engine::Sqlite = site.engine {
            let db = rusqlite::Connection::open(site.database()).unwrap();
            let check: String = db
                .query_row("PRAGMA integrity_check", [], |row| row.get(0))
                .unwrap();
            assert_eq!(check, "ok");
        }
    })
    .await;
}

async fn a_killed_agent_counts_the_events_it_has_and_those_lost_and_its_time_ends_at_the_kill(
    engine: Engine,
) {
    within(TEST_LIMIT, async {
        let site = Site::new(engine);
        let mut proxy = site.start(&[]);
        let mut reader = proxy
            .stream_with(
                &json!({"prompt": "@lines 40 100 10\n@hang", "detach_on_disconnect": true}),
            )
            .await;
        let id = reader.next().await.unwrap().json()["agent_id"]
            .as_str()
            .unwrap()
            .to_owned();
        let mut lines = 0;
        while lines < 40 {
            if reader.next().await.unwrap().kind() == "assistant" {
                lines += 1;
            }
        }
        proxy.signal(Signal::SIGKILL);
        proxy.exited().await;
        let killed = chrono::Utc::now();
        drop(reader);

        let proxy = site.start(&[]);
        let all = events(&proxy, &id, None).await;
        let (gaps, readable): (Vec<&SseEvent>, Vec<&SseEvent>) =
            all.iter().partition(|e| e.event == "gap");
        let lost: u64 = gaps
            .iter()
            .map(|gap| {
                gap.json()["to"].as_u64().unwrap() - gap.json()["from"].as_u64().unwrap() + 1
            })
            .sum();
        assert!(!gaps.is_empty(), "the kill is a gap: {all:#?}");
        let (_, agent) = get(&proxy, &format!("/agent/{id}")).await;
        assert_eq!(
            (&agent["events"], &agent["dropped_events"]),
            (&json!(readable.len()), &json!(lost)),
            "events are those a reader gets, dropped_events the ids its gaps skip: {agent:#}"
        );

        // Its time ends when the killed proxy last wrote of it, not at the restart.
        let started: chrono::DateTime<chrono::Utc> =
            agent["started_at"].as_str().unwrap().parse().unwrap();
        let duration_ms = complete_of(&all)["duration_ms"].as_i64().unwrap();
        let ended = started + chrono::Duration::milliseconds(duration_ms);
        assert!(
            ended <= killed,
            "complete says the agent ran until {ended}, after the kill at {killed}"
        );

        // Past its last event, read back from the store, there is nothing to wait for.
        let last = all.last().unwrap().id_number();
        let response = proxy
            .client
            .get(proxy.url(&format!("/agent/{id}/events?after={}", last + 1)))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 416);
        let detail = response.json::<Value>().await.unwrap()["detail"].clone();
        assert!(
            detail.as_str().unwrap().starts_with(&format!(
                "after {} is past the last event, {last}",
                last + 1
            )),
            "{detail}"
        );
    })
    .await;
}

async fn session_owners_survive_a_restart_and_unknown_sessions_are_nobodys(engine: Engine) {
    within(TEST_LIMIT, async {
        let keys = "owner-key-0123456789,other-key-0123456789";
        let site = Site::new(engine);
        let mut proxy = site.start(&[("PROXY_API_KEY", keys)]);
        let events = proxy.stream("hi").await.collect_all().await;
        let session = events.iter().find(|e| e.kind() == "result").unwrap().json()["session_id"]
            .as_str()
            .unwrap()
            .to_owned();
        stop(&mut proxy).await;

        let proxy = site.start(&[("PROXY_API_KEY", keys)]);
        let resume = |key: &'static str, session: String| {
            let request = proxy
                .client
                .post(proxy.url("/agent/stream"))
                .bearer_auth(key)
                .json(&json!({"prompt": "again", "session_id": session}));
            async move {
                let response = request.send().await.unwrap();
                let status = response.status().as_u16();
                // To its end: the CLI it ran has started (and is counted) by then.
                let _ = response.bytes().await;
                status
            }
        };
        assert_eq!(resume("other-key-0123456789", session.clone()).await, 403);
        assert_eq!(resume("owner-key-0123456789", session).await, 200);
        let unknown = uuid::Uuid::new_v4().to_string();
        assert_eq!(resume("owner-key-0123456789", unknown).await, 403);
        assert_eq!(site.fake.runs(), 2, "the refused ones spawned nothing");
    })
    .await;
}

async fn retention_by_count_and_time_holds_for_what_was_kept(engine: Engine) {
    within(TEST_LIMIT, async {
        let site = Site::new(engine);
        let by_count = [("PROXY_MAX_FINISHED_AGENTS", "2")];
        let mut proxy = site.start(&by_count);
        let mut ids = Vec::new();
        for n in 0..3 {
            let events = proxy
                .stream(&format!("@result answer {n}"))
                .await
                .collect_all()
                .await;
            ids.push(events[0].json()["agent_id"].as_str().unwrap().to_owned());
        }
        stop(&mut proxy).await;
        let mut proxy = site.start(&by_count);
        let (_, list) = get(&proxy, "/agents").await;
        let listed: Vec<&str> = list["agents"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["agent_id"].as_str().unwrap())
            .collect();
        assert_eq!(listed, [&ids[1][..], &ids[2][..]], "the two newest");
        stop(&mut proxy).await;

        let proxy = site.start(&[("PROXY_AGENT_RETENTION_SECS", "1")]);
        until(
            "the kept agents are past their time",
            Duration::from_secs(10),
            || async { get(&proxy, "/agents").await.1["agents"] == json!([]) },
        )
        .await;
        assert_eq!(get(&proxy, &format!("/agent/{}", ids[2])).await.0, 404);
    })
    .await;
}

#[tokio::test]
async fn streams_go_on_when_the_disk_is_full_and_health_says_so() {
    within(TEST_LIMIT, async {
        let site = Site::new(Engine::Sqlite);
        // The data dir on a tmpfs of 512 KiB, in a mount namespace of the proxy's own (the
        // mapping to root lets a user who is not root mount it too).
        let script = r#"mkdir -p "$PROXY_DATA_DIR" && mount -t tmpfs -o size=512k tmpfs "$PROXY_DATA_DIR" && exec "$0" "$@""#;
        let wrapper = ["unshare", "--mount", "--map-root-user", "sh", "-c", script];
        let proxy = site.start_in(&wrapper, &[("PROXY_STORE_FLUSH_MS", "20")]);
        let runs = futures_util::future::join_all((0..4).map(|_| async {
            proxy.stream("@lines 3000 300\n@result done").await.collect_all().await
        }))
        .await;
        for events in &runs {
            assert_eq!(complete_of(events)["status"], "completed");
            assert!(error_codes(events).is_empty());
        }
        let (status, health) = get(&proxy, "/health").await;
        assert_eq!(status, 200);
        assert_eq!(health["status"], "degraded", "{health}");
        assert_eq!(health["storage"]["kind"], "sqlite");
        assert_eq!(health["storage"]["ok"], false);
        assert!(
            health["storage"]["error"].as_str().unwrap().contains("full"),
            "{health}"
        );
        let metrics = proxy
            .client
            .get(proxy.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            !metrics.contains("claude_proxy_store_errors_total 0"),
            "failed writes are counted"
        );
        // And it still serves.
        let after = proxy.stream("hi").await.collect_all().await;
        assert_eq!(complete_of(&after)["status"], "completed");
    })
    .await;
}

#[tokio::test]
async fn a_data_dir_deleted_under_the_running_proxy_makes_health_say_so() {
    within(TEST_LIMIT, async {
        let site = Site::new(Engine::Sqlite);
        let proxy = site.start(&[("PROXY_STORE_FLUSH_MS", "20")]);
        let first = proxy.stream("hi").await.collect_all().await;
        assert_eq!(complete_of(&first)["status"], "completed");
        assert_eq!(get(&proxy, "/health").await.1["status"], "ok");

        std::fs::remove_dir_all(&site.data).unwrap();
        until(
            "health says the database is gone",
            Duration::from_secs(20),
            || async { get(&proxy, "/health").await.1["status"] == "degraded" },
        )
        .await;
        let (status, health) = get(&proxy, "/health").await;
        assert_eq!(status, 200);
        assert_eq!(health["storage"]["ok"], false, "{health}");
        let error = health["storage"]["error"].as_str().unwrap();
        assert!(
            error.contains("deleted") && error.contains(site.database().to_str().unwrap()),
            "{error}"
        );
        // Streams go on all the same, and health keeps saying so.
        let after = proxy.stream("hi").await.collect_all().await;
        assert_eq!(complete_of(&after)["status"], "completed");
        assert_eq!(get(&proxy, "/health").await.1["status"], "degraded");
    })
    .await;
}

/// Runs the program with this data dir, to its refusal to start: its one line of stderr.
fn refusal_with_data_dir(data: &std::path::Path, work: &std::path::Path) -> String {
    refusal(&[
        ("PROXY_DATA_DIR", data.to_str().unwrap()),
        ("CLAUDE_WORKDIR", work.to_str().unwrap()),
    ])
}

/// The one line a proxy that cannot start with these settings prints.
fn refusal(env: &[(&str, &str)]) -> String {
    let mut all = vec![("PROXY_PORT", "0")];
    all.extend_from_slice(env);
    let output = command(&all).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    stderr
}

#[test]
fn a_data_dir_that_cannot_be_written_stops_start_up_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, "not a directory").unwrap();
    let data = file.join("data");
    let stderr = refusal_with_data_dir(&data, &dir.path().join("work"));
    assert!(
        stderr.contains("PROXY_DATA_DIR") && stderr.contains(data.to_str().unwrap()),
        "{stderr}"
    );
}

#[test]
fn a_database_of_a_newer_version_is_refused_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let db = rusqlite::Connection::open(data.join("claude-proxy.db")).unwrap();
    db.pragma_update(None, "user_version", 99).unwrap();
    drop(db);
    let stderr = refusal_with_data_dir(&data, &dir.path().join("work"));
    assert!(
        stderr.contains("newer") && stderr.contains("99"),
        "{stderr}"
    );
}

#[test]
fn a_postgresql_database_of_a_newer_version_is_refused_without_its_password() {
    let database = TestDatabase::new();
    let mut db = database.connect();
    support::postgres::off_the_runtime(move || {
        db.batch_execute(
            "CREATE TABLE claude_proxy_schema (version BIGINT NOT NULL);
             INSERT INTO claude_proxy_schema VALUES (99)",
        )
    })
    .unwrap();
    // The test server trusts every connection, so any password is let in.
    let url = database
        .url()
        .replace("postgres@", "postgres:hunter2-secret@");
    let work = tempfile::tempdir().unwrap();
    let stderr = refusal(&[
        ("PROXY_DATABASE_URL", &url),
        ("CLAUDE_WORKDIR", work.path().to_str().unwrap()),
    ]);
    assert!(
        stderr.contains("newer") && stderr.contains("99"),
        "{stderr}"
    );
    assert!(!stderr.contains("hunter2"), "{stderr}");
}

#[test]
fn a_data_dir_inside_the_workdir_is_refused_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("work");
    let inside = work.join("data");
    let stderr = refusal(&[
        ("PROXY_DATA_DIR", inside.to_str().unwrap()),
        ("CLAUDE_WORKDIR", work.to_str().unwrap()),
    ]);
    assert!(
        stderr.contains("PROXY_DATA_DIR") && stderr.contains("inside CLAUDE_WORKDIR"),
        "{stderr}"
    );
    assert!(!inside.exists(), "nothing was made there");
}

#[test]
fn a_data_dir_inside_a_linked_workdir_is_refused_before_it_exists() {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    let link = dir.path().join("link-to-work");
    std::os::unix::fs::symlink(&work, &link).unwrap();
    let inside = link.join("data");
    // The program started anyway would serve until it is stopped: it is given some time to
    // refuse, then ended.
    let mut child = command(&[
        ("PROXY_PORT", "0"),
        ("PROXY_DATA_DIR", inside.to_str().unwrap()),
        ("CLAUDE_WORKDIR", link.to_str().unwrap()),
    ])
    .stderr(std::process::Stdio::piped())
    .spawn()
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            child.wait().unwrap();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(2),
        "it started: {stderr}"
    );
    assert!(
        stderr.contains("PROXY_DATA_DIR") && stderr.contains("inside CLAUDE_WORKDIR"),
        "{stderr}"
    );
    assert!(!work.join("data").exists(), "nothing was made there");
}
