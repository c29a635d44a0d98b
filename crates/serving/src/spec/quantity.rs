//! Kubernetes resource quantities (`100m`, `1`, `0.5`, `512Mi`, `1G`, `1e3`).
//!
//! The grammar is Kubernetes' own (`k8s.io/apimachinery/pkg/api/resource`):
//! a signed decimal number followed by a binary SI suffix (`Ki` … `Ei`), a
//! decimal SI suffix (`n`, `u`, `m`, none, `k`, `M`, `G`, `T`, `P`, `E`) or a
//! decimal exponent (`e3`, `E-2`). The value is kept exactly, in units of
//! 10⁻⁹ (Kubernetes' own precision: anything finer rounds up), and the text
//! is kept as written so that a resource renders back unchanged.

use std::cmp::Ordering;
use std::fmt;

/// Nano-units per unit.
const NANO: i128 = 1_000_000_000;

/// More significant digits than any real quantity has; keeps the arithmetic
/// far away from `i128` overflow.
const MAX_DIGITS: usize = 30;

/// A parsed Kubernetes quantity.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Quantity {
    text: String,
    nanos: i128,
}

/// Why a quantity was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{text:?} is not a Kubernetes quantity: {reason} (write e.g. \"100m\" or \"1\" for CPU, \"512Mi\" or \"1G\" for memory)"
)]
pub struct QuantityError {
    /// The rejected text.
    pub text: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl Quantity {
    /// Parses `text` (surrounding whitespace is ignored).
    pub fn parse(text: &str) -> Result<Self, QuantityError> {
        let trimmed = text.trim();
        let err = |reason| QuantityError {
            text: text.to_owned(),
            reason,
        };
        let (negative, rest) = match trimmed.as_bytes().first() {
            Some(b'-') => (true, &trimmed[1..]),
            Some(b'+') => (false, &trimmed[1..]),
            Some(_) => (false, trimmed),
            None => return Err(err("it is empty")),
        };
        let number_len = rest
            .bytes()
            .position(|b| !(b.is_ascii_digit() || b == b'.'))
            .unwrap_or(rest.len());
        let (number, suffix) = rest.split_at(number_len);
        let (int_part, frac_part) = match number.split_once('.') {
            Some((i, f)) => (i, f),
            None => (number, ""),
        };
        if int_part.is_empty() && frac_part.is_empty() {
            return Err(err("it does not start with a number"));
        }
        if frac_part.contains('.') {
            return Err(err("it has more than one decimal point"));
        }
        let digits = format!("{int_part}{frac_part}");
        let digits = digits.trim_start_matches('0');
        if digits.len() > MAX_DIGITS {
            return Err(err("it has too many digits"));
        }
        let mantissa: i128 = if digits.is_empty() {
            0
        } else {
            digits.parse().map_err(|_| err("it is not a number"))?
        };
        // value = mantissa × 10^(-frac_len) × multiplier
        let frac_len = i32::try_from(frac_part.len()).map_err(|_| err("it is too long"))?;
        let (pow2, pow10): (u32, i32) = match suffix {
            "" => (0, 0),
            "n" => (0, -9),
            "u" => (0, -6),
            "m" => (0, -3),
            "k" => (0, 3),
            "M" => (0, 6),
            "G" => (0, 9),
            "T" => (0, 12),
            "P" => (0, 15),
            "E" => (0, 18),
            "Ki" => (10, 0),
            "Mi" => (20, 0),
            "Gi" => (30, 0),
            "Ti" => (40, 0),
            "Pi" => (50, 0),
            "Ei" => (60, 0),
            s if s.starts_with(['e', 'E']) => {
                let exp = &s[1..];
                let digits = exp.strip_prefix(['+', '-']).unwrap_or(exp);
                if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(err("its exponent is not an integer"));
                }
                let e: i32 = exp.parse().map_err(|_| err("its exponent is too large"))?;
                if !(-40..=40).contains(&e) {
                    return Err(err("its exponent is out of range"));
                }
                (0, e)
            }
            _ => return Err(err("unknown suffix")),
        };
        let too_large = || err("it is too large");
        let mut value = mantissa.checked_mul(1i128 << pow2).ok_or_else(too_large)?;
        // Scale to nano-units: × 10^(pow10 + 9 - frac_len), rounding up
        // (away from zero before the sign is applied) as Kubernetes does.
        let scale = pow10 + 9 - frac_len;
        if scale >= 0 {
            let factor = 10i128
                .checked_pow(u32::try_from(scale).map_err(|_| too_large())?)
                .ok_or_else(too_large)?;
            value = value.checked_mul(factor).ok_or_else(too_large)?;
        } else {
            let divisor = 10i128
                .checked_pow(scale.unsigned_abs())
                .unwrap_or(i128::MAX);
            let rounded_up = value % divisor != 0;
            value = value / divisor + i128::from(rounded_up);
        }
        Ok(Self {
            text: trimmed.to_owned(),
            nanos: if negative { -value } else { value },
        })
    }

