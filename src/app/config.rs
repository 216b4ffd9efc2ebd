//! Settings, read from the environment or from flags (every variable is also a `--flag`).

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use crate::agent::{OperatorShape, PermissionMode, ToolList, parse_list, parse_model};
use crate::store::Database;
use crate::telemetry::LogFormat;

/// Runs the Claude Code CLI behind an HTTP API and streams its output as Server-Sent Events.
///
/// Every setting can be given as a flag or as the environment variable named beside it;
/// a flag wins over the variable.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "claude-proxy",
    version,
    about,
    max_term_width = 100,
    args_override_self = true
)]
pub struct Config {
    /// Address to listen on. Anything other than a loopback address exposes the proxy to the
    /// network.
    #[arg(long = "host", env = "PROXY_HOST", default_value = "127.0.0.1")]
    pub host: String,

    /// Port to listen on (0 picks a free port and logs it).
    #[arg(long = "port", env = "PROXY_PORT", default_value_t = 8000)]
    pub port: u16,

    /// Client keys, comma-separated (at least 16 characters each). When set, every route but
    /// /health, /openapi.json, /docs and /ui needs `Authorization: Bearer <key>` or
    /// `x-api-key: <key>`. Prefer the variable
    /// or the file to the flag, which other users can see in `ps`.
    #[arg(long = "api-key", env = "PROXY_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,

    /// A file of client keys, one per line (`#` starts a comment).
    #[arg(long = "api-key-file", env = "PROXY_API_KEY_FILE")]
    pub api_key_file: Option<PathBuf>,

