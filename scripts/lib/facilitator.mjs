// The official x402 facilitator (x402Facilitator from @x402/core + the exact EVM scheme from
// @x402/evm), served over HTTP on loopback: GET /supported, POST /verify, POST /settle.
// It verifies against and settles on the local chain, paying gas with anvil account #2.
//
// Also here, clearly separate: startFaultyFacilitator, a STAND-IN that produces on demand the
// faults a real facilitator cannot (HTTP errors, garbage, hangs, nothing listening).
//
//   node scripts/lib/facilitator.mjs --rpc http://127.0.0.1:8545 --port 4021 [--quiet]
//     [--wallet-factory 0x… (a factory it may call to deploy an ERC-6492 wallet; repeatable)]
import http from "node:http";
import { fileURLToPath } from "node:url";
import { x402Facilitator } from "@x402/core/facilitator";
import { toFacilitatorEvmSigner } from "@x402/evm";
import { ExactEvmScheme } from "@x402/evm/exact/facilitator";
import { ExactEvmSchemeV1 } from "@x402/evm/exact/v1/facilitator";
import { EVM_NETWORK_CHAIN_ID_MAP } from "@x402/evm/v1";
import { chainIdOf, facilitatorSigner, walletClientFor } from "./chain.mjs";

/** The legacy (x402 v1) network names the library maps to this chain id; none for 31337. */
export function v1NetworksFor(chainId) {
  return Object.entries(EVM_NETWORK_CHAIN_ID_MAP)
    .filter(([, id]) => id === chainId)
    .map(([name]) => name);
}

/**
 * The library facilitator for one chain, with settlements serialised (one gas account).
 * `walletFactories`: the factories it may call to deploy a counterfactual (ERC-6492) wallet before
 * settling its payment (the library's `eip6492AllowedFactories`; none by default, as there).
 */
export async function createFacilitator({ rpcUrl, chainId, walletFactories = [] }) {
  chainId ??= await chainIdOf(rpcUrl);
  const client = await walletClientFor(rpcUrl, facilitatorSigner.privateKey);
  // toFacilitatorEvmSigner reads client.address, which a viem wallet client does not have.
  const signer = toFacilitatorEvmSigner({ ...client, address: client.account.address });
  const options = { eip6492AllowedFactories: walletFactories };
  const facilitator = new x402Facilitator().register(`eip155:${chainId}`, new ExactEvmScheme(signer, options));
  const v1Networks = v1NetworksFor(chainId);
  if (v1Networks.length > 0) facilitator.registerV1(v1Networks, new ExactEvmSchemeV1(signer, options));

  let queue = Promise.resolve();
  const settle = (payload, requirements) => {
    const run = queue.then(() => facilitator.settle(payload, requirements));
    queue = run.catch(() => {});
    return run;
  };
  return {
    chainId,
    v1Networks,
    supported: () => facilitator.getSupported(),
    verify: (payload, requirements) => facilitator.verify(payload, requirements),
    settle,
  };
}

/**
 * Serves the official facilitator on 127.0.0.1:port (0 = free port).
 * Returns { url, port, calls, settlements(), stop(), start() }: stop() closes it (new connections
 * refused, open ones dropped; a settlement already sent to the chain still lands), start() listens
 * again on the same port; `calls` keeps every verify/settle across restarts.
 */
