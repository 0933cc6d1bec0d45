// The paywall page for people, in a real browser: headless Debian Chromium (driven by
// playwright-core) asks the built Worker in workerd for a priced article, gets the HTML paywall
// (402, with PAYMENT-REQUIRED still on it), and pays with a test wallet injected into the page as
// window.ethereum (EIP-1193; eth_signTypedData_v4 answered in Node by viem). The money moves on the
// local chain through the official facilitator; the session cookie then lets the reader into the
// next article without paying again. Screenshots go to test-results/.
//   node_modules/.bin/node --test tests/e2e/paywall-page.test.mjs
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdir } from "node:fs/promises";
import { createServer } from "node:http";
import { gzipSync } from "node:zlib";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { privateKeyToAccount } from "viem/accounts";
import { ADMIN_TOKEN, ROOT, decodeHeader, startStack, startWorker } from "./harness.mjs";
import { ensureChromium, injectWallet, launchChromium } from "./lib/browser.mjs";

const chromium = ensureChromium();
if (chromium.skip) console.log(`# paywall page tests skipped: ${chromium.skip}`);
if (chromium.installed) console.log(`# installed Debian's chromium at ${chromium.path}`);

const PRICE = 10000n; // "$0.01" of a 6-decimal USDC
const RESULTS = path.join(ROOT, "test-results");
const ROUTE = {
  path: "/articles/*",
  price: "$0.01",
  description: "One article of The x402 Demo Times",
  mimeType: "text/html",
  session: { scope: "/articles/*", seconds: 3600 },
};

