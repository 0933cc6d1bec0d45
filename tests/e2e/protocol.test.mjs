// Complete and strict x402, black-box: both protocol generations paying one route, one refusal per
// reason with no money moved, smart-wallet signatures sent to the facilitator, a facilitator that
// misbehaves in every way it can, /supported respected, and HTTP manners (CORS, HEAD, patterns).
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, test } from "node:test";
import {
  ADMIN_TOKEN,
  decodeHeader,
  encodeHeader,
  legacyClient,
  legacyPayingFetch,
  payingFetch,
  startFaultyFacilitator,
  startStack,
  startWorker,
} from "./harness.mjs";
import { signPayment } from "./lib/sign.mjs";

const PRICE = 10000n;
const LONG_DESCRIPTION = "A report described at length, as publishers sometimes do. ".repeat(85).trim();
let stack, worker;

// Chain id 84532 gives the local chain a v1 name ("base-sepolia"), so that the legacy client pays too.
before(async () => {
  await legacyClient();
  stack = await startStack({ chainId: 84532 });
  worker = await startWorker({
    config: stack.config({
      routes: [
        { path: "/articles/*", price: "$0.01", description: "An article", mimeType: "text/html" },
        { path: "/api/users/:id/report", method: "GET", price: "2500", mimeType: "application/json" },
        // Base mainnet is configured too, but the local facilitator cannot settle it: never offered.
        { path: "/both", price: "$0.01", accepts: [stack.network, "eip155:8453"] },
        // A description of 5,000 characters, which the official client repeats in its payment.
        { path: "/echo/long", price: "$0.01", description: LONG_DESCRIPTION, mimeType: "application/json" },
        // Terms of 8,191 bytes of JSON (the scope counted), one under the most a route may have, with a sign-in
        // challenge (a session) and the payment identifier: what the official client repeats.
        { path: "/echo/full/*", price: "$0.01", description: "A".repeat(7184), mimeType: "application/json", session: { seconds: 600 }, paymentIdentifier: "optional" },
        // Rails and Spring serve /echo/report.json as /echo/report.
        { path: "/echo/report", method: "GET", price: "2500", mimeType: "application/json" },
      ],
    }),
    durableObjects: false,
  });
});
after(async () => {
  await worker?.dispose();
  await stack?.stop();
});

const balances = async (i) => ({
  payer: await stack.balanceOf(stack.payer(i).address),
  payTo: await stack.balanceOf(stack.accounts.payTo.address),
});

async function terms(path = "/articles/hello") {
  const res = await worker.fetch(path);
  assert.equal(res.status, 402);
  return { v2: decodeHeader(res.headers.get("payment-required")), v1: await res.json() };
}

