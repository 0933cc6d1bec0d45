//! Payment verification: `paywall::decide` on arbitrary requests, and on payments mutated from
//! valid ones (which `decide` hands to `verify::verify`, the only way the shell calls it), against
//! one fixed configuration (`x402_edge_fuzz::payment_config_json`: the specification's Base
//! Sepolia route and three others) at a fixed clock (`SPEC_NOW`).
//!
//! Input: `[mode] [selector] fields…`, mode (mod 2):
//! - 0, a request: fields `method`, `path`, `payment-signature`, `x-payment`,
//!   `access-control-request-method`; selector bits 0/1/2 say whether the three headers are
//!   present (an empty header is not an absent one), bit 3 whether the 402 offers Sign-In-With-X.
//! - 1, a mutated payment: a valid payment chosen by the selector, then one edit per field
//!   (`[what] [how] value…`, paths in `PAYMENT_PATHS`). Selector bits: 0 v1 (else v2); 1 the
//!   generated vector of Anvil key #0 (else the specification example); 2 sign the edited
//!   authorization again with Anvil key #0 (unless the signature itself was edited); 3–4 the
//!   EIP-712 domain to sign under (`signing_domain`); 5 send it in `X-PAYMENT` (else
//!   `PAYMENT-SIGNATURE`); 6 URL-safe unpadded base64; 7 the path `/multi/x` (else
//!   `/paid/weather`).
//!
//! Invariants besides "no panic": a path that hides a dot segment is refused with 400
//! `invalid_path` whatever its route, and no other path is; a request no priced route covers is
//! passed untouched; every
//! reply is a 4xx with the terms in `PAYMENT-REQUIRED` (and the Sign-In-With-X challenge when
//! asked for) and a JSON body, or the 204 of a preflight for a priced request; a `Paid` decision
//! is for the route that covers the request, and its payer is the authorization's `from`, which
//! k256 (independently of the crate's own code) recovers from the signature over the offer's
//! EIP-712 domain (the configuration has no `rpc`, so no signature goes to a wallet contract); its
//! recipient, value and validity window are the offer's.

#![no_main]

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use x402_edge::config::Config;
use x402_edge::evm::{self, Address, Eip712Domain, U256};
use x402_edge::pattern;
use x402_edge::paywall::{self, Decision, Incoming, IMMEDIATE_SETTLE_MARGIN_SECONDS};
use x402_edge::siwx::HttpUrl;
use x402_edge::verify::{self, CLIENT_VALIDITY_SECONDS, CLOCK_SKEW_SECONDS};
use x402_edge::x402::{codec, Payment};
use x402_edge_fuzz::*;

const ORIGIN: &str = "https://shop.example.com";

fuzz_target!(|data: &[u8]| {
    let config = payment_config();
    let input = Framed::new(data);
    match input.mode % 2 {
        0 => request(config, &input),
        _ => mutated(config, &input),
    }
});

fn request(config: &Config, input: &Framed<'_>) {
    let f = input.strings();
    let field = |i: usize| f.get(i).map(String::as_str).unwrap_or("");
    let present = |bit: u8, i: usize| (input.selector & (1 << bit) != 0).then(|| field(i));
    let (method, path) = (field(0), field(1));
    let url = format!("{ORIGIN}{path}");
    let req = Incoming {
        method,
        url: &url,
        path,
        payment_signature: present(0, 2),
        x_payment: present(1, 3),
        preflight_method: present(2, 4),
        siwx_nonce: (input.selector & 8 != 0).then_some([input.selector; 16]),
    };
    check_decision(config, &req);
}

