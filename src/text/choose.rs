//! Which coding a text goes out in, per carrier and service options, and the
//! optional transliteration of typographic characters to GSM.
//!
//! The automatic choice, in order (see `CARRIERS.md` §4):
//! 1. if the carrier wants texts containing '@' as UCS-2 and the text has
//!    one: UCS-2;
//! 2. the carrier's data_coding 0 alphabet ([`Dcs0`]) when every character
//!    is in GSM 03.38 *and* in that alphabet (so a Latin-1 or ASCII dcs 0
//!    carrier never gets a character its on-air GSM conversion would drop);
//! 3. IA5 (dcs 1), only if the carrier enables it, when the text is ASCII;
//! 4. Latin-1 (dcs 3), only if the carrier enables it, when the text is
//!    Latin-1;
//! 5. if the service transliterates and that changes the text, steps 2–4
//!    again on the transliterated text;
//! 6. UCS-2 (dcs 8) of the original text.

use std::borrow::Cow;

use super::{gsm7, ia5, latin1};

/// What data_coding 0 means on a carrier ("SMSC default alphabet").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Dcs0 {
    /// GSM 03.38, unpacked: one septet per octet (the usual case).
    #[default]
    Gsm,
    /// GSM 03.38 packed 7-bit (rarely accepted over SMPP).
    GsmPacked,
    /// ISO-8859-1.
    Latin1,
    /// US-ASCII / IA5.
    Ascii,
}

/// The character coding of a planned or counted text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Encoding {
    /// GSM 03.38, one septet per octet.
    #[serde(rename = "gsm7")]
    Gsm7,
    /// GSM 03.38 packed 7-bit.
    #[serde(rename = "gsm7_packed")]
    Gsm7Packed,
    /// ISO-8859-1 octets.
    #[serde(rename = "latin1")]
    Latin1,
    /// US-ASCII octets.
    #[serde(rename = "ia5")]
    Ia5,
    /// UTF-16 big-endian, no BOM.
    #[serde(rename = "ucs2")]
    Ucs2,
}

impl Encoding {
    /// The name used in `count` answers and error messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Encoding::Gsm7 => "gsm7",
            Encoding::Gsm7Packed => "gsm7_packed",
            Encoding::Latin1 => "latin1",
            Encoding::Ia5 => "ia5",
            Encoding::Ucs2 => "ucs2",
        }
    }
}

impl std::fmt::Display for Encoding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How the carrier counts a text's length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UnitClass {
    /// GSM septets (an extension character costs 2): everything that goes
    /// under dcs 0 or 1, because the SMSC sends it as GSM 7-bit on the air.
    Septet,
    /// Octets: Latin-1 under dcs 3 (8-bit limits, 140 per SMS).
    Octet,
    /// UTF-16 code units.
    Utf16,
}

impl UnitClass {
    /// Name of one unit, for messages.
    pub(crate) fn name(self) -> &'static str {
        match self {
            UnitClass::Septet => "septets",
            UnitClass::Octet => "octets",
            UnitClass::Utf16 => "utf-16 units",
        }
    }
}

/// The outcome of the choice.
#[derive(Debug, Clone)]
pub(crate) struct Choice<'a> {
    pub(crate) encoding: Encoding,
    pub(crate) data_coding: u8,
    pub(crate) class: UnitClass,
    pub(crate) text: Cow<'a, str>,
    pub(crate) transliterated: bool,
}

impl Choice<'_> {
    /// Units `c` costs.
    pub(crate) fn cost(&self, c: char) -> usize {
        match self.class {
            UnitClass::Septet => gsm7::lookup(c).map_or(1, gsm7::GsmChar::cost),
            UnitClass::Octet => 1,
            UnitClass::Utf16 => c.len_utf16(),
        }
    }

    /// Appends the octets of `c` (unpacked septets for GSM).
    pub(crate) fn push(&self, c: char, out: &mut Vec<u8>) {
        match self.encoding {
            Encoding::Gsm7 | Encoding::Gsm7Packed => {
                gsm7::push_char(c, out);
            }
            Encoding::Latin1 => out.extend(latin1::byte(c)),
            Encoding::Ia5 => out.extend(ia5::byte(c)),
            Encoding::Ucs2 => super::ucs2::push_char(c, out),
        }
    }
}

/// Options that drive the choice (a subset of `PlanOptions`).
pub(crate) struct ChoiceOptions {
    pub(crate) dcs0: Dcs0,
    pub(crate) allow_latin1: bool,
    pub(crate) allow_ia5: bool,
    pub(crate) at_as_ucs2: bool,
    pub(crate) transliterate: bool,
}

fn single_byte(text: &str, o: &ChoiceOptions) -> Option<(Encoding, u8, UnitClass)> {
    let gsm = gsm7::fits(text);
    let dcs0 = match o.dcs0 {
        Dcs0::Gsm if gsm => Some(Encoding::Gsm7),
        Dcs0::GsmPacked if gsm => Some(Encoding::Gsm7Packed),
        Dcs0::Latin1 if gsm && latin1::fits(text) => Some(Encoding::Latin1),
        Dcs0::Ascii if gsm && ia5::fits(text) => Some(Encoding::Ia5),
        _ => None,
    };
    if let Some(e) = dcs0 {
        return Some((e, 0, UnitClass::Septet));
    }
    if o.allow_ia5 && ia5::fits(text) {
        return Some((Encoding::Ia5, 1, UnitClass::Septet));
    }
    if o.allow_latin1 && latin1::fits(text) {
        return Some((Encoding::Latin1, 3, UnitClass::Octet));
    }
    None
}

