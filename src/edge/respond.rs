//! Turning the core's replies into platform responses.

use wasm_bindgen::JsValue;
use worker::Result;

use super::js;

use crate::paywall::{self, Reply};

/// A reply the paywall wrote itself; to a HEAD request, without its body. Built as the runtime's
/// own response: the SDK's would be copied into one on the way out (a tenth of a 402's CPU).
pub fn reply(reply: Reply, head: bool) -> Result<web_sys::Response> {
    let body = match reply.body.is_empty() || head {
        true => JsValue::NULL,
        false => JsValue::from_str(&reply.body),
    };
    let headers = reply.headers.iter().map(|(k, v)| (*k, v.as_str()));
    Ok(js::response(&body, reply.status, "", None, headers)?)
}

/// An origin response being sold, with receipt, CORS and no-store headers added: the same status
/// and body (still streaming) or WebSocket, the origin's headers, then ours (the origin's cookies
/// stay, ours are added beside them).
pub fn decorate(
    response: &web_sys::Response,
    extra: Vec<(&'static str, String)>,
) -> Result<web_sys::Response> {
    let common = paywall::common_headers();
    let headers = common.iter().chain(&extra).map(|(k, v)| (*k, v.as_str()));
    let body = response.body().map_or(JsValue::NULL, JsValue::from);
    let status_text = response.status_text();
    Ok(js::response(
        &body,
        response.status(),
        &status_text,
        Some(response),
        headers,
    )?)
}

/// `response` as only its reader's own browser may keep it (the CDNs' own headers dropped too): a
/// priced page let in free for this reader, which a shared cache would hand to those who must pay.
/// Revalidated on each use, or not kept at all where the origin said so.
pub fn private(response: &web_sys::Response) -> Result<web_sys::Response> {
    let said = response.headers().get("Cache-Control").ok().flatten();
    let cache = match said.is_some_and(|c| c.contains("no-store")) {
        true => "private, no-store",
        false => "private, no-cache",
    };
    let body = response.body().map_or(JsValue::NULL, JsValue::from);
    Ok(js::response(
        &body,
        response.status(),
        &response.status_text(),
        Some(response),
        [("Cache-Control", cache)],
    )?)
}

/// The `/.well-known/x402` document: every priced resource with its terms.
pub fn discovery(
    config: &crate::config::Config,
    origin: &str,
    head: bool,
) -> Result<web_sys::Response> {
    let doc = crate::discovery::document(config, origin);
    let mut headers = paywall::common_headers();
    headers.retain(|(k, _)| *k != "Cache-Control");
    headers.push(("Cache-Control", "public, max-age=300".into()));
    headers.push(("Content-Type", "application/json".into()));
    reply(
        Reply {
            status: 200,
            headers,
            body: doc.to_string(),
            reason: "",
        },
        head,
    )
}
