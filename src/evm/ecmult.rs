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
//! - **Jacobian coordinates** over `k256`'s field arithmetic ([`Jacobian`]): cheaper formulas than
//!   `k256`'s complete ones, with their special cases checked; the generator's tables in affine
//!   coordinates (one inversion for all of them), so that adding one of their entries is cheaper
//!   still; and a result with its y, which an address needs.
//!
//! The result is checked against `k256`'s constant-time multiplication on random and edge-case
//! scalars (equal and opposite points met on the way included) in the tests below, and whole
//! recoveries against `k256`'s in `evm::signature`'s tests. Field magnitudes are kept within
//! `k256`'s bounds: at most 8 into a multiplication, and at most 10 anywhere, under the 31 that
//! the 32-bit field of the wasm build allows. `k256`'s debug builds (the tests') check the first
//! on every operation, but only the 64-bit field's own ceiling (2047) for the second.

use k256::elliptic_curve::ops::Reduce;
use k256::elliptic_curve::scalar::IsHigh;
use k256::{FieldElement, Scalar, U256};
use std::sync::OnceLock;

use super::hex32;

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

/// β, a cube root of unity mod p: λ·(x, y) = (β·x, y).
const BETA: [u8; 32] = hex32("7ae96a2b657c07106e64479eac3434e99cf0497512f58995c1396c28719501ee");
/// The generator's coordinates.
const GX: [u8; 32] = hex32("79be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798");
const GY: [u8; 32] = hex32("483ada7726a3c4655da4fbfc0e1108a8fd17b448a68554199c47d08ffb10d4b8");

/// `x` squared `k` times: x^(2^k). Never inlined, so that the chains below are a list of calls
/// (k256's own `invert` and `sqrt`, the same chains with every step inlined, took 14 KB of wasm).
#[inline(never)]
fn squared(mut x: FieldElement, k: usize) -> FieldElement {
    for _ in 0..k {
        x = x.square();
    }
    x
}

/// `a · b`, kept out of line for the same reason.
#[inline(never)]
fn times(a: FieldElement, b: FieldElement) -> FieldElement {
    a * b
}

/// x^3, x^(2^22 − 1) and x^(2^223 − 1): the start both of the chains below share (the addition
/// chain libsecp256k1 uses, 255 squarings and 15 multiplications in all for an inversion).
fn chain_223(x: FieldElement) -> (FieldElement, FieldElement, FieldElement) {
    let x2 = times(squared(x, 1), x);
    let x3 = times(squared(x2, 1), x);
    let x6 = times(squared(x3, 3), x3);
    let x9 = times(squared(x6, 3), x3);
    let x11 = times(squared(x9, 2), x2);
    let x22 = times(squared(x11, 11), x11);
    let x44 = times(squared(x22, 22), x22);
    let x88 = times(squared(x44, 44), x44);
    let x176 = times(squared(x88, 88), x88);
    let x220 = times(squared(x176, 44), x44);
    let x223 = times(squared(x220, 3), x3);
    (x2, x22, x223)
}

/// 1/x, by Fermat: x^(p − 2). `None` for zero.
pub fn invert(x: FieldElement) -> Option<FieldElement> {
    if bool::from(x.normalizes_to_zero()) {
        return None;
    }
    let (x2, x22, x223) = chain_223(x);
    let t = times(squared(x223, 23), x22);
    let t = times(squared(t, 5), x);
    let t = times(squared(t, 3), x2);
    Some(times(squared(t, 2), x))
}

/// A square root of x: x^((p + 1)/4), which is a root of x when x is a square (p ≡ 3 mod 4). `None` when
/// x is not a square.
pub fn sqrt(x: FieldElement) -> Option<FieldElement> {
    let (x2, x22, x223) = chain_223(x);
    let t = times(squared(x223, 23), x22);
    let root = squared(times(squared(t, 6), x2), 2);
    (root.square().normalize() == x.normalize()).then_some(root)
}

fn field(bytes: &[u8; 32]) -> FieldElement {
    Option::from(FieldElement::from_bytes(&(*bytes).into())).unwrap_or(FieldElement::ZERO)
}

/// A point in affine coordinates, both normalized; never the point at infinity.
#[derive(Clone, Copy, Debug)]
pub struct Affine {
    pub x: FieldElement,
    pub y: FieldElement,
}

impl Affine {
    /// The point whose x is `x` (below p) and whose y is odd or even as asked, if the curve has
    /// one: y² = x³ + 7.
    pub fn from_x(x: &[u8; 32], y_odd: bool) -> Option<Affine> {
        let x = Option::<FieldElement>::from(FieldElement::from_bytes(&(*x).into()))?;
        let y2 = x.square() * x + FieldElement::from_u64(7);
        let y = sqrt(y2)?.normalize();
        let p = Affine { x, y };
        Some(match bool::from(y.is_odd()) == y_odd {
            true => p,
            false => p.negate(),
        })
    }

