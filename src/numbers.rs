//! Number checks: parse with a default country, normalise to E.164, classify, decide whether SMS can reach it. Pure.
//!
//! The classification is libphonenumber's metadata through the `phonenumber`
//! crate; nothing here guesses from prefixes. [`check`] answers the agent's
//! "can I text this number?" and the `send` precheck; [`normalize_inbound`]
//! turns a deliver_sm `source_addr` with its TON/NPI into the same E.164 key
//! so that a reply finds its conversation.

use std::str::FromStr;

use phonenumber::{Mode, PhoneNumber, Type, country};
use serde::Serialize;

/// Which numbers a service may text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NumberPolicy {
    /// Mobile and fixed-line-or-mobile numbers (default).
    #[default]
    Mobile,
    /// Any valid number (some carriers text landlines).
    Valid,
    /// E.164 syntax only.
    Any,
}

impl FromStr for NumberPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "mobile" => Ok(Self::Mobile),
            "valid" => Ok(Self::Valid),
            "any" => Ok(Self::Any),
            other => Err(format!(
                "must be one of \"mobile\", \"valid\", \"any\", got {other:?}"
            )),
        }
    }
}

/// What the metadata says the number is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NumberKind {
    /// Mobile.
    Mobile,
    /// Fixed line.
    FixedLine,
    /// Cannot be told apart from the number (US, CA, ...).
    FixedLineOrMobile,
    /// Freephone.
    TollFree,
    /// Premium rate.
    PremiumRate,
    /// Shared cost.
    SharedCost,
    /// VoIP.
    Voip,
    /// Personal number.
    PersonalNumber,
    /// Pager.
    Pager,
    /// Universal access number.
    Uan,
    /// Voicemail access.
    Voicemail,
    /// None of the above (or not parsed).
    Unknown,
}

impl NumberKind {
    fn from_type(t: Type) -> Self {
        match t {
            Type::Mobile => Self::Mobile,
            Type::FixedLine => Self::FixedLine,
            Type::FixedLineOrMobile => Self::FixedLineOrMobile,
            Type::TollFree => Self::TollFree,
            Type::PremiumRate => Self::PremiumRate,
            Type::SharedCost => Self::SharedCost,
            Type::Voip => Self::Voip,
            Type::PersonalNumber => Self::PersonalNumber,
            Type::Pager => Self::Pager,
            Type::Uan => Self::Uan,
            Type::Voicemail => Self::Voicemail,
            _ => Self::Unknown,
        }
    }

    /// Words for messages ("a fixed-line number").
    pub fn describe(self) -> &'static str {
        match self {
            Self::Mobile => "a mobile number",
            Self::FixedLine => "a fixed-line number",
            Self::FixedLineOrMobile => "a fixed-line or mobile number",
            Self::TollFree => "a toll-free number",
            Self::PremiumRate => "a premium-rate number",
            Self::SharedCost => "a shared-cost number",
            Self::Voip => "a VoIP number",
            Self::PersonalNumber => "a personal number",
            Self::Pager => "a pager number",
            Self::Uan => "a universal access number",
            Self::Voicemail => "a voicemail access number",
            Self::Unknown => "a number of unknown type",
        }
    }
}

/// Error code when a number cannot be texted: the number is not valid.
pub const INVALID_NUMBER: &str = "invalid_number";
/// Error code when a number cannot be texted: valid, but not a mobile.
pub const NOT_MOBILE: &str = "not_mobile";

/// The answer of [`check`]; the `check_number` socket op returns it as is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NumberCheck {
    /// `+` and digits, when the input could be read as a number.
    pub e164: Option<String>,
    /// ISO 3166 alpha-2 of the number's region, when known.
    pub country: Option<String>,
    /// The metadata's classification.
    #[serde(rename = "type")]
    pub kind: NumberKind,
    /// International format (`+44 7911 123456`), or the input when unreadable.
    pub formatted: String,
    /// True when the service may text it under its policy.
    pub sms: bool,
    /// Why not, for people.
    pub reason: Option<String>,
    /// Why not, for programs: [`INVALID_NUMBER`] or [`NOT_MOBILE`].
    pub code: Option<&'static str>,
}

