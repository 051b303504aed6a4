//! Inbound text: short_message octets + data_coding (+ UDHI, or SAR TLVs)
//! → text, concatenation data and a lossy flag. Never fails: what does not
//! decode is replaced and flagged.
//!
//! data_coding values (SMPP 3.4 §5.2.19, GSM 03.38 coding groups):
//! 0 → the carrier's [`Dcs0`]; 1 → IA5; 3 → Latin-1; 8 → UCS-2;
//! 2, 4 and other 8-bit data → Latin-1, flagged lossy; 5, 6, 7, 9, 0x0A,
//! 0x0D, 0x0E (JIS, Cyrillic, Hebrew, pictogram, ISO-2022-JP, Kanji, KS C
//! 5601) → Latin-1, flagged lossy (not supported); 0x10..=0x3F by the
//! alphabet bits 3..2 (compressed ones flagged lossy); 0xC0..=0xDF GSM;
//! 0xE0..=0xEF UCS-2; 0xF0..=0xFF GSM or 8-bit by bit 2.
//!
//! When dcs-0 text is not valid GSM (an octet above 0x7F), it is tried as
//! UCS-2 (some MNOs send UCS-2 under dcs 0) and flagged lossy; the shell
//! counts that quirk.

use super::udh::{self, ConcatInfo};
use super::{Dcs0, gsm7, ia5, latin1, ucs2};

/// A decoded short_message.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Decoded {
    /// The text, with U+FFFD where something did not decode.
    pub text: String,
    /// Concatenation data from the UDH or SAR TLVs.
    pub concat: Option<ConcatInfo>,
    /// Something was replaced, guessed or ignored (bad UDH, unsupported
    /// coding, dcs-0 text that only decoded as UCS-2, ...).
    pub lossy: bool,
}

enum Alphabet {
    Gsm,
    Eight,
    Ucs2,
}

fn decode_body(data_coding: u8, body: &[u8], dcs0: Dcs0, udh_len: usize) -> (String, bool) {
    let gsm = |packed: bool| -> (String, bool) {
        let septets;
        let s: &[u8] = if packed {
            let fill = if udh_len == 0 {
                0
            } else {
                gsm7::fill_bits(udh_len)
            };
            septets = gsm7::unpack(body, fill);
            &septets
        } else {
            body
        };
        match gsm7::decode_unpacked(s) {
            Ok(r) => r,
            Err(_) if body.len() % 2 == 0 => (ucs2::decode(body).0, true),
            Err(_) => (latin1::decode(body), true),
        }
    };
    let by_alphabet = |a: Alphabet, extra_lossy: bool| {
        let (t, l) = match a {
            Alphabet::Gsm => gsm(dcs0 == Dcs0::GsmPacked),
            Alphabet::Eight => (latin1::decode(body), true),
            Alphabet::Ucs2 => ucs2::decode(body),
        };
        (t, l || extra_lossy)
    };
    match data_coding {
        0 => match dcs0 {
            Dcs0::Gsm => gsm(false),
            Dcs0::GsmPacked => gsm(true),
            Dcs0::Latin1 => (latin1::decode(body), false),
            Dcs0::Ascii => ia5::decode(body),
        },
        1 => ia5::decode(body),
        3 => (latin1::decode(body), false),
        8 => ucs2::decode(body),
        0x10..=0x3F => {
            let compressed = data_coding & 0x20 != 0;
            let a = match (data_coding >> 2) & 0x03 {
                0 => Alphabet::Gsm,
                2 => Alphabet::Ucs2,
                _ => Alphabet::Eight,
            };
            by_alphabet(a, compressed)
        }
        0xC0..=0xDF => by_alphabet(Alphabet::Gsm, false),
        0xE0..=0xEF => by_alphabet(Alphabet::Ucs2, false),
        0xF0..=0xFF if data_coding & 0x04 == 0 => by_alphabet(Alphabet::Gsm, false),
        _ => (latin1::decode(body), true),
    }
}

