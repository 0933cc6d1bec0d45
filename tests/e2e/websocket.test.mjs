// WebSocket upgrades on priced paths, black-box: the built Worker in workerd, the real chain, USDC
// and facilitator, and a site whose pages under /live/, /later/ and /stream/ are WebSockets.
//
// A payment (or a session) on a priced path buys the connection: the upgrade is answered with the
// origin's socket and the receipt, and settled like any sold page. An upgrade the origin does not
// accept is not charged, and one payment never opens two sockets.
//
// The client is node:http with the handshake's headers and the payment's; the site answers the
// handshake itself (RFC 6455: the accept key, then one text frame), since Node has no WebSocket
// server of its own.
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import http from "node:http";
import { after, before, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { decodeHeader, encodeHeader, startStack, startWorker } from "./harness.mjs";
import { signPayment } from "./lib/sign.mjs";

const PRICE = 10000n; // "$0.01"
const TX = /^0x[0-9a-f]{64}$/;
const SECRET = randomBytes(32).toString("hex");
const GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

let stack, site, worker;

const acceptKey = (key) => createHash("sha1").update(key + GUID).digest("base64");

/** One unmasked text frame, as a server sends it (short messages only). */
function textFrame(text) {
  const payload = Buffer.from(text);
  return Buffer.concat([Buffer.from([0x81, payload.length]), payload]);
}

// A site whose every path is a WebSocket when asked for one: it accepts the upgrade and sends one
// message naming the path and the wallet it was told paid, except under a `/refuse/` segment (403,
// no socket). Asked without an upgrade, it answers a plain page. Records every upgrade it saw.
async function startSite() {
  const upgrades = [];
  const sockets = new Set();
  const server = http.createServer((req, res) => {
    res.writeHead(200, { "content-type": "text/plain" });
    res.end(`page ${new URL(req.url, "http://site.local").pathname} for ${req.headers["x402-payer"] ?? "nobody"}`);
  });
  server.on("upgrade", (req, socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.on("error", () => {});
    const path = new URL(req.url, "http://site.local").pathname;
    upgrades.push({ path, headers: { ...req.headers } });
    const key = req.headers["sec-websocket-key"];
    if (path.includes("/refuse/") || !key || req.headers.upgrade?.toLowerCase() !== "websocket") {
      socket.end("HTTP/1.1 403 Forbidden\r\ncontent-type: text/plain\r\ncontent-length: 7\r\nconnection: close\r\n\r\nrefused");
      return;
    }
    socket.write(
      "HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\n" +
        `sec-websocket-accept: ${acceptKey(key)}\r\n\r\n`,
    );
    socket.write(textFrame(`live ${path} for ${req.headers["x402-payer"] ?? "nobody"}`));
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    upgrades,
    stop: async () => {
      for (const s of sockets) s.destroy();
      const closed = new Promise((resolve) => server.close(resolve));
      server.closeAllConnections();
      await closed;
    },
  };
}

/**
 * Asks the Worker to upgrade `path` to a WebSocket, with `headers` besides the handshake's.
 * Resolves to { status: 101, headers, accepted (the accept key matches ours), message (the first
 * text frame) } or, when there is no upgrade, { status, headers, body }.
 */
function openSocket(path, headers = {}) {
  const key = randomBytes(16).toString("base64");
  return new Promise((resolve, reject) => {
    const req = http.request(new URL(path, worker.url), {
      headers: {
        connection: "Upgrade",
        upgrade: "websocket",
        "sec-websocket-key": key,
        "sec-websocket-version": "13",
        ...headers,
      },
    });
    req.on("upgrade", (res, socket, head) => {
      let buf = head;
      let done = false;
      const finish = (message) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        socket.destroy();
        resolve({ status: 101, headers: res.headers, accepted: res.headers["sec-websocket-accept"] === acceptKey(key), message });
      };
      const read = () => {
        const length = buf.length >= 2 ? buf[1] & 0x7f : Infinity;
        if (buf.length >= 2 + length) finish(buf.subarray(2, 2 + length).toString());
      };
      const timer = setTimeout(() => finish(null), 10_000);
      socket.on("data", (chunk) => {
        buf = Buffer.concat([buf, chunk]);
        read();
      });
      socket.on("error", () => finish(null));
      read();
    });
    req.on("response", (res) => {
      const chunks = [];
      res.on("data", (c) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString() }));
    });
    req.on("error", reject);
    req.end();
  });
}

const balances = (payerIndex) => stack.balances(payerIndex);
const assertMoved = (before, payerIndex, amount) => stack.assertMoved(before, payerIndex, amount);

