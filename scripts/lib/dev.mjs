// Runs the whole local stack on loopback for development (scripts/dev calls it after setup and the
// build, with scripts/lib/env.sh in the environment): a fresh anvil chain on 8545 with USDC, the
// official facilitator on 4021, the demo origin on 8788 and `wrangler dev` on 8787, configured by
// wrangler.toml's [vars.X402]. Ctrl-C or SIGTERM stops everything it started.
//
//   node scripts/lib/dev.mjs [--keep-state]
//   --keep-state keeps the Worker's KV and Durable Object state in .dev-state/wrangler from the last
//   run (by default it is wiped, since the chain it refers to starts afresh every run).
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { accounts, deployUsdc, installMulticall3, startAnvil } from "./chain.mjs";
import { startFacilitator } from "./facilitator.mjs";
import { startOrigin } from "./origin.mjs";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
process.chdir(ROOT);
const PORTS = { chain: 8545, facilitator: 4021, origin: 8788, worker: 8787 };
const STATE = ".dev-state/wrangler";
const { values } = parseArgs({ options: { "keep-state": { type: "boolean", default: false } } });

const bold = (s) => (process.stdout.isTTY ? `\x1b[1m${s}\x1b[0m` : s);
const step = (s) => console.log(`${bold("[dev]")} ${s}`);
const started = performance.now();
const stoppers = []; // run in reverse order on shutdown

let shuttingDown = false;
async function shutdown(code = 0) {
  if (shuttingDown) return;
  shuttingDown = true;
  step("stopping…");
  for (const stop of stoppers.reverse()) await stop().catch((err) => console.error(err.message));
  step("stopped");
  process.exit(code);
}
process.on("SIGINT", () => shutdown(0));
process.on("SIGTERM", () => shutdown(0));

/** Secrets for `wrangler dev`, kept in .dev.vars (git-ignored); missing ones are added. */
function ensureDevVars() {
  const file = ".dev.vars";
  const text = existsSync(file) ? readFileSync(file, "utf8") : "";
  // Both must be 32 characters at least: a shorter one (as earlier versions wrote) is replaced.
  const wanted = { X402_ADMIN_TOKEN: randomBytes(32).toString("hex"), X402_SESSION_SECRET: randomBytes(32).toString("hex") };
  const kept = text.split("\n").filter((l) => !Object.keys(wanted).some((k) => l.startsWith(`${k}=`) && l.length < k.length + 33));
  const missing = Object.entries(wanted).filter(([k]) => !kept.some((l) => l.startsWith(`${k}=`)));
  if (missing.length) {
    const rest = kept.join("\n").replace(/\n*$/, "");
    writeFileSync(file, (rest ? rest + "\n" : "") + missing.map(([k, v]) => `${k}=${v}`).join("\n") + "\n");
  }
}

function prefix(tag, stream, out) {
  let partial = "";
  stream.setEncoding("utf8").on("data", (chunk) => {
    const lines = (partial + chunk).split("\n");
    partial = lines.pop();
    for (const line of lines) out.write(`${tag} ${line}\n`);
  });
}

/** Starts `wrangler dev` in its own process group; resolves once it answers HTTP. */
async function startWrangler() {
  const child = spawn(
    "node_modules/.bin/wrangler",
    ["dev", "--ip", "127.0.0.1", "--port", String(PORTS.worker), "--persist-to", STATE,
      "--show-interactive-dev-session=false"],
    { detached: true, stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, FORCE_COLOR: "0" } },
  );
  prefix("[worker]", child.stdout, process.stdout);
  prefix("[worker]", child.stderr, process.stderr);
  const exited = new Promise((resolve) => child.once("exit", resolve));
  const kill = (signal) => {
    try {
      process.kill(-child.pid, signal);
    } catch {
      /* gone */
    }
  };
  process.on("exit", () => kill("SIGKILL"));
  stoppers.push(async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    kill("SIGTERM");
    const timer = setTimeout(() => kill("SIGKILL"), 3000);
    await exited;
    clearTimeout(timer);
  });
  exited.then((code) => {
    if (!shuttingDown) {
      step(`wrangler dev exited (${code}); stopping the rest`);
      shutdown(1);
    }
  });

  const url = `http://127.0.0.1:${PORTS.worker}/`;
  const deadline = Date.now() + 180_000;
  while (Date.now() < deadline) {
    try {
      await fetch(url, { signal: AbortSignal.timeout(2000) });
      return url;
    } catch {
      await new Promise((r) => setTimeout(r, 250));
    }
  }
  throw new Error(`wrangler dev did not answer on ${url} within 180 s`);
}

try {
  const chain = await startAnvil({ port: PORTS.chain });
  stoppers.push(chain.stop);
  step(`chain up: ${chain.rpcUrl} (chain id ${chain.chainId})`);

  const usdc = await deployUsdc(chain.rpcUrl);
  step(`USDC deployed at ${usdc}; payers #3..#9 hold 1000 USDC each`);
  step(`Multicall3 at ${await installMulticall3(chain.rpcUrl)}, where public chains have it`);

  const facilitator = await startFacilitator({ rpcUrl: chain.rpcUrl, port: PORTS.facilitator, verbose: true });
  stoppers.push(facilitator.stop);
  step(`facilitator (official @x402/core + @x402/evm): ${facilitator.url}`);

  const origin = await startOrigin({ port: PORTS.origin, verbose: true });
  stoppers.push(origin.stop);
  step(`origin (demo site): ${origin.url}`);

  ensureDevVars();
  if (!values["keep-state"]) rmSync(STATE, { recursive: true, force: true });
  step(`worker: starting wrangler dev (state in ${STATE})…`);
  const worker = await startWrangler();
  step(`worker: ${worker}`);

  const payer = accounts.payers[0];
  console.log(`
${bold("x402-edge is running")} (ready in ${((performance.now() - started) / 1000).toFixed(1)} s)

  worker (the paywall)  ${worker}
  origin (behind it)    ${origin.url}
  facilitator           ${facilitator.url}   gas paid by ${accounts.facilitatorSigner.address}
  chain (anvil)         ${chain.rpcUrl}   chain id ${chain.chainId}
  USDC                  ${usdc}
  payTo                 ${accounts.payTo.address}
  payer                 ${payer.address}
    private key         ${payer.privateKey}   (anvil test key; play money)
  admin token           see .dev.vars (X402_ADMIN_TOKEN)

Free:  curl ${worker}
Pay:   scripts/pay ${worker}articles/hello
       scripts/pay ${worker}api/weather

Ctrl-C stops everything.
`);
} catch (err) {
  console.error(`${bold("[dev]")} failed: ${err.message}`);
  if (/Address already in use|EADDRINUSE/i.test(err.message)) {
    console.error(`${bold("[dev]")} a port is taken; is another scripts/dev running? (ports ${Object.values(PORTS).join(", ")})`);
  }
  await shutdown(1);
}
