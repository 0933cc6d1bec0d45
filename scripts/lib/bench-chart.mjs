// The benchmark's chart: a hand-written SVG of horizontal bar panels, one per measure, each with its
// own scale and, where the issue sets one, the target drawn as a dashed line.
//
//   renderSvg(results) → string   (results: what scripts/lib/bench.mjs writes to bench.json)

const WIDTH = 860;
const LABEL_W = 220;
const BAR_H = 18;
const GAP = 6;
const PANEL_PAD = 44;
const VALUE_W = 120;
const COLORS = {
  origin: "#9aa5b1",
  empty: "#c3ccd5",
  reference: "#6b7785",
  immediate: "#f38020",
  deferred: "#c4480f",
  session: "#8f2d0a",
  wasm: "#f38020",
  native: "#6b7785",
};

const esc = (s) => String(s).replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]);
const num = (n, d = 0) => (n == null || Number.isNaN(n) ? "n/a" : n.toLocaleString("en-US", { maximumFractionDigits: d, minimumFractionDigits: d }));

/**
 * One panel: `bars` = [{ label, value, color, note? }] (note: shown instead of a missing value),
 * `unit` for the value labels, `target` =
 * { value, label } drawn as a dashed line. Returns { svg, height }.
 */
function panel(y, title, bars, { unit, digits = 0, target } = {}) {
  const shown = bars.filter((b) => b.value != null);
  const max = Math.max(1e-9, ...shown.map((b) => b.value), target?.value ?? 0) * 1.05;
  const plotW = WIDTH - LABEL_W - VALUE_W - 20;
  const x = (v) => LABEL_W + (v / max) * plotW;
  const parts = [`<text x="12" y="${y + 18}" class="title">${esc(title)}</text>`];
  let row = y + 30;
  for (const b of bars) {
    parts.push(`<text x="${LABEL_W - 8}" y="${row + BAR_H - 5}" class="label" text-anchor="end">${esc(b.label)}</text>`);
    if (b.value == null) {
      parts.push(`<text x="${LABEL_W + 4}" y="${row + BAR_H - 5}" class="na">${esc(b.note ?? "n/a")}</text>`);
    } else {
      const w = Math.max(1, x(b.value) - LABEL_W);
      parts.push(`<rect x="${LABEL_W}" y="${row}" width="${w.toFixed(1)}" height="${BAR_H}" fill="${b.color}" rx="2"/>`);
      parts.push(`<text x="${(LABEL_W + w + 6).toFixed(1)}" y="${row + BAR_H - 5}" class="value">${esc(`${num(b.value, digits)} ${unit}`)}</text>`);
    }
    row += BAR_H + GAP;
  }
  if (target?.value != null) {
    const tx = x(target.value).toFixed(1);
    parts.push(`<line x1="${tx}" y1="${y + 26}" x2="${tx}" y2="${row - GAP + 4}" class="target"/>`);
    parts.push(`<text x="${tx}" y="${row + 10}" class="targetLabel" text-anchor="middle">${esc(target.label)}</text>`);
    row += 12;
  }
  return { svg: parts.join("\n"), height: row - y + PANEL_PAD - 26 };
}

