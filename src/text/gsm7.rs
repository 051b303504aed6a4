//! GSM 03.38 (3GPP TS 23.038) default alphabet and its extension table:
//! character ⇄ septet lookup, unpacked coding (one septet per octet, the
//! usual SMPP form under data_coding 0) and packed 7-bit coding with the fill
//! bits that follow a UDH.

/// The escape septet that announces a character from the extension table.
pub const ESC: u8 = 0x1B;

/// Septet → character for the default alphabet. Septet 0x1B is the escape
/// itself and never maps to a character on its own.
const BASIC: [char; 128] = [
    '\u{0040}', '\u{00A3}', '\u{0024}', '\u{00A5}', '\u{00E8}', '\u{00E9}', '\u{00F9}', '\u{00EC}',
    '\u{00F2}', '\u{00C7}', '\u{000A}', '\u{00D8}', '\u{00F8}', '\u{000D}', '\u{00C5}', '\u{00E5}',
    '\u{0394}', '\u{005F}', '\u{03A6}', '\u{0393}', '\u{039B}', '\u{03A9}', '\u{03A0}', '\u{03A8}',
    '\u{03A3}', '\u{0398}', '\u{039E}', '\u{001B}', '\u{00C6}', '\u{00E6}', '\u{00DF}', '\u{00C9}',
    '\u{0020}', '\u{0021}', '\u{0022}', '\u{0023}', '\u{00A4}', '\u{0025}', '\u{0026}', '\u{0027}',
    '\u{0028}', '\u{0029}', '\u{002A}', '\u{002B}', '\u{002C}', '\u{002D}', '\u{002E}', '\u{002F}',
    '\u{0030}', '\u{0031}', '\u{0032}', '\u{0033}', '\u{0034}', '\u{0035}', '\u{0036}', '\u{0037}',
    '\u{0038}', '\u{0039}', '\u{003A}', '\u{003B}', '\u{003C}', '\u{003D}', '\u{003E}', '\u{003F}',
    '\u{00A1}', '\u{0041}', '\u{0042}', '\u{0043}', '\u{0044}', '\u{0045}', '\u{0046}', '\u{0047}',
    '\u{0048}', '\u{0049}', '\u{004A}', '\u{004B}', '\u{004C}', '\u{004D}', '\u{004E}', '\u{004F}',
    '\u{0050}', '\u{0051}', '\u{0052}', '\u{0053}', '\u{0054}', '\u{0055}', '\u{0056}', '\u{0057}',
    '\u{0058}', '\u{0059}', '\u{005A}', '\u{00C4}', '\u{00D6}', '\u{00D1}', '\u{00DC}', '\u{00A7}',
    '\u{00BF}', '\u{0061}', '\u{0062}', '\u{0063}', '\u{0064}', '\u{0065}', '\u{0066}', '\u{0067}',
    '\u{0068}', '\u{0069}', '\u{006A}', '\u{006B}', '\u{006C}', '\u{006D}', '\u{006E}', '\u{006F}',
    '\u{0070}', '\u{0071}', '\u{0072}', '\u{0073}', '\u{0074}', '\u{0075}', '\u{0076}', '\u{0077}',
    '\u{0078}', '\u{0079}', '\u{007A}', '\u{00E4}', '\u{00F6}', '\u{00F1}', '\u{00FC}', '\u{00E0}',
];

/// Extension table: septet after ESC → character. Each costs two septets.
const EXTENSION: [(u8, char); 10] = [
    (0x0A, '\u{000C}'),
    (0x14, '^'),
    (0x28, '{'),
    (0x29, '}'),
    (0x2F, '\\'),
    (0x3C, '['),
    (0x3D, '~'),
    (0x3E, ']'),
    (0x40, '|'),
    (0x65, '€'),
];

/// Where a character lives in the GSM alphabet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GsmChar {
    /// One septet of the default alphabet.
    Basic(u8),
    /// ESC followed by this septet (two septets on the air).
    Extended(u8),
}

