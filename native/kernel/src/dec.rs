//! Exact decimal arithmetic for the boundary: `str(Decimal)` text parsed into a coefficient
//! and an exponent, and `to_units` exactly as `domain.values.to_units` decides it.

/// A parsed `Decimal`: `(-1)^neg * coef * 10^exp`, or a non-finite value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dec {
    Finite { neg: bool, coef: u128, exp: i64 },
    NonFinite { neg: bool, nan: bool },
}

#[derive(Debug, PartialEq, Eq)]
pub enum ConvErr {
    /// not finite, or the unit is not finite or not positive ("cannot express ...")
    Express,
    /// not a whole number of units ("... is not a multiple of ...")
    NotMultiple,
}

/// Values whose magnitude in units reaches this are "huge": they are reported as
/// `±HUGE` (every limit check then refuses them the way Python does with the exact value).
pub const HUGE: i128 = 1_000_000_000_000_000_000_000_000_000_000_000_000; // 1e36

/// Parse the text of `str(Decimal)`; `None` if it is not one (or > 38 digits).
pub fn parse(text: &str) -> Option<Dec> {
    let b = text.as_bytes();
    let mut i = 0;
    let mut neg = false;
    if i < b.len() && (b[i] == b'-' || b[i] == b'+') {
        neg = b[i] == b'-';
        i += 1;
    }
    let rest = &text[i..];
    let lower = rest.to_ascii_lowercase();
    if lower == "infinity" || lower == "inf" {
        return Some(Dec::NonFinite { neg, nan: false });
    }
    if lower.starts_with("nan") || lower.starts_with("snan") {
        return Some(Dec::NonFinite { neg, nan: true });
    }
    let mut coef: u128 = 0;
    let mut exp: i64 = 0;
    let mut digits = 0;
    let mut seen_point = false;
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_digit() {
            coef = coef.checked_mul(10)?.checked_add((c - b'0') as u128)?;
            digits += 1;
            if seen_point {
                exp -= 1;
            }
        } else if c == b'.' && !seen_point {
            seen_point = true;
        } else if c == b'_' {
            // Decimal accepts underscores between digits
        } else {
            break;
        }
        i += 1;
    }
    if digits == 0 {
        return None;
    }
    if i < b.len() {
        if b[i] != b'e' && b[i] != b'E' {
            return None;
        }
        i += 1;
        let e: i64 = text[i..].parse().ok()?;
        exp = exp.checked_add(e)?;
    }
    Some(Dec::Finite { neg, coef, exp })
}

fn pow10(k: u64) -> Option<u128> {
    if k > 38 {
        return None;
    }
    10u128.checked_pow(k as u32)
}

fn mulmod(a: u128, b: u128, m: u128) -> u128 {
    // a, b < m < 2^64
    (a * b) % m
}

fn pow10_mod(mut k: u64, m: u128) -> u128 {
    let mut result = 1 % m;
    let mut base = 10 % m;
    while k > 0 {
        if k & 1 == 1 {
            result = mulmod(result, base, m);
        }
        base = mulmod(base, base, m);
        k >>= 1;
    }
    result
}

fn signed(neg: bool, q: u128) -> i128 {
    let v = if q >= HUGE as u128 { HUGE } else { q as i128 };
    if neg {
        -v
    } else {
        v
    }
}

/// `to_units(value, unit)`: the exact number of `unit` in `value` (saturated at `±HUGE`).
/// `(a / b, a % b)`; 128-bit division is a slow library call, so 64-bit operands (every
/// price and size in practice) take the 64-bit instruction.
#[inline]
fn divmod(a: u128, b: u128) -> (u128, u128) {
    if let (Ok(x), Ok(y)) = (u64::try_from(a), u64::try_from(b)) {
        return ((x / y) as u128, (x % y) as u128);
    }
    (a / b, a % b)
}

