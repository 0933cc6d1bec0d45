//! Turning the core's replies into platform responses.

use worker::Result;

use crate::paywall::{self, Reply};

/// A reply the paywall wrote itself; to a HEAD request, without its body. Built as the runtime's
/// own response: the SDK's would be copied into one on the way out (a tenth of a 402's CPU).
pub fn reply(reply: Reply, head: bool) -> Result<web_sys::Response> {
    let headers = web_sys::Headers::new()?;
    for (k, v) in &reply.headers {
        headers.set(k, v)?;
    }
    let init = web_sys::ResponseInit::new();
    init.set_status(reply.status);
    init.set_headers(&headers);
    let body = (!reply.body.is_empty() && !head).then_some(reply.body.as_str());
    Ok(web_sys::Response::new_with_opt_str_and_init(body, &init)?)
}

/// Adds receipt, CORS and no-store headers to an origin response being sold.
pub fn decorate(response: &web_sys::Response, extra: Vec<(&'static str, String)>) {
    let headers = response.headers();
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
