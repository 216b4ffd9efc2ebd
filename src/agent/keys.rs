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
    /// The n-th configured key (counted from 1 in logs). The key itself is never kept here.
    Key(usize),
}

impl fmt::Display for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Client::Anonymous => f.write_str("anonymous"),
            Client::Key(n) => write!(f, "key #{}", n + 1),
        }
    }
}

/// The configured keys, kept only as SHA-256 digests: comparing digests takes the same time
/// whatever the key, its length included.
#[derive(Clone, Default)]
pub struct ApiKeys {
    digests: Arc<Vec<[u8; 32]>>,
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
            digests: Arc::new(keys.iter().map(|k| digest(k.as_bytes())).collect()),
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
        for (n, key) in self.digests.iter().enumerate() {
            if bool::from(key.ct_eq(&presented)) {
                found = Some(Client::Key(n));
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
        assert_eq!(keys.identify(b"first-key-0123456789"), Some(Client::Key(0)));
        assert_eq!(
            keys.identify(b"second-key-0123456789"),
            Some(Client::Key(1))
        );
        assert_eq!(
            keys.identify(b"key-from-file-0123456789"),
            Some(Client::Key(2))
        );
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
    fn no_keys_means_auth_is_off() {
        assert!(!ApiKeys::load(None, None).unwrap().is_enabled());
        assert!(!ApiKeys::load(Some(" , "), None).unwrap().is_enabled());
    }
}
