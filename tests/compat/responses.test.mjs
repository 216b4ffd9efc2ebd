// OpenAI's Responses API through the official `openai` npm package (`client.responses`), against
// claude-proxy's /v1/responses with the real CLI and the Messages API stand-in behind it
// (tests/it/compat.rs runs this, and checks what reached the stand-in). CLAUDE_PROXY_URL names
// the proxy, CLAUDE_PROXY_KEY its key, CLAUDE_PROXY_OTHER_KEY another client's.
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
const other = new OpenAI({ baseURL: `${base}/v1`, apiKey: process.env.CLAUDE_PROXY_OTHER_KEY, maxRetries: 0 });

async function openaiAgents() {
  const response = await fetch(`${base}/agents`, { headers: { authorization: `Bearer ${key}` } });
  return (await response.json()).agents.filter((agent) => agent.kind === "openai");
}

/// The usage is the CLI's result line's, in the Responses API's words.
async function assertUsageIsTheResults(response) {
  const agentId = response.id.replace("resp_", "").replace(/^(.{8})(.{4})(.{4})(.{4})(.{12})$/, "$1-$2-$3-$4-$5");
  const agent = await (await fetch(`${base}/agent/${agentId}`, { headers: { authorization: `Bearer ${key}` } })).json();
  const result = agent.result.usage;
  const usage = response.usage;
  assert.equal(
    usage.input_tokens,
    result.input_tokens + result.cache_read_input_tokens + result.cache_creation_input_tokens,
  );
  assert.equal(usage.input_tokens_details.cached_tokens, result.cache_read_input_tokens);
  assert.equal(usage.output_tokens, result.output_tokens);
  assert.ok(usage.output_tokens > 0, JSON.stringify(usage));
  assert.equal(usage.output_tokens_details.reasoning_tokens, 0);
  assert.equal(usage.total_tokens, usage.input_tokens + usage.output_tokens);
}

test("a response has the model's text as one output message, with usage, and is kept", async () => {
  const { data: response, response: raw } = await client.responses
    .create({ model: "sonnet", input: "Say hello [responses-whole]" })
    .withResponse();
  assert.equal(response.object, "response");
  assert.match(response.id, /^resp_[0-9a-f]{32}$/);
  assert.equal(response.status, "completed");
  assert.equal(response.model, "sonnet");
  assert.equal(response.output_text, expected);
  assert.equal(response.output.length, 1);
  const [message] = response.output;
  assert.equal(message.type, "message");
  assert.equal(message.role, "assistant");
  assert.equal(message.content[0].type, "output_text");
  assert.match(raw.headers.get("x-claude-session-id"), /^[0-9a-f-]{36}$/);
  await assertUsageIsTheResults(response);

  const again = await client.responses.retrieve(response.id);
  assert.equal(again.id, response.id);
  assert.equal(again.output_text, expected);
  assert.deepEqual(again.usage, response.usage);
  // Another key's response is not found.
  await assert.rejects(other.responses.retrieve(response.id), (error) => error instanceof OpenAI.NotFoundError);
  await assert.rejects(other.responses.delete(response.id), (error) => error instanceof OpenAI.NotFoundError);
  await assert.rejects(
    other.responses.create({ model: "sonnet", input: "Go on", previous_response_id: response.id }),
    (error) => error instanceof OpenAI.NotFoundError && error.param === "previous_response_id",
  );
  // Deleted, it is gone for its own key too.
  await client.responses.delete(response.id);
  await assert.rejects(client.responses.retrieve(response.id), (error) => error instanceof OpenAI.NotFoundError);
});

test("a stream gives OpenAI's events in order, numbered, and the SDK's final response", async () => {
  const stream = client.responses.stream({
    model: "sonnet",
    instructions: "You answer like a pirate. [responses-instructions]",
    input: [
      { role: "developer", content: "Be brief. [responses-developer]" },
      { role: "user", content: [{ type: "input_text", text: "Say hello, streamed [responses-stream]" }] },
    ],
  });
  const events = [];
  for await (const event of stream) events.push(event);
  const final = await stream.finalResponse();
  const types = [...new Set(events.map((e) => e.type))];
  assert.deepEqual(types, [
    "response.created",
    "response.in_progress",
    "response.output_item.added",
    "response.content_part.added",
    "response.output_text.delta",
    "response.output_text.done",
    "response.content_part.done",
    "response.output_item.done",
    "response.completed",
  ]);
  assert.deepEqual(events.map((e) => e.sequence_number), events.map((_, n) => n));
  const deltas = events.filter((e) => e.type === "response.output_text.delta");
  assert.equal(deltas.map((e) => e.delta).join(""), expected);
  const item = events.find((e) => e.type === "response.output_item.added").item;
  for (const delta of deltas) {
    assert.equal(delta.item_id, item.id);
    assert.equal(delta.output_index, 0);
    assert.equal(delta.content_index, 0);
  }
  assert.equal(events.find((e) => e.type === "response.output_text.done").text, expected);
  assert.equal(final.status, "completed");
  assert.equal(final.output_text, expected);
  assert.equal(final.instructions, "You answer like a pirate. [responses-instructions]");
  await assertUsageIsTheResults(final);
  // create({stream: true}) gives the same events.
  const raw = await client.responses.create({ model: "sonnet", input: "Say hello, raw", stream: true });
  const rawTypes = [];
  for await (const event of raw) rawTypes.push(event.type);
  assert.equal(rawTypes.at(0), "response.created");
  assert.equal(rawTypes.at(-1), "response.completed");
});

