// Writes src/openapi.ts, the TypeScript types of claude-proxy's OpenAPI document: one type per
// schema of components.schemas, so the client's types are the document's. Usage:
//   node scripts/generate.mjs FILE_OR_URL > src/openapi.ts
// The tests run it against the live document and compare: the two cannot drift.
import { readFile } from "node:fs/promises";

const source = process.argv[2];
if (!source) {
  console.error("usage: node scripts/generate.mjs FILE_OR_URL");
  process.exit(2);
}
const document = JSON.parse(
  /^https?:/.test(source) ? await (await fetch(source)).text() : await readFile(source, "utf8"),
);

const refName = (ref) => ref.replace("#/components/schemas/", "");
const key = (name) => (/^[A-Za-z_$][A-Za-z0-9_$]*$/.test(name) ? name : JSON.stringify(name));
const comment = (text, indent) =>
  text
    ? `${indent}/** ${text.trim().replace(/\*\//g, "*\\/").split("\n").join(`\n${indent} * `)} */\n`
    : "";
const group = (type) => (/[|&]/.test(type) && !/^[{(]/.test(type) ? `(${type})` : type);

function typeOf(schema, indent = "") {
  if (schema === true || schema === undefined || Object.keys(schema).length === 0) return "unknown";
  if (schema.$ref) return refName(schema.$ref);
  if (schema.oneOf || schema.anyOf) {
    return [...new Set((schema.oneOf ?? schema.anyOf).map((s) => typeOf(s, indent)))].join(" | ");
  }
  if (schema.allOf) return schema.allOf.map((s) => group(typeOf(s, indent))).join(" & ");
  const types = Array.isArray(schema.type) ? schema.type : schema.type ? [schema.type] : [];
  const nullable = types.includes("null");
  const kinds = types.filter((t) => t !== "null");
  let base;
  if (schema.enum) {
    base = schema.enum.filter((v) => v !== null).map((v) => JSON.stringify(v)).join(" | ");
  } else if (kinds.length === 0) {
    base = nullable ? "null" : "unknown";
    return base;
  } else {
    base = kinds.map((kind) => scalar(kind, schema, indent)).join(" | ");
  }
  return nullable ? `${group(base)} | null` : base;
}

function scalar(kind, schema, indent) {
  switch (kind) {
    case "string":
      return "string";
    case "integer":
    case "number":
      return "number";
    case "boolean":
      return "boolean";
    case "array":
      return `Array<${typeOf(schema.items, indent)}>`;
    case "object":
      return object(schema, indent);
    default:
      return "unknown";
  }
}

function object(schema, indent) {
  const properties = Object.entries(schema.properties ?? {});
  if (properties.length === 0) {
    // A map: its values' type when the document gives one (`additionalProperties`).
    const values = typeof schema.additionalProperties === "object" ? schema.additionalProperties : undefined;
    return `{ [key: string]: ${typeOf(values, indent)} }`;
  }
  const required = new Set(schema.required ?? []);
  const inner = `${indent}  `;
  const fields = properties.map(
    ([name, property]) =>
      `${comment(property.description, inner)}${inner}${key(name)}${required.has(name) ? "" : "?"}: ${typeOf(property, inner)};`,
  );
  return `{\n${fields.join("\n")}\n${indent}}`;
}

const out = [
  "// Generated from claude-proxy's OpenAPI document by scripts/generate.mjs: do not edit.",
  `// ${document.info.title} ${document.info.version}`,
  "",
];
for (const [name, schema] of Object.entries(document.components.schemas)) {
  out.push(`${comment(schema.description, "")}export type ${name} = ${typeOf(schema)};`, "");
}
process.stdout.write(out.join("\n"));