    /// Allow listening on a non-loopback address without client keys: anyone who can reach
    /// the proxy can then run the CLI.
    #[arg(
        long = "allow-unauthenticated",
        env = "PROXY_ALLOW_UNAUTHENTICATED",
        default_value = "false",
        value_parser = parse_bool,
        action = clap::ArgAction::Set,
    )]
    pub allow_unauthenticated: bool,

    /// Host names (or addresses) the proxy answers to when no client keys are set, besides
    /// the loopback ones (localhost, 127.0.0.1, [::1]), comma-separated. Any other `Host` is
    /// refused, so that a web page cannot reach a keyless proxy by rebinding its own name to
    /// this machine. With keys set, any Host is answered.
    #[arg(long = "allowed-hosts", env = "PROXY_ALLOWED_HOSTS", value_parser = parse_host_list, default_value = "")]
    pub allowed_hosts: HostList,

    /// The key that opens /metrics, which counts every client's agents together. When set,
    /// only it does (client keys get 403); unset, any client key may read the totals.
    #[arg(
        long = "metrics-key",
        env = "PROXY_METRICS_KEY",
        hide_env_values = true
    )]
    pub metrics_key: Option<String>,

    /// The Claude Code CLI: a path, or a name looked up on PATH.
    #[arg(long = "cli-path", env = "CLAUDE_CLI_PATH", default_value = "claude")]
    pub cli_path: PathBuf,

    /// Run the CLI under the operator's Claude subscription login: ANTHROPIC_API_KEY and
    /// ANTHROPIC_AUTH_TOKEN are kept from the CLI. Set to false to let an API key through.
    #[arg(
        long = "use-subscription",
        env = "CLAUDE_USE_SUBSCRIPTION",
        default_value = "true",
        value_parser = parse_bool,
        action = clap::ArgAction::Set,
    )]
    pub use_subscription: bool,

    /// Where the CLIs' gateway forwards their API requests, with the operator's credential
    /// (unset: the operator's own ANTHROPIC_BASE_URL if set, else https://api.anthropic.com).
    /// Every CLI talks to the gateway only, with a credential of its agent's own.
    #[arg(long = "upstream-url", env = "PROXY_UPSTREAM_URL", value_parser = parse_url)]
    pub upstream_url: Option<String>,

    /// Where the gateway refreshes the operator's stored login (`claude login`) when its token
    /// expires: the CLI's own token endpoint, unless a test says otherwise.
    #[arg(long = "oauth-token-url", env = "PROXY_OAUTH_TOKEN_URL", value_parser = parse_url, default_value = crate::gateway::TOKEN_URL)]
    pub oauth_token_url: String,

    /// Model used when a request names none (passed to the CLI as --model).
    #[arg(long = "default-model", env = "CLAUDE_DEFAULT_MODEL", value_parser = parse_model)]
    pub default_model: Option<String>,

    /// How many CLI processes may run at once; further requests get 429.
    #[arg(long = "max-agents", env = "PROXY_MAX_AGENTS", default_value_t = 8, value_parser = parse_positive)]
    pub max_agents: usize,

    /// How many new agents may wait for a place when PROXY_MAX_AGENTS run (or the
    /// subscription is rate limited), served round robin by key; 0: none wait, they get 429.
    #[arg(long = "queue", env = "PROXY_QUEUE", default_value_t = 0, value_parser = parse_queue)]
    pub queue: usize,

    /// How many CLI processes one client key may run at once (unset: only PROXY_MAX_AGENTS).
    #[arg(long = "max-agents-per-key", env = "PROXY_MAX_AGENTS_PER_KEY", value_parser = parse_positive)]
    pub max_agents_per_key: Option<usize>,

    /// How many client connections may be open at once; more are closed as they come. As many
    /// may wait to be accepted during a burst (the kernel caps that at net.core.somaxconn).
    #[arg(long = "max-connections", env = "PROXY_MAX_CONNECTIONS", default_value_t = 4096, value_parser = parse_positive)]
    pub max_connections: usize,

    /// Seconds a client has to send a request's headers, counted from the connection's start
    /// or the end of its previous request; a connection that has not sent them by then (a
    /// silent one included) is closed.
    #[arg(long = "header-read-timeout-secs", env = "PROXY_HEADER_READ_TIMEOUT_SECS", default_value = "10", value_parser = parse_positive_secs)]
    pub header_read_timeout: Duration,

    /// Seconds a client has to send a request's whole body once its headers are in; a slower
    /// one gets 408 and is disconnected.
    #[arg(long = "body-read-timeout-secs", env = "PROXY_BODY_READ_TIMEOUT_SECS", default_value = "30", value_parser = parse_positive_secs)]
    pub body_read_timeout: Duration,

    /// The built-in tools that exist at all, comma-separated, passed as --tools ("" for none;
    /// unset: the CLI's default set). Clients may choose among these only.
    #[arg(long = "tools", env = "CLAUDE_TOOLS", value_parser = parse_list)]
    pub tools: Option<ToolList>,

    /// Tools (or rules such as `Bash(git log:*)`) that run without asking, passed as
    /// --allowedTools. Clients may only drop some.
    #[arg(long = "allowed-tools", env = "CLAUDE_ALLOWED_TOOLS", value_parser = parse_list, default_value = "")]
    pub allowed_tools: ToolList,

    /// Tools removed for every agent, passed as --disallowedTools. Clients may add more.
    #[arg(long = "disallowed-tools", env = "CLAUDE_DISALLOWED_TOOLS", value_parser = parse_list, default_value = "")]
    pub disallowed_tools: ToolList,

    /// The CLI's permission mode (unset: the CLI's default). Clients may ask for a stricter
    /// one only; bypassPermissions only ever by this setting.
    #[arg(long = "permission-mode", env = "CLAUDE_PERMISSION_MODE", value_enum)]
    pub permission_mode: Option<PermissionMode>,

    /// Most agentic turns a run may take (unset: the CLI's own limit). Clients may ask fewer.
    #[arg(long = "max-turns", env = "CLAUDE_MAX_TURNS", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_turns: Option<u32>,

    /// The most one run may cost, in US dollars (unset: no limit of the proxy's). It is every
    /// run's budget (`--max-budget-usd`) when the request asks none; clients may ask less.
    #[arg(long = "max-budget-usd", env = "PROXY_MAX_BUDGET_USD", value_parser = parse_usd)]
    pub max_budget_usd: Option<f64>,

    /// A JSON file of the MCP servers requests may name (`mcp_servers`): the CLI's
    /// `{"mcpServers": {...}}`, each server with `"keys"` (`["*"]` or key ids) that may use it.
    #[arg(long = "mcp-servers", env = "PROXY_MCP_SERVERS")]
    pub mcp_servers: Option<PathBuf>,

    /// How long a compatible API's run that called its client's tools waits for the results
    /// (the client's next request), in seconds; then it is stopped.
    #[arg(long = "tool-result-timeout-secs", env = "PROXY_TOOL_RESULT_TIMEOUT_SECS", default_value = "600", value_parser = parse_positive_secs)]
    pub tool_result_timeout: Duration,
    /// Budgets per key, comma-separated WHO=AMOUNT/PERIOD: WHO is * (each key) or a key's id
    /// (as GET /usage shows it), AMOUNT such as 5usd or 2000000tokens, PERIOD day or week
    /// (UTC). A key over a budget gets 429 budget_exceeded, and its running agents' next API
    /// request is refused.
    #[arg(long = "key-budgets", env = "PROXY_KEY_BUDGETS", value_parser = parse_key_budgets, default_value = "")]
    pub key_budgets: KeyBudgets,

    /// The URLs a request's `webhook` may name, comma-separated: an entry is an exact URL, or,
    /// ending with `/`, a prefix that allows every URL below it. A request that names another
    /// is refused (403) before anything runs.
    #[arg(long = "webhook-urls", env = "PROXY_WEBHOOK_URLS", value_parser = parse_webhook_urls, default_value = "")]
    pub webhook_urls: WebhookUrls,

    /// The webhook of every agent whose request names none.
    #[arg(long = "webhook-url", env = "PROXY_WEBHOOK_URL", value_parser = parse_webhook_url)]
    pub webhook_url: Option<String>,

    /// The secret webhook events are signed with (HMAC-SHA256, in `X-Claude-Proxy-Signature`),
    /// at least 16 characters; needed when PROXY_WEBHOOK_URLS or PROXY_WEBHOOK_URL is set.
    #[arg(
        long = "webhook-secret",
        env = "PROXY_WEBHOOK_SECRET",
        hide_env_values = true
    )]
    pub webhook_secret: Option<String>,

    /// The wait before a failed webhook delivery's first retry, in milliseconds; each retry
    /// waits twice as long as the one before, over 8 attempts in all (30 s: about an hour).
    #[arg(long = "webhook-retry-base-ms", env = "PROXY_WEBHOOK_RETRY_BASE_MS", default_value = "30000", value_parser = parse_positive)]
    pub webhook_retry_base_ms: usize,

    /// Model names of the compatible APIs mapped to the CLI's, such as
    /// `gpt-4o=sonnet,gpt-4o-mini=haiku` (aliases and claude-* names pass as they are).
    #[arg(long = "model-map", env = "PROXY_MODEL_MAP", value_parser = parse_model_map, default_value = "")]
    pub model_map: ModelMap,

    /// The tools an agent of the compatible APIs (/v1/chat/completions, /v1/messages) has,
    /// comma-separated ("" for none, the default: they answer as a chat model), within
    /// CLAUDE_TOOLS and CLAUDE_DISALLOWED_TOOLS.
    #[arg(long = "compat-tools", env = "PROXY_COMPAT_TOOLS", value_parser = parse_list, default_value = "")]
    pub compat_tools: ToolList,

    /// The system prompt of a compatible API's request that has none.
    #[arg(
        long = "compat-system-prompt",
        env = "PROXY_COMPAT_SYSTEM_PROMPT",
        default_value = "You are a helpful assistant."
    )]
    pub compat_system_prompt: String,

    /// The directory agents run in (created when missing); a request's `cwd` must lie inside.
    #[arg(long = "workdir", env = "CLAUDE_WORKDIR", default_value = "workspace")]
    pub workdir: PathBuf,

    /// Longest a whole run may take, in seconds (0: no limit).
    #[arg(long = "agent-timeout-secs", env = "PROXY_AGENT_TIMEOUT_SECS", default_value = "1800", value_parser = parse_positive_secs)]
    pub agent_timeout: Duration,

    /// Longest the CLI may go without writing a line, in seconds (0: no limit).
    #[arg(long = "idle-timeout-secs", env = "PROXY_IDLE_TIMEOUT_SECS", default_value = "600", value_parser = parse_positive_secs)]
    pub idle_timeout: Duration,

    /// Seconds an interactive agent may wait with no turn running and no message queued; then
    /// it is closed (it ends once its turns are done).
    #[arg(long = "interactive-idle-secs", env = "PROXY_INTERACTIVE_IDLE_SECS", default_value = "600", value_parser = parse_positive_secs)]
    pub interactive_idle: Duration,

    /// How many CLIs to start ahead of the requests they serve, each waiting for its first
    /// message (about 200 MB each); 0: none. They count toward PROXY_MAX_AGENTS's processes.
    #[arg(long = "warm-pool", env = "PROXY_WARM_POOL", default_value = "0")]
    pub warm_pool: usize,

    /// Seconds a CLI of the warm pool waits to be taken before it is ended (and replaced, while
    /// its shape is wanted).
    #[arg(long = "warm-idle-secs", env = "PROXY_WARM_IDLE_SECS", default_value = "600", value_parser = parse_positive_secs)]
    pub warm_idle: Duration,

    /// The shapes of run the warm pool keeps CLIs for, for each client, besides those it
    /// learns from requests: any of stream, interactive, chat.
    #[arg(long = "warm-shapes", env = "PROXY_WARM_SHAPES", default_value = "", value_parser = parse_warm_shapes)]
    pub warm_shapes: WarmShapes,

    /// Let clients answer the CLI's tool approvals (`"approvals": true`). Approvals let a
    /// client allow what the CLI would otherwise refuse: they widen the tool policy.
    #[arg(
        long = "client-approvals",
        env = "PROXY_CLIENT_APPROVALS",
        default_value = "false",
        value_parser = parse_bool,
        action = clap::ArgAction::Set,
    )]
    pub client_approvals: bool,

    /// Seconds a tool approval waits for the client's answer; then it is denied.
    #[arg(long = "permission-timeout-secs", env = "PROXY_PERMISSION_TIMEOUT_SECS", default_value = "300", value_parser = parse_positive_secs)]
    pub permission_timeout: Duration,

    /// Largest image a message to an interactive agent may hold, in bytes once decoded.
    #[arg(long = "max-image-bytes", env = "PROXY_MAX_IMAGE_BYTES", default_value_t = 5 * 1024 * 1024, value_parser = parse_positive)]
    pub max_image_bytes: usize,

    /// Seconds between SIGTERM and SIGKILL when a CLI is stopped.
    #[arg(long = "stop-grace-secs", env = "PROXY_STOP_GRACE_SECS", default_value = "5", value_parser = parse_positive_secs)]
    pub stop_grace: Duration,

    /// Longest CLI output line passed on, in bytes; a longer line is dropped and reported.
    #[arg(long = "max-line-bytes", env = "PROXY_MAX_LINE_BYTES", default_value_t = 64 * 1024 * 1024, value_parser = parse_positive)]
    pub max_line_bytes: usize,

    /// Largest request body accepted, in bytes; a larger one gets 413.
    #[arg(long = "max-body-bytes", env = "PROXY_MAX_BODY_BYTES", default_value_t = 8 * 1024 * 1024, value_parser = parse_positive)]
    pub max_body_bytes: usize,

    /// Most bytes of events kept per agent for readers who come (back) later; the oldest go
    /// first, and a reader that asks for them is told what it missed.
    #[arg(long = "agent-log-bytes", env = "PROXY_AGENT_LOG_BYTES", default_value_t = 8 * 1024 * 1024, value_parser = parse_positive)]
    pub agent_log_bytes: usize,

    /// Most bytes of events kept by all agents together; past it, the logs of the agents that
    /// finished first are emptied first.
    #[arg(long = "logs-total-bytes", env = "PROXY_LOGS_TOTAL_BYTES", default_value_t = 256 * 1024 * 1024, value_parser = parse_positive)]
    pub logs_total_bytes: usize,

    /// Where the proxy keeps its database (created on start). Nothing an agent's tools may read
    /// belongs here: keep it outside CLAUDE_WORKDIR.
    #[arg(long = "data-dir", env = "PROXY_DATA_DIR", default_value = "data")]
    pub data_dir: PathBuf,

    /// Where agents, their events and session owners are kept: sqlite://PATH,
    /// postgres://USER:PASSWORD@HOST/DATABASE (shared by several instances), or memory to keep
    /// them in the process only (unset: claude-proxy.db in PROXY_DATA_DIR).
    #[arg(long = "database-url", env = "PROXY_DATABASE_URL", value_parser = Database::parse)]
    pub database: Option<Database>,

    /// Longest, in milliseconds, an update waits to be written to the database with the ones
    /// after it: the most a crash of the proxy can lose, and (on PostgreSQL) most of the delay
    /// of live events read through another instance. Unset: 100 on SQLite, 20 on PostgreSQL.
    #[arg(long = "store-flush-ms", env = "PROXY_STORE_FLUSH_MS", value_parser = parse_positive)]
    pub store_flush_ms: Option<usize>,

    /// This instance's id among those sharing a PostgreSQL database (unset: the host name and
    /// a random suffix). Letters, digits, `.`, `_` and `-`, at most 64.
    #[arg(long = "instance-id", env = "PROXY_INSTANCE_ID", value_parser = parse_instance_id)]
    pub instance_id: Option<String>,

    /// Seconds without a heartbeat after which another instance ends an instance's running
    /// agents as after a crash (PostgreSQL only).
    #[arg(long = "instance-timeout-secs", env = "PROXY_INSTANCE_TIMEOUT_SECS", default_value = "30", value_parser = parse_positive_secs)]
    pub instance_timeout: Duration,

    /// Seconds an action on an agent that runs on another instance waits for that instance's
    /// answer before it is answered 504 (PostgreSQL only).
    #[arg(long = "forward-timeout-secs", env = "PROXY_FORWARD_TIMEOUT_SECS", default_value = "10", value_parser = parse_positive_secs)]
    pub forward_timeout: Duration,

    /// Each CLI in a bubblewrap sandbox: auto (when bwrap works here; else without, with a
    /// warning), bwrap (refuse to start without it), or off.
    #[arg(long = "sandbox", env = "PROXY_SANDBOX", value_enum, default_value_t = SandboxMode::Auto)]
    pub sandbox: SandboxMode,

    /// The sandbox's network: host (the host's, shared: WebFetch and a tool's own downloads
    /// need it), or gateway (a network of its own whose only way out is the proxy's gateway to
    /// the API: a tool's curl to any other address fails). gateway needs the sandbox.
    #[arg(long = "sandbox-network", env = "PROXY_SANDBOX_NETWORK", value_enum, default_value_t = SandboxNetwork::Host)]
    pub sandbox_network: SandboxNetwork,

    /// Largest session file the database keeps so that any instance can resume it; a larger
    /// session can be resumed only on its own instance (PostgreSQL only).
    #[arg(long = "max-session-bytes", env = "PROXY_MAX_SESSION_BYTES", default_value_t = 32 * 1024 * 1024, value_parser = parse_positive)]
    pub max_session_bytes: usize,

    /// Seconds a finished agent stays visible (GET /agents, /agent/{id}, its events).
    #[arg(long = "agent-retention-secs", env = "PROXY_AGENT_RETENTION_SECS", default_value = "3600", value_parser = parse_positive_secs)]
    pub agent_retention: Duration,

    /// How many finished agents are kept at most; past it, the oldest are forgotten.
    #[arg(
        long = "max-finished-agents",
        env = "PROXY_MAX_FINISHED_AGENTS",
        default_value_t = 1000
    )]
    pub max_finished_agents: usize,

    /// On SIGTERM or SIGINT, the longest the server waits for open streams before it exits.
    #[arg(long = "shutdown-timeout-secs", env = "PROXY_SHUTDOWN_TIMEOUT_SECS", default_value = "10", value_parser = parse_positive_secs)]
    pub shutdown_timeout: Duration,

    /// Seconds of CLI silence after which a stream gets a keep-alive comment.
    #[arg(long = "keepalive-secs", env = "PROXY_KEEPALIVE_SECS", default_value = "15", value_parser = parse_positive_secs)]
    pub keepalive: Duration,

    /// Log format: pretty (for people) or json (for log collectors). Filter with RUST_LOG.
    #[arg(
        long = "log-format",
        env = "PROXY_LOG_FORMAT",
        default_value = "pretty",
        value_enum
    )]
    pub log_format: LogFormat,
}

