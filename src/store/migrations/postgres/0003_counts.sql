-- Version 3: what an agent's detail and a crash's record need (as SQLite's version 3). How
-- many events each chunk holds (ids may be missing within one), and when the instance last
-- wrote of the agent: after a crash, the last time the dead instance was known to run it.
ALTER TABLE event_chunks ADD COLUMN event_count BIGINT NOT NULL DEFAULT 0;
UPDATE event_chunks SET event_count = last_id - first_id + 1;
ALTER TABLE agents ADD COLUMN written_at TEXT;
