-- Version 1: agents, their events in chunks, and who owns each session.

CREATE TABLE agents (
    agent_id TEXT PRIMARY KEY,
    -- The owner's key id (never the key), or 'anonymous'.
    owner TEXT NOT NULL,
    kind TEXT NOT NULL,
    status TEXT NOT NULL,
    pid INTEGER,
    model TEXT,
    session_id TEXT,
    started_at TEXT NOT NULL,
    ended_at TEXT,
    exit_code INTEGER,
    interactive INTEGER NOT NULL DEFAULT 0,
    turns INTEGER NOT NULL DEFAULT 0,
    result BLOB,
    total_cost_usd REAL,
    num_turns INTEGER,
    is_error INTEGER,
    -- No event of this agent has an id above this: after a crash, its closing events are
    -- numbered past it, past anything a client may have seen.
    ids_leased_through INTEGER NOT NULL DEFAULT 0,
    -- The bytes of its event chunks.
    log_bytes INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX agents_by_owner ON agents (owner, started_at);
CREATE INDEX agents_by_end ON agents (ended_at);

-- An agent's events, a run of them in each chunk (see src/store/chunk.rs).
CREATE TABLE event_chunks (
    agent_id TEXT NOT NULL,
    first_id INTEGER NOT NULL,
    last_id INTEGER NOT NULL,
    events BLOB NOT NULL,
    PRIMARY KEY (agent_id, first_id)
) WITHOUT ROWID;

CREATE TABLE sessions (
    session_id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    cwd TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX sessions_by_age ON sessions (created_at);
