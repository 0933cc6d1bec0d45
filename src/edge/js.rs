//! Direct calls into the runtime where the SDK's wrappers cost bundle size and time.
//!
//! The SDK's `RequestInit` builds a full `cf` object (fifteen properties) on every request it
//! makes, its KV and storage wrappers pass every option and value through a general-purpose
//! serialiser, and writing a string to KV through it formats numbers as floating point. Together
//! that was about 40 KB of wasm, and work on every ledger command. What the paywall needs is
//! small: requests with a method, headers, a body and a deadline; text in and out of KV and
//! storage; one page of a KV listing.

use js_sys::{Array, Object, Promise, Reflect};
use std::cell::Cell;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use worker::wasm_bindgen_futures::JsFuture;
use worker::worker_sys::DurableObjectStorage;
use worker::Env;

/// An outgoing request, built as the runtime's own.
pub struct Outgoing<'a> {
    pub method: &'a str,
    pub headers: &'a web_sys::Headers,
    pub body: Option<&'a JsValue>,
    /// Redirects are handed back rather than followed (the origin's and key directories').
    pub manual_redirect: bool,
    pub timeout_ms: Option<u32>,
}

impl Outgoing<'_> {
    pub fn build(&self, url: &str) -> Result<web_sys::Request, JsValue> {
        let init = web_sys::RequestInit::new();
        init.set_method(self.method);
        init.set_headers(self.headers);
        if let Some(body) = self.body {
            init.set_body(body);
        }
        if self.manual_redirect {
            init.set_redirect(web_sys::RequestRedirect::Manual);
        }
        if let Some(ms) = self.timeout_ms {
            init.set_signal(Some(&web_sys::AbortSignal::timeout_with_u32(ms)));
        }
        web_sys::Request::new_with_str_and_init(url, &init)
    }
}

/// Sends a request with the runtime's `fetch`, and hands back its answer as the runtime made it:
/// the SDK's response type reads every part of it (`cf` included) into one of its own, and turning
/// that back into the runtime's builds the response a second time. Timed unless `cap` is infinite
/// (see `origin::forward_as`), `body` then held back until it has all come: `limit` ms for the
/// answer once it has, nothing past `cap` (ms since the epoch).
/// A timeout rejects with `"x402:body"` (the body was late, and cut off) or a sentence saying how
/// long the origin was given.
pub async fn fetch_by(
    request: &web_sys::Request,
    body: Option<&web_sys::ReadableStream>,
    limit: f64,
    cap: f64,
) -> Result<web_sys::Response, JsValue> {
    JsFuture::from(x402_fetch_by(request, body, limit, cap)?)
        .await?
        .dyn_into()
}

/// A copy of `source` without the headers `names` (one per line, in lower case, with hyphens),
/// whether the request spells them with hyphens or underscores (CGI-style servers read
/// `X_HTTP_Method_Override` as `X-HTTP-Method-Override`), and with `set` (name, value) if given:
/// one call into the runtime, where a copy, a deletion per name and a set would each be their own.
pub fn headers_without(
    source: &web_sys::Headers,
    names: &str,
    set: Option<(&str, &str)>,
) -> Result<web_sys::Headers, JsValue> {
    let (name, value) = set.map_or(("", None), |(n, v)| (n, Some(v)));
    x402_headers_without(source, names, name, value)
}