impl GsmChar {
    /// Septets this character costs: 1 or 2.
    pub fn cost(self) -> usize {
        match self {
            GsmChar::Basic(_) => 1,
            GsmChar::Extended(_) => 2,
        }
    }
}

/// Looks a character up. `ç` is accepted for septet 0x09 as well as `Ç`
/// (3GPP says `Ç`; Unicode's GSM0338.TXT says `ç`), so both encode.
pub fn lookup(c: char) -> Option<GsmChar> {
    // Most text is Latin-1: one table read instead of a search of the
    // alphabet (it was 2 % of the CPU of a throughput run).
    match LATIN1.get(c as usize) {
        Some(&NOT_GSM) => None,
        Some(&s) if s & EXTENDED != 0 => Some(GsmChar::Extended(s & !EXTENDED)),
        Some(&s) => Some(GsmChar::Basic(s)),
        None => search(c),
    }
}

/// [`lookup`] by searching the tables (the code points above Latin-1, and
/// the source of [`LATIN1`]).
const fn search(c: char) -> Option<GsmChar> {
    if c == 'ç' {
        return Some(GsmChar::Basic(0x09));
    }
    if c == '\u{1B}' {
        return None;
    }
    let mut i = 0;
    while i < BASIC.len() {
        if BASIC[i] == c {
            // The table has 128 entries, so the index fits a septet.
            return Some(GsmChar::Basic(i as u8));
        }
        i += 1;
    }
    let mut i = 0;
    while i < EXTENSION.len() {
        if EXTENSION[i].1 == c {
            return Some(GsmChar::Extended(EXTENSION[i].0));
        }
        i += 1;
    }
    None
}

/// A [`LATIN1`] entry for a character outside the alphabet.
const NOT_GSM: u8 = 0xFF;
/// Set in a [`LATIN1`] entry whose septet is from the extension table.
const EXTENDED: u8 = 0x80;

/// [`search`] for every code point below 256: the septet, with
/// [`EXTENDED`] set for the extension table, or [`NOT_GSM`].
const LATIN1: [u8; 256] = {
    let mut t = [NOT_GSM; 256];
    let mut i = 0;
    while i < t.len() {
        if let Some(c) = char::from_u32(i as u32) {
            t[i] = match search(c) {
                Some(GsmChar::Basic(s)) => s,
                Some(GsmChar::Extended(s)) => s | EXTENDED,
                None => NOT_GSM,
            };
        }
        i += 1;
    }
    t
};

/// Whether every character of `text` is in the GSM alphabet.
pub fn fits(text: &str) -> bool {
    text.chars().all(|c| lookup(c).is_some())
}

/// Septets `text` costs, or `None` if a character is not in the alphabet.
pub fn septet_len(text: &str) -> Option<usize> {
    text.chars().map(|c| lookup(c).map(GsmChar::cost)).sum()
}

/// Appends the unpacked septets of `c` to `out`; false if `c` is not GSM.
pub fn push_char(c: char, out: &mut Vec<u8>) -> bool {
    match lookup(c) {
        Some(GsmChar::Basic(s)) => out.push(s),
        Some(GsmChar::Extended(s)) => out.extend_from_slice(&[ESC, s]),
        None => return false,
    }
    true
}

/// Encodes `text` as unpacked septets (one per octet); `None` if a
/// character is not in the alphabet.
pub fn encode_unpacked(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len());
    for c in text.chars() {
        if !push_char(c, &mut out) {
            return None;
        }
    }
    Some(out)
}

/// Why unpacked septets did not decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Gsm7Error {
    /// An octet had its high bit set, so it is not a septet.
    #[error("octet {value:#04x} at offset {offset} is not a septet")]
    NotASeptet {
        /// Offset in the input.
        offset: usize,
        /// The octet.
        value: u8,
    },
}

