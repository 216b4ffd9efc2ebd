//! The accept loop, in our own hands rather than `axum::serve`'s: that gives hyper a timer
//! (so a client that is silent or trickles its headers is cut off), a cap on open
//! connections, and TCP_NODELAY.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;

#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    pub max_connections: usize,
    pub header_read_timeout: Duration,
}

/// Serves `router` until `stopping` is cancelled, then lets open connections finish their
/// requests and returns. Dropping the returned future closes every connection at once.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    metrics: Arc<Metrics>,
    stopping: CancellationToken,
) {
    // HTTP/1 only: to tell HTTP/2 from HTTP/1, the automatic builder reads a connection's
    // first bytes with no time limit, so a connection that sends none (or a few) held its slot
    // for as long as it stayed open. HTTP/1's own header timer starts with the connection
    // (and again after each response), silent or not. No client of the proxy speaks HTTP/2
    // without TLS, and TLS ends in front of it.
    let mut builder = auto::Builder::new(TokioExecutor::new()).http1_only();
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    let mut connections = JoinSet::new();
    let mut refusals = Refusals::default();
    loop {
        let (tcp, peer) = tokio::select! {
            () = stopping.cancelled() => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of descriptors, most likely: wait for some to be given back.
                    tracing::warn!(%err, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            metrics.connections_refused.inc();
            refusals.refused(peer, limits.max_connections);
            continue;
        };
        // Each event is written as soon as it is ready: Nagle's algorithm would hold small
        // writes back for the peer's delayed ACK.
        let _ = tcp.set_nodelay(true);
        let service = TowerToHyperService::new(router.clone());
        let connection = builder
            .serve_connection(TokioIo::new(tcp), service)
            .into_owned();
        let connection = graceful.watch(connection);
        connections.spawn(async move {
            if let Err(err) = connection.await {
                tracing::debug!(%peer, %err, "connection ended with an error");
            }
            drop(slot);
        });
    }
    drop(listener);
    graceful.shutdown().await;
    while connections.join_next().await.is_some() {}
}

/// How often refused connections are logged at most: a flood of them (anyone who can connect
/// can make one) must not become a flood of log lines.
const REFUSALS_LOGGED_EVERY: Duration = Duration::from_secs(1);

/// The refused connections not yet logged, logged together at most once a second.
#[derive(Debug, Default)]
struct Refusals {
    last_logged: Option<std::time::Instant>,
    unlogged: u64,
}

impl Refusals {
    fn refused(&mut self, peer: std::net::SocketAddr, max: usize) {
        self.unlogged += 1;
        if self
            .last_logged
            .is_some_and(|at| at.elapsed() < REFUSALS_LOGGED_EVERY)
        {
            return;
        }
        tracing::warn!(
            %peer,
            max,
            refused = self.unlogged,
            "connections refused: PROXY_MAX_CONNECTIONS are open (refused counts those since the last such line)"
        );
        self.last_logged = Some(std::time::Instant::now());
        self.unlogged = 0;
    }
}
