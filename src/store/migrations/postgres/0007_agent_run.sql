-- Version 7: what an agent's run was started with that outlives its proxy. The MCP servers it
-- named (a JSON array of their names), shown in its detail; and where its webhook events go,
-- so that whoever ends it after its proxy died (the next start on SQLite, another instance on
-- PostgreSQL) posts its agent.failed.
ALTER TABLE agents ADD COLUMN mcp_servers TEXT;
ALTER TABLE agents ADD COLUMN webhook_url TEXT;
