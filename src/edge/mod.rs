//! The Cloudflare shell: turns a `worker::Request` into the core's input, performs the I/O the
//! core asks for (facilitator, origin), and turns the core's decisions into `worker::Response`s.
//!
//! Nothing here decides anything about money; it only carries. Every error of the platform is
//! turned into a clear JSON answer rather than an exception, so no client ever sees a bare 500 from
//! the runtime.

mod access;
mod admin;
mod bots;
mod facilitator;
mod js;
mod ledger;
mod ledger_client;
mod origin;
mod respond;
mod stats;

use ledger_client::AdmitRefusal;

use std::cell::{Cell, RefCell};
use std::future::{poll_fn, Future};
use std::pin::{pin, Pin};
use std::rc::Rc;
use std::task::{Poll, Waker};

use futures_util::future::{maybe_done, MaybeDone};

use worker::{event, Context, Env, Headers, Request, Result, ScheduleContext, ScheduledEvent};

use crate::config::{Access, Config, LogLevel, OverCredit, SettlementMode};
use crate::crawlers::{self, Class};
use crate::facilitator::{SettleOutcome, VerifyOutcome};
use crate::page;
use crate::paywall::{self, Decision, Incoming, PaidRequest};
use crate::policy;
use crate::reason::{Reason, Refusal};
use crate::siwx::HttpUrl;
use crate::x402;

/// The binding that holds the configuration (`[vars.X402]` in wrangler.toml).
const CONFIG_BINDING: &str = "X402";
/// The KV namespace: delinquent wallets, the wallet index, session grants.
pub(crate) const KV_BINDING: &str = "X402_KV";
/// The Durable Object namespace of wallet ledgers.
pub(crate) const LEDGER_BINDING: &str = "LEDGER";

/// The configuration as written, for code that runs outside a request (Durable Objects, cron).
pub(crate) fn config_of(env: &Env) -> Option<Rc<Config>> {
    match load_config(env).as_ref() {
        Ok(c) => Some(c.clone()),
        Err(_) => None,
    }
}

/// How long what `/supported` said is trusted, and how soon to ask again after it failed.
const SUPPORTED_TTL_SECONDS: u64 = 300;
const SUPPORTED_RETRY_SECONDS: u64 = 30;

type Loaded = Rc<std::result::Result<Rc<Config>, String>>;

thread_local! {
    /// The parsed configuration, once per isolate: vars do not change while an isolate lives.
    static CONFIG: RefCell<Option<Loaded>> = const { RefCell::new(None) };
    /// The configuration restricted to what the facilitator settles, and when to ask it again.
    static RESTRICTED: RefCell<Option<(u64, Rc<Config>)>> = const { RefCell::new(None) };
}

fn load_config(env: &Env) -> Loaded {
    if let Some(c) = CONFIG.with(|c| c.borrow().clone()) {
        return c;
    }
    let parsed = read_config_json(env).and_then(|json| {
        Config::from_json(&json)
            .map(Rc::new)
            .map_err(|e| e.to_string())
    });
    if let Err(e) = &parsed {
        worker::console_error!(
            "{{\"event\":\"config_error\",\"error\":{}}}",
            serde_json::Value::from(e.as_str())
        );
    }
    let rc = Rc::new(parsed);
    CONFIG.with(|c| *c.borrow_mut() = Some(rc.clone()));
    rc
}

/// The configuration as it applies now: only offers the facilitator says it can settle (asked
/// through `/supported`, remembered for a few minutes). If the facilitator cannot be asked, the
/// last answer stands, or the configuration as written.
async fn effective_config(base: &Config, env: &Env, now: u64) -> Rc<Config> {
    if let Some((until, c)) = RESTRICTED.with(|r| r.borrow().clone()) {
        if now < until {
            return c;
        }
    }
    let fresh = match base.facilitator.as_ref() {
        Some(f) => facilitator::supported(f, &facilitator::Auth::of(env)).await,
        None => None,
    };
    let (config, until) = match fresh {
        Some(supported) => {
            let (restricted, unsettleable) = crate::facilitator::restrict(base, &supported);
            for route in unsettleable {
                worker::console_error!(
                    "{}",
                    serde_json::json!({"event": "unsettleable_route", "route": route,
                        "error": "the facilitator settles none of this route's networks; it stays priced and payments will fail"})
                );
            }
            (Rc::new(restricted), now + SUPPORTED_TTL_SECONDS)
        }
        None => {
            let previous = RESTRICTED.with(|r| r.borrow().clone()).map(|(_, c)| c);
            (
                previous.unwrap_or_else(|| Rc::new(base.clone())),
                now + SUPPORTED_RETRY_SECONDS,
            )
        }
    };
    RESTRICTED.with(|r| *r.borrow_mut() = Some((until, config.clone())));
    config
}

fn read_config_json(env: &Env) -> std::result::Result<String, String> {
    let missing = || format!("X402: the [vars.X402] table is missing ({CONFIG_BINDING} binding)");
    let value = js_sys::Reflect::get(env, &CONFIG_BINDING.into()).map_err(|_| missing())?;
    // A string holds the JSON itself (handy with `wrangler dev --var`); a table arrives as an
    // object, turned into JSON by the runtime rather than by a second deserialiser in the bundle.
    if let Some(s) = value.as_string() {
        return Ok(s);
    }
    if !value.is_object() {
        return Err(missing());
    }
    js_sys::JSON::stringify(&value)
        .map(String::from)
        .map_err(|_| missing())
}

pub(crate) fn now_seconds() -> u64 {
    // One call into the runtime (the SDK's `Date::now` makes a `Date` object, then reads it).
    (js_sys::Date::now() / 1000.0) as u64
}

/// A Durable Object's answer as its class hands it to the runtime; an error of ours is thrown
/// with its message, the runtime's own as it came. Our objects are exported by hand instead of by the SDK's `#[durable_object]`, whose
/// glue turns an error into a JavaScript one through the SDK's own printer of error chains, which
/// links the printing of every error the SDK's type can hold.
pub(crate) fn answered(
    r: Result<worker::Response>,
) -> std::result::Result<wasm_bindgen::JsValue, wasm_bindgen::JsValue> {
    match r {
        Ok(res) => Ok(web_sys::Response::from(res).into()),
        // The runtime's own error (a storage call's, say) is thrown as it was, with the flags
        // the runtime reads (`retryable`, `overloaded`).
        Err(worker::Error::UnknownJsError { original, .. }) => Err(original),
        Err(worker::Error::Internal(v)) => Err(v),
        Err(e) => Err(js_sys::Error::new(&e.to_string()).into()),
    }
}

/// The Worker's `fetch` handler, as the runtime calls it. Written out instead of the SDK's
/// `#[event(fetch)]`, whose glue unwraps a `Result` of the SDK's error type and so links every
/// error it can hold, printed for debugging (I/O, JSON, KV…), into the bundle.
mod fetch_export {
    use wasm_bindgen::prelude::*;

    #[wasm_bindgen(wasm_bindgen_futures = worker::wasm_bindgen_futures)]
    pub async fn fetch(
        req: web_sys::Request,
        env: worker::Env,
        ctx: worker::worker_sys::Context,
    ) -> Result<JsValue, JsValue> {
        match super::fetch(req, env, worker::Context::new(ctx)).await {
            Ok(res) => Ok(res.into()),
            Err(e) => {
                worker::console_error!("{e}");
                let init = web_sys::ResponseInit::new();
                init.set_status(500);
                web_sys::Response::new_with_opt_str_and_init(Some("internal error"), &init)
                    .map(JsValue::from)
            }
        }
    }
}

