// Builds the dashboard into the directory named by the first argument (dist/ is the one the
// binary serves; scripts/test builds into a temporary one and compares). esbuild's output is the
// same for the same sources and esbuild version, so the committed bundle can be checked.
import { build } from "esbuild";
import { copyFileSync, mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const out = process.argv[2];
if (!out) {
  console.error("usage: node build.mjs <output directory>");
  process.exit(2);
}
mkdirSync(out, { recursive: true });
await build({
  entryPoints: [join(here, "src/main.ts")],
  bundle: true,
  format: "esm",
  target: "es2022",
  platform: "browser",
  outfile: join(out, "app.js"),
  legalComments: "none",
  charset: "utf8",
  logLevel: "warning",
});
for (const file of ["index.html", "style.css"]) {
  copyFileSync(join(here, "static", file), join(out, file));
}