#[wasm_bindgen(
    inline_js = "export function x402_response(body, status, statusText, base, flat) {
  const response = new Response(body, base ? { status, statusText, headers: base.headers, webSocket: base.webSocket ?? undefined } : { status, statusText });
  const headers = response.headers;
  if (base) {
    for (const n of ['cdn-cache-control', 'cloudflare-cdn-cache-control', 'surrogate-control', 'edge-control']) headers.delete(n);
    if (body === null && base.body) { headers.delete('content-length'); base.body.cancel().catch(() => {}); }
  }
  const pairs = flat === '' ? [] : flat.split('\\n');
  for (let i = 0; i + 1 < pairs.length; i += 2) {
    const n = pairs[i].toLowerCase(), had = base && headers.get(n);
    try {
      if (n === 'set-cookie') headers.append(n, pairs[i + 1]);
      else if (had && n.startsWith('access-control-')) { if (n.endsWith('headers')) headers.set(n, had + ', ' + pairs[i + 1]); }
      else headers.set(n, pairs[i + 1]);
    } catch {}
  }
  return response;
}
export function x402_write(storage, calls) {
  return Promise.all(calls.map((c) => Array.isArray(c) ? storage.delete(c) : storage.put(c)));
}
export function x402_headers_without(source, names, name, value) {
  const headers = new Headers(source);
  const drop = new Set(names.split('\\n'));
  for (const n of [...headers.keys()]) if (drop.has(n.replaceAll('_', '-'))) headers.delete(n);
  if (value !== undefined) headers.set(name, value);
  return headers;
}
export function x402_keep(ctx, kv, key, response, ttl, limit, payer, route) {
  const copy = response.clone();
  ctx.waitUntil((async () => {
    const parts = [];
    let size = 0, why = '';
    try {
      if (copy.body) {
        const reader = copy.body.getReader();
        for (;;) {
          const { done, value } = await reader.read();
          if (done) break;
          size += value.byteLength;
          if (size > limit) { reader.cancel().catch(() => {}); why = `longer than ${limit} bytes`; break; }
          parts.push(value);
        }
      }
      if (!why) {
        const head = new TextEncoder().encode(JSON.stringify([copy.status, copy.statusText, [...copy.headers]]));
        const kept = new Uint8Array(4 + head.byteLength + size);
        new DataView(kept.buffer).setUint32(0, head.byteLength);
        kept.set(head, 4);
        let at = 4 + head.byteLength;
        for (const p of parts) { kept.set(p, at); at += p.byteLength; }
        await kv.put(key, kept, { expirationTtl: ttl });
      }
    } catch (e) {
      why = `not kept: ${e}`;
    }
    if (why) console.log(JSON.stringify({ amount: '', event: 'answer_not_kept', outcome: why, payer, route }));
  })());
}
export async function x402_kept(kv, key) {
  const kept = await kv.get(key, { type: 'arrayBuffer' });
  if (!kept || kept.byteLength < 4) return null;
  const n = new DataView(kept).getUint32(0);
  const [status, statusText, pairs] = JSON.parse(new TextDecoder().decode(new Uint8Array(kept, 4, n)));
  const headers = new Headers();
  for (const [k, v] of pairs) headers.append(k, v);
  const body = kept.byteLength > 4 + n ? new Uint8Array(kept, 4 + n) : null;
  return new Response(body, { status, statusText, headers });
}
const x402_over = new Map();
export async function x402_strike(env, key) {
  const limiter = env.X402_RATE_LIMIT;
  if (!limiter || typeof limiter.limit !== 'function' || (await limiter.limit({ key })).success) return;
  x402_over.delete(key);
  if (x402_over.size >= 4096) x402_over.delete(x402_over.keys().next().value);
  x402_over.set(key, Date.now());
}
const x402_memo = new Map();
export function x402_recall(key, seconds) {
  const m = x402_memo.get(key);
  return m && Date.now() - m[0] < seconds * 1000 ? m[1] : undefined;
}
export function x402_remember(key, value) {
  if (x402_memo.size >= 256) x402_memo.clear();
  x402_memo.set(key, [Date.now(), value]);
}
export function x402_barred(key, seconds) {
  const since = x402_over.get(key);
  if (since === undefined) return false;
  if (Date.now() - since < seconds * 1000) return true;
  x402_over.delete(key);
  return false;
}
export async function x402_drop_keys(kv, prefix, named) {
  const keys = new Set(named === '' ? [] : named.split('\\n'));
  let cursor;
  do {
    const page = await kv.list({ prefix, cursor });
    for (const k of page.keys) keys.add(k.name);
    cursor = page.list_complete ? undefined : page.cursor;
  } while (cursor);
  let held = 0;
  for (const key of keys) {
    if ((await kv.get(key)) !== null) held++;
    await kv.delete(key).catch(() => kv.delete(key));
  }
  return held;
}
export async function x402_fetch_by(request, body, limit, cap) {
  if (!Number.isFinite(cap)) {
    try {
      return await fetch(request);
    } catch (e) {
      throw /too many subrequests/i.test(e) ? `x402:limit (${e})` : e;
    }
  }
  const stop = new AbortController(), init = { signal: stop.signal };
  let timer, halt, answered = false, due = Date.now();
  const late = () => `the origin did not answer within ${Math.ceil(limit / 1000)} s`;
  const cut = (why) => { halt?.(why); halt = null; stop.abort(why); };
  const arm = (at, why) => { clearTimeout(timer); if (!answered) timer = setTimeout(() => cut(why), at - Date.now()); };
  if (body) {
    limit = Math.min(limit, cap - due - 1000);
    due = cap - limit;
    const length = request.headers.get('content-length');
    const { readable, writable } = /^\\d+$/.test(length ?? '') ? new FixedLengthStream(+length) : new TransformStream();
    const reader = body.getReader(), writer = writable.getWriter();
    halt = (why) => { reader.cancel(why).catch(() => {}); writer.abort(why).catch(() => {}); };
    init.body = readable;
    (async () => {
      const held = [];
      let size = 0;
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        held.push(value);
        size += value.byteLength;
        while (held.length > 1 && size > 1048576) {
          size -= held[0].byteLength;
          await writer.write(held.shift());
        }
      }
      if (!answered) {
        if (Date.now() >= due) return cut('x402:body');
        halt = null;
        arm(Date.now() + limit, late());
      }
      for (const v of held) await writer.write(v);
      return writer.close();
    })().catch((e) => halt?.(e));
  }
  if (body) arm(due, 'x402:body');
  else arm(Math.min(due + limit, cap), late());
  const end = () => { answered = true; clearTimeout(timer); };
  return fetch(new Request(request, init)).then(
    (r) => { end(); return r; },
    (e) => { end(); throw stop.signal.aborted ? stop.signal.reason : e; });
}
export function x402_elsewhere(location, base, origin) {
  try {
    const to = new URL(location, base).hostname;
    const near = (site) => { const h = new URL(site).hostname; return to === h || to.endsWith('.' + h) || h.endsWith('.' + to); };
    return location !== '' && !near(base) && !(origin && near(origin));
  } catch { return false; }
}
export function x402_sleep(ms) {
  return new Promise((wake) => setTimeout(wake, ms));
}
export async function x402_body_text(r, limit) {
  if (!r.body) return '';
  const reader = (r instanceof Request ? r.clone() : r).body.getReader();
  const parts = [];
  let size = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      size += value.byteLength;
      if (size > limit) { reader.cancel().catch(() => {}); return null; }
      parts.push(value);
    }
  } catch {}
  const decoder = new TextDecoder();
  return parts.map((p) => decoder.decode(p, { stream: true })).join('') + decoder.decode();
}"
)]
extern "C" {
    #[wasm_bindgen(catch)]
    fn x402_fetch_by(
        request: &web_sys::Request,
        body: Option<&web_sys::ReadableStream>,
        limit: f64,
        cap: f64,
    ) -> Result<Promise, JsValue>;
    #[wasm_bindgen(catch)]
    fn x402_body_text(request: &web_sys::Request, limit: u32) -> Result<Promise, JsValue>;
    #[wasm_bindgen(catch, js_name = x402_body_text)]
    fn x402_response_text(response: &web_sys::Response, limit: u32) -> Result<Promise, JsValue>;
    #[wasm_bindgen(catch)]
    fn x402_sleep(ms: u32) -> Result<Promise, JsValue>;
    fn x402_elsewhere(location: &str, base: &str, origin: &str) -> bool;
    #[wasm_bindgen(catch)]
    fn x402_strike(env: &JsValue, key: &str) -> Result<Promise, JsValue>;
    fn x402_barred(key: &str, seconds: u32) -> bool;
    fn x402_recall(key: &str, seconds: u32) -> Option<String>;
    fn x402_remember(key: &str, value: &str);
    #[wasm_bindgen(catch)]
    #[allow(clippy::too_many_arguments)]
    fn x402_keep(
        ctx: &JsValue,
        kv: &KvNamespace,
        key: &str,
        response: &web_sys::Response,
        ttl: u32,
        limit: u32,
        payer: &str,
        route: &str,
    ) -> Result<(), JsValue>;
    #[wasm_bindgen(catch)]
    fn x402_kept(kv: &KvNamespace, key: &str) -> Result<Promise, JsValue>;
    #[wasm_bindgen(catch)]
    fn x402_drop_keys(kv: &KvNamespace, prefix: &str, named: &str) -> Result<Promise, JsValue>;
    #[wasm_bindgen(catch)]
    fn x402_write(storage: &DurableObjectStorage, calls: &Array) -> Result<Promise, JsValue>;
    #[wasm_bindgen(catch)]
    fn x402_headers_without(
        source: &web_sys::Headers,
        names: &str,
        name: &str,
        value: Option<&str>,
    ) -> Result<web_sys::Headers, JsValue>;
    #[wasm_bindgen(catch)]
    fn x402_response(
        body: &JsValue,
        status: u16,
        status_text: &str,
        base: Option<&web_sys::Response>,
        flat: &str,
    ) -> Result<web_sys::Response, JsValue>;
}

