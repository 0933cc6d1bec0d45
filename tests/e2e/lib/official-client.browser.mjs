// The official x402 client as a web page bundles it: @x402/fetch with the exact EVM scheme, signing
// with a viem account. The browser test bundles this file with esbuild and serves it from a site on
// another origin than the Worker's (see paywall-page.test.mjs); it sets window.x402Pay.
import { wrapFetchWithPayment, x402Client } from "@x402/fetch";
import { registerExactEvmScheme } from "@x402/evm/exact/client";
import { privateKeyToAccount } from "viem/accounts";

window.x402Pay = async ({ url, privateKey, network, asset }) => {
  const client = new x402Client();
  registerExactEvmScheme(client, { signer: privateKeyToAccount(privateKey) });
  client.setSpendControls({ allowedAssets: [{ network, asset }] });
  try {
    const res = await wrapFetchWithPayment(fetch, client)(url);
    return { status: res.status, receipt: res.headers.get("PAYMENT-RESPONSE"), text: await res.text() };
  } catch (err) {
    return { error: String(err?.message ?? err) };
  }
};
