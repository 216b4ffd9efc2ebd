//! An interactive agent's conversation with its CLI, which keeps running between turns: the
//! messages written to it, the control requests it is sent and answers, and the tool
//! approvals it asks for.
//!
//! Every line written to the CLI's stdin is JSON built here: the CLI exits on a line that is
//! not JSON, so no byte a client wrote is ever passed on raw.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use bytes::Bytes;
use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use tokio_util::task::TaskTracker;
use uuid::Uuid;

use crate::agent::Error;
use crate::agent::admission::message::MessageContent;
use crate::agent::admission::policy::{PermissionMode, ToolPolicy};
use crate::agent::event_bodies::{
    PermissionCancelledEvent, PermissionCancelledType, PermissionDecisionEvent,
    PermissionDecisionType, PermissionRequestEvent, PermissionRequestType,
};
use crate::agent::logs::journal::Journal;
use crate::agent::view::PermissionRequest;
use crate::agent::webhooks::Webhook;
use crate::cli::stdin::{self, Control};
use crate::metrics::Metrics;

/// How many messages may wait behind the running turn.
pub const MAX_WAITING: usize = 16;
/// How long the CLI has to answer a control request.
const CONTROL_ANSWER_LIMIT: Duration = Duration::from_secs(10);
/// How many settled permission requests are remembered, to tell a late answer from a wrong id.
const SETTLED_KEPT: usize = 256;
/// Lines that may wait to be written to stdin: the messages, control lines, and answers.
const STDIN_QUEUE: usize = 64;
/// Places kept free for messages and the client's control requests: the answers to what the
/// CLI asks that the proxy does not serve go only into the rest, so a CLI flooding the proxy
/// with such requests never crowds out a client's message.
const KEPT_FOR_CLIENTS: usize = 2 * MAX_WAITING;

/// What a conversation is set up with.
#[derive(Debug, Clone)]
pub struct ConversationSettings {
    /// Longest the agent may wait with no turn running and nothing asked before it is closed.
    pub idle_limit: Duration,
    /// Longest a tool approval may wait for its answer before it is denied.
    pub permission_limit: Duration,
    /// Tool approvals go to the client.
    pub approvals: bool,
    /// Where the agent's webhook events go, if it has a webhook: each approval it waits for
    /// is one.
    pub webhook: Option<Arc<Webhook>>,
}

#[derive(Debug)]
pub struct Conversation {
    settings: ConversationSettings,
    policy: Arc<ToolPolicy>,
    journal: Arc<Mutex<Journal>>,
    state: Mutex<State>,
    /// True while the CLI may be silent for any time: no turn runs, or an approval waits.
    idle_paused: watch::Sender<bool>,
    metrics: Arc<Metrics>,
    tasks: TaskTracker,
}

#[derive(Debug)]
struct State {
    /// None once the conversation is closed: the CLI finishes what it has and exits.
    stdin: Option<mpsc::Sender<Bytes>>,
    ended: bool,
    /// User messages written, the prompt included.
    sent: u64,
    /// Result lines seen: one per message.
    results: u64,
    /// Control requests sent to the CLI, by request id, waiting for its answer.
    controls: Vec<(String, oneshot::Sender<Result<Value, String>>)>,
    /// Tool approvals the CLI asked for, in the order it asked.
    permissions: Vec<PermissionRequest>,
    settled: VecDeque<(String, Settled)>,
    /// The agent's span, which each turn's is a child of; let go of when the CLI has exited, so
    /// that it ends with the agent, not when the agent is forgotten.
    agent_span: tracing::Span,
    /// The running turn's span, from its start to its result.
    turn: Option<tracing::Span>,
    /// Each waiting approval's span, from the CLI's request to its settling.
    approvals: Vec<(String, tracing::Span)>,
}

/// How a tool approval was settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Settled {
    Allowed,
    Denied,
    Expired,
    Cancelled,
}

impl Settled {
    fn as_str(self) -> &'static str {
        match self {
            Settled::Allowed => "allowed",
            Settled::Denied => "denied",
            Settled::Expired => "expired",
            Settled::Cancelled => "cancelled",
        }
    }
}

