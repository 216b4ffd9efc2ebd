//! The real Claude Code CLI (the pinned npm release) behind the proxy, talking to the Messages
//! API stand-in, in a home and working directory of the test's own.

use std::path::{Path, PathBuf};

use super::anthropic::{Reply, Rule, StandIn};
use super::proxy::Proxy;

/// The pinned CLI: CLAUDE_CLI_PATH (the test command sets it), or where that command installs it.
pub fn real_cli() -> PathBuf {
    let path = std::env::var_os("CLAUDE_CLI_PATH")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join(".tools/claude-code/node_modules/@anthropic-ai/claude-code-linux-x64/claude")
        });
    assert!(
        path.is_file(),
        "the real Claude Code CLI is not at {}: run scripts/test, which installs the pinned version, or set CLAUDE_CLI_PATH",
        path.display()
    );
    path
}

/// A proxy running the real CLI against a stand-in, in a home and working directory of its own.
pub struct RealSetup {
    pub standin: StandIn,
    pub proxy: Proxy,
    pub work: PathBuf,
    pub home: PathBuf,
    _dir: tempfile::TempDir,
}

impl RealSetup {
    pub async fn start(replies: impl IntoIterator<Item = Reply>) -> Self {
        Self::with_settings(replies, &[]).await
    }

    /// With these proxy settings on top of the usual ones.
    pub async fn with_settings(
        replies: impl IntoIterator<Item = Reply>,
        settings: &[(&str, &str)],
    ) -> Self {
        Self::with_standin(StandIn::start(replies).await, settings)
    }

    /// A stand-in whose rule answers the requests it recognizes.
    pub async fn with_rule(rule: Rule, settings: &[(&str, &str)]) -> Self {
        Self::with_standin(StandIn::start_with(Some(rule), []).await, settings)
    }

    fn with_standin(standin: StandIn, settings: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (home, work) = (dir.path().join("home"), dir.path().join("work"));
        std::fs::create_dir_all(&home).unwrap();
        std::fs::create_dir_all(&work).unwrap();
        let proxy = start_proxy(&standin, &home, &work, settings);
        Self {
            standin,
            proxy,
            work,
            home,
            _dir: dir,
        }
    }
}

pub fn start_proxy(standin: &StandIn, home: &Path, work: &Path, extra: &[(&str, &str)]) -> Proxy {
    let cli = real_cli().display().to_string();
    let base = standin.base_url();
    // Beside the workspace, never in it.
    let data = work.with_file_name("data").display().to_string();
    let mut env = vec![
        ("PROXY_DATA_DIR", data.as_str()),
        ("HOME", home.to_str().unwrap()),
        ("ANTHROPIC_BASE_URL", base.as_str()),
        ("ANTHROPIC_API_KEY", "stand-in-key"),
        // The stand-in needs the key, which subscription mode would keep from the CLI.
        ("CLAUDE_USE_SUBSCRIPTION", "false"),
        ("CLAUDE_CLI_PATH", cli.as_str()),
        ("CLAUDE_WORKDIR", work.to_str().unwrap()),
        ("PROXY_STOP_GRACE_SECS", "3"),
    ];
    env.extend_from_slice(extra);
    Proxy::start(work, &env)
}
