// The facilitator's authentication: with a CDP API key (CDP_API_KEY_ID, CDP_API_KEY_SECRET) every
// call to the facilitator carries a fresh JWT signed by the Worker, as CDP's facilitator demands.
//
// CDP itself cannot run here, so its gateway is a STAND-IN: a proxy in front of the real
// facilitator that checks each call's token as CDP documents it (the signature against the key's
// public half, kid, nonce, iss, sub, the 120-second window, and the one `METHOD host/path` it is
// for), refuses with 401 what fails, and forwards the rest. The money still moves on the local
// chain, through the official facilitator.
//   node_modules/.bin/node --test tests/e2e/facilitator-auth.test.mjs
import assert from "node:assert/strict";
import crypto from "node:crypto";
import http from "node:http";
import { after, before, describe, test } from "node:test";
import { decodeHeader, payingFetch, startStack, startWorker } from "./harness.mjs";

const KEY_ID = "organizations/local-test/apiKeys/edge";

/** A CDP-style Ed25519 secret: base64 of the seed and the public key. */
function ed25519Key() {
  const { privateKey, publicKey } = crypto.generateKeyPairSync("ed25519");
  const jwk = privateKey.export({ format: "jwk" });
  const secret = Buffer.concat([Buffer.from(jwk.d, "base64url"), Buffer.from(jwk.x, "base64url")]).toString("base64");
  return { secret, publicKey };
}

/** A CDP-style ECDSA secret: a P-256 key in SEC 1 PEM. */
function ecKey() {
  const { privateKey, publicKey } = crypto.generateKeyPairSync("ec", { namedCurve: "prime256v1" });
  return { secret: privateKey.export({ type: "sec1", format: "pem" }), publicKey };
}

/** The stand-in gateway: checks the token of each call, then forwards it to `upstream`. */
async function startGateway(upstream, publicKey) {
  const calls = [];
  const nonces = new Set();
  const server = http.createServer(async (req, res) => {
    const chunks = [];
    for await (const c of req) chunks.push(c);
    const body = Buffer.concat(chunks);
    const host = req.headers.host;
    const path = new URL(req.url, "http://x").pathname;
    const problem = check(req.headers.authorization, `${req.method} ${host}${path}`);
    calls.push({ method: req.method, path, problem });
    if (problem) {
      res.writeHead(401, { "content-type": "application/json" });
      return res.end(JSON.stringify({ errorType: "unauthorized", errorMessage: problem }));
    }
    const answer = await fetch(upstream + req.url, {
      method: req.method,
      headers: { "content-type": "application/json" },
      body: req.method === "POST" ? body : undefined,
    });
    res.writeHead(answer.status, { "content-type": answer.headers.get("content-type") ?? "application/json" });
    res.end(Buffer.from(await answer.arrayBuffer()));
  });

  function check(authorization, uri) {
    const jwt = /^Bearer (.+)$/.exec(authorization ?? "")?.[1];
    if (!jwt) return "no bearer token";
    const [h, c, s] = jwt.split(".");
    if (!s) return "not a JWS";
    const header = JSON.parse(Buffer.from(h, "base64url"));
    const claims = JSON.parse(Buffer.from(c, "base64url"));
    const signed = Buffer.from(`${h}.${c}`);
    const signature = Buffer.from(s, "base64url");
    const valid =
      header.alg === "EdDSA"
        ? crypto.verify(null, signed, publicKey, signature)
        : header.alg === "ES256" && crypto.verify("sha256", signed, { key: publicKey, dsaEncoding: "ieee-p1363" }, signature);
    if (!valid) return `bad signature (${header.alg})`;
    if (header.kid !== KEY_ID || claims.sub !== KEY_ID) return "wrong key id";
    if (header.typ !== "JWT" || !/^[0-9a-f]{32}$/.test(header.nonce ?? "")) return "bad header";
    if (nonces.has(header.nonce)) return "nonce used before";
    nonces.add(header.nonce);
    if (claims.iss !== "cdp") return "wrong issuer";
    const now = Math.floor(Date.now() / 1000);
    if (!(claims.nbf <= now + 5 && now < claims.exp && claims.exp - claims.nbf <= 120)) return "outside its window";
    if (JSON.stringify(claims.uris) !== JSON.stringify([uri])) return `for ${JSON.stringify(claims.uris)}, not ${uri}`;
    return null;
  }

  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    calls,
    stop: () => new Promise((r) => server.close(r)),
  };
}