    /// The quantity as written (trimmed).
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The exact value in units of 10⁻⁹.
    pub fn nanos(&self) -> i128 {
        self.nanos
    }

    /// Whether the value is below zero.
    pub fn is_negative(&self) -> bool {
        self.nanos < 0
    }

    /// The value in thousandths, rounded up (Kubernetes' `MilliValue`):
    /// millicores for CPU. `None` when negative or beyond `u64`.
    pub fn milli_value(&self) -> Option<u64> {
        let m = self.nanos.checked_add(999_999)?.div_euclid(1_000_000);
        u64::try_from(m).ok()
    }

    /// The value in units, rounded up (Kubernetes' `Value`): bytes for
    /// memory, a count for GPUs. `None` when negative or beyond `u64`.
    pub fn value(&self) -> Option<u64> {
        let v = self.nanos.checked_add(NANO - 1)?.div_euclid(NANO);
        u64::try_from(v).ok()
    }

    /// Compares the values, not the spellings (`1` equals `1000m`).
    pub fn cmp_value(&self, other: &Self) -> Ordering {
        self.nanos.cmp(&other.nanos)
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nanos(text: &str) -> i128 {
        Quantity::parse(text)
            .unwrap_or_else(|e| panic!("{e}"))
            .nanos()
    }

    #[test]
    fn parses_kubernetes_quantities() {
        for (text, want) in [
            ("1", NANO),
            ("0", 0),
            ("100m", 100_000_000),
            ("0.1", 100_000_000),
            (".5", 500_000_000),
            ("1.", NANO),
            ("+2", 2 * NANO),
            ("-1", -NANO),
            ("250u", 250_000),
            ("7n", 7),
            ("1k", 1000 * NANO),
            ("1G", 1_000_000_000 * NANO),
            ("1E", 10i128.pow(18) * NANO),
            ("512Mi", 512 * (1 << 20) * NANO),
            ("1Gi", (1 << 30) * NANO),
            ("1.5Gi", 3 * (1 << 29) * NANO),
            ("1Ei", (1i128 << 60) * NANO),
            ("1e3", 1000 * NANO),
            ("1E3", 1000 * NANO),
            ("5e-3", 5_000_000),
            ("12E+2", 1200 * NANO),
            (" 2 ", 2 * NANO),
            ("0.0000000001", 1), // below a nano-unit rounds up
        ] {
            assert_eq!(nanos(text), want, "{text}");
        }
    }

    #[test]
    fn keeps_the_spelling_and_converts() {
        let q = Quantity::parse(" 1.5Gi ").unwrap();
        assert_eq!(q.as_str(), "1.5Gi");
        assert_eq!(q.to_string(), "1.5Gi");
        assert_eq!(q.value(), Some(1_610_612_736));
        assert_eq!(Quantity::parse("100m").unwrap().milli_value(), Some(100));
        assert_eq!(Quantity::parse("1").unwrap().milli_value(), Some(1000));
        assert_eq!(Quantity::parse("0.1").unwrap().milli_value(), Some(100));
        assert_eq!(Quantity::parse("1n").unwrap().milli_value(), Some(1));
        assert_eq!(Quantity::parse("1500m").unwrap().value(), Some(2));
        assert_eq!(Quantity::parse("-1").unwrap().value(), None);
        assert!(Quantity::parse("-1").unwrap().is_negative());
        let one = Quantity::parse("1").unwrap();
        let thousand_milli = Quantity::parse("1000m").unwrap();
        assert_ne!(one, thousand_milli);
        assert_eq!(one.cmp_value(&thousand_milli), Ordering::Equal);
        assert_eq!(
            Quantity::parse("2").unwrap().cmp_value(&one),
            Ordering::Greater
        );
    }

    #[test]
    fn rejects_what_kubernetes_rejects() {
        for bad in [
            "", " ", "m", "Mi", "lots", "1.2.3", "1KB", "1mi", "1 Gi", "1e", "1e+", "1e1.5",
            "1ee3", "--1", "0x10", "1Gi2",
        ] {
            let e = Quantity::parse(bad).unwrap_err();
            assert_eq!(e.text, bad);
            assert!(e.to_string().contains("not a Kubernetes quantity"), "{e}");
        }
        assert_eq!(
            Quantity::parse("1e99").unwrap_err().reason,
            "its exponent is out of range"
        );
        assert_eq!(
            Quantity::parse("999999999999999999999Ei")
                .unwrap_err()
                .reason,
            "it is too large"
        );
        assert_eq!(
            Quantity::parse(&"9".repeat(40)).unwrap_err().reason,
            "it has too many digits"
        );
    }
}
