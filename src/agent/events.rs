//! The events of one agent, numbered from 1: `agent`, every stdout line of the CLI, `error`s,
//! and always last `complete`.

use std::borrow::Cow;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::event_bodies::{
    AgentEvent, AgentType, CompleteEvent, CompleteType, ErrorEvent, NamedEvent, ProxyRawEvent,
    ProxyRawType, wire,
};
use super::status::FinalStatus;
use super::status::StopReason;
use crate::cli::json_line;
use crate::cli::stdout::{self, LineHead};
use crate::process::{Ending, Exit, Frame, Outcome, signal_name};

/// One event as it goes on the wire: its number, its SSE event name (None for the CLI's own
/// lines, which are plain messages) and its JSON payload, always one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub id: u64,
    pub name: Option<&'static str>,
    pub data: Bytes,
}

/// The names of the proxy's own events (the CLI's lines are plain messages, with no name).
pub const EVENT_NAMES: [&str; 6] = [
    "agent",
    "error",
    "complete",
    "permission_request",
    "permission_decision",
    "permission_cancelled",
];

/// Makes the numbered events of a run from the runner's lines and its outcome. It is
/// synchronous: the runner's task calls it as lines arrive, and the events made go straight to
/// the agent's log (`take_events`), which never waits for a reader.
#[derive(Debug)]
pub struct EventMaker {
    agent_id: Uuid,
    max_line_bytes: usize,
    made: Vec<Event>,
    next_id: u64,
    result: Option<ResultLine>,
    summary: RunSummary,
    summary_changed: bool,
    /// The line just read reported a rate limit (with its reset time, when known).
    rate_limit_seen: Option<Option<DateTime<Utc>>>,
    /// The line just read was the result.
    result_just_read: bool,
    /// Control lines are the proxy's to answer, not events: set aside for the conversation.
    controls: Option<Vec<Bytes>>,
}

/// What the agent's views report of a run, gathered from the lines as they pass.
#[derive(Debug, Clone, Default)]
pub struct RunSummary {
    /// From the CLI's `init` line.
    pub session_id: Option<String>,
    pub model: Option<String>,
    /// The CLI's `result` line, as it wrote it (shared with its event).
    pub result: Option<Bytes>,
    /// The CLI's running total, from its latest result line.
    pub total_cost_usd: Option<f64>,
    /// Summed over the results so far.
    pub num_turns: Option<u64>,
    /// Of the latest result.
    pub is_error: Option<bool>,
    /// How many result lines there have been: an interactive agent has one per turn.
    pub turns: u64,
    /// The subscription refused a request until then.
    pub rate_limited_until: Option<DateTime<Utc>>,
    /// From `complete`.
    pub status: Option<FinalStatus>,
    pub exit_code: Option<i32>,
}

#[derive(Debug, Clone)]
struct ResultLine {
    is_error: bool,
    /// The client interrupted the turn: the error is its choice, not a failure.
    interrupted: bool,
    /// What an error result says went wrong, to explain a failed exit when stderr is silent.
    error_text: Option<String>,
}

/// How long a rate limit is assumed to last when the CLI does not say.
const RATE_LIMIT_UNKNOWN_RESET: chrono::TimeDelta = chrono::TimeDelta::seconds(60);

impl EventMaker {
    /// Starts with the `agent` event.
    pub fn new(agent_id: Uuid, pid: u32, max_line_bytes: usize) -> Self {
        let mut maker = Self {
            agent_id,
            max_line_bytes,
            made: Vec::new(),
            next_id: 1,
            result: None,
            summary: RunSummary::default(),
            summary_changed: false,
            rate_limit_seen: None,
            result_just_read: false,
            controls: None,
        };
        maker.push(
            Some("agent"),
            wire(&AgentEvent {
                kind: AgentType,
                agent_id,
                pid,
            }),
        );
        maker
    }

    /// From now on, the CLI's control lines are set aside (see [`EventMaker::take_controls`])
    /// rather than passed on: an interactive agent's CLI speaks them.
    pub fn set_controls_aside(&mut self) {
        self.controls.get_or_insert_with(Vec::new);
    }

