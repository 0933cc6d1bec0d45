// Hostile input, black-box: over a hundred crafted requests against the built Worker in workerd (Miniflare),
// with its wallet ledgers (LEDGER), in front of the demo origin, the real USDC on a local chain and
// the official facilitator. Each case names its request and the status and `reason` it must get;
// after the table: no 5xx from the Worker, no protected content in any answer that was not paid
// for, and every payer's balance moved by exactly what the paid cases say (usually nothing).
//
// Requests go over a raw TCP socket (lib/raw-http.mjs) so that nothing normalises them on the way:
// lower-case and unknown methods, control characters and raw UTF-8 in header values, duplicate
// headers, obsolete line folding, absurd request targets. Answers are told apart by who wrote them:
// the Worker (its JSON refusals, with CORS headers), the origin (x-origin), or workerd itself,
// which refuses some requests before any Worker code runs.
//
//   . scripts/lib/env.sh && node --test tests/e2e/hostile.test.mjs
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { gzipSync } from "node:zlib";
import { after, before, describe, test } from "node:test";
import { getAddress } from "viem";
import { generatePrivateKey, privateKeyToAccount } from "viem/accounts";
import { ADMIN_TOKEN, decodeHeader, encodeHeader, startStack, startWorker } from "./harness.mjs";
import { rawRequest } from "./lib/raw-http.mjs";
import { signPayment } from "./lib/sign.mjs";

const PRICE = 10000n; // "$0.01"
// A multipart upload of a file named `.method` (which PHP would read as `_method` were it a
// part's name, not a file's).
const UPLOAD = '--XyZ\r\nContent-Disposition: form-data; name="upload"; filename=".method"\r\nContent-Type: text/plain\r\n\r\nGET\r\n--XyZ--\r\n';
// A multipart upload of over 1 MiB, more than is read to search for `_method`.
const BIG_UPLOAD = `--XyZ\r\nContent-Disposition: form-data; name="upload"; filename="big.txt"\r\n\r\n${"x".repeat((1 << 20) + 10)}\r\n--XyZ--\r\n`;
/** A path refused before any route is matched: no route, so no terms. */
const BAD_PATH = { terms: false };
const ADMIN = ADMIN_TOKEN;
const SESSION_SECRET = "hostile-suite-session-secret-0123456789abcdef";
const N = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n;
const TWO_256 = 2n ** 256n;

// What only a paid request may show: the article, the weather, and the echo of a priced echo route.
const PROTECTED = [
  /You paid for this article/,
  /"temperatureC"/,
  /"path": "\/echo\/(deferred|pricey|other-payee|session)/i,
];

let stack, worker;
/** Terms from the 402s: a = /articles/* (immediate), w = /api/weather (deferred), the rest as named. */
const T = {};
/** Private keys by payer index (funded), and fresh unfunded ones made here. */
const key = (i) => stack.payer(i).privateKey;
const addr = (i) => stack.payer(i).address;
const unfunded = generatePrivateKey();
const unfundedAddress = privateKeyToAccount(unfunded).address;

before(async () => {
  // Chain id 84532 gives the chain a v1 name ("base-sepolia"), so v1 payments can be sent too.
  stack = await startStack({ chainId: 84532 });
  worker = await startWorker({
    config: stack.config({
      deferred: { batchSeconds: 1, safetyMarginSeconds: 30, creditLimit: "$1.00" },
      rpc: { [stack.network]: stack.rpcUrl },
      routes: [
        { path: "/articles/free-sample", free: true },
        { path: "/articles/*", price: "$0.01", mimeType: "text/html" },
        { path: "/api/weather", method: "GET", price: "$0.01", mimeType: "application/json", settlement: "deferred" },
        { path: "/echo/deferred/*", price: "$0.01", settlement: "deferred" },
        { path: "/echo/pricey/*", price: "$0.02" },
        { path: "/echo/other-payee/*", price: "$0.01", payTo: stack.accounts.deployer.address, settlement: "deferred" },
        { path: "/echo/session/*", price: "$0.01", session: { seconds: 600 } },
        { path: "/echo/get-only/*", method: "GET", price: "$0.01" },
        { path: "/echo/no-override/*", method: "GET", price: "$0.01", methodParameter: false },
        { path: "/études/*", price: "$0.01" },
        { path: "/quote/:symbol", method: "GET", price: "$0.01" },
      ],
    }),
    secrets: { X402_ADMIN_TOKEN: ADMIN, X402_SESSION_SECRET: SESSION_SECRET },
  });
  for (const [k, p] of Object.entries({
    a: "/articles/hello",
    w: "/api/weather",
    d: "/echo/deferred/x",
    pricey: "/echo/pricey/x",
    other: "/echo/other-payee/x",
  })) {
    const res = await worker.fetch(p);
    assert.equal(res.status, 402, p);
    T[k] = decodeHeader(res.headers.get("payment-required")).accepts[0];
  }
  assert.deepEqual(T.a, T.w, "the immediate and deferred routes offer the very same terms: replays between them are the interesting case");
  start.balances = await allBalances();
  start.settlements = stack.facilitator.settlements().length;
});
after(async () => {
  await worker?.dispose();
  await stack?.stop();
});

// ---- helpers -------------------------------------------------------------------------------------

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const now = () => Math.floor(Date.now() / 1000);
const b64 = (s) => Buffer.from(s).toString("base64");
const hdr = (payload) => [["Payment-Signature", encodeHeader(payload)]];
const xhdr = (payload) => [["X-Payment", encodeHeader(payload)]];
const start = {};

/** Every balance that a case could move: the payers, the payees, and the unfunded wallet. */
async function allBalances() {
  const who = {
    payTo: stack.accounts.payTo.address,
    otherPayee: stack.accounts.deployer.address,
    unfunded: unfundedAddress,
  };
  for (let i = 0; i < stack.accounts.payers.length; i++) who[`payer${i}`] = addr(i);
  const out = {};
  await Promise.all(Object.entries(who).map(async ([k, a]) => (out[k] = await stack.balanceOf(a))));
  return out;
}

/** A signed v2 payment for terms `t` by payer #i (or a raw key), with overrides. */
const pay = (t, i, opts) => signPayment(t, typeof i === "number" ? key(i) : i, opts);

/** Signs, then lets `edit` tamper with the payload (after signing). */
async function tampered(i, edit, t = T.a) {
  const p = await pay(t, i);
  edit(p, p.payload.authorization);
  return p;
}

/** The signature's bytes, edited by `edit(buf)`, written back as hex. */
function editSig(p, edit) {
  const sig = Buffer.from(p.payload.signature.slice(2), "hex");
  const out = edit(sig) ?? sig;
  p.payload.signature = `0x${Buffer.from(out).toString("hex")}`;
}
const set32 = (buf, at, n) => buf.set(Buffer.from(n.toString(16).padStart(64, "0"), "hex"), at);

/** The v1 form of a v2 payment (same signature: v1 and v2 sign the same EIP-712 message). */
const asV1 = (p, network = "base-sepolia") => ({ x402Version: 1, scheme: "exact", network, payload: p.payload });

/** A payment JSON padded with spaces so that its base64 is exactly `len` characters (len % 4 == 0). */
function paddedHeader(p, len) {
  const json = JSON.stringify(p);
  const pad = (len / 4) * 3 - Buffer.byteLength(json);
  assert.ok(pad >= 0);
  const out = b64(`${json.slice(0, -1)}${" ".repeat(pad)}}`);
  assert.equal(out.length, len);
  return out;
}

/** EIP-712 signature of the same authorization under another primary type (ReceiveWithAuthorization). */
async function signAsReceive(t, i) {
  const account = privateKeyToAccount(key(i));
  const p = await pay(t, i);
  const a = p.payload.authorization;
  const fields = ["from:address", "to:address", "value:uint256", "validAfter:uint256", "validBefore:uint256", "nonce:bytes32"];
  p.payload.signature = await account.signTypedData({
    domain: { name: t.extra.name, version: t.extra.version, chainId: stack.chainId, verifyingContract: t.asset },
    types: { ReceiveWithAuthorization: fields.map((f) => ({ name: f.split(":")[0], type: f.split(":")[1] })) },
    primaryType: "ReceiveWithAuthorization",
    message: { ...a, value: BigInt(a.value), validAfter: BigInt(a.validAfter), validBefore: BigInt(a.validBefore) },
  });
  return p;
}

/** A forged session token: our format, claims for payer #i, a MAC made without the secret. */
function forgedToken(i) {
  const claims = Buffer.from(JSON.stringify({ sub: addr(i).toLowerCase(), scope: "/echo/session/*\n* /echo/session/*", exp: now() + 600 }));
  return `v1.${claims.toString("base64url")}.${randomBytes(32).toString("base64url")}`;
}

/** The admin view of every ledger. */
async function ledgers() {
  const res = await worker.fetch("/__x402/admin/ledger", { headers: { authorization: `Bearer ${ADMIN}` } });
  assert.equal(res.status, 200);
  return res.json();
}

async function until(what, probe, ms = 20_000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (v) return v;
    if (Date.now() > deadline) assert.fail(`${what}: not within ${ms} ms`);
    await sleep(100);
  }
}

/**
 * Sends one request over a raw socket. `req` is { method, path, headers: [[name, value]...], body,
 * head (a whole request head, overriding the rest), utf8 }.
 */
async function send(req) {
  const host = new URL(worker.url).host;
  let head = req.head;
  if (!head) {
    const lines = [`${req.method ?? "GET"} ${req.path} HTTP/1.1`, `Host: ${host}`];
    for (const [k, v] of req.headers ?? []) lines.push(`${k}: ${v}`);
    if (req.body != null) lines.push(`Content-Length: ${Buffer.byteLength(req.body, req.utf8 ? "utf8" : "latin1")}`);
    lines.push("Connection: close");
    head = lines.join("\r\n");
  } else {
    head = head.replaceAll("{host}", host);
  }
  const res = await rawRequest(worker.url, { head, body: req.body ?? "", utf8: req.utf8 });
  const text = res.body?.toString("utf8") ?? "";
  let json = null;
  try {
    json = JSON.parse(text);
  } catch {
    /* not JSON */
  }
  // The origin marks its answers; the Worker's are JSON or carry its CORS headers; workerd's own
  // refusals are neither (the admin interface's plain-text errors are the Worker's, by path).
  const source = res.headers?.["x-origin"]
    ? "origin"
    : json || res.headers?.["access-control-expose-headers"]?.includes("PAYMENT-REQUIRED") || req.path?.startsWith("/__x402/admin/")
      ? "worker"
      : "runtime";
  const terms = res.headers?.["payment-required"] ? decodeHeader(res.headers["payment-required"]) : null;
  const receiptHeader = res.headers?.["payment-response"] ?? res.headers?.["x-payment-response"];
  return {
    status: res.status,
    source,
    reason: json?.reason ?? null,
    x402: json?.error ?? terms?.error ?? null,
    terms,
    receipt: receiptHeader ? decodeHeader(receiptHeader) : null,
    text,
    headers: res.headers ?? {},
  };
}

// ---- the table -----------------------------------------------------------------------------------
//
// Each case: [name, request builder (async () => req), expected status, expected reason, options].
// reason: our code from the JSON body; null when the answer is not the Worker's (origin, workerd).
// options:
//   paid: { payer, amount, to }  a legitimately paid case: content allowed, this money must move
//   again: { payer }             a payment sent again with its identifier: content allowed (it was
//                                paid for), with its receipt; no money moves
//   source: "origin" | "runtime" who must have written the answer (default "worker")
//   x402: "…"                    the x402 reason (for HEAD, whose answer has no body)
//   check(res)                   more assertions
//   todo: "…"                    a known Worker bug: run, reported, not failing the suite

const sent = {}; // payments kept between cases (replays)
/** A payment carrying a payment identifier, as the official client's extension helper puts it. */
const withId = (payment, id) => ({ ...payment, extensions: { "payment-identifier": { info: { required: false, id } } } });
const W = "/api/weather";
const A = "/articles/hello";

