//! 65-byte secp256k1 signatures (`r ‖ s ‖ v`) and signer recovery.
//!
//! Only signatures the USDC contract's ECRecover would accept on-chain pass
//! [`Signature::parse_hex`]: `v` is 27 or 28 (0/1 are refused, not
//! normalised) and `s` is at most n/2 (high-s is refused, not flipped).
//! Verifying locally what settlement would later reject defers a loss, so
//! anything looser is an error. Other lengths (ERC-1271 / ERC-6492 smart
//! wallets, 64-byte ERC-2098) come back as [`EvmError::SignatureLength`] so
//! the caller can route them elsewhere: to a facilitator, or to the wallet
//! contract that USDC would hand them to.

use k256::elliptic_curve::ops::{Invert, Reduce};
use k256::elliptic_curve::PrimeField;
use k256::{FieldBytes, Scalar, U256 as K256Uint};

use super::ecmult::Affine;
use super::{hex32, keccak256, strip_0x, Address, EvmError};

/// The secp256k1 group order n, big-endian.
const N: [u8; 32] = hex32("fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141");
/// floor(n / 2): the largest `s` EIP-2 and USDC accept.
const HALF_N: [u8; 32] = hex32("7fffffffffffffffffffffffffffffff5d576e7357a4501ddfe92f46681b20a0");

/// An EOA signature as produced by viem/ethers `signTypedData` and
/// `personal_sign`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Signature {
    pub r: [u8; 32],
    pub s: [u8; 32],
    pub v: u8,
}

impl Signature {
    /// Parses `0x` + 130 hex digits (either case) and applies the checks
    /// described in the module docs.
    pub fn parse_hex(s: &str) -> Result<Signature, EvmError> {
        let digits = strip_0x(s)?;
        // Validate every digit before judging the length, so garbage is
        // reported as bad hex rather than as a smart-wallet signature.
        if digits.len() % 2 != 0 || !digits.iter().all(u8::is_ascii_hexdigit) {
            return Err(EvmError::BadHex);
        }
        let len = digits.len() / 2;
        if len != 65 {
            return Err(EvmError::SignatureLength(len));
        }
        let mut raw = [0u8; 65];
        hex::decode_to_slice(digits, &mut raw).map_err(|_| EvmError::BadHex)?;
        Signature::from_bytes(&raw)
    }

