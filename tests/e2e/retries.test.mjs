// A payment sent again after its answer was lost, black-box: the built Worker in workerd in front of
// the demo origin, paid by the official x402 client with the official `payment-identifier` extension
// (an idempotency key in the payment), settled by the official facilitator on a local chain with the
// real USDC. A client that sends the same signed payment again, with its identifier, for the same
// URL, gets the answer it bought, as it was first given, from where the Worker kept it (the origin is
// not asked again), and is charged once; balances are read on chain.
//
//   . scripts/lib/env.sh && node --test tests/e2e/retries.test.mjs
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { x402Client, wrapFetchWithPayment } from "@x402/fetch";
import { registerExactEvmScheme } from "@x402/evm/exact/client";
import { appendPaymentIdentifierToExtensions, generatePaymentId } from "@x402/extensions/payment-identifier";
import { privateKeyToAccount } from "viem/accounts";
import { ADMIN_TOKEN, decodeHeader, encodeHeader, startProxy, startStack, startWorker } from "./harness.mjs";

const PRICE = 10000n; // "$0.01"
const PAYER = 0;
const TX = /^0x[0-9a-f]{64}$/;

let stack, worker;

before(async () => {
  stack = await startStack();
  worker = await startWorker({
    config: stack.config({
      deferred: { batchSeconds: 2, safetyMarginSeconds: 30, creditLimit: "$1.00", credit: "full" },
      routes: [
        { path: "/echo/now/*", price: "$0.01" },
        { path: "/echo/later/*", method: "GET", price: "$0.01", settlement: "deferred" },
        { path: "/echo/strict/*", price: "$0.01", paymentIdentifier: "required" },
        { path: "/echo/plain/*", price: "$0.01", paymentIdentifier: "off" },
      ],
    }),
  });
});
after(async () => {
  await worker?.dispose();
  await stack?.stop();
});

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const hitsOf = (path) => stack.origin.hits.filter((h) => h.path === path).length;

/**
 * The official client paying as PAYER, and, given an identifier, putting it in every payment (the
 * official extension's client helper, in a hook before the payment is made, as its documentation
 * shows).
 */
function client(id) {
  const c = new x402Client();
  registerExactEvmScheme(c, { signer: privateKeyToAccount(stack.payer(PAYER).privateKey) });
  c.setSpendControls({ allowedAssets: [{ network: stack.network, asset: stack.usdc }] });
  if (id) {
    c.onBeforePaymentCreation(async ({ paymentRequired }) => {
      appendPaymentIdentifierToExtensions(paymentRequired.extensions ?? {}, id);
    });
  }
  return c;
}

/**
 * A payment by `client(id)` whose paid answer is lost on the way back: the Worker has done
 * everything (served, charged), the client sees a network error. Returns what the client sent and
 * what the lost answer was.
 */
async function payAndLoseTheAnswer(url, init = {}, { id = generatePaymentId(), offered = true } = {}) {
  const lost = {};
  const losing = async (input, init) => {
    const request = new Request(input, init);
    const payment = request.headers.get("payment-signature");
    const response = await fetch(request);
    if (!payment) return response;
    Object.assign(lost, { payment, status: response.status, body: await response.text(), receipt: response.headers.get("payment-response") });
    throw new TypeError("fetch failed: the connection dropped before the answer arrived");
  };
  await assert.rejects(wrapFetchWithPayment(losing, client(id))(worker.url + url, init), /connection dropped/);
  assert.ok(lost.payment, "the client paid");
  assert.equal(lost.status, 200, lost.body);
  const carried = decodeHeader(lost.payment).extensions?.["payment-identifier"]?.info?.id;
  assert.equal(carried, offered ? id : undefined, "the payment carries its identifier where the route offers one");
  return { ...lost, id };
}

/** A fetch that passes every request on and notes the first payment it sends, in `payment`. */
function watching() {
  const seen = {};
  seen.fetch = (input, init) => {
    const request = new Request(input, init);
    seen.payment ??= request.headers.get("payment-signature") ?? undefined;
    return fetch(request);
  };
  return seen;
}

/**
 * A STAND-IN in front of the real facilitator that lets it settle the first payment it is asked
 * to, and answers 504 instead of its answer (kept as `lost`).
 */