const cases = [
  // -- the header: truncated, oversized, wrong encodings -------------------------------------------
  ["truncated base64 (100 of ~1600 chars): a JSON prefix", async () => ({ path: A, headers: [["Payment-Signature", encodeHeader(await pay(T.a, 0)).slice(0, 100)]] }), 400, "invalid_json"],
  ["truncated base64 to a length of 4n+1", async () => ({ path: A, headers: [["Payment-Signature", encodeHeader(await pay(T.a, 0)).slice(0, 101)]] }), 400, "invalid_base64"],
  ["base64 missing its last quantum (closing braces gone)", async () => ({ path: A, headers: [["Payment-Signature", encodeHeader(await pay(T.a, 0)).replace(/=+$/, "").slice(0, -4)]] }), 400, "invalid_json"],
  ["a single base64 character", async () => ({ path: A, headers: [["Payment-Signature", "e"]] }), 400, "invalid_base64"],
  ["only padding", async () => ({ path: A, headers: [["Payment-Signature", "===="]] }), 400, "invalid_base64"],
  ["raw JSON, not base64", async () => ({ path: A, headers: [["Payment-Signature", JSON.stringify(await pay(T.a, 0))]] }), 400, "invalid_base64"],
  ["base64 of base64 (double-encoded)", async () => ({ path: A, headers: [["Payment-Signature", b64(encodeHeader(await pay(T.a, 0)))]] }), 400, "invalid_json"],
  ["hex instead of base64 (all hex digits are base64 symbols)", async () => ({ path: A, headers: [["Payment-Signature", Buffer.from(JSON.stringify(await pay(T.a, 0))).toString("hex")]] }), 400, "invalid_json"],
  ["UTF-16LE JSON", async () => ({ path: A, headers: [["Payment-Signature", Buffer.from(JSON.stringify(await pay(T.a, 0)), "utf16le").toString("base64")]] }), 400, "invalid_json"],
  ["gzip of the JSON", async () => ({ path: A, headers: [["Payment-Signature", gzipSync(JSON.stringify(await pay(T.a, 0))).toString("base64")]] }), 400, "invalid_json"],
  ["UTF-8 byte-order mark before the JSON", async () => ({ path: A, headers: [["Payment-Signature", Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(JSON.stringify(await pay(T.a, 0)))]).toString("base64")]] }), 400, "invalid_json"],
  ["base64 split by spaces (MIME-style line breaks, folded)", async () => ({ path: A, headers: [["Payment-Signature", encodeHeader(await pay(T.a, 0)).match(/.{1,76}/g).join(" ")]] }), 400, "invalid_base64"],
  ["both base64 alphabets in one value ('/' and '_')", async () => {
    const v = `${b64('{"x402Version":2,"k":"\u00fb\u00ff\u00fe"}')}a_aa`;
    assert.ok(v.includes("/") && v.length % 4 === 0);
    return { path: A, headers: [["Payment-Signature", v]] };
  }, 400, "invalid_base64"],
  ["percent-encoded base64", async () => ({ path: A, headers: [["Payment-Signature", encodeURIComponent(encodeHeader(await pay(T.a, 0)))]] }), 400, "invalid_base64"],
  ["empty value", async () => ({ path: A, headers: [["Payment-Signature", ""]] }), 400, "invalid_base64"],
  ["whitespace-only value", async () => ({ path: A, headers: [["Payment-Signature", "    \t  "]] }), 400, "invalid_base64"],
  ["header name with an underscore is not ours", async () => ({ path: A, headers: [["Payment_Signature", encodeHeader(await pay(T.a, 0))]] }), 402, "payment_required"],
  ["the header twice, each a valid payment (joined with a comma)", async () => ({ path: A, headers: [...hdr(await pay(T.a, 0)), ...hdr(await pay(T.a, 1))] }), 400, "invalid_base64"],
  ["obsolete line folding inside the value", async () => {
    const v = encodeHeader(await pay(T.a, 0));
    return { path: A, headers: [["Payment-Signature", `${v.slice(0, 200)}\r\n ${v.slice(200)}`]] };
  }, 400, "invalid_base64"],
  ["a control character (0x01) inside the value", async () => ({ path: A, headers: [["Payment-Signature", `eyJ4\x01MDJW`]] }), 400, "invalid_base64"],
  ["a DEL (0x7f) inside the value", async () => ({ path: A, headers: [["Payment-Signature", `eyJ4\x7fMDJW`]] }), 400, "invalid_base64"],
  ["a NUL inside the value: workerd refuses the request itself", async () => ({ path: A, headers: [["Payment-Signature", `eyJ4\x00MDJW`]] }), 400, null, { source: "runtime" }],
  ["raw UTF-8 (snowmen) as the value", async () => ({ path: A, headers: [["Payment-Signature", "☃☃☃☃"]], utf8: true }), 400, "invalid_base64"],
  ["raw Latin-1 bytes as the value", async () => ({ path: A, headers: [["Payment-Signature", "\xe9\xe9\xe9\xe9"]] }), 400, "invalid_base64"],
  ["a valid payment padded to exactly 16384 bytes of header: accepted", async () => ({ path: A, headers: [["Payment-Signature", paddedHeader(await pay(T.a, 0), 16384)]] }), 200, null, { source: "origin", paid: { payer: 0 } }],
  ["the same padded payment with one more '=' (16385 bytes)", async () => ({ path: A, headers: [["Payment-Signature", `${paddedHeader(await pay(T.a, 0), 16384)}=`]] }), 431, "header_too_large"],
  ["a valid payment padded to 16388 bytes", async () => ({ path: A, headers: [["Payment-Signature", paddedHeader(await pay(T.a, 0), 16388)]] }), 431, "header_too_large"],
  ["64 KiB of header", async () => ({ path: A, headers: [["Payment-Signature", "A".repeat(65536)]] }), 431, "header_too_large"],
  ["1 MiB of header: workerd refuses it before the Worker", async () => ({ path: A, headers: [["Payment-Signature", "A".repeat(1 << 20)]] }), 431, null, { source: "runtime" }],
  ["an oversized X-PAYMENT (v1 carrier)", async () => ({ path: A, headers: [["X-Payment", "B".repeat(17000)]] }), 431, "header_too_large"],
  ["URL-safe, unpadded base64 of a valid payment: accepted", async () => ({ path: A, headers: [["Payment-Signature", Buffer.from(JSON.stringify(await pay(T.a, 1))).toString("base64url")]] }), 200, null, { source: "origin", paid: { payer: 1 } }],

  // -- the JSON: shapes and versions ---------------------------------------------------------------
  ["JSON null", async () => ({ path: A, headers: [["Payment-Signature", b64("null")]] }), 400, "invalid_payload_shape"],
  ["a JSON array of a payment", async () => ({ path: A, headers: [["Payment-Signature", b64(JSON.stringify([await pay(T.a, 0)]))]] }), 400, "invalid_payload_shape"],
  ["3000 nested arrays (recursion limit)", async () => ({ path: A, headers: [["Payment-Signature", b64("[".repeat(3000) + "]".repeat(3000))]] }), 400, "invalid_json"],
  ["500 nested objects inside payload", async () => ({ path: A, headers: [["Payment-Signature", b64(`{"x402Version":2,"payload":${'{"a":'.repeat(500)}1${"}".repeat(500)}}`)]] }), 400, "invalid_json"],
  ["x402Version 2.0 (a float)", async () => ({ path: A, headers: [["Payment-Signature", b64(JSON.stringify(await pay(T.a, 0)).replace('"x402Version":2', '"x402Version":2.0'))]] }), 400, "unsupported_x402_version"],
  ["x402Version \"2\" (a string)", async () => ({ path: A, headers: hdr({ ...(await pay(T.a, 0)), x402Version: "2" }) }), 400, "unsupported_x402_version"],
  ["x402Version 1e400 (out of any float's range)", async () => ({ path: A, headers: [["Payment-Signature", b64(JSON.stringify(await pay(T.a, 0)).replace('"x402Version":2', '"x402Version":1e400'))]] }), 400, "invalid_json"],
  ["x402Version 2^64 + 2", async () => ({ path: A, headers: [["Payment-Signature", b64(JSON.stringify(await pay(T.a, 0)).replace('"x402Version":2', '"x402Version":18446744073709551618'))]] }), 400, "unsupported_x402_version"],
  ["x402Version -2", async () => ({ path: A, headers: hdr({ ...(await pay(T.a, 0)), x402Version: -2 }) }), 400, "unsupported_x402_version"],
  ["authorization.value as a JSON number", async () => ({ path: A, headers: hdr(await tampered(0, (p, a) => (a.value = 10000))) }), 400, "invalid_payload_shape",
    { check: (res) => assert.match(JSON.parse(res.text).message, /payload\.authorization\.value: expected a string, found a number/, "the message names the field") }],
  ["accepted as a string", async () => ({ path: A, headers: hdr({ ...(await pay(T.a, 0)), accepted: JSON.stringify(T.a) }) }), 400, "invalid_payload_shape"],
  ["accepted.maxTimeoutSeconds \"300\" (a string)", async () => ({ path: A, headers: hdr(await pay({ ...T.a, maxTimeoutSeconds: "300" }, 0)) }), 400, "invalid_payload_shape"],
  ["accepted.maxTimeoutSeconds -300", async () => ({ path: A, headers: hdr({ ...(await pay(T.a, 0)), accepted: { ...T.a, maxTimeoutSeconds: -300 } }) }), 400, "invalid_payload_shape"],
  ["accepted.maxTimeoutSeconds 300.5", async () => ({ path: A, headers: hdr({ ...(await pay(T.a, 0)), accepted: { ...T.a, maxTimeoutSeconds: 300.5 } }) }), 400, "invalid_payload_shape",
    { check: (res) => assert.match(JSON.parse(res.text).message, /accepted\.maxTimeoutSeconds: expected a whole number of at least 0, found a number/, "the message names the field") }],
  ["a Permit2 payload", async () => ({ path: A, headers: hdr(await tampered(0, (p) => (p.payload.permit2Authorization = { permitted: { token: T.a.asset, amount: "10000" } }))) }), 400, "invalid_payload_shape"],
  ["scheme 'exаct' with a Cyrillic а", async () => ({ path: A, headers: hdr(await pay({ ...T.a, scheme: "ex\u0430ct" }, 0)) }), 402, "unsupported_scheme"],
  ["scheme 'exact ' with a trailing space", async () => ({ path: A, headers: hdr(await pay({ ...T.a, scheme: "exact " }, 0)) }), 402, "unsupported_scheme"],
  ["network with a trailing NUL", async () => ({ path: A, headers: hdr({ ...(await pay(T.a, 0)), accepted: { ...T.a, network: `${T.a.network}\u0000` } }) }), 402, "network_mismatch"],
  ["network upper-case EIP155:", async () => ({ path: A, headers: hdr({ ...(await pay(T.a, 0)), accepted: { ...T.a, network: T.a.network.toUpperCase() } }) }), 402, "network_mismatch"],
  ["network with a leading zero (eip155:084532)", async () => ({ path: A, headers: hdr({ ...(await pay(T.a, 0)), accepted: { ...T.a, network: "eip155:084532" } }) }), 402, "network_mismatch"],
  ["network as hex chain id (eip155:0x14a34)", async () => ({ path: A, headers: hdr({ ...(await pay(T.a, 0)), accepted: { ...T.a, network: "eip155:0x14a34" } }) }), 402, "network_mismatch"],
  ["accepted.extra missing", async () => ({ path: A, headers: hdr({ ...(await pay(T.a, 0)), accepted: { ...T.a, extra: undefined } }) }), 402, "terms_mismatch"],
  ["accepted.extra.name 'USDC' (Base Sepolia's real name, not this token's)", async () => ({ path: A, headers: hdr({ ...(await pay(T.a, 0)), accepted: { ...T.a, extra: { name: "USDC", version: "2" } } }) }), 402, "terms_mismatch"],
  ["accepted.extra.assetTransferMethod permit2", async () => ({ path: A, headers: hdr({ ...(await pay(T.a, 0)), accepted: { ...T.a, extra: { ...T.a.extra, assetTransferMethod: "permit2" } } }) }), 402, "terms_mismatch"],

  // -- numbers: overflow, negative, fractional -----------------------------------------------------
  ["value = 2^256 (one past uint256)", async () => ({ path: A, headers: hdr(await tampered(0, (p, a) => (a.value = String(TWO_256)))) }), 402, "invalid_number"],
  ["value = 2^256 + price (wraps to the price mod 2^256)", async () => ({ path: A, headers: hdr(await tampered(0, (p, a) => (a.value = String(TWO_256 + PRICE)))) }), 402, "invalid_number"],
  ["value = 2^256 - 1 (the largest uint256)", async () => ({ path: A, headers: hdr(await tampered(0, (p, a) => (a.value = String(TWO_256 - 1n)))) }), 402, "value_mismatch"],
  ["value = the price behind 100 zeros (longer than any uint256)", async () => ({ path: A, headers: hdr(await tampered(0, (p, a) => (a.value = `${"0".repeat(100)}10000`))) }), 402, "invalid_number"],
  ["value = 010000 (a leading zero: the same number to us, not to every facilitator)", async () => ({ path: A, headers: hdr(await tampered(0, (p, a) => (a.value = "010000"))) }), 402, "invalid_number"],
  ["validBefore with a leading zero", async () => ({ path: A, headers: hdr(await tampered(0, (p, a) => (a.validBefore = `0${a.validBefore}`))) }), 402, "invalid_number"],
  ["value = -10000", async () => ({ path: A, headers: hdr(await tampered(0, (p, a) => (a.value = "-10000"))) }), 402, "invalid_number"],
  ["value = -0", async () => ({ path: A, headers: hdr(await tampered(0, (p, a) => (a.value = "-0"))) }), 402, "invalid_number"],
  ["value = +10000", async () => ({ path: A, headers: hdr(await tampered(0, (p, a) => (a.value = "+10000"))) }), 402, "invalid_number"],
  ["value = 10000.0", async () => ({ path: A, headers: hdr(await tampered(0, (p, a) => (a.value = "10000.0"))) }), 402, "invalid_number"],
  ["value = 0.01 (dollars, not atomic units)", async () => ({ path: A, headers: hdr(await tampered(0, (p, a) => (a.value = "0.01"))) }), 402, "invalid_number"],
  ["value = 1e4", async () => ({ path: A, headers: hdr(await tampered(0, (p, a) => (a.value = "1e4"))) }), 402, "invalid_number"],
  ["value = ' 10000' (leading space)", async () => ({ path: A, headers: hdr(await tampered(0, (p, a) => (a.value = " 10000"))) }), 402, "invalid_number"],
  ["value in full-width digits", async () => ({ path: A, headers: hdr(await tampered(0, (p, a) => (a.value = "１００００"))) }), 402, "invalid_number"],
  ["value = '' (empty)", async () => ({ path: A, headers: hdr(await tampered(0, (p, a) => (a.value = ""))) }), 402, "invalid_number"],
  ["value = 0, signed", async () => ({ path: A, headers: hdr(await pay(T.a, 0, { over: { value: "0" } })) }), 402, "value_mismatch"],
  ["accepted.amount = -10000", async () => ({ path: A, headers: hdr(await pay({ ...T.a, amount: "-10000" }, 0, { over: { value: "10000" } })) }), 402, "invalid_number"],
  ["accepted.amount = 2^256 + price", async () => ({ path: A, headers: hdr(await pay({ ...T.a, amount: String(TWO_256 + PRICE) }, 0, { over: { value: "10000" } })) }), 402, "invalid_number"],
  ["accepted.amount = 0.01", async () => ({ path: A, headers: hdr(await pay({ ...T.a, amount: "0.01" }, 0, { over: { value: "10000" } })) }), 402, "invalid_number"],
  ["validBefore = 2^256", async () => ({ path: A, headers: hdr(await tampered(0, (p, a) => (a.validBefore = String(TWO_256)))) }), 402, "invalid_number"],
  ["validBefore = 2^64 (past u64, within uint256), signed", async () => ({ path: A, headers: hdr(await pay(T.a, 0, { over: { validBefore: String(2n ** 64n) } })) }), 402, "authorization_valid_too_long"],
  ["validBefore = -1", async () => ({ path: A, headers: hdr(await tampered(0, (p, a) => (a.validBefore = "-1"))) }), 402, "invalid_number"],
  ["validAfter = 2^255, signed", async () => ({ path: A, headers: hdr(await pay(T.a, 0, { over: { validAfter: String(2n ** 255n) } })) }), 402, "authorization_not_yet_valid"],

  // -- addresses -----------------------------------------------------------------------------------
  ["from with one letter's case flipped (bad EIP-55 checksum)", async () => ({ path: A, headers: hdr(await tampered(0, (p, a) => (a.from = flipCase(a.from)))) }), 402, "invalid_address"],
  ["to with a bad checksum", async () => ({ path: A, headers: hdr(await tampered(0, (p, a) => (a.to = flipCase(a.to)))) }), 402, "invalid_address"],
  ["from with an upper-case 0X prefix", async () => ({ path: A, headers: hdr(await tampered(0, (p, a) => (a.from = `0X${a.from.slice(2)}`))) }), 402, "invalid_address"],
  ["from without 0x", async () => ({ path: A, headers: hdr(await tampered(0, (p, a) => (a.from = a.from.slice(2)))) }), 402, "invalid_address"],
  ["from with 41 hex digits", async () => ({ path: A, headers: hdr(await tampered(0, (p, a) => (a.from = `${a.from}0`))) }), 402, "invalid_address"],
  ["from with a non-hex letter", async () => ({ path: A, headers: hdr(await tampered(0, (p, a) => (a.from = `${a.from.slice(0, -1)}g`))) }), 402, "invalid_address"],
  ["accepted.asset with a bad checksum", async () => ({ path: A, headers: hdr({ ...(await pay(T.a, 0)), accepted: { ...T.a, asset: flipCase(T.a.asset) } }) }), 402, "invalid_address"],
  ["to = the zero address, signed", async () => ({ path: A, headers: hdr(await pay(T.a, 0, { over: { to: "0x0000000000000000000000000000000000000000" } })) }), 402, "recipient_mismatch"],
  ["to = payTo in all-lower-case (a valid spelling): accepted, deferred", async () => ({ path: W, headers: hdr(await tampered(2, (p, a) => (a.to = a.to.toLowerCase()), T.w)) }), 200, null, { source: "origin", paid: { payer: 2 } }],

  // -- signatures: high s, wrong v, malformed, over other domains ----------------------------------
  ["v = 0 (y-parity instead of 27/28)", async () => ({ path: A, headers: hdr(await tampered(0, (p) => editSig(p, (s) => void (s[64] -= 27)))) }), 402, "invalid_signature_format"],
  ["v = 1", async () => ({ path: A, headers: hdr(await tampered(0, (p) => editSig(p, (s) => void (s[64] = 1)))) }), 402, "invalid_signature_format"],
  ["v = 29", async () => ({ path: A, headers: hdr(await tampered(0, (p) => editSig(p, (s) => void (s[64] = 29)))) }), 402, "invalid_signature_format"],
  ["v flipped between 27 and 28 (recovers another key)", async () => ({ path: A, headers: hdr(await tampered(0, (p) => editSig(p, (s) => void (s[64] = s[64] === 27 ? 28 : 27)))) }), 402, "signer_mismatch"],
  ["high s, v left as is", async () => ({ path: A, headers: hdr(await tampered(0, (p) => editSig(p, (s) => set32(s, 32, N - BigInt(`0x${s.subarray(32, 64).toString("hex")}`))))) }), 402, "invalid_signature_format"],
  ["s = n", async () => ({ path: A, headers: hdr(await tampered(0, (p) => editSig(p, (s) => set32(s, 32, N)))) }), 402, "invalid_signature_format"],
  ["r = 0", async () => ({ path: A, headers: hdr(await tampered(0, (p) => editSig(p, (s) => set32(s, 0, 0n)))) }), 402, "invalid_signature_format"],
  ["s = 0", async () => ({ path: A, headers: hdr(await tampered(0, (p) => editSig(p, (s) => set32(s, 32, 0n)))) }), 402, "invalid_signature_format"],
  ["r = n + 1", async () => ({ path: A, headers: hdr(await tampered(0, (p) => editSig(p, (s) => set32(s, 0, N + 1n)))) }), 402, "invalid_signature_format"],
  ["64-byte compact (EIP-2098) signature", async () => ({ path: A, headers: hdr(await tampered(0, (p) => editSig(p, (s) => s.subarray(0, 64)))) }), 402, "invalid_signature_format"],
  ["signature with an upper-case 0X prefix", async () => ({ path: A, headers: hdr(await tampered(0, (p) => (p.payload.signature = `0X${p.payload.signature.slice(2)}`))) }), 402, "invalid_signature_format"],
  ["signature of odd hex length", async () => ({ path: A, headers: hdr(await tampered(0, (p) => (p.payload.signature = p.payload.signature.slice(0, -1)))) }), 402, "invalid_signature_format"],
  ["signature '0x'", async () => ({ path: A, headers: hdr(await tampered(0, (p) => (p.payload.signature = "0x"))) }), 402, "invalid_signature_format"],
  ["a valid signature with one byte appended (66 bytes: sent to the facilitator, refused)", async () => ({ path: W, headers: hdr(await tampered(0, (p) => (p.payload.signature += "00"), T.w)) }), 402, "facilitator_rejected"],
  ["1.5 KB of random signature bytes", async () => ({ path: A, headers: hdr(await tampered(0, (p) => (p.payload.signature = `0x${randomBytes(1500).toString("hex")}`))) }), 402, "facilitator_rejected"],
  ["signed by another key than from", async () => ({ path: A, headers: hdr(await tampered(1, (p, a) => (a.from = addr(0)))) }), 402, "signer_mismatch"],
  // The identity precompile echoes any call: asked isValidSignature, it answers the selector then
  // the hash, which is not ERC-1271's yes (USDC would refuse the transfer).
  ["from is the identity precompile 0x…04, which echoes the wallet question", async () => ({
    path: A,
    headers: hdr(await tampered(1, (p, a) => (a.from = "0x0000000000000000000000000000000000000004"))),
  }), 402, "signer_mismatch"],
  ["signed over another token contract", async () => ({ path: A, headers: hdr(await pay(T.a, 0, { domain: { verifyingContract: "0x036CbD53842c5426634e7929541eC2318f3dCF7e" } })) }), 402, "signer_mismatch"],
  ["signed over the token name 'USDC'", async () => ({ path: A, headers: hdr(await pay(T.a, 0, { domain: { name: "USDC" } })) }), 402, "signer_mismatch"],
  ["signed over token version '1'", async () => ({ path: A, headers: hdr(await pay(T.a, 0, { domain: { version: "1" } })) }), 402, "signer_mismatch"],
  ["signed over chain 31337 (another chain, same token address)", async () => ({ path: A, headers: hdr(await pay(T.a, 0, { domain: { chainId: 31337 } })) }), 402, "signer_mismatch"],
  ["a ReceiveWithAuthorization signature offered as a transfer", async () => ({ path: A, headers: hdr(await signAsReceive(T.a, 0)) }), 402, "signer_mismatch"],
  ["signed for value 1, then value raised to the price", async () => ({ path: A, headers: hdr(await (async () => {
    const p = await pay(T.a, 0, { over: { value: "1" } });
    p.payload.authorization.value = String(PRICE);
    return p;
  })()) }), 402, "signer_mismatch"],
  ["validBefore moved after signing", async () => ({ path: A, headers: hdr(await tampered(0, (p, a) => (a.validBefore = String(Number(a.validBefore) - 60)))) }), 402, "signer_mismatch"],

  // -- time ----------------------------------------------------------------------------------------
  ["expired a minute ago", async () => ({ path: A, headers: hdr(await pay(T.a, 0, { over: { validBefore: String(now() - 60) } })) }), 402, "authorization_expires_too_soon"],
  ["validBefore = 0", async () => ({ path: A, headers: hdr(await pay(T.a, 0, { over: { validAfter: "0", validBefore: "0" } })) }), 402, "authorization_expires_too_soon"],
  ["expires in 8 s (inside the settlement margin)", async () => ({ path: A, headers: hdr(await pay(T.a, 0, { over: { validBefore: String(now() + 8) } })) }), 402, "authorization_expires_too_soon"],
  ["valid only from in an hour", async () => ({ path: A, headers: hdr(await pay(T.a, 0, { over: { validAfter: String(now() + 3600) } })) }), 402, "authorization_not_yet_valid"],
  ["a window entirely in the future", async () => ({ path: A, headers: hdr(await pay(T.a, 0, { over: { validAfter: String(now() + 100), validBefore: String(now() + 200) } })) }), 402, "authorization_not_yet_valid"],
  ["validAfter after validBefore", async () => ({ path: A, headers: hdr(await pay(T.a, 0, { over: { validAfter: String(now() + 250), validBefore: String(now() + 200) } })) }), 402, "authorization_not_yet_valid"],
  ["valid for a day", async () => ({ path: A, headers: hdr(await pay(T.a, 0, { over: { validBefore: String(now() + 86400) } })) }), 402, "authorization_valid_too_long"],

  // -- nonces --------------------------------------------------------------------------------------
  ["nonce of 33 bytes", async () => ({ path: A, headers: hdr(await tampered(0, (p, a) => (a.nonce = `${a.nonce}00`))) }), 402, "invalid_nonce"],
  ["nonce without 0x", async () => ({ path: A, headers: hdr(await tampered(0, (p, a) => (a.nonce = a.nonce.slice(2)))) }), 402, "invalid_nonce"],
  ["nonce with 0X", async () => ({ path: A, headers: hdr(await tampered(0, (p, a) => (a.nonce = `0X${a.nonce.slice(2)}`))) }), 402, "invalid_nonce"],
  ["nonce with a non-hex digit", async () => ({ path: A, headers: hdr(await tampered(0, (p, a) => (a.nonce = `${a.nonce.slice(0, -1)}z`))) }), 402, "invalid_nonce"],

  // -- replays across routes, carriers and spellings -----------------------------------------------
  ["replay source: paid once on /articles/a (immediate)", async () => {
    sent.immediate = await pay(T.a, 3);
    return { path: "/articles/edge-economics", headers: hdr(sent.immediate) };
  }, 200, null, { source: "origin", paid: { payer: 3 }, check: (r) => assert.match(r.receipt.transaction, /^0x[0-9a-f]{64}$/) }],
  ["… replayed on /api/weather (deferred, same price and payee)", async () => ({ path: W, headers: hdr(sent.immediate) }), 402, "replayed_authorization"],
  ["… replayed on /echo/deferred/* (deferred)", async () => ({ path: "/echo/deferred/y", headers: hdr(sent.immediate) }), 402, "replayed_authorization"],
  ["… replayed on another article", async () => ({ path: "/articles/local-chain", headers: hdr(sent.immediate) }), 402, "replayed_authorization"],
  ["… replayed with the nonce in upper-case hex", async () => ({ path: W, headers: hdr({ ...sent.immediate, payload: { ...sent.immediate.payload, authorization: { ...sent.immediate.payload.authorization, nonce: `0x${sent.immediate.payload.authorization.nonce.slice(2).toUpperCase()}` } } }) }), 402, "replayed_authorization"],
  ["… replayed with from in lower-case", async () => ({ path: "/echo/deferred/z", headers: hdr({ ...sent.immediate, payload: { ...sent.immediate.payload, authorization: { ...sent.immediate.payload.authorization, from: addr(3).toLowerCase() } } }) }), 402, "replayed_authorization"],
  ["… replayed as a v1 payment in X-PAYMENT", async () => ({ path: W, headers: xhdr(asV1(sent.immediate)) }), 402, "replayed_authorization"],
  ["… replayed on a route with another price", async () => ({ path: "/echo/pricey/x", headers: hdr(sent.immediate) }), 402, "price_mismatch"],
  ["… replayed on a route paying someone else", async () => ({ path: "/echo/other-payee/x", headers: hdr(sent.immediate) }), 402, "pay_to_mismatch"],
  ["… replayed as HEAD (no body: the x402 reason in the terms)", async () => ({ method: "HEAD", path: A, headers: hdr(sent.immediate) }), 402, null, { x402: "invalid_exact_evm_nonce_already_used" }],
  // Payer 3 has just paid once, settled: it has earned the credit to have this one deferred.
  ["replay source: paid once on /api/weather (deferred)", async () => {
    sent.deferred = await pay(T.w, 3);
    return { path: W, headers: hdr(sent.deferred) };
  }, 200, null, { source: "origin", paid: { payer: 3 }, check: (r) => assert.equal(r.receipt.transaction, "", "pending receipt") }],
  ["… replayed on /articles/* (immediate): not sent to the facilitator", async () => ({ path: A, headers: hdr(sent.deferred) }), 402, "replayed_authorization"],
  ["… replayed on /echo/deferred/*", async () => ({ path: "/echo/deferred/x", headers: hdr(sent.deferred) }), 402, "replayed_authorization"],
  ["… replayed as v1 in PAYMENT-SIGNATURE", async () => ({ path: W, headers: hdr(asV1(sent.deferred)) }), 402, "replayed_authorization"],
  ["one payment sent to three routes at once, 12 times: served once", "concurrent", null, null, { paid: { payer: 5 } }],

  // -- payment identifiers (the payment-identifier extension): a retry gets the answer it bought -----
  ["identifier source: paid once on /articles/hello with a payment identifier", async () => {
    sent.withId = withId(await pay(T.a, 5), "pay_hostile_retry_0001");
    return { path: A, headers: hdr(sent.withId) };
  }, 200, null, { source: "origin", paid: { payer: 5 } }],
  ["… sent again with its identifier (a retry): the answer it bought, the origin not asked, not charged", async () => {
    await sleep(300); // kept once the first answer has gone
    sent.hitsOfA = originSaw(A);
    return { path: A, headers: hdr(sent.withId) };
  }, 200, null, { source: "origin", again: { payer: 5 }, check: () => assert.equal(originSaw(A), sent.hitsOfA, "the origin was not asked") }],
  ["… sent again with its identifier to another article", async () => ({ path: "/articles/local-chain", headers: hdr(sent.withId) }), 402, "replayed_authorization"],
  ["… sent again with its identifier as HEAD", async () => ({ method: "HEAD", path: A, headers: hdr(sent.withId) }), 402, null, { x402: "invalid_exact_evm_nonce_already_used" }],
  ["… sent again with another identifier", async () => ({ path: A, headers: hdr(withId(sent.withId, "pay_hostile_retry_0002")) }), 402, "replayed_authorization"],
  ["… sent again without its identifier", async () => ({ path: A, headers: hdr({ ...sent.withId, extensions: {} }) }), 402, "replayed_authorization"],
  ["… its identifier on a new payment of the same wallet", async () => ({ path: A, headers: hdr(withId(await pay(T.a, 5), "pay_hostile_retry_0001")) }), 409, "payment_identifier_conflict"],
  ["an identifier of 15 characters", async () => ({ path: A, headers: hdr(withId(await pay(T.a, 0), "pay_0123456789a")) }), 400, "invalid_payment_identifier"],
  ["an identifier of 129 characters", async () => ({ path: A, headers: hdr(withId(await pay(T.a, 0), "p".repeat(129))) }), 400, "invalid_payment_identifier"],
  ["an identifier with a control character", async () => ({ path: A, headers: hdr(withId(await pay(T.a, 0), "pay_0123456789\u0007abcdef")) }), 400, "invalid_payment_identifier"],
  ["an identifier with a slash (a KV key's separator)", async () => ({ path: A, headers: hdr(withId(await pay(T.a, 0), "pay_../../0123456789")) }), 400, "invalid_payment_identifier"],
  ["an identifier that is an object", async () => ({ path: A, headers: hdr(withId(await pay(T.a, 0), { id: "pay_0123456789abcdef" })) }), 400, "invalid_payment_identifier"],

  // -- both generations at once --------------------------------------------------------------------
  ["a valid v2 in PAYMENT-SIGNATURE and another payer's valid v1 in X-PAYMENT: only the first pays", async () => ({
    path: A,
    headers: [...hdr(await pay(T.a, 6)), ...xhdr(asV1(await pay(T.a, 0)))],
  }), 200, null, { source: "origin", paid: { payer: 6 } }],
  ["garbage PAYMENT-SIGNATURE and a valid v1 X-PAYMENT: refused, nothing charged", async () => ({
    path: A,
    headers: [["Payment-Signature", "not a payment"], ...xhdr(asV1(await pay(T.a, 0)))],
  }), 400, "invalid_base64"],
  ["one payment in both headers: charged once", async () => {
    const p = await pay(T.w, 6);
    return { path: W, headers: [...hdr(p), ...xhdr(asV1(p))] };
  }, 200, null, { source: "origin", paid: { payer: 6 } }],
  ["v1 payment naming the network in CAIP-2", async () => ({ path: A, headers: xhdr(asV1(await pay(T.a, 0), T.a.network)) }), 402, "network_mismatch"],
  ["v2 payment naming the network by its v1 name", async () => ({ path: A, headers: hdr({ ...(await pay(T.a, 0)), accepted: { ...T.a, network: "base-sepolia" } }) }), 402, "network_mismatch"],
  ["v1 payment without scheme", async () => ({ path: A, headers: xhdr({ ...asV1(await pay(T.a, 0)), scheme: undefined }) }), 400, "invalid_payload_shape"],
  ["v1 payment with scheme EXACT", async () => ({ path: A, headers: xhdr({ ...asV1(await pay(T.a, 0)), scheme: "EXACT" }) }), 402, "unsupported_scheme"],

  // -- methods, request targets, paths -------------------------------------------------------------
  ["lower-case method 'get': workerd answers 501 itself", async () => ({ method: "get", path: W }), 501, null, { source: "runtime" }],
  ["unknown method 'BREW': workerd answers 501 itself", async () => ({ method: "BREW", path: A }), 501, null, { source: "runtime" }],
  ["PROPFIND on a priced path", async () => ({ method: "PROPFIND", path: A }), 402, "payment_required"],
  ["PROPFIND on a GET-only priced route (non-standard methods are priced as GET)", async () => ({ method: "PROPFIND", path: W }), 402, "payment_required"],
  ["TRACE on a priced path", async () => ({ method: "TRACE", path: A }), 402, "payment_required"],
  ["DELETE on a priced path", async () => ({ method: "DELETE", path: A }), 402, "payment_required"],
  ["PATCH with a body on a priced path", async () => ({ method: "PATCH", path: A, body: '{"x":1}', headers: [["Content-Type", "application/json"]] }), 402, "payment_required"],
  ["HEAD on a priced path (terms in the header)", async () => ({ method: "HEAD", path: A }), 402, null, { x402: "payment_required" }],
  ["CONNECT: workerd refuses it before the Worker (500)", async () => ({ head: "CONNECT 127.0.0.1:443 HTTP/1.1\r\nHost: 127.0.0.1:443\r\nConnection: close" }), 500, null, { source: "runtime" }],
  ["OPTIONS * : workerd refuses it before the Worker (500)", async () => ({ method: "OPTIONS", path: "*" }), 500, null, { source: "runtime" }],
  ["absolute-form request target: workerd refuses it before the Worker (500)", async () => ({ path: "http://evil.example/articles/hello" }), 500, null, { source: "runtime" }],
  // Only a CORS preflight is special: a plain OPTIONS is priced like any method a rule covers.
  ["OPTIONS (not a preflight) on a route priced for every method", async () => ({ method: "OPTIONS", path: A }), 402, "payment_required"],
  // An origin that does not look at the method (the demo origin, a PHP script) answers OPTIONS
  // with the page: a rule for GET prices a plain OPTIONS, and a preflight the origin answers is
  // passed without its body.
  ["OPTIONS (not a preflight) on a GET-only priced route", async () => ({ method: "OPTIONS", path: W }), 402, "payment_required"],
  ["a CORS preflight for a method nobody prices there: the origin's answer, without its body", async () => ({
    method: "OPTIONS",
    path: W,
    headers: [["Origin", "https://x.example"], ["Access-Control-Request-Method", "DELETE"]],
  }), 200, null, {
    source: "origin",
    check: (r) => assert.deepEqual([r.text, r.headers["content-length"] ?? "0"], ["", "0"]),
  }],
  ["OPTIONS with an expired payment attached", async () => ({ method: "OPTIONS", path: A, headers: hdr(await pay(T.a, 0, { over: { validBefore: String(now() - 60) } })) }), 402, "authorization_expires_too_soon"],
  // Methods the Workers SDK has no name for reach the origin exactly as sent.
  ["an unpriced page: our session token (cookie or bearer) never reaches the origin, the site's own cookies do", async () => ({
    path: "/echo/free",
    headers: [["Cookie", "theme=dark; x402_session=v1.c2Vzc2lvbg.bWFj;lang=fr; x402_session =v1.YQ.Yg"], ["Authorization", "Bearer v1.dG9rZW4.c2ln"]],
  }), 200, null, {
    source: "origin",
    check: (r) => {
      const seen = JSON.parse(r.text).headers;
      assert.equal(seen.cookie, "theme=dark; lang=fr");
      assert.equal(seen.authorization, undefined);
    },
  }],
  ["an unpriced page: a forged payer header never reaches the origin, in either spelling", async () => ({
    path: "/echo/free",
    headers: [["X402-Payer", addr(0)], ["X402_Payer", addr(1)]],
  }), 200, null, {
    source: "origin",
    check: (r) => {
      const seen = JSON.parse(r.text).headers;
      assert.equal(seen["x402-payer"], undefined);
      assert.equal(seen["x402_payer"], undefined);
    },
  }],
  ["an unpriced page: an Authorization that is not our token passes untouched", async () => ({ path: "/echo/free", headers: [["Authorization", "Bearer site-own-token"]] }), 200, null, {
    source: "origin",
    check: (r) => assert.equal(JSON.parse(r.text).headers.authorization, "Bearer site-own-token"),
  }],
  ["an unpriced page: the site's own PASETO bearer token (v4.public.…), shaped like ours, passes untouched", async () => ({ path: "/echo/free", headers: [["Authorization", "Bearer v4.public.eyJzdWIiOiJzaXRlIn0"]] }), 200, null, {
    source: "origin",
    check: (r) => assert.equal(JSON.parse(r.text).headers.authorization, "Bearer v4.public.eyJzdWIiOiJzaXRlIn0"),
  }],
  ["an unpriced page: a payment and a sign-in proof sent with it never reach the origin", async () => ({
    path: "/echo/free",
    headers: [...hdr(await pay(T.a, 0)), ...xhdr(await pay(T.a, 0)), ["Sign-In-With-X", b64("{}")]],
  }), 200, null, {
    source: "origin",
    check: (r) => {
      const seen = JSON.parse(r.text).headers;
      for (const h of ["payment-signature", "x-payment", "sign-in-with-x"]) assert.equal(seen[h], undefined, h);
    },
  }],
  // Frameworks that honour a method override would serve this POST as the GET priced above.
  ["POST with X-HTTP-Method-Override: GET to a route priced for GET: the origin sees a POST without the override", async () => ({
    method: "POST",
    path: "/echo/get-only/x",
    headers: [["X-HTTP-Method-Override", "GET"], ["X-HTTP-Method", "GET"], ["X-Method-Override", "GET"]],
  }), 200, null, {
    source: "origin",
    check: (r) => {
      const echo = JSON.parse(r.text);
      assert.equal(echo.method, "POST");
      for (const h of ["x-http-method-override", "x-http-method", "x-method-override"]) assert.equal(echo.headers[h], undefined, h);
    },
  }],
  // CGI-style servers (Puma, PHP's) read a header spelt with underscores as the hyphenated one.
  ["POST with the override headers spelt with underscores: the origin sees none of them, nor a payment so spelt", async () => ({
    method: "POST",
    path: "/echo/get-only/x",
    headers: [["X_HTTP_Method_Override", "GET"], ["X_HTTP_METHOD", "GET"], ["X-Method_Override", "GET"], ["Payment_Signature", b64("{}")]],
  }), 200, null, {
    source: "origin",
    check: (r) => {
      const echo = JSON.parse(r.text);
      assert.equal(echo.method, "POST");
      for (const h of ["x_http_method_override", "x_http_method", "x-method_override", "payment_signature"]) assert.equal(echo.headers[h], undefined, h);
    },
  }],
  // ...and so would a POST carrying a _method parameter (Rails and Laravel read the form body,
  // Laravel and Symfony the query too), which cannot be removed as a header can: refused where the
  // method it names is priced by another route than POST.
  ...[
    ["a form body", "/echo/get-only/x", "application/x-www-form-urlencoded", "comment=hi&_method=GET"],
    ["an escaped name, lower-case value", "/echo/get-only/x", "application/x-www-form-urlencoded", "_m%65thod=get"],
    ["the query", "/echo/get-only/x?_method=GET", null, null],
    ["a multipart form", "/echo/get-only/x", "multipart/form-data; boundary=XyZ", '--XyZ\r\nContent-Disposition: form-data; name="_method"\r\n\r\nGET\r\n--XyZ--\r\n'],
    // PHP registers `.method`, ` _method` and `[method` as `_method` (Laravel, Symfony).
    ["the query, named .method", "/echo/get-only/x?.method=GET", null, null],
    ["a form body, named with a leading space", "/echo/get-only/x", "application/x-www-form-urlencoded", "title=x&+_method=GET"],
    ["a multipart part named .method", "/echo/get-only/x", "multipart/form-data; boundary=XyZ", '--XyZ\r\nContent-Disposition: form-data; name=".method"\r\n\r\nGET\r\n--XyZ--\r\n'],
    // Rack reads a POST of no type as a form; Laravel reads a JSON object's _method.
    ["a body of no Content-Type", "/echo/get-only/x", null, "_method=GET"],
    ["a JSON body", "/echo/get-only/x", "application/json", '{"title":"x","_method":"GET"}'],
    ["a JSON body of a +json type", "/echo/get-only/x", "application/vnd.api+json; charset=utf-8", '{"_method":"get"}'],
    // Read as the frameworks read them: PHP ends a name at a NUL; Laravel takes a type with +json
    // anywhere for JSON, and JSON this parser refuses is searched; Rack parses multipart/mixed,
    // as pairs without a boundary, and unescapes a backslash in a part's quoted name.
    ["the query, named _method%00", "/echo/get-only/x?_method%00=GET", null, null],
    ["a JSON body of a form-like +json type", "/echo/get-only/x", "application/x-www-form-urlencoded+json", '{"_method":"GET"}'],
    ["a JSON body nested deeper than 128", "/echo/get-only/x", "application/json", `{"_method":"GET","p":${"[".repeat(200)}1${"]".repeat(200)}}`],
    ["a multipart/mixed body without a boundary", "/echo/get-only/x", "multipart/mixed", "_m%65thod=GET"],
    ["a form whose type mentions /json (read as a form by Rack, as JSON by Laravel)", "/echo/get-only/x", "application/x-www-form-urlencoded; x=/json", '{"a":"&_method=GET&"}'],
    ["a multipart part named in single quotes", "/echo/get-only/x", "multipart/form-data; boundary=XyZ", "--XyZ\r\nContent-Disposition: form-data; name='.method'\r\n\r\nGET\r\n--XyZ--\r\n"],
    ["a multipart part named _\\method", "/echo/get-only/x", "multipart/form-data; boundary=XyZ", '--XyZ\r\nContent-Disposition: form-data; name="_\\method"\r\n\r\nGET\r\n--XyZ--\r\n'],
  ].map(([where, path, type, body]) => [
    `POST with _method=GET in ${where} to a route priced for GET`,
    async () => ({ method: "POST", path, headers: type ? [["Content-Type", type]] : [], body }),
    400,
    "method_override",
    BAD_PATH,
  ]),
  ["POST with a gzip-encoded form body to a route priced for GET: cannot be searched for _method", async () => ({
    method: "POST",
    path: "/echo/get-only/x",
    headers: [["Content-Type", "application/x-www-form-urlencoded"], ["Content-Encoding", "gzip"]],
    body: gzipSync("_method=GET").toString("latin1"),
  }), 415, "method_override", BAD_PATH],
  ["POST with a form body over 1 MiB to a route priced for GET: too large to search for _method", async () => ({
    method: "POST",
    path: "/echo/get-only/x",
    headers: [["Content-Type", "application/x-www-form-urlencoded"]],
    body: `a=${"x".repeat(1 << 20)}&_method=GET`,
  }), 413, "method_override", BAD_PATH],
  ["POST with _method=PATCH (unpriced) to a route priced for GET: passed, body intact", async () => ({
    method: "POST",
    path: "/echo/get-only/x",
    headers: [["Content-Type", "application/x-www-form-urlencoded"]],
    body: "title=x&_method=PATCH",
  }), 200, null, {
    source: "origin",
    check: (r) => assert.deepEqual([JSON.parse(r.text).method, JSON.parse(r.text).body], ["POST", "title=x&_method=PATCH"]),
  }],
  ["POST with a JSON body that names no _method to a route priced for GET: passed, body intact", async () => ({
    method: "POST",
    path: "/echo/get-only/x",
    headers: [["Content-Type", "application/json"]],
    body: '{"method":"GET","title":"x"}',
  }), 200, null, {
    source: "origin",
    check: (r) => assert.deepEqual([JSON.parse(r.text).method, JSON.parse(r.text).body], ["POST", '{"method":"GET","title":"x"}']),
  }],
  ["POST with an ordinary form to a route priced for GET: passed, body intact", async () => ({
    method: "POST",
    path: "/echo/get-only/x",
    headers: [["Content-Type", "application/x-www-form-urlencoded"]],
    body: "comment=hello",
  }), 200, null, {
    source: "origin",
    check: (r) => assert.equal(JSON.parse(r.text).body, "comment=hello"),
  }],
  ["POST uploading a file named .method to a route priced for GET: a file's name is no part's, passed, body intact", async () => ({
    method: "POST",
    path: "/echo/get-only/x",
    headers: [["Content-Type", "multipart/form-data; boundary=XyZ"]],
    body: UPLOAD,
  }), 200, null, {
    source: "origin",
    check: (r) => assert.deepEqual([JSON.parse(r.text).method, JSON.parse(r.text).body], ["POST", UPLOAD]),
  }],
  // `methodParameter = false`: the origin reads no _method, so nothing is searched or held.
  ["POST with _method=GET to a GET route whose origin reads no _method (methodParameter = false): passed as POST", async () => ({
    method: "POST",
    path: "/echo/no-override/x?_method=GET",
    headers: [["Content-Type", "application/x-www-form-urlencoded"]],
    body: "_method=GET",
  }), 200, null, {
    source: "origin",
    check: (r) => assert.deepEqual([JSON.parse(r.text).method, JSON.parse(r.text).body], ["POST", "_method=GET"]),
  }],
  ["POST with a multipart upload over 1 MiB to a GET route whose origin reads no _method: passed whole", async () => ({
    method: "POST",
    path: "/echo/no-override/x",
    headers: [["Content-Type", "multipart/form-data; boundary=XyZ"]],
    body: BIG_UPLOAD,
  }), 200, null, {
    source: "origin",
    check: (r) => assert.equal(JSON.parse(r.text).body.length, BIG_UPLOAD.length),
  }],
  ["POST with _method=GET where POST is priced by the same route: priced as usual", async () => ({
    method: "POST",
    path: A,
    headers: [["Content-Type", "application/x-www-form-urlencoded"]],
    body: "_method=GET",
  }), 402, "payment_required"],
  ["an unpriced page: headers naming another path (X-Original-URL, X-Rewrite-URL) never reach the origin", async () => ({
    path: "/echo/free",
    headers: [["X-Original-URL", "/articles/hello"], ["X_Rewrite_URL", "/articles/hello"]],
  }), 200, null, {
    source: "origin",
    check: (r) => {
      const seen = JSON.parse(r.text).headers;
      assert.deepEqual([seen["x-original-url"], seen["x-rewrite-url"], seen["x_rewrite_url"]], [undefined, undefined, undefined]);
    },
  }],
  ["an unpriced page keeps the origin's cache headers, CDNs' included (the origin's business)", async () => ({ path: "/echo/free?cache=public,max-age=3600" }), 200, null, {
    source: "origin",
    check: (r) => assert.deepEqual([r.headers["cache-control"], r.headers["cdn-cache-control"], r.headers["surrogate-control"]], Array(3).fill("public,max-age=3600")),
  }],
  ["a paid answer whose origin asks CDNs to keep it: no-store, and no CDN's own cache header", async () => ({
    path: "/echo/deferred/cached?cache=public,max-age=3600",
    headers: hdr(await pay(T.d, 0)),
  }), 200, null, {
    source: "origin",
    paid: { payer: 0 },
    check: (r) => assert.deepEqual(
      ["cdn-cache-control", "cloudflare-cdn-cache-control", "surrogate-control"].map((h) => r.headers[h]),
      [undefined, undefined, undefined],
    ),
  }],
  ["a paid GET the origin answers with a redirect it asks caches to keep: not charged, and kept by no cache either", async () => ({
    path: "/echo/deferred/moved?redirect=302&cache=public,max-age=3600",
    headers: hdr(await pay(T.d, 0)),
  }), 302, null, {
    source: "origin",
    check: (r) => assert.deepEqual(
      ["cache-control", "cdn-cache-control", "cloudflare-cdn-cache-control", "surrogate-control"].map((h) => r.headers[h]),
      ["no-store", undefined, undefined, undefined],
    ),
  }],
  ["a paid answer whose origin answers one site's scripts itself: its CORS kept, its exposed headers beside ours", async () => ({
    path: "/echo/deferred/cors?cors=https://app.example",
    headers: hdr(await pay(T.d, 0)),
  }), 200, null, {
    source: "origin",
    paid: { payer: 0 },
    check: (r) => {
      assert.equal(r.headers["access-control-allow-origin"], "https://app.example");
      assert.equal(r.headers["access-control-allow-credentials"], "true");
      const exposed = r.headers["access-control-expose-headers"].toLowerCase().split(/\s*,\s*/);
      assert.ok(exposed.includes("etag") && exposed.includes("payment-response"), exposed.join());
    },
  }],
  ["PROPFIND on an unpriced path reaches the origin as PROPFIND", async () => ({ method: "PROPFIND", path: "/echo/free" }), 200, null, {
    source: "origin",
    check: (r) => assert.equal(JSON.parse(r.text).method, "PROPFIND"),
  }],
  ["a CORS preflight for GET: 204, nothing else", async () => ({ method: "OPTIONS", path: A, headers: [["Origin", "https://x.example"], ["Access-Control-Request-Method", "GET"]] }), 204, null, {
    check: (r) => assert.equal(r.text, ""),
  }],
  ["a CORS preflight naming the method in lower case", async () => ({ method: "OPTIONS", path: W, headers: [["Access-Control-Request-Method", "get"]] }), 204, null],
  // A server running scripts reads a path that goes on past a script's name without it (a front
  // controller: Laravel, Symfony, WordPress) or as the script alone (PATH_INFO).
  ["/index.php/articles/hello (a front controller reads /articles/hello)", async () => ({ path: "/index.php/articles/hello" }), 400, "invalid_path", BAD_PATH],
  ["/articles/hello/index.html (a folder's index page is the folder)", async () => ({ path: "/articles/hello/index.html" }), 402, "payment_required"],
  ["/free/../articles/hello", async () => ({ path: "/free/../articles/hello" }), 402, "payment_required"],
  ["/free/%2e%2e/articles/hello", async () => ({ path: "/free/%2e%2e/articles/hello" }), 402, "payment_required"],
  ["backslashes: /free\\..\\articles\\hello", async () => ({ path: "/free\\..\\articles\\hello" }), 402, "payment_required"],
  ["/ARTICLES/%68ELLO (case and escapes)", async () => ({ path: "/ARTICLES/%68ELLO" }), 402, "payment_required"],
  ["/%C3%89TUDES/x: a non-ASCII route in another case", async () => ({ path: "/%C3%89TUDES/x" }), 402, "payment_required"],
  ["/ÉTUDES/x as raw UTF-8", async () => ({ path: "/ÉTUDES/x", utf8: true }), 402, "payment_required"],
  // Letters that uppercase to ASCII, and the trailing dots and spaces Windows drops: an origin that
  // compares in upper case or runs on Windows reads these as /articles/hello.
  ["/articleſ/hello as raw UTF-8 (ſ uppercases to S)", async () => ({ path: "/articleſ/hello", utf8: true }), 402, "payment_required"],
  ["/art%C4%B1cles/hello (ı uppercases to I)", async () => ({ path: "/art%C4%B1cles/hello" }), 402, "payment_required"],
  ["/articles./hello (a trailing dot)", async () => ({ path: "/articles./hello" }), 402, "payment_required"],
  ["/articles%20/hello (a trailing space)", async () => ({ path: "/articles%20/hello" }), 402, "payment_required"],
  // Rails' `(.:format)` and Spring's suffix matching serve /api/weather.json as /api/weather: a
  // priced rule covers its paths with a format suffix, and a free one only what it names.
  ["/api/weather.json (a format suffix on a priced exact path)", async () => ({ path: "/api/weather.json" }), 402, "payment_required", {
    check: (r) => assert.deepEqual([r.terms.resource.url.endsWith("/api/weather.json"), r.terms.accepts[0].amount], [true, "10000"]),
  }],
  ["/API/Weather.XML.gz (in another case, with two suffixes)", async () => ({ path: "/API/Weather.XML.gz" }), 402, "payment_required"],
  ["/api/weather%2Ejson (an escaped dot)", async () => ({ path: "/api/weather%2Ejson" }), 402, "payment_required"],
  ["/articles/free-sample.json (a free rule does not cover a suffix: /articles/* prices it)", async () => ({ path: "/articles/free-sample.json" }), 402, "payment_required"],
  ["/articles/free-sample./../hello", async () => ({ path: "/articles/free-sample./../hello" }), 402, "payment_required"],
  ["/articles/free-sample/../hello (out of the free carve-out)", async () => ({ path: "/articles/free-sample/../hello" }), 402, "payment_required"],
  // A dot segment only some readers see (behind an encoded slash or a ;param) moves a path from one
  // route to another depending on who reads it: refused before any route is matched.
  ["/articles/free-sample%2f..%2fhello (encoded slashes)", async () => ({ path: "/articles/free-sample%2f..%2fhello" }), 400, "invalid_path", BAD_PATH],
  ["/free/%2E%2E%2Farticles/hello", async () => ({ path: "/free/%2E%2E%2Farticles/hello" }), 400, "invalid_path", BAD_PATH],
  ["/articles/hello/..; (out of /articles/* for a reader that drops ;params)", async () => ({ path: "/articles/hello/..;" }), 400, "invalid_path", BAD_PATH],
  ["/articles/hello/..;x", async () => ({ path: "/articles/hello/..;x" }), 400, "invalid_path", BAD_PATH],
  ["/articles/hello/..%3B (an encoded ;)", async () => ({ path: "/articles/hello/..%3B" }), 400, "invalid_path", BAD_PATH],
  ["/articles/hello/..%5C (an encoded backslash)", async () => ({ path: "/articles/hello/..%5C" }), 400, "invalid_path", BAD_PATH],
  ["/echo/pricey/x/..;/..;/..;/articles/y (into a cheaper route)", async () => ({ path: "/echo/pricey/x/..;/..;/..;/articles/y" }), 400, "invalid_path", BAD_PATH],
  ["/free/.../articles/hello (dots alone, a climb on some origins)", async () => ({ path: "/free/.../articles/hello" }), 400, "invalid_path", BAD_PATH],
  ["/articles/hello/..%20 (a climb once the space is dropped)", async () => ({ path: "/articles/hello/..%20" }), 400, "invalid_path", BAD_PATH],
  // An origin behind a proxy that decodes once more reads %25 as %: a path is refused where that
  // reading climbs or falls under another route, and priced as usual where it does not.
  ["/free/%252e%252e/articles/hello (a climb for an origin that decodes twice)", async () => ({ path: "/free/%252e%252e/articles/hello" }), 400, "invalid_path", BAD_PATH],
  ["/articles/free-sample%252f..%252fhello", async () => ({ path: "/articles/free-sample%252f..%252fhello" }), 400, "invalid_path", BAD_PATH],
  ["/%2561rticles/hello (/articles/hello when decoded twice)", async () => ({ path: "/%2561rticles/hello" }), 400, "invalid_path", BAD_PATH],
  ["/articles/free%252dsample (the free carve-out when decoded twice)", async () => ({ path: "/articles/free%252dsample" }), 400, "invalid_path", BAD_PATH],
  ["/articles/50%2525 (an escaped % that stays under its route)", async () => ({ path: "/articles/50%2525" }), 402, "payment_required"],
  // IIS decodes %uNNNN (a UTF-16 unit), which every other reader leaves as written: refused.
  ["/%u0061rticles/hello (/articles/hello on IIS)", async () => ({ path: "/%u0061rticles/hello" }), 400, "invalid_path", BAD_PATH],
  ["/free/%u002e%u002e/articles/hello (a climb on IIS)", async () => ({ path: "/free/%u002e%u002e/articles/hello" }), 400, "invalid_path", BAD_PATH],
  // WHATWG URL leaves a backslash in the query as sent: the page is read as any other.
  ["a backslash in a priced page's query: the terms", async () => ({ path: "/articles/hello?q=C:\\Users\\me" }), 402, "payment_required"],
  ["a backslash in a free page's query: passed to the origin", async () => ({ path: "/articles/free-sample?q=a\\b" }), 404, null, { source: "origin" }],
  // An encoded separator is read two ways: as one (an origin that decodes before routing, and
  // Windows servers and IIS for an encoded backslash, which the runtime leaves encoded) and as part
  // of its segment (routers that match the raw path, such as Express). A path is refused where the
  // two readings fall under different routes, and priced as usual where they do not.
  ["/articles%2Fhello (priced split, unpriced kept whole)", async () => ({ path: "/articles%2Fhello" }), 400, "invalid_path", BAD_PATH],
  ["/articles%5Chello (an encoded backslash)", async () => ({ path: "/articles%5Chello" }), 400, "invalid_path", BAD_PATH],
  ["/api%5cweather (an encoded backslash, lower case)", async () => ({ path: "/api%5cweather" }), 400, "invalid_path", BAD_PATH],
  ["/quote/BTC%2FUSD (one priced parameter kept whole, two segments split)", async () => ({ path: "/quote/BTC%2FUSD" }), 400, "invalid_path", BAD_PATH],
  ["/quote/BTC%5cUSD", async () => ({ path: "/quote/BTC%5cUSD" }), 400, "invalid_path", BAD_PATH],
  ["/echo/pricey/a%2Fb (under the same route either way)", async () => ({ path: "/echo/pricey/a%2Fb" }), 402, "payment_required"],
  ["/articles;x=1/hello", async () => ({ path: "/articles;x=1/hello" }), 402, "payment_required"],
  ["raw UTF-8 in the path", async () => ({ path: "/articles/héllo", utf8: true }), 402, "payment_required"],
  ["a control character in the path", async () => ({ path: "/articles/he\x01llo" }), 402, "payment_required"],
  ["an encoded NUL in the path and query", async () => ({ path: "/articles/hello%00?x=%00" }), 402, "payment_required"],
  ["a 100 KB URL", async () => ({ path: `/articles/${"a".repeat(100_000)}` }), 402, "payment_required"],
  // Each a name before an extension, or a segment before a script's name, that the route match
  // reads (their cost is `cargo bench --bench core -- 32 KB`'s).
  ["a 32 KB name of 16,000 dots", async () => ({ path: `/articles/${"a.".repeat(16_000)}` }), 402, "payment_required"],
  ["32,000 empty segments before a script's name", async () => ({ path: `/articles/${"/".repeat(32_000)}run.php/x` }), 402, "payment_required"],
  // RFC 9112 says to reject whitespace before the colon; workerd takes the name without it, and the
  // Worker reads the value ("eyJ9" is base64 of '{"') as a payment.
  ["a header name with a space before the colon", async () => ({ head: `GET ${A} HTTP/1.1\r\nHost: {host}\r\nPayment-Signature : eyJ9\r\nConnection: close` }), 400, "invalid_json"],
  ["HTTP/1.1 without Host: workerd refuses it", async () => ({ head: `GET ${A} HTTP/1.1\r\nConnection: close` }), 400, null, { source: "runtime" }],
  ["a forged x402-payer without payment", async () => ({ path: A, headers: [["x402-payer", addr(0)]] }), 402, "payment_required"],
  ["a valid payment to a free carve-out is not charged", async () => ({ path: "/articles/free-sample", headers: hdr(await pay(T.a, 0)) }), 404, null, { source: "origin" }],
  ["a paid request with a forged x402-payer: the origin sees the real payer, no payment header", async () => ({
    path: "/echo/deferred/who",
    headers: [...hdr(await pay(T.w, 2)), ["x402-payer", addr(0)], ["x402_payer", addr(0)]],
  }), 200, null, {
    source: "origin",
    paid: { payer: 2 },
    check: (r) => {
      const echo = JSON.parse(r.text);
      assert.equal(echo.headers["x402-payer"], addr(2));
      assert.equal(echo.headers["x402_payer"], undefined, "nor spelt with an underscore (CGI reads both as HTTP_X402_PAYER)");
      assert.equal(echo.headers["payment-signature"], undefined);
    },
  }],

  ["a WebSocket upgrade on a priced path", async () => ({ path: A, headers: [["Upgrade", "websocket"], ["Connection", "Upgrade"], ["Sec-WebSocket-Key", randomBytes(16).toString("base64")], ["Sec-WebSocket-Version", "13"]] }), 402, "payment_required"],
  ["a Range request on a priced path", async () => ({ path: A, headers: [["Range", "bytes=0-99"]] }), 402, "payment_required"],
  ["500 junk headers", async () => ({ path: A, headers: Array.from({ length: 500 }, (_, i) => [`X-Junk-${i}`, "y".repeat(40)]) }), 402, "payment_required"],
  ["Transfer-Encoding and Content-Length together (smuggling shape)", async () => ({
    head: `POST ${A} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\nConnection: close`,
    body: "0\r\n\r\nGET /articles/hello HTTP/1.1\r\nHost: x\r\n\r\n",
  }), 402, "payment_required"],
  ["a valid payment for a missing article: the origin's 404, not charged", async () => {
    sent.missing = await pay(T.a, 1);
    return { path: "/articles/no-such-article", headers: hdr(sent.missing) };
  }, 404, null, { source: "origin" }],
  ["… the same payment then buys an existing article, once", async () => ({ path: A, headers: hdr(sent.missing) }), 200, null, { source: "origin", paid: { payer: 1 } }],
  // A form the origin acts on, then answers with a redirect to the result (post, redirect, get):
  // the work is what was paid for. Not charged, the payment would be withdrawn and could buy the
  // same work again and again.
  ["a paid POST that the origin acts on, then redirects (303): charged", async () => {
    sent.acted = await pay(T.d, 4);
    return { method: "POST", path: "/echo/deferred/x?redirect=303", headers: [...hdr(sent.acted), ["Content-Type", "application/x-www-form-urlencoded"]], body: "comment=hello" };
  }, 303, null, { source: "origin", paid: { payer: 4 }, check: (r) => assert.equal(r.headers.location, "/echo/result") }],
  ["… the same payment for the same work again: refused", async () => ({ method: "POST", path: "/echo/deferred/x?redirect=303", headers: hdr(sent.acted), body: "" }), 402, "replayed_authorization"],
  // Post, then redirect with a 302: what Rails, Express, Django and Laravel send by default.
  ["a paid POST that the origin acts on, then redirects (302): charged", async () => {
    sent.acted302 = await pay(T.d, 4);
    return { method: "POST", path: "/echo/deferred/x?redirect=302", headers: hdr(sent.acted302), body: "comment=hello" };
  }, 302, null, { source: "origin", paid: { payer: 4 } }],
  ["… the same payment for the same work again: refused", async () => ({ method: "POST", path: "/echo/deferred/x?redirect=302", headers: hdr(sent.acted302), body: "" }), 402, "replayed_authorization"],
  // A 307 asks for the same request elsewhere, payment and all: the target takes it.
  ...[307].map((code) => [`a paid POST the origin answers with a ${code}: not charged`, async () => {
    sent[`moved${code}`] = await pay(T.d, 4);
    return { method: "POST", path: `/echo/deferred/x?redirect=${code}`, headers: hdr(sent[`moved${code}`]), body: "" };
  }, code, null, { source: "origin" }]),
  // A paid GET the origin answers with a link on another host (a signed download on a CDN): what
  // was paid for is handed out there. Not charged, the same payment could fetch links forever.
  ...[302, 307].map((code) => [`a paid GET the origin answers with a ${code} to another host: charged`, async () => {
    sent[`off${code}`] = await pay(T.d, 4);
    return { path: `/echo/deferred/file?redirect=${code}&to=${encodeURIComponent("https://cdn.example/file?sig=abc")}`, headers: hdr(sent[`off${code}`]) };
  }, code, null, { source: "origin", paid: { payer: 4 }, check: (r) => assert.equal(r.headers.location, "https://cdn.example/file?sig=abc") }]),
  ["… the same payment for another link: refused", async () => ({ path: `/echo/deferred/other?redirect=302&to=${encodeURIComponent("https://cdn.example/other")}`, headers: hdr(sent.off302) }), 402, "replayed_authorization"],
  ["a paid GET the origin redirects from a host to its www host (a canonical host, whose target takes the payment): not charged", async () => ({
    head: [
      `GET /echo/deferred/x?redirect=301&to=${encodeURIComponent("https://www.paywall.example/echo/deferred/x")} HTTP/1.1`,
      "Host: paywall.example",
      `Payment-Signature: ${encodeHeader(await pay(T.d, 4))}`,
      "Connection: close",
    ].join("\r\n"),
  }), 301, null, { source: "origin" }],
  ["a paid GET the origin redirects to the same host on another scheme and port: not charged", async () => ({
    path: `/echo/deferred/x?redirect=301&to=${encodeURIComponent(`https://${new URL(worker.url).hostname}:8443/echo/deferred/x`)}`,
    headers: hdr(await pay(T.d, 4)),
  }), 301, null, { source: "origin" }],
  ["… the payment of the 307 then buys the POST where it was sent, once", async () => ({ method: "POST", path: "/echo/deferred/x", headers: hdr(sent.moved307), body: "" }), 200, null, { source: "origin", paid: { payer: 4 } }],

  // -- the admin interface -------------------------------------------------------------------------
  ["admin view without a token", async () => ({ path: "/__x402/admin/ledger" }), 401, null],
  ["admin view with a wrong token", async () => ({ path: "/__x402/admin/ledger", headers: [["Authorization", "Bearer tt"]] }), 401, null, {
    check: (r) => assert.equal(r.headers["cache-control"], "no-store"),
  }],
  ["admin view with the token in the query", async () => ({ path: `/__x402/admin/ledger?token=${ADMIN}` }), 401, null],
  ["admin view with the token as Basic credentials", async () => ({ path: "/__x402/admin/ledger", headers: [["Authorization", `Basic ${b64(`admin:${ADMIN}`)}`]] }), 401, null],
  ["forgiving a wallet's debt without a token", async () => ({ method: "POST", path: `/__x402/admin/ledger/forgive?wallet=${unfundedAddress}`, body: "" }), 401, null],
  ["revoking an entry the wallet's ledger does not hold, with the token: 409, with why", async () => ({
    method: "POST",
    path: `/__x402/admin/ledger/revoke?wallet=${unfundedAddress}&id=nothing-here`,
    headers: [["Authorization", `Bearer ${ADMIN}`]],
    body: "",
  }), 409, null, {
    check: (r) => {
      const answer = JSON.parse(r.text);
      assert.equal(answer.ok, false);
      assert.ok(answer.error, "why it was refused");
    },
  }],
  ["forgiving with GET and the token: no such endpoint", async () => ({ path: `/__x402/admin/ledger/forgive?wallet=${unfundedAddress}`, headers: [["Authorization", `Bearer ${ADMIN}`]] }), 404, null],
  ["marking an entry paid by a transaction that is not a hash", async () => ({
    method: "POST",
    path: `/__x402/admin/ledger/mark-paid?wallet=${unfundedAddress}&id=nothing-here&tx=0x1234`,
    headers: [["Authorization", `Bearer ${ADMIN}`]],
    body: "",
  }), 400, null, {
    check: (r) => assert.match(JSON.parse(r.text).message, /^tx must be a transaction hash/),
  }],
  ["admin view of a malformed wallet", async () => ({ path: "/__x402/admin/ledger?wallet=0x1234", headers: [["Authorization", `Bearer ${ADMIN}`]] }), 400, null],
  ["admin view of a wallet with a bad checksum", async () => ({ path: `/__x402/admin/ledger?wallet=${flipCase(stack.payer(0).address)}`, headers: [["Authorization", `Bearer ${ADMIN}`]] }), 400, null],
  ["/__X402/ADMIN/ledger is not the admin interface", async () => ({ path: "/__X402/ADMIN/ledger", headers: [["Authorization", `Bearer ${ADMIN}`]] }), 404, null, { source: "origin" }],

  // -- sessions: forged proofs ---------------------------------------------------------------------
  ["garbage SIGN-IN-WITH-X", async () => ({ path: "/echo/session/a", headers: [["Sign-In-With-X", "hello"]] }), 402, "session_refused"],
  ["SIGN-IN-WITH-X over 8 KiB", async () => ({ path: "/echo/session/a", headers: [["Sign-In-With-X", "A".repeat(9000)]] }), 402, "session_refused"],
  ["SIGN-IN-WITH-X of JSON that is not a proof", async () => ({ path: "/echo/session/a", headers: [["Sign-In-With-X", b64(JSON.stringify(await pay(T.a, 0)))]] }), 402, "session_refused"],
  ["a forged session token as a bearer", async () => ({ path: "/echo/session/a", headers: [["Authorization", `Bearer ${forgedToken(0)}`]] }), 402, "session_refused"],
  ["a forged session token as a cookie", async () => ({ path: "/echo/session/a", headers: [["Cookie", `x402_session=${forgedToken(0)}`]] }), 402, "session_refused"],
  ["a 3 KB session cookie", async () => ({ path: "/echo/session/a", headers: [["Cookie", `x402_session=v1.${"a".repeat(3000)}.b`]] }), 402, "session_refused"],
  ["sixty session cookies, none named after a session of this page: none read, the terms as to anyone", async () => ({ path: "/echo/session/a", headers: [["Cookie", Array.from({ length: 60 }, (_, i) => `x402_session_${i.toString(16).padStart(8, "0")}=${forgedToken(0)}`).join("; ")]] }), 402, "payment_required"],
  ["one forged token sent a hundred times under the one name of earlier versions", async () => ({ path: "/echo/session/a", headers: [["Cookie", Array.from({ length: 100 }, () => `x402_session=${forgedToken(0)}`).join("; ")]] }), 402, "session_refused"],
  ["someone else's JWT as a bearer is not a session", async () => ({ path: "/echo/session/a", headers: [["Authorization", "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln"]] }), 402, "payment_required"],
  ["the site's PASETO bearer token (v4.local.…), shaped like ours, is not a session", async () => ({ path: "/echo/session/a", headers: [["Authorization", "Bearer v4.local.c2l0ZS1vd24"]] }), 402, "payment_required"],

  // -- money that is not there ---------------------------------------------------------------------
  ["an unfunded wallet on an immediate route: refused at settlement, nothing served", async () => ({ path: A, headers: hdr(await pay(T.a, unfunded)) }), 402, "settlement_failed"],
  // Deferred routes serve before settling, but credit is earned (the default): a wallet that has
  // never paid is trusted with nothing, so its payment is settled before anything is served. A
  // throwaway key with no money gets nothing, however many times it tries, and owes nothing.
  ["an unfunded wallet on a deferred route: no credit before it has paid, refused at settlement", async () => ({ path: W, headers: hdr(await pay(T.w, unfunded)) }), 402, "settlement_failed"],
  ["… and again on another deferred route: refused the same way", async () => ({ path: "/echo/deferred/u", headers: hdr(await pay(T.d, unfunded)) }), 402, "settlement_failed"],
  // A payment is settled after the origin answers. For a method that may change something there,
  // a signature alone would get a key with no money the origin's work for nothing: the
  // facilitator's /verify is asked first, and the origin never hears of the request.
  ["an unfunded wallet POSTs to an immediate route: /verify refuses it before the origin is asked", async () => ({ method: "POST", path: "/articles/unfunded-order", body: "qty=1", headers: hdr(await pay(T.a, unfunded)) }), 402, "facilitator_rejected", {
    x402: "invalid_exact_evm_insufficient_balance",
    check: () => assert.equal(originSaw("/articles/unfunded-order"), 0, "the origin never heard of it"),
  }],
  ["an unfunded wallet DELETEs on a deferred route (no credit yet, so settled now): refused the same way", async () => ({ method: "DELETE", path: "/echo/deferred/unfunded-order", headers: hdr(await pay(T.d, unfunded)) }), 402, "facilitator_rejected", {
    x402: "invalid_exact_evm_insufficient_balance",
    check: () => assert.equal(originSaw("/echo/deferred/unfunded-order"), 0, "the origin never heard of it"),
  }],
  ["a funded wallet POSTs to an immediate route: verified, served once, settled", async () => {
    sent.post = await pay(T.a, 4);
    return { method: "POST", path: A, body: "qty=1", headers: hdr(sent.post) };
  }, 200, null, {
    source: "origin",
    paid: { payer: 4 },
    check: () => assert.equal(stack.origin.hits.filter((h) => h.method === "POST" && h.path === A).length, 1),
  }],
  // The ledger refuses a replay before the facilitator is asked to verify it.
  ["… the same POST again: refused as a replay, the facilitator not asked, the origin not either", async () => {
    start.verifies = stack.facilitator.calls.filter((c) => c.kind === "verify").length;
    return { method: "POST", path: A, body: "qty=1", headers: hdr(sent.post) };
  }, 402, "replayed_authorization", {
    check: () => {
      assert.equal(stack.facilitator.calls.filter((c) => c.kind === "verify").length, start.verifies);
      assert.equal(stack.origin.hits.filter((h) => h.method === "POST" && h.path === A).length, 1);
    },
  }],
];

