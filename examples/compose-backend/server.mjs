// A backend that puts a question to claude-proxy: GET /ask?prompt=... answers
// {"result": "...", "session_id": "..."} once the agent is done, reading its events as they
// come. CLAUDE_PROXY_URL and CLAUDE_PROXY_KEY say where the proxy is and which key to use.
import http from "node:http";

const proxyUrl = process.env.CLAUDE_PROXY_URL ?? "http://claude-proxy:8000";
const proxyKey = process.env.CLAUDE_PROXY_KEY;

/** Each event of a Server-Sent Events body, as the JSON of its data. */
async function* events(body) {
  const decoder = new TextDecoder();
  let buffer = "";
  for await (const chunk of body) {
    buffer += decoder.decode(chunk, { stream: true });
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const data = buffer
        .slice(0, end)
        .split("\n")
        .filter((line) => line.startsWith("data:"))
        .map((line) => line.slice(5).trimStart())
        .join("\n");
      buffer = buffer.slice(end + 2);
      if (data) yield JSON.parse(data);
    }
  }
}

async function ask(prompt, signal) {
  const response = await fetch(`${proxyUrl}/agent/stream`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${proxyKey}` },
    body: JSON.stringify({ prompt }),
    signal,
  });
  if (!response.ok) {
    throw new Error(`claude-proxy answered ${response.status}: ${await response.text()}`);
  }
  let result;
  for await (const event of events(response.body)) {
    if (event.type === "result") result = event;
    if (event.type === "error") throw new Error(event.message ?? JSON.stringify(event));
  }
  if (!result) throw new Error("the agent ended without a result");
  return { result: result.result, session_id: result.session_id, is_error: result.is_error };
}

http
  .createServer(async (req, res) => {
    const url = new URL(req.url, "http://backend");
    const prompt = url.searchParams.get("prompt");
    if (url.pathname !== "/ask" || !prompt) {
      res.writeHead(404, { "content-type": "application/json" });
      res.end(JSON.stringify({ detail: "GET /ask?prompt=..." }));
      return;
    }
    // The agent stops when the person asking goes away.
    const abort = new AbortController();
    res.on("close", () => abort.abort());
    try {
      const answer = await ask(prompt, abort.signal);
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify(answer));
    } catch (err) {
      res.writeHead(502, { "content-type": "application/json" });
      res.end(JSON.stringify({ detail: String(err.message ?? err) }));
    }
  })
  .listen(3000, () => console.log("backend listening on :3000"));
