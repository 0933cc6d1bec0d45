// Signing payments by hand, with viem (an implementation independent of ours), for the cases the
// official client will not produce: tampered, expired, signed by the wrong key, over the wrong
// chain or token. Honest payments in the tests come from the official client itself.
import { randomBytes } from "node:crypto";
import { getAddress } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { TRANSFER_WITH_AUTHORIZATION as types } from "../../../scripts/lib/chain.mjs";

/**
 * Signs an EIP-3009 authorization for `terms` (one entry of accepts[]) as `key`, and returns the
 * v2 payment payload. `over` overrides authorization fields; `domain` overrides the EIP-712 domain.
 */
export async function signPayment(terms, key, { over = {}, domain = {}, resource } = {}) {
  const account = privateKeyToAccount(key);
  const now = Math.floor(Date.now() / 1000);
  const authorization = {
    from: account.address,
    to: getAddress(terms.payTo),
    value: terms.amount,
    validAfter: String(now - 600),
    validBefore: String(now + terms.maxTimeoutSeconds),
    nonce: `0x${randomBytes(32).toString("hex")}`,
    ...over,
  };
  const signature = await account.signTypedData({
    domain: {
      name: terms.extra.name,
      version: terms.extra.version,
      chainId: Number(terms.network.split(":")[1]),
      verifyingContract: terms.asset,
      ...domain,
    },
    types,
    primaryType: "TransferWithAuthorization",
    message: {
      ...authorization,
      value: BigInt(authorization.value),
      validAfter: BigInt(authorization.validAfter),
      validBefore: BigInt(authorization.validBefore),
    },
  });
  return {
    x402Version: 2,
    ...(resource ? { resource } : {}),
    accepted: terms,
    payload: { signature, authorization },
  };
}
