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
            // Per key in /metrics too (in memory: since the start), but only to the
            // operator's metrics key; any client key sees the totals by model alone.
            let metrics_key = site
                .settings
                .iter()
                .find(|(name, _)| name == "PROXY_METRICS_KEY")
                .map(|(_, key)| key.as_str());
            let metrics = proxy
                .client
                .get(proxy.url("/metrics"))
                .bearer_auth(metrics_key.unwrap_or(KEY_A))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            let (_, report) = get(&proxy, KEY_A, "/usage").await;
            let key_id = report["key_id"].as_str().unwrap();
            let model = &a1_models[0];
            let input = USAGE_PER_MESSAGE.input_tokens * (a_requests - a_errors);
            let line = format!(
                "claude_proxy_api_tokens_total{{key=\"{key_id}\",model=\"{model}\",kind=\"input\"}} {input}"
            );
            let errors = format!(
                "claude_proxy_api_requests_total{{key=\"{key_id}\",model=\"{model}\",outcome=\"error\"}} {a_errors}"
            );
            if metrics_key.is_some() {
                assert!(metrics.contains(&line), "{line} not in {metrics}");
                assert!(metrics.contains(&errors), "{errors} not in {metrics}");
            } else {
                assert!(
                    !metrics.contains("claude_proxy_api_tokens_total")
                        && !metrics.contains("claude_proxy_api_requests_total")
                        && !metrics.contains(key_id),
                    "no key's use without a metrics key: {metrics}"
                );
            }
            let total =
                format!("claude_proxy_api_model_tokens_total{{model=\"{model}\",kind=\"input\"}} ");
            assert!(metrics.contains(&total), "{total} not in {metrics}");
            assert!(metrics.ends_with("# EOF\n"), "one end: {metrics}");
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
        usage_is_counted_per_key_exactly(vec![
            ("PROXY_DATABASE_URL".to_owned(), database.url()),
            (
                "PROXY_METRICS_KEY".to_owned(),
                "usage-metrics-key-0123456789".to_owned(),
            ),
        ])
        .await;
    })
    .await;
}

/// The API's `anthropic-ratelimit-unified-*` headers, as the CLI's program reads them.
fn unified(
    status: &str,
    five_hour: (&str, &str, i64),
    seven_day: (&str, &str, i64),
) -> Vec<(&'static str, String)> {
    let h = |name: &'static str, value: String| (name, value);
    vec![
        h("anthropic-ratelimit-unified-status", status.to_owned()),
        h("anthropic-ratelimit-unified-reset", five_hour.2.to_string()),
        h(
            "anthropic-ratelimit-unified-representative-claim",
            "five_hour".to_owned(),
        ),
        h(
            "anthropic-ratelimit-unified-5h-status",
            five_hour.0.to_owned(),
        ),
        h(
            "anthropic-ratelimit-unified-5h-utilization",
            five_hour.1.to_owned(),
        ),
        h(
            "anthropic-ratelimit-unified-5h-reset",
            five_hour.2.to_string(),
        ),
        h(
            "anthropic-ratelimit-unified-7d-status",
            seven_day.0.to_owned(),
        ),
        h(
            "anthropic-ratelimit-unified-7d-utilization",
            seven_day.1.to_owned(),
        ),
        h(
            "anthropic-ratelimit-unified-7d-reset",
            seven_day.2.to_string(),
        ),
    ]
}

