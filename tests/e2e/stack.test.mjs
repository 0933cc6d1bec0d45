// Tests the local stack itself, without the Worker: anvil, the real USDC, the official facilitator
// (v2, and v1 on a chain with a legacy name), the official clients, the fault stand-in.
//   node_modules/.bin/node --test tests/e2e/stack.test.mjs
import assert from "node:assert/strict";
import http from "node:http";
import { after, before, describe, test } from "node:test";
import { privateKeyToAccount } from "viem/accounts";
import { x402Client } from "@x402/core/client";
import { registerExactEvmScheme } from "@x402/evm/exact/client";
import { USDC_ADDRESS, tokenInfo, PAYER_FUNDING } from "../../scripts/lib/chain.mjs";
import { FAULT_MODES } from "../../scripts/lib/facilitator.mjs";
import {
  accounts,
  decodeHeader,
  encodeHeader,
  legacyClient,
  legacyPayingFetch,
  payingFetch,
  startFaultyFacilitator,
  startStack,
} from "./harness.mjs";

const post = async (url, body) => {
  const res = await fetch(url, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
  return { status: res.status, body: await res.json() };
};

function requirementsFor(stack, amount = "10000") {
  return {
    scheme: "exact",
    network: stack.network,
    amount,
    asset: stack.usdc,
    payTo: accounts.payTo.address,
    maxTimeoutSeconds: 300,
    extra: { name: "USD Coin", version: "2" },
  };
}

async function signPayment(stack, requirements, payerIndex = 0) {
  const client = new x402Client();
  registerExactEvmScheme(client, { signer: privateKeyToAccount(accounts.payers[payerIndex].privateKey) });
  client.setSpendControls({ allowedAssets: [{ network: stack.network, asset: stack.usdc }] });
  return client.createPaymentPayload({
    x402Version: 2,
    resource: { url: "http://127.0.0.1/test", description: "test", mimeType: "text/plain" },
    accepts: [requirements],
  });
}

/** A minimal hand-rolled paid endpoint (v2 headers, or a v1 JSON body) settling via the facilitator. */
async function startPaidEndpoint(stack, { v1Network } = {}) {
  const req2 = requirementsFor(stack);
  const req1 = v1Network && {
    scheme: "exact", network: v1Network, maxAmountRequired: "10000", resource: "http://127.0.0.1/paid",
    description: "paid", mimeType: "text/plain", payTo: accounts.payTo.address, maxTimeoutSeconds: 300,
    asset: stack.usdc, extra: { name: "USD Coin", version: "2" },
  };
  const server = http.createServer(async (req, res) => {
    const header = v1Network ? req.headers["x-payment"] : req.headers["payment-signature"];
    if (!header) {
      if (v1Network) {
        res.writeHead(402, { "content-type": "application/json" });
        return res.end(JSON.stringify({ x402Version: 1, error: "payment required", accepts: [req1] }));
      }
      const paymentRequired = { x402Version: 2, resource: { url: "http://127.0.0.1/paid" }, accepts: [req2] };
      res.writeHead(402, { "content-type": "application/json", "payment-required": encodeHeader(paymentRequired) });
      return res.end("{}");
    }
    const paymentPayload = decodeHeader(header);
    const body = { x402Version: paymentPayload.x402Version, paymentPayload, paymentRequirements: v1Network ? req1 : req2 };
    const verified = await post(`${stack.facilitator.url}/verify`, body);
    if (!verified.body.isValid) {
      res.writeHead(402, { "content-type": "application/json" });
      return res.end(JSON.stringify(verified.body));
    }
    const settled = await post(`${stack.facilitator.url}/settle`, body);
    res.writeHead(settled.body.success ? 200 : 402, {
      "content-type": "text/plain",
      [v1Network ? "x-payment-response" : "payment-response"]: encodeHeader(settled.body),
    });
    res.end("the paid content");
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  return { url: `http://127.0.0.1:${server.address().port}/paid`, stop: () => new Promise((r) => server.close(r)) };
}

describe("local stack on chain 31337", () => {
  let stack;
  before(async () => {
    stack = await startStack();
    console.log(`# stack up in ${Math.round(stack.startMs)} ms (${stack.rpcUrl}, facilitator ${stack.facilitator.url})`);
  });
  after(() => stack?.stop());

  test("anvil runs chain 31337 with USDC at the well-known address", async () => {
    assert.equal(stack.chainId, 31337);
    assert.equal(stack.usdc, USDC_ADDRESS);
    assert.deepEqual(await tokenInfo(stack.rpcUrl, stack.usdc), { name: "USD Coin", version: "2", decimals: 6 });
  });

  test("every payer holds 1000 USDC, payTo and the facilitator none", async () => {
    for (const payer of accounts.payers) assert.equal(await stack.balanceOf(payer.address), PAYER_FUNDING);
    assert.equal(await stack.balanceOf(accounts.payTo.address), 0n);
    assert.equal(await stack.balanceOf(accounts.facilitatorSigner.address), 0n);
  });

  test("/supported lists exact on eip155:31337 with a real signer, and no v1 kind", async () => {
    const supported = await (await fetch(`${stack.facilitator.url}/supported`)).json();
    assert.deepEqual(
      supported.kinds.map((k) => [k.x402Version, k.scheme, k.network]),
      [[2, "exact", "eip155:31337"]],
    );
    assert.deepEqual(supported.signers["eip155:*"], [accounts.facilitatorSigner.address]);
  });

  test("the official facilitator settles a payment the official client signed; balances move by the amount", async () => {
    const requirements = requirementsFor(stack);
    const paymentPayload = await signPayment(stack, requirements, 1);
    const payer = accounts.payers[1].address;
    assert.equal(paymentPayload.payload.authorization.from, payer);
    const before = [await stack.balanceOf(payer), await stack.balanceOf(accounts.payTo.address)];
    const body = { x402Version: 2, paymentPayload, paymentRequirements: requirements };

    const verified = await post(`${stack.facilitator.url}/verify`, body);
    assert.equal(verified.status, 200);
    assert.deepEqual(verified.body, { isValid: true, payer });

    const settled = await post(`${stack.facilitator.url}/settle`, body);
    assert.equal(settled.status, 200);
    assert.equal(settled.body.success, true, JSON.stringify(settled.body));
    assert.match(settled.body.transaction, /^0x[0-9a-f]{64}$/);
    assert.equal(settled.body.network, "eip155:31337");
    assert.equal(await stack.balanceOf(payer), before[0] - 10000n);
    assert.equal(await stack.balanceOf(accounts.payTo.address), before[1] + 10000n);
    assert.equal(await stack.chain.authorizationState(payer, paymentPayload.payload.authorization.nonce), true);

    const again = await post(`${stack.facilitator.url}/settle`, body);
    assert.equal(again.status, 200);
    assert.equal(again.body.success, false);
    assert.equal(await stack.balanceOf(payer), before[0] - 10000n);
    assert.equal(stack.facilitator.settlements().length >= 1, true);
  });

  test("settlements sent at the same moment all land (the facilitator serialises its transactions)", async () => {
    const requirements = requirementsFor(stack, "1000");
    const payloads = await Promise.all([3, 4, 5, 6].flatMap((i) => [i, i]).map((i) => signPayment(stack, requirements, i)));
    const payTo = accounts.payTo.address;
    const before = await stack.balanceOf(payTo);
    const results = await Promise.all(
      payloads.map((paymentPayload) =>
        post(`${stack.facilitator.url}/settle`, { x402Version: 2, paymentPayload, paymentRequirements: requirements })),
    );
    for (const r of results) assert.equal(r.body.success, true, JSON.stringify(r.body));
    assert.equal(new Set(results.map((r) => r.body.transaction)).size, payloads.length);
    assert.equal(await stack.balanceOf(payTo), before + 1000n * BigInt(payloads.length));
  });

  test("bad bodies get 400 {error}", async () => {
    const res = await fetch(`${stack.facilitator.url}/verify`, { method: "POST", body: "nope" });
    assert.equal(res.status, 400);
    assert.ok((await res.json()).error);
    assert.equal((await post(`${stack.facilitator.url}/settle`, { paymentPayload: {} })).status, 400);
  });

  test("the harness's paying fetch (official @x402/fetch) pays a 402 endpoint", async () => {
    const endpoint = await startPaidEndpoint(stack);
    try {
      const payer = accounts.payers[2].address;
      const before = await stack.balanceOf(payer);
      const res = await payingFetch(stack, 2)(endpoint.url);
      assert.equal(res.status, 200);
      assert.equal(await res.text(), "the paid content");
      const receipt = decodeHeader(res.headers.get("payment-response"));
      assert.equal(receipt.success, true);
      assert.equal(receipt.payer, payer);
      assert.equal(await stack.balanceOf(payer), before - 10000n);
    } finally {
      await endpoint.stop();
    }
  });

  test("the facilitator can be stopped and started again on the same port", async () => {
    const { facilitator } = stack;
    await facilitator.stop();
    await assert.rejects(fetch(`${facilitator.url}/supported`));
    await facilitator.start();
    assert.equal((await fetch(`${facilitator.url}/supported`)).status, 200);
  });
});

describe("chain 84532: the legacy v1 path", () => {
  let stack;
  before(async () => {
    await legacyClient();
    stack = await startStack({ chainId: 84532 });
  });
  after(() => stack?.stop());

  test("/supported lists v2 eip155:84532 and v1 base-sepolia", async () => {
    const supported = await (await fetch(`${stack.facilitator.url}/supported`)).json();
    assert.deepEqual(
      supported.kinds.map((k) => [k.x402Version, k.network]).sort(),
      [[1, "base-sepolia"], [2, "eip155:84532"]],
    );
    assert.equal(stack.usdc, USDC_ADDRESS);
  });

  test("the legacy x402-fetch@1 client pays a v1 402 body; the v1 facilitator settles it", async () => {
    const endpoint = await startPaidEndpoint(stack, { v1Network: "base-sepolia" });
    try {
      const payer = accounts.payers[0].address;
      const before = await stack.balanceOf(payer);
      const res = await (await legacyPayingFetch(stack, 0))(endpoint.url);
      assert.equal(res.status, 200);
      const receipt = decodeHeader(res.headers.get("x-payment-response"));
      assert.equal(receipt.success, true, JSON.stringify(receipt));
      assert.equal(receipt.network, "base-sepolia");
      assert.equal(await stack.balanceOf(payer), before - 10000n);
      assert.equal(stack.facilitator.settlements().at(-1).x402Version, 1);
    } finally {
      await endpoint.stop();
    }
  });
});

describe("the fault stand-in", () => {
  const body = { x402Version: 2, paymentPayload: { x402Version: 2, payload: { authorization: { from: "0x01" } } }, paymentRequirements: { network: "eip155:31337" } };

  for (const mode of FAULT_MODES) {
    test(mode, async () => {
      // receipt-lost passes calls on to a facilitator: here, one that records them.
      const forwarded = [];
      const real = http.createServer((req, res) => {
        forwarded.push(req.url);
        res.writeHead(200, { "content-type": "application/json" });
        res.end(JSON.stringify({ success: true, transaction: `0x${"ab".repeat(32)}`, network: "eip155:31337" }));
      });
      await new Promise((resolve) => real.listen(0, "127.0.0.1", resolve));
      const forwardTo = `http://127.0.0.1:${real.address().port}`;
      const f = await startFaultyFacilitator({ mode, forwardTo });
      try {
        if (mode === "receipt-lost") {
          const res = await fetch(`${f.url}/settle`, { method: "POST", body: JSON.stringify(body) });
          const answer = await res.json();
          assert.deepEqual(forwarded, ["/settle"], "the settlement was passed on");
          assert.equal(answer.success, false, "and reported lost");
          assert.equal(answer.errorReason, "unexpected_settle_error");
          return;
        }
        if (mode === "refuse") {
          await assert.rejects(fetch(`${f.url}/verify`, { method: "POST", body: "{}" }));
          return;
        }
        const supported = await (await fetch(`${f.url}/supported`)).json();
        assert.equal(supported.kinds[0].network, "eip155:31337");
        if (mode === "hang") {
          await assert.rejects(fetch(`${f.url}/verify`, { method: "POST", body: "{}", signal: AbortSignal.timeout(300) }));
          return;
        }
        const res = await fetch(`${f.url}/settle`, { method: "POST", body: JSON.stringify(body) });
        const text = await res.text();
        const expected = { http400: 400, "http400-plain": 400, http500: 500, garbage: 200, "wrong-shape": 200 }[mode];
        assert.equal(res.status, expected);
        if (mode === "garbage") assert.throws(() => JSON.parse(text));
        if (mode === "http400") assert.equal(JSON.parse(text).success, false);
        if (mode === "http400-plain") assert.equal(JSON.parse(text).errorType, "invalid_request");
        if (mode === "wrong-shape") assert.equal(JSON.parse(text).success, undefined);
      } finally {
        await f.stop();
        real.close();
      }
    });
  }
});