/// Chooses the coding for `text` (see the module docs for the order).
pub(crate) fn choose<'a>(text: &'a str, o: &ChoiceOptions) -> Choice<'a> {
    let ucs2 = |text: Cow<'a, str>| Choice {
        encoding: Encoding::Ucs2,
        data_coding: 8,
        class: UnitClass::Utf16,
        text,
        transliterated: false,
    };
    if o.at_as_ucs2 && text.contains('@') {
        return ucs2(Cow::Borrowed(text));
    }
    if let Some((encoding, data_coding, class)) = single_byte(text, o) {
        return Choice {
            encoding,
            data_coding,
            class,
            text: Cow::Borrowed(text),
            transliterated: false,
        };
    }
    if o.transliterate {
        if let Some(t) = transliterate(text) {
            if let Some((encoding, data_coding, class)) = single_byte(&t, o) {
                return Choice {
                    encoding,
                    data_coding,
                    class,
                    text: Cow::Owned(t),
                    transliterated: true,
                };
            }
        }
    }
    ucs2(Cow::Borrowed(text))
}

/// The GSM replacement for a typographic character, if there is one.
fn replacement(c: char) -> Option<&'static str> {
    Some(match c {
        '\u{2018}' | '\u{2019}' | '\u{201A}' | '\u{201B}' | '\u{2032}' | '\u{00B4}' | '`' => "'",
        '\u{201C}' | '\u{201D}' | '\u{201E}' | '\u{201F}' | '\u{2033}' | '\u{00AB}'
        | '\u{00BB}' => "\"",
        '\u{2010}'..='\u{2015}' | '\u{2212}' => "-",
        '\u{2026}' => "...",
        '\u{00A0}' | '\u{2000}'..='\u{200A}' | '\u{202F}' | '\u{205F}' | '\u{3000}' | '\t' => " ",
        '\u{00AD}' | '\u{200B}' | '\u{2060}' | '\u{FEFF}' => "",
        _ => return None,
    })
}

/// Replaces curly quotes, dashes, the ellipsis, NBSP and other typographic
/// spaces (and drops soft hyphens and zero-width spaces) with GSM
/// characters. `None` when nothing changed.
pub fn transliterate(text: &str) -> Option<String> {
    if !text.chars().any(|c| replacement(c).is_some()) {
        return None;
    }
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match replacement(c) {
            Some(r) => out.push_str(r),
            None => out.push(c),
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> ChoiceOptions {
        ChoiceOptions {
            dcs0: Dcs0::Gsm,
            allow_latin1: false,
            allow_ia5: false,
            at_as_ucs2: false,
            transliterate: false,
        }
    }

    #[test]
    fn gsm_text_goes_as_gsm_else_ucs2() {
        assert_eq!(choose("Hi {there} €5", &opts()).encoding, Encoding::Gsm7);
        let c = choose("こんにちは", &opts());
        assert_eq!((c.encoding, c.data_coding), (Encoding::Ucs2, 8));
    }

    #[test]
    fn never_sends_dcs_1_or_3_unless_enabled() {
        let c = choose("naïve `x`", &opts());
        assert_eq!(c.data_coding, 8);
        let mut o = opts();
        o.allow_ia5 = true;
        assert_eq!(choose("`x`", &o).data_coding, 1);
        o.allow_latin1 = true;
        let c = choose("naïve", &o);
        assert_eq!((c.encoding, c.data_coding), (Encoding::Latin1, 3));
    }

    #[test]
    fn at_sign_goes_as_ucs2_when_the_carrier_asks() {
        let mut o = opts();
        assert_eq!(choose("a@b", &o).data_coding, 0);
        o.at_as_ucs2 = true;
        assert_eq!(choose("a@b", &o).data_coding, 8);
        assert_eq!(choose("ab", &o).data_coding, 0);
    }

    #[test]
    fn latin1_dcs0_carrier_gets_ucs2_for_gsm_chars_outside_latin1() {
        let mut o = opts();
        o.dcs0 = Dcs0::Latin1;
        let c = choose("café", &o);
        assert_eq!((c.encoding, c.data_coding), (Encoding::Latin1, 0));
        assert_eq!(choose("5 €", &o).data_coding, 8);
        assert_eq!(choose("ΔΦ", &o).data_coding, 8);
    }

    #[test]
    fn transliteration_is_off_by_default_and_reported_when_used() {
        let text = "It\u{2019}s \u{201C}ok\u{201D} \u{2014} see\u{2026}\u{00A0}x";
        let c = choose(text, &opts());
        assert_eq!(c.encoding, Encoding::Ucs2);
        assert!(!c.transliterated);
        let mut o = opts();
        o.transliterate = true;
        let c = choose(text, &o);
        assert_eq!(c.encoding, Encoding::Gsm7);
        assert!(c.transliterated);
        assert_eq!(c.text, "It's \"ok\" - see... x");
    }

    #[test]
    fn transliteration_is_not_used_when_it_does_not_reach_gsm() {
        let mut o = opts();
        o.transliterate = true;
        let c = choose("\u{201C}ok\u{201D} 😀", &o);
        assert_eq!(c.encoding, Encoding::Ucs2);
        assert!(!c.transliterated);
        assert_eq!(c.text, "\u{201C}ok\u{201D} 😀");
    }
}
