//! The port to the gateway every CLI reaches the Messages API through: the core hands each
//! agent a credential of its own when it starts, and revokes it once its CLI is reaped. The
//! real credential stays with the gateway (`crate::gateway`), which the core knows only
//! through this trait.

use std::ffi::OsString;
use std::fmt;
use std::sync::Arc;

use uuid::Uuid;

use crate::agent::admission::keys::Client;

pub trait Gateway: Send + Sync + fmt::Debug + 'static {
    /// Where a CLI reaches the gateway: `http://127.0.0.1:PORT`.
    fn base_url(&self) -> &str;

    /// A new credential `pass_id` of `owner`, good at the gateway only, and only until it is
    /// revoked; what its requests use is its agent's, `pass_id` until it is bound to another.
    fn issue(&self, pass_id: Uuid, owner: Client) -> String;

    /// The CLI holding `pass_id` (started ahead, by the pool) now runs the agent `agent_id`.
    fn bind(&self, pass_id: Uuid, agent_id: Uuid);

    /// The CLI has ended: its credential is worth nothing from now on.
    fn revoke(&self, pass_id: Uuid);
}

/// A CLI's credential at the gateway, revoked when dropped (once its CLI is reaped).
pub struct Pass {
    gateway: Arc<dyn Gateway>,
    id: Uuid,
    credential: String,
}

impl fmt::Debug for Pass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the credential itself, in a log or a panic.
        write!(f, "Pass({})", self.id)
    }
}

impl Pass {
    /// A pass for the CLI of the agent `id`, or of a CLI started ahead of its agent.
    pub fn issue(gateway: &Arc<dyn Gateway>, id: Uuid, owner: Client) -> Self {
        Self {
            credential: gateway.issue(id, owner),
            gateway: Arc::clone(gateway),
            id,
        }
    }

    /// Its CLI, started ahead, now runs the agent `agent_id`: what it uses is that agent's.
    pub fn bind(&self, agent_id: Uuid) {
        self.gateway.bind(self.id, agent_id);
    }

    /// The CLI's environment `base`, with the gateway as its API and this pass as its key.
    pub fn env(&self, base: &[(OsString, OsString)]) -> Arc<Vec<(OsString, OsString)>> {
        Arc::new(crate::cli::through_gateway(
            base,
            self.gateway.base_url(),
            &self.credential,
        ))
    }
}

impl Drop for Pass {
    fn drop(&mut self) {
        self.gateway.revoke(self.id);
    }
}