/// A client's answer to a tool approval. It never carries permission updates (rules,
/// directories, modes): they would widen the operator's policy or outlive the agent.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "behavior", rename_all = "lowercase", deny_unknown_fields)]
pub enum PermissionAnswer {
    Allow {
        /// The tool runs with this input instead of the model's.
        #[serde(default)]
        #[schema(value_type = Option<Object>)]
        updated_input: Option<Map<String, Value>>,
    },
    Deny {
        /// What the model is told.
        #[serde(default)]
        message: Option<String>,
        /// Ends the turn as an interrupt does.
        #[serde(default)]
        interrupt: bool,
    },
}

/// Who settled a tool approval.
#[derive(Debug, Clone, Copy)]
enum DecidedBy {
    Client,
    Timeout,
}

impl Conversation {
    /// Starts the conversation, with its own watch: it is closed once it has waited
    /// `settings.idle_limit` with no turn running and nothing asked. `idle_paused` tells the
    /// process layer when the CLI may be silent.
    #[allow(clippy::too_many_arguments)]
    pub fn start(
        stdin: mpsc::Sender<Bytes>,
        idle_paused: watch::Sender<bool>,
        settings: ConversationSettings,
        policy: Arc<ToolPolicy>,
        journal: Arc<Mutex<Journal>>,
        metrics: Arc<Metrics>,
        tasks: &TaskTracker,
        span: tracing::Span,
    ) -> Arc<Self> {
        let paused = idle_paused.subscribe();
        let conversation = Arc::new(Self {
            settings,
            policy,
            journal,
            state: Mutex::new(State {
                stdin: Some(stdin),
                ended: false,
                // The prompt is the first message, written at the spawn.
                sent: 1,
                results: 0,
                controls: Vec::new(),
                permissions: Vec::new(),
                settled: VecDeque::new(),
                agent_span: span,
                turn: None,
                approvals: Vec::new(),
            }),
            idle_paused,
            metrics,
            tasks: tasks.clone(),
        });
        Self::next_turn(&mut conversation.lock());
        tasks.spawn(close_when_idle(Arc::downgrade(&conversation), paused));
        conversation
    }

    /// The queue a conversation's stdin is written from, and the line of its prompt.
    pub fn stdin(prompt: &str) -> (mpsc::Sender<Bytes>, mpsc::Receiver<Bytes>, Bytes) {
        let (tx, rx) = Self::stdin_queue();
        (tx, rx, user_line(&MessageContent::Text(prompt.to_owned())))
    }

    /// The queue a CLI's stdin is written from, for a CLI started before its first message.
    pub fn stdin_queue() -> (mpsc::Sender<Bytes>, mpsc::Receiver<Bytes>) {
        mpsc::channel(STDIN_QUEUE)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        crate::sync::lock(&self.state)
    }

    /// No turn runs: the agent waits for a message.
    pub fn is_waiting(&self) -> bool {
        let state = self.lock();
        !state.ended && state.sent == state.results
    }

    pub fn pending_permissions(&self) -> Vec<PermissionRequest> {
        self.lock().permissions.clone()
    }

    pub fn pending_permission_count(&self) -> usize {
        self.lock().permissions.len()
    }

    /// Writes a user message: it runs at once, or as a turn of its own once the turns before
    /// it have. Returns how many turns run before it.
    pub fn send(&self, content: &MessageContent) -> Result<u64, Error> {
        let mut state = self.lock();
        let ahead = state.sent - state.results;
        if ahead > MAX_WAITING as u64 {
            return Err(Error::QueueFull { max: MAX_WAITING });
        }
        state.write(user_line(content))?;
        state.sent += 1;
        if state.turn.is_none() {
            Self::next_turn(&mut state);
        }
        self.metrics.messages.inc();
        self.update_pause(&state);
        Ok(ahead)
    }

    /// The CLI wrote result lines: `results` in all so far.
    pub fn results_seen(&self, results: u64) {
        let mut state = self.lock();
        if results != state.results {
            state.results = results;
            Self::next_turn(&mut state);
        }
        self.update_pause(&state);
    }

    /// Ends the running turn's span, and starts the next one's if a message waits for it.
    fn next_turn(state: &mut State) {
        state.turn = (state.sent > state.results).then(
            || tracing::info_span!(parent: &state.agent_span, "turn", turn = state.results + 1),
        );
    }

    /// Ends the running turn (its result says so); queued messages still run, and pending
    /// approvals are cancelled by the CLI. Returns how many messages are still queued.
    pub async fn interrupt(&self) -> Result<u64, Error> {
        let still_queued = {
            let state = self.lock();
            (state.sent - state.results).saturating_sub(1)
        };
        self.control(Control::Interrupt).await?;
        self.metrics.interrupts.inc();
        Ok(still_queued)
    }

