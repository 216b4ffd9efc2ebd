//! fake-claude: a stand-in for the Claude Code CLI that does what its prompt says.
//!
//! It takes the real CLI's arguments, reads its prompt from stdin like `claude -p`, prints a
//! stream-json `init` line, then runs the prompt's `@` commands in order (other prompt lines
//! are ignored). A prompt without commands gets a short successful answer. Commands:
//!
//! ```text
//! @text T                  an assistant line saying T
//! @line T                  T as it is (JSON or not)
//! @lines N [BYTES] [MS]    N assistant lines of about BYTES bytes, MS ms apart
//! @result [T]              a successful result line
//! @result-error T          a result line with "is_error": true
//! @no-newline T            T without a newline (the last thing it writes)
//! @big BYTES               one line of BYTES bytes
//! @burst BYTES             an assistant line of about BYTES bytes and two short lines after
//!                          it, in a single write
//! @wait-for PATH           wait until the file PATH exists
//! @stderr BYTES            BYTES bytes on stderr, then the line "stderr-end"
//! @stderr-line T           T on stderr
//! @sleep MS                wait
//! @hang                    wait forever, silent
//! @ignore-term             ignore SIGTERM from now on
//! @grandchild              start `sleep` in the background, ignoring SIGTERM; prints its pid
//! @escape SECS             start `sleep SECS` in a session of its own, ignoring SIGTERM
//! @echo-stdin              a line holding the whole prompt
//! @env                     a line holding the environment
//! @exit N                  exit with code N now
//! @kill SIGNAL             die by SIGNAL (such as SEGV or KILL)
//! ```
//!
//! The `init` line carries `argv`, the pid and the prompt's size, so tests can check what the
//! proxy ran. `fake-claude auth status` answers as the real CLI does (see `auth_status`).

