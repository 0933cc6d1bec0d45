// The reference: the official x402 middleware for Hono, as its documentation sets it up, in a
// Worker. Same priced route and price as x402-edge's benchmark configuration, same origin.
//
// One deviation from the documented set-up, forced by workerd: the resource server must be
// initialised inside a request. Built at module scope, its first protected request fails with
// "Disallowed operation called within global scope" (it fetches the facilitator's /supported), or
// later with "This promise was created by a request that has since ended". So the first request
// builds it, awaits `initialize()`, and every later request reuses the initialised middleware
// (created with syncFacilitatorOnStart = false, so it never awaits a promise of another request).
import { Hono } from "hono";
import { HTTPFacilitatorClient, x402HTTPResourceServer, x402ResourceServer } from "@x402/core/server";
import { paymentMiddlewareFromHTTPServer } from "@x402/hono";
import { ExactEvmScheme } from "@x402/evm/exact/server";

let middleware = null;

async function paywall(env) {
  if (middleware) return middleware;
  const facilitator = new HTTPFacilitatorClient({ url: env.FACILITATOR_URL });
  const server = new x402ResourceServer(facilitator).register(env.NETWORK, new ExactEvmScheme());
  const routes = {
    "GET /articles/*": {
      accepts: {
        scheme: "exact",
        network: env.NETWORK,
        payTo: env.PAY_TO,
        // A token the library does not know: price it as an asset amount, with the token's
        // EIP-712 domain in `extra`, exactly as the scheme's parsePrice accepts it.
        price: {
          amount: env.PRICE_ATOMIC,
          asset: env.ASSET,
          extra: { name: env.ASSET_NAME, version: env.ASSET_VERSION },
        },
        maxTimeoutSeconds: 300,
      },
      description: "One article of the demo newspaper",
      mimeType: "text/html",
    },
  };
  const httpServer = new x402HTTPResourceServer(server, routes);
  await httpServer.initialize();
  // Concurrent first requests may each build one; the last one wins, all of them work.
  middleware = paymentMiddlewareFromHTTPServer(httpServer, undefined, undefined, false);
  return middleware;
}

const app = new Hono();

app.use("*", async (c, next) => (await paywall(c.env))(c, next));

// Everything that gets past the paywall goes to the origin, as x402-edge sends it.
app.all("*", async (c) => {
  const incoming = new URL(c.req.url);
  const target = new URL(incoming.pathname + incoming.search, c.env.ORIGIN_URL);
  const headers = new Headers(c.req.raw.headers);
  headers.delete("payment-signature");
  headers.delete("x-payment");
  headers.delete("host");
  const body = ["GET", "HEAD"].includes(c.req.method) ? undefined : c.req.raw.body;
  const res = await fetch(target, { method: c.req.method, headers, body, redirect: "manual" });
  // A fetched response's headers are immutable; the middleware adds its receipt to them.
  return new Response(res.body, res);
});

export default app;
