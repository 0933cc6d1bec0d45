// Publishers and crawlers, black-box: the built Worker in workerd, the real chain, USDC and the
// official facilitator. Requests are signed with Web Bot Auth by Cloudflare's own `web-bot-auth`
// library (an implementation independent of ours), whose key directory is served by a small server
// of the test's own on 127.0.0.1. Shown here:
//   1. a verified signature from a signer the site trusts (trustSigners) classifies the request as
//      that crawler, and the route's per-class policy applies to it; forged, tampered and expired
//      signatures, valid ones from untrusted signers, and a crawler's user agent alone, get exactly
//      what an unsigned request gets;
//   2. per-class policies for people (trustBrowsers, humans = "block");
//   3. the Pay Per Crawl headers (crawler-price / -max-price / -exact-price / -charged / -error),
//      with the money moving through x402 on chain;
//   4. /.well-known/x402 lists exactly the discoverable priced routes with the terms their 402s
//      carry, and the bazaar extension validates with the official validator;
//   5. the publisher's statistics add up, to the cent, to the payments made here;
//   6. every payment is one structured JSON log line.
import assert from "node:assert/strict";
import { generateKeyPairSync } from "node:crypto";
import { readFileSync } from "node:fs";
import http from "node:http";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { privateKeyToAccount } from "viem/accounts";
import { signatureHeaders } from "web-bot-auth";
import { signerFromJWK } from "web-bot-auth/crypto";
import { extractDiscoveryInfo, validateDiscoveryExtension, validateDiscoveryExtensionSpec } from "@x402/extensions/bazaar";
import { ADMIN_TOKEN, ROOT, decodeHeader, encodeHeader, payingFetch, startStack, startWorker } from "./harness.mjs";
import { signPayment } from "./lib/sign.mjs";

const ADMIN = ADMIN_TOKEN;
const PRICE = 10000n; // "$0.01" in USDC atomic units
const DIRECTORY_PATH = "/.well-known/http-message-signatures-directory";
const DIRECTORY_TYPE = "application/http-message-signatures-directory+json";
const BROWSER = {
  "user-agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36",
  accept: "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
};
const GPTBOT_UA = "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko); compatible; GPTBot/1.0; +https://openai.com/gptbot";

// The crawler's key: the RFC 9421 Appendix B.1.4 Ed25519 test key (the one our vectors use).
const VECTORS = JSON.parse(readFileSync(path.join(ROOT, "tests/vectors/web-bot-auth.json"), "utf8"));
const CRAWLER_JWK = { kty: "OKP", crv: "Ed25519", x: VECTORS.key.x, d: VECTORS.key.d };
// Another key, in no directory: what a forger holds.
const FORGER_JWK = { ...generateKeyPairSync("ed25519").privateKey.export({ format: "jwk" }) };

let stack, site, directory, agentDirectory, worker, statsWorker;
// Directory servers a test is done with, stopped only at the end: the Worker caches what a
// directory URL served (or that it failed) for minutes, and a later server given the same port
// would inherit it.
const parked = [];
let crawlerSigner, forgerSigner;
const logs = { main: [], stats: [] };

// An origin that has every page: 200 naming the path and the wallet it was told paid.
async function startSite() {
  const hits = [];
  const server = http.createServer((req, res) => {
    const p = new URL(req.url, "http://site.local").pathname;
    hits.push({ method: req.method, path: p, headers: { ...req.headers } });
    // ?cache=directives: a page the origin tells every cache, CDNs by their own header too, to keep.
    const cache = new URL(req.url, "http://site.local").searchParams.get("cache");
    res.writeHead(200, { "content-type": "text/plain", ...(cache ? { "cache-control": cache, "cdn-cache-control": cache } : {}) });
    res.end(`origin content of ${p} for ${req.headers["x402-payer"] ?? "nobody"}`);
  });
  return listen(server, hits);
}

// The crawler's key directory (draft-meunier-http-message-signatures-directory): a JWKS of public
// keys at the well-known path, with its media type. Records every fetch, to show it is cached.
const KEY_SET_PATHS = ["/crawler/jwks.json", "/uploads/jwks.json"];
async function startDirectory(jwks) {
  const hits = [];
  const server = http.createServer((req, res) => {
    hits.push({ path: req.url, accept: req.headers.accept });
    // Also as key sets at two paths, for signers naming one by URL (type=jwks_uri).
    if (req.url !== DIRECTORY_PATH && !KEY_SET_PATHS.includes(req.url)) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { "content-type": DIRECTORY_TYPE, "cache-control": "max-age=86400" });
    res.end(JSON.stringify(jwks));
  });
  return listen(server, hits);
}

async function listen(server, hits) {
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    hits,
    stop: async () => {
      const closed = new Promise((resolve) => server.close(resolve));
      server.closeAllConnections();
      await closed;
    },
  };
}

/** Collects the Worker's console: JSON lines parsed, anything else kept as text. */
const collector = (into) => ({ message }) => {
  try {
    into.push(JSON.parse(message));
  } catch {
    into.push({ text: message });
  }
};

/** Waits until a log line after index `from` satisfies `pred` (logs arrive through workerd's stdout). */
async function logLine(list, from, pred, ms = 3000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const found = list.slice(from).find(pred);
    if (found) return found;
    if (Date.now() > deadline) {
      assert.fail(`no matching log line; got: ${JSON.stringify(list.slice(from))}`);
    }
    await sleep(25);
  }
}

const ROUTES = [
  { path: "/articles/free-sample", free: true },
  { path: "/articles/*", price: "$0.01", payers: "bots", trustBrowsers: false, description: "An article", mimeType: "text/html" },
  { path: "/open/*", price: "$0.01", payers: "bots", trustBrowsers: false, crawlers: "allow", agents: "charge" },
  { path: "/blocked/*", price: "$0.01", payers: "bots", trustBrowsers: false, crawlers: "block" },
  { path: "/people/*", price: "$0.01", payers: "bots", trustBrowsers: true },
  { path: "/members/*", price: "$0.01", humans: "block", trustBrowsers: true },
  // Sold to people only: not listed for agents and crawlers, who read it free.
  { path: "/readers/*", price: "$0.01", crawlers: "allow", agents: "allow" },
  {
    path: "/api/weather",
    method: "GET",
    price: "$0.005",
    description: "Today's weather for a city",
    mimeType: "application/json",
    discovery: {
      input: { city: "Paris" },
      inputSchema: { properties: { city: { type: "string", minLength: 1 } }, required: ["city"] },
      output: { city: "Paris", temperatureC: 21 },
      outputSchema: { properties: { city: { type: "string" }, temperatureC: { type: "number" } }, required: ["city"] },
    },
  },
  {
    path: "/api/ask",
    method: "POST",
    price: "$0.02",
    description: "Ask a question",
    mimeType: "application/json",
    discovery: {
      input: { question: "What is x402?", maxWords: 50 },
      inputSchema: {
        type: "object",
        properties: { question: { type: "string" }, maxWords: { type: "integer", minimum: 1 } },
        required: ["question"],
      },
      bodyType: "json",
      output: { answer: "A payment protocol over HTTP 402." },
    },
  },
  { path: "/hidden/*", price: "$0.01", discovery: { discoverable: false } },
];

