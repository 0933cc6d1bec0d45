//! EVM primitives for verifying x402 `exact` payments and SIWE proofs locally.
//!
//! Everything here is pure computation over untrusted input: no I/O, no
//! panics, and no heap allocation on the verification path (hashes are
//! streamed, hex is decoded into stack buffers). Parsers are strict so that a
//! value accepted here is also one the on-chain USDC contract accepts.
//!
//! Layout: [`address`] (EIP-55), [`u256`] (decimal amounts and timestamps),
//! [`signature`] (65-byte ECDSA, recovery), [`eip712`] (EIP-3009 digest),
//! [`eip191`] (`personal_sign` hash), [`erc6492`] (a wallet not deployed yet's
//! signature envelope). Keccak and the shared error type live
//! here.

pub mod address;
mod ecmult;
pub mod eip191;
pub mod eip712;
pub mod erc6492;
pub mod signature;
pub mod u256;

use core::fmt;

use sha3::{Digest, Keccak256};

pub use address::Address;
pub use eip191::eip191_hash;
pub use eip712::{
    Eip712Domain, TransferWithAuthorization, EIP712_DOMAIN_TYPEHASH,
    TRANSFER_WITH_AUTHORIZATION_TYPEHASH,
};
pub use signature::Signature;
pub use u256::decimal;
pub use u256::U256;

/// Keccak-256 (the pre-NIST padding Ethereum uses, not SHA3-256).
pub fn keccak256(data: &[u8]) -> [u8; 32] {
    Keccak256::digest(data).into()
}

/// Keccak-256 of the concatenation of `parts`, without building the
/// concatenation: the EIP-712 and EIP-191 encodings are hashed straight from
/// their pieces.
pub(crate) fn keccak256_concat(parts: &[&[u8]]) -> [u8; 32] {
    let mut hasher = Keccak256::new();
    for part in parts {
        hasher.update(part);
    }
    hasher.finalize().into()
}

/// Errors from parsing or checking EVM values. Lengths in
/// [`EvmError::BadLength`] count hex digits after `0x`, because odd counts
/// have no byte length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EvmError {
    /// Missing `0x` prefix, odd digit count, or a non-hex character.
    BadHex,
    /// Wrong number of hex digits after `0x`.
    BadLength { expected: usize, got: usize },
    /// Mixed-case address whose case does not match EIP-55.
    BadChecksum,
    /// A decimal number of 2^256 or more (or more than 78 digits).
    Overflow,
    /// Not a plain run of ASCII digits.
    NotDecimal,
    /// A signature whose decoded length is not 65 bytes; carries the byte
    /// length so callers can route smart-wallet signatures elsewhere.
    SignatureLength(usize),
    /// `v` other than 27 or 28.
    BadV(u8),
    /// `s` above half the curve order (malleable; USDC rejects it).
    HighS,
    /// `r` or `s` is zero or not below the curve order.
    BadSignature,
    /// No public key recovers from this signature and hash.
    RecoveryFailed,
}

impl fmt::Display for EvmError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EvmError::BadHex => f.write_str("not a 0x-prefixed hexadecimal string"),
            EvmError::BadLength { expected, got } => {
                write!(f, "expected {expected} hex digits after 0x, got {got}")
            }
            EvmError::BadChecksum => {
                f.write_str("mixed-case address does not match its EIP-55 checksum")
            }
            EvmError::Overflow => f.write_str("number does not fit in 256 bits"),
            EvmError::NotDecimal => f.write_str("not a plain decimal integer"),
            EvmError::SignatureLength(n) => {
                write!(f, "signature is {n} bytes, expected 65")
            }
            EvmError::BadV(v) => write!(f, "signature v is {v}, expected 27 or 28"),
            EvmError::HighS => f.write_str("signature s is in the upper half of the curve order"),
            EvmError::BadSignature => {
                f.write_str("signature r or s is zero or not below the curve order")
            }
            EvmError::RecoveryFailed => {
                f.write_str("no public key recovers from this signature and hash")
            }
        }
    }
}

impl std::error::Error for EvmError {}

/// Strips the `0x` prefix. Only lowercase `0x` is accepted: every x402
/// client emits it, and one spelling keeps equality checks simple.
pub(crate) fn strip_0x(s: &str) -> Result<&[u8], EvmError> {
    s.strip_prefix("0x")
        .map(str::as_bytes)
        .ok_or(EvmError::BadHex)
}

