//! u₁·G + u₂·R, the costly step of signature recovery, in variable time.
//!
//! `k256` multiplies in constant time: every window of every scalar costs the same additions and a
//! selection that touches each entry of its table, as it must when a scalar is a secret key. In a
//! recovery nothing is secret (the scalars come from the signature and the digest, both public;
//! the key it yields is public too), so this module does what verifiers of secp256k1 signatures
//! commonly do:
//!
//! - **u₂·R by the endomorphism.** secp256k1 has λ with λ·(x, y) = (β·x, y). u₂ is split into
//!   a + b·λ with a and b of about 128 bits (Gallant, Lambert and Vanstone), so that u₂·R = a·R +
//!   b·(λR) needs about 128 doublings instead of 256.
//! - **u₁·G in two halves.** u₁ = lo + hi·2¹²⁸, with tables of G and of 2¹²⁸·G built once per
//!   isolate, so that the generator shares the same 128 doublings.
//! - **Signed sliding windows (wNAF).** Each of the four half-size scalars is written in digits that
//!   are zero or odd, at least w positions apart; a non-zero digit adds one entry of a table of odd
//!   multiples, read directly. Width 5 for R (eight multiples, built per signature), 8 for the
//!   generator (64 multiples, built once).
//!
//! The point formulas are `k256`'s own (complete: no input makes them wrong), so this module only
//! chooses which additions to make. Its result is checked against `k256`'s multiplication on
//! random and edge-case scalars in the tests below, and whole recoveries against `k256`'s in
//! `evm::signature`'s tests.

use k256::elliptic_curve::ops::Reduce;
use k256::elliptic_curve::scalar::IsHigh;
use k256::{ProjectivePoint, Scalar, U256};
use std::sync::OnceLock;

/// round(2³⁸⁴·b₂ / n) and round(2³⁸⁴·(−b₁) / n), for the split of a scalar; with −b₁, −b₂ and −λ
/// below (the lattice basis of secp256k1's endomorphism: a₁ + b₁λ ≡ a₂ + b₂λ ≡ 0 mod n).
const G1: U256 =
    U256::from_be_hex("3086d221a7d46bcde86c90e49284eb153daa8a1471e8ca7fe893209a45dbb031");
const G2: U256 =
    U256::from_be_hex("e4437ed6010e88286f547fa90abfe4c4221208ac9df506c61571b4ae8ac47f71");
const MINUS_B1: U256 =
    U256::from_be_hex("00000000000000000000000000000000e4437ed6010e88286f547fa90abfe4c3");
const MINUS_B2: U256 =
    U256::from_be_hex("fffffffffffffffffffffffffffffffe8a280ac50774346dd765cda83db1562c");
const MINUS_LAMBDA: U256 =
    U256::from_be_hex("ac9c52b33fa3cf1f5ad9e3fd77ed9ba4a880b9fc8ec739c2e0cfc810b51283cf");

/// Window of the per-signature tables (R and λR) and of the generator's.
const W_POINT: u32 = 5;
const W_GEN: u32 = 8;
const GEN_TABLE: usize = 1 << (W_GEN - 2);

/// Digits of a value below 2²⁵⁶ (a wNAF is at most one digit longer than the value's bits).
type Digits = [i8; 257];

