//! A short command whose output is wanted whole (`claude auth status`): in a process group of
//! its own like every child, its environment only, and killed with its group past a deadline.

use std::ffi::OsString;
use std::io;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::Signal;
use tokio::process::Command;

use super::group::ProcessGroup;

/// What a brief command printed.
#[derive(Debug)]
pub struct Brief {
    /// What it wrote to stdout.
    pub stdout: Vec<u8>,
}

/// Runs `program args` in `cwd` with `env` alone, and waits at most `limit` for it.
pub async fn run_briefly(
    program: &Path,
    args: &[&str],
    env: &[(OsString, OsString)],
    cwd: &Path,
    limit: Duration,
) -> io::Result<Brief> {
    let child = Command::new(program)
        .args(args)
        .current_dir(cwd)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()?;
    let group = child.id().map(ProcessGroup::of_leader);
    match tokio::time::timeout(limit, child.wait_with_output()).await {
        Ok(output) => {
            let output = output?;
            Ok(Brief {
                stdout: output.stdout,
            })
        }
        Err(_) => {
            if let Some(group) = group {
                group.signal(Signal::SIGKILL);
            }
            Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("no answer within {} s", limit.as_secs_f64()),
            ))
        }
    }
}