use std::io::{self, BufRead, BufWriter, Read, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use nix::sys::signal::{self, SigHandler, Signal};
use serde_json::json;

fn main() {
    let argv: Vec<String> = std::env::args().collect();
    if argv.get(1..3) == Some(&["auth".to_owned(), "status".to_owned()][..]) {
        auth_status();
        return;
    }
    let streaming = argv
        .windows(2)
        .any(|w| w[0] == "--input-format" && w[1] == "stream-json");
    if streaming {
        conversation(&argv);
        return;
    }
    let mut prompt = String::new();
    if let Err(err) = io::stdin().read_to_string(&mut prompt) {
        eprintln!("fake-claude: cannot read the prompt: {err}");
        std::process::exit(2);
    }
    let flag = |name: &str| {
        argv.iter()
            .find_map(|a| a.strip_prefix(&format!("--{name}=")).map(str::to_owned))
    };
    let session_id = flag("resume").unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let model = flag("model").unwrap_or_else(|| "fake-model".into());

    let stdout = io::stdout();
    let mut out = Fake {
        out: BufWriter::with_capacity(64 * 1024, stdout.lock()),
        session_id,
        prompt: prompt.clone(),
    };
    out.json(json!({
        "type": "system", "subtype": "init", "session_id": out.session_id, "model": model,
        "pid": std::process::id(), "argv": argv, "stdin_bytes": prompt.len(),
        "cwd": std::env::current_dir().map(|d| d.display().to_string()).unwrap_or_default(),
    }));

    let commands: Vec<&str> = prompt.lines().filter(|l| l.starts_with('@')).collect();
    if commands.is_empty() {
        out.text("Hello from fake-claude");
        out.result(false, "Hello from fake-claude");
    }
    for command in commands {
        let (name, arg) = command.split_once(' ').unwrap_or((command, ""));
        out.run(name, arg.trim());
        out.flush();
    }
    out.flush();
}

/// `auth status`, as the real CLI answers it: logged in with an API key, unless
/// FAKE_CLAUDE_LOGGED_OUT is set, or with a stored login that expires at
/// FAKE_CLAUDE_LOGIN_EXPIRES_AT (milliseconds since 1970). With FAKE_CLAUDE_AUTH_SILENT_ONCE
/// naming a file that does not exist yet, it makes the file and then says nothing, ever: the
/// first question goes unanswered, as on a host too busy to start the CLI in time.
fn auth_status() {
    if let Some(once) = std::env::var_os("FAKE_CLAUDE_AUTH_SILENT_ONCE") {
        if std::fs::File::create_new(&once).is_ok() {
            loop {
                std::thread::sleep(Duration::from_secs(3600));
            }
        }
    }
    let expires = std::env::var("FAKE_CLAUDE_LOGIN_EXPIRES_AT").ok();
    let status = if std::env::var_os("FAKE_CLAUDE_LOGGED_OUT").is_some() {
        json!({"loggedIn": false, "authMethod": "none", "apiProvider": "firstParty", "loginExpiresAt": null})
    } else if let Some(expires) = expires {
        json!({"loggedIn": true, "authMethod": "claude.ai", "apiProvider": "firstParty",
            "loginExpiresAt": expires.parse::<u64>().unwrap_or(0)})
    } else {
        json!({"loggedIn": true, "authMethod": "api_key", "apiProvider": "firstParty", "loginExpiresAt": null})
    };
    println!("{status}");
}

/// `--input-format stream-json`: each user line on stdin is a turn (its text's `@` commands, as
/// in a one-shot run, then a result); control requests are answered as the real CLI answers
/// them; a line that is not JSON ends the process with code 1, as it does the real CLI. With
/// `--replay-user-messages`, each user line comes back first, as the real CLI echoes it.
/// Commands of this mode:
///
/// ```text
/// @close-stdin             close stdin: the conversation goes on until this turn ends
/// @control-flood N         N control requests of a kind the proxy does not answer
/// @ask TOOL                ask for permission to use TOOL (a can_use_tool request), wait for
///                          the answer, and write it as a line of type fake_answer
/// @stdin-lines             a line holding every stdin line read so far
/// @hold-output             write nothing of this turn until the next turn writes: the
///                          proxy reads this turn's result and the next turn's first lines
///                          (such as an @ask's request) in one read, as it may the real CLI's
/// ```
///
/// With FAKE_CLAUDE_GRANDCHILD_AT_START set, it starts a `sleep` that ignores SIGTERM before it
/// reads anything, as a CLI started ahead of its run (the warm pool) might.
fn conversation(argv: &[String]) {
    if std::env::var_os("FAKE_CLAUDE_GRANDCHILD_AT_START").is_some() {
        // Never waited for on purpose: it must outlive this process, for the proxy to end.
        #[allow(clippy::zombie_processes)]
        Command::new("sh")
            .args(["-c", "trap '' TERM; exec sleep 3600"])
            .stdin(Stdio::null())
            .spawn()
            .expect("sh starts");
    }
    let replay = argv.iter().any(|a| a == "--replay-user-messages");
    let flag = |name: &str| {
        argv.iter()
            .find_map(|a| a.strip_prefix(&format!("--{name}=")).map(str::to_owned))
    };
    let mut out = Fake {
        out: BufWriter::with_capacity(64 * 1024, io::stdout().lock()),
        session_id: flag("resume").unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
        prompt: String::new(),
    };
    let mut model = flag("model").unwrap_or_else(|| "fake-model".into());
    let mut read: Vec<String> = Vec::new();
    let mut turns = 0;
    let stdin = io::stdin();
    let mut line = String::new();
    loop {
        line.clear();
        match stdin.lock().read_line(&mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let text = line.trim_end().to_owned();
        if text.is_empty() {
            continue;
        }
        read.push(text.clone());
        let Ok(message) = serde_json::from_str::<serde_json::Value>(&text) else {
            eprintln!("Error parsing streaming input line: {text}");
            std::process::exit(1);
        };
        match message["type"].as_str() {
            Some("user") => {
                turns += 1;
                // @hold-output: this turn's lines wait in `out` for the next turn's first flush.
                let mut held = false;
                if replay {
                    let mut echo = message.clone();
                    echo["isReplay"] = true.into();
                    echo["session_id"] = out.session_id.clone().into();
                    out.json(echo);
                }
                out.json(json!({
                    "type": "system", "subtype": "init", "session_id": out.session_id,
                    "model": model, "pid": std::process::id(), "argv": argv,
                    "cwd": std::env::current_dir().map(|d| d.display().to_string()).unwrap_or_default(),
                }));
                let content = &message["message"]["content"];
                let prompt = content
                    .as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| content.to_string());
                out.prompt = prompt.clone();
                let commands: Vec<&str> = prompt.lines().filter(|l| l.starts_with('@')).collect();
                for command in &commands {
                    let (name, arg) = command.split_once(' ').unwrap_or((command, ""));
                    match name {
                        "@close-stdin" => {
                            // SAFETY: fd 0 is ours; nothing reads it while it closes.
                            #[allow(unsafe_code)]
                            unsafe {
                                nix::libc::close(0)
                            };
                        }
                        "@control-flood" => {
                            for i in 0..arg.trim().parse::<u64>().unwrap_or(1) {
                                out.json(json!({
                                    "type": "control_request",
                                    "request_id": format!("flood-{i}"),
                                    "request": {"subtype": "hook_callback", "callback_id": "none"},
                                }));
                            }
                        }
                        "@ask" => {
                            let id = format!("ask-{turns}");
                            out.json(json!({
                                "type": "control_request", "request_id": id,
                                "request": {"subtype": "can_use_tool", "tool_name": arg.trim(),
                                    "input": {"path": "x"}, "tool_use_id": format!("toolu_{turns}")},
                            }));
                            out.flush();
                            let mut answer = String::new();
                            loop {
                                answer.clear();
                                if stdin.lock().read_line(&mut answer).unwrap_or(0) == 0 {
                                    break;
                                }
                                let Ok(answer) = serde_json::from_str::<serde_json::Value>(&answer)
                                else {
                                    continue;
                                };
                                if answer["response"]["request_id"] == id.as_str() {
                                    out.json(json!({"type": "fake_answer", "response": answer["response"]["response"]}));
                                    break;
                                }
                            }
                        }
                        "@stdin-lines" => {
                            let lines = read.clone();
                            out.json(json!({"type": "fake_stdin_lines", "lines": lines}));
                        }
                        "@hold-output" => held = true,
                        _ => out.run(name, arg.trim()),
                    }
                    if !held {
                        out.flush();
                    }
                }
                if !commands.iter().any(|c| c.starts_with("@result")) {
                    out.text(&format!("turn {turns}"));
                    out.result(false, &format!("turn {turns}"));
                }
                if !held {
                    out.flush();
                }
            }
            Some("control_request") => {
                let request = &message["request"];
                let answer = match request["subtype"].as_str() {
                    Some("interrupt") => Ok(json!({"still_queued": []})),
                    Some("set_model") => {
                        model = request["model"].as_str().unwrap_or("fake-model").to_owned();
                        Ok(json!({"model": request["model"]}))
                    }
                    Some("set_permission_mode") => Ok(json!({"mode": request["mode"]})),
                    other => Err(format!(
                        "Unsupported control request subtype: {}",
                        other.unwrap_or("none")
                    )),
                };
                let id = message["request_id"].clone();
                out.json(match answer {
                    Ok(answer) => json!({"type": "control_response", "response": {"subtype": "success", "request_id": id, "response": answer}}),
                    Err(error) => json!({"type": "control_response", "response": {"subtype": "error", "request_id": id, "error": error}}),
                });
                out.flush();
            }
            _ => {}
        }
    }
    out.flush();
}

struct Fake<W: Write> {
    out: W,
    session_id: String,
    prompt: String,
}

impl<W: Write> Fake<W> {
    fn run(&mut self, name: &str, arg: &str) {
        let num = |s: Option<&str>, default: u64| s.and_then(|s| s.parse().ok()).unwrap_or(default);
        match name {
            "@text" => self.text(arg),
            "@line" => self.raw(arg.as_bytes(), true),
            "@lines" => {
                let mut parts = arg.split_whitespace();
                let count = num(parts.next(), 1);
                let bytes = num(parts.next(), 0) as usize;
                let delay = num(parts.next(), 0);
                // One template, numbered per line: the fake must cost little next to the proxy.
                let head = format!(
                    r#"{{"type":"assistant","session_id":"{}","message":{{"role":"assistant","content":[{{"type":"text","text":"line "#,
                    self.session_id
                );
                // Built once: filling a line byte by byte is slow in a debug build.
                let padding = "x".repeat(bytes);
                for i in 0..count {
                    let number = i.to_string();
                    let base = head.len() + number.len() + r#""}]}}"#.len();
                    let pad = bytes.saturating_sub(base + r#","p":"""#.len());
                    let mut line = Vec::with_capacity(base + pad + 8);
                    line.extend_from_slice(head.as_bytes());
                    line.extend_from_slice(number.as_bytes());
                    line.extend_from_slice(br#""}]}"#);
                    if pad > 0 {
                        line.extend_from_slice(br#","p":""#);
                        line.extend_from_slice(&padding.as_bytes()[..pad]);
                        line.push(b'"');
                    }
                    line.push(b'}');
                    self.raw(&line, true);
                    if delay > 0 {
                        self.flush();
                        std::thread::sleep(Duration::from_millis(delay));
                    }
                }
            }
            "@stream-text" => {
                // A reply of N tokens as the CLI streams it with --include-partial-messages:
                // the Messages API's events, each flushed, then the whole message.
                let mut parts = arg.split_whitespace();
                let tokens = num(parts.next(), 1);
                let stop_reason = parts.next().unwrap_or("end_turn").to_owned();
                let session_id = self.session_id.clone();
                let event = |event: serde_json::Value| json!({"type": "stream_event", "event": event, "session_id": session_id, "parent_tool_use_id": null});
                self.json(event(json!({"type": "message_start", "message": {"id": "msg_fake", "type": "message", "role": "assistant", "model": "fake", "content": [], "stop_reason": null, "usage": {"input_tokens": 10, "output_tokens": 1}}})));
                self.json(event(json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})));
                // Its fields in the real CLI's order: the proxy finds such a line's text
                // without parsing it (and parses any other).
                let delta = format!(
                    r#"{{"type":"stream_event","event":{{"type":"content_block_delta","index":0,"delta":{{"type":"text_delta","text":"tok "}}}},"session_id":"{session_id}","parent_tool_use_id":null,"uuid":"00000000-0000-4000-8000-000000000000"}}"#
                );
                for _ in 0..tokens {
                    self.raw(delta.as_bytes(), true);
                    self.flush();
                }
                self.json(event(json!({"type": "content_block_stop", "index": 0})));
                self.json(event(json!({"type": "message_delta", "delta": {"stop_reason": stop_reason, "stop_sequence": null}, "usage": {"output_tokens": tokens}})));
                self.json(event(json!({"type": "message_stop"})));
                self.text(&"tok ".repeat(tokens as usize));
            }
            "@result" => self.result(false, if arg.is_empty() { "done" } else { arg }),
            "@result-error" => self.result(true, arg),
            "@no-newline" => self.raw(arg.as_bytes(), false),
            "@big" => {
                let mut left = num(Some(arg), 0) as usize;
                let chunk = vec![b'x'; 1 << 20];
                while left > 0 {
                    let n = left.min(chunk.len());
                    self.raw_part(&chunk[..n]);
                    left -= n;
                }
                self.raw(b"", true);
            }
            "@burst" => {
                let bytes = num(Some(arg), 0) as usize;
                let mut burst = self.assistant_line("big", bytes);
                for word in ["after-1", "after-2"] {
                    burst.push(b'\n');
                    burst.extend_from_slice(&self.assistant_line(word, 0));
                }
                burst.push(b'\n');
                self.flush();
                self.raw_part(&burst);
            }
            "@wait-for" => {
                self.flush();
                while !std::path::Path::new(arg).exists() {
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
            "@stderr" => {
                let mut err = io::stderr().lock();
                let chunk = vec![b'e'; 64 * 1024];
                let mut left = num(Some(arg), 0) as usize;
                while left > 0 {
                    let n = left.min(chunk.len());
                    let _ = err.write_all(&chunk[..n]);
                    left -= n;
                }
                let _ = err.write_all(b"\nstderr-end\n");
            }
            "@stderr-line" => eprintln!("{arg}"),
            "@sleep" => {
                self.flush();
                std::thread::sleep(Duration::from_millis(num(Some(arg), 0)));
            }
            "@hang" => {
                self.flush();
                loop {
                    std::thread::sleep(Duration::from_secs(3600));
                }
            }
            "@ignore-term" => {
                // SAFETY: installing SIG_IGN runs no handler code.
                #[allow(unsafe_code)]
                unsafe { signal::signal(Signal::SIGTERM, SigHandler::SigIgn) }
                    .expect("SIGTERM can be ignored");
            }
            // Never waited for on purpose: it must outlive this process, for the proxy to end.
            #[allow(clippy::zombie_processes)]
            // Never waited for on purpose: it must outlive this process.
            #[allow(clippy::zombie_processes)]
            "@escape" => {
                // A process in a session of its own, which ignores SIGTERM: out of the
                // process group's reach.
                let mut command = Command::new("sh");
                command
                    .args(["-c", &format!("trap '' TERM; exec sleep {arg}")])
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null());
                // SAFETY: setsid is async-signal-safe, and nothing else runs before exec.
                #[allow(unsafe_code)]
                unsafe {
                    use std::os::unix::process::CommandExt;
                    command.pre_exec(|| nix::unistd::setsid().map(drop).map_err(Into::into));
                }
                let child = command.spawn().expect("sh starts");
                // Escaped once sh has become `sleep`, which is what tests look for: until then
                // its command line may read empty, while the exec replaces it.
                let comm = format!("/proc/{}/comm", child.id());
                while std::fs::read_to_string(&comm).is_ok_and(|name| name.trim() != "sleep") {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
            // Never waited for on purpose: it must outlive this process, for the proxy to end.
            #[allow(clippy::zombie_processes)]
            "@grandchild" => {
                let child = Command::new("sh")
                    .args(["-c", "trap '' TERM; exec sleep 3600"])
                    .stdin(Stdio::null())
                    .spawn()
                    .expect("sh starts");
                self.json(json!({"type": "fake_grandchild", "pid": child.id()}));
            }
            "@echo-stdin" => {
                let prompt = self.prompt.clone();
                self.json(json!({"type": "fake_stdin", "stdin": prompt}));
            }
            "@env" => {
                let env: serde_json::Map<String, serde_json::Value> =
                    std::env::vars().map(|(k, v)| (k, v.into())).collect();
                self.json(json!({"type": "fake_env", "env": env}));
            }
            "@exit" => {
                self.flush();
                std::process::exit(num(Some(arg), 0) as i32);
            }
            "@kill" => {
                self.flush();
                let name = format!("SIG{}", arg.trim_start_matches("SIG"));
                let sig: Signal = name.parse().expect("a signal name such as SEGV");
                // SAFETY: resetting to the default action runs no handler code.
                #[allow(unsafe_code)]
                let _ = unsafe { signal::signal(sig, SigHandler::SigDfl) };
                let _ = signal::raise(sig);
                std::thread::sleep(Duration::from_secs(10));
            }
            other => eprintln!("fake-claude: unknown command {other}"),
        }
    }

    /// An assistant line saying `text`, padded to about `bytes` bytes.
    fn assistant_line(&self, text: &str, bytes: usize) -> Vec<u8> {
        let head = format!(
            r#"{{"type":"assistant","session_id":"{}","message":{{"role":"assistant","content":[{{"type":"text","text":{}}}]}},"p":""#,
            self.session_id,
            json!(text)
        );
        let mut line = head.into_bytes();
        let pad = bytes.saturating_sub(line.len() + 2);
        line.extend(std::iter::repeat_n(b'x', pad));
        line.extend_from_slice(br#""}"#);
        line
    }

    fn text(&mut self, text: &str) {
        let session_id = self.session_id.clone();
        self.json(json!({
            "type": "assistant",
            "message": {"role": "assistant", "content": [{"type": "text", "text": text}]},
            "session_id": session_id,
        }));
    }

    fn result(&mut self, is_error: bool, text: &str) {
        let session_id = self.session_id.clone();
        self.json(json!({
            "type": "result", "subtype": if is_error { "error_during_execution" } else { "success" },
            "is_error": is_error, "result": text, "session_id": session_id,
            "num_turns": 1, "total_cost_usd": 0.0,
        }));
    }

    fn json(&mut self, value: serde_json::Value) {
        self.raw(value.to_string().as_bytes(), true);
    }

    fn raw(&mut self, bytes: &[u8], newline: bool) {
        self.raw_part(bytes);
        if newline {
            self.raw_part(b"\n");
        }
    }

    fn raw_part(&mut self, bytes: &[u8]) {
        if self.out.write_all(bytes).is_err() {
            // The proxy closed our stdout: nothing left to do.
            std::process::exit(141);
        }
    }

    fn flush(&mut self) {
        if self.out.flush().is_err() {
            std::process::exit(141);
        }
    }
}
