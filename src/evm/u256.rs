//! Unsigned 256-bit integers for EIP-3009 amounts and timestamps.
//!
//! Stored as 32 big-endian bytes (the ABI word), so `Ord` on the bytes is
//! numeric order and hashing needs no conversion. Arithmetic goes through
//! four little-endian u64 limbs on the stack. x402 carries these values as
//! decimal strings, so parsing accepts only plain ASCII digits: no sign,
//! no `0x`, no exponent, at most 78 characters.

use core::fmt;
use core::str::FromStr;

use serde::{Serialize, Serializer};
use serde_json::Value;

use crate::json::{self, Read};

use super::EvmError;

/// Digits in 2^256 - 1; longer input is refused before any arithmetic.
const MAX_DEC_LEN: usize = 78;

/// A 256-bit unsigned integer, big-endian.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct U256([u8; 32]);

type Limbs = [u64; 4];

impl U256 {
    pub const ZERO: U256 = U256([0u8; 32]);
    pub const MAX: U256 = U256([0xff; 32]);

    pub const fn from_be_bytes(bytes: [u8; 32]) -> U256 {
        U256(bytes)
    }

    pub const fn to_be_bytes(&self) -> [u8; 32] {
        self.0
    }

    pub const fn from_u64(v: u64) -> U256 {
        Self::from_u128(v as u128)
    }

    pub const fn from_u128(v: u128) -> U256 {
        let src = v.to_be_bytes();
        let mut out = [0u8; 32];
        let mut i = 0;
        while i < 16 {
            out[16 + i] = src[i];
            i += 1;
        }
        U256(out)
    }

    pub fn to_u128(&self) -> Option<u128> {
        let (high, low) = self.0.split_at(16);
        if high.iter().any(|&b| b != 0) {
            return None;
        }
        let mut buf = [0u8; 16];
        buf.copy_from_slice(low);
        Some(u128::from_be_bytes(buf))
    }

    pub fn to_u64(&self) -> Option<u64> {
        self.to_u128().and_then(|v| u64::try_from(v).ok())
    }

    pub fn is_zero(&self) -> bool {
        self.0.iter().all(|&b| b == 0)
    }

    /// Parses a non-empty run of ASCII digits (leading zeros allowed).
    pub fn from_dec_str(s: &str) -> Result<U256, EvmError> {
        let digits = s.as_bytes();
        if digits.is_empty() {
            return Err(EvmError::NotDecimal);
        }
        if !digits.iter().all(u8::is_ascii_digit) {
            return Err(EvmError::NotDecimal);
        }
        if digits.len() > MAX_DEC_LEN {
            return Err(EvmError::Overflow);
        }
        let mut limbs: Limbs = [0; 4];
        for &c in digits {
            if mul_small(&mut limbs, 10) != 0 {
                return Err(EvmError::Overflow);
            }
            if add_small(&mut limbs, u64::from(c - b'0')) {
                return Err(EvmError::Overflow);
            }
        }
        Ok(from_limbs(&limbs))
    }

    pub fn checked_add(self, rhs: U256) -> Option<U256> {
        let (a, b) = (to_limbs(&self.0), to_limbs(&rhs.0));
        let mut out: Limbs = [0; 4];
        let mut carry = false;
        for ((o, x), y) in out.iter_mut().zip(a).zip(b) {
            let (s1, c1) = x.overflowing_add(y);
            let (s2, c2) = s1.overflowing_add(u64::from(carry));
            *o = s2;
            carry = c1 || c2;
        }
        (!carry).then(|| from_limbs(&out))
    }

    pub fn checked_sub(self, rhs: U256) -> Option<U256> {
        let (a, b) = (to_limbs(&self.0), to_limbs(&rhs.0));
        let mut out: Limbs = [0; 4];
        let mut borrow = false;
        for ((o, x), y) in out.iter_mut().zip(a).zip(b) {
            let (d1, b1) = x.overflowing_sub(y);
            let (d2, b2) = d1.overflowing_sub(u64::from(borrow));
            *o = d2;
            borrow = b1 || b2;
        }
        (!borrow).then(|| from_limbs(&out))
    }

    pub fn checked_mul_u64(self, rhs: u64) -> Option<U256> {
        let mut limbs = to_limbs(&self.0);
        (mul_small(&mut limbs, rhs) == 0).then(|| from_limbs(&limbs))
    }

