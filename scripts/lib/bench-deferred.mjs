// Paid-request latency, deferred settlement next to immediate settlement: a benchmark, not a test.
//
// Starts the local stack (anvil + the real USDC, the official facilitator, the demo origin) and two
// built Workers under Miniflare with their LEDGER Durable Object and X402_KV: one whose route settles
// immediately (origin, then /settle and the chain, then the answer) and one whose route is deferred
// (the ledger admits the payment, the origin answers, settlement happens later in a batch). Each is
// paid N times, one request after another, with payments signed beforehand (so signing is not
// timed), and the time from sending the request to the last byte of the answer is measured.
// Then it waits for the deferred batch to settle and checks the money on chain.
//
//   . scripts/lib/env.sh && node scripts/lib/bench-deferred.mjs [--n 30] [--warmup 3] [--batch 10]
//
// Build first (scripts/build): it runs build/entry.mjs as it is. All on loopback, so the numbers are
// the Worker's own work plus local round trips; a real chain adds block time to every immediate
// payment and nothing to a deferred one.
import { parseArgs } from "node:util";
import { decodeHeader, encodeHeader, startStack, startWorker } from "../../tests/e2e/harness.mjs";
import { signPayment } from "../../tests/e2e/lib/sign.mjs";

const { values: opts } = parseArgs({
  options: {
    n: { type: "string", default: "30" },
    warmup: { type: "string", default: "3" },
    batch: { type: "string", default: "10" },
  },
});
const N = Number(opts.n);
const WARMUP = Number(opts.warmup);
const BATCH = Number(opts.batch);
const PATH = "/api/weather";
const PRICE = 10000n; // $0.01
const TOKEN = "admin-token-of-the-deferred-bench";

const log = (line) => console.log(`[bench] ${line}`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Nearest-rank percentile of sorted samples. */
function percentile(sorted, p) {
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[rank - 1];
}

function summary(samples) {
  const sorted = [...samples].sort((a, b) => a - b);
  const mean = sorted.reduce((s, x) => s + x, 0) / sorted.length;
  return {
    p50: percentile(sorted, 50),
    p90: percentile(sorted, 90),
    p99: percentile(sorted, 99),
    mean,
    min: sorted[0],
    max: sorted.at(-1),
  };
}

const stack = await startStack();
const workers = [];
try {
  const config = (settlement) =>
    stack.config({
      // Enough credit for every request of the run, so that none falls back to immediate settlement.
      // A wallet with its whole credit (earned credit would settle a new wallet's first payments
      // before serving them: the immediate path, measured beside it).
      deferred: { batchSeconds: BATCH, safetyMarginSeconds: 30, creditLimit: `$${WARMUP + N}.00`, credit: "full" },
      rpc: { [stack.network]: stack.rpcUrl },
      routes: [{ path: PATH, method: "GET", price: "$0.01", mimeType: "application/json", settlement }],
    });
  const [immediate, deferred] = await Promise.all([
    startWorker({ config: config("immediate"), secrets: { X402_ADMIN_TOKEN: TOKEN } }),
    startWorker({ config: config("deferred"), secrets: { X402_ADMIN_TOKEN: TOKEN } }),
  ]);
  workers.push(immediate, deferred);
  log(`stack up in ${Math.round(stack.startMs)} ms; ${N} paid requests per mode after ${WARMUP} warm-up ones; deferred batch window ${BATCH} s`);

  const modes = [
    { name: "immediate", worker: immediate, payer: 0 },
    { name: "deferred", worker: deferred, payer: 1 },
  ];
  for (const m of modes) {
    const res = await m.worker.fetch(PATH);
    if (res.status !== 402) throw new Error(`${m.name}: expected 402 terms, got ${res.status}`);
    const terms = decodeHeader(res.headers.get("payment-required")).accepts[0];
    const key = stack.payer(m.payer).privateKey;
    m.payments = await Promise.all(Array.from({ length: WARMUP + N }, () => signPayment(terms, key)));
    m.before = await stack.balanceOf(stack.payer(m.payer).address);
  }

  // One mode after the other, so that the deferred batch (settled after its window) never competes
  // with the immediate settlements for the facilitator and the chain while they are being timed.
  for (const m of modes) {
    m.samples = [];
    for (const [i, payment] of m.payments.entries()) {
      const started = performance.now();
      const res = await m.worker.fetch(PATH, { headers: { "payment-signature": encodeHeader(payment) } });
      await res.arrayBuffer();
      const ms = performance.now() - started;
      if (res.status !== 200) throw new Error(`${m.name} request ${i}: status ${res.status}`);
      const receipt = decodeHeader(res.headers.get("payment-response"));
      const pending = receipt.transaction === "";
      if (receipt.success !== true || pending !== (m.name === "deferred")) {
        throw new Error(`${m.name} request ${i}: unexpected receipt ${JSON.stringify(receipt)}`);
      }
      if (i >= WARMUP) m.samples.push(ms);
    }
    m.stats = summary(m.samples);
    m.lastResponseAt = Date.now();
  }

  const fmt = (x) => `${x.toFixed(1)} ms`.padStart(10);
  console.log();
  console.log(`paid-request latency, ${N} sequential requests each (nearest-rank percentiles)`);
  console.log(`${"".padEnd(8)}${"immediate".padStart(12)}${"deferred".padStart(12)}${"ratio".padStart(9)}`);
  for (const k of ["p50", "p90", "p99", "mean", "min", "max"]) {
    const [a, b] = modes.map((m) => m.stats[k]);
    console.log(`${k.padEnd(8)}  ${fmt(a)}  ${fmt(b)}  ${(a / b).toFixed(1).padStart(6)}×`);
  }
  console.log();

  // The deferred payments are not done until they are settled: wait for the batch and check money.
  const d = modes[1];
  const wallet = stack.payer(d.payer).address;
  const deadline = Date.now() + (BATCH + 60) * 1000;
  let view;
  for (;;) {
    const res = await deferred.fetch(`/__x402/admin/ledger?wallet=${wallet}`, {
      headers: { authorization: `Bearer ${TOKEN}` },
    });
    view = await res.json();
    if (view.pending.length === 0 || Date.now() > deadline) break;
    await sleep(200);
  }
  const total = BigInt(WARMUP + N);
  const moved = {
    immediate: modes[0].before - (await stack.balanceOf(stack.payer(modes[0].payer).address)),
    deferred: d.before - (await stack.balanceOf(wallet)),
  };
  log(`deferred: ${view.settled_trimmed + view.settled.length} settled, ${view.failed.length} failed, ${view.pending.length} pending, ` +
    `${((Date.now() - d.lastResponseAt) / 1000).toFixed(1)} s after the last answer (window ${BATCH} s)`);
  for (const m of modes) {
    const ok = moved[m.name] === total * PRICE;
    log(`${m.name}: payer paid ${moved[m.name]} atomic units for ${total} requests (${ok ? "exact" : `EXPECTED ${total * PRICE}`})`);
    if (!ok) process.exitCode = 1;
  }
} finally {
  await Promise.all(workers.map((w) => w.dispose()));
  await stack.stop();
}