/// A response built in one call into the runtime: `body` (text, a stream, or null), `status`,
/// the headers of `base` if given (and its WebSocket, for an upgrade it answered) but for those
/// that tell a shared cache to keep it (`CDN-Cache-Control` and the like, which a CDN in front of
/// the zone reads before `Cache-Control`) and, where its body is dropped, its length, then `headers`
/// set in order (`Set-Cookie` appended beside any already there; a header the runtime refuses is
/// left out rather than failing a response that may already be paid for). Each header set from
/// wasm would be its own crossing, with its name and value decoded one by one: the headers go
/// across as one text instead, a line per name and per value (a line break is never valid inside
/// either, and is replaced by a space).
pub fn response<'a>(
    body: &JsValue,
    status: u16,
    status_text: &str,
    base: Option<&web_sys::Response>,
    headers: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<web_sys::Response, JsValue> {
    let mut flat = String::new();
    for (i, part) in headers.into_iter().flat_map(|(k, v)| [k, v]).enumerate() {
        if i > 0 {
            flat.push('\n');
        }
        // Copied whole where it holds no line break (nearly always): char by char, the terms
        // header alone was 5% of a 402's CPU.
        if part.bytes().any(|b| b == b'\n' || b == b'\r') {
            flat.extend(part.chars().map(|c| match c {
                '\n' | '\r' => ' ',
                c => c,
            }));
        } else {
            flat.push_str(part);
        }
    }
    x402_response(body, status, status_text, base, &flat)
}

