//! Kubernetes `resource.Quantity` parsing (`250m`, `0.5`, `128Mi`, `1e3`).
//!
//! Grammar (Kubernetes `apimachinery/pkg/api/resource`):
//!
//! ```text
//! quantity  ::= [+-] number suffix
//! number    ::= digits | digits "." | digits "." digits | "." digits
//! suffix    ::= "" | n | u | m | k | M | G | T | P | E        (decimal SI)
//!             | Ki | Mi | Gi | Ti | Pi | Ei                   (binary SI)
//!             | (e | E) [+-] digits                           (decimal exponent)
//! ```
//!
//! Like Kubernetes, the value is kept with nano (10⁻⁹) precision, rounding
//! any finer fraction *up* (away from zero), so a non-zero request never
//! becomes zero. [`ParsedQuantity::value`] and [`ParsedQuantity::milli_value`]
//! round up too, as Kubernetes' `Value()` and `MilliValue()` do.
//!
//! Differences from Kubernetes, all stricter: a number needs at least one
//! digit (Kubernetes' scanner reads `Mi` and `.` as zero), and a quantity
//! whose `value()` does not fit an `i64` is refused instead of being capped.
//! No I/O here.

use super::error::SpecError;
use super::types::Quantity;
use std::cmp::Ordering;

const NANOS_PER_UNIT: u128 = 1_000_000_000;
const NANOS_PER_MILLI: u128 = 1_000_000;

/// How a quantity was written (the suffix family).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuantityFormat {
    /// No suffix or `n u m k M G T P E`.
    DecimalSi,
    /// `Ki Mi Gi Ti Pi Ei`.
    BinarySi,
    /// `e3`, `E-2`.
    DecimalExponent,
}

/// A parsed quantity: sign and magnitude in nano units (rounded up).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParsedQuantity {
    negative: bool,
    nanos: u128,
    format: QuantityFormat,
}

impl Quantity {
    /// Parses a quantity string (see the module docs). The error has an
    /// empty path; callers that know the field put it in front with
    /// [`SpecError::under`].
    pub fn parse(text: &str) -> Result<ParsedQuantity, SpecError> {
        parse(text)
    }

    /// Parses this quantity.
    pub fn parsed(&self) -> Result<ParsedQuantity, SpecError> {
        parse(&self.0)
    }
}

impl ParsedQuantity {
    /// The value in whole units, rounded up (away from zero): memory in bytes.
    /// `128Mi` → 134217728, `1G` → 1000000000, `0.5` → 1.
    pub fn value(&self) -> i64 {
        // parse() guarantees the whole-unit value fits an i64.
        self.signed(ceil_div(self.nanos, NANOS_PER_UNIT))
    }

    /// The value in thousandths, rounded up (away from zero): cpu in
    /// millicores. `250m` → 250, `0.5` → 500, `1` → 1000. Saturates at
    /// `i64::MAX`/`i64::MIN` for values above about 9.2e15 units.
    pub fn milli_value(&self) -> i64 {
        self.signed(ceil_div(self.nanos, NANOS_PER_MILLI))
    }

    /// The exact value in nano units (Kubernetes' internal precision).
    pub fn nano_value(&self) -> i128 {
        // nanos <= i64::MAX * 1e9 < i128::MAX, checked by parse().
        let n = self.nanos as i128;
        if self.negative { -n } else { n }
    }

    pub fn is_negative(&self) -> bool {
        self.negative
    }

    pub fn is_zero(&self) -> bool {
        self.nanos == 0
    }

    pub fn format(&self) -> QuantityFormat {
        self.format
    }

    fn signed(&self, magnitude: u128) -> i64 {
        let m = i64::try_from(magnitude).unwrap_or(i64::MAX);
        if self.negative { -m } else { m }
    }
}

