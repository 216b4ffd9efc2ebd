-- Version 5: what the API counted for the agents' requests, as the proxy's gateway relayed
-- them, by key, hour, agent and model. Kept apart from the agents: usage outlives an agent's
-- retention and its DELETE.
CREATE TABLE usage_hours (
    -- The key's id (never the key), or 'anonymous'.
    owner TEXT NOT NULL,
    -- The hour the requests were answered in, as the store writes a time (text order is time
    -- order).
    hour TEXT NOT NULL,
    agent_id TEXT NOT NULL,
    model TEXT NOT NULL,
    requests INTEGER NOT NULL DEFAULT 0,
    errors INTEGER NOT NULL DEFAULT 0,
    input_tokens INTEGER NOT NULL DEFAULT 0,
    output_tokens INTEGER NOT NULL DEFAULT 0,
    cache_read_input_tokens INTEGER NOT NULL DEFAULT 0,
    cache_creation_input_tokens INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (owner, hour, agent_id, model)
);
CREATE INDEX usage_hours_by_agent ON usage_hours (owner, agent_id);