/// True when `code` is an ISO 3166 alpha-2 region the metadata knows.
pub fn is_known_region(code: &str) -> bool {
    region(code).is_some()
}

fn region(code: &str) -> Option<country::Id> {
    let id = country::Id::from_str(code).ok()?;
    phonenumber::metadata::DATABASE.by_id(id.as_ref())?;
    Some(id)
}

/// Parses `input`; `+`/`00` forms are international, anything else is read as
/// national in `default_country`.
fn parse(input: &str, default_country: Option<country::Id>) -> Option<PhoneNumber> {
    let t = input.trim();
    if t.is_empty() || t.len() > 64 {
        return None;
    }
    let t = match t.strip_prefix("00") {
        Some(rest) if !t.starts_with("000") => format!("+{rest}"),
        _ => t.to_string(),
    };
    phonenumber::parse(default_country, &t).ok()
}

fn e164(n: &PhoneNumber) -> String {
    n.format().mode(Mode::E164).to_string()
}

fn country_of(n: &PhoneNumber) -> Option<String> {
    n.country().id().map(|id| id.as_ref().to_string())
}

/// `+` and digits: separators dropped, a leading `00` read as `+`.
fn clean(s: &str) -> String {
    let kept: String = s
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')' | '/'))
        .collect();
    match kept.strip_prefix("00") {
        Some(rest) => format!("+{rest}"),
        None => kept,
    }
}

/// True for `+` followed by 7 to 15 digits, the first not 0 (the shortest
/// numbers in service, e.g. Niue's, have 7 digits with the country code).
fn is_e164_syntax(s: &str) -> bool {
    let Some(d) = s.strip_prefix('+') else {
        return false;
    };
    (7..=15).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()) && !d.starts_with('0')
}

/// Checks whether a service with `policy` may text `input`, read with
/// `default_country` (ISO alpha-2) when it has no `+`/`00` prefix.
pub fn check(input: &str, default_country: &str, policy: NumberPolicy) -> NumberCheck {
    let default = region(&default_country.to_ascii_uppercase());
    let parsed = parse(input, default);
    let shown = input.trim().to_string();
    let Some(n) = parsed else {
        let cleaned = clean(&shown);
        if policy == NumberPolicy::Any && is_e164_syntax(&cleaned) {
            return NumberCheck {
                formatted: cleaned.clone(),
                e164: Some(cleaned),
                country: None,
                kind: NumberKind::Unknown,
                sms: true,
                reason: None,
                code: None,
            };
        }
        return invalid(shown, None, None, NumberKind::Unknown, default_country);
    };
    let e = e164(&n);
    let country = country_of(&n);
    let formatted = n.format().mode(Mode::International).to_string();
    if n.extension().is_some() {
        return NumberCheck {
            reason: Some(format!(
                "{shown} has an extension; SMS reaches whole numbers only"
            )),
            ..invalid(
                shown.clone(),
                Some(e),
                country,
                NumberKind::Unknown,
                default_country,
            )
        };
    }
    let valid = n.is_valid();
    let kind = if valid {
        NumberKind::from_type(n.number_type(&phonenumber::metadata::DATABASE))
    } else {
        NumberKind::Unknown
    };
    let ok = |e: String, country: Option<String>, formatted: String| NumberCheck {
        e164: Some(e),
        country,
        kind,
        formatted,
        sms: true,
        reason: None,
        code: None,
    };
    match policy {
        NumberPolicy::Any if is_e164_syntax(&e) => ok(e, country, formatted),
        NumberPolicy::Any => invalid(shown, Some(e), country, kind, default_country),
        _ if !valid => invalid(formatted, Some(e), country, kind, default_country),
        NumberPolicy::Valid => ok(e, country, formatted),
        NumberPolicy::Mobile => match kind {
            NumberKind::Mobile | NumberKind::FixedLineOrMobile => ok(e, country, formatted),
            _ => {
                let region = country.as_deref().unwrap_or("an unknown region");
                let reason = format!(
                    "{formatted} is {} in {region}; SMS needs a mobile number",
                    kind.describe()
                );
                NumberCheck {
                    e164: Some(e),
                    country,
                    kind,
                    formatted,
                    sms: false,
                    reason: Some(reason),
                    code: Some(NOT_MOBILE),
                }
            }
        },
    }
}

