//! A child inside bubblewrap (`bwrap`): PID, IPC and UTS namespaces of its own, its own
//! `/proc`, `/tmp` and `/dev`, the system directories read-only, and of the host only what it
//! is given: the program, a working directory and a home, writable. The network is shared, or,
//! with a [`GatewayLink`], the sandbox has a network of its own whose only way out is the
//! gateway's unix socket, through the relay (`relay.rs`) that runs the program.
//!
//! The child stays in the process group the proxy made (no `--new-session`), so signals to the
//! group reach it as before. What a tool leaves behind in a session of its own lives in the
//! sandbox's PID namespace, which ends, with everything in it, when the group is killed: its
//! first process (bwrap's init) is in the group.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Directories of the system that a sandboxed program reads, where they exist (as directories
/// or as the links of a merged /usr).
const SYSTEM: &[&str] = &[
    "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc",
];
/// Where the resolver's files may live when /etc/resolv.conf links there.
const RESOLVER: &[&str] = &["/run/systemd/resolve", "/run/resolvconf"];

/// Where the relay and the gateway's socket are, inside a sandbox with a network of its own.
const RELAY_INSIDE: &str = "/run/claude-proxy/relay";
const SOCKET_INSIDE: &str = "/run/claude-proxy/gateway.sock";

/// A sandbox's only way out when it has a network of its own: the gateway's unix socket,
/// reached at the gateway's port on the sandbox's own loopback through the relay.
#[derive(Debug, Clone)]
pub struct GatewayLink {
    /// The gateway's unix socket, on the host.
    pub socket: PathBuf,
    /// The gateway's port, which the relay listens on inside.
    pub port: u16,
    /// The server's own program, run inside as the relay.
    pub relay: PathBuf,
}

/// A working bubblewrap, and what it must never show.
#[derive(Debug, Clone)]
pub struct Sandbox {
    bwrap: PathBuf,
    /// None: the host's network is shared.
    network: Option<GatewayLink>,
    /// Files and directories of the host hidden from every sandbox, even where a directory
    /// that holds them is shown (the proxy's binary under /usr, a key file under /etc).
    hidden: Vec<PathBuf>,
}

/// What one child is given of the host.
#[derive(Debug, Clone)]
pub struct Confinement {
    /// Its working directory, writable.
    pub cwd: PathBuf,
    /// Its home: a directory of the host, shown writable at `inside`, where `HOME` points.
    pub home: PathBuf,
    pub home_inside: PathBuf,
    /// Its host name.
    pub host_name: String,
    /// Files of the host shown read-only, at the same path (a system prompt's file).
    pub read_only: Vec<PathBuf>,
    /// Variables of its environment that name places of the host it does not have.
    pub unset: Vec<String>,
}

/// Why there is no sandbox.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("bubblewrap (bwrap) is not installed (Debian: apt-get install bubblewrap)")]
    NotInstalled,
    #[error("bubblewrap cannot make its namespaces here: {0}")]
    DoesNotWork(String),
}

impl Sandbox {
    /// Finds bwrap on PATH and checks, by running `true` in a sandbox (with its network, when
    /// `network` gives it one of its own), that it works here.
    pub fn probe(hidden: Vec<PathBuf>, network: Option<GatewayLink>) -> Result<Self, SandboxError> {
        let bwrap =
            super::find_program(Path::new("bwrap")).map_err(|_| SandboxError::NotInstalled)?;
        let sandbox = Self {
            bwrap,
            hidden,
            network,
        };
        let scratch = std::env::temp_dir();
        let confinement = Confinement {
            cwd: scratch.clone(),
            home: scratch,
            home_inside: PathBuf::from("/home/sandbox"),
            host_name: "sandbox".into(),
            read_only: Vec::new(),
            unset: Vec::new(),
        };
        let (program, args) = sandbox.command(Path::new("/bin/true"), &[], &confinement);
        let output = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .map_err(|err| SandboxError::DoesNotWork(err.to_string()))?;
        if output.status.success() {
            Ok(sandbox)
        } else {
            let stderr = String::from_utf8_lossy(&output.stderr);
            Err(SandboxError::DoesNotWork(
                stderr
                    .lines()
                    .next()
                    .unwrap_or("it failed")
                    .trim()
                    .to_owned(),
            ))
        }
    }

