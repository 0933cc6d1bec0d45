//! Sign-In-With-X: `siwx::parse_header`, then `siwx::message` and `siwx::verify` against a fixed
//! request URL (`SIWX_URL`) and clock (`SIWX_NOW`), plus the hand-written parsers under them.
//!
//! Input: `[mode] [selector] body…`, mode (mod 4):
//! - 0: the body (after the selector) is the header value;
//! - 1: the body is the JSON, sent as base64 (selector bit 0: URL-safe unpadded);
//! - 2: a proof mutated from the SIWE vectors: one edit per field (`[what] [how] value…`, paths
//!   in `SIWX_PATHS`). Selector bits: 0 the vector with a statement; 1 sign the edited proof again
//!   with Anvil key #0 over its rebuilt message (unless the signature itself was edited); 2
//!   URL-safe unpadded base64;
//! - 3: the body is a string for `parse_rfc3339` and `HttpUrl::parse`.
//!
//! Invariants besides "no panic": a parsed proof rebuilds into a message with exactly the lines
//! EIP-4361 prescribes for its fields (no field can smuggle in a line), starting with its domain;
//! a proof that verifies names the address that k256 independently recovers from the EIP-191
//! hash of that message, with a domain and a time window that fit the request; RFC 3339 times
//! that parse format back to the same second; a parsed URL's origin parses to itself.

#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use x402_edge::evm::eip191_hash;
use x402_edge::siwx::{self, HttpUrl, Proof, DEFAULT_MAX_AGE_SECONDS};
use x402_edge_fuzz::*;

fuzz_target!(|data: &[u8]| {
    let input = Framed::new(data);
    match input.mode % 4 {
        0 => check_header(&lossy(input.body())),
        1 => check_header(&encode_header(input.body(), input.selector & 1 != 0)),
        2 => mutated(&input),
        _ => parsers(&lossy(input.body())),
    }
});

fn mutated(input: &Framed<'_>) {
    let s = input.selector;
    let mut proof = siwx_payload(s & 1 != 0);
    let touched = apply_edits(&mut proof, SIWX_PATHS, &input.fields());
    if s & 2 != 0 && !touched.contains(&SIWX_SIGNATURE_PATH) {
        let header = encode_header(&serde_json::to_vec(&proof).unwrap(), false);
        if let Ok(unsigned) = siwx::parse_header(&header) {
            let sig = personal_sign(&siwx::message(&unsigned));
            proof["signature"] = Value::String(sig);
        }
    }
    let json = serde_json::to_vec(&proof).expect("a Value serialises");
    check_header(&encode_header(&json, s & 4 != 0));
}

fn check_header(header: &str) {
    let Ok(p) = siwx::parse_header(header) else {
        return;
    };
    let message = siwx::message(&p);
    assert_eq!(
        message.matches('\n').count(),
        expected_newlines(&p),
        "a field changed the message's lines: {message:?}"
    );
    assert!(!message.contains('\r'), "a carriage return in the message");
    assert!(message.starts_with(&format!("{} wants you to sign in", p.domain)));
    let key = siwx::replay_key(&p);
    assert!(
        key.len() <= 5 + 42 + 1 + siwx::MAX_NONCE_CHARS,
        "replay key of {} bytes",
        key.len()
    );
    let _ = siwx::remember_until(&p, u64::MAX);

    match siwx::verify(&p, SIWX_URL, SIWX_NOW, DEFAULT_MAX_AGE_SECONDS) {
        Ok(address) => {
            assert_eq!(address, p.address);
            assert!(
                p.domain.eq_ignore_ascii_case("api.example.com"),
                "domain {}",
                p.domain
            );
            let url = HttpUrl::parse(&p.uri).expect("a verified uri parses");
            assert_eq!(url.origin(), "https://api.example.com");
            assert!(p.issued_at_unix <= SIWX_NOW + siwx::CLOCK_SKEW_SECONDS);
            assert!(SIWX_NOW.saturating_sub(p.issued_at_unix) <= DEFAULT_MAX_AGE_SECONDS);
            if let Some((_, exp)) = &p.expiration_time {
                assert!(*exp > SIWX_NOW, "accepted after its expirationTime");
            }
            if let Some((_, nb)) = &p.not_before {
                assert!(*nb <= SIWX_NOW, "accepted before its notBefore");
            }
            assert_eq!(
                k256_recover(&p.signature, &eip191_hash(message.as_bytes())),
                Some(p.address),
                "k256 does not recover the address from the message"
            );
            // Accepted now, refused once remembered no longer.
            let until = siwx::remember_until(&p, DEFAULT_MAX_AGE_SECONDS);
            assert!(until > SIWX_NOW);
            assert!(siwx::verify(&p, SIWX_URL, until, DEFAULT_MAX_AGE_SECONDS).is_err());
        }
        Err(e) => {
            assert!(siwx::SiwxError::CODES.contains(&e.code()));
            assert!(!e.to_string().is_empty());
            if e.may_be_contract_signature() {
                check_contract_question(&p);
            }
        }
    }
}

/// What a smart wallet's contract would be asked: the signature inside an ERC-6492 envelope, and
/// a question that can always be carried (a proof's header is at most 8 KiB).
fn check_contract_question(p: &Proof) {
    let Some(q) = siwx::contract_question(p) else {
        return;
    };
    assert_eq!(q.hash, eip191_hash(siwx::message(p).as_bytes()));
    match &q.deploy {
        None => {
            let body =
                x402_edge::chain::is_valid_signature_request(&p.address, &q.hash, &q.signature);
            assert!(body.contains("\"to\""));
        }
        Some((factory, calldata)) => {
            assert!(q.signature.len() + calldata.len() < p.signature.len());
            let body = x402_edge::chain::deployless_is_valid_signature_request(
                &p.address,
                factory,
                calldata,
                &q.hash,
                &q.signature,
            )
            .expect("an envelope from an 8 KiB header is carried");
            assert!(!body.contains("\"to\""), "a creation call has no `to`");
        }
    }
}

/// The newlines EIP-4361 puts in the message of `p`.
fn expected_newlines(p: &Proof) -> usize {
    // The header line, the address and the blank line, URI, Version, Chain ID, Nonce, Issued At.
    let mut n = 8;
    n += usize::from(p.statement.is_some());
    n += usize::from(p.expiration_time.is_some());
    n += usize::from(p.not_before.is_some());
    n += usize::from(p.request_id.is_some());
    if let Some(r) = &p.resources {
        n += 1 + r.len();
    }
    n
}

fn parsers(s: &str) {
    if let Some(t) = siwx::parse_rfc3339(s) {
        assert!(t.nanos < 1_000_000_000);
        assert!(t.ceil_secs() >= t.secs);
        if t.secs <= siwx::MAX_FORMATTED_UNIX {
            let again = siwx::format_iso_millis(t.secs);
            let back = siwx::parse_rfc3339(&again).expect("our own timestamp parses");
            assert_eq!((back.secs, back.nanos), (t.secs, 0), "{s:?} → {again:?}");
        }
    }
    if let Some(u) = HttpUrl::parse(s) {
        assert!(u.scheme == "http" || u.scheme == "https");
        assert!(!u.host.is_empty());
        let origin = u.origin();
        let again = HttpUrl::parse(&origin).expect("an origin parses");
        assert_eq!(again.origin(), origin);
        assert_eq!(again.authority(), u.authority());
    }
}
