//! Recovers the slot-reservation messages from their power sums.
//!
//! The exponential DC-net gives every peer S_k = Σ m_j^k for k = 1..n
//! (and nothing else). Newton's identities turn the power sums into the
//! elementary symmetric polynomials, that is the coefficients of
//! f(x) = Π (x − m_j); its roots are the messages. When every peer is
//! honest f splits into n distinct linear factors over GF(p); anything
//! else (a peer added garbage, two messages collided) shows as a
//! polynomial that does not, and is reported as an error.
//!
//! Roots are found with Cantor–Zassenhaus equal-degree splitting:
//! gcd(f, x^p − x) keeps exactly the distinct linear factors (so its
//! degree tells whether f splits), and gcd(f, (x + a)^((p−1)/2) − 1) for a
//! random `a` separates the roots r with r + a a quadratic residue from the
//! others, halving the problem on average.

use crate::field::{Fe, MODULUS};

/// Most messages one slot reservation may carry (the largest polynomial
/// solved; it bounds the work a stranger can cause).
pub const MAX_MESSAGES: usize = 1024;

/// Attempts at one split before giving up (each fails with probability
/// about 2^(1 − degree), so this is never reached honestly).
const MAX_SPLIT_ATTEMPTS: usize = 256;

/// Why the power sums did not yield the messages.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SolveError {
    /// More power sums than [`MAX_MESSAGES`].
    #[error("{0} messages exceed the limit of {MAX_MESSAGES}")]
    TooMany(usize),
    /// The polynomial has fewer distinct roots in the field than its
    /// degree: a peer disrupted the slot reservation, or messages collided.
    #[error("the slot-reservation polynomial has {distinct} distinct roots, not {expected}: the slot reservation was disrupted")]
    NotSplitting {
        /// Distinct roots in the field.
        distinct: usize,
        /// Its degree (the number of messages).
        expected: usize,
    },
    /// Random splitting kept failing (only possible with a broken RNG).
    #[error("root finding did not converge after {MAX_SPLIT_ATTEMPTS} attempts")]
    NoConvergence,
}

/// A polynomial over the field, lowest coefficient first, without
/// trailing zeros (the zero polynomial is empty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Poly(Vec<Fe>);

impl Poly {
    /// From coefficients, lowest first.
    pub fn new(mut coefficients: Vec<Fe>) -> Self {
        while coefficients.last() == Some(&Fe::ZERO) {
            coefficients.pop();
        }
        Poly(coefficients)
    }

    /// Π (x − r) over `roots`.
    pub fn from_roots(roots: &[Fe]) -> Self {
        let mut acc = vec![Fe::ONE];
        for &r in roots {
            let mut next = vec![Fe::ZERO; acc.len() + 1];
            for (i, &c) in acc.iter().enumerate() {
                next[i + 1] += c;
                next[i] -= c * r;
            }
            acc = next;
        }
        Poly::new(acc)
    }

    /// Coefficients, lowest first.
    pub fn coefficients(&self) -> &[Fe] {
        &self.0
    }

    /// The degree; `None` for the zero polynomial.
    pub fn degree(&self) -> Option<usize> {
        self.0.len().checked_sub(1)
    }

    /// The value at `x` (Horner).
    pub fn evaluate(&self, x: Fe) -> Fe {
        self.0.iter().rev().fold(Fe::ZERO, |acc, &c| acc * x + c)
    }

    fn leading(&self) -> Fe {
        self.0.last().copied().unwrap_or(Fe::ZERO)
    }

    fn monic(mut self) -> Self {
        if let Some(inv) = self.leading().inverse() {
            for c in &mut self.0 {
                *c *= inv;
            }
        }
        self
    }

    /// `self mod divisor` (divisor nonzero).
    fn rem(&self, divisor: &Poly) -> Poly {
        self.div_rem(divisor).1
    }

    /// Quotient and remainder (divisor nonzero).
    fn div_rem(&self, divisor: &Poly) -> (Poly, Poly) {
        let d = divisor.degree().expect("nonzero divisor");
        let inv = divisor
            .leading()
            .inverse()
            .expect("nonzero leading coefficient");
        let mut rem = self.0.clone();
        if rem.len() <= d {
            return (Poly(Vec::new()), Poly::new(rem));
        }
        let mut quotient = vec![Fe::ZERO; rem.len() - d];
        for i in (d..rem.len()).rev() {
            let factor = rem[i] * inv;
            if factor.is_zero() {
                continue;
            }
            quotient[i - d] = factor;
            for (j, &c) in divisor.0.iter().enumerate() {
                rem[i - d + j] -= factor * c;
            }
        }
        rem.truncate(d);
        (Poly::new(quotient), Poly::new(rem))
    }

    fn mul(&self, other: &Poly) -> Poly {
        if self.0.is_empty() || other.0.is_empty() {
            return Poly(Vec::new());
        }
        let mut out = vec![Fe::ZERO; self.0.len() + other.0.len() - 1];
        for (i, &a) in self.0.iter().enumerate() {
            if a.is_zero() {
                continue;
            }
            for (j, &b) in other.0.iter().enumerate() {
                out[i + j] += a * b;
            }
        }
        Poly::new(out)
    }