    /// The control lines set aside since the last call, in order.
    pub fn take_controls(&mut self) -> Vec<Bytes> {
        self.controls
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }

    /// Makes an event of the proxy's own.
    pub fn push_named<E: NamedEvent>(&mut self, event: &E) {
        self.push(Some(E::NAME), wire(event));
    }

    /// The events made since the last call, in order.
    pub fn take_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.made)
    }

    /// Makes an event of each line (or dropped line).
    pub fn lines(&mut self, frames: Vec<Frame>) {
        for frame in frames {
            self.push_frame(frame);
        }
    }

    fn push(&mut self, name: Option<&'static str>, data: Bytes) {
        debug_assert!(name.is_none_or(|n| EVENT_NAMES.contains(&n)), "{name:?}");
        let id = self.next_id;
        self.next_id += 1;
        self.made.push(Event { id, name, data });
    }

    fn push_frame(&mut self, frame: Frame) {
        match frame {
            Frame::Line(line) => {
                if let Some(controls) = &mut self.controls {
                    if json_line::scan(&line).is_some_and(|shape| {
                        matches!(
                            shape.kind,
                            Some(
                                b"control_request"
                                    | b"control_response"
                                    | b"control_cancel_request"
                            )
                        )
                    }) {
                        controls.push(line);
                        return;
                    }
                }
                let data = self.pass_line(line);
                self.push(None, data);
                if std::mem::take(&mut self.result_just_read) {
                    // A copy of its own: a slice would keep its whole batch for as long as the
                    // agent is kept.
                    self.summary.result = self
                        .made
                        .last()
                        .map(|event| Bytes::copy_from_slice(&event.data));
                }
                if let Some(resets_at) = self.rate_limit_seen.take() {
                    self.push_rate_limited(resets_at);
                }
            }
            Frame::TooLong { bytes } => {
                let limit = self.max_line_bytes;
                self.push_error(ErrorEvent {
                    bytes: Some(bytes),
                    limit: Some(limit),
                    ..ErrorEvent::new(
                        "line_too_long",
                        format!("the CLI wrote a line of {bytes} bytes, over PROXY_MAX_LINE_BYTES ({limit}); it was dropped"),
                    )
                });
            }
        }
    }

    /// A JSON line passes byte for byte; anything else is wrapped so every payload parses.
    fn pass_line(&mut self, line: Bytes) -> Bytes {
        let Some(shape) = json_line::scan(&line) else {
            return wire(&ProxyRawEvent {
                kind: ProxyRawType,
                line: String::from_utf8_lossy(&line).into_owned(),
            });
        };
        if shape.needs_reading
            || matches!(
                shape.kind,
                Some(b"result" | b"system" | b"rate_limit_event")
            )
        {
            self.read_head(&line);
        }
        one_line(line)
    }

    /// Takes from a line what the agent's summary and the rate-limit gate need. A line whose
    /// fields are not of the types expected is passed on all the same, unread.
    fn read_head(&mut self, line: &[u8]) {
        let Ok(head) = serde_json::from_slice::<LineHead>(line) else {
            return;
        };
        if let Some(resets_at) = head.rate_limit() {
            self.rate_limit_seen = Some(resets_at);
        }
        if head.kind.as_deref() == Some("result") {
            let is_error = head.is_error.unwrap_or(false);
            let error_text = is_error
                .then(|| {
                    head.errors
                        .and_then(|e| e.into_iter().next())
                        .or(head.result.map(Cow::into_owned))
                })
                .flatten();
            self.result = Some(ResultLine {
                is_error,
                interrupted: head
                    .terminal_reason
                    .as_deref()
                    .is_some_and(|reason| stdout::INTERRUPTED.contains(&reason)),
                error_text,
            });
            self.summary.is_error = head.is_error;
            self.summary.total_cost_usd = head.total_cost_usd.or(self.summary.total_cost_usd);
            if let Some(turns) = head.num_turns {
                self.summary.num_turns = Some(self.summary.num_turns.unwrap_or(0) + turns);
            }
            self.summary.turns += 1;
            self.result_just_read = true;
            self.summary_changed = true;
        } else if head.kind.as_deref() == Some("system") && head.subtype.as_deref() == Some("init")
        {
            self.summary.session_id = head.session_id.map(Cow::into_owned);
            self.summary.model = head.model.map(Cow::into_owned);
            self.summary_changed = true;
        }
    }

    /// Makes the last events: the errors that explain the end, and `complete`. `stopped_by`
    /// says why a run that was stopped was.
    pub fn ending(&mut self, outcome: Outcome, stopped_by: StopReason) {
        let status = match (outcome.ending, stopped_by) {
            (Ending::Stopped, StopReason::Requested) => {
                self.push_error(ErrorEvent::new(
                    "stopped",
                    "the agent was stopped by a request to /agent/stop",
                ));
                FinalStatus::Stopped
            }
            (Ending::Stopped, StopReason::ClientGone) => {
                self.push_error(ErrorEvent::new("stopped", "the client went away"));
                FinalStatus::Stopped
            }
            (Ending::Stopped, StopReason::Shutdown) => {
                self.push_error(ErrorEvent::new("shutdown", "the proxy is shutting down"));
                FinalStatus::Stopped
            }
            (Ending::TimedOut, _) => {
                self.push_error(ErrorEvent::new(
                    "timeout",
                    "the run took longer than PROXY_AGENT_TIMEOUT_SECS",
                ));
                FinalStatus::TimedOut
            }
            (Ending::IdleTimedOut, _) => {
                self.push_error(ErrorEvent::new(
                    "idle_timeout",
                    "the CLI wrote nothing for PROXY_IDLE_TIMEOUT_SECS",
                ));
                FinalStatus::TimedOut
            }
            (Ending::Exited, _) => self.exited(&outcome.exit, &outcome.stderr_tail),
        };
        let duration_ms = u64::try_from(outcome.duration.as_millis()).unwrap_or(u64::MAX);
        self.push_complete(
            status,
            outcome.exit.code(),
            outcome.exit.signal(),
            duration_ms,
        );
    }

    /// The errors that explain an exit, and the status it gives the run.
    fn exited(&mut self, exit: &Exit, stderr_tail: &[u8]) -> FinalStatus {
        // A CLI whose last turn the client interrupted exits 1 for it, and that is no failure.
        let interrupted = self.result.as_ref().is_some_and(|r| r.interrupted);
        let how = match exit {
            Exit::Code(0) => None,
            Exit::Code(1) if interrupted => None,
            Exit::Code(code) => Some(format!("the CLI exited with code {code}")),
            Exit::Signal(signal) => Some(format!("the CLI was killed by {}", signal_name(*signal))),
            Exit::WaitFailed(why) => {
                self.push_error(ErrorEvent::new(
                    "wait_failed",
                    format!("how the CLI ended could not be learned: {why}"),
                ));
                return FinalStatus::Failed;
            }
        };
        if let Some(how) = how {
            let stderr = String::from_utf8_lossy(stderr_tail).into_owned();
            let error_result = self.result.as_ref().and_then(|r| r.error_text.as_deref());
            let message = match (stderr.trim(), error_result) {
                ("", None) => how,
                ("", Some(reason)) => format!("{how}: {}", reason.trim()),
                (reason, _) => format!("{how}: {}", last_line(reason)),
            };
            self.push_error(ErrorEvent {
                exit_code: Some(exit.code()),
                signal: Some(exit.signal().map(signal_name)),
                stderr: Some(stderr),
                ..ErrorEvent::new("exit_nonzero", message)
            });
        }
        if self.result.is_none() {
            self.push_error(ErrorEvent::new(
                "no_result",
                "the CLI ended without a result line",
            ));
        }
        match self.result {
            Some(ResultLine {
                is_error: false, ..
            }) if *exit == Exit::Code(0) => FinalStatus::Completed,
            Some(ResultLine {
                interrupted: true, ..
            }) if matches!(exit, Exit::Code(0 | 1)) => FinalStatus::Completed,
            _ => FinalStatus::Failed,
        }
    }

    fn push_error(&mut self, error: ErrorEvent) {
        self.push(Some("error"), wire(&error));
    }

    /// Says once per run that the subscription is rate limited, and until when.
    fn push_rate_limited(&mut self, resets_at: Option<DateTime<Utc>>) {
        let until = resets_at.unwrap_or_else(|| Utc::now() + RATE_LIMIT_UNKNOWN_RESET);
        let first = self.summary.rate_limited_until.is_none();
        self.summary.rate_limited_until = Some(until);
        self.summary_changed = true;
        if first {
            let message = match resets_at {
                Some(at) => format!(
                    "the Claude subscription is rate limited until {}",
                    at.to_rfc3339()
                ),
                None => "the Claude subscription is rate limited".to_owned(),
            };
            let resets_at =
                resets_at.map(|at| at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
            self.push_error(ErrorEvent {
                resets_at: Some(resets_at),
                ..ErrorEvent::new("rate_limited", message)
            });
        }
    }

    /// The run's summary, when it changed since the last call.
    pub fn summary_update(&mut self) -> Option<&RunSummary> {
        std::mem::take(&mut self.summary_changed).then_some(&self.summary)
    }

    fn push_complete(
        &mut self,
        status: FinalStatus,
        exit_code: Option<i32>,
        signal: Option<i32>,
        duration_ms: u64,
    ) {
        // Recorded with `complete` itself: whoever reads the summary next has it in the log.
        self.summary.status = Some(status);
        self.summary.exit_code = exit_code;
        self.summary_changed = true;
        let complete = CompleteEvent {
            kind: CompleteType,
            agent_id: self.agent_id,
            status,
            exit_code,
            duration_ms,
            signal: signal.map(signal_name),
        };
        self.push(Some("complete"), wire(&complete));
    }
}