fn mutated(config: &Config, input: &Framed<'_>) {
    let s = input.selector;
    let mut payment = base_payment(s & 1 != 0, s & 2 != 0);
    let fields = input.fields();
    let touched = apply_edits(&mut payment, PAYMENT_PATHS, &fields);
    if s & 4 != 0 && !touched.contains(&PAYMENT_SIGNATURE_PATH) {
        resign_payment(&mut payment, (s >> 3) & 3);
    }
    let json = serde_json::to_vec(&payment).expect("a Value serialises");
    let header = encode_header(&json, s & 64 != 0);
    let path = if s & 128 != 0 {
        "/multi/x"
    } else {
        "/paid/weather"
    };
    let url = format!("{ORIGIN}{path}");
    let x_payment = s & 32 != 0;
    let req = Incoming {
        method: "GET",
        url: &url,
        path,
        payment_signature: (!x_payment).then_some(header.as_str()),
        x_payment: x_payment.then_some(header.as_str()),
        preflight_method: None,
        siwx_nonce: None,
    };
    check_decision(config, &req);
}

/// `decide`, with every invariant of its answer.
fn check_decision(config: &Config, req: &Incoming<'_>) {
    let decision = paywall::decide(config, req, SPEC_NOW);
    let priced = |m: &str| paywall::priced_route(config, m, req.path);
    // A path that hides a dot segment is refused before any route is matched, priced or not:
    // which route it falls under depends on who reads it. No other path gets that refusal.
    let disguised = pattern::hides_dot_segment(req.path);
    if let Decision::Reply(reply) = &decision {
        assert_eq!(
            reply.reason == "invalid_path",
            disguised,
            "invalid_path for {:?}",
            req.path
        );
    }
    if disguised {
        let Decision::Reply(reply) = &decision else {
            panic!("a disguised path was not refused: {:?}", req.path);
        };
        assert_eq!(
            reply.status, 400,
            "a disguised path answered {}",
            reply.status
        );
        let body: Value = serde_json::from_str(&reply.body).expect("the reply body is JSON");
        assert_eq!(body["reason"], "invalid_path", "{}", reply.body);
        return;
    }
    // A CORS preflight is judged by the method it asks about; a plain OPTIONS like any method.
    let preflight = match (req.method, req.preflight_method) {
        ("OPTIONS", Some(m)) => Some(m.to_ascii_uppercase()),
        _ => None,
    };
    match &decision {
        Decision::Pass => match &preflight {
            Some(m) => assert!(priced(m).is_none(), "a priced preflight was passed"),
            None => assert!(
                priced(req.method).is_none(),
                "a priced request was passed unpaid"
            ),
        },
        Decision::Reply(reply) => {
            if reply.status == 204 {
                let m = preflight
                    .as_deref()
                    .expect("a 204 for something else than a preflight");
                assert!(
                    priced(m).is_some(),
                    "a preflight answered for an unpriced request"
                );
            } else {
                assert!(preflight.is_none(), "a preflight answered {}", reply.status);
                assert!(
                    (400..500).contains(&reply.status),
                    "decide answered {} ({})",
                    reply.status,
                    reply.body
                );
                assert!(
                    priced(req.method).is_some(),
                    "a refusal for an unpriced request"
                );
                serde_json::from_str::<Value>(&reply.body).expect("the reply body is JSON");
                let terms = reply
                    .headers
                    .iter()
                    .find(|(k, _)| *k == "PAYMENT-REQUIRED")
                    .map(|(_, v)| v.as_str())
                    .expect("a refusal carries PAYMENT-REQUIRED");
                // Standard padded base64 of JSON, as the reference clients read it. Not through our
                // own reader: it refuses more than 16 KiB, and the terms echo the request URL (up to
                // three times with a Sign-In-With-X challenge), so a long URL makes them longer.
                let terms: Value = STANDARD
                    .decode(terms)
                    .ok()
                    .and_then(|b| serde_json::from_slice(&b).ok())
                    .expect("our PAYMENT-REQUIRED is base64 of JSON");
                assert_eq!(terms["x402Version"], 2);
                let sells_session = priced(req.method).is_some_and(|r| r.session.is_some());
                if req.siwx_nonce.is_some() && sells_session && HttpUrl::parse(req.url).is_some() {
                    assert!(
                        terms["extensions"].get("sign-in-with-x").is_some(),
                        "no SIWX challenge"
                    );
                }
            }
        }
        Decision::Paid(paid) => {
            assert!(preflight.is_none(), "a preflight was paid");
            let route = priced(req.method).expect("paid for an unpriced request");
            assert!(std::ptr::eq(route, paid.route), "paid under another route");
            let header = req
                .payment_signature
                .or(req.x_payment)
                .expect("paid without a header");
            let payment = codec::decode_json(header)
                .and_then(Payment::from_json)
                .expect("a paid header decodes");
            assert_eq!(paid.payment, payment, "the payment is not the header's");
            check_paid(&payment, &paid.verified);
            // Everything the shell does next with a paid request renders.
            let _ = paid.admission(&paid.facilitator_body(), true, "ticket".into());
            let _ = paid.facilitator_body();
            let _ = paid.receipt_headers(&paid.receipt(String::new()));
            let _ = paid.settlement_refused("invalid_transaction_state", "");
        }
    }
}

