//! Agents that run on another instance of the same database: finding where one runs, sending
//! it an action and waiting for the answer, and performing what other instances send here.

use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::agent::Agents;
use crate::agent::admission::keys::Client;
use crate::agent::error::{Error, ErrorKind};
use crate::agent::ports::cluster::{Action, Answer, Forwarded, Refusal};

impl Agents {
    /// The instance that runs an agent of `client`, when it is running and not here.
    pub(in crate::agent) async fn runs_elsewhere(
        &self,
        client: Client,
        agent_id: Uuid,
    ) -> Option<Arc<str>> {
        self.core.cluster.as_ref()?;
        if self.core.table.knows(client, agent_id) {
            return None;
        }
        let record = self.stored(client, agent_id).await?;
        if record.info.ended_at.is_some() {
            return None;
        }
        record
            .instance
            .filter(|instance| **instance != *self.core.settings.instance_id)
    }

    /// Sends `action` to the instance that runs the agent and gives back its answer, or 504
    /// past the forward timeout.
    pub(in crate::agent) async fn forward<T: DeserializeOwned>(
        &self,
        instance: Arc<str>,
        client: Client,
        agent_id: Uuid,
        action: Action,
    ) -> Result<T, Error> {
        let cluster = self
            .core
            .cluster
            .as_ref()
            .expect("only agents of a cluster run elsewhere");
        let forwarded = Forwarded {
            owner: client.to_stored(),
            agent_id,
            action,
        };
        let waited = self.core.settings.forward_timeout;
        let answer = cluster
            .forward(&instance, forwarded, waited)
            .await
            .map_err(|err| Error::SharedStore(err.0))?
            .ok_or_else(|| Error::InstanceDidNotAnswer {
                instance: instance.to_string(),
                waited,
            })?;
        match answer {
            Ok(value) => serde_json::from_value(value).map_err(|err| {
                Error::SharedStore(format!("an answer this instance cannot read: {err}"))
            }),
            Err(refusal) => Err(Error::Elsewhere {
                kind: refusal.kind,
                message: refusal.message,
            }),
        }
    }

    /// Performs what other instances forward here, until `stopping` is cancelled.
    pub async fn answer_forwarded(&self, stopping: CancellationToken) {
        let Some(mut incoming) = self.core.cluster.as_ref().and_then(|c| c.incoming()) else {
            return;
        };
        loop {
            let next = tokio::select! {
                next = incoming.recv() => next,
                () = stopping.cancelled() => None,
            };
            let Some(next) = next else { break };
            let agents = self.clone();
            self.core.tasks.spawn(async move {
                let answer = agents.perform(next.forwarded).await;
                (next.reply)(answer);
            });
        }
    }

    /// An action another instance forwarded, as its own client would have had it done here.
    async fn perform(&self, forwarded: Forwarded) -> Answer {
        let Some(client) = Client::from_stored(&forwarded.owner) else {
            return Err(Refusal {
                kind: ErrorKind::NotFound,
                message: format!("Agent {} not found", forwarded.agent_id),
            });
        };
        let id = forwarded.agent_id;
        let done = |()| Value::Null;
        let result = match forwarded.action {
            Action::Stop => self.stop(client, id).await.map(done),
            Action::Delete => self.delete(client, id).await.map(done),
            Action::Message { body } => match body_of(body) {
                Ok(message) => self
                    .send_message(client, id, message)
                    .await
                    .map(Value::from),
                Err(err) => Err(err),
            },
            Action::Interrupt => self.interrupt(client, id).await.map(Value::from),
            Action::Close => self.close(client, id).await.map(done),
            Action::Update { body } => match body_of(body) {
                Ok(update) => self.update(client, id, update).await.map(Value::Object),
                Err(err) => Err(err),
            },
            Action::Permissions => self.permissions(client, id).await.map(|p| json!(p)),
            Action::Answer { request_id, body } => match body_of(body) {
                Ok(answer) => self
                    .answer_permission(client, id, &request_id, answer)
                    .await
                    .map(done),
                Err(err) => Err(err),
            },
        };
        result.map_err(|err| Refusal {
            kind: err.kind(),
            message: err.to_string(),
        })
    }
}

/// A body as the client sent it to another instance, which checked its shape already.
fn body_of<T: DeserializeOwned>(body: Value) -> Result<T, Error> {
    serde_json::from_value(body).map_err(|err| Error::invalid("body", err.to_string()))
}