export async function startFacilitator({ rpcUrl, port = 0, chainId, walletFactories, verbose = false } = {}) {
  const facilitator = await createFacilitator({ rpcUrl, chainId, walletFactories });
  const calls = [];
  const log = (line) => verbose && console.log(`[facilitator] ${line}`);

  const handler = async (req, res) => {
    const started = performance.now();
    const url = new URL(req.url, "http://x");
    const done = (status, body, summary) => {
      sendJson(res, status, body);
      log(`${req.method} ${url.pathname} ${status} ${summary} ${Math.round(performance.now() - started)}ms`);
    };
    try {
      if (req.method === "GET" && url.pathname === "/supported") {
        const supported = facilitator.supported();
        return done(200, supported, supported.kinds.map((k) => `v${k.x402Version}:${k.network}`).join(","));
      }
      const kind = req.method === "POST" && { "/verify": "verify", "/settle": "settle" }[url.pathname];
      if (!kind) return done(404, { error: `no route ${req.method} ${url.pathname}` }, "");

      let body;
      try {
        body = JSON.parse(await readBody(req));
      } catch {
        return done(400, { error: "body is not JSON" }, "bad body");
      }
      const { paymentPayload, paymentRequirements } = body ?? {};
      if (!isObject(paymentPayload) || !isObject(paymentRequirements)) {
        return done(400, { error: "body needs paymentPayload and paymentRequirements objects" }, "bad body");
      }
      const call = {
        kind,
        x402Version: paymentPayload.x402Version,
        network: paymentRequirements.network,
        payer: paymentPayload.payload?.authorization?.from,
        nonce: paymentPayload.payload?.authorization?.nonce,
        request: body,
        at: Date.now(),
      };
      calls.push(call);
      try {
        call.result = await facilitator[kind](paymentPayload, paymentRequirements);
      } catch (err) {
        call.error = err.message;
        call.ms = performance.now() - started;
        return done(500, { error: err.message }, `exception: ${err.message}`);
      }
      call.ok = kind === "verify" ? call.result.isValid : call.result.success;
      call.ms = performance.now() - started;
      const r = call.result;
      const summary = call.ok
        ? `ok payer=${r.payer ?? call.payer}${r.transaction ? ` tx=${r.transaction}` : ""}`
        : `FAILED ${r.invalidReason ?? r.errorReason ?? ""} ${r.invalidMessage ?? r.errorMessage ?? ""}`.trim();
      return done(200, r, summary);
    } catch (err) {
      return done(500, { error: err.message }, `exception: ${err.message}`);
    }
  };

  const server = new Listener(handler);
  const actualPort = await server.listen(port);
  log(`listening on http://127.0.0.1:${actualPort} for eip155:${facilitator.chainId}` +
    (facilitator.v1Networks.length ? ` (v1: ${facilitator.v1Networks.join(", ")})` : ""));
  return {
    url: `http://127.0.0.1:${actualPort}`,
    port: actualPort,
    chainId: facilitator.chainId,
    v1Networks: facilitator.v1Networks,
    signer: facilitatorSigner.address,
    calls,
    /** Settlements that succeeded so far. */
    settlements: () => calls.filter((c) => c.kind === "settle" && c.ok),
    get running() {
      return server.running;
    },
    stop: () => server.close(),
    start: () => server.listen(actualPort),
  };
}

// ---- the stand-in for faults ---------------------------------------------------------------------

export const FAULT_MODES = ["http400", "http400-plain", "http500", "garbage", "wrong-shape", "hang", "refuse", "receipt-lost"];

/**
 * A STAND-IN facilitator that misbehaves on purpose on POST /verify and /settle (mode: one of
 * FAULT_MODES). GET /supported answers normally for `chainId` unless `breakSupported` is set, then it
 * misbehaves the same way. "refuse" listens nowhere: its url points at a closed port.
 * "receipt-lost" passes every call to the real facilitator at `forwardTo`, and after a settlement
 * (which really happened) answers as the library does when its wait for the receipt fails:
 * success false, `unexpected_settle_error`.
 * Returns { url, port, mode, calls, stop() }.
 */
