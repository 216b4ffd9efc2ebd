//! The environment the CLI is given: the server's own, less what must not reach the CLI or
//! the tools it runs.

use std::ffi::{OsStr, OsString};

/// The environment a CLI gets. `PROXY_*` holds the proxy's settings (and its client keys); `CLAUDECODE`
/// makes the CLI believe it runs nested inside another Claude Code; and under a
/// subscription an API key in the environment would win over the subscription login.
pub fn environment<I>(server_env: I, use_subscription: bool) -> Vec<(OsString, OsString)>
where
    I: IntoIterator<Item = (OsString, OsString)>,
{
    server_env
        .into_iter()
        .filter(|(name, _)| is_passed_to_cli(name, use_subscription))
        .collect()
}

fn is_passed_to_cli(name: &OsStr, use_subscription: bool) -> bool {
    let name = name.as_encoded_bytes();
    if name.starts_with(b"PROXY_") || name == b"CLAUDECODE" {
        return false;
    }
    !(use_subscription && (name == b"ANTHROPIC_API_KEY" || name == b"ANTHROPIC_AUTH_TOKEN"))
}

/// Where the CLI, run with `env`, keeps its sessions: `CLAUDE_CONFIG_DIR`, else `$HOME/.claude`.
pub fn config_dir(env: &[(OsString, OsString)]) -> Option<std::path::PathBuf> {
    let var = |name: &str| {
        env.iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| std::path::PathBuf::from(value))
            .filter(|path| path.is_absolute())
    };
    var(CONFIG_DIR).or_else(|| var("HOME").map(|home| super::home::config_dir_in(&home)))
}

/// The variable that moves the CLI's own directory (sessions, settings, login) from
/// `$HOME/.claude`.
pub const CONFIG_DIR: &str = "CLAUDE_CONFIG_DIR";

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(OsString, OsString)> {
        pairs.iter().map(|(k, v)| (k.into(), v.into())).collect()
    }

    #[test]
    fn proxy_settings_and_nesting_marker_never_pass() {
        let got = environment(
            env(&[
                ("PATH", "/bin"),
                ("PROXY_API_KEY", "s"),
                ("CLAUDECODE", "1"),
            ]),
            false,
        );
        assert_eq!(got, env(&[("PATH", "/bin")]));
    }

    #[test]
    fn api_keys_pass_only_outside_subscription_mode() {
        let server = env(&[
            ("ANTHROPIC_API_KEY", "k"),
            ("ANTHROPIC_AUTH_TOKEN", "t"),
            ("HOME", "/h"),
        ]);
        assert_eq!(environment(server.clone(), true), env(&[("HOME", "/h")]));
        assert_eq!(environment(server.clone(), false), server);
    }
}
