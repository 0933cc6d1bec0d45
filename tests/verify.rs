//! The paywall core through its public API: `Config::from_json`, then `paywall::decide` on requests
//! carrying real signed payments.
//!
//! 1. The x402 specification's own example payment (a real signature) verifies, as v2 and as v1,
//!    and fails for the right reason when the token's EIP-712 name is wrong.
//! 2. The generated vectors (Anvil key #0) verify on Base Sepolia and Base.
//! 3. A table of mutated payments: one or more cases per refusal `decide` can give, each checked
//!    for status, reason code, x402 error string and the terms in `PAYMENT-REQUIRED`.
//! 4. The 402 of a route with several networks: order, v1 body, determinism, and a client that
//!    pays from those terms on each network.
//! 5. Route matching, HEAD, CORS preflight and the headers on every reply.
//!
//! Valid payments are signed here, fresh, with Anvil key #0 (RFC 6979, low s, v = 27 + recid), at a
//! fixed clock `NOW`.

mod common;

use std::collections::BTreeSet;

use base64::engine::general_purpose::{STANDARD, URL_SAFE};
use base64::Engine;
use common::*;
use serde_json::{json, Value};
use x402_edge::config::{Config, Route};
use x402_edge::evm::{keccak256, parse_bytes32, Address, U256};
use x402_edge::networks;
use x402_edge::paywall::{self, Decision, PaidRequest, Reply};
use x402_edge::reason::{Reason, Refusal};
use x402_edge::x402::{Carrier, SettleResponse};

// ---------------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------------

fn vectors() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/vectors/x402-vectors.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).expect("read vectors")).expect("vectors")
}

/// A one-route configuration: `GET /paid/*` for `price`, on `accepts`, with optional custom assets.
fn one_route(accepts: Value, price: &str, max_timeout: u64, assets: Value) -> Config {
    config(&json!({
        "payTo": PAY_TO,
        "accepts": accepts,
        "assets": assets,
        "facilitator": {"url": FACILITATOR},
        "routes": [{
            "path": "/paid/*",
            "method": "GET",
            "price": price,
            "maxTimeoutSeconds": max_timeout,
            "description": "A priced thing",
            "mimeType": "application/json",
        }],
    }))
}

/// The first priced route of a configuration.
fn priced(c: &Config) -> &Route {
    c.routes
        .iter()
        .find(|r| !r.is_free())
        .expect("a priced route")
}

/// The v2 terms (`PaymentRequirements` JSON) of the first priced route's offer number `i`, as
/// sent in the 402.
fn terms_of(c: &Config, i: usize) -> Value {
    serde_json::to_value(&priced(c).offers[i].requirements).expect("requirements JSON")
}

fn decide_paid<'c>(c: &'c Config, req: &Req, now: u64) -> Box<PaidRequest<'c>> {
    match paywall::decide(c, &req.incoming(), now) {
        Decision::Paid(p) => p,
        Decision::Reply(r) => panic!("expected Paid, got {} {}", r.status, r.body),
        Decision::Pass => panic!("expected Paid, got Pass"),
    }
}

fn decide_reply(c: &Config, req: &Req, now: u64) -> Reply {
    match paywall::decide(c, &req.incoming(), now) {
        Decision::Reply(r) => r,
        Decision::Paid(p) => panic!("expected a reply, got Paid by {}", p.verified.payer),
        Decision::Pass => panic!("expected a reply, got Pass"),
    }
}