fn check_paid(payment: &Payment, v: &verify::Verified<'_>) {
    let auth = &payment.payload.authorization;
    let offer = v.offer;
    let from = Address::parse(&auth.from).expect("paid: from is an address");
    assert_eq!(v.payer, from, "the payer is not authorization.from");
    // The configuration has no `rpc`: a key's signature that is not `from`'s is refused, never
    // passed on as a question for a wallet contract.
    assert!(v.wallet_check.is_none(), "a wallet question without rpc");
    assert_eq!(
        Address::parse(&auth.to).ok(),
        Some(offer.pay_to),
        "paid someone else"
    );
    assert_eq!(
        U256::from_dec_str(&auth.value).ok(),
        Some(offer.amount),
        "paid another amount"
    );
    let after = U256::from_dec_str(&auth.valid_after).expect("validAfter");
    assert!(
        after.to_u64().is_some_and(|a| a <= SPEC_NOW),
        "paid before validAfter"
    );
    assert_eq!(
        U256::from_dec_str(&auth.valid_before).ok(),
        Some(U256::from_u64(v.valid_before))
    );
    assert!(
        v.valid_before >= SPEC_NOW + IMMEDIATE_SETTLE_MARGIN_SECONDS,
        "expires too soon"
    );
    assert!(
        v.valid_before
            <= SPEC_NOW
                + offer.max_timeout_seconds.max(CLIENT_VALIDITY_SECONDS)
                + CLOCK_SKEW_SECONDS,
        "valid for too long"
    );
    assert_eq!(payment.scheme, "exact");
    assert_eq!(evm::parse_bytes32(&auth.nonce).ok(), Some(v.nonce));
    if let Some(accepted) = &payment.accepted {
        assert_eq!(
            Address::parse(&accepted.asset).ok(),
            Some(offer.asset.address)
        );
        assert_eq!(Address::parse(&accepted.pay_to).ok(), Some(offer.pay_to));
        assert_eq!(accepted.max_timeout_seconds, offer.max_timeout_seconds);
    }
    let sig = &payment.payload.signature;
    if v.signature_checked {
        let domain = Eip712Domain {
            name: &offer.asset.name,
            version: &offer.asset.version,
            chain_id: offer.asset.network.chain_id,
            verifying_contract: offer.asset.address,
        };
        let digest = authorization(payment).digest(&domain);
        assert_eq!(
            k256_recover(sig, &digest),
            Some(from),
            "k256 does not recover from over the offer's domain"
        );
    } else {
        // Only signatures longer than 65 bytes are left to the facilitator.
        let len = evm::hex_bytes(sig).map(|b| b.len()).unwrap_or(0);
        assert!(
            len > 65,
            "an unchecked signature of {len} bytes was accepted"
        );
    }
}

fn authorization(p: &Payment) -> evm::TransferWithAuthorization {
    let a = &p.payload.authorization;
    evm::TransferWithAuthorization {
        from: Address::parse(&a.from).expect("from"),
        to: Address::parse(&a.to).expect("to"),
        value: U256::from_dec_str(&a.value).expect("value"),
        valid_after: U256::from_dec_str(&a.valid_after).expect("validAfter"),
        valid_before: U256::from_dec_str(&a.valid_before).expect("validBefore"),
        nonce: evm::parse_bytes32(&a.nonce).expect("nonce"),
    }
}