impl Config {
    /// Reads the settings from `args` and the environment, or returns the one line to print
    /// (or the help/version text, with exit code 0) when they do not parse.
    pub fn from_args<I, T>(args: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        Self::try_parse_from(args)
    }
}

/// Says what was wrong with a setting in a single line: the variable, the value and what it
/// accepts. clap's own message spans several lines and names the flag only.
pub fn one_line_error(err: &clap::Error) -> String {
    use clap::error::{ContextKind, ContextValue};
    let context = |kind| match err.get(kind) {
        Some(ContextValue::String(s)) => Some(s.clone()),
        Some(ContextValue::Strings(v)) => Some(v.join(", ")),
        _ => None,
    };
    let arg = context(ContextKind::InvalidArg);
    let value = context(ContextKind::InvalidValue);
    let rendered = err.to_string();
    let first_line = rendered.lines().next().unwrap_or_default();
    match (arg, value) {
        (Some(arg), Some(value)) => {
            // InvalidArg reads "--max-agents <MAX_AGENTS>"; name the variable people set.
            let flag = arg.split_whitespace().next().unwrap_or(&arg);
            let command = <Config as clap::CommandFactory>::command();
            let var = command
                .get_arguments()
                .find(|a| {
                    a.get_long()
                        .is_some_and(|long| flag.strip_prefix("--") == Some(long))
                })
                .and_then(|a| a.get_env())
                .map(|env| env.to_string_lossy().into_owned());
            let name = match var {
                Some(var) => format!("{var} ({flag})"),
                None => flag.to_owned(),
            };
            // clap's first line reads "error: invalid value 'V' for '--flag <NAME>': <why>".
            let reason = first_line
                .split_once(&format!("{arg}': "))
                .map_or(first_line, |(_, why)| why);
            let valid = context(ContextKind::ValidValue)
                .map(|v| format!("; accepted: {v}"))
                .unwrap_or_default();
            let reason = if valid.is_empty() {
                reason.to_owned()
            } else {
                "not one of the accepted values".to_owned()
            };
            format!("claude-proxy: {name} is {value:?}: {reason}{valid}")
        }
        _ => format!("claude-proxy: {}", first_line.trim_start_matches("error: ")),
    }
}

