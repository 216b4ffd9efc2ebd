//! The delivery of webhook events from the store's outbox: claim what is due (for a lease, so
//! that no other instance sends it meanwhile), sign it, POST it, and record how it went:
//! delivered on a 2xx, else tried again after twice the last wait, until its attempts are
//! spent. At least once: an attempt whose answer is lost is made again, and a receiver drops
//! repeats by the event's id. It stops on shutdown, handing back what it had claimed, so the
//! next start (or another instance) sends it.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::agent::{AttemptOutcome, Store, WebhookAttempt, WebhookClaim, WebhookEvent};

/// Attempts per event: with a 30 s first wait, the last is about an hour after the first.
pub const MAX_ATTEMPTS: u32 = 8;
/// Longest one attempt waits for the receiver's answer.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a claim holds an event: longer than an attempt, so a live instance never loses
/// one it is sending; an instance that dies leaves it to others after this.
const LEASE: Duration = Duration::from_secs(60);
/// Events claimed (and sent at once) at a time.
const CLAIM_AT_MOST: usize = 16;
/// Longest the worker sleeps before it looks at the outbox again: events other instances
/// put there, and claims that ran out, are found within this.
const LOOK_AGAIN: Duration = Duration::from_secs(5);

/// The header of an event's signature: `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`.
pub const SIGNATURE_HEADER: &str = "X-Claude-Proxy-Signature";

/// What the worker is built with.
#[derive(Clone)]
pub struct Delivery {
    store: Arc<dyn Store>,
    secret: Arc<[u8]>,
    retry_base: Duration,
    instance: Arc<str>,
    wake: Arc<Notify>,
    client: reqwest::Client,
}

impl std::fmt::Debug for Delivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Delivery")
            .field("retry_base", &self.retry_base)
            .finish_non_exhaustive()
    }
}

impl Delivery {
    pub fn new(
        store: Arc<dyn Store>,
        secret: &str,
        retry_base: Duration,
        instance: Arc<str>,
        wake: Arc<Notify>,
    ) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .timeout(ATTEMPT_TIMEOUT)
            // A redirect would take the event to an address the allowlist never saw.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("claude-proxy/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            store,
            secret: Arc::from(secret.as_bytes()),
            retry_base,
            instance,
            wake,
            client,
        })
    }

    /// Delivers until `stopping` is cancelled.
    pub async fn run(self, stopping: CancellationToken) {
        while !stopping.is_cancelled() {
            let now = Utc::now();
            let claim = WebhookClaim {
                instance: Arc::clone(&self.instance),
                now,
                lease_until: now + chrono::Duration::from_std(LEASE).unwrap_or_default(),
                max: CLAIM_AT_MOST,
            };
            // Not raced with the shutdown: a claim the writer commits after its answer was
            // dropped would hold its events for a whole lease. The writer answers within its
            // flush interval.
            let claimed = self.store.claim_webhooks(claim).await;
            if stopping.is_cancelled() {
                for event in claimed.map(|c| c.events).unwrap_or_default() {
                    self.record(&event, AttemptOutcome::Released, event.attempts, None, None);
                }
                return;
            }
            let wait = match claimed {
                Ok(claimed) if !claimed.events.is_empty() => {
                    let mut attempts = JoinSet::new();
                    for event in claimed.events {
                        attempts.spawn(self.clone().attempt(event, stopping.clone()));
                    }
                    while attempts.join_next().await.is_some() {}
                    // More may be due already.
                    continue;
                }
                Ok(claimed) => claimed
                    .next_due
                    .map_or(LOOK_AGAIN, |due| (due - now).to_std().unwrap_or_default())
                    .min(LOOK_AGAIN),
                Err(err) => {
                    tracing::warn!(%err, "could not claim webhook events from the store");
                    LOOK_AGAIN
                }
            };
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = self.wake.notified() => {}
                () = stopping.cancelled() => {}
            }
        }
    }

    /// One attempt at a claimed event, recorded.
    async fn attempt(self, event: WebhookEvent, stopping: CancellationToken) {
        let timestamp = Utc::now().timestamp();
        let request = self
            .client
            .post(&event.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("X-Claude-Proxy-Event", &event.event)
            .header("X-Claude-Proxy-Delivery", event.id.to_string())
            .header(
                SIGNATURE_HEADER,
                signature(&self.secret, timestamp, &event.body),
            )
            .body(event.body.clone());
        let sent = tokio::select! {
            sent = request.send() => sent,
            () = stopping.cancelled() => {
                self.record(&event, AttemptOutcome::Released, event.attempts, None, None);
                return;
            }
        };
        let attempts = event.attempts + 1;
        let (status, error) = match sent {
            Ok(answer) if answer.status().is_success() => (Some(answer.status().as_u16()), None),
            Ok(answer) => (
                Some(answer.status().as_u16()),
                Some(format!("the receiver answered {}", answer.status())),
            ),
            Err(err) => (None, Some(err.without_url().to_string())),
        };
        let outcome = match &error {
            None => AttemptOutcome::Delivered,
            Some(_) if attempts >= MAX_ATTEMPTS => AttemptOutcome::GaveUp,
            Some(_) => AttemptOutcome::Retry(Utc::now() + self.backoff(attempts)),
        };
        match &error {
            None => {
                tracing::debug!(event = %event.event, id = %event.id, attempts, "webhook delivered")
            }
            Some(error) => tracing::warn!(
                event = %event.event, id = %event.id, attempts, %error,
                gave_up = outcome == AttemptOutcome::GaveUp, "a webhook delivery failed"
            ),
        }
        self.record(&event, outcome, attempts, status, error);
    }

    /// The wait after the `attempts`th failed attempt: the base, doubled for each before it.
    fn backoff(&self, attempts: u32) -> chrono::Duration {
        let wait = self
            .retry_base
            .saturating_mul(1 << attempts.saturating_sub(1).min(16));
        chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::MAX)
    }

    fn record(
        &self,
        event: &WebhookEvent,
        outcome: AttemptOutcome,
        attempts: u32,
        status: Option<u16>,
        error: Option<String>,
    ) {
        self.store.webhook_attempt(WebhookAttempt {
            id: event.id,
            instance: Arc::clone(&self.instance),
            outcome,
            attempts,
            status,
            error,
            at: Utc::now(),
        });
    }
}

/// `t=<timestamp>,v1=<hex HMAC-SHA256 of "<timestamp>.<body>" with the secret>`: the
/// timestamp is signed with the body, so a receiver that refuses old ones refuses replays.
pub fn signature(secret: &[u8], timestamp: i64, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes a key of any size");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    let digest = mac.finalize().into_bytes();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("t={timestamp},v1={hex}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_hmac_sha256_of_the_timestamp_and_body() {
        // As Python's `hmac.new(secret, b"<t>.<body>", hashlib.sha256).hexdigest()` makes it.
        assert_eq!(
            signature(
                b"whsec-test-secret-0123",
                1_700_000_000,
                r#"{"type":"agent.completed"}"#
            ),
            "t=1700000000,v1=cc1e24ea35a1dabfa35e2810e5ff5d539a06fb4945cd6c99408717df9552606c"
        );
    }
}
