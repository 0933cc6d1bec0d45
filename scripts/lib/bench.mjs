// The benchmark behind `scripts/bench`: x402-edge against the official x402 middleware, side by side,
// on loopback, with one local chain, one real USDC contract, one official facilitator and one demo
// origin for everyone.
//
//   origin      the demo origin alone: the ceiling of the free path
//   empty       a Worker doing only what the platform must (402, pass-through, one KV read, one Durable
//               Object write), in the same workerd: the floor
//   reference   bench/reference: @x402/hono + @x402/core + @x402/evm's exact server scheme in a Worker
//               (nodejs_compat), bundled by wrangler, in workerd under Miniflare
//   immediate   build/entry.mjs (scripts/build) in workerd under Miniflare, set up as the black-box
//               tests' harness sets it up: settles through the facilitator before answering
//   deferred    the same Worker with settlement = "deferred" on the route: answers once the payment is
//               verified locally and admitted by the wallet's ledger, settles in batches later
//   session     the same Worker with a session sold on the route (if the Worker knows sessions):
//               one payment, then requests on the session token
//
// Measured for each: unpaid-402 throughput, free pass-through throughput (an unpriced path; the
// origin alone is the baseline), paid-request latency (each request a fresh pre-signed payment, one
// after another), session-request throughput; then the CPU cost of one verification in wasm and
// natively (scripts/lib/bench-verify.mjs) and the bundle's size. Prints the figures and the targets
// of issue 7, writes bench-results/bench.json, bench.svg and bench.txt. docs/benchmarks.md says why.
//
//   node scripts/lib/bench.mjs [--duration 5] [--connections 8] [--payments 50] [--quick]
//                              [--callgrind] [--strict] [--wait-quiet SECONDS] [--no-verify]
//                              [--out bench-results]
//   node scripts/lib/bench.mjs --compare build,target/other-build [--payments 90]
//     only the deferred paid latency of several builds, request by request in turn, then their
//     unpaid 402 under load, build by build in turn (see compare())
// (scripts/bench builds the Worker first, then runs this.)
import { execFile, spawn } from "node:child_process";
import { mkdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { existsSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { promisify, parseArgs } from "node:util";
import { gzipSync } from "node:zlib";
import autocannon from "autocannon";
import { Miniflare, Log, LogLevel } from "miniflare";
import { accounts, balanceOf, deployUsdc, startAnvil, USDC } from "./chain.mjs";
import { buildVerifyBenches, callgrindInstructions, timeNative, timeWasm } from "./bench-verify.mjs";
import { renderSvg } from "./bench-chart.mjs";
import { attachProfiler, selfTimes } from "./bench-profile.mjs";
import { freePort } from "./facilitator.mjs";
import { decodeHeader, encodeHeader, readWranglerConfig, ROOT } from "../../tests/e2e/harness.mjs";
import { signPayment } from "../../tests/e2e/lib/sign.mjs";

const run = promisify(execFile);

const { values: args } = parseArgs({
  options: {
    duration: { type: "string" },
    rounds: { type: "string" },
    connections: { type: "string", default: "8" },
    payments: { type: "string" },
    warmup: { type: "string", default: "1" },
    quick: { type: "boolean", default: false },
    callgrind: { type: "boolean", default: false },
    strict: { type: "boolean", default: false },
    "wait-quiet": { type: "string", default: "0" },
    "no-verify": { type: "boolean", default: false },
    "no-floor": { type: "boolean", default: false },
    out: { type: "string", default: "bench-results" },
    compare: { type: "string" },
    "through-entry": { type: "boolean", default: false },
    profile: { type: "boolean", default: false },
    only: { type: "string" },
    help: { type: "boolean", short: "h", default: false },
  },
});
if (args.help) {
  console.log(`usage: scripts/bench [--duration SECONDS] [--rounds N] [--connections N] [--payments N] [--quick]
                    [--callgrind] [--strict] [--wait-quiet SECONDS] [--no-verify] [--no-floor]
                    [--out DIR] [--no-build]
  --duration     length of each load run (default 3 s; 2 with --quick)
  --rounds       load runs per measure, the median kept (default 3; 1 with --quick)
  --connections  concurrent connections of each load run (default 8)
  --payments     paid requests timed per configuration (default 50; 15 with --quick)
  --callgrind    count the instructions of one native verification even if the wasm target is met
  --strict       exit 1 if a target is missed
  --wait-quiet S wait up to S seconds for other processes to leave the CPUs alone first
  --no-verify    skip the verification benches (no cargo builds; that target is then n/a)
  --no-floor     skip the Rust floor (our Worker built to answer a constant 402 at once, with the
                 bench-floor feature, beside the others in the unpaid-402 measure)
  --compare A,B  instead of the whole bench: the deferred paid latency of builds A, B… (directories
                 inside the project holding index.js and index_bg.wasm, and entry.mjs if the build
                 has one), one request to each in turn,
                 then their unpaid 402 throughput and CPU per 402, one load run of each in turn
  --profile      V8's CPU profile, in workerd, of our Worker's free pass-through and session requests
                 (nothing else is measured), or with --compare and one build, of its timed deferred
                 payments: self time per function printed, each profile written as NAME.cpuprofile
  --only session measure the session column alone (its free pass-through and session requests)
  --through-entry  send every request through Miniflare's entry worker (the local proxy in front of
                 workerd, which Cloudflare does not have) instead of straight to the Worker's socket
  --no-build     (scripts/bench) use build/ as it is`);
  process.exit(0);
}
const SETTINGS = {
  durationS: Number(args.duration ?? (args.quick ? 2 : 3)),
  rounds: Math.max(1, Number(args.rounds ?? (args.quick ? 1 : 3))),
  warmupS: Number(args.warmup),
  connections: Number(args.connections),
  payments: Number(args.payments ?? (args.quick ? 15 : 50)),
  warmupPayments: 3,
};
const OUT = path.resolve(ROOT, args.out);

// The route both paywalls sell, the path nobody prices, the price.
const PRICED = "/articles/hello";
const FREE = "/free/about";
const PRICE_ATOMIC = 10_000n; // $0.01 at 6 decimals
const SESSION_SECRET = "bench-session-secret-0123456789abcdef0123456789";
const NETWORK = "eip155:31337";
// Paid requests go to each paywall in blocks of this many, one after another (see paidLatencies).
const PAID_BLOCK = 10;

const TARGETS = {
  unpaidVsReference: 3, // ours ≥ 3× the reference's unpaid-402 throughput
  deferredP50VsReference: 0.1, // deferred paid p50 ≤ 1/10 of the reference's
  sessionVsFree: 0.8, // session requests within 20% of free pass-through
  wasmVerifyUs: 250, // one verification ≤ 250 µs in wasm
  bundleGzipBytes: 300 * 1024, // ≤ 300 KB gzipped
};

const log = (line) => console.log(`[bench] ${line}`);
const fmt = (n, digits = 0) => (n == null || Number.isNaN(n) ? "n/a" : n.toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: digits }));

// ---- the machine ----------------------------------------------------------------------------------

/** The share of all CPUs busy (not idle) over `ms`, from the kernel's counters. */
async function cpuBusy(ms = 1000) {
  const sample = () => os.cpus().reduce((acc, c) => {
    const t = c.times;
    acc.total += t.user + t.nice + t.sys + t.idle + t.irq;
    acc.idle += t.idle;
    return acc;
  }, { total: 0, idle: 0 });
  const a = sample();
  await new Promise((r) => setTimeout(r, ms));
  const b = sample();
  const total = b.total - a.total;
  return total > 0 ? 1 - (b.idle - a.idle) / total : 0;
}

/**
 * The kernel's CPU counters summed over all CPUs (/proc/stat, in ticks): the time the hypervisor
 * gave to other guests (`steal`) and the total. Null where /proc/stat is not there.
 */
async function cpuCounters() {
  try {
    const line = (await readFile("/proc/stat", "utf8")).split("\n")[0];
    const [user, nice, system, idle, iowait, irq, softirq, steal] = line.trim().split(/\s+/).slice(1).map(Number);
    return { steal, total: user + nice + system + idle + iowait + irq + softirq + steal };
  } catch {
    return null;
  }
}

/** The share of the CPUs' time the hypervisor took for other guests between two counters. */
const stolenShare = (a, b) => (a && b && b.total > a.total ? (b.steal - a.steal) / (b.total - a.total) : null);

/**
 * How steady a ratio was across the rounds: its least and its most, round by round (the two sides
 * are measured in turn within each round). A target inside that range is met or missed by this
 * machine's ups and downs, not by the code.
 */
function roundByRound(ours, theirs) {
  if (!ours?.length || ours.length !== theirs?.length) return null;
  const ratios = ours.map((x, i) => x / theirs[i]).filter(Number.isFinite);
  return ratios.length ? [Math.min(...ratios), Math.max(...ratios)] : null;
}

/**
 * How busy the machine is before we start; with --wait-quiet, waits (up to that long) for three
 * quiet seconds in a row. Everything here shares two cores: other work skews every figure.
 */
async function machineLoad() {
  const limit = Number(args["wait-quiet"]) * 1000;
  const started = performance.now();
  let busy = await cpuBusy();
  let quiet = busy < 0.2 ? 1 : 0;
  while (limit > 0 && quiet < 3 && performance.now() - started < limit) {
    busy = await cpuBusy();
    quiet = busy < 0.2 ? quiet + 1 : 0;
  }
  const waited = (performance.now() - started) / 1000;
  if (busy >= 0.2) {
    log(`WARNING: other processes keep ${Math.round(busy * 100)}% of the CPUs busy (load average ${os.loadavg()[0].toFixed(1)}): ` +
      "the figures will be low and noisy; run again on a quiet machine (or with --wait-quiet 300)");
  }
  return { busyBefore: busy, loadAverage: os.loadavg()[0], waitedS: waited };
}

