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
use crate::x402::{self, codec, Carrier, Payment, SettleResponse};

/// Seconds we keep in hand before an authorization's `validBefore` when settling before we answer:
/// the facilitator refuses anything within 6 s of expiry (one block), plus time for the round trip.
pub const IMMEDIATE_SETTLE_MARGIN_SECONDS: u64 = 12;

/// Headers the paywall answers with on everything it produces, so that browser clients on other
/// origins can read the terms and receipts.
pub const EXPOSE_HEADERS: &str =
    "PAYMENT-REQUIRED, PAYMENT-RESPONSE, X-PAYMENT-RESPONSE, X402-Session, crawler-price, crawler-charged, crawler-error";
/// Request headers a cross-origin client may send to a priced resource, whose preflight is ours to
/// answer: the payment's and the sign-in's own; `Access-Control-Expose-Headers`, which the
/// official fetch and axios clients set on their paid retry; and, as `*`, any other (a site's own
/// API key, say), which the origin judges as it would without us. `*` covers every name but
/// `Authorization` on a request without credentials, the only kind `Access-Control-Allow-Origin:
/// *` lets through; the names before it are for browsers that predate the wildcard.
pub const ALLOW_HEADERS: &str = "PAYMENT-SIGNATURE, X-PAYMENT, SIGN-IN-WITH-X, Authorization, \
     Content-Type, Accept, Access-Control-Expose-Headers, *";

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
    /// The payment's `payment-identifier`, where the route offers the extension.
    pub payment_id: Option<String>,
    /// With an identifier, the method and URL it was sent with (empty without one): a payment sent
    /// again with its identifier is answered again only for the same request.
    pub request: String,
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
    if let Some(reply) =
        disguised_path(req.path).or_else(|| ambiguous_path(config, req.method, req.path))
    {
        return Decision::Reply(reply);
    }
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
        // A key's signature that is not `from`'s, or one no key's can be: only a wallet contract
        // at `from` can vouch for it, and only through the chain's `rpc`; without one, the local
        // refusal stands.
        Ok(verify::Verified {
            wallet_check: Some(check),
            offer,
            ..
        }) if config.rpc_for(offer.asset.network.chain_id).is_none() => {
            Decision::Reply(challenge(route, req.url, &check.refusal, siwx))
        }
        Ok(verified) => match payment_id(&payment, route) {
            Ok(payment_id) => Decision::Paid(Box::new(PaidRequest {
                route,
                verified,
                payment,
                carrier,
                url: req.url.to_string(),
                siwx: siwx.copied(),
                request: match payment_id {
                    Some(_) => format!("{} {}", req.method, req.url),
                    None => String::new(),
                },
                payment_id,
            })),
            Err(refusal) => Decision::Reply(challenge(route, req.url, &refusal, siwx)),
        },
        Err(refusal) => Decision::Reply(challenge(route, req.url, &refusal, siwx)),
    }
}

/// The longest route description a facilitator is sent, in bytes of UTF-8: CDP's refuses a v2
/// payment whose `resource.description` is longer than 500 characters (x402 issue 2832), which
/// would leave a deferred payment served and never settled. Counted in bytes, the cut is short
/// enough however a facilitator counts (bytes, UTF-16 units or characters).
pub const FACILITATOR_DESCRIPTION_MAX: usize = 500;

/// A route's description as a facilitator is sent it: whole, or cut on a character's boundary to
/// at most [`FACILITATOR_DESCRIPTION_MAX`] bytes (the 402 and the paywall page keep it whole).
pub fn facilitator_description(description: &str) -> &str {
    let mut end = description.len().min(FACILITATOR_DESCRIPTION_MAX);
    while !description.is_char_boundary(end) {
        end -= 1;
    }
    &description[..end]
}

/// The key of the `payment-identifier` extension.
pub const PAYMENT_ID_EXTENSION: &str = "payment-identifier";

/// The schema of the `info` a client sends back in the `payment-identifier` extension (the
/// official one), written out as `serde_json` writes the value (keys in order), which
/// `payment_id_extension_is_the_official_declaration` checks.
const PAYMENT_ID_SCHEMA: &str = concat!(
    r#"{"$schema":"https://json-schema.org/draft/2020-12/schema","#,
    r#""properties":{"id":{"maxLength":128,"minLength":16,"pattern":"^[a-zA-Z0-9_-]+$","type":"string"},"#,
    r#""required":{"type":"boolean"}},"required":["required"],"type":"object"}"#
);