/// `base` with its status and headers but without its body ([`response`] without headers to set).
pub fn bodiless(base: &web_sys::Response) -> Result<web_sys::Response, JsValue> {
    x402_response(
        &JsValue::NULL,
        base.status(),
        &base.status_text(),
        Some(base),
        "",
    )
}

/// Headers with a bearer token when there is one, and a JSON content type for a body.
pub fn headers(json_body: bool, bearer: Option<&str>) -> Result<web_sys::Headers, JsValue> {
    let headers = web_sys::Headers::new()?;
    if json_body {
        headers.set("Content-Type", "application/json")?;
    }
    if let Some(t) = bearer {
        headers.set("Authorization", &format!("Bearer {t}"))?;
    }
    Ok(headers)
}

/// A JSON POST with an optional bearer token and deadline.
pub fn post_json(
    url: &str,
    body: &str,
    bearer: Option<&str>,
    timeout_ms: Option<u32>,
) -> Result<web_sys::Request, JsValue> {
    Outgoing {
        method: "POST",
        headers: &headers(true, bearer)?,
        body: Some(&JsValue::from_str(body)),
        manual_redirect: false,
        timeout_ms,
    }
    .build(url)
}

/// One JSON-RPC call to a chain node; the answer's text, or `None` when the node could not be
/// reached in 5 s.
pub async fn rpc(url: &str, body: &str) -> Option<String> {
    rpc_noting(url, body, &Cell::new(false)).await
}

/// [`rpc`], setting `refused` when the platform refused to make the call (its limit on the calls
/// of one invocation: the error carries [`crate::settlement::LIMIT_MARK`]).
pub async fn rpc_noting(url: &str, body: &str, refused: &Cell<bool>) -> Option<String> {
    let request = post_json(url, body, None, Some(5_000)).ok()?;
    match send(&request).await {
        Ok(response) => response_text(&response, u32::MAX).await,
        Err(e) => {
            if e.as_string()
                .is_some_and(|e| e.contains(crate::settlement::LIMIT_MARK))
            {
                refused.set(true);
            }
            None
        }
    }
}

