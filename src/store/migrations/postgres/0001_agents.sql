-- Version 1: agents, their events in chunks, and who owns each session. The same tables as
-- SQLite's version 1, in PostgreSQL's types. Times are RFC 3339 text in UTC with nanoseconds,
-- as in SQLite, so that they sort as text and the store's SQL is the same for both.

CREATE TABLE agents (
    agent_id TEXT PRIMARY KEY,
    -- The owner's key id (never the key), or 'anonymous'.
    owner TEXT NOT NULL,
    kind TEXT NOT NULL,
    status TEXT NOT NULL,
    pid BIGINT,
    model TEXT,
    session_id TEXT,
    started_at TEXT NOT NULL,
    ended_at TEXT,
    exit_code BIGINT,
    interactive BOOLEAN NOT NULL DEFAULT FALSE,
    turns BIGINT NOT NULL DEFAULT 0,
    result BYTEA,
    total_cost_usd DOUBLE PRECISION,
    num_turns BIGINT,
    is_error BOOLEAN,
    -- No event of this agent has an id above this: after a crash, its closing events are
    -- numbered past it, past anything a client may have seen.
    ids_leased_through BIGINT NOT NULL DEFAULT 0,
    -- The bytes of its event chunks.
    log_bytes BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX agents_by_owner ON agents (owner, started_at);
CREATE INDEX agents_by_end ON agents (ended_at);

-- An agent's events, a run of them in each chunk (see src/store/chunk.rs).
CREATE TABLE event_chunks (
    agent_id TEXT NOT NULL,
    first_id BIGINT NOT NULL,
    last_id BIGINT NOT NULL,
    events BYTEA NOT NULL,
    PRIMARY KEY (agent_id, first_id)
);

CREATE TABLE sessions (
    session_id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    cwd TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX sessions_by_age ON sessions (created_at);