/**
 * CPU time (user + system, seconds) used so far by the processes `pids()` names, from /proc. Divided
 * by the requests of a run, it is the CPU each request cost a server, a figure that other work on the
 * machine skews much less than throughput.
 */
const TICKS_PER_SECOND = 100;
async function cpuSeconds(pids) {
  let ticks = 0;
  for (const pid of await pids()) {
    try {
      const stat = await readFile(`/proc/${pid}/stat`, "utf8");
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      ticks += Number(fields[11]) + Number(fields[12]); // utime, stime
    } catch {
      /* gone */
    }
  }
  return ticks / TICKS_PER_SECOND;
}

/** The workerd processes Miniflare started for this process (one per Worker running). */
async function workerdPids() {
  const { readdir } = await import("node:fs/promises");
  const out = [];
  for (const entry of await readdir("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = await readFile(`/proc/${entry}/stat`, "utf8");
      const comm = stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"));
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      if (comm === "workerd" && ppid === process.pid) out.push(Number(entry));
    } catch {
      /* gone */
    }
  }
  return out;
}

// ---- processes -----------------------------------------------------------------------------------

const cleanups = [];
let cleaningUp = null;
function cleanup() {
  cleaningUp ??= (async () => {
    for (const c of cleanups.reverse()) await c().catch(() => {});
  })();
  return cleaningUp;
}
for (const signal of ["SIGINT", "SIGTERM"]) {
  process.on(signal, async () => {
    await cleanup();
    process.exit(130);
  });
}

/**
 * Runs one of the stack's scripts (origin, facilitator) in its own Node process, so that the load
 * generator in this process never competes with them for an event loop. Resolves with its URL once
 * it prints `<name> http://…`.
 */
async function service(name, script, scriptArgs) {
  const child = spawn(process.execPath, [path.join(ROOT, script), ...scriptArgs], {
    cwd: ROOT,
    detached: true,
    stdio: ["ignore", "pipe", "pipe"],
  });
  const exited = new Promise((resolve) => child.once("exit", resolve));
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    try {
      process.kill(-child.pid, "SIGTERM");
    } catch {
      return;
    }
    const timer = setTimeout(() => {
      try {
        process.kill(-child.pid, "SIGKILL");
      } catch {
        /* gone */
      }
    }, 2000);
    await exited;
    clearTimeout(timer);
  };
  cleanups.push(stop);
  process.on("exit", () => {
    try {
      process.kill(-child.pid, "SIGKILL");
    } catch {
      /* gone */
    }
  });
  let output = "";
  const url = await new Promise((resolve, reject) => {
    const pattern = new RegExp(`^${name} (http://\\S+)`, "m");
    child.stdout.setEncoding("utf8").on("data", (chunk) => {
      output += chunk;
      const m = pattern.exec(output);
      if (m) resolve(m[1]);
    });
    child.stderr.setEncoding("utf8").on("data", (chunk) => (output += chunk));
    exited.then((code) => reject(new Error(`${name} exited (${code}) before it listened:\n${output.slice(-2000)}`)));
    setTimeout(() => reject(new Error(`${name} did not start within 20 s:\n${output.slice(-2000)}`)), 20_000).unref();
  });
  // Keep draining its output so that a full pipe never blocks it.
  child.stdout.removeAllListeners("data").on("data", () => {});
  return { url, stop, pid: child.pid };
}

async function startStack() {
  const started = performance.now();
  const chain = await startAnvil({ chainId: 31337 });
  cleanups.push(() => chain.stop());
  const usdc = await deployUsdc(chain.rpcUrl);
  const [facilitator, origin] = await Promise.all([
    service("facilitator", "scripts/lib/facilitator.mjs", ["--rpc", chain.rpcUrl, "--port", "0", "--quiet"]),
    service("origin", "scripts/lib/origin.mjs", ["--port", "0", "--quiet"]),
  ]);
  log(`stack up in ${((performance.now() - started) / 1000).toFixed(1)} s: anvil ${chain.rpcUrl}, USDC ${usdc}, facilitator ${facilitator.url}, origin ${origin.url}`);
  return { rpcUrl: chain.rpcUrl, usdc, facilitator, origin };
}

// ---- the Workers ---------------------------------------------------------------------------------

/** Reads `key = "value"` / `key = ["a", "b"]` from the reference's small wrangler.toml. */
function tomlValue(text, key) {
  const m = new RegExp(`^${key}\\s*=\\s*(.+)$`, "m").exec(text);
  return m ? JSON.parse(m[1]) : undefined;
}

/** Bundles the reference Worker as wrangler deploys it; returns the bundle and its settings. */
async function bundleReference() {
  const config = path.join(ROOT, "bench/reference/wrangler.toml");
  const outdir = path.join(ROOT, "target/bench/reference");
  await rm(outdir, { recursive: true, force: true });
  try {
    await run(path.join(ROOT, "node_modules/.bin/wrangler"), ["deploy", "--dry-run", "--config", config, "--outdir", outdir], {
      cwd: ROOT,
      // wrangler 4 wants Node 22: the project's own (node_modules/.bin/node) comes first.
      env: { ...process.env, PATH: `${path.join(ROOT, "node_modules/.bin")}:${process.env.PATH}`, WRANGLER_SEND_METRICS: "false", CLOUDFLARE_CF_FETCH_ENABLED: "false", WRANGLER_HIDE_BANNER: "true", NO_UPDATE_NOTIFIER: "1" },
      maxBuffer: 16 << 20,
    });
  } catch (err) {
    throw new Error(`bundling the reference failed:\n${String(err.stdout ?? "").slice(-2000)}${String(err.stderr ?? err.message).slice(-2000)}`);
  }
  await rm(path.join(ROOT, "bench/reference/.wrangler"), { recursive: true, force: true });
  const toml = await readFile(config, "utf8");
  const scriptPath = path.join(outdir, "index.js");
  return {
    scriptPath,
    bytes: (await stat(scriptPath)).size,
    compatibilityDate: tomlValue(toml, "compatibility_date"),
    compatibilityFlags: tomlValue(toml, "compatibility_flags") ?? [],
  };
}

/**
 * A Worker in workerd under Miniflare 4 on a real 127.0.0.1 port, set up as tests/e2e/harness.mjs
 * startWorker sets up ours, with one difference: what the Worker writes to the console (x402-edge
 * logs a line per payment and per session request) is counted and dropped instead of being copied
 * to this terminal by this process, which also runs the load generator.
 */
async function startMiniflare(options) {
  const logged = { lines: 0 };
  const drain = (stream) => stream.on("data", (chunk) => (logged.lines += String(chunk).split("\n").length - 1));
  const mf = new Miniflare({
    modules: true,
    cf: false,
    host: "127.0.0.1",
    port: 0,
    log: new Log(LogLevel.WARN),
    handleRuntimeStdio: (stdout, stderr) => {
      drain(stdout);
      drain(stderr);
    },
    // Straight to the Worker's own socket, as Cloudflare's edge hands it a request: Miniflare's entry
    // worker (which adds local `cf` data and error pages) would otherwise run before every request.
    ...(args["through-entry"] ? {} : { unsafeDirectSockets: [{ host: "127.0.0.1", port: 0 }] }),
    ...options,
  });
  let url;
  try {
    url = (await mf.ready).href.replace(/\/$/, "");
    if (!args["through-entry"]) url = (await mf.unsafeGetDirectURL()).href.replace(/\/$/, "");
  } catch (err) {
    await mf.dispose().catch(() => {});
    throw err;
  }
  let disposed = null;
  const dispose = () => (disposed ??= mf.dispose().catch(() => {}));
  cleanups.push(dispose); // also on Ctrl-C: workerd would outlive us otherwise
  return { url, logged, dispose };
}

/**
 * Our Worker as built (build/entry.mjs, wrangler.toml's `main`), with the bindings wrangler.toml
 * declares. A copy of a build from before the entry module existed runs from its index.js.
 */
function startOurs(wrangler, config, secrets = {}, build = "build", extra = {}) {
  const entry = path.resolve(ROOT, build, "entry.mjs");
  return startMiniflare({
    ...extra,
    scriptPath: existsSync(entry) ? entry : path.resolve(ROOT, build, "index.js"),
    modulesRules: [{ type: "CompiledWasm", include: ["**/*.wasm"] }, { type: "ESModule", include: ["**/*.js"] }],
    compatibilityDate: wrangler.compatibility_date,
    compatibilityFlags: wrangler.compatibility_flags ?? [],
    bindings: { X402: config, ...secrets },
    kvNamespaces: ["X402_KV"],
    durableObjects: { LEDGER: { className: "Ledger", useSQLite: true } },
  });
}

/** The reference, bundled, with the stack's addresses as its vars. */
function startReference(bundle, stack) {
  return startMiniflare({
    scriptPath: bundle.scriptPath,
    compatibilityDate: bundle.compatibilityDate,
    compatibilityFlags: bundle.compatibilityFlags,
    bindings: {
      FACILITATOR_URL: stack.facilitator.url,
      ORIGIN_URL: stack.origin.url,
      PAY_TO: accounts.payTo.address,
      NETWORK,
      ASSET: stack.usdc,
      ASSET_NAME: USDC.name,
      ASSET_VERSION: USDC.version,
      PRICE_ATOMIC: String(PRICE_ATOMIC),
    },
  });
}

