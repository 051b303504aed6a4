//! Message ids in one normal form, so the id from submit_sm_resp and the id
//! in the receipt compare equal even when one side is hex and the other
//! decimal, zero-padded or in another case.
//!
//! # The rule
//! The *same* function runs on both sides, each with the carrier's
//! [`IdFormat`] for that side (like Kannel's `msg-id-type` bits or Jasmin's
//! `dlr_msg_id_bases`):
//! 1. trim whitespace and NULs;
//! 2. a numeric id (decimal digits read as [`IdFormat::Decimal`], hex
//!    digits read as [`IdFormat::Hex`]) becomes **upper-case hex without
//!    leading zeros** ("0" for zero). The conversion is done on digit
//!    strings, so ids wider than 64 bits (say "9308878062554710043", above
//!    i64::MAX, or 32-hex ids) convert exactly; ids longer than
//!    [`MAX_CONVERTED_LEN`] characters are not converted;
//! 3. anything else (UUIDs, ids with letters beyond F, over-long ids) is
//!    upper-cased and stripped of leading zeros ("0e999f21-…" →
//!    "E999F21-…");
//! 4. [`IdFormat::Raw`] only trims.
//!
//! [`IdFormat::Auto`] reads an all-digit id as decimal and an id with hex
//! letters as hex; an all-digit *hex* id ("12345678" meaning 0x12345678)
//! cannot be told apart, which is why carriers set the format per side.
//! [`match_ids`] tries exact, then normalised, then the other base, and
//! says which one matched so the shell can count fallbacks.

/// How a carrier writes message ids on one side (resp or receipt).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdFormat {
    /// Decimal if all digits, hex if hex digits with letters, else text.
    #[default]
    Auto,
    /// Decimal digits.
    Decimal,
    /// Hex digits (an optional "0x" prefix is dropped).
    Hex,
    /// Compare as sent (trimmed only).
    Raw,
}

/// Longest id converted between bases.
pub const MAX_CONVERTED_LEN: usize = 128;

const HEX: &[u8; 16] = b"0123456789ABCDEF";

fn strip_zeros(s: &str) -> &str {
    let t = s.trim_start_matches('0');
    if t.is_empty() && !s.is_empty() {
        "0"
    } else {
        t
    }
}

/// Decimal digit string → upper-case hex. Every id of up to 38 digits
/// (every SMSC's, in practice: one per receipt) fits a `u128`.
fn dec_to_hex(digits: &str) -> String {
    let digits = strip_zeros(digits);
    match digits.parse::<u128>() {
        Ok(n) => format!("{n:X}"),
        Err(_) => dec_to_hex_long(digits),
    }
}

/// [`dec_to_hex`] of any length, by repeated division by 16.
fn dec_to_hex_long(digits: &str) -> String {
    let mut num: Vec<u8> = strip_zeros(digits).bytes().map(|b| b - b'0').collect();
    if num == [0] {
        return "0".into();
    }
    let mut out = Vec::new();
    let mut next = Vec::with_capacity(num.len());
    while !num.is_empty() {
        let mut rem = 0u32;
        next.clear();
        for &d in &num {
            let cur = rem * 10 + u32::from(d);
            let q = cur / 16;
            rem = cur % 16;
            if !(next.is_empty() && q == 0) {
                next.push(q as u8);
            }
        }
        out.push(HEX[rem as usize]);
        std::mem::swap(&mut num, &mut next);
    }
    out.iter().rev().map(|&b| char::from(b)).collect()
}

fn as_decimal(t: &str) -> Option<String> {
    (!t.is_empty() && t.len() <= MAX_CONVERTED_LEN && t.bytes().all(|b| b.is_ascii_digit()))
        .then(|| dec_to_hex(t))
}

fn as_hex(t: &str) -> Option<String> {
    let t = t
        .strip_prefix("0x")
        .or_else(|| t.strip_prefix("0X"))
        .unwrap_or(t);
    (!t.is_empty() && t.len() <= MAX_CONVERTED_LEN && t.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| strip_zeros(&t.to_ascii_uppercase()).to_owned())
}

fn fallback(t: &str) -> String {
    strip_zeros(&t.to_ascii_uppercase()).to_owned()
}

/// The normal form of `raw` read as `fmt` (see the module docs).
pub fn normalize_id(raw: &str, fmt: IdFormat) -> String {
    let t = raw.trim_matches(|c: char| c.is_whitespace() || c == '\0');
    match fmt {
        IdFormat::Raw => t.to_owned(),
        IdFormat::Decimal => as_decimal(t).unwrap_or_else(|| fallback(t)),
        IdFormat::Hex => as_hex(t).unwrap_or_else(|| fallback(t)),
        IdFormat::Auto => as_decimal(t)
            .or_else(|| as_hex(t))
            .unwrap_or_else(|| fallback(t)),
    }
}

/// How two ids matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IdMatch {
    /// Byte for byte, after trimming.
    Exact,
    /// Equal in normal form with the configured formats.
    Normalized,
    /// Equal only when one side is read in the other base (count it).
    OtherBase,
}

