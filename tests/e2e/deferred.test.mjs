// Deferred settlement, black-box: the built Worker in workerd with its wallet ledgers (the LEDGER
// Durable Object) and X402_KV, in front of the demo origin, paid by the official x402 client or by
// hand-signed payments, settled later by the official facilitator on a local chain with the real
// USDC. Money is checked on chain; the ledger through the publisher's admin view.
//
//   . scripts/lib/env.sh && node --test tests/e2e/deferred.test.mjs
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { ADMIN_TOKEN, decodeHeader, encodeHeader, payingFetch, ROOT, startProxy, startStack, startWorker } from "./harness.mjs";
import { signPayment } from "./lib/sign.mjs";

const PRICE = 10000n; // "$0.01"
/** The payer of the tests that make it owe (each in a Worker of its own). */
const PAYER = 3;
const TOKEN = ADMIN_TOKEN;
const BATCH = 2;
const TX = /^0x[0-9a-f]{64}$/;

let stack, worker;

/** The stack's configuration: a deferred route, an immediate one, a deferred one the origin has no page
 * for, and the given deferred policy (batch window BATCH s, a chain RPC for reconciliation). Most tests
 * here follow what happens to a payment once it is deferred, so wallets get their whole credit from
 * the first payment (`credit: "full"`); "earned credit" below tests the default. */
function deferredConfig(deferred = {}) {
  return stack.config({
    deferred: { batchSeconds: BATCH, safetyMarginSeconds: 30, creditLimit: "$1.00", credit: "full", ...deferred },
    rpc: { [stack.network]: stack.rpcUrl },
    routes: [
      { path: "/api/weather", method: "GET", price: "$0.01", mimeType: "application/json", settlement: "deferred" },
      { path: "/articles/*", price: "$0.01", mimeType: "text/html" },
      // The demo origin answers 404 here: an origin error on a deferred route.
      { path: "/missing/*", price: "$0.01", settlement: "deferred" },
    ],
  });
}

const startDeferredWorker = (deferred, opts = {}) =>
  startWorker({ config: deferredConfig(deferred), secrets: { X402_ADMIN_TOKEN: TOKEN }, ...opts });

before(async () => {
  stack = await startStack();
  worker = await startDeferredWorker();
});
after(async () => {
  await worker?.dispose();
  await stack?.stop();
});

// ---- helpers -------------------------------------------------------------------------------------

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

let lastSeen; // the last admin view fetched, for failure messages

/** Polls `probe` until it returns something truthy, or fails after `ms` with the last admin view seen. */
async function until(what, probe, { ms = 15_000, every = 100 } = {}) {
  const deadline = Date.now() + ms;
  for (;;) {
    const got = await probe();
    if (got) return got;
    if (Date.now() > deadline) {
      assert.fail(`${what}: not within ${ms} ms; last seen ${JSON.stringify(lastSeen ?? null).slice(0, 1500)}`);
    }
    await sleep(every);
  }
}
/** Waits for the start of a fresh second, so that a batch window of BATCH s has nearly all of it left. */
async function freshSecond() {
  const ms = Date.now() % 1000;
  if (ms > 50) await sleep(1000 - ms + 5);
}

const balances = (payerIndex) => stack.balances(payerIndex);
const assertMoved = (before, payerIndex, amount) => stack.assertMoved(before, payerIndex, amount);

/** The admin view of one wallet's ledger. */
async function ledger(w, payerIndex, token = TOKEN) {
  const res = await w.fetch(`/__x402/admin/ledger?wallet=${stack.payer(payerIndex).address}`, {
    headers: { authorization: `Bearer ${token}` },
  });
  assert.equal(res.status, 200, "the admin view answers");
  lastSeen = await res.json();
  return lastSeen;
}

/** Polls the admin view until `ok(view)`. */
const ledgerUntil = (what, w, payerIndex, ok, opts) =>
  until(what, async () => {
    const v = await ledger(w, payerIndex);
    return ok(v) ? v : null;
  }, opts);

/**
 * A STAND-IN proxy in front of the real facilitator that loses the answer of the first /settle
 * that moved money (504 after the real one settled); `.lost` holds that answer.
 */
async function losingTheFirstSettleAnswer() {
  const proxy = await startProxy(stack.facilitator.url, async (req, body, forward) => {
    const answer = await forward();
    if (req.url === "/settle" && !proxy.lost && JSON.parse(answer.body).success) {
      proxy.lost = answer;
      return { status: 504, body: '{"error":"stand-in: the answer was lost"}' };
    }
    return answer;
  });
  return proxy;
}

/** A deferred Worker whose LEDGER is the STAND-IN class `name` of tests/e2e/lib/ledger-faults.mjs. */
const startWithFaultyLedger = (name) =>
  startWorker({
    config: deferredConfig(),
    secrets: { X402_ADMIN_TOKEN: TOKEN },
    scriptPath: path.join(ROOT, "tests/e2e/lib/ledger-faults.mjs"),
    modulesRoot: ROOT,
    durableObjects: { LEDGER: name, STATS: "Stats" },
  });

/**
 * A fresh payer, funded with one price, served on credit on `w`, which then moves its USDC away:
 * its settlement fails and it owes. Resolves once the ledger says so, to { address, view() }.
 */
async function servedThenOwing(w) {
  const key = `0x${randomBytes(32).toString("hex")}`;
  const payload = await signPayment(await termsFor(w), key);
  const address = payload.payload.authorization.from.toLowerCase();
  await rpcCall("anvil_setBalance", [address, "0xde0b6b3a7640000"]);
  await stack.chain.transferUsdc(stack.payer(6).privateKey, address, PRICE);
  const res = await w.fetch("/api/weather", { headers: paymentHeaders(payload) });
  assert.equal(res.status, 200, await res.clone().text());
  await res.arrayBuffer();
  await stack.chain.transferUsdc(key, stack.accounts.deployer.address, PRICE);
  const view = async () =>
    (await (await w.fetch(`/__x402/admin/ledger?wallet=${address}`, { headers: { authorization: `Bearer ${TOKEN}` } })).json());
  await until("the payer owes", async () => (await view()).delinquent, { ms: 15_000 });
  return { address, view };
}

/** Successful /settle calls the facilitator made for this nonce so far. */
const settledAtFacilitator = (nonce) =>
  stack.facilitator.calls.filter((c) => c.kind === "settle" && c.ok && c.nonce?.toLowerCase() === nonce.toLowerCase());
/** Every /settle call (answered or not) the facilitator received for this nonce so far. */
const settleCalls = (nonce) =>
  stack.facilitator.calls.filter((c) => c.kind === "settle" && c.nonce?.toLowerCase() === nonce.toLowerCase());

/**
 * The official client paying as payer #i, through a fetch that notes the nonce of every payment it
 * sends, so a test can follow each one to the facilitator and the chain.
 */
function officialClient(i) {
  const sent = [];
  const headers = [];
  const noting = (input, init) => {
    const req = new Request(input, init);
    const header = req.headers.get("payment-signature");
    if (header) {
      sent.push(decodeHeader(header).payload.authorization.nonce);
      headers.push(header);
    }
    return fetch(req);
  };
  return { pay: payingFetch(stack, i, { fetch: noting }), sent, headers };
}

/** The terms of a route, from its 402. */
async function termsFor(w, p = "/api/weather") {
  const res = await w.fetch(p);
  assert.equal(res.status, 402);
  return decodeHeader(res.headers.get("payment-required")).accepts[0];
}

const paymentHeaders = (payload) => ({ "payment-signature": encodeHeader(payload) });

async function withFacilitatorStopped(fn) {
  await stack.facilitator.stop();
  try {
    return await fn();
  } finally {
    await stack.facilitator.start();
  }
}

// ---- the tests -----------------------------------------------------------------------------------

