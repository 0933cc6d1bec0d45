//! Sign-In-With-X against the x402 vectors (`siwe_no_statement`, `siwe_with_statement`, signed by
//! Anvil key #0), the SIWX spec example (whose signature is not valid), freshly signed proofs for
//! every refusal, the 402 extension, and the hand-written RFC 3339 and URL parsers.

mod common;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use k256::ecdsa::SigningKey;
use serde_json::{json, Value};
use x402_edge::evm::{eip191_hash, Address};
use x402_edge::siwx::{
    contract_question, extension, format_iso_millis, message, parse_header, parse_rfc3339,
    proof_schema, remember_until, replay_key, statement_is_valid, verify, HttpUrl, Proof,
    SignatureScheme, SiwxError, UtcTime, WalletQuestion, CLOCK_SKEW_SECONDS,
    DEFAULT_MAX_AGE_SECONDS,
};

const ANVIL0_KEY: &str = "ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";
const ANVIL0: &str = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266";
const ANVIL1: &str = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";
const URL: &str = "https://api.example.com/premium-data";
/// 2024-01-15T10:30:00.000Z, the vectors' issuedAt.
const ISSUED: u64 = 1_705_314_600;

fn vectors() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/vectors/x402-vectors.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).expect("read vectors")).expect("json")
}

/// The JSON the official client (`createSIWxPayload`) sends for the vectors' challenge.
fn vector_payload(with_statement: bool, signature: &str) -> Value {
    let mut v = json!({
        "domain": "api.example.com",
        "address": ANVIL0,
        "uri": URL,
        "version": "1",
        "chainId": "eip155:8453",
        "type": "eip191",
        "nonce": "a1b2c3d4e5f67890a1b2c3d4e5f67890",
        "issuedAt": "2024-01-15T10:30:00.000Z",
        "expirationTime": "2024-01-15T10:35:00.000Z",
        "resources": [URL],
        "signature": signature,
    });
    if with_statement {
        v["statement"] = json!("Sign in to access premium data");
    }
    v
}

fn header(v: &Value) -> String {
    STANDARD.encode(serde_json::to_vec(v).unwrap())
}

fn key() -> SigningKey {
    SigningKey::from_slice(&hex::decode(ANVIL0_KEY).unwrap()).unwrap()
}

/// `personal_sign` with k256: RFC 6979, low s, v = 27 + recovery id.
fn personal_sign(key: &SigningKey, message: &str) -> String {
    let (sig, recid) = key
        .sign_prehash_recoverable(&eip191_hash(message.as_bytes()))
        .unwrap();
    assert!(sig.normalize_s().is_none(), "k256 signs with low s");
    let mut raw = sig.to_bytes().to_vec();
    raw.push(27 + recid.to_byte());
    format!("0x{}", hex::encode(raw))
}

/// A fresh proof: the vector payload with `edit` applied, signed by Anvil #0 over its message.
fn signed(edit: impl FnOnce(&mut Value)) -> Proof {
    let mut v = vector_payload(false, "0x");
    edit(&mut v);
    let unsigned = parse_header(&header(&v)).expect("unsigned proof parses");
    v["signature"] = json!(personal_sign(&key(), &message(&unsigned)));
    parse_header(&header(&v)).expect("signed proof parses")
}

fn code(r: Result<Address, SiwxError>) -> &'static str {
    r.expect_err("expected a refusal").code()
}

fn parse_code(v: &Value) -> &'static str {
    parse_header(&header(v))
        .expect_err("expected a refusal")
        .code()
}

fn anvil0() -> Address {
    Address::parse(ANVIL0).unwrap()
}

// ---------------------------------------------------------------------------------------------
// The vectors.

#[test]
fn vectors_rebuild_byte_for_byte_and_verify() {
    let g = &vectors()["generated"];
    for (name, with_statement) in [("siwe_no_statement", false), ("siwe_with_statement", true)] {
        let vec = &g[name];
        let sig = vec["signature"].as_str().unwrap();
        let proof = parse_header(&header(&vector_payload(with_statement, sig))).unwrap();

        assert_eq!(message(&proof), vec["message"].as_str().unwrap(), "{name}");
        assert_eq!(
            format!("0x{}", hex::encode(eip191_hash(message(&proof).as_bytes()))),
            vec["eip191Hash"].as_str().unwrap(),
            "{name}"
        );
        assert_eq!(
            verify(&proof, URL, ISSUED + 60, DEFAULT_MAX_AGE_SECONDS),
            Ok(anvil0()),
            "{name}"
        );
        // Fresh signing reproduces the vector (RFC 6979 is deterministic).
        assert_eq!(personal_sign(&key(), &message(&proof)), sig, "{name}");
    }
}

#[test]
fn vector_fields_are_parsed() {
    let sig = vectors()["generated"]["siwe_with_statement"]["signature"]
        .as_str()
        .unwrap()
        .to_string();
    let p = parse_header(&header(&vector_payload(true, &sig))).unwrap();
    assert_eq!(p.domain, "api.example.com");
    assert_eq!(p.address, anvil0());
    assert_eq!(p.chain_id, 8453);
    assert_eq!(p.chain_id_caip2, "eip155:8453");
    assert_eq!(p.issued_at_unix, ISSUED);
    assert_eq!(
        p.expiration_time,
        Some(("2024-01-15T10:35:00.000Z".into(), ISSUED + 300))
    );
    assert_eq!(p.not_before, None);
    assert_eq!(p.request_id, None);
    assert_eq!(p.resources, Some(vec![URL.to_string()]));
    assert_eq!(
        p.statement.as_deref(),
        Some("Sign in to access premium data")
    );
    assert_eq!(p.signature, sig);
    assert_eq!(p.signature_scheme, None);
}

#[test]
fn lowercase_address_is_rechecksummed_in_the_message() {
    // The SIWE library re-checksums a single-case address before building the message, so a
    // proof sent with a lowercase address verifies against the checksummed message.
    let g = &vectors()["generated"]["siwe_no_statement"];
    let mut v = vector_payload(false, g["signature"].as_str().unwrap());
    v["address"] = json!(ANVIL0.to_ascii_lowercase());
    let p = parse_header(&header(&v)).unwrap();
    assert_eq!(message(&p), g["message"].as_str().unwrap());
    assert_eq!(verify(&p, URL, ISSUED + 60, 300), Ok(anvil0()));
    // A wrong mixed-case checksum is refused, as the SIWE parser does.
    v["address"] = json!(ANVIL0.replacen("Fd6", "fd6", 1));
    assert_eq!(parse_code(&v), "siwx_malformed");
}