test("previous_response_id continues the conversation from the session that gave it", async () => {
  const first = await client.responses.create({ model: "sonnet", input: "Remember 7. [responses-resume-1]" });
  const second = await client.responses.create({
    model: "sonnet",
    input: [{ role: "user", content: "What was it? [responses-resume-2]" }],
    previous_response_id: first.id,
  });
  assert.equal(second.output_text, expected);
  assert.equal(second.previous_response_id, first.id);
  // A fork: the first response's session stays as it was, for another continuation.
  assert.notEqual(second.x_claude_proxy.session_id, first.x_claude_proxy.session_id);
  const third = client.responses.stream({
    model: "sonnet",
    input: "And again? [responses-resume-3]",
    previous_response_id: second.id,
  });
  assert.equal((await third.finalResponse()).output_text, expected);
});

test("store: false keeps nothing: neither GET nor previous_response_id finds it", async () => {
  const response = await client.responses.create({ model: "sonnet", input: "Forget this [responses-unstored]", store: false });
  assert.equal(response.output_text, expected);
  assert.equal(response.store, false);
  await assert.rejects(client.responses.retrieve(response.id), (error) => error instanceof OpenAI.NotFoundError);
  await assert.rejects(
    client.responses.create({ model: "sonnet", input: "Go on", previous_response_id: response.id }),
    (error) => error instanceof OpenAI.NotFoundError && error.param === "previous_response_id",
  );
});

const PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==";

test("an input_image in a data URL reaches the API; a remote one is refused naming the part", async () => {
  const response = await client.responses.create({
    model: "sonnet",
    input: [{
      role: "user",
      content: [
        { type: "input_text", text: "What is in it? [responses-image]" },
        { type: "input_image", image_url: `data:image/png;base64,${PNG}`, detail: "auto" },
      ],
    }],
  });
  assert.equal(response.output_text, expected);
  await assert.rejects(
    client.responses.create({
      model: "sonnet",
      input: [{ role: "user", content: [{ type: "input_image", image_url: "https://example.com/cat.png", detail: "auto" }] }],
    }),
    (error) => error instanceof OpenAI.BadRequestError && error.param === "input[0].content[0]",
  );
});

test("text.format json_schema is the reply's JSON", async () => {
  const answer = { name: "Ada", year: 1843 };
  const response = await client.responses.create({
    model: "sonnet",
    input: `Who wrote the first program, and when? [responses-structured] STRUCT[${JSON.stringify(answer)}]`,
    text: {
      format: {
        type: "json_schema",
        name: "author",
        strict: true,
        schema: {
          type: "object",
          properties: { name: { type: "string" }, year: { type: "integer" } },
          required: ["name", "year"],
          additionalProperties: false,
        },
      },
    },
  });
  assert.deepEqual(JSON.parse(response.output_text), answer);
  assert.equal(response.text.format.type, "json_schema");
});

test("what the proxy cannot honour is refused naming it, in OpenAI's format, and spawns nothing", async () => {
  const before = (await openaiAgents()).length;
  const refusals = [
    [{ tools: [{ type: "web_search" }] }, "tools[0].type"],
    [{ tools: [{ type: "function", name: "no spaces", parameters: {} }] }, "tools[0].name"],
    [{ tool_choice: "required" }, "tool_choice"],
    [{ reasoning: { effort: "none" } }, "reasoning.effort"],
    [{ reasoning: { effort: "high", generate_summary: "auto" } }, "reasoning.generate_summary"],
    [{ text: { format: { type: "grammar" } } }, "text.format.type"],
    [{ truncation: "auto" }, "truncation"],
    [{ include: ["reasoning.encrypted_content", "file_search_call.results"] }, "include[1]"],
    [{ max_tool_calls: 3 }, "max_tool_calls"],
    [{ parallel_tool_calls: false }, "parallel_tool_calls"],
    [{ background: true }, "background"],
    [{ input: [{ type: "item_reference", id: "x" }, { role: "user", content: "hi" }] }, "input[0].type"],
    [{ input: [{ type: "function_call_output", output: "x" }] }, "input[0].call_id"],
  ];
  for (const [fields, param] of refusals) {
    await assert.rejects(
      client.responses.create({ model: "sonnet", input: "hi", ...fields }),
      (error) => error instanceof OpenAI.BadRequestError && error.param === param && error.type === "invalid_request_error",
      param,
    );
  }
  await assert.rejects(
    client.responses.create({ model: "gpt-9-imaginary", input: "hi" }),
    (error) => error instanceof OpenAI.NotFoundError && error.code === "model_not_found",
  );
  const stranger = new OpenAI({ baseURL: `${base}/v1`, apiKey: "not-a-key-of-this-proxy", maxRetries: 0 });
  await assert.rejects(
    stranger.responses.create({ model: "sonnet", input: "hi" }),
    (error) => error instanceof OpenAI.AuthenticationError,
  );
  // Tuning is accepted, and ignored.
  const tuned = await client.responses.create({
    model: "sonnet",
    input: "Say hello, tuned",
    temperature: 0.2,
    top_p: 0.9,
    max_output_tokens: 500,
    metadata: { ticket: "42" },
    user: "someone",
    service_tier: "auto",
  });
  assert.equal(tuned.output_text, expected);
  assert.equal((await openaiAgents()).length, before + 1);
});