describe("the paywall page in headless Chromium", { skip: chromium.skip ?? false, timeout: 60_000 }, () => {
  let stack, worker, browser, page, wallet, payer;
  const pageErrors = [];

  before(async () => {
    [stack, browser] = await Promise.all([startStack(), launchChromium({ executablePath: chromium.path })]);
    worker = await startWorker({
      config: stack.config({ routes: [ROUTE] }),
      secrets: { X402_SESSION_SECRET: randomBytes(32).toString("hex"), X402_ADMIN_TOKEN: ADMIN_TOKEN },
    });
    page = browser.page;
    page.setDefaultTimeout(15_000);
    page.on("pageerror", (err) => pageErrors.push(err));
    payer = privateKeyToAccount(stack.payer(0).privateKey);
    wallet = await injectWallet(page, { account: payer, chainId: stack.chainId });
    await mkdir(RESULTS, { recursive: true });
  });
  after(async () => {
    await browser?.close();
    await worker?.dispose();
    await stack?.stop();
  });

  const balances = async () => ({
    payer: await stack.balanceOf(payer.address),
    payTo: await stack.balanceOf(stack.accounts.payTo.address),
  });
  const payButton = () => page.getByRole("button", { name: "Pay with your wallet" });
  const status = () => page.locator("#x402-status");

  test("a browser gets the page: 402, what it is, the price, and PAYMENT-REQUIRED still on it", async () => {
    const res = await page.goto(`${worker.url}/articles/hello`);
    assert.equal(res.status(), 402);
    const headers = res.headers();
    assert.equal(headers["content-type"], "text/html; charset=utf-8");
    assert.equal(headers["cache-control"], "no-store");
    const terms = decodeHeader(headers["payment-required"]);
    assert.equal(terms.x402Version, 2);
    assert.equal(terms.resource.url, `${worker.url}/articles/hello`);
    assert.equal(terms.accepts[0].amount, String(PRICE));
    // Small: the page's own weight stays under 12 KB; the embedded terms come on top (their size is
    // the route's: one offer, the extensions).
    const html = Buffer.from(await res.text());
    const size = html.length;
    const own = size - headers["payment-required"].length;
    console.log(`# the paywall page: ${size} bytes (${gzipSync(html).length} gzipped), ${size - own} of them the embedded terms`);
    assert.ok(own < 12 * 1024, `${own} bytes without the terms`);
    // The script pays exactly the header's terms: the same value is in the page.
    assert.equal(await page.locator("#x402-terms").getAttribute("data-terms"), headers["payment-required"]);

    assert.equal(await page.locator("html").getAttribute("lang"), "en");
    assert.equal(await page.title(), `Payment required: ${ROUTE.description}`);
    assert.equal(await page.getByRole("main").count(), 1);
    assert.equal(await page.getByRole("heading", { level: 1 }).textContent(), ROUTE.description);
    const text = await page.getByRole("main").innerText();
    assert.match(text, /\$0\.01 USDC on chain 31337/);
    assert.match(text, new RegExp(`${worker.url.replace(/[.]/g, "\\.")}/articles/hello`));
    assert.match(text, /every page matching \/articles\/\* for 1 hour/);
    assert.ok(await payButton().isVisible());
    assert.equal(await status().getAttribute("aria-live"), "polite");
    await page.screenshot({ path: path.join(RESULTS, "paywall.png"), fullPage: true });

    // A program asking for the same URL still gets the JSON answer.
    const api = await worker.fetch("/articles/hello");
    assert.equal(api.status, 402);
    assert.equal(api.headers.get("content-type"), "application/json");
    assert.equal((await api.json()).reason, "payment_required");
  });

  test("without JavaScript, the page still says what it is, what it costs, and why it cannot pay", async () => {
    const plain = await browser.context.newPage();
    try {
      const cdp = await browser.context.newCDPSession(plain);
      await cdp.send("Emulation.setScriptExecutionDisabled", { value: true });
      const res = await plain.goto(`${worker.url}/articles/hello`);
      assert.equal(res.status(), 402);
      const text = await plain.getByRole("main").innerText();
      assert.match(text, /\$0\.01 USDC on chain 31337/);
      assert.match(text, /Paying from this page needs JavaScript and a browser wallet/);
      assert.equal(await plain.getByRole("button", { name: "Pay with your wallet" }).isVisible(), false);
      await plain.screenshot({ path: path.join(RESULTS, "paywall-nojs.png"), fullPage: true });
    } finally {
      await plain.close();
    }
  });

  test("without a wallet in the browser, the page says so", async () => {
    const bare = await browser.context.newPage();
    try {
      await bare.goto(`${worker.url}/articles/local-chain`);
      await bare.getByRole("button", { name: "Pay with your wallet" }).click();
      await bare.locator("#x402-status", { hasText: "No wallet found in this browser" }).waitFor();
    } finally {
      await bare.close();
    }
  });

  test("declining in the wallet pays nothing, and says so", async () => {
    const before = await balances();
    wallet.reject = "eth_signTypedData_v4";
    try {
      await payButton().click();
      await status().filter({ hasText: "You declined the payment. Nothing was paid." }).waitFor();
    } finally {
      wallet.reject = null;
    }
    assert.equal(await status().getAttribute("class"), "err");
    assert.deepEqual(await balances(), before);
  });

  test("a payment the paywall refuses shows the paywall's reason", async () => {
    const before = await balances();
    wallet.signer = privateKeyToAccount(stack.payer(1).privateKey); // signs as someone else
    try {
      await payButton().click();
      await status().filter({ hasText: "The payment was refused: " }).waitFor();
    } finally {
      wallet.signer = payer;
    }
    const shown = await status().textContent();
    console.log(`# shown: ${shown}`);
    await page.screenshot({ path: path.join(RESULTS, "paywall-refused.png"), fullPage: true });
    assert.match(shown, /signature/i);
    assert.deepEqual(await balances(), before);
    assert.equal(page.url(), `${worker.url}/articles/hello`);
  });

  test("the reader pays with the wallet and the article replaces the page; exactly $0.01 moves", async () => {
    const before = await balances();
    await payButton().click();
    await page.getByRole("heading", { name: "Hello, paid web" }).waitFor();
    assert.match(await page.locator("article").innerText(), /You paid for this article/);
    assert.equal(page.url(), `${worker.url}/articles/hello`);
    const after = await balances();
    assert.equal(after.payer, before.payer - PRICE);
    assert.equal(after.payTo, before.payTo + PRICE);

    // What the wallet was asked to sign: EIP-3009 over the offer, as the official client builds it.
    const methods = wallet.calls.map((c) => c.method);
    assert.deepEqual(methods.slice(-3), ["eth_requestAccounts", "eth_chainId", "eth_signTypedData_v4"]);
    const [from, json] = wallet.calls.at(-1).params;
    assert.equal(from, payer.address);
    const typed = JSON.parse(json);
    assert.equal(typed.primaryType, "TransferWithAuthorization");
    assert.deepEqual(typed.domain, { name: "USD Coin", version: "2", chainId: stack.chainId, verifyingContract: stack.usdc });
    assert.equal(typed.message.to, stack.accounts.payTo.address);
    assert.equal(typed.message.value, String(PRICE));
    assert.equal(Number(typed.message.validBefore) - Number(typed.message.validAfter), 300 + 600);
    assert.match(typed.message.nonce, /^0x[0-9a-f]{64}$/);

    // The paid answer left the session cookie in the browser.
    const cookie = (await browser.context.cookies()).find((c) => c.name.startsWith("x402_session_"));
    assert.ok(cookie, "a session cookie set");
    assert.equal(cookie.httpOnly, true);
    assert.equal(cookie.path, "/");
  });

  test("the next article is served on the session: 200, no second payment", async () => {
    const before = await balances();
    const signed = wallet.calls.length;
    const res = await page.goto(`${worker.url}/articles/edge-economics`);
    assert.equal(res.status(), 200);
    assert.equal(res.headers()["payment-required"], undefined);
    await page.getByRole("heading", { name: "The economics of the edge" }).waitFor();
    await page.screenshot({ path: path.join(RESULTS, "paid.png"), fullPage: true });
    assert.deepEqual(await balances(), before);
    assert.equal(wallet.calls.length, signed, "the wallet was not asked again");
    assert.deepEqual(pageErrors, []);
  });

  test("a site on another origin pays with the official client, in the browser: its paid retry passes the preflight", async () => {
    // The official fetch client, bundled as a web page would bundle it, served by a site on another
    // origin. Its paid retry carries PAYMENT-SIGNATURE and Access-Control-Expose-Headers, neither
    // of which a browser sends across origins without a preflight, which the paywall answers.
    const { build } = await import("esbuild");
    const bundle = await build({
      entryPoints: [path.join(ROOT, "tests/e2e/lib/official-client.browser.mjs")],
      bundle: true,
      format: "iife",
      platform: "browser",
      write: false,
      logLevel: "silent",
    });
    const script = bundle.outputFiles[0].text;
    const site = createServer((req, res) => {
      const js = req.url === "/client.js";
      res.writeHead(200, { "content-type": js ? "text/javascript" : "text/html" });
      res.end(js ? script : '<!doctype html><title>A site that pays</title><script src="/client.js"></script>');
    });
    await new Promise((resolve) => site.listen(0, "127.0.0.1", resolve));
    const other = await browser.context.newPage();
    try {
      const siteUrl = `http://127.0.0.1:${site.address().port}/`;
      assert.notEqual(new URL(siteUrl).origin, new URL(worker.url).origin);
      await other.goto(siteUrl);
      const buyer = stack.payer(1);
      const before = { payer: await stack.balanceOf(buyer.address), payTo: await stack.balanceOf(stack.accounts.payTo.address) };
      const got = await other.evaluate((args) => window.x402Pay(args), {
        url: `${worker.url}/articles/local-chain`,
        privateKey: buyer.privateKey,
        network: stack.network,
        asset: stack.usdc,
      });
      assert.equal(got.error, undefined, "the browser let the paid retry through");
      assert.equal(got.status, 200, got.text);
      assert.ok(got.receipt, "the receipt header is exposed to the page");
      assert.equal(decodeHeader(got.receipt).success, true);
      assert.equal(before.payer - (await stack.balanceOf(buyer.address)), PRICE);
      assert.equal((await stack.balanceOf(stack.accounts.payTo.address)) - before.payTo, PRICE);
    } finally {
      await other.close();
      site.close();
    }
  });
});
