// A small MCP server over stdio (newline-delimited JSON-RPC), for tests/it/mcp.rs: one tool,
// `lookup`, whose answer says whether the server was given its secret (NOTES_TOKEN) without
// saying the secret.
import { createInterface } from "node:readline";

const send = (message) => process.stdout.write(JSON.stringify({ jsonrpc: "2.0", ...message }) + "\n");

createInterface({ input: process.stdin }).on("line", (line) => {
  if (!line.trim()) return;
  const { id, method, params } = JSON.parse(line);
  if (id === undefined) return; // a notification
  switch (method) {
    case "initialize":
      return send({
        id,
        result: {
          protocolVersion: params.protocolVersion,
          capabilities: { tools: {} },
          serverInfo: { name: "notes", version: "1.0.0" },
        },
      });
    case "tools/list":
      return send({
        id,
        result: {
          tools: [
            {
              name: "lookup",
              description: "Looks a note up by topic.",
              inputSchema: { type: "object", properties: { topic: { type: "string" } }, required: ["topic"] },
            },
          ],
        },
      });
    case "tools/call": {
      const token = process.env.NOTES_TOKEN === "secret-mcp-token-77" ? "yes" : "no";
      const text = `note on ${params.arguments.topic}: 42 (token ok: ${token})`;
      return send({ id, result: { content: [{ type: "text", text }] } });
    }
    case "ping":
      return send({ id, result: {} });
    default:
      return send({ id, error: { code: -32601, message: `no method ${method}` } });
  }
});