    /// Same checks as [`Signature::parse_hex`], from raw bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Signature, EvmError> {
        let raw: &[u8; 65] = bytes
            .try_into()
            .map_err(|_| EvmError::SignatureLength(bytes.len()))?;
        let (r_bytes, rest) = raw.split_at(32);
        let (s_bytes, v_bytes) = rest.split_at(32);
        let mut sig = Signature {
            r: [0; 32],
            s: [0; 32],
            v: 0,
        };
        sig.r.copy_from_slice(r_bytes);
        sig.s.copy_from_slice(s_bytes);
        sig.v = v_bytes.first().copied().unwrap_or(0);
        sig.validate()?;
        Ok(sig)
    }

    /// `r ‖ s ‖ v`.
    pub fn to_bytes(&self) -> [u8; 65] {
        let mut out = [0u8; 65];
        out[..32].copy_from_slice(&self.r);
        out[32..64].copy_from_slice(&self.s);
        out[64] = self.v;
        out
    }

    /// `0x` + 130 lowercase hex digits.
    pub fn to_hex(&self) -> String {
        let mut s = String::with_capacity(132);
        s.push_str("0x");
        s.push_str(&hex::encode(self.to_bytes()));
        s
    }

    /// The on-chain acceptance rules. Fields are public, so [`recover`]
    /// re-runs this rather than trusting that the value came from a parser.
    ///
    /// [`recover`]: Signature::recover
    pub fn validate(&self) -> Result<(), EvmError> {
        if self.v != 27 && self.v != 28 {
            return Err(EvmError::BadV(self.v));
        }
        // Big-endian byte arrays compare in numeric order.
        let zero = [0u8; 32];
        if self.r == zero || self.s == zero || self.r >= N || self.s >= N {
            return Err(EvmError::BadSignature);
        }
        if self.s > HALF_N {
            return Err(EvmError::HighS);
        }
        Ok(())
    }

    /// The address whose key produced this signature over `prehash`
    /// (an EIP-712 digest or an EIP-191 hash). A wrong hash or domain does
    /// not fail here: it recovers some other address, so the caller must
    /// compare the result with the claimed signer.
    pub fn recover(&self, prehash: &[u8; 32]) -> Result<Address, EvmError> {
        self.validate()?;
        // Q = r⁻¹ (s·R − z·G), where R is the point whose x is r and whose y parity is v − 27.
        //
        // This is what `VerifyingKey::recover_from_prehash` computes, without its final step,
        // which verifies the signature again against the key it just recovered: a second
        // double-scalar multiplication that halves the speed of every paid request. That check
        // cannot fail here: `validate` has ensured 0 < r, s < n with s low, R decompresses (or we
        // refuse), and the point at infinity is refused below; the verification equation
        // then gives back R by construction. v is 27 or 28, so r is never an x-reduced value.
        let r_bytes = FieldBytes::from(self.r);
        let r = Option::<Scalar>::from(Scalar::from_repr(r_bytes)).ok_or(EvmError::BadSignature)?;
        let s = Option::<Scalar>::from(Scalar::from_repr(FieldBytes::from(self.s)))
            .ok_or(EvmError::BadSignature)?;
        let z = <Scalar as Reduce<K256Uint>>::reduce_bytes(&FieldBytes::from(*prehash));
        let big_r = Affine::from_x(&self.r, self.v.wrapping_sub(27) & 1 == 1)
            .ok_or(EvmError::RecoveryFailed)?;
        // r is public (it is in the signature), so the variable-time inversion leaks nothing.
        let r_inv = Option::<Scalar>::from(r.invert_vartime()).ok_or(EvmError::RecoveryFailed)?;
        let u1 = -(r_inv * z);
        let u2 = r_inv * s;
        // Both products in one variable-time pass (everything here is public; see `ecmult`).
        // The point at infinity is no key (what `VerifyingKey::from_affine` refuses).
        let q = super::ecmult::mul_add(&u1, &u2, &big_r).ok_or(EvmError::RecoveryFailed)?;
        Ok(address_of(&q))
    }
}