describe("deferred payments are served first and settled within the window", () => {
  test("N = 5 payments from the official client: served before the chain moved, all settled in one batch", async () => {
    const N = 5;
    const payer = 0;
    const start = await balances(payer);
    const { pay, sent } = officialClient(payer);
    await freshSecond();
    const served = [];
    for (let i = 0; i < N; i++) {
      const res = await pay(`${worker.url}/api/weather`);
      const nonce = sent.at(-1);
      // What the facilitator had done with this payment at the moment the client had its answer.
      served.push({ nonce, settleCallsAtResponse: settleCalls(nonce).length });
      assert.equal(res.status, 200, await res.clone().text());
      assert.equal(typeof (await res.json()), "object", "the weather was served");
      const receipt = decodeHeader(res.headers.get("payment-response"));
      assert.equal(receipt.success, true);
      assert.equal(receipt.transaction, "", "an empty transaction means: accepted, settlement pending");
      assert.equal(receipt.network, stack.network);
      assert.equal(receipt.payer, stack.payer(payer).address);
    }
    const afterServing = await balances(payer);
    const anySettleYet = sent.some((n) => settleCalls(n).length > 0);
    assert.equal(new Set(sent).size, N, "one signed payment per request");
    for (const s of served) assert.equal(s.settleCallsAtResponse, 0, "served before the facilitator was asked to settle");
    if (!anySettleYet) assert.deepEqual(afterServing, start, "no money moved while the responses came back");

    const view = await ledgerUntil(`${N} settled`, worker, payer, (v) => v.settled.length === N, { ms: 15_000 });
    assert.equal(view.pending.length, 0);
    assert.equal(view.failed.length, 0);
    assert.equal(view.unsettled_micro_usd, "0");
    assert.equal(view.admitted, N);
    assert.equal(view.wallet, stack.payer(payer).address.toLowerCase());
    const settledNonces = view.settled.map((e) => e.nonce).sort();
    assert.deepEqual(settledNonces, sent.map((n) => n.toLowerCase()).sort());
    for (const e of view.settled) {
      assert.match(e.transaction, TX, "settled with its transaction");
      assert.equal(e.deferred, true);
      assert.equal(e.amount, String(PRICE));
      assert.ok(e.closed_at - e.admitted_at <= BATCH + 3, `settled within the window (${e.closed_at - e.admitted_at} s)`);
      assert.equal(settledAtFacilitator(e.nonce).length, 1, "settled once");
      assert.equal(settledAtFacilitator(e.nonce)[0].result.transaction, e.transaction);
    }
    assert.equal(await stack.chain.authorizationState(stack.payer(payer).address, sent[0]), true);
    await assertMoved(start, payer, BigInt(N) * PRICE);
  });

  test("a ledger answers by RPC, and still over HTTP as a Worker of the previous version asks it", async () => {
    // Payer 0's ledger holds the payments of the test above. The Worker asks it by RPC (the admin
    // view's numbers come from there); during a rollout, an isolate still running the previous
    // version sends the same commands as HTTP requests to the object's fetch.
    const viaWorker = await ledger(worker, 0);
    assert.ok(viaWorker.admitted > 0, "the ledger holds payments");
    const ns = await worker.mf.getDurableObjectNamespace("LEDGER");
    const stub = ns.get(ns.idFromName(stack.payer(0).address.toLowerCase()));
    const post = (body) => stub.fetch("https://ledger.internal/", { method: "POST", body });
    const res = await post(JSON.stringify("view"));
    assert.equal(res.status, 200);
    const overHttp = await res.json();
    assert.equal(overHttp.wallet, viaWorker.wallet);
    assert.equal(overHttp.admitted, viaWorker.admitted);
    assert.deepEqual(overHttp.settled.map((e) => e.nonce), viaWorker.settled.map((e) => e.nonce));
    const byRpc = JSON.parse(await stub.command(JSON.stringify("view")));
    assert.deepEqual(byRpc.settled, overHttp.settled);
    // A command it does not know: 400, saying what was wrong. (By RPC the call is rejected with the
    // same sentence; Miniflare's bridge to this process cannot carry a rejection to show it.)
    const bad = await post(JSON.stringify("pay_me"));
    assert.equal(bad.status, 400);
    assert.match(await bad.text(), /bad ledger command: unknown variant "pay_me"/);
  });

  test("the same signed payment sent 20 times at once is served exactly once, and reaches the origin once", async () => {
    const payer = 1;
    const start = await balances(payer);
    const payload = await signPayment(await termsFor(worker), stack.payer(payer).privateKey);
    const since = Date.now();
    const responses = await Promise.all(
      Array.from({ length: 20 }, () => worker.fetch("/api/weather", { headers: paymentHeaders(payload) })),
    );
    const statuses = responses.map((r) => r.status);
    assert.equal(statuses.filter((s) => s === 200).length, 1, `statuses: ${statuses}`);
    assert.equal(statuses.filter((s) => s === 402).length, 19, `statuses: ${statuses}`);
    for (const res of responses) {
      if (res.status === 200) {
        const receipt = decodeHeader(res.headers.get("payment-response"));
        assert.equal(receipt.success, true);
        assert.equal(receipt.transaction, "");
        await res.arrayBuffer();
      } else {
        const body = await res.json();
        assert.equal(body.reason, "replayed_authorization", body.message);
        assert.ok(res.headers.get("payment-required"), "fresh terms come with the refusal");
      }
    }
    // A deferred GET asks the origin while the ledger admits it, but not for a payment this
    // isolate has already taken: the copies are refused before the origin hears of them.
    const hits = stack.origin.hits.filter((h) => h.path === "/api/weather" && h.at >= since);
    assert.equal(hits.length, 1, `the origin saw ${hits.length} requests for one payment`);
    const nonce = payload.payload.authorization.nonce;
    const view = await ledgerUntil("settled", worker, payer, (v) => v.settled.length === 1 && v.pending.length === 0);
    assert.equal(view.admitted, 1);
    assert.match(view.settled[0].transaction, TX);
    assert.equal(settledAtFacilitator(nonce).length, 1);
    await assertMoved(start, payer, PRICE);
    // Once settled, it is still a replay.
    const again = await worker.fetch("/api/weather", { headers: paymentHeaders(payload) });
    assert.equal(again.status, 402);
    assert.equal((await again.json()).reason, "replayed_authorization");
    await assertMoved(start, payer, PRICE);
  });

  test("the facilitator down while payments arrive: all served, all settled exactly once after it returns", async () => {
    const payer = 2;
    const start = await balances(payer);
    const okBefore = stack.facilitator.settlements().length;
    const { pay, sent } = officialClient(payer);
    await withFacilitatorStopped(async () => {
      for (let i = 0; i < 3; i++) {
        const res = await pay(`${worker.url}/api/weather`);
        assert.equal(res.status, 200, await res.clone().text());
        assert.equal(decodeHeader(res.headers.get("payment-response")).transaction, "");
        await res.arrayBuffer();
      }
      // The batch comes due while the facilitator is away: every attempt goes unanswered, the
      // next one reads authorizationState on chain (unused), resends, and goes unanswered again.
      const view = await ledgerUntil("two unanswered attempts each", worker, payer, (v) =>
        v.pending.length === 3 && v.pending.every((e) => e.unknowns >= 2));
      assert.equal(view.failed.length, 0);
      for (const e of view.pending) assert.ok(e.status === "unknown" || e.status === "pending", e.status);
      // More payments arrive during the outage, and are still served.
      for (let i = 0; i < 2; i++) {
        const res = await pay(`${worker.url}/api/weather`);
        assert.equal(res.status, 200, await res.clone().text());
        await res.arrayBuffer();
      }
      assert.deepEqual(await balances(payer), start, "nothing moved during the outage");
    });
    const view = await ledgerUntil("5 settled after the facilitator returned", worker, payer, (v) =>
      v.settled.length === 5, { ms: 30_000 });
    assert.equal(view.failed.length, 0, JSON.stringify(view.failed));
    assert.equal(view.pending.length, 0);
    for (const e of view.settled) assert.match(e.transaction, TX);
    for (const n of sent) assert.equal(settledAtFacilitator(n).length, 1, `settled exactly once: ${n}`);
    assert.equal(stack.facilitator.settlements().length - okBefore, 5, "no other settlement happened");
    await assertMoved(start, payer, 5n * PRICE);
  });

  /**
   * Payer #payer pays on `w` while the facilitator is away, then cancels the authorization on
   * chain. The entry must end failed, never settled: as a cancellation held against the payer
   * where the chain's logs can be read, as `unconfirmed` (not owed) where they cannot.
   */
  async function cancelledDuringOutage(w, payer, { logsReadable = true } = {}) {
    const start = await balances(payer);
    const payload = await signPayment(await termsFor(w), stack.payer(payer).privateKey);
    const nonce = payload.payload.authorization.nonce;
    await withFacilitatorStopped(async () => {
      const res = await w.fetch("/api/weather", { headers: paymentHeaders(payload) });
      assert.equal(res.status, 200, await res.clone().text());
      assert.equal(decodeHeader(res.headers.get("payment-response")).transaction, "");
      await res.arrayBuffer();
      await ledgerUntil("an unanswered settlement attempt", w, payer, (v) => v.pending.length === 1 && v.pending[0].unknowns >= 1);
      await stack.chain.cancelAuthorization(stack.payer(payer).privateKey, nonce);
      assert.equal(await stack.chain.authorizationState(stack.payer(payer).address, nonce), true, "used up, as a payment would leave it");
      // Without the logs the chain is read again, as after an unanswered attempt, before the
      // entry is given up (about 30 s of backoff).
      const view = await ledgerUntil("the entry failed", w, payer, (v) => v.failed.length === 1, { ms: logsReadable ? 30_000 : 75_000 });
      assert.equal(view.settled.length, 0, "not booked as paid");
      assert.equal(view.paid_micro_usd, "0", "nothing counted as paid (nor as earned credit)");
      if (logsReadable) {
        assert.equal(view.failed[0].reason, "authorization_cancelled", JSON.stringify(view.failed[0]));
        assert.equal(view.failed[0].delinquent, true, "served, then cancelled: held against the payer");
        assert.equal(view.owed_micro_usd, "10000");
      } else {
        // Used, by what the node would not say: the same state as after our own settlement.
        assert.equal(view.failed[0].reason, "unconfirmed_nonce_used", JSON.stringify(view.failed[0]));
        assert.match(view.failed[0].message, /logs/);
        assert.equal(view.failed[0].delinquent, false, "not held against a payer who may have paid");
        assert.equal(view.owed_micro_usd, "0");
        assert.equal(view.lost_micro_usd, "10000", "counted as lost revenue, for the admin to see");
      }
    });
    assert.deepEqual(await balances(payer), start, "nothing moved");
    assert.equal(settledAtFacilitator(nonce).length, 0);
  }

  test("a payer who sends a deferred route an authorization it cancelled long before: served, then found used before it came, and held owing", async () => {
    // Local verification cannot see the chain: the payment is served on credit. Cancelled more
    // blocks ago than the chain's logs are searched (from about ten minutes before the payment
    // came), the cancellation's log is out of reach; the state as of the first block searched,
    // older than the payment, says it was used before the payment was sent.
    const payer = 6;
    const w = await startDeferredWorker();
    try {
      const start = await balances(payer);
      const key = stack.payer(payer).privateKey;
      const payload = await signPayment(await termsFor(w), key);
      const nonce = payload.payload.authorization.nonce;
      await stack.chain.cancelAuthorization(key, nonce);
      await stack.chain.mineBlocks(3000);
      await sleep(1500); // the blocks' timestamps older than the admission
      const res = await w.fetch("/api/weather", { headers: paymentHeaders(payload) });
      assert.equal(res.status, 200, await res.clone().text());
      assert.equal(decodeHeader(res.headers.get("payment-response")).transaction, "", "served on credit, settlement pending");
      await res.arrayBuffer();
      const view = await ledgerUntil("the entry failed", w, payer, (v) => v.failed.length === 1, { ms: 30_000 });
      assert.equal(view.failed[0].reason, "authorization_used_before", JSON.stringify(view.failed[0]));
      assert.equal(view.failed[0].delinquent, true, "served for an authorization that could not pay: held against the payer");
      assert.equal(view.owed_micro_usd, "10000");
      // Its next payment, valid and funded, is refused before anything is asked.
      const next = await signPayment(await termsFor(w), key);
      const again = await w.fetch("/api/weather", { headers: paymentHeaders(next) });
      const body = await again.json();
      assert.equal(again.status, 402, JSON.stringify(body));
      assert.equal(body.reason, "wallet_delinquent");
      assert.deepEqual(await balances(payer), start, "nothing moved");
    } finally {
      await w.dispose();
    }
  });

  test("a payer who cancels its authorization while the facilitator is away: found cancelled on chain, never booked as paid", async () => {
    // FiatToken's authorizationState is true both once an authorization paid and once it was
    // cancelled: reconciliation must tell them apart (by the token's logs), or a payer who cancels
    // during an outage would be recorded as having paid.
    const w = await startDeferredWorker();
    try {
      await cancelledDuringOutage(w, 1);
    } finally {
      await w.dispose();
    }
  });

  test("… the same through a node that answers eth_getLogs over 1,000 blocks at most: the logs are read in pieces", async () => {
    // Many providers cap the range of one log query. A STAND-IN proxy in front of anvil refuses
    // any wider query, as such a node does; the chain is made 3,000 blocks longer (with no time
    // passing) so that the whole range the ledger looks over is wider than that.
    await rpcCall("anvil_mine", ["0xbb8", "0x0"]);
    const ranges = [];
    const capped = await startProxy(stack.rpcUrl, async (req, body, forward) => {
      const call = JSON.parse(body);
      if (call.method !== "eth_getLogs") return forward();
      const { fromBlock, toBlock } = call.params[0];
      const size = Number(BigInt(toBlock) - BigInt(fromBlock)) + 1;
      ranges.push(size);
      if (size <= 1000) return forward();
      return { status: 200, body: JSON.stringify({ jsonrpc: "2.0", id: call.id, error: { code: -32005, message: "block range is too large" } }) };
    });
    const config = deferredConfig();
    const w = await startWorker({ config: { ...config, rpc: { [stack.network]: capped.url } }, secrets: { X402_ADMIN_TOKEN: TOKEN } });
    try {
      await cancelledDuringOutage(w, 1);
      assert.ok(ranges[0] > 1000, `the whole range first (${ranges})`);
      assert.ok(ranges.slice(1).length >= 1 && ranges.slice(1).every((n) => n <= 1000), `then pieces (${ranges})`);
    } finally {
      await w.dispose();
      await capped.stop();
    }
  });

  test("… the same through a node that refuses every log query: never booked as paid, failed as unconfirmed", async () => {
    // Some providers serve no eth_getLogs at all (or rate-limit it away). authorizationState alone
    // is the same after a payment and after a cancellation. A STAND-IN proxy in front of anvil
    // refuses every log query, as such a node does.
    let refused = 0;
    const noLogs = await startProxy(stack.rpcUrl, async (req, body, forward) => {
      const call = JSON.parse(body);
      if (call.method !== "eth_getLogs") return forward();
      refused++;
      return { status: 200, body: JSON.stringify({ jsonrpc: "2.0", id: call.id, error: { code: -32601, message: "the method eth_getLogs does not exist/is not available" } }) };
    });
    const w = await startWorker({ config: { ...deferredConfig(), rpc: { [stack.network]: noLogs.url } }, secrets: { X402_ADMIN_TOKEN: TOKEN } });
    try {
      await cancelledDuringOutage(w, 6, { logsReadable: false });
      assert.ok(refused >= 2, `the logs were asked for again (${refused} queries)`);
    } finally {
      await w.dispose();
      await noLogs.stop();
    }
  });

  test("a payer who spends the nonce on a transfer of its own while the facilitator is away: found paying someone else, never booked as paid", async () => {
    // The payer chooses its nonces: the one it gave us, signed again over another recipient and
    // sent by itself, leaves the same AuthorizationUsed log as our settlement would. Only the
    // transaction's own Transfer says whether we were paid.
    const payer = 4;
    const other = stack.payer(5).address;
    const w = await startDeferredWorker();
    try {
      const start = await balances(payer);
      const otherStart = await stack.balanceOf(other);
      const payload = await signPayment(await termsFor(w), stack.payer(payer).privateKey);
      const nonce = payload.payload.authorization.nonce;
      await withFacilitatorStopped(async () => {
        const res = await w.fetch("/api/weather", { headers: paymentHeaders(payload) });
        assert.equal(res.status, 200, await res.clone().text());
        await res.arrayBuffer();
        await ledgerUntil("an unanswered settlement attempt", w, payer, (v) => v.pending.length === 1 && v.pending[0].unknowns >= 1);
        await stack.chain.transferWithAuthorization(stack.payer(payer).privateKey, other, PRICE, nonce);
        const view = await ledgerUntil("the entry failed as used elsewhere", w, payer, (v) => v.failed.length === 1, { ms: 30_000 });
        assert.equal(view.settled.length, 0, "not booked as paid");
        assert.equal(view.failed[0].reason, "authorization_used_elsewhere", JSON.stringify(view.failed[0]));
        assert.equal(view.failed[0].delinquent, true, "served, then paid to someone else: held against the payer");
        assert.equal(view.owed_micro_usd, "10000");
        assert.equal(view.paid_micro_usd, "0");
      });
      const now = await balances(payer);
      assert.equal(now.payTo, start.payTo, "the publisher received nothing");
      assert.equal(start.payer - now.payer, PRICE, "the payer's own transfer");
      assert.equal((await stack.balanceOf(other)) - otherStart, PRICE);
      assert.equal(settledAtFacilitator(nonce).length, 0);
    } finally {
      await w.dispose();
    }
  });

  test("a payment whose authorization someone sends to the token before its batch: found paid on chain, settled, nothing owed", async () => {
    // Anyone holding a signed authorization can send it (the payer's own agent, say): the
    // facilitator then refuses it as "nonce already used", and the chain shows that we were paid.
    const payer = 3;
    const w = await startDeferredWorker();
    try {
      const start = await balances(payer);
      const payload = await signPayment(await termsFor(w), stack.payer(payer).privateKey);
      const nonce = payload.payload.authorization.nonce;
      const res = await w.fetch("/api/weather", { headers: paymentHeaders(payload) });
      assert.equal(res.status, 200, await res.clone().text());
      assert.equal(decodeHeader(res.headers.get("payment-response")).transaction, "");
      await res.arrayBuffer();
      const sent = await stack.chain.sendAuthorization(stack.payer(payer).privateKey, payload.payload.authorization, payload.payload.signature);
      const view = await ledgerUntil("settled", w, payer, (v) => v.settled.length === 1 || v.failed.length === 1, { ms: 30_000 });
      assert.equal(view.failed.length, 0, JSON.stringify(view.failed[0]));
      assert.equal(view.settled[0].transaction, sent.toLowerCase(), "the transaction that paid us");
      assert.equal(view.delinquent, false);
      assert.equal(view.owed_micro_usd, "0");
      assert.equal(view.paid_micro_usd, "10000");
      assert.ok(settleCalls(nonce).length >= 1, "the facilitator was asked");
      assert.equal(settledAtFacilitator(nonce).length, 0, "and could not settle it again");
      await assertMoved(start, payer, PRICE);
    } finally {
      await w.dispose();
    }
  });

  test("an immediate payment whose authorization someone sends to the token while the origin works: not served, and the money that came is booked (for a refund), not lost", async () => {
    // The same on an immediate route: the facilitator refuses the settlement as "nonce already
    // used", the client is not served, and the chain shows that we were paid all the same.
    const payer = 3;
    const w = await startWorker({
      config: stack.config({ routes: [{ path: "/echo/*", price: "$0.01" }], rpc: { [stack.network]: stack.rpcUrl } }),
      secrets: { X402_ADMIN_TOKEN: TOKEN },
    });
    try {
      const start = await balances(payer);
      const url = "/echo/slow?delay=1500";
      const payload = await signPayment(await termsFor(w, url), stack.payer(payer).privateKey);
      const nonce = payload.payload.authorization.nonce;
      const answer = w.fetch(url, { headers: paymentHeaders(payload) });
      // While the origin takes its 1.5 s, the authorization goes to the token another way.
      await new Promise((r) => setTimeout(r, 300));
      const sent = await stack.chain.sendAuthorization(stack.payer(payer).privateKey, payload.payload.authorization, payload.payload.signature);
      const res = await answer;
      const body = await res.json();
      assert.equal(res.status, 402, JSON.stringify(body));
      assert.equal(body.reason, "settlement_failed", body.message);
      assert.equal(body.method, undefined, "the origin's answer is not served");
      const view = await ledgerUntil("booked", w, payer, (v) => v.settled.length === 1 || v.failed.length === 1, { ms: 30_000 });
      assert.equal(view.failed.length, 0, JSON.stringify(view.failed[0]));
      assert.equal(view.settled[0].transaction, sent.toLowerCase(), "the transaction that paid us");
      assert.equal(view.delinquent, false);
      assert.equal(view.owed_micro_usd, "0");
      assert.ok(settleCalls(nonce).length >= 1, "the facilitator was asked");
      assert.equal(settledAtFacilitator(nonce).length, 0, "and could not settle it again");
      await assertMoved(start, payer, PRICE);
    } finally {
      await w.dispose();
    }
  });

  test("a settlement whose answer was lost, resent on a lagging chain read, then refused as already used: settled, not lost", async () => {
    // Our first /settle moves the money but its answer is lost (a STAND-IN proxy in front of the
    // real facilitator answers 504 after the real one settled). The chain is read before a resend,
    // but through a lagging node (a STAND-IN proxy in front of anvil that answers the first
    // authorizationState read at the block before the payment), so it looks unused and is resent.
    // The real facilitator then refuses the resend: nonce already used. Only the chain can tell
    // our own settlement from a cancellation; read again, it names our transaction.
    const payer = 1;
    const lostAnswer = await losingTheFirstSettleAnswer();
    const blockBefore = await rpcCall("eth_blockNumber");
    const lagging = await startProxy(stack.rpcUrl, async (req, body, forward) => {
      const call = JSON.parse(body);
      if (call.method === "eth_call" && call.params?.[0]?.data?.startsWith("0xe94a0102") && !lagging.stale) {
        lagging.stale = true;
        return forward(JSON.stringify({ ...call, params: [call.params[0], blockBefore] }));
      }
      return forward();
    });
    const config = deferredConfig();
    const w = await startWorker({
      config: { ...config, facilitator: { ...config.facilitator, url: lostAnswer.url }, rpc: { [stack.network]: lagging.url } },
      secrets: { X402_ADMIN_TOKEN: TOKEN },
    });
    try {
      const start = await balances(payer);
      const payload = await signPayment(await termsFor(w), stack.payer(payer).privateKey);
      const nonce = payload.payload.authorization.nonce;
      const res = await w.fetch("/api/weather", { headers: paymentHeaders(payload) });
      assert.equal(res.status, 200, await res.clone().text());
      await res.arrayBuffer();
      const view = await ledgerUntil("the entry closed", w, payer, (v) => v.pending.length === 0, { ms: 30_000 });
      assert.ok(lostAnswer.lost, "the first answer was lost");
      assert.ok(lagging.stale, "the chain was read through the lagging node");
      const refusals = settleCalls(nonce).filter((c) => !c.ok);
      assert.equal(refusals.length, 1, "resent once, and refused");
      assert.equal(refusals[0].result?.errorReason, "invalid_exact_evm_nonce_already_used");
      assert.deepEqual(view.failed, [], "not booked as lost");
      assert.equal(view.settled.length, 1);
      assert.equal(view.settled[0].transaction, JSON.parse(lostAnswer.lost.body).transaction, "the transaction that paid");
      assert.equal(view.lost_micro_usd, "0");
      assert.equal(view.paid_micro_usd, "10000");
      assert.equal(settledAtFacilitator(nonce).length, 1, "settled once");
      await assertMoved(start, payer, PRICE);
    } finally {
      await w.dispose();
      await lostAnswer.stop();
      await lagging.stop();
    }
  });

  test("a settlement whose answer was lost, read through a node that ignores the log filter: settled, not taken for another payer's cancellation", async () => {
    // Our first /settle moves the money but its answer is lost (a STAND-IN proxy in front of the
    // real facilitator answers 504 after the real one settled). The chain then says the nonce is
    // used, and its logs are read through a STAND-IN node that drops the payer and nonce from the
    // filter, answering every use and cancellation on the token. Another payer cancelled an
    // authorization of its own just before: read as ours, the payment would be booked cancelled
    // and its payer held delinquent.
    const payer = 2;
    const lostAnswer = await losingTheFirstSettleAnswer();
    const careless = await startProxy(stack.rpcUrl, async (req, body, forward) => {
      const call = JSON.parse(body);
      if (call.method !== "eth_getLogs") return forward();
      careless.asked = (careless.asked ?? 0) + 1;
      const filter = { ...call.params[0], topics: [call.params[0].topics[0]] };
      return forward(JSON.stringify({ ...call, params: [filter] }));
    });
    const config = deferredConfig();
    const w = await startWorker({
      config: { ...config, facilitator: { ...config.facilitator, url: lostAnswer.url }, rpc: { [stack.network]: careless.url } },
      secrets: { X402_ADMIN_TOKEN: TOKEN },
    });
    try {
      await stack.chain.cancelAuthorization(stack.payer(5).privateKey, `0x${randomBytes(32).toString("hex")}`);
      const start = await balances(payer);
      const payload = await signPayment(await termsFor(w), stack.payer(payer).privateKey);
      const nonce = payload.payload.authorization.nonce;
      const res = await w.fetch("/api/weather", { headers: paymentHeaders(payload) });
      assert.equal(res.status, 200, await res.clone().text());
      await res.arrayBuffer();
      const view = await ledgerUntil("the entry closed", w, payer, (v) => v.pending.length === 0, { ms: 30_000 });
      assert.ok(lostAnswer.lost, "the first answer was lost");
      assert.ok(careless.asked >= 1, "the logs were read through the careless node");
      assert.deepEqual(view.failed, [], "not booked as cancelled");
      assert.equal(view.settled.length, 1);
      assert.equal(view.settled[0].transaction, JSON.parse(lostAnswer.lost.body).transaction, "the transaction that paid");
      assert.equal(view.owed_micro_usd, "0", "nothing held against the payer");
      assert.equal(view.paid_micro_usd, "10000");
      assert.equal(settledAtFacilitator(nonce).length, 1, "settled once");
      await assertMoved(start, payer, PRICE);
    } finally {
      await w.dispose();
      await lostAnswer.stop();
      await careless.stop();
    }
  });

  test("a wallet whose first listing in KV failed is listed by its next payment, after its ledger was stopped and started again", async () => {
    // A STAND-IN ledger (tests/e2e/lib/ledger-faults.mjs) whose KV refuses the listing that the
    // admin view of every wallet walks, while the test says so; the rest is real.
    const dir = await mkdtemp(path.join(os.tmpdir(), "x402-listing-"));
    const start = () =>
      startWorker({
        config: deferredConfig(),
        secrets: { X402_ADMIN_TOKEN: TOKEN },
        scriptPath: path.join(ROOT, "tests/e2e/lib/ledger-faults.mjs"),
        modulesRoot: ROOT,
        durableObjects: { LEDGER: "LedgerListingFails", STATS: "Stats" },
        persistDir: dir,
      });
    const payer = 2;
    const address = stack.payer(payer).address.toLowerCase();
    const listed = async (w) => {
      const all = await (await w.fetch("/__x402/admin/ledger", { headers: { authorization: `Bearer ${TOKEN}` } })).json();
      return all.wallets.some((v) => v.wallet === address);
    };
    const pay = async (w) => {
      const res = await w.fetch("/api/weather", { headers: paymentHeaders(await signPayment(await termsFor(w), stack.payer(payer).privateKey)) });
      assert.equal(res.status, 200, await res.clone().text());
      await res.arrayBuffer();
    };
    const start0 = await balances(payer);
    let w = await start();
    try {
      await (await w.kv()).put("stand-in:listing-fails", "yes");
      await pay(w);
      assert.equal(await listed(w), false, "the listing failed");
      assert.equal((await ledger(w, payer)).admitted, 1, "the payment is in the wallet's ledger all the same");
      await ledgerUntil("served, so released", w, payer, (v) => v.pending.length + v.settled.length === 1 && !v.pending[0]?.held_until);
      await w.dispose();
      w = await start();
      await (await w.kv()).delete("stand-in:listing-fails");
      await pay(w);
      assert.equal(await listed(w), true, "listed by the next payment");
      await ledgerUntil("both settled", w, payer, (v) => v.settled.length === 2, { ms: 30_000 });
      await assertMoved(start0, payer, 2n * PRICE);
    } finally {
      await w.dispose();
      await rm(dir, { recursive: true, force: true });
    }
  });

  test("an admin's revocation of a debt says whether KV's blocklist, which sessions read, was cleared too", async () => {
    // A STAND-IN ledger (tests/e2e/lib/ledger-faults.mjs) whose KV refuses to clear a debt from
    // the blocklist while the test says so; the rest is real.
    const w = await startWithFaultyLedger("LedgerBlocklistStuck");
    try {
      const { address, view } = await servedThenOwing(w);
      const owing = await view();
      const kv = await w.kv();
      assert.ok(await kv.get(`delinquent:${address}`), "blocklisted");
      await kv.put("stand-in:blocklist-stuck", "yes");
      const revoked = await w.fetch(`/__x402/admin/ledger/revoke?wallet=${address}&id=${encodeURIComponent(owing.failed[0].id)}`, {
        method: "POST",
        headers: { authorization: `Bearer ${TOKEN}` },
      });
      assert.equal(revoked.status, 200);
      assert.deepEqual(await revoked.json(), { ok: true, error: null, blocklistCleared: false }, "revoked, but the blocklist says otherwise: send again");
      assert.equal((await view()).delinquent, false, "the ledger owes nothing");
      assert.ok(await kv.get(`delinquent:${address}`), "still blocklisted in KV");
      await kv.delete("stand-in:blocklist-stuck");
      const again = await w.fetch(`/__x402/admin/ledger/forgive?wallet=${address}`, { method: "POST", headers: { authorization: `Bearer ${TOKEN}` } });
      assert.equal((await again.json()).blocklistCleared, true);
      assert.equal(await kv.get(`delinquent:${address}`), null, "cleared");
    } finally {
      await w.dispose();
    }
  });

  test("a debt KV's blocklist did not take when the payer became delinquent is written again by the ledger's alarm", async () => {
    // A STAND-IN ledger whose KV refuses to blocklist a wallet while the test says so; the rest is
    // real. Sessions read the blocklist, not the ledger: left unwritten, a delinquent payer would
    // keep its sessions.
    const w = await startWithFaultyLedger("LedgerBlocklistRefused");
    try {
      const kv = await w.kv();
      await kv.put("stand-in:blocklist-refused", "yes");
      const { address } = await servedThenOwing(w);
      assert.equal(await kv.get(`delinquent:${address}`), null, "KV refused the blocklist");
      await kv.delete("stand-in:blocklist-refused");
      const listed = await until("blocklisted after all", async () => kv.get(`delinquent:${address}`), { ms: 50_000, every: 500 });
      assert.equal(JSON.parse(listed).owedMicroUsd, "10000");
    } finally {
      await w.dispose();
    }
  });

  test("a payer who moves its USDC away before settlement: failed with the reason, refused, the debt shown", async () => {
    const payer = 3;
    const key = stack.payer(payer).privateKey;
    const address = stack.payer(payer).address;
    const someone = stack.accounts.deployer.address;
    const start = await balances(payer);
    const { pay } = officialClient(payer);
    await freshSecond();
    const res = await pay(`${worker.url}/api/weather`);
    assert.equal(res.status, 200);
    assert.equal(decodeHeader(res.headers.get("payment-response")).transaction, "");
    await res.arrayBuffer();
    await stack.chain.transferUsdc(key, someone, start.payer);
    assert.equal(await stack.balanceOf(address), 0n);

    const view = await ledgerUntil("failed", worker, payer, (v) => v.failed.length === 1, { ms: 15_000 });
    const [failed] = view.failed;
    assert.match(`${failed.reason} ${failed.message ?? ""}`, /balance|funds/i, "the reason is recorded");
    assert.equal(failed.delinquent, true);
    assert.equal(view.delinquent, true);
    assert.equal(view.owed_micro_usd, "10000", "the publisher sees what is owed");
    assert.match(view.delinquent_reason, /balance|funds/i);
    assert.equal(view.settled.length, 0);
    // The fast copy every edge location reads.
    const blocked = JSON.parse(await (await worker.kv()).get(`delinquent:${address.toLowerCase()}`));
    assert.equal(blocked.owedMicroUsd, "10000");

    // Even with money again, the wallet is refused until the debt is dealt with.
    await stack.chain.transferUsdc(stack.accounts.deployer.privateKey, address, 1_000_000n);
    const refused = await pay(`${worker.url}/api/weather`);
    assert.equal(refused.status, 402);
    const body = await refused.json();
    assert.equal(body.reason, "wallet_delinquent");
    assert.match(body.message, /owes \$0\.010000/, body.message);
    // The immediate route refuses it too: the ledger is per wallet, not per route.
    const immediate = await pay(`${worker.url}/articles/hello`);
    assert.equal(immediate.status, 402);
    assert.equal((await immediate.json()).reason, "wallet_delinquent");

    // The dashboard of every wallet shows the debt too.
    const all = await (await worker.fetch("/__x402/admin/ledger", { headers: { authorization: `Bearer ${TOKEN}` } })).json();
    assert.ok(BigInt(all.owedMicroUsd) >= 10000n);
    const mine = all.wallets.find((w) => w.wallet === address.toLowerCase());
    assert.equal(mine?.owed_micro_usd, "10000");
    assert.equal(await stack.balanceOf(stack.accounts.payTo.address), start.payTo, "the publisher was not paid");

    // The publisher forgives: the wallet may pay again.
    const forgiven = await worker.fetch(`/__x402/admin/ledger/forgive?wallet=${address}`, {
      method: "POST",
      headers: { authorization: `Bearer ${TOKEN}` },
    });
    assert.equal(forgiven.status, 200);
    const answer = await forgiven.json();
    assert.equal(answer.forgivenMicroUsd, "10000");
    assert.equal(answer.blocklistCleared, true, "KV's blocklist, which sessions read, cleared too");
    assert.equal(await (await worker.kv()).get(`delinquent:${address.toLowerCase()}`), null);
    const before2 = await balances(payer);
    const ok = await pay(`${worker.url}/api/weather`);
    assert.equal(ok.status, 200, await ok.clone().text());
    await ok.arrayBuffer();
    await ledgerUntil("settled after forgiveness", worker, payer, (v) => v.settled.length === 1 && !v.delinquent);
    await assertMoved(before2, payer, PRICE);
  });

  test("an origin error on a deferred route is passed on and never charged", async () => {
    const payer = 4;
    const start = await balances(payer);
    const payload = await signPayment(await termsFor(worker, "/missing/page"), stack.payer(payer).privateKey);
    const res = await worker.fetch("/missing/page", { headers: paymentHeaders(payload) });
    assert.equal(res.status, 404);
    assert.equal(res.headers.get("payment-response"), null, "no receipt for an error");
    await res.arrayBuffer();
    const view = await ledger(worker, payer);
    assert.equal(view.pending.length, 0, "withdrawn from the queue");
    assert.equal(view.settled.length, 0);
    assert.equal(view.forgiven, 1);
    assert.equal(view.next_alarm, undefined, "nothing left to settle");
    assert.equal(settleCalls(payload.payload.authorization.nonce).length, 0);
    assert.equal(await stack.chain.authorizationState(stack.payer(payer).address, payload.payload.authorization.nonce), false);
    assert.deepEqual(await balances(payer), start);
    // Never served, never collected: the same signed payment still buys something else, once.
    const [ok, again] = [
      await worker.fetch("/api/weather", { headers: paymentHeaders(payload) }),
      await worker.fetch("/api/weather", { headers: paymentHeaders(payload) }),
    ];
    assert.equal(ok.status, 200, await ok.clone().text());
    assert.equal(again.status, 402);
    assert.equal((await again.json()).reason, "replayed_authorization");
    await ledgerUntil("settled", worker, payer, (v) => v.settled.length === 1 && v.pending.length === 0);
    await assertMoved(start, payer, PRICE);
  });
});

