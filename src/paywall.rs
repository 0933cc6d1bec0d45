//! The decision: what happens to one request. Plain Rust, no I/O.
//!
//! ```text
//! request ─▶ price      which route rule applies (free, priced, none)
//!         ─▶ authorize  a payment header, or nothing (→ 402 with terms)
//!         ─▶ verify     the exact scheme, locally (→ a refusal with its reason)
//!         ─▶ settle     the shell calls the facilitator, then asks us how to answer
//! ```
//!
//! The shell hands us the request's method, URL and the few headers we read, plus the clock; we
//! hand back a [`Decision`]. Rendering (status, headers, body) of everything we answer ourselves is
//! here too, as a [`Reply`], so that the shell only copies bytes.

use crate::config::{Config, Route};
use crate::reason::{Reason, Refusal};
use crate::verify::{self, Verified};
use crate::x402::{
    self, codec, Carrier, Payment, PaymentRequired, PaymentRequiredV1, ResourceInfo, SettleResponse,
};

/// Seconds we keep in hand before an authorization's `validBefore` when settling before we answer:
/// the facilitator refuses anything within 6 s of expiry (one block), plus time for the round trip.
pub const IMMEDIATE_SETTLE_MARGIN_SECONDS: u64 = 12;

/// Headers the paywall answers with on everything it produces, so that browser clients on other
/// origins can read the terms and receipts.
pub const EXPOSE_HEADERS: &str =
    "PAYMENT-REQUIRED, PAYMENT-RESPONSE, X-PAYMENT-RESPONSE, X402-Session, crawler-price, crawler-charged, crawler-error";
/// Request headers a cross-origin client may send.
pub const ALLOW_HEADERS: &str =
    "PAYMENT-SIGNATURE, X-PAYMENT, SIGN-IN-WITH-X, Authorization, Content-Type, Accept";

/// What the shell tells us about a request.
#[derive(Debug, Clone, Copy)]
pub struct Incoming<'a> {
    pub method: &'a str,
    /// The full URL, as the client asked for it.
    pub url: &'a str,
    pub path: &'a str,
    pub payment_signature: Option<&'a str>,
    pub x_payment: Option<&'a str>,
    /// `Access-Control-Request-Method`, present on CORS preflights.
    pub preflight_method: Option<&'a str>,
    /// Fresh random bytes for a Sign-In-With-X challenge, should this request get a 402.
    pub siwx_nonce: Option<[u8; 16]>,
}

/// What a Sign-In-With-X challenge needs besides the route: a fresh nonce and the time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SiwxChallenge {
    pub nonce: [u8; 16],
    pub now: u64,
}

/// What to do with a request.
#[derive(Debug)]
pub enum Decision<'c> {
    /// Not for sale: on to the origin, untouched.
    Pass,
    /// Answer now, without the origin.
    Reply(Reply),
    /// A locally verified payment: settle it, then serve.
    Paid(Box<PaidRequest<'c>>),
}

/// A payment that passed every local check.
#[derive(Debug)]
pub struct PaidRequest<'c> {
    pub route: &'c Route,
    pub verified: Verified<'c>,
    pub payment: Payment,
    pub carrier: Carrier,
    pub url: String,
    pub siwx: Option<SiwxChallenge>,
}

/// A complete answer the paywall gives itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
    /// Our reason code, for the log (empty for answers that are not refusals).
    pub reason: &'static str,
}

/// The priced route covering a method and path, if any.
pub fn priced_route<'c>(config: &'c Config, method: &str, path: &str) -> Option<&'c Route> {
    config.route_for(method, path).filter(|r| !r.is_free())
}

/// Decides what happens to a request at time `now` (unix seconds).
pub fn decide<'c>(config: &'c Config, req: &Incoming<'_>, now: u64) -> Decision<'c> {
    if let (true, Some(method)) = (req.method == "OPTIONS", req.preflight_method) {
        // A preflight for a priced request is ours to answer: the origin does not know the
        // payment headers exist. Any other preflight is the origin's. A plain OPTIONS is priced
        // like any other method: a rule for every method covers it.
        if priced_route(config, &method.to_ascii_uppercase(), req.path).is_some() {
            return Decision::Reply(preflight());
        }
        return Decision::Pass;
    }
    let Some(route) = priced_route(config, req.method, req.path) else {
        return Decision::Pass;
    };
    let siwx = req.siwx_nonce.map(|nonce| SiwxChallenge { nonce, now });
    let siwx = siwx.as_ref();
    let (header, carrier) = match (req.payment_signature, req.x_payment) {
        (Some(h), _) => (h, Carrier::PaymentSignature),
        (None, Some(h)) => (h, Carrier::XPayment),
        (None, None) => {
            return Decision::Reply(challenge(
                route,
                req.url,
                &Reason::PaymentRequired.into(),
                siwx,
            ))
        }
    };
    let payment = match codec::decode_json(header).and_then(Payment::from_json) {
        Ok(p) => p,
        Err(refusal) => return Decision::Reply(challenge(route, req.url, &refusal, siwx)),
    };
    match verify::verify(&payment, route, now, IMMEDIATE_SETTLE_MARGIN_SECONDS) {
        Ok(verified) => Decision::Paid(Box::new(PaidRequest {
            route,
            verified,
            payment,
            carrier,
            url: req.url.to_string(),
            siwx: siwx.copied(),
        })),
        Err(refusal) => Decision::Reply(challenge(route, req.url, &refusal, siwx)),
    }
}

