// A named stand-in, for a fault the real ledger cannot produce on demand: the built Worker
// (`build/entry.mjs`, exactly as deployed) with one more Durable Object class, a wallet ledger that
// gives no answer to an immediate payment's admission (as a ledger overloaded or being reset gives
// none) and hands every other command to the real one. A test binds LEDGER to it by name.
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