before(async () => {
  [stack, site] = await Promise.all([startStack(), startSite()]);
  crawlerSigner = await signerFromJWK(CRAWLER_JWK);
  forgerSigner = await signerFromJWK(FORGER_JWK);
  const { d: _d, ...publicKey } = CRAWLER_JWK;
  // The same key served by a second directory, whose signer the site lists as an agent.
  [directory, agentDirectory] = await Promise.all([startDirectory({ keys: [publicKey] }), startDirectory({ keys: [publicKey] })]);
  [worker, statsWorker] = await Promise.all([
    startWorker({
      // Every decision logged, the routine ones included (the other Worker keeps the default).
      // Signers on loopback are trusted (any port: the hostile directories below have their own);
      // "localhost" is not, though it names the same directory server.
      config: stack.config({ origin: site.url, routes: ROUTES, log: "all", trustSigners: ["127.0.0.1", `${directory.url}${KEY_SET_PATHS[0]}`], agentSigners: [new URL(agentDirectory.url).host] }),
      secrets: { X402_ADMIN_TOKEN: ADMIN },
      onLog: collector(logs.main),
      // A zone without Bot Management: request.cf has no bot fields (Miniflare's placeholder
      // would say botManagement.score 99, "human", for every request).
      cf: {},
    }),
    startWorker({
      config: stack.config({
        origin: site.url,
        routes: [
          // Two rules on one path, counted apart in the statistics.
          { method: "POST", path: "/news/*", price: "$0.02" },
          { method: "GET", path: "/news/*", price: "$0.01" },
          { path: "/data/*", price: "$0.005", settlement: "deferred", session: { seconds: 3600 } },
        ],
      }),
      secrets: { X402_ADMIN_TOKEN: ADMIN },
      onLog: collector(logs.stats),
    }),
  ]);
});
after(async () => {
  await Promise.all([worker?.dispose(), statsWorker?.dispose()]);
  await Promise.all([stack?.stop(), site?.stop(), directory?.stop(), agentDirectory?.stop(), ...parked.map((d) => d.stop())]);
});

const now = () => Math.floor(Date.now() / 1000);

/**
 * Headers for `url` signed by the web-bot-auth library: Signature-Agent names our directory (as an
 * sf-string, or as a dictionary member with `dictionary: true`), the library's default components
 * (@authority, signature-agent) unless `components` says otherwise, created now, expiring in 5 min.
 * `agent` names another directory server. `signer` signs (a forger may pass a signer that claims the crawler's keyid).
 */
async function signedHeaders(url, { headers = {}, method = "GET", components, signer = crawlerSigner, created, expires, dictionary = false, jwks = false, agent = directory.url } = {}) {
  const h = new Headers(headers);
  h.set("signature-agent", jwks ? `crawler="${agent}";type=jwks_uri` : dictionary ? `crawler="${agent}"` : `"${agent}"`);
  const t = now();
  const params = { created: new Date((created ?? t) * 1000), expires: new Date((expires ?? t + 300) * 1000) };
  if (components) params.components = components;
  const sig = await signatureHeaders(new Request(url, { method, headers: h }), signer, params);
  h.set("signature", sig.Signature);
  h.set("signature-input", sig["Signature-Input"]);
  return h;
}

/** A request to the main Worker signed by the crawler (see signedHeaders), with `tamper` applied after signing. */
async function crawl(p, { tamper, ...opts } = {}) {
  const url = `${worker.url}${p}`;
  const headers = await signedHeaders(url, opts);
  tamper?.(headers);
  return fetch(url, { method: opts.method ?? "GET", headers });
}

/** What came back, in the terms the tests compare: status, our reason, crawler-* headers. */
async function outcome(res) {
  const text = await res.text();
  let reason = null;
  try {
    reason = JSON.parse(text).reason ?? null;
  } catch {
    /* the origin's text */
  }
  return {
    status: res.status,
    reason,
    crawlerError: res.headers.get("crawler-error"),
    crawlerPrice: res.headers.get("crawler-price"),
    fromOrigin: text.startsWith("origin content of"),
  };
}

const balances = async (i) => ({
  payer: await stack.balanceOf(stack.payer(i).address),
  payTo: await stack.balanceOf(stack.accounts.payTo.address),
});
const settles = () => stack.facilitator.calls.filter((c) => c.kind === "settle").length;