fn invalid(
    shown: String,
    e164: Option<String>,
    country: Option<String>,
    kind: NumberKind,
    default_country: &str,
) -> NumberCheck {
    let reason = match &country {
        Some(c) => format!("{shown} is not a valid phone number in {c}"),
        None if shown.starts_with('+') || shown.starts_with("00") => {
            format!("{shown} is not a valid phone number")
        }
        None => format!(
            "{shown} is not a valid phone number (read as national in {})",
            default_country.to_ascii_uppercase()
        ),
    };
    NumberCheck {
        e164,
        country,
        kind,
        formatted: shown,
        sms: false,
        reason: Some(reason),
        code: Some(INVALID_NUMBER),
    }
}

/// TON 1: international.
const TON_INTERNATIONAL: u8 = 1;
/// TON 2: national.
const TON_NATIONAL: u8 = 2;

/// Normalises an inbound `source_addr` to the E.164 key conversations are
/// stored under. `ton` 1 is international (digits, tolerating `+` and `00`),
/// 2 national in `default_country`, 0 (unknown) and other numeric TONs are
/// tried as international first when that reads as a valid number, else as
/// national. Alphanumeric (5) and short-code (3) sources, and anything that
/// cannot be a number, give `None`: the caller keeps the raw address.
pub fn normalize_inbound(addr: &str, ton: u8, _npi: u8, default_country: &str) -> Option<String> {
    let a = addr.trim();
    if a.is_empty() || ton == 5 || ton == 3 {
        return None;
    }
    let explicit_intl = a.starts_with('+') || (a.starts_with("00") && !a.starts_with("000"));
    let digits: String = a.chars().filter(|c| c.is_ascii_digit()).collect();
    if digits.is_empty() || a.chars().any(|c| c.is_alphabetic()) {
        return None;
    }
    let default = region(&default_country.to_ascii_uppercase());
    let intl = || {
        let d = if !a.starts_with('+') && a.starts_with("00") {
            &digits[2..]
        } else {
            &digits[..]
        };
        let s = format!("+{d}");
        let n = phonenumber::parse(None, &s).ok();
        (s, n)
    };
    if ton == TON_INTERNATIONAL || explicit_intl {
        let (s, n) = intl();
        return match n {
            Some(n) => Some(e164(&n)),
            None if is_e164_syntax(&s) => Some(s),
            None => None,
        };
    }
    let national = || parse(&digits, default);
    if ton == TON_NATIONAL {
        return national().map(|n| e164(&n));
    }
    // TON unknown: a valid international reading wins, then a valid national
    // one, then whichever parses.
    let (s, n_intl) = intl();
    if let Some(n) = n_intl.as_ref().filter(|n| n.is_valid()) {
        return Some(e164(n));
    }
    let n_nat = national();
    if let Some(n) = n_nat.as_ref().filter(|n| n.is_valid()) {
        return Some(e164(n));
    }
    if let Some(n) = n_intl {
        return Some(e164(&n));
    }
    if let Some(n) = n_nat {
        return Some(e164(&n));
    }
    is_e164_syntax(&s).then_some(s)
}

#[cfg(test)]
mod tests {
    use super::NumberKind as K;
    use super::NumberPolicy::{Any, Mobile, Valid};
    use super::*;