    /// Decimal digits into a stack buffer; returns the buffer and the index
    /// of the first significant digit.
    fn to_dec_ascii(self) -> ([u8; 95], usize) {
        // 5 chunks of 19 digits cover the 78 digits of 2^256 - 1.
        const CHUNK: u64 = 10_000_000_000_000_000_000;
        let mut buf = [b'0'; 95];
        let mut limbs = to_limbs(&self.0);
        let mut end = buf.len();
        while limbs.iter().any(|&l| l != 0) {
            let mut rem = div_small(&mut limbs, CHUNK);
            let start = end.saturating_sub(19);
            for slot in buf.get_mut(start..end).unwrap_or_default().iter_mut().rev() {
                // rem % 10 < 10, so the cast keeps the value.
                *slot = b'0' + (rem % 10) as u8;
                rem /= 10;
            }
            end = start;
        }
        let first = buf.iter().position(|&c| c != b'0').unwrap_or(buf.len() - 1);
        (buf, first)
    }
}

fn to_limbs(bytes: &[u8; 32]) -> Limbs {
    let mut limbs: Limbs = [0; 4];
    // Chunk 0 is the most significant word; limb 0 the least.
    for (limb, chunk) in limbs.iter_mut().rev().zip(bytes.chunks_exact(8)) {
        let mut w = [0u8; 8];
        w.copy_from_slice(chunk);
        *limb = u64::from_be_bytes(w);
    }
    limbs
}

fn from_limbs(limbs: &Limbs) -> U256 {
    let mut out = [0u8; 32];
    for (chunk, limb) in out.chunks_exact_mut(8).zip(limbs.iter().rev()) {
        chunk.copy_from_slice(&limb.to_be_bytes());
    }
    U256(out)
}

/// limbs *= m; returns the carry out of the top limb (nonzero = overflow).
fn mul_small(limbs: &mut Limbs, m: u64) -> u64 {
    let mut carry: u128 = 0;
    for limb in limbs.iter_mut() {
        let t = u128::from(*limb) * u128::from(m) + carry;
        *limb = t as u64;
        carry = t >> 64;
    }
    carry as u64
}

/// limbs += a; returns true on overflow.
fn add_small(limbs: &mut Limbs, a: u64) -> bool {
    let mut carry = a;
    for limb in limbs.iter_mut() {
        let (s, c) = limb.overflowing_add(carry);
        *limb = s;
        carry = u64::from(c);
        if carry == 0 {
            return false;
        }
    }
    carry != 0
}

/// limbs /= d (d > 0); returns the remainder.
fn div_small(limbs: &mut Limbs, d: u64) -> u64 {
    let d = u128::from(d.max(1));
    let mut rem: u128 = 0;
    for limb in limbs.iter_mut().rev() {
        let cur = (rem << 64) | u128::from(*limb);
        *limb = (cur / d) as u64;
        rem = cur % d;
    }
    rem as u64
}

/// A `u128` in decimal, written by [`U256`]'s digits: formatting a `u128` with the standard
/// library brings in its own 128-bit printer, 1.5 KB of wasm.
pub fn decimal(n: u128) -> String {
    U256::from_u128(n).to_string()
}

impl fmt::Display for U256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (buf, first) = self.to_dec_ascii();
        let digits = buf.get(first..).ok_or(fmt::Error)?;
        f.write_str(core::str::from_utf8(digits).map_err(|_| fmt::Error)?)
    }
}

impl FromStr for U256 {
    type Err = EvmError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        U256::from_dec_str(s)
    }
}

impl From<u64> for U256 {
    fn from(v: u64) -> Self {
        U256::from_u64(v)
    }
}

impl From<u128> for U256 {
    fn from(v: u128) -> Self {
        U256::from_u128(v)
    }
}

impl Serialize for U256 {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let (buf, first) = self.to_dec_ascii();
        let digits = buf
            .get(first..)
            .and_then(|d| core::str::from_utf8(d).ok())
            .ok_or_else(|| serde::ser::Error::custom("unreachable: non-ASCII digits"))?;
        serializer.serialize_str(digits)
    }
}