    fn sub(&self, other: &Poly) -> Poly {
        let len = self.0.len().max(other.0.len());
        let get = |p: &Poly, i: usize| p.0.get(i).copied().unwrap_or(Fe::ZERO);
        Poly::new((0..len).map(|i| get(self, i) - get(other, i)).collect())
    }

    /// `self · (x + a) mod modulus` for `self` of degree < deg(modulus);
    /// O(degree), which makes powers of a linear polynomial cheap.
    fn mul_linear_mod(&self, a: Fe, modulus: &Poly) -> Poly {
        let n = modulus.0.len() - 1;
        let mut out = vec![Fe::ZERO; n + 1];
        for (i, &c) in self.0.iter().enumerate() {
            out[i + 1] += c;
            out[i] += c * a;
        }
        // Reduce the single overflowing term x^n (modulus is monic).
        let top = out[n];
        if !top.is_zero() {
            for (i, &m) in modulus.0.iter().enumerate().take(n) {
                out[i] -= top * m;
            }
        }
        out.truncate(n);
        Poly::new(out)
    }
}

fn gcd(a: &Poly, b: &Poly) -> Poly {
    let (mut a, mut b) = (a.clone(), b.clone());
    while !b.0.is_empty() {
        let r = a.rem(&b);
        a = b;
        b = r;
    }
    a.monic()
}

/// (x + a)^exponent mod `modulus` (monic, degree ≥ 1).
fn pow_linear_mod(a: Fe, exponent: u128, modulus: &Poly) -> Poly {
    let mut acc = Poly::new(vec![Fe::ONE]).rem(modulus);
    for bit in (0..128 - exponent.leading_zeros()).rev() {
        acc = acc.mul(&acc).rem(modulus);
        if (exponent >> bit) & 1 == 1 {
            acc = acc.mul_linear_mod(a, modulus);
        }
    }
    acc
}

/// Newton's identities: the monic polynomial whose roots have the power
/// sums `sums[k−1] = Σ m^k`, k = 1..n.
pub fn polynomial_from_power_sums(sums: &[Fe]) -> Result<Poly, SolveError> {
    let n = sums.len();
    if n > MAX_MESSAGES {
        return Err(SolveError::TooMany(n));
    }
    // e[k] = (1/k) Σ_{i=1..k} (−1)^(i−1) e[k−i] S_i
    let mut e = Vec::with_capacity(n + 1);
    e.push(Fe::ONE);
    for k in 1..=n {
        let mut acc = Fe::ZERO;
        for i in 1..=k {
            let term = e[k - i] * sums[i - 1];
            if i % 2 == 1 {
                acc += term;
            } else {
                acc -= term;
            }
        }
        let inv = Fe::from(k as u64).inverse().expect("k < p");
        e.push(acc * inv);
    }
    // f(x) = Σ_k (−1)^k e_k x^(n−k)
    let coefficients = (0..=n)
        .map(|j| {
            let k = n - j;
            if k.is_multiple_of(2) {
                e[k]
            } else {
                -e[k]
            }
        })
        .collect();
    Ok(Poly::new(coefficients))
}

/// The roots of `poly` (monic, of degree n), ascending, if it splits into
/// n distinct linear factors; `seed` drives the random splitting (any
/// value works; the result does not depend on it).
pub fn roots(poly: &Poly, seed: &[u8; 32]) -> Result<Vec<Fe>, SolveError> {
    let Some(n) = poly.degree() else {
        return Err(SolveError::NotSplitting {
            distinct: 0,
            expected: 0,
        });
    };
    if n > MAX_MESSAGES {
        return Err(SolveError::TooMany(n));
    }
    if n == 0 {
        return Ok(Vec::new());
    }
    let f = poly.clone().monic();
    // gcd(f, x^p − x): the product of f's distinct linear factors.
    let x_p = pow_linear_mod(Fe::ZERO, MODULUS, &f);
    let linear = gcd(&f, &x_p.sub(&Poly::new(vec![Fe::ZERO, Fe::ONE])));
    let distinct = linear.degree().unwrap_or(0);
    if distinct != n {
        return Err(SolveError::NotSplitting {
            distinct,
            expected: n,
        });
    }
    let mut rng = blake3::Hasher::new_derive_key("conclave coinjoin root finding v1")
        .update(seed)
        .finalize_xof();
    let mut found = Vec::with_capacity(n);
    let mut pending = vec![f];
    while let Some(g) = pending.pop() {
        match g.degree() {
            Some(1) => {
                found.push(-g.0[0]);
                continue;
            }
            Some(0) | None => continue,
            Some(_) => {}
        }
        let mut split = None;
        for _ in 0..MAX_SPLIT_ATTEMPTS {
            let mut bytes = [0u8; 16];
            rng.fill(&mut bytes);
            let a = Fe::from_uniform_bytes(&bytes);
            let h = pow_linear_mod(a, (MODULUS - 1) / 2, &g).sub(&Poly::new(vec![Fe::ONE]));
            let d = gcd(&g, &h);
            let degree = d.degree().unwrap_or(0);
            if degree > 0 && degree < g.degree().unwrap_or(0) {
                split = Some(d);
                break;
            }
        }
        let d = split.ok_or(SolveError::NoConvergence)?;
        let (quotient, _) = g.div_rem(&d);
        pending.push(d);
        pending.push(quotient.monic());
    }
    found.sort();
    Ok(found)
}