impl PaidRequest<'_> {
    /// The name of the payer's ledger (its Durable Object): the lowercase address.
    pub fn ledger_name(&self) -> String {
        self.verified.payer.to_lower_hex()
    }

    /// What the payer's ledger must remember of this payment. `body` is
    /// [`PaidRequest::facilitator_body`], which the caller has already made for the facilitator.
    pub fn admission(&self, body: &str, deferred: bool) -> crate::settlement::Admission {
        let offer = self.verified.offer;
        let nonce = format!("0x{}", hex::encode(self.verified.nonce));
        let asset = offer.asset.address.to_lower_hex();
        crate::settlement::Admission {
            id: format!("{}:{asset}:{nonce}", offer.asset.network.chain_id),
            asset,
            nonce,
            amount: offer.amount.to_string(),
            amount_micro_usd: micro_usd(offer),
            valid_before: self.verified.valid_before,
            route: self.route.pattern.as_str().to_string(),
            network: offer.requirements.network.clone(),
            deferred,
            payload: serde_json::from_str(body).unwrap_or_default(),
            held: false,
        }
    }

    /// The receipt of a payment accepted for deferred settlement: `success` with an empty
    /// `transaction` means "accepted, settlement pending".
    pub fn pending_receipt(&self) -> SettleResponse {
        SettleResponse {
            success: true,
            error_reason: None,
            error_message: None,
            transaction: String::new(),
            network: self.verified.offer.requirements.network.clone(),
            payer: Some(self.verified.payer.to_checksum()),
        }
    }

    /// A refusal of this payment with fresh terms (replay, delinquency, credit).
    pub fn refuse(&self, refusal: &Refusal) -> Reply {
        challenge(self.route, &self.url, refusal, self.siwx.as_ref())
    }

    /// The terms this payment is settled against, in its own generation's shape.
    pub fn requirements_json(&self) -> serde_json::Value {
        let offer = self.verified.offer;
        let v = if self.payment.version == 1 {
            offer
                .v1(&self.url, &self.route.description, &self.route.mime_type)
                .and_then(|v1| serde_json::to_value(v1).ok())
        } else {
            serde_json::to_value(&offer.requirements).ok()
        };
        v.unwrap_or(serde_json::Value::Null)
    }

    /// The body of the facilitator's `/verify` and `/settle` calls.
    pub fn facilitator_body(&self) -> String {
        crate::facilitator::request_body(
            self.payment.version,
            &self.payment.raw,
            &self.requirements_json(),
        )
    }

    /// Receipt headers for a settled (or accepted) payment.
    pub fn receipt_headers(&self, receipt: &SettleResponse) -> Vec<(&'static str, String)> {
        let value = codec::encode_json(receipt);
        let mut h = Vec::with_capacity(2);
        if self.carrier == Carrier::PaymentSignature || self.payment.version == 2 {
            h.push((x402::PAYMENT_RESPONSE, value.clone()));
        }
        if self.carrier == Carrier::XPayment || self.payment.version == 1 {
            h.push((x402::X_PAYMENT_RESPONSE, value));
        }
        h
    }

    /// The answer when settlement was refused: 402, the receipt saying why, fresh terms.
    pub fn settlement_refused(&self, reason: &str, message: &str) -> Reply {
        let refusal = Refusal {
            reason: Reason::SettlementFailed,
            detail: (!message.is_empty())
                .then(|| message.to_string())
                .or(Some(reason.to_string())),
            x402_override: Some(reason.to_string()),
        };
        let mut reply = challenge(self.route, &self.url, &refusal, self.siwx.as_ref());
        let receipt = SettleResponse {
            success: false,
            error_reason: Some(reason.to_string()),
            error_message: (!message.is_empty()).then(|| message.to_string()),
            transaction: String::new(),
            network: self.verified.offer.requirements.network.clone(),
            payer: Some(self.verified.payer.to_checksum()),
        };
        reply.headers.extend(self.receipt_headers(&receipt));
        reply
    }

    /// The answer when the facilitator gave no usable answer: nothing served, 502.
    pub fn settlement_unknown(&self, why: &str) -> Reply {
        let refusal = Refusal::new(Reason::FacilitatorUnavailable, why);
        challenge(self.route, &self.url, &refusal, self.siwx.as_ref())
    }

    /// The answer when the facilitator judged a smart-wallet signature invalid.
    pub fn facilitator_rejected(&self, reason: &str, message: &str) -> Reply {
        let refusal = Refusal {
            reason: Reason::FacilitatorRejected,
            detail: Some(if message.is_empty() {
                reason.to_string()
            } else {
                message.to_string()
            }),
            x402_override: Some(reason.to_string()),
        };
        challenge(self.route, &self.url, &refusal, self.siwx.as_ref())
    }
}

