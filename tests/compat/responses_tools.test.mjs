// The client's own functions through the official `openai` npm package's Responses API: the
// model calls one, the response ends with its `function_call` item, the client runs it and sends
// its `function_call_output`, and the same run goes on (tests/it/compat.rs runs this with the
// real CLI and the stand-in, which calls the tool named after CALL[ in the prompt and then says
// what the tool said).
import assert from "node:assert/strict";
import { createRequire } from "node:module";
import { test } from "node:test";

import { parameters, prompt, weather } from "./weather_tool.mjs";

const require = createRequire(new URL("../../.tools/compat/", import.meta.url));
const { default: OpenAI } = await import(require.resolve("openai"));

const openai = new OpenAI({ baseURL: `${process.env.CLAUDE_PROXY_URL}/v1`, apiKey: process.env.CLAUDE_PROXY_KEY, maxRetries: 0 });

test("a function call ends the response, and its output goes on with the same run", async () => {
  const tools = [{ type: "function", name: "get_weather", description: "The weather in a city.", parameters, strict: false }];
  const first = await openai.responses.create({ model: "sonnet", input: prompt("responses-whole"), tools });
  assert.equal(first.status, "completed");
  assert.equal(first.tool_choice, "auto");
  assert.equal(first.tools[0].name, "get_weather");
  const call = first.output.find((item) => item.type === "function_call");
  assert.equal(call.name, "get_weather");
  assert.deepEqual(JSON.parse(call.arguments), { city: "Paris" });

  const second = await openai.responses.create({
    model: "sonnet",
    previous_response_id: first.id,
    input: [{ type: "function_call_output", call_id: call.call_id, output: weather("Paris") }],
    tools,
  });
  assert.equal(second.output_text, "the tool said: sunny in Paris, 22 C");
  assert.notEqual(second.id, first.id, "a response of its own");
  assert.equal(second.previous_response_id, first.id);

  // The response after the call is kept like any other: the conversation goes on from it.
  const kept = await openai.responses.retrieve(second.id);
  assert.equal(kept.output_text, "the tool said: sunny in Paris, 22 C");
  const third = await openai.responses.create({ model: "sonnet", previous_response_id: second.id, input: "Thank you." });
  assert.equal(third.status, "completed");
  assert.equal(third.previous_response_id, second.id);
  assert.ok(third.output_text.length > 0);
});

test("streamed, the call comes as a function_call item, and the whole input may come again", async () => {
  const tools = [{ type: "function", name: "get_weather", parameters }];
  const input = [{ role: "user", content: prompt("responses-stream") }];
  const stream = openai.responses.stream({ model: "sonnet", input, tools });
  const types = [];
  for await (const event of stream) types.push(event.type);
  const first = await stream.finalResponse();
  for (const type of ["response.output_item.added", "response.function_call_arguments.delta", "response.function_call_arguments.done", "response.completed"]) {
    assert.ok(types.includes(type), `${type} in ${types}`);
  }
  const call = first.output.find((item) => item.type === "function_call");
  assert.equal(call.name, "get_weather");
  assert.deepEqual(JSON.parse(call.arguments), { city: "Paris" });

  // Stateless: the input again, with the response's output and the call's output.
  input.push(...first.output, { type: "function_call_output", call_id: call.call_id, output: weather("Paris") });
  const after = openai.responses.stream({ model: "sonnet", input, tools, store: false });
  let text = "";
  for await (const event of after) if (event.type === "response.output_text.delta") text += event.delta;
  assert.equal(text, "the tool said: sunny in Paris, 22 C");
});

test("a function that is not one is refused, naming the field", async () => {
  const refused = await openai.responses
    .create({ model: "sonnet", input: "hi", tools: [{ type: "web_search" }] })
    .then(() => null, (err) => err);
  assert.equal(refused?.status, 400);
  assert.equal(refused.error.param, "tools[0].type");
  const choice = await openai.responses
    .create({ model: "sonnet", input: "hi", tools: [{ type: "function", name: "f", parameters }], tool_choice: "required" })
    .then(() => null, (err) => err);
  assert.equal(choice?.status, 400);
  assert.equal(choice.error.param, "tool_choice");
  const orphan = await openai.responses
    .create({ model: "sonnet", input: [{ type: "function_call_output", call_id: "toolu_nothing", output: "x" }] })
    .then(() => null, (err) => err);
  assert.equal(orphan?.status, 400);
  assert.equal(orphan.error.param, "input");
});

// As OpenAI's Codex CLI (0.171.0, `codex exec` with web search and its multi-agent and goal tools
// turned off) asks, captured from it: stateless (`store: false`, the whole input each time),
// streamed, its functions, `reasoning` with a summary and an effort, and the encrypted reasoning
// it would carry from one request to the next.
test("a request shaped as the Codex CLI's goes through its function call loop", async () => {
  const exec = {
    type: "function",
    name: "exec_command",
    description: "Runs a command in a PTY, returning output or a session ID for ongoing interaction.",
    strict: false,
    parameters: { type: "object", properties: { cmd: { type: "string" } }, required: ["cmd"], additionalProperties: false },
  };
  const tools = [exec, { ...exec, name: "write_stdin", description: "Writes characters to an existing unified exec session." }];
  const input = [
    { type: "message", role: "developer", content: [{ type: "input_text", text: "<permissions instructions>read-only</permissions instructions>" }] },
    { type: "message", role: "user", content: [{ type: "input_text", text: "<environment_context><cwd>/work</cwd></environment_context>" }] },
    { type: "message", role: "user", content: [{ type: "input_text", text: 'List the files. [responses-codex] CALL[exec_command {"cmd": "ls"}]' }] },
  ];
  const shaped = (input) => ({
    model: "opus",
    instructions: "You are Codex, a coding agent.",
    input,
    tools,
    tool_choice: "auto",
    parallel_tool_calls: true,
    reasoning: { effort: "medium", summary: "auto" },
    store: false,
    include: ["reasoning.encrypted_content"],
    prompt_cache_key: "01a23b6f-c013-7e30-af25-81bf6328a858",
    client_metadata: { session_id: "01a23b6f-c013-7e30-af25-81bf6328a858" },
  });
  const first = await openai.responses.stream(shaped(input)).finalResponse();
  const call = first.output.find((item) => item.type === "function_call");
  assert.equal(call.name, "exec_command");
  assert.deepEqual(JSON.parse(call.arguments), { cmd: "ls" });

  input.push(...first.output, { type: "function_call_output", call_id: call.call_id, output: "README.md\nsrc" });
  let text = "";
  for await (const event of openai.responses.stream(shaped(input))) {
    if (event.type === "response.output_text.delta") text += event.delta;
  }
  assert.equal(text, "the tool said: README.md\nsrc");
});