/// The extension as a route's terms offer it.
fn payment_id_offered(required: bool) -> String {
    format!(r#"{{"info":{{"required":{required}}},"schema":{PAYMENT_ID_SCHEMA}}}"#)
}

/// A payment's identifier (`extensions["payment-identifier"].info.id`), where its route offers the
/// extension: `None` when it carries none (refused where one is required), a refusal when it is
/// not 16 to 128 of `[A-Za-z0-9_-]`. A route that does not offer it ignores it.
fn payment_id(payment: &Payment, route: &Route) -> Result<Option<String>, Refusal> {
    use crate::config::PaymentIds;
    if route.payment_ids == PaymentIds::Off {
        return Ok(None);
    }
    let id = payment
        .raw
        .get("extensions")
        .and_then(|e| e.get(PAYMENT_ID_EXTENSION))
        .and_then(|e| e.get("info"))
        .and_then(|i| i.get("id"));
    match id {
        None | Some(serde_json::Value::Null) if route.payment_ids == PaymentIds::Required => {
            Err(Refusal::new(
                Reason::PaymentIdRequired,
                match payment.version {
                    1 => "an x402 v1 payment carries no extensions: pay with v2",
                    _ => "the payment carries no payment-identifier",
                },
            ))
        }
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(id))
            if (16..=128).contains(&id.len())
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') =>
        {
            Ok(Some(id.clone()))
        }
        Some(serde_json::Value::String(id)) => Err(Refusal::new(
            Reason::InvalidPaymentId,
            match id.len() {
                16..=128 => "it holds a character other than A-Z, a-z, 0-9, '-' and '_'",
                _ => "it must be 16 to 128 characters long",
            },
        )),
        Some(_) => Err(Refusal::new(Reason::InvalidPaymentId, "it is not a string")),
    }
}

