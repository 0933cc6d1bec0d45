// A named stand-in, for faults the real KV cannot produce on demand: the built Worker
// (`build/entry.mjs`, exactly as deployed) handed an X402_KV whose deletions fail, whose
// listings lag (they show none of the keys written, as a listing in another location may for a
// minute) or fail, or whose reads of the list of wallets that owe (`delinquent:` keys) fail, while the
// test says so through `/__fault/kv?deletes=fail|work&list=stale|fail|fresh&debts=fail|work`, which
// only this stand-in answers. Everything else is the real namespace.
import Worker from "../../../build/entry.mjs";

export * from "../../../build/entry.mjs";

const faults = { deletesFail: false, listStale: false, listFails: false, debtsFail: false };

function faultyKv(kv) {
  return new Proxy(kv, {
    get(target, name) {
      if (name === "delete" && faults.deletesFail) return () => Promise.reject(new Error("stand-in: KV refuses deletions"));
      if (name === "list" && faults.listStale) return async () => ({ keys: [], list_complete: true });
      if (name === "list" && faults.listFails) return () => Promise.reject(new Error("stand-in: KV listing failed"));
      if (name === "get" && faults.debtsFail) {
        return (key, ...rest) => (String(key).startsWith("delinquent:") ? Promise.reject(new Error("stand-in: KV read failed")) : target.get(key, ...rest));
      }
      const value = Reflect.get(target, name);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

export default class KvFaults extends Worker {
  fetch(request) {
    const url = new URL(request.url);
    if (url.pathname === "/__fault/kv") {
      const q = url.searchParams;
      if (q.has("deletes")) faults.deletesFail = q.get("deletes") === "fail";
      if (q.has("list")) {
        faults.listStale = q.get("list") === "stale";
        faults.listFails = q.get("list") === "fail";
      }
      if (q.has("debts")) faults.debtsFail = q.get("debts") === "fail";
      return Response.json(faults);
    }
    return Worker.prototype.fetch.call({ env: { ...this.env, X402_KV: faultyKv(this.env.X402_KV) }, ctx: this.ctx }, request);
  }
}