/// A copy of the request's body as text, read no further than `limit` bytes: `None` if it is
/// longer. The request keeps its own body. A body that cannot be read reads as what was read.
pub async fn body_text(request: &web_sys::Request, limit: u32) -> Option<String> {
    text(x402_body_text(request, limit))
        .await
        .unwrap_or_else(|_| Some(String::new()))
}

/// Whether a redirect to `location` (absolute, or relative to the request's URL `base`) leads off
/// the site: to a host that is neither the request's nor the configured `origin`'s (empty: none),
/// nor a subdomain or parent domain of either (`example.com` and `www.example.com` are one site;
/// any scheme or port of a host is that host). A location that is no URL is not.
pub fn elsewhere(location: &str, base: &str, origin: &str) -> bool {
    x402_elsewhere(location, base, origin)
}

/// Waits `ms` milliseconds.
pub async fn sleep(ms: u32) {
    let _ = text(x402_sleep(ms)).await;
}

/// A response's body as text, read no further than `limit` bytes: `None` if it is longer, or
/// if the answer could not be read at all. A body that breaks off reads as what was read.
pub async fn response_text(response: &web_sys::Response, limit: u32) -> Option<String> {
    text(x402_response_text(response, limit))
        .await
        .ok()
        .flatten()
}

/// Sends a request with the runtime's `fetch`, untimed but for its own signal.
pub async fn send(request: &web_sys::Request) -> Result<web_sys::Response, JsValue> {
    fetch_by(request, None, f64::INFINITY, f64::INFINITY).await
}

/// Counts one against `key` with the Worker's `X402_RATE_LIMIT` binding; a key that this puts
/// over its limit is barred in this isolate (see [`barred`]). Nothing, without the binding or when
/// it fails.
pub async fn strike(env: &Env, key: &str) {
    let _ = text(x402_strike(env, key)).await;
}

/// Whether `key` went over its limit in this isolate less than `seconds` ago (the newest 4,096
/// such keys are remembered).
pub fn barred(key: &str, seconds: u32) -> bool {
    x402_barred(key, seconds)
}

/// What this isolate remembered under `key` less than `seconds` ago ([`remember`]).
pub fn recall(key: &str, seconds: u32) -> Option<String> {
    x402_recall(key, seconds)
}

/// Remembers `value` under `key` in this isolate, for [`recall`] (the newest 256 such values, forgotten
/// all at once past that).
pub fn remember(key: &str, value: &str) {
    x402_remember(key, value)
}

/// Waits for a promise that yields text (`undefined` and `null` read as `None`).
pub async fn text(promise: Result<Promise, JsValue>) -> Result<Option<String>, JsValue> {
    Ok(JsFuture::from(promise?).await?.as_string())
}

#[wasm_bindgen]
extern "C" {
    /// A Workers KV namespace, as the runtime hands it to the Worker.
    #[wasm_bindgen(extends = Object)]
    pub type KvNamespace;

    #[wasm_bindgen(method, catch, js_name = get)]
    fn get_text(this: &KvNamespace, key: &str) -> Result<Promise, JsValue>;
    #[wasm_bindgen(method, catch, js_name = put)]
    fn put_text(
        this: &KvNamespace,
        key: &str,
        value: &str,
        options: &JsValue,
    ) -> Result<Promise, JsValue>;
    #[wasm_bindgen(method, catch, js_name = delete)]
    fn delete_key(this: &KvNamespace, key: &str) -> Result<Promise, JsValue>;
    #[wasm_bindgen(method, catch, js_name = list)]
    fn list_page(this: &KvNamespace, options: &JsValue) -> Result<Promise, JsValue>;
}

/// The Worker's KV namespace under `binding`, if it has one.
pub fn kv(env: &Env, binding: &str) -> Option<KvNamespace> {
    let value = Reflect::get(env, &JsValue::from_str(binding)).ok()?;
    if value.is_object() {
        Some(value.unchecked_into())
    } else {
        None
    }
}

