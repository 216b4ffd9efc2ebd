// The dashboard (/ui) in headless Chromium (Debian's, driven by puppeteer-core, which
// scripts/test installs into .tools/ui), against the proxy with the real CLI and the Messages
// API stand-in behind it; tests/it/ui.rs runs this. CLAUDE_PROXY_URL names the proxy, KEY and
// OTHER_KEY two of its client keys, CHROMIUM the browser, SCREENSHOTS where each page's picture
// goes.
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import net from "node:net";
import { createRequire } from "node:module";
import { after, before, test } from "node:test";

const require = createRequire(new URL("../../.tools/ui/", import.meta.url));
const { default: puppeteer } = await import(require.resolve("puppeteer-core"));

const base = process.env.CLAUDE_PROXY_URL;
const key = process.env.KEY;
const otherKey = process.env.OTHER_KEY;
const expected = process.env.EXPECTED_TEXT;
const denyMessage = process.env.DENY_MESSAGE;
const screenshots = process.env.SCREENSHOTS;
mkdirSync(screenshots, { recursive: true });

let browser;
/** The agents the first key started, for the other key to not see. */
const firstKeyAgents = [];
/** What went wrong in a page: script errors and refused loads (a CSP violation is one). */
const pageErrors = [];
/** Where a test cuts connections on purpose: a load cut short there is expected. */
const cutOrigins = new Set();

before(async () => {
  browser = await puppeteer.launch({
    executablePath: process.env.CHROMIUM,
    // Root (as in CI) cannot use Chromium's own sandbox.
    args: ["--no-sandbox", "--disable-gpu", "--no-first-run"],
  });
});

after(async () => {
  await browser?.close();
});

/** A tab of its own (its own sessionStorage) at /ui, with `clientKey` entered when given. */
async function open(clientKey, at = base) {
  const context = await browser.createBrowserContext();
  const page = await context.newPage();
  page.setDefaultTimeout(60_000);
  await page.setViewport({ width: 1280, height: 900 });
  page.on("pageerror", (error) => pageErrors.push(`${page.url()}: ${error.message}`));
  page.on("console", (message) => {
    const cut = cutOrigins.has(new URL(page.url()).origin) && /net::ERR_/.test(message.text());
    if (message.type() === "error" && !/status of 40[14]/.test(message.text()) && !cut) {
      pageErrors.push(`${page.url()}: ${message.text()}`);
    }
  });
  const response = await page.goto(`${at}/ui`);
  assert.equal(response.status(), 200);
  if (clientKey !== undefined) await enterKey(page, clientKey);
  return page;
}

async function enterKey(page, clientKey) {
  await page.waitForSelector("#key-form:not([hidden])");
  await page.type("#key-input", clientKey);
  await page.click("#key-submit");
}

/** A TCP relay to `target` whose connections a test can cut, as a network would. */
async function tcpRelay(target) {
  const sockets = new Set();
  const server = net.createServer((client) => {
    const upstream = net.connect(Number(target.port), target.hostname);
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on("close", () => sockets.delete(socket));
      socket.on("error", () => {});
    }
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    cutAll() {
      for (const socket of sockets) socket.destroy();
    },
    close() {
      this.cutAll();
      server.close();
    },
  };
}

async function shot(page, name) {
  await page.screenshot({ path: `${screenshots}/${name}.png`, fullPage: true });
}

/** Waits until an element matching `selector` holds `text`; when it does not, says what the
 * page showed. */
async function waitForText(page, selector, text) {
  try {
    await page.waitForFunction(
      (selector, text) => [...document.querySelectorAll(selector)].some((e) => e.textContent.includes(text)),
      {},
      selector,
      text,
    );
  } catch (error) {
    const shown = await page.evaluate(() => document.body.innerText).catch(() => "?");
    throw new Error(`no ${JSON.stringify(text)} in ${selector} (${error.message}); the page showed:\n${shown}`);
  }
}

async function count(page, selector) {
  return page.$$eval(selector, (elements) => elements.length);
}

async function eventIds(page) {
  return page.$$eval("#events [data-event-id]", (elements) => elements.map((e) => Number(e.dataset.eventId)));
}