/// An event's data is one line, whoever reads it. In valid JSON a carriage return can only be
/// insignificant white space (strings cannot hold one raw), but a line-oriented reader (an
/// SSE client among them) takes it for the line's end: make it a space, which means the same.
fn one_line(line: Bytes) -> Bytes {
    if memchr::memchr(b'\r', &line).is_some() {
        Bytes::from(
            line.iter()
                .map(|&b| if b == b'\r' { b' ' } else { b })
                .collect::<Vec<u8>>(),
        )
    } else {
        line
    }
}

fn last_line(text: &str) -> &str {
    text.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or(text)
        .trim()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::time::Duration;

    fn outcome(exit_code: Option<i32>, ending: Ending) -> Outcome {
        Outcome {
            ending,
            exit: exit_code.map_or(Exit::Signal(15), Exit::Code),
            stderr_tail: Bytes::from_static(b"warming up\nNo conversation found\n"),
            duration: Duration::from_millis(1500),
        }
    }

    fn events_for(lines: &[&[u8]], end: Outcome) -> Vec<Event> {
        let mut maker = EventMaker::new(Uuid::nil(), 42, 1000);
        maker.lines(
            lines
                .iter()
                .map(|line| Frame::Line(Bytes::copy_from_slice(line)))
                .collect(),
        );
        maker.ending(end, StopReason::Requested);
        maker.take_events()
    }

    fn json_of(event: &Event) -> serde_json::Value {
        serde_json::from_slice(&event.data).unwrap()
    }

    #[test]
    fn a_successful_run_is_numbered_and_completed() {
        let events = events_for(
            &[
                br#"{"type":"system"}"#,
                br#"{"type":"result","is_error":false}"#,
            ],
            outcome(Some(0), Ending::Exited),
        );
        assert_eq!(
            events.iter().map(|e| e.id).collect::<Vec<_>>(),
            [1, 2, 3, 4]
        );
        assert_eq!(events[0].name, Some("agent"));
        assert_eq!(&events[1].data[..], br#"{"type":"system"}"#);
        assert_eq!(events[3].name, Some("complete"));
        assert_eq!(json_of(&events[3])["status"], "completed");
        assert_eq!(json_of(&events[3])["duration_ms"], 1500);
    }

    #[test]
    fn non_json_lines_are_wrapped_and_json_passes_unchanged() {
        let events = events_for(
            &[b"plain text", b"[1, 2]", b"{\"a\":\r1}"],
            outcome(Some(0), Ending::Exited),
        );
        assert_eq!(
            json_of(&events[1]),
            json!({"type": "proxy_raw", "line": "plain text"})
        );
        assert_eq!(&events[2].data[..], b"[1, 2]");
        assert_eq!(&events[3].data[..], b"{\"a\": 1}");
    }

    #[test]
    fn an_error_result_and_nonzero_exit_fail_with_the_stderr_reason() {
        let events = events_for(
            &[br#"{"type":"result","is_error":true}"#],
            outcome(Some(1), Ending::Exited),
        );
        let error = json_of(&events[2]);
        assert_eq!(error["code"], "exit_nonzero");
        assert_eq!(error["exit_code"], 1);
        assert!(
            error["message"]
                .as_str()
                .unwrap()
                .ends_with("No conversation found")
        );
        assert_eq!(json_of(events.last().unwrap())["status"], "failed");
    }

    #[test]
    fn without_stderr_the_error_result_explains_the_exit() {
        let mut end = outcome(Some(1), Ending::Exited);
        end.stderr_tail = Bytes::new();
        let not_logged_in = br#"{"type":"result","is_error":true,"result":"Not logged in \u00b7 Please run /login"}"#;
        let events = events_for(&[not_logged_in], end);
        assert_eq!(
            json_of(&events[2])["message"],
            "the CLI exited with code 1: Not logged in \u{b7} Please run /login"
        );
    }

    #[test]
    fn a_rate_limit_is_reported_after_the_line_that_shows_it() {
        let limited =
            br#"{"type":"assistant","error":"rate_limit","api_error_status":429,"message":{}}"#;
        let event = br#"{"type":"rate_limit_event","rate_limit_info":{"status":"rejected","resetsAt":1900000000}}"#;
        let events = events_for(&[limited, event], outcome(Some(1), Ending::Exited));
        assert_eq!(&events[1].data[..], &limited[..]);
        let error = json_of(&events[2]);
        assert_eq!(error["code"], "rate_limited");
        assert_eq!(
            error["resets_at"],
            serde_json::Value::Null,
            "the first line does not say when"
        );
        assert_eq!(&events[3].data[..], &event[..]);
        let said = events
            .iter()
            .filter(|e| e.name == Some("error") && json_of(e)["code"] == "rate_limited")
            .count();
        assert_eq!(said, 1, "said once per run");
    }

    #[test]
    fn no_result_line_fails() {
        let events = events_for(&[br#"{"type":"system"}"#], outcome(Some(0), Ending::Exited));
        assert_eq!(json_of(&events[2])["code"], "no_result");
        assert_eq!(json_of(&events[3])["status"], "failed");
    }

    #[test]
    fn timeouts_and_stops_are_said_before_complete() {
        let events = events_for(&[], outcome(None, Ending::IdleTimedOut));
        assert_eq!(json_of(&events[1])["code"], "idle_timeout");
        assert_eq!(json_of(&events[2])["status"], "timed_out");
        let mut maker = EventMaker::new(Uuid::nil(), 42, 1000);
        maker.ending(outcome(None, Ending::Stopped), StopReason::Shutdown);
        let events = maker.take_events();
        assert_eq!(json_of(&events[1])["code"], "shutdown");
        assert_eq!(json_of(&events[2])["status"], "stopped");
    }

    #[test]
    fn a_run_whose_end_could_not_be_learned_failed() {
        let mut end = outcome(None, Ending::Exited);
        end.exit = Exit::WaitFailed("waiting for the process failed: injected".into());
        let events = events_for(&[br#"{"type":"result","is_error":false}"#], end);
        let error = json_of(&events[2]);
        assert_eq!(error["code"], "wait_failed");
        assert!(
            error["message"].as_str().unwrap().contains("injected"),
            "{error}"
        );
        let complete = json_of(&events[3]);
        assert_eq!(
            complete["status"], "failed",
            "not completed: exit 0 was never seen"
        );
        assert_eq!(complete["exit_code"], serde_json::Value::Null);
    }
}