/** How many requests for `path` reached the origin. */
const originSaw = (path) => stack.origin.hits.filter((h) => h.path === path).length;

function flipCase(address) {
  const i = [...address].findIndex((c, j) => j > 1 && /[a-fA-F]/.test(c));
  const c = address[i];
  return address.slice(0, i) + (c === c.toUpperCase() ? c.toLowerCase() : c.toUpperCase()) + address.slice(i + 1);
}

// ---- running it ----------------------------------------------------------------------------------

/** Everything sent and answered, for the checks after the table. */
const results = [];

async function concurrentReplay() {
  const p = await pay(T.a, 5);
  const paths = ["/articles/hello", W, "/echo/deferred/c"];
  const reqs = Array.from({ length: 12 }, (_, i) => ({ path: paths[i % 3], headers: hdr(p) }));
  const answers = await Promise.all(reqs.map(send));
  const served = answers.filter((r) => r.status === 200);
  assert.equal(served.length, 1, `statuses: ${answers.map((r) => r.status)}`);
  for (const r of answers) {
    if (r.status !== 200) {
      assert.equal(r.status, 402);
      assert.equal(r.reason, "replayed_authorization");
    }
  }
  return answers.map((r) => ({ res: r, paid: r.status === 200 }));
}

describe(`hostile requests (${cases.length} cases)`, () => {
  for (const [name, build, status, reason, opts = {}] of cases) {
    const label = `${name} → ${status ?? "once"}${reason ? ` ${reason}` : ""}`;
    test(label, opts.todo ? { todo: opts.todo } : {}, async () => {
      if (build === "concurrent") {
        for (const r of await concurrentReplay()) results.push({ name, ...r, opts });
        return;
      }
      const req = await build();
      const res = await send(req);
      results.push({ name, res, paid: Boolean(opts.paid), opts });
      const said = `${res.status} ${res.source} ${res.reason ?? ""} ${res.text.slice(0, 300)}`;
      assert.equal(res.status, status, said);
      assert.equal(res.source, opts.source ?? "worker", `answered by ${res.source}: ${said}`);
      assert.equal(res.reason, reason, said);
      if (req.path?.startsWith("/__x402/admin/")) {
        if (res.status === 401) assert.equal(JSON.parse(res.text).error, "unauthorized");
        assert.doesNotMatch(res.text, /"wallets"|"settled"/, "no ledger without the token");
      } else if (opts.terms === false) {
        assert.equal(res.terms, null, "no terms: the path belongs to no route");
      } else if (res.source === "worker" && res.status >= 400) {
        assert.ok(res.terms?.accepts?.length, "a refusal carries fresh terms");
        if (res.reason) assert.equal(res.terms.error, res.x402, "the terms carry the same x402 reason as the body");
      }
      if (opts.x402) assert.equal(res.terms?.error, opts.x402);
      if (opts.paid || opts.again) {
        assert.equal(res.receipt?.success, true, "a receipt comes with paid content");
        assert.equal(res.receipt.payer, addr((opts.paid ?? opts.again).payer));
        assert.equal(res.headers["cache-control"], "no-store", "no shared cache may keep paid content for the next client");
      } else {
        assert.ok(!res.receipt?.success, "no success receipt without a payment");
      }
      opts.check?.(res);
    });
  }
});