describe("both generations on one 402", () => {
  test("the 402 carries v2 terms in the header and a v1 body a legacy client can parse", async () => {
    const { v2, v1 } = await terms();
    assert.equal(v2.x402Version, 2);
    assert.equal(v2.accepts[0].network, "eip155:84532");
    assert.equal(v1.x402Version, 1);
    assert.equal(v1.accepts.length, 1);
    const [entry] = v1.accepts;
    assert.equal(entry.network, "base-sepolia");
    assert.equal(entry.maxAmountRequired, String(PRICE));
    assert.equal(entry.resource, `${worker.url}/articles/hello`);
    assert.equal(typeof entry.mimeType, "string");
    assert.equal(entry.outputSchema, undefined, "null would break the legacy client's schema");
    assert.deepEqual(entry.extra, { name: "USD Coin", version: "2" });
  });

  test("the official v2 client pays once: PAYMENT-RESPONSE, balances move by exactly the price", async () => {
    const before = await balances(0);
    const res = await payingFetch(stack, 0)(`${worker.url}/articles/hello`);
    assert.equal(res.status, 200);
    const receipt = decodeHeader(res.headers.get("payment-response"));
    assert.equal(receipt.success, true);
    assert.match(receipt.transaction, /^0x[0-9a-f]{64}$/);
    const after = await balances(0);
    assert.equal(before.payer - after.payer, PRICE);
    assert.equal(after.payTo - before.payTo, PRICE);
  });

  test("the legacy v1 client (x402-fetch 1.x) pays once: X-PAYMENT-RESPONSE, balances move by exactly the price", async () => {
    const before = await balances(1);
    const pay = await legacyPayingFetch(stack, 1);
    const res = await pay(`${worker.url}/articles/edge-economics`);
    assert.equal(res.status, 200, await res.clone().text());
    assert.match(await res.text(), /economics of the edge/);
    const receipt = decodeHeader(res.headers.get("x-payment-response"));
    assert.equal(receipt.success, true);
    assert.match(receipt.transaction, /^0x[0-9a-f]{64}$/);
    const after = await balances(1);
    assert.equal(before.payer - after.payer, PRICE);
    assert.equal(after.payTo - before.payTo, PRICE);
  });

  test("an offer the facilitator cannot settle is never advertised, nor accepted", async () => {
    const { v2 } = await terms("/both");
    assert.deepEqual(v2.accepts.map((a) => a.network), [stack.network]);
    const base = { ...v2.accepts[0], network: "eip155:8453", asset: "0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913" };
    const res = await worker.fetch("/both", {
      headers: { "payment-signature": encodeHeader(await signPayment(base, stack.payer(2).privateKey)) },
    });
    assert.equal(res.status, 402);
    assert.equal((await res.json()).reason, "network_mismatch");
  });
});

/** A fetch that records the length of each payment header it sends. */
const watchingSignatures = (sent) => (input, init) => {
  const headers = new Headers(input instanceof Request ? input.headers : init?.headers);
  if (headers.has("payment-signature")) sent.push(headers.get("payment-signature").length);
  return fetch(input, init);
};

describe("a payment that repeats long terms", () => {
  test("the official client's payment for a route with a long description (over 8 KiB once encoded) is taken", async () => {
    const sent = [];
    const watching = watchingSignatures(sent);
    const before = await balances(0);
    const res = await payingFetch(stack, 0, { fetch: watching })(`${worker.url}/echo/long`);
    assert.equal(res.status, 200, await res.clone().text());
    await res.arrayBuffer();
    assert.equal(sent.length, 1);
    assert.ok(sent[0] > 8192 && sent[0] <= 16384, `a payment header of ${sent[0]} bytes`);
    const after = await balances(0);
    assert.equal(before.payer - after.payer, PRICE);
    assert.equal(after.payTo - before.payTo, PRICE);
  });

  test("terms at the most a configuration may hold, with a sign-in challenge and a 500-character path, still fit: the official client pays", async () => {
    const sent = [];
    const watching = watchingSignatures(sent);
    const path = `/echo/full/${"p".repeat(489)}`;
    assert.equal(path.length, 500);
    // Node's HTTP client, which the official client uses, reads 16 KiB of headers at most, all of
    // them together: the 402's terms must leave room for the others too.
    const unpaid = await worker.fetch(path);
    const offered = unpaid.headers.get("payment-required").length;
    assert.ok(offered <= 15 * 1024, `a 402 whose PAYMENT-REQUIRED holds ${offered} bytes`);
    const { v2 } = await terms(path);
    assert.ok(v2.extensions["sign-in-with-x"] && v2.extensions["payment-identifier"], "a challenge and an identifier offered");
    const before = await balances(0);
    const res = await payingFetch(stack, 0, { fetch: watching })(`${worker.url}${path}`);
    assert.equal(res.status, 200, await res.clone().text());
    await res.arrayBuffer();
    assert.equal(sent.length, 1);
    assert.ok(sent[0] > 12288 && sent[0] <= 16384, `a payment header of ${sent[0]} bytes`);
    console.log(`terms at the limit and a 500-character path: PAYMENT-REQUIRED ${offered} bytes, PAYMENT-SIGNATURE ${sent[0]}`);
    const after = await balances(0);
    assert.equal(before.payer - after.payer, PRICE);
    assert.equal(after.payTo - before.payTo, PRICE);
  });
});