#[test]
fn unknown_fields_and_hints_are_accepted() {
    let g = &vectors()["generated"]["siwe_no_statement"];
    let mut v = vector_payload(false, g["signature"].as_str().unwrap());
    v["signatureScheme"] = json!("eip191");
    v["somethingNew"] = json!({"x": 1});
    let p = parse_header(&header(&v)).unwrap();
    assert_eq!(p.signature_scheme, Some(SignatureScheme::Eip191));
    assert_eq!(verify(&p, URL, ISSUED + 60, 300), Ok(anvil0()));
    // Padding-free and URL-safe base64 are read too.
    let unpadded = header(&v).trim_end_matches('=').to_string();
    assert!(parse_header(&unpadded).is_ok());
    let url_safe = header(&v).replace('+', "-").replace('/', "_");
    assert!(parse_header(&url_safe).is_ok());
}

// ---------------------------------------------------------------------------------------------
// The SIWX spec example: the payment signature pasted into a sign-in. It must not verify.

const SPEC_HEADER: &str = "eyJkb21haW4iOiJhcGkuZXhhbXBsZS5jb20iLCJhZGRyZXNzIjoiMHg4NTdiMDY1MTlFOTFlM0E1NDUzODc5MWJEYmIwRTIyMzczZTM2YjY2IiwidXJpIjoiaHR0cHM6Ly9hcGkuZXhhbXBsZS5jb20vcHJlbWl1bS1kYXRhIiwidmVyc2lvbiI6IjEiLCJjaGFpbklkIjoiZWlwMTU1Ojg0NTMiLCJ0eXBlIjoiZWlwMTkxIiwibm9uY2UiOiJhMWIyYzNkNGU1ZjY3ODkwYTFiMmMzZDRlNWY2Nzg5MCIsImlzc3VlZEF0IjoiMjAyNC0wMS0xNVQxMDozMDowMC4wMDBaIiwiZXhwaXJhdGlvblRpbWUiOiIyMDI0LTAxLTE1VDEwOjM1OjAwLjAwMFoiLCJzdGF0ZW1lbnQiOiJTaWduIGluIHRvIGFjY2VzcyBwcmVtaXVtIGRhdGEiLCJyZXNvdXJjZXMiOlsiaHR0cHM6Ly9hcGkuZXhhbXBsZS5jb20vcHJlbWl1bS1kYXRhIl0sInNpZ25hdHVyZVNjaGVtZSI6ImVpcDE5MSIsInNpZ25hdHVyZSI6IjB4MmQ2YTc1ODhkNmFjY2E1MDVjYmYwZDlhNGEyMjdlMGM1MmM2YzM0MDA4YzhlODk4NmExMjgzMjU5NzY0MTczNjA4YTJjZTY0OTY2NDJlMzc3ZDZkYThkYmJmNTgzNmU5YmQxNTA5MmY5ZWNhYjA1ZGVkM2Q2MjkzYWYxNDhiNTcxYyJ9";

#[test]
fn spec_example_signature_is_refused() {
    let p = parse_header(SPEC_HEADER).unwrap();
    let spec_message = "api.example.com wants you to sign in with your Ethereum account:\n\
        0x857b06519E91e3A54538791bDbb0E22373e36b66\n\n\
        Sign in to access premium data\n\n\
        URI: https://api.example.com/premium-data\n\
        Version: 1\n\
        Chain ID: 8453\n\
        Nonce: a1b2c3d4e5f67890a1b2c3d4e5f67890\n\
        Issued At: 2024-01-15T10:30:00.000Z\n\
        Expiration Time: 2024-01-15T10:35:00.000Z\n\
        Resources:\n\
        - https://api.example.com/premium-data";
    assert_eq!(message(&p), spec_message);
    assert_eq!(p.signature_scheme, Some(SignatureScheme::Eip191));
    assert_eq!(
        verify(&p, URL, ISSUED + 60, 300),
        Err(SiwxError::SignerMismatch {
            claimed: Address::parse("0x857b06519E91e3A54538791bDbb0E22373e36b66").unwrap(),
            recovered: Address::parse("0x5b2acBca0fb899bD73747ac64302145dB44D5D66").unwrap(),
        })
    );
}

// ---------------------------------------------------------------------------------------------
// Refusals, each with an otherwise valid, freshly signed proof.

#[test]
fn fresh_proof_verifies() {
    let p = signed(|_| {});
    assert_eq!(verify(&p, URL, ISSUED + 60, 300), Ok(anvil0()));
}