describe("a redirect from the origin", () => {
  // The demo origin answers /articles/edge-economics-2025 with a 301 to /articles/edge-economics.
  const OLD = "/articles/edge-economics-2025";
  const NEW = "/articles/edge-economics";
  let deferredW;
  before(async () => {
    const config = deferredConfig();
    deferredW = await startWorker({
      config: { ...config, routes: [{ path: "/articles/*", price: "$0.01", mimeType: "text/html", settlement: "deferred" }] },
      secrets: { X402_ADMIN_TOKEN: TOKEN },
    });
  });
  after(async () => {
    await deferredW?.dispose();
  });

  for (const mode of ["immediate", "deferred"]) {
    test(`is passed on and not charged; the client follows it with the same payment and pays once (${mode})`, async () => {
      const w = mode === "deferred" ? deferredW : worker;
      const payer = 4;
      const start = await balances(payer);
      const since = Date.now();
      // By hand: the redirect comes back without a receipt, and nothing is held or sent.
      const payload = await signPayment(await termsFor(w, OLD), stack.payer(payer).privateKey);
      const nonce = payload.payload.authorization.nonce;
      const moved = await w.fetch(OLD, { headers: paymentHeaders(payload), redirect: "manual" });
      assert.equal(moved.status, 301, await moved.clone().text());
      assert.equal(moved.headers.get("location"), NEW);
      assert.equal(moved.headers.get("payment-response"), null, "no receipt for a redirect");
      await moved.arrayBuffer();
      const view = await ledger(w, payer);
      assert.equal(view.pending.length, 0, "nothing held for a redirect");
      assert.equal(settleCalls(nonce).length, 0);
      // The same payment where the redirect leads: taken there, once.
      const there = await w.fetch(NEW, { headers: paymentHeaders(payload) });
      assert.equal(there.status, 200, await there.clone().text());
      assert.match(await there.text(), /The economics of the edge/);
      assert.equal(decodeHeader(there.headers.get("payment-response")).success, true);
      // The official client: its fetch follows the 301 with the payment it signed for the old URL.
      const { pay, sent } = officialClient(payer);
      const res = await pay(`${w.url}${OLD}`);
      assert.equal(res.status, 200, await res.clone().text());
      assert.match(await res.text(), /The economics of the edge/);
      assert.equal(decodeHeader(res.headers.get("payment-response")).success, true);
      assert.equal(sent.length, 1, "one payment signed");
      const hits = stack.origin.hits.filter((h) => h.at >= since);
      assert.equal(hits.filter((h) => h.path === OLD).length, 2, "the old URL asked twice (by hand, by the client)");
      assert.equal(hits.filter((h) => h.path === NEW).length, 2, "the new one twice");
      if (mode === "deferred") {
        await ledgerUntil("both settled", w, payer, (v) => v.settled.length === 2 && v.pending.length === 0);
      }
      for (const n of [nonce, sent[0]]) assert.equal(settledAtFacilitator(n).length, 1, `settled once: ${n}`);
      await assertMoved(start, payer, 2n * PRICE);
    });
  }
});