impl PaidRequest<'_> {
    /// The name of the payer's ledger (its Durable Object): the lowercase address.
    pub fn ledger_name(&self) -> String {
        self.verified.payer.to_lower_hex()
    }

    /// The payment's name in its payer's ledger: chain, token and nonce (a nonce is its token's:
    /// the same one may pay in another token, or on another chain).
    pub fn entry_id(&self) -> String {
        let asset = &self.verified.offer.asset;
        format!(
            "{}:{}:0x{}",
            asset.network.chain_id,
            asset.address.to_lower_hex(),
            hex::encode(self.verified.nonce)
        )
    }

    /// What the payer's ledger must remember of this payment. `body` is
    /// [`PaidRequest::facilitator_body`], which the caller has already made for the facilitator;
    /// `ticket` names the admitting request ([`crate::settlement::Admission::ticket`]).
    pub fn admission(
        &self,
        body: &str,
        deferred: bool,
        ticket: String,
    ) -> crate::settlement::Admission {
        let offer = self.verified.offer;
        let nonce = format!("0x{}", hex::encode(self.verified.nonce));
        let asset = offer.asset.address.to_lower_hex();
        crate::settlement::Admission {
            id: self.entry_id(),
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
            ticket,
            worked: false,
            payment_id: self.payment_id.clone(),
            request: self.request.clone(),
            // (Only a payment with an identifier can be owed its content.)
            reports_serving: self.payment_id.is_some(),
        }
    }

    /// The receipt of a payment settled by `transaction`, or accepted for deferred settlement
    /// (`success` with an empty `transaction` means "accepted, settlement pending").
    pub fn receipt(&self, transaction: String) -> SettleResponse {
        SettleResponse {
            success: true,
            error_reason: None,
            error_message: None,
            transaction,
            network: self.verified.offer.requirements.network.clone(),
            payer: Some(self.verified.payer.to_checksum()),
        }
    }

    /// A refusal of this payment with fresh terms (replay, delinquency, credit).
    pub fn refuse(&self, refusal: &Refusal) -> Reply {
        challenge(self.route, &self.url, refusal, self.siwx.as_ref())
    }

    /// The terms this payment is settled against, in its own generation's shape. A v1 payment's
    /// carry the route's description as the facilitator is sent it ([`facilitator_description`]):
    /// nothing says a facilitator takes a longer one there, and none needs it.
    pub fn requirements_json(&self) -> serde_json::Value {
        let offer = self.verified.offer;
        let v = if self.payment.version == 1 {
            let description = facilitator_description(&self.route.description);
            offer
                .v1(&self.url, description, &self.route.mime_type)
                .and_then(|v1| serde_json::to_value(v1).ok())
        } else {
            serde_json::to_value(&offer.requirements).ok()
        };
        v.unwrap_or(serde_json::Value::Null)
    }

    /// The body of the facilitator's `/verify` and `/settle` calls.
    ///
    /// The payment's `accepted` terms do not go as the client sent them: they were checked to
    /// be ours, yet may be spelt differently (an address in another case, a key more in `extra`),
    /// and a facilitator that compares them with the requirements strictly would refuse at
    /// settlement a payment already served. They go as our terms, exactly; nothing in them is
    /// signed.
    ///
    /// Nor does a v2 payment's `resource` or `extensions` go as the client wrote them: nothing in
    /// them is signed either, and a facilitator may refuse a payment for them (a description too
    /// long for it) or catalogue what they say. They go as our 402 had them: this URL, the
    /// route's description (cut to what CDP's facilitator takes, [`facilitator_description`], as
    /// in a v1 payment's requirements) and type, and the route's `bazaar` document.
    ///
    /// And the payment itself goes as what was checked, rebuilt from it, not as it was spelt: the
    /// payer and recipient in their EIP-55 form (an all-capitals address checks out here, since
    /// only the bytes are signed, but the reference facilitator refuses it), hex in lower case,
    /// and no key the scheme does not define (a facilitator that validates its input strictly
    /// would refuse the payment at settlement for a key the payer added, after it was served).
    pub fn facilitator_body(&self) -> String {
        let requirements = self.requirements_json();
        let wire = &self.payment.payload.authorization;
        let payload = serde_json::json!({
            "signature": self.payment.payload.signature.to_ascii_lowercase(),
            "authorization": {
                "from": self.verified.payer.to_checksum(),
                "to": self.verified.offer.pay_to.to_checksum(),
                "value": wire.value,
                "validAfter": wire.valid_after,
                "validBefore": wire.valid_before,
                "nonce": wire.nonce.to_ascii_lowercase(),
            },
        });
        let mut fields = serde_json::Map::new();
        fields.insert("x402Version".into(), self.payment.version.into());
        if self.payment.version == 2 {
            fields.insert(
                "resource".into(),
                serde_json::json!({
                    "url": self.url,
                    "description": facilitator_description(&self.route.description),
                    "mimeType": self.route.mime_type,
                }),
            );
            fields.insert("accepted".into(), requirements.clone());
            fields.insert("payload".into(), payload);
            if let Some(bazaar) = &self.route.bazaar {
                fields.insert("extensions".into(), serde_json::json!({ "bazaar": bazaar }));
            }
        } else {
            fields.insert("scheme".into(), self.payment.scheme.as_str().into());
            fields.insert("network".into(), self.payment.network.as_str().into());
            fields.insert("payload".into(), payload);
        }
        crate::facilitator::request_body(self.payment.version, fields.into(), requirements)
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

    /// The answer when the wallet's ledger did not answer: nothing served or charged, 503.
    pub fn ledger_unavailable(&self) -> Reply {
        let refusal = Refusal::new(
            Reason::LedgerUnavailable,
            "the payment ledger did not answer",
        );
        challenge(self.route, &self.url, &refusal, self.siwx.as_ref())
    }

    /// The answer when the facilitator's `/verify` gave no usable answer: nothing served, 502.
    pub fn verification_unknown(&self, why: &str) -> Reply {
        let refusal = Refusal::new(Reason::VerificationUnavailable, why);
        challenge(self.route, &self.url, &refusal, self.siwx.as_ref())
    }

    /// The answer when the facilitator's `/verify` judged the payment invalid (a smart wallet's
    /// signature, or a payer short of funds).
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
/// dollar stablecoin; its decimals decide the scaling. A token with more than 6 decimals can
/// charge a fraction of a micro-dollar: it is rounded up, so that no payment counts for less than
/// it is against a wallet's credit (and none counts as nothing).
pub fn micro_usd(offer: &crate::config::Offer) -> u128 {
    let atomic = offer.amount.to_u128().unwrap_or(u128::MAX);
    let d = u32::from(offer.asset.decimals);
    if d >= 6 {
        atomic.div_ceil(10u128.saturating_pow(d - 6))
    } else {
        atomic.saturating_mul(10u128.saturating_pow(6 - d))
    }
}

/// A wallet that already bought a session covering this page proves it with Sign-In-With-X
/// instead of paying: the challenge, where the shell drew one (it does wherever a session sold
/// here or by a pass covering this path could let the request in).
fn siwx_extension(
    route: &Route,
    url: &str,
    siwx: Option<&SiwxChallenge>,
) -> Option<(&'static str, String)> {
    let challenge = siwx?;
    let at = crate::siwx::HttpUrl::parse_request(url)?;
    let chains: Vec<String> = route
        .offers
        .iter()
        .map(|o| o.requirements.network.clone())
        .collect();
    let statement = match &route.session {
        Some(session) => format!(
            "Sign in to use what you bought for {}",
            session.scope.as_str()
        ),
        None => "Sign in to use a session you bought that covers this page".to_string(),
    };
    let value = crate::siwx::extension(
        &at.authority(),
        url,
        &chains,
        challenge.nonce,
        challenge.now,
        Some(&statement),
        None,
    );
    Some((crate::siwx::EXTENSION_KEY, value.to_json()))
}

/// A route's terms as JSON text, rendered once with its configuration: a 402 then only splices
/// in what differs per request (the URL, the refusal, a Sign-In-With-X challenge) instead of
/// copying and serialising the offers and the `bazaar` document again every time.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rendered {
    /// The v2 `resource` object after its `url`: `,"description":…,"mimeType":…}`.
    resource_rest: String,
    /// The v2 `accepts` array.
    accepts: String,
    /// The `bazaar` extension's value.
    bazaar: Option<String>,
    /// The `payment-identifier` extension's value, where the route offers it.
    payment_id: Option<String>,
    /// Each v1 offer, split where its `resource` (the URL) goes.
    v1: Vec<(String, String)>,
}