pub fn to_units(value: &Dec, unit: &Dec) -> Result<i128, ConvErr> {
    let (neg, cv, ev) = match *value {
        Dec::Finite { neg, coef, exp } => (neg, coef, exp),
        Dec::NonFinite { .. } => return Err(ConvErr::Express),
    };
    let (cu, eu) = match *unit {
        Dec::Finite { neg: false, coef, exp } if coef > 0 => (coef, exp),
        _ => return Err(ConvErr::Express),
    };
    if cv == 0 {
        return Ok(0);
    }
    if ev >= eu {
        let k = (ev - eu) as u64;
        if let Some(num) = pow10(k).and_then(|p| cv.checked_mul(p)) {
            let (q, r) = divmod(num, cu);
            if r != 0 {
                return Err(ConvErr::NotMultiple);
            }
            return Ok(signed(neg, q));
        }
        // huge: only whether it is a multiple matters
        if cu >= (1u128 << 64) {
            return Err(ConvErr::NotMultiple);
        }
        let r = mulmod(cv % cu, pow10_mod(k, cu), cu);
        if r != 0 {
            return Err(ConvErr::NotMultiple);
        }
        Ok(if neg { -HUGE } else { HUGE })
    } else {
        let k = (eu - ev) as u64;
        match pow10(k).and_then(|p| cu.checked_mul(p)) {
            Some(den) => {
                let (q, r) = divmod(cv, den);
                if r != 0 {
                    return Err(ConvErr::NotMultiple);
                }
                Ok(signed(neg, q))
            }
            None => Err(ConvErr::NotMultiple), // den > 2^128 > cv > 0
        }
    }
}

/// Exact product of two finite decimals (None if not finite or too many digits for Python's
/// 28-digit context, where Python would round).
pub fn mul(a: &Dec, b: &Dec) -> Option<Dec> {
    match (*a, *b) {
        (
            Dec::Finite { neg: na, coef: ca, exp: ea },
            Dec::Finite { neg: nb, coef: cb, exp: eb },
        ) => {
            let c = ca.checked_mul(cb)?;
            if c >= 10u128.pow(28) {
                return None;
            }
            Some(Dec::Finite { neg: na != nb, coef: c, exp: ea + eb })
        }
        (Dec::NonFinite { nan: true, .. }, _) | (_, Dec::NonFinite { nan: true, .. }) => {
            Some(Dec::NonFinite { neg: false, nan: true })
        }
        (x, y) => {
            let neg = is_neg(&x) != is_neg(&y);
            Some(Dec::NonFinite { neg, nan: false })
        }
    }
}

pub fn is_neg(d: &Dec) -> bool {
    match *d {
        Dec::Finite { neg, .. } | Dec::NonFinite { neg, .. } => neg,
    }
}

/// `value <= 0` (None when Python would raise: comparing a NaN).
pub fn le_zero(d: &Dec) -> Option<bool> {
    match *d {
        Dec::Finite { neg, coef, .. } => Some(coef == 0 || neg),
        Dec::NonFinite { nan: true, .. } => None,
        Dec::NonFinite { neg, .. } => Some(neg),
    }
}

/// The atom of an asset with `decimals` places: `Decimal(1).scaleb(-decimals)`.
pub fn atom(decimals: i64) -> Dec {
    Dec::Finite { neg: false, coef: 1, exp: -decimals }
}

/// `str(Decimal(1).scaleb(-decimals))` for 0 <= decimals.
pub fn atom_text(decimals: i64) -> String {
    if decimals == 0 {
        "1".to_string()
    } else if decimals <= 6 {
        format!("0.{}1", "0".repeat((decimals - 1) as usize))
    } else {
        format!("1E-{}", decimals)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Dec {
        parse(s).unwrap()
    }

    #[test]
    fn converts_exactly() {
        assert_eq!(to_units(&d("1.25"), &d("0.05")), Ok(25));
        assert_eq!(to_units(&d("1.26"), &d("0.05")), Err(ConvErr::NotMultiple));
        assert_eq!(to_units(&d("1E+2"), &d("0.01")), Ok(10000));
        assert_eq!(to_units(&d("-3"), &d("1")), Ok(-3));
        assert_eq!(to_units(&d("NaN"), &d("1")), Err(ConvErr::Express));
        assert_eq!(to_units(&d("1E+60"), &d("0.01")), Ok(HUGE));
        assert_eq!(to_units(&d("1E-60"), &d("0.01")), Err(ConvErr::NotMultiple));
        assert_eq!(atom_text(2), "0.01");
        assert_eq!(atom_text(7), "1E-7");
    }
}
