// Writes the pages' minified forms, as the Worker sends them, from their sources:
// - src/paywall-page.min.js, the paywall page's script, from src/paywall-page.js;
// - src/edge/stats-page.min.html, the admin's statistics page, from src/edge/stats-page.html
//   (its script and its style minified, the indentation between its elements cut).
// esbuild minifies (names shortened, whitespace and comments gone), which makes the upload about
// 0.9 KB lighter than the sources. `scripts/build` runs it first, so a Worker is always built from
// the sources as they stand; the minified files are committed so that a plain `cargo build` or
// `cargo test` has them too.
//
// Usage: node scripts/lib/minify-page.mjs            writes the files (only those whose content changes)
//        node scripts/lib/minify-page.mjs --check    fails if a committed file is not its source's
//                                                    minified form (`scripts/test` checks it before
//                                                    the native tests, which read those files)
import { readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { transformSync } from "esbuild";

const SRC = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../src");
// The browsers that have the APIs the scripts call (async functions, TextEncoder,
// replaceChildren); esbuild refuses rather than rewrites what they would not run.
const TARGET = ["chrome86", "firefox78", "safari14"];

const minify = (code, loader) => transformSync(code, { loader, minify: true, legalComments: "none", target: TARGET }).code.trimEnd();

/** A script sent inside <script>…</script>: nothing in it may close the element early. */
function script(code, what) {
  const minified = minify(code, "js");
  if (/<\//.test(minified)) throw new Error(`${what}'s script contains "</"`);
  return minified;
}

/** An HTML page: its one <style> and one <script> minified, whitespace between elements cut to a newline. */
function page(html, what) {
  return html
    .replace(/(<style>)([\s\S]*?)(<\/style>)/, (_, open, css, close) => open + minify(css, "css") + close)
    .replace(/(<script>)([\s\S]*?)(<\/script>)/, (_, open, js, close) => open + script(js, what) + close)
    .replace(/>\s*\n\s*</g, ">\n<")
    .trimEnd();
}

const files = [
  ["paywall-page.js", "paywall-page.min.js", (s) => script(s, "the paywall page")],
  ["edge/stats-page.html", "edge/stats-page.min.html", (s) => page(s, "the statistics page")],
];
let stale = false;
for (const [source, target, make] of files) {
  const minified = make(readFileSync(path.join(SRC, source), "utf8"));
  const out = path.join(SRC, target);
  let current = null;
  try {
    current = readFileSync(out, "utf8");
  } catch {}
  if (process.argv.includes("--check")) {
    if (current !== minified) {
      console.error(`src/${target} is not src/${source} minified: run scripts/build (or node scripts/lib/minify-page.mjs) and commit both`);
      stale = true;
    } else {
      console.log(`[test] src/${target} is src/${source} minified`);
    }
  } else if (current !== minified) {
    writeFileSync(out, minified);
    console.log(`[build] wrote src/${target} (${minified.length} bytes)`);
  }
}
if (stale) process.exit(1);