/// Client model names and the CLI's model for each.
#[derive(Debug, Clone, Default)]
pub struct ModelMap(pub Vec<(String, String)>);

/// `from=to` pairs, comma-separated; `to` is a model the CLI takes.
fn parse_model_map(value: &str) -> Result<ModelMap, String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (from, to) = pair
                .split_once('=')
                .ok_or_else(|| format!("{pair:?} is not NAME=MODEL"))?;
            let (from, to) = (from.trim(), to.trim());
            if from.is_empty() || from.len() > 200 || from.contains(['\0', '\n', '\r']) {
                return Err(format!("{from:?} is not a model name"));
            }
            Ok((from.to_owned(), parse_model(to)?))
        })
        .collect::<Result<_, _>>()
        .map(ModelMap)
}

/// The operator's shapes for the warm pool.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WarmShapes(pub Vec<OperatorShape>);

fn parse_warm_shapes(value: &str) -> Result<WarmShapes, String> {
    let mut shapes = Vec::new();
    for name in value.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let shape = OperatorShape::parse(name)?;
        if !shapes.contains(&shape) {
            shapes.push(shape);
        }
    }
    Ok(WarmShapes(shapes))
}

/// Host names as a `Host` header would carry them, lower-cased, without ports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostList(pub Vec<String>);