/// Decodes `0x`-prefixed hex (digits in either case) into a new vector.
/// Allocates; prefer the fixed-size parsers on hot paths.
pub fn hex_bytes(s: &str) -> Result<Vec<u8>, EvmError> {
    let digits = strip_0x(s)?;
    if digits.len() % 2 != 0 {
        return Err(EvmError::BadHex);
    }
    let mut out = vec![0u8; digits.len() / 2];
    hex::decode_to_slice(digits, &mut out).map_err(|_| EvmError::BadHex)?;
    Ok(out)
}

/// Parses `0x` followed by exactly 64 hex digits (either case), as used for
/// EIP-3009 nonces and hashes.
pub fn parse_bytes32(s: &str) -> Result<[u8; 32], EvmError> {
    let digits = strip_0x(s)?;
    if digits.len() != 64 {
        return Err(EvmError::BadLength {
            expected: 64,
            got: digits.len(),
        });
    }
    let mut out = [0u8; 32];
    hex::decode_to_slice(digits, &mut out).map_err(|_| EvmError::BadHex)?;
    Ok(out)
}

/// Compile-time hex decoding for constants; a bad literal fails the build,
/// never a request.
pub(crate) const fn hex32(s: &str) -> [u8; 32] {
    const fn nibble(c: u8) -> u8 {
        match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            b'A'..=b'F' => c - b'A' + 10,
            _ => panic!("hex32: not a hex digit"),
        }
    }
    let b = s.as_bytes();
    assert!(b.len() == 64, "hex32: need 64 hex digits");
    let mut out = [0u8; 32];
    let mut i = 0;
    while i < 32 {
        out[i] = (nibble(b[2 * i]) << 4) | nibble(b[2 * i + 1]);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keccak_empty() {
        assert_eq!(
            hex::encode(keccak256(b"")),
            "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"
        );
    }

    #[test]
    fn keccak_concat_matches_single() {
        assert_eq!(keccak256_concat(&[b"ab", b"", b"c"]), keccak256(b"abc"));
    }

    #[test]
    fn hex_bytes_cases() {
        assert_eq!(hex_bytes("0x"), Ok(vec![]));
        assert_eq!(hex_bytes("0x00fF"), Ok(vec![0, 255]));
        assert_eq!(hex_bytes("00ff"), Err(EvmError::BadHex));
        assert_eq!(hex_bytes("0X00ff"), Err(EvmError::BadHex));
        assert_eq!(hex_bytes("0x0"), Err(EvmError::BadHex));
        assert_eq!(hex_bytes("0xzz"), Err(EvmError::BadHex));
        assert_eq!(hex_bytes("0xé0"), Err(EvmError::BadHex));
    }

    #[test]
    fn bytes32_cases() {
        let ones = format!("0x{}", "11".repeat(32));
        assert_eq!(parse_bytes32(&ones), Ok([0x11; 32]));
        assert_eq!(
            parse_bytes32(&format!("0x{}", "AB".repeat(32))),
            Ok([0xab; 32])
        );
        assert_eq!(
            parse_bytes32(&ones[..65]),
            Err(EvmError::BadLength {
                expected: 64,
                got: 63
            })
        );
        assert_eq!(
            parse_bytes32(&format!("{ones}1")),
            Err(EvmError::BadLength {
                expected: 64,
                got: 65
            })
        );
        assert_eq!(parse_bytes32(&ones[2..]), Err(EvmError::BadHex));
        assert_eq!(
            parse_bytes32(&format!("0x{}", "g".repeat(64))),
            Err(EvmError::BadHex)
        );
    }

    #[test]
    fn hex32_const() {
        let h = hex32("00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ffA0b1");
        assert_eq!(h[0], 0);
        assert_eq!(h[1], 0xff);
        assert_eq!(h[30], 0xa0);
        assert_eq!(h[31], 0xb1);
    }

    #[test]
    fn errors_display() {
        let all = [
            EvmError::BadHex,
            EvmError::BadLength {
                expected: 40,
                got: 39,
            },
            EvmError::BadChecksum,
            EvmError::Overflow,
            EvmError::NotDecimal,
            EvmError::SignatureLength(64),
            EvmError::BadV(0),
            EvmError::HighS,
            EvmError::BadSignature,
            EvmError::RecoveryFailed,
        ];
        for e in all {
            assert!(!e.to_string().is_empty());
        }
        assert_eq!(
            EvmError::SignatureLength(64).to_string(),
            "signature is 64 bytes, expected 65"
        );
    }
}