/// Read from a JSON string (a decimal string of an unsigned 256-bit integer).
impl Read for U256 {
    fn read(value: &Value) -> Result<Self, json::Error> {
        json::parsed(value, U256::from_dec_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX_DEC: &str =
        "115792089237316195423570985008687907853269984665640564039457584007913129639935";
    const TWO_256: &str =
        "115792089237316195423570985008687907853269984665640564039457584007913129639936";

    #[test]
    fn max_and_overflow() {
        assert_eq!(U256::from_dec_str(MAX_DEC), Ok(U256::MAX));
        assert_eq!(U256::MAX.to_string(), MAX_DEC);
        assert_eq!(U256::from_dec_str(TWO_256), Err(EvmError::Overflow));
        let max_minus_one =
            "115792089237316195423570985008687907853269984665640564039457584007913129639934";
        let v = U256::from_dec_str(max_minus_one).unwrap();
        assert_eq!(v.to_string(), max_minus_one);
        assert_eq!(v.checked_add(U256::from_u64(1)), Some(U256::MAX));
        assert_eq!(U256::MAX.checked_add(U256::from_u64(1)), None);
        // 79 digits, even if all leading zeros, is over the cap.
        assert_eq!(U256::from_dec_str(&"0".repeat(79)), Err(EvmError::Overflow));
        assert_eq!(U256::from_dec_str(&"9".repeat(78)), Err(EvmError::Overflow));
    }

    #[test]
    fn leading_zeros_and_zero() {
        assert_eq!(U256::from_dec_str("000010000"), Ok(U256::from_u64(10000)));
        assert_eq!(U256::from_dec_str(&"0".repeat(78)), Ok(U256::ZERO));
        assert_eq!(U256::from_dec_str("0"), Ok(U256::ZERO));
        assert_eq!(U256::ZERO.to_string(), "0");
        assert!(U256::ZERO.is_zero());
        assert!(!U256::from_u64(1).is_zero());
        assert_eq!(U256::from_dec_str("007").unwrap().to_string(), "7");
    }

    #[test]
    fn not_decimal() {
        for s in ["", "-1", "+1", "1.5", "0x10", " 1", "1 ", "1e3", "١"] {
            assert_eq!(U256::from_dec_str(s), Err(EvmError::NotDecimal), "{s:?}");
        }
    }

    #[test]
    fn display_chunk_boundaries() {
        for s in [
            "1",
            "9999999999999999999",
            "10000000000000000000",
            "10000000000000000001",
            "18446744073709551615",
            "18446744073709551616",
            "340282366920938463463374607431768211455",
            "340282366920938463463374607431768211456",
            "100000000000000000000000000000000000000000000000000000000",
        ] {
            assert_eq!(U256::from_dec_str(s).unwrap().to_string(), s);
        }
    }

    #[test]
    fn small_conversions() {
        assert_eq!(U256::from_u64(u64::MAX).to_u64(), Some(u64::MAX));
        assert_eq!(U256::from_u128(u128::MAX).to_u128(), Some(u128::MAX));
        assert_eq!(U256::from_u128(u128::from(u64::MAX) + 1).to_u64(), None);
        assert_eq!(U256::MAX.to_u128(), None);
        assert_eq!(
            U256::from_u128(u128::MAX).checked_add(U256::from_u64(1)),
            U256::from_dec_str("340282366920938463463374607431768211456").ok()
        );
        let mut be = [0u8; 32];
        be[31] = 0x10;
        assert_eq!(U256::from_u64(16).to_be_bytes(), be);
        assert_eq!(U256::from_be_bytes(be), U256::from_u64(16));
    }

    #[test]
    fn arithmetic() {
        let a = U256::from_u64(1740672154);
        let b = U256::from_u64(1740671489);
        assert_eq!(a.checked_sub(b), Some(U256::from_u64(665)));
        assert_eq!(b.checked_sub(a), None);
        assert_eq!(U256::ZERO.checked_sub(U256::from_u64(1)), None);
        assert_eq!(
            U256::from_u128(u128::MAX).checked_sub(U256::from_u128(u128::MAX)),
            Some(U256::ZERO)
        );
        assert_eq!(
            U256::from_u64(10000).checked_mul_u64(3),
            Some(U256::from_u64(30000))
        );
        assert_eq!(U256::MAX.checked_mul_u64(2), None);
        assert_eq!(U256::MAX.checked_mul_u64(1), Some(U256::MAX));
        assert_eq!(U256::MAX.checked_mul_u64(0), Some(U256::ZERO));
    }

    #[test]
    fn ordering_is_numeric() {
        assert!(U256::from_u64(2) > U256::from_u64(1));
        assert!(U256::from_u128(1 << 64) > U256::from_u64(u64::MAX));
        assert!(U256::MAX > U256::from_u128(u128::MAX));
    }

    #[test]
    fn serde_as_string() {
        let v: U256 = json::parse("\"10000\"").unwrap();
        assert_eq!(v, U256::from_u64(10000));
        assert_eq!(serde_json::to_string(&v).unwrap(), "\"10000\"");
        assert!(json::parse::<U256>("10000").is_err());
        assert!(json::parse::<U256>("\"-1\"").is_err());
        assert_eq!(
            serde_json::to_string(&U256::MAX).unwrap(),
            format!("\"{MAX_DEC}\"")
        );
    }
}
