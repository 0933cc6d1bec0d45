// A real browser for the black-box tests: Debian's Chromium (/usr/bin/chromium) driven by
// playwright-core, which brings no browser of its own (`npx playwright install` does not work on
// these machines). And a test wallet: an EIP-1193 provider injected into the page as
// window.ethereum, whose every request is answered in Node by a viem account.
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";

export const CHROMIUM = "/usr/bin/chromium";

/** Headless, and no connection attempts of its own (this machine's network is closed). */
export const CHROMIUM_FLAGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

/**
 * Makes sure Debian's Chromium is there: installs it (apt-get, as root or with password-less sudo)
 * when it is missing. Returns { path, installed } or { skip: why } when it is missing and cannot be
 * installed. scripts/setup does the same, so this normally finds it in place.
 */
export function ensureChromium() {
  if (existsSync(CHROMIUM)) return { path: CHROMIUM, installed: false };
  const root = process.getuid?.() === 0;
  const sudo = !root && spawnSync("sudo", ["-n", "true"], { stdio: "ignore" }).status === 0;
  if (!root && !sudo) {
    return { skip: `${CHROMIUM} is missing and cannot be installed here (not root, no password-less sudo); run: apt-get install chromium` };
  }
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
  const run = (args) =>
    spawnSync(root ? args[0] : "sudo", root ? args.slice(1) : ["-n", ...args], { stdio: "ignore", env, timeout: 300_000 })
      .status === 0;
  const install = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "chromium", "fonts-dejavu-core"];
  if (!run(install)) {
    run(["apt-get", "update", "-qq"]);
    run(install);
  }
  return existsSync(CHROMIUM)
    ? { path: CHROMIUM, installed: true }
    : { skip: `${CHROMIUM} is missing and \`apt-get install chromium\` failed` };
}

/**
 * Starts headless Chromium with a fresh, empty profile. Returns { context, page, close() }; close()
 * also deletes the profile.
 */
export async function launchChromium({ executablePath = CHROMIUM, viewport = { width: 900, height: 900 } } = {}) {
  const { chromium } = await import("playwright-core");
  const userDataDir = await mkdtemp(path.join(os.tmpdir(), "x402-chromium-"));
  let context;
  try {
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath,
      headless: true,
      args: CHROMIUM_FLAGS,
      viewport,
    });
  } catch (err) {
    await rm(userDataDir, { recursive: true, force: true });
    throw err;
  }
  return {
    context,
    page: context.pages()[0] ?? (await context.newPage()),
    async close() {
      await context.close().catch(() => {});
      await rm(userDataDir, { recursive: true, force: true });
    },
  };
}

const userRejected = () => Object.assign(new Error("User rejected the request."), { code: 4001 });

/**
 * Injects a test wallet into `page` before any of its scripts run: window.ethereum.request()
 * forwards to Node, where `account` (a viem local account) answers eth_requestAccounts,
 * eth_chainId, wallet_switchEthereumChain (to `chainId` only; others: 4902) and
 * eth_signTypedData_v4 (the JSON is parsed and given to account.signTypedData in viem's shape).
 * Returns the wallet's controls: `calls` (every request, in order), `reject` (set to a method name
 * to have the user decline it), `signer` (sign with another account, to forge).
 */
export async function injectWallet(page, { account, chainId }) {
  const wallet = { calls: [], reject: null, signer: account };
  const answer = async (method, params) => {
    if (wallet.reject === method) throw userRejected();
    switch (method) {
      case "eth_requestAccounts":
      case "eth_accounts":
        return [account.address];
      case "eth_chainId":
        return `0x${chainId.toString(16)}`;
      case "wallet_switchEthereumChain":
        if (Number.parseInt(params[0]?.chainId, 16) === chainId) return null;
        throw Object.assign(new Error("Unrecognized chain ID."), { code: 4902 });
      case "eth_signTypedData_v4": {
        const [from, json] = params;
        if (from.toLowerCase() !== account.address.toLowerCase()) {
          throw Object.assign(new Error(`not this wallet's account: ${from}`), { code: 4100 });
        }
        const typedData = JSON.parse(json);
        const { EIP712Domain: _domainType, ...types } = typedData.types;
        const message = { ...typedData.message };
        for (const { name, type } of types[typedData.primaryType]) {
          if (/^u?int\d*$/.test(type)) message[name] = BigInt(message[name]);
        }
        return wallet.signer.signTypedData({
          domain: { ...typedData.domain, chainId: Number(typedData.domain.chainId) },
          types,
          primaryType: typedData.primaryType,
          message,
        });
      }
      default:
        throw Object.assign(new Error(`the test wallet does not do ${method}`), { code: 4200 });
    }
  };
  await page.exposeFunction("__x402TestWallet", async (method, paramsJson) => {
    const params = JSON.parse(paramsJson);
    wallet.calls.push({ method, params });
    try {
      return JSON.stringify({ result: await answer(method, params) });
    } catch (err) {
      return JSON.stringify({ error: { code: err.code ?? -32603, message: err.message } });
    }
  });
  await page.addInitScript(() => {
    window.ethereum = {
      isX402TestWallet: true,
      async request({ method, params }) {
        const reply = JSON.parse(await window.__x402TestWallet(method, JSON.stringify(params ?? [])));
        if (reply.error) throw Object.assign(new Error(reply.error.message), { code: reply.error.code });
        return reply.result;
      },
    };
  });
  return wallet;
}