/**
 * The floor: a Worker that does nothing but what the platform must do for each kind of request, in
 * the same workerd under the same Miniflare, with the same bindings as ours. No paywall can go below
 * it here.
 *   /articles/*  answers 402 (the unpaid floor)
 *   /kv/*        reads one KV key, then passes to the origin (the floor under a session request,
 *                which reads the wallet's grant)
 *   /do/*        writes one row in a SQLite Durable Object, then passes to the origin (the floor
 *                under a deferred payment, which the wallet's ledger admits)
 *   /do-read/*   asks the Durable Object and passes to the origin; the object writes nothing
 *   /do-put/*    the same, the object storing 2,500 bytes with the storage API (what our ledger uses)
 *                (these two only in --compare, to take the /do/ floor apart)
 *   anything else passes to the origin unchanged (the pass-through floor)
 */
const EMPTY_WORKER = `
export class Book {
  constructor(state) {
    this.storage = state.storage;
    this.sql = state.storage.sql;
    this.sql.exec("CREATE TABLE IF NOT EXISTS admitted (id TEXT PRIMARY KEY, at INTEGER)");
  }
  async fetch(request) {
    const kind = new URL(request.url).pathname;
    if (kind === "/do-read") return new Response("seen");
    if (kind === "/do-put") {
      await this.storage.put(crypto.randomUUID(), "x".repeat(2500));
      return new Response("put");
    }
    this.sql.exec("INSERT INTO admitted VALUES (?, ?)", crypto.randomUUID(), Date.now());
    return new Response("admitted");
  }
}
export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    const pass = (path) => fetch(env.ORIGIN_URL + path + url.search, { headers: request.headers });
    if (url.pathname.startsWith("/articles/")) {
      return new Response("{}", { status: 402, headers: { "content-type": "application/json" } });
    }
    if (url.pathname.startsWith("/kv/")) {
      await env.KV.get("grant:" + url.pathname);
      return pass(url.pathname.slice(3));
    }
    const kind = url.pathname.split("/")[1];
    if (["do", "do-read", "do-put"].includes(kind)) {
      const book = env.BOOK.get(env.BOOK.idFromName("wallet"));
      await (await book.fetch("https://ledger/" + kind, { method: "POST" })).text();
      return pass(url.pathname.slice(kind.length + 1));
    }
    return pass(url.pathname);
  },
};`;

function startEmpty(stack, wrangler) {
  return startMiniflare({
    script: EMPTY_WORKER,
    compatibilityDate: wrangler.compatibility_date,
    bindings: { ORIGIN_URL: stack.origin.url },
    kvNamespaces: ["KV"],
    durableObjects: { BOOK: { className: "Book", useSQLite: true } },
  });
}

/**
 * Our Worker's configuration for this stack: the priced route as wrangler.toml has it, plus `route`;
 * `deferred` overrides the deferred policy's settings.
 */
function ourConfig(stack, wrangler, route = {}, deferred = {}) {
  const vars = wrangler.vars?.X402 ?? {};
  return {
    payTo: accounts.payTo.address,
    accepts: [NETWORK],
    origin: stack.origin.url,
    facilitator: { url: stack.facilitator.url },
    assets: [{ network: NETWORK, address: stack.usdc, ...USDC }],
    // The deferred column measures a wallet that has its credit: with earned credit (the default)
    // that is a wallet that has already paid its credit's worth; a new wallet's first payments are
    // settled before they are served, which is the immediate column's path.
    deferred: { ...(vars.deferred ?? {}), credit: "full", ...deferred },
    rpc: { [NETWORK]: stack.rpcUrl },
    routes: [
      {
        path: "/articles/*",
        method: "GET",
        price: "$0.01",
        description: "One article of the demo newspaper",
        mimeType: "text/html",
        ...route,
      },
    ],
  };
}

// ---- measurements --------------------------------------------------------------------------------

function cannon(options) {
  return new Promise((resolve, reject) => {
    autocannon(options, (err, result) => (err ? reject(err) : resolve(result)));
  });
}

/**
 * Throughput of GET `url` under autocannon: a warm-up run, then the measured run. Every answer must
 * have status `expect`; anything else is counted as unexpected (and reported).
 */
async function throughput(label, url, { expect, headers = {}, pids = workerdPids }) {
  return (await throughputs([{ label, url, expect, headers }], { pids }))[0];
}

/**
 * Several measures (of one server, or of several, each naming its own `pids`) taken in turn: each
 * warmed up, then every round runs each once,
 * in an order turned by one place each round, so that the machine's drift and whatever runs
 * before a measure fall on all of them alike. For each, the run of median throughput is kept
 * whole (its CPU with it): this machine's other work comes and goes, and one run can land on a
 * busy moment.
 */
async function throughputs(measures, { pids = workerdPids } = {}) {
  const options = measures.map(({ url, headers = {} }) => ({ url, connections: SETTINGS.connections, headers, pipelining: 1 }));
  for (const o of options) await cannon({ ...o, duration: SETTINGS.warmupS });
  const runs = measures.map(() => []);
  for (let i = 0; i < SETTINGS.rounds; i++) {
    for (let j = 0; j < measures.length; j++) {
      const m = (i + j) % measures.length;
      const serverPids = measures[m].pids ?? pids;
      const cpuBefore = await cpuSeconds(serverPids);
      const r = await cannon({ ...options[m], duration: SETTINGS.durationS });
      runs[m].push({ r, cpu: (await cpuSeconds(serverPids)) - cpuBefore });
    }
  }
  return measures.map(({ label, expect }, m) => {
    const sorted = [...runs[m]].sort((a, b) => a.r.requests.total / a.r.duration - b.r.requests.total / b.r.duration);
    const { r, cpu } = sorted[Math.floor(sorted.length / 2)];
    const statusCodes = Object.fromEntries(Object.entries(r.statusCodeStats ?? {}).map(([k, v]) => [k, v.count]));
    const total = r.requests.total;
    const result = {
      rps: total / r.duration,
      everyRunRps: runs[m].map((x) => x.r.requests.total / x.r.duration),
      requests: total,
      seconds: r.duration,
      latencyMs: { p50: r.latency.p50, p90: r.latency.p90, p99: r.latency.p99 },
      serverCpuUsPerRequest: total ? (cpu * 1e6) / total : null,
      statusCodes,
      errors: r.errors,
      timeouts: r.timeouts,
      unexpected: total - (statusCodes[expect] ?? 0) + r.errors + r.timeouts,
    };
    log(`${label}: ${fmt(result.rps)} req/s (median of ${result.everyRunRps.map((x) => fmt(x)).join(", ")}; ${total} × ${expect} in ${r.duration} s, p50 ${r.latency.p50} ms, server CPU ${fmt(result.serverCpuUsPerRequest)} µs/request)` +
      (result.unexpected ? `, ${result.unexpected} UNEXPECTED answers ${JSON.stringify(statusCodes)} errors ${r.errors}` : ""));
    return result;
  });
}

function percentile(sorted, p) {
  if (!sorted.length) return null;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}

/** Latency of `n` plain GETs of `url`, one after another (after a few unmeasured): the floor under a paid request. */
async function sequentialLatency(url, n = 50) {
  const samples = [];
  for (let i = 0; i < n + 5; i++) {
    const started = performance.now();
    const res = await fetch(url);
    await res.arrayBuffer();
    if (i >= 5) samples.push(performance.now() - started);
  }
  samples.sort((a, b) => a - b);
  return { count: n, p50: percentile(samples, 50), p90: percentile(samples, 90), p99: percentile(samples, 99) };
}

/** The terms a paywall offers for the priced route, read from its 402. */
async function termsOf(base) {
  const res = await fetch(base + PRICED);
  await res.arrayBuffer();
  const header = res.headers.get("payment-required");
  if (res.status !== 402 || !header) throw new Error(`${base}${PRICED} answered ${res.status} without PAYMENT-REQUIRED`);
  const required = decodeHeader(header);
  const terms = required.accepts.find((t) => t.scheme === "exact" && t.network === NETWORK);
  if (!terms) throw new Error(`${base}${PRICED} offers no exact terms on ${NETWORK}: ${header}`);
  return { terms, resource: required.resource };
}

/**
 * Paid-request latency of several paywalls, measured in turn: `SETTINGS.payments` requests to each
 * (after `SETTINGS.warmupPayments` unmeasured), each carrying its own payment signed beforehand by
 * that paywall's payer (viem, tests/e2e/lib/sign.mjs) over the terms it offered; or, for a floor
 * given as `url` without a payer, a plain GET answered 200 (with the floor's `headers`, if any). The requests go one at a time, in
 * blocks of `PAID_BLOCK` to each paywall in turn, so that the machine's ups and downs over the
 * series fall on all of them alike. Not one request each in turn: a request that follows another
 * paywall's 30 ms payment finds its Worker's threads asleep and its caches cold, and took 1.3–1.5
 * times as long as in a block (the empty Worker's Durable Object write too), which is not what a
 * paywall under a steady stream of payments sees. Every answer must be 200 with a successful
 * receipt. Returns, for each, its figures and its last answer.
 */