/** The terms of a priced path, from its 402 (a plain GET). */
async function termsFor(p) {
  const res = await worker.fetch(p);
  assert.equal(res.status, 402);
  return decodeHeader(res.headers.get("payment-required")).accepts[0];
}

async function paymentFor(p, payerIndex) {
  const payload = await signPayment(await termsFor(p), stack.payer(payerIndex).privateKey);
  return { "payment-signature": encodeHeader(payload) };
}

const upgradesTo = (p) => site.upgrades.filter((u) => u.path === p).length;

before(async () => {
  [stack, site] = await Promise.all([startStack(), startSite()]);
  worker = await startWorker({
    config: stack.config({
      origin: site.url,
      deferred: { batchSeconds: 1, safetyMarginSeconds: 30, credit: "full" },
      routes: [
        { path: "/live/*", price: "$0.01", description: "A live feed" },
        { path: "/later/*", price: "$0.01", settlement: "deferred", description: "A live feed, settled later" },
        { path: "/stream/*", price: "$0.01", session: { scope: "/stream/*", seconds: 3600 }, description: "An hour of streams" },
      ],
    }),
    secrets: { X402_SESSION_SECRET: SECRET },
  });
});
after(async () => {
  await worker?.dispose();
  await Promise.all([site?.stop(), stack?.stop()]);
});

describe("WebSocket upgrades on priced paths", () => {
  test("an unpaid upgrade gets the terms, and the site never hears of it", async () => {
    const res = await openSocket("/live/unpaid");
    assert.equal(res.status, 402);
    assert.ok(res.headers["payment-required"], "the terms, as for any request");
    assert.equal(upgradesTo("/live/unpaid"), 0);
  });

  test("a paid upgrade opens the site's socket, carries its receipt, and is settled once", async () => {
    const payer = 0;
    const start = await balances(payer);
    const headers = await paymentFor("/live/room", payer);
    const res = await openSocket("/live/room", headers);
    assert.equal(res.status, 101, res.body);
    assert.ok(res.accepted, "the handshake completes with our key");
    assert.equal(res.message, `live /live/room for ${stack.payer(payer).address}`, "the site's socket, told who paid");
    const receipt = decodeHeader(res.headers["payment-response"]);
    assert.equal(receipt.success, true);
    assert.match(receipt.transaction, TX);
    await assertMoved(start, payer, PRICE);

    // The same payment again: refused before the site is asked, and nothing moves.
    const again = await openSocket("/live/room", headers);
    assert.equal(again.status, 402);
    assert.equal(JSON.parse(again.body).reason, "replayed_authorization");
    assert.equal(upgradesTo("/live/room"), 1, "one socket for one payment");
    await assertMoved(start, payer, PRICE);
  });

  test("an upgrade the site refuses is answered as the site answered, and not charged", async () => {
    const payer = 1;
    const start = await balances(payer);
    const res = await openSocket("/live/refuse/x", await paymentFor("/live/refuse/x", payer));
    assert.equal(res.status, 403);
    assert.equal(res.headers["payment-response"], undefined, "no receipt");
    assert.equal(upgradesTo("/live/refuse/x"), 1);
    await sleep(500);
    assert.deepEqual(await balances(payer), start);
  });

  test("on a deferred route, the socket opens at once and its payment lands on chain later", async () => {
    const payer = 2;
    const start = await balances(payer);
    const res = await openSocket("/later/feed", await paymentFor("/later/feed", payer));
    assert.equal(res.status, 101, res.body);
    assert.equal(res.message, `live /later/feed for ${stack.payer(payer).address}`);
    const receipt = decodeHeader(res.headers["payment-response"]);
    assert.equal(receipt.success, true);
    assert.equal(receipt.transaction, "", "settled later");
    const deadline = Date.now() + 20_000;
    while ((await balances(payer)).payer === start.payer && Date.now() < deadline) await sleep(200);
    await assertMoved(start, payer, PRICE);
  });

  test("a session's token opens sockets in its scope without paying again", async () => {
    const payer = 3;
    const start = await balances(payer);
    const bought = await openSocket("/stream/first", await paymentFor("/stream/first", payer));
    assert.equal(bought.status, 101, bought.body);
    const token = bought.headers["x402-session"];
    assert.ok(token, "the session's token comes with the paid upgrade");
    await assertMoved(start, payer, PRICE);

    const res = await openSocket("/stream/second", { authorization: `Bearer ${token}` });
    assert.equal(res.status, 101, res.body);
    assert.ok(res.accepted);
    assert.equal(res.message, `live /stream/second for ${stack.payer(payer).address}`);
    await assertMoved(start, payer, PRICE);
  });
});
