// The official `@anthropic-ai/sdk` npm package (pinned; scripts/test installs it into
// .tools/compat) against claude-proxy's /v1/messages, with the real CLI and the Messages API
// stand-in behind it (tests/it/compat.rs runs this).
import assert from "node:assert/strict";
import { createRequire } from "node:module";
import { test } from "node:test";

const require = createRequire(new URL("../../.tools/compat/", import.meta.url));
const { default: Anthropic } = await import(require.resolve("@anthropic-ai/sdk"));

const base = process.env.CLAUDE_PROXY_URL;
const key = process.env.CLAUDE_PROXY_KEY;
const expected = process.env.EXPECTED_TEXT;
// The SDK retries 429, 409 and 5xx by default: an error test must see the first answer.
const client = new Anthropic({ baseURL: base, apiKey: key, maxRetries: 0 });

async function agentsOfKind(kind) {
  const response = await fetch(`${base}/agents`, { headers: { authorization: `Bearer ${key}` } });
  return (await response.json()).agents.filter((agent) => agent.kind === kind);
}

test("a message has the model's text, usage and the proxy's extension", async () => {
  const message = await client.messages.create({
    model: "sonnet",
    max_tokens: 1024,
    system: "You answer like a pirate. [anthropic-system-9]",
    messages: [{ role: "user", content: "Say hello" }],
  });
  assert.equal(message.type, "message");
  assert.equal(message.role, "assistant");
  assert.equal(message.content[0].type, "text");
  assert.equal(message.content[0].text, expected);
  assert.equal(message.stop_reason, "end_turn");
  assert.ok(message.usage.output_tokens > 0, JSON.stringify(message.usage));
  assert.match(message.x_claude_proxy.session_id, /^[0-9a-f-]{36}$/);
  const agents = await agentsOfKind("anthropic");
  assert.ok(agents.some((agent) => agent.status === "completed"), JSON.stringify(agents));
});

test("a stream is the Messages API's own events, in order", async () => {
  const stream = client.messages.stream({
    model: "sonnet",
    max_tokens: 1024,
    messages: [{ role: "user", content: [{ type: "text", text: "Say hello, streamed" }] }],
  });
  const types = [];
  stream.on("streamEvent", (event) => types.push(event.type));
  const message = await stream.finalMessage();
  assert.equal(message.content[0].text, expected);
  assert.equal(types[0], "message_start");
  assert.equal(types.at(-1), "message_stop");
  for (const type of ["content_block_start", "content_block_delta", "content_block_stop", "message_delta"]) {
    assert.ok(types.includes(type), `${type} in ${types}`);
  }
});

const PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==";

test("a base64 image block reaches the API; a URL image is refused", async () => {
  const message = await client.messages.create({
    model: "sonnet",
    max_tokens: 100,
    messages: [{
      role: "user",
      content: [
        { type: "image", source: { type: "base64", media_type: "image/png", data: PNG } },
        { type: "text", text: "What is in it? [anthropic-image-marker]" },
      ],
    }],
  });
  assert.equal(message.content[0].text, expected);
  await assert.rejects(
    client.messages.create({
      model: "sonnet",
      max_tokens: 100,
      messages: [{ role: "user", content: [{ type: "image", source: { type: "url", url: "https://example.com/cat.png" } }] }],
    }),
    (error) => error instanceof Anthropic.BadRequestError && /fetches nothing/.test(error.message),
  );
});

test("the models are listed in Anthropic's shape", async () => {
  const ids = [];
  for await (const model of client.models.list()) ids.push(model.id);
  assert.deepEqual(ids.slice(0, 3), ["sonnet", "opus", "haiku"]);
});

test("errors are the SDK's own classes, and spawn nothing", async () => {
  const before = (await agentsOfKind("anthropic")).length;
  const stranger = new Anthropic({ baseURL: base, apiKey: "not-a-key-of-this-proxy", maxRetries: 0 });
  await assert.rejects(
    stranger.messages.create({ model: "sonnet", max_tokens: 10, messages: [{ role: "user", content: "hi" }] }),
    (error) => error instanceof Anthropic.AuthenticationError && error.error?.error?.type === "authentication_error",
  );
  await assert.rejects(
    client.messages.create({ model: "gpt-9-imaginary", max_tokens: 10, messages: [{ role: "user", content: "hi" }] }),
    (error) => error instanceof Anthropic.NotFoundError && /gpt-9-imaginary/.test(error.message),
  );
  await assert.rejects(
    client.messages.create({
      model: "sonnet",
      max_tokens: 10,
      messages: [{ role: "user", content: "hi" }],
      tools: [{ type: "bash_20250124", name: "bash" }],
    }),
    (error) => error instanceof Anthropic.BadRequestError && /tools\[0\]\.type/.test(error.message),
  );
  assert.equal((await agentsOfKind("anthropic")).length, before);
});

test("aborting a stream stops its agent", async () => {
  const abort = new AbortController();
  const asked = client.messages.create(
    { model: "sonnet", max_tokens: 10, messages: [{ role: "user", content: "Take your time [stand-in: stall]" }], stream: true },
    { signal: abort.signal },
  );
  for (;;) {
    const running = (await agentsOfKind("anthropic")).filter((a) => a.status === "running");
    if (running.length > 0) break;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  abort.abort();
  // The stall starts the message: the stream has begun, and ends with the abort.
  await assert.rejects(async () => {
    for await (const _event of await asked);
  }, (error) => error instanceof Anthropic.APIUserAbortError);
  for (;;) {
    const agents = await agentsOfKind("anthropic");
    if (!agents.some((a) => ["running", "stopping", "starting"].includes(a.status))) {
      assert.ok(agents.some((a) => a.status === "stopped"), JSON.stringify(agents));
      break;
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
});