async function paidLatencies(contestants) {
  const n = SETTINGS.payments + SETTINGS.warmupPayments;
  const series = [];
  for (const { label, base, payer, url, headers: floorHeaders = {} } of contestants) {
    if (!payer) {
      // A floor: a plain GET of `url`, answered 200, in the same turn.
      series.push({ label, url, floorHeaders, headers: [], samples: [], failures: 0, last: null });
      continue;
    }
    const { terms, resource } = await termsOf(base);
    const headers = [];
    for (let i = 0; i < n; i++) headers.push(encodeHeader(await signPayment(terms, payer.privateKey, { resource })));
    series.push({ label, url: base + PRICED, headers, samples: [], failures: 0, last: null });
  }
  const request = async (c, i) => {
    const started = performance.now();
    const res = await fetch(c.url, { headers: c.headers.length ? { "PAYMENT-SIGNATURE": c.headers[i] } : c.floorHeaders });
    await res.arrayBuffer();
    const ms = performance.now() - started;
    const { ok, receipt } = c.headers.length ? paidAnswer(res) : { ok: res.status === 200, receipt: null };
    if (!ok) {
      c.failures++;
      if (c.failures === 1) log(`${c.label}: a paid request answered ${res.status}, receipt ${JSON.stringify(receipt)}`);
    }
    if (i >= SETTINGS.warmupPayments) c.samples.push(ms);
    c.last = res;
  };
  for (let first = 0; first < n; first += PAID_BLOCK) {
    for (const c of series) {
      const counted = c.samples.length;
      for (let i = first; i < Math.min(n, first + PAID_BLOCK); i++) await request(c, i);
      // Each block's median too: the paywalls' blocks of one turn are compared with each other.
      const block = c.samples.slice(counted);
      c.blockP50s = [...(c.blockP50s ?? []), block.length ? percentile(block.sort((a, b) => a - b), 50) : null];
    }
  }
  return series.map(({ label, samples, failures, last, blockP50s }) => {
    const sorted = [...samples].sort((a, b) => a - b);
    const median = (xs) => percentile([...xs].sort((a, b) => a - b), 50);
    const fifth = Math.max(1, Math.floor(samples.length / 5));
    const result = {
      count: samples.length,
      // Whether payments get slower as a wallet's history grows: medians of the first and last fifth.
      trend: { firstFifthP50: median(samples.slice(0, fifth)), lastFifthP50: median(samples.slice(-fifth)) },
      p50: percentile(sorted, 50),
      p90: percentile(sorted, 90),
      p99: percentile(sorted, 99),
      min: sorted[0],
      max: sorted.at(-1),
      mean: samples.reduce((a, b) => a + b, 0) / samples.length,
      failures,
      paid: n,
      blockP50s,
    };
    log(`${label}: paid p50 ${fmt(result.p50, 1)} ms, p90 ${fmt(result.p90, 1)} ms, p99 ${fmt(result.p99, 1)} ms over ${result.count}` +
      ` (first fifth p50 ${fmt(result.trend.firstFifthP50, 1)} ms, last fifth ${fmt(result.trend.lastFifthP50, 1)} ms)` +
      (failures ? `, ${failures} FAILED` : ""));
    return { result, last };
  });
}

/** Whether a paid request was served: a 200 carrying a successful receipt (and the receipt). */
function paidAnswer(res) {
  const receipt = decodeHeader(res.headers.get("payment-response"));
  return { ok: res.status === 200 && receipt?.success === true, receipt };
}

/** Waits until `payer` has paid `amount` in total on chain; returns the seconds it took, or null. */
async function waitForSettlement(stack, payer, before, amount, timeoutS = 40) {
  const started = performance.now();
  while (performance.now() - started < timeoutS * 1000) {
    const now = await balanceOf(stack.rpcUrl, stack.usdc, payer.address);
    if (before - now >= amount) return (performance.now() - started) / 1000;
    await new Promise((r) => setTimeout(r, 250));
  }
  return null;
}

// ---- the configurations ----------------------------------------------------------------------------

/**
 * How long a deferred payment waits for its batch in the bench (wrangler.toml says 5 s): longer than
 * the paid series takes, so that no settlement of ours runs while any paywall's payments are timed
 * (all of them share the facilitator and the chain). The bench then waits for the batch to land.
 */
const BENCH_BATCH_SECONDS = 30;
/** The session the session column sells on the priced route. */
const SESSION_ROUTE = { session: { scope: "/articles/*", seconds: 3600 } };

/** Starts a Worker and names its workerd (`pids`): each Worker has its own, so each CPU figure is its own. */
async function withWorkerd(start, known) {
  const worker = await start();
  const pids = (await workerdPids()).filter((p) => !known.has(p));
  pids.forEach((p) => known.add(p));
  worker.pids = pids;
  worker.pidsOf = async () => pids;
  return worker;
}

/**
 * Every contestant at once, each in its own workerd: the empty Worker, the reference, and ours
 * three ways. They are then measured in turn within each round, measure by measure, so that the
 * ratios between them are taken at the same moments of this machine (one after another, Worker by
 * Worker, the reference's unpaid 402 and ours were a minute apart, and their ratio moved between
 * 0.42× and 1.3× from run to run).
 */
async function startContestants(stack, wrangler, referenceBundle, floorBuild) {
  const known = new Set(await workerdPids());
  return {
    ...(floorBuild ? { rustFloor: await withWorkerd(() => startOurs(wrangler, ourConfig(stack, wrangler), {}, floorBuild), known) } : {}),
    empty: await withWorkerd(() => startEmpty(stack, wrangler), known),
    reference: await withWorkerd(() => startReference(referenceBundle, stack), known),
    immediate: await withWorkerd(() => startOurs(wrangler, ourConfig(stack, wrangler)), known),
    deferred: await withWorkerd(() => startOurs(wrangler, ourConfig(stack, wrangler, { settlement: "deferred" }, { batchSeconds: BENCH_BATCH_SECONDS })), known),
    session: await withWorkerd(() => startOurs(wrangler, ourConfig(stack, wrangler, SESSION_ROUTE), { X402_SESSION_SECRET: SESSION_SECRET }), known),
  };
}

/**
 * The whole side-by-side measurement: unpaid 402s, then free pass-through, then paid requests, each
 * measure taken of every contestant in turn; then the session column's own pair (its requests and
 * its free pass-through, in turn).
 */
async function measureAll(stack, w) {
  const probe = await sessionProbe(w.session);
  const names = ["empty", "reference", "immediate", "deferred"];
  const labels = { empty: "empty Worker", reference: "reference", immediate: "x402-edge immediate", deferred: "x402-edge deferred", session: "x402-edge session", rustFloor: "Rust floor (ours built to answer a constant 402 at once)" };

  const unpaidOf = [...names, ...(probe.available ? ["session"] : []), ...(w.rustFloor ? ["rustFloor"] : [])];
  const unpaid = await throughputs(unpaidOf.map((n) => ({ label: `${labels[n]}, unpaid 402`, url: w[n].url + PRICED, expect: 402, pids: w[n].pidsOf })));
  const r = Object.fromEntries(unpaidOf.map((n, i) => [n, { unpaid: unpaid[i] }]));

  const originPids = async () => [stack.origin.pid];
  const free = await throughputs([
    { label: "origin alone, free", url: stack.origin.url + FREE, expect: 200, pids: originPids },
    ...names.map((n) => ({ label: `${labels[n]}, free pass-through`, url: w[n].url + FREE, expect: 200, pids: w[n].pidsOf })),
  ]);
  r.origin = { free: free[0] };
  for (const [i, n] of names.entries()) r[n].free = free[i + 1];
  for (const n of names) r[n].free.sequential = await sequentialLatency(w[n].url + FREE);
  r.empty.kv = await throughput("empty Worker, one KV read + pass-through", `${w.empty.url}/kv${FREE}`, { expect: 200, pids: w.empty.pidsOf });

  // The paid requests, and in the same turn the floor under a deferred payment: the empty Worker's
  // one Durable Object write, then the origin; and the same work done by the Rust floor (a request
  // carrying PAYMENT-SIGNATURE: one write by a wallet ledger of ours, then the origin).
  const payers = { reference: accounts.payers[0], immediate: accounts.payers[1], deferred: accounts.payers[2] };
  const deferredBefore = await balanceOf(stack.rpcUrl, stack.usdc, payers.deferred.address);
  const floors = [
    { name: "empty", label: "empty Worker, one Durable Object write + pass-through", url: `${w.empty.url}/do${FREE}` },
    ...(w.rustFloor ? [{ name: "rustFloor", label: "Rust floor, one write by a wallet ledger + pass-through", url: w.rustFloor.url + FREE, headers: { "PAYMENT-SIGNATURE": "floor" } }] : []),
  ];
  const paid = await paidLatencies([
    ...floors,
    ...["reference", "immediate", "deferred"].map((n) => ({ label: labels[n], base: w[n].url, payer: payers[n] })),
  ]);
  for (const [i, f] of floors.entries()) r[f.name].durableObject = { sequential: paid[i].result };
  r.reference.paid = paid[floors.length].result;
  r.immediate.paid = paid[floors.length + 1].result;
  r.deferred.paid = paid[floors.length + 2].result;
  // Served before settling: the batch comes due after the series (see BENCH_BATCH_SECONDS); a
  // payment that landed sooner settled while others were timed, and the comparison says so.
  const d = r.deferred.paid;
  d.settledDuringSeries = (await balanceOf(stack.rpcUrl, stack.usdc, payers.deferred.address)) < deferredBefore;
  if (d.settledDuringSeries) log(`${labels.deferred}: WARNING: some payments settled while the series was timed (it took longer than the ${BENCH_BATCH_SECONDS} s batch window)`);
  const owed = BigInt(d.paid - d.failures) * PRICE_ATOMIC;
  const seconds = await waitForSettlement(stack, payers.deferred, deferredBefore, owed, BENCH_BATCH_SECONDS + 40);
  d.batchSeconds = BENCH_BATCH_SECONDS;
  d.settledOnChain = seconds !== null;
  d.settledWithinS = seconds;
  log(`${labels.deferred}: ${seconds === null ? `NOT all settled on chain within ${BENCH_BATCH_SECONDS + 40} s` : `all ${d.paid - d.failures} payments settled on chain ${seconds.toFixed(1)} s after the last answer (batch window ${BENCH_BATCH_SECONDS} s)`}`);

  r.session = await measureSession(w.session, accounts.payers[3], { probe, unpaid: r.session?.unpaid });
  return r;
}