    /// (input, default country, e164, region, kind) as the crate's metadata
    /// (libphonenumber 9.0.33) classifies them.
    const TABLE: &[(&str, &str, &str, &str, NumberKind)] = &[
        ("+44 7400 123456", "GB", "+447400123456", "GB", K::Mobile),
        ("07400 123456", "GB", "+447400123456", "GB", K::Mobile),
        // 07911 12xxxx is allocated to Guernsey in the metadata
        ("+44 7911 123456", "GB", "+447911123456", "GG", K::Mobile),
        (
            "+44 20 7946 0000",
            "GB",
            "+442079460000",
            "GB",
            K::FixedLine,
        ),
        ("0800 123 4567", "GB", "+448001234567", "GB", K::TollFree),
        ("+81 90 1234 5678", "JP", "+819012345678", "JP", K::Mobile),
        ("090-1234-5678", "JP", "+819012345678", "JP", K::Mobile),
        ("03-1234-5678", "JP", "+81312345678", "JP", K::FixedLine),
        ("0120 123 456", "JP", "+81120123456", "JP", K::TollFree),
        (
            "+1 202 456 1111",
            "US",
            "+12024561111",
            "US",
            K::FixedLineOrMobile,
        ),
        (
            "(202) 456-1111",
            "US",
            "+12024561111",
            "US",
            K::FixedLineOrMobile,
        ),
        ("+1 800 642 7676", "US", "+18006427676", "US", K::TollFree),
        ("+49 151 23456789", "DE", "+4915123456789", "DE", K::Mobile),
        ("030 12345678", "DE", "+493012345678", "DE", K::FixedLine),
        ("0800 1234567", "DE", "+498001234567", "DE", K::TollFree),
        ("+61 412 345 678", "AU", "+61412345678", "AU", K::Mobile),
        ("02 9876 5432", "AU", "+61298765432", "AU", K::FixedLine),
        ("1800 123 456", "AU", "+611800123456", "AU", K::TollFree),
    ];

    #[test]
    fn classification_table_matches_the_metadata() {
        for &(input, dc, e164, region, kind) in TABLE {
            let c = check(input, dc, Valid);
            assert_eq!(c.e164.as_deref(), Some(e164), "{input}");
            assert_eq!(c.country.as_deref(), Some(region), "{input}");
            assert_eq!(c.kind, kind, "{input}");
            assert!(c.sms, "{input} is valid, so policy valid accepts it");
        }
    }

    #[test]
    fn mobile_policy_accepts_mobile_and_fixed_line_or_mobile_only() {
        for &(input, dc, _, _, kind) in TABLE {
            let c = check(input, dc, Mobile);
            let expect = matches!(kind, K::Mobile | K::FixedLineOrMobile);
            assert_eq!(c.sms, expect, "{input}: {c:?}");
            if !expect {
                assert_eq!(c.code, Some(NOT_MOBILE), "{input}");
                assert!(
                    c.reason
                        .as_deref()
                        .is_some_and(|r| r.contains("SMS needs a mobile number"))
                );
            }
        }
    }

    #[test]
    fn any_policy_accepts_every_well_formed_number() {
        for &(input, dc, e164, _, _) in TABLE {
            let c = check(input, dc, Any);
            assert!(c.sms, "{input}");
            assert_eq!(c.e164.as_deref(), Some(e164));
        }
    }

    #[test]
    fn a_fixed_line_is_refused_with_what_it_is() {
        let c = check("+44 20 7946 0000", "GB", Mobile);
        assert_eq!(
            c.reason.as_deref(),
            Some("+44 20 7946 0000 is a fixed-line number in GB; SMS needs a mobile number")
        );
        assert_eq!(c.code, Some("not_mobile"));
        assert!(!c.sms);
    }

    #[test]
    fn rejects_invalid_numbers_under_mobile_and_valid() {
        for (input, dc) in [
            ("07700 900123", "GB"), // the reserved drama range
            ("+44 7700 900123", "GB"),
            ("+81 12 345", "JP"),
            ("+49 1", "DE"),
            ("+61 1234", "AU"),
            ("+1 123 456 7890", "US"),
            ("hello", "GB"),
            ("", "GB"),
        ] {
            for p in [Mobile, Valid] {
                let c = check(input, dc, p);
                assert!(!c.sms, "{input} {p:?}: {c:?}");
                assert_eq!(c.code, Some(INVALID_NUMBER), "{input}");
                assert_eq!(c.kind, K::Unknown);
            }
        }
    }

    #[test]
    fn rejects_numbers_with_an_extension() {
        let c = check("+44 7400 123456 ext. 12", "GB", Any);
        assert!(!c.sms);
        assert_eq!(c.code, Some(INVALID_NUMBER));
        assert!(c.reason.unwrap().contains("extension"));
    }