#[cfg_attr(feature = "bench-floor", allow(unreachable_code, unused_variables))]
async fn fetch(req: web_sys::Request, env: Env, ctx: Context) -> Result<web_sys::Response> {
    #[cfg(feature = "bench-floor")]
    return bench_floor(req, &env).await;
    // A request that carries a payment or a session's credential is answered by work the runtime
    // keeps alive on its own (`waitUntil`), not only while the client waits. A client that goes
    // away mid-request cancels what its request awaits: a payment held for the origin's answer
    // would then be neither withdrawn (the origin failed) nor settled (an immediate route), but
    // left to lapse into its batch and be charged; a counted session's request would not be given
    // back. Under `waitUntil` the origin's answer is still awaited and the payment or the request
    // ended as it answered, as if the client had stayed (within the 30 s the runtime grants such
    // work after a disconnect).
    // A session token matters after a disconnect only where a session counts its requests: a
    // timed one's request, cut off, leaves nothing to give back (and its own `waitUntil` is a
    // tenth of what a session request costs over a free one).
    // An admin request (a bearer token too) is kept alive as well: a revocation cut off half
    // way would leave some of a wallet's grants in place.
    // The URL as the runtime serialised it (always ASCII), read by our own narrow parser: the
    // general URL crate and its Unicode tables would double the size of the Worker.
    let full = req.url();
    let url = HttpUrl::parse_request(&full);
    // Asked only of a request that carries a token or the cookie.
    let counted = || {
        url.as_ref()
            .is_some_and(|u| u.path.starts_with(admin::PREFIX))
            || load_config(&env).as_ref().as_ref().is_ok_and(|c| {
                c.routes
                    .iter()
                    .any(|r| r.session.as_ref().is_some_and(|o| o.requests.is_some()))
            })
    };
    let keep_alive = carries_credential(&req.headers(), counted);
    let ctx = Rc::new(ctx);
    let work = handle(req, full, url, env, ctx.clone());
    if !keep_alive {
        return work.await;
    }
    // The answer is handed over through a slot: the handler takes it if it is still there.
    let slot: Handover = Rc::default();
    let filled = slot.clone();
    ctx.wait_until(async move {
        let answer = work.await;
        let waker = {
            let mut s = filled.borrow_mut();
            s.0 = Some(answer);
            s.1.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    });
    poll_fn(|cx| {
        let mut s = slot.borrow_mut();
        match s.0.take() {
            Some(answer) => Poll::Ready(answer),
            None => {
                s.1 = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    })
    .await
}

/// The constant 402 of the `bench-floor` build (see `Cargo.toml`): the headers and body sizes of
/// the bench route's real 402 (its `PAYMENT-REQUIRED` is 1,488 characters, its body 183 bytes),
/// built as every answer of ours is.
///
/// A request carrying `PAYMENT-SIGNATURE` gets instead what the least deferred payment costs the
/// platform, made as ours makes it: one write by a wallet ledger (a row, through the ledger's
/// command by RPC), then the request passed to the origin as a free one is, with its answer.
#[cfg(feature = "bench-floor")]
async fn bench_floor(req: web_sys::Request, env: &Env) -> Result<web_sys::Response> {
    if req.headers().has(x402::PAYMENT_SIGNATURE).unwrap_or(false) {
        let (Some(config), Some(url)) = (config_of(env), HttpUrl::parse(&req.url())) else {
            return Err(worker::Error::RustError("no configuration or URL".into()));
        };
        let book = ledger_client::LedgerClient::open(env, "floor")
            .ok_or_else(|| worker::Error::RustError("no ledger binding".into()))?;
        let key = random_nonce().map(hex::encode).unwrap_or_default();
        book.send(&ledger::Command::Floor { key })
            .await
            .ok_or_else(|| worker::Error::RustError("the ledger did not answer".into()))?;
        return origin::pass(&config, req, &url).await;
    }
    let mut headers = paywall::common_headers();
    headers.push((x402::PAYMENT_REQUIRED, "e".repeat(1488)));
    headers.push(("Content-Type", "application/json".into()));
    let body = wasm_bindgen::JsValue::from_str(&"b".repeat(183));
    let headers = headers.iter().map(|(k, v)| (*k, v.as_str()));
    Ok(js::response(&body, 402, "", None, headers)?)
}

/// Where the work [`fetch`] keeps alive leaves its answer, and who waits for it.
type Handover = Rc<RefCell<(Option<Result<web_sys::Response>>, Option<Waker>)>>;

/// Whether a request carries a payment or what may let it in on a session (a Sign-In-With-X
/// proof; where `counted` says sessions are counted or the request is the publisher's, a bearer
/// token or the session cookie): what [`fetch`] keeps alive past a disconnect.
fn carries_credential(headers: &web_sys::Headers, counted: impl FnOnce() -> bool) -> bool {
    let has = |name: &str| headers.has(name).unwrap_or(false);
    has(x402::PAYMENT_SIGNATURE)
        || has(x402::X_PAYMENT)
        || has(crate::siwx::HEADER)
        || (has("authorization")
            || headers
                .get("cookie")
                .ok()
                .flatten()
                .is_some_and(|c| c.contains(crate::session::COOKIE_NAME)))
            && counted()
}

/// Answers one request (see [`fetch`], which decides what keeps the work alive).
async fn handle(
    req: web_sys::Request,
    full: String,
    url: Option<HttpUrl>,
    env: Env,
    ctx: Rc<Context>,
) -> Result<web_sys::Response> {
    // The runtime's request as it is: the SDK's own type would build `request.cf` (a large object)
    // for every request, which costs a tenth of a 402; the bot fields are read where needed.
    let Some(url) = url else {
        return respond::reply(paywall::plain_refusal(&Reason::InvalidUrl.into()), false);
    };
    if let Some(reply) = paywall::disguised_path(&url.path) {
        return respond::reply(reply, false);
    }
    if url.path.starts_with(admin::PREFIX) {
        // Figures and debts are per moment and private: no cache may keep them.
        // A store that fails (a KV listing, a ledger) still gets a JSON answer saying so.
        let mut answer = match admin::handle(Request::from(req), &env, &url).await {
            Ok(answer) => answer,
            Err(e) => admin::closed(503, "admin_unavailable", &e.to_string(), None)?,
        };
        answer.headers_mut().set("Cache-Control", "no-store")?;
        return Ok(answer.into());
    }
    let loaded = load_config(&env);
    let base = match loaded.as_ref() {
        Ok(c) => c,
        Err(e) => {
            return respond::reply(
                paywall::plain_refusal(&Refusal::new(Reason::ConfigInvalid, e.clone())),
                false,
            );
        }
    };
    let now = now_seconds();
    let config = effective_config(base, &env, now).await;
    let config = config.as_ref();
    // Methods are case-sensitive in HTTP, but an origin may not treat them so: compare upper-cased
    // so that `get` cannot walk past a rule for GET.
    // The method as sent: workers-rs maps methods it does not know (PROPFIND, PURGE…) to GET.
    let method = req.method().to_ascii_uppercase();
    let headers = &Headers(req.headers());
    let header = |name: &str| headers.get(name).ok().flatten();
    let (payment_signature, x_payment, preflight_method) = (
        header(x402::PAYMENT_SIGNATURE),
        header(x402::X_PAYMENT),
        header("access-control-request-method"),
    );
    let mut incoming = Incoming {
        method: &method,
        url: &full,
        path: &url.path,
        payment_signature: payment_signature.as_deref(),
        x_payment: x_payment.as_deref(),
        preflight_method: preflight_method.as_deref(),
        siwx_nonce: None,
    };
    if let Some(reply) = paywall::ambiguous_path(config, &method, &url.path) {
        return respond::reply(reply, false);
    }
    if paywall::override_matters(config, &method, &url.path) {
        let ways = paywall::override_body(&header("content-type").unwrap_or_default());
        // A compressed body cannot be searched, and some frameworks inflate it before reading it.
        if let (false, Some(coding)) = (ways.is_empty(), header("content-encoding")) {
            if !matches!(coding.trim().to_ascii_lowercase().as_str(), "" | "identity") {
                return respond::reply(paywall::override_encoded(), false);
            }
        }
        let body = match ways.is_empty() {
            true => None,
            false => match js::body_text(&req, FORM_LIMIT).await {
                Some(text) => Some(text),
                None => return respond::reply(paywall::override_unreadable(FORM_LIMIT), false),
            },
        };
        // The query, and the body each way a framework may read it.
        let (path, query) = (&url.path, url.query.as_deref());
        let refused = match &body {
            None => paywall::method_override(config, path, query, None),
            Some(text) => ways
                .iter()
                .find_map(|&way| paywall::method_override(config, path, query, Some((text, way)))),
        };
        if let Some(reply) = refused {
            return respond::reply(reply, false);
        }
    }
    let head = method == "HEAD";
    if url.path == DISCOVERY_PATH && (method == "GET" || head) {
        return respond::discovery(config, &url.origin(), head);
    }
    let paying = payment_signature.is_some() || x_payment.is_some();
    let strikes = Strikes::new(headers);
    let route = match (method.as_str(), &preflight_method) {
        ("OPTIONS", Some(_)) => None,
        _ => paywall::priced_route(config, &method, &url.path),
    };
    // Where every class of client is charged, who is asking cannot change whether a session lets
    // the request in: try it before classifying (Web Bot Auth, `request.cf`, user agent), which a
    // request on a session then never pays for. The result is kept for the refusal path below.
    let mut early_session = None;
    if let Some(route) = route {
        if !paying && route.access.charges_everyone() {
            let tried =
                access::try_session(config, route, &env, &strikes, &full, &url.path, now).await;
            if let Ok(Some(admitted)) = tried {
                return serve_session(config, req, &url, route, &admitted, head, &env).await;
            }
            early_session = Some(tried);
        }
    }
    // Randomness is drawn only where a Sign-In-With-X challenge may be sent: where a session
    // sold on this route, or a pass covering this path, could let the request in (the route's own
    // session settles it without matching other routes' scopes against the path).
    if route
        .is_some_and(|r| r.session.is_some() || config.sessions_for(r, &url.path).next().is_some())
    {
        incoming.siwx_nonce = random_nonce();
    }
    let mut served = Served {
        head,
        now,
        crawler: None,
        ctx: &ctx,
        person: false,
        who: None,
    };
    if let Some(route) = route {
        let who = bots::who(
            &req,
            headers,
            &env,
            &config.trust_signers,
            &config.agent_signers,
            &full,
            &url,
            &method,
            now,
        )
        .await;
        // A person's browser asking for the page gets the paywall page (still 402, still with
        // PAYMENT-REQUIRED); a request carrying a payment, a known crawler, and any method but
        // GET and HEAD (the page pays by asking again with GET, which would not send a form's
        // body) get the JSON.
        served.person = !paying
            && (method == "GET" || method == "HEAD")
            && who.class != Class::Crawler
            && page::is_browser(who.accept.as_deref(), who.user_agent.as_deref());
        let siwx = incoming
            .siwx_nonce
            .map(|nonce| paywall::SiwxChallenge { nonce, now });
        let (kind, agent) = evidence_fields(&who.evidence);
        served.who = Some((who.class, kind, agent));
        match policy::access(
            &route.access,
            who.class,
            &who.evidence,
            who.cloudflare.as_ref(),
        ) {
            Access::Allow => {
                // A person reading free is routine; a crawler or agent let in is a decision.
                if who.class != Class::Human || config.log == LogLevel::All {
                    log_access(&who, route, "allowed", 200, None);
                }
                // Free to this reader, sold to others: no shared cache may keep it for them.
                return match origin::pass(config, req, &url).await {
                    Ok(answer) => respond::private(&answer),
                    Err(e) => origin_unavailable(&e, head),
                };
            }
            Access::Block => {
                let (kind, agent) = evidence_fields(&who.evidence);
                let mut reply = paywall::plain_refusal(&Refusal::new(
                    Reason::Blocked,
                    format!(
                        "classed {} by {kind}{}",
                        class_name(who.class),
                        agent.map(|a| format!(" ({a})")).unwrap_or_default()
                    ),
                ));
                if who.class == Class::Crawler {
                    reply
                        .headers
                        .push((crawlers::CRAWLER_ERROR, "CrawlerForbidden".into()));
                }
                log_access(&who, route, "blocked", 403, Some("blocked"));
                return respond::reply(reply, head);
            }
            Access::Charge => {}
        }
        // Pay Per Crawl: a crawler learns the price in `crawler-price`, may state what it accepts,
        // and is told what it was charged. The money itself moves through x402.
        match crawler_terms(route, &who, headers) {
            Ok(c) => served.crawler = c,
            Err((e, reply_refusal, price)) => {
                let mut reply = paywall::challenge(route, &full, &reply_refusal, siwx.as_ref());
                reply.status = e.status();
                reply
                    .headers
                    .push((crawlers::CRAWLER_ERROR, e.code().into()));
                // A price refused for being too low is answered with the price (Pay Per Crawl).
                if reply.status == 402 {
                    reply.headers.push((crawlers::CRAWLER_PRICE, price));
                }
                log_access(&who, route, "refused", reply.status, Some(e.code()));
                return respond::reply(reply, head);
            }
        }
        if !paying {
            // A wallet that already bought a session for this path comes in without paying.
            let tried = match early_session {
                Some(tried) => tried,
                None => {
                    access::try_session(config, route, &env, &strikes, &full, &url.path, now).await
                }
            };
            match tried {
                Ok(None) => {}
                Ok(Some(admitted)) => {
                    return serve_session(config, req, &url, route, &admitted, head, &env).await;
                }
                Err(refusal) => {
                    log_access(
                        &who,
                        route,
                        "refused",
                        refusal.status(),
                        Some(refusal.reason.info().code),
                    );
                    // Not checked now: no terms to pay again by, a moment to wait.
                    if refusal.status() >= 500 {
                        let mut reply = paywall::plain_refusal(&refusal);
                        reply.headers.push(("Retry-After", "1".into()));
                        return respond::reply(reply, head);
                    }
                    let reply = paywall::challenge(route, &full, &refusal, siwx.as_ref());
                    let reply = served.for_person(served.on_refusal(reply), route, &full);
                    return respond::reply(reply, head);
                }
            }
        }
    }
    match paywall::decide(config, &incoming, now) {
        // A preflight the origin answers is read by browsers for its headers alone: its body is
        // dropped, since an origin that does not look at the method puts in it what a GET sells.
        Decision::Pass => {
            let answer = pass(config, req, &url, &method).await?;
            match (
                preflight_method.is_some() && method == "OPTIONS",
                answer.status(),
            ) {
                (false, _) => Ok(answer),
                (true, 101) => origin_unavailable(
                    &worker::Error::RustError("it switched protocols on a CORS preflight".into()),
                    false,
                ),
                (true, _) => Ok(js::bodiless(&answer)?),
            }
        }
        Decision::Reply(mut reply) => {
            reply = served.on_refusal(reply);
            if let Some(route) = route {
                // Terms for a request that carried no payment are routine.
                if paying || config.log == LogLevel::All {
                    log_reply(route, &reply, &served);
                }
                reply = served.for_person(reply, route, &full);
            }
            respond::reply(reply, head)
        }
        Decision::Paid(paid) => {
            let answer = serve_paid(config, &env, req, &url, &paid, &served, &strikes).await;
            // Counted once the answer is written, whichever refusal it was.
            if strikes.struck.get() {
                strikes.count(&env).await;
            }
            answer
        }
    }
}

/// The least time a deferred payment's hold must leave the origin; with less, the payment is
/// settled before it is served instead.
const MIN_HELD_ORIGIN_SECONDS: u64 = 10;
/// What an authorization's trip from its signing to the Worker may take, in the least validity
/// asked of one that is settled after the origin does a request's work (see `serve_paid`).
const ARRIVAL_SECONDS: u64 = 10;
/// What a payment's time must leave beyond the origin's for the request's body to arrive (it gets
/// at least a second; see `origin::forward_as`) and for the seconds its deadlines round away.
const UPLOAD_ROOM_SECONDS: u64 = 2;

/// Where the Worker publishes what is for sale.
const DISCOVERY_PATH: &str = "/.well-known/x402";

/// What the request path learned that the answer needs.
struct Served<'a> {
    head: bool,
    now: u64,
    ctx: &'a Context,
    /// For crawlers: the price to quote (`crawler-price`) and whether an intent was stated.
    crawler: Option<CrawlerTerms>,
    /// A person's browser asking for a page, without a payment: refusals become the paywall page.
    person: bool,
    /// Who is asking, for the log: class and evidence.
    who: Option<(Class, &'static str, Option<String>)>,
}

struct CrawlerTerms {
    price: String,
}

impl Served<'_> {
    /// The paywall page instead of the JSON refusal, for a person's browser: same status, same
    /// headers (`PAYMENT-REQUIRED` included), an HTML body.
    fn for_person(
        &self,
        reply: paywall::Reply,
        route: &crate::config::Route,
        url: &str,
    ) -> paywall::Reply {
        if self.person {
            page::for_browser(reply, route, url)
        } else {
            reply
        }
    }

    /// Adds what a refusal to this client also carries (`crawler-price` for crawlers).
    fn on_refusal(&self, mut reply: paywall::Reply) -> paywall::Reply {
        if let (Some(c), 402) = (&self.crawler, reply.status) {
            reply
                .headers
                .push((crawlers::CRAWLER_PRICE, c.price.clone()));
        }
        reply
    }

    /// What a served, paid answer also carries (`crawler-charged` for crawlers).
    fn on_success(&self) -> Vec<(&'static str, String)> {
        match &self.crawler {
            Some(c) => vec![(crawlers::CRAWLER_CHARGED, c.price.clone())],
            None => Vec::new(),
        }
    }
}

/// The Pay Per Crawl side of a crawler's request: the price to quote, or why its stated intent
/// (`crawler-max-price` / `crawler-exact-price`, which must be signed) is refused.
fn crawler_terms(
    route: &crate::config::Route,
    who: &bots::Who,
    headers: &worker::Headers,
) -> std::result::Result<Option<CrawlerTerms>, (crawlers::CrawlerError, Refusal, String)> {
    let max = headers.get(crawlers::CRAWLER_MAX_PRICE).ok().flatten();
    let exact = headers.get(crawlers::CRAWLER_EXACT_PRICE).ok().flatten();
    if who.class != Class::Crawler && max.is_none() && exact.is_none() {
        return Ok(None);
    }
    let Some(offer) = route.offers.first() else {
        return Ok(None);
    };
    let atomic = offer.amount.to_u128().unwrap_or(u128::MAX);
    let decimals = offer.asset.decimals;
    let refuse = |e: crawlers::CrawlerError| {
        (
            e,
            Refusal::new(
                Reason::CrawlerPriceRefused,
                format!("{}: {}", e.code(), e.message()),
            ),
            crawlers::crawler_price(atomic, decimals),
        )
    };
    crawlers::require_signed_intent(who.verified.as_ref(), max.is_some(), exact.is_some())
        .map_err(refuse)?;
    crawlers::check_crawler_intent(max.as_deref(), exact.as_deref(), atomic, decimals)
        .map_err(refuse)?;
    Ok(Some(CrawlerTerms {
        price: crawlers::crawler_price(atomic, decimals),
    }))
}

/// Sixteen fresh random bytes (a Sign-In-With-X challenge nonce).
fn random_nonce() -> Option<[u8; 16]> {
    let mut nonce = [0u8; 16];
    getrandom::getrandom(&mut nonce).ok()?;
    Some(nonce)
}

/// Serves a locally verified payment.
///
/// Smart-wallet signatures are first checked by the wallet's contract (ERC-1271, where `rpc`
/// reaches its chain) or by the facilitator (after the ledger is asked whether the payment, sent
/// again with its identifier, is one already served). On a deferred route the payer's
/// ledger admits the payment held (at most once anywhere, within the wallet's credit, but not
/// settled yet), the origin answers, and a successful answer is served at once with a "settlement
/// pending" receipt while the ledger is told to release the payment to its batch; otherwise a
/// successful answer is settled before it leaves. An origin error is never charged: the payment is
/// withdrawn, and a held one cannot have been settled meanwhile, however slow the origin was (up
/// to the hold's limit, [`crate::settlement::HOLD_SECONDS`]).
async fn serve_paid(
    config: &Config,
    env: &Env,
    req: web_sys::Request,
    url: &HttpUrl,
    paid: &PaidRequest<'_>,
    ctx: &Served<'_>,
    strikes: &Strikes<'_>,
) -> Result<web_sys::Response> {
    let head = ctx.head;
    if strikes.barred() {
        let mut reply = paid.refuse(&Reason::TooManyRefusals.into());
        reply
            .headers
            .push(("Retry-After", BARRED_SECONDS.to_string()));
        return respond::reply(reply, head);
    }
    let client = facilitator::Client::new(config, facilitator::Auth::of(env));
    let body = paid.facilitator_body();
    // Whether the facilitator's `/verify` has judged this payment (balance, nonce, simulation),
    // not only our local check of its signature.
    let mut verified_remotely = false;
    // Whether judging it cost a call out (the facilitator's `/verify`, or the wallet contract's
    // answer on chain): a ledger refusal after that counts against the client.
    let mut asked_out = false;
    if let Some(check) = &paid.verified.wallet_check {
        // A key signed it, but not `from`'s, or no key can have: the wallet contract at `from` (a
        // Safe, say) is asked whether it is its signature, as USDC will ask it when the payment
        // is settled. Without the node's answer the local refusal stands, saying so: such a
        // signature is far more often a wrong key's (or a broken one) than a wallet's.
        let chain = paid.verified.offer.asset.network.chain_id;
        // `decide` passes such a payment only where `rpc` has a URL for its chain.
        let asked = match config.rpc_for(chain) {
            Some(url) => {
                let payer = &paid.verified.payer;
                access::wallet_signed(url, payer, &check.digest, &check.signature, None).await
            }
            None => None,
        };
        match asked {
            Some(true) => asked_out = true,
            Some(false) => {
                strikes.struck.set(true);
                return respond::reply(paid.refuse(&check.refusal), head);
            }
            None => {
                let mut refusal = check.refusal.clone();
                refusal.detail = Some(format!(
                    "{}; a wallet contract at {} could not be asked (the chain's node did not \
                     answer)",
                    refusal.detail.as_deref().unwrap_or_default(),
                    paid.verified.payer
                ));
                return respond::reply(paid.refuse(&refusal), head);
            }
        }
    } else if !paid.verified.signature_checked {
        // Sent again with its identifier (its first answer lost), the payment may have been
        // settled meanwhile, and the facilitator would now refuse it (its nonce used on chain):
        // the ledger is asked first whether it is a payment it served.
        match known_by_id(env, paid, &body).await {
            Some(AdmitRefusal::Repeat { in_progress }) => {
                return answer_again(env, paid, in_progress, head).await
            }
            // An identifier of another payment: counted against the client like a refusal by
            // the facilitator, so that identifiers cannot be probed for free.
            Some(AdmitRefusal::Refused(refusal)) => {
                return refused_by_ledger(paid, &refusal, true, strikes, head)
            }
            // Settled, its content never served: the chain has judged it, and its admission
            // below gives it to this request.
            Some(AdmitRefusal::Unserved { .. }) => {}
            _ => {
                if let Some(refusal) = refused_by_verify(&client, &body, paid, strikes).await {
                    return respond::reply(refusal, head);
                }
                asked_out = true;
            }
        }
        verified_remotely = true;
    }
    let wallet = paid.ledger_name();
    let book = ledger_client::LedgerClient::open(env, &wallet);
    // The ledger, which every payment goes through, is the truth about debts; without one, the
    // KV blocklist it keeps is the next best thing.
    if book.is_none() {
        if let Some(owed) = blocklisted(env, &wallet).await {
            return respond::reply(paid.refuse(&delinquent(&owed)), head);
        }
    }
    let mut deferred = paid.route.settlement == SettlementMode::Deferred && book.is_some();
    // A held deferred payment lapses into its batch when its hold ends: the origin must have
    // answered (or been given up on) a little before that, or a failure could no longer be
    // withdrawn. Counted from now, not from the request's start: `/verify` took its time too.
    let mut limit = config.origin_timeout_seconds;
    let works_first = does_work(&req);
    // The moment a held payment's origin must have answered by (ms since the epoch).
    let mut held_until = 0.0;
    if deferred {
        let policy = ledger::policy(config);
        let valid_before = paid.verified.valid_before;
        let now = now_seconds();
        let hold_ends = policy.hold_ends(now, valid_before);
        let held_limit = limit.min(hold_ends.saturating_sub(now).saturating_sub(5));
        // An authorization too close to its end to be deferred (which the ledger would refuse
        // to defer), or whose hold would leave the origin less than a few seconds, is settled
        // now instead, the origin given its whole time as on an immediate route. So is one for a
        // method that does work whose hold would cut the origin's time at all: the payer chooses
        // `validBefore`, and an origin cut off after doing the work would have done it for a
        // withdrawn payment. Settled now, it is held to the whole time, or refused (below).
        // (With room for the upload, which the origin's time does not count, and the seconds
        // this rounds away.)
        let cut = hold_ends.saturating_sub(now) < limit + 5 + UPLOAD_ROOM_SECONDS;
        if policy.may_defer(now, valid_before)
            && held_limit >= MIN_HELD_ORIGIN_SECONDS
            && !(cut && works_first)
        {
            limit = held_limit;
            held_until = hold_ends.saturating_sub(5) as f64 * 1000.0;
        } else {
            deferred = false;
        }
    }
    // A signature proves who signed, not that the payer has the money. A payment settled after
    // the origin answers is settled after the origin has done the request's work: for a method
    // that may change something there (anything but GET and HEAD), a key holding no USDC would
    // have that work done for nothing. So, for a payment settled now (a deferred one is served on
    // the wallet's credit), the facilitator's `/verify` (funds, nonce, the transfer simulated) is
    // asked before the origin, after the ledger's admission, which refuses a replay without a
    // call. A `GET` needs no such check: its answer is simply not served when settlement fails.
    let verify_first = !verified_remotely && works_first;
    // Names this request in its commands to the ledger, so that no other request carrying the
    // same payment can act on its entry, and so that it may admit again after a lost answer.
    let ticket = random_nonce().map(hex::encode).unwrap_or_default();
    // Built once: it carries the facilitator body, which is not small.
    let admission = paid.admission(&body, false, ticket.clone());
    let id = admission.id.clone();
    // On a deferred route the origin is asked while the ledger admits the payment, not after:
    // a paid answer then waits for the slower of the two instead of both. Only for a safe method
    // (GET, HEAD), which changes nothing at the origin, so that the answer is simply dropped when
    // the ledger refuses (a delinquent wallet, a replay from elsewhere), and not for an upgrade,
    // whose dropped answer would be a WebSocket opened at the origin; only for a payment this
    // isolate has not taken already, so that a replay sent here is refused before the origin
    // hears of it; and only where the hold does not cut the origin's time, so that a payment
    // settled now instead (over credit, not yet earned) gives the origin the same time as on an
    // immediate route.
    let overlap = deferred
        && limit == config.origin_timeout_seconds
        && matches!(req.method().as_str(), "GET" | "HEAD")
        && !req.headers().has("upgrade").unwrap_or(true)
        && first_sight(&id);
    // The origin's time (see `origin::forward_as`): how long it has once it holds the request,
    // and the moment nothing waits past. A held payment's ends before its hold does. A payment
    // settled now, from the start or because the ledger would not defer it, gets the whole of it,
    // within the ledger's lease on an attempt in flight less the time `/settle` may take after it
    // (an entry still in flight when its lease ends is taken for unanswered and reconciled), and
    // never less than counted from now.
    let held = (limit as f64 * 1000.0, held_until);
    let whole = config.origin_timeout_seconds as f64 * 1000.0;
    let from_here = js_sys::Date::now() + whole;
    let lease_ends = from_here - whole
        + (crate::settlement::IN_FLIGHT_LEASE * 1000)
            .saturating_sub(config.facilitator.as_ref().map_or(0, |f| f.timeout_ms))
            .saturating_sub(5000) as f64;
    // And never past the moment its settlement must be sent for the facilitator to take it
    // before `validBefore`: an origin still working then would be cut off, unpaid.
    let settle_by = paid
        .verified
        .valid_before
        .saturating_sub(paywall::IMMEDIATE_SETTLE_MARGIN_SECONDS) as f64
        * 1000.0;
    // The origin's time where it is fixed (a held payment's, a payment owed its content's);
    // `None` for a payment settled now, whose time is set when the origin is asked.
    let fixed = Cell::new(deferred.then_some(held));
    let fixed = &fixed;
    // The transaction that settled this payment, sent again with its identifier, whose content
    // was never served: this request serves it, and charges nothing more.
    let mut owed = None;
    let answer = origin::forward_as(config, req, url, &paid.verified.payer, move || {
        Some(fixed.get().unwrap_or_else(|| {
            let cap = lease_ends.max(from_here).min(settle_by);
            (whole.min(cap - js_sys::Date::now()), cap)
        }))
    });
    let mut answer = pin!(maybe_done(answer));
    if let (true, Some(book)) = (deferred, &book) {
        // Held: it counts for replay and credit now, but is not settled before the origin answers.
        let held = crate::settlement::Admission {
            held: true,
            deferred: true,
            ..admission.clone()
        };
        match beside(book.admit(held), answer.as_mut(), overlap).await {
            Ok(()) => {}
            Err(AdmitRefusal::Refused(refusal)) => {
                return refused_by_ledger(paid, &refusal, asked_out, strikes, head)
            }
            Err(AdmitRefusal::Repeat { in_progress }) => {
                return answer_again(env, paid, in_progress, head).await
            }
            Err(AdmitRefusal::Unserved { transaction }) => {
                owed = Some(transaction);
                deferred = false;
            }
            Err(AdmitRefusal::OverCredit) if config.deferred.over_credit == OverCredit::Refuse => {
                return respond::reply(paid.refuse(&Reason::CreditExceeded.into()), head);
            }
            // Over credit, credit not yet earned, too close to expiry, or no answer: settle now
            // instead, admitted again as an immediate payment. If the held admission did land
            // and only its answer was lost, the immediate one below, with the same ticket, turns
            // that entry into this settlement.
            Err(_) => {
                deferred = false;
                fixed.set(None);
            }
        }
    }
    if let (false, None, Some(book)) = (deferred, &owed, &book) {
        // Immediate payments go through the ledger too, before the origin is asked (or, where a
        // deferred `GET` already asked it, before its answer is used): a payment being settled by
        // a concurrent request is refused here instead of being served again, and the outcome is
        // kept for the publisher.
        // Settled after the origin's work for a method that may change something there: a
        // payer who then makes settlement fail owes (see `Admission::worked`).
        let admission = crate::settlement::Admission {
            worked: works_first,
            ..admission
        };
        match beside(book.admit(admission), answer.as_mut(), overlap).await {
            Err(AdmitRefusal::Refused(refusal)) => {
                return refused_by_ledger(paid, &refusal, asked_out, strikes, head)
            }
            Err(AdmitRefusal::Repeat { in_progress }) => {
                return answer_again(env, paid, in_progress, head).await
            }
            Err(AdmitRefusal::Unserved { transaction }) => owed = Some(transaction),
            // No answer: nothing is served. The chain would refuse to settle the payment twice,
            // but not a second serving of a payment that has been served and waits for its batch
            // (on a deferred route, or admitted there by another request), which only the ledger
            // knows of. Withdrawn, in case it landed (a held entry, or this one), so that the same
            // payment may be sent again.
            Err(AdmitRefusal::Unreachable) => {
                book.withdraw(&id, &ticket).await;
                log_decision("ledger_unreachable", paid, "");
                return respond::reply(paid.ledger_unavailable(), head);
            }
            _ => {}
        }
    }
    // Owed its content, the payment is settled: the origin is given its whole time, with no
    // settlement to wait for, and the upload 10 s: within the time the ledger gives this request
    // to serve it (`originTimeoutSeconds` + 15 s from the admission) before a repeat is given it.
    if owed.is_some() {
        fixed.set(Some((whole, from_here + 10_000.0)));
    }
    // (See `verify_first`; the origin is never asked beside the admission for such a method.)
    // A payment a smart wallet's contract or the facilitator already judged is held to the same
    // time, not asked again.
    if works_first && !deferred && owed.is_none() {
        // The origin does a request's work before the payment is settled, and must answer in
        // time for that (see `settle_by`). An authorization signed to end sooner than the terms
        // allow (`maxTimeoutSeconds`, less what its trip here may have taken) would leave the
        // origin less than its whole time: work cut off, or done for a settlement the facilitator
        // then refuses as expired. Refused before anything is asked, as a `GET`'s need not be
        // (its answer is simply not served).
        let room = (settle_by - js_sys::Date::now()) / 1000.0;
        let wanted = config.origin_timeout_seconds.min(
            paid.verified
                .offer
                .max_timeout_seconds
                .saturating_sub(paywall::IMMEDIATE_SETTLE_MARGIN_SECONDS + ARRIVAL_SECONDS),
        );
        if room < (wanted + UPLOAD_ROOM_SECONDS) as f64 {
            if let Some(book) = &book {
                book.withdraw(&id, &ticket).await;
            }
            let refusal = Refusal::new(
                Reason::ExpiresTooSoon,
                format!(
                    "the site may take {wanted} s to answer before this payment is settled, and the authorization leaves {} s for both: sign it for the whole maxTimeoutSeconds",
                    room.max(0.0) as u64
                ),
            );
            return respond::reply(paid.refuse(&refusal), head);
        }
        let refused = match verify_first {
            true => refused_by_verify(&client, &body, paid, strikes).await,
            false => None,
        };
        if let Some(refusal) = refused {
            if let Some(book) = &book {
                book.withdraw(&id, &ticket).await;
            }
            return respond::reply(refusal, head);
        }
    }
    // Asked now (or already, beside the admission), by the deadline chosen above.
    answer.as_mut().await;
    let answer = answer.as_mut().take_output().unwrap_or_else(|| {
        Err(worker::Error::RustError(
            "the origin's answer was taken twice".into(),
        ))
    });
    let response = match answer {
        Ok(response) if sold(&response, works_first, url, config) => response,
        // Nobody pays for an error (nor for an origin out of reach), nor for a redirect that is
        // not sold: the payment leaves the ledger uncollected.
        failed => {
            if let Some(book) = &book {
                book.withdraw(&id, &ticket).await;
            }
            let detail = match &failed {
                Ok(r) => format!("origin answered {}", r.status()),
                Err(e) => e.to_string(),
            };
            let redirected = matches!(&failed, Ok(r) if r.status() < 400);
            let outcome = if redirected {
                "origin_redirected"
            } else {
                "origin_failed"
            };
            log_decision(outcome, paid, &detail);
            // Not sold, but still an answer to a paid request: kept by no cache either.
            return match failed {
                Err(e) => origin_unavailable(&e, head),
                Ok(r) => respond::decorate(&r, vec![]),
            };
        }
    };
    if deferred {
        // Served: the ledger may settle it with its batch. Off the request path, gathered with
        // the isolate's other releases; if the release is lost, the hold ends by itself and it
        // is settled all the same.
        if book.is_some() {
            ledger_client::release_soon(env, ctx.ctx, &wallet, id, ticket);
        }
        log_decision("accepted_deferred", paid, "");
        count_payment(env, ctx, paid, true);
        let mut extra = paid.receipt_headers(&paid.receipt(String::new()));
        extra.extend(session_bought(env, paid).await);
        extra.extend(ctx.on_success());
        return keep_answer(env, ctx.ctx, paid, respond::decorate(&response, extra)?);
    }
    let (outcome, logged) = match owed {
        Some(transaction) => {
            // Served: the ledger is told, off the request path, so that no later repeat is
            // given it.
            if book.is_some() {
                ledger_client::release_soon(env, ctx.ctx, &wallet, id, ticket);
            }
            (
                SettleOutcome::Settled(paid.receipt(transaction)),
                "served_after_settlement",
            )
        }
        None => {
            let outcome = client.settle(&body).await;
            if let Some(book) = &book {
                book.record(&id, &ticket, &outcome).await;
            }
            (outcome, "settled")
        }
    };
    match outcome {
        SettleOutcome::Settled(receipt) => {
            log_decision(logged, paid, &receipt.transaction);
            count_payment(env, ctx, paid, false);
            let mut extra = paid.receipt_headers(&receipt);
            extra.extend(session_bought(env, paid).await);
            extra.extend(ctx.on_success());
            keep_answer(env, ctx.ctx, paid, respond::decorate(&response, extra)?)
        }
        // A refusal that can come after the transaction was broadcast (a failed receipt wait):
        // the payment may have moved, so the client is not told that nothing was charged.
        SettleOutcome::Refused { reason, message }
            if crate::settlement::refusal_is_uncertain(&reason, &message) =>
        {
            log_decision("settlement_unknown", paid, &reason);
            let why = format!("the facilitator refused to settle with {reason} ({message})");
            respond::reply(paid.settlement_unknown(&why), head)
        }
        SettleOutcome::Refused { reason, message } => {
            log_decision("settlement_refused", paid, &reason);
            if matches!(
                crate::settlement::classify_refusal(&reason, &message),
                crate::settlement::RefusalKind::Payer { .. }
                    | crate::settlement::RefusalKind::NonceUsed
            ) {
                strikes.struck.set(true);
            }
            respond::reply(paid.settlement_refused(&reason, &message), head)
        }
        SettleOutcome::Unknown(why) => {
            log_decision("settlement_unknown", paid, &why);
            respond::reply(paid.settlement_unknown(&why), head)
        }
    }
}

/// How long the answer a payment bought is kept for that payment sent again with its identifier.
const KEPT_ANSWER_SECONDS: u32 = crate::settlement::REPEAT_SECONDS as u32;
/// The longest answer kept for that (KV takes up to 25 MiB): a longer one is not given again.
const KEPT_ANSWER_BYTES: u32 = 1 << 20;

/// Where the answer a payment bought with an identifier is kept: per wallet, so that no other
/// wallet's identifier can name it.
fn kept_key(paid: &PaidRequest<'_>, id: &str) -> String {
    format!("answer/{}/{id}", paid.ledger_name())
}

/// A paid answer, on its way out: where the payment carries an identifier, a copy of it is kept
/// (off the request path) for the same payment sent again, whose first answer was lost to the
/// client (a timeout, a dropped connection). An upgrade is not kept: its answer is a connection.
fn keep_answer(
    env: &Env,
    ctx: &Context,
    paid: &PaidRequest<'_>,
    answer: web_sys::Response,
) -> Result<web_sys::Response> {
    let (Some(id), Some(kv)) = (&paid.payment_id, js::kv(env, KV_BINDING)) else {
        return Ok(answer);
    };
    if answer.status() != 101 {
        let key = kept_key(paid, id);
        let (payer, route) = (paid.ledger_name(), paid.route.pattern.as_str());
        let ctx: &worker::worker_sys::Context = ctx.as_ref();
        let _ = kv.keep_response(
            ctx,
            &key,
            &answer,
            KEPT_ANSWER_SECONDS,
            KEPT_ANSWER_BYTES,
            &payer,
            route,
        );
    }
    Ok(answer)
}

/// The ledger's refusal of a payment (a replay, a delinquent wallet). One that cost a call out
/// first (`asked_out`: a smart wallet's, whose signature only the facilitator's `/verify` or the
/// wallet's contract can judge) counts against the client's address like a refusal by the
/// facilitator, so that replaying a payment not yet settled cannot make the paywall call out
/// without end.
fn refused_by_ledger(
    paid: &PaidRequest<'_>,
    refusal: &Refusal,
    asked_out: bool,
    strikes: &Strikes<'_>,
    head: bool,
) -> Result<web_sys::Response> {
    if asked_out {
        strikes.struck.set(true);
    }
    respond::reply(paid.refuse(refusal), head)
}

/// What the payer's ledger knows of a payment that carries an identifier (see
/// [`ledger_client::LedgerClient::repeated`]); `None` for one without.
async fn known_by_id(env: &Env, paid: &PaidRequest<'_>, body: &str) -> Option<AdmitRefusal> {
    paid.payment_id.as_ref()?;
    let book = ledger_client::LedgerClient::open(env, &paid.ledger_name())?;
    // With the facilitator's body: while the ledger keeps the payment's, a repeat must carry
    // the same signature.
    book.repeated(&paid.admission(body, false, String::new()))
        .await
}

/// A payment sent again with its identifier, for the request it bought (the ledger said so): the
/// answer kept for it, as it was first given, receipt included. Nothing is charged and the origin
/// is not asked. Without a kept answer: still being answered to its first request (409, try again
/// in a moment), or no longer kept (a replay, as without an identifier).
async fn answer_again(
    env: &Env,
    paid: &PaidRequest<'_>,
    in_progress: bool,
    head: bool,
) -> Result<web_sys::Response> {
    let id = paid.payment_id.as_deref().unwrap_or_default();
    let kept = match js::kv(env, KV_BINDING) {
        Some(kv) => kv.kept_response(&kept_key(paid, id)).await.ok().flatten(),
        None => None,
    };
    match kept {
        Some(answer) => {
            log_decision("answered_again", paid, "");
            Ok(answer)
        }
        None if in_progress => {
            let mut reply = paid.refuse(&Reason::PaymentInProgress.into());
            reply.headers.push(("Retry-After", "1".into()));
            respond::reply(reply, head)
        }
        None => {
            let refusal = Refusal::new(
                Reason::Replay,
                "it was answered before with this payment identifier, and that answer is no longer kept (answers of up to 1 MiB are kept for an hour)",
            );
            respond::reply(paid.refuse(&refusal), head)
        }
    }
}

/// Asks the facilitator's `/verify` about a payment: `None` when it is valid, else the refusal to
/// answer with (nothing is charged either way).
async fn refused_by_verify(
    client: &facilitator::Client<'_>,
    body: &str,
    paid: &PaidRequest<'_>,
    strikes: &Strikes<'_>,
) -> Option<paywall::Reply> {
    match client.verify(body).await {
        VerifyOutcome::Valid { .. } => None,
        VerifyOutcome::Invalid { reason, message } => {
            log_decision("verify_refused", paid, &reason);
            strikes.struck.set(true);
            Some(paid.facilitator_rejected(&reason, &message))
        }
        VerifyOutcome::Unknown(why) => {
            log_decision("verify_unknown", paid, &why);
            Some(paid.verification_unknown(&why))
        }
    }
}

/// The client's address, as Cloudflare gives it (`CF-Connecting-IP`).
fn client_address(headers: &worker::Headers) -> String {
    headers
        .get("cf-connecting-ip")
        .ok()
        .flatten()
        .unwrap_or_else(|| "unknown".into())
}

/// How long a client address over its limit of refused payments is turned away by an isolate.
const BARRED_SECONDS: u32 = 60;

/// Payments refused for the payer's own reasons after the facilitator or the chain was asked, and
/// sign-in proofs refused by a wallet contract the chain was asked about, per client address.
/// Anyone can sign payments from keys that hold nothing, or make up proofs for a wallet that
/// bought a session, and each costs such a call: with the `X402_RATE_LIMIT` binding, each refusal
/// counts against the address ([`js::strike`]), and an address over its limit has its payments
/// and such proofs refused for [`BARRED_SECONDS`] before anything is asked (by each isolate that
/// sees it go over).
struct Strikes<'a> {
    /// The request's, whose client address is read from them when it is needed (rarely: a paid
    /// request, a wallet contract asked).
    headers: &'a worker::Headers,
    /// This request's payment was so refused.
    struck: Cell<bool>,
}

impl<'a> Strikes<'a> {
    fn new(headers: &'a worker::Headers) -> Self {
        Strikes {
            headers,
            struck: Cell::new(false),
        }
    }

    fn barred(&self) -> bool {
        js::barred(&client_address(self.headers), BARRED_SECONDS)
    }

    /// Counts one refusal against the address now, barring it if that puts it over its limit.
    async fn count(&self, env: &Env) {
        js::strike(env, &client_address(self.headers)).await
    }
}

/// A request let in on a session: to the origin as the wallet, with a fresh token after a sign-in.
async fn serve_session(
    config: &Config,
    req: web_sys::Request,
    url: &HttpUrl,
    route: &crate::config::Route,
    admitted: &access::Admitted,
    head: bool,
    env: &Env,
) -> Result<web_sys::Response> {
    let works = does_work(&req);
    let answer = origin::forward_as(config, req, url, &admitted.wallet, || None).await;
    // As with a payment, an error or a redirect after which nothing was done is not charged: a
    // counted session gets its request back.
    if !matches!(&answer, Ok(r) if sold(r, works, url, config)) {
        access::refund(env, admitted).await;
    }
    let response = match answer {
        Ok(r) => r,
        Err(e) => return origin_unavailable(&e, head),
    };
    let mut extra = Vec::new();
    if let Some(token) = &admitted.token {
        extra = access::token_headers(token);
    }
    // A sign-in is a decision; each request on its token is routine.
    if admitted.token.is_some() || config.log == LogLevel::All {
        log_line(
            "session",
            &admitted.wallet.to_checksum(),
            route.pattern.as_str(),
            "0",
            "served",
        );
    }
    respond::decorate(&response, extra)
}

/// Whether this isolate takes payment `id` for the first time, among the last [`SEEN_HERE`]
/// payments it took: the same signed payment sent again (a replay, or a client's retry) is then
/// refused or admitted by the ledger before its origin is asked.
fn first_sight(id: &str) -> bool {
    thread_local! {
        static SEEN: RefCell<(Vec<String>, usize)> = const { RefCell::new((Vec::new(), 0)) };
    }
    SEEN.with(|seen| {
        let (ids, next) = &mut *seen.borrow_mut();
        if ids.iter().any(|s| s == id) {
            return false;
        }
        if ids.len() < SEEN_HERE {
            ids.push(id.to_string());
        } else {
            ids[*next] = id.to_string();
            *next = (*next + 1) % SEEN_HERE;
        }
        true
    })
}

/// How many payment ids an isolate remembers for [`first_sight`].
const SEEN_HERE: usize = 256;

/// Awaits `first`; with `also`, polls `other` meanwhile, so that what it asks for is under way
/// (and may be done) when it is awaited in its turn.
async fn beside<F: Future, O: Future>(
    first: F,
    mut other: Pin<&mut MaybeDone<O>>,
    also: bool,
) -> F::Output {
    let mut first = pin!(first);
    poll_fn(|cx| {
        if also {
            let _ = other.as_mut().poll(cx);
        }
        first.as_mut().poll(cx)
    })
    .await
}

/// Whether an origin answer is what was paid for: a success, or a WebSocket the origin accepted
/// (`101 Switching Protocols`: the connection is what a payment on an upgrade buys). Not an error,
/// and, for a `GET` or `HEAD`, not a redirect on this site either: a client's fetch follows a
/// redirect with the same payment header, which the target then takes, so charging the redirect
/// too would charge twice, or refuse the second as a replay after the first was paid. (A `304 Not
/// Modified` is not charged for the same reason: it carries no content.)
///
/// A redirect off the site is charged, whatever the method: what was paid for is handed out
/// there (a signed download link, a file on another's CDN), where the payment buys nothing more.
/// Were it not charged, the payment would be withdrawn and could fetch the link again, and again.
/// The site is the request's host, the configured origin's, and their subdomains and parents (a
/// canonical host's redirect, `example.com` to `www.example.com`, whose target takes the payment;
/// so a link on the publisher's own subdomain is not charged).
///
/// For any other method (`works`: the origin may have done the request's work) a `301`, `302` or
/// `303` is what was paid for: it says the request was handled and its result is elsewhere (post,
/// then redirect to the result: `303` by the book, `302` by the default of Rails, Express, Django
/// and Laravel), and the client follows it with a `GET` of another page, which the payment does not
/// buy. Were it not charged, the payment would be withdrawn and could buy the same work again. A
/// `307` or `308` is not charged: it asks for the same request elsewhere, payment and all, where
/// the target takes it.
fn sold(answer: &web_sys::Response, works: bool, url: &HttpUrl, config: &Config) -> bool {
    let status = answer.status();
    if (200..300).contains(&status) || status == 101 {
        return true;
    }
    if !matches!(status, 301..=303 | 307 | 308) {
        return false;
    }
    let location = answer.headers().get("location").ok().flatten();
    let base = format!("{}://{}/", url.scheme, url.host);
    let origin = config.origin.as_deref().unwrap_or_default();
    (works && status <= 303) || js::elsewhere(&location.unwrap_or_default(), &base, origin)
}

/// Whether the origin may do work for this request before its answer is known to be sold (any
/// method but `GET` and `HEAD`): such a request is charged for a `303` too, and its payment, if
/// settled after the origin answers, is checked with the facilitator first.
fn does_work(req: &web_sys::Request) -> bool {
    !matches!(req.method().as_str(), "GET" | "HEAD")
}

/// The most of a body read to look for a `_method` parameter (see
/// [`paywall::method_override`]).
const FORM_LIMIT: u32 = 1 << 20;

/// An unpriced (or freely allowed) request passed to the origin; an origin out of reach gets
/// our JSON 502, not the runtime's bare error page.
async fn pass(
    config: &Config,
    req: web_sys::Request,
    url: &HttpUrl,
    method: &str,
) -> Result<web_sys::Response> {
    match origin::pass(config, req, url).await {
        Ok(answer) => Ok(answer),
        Err(e) => origin_unavailable(&e, method == "HEAD"),
    }
}

/// The answer when the origin was out of reach or too slow.
fn origin_unavailable(e: &worker::Error, head: bool) -> Result<web_sys::Response> {
    let detail = e.to_string();
    let refusal = if detail == origin::BODY_LATE {
        Reason::BodyTooSlow.into()
    } else {
        Refusal::new(Reason::OriginUnavailable, detail)
    };
    respond::reply(paywall::plain_refusal(&refusal), head)
}

/// Counts a served payment (and the session it bought) in the publisher's statistics.
fn count_payment(env: &Env, served: &Served<'_>, paid: &PaidRequest<'_>, deferred: bool) {
    let route = paid.route.stats_name.clone();
    let payer = paid.verified.payer.to_lower_hex();
    stats::record(
        env,
        served.ctx,
        crate::stats::Event::Payment {
            route: route.clone(),
            payer: payer.clone(),
            amount_micro_usd: paywall::micro_usd(paid.verified.offer),
            deferred,
            at: served.now,
        },
    );
    if paid.route.session.is_some() {
        stats::record(
            env,
            served.ctx,
            crate::stats::Event::Session {
                route,
                payer,
                at: served.now,
            },
        );
    }
}

/// When the route sells a session, the grant the payment bought and the token for it.
async fn session_bought(env: &Env, paid: &PaidRequest<'_>) -> Vec<(&'static str, String)> {
    let Some(offer) = &paid.route.session else {
        return Vec::new();
    };
    let (payer, chain) = (
        &paid.verified.payer,
        paid.verified.offer.asset.network.chain_id,
    );
    // Dated from now, once the payment went through, not from the request's start: a slow origin
    // or settlement must not eat into the time bought.
    let now = now_seconds();
    match access::grant_after_payment(env, payer, chain, offer, &paid.entry_id(), now).await {
        Ok(Some(token)) => access::token_headers(&token),
        Ok(None) => Vec::new(),
        // Paid and served, the session not recorded: said in the log, for the publisher to
        // make good; the client may still pay per request.
        Err(why) => {
            log_decision("session_grant_failed", paid, why);
            Vec::new()
        }
    }
}

/// Items gathered per isolate by [`gather`], and when the flush of their batch was scheduled
/// (ms since the epoch).
pub(crate) type Gathered<T> = RefCell<(Vec<T>, f64)>;

/// How late a scheduled flush may be before it is taken for lost (the `waitUntil` of the request
/// that scheduled it was cut short, its client gone at the end of the runtime's grace period).
const FLUSH_LOST_MS: u64 = 5_000;

/// Work gathered per isolate and done off the request path: `item` joins what `pending` holds,
/// and the first item of a batch schedules `flush` for everything gathered `wait_ms` later, kept
/// alive by that request's `waitUntil`. One command to an object then stands for many requests.
/// A batch whose flush is long overdue (its request's `waitUntil` was cut short) is scheduled
/// again by the next item, so that one lost flush cannot stop them all and let items pile up.
fn gather<T: 'static, F: std::future::Future<Output = ()> + 'static>(
    pending: &'static std::thread::LocalKey<Gathered<T>>,
    ctx: &Context,
    item: T,
    wait_ms: u64,
    flush: impl FnOnce(Vec<T>) -> F + 'static,
) {
    let now = js_sys::Date::now();
    let schedule = pending.with(|p| {
        let (items, since) = &mut *p.borrow_mut();
        items.push(item);
        let lost = now - *since > (wait_ms + FLUSH_LOST_MS) as f64;
        let schedule = items.len() == 1 || lost;
        if schedule {
            *since = now;
        }
        schedule
    });
    if !schedule {
        // A flush is already waiting, and will take this one too.
        return;
    }
    ctx.wait_until(async move {
        js::sleep(wait_ms as u32).await;
        let items = pending.with(|p| std::mem::take(&mut p.borrow_mut().0));
        // (A flush taken for lost that ran after all found them taken.)
        if !items.is_empty() {
            flush(items).await;
        }
    });
}

/// A body as text, read by the runtime in one piece (the SDK's `text()` pulls it through a stream
/// reader, chunk by chunk across the wasm boundary: a measurable share of a ledger round trip).
async fn body_text(
    promise: std::result::Result<js_sys::Promise, wasm_bindgen::JsValue>,
) -> Option<String> {
    js::text(promise).await.ok().flatten()
}

/// The KV blocklist: a fast "this wallet owes us" readable at every edge location. The ledger is
/// the truth; this copy only saves a round trip to it.
async fn blocklisted(env: &Env, wallet: &str) -> Option<String> {
    let kv = js::kv(env, KV_BINDING)?;
    let value = kv
        .text(&format!("{}{wallet}", ledger::DELINQUENT_PREFIX))
        .await
        .ok()??;
    let v: serde_json::Value = serde_json::from_str(&value).ok()?;
    Some(
        v.get("owedMicroUsd")
            .and_then(|o| o.as_str())
            .unwrap_or("?")
            .to_string(),
    )
}

fn delinquent(owed_micro_usd: &str) -> Refusal {
    let owed = owed_micro_usd
        .parse::<u128>()
        .map(|m| format!("owes ${}", crate::settlement::usd(m)))
        .unwrap_or_else(|_| "owes an unsettled payment".into());
    Refusal::new(Reason::WalletDelinquent, owed)
}

/// One structured line per decision about money, for `wrangler tail` and Workers Logs.
fn log_decision(outcome: &str, paid: &PaidRequest<'_>, detail: &str) {
    let line = serde_json::json!({
        "event": "payment",
        "outcome": outcome,
        "payer": paid.verified.payer.to_checksum(),
        "route": paid.route.pattern.as_str(),
        "network": paid.verified.offer.requirements.network,
        "amount": paid.verified.offer.requirements.amount,
        "detail": detail,
    });
    worker::console_log!("{line}");
}

/// How the client was identified, for the log: the kind of evidence and the agent it names.
fn evidence_fields(e: &crawlers::Evidence) -> (&'static str, Option<String>) {
    use crawlers::Evidence as E;
    match e {
        E::WebBotAuth { agent } => ("web_bot_auth", Some(agent.clone())),
        E::CloudflareVerifiedBot { category } => ("cloudflare_verified_bot", category.clone()),
        E::DeclaredUserAgent { name } => ("user_agent", Some((*name).to_string())),
        E::BrowserHeuristic => ("browser", None),
        E::None => ("none", None),
    }
}

fn class_name(c: Class) -> &'static str {
    match c {
        Class::Human => "human",
        Class::Crawler => "crawler",
        Class::Agent => "agent",
    }
}

