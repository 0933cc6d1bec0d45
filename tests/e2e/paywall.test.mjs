// The walking skeleton, black-box: the built Worker in workerd, in front of the demo origin, paid by
// the official x402 client, verified by us, settled by the official facilitator on a local chain
// with the real USDC contract. Money is checked on chain.
import assert from "node:assert/strict";
import { createServer } from "node:net";
import { after, before, describe, test } from "node:test";
import { decodeHeader, encodeHeader, payingFetch, startStack, startWorker } from "./harness.mjs";
import { signPayment } from "./lib/sign.mjs";

let stack, worker;
const PRICE = 10000n; // "$0.01" in wrangler.toml's /articles/* rule

before(async () => {
  stack = await startStack();
  worker = await startWorker({ config: stack.config(), durableObjects: false });
});
after(async () => {
  await worker?.dispose();
  await stack?.stop();
});

async function termsFor(path) {
  const res = await worker.fetch(path);
  assert.equal(res.status, 402);
  return decodeHeader(res.headers.get("payment-required"));
}

describe("free routes", () => {
  test("an unpriced path passes through to the origin untouched", async () => {
    const res = await worker.fetch("/echo/some/where?x=1&y=two", {
      method: "POST",
      headers: { "x-custom": "kept", "content-type": "text/plain" },
      body: "hello origin",
    });
    assert.equal(res.status, 200);
    const echo = await res.json();
    assert.equal(echo.method, "POST");
    assert.equal(echo.path, "/echo/some/where");
    assert.deepEqual(echo.query, { x: "1", y: "two" });
    assert.equal(echo.headers["x-custom"], "kept");
    assert.equal(echo.body, "hello origin");
    assert.equal(res.headers.get("payment-required"), null);
    assert.equal(res.headers.get("payment-response"), null);
  });

  test("the home page is free", async () => {
    const res = await worker.fetch("/");
    assert.equal(res.status, 200);
    assert.match(await res.text(), /article/i);
  });

  test("an origin out of reach: free requests get our JSON 502 origin_unavailable, not the runtime's error page", async () => {
    // A port that was just free: nothing listens there.
    const probe = createServer();
    await new Promise((r) => probe.listen(0, "127.0.0.1", r));
    const closed = `http://127.0.0.1:${probe.address().port}`;
    await new Promise((r) => probe.close(r));
    const w = await startWorker({ config: stack.config({ origin: closed }), durableObjects: false });
    try {
      for (const method of ["GET", "POST"]) {
        const res = await w.fetch("/echo/anything", { method, body: method === "POST" ? "x" : undefined });
        assert.equal(res.status, 502, method);
        assert.match(res.headers.get("content-type") ?? "", /application\/json/);
        const body = await res.json();
        assert.equal(body.reason, "origin_unavailable");
        assert.match(body.message, /could not be reached/);
        assert.doesNotMatch(body.message, /payment/);
      }
      const head = await w.fetch("/echo/anything", { method: "HEAD" });
      assert.equal(head.status, 502);
      assert.equal(await head.text(), "");
      // A priced page still answers its terms without asking the origin.
      assert.equal((await w.fetch("/articles/hello")).status, 402);
    } finally {
      await w.dispose();
    }
  });
});

