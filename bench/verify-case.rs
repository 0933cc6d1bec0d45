//! The one payment both verification benches check, shared by `verify-native` and `verify-wasm`
//! (each includes this file with `#[path]`): the x402 specification's example payment
//! (`tests/vectors/x402-vectors.json`, `spec_example`, a real signature on Base Sepolia) sent as a
//! v2 `PAYMENT-SIGNATURE` header to a one-route configuration, decided by
//! `x402_edge::paywall::decide` at a fixed clock. One call of [`verify_once`] is everything the
//! Worker does with a paid request before any I/O: base64 and JSON decoding of the header, the
//! route match, the terms and clock checks, the EIP-712 digest (keccak) and the secp256k1 public
//! key recovery.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::{json, Value};
use x402_edge::config::Config;
use x402_edge::evm::Address;
use x402_edge::paywall::{self, Decision, Incoming};

/// Inside the example authorization's validity window (validAfter 1740672089, validBefore
/// 1740672154, with the 12 s an immediate settlement keeps in hand).
pub const NOW: u64 = 1_740_672_100;
const URL: &str = "https://shop.example.com/paid/weather";

pub struct Case {
    pub config: Config,
    pub header: String,
    pub payer: Address,
}

pub fn case() -> Case {
    let vectors: Value = serde_json::from_str(include_str!("../tests/vectors/x402-vectors.json"))
        .expect("tests/vectors/x402-vectors.json is JSON");
    let ex = &vectors["spec_example"];
    let config = Config::from_json(
        &json!({
            "payTo": ex["authorization"]["to"],
            "accepts": ["eip155:84532"],
            "facilitator": {"url": "https://facilitator.example.com"},
            "routes": [{
                "path": "/paid/*",
                "method": "GET",
                "price": "10000",
                "maxTimeoutSeconds": 65,
                "description": "A priced thing",
                "mimeType": "application/json",
            }],
        })
        .to_string(),
    )
    .expect("the bench configuration is valid");
    let accepted = serde_json::to_value(&config.routes[0].offers[0].requirements)
        .expect("requirements serialise");
    let payment = json!({
        "x402Version": 2,
        "resource": {"url": URL, "description": "", "mimeType": ""},
        "accepted": accepted,
        "payload": {"signature": ex["signature"], "authorization": ex["authorization"]},
    });
    let payer = Address::parse(ex["recovers_to"].as_str().expect("recovers_to"))
        .expect("recovers_to is an address");
    Case {
        config,
        header: STANDARD.encode(payment.to_string()),
        payer,
    }
}

/// Decides the paid request once; true if the payment verified, signature included, as the payer.
pub fn verify_once(case: &Case) -> bool {
    let incoming = Incoming {
        method: "GET",
        url: URL,
        path: "/paid/weather",
        payment_signature: Some(&case.header),
        x_payment: None,
        preflight_method: None,
        siwx_nonce: None,
    };
    match paywall::decide(&case.config, &incoming, NOW) {
        Decision::Paid(paid) => {
            paid.verified.signature_checked && paid.verified.payer == case.payer
        }
        _ => false,
    }
}