/// The most JSON a route's terms may take as the official client repeats them in every payment
/// (`resource`, the offer it accepts, the extensions). Base64 of the payment must fit
/// [`crate::x402::codec::MAX_HEADER_BYTES`], 12 KiB of JSON: this leaves 4 KiB for the signed
/// authorization, a sign-in challenge and the page's URL, written up to three times (URLs of
/// about 700 characters at this limit; Node's HTTP client reading 16 KiB of a 402's headers in
/// all is the closer bound). Checked when the configuration loads, as a payment over it would be
/// refused after the client signed.
pub const MAX_ECHOED_TERMS: usize = 8 * 1024;

impl Rendered {
    /// The JSON of the terms a client repeats in its payment, all offers counted.
    pub fn echoed_len(&self) -> usize {
        self.resource_rest.len()
            + self.accepts.len()
            + self.bazaar.as_ref().map_or(0, String::len)
            + self.payment_id.as_ref().map_or(0, String::len)
    }

    pub fn of(route: &Route) -> Rendered {
        let resource_rest = format!(
            ",\"description\":{},\"mimeType\":{}}}",
            json(&route.description),
            json(&route.mime_type)
        );
        let accepts: Vec<_> = route.offers.iter().map(|o| &o.requirements).collect();
        let v1 = route
            .offers
            .iter()
            .filter_map(|o| o.v1("", &route.description, &route.mime_type))
            .map(|o| {
                let text = json(&o);
                // `resource` precedes every value that could hold the same text (`extra`), and a
                // string's quotes are escaped inside it: the first match is the field itself.
                match text.split_once("\"resource\":\"\"") {
                    Some((before, after)) => (format!("{before}\"resource\":"), after.into()),
                    None => (text, String::new()),
                }
            })
            .collect();
        Rendered {
            resource_rest,
            accepts: json(&accepts),
            bazaar: route.bazaar.as_ref().map(json),
            payment_id: match route.payment_ids {
                crate::config::PaymentIds::Off => None,
                ids => Some(payment_id_offered(
                    ids == crate::config::PaymentIds::Required,
                )),
            },
            v1,
        }
    }
}

/// Compact JSON text of one of our own plain values, whose serialising cannot fail (`null` is
/// the safe fallback).
fn json<T: serde::Serialize + ?Sized>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "null".into())
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
    let r = &route.rendered;
    let (url_json, error) = (json(url), json(refusal.x402()));
    let mut v2 =
        String::with_capacity(256 + r.accepts.len() + r.bazaar.as_ref().map_or(0, String::len));
    for part in [
        "{\"x402Version\":2,\"error\":",
        &error,
        ",\"resource\":{\"url\":",
        &url_json,
        &r.resource_rest,
        ",\"accepts\":",
        &r.accepts,
    ] {
        v2.push_str(part);
    }
    // The extensions in key order, as a JSON object of them is written.
    let siwx = siwx_extension(route, url, siwx);
    let extensions = r
        .bazaar
        .as_deref()
        .map(|b| ("bazaar", b))
        .into_iter()
        .chain(r.payment_id.as_deref().map(|p| (PAYMENT_ID_EXTENSION, p)))
        .chain(siwx.as_ref().map(|(k, v)| (*k, v.as_str())));
    let mut opened = false;
    for (key, value) in extensions {
        v2.push_str(if opened { "," } else { ",\"extensions\":{" });
        opened = true;
        v2.push_str(&json(key));
        v2.push(':');
        v2.push_str(value);
    }
    if opened {
        v2.push('}');
    }
    v2.push('}');
    let mut body = String::with_capacity(
        160 + r
            .v1
            .iter()
            .map(|(a, b)| a.len() + b.len() + url_json.len() + 1)
            .sum::<usize>(),
    );
    for part in [
        "{\"x402Version\":1,\"error\":",
        &error,
        ",\"reason\":",
        &json(refusal.reason.info().code),
        ",\"message\":",
        &json(&refusal.message()),
        ",\"accepts\":[",
    ] {
        body.push_str(part);
    }
    for (i, (before, after)) in r.v1.iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        body.push_str(before);
        body.push_str(&url_json);
        body.push_str(after);
    }
    body.push_str("]}");
    let mut headers = common_headers();
    headers.push(("Content-Type", "application/json".into()));
    headers.push((x402::PAYMENT_REQUIRED, codec::encode_text(&v2)));
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

