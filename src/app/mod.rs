//! The application: everything the server is, built once from its settings, and served until
//! it is told to stop. Settings are checked here, once, and a start-up that cannot go on says
//! why in one line.

mod config;
mod keys;
mod mcp_servers;
mod webhooks;

use std::future::Future;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpSocket, lookup_host};
use tokio_util::sync::CancellationToken;

pub use crate::telemetry::Telemetry;
pub use config::{Config, SandboxMode, SandboxNetwork, one_line_error};
pub use keys::KeysError;

use crate::agent::{self, Admission, Agents, ApiKeys, Retention, ToolPolicy};
use crate::cli;
use crate::gateway::{Gateway, Upstream};
use crate::http::{self, ApiState, ConnectionLimits};
use crate::metrics::Metrics;
use crate::process;
use crate::store::{self, Database};

/// Most bytes of events waiting for the store's writer: past it, a slow disk costs events
/// kept, never memory or a stream's pace.
const STORE_QUEUE_BYTES: usize = 64 * 1024 * 1024;

/// Why the server cannot start with these settings.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// The client keys cannot be read or are too short.
    #[error(transparent)]
    Keys(#[from] KeysError),

    #[error(
        "PROXY_HOST={host} is reachable from the network, and no PROXY_API_KEY is set: anyone who can reach it could run the CLI on your subscription. Set PROXY_API_KEY (or PROXY_API_KEY_FILE), or PROXY_ALLOW_UNAUTHENTICATED=true to accept that."
    )]
    /// It would listen beyond loopback with no key asked of clients.
    OpenToTheNetwork {
        /// PROXY_HOST.
        host: String,
    },

    #[error("CLAUDE_WORKDIR={} cannot be used: {source}", path.display())]
    /// The agents' working directory cannot be made or read.
    Workdir {
        /// CLAUDE_WORKDIR.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },

    #[error("PROXY_DATA_DIR={} cannot be used: {source}", path.display())]
    /// The proxy's own data directory cannot be made or read.
    DataDir {
        /// PROXY_DATA_DIR.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },

    #[error(
        "PROXY_DATA_DIR={} is inside CLAUDE_WORKDIR={}: the agents' tools could read every client's agents, sessions and events there; put it outside",
        data_dir.display(), workdir.display()
    )]
    /// The data directory is where the agents' tools could read it.
    DataDirInWorkdir {
        /// PROXY_DATA_DIR.
        data_dir: PathBuf,
        /// CLAUDE_WORKDIR.
        workdir: PathBuf,
    },

    /// The store's database cannot be opened or migrated.
    #[error(transparent)]
    Store(#[from] store::OpenError),

    /// A sandbox was asked for and bubblewrap cannot give one.
    #[error("PROXY_SANDBOX=bwrap, but {0}; install it, or set PROXY_SANDBOX=auto or off")]
    Sandbox(process::SandboxError),

    #[error(
        "PROXY_COMPAT_TOOLS names {0}, which CLAUDE_TOOLS or CLAUDE_DISALLOWED_TOOLS does not allow"
    )]
    /// A tool of the compatible routes that the operator's policy forbids (its name).
    CompatToolNotAllowed(String),

    /// The operator's MCP servers cannot be used.
    #[error(transparent)]
    McpServers(#[from] mcp_servers::McpServersError),
    /// The CLIs' gateway cannot listen on 127.0.0.1 (or its unix socket).
    #[error("the CLIs' gateway cannot listen: {0}")]
    Gateway(io::Error),

    /// A network of the sandbox's own was asked for, and there is no sandbox.
    #[error(
        "PROXY_SANDBOX_NETWORK=gateway needs the sandbox, and the CLIs run without one ({0}); set PROXY_SANDBOX=bwrap with bubblewrap installed, or PROXY_SANDBOX_NETWORK=host"
    )]
    NetworkWithoutSandbox(String),

    /// Webhooks are asked for without the secret that signs them.
    #[error(
        "PROXY_WEBHOOK_URLS or PROXY_WEBHOOK_URL is set, and PROXY_WEBHOOK_SECRET is not (or is shorter than 16 characters): every webhook event is signed with it; set it"
    )]
    WebhookWithoutSecret,

    /// Webhooks are asked for, and the store keeps nothing for their outbox.
    #[error(
        "webhooks are delivered from an outbox in the store, and PROXY_DATABASE_URL=memory keeps none: use sqlite:// or postgres://, or unset PROXY_WEBHOOK_URLS and PROXY_WEBHOOK_URL"
    )]
    WebhookWithoutStore,

    /// A webhook URL of the operator's is not an http(s) URL.
    #[error("PROXY_WEBHOOK_URLS or PROXY_WEBHOOK_URL: {0}")]
    WebhookUrl(String),

    /// The webhooks' HTTP client cannot be made.
    #[error("the webhooks' HTTP client cannot be made: {0}")]
    WebhookClient(String),
}

