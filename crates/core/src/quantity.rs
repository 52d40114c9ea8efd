//! Kubernetes resource quantities (`512Gi`, `1.5T`, `2e9`, `15m`) as exact byte and millicore counts.
//!
//! Capacity arithmetic must be exact: a float would let `12 x 42Gi` compare equal to a
//! slightly different total. Quantities are parsed into whole bytes (rounded up, as the
//! kubelet does for fractional memory) and kept as `u64` everywhere.

use std::fmt;

/// Why a string is not a usable memory or storage quantity.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    #[error(
        "{0:?} is not a Kubernetes quantity (expected a number with an optional suffix such as Ki, Mi, Gi, Ti, k, M, G, T)"
    )]
    Syntax(String),
    #[error("{0:?} is negative")]
    Negative(String),
    #[error("{0:?} is too large")]
    Overflow(String),
}

const BINARY_SUFFIXES: [(&str, u32); 6] = [("Ki", 10), ("Mi", 20), ("Gi", 30), ("Ti", 40), ("Pi", 50), ("Ei", 60)];
const DECIMAL_SUFFIXES: [(&str, i32); 10] =
    [("n", -9), ("u", -6), ("m", -3), ("k", 3), ("M", 6), ("G", 9), ("T", 12), ("P", 15), ("E", 18), ("", 0)];

/// Parses a quantity into whole bytes, rounding a fractional byte count up.
pub fn parse_bytes(text: &str) -> Result<u64, QuantityError> {
    parse_scaled(text, 0)
}

/// Parses a CPU quantity (`30`, `15m`, `1.5`) into millicores, rounding a fraction of a
/// millicore up, as the API server does when it canonicalises a CPU quantity.
pub fn parse_millicores(text: &str) -> Result<u64, QuantityError> {
    parse_scaled(text, 3)
}

/// A CPU amount in millicores written as Kubernetes writes it: whole cores when it is whole
/// (`30`), else millicores (`30015m`), so the text parses back to the same number.
pub fn format_millicores(millicores: u64) -> String {
    if millicores.is_multiple_of(1000) { (millicores / 1000).to_string() } else { format!("{millicores}m") }
}

/// Millicores for a table a person reads: cores, with the fraction when there is one (`30`, `30.015`).
pub struct HumanCores(pub u64);

impl fmt::Display for HumanCores {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (whole, fraction) = (self.0 / 1000, self.0 % 1000);
        if fraction == 0 {
            write!(f, "{whole}")
        } else {
            let digits = format!("{fraction:03}");
            write!(f, "{whole}.{}", digits.trim_end_matches('0'))
        }
    }
}

/// The quantity's value times 10^`scale`, rounded up to a whole number.
fn parse_scaled(text: &str, scale: i32) -> Result<u64, QuantityError> {
    let syntax = || QuantityError::Syntax(text.to_string());
    let overflow = || QuantityError::Overflow(text.to_string());
    let (negative, unsigned) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let number_end = unsigned.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(unsigned.len());
    let (number, suffix) = unsigned.split_at(number_end);
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() && fraction.is_empty() || fraction.contains('.') {
        return Err(syntax());
    }
    let digits = format!("{whole}{fraction}");
    // 38 significant digits is what u128 holds; more means an absurd quantity anyway.
    let digits = digits.trim_start_matches('0');
    if digits.len() > 38 {
        return Err(overflow());
    }
    let mantissa: u128 = if digits.is_empty() { 0 } else { digits.parse().map_err(|_| syntax())? };
    if negative && mantissa != 0 {
        return Err(QuantityError::Negative(text.to_string()));
    }
    let fraction_digits = i32::try_from(fraction.len()).map_err(|_| overflow())?;

    // value = mantissa * 2^binary_shift * 10^(decimal_exponent - fraction_digits)
    let (binary_shift, decimal_exponent) = if let Some((_, shift)) = BINARY_SUFFIXES.iter().find(|(s, _)| *s == suffix)
    {
        (*shift, 0)
    } else if let Some((_, exponent)) = DECIMAL_SUFFIXES.iter().find(|(s, _)| *s == suffix) {
        (0, *exponent)
    } else if let Some(exponent) = suffix.strip_prefix(['e', 'E']) {
        (0, exponent.parse::<i32>().map_err(|_| syntax())?)
    } else {
        return Err(syntax());
    };
    let scaled = mantissa.checked_mul(1u128 << binary_shift).ok_or_else(overflow)?;
    let exponent = decimal_exponent - fraction_digits + scale;
    let bytes = if exponent >= 0 {
        let factor = 10u128.checked_pow(exponent.unsigned_abs()).ok_or_else(overflow)?;
        scaled.checked_mul(factor).ok_or_else(overflow)?
    } else {
        match 10u128.checked_pow(exponent.unsigned_abs()) {
            Some(divisor) => scaled.div_ceil(divisor),
            // Dividing by more than u128 can hold: any non-zero value is a fraction of a byte.
            None => u128::from(scaled > 0),
        }
    };
    u64::try_from(bytes).map_err(|_| overflow())
}