describe("a priced route", () => {
  test("answers 402 with v2 terms the official client can read", async () => {
    const res = await worker.fetch("/articles/hello");
    assert.equal(res.status, 402);
    assert.equal(res.headers.get("cache-control"), "no-store");
    const terms = decodeHeader(res.headers.get("payment-required"));
    assert.equal(terms.x402Version, 2);
    assert.equal(terms.resource.url, `${worker.url}/articles/hello`);
    assert.equal(terms.accepts.length, 1);
    const [offer] = terms.accepts;
    assert.deepEqual(offer, {
      scheme: "exact",
      network: stack.network,
      amount: String(PRICE),
      asset: stack.usdc,
      payTo: stack.accounts.payTo.address,
      maxTimeoutSeconds: 300,
      extra: { name: "USD Coin", version: "2" },
    });
    const body = await res.json();
    assert.equal(body.reason, "payment_required");
    assert.match(body.message, /costs money/);
  });

  test("the official client pays, gets the article, and exactly the price moves on chain", async () => {
    const before = await stack.balances(0);
    const res = await payingFetch(stack, 0)(`${worker.url}/articles/hello`);
    assert.equal(res.status, 200);
    assert.match(await res.text(), /Hello, paid web/);
    const receipt = decodeHeader(res.headers.get("payment-response"));
    assert.equal(receipt.success, true);
    assert.match(receipt.transaction, /^0x[0-9a-f]{64}$/);
    assert.equal(receipt.network, stack.network);
    await stack.assertMoved(before, 0, PRICE);
  });

  test("the origin learns who paid, and never sees the payment header", async () => {
    const terms = await termsFor("/articles/echo-check");
    const res = await worker.fetch("/articles/echo-check", {
      headers: {
        "payment-signature": encodeHeader(await signPayment(terms.accepts[0], stack.payer(1).privateKey)),
        "x402-payer": "0x0000000000000000000000000000000000000001",
      },
    });
    // The demo origin has no such article: a 404 is passed on, and nobody pays for it.
    assert.equal(res.status, 404);
    const hit = stack.origin.hits.at(-1);
    assert.equal(hit.headers["x402-payer"], stack.payer(1).address);
    assert.equal(hit.headers["payment-signature"], undefined);
  });
});

describe("tampered payments are refused and move no money", () => {
  const cases = [
    ["changed amount", async (t) => signPayment(t, stack.payer(2).privateKey, { over: { value: "1" } }), "value_mismatch"],
    ["changed recipient", async (t) => signPayment(t, stack.payer(2).privateKey, { over: { to: stack.payer(3).address } }), "recipient_mismatch"],
    [
      "signed by another key",
      async (t) => {
        const p = await signPayment(t, stack.payer(3).privateKey);
        p.payload.authorization.from = stack.payer(2).address;
        return p;
      },
      "signer_mismatch",
    ],
    [
      "value altered after signing",
      async (t) => {
        const p = await signPayment(t, stack.payer(2).privateKey);
        p.payload.authorization.validAfter = String(Number(p.payload.authorization.validAfter) - 1);
        return p;
      },
      "signer_mismatch",
    ],
    [
      "expired",
      async (t) => {
        const now = Math.floor(Date.now() / 1000);
        return signPayment(t, stack.payer(2).privateKey, { over: { validAfter: String(now - 900), validBefore: String(now - 60) } });
      },
      "authorization_expires_too_soon",
    ],
  ];
  for (const [name, make, reason] of cases) {
    test(name, async () => {
      const terms = await termsFor("/articles/hello");
      const before = await stack.balances(2);
      const settles = stack.facilitator.calls.length;
      const res = await worker.fetch("/articles/hello", {
        headers: { "payment-signature": encodeHeader(await make(terms.accepts[0])) },
      });
      assert.equal(res.status, 402);
      const body = await res.json();
      assert.equal(body.reason, reason, body.message);
      assert.ok(body.message.length > 10);
      const again = decodeHeader(res.headers.get("payment-required"));
      assert.equal(again.accepts[0].amount, String(PRICE));
      assert.doesNotMatch(await (await worker.fetch("/articles/hello")).text(), /Hello, paid web/);
      assert.equal(stack.facilitator.calls.length, settles, "the facilitator was not even asked");
      assert.deepEqual(await stack.balances(2), before);
    });
  }
});

describe("malformed payment headers get a 4xx with a reason, never a 5xx", () => {
  const cases = [
    ["not base64", "%%%not base64%%%", 400, "invalid_base64"],
    ["base64 of text", Buffer.from("hello").toString("base64"), 400, "invalid_json"],
    ["a JSON array", encodeHeader([1, 2, 3]), 400, "invalid_payload_shape"],
    ["no payload", encodeHeader({ x402Version: 2, accepted: {} }), 400, "invalid_payload_shape"],
    ["unknown version", encodeHeader({ x402Version: 9, payload: {} }), 400, "unsupported_x402_version"],
    ["oversized", "A".repeat(17000), 431, "header_too_large"],
  ];
  for (const [name, header, status, reason] of cases) {
    test(name, async () => {
      const res = await worker.fetch("/articles/hello", { headers: { "payment-signature": header } });
      assert.equal(res.status, status);
      const body = await res.json();
      assert.equal(body.reason, reason);
      assert.ok(res.headers.get("payment-required"), "the terms come with the refusal");
    });
  }
});
