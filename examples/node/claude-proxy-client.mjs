// claude-proxy client for Node.js 18+: global fetch, no dependencies.
//
//   import { streamAgent } from './claude-proxy-client.mjs';
//   const complete = await streamAgent('http://127.0.0.1:8000', { prompt: 'What is 2 + 2?' },
//     (event) => console.log(event.event, event.data));
//   console.log(complete.status); // completed | failed | stopped | timed_out

/** Thrown for an HTTP error from the proxy; `status` and `detail` say what and why. */
export class ProxyError extends Error {
  constructor(status, detail) {
    super(`claude-proxy answered ${status}: ${detail}`);
    this.status = status;
    this.detail = detail;
  }
}

/**
 * An SSE parser that works across chunk boundaries: feed it text as it arrives, in pieces of
 * any size, and it calls onEvent({ id, event, data }) once per whole event, with data parsed
 * as JSON (every payload claude-proxy sends is JSON). Comments (keep-alives) are skipped.
 */
export function createSseParser(onEvent) {
  let buffer = '';
  let id = null;
  let event = '';
  let data = [];
  const dispatch = () => {
    if (data.length > 0) onEvent({ id, event: event || 'message', data: JSON.parse(data.join('\n')) });
    event = '';
    data = [];
  };
  const line = (text) => {
    if (text === '') return dispatch();
    if (text.startsWith(':')) return;
    const colon = text.indexOf(':');
    const field = colon === -1 ? text : text.slice(0, colon);
    let value = colon === -1 ? '' : text.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'data') data.push(value);
    else if (field === 'event') event = value;
    else if (field === 'id') id = value;
  };
  return {
    feed(text) {
      buffer += text;
      // A line ends at \n, \r\n or \r; a \r at the very end may still be followed by \n.
      let match;
      while ((match = /\r\n|\n|\r(?!$)/.exec(buffer)) !== null) {
        line(buffer.slice(0, match.index));
        buffer = buffer.slice(match.index + match[0].length);
      }
    },
    end() {
      if (buffer !== '') line(buffer.replace(/\r$/, ''));
      buffer = '';
    },
  };
}

async function request(baseUrl, path, body, { apiKey, signal, method = 'POST', headers: extra = {} } = {}) {
  const headers = { 'content-type': 'application/json', ...extra };
  if (apiKey) headers.authorization = `Bearer ${apiKey}`;
  const response = await fetch(new URL(path, baseUrl), {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    signal,
  });
  if (!response.ok) {
    const error = await response.json().catch(() => ({}));
    throw new ProxyError(response.status, error.detail ?? response.statusText);
  }
  return response;
}

/**
 * Runs an agent and calls onEvent for each of its events as they arrive: `agent` first, then
 * every line of the CLI (event 'message'), `error`s, and `complete` last. Resolves to the data
 * of `complete`. Aborting `signal` closes the stream, which stops the agent.
 */
export async function streamAgent(baseUrl, body, onEvent, options = {}) {
  const response = await request(baseUrl, '/agent/stream', body, options);
  const { complete } = await readEvents(response, onEvent);
  if (complete === null) throw new Error('the stream ended without a complete event');
  return complete;
}

async function readEvents(response, onEvent) {
  const seen = { complete: null, lastId: null };
  const parser = createSseParser((event) => {
    seen.lastId = event.id;
    if (event.event === 'complete') seen.complete = event.data;
    onEvent(event);
  });
  const decoder = new TextDecoder();
  try {
    for await (const chunk of response.body) parser.feed(decoder.decode(chunk, { stream: true }));
    parser.feed(decoder.decode());
    parser.end();
  } catch (error) {
    seen.error = error;
  }
  return seen;
}

/**
 * Reads an agent's events (any agent, streamed or started, running or recently finished):
 * from the start, or after `lastEventId`, then live until `complete`, which it resolves to.
 * A dropped connection is picked up again with Last-Event-ID, so no event is seen twice;
 * events the proxy no longer keeps arrive as one `gap` event ({ from, to }).
 */
export async function agentEvents(baseUrl, agentId, onEvent, { lastEventId, retries = 5, ...options } = {}) {
  let lastId = lastEventId ?? null;
  for (let attempt = 0; ; attempt += 1) {
    const headers = lastId === null ? {} : { 'last-event-id': String(lastId) };
    const response = await request(baseUrl, `/agent/${encodeURIComponent(agentId)}/events`, undefined, {
      ...options, method: 'GET', headers,
    });
    const seen = await readEvents(response, onEvent);
    if (seen.complete !== null) return seen.complete;
    lastId = seen.lastId ?? lastId;
    if (attempt >= retries || options.signal?.aborted) {
      throw seen.error ?? new Error('the event stream ended without a complete event');
    }
  }
}

/** One agent: status, pid, session_id, result, total_cost_usd, num_turns, event counts. */
export async function getAgent(baseUrl, agentId, options = {}) {
  return (await request(baseUrl, `/agent/${encodeURIComponent(agentId)}`, undefined, { ...options, method: 'GET' })).json();
}

/** The running and recently finished agents. */
export async function listAgents(baseUrl, options = {}) {
  return (await request(baseUrl, '/agents', undefined, { ...options, method: 'GET' })).json();
}

/** Stops the agent if it runs, and forgets it. */
export async function deleteAgent(baseUrl, agentId, options = {}) {
  await request(baseUrl, `/agent/${encodeURIComponent(agentId)}`, undefined, { ...options, method: 'DELETE' });
}

/** Starts an agent in the background: resolves to { agent_id, pid, status: 'started' }. */
export async function startAgent(baseUrl, body, options = {}) {
  return (await request(baseUrl, '/agent/start', body, options)).json();
}

/** Stops a running agent: resolves to { status: 'stopped', agent_id }. */
export async function stopAgent(baseUrl, agentId, options = {}) {
  return (await request(baseUrl, `/agent/stop/${encodeURIComponent(agentId)}`, undefined, options)).json();
}

// Interactive agents: start one with { interactive: true } (and { approvals: true } to answer
// its tool approvals), then talk to it while it runs.

async function post(baseUrl, path, body, options) {
  return (await request(baseUrl, path, body, options)).json();
}

/** Sends a message (a string, or text and image blocks): resolves to { agent_id, queued }. */
export async function sendMessage(baseUrl, agentId, content, options = {}) {
  return post(baseUrl, `/agent/${encodeURIComponent(agentId)}/messages`, { content }, options);
}

/** Ends the running turn; queued messages still run: resolves to { agent_id, still_queued }. */
export async function interrupt(baseUrl, agentId, options = {}) {
  return post(baseUrl, `/agent/${encodeURIComponent(agentId)}/interrupt`, undefined, options);
}

/** Closes the agent's input: it finishes its turns, then its stream ends with `complete`. */
export async function closeAgent(baseUrl, agentId, options = {}) {
  return post(baseUrl, `/agent/${encodeURIComponent(agentId)}/close`, undefined, options);
}

/** Changes { model, permission_mode } for the next turns: resolves to what the CLI confirmed. */
export async function updateAgent(baseUrl, agentId, changes, options = {}) {
  return post(baseUrl, `/agent/${encodeURIComponent(agentId)}`, changes, { ...options, method: 'PATCH' });
}

/**
 * Answers a `permission_request` event: { behavior: 'allow', updated_input? } or
 * { behavior: 'deny', message, interrupt? }.
 */
export async function answerPermission(baseUrl, agentId, requestId, answer, options = {}) {
  const path = `/agent/${encodeURIComponent(agentId)}/permissions/${encodeURIComponent(requestId)}`;
  return post(baseUrl, path, answer, options);
}
