// Pays for one URL behind the x402 paywall with the OFFICIAL client and shows what happened: the
// terms asked, the status and content returned, the decoded receipt, and the USDC balances of the
// payer and of payTo before and after (read from the chain). Exits non-zero unless it paid.
//
//   node scripts/lib/pay.mjs URL [--rpc http://127.0.0.1:8545] [--key 0x…] [--v1] [--wait 5]
//   --v1 uses the legacy v1 client (x402-fetch@1: JSON 402 body, X-PAYMENT header).
import { parseArgs } from "node:util";
import { formatUnits } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { decodePaymentResponseHeader, wrapFetchWithPayment, x402Client } from "@x402/fetch";
import { registerExactEvmScheme } from "@x402/evm/exact/client";
import { balanceOf, chainIdOf, payers, USDC, USDC_ADDRESS } from "./chain.mjs";

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    rpc: { type: "string", default: "http://127.0.0.1:8545" },
    key: { type: "string", default: payers[0].privateKey },
    token: { type: "string", default: USDC_ADDRESS },
    v1: { type: "boolean", default: false },
    wait: { type: "string", default: "5" },
    help: { type: "boolean", short: "h", default: false },
  },
});
const url = positionals[0];
if (values.help || !url) {
  console.log("usage: scripts/pay URL [--rpc URL] [--key 0xPRIVATEKEY] [--token 0xUSDC] [--v1] [--wait SECONDS]");
  process.exit(values.help ? 0 : 2);
}

const account = privateKeyToAccount(values.key);
const usdc = (atomic) => `${formatUnits(BigInt(atomic), USDC.decimals)} USDC`;
const short = (s, n) => (s.length > n ? `${s.slice(0, n)}\n… (${s.length - n} more characters)` : s);
const decode = (b64) => JSON.parse(Buffer.from(b64, "base64").toString("utf8"));

function show(contentType, text) {
  if (/json/.test(contentType)) {
    try {
      return short(JSON.stringify(JSON.parse(text), null, 2), 1500);
    } catch {
      /* not JSON after all */
    }
  }
  if (/html/.test(contentType)) {
    const plain = text
      .replace(/<(script|style|head)[\s\S]*?<\/\1>/gi, "")
      .replace(/<\/(p|h\d|li|div|article|title)>/gi, "\n")
      .replace(/<[^>]+>/g, "")
      .replace(/&#(\d+);/g, (_, c) => String.fromCharCode(Number(c)))
      .replace(/&amp;/g, "&").replace(/&lt;/g, "<").replace(/&gt;/g, ">").replace(/&quot;/g, '"')
      .split("\n").map((l) => l.trim()).filter(Boolean).join("\n");
    return short(plain, 800);
  }
  return short(text, 800);
}

async function balances(asset, payTo) {
  try {
    return { payer: await balanceOf(values.rpc, asset, account.address), payTo: await balanceOf(values.rpc, asset, payTo) };
  } catch (err) {
    console.log(`  (cannot read balances from ${values.rpc}: ${err.message.split("\n")[0]})`);
    return null;
  }
}

// 1. Ask once without paying, to show the terms and read the balances before.
const probe = await fetch(url);
if (probe.status !== 402) {
  console.log(`${url} answered ${probe.status} without asking for payment; nothing paid.`);
  console.log(show(probe.headers.get("content-type") ?? "", await probe.text()));
  process.exit(1);
}
let terms;
if (values.v1) {
  const body = await probe.json().catch(() => ({}));
  terms = (body.accepts ?? []).find((r) => r.scheme === "exact");
  if (terms) terms = { ...terms, amount: terms.maxAmountRequired };
} else {
  const header = probe.headers.get("payment-required");
  terms = header && decode(header).accepts.find((r) => r.scheme === "exact" && r.network.startsWith("eip155:"));
}
if (!terms) {
  console.log(`${url} answered 402 but offered no exact EVM terms ${values.v1 ? "in a v1 body" : "in PAYMENT-REQUIRED"}.`);
  process.exit(1);
}
console.log(`${url} asks ${usdc(terms.amount)} on ${terms.network}`);
console.log(`  asset ${terms.asset}, payTo ${terms.payTo}`);
console.log(`  payer ${account.address} (${values.v1 ? "legacy v1 client x402-fetch" : "official v2 client @x402/fetch"})`);
const before = await balances(terms.asset, terms.payTo);

// 2. Pay with the official client.
let paidFetch;
if (values.v1) {
  const { wrapFetchWithPayment: wrapV1 } = await import("x402-fetch");
  paidFetch = wrapV1(fetch, account);
} else {
  const client = new x402Client();
  registerExactEvmScheme(client, { signer: account });
  const chainId = await chainIdOf(values.rpc).catch(() => Number(terms.network.split(":")[1]));
  client.setSpendControls({ allowedAssets: [{ network: `eip155:${chainId}`, asset: values.token }] });
  paidFetch = wrapFetchWithPayment(fetch, client);
}
const started = performance.now();
let res;
try {
  res = await paidFetch(url);
} catch (err) {
  console.log(`payment failed: ${err.message}`);
  process.exit(1);
}
const ms = Math.round(performance.now() - started);
const contentType = res.headers.get("content-type") ?? "";
console.log(`\nstatus ${res.status} ${res.statusText} (${ms} ms, ${contentType || "no content type"})`);
console.log(show(contentType, await res.text()));

// 3. The receipt.
const receiptHeader = res.headers.get("payment-response") ?? res.headers.get("x-payment-response");
let receipt = null;
if (receiptHeader) {
  try {
    receipt = values.v1 ? decode(receiptHeader) : decodePaymentResponseHeader(receiptHeader);
  } catch (err) {
    console.log(`\nreceipt header present but undecodable: ${err.message}`);
  }
}
if (receipt) {
  console.log(`\nreceipt: ${receipt.success ? "paid" : "NOT paid"}${receipt.errorReason ? ` (${receipt.errorReason})` : ""}`);
  console.log(`  transaction ${receipt.transaction || "(none yet)"}`);
  console.log(`  network ${receipt.network}, payer ${receipt.payer ?? "?"}`);
} else {
  console.log("\nno receipt header (PAYMENT-RESPONSE / X-PAYMENT-RESPONSE)");
}

// 4. Balances after; a deferred settlement may land a moment later, so wait a little for it.
if (before) {
  let after = await balances(terms.asset, terms.payTo);
  const deadline = Date.now() + Number(values.wait) * 1000;
  while (after && after.payer === before.payer && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 250));
    after = await balances(terms.asset, terms.payTo);
  }
  if (after) {
    const line = (who, b, a) => `  ${who.padEnd(6)} ${usdc(b)} -> ${usdc(a)} (${a >= b ? "+" : "-"}${usdc(a >= b ? a - b : b - a)})`;
    console.log("\nbalances");
    console.log(line("payer", before.payer, after.payer));
    console.log(line("payTo", before.payTo, after.payTo));
    if (after.payer === before.payer) console.log(`  (not settled on chain yet after ${values.wait} s)`);
  }
}

const paid = res.ok && receipt?.success === true;
process.exit(paid ? 0 : 1);