/// The refusal of a path that hides a dot segment ([`crate::pattern::hides_dot_segment`]), read
/// once or, by an origin that decodes twice, twice ([`crate::pattern::decoded_twice`]): which
/// route it falls under depends on who reads it, so it is not passed, priced or let in on a
/// session. So is a path with an IIS `%uNNNN` escape ([`crate::pattern::iis_escape`]). Checked
/// first, by [`decide`] and by the Worker before anything else.
pub fn disguised_path(path: &str) -> Option<Reply> {
    if crate::pattern::iis_escape(path) {
        return Some(plain_refusal(&Refusal::new(
            Reason::InvalidPath,
            format!("{path:?}: a %uNNNN escape, which IIS decodes and other sites do not"),
        )));
    }
    let twice = crate::pattern::decoded_twice(path);
    let hidden = crate::pattern::hides_dot_segment(path)
        || twice
            .as_deref()
            .is_some_and(crate::pattern::hides_dot_segment);
    hidden.then(|| {
        plain_refusal(&Refusal::new(
            Reason::InvalidPath,
            format!(
                "{path:?}: a '.' or '..' segment behind ';', an encoded '/' or '\\' or an \
                 escaped '%', or written with more dots or with spaces"
            ),
        ))
    })
}

/// The refusal of a path with an escaped `%` (`%25` before two hex digits) that an origin
/// decoding twice reads as a path under another route than the one it falls under as sent
/// (`/%2561rticles/x`, which such an origin serves as `/articles/x`): no reading of it can be
/// priced safely. Checked after [`disguised_path`], by [`decide`] and by the Worker.
///
/// Likewise a path that goes on past a script's name, one of whose readings by a server running
/// scripts ([`crate::pattern::script_readings`]) another route prices (`/index.php/articles/x`).
///
/// Likewise a path with an encoded separator (`%2F`, `%5C`) whose segments, read with the
/// separator kept inside its segment as routers that match the raw path do
/// ([`crate::pattern::separators_kept`]), fall under another route than they do split
/// (`/quote/BTC%2FUSD` against a priced `/quote/:symbol`).
pub fn ambiguous_path(config: &Config, method: &str, path: &str) -> Option<Reply> {
    let elsewhere = |other: &str| {
        let same = match (
            config.route_for(method, path),
            config.route_for(method, other),
        ) {
            (None, None) => true,
            (Some(a), Some(b)) => core::ptr::eq(a, b),
            _ => false,
        };
        !same
    };
    // Read as a server running scripts reads it, the path may name a page priced by another rule
    // (who pays, to whom, on which network, not only how much). Read as written only where the
    // path's own rule names the script (`/index.php/2024/*`: a site whose links go through its
    // front controller) and asks no less.
    let script_reading = |other: &String| {
        let Some(theirs) = priced_route(config, method, other) else {
            return false;
        };
        match config.route_for(method, path) {
            Some(ours) if core::ptr::eq(ours, theirs) => false,
            Some(ours) if !ours.is_free() && ours.pattern.names_script() => {
                ours.cheapest_micro_usd() < theirs.cheapest_micro_usd()
            }
            _ => true,
        }
    };
    let detail = if let Some(twice) = crate::pattern::decoded_twice(path).filter(|t| elsewhere(t)) {
        format!(
            "an escaped '%' that an origin decoding twice reads as {twice:?}, which falls under \
             another route"
        )
    } else if let Some(other) = crate::pattern::script_readings(path)
        .iter()
        .find(|other| script_reading(other))
    {
        format!("a server running scripts reads it as {other:?}, which another rule prices")
    } else if crate::pattern::separators_kept(path).is_some_and(|kept| elsewhere(&kept)) {
        "an encoded '/' or '\\' that an origin keeping it inside its segment reads under another \
         route than one splitting there"
            .into()
    } else {
        return None;
    };
    Some(plain_refusal(&Refusal::new(
        Reason::InvalidPath,
        format!("{path:?}: {detail}"),
    )))
}

/// The methods a `_method` parameter may name that matter here: those with their own rules.
const OVERRIDABLE: [&str; 4] = ["GET", "PUT", "PATCH", "DELETE"];

/// Whether a `_method` override on a `POST` to this path could reach a route priced for another
/// method than the one pricing `POST` (or none): only then is the request's query and form body
/// looked at ([`method_override`]). Any other request costs a few route lookups at most.
pub fn override_matters(config: &Config, method: &str, path: &str) -> bool {
    method == "POST"
        && OVERRIDABLE
            .iter()
            .any(|m| priced_elsewhere(config, path, m))
}