describe("credit limit", () => {
  let immediateW, refuseW;
  before(async () => {
    [immediateW, refuseW] = await Promise.all([
      startDeferredWorker({ creditLimit: "$0.02" }),
      startDeferredWorker({ creditLimit: "$0.02", overCredit: "refuse" }),
    ]);
  });
  after(async () => {
    await Promise.all([immediateW?.dispose(), refuseW?.dispose()]);
  });

  async function threeQuickPayments(w, payer) {
    const terms = await termsFor(w);
    const payloads = await Promise.all([0, 1, 2].map(() => signPayment(terms, stack.payer(payer).privateKey)));
    await freshSecond();
    const out = [];
    for (const p of payloads) {
      const res = await w.fetch("/api/weather", { headers: paymentHeaders(p) });
      const nonce = p.payload.authorization.nonce;
      out.push({ res, nonce, settleCallsAtResponse: settleCalls(nonce).length, body: await res.text() });
    }
    return out;
  }

  test('over the limit, a deferred payment is settled before answering (overCredit "immediate", the default)', async () => {
    const payer = 4;
    const start = await balances(payer);
    const [a, b, c] = await threeQuickPayments(immediateW, payer);
    for (const x of [a, b]) {
      assert.equal(x.res.status, 200, x.body);
      assert.equal(decodeHeader(x.res.headers.get("payment-response")).transaction, "");
      assert.equal(x.settleCallsAtResponse, 0);
    }
    assert.equal(c.res.status, 200, c.body);
    const receipt = decodeHeader(c.res.headers.get("payment-response"));
    assert.equal(receipt.success, true);
    assert.match(receipt.transaction, TX, "the third one was settled on the spot");
    assert.equal(settledAtFacilitator(c.nonce).length, 1);
    assert.equal(await stack.chain.authorizationState(stack.payer(payer).address, c.nonce), true);
    const view = await ledgerUntil("3 settled", immediateW, payer, (v) => v.settled.length === 3);
    const third = view.settled.find((e) => e.nonce === c.nonce.toLowerCase());
    assert.equal(third.deferred, false);
    assert.equal(third.transaction, receipt.transaction);
    for (const x of [a, b]) assert.equal(settledAtFacilitator(x.nonce).length, 1);
    await assertMoved(start, payer, 3n * PRICE);
  });

  test('over the limit with overCredit "refuse": 402 credit_exceeded, accepted again once settled', async () => {
    const payer = 5;
    const start = await balances(payer);
    const [a, b, c] = await threeQuickPayments(refuseW, payer);
    for (const x of [a, b]) {
      assert.equal(x.res.status, 200, x.body);
      assert.equal(decodeHeader(x.res.headers.get("payment-response")).transaction, "");
    }
    assert.equal(c.res.status, 402);
    const body = JSON.parse(c.body);
    assert.equal(body.reason, "credit_exceeded", body.message);
    assert.ok(c.res.headers.get("payment-required"));
    assert.equal(settleCalls(c.nonce).length, 0, "the refused one was not settled");
    await ledgerUntil("2 settled", refuseW, payer, (v) => v.settled.length === 2 && v.unsettled_micro_usd === "0");
    await assertMoved(start, payer, 2n * PRICE);
    // The credit is back: a new payment is deferred again.
    const res = await refuseW.fetch("/api/weather", {
      headers: paymentHeaders(await signPayment(await termsFor(refuseW), stack.payer(payer).privateKey)),
    });
    assert.equal(res.status, 200);
    assert.equal(decodeHeader(res.headers.get("payment-response")).transaction, "");
    await ledgerUntil("3 settled", refuseW, payer, (v) => v.settled.length === 3);
    await assertMoved(start, payer, 3n * PRICE);
  });
});