/**
 * With --profile: `run()` under V8's CPU profiler in the Worker behind `inspectorPort`; prints the
 * self time of the busiest functions and writes `<name>.cpuprofile`. Without: just `run()`.
 */
async function profiled(inspectorPort, name, run) {
  if (!inspectorPort) return run();
  const profiler = await attachProfiler(inspectorPort);
  await profiler.start();
  const result = await run();
  const profile = await profiler.stop();
  await mkdir(OUT, { recursive: true });
  await writeFile(path.join(OUT, `${name}.cpuprofile`), JSON.stringify(profile));
  const rows = selfTimes(profile)
    .slice(0, 30)
    .map((f) => [f.name.slice(0, 90), fmt(f.ms, 1), f.share == null ? "" : `${fmt(f.share * 100, 1)}%`]);
  console.log(`\n${name}: self time per function in the Worker's isolate\n` + table(["function", "ms", "of busy"], rows));
  log(`wrote ${path.relative(ROOT, OUT)}/${name}.cpuprofile (open it in Chrome's DevTools, Performance)`);
  return result;
}

/** Whether the Worker sells the session column's session: a Worker without sessions refuses the route (500). */
async function sessionProbe(worker) {
  const probe = await fetch(worker.url + PRICED);
  const text = await probe.text();
  if (probe.status === 402) return { available: true };
  let why = `the Worker answered ${probe.status} to a route selling a session`;
  try {
    const body = JSON.parse(text);
    if (body.reason) why = `${body.reason}: ${body.message ?? ""}`.trim();
  } catch {
    /* not JSON */
  }
  log(`x402-edge session: n/a (${why})`);
  return { available: false, why };
}

/**
 * The session column, if the Worker knows sessions: the route sells one (`SESSION_ROUTE`); one
 * payment buys it; then load on the session token, in turn with the same Worker's free
 * pass-through. A Worker without session support refuses the configuration (500,
 * paywall_misconfigured): then the column is n/a. `unpaid` is its 402 if already measured.
 */
async function measureSession(worker, payer, { probe, unpaid, inspectorPort } = {}) {
  const label = "x402-edge session";
  const pids = worker.pidsOf;
  probe ??= await sessionProbe(worker);
  if (!probe.available) return probe;
  unpaid ??= await throughput(`${label}, unpaid 402`, worker.url + PRICED, { expect: 402, pids });
  const freeMeasure = { label: `${label}, free pass-through`, url: worker.url + FREE, expect: 200, pids };
  // Profiled, the free pass-through is measured on its own, before the session is bought;
  // otherwise beside the session requests, in turn (see `throughputs`).
  const free = inspectorPort ? await profiled(inspectorPort, "session-free", () => throughput(freeMeasure.label, freeMeasure.url, freeMeasure)) : null;
  const sequential = await sequentialLatency(worker.url + FREE);
  const [{ result: paid, last }] = await paidLatencies([{ label, base: worker.url, payer }]);
  const token =
    last?.headers.get("x402-session") ??
    /(?:^|[;,]\s*)x402_session(?:_[0-9a-f]{8})?=([^;,\s]+)/.exec(last?.headers.get("set-cookie") ?? "")?.[1];
  const unavailable = async (why) => {
    log(`${label}: session requests n/a (${why})`);
    return { available: false, why, unpaid, free: { ...(free ?? (await throughput(freeMeasure.label, freeMeasure.url, freeMeasure))), sequential }, paid };
  };
  if (!token) return unavailable("a paid request on a route selling a session returned no session token (X402-Session or cookie)");
  const headers = { authorization: `Bearer ${token}` };
  const check = await fetch(worker.url + PRICED, { headers });
  await check.arrayBuffer();
  if (check.status !== 200) return unavailable(`a request with the session token answered ${check.status}`);
  const sessionMeasure = { label: `${label}, requests on the session`, url: worker.url + PRICED, expect: 200, headers, pids };
  if (inspectorPort) {
    const session = await profiled(inspectorPort, "session", () => throughput(sessionMeasure.label, sessionMeasure.url, sessionMeasure));
    return { available: true, unpaid, free: { ...free, sequential }, paid, session };
  }
  const [both, session] = await throughputs([freeMeasure, sessionMeasure]);
  return { available: true, unpaid, free: { ...both, sequential }, paid, session };
}

async function measureVerification(built) {
  const wasm = await timeWasm(built.wasm);
  const native = await timeNative(built.native);
  log(`one verification: ${fmt(wasm.usPerVerification, 1)} µs in wasm (${wasm.runtime}), ${fmt(native.usPerVerification, 1)} µs native`);
  let callgrind = null;
  if (args.callgrind || wasm.usPerVerification > TARGETS.wasmVerifyUs) {
    try {
      callgrind = await callgrindInstructions(built.native);
      if (callgrind) {
        callgrind.breakdown = await callgrindBreakdown(callgrind.profile);
        log(`callgrind: ${fmt(callgrind.instructionsPerVerification)} instructions per native verification` +
          (callgrind.breakdown.length ? `; ${callgrind.breakdown.map((b) => `${b.what} ${fmt(b.share * 100, 0)}%`).join(", ")}` : ""));
      }
    } catch (err) {
      log(`callgrind failed: ${err.message.split("\n")[0]}`);
    }
  }
  return { wasm, native, wasmOverNative: wasm.usPerVerification / native.usPerVerification, callgrind };
}

/** Shares of the instructions of `paywall::decide` spent in its main parts (inclusive counts). */
async function callgrindBreakdown(profile) {
  let text;
  try {
    ({ stdout: text } = await run("callgrind_annotate", ["--inclusive=yes", "--threshold=100", profile], { maxBuffer: 64 << 20 }));
  } catch {
    return [];
  }
  const most = (re) => {
    let best = 0;
    for (const line of text.split("\n")) {
      const m = /^\s*([\d,]+)\s+\([\d.]+%\)\s+(.*)$/.exec(line);
      if (m && re.test(m[2])) best = Math.max(best, Number(m[1].replaceAll(",", "")));
    }
    return best;
  };
  const decide = most(/paywall::decide\b/);
  if (!decide) return [];
  const parts = [
    ["secp256k1 recovery (evm::signature::Signature::recover)", /evm::signature::Signature::recover\b/],
    ["keccak", /keccak|Keccak/],
    ["JSON (serde_json)", /serde_json::de::/],
  ];
  return parts
    .map(([what, re]) => ({ what, share: most(re) / decide }))
    .filter((p) => p.share > 0.005);
}

/**
 * The Rust floor: our Worker built with the `bench-floor` feature (see Cargo.toml), which answers
 * every request with a constant 402 of the bench route's real size at the top of its fetch
 * handler, built by `scripts/build` as ours is. What the runtime charges a Worker built as
 * ours (wasm-bindgen's glue, the `worker` crate's entry point) before it does any work. Built into
 * target/bench/rust-floor, through the same cargo target directory as ours (only this crate is
 * compiled again, and once more by the next `scripts/build`: cargo keeps one build of it whatever
 * its features). Returns the directory, or null (and says why) if the build failed.
 */
async function buildRustFloor() {
  const dir = "target/bench/rust-floor";
  const started = performance.now();
  try {
    await run("scripts/build", [dir, "--features", "bench-floor"], { cwd: ROOT, maxBuffer: 64 << 20 });
  } catch (err) {
    log(`Rust floor: not built (${String(err.stdout || err.stderr || err.message).trim().split("\n").slice(-3).join(" ")}); measured without it`);
    return null;
  }
  log(`Rust floor built in ${fmt((performance.now() - started) / 1000, 1)} s (${dir})`);
  return dir;
}

/**
 * The bundle: the wasm alone (raw and `gzip -9`), and what `wrangler deploy` uploads (the wasm and
 * the JavaScript it bundles around it), sized as wrangler sizes it ("Total Upload: … / gzip: …":
 * every module concatenated, gzipped at zlib's default level). The target is judged on the upload.
 * wrangler is given the project's configuration without its `[build]` command, so that it bundles
 * the build already in build/ rather than building again.
 */