#[tokio::test]
async fn the_subscriptions_windows_are_shown_and_a_refusal_holds_at_the_gateway_until_its_reset() {
    within(TEST_LIMIT, async {
        let standin = StandIn::start([]).await;
        let site = Site {
            standin: standin.clone(),
            dir: tempfile::tempdir().unwrap(),
            settings: vec![],
        };
        let proxy = site.start();
        let now = chrono::Utc::now().timestamp();
        let (five_hour_reset, seven_day_reset) = (now + 3600, now + 86_400);

        // Near the 5-hour limit: shown, and nothing refused.
        standin.answer_with_headers(&unified(
            "allowed_warning",
            ("allowed_warning", "0.91", five_hour_reset),
            ("allowed", "0.4", seven_day_reset),
        ));
        standin.push([Reply::Text("Fine.".into())]);
        run(&proxy, &standin, KEY_A, "Use a little.").await;
        let (_, health) = get(&proxy, KEY_A, "/health").await;
        let limits = &health["subscription"];
        assert_eq!(limits["status"], "allowed_warning", "{health}");
        assert_eq!(limits["representative_claim"], "five_hour");
        assert_eq!(limits["five_hour"]["utilization"], 0.91);
        assert_eq!(limits["five_hour"]["status"], "allowed_warning");
        let shown = |value: &Value| {
            chrono::DateTime::parse_from_rfc3339(value.as_str().unwrap())
                .unwrap()
                .timestamp()
        };
        assert_eq!(shown(&limits["five_hour"]["resets_at"]), five_hour_reset);
        assert_eq!(limits["seven_day"]["utilization"], 0.4);
        assert_eq!(shown(&limits["seven_day"]["resets_at"]), seven_day_reset);
        assert_eq!(health["rate_limited_until"], Value::Null);
        let (_, usage) = get(&proxy, KEY_A, "/usage").await;
        assert_eq!(usage["subscription"], *limits, "{usage}");
        // Without a key, nothing of it.
        let (_, public) = get(&proxy, "", "/health").await;
        assert!(public.get("subscription").is_none(), "{public}");

        // The API says the 5-hour window is spent: the CLI's next request (after its tool)
        // is refused by the gateway and never reaches the API, and new agents get 429 until
        // the reset.
        standin.answer_with_headers(&unified(
            "rejected",
            ("rejected", "1.0", five_hour_reset),
            ("allowed", "0.45", seven_day_reset),
        ));
        standin.push([
            Reply::Bash("echo spent".into()),
            Reply::Text("Never asked.".into()),
        ]);
        let before = standin.requests().len();
        let response = proxy
            .client
            .post(proxy.url("/agent/stream"))
            .bearer_auth(KEY_A)
            .json(&json!({"prompt": "Use the rest."}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let events = support::SseReader::new(response).collect_all().await;
        // The CLI ends its turn with the gateway's refusal (it does not wait for the reset),
        // which the stream says as the proxy's own `rate_limited`.
        assert_eq!(complete_of(&events)["status"], "failed");
        let codes = crate::support::sse::error_codes(&events);
        assert!(codes.contains(&"rate_limited".to_owned()), "{codes:?}");
        assert_eq!(
            standin.requests().len(),
            before + 1,
            "only the request the API answered reached it"
        );
        let (_, health) = get(&proxy, KEY_A, "/health").await;
        assert_eq!(health["subscription"]["status"], "rejected", "{health}");
        assert_eq!(shown(&health["rate_limited_until"]), five_hour_reset);
        let refused = proxy
            .client
            .post(proxy.url("/agent/stream"))
            .bearer_auth(KEY_B)
            .json(&json!({"prompt": "Another."}))
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), 429);
        let retry_after: i64 = refused.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(retry_after > 3000 && retry_after <= 3600, "{retry_after}");
    })
    .await;
}

#[tokio::test]
async fn a_key_over_its_budget_is_refused_and_its_running_agent_ends_with_budget_exceeded() {
    within(TEST_LIMIT, async {
        let standin = StandIn::start([]).await;
        // Each message the stand-in answers counts 22 tokens of every kind together.
        let per_message = {
            let u = USAGE_PER_MESSAGE;
            u.input_tokens
                + u.output_tokens
                + u.cache_read_input_tokens
                + u.cache_creation_input_tokens
        };
        assert_eq!(per_message, 22);
        let site = Site {
            standin: standin.clone(),
            dir: tempfile::tempdir().unwrap(),
            settings: vec![("PROXY_KEY_BUDGETS".into(), "*=40tokens/day".into())],
        };
        let proxy = site.start();

        // Two messages (22, then 44 tokens: the second starts under the budget), and a third
        // that the gateway refuses: the agent's stream ends with budget_exceeded.
        standin.push([
            Reply::Bash("echo one".into()),
            Reply::Bash("echo two".into()),
            Reply::Text("Never asked.".into()),
        ]);
        let before = standin.requests().len();
        let response = proxy
            .client
            .post(proxy.url("/agent/stream"))
            .bearer_auth(KEY_A)
            .json(&json!({"prompt": "Spend it."}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let events = support::SseReader::new(response).collect_all().await;
        assert_eq!(
            standin.requests().len(),
            before + 2,
            "the third never reached the API"
        );
        let budget = events
            .iter()
            .find(|e| e.kind() == "error" && e.json()["code"] == "budget_exceeded")
            .unwrap_or_else(|| panic!("no budget_exceeded: {events:?}"))
            .json();
        let tomorrow = (chrono::Utc::now().date_naive() + chrono::Days::new(1))
            .and_hms_opt(0, 0, 0)
            .unwrap()
            .and_utc();
        assert_eq!(
            budget["resets_at"],
            tomorrow.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        );
        assert_eq!(complete_of(&events)["status"], "failed");
        let codes = crate::support::sse::error_codes(&events);
        assert!(!codes.contains(&"rate_limited".to_owned()), "{codes:?}");

        // The key gets no new agent until tomorrow; the other key does.
        let refused = proxy
            .client
            .post(proxy.url("/agent/stream"))
            .bearer_auth(KEY_A)
            .json(&json!({"prompt": "More."}))
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), 429);
        let retry_after: i64 = refused.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        let until_tomorrow = (tomorrow - chrono::Utc::now()).num_seconds();
        assert!(
            (retry_after - until_tomorrow).abs() <= 5,
            "{retry_after} {until_tomorrow}"
        );
        let body: Value = refused.json().await.unwrap();
        assert!(
            body["detail"]
                .as_str()
                .unwrap()
                .starts_with("budget_exceeded"),
            "{body}"
        );
        standin.push([Reply::Text("B's turn.".into())]);
        let (_, models) = run(&proxy, &standin, KEY_B, "Fine.").await;
        assert_eq!(models.len(), 1);
    })
    .await;
}