describe("how long an authorization may stay valid", () => {
  test("a payment signed for an hour, as the official Go client signs whatever the terms say, is served and settled", async () => {
    const { v2 } = await terms();
    assert.equal(v2.accepts[0].maxTimeoutSeconds, 300);
    const before = await balances(5);
    const now = Math.floor(Date.now() / 1000);
    const payment = await signPayment(v2.accepts[0], stack.payer(5).privateKey, { over: { validBefore: String(now + 3600) } });
    const res = await worker.fetch("/articles/hello", { headers: { "payment-signature": encodeHeader(payment) } });
    assert.equal(res.status, 200, await res.clone().text());
    assert.equal(decodeHeader(res.headers.get("payment-response")).success, true);
    const after = await balances(5);
    assert.equal(before.payer - after.payer, PRICE);
    assert.equal(after.payTo - before.payTo, PRICE);
  });
});

describe("one refusal per reason, none of which moves money", () => {
  const key = () => stack.payer(3).privateKey;
  const now = () => Math.floor(Date.now() / 1000);
  const hdr = (p) => ({ "payment-signature": encodeHeader(p) });
  // [name, status, reason, build(terms) -> headers]
  const cases = [
    ["no payment", 402, "payment_required", async () => ({})],
    ["oversized header", 431, "header_too_large", async () => ({ "payment-signature": "A".repeat(16385) })],
    ["not base64", 400, "invalid_base64", async () => ({ "payment-signature": "***" })],
    ["not JSON", 400, "invalid_json", async () => ({ "payment-signature": Buffer.from("{nope").toString("base64") })],
    ["wrong shape", 400, "invalid_payload_shape", async () => hdr({ x402Version: 2, accepted: 5, payload: {} })],
    ["unknown version", 400, "unsupported_x402_version", async () => hdr({ x402Version: 3, payload: {} })],
    ["scheme upto", 402, "unsupported_scheme", async (t) => hdr(await signPayment({ ...t, scheme: "upto" }, key()))],
    ["another network", 402, "network_mismatch", async (t) => hdr(await signPayment({ ...t, network: "eip155:1" }, key()))],
    ["another token", 402, "asset_mismatch", async (t) => hdr(await signPayment({ ...t, asset: "0x0000000000000000000000000000000000000bad" }, key()))],
    ["accepted payTo changed", 402, "pay_to_mismatch", async (t) => hdr(await signPayment({ ...t, payTo: stack.payer(4).address }, key()))],
    ["accepted amount lowered", 402, "price_mismatch", async (t) => hdr(await signPayment({ ...t, amount: "1" }, key()))],
    ["accepted timeout changed", 402, "terms_mismatch", async (t) => hdr(await signPayment({ ...t, maxTimeoutSeconds: 60 }, key()))],
    ["authorization pays someone else", 402, "recipient_mismatch", async (t) => hdr(await signPayment(t, key(), { over: { to: stack.payer(4).address } }))],
    ["authorization value too low", 402, "value_mismatch", async (t) => hdr(await signPayment(t, key(), { over: { value: "9999" } }))],
    ["not valid yet", 402, "authorization_not_yet_valid", async (t) => hdr(await signPayment(t, key(), { over: { validAfter: String(now() + 120) } }))],
    ["expires too soon", 402, "authorization_expires_too_soon", async (t) => hdr(await signPayment(t, key(), { over: { validBefore: String(now() + 5) } }))],
    ["valid for too long", 402, "authorization_valid_too_long", async (t) => hdr(await signPayment(t, key(), { over: { validBefore: String(now() + 86400) } }))],
    ["nonce of 31 bytes", 402, "invalid_nonce", async (t) => {
      const p = await signPayment(t, key());
      p.payload.authorization.nonce = `0x${randomBytes(31).toString("hex")}`;
      return hdr(p);
    }],
    ["from is not an address", 402, "invalid_address", async (t) => {
      const p = await signPayment(t, key());
      p.payload.authorization.from = "0x1234";
      return hdr(p);
    }],
    ["value in hex", 402, "invalid_number", async (t) => {
      const p = await signPayment(t, key());
      p.payload.authorization.value = "0x2710";
      return hdr(p);
    }],
    ["high-s signature", 402, "invalid_signature_format", async (t) => {
      const p = await signPayment(t, key());
      const sig = Buffer.from(p.payload.signature.slice(2), "hex");
      const n = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n;
      const s = BigInt(`0x${sig.subarray(32, 64).toString("hex")}`);
      sig.set(Buffer.from((n - s).toString(16).padStart(64, "0"), "hex"), 32);
      sig[64] = sig[64] === 27 ? 28 : 27;
      p.payload.signature = `0x${sig.toString("hex")}`;
      return hdr(p);
    }],
    ["signed over another chain", 402, "signer_mismatch", async (t) => hdr(await signPayment(t, key(), { domain: { chainId: 8453 } }))],
    ["smart-wallet signature the facilitator rejects", 402, "facilitator_rejected", async (t) => {
      const p = await signPayment(t, key());
      p.payload.signature = `0x${randomBytes(130).toString("hex")}`;
      return hdr(p);
    }],
  ];
  for (const [name, status, reason, build] of cases) {
    test(`${name} → ${status} ${reason}`, async () => {
      const { v2 } = await terms();
      const before = await balances(3);
      const res = await worker.fetch("/articles/hello", { headers: await build(v2.accepts[0]) });
      assert.equal(res.status, status);
      const body = await res.json();
      assert.equal(body.reason, reason, body.message);
      assert.equal(typeof body.error, "string");
      assert.ok(body.message.endsWith(")") || body.message.endsWith("."), body.message);
      const again = decodeHeader(res.headers.get("payment-required"));
      assert.equal(again.error, body.error, "the terms carry the same x402 reason");
      assert.deepEqual(await balances(3), before, "no money moved");
    });
  }
});

