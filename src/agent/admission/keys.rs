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

/// The shortest key accepted: anything shorter could be guessed.
pub const MIN_KEY_LEN: usize = 16;

/// Keys that cannot be used. The message never shows a key.
#[derive(Debug, thiserror::Error)]
pub enum KeysError {
    #[error("PROXY_API_KEY_FILE ({}) cannot be read: {source}", path.display())]
    Unreadable {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error(
        "PROXY_API_KEY: key #{number} is shorter than {MIN_KEY_LEN} characters; use a long random key, such as the output of `openssl rand -hex 32`"
    )]
    TooShort { number: usize },
}

impl ApiKeys {
    /// Keys from PROXY_API_KEY (comma-separated) and PROXY_API_KEY_FILE (one per line, `#`
    /// starts a comment).
    pub fn load(inline: Option<&str>, file: Option<&std::path::Path>) -> Result<Self, KeysError> {
        let mut keys: Vec<String> = Vec::new();
        if let Some(inline) = inline {
            keys.extend(
                inline
                    .split(',')
                    .map(str::trim)
                    .filter(|k| !k.is_empty())
                    .map(str::to_owned),
            );
        }
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|source| KeysError::Unreadable {
                path: path.to_owned(),
                source,
            })?;
            keys.extend(
                text.lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty() && !l.starts_with('#'))
                    .map(str::to_owned),
            );
        }
        if let Some(short) = keys.iter().position(|k| k.len() < MIN_KEY_LEN) {
            return Err(KeysError::TooShort { number: short + 1 });
        }
        Ok(Self {
            digests: Arc::new(
                keys.iter()
                    .map(|k| (digest(k.as_bytes()), KeyId::of(k.as_bytes())))
                    .collect(),
            ),
        })
    }

    pub fn is_enabled(&self) -> bool {
        !self.digests.is_empty()
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
    fn keys_come_from_the_variable_and_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("keys");
        std::fs::write(&file, "# the backend\nkey-from-file-0123456789\n\n").unwrap();
        let keys = ApiKeys::load(
            Some(" first-key-0123456789 , second-key-0123456789"),
            Some(&file),
        )
        .unwrap();
        let id = |key: &str| Some(Client::Key(KeyId::of(key.as_bytes())));
        assert_eq!(
            keys.identify(b"first-key-0123456789"),
            id("first-key-0123456789")
        );
        assert_eq!(
            keys.identify(b"second-key-0123456789"),
            id("second-key-0123456789")
        );
        assert_eq!(
            keys.identify(b"key-from-file-0123456789"),
            id("key-from-file-0123456789")
        );
        assert_ne!(id("first-key-0123456789"), id("second-key-0123456789"));
        assert_eq!(keys.identify(b"first-key-012345678"), None);
        assert_eq!(keys.identify(b""), None);
    }

    #[test]
    fn short_keys_are_refused_without_showing_them() {
        let err = ApiKeys::load(Some("long-enough-key-0123456789,short"), None)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("key #2") && !err.contains("short,") && !err.contains("long-enough"),
            "{err}"
        );
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

    #[test]
    fn no_keys_means_auth_is_off() {
        assert!(!ApiKeys::load(None, None).unwrap().is_enabled());
        assert!(!ApiKeys::load(Some(" , "), None).unwrap().is_enabled());
    }
}
