//! Metrics for operators, in the Prometheus text format at `GET /metrics`. A leaf: every layer
//! may count here, and it knows none of them.
//!
//! An explicit registry per server (prometheus-client) rather than a process-wide recorder:
//! several servers in one process (the tests) each count their own.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    pub kind: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabel {
    pub status: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ExitLabel {
    /// The exit code, or the signal's name.
    pub code: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: &'static str,
}

/// A shape of run the warm pool keeps CLIs for, by a name that tells nothing of it.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ShapeLabel {
    pub shape: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// The matched route (`/agent/{agent_id}`), never the raw path.
    pub route: String,
    pub method: String,
    pub status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: String,
    pub method: String,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn latency_buckets() -> Histogram {
    // 0.25 ms to about 8 s.
    Histogram::new(exponential_buckets(0.000_25, 2.0, 16))
}

#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// The families labelled by key id, shown only to the operator's metrics key: one client
    /// key's use is not another's to read.
    per_key: Registry,
    pub agents_running: Gauge,
    pub agents_queued: Gauge,
    pub agents_started: Family<KindLabel, Counter>,
    pub agents_finished: Family<StatusLabel, Counter>,
    pub events: Counter,
    pub sse_bytes: Counter,
    pub cli_exits: Family<ExitLabel, Counter>,
    pub spawn_seconds: Histogram,
    pub requests: Family<RequestLabels, Counter>,
    pub request_seconds: HistogramFamily<RouteLabels>,
    pub client_disconnects: Counter,
    pub kills: Family<ReasonLabel, Counter>,
    pub connections_refused: Counter,
    pub messages: Counter,
    pub interrupts: Counter,
    pub permission_requests: Counter,
    pub permissions_settled: Family<OutcomeLabel, Counter>,
    pub store_errors: Counter,
    pub store_dropped: Counter,
    pub warm_clis: Family<ShapeLabel, Gauge>,
    pub warm_hits: Counter,
    pub warm_misses: Counter,
    pub warm_saved_seconds: Counter<f64, std::sync::atomic::AtomicU64>,
    pub warm_ended: Family<ReasonLabel, Counter>,
    /// All keys together, by model: four kinds of token.
    pub api_model_tokens: Family<ApiModelTokenLabels, Counter>,
    pub api_model_requests: Family<ApiModelRequestLabels, Counter>,
    /// Per key: a few models each, four kinds of token.
    pub api_tokens: Family<ApiTokenLabels, Counter>,
    pub api_requests: Family<ApiRequestLabels, Counter>,
}

/// A key's use of the API, as the gateway relayed it.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ApiTokenLabels {
    /// The key's id (never the key), or `anonymous`.
    pub key: String,
    pub model: String,
    /// input, output, cache_read or cache_write.
    pub kind: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ApiRequestLabels {
    pub key: String,
    pub model: String,
    /// ok or error.
    pub outcome: &'static str,
}

