// The client's own tools through the official `openai` and `@anthropic-ai/sdk` npm packages:
// OpenAI function calling and Anthropic tool use. The model calls a tool, the reply ends with
// the call, the client runs it and sends the result, and the same run goes on (tests/it/compat.rs
// runs this with the real CLI and the stand-in, which calls the tool named after CALL[ in the
// prompt and then says what the tool said).
import assert from "node:assert/strict";
import { createRequire } from "node:module";
import { test } from "node:test";

import { parameters, prompt, weather } from "./weather_tool.mjs";

const require = createRequire(new URL("../../.tools/compat/", import.meta.url));
const { default: OpenAI } = await import(require.resolve("openai"));
const { default: Anthropic } = await import(require.resolve("@anthropic-ai/sdk"));

const base = process.env.CLAUDE_PROXY_URL;
const key = process.env.CLAUDE_PROXY_KEY;
const openai = new OpenAI({ baseURL: `${base}/v1`, apiKey: key, maxRetries: 0 });
const anthropic = new Anthropic({ baseURL: base, apiKey: key, maxRetries: 0 });

test("OpenAI: a function call ends the reply, and its result goes on with the same run", async () => {
  const tools = [{ type: "function", function: { name: "get_weather", description: "The weather in a city.", parameters } }];
  const messages = [{ role: "user", content: prompt("openai-whole") }];
  const first = await openai.chat.completions.create({ model: "sonnet", messages, tools });
  const choice = first.choices[0];
  assert.equal(choice.finish_reason, "tool_calls");
  const [call] = choice.message.tool_calls;
  assert.equal(call.type, "function");
  assert.equal(call.function.name, "get_weather");
  assert.deepEqual(JSON.parse(call.function.arguments), { city: "Paris" });

  messages.push(choice.message, { role: "tool", tool_call_id: call.id, content: weather("Paris") });
  const second = await openai.chat.completions.create({ model: "sonnet", messages, tools });
  assert.equal(second.choices[0].finish_reason, "stop");
  assert.equal(second.choices[0].message.content, "the tool said: sunny in Paris, 22 C");
  assert.equal(second.id, first.id, "the same run answered");
});

test("OpenAI: streamed, the call comes as a tool_calls chunk", async () => {
  const tools = [{ type: "function", function: { name: "get_weather", parameters } }];
  const messages = [{ role: "user", content: prompt("openai-stream") }];
  const stream = await openai.chat.completions.create({ model: "sonnet", messages, tools, stream: true });
  const calls = [];
  let finish;
  for await (const chunk of stream) {
    const choice = chunk.choices[0];
    if (!choice) continue;
    for (const call of choice.delta.tool_calls ?? []) calls.push(call);
    finish = choice.finish_reason ?? finish;
  }
  assert.equal(finish, "tool_calls");
  assert.equal(calls.length, 1);
  assert.equal(calls[0].function.name, "get_weather");

  messages.push(
    { role: "assistant", content: null, tool_calls: [{ id: calls[0].id, type: "function", function: calls[0].function }] },
    { role: "tool", tool_call_id: calls[0].id, content: weather("Paris") },
  );
  const after = await openai.chat.completions.create({ model: "sonnet", messages, tools, stream: true });
  let text = "";
  for await (const chunk of after) text += chunk.choices[0]?.delta?.content ?? "";
  assert.equal(text, "the tool said: sunny in Paris, 22 C");
});

test("Anthropic: a tool_use ends the message, and its tool_result goes on with the same run", async () => {
  const tools = [{ name: "get_weather", description: "The weather in a city.", input_schema: parameters }];
  const messages = [{ role: "user", content: prompt("anthropic-whole") }];
  const first = await anthropic.messages.create({ model: "sonnet", max_tokens: 1024, messages, tools });
  assert.equal(first.stop_reason, "tool_use");
  const use = first.content.find((block) => block.type === "tool_use");
  assert.equal(use.name, "get_weather");
  assert.deepEqual(use.input, { city: "Paris" });

  messages.push(
    { role: "assistant", content: first.content },
    { role: "user", content: [{ type: "tool_result", tool_use_id: use.id, content: weather("Paris") }] },
  );
  const second = await anthropic.messages.create({ model: "sonnet", max_tokens: 1024, messages, tools });
  assert.equal(second.stop_reason, "end_turn");
  assert.equal(second.content[0].text, "the tool said: sunny in Paris, 22 C");
});

test("Anthropic: streamed, the tool_use block names the client's tool", async () => {
  const tools = [{ name: "get_weather", input_schema: parameters }];
  const messages = [{ role: "user", content: prompt("anthropic-stream") }];
  const first = await anthropic.messages.stream({ model: "sonnet", max_tokens: 1024, messages, tools }).finalMessage();
  assert.equal(first.stop_reason, "tool_use");
  const use = first.content.find((block) => block.type === "tool_use");
  assert.equal(use.name, "get_weather");
  assert.deepEqual(use.input, { city: "Paris" });

  messages.push(
    { role: "assistant", content: first.content },
    { role: "user", content: [{ type: "tool_result", tool_use_id: use.id, content: weather("Paris") }] },
  );
  const second = await anthropic.messages.stream({ model: "sonnet", max_tokens: 1024, messages, tools }).finalMessage();
  assert.equal(second.content[0].text, "the tool said: sunny in Paris, 22 C");
});