describe("Web Bot Auth: a request signed by the web-bot-auth library is classified as that crawler", () => {
  test("a verified crawler reads free where crawlers are allowed; unsigned, a script, and GPTBot by user agent pay", async () => {
    const hitsBefore = site.hits.length;
    const from = logs.main.length;
    const signed = await outcome(await crawl("/open/story"));
    assert.deepEqual(signed, { status: 200, reason: null, crawlerError: null, crawlerPrice: null, fromOrigin: true });
    assert.equal(site.hits.length, hitsBefore + 1, "the origin served it");
    // Its signature, good for any page of the site until it expires, is not handed to the origin
    // (whose logs would let anyone pass for the crawler).
    const seen = site.hits.at(-1).headers;
    for (const h of ["signature", "signature-input", "signature-agent"]) assert.equal(seen[h], undefined, h);
    const line = await logLine(logs.main, from, (l) => l.event === "access");
    assert.equal(line.outcome, "allowed");
    assert.equal(line.route, "/open/*");
    assert.equal(line.class, "crawler");
    assert.equal(line.evidence, "web_bot_auth");
    assert.equal(line.agent, new URL(directory.url).host, "classified as the crawler of that directory");

    // The same crawler signing with a dictionary Signature-Agent (the current draft's form).
    assert.equal((await outcome(await crawl("/open/story", { dictionary: true }))).status, 200);

    // Everyone else pays, whatever their user agent says: a claim in the UA gains nothing.
    for (const headers of [{}, { "user-agent": "curl/8.5.0" }, { "user-agent": GPTBOT_UA }, { "user-agent": "GPTBot/1.0" }]) {
      const res = await outcome(await worker.fetch("/open/story", { headers }));
      assert.equal(res.status, 402, JSON.stringify(headers));
      assert.equal(res.reason, "payment_required");
      assert.equal(res.fromOrigin, false);
    }
  });

  test("a signer the site lists in agentSigners is classed an agent: where crawlers read free and agents pay, it pays", async () => {
    const from = logs.main.length;
    const hitsBefore = site.hits.length;
    const asAgent = await outcome(await crawl("/open/story", { agent: agentDirectory.url }));
    assert.deepEqual([asAgent.status, asAgent.reason, asAgent.fromOrigin], [402, "payment_required", false]);
    assert.equal(site.hits.length, hitsBefore, "nothing reached the origin");
    const line = await logLine(logs.main, from, (l) => l.event === "refusal");
    assert.deepEqual([line.class, line.evidence, line.agent], ["agent", "web_bot_auth", new URL(agentDirectory.url).host]);
    // The same key through the other directory, a crawler's: read free.
    const asCrawler = await outcome(await crawl("/open/story"));
    assert.deepEqual([asCrawler.status, asCrawler.fromOrigin], [200, true]);
  });

  test("a valid signature from a signer the site does not trust is worth nothing: judged unsigned, its directory never fetched", async () => {
    // Anyone can host a key directory and sign with its key: an agent that did so would read free
    // as a "crawler" wherever crawlers read free. The same key and directory, named as
    // "localhost", a host not in trustSigners.
    const untrusted = directory.url.replace("127.0.0.1", "localhost");
    const [hitsBefore, directoryHitsBefore, from] = [site.hits.length, directory.hits.length, logs.main.length];
    for (const opts of [{ agent: untrusted }, { agent: untrusted, dictionary: true }, { agent: untrusted, headers: { "user-agent": GPTBOT_UA } }]) {
      const res = await outcome(await crawl("/open/story", opts));
      assert.deepEqual([res.status, res.reason, res.fromOrigin], [402, "payment_required", false], JSON.stringify(opts));
    }
    const refused = await logLine(logs.main, from, (l) => l.event === "web_bot_auth");
    assert.equal(refused.error, "untrusted_signer", refused.detail);
    assert.match(refused.detail, /localhost:\d+ is not one this site trusts/);
    await logLine(logs.main, from, (l) => l.event === "refusal" && l.evidence === "user_agent");
    const refusals = logs.main.slice(from).filter((l) => l.event === "refusal");
    assert.equal(refusals.length, 3, JSON.stringify(refusals));
    assert.ok(refusals.every((l) => l.evidence !== "web_bot_auth" && !l.agent?.startsWith("localhost")), JSON.stringify(refusals));
    assert.equal(site.hits.length, hitsBefore, "nothing reached the origin");
    assert.equal(directory.hits.length, directoryHitsBefore, "the paywall never fetched the untrusted directory");
    // The same signature from the trusted name still verifies.
    assert.equal((await outcome(await crawl("/open/story"))).status, 200);
  });

  test("a key set named by URL (type=jwks_uri) is trusted only when that URL is listed, not for its host", async () => {
    // The listed key set: verified, a crawler, reads free.
    const listed = await outcome(await crawl("/open/story", { jwks: true, agent: `${directory.url}${KEY_SET_PATHS[0]}` }));
    assert.deepEqual([listed.status, listed.fromOrigin], [200, true]);
    // The same keys at another path of the same trusted host (a file anyone might have put there):
    // worth nothing, and not fetched.
    const elsewhere = `${directory.url}${KEY_SET_PATHS[1]}`;
    const [hitsBefore, from] = [directory.hits.length, logs.main.length];
    const res = await outcome(await crawl("/open/story", { jwks: true, agent: elsewhere }));
    assert.deepEqual([res.status, res.reason, res.fromOrigin], [402, "payment_required", false]);
    const refused = await logLine(logs.main, from, (l) => l.event === "web_bot_auth");
    assert.equal(refused.error, "untrusted_signer", refused.detail);
    assert.equal(directory.hits.length, hitsBefore, "the unlisted key set was never fetched");
    assert.ok(directory.hits.some((h) => h.path === KEY_SET_PATHS[0]), "the listed one was");
  });

  test("the key directory is fetched from Signature-Agent once, with its media type, then cached in KV", async () => {
    const fetches = directory.hits.filter((h) => h.path === DIRECTORY_PATH);
    assert.equal(fetches.length, 1, JSON.stringify(directory.hits));
    assert.match(fetches[0].accept, /application\/http-message-signatures-directory\+json/);
    const cached = await (await worker.kv()).get(`wba-directory:${directory.url}${DIRECTORY_PATH}`);
    assert.ok(cached, "cached under the directory URL");
    assert.equal(JSON.parse(cached).keys[0].x, CRAWLER_JWK.x);
  });

  test("a signer that rotates its keys is verified with the new key at once: its directory is fetched again for a key it lacks, at most once in five minutes", async () => {
    const { d: _d, ...oldKey } = CRAWLER_JWK;
    const keys = { keys: [oldKey] };
    const rotating = await startDirectory(keys);
    try {
      const fetched = () => rotating.hits.filter((h) => h.path === DIRECTORY_PATH).length;
      const asCrawler = async (signer) => outcome(await crawl("/open/story", { agent: rotating.url, signer }));
      const read = await asCrawler(crawlerSigner);
      assert.deepEqual([read.status, read.fromOrigin], [200, true], "verified with the key it had");
      assert.equal(fetched(), 1);
      // The signer replaces its key: the cached directory (an hour) does not have the new one.
      const newJwk = generateKeyPairSync("ed25519").privateKey.export({ format: "jwk" });
      const { d: _nd, ...newKey } = newJwk;
      keys.keys = [newKey];
      const rotated = await asCrawler(await signerFromJWK(newJwk));
      assert.deepEqual([rotated.status, rotated.fromOrigin], [200, true], "verified with its new key");
      assert.equal(fetched(), 2, "fetched again, once");
      // A key in no directory, sent again and again, does not have it fetched again and again.
      for (let i = 0; i < 3; i++) {
        const from = logs.main.length;
        const forged = await asCrawler(forgerSigner);
        assert.deepEqual([forged.status, forged.reason], [402, "payment_required"]);
        assert.equal((await logLine(logs.main, from, (l) => l.event === "web_bot_auth")).error, "unknown_key");
      }
      const retired = await asCrawler(crawlerSigner);
      assert.deepEqual([retired.status, retired.reason], [402, "payment_required"], "the retired key no longer verifies");
      assert.equal(fetched(), 2, "not fetched again within five minutes");
    } finally {
      parked.push(rotating);
    }
  });

  test("a route that blocks crawlers: the verified crawler gets 403 CrawlerForbidden, GPTBot by UA too, a script pays", async () => {
    const hitsBefore = site.hits.length;
    const res = await crawl("/blocked/story");
    assert.equal(res.status, 403);
    assert.equal(res.headers.get("crawler-error"), "CrawlerForbidden");
    const body = await res.json();
    assert.equal(body.reason, "blocked");
    assert.match(body.message, /classed crawler by web_bot_auth \(127\.0\.0\.1:\d+\)/);
    assert.equal(site.hits.length, hitsBefore, "nothing reached the origin");
    // A weak claim gets the stricter policy: saying GPTBot is blocked too.
    const ua = await outcome(await worker.fetch("/blocked/story", { headers: { "user-agent": GPTBOT_UA } }));
    assert.deepEqual([ua.status, ua.reason, ua.crawlerError], [403, "blocked", "CrawlerForbidden"]);
    const script = await outcome(await worker.fetch("/blocked/story", { headers: { "user-agent": "curl/8.5.0" } }));
    assert.deepEqual([script.status, script.reason], [402, "payment_required"]);
  });

  // Each of these is signed by the library but must be worth no signature: the request gets
  // exactly what the same request without Signature/Signature-Input/Signature-Agent gets, and the
  // Worker logs why it refused the signature.
  const impostor = () => ({ alg: crawlerSigner.alg, keyid: crawlerSigner.keyid, sign: (data) => forgerSigner.sign(data) });
  const forgeries = [
    ["signed by another key claiming the crawler's keyid", () => ({ signer: impostor() }), "invalid_signature"],
    ["signed by a key the directory does not have", () => ({ signer: forgerSigner }), "unknown_key"],
    [
      "a covered header changed after signing",
      () => ({
        headers: { "user-agent": "ExampleFetcher/1.0" },
        components: ["@authority", "signature-agent", "user-agent"],
        tamper: (h) => h.set("user-agent", "ExampleFetcher/2.0"),
      }),
      "invalid_signature",
    ],
    [
      "the signature bytes altered",
      () => ({ tamper: (h) => h.set("signature", h.get("signature").replace(/:(.)/, (_, c) => `:${c === "A" ? "B" : "A"}`)) }),
      "invalid_signature",
    ],
    ["expired (created and expires in the past)", () => ({ created: now() - 900, expires: now() - 600 }), "signature_expired"],
    ["created in the future", () => ({ created: now() + 3600, expires: now() + 3900 }), "signature_created_in_future"],
  ];
  for (const [name, opts, code] of forgeries) {
    test(`not the crawler: ${name}`, async () => {
      for (const p of ["/open/story", "/blocked/story"]) {
        const o = opts();
        const url = `${worker.url}${p}`;
        const headers = await signedHeaders(url, o);
        o.tamper?.(headers);
        const from = logs.main.length;
        const hitsBefore = site.hits.length;
        const forged = await outcome(await fetch(url, { headers }));
        const refused = await logLine(logs.main, from, (l) => l.event === "web_bot_auth");
        assert.equal(refused.error, code, refused.detail);
        const plain = new Headers(headers);
        for (const h of ["signature", "signature-input", "signature-agent"]) plain.delete(h);
        const unsigned = await outcome(await fetch(url, { headers: plain }));
        assert.deepEqual(forged, unsigned, `${p}: what an unsigned request gets`);
        assert.deepEqual([forged.status, forged.reason, forged.crawlerError], [402, "payment_required", null], p);
        assert.equal(site.hits.length, hitsBefore, "nothing reached the origin");
      }
    });
  }

  // A signer's directory server is the signer's to write: it must not be able to hold the paywall,
  // exhaust its memory or make it fetch on every request. Each server below serves the crawler's
  // real key after its hostility, so a paywall that read past the limit would find the key.
  const { d: _d, ...crawlerKey } = CRAWLER_JWK;
  const realDirectory = Buffer.from(JSON.stringify({ keys: [crawlerKey] }));
  const hostile = [
    [
      "streams without end (no Content-Length)",
      (res) => {
        res.writeHead(200, { "content-type": DIRECTORY_TYPE });
        res.write('{"keys":[');
        const spaces = Buffer.alloc(16 * 1024, 0x20);
        const pump = () => {
          while (!res.destroyed && res.write(spaces));
        };
        res.on("drain", pump);
        pump();
      },
      /sent more than the 65536 bytes read/,
    ],
    [
      "announces 10 MB in Content-Length",
      (res) => {
        const body = Buffer.concat([Buffer.from('{"keys":['), Buffer.alloc(10 * 1024 * 1024 - realDirectory.length - 9, 0x20), realDirectory.subarray(9)]);
        res.writeHead(200, { "content-type": DIRECTORY_TYPE, "content-length": body.length });
        res.end(body);
      },
      /sent more than the 65536 bytes read/,
    ],
    [
      "sends 64 KiB + 1 byte, the real key at the end, in chunks without a length",
      (res) => {
        const pad = Buffer.alloc(64 * 1024 + 1 - realDirectory.length, 0x20);
        res.writeHead(200, { "content-type": DIRECTORY_TYPE });
        res.write(pad);
        setTimeout(() => res.end(realDirectory), 20);
      },
      /sent more than the 65536 bytes read/,
    ],
    [
      "answers 500",
      (res) => res.writeHead(500).end(JSON.stringify({ keys: [crawlerKey] })),
      /answered HTTP 500, not 200/,
    ],
    [
      "redirects to the real directory",
      (res) => res.writeHead(302, { location: `${directory.url}${DIRECTORY_PATH}` }).end(),
      /answered HTTP 302, not 200/,
    ],
    [
      "serves a web page",
      (res) => res.writeHead(200, { "content-type": "text/html" }).end("<!doctype html><title>Keys</title>"),
      /could not be read: the body is not JSON/,
      "malformed_directory",
    ],
  ];
  /** Runs `body(agent)` with a directory server that answers every request with `serve(res)`. */
  async function withDirectoryServer(serve, body) {
    const hits = [];
    const agent = await listen(
      http.createServer((req, res) => {
        hits.push(req.url);
        serve(res);
      }),
      hits,
    );
    try {
      await body(agent);
    } finally {
      parked.push(agent);
    }
  }
  for (const [name, serve, detail, firstError = "directory_unavailable"] of hostile) {
    test(`a key directory that ${name}: refused with why, once, and the request is judged unsigned`, async () => {
      await withDirectoryServer(serve, async (agent) => {
        for (const [round, remembered] of [
          [1, false],
          [2, true],
        ]) {
          const url = `${worker.url}/open/story`;
          const headers = await signedHeaders(url, { agent: agent.url });
          const from = logs.main.length;
          const hitsBefore = site.hits.length;
          const signed = await outcome(await fetch(url, { headers }));
          const refused = await logLine(logs.main, from, (l) => l.event === "web_bot_auth");
          // Remembered for a few minutes with why, whatever the first refusal was.
          const expected = remembered ? "directory_unavailable" : firstError;
          assert.equal(refused.error, expected, refused.detail);
          if (expected === "directory_unavailable") {
            assert.match(refused.detail, detail);
            assert.ok(refused.detail.includes(agent.url), refused.detail);
          }
          assert.equal(refused.detail.includes("remembered"), remembered, `round ${round}: ${refused.detail}`);
          assert.deepEqual([signed.status, signed.reason, signed.crawlerError], [402, "payment_required", null]);
          assert.equal(site.hits.length, hitsBefore, "nothing reached the origin");
        }
        assert.deepEqual(agent.hits, [DIRECTORY_PATH], "fetched once, then remembered");
        // Remembered by the isolate, not written to KV: requests naming made-up directories
        // must not each cost a KV write.
        const { keys } = await (await worker.kv()).list({ prefix: `wba-directory:${agent.url}` });
        assert.deepEqual(keys, [], "nothing written to KV");
      });
    });
  }

  test("a key directory of exactly 64 KiB, sent in pieces without a length, is read whole: the crawler is verified", async () => {
    const pad = Buffer.alloc(64 * 1024 - realDirectory.length, 0x20);
    const serve = (res) => {
      res.writeHead(200, { "content-type": DIRECTORY_TYPE });
      res.write(pad);
      setTimeout(() => res.end(realDirectory), 20);
    };
    await withDirectoryServer(serve, async (agent) => {
      const from = logs.main.length;
      const res = await outcome(await crawl("/open/story", { agent: agent.url }));
      assert.deepEqual([res.status, res.fromOrigin], [200, true], "a verified crawler reads /open/* free");
      assert.equal(logs.main.slice(from).find((l) => l.event === "web_bot_auth"), undefined, "no refusal logged");
      assert.deepEqual(agent.hits, [DIRECTORY_PATH]);
    });
  });

  test("a signature made for another site does not carry over (@authority is covered)", async () => {
    const headers = await signedHeaders("http://news.example/open/story");
    const from = logs.main.length;
    const res = await outcome(await worker.fetch("/open/story", { headers }));
    assert.deepEqual([res.status, res.reason], [402, "payment_required"]);
    assert.equal((await logLine(logs.main, from, (l) => l.event === "web_bot_auth")).error, "invalid_signature");
  });

  test("a verified signer is a crawler whatever its user agent: a browser UA does not make it a reader", async () => {
    // People read /people/* free (trustBrowsers); the signed crawler posing as a browser pays.
    const res = await crawl("/people/story", { headers: BROWSER });
    assert.equal(res.status, 402);
    assert.equal(res.headers.get("crawler-price"), "USD 0.01");
    assert.match(res.headers.get("content-type"), /json/, "a crawler gets the JSON, not the paywall page");
    assert.equal((await res.json()).reason, "payment_required");
  });
});