/// The host name and a random suffix: instances on one host (or containers that share a name)
/// differ.
fn default_instance_id() -> String {
    let host = nix::unistd::gethostname()
        .ok()
        .and_then(|name| name.into_string().ok())
        .map(|name| {
            name.chars()
                .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
                .take(48)
                .collect::<String>()
        })
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "claude-proxy".to_owned());
    format!("{host}-{}", &uuid::Uuid::new_v4().simple().to_string()[..8])
}

/// The data dir, absolute, its links followed as far as it exists: on a first start it does
/// not, and a link to the workdir above it must count all the same.
fn data_dir_of(config: &Config) -> PathBuf {
    process::resolve_path(&config.data_dir).unwrap_or_else(|_| config.data_dir.clone())
}

/// The sandbox the settings ask for, if it works here; with `auto`, why there is none. With
/// `network`, a network of its own whose only way out is the gateway.
fn sandbox(
    config: &Config,
    data_dir: &std::path::Path,
    network: Option<process::GatewayLink>,
) -> Result<(Option<Arc<process::Sandbox>>, Option<process::SandboxError>), StartupError> {
    if config.sandbox == SandboxMode::Off {
        if network.is_some() {
            return Err(StartupError::NetworkWithoutSandbox(
                "PROXY_SANDBOX=off".into(),
            ));
        }
        return Ok((None, None));
    }
    // What no sandbox shows, even where a directory holding it is shown.
    let mut hidden = vec![data_dir.to_path_buf()];
    hidden.extend(config.api_key_file.iter().cloned());
    hidden.extend(std::env::current_exe().ok());
    if let Some(Database::Sqlite(path)) = &config.database {
        hidden.push(path.clone());
    }
    // Where each leads, whether it exists yet or not: a place is compared with the directories
    // shown, which are resolved too.
    let hidden = hidden
        .into_iter()
        .map(|path| process::resolve_path(&path).unwrap_or(path))
        .collect();
    let confined = network.is_some();
    match (process::Sandbox::probe(hidden, network), config.sandbox) {
        (Ok(sandbox), _) => Ok((Some(Arc::new(sandbox)), None)),
        (Err(err), SandboxMode::Bwrap) => Err(StartupError::Sandbox(err)),
        (Err(err), _) if confined => Err(StartupError::NetworkWithoutSandbox(err.to_string())),
        (Err(err), _) => Ok((None, Some(err))),
    }
}