/// The messages behind `sums`, ascending: Newton's identities then the
/// roots. Their positions are the reserved slots.
pub fn solve(sums: &[Fe], seed: &[u8; 32]) -> Result<Vec<Fe>, SolveError> {
    roots(&polynomial_from_power_sums(sums)?, seed)
}

/// Σ m^k for k = 1..count, per message set (what the DC-net sums to).
pub fn power_sums(messages: &[Fe], count: usize) -> Vec<Fe> {
    let mut sums = vec![Fe::ZERO; count];
    for &m in messages {
        let mut power = Fe::ONE;
        for s in sums.iter_mut() {
            power *= m;
            *s += power;
        }
    }
    sums
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn random_elements(seed: u64, count: usize) -> Vec<Fe> {
        let mut xof = blake3::Hasher::new()
            .update(&seed.to_le_bytes())
            .finalize_xof();
        (0..count)
            .map(|_| {
                let mut b = [0u8; 16];
                xof.fill(&mut b);
                Fe::from_uniform_bytes(&b)
            })
            .collect()
    }

    /// Brute force over a small range: every x in 0..bound with f(x) = 0.
    fn brute_force_roots(poly: &Poly, bound: u64) -> Vec<Fe> {
        (0..bound)
            .map(Fe::from)
            .filter(|&x| poly.evaluate(x).is_zero())
            .collect()
    }

    #[test]
    fn small_message_sets_match_brute_force() {
        for seed in 0..40u64 {
            let count = 1 + (seed as usize % 6);
            let mut messages: Vec<Fe> = random_elements(seed, count)
                .into_iter()
                .map(|m| Fe::new(m.value() % 500))
                .collect();
            messages.sort();
            messages.dedup();
            let sums = power_sums(&messages, messages.len());
            let poly = polynomial_from_power_sums(&sums).unwrap();
            assert_eq!(poly, Poly::from_roots(&messages), "Newton's identities");
            assert_eq!(brute_force_roots(&poly, 500), messages);
            assert_eq!(solve(&sums, &[seed as u8; 32]).unwrap(), messages);
        }
    }

    #[test]
    fn twenty_peers_times_several_messages_roundtrip() {
        for (seed, count) in [(1u64, 20usize), (2, 60), (3, 100), (4, 1), (5, 2)] {
            let mut messages = random_elements(seed, count);
            let sums = power_sums(&messages, count);
            messages.sort();
            assert_eq!(
                solve(&sums, &[7; 32]).unwrap(),
                messages,
                "{count} messages"
            );
        }
    }

    #[test]
    fn a_repeated_message_is_an_error_not_a_panic() {
        let mut messages = random_elements(9, 5);
        messages[3] = messages[1];
        let sums = power_sums(&messages, 5);
        assert_eq!(
            solve(&sums, &[0; 32]),
            Err(SolveError::NotSplitting {
                distinct: 4,
                expected: 5
            })
        );
    }

    #[test]
    fn garbage_sums_do_not_split() {
        let messages = random_elements(10, 8);
        let mut sums = power_sums(&messages, 8);
        sums[2] += Fe::ONE;
        let err = solve(&sums, &[0; 32]).unwrap_err();
        assert!(
            matches!(err, SolveError::NotSplitting { expected: 8, .. }),
            "{err}"
        );
    }

    #[test]
    fn an_irreducible_quadratic_has_no_roots() {
        // −1 is a non-residue mod p ≡ 3 (mod 4), so x^2 + 1 is irreducible.
        let poly = Poly::new(vec![Fe::ONE, Fe::ZERO, Fe::ONE]);
        assert_eq!(
            roots(&poly, &[0; 32]),
            Err(SolveError::NotSplitting {
                distinct: 0,
                expected: 2
            })
        );
    }

    #[test]
    fn too_many_sums_are_refused_before_any_work() {
        let sums = vec![Fe::ONE; MAX_MESSAGES + 1];
        assert_eq!(
            solve(&sums, &[0; 32]),
            Err(SolveError::TooMany(MAX_MESSAGES + 1))
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        #[test]
        fn random_message_sets_roundtrip(seed in any::<u64>(), count in 1usize..24, solver_seed in any::<[u8; 32]>()) {
            let mut messages = random_elements(seed, count);
            let sums = power_sums(&messages, count);
            messages.sort();
            prop_assert_eq!(solve(&sums, &solver_seed).unwrap(), messages);
        }
    }
}
