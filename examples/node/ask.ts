// Asks claude-proxy a question and prints the answer as it streams in, with the typed client:
//   npm install claude-proxy-client   (the package in clients/typescript: `npm pack` makes it)
//   CLAUDE_PROXY_URL=http://127.0.0.1:8000 CLAUDE_PROXY_KEY=... node ask.js "What is TypeScript?"
import { ClaudeProxy, ProxyError } from "claude-proxy-client";

const proxy = new ClaudeProxy({
  baseUrl: process.env.CLAUDE_PROXY_URL ?? "http://127.0.0.1:8000",
  apiKey: process.env.CLAUDE_PROXY_KEY,
});

// Ctrl-C closes the stream, and the proxy stops the agent.
const abort = new AbortController();
process.once("SIGINT", () => abort.abort());

try {
  const prompt = process.argv[2] ?? "What is TypeScript?";
  for await (const { data } of proxy.stream({ prompt }, { signal: abort.signal })) {
    switch (data.type) {
      case "assistant":
        if (Array.isArray(data.message.content)) {
          for (const block of data.message.content) {
            if (block.type === "text") process.stdout.write(block.text ?? "");
          }
        }
        break;
      case "result":
        console.log(`\n(${data.num_turns} turns, session ${data.session_id})`);
        break;
      case "error":
        console.error(`agent error: ${data.code}: ${data.message}`);
        break;
      case "complete":
        console.log(`status: ${data.status}`);
        break;
    }
  }
} catch (error) {
  if (!(error instanceof ProxyError)) throw error;
  console.error(`claude-proxy answered ${error.status}: ${error.detail}`);
  process.exitCode = 1;
}