/// Why the server stopped other than by being told to.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// It could not start.
    #[error(transparent)]
    Startup(#[from] StartupError),
    /// The task that served panicked or was cancelled.
    #[error("the server failed: {0}")]
    Server(#[from] tokio::task::JoinError),
}

/// The server, built and not yet serving.
#[derive(Debug)]
pub struct App {
    state: ApiState,
    request_limits: http::RequestLimits,
    connections: ConnectionLimits,
    shutdown_timeout: Duration,
    /// Cancelled when the server shuts down: it stops accepting, and every agent stops.
    stopping: CancellationToken,
    /// Why the CLIs run unconfined although the settings asked for a sandbox if it works: said
    /// once the log is up.
    no_sandbox: Option<process::SandboxError>,
    /// The CLIs' gateway to the API, bound: it serves until every agent has ended.
    gateway: Gateway,
    /// The delivery of webhook events, when there are webhooks.
    webhooks: Option<webhooks::Delivery>,
}

impl App {
    /// Checks the settings and builds everything from them: the client keys, the tool policy,
    /// the agents' working directory (created when missing), the CLI's environment (the
    /// server's own, filtered once here).
    pub fn build(config: Config) -> Result<Self, StartupError> {
        let keys = ApiKeys::new(&keys::load(
            config.api_key.as_deref(),
            config.api_key_file.as_deref(),
        )?);
        if !keys.is_enabled() && !config.allow_unauthenticated && !is_loopback(&config.host) {
            return Err(StartupError::OpenToTheNetwork { host: config.host });
        }
        let workdir = std::fs::create_dir_all(&config.workdir)
            .and_then(|()| config.workdir.canonicalize())
            .map_err(|source| StartupError::Workdir {
                path: config.workdir.clone(),
                source,
            })?;
        let data_dir = data_dir_of(&config);
        if data_dir.starts_with(&workdir) {
            return Err(StartupError::DataDirInWorkdir { data_dir, workdir });
        }
        let metrics = Arc::new(Metrics::default());
        let retention = Retention {
            keep_for: config.agent_retention,
            max_finished: config.max_finished_agents,
        };
        let database = config
            .database
            .clone()
            .unwrap_or_else(|| Database::Sqlite(config.data_dir.join("claude-proxy.db")));
        let instance_id: Arc<str> = Arc::from(
            config
                .instance_id
                .clone()
                .unwrap_or_else(default_instance_id),
        );
        let limits = |default_flush_ms: usize| store::Limits {
            flush: Duration::from_millis(config.store_flush_ms.unwrap_or(default_flush_ms) as u64),
            agent_log_bytes: config.agent_log_bytes,
            logs_total_bytes: config.logs_total_bytes,
            retention,
            queue_bytes: STORE_QUEUE_BYTES,
        };
        let mut cluster = None;
        let store: Option<Arc<dyn agent::Store>> = match database {
            Database::Memory => None,
            Database::Sqlite(path) => {
                let dir = match path.parent() {
                    Some(parent) if !parent.as_os_str().is_empty() => parent.to_owned(),
                    _ => PathBuf::from("."),
                };
                std::fs::create_dir_all(&dir).map_err(|source| StartupError::DataDir {
                    path: dir.clone(),
                    source,
                })?;
                Some(Arc::new(store::open_sqlite(
                    &path,
                    limits(100),
                    Arc::clone(&metrics),
                )?))
            }
            Database::Postgres(url) => {
                let settings = store::ClusterSettings {
                    instance: Arc::clone(&instance_id),
                    instance_timeout: config.instance_timeout,
                    forward_timeout: config.forward_timeout,
                    max_session_bytes: config.max_session_bytes,
                };
                let shared =
                    store::open_postgres(&url, settings, limits(20), Arc::clone(&metrics))?;
                cluster = Some(shared.cluster);
                Some(shared.store)
            }
        };
        let server_env: Vec<_> = std::env::vars_os().collect();
        let cli_env = Arc::new(cli::environment(server_env.iter().cloned()));
        let mut gateway = Gateway::bind(Upstream::from_env(
            config.upstream_url.as_deref(),
            &server_env,
            config.use_subscription,
            &config.oauth_token_url,
        ))
        .map_err(StartupError::Gateway)?;
        let network = match config.sandbox_network {
            SandboxNetwork::Host => None,
            SandboxNetwork::Gateway => {
                std::fs::create_dir_all(&data_dir).map_err(|source| StartupError::DataDir {
                    path: data_dir.clone(),
                    source,
                })?;
                let socket = gateway
                    .bind_unix(&data_dir.join("gateway.sock"))
                    .map_err(StartupError::Gateway)?;
                Some(process::GatewayLink {
                    socket,
                    port: gateway.port(),
                    relay: std::env::current_exe().map_err(StartupError::Gateway)?,
                })
            }
        };
        let (sandbox, no_sandbox) = sandbox(&config, &data_dir, network)?;
        let cli_login_env = Arc::new(cli::login_environment(
            server_env.iter().cloned(),
            config.use_subscription,
            gateway.base_url(),
        ));
        let webhook_policy =
            agent::WebhookPolicy::new(&config.webhook_urls.0, config.webhook_url.as_deref())
                .map_err(StartupError::WebhookUrl)?;
        let webhook_wake = Arc::new(tokio::sync::Notify::new());
        let webhooks = match (webhook_policy.enabled(), &store) {
            (false, _) => None,
            (true, None) => return Err(StartupError::WebhookWithoutStore),
            (true, Some(store)) => {
                let secret = config
                    .webhook_secret
                    .as_deref()
                    .filter(|secret| secret.chars().count() >= 16)
                    .ok_or(StartupError::WebhookWithoutSecret)?;
                Some(
                    webhooks::Delivery::new(
                        Arc::clone(store),
                        secret,
                        Duration::from_millis(config.webhook_retry_base_ms as u64),
                        Arc::clone(&instance_id),
                        Arc::clone(&webhook_wake),
                    )
                    .map_err(|err| StartupError::WebhookClient(err.to_string()))?,
                )
            }
        };
        let nonzero = |d: Duration| (!d.is_zero()).then_some(d);
        let compat = agent::CompatSettings {
            model_map: config.model_map.0.clone(),
            tools: config.compat_tools.0.clone(),
            system_prompt: config.compat_system_prompt.clone(),
        };
        if let Some(tool) = compat.tools.iter().find(|tool| {
            let listed = config
                .tools
                .as_ref()
                .is_none_or(|tools| tools.0.contains(tool));
            !listed || config.disallowed_tools.0.contains(tool)
        }) {
            return Err(StartupError::CompatToolNotAllowed(tool.clone()));
        }
        let settings = agent::Settings {
            cli: config.cli_path,
            cli_env: Arc::clone(&cli_env),
            cli_login_env: Arc::clone(&cli_login_env),
            gateway: gateway.passes(),
            limits: process::Limits {
                timeout: nonzero(config.agent_timeout),
                idle_timeout: nonzero(config.idle_timeout),
                stop_grace: config.stop_grace,
                max_line_bytes: config.max_line_bytes,
            },
            default_model: config.default_model,
            policy: Arc::new(ToolPolicy {
                tools: config.tools.map(|t| t.0),
                allowed_tools: config.allowed_tools.0,
                disallowed_tools: config.disallowed_tools.0,
                permission_mode: config.permission_mode,
                max_turns: config.max_turns,
                max_budget_usd: config.max_budget_usd,
                mcp_servers: mcp_servers::load(config.mcp_servers.as_deref())?,
                workdir: Arc::from(workdir),
            }),
            admission: Admission {
                max_agents: config.max_agents,
                max_agents_per_key: config.max_agents_per_key,
                queue: (config.queue > 0).then_some(config.queue),
            },
            retention,
            agent_log_bytes: config.agent_log_bytes,
            logs_total_bytes: config.logs_total_bytes,
            interactive_idle: config.interactive_idle,
            permission_timeout: config.permission_timeout,
            client_approvals: config.client_approvals,
            max_image_bytes: config.max_image_bytes,
            instance_id,
            store,
            cluster,
            forward_timeout: config.forward_timeout,
            claude_config_dir: cli::config_dir(&cli_env),
            sandbox,
            homes: data_dir.join("homes"),
            prompts: data_dir.join("prompts"),
            workspace_per_key: keys.is_enabled(),
            known_sessions_only: keys.is_enabled(),
            compat,
            tool_result_timeout: config.tool_result_timeout,
            warm: agent::WarmSettings {
                size: config.warm_pool,
                idle: config.warm_idle,
                shapes: config.warm_shapes.0,
                owners: keys.clients(),
            },
            budgets: config.key_budgets.0,
            webhooks: webhook_policy,
            webhook_wake,
        };
        let keys_enabled = keys.is_enabled();
        let stopping = CancellationToken::new();
        Ok(Self {
            state: ApiState {
                agents: Agents::new(settings, Arc::clone(&metrics), stopping.clone()),
                keys,
                metrics,
                keepalive: config.keepalive,
                metrics_key: config
                    .metrics_key
                    .as_deref()
                    .map(|key| Arc::new(http::MetricsKey::new(key))),
            },
            request_limits: http::RequestLimits {
                max_body_bytes: config.max_body_bytes,
                body_read_timeout: config.body_read_timeout,
                allowed_hosts: (!keys_enabled).then(|| Arc::from(config.allowed_hosts.0.clone())),
            },
            connections: ConnectionLimits {
                max_connections: config.max_connections,
                header_read_timeout: config.header_read_timeout,
            },
            shutdown_timeout: config.shutdown_timeout,
            stopping,
            no_sandbox,
            gateway,
            webhooks,
        })
    }

    /// Serves the API on `listener` until `shutdown` resolves. Then it stops accepting, ends
    /// every agent (SIGTERM, SIGKILL after the grace period, reaped), lets open streams send
    /// their last events, and returns, at the latest after the shutdown timeout.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), Error> {
        if let Some(allowed) = &self.request_limits.allowed_hosts {
            let listening = listener.local_addr().map(|a| a.ip());
            if listening.is_ok_and(|ip| !ip.is_loopback()) {
                tracing::warn!(
                    allowed = ?allowed,
                    "listening beyond loopback without client keys: only requests to localhost, a loopback address or PROXY_ALLOWED_HOSTS are answered, so name in PROXY_ALLOWED_HOSTS the host names clients use"
                );
            }
        }
        if let Some(why) = &self.no_sandbox {
            tracing::warn!(
                %why,
                "the CLIs run without a sandbox (PROXY_SANDBOX=auto): a tool they run can see this server and other clients' files"
            );
        }
        let agents = self.state.agents.clone();
        if let Ok(addr) = listener.local_addr() {
            agents.listening_at(addr);
        }
        // Cancelled once every CLI is reaped, not before: a CLI that ends its last request
        // while it is stopped still reaches the API.
        let gateway_stopping = CancellationToken::new();
        let gateway = tokio::spawn(self.gateway.serve(agents.clone(), gateway_stopping.clone()));
        let router = http::router(self.state.clone(), self.request_limits.clone());
        let mut server = tokio::spawn(http::serve(
            listener,
            router,
            self.connections,
            Arc::clone(&self.state.metrics),
            self.stopping.clone(),
        ));

        // Whether the CLI is logged in, asked once now: /health has it at hand, and a login
        // about to expire is warned of at start.
        tokio::spawn({
            let agents = agents.clone();
            async move { agents.cli_login().await }
        });

        // Actions other instances forward for the agents that run here.
        tokio::spawn({
            let (agents, stopping) = (agents.clone(), self.stopping.clone());
            async move { agents.answer_forwarded(stopping).await }
        });

        // CLIs started ahead of the requests they serve.
        tokio::spawn({
            let agents = agents.clone();
            async move { agents.keep_warm().await }
        });

        // Webhook events, from the store's outbox; stopped before the agents are, so that what
        // it claimed is handed back before the store's last write.
        let delivering = tokio_util::task::TaskTracker::new();
        if let Some(delivery) = self.webhooks.clone() {
            delivering.spawn(delivery.run(self.stopping.clone()));
        }
        delivering.close();

        // Reads never show an expired agent; this gives its memory back. And what a tool left
        // behind in a session of its own is reaped once it exits.
        let sweeping = self.stopping.clone();
        let swept = agents.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(swept.sweep_interval());
            loop {
                tokio::select! {
                    _ = tick.tick() => {
                        swept.forget_expired();
                        process::reap_adopted_orphans();
                    }
                    () = sweeping.cancelled() => break,
                }
            }
        });

        tokio::select! {
            () = shutdown => {}
            served = &mut server => return Ok(served?),
        }
        let deadline = tokio::time::Instant::now() + self.shutdown_timeout;
        self.stopping.cancel();
        if tokio::time::timeout_at(deadline, delivering.wait())
            .await
            .is_err()
        {
            tracing::warn!("the webhook delivery had not stopped at the shutdown timeout");
        }
        agents.shut_down(deadline).await;
        gateway_stopping.cancel();
        match tokio::time::timeout_at(deadline, gateway).await {
            Ok(Ok(Err(err))) => tracing::warn!(%err, "the CLIs' gateway failed"),
            Ok(Err(err)) => tracing::warn!(%err, "the CLIs' gateway failed"),
            Ok(Ok(Ok(()))) | Err(_) => {}
        }
        match tokio::time::timeout_at(deadline, &mut server).await {
            Ok(served) => Ok(served?),
            Err(_) => {
                tracing::warn!(
                    "clients still connected at the shutdown timeout; closing their connections"
                );
                server.abort();
                Ok(())
            }
        }
    }
}

