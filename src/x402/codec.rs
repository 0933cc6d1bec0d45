//! The header codec: base64 of compact JSON, as every x402 header is.
//!
//! Strict on what we send (standard alphabet, padded, compact JSON, as the reference decoders
//! demand), tolerant on what we read (padded or not, standard or URL-safe alphabet), because
//! clients in the wild differ and the signature inside is what must be exact. The size limit is
//! checked before any decoding so a hostile header costs nothing.

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine;
use serde::Serialize;

use crate::reason::{Reason, Refusal};

/// The largest payment header we read. A real EIP-3009 payment with its echoed terms is about
/// 1.5 KB; the official v2 client repeats the 402's `resource` and every extension in it (a
/// route's discovery schema and examples, a sign-in challenge), and smart-wallet signatures are
/// longer. 16 KiB is the most Cloudflare has promised to pass in one request header. Anything
/// longer is refused with 431 before decoding.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;

const LENIENT: GeneralPurposeConfig = GeneralPurposeConfig::new()
    .with_decode_padding_mode(DecodePaddingMode::Indifferent)
    .with_decode_allow_trailing_bits(true);
const STANDARD_LENIENT: GeneralPurpose = GeneralPurpose::new(&alphabet::STANDARD, LENIENT);
const URL_SAFE_LENIENT: GeneralPurpose = GeneralPurpose::new(&alphabet::URL_SAFE, LENIENT);

/// Decodes a header value to its JSON, refusing oversized, non-base64 and non-JSON input.
pub fn decode_json(value: &str) -> Result<serde_json::Value, Refusal> {
    let bytes = decode_base64(value)?;
    // Read as text, the way every other JSON in the Worker is read (one reader in the bundle).
    let text = std::str::from_utf8(&bytes)
        .map_err(|e| Refusal::new(Reason::InvalidJson, format!("the JSON is not UTF-8: {e}")))?;
    serde_json::from_str(text).map_err(|e| Refusal::new(Reason::InvalidJson, e.to_string()))
}

/// Decodes base64 in either alphabet, padded or not, within the size limit.
pub fn decode_base64(value: &str) -> Result<Vec<u8>, Refusal> {
    if value.len() > MAX_HEADER_BYTES {
        return Err(Refusal::new(
            Reason::HeaderTooLarge,
            format!("{} bytes", value.len()),
        ));
    }
    let value = value.trim();
    if value.is_empty() {
        return Err(Refusal::new(Reason::InvalidBase64, "the header is empty"));
    }
    // By bytes: a search for either of two chars decodes every character of a 1 KB header
    // (6% of a whole verification's instructions).
    let url_safe = value.bytes().any(|b| b == b'-' || b == b'_');
    let engine = if url_safe {
        &URL_SAFE_LENIENT
    } else {
        &STANDARD_LENIENT
    };
    engine
        .decode(value)
        .map_err(|e| Refusal::new(Reason::InvalidBase64, e.to_string()))
}

/// Encodes a value as the reference clients expect: standard padded base64 of compact JSON.
pub fn encode_json<T: Serialize>(value: &T) -> String {
    // Serialising our own plain structs cannot fail; an empty object is a safe fallback.
    let json = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
    base64(&json, false)
}

/// Encodes JSON text already rendered, as [`encode_json`] does a value.
pub fn encode_text(json: &str) -> String {
    base64(json.as_bytes(), false)
}

/// `bytes` in base64: the standard alphabet, padded (`url = false`), or the URL-safe one,
/// unpadded (`url = true`, as tokens carry it).
pub fn base64(bytes: &[u8], url: bool) -> String {
    String::from_utf8(encode(bytes, url)).unwrap_or_default()
}

/// [`base64`], appended to `out`.
pub fn base64_into(bytes: &[u8], url: bool, out: &mut String) {
    out.push_str(core::str::from_utf8(&encode(bytes, url)).unwrap_or_default());
}

/// The base64 characters of `bytes`. Written out here rather than taken from the `base64` crate,
/// whose unrolled encoder weighs 2.5 KB of the bundle for what a few lines do at a header's size
/// (three bytes at a time, as fast); its decoder, which must refuse every malformed input, stays.
fn encode(bytes: &[u8], url: bool) -> Vec<u8> {
    const STANDARD: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let table = if url { URL } else { STANDARD };
    let sextet = |n: u32, shift: u32| table[(n >> shift & 63) as usize];
    let mut out = Vec::with_capacity(bytes.len().div_ceil(3) * 4);
    let mut whole = bytes.chunks_exact(3);
    for c in &mut whole {
        let n = (c[0] as u32) << 16 | (c[1] as u32) << 8 | c[2] as u32;
        out.extend_from_slice(&[sextet(n, 18), sextet(n, 12), sextet(n, 6), sextet(n, 0)]);
    }
    // One or two bytes left: two or three characters, then padding to four.
    if let [first, rest @ ..] = whole.remainder() {
        let second = rest.first().copied().unwrap_or(0);
        let n = (*first as u32) << 16 | (second as u32) << 8;
        out.extend_from_slice(&[sextet(n, 18), sextet(n, 12)]);
        if !rest.is_empty() {
            out.push(sextet(n, 6));
        }
        if !url {
            out.extend_from_slice(&b"=="[rest.len()..]);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_tolerant_forms() {
        let v = serde_json::json!({"a": "b?>~", "n": 1});
        let enc = encode_json(&v);
        assert_eq!(decode_json(&enc).unwrap(), v);
        assert_eq!(decode_json(enc.trim_end_matches('=')).unwrap(), v);
        let url = enc.replace('+', "-").replace('/', "_");
        assert_eq!(decode_json(&url).unwrap(), v);
    }

    /// The encoder gives what the `base64` crate's standard and URL-safe unpadded engines give,
    /// for every length of input up to a few blocks.
    #[test]
    fn encodes_as_the_base64_crate() {
        use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
        let bytes: Vec<u8> = (0..=255u8).rev().chain(0..=255).collect();
        for len in 0..70 {
            for start in [0, 1, 100, 250] {
                let b = &bytes[start..start + len];
                assert_eq!(base64(b, false), STANDARD.encode(b), "{len} from {start}");
                assert_eq!(
                    base64(b, true),
                    URL_SAFE_NO_PAD.encode(b),
                    "{len} from {start}"
                );
            }
        }
        let mut out = String::from("v1.");
        base64_into(b"\xfb\xff", true, &mut out);
        assert_eq!(out, "v1.-_8");
    }

    #[test]
    fn refusals() {
        assert_eq!(decode_json("").unwrap_err().reason, Reason::InvalidBase64);
        assert_eq!(
            decode_json("!!!").unwrap_err().reason,
            Reason::InvalidBase64
        );
        assert_eq!(
            decode_json(&base64(b"not json", false)).unwrap_err().reason,
            Reason::InvalidJson
        );
        let big = "A".repeat(MAX_HEADER_BYTES + 1);
        assert_eq!(
            decode_json(&big).unwrap_err().reason,
            Reason::HeaderTooLarge
        );
    }
}