    /// Changes the model for the next turns; None goes back to the default.
    pub async fn set_model(&self, model: Option<&str>) -> Result<Value, Error> {
        let answer = self.control(Control::SetModel(model)).await?;
        Ok(answer.get("model").cloned().unwrap_or(Value::Null))
    }

    pub async fn set_permission_mode(&self, mode: PermissionMode) -> Result<Value, Error> {
        let answer = self
            .control(Control::SetPermissionMode(mode.as_cli()))
            .await?;
        Ok(answer
            .get("mode")
            .cloned()
            .unwrap_or_else(|| mode.as_cli().into()))
    }

    /// Sends a control request and waits for the CLI's answer.
    async fn control(&self, request: Control<'_>) -> Result<Value, Error> {
        let request_id = format!("proxy-{}", Uuid::new_v4());
        let (tx, rx) = oneshot::channel();
        {
            let mut state = self.lock();
            state.write(stdin::control_request(&request_id, request))?;
            state.controls.push((request_id.clone(), tx));
        }
        match tokio::time::timeout(CONTROL_ANSWER_LIMIT, rx).await {
            Ok(Ok(Ok(answer))) => Ok(answer),
            Ok(Ok(Err(refusal))) => Err(Error::Conflict(format!("the CLI refused: {refusal}"))),
            Ok(Err(_)) => Err(Error::Conflict("the agent has ended".into())),
            Err(_) => {
                self.lock().controls.retain(|(id, _)| *id != request_id);
                Err(Error::CliDidNotAnswer {
                    waited: CONTROL_ANSWER_LIMIT,
                })
            }
        }
    }

    /// Closes the CLI's input: it finishes the running and queued turns, then exits.
    pub fn close(&self) -> Result<(), Error> {
        let mut state = self.lock();
        if state.ended {
            return Err(Error::Conflict("the agent has ended".into()));
        }
        if state.stdin.take().is_none() {
            return Err(Error::Conflict("the agent is already closing".into()));
        }
        // The CLI gives up on approvals once its input ends.
        self.cancel_permissions(&mut state);
        Ok(())
    }

    /// A client's answer to a tool approval.
    pub fn answer(&self, request_id: &str, answer: PermissionAnswer) -> Result<(), Error> {
        let mut state = self.lock();
        let Some(at) = state
            .permissions
            .iter()
            .position(|p| p.request_id == request_id)
        else {
            return Err(
                match state.settled.iter().find(|(id, _)| id == request_id) {
                    Some((_, how)) => Error::Conflict(format!(
                        "permission request {request_id} is already {}",
                        how.as_str()
                    )),
                    None => Error::PermissionNotFound(request_id.to_owned()),
                },
            );
        };
        let request = state.permissions.remove(at);
        self.decide(&mut state, request, answer, DecidedBy::Client);
        Ok(())
    }

    /// Hands the CLI's control lines to the conversation, in the order it wrote them.
    pub fn on_control_lines(self: &Arc<Self>, lines: Vec<Bytes>) {
        for line in lines {
            let Ok(message) = serde_json::from_slice::<Value>(&line) else {
                continue;
            };
            match message["type"].as_str() {
                Some("control_response") => self.answered(&message["response"]),
                Some("control_request") => self.asked(&message),
                Some("control_cancel_request") => {
                    if let Some(id) = message["request_id"].as_str() {
                        self.cancelled(id);
                    }
                }
                _ => {}
            }
        }
    }

    /// The CLI has exited: nothing more can be asked or answered.
    pub fn end(&self) {
        let mut state = self.lock();
        state.ended = true;
        state.stdin = None;
        state.controls.clear();
        self.cancel_permissions(&mut state);
        state.turn = None;
        state.agent_span = tracing::Span::none();
        self.update_pause(&state);
    }

    fn answered(&self, response: &Value) {
        let Some(id) = response["request_id"].as_str() else {
            return;
        };
        let mut state = self.lock();
        let Some(at) = state.controls.iter().position(|(waiting, _)| waiting == id) else {
            return;
        };
        let (_, tx) = state.controls.remove(at);
        let answer = match response["subtype"].as_str() {
            Some("success") => Ok(response["response"].clone()),
            _ => Err(response["error"]
                .as_str()
                .unwrap_or("no reason given")
                .to_owned()),
        };
        let _ = tx.send(answer);
    }

