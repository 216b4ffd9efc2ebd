-- Version 4: the compatible APIs' conversations, which session gave each one's last reply, so
-- that a follow-up resumes it after a restart and on any instance. At most 256 per owner (the
-- writer forgets the least recently used).
CREATE TABLE conversations (
    owner TEXT NOT NULL,
    recall TEXT NOT NULL,
    session_id TEXT NOT NULL,
    created_at TEXT NOT NULL,
    last_used_at TEXT NOT NULL,
    replies BIGINT NOT NULL,
    -- A response of the Responses API: what GET /v1/responses/{id} shows again (JSON).
    body TEXT,
    PRIMARY KEY (owner, recall)
);
CREATE INDEX conversations_by_use ON conversations (owner, last_used_at);