export function renderSvg(r) {
  const sess = r.session ?? {};
  const sessNote = sess.available ? undefined : `n/a: ${truncate(sess.why ?? "", 60)}`;
  const panels = [];

  const refUnpaid = r.reference.unpaid.rps;
  panels.push([
    "Unpaid requests answered 402 (requests/s, higher is better)",
    [
      { label: "empty Worker (floor)", value: r.empty?.unpaid.rps ?? null, color: COLORS.empty },
      { label: "reference (@x402/hono)", value: refUnpaid, color: COLORS.reference },
      { label: "x402-edge immediate", value: r.immediate.unpaid.rps, color: COLORS.immediate },
      { label: "x402-edge deferred", value: r.deferred.unpaid.rps, color: COLORS.deferred },
      { label: "x402-edge session", value: sess.unpaid?.rps ?? null, color: COLORS.session, note: sessNote },
    ],
    { unit: "req/s", target: { value: refUnpaid * 3, label: "target: 3× reference" } },
  ]);

  panels.push([
    "Free pass-through to the origin (requests/s, higher is better)",
    [
      { label: "origin alone", value: r.origin.free.rps, color: COLORS.origin },
      { label: "empty Worker (floor)", value: r.empty?.free.rps ?? null, color: COLORS.empty },
      { label: "reference (@x402/hono)", value: r.reference.free.rps, color: COLORS.reference },
      { label: "x402-edge immediate", value: r.immediate.free.rps, color: COLORS.immediate },
      { label: "x402-edge deferred", value: r.deferred.free.rps, color: COLORS.deferred },
      { label: "x402-edge session", value: sess.free?.rps ?? null, color: COLORS.session, note: sessNote },
    ],
    { unit: "req/s" },
  ]);

  const cpu = (m) => m?.serverCpuUsPerRequest ?? null;
  panels.push([
    "workerd CPU per request (µs, lower is better)",
    [
      { label: "402: empty Worker", value: cpu(r.empty?.unpaid), color: COLORS.empty },
      { label: "402: reference", value: cpu(r.reference.unpaid), color: COLORS.reference },
      { label: "402: x402-edge", value: cpu(r.immediate.unpaid), color: COLORS.immediate },
      { label: "free: empty Worker", value: cpu(r.empty?.free), color: COLORS.empty },
      { label: "free: reference", value: cpu(r.reference.free), color: COLORS.reference },
      { label: "free: x402-edge", value: cpu(r.immediate.free), color: COLORS.immediate },
      { label: "KV read + pass: empty Worker", value: cpu(r.empty?.kv), color: COLORS.empty },
      { label: "session: x402-edge", value: sess.available ? cpu(sess.session) : null, color: COLORS.session, note: sessNote },
    ],
    { unit: "µs" },
  ]);

  const paidRows = [];
  const floor = r.empty?.durableObject?.sequential;
  if (floor) paidRows.push({ label: "floor: DO write + origin p50", value: floor.p50, color: COLORS.empty });
  for (const [label, m, color] of [
    ["reference", r.reference.paid, COLORS.reference],
    ["x402-edge immediate", r.immediate.paid, COLORS.immediate],
    ["x402-edge deferred", r.deferred.paid, COLORS.deferred],
    ["x402-edge session", sess.paid, COLORS.session],
  ]) {
    paidRows.push({ label: `${label} p50`, value: m?.p50 ?? null, color, note: m ? undefined : sessNote });
    if (m) {
      paidRows.push({ label: "p90", value: m.p90, color: `${color}b0` });
      paidRows.push({ label: "p99", value: m.p99, color: `${color}70` });
    }
  }
  panels.push([
    "Paid requests, each with a fresh pre-signed payment, one after another (ms, lower is better)",
    paidRows,
    { unit: "ms", digits: 1, target: { value: r.reference.paid.p50 / 10, label: "target: deferred p50 ≤ reference p50 / 10" } },
  ]);

  panels.push([
    "Requests on a session vs free pass-through, same Worker (requests/s)",
    [
      { label: "floor: pass-through", value: r.empty?.free.rps ?? null, color: COLORS.empty },
      { label: "floor: KV read + pass-through", value: r.empty?.kv?.rps ?? null, color: COLORS.empty },
      { label: "x402-edge free pass-through", value: sess.available ? sess.free.rps : null, color: COLORS.origin, note: sessNote },
      { label: "x402-edge session requests", value: sess.available ? sess.session.rps : null, color: COLORS.session, note: sessNote },
    ],
    { unit: "req/s", target: sess.available ? { value: sess.free.rps * 0.8, label: "target: ≥ 80% of free" } : undefined },
  ]);

  const v = r.verification ?? { wasm: {}, native: {} };
  panels.push([
    "One payment verification (spec example through paywall::decide, µs, lower is better)",
    [
      { label: "wasm (V8, as in workerd)", value: v.wasm.usPerVerification, color: COLORS.wasm },
      { label: "native", value: v.native.usPerVerification, color: COLORS.native },
    ],
    { unit: "µs", target: { value: 250, label: "target: ≤ 250 µs in wasm" } },
  ]);

  panels.push([
    "Bundle (KB)",
    [
      { label: "uploaded, raw", value: r.bundle.uploadBytes / 1024, color: COLORS.native },
      { label: "uploaded, gzip", value: r.bundle.uploadGzipBytes / 1024, color: COLORS.immediate },
      { label: "wasm alone, gzip -9", value: r.bundle.gzipBytes / 1024, color: COLORS.wasm },
    ],
    { unit: "KB", target: { value: 300, label: "target: ≤ 300 KB gzipped" } },
  ]);

  let y = 56;
  const body = [];
  for (const [title, bars, opts] of panels) {
    const p = panel(y, title, bars, opts);
    body.push(p.svg);
    y += p.height;
  }
  const legend = (r.targets ?? [])
    .map((t, i) => `<text x="12" y="${y + 16 + i * 16}" class="${t.met == null ? "na" : t.met ? "met" : "missed"}">${esc(`${t.met == null ? "n/a" : t.met ? "MET" : "MISSED"}  ${t.target}: ${t.measured}`)}</text>`)
    .join("\n");
  const height = y + 16 * (r.targets?.length ?? 0) + 24;
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" font-family="system-ui, -apple-system, Segoe UI, sans-serif">
<style>
  .h1 { font-size: 17px; font-weight: 600; fill: #1f2933; }
  .sub { font-size: 11.5px; fill: #52606d; }
  .title { font-size: 13px; font-weight: 600; fill: #1f2933; }
  .label { font-size: 12px; fill: #323f4b; }
  .value { font-size: 12px; fill: #1f2933; }
  .note, .na { font-size: 11px; fill: #7b8794; font-style: italic; }
  .target { stroke: #d64545; stroke-width: 1.5; stroke-dasharray: 4 3; }
  .targetLabel { font-size: 10.5px; fill: #d64545; }
  .met { font-size: 12px; fill: #207245; }
  .missed { font-size: 12px; fill: #b42318; font-weight: 600; }
</style>
<rect width="100%" height="100%" fill="#ffffff"/>
<text x="12" y="24" class="h1">x402-edge vs the official @x402/hono middleware, both in workerd</text>
<text x="12" y="42" class="sub">${esc(`${r.date.slice(0, 16).replace("T", " ")} UTC · ${r.machine.cpus} × ${r.machine.cpuModel} · loopback · anvil + USDC + official facilitator · autocannon ${r.settings.connections} connections × ${r.settings.durationS} s · ${r.settings.payments} payments`)}</text>
${body.join("\n")}
${legend}
</svg>
`;
}

function truncate(s, n) {
  return s.length > n ? `${s.slice(0, n - 1)}…` : s;
}
