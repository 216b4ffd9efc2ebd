//! The gateway every CLI reaches the Messages API through (`ANTHROPIC_BASE_URL`): on
//! 127.0.0.1, on a port of its own, it takes each agent's credential (given out through the
//! core's `Gateway` port, [`Passes`]), checks it, swaps it for the operator's real one, and
//! forwards to the real API ([`Upstream`]), streaming both ways. No CLI, and so no tool, ever
//! holds the operator's credential.
//!
//! `passes.rs` holds the agents' credentials; `upstream.rs` where requests go and with which
//! credential; `login.rs` the stored login, refreshed once for all; `relay.rs` relays one
//! request, and `gather.rs` gathers a fast answer's chunks into fewer writes; `meter.rs` reads
//! its usage from the answer as it passes, for the core to count (`Agents::record_usage`);
//! `limits.rs` reads the subscription's windows from its headers (`Agents::observe_limits`),
//! and while the API refuses the subscription, the gateway refuses the agents' requests
//! itself, until the reset.

mod gather;
mod limits;
mod login;
mod meter;
mod passes;
mod relay;
mod upstream;

use std::io;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::serve::ListenerExt;
use tokio_util::sync::CancellationToken;

use crate::agent::Agents;

pub use login::TOKEN_URL;
pub use passes::Passes;
pub use upstream::Upstream;

/// Longest the gateway waits to connect to the API (a stream, once open, may last as long as
/// the CLI reads it).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// The gateway, bound and not yet serving.
#[derive(Debug)]
pub struct Gateway {
    listener: std::net::TcpListener,
    /// Where sandboxes with a network of their own reach it, through their relay.
    unix: Option<std::os::unix::net::UnixListener>,
    passes: Arc<Passes>,
    upstream: Upstream,
}

impl Gateway {
    /// Binds a port of its own on 127.0.0.1 (any free one).
    pub fn bind(upstream: Upstream) -> io::Result<Self> {
        let listener = std::net::TcpListener::bind(("127.0.0.1", 0))?;
        listener.set_nonblocking(true)?;
        let base_url = format!("http://{}", listener.local_addr()?);
        Ok(Self {
            listener,
            unix: None,
            passes: Arc::new(Passes::new(base_url)),
            upstream,
        })
    }

    /// Listens on a unix socket at `path` too (one left by an earlier run is replaced), for
    /// sandboxes with a network of their own; returns where it is.
    pub fn bind_unix(&mut self, path: &std::path::Path) -> io::Result<std::path::PathBuf> {
        match std::fs::remove_file(path) {
            Err(err) if err.kind() != io::ErrorKind::NotFound => return Err(err),
            _ => {}
        }
        let listener = std::os::unix::net::UnixListener::bind(path)?;
        listener.set_nonblocking(true)?;
        self.unix = Some(listener);
        Ok(path.to_owned())
    }

    /// Its port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.listener.local_addr().map_or(0, |a| a.port())
    }

    /// Where CLIs reach it: `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> &str {
        self.passes.base()
    }

    /// The agents' credentials, for the core to give out and revoke.
    pub fn passes(&self) -> Arc<Passes> {
        Arc::clone(&self.passes)
    }

    /// Serves until `until` is cancelled (then the relays under way end with their streams),
    /// counting what each agent's requests used into `agents`.
    pub async fn serve(self, agents: Agents, until: CancellationToken) -> io::Result<()> {
        let client = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            // The API's answers as they are: no redirect is followed with a credential on.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(io::Error::other)?;
        tracing::info!(
            listening = self.passes.base(),
            upstream = %self.upstream.url,
            credential = self.upstream.credential.kind(),
            "the CLIs' gateway to the API is up"
        );
        let relay = Arc::new(relay::Relay {
            passes: self.passes,
            upstream: self.upstream,
            client,
            agents,
        });
        let router = Router::new().fallback(relay::relay).with_state(relay);
        // Each write goes when it is made: Nagle's algorithm would hold one back until the
        // CLI's (delayed) ACK of the one before, up to 40 ms.
        let listener = tokio::net::TcpListener::from_std(self.listener)?.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        if let Some(unix) = self.unix {
            let unix = tokio::net::UnixListener::from_std(unix)?;
            let (router, until) = (router.clone(), until.clone());
            tokio::spawn(async move {
                let served = axum::serve(unix, router)
                    .with_graceful_shutdown(until.cancelled_owned())
                    .await;
                if let Err(err) = served {
                    tracing::error!(%err, "the gateway's unix socket failed");
                }
            });
        }
        axum::serve(listener, router)
            .with_graceful_shutdown(until.cancelled_owned())
            .await
    }
}