fn object(entries: &[(&str, JsValue)]) -> JsValue {
    let o = Object::new();
    for (k, v) in entries {
        let _ = Reflect::set(&o, &JsValue::from_str(k), v);
    }
    o.into()
}

impl KvNamespace {
    /// The text under `key`, `None` when there is none.
    pub async fn text(&self, key: &str) -> Result<Option<String>, JsValue> {
        text(self.get_text(key)).await
    }

    /// Stores `value` under `key`, to expire after `ttl_seconds` if given (KV's floor is 60 s).
    pub async fn put(
        &self,
        key: &str,
        value: &str,
        ttl_seconds: Option<u64>,
    ) -> Result<(), JsValue> {
        let options = match ttl_seconds {
            Some(ttl) => object(&[("expirationTtl", JsValue::from_f64(ttl as f64))]),
            None => JsValue::UNDEFINED,
        };
        JsFuture::from(self.put_text(key, value, &options)?).await?;
        Ok(())
    }

    /// Keeps a copy of a response whole (status, headers, body) under `key` for `ttl_seconds`,
    /// read to its end after the response has gone (the context's `waitUntil`): nothing is kept,
    /// and a log line says so, when its body is longer than `limit` bytes or KV refuses it.
    /// `payer` and `route` name it in that line.
    #[allow(clippy::too_many_arguments)]
    pub fn keep_response(
        &self,
        ctx: &JsValue,
        key: &str,
        response: &web_sys::Response,
        ttl_seconds: u32,
        limit: u32,
        payer: &str,
        route: &str,
    ) -> Result<(), JsValue> {
        x402_keep(ctx, self, key, response, ttl_seconds, limit, payer, route)
    }

    /// Deletes every one of `named` (which a listing, lagging writes, may not show yet) and every
    /// key KV lists under `prefix`: how many of them still held a value.
    pub async fn drop_keys(&self, prefix: &str, named: &[String]) -> Result<usize, JsValue> {
        let held = JsFuture::from(x402_drop_keys(self, prefix, &named.join("\n"))?).await?;
        Ok(held.as_f64().unwrap_or(0.0) as usize)
    }

    /// A response kept by [`KvNamespace::keep_response`], as a new response.
    pub async fn kept_response(&self, key: &str) -> Result<Option<web_sys::Response>, JsValue> {
        let kept = JsFuture::from(x402_kept(self, key)?).await?;
        match kept.is_null() {
            true => Ok(None),
            false => Ok(Some(kept.unchecked_into())),
        }
    }

    pub async fn delete(&self, key: &str) -> Result<(), JsValue> {
        JsFuture::from(self.delete_key(key)?).await?;
        Ok(())
    }

    /// One page of the keys under `prefix` (at most `limit`, else KV's own 1,000), and the
    /// cursor of the next page if there is one.
    pub async fn keys(
        &self,
        prefix: &str,
        cursor: Option<&str>,
        limit: Option<u32>,
    ) -> Result<(Vec<String>, Option<String>), JsValue> {
        let mut options = vec![("prefix", JsValue::from_str(prefix))];
        if let Some(c) = cursor {
            options.push(("cursor", JsValue::from_str(c)));
        }
        if let Some(n) = limit {
            options.push(("limit", JsValue::from(n)));
        }
        let page = JsFuture::from(self.list_page(&object(&options))?).await?;
        let field = |name: &str| Reflect::get(&page, &JsValue::from_str(name));
        let names = Array::from(&field("keys")?)
            .iter()
            .filter_map(|k| {
                Reflect::get(&k, &JsValue::from_str("name"))
                    .ok()?
                    .as_string()
            })
            .collect();
        let complete = field("list_complete")?.as_bool().unwrap_or(true);
        let next = if complete {
            None
        } else {
            field("cursor")?.as_string()
        };
        Ok((names, next))
    }
}

/// A Durable Object's stored value under `key`, as text (`None` when absent or not text).
pub async fn stored_text(
    storage: &DurableObjectStorage,
    key: &str,
) -> Result<Option<String>, JsValue> {
    text(storage.get(key)).await
}

