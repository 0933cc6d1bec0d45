// A named stand-in, for a fault the real KV cannot produce on demand: the built Worker
// (`build/entry.mjs`, exactly as deployed) handed an X402_KV whose deletions fail while
// `globalThis.kvDeletesFail` says so (toggled by the Worker's own requests to `/__fault/kv`,
// which only this stand-in answers). Everything else is the real namespace.
import Worker from "../../../build/entry.mjs";

export * from "../../../build/entry.mjs";

let deletesFail = false;

function faultyKv(kv) {
  return new Proxy(kv, {
    get(target, name) {
      if (name === "delete" && deletesFail) return () => Promise.reject(new Error("stand-in: KV refuses deletions"));
      const value = Reflect.get(target, name);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

export default class KvFaults extends Worker {
  fetch(request) {
    const url = new URL(request.url);
    if (url.pathname === "/__fault/kv") {
      deletesFail = url.searchParams.get("deletes") === "fail";
      return new Response(deletesFail ? "deletions fail" : "deletions work");
    }
    return Worker.prototype.fetch.call({ env: { ...this.env, X402_KV: faultyKv(this.env.X402_KV) }, ctx: this.ctx }, request);
  }
}
