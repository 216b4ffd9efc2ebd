// The packaged client (claude-proxy-client, installed from the tarball `npm pack` made) as a
// Node.js backend uses it, against a running claude-proxy with the real CLI behind it
// (tests/it/real_cli.rs runs it). It is type-checked with `tsc --strict` first: a change to the
// package's types that breaks a consumer fails here.
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  ClaudeProxy,
  type CompleteEvent,
  ProxyError,
  type ProxyEvent,
  SseParser,
} from "claude-proxy-client";

const baseUrl = process.env.CLAUDE_PROXY_URL;
assert.ok(baseUrl, "CLAUDE_PROXY_URL names the proxy under test");
const expectedText = process.env.EXPECTED_TEXT;
const proxy = new ClaudeProxy({ baseUrl });

async function collect(events: AsyncIterable<ProxyEvent>): Promise<ProxyEvent[]> {
  const all: ProxyEvent[] = [];
  for await (const event of events) all.push(event);
  return all;
}

function completeOf(events: ProxyEvent[]): CompleteEvent {
  const last = events.at(-1)?.data;
  if (last?.type !== "complete") throw new Error(`the last event is not complete: ${JSON.stringify(last)}`);
  return last;
}

function isProxyError(status: number) {
  return (error: unknown) => error instanceof ProxyError && error.status === status;
}

test("a stream runs from the agent event to complete, typed", async () => {
  const events = await collect(proxy.stream({ prompt: "Say hello" }));
  const first = events[0]?.data;
  if (first?.type !== "agent") throw new Error("agent comes first");
  assert.equal(typeof first.pid, "number");
  assert.deepEqual(
    events.map((e) => e.id),
    events.map((_, i) => i + 1),
  );
  const lines = events.filter((e) => e.event === "message").map((e) => e.data.type);
  assert.deepEqual(lines, ["system", "assistant", "result"]);
  let text: string | undefined;
  let sessionFromInit: string | undefined;
  let result: string | null | undefined;
  for (const { data } of events) {
    if (data.type === "system" && data.subtype === "init" && "model" in data) sessionFromInit = data.session_id;
    if (data.type === "assistant" && Array.isArray(data.message.content)) text = data.message.content[0]?.text ?? undefined;
    if (data.type === "result") {
      assert.equal(data.is_error, false);
      assert.equal(data.session_id, sessionFromInit);
      result = data.result;
    }
  }
  assert.equal(text, expectedText);
  assert.equal(result, expectedText);
  const complete = completeOf(events);
  assert.equal(complete.status, "completed");
  assert.equal(complete.agent_id, first.agent_id);
});

test("the parser gives the same events however the bytes are split", async () => {
  const response = await fetch(`${baseUrl}/agent/stream`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ prompt: "Say hello again" }),
  });
  const bytes = new Uint8Array(await response.arrayBuffer());
  const parse = (chunks: Uint8Array[]) => {
    const events: { id: string; event: string; data: string }[] = [];
    const parser = new SseParser((event) => events.push(event));
    const decoder = new TextDecoder();
    for (const chunk of chunks) parser.feed(decoder.decode(chunk, { stream: true }));
    parser.feed(decoder.decode());
    parser.end();
    return events;
  };
  const whole = parse([bytes]);
  assert.ok(whole.length >= 5, `a whole stream: ${whole.length} events`);
  assert.equal(whole.at(-1)?.event, "complete");
  for (let offset = 1; offset < bytes.length; offset += 1) {
    assert.deepEqual(parse([bytes.subarray(0, offset), bytes.subarray(offset)]), whole, `split at byte ${offset}`);
  }
  assert.deepEqual(parse(Array.from(bytes, (b) => Uint8Array.of(b))), whole, "one byte at a time");
});

test("the parser takes CRLF and CR line ends and skips comments", () => {
  const events: { id: string; event: string; data: string }[] = [];
  const parser = new SseParser((event) => events.push(event));
  parser.feed(': keep-alive\r\n\r\nid: 1\r\nevent: agent\r\ndata: {"a":1}\r\n\r\nid: 2\rdata: [2]\r\r');
  parser.end();
  assert.deepEqual(events, [
    { id: "1", event: "agent", data: '{"a":1}' },
    { id: "2", event: "message", data: "[2]" },
  ]);
});

test("a started agent can be stopped, once", async () => {
  const started = await proxy.start({ prompt: "Think about it slowly [stand-in: stall]" });
  assert.equal(started.status, "started");
  assert.equal(typeof started.pid, "number");
  const stopped = await proxy.stop(started.agent_id);
  assert.deepEqual(stopped, { status: "stopped", agent_id: started.agent_id });
  await assert.rejects(proxy.stop(started.agent_id), isProxyError(404));
});

