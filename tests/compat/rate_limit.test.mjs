// A subscription the API rate limits, as the official SDKs see it (tests/it/compat.rs runs this
// against a proxy of its own, whose stand-in answers 429).
import assert from "node:assert/strict";
import { createRequire } from "node:module";
import { test } from "node:test";

const require = createRequire(new URL("../../.tools/compat/", import.meta.url));
const { default: OpenAI } = await import(require.resolve("openai"));
const { default: Anthropic } = await import(require.resolve("@anthropic-ai/sdk"));

const base = process.env.CLAUDE_PROXY_URL;
const key = process.env.CLAUDE_PROXY_KEY;

test("a rate limited CLI is the SDKs' RateLimitError, with retry-after", async () => {
  const openai = new OpenAI({ baseURL: `${base}/v1`, apiKey: key, maxRetries: 0 });
  // First the CLI itself meets the 429; then the proxy refuses before spawning one.
  for (let attempt = 0; attempt < 2; attempt += 1) {
    await assert.rejects(
      openai.chat.completions.create({ model: "sonnet", messages: [{ role: "user", content: "hi" }] }),
      (error) =>
        error instanceof OpenAI.RateLimitError && Number(error.headers.get("retry-after")) > 0,
    );
  }
  const anthropic = new Anthropic({ baseURL: base, apiKey: key, maxRetries: 0 });
  await assert.rejects(
    anthropic.messages.create({ model: "sonnet", max_tokens: 10, messages: [{ role: "user", content: "hi" }] }),
    (error) => error instanceof Anthropic.RateLimitError && error.error?.error?.type === "rate_limit_error",
  );
});