/// One line for a decision about who may come in.
fn log_access(
    who: &bots::Who,
    route: &crate::config::Route,
    outcome: &str,
    status: u16,
    reason: Option<&str>,
) {
    let (kind, agent) = evidence_fields(&who.evidence);
    worker::console_log!(
        "{}",
        serde_json::json!({"event": "access", "class": class_name(who.class), "evidence": kind,
            "agent": agent, "route": route.pattern.as_str(), "outcome": outcome, "status": status,
            "reason": reason})
    );
}

/// One line for a refusal the paywall wrote (402 terms, a refused payment).
fn log_reply(route: &crate::config::Route, reply: &paywall::Reply, served: &Served<'_>) {
    let reason = reply.reason;
    let (class, kind, agent) = match &served.who {
        Some((c, k, a)) => (Some(class_name(*c)), Some(*k), a.clone()),
        None => (None, None, None),
    };
    worker::console_log!(
        "{}",
        serde_json::json!({"event": "refusal", "class": class, "evidence": kind, "agent": agent,
            "route": route.pattern.as_str(), "outcome": "refused", "status": reply.status,
            "reason": reason})
    );
}

fn log_line(event: &str, who: &str, route: &str, amount: &str, outcome: &str) {
    worker::console_log!(
        "{}",
        serde_json::json!({"event": event, "payer": who, "route": route, "amount": amount, "outcome": outcome})
    );
}

/// The cron sweep (`[triggers] crons`): nudges the ledgers with open entries, in case an alarm
/// was missed. Each ledger settles what is due and re-arms its own alarm. One run nudges at most
/// [`crate::settlement::SWEEP_MOST`] of them, one after another, from a random place in the list
/// ([`crate::settlement::sweep_turn`]), so that no wallet waits behind the others for good when there
/// are more than one invocation's subrequests can reach.
#[event(scheduled)]
async fn scheduled(_event: ScheduledEvent, env: Env, _ctx: ScheduleContext) {
    let Ok(wallets) = admin::list_prefix(&env, ledger::OPEN_PREFIX).await else {
        return;
    };
    let mut start = [0u8; 4];
    let _ = getrandom::getrandom(&mut start);
    let start = u32::from_le_bytes(start) as usize;
    for w in crate::settlement::sweep_turn(&wallets, start, crate::settlement::SWEEP_MOST) {
        if let Some(book) = ledger_client::LedgerClient::open(&env, w) {
            let _ = book.send(&ledger::Command::Sweep).await;
        }
    }
}
