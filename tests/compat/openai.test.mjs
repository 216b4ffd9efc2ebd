// The official `openai` npm package (pinned; scripts/test installs it into .tools/compat) against
// claude-proxy's /v1, with the real CLI and the Messages API stand-in behind it
// (tests/it/compat.rs runs this). CLAUDE_PROXY_URL names the proxy, CLAUDE_PROXY_KEY its key.
import assert from "node:assert/strict";
import { createRequire } from "node:module";
import { test } from "node:test";

const require = createRequire(new URL("../../.tools/compat/", import.meta.url));
const { default: OpenAI } = await import(require.resolve("openai"));

const base = process.env.CLAUDE_PROXY_URL;
const key = process.env.CLAUDE_PROXY_KEY;
const expected = process.env.EXPECTED_TEXT;
// The SDK retries 429, 409 and 5xx by default: an error test must see the first answer.
const client = new OpenAI({ baseURL: `${base}/v1`, apiKey: key, maxRetries: 0 });

async function agentsOfKind(kind) {
  const response = await fetch(`${base}/agents`, { headers: { authorization: `Bearer ${key}` } });
  return (await response.json()).agents.filter((agent) => agent.kind === kind);
}

test("a completion has the model's text, usage and the proxy's extension", async () => {
  const completion = await client.chat.completions.create({
    model: "sonnet",
    messages: [{ role: "user", content: "Say hello" }],
  });
  assert.equal(completion.object, "chat.completion");
  assert.equal(completion.model, "sonnet");
  assert.equal(completion.choices[0].message.role, "assistant");
  assert.equal(completion.choices[0].message.content, expected);
  assert.equal(completion.choices[0].finish_reason, "stop");
  assert.ok(completion.usage.completion_tokens > 0, JSON.stringify(completion.usage));
  assert.equal(
    completion.usage.total_tokens,
    completion.usage.prompt_tokens + completion.usage.completion_tokens,
  );
  assert.match(completion.x_claude_proxy.session_id, /^[0-9a-f-]{36}$/);
  const { response } = await client.chat.completions
    .create({ model: "sonnet", messages: [{ role: "user", content: "Say hello once more" }] })
    .withResponse();
  assert.match(response.headers.get("x-claude-session-id"), /^[0-9a-f-]{36}$/);
  // The usage is the CLI's result line's.
  const hex = completion.id.replace("chatcmpl-", "");
  const agentId = [hex.slice(0, 8), hex.slice(8, 12), hex.slice(12, 16), hex.slice(16, 20), hex.slice(20)].join("-");
  const agent = await (await fetch(`${base}/agent/${agentId}`, { headers: { authorization: `Bearer ${key}` } })).json();
  const result = agent.result.usage;
  assert.equal(
    completion.usage.prompt_tokens,
    result.input_tokens + result.cache_read_input_tokens + result.cache_creation_input_tokens,
  );
  assert.equal(completion.usage.completion_tokens, result.output_tokens);
  assert.equal(completion.usage.prompt_tokens_details.cached_tokens, result.cache_read_input_tokens);
  assert.equal(completion.x_claude_proxy.total_cost_usd, agent.total_cost_usd);
  const agents = await agentsOfKind("openai");
  assert.ok(agents.some((agent) => agent.status === "completed"), JSON.stringify(agents));
});

test("a stream gives a role chunk, the text in deltas, a finish reason, usage and [DONE]", async () => {
  const stream = await client.chat.completions.create({
    model: "sonnet",
    messages: [
      { role: "system", content: "You answer like a pirate. [system-marker-7]" },
      { role: "user", content: "Say hello, streamed" },
    ],
    stream: true,
    stream_options: { include_usage: true },
  });
  const chunks = [];
  for await (const chunk of stream) chunks.push(chunk);
  assert.equal(chunks[0].choices[0].delta.role, "assistant");
  const text = chunks.map((c) => c.choices[0]?.delta?.content ?? "").join("");
  assert.equal(text, expected);
  assert.ok(chunks.filter((c) => c.choices[0]?.delta?.content).length >= 1);
  const finish = chunks.find((c) => c.choices[0]?.finish_reason);
  assert.equal(finish.choices[0].finish_reason, "stop");
  const usage = chunks.at(-1);
  assert.deepEqual(usage.choices, []);
  assert.ok(usage.usage.completion_tokens > 0);
  assert.ok(chunks.every((c) => c.object === "chat.completion.chunk"));
});

