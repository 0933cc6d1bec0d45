// The configuration a publisher writes: the documented examples pass the check, broken ones are
// caught with a message naming the key, both by `scripts/check-config` before deploying and by the
// Worker itself on the first request.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, test } from "node:test";
import { ROOT, startWorker } from "./harness.mjs";

const check = (file) => {
  const r = spawnSync(path.join(ROOT, "scripts/check-config"), ["--config", file], { cwd: ROOT, encoding: "utf8" });
  return { status: r.status, out: r.stdout + r.stderr };
};

const dir = mkdtempSync(path.join(tmpdir(), "x402-config-"));
const base = readFileSync(path.join(ROOT, "wrangler.toml"), "utf8");
function broken(name, edit) {
  const file = path.join(dir, `${name.replace(/\W+/g, "-")}.toml`);
  writeFileSync(file, edit(base));
  return file;
}

describe("the documented examples", () => {
  for (const example of ["examples/news-site.toml", "examples/api.toml", "wrangler.toml"]) {
    test(`${example} passes the check`, () => {
      const r = check(path.join(ROOT, example));
      assert.equal(r.status, 0, r.out);
      assert.match(r.out, /^ok: \d+ route/);
      // The local template sells on the local chain, and says so; the examples sell on mainnets.
      if (example === "wrangler.toml") assert.match(r.out, /note: eip155:31337 is a test network/);
      else assert.doesNotMatch(r.out, /test network/);
      // Every example's deferred routes have a node to reconcile with.
      assert.doesNotMatch(r.out, /no rpc URL/);
    });
  }

  test("deferred payments without a node to read the chain with are pointed out", () => {
    const r = check(broken("deferred without rpc", (toml) => toml.replace(/\[vars\.X402\.rpc\]\n[^\[]*/, "")));
    assert.equal(r.status, 0, r.out);
    assert.match(r.out, /note: deferred payments on eip155:31337 have no rpc URL: .* a payer who cancels its authorization is not held owing; set rpc\."eip155:31337"/);
  });

  test("the production template's test network is pointed out", () => {
    const r = spawnSync(path.join(ROOT, "scripts/check-config"), ["--env", "production"], { cwd: ROOT, encoding: "utf8" });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /note: eip155:84532 is a test network: what it pays is faucet money/);
  });

  test("a description agents are never shown is pointed out, and the Worker still loads", () => {
    for (const [discovery, key] of [
      ['{ bodyType = "json" }', "routes[1].discovery.bodyType"],
      ['{ outputSchema = { type = "object" } }', "routes[1].discovery.outputSchema"],
    ]) {
      const r = check(broken(`unshown ${key}`, (toml) => toml.replace('mimeType = "application/json"', `mimeType = "application/json"\ndiscovery = ${discovery}`)));
      assert.equal(r.status, 0, r.out);
      assert.match(r.out, new RegExp(`note: ${key.replace(/[[\].]/g, "\\$&")} .*; agents are never shown it`));
    }
  });

  test("a test network without a v1 name (Arbitrum Sepolia, whose USDC is built in) is pointed out too", () => {
    const r = check(broken("arbitrum sepolia", (toml) => toml.replace('accepts = ["eip155:31337"]', 'accepts = ["eip155:31337", "eip155:421614"]')));
    assert.equal(r.status, 0, r.out);
    assert.match(r.out, /note: eip155:421614 is a test network: what it pays is faucet money/);
  });
});

describe("broken configurations are caught, naming the key", () => {
  const cases = [
    ["a price with too many decimals", (t) => t.replace('price = "$0.01"', 'price = "$0.0000001"'), "routes[0].price"],
    ["a price that is not one", (t) => t.replace('price = "$0.01"', 'price = "one cent"'), "routes[0].price"],
    ["a payTo that is not an address", (t) => t.replace('payTo = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"', 'payTo = "0x7099"'), "payTo"],
    ["a misspelt key", (t) => t.replace('price = "$0.01"', 'prise = "$0.01"'), "routes[0]"],
    ["a network nobody knows", (t) => t.replace('accepts = ["eip155:31337"]', 'accepts = ["eip155:31337", "ethereum-classic"]'), "accepts[1]"],
    ["a method that cannot be sold", (t) => t.replace('method = "GET"\npath = "/api/weather"', 'method = "FETCH"\npath = "/api/weather"'), "routes[1].method"],
    ["a path without a leading slash", (t) => t.replace('path = "/articles/*"', 'path = "articles/*"'), "routes[0].path"],
    ["a deferred route whose timeout cannot cover the batch", (t) => t.replace('settlement = "deferred"', 'settlement = "deferred"\nmaxTimeoutSeconds = 40'), "routes[1].maxTimeoutSeconds"],
    ["a session with both a duration and a count", (t) => t.replace('mimeType = "text/html"', 'mimeType = "text/html"\nsession = { seconds = 60, requests = 5 }'), "routes[0].session"],
    ["a facilitator URL that is not one", (t) => t.replace('url = "http://127.0.0.1:4021"', 'url = "127.0.0.1:4021"'), "facilitator.url"],
    ["a credit rule nobody knows", (t) => t.replace('credit = "earned"', 'credit = "trusting"'), "deferred.credit"],
    ["a credit limit in atomic units", (t) => t.replace('creditLimit = "$1.00"', 'creditLimit = "1000000"'), "deferred.creditLimit"],
    ["a custom token without its EIP-712 version", (t) => t.replace('version = "2"\ndecimals = 6', 'version = ""\ndecimals = 6'), "assets[0]"],
    ["an unknown body type for discovery", (t) => t.replace('mimeType = "application/json"', 'mimeType = "application/json"\ndiscovery = { bodyType = "xml" }'), "routes[1].discovery.bodyType"],
  ];
  for (const [name, edit, key] of cases) {
    test(name, () => {
      const r = check(broken(name, edit));
      assert.equal(r.status, 1, r.out);
      assert.match(r.out, new RegExp(`configuration error: X402\\.${key.replace(/[[\].]/g, "\\$&")}[.:\\[]`), r.out);
    });
  }

  test("the Worker itself refuses to run a broken configuration, naming the key, and serves nothing", async () => {
    const worker = await startWorker({
      config: { payTo: "0x70997970C51812dc3A010C7d01b50e0d17dc79C8", facilitator: { url: "http://127.0.0.1:9" }, routes: [{ path: "/x/*", price: "$0.0000001", accepts: ["base-sepolia"] }] },
    });
    try {
      for (const p of ["/x/1", "/anything"]) {
        const res = await worker.fetch(p);
        assert.equal(res.status, 500);
        const body = await res.json();
        assert.equal(body.reason, "paywall_misconfigured");
        assert.match(body.message, /X402\.routes\[0\]\.price/);
      }
    } finally {
      await worker.dispose();
    }
  });
});