async function losingTheFirstSettlement() {
  const proxy = await startProxy(stack.facilitator.url, async (req, body, forward) => {
    const answer = await forward();
    if (req.url === "/settle" && !proxy.lost && JSON.parse(answer.body).success) {
      proxy.lost = JSON.parse(answer.body);
      return { status: 504, body: '{"error":"stand-in: the answer was lost"}' };
    }
    return answer;
  });
  return proxy;
}

/** The same signed payment sent again, as a client retrying after a lost answer does. */
const sendAgain = (url, payment, init = {}) =>
  worker.fetch(url, { ...init, headers: { ...(init.headers ?? {}), "PAYMENT-SIGNATURE": payment } });

describe("a payment sent again with its identifier", () => {
  test("immediate: the answer it bought, again, receipt included; charged once, the origin asked once", async () => {
    const url = "/echo/now/report?q=1";
    const before = await stack.balances(PAYER);
    const first = await payAndLoseTheAnswer(url);
    await stack.assertMoved(before, PAYER, PRICE);
    assert.equal(hitsOf("/echo/now/report"), 1);

    for (let i = 0; i < 2; i++) {
      const again = await sendAgain(url, first.payment);
      const body = await again.text();
      assert.equal(again.status, 200, body);
      assert.equal(body, first.body, "the very answer the payment bought");
      const receipt = decodeHeader(again.headers.get("payment-response"));
      assert.equal(receipt.success, true);
      assert.match(receipt.transaction, TX);
      assert.equal(receipt.transaction, decodeHeader(first.receipt).transaction, "the same settlement");
      assert.equal(again.headers.get("content-type"), "application/json");
      assert.equal(again.headers.get("cache-control"), "no-store");
    }
    assert.equal(hitsOf("/echo/now/report"), 1, "the origin did the work once");
    await stack.assertMoved(before, PAYER, PRICE);
  });

  test("a POST: the origin's work is done once, and its answer given again", async () => {
    const url = "/echo/now/orders";
    const init = { method: "POST", headers: { "content-type": "application/json" }, body: '{"sku":"tea","n":2}' };
    const before = await stack.balances(PAYER);
    const first = await payAndLoseTheAnswer(url, init);
    assert.equal(JSON.parse(first.body).body, init.body);
    const again = await sendAgain(url, first.payment, init);
    assert.equal(again.status, 200);
    assert.equal(await again.text(), first.body);
    assert.equal(hitsOf("/echo/now/orders"), 1, "one order");
    await stack.assertMoved(before, PAYER, PRICE);
  });

  test("deferred: answered again before its batch settles it and after, settled once", async () => {
    const url = "/echo/later/feed";
    const before = await stack.balances(PAYER);
    const first = await payAndLoseTheAnswer(url);
    assert.equal(decodeHeader(first.receipt).transaction, "", "served before settlement");
    const again = await sendAgain(url, first.payment);
    assert.equal(again.status, 200);
    assert.equal(await again.text(), first.body);
    assert.equal(again.headers.get("payment-response"), first.receipt, "the receipt it was given");

    const deadline = Date.now() + 20_000;
    while ((await stack.balances(PAYER)).payer === before.payer) {
      assert.ok(Date.now() < deadline, "settled by its batch within 20 s");
      await sleep(250);
    }
    const settled = await sendAgain(url, first.payment);
    assert.equal(settled.status, 200);
    assert.equal(await settled.text(), first.body);
    assert.equal(hitsOf("/echo/later/feed"), 1);
    await stack.assertMoved(before, PAYER, PRICE);
  });

  test("while its first request is still being answered: 409 payment_in_progress, then the answer", async () => {
    const url = "/echo/now/slow?delay=2000";
    const before = await stack.balances(PAYER);
    const seen = watching();
    const first = wrapFetchWithPayment(seen.fetch, client(generatePaymentId()))(worker.url + url);
    while (!seen.payment) await sleep(20);
    await sleep(500);
    const payment = seen.payment;
    const early = await sendAgain(url, payment);
    const refusal = await early.json();
    assert.equal(early.status, 409, JSON.stringify(refusal));
    assert.equal(refusal.reason, "payment_in_progress");
    assert.equal(early.headers.get("retry-after"), "1");
    assert.ok(early.headers.get("payment-required"), "with the terms");

    const answered = await first;
    const body = await answered.text();
    assert.equal(answered.status, 200);
    await sleep(200); // the answer is kept off the request path
    const again = await sendAgain(url, payment);
    assert.equal(again.status, 200);
    assert.equal(await again.text(), body);
    assert.equal(hitsOf("/echo/now/slow"), 1);
    await stack.assertMoved(before, PAYER, PRICE);
  });

  test("its settlement's answer lost (nothing served), then found on chain: sent again, the page it paid for, charged once", async () => {
    // The real facilitator settles, and a STAND-IN proxy in front of it answers 504 instead of
    // its answer: the Worker cannot tell whether the money moved, serves nothing, and the ledger
    // reads the chain.
    const lostAnswer = await losingTheFirstSettlement();
    const base = stack.config();
    const w = await startWorker({
      config: stack.config({
        facilitator: { ...base.facilitator, url: lostAnswer.url },
        rpc: { [stack.network]: stack.rpcUrl },
        routes: [{ path: "/echo/owed/*", price: "$0.01" }],
      }),
      secrets: { X402_ADMIN_TOKEN: ADMIN_TOKEN },
    });
    const view = async () => {
      const r = await w.fetch(`/__x402/admin/ledger?wallet=${stack.payer(PAYER).address}`, {
        headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
      });
      assert.equal(r.status, 200);
      return r.json();
    };
    const again = (payment) => w.fetch("/echo/owed/report", { headers: { "PAYMENT-SIGNATURE": payment } });
    try {
      const before = await stack.balances(PAYER);
      const seen = watching();
      const first = await wrapFetchWithPayment(seen.fetch, client(generatePaymentId()))(w.url + "/echo/owed/report");
      const payment = seen.payment;
      const told = await first.json();
      assert.equal(first.status, 502, JSON.stringify(told));
      assert.equal(told.reason, "facilitator_unavailable");
      assert.equal(told.method, undefined, "nothing served");
      assert.ok(lostAnswer.lost, "the facilitator settled it");
      await stack.assertMoved(before, PAYER, PRICE);

      // While the chain is being read: come back in a moment (not a replay, which would have the
      // client pay again).
      const early = await again(payment);
      const wait = await early.json();
      assert.equal(early.status, 409, JSON.stringify(wait));
      assert.equal(wait.reason, "payment_in_progress");

      // Found on chain: charged, its content owed, as the publisher's view says.
      const deadline = Date.now() + 30_000;
      let owed;
      while (!(owed = (await view()).settled.find((e) => e.unserved))) {
        assert.ok(Date.now() < deadline, "settled by a chain read within 30 s");
        await sleep(250);
      }
      assert.equal(owed.transaction, lostAnswer.lost.transaction, "the transaction that paid");

      const served = await again(payment);
      const body = await served.text();
      assert.equal(served.status, 200, body);
      assert.equal(JSON.parse(body).path, "/echo/owed/report", "the page it paid for");
      const receipt = decodeHeader(served.headers.get("payment-response"));
      assert.equal(receipt.success, true);
      assert.equal(receipt.transaction, lostAnswer.lost.transaction, "the settlement that paid for it");
      assert.equal(served.headers.get("cache-control"), "no-store");
      // Served, and the ledger told so (off the request path, a moment later).
      const soon = Date.now() + 10_000;
      let after;
      while ((after = await view()).settled[0].unserved) {
        assert.ok(Date.now() < soon, "the ledger learns that it was served");
        await sleep(100);
      }
      assert.equal(after.settled.length, 1);

      // Sent once more: the answer kept for it, the origin not asked again.
      const hits = hitsOf("/echo/owed/report");
      await sleep(200); // the answer is kept off the request path
      const kept = await again(payment);
      assert.equal(kept.status, 200);
      assert.equal(await kept.text(), body);
      assert.equal(hitsOf("/echo/owed/report"), hits);
      await stack.assertMoved(before, PAYER, PRICE);
    } finally {
      await w.dispose();
      await lostAnswer.stop();
    }
  });

  test("given to a repeat whose Worker then died: the next repeat gets the page once that request's time is over, charged once", async () => {
    // STAND-INs for faults no real part produces on demand: the settlement's answer lost in
    // front of the real facilitator (as above), and the real origin behind a proxy that keeps the
    // request given the payment waiting, while the Worker serving it is stopped.
    const lostAnswer = await losingTheFirstSettlement();
    const origin = await startProxy(stack.origin.url, async (req, body, forward) => {
      if (!origin.holding) return forward();
      origin.held = true;
      return new Promise(() => {});
    });
    const dir = await mkdtemp(path.join(os.tmpdir(), "x402-retries-"));
    const base = stack.config();
    const originTimeoutSeconds = 3;
    const start = (port) =>
      startWorker({
        port,
        config: stack.config({
          facilitator: { ...base.facilitator, url: lostAnswer.url },
          rpc: { [stack.network]: stack.rpcUrl },
          origin: origin.url,
          originTimeoutSeconds,
          routes: [{ path: "/echo/gone/*", price: "$0.01" }],
        }),
        secrets: { X402_ADMIN_TOKEN: ADMIN_TOKEN },
        persistDir: dir,
      });
    let w = await start();
    const entry = async () => {
      const r = await w.fetch(`/__x402/admin/ledger?wallet=${stack.payer(PAYER).address}`, {
        headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
      });
      assert.equal(r.status, 200);
      return (await r.json()).settled[0];
    };
    const again = (payment) => w.fetch("/echo/gone/story", { headers: { "PAYMENT-SIGNATURE": payment } });
    try {
      const before = await stack.balances(PAYER);
      const seen = watching();
      const first = await wrapFetchWithPayment(seen.fetch, client(generatePaymentId()))(w.url + "/echo/gone/story");
      assert.equal(first.status, 502, await first.text());
      const deadline = Date.now() + 30_000;
      while (!(await entry())?.unserved) {
        assert.ok(Date.now() < deadline, "found settled on chain within 30 s");
        await sleep(250);
      }

      // Given to a repeat, whose Worker stops while the origin works on it.
      origin.holding = true;
      const dying = again(seen.payment).catch((err) => err);
      while (!origin.held) await sleep(20);
      const givenAt = Date.now();
      await w.dispose();
      assert.ok((await dying) instanceof Error, "that request got nothing");
      origin.holding = false;
      // Started again where it was: a payment is bound to the URL it paid for.
      w = await start(Number(new URL(w.url).port));

      // Meanwhile the next repeat is told to come back, not that it is a replay.
      const early = await again(seen.payment);
      const wait = await early.json();
      assert.equal(early.status, 409, JSON.stringify(wait));
      assert.equal(wait.reason, "payment_in_progress");
      assert.equal((await entry()).unserved, true, "not served yet");

      // Once the origin's time and the ledger's margin are over, the next repeat is given it.
      let served;
      while ((served = await again(seen.payment)).status === 409) {
        assert.ok(Date.now() - givenAt < (originTimeoutSeconds + 15 + 15) * 1000, "given again within the time it waits");
        await served.body?.cancel();
        await sleep(1000);
      }
      const body = await served.text();
      assert.equal(served.status, 200, body);
      // (The ledger counts whole seconds, from its claim, a moment before the origin was asked.)
      assert.ok(Date.now() - givenAt >= (originTimeoutSeconds + 15 - 2) * 1000, "not while the first request could still have served it");
      assert.equal(JSON.parse(body).path, "/echo/gone/story", "the page it paid for");
      assert.equal(decodeHeader(served.headers.get("payment-response")).transaction, lostAnswer.lost.transaction);
      // Served, and the ledger told so: nobody is given it again.
      const told = Date.now() + 10_000;
      while ((await entry()).unserved) {
        assert.ok(Date.now() < told, "the ledger learns that it was served");
        await sleep(100);
      }
      await stack.assertMoved(before, PAYER, PRICE);
    } finally {
      await w.dispose();
      await Promise.all([lostAnswer.stop(), origin.stop()]);
      await rm(dir, { recursive: true, force: true });
    }
  });

  test("the identifier with another payment: 409 payment_identifier_conflict, nothing charged", async () => {
    const url = "/echo/now/conflict";
    const first = await payAndLoseTheAnswer(url);
    const before = await stack.balances(PAYER);
    // The client signs a new payment (a new nonce) under the same identifier.
    const r = await wrapFetchWithPayment(fetch, client(first.id))(worker.url + url);
    const refusal = await r.json();
    assert.equal(r.status, 409, JSON.stringify(refusal));
    assert.equal(refusal.reason, "payment_identifier_conflict");
    assert.match(refusal.message, /another payment/);
    await stack.assertMoved(before, PAYER, 0n);
  });

  test("the same payment for another URL is a replay, identifier or not", async () => {
    const first = await payAndLoseTheAnswer("/echo/now/one");
    const before = await stack.balances(PAYER);
    const elsewhere = await sendAgain("/echo/now/two", first.payment);
    assert.equal(elsewhere.status, 402);
    assert.equal((await elsewhere.json()).reason, "replayed_authorization");
    const query = await sendAgain("/echo/now/one?page=2", first.payment);
    assert.equal(query.status, 402, "another query is another request");
    await query.arrayBuffer();
    const head = await sendAgain("/echo/now/one", first.payment, { method: "HEAD" });
    assert.equal(head.status, 402, "another method is another request");
    assert.equal(hitsOf("/echo/now/two"), 0);
    await stack.assertMoved(before, PAYER, 0n);
  });
});

