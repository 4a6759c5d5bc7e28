//! The prime field GF(2^127 − 1) of the exponential DC-net.
//!
//! A Mersenne prime makes reduction two shifts and an add: since
//! 2^127 ≡ 1 (mod p), a product `hi·2^127 + lo` reduces to `hi + lo`.
//! Elements are kept fully reduced (`0 ≤ x < p`), so equality is equality
//! of the stored integers. Constant time is not needed: every element
//! handled here is either public (the DC-net's sums) or replayed in public
//! during blame, and each peer's own messages stay hidden by the pads, not
//! by timing.

use std::{
    fmt,
    ops::{Add, AddAssign, Mul, MulAssign, Neg, Sub, SubAssign},
};

use serde::{Deserialize, Serialize};

/// The field's modulus, 2^127 − 1.
pub const MODULUS: u128 = (1u128 << 127) - 1;

/// Bytes of one element on the wire (big-endian).
pub const ELEMENT_LEN: usize = 16;

/// An element of GF(2^127 − 1).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Fe(u128);

/// Sixteen bytes that are not a canonical element (the integer is ≥ p).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not a field element: the 16 bytes encode an integer ≥ 2^127 − 1")]
pub struct NonCanonical;

impl Fe {
    /// Zero.
    pub const ZERO: Fe = Fe(0);
    /// One.
    pub const ONE: Fe = Fe(1);

    /// `value mod p`.
    pub const fn new(value: u128) -> Self {
        // value < 2^128 = 2p + 2, so at most two subtractions.
        let folded = (value & MODULUS) + (value >> 127);
        Fe(if folded >= MODULUS {
            folded - MODULUS
        } else {
            folded
        })
    }

    /// The canonical integer in `0..p`.
    pub const fn value(self) -> u128 {
        self.0
    }

    /// Whether this is zero.
    pub const fn is_zero(self) -> bool {
        self.0 == 0
    }

    /// From 16 big-endian bytes, refusing integers ≥ p (so every element
    /// has exactly one encoding and hashes of messages are unambiguous).
    pub fn from_bytes(bytes: &[u8; ELEMENT_LEN]) -> Result<Self, NonCanonical> {
        let value = u128::from_be_bytes(*bytes);
        if value >= MODULUS {
            return Err(NonCanonical);
        }
        Ok(Fe(value))
    }

    /// 16 uniformly random bytes to an element: the top bit is dropped and
    /// p itself maps to 0 (a bias of 2^-127).
    pub fn from_uniform_bytes(bytes: &[u8; ELEMENT_LEN]) -> Self {
        Fe::new(u128::from_be_bytes(*bytes) & MODULUS)
    }

    /// The canonical 16-byte big-endian encoding.
    pub fn to_bytes(self) -> [u8; ELEMENT_LEN] {
        self.0.to_be_bytes()
    }

    /// `self^exponent` by square-and-multiply.
    pub fn pow(self, mut exponent: u128) -> Self {
        let mut base = self;
        let mut acc = Fe::ONE;
        while exponent > 0 {
            if exponent & 1 == 1 {
                acc *= base;
            }
            base *= base;
            exponent >>= 1;
        }
        acc
    }

    /// The multiplicative inverse (Fermat: x^(p−2)); `None` for zero.
    pub fn inverse(self) -> Option<Self> {
        if self.is_zero() {
            None
        } else {
            Some(self.pow(MODULUS - 2))
        }
    }
}

/// The full 254-bit product of two values below 2^127, as (high, low) words.
fn wide_mul(a: u128, b: u128) -> (u128, u128) {
    const MASK: u128 = u64::MAX as u128;
    let (a_hi, a_lo) = (a >> 64, a & MASK);
    let (b_hi, b_lo) = (b >> 64, b & MASK);
    let lo_lo = a_lo * b_lo;
    let hi_lo = a_hi * b_lo;
    let lo_hi = a_lo * b_hi;
    let hi_hi = a_hi * b_hi;
    // Each cross term is < 2^127 (a_hi, b_hi < 2^63), so their sum fits.
    let cross = hi_lo + lo_hi;
    let (low, carry) = lo_lo.overflowing_add(cross << 64);
    let high = hi_hi + (cross >> 64) + u128::from(carry);
    (high, low)
}

impl Add for Fe {
    type Output = Fe;
    fn add(self, other: Fe) -> Fe {
        // Both < 2^127 − 1, so the sum fits in u128.
        Fe::new(self.0 + other.0)
    }
}

impl Sub for Fe {
    type Output = Fe;
    fn sub(self, other: Fe) -> Fe {
        self + (-other)
    }
}

impl Neg for Fe {
    type Output = Fe;
    fn neg(self) -> Fe {
        if self.0 == 0 {
            self
        } else {
            Fe(MODULUS - self.0)
        }
    }
}