describe("who pays: people", () => {
  test("payers = bots with trustBrowsers: a browser reads free, a script pays", async () => {
    const browser = await outcome(await worker.fetch("/people/story", { headers: BROWSER }));
    assert.deepEqual([browser.status, browser.fromOrigin], [200, true]);
    const script = await outcome(await worker.fetch("/people/story", { headers: { "user-agent": "curl/8.5.0", accept: "*/*" } }));
    assert.deepEqual([script.status, script.reason], [402, "payment_required"]);
    // A browser UA asking for JSON is not a browser visit.
    const json = await outcome(await worker.fetch("/people/story", { headers: { ...BROWSER, accept: "application/json" } }));
    assert.equal(json.status, 402);
  });

  test("a priced page a browser reads free is kept by no shared cache, which would hand it to those who pay", async () => {
    const res = await worker.fetch("/people/cached?cache=public,max-age=600", { headers: BROWSER });
    assert.equal(res.status, 200);
    assert.equal(await res.text(), "origin content of /people/cached for nobody");
    assert.equal(res.headers.get("cache-control"), "private, no-cache", "its reader's browser only, revalidated");
    assert.equal(res.headers.get("cdn-cache-control"), null, "no CDN's own header either");
    const unkept = await worker.fetch("/people/cached?cache=no-store", { headers: BROWSER });
    assert.equal(unkept.headers.get("cache-control"), "private, no-store", "not kept at all where the origin said so");
    await unkept.arrayBuffer();
    // A free page is the origin's business.
    const free = await worker.fetch("/articles/free-sample?cache=public,max-age=600", { headers: BROWSER });
    assert.equal(free.headers.get("cache-control"), "public,max-age=600");
    await free.arrayBuffer();
  });

  test("payers = bots without trustBrowsers: a browser claim alone does not read free (the paywall page, 402)", async () => {
    const res = await worker.fetch("/articles/story", { headers: BROWSER });
    assert.equal(res.status, 402);
    assert.match(res.headers.get("content-type"), /text\/html/);
    assert.ok(decodeHeader(res.headers.get("payment-required")).accepts.length, "still machine-readable");
    await res.arrayBuffer();
  });

  test('humans = "block": a browser gets 403 (no crawler-error), a script pays', async () => {
    const res = await worker.fetch("/members/story", { headers: BROWSER });
    assert.equal(res.status, 403);
    assert.equal(res.headers.get("crawler-error"), null);
    assert.equal((await res.json()).reason, "blocked");
    const script = await outcome(await worker.fetch("/members/story", { headers: { "user-agent": "curl/8.5.0" } }));
    assert.deepEqual([script.status, script.reason], [402, "payment_required"]);
  });

  test("a free rule carved out of a priced pattern is free for everyone", async () => {
    const res = await outcome(await worker.fetch("/articles/free-sample", { headers: { "user-agent": "curl/8.5.0" } }));
    assert.deepEqual([res.status, res.fromOrigin], [200, true]);
  });
});