describe("routes and identifiers", () => {
  test("a route that does not offer the extension refuses the payment sent again, as a replay", async () => {
    const r402 = await worker.fetch("/echo/plain/a");
    const terms = decodeHeader(r402.headers.get("payment-required"));
    assert.equal(terms.extensions?.["payment-identifier"], undefined, "not offered");
    const offered = decodeHeader((await worker.fetch("/echo/now/a")).headers.get("payment-required"));
    assert.deepEqual(offered.extensions["payment-identifier"].info, { required: false }, "offered by default");

    const first = await payAndLoseTheAnswer("/echo/plain/a", {}, { offered: false });
    const before = await stack.balances(PAYER);
    const again = await sendAgain("/echo/plain/a", first.payment);
    assert.equal(again.status, 402);
    const refusal = await again.json();
    assert.equal(refusal.reason, "replayed_authorization");
    await stack.assertMoved(before, PAYER, 0n);
  });

  test("a route that requires an identifier: 400 without one, nothing charged; paid with one", async () => {
    const terms = decodeHeader((await worker.fetch("/echo/strict/a")).headers.get("payment-required"));
    assert.deepEqual(terms.extensions["payment-identifier"].info, { required: true });
    const before = await stack.balances(PAYER);
    const r = await wrapFetchWithPayment(fetch, client())(worker.url + "/echo/strict/a");
    const refusal = await r.json();
    assert.equal(r.status, 400, JSON.stringify(refusal));
    assert.equal(refusal.reason, "payment_identifier_required");
    assert.ok(r.headers.get("payment-required"), "with the terms");
    await stack.assertMoved(before, PAYER, 0n);
    assert.equal(hitsOf("/echo/strict/a"), 0);

    await payAndLoseTheAnswer("/echo/strict/a");
    await stack.assertMoved(before, PAYER, PRICE);
  });

  test("a malformed identifier: 400 invalid_payment_identifier, nothing charged", async () => {
    const first = await payAndLoseTheAnswer("/echo/now/malformed-source");
    const payment = decodeHeader(first.payment);
    const before = await stack.balances(PAYER);
    for (const id of ["short", "x".repeat(129), "pay_with spaces_0000", "pay_ümlaut_000000000", 1234567890123456]) {
      payment.extensions["payment-identifier"].info.id = id;
      const r = await sendAgain("/echo/now/malformed-source", encodeHeader(payment));
      const refusal = await r.json();
      assert.equal(r.status, 400, `${JSON.stringify(id)}: ${JSON.stringify(refusal)}`);
      assert.equal(refusal.reason, "invalid_payment_identifier");
    }
    await stack.assertMoved(before, PAYER, 0n);
  });
});
