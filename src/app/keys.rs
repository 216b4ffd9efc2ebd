//! The client keys the settings name: PROXY_API_KEY (comma-separated) and PROXY_API_KEY_FILE
//! (one per line, `#` starts a comment), each long enough to be unguessable.

use std::path::{Path, PathBuf};

/// The shortest key accepted: anything shorter could be guessed.
pub const MIN_KEY_LEN: usize = 16;

/// Keys that cannot be used. The message never shows a key.
#[derive(Debug, thiserror::Error)]
pub enum KeysError {
    /// The key file could not be read.
    #[error("PROXY_API_KEY_FILE ({}) cannot be read: {source}", path.display())]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A key is too short; its place among the keys, from 1.
    #[error(
        "PROXY_API_KEY: key #{number} is shorter than {MIN_KEY_LEN} characters; use a long random key, such as the output of `openssl rand -hex 32`"
    )]
    TooShort {
        /// Its place among the keys, from 1.
        number: usize,
    },
}

/// The keys of `inline` and `file`, checked; none: keys are off.
pub(crate) fn load(inline: Option<&str>, file: Option<&Path>) -> Result<Vec<String>, KeysError> {
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
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_come_from_the_variable_and_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("keys");
        std::fs::write(&file, "# the backend\nkey-from-file-0123456789\n\n").unwrap();
        let keys = load(
            Some(" first-key-0123456789 , second-key-0123456789"),
            Some(&file),
        )
        .unwrap();
        assert_eq!(
            keys,
            [
                "first-key-0123456789",
                "second-key-0123456789",
                "key-from-file-0123456789"
            ]
        );
        assert!(load(None, None).unwrap().is_empty());
        assert!(load(Some(" , "), None).unwrap().is_empty());
    }

    #[test]
    fn short_keys_are_refused_without_showing_them() {
        let err = load(Some("long-enough-key-0123456789,short"), None)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("key #2") && !err.contains("short,") && !err.contains("long-enough"),
            "{err}"
        );
    }
}
