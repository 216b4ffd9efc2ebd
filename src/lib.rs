//! claude-proxy runs the Claude Code CLI for HTTP clients and streams its stream-json output
//! back as Server-Sent Events.
//!
//! [`app`] builds the router over an [`AppState`]; [`run`] serves it on a listener until a
//! shutdown future resolves, then ends every agent before it returns.

pub mod agent;
pub mod auth;
pub mod config;
pub mod error;
pub mod http;
pub mod metrics;
pub mod policy;
pub mod runner;
mod serve;
pub mod state;
pub mod telemetry;

use std::future::Future;
use std::io;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use tokio::net::{TcpListener, TcpSocket, lookup_host};

pub use config::Config;
pub use http::app;
pub use state::AppState;

/// Locks `mutex`, poisoned or not. Every critical section in this crate leaves its data
/// consistent at each step (a single insert, remove, field update or write), so a panic in
/// one of them is no reason for every later caller to panic too.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
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

/// Serves the API on `listener` until `shutdown` resolves. Then it stops accepting, ends every
/// agent (SIGTERM, SIGKILL after the grace period, reaped), lets open streams send their last
/// events, and returns, at the latest after the shutdown timeout. Settings that do not hold
/// together (see [`Config::validate`]) are an error of kind `InvalidInput`.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let shutdown_timeout = config.shutdown_timeout;
    let limits = serve::ConnectionLimits {
        max_connections: config.max_connections,
        header_read_timeout: config.header_read_timeout,
    };
    let state =
        AppState::new(config).map_err(|err| io::Error::new(io::ErrorKind::InvalidInput, err))?;
    let stopping = state.shutdown.clone();
    let router = app(state.clone());
    let mut server = tokio::spawn(serve::serve(
        listener,
        router,
        limits,
        state.metrics.clone(),
        stopping.clone(),
    ));

    // Finished agents are also forgotten when read; this frees them when nobody reads.
    let sweep_every =
        (state.config.agent_retention / 4).clamp(Duration::from_secs(1), Duration::from_secs(60));
    let registry = state.registry.clone();
    let sweeping = stopping.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(sweep_every);
        loop {
            tokio::select! {
                _ = tick.tick() => registry.forget_expired(),
                () = sweeping.cancelled() => break,
            }
        }
    });

    tokio::select! {
        () = shutdown => {}
        served = &mut server => return served.map_err(io::Error::other),
    }

    let deadline = tokio::time::Instant::now() + shutdown_timeout;
    tracing::info!(agents = state.registry.running(), "shutting down");
    stopping.cancel();
    state.tasks.close();
    if tokio::time::timeout_at(deadline, state.tasks.wait())
        .await
        .is_err()
    {
        tracing::warn!("agents still running at the shutdown timeout; killing them");
        state.registry.kill_all();
    }
    match tokio::time::timeout_at(deadline, &mut server).await {
        Ok(served) => served.map_err(io::Error::other),
        Err(_) => {
            tracing::warn!(
                "clients still connected at the shutdown timeout; closing their connections"
            );
            server.abort();
            Ok(())
        }
    }
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