    /// The CLI asks the host something: a tool approval, or what the proxy does not offer.
    fn asked(self: &Arc<Self>, message: &Value) {
        let request_id = message["request_id"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let request = &message["request"];
        if request["subtype"] != "can_use_tool" {
            let subtype = request["subtype"].as_str().unwrap_or("unknown");
            let answer = stdin::refuse_request(
                &request_id,
                &format!("claude-proxy does not answer {subtype} requests"),
            );
            let state = self.lock();
            let room = state.stdin.as_ref().map_or(0, mpsc::Sender::capacity);
            if room > KEPT_FOR_CLIENTS {
                let _ = state.stdin.as_ref().map(|stdin| stdin.try_send(answer));
            } else {
                tracing::debug!(
                    subtype,
                    "too many requests from the CLI; one left unanswered"
                );
            }
            return;
        }
        let tool_name = request["tool_name"].as_str().unwrap_or_default().to_owned();
        let mut state = self.lock();
        if !self.settings.approvals || !self.policy.tool_exists(&tool_name) {
            // Not the client's to decide: tools the operator removed are never asked about.
            let _ = state.write(stdin::deny_tool(
                &request_id,
                &format!("{tool_name} is not allowed here"),
                false,
            ));
            return;
        }
        let expires_at = Utc::now()
            + chrono::Duration::from_std(self.settings.permission_limit)
                .unwrap_or(chrono::Duration::MAX);
        let pending = PermissionRequest {
            request_id: request_id.clone(),
            tool_name,
            input: request["input"].clone(),
            tool_use_id: request["tool_use_id"].as_str().map(str::to_owned),
            description: request["description"].as_str().map(str::to_owned),
            suggestions: request
                .get("permission_suggestions")
                .cloned()
                .unwrap_or(Value::Array(Vec::new())),
            expires_at,
        };
        crate::sync::lock(&self.journal).push(&PermissionRequestEvent {
            kind: PermissionRequestType,
            request: pending.clone(),
        });
        if let Some(webhook) = &self.settings.webhook {
            webhook.permission_requested(&pending);
        }
        let approval = tracing::info_span!(
            parent: state.turn.as_ref().unwrap_or(&state.agent_span),
            "approval",
            request_id = %pending.request_id,
            tool_name = %pending.tool_name,
            decision = tracing::field::Empty,
        );
        state.approvals.push((pending.request_id.clone(), approval));
        state.permissions.push(pending);
        self.metrics.permission_requests.inc();
        self.update_pause(&state);
        drop(state);
        let conversation = Arc::downgrade(self);
        let limit = self.settings.permission_limit;
        self.tasks.spawn(async move {
            tokio::time::sleep(limit).await;
            if let Some(conversation) = conversation.upgrade() {
                conversation.expire(&request_id);
            }
        });
    }

    fn expire(&self, request_id: &str) {
        let mut state = self.lock();
        let Some(at) = state
            .permissions
            .iter()
            .position(|p| p.request_id == request_id)
        else {
            return;
        };
        let request = state.permissions.remove(at);
        let message = format!(
            "the permission request expired: nobody answered within PROXY_PERMISSION_TIMEOUT_SECS ({} s)",
            self.settings.permission_limit.as_secs_f64()
        );
        self.decide(
            &mut state,
            request,
            PermissionAnswer::Deny {
                message: Some(message),
                interrupt: false,
            },
            DecidedBy::Timeout,
        );
    }

    fn cancelled(&self, request_id: &str) {
        let mut state = self.lock();
        if let Some(at) = state
            .permissions
            .iter()
            .position(|p| p.request_id == request_id)
        {
            let request = state.permissions.remove(at);
            self.settle(&mut state, &request.request_id, Settled::Cancelled);
        }
    }

    fn cancel_permissions(&self, state: &mut State) {
        for request in std::mem::take(&mut state.permissions) {
            self.settle(state, &request.request_id, Settled::Cancelled);
        }
    }

    /// Answers the CLI and records the decision.
    fn decide(
        &self,
        state: &mut State,
        request: PermissionRequest,
        answer: PermissionAnswer,
        by: DecidedBy,
    ) {
        let mut event = PermissionDecisionEvent {
            kind: PermissionDecisionType,
            request_id: request.request_id.clone(),
            tool_name: request.tool_name.clone(),
            behavior: "allow",
            decided_by: match by {
                DecidedBy::Client => "client",
                DecidedBy::Timeout => "timeout",
            },
            updated_input: None,
            message: None,
            interrupt: None,
        };
        let (response, settled) = match answer {
            PermissionAnswer::Allow { updated_input } => {
                let changed = updated_input.is_some();
                let input = updated_input.map_or(request.input.clone(), Value::Object);
                event.updated_input = Some(changed.then(|| input.clone()));
                (
                    stdin::allow_tool(&request.request_id, input),
                    Settled::Allowed,
                )
            }
            PermissionAnswer::Deny { message, interrupt } => {
                let message =
                    message.unwrap_or_else(|| "the client denied this tool use".to_owned());
                let response = stdin::deny_tool(&request.request_id, &message, interrupt);
                event.behavior = "deny";
                event.message = Some(message);
                event.interrupt = Some(interrupt);
                (response, Settled::Denied)
            }
        };
        if let Err(err) = state.write(response) {
            tracing::debug!(%err, "an approval's answer could not reach the CLI");
        }
        crate::sync::lock(&self.journal).push(&event);
        let settled = match by {
            DecidedBy::Timeout => Settled::Expired,
            DecidedBy::Client => settled,
        };
        self.remember(state, &request.request_id, settled);
    }

    /// Records a request that ended without an answer of the client's.
    fn settle(&self, state: &mut State, request_id: &str, how: Settled) {
        crate::sync::lock(&self.journal).push(&PermissionCancelledEvent {
            kind: PermissionCancelledType,
            request_id: request_id.to_owned(),
        });
        self.remember(state, request_id, how);
    }

    fn remember(&self, state: &mut State, request_id: &str, how: Settled) {
        self.metrics.permission_settled(how.as_str());
        if let Some(at) = state.approvals.iter().position(|(id, _)| id == request_id) {
            let (_, span) = state.approvals.swap_remove(at);
            span.record("decision", how.as_str());
        }
        state.settled.push_back((request_id.to_owned(), how));
        if state.settled.len() > SETTLED_KEPT {
            state.settled.pop_front();
        }
        self.update_pause(state);
    }

    fn update_pause(&self, state: &State) {
        let waiting = state.sent == state.results || !state.permissions.is_empty();
        self.idle_paused.send_if_modified(|paused| {
            let changed = *paused != waiting;
            *paused = waiting;
            changed
        });
    }
}

impl State {
    /// Queues a line for the CLI's stdin.
    fn write(&mut self, line: Bytes) -> Result<(), Error> {
        let stdin = match (&self.stdin, self.ended) {
            (_, true) => return Err(Error::Conflict("the agent has ended".into())),
            (None, false) => return Err(Error::Conflict("the agent is closing".into())),
            (Some(stdin), false) => stdin,
        };
        stdin.try_send(line).map_err(|err| match err {
            mpsc::error::TrySendError::Full(_) => Error::QueueFull { max: MAX_WAITING },
            mpsc::error::TrySendError::Closed(_) => Error::Conflict("the agent has ended".into()),
        })
    }
}

/// Closes the conversation once it has waited `idle_limit` with no turn running and nothing
/// asked.
async fn close_when_idle(conversation: Weak<Conversation>, mut paused: watch::Receiver<bool>) {
    let Some(limit) = conversation.upgrade().map(|c| c.settings.idle_limit) else {
        return;
    };
    loop {
        let deadline = (*paused.borrow_and_update()).then(|| Instant::now() + limit);
        let timed_out = match deadline {
            Some(deadline) => tokio::select! {
                changed = paused.changed() => if changed.is_err() { return } else { false },
                () = tokio::time::sleep_until(deadline) => true,
            },
            None => {
                if paused.changed().await.is_err() {
                    return;
                }
                false
            }
        };
        if timed_out {
            let Some(conversation) = conversation.upgrade() else {
                return;
            };
            if conversation.close().is_ok() {
                tracing::info!(
                    idle_secs = limit.as_secs_f64(),
                    "closing an interactive agent that waited past PROXY_INTERACTIVE_IDLE_SECS"
                );
            }
            return;
        }
    }
}

pub(super) fn user_line(content: &MessageContent) -> Bytes {
    stdin::user_message(content.to_cli())
}