describe("HTTP manners", () => {
  test("a CORS preflight for a priced page allows the payment headers", async () => {
    const res = await worker.fetch("/articles/hello", {
      method: "OPTIONS",
      headers: { origin: "https://reader.example", "access-control-request-method": "GET", "access-control-request-headers": "payment-signature" },
    });
    assert.equal(res.status, 204);
    assert.match(res.headers.get("access-control-allow-headers"), /PAYMENT-SIGNATURE/);
    assert.match(res.headers.get("access-control-allow-headers"), /X-PAYMENT/);
    assert.match(res.headers.get("access-control-allow-headers"), /SIGN-IN-WITH-X/);
  });

  test("402s expose the terms and receipt headers to browsers and are never cached", async () => {
    const res = await worker.fetch("/articles/hello");
    assert.match(res.headers.get("access-control-expose-headers"), /PAYMENT-REQUIRED/);
    assert.match(res.headers.get("access-control-expose-headers"), /PAYMENT-RESPONSE/);
    assert.equal(res.headers.get("access-control-allow-origin"), "*");
    assert.equal(res.headers.get("cache-control"), "no-store");
  });

  test("HEAD on a priced page gets the 402 terms without a body", async () => {
    const res = await worker.fetch("/articles/hello", { method: "HEAD" });
    assert.equal(res.status, 402);
    assert.ok(decodeHeader(res.headers.get("payment-required")).accepts.length);
    assert.equal((await res.text()).length, 0);
  });

  test("route parameters match one segment; paths are normalised before matching", async () => {
    assert.equal((await worker.fetch("/api/users/42/report")).status, 402);
    assert.equal((await worker.fetch("/API/Users/42/report/")).status, 402);
    assert.equal((await worker.fetch("/%61rticles/hello")).status, 402);
    assert.equal((await worker.fetch(`${worker.url}//articles//hello`)).status, 402);
    assert.equal((await worker.fetch("/api/users/42/report/extra")).status, 404, "unpriced: the origin answers");
    assert.equal((await worker.fetch("/api/users/42/report", { method: "POST" })).status, 404, "the rule is for GET only");
  });

  test("a format suffix on a priced path is priced as the path, and the official client pays it", async () => {
    const { v2 } = await terms("/echo/report.json");
    assert.equal(v2.accepts[0].amount, "2500");
    assert.equal(v2.resource.url, `${worker.url}/echo/report.json`);
    const before = await balances(0);
    const res = await payingFetch(stack, 0)(`${worker.url}/echo/report.json`);
    assert.equal(res.status, 200, await res.clone().text());
    assert.equal(JSON.parse(await res.text()).path, "/echo/report.json", "the origin is asked for the path as sent");
    const after = await balances(0);
    assert.equal(before.payer - after.payer, 2500n);
    assert.equal(after.payTo - before.payTo, 2500n);
  });
});