test("a bad request is a ProxyError with the reason, and starts nothing", async () => {
  await assert.rejects(
    collect(proxy.stream({ prompt: "" })),
    (error: unknown) => error instanceof ProxyError && error.status === 422 && /prompt/.test(error.detail),
  );
});

test("a started agent can be followed, from the start or after an event, and then looked up", async () => {
  const { agent_id: agentId } = await proxy.start({ prompt: "Say hello in the background" });
  const all = await collect(proxy.events(agentId));
  assert.equal(completeOf(all).status, "completed");
  assert.deepEqual(
    all.map((e) => e.id),
    all.map((_, i) => i + 1),
  );
  assert.equal(all[0]?.event, "agent");

  const later = await collect(proxy.events(agentId, { lastEventId: 2 }));
  assert.deepEqual(later, all.slice(2), "after Last-Event-ID 2: exactly the events from 3 on");

  const agent = await proxy.agent(agentId);
  assert.equal(agent.status, "completed");
  assert.equal(agent.kind, "start");
  assert.equal(agent.result?.["result"], expectedText);
  const init = all[1]?.data;
  assert.equal(init?.type === "system" ? init.session_id : undefined, agent.session_id);
  assert.ok((await proxy.agents()).agents.some((a) => a.agent_id === agentId));
  await proxy.delete(agentId);
  await assert.rejects(proxy.agent(agentId), isProxyError(404));
});

test("an interactive agent takes a follow-up, asks before a tool runs, and ends when closed", async () => {
  const events: ProxyEvent[] = [];
  const turns: string[] = [];
  let agentId = "";
  const stream = proxy.stream({ prompt: "Make node-approved.txt [approve-me]", interactive: true, approvals: true });
  for await (const event of stream) {
    events.push(event);
    const data = event.data;
    if (data.type === "agent") agentId = data.agent_id;
    // The approval loop: allow what the model asks, as a reviewer in a UI would.
    if (data.type === "permission_request") {
      const answered = await proxy.answerPermission(agentId, data.request_id, { behavior: "allow" });
      assert.equal(answered.behavior, "allow");
    }
    if (data.type === "result") {
      turns.push(data.result ?? "");
      if (turns.length === 1) await proxy.sendMessage(agentId, "And now?");
      else await proxy.close(agentId);
    }
  }
  assert.equal(completeOf(events).status, "completed");
  assert.equal(turns.length, 2);
  const decision = events.map((e) => e.data).find((d) => d.type === "permission_decision");
  assert.ok(decision && decision.type === "permission_decision");
  assert.equal(decision.decided_by, "client");
  assert.equal(decision.behavior, "allow");
  await assert.rejects(proxy.sendMessage(agentId, "too late"), isProxyError(409));
});

test("aborting a stream stops its agent", async () => {
  const abort = new AbortController();
  let agentId = "";
  await assert.rejects(async () => {
    for await (const event of proxy.stream({ prompt: "Wait for me [stand-in: stall]" }, { signal: abort.signal })) {
      if (event.data.type === "agent") {
        agentId = event.data.agent_id;
        abort.abort();
      }
    }
  }, (error: unknown) => error instanceof Error && error.name === "AbortError");
  assert.ok(agentId);
  for (;;) {
    const agent = await proxy.agent(agentId);
    if (agent.status !== "running" && agent.status !== "stopping" && agent.status !== "starting") {
      assert.equal(agent.status, "stopped");
      break;
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
});

test("the compatible APIs answer through the same client", async () => {
  const completion = await proxy.chatCompletion({ model: "sonnet", messages: [{ role: "user", content: "Hello" }] });
  assert.equal(completion.choices[0]?.message.content, expectedText);
  const message = await proxy.message({ model: "haiku", messages: [{ role: "user", content: "Hello" }] });
  // A block is text or a call of one of the client's tools: the type says which.
  const block = message.content[0];
  assert.equal(block?.type === "text" ? block.text : undefined, expectedText);
  assert.deepEqual(
    (await proxy.models()).data.map((m) => m.id).slice(0, 3),
    ["sonnet", "opus", "haiku"],
  );
  await assert.rejects(
    proxy.chatCompletion({ model: "gpt-9", messages: [{ role: "user", content: "Hello" }] }),
    (error: unknown) => error instanceof ProxyError && error.status === 404 && /gpt-9/.test(error.detail),
  );
});

test("health is typed and says the CLI is logged in", async () => {
  const health = await proxy.health();
  assert.equal(health.status, "ok");
  assert.equal(health.cli?.found, true);
  assert.equal(health.cli?.logged_in, true);
});
