//! Files of a run's own that its CLI reads: a system prompt for `--system-prompt-file` (one
//! argument is capped at 128 KiB), MCP servers for `--mcp-config` (their secrets are in it),
//! kept while the CLI runs.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use uuid::Uuid;

use crate::agent::error::Error;

/// Readable by the proxy's user alone; removed when dropped: whoever holds the CLI holds its
/// files.
#[derive(Debug)]
pub struct RunFile {
    pub path: PathBuf,
}

impl RunFile {
    pub fn write(dir: &Path, extension: &str, text: &str) -> Result<Self, Error> {
        let workspace = |source| Error::Workspace {
            path: dir.to_path_buf(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(workspace)?;
        let path = dir.join(format!("{}.{extension}", Uuid::new_v4().simple()));
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .and_then(|mut file| file.write_all(text.as_bytes()))
            .map_err(workspace)?;
        Ok(Self { path })
    }
}

impl Drop for RunFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// What a run's CLI is given for its run alone, held until it is reaped: its files, and its
/// credential at the gateway (revoked when dropped).
#[derive(Debug)]
pub struct RunFiles {
    pub system_prompt: Option<RunFile>,
    pub mcp_config: Option<RunFile>,
    pub pass: crate::agent::ports::gateway::Pass,
}

impl RunFiles {
    pub fn paths(&self) -> impl Iterator<Item = PathBuf> + '_ {
        [&self.system_prompt, &self.mcp_config]
            .into_iter()
            .flatten()
            .map(|file| file.path.clone())
    }
}
