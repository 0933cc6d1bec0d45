//! Passing requests on to the origin.
//!
//! With `origin` configured, the request goes to that base URL with the same path, query, method,
//! headers and body; without it, the request continues to the zone's own origin (the Worker is
//! deployed on a route in front of it). Redirects are handed back to the client, not followed.

use std::future::Future;

use worker::{Headers, Result};

use crate::config::Config;
use crate::evm::Address;
use crate::siwx::HttpUrl;

/// Request headers that carry payments and sign-in proofs. The origin never sees them, used or
/// not: a payment not settled, or a proof whose nonce was not spent here, is a credential that
/// anyone who reads the origin's logs could still present.
const PAYMENT_HEADERS: [&str; 3] = ["payment-signature", "x-payment", "sign-in-with-x"];
/// Headers by which some frameworks (Express's `method-override`, ASP.NET Core, Symfony) let a
/// `POST` be served as another method. Routes are priced by the method as sent, so the origin
/// must serve that method: `POST` with `X-HTTP-Method-Override: GET` must not reach a `GET`
/// priced for its own method.
const METHOD_OVERRIDE_HEADERS: [&str; 3] = [
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
];
/// Headers by which some frameworks (Symfony before 2.8.43, Zend, IIS's URL Rewrite) let a
/// request name another path than its own: `GET /` with `X-Original-URL: /articles/x` would be
/// priced as `/` and served as the article.
const URL_OVERRIDE_HEADERS: [&str; 2] = ["x-original-url", "x-rewrite-url"];
/// Header telling the origin who paid (set only by us: any incoming copy is removed).
pub const PAYER_HEADER: &str = "x402-payer";

/// An unpriced request, untouched (but for a forged payer header in either spelling, our own
/// session token, payment and sign-in headers, Web Bot Auth signatures and method overrides), and
/// the origin's answer as it came.
pub async fn pass(
    config: &Config,
    req: web_sys::Request,
    url: &HttpUrl,
) -> Result<web_sys::Response> {
    send(config, req, url, None, None).await
}

/// A paid (or session) request: payment headers stripped, the wallet named. `deadline` gives the
/// origin's time, asked when the request is sent (when the returned future is first polled): how
/// long the origin has to answer (its headers; the body then streams as it comes) once it holds
/// the whole request, in ms, and the moment nothing may wait past (ms since the epoch), which may
/// have been fixed earlier (a payment must not wait on an origin longer than the ledger holds it
/// uncharged). The client's upload does not come out of the origin's time: a client that held
/// back its body's end until just before a deadline would otherwise have the origin's work done
/// (the request reached it whole) and be answered a timeout, its payment withdrawn. The body is
/// held back until it has all come (its first MiB whole; past that, its newest chunk), since an
/// origin may act on a body before its end (a JSON decoder stops at the value's end), and must
/// have come by the moment that leaves the origin its whole time (at least a second after the
/// request is sent), or the upload is cut off, the origin never getting it whole: [`BODY_LATE`].
/// An origin that answers before the body has come is not cut off. A timeout is an error, like an
/// origin out of reach, and nobody pays for either.
/// Requests on a session, where no payment waits, go without a timer of their own (`None`: the
/// platform's applies).
pub fn forward_as<'a>(
    config: &'a Config,
    req: web_sys::Request,
    url: &'a HttpUrl,
    wallet: &Address,
    deadline: impl FnOnce() -> Option<(f64, f64)> + 'a,
) -> impl Future<Output = Result<web_sys::Response>> + 'a {
    let wallet = checksum(wallet);
    async move { send(config, req, url, Some(wallet), deadline()).await }
}

/// What a paid request's answer fails with when its body did not reach the origin in time.
pub const BODY_LATE: &str = "x402:body";