    fn generator() -> Affine {
        Affine {
            x: field(&GX),
            y: field(&GY),
        }
    }

    fn negate(&self) -> Affine {
        Affine {
            x: self.x,
            y: self.y.negate(1).normalize(),
        }
    }
}

/// A point in Jacobian coordinates (x = X/Z², y = Y/Z³), each coordinate of magnitude 1.
///
/// `k256`'s own points use complete formulas, right for any input and the same cost for every
/// input, as a secret scalar needs. Here nothing is secret, so the cheaper Jacobian formulas serve,
/// with their special cases (doubling, opposite points, infinity) checked, not computed away:
/// doubling costs 2M + 5S instead of 6M + 2S, an addition of an affine table entry 8M + 3S, and
/// the result comes out with its y, which `k256`'s affine points keep to themselves (an address
/// needs it, and working it out again from x costs a square root).
#[derive(Clone, Copy, Debug)]
struct Jacobian {
    x: FieldElement,
    y: FieldElement,
    z: FieldElement,
    infinity: bool,
}

impl Jacobian {
    const INFINITY: Jacobian = Jacobian {
        x: FieldElement::ZERO,
        y: FieldElement::ONE,
        z: FieldElement::ZERO,
        infinity: true,
    };

    fn from_affine(p: &Affine) -> Jacobian {
        Jacobian {
            x: p.x,
            y: p.y,
            z: FieldElement::ONE,
            infinity: false,
        }
    }

    fn negate(&self) -> Jacobian {
        Jacobian {
            y: self.y.negate(1).normalize_weak(),
            ..*self
        }
    }

    /// λ·P = (β·x, y).
    fn endomorphism(&self, beta: &FieldElement) -> Jacobian {
        Jacobian {
            x: self.x * beta,
            ..*self
        }
    }

    /// 2P (dbl-2009-l, a = 0).
    fn double(&self) -> Jacobian {
        if self.infinity {
            return *self;
        }
        let a = self.x.square();
        let b = self.y.square();
        let c = b.square();
        let d = ((self.x + b).square() + a.negate(1) + c.negate(1))
            .double()
            .normalize_weak();
        let e = a.mul_single(3);
        let x = (e.square() + d.double().negate(2)).normalize_weak();
        let y = ((e * (d + x.negate(1))) + c.mul_single(8).negate(8)).normalize_weak();
        let z = (self.y * self.z).double().normalize_weak();
        Jacobian {
            x,
            y,
            z,
            infinity: false,
        }
    }

    /// P + Q from the two points brought to a common Z: (U₁, S₁) = (X₁·Z₂², Y₁·Z₂³) and
    /// (U₂, S₂) = (X₂·Z₁², Y₂·Z₁³); the result's Z is `z`·H, with `z` = Z₁·Z₂. `twice` doubles P, for
    /// when Q turns out to be P.
    fn add_scaled(
        &self,
        (u1, s1): (FieldElement, FieldElement),
        (u2, s2): (FieldElement, FieldElement),
        z: FieldElement,
        twice: impl FnOnce() -> Jacobian,
    ) -> Jacobian {
        let h = (u2 + u1.negate(1)).normalize_weak();
        let r = (s2 + s1.negate(1)).normalize_weak();
        if bool::from(h.normalizes_to_zero()) {
            // The same x: the same point (doubled) or its opposite (the sum is at infinity).
            return match bool::from(r.normalizes_to_zero()) {
                true => twice(),
                false => Jacobian::INFINITY,
            };
        }
        let hh = h.square();
        let hhh = h * hh;
        let v = u1 * hh;
        let x = (r.square() + hhh.negate(1) + v.double().negate(2)).normalize_weak();
        let y = ((r * (v + x.negate(1))) + (s1 * hhh).negate(1)).normalize_weak();
        Jacobian {
            x,
            y,
            z: z * h,
            infinity: false,
        }
    }

    /// P + Q (add-2007-bl's steps, special cases checked).
    fn add(&self, q: &Jacobian) -> Jacobian {
        match (self.infinity, q.infinity) {
            (true, _) => return *q,
            (_, true) => return *self,
            _ => {}
        }
        let (z1z1, z2z2) = (self.z.square(), q.z.square());
        let u1 = self.x * z2z2;
        let u2 = q.x * z1z1;
        let s1 = self.y * q.z * z2z2;
        let s2 = q.y * self.z * z1z1;
        self.add_scaled((u1, s1), (u2, s2), self.z * q.z, || self.double())
    }