/// Builds the server from `config` and serves it on `listener` until `shutdown` resolves (see
/// [`App::serve`]).
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    App::build(config)?.serve(listener, shutdown).await
}

/// Makes this process the keeper of its CLIs' whole families: the reaper of what they leave
/// behind (so a sandboxed run ends as soon as its CLI does, not when an init gets round to its
/// bubblewrap), and the watchdog process that ends them all if this one dies without the
/// chance to.
pub fn start_watchdog() -> io::Result<()> {
    process::become_subreaper()?;
    process::watchdog::start()
}

/// Sets up logging in `format` (`Config::log_format`): RUST_LOG filters what is written; and,
/// with the standard `OTEL_EXPORTER_OTLP_*` variables, the export of traces, to be shut down
/// (its last spans sent) once the server has stopped. An error is one line, for start-up.
pub fn init_logging(format: crate::telemetry::LogFormat) -> Result<Telemetry, String> {
    crate::telemetry::init(format)
}

/// When this program was started as a sandbox's relay to the gateway (the sandbox runs it so,
/// with `PROXY_SANDBOX_NETWORK=gateway`), serves as one and exits. First thing in `main`.
pub fn serve_relay_if_asked() {
    process::relay::serve_if_asked();
}

/// When this program was started as the watchdog ([`start_watchdog`] does that), serves as
/// one and exits. First thing in `main`.
pub fn serve_watchdog_if_asked() {
    process::watchdog::serve_if_asked();
}