/// An offer's price in micro-USD (6 decimals), the unit of credit limits. Every accepted token is a
/// dollar stablecoin; its decimals decide the scaling.
pub fn micro_usd(offer: &crate::config::Offer) -> u128 {
    let atomic = offer.amount.to_u128().unwrap_or(u128::MAX);
    let d = u32::from(offer.asset.decimals);
    if d >= 6 {
        atomic / 10u128.saturating_pow(d - 6)
    } else {
        atomic.saturating_mul(10u128.saturating_pow(6 - d))
    }
}

/// The v2 terms of a route for a URL, with the refusal in `error`.
pub fn terms(
    route: &Route,
    url: &str,
    refusal: &Refusal,
    siwx: Option<&SiwxChallenge>,
) -> PaymentRequired {
    let mut extensions = serde_json::Map::new();
    if let Some(b) = &route.bazaar {
        extensions.insert("bazaar".into(), b.clone());
    }
    if let (Some(session), Some(challenge)) = (&route.session, siwx) {
        // A wallet that already bought this scope proves it with Sign-In-With-X instead of paying.
        if let Some(at) = crate::siwx::HttpUrl::parse(url) {
            let chains: Vec<String> = route
                .offers
                .iter()
                .map(|o| o.requirements.network.clone())
                .collect();
            extensions.insert(
                crate::siwx::EXTENSION_KEY.into(),
                crate::siwx::extension(
                    &at.authority(),
                    url,
                    &chains,
                    challenge.nonce,
                    challenge.now,
                    Some(&format!(
                        "Sign in to use what you bought for {}",
                        session.scope.as_str()
                    )),
                    None,
                ),
            );
        }
    }
    PaymentRequired {
        x402_version: 2,
        error: Some(refusal.x402().to_string()),
        resource: ResourceInfo {
            url: url.to_string(),
            description: route.description.clone(),
            mime_type: route.mime_type.clone(),
        },
        accepts: route
            .offers
            .iter()
            .map(|o| o.requirements.clone())
            .collect(),
        extensions,
    }
}

/// A refusal of a priced request: the terms in `PAYMENT-REQUIRED` (v2) and in the body (v1), plus
/// our reason code and sentence. Used for 402s and for malformed payments alike, so a client always
/// has the terms at hand.
pub fn challenge(
    route: &Route,
    url: &str,
    refusal: &Refusal,
    siwx: Option<&SiwxChallenge>,
) -> Reply {
    let v2 = terms(route, url, refusal, siwx);
    let v1: Vec<_> = route
        .offers
        .iter()
        .filter_map(|o| o.v1(url, &route.description, &route.mime_type))
        .collect();
    let message = refusal.message();
    let body = serde_json::to_string(&PaymentRequiredV1 {
        x402_version: 1,
        error: refusal.x402(),
        reason: refusal.reason.info().code,
        message: &message,
        accepts: &v1,
    })
    .unwrap_or_else(|_| "{}".into());
    let mut headers = common_headers();
    headers.push(("Content-Type", "application/json".into()));
    headers.push((x402::PAYMENT_REQUIRED, codec::encode_json(&v2)));
    Reply {
        status: refusal.status(),
        headers,
        body,
        reason: refusal.reason.info().code,
    }
}

/// An answer to a CORS preflight for a priced resource.
pub fn preflight() -> Reply {
    let mut headers = common_headers();
    headers.push(("Access-Control-Allow-Headers", ALLOW_HEADERS.into()));
    headers.push((
        "Access-Control-Allow-Methods",
        "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS".into(),
    ));
    headers.push(("Access-Control-Max-Age", "86400".into()));
    Reply {
        status: 204,
        headers,
        body: String::new(),
        reason: "",
    }
}

/// A refusal that has no route (the paywall's own errors).
pub fn plain_refusal(refusal: &Refusal) -> Reply {
    let mut headers = common_headers();
    headers.push(("Content-Type", "application/json".into()));
    Reply {
        status: refusal.status(),
        headers,
        body: serde_json::to_string(&refusal.body()).unwrap_or_else(|_| "{}".into()),
        reason: refusal.reason.info().code,
    }
}

/// CORS and caching headers on everything the paywall decides: terms and receipts are per request
/// and must never be cached by a shared cache.
pub fn common_headers() -> Vec<(&'static str, String)> {
    vec![
        ("Cache-Control", "no-store".into()),
        ("Access-Control-Allow-Origin", "*".into()),
        ("Access-Control-Expose-Headers", EXPOSE_HEADERS.into()),
    ]
}