/// u₁·G + u₂·R.
pub fn mul_add(u1: &Scalar, u2: &Scalar, r: &ProjectivePoint) -> ProjectivePoint {
    let [gen_lo, gen_hi] = generator_tables();
    let bytes = u1.to_bytes();
    let mut lo = [0u8; 32];
    let mut hi = [0u8; 32];
    lo[16..].copy_from_slice(&bytes[16..]);
    hi[16..].copy_from_slice(&bytes[..16]);

    // u₂ = a + b·λ; a half above n/2 is its negation times −1, so the tables are of −R or −λR.
    let (a, b) = split(u2);
    let (a_neg, b_neg) = (bool::from(a.is_high()), bool::from(b.is_high()));
    let a = if a_neg { -a } else { a };
    let b = if b_neg { -b } else { b };
    let r_table = odd_multiples::<{ 1 << (W_POINT - 2) }>(if a_neg { -*r } else { *r });
    let lambda_table = r_table.map(|p| {
        let p = p.endomorphism();
        if a_neg == b_neg {
            p
        } else {
            -p
        }
    });

    let mut digits: [Digits; 4] = [[0; 257]; 4];
    let lengths = [
        wnaf(&bytes_of(&a), W_POINT, &mut digits[0]),
        wnaf(&bytes_of(&b), W_POINT, &mut digits[1]),
        wnaf(&lo, W_GEN, &mut digits[2]),
        wnaf(&hi, W_GEN, &mut digits[3]),
    ];
    let top = lengths.into_iter().max().unwrap_or(0);
    let tables: [&[ProjectivePoint]; 4] = [&r_table, &lambda_table, gen_lo, gen_hi];

    let mut acc = ProjectivePoint::IDENTITY;
    for i in (0..top).rev() {
        acc = acc.double();
        for (table, digits) in tables.iter().zip(&digits) {
            let d = digits[i];
            if d > 0 {
                acc += table[(d as usize) / 2];
            } else if d < 0 {
                acc -= table[(d.unsigned_abs() as usize) / 2];
            }
        }
    }
    acc
}

/// (a, b) with a + b·λ ≡ k mod n, each within about 2¹²⁸ of zero (mod n).
fn split(k: &Scalar) -> (Scalar, Scalar) {
    let k_int = U256::from_be_slice(&k.to_bytes());
    let c1 = Scalar::reduce(mul_shift_384(&k_int, &G1));
    let c2 = Scalar::reduce(mul_shift_384(&k_int, &G2));
    let b = c1 * Scalar::reduce(MINUS_B1) + c2 * Scalar::reduce(MINUS_B2);
    let a = *k + b * Scalar::reduce(MINUS_LAMBDA);
    (a, b)
}

fn bytes_of(k: &Scalar) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(&k.to_bytes());
    out
}

/// round(k·g / 2³⁸⁴).
fn mul_shift_384(k: &U256, g: &U256) -> U256 {
    let (_, high) = k.mul_wide(g);
    let rounding = U256::from_u8(u8::from(high.bit_vartime(127)));
    high.shr_vartime(128).wrapping_add(&rounding)
}

/// p, 3p, 5p, …, (2N − 1)p.
fn odd_multiples<const N: usize>(p: ProjectivePoint) -> [ProjectivePoint; N] {
    let twice = p.double();
    let mut table = [p; N];
    for i in 1..N {
        table[i] = table[i - 1] + twice;
    }
    table
}

/// The odd multiples of G and of 2¹²⁸·G, built on first use in this isolate (16 KB).
fn generator_tables() -> [&'static [ProjectivePoint]; 2] {
    static TABLES: OnceLock<[[ProjectivePoint; GEN_TABLE]; 2]> = OnceLock::new();
    let [lo, hi] = TABLES.get_or_init(|| {
        let mut g = ProjectivePoint::GENERATOR;
        let lo = odd_multiples(g);
        for _ in 0..128 {
            g = g.double();
        }
        [lo, odd_multiples(g)]
    });
    [lo, hi]
}

/// The width-`w` non-adjacent form of a big-endian value, least significant digit first: each
/// digit zero or odd and below 2^(w−1) in magnitude, Σ dᵢ·2ⁱ = value. Returns how many digits.
fn wnaf(value: &[u8; 32], w: u32, digits: &mut Digits) -> usize {
    // Five little-endian limbs: adding a digit's complement may carry past 2²⁵⁶.
    let mut k = [0u64; 5];
    for (limb, chunk) in k.iter_mut().zip(value.rchunks_exact(8)) {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        *limb = u64::from_be_bytes(word);
    }
    let window = 1u64 << w;
    let mut len = 0;
    while k.iter().any(|&limb| limb != 0) {
        if k[0] & 1 == 1 {
            let m = k[0] & (window - 1);
            if m >= window / 2 {
                // Digit m − 2^w: the value grows by 2^w − m, which clears its low w bits.
                digits[len] = (m as i64 - window as i64) as i8;
                let mut carry = window - m;
                for limb in k.iter_mut() {
                    let (sum, over) = limb.overflowing_add(carry);
                    *limb = sum;
                    carry = u64::from(over);
                }
            } else {
                digits[len] = m as i8;
                k[0] -= m;
            }
        } else {
            digits[len] = 0;
        }
        len += 1;
        for i in 0..4 {
            k[i] = (k[i] >> 1) | (k[i + 1] << 63);
        }
        k[4] >>= 1;
    }
    len
}