async function bundleSize() {
  const file = path.join(ROOT, "build/index_bg.wasm");
  const bytes = await readFile(file);
  const dir = path.join(ROOT, "target/bench/ours");
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  const toml = (await readFile(path.join(ROOT, "wrangler.toml"), "utf8"))
    .replace(/^\[build\]\n(?:[^[\n].*\n|\n)*/m, "")
    .replace(/^main = "build\//m, `main = "${path.join(ROOT, "build")}/`);
  if (toml.includes("[build]") || !toml.includes(path.join(ROOT, "build/entry.mjs"))) throw new Error("could not rewrite wrangler.toml for sizing the upload");
  await writeFile(path.join(dir, "wrangler.toml"), toml);
  let out;
  try {
    out = await run(path.join(ROOT, "node_modules/.bin/wrangler"), ["deploy", "--dry-run", "--config", path.join(dir, "wrangler.toml"), "--outdir", path.join(dir, "dist")], {
      cwd: ROOT,
      env: { ...process.env, PATH: `${path.join(ROOT, "node_modules/.bin")}:${process.env.PATH}`, WRANGLER_SEND_METRICS: "false", CLOUDFLARE_CF_FETCH_ENABLED: "false", WRANGLER_HIDE_BANNER: "true", NO_UPDATE_NOTIFIER: "1" },
      maxBuffer: 16 << 20,
    });
  } catch (err) {
    throw new Error(`sizing the upload with wrangler failed:\n${String(err.stdout ?? "").slice(-2000)}${String(err.stderr ?? err.message).slice(-2000)}`);
  }
  const upload = /Total Upload: ([\d.]+) KiB \/ gzip: ([\d.]+) KiB/.exec(String(out.stdout) + String(out.stderr));
  if (!upload) throw new Error(`wrangler printed no "Total Upload" line:\n${String(out.stdout).slice(-2000)}`);
  return {
    file: "build/index_bg.wasm",
    rawBytes: bytes.length,
    gzipBytes: gzipSync(bytes, { level: 9 }).length,
    uploadBytes: Math.round(Number(upload[1]) * 1024),
    uploadGzipBytes: Math.round(Number(upload[2]) * 1024),
  };
}

// ---- report --------------------------------------------------------------------------------------

function targetsOf(r) {
  const ref = r.reference;
  const imm = r.immediate;
  const rows = [];
  const ratio = (a, b) => (a == null || b == null || !b ? null : a / b);

  const unpaid = ratio(imm.unpaid.rps, ref.unpaid.rps);
  rows.push({
    id: "unpaid402",
    target: "unpaid-402 throughput ≥ 3× the reference's",
    wanted: `≥ ${TARGETS.unpaidVsReference}×`,
    measured: `${fmt(unpaid, 2)}× (${fmt(imm.unpaid.rps)} vs ${fmt(ref.unpaid.rps)} req/s)`,
    value: unpaid,
    range: roundByRound(imm.unpaid.everyRunRps, ref.unpaid.everyRunRps),
    met: unpaid != null && unpaid >= TARGETS.unpaidVsReference,
    by: unpaid != null && unpaid < TARGETS.unpaidVsReference ? `${fmt(TARGETS.unpaidVsReference / unpaid, 2)}× short` : null,
  });
  // What the platform allows: an empty Worker that only answers 402, in the same workerd.
  const unpaidFloor = ratio(r.empty?.unpaid?.rps, ref.unpaid.rps);
  if (unpaidFloor != null) {
    rows.at(-1).floor = `the empty Worker reaches ${fmt(unpaidFloor, 2)}× the reference`;
    rows.at(-1).reachable = unpaidFloor >= TARGETS.unpaidVsReference;
  }
  // What a Worker built as ours allows: the same Rust and glue, answering a constant 402 of the
  // same size before doing anything else.
  const rustFloor = ratio(r.rustFloor?.unpaid?.rps, ref.unpaid.rps);
  if (rustFloor != null) {
    const t = rows.at(-1);
    t.floor = `${t.floor ? `${t.floor}; ` : ""}the Rust floor (ours built to answer a constant 402 at once) ${fmt(rustFloor, 2)}× at ${fmt(r.rustFloor.unpaid.serverCpuUsPerRequest)} µs per 402`;
    t.reachable = rustFloor >= TARGETS.unpaidVsReference;
    t.floorOf = "a Rust Worker built as ours";
  }

  const deferred = ratio(r.deferred.paid.p50, ref.paid.p50);
  rows.push({
    id: "deferredP50",
    target: "deferred paid p50 ≤ 1/10 of the reference's paid p50",
    wanted: `≤ ${TARGETS.deferredP50VsReference}×`,
    measured: `${fmt(deferred, 3)}× (${fmt(r.deferred.paid.p50, 1)} vs ${fmt(ref.paid.p50, 1)} ms)`,
    value: deferred,
    // The two series run in turn, block by block: compared block by block.
    range: roundByRound(r.deferred.paid.blockP50s, ref.paid.blockP50s),
    met: deferred != null && deferred <= TARGETS.deferredP50VsReference && r.deferred.paid.failures === 0,
    // A fast answer that is not a paid 200 with its receipt proves nothing.
    by: r.deferred.paid.failures
      ? `${r.deferred.paid.failures} payments not served with a receipt`
      : deferred != null && deferred > TARGETS.deferredP50VsReference ? `${fmt(deferred / TARGETS.deferredP50VsReference, 2)}× too slow` : null,
  });
  // The least a deferred payment can cost here: the empty Worker's one Durable Object write and
  // the origin, one at a time, plus one verification in wasm. A floor some of whose requests
  // failed (a quick error is no floor) judges nothing.
  const failureFree = (f) => (f && f.failures === 0 ? f.p50 : null);
  const doFloor = failureFree(r.empty?.durableObject?.sequential);
  const verifyMs = (r.verification?.wasm.usPerVerification ?? 0) / 1000;
  if (doFloor != null && ref.paid.p50) {
    const least = doFloor + verifyMs;
    rows.at(-1).floor = `floor ${fmt(least, 2)} ms = ${fmt(least / ref.paid.p50, 3)}× (one Durable Object write and the origin, ${fmt(doFloor, 1)} ms, plus one verification)`;
    rows.at(-1).reachable = least / ref.paid.p50 <= TARGETS.deferredP50VsReference;
  }
  // What a Worker built as ours allows: the Rust floor doing that same work, through a wallet
  // ledger of ours (its command by RPC, one row written), plus one verification.
  const rustDo = failureFree(r.rustFloor?.durableObject?.sequential);
  if (rustDo != null && ref.paid.p50) {
    const t = rows.at(-1);
    const least = rustDo + verifyMs;
    t.floor = `${t.floor ? `${t.floor}; ` : ""}the Rust floor (ours built to do only that) ${fmt(least, 2)} ms = ${fmt(least / ref.paid.p50, 3)}×`;
    t.reachable = least / ref.paid.p50 <= TARGETS.deferredP50VsReference;
    t.floorOf = "a Rust Worker built as ours";
  }

  const s = r.session;
  const session = s.available ? ratio(s.session.rps, s.free.rps) : null;
  rows.push({
    id: "session",
    target: "session requests within 20% of free pass-through",
    wanted: `≥ ${TARGETS.sessionVsFree}×`,
    measured: s.available ? `${fmt(session, 2)}× (${fmt(s.session.rps)} vs ${fmt(s.free.rps)} req/s)` : `n/a (${s.why})`,
    value: session,
    range: s.available ? roundByRound(s.session.everyRunRps, s.free.everyRunRps) : null,
    met: s.available ? session >= TARGETS.sessionVsFree && s.session.unexpected === 0 : null,
    by: s.available && session < TARGETS.sessionVsFree ? `${fmt((1 - session) * 100, 0)}% below free pass-through` : null,
  });

  const us = r.verification?.wasm.usPerVerification ?? null;
  rows.push({
    id: "wasmVerify",
    target: "one verification ≤ 250 µs in wasm",
    wanted: `≤ ${TARGETS.wasmVerifyUs} µs`,
    measured: us == null ? "n/a (--no-verify)" : `${fmt(us, 0)} µs (native ${fmt(r.verification.native.usPerVerification, 0)} µs)`,
    value: us,
    range: us == null ? null : [r.verification.wasm.minUs, r.verification.wasm.maxUs],
    met: us == null ? null : us <= TARGETS.wasmVerifyUs,
    by: us > TARGETS.wasmVerifyUs ? `${fmt(us / TARGETS.wasmVerifyUs, 2)}× over` : null,
  });

  const gz = r.bundle.uploadGzipBytes;
  rows.push({
    id: "bundle",
    target: "bundle ≤ 300 KB gzipped",
    wanted: "≤ 300 KB",
    measured: `${fmt(gz / 1024, 1)} KB gzip as uploaded (wasm alone ${fmt(r.bundle.gzipBytes / 1024, 1)})`,
    value: gz,
    met: gz <= TARGETS.bundleGzipBytes,
    by: gz > TARGETS.bundleGzipBytes ? `${fmt((gz - TARGETS.bundleGzipBytes) / 1024, 1)} KB over` : null,
  });
  return rows;
}

function table(headers, rows) {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => String(r[i]).length)));
  const line = (cells) => cells.map((c, i) => (i === 0 ? String(c).padEnd(widths[i]) : String(c).padStart(widths[i]))).join("  ");
  return [line(headers), widths.map((w) => "-".repeat(w)).join("  "), ...rows.map(line)].join("\n");
}

function report(r) {
  const cols = ["origin alone", "empty Worker", "reference", "ours immediate", "ours deferred", "ours session"];
  const sess = r.session;
  const cell = (v, d = 0) => (v == null ? "–" : fmt(v, d));
  const lat = (p) => (p ? `${fmt(p.p50, 1)} / ${fmt(p.p90, 1)} / ${fmt(p.p99, 1)}` : "–");
  const x = (a, b) => (a == null || b == null ? "–" : `${fmt(a / b, 2)}×`);
  const rows = [
    ["unpaid 402 (req/s)", "–", cell(r.empty.unpaid.rps), cell(r.reference.unpaid.rps), cell(r.immediate.unpaid.rps), cell(r.deferred.unpaid.rps), cell(sess.unpaid?.rps)],
    ["  vs reference", "–", x(r.empty.unpaid.rps, r.reference.unpaid.rps), "1.00×", x(r.immediate.unpaid.rps, r.reference.unpaid.rps), x(r.deferred.unpaid.rps, r.reference.unpaid.rps), x(sess.unpaid?.rps, r.reference.unpaid.rps)],
    ["  server CPU (µs/request)", "–", cell(r.empty.unpaid.serverCpuUsPerRequest), cell(r.reference.unpaid.serverCpuUsPerRequest), cell(r.immediate.unpaid.serverCpuUsPerRequest), cell(r.deferred.unpaid.serverCpuUsPerRequest), cell(sess.unpaid?.serverCpuUsPerRequest)],
    ["free pass-through (req/s)", cell(r.origin.free.rps), cell(r.empty.free.rps), cell(r.reference.free.rps), cell(r.immediate.free.rps), cell(r.deferred.free.rps), cell(sess.free?.rps)],
    ["  vs origin alone", "1.00×", x(r.empty.free.rps, r.origin.free.rps), x(r.reference.free.rps, r.origin.free.rps), x(r.immediate.free.rps, r.origin.free.rps), x(r.deferred.free.rps, r.origin.free.rps), x(sess.free?.rps, r.origin.free.rps)],
    ["  server CPU (µs/request)", cell(r.origin.free.serverCpuUsPerRequest), cell(r.empty.free.serverCpuUsPerRequest), cell(r.reference.free.serverCpuUsPerRequest), cell(r.immediate.free.serverCpuUsPerRequest), cell(r.deferred.free.serverCpuUsPerRequest), cell(sess.free?.serverCpuUsPerRequest)],
    ["free, one at a time p50 (ms)", "–", cell(r.empty.free.sequential?.p50, 1), cell(r.reference.free.sequential?.p50, 1), cell(r.immediate.free.sequential?.p50, 1), cell(r.deferred.free.sequential?.p50, 1), cell(sess.free?.sequential?.p50, 1)],
    ["paid p50 / p90 / p99 (ms)", "–", lat(r.empty.durableObject?.sequential), lat(r.reference.paid), lat(r.immediate.paid), lat(r.deferred.paid), lat(sess.paid)],
    ["  p50 vs reference", "–", "–", "1.00×", x(r.immediate.paid.p50, r.reference.paid.p50), x(r.deferred.paid.p50, r.reference.paid.p50), x(sess.paid?.p50, r.reference.paid.p50)],
    ["session requests (req/s)", "–", cell(r.empty.kv?.rps), "–", "–", "–", sess.available ? cell(sess.session.rps) : "n/a"],
    ["  vs free pass-through", "–", x(r.empty.kv?.rps, r.empty.free.rps), "–", "–", "–", sess.available ? x(sess.session.rps, sess.free.rps) : "n/a"],
    ["  server CPU (µs/request)", "–", cell(r.empty.kv?.serverCpuUsPerRequest), "–", "–", "–", sess.available ? cell(sess.session.serverCpuUsPerRequest) : "n/a"],
  ];
  const lines = [];
  lines.push("");
  lines.push(`x402-edge benchmark — ${r.machine.cpus} × ${r.machine.cpuModel}, everything on one machine (loopback)`);
  if (r.machine.stolenShare != null) {
    lines.push(`the hypervisor took ${fmt(r.machine.stolenShare * 100, 1)}% of the CPUs' time for other guests during the run (steal)` +
      (r.machine.stolenShare >= 0.02 ? ": a shared machine, whose figures move between runs" : ""));
  }
  if (r.machine.busyBefore >= 0.2) lines.push(`WARNING: the machine was ${Math.round(r.machine.busyBefore * 100)}% busy with other work before the run: figures are skewed`);
  lines.push(`load: autocannon, ${SETTINGS.connections} connections, median of ${SETTINGS.rounds} runs of ${SETTINGS.durationS} s after ${SETTINGS.warmupS} s of warm-up; paid: ${SETTINGS.payments} pre-signed payments one after another (after ${SETTINGS.warmupPayments} unmeasured)`);
  lines.push(`every Worker runs at once, each in its own workerd; each measure takes them in turn within every round (in blocks of ${PAID_BLOCK} requests, for the paid ones)`);
  lines.push("");
  lines.push(table(["", ...cols], rows));
  lines.push("empty Worker: the platform's floor in this workerd (402: answers 402; free: passes to the origin; paid: one");
  lines.push("  Durable Object SQLite write, then the origin, in turn with the payments; session: one KV read, then the origin).");
  lines.push("server CPU: CPU time of the workerd process (of the origin for \"origin alone\") per request during the run.");
  if (r.rustFloor?.unpaid) {
    const f = r.rustFloor.unpaid;
    const paidFloor = r.rustFloor.durableObject?.sequential;
    lines.push(`Rust floor: our Worker built to answer a constant 402 of the same size at once (the bench-floor feature): ${fmt(f.rps)} req/s, ` +
      `${x(f.rps, r.reference.unpaid.rps)} the reference, ${fmt(f.serverCpuUsPerRequest)} µs of server CPU per 402` +
      (paidFloor ? `; carrying PAYMENT-SIGNATURE, one write by a wallet ledger of ours, then the origin: p50 ${fmt(paidFloor.p50, 1)} ms, p90 ${fmt(paidFloor.p90, 1)} ms` +
        (paidFloor.failures ? ` (${paidFloor.failures} of ${paidFloor.paid} requests FAILED: not taken for a floor)` : "") + "." : "."));
  }
  lines.push("");
  const v = r.verification ?? { wasm: {}, native: {} };
  if (r.verification) lines.push(`one verification (spec example through paywall::decide): ${fmt(v.wasm.usPerVerification, 1)} µs in wasm, ${fmt(v.native.usPerVerification, 1)} µs native (wasm ${fmt(v.wasmOverNative, 2)}× native)` +
    (v.callgrind ? `; ${fmt(v.callgrind.instructionsPerVerification)} instructions native` : ""));
  for (const b of v?.callgrind?.breakdown ?? []) lines.push(`  ${fmt(b.share * 100, 0).padStart(3)}%  ${b.what}`);
  lines.push(`bundle: as wrangler uploads it (the wasm and its JavaScript) ${fmt(r.bundle.uploadBytes / 1024, 1)} KB raw, ${fmt(r.bundle.uploadGzipBytes / 1024, 1)} KB gzipped; ` +
    `${r.bundle.file} alone ${fmt(r.bundle.rawBytes / 1024, 1)} KB raw, ${fmt(r.bundle.gzipBytes / 1024, 1)} KB under gzip -9 (${r.bundle.gzipBytes} bytes); reference bundle ${fmt(r.referenceBundleBytes / 1024, 0)} KB of JavaScript`);
  const d = r.deferred.paid;
  const batch = d.batchSeconds ? ` (their batch came due ${d.batchSeconds} s after the first, once every paywall's series was over)` : "";
  if (d.settledWithinS != null) lines.push(`deferred: all ${d.paid - d.failures} payments settled on chain ${fmt(d.settledWithinS, 1)} s after the last answer${batch}`);
  else lines.push(`deferred: NOT all payments settled on chain within ${(d.batchSeconds ?? 0) + 40} s`);
  if (d.settledDuringSeries) lines.push("deferred: WARNING: some payments settled while the paid series were timed, on the facilitator and chain the others use");
  const problems = [];
  for (const [name, m] of Object.entries({ reference: r.reference, immediate: r.immediate, deferred: r.deferred, session: sess })) {
    for (const kind of ["unpaid", "free", "session"]) if (m[kind]?.unexpected) problems.push(`${name} ${kind}: ${m[kind].unexpected} unexpected answers ${JSON.stringify(m[kind].statusCodes)}`);
    if (m.paid?.failures) problems.push(`${name} paid: ${m.paid.failures} of ${m.paid.paid} payments not served`);
  }
  if (problems.length) lines.push("", "PROBLEMS:", ...problems.map((p) => `  ${p}`));
  lines.push("");
  lines.push(table(["target", "wanted", "measured", "result"], r.targets.map((t) => [t.target, t.wanted, t.measured, t.met == null ? "n/a" : t.met ? "MET" : `MISSED${t.by ? ` (${t.by})` : ""}`])));
  // A ratio whose runs fall on both sides of its target was decided by the machine's ups and downs.
  const wanted = { unpaid402: [TARGETS.unpaidVsReference, "×"], deferredP50: [TARGETS.deferredP50VsReference, "×"], session: [TARGETS.sessionVsFree, "×"], wasmVerify: [TARGETS.wasmVerifyUs, " µs"] };
  const unsteady = r.targets.filter((t) => t.range && wanted[t.id] && t.range[0] <= wanted[t.id][0] && wanted[t.id][0] <= t.range[1]);
  if (unsteady.length) {
    lines.push("");
    for (const t of unsteady) {
      const [, unit] = wanted[t.id];
      const digits = t.id === "deferredP50" ? 3 : unit === "×" ? 2 : 0;
      lines.push(`${t.id}: between ${fmt(t.range[0], digits)}${unit} and ${fmt(t.range[1], digits)}${unit} across the ${t.id === "deferredP50" ? "blocks of payments" : "rounds"}, either side of the target: ${t.met ? "met" : "missed"} within this machine's noise`);
    }
  }
  const floors = r.targets.filter((t) => t.floor && !t.met);
  if (floors.length) {
    lines.push("");
    for (const t of floors) {
      lines.push(`${t.id}: ${t.floor}: ${t.reachable ? "reachable on this machine" : `NOT reachable by ${t.floorOf ?? "any Worker"} on this machine`}`);
    }
  }
  lines.push("");
  return lines.join("\n");
}

