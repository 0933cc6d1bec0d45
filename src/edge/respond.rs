//! Turning the core's replies into platform responses.

use worker::{Headers, Response, Result};

use crate::paywall::{self, Reply};

/// A reply the paywall wrote itself; to a HEAD request, without its body.
pub fn reply(reply: Reply, head: bool) -> Result<Response> {
    let headers = Headers::new();
    for (k, v) in &reply.headers {
        headers.set(k, v)?;
    }
    let response = if reply.body.is_empty() || head {
        Response::empty()?
    } else {
        Response::ok(reply.body)?
    };
    Ok(response.with_status(reply.status).with_headers(headers))
}

/// Adds receipt, CORS and no-store headers to an origin response being sold.
pub fn decorate(response: &mut Response, extra: Vec<(&'static str, String)>) {
    let headers = response.headers_mut();
    for (k, v) in paywall::common_headers().into_iter().chain(extra) {
        // The origin's own cookies stay: ours is added beside them.
        let _ = if k.eq_ignore_ascii_case("set-cookie") {
            headers.append(k, &v)
        } else {
            headers.set(k, &v)
        };
    }
}

/// The `/.well-known/x402` document: every priced resource with its terms.
pub fn discovery(config: &crate::config::Config, origin: &str, head: bool) -> Result<Response> {
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
