-- Version 6: the webhook outbox. Each event an agent's webhook is sent is a row here before
-- any attempt, so a restart, or another instance of the database, delivers what was not
-- delivered. An instance claims a due row for a while (claimed_until) before it sends it, so
-- two instances never send it at once; one that dies leaves its claim to run out.
CREATE TABLE webhook_outbox (
    -- The event's id: the delivery header receivers drop repeats by.
    event_id TEXT PRIMARY KEY,
    agent_id TEXT NOT NULL,
    owner TEXT NOT NULL,
    -- agent.completed, agent.failed or permission.requested.
    event TEXT NOT NULL,
    url TEXT NOT NULL,
    -- The JSON body every attempt sends.
    body TEXT NOT NULL,
    created_at TEXT NOT NULL,
    -- pending, delivered or failed (its attempts spent).
    state TEXT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    -- Times as the store writes them: text order is time order.
    next_attempt_at TEXT NOT NULL,
    claimed_until TEXT,
    claimed_by TEXT,
    last_status BIGINT,
    last_error TEXT,
    delivered_at TEXT
);
CREATE INDEX webhook_outbox_due ON webhook_outbox (state, next_attempt_at);
CREATE INDEX webhook_outbox_by_agent ON webhook_outbox (agent_id);
