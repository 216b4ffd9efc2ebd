// Validates an OpenAPI document against the OpenAPI 3.1 schema with an independent validator
// (@seriousme/openapi-schema-validator, pinned; scripts/test installs it into .tools/openapi).
// Usage: node validate.mjs FILE
import { createRequire } from "node:module";
import { pathToFileURL } from "node:url";

const tools = new URL("../../.tools/openapi/", import.meta.url);
const entry = createRequire(tools).resolve("@seriousme/openapi-schema-validator");
const { Validator } = await import(pathToFileURL(entry).href);

const validator = new Validator();
const result = await validator.validate(process.argv[2]);
if (!result.valid) {
  console.error(JSON.stringify(result.errors, null, 2));
  process.exit(1);
}
console.log(`valid OpenAPI ${validator.version}`);