/// Decodes one short_message. With `udhi`, the UDH is split off by its UDHL
/// and its IEs walked for concatenation data; a UDH that does not fit is
/// ignored (the whole octet string decodes as text) and flagged lossy.
/// '@' is 0x00 in GSM: the octets are never NUL-scanned.
pub fn decode(data_coding: u8, udhi: bool, short_message: &[u8], dcs0: Dcs0) -> Decoded {
    let (body, concat, udh_len, bad_udh) = if udhi {
        match udh::split(short_message) {
            Ok(s) => (s.body, s.concat, s.header.len(), false),
            Err(_) => (short_message, None, 0, true),
        }
    } else {
        (short_message, None, 0, false)
    };
    let (text, lossy) = decode_body(data_coding, body, dcs0, udh_len);
    Decoded {
        text,
        concat,
        lossy: lossy || bad_udh,
    }
}

/// Decodes a part that came with SAR TLVs (`sar_msg_ref_num`,
/// `sar_total_segments`, `sar_segment_seqnum`) instead of a UDH. Values
/// that make no sense (seq 0 or above total) leave `concat` empty and set
/// `lossy`. A UDH, if `udhi` is also set, is still split off; the SAR
/// values win.
pub fn decode_sar(
    data_coding: u8,
    udhi: bool,
    short_message: &[u8],
    dcs0: Dcs0,
    reference: u16,
    total: u8,
    seq: u8,
) -> Decoded {
    let mut d = decode(data_coding, udhi, short_message, dcs0);
    match ConcatInfo::new(reference, total, seq) {
        Some(c) => d.concat = Some(c),
        None => d.lossy = true,
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_gsm_with_at_signs_everywhere() {
        let d = decode(0, false, &[0, 0x61, 0, 0x62, 0], Dcs0::Gsm);
        assert_eq!(d.text, "@a@b@");
        assert!(!d.lossy);
    }

    #[test]
    fn ucs2_under_dcs0_is_detected_and_flagged() {
        let d = decode(0, false, &[0x00, 0xE9, 0x00, 0x61], Dcs0::Gsm);
        assert_eq!(d.text, "éa");
        assert!(d.lossy);
    }

    #[test]
    fn parses_udh_then_decodes_the_body() {
        let mut sm = udh::udh16(0xBEEF, 2, 1).to_vec();
        sm.extend_from_slice(&ucs2::encode("hé"));
        let d = decode(8, true, &sm, Dcs0::Gsm);
        assert_eq!(d.text, "hé");
        assert_eq!(d.concat, ConcatInfo::new(0xBEEF, 2, 1));
    }

    #[test]
    fn broken_udh_is_ignored_and_flagged() {
        let d = decode(3, true, &[0x09, b'a'], Dcs0::Gsm);
        assert!(d.lossy);
        assert_eq!(d.concat, None);
    }

    #[test]
    fn dcs0_follows_the_carrier_setting() {
        assert_eq!(decode(0, false, &[0xE9], Dcs0::Latin1).text, "é");
        assert_eq!(decode(0, false, b"@", Dcs0::Ascii).text, "@");
        let packed = gsm7::pack(&gsm7::encode_unpacked("hello").unwrap(), 0);
        assert_eq!(decode(0, false, &packed, Dcs0::GsmPacked).text, "hello");
    }

    #[test]
    fn coding_groups_pick_the_alphabet() {
        assert_eq!(decode(0x18, false, &[0x00, 0x41], Dcs0::Gsm).text, "A");
        assert_eq!(decode(0xF0, false, &[0x41], Dcs0::Gsm).text, "A");
        assert!(decode(0xF4, false, &[0x41], Dcs0::Gsm).lossy);
    }

    #[test]
    fn sar_values_give_concat() {
        let d = decode_sar(0, false, b"hi", Dcs0::Gsm, 300, 3, 2);
        assert_eq!(d.concat, ConcatInfo::new(300, 3, 2));
        let d = decode_sar(0, false, b"hi", Dcs0::Gsm, 300, 3, 4);
        assert_eq!(d.concat, None);
        assert!(d.lossy);
    }
}