describe("Cloudflare's bot verdicts, when the zone has them (request.cf)", () => {
  // Per-request request.cf through Miniflare's dispatchFetch (merged over its placeholder).
  const withCf = async (p, cf, headers = {}) =>
    outcome(await worker.mf.dispatchFetch(`${worker.url}${p}`, { headers: { "user-agent": "node", ...headers }, cf }));
  const verifiedAiCrawler = { botManagement: { verifiedBot: true, score: 1 }, verifiedBotCategory: "AI Crawler" };
  const verifiedAssistant = { botManagement: { verifiedBot: true, score: 1 }, verifiedBotCategory: "AI Assistant" };

  test("a bot Cloudflare verified as an AI crawler is a crawler: allowed, blocked, or quoted crawler-price", async () => {
    assert.deepEqual((await withCf("/open/story", verifiedAiCrawler)).status, 200);
    const blocked = await withCf("/blocked/story", verifiedAiCrawler);
    assert.deepEqual([blocked.status, blocked.reason, blocked.crawlerError], [403, "blocked", "CrawlerForbidden"]);
    const charged = await withCf("/articles/story", verifiedAiCrawler);
    assert.deepEqual([charged.status, charged.crawlerPrice], [402, "USD 0.01"]);
  });

  test("Cloudflare's verdict does not make an untrusted signer trusted: its directory is never fetched, and the verdict classifies", async () => {
    const untrusted = directory.url.replace("127.0.0.1", "localhost");
    const before = directory.hits.length;
    for (const [p, status] of [["/open/story", 200], ["/articles/story", 402]]) {
      const headers = Object.fromEntries(await signedHeaders(`${worker.url}${p}`, { agent: `${untrusted}/chosen-by-the-client?${p}` }));
      const res = await withCf(p, verifiedAiCrawler, headers);
      assert.equal(res.status, status, p);
      if (status === 402) assert.equal(res.crawlerPrice, "USD 0.01");
    }
    assert.equal(directory.hits.length, before, "the paywall fetched nothing the client named");
  });

  test("a bot Cloudflare verified as an AI assistant is an agent: it pays where crawlers read free", async () => {
    const res = await withCf("/open/story", verifiedAssistant);
    assert.deepEqual([res.status, res.reason, res.crawlerPrice], [402, "payment_required", null]);
  });

  test("Cloudflare's bot score decides for browser-looking requests, without trustBrowsers", async () => {
    const human = await withCf("/articles/story", { botManagement: { verifiedBot: false, score: 95 } }, BROWSER);
    assert.deepEqual([human.status, human.fromOrigin], [200, true], "scored human: people read free");
    const automated = await withCf("/people/story", { botManagement: { verifiedBot: false, score: 2 } }, BROWSER);
    assert.deepEqual([automated.status, automated.fromOrigin], [402, false], "scored automated: a browser UA is not a reader, even with trustBrowsers");
  });
});

