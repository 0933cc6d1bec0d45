//! EIP-712 hashing for EIP-3009 `TransferWithAuthorization`, the message
//! an x402 `exact` EVM payment signs.
//!
//! Only the one fixed struct is supported, so encoding is hand-rolled: every
//! field is a static 32-byte word and words are streamed into Keccak without
//! a buffer. The domain must come from *our* payment requirements
//! (`extra.name`, `extra.version`, chain id, asset), never from the payload:
//! a wrong name still yields a digest, it just recovers the wrong signer.

use super::{hex32, keccak256, keccak256_concat, Address, U256};

/// `keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)")`
pub const EIP712_DOMAIN_TYPEHASH: [u8; 32] =
    hex32("8b73c3c69bb8fe3d512ecc4cf759cc79239f7b179b0ffacaa9a75d522b39400f");

/// `keccak256("TransferWithAuthorization(address from,address to,uint256 value,uint256 validAfter,uint256 validBefore,bytes32 nonce)")`
pub const TRANSFER_WITH_AUTHORIZATION_TYPEHASH: [u8; 32] =
    hex32("7c7c6cdb67a18743f49ec6fa9b35f50d52ed05cbed4cc592e13b44501c1a2267");

/// The token's EIP-712 domain (all four fields, in this order).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Eip712Domain<'a> {
    pub name: &'a str,
    pub version: &'a str,
    pub chain_id: u64,
    pub verifying_contract: Address,
}

impl Eip712Domain<'_> {
    pub fn separator(&self) -> [u8; 32] {
        keccak256_concat(&[
            &EIP712_DOMAIN_TYPEHASH,
            &keccak256(self.name.as_bytes()),
            &keccak256(self.version.as_bytes()),
            &U256::from_u64(self.chain_id).to_be_bytes(),
            &address_word(&self.verifying_contract),
        ])
    }
}

/// EIP-3009 authorization, field order as in the type string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransferWithAuthorization {
    pub from: Address,
    pub to: Address,
    pub value: U256,
    pub valid_after: U256,
    pub valid_before: U256,
    pub nonce: [u8; 32],
}

impl TransferWithAuthorization {
    pub fn struct_hash(&self) -> [u8; 32] {
        keccak256_concat(&[
            &TRANSFER_WITH_AUTHORIZATION_TYPEHASH,
            &address_word(&self.from),
            &address_word(&self.to),
            &self.value.to_be_bytes(),
            &self.valid_after.to_be_bytes(),
            &self.valid_before.to_be_bytes(),
            &self.nonce,
        ])
    }

    /// `keccak256(0x19 ‖ 0x01 ‖ domainSeparator ‖ structHash)`: the prehash
    /// the payer signed.
    pub fn digest(&self, domain: &Eip712Domain) -> [u8; 32] {
        self.digest_under(&domain.separator())
    }

    /// [`Self::digest`] under a domain separator worked out beforehand.
    pub fn digest_under(&self, domain_separator: &[u8; 32]) -> [u8; 32] {
        keccak256_concat(&[&[0x19, 0x01], domain_separator, &self.struct_hash()])
    }
}

/// An address as an ABI word: left-padded with 12 zero bytes.
fn address_word(a: &Address) -> [u8; 32] {
    let mut w = [0u8; 32];
    w[12..].copy_from_slice(&a.0);
    w
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typehashes_match_type_strings() {
        assert_eq!(
            keccak256(
                b"EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
            ),
            EIP712_DOMAIN_TYPEHASH
        );
        assert_eq!(
            keccak256(
                b"TransferWithAuthorization(address from,address to,uint256 value,uint256 validAfter,uint256 validBefore,bytes32 nonce)"
            ),
            TRANSFER_WITH_AUTHORIZATION_TYPEHASH
        );
    }

    fn base_sepolia() -> Eip712Domain<'static> {
        Eip712Domain {
            name: "USDC",
            version: "2",
            chain_id: 84532,
            verifying_contract: Address::parse("0x036CbD53842c5426634e7929541eC2318f3dCF7e")
                .unwrap(),
        }
    }

    #[test]
    fn spec_example_digest() {
        let auth = TransferWithAuthorization {
            from: Address::parse("0x857b06519E91e3A54538791bDbb0E22373e36b66").unwrap(),
            to: Address::parse("0x209693Bc6afc0C5328bA36FaF03C514EF312287C").unwrap(),
            value: U256::from_u64(10000),
            valid_after: U256::from_u64(1740672089),
            valid_before: U256::from_u64(1740672154),
            nonce: hex32("f3746613c2d920b5fdabc0856f2aeb2d4f88ee6037b8cc5d04a71a4462f13480"),
        };
        let d = base_sepolia();
        assert_eq!(
            d.separator(),
            hex32("71f17a3b2ff373b803d70a5a07c046c1a2bc8e89c09ef722fcb047abe94c9818")
        );
        assert_eq!(
            auth.digest(&d),
            hex32("f256992871671abcb27ff92885a7afa46218724e5fc0bac35d050115aa1d22e6")
        );
    }

    #[test]
    fn every_domain_field_matters() {
        let d = base_sepolia();
        let s = d.separator();
        assert_ne!(
            Eip712Domain {
                name: "USD Coin",
                ..d
            }
            .separator(),
            s
        );
        assert_ne!(Eip712Domain { version: "1", ..d }.separator(), s);
        assert_ne!(
            Eip712Domain {
                chain_id: 8453,
                ..d
            }
            .separator(),
            s
        );
        assert_ne!(
            Eip712Domain {
                verifying_contract: Address::ZERO,
                ..d
            }
            .separator(),
            s
        );
    }
}