impl PartialOrd for ParsedQuantity {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for ParsedQuantity {
    /// Compares values (the format does not matter: `1Ki` == `1024`).
    fn cmp(&self, other: &Self) -> Ordering {
        self.nano_value().cmp(&other.nano_value())
    }
}

fn ceil_div(a: u128, b: u128) -> u128 {
    a / b + u128::from(a % b != 0)
}

/// Reads the suffix: (binary exponent, decimal exponent, format).
fn interpret_suffix(suffix: &str) -> Option<(u32, i128, QuantityFormat)> {
    use QuantityFormat::*;
    let decimal = |e: i128| Some((0, e, DecimalSi));
    let binary = |e: u32| Some((e, 0, BinarySi));
    match suffix {
        "n" => decimal(-9),
        "u" => decimal(-6),
        "m" => decimal(-3),
        "" => decimal(0),
        "k" => decimal(3),
        "M" => decimal(6),
        "G" => decimal(9),
        "T" => decimal(12),
        "P" => decimal(15),
        "E" => decimal(18),
        "Ki" => binary(10),
        "Mi" => binary(20),
        "Gi" => binary(30),
        "Ti" => binary(40),
        "Pi" => binary(50),
        "Ei" => binary(60),
        _ => {
            let rest = suffix
                .strip_prefix('e')
                .or_else(|| suffix.strip_prefix('E'))?;
            let digits = rest
                .strip_prefix('+')
                .or_else(|| rest.strip_prefix('-'))
                .unwrap_or(rest);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            // Like Go's strconv.ParseInt(.., 10, 64): out of range is an error.
            let exp: i64 = rest.parse().ok()?;
            Some((0, i128::from(exp), DecimalExponent))
        }
    }
}

fn parse(text: &str) -> Result<ParsedQuantity, SpecError> {
    let fail = |why: &str| SpecError::invalid("", format!("invalid quantity {text:?}: {why}"));
    if text.is_empty() {
        return Err(fail("empty"));
    }
    let bytes = text.as_bytes();
    let mut pos = 0;
    let negative = match bytes[0] {
        b'-' => {
            pos = 1;
            true
        }
        b'+' => {
            pos = 1;
            false
        }
        _ => false,
    };
    let digits_end = |from: usize| {
        let mut i = from;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        i
    };
    let int_end = digits_end(pos);
    let int_part = &text[pos..int_end];
    pos = int_end;
    let mut frac_part = "";
    if bytes.get(pos) == Some(&b'.') {
        let frac_end = digits_end(pos + 1);
        frac_part = &text[pos + 1..frac_end];
        pos = frac_end;
    }
    if int_part.is_empty() && frac_part.is_empty() {
        return Err(fail("expected a number"));
    }
    let suffix = &text[pos..];
    let (bin_exp, dec_exp, format) =
        interpret_suffix(suffix).ok_or_else(|| fail(&format!("unknown suffix {suffix:?}")))?;

    // value = digits × 2^bin_exp × 10^exp10, computed in nano units.
    let mut digits: Vec<u8> = int_part
        .bytes()
        .chain(frac_part.bytes())
        .map(|b| b - b'0')
        .skip_while(|&d| d == 0)
        .collect();
    let mut exp10 = dec_exp - frac_part.len() as i128 + 9;
    while digits.last() == Some(&0) {
        digits.pop();
        exp10 += 1;
    }
    let nanos = if digits.is_empty() {
        0
    } else {
        times_power_of_two(&mut digits, bin_exp);
        scale_round_up(&digits, exp10).ok_or_else(|| fail("too large"))?
    };
    if ceil_div(nanos, NANOS_PER_UNIT) > i64::MAX as u128 {
        return Err(fail("too large"));
    }
    Ok(ParsedQuantity {
        negative: negative && nanos != 0,
        nanos,
        format,
    })
}

/// Multiplies a big-endian decimal digit vector by 2^exp in place.
fn times_power_of_two(digits: &mut Vec<u8>, exp: u32) {
    for _ in 0..exp {
        let mut carry = 0u8;
        for d in digits.iter_mut().rev() {
            let v = *d * 2 + carry;
            *d = v % 10;
            carry = v / 10;
        }
        if carry != 0 {
            digits.insert(0, carry);
        }
    }
}

/// `ceil(digits × 10^exp10)` as an integer, or `None` if it overflows u128.
fn scale_round_up(digits: &[u8], exp10: i128) -> Option<u128> {
    let accumulate = |ds: &[u8]| {
        ds.iter().try_fold(0u128, |acc, &d| {
            acc.checked_mul(10)?.checked_add(u128::from(d))
        })
    };
    if exp10 >= 0 {
        // 40 digits already exceed u128; stop before a huge loop.
        if digits.len() as i128 + exp10 > 40 {
            return None;
        }
        let mut v = accumulate(digits)?;
        for _ in 0..exp10 {
            v = v.checked_mul(10)?;
        }
        Some(v)
    } else {
        let drop = usize::try_from(-exp10).unwrap_or(usize::MAX);
        if drop >= digits.len() {
            // A non-zero fraction below one nano: rounds up to one nano.
            return Some(1);
        }
        let (whole, fraction) = digits.split_at(digits.len() - drop);
        let v = accumulate(whole)?;
        let round_up = fraction.iter().any(|&d| d != 0);
        v.checked_add(u128::from(round_up))
    }
}