describe("Pay Per Crawl headers (crawler-*), the money moving through x402", () => {
  const MAX = ["@authority", "signature-agent", "crawler-max-price"];
  const EXACT = ["@authority", "signature-agent", "crawler-exact-price"];

  async function crawlerTerms(p) {
    const res = await crawl(p);
    assert.equal(res.status, 402);
    assert.equal(res.headers.get("crawler-price"), "USD 0.01");
    await res.arrayBuffer();
    return decodeHeader(res.headers.get("payment-required")).accepts[0];
  }
  const paymentHeader = async (terms, i = 0) => encodeHeader(await signPayment(terms, stack.payer(i).privateKey));

  test("a signed crawler's 402 quotes crawler-price next to the x402 terms; others get no crawler-price", async () => {
    const terms = await crawlerTerms("/articles/one");
    assert.equal(terms.amount, String(PRICE));
    const script = await worker.fetch("/articles/one", { headers: { "user-agent": "curl/8.5.0" } });
    assert.equal(script.status, 402);
    assert.equal(script.headers.get("crawler-price"), null);
    await script.arrayBuffer();
  });

  test("crawler-max-price USD 0.05 (signed) + an x402 payment → 200, crawler-charged USD 0.01, exactly $0.01 moved", async () => {
    const terms = await crawlerTerms("/articles/one");
    const before = await balances(0);
    const from = logs.main.length;
    const res = await crawl("/articles/one", {
      headers: { "crawler-max-price": "USD 0.05", "payment-signature": await paymentHeader(terms) },
      components: MAX,
    });
    const text = await res.text();
    assert.equal(res.status, 200, text);
    assert.match(text, /^origin content of \/articles\/one for 0x/i);
    assert.equal(res.headers.get("crawler-charged"), "USD 0.01");
    const receipt = decodeHeader(res.headers.get("payment-response"));
    assert.equal(receipt.success, true);
    assert.match(receipt.transaction, /^0x[0-9a-f]{64}$/);
    const after = await balances(0);
    assert.equal(before.payer - after.payer, PRICE, "the crawler paid the price, not its max");
    assert.equal(after.payTo - before.payTo, PRICE);
    const line = await logLine(logs.main, from, (l) => l.event === "payment");
    assert.deepEqual(
      [line.outcome, line.payer, line.route, line.amount, line.detail],
      ["settled", stack.payer(0).address, "/articles/*", String(PRICE), receipt.transaction],
    );
  });

  test("crawler-exact-price USD 0.01 (signed) + a payment → 200, crawler-charged USD 0.01", async () => {
    const terms = await crawlerTerms("/articles/two");
    const before = await balances(1);
    const res = await crawl("/articles/two", {
      headers: { "crawler-exact-price": "USD 0.01", "payment-signature": await paymentHeader(terms, 1) },
      components: EXACT,
    });
    assert.equal(res.status, 200, await res.clone().text());
    assert.equal(res.headers.get("crawler-charged"), "USD 0.01");
    await res.arrayBuffer();
    assert.equal(before.payer - (await balances(1)).payer, PRICE);
  });

  // [name, headers, covered components, signed?, status, crawler-error]. Each carries a valid
  // x402 payment too: a refused intent must move no money even so.
  const refusals = [
    ["crawler-max-price below the price", { "crawler-max-price": "USD 0.001" }, MAX, true, 402, "InvalidCrawlerMaxPrice"],
    ["crawler-exact-price not the price", { "crawler-exact-price": "USD 0.02" }, EXACT, true, 402, "InvalidCrawlerExactPrice"],
    [
      "both price headers",
      { "crawler-max-price": "USD 0.05", "crawler-exact-price": "USD 0.01" },
      ["@authority", "signature-agent", "crawler-max-price", "crawler-exact-price"],
      true,
      400,
      "ConflictingPriceHeaders",
    ],
    ["a malformed price", { "crawler-max-price": "0.05 dollars" }, MAX, true, 400, "InvalidCrawlerPriceValue"],
    ["a price in another currency", { "crawler-max-price": "EUR 0.05" }, MAX, true, 400, "InvalidCrawlerPriceValue"],
    ["a price header the signature does not cover", { "crawler-max-price": "USD 0.05" }, undefined, true, 400, "InvalidSignature"],
    ["a price header on an unsigned request", { "crawler-max-price": "USD 0.05" }, undefined, false, 400, "StrongAuthRequired"],
  ];
  for (const [name, headers, components, signed, status, code] of refusals) {
    test(`${name} → ${status} crawler-error: ${code}, no money moved`, async () => {
      const terms = await crawlerTerms("/articles/three");
      const before = await balances(2);
      const settlesBefore = settles();
      const hitsBefore = site.hits.length;
      const all = { ...headers, "payment-signature": await paymentHeader(terms, 2) };
      const res = signed ? await crawl("/articles/three", { headers: all, components }) : await worker.fetch("/articles/three", { headers: all });
      assert.equal(res.status, status);
      assert.equal(res.headers.get("crawler-error"), code);
      // A 402 says what the price is; a 400 (a malformed request) quotes nothing.
      assert.equal(res.headers.get("crawler-price"), status === 402 ? "USD 0.01" : null);
      const body = await res.json();
      assert.equal(body.reason, "crawler_price_refused");
      assert.match(body.message, new RegExp(code));
      assert.ok(res.headers.get("payment-required"), "the terms come with the refusal");
      assert.equal(res.headers.get("crawler-charged"), null);
      assert.deepEqual(await balances(2), before, "no money moved");
      assert.equal(settles(), settlesBefore, "nothing was sent to be settled");
      assert.equal(site.hits.length, hitsBefore, "nothing was served");
    });
  }

  test("a covered price header changed after signing is worth no signature (StrongAuthRequired)", async () => {
    const res = await crawl("/articles/three", {
      headers: { "crawler-max-price": "USD 0.001" },
      components: MAX,
      tamper: (h) => h.set("crawler-max-price", "USD 0.05"),
    });
    assert.equal(res.status, 400);
    assert.equal(res.headers.get("crawler-error"), "StrongAuthRequired");
    await res.arrayBuffer();
  });
});