// ---- main ----------------------------------------------------------------------------------------

async function main() {
  const started = performance.now();
  await mkdir(OUT, { recursive: true });
  if (args.profile || args.only === "session") {
    // Only the session column (with --profile, its free pass-through and session requests under
    // the profiler): its figures are in the log lines, its target judged here.
    if (args.only && args.only !== "session") throw new Error(`--only ${args.only}: only "session" can be measured alone`);
    const wrangler = await readWranglerConfig();
    const stack = await startStack();
    try {
      const inspectorPort = args.profile ? await freePort() : undefined;
      const known = new Set(await workerdPids());
      const worker = await withWorkerd(() => startOurs(wrangler, ourConfig(stack, wrangler, SESSION_ROUTE), { X402_SESSION_SECRET: SESSION_SECRET }, "build", { inspectorPort }), known);
      const s = await measureSession(worker, accounts.payers[3], { inspectorPort });
      if (s.available) log(`session requests / free pass-through: ${fmt(s.session.rps / s.free.rps, 2)}× (target ≥ ${TARGETS.sessionVsFree}×)`);
    } finally {
      await cleanup();
    }
    return;
  }

  // CPU-heavy preparation first, so that nothing compiles while anything is measured.
  const built = args["no-verify"] ? null : await buildVerifyBenches({ log });
  const floorBuild = args["no-floor"] ? null : await buildRustFloor();
  const referenceBundle = await bundleReference();
  log(`reference bundled: ${fmt(referenceBundle.bytes / 1024, 0)} KB (${referenceBundle.compatibilityFlags.join(", ")})`);
  const load = await machineLoad();
  const verification = built ? await measureVerification(built) : null;
  const bundle = await bundleSize();

  const wrangler = await readWranglerConfig();
  const countersBefore = await cpuCounters();
  const stack = await startStack();
  let results;
  try {
    results = await measureAll(stack, await startContestants(stack, wrangler, referenceBundle, floorBuild));
  } finally {
    await cleanup();
  }
  const stolen = stolenShare(countersBefore, await cpuCounters());

  const cpus = os.cpus();
  const r = {
    date: new Date().toISOString(),
    machine: { cpus: cpus.length, cpuModel: cpus[0]?.model?.trim() ?? "unknown", memoryGB: Math.round(os.totalmem() / 2 ** 30), platform: `${os.platform()} ${os.release()}`, ...load, stolenShare: stolen },
    versions: await versions(),
    settings: SETTINGS,
    ...results,
    verification,
    bundle,
    referenceBundleBytes: referenceBundle.bytes,
  };
  r.targets = targetsOf(r);
  r.seconds = (performance.now() - started) / 1000;

  const text = report(r);
  console.log(text);
  await writeFile(path.join(OUT, "bench.json"), JSON.stringify(r, null, 2) + "\n");
  await writeFile(path.join(OUT, "bench.svg"), renderSvg(r));
  await writeFile(path.join(OUT, "bench.txt"), text + "\n");
  log(`wrote ${path.relative(ROOT, OUT)}/bench.json, bench.svg and bench.txt (${fmt(r.seconds, 0)} s in all)`);
  const missed = r.targets.filter((t) => t.met === false);
  if (args.strict && missed.length) process.exitCode = 1;
}

