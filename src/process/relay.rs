//! The relay a sandbox without a network of its own runs first (`PROXY_SANDBOX_NETWORK=
//! gateway`): the server's own program, run again inside the sandbox, listens on the sandbox's
//! own loopback at the gateway's port and carries each connection to the gateway's unix socket,
//! which is all of the host the sandbox can reach; then it runs the CLI, and exits as it does.
//!
//! Threads and blocking sockets: a CLI opens a few connections at most.

use std::ffi::OsString;
use std::io;
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The argument that makes the program the relay: `ARG SOCKET PORT PROGRAM ARGS...`.
pub const ARG: &str = "__claude-proxy-relay";

/// When this program was started as the relay, serves as one and exits.
pub fn serve_if_asked() {
    let mut args = std::env::args_os().skip(1);
    if args.next().is_none_or(|arg| arg != ARG) {
        return;
    }
    let (Some(socket), Some(port), Some(program)) = (args.next(), args.next(), args.next()) else {
        fail("usage: __claude-proxy-relay SOCKET PORT PROGRAM [ARGS...]");
    };
    let rest: Vec<OsString> = args.collect();
    let Some(port) = port.to_str().and_then(|p| p.parse::<u16>().ok()) else {
        fail("the port is not a number");
    };
    let listener = TcpListener::bind(("127.0.0.1", port))
        .unwrap_or_else(|err| fail(&format!("cannot listen on 127.0.0.1:{port}: {err}")));
    let socket = PathBuf::from(socket);
    std::thread::spawn(move || {
        for connection in listener.incoming().flatten() {
            let socket = socket.clone();
            std::thread::spawn(move || carry(connection, &socket));
        }
    });
    // The CLI is its child, with the same input, output and environment.
    let status = Command::new(&program)
        .args(&rest)
        .status()
        .unwrap_or_else(|err| {
            let program = Path::new(&program).display();
            fail(&format!("cannot run {program}: {err}"))
        });
    // As bubblewrap reports its child: the exit code, or 128 and the signal.
    let code = status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0));
    std::process::exit(code);
}

fn fail(why: &str) -> ! {
    eprintln!("claude-proxy relay: {why}");
    std::process::exit(127);
}

/// Carries one connection to the gateway's socket and back, each way until its end.
fn carry(tcp: TcpStream, socket: &Path) {
    let Ok(unix) = UnixStream::connect(socket) else {
        return;
    };
    // Each chunk of the answer goes to the CLI as it comes: Nagle's algorithm would hold one
    // back for the CLI's delayed ACK of the one before (up to 40 ms), as the gateway's own port
    // did (BENCHMARKS.md, issue 24).
    let _ = tcp.set_nodelay(true);
    let (Ok(mut from_client), Ok(mut to_gateway)) = (tcp.try_clone(), unix.try_clone()) else {
        return;
    };
    let upward = std::thread::spawn(move || {
        let _ = io::copy(&mut from_client, &mut to_gateway);
        let _ = to_gateway.shutdown(Shutdown::Write);
    });
    let (mut from_gateway, mut to_client) = (unix, tcp);
    let _ = io::copy(&mut from_gateway, &mut to_client);
    let _ = to_client.shutdown(Shutdown::Write);
    let _ = upward.join();
}
