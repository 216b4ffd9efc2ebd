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

async function request(baseUrl, path, body, { apiKey, signal } = {}) {
  const headers = { 'content-type': 'application/json' };
  if (apiKey) headers.authorization = `Bearer ${apiKey}`;
  const response = await fetch(new URL(path, baseUrl), {
    method: 'POST',
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
  let complete = null;
  const parser = createSseParser((event) => {
    if (event.event === 'complete') complete = event.data;
    onEvent(event);
  });
  const decoder = new TextDecoder();
  for await (const chunk of response.body) parser.feed(decoder.decode(chunk, { stream: true }));
  parser.feed(decoder.decode());
  parser.end();
  if (complete === null) throw new Error('the stream ended without a complete event');
  return complete;
}

/** Starts an agent in the background: resolves to { agent_id, pid, status: 'started' }. */
export async function startAgent(baseUrl, body, options = {}) {
  return (await request(baseUrl, '/agent/start', body, options)).json();
}

/** Stops a running agent: resolves to { status: 'stopped', agent_id }. */
export async function stopAgent(baseUrl, agentId, options = {}) {
  return (await request(baseUrl, `/agent/stop/${encodeURIComponent(agentId)}`, undefined, options)).json();
}