describe("discovery", () => {
  const expected = ["/articles/*", "/open/*", "/blocked/*", "/people/*", "/members/*", "/api/weather", "/api/ask"];
  const concrete = (pattern) => pattern.replace("*", "sample");

  test("/.well-known/x402 lists exactly the discoverable priced routes, each with the terms its 402 carries", async () => {
    const res = await worker.fetch("/.well-known/x402", { headers: { "user-agent": "curl/8.5.0" } });
    assert.equal(res.status, 200);
    const doc = await res.json();
    assert.deepEqual(doc.resources, expected.map((p) => `${worker.url}${p}`), "not the free one, not the hidden one, not one sold to people only");
    assert.deepEqual(doc.items.map((i) => i.resource), doc.resources);
    for (const item of doc.items) {
      const p = new URL(item.resource).pathname.replace("%2A", "*");
      const route = ROUTES.find((r) => r.path === p);
      assert.equal(item.method, route.method ?? "GET", p);
      assert.equal(item.x402Version, 2);
      if (route.description) assert.equal(item.description, route.description);
      const challenge = await worker.fetch(concrete(p), { method: item.method, headers: { "user-agent": "curl/8.5.0" } });
      assert.equal(challenge.status, 402, p);
      await challenge.arrayBuffer();
      const terms = decodeHeader(challenge.headers.get("payment-required"));
      assert.deepEqual(item.accepts, terms.accepts, `${p}: the listed terms are the 402's`);
      assert.deepEqual(item.extensions?.bazaar, terms.extensions?.bazaar, `${p}: the same bazaar description`);
    }
    const byPath = Object.fromEntries(doc.items.map((i) => [new URL(i.resource).pathname.replace("%2A", "*"), i]));
    assert.equal(byPath["/api/weather"].accepts[0].amount, "5000");
    assert.equal(byPath["/api/ask"].accepts[0].amount, "20000");
    assert.equal(byPath["/articles/*"].accepts[0].amount, "10000");
    assert.equal(byPath["/articles/*"].accepts[0].payTo, stack.accounts.payTo.address);
  });

  async function bazaar(p, method) {
    const res = await worker.fetch(p, { method, headers: { "user-agent": "curl/8.5.0" } });
    assert.equal(res.status, 402);
    await res.arrayBuffer();
    return decodeHeader(res.headers.get("payment-required")).extensions.bazaar;
  }

  test("GET route: the bazaar extension validates against its own schema with the official validator", async () => {
    const ext = await bazaar("/api/weather?city=Paris", "GET");
    assert.deepEqual(validateDiscoveryExtension(ext), { valid: true });
    assert.deepEqual(validateDiscoveryExtensionSpec(ext), { valid: true });
    assert.deepEqual(ext.info.input, { type: "http", method: "GET", queryParams: { city: "Paris" } });
    assert.deepEqual(ext.info.output, { type: "json", example: { city: "Paris", temperatureC: 21 } });
    // The schema carries the configured inputSchema and outputSchema: examples that break them fail.
    const broken = structuredClone(ext);
    broken.info.input.queryParams = { city: 42 };
    assert.equal(validateDiscoveryExtension(broken).valid, false);
    const noCity = structuredClone(ext);
    noCity.info.input.queryParams = {};
    assert.equal(validateDiscoveryExtension(noCity).valid, false);
    const badOutput = structuredClone(ext);
    badOutput.info.output.example = { temperatureC: "warm" };
    assert.equal(validateDiscoveryExtension(badOutput).valid, false);
  });

  test("POST route (bodyType json): the bazaar extension validates; its schema holds the body schema", async () => {
    const ext = await bazaar("/api/ask", "POST");
    assert.deepEqual(validateDiscoveryExtension(ext), { valid: true });
    assert.deepEqual(validateDiscoveryExtensionSpec(ext), { valid: true });
    assert.deepEqual(ext.info.input, { type: "http", method: "POST", bodyType: "json", body: { question: "What is x402?", maxWords: 50 } });
    const broken = structuredClone(ext);
    broken.info.input.body = { maxWords: 0 };
    assert.equal(validateDiscoveryExtension(broken).valid, false);
    const get = structuredClone(ext);
    get.info.input.method = "GET";
    assert.equal(validateDiscoveryExtension(get).valid, false);
  });

  // What a cataloguing facilitator makes of a payment: the official client builds the payload from
  // the 402 (the payload is caught before it is sent, so nothing is paid) and the official
  // extension reads it as a facilitator does at /verify and /settle.
  async function catalogued(p) {
    let payload;
    const catching = async (input, init) => {
      const request = new Request(input, init);
      const sent = request.headers.get("payment-signature");
      if (!sent) return fetch(request);
      payload = decodeHeader(sent);
      return new Response("caught", { status: 200 });
    };
    const res = await payingFetch(stack, 0, { fetch: catching })(`${worker.url}${p}`, {
      headers: { "user-agent": "curl/8.5.0" },
    });
    assert.equal(res.status, 200);
    await res.arrayBuffer();
    assert.ok(payload, `${p}: the official client built a payment`);
    return extractDiscoveryInfo(payload, payload.accepted);
  }

  test("a route with a wildcard is catalogued once, by its route template, as the official extension names it", async () => {
    const one = await catalogued("/articles/one");
    const two = await catalogued("/articles/two?x=1");
    assert.equal(one.routeTemplate, "/articles/:var1");
    assert.equal(one.resourceUrl, `${worker.url}/articles/:var1`);
    assert.equal(two.resourceUrl, one.resourceUrl, "two articles, one catalogue entry");
    assert.equal(one.method, "GET");
    assert.ok(one.discoveryInfo, "the description validated");
    // A route without parameters is its own path.
    const weather = await catalogued("/api/weather?city=Paris");
    assert.equal(weather.routeTemplate, undefined);
    assert.equal(weather.resourceUrl, `${worker.url}/api/weather`);
  });

  test("a hidden route still charges but describes itself nowhere", async () => {
    const res = await worker.fetch("/hidden/x", { headers: { "user-agent": "curl/8.5.0" } });
    assert.equal(res.status, 402);
    await res.arrayBuffer();
    assert.equal(decodeHeader(res.headers.get("payment-required")).extensions?.bazaar, undefined);
  });
});

