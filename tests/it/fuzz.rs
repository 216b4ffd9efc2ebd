//! Hostile input: thousands of malformed requests at every endpoint. Each gets a 4xx, none
//! starts a CLI, and the server stays up.

use std::sync::OnceLock;

use crate::support::TestServer;
use proptest::prelude::*;
use serde_json::{Value, json};

/// One server for all cases, on a runtime of its own that outlives each case.
struct Shared {
    runtime: tokio::runtime::Runtime,
    server: TestServer,
}

fn shared() -> &'static Shared {
    static SHARED: OnceLock<Shared> = OnceLock::new();
    SHARED.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        // Started from a thread that lives as long as the test process: the server is told to
        // stop when the thread that started it ends, and a test's own thread ends with it.
        let (tx, rx) = std::sync::mpsc::channel();
        let handle = runtime.handle().clone();
        std::thread::spawn(move || {
            let server = handle.block_on(TestServer::with_args(&["--max-body-bytes", "65536"]));
            tx.send(server).unwrap();
            loop {
                std::thread::park();
            }
        });
        let server = rx.recv().unwrap();
        Shared { runtime, server }
    })
}

/// Sends one request and returns its status.
fn send(method: &str, path: &str, content_type: Option<&str>, body: Vec<u8>) -> u16 {
    let Shared { runtime, server } = shared();
    runtime.block_on(async {
        let mut request = server
            .client
            .request(method.parse().unwrap(), server.url(path))
            .body(body);
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        request
            .send()
            .await
            .map(|r| r.status().as_u16())
            .unwrap_or_else(|e| panic!("{e:?}"))
    })
}

/// Any JSON value, nested a little.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        ".{0,40}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
            prop::collection::btree_map("[a-z_]{0,12}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A JSON body for /agent/start or /agent/stream that is wrong in at least one way.
fn bad_agent_body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        // Not a string where a string belongs, or nothing at all.
        any_json()
            .prop_filter("not a string", |v| !v.is_string())
            .prop_map(|v| json!({"prompt": v})),
        // An unknown field beside a good prompt (a typo such as sesion_id).
        ("zz_[a-z_]{0,10}", any_json()).prop_map(|(k, v)| json!({"prompt": "hi", k: v})),
        // A prompt that is empty, blank or holds NUL.
        prop_oneof![Just(String::new()), " {1,5}", ".{0,10}\u{0}.{0,10}"]
            .prop_map(|p| json!({"prompt": p})),
        // A session_id that is not a UUID.
        "[a-z0-9-]{0,36}z".prop_map(|s| json!({"prompt": "hi", "session_id": s})),
        // A model with a character models never have (spaces, shell and path characters).
        "[a-z-]{0,5}[ /$;'\"\n\u{0}][a-z-]{0,5}".prop_map(|m| json!({"prompt": "hi", "model": m})),
        // Huge and negative numbers.
        prop_oneof![
            Just(json!(1e300)),
            Just(json!(-1)),
            Just(json!(u64::MAX)),
            Just(json!(0))
        ]
        .prop_map(|n| json!({"prompt": "hi", "max_turns": n})),
        // Any other top-level JSON value.
        any_json().prop_filter("not an object", |v| !v.is_object()),
    ]
    .prop_map(|v| serde_json::to_vec(&v).unwrap())
    .boxed()
    .prop_union(
        prop_oneof![
            // Bytes, UTF-8 or not.
            prop::collection::vec(any::<u8>(), 0..512),
            // A JSON string holding invalid UTF-8: it starts with a lone continuation byte.
            (0x80u8..=0xbf, prop::collection::vec(any::<u8>(), 0..8)).prop_map(|(lone, rest)| {
                let mut body = b"{\"prompt\":\"".to_vec();
                body.push(lone);
                body.extend(rest.into_iter().filter(|b| *b != b'"' && *b != b'\\'));
                body.extend(b"\"}");
                body
            }),
            // Truncated JSON.
            (0usize..14).prop_map(|n| br#"{"prompt":"hi"}"#[..n].to_vec()),
        ]
        .boxed(),
    )
}

fn content_type() -> impl Strategy<Value = Option<&'static str>> {
    prop_oneof![
        4 => Just(Some("application/json")),
        1 => Just(None),
        1 => Just(Some("text/plain")),
        1 => Just(Some("application/json; charset=latin1")),
        1 => Just(Some("multipart/form-data")),
    ]
}

/// An agent id as a client could send it: mostly not a UUID, sometimes an unknown one.
fn agent_id() -> impl Strategy<Value = String> {
    prop_oneof![
        "[A-Za-z0-9._~%-]{0,60}",
        Just("%00".to_owned()),
        Just("..%2F..%2Fetc%2Fpasswd".to_owned()),
        any::<u128>().prop_map(|n| uuid::Uuid::from_u128(n).to_string()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2500, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn malformed_agent_requests_get_a_4xx(
        path in prop_oneof![Just("/agent/start"), Just("/agent/stream")],
        content_type in content_type(),
        body in bad_agent_body(),
    ) {
        let status = send("POST", path, content_type, body.clone());
        prop_assert!((400..500).contains(&status), "{path} {content_type:?} {:?} -> {status}", String::from_utf8_lossy(&body));
        prop_assert_eq!(shared().server.fake.runs(), 0, "a rejected request started a CLI");
    }

    #[test]
    fn unknown_agents_and_methods_get_a_4xx(
        id in agent_id(),
        route in 0usize..4,
        method in prop_oneof![Just("GET"), Just("POST"), Just("DELETE"), Just("PUT"), Just("PATCH")],
        body in prop::collection::vec(any::<u8>(), 0..64),
    ) {
        let path = match route {
            0 => format!("/agent/{id}"),
            1 => format!("/agent/{id}/events"),
            2 => format!("/agent/stop/{id}"),
            _ => format!("/agent/{id}/events?after={id}"),
        };
        let status = send(method, &path, Some("application/json"), body);
        prop_assert!((400..500).contains(&status), "{method} {path} -> {status}");
        prop_assert_eq!(shared().server.fake.runs(), 0, "a rejected request started a CLI");
    }
}

#[test]
fn after_all_that_nothing_ran_and_the_server_is_up() {
    // The property tests check after every case that nothing ran; this adds the server's
    // health after a burst of its own.
    for body in [
        &b"{"[..],
        b"{\"prompt\":5}",
        b"\xff\xfe",
        b"{\"prompt\":\"\\u0000\"}",
    ] {
        assert!((400..500).contains(&send(
            "POST",
            "/agent/stream",
            Some("application/json"),
            body.to_vec()
        )));
    }
    let Shared { runtime, server } = shared();
    let health = runtime.block_on(server.health());
    assert_eq!(health["status"], "ok");
    assert_eq!(server.fake.runs(), 0, "a rejected request started a CLI");
}