/// keccak256 of the 64-byte uncompressed point (x ‖ y, no 0x04 tag), last
/// 20 bytes.
fn address_of(key: &Affine) -> Address {
    let mut xy = [0u8; 64];
    xy[..32].copy_from_slice(&key.x.to_bytes());
    xy[32..].copy_from_slice(&key.y.to_bytes());
    let hash = keccak256(&xy);
    let mut out = [0u8; 20];
    out.copy_from_slice(&hash[12..]);
    Address(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evm::U256;
    use k256::ecdsa::Signature as K256Signature;
    use k256::ecdsa::SigningKey;

    // Spec example (x402 vectors §6.1): recovers to 0x857b…6b66 over DIGEST.
    const SIG: &str = "0x2d6a7588d6acca505cbf0d9a4a227e0c52c6c34008c8e8986a1283259764173608a2ce6496642e377d6da8dbbf5836e9bd15092f9ecab05ded3d6293af148b571c";
    const DIGEST: [u8; 32] =
        hex32("f256992871671abcb27ff92885a7afa46218724e5fc0bac35d050115aa1d22e6");
    const SIGNER: &str = "0x857b06519E91e3A54538791bDbb0E22373e36b66";

    fn with_v(v: u8) -> String {
        format!("{}{:02x}", &SIG[..130], v)
    }

    #[test]
    fn recovers_spec_example() {
        let sig = Signature::parse_hex(SIG).unwrap();
        assert_eq!(sig.v, 28);
        assert_eq!(sig.recover(&DIGEST), Ok(Address::parse(SIGNER).unwrap()));
        assert_eq!(sig.to_hex(), SIG);
        assert_eq!(
            Signature::parse_hex(&SIG.to_ascii_uppercase().replacen("0X", "0x", 1)),
            Ok(sig)
        );
    }

    #[test]
    fn wrong_hash_recovers_someone_else() {
        let sig = Signature::parse_hex(SIG).unwrap();
        let mut other = DIGEST;
        other[0] ^= 1;
        // Either a different address or no key at all; never the signer.
        assert_ne!(sig.recover(&other), Ok(Address::parse(SIGNER).unwrap()));
    }

    #[test]
    fn flipped_v_recovers_someone_else() {
        let sig = Signature::parse_hex(&with_v(27)).unwrap();
        assert_ne!(sig.recover(&DIGEST), Ok(Address::parse(SIGNER).unwrap()));
    }

    #[test]
    fn high_s_rejected() {
        let sig = Signature::parse_hex(SIG).unwrap();
        let n = U256::from_be_bytes(N);
        let s_high = n
            .checked_sub(U256::from_be_bytes(sig.s))
            .unwrap()
            .to_be_bytes();
        // Sanity: this really is the malleated twin of the original.
        let twin = K256Signature::from_scalars(FieldBytes::from(sig.r), FieldBytes::from(s_high))
            .unwrap()
            .normalize_s()
            .unwrap();
        assert_eq!(<[u8; 32]>::from(twin.s().to_bytes()), sig.s);

        let high = Signature {
            r: sig.r,
            s: s_high,
            v: 55 - sig.v,
        };
        assert_eq!(Signature::parse_hex(&high.to_hex()), Err(EvmError::HighS));
        assert_eq!(high.recover(&DIGEST), Err(EvmError::HighS));
    }

    #[test]
    fn half_n_boundary() {
        let sig = Signature::parse_hex(SIG).unwrap();
        let at = Signature { s: HALF_N, ..sig };
        assert_eq!(at.validate(), Ok(()));
        let mut above = HALF_N;
        above[31] += 1;
        assert_eq!(
            Signature { s: above, ..sig }.validate(),
            Err(EvmError::HighS)
        );
    }

    #[test]
    fn bad_v() {
        for v in [0u8, 1, 29, 0xff] {
            assert_eq!(Signature::parse_hex(&with_v(v)), Err(EvmError::BadV(v)));
        }
        let sig = Signature {
            v: 1,
            ..Signature::parse_hex(SIG).unwrap()
        };
        assert_eq!(sig.recover(&DIGEST), Err(EvmError::BadV(1)));
    }

    #[test]
    fn lengths() {
        assert_eq!(
            Signature::parse_hex(&SIG[..130]),
            Err(EvmError::SignatureLength(64))
        );
        assert_eq!(
            Signature::parse_hex(&format!("{SIG}00")),
            Err(EvmError::SignatureLength(66))
        );
        assert_eq!(
            Signature::parse_hex("0x"),
            Err(EvmError::SignatureLength(0))
        );
        let long = format!("0x{}", "ab".repeat(300));
        assert_eq!(
            Signature::parse_hex(&long),
            Err(EvmError::SignatureLength(300))
        );
        assert_eq!(
            Signature::from_bytes(&[0u8; 64]),
            Err(EvmError::SignatureLength(64))
        );
    }

    #[test]
    fn hex_shape() {
        assert_eq!(Signature::parse_hex(&SIG[2..]), Err(EvmError::BadHex));
        assert_eq!(Signature::parse_hex(&SIG[..131]), Err(EvmError::BadHex));
        assert_eq!(
            Signature::parse_hex(&format!("0x{}", "zz".repeat(66))),
            Err(EvmError::BadHex)
        );
        assert_eq!(Signature::parse_hex("0xé"), Err(EvmError::BadHex));
    }

    #[test]
    fn r_s_range() {
        let sig = Signature::parse_hex(SIG).unwrap();
        let cases = [
            Signature { r: [0; 32], ..sig },
            Signature { s: [0; 32], ..sig },
            Signature { r: N, ..sig },
            Signature {
                r: [0xff; 32],
                ..sig
            },
            Signature { s: N, ..sig },
        ];
        for c in cases {
            assert_eq!(
                Signature::parse_hex(&c.to_hex()),
                Err(EvmError::BadSignature)
            );
            assert_eq!(c.recover(&DIGEST), Err(EvmError::BadSignature));
        }
    }

    #[test]
    fn arbitrary_r_never_panics() {
        // Many x values are not on the curve; recovery must fail cleanly.
        let sig = Signature::parse_hex(SIG).unwrap();
        let mut failed = 0;
        for i in 1u8..=64 {
            let mut r = [0u8; 32];
            r[31] = i;
            let candidate = Signature { r, ..sig };
            if candidate.recover(&DIGEST) == Err(EvmError::RecoveryFailed) {
                failed += 1;
            }
        }
        assert!(failed > 0);
    }

    /// k256's (r, s) as our 65-byte signature, v = 27 + the y parity.
    fn with_parity(sig: &K256Signature, parity: u8) -> Signature {
        let mut raw = [0u8; 65];
        raw[..64].copy_from_slice(&sig.to_bytes());
        raw[64] = 27 + parity;
        Signature::from_bytes(&raw).unwrap()
    }

    #[test]
    fn recovers_what_k256_recovers_for_many_keys_and_arbitrary_signatures() {
        use k256::ecdsa::{RecoveryId, VerifyingKey};
        let mut seed = keccak256(b"recovery differential");
        let mut next = || {
            seed = keccak256(&seed);
            seed
        };
        // The address as the key's own SEC1 encoding gives it, independently of `address_of`.
        let sec1_address = |key: &k256::AffinePoint| {
            use k256::elliptic_curve::sec1::ToEncodedPoint;
            let point = key.to_encoded_point(false);
            let hash = keccak256(&point.as_bytes()[1..]);
            let mut out = [0u8; 20];
            out.copy_from_slice(&hash[12..]);
            Address(out)
        };
        // Real signatures by 100 keys over 100 digests.
        for _ in 0..100 {
            let key = SigningKey::from_bytes(&FieldBytes::from(next())).unwrap();
            let hash = next();
            let (sig, recid) = key.sign_prehash_recoverable(&hash).unwrap();
            let ours = with_parity(&sig, recid.to_byte()).recover(&hash);
            let theirs = key.verifying_key().as_affine();
            assert_eq!(ours, Ok(sec1_address(theirs)));
        }
        // Arbitrary r and low s, both parities: whatever key k256 recovers, or its refusal.
        let mut recovered = 0;
        for i in 0..200u32 {
            let (r, s, hash) = (next(), next(), next());
            let Ok(sig) = K256Signature::from_scalars(r, s) else {
                continue;
            };
            let sig = sig.normalize_s().unwrap_or(sig);
            let parity = (i & 1) as u8;
            let theirs = VerifyingKey::recover_from_prehash(
                &hash,
                &sig,
                RecoveryId::new(parity == 1, false),
            );
            let ours = with_parity(&sig, parity).recover(&hash);
            match theirs {
                Ok(key) => {
                    recovered += 1;
                    assert_eq!(ours, Ok(sec1_address(key.as_affine())), "case {i}");
                }
                Err(_) => assert_eq!(ours, Err(EvmError::RecoveryFailed), "case {i}"),
            }
        }
        assert!(recovered > 50, "only {recovered} recovered");
    }

    #[test]
    fn round_trip_with_k256_signer() {
        // Anvil test key #0.
        let key = SigningKey::from_bytes(&FieldBytes::from(hex32(
            "ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
        )))
        .unwrap();
        let hash = keccak256(b"x402-edge");
        let (sig, recid) = key.sign_prehash_recoverable(&hash).unwrap();
        let parsed = with_parity(&sig, recid.to_byte());
        assert_eq!(
            parsed.recover(&hash),
            Ok(Address::parse("0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266").unwrap())
        );
    }
}
