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

    /// A new credential for the agent `agent_id` of `owner`, good at the gateway only, and
    /// only until it is revoked.
    fn issue(&self, agent_id: Uuid, owner: Client) -> String;

    /// The agent has ended: its credential is worth nothing from now on.
    fn revoke(&self, agent_id: Uuid);
}

/// An agent's credential at the gateway, revoked when dropped (once its CLI is reaped).
pub struct Pass {
    gateway: Arc<dyn Gateway>,
    agent_id: Uuid,
    credential: String,
}

impl fmt::Debug for Pass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the credential itself, in a log or a panic.
        write!(f, "Pass({})", self.agent_id)
    }
}

impl Pass {
    pub fn issue(gateway: &Arc<dyn Gateway>, agent_id: Uuid, owner: Client) -> Self {
        Self {
            credential: gateway.issue(agent_id, owner),
            gateway: Arc::clone(gateway),
            agent_id,
        }
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
        self.gateway.revoke(self.agent_id);
    }
}