describe("earned credit (the default)", () => {
  let w;
  before(async () => {
    w = await startDeferredWorker({ credit: undefined });
  });
  after(async () => {
    await w?.dispose();
  });

  test("a wallet's first payment is settled before it is served; then it is trusted with what it has paid", async () => {
    const payer = 2;
    const start = await balances(payer);
    const terms = await termsFor(w);
    const payloads = await Promise.all([0, 1, 2].map(() => signPayment(terms, stack.payer(payer).privateKey)));
    const send = async (p) => {
      const res = await w.fetch("/api/weather", { headers: paymentHeaders(p) });
      const body = await res.text();
      assert.equal(res.status, 200, body);
      const nonce = p.payload.authorization.nonce;
      return { receipt: decodeHeader(res.headers.get("payment-response")), nonce, settleCalls: settleCalls(nonce).length };
    };
    const first = await send(payloads[0]);
    assert.match(first.receipt.transaction, TX, "a wallet that never paid gets no credit: settled before it was served");
    assert.equal(await stack.chain.authorizationState(stack.payer(payer).address, first.nonce), true);
    let view = await ledger(w, payer);
    assert.equal(view.paid_micro_usd, "10000");
    assert.equal(view.credit_micro_usd, "10000", "trusted with what it has paid");

    await freshSecond();
    const second = await send(payloads[1]);
    assert.equal(second.receipt.transaction, "", "deferred: within the $0.01 it has earned");
    assert.equal(second.settleCalls, 0, "not settled before the answer");
    const third = await send(payloads[2]);
    assert.match(third.receipt.transaction, TX, "its earned credit is in use by the second: settled first");

    view = await ledgerUntil("all three settled", w, payer, (v) => v.settled.length === 3 && v.unsettled_micro_usd === "0");
    assert.equal(view.paid_micro_usd, "30000");
    assert.equal(view.credit_micro_usd, "30000");
    const deferred = Object.fromEntries(view.settled.map((e) => [e.nonce, e.deferred]));
    assert.deepEqual(
      [first, second, third].map((x) => deferred[x.nonce.toLowerCase()]),
      [false, true, false],
    );
    await assertMoved(start, payer, 3n * PRICE);
  });
});

describe("state survives a restart", () => {
  test("pending settlements persisted by one Worker are settled by the next, on their own alarm", async () => {
    const payer = 6;
    const dir = await mkdtemp(path.join(os.tmpdir(), "x402-deferred-"));
    let w;
    try {
      const start = await balances(payer);
      const { pay, sent, headers } = officialClient(payer);
      await withFacilitatorStopped(async () => {
        w = await startDeferredWorker({}, { persistDir: dir });
        await freshSecond();
        for (let i = 0; i < 2; i++) {
          const res = await pay(`${w.url}/api/weather`);
          assert.equal(res.status, 200, await res.clone().text());
          assert.equal(decodeHeader(res.headers.get("payment-response")).transaction, "");
          await res.arrayBuffer();
        }
        // Both served, so both released to their batch: the Worker sends releases gathered a
        // moment after the answers (a release lost to an abrupt stop would only delay the
        // settlement to the end of the hold, past this test's patience).
        const v = await ledgerUntil("both released", w, payer, (v) => v.pending.length === 2 && v.pending.every((e) => e.held_until == null));
        assert.equal(v.pending.length, 2);
        assert.equal(await (await w.kv()).get(`open:${stack.payer(payer).address.toLowerCase()}`), "1");
        // Gone before the batch window ends.
        await w.dispose();
        w = null;
      });
      for (const n of sent) assert.equal(settleCalls(n).length, 0, "nothing was attempted before the restart");
      assert.deepEqual(await balances(payer), start);

      w = await startDeferredWorker({}, { persistDir: dir });
      // Nothing touches the new Worker: its ledger's alarm, persisted, fires by itself.
      await until("both settled at the facilitator", () => sent.every((n) => settledAtFacilitator(n).length === 1), { ms: 15_000 });
      const view = await ledgerUntil("2 settled", w, payer, (v) => v.settled.length === 2);
      assert.equal(view.pending.length, 0);
      assert.equal(view.failed.length, 0);
      for (const e of view.settled) assert.match(e.transaction, TX);
      assert.deepEqual(view.settled.map((e) => e.nonce).sort(), sent.map((n) => n.toLowerCase()).sort());
      await assertMoved(start, payer, 2n * PRICE);
      // The replay memory survived as well: a payment served before the restart is not served again.
      assert.equal(view.remembered_nonces, 2);
      const replay = await w.fetch("/api/weather", { headers: { "payment-signature": headers[0] } });
      assert.equal(replay.status, 402);
      assert.equal((await replay.json()).reason, "replayed_authorization");
      const kv = await w.kv();
      assert.equal(await kv.get(`open:${stack.payer(payer).address.toLowerCase()}`), null, "no longer open");
      assert.ok(await kv.get(`wallet:${stack.payer(payer).address.toLowerCase()}`), "the wallet index persisted");
    } finally {
      await w?.dispose();
      await rm(dir, { recursive: true, force: true });
    }
  });

  test("the cron sweep nudges open ledgers and never settles anything twice", async () => {
    const payer = 0;
    const start = await balances(payer);
    const okBefore = stack.facilitator.settlements().length;
    const { pay, sent } = officialClient(payer);
    const res = await pay(`${worker.url}/api/weather`);
    assert.equal(res.status, 200);
    await res.arrayBuffer();
    const entry = await worker.mf.getWorker();
    // Sweep repeatedly, before, at and after the batch comes due, alongside the alarm.
    await until("settled", async () => {
      const r = await entry.scheduled({ cron: "*/5 * * * *" });
      assert.equal(r.outcome, "ok");
      return settledAtFacilitator(sent[0]).length === 1 && (await ledger(worker, payer)).pending.length === 0;
    }, { every: 150 });
    await entry.scheduled({ cron: "*/5 * * * *" });
    assert.equal(settledAtFacilitator(sent[0]).length, 1);
    assert.equal(stack.facilitator.settlements().length - okBefore, 1);
    await assertMoved(start, payer, PRICE);
  });
});

describe("the admin view", () => {
  const wallet = () => stack.payer(0).address;
  for (const [name, headers] of [
    ["without a token", {}],
    ["with a wrong token", { authorization: "Bearer wrong" }],
    ["with the token under another scheme", { authorization: `Basic ${TOKEN}` }],
    ["with a longer token", { authorization: `Bearer ${TOKEN}x` }],
  ]) {
    test(`refuses requests ${name} (401)`, async () => {
      for (const [method, p] of [
        ["GET", `/__x402/admin/ledger?wallet=${wallet()}`],
        ["GET", "/__x402/admin/ledger"],
        ["POST", `/__x402/admin/ledger/forgive?wallet=${wallet()}`],
      ]) {
        const res = await worker.fetch(p, { method, headers });
        assert.equal(res.status, 401, `${method} ${p}`);
        assert.equal(res.headers.get("www-authenticate"), "Bearer");
        const text = await res.text();
        assert.doesNotMatch(text, /settled|pending|0x[0-9a-f]{40}/i, "nothing of the ledger leaks");
      }
    });
  }

  test("statistics that cannot be read are a 503 saying so, never a page of zeros", async () => {
    // No statistics object bound: the figures cannot be read, as when the object does not answer.
    const w = await startDeferredWorker(undefined, { durableObjects: { LEDGER: "Ledger" } });
    try {
      const res = await w.fetch("/__x402/admin/stats", { headers: { authorization: `Bearer ${TOKEN}` } });
      const body = await res.json();
      assert.equal(res.status, 503, JSON.stringify(body));
      assert.equal(body.error, "stats_unavailable");
      assert.equal(body.revenue, undefined);
    } finally {
      await w.dispose();
    }
  });

  test("stays closed, to that token too, while the token is shorter than 32 characters (503)", async () => {
    const short = "x".repeat(31);
    const w = await startDeferredWorker(undefined, { secrets: { X402_ADMIN_TOKEN: short } });
    try {
      for (const [method, p] of [
        ["GET", `/__x402/admin/ledger?wallet=${wallet()}`],
        ["GET", "/__x402/admin/stats"],
        ["POST", `/__x402/admin/ledger/forgive?wallet=${wallet()}`],
      ]) {
        const res = await w.fetch(p, { method, headers: { authorization: `Bearer ${short}` } });
        assert.equal(res.status, 503, `${method} ${p}`);
        const body = await res.json();
        assert.equal(body.error, "admin_token_too_short");
        assert.match(body.message, /32 characters/);
        assert.doesNotMatch(JSON.stringify(body), /settled|pending|0x[0-9a-f]{40}/i, "nothing of the ledger leaks");
      }
    } finally {
      await w.dispose();
    }
  });

  test("with X402_RATE_LIMIT, an address that keeps sending wrong tokens is turned away for a minute, the right token then included (429)", async () => {
    const w = await startDeferredWorker(undefined, {
      ratelimits: { X402_RATE_LIMIT: { namespace_id: "402", simple: { limit: 3, period: 60 } } },
    });
    try {
      const ask = (address, token) =>
        w.fetch("/__x402/admin/ledger", { headers: { authorization: `Bearer ${token}`, "cf-connecting-ip": address } });
      for (let i = 1; i <= 4; i++) {
        const res = await ask("203.0.113.9", `guess-${i}`.padEnd(40, "x"));
        assert.equal(res.status, 401, `guess ${i}`);
        await res.arrayBuffer();
      }
      const barred = await ask("203.0.113.9", TOKEN);
      assert.equal(barred.status, 429);
      assert.equal(barred.headers.get("retry-after"), "60");
      const body = await barred.json();
      assert.equal(body.error, "too_many_attempts");
      assert.doesNotMatch(JSON.stringify(body), /settled|pending|wallets/, "nothing of the ledger leaks");
      const other = await ask("198.51.100.9", TOKEN);
      assert.equal(other.status, 200, "another address with the token gets in");
      await other.arrayBuffer();
    } finally {
      await w.dispose();
    }
  });

  test("answers with the token", async () => {
    const res = await worker.fetch(`/__x402/admin/ledger?wallet=${wallet()}`, {
      headers: { authorization: `Bearer ${TOKEN}` },
    });
    assert.equal(res.status, 200);
    const v = await res.json();
    assert.ok(Array.isArray(v.settled) && Array.isArray(v.pending) && Array.isArray(v.failed));
  });
});

