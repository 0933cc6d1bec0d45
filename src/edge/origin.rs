//! Passing requests on to the origin.
//!
//! With `origin` configured, the request goes to that base URL with the same path, query, method,
//! headers and body; without it, the request continues to the zone's own origin (the Worker is
//! deployed on a route in front of it). Redirects are handed back to the client, not followed.

use std::future::{poll_fn, Future};
use std::pin::pin;
use std::task::Poll;
use std::time::Duration;

use wasm_bindgen::JsValue;
use worker::{Delay, Error, Headers, Result};

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
    send(config, req, url, None).await
}

/// A paid (or session) request: payment headers stripped, the wallet named. `deadline` gives the
/// origin's time, asked when the request is sent (when the returned future is first polled):
/// the limit in seconds, and the moment it ends (ms since the epoch), which may have been fixed
/// earlier (a payment must not wait on an origin longer than the ledger holds it uncharged). The
/// origin must answer (its headers; the body then streams as it comes) by then. A timeout is an
/// error, like an origin out of reach, and nobody pays for either. Requests on a session, where
/// no payment waits, go without a timer of their own (`None`: the platform's applies).
pub fn forward_as<'a>(
    config: &'a Config,
    req: web_sys::Request,
    url: &'a HttpUrl,
    wallet: &Address,
    deadline: impl FnOnce() -> Option<(u64, f64)> + 'a,
) -> impl Future<Output = Result<web_sys::Response>> + 'a {
    let wallet = checksum(wallet);
    async move { forward_by(config, req, url, wallet, deadline()).await }
}

/// The deadline `seconds` from now: what [`forward_as`] takes.
pub fn from_now(seconds: u64) -> (u64, f64) {
    let seconds = seconds.max(1);
    (seconds, js_sys::Date::now() + seconds as f64 * 1000.0)
}

/// [`forward_as`], given the limit in seconds and the deadline it sets (ms since the epoch).
async fn forward_by(
    config: &Config,
    req: web_sys::Request,
    url: &HttpUrl,
    wallet: String,
    limit: Option<(u64, f64)>,
) -> Result<web_sys::Response> {
    let answer = send(config, req, url, Some(wallet));
    let Some((limit_seconds, deadline_ms)) = limit else {
        return answer.await;
    };
    let left = Duration::from_millis((deadline_ms - js_sys::Date::now()).max(0.0) as u64);
    let mut answer = pin!(answer);
    let mut deadline = pin!(Delay::from(left));
    poll_fn(|cx| {
        if let Poll::Ready(r) = answer.as_mut().poll(cx) {
            return Poll::Ready(r);
        }
        if deadline.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Err(Error::RustError(format!(
                "the origin did not answer within {limit_seconds} s"
            ))));
        }
        Poll::Pending
    })
    .await
}

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
        _ => req.body().map(JsValue::from),
    };
    let outgoing = super::js::Outgoing {
        method: &method,
        headers: &headers.0,
        body: body.as_ref(),
        manual_redirect: true,
        timeout_ms: None,
    }
    .build(&target)?;
    Ok(super::js::fetch(&outgoing).await?)
}