describe("after the table", () => {
  test(`at least 60 requests were sent`, () => {
    assert.ok(results.length >= 60, `${results.length} requests`);
    const by = {};
    for (const r of results) by[`${r.res.status} ${r.res.source}`] = (by[`${r.res.status} ${r.res.source}`] ?? 0) + 1;
    console.log(`${results.length} requests in ${cases.length} cases; answers: ${JSON.stringify(by)}`);
  });

  test("no 5xx from the Worker (workerd's own 501 for unknown methods and 500 for CONNECT, OPTIONS * and absolute-form targets are listed cases)", () => {
    const fivexx = results.filter((r) => r.res.status >= 500);
    const fromWorker = fivexx.filter((r) => r.res.source !== "runtime");
    assert.deepEqual(fromWorker.map((r) => `${r.name}: ${r.res.status} ${r.res.text.slice(0, 200)}`), []);
    for (const r of fivexx) {
      assert.ok([500, 501].includes(r.res.status) && r.opts.source === "runtime", `${r.name}: ${r.res.status}`);
      assert.doesNotMatch(r.res.text, /x402|payment/i, "workerd's own answer: no Worker code ran");
    }
  });

  test("no protected content in any answer that was not paid for", () => {
    const leaks = results.filter(
      (r) => !r.paid && !r.opts.again && !r.opts.todo && PROTECTED.some((re) => re.test(r.res.text)),
    );
    assert.deepEqual(leaks.map((r) => `${r.name}: ${r.res.status} ${r.res.text.slice(0, 120)}`), []);
    const bugs = results.filter((r) => r.opts.todo && PROTECTED.some((re) => re.test(r.res.text)));
    if (bugs.length) console.log(`known bug, content served unpaid: ${bugs.map((r) => r.name).join("; ")}`);
  });

  test("every deferred payment settled or failed; balances moved by exactly the paid cases", async () => {
    const view = await until("every deferred payment to be settled or failed", async () => {
      const v = await ledgers();
      return v.pending === 0 ? v : null;
    });
    const expected = {};
    let paidCount = 0;
    for (const r of results.filter((r) => r.paid)) {
      const k = `payer${r.opts.paid.payer}`;
      expected[k] = (expected[k] ?? 0n) + PRICE;
      expected.payTo = (expected.payTo ?? 0n) + PRICE;
      paidCount++;
    }
    const end = await allBalances();
    const moved = {};
    for (const k of Object.keys(end)) {
      const d = k === "payTo" || k === "otherPayee" ? end[k] - start.balances[k] : start.balances[k] - end[k];
      if (d !== 0n) moved[k] = d;
    }
    assert.deepEqual(moved, expected, "money moved exactly as the paid cases say, and nowhere else");
    assert.equal(stack.facilitator.settlements().length - start.settlements, paidCount, "one settlement per paid case");
    // The only failed settlements are the unfunded wallet's three, each refused before anything
    // was served: it owes nothing, and nobody does.
    const unfundedLedger = view.wallets.find((w) => w.wallet === unfundedAddress.toLowerCase());
    assert.equal(unfundedLedger.failed.length, 3, "its three payments, all refused at settlement");
    assert.ok(unfundedLedger.failed.every((e) => !e.delinquent), "none of them held against it");
    assert.equal(unfundedLedger.delinquent, false, "nothing was served, so nothing is owed");
    assert.equal(unfundedLedger.paid_micro_usd, "0", "and it has earned no credit");
    assert.deepEqual(view.wallets.filter((w) => w.failed.length).map((w) => w.wallet), [unfundedAddress.toLowerCase()]);
    assert.equal(view.owedMicroUsd, "0");
  });
});

