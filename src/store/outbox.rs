//! The webhook outbox's SQL: events put in by the writer, claimed with a lease so that one
//! instance at a time sends each, their attempts recorded, and what is done with forgotten
//! agents swept.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::db::{Db, DbResult, Row, stored_time};
use crate::agent::{
    AttemptOutcome, ClaimedWebhooks, Client, WebhookAttempt, WebhookClaim, WebhookDelivery,
    WebhookEvent, WebhookState,
};

/// Puts an event in the outbox, due at once.
pub fn put<D: Db>(db: &mut D, event: &WebhookEvent) -> DbResult<()> {
    db.execute(
        "INSERT INTO webhook_outbox (event_id, agent_id, owner, event, url, body, created_at,
             state, attempts, next_attempt_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'pending', 0, ?7)
         ON CONFLICT (event_id) DO NOTHING",
        &[
            event.id.to_string().into(),
            event.agent_id.to_string().into(),
            event.owner.to_stored().into(),
            event.event.as_str().into(),
            event.url.as_str().into(),
            event.body.as_str().into(),
            stored_time(event.created_at).into(),
        ],
    )?;
    Ok(())
}

/// Claims the due events no instance holds. Each is claimed by a compare-and-set of its own
/// row, which both engines make atomic: of two instances that read the same row, one changes
/// it, and the other's update finds the lease taken and changes nothing.
pub fn claim<D: Db>(db: &mut D, claim: &WebhookClaim) -> DbResult<ClaimedWebhooks> {
    let now = stored_time(claim.now);
    let due = db.query(
        "SELECT event_id FROM webhook_outbox
         WHERE state = 'pending' AND next_attempt_at <= ?1
             AND (claimed_until IS NULL OR claimed_until < ?1)
         ORDER BY next_attempt_at LIMIT ?2",
        &[now.as_str().into(), claim.max.into()],
    )?;
    let mut claimed = ClaimedWebhooks::default();
    for row in due {
        let Some(id) = row.text(0).map(str::to_owned) else {
            continue;
        };
        let taken = db.execute(
            "UPDATE webhook_outbox SET claimed_until = ?2, claimed_by = ?3
             WHERE event_id = ?1 AND state = 'pending'
                 AND (claimed_until IS NULL OR claimed_until < ?4)",
            &[
                id.as_str().into(),
                stored_time(claim.lease_until).into(),
                claim.instance.as_ref().into(),
                now.as_str().into(),
            ],
        )?;
        if taken != 1 {
            continue;
        }
        let row = db.query_row(
            "SELECT event_id, agent_id, owner, event, url, body, created_at, attempts
             FROM webhook_outbox WHERE event_id = ?1",
            &[id.into()],
        )?;
        claimed.events.extend(row.as_ref().and_then(event_of_row));
    }
    claimed.next_due = db
        .query_row(
            "SELECT MIN(next_attempt_at) FROM webhook_outbox
             WHERE state = 'pending' AND (claimed_until IS NULL OR claimed_until < ?1)",
            &[now.into()],
        )?
        .and_then(|row| time_of(&row, 0));
    Ok(claimed)
}

/// Records an attempt at an event this instance claimed, and ends the claim. A claim that ran
/// out and was taken by another instance is that one's: this changes nothing then.
pub fn attempted<D: Db>(db: &mut D, attempt: &WebhookAttempt) -> DbResult<()> {
    let at = stored_time(attempt.at);
    let (state, next, delivered) = match attempt.outcome {
        AttemptOutcome::Delivered => (WebhookState::Delivered, at.clone(), Some(at.clone())),
        AttemptOutcome::Retry(next) => (WebhookState::Pending, stored_time(next), None),
        AttemptOutcome::GaveUp => (WebhookState::Failed, at.clone(), None),
        AttemptOutcome::Released => (WebhookState::Pending, at.clone(), None),
    };
    if attempt.outcome == AttemptOutcome::Released {
        db.execute(
            "UPDATE webhook_outbox SET claimed_until = NULL, claimed_by = NULL
             WHERE event_id = ?1 AND claimed_by = ?2 AND state = 'pending'",
            &[
                attempt.id.to_string().into(),
                attempt.instance.as_ref().into(),
            ],
        )?;
        return Ok(());
    }
    db.execute(
        "UPDATE webhook_outbox SET state = ?3, attempts = ?4, next_attempt_at = ?5,
             last_status = ?6, last_error = ?7, delivered_at = ?8,
             claimed_until = NULL, claimed_by = NULL
         WHERE event_id = ?1 AND claimed_by = ?2 AND state = 'pending'",
        &[
            attempt.id.to_string().into(),
            attempt.instance.as_ref().into(),
            state.as_str().into(),
            i64::from(attempt.attempts).into(),
            next.into(),
            attempt.status.map(i64::from).into(),
            attempt.error.clone().into(),
            delivered.into(),
        ],
    )?;
    Ok(())
}

/// The events that are done with, of agents the store no longer keeps, go: what is pending
/// is still delivered.
pub fn sweep<D: Db>(db: &mut D) -> DbResult<()> {
    db.execute(
        "DELETE FROM webhook_outbox WHERE state <> 'pending'
             AND agent_id NOT IN (SELECT agent_id FROM agents)",
        &[],
    )?;
    Ok(())
}

/// An agent's events and their delivery, oldest first.
pub fn deliveries<D: Db>(
    db: &mut D,
    owner: Client,
    agent_id: Uuid,
) -> DbResult<Vec<WebhookDelivery>> {
    Ok(db
        .query(
            "SELECT event_id, event, state, attempts, last_status, last_error, created_at,
                 next_attempt_at, delivered_at
             FROM webhook_outbox WHERE agent_id = ?1 AND owner = ?2 ORDER BY created_at",
            &[agent_id.to_string().into(), owner.to_stored().into()],
        )?
        .iter()
        .filter_map(|row| {
            let state = WebhookState::from_str_opt(row.text(2)?)?;
            Some(WebhookDelivery {
                id: Uuid::try_parse(row.text(0)?).ok()?,
                event: row.text(1)?.to_owned(),
                state,
                attempts: count(row, 3),
                last_status: row.int(4).and_then(|n| u16::try_from(n).ok()),
                last_error: row.text(5).map(str::to_owned),
                created_at: time_of(row, 6)?,
                next_attempt_at: time_of(row, 7).filter(|_| state == WebhookState::Pending),
                delivered_at: time_of(row, 8),
            })
        })
        .collect())
}

fn event_of_row(row: &Row) -> Option<WebhookEvent> {
    Some(WebhookEvent {
        id: Uuid::try_parse(row.text(0)?).ok()?,
        agent_id: Uuid::try_parse(row.text(1)?).ok()?,
        owner: Client::from_stored(row.text(2)?)?,
        event: row.text(3)?.to_owned(),
        url: row.text(4)?.to_owned(),
        body: row.text(5)?.to_owned(),
        created_at: time_of(row, 6)?,
        attempts: count(row, 7),
    })
}

fn count(row: &Row, column: usize) -> u32 {
    row.int(column)
        .map_or(0, |n| u32::try_from(n.max(0)).unwrap_or(u32::MAX))
}

fn time_of(row: &Row, column: usize) -> Option<DateTime<Utc>> {
    row.text(column)
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc))
}
