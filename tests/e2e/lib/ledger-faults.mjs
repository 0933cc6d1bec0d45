// Named stand-ins, for faults the real ledger cannot produce on demand: the built Worker
// (`build/entry.mjs`, exactly as deployed) with more Durable Object classes, wallet ledgers that
// give no answer to one kind of command (as a ledger overloaded or being reset gives none) and hand
// every other command to the real one. A test binds LEDGER to one by name.
import { Ledger } from "../../../build/entry.mjs";

export * from "../../../build/entry.mjs";
export { default } from "../../../build/entry.mjs";

export class LedgerSilentOnImmediateAdmissions extends Ledger {
  command(text) {
    const admission = JSON.parse(text).admit?.admission;
    if (admission && !admission.held) throw new Error("stand-in: this ledger does not answer immediate admissions");
    return super.command(text);
  }
}

/** Loses the first outcome of an immediate settlement it is sent, unapplied and unanswered. */
export class LedgerLosesFirstOutcome extends Ledger {
  command(text) {
    if (JSON.parse(text).record && !this.lost) {
      this.lost = true;
      throw new Error("stand-in: this ledger lost the outcome");
    }
    return super.command(text);
  }
}

/** Gives no answer to the grant of a counted session (and records none). */
export class LedgerSilentOnGrants extends Ledger {
  command(text) {
    if (JSON.parse(text).set_grant) throw new Error("stand-in: this ledger does not answer grants");
    return super.command(text);
  }
}

/** Gives no answer when a counted session's request is to be spent (and spends nothing). */
export class LedgerSilentOnSpending extends Ledger {
  command(text) {
    if (JSON.parse(text).spend_grant) throw new Error("stand-in: this ledger does not answer spending");
    return super.command(text);
  }
}

/**
 * `env` with an X402_KV that refuses the operation `op` ("put", "delete") on keys starting with
 * `prefix` while the key `flag` holds "yes", as a KV write that fails does; everything else is the
 * real namespace.
 */
function refusing(env, op, prefix, flag) {
  const kv = env.X402_KV;
  const faulty = async (key, ...rest) => {
    if (String(key).startsWith(prefix) && (await kv.get(flag)) === "yes") throw new Error(`stand-in: KV refused the ${op}`);
    return kv[op](key, ...rest);
  };
  const proxy = new Proxy(kv, {
    get: (target, name) => (name === op ? faulty : Reflect.get(target, name).bind?.(target) ?? Reflect.get(target, name)),
  });
  return { ...env, X402_KV: proxy };
}

/** Its KV refuses to list a wallet (`wallet:` keys) while `stand-in:listing-fails` holds "yes". */
export class LedgerListingFails extends Ledger {
  constructor(ctx, env) {
    super(ctx, refusing(env, "put", "wallet:", "stand-in:listing-fails"));
  }
}

/** Its KV refuses to clear a wallet's debt (`delinquent:` keys) while `stand-in:blocklist-stuck` holds "yes". */
export class LedgerBlocklistStuck extends Ledger {
  constructor(ctx, env) {
    super(ctx, refusing(env, "delete", "delinquent:", "stand-in:blocklist-stuck"));
  }
}

/** Its KV refuses to blocklist a wallet (`delinquent:` keys) while `stand-in:blocklist-refused` holds "yes". */
export class LedgerBlocklistRefused extends Ledger {
  constructor(ctx, env) {
    super(ctx, refusing(env, "put", "delinquent:", "stand-in:blocklist-refused"));
  }
}

// The platform's limit on the calls one invocation makes (50 on the Workers Free plan), which
// workerd does not enforce: while a LedgerFewCalls alarm runs, `fetch` in this isolate makes
// `CALLS_PER_RUN` calls, then fails as the platform's does.
const CALLS_PER_RUN = 3;
let allowance = Infinity;
const platformFetch = globalThis.fetch;
globalThis.fetch = function (...args) {
  if (allowance <= 0) {
    return Promise.reject(new Error("stand-in: Too many subrequests by single Worker invocation."));
  }
  allowance -= 1;
  return platformFetch.apply(this, args);
};

/** Each run of its alarm may make CALLS_PER_RUN calls out (to the facilitator, to the chain). */
export class LedgerFewCalls extends Ledger {
  async alarm() {
    allowance = CALLS_PER_RUN;
    try {
      return await super.alarm();
    } finally {
      allowance = Infinity;
    }
  }
}