/// A Durable Object's stored value under `key`, as a boolean (`None` when absent or not one).
pub async fn stored_bool(
    storage: &DurableObjectStorage,
    key: &str,
) -> Result<Option<bool>, JsValue> {
    Ok(JsFuture::from(storage.get(key)?).await?.as_bool())
}

/// Stores `value` under `key` in a Durable Object.
pub async fn store(
    storage: &DurableObjectStorage,
    key: &str,
    value: JsValue,
) -> Result<(), JsValue> {
    JsFuture::from(storage.put(key, value)?).await?;
    Ok(())
}

/// Makes every storage call of a write at once (a put of an object's entries, a delete of an
/// array's keys), which the runtime commits together.
pub async fn write(storage: &DurableObjectStorage, calls: &Array) -> Result<(), JsValue> {
    JsFuture::from(x402_write(storage, calls)?).await?;
    Ok(())
}

/// When the Durable Object's alarm is set for, in milliseconds since the epoch.
pub async fn alarm(storage: &DurableObjectStorage) -> Result<Option<i64>, JsValue> {
    let at = JsFuture::from(storage.get_alarm(Object::new())?).await?;
    Ok(at.as_f64().map(|ms| ms as i64))
}

pub async fn set_alarm(storage: &DurableObjectStorage, at_ms: i64) -> Result<(), JsValue> {
    let at = js_sys::Date::new(&JsValue::from_f64(at_ms as f64));
    JsFuture::from(storage.set_alarm(at, Object::new())?).await?;
    Ok(())
}

pub async fn delete_alarm(storage: &DurableObjectStorage) -> Result<(), JsValue> {
    JsFuture::from(storage.delete_alarm(Object::new())?).await?;
    Ok(())
}

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_namespace = ["crypto", "subtle"], js_name = importKey, catch)]
    fn import_key(
        format: &str,
        key: &[u8],
        algorithm: &JsValue,
        extractable: bool,
        usages: &Array,
    ) -> Result<Promise, JsValue>;
    #[wasm_bindgen(js_namespace = ["crypto", "subtle"], js_name = sign, catch)]
    fn subtle_sign(algorithm: &JsValue, key: &JsValue, data: &[u8]) -> Result<Promise, JsValue>;
    #[wasm_bindgen(js_namespace = ["crypto", "subtle"], js_name = verify, catch)]
    fn subtle_verify(
        algorithm: &str,
        key: &JsValue,
        signature: &[u8],
        data: &[u8],
    ) -> Result<Promise, JsValue>;
}

/// Ed25519 verification by the runtime's WebCrypto. A key that is not a curve point, or any other
/// failure, verifies nothing.
pub async fn ed25519_verify(public_key: &[u8; 32], signature: &[u8; 64], message: &[u8]) -> bool {
    let usages = Array::of1(&JsValue::from_str("verify"));
    let verified = async {
        let ed25519 = JsValue::from_str("Ed25519");
        let key = JsFuture::from(import_key("raw", public_key, &ed25519, false, &usages)?).await?;
        JsFuture::from(subtle_verify("Ed25519", &key, signature, message)?).await
    };
    verified.await.ok().and_then(|v| v.as_bool()) == Some(true)
}

/// Signs `data` with a private key in PKCS #8 by the runtime's WebCrypto: Ed25519, or ECDSA P-256
/// with SHA-256 (the signature as `r ‖ s`, as JWS wants it).
pub async fn sign(alg: crate::cdp::Alg, pkcs8: &[u8], data: &[u8]) -> Result<Vec<u8>, JsValue> {
    let (import, sign) = match alg {
        crate::cdp::Alg::EdDsa => (JsValue::from_str("Ed25519"), JsValue::from_str("Ed25519")),
        crate::cdp::Alg::Es256 => (
            js_sys::JSON::parse(r#"{"name":"ECDSA","namedCurve":"P-256"}"#)?,
            js_sys::JSON::parse(r#"{"name":"ECDSA","hash":"SHA-256"}"#)?,
        ),
    };
    let usages = Array::of1(&JsValue::from_str("sign"));
    let key = JsFuture::from(import_key("pkcs8", pkcs8, &import, false, &usages)?).await?;
    let signature = JsFuture::from(subtle_sign(&sign, &key, data)?).await?;
    Ok(js_sys::Uint8Array::new(&signature).to_vec())
}
