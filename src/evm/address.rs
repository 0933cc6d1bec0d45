//! 20-byte EVM addresses with EIP-55 checksums.
//!
//! Parsing is strict: lowercase `0x`, exactly 40 hex digits. Single-case
//! input (all lower or all upper) carries no checksum and is accepted;
//! mixed case must be a correct EIP-55 checksum, since a wrong one usually
//! means a typo. Equality is on the bytes, so comparisons are case-blind,
//! like the reference `getAddress(a) == getAddress(b)`.

use core::fmt;
use core::str::FromStr;

use serde::{Serialize, Serializer};
use serde_json::Value;

use crate::json::{self, Read};

use super::{keccak256, strip_0x, EvmError};

/// An EVM account or contract address.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Address(pub [u8; 20]);

impl Address {
    pub const ZERO: Address = Address([0u8; 20]);

    /// Parses `0x` + 40 hex digits, checking EIP-55 when the case is mixed.
    pub fn parse(s: &str) -> Result<Address, EvmError> {
        let digits = strip_0x(s)?;
        if digits.len() != 40 {
            return Err(EvmError::BadLength {
                expected: 40,
                got: digits.len(),
            });
        }
        let mut has_upper = false;
        let mut has_lower = false;
        for &c in digits {
            match c {
                b'0'..=b'9' => {}
                b'a'..=b'f' => has_lower = true,
                b'A'..=b'F' => has_upper = true,
                _ => return Err(EvmError::BadHex),
            }
        }
        let mut bytes = [0u8; 20];
        hex::decode_to_slice(digits, &mut bytes).map_err(|_| EvmError::BadHex)?;
        let addr = Address(bytes);
        if has_upper && has_lower && addr.checksum_ascii()[2..] != *digits {
            return Err(EvmError::BadChecksum);
        }
        Ok(addr)
    }

    /// The EIP-55 form, e.g. `0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266`.
    pub fn to_checksum(&self) -> String {
        let buf = self.checksum_ascii();
        buf.iter().map(|&b| char::from(b)).collect()
    }

    /// `0x` + 40 lowercase hex digits, the form the reference SIWX storage
    /// keys on.
    pub fn to_lower_hex(&self) -> String {
        let mut s = String::with_capacity(42);
        s.push_str("0x");
        s.push_str(&hex::encode(self.0));
        s
    }

    /// EIP-55 into a stack buffer: the hex digit at position i is uppercased
    /// when nibble i of keccak(lowercase hex) is 8 or more.
    fn checksum_ascii(&self) -> [u8; 42] {
        let mut out = [0u8; 42];
        out[0] = b'0';
        out[1] = b'x';
        let mut lower = [0u8; 40];
        // Cannot fail: the output is exactly twice the input length.
        let _ = hex::encode_to_slice(self.0, &mut lower);
        let hash = keccak256(&lower);
        let nibbles = hash.iter().flat_map(|&b| [b >> 4, b & 0x0f]);
        for ((dst, &c), nibble) in out[2..].iter_mut().zip(lower.iter()).zip(nibbles) {
            *dst = if nibble >= 8 {
                c.to_ascii_uppercase()
            } else {
                c
            };
        }
        out
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let buf = self.checksum_ascii();
        f.write_str(core::str::from_utf8(&buf).map_err(|_| fmt::Error)?)
    }
}

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Address({self})")
    }
}

impl FromStr for Address {
    type Err = EvmError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Address::parse(s)
    }
}

impl Serialize for Address {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let buf = self.checksum_ascii();
        let s = core::str::from_utf8(&buf).map_err(serde::ser::Error::custom)?;
        serializer.serialize_str(s)
    }
}

/// Read from a JSON string (a 0x-prefixed 20-byte hex address).
impl Read for Address {
    fn read(value: &Value) -> Result<Self, json::Error> {
        json::parsed(value, Address::parse)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ANVIL0: &str = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266";

    #[test]
    fn checksum_round_trip() {
        // EIP-55 reference examples plus x402 vector addresses.
        for s in [
            "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
            "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359",
            "0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB",
            "0xD1220A0cf47c7B9Be7A2E6BA89F429762e7b9aDb",
            "0x52908400098527886E0F7030069857D2E4169EE7",
            "0x8617E340B3D01FA5F11F306F4090FD50E238070D",
            "0xde709f2102306220921060314715629080e2fb77",
            "0x27b1fdb04752bbc536007a920d24acb045561c26",
            ANVIL0,
            "0x036CbD53842c5426634e7929541eC2318f3dCF7e",
            "0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913",
        ] {
            let a = Address::parse(s).unwrap();
            assert_eq!(a.to_checksum(), s);
            assert_eq!(a.to_string(), s);
        }
    }

    #[test]
    fn single_case_accepted() {
        let a = Address::parse(ANVIL0).unwrap();
        let lower = format!("0x{}", ANVIL0[2..].to_ascii_lowercase());
        let upper = format!("0x{}", ANVIL0[2..].to_ascii_uppercase());
        assert_eq!(Address::parse(&lower), Ok(a));
        assert_eq!(Address::parse(&upper), Ok(a));
        assert_eq!(a.to_lower_hex(), lower);
    }

    #[test]
    fn bad_checksum() {
        // Flip the case of one letter.
        let bad = ANVIL0.replacen("Fd6", "fd6", 1);
        assert_eq!(Address::parse(&bad), Err(EvmError::BadChecksum));
    }

    #[test]
    fn shape_errors() {
        assert_eq!(Address::parse(&ANVIL0[2..]), Err(EvmError::BadHex));
        assert_eq!(
            Address::parse(&format!("0X{}", &ANVIL0[2..])),
            Err(EvmError::BadHex)
        );
        assert_eq!(
            Address::parse(&ANVIL0[..41]),
            Err(EvmError::BadLength {
                expected: 40,
                got: 39
            })
        );
        assert_eq!(
            Address::parse(&format!("{ANVIL0}0")),
            Err(EvmError::BadLength {
                expected: 40,
                got: 41
            })
        );
        assert_eq!(
            Address::parse(&format!("0x{}", "g".repeat(40))),
            Err(EvmError::BadHex)
        );
        // Multi-byte characters must not cause a slicing panic.
        assert_eq!(
            Address::parse(&format!("0x{}é", "0".repeat(38))),
            Err(EvmError::BadHex)
        );
        assert_eq!(Address::parse(""), Err(EvmError::BadHex));
        assert_eq!(
            Address::parse("0x"),
            Err(EvmError::BadLength {
                expected: 40,
                got: 0
            })
        );
    }

    #[test]
    fn zero() {
        assert_eq!(
            Address::ZERO.to_checksum(),
            "0x0000000000000000000000000000000000000000"
        );
    }

    #[test]
    fn serde_round_trip() {
        let lower = format!("\"0x{}\"", ANVIL0[2..].to_ascii_lowercase());
        let a: Address = json::parse(&lower).unwrap();
        assert_eq!(serde_json::to_string(&a).unwrap(), format!("\"{ANVIL0}\""));
        let bad = format!("\"{}\"", ANVIL0.replacen("Fd6", "fd6", 1));
        assert!(json::parse::<Address>(&bad).is_err());
        assert!(json::parse::<Address>("12").is_err());
    }

    #[test]
    fn ordering_is_bytewise() {
        let a = Address([0u8; 20]);
        let mut b = [0u8; 20];
        b[19] = 1;
        assert!(a < Address(b));
    }
}
