// Writes src/paywall-page.min.js, the paywall page's script as the Worker sends it, from its
// source, src/paywall-page.js: minified by esbuild (names shortened, whitespace and comments
// gone), which makes the upload about 0.3 KB lighter than the source with its indentation cut.
// `scripts/build` runs it first, so a Worker is always built from the source as it stands; the
// minified file is committed so that a plain `cargo build` or `cargo test` has it too.
//
// Usage: node scripts/lib/minify-page.mjs            writes the file (only when its content changes)
//        node scripts/lib/minify-page.mjs --check    fails if the committed file is not the source's
//                                                    minified form (`scripts/test` checks it before
//                                                    the native tests, which read that file)
import { readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { transformSync } from "esbuild";

const SRC = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../src");
const source = readFileSync(path.join(SRC, "paywall-page.js"), "utf8");
const minified = transformSync(source, {
  loader: "js",
  minify: true,
  legalComments: "none",
  // The browsers that have the APIs the script calls (async functions, TextEncoder,
  // replaceChildren); esbuild refuses rather than rewrites what they would not run.
  target: ["chrome86", "firefox78", "safari14"],
}).code.trimEnd();
// Sent inside <script>…</script>, and hash-pinned by the page's policy: nothing in it may close
// the element early.
if (/<\//.test(minified)) throw new Error("the paywall page's script contains \"</\"");
const out = path.join(SRC, "paywall-page.min.js");
let current = null;
try {
  current = readFileSync(out, "utf8");
} catch {}
if (process.argv.includes("--check")) {
  if (current !== minified) {
    console.error("src/paywall-page.min.js is not src/paywall-page.js minified: run scripts/build (or node scripts/lib/minify-page.mjs) and commit both");
    process.exit(1);
  }
  console.log("[test] src/paywall-page.min.js is src/paywall-page.js minified");
} else if (current !== minified) {
  writeFileSync(out, minified);
  console.log(`[build] wrote ${path.relative(path.dirname(SRC), out)} (${minified.length} bytes)`);
}
