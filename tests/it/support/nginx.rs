//! A real nginx in front of several proxies, round robin, as the cluster deployment runs it:
//! Debian's package, which `scripts/test` installs, run in the foreground as one process with
//! a prefix of the test's own, and the deployment's own server block
//! (`deploy/nginx-cluster.conf`) with the test's addresses in it.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Nginx {
    child: Child,
    pub addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Nginx {
    /// Balances requests over `upstreams`, one after the other.
    pub fn round_robin(upstreams: &[SocketAddr]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        // A free port: nginx cannot say which one it took.
        let addr = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let servers: String = upstreams
            .iter()
            .map(|upstream| format!("    server {upstream};\n"))
            .collect();
        let deployed = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/nginx-cluster.conf"),
        )
        .unwrap();
        let balancer = deployed
            .replace(
                "    server proxy-a:8000;\n    server proxy-b:8000;\n",
                &servers,
            )
            .replace("listen 8000;", &format!("listen {addr};"));
        assert_ne!(
            balancer, deployed,
            "the deployment's upstreams are where they were"
        );
        let prefix = dir.path().display();
        let config = format!(
            "daemon off;
master_process off;
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
{balancer}
}}
"
        );
        let conf = dir.path().join("nginx.conf");
        std::fs::write(&conf, config).unwrap();
        let mut command = Command::new(nginx());
        command
            .arg("-p")
            .arg(dir.path())
            .arg("-e")
            .arg(dir.path().join("error.log"))
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // Gone with the test, however it ends.
        // SAFETY: prctl is async-signal-safe, and nothing else runs between fork and exec.
        #[allow(unsafe_code)]
        unsafe {
            use std::os::unix::process::CommandExt;
            command.pre_exec(|| {
                nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)
                    .map_err(std::io::Error::from)
            });
        }
        let mut child = command.spawn().unwrap_or_else(|err| {
            panic!("nginx cannot be started ({err}): run the tests with scripts/test, which installs it")
        });
        let started = Instant::now();
        while TcpStream::connect(addr).is_err() {
            if let Ok(Some(status)) = child.try_wait() {
                let log = std::fs::read_to_string(dir.path().join("error.log")).unwrap_or_default();
                panic!("nginx exited with {status}: {log}");
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "nginx did not listen on {addr}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Self {
            child,
            addr,
            _dir: dir,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

fn nginx() -> &'static str {
    ["/usr/sbin/nginx", "nginx"]
        .into_iter()
        .find(|path| std::path::Path::new(path).exists())
        .unwrap_or("nginx")
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
