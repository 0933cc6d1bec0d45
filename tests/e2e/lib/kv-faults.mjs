// A named stand-in, for faults the real KV cannot produce on demand: the built Worker
// (`build/entry.mjs`, exactly as deployed) handed an X402_KV whose deletions fail, or whose
// listings lag (they show none of the keys written, as a listing in another location may for a
// minute), while the test says so through `/__fault/kv?deletes=fail|work&list=stale|fresh`, which
// only this stand-in answers. Everything else is the real namespace.
import Worker from "../../../build/entry.mjs";

export * from "../../../build/entry.mjs";

const faults = { deletesFail: false, listStale: false };

function faultyKv(kv) {
  return new Proxy(kv, {
    get(target, name) {
      if (name === "delete" && faults.deletesFail) return () => Promise.reject(new Error("stand-in: KV refuses deletions"));
      if (name === "list" && faults.listStale) return async () => ({ keys: [], list_complete: true });
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
      if (q.has("list")) faults.listStale = q.get("list") === "stale";
      return Response.json(faults);
    }
    return Worker.prototype.fetch.call({ env: { ...this.env, X402_KV: faultyKv(this.env.X402_KV) }, ctx: this.ctx }, request);
  }
}
