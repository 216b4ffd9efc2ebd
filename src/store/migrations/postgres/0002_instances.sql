-- Version 2: the instances that share a database, and what they share (as SQLite's version 2).

-- The instance that runs (or ran) the agent.
ALTER TABLE agents ADD COLUMN instance_id TEXT;
CREATE INDEX agents_running ON agents (owner) WHERE ended_at IS NULL;

-- Each instance's heartbeat, in the database's clock (milliseconds since 1970).
CREATE TABLE instances (
    instance_id TEXT PRIMARY KEY,
    started_at TEXT NOT NULL,
    heartbeat_ms BIGINT NOT NULL
);

-- An action on an agent, from the instance a client asked to the one that runs the agent, and
-- its answer once given (JSON). Past its expiry nobody waits for it, and it is not taken.
CREATE TABLE forwarded_actions (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    origin TEXT NOT NULL,
    target TEXT NOT NULL,
    agent_id TEXT NOT NULL,
    owner TEXT NOT NULL,
    action TEXT NOT NULL,
    expires_ms BIGINT NOT NULL,
    taken BOOLEAN NOT NULL DEFAULT FALSE,
    answer TEXT
);

-- The CLI's file of each session, so that any instance can resume it. Contents are NULL for a
-- session larger than PROXY_MAX_SESSION_BYTES: it can be resumed on its instance only.
CREATE TABLE session_files (
    session_id TEXT PRIMARY KEY,
    contents BYTEA,
    sha256 TEXT NOT NULL,
    bytes BIGINT NOT NULL,
    instance_id TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

-- Gates all instances share: the subscription's rate limit, until when.
CREATE TABLE shared_gates (
    name TEXT PRIMARY KEY,
    until TEXT NOT NULL
);
