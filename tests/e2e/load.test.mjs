// Load with money, black-box: N distinct pre-signed payments sent at concurrency C to a deferred
// route of the built Worker in workerd (Miniflare, wallet ledgers in the LEDGER Durable Object), in
// front of the demo origin, settled in batches by the official facilitator on a local chain with the
// real USDC. Every payment must be served exactly once with a pending receipt, every one settled, and
// the balances exact to the atomic unit. Throughput and time to all settled are printed (a figure,
// not an assertion).
//
//   . scripts/lib/env.sh && node --test tests/e2e/load.test.mjs
//   X402_LOAD_PAYMENTS=200 X402_LOAD_CONCURRENCY=20 node --test tests/e2e/load.test.mjs
//
// Payments are spread round-robin over all the funded payers, the credit limit is raised to what one
// payer can run up in the worst case (its share of N at the price, plus one), and wallets get that
// credit from their first payment (`credit: "full"`, not earned): a payment over a wallet's credit
// would be settled before answering instead of deferred, which is a different path from the one
// measured here (earned credit is tested in deferred.test.mjs). Spreading keeps each wallet's ledger (one Durable Object each)
// from being the only queue, as with real traffic from many clients.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { ADMIN_TOKEN, decodeHeader, encodeHeader, startStack, startWorker } from "./harness.mjs";
import { signPayment } from "./lib/sign.mjs";

const N = Number(process.env.X402_LOAD_PAYMENTS ?? 60);
const C = Number(process.env.X402_LOAD_CONCURRENCY ?? 10);
const PRICE = 10000n; // "$0.01"
const ADMIN = ADMIN_TOKEN;
const ROUTE = "/api/weather";

let stack, worker, payers;

before(async () => {
  assert.ok(Number.isInteger(N) && N > 0, "X402_LOAD_PAYMENTS must be a positive integer");
  assert.ok(Number.isInteger(C) && C > 0, "X402_LOAD_CONCURRENCY must be a positive integer");
  stack = await startStack();
  payers = stack.accounts.payers.length;
  // Micro-dollars one payer may run up here at most (USDC has 6 decimals), and never below $1.
  const perPayer = BigInt(Math.ceil(N / payers) + 1) * PRICE;
  const credit = perPayer > 1_000_000n ? perPayer : 1_000_000n;
  worker = await startWorker({
    config: stack.config({
      deferred: {
        batchSeconds: 1,
        safetyMarginSeconds: 30,
        credit: "full",
        creditLimit: `$${credit / 1_000_000n}.${String(credit % 1_000_000n).padStart(6, "0")}`,
      },
      rpc: { [stack.network]: stack.rpcUrl },
      routes: [{ path: ROUTE, method: "GET", price: "$0.01", mimeType: "application/json", settlement: "deferred" }],
    }),
    secrets: { X402_ADMIN_TOKEN: ADMIN },
  });
});
after(async () => {
  await worker?.dispose();
  await stack?.stop();
});

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const pct = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];

async function adminView() {
  const res = await worker.fetch("/__x402/admin/ledger", { headers: { authorization: `Bearer ${ADMIN}` } });
  assert.equal(res.status, 200);
  return res.json();
}

