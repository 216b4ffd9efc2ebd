//! The operating-system side of a CLI run: its process group, signals and environment.

use std::ffi::{OsStr, OsString};

use nix::errno::Errno;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

/// The CLI's process group. The CLI is spawned as the leader of a new group, so the group id
/// is its pid and every process it starts (tools, shells, their children) belongs to it
/// unless it leaves on purpose.
#[derive(Debug, Clone, Copy)]
pub struct ProcessGroup(Pid);

impl ProcessGroup {
    pub fn of_leader(pid: u32) -> Self {
        Self(Pid::from_raw(pid as i32))
    }

    /// Sends `signal` to every process of the group; a group that is already gone is fine.
    pub fn signal(self, signal: Signal) {
        match killpg(self.0, signal) {
            Ok(()) | Err(Errno::ESRCH) => {}
            Err(err) => {
                tracing::warn!(pgid = self.0.as_raw(), %signal, %err, "could not signal the CLI's process group")
            }
        }
    }

    /// Whether any process of the group is left (zombies not yet reaped by their new parent
    /// count as left).
    pub fn is_alive(self) -> bool {
        !matches!(killpg(self.0, None), Err(Errno::ESRCH))
    }
}

/// Names a signal the way people know it ("SIGTERM"), or its number when it has no name.
pub fn signal_name(signal: i32) -> String {
    Signal::try_from(signal)
        .map(|s| s.as_str().to_owned())
        .unwrap_or_else(|_| signal.to_string())
}

/// The environment a CLI gets: the server's own, less what must not reach the CLI or the
/// tools it runs. `PROXY_*` holds the proxy's settings (and its client keys); `CLAUDECODE`
/// makes the CLI believe it runs nested inside another Claude Code; and under a
/// subscription an API key in the environment would win over the subscription login.
pub fn child_environment<I>(server_env: I, use_subscription: bool) -> Vec<(OsString, OsString)>
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

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(OsString, OsString)> {
        pairs.iter().map(|(k, v)| (k.into(), v.into())).collect()
    }

    #[test]
    fn proxy_settings_and_nesting_marker_never_pass() {
        let got = child_environment(
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
        assert_eq!(
            child_environment(server.clone(), true),
            env(&[("HOME", "/h")])
        );
        assert_eq!(child_environment(server.clone(), false), server);
    }

    #[test]
    fn signals_have_their_usual_names() {
        assert_eq!(signal_name(15), "SIGTERM");
        assert_eq!(signal_name(9), "SIGKILL");
        assert_eq!(signal_name(1000), "1000");
    }
}
