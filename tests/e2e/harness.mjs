// What the black-box tests import: a whole local stack on free loopback ports (anvil + the real USDC,
// the official facilitator, the demo origin), the built Worker under Miniflare 4 on a real port, and
// the official x402 clients set up to pay it. Tests in parallel files never share a port.
import { createHash } from "node:crypto";
import { mkdir, readFile, rename, writeFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import assert from "node:assert/strict";
import { Miniflare, Log, LogLevel } from "miniflare";
import { privateKeyToAccount } from "viem/accounts";
import { wrapFetchWithPayment, x402Client } from "@x402/fetch";
import { registerExactEvmScheme } from "@x402/evm/exact/client";
import {
  accounts,
  authorizationState,
  cancelAuthorization,
  mineBlocks,
  transferWithAuthorization,
  sendAuthorization,
  balanceOf,
  chainTime,
  deployUsdc,
  increaseTime,
  installMulticall3,
  setNextBlockTimestamp,
  startAnvil,
  transferUsdc,
  USDC,
} from "../../scripts/lib/chain.mjs";
import { startFacilitator, startFaultyFacilitator, v1NetworksFor } from "../../scripts/lib/facilitator.mjs";
import { startOrigin } from "../../scripts/lib/origin.mjs";

export { accounts, startFacilitator, startFaultyFacilitator, startOrigin, USDC };

/** An admin token long enough for the admin interface to open (32 characters at least). */
export const ADMIN_TOKEN = "admin-token-of-the-black-box-tests";

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

// wrangler.toml, read by wrangler's own parser. Importing wrangler takes about a second, so the result
// is cached under node_modules/.cache, keyed by the file's hash.
let wranglerConfig;
export function readWranglerConfig() {
  wranglerConfig ??= (async () => {
    const file = path.join(ROOT, "wrangler.toml");
    const hash = createHash("sha256").update(await readFile(file)).digest("hex").slice(0, 16);
    const cache = path.join(ROOT, "node_modules/.cache/x402-edge", `wrangler-${hash}.json`);
    try {
      return JSON.parse(await readFile(cache, "utf8"));
    } catch {
      /* not cached yet */
    }
    process.env.WRANGLER_SEND_METRICS ??= "false";
    process.env.CLOUDFLARE_CF_FETCH_ENABLED ??= "false";
    const { experimental_readRawConfig } = await import("wrangler");
    const { rawConfig } = experimental_readRawConfig({ config: file });
    await mkdir(path.dirname(cache), { recursive: true });
    const tmp = `${cache}.${process.pid}`;
    await writeFile(tmp, JSON.stringify(rawConfig));
    await rename(tmp, cache);
    return rawConfig;
  })();
  return wranglerConfig;
}

/**
 * Starts anvil (fresh chain), deploys USDC and funds the payers, puts Multicall3 in its place,
 * starts the official facilitator (unless facilitator: false) and the demo origin. chainId 84532
 * makes the legacy v1 name "base-sepolia" usable (see v1Networks). walletFactories: the factories
 * the facilitator may call to deploy a counterfactual (ERC-6492) wallet before settling its
 * payment. verbose: true logs facilitator and origin calls, "all" also anvil's RPC log. Returns
 * the stack; stop() tears it all down.
 */
export async function startStack({ facilitator = true, verbose = false, chainId = 31337, walletFactories = [] } = {}) {
  const started = performance.now();
  const configPromise = readWranglerConfig();
  const starting = await Promise.allSettled([
    startAnvil({ chainId, verbose: verbose === "all" }),
    startOrigin({ verbose: Boolean(verbose) }),
  ]);
  const parts = starting.filter((s) => s.status === "fulfilled").map((s) => s.value);
  const [chain, origin] = starting.map((s) => s.value);
  try {
    const failed = starting.find((s) => s.status === "rejected");
    if (failed) throw failed.reason;
    const [usdc] = await Promise.all([deployUsdc(chain.rpcUrl), installMulticall3(chain.rpcUrl)]);
    const fac = facilitator
      ? await startFacilitator({ rpcUrl: chain.rpcUrl, chainId, walletFactories, verbose: Boolean(verbose) })
      : null;
    if (fac) parts.unshift(fac);
    const wrangler = await configPromise;
    const rpcUrl = chain.rpcUrl;
    const network = `eip155:${chainId}`;
    let stopped = false;

    const stack = {
      rpcUrl,
      chainId,
      network,
      v1Networks: v1NetworksFor(chainId),
      usdc,
      accounts,
      facilitator: fac,
      origin,
      wrangler,
      startMs: performance.now() - started,
      balanceOf: (address) => balanceOf(rpcUrl, usdc, address),
      payer: (i = 0) => accounts.payers[i],
      /** USDC balances of payer #i and of the payee. */
      async balances(i) {
        const [payer, payTo] = await Promise.all([balanceOf(rpcUrl, usdc, accounts.payers[i].address), balanceOf(rpcUrl, usdc, accounts.payTo.address)]);
        return { payer, payTo };
      },
      /** Asserts that, since `before` (from balances(i)), payer #i paid exactly `amount` and the payee received it. */
      async assertMoved(before, i, amount) {
        const now = await stack.balances(i);
        assert.equal(before.payer - now.payer, amount, "the payer paid exactly this");
        assert.equal(now.payTo - before.payTo, amount, "the publisher received exactly this");
      },
      /** A Worker configuration for this stack, shaped like [vars.X402], shallow-merged with overrides. */
      config(overrides = {}) {
        const base = structuredClone(wrangler.vars?.X402 ?? {});
        return {
          ...base,
          payTo: accounts.payTo.address,
          accepts: [network],
          origin: origin.url,
          ...(fac ? { facilitator: { ...(base.facilitator ?? {}), url: fac.url } } : { facilitator: undefined }),
          assets: [{ network, address: usdc, ...USDC }],
          ...overrides,
        };
      },
      chain: {
        time: () => chainTime(rpcUrl),
        increaseTime: (seconds) => increaseTime(rpcUrl, seconds),
        mineBlocks: (count) => mineBlocks(rpcUrl, count),
        setNextBlockTimestamp: (timestamp) => setNextBlockTimestamp(rpcUrl, timestamp),
        authorizationState: (authorizer, nonce) => authorizationState(rpcUrl, usdc, authorizer, nonce),
        transferUsdc: (fromKey, to, amount) => transferUsdc(rpcUrl, usdc, fromKey, to, amount),
        cancelAuthorization: (authorizerKey, nonce) => cancelAuthorization(rpcUrl, usdc, authorizerKey, nonce),
        transferWithAuthorization: (fromKey, to, value, nonce) => transferWithAuthorization(rpcUrl, usdc, fromKey, to, value, nonce),
        sendAuthorization: (senderKey, authorization, signature) => sendAuthorization(rpcUrl, usdc, senderKey, authorization, signature),
      },
      async stop() {
        if (stopped) return;
        stopped = true;
        await Promise.all(parts.map((p) => p.stop()));
      },
    };
    return stack;
  } catch (err) {
    await Promise.all(parts.map((p) => p.stop()));
    throw err;
  }
}

/**
 * Runs the built Worker (build/entry.mjs, as wrangler.toml's `main`) under Miniflare 4 on a real 127.0.0.1 port.
 *   config         the X402 binding (see stack.config())
 *   secrets        extra string bindings, e.g. { X402_ADMIN_TOKEN: ADMIN_TOKEN, X402_SESSION_SECRET: "s" }
 *   persistDir     keep KV and Durable Object state there (across startWorker calls)
 *   port           the port to listen on (default: any free one); a Worker started again on its
 *                  predecessor's port serves the same URLs, which payments are bound to
 *   twin           also run a second copy of the Worker, in its own isolate, sharing the first's
 *                  KV namespace and Durable Objects, as two isolates of one deployment do: its own
 *                  { url, fetch } is returned as `twin`
 *   scriptPath     the entry module (default: the build's); modulesRoot: where module names start, for an
 *                  entry that imports the build from elsewhere (a stand-in, tests/e2e/lib/ledger-faults.mjs)
 *   durableObjects false for none; an object { BINDING: "ClassName" | {className, useSQLite} };
 *                  default { LEDGER: "Ledger", STATS: "Stats" }
 *   cf             request.cf for every request (default false: Miniflare's placeholder, which carries
 *                  botManagement { score: 99, verifiedBot: false }); {} is a zone without Bot Management
 *   ratelimits     Workers rate limiting bindings, as Miniflare takes them:
 *                  { X402_RATE_LIMIT: { namespace_id: "1", simple: { limit, period } } }
 *   onLog          receives every line the Worker logs, as { timestamp, level, message } (workerd's
 *                  structured logs); the Worker's console is then not echoed to this process's output
 * Returns { url, fetch(path, init), mf, kv(), dispose() }.
 */
export async function startWorker({
  config,
  secrets = {},
  persistDir,
  port = 0,
  durableObjects,
  scriptPath = path.join(ROOT, "build/entry.mjs"),
  modulesRoot,
  verbose = false,
  onLog,
  cf = false,
  ratelimits,
  twin = false,
} = {}) {
  const wrangler = await readWranglerConfig();
  const bindings = { X402: JSON.parse(JSON.stringify(config ?? {})), ...secrets };
  const objects = {};
  if (durableObjects !== false) {
    for (const [binding, spec] of Object.entries(durableObjects ?? { LEDGER: "Ledger", STATS: "Stats" })) {
      const className = typeof spec === "string" ? spec : spec.className;
      objects[binding] = { className, useSQLite: true, ...(typeof spec === "object" ? spec : {}) };
    }
  }
  const worker = {
    scriptPath,
    modules: true,
    ...(modulesRoot ? { modulesRoot } : {}),
    modulesRules: [{ type: "CompiledWasm", include: ["**/*.wasm"] }, { type: "ESModule", include: ["**/*.js", "**/*.mjs"] }],
    compatibilityDate: wrangler.compatibility_date,
    compatibilityFlags: wrangler.compatibility_flags ?? [],
    bindings,
    kvNamespaces: { X402_KV: "X402_KV" },
    durableObjects: objects,
    ...(ratelimits ? { ratelimits } : {}),
  };
  // The twin binds the first one's Durable Object classes: one ledger per wallet, as deployed.
  const twinObjects = Object.fromEntries(Object.entries(objects).map(([b, o]) => [b, { ...o, scriptName: "x402" }]));
  const mf = new Miniflare({
    ...(twin
      ? {
          workers: [
            { name: "x402", ...worker },
            { name: "twin", ...worker, durableObjects: twinObjects, unsafeDirectSockets: [{ host: "127.0.0.1", port: 0 }] },
          ],
        }
      : worker),
    cf,
    host: "127.0.0.1",
    port,
    ...(persistDir
      ? { kvPersist: path.join(persistDir, "kv"), durableObjectsPersist: path.join(persistDir, "do") }
      : {}),
    log: new Log(verbose ? LogLevel.DEBUG : LogLevel.WARN),
    ...(onLog ? { handleStructuredLogs: onLog } : {}),
  });
  let url;
  try {
    url = await mf.ready;
  } catch (err) {
    await mf.dispose().catch(() => {});
    throw err;
  }
  const twinUrl = twin ? (await mf.unsafeGetDirectURL("twin")).href.replace(/\/$/, "") : null;
  return {
    url: url.href.replace(/\/$/, ""),
    ...(twin ? { twin: { url: twinUrl, fetch: (p, init) => fetch(new URL(p, twinUrl), init) } } : {}),
    mf,
    fetch: (p, init) => fetch(new URL(p, url), init),
    kv: () => mf.getKVNamespace("X402_KV"),
    dispose: () => mf.dispose(),
  };
}

/**
 * A STAND-IN in front of `target` (a real part): every request goes through
 * `handle(req, body, forward)`, where `forward(body?)` sends it on (with its body, or another) and
 * gives { status, body }; `handle` returns what to answer. Returns { url, stop() } (the object may
 * carry the test's own notes).
 */
export async function startProxy(target, handle) {
  const http = await import("node:http");
  const server = http.createServer(async (req, res) => {
    const chunks = [];
    for await (const chunk of req) chunks.push(chunk);
    const body = Buffer.concat(chunks).toString();
    const forward = async (sent = body) => {
      const r = await fetch(target + req.url, {
        method: req.method,
        headers: { "content-type": req.headers["content-type"] ?? "application/json" },
        body: req.method === "GET" || req.method === "HEAD" ? undefined : sent,
      });
      return { status: r.status, body: await r.text() };
    };
    const answer = await handle(req, body, forward).catch((err) => ({ status: 599, body: String(err) }));
    res.writeHead(answer.status, { "content-type": "application/json" });
    res.end(answer.body);
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const proxy = {
    url: `http://127.0.0.1:${server.address().port}`,
    stop: () => new Promise((resolve) => {
      server.closeAllConnections();
      server.close(resolve);
    }),
  };
  return proxy;
}

/** The official v2 client (@x402/fetch) paying as payer #payerIndex, allowed to spend the local USDC. */
export function payingFetch(stack, payerIndex = 0, { fetch: baseFetch = globalThis.fetch } = {}) {
  const account = privateKeyToAccount(accounts.payers[payerIndex].privateKey);
  const client = new x402Client();
  registerExactEvmScheme(client, { signer: account });
  client.setSpendControls({ allowedAssets: [{ network: stack.network, asset: stack.usdc }] });
  return wrapFetchWithPayment(baseFetch, client);
}

/**
 * The legacy v1 client (x402-fetch@1.2.0) paying as payer #payerIndex. It signs for legacy network
 * names only, so the stack must run a chain that has one: startStack({ chainId: 84532 }) ("base-sepolia").
 */
export async function legacyPayingFetch(stack, payerIndex = 0, { fetch: baseFetch = globalThis.fetch, maxValue } = {}) {
  if (!stack.v1Networks.length) {
    throw new Error(`chain ${stack.chainId} has no x402 v1 name; start the stack with { chainId: 84532 }`);
  }
  const { wrapFetchWithPayment: wrapV1 } = await legacyClient();
  const account = privateKeyToAccount(accounts.payers[payerIndex].privateKey);
  // A failure to reach the Worker says why (undici's "fetch failed" alone does not).
  const reporting = (input, init) =>
    baseFetch(input, init).catch((err) => {
      const cause = err?.cause ? ` (${[err.cause.code, err.cause.message].filter(Boolean).join(": ")})` : "";
      throw new Error(`${err?.message ?? err}${cause}`, { cause: err });
    });
  return wrapV1(reporting, account, maxValue);
}

/**
 * The legacy client's module, loaded once. Its first load compiles a large module graph, seconds
 * on a loaded machine, during which this process handles no network events; a test file that uses
 * it calls this in `before`, so that no request waits behind that pause.
 */
let legacy;
export function legacyClient() {
  legacy ??= import("x402-fetch");
  return legacy;
}

/** Decodes a base64 JSON header (PAYMENT-REQUIRED, PAYMENT-RESPONSE, X-PAYMENT...). */
export function decodeHeader(b64) {
  if (b64 == null) return null;
  return JSON.parse(Buffer.from(b64, "base64").toString("utf8"));
}

/** Encodes an object the way x402 headers carry it (standard base64 of compact JSON). */
export function encodeHeader(value) {
  return Buffer.from(JSON.stringify(value), "utf8").toString("base64");
}