/// Decodes unpacked septets. '@' is 0x00: the input is never NUL-scanned.
/// An ESC followed by a septet the extension table does not define shows
/// the default-alphabet character (3GPP TS 23.038 §6.2.1.1); a trailing
/// ESC is dropped. Returns the text and whether anything was dropped.
///
/// # Errors
/// [`Gsm7Error::NotASeptet`] when an octet is above 0x7F.
pub fn decode_unpacked(septets: &[u8]) -> Result<(String, bool), Gsm7Error> {
    if let Some(offset) = septets.iter().position(|&b| b > 0x7F) {
        return Err(Gsm7Error::NotASeptet {
            offset,
            value: septets[offset],
        });
    }
    let mut out = String::with_capacity(septets.len());
    let mut lossy = false;
    let mut it = septets.iter().copied();
    while let Some(s) = it.next() {
        if s == ESC {
            match it.next() {
                Some(x) => match EXTENSION.iter().find(|&&(e, _)| e == x) {
                    Some(&(_, c)) => out.push(c),
                    None if x == ESC => out.push(' '),
                    None => out.push(BASIC[usize::from(x & 0x7F)]),
                },
                None => lossy = true,
            }
        } else {
            out.push(BASIC[usize::from(s & 0x7F)]);
        }
    }
    Ok((out, lossy))
}

/// Fill bits needed after a UDH of `udh_octets` octets (UDHL included) so
/// that the first septet starts on a septet boundary.
pub fn fill_bits(udh_octets: usize) -> usize {
    (7 - (udh_octets * 8) % 7) % 7
}

/// Packs septets LSB-first, starting `fill` bits into the first octet.
///
/// When the last octet would have 7 spare bits, they carry a CR, as
/// 3GPP TS 23.038 §6.1.2.3.1 asks, so the receiver does not read an '@'.
pub fn pack(septets: &[u8], fill: usize) -> Vec<u8> {
    let bits = fill + septets.len() * 7;
    let mut out = vec![0u8; bits.div_ceil(8)];
    let mut put = |pos: usize, s: u8| {
        let (i, sh) = (pos / 8, pos % 8);
        let v = u16::from(s & 0x7F) << sh;
        if let Some(b) = out.get_mut(i) {
            *b |= (v & 0xFF) as u8;
        }
        if v > 0xFF {
            if let Some(b) = out.get_mut(i + 1) {
                *b |= (v >> 8) as u8;
            }
        }
    };
    for (n, &s) in septets.iter().enumerate() {
        put(fill + n * 7, s);
    }
    if bits % 8 == 1 {
        put(bits, 0x0D);
    }
    out
}