    /// P + Q for an affine Q (madd: Z₂ = 1).
    fn add_affine(&self, q: &Affine) -> Jacobian {
        if self.infinity {
            return Jacobian::from_affine(q);
        }
        let z1z1 = self.z.square();
        let u2 = q.x * z1z1;
        let s2 = q.y * self.z * z1z1;
        self.add_scaled((self.x, self.y), (u2, s2), self.z, || self.double())
    }

    /// The affine point, or `None` at infinity (one field inversion).
    fn to_affine(self) -> Option<Affine> {
        if self.infinity {
            return None;
        }
        let z_inv = invert(self.z)?;
        Some(self.scaled_by(&z_inv))
    }

    /// The affine point, given 1/Z.
    fn scaled_by(&self, z_inv: &FieldElement) -> Affine {
        let z_inv2 = z_inv.square();
        Affine {
            x: (self.x * z_inv2).normalize(),
            y: (self.y * z_inv2 * z_inv).normalize(),
        }
    }
}

/// u₁·G + u₂·R; `None` for the point at infinity.
pub fn mul_add(u1: &Scalar, u2: &Scalar, r: &Affine) -> Option<Affine> {
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
    let r = Jacobian::from_affine(&if a_neg { r.negate() } else { *r });
    let r_table = odd_multiples::<{ 1 << (W_POINT - 2) }>(r);
    let beta = field(&BETA);
    let lambda_table = r_table.map(|p| {
        let p = p.endomorphism(&beta);
        if a_neg == b_neg {
            p
        } else {
            p.negate()
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
    let point_tables: [&[Jacobian]; 2] = [&r_table, &lambda_table];
    let gen_tables: [&[Affine]; 2] = [gen_lo, gen_hi];

    let mut acc = Jacobian::INFINITY;
    for i in (0..top).rev() {
        acc = acc.double();
        for (table, digits) in point_tables.iter().zip(&digits[..2]) {
            let d = digits[i];
            if d != 0 {
                let p = table[(d.unsigned_abs() as usize) / 2];
                acc = acc.add(&if d > 0 { p } else { p.negate() });
            }
        }
        for (table, digits) in gen_tables.iter().zip(&digits[2..]) {
            let d = digits[i];
            if d != 0 {
                let p = table[(d.unsigned_abs() as usize) / 2];
                acc = acc.add_affine(&if d > 0 { p } else { p.negate() });
            }
        }
    }
    acc.to_affine()
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
fn odd_multiples<const N: usize>(p: Jacobian) -> [Jacobian; N] {
    let twice = p.double();
    let mut table = [p; N];
    for i in 1..N {
        table[i] = table[i - 1].add(&twice);
    }
    table
}

/// The odd multiples of G and of 2¹²⁸·G in affine coordinates, built on first use in this
/// isolate (10 KB): one field inversion for all of them (Montgomery's trick).
fn generator_tables() -> [&'static [Affine]; 2] {
    static TABLES: OnceLock<[[Affine; GEN_TABLE]; 2]> = OnceLock::new();
    let [lo, hi] = TABLES.get_or_init(|| {
        let g = Jacobian::from_affine(&Affine::generator());
        let mut g128 = g;
        for _ in 0..128 {
            g128 = g128.double();
        }
        let points: Vec<Jacobian> = [odd_multiples::<GEN_TABLE>(g), odd_multiples(g128)].concat();
        // Products of the Zs so far; one inversion of them all; then each 1/Z, last to first.
        let mut running = Vec::with_capacity(points.len());
        let mut product = FieldElement::ONE;
        for p in &points {
            running.push(product);
            product *= p.z;
        }
        let mut inv = invert(product).unwrap_or(FieldElement::ZERO);
        let mut tables = [[Affine::generator(); GEN_TABLE]; 2];
        for (i, p) in points.iter().enumerate().rev() {
            tables[i / GEN_TABLE][i % GEN_TABLE] = p.scaled_by(&(inv * running[i]));
            inv *= p.z;
        }
        tables
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

    #[test]
    fn our_chains_invert_and_take_square_roots_as_k256_does() {
        // Pseudo-random field elements (a fixed xorshift), small ones and the edges.
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = || {
            let mut bytes = [0u8; 32];
            for chunk in bytes.chunks_mut(8) {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                chunk.copy_from_slice(&state.to_be_bytes());
            }
            bytes
        };
        let mut elements: Vec<FieldElement> = (0..300)
            .filter_map(|_| Option::from(FieldElement::from_bytes(&next().into())))
            .collect();
        elements.extend((0..20).map(FieldElement::from_u64));
        elements.push(FieldElement::ONE.negate(1).normalize());
        let (mut squares, mut others) = (0, 0);
        for x in elements {
            let ours = invert(x).map(|v| v.normalize().to_bytes());
            let theirs = Option::<FieldElement>::from(x.invert()).map(|v| v.normalize().to_bytes());
            assert_eq!(ours, theirs);
            if let Some(inv) = invert(x) {
                assert_eq!((inv * x).normalize(), FieldElement::ONE);
            }
            let ours = sqrt(x).map(|v| v.normalize().to_bytes());
            let theirs = Option::<FieldElement>::from(x.sqrt()).map(|v| v.normalize().to_bytes());
            assert_eq!(ours, theirs);
            match ours {
                Some(_) => squares += 1,
                None => others += 1,
            }
        }
        assert!(
            squares > 100 && others > 100,
            "{squares} squares, {others} not"
        );
        assert!(invert(FieldElement::ZERO).is_none());
        assert_eq!(
            sqrt(FieldElement::ZERO).map(|v| v.normalize()),
            Some(FieldElement::ZERO)
        );
    }
    use k256::elliptic_curve::point::AffineCoordinates;
    use k256::elliptic_curve::Field;
    use k256::ProjectivePoint;

    fn scalar(hex: &str) -> Scalar {
        Scalar::reduce(U256::from_be_hex(hex))
    }

    /// `k256`'s constant-time u₁·G + u₂·R, as x and y's parity (or `None` at infinity).
    fn expected(u1: &Scalar, u2: &Scalar, r: &ProjectivePoint) -> Option<([u8; 32], bool)> {
        let p = (ProjectivePoint::GENERATOR * u1 + *r * u2).to_affine();
        (!bool::from(k256::elliptic_curve::group::Group::is_identity(
            &ProjectivePoint::from(p),
        )))
        .then(|| (p.x().into(), bool::from(p.y_is_odd())))
    }

    /// `k256`'s point as ours.
    fn ours(r: &ProjectivePoint) -> Affine {
        let p = r.to_affine();
        Affine::from_x(&p.x().into(), bool::from(p.y_is_odd())).unwrap()
    }

    /// Ours, the same way, after checking that its y is the curve's for its x.
    fn ours_of(u1: &Scalar, u2: &Scalar, r: &ProjectivePoint) -> Option<([u8; 32], bool)> {
        mul_add(u1, u2, &ours(r)).map(|p| {
            let x: [u8; 32] = p.x.to_bytes().into();
            let y_odd = bool::from(p.y.is_odd());
            let on_curve = Affine::from_x(&x, y_odd).unwrap();
            assert_eq!(on_curve.y.to_bytes(), p.y.to_bytes(), "y is the curve's");
            (x, y_odd)
        })
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
            assert_eq!(ours_of(&u1, &u2, &r), expected(&u1, &u2, &r), "pair {i}");
            r = r.double() + ProjectivePoint::GENERATOR;
        }
        for u1 in edges {
            for u2 in edges {
                assert_eq!(ours_of(&u1, &u2, &r), expected(&u1, &u2, &r));
            }
        }
        // R = G and R = −G: the sum meets equal and opposite points on the way.
        for u in edges.iter().chain(&s[..8]) {
            let g = ProjectivePoint::GENERATOR;
            assert_eq!(ours_of(u, &-*u, &g), None);
            assert_eq!(ours_of(u, u, &-g), None);
            assert_eq!(ours_of(u, u, &g), expected(&(*u + u), &Scalar::ZERO, &g));
            // R = λG and 2¹²⁸G: the tables of R meet the generator's.
            for r in [
                g * lambda,
                g * scalar("0000000000000000000000000000000100000000000000000000000000000000"),
            ] {
                assert_eq!(ours_of(u, u, &r), expected(u, u, &r));
                assert_eq!(ours_of(u, &-*u, &r), expected(u, &-*u, &r));
            }
        }
    }

    /// u₂·R cancelling part of u₁·G: the sum passes through the point at infinity midway, and the
    /// additions go on from there.
    #[test]
    fn the_sum_may_meet_infinity_midway() {
        let g = ProjectivePoint::GENERATOR;
        let two_128 = scalar("0000000000000000000000000000000100000000000000000000000000000000");
        let r = g * two_128;
        for (hi, lo) in [
            ("1234567890abcdef1234567890abcdef", "01"),
            ("ffffffffffffffffffffffffffffffff", "02"),
            ("80000000000000000000000000000001", "1234"),
        ] {
            let hi = scalar(&format!("{:0>64}", hi));
            let lo = scalar(&format!("{:0>64}", lo));
            let u1 = hi * two_128 + lo;
            let expected_lo = expected(&lo, &Scalar::ZERO, &g);
            assert!(expected_lo.is_some());
            assert_eq!(ours_of(&u1, &-hi, &r), expected_lo);
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