describe("publisher statistics and decision logs", () => {
  const A = 4;
  const B = 5;
  const paid = [];

  async function pay(i, p, method = "GET") {
    const res = await payingFetch(stack, i)(`${statsWorker.url}${p}`, { method });
    const text = await res.text();
    assert.equal(res.status, 200, text);
    const receipt = decodeHeader(res.headers.get("payment-response"));
    assert.equal(receipt.success, true);
    paid.push({ i, path: p, method, receipt });
    return receipt;
  }

  async function stats(token = ADMIN) {
    return statsWorker.fetch("/__x402/admin/stats", token ? { headers: { authorization: `Bearer ${token}` } } : {});
  }

  test("the stats reflect exactly the payments made, to the cent", async () => {
    const day = new Date().toISOString().slice(0, 10);
    const payTo = await stack.balanceOf(stack.accounts.payTo.address);
    // 3 × $0.01 on GET /news/* by two payers, 1 × $0.02 on POST /news/*; 1 × $0.005 on /data/*
    // (deferred) buying a session.
    await pay(A, "/news/a");
    await pay(B, "/news/b");
    await pay(A, "/news/c");
    await pay(A, "/news/e", "POST");
    await pay(B, "/data/report");
    // A refused payment is not counted.
    const challenge = await statsWorker.fetch("/news/d");
    const terms = decodeHeader(challenge.headers.get("payment-required")).accepts[0];
    await challenge.arrayBuffer();
    const refused = await statsWorker.fetch("/news/d", {
      headers: { "payment-signature": encodeHeader(await signPayment(terms, stack.payer(A).privateKey, { over: { value: "9999" } })) },
    });
    assert.equal(refused.status, 402);
    await refused.arrayBuffer();

    const a = privateKeyToAccount(stack.payer(A).privateKey).address.toLowerCase();
    const b = privateKeyToAccount(stack.payer(B).privateKey).address.toLowerCase();
    const want = {
      payments: 5,
      deferredPayments: 1,
      revenueMicroUsd: "55000",
      revenue: "$0.055",
      sessionsSold: 1,
      routes: [
        { route: "/data/*", payments: 1, revenueMicroUsd: "5000", revenue: "$0.005", sessions: 1, days: [{ day, payments: 1, revenueMicroUsd: "5000", revenue: "$0.005", sessions: 1 }] },
        { route: "GET /news/*", payments: 3, revenueMicroUsd: "30000", revenue: "$0.03", sessions: 0, days: [{ day, payments: 3, revenueMicroUsd: "30000", revenue: "$0.03", sessions: 0 }] },
        { route: "POST /news/*", payments: 1, revenueMicroUsd: "20000", revenue: "$0.02", sessions: 0, days: [{ day, payments: 1, revenueMicroUsd: "20000", revenue: "$0.02", sessions: 0 }] },
      ],
      days: [{ day, payments: 5, revenueMicroUsd: "55000", revenue: "$0.055", sessions: 1 }],
      topPayers: [
        { payer: a, payments: 3, revenueMicroUsd: "40000", revenue: "$0.04", sessions: 0 },
        { payer: b, payments: 2, revenueMicroUsd: "15000", revenue: "$0.015", sessions: 1 },
      ],
    };
    const wantSettled = { pending: 0, settled: 5, failed: 0, unsettledMicroUsd: "0", owedMicroUsd: "0", lostMicroUsd: "0", unanswered: [], cursor: null };
    // Stats are recorded off the request path, and the deferred payment settles in a batch: poll.
    const deadline = Date.now() + 25_000;
    let got;
    let sawPending = false;
    for (;;) {
      const res = await stats();
      assert.equal(res.status, 200);
      got = await res.json();
      const { settlements, ...rest } = got;
      let ok = true;
      try {
        assert.deepEqual(rest, want);
        assert.deepEqual(settlements, wantSettled);
      } catch (err) {
        ok = false;
        if (Date.now() > deadline) throw err;
      }
      if (ok) break;
      // While the deferred payment waits for its batch, the books must still add up.
      const s = got.settlements;
      if (s && got.payments === 5) assert.ok(s.pending + s.settled + s.failed <= 5 && s.failed === 0, JSON.stringify(s));
      if (s?.pending === 1 && s.settled === 4 && s.unsettledMicroUsd === "5000") sawPending = true;
      await sleep(250);
    }
    assert.ok(sawPending, "the deferred payment was seen pending ($0.005 unsettled) before its batch settled");
    // And the money on chain is the revenue.
    assert.equal((await stack.balanceOf(stack.accounts.payTo.address)) - payTo, 55000n);
  });

  test("settlement was pending before the batch and the deferred receipt had no transaction yet", () => {
    const deferred = paid.find((p) => p.path === "/data/report");
    assert.equal(deferred.receipt.transaction, "", "accepted, settlement pending");
    for (const p of paid.filter((x) => x.path.startsWith("/news/"))) assert.match(p.receipt.transaction, /^0x[0-9a-f]{64}$/);
  });

  test("every payment is one structured JSON log line: event, payer, route, amount, outcome", async () => {
    const payments = logs.stats.filter((l) => l.event === "payment");
    const want = paid.map((p) => ({
      event: "payment",
      outcome: p.path.startsWith("/data/") ? "accepted_deferred" : "settled",
      payer: stack.payer(p.i).address,
      route: p.path.startsWith("/data/") ? "/data/*" : "/news/*",
      network: stack.network,
      amount: p.path.startsWith("/data/") ? "5000" : p.method === "POST" ? "20000" : "10000",
      detail: p.receipt.transaction,
    }));
    assert.deepEqual(payments, want, "one line per payment, in order");
    assert.ok(
      logs.stats.every((l) => !("text" in l) || !/"event"/.test(l.text)),
      "every decision line is a single parseable JSON line",
    );
  });

  test("a refused payment is logged as a decision too; the terms sent to a request without one are not", () => {
    const refusal = logs.stats.find((l) => l.event === "refusal" && l.route === "/news/*" && l.outcome === "refused");
    assert.ok(refusal, JSON.stringify(logs.stats));
    assert.equal(typeof refusal.reason, "string");
    assert.notEqual(refusal.reason, "payment_required");
    assert.ok(refusal.status >= 400);
    // Every payment above began with a 402 to a request that carried nothing: routine, and not
    // logged unless the configuration says `log = "all"`.
    assert.equal(logs.stats.filter((l) => l.reason === "payment_required").length, 0, JSON.stringify(logs.stats));
  });

  test('with log = "all", the terms sent to a request without a payment are logged too', async () => {
    const from = logs.main.length;
    const res = await worker.fetch("/members/x");
    assert.equal(res.status, 402);
    await res.arrayBuffer();
    const line = await logLine(logs.main, from, (l) => l.event === "refusal" && l.reason === "payment_required");
    assert.equal(line.route, "/members/*");
    assert.equal(line.status, 402);
  });

  test("the admin endpoint wants the token; the HTML page is served", async () => {
    const none = await stats(null);
    assert.equal(none.status, 401);
    assert.equal(none.headers.get("www-authenticate"), "Bearer");
    assert.equal((await none.json()).error, "unauthorized");
    const wrong = await stats("not-the-token");
    assert.equal(wrong.status, 401);
    await wrong.arrayBuffer();
    const page = await statsWorker.fetch("/__x402/admin/stats.html");
    assert.equal(page.status, 200);
    assert.match(page.headers.get("content-type"), /^text\/html/);
    const html = await page.text();
    assert.match(html, /<!doctype html>/i);
    assert.match(html, /Publisher statistics/);
    assert.match(html, /<svg id="chart"/);
    assert.doesNotMatch(html, /35000|0\.035/, "the page itself holds no data");
  });
});