impl Mul for Fe {
    type Output = Fe;
    fn mul(self, other: Fe) -> Fe {
        let (high, low) = wide_mul(self.0, other.0);
        // product = high·2^128 + low = (high·2 + low>>127)·2^127 + (low & p)
        // ≡ (high << 1 | low >> 127) + (low & p); the first term is < 2^127
        // because the product is < 2^254.
        let top = (high << 1) | (low >> 127);
        Fe::new(top + (low & MODULUS))
    }
}

impl AddAssign for Fe {
    fn add_assign(&mut self, other: Fe) {
        *self = *self + other;
    }
}

impl SubAssign for Fe {
    fn sub_assign(&mut self, other: Fe) {
        *self = *self - other;
    }
}

impl MulAssign for Fe {
    fn mul_assign(&mut self, other: Fe) {
        *self = *self * other;
    }
}

impl From<u64> for Fe {
    fn from(value: u64) -> Self {
        Fe(u128::from(value))
    }
}

impl fmt::Debug for Fe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fe({:#x})", self.0)
    }
}

impl fmt::Display for Fe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

impl Serialize for Fe {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_bytes().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Fe {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let bytes = <[u8; ELEMENT_LEN]>::deserialize(deserializer)?;
        Fe::from_bytes(&bytes).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use num_bigint::BigUint;
    use proptest::prelude::*;

    use super::*;

    fn big(x: u128) -> BigUint {
        BigUint::from(x)
    }

    fn p() -> BigUint {
        big(MODULUS)
    }

    /// The slow reference: arbitrary-precision arithmetic reduced mod p.
    fn reference(x: BigUint) -> u128 {
        let r = x % p();
        u128::try_from(r).expect("below p")
    }

    fn element() -> impl Strategy<Value = Fe> {
        prop_oneof![
            any::<u128>().prop_map(Fe::new),
            Just(Fe::ZERO),
            Just(Fe::ONE),
            Just(-Fe::ONE),
            (0u128..1000).prop_map(|k| Fe::new(MODULUS - 1 - k)),
        ]
    }

    proptest! {
        #[test]
        fn arithmetic_matches_bigint_reference(a in element(), b in element()) {
            prop_assert_eq!((a + b).value(), reference(big(a.value()) + big(b.value())));
            prop_assert_eq!((a * b).value(), reference(big(a.value()) * big(b.value())));
            prop_assert_eq!((a - b).value(), reference(big(a.value()) + p() - big(b.value())));
            prop_assert_eq!((-a).value(), reference(p() - big(a.value())));
        }

        #[test]
        fn reduction_of_any_u128_matches(x in any::<u128>()) {
            prop_assert_eq!(Fe::new(x).value(), reference(big(x)));
        }

        #[test]
        fn pow_matches_bigint_modpow(a in element(), e in any::<u128>()) {
            prop_assert_eq!(a.pow(e).value(), reference(big(a.value()).modpow(&big(e), &p())));
        }

        #[test]
        fn inverse_multiplies_to_one(a in element()) {
            match a.inverse() {
                None => prop_assert!(a.is_zero()),
                Some(inv) => prop_assert_eq!(a * inv, Fe::ONE),
            }
        }

        #[test]
        fn bytes_roundtrip(a in element()) {
            prop_assert_eq!(Fe::from_bytes(&a.to_bytes()), Ok(a));
        }
    }

    #[test]
    fn non_canonical_encodings_are_refused() {
        assert_eq!(Fe::from_bytes(&MODULUS.to_be_bytes()), Err(NonCanonical));
        assert_eq!(Fe::from_bytes(&u128::MAX.to_be_bytes()), Err(NonCanonical));
        assert_eq!(
            Fe::from_bytes(&(1u128 << 127).to_be_bytes()),
            Err(NonCanonical)
        );
        assert_eq!(
            Fe::from_bytes(&(MODULUS - 1).to_be_bytes()).map(Fe::value),
            Ok(MODULUS - 1)
        );
        let decoded: Result<Fe, _> =
            postcard::from_bytes(&postcard::to_stdvec(&MODULUS.to_be_bytes()).unwrap());
        assert!(decoded.is_err(), "the serde decoder refuses p as well");
    }

    #[test]
    fn edge_products_reduce() {
        let max = Fe::new(MODULUS - 1); // −1
        assert_eq!(max * max, Fe::ONE);
        assert_eq!(Fe::new(MODULUS), Fe::ZERO);
        assert_eq!(Fe::new(u128::MAX), Fe::ONE, "2^128 − 1 = 2p + 1");
        assert_eq!(Fe::from(2).pow(127), Fe::ONE);
        assert_eq!(Fe::ZERO.inverse(), None);
    }
}