    #[test]
    fn any_policy_checks_syntax_only() {
        assert!(check("07700 900123", "GB", Any).sms);
        assert!(check("+999 1234 5678", "GB", Any).sms);
        assert!(!check("+49 1", "DE", Any).sms);
        assert!(!check("hello", "GB", Any).sms);
        assert!(!check("+1234567890123456", "GB", Any).sms);
    }

    #[test]
    fn check_serializes_with_type_and_code() {
        let v = serde_json::to_value(check("+81 90 1234 5678", "GB", Mobile)).unwrap();
        assert_eq!(v["type"], "mobile");
        assert_eq!(v["e164"], "+819012345678");
        assert_eq!(v["country"], "JP");
        assert_eq!(v["sms"], true);
        let v = serde_json::to_value(check("+1 800 642 7676", "US", Mobile)).unwrap();
        assert_eq!(v["type"], "toll_free");
        assert_eq!(v["code"], "not_mobile");
    }

    #[test]
    fn inbound_japanese_forms_normalise_to_one_key() {
        let key = Some("+819012345678".to_string());
        assert_eq!(normalize_inbound("819012345678", 1, 1, "JP"), key);
        assert_eq!(normalize_inbound("+819012345678", 1, 1, "JP"), key);
        assert_eq!(normalize_inbound("00819012345678", 1, 1, "JP"), key);
        assert_eq!(normalize_inbound("09012345678", 2, 1, "JP"), key);
        assert_eq!(normalize_inbound("09012345678", 0, 0, "JP"), key);
        assert_eq!(normalize_inbound("819012345678", 0, 0, "JP"), key);
        assert_eq!(normalize_inbound("0081 90 1234 5678", 0, 0, "GB"), key);
        assert_eq!(normalize_inbound("+819012345678", 0, 0, "GB"), key);
    }

    #[test]
    fn inbound_matches_what_check_stores() {
        for &(input, dc, e164, _, _) in TABLE {
            let digits = &e164[1..];
            assert_eq!(
                normalize_inbound(digits, 1, 1, dc).as_deref(),
                Some(e164),
                "{input}"
            );
            assert_eq!(
                normalize_inbound(digits, 0, 0, dc).as_deref(),
                Some(e164),
                "{input}"
            );
            assert_eq!(
                check(&normalize_inbound(digits, 1, 1, dc).unwrap(), dc, Any)
                    .e164
                    .as_deref(),
                Some(e164)
            );
        }
        assert_eq!(
            normalize_inbound("07400123456", 2, 1, "GB").as_deref(),
            Some("+447400123456")
        );
        assert_eq!(
            normalize_inbound("07400123456", 0, 1, "GB").as_deref(),
            Some("+447400123456")
        );
    }

    #[test]
    fn inbound_alphanumeric_and_short_code_sources_have_no_e164() {
        assert_eq!(normalize_inbound("ACME", 5, 0, "GB"), None);
        assert_eq!(normalize_inbound("12345", 3, 0, "GB"), None);
        assert_eq!(normalize_inbound("", 1, 1, "GB"), None);
        assert_eq!(normalize_inbound("abc123", 0, 0, "GB"), None);
    }

    #[test]
    fn unknown_default_country_still_reads_international_numbers() {
        assert!(!is_known_region("XX"));
        assert!(is_known_region("JP"));
        let c = check("+81 90 1234 5678", "XX", Mobile);
        assert!(c.sms);
        assert_eq!(
            check("090 1234 5678", "XX", Mobile).code,
            Some(INVALID_NUMBER)
        );
    }

    proptest::proptest! {
        #[test]
        fn never_panics_on_arbitrary_input(input in "[+0-9 ()./#*a-zA-Z-]{0,40}", ton in 0u8..8, dc in "(GB|JP|US|DE|AU|XX|)") {
            for p in [Mobile, Valid, Any] {
                let c = check(&input, &dc, p);
                proptest::prop_assert!(c.sms == c.code.is_none());
            }
            let _ = normalize_inbound(&input, ton, 1, &dc);
        }

        #[test]
        fn never_panics_on_arbitrary_unicode(input in "\\PC{0,30}") {
            let _ = check(&input, "GB", Mobile);
            let _ = normalize_inbound(&input, 0, 0, "JP");
        }
    }
}