describe("a key that signs payments it cannot fund, again and again", () => {
  test("every try is refused and nothing served; its ledger keeps the newest 20 refusals and counts the rest; a trimmed one is still a replay", async () => {
    const broke = generatePrivateKey();
    const wallet = privateKeyToAccount(broke).address;
    const before = await stack.balanceOf(wallet);
    const payments = [];
    for (let i = 0; i < 23; i++) {
      const p = await pay(T.a, broke);
      payments.push(p);
      const res = await send({ path: A, headers: hdr(p) });
      assert.equal(res.status, 402, `try ${i}`);
      assert.equal(res.reason, "settlement_failed", `try ${i}`);
      assert.doesNotMatch(res.text, PROTECTED[0], `try ${i}: nothing served`);
    }
    const res = await worker.fetch(`/__x402/admin/ledger?wallet=${wallet}`, { headers: { authorization: `Bearer ${ADMIN}` } });
    assert.equal(res.status, 200);
    const view = await res.json();
    const book = view.wallets?.[0] ?? view;
    assert.equal(book.admitted, 23);
    assert.equal(book.failed.length, 20, "the newest 20 refusals are kept for the publisher");
    assert.equal(book.failed_trimmed, 3, "the older ones are counted");
    assert.ok(book.failed.every((e) => !e.delinquent), "none is held against it: nothing was served");
    assert.equal(book.remembered_nonces, 23, "every nonce is still remembered");
    // The first try, trimmed from the ledger, sent again: still a replay, refused before the
    // facilitator is asked.
    const settles = stack.facilitator.settlements().length;
    const again = await send({ path: A, headers: hdr(payments[0]) });
    assert.equal(again.status, 402);
    assert.equal(again.reason, "replayed_authorization");
    assert.equal(stack.facilitator.settlements().length, settles);
    assert.equal(await stack.balanceOf(wallet), before);
  });
});