describe("immediate routes", () => {
  test("the same signed payment sent twice to an immediate route: the second is refused, money moves once", async () => {
    const payer = 1;
    const start = await balances(payer);
    const payload = await signPayment(await termsFor(worker, "/articles/hello"), stack.payer(payer).privateKey);
    const first = await worker.fetch("/articles/hello", { headers: paymentHeaders(payload) });
    assert.equal(first.status, 200, await first.clone().text());
    assert.match(await first.text(), /Hello, paid web/);
    const receipt = decodeHeader(first.headers.get("payment-response"));
    assert.equal(receipt.success, true);
    assert.match(receipt.transaction, TX);
    await assertMoved(start, payer, PRICE);

    const second = await worker.fetch("/articles/hello", { headers: paymentHeaders(payload) });
    assert.equal(second.status, 402);
    const text = await second.text();
    assert.doesNotMatch(text, /Hello, paid web/, "not served twice");
    const body = JSON.parse(text);
    assert.ok(["replayed_authorization", "settlement_failed"].includes(body.reason), body.reason);
    assert.equal(body.reason, "replayed_authorization", "the ledger knows it");
    assert.equal(settledAtFacilitator(payload.payload.authorization.nonce).length, 1);
    await assertMoved(start, payer, PRICE);
  });

  test("the same signed payment sent 10 times at once to an immediate route is served and settled once", async () => {
    const payer = 2;
    const start = await balances(payer);
    const payload = await signPayment(await termsFor(worker, "/articles/hello"), stack.payer(payer).privateKey);
    const responses = await Promise.all(
      Array.from({ length: 10 }, () => worker.fetch("/articles/hello", { headers: paymentHeaders(payload) })),
    );
    const bodies = await Promise.all(responses.map((r) => r.text()));
    const served = responses.filter((r, i) => r.status === 200 && /Hello, paid web/.test(bodies[i]));
    assert.equal(served.length, 1, `statuses: ${responses.map((r) => r.status)}`);
    assert.match(decodeHeader(served[0].headers.get("payment-response")).transaction, TX);
    for (const [i, r] of responses.entries()) {
      if (r === served[0]) continue;
      assert.equal(r.status, 402);
      assert.equal(JSON.parse(bodies[i]).reason, "replayed_authorization");
    }
    assert.equal(settledAtFacilitator(payload.payload.authorization.nonce).length, 1);
    await assertMoved(start, payer, PRICE);
    const view = await ledger(worker, payer);
    const entry = view.settled.find((e) => e.nonce === payload.payload.authorization.nonce.toLowerCase());
    assert.equal(entry?.deferred, false);
    assert.equal(entry?.transaction, decodeHeader(served[0].headers.get("payment-response")).transaction);
  });

  test("an origin error on an immediate route is never settled and leaves nothing open in the ledger", async () => {
    const payer = 3;
    const start = await balances(payer);
    const payload = await signPayment(await termsFor(worker, "/articles/no-such-article"), stack.payer(payer).privateKey);
    const res = await worker.fetch("/articles/no-such-article", { headers: paymentHeaders(payload) });
    assert.equal(res.status, 404);
    assert.equal(res.headers.get("payment-response"), null);
    await res.arrayBuffer();
    const nonce = payload.payload.authorization.nonce.toLowerCase();
    const view = await ledger(worker, payer);
    assert.ok(!view.pending.some((e) => e.nonce === nonce), "nothing left in flight");
    assert.ok(!view.settled.some((e) => e.nonce === nonce));
    assert.equal(settleCalls(nonce).length, 0);
    assert.deepEqual(await balances(payer), start);
  });
});

/** Runs `body(w)` with a Worker whose LEDGER is the stand-in class `ledger` (tests/e2e/lib/ledger-faults.mjs). */
async function withStandIn(ledger, options, body) {
  const w = await startWorker({
    config: deferredConfig(),
    secrets: { X402_ADMIN_TOKEN: TOKEN },
    scriptPath: path.join(ROOT, "tests/e2e/lib/ledger-faults.mjs"),
    modulesRoot: ROOT,
    durableObjects: { LEDGER: ledger, STATS: "Stats" },
    ...options,
  });
  try {
    await body(w);
  } finally {
    await w.dispose();
  }
}

/** Payer #payer buys /articles/hello on `w`: the answer (read) and its receipt, once the money moved. */
async function buyArticle(w, payer) {
  const start = await balances(payer);
  const payload = await signPayment(await termsFor(w, "/articles/hello"), stack.payer(payer).privateKey);
  const res = await w.fetch("/articles/hello", { headers: paymentHeaders(payload) });
  const text = await res.text();
  assert.equal(res.status, 200, text);
  assert.match(text, /Hello, paid web/);
  await assertMoved(start, payer, PRICE);
  return { res, receipt: decodeHeader(res.headers.get("payment-response")) };
}

describe("a ledger that loses an immediate settlement's outcome", () => {
  test("the outcome is sent again: the payment is booked settled with its transaction at once, not left in flight to be reconciled", async () => {
    // The stand-in drops the first outcome it is sent.
    await withStandIn("LedgerLosesFirstOutcome", { config: { ...deferredConfig(), rpc: {} } }, async (w) => {
      const { receipt } = await buyArticle(w, 6);
      const view = await ledger(w, 6);
      assert.deepEqual(view.pending, [], "nothing left in flight");
      assert.equal(view.settled.length, 1);
      assert.equal(view.settled[0].transaction, receipt.transaction);
    });
  });
});

describe("a session paid for whose grant cannot be recorded", () => {
  test("the page is served and paid for, and the log says the session was not recorded, and why", async () => {
    // The stand-in answers no grant of a counted session.
    const lines = [];
    const options = {
      config: { ...deferredConfig(), routes: [{ path: "/articles/*", price: "$0.01", mimeType: "text/html", session: { requests: 3 } }] },
      secrets: { X402_ADMIN_TOKEN: TOKEN, X402_SESSION_SECRET: "session-secret-of-the-deferred-tests-0123456789" },
      onLog: ({ message }) => {
        lines.push(message);
      },
    };
    await withStandIn("LedgerSilentOnGrants", options, async (w) => {
      const { res } = await buyArticle(w, 6);
      assert.equal(res.headers.get("x402-session"), null, "no token for a session that was not recorded");
      const parsed = () => lines.map((l) => { try { return JSON.parse(l); } catch { return null; } });
      const logged = await until("the log line", async () => parsed().find((l) => l?.outcome === "session_grant_failed"));
      assert.equal(logged.detail, "the ledger did not answer");
      assert.equal(logged.payer, stack.payer(6).address);
    });
  });
});

describe("a plan that allows few calls per run", () => {
  test("with 3 calls out per run of the ledger's alarm, a wallet's 7 deferred payments all settle, none ever taken for unanswered", async () => {
    // The stand-in (LedgerFewCalls) refuses the alarm's fourth call out in each run, as the
    // platform refuses the 51st on the Workers Free plan.
    await withStandIn("LedgerFewCalls", {}, async (w) => {
      const key = `0x${randomBytes(32).toString("hex")}`;
      const terms = await termsFor(w);
      const payloads = [];
      for (let i = 0; i < 7; i++) payloads.push(await signPayment(terms, key));
      const address = payloads[0].payload.authorization.from;
      await stack.chain.transferUsdc(stack.payer(6).privateKey, address, 7n * PRICE);
      const payTo = await stack.balanceOf(terms.payTo);
      for (const payload of payloads) {
        const res = await w.fetch("/api/weather", { headers: paymentHeaders(payload) });
        assert.equal(res.status, 200, await res.clone().text());
        await res.arrayBuffer();
      }
      const view = async () =>
        (lastSeen = await (await w.fetch(`/__x402/admin/ledger?wallet=${address}`, { headers: { authorization: `Bearer ${TOKEN}` } })).json());
      const done = await until("all seven settled", async () => {
        const v = await view();
        return v.settled.length === 7 ? v : null;
      }, { ms: 40_000, every: 250 });
      assert.deepEqual(done.failed, []);
      assert.equal(done.delinquent, false);
      for (const e of done.settled) {
        assert.deepEqual([e.unknowns, e.retries], [0, 0], "no attempt taken for unanswered or refused");
      }
      assert.equal(await stack.balanceOf(address), 0n);
      assert.equal((await stack.balanceOf(terms.payTo)) - payTo, 7n * PRICE);
    });
  });
});

// Faults of the ledger and of the facilitator that real parts do not produce on demand. The last
// test is slow: it runs where X402_SLOW_TESTS is set and not empty (scripts/test sets it).
describe("a ledger that does not answer", () => {
  // The stand-in (tests/e2e/lib/ledger-faults.mjs) gives no answer to an immediate payment's
  // admission, and passes every other command to the real ledger.
  let w;
  before(async () => {
    w = await startWorker({
      config: deferredConfig(),
      secrets: { X402_ADMIN_TOKEN: TOKEN },
      scriptPath: path.join(ROOT, "tests/e2e/lib/ledger-faults.mjs"),
      modulesRoot: ROOT,
      durableObjects: { LEDGER: "LedgerSilentOnImmediateAdmissions", STATS: "Stats" },
    });
  });
  after(async () => {
    await w?.dispose();
  });

  test("an immediate payment is not served or settled without the ledger's word", async () => {
    const payer = 1;
    const start = await balances(payer);
    const payload = await signPayment(await termsFor(w, "/articles/hello"), stack.payer(payer).privateKey);
    const hits = stack.origin.hits.length;
    const res = await w.fetch("/articles/hello", { headers: paymentHeaders(payload) });
    const text = await res.text();
    assert.equal(res.status, 503);
    assert.doesNotMatch(text, /Hello, paid web/);
    const body = JSON.parse(text);
    assert.equal(body.reason, "ledger_unavailable");
    assert.match(body.message, /nothing was served, and most likely nothing charged. Send the same payment again/);
    assert.equal(stack.origin.hits.length, hits, "the origin was not asked");
    assert.equal(settleCalls(payload.payload.authorization.nonce).length, 0);
    assert.deepEqual(await balances(payer), start);
  });

  test("a payment served on a deferred route and sent again to an immediate one is served once and settled once", async () => {
    const payer = 1;
    const start = await balances(payer);
    // One authorization fits both routes: the same price, token and payee.
    const payload = await signPayment(await termsFor(w, "/api/weather"), stack.payer(payer).privateKey);
    const nonce = payload.payload.authorization.nonce;
    const first = await w.fetch("/api/weather", { headers: paymentHeaders(payload) });
    assert.equal(first.status, 200, await first.clone().text());
    assert.equal(decodeHeader(first.headers.get("payment-response")).transaction, "", "deferred");
    await first.arrayBuffer();

    const again = await w.fetch("/articles/hello", { headers: paymentHeaders(payload) });
    const text = await again.text();
    assert.equal(again.status, 503, text);
    assert.doesNotMatch(text, /Hello, paid web/, "not served a second time");
    assert.equal(JSON.parse(text).reason, "ledger_unavailable");

    const view = await ledgerUntil("settled with its batch", w, payer, (v) => v.settled.some((e) => e.nonce === nonce.toLowerCase()));
    assert.equal(view.settled.find((e) => e.nonce === nonce.toLowerCase()).deferred, true);
    assert.equal(view.delinquent, false, "the wallet owes nothing");
    assert.equal(settledAtFacilitator(nonce).length, 1);
    await assertMoved(start, payer, PRICE);
  });
});