/// Checks a refusal of a priced request: status, our code, the x402 string in both generations,
/// the terms in `PAYMENT-REQUIRED`, the v1 body and the common headers.
fn check_refusal(c: &Config, req: &Req, reply: &Reply, want: Reason) -> Result<(), String> {
    let route = paywall::priced_route(c, &req.method, &req.path).expect("a priced request");
    let info = want.info();
    let b = body(reply);
    let mut problems = Vec::new();
    if reply.status != info.status {
        problems.push(format!("status {} (want {})", reply.status, info.status));
    }
    if b["reason"] != info.code {
        problems.push(format!("reason {} (want {})", b["reason"], info.code));
    }
    if b["error"] != info.x402 {
        problems.push(format!("error {} (want {})", b["error"], info.x402));
    }
    if b["x402Version"] != 1 {
        problems.push(format!("body x402Version {}", b["x402Version"]));
    }
    if !b["message"]
        .as_str()
        .is_some_and(|m| m.starts_with(info.message))
    {
        problems.push(format!("message {}", b["message"]));
    }
    if header(reply, "Content-Type") != Some("application/json") {
        problems.push("Content-Type is not application/json".into());
    }
    if let Err(e) = check_common_headers(reply) {
        problems.push(e);
    }
    match header(reply, "PAYMENT-REQUIRED") {
        None => problems.push("no PAYMENT-REQUIRED header".into()),
        Some(h) => {
            let pr = unb64(h);
            let accepts: Vec<Value> = route
                .offers
                .iter()
                .map(|o| serde_json::to_value(&o.requirements).unwrap())
                .collect();
            if pr["x402Version"] != 2 {
                problems.push(format!(
                    "PAYMENT-REQUIRED x402Version {}",
                    pr["x402Version"]
                ));
            }
            if pr["error"] != info.x402 {
                problems.push(format!("PAYMENT-REQUIRED error {}", pr["error"]));
            }
            if pr["accepts"] != Value::from(accepts) {
                problems.push(format!("PAYMENT-REQUIRED accepts {}", pr["accepts"]));
            }
            if pr["resource"]["url"] != req.url.as_str() {
                problems.push(format!("PAYMENT-REQUIRED resource {}", pr["resource"]));
            }
        }
    }
    let v1_count = route
        .offers
        .iter()
        .filter(|o| o.asset.network.v1_name.is_some())
        .count();
    if b["accepts"].as_array().map(Vec::len) != Some(v1_count) {
        problems.push(format!("v1 body accepts {}", b["accepts"]));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

// ---------------------------------------------------------------------------------------------
// 1. The specification example
// ---------------------------------------------------------------------------------------------

const SPEC_NOW: u64 = 1_740_672_100;

fn spec_accepted(name: &str) -> Value {
    json!({
        "scheme": "exact",
        "network": "eip155:84532",
        "amount": "10000",
        "asset": BASE_SEPOLIA_USDC,
        "payTo": PAY_TO,
        "maxTimeoutSeconds": 65,
        "extra": {"name": name, "version": "2"},
    })
}

fn spec_payload() -> Value {
    let ex = &vectors()["spec_example"];
    json!({"signature": ex["signature"], "authorization": ex["authorization"]})
}

fn spec_v2(name: &str) -> Value {
    json!({
        "x402Version": 2,
        "resource": {"url": format!("{ORIGIN}/paid/weather"), "description": "", "mimeType": ""},
        "accepted": spec_accepted(name),
        "payload": spec_payload(),
    })
}

fn spec_v1() -> Value {
    json!({
        "x402Version": 1,
        "scheme": "exact",
        "network": "base-sepolia",
        "payload": spec_payload(),
    })
}

#[test]
fn spec_example_config_accepts_65_second_timeout_and_not_29() {
    let c = one_route(json!(["eip155:84532"]), "10000", 65, json!([]));
    let offer = &c.routes[0].offers[0];
    assert_eq!(offer.max_timeout_seconds, 65);
    assert_eq!(terms_of(&c, 0), spec_accepted("USDC"));
    one_route(json!(["eip155:84532"]), "10000", 30, json!([]));
    let e = Config::from_json(
        &json!({
            "payTo": PAY_TO, "accepts": ["eip155:84532"], "facilitator": {"url": FACILITATOR},
            "routes": [{"path": "/paid/*", "price": "10000", "maxTimeoutSeconds": 29}],
        })
        .to_string(),
    )
    .unwrap_err();
    assert_eq!(e.key, "routes[0].maxTimeoutSeconds");
}

#[test]
fn spec_example_verifies_as_v2_and_as_v1() {
    let c = one_route(json!(["eip155:84532"]), "10000", 65, json!([]));
    let ex = &vectors()["spec_example"];
    let from = Address::parse(ex["authorization"]["from"].as_str().unwrap()).unwrap();

    let req = Req::get("/paid/weather").paying(Some(b64(&spec_v2("USDC"))), None);
    let paid = decide_paid(&c, &req, SPEC_NOW);
    assert_eq!(paid.verified.payer, from);
    assert_eq!(
        paid.verified.payer.to_checksum(),
        ex["recovers_to"].as_str().unwrap()
    );
    assert!(paid.verified.signature_checked);
    assert_eq!(paid.verified.valid_before, 1_740_672_154);
    assert_eq!(
        paid.verified.nonce,
        parse_bytes32(ex["authorization"]["nonce"].as_str().unwrap()).unwrap()
    );
    assert_eq!(paid.carrier, Carrier::PaymentSignature);
    assert_eq!(paid.payment.version, 2);
    assert_eq!(paid.requirements_json(), spec_accepted("USDC"));

    let req = Req::get("/paid/weather").paying(None, Some(b64(&spec_v1())));
    let paid = decide_paid(&c, &req, SPEC_NOW);
    assert_eq!(paid.verified.payer, from);
    assert!(paid.verified.signature_checked);
    assert_eq!(paid.carrier, Carrier::XPayment);
    assert_eq!(paid.payment.version, 1);
    let v1 = paid.requirements_json();
    assert_eq!(v1["network"], "base-sepolia");
    assert_eq!(v1["maxAmountRequired"], "10000");
    assert_eq!(v1["resource"], format!("{ORIGIN}/paid/weather"));
}

#[test]
fn a_key_signature_not_from_s_goes_to_the_wallet_contract_where_the_chain_can_be_asked() {
    // The "USD Coin" domain of the test above, where the example's signature recovers someone
    // else: with an `rpc` for the chain, that is a question for a wallet contract at `from` (a Safe
    // with one owner signs this way), not yet a refusal.
    let with_rpc = |rpc: Value| {
        config(&json!({
            "payTo": PAY_TO,
            "accepts": ["eip155:84532"],
            "assets": [{"network": "eip155:84532", "address": BASE_SEPOLIA_USDC,
                        "name": "USD Coin", "version": "2", "decimals": 6, "symbol": "USDC"}],
            "facilitator": {"url": FACILITATOR},
            "rpc": rpc,
            "routes": [{"path": "/paid/*", "method": "GET", "price": "10000", "maxTimeoutSeconds": 65}],
        }))
    };
    let ex = &vectors()["spec_example"];
    let from = Address::parse(ex["authorization"]["from"].as_str().unwrap()).unwrap();
    let c = with_rpc(json!({"eip155:84532": "https://sepolia.base.org"}));
    for header in [
        Req::get("/paid/weather").paying(None, Some(b64(&spec_v1()))),
        Req::get("/paid/weather").paying(Some(b64(&spec_v2("USD Coin"))), None),
    ] {
        let paid = decide_paid(&c, &header, SPEC_NOW);
        assert_eq!(paid.verified.payer, from);
        assert!(!paid.verified.signature_checked, "not checked by a key");
        let check = paid
            .verified
            .wallet_check
            .as_ref()
            .expect("a question for the wallet");
        // The question is the one USDC asks: the signature as sent, over the EIP-712 digest under
        // this route's domain, the digest under which it recovers 0xED07B31F….
        assert_eq!(
            format!("0x{}", hex::encode(&check.signature)),
            ex["signature"].as_str().unwrap().to_ascii_lowercase()
        );
        let signer = x402_edge::evm::Signature::from_bytes(&check.signature)
            .unwrap()
            .recover(&check.digest)
            .unwrap();
        assert!(signer.to_lower_hex().starts_with("0xed07b31f"), "{signer}");
        assert_eq!(check.refusal.reason, Reason::SignerMismatch);
    }
    // An `rpc` for another chain does not help: the signer mismatch stands.
    let c = with_rpc(json!({"eip155:8453": "https://mainnet.base.org"}));
    let req = Req::get("/paid/weather").paying(None, Some(b64(&spec_v1())));
    let r = decide_reply(&c, &req, SPEC_NOW);
    check_refusal(&c, &req, &r, Reason::SignerMismatch).unwrap();
    // A signature that recovers `from` itself never asks anything.
    let c = one_route(json!(["eip155:84532"]), "10000", 65, json!([]));
    let req = Req::get("/paid/weather").paying(Some(b64(&spec_v2("USDC"))), None);
    assert_eq!(decide_paid(&c, &req, SPEC_NOW).verified.wallet_check, None);
}

#[test]
fn bytes_no_key_signs_go_to_the_wallet_contract_where_they_can_be_settled() {
    // USDC hands any signature to a wallet contract at `from`, which may accept what no key's
    // signature can be: v 0 or 1 (a Safe's approved hash), a high s, fewer than 65 bytes (nothing
    // at all: a message a Safe signed on chain). With an `rpc` for the chain, the wallet is asked,
    // the bytes exactly as sent; without one, the malformed signature is refused as before.
    let base = json!({
        "payTo": PAY_TO,
        "accepts": ["eip155:84532"],
        "facilitator": {"url": FACILITATOR},
        "routes": [{"path": "/paid/*", "method": "GET", "price": "10000", "maxTimeoutSeconds": 65}],
    });
    let mut with_rpc = base.clone();
    with_rpc["rpc"] = json!({"eip155:84532": "https://sepolia.base.org"});
    let (with_rpc, without) = (config(&with_rpc), config(&base));
    let ex = &vectors()["spec_example"];
    let sig = ex["signature"].as_str().unwrap().to_ascii_lowercase();
    let from = Address::parse(ex["authorization"]["from"].as_str().unwrap()).unwrap();
    let signed = |signature: &str| {
        let mut v = spec_v2("USDC");
        v["payload"]["signature"] = json!(signature);
        Req::get("/paid/weather").paying(Some(b64(&v)), None)
    };
    for (what, signature) in [
        ("v = 0", with_v(&sig, 0)),
        ("v = 1", with_v(&sig, 1)),
        ("a high s", high_s_twin(&sig)),
        ("64 bytes", sig[..130].to_string()),
        ("one byte", "0x01".to_string()),
        ("nothing", "0x".to_string()),
    ] {
        let req = signed(&signature);
        let paid = decide_paid(&with_rpc, &req, SPEC_NOW);
        assert_eq!(paid.verified.payer, from, "{what}");
        assert!(!paid.verified.signature_checked, "{what}");
        let check = paid.verified.wallet_check.as_ref().expect(what);
        assert_eq!(
            format!("0x{}", hex::encode(&check.signature)),
            signature,
            "{what}"
        );
        assert_eq!(check.refusal.reason, Reason::InvalidSignature, "{what}");
        // The digest USDC asks about: the one the example's own signature recovers `from` over.
        let own = x402_edge::evm::Signature::parse_hex(&sig).unwrap();
        assert_eq!(own.recover(&check.digest), Ok(from), "{what}");
        // The facilitator is sent the signature as it came.
        let body: Value = serde_json::from_str(&paid.facilitator_body()).unwrap();
        assert_eq!(
            body["paymentPayload"]["payload"]["signature"],
            json!(signature)
        );

        let r = decide_reply(&without, &req, SPEC_NOW);
        check_refusal(&without, &req, &r, Reason::InvalidSignature).unwrap();
    }
    // What the official facilitator could not settle is refused even where a wallet could be
    // asked: v above 28 (a Safe owner's `eth_sign`, v + 4), other v, r or s out of range with a
    // key's v (27 or 28).
    let zero_r = format!("0x{}{}", "00".repeat(32), &sig[66..]);
    for (what, signature) in [
        ("v = 31", with_v(&sig, 31)),
        ("v = 32", with_v(&sig, 32)),
        ("v = 2", with_v(&sig, 2)),
        ("v = 255", with_v(&sig, 255)),
        ("r = 0", zero_r),
        ("odd digits", format!("{sig}0")),
    ] {
        let req = signed(&signature);
        let r = decide_reply(&with_rpc, &req, SPEC_NOW);
        check_refusal(&with_rpc, &req, &r, Reason::InvalidSignature)
            .unwrap_or_else(|e| panic!("{what}: {e}"));
    }
}

#[test]
fn spec_example_is_time_bound() {
    let c = one_route(json!(["eip155:84532"]), "10000", 65, json!([]));
    let req = Req::get("/paid/weather").paying(Some(b64(&spec_v2("USDC"))), None);
    // validAfter 1740672089: usable from the next second on (EIP-3009: timestamp > validAfter).
    let r = decide_reply(&c, &req, 1_740_672_089);
    check_refusal(&c, &req, &r, Reason::NotYetValid).unwrap();
    // validBefore 1740672154: settling needs 12 s in hand.
    let r = decide_reply(&c, &req, 1_740_672_154 - 11);
    check_refusal(&c, &req, &r, Reason::ExpiresTooSoon).unwrap();
    decide_paid(&c, &req, 1_740_672_154 - 12);
}

#[test]
fn terms_longer_than_an_hour_bound_the_validity_themselves() {
    let c = one_route(json!(["eip155:84532"]), "10000", 7200, json!([]));
    let k0 = signing_key(ANVIL0_KEY);
    let draft = Draft::v2(&terms_of(&c, 0), &k0, NOW);
    let with_before = |t: u64| draft.with(|d| d.valid_before = t.to_string());
    let req = |d: &Draft| Req::get("/paid/weather").paying(Some(d.header()), None);
    decide_paid(&c, &req(&with_before(NOW + 7200 + 600)), NOW);
    let long = req(&with_before(NOW + 7200 + 601));
    let r = decide_reply(&c, &long, NOW);
    check_refusal(&c, &long, &r, Reason::ValidTooLong).unwrap();
    assert!(r.body.contains("more than 7200 s ahead"), "{}", r.body);
}

#[test]
fn spec_example_against_a_token_named_usd_coin_is_a_signer_mismatch() {
    // Same chain, same contract, but the configured EIP-712 name is "USD Coin".
    let c = one_route(
        json!(["eip155:84532"]),
        "10000",
        65,
        json!([{"network": "eip155:84532", "address": BASE_SEPOLIA_USDC,
                "name": "USD Coin", "version": "2", "decimals": 6, "symbol": "USDC"}]),
    );
    assert_eq!(c.routes[0].offers[0].asset.name, "USD Coin");
    assert_eq!(terms_of(&c, 0)["extra"]["name"], "USD Coin");

    // v1 carries no terms: the signature is checked against our domain and recovers someone else
    // (0xED07B31F…ad7e, per the protocol digest §6.1).
    let req = Req::get("/paid/weather").paying(None, Some(b64(&spec_v1())));
    let r = decide_reply(&c, &req, SPEC_NOW);
    check_refusal(&c, &req, &r, Reason::SignerMismatch).unwrap();
    let message = body(&r)["message"].as_str().unwrap().to_ascii_lowercase();
    assert!(message.contains("recovered 0xed07b31f"), "{message}");

    // v2 echoing our terms ("USD Coin"): same signature, same refusal.
    let req = Req::get("/paid/weather").paying(Some(b64(&spec_v2("USD Coin"))), None);
    let r = decide_reply(&c, &req, SPEC_NOW);
    check_refusal(&c, &req, &r, Reason::SignerMismatch).unwrap();

    // v2 echoing other terms ("USDC") than this route's: the terms differ before any signature.
    let req = Req::get("/paid/weather").paying(Some(b64(&spec_v2("USDC"))), None);
    let r = decide_reply(&c, &req, SPEC_NOW);
    check_refusal(&c, &req, &r, Reason::TermsMismatch).unwrap();
}

#[test]
fn spec_example_with_another_extra_name_is_a_terms_mismatch() {
    let c = one_route(json!(["eip155:84532"]), "10000", 65, json!([]));
    let req = Req::get("/paid/weather").paying(Some(b64(&spec_v2("USD Coin"))), None);
    let r = decide_reply(&c, &req, SPEC_NOW);
    check_refusal(&c, &req, &r, Reason::TermsMismatch).unwrap();
    assert!(body(&r)["message"]
        .as_str()
        .unwrap()
        .contains("accepted.extra.name"));
}

// ---------------------------------------------------------------------------------------------
// 2. The generated vectors
// ---------------------------------------------------------------------------------------------

#[test]
fn generated_vectors_verify_on_base_sepolia_and_base() {
    let g = &vectors()["generated"];
    let key = signing_key(g["signer_private_key"].as_str().unwrap());
    assert_eq!(
        address_of(&key).to_checksum(),
        g["signer"].as_str().unwrap()
    );
    let c = one_route(
        json!(["eip155:84532", "eip155:8453"]),
        "10000",
        300,
        json!([]),
    );
    for (i, name) in [(0, "base-sepolia"), (1, "base")] {
        let v = &g[name];
        let terms = terms_of(&c, i);
        assert_eq!(terms["extra"]["name"], v["domain"]["name"], "{name}");
        assert_eq!(terms["asset"], v["domain"]["verifyingContract"], "{name}");
        let payload = json!({"signature": v["signature"], "authorization": g["authorization"]});

        // Our signer reproduces the vector's bytes: the table's signatures are what viem makes.
        let auth = &g["authorization"];
        let s = |k: &str| auth[k].as_str().unwrap().to_string();
        let mut d = Draft::v2(&terms, &key, SPEC_NOW);
        (d.to, d.value, d.valid_after, d.valid_before, d.nonce) = (
            s("to"),
            s("value"),
            s("validAfter"),
            s("validBefore"),
            s("nonce"),
        );
        assert_eq!(hex0x(&d.digest()), v["digest"].as_str().unwrap(), "{name}");
        assert_eq!(d.signature(), v["signature"].as_str().unwrap(), "{name}");

        let v2 = json!({"x402Version": 2, "accepted": terms, "payload": payload});
        let req = Req::get("/paid/item").paying(Some(b64(&v2)), None);
        let paid = decide_paid(&c, &req, SPEC_NOW);
        assert_eq!(paid.verified.payer.to_checksum(), ANVIL0, "{name}");
        assert!(paid.verified.signature_checked, "{name}");
        assert_eq!(paid.verified.offer.requirements.network, terms["network"]);

        let v1 = json!({"x402Version": 1, "scheme": "exact", "network": name, "payload": payload});
        let req = Req::get("/paid/item").paying(None, Some(b64(&v1)));
        let paid = decide_paid(&c, &req, SPEC_NOW);
        assert_eq!(paid.verified.payer.to_checksum(), ANVIL0, "{name}");
        assert!(paid.verified.signature_checked, "{name}");
        assert_eq!(paid.verified.offer.requirements.network, terms["network"]);

        // Each vector is bound to its chain: presented as the other network, it is refused.
        let other = if name == "base" {
            "base-sepolia"
        } else {
            "base"
        };
        let v1 = json!({"x402Version": 1, "scheme": "exact", "network": other, "payload": payload});
        let req = Req::get("/paid/item").paying(None, Some(b64(&v1)));
        let r = decide_reply(&c, &req, SPEC_NOW);
        check_refusal(&c, &req, &r, Reason::SignerMismatch).unwrap();
    }
}

// ---------------------------------------------------------------------------------------------
// 3. The refusal table
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want {
    Paid { signature_checked: bool },
    Refused(Reason),
}

const PAID: Want = Want::Paid {
    signature_checked: true,
};
const PAID_UNCHECKED: Want = Want::Paid {
    signature_checked: false,
};
use Want::Refused;

struct Case {
    name: String,
    payment_signature: Option<String>,
    x_payment: Option<String>,
    want: Want,
}

fn raw(name: &str, ps: Option<String>, xp: Option<String>, want: Want) -> Case {
    Case {
        name: name.into(),
        payment_signature: ps,
        x_payment: xp,
        want,
    }
}

/// A payment in the header of its generation.
fn pay(name: &str, d: &Draft, want: Want) -> Case {
    pay_json(name, d.version, &d.json(), want)
}

fn pay_json(name: &str, version: u8, v: &Value, want: Want) -> Case {
    if version == 1 {
        raw(name, None, Some(b64(v)), want)
    } else {
        raw(name, Some(b64(v)), None, want)
    }
}

fn two_pow_256() -> String {
    // 2^256 = 115792089237316195423570985008687907853269984665640564039457584007913129639936
    let max = "115792089237316195423570985008687907853269984665640564039457584007913129639935";
    assert_eq!(U256::from_dec_str(max), Ok(U256::MAX));
    let mut s = max.to_string();
    s.replace_range(s.len() - 1.., "6");
    s
}

/// A valid v2 payment padded (in an ignored field) so that its header is exactly `len` bytes
/// (`len` a multiple of 4: padded base64 of `len / 4 * 3` bytes).
fn padded_header(d: &Draft, len: usize) -> String {
    assert_eq!(len % 4, 0);
    let with_pad = |k: usize| {
        let mut v = d.json();
        v["extensions"] = json!({"padding": "x".repeat(k)});
        v.to_string()
    };
    let json = with_pad(len / 4 * 3 - with_pad(0).len());
    let header = STANDARD.encode(json);
    assert_eq!(header.len(), len);
    header
}

fn table_config() -> Config {
    // Base Sepolia first (the table pays there), Base second (for network-form cases).
    one_route(
        json!(["eip155:84532", "eip155:8453"]),
        "10000",
        300,
        json!([]),
    )
}

fn table(c: &Config) -> Vec<Case> {
    let k0 = signing_key(ANVIL0_KEY);
    let k1 = signing_key(ANVIL1_KEY);
    assert_eq!(address_of(&k1).to_checksum(), ANVIL1);
    let sepolia = terms_of(c, 0);
    let base = terms_of(c, 1);
    let ok = Draft::v2(&sepolia, &k0, NOW);
    let ok_v1 = Draft::v1(&sepolia, &k0, NOW);
    let sig = ok.signature();
    let lower = |s: &str| format!("0x{}", s[2..].to_ascii_lowercase());
    let set_auth =
        |k: &'static str, val: Value| move |v: &mut Value| v["payload"]["authorization"][k] = val;
    let smart_wallet_sig = {
        // An ERC-6492-shaped signature: 98 bytes of wrapper, then the 32-byte magic suffix.
        let mut b = vec![0xab; 98];
        b.extend(hex::decode("6492".repeat(16)).unwrap());
        assert_eq!(b.len(), 130);
        hex0x(&b)
    };
    let mut t: Vec<Case> = Vec::new();

    // --- the valid baselines -----------------------------------------------------------------
    t.push(pay("valid v2 on Base Sepolia", &ok, PAID));
    t.push(pay("valid v1 on base-sepolia", &ok_v1, PAID));
    t.push(pay("valid v2 on Base", &Draft::v2(&base, &k0, NOW), PAID));
    t.push(pay("valid v1 on base", &Draft::v1(&base, &k0, NOW), PAID));
    t.push(raw(
        "v1 payment in PAYMENT-SIGNATURE",
        Some(ok_v1.header()),
        None,
        PAID,
    ));
    t.push(raw(
        "v2 payment in X-PAYMENT",
        None,
        Some(ok.header()),
        PAID,
    ));
    t.push(pay_json(
        "v2 with resource and extensions as the reference client sends",
        2,
        &ok.json_with(|v| {
            v["resource"] =
                json!({"url": format!("{ORIGIN}/paid/item"), "description": "", "mimeType": ""});
            v["extensions"] = json!({"payment-identifier": {"id": "abc"}});
            v["accepted"]["unknownField"] = json!(true);
        }),
        PAID,
    ));
    let with_id = |id: Value| {
        ok.json_with(|v| {
            v["extensions"] = json!({"payment-identifier": {"info": {"required": false, "id": id}}})
        })
    };
    t.push(pay_json(
        "a payment identifier as the official client adds it",
        2,
        &with_id(json!("pay_7d5d747be160e280504c099d984bcfe0")),
        PAID,
    ));
    t.push(pay_json(
        "a payment identifier of 16 characters, the shortest",
        2,
        &with_id(json!("a".repeat(16))),
        PAID,
    ));
    t.push(pay_json(
        "a payment identifier of 15 characters",
        2,
        &with_id(json!("a".repeat(15))),
        Want::Refused(Reason::InvalidPaymentId),
    ));
    t.push(pay_json(
        "a payment identifier of 129 characters",
        2,
        &with_id(json!("a".repeat(129))),
        Want::Refused(Reason::InvalidPaymentId),
    ));
    t.push(pay_json(
        "a payment identifier with a space",
        2,
        &with_id(json!("pay_7d5d747be160 e280504c")),
        Want::Refused(Reason::InvalidPaymentId),
    ));
    t.push(pay_json(
        "a payment identifier with a non-ASCII letter",
        2,
        &with_id(json!("pay_7d5d747be160é280504c")),
        Want::Refused(Reason::InvalidPaymentId),
    ));
    t.push(pay_json(
        "a payment identifier that is a number",
        2,
        &with_id(json!(12345678901234567890u64)),
        Want::Refused(Reason::InvalidPaymentId),
    ));
    t.push(raw(
        "unpadded base64",
        Some(ok.header().trim_end_matches('=').to_string()),
        None,
        PAID,
    ));
    let url_safe = {
        // Padding chosen so the standard encoding has '+' or '/', which base64url writes '-' '_'.
        let v = (0..64)
            .map(|i| ok.json_with(|v| v["extensions"] = json!({"note": "?~".repeat(i)})))
            .find(|v| b64(v).contains(['+', '/']))
            .expect("a payload whose base64 has + or /");
        URL_SAFE.encode(v.to_string())
    };
    assert!(url_safe.contains(['-', '_']));
    t.push(raw("base64url", Some(url_safe), None, PAID));
    t.push(raw(
        "surrounding whitespace",
        Some(format!("  {}\t", ok.header())),
        None,
        PAID,
    ));

    // --- no payment ------------------------------------------------------------------------------
    t.push(raw(
        "no payment header",
        None,
        None,
        Refused(Reason::PaymentRequired),
    ));

    // --- framing --------------------------------------------------------------------------------
    t.push(raw(
        "not base64",
        Some("%%% not base64 %%%".into()),
        None,
        Refused(Reason::InvalidBase64),
    ));
    t.push(raw(
        "empty header",
        Some(String::new()),
        None,
        Refused(Reason::InvalidBase64),
    ));
    t.push(raw(
        "JSON, not base64",
        Some(ok.json().to_string()),
        None,
        Refused(Reason::InvalidBase64),
    ));
    t.push(raw(
        "base64 of non-JSON",
        Some(STANDARD.encode("this is not json")),
        None,
        Refused(Reason::InvalidJson),
    ));
    t.push(raw(
        "base64 of truncated JSON",
        Some(STANDARD.encode(&ok.json().to_string()[..40])),
        None,
        Refused(Reason::InvalidJson),
    ));
    t.push(raw(
        "header over 16 KiB",
        Some(padded_header(&ok, 16 * 1024 + 4)),
        None,
        Refused(Reason::HeaderTooLarge),
    ));
    t.push(raw(
        "header of exactly 16 KiB",
        Some(padded_header(&ok, 16 * 1024)),
        None,
        PAID,
    ));
    t.push(raw(
        "16 KiB of base64 plus one space",
        Some(format!("{} ", padded_header(&ok, 16 * 1024))),
        None,
        Refused(Reason::HeaderTooLarge),
    ));
    t.push(raw(
        "garbage X-PAYMENT over 16 KiB is never read when PAYMENT-SIGNATURE is valid",
        Some(ok.header()),
        Some("!".repeat(20_000)),
        PAID,
    ));

    // --- shape ----------------------------------------------------------------------------------
    for (name, v) in [
        ("JSON array", json!([ok.json()])),
        ("JSON string", json!("hello")),
        ("JSON null", Value::Null),
        ("JSON number", json!(2)),
    ] {
        t.push(raw(
            name,
            Some(b64(&v)),
            None,
            Refused(Reason::InvalidShape),
        ));
    }
    let shape = Refused(Reason::InvalidShape);
    t.push(pay_json(
        "missing payload",
        2,
        &ok.json_with(|v| {
            v.as_object_mut().unwrap().remove("payload");
        }),
        shape,
    ));
    t.push(pay_json(
        "payload is a string",
        2,
        &ok.json_with(|v| v["payload"] = json!("0x1234")),
        shape,
    ));
    t.push(pay_json(
        "missing authorization",
        2,
        &ok.json_with(|v| {
            v["payload"]
                .as_object_mut()
                .unwrap()
                .remove("authorization");
        }),
        shape,
    ));
    t.push(pay_json(
        "missing signature",
        2,
        &ok.json_with(|v| {
            v["payload"].as_object_mut().unwrap().remove("signature");
        }),
        shape,
    ));
    t.push(pay_json(
        "missing nonce",
        2,
        &ok.json_with(|v| {
            v["payload"]["authorization"]
                .as_object_mut()
                .unwrap()
                .remove("nonce");
        }),
        shape,
    ));
    t.push(pay_json(
        "value as a JSON number",
        2,
        &ok.json_with(set_auth("value", json!(10000))),
        shape,
    ));
    t.push(pay_json(
        "validBefore as a JSON number",
        2,
        &ok.json_with(set_auth("validBefore", json!(NOW + 300))),
        shape,
    ));
    t.push(pay_json(
        "signature as a JSON number",
        2,
        &ok.json_with(|v| v["payload"]["signature"] = json!(12)),
        shape,
    ));
    t.push(pay_json(
        "v2 without accepted",
        2,
        &ok.json_with(|v| {
            v.as_object_mut().unwrap().remove("accepted");
        }),
        shape,
    ));
    t.push(pay_json(
        "accepted.maxTimeoutSeconds as a string",
        2,
        &ok.json_with(|v| v["accepted"]["maxTimeoutSeconds"] = json!("300")),
        shape,
    ));
    t.push(pay_json(
        "accepted.amount as a JSON number",
        2,
        &ok.json_with(|v| v["accepted"]["amount"] = json!(10000)),
        shape,
    ));
    t.push(pay_json(
        "v1 without network",
        1,
        &ok_v1.json_with(|v| {
            v.as_object_mut().unwrap().remove("network");
        }),
        shape,
    ));
    t.push(pay_json(
        "permit2 payload",
        2,
        &ok.json_with(|v| {
            v["accepted"]["extra"]["assetTransferMethod"] = json!("permit2");
            v["payload"] = json!({
                "signature": sig,
                "permit2Authorization": {
                    "permitted": {"token": BASE_SEPOLIA_USDC, "amount": "10000"},
                    "from": ANVIL0,
                    "spender": "0x402085c248EeA27D92E8b30b2C58ed07f9E20001",
                    "nonce": "1",
                    "deadline": (NOW + 300).to_string(),
                    "witness": {"to": PAY_TO, "validAfter": (NOW - 600).to_string()},
                },
            });
        }),
        shape,
    ));

    // --- version --------------------------------------------------------------------------------
    let version = Refused(Reason::UnsupportedVersion);
    for (name, x) in [
        ("x402Version 3", Some(json!(3))),
        ("x402Version 0", Some(json!(0))),
        ("x402Version \"2\"", Some(json!("2"))),
        ("x402Version null", Some(Value::Null)),
        ("x402Version -1", Some(json!(-1))),
        ("x402Version missing", None),
    ] {
        let v = ok.json_with(|v| match x {
            Some(x) => v["x402Version"] = x,
            None => {
                v.as_object_mut().unwrap().remove("x402Version");
            }
        });
        t.push(pay_json(name, 2, &v, version));
    }

    // --- scheme and network ---------------------------------------------------------------------
    t.push(pay(
        "scheme upto",
        &ok.with(|d| d.accepted["scheme"] = json!("upto")),
        Refused(Reason::UnsupportedScheme),
    ));
    t.push(pay_json(
        "v1 scheme upto",
        1,
        &ok_v1.json_with(|v| v["scheme"] = json!("upto")),
        Refused(Reason::UnsupportedScheme),
    ));
    let network = Refused(Reason::NetworkMismatch);
    for n in [
        "eip155:1",
        "base",
        "base-sepolia",
        "eip155:084532",
        "eip155:",
        "EIP155:84532",
        "solana:EtWTRABZaYq6iMfeYKouRu166VU2xqa1",
        "",
    ] {
        t.push(pay(
            &format!("v2 network {n:?}"),
            &ok.with(|d| d.accepted["network"] = json!(n)),
            network,
        ));
    }
    for n in [
        "eip155:84532",
        "polygon",
        "ethereum",
        "solana-devnet",
        "Base-Sepolia",
    ] {
        t.push(pay_json(
            &format!("v1 network {n:?}"),
            1,
            &ok_v1.json_with(|v| v["network"] = json!(n)),
            network,
        ));
    }

    // --- the accepted terms ---------------------------------------------------------------------
    t.push(pay(
        "accepted.asset another token (Base USDC on Base Sepolia)",
        &ok.with(|d| d.accepted["asset"] = json!(BASE_USDC)),
        Refused(Reason::AssetMismatch),
    ));
    t.push(pay(
        "accepted.asset not an address",
        &ok.with(|d| d.accepted["asset"] = json!("USDC")),
        Refused(Reason::InvalidAddress),
    ));
    t.push(pay(
        "accepted.asset lowercase",
        &ok.with(|d| d.accepted["asset"] = json!(lower(BASE_SEPOLIA_USDC))),
        PAID,
    ));
    t.push(pay(
        "accepted.payTo another address",
        &ok.with(|d| d.accepted["payTo"] = json!(OTHER_ADDRESS)),
        Refused(Reason::PayToMismatch),
    ));
    t.push(pay(
        "accepted.payTo lowercase",
        &ok.with(|d| d.accepted["payTo"] = json!(lower(PAY_TO))),
        PAID,
    ));
    t.push(pay(
        "accepted.payTo uppercase",
        &ok.with(|d| {
            d.accepted["payTo"] = json!(format!("0x{}", PAY_TO[2..].to_ascii_uppercase()))
        }),
        PAID,
    ));
    t.push(pay(
        "accepted.payTo with a wrong checksum",
        &ok.with(|d| d.accepted["payTo"] = json!(PAY_TO.replacen("Bc", "bc", 1))),
        Refused(Reason::InvalidAddress),
    ));
    for amount in ["9999", "10001", "0"] {
        t.push(pay(
            &format!("accepted.amount {amount}"),
            &ok.with(|d| d.accepted["amount"] = json!(amount)),
            Refused(Reason::PriceMismatch),
        ));
    }
    t.push(pay(
        "accepted.amount hex",
        &ok.with(|d| d.accepted["amount"] = json!("0x2710")),
        Refused(Reason::InvalidNumber),
    ));
    for timeout in [299, 301, 0] {
        t.push(pay(
            &format!("accepted.maxTimeoutSeconds {timeout}"),
            &ok.with(|d| d.accepted["maxTimeoutSeconds"] = json!(timeout)),
            Refused(Reason::TermsMismatch),
        ));
    }
    let terms = Refused(Reason::TermsMismatch);
    t.push(pay(
        "accepted.extra.name USD Coin",
        &ok.with(|d| d.accepted["extra"]["name"] = json!("USD Coin")),
        terms,
    ));
    t.push(pay(
        "accepted.extra.name usdc (case)",
        &ok.with(|d| d.accepted["extra"]["name"] = json!("usdc")),
        terms,
    ));
    t.push(pay(
        "accepted.extra.version 1",
        &ok.with(|d| d.accepted["extra"]["version"] = json!("1")),
        terms,
    ));
    t.push(pay(
        "accepted.extra missing",
        &ok.with(|d| {
            d.accepted.as_object_mut().unwrap().remove("extra");
        }),
        terms,
    ));
    t.push(pay(
        "accepted.extra.assetTransferMethod permit2",
        &ok.with(|d| d.accepted["extra"]["assetTransferMethod"] = json!("permit2")),
        terms,
    ));
    t.push(pay(
        "accepted.extra.assetTransferMethod eip3009",
        &ok.with(|d| d.accepted["extra"]["assetTransferMethod"] = json!("eip3009")),
        PAID,
    ));

    // --- the authorization: recipient and value (each signed again, so only the field is wrong) --
    t.push(pay(
        "authorization.to another address",
        &ok.with(|d| d.to = OTHER_ADDRESS.into()),
        Refused(Reason::RecipientMismatch),
    ));
    t.push(pay(
        "authorization.to lowercase",
        &ok.with(|d| d.to = lower(PAY_TO)),
        PAID,
    ));
    t.push(pay(
        "authorization.to not an address",
        &ok.with(|d| d.to = "0x1234".into()),
        Refused(Reason::InvalidAddress),
    ));
    t.push(pay(
        "authorization.to without 0x",
        &ok.with(|d| d.to = PAY_TO[2..].into()),
        Refused(Reason::InvalidAddress),
    ));
    for value in [
        "9999".to_string(),
        "10001".to_string(),
        "0".to_string(),
        U256::MAX.to_string(),
    ] {
        t.push(pay(
            &format!("authorization.value {value}"),
            &ok.with(|d| d.value = value.clone()),
            Refused(Reason::ValueMismatch),
        ));
    }
    t.push(pay(
        "authorization.value 9999 with accepted.amount 9999",
        &ok.with(|d| {
            d.value = "9999".into();
            d.accepted["amount"] = json!("9999");
        }),
        Refused(Reason::PriceMismatch),
    ));
    for value in [
        "0x2710".to_string(),
        "-1".to_string(),
        "1.5".to_string(),
        String::new(),
        "1e4".to_string(),
        " 10000".to_string(),
        "10000 ".to_string(),
        "+10000".to_string(),
        "１0000".to_string(),
        // The same number to us, not to every facilitator (and the payment goes to it as written).
        "010000".to_string(),
        "00".to_string(),
        two_pow_256(),
        "9".repeat(100),
    ] {
        t.push(pay(
            &format!("authorization.value {value:?}"),
            &ok.with(|d| d.value = value.clone()),
            Refused(Reason::InvalidNumber),
        ));
    }

    // --- the authorization: time window -----------------------------------------------------------
    let after = |t: String| move |d: &mut Draft| d.valid_after = t;
    let before = |t: String| move |d: &mut Draft| d.valid_before = t;
    t.push(pay(
        "validAfter 1 s in the future",
        &ok.with(after((NOW + 1).to_string())),
        Refused(Reason::NotYetValid),
    ));
    t.push(pay(
        "validAfter an hour in the future",
        &ok.with(after((NOW + 3600).to_string())),
        Refused(Reason::NotYetValid),
    ));
    t.push(pay(
        "validAfter beyond u64",
        &ok.with(after(format!("1{}", "0".repeat(30)))),
        Refused(Reason::NotYetValid),
    ));
    t.push(pay(
        "validAfter = now (usable only from the next second, as on chain)",
        &ok.with(after(NOW.to_string())),
        Refused(Reason::NotYetValid),
    ));
    t.push(pay(
        "validAfter = now - 1",
        &ok.with(after((NOW - 1).to_string())),
        PAID,
    ));
    t.push(pay("validAfter 0", &ok.with(after("0".into())), PAID));
    t.push(pay(
        "validAfter with a leading zero",
        &ok.with(after(format!("0{}", NOW - 1))),
        Refused(Reason::InvalidNumber),
    ));
    t.push(pay(
        "validAfter hex",
        &ok.with(after("0x0".into())),
        Refused(Reason::InvalidNumber),
    ));
    t.push(pay(
        "validBefore already past",
        &ok.with(before((NOW - 1).to_string())),
        Refused(Reason::ExpiresTooSoon),
    ));
    t.push(pay(
        "validBefore = now",
        &ok.with(before(NOW.to_string())),
        Refused(Reason::ExpiresTooSoon),
    ));
    t.push(pay(
        "validBefore 0",
        &ok.with(before("0".into())),
        Refused(Reason::ExpiresTooSoon),
    ));
    t.push(pay(
        "validBefore within 12 s (now + 11)",
        &ok.with(before((NOW + 11).to_string())),
        Refused(Reason::ExpiresTooSoon),
    ));
    t.push(pay(
        "validBefore exactly now + 12",
        &ok.with(before((NOW + 12).to_string())),
        PAID,
    ));
    t.push(pay(
        "validBefore now + maxTimeoutSeconds + 601 (within the hour clients may sign for)",
        &ok.with(before((NOW + 300 + 601).to_string())),
        PAID,
    ));
    t.push(pay(
        "validBefore now + an hour, as the official Go client signs whatever the terms say",
        &ok.with(before((NOW + 3600).to_string())),
        PAID,
    ));
    t.push(pay(
        "validBefore exactly now + an hour + 600",
        &ok.with(before((NOW + 3600 + 600).to_string())),
        PAID,
    ));
    t.push(pay(
        "validBefore now + an hour + 601",
        &ok.with(before((NOW + 3600 + 601).to_string())),
        Refused(Reason::ValidTooLong),
    ));
    t.push(pay(
        "validBefore a year ahead",
        &ok.with(before((NOW + 365 * 86_400).to_string())),
        Refused(Reason::ValidTooLong),
    ));
    t.push(pay(
        "validBefore 2^256 - 1",
        &ok.with(before(U256::MAX.to_string())),
        Refused(Reason::ValidTooLong),
    ));
    t.push(pay(
        "validBefore 2^256",
        &ok.with(before(two_pow_256())),
        Refused(Reason::InvalidNumber),
    ));
    t.push(pay(
        "validBefore negative",
        &ok.with(before("-5".into())),
        Refused(Reason::InvalidNumber),
    ));

    // --- the authorization: nonce -----------------------------------------------------------------
    let nonce = Refused(Reason::InvalidNonce);
    for (name, n) in [
        ("nonce 31 bytes", format!("0x{}", "11".repeat(31))),
        ("nonce 33 bytes", format!("0x{}", "11".repeat(33))),
        ("nonce 63 hex digits", format!("0x{}", "1".repeat(63))),
        ("nonce not hex", format!("0x{}", "zz".repeat(32))),
        ("nonce without 0x", "11".repeat(32)),
        ("nonce with 0X", format!("0X{}", "11".repeat(32))),
        ("nonce decimal", "12345".into()),
        ("nonce empty", String::new()),
    ] {
        t.push(pay(name, &ok.with(|d| d.nonce = n.clone()), nonce));
    }
    t.push(pay(
        "nonce in uppercase hex",
        &ok.with(|d| d.nonce = format!("0x{}", d.nonce[2..].to_ascii_uppercase())),
        PAID,
    ));
    t.push(pay(
        "nonce all zero",
        &ok.with(|d| d.nonce = format!("0x{}", "00".repeat(32))),
        PAID,
    ));

    // --- the authorization: from --------------------------------------------------------------------
    t.push(pay(
        "from with a wrong EIP-55 checksum",
        &ok.with(|d| d.from = ANVIL0.replacen("Fd6", "fd6", 1)),
        Refused(Reason::InvalidAddress),
    ));
    t.push(pay(
        "from not an address",
        &ok.with(|d| d.from = "alice".into()),
        Refused(Reason::InvalidAddress),
    ));
    t.push(pay(
        "from 19 bytes",
        &ok.with(|d| d.from = ANVIL0[..40].into()),
        Refused(Reason::InvalidAddress),
    ));
    t.push(pay(
        "from lowercase",
        &ok.with(|d| d.from = lower(ANVIL0)),
        PAID,
    ));
    t.push(pay(
        "from uppercase",
        &ok.with(|d| d.from = format!("0x{}", ANVIL0[2..].to_ascii_uppercase())),
        PAID,
    ));
    t.push(pay(
        "from another address than the signer",
        &ok.with(|d| d.from = ANVIL1.into()),
        Refused(Reason::SignerMismatch),
    ));
    t.push(pay(
        "from the zero address",
        &ok.with(|d| d.from = format!("0x{}", "0".repeat(40))),
        Refused(Reason::SignerMismatch),
    ));

    // --- the signature: form --------------------------------------------------------------------------
    let bad_sig = Refused(Reason::InvalidSignature);
    let with_sig = |s: String| move |d: &mut Draft| d.signature = Some(s);
    t.push(pay(
        "signature high-s (n − s, v flipped)",
        &ok.with(with_sig(high_s_twin(&sig))),
        bad_sig,
    ));
    for v in [0u8, 1, 29, 26, 255] {
        t.push(pay(
            &format!("signature v = {v}"),
            &ok.with(with_sig(with_v(&sig, v))),
            bad_sig,
        ));
    }
    t.push(pay(
        "signature 64 bytes (ERC-2098 compact)",
        &ok.with(with_sig(sig[..130].to_string())),
        bad_sig,
    ));
    t.push(pay(
        "signature empty (0x)",
        &ok.with(with_sig("0x".into())),
        bad_sig,
    ));
    t.push(pay(
        "signature empty string",
        &ok.with(with_sig(String::new())),
        bad_sig,
    ));
    t.push(pay(
        "signature without 0x",
        &ok.with(with_sig(sig[2..].to_string())),
        bad_sig,
    ));
    t.push(pay(
        "signature not hex",
        &ok.with(with_sig(format!("0x{}", "zz".repeat(65)))),
        bad_sig,
    ));
    t.push(pay(
        "signature odd length",
        &ok.with(with_sig(sig[..131].to_string())),
        bad_sig,
    ));
    t.push(pay(
        "signature r = 0",
        &ok.with(with_sig(format!("0x{}{}", "00".repeat(32), &sig[66..]))),
        bad_sig,
    ));
    t.push(pay(
        "signature s = 0",
        &ok.with(with_sig(format!(
            "{}{}{}",
            &sig[..66],
            "00".repeat(32),
            &sig[130..]
        ))),
        bad_sig,
    ));
    t.push(pay(
        "signature in uppercase hex",
        &ok.with(with_sig(format!("0x{}", sig[2..].to_ascii_uppercase()))),
        PAID,
    ));

    // --- the signature: signer and signed fields --------------------------------------------------------
    let signer = Refused(Reason::SignerMismatch);
    t.push(pay(
        "signature with v flipped (27 ↔ 28)",
        &ok.with(with_sig(with_v(
            &sig,
            55 - u8::from_str_radix(&sig[130..], 16).unwrap(),
        ))),
        signer,
    ));
    t.push(pay(
        "signature by another key",
        &ok.with(|d| d.key = k1.clone()),
        signer,
    ));
    t.push(pay(
        "signature over another chain id (Base)",
        &ok.with(|d| d.domain.chain_id = 8453),
        signer,
    ));
    t.push(pay(
        "signature over another chain id (Ethereum)",
        &ok.with(|d| d.domain.chain_id = 1),
        signer,
    ));
    t.push(pay(
        "signature over another token address",
        &ok.with(|d| d.domain.contract = BASE_USDC.into()),
        signer,
    ));
    t.push(pay(
        "signature over EIP-712 name USD Coin",
        &ok.with(|d| d.domain.name = "USD Coin".into()),
        signer,
    ));
    t.push(pay(
        "signature over EIP-712 version 1",
        &ok.with(|d| d.domain.version = "1".into()),
        signer,
    ));
    t.push(pay(
        "signature by another key, from = that key",
        &ok.with(|d| {
            d.key = k1.clone();
            d.from = ANVIL1.into();
        }),
        PAID,
    ));
    let sent_other = |k: &'static str, val: String| {
        move |v: &mut Value| v["payload"]["authorization"][k] = json!(val)
    };
    t.push(pay_json(
        "nonce changed after signing",
        2,
        &ok.json_with(sent_other("nonce", format!("0x{}", "22".repeat(32)))),
        signer,
    ));
    t.push(pay_json(
        "validBefore changed after signing",
        2,
        &ok.json_with(sent_other("validBefore", (NOW + 200).to_string())),
        signer,
    ));
    t.push(pay_json(
        "validAfter changed after signing",
        2,
        &ok.json_with(sent_other("validAfter", (NOW - 1).to_string())),
        signer,
    ));
    t.push(pay_json(
        "v1 signed for base-sepolia, sent as base",
        1,
        &ok_v1.json_with(|v| v["network"] = json!("base")),
        signer,
    ));
    t.push(pay(
        "v1 signature by another key",
        &ok_v1.with(|d| d.key = k1.clone()),
        signer,
    ));

    // --- smart wallets: only the facilitator can judge the signature -----------------------------------
    t.push(pay(
        "130-byte signature (smart wallet) passing every other check",
        &ok.with(with_sig(smart_wallet_sig.clone())),
        PAID_UNCHECKED,
    ));
    t.push(pay(
        "66-byte signature",
        &ok.with(with_sig(format!("{sig}00"))),
        PAID_UNCHECKED,
    ));
    t.push(pay(
        "v1 130-byte signature",
        &ok_v1.with(with_sig(smart_wallet_sig.clone())),
        PAID_UNCHECKED,
    ));
    t.push(pay(
        "130-byte signature, value 9999",
        &ok.with(|d| {
            d.signature = Some(smart_wallet_sig.clone());
            d.value = "9999".into();
        }),
        Refused(Reason::ValueMismatch),
    ));
    t.push(pay(
        "130-byte signature, expired",
        &ok.with(|d| {
            d.signature = Some(smart_wallet_sig.clone());
            d.valid_before = (NOW - 1).to_string();
        }),
        Refused(Reason::ExpiresTooSoon),
    ));
    t.push(pay(
        "130-byte signature, another recipient",
        &ok.with(|d| {
            d.signature = Some(smart_wallet_sig.clone());
            d.to = OTHER_ADDRESS.into();
        }),
        Refused(Reason::RecipientMismatch),
    ));
    t.push(pay(
        "130-byte signature, other terms",
        &ok.with(|d| {
            d.signature = Some(smart_wallet_sig.clone());
            d.accepted["payTo"] = json!(OTHER_ADDRESS);
        }),
        Refused(Reason::PayToMismatch),
    ));
    t.push(pay(
        "130-byte signature, not hex",
        &ok.with(with_sig(format!("0x{}", "zz".repeat(130)))),
        bad_sig,
    ));

    // --- both headers: PAYMENT-SIGNATURE wins -----------------------------------------------------------
    t.push(raw(
        "valid v2 with garbage X-PAYMENT",
        Some(ok.header()),
        Some("garbage!".into()),
        PAID,
    ));
    t.push(raw(
        "valid v2 with a refused v1 X-PAYMENT",
        Some(ok.header()),
        Some(ok_v1.with(|d| d.value = "1".into()).header()),
        PAID,
    ));
    t.push(raw(
        "garbage PAYMENT-SIGNATURE with a valid X-PAYMENT",
        Some("garbage!".into()),
        Some(ok_v1.header()),
        Refused(Reason::InvalidBase64),
    ));
    t.push(raw(
        "expired v2 with a valid X-PAYMENT",
        Some(ok.with(before((NOW - 1).to_string())).header()),
        Some(ok_v1.header()),
        Refused(Reason::ExpiresTooSoon),
    ));

    t
}

#[test]
fn refusal_table() {
    let c = table_config();
    let cases = table(&c);
    let mut failures = Vec::new();
    let mut reasons_seen = BTreeSet::new();
    let (mut paid, mut refused) = (0, 0);
    for case in &cases {
        let req =
            Req::get("/paid/item").paying(case.payment_signature.clone(), case.x_payment.clone());
        let outcome = paywall::decide(&c, &req.incoming(), NOW);
        let result = match (case.want, outcome) {
            (Want::Paid { signature_checked }, Decision::Paid(p)) => {
                paid += 1;
                check_paid(&req, &p, signature_checked)
            }
            (Want::Refused(reason), Decision::Reply(r)) => {
                refused += 1;
                reasons_seen.insert(reason.info().code);
                check_refusal(&c, &req, &r, reason)
            }
            (want, Decision::Reply(r)) => Err(format!(
                "want {want:?}, got {} {}",
                r.status,
                body(&r)["message"]
            )),
            (want, Decision::Paid(p)) => Err(format!(
                "want {want:?}, got Paid (signature_checked {})",
                p.verified.signature_checked
            )),
            (want, Decision::Pass) => Err(format!("want {want:?}, got Pass")),
        };
        if let Err(e) = result {
            failures.push(format!("  {}: {e}", case.name));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );

    // One case at least for every refusal `decide` can give on its own (a path's own refusal is
    // `disguised_dot_segments_are_refused_before_any_route`).
    let shell_only = [
        // Its own test: `a_route_may_require_a_payment_identifier`.
        Reason::PaymentIdRequired,
        Reason::PaymentIdConflict,
        Reason::PaymentInProgress,
        Reason::InvalidPath,
        Reason::InvalidUrl,
        Reason::MethodOverride,
        Reason::SettlementFailed,
        Reason::FacilitatorUnavailable,
        Reason::VerificationUnavailable,
        Reason::OriginUnavailable,
        Reason::BodyTooSlow,
        Reason::LedgerUnavailable,
        Reason::SessionUnavailable,
        Reason::FacilitatorRejected,
        Reason::ConfigInvalid,
        Reason::Replay,
        Reason::WalletDelinquent,
        Reason::CreditExceeded,
        Reason::SessionRefused,
        Reason::Blocked,
        Reason::CrawlerPriceRefused,
        Reason::TooManyRefusals,
    ];
    let missing: Vec<&str> = Reason::ALL
        .iter()
        .filter(|r| !shell_only.contains(r))
        .map(|r| r.info().code)
        .filter(|code| !reasons_seen.contains(code))
        .collect();
    assert!(missing.is_empty(), "no case for {missing:?}");
    eprintln!(
        "refusal table: {} cases ({paid} paid, {refused} refused) over {} reasons",
        cases.len(),
        reasons_seen.len()
    );
}

/// A `Paid` decision agrees with the payment that was sent: payer, carrier, network, window, nonce.
fn check_paid(req: &Req, p: &PaidRequest<'_>, signature_checked: bool) -> Result<(), String> {
    let (header, carrier) = match &req.payment_signature {
        Some(h) => (h, Carrier::PaymentSignature),
        None => (req.x_payment.as_ref().unwrap(), Carrier::XPayment),
    };
    let sent = x402_edge::x402::codec::decode_json(header).map_err(|e| e.message())?;
    let auth = &sent["payload"]["authorization"];
    let s = |k: &str| auth[k].as_str().unwrap_or_default();
    let network = match sent["x402Version"].as_u64() {
        Some(1) => networks::parse_network(sent["network"].as_str().unwrap())
            .unwrap()
            .caip2(),
        _ => sent["accepted"]["network"].as_str().unwrap().to_string(),
    };
    let mut problems = Vec::new();
    if p.verified.signature_checked != signature_checked {
        problems.push(format!(
            "signature_checked {}",
            p.verified.signature_checked
        ));
    }
    if Ok(p.verified.payer) != Address::parse(s("from")) {
        problems.push(format!("payer {} but from {}", p.verified.payer, s("from")));
    }
    if p.carrier != carrier {
        problems.push(format!("carrier {:?}", p.carrier));
    }
    if p.verified.offer.requirements.network != network {
        problems.push(format!(
            "offer on {}",
            p.verified.offer.requirements.network
        ));
    }
    if Some(p.verified.valid_before) != s("validBefore").parse().ok() {
        problems.push(format!("valid_before {}", p.verified.valid_before));
    }
    if Ok(p.verified.nonce) != parse_bytes32(s("nonce")) {
        problems.push("nonce".into());
    }
    if p.url != req.url {
        problems.push(format!("url {}", p.url));
    }
    if p.payment.raw != sent {
        problems.push("raw payment is not the payment as sent".into());
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

#[test]
fn no_payment_is_a_402_with_terms() {
    let c = table_config();
    let req = Req::get("/paid/item");
    let r = decide_reply(&c, &req, NOW);
    check_refusal(&c, &req, &r, Reason::PaymentRequired).unwrap();
    assert_eq!(r.status, 402);
    assert_eq!(body(&r)["error"], "payment_required");
}

#[test]
fn the_same_payment_is_judged_by_the_clock() {
    // A valid payment signed at NOW: refused before its window, accepted inside it, refused once
    // too close to validBefore to settle.
    let c = table_config();
    let d = Draft::v2(&terms_of(&c, 0), &signing_key(ANVIL0_KEY), NOW);
    let req = Req::get("/paid/item").paying(Some(d.header()), None);
    let valid_after = NOW - 600;
    let valid_before = NOW + 300;
    for (now, want) in [
        (valid_after, Some(Reason::NotYetValid)),
        (valid_after + 1, None),
        // Sent early: validBefore is within maxTimeoutSeconds + 600 s of the clock.
        (valid_before - 300 - 599, None),
        (valid_before - 12, None),
        (valid_before - 11, Some(Reason::ExpiresTooSoon)),
        (valid_before + 1, Some(Reason::ExpiresTooSoon)),
    ] {
        match (want, paywall::decide(&c, &req.incoming(), now)) {
            (None, Decision::Paid(p)) => assert!(p.verified.signature_checked),
            (Some(reason), Decision::Reply(r)) => {
                check_refusal(&c, &req, &r, reason).unwrap_or_else(|e| panic!("now = {now}: {e}"))
            }
            (want, _) => panic!("now = {now}: want {want:?}"),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 4. The 402 of a route with several networks
// ---------------------------------------------------------------------------------------------

fn three_networks() -> Config {
    config(&json!({
        "payTo": PAY_TO,
        "facilitator": {"url": FACILITATOR},
        "assets": [{"network": "eip155:31337", "address": ANVIL_USDC, "name": "USD Coin",
                    "version": "2", "decimals": 6, "symbol": "USDC"}],
        "routes": [{
            "path": "/reports/:id",
            "price": "$0.25",
            "description": "A quarterly report",
            "mimeType": "application/pdf",
            "accepts": ["base", "eip155:84532", {"network": "eip155:31337", "asset": "USDC"}],
        }],
    }))
}

#[test]
fn several_networks_in_order_v2_header_and_v1_body() {
    let c = three_networks();
    let req = Req::get("/reports/q3");
    let r = decide_reply(&c, &req, NOW);
    check_refusal(&c, &req, &r, Reason::PaymentRequired).unwrap();

    let pr = payment_required(&r);
    assert_eq!(pr["x402Version"], 2);
    assert_eq!(
        pr["resource"],
        json!({"url": format!("{ORIGIN}/reports/q3"), "description": "A quarterly report",
               "mimeType": "application/pdf"})
    );
    let extensions: Vec<&String> = pr["extensions"].as_object().unwrap().keys().collect();
    assert_eq!(
        extensions,
        ["bazaar", "payment-identifier"],
        "discovery and retries: this route sells no session"
    );
    let accepts = pr["accepts"].as_array().unwrap();
    let expected = [
        ("eip155:8453", BASE_USDC, "USD Coin"),
        ("eip155:84532", BASE_SEPOLIA_USDC, "USDC"),
        ("eip155:31337", ANVIL_USDC, "USD Coin"),
    ];
    assert_eq!(accepts.len(), expected.len());
    for (a, (network, asset, name)) in accepts.iter().zip(expected) {
        assert_eq!(
            a,
            &json!({
                "scheme": "exact",
                "network": network,
                "amount": "250000",
                "asset": asset,
                "payTo": PAY_TO,
                "maxTimeoutSeconds": 300,
                "extra": {"name": name, "version": "2"},
            })
        );
    }

    let b = body(&r);
    assert_eq!(b["x402Version"], 1);
    assert_eq!(b["error"], "payment_required");
    let v1 = b["accepts"].as_array().unwrap();
    let networks: Vec<&str> = v1.iter().map(|a| a["network"].as_str().unwrap()).collect();
    assert_eq!(networks, ["base", "base-sepolia"]);
    for (a, asset) in v1.iter().zip([BASE_USDC, BASE_SEPOLIA_USDC]) {
        assert_eq!(a["scheme"], "exact");
        assert_eq!(a["maxAmountRequired"], "250000");
        assert_eq!(a["resource"], format!("{ORIGIN}/reports/q3"));
        assert_eq!(a["description"], "A quarterly report");
        assert_eq!(a["mimeType"], "application/pdf");
        assert_eq!(a["payTo"], PAY_TO);
        assert_eq!(a["asset"], asset);
        assert!(a["maxTimeoutSeconds"].is_u64());
        assert!(a["extra"]["name"].is_string() && a["extra"]["version"].is_string());
        // The legacy client's zod schema refuses `outputSchema: null`.
        assert!(!a.get("outputSchema").is_some_and(Value::is_null), "{a}");
        assert!(a.get("amount").is_none(), "v1 says maxAmountRequired");
    }
}

#[test]
fn terms_are_deterministic() {
    let c = three_networks();
    let req = Req::get("/reports/q3");
    let first = decide_reply(&c, &req, NOW);
    let second = decide_reply(&c, &req, NOW + 1234);
    assert_eq!(
        header(&first, "PAYMENT-REQUIRED"),
        header(&second, "PAYMENT-REQUIRED")
    );
    assert_eq!(
        payment_required(&first)["accepts"],
        payment_required(&second)["accepts"]
    );
    assert_eq!(first, second);
    // A refusal carries the very same terms, only the error differs.
    let bad = req.clone().paying(Some("garbage".into()), None);
    let refused = decide_reply(&c, &bad, NOW);
    assert_eq!(
        payment_required(&refused)["accepts"],
        payment_required(&first)["accepts"]
    );
    assert_eq!(body(&refused)["accepts"], body(&first)["accepts"]);
}

#[test]
fn a_client_pays_from_the_402_on_each_network() {
    // What a reference client does: read PAYMENT-REQUIRED (or the v1 body), echo the chosen terms,
    // sign with the domain they name, retry.
    let c = three_networks();
    let key = signing_key(ANVIL0_KEY);
    let req = Req::get("/reports/q3");
    let r = decide_reply(&c, &req, NOW);
    for terms in payment_required(&r)["accepts"].as_array().unwrap() {
        let d = Draft::v2(terms, &key, NOW);
        let paid = decide_paid(&c, &req.clone().paying(Some(d.header()), None), NOW);
        assert!(paid.verified.signature_checked);
        assert_eq!(&paid.requirements_json(), terms);
        assert_eq!(paid.verified.payer.to_checksum(), ANVIL0);
    }
    for terms in body(&r)["accepts"].as_array().unwrap() {
        // A v1 client signs over the same domain, named by maxAmountRequired and the v1 network.
        let mut v2_terms = terms.clone();
        v2_terms["network"] = json!(networks::parse_network(terms["network"].as_str().unwrap())
            .unwrap()
            .caip2());
        v2_terms["amount"] = terms["maxAmountRequired"].clone();
        let d = Draft::v1(&v2_terms, &key, NOW);
        let paid = decide_paid(&c, &req.clone().paying(None, Some(d.header())), NOW);
        assert!(paid.verified.signature_checked);
        assert_eq!(paid.requirements_json()["network"], terms["network"]);
    }
    // The anvil chain has no v1 name: a v1 payment cannot name it.
    let anvil = &payment_required(&r)["accepts"][2];
    let mut d = Draft::v2(anvil, &key, NOW);
    d.version = 1;
    d.v1_network = "eip155:31337".into();
    let reply = decide_reply(&c, &req.clone().paying(None, Some(d.header())), NOW);
    check_refusal(&c, &req, &reply, Reason::NetworkMismatch).unwrap();
}

#[test]
fn v1_picks_the_token_whose_domain_the_signature_recovers_under() {
    // Two tokens on one chain: v1 names only the network, so the signature decides which was paid.
    let second = "0x5FbDB2315678afecb367f032d93F642f64180aa3";
    let c = config(&json!({
        "payTo": PAY_TO,
        "facilitator": {"url": FACILITATOR},
        "assets": [
            {"network": "eip155:84532", "address": second, "name": "Other Dollar",
             "version": "1", "decimals": 6, "symbol": "ODL"},
        ],
        "routes": [{"path": "/paid/*", "price": "$0.01",
                    "accepts": [{"network": "eip155:84532", "asset": BASE_SEPOLIA_USDC},
                                {"network": "eip155:84532", "asset": "ODL"}]}],
    }));
    let offers = &c.routes[0].offers;
    assert_eq!(offers.len(), 2);
    assert_eq!(offers[0].asset.name, "USDC");
    assert_eq!(offers[1].asset.name, "Other Dollar");
    let key = signing_key(ANVIL0_KEY);
    for (i, offer) in offers.iter().enumerate() {
        let d = Draft::v1(&terms_of(&c, i), &key, NOW);
        let paid = decide_paid(&c, &Req::get("/paid/x").paying(None, Some(d.header())), NOW);
        assert_eq!(paid.verified.offer.asset.address, offer.asset.address);
        assert!(paid.verified.signature_checked);
    }
}

// ---------------------------------------------------------------------------------------------
// 5. Route matching, HEAD, preflight, headers
// ---------------------------------------------------------------------------------------------

fn site() -> Config {
    config(&json!({
        "payTo": PAY_TO,
        "accepts": ["base-sepolia"],
        "facilitator": {"url": FACILITATOR},
        "routes": [
            {"path": "/articles/open", "free": true},
            {"path": "/articles/*", "method": "GET", "price": "$0.01"},
            {"path": "/api/:id/report", "price": "$0.05"},
        ],
    }))
}

#[derive(Debug, PartialEq, Eq)]
enum Got {
    Pass,
    Status(u16),
}

fn got(c: &Config, req: &Req) -> Got {
    match paywall::decide(c, &req.incoming(), NOW) {
        Decision::Pass => Got::Pass,
        Decision::Reply(r) => {
            check_common_headers(&r).unwrap_or_else(|e| panic!("{req:?}: {e}"));
            Got::Status(r.status)
        }
        Decision::Paid(_) => panic!("{req:?}: Paid without a payment"),
    }
}

#[test]
fn free_and_unpriced_paths_pass_priced_ones_get_402() {
    let c = site();
    let cases = [
        ("GET", "/articles/open", Got::Pass),
        ("GET", "/articles/open/", Got::Pass),
        ("GET", "/Articles/Open", Got::Pass),
        ("POST", "/articles/open", Got::Pass),
        ("GET", "/", Got::Pass),
        ("GET", "/about", Got::Pass),
        ("GET", "/articles", Got::Pass),
        ("GET", "/articlesx/1", Got::Pass),
        ("POST", "/articles/1", Got::Pass),
        ("PUT", "/articles/1", Got::Pass),
        ("GET", "/articles/1", Got::Status(402)),
        ("GET", "/articles/1/comments", Got::Status(402)),
        ("HEAD", "/articles/1", Got::Status(402)),
        ("GET", "/Articles/1", Got::Status(402)),
        ("GET", "/%61rticles/1", Got::Status(402)),
        ("GET", "//articles//1", Got::Status(402)),
        ("GET", "/articles/open/more", Got::Status(402)),
        ("GET", "/api/7/report", Got::Status(402)),
        ("POST", "/api/7/report", Got::Status(402)),
        ("DELETE", "/api/7/report", Got::Status(402)),
        ("GET", "/api/7/report/x", Got::Pass),
        ("GET", "/api/report", Got::Pass),
    ];
    for (method, path, want) in cases {
        assert_eq!(got(&c, &Req::new(method, path)), want, "{method} {path}");
    }
}

#[test]
fn head_on_a_get_route_gets_the_same_402_as_get() {
    let c = site();
    let get = decide_reply(&c, &Req::new("GET", "/articles/1"), NOW);
    let head = decide_reply(&c, &Req::new("HEAD", "/articles/1"), NOW);
    assert_eq!(get, head);
    check_refusal(
        &c,
        &Req::new("HEAD", "/articles/1"),
        &head,
        Reason::PaymentRequired,
    )
    .unwrap();
    // And a HEAD pays like a GET.
    let d = Draft::v2(&terms_of(&c, 0), &signing_key(ANVIL0_KEY), NOW);
    let req = Req::new("HEAD", "/articles/1").paying(Some(d.header()), None);
    assert!(matches!(
        paywall::decide(&c, &req.incoming(), NOW),
        Decision::Paid(_)
    ));
}

#[test]
fn cors_preflight_on_priced_paths() {
    let c = site();
    let preflight = |path: &str, method: Option<&str>| Req {
        preflight_method: method.map(str::to_string),
        ..Req::new("OPTIONS", path)
    };
    for (path, method) in [
        ("/articles/1", "GET"),
        ("/articles/1", "get"),
        ("/articles/1", "HEAD"),
        ("/api/1/report", "PUT"),
        ("/api/1/report", "POST"),
    ] {
        let req = preflight(path, Some(method));
        let r = decide_reply(&c, &req, NOW);
        assert_eq!(r.status, 204, "{method} {path}");
        assert!(r.body.is_empty());
        check_common_headers(&r).unwrap();
        let allow = header(&r, "Access-Control-Allow-Headers").unwrap();
        let allowed: Vec<String> = allow
            .split(',')
            .map(|h| h.trim().to_ascii_uppercase())
            .collect();
        // The official fetch and axios clients add `Access-Control-Expose-Headers` to their paid
        // retry; `*` lets a site's own headers through (all but `Authorization`, listed by name).
        for h in [
            "PAYMENT-SIGNATURE",
            "X-PAYMENT",
            "SIGN-IN-WITH-X",
            "AUTHORIZATION",
            "ACCESS-CONTROL-EXPOSE-HEADERS",
            "*",
        ] {
            assert!(allowed.iter().any(|a| a == h), "{allow} lacks {h}");
        }
        let methods = header(&r, "Access-Control-Allow-Methods").unwrap();
        assert!(methods.contains(&method.to_ascii_uppercase()), "{methods}");
        assert!(header(&r, "PAYMENT-REQUIRED").is_none());
    }
    // A preflight for a method nobody prices there is the origin's (whose answer the Worker
    // passes without its body).
    for (path, method) in [
        ("/articles/1", "POST"),
        ("/articles/open", "GET"),
        ("/about", "GET"),
    ] {
        assert_eq!(
            got(&c, &preflight(path, Some(method))),
            Got::Pass,
            "{method} {path}"
        );
    }
    // A plain OPTIONS (not a preflight) is priced where GET is: an origin that does not look at
    // the method would answer it with the page.
    assert_eq!(got(&c, &preflight("/articles/1", None)), Got::Status(402));
    assert_eq!(got(&c, &preflight("/articles/open", None)), Got::Pass);
}

#[test]
fn paths_past_a_script_that_another_route_prices_are_refused() {
    let c = config(&json!({
        "payTo": PAY_TO,
        "accepts": ["base-sepolia"],
        "facilitator": {"url": FACILITATOR},
        "routes": [
            {"path": "/articles/*", "price": "$0.50"},
            {"path": "/download.php", "price": "$1"},
            {"path": "/index.php/2024/*", "price": "$0.01"},
            {"path": "/premium/*", "price": "$0.01"},
            {"path": "/free/*", "free": true},
            {"path": "/*", "price": "$0.01"},
        ],
    }));
    // A front controller reads these as /articles/x, a server running download.php as it.
    for path in [
        "/index.php/articles/x",
        "/INDEX.PHP/Articles/x",
        "/download.php/x",
        "/index%2Ephp/articles/x",
        "/app.php/articles/y",
        // As cheap, but another rule (who pays, to whom, on which network may differ).
        "/index.php/premium/x",
    ] {
        let r = decide_reply(&c, &Req::get(path), NOW);
        assert_eq!((r.status, r.reason), (400, "invalid_path"), "{path}");
        assert!(
            r.body.contains("a server running scripts reads it as"),
            "{}",
            r.body
        );
    }
    // Read as written: the site's own links through its front controller, priced by a rule that
    // names it and asks no less than the shorter reading; readings under the path's own rule;
    // the script itself.
    for (path, price) in [
        ("/index.php/2024/post", "10000"),
        ("/index.php/about", "10000"),
        ("/download.php", "1000000"),
        ("/articles/x.php/y", "500000"),
    ] {
        let r = decide_reply(&c, &Req::get(path), NOW);
        assert_eq!(r.status, 402, "{path}: {}", r.body);
        assert!(
            r.body.contains(&format!("\"{price}\"")),
            "{path}: {}",
            r.body
        );
    }
}

#[test]
fn every_reply_is_uncacheable_and_exposes_the_payment_headers() {
    let c = site();
    let d = Draft::v2(&terms_of(&c, 0), &signing_key(ANVIL0_KEY), NOW);
    let replies = [
        Req::get("/articles/1"),
        Req::get("/articles/1").paying(Some("garbage".into()), None),
        Req::get("/articles/1").paying(Some(d.with(|d| d.value = "1".into()).header()), None),
        Req::get("/articles/1").paying(Some("A".repeat(10_000)), None),
        Req {
            preflight_method: Some("GET".into()),
            ..Req::new("OPTIONS", "/articles/1")
        },
    ];
    for req in replies {
        let r = decide_reply(&c, &req, NOW);
        check_common_headers(&r).unwrap_or_else(|e| panic!("{} {}: {e}", r.status, r.body));
    }
}

// ---------------------------------------------------------------------------------------------
// The replies the shell asks the core for after verification
// ---------------------------------------------------------------------------------------------

#[test]
fn replies_after_verification() {
    let c = table_config();
    let key = signing_key(ANVIL0_KEY);
    let v2 = Draft::v2(&terms_of(&c, 0), &key, NOW);
    let req = Req::get("/paid/item").paying(Some(v2.header()), None);
    let paid = decide_paid(&c, &req, NOW);

    let fb: Value = serde_json::from_str(&paid.facilitator_body()).unwrap();
    assert_eq!(fb["x402Version"], 2);
    let sent = v2.json();
    let expect_payload = |sent: &Value| {
        let mut want = sent.clone();
        want["resource"] = json!({
            "url": "https://shop.example.com/paid/item",
            "description": paid.route.description,
            "mimeType": paid.route.mime_type,
        });
        want["extensions"] =
            json!({ "bazaar": paid.route.bazaar.clone().expect("a bazaar document") });
        want
    };
    assert_eq!(fb["paymentPayload"], expect_payload(&sent));
    assert_eq!(fb["paymentRequirements"], terms_of(&c, 0));
    // What the client wrote beside the signed authorization (a resource of its own, extensions
    // of its own) is not what the facilitator is sent: it gets our 402's resource and bazaar.
    let mut odd = sent.clone();
    odd["resource"] = json!({"url": "https://elsewhere.example/", "description": "x".repeat(600), "mimeType": "text/html"});
    odd["extensions"] = json!({"bazaar": {"info": {"input": {"type": "http", "method": "POST"}}}, "payment-identifier": {"info": {"id": "pay_0123456789abcdef"}}});
    let req = Req::get("/paid/item").paying(Some(b64(&odd)), None);
    let odd_paid = decide_paid(&c, &req, NOW);
    let fb: Value = serde_json::from_str(&odd_paid.facilitator_body()).unwrap();
    assert_eq!(fb["paymentPayload"], expect_payload(&sent));
    // Nor is the payment spelt as the client spelt it: addresses in capitals (which check out,
    // since only their bytes are signed, but which the reference facilitator refuses), hex in
    // capitals, keys the scheme does not define. The facilitator gets what was checked.
    let mut spelt = sent.clone();
    let caps = |v: &Value| {
        let s = v.as_str().unwrap();
        format!("0x{}", s[2..].to_ascii_uppercase())
    };
    let auth = spelt["payload"]["authorization"].clone();
    for k in ["from", "to", "nonce"] {
        spelt["payload"]["authorization"][k] = json!(caps(&auth[k]));
    }
    spelt["payload"]["signature"] = json!(caps(&sent["payload"]["signature"]));
    spelt["payload"]["authorization"]["memo"] = json!("pay me back");
    spelt["payload"]["note"] = json!("extra");
    spelt["settleNow"] = json!(true);
    let req = Req::get("/paid/item").paying(Some(b64(&spelt)), None);
    let spelt_paid = decide_paid(&c, &req, NOW);
    let fb: Value = serde_json::from_str(&spelt_paid.facilitator_body()).unwrap();
    assert_eq!(fb["paymentPayload"], expect_payload(&sent));
    let from = fb["paymentPayload"]["payload"]["authorization"]["from"].clone();
    assert_eq!(from, json!(ANVIL0), "the payer in its EIP-55 form");

    let receipt = SettleResponse {
        success: true,
        error_reason: None,
        error_message: None,
        transaction: format!("0x{}", "ab".repeat(32)),
        network: "eip155:84532".into(),
        payer: Some(ANVIL0.into()),
    };
    let h = paid.receipt_headers(&receipt);
    assert_eq!(h.len(), 1);
    assert_eq!(h[0].0, "PAYMENT-RESPONSE");
    assert_eq!(unb64(&h[0].1)["transaction"], receipt.transaction);

    let r = paid.settlement_refused("invalid_exact_evm_insufficient_balance", "no funds");
    assert_eq!(r.status, 402);
    let b = body(&r);
    assert_eq!(b["reason"], "settlement_failed");
    assert_eq!(b["error"], "invalid_exact_evm_insufficient_balance");
    assert_eq!(
        payment_required(&r)["error"],
        "invalid_exact_evm_insufficient_balance"
    );
    let settle = unb64(header(&r, "PAYMENT-RESPONSE").unwrap());
    assert_eq!(settle["success"], false);
    assert_eq!(settle["payer"], ANVIL0);
    check_common_headers(&r).unwrap();

    let r = paid.settlement_unknown("timeout");
    check_refusal(&c, &req, &r, Reason::FacilitatorUnavailable).unwrap();
    assert_eq!(r.status, 502);

    let r = paid.facilitator_rejected("invalid_exact_evm_signature", "");
    assert_eq!(r.status, 402);
    assert_eq!(body(&r)["reason"], "facilitator_rejected");

    let r = paywall::plain_refusal(&Refusal::new(Reason::ConfigInvalid, "X402.payTo: missing"));
    assert_eq!(r.status, 500);
    assert_eq!(body(&r)["reason"], "paywall_misconfigured");
    check_common_headers(&r).unwrap();

    // A v1 payment is settled against v1 terms and answered in X-PAYMENT-RESPONSE.
    let v1 = Draft::v1(&terms_of(&c, 0), &key, NOW);
    let req = Req::get("/paid/item").paying(None, Some(v1.header()));
    let paid = decide_paid(&c, &req, NOW);
    let fb: Value = serde_json::from_str(&paid.facilitator_body()).unwrap();
    assert_eq!(fb["x402Version"], 1);
    assert_eq!(fb["paymentRequirements"]["network"], "base-sepolia");
    assert_eq!(fb["paymentRequirements"]["maxAmountRequired"], "10000");
    let h = paid.receipt_headers(&receipt);
    assert_eq!(
        h.iter().map(|(k, _)| *k).collect::<Vec<_>>(),
        ["X-PAYMENT-RESPONSE"]
    );
}

#[test]
fn helpers_sign_what_the_verifier_recovers() {
    // Guard for the table: a signature made here recovers to the key's address through the
    // crate's own recovery, and the high-s twin really is the malleated form.
    let key = signing_key(ANVIL0_KEY);
    let digest = keccak256(b"x402-edge tests");
    let sig = hex0x(&sign_prehash(&key, &digest));
    let parsed = x402_edge::evm::Signature::parse_hex(&sig).unwrap();
    assert_eq!(parsed.recover(&digest).unwrap().to_checksum(), ANVIL0);
    let twin = high_s_twin(&sig);
    assert_eq!(
        x402_edge::evm::Signature::parse_hex(&twin),
        Err(x402_edge::evm::EvmError::HighS)
    );
    // Normalised, the twin is the original signature again, with the other parity.
    let (a, b) = (
        hex::decode(&sig[2..]).unwrap(),
        hex::decode(&twin[2..]).unwrap(),
    );
    let high = k256::ecdsa::Signature::from_slice(&b[..64]).unwrap();
    let low = high.normalize_s().expect("the twin has a high s");
    assert_eq!(low.to_bytes()[..], a[..64]);
    assert_eq!(a[64] + b[64], 55);
}

// ---------------------------------------------------------------------------------------------
// A network alone means its USDC, whatever other tokens are configured on that chain.
// ---------------------------------------------------------------------------------------------

/// A network named alone means its USDC: adding EURC on Base Sepolia for one route must not
/// re-price every route that says `"base-sepolia"` in EURC, and listing both must be allowed.
#[test]
fn a_network_alone_means_its_usdc_even_with_other_custom_tokens_on_that_chain() {
    let eurc = "0x5FbDB2315678afecb367f032d93F642f64180aa3";
    let c = Config::from_json(
        &json!({
            "payTo": PAY_TO,
            "accepts": ["base-sepolia"],
            "facilitator": {"url": FACILITATOR},
            "assets": [{"network": "eip155:84532", "address": eurc, "name": "EURC",
                        "version": "2", "decimals": 6, "symbol": "EURC"}],
            "routes": [
                {"path": "/usdc", "price": "$0.01"},
                {"path": "/both", "price": "$0.01",
                 "accepts": ["eip155:84532", {"network": "eip155:84532", "asset": "EURC"}]},
            ],
        })
        .to_string(),
    )
    .expect("USDC and EURC on one chain are two different offers");
    assert_eq!(
        c.routes[0].offers[0].requirements.asset, BASE_SEPOLIA_USDC,
        "a route naming only base-sepolia must charge USDC"
    );
    let both: Vec<&str> = c.routes[1]
        .offers
        .iter()
        .map(|o| o.requirements.asset.as_str())
        .collect();
    assert_eq!(both, [BASE_SEPOLIA_USDC, eurc]);
    // Overriding the built-in USDC stays possible: same address, or symbol USDC.
    let c = one_route(
        json!(["eip155:84532"]),
        "10000",
        300,
        json!([{"network": "eip155:84532", "address": BASE_SEPOLIA_USDC, "name": "USD Coin",
                "version": "2", "decimals": 6}]),
    );
    assert_eq!(c.routes[0].offers[0].asset.name, "USD Coin");
}

/// Where the facilitator settles only v2 on a network, the 402 offers no v1 terms there, and a v1
/// payment is refused before anything is served: its settlement would fail, with nobody owing.
#[test]
fn v1_payment_refused_where_the_facilitator_settles_only_v2() {
    let base = one_route(json!(["eip155:84532"]), "10000", 300, json!([]));
    let k0 = signing_key(ANVIL0_KEY);
    let terms = terms_of(&base, 0);
    let d = Draft::v1(&terms, &k0, NOW);
    let req = Req::get("/paid/x").paying(None, Some(d.header()));
    // While the facilitator settles v1 there (the configuration as written), it is paid.
    let paid = decide_paid(&base, &req, NOW);
    let sent: Value = serde_json::from_str(&paid.facilitator_body()).unwrap();
    assert!(sent["paymentRequirements"].is_object());

    let v2_only = x402_edge::facilitator::Supported::parse(
        r#"{"kinds":[{"x402Version":2,"scheme":"exact","network":"eip155:84532"}]}"#,
    )
    .unwrap();
    let (c, _) = x402_edge::facilitator::restrict(&base, &v2_only);
    let r = decide_reply(&c, &req, NOW);
    assert_eq!((r.status, r.reason), (402, "network_mismatch"));
    assert!(
        body(&r)["message"].as_str().unwrap().contains("only v2"),
        "{}",
        r.body
    );
    assert_eq!(body(&r)["accepts"], json!([]), "no v1 terms offered");
    // The same wallet paying in v2 is served.
    let d2 = Draft::v2(&terms_of(&c, 0), &k0, NOW);
    decide_paid(
        &c,
        &Req::get("/paid/x").paying(Some(d2.header()), None),
        NOW,
    );
}

/// A route's description longer than CDP's facilitator takes (500 characters) goes to the
/// facilitator cut to at most 500 bytes, on a character's boundary (short enough however a
/// facilitator counts); the 402 keeps it whole.
#[test]
fn facilitator_gets_a_long_description_cut_to_what_it_takes() {
    // 498 bytes of ASCII, then a character of four bytes that would end at 502: cut before it.
    let long = format!("{}{}{}", "d".repeat(498), "😀", "é".repeat(300));
    let mut raw = json!({
        "payTo": PAY_TO,
        "accepts": ["eip155:84532"],
        "facilitator": {"url": FACILITATOR},
        "routes": [{"path": "/paid/*", "method": "GET", "price": "10000", "description": long}],
    });
    let sent_for = |raw: &Value| {
        let c = config(raw);
        let d = Draft::v2(&terms_of(&c, 0), &signing_key(ANVIL0_KEY), NOW);
        let req = Req::get("/paid/x").paying(Some(d.header()), None);
        let paid = decide_paid(&c, &req, NOW);
        let body: Value = serde_json::from_str(&paid.facilitator_body()).unwrap();
        body["paymentPayload"]["resource"]["description"].clone()
    };
    assert_eq!(sent_for(&raw), json!("d".repeat(498)));
    let r = decide_reply(&config(&raw), &Req::get("/paid/x"), NOW);
    let terms = unb64(header(&r, "PAYMENT-REQUIRED").unwrap());
    assert_eq!(
        terms["resource"]["description"], long,
        "the 402 keeps it whole"
    );

    // 250 two-byte characters (500 bytes) go whole, and so does a short one; 251 are cut to 250.
    for whole in ["é".repeat(250), "A priced thing".to_string()] {
        raw["routes"][0]["description"] = json!(whole);
        assert_eq!(sent_for(&raw), json!(whole));
    }
    raw["routes"][0]["description"] = json!("é".repeat(251));
    assert_eq!(sent_for(&raw), json!("é".repeat(250)));

    // A v1 payment's requirements carry it cut the same way; its 402 keeps it whole too.
    raw["routes"][0]["description"] = json!(long);
    let c = config(&raw);
    let v1_402 = body(&decide_reply(&c, &Req::get("/paid/x"), NOW));
    let d = Draft::v1(&terms_of(&c, 0), &signing_key(ANVIL0_KEY), NOW);
    let paid = decide_paid(&c, &Req::get("/paid/x").paying(None, Some(d.header())), NOW);
    let sent: Value = serde_json::from_str(&paid.facilitator_body()).unwrap();
    assert_eq!(sent["x402Version"], 1);
    assert_eq!(
        sent["paymentRequirements"]["description"],
        json!("d".repeat(498))
    );
    assert_eq!(v1_402["accepts"][0]["description"], json!(long));
}

/// The facilitator gets our terms as `accepted`, exactly, whatever spelling of them the client
/// used: a strict facilitator must not refuse at settlement a payment already served.
#[test]
fn facilitator_gets_our_terms_as_accepted() {
    let c = one_route(json!(["eip155:84532"]), "10000", 300, json!([]));
    let terms = terms_of(&c, 0);
    let mut spelt = terms.clone();
    spelt["payTo"] = json!(PAY_TO.to_lowercase());
    spelt["asset"] = json!(BASE_SEPOLIA_USDC.to_uppercase().replacen("0X", "0x", 1));
    let mut d = Draft::v2(&terms, &signing_key(ANVIL0_KEY), NOW);
    d.accepted = spelt.clone();
    let paid = decide_paid(&c, &Req::get("/paid/x").paying(Some(d.header()), None), NOW);
    let body: Value = serde_json::from_str(&paid.facilitator_body()).unwrap();
    assert_eq!(body["paymentRequirements"], terms);
    assert_eq!(body["paymentPayload"]["accepted"], terms);
    assert_ne!(spelt, terms);
    // Everything else goes as the client sent it.
    assert_eq!(body["paymentPayload"]["payload"], d.json()["payload"]);
}

/// Amounts in micro-USD (credit limits, statistics) never count a payment for less than it is:
/// a token with more decimals rounds up, and a price too large to count is refused.
#[test]
fn micro_usd_rounds_up_and_prices_beyond_128_bits_are_refused() {
    let dai = |decimals: u8, price: &str| {
        Config::from_json(
            &json!({
                "payTo": PAY_TO,
                "assets": [{"network": "eip155:8453", "address": "0x50c5725949A6F0c72E6C4a641F24049A917DB0Cb",
                            "name": "Dai Stablecoin", "version": "1", "decimals": decimals, "symbol": "DAI"}],
                "accepts": [{"network": "eip155:8453", "asset": "DAI"}],
                "facilitator": {"url": FACILITATOR},
                "routes": [{"path": "/paid/*", "price": price}],
            })
            .to_string(),
        )
    };
    let micro =
        |decimals, price| paywall::micro_usd(&dai(decimals, price).unwrap().routes[0].offers[0]);
    assert_eq!(
        micro(18, "$0.0000009"),
        1,
        "less than a micro-dollar counts as one"
    );
    assert_eq!(micro(18, "$0.0000019"), 2);
    assert_eq!(micro(18, "$0.000002"), 2, "exact amounts stay exact");
    assert_eq!(micro(18, "$1000"), 1_000_000_000);
    assert_eq!(micro(36, "$340"), 340_000_000);
    let e = dai(36, "$1000").unwrap_err();
    assert_eq!(e.key, "routes[0].price");
    assert!(e.problem.contains("too large"), "{}", e.problem);
}

/// A `..` (or `.`) that only some readers see, behind matrix parameters or an encoded separator,
/// would move a priced path out of its pattern (or into a cheaper one) while the origin reads the
/// path as sent: such paths are refused before any route is matched, paid or not.
#[test]
fn disguised_dot_segments_are_refused_before_any_route() {
    let c = common::config(&json!({
        "payTo": PAY_TO, "accepts": ["eip155:84532"],
        "facilitator": {"url": FACILITATOR},
        "routes": [
            {"path": "/premium/*", "price": "$5"},
            {"path": "/articles/*", "price": "$0.01"},
            {"method": "GET", "path": "/:section/:year/*", "price": "$0.01"},
        ],
    }));
    for path in [
        "/articles/123/..;",
        "/articles/123/..;x",
        "/articles/123/..%2F",
        "/articles/123/..%2f",
        "/articles/123/..%5C",
        "/articles/123/..%3B",
        "/articles/123/%2E%2E%3Bx",
        "/articles/123/.;x",
        "/articles/%2e%2e/b",
        "/articles/123/%2E",
        "/news/2025/story/..;",
        "/premium/5/..;/..;/articles/x",
        "/free/..;/premium/x",
        // Dots and spaces alone: `.` or `..` to an origin that drops trailing dots and spaces.
        "/articles/...",
        "/premium/5/..%20/../articles/x",
        "/articles/123/.%20",
        // IIS's %uNNNN escapes: a priced path there, an unknown one to every other reader.
        "/%u0061rticles/x",
        "/%U0061rticles/x",
        "/free/%u002e%u002e/articles/x",
        "/free/%u002E%u002e/premium/x",
    ] {
        let req = Req::get(path);
        let Decision::Reply(reply) = paywall::decide(&c, &req.incoming(), NOW) else {
            panic!("{path}: not refused");
        };
        let info = Reason::InvalidPath.info();
        let b = body(&reply);
        assert_eq!(
            (reply.status, b["reason"].as_str()),
            (400, Some(info.code)),
            "{path}"
        );
        assert!(
            b["message"].as_str().unwrap().starts_with(info.message),
            "{path}"
        );
        assert!(
            header(&reply, "PAYMENT-REQUIRED").is_none(),
            "{path}: no terms for a bad path"
        );
    }
    // Plain dot segments (which the runtime resolves before the Worker sees them anyway), dots
    // inside names, and matrix parameters on ordinary segments are read as before.
    // (An encoded dot segment, which the runtime resolves too, cannot reach the Worker: refused
    // above all the same.)
    for (path, priced) in [
        ("/articles/a/../b", true),
        ("/articles/v1.2;rev=3", true),
        ("/articles/..x", true),
        ("/articles/x.", true),
        ("/articles./x", true),
        ("/about/.well", false),
        // `%u` without four hex digits is no IIS escape.
        ("/about/100%u", false),
        ("/about/%u00", false),
        ("/about/%uzzzz", false),
    ] {
        let req = Req::get(path);
        let outcome = paywall::decide(&c, &req.incoming(), NOW);
        match outcome {
            Decision::Reply(r) => {
                assert!(priced, "{path}: refused");
                assert_eq!(body(&r)["reason"], "payment_required", "{path}");
            }
            Decision::Pass => assert!(!priced, "{path}: passed unpaid"),
            Decision::Paid(_) => panic!("{path}: paid without a payment"),
        }
    }
}

/// An encoded separator is a separator to an origin that decodes before routing and part of its
/// segment to one that routes the raw path: a path whose two readings fall under different routes
/// (a parameter that sees one segment or two, a priced path or none) is refused; one that falls
/// under the same route either way is priced as usual.
#[test]
fn encoded_separators_read_both_ways() {
    let c = common::config(&json!({
        "payTo": PAY_TO, "accepts": ["eip155:84532"],
        "facilitator": {"url": FACILITATOR},
        "routes": [
            {"method": "GET", "path": "/quote/:symbol", "price": "$0.01"},
            {"path": "/files/*", "price": "$0.01"},
            {"path": "/a/*/c", "price": "$0.01"},
        ],
    }));
    for path in [
        "/quote/BTC%2FUSD",
        "/quote/BTC%2fUSD",
        "/quote/BTC%5CUSD",
        "/a/x%2Fy/c",
        "/files%2Fx",
    ] {
        let req = Req::get(path);
        let Decision::Reply(reply) = paywall::decide(&c, &req.incoming(), NOW) else {
            panic!("{path}: not refused");
        };
        assert_eq!(
            (reply.status, body(&reply)["reason"].as_str()),
            (400, Some("invalid_path")),
            "{path}"
        );
        assert!(body(&reply)["message"]
            .as_str()
            .unwrap()
            .contains("encoded '/'"));
    }
    for path in ["/quote/BTC-USD", "/files/a%2Fb.pdf", "/files/@scope%2fname"] {
        let req = Req::get(path);
        let Decision::Reply(reply) = paywall::decide(&c, &req.incoming(), NOW) else {
            panic!("{path}: passed unpaid");
        };
        assert_eq!(body(&reply)["reason"], "payment_required", "{path}");
    }
    // Unpriced either way: passed.
    let req = Req::get("/other/a%2Fb");
    assert!(matches!(
        paywall::decide(&c, &req.incoming(), NOW),
        Decision::Pass
    ));
}

/// A POST naming another method in `_method` (query, form pairs, or a multipart body searched) is
/// refused where that method is priced on the path by another route than POST; one naming an
/// unpriced method, or sent where POST is priced by the same route, is not looked at further.
#[test]
fn method_override_parameters() {
    let c = common::config(&json!({
        "payTo": PAY_TO, "accepts": ["eip155:84532"],
        "facilitator": {"url": FACILITATOR},
        "routes": [
            {"method": "GET", "path": "/read/*", "price": "$0.01"},
            {"method": "POST", "path": "/read/comments", "free": true},
            {"path": "/all/*", "price": "$0.01"},
        ],
    }));
    assert!(paywall::override_matters(&c, "POST", "/read/x"));
    assert!(
        paywall::override_matters(&c, "POST", "/read/comments"),
        "a free POST rule does not make a priced GET free"
    );
    assert!(!paywall::override_matters(&c, "GET", "/read/x"));
    assert!(
        !paywall::override_matters(&c, "POST", "/all/x"),
        "POST is priced by the same route"
    );
    assert!(!paywall::override_matters(&c, "POST", "/other"));
    use paywall::OverrideBody::{Form, Json, Multipart};
    let refused = |query: Option<&str>, sent: Option<(&str, paywall::OverrideBody)>| {
        paywall::method_override(&c, "/read/x", query, sent).map(|r| {
            assert_eq!((r.status, r.reason), (400, "method_override"));
            body(&r)["message"].as_str().unwrap().to_string()
        })
    };
    assert!(refused(Some("_method=GET"), None)
        .unwrap()
        .contains("\"GET\""));
    assert!(refused(None, Some(("a=1&_method=get", Form))).is_some());
    assert!(
        refused(None, Some(("a=1;_m%65thod=+HEAD+", Form))).is_some(),
        "escaped, spaced, HEAD is GET's"
    );
    // Names PHP registers as `_method` (Laravel, Symfony): a dot or a space for the underscore,
    // leading spaces, an unclosed bracket.
    for name in [".method", "+_method", "%20.method", "[method", " method"] {
        let query = format!("{name}=GET");
        let got = refused(Some(&query), None);
        assert_eq!(got.is_some(), name != " method", "{name}");
        assert_eq!(
            refused(None, Some((&query, Form))).is_some(),
            name != " method",
            "{name} in a form"
        );
    }
    assert!(
        refused(Some("_method[]=GET"), None).is_none(),
        "an array is no method"
    );
    assert!(refused(
        None,
        Some((
            "--b\r\ncontent-disposition: form-data; name=\"_METHOD\"\r\n\r\nget",
            Multipart
        ))
    )
    .is_some());
    assert!(
        refused(
            None,
            Some((
                "--b\r\nContent-Disposition: form-data; name=\".method\"\r\n\r\nGET",
                Multipart
            ))
        )
        .is_some(),
        "a part PHP names _method"
    );
    assert!(
        refused(None, Some((r#"{"title":"x","_method":"GET"}"#, Json)))
            .unwrap()
            .contains("\"GET\"")
    );
    assert!(refused(None, Some((r#"{"_method":"PATCH","method":"GET"}"#, Json))).is_none());
    assert!(refused(None, Some((r#"[{"_method":"GET"}]"#, Json))).is_none());
    // JSON this parser refuses (PHP's reads deeper nesting, and numbers out of range) is searched
    // for the name, escaped or not.
    let deep = format!(
        r#"{{"_method":"GET","p":{}1{}}}"#,
        "[".repeat(200),
        "]".repeat(200)
    );
    assert!(
        refused(None, Some((&deep, Json))).is_some(),
        "nested deeper than 128"
    );
    assert!(refused(None, Some((r#"{"\u005fmethod":"GET","n":1e400}"#, Json))).is_some());
    assert!(refused(None, Some(("not json _method=GET", Json))).is_some());
    assert!(refused(None, Some(("not json at all", Json))).is_none());
    assert!(
        refused(None, Some((r#"{"\u005fmethod":"GET"}"#, Json))).is_some(),
        "parsed, the escape is the name"
    );
    // PHP ends a name at a NUL; Rack reads a multipart body without a boundary as pairs, and a
    // backslash in a part's quoted name as an escape.
    assert!(refused(Some("_method%00=GET"), None).is_some());
    assert!(refused(None, Some(("x=1&_method%00x=GET", Form))).is_some());
    assert!(refused(None, Some(("_m%65thod=GET", Multipart))).is_some());
    assert!(refused(
        None,
        Some((
            "--b\r\nContent-Disposition: form-data; name=\"_\\method\"\r\n\r\nGET",
            Multipart
        ))
    )
    .is_some());
    assert!(refused(Some("method=GET"), Some(("_method=PATCH&x=_method", Form))).is_none());
    assert!(refused(None, Some(("a file that says nothing of it", Multipart))).is_none());
    // A file's name is no part's name: `filename=".method"` (and the like) names nothing, while
    // `name=` at the start of the header's value or after a `;` still does, quoted either way (as
    // PHP reads it) or bare to a space.
    for (disposition, named) in [
        ("form-data; name='.method'", true),
        ("form-data; name=.method x", true),
        ("form-data; name=\" .method\"", true),
        (r#"form-data; name="upload"; filename=".method""#, false),
        (r#"form-data; name="upload"; FileName=" .method""#, false),
        (r#"form-data; x-name=".method""#, false),
        (r#"form-data;name=".method""#, true),
        (r#"name=".method""#, true),
        ("form-data; name=.method", true),
        ("form-data; name=\".method\0x\"", true),
        ("form-data; name=.method\0x", true),
        ("form-data; name=\".methods\"", false),
        ("form-data; name=.methodx", false),
    ] {
        let part = format!("--b\r\nContent-Disposition: {disposition}\r\n\r\nGET\r\n--b--\r\n");
        assert_eq!(
            refused(None, Some((&part, Multipart))).is_some(),
            named,
            "{disposition}"
        );
    }
    // Leading spaces in a quoted name, however many, are dropped as PHP drops them.
    let spaced = format!(
        "--b\r\nContent-Disposition: form-data; name=\"{}.method\"\r\n\r\nGET",
        " ".repeat(5000)
    );
    assert!(refused(None, Some((&spaced, Multipart))).is_some());
    // A megabyte of `name=name=…` is searched in one pass (it was one pass per name: minutes).
    let names = "name=".repeat(200_000);
    assert!(refused(None, Some((&names, Multipart))).is_none());
    assert!(refused(None, None).is_none());
    let big = paywall::override_unreadable(1 << 20);
    assert_eq!((big.status, big.reason), (413, "method_override"));
    let packed = paywall::override_encoded();
    assert_eq!((packed.status, packed.reason), (415, "method_override"));
    // Every way each type is read: a form, no type or any multipart type by its start (Rack and
    // PHP), and as JSON where `/json` or `+json` is anywhere in it (Laravel), so both at once.
    for (kind, read) in [
        ("application/x-www-form-urlencoded+json", &[Form, Json][..]),
        ("application/x-www-form-urlencoded; x=/json", &[Form, Json]),
        ("multipart/form-data; boundary=x+json", &[Multipart, Json]),
        ("application/json; charset=utf-8", &[Json]),
        ("multipart/mixed", &[Multipart]),
        ("Multipart/Form-Data; boundary=x", &[Multipart]),
        ("application/x-www-form-urlencoded", &[Form]),
        ("", &[Form]),
        ("text/plain", &[]),
        ("application/octet-stream", &[]),
    ] {
        assert_eq!(paywall::override_body(kind), read, "{kind}");
    }
}

/// `methodParameter = false` says the origin reads no `_method` parameter: a `POST` on the path
/// is not searched (nor its body read), at the top level or for one route; another route's
/// `true` still counts.
#[test]
fn method_parameter_off() {
    let routes = json!([
        {"method": "GET", "path": "/read/*", "price": "$0.01"},
        {"method": "GET", "path": "/api/*", "price": "$0.01", "methodParameter": true},
    ]);
    let top = common::config(&json!({
        "payTo": PAY_TO, "accepts": ["eip155:84532"],
        "facilitator": {"url": FACILITATOR},
        "methodParameter": false,
        "routes": routes,
    }));
    assert!(!paywall::override_matters(&top, "POST", "/read/x"));
    assert!(paywall::override_matters(&top, "POST", "/api/x"));
    assert!(paywall::method_override(&top, "/read/x", Some("_method=GET"), None).is_none());
    assert!(paywall::method_override(&top, "/api/x", Some("_method=GET"), None).is_some());
    let one = common::config(&json!({
        "payTo": PAY_TO, "accepts": ["eip155:84532"],
        "facilitator": {"url": FACILITATOR},
        "routes": [
            {"method": "GET", "path": "/read/*", "price": "$0.01", "methodParameter": false},
            {"method": "GET", "path": "/api/*", "price": "$0.01"},
        ],
    }));
    assert!(!paywall::override_matters(&one, "POST", "/read/x"));
    assert!(paywall::override_matters(&one, "POST", "/api/x"));
    let e = Config::from_json(
        &json!({
            "payTo": PAY_TO, "accepts": ["eip155:84532"],
            "facilitator": {"url": FACILITATOR},
            "routes": [{"path": "/free/*", "free": true, "methodParameter": false}],
        })
        .to_string(),
    )
    .expect_err("methodParameter on a free route does nothing");
    assert_eq!(e.key, "routes[0].methodParameter");
}

/// A route that requires a payment identifier refuses a payment without one (400, with the terms
/// saying so), and a v1 payment, which has no extensions; one that does not offer the extension
/// ignores an identifier, even a malformed one. The identifier a route takes is the request's.
#[test]
fn a_route_may_require_a_payment_identifier() {
    let with = |ids: &str| {
        config(&json!({
            "payTo": PAY_TO,
            "accepts": ["eip155:84532"],
            "facilitator": {"url": FACILITATOR},
            "paymentIdentifier": ids,
            "routes": [{"path": "/paid/*", "method": "GET", "price": "10000"}],
        }))
    };
    let k0 = signing_key(ANVIL0_KEY);
    let required = with("required");
    let terms = terms_of(&required, 0);
    let req = Req::get("/paid/item");
    let pr = payment_required(&decide_reply(&required, &req, NOW));
    assert_eq!(
        pr["extensions"]["payment-identifier"]["info"],
        json!({"required": true})
    );

    let bare = Draft::v2(&terms, &k0, NOW);
    let r = decide_reply(
        &required,
        &req.clone().paying(Some(bare.header()), None),
        NOW,
    );
    check_refusal(&required, &req, &r, Reason::PaymentIdRequired).unwrap();
    assert_eq!(r.status, 400);
    let v1 = Draft::v1(&terms, &k0, NOW);
    let r = decide_reply(&required, &req.clone().paying(None, Some(v1.header())), NOW);
    check_refusal(&required, &req, &r, Reason::PaymentIdRequired).unwrap();
    assert!(body(&r)["message"].as_str().unwrap().contains("v1"));

    let id = "pay_0123456789abcdef_-";
    let carried = bare.json_with(|v| {
        v["extensions"] = json!({"payment-identifier": {"info": {"required": true, "id": id}}})
    });
    let paying = Req::get("/paid/item?page=2").paying(Some(b64(&carried)), None);
    match paywall::decide(&required, &paying.incoming(), NOW) {
        Decision::Paid(p) => {
            assert_eq!(p.payment_id.as_deref(), Some(id));
            assert_eq!(p.request, format!("GET {ORIGIN}/paid/item?page=2"));
            let admission = p.admission("{}", false, String::new());
            assert_eq!(admission.payment_id.as_deref(), Some(id));
            assert_eq!(admission.request, p.request);
        }
        _ => panic!("a payment with an identifier is paid"),
    }

    let off = with("off");
    let pr = payment_required(&decide_reply(&off, &req, NOW));
    assert!(pr
        .get("extensions")
        .is_none_or(|e| e.get("payment-identifier").is_none()));
    let malformed = bare.json_with(|v| {
        v["extensions"] = json!({"payment-identifier": {"info": {"required": false, "id": "x"}}})
    });
    match paywall::decide(
        &off,
        &req.clone().paying(Some(b64(&malformed)), None).incoming(),
        NOW,
    ) {
        Decision::Paid(p) => {
            assert_eq!(p.payment_id, None);
            assert!(p.admission("{}", false, String::new()).request.is_empty());
        }
        _ => panic!("a route without the extension ignores an identifier"),
    }
}