/// The wallet as the origin is told it (EIP-55), remembered for the last wallet: a Keccak hash per
/// request otherwise, for the same few wallets on their sessions.
fn checksum(wallet: &Address) -> String {
    thread_local! {
        static LAST: std::cell::RefCell<Option<(Address, String)>> =
            const { std::cell::RefCell::new(None) };
    }
    LAST.with(|last| {
        let mut last = last.borrow_mut();
        match last.as_ref() {
            Some((w, text)) if w == wallet => text.clone(),
            _ => {
                let text = wallet.to_checksum();
                *last = Some((*wallet, text.clone()));
                text
            }
        }
    })
}

async fn send(
    config: &Config,
    req: web_sys::Request,
    url: &HttpUrl,
    payer: Option<String>,
    deadline: Option<(f64, f64)>,
) -> Result<web_sys::Response> {
    let target = match &config.origin {
        Some(base) => {
            let mut t = format!("{base}{}", url.path);
            if let Some(q) = &url.query {
                t.push('?');
                t.push_str(q);
            }
            t
        }
        None => req.url(),
    };
    let source = Headers(req.headers());
    // What the origin must not see, deleted from a copy in one call into the runtime, in any
    // spelling with underscores for hyphens, which CGI-style servers (Puma, PHP's) read as the same
    // name (`HTTP_X402_PAYER`, `HTTP_X_HTTP_METHOD_OVERRIDE`). Only we may say who paid: the
    // origin trusts this header, so a client's copy never passes.
    let mut dropped = PAYER_HEADER.to_string();
    for h in PAYMENT_HEADERS
        .iter()
        .chain(&METHOD_OVERRIDE_HEADERS)
        .chain(&URL_OVERRIDE_HEADERS)
    {
        dropped.push('\n');
        dropped.push_str(h);
    }
    // Our session token is a credential for this paywall only: the origin never sees it, on paid
    // and free requests alike (the cookie goes out with every page of the site).
    let auth = source.get("authorization")?;
    if crate::session::bearer_token(auth.as_deref()).is_some() {
        dropped.push_str("\nauthorization");
    }
    // A Web Bot Auth signature covers the site, not the request: were the origin to log it, anyone
    // reading the log could pass for that crawler here until it expires. (Other message
    // signatures are the origin's own business, and pass.)
    if source
        .get("signature-input")?
        .is_some_and(|s| s.contains("web-bot-auth"))
    {
        dropped.push_str("\nsignature\nsignature-input\nsignature-agent");
    }
    let mut cookie_kept = None;
    if let Some(cookie) = source.get("cookie")? {
        let pairs: Vec<&str> = cookie.split(';').map(str::trim).collect();
        let kept: Vec<&str> = pairs
            .iter()
            .copied()
            .filter(|c| !crate::session::is_session_cookie(c))
            .collect();
        if kept.len() < pairs.len() {
            dropped.push_str("\ncookie");
            if !kept.is_empty() {
                cookie_kept = Some(kept.join("; "));
            }
        }
    }
    let set = payer.as_deref().map(|p| (PAYER_HEADER, p));
    let headers = Headers(super::js::headers_without(&source.0, &dropped, set)?);
    // Only where the session cookie came among the site's own (rare): one call more.
    if let Some(kept) = &cookie_kept {
        headers.set("cookie", kept)?;
    }
    // The method exactly as sent (the SDK's own type would turn PROPFIND or PURGE into GET).
    let method = req.method();
    let body = match method.as_str() {
        "GET" | "HEAD" => None,
        _ => req.body(),
    };
    // Untimed (a session's request): the body goes as it is, no deadline set.
    let (limit, cap) = deadline.unwrap_or((f64::INFINITY, f64::INFINITY));
    let timed = cap.is_finite();
    let outgoing = super::js::Outgoing {
        method: &method,
        headers: &headers.0,
        body: body.as_ref().filter(|_| !timed).map(AsRef::as_ref),
        manual_redirect: true,
        timeout_ms: None,
    }
    .build(&target)?;
    let body = body.as_ref().filter(|_| timed);
    Ok(super::js::fetch_by(&outgoing, body, limit, cap).await?)
}
