// V8's sampling CPU profiler on a Worker running in workerd, through workerd's inspector (the Chrome
// DevTools Protocol over a WebSocket): `scripts/bench --profile` profiles session and free requests
// this way, `scripts/bench --compare BUILD --profile` the deferred payments of BUILD. The Worker's
// wasm functions are named in the profile only if the build kept its name section (see
// docs/benchmarks.md, "Profiling").

/** How often V8 samples the Worker's stack, in µs. */
const SAMPLING_INTERVAL_US = 50;

/**
 * Attaches to the one user Worker behind workerd's inspector on `port` and returns `start()` and
 * `stop()`; `stop()` resolves to the profile (V8's `Profiler.Profile`).
 */
export async function attachProfiler(port) {
  const targets = await (await fetch(`http://127.0.0.1:${port}/json/list`)).json();
  const target = targets.find((t) => t.id.startsWith("core:user:"));
  if (!target) throw new Error(`no Worker behind the inspector on port ${port}: ${targets.map((t) => t.id).join(", ")}`);
  const ws = new WebSocket(target.webSocketDebuggerUrl);
  await new Promise((resolve, reject) => {
    ws.onopen = resolve;
    ws.onerror = () => reject(new Error(`the inspector at ${target.webSocketDebuggerUrl} refused the connection`));
  });
  let next = 0;
  const waiting = new Map();
  ws.onmessage = (event) => {
    const msg = JSON.parse(event.data);
    const w = waiting.get(msg.id);
    if (!w) return;
    waiting.delete(msg.id);
    if (msg.error) w.reject(new Error(`${w.method}: ${msg.error.message}`));
    else w.resolve(msg.result);
  };
  const send = (method, params = {}) =>
    new Promise((resolve, reject) => {
      const id = ++next;
      waiting.set(id, { resolve, reject, method });
      ws.send(JSON.stringify({ id, method, params }));
    });
  await send("Profiler.enable");
  await send("Profiler.setSamplingInterval", { interval: SAMPLING_INTERVAL_US });
  return {
    start: () => send("Profiler.start"),
    async stop() {
      const { profile } = await send("Profiler.stop");
      ws.close();
      return profile;
    },
  };
}

/**
 * Self time per function, largest first: `[{ name, ms, share }]`, with the idle and
 * garbage-collector pseudo-functions under their own names.
 */
export function selfTimes(profile) {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const ms = new Map();
  const deltas = profile.timeDeltas;
  let total = 0;
  for (let i = 0; i < profile.samples.length; i++) {
    // Each sample's time is the gap to the next one (V8's own convention), but no more than a few
    // intervals: on a busy machine the thread may be descheduled between two samples, and that
    // wait is not the function's.
    const dt = Math.min(deltas[i + 1] ?? 0, 4 * SAMPLING_INTERVAL_US) / 1000;
    const node = byId.get(profile.samples[i]);
    if (!node) continue;
    const f = node.callFrame;
    const name = f.functionName || (f.url ? `(anonymous) ${f.url.split("/").pop()}:${f.lineNumber + 1}` : "(anonymous)");
    ms.set(name, (ms.get(name) ?? 0) + dt);
    total += dt;
  }
  const busy = total - (ms.get("(idle)") ?? 0);
  return [...ms.entries()]
    .map(([name, t]) => ({ name, ms: t, share: name === "(idle)" ? null : t / busy }))
    .sort((a, b) => b.ms - a.ms);
}
