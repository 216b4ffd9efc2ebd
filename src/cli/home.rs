//! Where the CLI keeps what it keeps: its directory in a home (`.claude`), the stored login in
//! it, and one file per session under `projects/`, named for the working directory.

use std::path::{Path, PathBuf};

use uuid::Uuid;

/// A sandboxed CLI's home, as it sees it.
pub const HOME_INSIDE_SANDBOX: &str = "/home/agent";

/// A sandboxed CLI's host name.
pub const SANDBOX_HOST_NAME: &str = "agent";

/// The CLI's own directory in a home.
pub fn config_dir_in(home: &Path) -> PathBuf {
    home.join(".claude")
}

/// The stored login (`claude login`) in the CLI's own directory.
pub fn login_file_in(config_dir: &Path) -> PathBuf {
    config_dir.join(".credentials.json")
}

/// The file of `session`, as the CLI run in `cwd` with `config_dir` keeps it.
pub fn session_file(config_dir: &Path, cwd: &Path, session: Uuid) -> PathBuf {
    let project: String = cwd
        .to_string_lossy()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    config_dir
        .join("projects")
        .join(project)
        .join(format!("{session}.jsonl"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sessions_file_is_named_for_its_working_directory() {
        let session = Uuid::nil();
        assert_eq!(
            session_file(Path::new("/h/.claude"), Path::new("/srv/work dir"), session),
            PathBuf::from(format!("/h/.claude/projects/-srv-work-dir/{session}.jsonl"))
        );
    }
}