#[test]
fn another_wallets_address_with_the_same_signature() {
    let g = &vectors()["generated"]["siwe_no_statement"];
    let mut v = vector_payload(false, g["signature"].as_str().unwrap());
    v["address"] = json!(ANVIL1);
    let p = parse_header(&header(&v)).unwrap();
    let err = verify(&p, URL, ISSUED + 60, 300).unwrap_err();
    assert_eq!(err.code(), "siwx_signer_mismatch");
    // The message names the other wallet, so the signature recovers to neither.
    match err {
        SiwxError::SignerMismatch { claimed, recovered } => {
            assert_eq!(claimed, Address::parse(ANVIL1).unwrap());
            assert_ne!(recovered, anvil0());
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn altered_field_after_signing() {
    let g = &vectors()["generated"]["siwe_no_statement"];
    let mut v = vector_payload(false, g["signature"].as_str().unwrap());
    v["nonce"] = json!("a1b2c3d4e5f67890a1b2c3d4e5f67891");
    let p = parse_header(&header(&v)).unwrap();
    assert_eq!(
        code(verify(&p, URL, ISSUED + 60, 300)),
        "siwx_signer_mismatch"
    );
    // Adding a statement the wallet did not sign.
    let v = vector_payload(true, g["signature"].as_str().unwrap());
    let p = parse_header(&header(&v)).unwrap();
    assert_eq!(
        code(verify(&p, URL, ISSUED + 60, 300)),
        "siwx_signer_mismatch"
    );
}

#[test]
fn wrong_domain() {
    let p = signed(|v| v["domain"] = json!("evil.example.com"));
    assert_eq!(
        code(verify(&p, URL, ISSUED + 60, 300)),
        "siwx_domain_mismatch"
    );
    // The same proof on the host it was signed for, with a matching uri, would pass the domain
    // check; here the uri still names api.example.com, so it fails the next one.
    assert_eq!(
        code(verify(
            &p,
            "https://evil.example.com/premium-data",
            ISSUED + 60,
            300
        )),
        "siwx_uri_mismatch"
    );
    // Case does not matter for a host.
    let p = signed(|v| v["domain"] = json!("API.Example.com"));
    assert_eq!(verify(&p, URL, ISSUED + 60, 300), Ok(anvil0()));
}

#[test]
fn domain_includes_a_non_default_port() {
    let local = "http://localhost:8787/premium-data";
    let p = signed(|v| {
        v["domain"] = json!("localhost:8787");
        v["uri"] = json!(local);
        v["resources"] = json!([local]);
    });
    assert_eq!(verify(&p, local, ISSUED + 60, 300), Ok(anvil0()));
    assert_eq!(
        code(verify(
            &p,
            "http://localhost:8788/premium-data",
            ISSUED + 60,
            300
        )),
        "siwx_domain_mismatch"
    );
    let bare = signed(|v| {
        v["domain"] = json!("localhost");
        v["uri"] = json!(local);
    });
    assert_eq!(
        code(verify(&bare, local, ISSUED + 60, 300)),
        "siwx_domain_mismatch"
    );
    // A default port is no port.
    assert_eq!(
        verify(
            &signed(|_| {}),
            "https://api.example.com:443/premium-data",
            ISSUED + 60,
            300
        ),
        Ok(anvil0())
    );
}

#[test]
fn wrong_uri_origin() {
    for uri in [
        "https://evil.example.com/premium-data",
        "https://api.example.com.evil.io/premium-data",
        "https://api.example.com:8443/premium-data",
        "http://api.example.com/premium-data",
        "https://evil.io@api.example.com.evil.io/",
        "urn:uuid:6e8bc430-9c3a-11d9-9669-0800200c9a66",
    ] {
        let p = signed(|v| v["uri"] = json!(uri));
        assert_eq!(
            code(verify(&p, URL, ISSUED + 60, 300)),
            "siwx_uri_mismatch",
            "{uri}"
        );
    }
    // Another path, a query, userinfo or an explicit default port on the same origin are fine:
    // the proof is bound to the origin, not to a path.
    for uri in [
        "https://api.example.com/other?x=1",
        "https://api.example.com",
        "https://user@api.example.com/premium-data",
        "HTTPS://API.EXAMPLE.COM:443/premium-data",
    ] {
        let p = signed(|v| v["uri"] = json!(uri));
        assert_eq!(verify(&p, URL, ISSUED + 60, 300), Ok(anvil0()), "{uri}");
    }
}

#[test]
fn stale_issued_at() {
    let p = signed(|v| {
        v.as_object_mut().unwrap().remove("expirationTime");
    });
    assert_eq!(verify(&p, URL, ISSUED + 300, 300), Ok(anvil0()));
    assert_eq!(
        verify(&p, URL, ISSUED + 301, 300),
        Err(SiwxError::Stale {
            age: 301,
            max_age: 300
        })
    );
    // The vector itself, at issuedAt + 301.
    let g = &vectors()["generated"]["siwe_no_statement"];
    let v = parse_header(&header(&vector_payload(
        false,
        g["signature"].as_str().unwrap(),
    )))
    .unwrap();
    assert_eq!(code(verify(&v, URL, ISSUED + 301, 300)), "siwx_stale");
    // A shorter configured age.
    assert_eq!(code(verify(&p, URL, ISSUED + 61, 60)), "siwx_stale");
}

#[test]
fn issued_in_the_future() {
    let p = signed(|_| {});
    assert_eq!(
        verify(&p, URL, ISSUED - CLOCK_SKEW_SECONDS, 300),
        Ok(anvil0())
    );
    assert_eq!(
        verify(&p, URL, ISSUED - CLOCK_SKEW_SECONDS - 1, 300),
        Err(SiwxError::IssuedInFuture { ahead: 61 })
    );
    assert_eq!(code(verify(&p, URL, 0, 300)), "siwx_issued_in_future");
}

#[test]
fn expired() {
    let p = signed(|v| v["expirationTime"] = json!("2024-01-15T10:31:40.000Z"));
    assert_eq!(verify(&p, URL, ISSUED + 99, 300), Ok(anvil0()));
    assert_eq!(code(verify(&p, URL, ISSUED + 100, 300)), "siwx_expired");
    // The vector expires at issuedAt + 300 exactly.
    let g = &vectors()["generated"]["siwe_with_statement"];
    let v = parse_header(&header(&vector_payload(
        true,
        g["signature"].as_str().unwrap(),
    )))
    .unwrap();
    assert_eq!(code(verify(&v, URL, ISSUED + 300, 300)), "siwx_expired");
    // A fraction of a second counts as already past the whole second.
    let p = signed(|v| v["expirationTime"] = json!("2024-01-15T10:31:40.999Z"));
    assert_eq!(code(verify(&p, URL, ISSUED + 100, 300)), "siwx_expired");
}

#[test]
fn not_before_in_the_future() {
    let p = signed(|v| v["notBefore"] = json!("2024-01-15T10:30:30.000Z"));
    assert!(message(&p).contains("\nNot Before: 2024-01-15T10:30:30.000Z\n"));
    assert_eq!(
        code(verify(&p, URL, ISSUED + 10, 300)),
        "siwx_not_yet_valid"
    );
    assert_eq!(
        code(verify(&p, URL, ISSUED + 29, 300)),
        "siwx_not_yet_valid"
    );
    assert_eq!(verify(&p, URL, ISSUED + 30, 300), Ok(anvil0()));
    // A fraction of a second is not yet the next second.
    let p = signed(|v| v["notBefore"] = json!("2024-01-15T10:30:30.001Z"));
    assert_eq!(
        code(verify(&p, URL, ISSUED + 30, 300)),
        "siwx_not_yet_valid"
    );
    assert_eq!(verify(&p, URL, ISSUED + 31, 300), Ok(anvil0()));
}

#[test]
fn optional_fields_in_the_message() {
    let p = signed(|v| {
        v["notBefore"] = json!("2024-01-15T10:30:00Z");
        v["requestId"] = json!("req-42");
        v["resources"] = json!([
            URL,
            "ipfs://bafybeiemxf5abjwjbikoz4mc3a3dla6ual3jsgpdr4cjr3oz3evfyavhwq/"
        ]);
        v["statement"] = json!("I accept the ToS: https://example.com/tos (v2) & more!");
    });
    let m = message(&p);
    assert!(m.ends_with(
        "\nExpiration Time: 2024-01-15T10:35:00.000Z\nNot Before: 2024-01-15T10:30:00Z\n\
         Request ID: req-42\nResources:\n- https://api.example.com/premium-data\n\
         - ipfs://bafybeiemxf5abjwjbikoz4mc3a3dla6ual3jsgpdr4cjr3oz3evfyavhwq/"
    ));
    assert_eq!(verify(&p, URL, ISSUED + 60, 300), Ok(anvil0()));

    // Empty request id and empty resources still write their lines; an empty statement writes
    // the three-blank-line layout of the SIWE library.
    let p = signed(|v| {
        v["requestId"] = json!("");
        v["resources"] = json!([]);
        v["statement"] = json!("");
    });
    let m = message(&p);
    assert!(m.contains(&format!("{ANVIL0}\n\n\n\nURI: ")));
    assert!(m.ends_with("\nRequest ID: \nResources:"));
    assert_eq!(verify(&p, URL, ISSUED + 60, 300), Ok(anvil0()));

    // No resources at all.
    let p = signed(|v| {
        v.as_object_mut().unwrap().remove("resources");
    });
    assert!(message(&p).ends_with("\nExpiration Time: 2024-01-15T10:35:00.000Z"));
    assert_eq!(verify(&p, URL, ISSUED + 60, 300), Ok(anvil0()));

    // Chain id with leading zeros is written as a number, as parseInt does.
    let p = signed(|v| v["chainId"] = json!("eip155:0001"));
    assert!(message(&p).contains("\nChain ID: 1\n"));
    assert_eq!(p.chain_id_caip2, "eip155:0001");
}

#[test]
fn solana_and_other_types_are_unsupported() {
    let base = vector_payload(false, "0x00");
    let mut v = base.clone();
    v["type"] = json!("ed25519");
    assert_eq!(parse_code(&v), "siwx_unsupported_chain");
    v["chainId"] = json!("solana:5eykt4UsFv8P8NJdTREpY1vzqKqZKvdp");
    v["address"] = json!("BSmWDgE9ex6dZYbiTsJGcwMEgFp8q4aWh92hdErQPeVW");
    let err = parse_header(&header(&v)).unwrap_err();
    assert_eq!(err.code(), "siwx_unsupported_chain");
    assert!(err.to_string().contains("Solana"), "{err}");
    let mut v = base.clone();
    v["chainId"] = json!("solana:5eykt4UsFv8P8NJdTREpY1vzqKqZKvdp");
    assert_eq!(parse_code(&v), "siwx_unsupported_chain");
    v["chainId"] = json!("cosmos:cosmoshub-4");
    assert_eq!(parse_code(&v), "siwx_unsupported_chain");
    for chain in [
        "eip155:",
        "eip155:abc",
        "eip155:-1",
        "eip155:99999999999999999999999",
        "eip155:1 ",
    ] {
        let mut v = base.clone();
        v["chainId"] = json!(chain);
        assert_eq!(parse_code(&v), "siwx_malformed", "{chain}");
    }
    let mut v = base.clone();
    v["type"] = json!("eip712");
    assert_eq!(parse_code(&v), "siwx_malformed");
}

#[test]
fn signature_shapes() {
    let p = signed(|_| {});
    let with_sig = |s: &str| Proof {
        signature: s.to_string(),
        ..p.clone()
    };
    let good = p.signature.clone();
    // Not hex.
    assert_eq!(
        code(verify(&with_sig("0xzz"), URL, ISSUED, 300)),
        "siwx_bad_signature"
    );
    assert_eq!(
        code(verify(&with_sig(&good[2..]), URL, ISSUED, 300)),
        "siwx_bad_signature"
    );
    assert_eq!(
        code(verify(&with_sig(""), URL, ISSUED, 300)),
        "siwx_bad_signature"
    );
    // v written as the bare recovery id (0 or 1), as some wallets do, is read as 27 or 28, as
    // viem reads it; any other v is refused.
    let v = u8::from_str_radix(&good[130..], 16).unwrap();
    let with_v = |v: u8| with_sig(&format!("{}{v:02x}", &good[..130]));
    assert_eq!(verify(&with_v(v - 27), URL, ISSUED, 300), Ok(anvil0()));
    for other in [v ^ 1, v - 27 + 2, 29, 0xff] {
        assert_ne!(
            verify(&with_v(other), URL, ISSUED, 300),
            Ok(anvil0()),
            "v {other}"
        );
    }
    let zero_r = format!("0x{}{}", "00".repeat(32), &good[66..]);
    assert_eq!(
        code(verify(&with_sig(&zero_r), URL, ISSUED, 300)),
        "siwx_bad_signature"
    );
    // Smart-wallet lengths.
    assert_eq!(
        verify(&with_sig(&good[..130]), URL, ISSUED, 300),
        Err(SiwxError::UnsupportedSignature(64))
    );
    let long = format!("0x{}", "ab".repeat(200));
    assert_eq!(
        verify(&with_sig(&long), URL, ISSUED, 300),
        Err(SiwxError::UnsupportedSignature(200))
    );
}

#[test]
fn malformed_base64_and_json() {
    for bad in ["", "   ", "!!!", "eyJ", "@@@@", "e30=\u{e9}"] {
        assert_eq!(
            parse_header(bad).unwrap_err().code(),
            "siwx_malformed",
            "{bad:?}"
        );
    }
    for json_text in [
        "not json",
        "[]",
        "\"string\"",
        "42",
        "null",
        "{\"domain\":",
        "{}",
    ] {
        let h = STANDARD.encode(json_text);
        assert_eq!(
            parse_header(&h).unwrap_err().code(),
            "siwx_malformed",
            "{json_text}"
        );
    }
    // Larger than 8 KiB: refused before decoding.
    let mut v = vector_payload(false, "0x00");
    v["statement"] = json!("a".repeat(9000));
    let err = parse_header(&header(&v)).unwrap_err();
    assert_eq!(err.code(), "siwx_malformed");
    assert!(err.to_string().contains("8 KiB"), "{err}");
}

#[test]
fn missing_and_mistyped_fields() {
    let base = vector_payload(false, "0x00");
    for field in [
        "domain",
        "address",
        "uri",
        "version",
        "chainId",
        "type",
        "nonce",
        "issuedAt",
        "signature",
    ] {
        let mut v = base.clone();
        v.as_object_mut().unwrap().remove(field);
        let err = parse_header(&header(&v)).unwrap_err();
        assert_eq!(err.code(), "siwx_malformed", "{field}");
        assert!(err.to_string().contains(field), "{field}: {err}");
        let mut v = base.clone();
        v[field] = json!(7);
        assert_eq!(parse_code(&v), "siwx_malformed", "{field} as a number");
        let mut v = base.clone();
        v[field] = Value::Null;
        assert_eq!(parse_code(&v), "siwx_malformed", "{field} as null");
    }
    // Optional fields may be absent, but not null or of another type (zod `.optional()`).
    for field in [
        "statement",
        "expirationTime",
        "notBefore",
        "requestId",
        "resources",
        "signatureScheme",
    ] {
        let mut v = base.clone();
        v[field] = Value::Null;
        assert_eq!(parse_code(&v), "siwx_malformed", "{field} as null");
        let mut v = base.clone();
        v[field] = json!(true);
        assert_eq!(parse_code(&v), "siwx_malformed", "{field} as a bool");
    }
    let mut v = base.clone();
    v["resources"] = json!([URL, 3]);
    assert_eq!(parse_code(&v), "siwx_malformed");
    let mut v = base.clone();
    v["signatureScheme"] = json!("eip712");
    assert_eq!(parse_code(&v), "siwx_malformed");
}

#[test]
fn fields_eip4361_cannot_carry() {
    let base = vector_payload(false, "0x00");
    let cases: Vec<(&str, Value)> = vec![
        ("version", json!("2")),
        ("nonce", json!("short")),
        ("nonce", json!("a1b2c3d4-e5f6")),
        ("nonce", json!("n".repeat(129))),
        ("statement", json!("two\nlines")),
        ("statement", json!("quote \" here")),
        ("statement", json!("caf\u{e9}")),
        ("domain", json!("")),
        ("domain", json!("api.example.com\nURI: https://evil")),
        ("domain", json!("api.example.com/path")),
        ("uri", json!("no scheme here")),
        ("uri", json!("https://api.example.com/a b")),
        ("uri", json!("https://api.example.com/\nVersion: 1")),
        ("uri", json!("")),
        ("requestId", json!("a/b")),
        ("requestId", json!("a\nb")),
        ("resources", json!(["https://ok", "not a uri"])),
        ("address", json!("0x1234")),
        ("address", json!("f39Fd6e51aad88F6F4ce6aB8827279cffFb92266")),
        ("issuedAt", json!("2024-01-15 10:30:00Z")),
        ("issuedAt", json!("2024-01-15T10:30:00")),
        ("issuedAt", json!("")),
        ("expirationTime", json!("")),
        ("expirationTime", json!("tomorrow")),
        ("notBefore", json!("2024-02-30T00:00:00Z")),
    ];
    for (field, value) in cases {
        let mut v = base.clone();
        v[field] = value.clone();
        assert_eq!(parse_code(&v), "siwx_malformed", "{field} = {value}");
    }
    assert!(parse_header(&header(&base)).is_ok());
}

#[test]
fn request_url_must_be_absolute_http() {
    let p = signed(|_| {});
    for bad in [
        "",
        "/premium-data",
        "ftp://api.example.com/",
        "https://",
        "https:///x",
    ] {
        assert_eq!(
            code(verify(&p, bad, ISSUED, 300)),
            "siwx_request_url_invalid",
            "{bad:?}"
        );
    }
}

#[test]
fn verify_checks_cheap_things_before_the_signature() {
    // A garbage signature with a wrong domain reports the domain.
    let p = Proof {
        signature: "garbage".into(),
        ..signed(|v| v["domain"] = json!("evil.example.com"))
    };
    assert_eq!(code(verify(&p, URL, ISSUED, 300)), "siwx_domain_mismatch");
}

#[test]
fn mutated_headers_never_panic() {
    let g = &vectors()["generated"]["siwe_with_statement"];
    let json_text =
        serde_json::to_string(&vector_payload(true, g["signature"].as_str().unwrap())).unwrap();
    let bytes = json_text.as_bytes();
    for cut in 0..bytes.len() {
        let _ = parse_header(&STANDARD.encode(&bytes[..cut]));
    }
    for i in 0..bytes.len() {
        for replacement in [b'"', b'\\', b'0', b'{', b'\n', 0xff] {
            let mut m = bytes.to_vec();
            m[i] = replacement;
            if let Ok(p) = parse_header(&STANDARD.encode(&m)) {
                let _ = message(&p);
                let _ = verify(&p, URL, ISSUED + 60, 300);
                let _ = verify(&p, URL, u64::MAX, u64::MAX);
                let _ = remember_until(&p, u64::MAX);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Replay bookkeeping.

#[test]
fn replay_key_shape() {
    let p = signed(|_| {});
    assert_eq!(
        replay_key(&p),
        "siwx:0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266:a1b2c3d4e5f67890a1b2c3d4e5f67890"
    );
    // The same proof with a lowercase address has the same key.
    let lower = Proof {
        address: Address::parse(&ANVIL0.to_ascii_lowercase()).unwrap(),
        ..p.clone()
    };
    assert_eq!(replay_key(&lower), replay_key(&p));
    // Another wallet, same nonce: another key.
    let other = Proof {
        address: Address::parse(ANVIL1).unwrap(),
        ..p
    };
    assert_ne!(replay_key(&other), replay_key(&lower));
}

#[test]
fn remember_until_covers_the_acceptance_window() {
    // Expiration after the age limit: the age limit ends the window.
    let p = signed(|v| v["expirationTime"] = json!("2024-01-15T11:30:00.000Z"));
    assert_eq!(remember_until(&p, 300), ISSUED + 301 + CLOCK_SKEW_SECONDS);
    // Expiration before it: the expiration ends it.
    let p = signed(|v| v["expirationTime"] = json!("2024-01-15T10:31:00.000Z"));
    assert_eq!(remember_until(&p, 300), ISSUED + 60 + CLOCK_SKEW_SECONDS);
    // No expiration.
    let p = signed(|v| {
        v.as_object_mut().unwrap().remove("expirationTime");
    });
    assert_eq!(remember_until(&p, 300), ISSUED + 301 + CLOCK_SKEW_SECONDS);
    assert_eq!(remember_until(&p, u64::MAX), u64::MAX);

    // Property: at every second after the horizon (minus the skew margin), verify refuses on time.
    for exp in [
        "2024-01-15T10:31:00.000Z",
        "2024-01-15T10:35:00.000Z",
        "2024-01-15T12:00:00Z",
    ] {
        let p = signed(|v| v["expirationTime"] = json!(exp));
        let horizon = remember_until(&p, 300) - CLOCK_SKEW_SECONDS;
        assert!(verify(&p, URL, horizon - 1, 300).is_ok(), "{exp}");
        for now in horizon..horizon + 5 {
            assert!(verify(&p, URL, now, 300).is_err(), "{exp} at {now}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The 402 extension.

#[test]
fn extension_matches_the_reference_shape() {
    let chains = vec![
        "eip155:8453".to_string(),
        "solana:5eykt4UsFv8P8NJdTREpY1vzqKqZKvdp".to_string(),
        "eip155:8453".to_string(),
        "eip155:84532".to_string(),
        "eip155:nope".to_string(),
    ];
    let nonce = [
        0xa1, 0xb2, 0xc3, 0xd4, 0xe5, 0xf6, 0x78, 0x90, 0xa1, 0xb2, 0xc3, 0xd4, 0xe5, 0xf6, 0x78,
        0x90,
    ];
    let ext = extension(
        "api.example.com",
        URL,
        &chains,
        nonce,
        ISSUED,
        Some("Sign in to access premium data"),
        Some(300),
    )
    .to_value();
    assert_eq!(
        ext,
        json!({
            "info": {
                "domain": "api.example.com",
                "uri": "https://api.example.com/premium-data",
                "version": "1",
                "nonce": "a1b2c3d4e5f67890a1b2c3d4e5f67890",
                "issuedAt": "2024-01-15T10:30:00.000Z",
                "expirationTime": "2024-01-15T10:35:00.000Z",
                "statement": "Sign in to access premium data",
                "resources": ["https://api.example.com/premium-data"]
            },
            "supportedChains": [
                { "chainId": "eip155:8453", "type": "eip191" },
                { "chainId": "eip155:84532", "type": "eip191" }
            ],
            "schema": {
                "$schema": "https://json-schema.org/draft/2020-12/schema",
                "type": "object",
                "properties": {
                    "domain": { "type": "string" },
                    "address": { "type": "string" },
                    "statement": { "type": "string" },
                    "uri": { "type": "string", "format": "uri" },
                    "version": { "type": "string" },
                    "chainId": { "type": "string" },
                    "type": { "type": "string" },
                    "nonce": { "type": "string" },
                    "issuedAt": { "type": "string", "format": "date-time" },
                    "expirationTime": { "type": "string", "format": "date-time" },
                    "notBefore": { "type": "string", "format": "date-time" },
                    "requestId": { "type": "string" },
                    "resources": { "type": "array", "items": { "type": "string", "format": "uri" } },
                    "signature": { "type": "string" }
                },
                "required": [
                    "domain", "address", "uri", "version", "chainId", "type", "nonce", "issuedAt",
                    "signature"
                ]
            }
        })
    );
    assert_eq!(ext["schema"], proof_schema());
}

#[test]
fn extension_optional_parts() {
    let chains = vec!["eip155:8453".to_string()];
    let ext = extension(
        "api.example.com",
        URL,
        &chains,
        [0; 16],
        ISSUED + 1,
        None,
        None,
    )
    .to_value();
    let info = ext["info"].as_object().unwrap();
    assert_eq!(info["nonce"], json!("00000000000000000000000000000000"));
    assert_eq!(info["issuedAt"], json!("2024-01-15T10:30:01.000Z"));
    assert!(!info.contains_key("expirationTime"));
    assert!(!info.contains_key("statement"));
    // Empty or unsignable statements are left out.
    for s in ["", "line\nbreak", "caf\u{e9}"] {
        let ext = extension(
            "api.example.com",
            URL,
            &chains,
            [0; 16],
            ISSUED,
            Some(s),
            None,
        )
        .to_value();
        assert!(ext["info"].get("statement").is_none(), "{s:?}");
    }
    // Far-future expiration saturates instead of overflowing.
    let ext = extension("h", URL, &chains, [0; 16], u64::MAX, None, Some(u64::MAX)).to_value();
    assert_eq!(
        ext["info"]["expirationTime"],
        json!("9999-12-31T23:59:59.000Z")
    );
}

/// The text a 402 carries is the extension's value written out, byte for byte, whatever the
/// optional parts and the URL (percent-encoded characters, a port, several chains).
#[test]
fn extension_text_is_the_value_written_out() {
    let chains = [
        "eip155:8453".to_string(),
        "eip155:84532".to_string(),
        "eip155:8453".to_string(),
        "solana:5eykt4UsFv8P8NJdTREpY1vzqKqZKvdp".to_string(),
    ];
    for (domain, url, statement, expiry) in [
        ("api.example.com", URL, None, None),
        (
            "localhost:8787",
            "http://localhost:8787/a/{b}|c^?q=\\",
            Some("Sign in"),
            Some(120),
        ),
        ("h", "https://h/", Some("caf\u{e9}"), Some(u64::MAX)),
    ] {
        for (i, chains) in [&chains[..], &chains[..1], &[][..]].into_iter().enumerate() {
            let ext = extension(
                domain,
                url,
                chains,
                [i as u8; 16],
                ISSUED,
                statement,
                expiry,
            );
            let value = ext.to_value();
            assert_eq!(
                ext.to_json(),
                value.to_string(),
                "{domain} {url} {statement:?}"
            );
            assert_eq!(value["schema"], proof_schema());
        }
    }
}

#[test]
fn client_flow_over_our_extension() {
    // What `createSIWxClientHook` does with our 402: info + the chosen chain + address + signature.
    let chains = vec!["eip155:84532".to_string()];
    let ext = extension(
        "localhost:8787",
        "http://localhost:8787/articles/1?lang=en",
        &chains,
        *b"0123456789abcdef",
        ISSUED,
        Some("Sign in"),
        Some(120),
    )
    .to_value();
    let mut payload = ext["info"].clone();
    payload["chainId"] = ext["supportedChains"][0]["chainId"].clone();
    payload["type"] = ext["supportedChains"][0]["type"].clone();
    payload["address"] = json!(ANVIL0);
    payload["signature"] = json!("0x");
    let unsigned = parse_header(&header(&payload)).unwrap();
    payload["signature"] = json!(personal_sign(&key(), &message(&unsigned)));
    let proof = parse_header(&header(&payload)).unwrap();
    let url = "http://localhost:8787/articles/1?lang=en";
    assert_eq!(verify(&proof, url, ISSUED + 5, 300), Ok(anvil0()));
    assert_eq!(code(verify(&proof, url, ISSUED + 120, 300)), "siwx_expired");
}

// ---------------------------------------------------------------------------------------------
// Errors.

#[test]
fn codes_are_stable_unique_and_sentences_end_with_a_period() {
    let a = anvil0();
    let all = [
        SiwxError::Malformed("x".into()),
        SiwxError::UnsupportedChain("x".into()),
        SiwxError::UnsupportedSignature(64),
        SiwxError::RequestUrl("x".into()),
        SiwxError::DomainMismatch {
            expected: "a".into(),
            got: "b".into(),
        },
        SiwxError::UriMismatch {
            expected: "a".into(),
            got: "b".into(),
        },
        SiwxError::Stale { age: 1, max_age: 0 },
        SiwxError::IssuedInFuture { ahead: 61 },
        SiwxError::Expired {
            expiration_time: "t".into(),
        },
        SiwxError::NotYetValid {
            not_before: "t".into(),
        },
        SiwxError::BadSignature("x".into()),
        SiwxError::SignerMismatch {
            claimed: a,
            recovered: a,
        },
    ];
    let codes: Vec<&str> = all.iter().map(SiwxError::code).collect();
    assert_eq!(codes, SiwxError::CODES);
    let mut unique = codes.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), codes.len());
    for e in &all {
        let s = e.to_string();
        assert!(s.ends_with('.'), "{s}");
        assert!(e.code().starts_with("siwx_"));
    }
    // Long echoed values are clipped.
    let long = SiwxError::Malformed("x".repeat(10_000)).to_string();
    assert!(long.len() < 300);
}

// ---------------------------------------------------------------------------------------------
// RFC 3339.

#[test]
fn rfc3339_known_instants() {
    let cases: [(&str, u64, u32); 12] = [
        ("1970-01-01T00:00:00Z", 0, 0),
        ("1970-01-01T00:00:00.000Z", 0, 0),
        ("2024-01-15T10:30:00.000Z", ISSUED, 0),
        ("2024-01-15t10:30:00.000z", ISSUED, 0),
        ("2024-01-15T10:30:00.5Z", ISSUED, 500_000_000),
        ("2024-01-15T10:30:00.123456789123Z", ISSUED, 123_456_789),
        ("2024-01-15T11:30:00+01:00", ISSUED, 0),
        ("2024-01-15T05:00:00-05:30", ISSUED, 0),
        ("2024-02-29T00:00:00Z", 1_709_164_800, 0),
        ("2000-02-29T12:00:00Z", 951_825_600, 0),
        ("2038-01-19T03:14:08Z", 2_147_483_648, 0),
        ("1970-01-01T01:00:00+01:00", 0, 0),
    ];
    for (text, secs, nanos) in cases {
        assert_eq!(parse_rfc3339(text), Some(UtcTime { secs, nanos }), "{text}");
    }
    assert_eq!(
        parse_rfc3339("2024-01-15T10:30:00.001Z")
            .unwrap()
            .ceil_secs(),
        ISSUED + 1
    );
    assert_eq!(
        parse_rfc3339("2024-01-15T10:30:00.000Z")
            .unwrap()
            .ceil_secs(),
        ISSUED
    );
}

#[test]
fn rfc3339_refusals() {
    for bad in [
        "",
        "2024",
        "2024-01-15",
        "2024-01-15T10:30:00",
        "2024-01-15T10:30Z",
        "2024-01-15 10:30:00Z",
        " 2024-01-15T10:30:00Z",
        "2024-01-15T10:30:00Z ",
        "2024-01-15T10:30:00ZZ",
        "2024-01-15T10:30:00.Z",
        "2024-01-15T10:30:00,5Z",
        "2024-1-15T10:30:00Z",
        "2024-01-5T10:30:00Z",
        "24-01-15T10:30:00Z",
        "+2024-01-15T10:30:00Z",
        "2024-00-15T10:30:00Z",
        "2024-13-15T10:30:00Z",
        "2024-01-00T10:30:00Z",
        "2024-01-32T10:30:00Z",
        "2023-02-29T10:30:00Z",
        "1900-02-29T10:30:00Z",
        "2024-04-31T10:30:00Z",
        "2024-01-15T24:00:00Z",
        "2024-01-15T10:60:00Z",
        "2024-01-15T10:30:60Z",
        "2024-01-15T10:30:00+24:00",
        "2024-01-15T10:30:00+01:60",
        "2024-01-15T10:30:00+0100",
        "2024-01-15T10:30:00+01",
        "2024-01-15T10:30:00UTC",
        "1969-12-31T23:59:59Z",
        "1970-01-01T00:00:00+00:01",
        "２０２４-01-15T10:30:00Z",
        "2024-01-15T10:30:00.000Z\n",
        "2024-01-15T10:30:00.000\u{e9}",
    ] {
        assert_eq!(parse_rfc3339(bad), None, "{bad:?}");
    }
    // Every prefix of a valid timestamp but the whole is refused, without panicking.
    let full = "2024-01-15T10:30:00.000+01:00";
    for cut in 0..full.len() {
        assert_eq!(parse_rfc3339(&full[..cut]), None, "{:?}", &full[..cut]);
    }
}

#[test]
fn iso_millis_formatting() {
    assert_eq!(format_iso_millis(0), "1970-01-01T00:00:00.000Z");
    assert_eq!(format_iso_millis(ISSUED), "2024-01-15T10:30:00.000Z");
    assert_eq!(format_iso_millis(951_782_400), "2000-02-29T00:00:00.000Z");
    assert_eq!(format_iso_millis(u64::MAX), "9999-12-31T23:59:59.000Z");
    // Round trip on a spread of instants, with a stride that visits every time of day.
    let mut t = 0u64;
    while t < 253_402_300_799 {
        let text = format_iso_millis(t);
        assert_eq!(
            parse_rfc3339(&text),
            Some(UtcTime { secs: t, nanos: 0 }),
            "{text}"
        );
        t += 86_400 * 17 + 3_607;
    }
}

// ---------------------------------------------------------------------------------------------
// URLs.

#[test]
fn http_url_parts() {
    let u = HttpUrl::parse("https://api.example.com/premium-data?x=1#frag").unwrap();
    assert_eq!(u.scheme, "https");
    assert_eq!(u.host, "api.example.com");
    assert_eq!(u.port, None);
    assert_eq!(u.path, "/premium-data");
    assert_eq!(u.query.as_deref(), Some("x=1"));
    assert_eq!(u.authority(), "api.example.com");
    assert_eq!(u.origin(), "https://api.example.com");

    let u = HttpUrl::parse("HTTP://User:pw@LocalHost:8787").unwrap();
    assert_eq!(u.origin(), "http://localhost:8787");
    assert_eq!(u.path, "/");
    assert_eq!(HttpUrl::parse("http://h:80/").unwrap().port, None);
    assert_eq!(HttpUrl::parse("http://h:443/").unwrap().port, Some(443));
    assert_eq!(HttpUrl::parse("https://h:0443/").unwrap().port, None);
    assert_eq!(HttpUrl::parse("https://h:/").unwrap().port, None);
    assert_eq!(HttpUrl::parse("https://h?q").unwrap().path, "/");
    let v6 = HttpUrl::parse("http://[::1]:8787/x").unwrap();
    assert_eq!(v6.host, "[::1]");
    assert_eq!(v6.origin(), "http://[::1]:8787");

    for bad in [
        "",
        "api.example.com/x",
        "//api.example.com/x",
        "ftp://h/",
        "https://",
        "https://:443/",
        "https://h:65536/",
        "https://h:-1/",
        "https://h:1:2/",
        "https://h:99999999999999999999/",
        "https://h x/",
        "https://h/\u{e9}",
        "https://evil.com\\@api.example.com/",
        "https://[::1/",
        "https://[::1]x/",
        "https://[]/",
    ] {
        assert_eq!(HttpUrl::parse(bad), None, "{bad:?}");
        assert_eq!(HttpUrl::parse_request(bad), None, "{bad:?}");
    }
}

#[test]
fn a_request_url_may_carry_a_backslash_in_its_query_only() {
    // WHATWG URL turns a backslash into `/` in the path but leaves one in the query as sent.
    let u = HttpUrl::parse_request("https://site.example/search?q=C:\\Users\\me&x=1").unwrap();
    assert_eq!(u.path, "/search");
    assert_eq!(u.query.as_deref(), Some("q=C:\\Users\\me&x=1"));
    assert_eq!(u.origin(), "https://site.example");
    assert_eq!(
        HttpUrl::parse("https://site.example/search?q=C:\\Users"),
        None
    );
    // Without one, the two read alike.
    let plain = "https://site.example:8443/a/b?x=1";
    assert_eq!(HttpUrl::parse_request(plain), HttpUrl::parse(plain));
    for bad in [
        "https://evil.com\\@site.example/?q=\\",
        "https://site.example/a\\b?q=\\",
        "https://site.example/#frag?q=\\",
        "https://site.example/?q=\\ x",
        "https://site.example/?q=\\\u{e9}",
    ] {
        assert_eq!(HttpUrl::parse_request(bad), None, "{bad:?}");
    }
}

#[test]
fn statements() {
    assert!(statement_is_valid("Sign in to access premium data"));
    assert!(statement_is_valid(
        "I accept: https://x.io/tos?v=1 (ok) & [all] @you ~_#$!*+,-./;="
    ));
    assert!(statement_is_valid(""));
    for bad in [
        "\"", "%", "<", ">", "\\", "^", "`", "{", "|", "}", "\n", "\r", "\t", "é",
    ] {
        assert!(!statement_is_valid(bad), "{bad:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// Smart wallets: what the wallet's contract is asked.

#[test]
fn only_signature_refusals_may_be_a_contracts() {
    let p = signed(|_| {});
    let now = ISSUED + 10;
    // Another key signed for this address: its contract may still accept it.
    let mut other = p.clone();
    other.address = Address::parse(ANVIL1).unwrap();
    let e = verify(&other, URL, now, DEFAULT_MAX_AGE_SECONDS).unwrap_err();
    assert!(e.may_be_contract_signature(), "{e}");
    // A longer signature: a smart wallet's shape.
    let mut long = p.clone();
    long.signature = format!("0x{}", "ab".repeat(200));
    let e = verify(&long, URL, now, DEFAULT_MAX_AGE_SECONDS).unwrap_err();
    assert!(e.may_be_contract_signature(), "{e}");
    // Anything else is refused before the signature is looked at, whoever signed.
    let e = verify(
        &long,
        "https://elsewhere.example/premium-data",
        now,
        DEFAULT_MAX_AGE_SECONDS,
    )
    .unwrap_err();
    assert!(!e.may_be_contract_signature(), "{e}");
    let e = verify(&long, URL, ISSUED + 3_600, DEFAULT_MAX_AGE_SECONDS).unwrap_err();
    assert!(!e.may_be_contract_signature(), "{e}");
}

#[test]
fn the_contract_is_asked_about_the_message_hash_and_the_inner_signature() {
    let p = signed(|_| {});
    let hash = eip191_hash(message(&p).as_bytes());
    let inner = vec![0x5a; 65];
    let mut plain = p.clone();
    plain.signature = format!("0x{}", hex::encode(&inner));
    let asked = |signature: &[u8], deploy| {
        Some(WalletQuestion {
            hash,
            signature: signature.to_vec(),
            deploy,
        })
    };
    assert_eq!(contract_question(&plain), asked(&inner, None));
    // ERC-6492: abi.encode(factory, factoryCalldata, signature) ‖ the magic suffix.
    let calldata = vec![0x77; 36];
    let envelope = common::erc6492_envelope(
        "ca11ab1e00000000000000000000000000000001",
        &calldata,
        &inner,
    );
    let mut wrapped = p.clone();
    wrapped.signature = format!("0x{envelope}");
    // The signature inside, and the factory's call that deploys a wallet not deployed yet.
    let factory: Address = "0xca11ab1e00000000000000000000000000000001"
        .parse()
        .unwrap();
    assert_eq!(
        contract_question(&wrapped),
        asked(&inner, Some((factory, calldata)))
    );
    // An envelope whose offsets lead outside it, or that is not hex: nothing to ask.
    let mut broken = p.clone();
    // A zero factory, a zero offset for the call, and the signature's far past the end.
    broken.signature = format!("0x{}{:064x}", "0".repeat(128), 0x1000) + &"6492".repeat(16);
    assert_eq!(contract_question(&broken), None);
    let mut not_hex = p;
    not_hex.signature = "0xzz".into();
    assert_eq!(contract_question(&not_hex), None);
}

#[test]
fn an_erc6492_envelope_opens_to_what_the_abi_encoded() {
    use x402_edge::evm::erc6492;
    let (calldata, inner) = (vec![0x77; 36], vec![0x5a; 65]);
    let envelope = common::erc6492_envelope(
        "ca11ab1e00000000000000000000000000000001",
        &calldata,
        &inner,
    );
    let bytes = hex::decode(envelope).unwrap();
    assert!(erc6492::is_wrapped(&bytes));
    let opened = erc6492::open(&bytes).unwrap();
    assert_eq!(
        opened.factory.to_lower_hex(),
        "0xca11ab1e00000000000000000000000000000001"
    );
    assert_eq!(opened.factory_calldata, &calldata[..]);
    assert_eq!(opened.signature, &inner[..]);
    // Lengths that are whole words need no padding.
    let bytes = hex::decode(common::erc6492_envelope(
        "11".repeat(20).as_str(),
        &[1; 64],
        &[],
    ))
    .unwrap();
    let opened = erc6492::open(&bytes).unwrap();
    assert_eq!(opened.factory_calldata, &[1; 64][..]);
    assert!(opened.signature.is_empty());
}