/// A byte count printed the way Kubernetes users write it: the largest binary unit that
/// divides it exactly (`512Gi`, `1536Mi`), so the text parses back to the same number.
pub fn format_bytes(bytes: u64) -> String {
    for (suffix, shift) in BINARY_SUFFIXES.iter().rev() {
        let unit = 1u64 << shift;
        if bytes >= unit && bytes.is_multiple_of(unit) {
            return format!("{}{suffix}", bytes / unit);
        }
    }
    bytes.to_string()
}

/// A byte count for a table a person reads: GiB with at most one decimal (`504Gi`, `512.3Gi`).
pub struct HumanBytes(pub u64);

impl fmt::Display for HumanBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const GIB: u64 = 1 << 30;
        let bytes = self.0;
        if bytes.is_multiple_of(GIB) {
            return write!(f, "{}Gi", bytes / GIB);
        }
        if bytes < GIB && bytes.is_multiple_of(1 << 20) {
            return write!(f, "{}Mi", bytes >> 20);
        }
        write!(f, "{:.1}Gi", bytes as f64 / GIB as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_binary_decimal_and_exponent_forms() {
        assert_eq!(parse_bytes("512Gi"), Ok(512 << 30));
        assert_eq!(parse_bytes("2Ti"), Ok(2 << 40));
        assert_eq!(parse_bytes("1.5Gi"), Ok(3 << 29));
        assert_eq!(parse_bytes("40T"), Ok(40_000_000_000_000));
        assert_eq!(parse_bytes("2e9"), Ok(2_000_000_000));
        assert_eq!(parse_bytes("1E3"), Ok(1000));
        assert_eq!(parse_bytes("100"), Ok(100));
        assert_eq!(parse_bytes("+7k"), Ok(7000));
        assert_eq!(parse_bytes("0"), Ok(0));
        assert_eq!(parse_bytes(".5Ki"), Ok(512));
    }

    #[test]
    fn rounds_fractional_bytes_up() {
        assert_eq!(parse_bytes("100m"), Ok(1));
        assert_eq!(parse_bytes("1500m"), Ok(2));
        assert_eq!(parse_bytes("1e-40"), Ok(1));
    }

    #[test]
    fn refuses_malformed_negative_and_huge_values() {
        for bad in ["", "Gi", "12 Gi", "1.2.3", "1GB", "abc", "1e", "-"] {
            assert!(matches!(parse_bytes(bad), Err(QuantityError::Syntax(_))), "{bad:?} should be a syntax error");
        }
        assert!(matches!(parse_bytes("-1Gi"), Err(QuantityError::Negative(_))));
        assert!(matches!(parse_bytes("20Ei"), Err(QuantityError::Overflow(_))));
        assert!(matches!(parse_bytes("1e30"), Err(QuantityError::Overflow(_))));
    }

    #[test]
    fn formats_round_trip_exactly() {
        for bytes in [0, 1, 1023, 1024, 3 << 29, 512 << 30, 2 << 40, (2 << 40) + (64 << 30)] {
            assert_eq!(parse_bytes(&format_bytes(bytes)), Ok(bytes));
        }
        assert_eq!(format_bytes(512 << 30), "512Gi");
        assert_eq!(format_bytes(3 << 29), "1536Mi");
    }

    #[test]
    fn cpu_quantities_are_exact_millicores() {
        assert_eq!(parse_millicores("15m"), Ok(15));
        assert_eq!(parse_millicores("30"), Ok(30_000));
        assert_eq!(parse_millicores("97.015"), Ok(97_015));
        assert_eq!(parse_millicores("0.5"), Ok(500));
        assert_eq!(parse_millicores("100u"), Ok(1), "a fraction of a millicore rounds up");
        for millicores in [0, 15, 1000, 30_015, 97_000] {
            assert_eq!(parse_millicores(&format_millicores(millicores)), Ok(millicores));
        }
        assert_eq!(format_millicores(30_015), "30015m");
        assert_eq!(format_millicores(30_000), "30");
        assert_eq!(HumanCores(30_015).to_string(), "30.015");
        assert_eq!(HumanCores(30_500).to_string(), "30.5");
        assert_eq!(HumanCores(30_000).to_string(), "30");
    }

    #[test]
    fn human_bytes_reads_in_gibibytes() {
        assert_eq!(HumanBytes(504 << 30).to_string(), "504Gi");
        assert_eq!(HumanBytes(256 << 20).to_string(), "256Mi");
        assert_eq!(HumanBytes((512 << 30) + (300 << 20)).to_string(), "512.3Gi");
    }
}