describe("origins that fail, and replays at the origin", () => {
  test("a deferred request whose origin fails after the batch came due is not charged", async () => {
    const payer = 5;
    const slow = await startSlowOrigin(3500);
    const w = await startWorker({
      config: { ...deferredConfig(), origin: slow.url },
      secrets: { X402_ADMIN_TOKEN: TOKEN },
    });
    try {
      const start = await balances(payer);
      const payload = await signPayment(await termsFor(w, "/api/weather"), stack.payer(payer).privateKey);
      const res = await w.fetch("/api/weather", { headers: paymentHeaders(payload) });
      assert.equal(res.status, 500);
      await res.arrayBuffer();
      await ledgerUntil("closed", w, payer, (v) => v.pending.length === 0);
      assert.equal(settleCalls(payload.payload.authorization.nonce).length, 0, "never sent to /settle");
      assert.deepEqual(await balances(payer), start, "nobody pays for an origin error");
    } finally {
      await w.dispose();
      await slow.stop();
    }
  });

  test("an authorization too close to its end for the origin to answer within its hold is settled before it is served, the origin given its time", async () => {
    const payer = 3;
    const slow = await startSlowOrigin(1500, 200);
    const w = await startWorker({
      config: { ...deferredConfig(), origin: slow.url },
      secrets: { X402_ADMIN_TOKEN: TOKEN },
    });
    try {
      const start = await balances(payer);
      // Valid 36 s more: its settlement deadline (less the 30 s margin) is 6 s away, so a held
      // payment would leave the origin 1 s (its hold ends 5 s before, for a withdrawal), and this
      // origin takes 1.5 s.
      const validBefore = String(Math.floor(Date.now() / 1000) + 36);
      const payload = await signPayment(await termsFor(w), stack.payer(payer).privateKey, { over: { validBefore } });
      const res = await w.fetch("/api/weather", { headers: paymentHeaders(payload) });
      assert.equal(res.status, 200, await res.clone().text());
      assert.equal(await res.text(), "origin answered slowly");
      const receipt = decodeHeader(res.headers.get("payment-response"));
      assert.equal(receipt.success, true);
      assert.match(receipt.transaction, TX, "settled before it was served");
      assert.equal(await stack.chain.authorizationState(stack.payer(payer).address, payload.payload.authorization.nonce), true);
      const now = await balances(payer);
      assert.equal(start.payer - now.payer, PRICE, "the payer paid exactly once");
    } finally {
      await w.dispose();
      await slow.stop();
    }
  });

  test("an origin that does not answer within originTimeoutSeconds: 502 origin_unavailable, nothing charged, deferred or immediate", async () => {
    const payer = 6;
    // Stand-in for a hung origin: it would answer after a minute; the Worker gives it 1 s.
    const hung = await startSlowOrigin(60_000);
    const w = await startWorker({
      config: { ...deferredConfig(), origin: hung.url, originTimeoutSeconds: 1 },
      secrets: { X402_ADMIN_TOKEN: TOKEN },
    });
    try {
      const start = await balances(payer);
      const nonces = [];
      for (const path of ["/api/weather", "/articles/hung"]) {
        const payload = await signPayment(await termsFor(w, path), stack.payer(payer).privateKey);
        nonces.push(payload.payload.authorization.nonce);
        const began = Date.now();
        const res = await w.fetch(path, { headers: paymentHeaders(payload) });
        const body = await res.json();
        assert.equal(res.status, 502, `${path}: ${JSON.stringify(body)}`);
        assert.equal(body.reason, "origin_unavailable");
        assert.match(body.message, /within 1 s/);
        assert.equal(res.headers.get("payment-response"), null, "no receipt for what was not served");
        assert.ok(Date.now() - began < 5000, `${path} waited ${Date.now() - began} ms`);
      }
      await ledgerUntil("closed", w, payer, (v) => v.pending.length === 0);
      // Past the deferred batch window: still nothing sent to /settle, nothing moved.
      await sleep((BATCH + 2) * 1000);
      for (const n of nonces) assert.equal(settleCalls(n).length, 0, "never sent to /settle");
      assert.deepEqual(await balances(payer), start, "nobody pays for an origin that did not answer");
    } finally {
      await w.dispose();
      await hung.stop();
    }
  });

  test("a POST settled now gets the origin's whole time, counted from when the origin is asked, not from before a slow /verify", async () => {
    const payer = 4;
    // The origin takes 1.2 s of its 2 s; the facilitator's /verify, asked before the origin for a
    // POST on an immediate route, takes 1.5 s (a STAND-IN in front of the real facilitator, to
    // slow it on demand). Counted from before /verify, the origin would have 0.5 s left.
    const slow = await startSlowOrigin(1200, 200);
    const slowVerify = await startProxy(stack.facilitator.url, async (req, body, forward) => {
      if (req.url === "/verify") {
        slowVerify.verified = (slowVerify.verified ?? 0) + 1;
        await sleep(1500);
      }
      return forward();
    });
    const config = deferredConfig();
    const w = await startWorker({
      config: { ...config, origin: slow.url, originTimeoutSeconds: 2, facilitator: { ...config.facilitator, url: slowVerify.url } },
      secrets: { X402_ADMIN_TOKEN: TOKEN },
    });
    try {
      const start = await balances(payer);
      const payload = await signPayment(await termsFor(w, "/articles/order"), stack.payer(payer).privateKey);
      const res = await w.fetch("/articles/order", { method: "POST", body: "qty=1", headers: paymentHeaders(payload) });
      const text = await res.text();
      assert.equal(res.status, 200, text);
      assert.equal(text, "origin answered slowly");
      assert.equal(decodeHeader(res.headers.get("payment-response")).success, true);
      assert.equal(slowVerify.verified, 1, "the slowed /verify was asked, once");
      await assertMoved(start, payer, PRICE);
    } finally {
      await w.dispose();
      await slowVerify.stop();
      await slow.stop();
    }
  });

  for (const [mode, path] of [["immediate", "/articles/order"], ["deferred (held)", "/missing/order"]]) {
    test(`${mode}: a paid POST whose body comes slowly gives the origin its whole time from when the body has arrived, and is paid for`, async () => {
      // The origin has 2 s (originTimeoutSeconds) and takes 1.2 s once it has the whole request;
      // the client holds its body's end back 1.5 s. Counted from when the request was sent, the
      // origin's work would be done and answered as a timeout, its payment withdrawn.
      const payer = 5;
      const site = await startActingOrigin(() => sleep(1200));
      const w = await startWorker({ config: { ...deferredConfig(), origin: site.url, originTimeoutSeconds: 2 }, secrets: { X402_ADMIN_TOKEN: TOKEN } });
      try {
        const start = await balances(payer);
        const payload = await signPayment(await termsFor(w, path), stack.payer(payer).privateKey);
        const res = await postSlowly(w.url + path, paymentHeaders(payload), ["qty", "=1"], 1500);
        assert.equal(res.status, 200, res.body);
        assert.equal(res.body, "done");
        assert.deepEqual(site.bodies, ["qty=1"], "the origin did the work once, with the whole body");
        assert.equal(decodeHeader(res.headers["payment-response"]).success, true);
        await until("the payment moved", async () => (await balances(payer)).payer !== start.payer, { ms: (BATCH + 20) * 1000 });
        await assertMoved(start, payer, PRICE);
      } finally {
        await w.dispose();
        await site.stop();
      }
    });
  }

  test("a deferred POST whose authorization would let its hold cut the origin's time is settled now instead, the origin given its whole time", async () => {
    // Valid 140 s more, with the 30 s margin and the 8 s of retries: a hold of 102 s, which would
    // leave the origin 97 s of its 100. The payer chooses validBefore: an origin cut off after a
    // POST's work would have done it for a withdrawn payment.
    const payer = 3;
    const site = await startActingOrigin(async () => {});
    const w = await startWorker({ config: { ...deferredConfig(), origin: site.url }, secrets: { X402_ADMIN_TOKEN: TOKEN } });
    try {
      const start = await balances(payer);
      const terms = await termsFor(w, "/missing/order");
      const validBefore = String(Math.floor(Date.now() / 1000) + 140);
      const payload = await signPayment(terms, stack.payer(payer).privateKey, { over: { validBefore } });
      const res = await w.fetch("/missing/order", { method: "POST", body: "qty=1", headers: paymentHeaders(payload) });
      assert.equal(res.status, 200, await res.clone().text());
      assert.equal(await res.text(), "done");
      assert.match(decodeHeader(res.headers.get("payment-response")).transaction, TX, "settled before it was served");
      await assertMoved(start, payer, PRICE);
      // Signed for the terms' whole time, the same order is held, its settlement pending.
      const whole = await signPayment(terms, stack.payer(payer).privateKey);
      const held = await w.fetch("/missing/order", { method: "POST", body: "qty=2", headers: paymentHeaders(whole) });
      assert.equal(held.status, 200, await held.clone().text());
      await held.arrayBuffer();
      assert.equal(decodeHeader(held.headers.get("payment-response")).transaction, "", "accepted, settlement pending");
      assert.deepEqual(site.bodies, ["qty=1", "qty=2"]);
    } finally {
      await w.dispose();
      await site.stop();
    }
  });

  test("an origin that answers a paid POST before its body has all come is not cut off once the body ends: the answer streams whole", async () => {
    const payer = 5;
    const http = await import("node:http");
    // Answers at once, without reading the body, then streams its own for 3.5 s: longer than its
    // 2 s (originTimeoutSeconds) counted from when the client's body ended, after 1 s.
    const server = http.createServer((req, res) => {
      req.resume();
      res.writeHead(200, { "content-type": "text/plain" });
      res.write("first ");
      setTimeout(() => res.end("last"), 3500);
    });
    await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
    const w = await startWorker({
      config: { ...deferredConfig(), origin: `http://127.0.0.1:${server.address().port}`, originTimeoutSeconds: 2 },
      secrets: { X402_ADMIN_TOKEN: TOKEN },
    });
    try {
      const start = await balances(payer);
      const payload = await signPayment(await termsFor(w, "/articles/stream"), stack.payer(payer).privateKey);
      const res = await postSlowly(w.url + "/articles/stream", paymentHeaders(payload), ["qty", "=1"], 1000);
      assert.equal(res.status, 200, res.body);
      assert.equal(res.body, "first last", "the paid answer came whole");
      await assertMoved(start, payer, PRICE);
    } finally {
      await w.dispose();
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });

  test("a paid POST whose body is held back past the moment that leaves the origin its whole time is cut off: 408 body_too_slow, the origin never has it whole, nothing charged", async () => {
    // An immediate payment is in the ledger's hands for at most 120 s less the facilitator's time
    // (12 s here) and 5 s: the origin's 100 s leave the upload 3 s.
    const payer = 5;
    const site = await startActingOrigin(async () => {});
    const config = deferredConfig();
    const w = await startWorker({
      config: { ...config, origin: site.url, originTimeoutSeconds: 100, facilitator: { ...config.facilitator, timeoutMs: 12_000 } },
      secrets: { X402_ADMIN_TOKEN: TOKEN },
    });
    try {
      const start = await balances(payer);
      const path = "/articles/order";
      for (const length of [true, false]) {
        const payload = await signPayment(await termsFor(w, path), stack.payer(payer).privateKey);
        const nonce = payload.payload.authorization.nonce;
        const began = Date.now();
        const res = await postSlowly(w.url + path, paymentHeaders(payload), ["qty", "=1"], 6000, { length });
        assert.equal(res.status, 408, res.body);
        const body = JSON.parse(res.body);
        assert.equal(body.reason, "body_too_slow");
        assert.match(body.message, /nothing was charged/);
        assert.equal(res.headers["payment-response"], undefined, "no receipt");
        assert.ok(Date.now() - began < 5500, `cut off after ${Date.now() - began} ms`);
        await sleep(6500 - (Date.now() - began));
        assert.deepEqual(site.bodies, [], "the origin never had the whole body");
        assert.deepEqual(site.partial.filter(Boolean), [], "nor any of it: an origin may act on a body before its end");
        assert.equal(settleCalls(nonce).length, 0, "never sent to /settle");
        // Withdrawn: the same payment, its body sent whole, is served and paid once.
        const again = await w.fetch(path, { method: "POST", body: "qty=1", headers: paymentHeaders(payload) });
        assert.equal(again.status, 200, await again.clone().text());
        assert.equal(await again.text(), "done");
        assert.deepEqual(site.bodies, ["qty=1"]);
        site.bodies.length = 0;
      }
      await assertMoved(start, payer, 2n * PRICE);
    } finally {
      await w.dispose();
      await site.stop();
    }
  });

  test("an immediate POST signed to end sooner than the terms allow is refused before the origin or /verify is asked: the site's work would outlast its settlement", async () => {
    const payer = 4;
    const key = stack.payer(payer).privateKey;
    const path = "/articles/hello";
    const since = Date.now();
    const start = await balances(payer);
    const terms = await termsFor(worker, path);
    // The site has 100 s (originTimeoutSeconds), the terms give 300 s; this one leaves 40.
    const short = await signPayment(terms, key, { over: { validBefore: String(Math.floor(Date.now() / 1000) + 40) } });
    const nonce = short.payload.authorization.nonce.toLowerCase();
    const res = await worker.fetch(path, { method: "POST", body: "order=1", headers: paymentHeaders(short) });
    const body = await res.json();
    assert.equal(res.status, 402, JSON.stringify(body));
    assert.equal(body.reason, "authorization_expires_too_soon");
    assert.match(body.message, /100 s to answer.*maxTimeoutSeconds/);
    assert.equal(stack.origin.hits.filter((h) => h.path === path && h.at >= since).length, 0, "the origin was not asked");
    assert.equal(stack.facilitator.calls.filter((c) => c.nonce?.toLowerCase() === nonce).length, 0, "nor the facilitator");
    assert.deepEqual(await balances(payer), start, "nothing moved");
    // Signed for the terms' whole time, the same order is served and settled.
    const whole = await signPayment(terms, key);
    const paid = await worker.fetch(path, { method: "POST", body: "order=1", headers: paymentHeaders(whole) });
    assert.equal(paid.status, 200, await paid.clone().text());
    await paid.arrayBuffer();
    await assertMoved(start, payer, PRICE);
  });

  for (const [what, act, refusedAs] of [
    [
      "empties its wallet",
      async (key) => {
        const all = await stack.balanceOf(stack.payer(PAYER).address);
        await stack.chain.transferUsdc(key, stack.payer(2).address, all);
        return async () => stack.chain.transferUsdc(stack.payer(2).privateKey, stack.payer(PAYER).address, all);
      },
      /balance|funds/i,
    ],
    ["cancels the authorization", async (key, nonce) => void (await stack.chain.cancelAuthorization(key, nonce)), /authorization_cancelled/],
  ]) {
    test(`a payer who ${what} while the site does a POST's work is refused at settlement, held owing, and refused next time`, async () => {
      // `/verify` passed before the origin was asked; the payer then acts on chain while the
      // origin works (the origin itself does it here, to time it), so settlement fails after a
      // POST's work was done.
      const key = stack.payer(PAYER).privateKey;
      let payload;
      let restore;
      const site = await startActingOrigin(async () => {
        restore = await act(key, payload.payload.authorization.nonce);
      });
      const w = await startWorker({ config: { ...deferredConfig(), origin: site.url }, secrets: { X402_ADMIN_TOKEN: TOKEN } });
      try {
        const start = await balances(PAYER);
        payload = await signPayment(await termsFor(w, "/articles/order"), key);
        const res = await w.fetch("/articles/order", { method: "POST", body: "qty=1", headers: paymentHeaders(payload) });
        const body = await res.json();
        assert.equal(res.status, 402, JSON.stringify(body));
        assert.equal(body.reason, "settlement_failed");
        assert.equal(site.worked, 1, "the origin did the work");
        const view = await ledgerUntil("the entry failed", w, PAYER, (v) => v.failed.length === 1 && v.pending.length === 0, { ms: 30_000 });
        assert.equal(view.failed[0].delinquent, true, JSON.stringify(view.failed[0]));
        assert.match(`${view.failed[0].reason} ${view.failed[0].message ?? ""}`, refusedAs);
        assert.equal(view.owed_micro_usd, "10000");
        assert.equal(view.delinquent, true);
        await restore?.();
        restore = undefined;
        assert.deepEqual(await balances(PAYER), start, "nothing was paid");
        // Its next payment, funded and valid, is refused before anything is asked.
        const next = await signPayment(await termsFor(w, "/articles/hello"), key);
        const again = await w.fetch("/articles/hello", { headers: paymentHeaders(next) });
        const refusal = await again.json();
        assert.equal(again.status, 402);
        assert.equal(refusal.reason, "wallet_delinquent");
        assert.equal(site.worked, 1, "not asked again");
        assert.deepEqual(await balances(PAYER), start, "nothing moved");
      } finally {
        await restore?.();
        await w.dispose();
        await site.stop();
      }
    });
  }

  test("the admin view of every ledger comes in pages (each wallet is a call to its ledger): the cursor walks them all, once each", async () => {
    const admin = async (q) => {
      const res = await worker.fetch(`/__x402/admin/ledger${q}`, { headers: { authorization: `Bearer ${TOKEN}` } });
      assert.equal(res.status, 200);
      assert.equal(res.headers.get("cache-control"), "no-store", "no cache keeps the books");
      return res.json();
    };
    // Keys holding no USDC are indexed too: their immediate payments are admitted, then refused
    // at settlement. (Which is why the view comes in pages: anyone can add wallets to it.)
    const terms = await termsFor(worker, "/articles/hello");
    for (let i = 0; i < 3; i++) {
      const res = await worker.fetch("/articles/hello", { headers: paymentHeaders(await signPayment(terms, `0x${randomBytes(32).toString("hex")}`)) });
      assert.equal(res.status, 402);
      await res.arrayBuffer();
    }
    const first = await admin("");
    assert.ok(first.wallets.length >= 3, `${first.wallets.length} wallets`);
    assert.deepEqual(first.unanswered, []);
    const seen = [];
    let cursor = null;
    let pages = 0;
    do {
      const page = await admin(`?limit=1${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`);
      assert.ok(page.wallets.length <= 1);
      seen.push(...page.wallets.map((w) => w.wallet));
      cursor = page.cursor;
      pages += 1;
    } while (cursor && pages < 100);
    assert.equal(cursor, null, "the last page says so");
    assert.deepEqual([...seen].sort(), first.wallets.map((w) => w.wallet).sort(), "every wallet once");

    // Those refused payments were never served, so nothing was owed: marking one paid on the
    // admin's word alone would count it as money earned (and raise the wallet's earned credit).
    const refused = first.wallets.find((w) => w.failed.some((e) => !e.deferred));
    assert.ok(refused, "a wallet with a refused immediate payment");
    const entry = refused.failed.find((e) => !e.deferred);
    const markPaid = (tx) =>
      worker.fetch(`/__x402/admin/ledger/mark-paid?wallet=${refused.wallet}&id=${encodeURIComponent(entry.id)}${tx}`, {
        method: "POST",
        headers: { authorization: `Bearer ${TOKEN}` },
      });
    const res = await markPaid("");
    assert.equal(res.status, 409);
    const answer = await res.json();
    assert.equal(answer.ok, false);
    assert.match(answer.error, /never served/);
    const after = await admin(`?wallet=${refused.wallet}`);
    assert.equal(after.paid_micro_usd, refused.paid_micro_usd, "nothing counted as paid");
    assert.ok(after.failed.some((e) => e.id === entry.id), "the entry is still a failed one");
  });

  test("a signed payment replayed at an immediate route never reaches the origin", async () => {
    const payer = 5;
    const since = Date.now();
    const payload = await signPayment(await termsFor(worker, "/articles/edge-economics"), stack.payer(payer).privateKey);
    const responses = await Promise.all(
      Array.from({ length: 5 }, () => worker.fetch("/articles/edge-economics", { headers: paymentHeaders(payload) })),
    );
    await Promise.all(responses.map((r) => r.arrayBuffer()));
    assert.equal(responses.filter((r) => r.status === 200).length, 1);
    const hits = stack.origin.hits.filter((h) => h.path === "/articles/edge-economics" && h.at >= since);
    assert.equal(hits.length, 1, `the origin saw ${hits.length} requests for one payment`);
  });

  test("a facilitator outage longer than five backoffs (~40 s) still settles every deferred payment", {
    skip: !process.env.X402_SLOW_TESTS && "slow (about 70 s): set X402_SLOW_TESTS=1",
    timeout: 120_000,
  }, async () => {
    const payer = 6;
    const start = await balances(payer);
    const { pay, sent } = officialClient(payer);
    await withFacilitatorStopped(async () => {
      const res = await pay(`${worker.url}/api/weather`);
      assert.equal(res.status, 200);
      await res.arrayBuffer();
      await ledgerUntil("six unanswered attempts", worker, payer, (v) =>
        v.failed.length > 0 || (v.pending.length === 1 && v.pending[0].unknowns >= 6), { ms: 60_000, every: 500 });
      assert.equal(lastSeen.failed.length, 0, `given up during the outage: ${JSON.stringify(lastSeen.failed)}`);
    });
    const view = await ledgerUntil("settled", worker, payer, (v) => v.settled.length === 1 || v.failed.length > 0, { ms: 90_000, every: 500 });
    assert.equal(view.failed.length, 0, JSON.stringify(view.failed));
    assert.equal(settledAtFacilitator(sent[0]).length, 1);
    await assertMoved(start, payer, PRICE);
  });
});

/** A JSON-RPC call to the local chain. */
async function rpcCall(method, params = []) {
  const res = await fetch(stack.rpcUrl, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ jsonrpc: "2.0", id: 1, method, params }),
  });
  return (await res.json()).result;
}