/**
 * --compare: the deferred paid latency of several builds of the Worker, nothing else. Every build
 * runs at once, each in its own workerd with the deferred route, and the payments go to them in
 * turn, one request to each, so that the machine's ups and downs fall on every build alike (runs
 * one after another on this shared machine differ by more than most changes do). Beside them, the
 * empty Worker's paths, in the same turn: passing to the origin, asking a Durable Object that
 * writes nothing, one that stores a row with the storage API, one that inserts with SQL. Also the
 * CPU each build's workerd spent per payment during the series (its batches settle later and are
 * not counted). Then each build's unpaid 402 under autocannon, the builds in turn within each of
 * the rounds; as in throughput(), the run of median throughput is kept whole (its CPU per 402 with
 * it). Each build's payments are spread over payers so that none reaches its credit limit; every
 * payment must be served with a receipt, then land on chain with its batch.
 */
async function compare() {
  const builds = args.compare.split(",").filter(Boolean);
  const n = Number(args.payments ?? 90);
  const perPayer = 80; // under the $1 credit limit of wrangler.toml at $0.01
  const total = n + SETTINGS.warmupPayments;
  const payersPerBuild = Math.ceil(total / perPayer);
  if (builds.length * payersPerBuild > accounts.payers.length) {
    throw new Error(`${builds.length} builds × ${payersPerBuild} payers each: only ${accounts.payers.length} funded payers (fewer builds, or --payments)`);
  }
  const wrangler = await readWranglerConfig();
  const stack = await startStack();
  const known = new Set(await workerdPids());
  try {
    const empty = await withWorkerd(() => startEmpty(stack, wrangler), known);
    const floors = [
      ["empty Worker, pass-through", FREE],
      ["empty Worker, Durable Object asked, nothing written", `/do-read${FREE}`],
      ["empty Worker, Durable Object put of 2,500 bytes", `/do-put${FREE}`],
      ["empty Worker, Durable Object SQL insert (the bench's floor)", `/do${FREE}`],
    ].map(([label, p]) => ({ label, url: empty.url + p, samples: [] }));
    if (args.profile && builds.length !== 1) throw new Error("--profile takes one build");
    const inspectorPort = args.profile ? await freePort() : undefined;
    const runs = [];
    for (const [k, build] of builds.entries()) {
      const worker = await withWorkerd(() => startOurs(wrangler, ourConfig(stack, wrangler, { settlement: "deferred" }), {}, build, { inspectorPort }), known);
      const pids = worker.pids;
      log(`${build}: workerd pid ${pids.join(", ") || "not found"}`);
      const payers = accounts.payers.slice(k * payersPerBuild, (k + 1) * payersPerBuild);
      const { terms, resource } = await termsOf(worker.url);
      const payments = [];
      for (let i = 0; i < total; i++) {
        payments.push(encodeHeader(await signPayment(terms, payers[Math.floor(i / perPayer)].privateKey, { resource })));
      }
      const before = await Promise.all(payers.map((p) => balanceOf(stack.rpcUrl, stack.usdc, p.address)));
      runs.push({ build, worker, pids, payers, payments, before, samples: [], failures: 0 });
    }
    log(`${builds.length} build(s), ${n} deferred payments each (after ${SETTINGS.warmupPayments}), in turn with the empty Worker's paths`);
    for (const r of runs) r.cpuBefore = await cpuSeconds(async () => r.pids);
    const timed = async (url, init) => {
      const t = performance.now();
      const res = await fetch(url, init);
      await res.arrayBuffer();
      return { res, ms: performance.now() - t };
    };
    await profiled(inspectorPort, "deferred", async () => {
      for (let i = 0; i < total; i++) {
        const counted = i >= SETTINGS.warmupPayments;
        for (const f of floors) {
          const { res, ms } = await timed(f.url);
          if (res.status !== 200) throw new Error(`${f.label}: answered ${res.status}`);
          if (counted) f.samples.push(ms);
        }
        for (const r of runs) {
          const { res, ms } = await timed(r.worker.url + PRICED, { headers: { "PAYMENT-SIGNATURE": r.payments[i] } });
          if (!paidAnswer(res).ok) r.failures++;
          if (counted) r.samples.push(ms);
        }
      }
    });
    for (const r of runs) r.cpu = (await cpuSeconds(async () => r.pids)) - r.cpuBefore;
    // Then the unpaid 402 under load, the builds in turn within each round for the same reason:
    // what a build costs on the path every unpaying client takes.
    for (const r of runs) r.unpaid = [];
    for (const r of runs) await cannon({ url: r.worker.url + PRICED, connections: SETTINGS.connections, duration: SETTINGS.warmupS });
    for (let round = 0; round < SETTINGS.rounds; round++) {
      for (const r of runs) {
        const cpuBefore = await cpuSeconds(async () => r.pids);
        const c = await cannon({ url: r.worker.url + PRICED, connections: SETTINGS.connections, duration: SETTINGS.durationS });
        const cpu = (await cpuSeconds(async () => r.pids)) - cpuBefore;
        const total = c.requests.total;
        const answered402 = c.statusCodeStats?.["402"]?.count ?? 0;
        if (answered402 !== total || c.errors || c.timeouts) r.unpaidFailures = (r.unpaidFailures ?? 0) + 1;
        r.unpaid.push({ rps: total / c.duration, cpuUs: total ? (cpu * 1e6) / total : NaN });
      }
    }
    const summary = (samples) => {
      const sorted = [...samples].sort((a, b) => a - b);
      return [25, 50, 90].map((p) => fmt(percentile(sorted, p), 2));
    };
    const rows = floors.map((f) => [f.label, ...summary(f.samples), "", "", "", ""]);
    for (const r of runs) {
      // Every payment served must land on chain with its batch, from the payer that signed it.
      let settled = true;
      for (const [j, payer] of r.payers.entries()) {
        if (!settled) break; // one payer short is enough to say so
        const count = BigInt(Math.min(perPayer, total - j * perPayer));
        settled &&= (await waitForSettlement(stack, payer, r.before[j], count * PRICE_ATOMIC)) !== null;
      }
      const outcome = r.failures ? `${r.failures} FAILED` : r.unpaidFailures ? `${r.unpaidFailures} unpaid run(s) with answers other than 402` : settled ? "all served and settled" : "NOT all settled within 40 s";
      const unpaid = [...r.unpaid].sort((a, b) => a.rps - b.rps)[Math.floor(r.unpaid.length / 2)];
      rows.push([r.build, ...summary(r.samples), fmt((r.cpu * 1e6) / total, 0), fmt(unpaid.rps, 0), fmt(unpaid.cpuUs, 0), outcome]);
    }
    console.log("\n" + table(["", "p25 (ms)", "p50 (ms)", "p90 (ms)", "workerd CPU/payment (µs)", "unpaid 402 (req/s)", "workerd CPU/402 (µs)", ""], rows));
  } finally {
    await cleanup();
  }
}

async function versions() {
  const pkg = async (name) => JSON.parse(await readFile(path.join(ROOT, "node_modules", name, "package.json"), "utf8")).version;
  const out = { node: process.versions.node };
  for (const name of ["@x402/hono", "@x402/core", "@x402/evm", "hono", "miniflare", "workerd", "autocannon"]) {
    out[name] = await pkg(name).catch(() => null);
  }
  out.rustc = await run("rustc", ["--version"]).then((r) => r.stdout.trim()).catch(() => null);
  return out;
}

(args.compare ? compare() : main()).catch(async (err) => {
  console.error(`[bench] failed: ${err.stack ?? err}`);
  await cleanup();
  process.exit(1);
});
