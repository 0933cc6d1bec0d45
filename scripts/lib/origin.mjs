// A small demo origin behind the paywall (Node http, 127.0.0.1): a free home page, a few HTML
// articles under /articles/<slug>, today's weather at /api/weather, anything under /free/*, and
// /echo (JSON of the method, path, query, headers and body it received) so tests can see exactly
// what reached the origin (after `?delay=ms`, if given). Records every request in `hits`.
//
//   node scripts/lib/origin.mjs --port 8788
import http from "node:http";
import { fileURLToPath } from "node:url";

export const ARTICLES = {
  hello: {
    title: "Hello, paid web",
    paragraphs: [
      "This article sits behind an x402 paywall. Your client was asked for a cent in USDC, signed an EIP-3009 authorization, and the edge let the request through.",
      "No account, no card form, no cookie banner: the payment travelled in one HTTP header and the receipt came back in another.",
    ],
  },
  "edge-economics": {
    title: "The economics of the edge",
    paragraphs: [
      "Verifying a payment signature takes microseconds; settling it on chain takes a block. Doing the first at the edge and the second later is the whole trick.",
      "A paywall that answers from the nearest data centre adds no round trip to a far-away payment service before the reader sees the page.",
    ],
  },
  "local-chain": {
    title: "A chain on your laptop",
    paragraphs: [
      "Everything you are reading was paid for on a local test chain: real USDC contract code, play money, instant blocks.",
      "Restart the stack and the chain starts again from block zero, with every payer holding a thousand test dollars.",
    ],
  },
};

const escapeHtml = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function page(title, body) {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(title)}</title></head>
<body>
${body}
</body></html>
`;
}

function homePage() {
  const items = Object.entries(ARTICLES)
    .map(([slug, a]) => `<li><a href="/articles/${slug}">${escapeHtml(a.title)}</a> ($0.01)</li>`)
    .join("\n");
  return page(
    "The x402 Demo Times",
    `<h1>The x402 Demo Times</h1>
<p>This page is free. Articles cost a cent each, paid with USDC over HTTP 402.</p>
<ul>
${items}
<li><a href="/api/weather">Today's weather</a> (JSON, $0.005)</li>
<li><a href="/free/about">About</a> (free)</li>
</ul>`,
  );
}

function articlePage(slug, article) {
  const paragraphs = article.paragraphs.map((p) => `<p>${escapeHtml(p)}</p>`).join("\n");
  return page(
    article.title,
    `<article data-slug="${escapeHtml(slug)}">
<h1>${escapeHtml(article.title)}</h1>
<p class="receipt"><strong>You paid for this article.</strong></p>
${paragraphs}
</article>`,
  );
}

function weather() {
  return {
    city: "Localhost",
    date: new Date().toISOString().slice(0, 10),
    conditions: "clear",
    temperatureC: 21,
    windKmh: 8,
    paid: true,
  };
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    req.on("error", reject);
  });
}

async function handle(req, res, hits) {
  const url = new URL(req.url, "http://origin.local");
  const path = url.pathname;
  const body = await readBody(req);
  hits.push({ method: req.method, path, query: url.search, headers: { ...req.headers }, at: Date.now() });

  const send = (status, type, text, extra = {}) => {
    res.writeHead(status, { "content-type": type, "x-origin": "x402-edge-demo", ...extra });
    res.end(req.method === "HEAD" ? undefined : text);
  };
  const html = (status, text) => send(status, "text/html; charset=utf-8", text);
  const json = (status, value) => send(status, "application/json", JSON.stringify(value, null, 2) + "\n");

  if (path === "/echo" || path.startsWith("/echo/")) {
    // ?delay=ms (at most 10 s): an origin still working when a client asks again.
    const delay = Math.min(Number(url.searchParams.get("delay")) || 0, 10_000);
    if (delay > 0) await new Promise((r) => setTimeout(r, delay));
    // ?cache=directives: an origin telling every cache, CDNs by their own headers too, to keep it.
    const cache = url.searchParams.get("cache");
    if (cache) {
      for (const h of ["cache-control", "cdn-cache-control", "cloudflare-cdn-cache-control", "surrogate-control"]) res.setHeader(h, cache);
    }
    // ?cors=origin: an origin that answers one site's scripts itself, and shows them its ETag.
    const cors = url.searchParams.get("cors");
    if (cors) {
      res.setHeader("access-control-allow-origin", cors);
      res.setHeader("access-control-allow-credentials", "true");
      res.setHeader("access-control-expose-headers", "ETag");
    }
    // ?redirect=303 (any 3xx): an origin that acts on a request, then sends the client elsewhere
    // (post, then redirect to the result); &to= names where (a signed download link on a CDN).
    const redirect = Number(url.searchParams.get("redirect"));
    const to = url.searchParams.get("to") ?? "/echo/result";
    if (redirect >= 300 && redirect < 400) return send(redirect, "text/plain; charset=utf-8", "", { location: to });
    return json(200, {
      method: req.method,
      path,
      query: Object.fromEntries(url.searchParams),
      rawQuery: url.search,
      headers: req.headers,
      body,
    });
  }
  if (path === "/") return html(200, homePage());
  // An article that moved: a permanent redirect, as publishers keep for old links.
  if (path === "/articles/edge-economics-2025") return send(301, "text/html; charset=utf-8", "", { location: "/articles/edge-economics" });
  const article = /^\/articles\/([^/]+)\/?$/.exec(path);
  if (article) {
    const slug = decodeURIComponent(article[1]);
    const found = Object.hasOwn(ARTICLES, slug) ? ARTICLES[slug] : null;
    return found ? html(200, articlePage(slug, found)) : html(404, page("Not found", `<h1>No article "${escapeHtml(slug)}"</h1>`));
  }
  if (path === "/api/weather") return json(200, weather());
  if (path.startsWith("/free/")) {
    return html(200, page("Free", `<h1>Free content</h1><p>${escapeHtml(path)} costs nothing.</p>`));
  }
  return html(404, page("Not found", `<h1>Not found</h1><p>${escapeHtml(path)}</p>`));
}

/** Starts the origin on 127.0.0.1:port (0 = free port). Returns { url, port, hits, stop() }. */
export async function startOrigin({ port = 0, verbose = false } = {}) {
  const hits = [];
  const server = http.createServer((req, res) => {
    handle(req, res, hits).catch((err) => {
      res.writeHead(500, { "content-type": "text/plain" });
      res.end(String(err));
    });
    if (verbose) res.on("finish", () => console.log(`[origin] ${req.method} ${req.url} ${res.statusCode}`));
  });
  await new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, "127.0.0.1", resolve);
  });
  const actualPort = server.address().port;
  return {
    url: `http://127.0.0.1:${actualPort}`,
    port: actualPort,
    hits,
    stop: async () => {
      const closed = new Promise((resolve) => server.close(resolve));
      server.closeAllConnections();
      await closed;
    },
  };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { values } = (await import("node:util")).parseArgs({
    options: { port: { type: "string", default: "8788" }, quiet: { type: "boolean", default: false } },
  });
  const origin = await startOrigin({ port: Number(values.port), verbose: !values.quiet });
  console.log(`origin ${origin.url}`);
  const shutdown = async () => {
    await origin.stop();
    process.exit(0);
  };
  process.on("SIGINT", shutdown);
  process.on("SIGTERM", shutdown);
}