describe("a facilitator that misbehaves is survived, and nothing is served unpaid", () => {
  // [status, reason] for a GET (settled after the origin answers), then for a POST (verified by
  // the facilitator before the origin is asked).
  const unavailable = [502, "verification_unavailable"];
  const expected = {
    http400: [402, "settlement_failed", 402, "facilitator_rejected"],
    "http400-plain": [402, "settlement_failed", ...unavailable],
    http500: [502, "facilitator_unavailable", ...unavailable],
    garbage: [502, "facilitator_unavailable", ...unavailable],
    "wrong-shape": [502, "facilitator_unavailable", ...unavailable],
    hang: [502, "facilitator_unavailable", ...unavailable],
    refuse: [502, "facilitator_unavailable", ...unavailable],
  };
  for (const [mode, [status, reason, postStatus, postReason]] of Object.entries(expected)) {
    test(`${mode} → ${status} ${reason}; a POST → ${postStatus} ${postReason}, the origin not asked`, async () => {
      const faulty = await startFaultyFacilitator({ mode, chainId: stack.chainId });
      const w = await startWorker({
        config: stack.config({ facilitator: { url: faulty.url, timeoutMs: 1500 } }),
        durableObjects: false,
      });
      try {
        const { v2 } = await (async () => {
          const r = await w.fetch("/articles/hello");
          return { v2: decodeHeader(r.headers.get("payment-required")) };
        })();
        const before = await balances(4);
        const res = await w.fetch("/articles/hello", {
          headers: { "payment-signature": encodeHeader(await signPayment(v2.accepts[0], stack.payer(4).privateKey)) },
        });
        assert.equal(res.status, status);
        const text = await res.text();
        assert.doesNotMatch(text, /Hello, paid web/, "the article is not served");
        assert.equal(JSON.parse(text).reason, reason);
        const path = `/articles/order-${mode}`;
        const settleCalls = () => faulty.calls.filter((c) => c.path === "/settle").length;
        const settlesBefore = settleCalls();
        const post = await w.fetch(path, {
          method: "POST",
          body: "qty=1",
          headers: { "payment-signature": encodeHeader(await signPayment(v2.accepts[0], stack.payer(4).privateKey)) },
        });
        assert.equal(post.status, postStatus);
        assert.equal((await post.json()).reason, postReason);
        assert.equal(stack.origin.hits.filter((h) => h.path === path).length, 0, "the origin was not asked");
        assert.equal(settleCalls(), settlesBefore, "nothing was sent to be settled");
        if (mode !== "refuse") assert.ok(faulty.calls.some((c) => c.path === "/verify"), "the facilitator was asked to verify");
        assert.deepEqual(await balances(4), before);
      } finally {
        await w.dispose();
        await faulty.stop();
      }
    });
  }
});

