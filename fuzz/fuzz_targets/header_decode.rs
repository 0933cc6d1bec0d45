//! Payment header decoding: `x402::codec::decode_json` and `x402::Payment::from_json`.
//!
//! Input: `[mode] body…` where mode (mod 3) is
//! - 0: the body is the header value (any string: base64 of JSON, or anything else);
//! - 1: the body is the JSON, sent as standard padded base64 (reaches `Payment::from_json` without
//!   the fuzzer having to discover base64);
//! - 2: the same, URL-safe and unpadded.
//!
//! Invariants besides "no panic": whatever `decode_json` accepts, `encode_json` writes back to a
//! header that decodes to the same JSON (floats to within an ulp: serde_json without its
//! `float_roundtrip` feature may read the last digit of a float differently); JSON sent as base64 decodes to exactly what serde_json
//! reads from the bytes; a payment that `from_json` accepts is v1 or v2 and has the shape of its
//! generation; `Payment.raw` is the decoded JSON.

#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use x402_edge::x402::{codec, Payment};
use x402_edge_fuzz::{encode_header, lossy, Framed};

fuzz_target!(|data: &[u8]| {
    let mode = data.first().copied().unwrap_or(0) % 3;
    let body = Framed::after_mode(data);
    let header = match mode {
        0 => lossy(body),
        m => encode_header(body, m == 2),
    };
    let decoded = codec::decode_json(&header);

    if mode != 0 && header.len() <= codec::MAX_HEADER_BYTES {
        // The codec must read what a client encodes, in either alphabet, exactly as serde_json
        // reads the bytes.
        let direct = serde_json::from_slice::<serde_json::Value>(body);
        match (&decoded, &direct) {
            (Ok(a), Ok(b)) => assert_eq!(a, b, "base64 changed the JSON"),
            (Err(_), Err(_)) => {}
            // An empty body is refused as an empty header, before JSON.
            (Err(_), Ok(_)) if body.is_empty() => {}
            _ => panic!(
                "decode_json and serde_json disagree: {:?} vs {:?}",
                decoded.as_ref().map(|_| ()),
                direct.as_ref().map(|_| ())
            ),
        }
    }

    let Ok(json) = decoded else { return };

    // Round trip: what we decode, we encode back to a header that decodes the same.
    let again = codec::encode_json(&json);
    if again.len() <= codec::MAX_HEADER_BYTES {
        let back = codec::decode_json(&again).expect("our own header decodes");
        assert!(
            same(&back, &json),
            "encode_json → decode_json changed the JSON: {back} vs {json}"
        );
    }

    match Payment::from_json(json.clone()) {
        Ok(p) => {
            assert_eq!(p.raw, json, "Payment.raw is not the JSON as received");
            match p.version {
                1 => assert!(
                    p.accepted.is_none(),
                    "a v1 payment carries no accepted terms"
                ),
                2 => {
                    let a = p
                        .accepted
                        .as_ref()
                        .expect("a v2 payment has accepted terms");
                    assert_eq!((&a.scheme, &a.network), (&p.scheme, &p.network));
                }
                v => panic!("from_json accepted x402Version {v}"),
            }
        }
        Err(refusal) => {
            // Rendering a refusal never panics either, and says something.
            assert!(!refusal.message().is_empty());
            let _ = refusal.x402();
            let _ = refusal.status();
        }
    }
});

/// JSON equality, with floats equal to within an ulp or two.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) if x.is_f64() || y.is_f64() => {
            match (x.as_f64(), y.as_f64()) {
                (Some(x), Some(y)) => {
                    x == y || (x - y).abs() <= 4.0 * f64::EPSILON * x.abs().max(y.abs())
                }
                _ => false,
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}
