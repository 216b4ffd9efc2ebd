//! A system prompt in a file of its own, for `--system-prompt-file` (one argument is capped at
//! 128 KiB), kept while its CLI runs.

use std::path::{Path, PathBuf};

use uuid::Uuid;

use crate::agent::error::Error;

/// Removed when dropped: whoever holds the CLI holds its file.
#[derive(Debug)]
pub struct SystemPromptFile {
    pub path: PathBuf,
}

impl SystemPromptFile {
    pub fn write(dir: &Path, text: &str) -> Result<Self, Error> {
        let workspace = |source| Error::Workspace {
            path: dir.to_path_buf(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(workspace)?;
        let path = dir.join(format!("{}.txt", Uuid::new_v4().simple()));
        std::fs::write(&path, text).map_err(workspace)?;
        Ok(Self { path })
    }
}

impl Drop for SystemPromptFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}