/// The API's use by all keys together.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ApiModelTokenLabels {
    pub model: String,
    /// input, output, cache_read or cache_write.
    pub kind: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ApiModelRequestLabels {
    pub model: String,
    /// ok or error.
    pub outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    pub outcome: &'static str,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("claude_proxy");
        let metrics = Metrics {
            agents_running: Gauge::default(),
            agents_queued: Gauge::default(),
            agents_started: Family::default(),
            agents_finished: Family::default(),
            events: Counter::default(),
            sse_bytes: Counter::default(),
            cli_exits: Family::default(),
            spawn_seconds: latency_buckets(),
            requests: Family::default(),
            request_seconds: Family::new_with_constructor(latency_buckets),
            client_disconnects: Counter::default(),
            kills: Family::default(),
            connections_refused: Counter::default(),
            messages: Counter::default(),
            interrupts: Counter::default(),
            permission_requests: Counter::default(),
            permissions_settled: Family::default(),
            store_errors: Counter::default(),
            store_dropped: Counter::default(),
            warm_clis: Family::default(),
            warm_hits: Counter::default(),
            warm_misses: Counter::default(),
            warm_saved_seconds: Counter::default(),
            warm_ended: Family::default(),
            api_model_tokens: Family::default(),
            api_model_requests: Family::default(),
            api_tokens: Family::default(),
            api_requests: Family::default(),
            registry: Registry::default(),
            per_key: Registry::default(),
        };
        registry.register(
            "agents_running",
            "CLI processes running now",
            metrics.agents_running.clone(),
        );
        registry.register(
            "agents_queued",
            "Agents waiting for a place now (PROXY_QUEUE)",
            metrics.agents_queued.clone(),
        );
        registry.register(
            "agents_started",
            "Agents started, by kind (stream or start)",
            metrics.agents_started.clone(),
        );
        registry.register(
            "agents_finished",
            "Agents finished, by the status of their complete event",
            metrics.agents_finished.clone(),
        );
        registry.register(
            "stream_events",
            "Events produced by agents (lines, errors, complete)",
            metrics.events.clone(),
        );
        registry.register(
            "stream_bytes",
            "Bytes of events sent to SSE clients",
            metrics.sse_bytes.clone(),
        );
        registry.register(
            "cli_exits",
            "CLI exits, by exit code or signal name",
            metrics.cli_exits.clone(),
        );
        registry.register(
            "spawn_seconds",
            "Time to start a CLI process",
            metrics.spawn_seconds.clone(),
        );
        registry.register(
            "http_requests",
            "HTTP requests, by matched route, method and status",
            metrics.requests.clone(),
        );
        registry.register(
            "http_request_seconds",
            "Time to answer a request (to the response's headers), by matched route and method",
            metrics.request_seconds.clone(),
        );
        registry.register(
            "client_disconnects",
            "Event streams whose client went away before complete",
            metrics.client_disconnects.clone(),
        );
        registry.register(
            "kills",
            "CLIs ended by the proxy, by reason (stopped, client_gone, shutdown, timeout, idle_timeout)",
            metrics.kills.clone(),
        );
        registry.register(
            "connections_refused",
            "Connections closed at once because PROXY_MAX_CONNECTIONS were open",
            metrics.connections_refused.clone(),
        );
        registry.register(
            "messages",
            "Messages sent to interactive agents after their prompt",
            metrics.messages.clone(),
        );
        registry.register(
            "interrupts",
            "Interrupts of interactive agents' turns",
            metrics.interrupts.clone(),
        );
        registry.register(
            "permission_requests",
            "Tool approvals the CLI asked clients for",
            metrics.permission_requests.clone(),
        );
        registry.register(
            "permissions_settled",
            "Tool approvals settled, by outcome (allowed, denied, expired, cancelled)",
            metrics.permissions_settled.clone(),
        );
        registry.register(
            "store_errors",
            "Writes to the store that failed (their updates are not kept)",
            metrics.store_errors.clone(),
        );
        registry.register(
            "store_dropped",
            "Updates not kept because the store's writer was too far behind",
            metrics.store_dropped.clone(),
        );
        registry.register(
            "warm_clis",
            "CLIs of the warm pool waiting for a run, by shape",
            metrics.warm_clis.clone(),
        );
        registry.register(
            "warm_hits",
            "Runs served by a CLI of the warm pool",
            metrics.warm_hits.clone(),
        );
        registry.register(
            "warm_misses",
            "Runs the warm pool could have served that found no CLI of their shape waiting",
            metrics.warm_misses.clone(),
        );
        registry.register(
            "warm_saved_seconds",
            "Time to first line saved by the warm pool: for each hit, the cold runs' average less the hit's",
            metrics.warm_saved_seconds.clone(),
        );
        registry.register(
            "warm_ended",
            "Waiting CLIs of the warm pool ended untaken, by reason (died, idle, shutdown, evicted: its process slot went to an agent)",
            metrics.warm_ended.clone(),
        );
        registry.register(
            "api_model_tokens",
            "Tokens the API counted for the agents' requests through the gateway, all keys together, by model and kind (input, output, cache_read, cache_write)",
            metrics.api_model_tokens.clone(),
        );
        registry.register(
            "api_model_requests",
            "Requests to the Messages API through the gateway, all keys together, by model and outcome (ok, error)",
            metrics.api_model_requests.clone(),
        );
        let mut per_key = Registry::with_prefix("claude_proxy");
        per_key.register(
            "api_tokens",
            "Tokens the API counted for the agents' requests through the gateway, by key id, model and kind (input, output, cache_read, cache_write)",
            metrics.api_tokens.clone(),
        );
        per_key.register(
            "api_requests",
            "Requests to the Messages API through the gateway, by key id, model and outcome (ok, error)",
            metrics.api_requests.clone(),
        );
        Metrics {
            registry,
            per_key,
            ..metrics
        }
    }
}

