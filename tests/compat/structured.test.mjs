// Structured output through the official `openai` and `@anthropic-ai/sdk` npm packages: a JSON
// Schema in the APIs' own fields reaches the CLI's --json-schema, and the reply's content is the
// JSON text of the answer (tests/it/compat.rs runs this, with the real CLI and the stand-in,
// which calls the CLI's StructuredOutput tool with the object after STRUCT[ in the prompt).
import assert from "node:assert/strict";
import { createRequire } from "node:module";
import { test } from "node:test";

const require = createRequire(new URL("../../.tools/compat/", import.meta.url));
const { default: OpenAI } = await import(require.resolve("openai"));
const { default: Anthropic } = await import(require.resolve("@anthropic-ai/sdk"));

const base = process.env.CLAUDE_PROXY_URL;
const key = process.env.CLAUDE_PROXY_KEY;
const openai = new OpenAI({ baseURL: `${base}/v1`, apiKey: key, maxRetries: 0 });
const anthropic = new Anthropic({ baseURL: base, apiKey: key, maxRetries: 0 });

const schema = {
  type: "object",
  properties: { name: { type: "string" }, year: { type: "integer" } },
  required: ["name", "year"],
  additionalProperties: false,
};
const answer = { name: "Ada", year: 1843 };
const prompt = (marker) => `Who wrote the first program, and when? [${marker}] STRUCT[${JSON.stringify(answer)}]`;
const response_format = { type: "json_schema", json_schema: { name: "author", schema, strict: true } };

test("OpenAI: the message's content is the answer's JSON, which the SDK parses", async () => {
  const completion = await openai.chat.completions.parse({
    model: "sonnet",
    messages: [{ role: "user", content: prompt("openai-whole") }],
    response_format,
  });
  const message = completion.choices[0].message;
  assert.deepEqual(JSON.parse(message.content), answer);
  assert.deepEqual(message.parsed, answer);
  assert.equal(completion.choices[0].finish_reason, "stop");
});

test("OpenAI: streamed, the chunks' content is the answer's JSON", async () => {
  const stream = await openai.chat.completions.create({
    model: "sonnet",
    messages: [{ role: "user", content: prompt("openai-stream") }],
    response_format,
    stream: true,
  });
  let content = "";
  for await (const chunk of stream) content += chunk.choices[0]?.delta?.content ?? "";
  assert.deepEqual(JSON.parse(content), answer);
});

test("Anthropic: output_config.format and the beta's output_format give the answer's JSON as the text", async () => {
  const message = await anthropic.messages.create({
    model: "sonnet",
    max_tokens: 1024,
    messages: [{ role: "user", content: prompt("anthropic-whole") }],
    output_config: { format: { type: "json_schema", schema } },
  });
  assert.equal(message.content.length, 1, JSON.stringify(message.content));
  assert.deepEqual(JSON.parse(message.content[0].text), answer);

  const beta = await anthropic.beta.messages.create({
    model: "sonnet",
    max_tokens: 1024,
    messages: [{ role: "user", content: prompt("anthropic-beta") }],
    output_format: { type: "json_schema", schema },
  });
  assert.deepEqual(JSON.parse(beta.content[0].text), answer);
});

test("Anthropic: streamed, the text deltas are the answer's JSON", async () => {
  const stream = anthropic.messages.stream({
    model: "sonnet",
    max_tokens: 1024,
    messages: [{ role: "user", content: prompt("anthropic-stream") }],
    output_config: { format: { type: "json_schema", schema } },
  });
  const message = await stream.finalMessage();
  assert.deepEqual(
    message.content.map((block) => block.type),
    ["text"],
  );
  assert.deepEqual(JSON.parse(message.content[0].text), answer);
});