fn parse_host_list(value: &str) -> Result<HostList, String> {
    let mut hosts = Vec::new();
    for host in value.split(',').map(str::trim).filter(|h| !h.is_empty()) {
        if host.contains(['/', ' ', '@']) || host.contains("://") {
            return Err(format!(
                "`{host}` is not a host name: give names like `proxy.internal`, without scheme, path or port"
            ));
        }
        hosts.push(host.to_ascii_lowercase());
    }
    Ok(HostList(hosts))
}

/// Budgets per key, as `agent::parse_budgets` reads them.
#[derive(Debug, Clone, Default)]
pub struct KeyBudgets(pub Vec<crate::agent::Budget>);

fn parse_key_budgets(value: &str) -> Result<KeyBudgets, String> {
    crate::agent::parse_budgets(value).map(KeyBudgets)
}

/// PROXY_WEBHOOK_URLS's entries, each an http(s) URL.
#[derive(Debug, Clone, Default)]
pub struct WebhookUrls(pub Vec<String>);

fn parse_webhook_urls(value: &str) -> Result<WebhookUrls, String> {
    let urls: Vec<String> = value
        .split(',')
        .map(str::trim)
        .filter(|url| !url.is_empty())
        .map(str::to_owned)
        .collect();
    crate::agent::WebhookPolicy::new(&urls, None)?;
    Ok(WebhookUrls(urls))
}

