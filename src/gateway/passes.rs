//! The agents' credentials at the gateway: one per running agent, random, checked in constant
//! time, and worth nothing once revoked.

use std::collections::HashMap;
use std::sync::Mutex;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use uuid::Uuid;

use crate::agent::{self, Client};

/// How every agent credential begins: a reader of a log or a leak knows what it is.
const PREFIX: &str = "claude-proxy-agent-";

/// The credentials given out and not yet revoked, each kept as its secret's SHA-256 digest.
#[derive(Debug)]
pub struct Passes {
    base_url: String,
    issued: Mutex<HashMap<Uuid, Issued>>,
}

#[derive(Debug)]
struct Issued {
    digest: [u8; 32],
    owner: Client,
    /// Whose requests these are: the pass's own id until it is bound to an agent.
    agent_id: Uuid,
}

/// Whose a credential the gateway took is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Holder {
    pub agent_id: Uuid,
    pub owner: Client,
}

impl Passes {
    /// Credentials for a gateway at `base_url`.
    pub fn new(base_url: String) -> Self {
        Self {
            base_url,
            issued: Mutex::default(),
        }
    }

    /// Where CLIs reach the gateway.
    pub fn base(&self) -> &str {
        &self.base_url
    }

    /// The agent whose live credential `presented` is. The credential names its pass, so the
    /// lookup is by that; its secret is compared as a digest, in constant time.
    pub fn check(&self, presented: &str) -> Option<Holder> {
        let rest = presented.strip_prefix(PREFIX)?;
        let (pass, secret) = rest.split_once('-')?;
        let pass_id = Uuid::try_parse(pass).ok()?;
        let presented = digest(secret);
        let issued = crate::sync::lock(&self.issued);
        let issued = issued.get(&pass_id)?;
        bool::from(issued.digest.ct_eq(&presented)).then_some(Holder {
            agent_id: issued.agent_id,
            owner: issued.owner,
        })
    }
}

impl agent::Gateway for Passes {
    fn base_url(&self) -> &str {
        &self.base_url
    }

    fn issue(&self, pass_id: Uuid, owner: Client) -> String {
        // Two v4 UUIDs: 244 bits from the operating system's generator.
        let secret = format!("{}{}", Uuid::new_v4().simple(), Uuid::new_v4().simple());
        crate::sync::lock(&self.issued).insert(
            pass_id,
            Issued {
                digest: digest(&secret),
                owner,
                agent_id: pass_id,
            },
        );
        format!("{PREFIX}{}-{secret}", pass_id.simple())
    }

    fn bind(&self, pass_id: Uuid, agent_id: Uuid) {
        if let Some(issued) = crate::sync::lock(&self.issued).get_mut(&pass_id) {
            issued.agent_id = agent_id;
        }
    }

    fn revoke(&self, pass_id: Uuid) {
        crate::sync::lock(&self.issued).remove(&pass_id);
    }
}

fn digest(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::Gateway;

    #[test]
    fn a_credential_is_good_for_its_agent_until_revoked_and_nothing_else_is() {
        let passes = Passes::new("http://127.0.0.1:1".into());
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let first = passes.issue(a, Client::Anonymous);
        let second = passes.issue(b, Client::Anonymous);
        assert_ne!(first, second);
        assert_eq!(passes.check(&first).map(|h| h.agent_id), Some(a));
        assert_eq!(passes.check(&second).map(|h| h.agent_id), Some(b));
        // Another agent's id with this secret, a secret changed, a bare secret: nothing.
        let swapped = first.replace(&a.simple().to_string(), &b.simple().to_string());
        assert_eq!(passes.check(&swapped), None);
        let mut changed = first.clone();
        changed.pop();
        changed.push('x');
        assert_eq!(passes.check(&changed), None);
        assert_eq!(passes.check(first.trim_start_matches(PREFIX)), None);
        assert_eq!(passes.check(""), None);
        // Started ahead of its agent, then bound to it.
        let ahead = Uuid::new_v4();
        let third = passes.issue(ahead, Client::Anonymous);
        assert_eq!(passes.check(&third).map(|h| h.agent_id), Some(ahead));
        passes.bind(ahead, a);
        assert_eq!(passes.check(&third).map(|h| h.agent_id), Some(a));
        passes.revoke(ahead);
        assert_eq!(passes.check(&third), None);
        passes.revoke(a);
        assert_eq!(passes.check(&first), None);
        assert_eq!(passes.check(&second).map(|h| h.agent_id), Some(b));
    }
}
