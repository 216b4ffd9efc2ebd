//! OpenAI's Codex CLI (`@openai/codex`, the pinned npm release scripts/test installs) as a
//! Responses API client: `codex exec` with the proxy as its model provider, configured as the
//! README says, the real Claude Code CLI behind the proxy and the Messages API stand-in behind
//! the CLI. What a user of Codex would notice: its answer, and a command the model has it run.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use crate::support;
use crate::support::real::RealSetup;
use crate::support::{TEST_LIMIT, within};

const KEY: &str = "codex-test-key-0123456789";

/// The base URL the README's config.toml names, which the tests swap for their proxy's.
const README_BASE_URL: &str = "http://127.0.0.1:8000/v1";

/// What the README says keeps Codex to the proxy: without them it looks up chatgpt.com,
/// ab.chatgpt.com and api.github.com (its plugins' catalog and its analytics).
const OFFLINE: [&str; 4] = [
    "-c",
    "analytics.enabled=false",
    "-c",
    "features.plugins=false",
];

/// The pinned Codex CLI's native program, where scripts/test installs it (npm's optional
/// dependency for this platform, as the Claude Code CLI's).
fn codex_program() -> PathBuf {
    let (package, triple) = match std::env::consts::ARCH {
        "x86_64" => ("x64", "x86_64-unknown-linux-musl"),
        "aarch64" => ("arm64", "aarch64-unknown-linux-musl"),
        other => panic!("no Codex CLI build for {other}"),
    };
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!(
        ".tools/codex/node_modules/@openai/codex-linux-{package}/vendor/{triple}/bin/codex"
    ));
    assert!(
        path.is_file(),
        "the Codex CLI is not at {}: run scripts/test, which installs the pinned version",
        path.display()
    );
    path
}

/// README.md's config.toml for Codex, pointed at `base_url`.
fn readme_config(base_url: &str) -> String {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let (_, after) = readme
        .split_once("#### Codex CLI")
        .expect("README.md has a Codex CLI section");
    let (_, block) = after
        .split_once("```toml\n")
        .expect("README.md's Codex CLI section has a config.toml");
    let (config, _) = block.split_once("```").unwrap();
    assert_eq!(
        config.matches(README_BASE_URL).count(),
        1,
        "README.md's config.toml names the proxy as {README_BASE_URL}, once: {config}"
    );
    config.replace(README_BASE_URL, base_url)
}

/// Codex while it runs: dropped before it has exited (a test that failed, or ran past its
/// limit), it is killed with every process below it, so neither it nor a command it started
/// is left behind.
struct Running(tokio::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        // Not yet waited for, so the pid is still Codex's.
        if let (Ok(None), Some(pid)) = (self.0.try_wait(), self.0.id()) {
            for pid in support::process_tree(pid) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid as i32),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
    }
}

/// What `codex exec` printed and how it exited.
struct Ran {
    status: std::process::ExitStatus,
    stdout: String,
    stderr: String,
}

impl Ran {
    fn printed(&self) -> String {
        format!(
            "codex exec exited {}; its stdout:\n{}\nits stderr:\n{}",
            self.status, self.stdout, self.stderr
        )
    }
}

/// Runs `codex exec PROMPT` in `work`, in a home and a CODEX_HOME of its own (nothing of the
/// machine's), with the README's config.toml pointed at the proxy.
async fn codex_exec(setup: &RealSetup, work: &Path, prompt: &str) -> Ran {
    use tokio::io::AsyncReadExt;
    // Not under /tmp: there Codex refuses to put the helper programs its sandbox runs
    // (codex-linux-sandbox) on the PATH of the commands it runs, and they fail.
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let (home, codex_home) = (dir.path().join("home"), dir.path().join("codex"));
    std::fs::create_dir_all(&home).unwrap();
    std::fs::create_dir_all(&codex_home).unwrap();
    std::fs::write(
        codex_home.join("config.toml"),
        readme_config(&format!("{}/v1", setup.proxy.base)),
    )
    .unwrap();
    let mut codex = Running(
        tokio::process::Command::new(codex_program())
            // Its working directory is not a git repository, which exec otherwise refuses.
            .args(["exec", "--skip-git-repo-check"])
            .args(OFFLINE)
            .arg(prompt)
            .current_dir(work)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap())
            .env("HOME", &home)
            .env("CODEX_HOME", &codex_home)
            .env("CLAUDE_PROXY_KEY", KEY)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("codex starts"),
    );
    let read = |mut pipe: Box<dyn tokio::io::AsyncRead + Send + Unpin>| {
        tokio::spawn(async move {
            let mut out = Vec::new();
            let _ = pipe.read_to_end(&mut out).await;
            String::from_utf8_lossy(&out).into_owned()
        })
    };
    let stdout = read(Box::new(codex.0.stdout.take().unwrap()));
    let stderr = read(Box::new(codex.0.stderr.take().unwrap()));
    let status = codex.0.wait().await.unwrap();
    Ran {
        status,
        stdout: stdout.await.unwrap(),
        stderr: stderr.await.unwrap(),
    }
}

#[tokio::test]
async fn codex_exec_prints_what_the_model_answered() {
    within(TEST_LIMIT, async {
        let setup = RealSetup::with_settings([], &[("PROXY_API_KEY", KEY)]).await;
        let work = tempfile::tempdir().unwrap();
        let ran = codex_exec(&setup, work.path(), "Say hello. [codex-hello]").await;
        assert!(ran.status.success(), "{}", ran.printed());
        // Its last message is what codex exec prints on its stdout.
        assert!(
            ran.stdout.contains(support::anthropic::DEFAULT_TEXT),
            "{}",
            ran.printed()
        );
        let texts = setup.standin.texts_received();
        assert!(
            texts.iter().any(|text| text.contains("[codex-hello]")),
            "{texts:?}"
        );
    })
    .await;
}

#[tokio::test]
async fn codex_runs_the_command_the_model_calls_for_and_the_run_goes_on_to_an_answer() {
    within(TEST_LIMIT, async {
        let setup = RealSetup::with_settings([], &[("PROXY_API_KEY", KEY)]).await;
        let work = tempfile::tempdir().unwrap();
        // Only Codex's working directory has this: the model can only learn it from the
        // command Codex runs there.
        let secret = "only-in-codexs-workdir-4711";
        std::fs::write(work.path().join("note.txt"), secret).unwrap();
        // The stand-in calls Codex's shell tool, exec_command (a function of Codex's request,
        // which the CLI is given as mcp__client__exec_command), then says what the tool said.
        let prompt =
            r#"What does note.txt say? [codex-tool] CALL[exec_command {"cmd": "cat note.txt"}]"#;
        let ran = codex_exec(&setup, work.path(), prompt).await;
        assert!(ran.status.success(), "{}", ran.printed());
        // Codex ran the command (in its read-only sandbox), and says so...
        assert!(ran.stderr.contains(" succeeded in "), "{}", ran.printed());
        // ...and its answer is the model's, from the command's output.
        let answer = ran.stdout.trim();
        assert!(
            answer.starts_with("the tool said: ") && answer.contains(secret),
            "{}",
            ran.printed()
        );
    })
    .await;
}