/** Fills the start form and waits for the agent's page; its id. */
async function startAgent(page, prompt, { interactive = false, approvals = false } = {}) {
  await page.waitForSelector("#start-form");
  await page.type("#prompt", prompt);
  if (interactive) await page.click("#interactive");
  if (approvals) await page.click("#approvals");
  await page.click("#start");
  await page.waitForFunction(() => /^#\/agent\/[0-9a-f-]{36}$/.test(window.location.hash));
  const id = await page.evaluate(() => window.location.hash.slice("#/agent/".length));
  firstKeyAgents.push(id);
  return id;
}

async function agentDetail(id, clientKey = key) {
  const response = await fetch(`${base}/agent/${id}`, { headers: { authorization: `Bearer ${clientKey}` } });
  assert.equal(response.status, 200);
  return response.json();
}

function oneToN(n) {
  return Array.from({ length: n }, (_, i) => i + 1);
}

test("a key is asked for, a wrong one refused, and an agent's reply shows as it comes", async () => {
  const page = await open();
  const policy = (await page.goto(`${base}/ui`)).headers()["content-security-policy"];
  assert.match(policy, /script-src 'self'/);
  assert.doesNotMatch(policy, /unsafe-inline/);
  await page.waitForSelector("#key-form:not([hidden])");
  await shot(page, "key");
  await enterKey(page, "not-a-key-of-this-proxy");
  await waitForText(page, "#key-reason", "refused that key");
  await enterKey(page, key);
  await page.waitForSelector("#start-form");
  // The server's state, as /health and /metrics give it.
  await waitForText(page, "#server-agents", "/ 5 running");
  await waitForText(page, "#server-login", "logged in");
  await waitForText(page, "#server-rate-limit", "none");

  const id = await startAgent(page, "Say hello to the dashboard.");
  await waitForText(page, ".event-result", expected);
  await waitForText(page, "#agent-status", "completed");
  await waitForText(page, ".event-complete", "Ended: completed");
  const ids = await eventIds(page);
  assert.deepEqual(ids, oneToN(ids.length));
  assert.equal(ids.length, (await agentDetail(id)).events);
  await shot(page, "agent");

  await page.click("a[href='#/']");
  await page.waitForSelector(`tr[data-agent-id="${id}"]`);
  await waitForText(page, `tr[data-agent-id="${id}"]`, "completed");
  const row = await page.$eval(`tr[data-agent-id="${id}"]`, (tr) => [...tr.cells].map((cell) => cell.textContent));
  assert.equal(row[2], "start");
  assert.equal(row[7], "1", "one turn");
  assert.match(row[8], /^\$\d+\.\d{4}$/, "its cost");
  await waitForText(page, "#metric-completed", "1");
  // The key's own use of the API (GET /usage) and the subscription's windows (/health), as the
  // gateway read them from the stand-in's answers.
  await waitForText(page, "#server-usage", "requests");
  assert.doesNotMatch(await page.$eval("#server-usage", (e) => e.textContent), /^0 requests/);
  await waitForText(page, "#server-subscription", "allowed");
  await waitForText(page, "#server-window-5h", "25% used");
  await waitForText(page, "#server-window-7d", "allowed_warning, 80% used");
  await shot(page, "agents");
  await page.close();
});

test("a reload in the middle of a turn picks the stream up after the last event shown", async () => {
  const page = await open(key);
  // The turn stops midway, at a tool approval, until the page answers it.
  const id = await startAgent(page, "[reload-me] Make a file.", { approvals: true });
  await waitForText(page, ".approval h3", "waits for your approval");
  await waitForText(page, ".event-permission_request", "Asks to use Bash");
  const before = await eventIds(page);
  const asked = [];
  page.on("request", (request) => {
    if (request.url().endsWith(`/agent/${id}/events`)) asked.push(request.headers()["last-event-id"]);
  });
  await page.reload();
  // The events shown before, at once, the approval again, and the stream followed from after
  // the last event shown.
  await page.waitForFunction((n) => document.querySelectorAll("#events [data-event-id]").length >= n, {}, before.length);
  await waitForText(page, ".approval h3", "waits for your approval");
  await page.click(".approval .allow");
  await waitForText(page, ".tool-result", "ui-tool-done");
  await waitForText(page, ".event-result", expected);
  await page.waitForFunction(() => !document.getElementById("follow-up-form").hidden);
  await page.type("#follow-up", "Tell me more.");
  await page.click("#send");
  await page.waitForFunction(() => document.querySelectorAll(".event-result").length === 2);
  await page.click("#close");
  await waitForText(page, ".event-complete", "Ended: completed");
  assert.deepEqual(asked, [String(before.at(-1))], "one request, with Last-Event-ID");
  const ids = await eventIds(page);
  assert.deepEqual(ids, oneToN(ids.length), "no event repeated or missing");
  assert.equal(ids.length, (await agentDetail(id)).events);
  await shot(page, "agent-after-reload");
  await page.close();
});

test("a dropped connection is picked up after the last event shown", async () => {
  const relay = await tcpRelay(new URL(base));
  cutOrigins.add(relay.url);
  try {
    const page = await open(key, relay.url);
    const id = await startAgent(page, "Let us talk.", { interactive: true });
    await waitForText(page, ".event-result", expected);
    const asked = [];
    page.on("request", (request) => {
      if (request.url().endsWith(`/agent/${id}/events`)) asked.push(request.headers()["last-event-id"]);
    });
    const before = await eventIds(page);
    // Every connection between the browser and the proxy, the event stream's too, cut.
    relay.cutAll();
    await page.waitForFunction(() => !document.getElementById("follow-up-form").hidden);
    await page.type("#follow-up", "Still there?");
    await page.click("#send");
    await page.waitForFunction(() => document.querySelectorAll(".event-result").length === 2);
    await page.click("#close");
    await waitForText(page, ".event-complete", "Ended: completed");
    assert.deepEqual(asked, [String(before.at(-1))], "followed again once, after the last event shown");
    const ids = await eventIds(page);
    assert.deepEqual(ids, oneToN(ids.length), "no event repeated or missing");
    assert.equal(ids.length, (await agentDetail(id)).events);
    await page.close();
  } finally {
    relay.close();
  }
});

test("an interrupt withdraws the approval it waited for and ends the turn", async () => {
  const page = await open(key);
  await startAgent(page, "[interrupt-me] Make a file.", { approvals: true });
  await waitForText(page, ".approval h3", "waits for your approval");
  await page.click("#interrupt");
  await waitForText(page, ".event-permission_cancelled", "Approval withdrawn");
  await page.waitForSelector(".event-result");
  await page.waitForFunction(() => document.querySelectorAll(".approval").length === 0);
  await waitForText(page, "#agent-status", "waiting");
  await page.click("#close");
  await waitForText(page, ".event-complete", "Ended: completed");
  await page.close();
});

test("an approved tool runs; the approval is counted in the header until answered", async () => {
  const page = await open(key);
  await startAgent(page, "[approve-me] Make a file.", { approvals: true });
  await waitForText(page, ".approval h3", "waits for your approval");
  await waitForText(page, ".approval h3", "Bash waits for your approval");
  await waitForText(page, "#pending-count", "1 waiting for approval");
  await shot(page, "approval");
  await page.click(".approval .allow");
  await waitForText(page, ".tool-result", "ui-tool-done");
  await waitForText(page, ".event-result", expected);
  await waitForText(page, "#pending-count", "0 waiting for approval");
  assert.equal(await count(page, ".approval"), 0);
  await page.click("#close");
  await waitForText(page, ".event-complete", "Ended: completed");
  await page.close();
});

test("a tool allowed with its input edited runs as edited", async () => {
  const page = await open(key);
  await startAgent(page, "[edit-me] Make a file.", { approvals: true });
  await waitForText(page, ".approval h3", "waits for your approval");
  await page.$eval(".approval textarea", (textarea) => {
    textarea.value = textarea.value.replace("ui-unedited.txt", "ui-edited.txt");
  });
  await page.click(".approval .allow");
  await waitForText(page, "#notice", "Allowed Bash with the edited input.");
  await waitForText(page, ".tool-result", "ui-tool-done");
  await waitForText(page, ".event-result", expected);
  await page.click("#close");
  await waitForText(page, ".event-complete", "Ended: completed");
  await page.close();
});

test("a denied tool's result carries the message; stop and delete", async () => {
  const page = await open(key);
  const id = await startAgent(page, "[deny-me] Make a file.", { approvals: true });
  await waitForText(page, ".approval h3", "waits for your approval");
  await page.type(".approval .deny-message", denyMessage);
  await page.click(".approval .deny");
  await waitForText(page, ".tool-result", denyMessage);
  await waitForText(page, ".event-permission_decision", "Denied Bash");
  await waitForText(page, ".event-result", expected);
  await page.click("#stop");
  await waitForText(page, "#agent-status", "stopped");
  await waitForText(page, ".event-complete", "Ended: stopped");
  await shot(page, "denied");
  await page.click("#delete");
  await page.waitForFunction(() => window.location.hash === "#/");
  await page.waitForSelector("#agent-rows tr");
  assert.equal(await count(page, `tr[data-agent-id="${id}"]`), 0, "deleted");
  const response = await fetch(`${base}/agent/${id}`, { headers: { authorization: `Bearer ${key}` } });
  assert.equal(response.status, 404);
  await page.close();
});

test("markup in a prompt and in a tool's output shows as text and runs nothing", async () => {
  const page = await open(key);
  // The CLI runs printf without asking; an interactive agent's events show its prompt too.
  await startAgent(page, "[script-me] Print <b>markup</b> <script>window.pwned=3</script>", { interactive: true });
  await waitForText(page, ".tool-result", "<script>window.pwned=1</script>");
  await waitForText(page, ".tool-result", "<img src=x onerror=window.pwned=2>");
  await waitForText(page, ".tool-use", "'<script>window.pwned=1</script>'");
  await waitForText(page, ".event-user", "Print <b>markup</b> <script>window.pwned=3</script>");
  await waitForText(page, ".event-result", expected);
  assert.equal(await page.evaluate(() => window.pwned), undefined, "nothing ran");
  assert.equal(await count(page, "#events script, #events img, #events b"), 0, "no element made of it");
  await shot(page, "markup-as-text");
  await page.click("#close");
  await waitForText(page, ".event-complete", "Ended: completed");
  await page.close();
});

test("another key sees none of the first key's agents", async () => {
  assert.ok(firstKeyAgents.length >= 4, "the earlier tests started agents");
  const page = await open(otherKey);
  await page.waitForSelector("#no-agents:not([hidden])");
  for (const id of firstKeyAgents) assert.equal(await count(page, `tr[data-agent-id="${id}"]`), 0);
  await shot(page, "other-key");
  await page.evaluate((id) => {
    window.location.hash = `#/agent/${id}`;
  }, firstKeyAgents[0]);
  await waitForText(page, "#notice", "No such agent for this key");
  assert.equal(await count(page, "#events [data-event-id]"), 0);
  await page.close();
});

test("no page had a script error or a refused load", () => {
  assert.deepEqual(pageErrors, []);
});