/// Compares the submit_sm_resp id and the receipt id: exact first, then in
/// normal form with each side's format, then trying both bases on both
/// sides. `None` when nothing matches.
pub fn match_ids(resp: &str, resp_fmt: IdFormat, dlr: &str, dlr_fmt: IdFormat) -> Option<IdMatch> {
    let trim = |s: &str| {
        s.trim_matches(|c: char| c.is_whitespace() || c == '\0')
            .to_owned()
    };
    let (a, b) = (trim(resp), trim(dlr));
    if a.is_empty() || b.is_empty() {
        return None;
    }
    if a == b {
        return Some(IdMatch::Exact);
    }
    if normalize_id(&a, resp_fmt) == normalize_id(&b, dlr_fmt) {
        return Some(IdMatch::Normalized);
    }
    let forms = |s: &str| [as_decimal(s), as_hex(s)];
    let fb = forms(&b);
    forms(&a)
        .iter()
        .flatten()
        .any(|x| fb.iter().flatten().any(|y| x == y))
        .then_some(IdMatch::OtherBase)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_resp_and_decimal_receipt_meet() {
        assert_eq!(normalize_id("1A2B3C4D", IdFormat::Hex), "1A2B3C4D");
        // 0x1A2B3C4D is 439041101 (the brief's "439041869" is 0x1A2B3F4D).
        assert_eq!(normalize_id("439041101", IdFormat::Decimal), "1A2B3C4D");
        assert_eq!(normalize_id("439041101", IdFormat::Auto), "1A2B3C4D");
        assert_eq!(normalize_id("439041869", IdFormat::Decimal), "1A2B3F4D");
        assert_eq!(normalize_id("1a2b3c4d", IdFormat::Auto), "1A2B3C4D");
    }

    #[test]
    fn leading_zeros_and_case_do_not_matter() {
        assert_eq!(
            normalize_id("000123", IdFormat::Decimal),
            normalize_id("123", IdFormat::Decimal)
        );
        assert_eq!(normalize_id("000abc", IdFormat::Hex), "ABC");
        assert_eq!(
            normalize_id("0221067780", IdFormat::Decimal),
            normalize_id("221067780", IdFormat::Decimal)
        );
        assert_eq!(normalize_id("0000", IdFormat::Decimal), "0");
        assert_eq!(
            normalize_id("0e999f21-5c3a-4b8e", IdFormat::Auto),
            normalize_id("E999F21-5C3A-4B8E", IdFormat::Auto)
        );
    }

    #[test]
    fn ids_wider_than_64_bits_convert_exactly() {
        // jasmin#586: resp 812FC7470000001B, receipt 9308878062554710043.
        assert_eq!(
            normalize_id("9308878062554710043", IdFormat::Decimal),
            "812FC7470000001B"
        );
        assert_eq!(
            normalize_id("812fc7470000001b", IdFormat::Hex),
            "812FC7470000001B"
        );
        // 2^128 = 0x1_0000...0 (32 zeros).
        let two_128 = "340282366920938463463374607431768211456";
        assert_eq!(
            normalize_id(two_128, IdFormat::Decimal),
            format!("1{}", "0".repeat(32))
        );
    }

    #[test]
    fn dec_to_hex_agrees_with_u128_formatting() {
        for n in [
            0u128,
            1,
            15,
            16,
            255,
            256,
            65535,
            u64::MAX as u128,
            u128::MAX / 3,
        ] {
            assert_eq!(dec_to_hex(&n.to_string()), format!("{n:X}"));
        }
    }

    #[test]
    fn ids_too_long_for_u128_are_converted_by_long_division() {
        // 39 digits and more: past u128::MAX (340282366920938463463374607431768211455).
        assert_eq!(
            dec_to_hex("340282366920938463463374607431768211456"),
            "100000000000000000000000000000000"
        );
        assert_eq!(
            dec_to_hex(&format!("0001{}", "0".repeat(40))),
            "1D6329F1C35CA4BFABB9F5610000000000"
        );
    }

    proptest::proptest! {
        #[test]
        fn both_conversions_agree_on_every_digit_string(d in "[0-9]{1,60}") {
            proptest::prop_assert_eq!(dec_to_hex(&d), dec_to_hex_long(&d));
        }
    }

    #[test]
    fn raw_only_trims() {
        assert_eq!(normalize_id(" 00aB\0", IdFormat::Raw), "00aB");
    }

    #[test]
    fn match_ids_reports_how() {
        assert_eq!(
            match_ids("abc", IdFormat::Auto, "abc", IdFormat::Auto),
            Some(IdMatch::Exact)
        );
        assert_eq!(
            match_ids("1A2B3C4D", IdFormat::Hex, "439041101", IdFormat::Decimal),
            Some(IdMatch::Normalized)
        );
        assert_eq!(
            match_ids("1A2B3C4D", IdFormat::Hex, "439041869", IdFormat::Decimal),
            None
        );
        // All-digit hex resp, carrier misconfigured as Auto on both sides.
        assert_eq!(
            match_ids("12345678", IdFormat::Auto, "305419896", IdFormat::Auto),
            Some(IdMatch::OtherBase)
        );
        assert_eq!(match_ids("1", IdFormat::Auto, "2", IdFormat::Auto), None);
        assert_eq!(match_ids("", IdFormat::Auto, "", IdFormat::Auto), None);
    }
}
