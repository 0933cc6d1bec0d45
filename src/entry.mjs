// The Worker's entry module: the Rust Worker as `worker-build` emits it (`index.js` beside this
// file once the build has copied it into `build/`), with one addition. The runtime opens a Durable
// Object to RPC only if its class extends `DurableObject`, which the class `worker-build` exports
// does not; this one does, and hands every call to it. The Worker then asks a wallet's ledger by
// calling `command(text)` instead of sending it an HTTP request (see `src/edge/ledger_client.rs`).
import { DurableObject } from "cloudflare:workers";
import { Ledger as Book } from "./index.js";

export { default, Stats } from "./index.js";

export class Ledger extends DurableObject {
  constructor(ctx, env) {
    super(ctx, env);
    this.book = new Book(ctx, env);
  }

  fetch(request) {
    return this.book.fetch(request);
  }

  alarm() {
    return this.book.alarm();
  }

  command(text) {
    return this.book.command(text);
  }
}