/// Listens on `host:port` (the first of its addresses that can be bound) with room for a burst
/// of `backlog` connections waiting to be accepted.
///
/// tokio's `TcpListener::bind` asks for a backlog of 128, as std does: a thousand clients
/// connecting at once overflow it, and the kernel drops the handshakes it has no room for, to
/// be retried by the clients a whole second later. The kernel caps `backlog` at
/// `net.core.somaxconn` (4096 on current Linux).
pub async fn bind(host: &str, port: u16, backlog: u32) -> io::Result<TcpListener> {
    let mut last_error = None;
    for address in lookup_host((host, port)).await? {
        let socket = if address.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        socket.set_reuseaddr(true)?;
        match socket.bind(address) {
            Ok(()) => return socket.listen(backlog),
            Err(err) => last_error = Some(err),
        }
    }
    Err(last_error
        .unwrap_or_else(|| io::Error::new(io::ErrorKind::NotFound, "the host name has no address")))
}

/// Lets this process hold as many files as it may: every agent takes several descriptors
/// (three pipes, a socket), and the usual soft limit of 1024 is reached early.
pub fn raise_open_files_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) if soft < hard => {
            if let Err(err) = setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
                tracing::warn!(%err, soft, hard, "could not raise the open-files limit");
            }
        }
        Ok(_) => {}
        Err(err) => tracing::warn!(%err, "could not read the open-files limit"),
    }
}

fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_network_address_needs_a_key_or_a_waiver() {
        let dir = tempfile::tempdir().unwrap();
        let workdir = dir.path().join("w").display().to_string();
        let base = ["claude-proxy", "--workdir", workdir.as_str()];
        let with =
            |extra: &[&str]| App::build(Config::from_args(base.iter().chain(extra)).unwrap());
        assert!(with(&[]).is_ok(), "loopback needs no key");
        assert!(with(&["--host", "::1"]).is_ok());
        let err = with(&["--host", "0.0.0.0"]).unwrap_err().to_string();
        assert!(
            err.contains("PROXY_API_KEY") && !err.contains('\n'),
            "{err}"
        );
        assert!(with(&["--host", "0.0.0.0", "--api-key", "a-long-enough-key-0123"]).is_ok());
        assert!(with(&["--host", "0.0.0.0", "--allow-unauthenticated", "true"]).is_ok());
    }
}