export async function startFaultyFacilitator({ mode, port = 0, chainId = 31337, breakSupported = false, forwardTo } = {}) {
  if (!FAULT_MODES.includes(mode)) throw new Error(`unknown fault mode ${mode}; one of ${FAULT_MODES.join(", ")}`);
  if (mode === "receipt-lost" && !forwardTo) throw new Error("receipt-lost needs forwardTo, a real facilitator's URL");
  const calls = [];
  if (mode === "refuse") {
    const closed = port || (await freePort());
    return { url: `http://127.0.0.1:${closed}`, port: closed, mode, calls, stop: async () => {} };
  }
  const handler = async (req, res) => {
    const url = new URL(req.url, "http://x");
    const body = req.method === "POST" ? await readBody(req) : "";
    calls.push({ method: req.method, path: url.pathname, headers: req.headers, body, at: Date.now() });
    if (req.method === "GET" && url.pathname === "/supported" && !breakSupported) {
      return sendJson(res, 200, {
        kinds: [{ x402Version: 2, scheme: "exact", network: `eip155:${chainId}` }],
        extensions: [],
        signers: { "eip155:*": ["0x000000000000000000000000000000000000fa17"] },
      });
    }
    let parsed = {};
    try {
      parsed = JSON.parse(body);
    } catch {
      /* the fault does not depend on it */
    }
    const payer = parsed?.paymentPayload?.payload?.authorization?.from;
    const network = parsed?.paymentRequirements?.network ?? `eip155:${chainId}`;
    switch (mode) {
      case "http400":
        return sendJson(res, 400, url.pathname === "/settle"
          ? { success: false, errorReason: "invalid_payload", errorMessage: "stand-in: rejected", transaction: "", network, payer }
          : { isValid: false, invalidReason: "invalid_payload", invalidMessage: "stand-in: rejected", payer });
      case "http400-plain":
        return sendJson(res, 400, { errorType: "invalid_request", errorMessage: "stand-in: request does not match any schema" });
      case "http500":
        return sendJson(res, 500, { error: "stand-in: internal error" });
      case "garbage":
        res.writeHead(200, { "content-type": "application/json" });
        return res.end("<html>this is not JSON {");
      case "wrong-shape":
        return sendJson(res, 200, { ok: true, status: "done" });
      case "hang":
        return; // never answer; stop() drops the connection
      case "receipt-lost": {
        const real = await fetch(`${forwardTo}${url.pathname}`, { method: "POST", headers: { "content-type": "application/json" }, body });
        const answer = await real.text();
        if (url.pathname !== "/settle") {
          res.writeHead(real.status, { "content-type": "application/json" });
          return res.end(answer);
        }
        return sendJson(res, 200, {
          success: false,
          errorReason: "unexpected_settle_error",
          errorMessage: "stand-in: the transaction was sent; waiting for its receipt failed",
          transaction: "",
          network,
          payer,
        });
      }
    }
  };
  const server = new Listener(handler);
  const actualPort = await server.listen(port);
  return { url: `http://127.0.0.1:${actualPort}`, port: actualPort, mode, calls, stop: () => server.close() };
}

// ---- small HTTP plumbing -------------------------------------------------------------------------

/** An http.Server on 127.0.0.1 that can be closed (dropping open connections) and listen again. */
class Listener {
  constructor(handler) {
    this.handler = handler;
    this.server = null;
  }
  get running() {
    return this.server !== null;
  }
  async listen(port) {
    if (this.server) return this.server.address().port;
    const server = http.createServer((req, res) => this.handler(req, res));
    server.keepAliveTimeout = 5000;
    await new Promise((resolve, reject) => {
      server.once("error", reject);
      server.listen(port, "127.0.0.1", resolve);
    });
    this.server = server;
    return server.address().port;
  }
  async close() {
    const server = this.server;
    if (!server) return;
    this.server = null;
    const closed = new Promise((resolve) => server.close(resolve));
    server.closeAllConnections();
    await closed;
  }
}

export async function freePort() {
  const server = http.createServer();
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    let data = "";
    req.setEncoding("utf8");
    req.on("data", (chunk) => (data += chunk));
    req.on("end", () => resolve(data));
    req.on("error", reject);
  });
}

function sendJson(res, status, body) {
  const text = JSON.stringify(body, (_, v) => (typeof v === "bigint" ? v.toString() : v));
  res.writeHead(status, { "content-type": "application/json" });
  res.end(text);
}

const isObject = (v) => typeof v === "object" && v !== null && !Array.isArray(v);

// ---- CLI -----------------------------------------------------------------------------------------

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { values } = (await import("node:util")).parseArgs({
    options: {
      rpc: { type: "string", default: "http://127.0.0.1:8545" },
      port: { type: "string", default: "4021" },
      quiet: { type: "boolean", default: false },
      "wallet-factory": { type: "string", multiple: true, default: [] },
    },
  });
  const f = await startFacilitator({
    rpcUrl: values.rpc,
    port: Number(values.port),
    walletFactories: values["wallet-factory"],
    verbose: !values.quiet,
  });
  console.log(`facilitator ${f.url} (chain ${f.chainId} via ${values.rpc}, gas paid by ${f.signer})`);
  const shutdown = async () => {
    await f.stop();
    process.exit(0);
  };
  process.on("SIGINT", shutdown);
  process.on("SIGTERM", shutdown);
}