impl Metrics {
    /// The Prometheus text exposition of every metric; the families by key id only `per_key`
    /// (to the operator's metrics key).
    pub fn encode(&self, per_key: bool) -> String {
        use prometheus_client::encoding::text::{encode_eof, encode_registry};
        let mut text = String::new();
        encode_registry(&mut text, &self.registry).expect("writing to a String cannot fail");
        if per_key {
            encode_registry(&mut text, &self.per_key).expect("writing to a String cannot fail");
        }
        encode_eof(&mut text).expect("writing to a String cannot fail");
        text
    }

    pub fn spawned(&self, kind: &'static str, took: Duration) {
        self.agents_started.get_or_create(&KindLabel { kind }).inc();
        self.spawn_seconds.observe(took.as_secs_f64());
    }

    /// An agent started on a CLI that was spawned before it (the warm pool's, whose spawn was
    /// timed then).
    pub fn started_warm(&self, kind: &'static str) {
        self.agents_started.get_or_create(&KindLabel { kind }).inc();
    }

    /// A CLI process ended: `code` is its exit code, or the signal's name.
    pub fn cli_exited(&self, code: String) {
        self.cli_exits.get_or_create(&ExitLabel { code }).inc();
    }

    /// The proxy ended a CLI, for `reason`.
    pub fn killed(&self, reason: &'static str) {
        self.kills.get_or_create(&ReasonLabel { reason }).inc();
    }

    /// An agent ended with this status.
    pub fn finished(&self, status: &'static str) {
        self.agents_finished
            .get_or_create(&StatusLabel { status })
            .inc();
    }

    /// A tool approval was settled: allowed, denied, expired or cancelled.
    pub fn permission_settled(&self, outcome: &'static str) {
        self.permissions_settled
            .get_or_create(&OutcomeLabel { outcome })
            .inc();
    }

    /// What the API counted for `requests` requests of `key`'s (`errors` of them failed):
    /// `tokens` of each kind, input, output, cache_read, cache_write.
    pub fn api_used(
        &self,
        key: String,
        model: String,
        requests: u64,
        errors: u64,
        tokens: [u64; 4],
    ) {
        let outcome = |outcome| ApiRequestLabels {
            key: key.clone(),
            model: model.clone(),
            outcome,
        };
        let all_keys = |outcome| ApiModelRequestLabels {
            model: model.clone(),
            outcome,
        };
        let ok = requests.saturating_sub(errors);
        self.api_requests.get_or_create(&outcome("ok")).inc_by(ok);
        self.api_model_requests
            .get_or_create(&all_keys("ok"))
            .inc_by(ok);
        if errors > 0 {
            self.api_requests
                .get_or_create(&outcome("error"))
                .inc_by(errors);
            self.api_model_requests
                .get_or_create(&all_keys("error"))
                .inc_by(errors);
        }
        for (kind, count) in ["input", "output", "cache_read", "cache_write"]
            .into_iter()
            .zip(tokens)
        {
            self.api_tokens
                .get_or_create(&ApiTokenLabels {
                    key: key.clone(),
                    model: model.clone(),
                    kind,
                })
                .inc_by(count);
            self.api_model_tokens
                .get_or_create(&ApiModelTokenLabels {
                    model: model.clone(),
                    kind,
                })
                .inc_by(count);
        }
    }

    /// One request answered.
    pub fn answered(&self, route: String, method: String, status: u16, took: Duration) {
        let labels = RouteLabels { route, method };
        self.request_seconds
            .get_or_create(&labels)
            .observe(took.as_secs_f64());
        let RouteLabels { route, method } = labels;
        self.requests
            .get_or_create(&RequestLabels {
                route,
                method,
                status,
            })
            .inc();
    }
}