describe("a CDP API key signs every call to the facilitator", { timeout: 180_000 }, () => {
  let stack;
  const running = [];
  before(async () => {
    stack = await startStack();
  });
  after(async () => {
    for (const r of running) await r.stop();
    await stack?.stop();
  });

  /** A Worker whose facilitator is a gateway that knows `publicKey`, holding the secret `secret`. */
  async function workerWith(secret, publicKey) {
    const gateway = await startGateway(stack.facilitator.url, publicKey);
    const worker = await startWorker({
      config: stack.config({
        facilitator: { url: gateway.url },
        deferred: { batchSeconds: 1, credit: "full" },
        routes: [
          { path: "/articles/*", price: "$0.01" },
          { path: "/api/*", price: "$0.01", settlement: "deferred" },
        ],
      }),
      secrets: { CDP_API_KEY_ID: KEY_ID, CDP_API_KEY_SECRET: secret },
    });
    running.push(gateway, { stop: () => worker.dispose() });
    return { gateway, worker };
  }

  async function payFor(worker, payer, path) {
    const before = await stack.balanceOf(stack.payer(payer).address);
    const res = await payingFetch(stack, payer)(worker.url + path);
    const text = await res.text();
    return { res, text, moved: before - (await stack.balanceOf(stack.payer(payer).address)) };
  }

  for (const [name, make] of [
    ["Ed25519", ed25519Key],
    ["ECDSA P-256", ecKey],
  ]) {
    test(`${name}: paid and settled through the gateway, each call with its own token`, async () => {
      const { secret, publicKey } = make();
      const { gateway, worker } = await workerWith(secret, publicKey);
      const { res, moved } = await payFor(worker, 0, "/articles/local-chain");
      assert.equal(res.status, 200);
      const receipt = decodeHeader(res.headers.get("payment-response"));
      assert.equal(receipt.success, true);
      assert.match(receipt.transaction, /^0x[0-9a-f]{64}$/);
      assert.equal(moved, 10_000n, "0.01 USDC moved on chain");
      const settles = gateway.calls.filter((c) => c.path === "/settle");
      assert.equal(settles.length, 1);
      assert.deepEqual(gateway.calls.filter((c) => c.problem), [], "every call's token was accepted");
      // What the facilitator settles was asked too, with a GET token.
      assert.ok(gateway.calls.some((c) => c.method === "GET" && c.path === "/supported"));
    });
  }

  test("deferred: the ledger's settlement, off the request path, carries its own token", async () => {
    const { secret, publicKey } = ed25519Key();
    const { gateway, worker } = await workerWith(secret, publicKey);
    const payer = stack.payer(1).address;
    const before = await stack.balanceOf(payer);
    const res = await payingFetch(stack, 1)(worker.url + "/api/weather");
    await res.text();
    assert.equal(res.status, 200);
    assert.equal(decodeHeader(res.headers.get("payment-response")).transaction, "", "served before settlement");
    const deadline = Date.now() + 30_000;
    while ((await stack.balanceOf(payer)) === before && Date.now() < deadline) await new Promise((r) => setTimeout(r, 250));
    assert.equal(before - (await stack.balanceOf(payer)), 10_000n, "settled by the batch");
    assert.ok(gateway.calls.some((c) => c.path === "/settle" && !c.problem));
    assert.deepEqual(gateway.calls.filter((c) => c.problem), []);
  });

  test("a key the gateway does not know: refused, nothing served, nothing moved", async () => {
    const { secret } = ed25519Key();
    const { publicKey: other } = ed25519Key();
    const { gateway, worker } = await workerWith(secret, other);
    const { res, moved } = await payFor(worker, 2, "/articles/local-chain");
    assert.notEqual(res.status, 200);
    assert.equal(res.headers.get("x-origin"), null, "the content was not served");
    assert.equal(moved, 0n);
    const settle = gateway.calls.find((c) => c.path === "/settle");
    assert.match(settle.problem, /bad signature/);
  });
});