fn parse_webhook_url(value: &str) -> Result<String, String> {
    crate::agent::WebhookPolicy::new(&[], Some(value))?;
    Ok(value.trim().to_owned())
}

fn parse_url(value: &str) -> Result<String, String> {
    let rest = value
        .strip_prefix("https://")
        .or_else(|| value.strip_prefix("http://"))
        .ok_or_else(|| format!("{value:?} is not an http:// or https:// URL"))?;
    if rest.is_empty() || rest.starts_with('/') || value.contains(['?', '#', ' ']) {
        return Err(format!("{value:?} names no host, or has a query"));
    }
    Ok(value.to_owned())
}

fn parse_bool(value: &str) -> Result<bool, String> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err("expected true or false".into()),
    }
}

fn parse_positive(value: &str) -> Result<usize, String> {
    match value.trim().parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err("expected a whole number of at least 1".into()),
    }
}

/// A waiting agent holds a request and a few hundred bytes; the bound keeps that small.
const MAX_QUEUE: usize = 100_000;

fn parse_queue(value: &str) -> Result<usize, String> {
    match value.trim().parse::<usize>() {
        Ok(n) if n <= MAX_QUEUE => Ok(n),
        _ => Err(format!(
            "expected a whole number from 0 (no queue) to {MAX_QUEUE}"
        )),
    }
}