#[cfg(test)]
mod tests {
    use super::*;
    use k256::elliptic_curve::Field;

    fn scalar(hex: &str) -> Scalar {
        Scalar::reduce(U256::from_be_hex(hex))
    }

    fn expected(u1: &Scalar, u2: &Scalar, r: &ProjectivePoint) -> ProjectivePoint {
        ProjectivePoint::GENERATOR * u1 + *r * u2
    }

    /// Pseudo-random scalars from a fixed seed (keccak chain), so a failure repeats.
    fn scalars(count: usize) -> Vec<Scalar> {
        let mut state = [7u8; 32];
        (0..count)
            .map(|_| {
                state = crate::evm::keccak256(&state);
                Scalar::reduce(U256::from_be_slice(&state))
            })
            .collect()
    }

    #[test]
    fn agrees_with_constant_time_multiplication() {
        let s = scalars(96);
        let n_minus_1 = -Scalar::ONE;
        let half = scalar("7fffffffffffffffffffffffffffffff5d576e7357a4501ddfe92f46681b20a0");
        let lambda = -Scalar::reduce(MINUS_LAMBDA);
        let edges = [
            Scalar::ZERO,
            Scalar::ONE,
            n_minus_1,
            half,
            half + Scalar::ONE,
            lambda,
            -lambda,
            scalar("0000000000000000000000000000000100000000000000000000000000000000"),
            scalar("00000000000000000000000000000000ffffffffffffffffffffffffffffffff"),
            scalar("8000000000000000000000000000000000000000000000000000000000000000"),
        ];
        let mut r = ProjectivePoint::GENERATOR * s[0];
        for (i, pair) in s.chunks(2).enumerate() {
            let (u1, u2) = (pair[0], pair[1]);
            assert_eq!(mul_add(&u1, &u2, &r), expected(&u1, &u2, &r), "pair {i}");
            r = r.double() + ProjectivePoint::GENERATOR;
        }
        for u1 in edges {
            for u2 in edges {
                assert_eq!(mul_add(&u1, &u2, &r), expected(&u1, &u2, &r));
            }
        }
        // R = G and R = −G: the sum meets equal and opposite points on the way.
        for u in edges.iter().chain(&s[..8]) {
            let g = ProjectivePoint::GENERATOR;
            assert_eq!(mul_add(u, &-*u, &g), ProjectivePoint::IDENTITY);
            assert_eq!(mul_add(u, u, &-g), ProjectivePoint::IDENTITY);
            assert_eq!(mul_add(u, u, &g), g * (*u + u));
        }
    }

    #[test]
    fn the_split_is_exact_and_short() {
        let lambda = -Scalar::reduce(MINUS_LAMBDA);
        for k in scalars(500) {
            let (a, b) = split(&k);
            assert_eq!(a + b * lambda, k);
            for half in [a, b] {
                let magnitude = if bool::from(half.is_high()) {
                    -half
                } else {
                    half
                };
                assert!(magnitude.to_bytes()[..16].iter().all(|&byte| byte == 0));
            }
        }
    }

    #[test]
    fn wnaf_digits_sum_back_to_the_value() {
        for (w, k) in [(5, scalars(50)), (8, scalars(50))] {
            for k in k {
                let mut digits: Digits = [0; 257];
                let len = wnaf(&bytes_of(&k), w, &mut digits);
                let mut sum = Scalar::ZERO;
                let mut last_nonzero: Option<usize> = None;
                for i in (0..len).rev() {
                    sum = sum.double();
                    let d = digits[i];
                    assert!(d == 0 || (d % 2 != 0 && d.unsigned_abs() < 1 << (w - 1)));
                    if d != 0 {
                        if let Some(j) = last_nonzero {
                            assert!(j - i >= w as usize, "digits {j} and {i} too close");
                        }
                        last_nonzero = Some(i);
                    }
                    let magnitude = Scalar::from(u64::from(d.unsigned_abs()));
                    sum += if d < 0 { -magnitude } else { magnitude };
                }
                assert_eq!(sum, k);
            }
        }
    }
}