/** An origin that runs `act` on each POST before answering 200 (and 200 to anything else). */
async function startActingOrigin(act) {
  const http = await import("node:http");
  const site = {
    worked: 0,
    /** The POST bodies it received whole. */
    bodies: [],
    /** What it received of bodies that never came whole. */
    partial: [],
    url: "",
  };
  const server = http.createServer(async (req, res) => {
    let body = "";
    try {
      for await (const chunk of req) body += chunk;
    } catch {
      site.partial.push(body);
      return; // the request never came whole: no work
    }
    if (req.method === "POST") {
      site.worked += 1;
      site.bodies.push(body);
      await act();
    }
    res.writeHead(200, { "content-type": "text/plain" });
    res.end("done");
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  site.url = `http://127.0.0.1:${server.address().port}`;
  site.stop = () =>
    new Promise((resolve) => {
      server.closeAllConnections();
      server.close(resolve);
    });
  return site;
}

/**
 * A POST to `url` whose body is `parts`, the last sent `pauseMs` after the others, with a
 * Content-Length unless `length` is false (chunked then). Resolves to { status, headers, body }.
 */
async function postSlowly(url, headers, parts, pauseMs, { length = true } = {}) {
  const http = await import("node:http");
  const whole = parts.join("");
  return new Promise((resolve, reject) => {
    const req = http.request(url, {
      method: "POST",
      headers: { ...headers, "content-type": "application/x-www-form-urlencoded", ...(length ? { "content-length": Buffer.byteLength(whole) } : {}) },
    });
    req.on("response", async (res) => {
      let body = "";
      try {
        for await (const chunk of res) body += chunk;
      } catch (e) {
        body += ` [broken off: ${e.code ?? e.message}]`;
      }
      resolve({ status: res.statusCode, headers: res.headers, body });
    });
    req.on("error", reject);
    for (const p of parts.slice(0, -1)) req.write(p);
    setTimeout(() => req.end(parts.at(-1)), pauseMs).unref();
  });
}

/** An origin that answers `status` (500 by default) after `ms`, to every request. */
async function startSlowOrigin(ms, status = 500) {
  const http = await import("node:http");
  const server = http.createServer((req, res) => {
    const timer = setTimeout(() => {
      res.writeHead(status, { "content-type": "text/plain" });
      res.end(status < 400 ? "origin answered slowly" : "origin failed slowly");
    }, ms);
    res.on("close", () => clearTimeout(timer));
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    stop: () => new Promise((resolve) => {
      server.closeAllConnections();
      server.close(resolve);
    }),
  };
}