fn parse_usd(value: &str) -> Result<f64, String> {
    match value.trim().parse::<f64>() {
        Ok(usd) if usd.is_finite() && usd > 0.0 => Ok(usd),
        _ => Err("expected an amount of US dollars above 0 (such as 2.5)".into()),
    }
}

fn parse_secs(value: &str) -> Result<Duration, String> {
    value
        .trim()
        .parse::<f64>()
        .ok()
        .and_then(|secs| Duration::try_from_secs_f64(secs).ok())
        .ok_or_else(|| "expected a number of seconds, 0 or more (such as 30 or 0.5)".into())
}

fn parse_positive_secs(value: &str) -> Result<Duration, String> {
    match parse_secs(value) {
        Ok(d) if !d.is_zero() => Ok(d),
        _ => Err("expected a number of seconds above 0 (such as 15 or 0.5)".into()),
    }
}

/// How the CLIs are confined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SandboxMode {
    /// In a sandbox when bubblewrap works here, else without.
    Auto,
    /// Always in a sandbox: no start without a working bubblewrap.
    Bwrap,
    /// Never in a sandbox.
    Off,
}

/// What network a sandbox has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SandboxNetwork {
    /// The host's, shared.
    Host,
    /// Its own, whose only way out is the gateway.
    Gateway,
}

fn parse_instance_id(value: &str) -> Result<String, String> {
    let value = value.trim();
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if value.is_empty() || value.len() > 64 || !value.chars().all(allowed) {
        return Err("expected 1 to 64 letters, digits, '.', '_' or '-'".into());
    }
    Ok(value.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_documented_ones() {
        let config = Config::from_args(["claude-proxy"]).unwrap();
        assert_eq!(config.port, 8000);
        assert_eq!(config.max_agents, 8);
        assert_eq!(config.agent_timeout, Duration::from_secs(1800));
        assert_eq!(config.max_line_bytes, 64 << 20);
        assert!(config.use_subscription);
    }

    #[test]
    fn a_bad_value_is_one_line_naming_the_variable() {
        let err = Config::from_args(["claude-proxy", "--max-agents", "lots"]).unwrap_err();
        let line = one_line_error(&err);
        assert!(!line.contains('\n'), "{line}");
        assert!(line.contains("PROXY_MAX_AGENTS"), "{line}");
        assert!(line.contains("at least 1"), "{line}");
    }
}