    /// The command that runs `program` with `args` confined: bwrap, and its arguments.
    pub fn command(
        &self,
        program: &Path,
        args: &[String],
        confinement: &Confinement,
    ) -> (PathBuf, Vec<OsString>) {
        let mut bwrap: Vec<OsString> = Vec::new();
        let mut arg =
            |parts: &[&std::ffi::OsStr]| bwrap.extend(parts.iter().map(|p| p.to_os_string()));
        arg(&[
            "--unshare-pid".as_ref(),
            "--unshare-ipc".as_ref(),
            "--unshare-uts".as_ref(),
            "--unshare-cgroup-try".as_ref(),
            // Besides the watchdog: bwrap and everything in the sandbox get SIGKILL when the
            // server dies. (bwrap asks it of the thread that spawned it, and the server spawns
            // from the runtime's worker threads, which live as long as it does.)
            "--die-with-parent".as_ref(),
            "--cap-drop".as_ref(),
            "ALL".as_ref(),
        ]);
        if self.network.is_some() {
            // Only its own loopback, which bwrap brings up.
            arg(&["--unshare-net".as_ref()]);
        }
        for dir in SYSTEM.iter().map(Path::new) {
            match std::fs::read_link(dir) {
                Ok(target) => arg(&["--symlink".as_ref(), target.as_os_str(), dir.as_os_str()]),
                Err(_) if dir.is_dir() => {
                    arg(&["--ro-bind".as_ref(), dir.as_os_str(), dir.as_os_str()])
                }
                Err(_) => {}
            }
        }
        for dir in RESOLVER {
            arg(&["--ro-bind-try".as_ref(), dir.as_ref(), dir.as_ref()]);
        }
        arg(&[
            "--proc".as_ref(),
            "/proc".as_ref(),
            "--dev".as_ref(),
            "/dev".as_ref(),
            "--tmpfs".as_ref(),
            "/tmp".as_ref(),
        ]);
        // The program, where the system directories do not show it already.
        let program_dir = program.parent().unwrap_or(Path::new("/"));
        if !SYSTEM.iter().any(|dir| program.starts_with(dir)) {
            arg(&[
                "--ro-bind".as_ref(),
                program_dir.as_os_str(),
                program_dir.as_os_str(),
            ]);
        }
        let Confinement {
            cwd,
            home,
            home_inside,
            host_name,
            read_only,
            unset,
        } = confinement;
        arg(&["--hostname".as_ref(), host_name.as_ref()]);
        arg(&["--bind".as_ref(), home.as_os_str(), home_inside.as_os_str()]);
        arg(&[
            "--setenv".as_ref(),
            "HOME".as_ref(),
            home_inside.as_os_str(),
        ]);
        for name in unset {
            arg(&["--unsetenv".as_ref(), name.as_ref()]);
        }
        arg(&["--bind".as_ref(), cwd.as_os_str(), cwd.as_os_str()]);
        // Last, so that no directory shown above shows them.
        for hidden in &self.hidden {
            let covered = SYSTEM.iter().any(|dir| hidden.starts_with(dir))
                || hidden.starts_with(program_dir)
                || hidden.starts_with(cwd);
            if !covered {
                continue;
            }
            if hidden.is_dir() {
                arg(&["--tmpfs".as_ref(), hidden.as_os_str()]);
            } else if hidden.exists() {
                arg(&[
                    "--ro-bind".as_ref(),
                    "/dev/null".as_ref(),
                    hidden.as_os_str(),
                ]);
            }
        }
        for file in read_only {
            arg(&["--ro-bind".as_ref(), file.as_os_str(), file.as_os_str()]);
        }
        arg(&["--chdir".as_ref(), cwd.as_os_str(), "--".as_ref()]);
        if let Some(link) = &self.network {
            // After everything hidden: the relay is the server's program, shown at a place of
            // its own, read-only; the socket is the gateway's alone.
            let port = link.port.to_string();
            let at = bwrap
                .iter()
                .rposition(|a| a == "--chdir")
                .expect("just added");
            let mounts: [&std::ffi::OsStr; 6] = [
                "--ro-bind".as_ref(),
                link.relay.as_os_str(),
                RELAY_INSIDE.as_ref(),
                "--bind".as_ref(),
                link.socket.as_os_str(),
                SOCKET_INSIDE.as_ref(),
            ];
            bwrap.splice(at..at, mounts.iter().map(|a| a.to_os_string()));
            bwrap.extend(
                [
                    RELAY_INSIDE,
                    super::relay::ARG,
                    SOCKET_INSIDE,
                    port.as_str(),
                ]
                .iter()
                .map(OsString::from),
            );
        }
        bwrap.push(program.as_os_str().to_os_string());
        bwrap.extend(args.iter().map(OsString::from));
        (self.bwrap.clone(), bwrap)
    }
}
