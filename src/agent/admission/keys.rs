//! Client keys: who may use the proxy, and which agents are whose.

use std::fmt;
use std::sync::Arc;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Who made a request. Agents belong to the client that started them; without keys
/// configured there is a single, anonymous client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Client {
    Anonymous,
    /// A configured key, by its id. The key itself is never kept here.
    Key(KeyId),
}

/// A client key's stable id: derived from the key (the same key has the same id after a
/// restart, whatever its place in the list), and telling nothing of it. Stored as the owner of
/// agents and sessions, and shown in logs.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyId([u8; 16]);

impl KeyId {
    fn of(key: &[u8]) -> Self {
        let mut hasher = Sha256::new();
        // Not the digest the key is checked against: knowing one tells nothing of the other.
        hasher.update(b"claude-proxy key id\0");
        hasher.update(key);
        let digest: [u8; 32] = hasher.finalize().into();
        KeyId(digest[..16].try_into().expect("16 bytes"))
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({self})")
    }
}

impl fmt::Display for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Client::Anonymous => f.write_str("anonymous"),
            Client::Key(id) => write!(f, "key {id}"),
        }
    }
}

impl Client {
    /// As it is stored: `anonymous`, or the key's id in hex.
    pub fn to_stored(self) -> String {
        match self {
            Client::Anonymous => "anonymous".to_owned(),
            Client::Key(id) => id.to_string(),
        }
    }

    /// Back from [`Client::to_stored`]; None for what no client could be.
    pub fn from_stored(stored: &str) -> Option<Self> {
        if stored == "anonymous" {
            return Some(Client::Anonymous);
        }
        let bytes = (0..16)
            .map(|i| u8::from_str_radix(stored.get(2 * i..2 * i + 2)?, 16).ok())
            .collect::<Option<Vec<u8>>>()?;
        (stored.len() == 32).then(|| Client::Key(KeyId(bytes.try_into().expect("16 bytes"))))
    }
}

/// The configured keys, kept only as SHA-256 digests (comparing digests takes the same time
/// whatever the key, its length included), each with its id.
#[derive(Clone, Default)]
pub struct ApiKeys {
    digests: Arc<Vec<([u8; 32], KeyId)>>,
}

impl fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApiKeys({} keys)", self.digests.len())
    }
}

impl ApiKeys {
    /// These keys, each already checked by the app (long enough, from where the settings
    /// say); none: keys are off.
    pub fn new(keys: &[String]) -> Self {
        Self {
            digests: Arc::new(
                keys.iter()
                    .map(|k| (digest(k.as_bytes()), KeyId::of(k.as_bytes())))
                    .collect(),
            ),
        }
    }

    pub fn is_enabled(&self) -> bool {
        !self.digests.is_empty()
    }

    /// Every client there is: one per key, or the anonymous one without keys.
    pub fn clients(&self) -> Vec<Client> {
        match self.is_enabled() {
            true => self
                .digests
                .iter()
                .map(|(_, id)| Client::Key(*id))
                .collect(),
            false => vec![Client::Anonymous],
        }
    }

    /// The client a presented key belongs to. Every configured key is compared, so the time
    /// taken says nothing about which one (if any) matched.
    pub fn identify(&self, presented: &[u8]) -> Option<Client> {
        let presented = digest(presented);
        let mut found = None;
        for (key, id) in self.digests.iter() {
            if bool::from(key.ct_eq(&presented)) {
                found = Some(Client::Key(*id));
            }
        }
        found
    }
}

fn digest(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_identified_by_its_id_and_nothing_else_is() {
        let keys = ApiKeys::new(&[
            "first-key-0123456789".to_owned(),
            "second-key-0123456789".to_owned(),
        ]);
        let id = |key: &str| Some(Client::Key(KeyId::of(key.as_bytes())));
        assert_eq!(
            keys.identify(b"first-key-0123456789"),
            id("first-key-0123456789")
        );
        assert_eq!(
            keys.identify(b"second-key-0123456789"),
            id("second-key-0123456789")
        );
        assert_ne!(id("first-key-0123456789"), id("second-key-0123456789"));
        assert_eq!(keys.identify(b"first-key-012345678"), None);
        assert_eq!(keys.identify(b""), None);
        assert!(!ApiKeys::new(&[]).is_enabled());
    }

    #[test]
    fn a_key_id_is_stable_stored_and_tells_nothing_of_the_key() {
        let key = "a-long-enough-key-0123456789";
        let client = Client::Key(KeyId::of(key.as_bytes()));
        let stored = client.to_stored();
        assert_eq!(stored.len(), 32);
        assert!(!stored.contains(key));
        assert_ne!(
            stored,
            format!("{:x}", Sha256::digest(key.as_bytes()))[..32]
        );
        assert_eq!(Client::from_stored(&stored), Some(client));
        assert_eq!(Client::from_stored("anonymous"), Some(Client::Anonymous));
        assert_eq!(Client::from_stored("zz"), None);
    }
}