describe("a client address whose payments keep being refused by the facilitator (X402_RATE_LIMIT)", () => {
  test("is turned away for a minute before the facilitator is asked again; other addresses, and honest payments from them, are not", async () => {
    const limited = await startWorker({
      config: stack.config({ routes: [{ path: "/articles/*", price: "$0.01", mimeType: "text/html" }] }),
      ratelimits: { X402_RATE_LIMIT: { namespace_id: "402", simple: { limit: 3, period: 60 } } },
    });
    try {
      const terms = decodeHeader((await limited.fetch("/articles/x")).headers.get("payment-required")).accepts[0];
      const verifies = () => stack.facilitator.calls.filter((c) => c.kind === "verify").length;
      const from = (address, payload, method = "POST") =>
        limited.fetch("/articles/hello", {
          method,
          ...(method === "POST" ? { body: "qty=1" } : {}),
          headers: { "cf-connecting-ip": address, "payment-signature": encodeHeader(payload) },
        });
      // A key with nothing, signing again and again: each try costs a /verify, until the
      // address is over its limit (3 a minute here).
      for (let i = 1; i <= 4; i++) {
        const before = verifies();
        const res = await from("203.0.113.7", await pay(terms, unfunded));
        const body = await res.json();
        assert.deepEqual([res.status, body.reason], [402, "facilitator_rejected"], `try ${i}`);
        assert.equal(verifies(), before + 1, `try ${i}: asked`);
      }
      const before = verifies();
      const moneyBefore = await allBalances();
      for (const [payload, method] of [
        [await pay(terms, unfunded), "POST"],
        // Its honest payments too, for that minute: an address is all the limit knows.
        [await pay(terms, 5), "GET"],
      ]) {
        const res = await from("203.0.113.7", payload, method);
        const body = await res.json();
        assert.deepEqual([res.status, body.reason], [429, "too_many_refusals"], method);
        assert.equal(res.headers.get("retry-after"), "60");
        assert.match(body.message, /wait a minute/);
      }
      assert.equal(verifies(), before, "the facilitator was not asked");
      assert.deepEqual(await allBalances(), moneyBefore, "nothing moved");
      // Another address pays as usual.
      const paid = await from("198.51.100.2", await pay(terms, 5));
      assert.equal(paid.status, 200, await paid.clone().text());
      await paid.arrayBuffer();
      assert.equal((await stack.balanceOf(addr(5))) + PRICE, moneyBefore.payer5);
    } finally {
      await limited.dispose();
    }
  });
});
