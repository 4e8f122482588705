//! Sizes and byte rates as people write them (`500k`, `35MB`, `20MiB`, `2MB/s`): one parser, so
//! that a unit means the same in every option that takes one (`--max-size`, `inventory --limit`,
//! the IMAP and POP3 `rate=` and `min_rate=` URL keys, mbox `spool_threshold=`).
//!
//! # The rule
//!
//! A number (digits with at most one decimal point, e.g. `1.5`), optional spaces, then an
//! optional unit. Units are case-insensitive and the trailing `B` is optional:
//!
//! | unit | factor |
//! | --- | --- |
//! | (none), `B` | 1 |
//! | `k`, `kB` | 1,000 |
//! | `M`, `MB` | 1,000,000 |
//! | `G`, `GB` | 1,000,000,000 |
//! | `T`, `TB` | 10¹² |
//! | `Ki`, `KiB` | 1,024 |
//! | `Mi`, `MiB` | 1,048,576 (1,024²) |
//! | `Gi`, `GiB` | 1,024³ |
//! | `Ti`, `TiB` | 1,024⁴ |
//!
//! So a bare letter is decimal (SI): `500k` is 500,000 bytes everywhere; binary multiples are
//! written with `i`. A rate may end in `/s` (`2MB/s`). Sizes are rounded to whole bytes.
//!
//! ```
//! use mailmove_core::units::{parse_rate, parse_size};
//! assert_eq!(parse_size("500k").unwrap(), 500_000);
//! assert_eq!(parse_size("20MiB").unwrap(), 20 * 1024 * 1024);
//! assert_eq!(parse_rate("2MB/s").unwrap(), 2e6);
//! assert!(parse_size("12 parsecs").is_err());
//! ```

use std::fmt;

/// The units and their factors, in the order the error message lists them.
const UNITS: &[(&str, f64)] = &[
    ("", 1.0),
    ("b", 1.0),
    ("k", 1e3),
    ("kb", 1e3),
    ("m", 1e6),
    ("mb", 1e6),
    ("g", 1e9),
    ("gb", 1e9),
    ("t", 1e12),
    ("tb", 1e12),
    ("ki", 1024.0),
    ("kib", 1024.0),
    ("mi", 1_048_576.0),
    ("mib", 1_048_576.0),
    ("gi", 1_073_741_824.0),
    ("gib", 1_073_741_824.0),
    ("ti", 1_099_511_627_776.0),
    ("tib", 1_099_511_627_776.0),
];

/// A size or rate that could not be read; its message quotes the text and lists the units.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitError {
    text: String,
    rate: bool,
}

impl fmt::Display for UnitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = if self.rate { "byte rate" } else { "size" };
        write!(
            f,
            "{:?} is not a {what}: write a number with an optional unit, k/M/G/T (powers of 1000) or \
             Ki/Mi/Gi/Ti (powers of 1024), B optional{}",
            self.text,
            if self.rate { ", /s allowed" } else { "" }
        )
    }
}

impl std::error::Error for UnitError {}

/// Parses a size in bytes (see the [module documentation](self) for the units).
///
/// # Errors
/// [`UnitError`] for a missing or malformed number, an unknown unit, or a size beyond `u64`.
pub fn parse_size(text: &str) -> Result<u64, UnitError> {
    let error = || UnitError { text: text.to_string(), rate: false };
    let bytes = parse_amount(text).ok_or_else(error)?.round();
    // `u64::MAX as f64` rounds up to 2^64, which does not fit: compare with `<`.
    if bytes < u64::MAX as f64 {
        Ok(bytes as u64)
    } else {
        Err(error())
    }
}

/// Parses a rate in bytes per second: a size, optionally followed by `/s` (`2MB/s`, `500k`).
/// Fractions are kept (`0.5` is half a byte a second); callers decide which values make sense.
///
/// # Errors
/// [`UnitError`] for a missing or malformed number or an unknown unit.
pub fn parse_rate(text: &str) -> Result<f64, UnitError> {
    let trimmed = text.trim();
    let amount = trimmed.strip_suffix("/s").or_else(|| trimmed.strip_suffix("/S")).unwrap_or(trimmed);
    parse_amount(amount).ok_or_else(|| UnitError { text: text.to_string(), rate: true })
}

/// A finite, non-negative number times its unit's factor.
fn parse_amount(text: &str) -> Option<f64> {
    let text = text.trim();
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    // `f64::from_str` would also take `inf`, `1e3` or a sign; only digits and one point get here.
    if !number.bytes().any(|byte| byte.is_ascii_digit()) {
        return None;
    }
    let number: f64 = number.parse().ok()?;
    let unit = unit.trim_start().to_ascii_lowercase();
    let factor = UNITS.iter().find(|(name, _)| *name == unit)?.1;
    let amount = number * factor;
    amount.is_finite().then_some(amount)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_table() {
        for (text, expected) in [
            ("0", 0),
            ("1000", 1000),
            ("500k", 500_000),
            ("500K", 500_000),
            ("500kB", 500_000),
            ("1.5k", 1500),
            ("35MB", 35_000_000),
            ("35 mb", 35_000_000),
            ("2 GB", 2_000_000_000),
            ("1T", 1_000_000_000_000),
            ("1Ki", 1024),
            ("1.5KiB", 1536),
            ("20MiB", 20 * 1024 * 1024),
            ("20mi", 20 * 1024 * 1024),
            ("1GiB", 1 << 30),
            ("1tib", 1 << 40),
            ("12b", 12),
            (" 7 ", 7),
            ("0.4", 0),
            ("0.5", 1),
        ] {
            assert_eq!(parse_size(text), Ok(expected), "{text}");
        }
        for bad in [
            "",
            "MB",
            "12 parsecs",
            "1..2M",
            "-1",
            "+1",
            "1e3",
            "inf",
            "NaN",
            ".",
            "2XB",
            "5k/s",
            "99999999999T",
        ] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn rate_table() {
        for (text, expected) in [
            ("500000", 500_000.0),
            ("2MB", 2e6),
            ("800k", 8e5),
            ("2MB/s", 2e6),
            ("1.5MiB/s", 1.5 * 1_048_576.0),
            ("0", 0.0),
            ("0.5", 0.5),
        ] {
            assert_eq!(parse_rate(text), Ok(expected), "{text}");
        }
        for bad in ["", "fast", "2XB", "-1", "1..2M", "/s", "1/m"] {
            assert!(parse_rate(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_error_lists_the_units() {
        let error = parse_size("12 parsecs").unwrap_err().to_string();
        assert!(error.contains("\"12 parsecs\"") && error.contains("Ki/Mi/Gi/Ti"), "{error}");
        assert!(parse_rate("x").unwrap_err().to_string().contains("/s allowed"));
    }

    proptest::proptest! {
        /// Every amount written with every unit reads back as amount × factor.
        #[test]
        fn written_sizes_read_back(amount in 0u64..1_000_000, unit in 0..UNITS.len(), upper: bool, spaced: bool) {
            let (name, factor) = UNITS[unit];
            let name = if upper { name.to_ascii_uppercase() } else { name.to_string() };
            let text = format!("{amount}{}{name}", if spaced { " " } else { "" });
            proptest::prop_assert_eq!(parse_size(&text), Ok(amount * factor as u64));
            proptest::prop_assert_eq!(parse_rate(&format!("{text}/s")), Ok((amount * factor as u64) as f64));
        }
    }
}
