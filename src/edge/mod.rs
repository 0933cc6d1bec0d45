//! The Cloudflare shell: turns a `worker::Request` into the core's input, performs the I/O the
//! core asks for (facilitator, origin), and turns the core's decisions into `worker::Response`s.
//!
//! Nothing here decides anything about money; it only carries. Every error of the platform is
//! turned into a clear JSON answer rather than an exception, so no client ever sees a bare 500 from
//! the runtime.

mod facilitator;
mod origin;
mod respond;

use std::cell::RefCell;
use std::rc::Rc;

use worker::{event, Context, Env, Request, Response, Result};

use crate::config::Config;
use crate::facilitator::{SettleOutcome, VerifyOutcome};
use crate::paywall::{self, Decision, Incoming, PaidRequest};
use crate::reason::{Reason, Refusal};
use crate::x402;

/// The binding that holds the configuration (`[vars.X402]` in wrangler.toml).
const CONFIG_BINDING: &str = "X402";
/// Secret: a bearer token sent to the facilitator, if it wants one.
const FACILITATOR_TOKEN: &str = "X402_FACILITATOR_TOKEN";

/// How long what `/supported` said is trusted, and how soon to ask again after it failed.
const SUPPORTED_TTL_SECONDS: u64 = 300;
const SUPPORTED_RETRY_SECONDS: u64 = 30;

type Loaded = Rc<std::result::Result<Config, String>>;

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
    let parsed =
        read_config_json(env).and_then(|json| Config::from_json(&json).map_err(|e| e.to_string()));
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
async fn effective_config(base: &Config, now: u64) -> Rc<Config> {
    if let Some((until, c)) = RESTRICTED.with(|r| r.borrow().clone()) {
        if now < until {
            return c;
        }
    }
    let fresh = match base.facilitator.as_ref() {
        Some(f) => facilitator::supported(f).await,
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
    // A string holds the JSON itself (handy with `wrangler dev --var`); a table arrives as an object.
    if let Ok(v) = env.var(CONFIG_BINDING) {
        let s = v.to_string();
        if s.trim_start().starts_with('{') {
            return Ok(s);
        }
    }
    let value: serde_json::Value = env.object_var(CONFIG_BINDING).map_err(|_| {
        format!("X402: the [vars.X402] table is missing ({CONFIG_BINDING} binding)")
    })?;
    Ok(value.to_string())
}

fn now_seconds() -> u64 {
    worker::Date::now().as_millis() / 1000
}

#[event(fetch)]
async fn fetch(req: Request, env: Env, _ctx: Context) -> Result<Response> {
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
    let config = effective_config(base, now).await;
    let config = config.as_ref();
    let url = req.url()?;
    // Methods are case-sensitive in HTTP, but an origin may not treat them so: compare upper-cased
    // so that `get` cannot walk past a rule for GET.
    let method = req.method().to_string().to_ascii_uppercase();
    let headers = req.headers();
    let header = |name: &str| headers.get(name).ok().flatten();
    let (payment_signature, x_payment, preflight_method) = (
        header(x402::PAYMENT_SIGNATURE),
        header(x402::X_PAYMENT),
        header("access-control-request-method"),
    );
    let incoming = Incoming {
        method: &method,
        url: url.as_str(),
        path: url.path(),
        payment_signature: payment_signature.as_deref(),
        x_payment: x_payment.as_deref(),
        preflight_method: preflight_method.as_deref(),
    };
    let head = method == "HEAD";
    match paywall::decide(config, &incoming, now) {
        Decision::Pass => origin::pass(config, req).await,
        Decision::Reply(reply) => respond::reply(reply, head),
        Decision::Paid(paid) => serve_paid(config, &env, req, &paid, head).await,
    }
}

/// Serves a locally verified payment: smart-wallet signatures are first checked by the
/// facilitator; the origin answers; a successful answer is settled before it leaves. An origin
/// error is passed on unsettled: nobody pays for a failure.
async fn serve_paid(
    config: &Config,
    env: &Env,
    req: Request,
    paid: &PaidRequest<'_>,
    head: bool,
) -> Result<Response> {
    let client = facilitator::Client::new(
        config,
        env.secret(FACILITATOR_TOKEN).ok().map(|s| s.to_string()),
    );
    let body = paid.facilitator_body();
    if !paid.verified.signature_checked {
        match client.verify(&body).await {
            VerifyOutcome::Valid { .. } => {}
            VerifyOutcome::Invalid { reason, message } => {
                return respond::reply(paid.facilitator_rejected(&reason, &message), head);
            }
            VerifyOutcome::Unknown(why) => {
                return respond::reply(paid.settlement_unknown(&why), head)
            }
        }
    }
    let mut response = origin::forward_paid(config, req, paid).await?;
    if response.status_code() >= 400 {
        return Ok(response);
    }
    match client.settle(&body).await {
        SettleOutcome::Settled(receipt) => {
            log_decision("settled", paid, &receipt.transaction);
            respond::decorate(&mut response, paid.receipt_headers(&receipt));
            Ok(response)
        }
        SettleOutcome::Refused { reason, message } => {
            log_decision("settlement_refused", paid, &reason);
            respond::reply(paid.settlement_refused(&reason, &message), head)
        }
        SettleOutcome::Unknown(why) => {
            log_decision("settlement_unknown", paid, &why);
            respond::reply(paid.settlement_unknown(&why), head)
        }
    }
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