/// Unpacks septets from `octets`, skipping `fill` leading bits. A CR that
/// fills the last 7 bits exactly is taken as padding and dropped (so a text
/// that really ends with CR on that boundary loses it: the ambiguity
/// 3GPP TS 23.038 §6.1.2.3.1 describes).
pub fn unpack(octets: &[u8], fill: usize) -> Vec<u8> {
    let bits = (octets.len() * 8).saturating_sub(fill);
    let n = bits / 7;
    let mut out = Vec::with_capacity(n);
    for k in 0..n {
        let pos = fill + k * 7;
        let (i, sh) = (pos / 8, pos % 8);
        let lo = u16::from(octets.get(i).copied().unwrap_or(0));
        let hi = u16::from(octets.get(i + 1).copied().unwrap_or(0));
        out.push((((lo | (hi << 8)) >> sh) & 0x7F) as u8);
    }
    if n > 0 && (fill + n * 7) % 8 == 0 && out.last() == Some(&0x0D) && (fill + n * 7) > 7 {
        // Only a pad when the previous septets left exactly 7 bits.
        if (fill + (n - 1) * 7) % 8 == 1 {
            out.pop();
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_latin1_table_answers_as_the_search_of_the_alphabet_does() {
        let all = (0..0x3000u32).chain([0x20AC, 0xFFFD, 0x1F600]);
        for c in all.filter_map(char::from_u32) {
            assert_eq!(lookup(c), search(c), "{c:?}");
        }
        assert_eq!(lookup('€'), Some(GsmChar::Extended(0x65)));
        assert_eq!(lookup('{'), Some(GsmChar::Extended(0x28)));
        assert_eq!(lookup('Ç'), Some(GsmChar::Basic(0x09)));
        assert_eq!(lookup('ç'), Some(GsmChar::Basic(0x09)));
        assert_eq!(lookup('\u{1B}'), None);
        assert_eq!(lookup('Ω'), Some(GsmChar::Basic(0x15)));
    }

    #[derive(serde::Deserialize)]
    struct Entry {
        septet: u8,
        char: String,
    }
    #[derive(serde::Deserialize)]
    struct Table {
        basic: Vec<Entry>,
        extension: Vec<Entry>,
    }

    fn table() -> Table {
        serde_json::from_str(include_str!("testdata/gsm0338.json")).unwrap()
    }

    #[test]
    fn can_round_trip_every_basic_mapping_in_the_vectors() {
        let t = table();
        assert_eq!(t.basic.len(), 127);
        for e in t.basic {
            let c = e.char.chars().next().unwrap();
            assert_eq!(lookup(c), Some(GsmChar::Basic(e.septet)), "{c:?}");
            let (back, lossy) = decode_unpacked(&[e.septet]).unwrap();
            assert_eq!(back, e.char);
            assert!(!lossy);
        }
    }

    #[test]
    fn can_round_trip_every_extension_mapping_in_the_vectors() {
        let t = table();
        assert_eq!(t.extension.len(), 10);
        for e in t.extension {
            let c = e.char.chars().next().unwrap();
            assert_eq!(lookup(c), Some(GsmChar::Extended(e.septet)), "{c:?}");
            assert_eq!(encode_unpacked(&e.char).unwrap(), vec![ESC, e.septet]);
            assert_eq!(decode_unpacked(&[ESC, e.septet]).unwrap().0, e.char);
        }
    }

    #[test]
    fn both_cedillas_encode_to_septet_9() {
        assert_eq!(encode_unpacked("Çç").unwrap(), vec![9, 9]);
        assert_eq!(decode_unpacked(&[9]).unwrap().0, "Ç");
    }

    #[test]
    fn at_sign_is_zero_and_never_truncates() {
        let s = encode_unpacked("@a@b@").unwrap();
        assert_eq!(s, vec![0, 0x61, 0, 0x62, 0]);
        assert_eq!(decode_unpacked(&s).unwrap().0, "@a@b@");
    }

    #[test]
    fn rejects_octets_above_0x7f() {
        assert_eq!(
            decode_unpacked(&[0x41, 0x80]),
            Err(Gsm7Error::NotASeptet {
                offset: 1,
                value: 0x80
            })
        );
    }

    #[test]
    fn trailing_escape_is_dropped_and_flagged() {
        assert_eq!(decode_unpacked(&[0x41, ESC]).unwrap(), ("A".into(), true));
    }

    #[test]
    fn packs_the_spec_example_hello() {
        // "hellohello" packs to E8329BFD4697D9EC37 (3GPP TS 23.038 examples).
        let s = encode_unpacked("hellohello").unwrap();
        let p = pack(&s, 0);
        assert_eq!(
            p,
            vec![0xE8, 0x32, 0x9B, 0xFD, 0x46, 0x97, 0xD9, 0xEC, 0x37]
        );
        assert_eq!(unpack(&p, 0), s);
    }

    #[test]
    fn seven_septets_pad_with_cr_and_unpack_without_it() {
        let s = encode_unpacked("1234567").unwrap();
        let p = pack(&s, 0);
        assert_eq!(p.len(), 7);
        assert_eq!(p[6] >> 1, 0x0D);
        assert_eq!(unpack(&p, 0), s);
    }

    #[test]
    fn fill_bits_match_udh_sizes() {
        assert_eq!(fill_bits(6), 1);
        assert_eq!(fill_bits(7), 0);
        assert_eq!(fill_bits(0), 0);
    }

    #[test]
    fn can_round_trip_packed_with_fill() {
        for fill in 0..7 {
            for n in 0..20 {
                let s: Vec<u8> = (0..n).map(|i| (i * 13 % 127) as u8 + 1).collect();
                assert_eq!(unpack(&pack(&s, fill), fill), s, "fill {fill} n {n}");
            }
        }
    }
}