/// Whether `claimed` is priced on this path by another route than `POST` is.
fn priced_elsewhere(config: &Config, path: &str, claimed: &str) -> bool {
    let post = config.route_for("POST", path);
    config.route_for(claimed, path).is_some_and(|r| {
        !r.is_free() && r.method_parameter && !post.is_some_and(|p| core::ptr::eq(p, r))
    })
}

/// Every way a `POST` of this `Content-Type` is read for a `_method` parameter by one framework or
/// another (none where none reads it): a form or no type at all as pairs, any `multipart/` type
/// searched (Rack parses `multipart/mixed` and `multipart/related` too), by the type's start, as
/// Rack and PHP tell them; and, as Laravel tells JSON, any type with `/json` or `+json` anywhere
/// in it, parameters included, so that one type may be read two ways.
pub fn override_body(content_type: &str) -> Vec<OverrideBody> {
    let kind = content_type.trim().to_ascii_lowercase();
    let mut ways = Vec::new();
    if kind.starts_with("multipart/") {
        ways.push(OverrideBody::Multipart);
    } else if kind.is_empty() || kind.starts_with("application/x-www-form-urlencoded") {
        ways.push(OverrideBody::Form);
    }
    if kind.contains("/json") || kind.contains("+json") {
        ways.push(OverrideBody::Json);
    }
    ways
}

/// How a request's body is read for a `_method` parameter ([`method_override`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OverrideBody {
    /// `application/x-www-form-urlencoded`, or a `POST` of no type at all, which Rack reads as a
    /// form too: read as pairs.
    Form,
    /// `multipart/form-data`: searched for the name.
    Multipart,
    /// JSON (a type with `/json` or `+json` in it, as Laravel tells one): Laravel takes the
    /// object's own `_method`.
    Json,
}

