//! Usage per key, exact: the real CLI's requests go through the proxy's gateway, which reads
//! what the API counted from each answer it relays (the stand-in counts the same tokens for
//! every message), and `GET /usage` and `GET /agent/{id}` add it up for the key that asks
//! only, in SQLite across a restart, and in PostgreSQL.

use serde_json::{Value, json};

use crate::support::anthropic::{Reply, StandIn, USAGE_PER_MESSAGE};
use crate::support::proxy::Proxy;
use crate::support::sse::complete_of;
use crate::support::{self, TEST_LIMIT, within};

const KEY_A: &str = "usage-key-a-0123456789";
const KEY_B: &str = "usage-key-b-0123456789";

struct Site {
    standin: StandIn,
    dir: tempfile::TempDir,
    settings: Vec<(String, String)>,
}

impl Site {
    fn start(&self) -> Proxy {
        let (home, work) = (self.dir.path().join("home"), self.dir.path().join("work"));
        std::fs::create_dir_all(&home).unwrap();
        std::fs::create_dir_all(&work).unwrap();
        let mut settings: Vec<(&str, &str)> = vec![(
            "PROXY_API_KEY",
            "usage-key-a-0123456789,usage-key-b-0123456789",
        )];
        settings.extend(self.settings.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        support::real::start_proxy(&self.standin, &home, &work, &settings)
    }
}

async fn get(proxy: &Proxy, key: &str, path: &str) -> (u16, Value) {
    let response = proxy
        .client
        .get(proxy.url(path))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

/// Runs one agent of `key` to its end; its id, and the models of the requests the API got
/// for it, in order.
async fn run(proxy: &Proxy, standin: &StandIn, key: &str, prompt: &str) -> (String, Vec<String>) {
    let before = standin.requests().len();
    let response = proxy
        .client
        .post(proxy.url("/agent/stream"))
        .bearer_auth(key)
        .json(&json!({"prompt": prompt}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let events = support::SseReader::new(response).collect_all().await;
    let agent_id = events.iter().find(|e| e.kind() == "agent").unwrap().json()["agent_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let complete = complete_of(&events);
    let models = standin.requests()[before..]
        .iter()
        .map(|r| r["model"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        complete["status"] == "completed" || complete["status"] == "failed",
        "{complete}"
    );
    (agent_id, models)
}

/// What the API counted for `requests` messages, `errors` of them refused.
fn counted(requests: u64, errors: u64) -> Value {
    let answered = requests - errors;
    let u = USAGE_PER_MESSAGE;
    json!({
        "requests": requests,
        "errors": errors,
        "input_tokens": u.input_tokens * answered,
        "output_tokens": u.output_tokens * answered,
        "cache_read_input_tokens": u.cache_read_input_tokens * answered,
        "cache_creation_input_tokens": u.cache_creation_input_tokens * answered,
    })
}

/// `row` without what it adds up by.
fn counts_of(row: &Value) -> Value {
    let mut row = row.clone();
    for key in ["day", "agent_id", "model"] {
        row.as_object_mut().unwrap().remove(key);
    }
    row
}

/// Each model's requests, in the order first seen.
fn by_model(models: &[String]) -> Vec<(String, u64)> {
    let mut counts: Vec<(String, u64)> = Vec::new();
    for model in models {
        match counts.iter_mut().find(|(m, _)| m == model) {
            Some((_, n)) => *n += 1,
            None => counts.push((model.clone(), 1)),
        }
    }
    counts
}

async fn usage_is_counted_per_key_exactly(settings: Vec<(String, String)>) {
    let standin = StandIn::start([]).await;
    let site = Site {
        standin: standin.clone(),
        dir: tempfile::tempdir().unwrap(),
        settings,
    };
    let mut proxy = site.start();

    // Key A: a Bash call and a text (two messages), then one the API refuses.
    standin.push([
        Reply::Bash("echo counted".into()),
        Reply::Text("Done.".into()),
    ]);
    let (a1, a1_models) = run(&proxy, &standin, KEY_A, "Count this.").await;
    standin.push([Reply::Error {
        status: 400,
        kind: "invalid_request_error".into(),
        retry_after: None,
    }]);
    let (a2, a2_models) = run(&proxy, &standin, KEY_A, "Refuse this.").await;
    // Key B: one message.
    standin.push([Reply::Text("B.".into())]);
    let (b1, b1_models) = run(&proxy, &standin, KEY_B, "Count B.").await;
    assert!(a1_models.len() >= 2 && !a2_models.is_empty() && !b1_models.is_empty());

    let a_requests = (a1_models.len() + a2_models.len()) as u64;
    // The one refusal scripted; the CLI may ask again after it, and be answered.
    let a_errors = 1;
    for round in ["before a restart", "after a restart"] {
        // By day: one row, today, and its total.
        let (status, report) = get(&proxy, KEY_A, "/usage").await;
        assert_eq!(status, 200, "{report}");
        assert_eq!(report["by"], "day");
        let rows = report["rows"].as_array().unwrap();
        assert_eq!(rows.len(), 1, "{round}: {report}");
        assert_eq!(
            rows[0]["day"],
            chrono::Utc::now().format("%Y-%m-%d").to_string()
        );
        assert_eq!(
            counts_of(&rows[0]),
            counted(a_requests, a_errors),
            "{round}"
        );
        assert_eq!(report["total"], counted(a_requests, a_errors), "{round}");

        // By agent: A's two agents, each its own.
        let (_, report) = get(&proxy, KEY_A, "/usage?by=agent").await;
        let rows = report["rows"].as_array().unwrap();
        let row_of = |id: &str| {
            rows.iter()
                .find(|r| r["agent_id"] == id)
                .unwrap_or_else(|| panic!("{round}: no row for {id}: {report}"))
                .clone()
        };
        assert_eq!(rows.len(), 2, "{round}: {report}");
        assert_eq!(counts_of(&row_of(&a1)), counted(a1_models.len() as u64, 0));
        assert_eq!(
            counts_of(&row_of(&a2)),
            counted(a2_models.len() as u64, a_errors)
        );

        // By model: the models the API was asked for, the refused one by the request's name.
        let (_, report) = get(&proxy, KEY_A, "/usage?by=model").await;
        let rows = report["rows"].as_array().unwrap();
        let mut all = a1_models.clone();
        all.extend(a2_models.iter().cloned());
        for (model, requests) in by_model(&all) {
            let row = rows
                .iter()
                .find(|r| r["model"] == model.as_str())
                .unwrap_or_else(|| panic!("{round}: no row for {model}: {report}"));
            assert_eq!(row["requests"], requests, "{round}: {report}");
        }
        assert_eq!(report["total"], counted(a_requests, a_errors), "{round}");

        // Each agent's detail, by model.
        let (status, detail) = get(&proxy, KEY_A, &format!("/agent/{a1}")).await;
        assert_eq!(status, 200, "{detail}");
        let usage = detail["usage"].as_array().unwrap();
        let expected = by_model(&a1_models);
        assert_eq!(usage.len(), expected.len(), "{round}: {detail}");
        for (row, (model, requests)) in usage.iter().zip(&expected) {
            assert_eq!(row["model"], model.as_str());
            let mut row = row.clone();
            row.as_object_mut().unwrap().remove("model");
            assert_eq!(row, counted(*requests, 0), "{round}");
        }

        // Key B sees its own, and nothing of A's.
        let (_, report) = get(&proxy, KEY_B, "/usage?by=agent").await;
        let rows = report["rows"].as_array().unwrap();
        assert_eq!(rows.len(), 1, "{round}: {report}");
        assert_eq!(rows[0]["agent_id"], b1.as_str());
        assert_eq!(counts_of(&rows[0]), counted(b1_models.len() as u64, 0));
        let (status, _) = get(&proxy, KEY_B, &format!("/agent/{a1}")).await;
        assert_eq!(status, 404);

        // A window before any of it holds nothing; a bad one is refused by name.
        let (_, report) = get(&proxy, KEY_A, "/usage?from=2001-01-01&to=2001-01-02").await;
        assert_eq!(report["rows"], json!([]), "{report}");
        assert_eq!(report["total"], counted(0, 0));
        let (status, body) = get(&proxy, KEY_A, "/usage?by=week").await;
        assert_eq!(status, 422);
        assert!(body["detail"].as_str().unwrap().contains("by"), "{body}");
        let (status, body) = get(&proxy, KEY_A, "/usage?from=yesterday").await;
        assert_eq!(status, 422);
        assert!(body["detail"].as_str().unwrap().contains("from"), "{body}");

        if round == "before a restart" {
            assert!(proxy.terminate().await.unwrap().success());
            proxy = site.start();
        }
    }
}

#[tokio::test]
async fn usage_is_counted_per_key_exactly_and_kept_across_a_restart() {
    within(TEST_LIMIT, usage_is_counted_per_key_exactly(vec![])).await;
}

#[tokio::test]
async fn usage_is_counted_per_key_exactly_in_postgresql() {
    within(TEST_LIMIT, async {
        let database = support::postgres::TestDatabase::new();
        usage_is_counted_per_key_exactly(vec![("PROXY_DATABASE_URL".to_owned(), database.url())])
            .await;
    })
    .await;
}
