// The Node.js client (examples/node) against a running claude-proxy, as a Node backend uses
// it. CLAUDE_PROXY_URL names the proxy; tests/real_cli.rs runs this with the real CLI behind it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  agentEvents, answerPermission, closeAgent, createSseParser, deleteAgent, getAgent, listAgents, ProxyError,
  sendMessage, startAgent, stopAgent, streamAgent,
} from '../../examples/node/claude-proxy-client.mjs';

const base = process.env.CLAUDE_PROXY_URL;
assert.ok(base, 'CLAUDE_PROXY_URL names the proxy under test');

function parseChunks(chunks) {
  const events = [];
  const parser = createSseParser((event) => events.push(event));
  const decoder = new TextDecoder();
  for (const chunk of chunks) parser.feed(decoder.decode(chunk, { stream: true }));
  parser.feed(decoder.decode());
  parser.end();
  return events;
}

test('a stream runs from the agent event to complete', async () => {
  const events = [];
  const complete = await streamAgent(base, { prompt: 'Say hello' }, (event) => events.push(event));

  assert.equal(events[0].event, 'agent');
  assert.equal(typeof events[0].data.pid, 'number');
  assert.deepEqual(events.map((e) => Number(e.id)), events.map((_, i) => i + 1));
  const lines = events.filter((e) => e.event === 'message').map((e) => e.data);
  assert.deepEqual(lines.map((l) => l.type), ['system', 'assistant', 'result']);
  assert.equal(lines[1].message.content[0].text, process.env.EXPECTED_TEXT);
  assert.equal(events.at(-1).event, 'complete');
  assert.equal(complete.status, 'completed');
  assert.equal(complete.agent_id, events[0].data.agent_id);
});

test('the parser gives the same events however the bytes are split', async () => {
  const response = await fetch(`${base}/agent/stream`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ prompt: 'Say hello again' }),
  });
  const bytes = new Uint8Array(await response.arrayBuffer());
  const whole = parseChunks([bytes]);
  assert.ok(whole.length >= 5, `a whole stream: ${whole.length} events`);
  assert.equal(whole.at(-1).event, 'complete');
  for (let offset = 1; offset < bytes.length; offset += 1) {
    assert.deepEqual(parseChunks([bytes.subarray(0, offset), bytes.subarray(offset)]), whole, `split at byte ${offset}`);
  }
  assert.deepEqual(parseChunks(Array.from(bytes, (b) => Uint8Array.of(b))), whole, 'one byte at a time');
});

test('the parser takes CRLF and CR line ends and skips comments', () => {
  const text = ': keep-alive\r\n\r\nid: 1\r\nevent: agent\r\ndata: {"a":1}\r\n\r\nid: 2\rdata: [2]\r\r';
  const events = parseChunks([new TextEncoder().encode(text)]);
  assert.deepEqual(events, [
    { id: '1', event: 'agent', data: { a: 1 } },
    { id: '2', event: 'message', data: [2] },
  ]);
});

test('a started agent can be stopped, once', async () => {
  const started = await startAgent(base, { prompt: 'Think about it slowly [stand-in: stall]' });
  assert.equal(started.status, 'started');
  assert.equal(typeof started.pid, 'number');
  const stopped = await stopAgent(base, started.agent_id);
  assert.deepEqual(stopped, { status: 'stopped', agent_id: started.agent_id });
  await assert.rejects(stopAgent(base, started.agent_id), (err) => err instanceof ProxyError && err.status === 404);
});

test('a bad request is a ProxyError with the reason', async () => {
  await assert.rejects(
    streamAgent(base, { prompt: '' }, () => {}),
    (err) => err instanceof ProxyError && err.status === 422 && /prompt/.test(err.detail),
  );
});

test('a started agent can be followed, from the start or after an event, and then looked up', async () => {
  const { agent_id: agentId } = await startAgent(base, { prompt: 'Say hello in the background' });
  const all = [];
  const complete = await agentEvents(base, agentId, (event) => all.push(event));
  assert.equal(complete.status, 'completed');
  assert.deepEqual(all.map((e) => Number(e.id)), all.map((_, i) => i + 1));
  assert.equal(all[0].event, 'agent');

  const later = [];
  await agentEvents(base, agentId, (event) => later.push(event), { lastEventId: 2 });
  assert.deepEqual(later, all.slice(2), 'after Last-Event-ID 2: exactly the events from 3 on');

  const agent = await getAgent(base, agentId);
  assert.equal(agent.status, 'completed');
  assert.equal(agent.kind, 'start');
  assert.equal(agent.result.result, process.env.EXPECTED_TEXT);
  assert.equal(agent.session_id, all[1].data.session_id);
  assert.ok((await listAgents(base)).agents.some((a) => a.agent_id === agentId));
  await deleteAgent(base, agentId);
  await assert.rejects(getAgent(base, agentId), (err) => err instanceof ProxyError && err.status === 404);
});

test('an interactive agent takes a follow-up, asks before a tool runs, and ends when closed', async () => {
  const events = [];
  let agentId;
  const turns = [];
  const done = streamAgent(base, { prompt: 'Make node-approved.txt [approve-me]', interactive: true, approvals: true }, async (event) => {
    events.push(event);
    if (event.event === 'agent') agentId = event.data.agent_id;
    // The approval loop: allow what the model asks, as a reviewer in a UI would.
    if (event.event === 'permission_request') {
      await answerPermission(base, agentId, event.data.request_id, { behavior: 'allow' });
    }
    if (event.event === 'message' && event.data.type === 'result') {
      turns.push(event.data.result);
      if (turns.length === 1) await sendMessage(base, agentId, 'And now?');
      else await closeAgent(base, agentId);
    }
  });
  const complete = await done;
  assert.equal(complete.status, 'completed');
  assert.equal(turns.length, 2);
  const decision = events.find((e) => e.event === 'permission_decision');
  assert.equal(decision.data.decided_by, 'client');
  assert.equal(decision.data.behavior, 'allow');
  await assert.rejects(sendMessage(base, agentId, 'too late'), (error) => error instanceof ProxyError && error.status === 409);
});