/// The refusal of a `POST` that names another method in a `_method` parameter (in the query, or
/// in its body: see [`OverrideBody`]), where that method is priced on the path by another route
/// than `POST` is: Rails, Laravel and Symfony serve such a request as the named method, so a `GET`
/// priced for itself would be read for free by a `POST` carrying `_method=GET`. The override
/// headers are removed before the origin is asked (see the Worker's origin module); a parameter
/// cannot be. A parameter's name counts as PHP makes it a variable's ([`php_name`]: `.method` is
/// Laravel's `_method`). A name the parameter cannot be read for (a multipart body) counts as
/// every method.
pub fn method_override(
    config: &Config,
    path: &str,
    query: Option<&str>,
    body: Option<(&str, OverrideBody)>,
) -> Option<Reply> {
    // The methods named: in the query, in a form read as pairs, in a JSON object, or (a multipart
    // body, read as pairs and searched, or JSON this parser refuses) every one that could matter.
    let mut named = String::new();
    let mut name = |method: &str| {
        named.push_str(method.trim());
        named.push('\n');
    };
    let mut add = |text: &str| {
        for (k, v) in crate::siwx::form_pairs(text) {
            if php_name(&k) == "_method" {
                name(&v);
            }
        }
    };
    add(query.unwrap_or(""));
    match body {
        Some((text, OverrideBody::Form)) => add(text),
        Some((text, OverrideBody::Multipart)) => {
            // Read as pairs too: Rack reads a multipart body without a boundary so.
            add(text);
            // Rack takes a backslash in a quoted name as an escape: `_\method` is `_method`.
            let lower = text.to_ascii_lowercase().replace('\\', "");
            // A part named `_method`, spelt in any way PHP reads as that name. A `name=` that
            // ends a longer parameter's name (`filename=`, a file's) names no part.
            let part_named = lower.match_indices("name=").any(|(i, _)| {
                let before = lower[..i].bytes().next_back();
                if before
                    .is_some_and(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
                {
                    return false;
                }
                // Quoted (either quote, as PHP reads it) to the closing quote, or bare to a
                // separator or a space; a NUL ends it for PHP, and leading spaces are dropped.
                // Only its first eight bytes are looked at: `_method` is seven, so that a body
                // of `name=name=…` costs one pass, not one per name.
                let rest = &lower.as_bytes()[i + "name=".len()..];
                let (rest, end) = match rest.split_first() {
                    Some((b'"' | b'\'', quoted)) => {
                        let spaces = quoted.iter().take_while(|&&b| b == b' ').count();
                        (&quoted[spaces..], &b"\"'\r\n\0"[..])
                    }
                    _ => (rest, &b"; \t\r\n\0"[..]),
                };
                let name = rest.iter().take(8).take_while(|b| !end.contains(b));
                name.map(|&b| {
                    if matches!(b, b' ' | b'.' | b'[') {
                        b'_'
                    } else {
                        b
                    }
                })
                .eq(b"_method".iter().copied())
            });
            if part_named || lower.contains("_method") || lower.contains("%5fmethod") {
                OVERRIDABLE.iter().for_each(|m| name(m));
            }
        }
        Some((text, OverrideBody::Json)) => match serde_json::from_str(text) {
            Ok(serde_json::Value::Object(o)) => {
                if let Some(serde_json::Value::String(m)) = o.get("_method") {
                    name(m);
                }
            }
            Ok(_) => {}
            // What this parser refuses, PHP's may read (nesting deeper than 128, a number out of
            // range): searched instead, an escaped name (`\u005f`) counting as the name.
            Err(_) => {
                let lower = text.to_ascii_lowercase();
                if lower.contains("method") || lower.contains("\\u") {
                    OVERRIDABLE.iter().for_each(|m| name(m));
                }
            }
        },
        None => {}
    }
    let named = named.to_ascii_uppercase();
    let priced = named.lines().find(|m| priced_elsewhere(config, path, m))?;
    Some(plain_refusal(&Refusal::new(
        Reason::MethodOverride,
        format!("_method names {priced:?}, which a route prices on {path:?}"),
    )))
}

/// A request parameter's name as PHP registers it (what Laravel and Symfony then read): leading
/// spaces dropped, and a space, a dot or an opening bracket turned into an underscore, so that
/// `.method` and ` _method` both arrive as `_method`.
fn php_name(name: &str) -> String {
    // PHP measures a name with `strlen`: it ends at a NUL.
    let name = name.split('\0').next().unwrap_or_default();
    name.trim_start_matches(' ')
        .chars()
        .map(|c| if matches!(c, ' ' | '.' | '[') { '_' } else { c })
        .collect()
}

/// The refusal of a body too large to be searched for a `_method` override (see
/// [`method_override`]): status 413.
pub fn override_unreadable(limit: u32) -> Reply {
    let mut reply = plain_refusal(&Refusal::new(
        Reason::MethodOverride,
        format!("a body over {limit} bytes cannot be searched for _method"),
    ));
    reply.status = 413;
    reply
}

/// The refusal of a body sent with a `Content-Encoding` where it would be searched for a
/// `_method` parameter (see [`method_override`]): status 415.
pub fn override_encoded() -> Reply {
    let mut reply = plain_refusal(&Refusal::new(
        Reason::MethodOverride,
        "an encoded body cannot be searched for _method",
    ));
    reply.status = 415;
    reply
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::x402::{PaymentRequired, PaymentRequiredV1, ResourceInfo};
    use serde_json::json;

    /// The `payment-identifier` extension as the official server declares it
    /// (`declarePaymentIdentifierExtension(required)` of `@x402/extensions`).
    fn payment_id_extension(required: bool) -> serde_json::Value {
        json!({
            "info": { "required": required },
            "schema": {
                "$schema": "https://json-schema.org/draft/2020-12/schema",
                "type": "object",
                "properties": {
                    "required": { "type": "boolean" },
                    "id": {
                        "type": "string",
                        "minLength": 16,
                        "maxLength": 128,
                        "pattern": "^[a-zA-Z0-9_-]+$"
                    }
                },
                "required": ["required"]
            }
        })
    }

    #[test]
    fn payment_id_extension_is_the_official_declaration() {
        for required in [false, true] {
            let text = payment_id_offered(required);
            assert_eq!(text, payment_id_extension(required).to_string());
        }
    }

    /// The v2 terms of a route for a URL, with the refusal in `error`, as a typed value: what a
    /// 402 carries is [`Rendered`]'s text, which must never differ from this value serialised.
    fn terms(
        route: &Route,
        url: &str,
        refusal: &Refusal,
        siwx: Option<&SiwxChallenge>,
    ) -> PaymentRequired {
        let mut extensions = serde_json::Map::new();
        if let Some(b) = &route.bazaar {
            extensions.insert("bazaar".into(), b.clone());
        }
        if route.payment_ids != crate::config::PaymentIds::Off {
            let required = route.payment_ids == crate::config::PaymentIds::Required;
            extensions.insert(PAYMENT_ID_EXTENSION.into(), payment_id_extension(required));
        }
        // The challenge's own text is checked against its value in the SIWX tests.
        if let Some((key, text)) = siwx_extension(route, url, siwx) {
            let value = serde_json::from_str(&text).expect("the challenge is JSON");
            extensions.insert(key.into(), value);
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

    /// The v1 body of a refusal, serialised from typed values (see [`terms`]).
    fn terms_v1(route: &Route, url: &str, refusal: &Refusal) -> String {
        let v1: Vec<_> = route
            .offers
            .iter()
            .filter_map(|o| o.v1(url, &route.description, &route.mime_type))
            .collect();
        serde_json::to_string(&PaymentRequiredV1 {
            x402_version: 1,
            error: refusal.x402(),
            reason: refusal.reason.info().code,
            message: &refusal.message(),
            accepts: &v1,
        })
        .unwrap_or_else(|_| "{}".into())
    }

    fn config(routes: serde_json::Value) -> Config {
        let v = json!({
            "payTo": "0x209693Bc6afc0C5328bA36FaF03C514EF312287C",
            "accepts": ["base-sepolia", "eip155:31337"],
            "facilitator": {"url": "http://127.0.0.1:4021/"},
            "assets": [{"network": "eip155:31337", "address": "0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512",
                        "name": "USD Coin", "version": "2", "decimals": 6}],
            "routes": routes,
        });
        Config::from_json(&v.to_string()).expect("valid config")
    }

    /// The terms a 402 carries, rendered once per route and spliced per request, are byte for
    /// byte what the typed terms serialise to: in the header (v2) and in the body (v1), with and
    /// without `bazaar`, `payment-identifier` and Sign-In-With-X, for URLs and texts that need
    /// escaping.
    #[test]
    fn rendered_terms_are_the_typed_terms() {
        let c = config(json!([
            {"path": "/a/*", "price": "$0.01"},
            {"path": "/b/*", "price": "$0.02", "description": "Quotes \" and \\ and \"resource\":\"\" and é ☃ \u{1}",
             "mimeType": "text/html; charset=\"utf-8\"", "discovery": {"input": {"q": "x"}}},
            {"path": "/c/*", "price": "$0.03", "description": "Sessions",
             "session": {"scope": "/c/*", "seconds": 3600}, "discovery": {"discoverable": false},
             "paymentIdentifier": "off"},
            {"path": "/d/*", "price": "10000", "accepts": ["eip155:31337"],
             "session": {"scope": "/d/*", "requests": 5}, "paymentIdentifier": "required"},
        ]));
        let urls = [
            "https://news.example/a/x",
            "https://news.example/b/\"quoted\"?q=<é>&r=\\",
            "https://news.example/c/%00/\u{7f}",
            "https://news.example/d/",
        ];
        let refusals = [
            Refusal::from(Reason::PaymentRequired),
            Refusal::new(
                Reason::InvalidShape,
                "payload.authorization.value: \"1\" \u{2028}",
            ),
            Refusal {
                reason: Reason::FacilitatorRejected,
                detail: None,
                x402_override: Some("invalid_exact_evm_payload_signature".into()),
            },
        ];
        let challenge_siwx = SiwxChallenge {
            nonce: [7; 16],
            now: 1_750_000_000,
        };
        let mut checked = 0;
        for route in &c.routes {
            for url in urls {
                for refusal in &refusals {
                    for siwx in [None, Some(&challenge_siwx)] {
                        let reply = challenge(route, url, refusal, siwx);
                        let header = reply
                            .headers
                            .iter()
                            .find(|(k, _)| *k == x402::PAYMENT_REQUIRED)
                            .map(|(_, v)| v.clone())
                            .expect("PAYMENT-REQUIRED");
                        let typed = codec::encode_json(&terms(route, url, refusal, siwx));
                        assert_eq!(header, typed, "v2 terms of {} at {url}", route.index);
                        assert_eq!(reply.body, terms_v1(route, url, refusal));
                        checked += 1;
                    }
                }
            }
        }
        assert_eq!(checked, 4 * 4 * 3 * 2);
        // What the cases cover: bazaar, Sign-In-With-X and v1 offers each present and absent.
        let v2 = |i: usize, siwx| {
            let url = format!("https://news.example/{}/x", ["a", "b", "c", "d"][i]);
            serde_json::to_value(terms(&c.routes[i], &url, &refusals[0], siwx)).unwrap()
        };
        assert!(v2(0, None)["extensions"]["bazaar"].is_object());
        assert!(v2(2, Some(&challenge_siwx))["extensions"]["sign-in-with-x"].is_object());
        assert!(v2(2, None).get("extensions").is_none());
        let both = v2(3, Some(&challenge_siwx))["extensions"].clone();
        assert!(both["bazaar"].is_object() && both["sign-in-with-x"].is_object());
        let ids = |i: usize| v2(i, None)["extensions"]["payment-identifier"]["info"].clone();
        assert_eq!(ids(0), json!({"required": false}), "offered by default");
        assert_eq!(ids(3), json!({"required": true}));
        assert_eq!(
            c.routes[0].rendered.v1.len(),
            1,
            "base-sepolia has a v1 name"
        );
        assert_eq!(c.routes[3].rendered.v1.len(), 0, "eip155:31337 has none");
    }
}
