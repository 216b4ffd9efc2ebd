// The dashboard: a frame (server state, the key, notices) around one page at a time, chosen by
// the address's hash (`#/` the agents, `#/agent/<id>` one agent), so a reload keeps the page.

import { agentPage } from "./agent.js";
import { agentsPage } from "./agents.js";
import { byId } from "./dom.js";
import type { Frame, Page, Poller } from "./page.js";
import { describe, needsKey, saveKey, savedKey } from "./session.js";
import { serverPanel } from "./server.js";

const main = byId("main");
const keyForm = byId<HTMLFormElement>("key-form");
const keyInput = byId<HTMLInputElement>("key-input");
const keyReason = byId("key-reason");
const notice = byId("notice");
let page: Page | undefined;
let panel: Poller | undefined;

const frame: Frame = {
  askForKey() {
    if (!keyForm.hidden) return;
    keyReason.textContent = savedKey() ? "The proxy refused that key. Enter another one." : "This proxy needs a client key.";
    keyForm.hidden = false;
    page?.stop();
    page = undefined;
    main.replaceChildren();
    keyInput.focus();
  },
  notify(text, kind = "info") {
    notice.textContent = text;
    notice.className = kind;
  },
  failed(what, error) {
    if (needsKey(error)) frame.askForKey();
    else frame.notify(`${what}: ${describe(error)}`, "error");
  },
};

function showPage(): void {
  page?.stop();
  notice.textContent = "";
  const agent = /^#\/agent\/([0-9a-fA-F-]{36})$/.exec(window.location.hash)?.[1];
  page = agent ? agentPage(main, agent, frame) : agentsPage(main, frame);
  // A new page usually follows an action (an agent started, deleted): the figures follow it.
  panel?.now();
}

function restart(): void {
  panel?.stop();
  panel = serverPanel(byId("server"), byId("pending-count"), frame);
  showPage();
}

keyForm.addEventListener("submit", (event) => {
  event.preventDefault();
  saveKey(keyInput.value.trim() || undefined);
  keyInput.value = "";
  keyForm.hidden = true;
  restart();
});
byId("forget-key").addEventListener("click", () => {
  saveKey(undefined);
  keyForm.hidden = true;
  frame.askForKey();
});
window.addEventListener("hashchange", () => {
  if (keyForm.hidden) showPage();
});
restart();