test(`${N} payments at concurrency ${C}, deferred: each served once, all settled, balances exact`, { timeout: 120_000 + N * 500 }, async () => {
  const terms = decodeHeader((await worker.fetch(ROUTE)).headers.get("payment-required")).accepts[0];
  const who = Array.from({ length: payers }, (_, i) => stack.payer(i));
  const before = {
    payTo: await stack.balanceOf(stack.accounts.payTo.address),
    payers: await Promise.all(who.map((p) => stack.balanceOf(p.address))),
    settlements: stack.facilitator.settlements().length,
    originHits: stack.origin.hits.filter((h) => h.path === ROUTE).length,
  };

  // Pre-signed, so that the run measures the paywall and not the signer.
  const jobs = await Promise.all(
    Array.from({ length: N }, async (_, i) => {
      const payer = i % payers;
      const payload = await signPayment(terms, who[payer].privateKey);
      return { i, payer, nonce: payload.payload.authorization.nonce, header: encodeHeader(payload) };
    }),
  );
  assert.equal(new Set(jobs.map((j) => j.nonce)).size, N, "N distinct payments");

  const results = new Array(N);
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: Math.min(C, N) }, async () => {
      for (;;) {
        const job = jobs[next++];
        if (!job) return;
        const started = performance.now();
        const res = await fetch(`${worker.url}${ROUTE}`, { headers: { "payment-signature": job.header } });
        const body = await res.text();
        results[job.i] = {
          status: res.status,
          ms: performance.now() - started,
          receipt: decodeHeader(res.headers.get("payment-response")),
          body,
        };
      }
    }),
  );
  const servedMs = performance.now() - t0;

  // Every payment served exactly once, with a "settlement pending" receipt naming its payer.
  for (const [i, r] of results.entries()) {
    assert.equal(r.status, 200, `payment ${i}: ${r.body.slice(0, 300)}`);
    assert.equal(JSON.parse(r.body).paid, true, "the weather was served");
    assert.equal(r.receipt?.success, true);
    assert.equal(r.receipt.transaction, "", "deferred: accepted, settlement pending");
    assert.equal(r.receipt.payer, who[jobs[i].payer].address);
  }
  const originHits = stack.origin.hits.filter((h) => h.path === ROUTE).length - before.originHits;
  assert.equal(originHits, N, "the origin served each payment exactly once");

  // Settled, every one, by the wallets' ledgers. A ledger lists its latest settled entries and
  // counts the older ones (settled_trimmed).
  const settledIn = (v) => v.wallets.reduce((n, w) => n + w.settled.length + w.settled_trimmed, 0);
  let view;
  for (const deadline = Date.now() + 60_000 + N * 300; ; await sleep(100)) {
    view = await adminView();
    if (settledIn(view) >= N && view.pending === 0) break;
    assert.ok(view.failed === 0, `failed settlements: ${JSON.stringify(view).slice(0, 1500)}`);
    assert.ok(Date.now() < deadline, `not all settled in time: ${settledIn(view)}/${N} settled, ${view.pending} pending`);
  }
  const settledMs = performance.now() - t0;
  assert.equal(settledIn(view), N);
  assert.equal(view.wallets.reduce((n, w) => n + w.admitted, 0), N, "N admissions, no more");
  assert.equal(view.failed, 0);
  assert.equal(view.unsettledMicroUsd, "0");
  assert.equal(view.owedMicroUsd, "0");
  for (const w of view.wallets) assert.equal(w.lost_micro_usd, "0");
  const sentNonces = new Set(jobs.map((j) => j.nonce.toLowerCase()));
  const listed = view.wallets.flatMap((w) => w.settled);
  for (const e of listed) {
    assert.ok(sentNonces.has(e.nonce), `settled ${e.nonce}, which was not sent`);
    assert.match(e.transaction, /^0x[0-9a-f]{64}$/);
    assert.equal(e.deferred, true);
    assert.equal(e.amount, String(PRICE));
  }
  assert.equal(new Set(listed.map((e) => e.nonce)).size, listed.length, "no entry twice");

  // On chain, to the atomic unit.
  const settlements = stack.facilitator.settlements().slice(before.settlements);
  assert.equal(settlements.length, N, "the facilitator settled N payments");
  assert.equal(new Set(settlements.map((s) => s.nonce.toLowerCase())).size, N, "each once");
  assert.equal(new Set(settlements.map((s) => s.result.transaction)).size, N, "N transactions");
  const payTo = await stack.balanceOf(stack.accounts.payTo.address);
  assert.equal(payTo - before.payTo, BigInt(N) * PRICE, "payTo gained exactly N × price");
  for (let p = 0; p < payers; p++) {
    const count = BigInt(jobs.filter((j) => j.payer === p).length);
    assert.equal(before.payers[p] - (await stack.balanceOf(who[p].address)), count * PRICE, `payer ${p} paid exactly ${count} × price`);
  }
  const used = await Promise.all(jobs.map((j) => stack.chain.authorizationState(who[j.payer].address, j.nonce)));
  assert.ok(used.every(Boolean), "every authorization is used on chain");

  const lat = results.map((r) => r.ms).sort((a, b) => a - b);
  const f = (ms) => `${ms.toFixed(1)} ms`;
  console.log(
    [
      `load: ${N} deferred payments from ${payers} payers at concurrency ${C}`,
      `  served in ${(servedMs / 1000).toFixed(2)} s: ${(N / (servedMs / 1000)).toFixed(1)} paid requests/s`,
      `  latency p50 ${f(pct(lat, 50))}, p90 ${f(pct(lat, 90))}, p99 ${f(pct(lat, 99))}, max ${f(lat.at(-1))}`,
      `  all settled ${(settledMs / 1000).toFixed(2)} s after the first request (${((settledMs - servedMs) / 1000).toFixed(2)} s after the last answer): ${(N / (settledMs / 1000)).toFixed(1)} settlements/s`,
    ].join("\n"),
  );
});