describe("a settlement whose answer is lost after the transfer was sent", () => {
  test("the client is not told that nothing was charged, and the ledger books the payment from the chain", async () => {
    const faulty = await startFaultyFacilitator({ mode: "receipt-lost", chainId: stack.chainId, forwardTo: stack.facilitator.url });
    const ADMIN = ADMIN_TOKEN;
    const w = await startWorker({
      config: stack.config({ facilitator: { url: faulty.url, timeoutMs: 10_000 }, rpc: { [stack.network]: stack.rpcUrl } }),
      secrets: { X402_ADMIN_TOKEN: ADMIN },
    });
    try {
      const t = decodeHeader((await w.fetch("/articles/hello")).headers.get("payment-required")).accepts[0];
      const before = await balances(6);
      const payment = encodeHeader(await signPayment(t, stack.payer(6).privateKey));
      const res = await w.fetch("/articles/hello", { headers: { "payment-signature": payment } });
      const text = await res.text();
      assert.doesNotMatch(text, /Hello, paid web/, "the article is not served");
      const body = JSON.parse(text);
      assert.equal(res.status, 502);
      assert.equal(body.reason, "facilitator_unavailable", body.message);
      assert.match(body.message, /may have moved/);
      assert.doesNotMatch(body.message, /nothing should have been charged/);
      // The transfer did happen: exactly one payment's worth moved.
      const after = await balances(6);
      assert.equal(before.payer - after.payer, PRICE);
      assert.equal(after.payTo - before.payTo, PRICE);
      // The ledger reads the chain and books it settled (charged, not served: a refund is due).
      const view = async () => {
        const r = await w.fetch(`/__x402/admin/ledger?wallet=${stack.payer(6).address}`, { headers: { authorization: `Bearer ${ADMIN}` } });
        assert.equal(r.status, 200);
        return r.json();
      };
      const deadline = Date.now() + 20_000;
      let v = await view();
      while (v.settled.length === 0) {
        assert.ok(Date.now() < deadline, `booked from the chain: ${JSON.stringify(v)}`);
        await new Promise((r) => setTimeout(r, 200));
        v = await view();
      }
      assert.equal(v.settled.length, 1);
      assert.equal(v.failed.length, 0, "not booked as failed");
      assert.equal(v.settled[0].amount, String(PRICE));
      // The same payment again is a replay: refused, and nothing more moves.
      const again = await w.fetch("/articles/hello", { headers: { "payment-signature": payment } });
      assert.equal(again.status, 402);
      assert.doesNotMatch(await again.text(), /Hello, paid web/);
      assert.deepEqual(await balances(6), after);
    } finally {
      await w.dispose();
      await faulty.stop();
    }
  });
});

describe("a facilitator that wants a bearer token", () => {
  test("gets the X402_FACILITATOR_TOKEN secret on every call, and /supported too", async () => {
    const faulty = await startFaultyFacilitator({ mode: "http400", chainId: stack.chainId });
    const w = await startWorker({
      config: stack.config({ facilitator: { url: faulty.url, timeoutMs: 1500 } }),
      secrets: { X402_FACILITATOR_TOKEN: "facilitator-secret" },
      durableObjects: false,
    });
    try {
      const terms = decodeHeader((await w.fetch("/articles/hello")).headers.get("payment-required"));
      const res = await w.fetch("/articles/hello", {
        headers: { "payment-signature": encodeHeader(await signPayment(terms.accepts[0], stack.payer(5).privateKey)) },
      });
      assert.equal(res.status, 402);
      const settle = faulty.calls.find((c) => c.path === "/settle");
      assert.ok(settle, "the settlement was attempted");
      assert.equal(settle.headers.authorization, "Bearer facilitator-secret");
      const supported = faulty.calls.find((c) => c.path === "/supported");
      assert.ok(supported, "/supported was asked");
      assert.equal(supported.headers.authorization, "Bearer facilitator-secret");
    } finally {
      await w.dispose();
      await faulty.stop();
    }
  });
});