test("earlier turns are set out in the prompt, with their roles", async () => {
  const completion = await client.chat.completions.create({
    model: "sonnet",
    messages: [
      { role: "user", content: "My number is 7. [history-marker]" },
      { role: "assistant", content: "Noted." },
      { role: "user", content: "What was my number?" },
    ],
  });
  assert.equal(completion.choices[0].message.content, expected);
});

test("a conversation that carries a reply resumes the session that gave it", async () => {
  const first = [{ role: "user", content: "Remember 7. [resume-marker]" }];
  const one = await client.chat.completions.create({ model: "sonnet", messages: first });
  const reply = one.choices[0].message.content;
  const two = await client.chat.completions.create({
    model: "sonnet",
    messages: [...first, { role: "assistant", content: reply }, { role: "user", content: "What was it? [resume-2]" }],
  });
  assert.equal(two.choices[0].message.content, expected);
  // A fork: the first session stays as it was, for another reply to the same conversation.
  assert.notEqual(two.x_claude_proxy.session_id, one.x_claude_proxy.session_id);
});

const PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==";

test("an image in a data URL reaches the API as an image block; a remote one is refused", async () => {
  const completion = await client.chat.completions.create({
    model: "sonnet",
    messages: [{
      role: "user",
      content: [
        { type: "text", text: "What is in it? [image-marker]" },
        { type: "image_url", image_url: { url: `data:image/png;base64,${PNG}` } },
      ],
    }],
  });
  assert.equal(completion.choices[0].message.content, expected);
  await assert.rejects(
    client.chat.completions.create({
      model: "sonnet",
      messages: [{
        role: "user",
        content: [
          { type: "text", text: "And this?" },
          { type: "image_url", image_url: { url: "https://example.com/cat.png" } },
        ],
      }],
    }),
    (error) => error instanceof OpenAI.BadRequestError && error.param === "messages[0].content[1]",
  );
});

test("the models are listed", async () => {
  const ids = [];
  for await (const model of client.models.list()) ids.push(model.id);
  assert.deepEqual(ids.slice(0, 3), ["sonnet", "opus", "haiku"]);
  assert.ok(ids.includes("gpt-4o"), ids.join());
});

test("a mapped model name runs", async () => {
  const completion = await client.chat.completions.create({
    model: "gpt-4o",
    messages: [{ role: "user", content: "Say hello as gpt-4o" }],
  });
  assert.equal(completion.model, "gpt-4o");
  assert.equal(completion.choices[0].message.content, expected);
});

test("errors are the SDK's own classes, and spawn nothing", async () => {
  const before = (await agentsOfKind("openai")).length;
  const stranger = new OpenAI({ baseURL: `${base}/v1`, apiKey: "not-a-key-of-this-proxy", maxRetries: 0 });
  await assert.rejects(
    stranger.chat.completions.create({ model: "sonnet", messages: [{ role: "user", content: "hi" }] }),
    (error) => error instanceof OpenAI.AuthenticationError && error.status === 401,
  );
  await assert.rejects(
    client.chat.completions.create({ model: "gpt-9-imaginary", messages: [{ role: "user", content: "hi" }] }),
    (error) => error instanceof OpenAI.NotFoundError && /gpt-9-imaginary/.test(error.message),
  );
  await assert.rejects(
    client.chat.completions.create({
      model: "sonnet",
      messages: [{ role: "user", content: "hi" }],
      tools: [{ type: "function", function: { name: "f", parameters: {} } }],
      tool_choice: "required",
    }),
    (error) => error instanceof OpenAI.BadRequestError && error.param === "tool_choice",
  );
  await assert.rejects(
    client.chat.completions.create({ model: "sonnet", messages: [{ role: "user", content: "hi" }], n: 2 }),
    (error) => error instanceof OpenAI.BadRequestError && error.param === "n",
  );
  assert.equal((await agentsOfKind("openai")).length, before);
});

test("aborting a stream stops its agent", async () => {
  const abort = new AbortController();
  const asked = client.chat.completions.create(
    { model: "sonnet", messages: [{ role: "user", content: "Take your time [stand-in: stall]" }], stream: true },
    { signal: abort.signal },
  );
  // The answer waits for the model's first words, which never come: abort once it runs.
  for (;;) {
    const running = (await agentsOfKind("openai")).filter((a) => a.status === "running");
    if (running.length > 0) break;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  abort.abort();
  await assert.rejects(asked, (error) => error instanceof OpenAI.APIUserAbortError);
  for (;;) {
    const agents = await agentsOfKind("openai");
    if (!agents.some((a) => ["running", "stopping", "starting"].includes(a.status))) {
      assert.ok(agents.some((a) => a.status === "stopped"), JSON.stringify(agents));
      break;
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
});
