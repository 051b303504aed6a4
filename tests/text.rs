//! Integration tests for `smppgw::text` and `smppgw::dlr`: what goes out
//! (plan/count) comes back (decode/reassemble) for every coding, concat mode
//! and awkward character at a part boundary.

use proptest::prelude::*;
use smppgw::dlr;
use smppgw::text::{
    self, AddOutcome, Concat, Dcs0, Encoding, Plan, PlanOptions, Reassembler, count, decode,
    decode_sar, gsm7, plan,
};

const SOURCE: &str = "447911123456";
const DEST: &str = "819012345678";

/// Decodes every part of a plan, feeds them to a reassembler in `order`,
/// and returns the text.
fn receive(p: &Plan, opts: &PlanOptions, order: &[usize]) -> String {
    if p.parts.len() == 1 {
        let part = &p.parts[0];
        let d = decode(p.data_coding, p.esm_udhi, &part.short_message, opts.dcs0);
        assert!(!d.lossy, "lossy decode of {:?}", part.short_message);
        return d.text;
    }
    let mut r = Reassembler::new(4);
    let mut done = None;
    for &i in order {
        let part = &p.parts[i];
        let d = match part.sar {
            Some(s) => decode_sar(
                p.data_coding,
                false,
                &part.short_message,
                opts.dcs0,
                s.reference,
                s.total,
                s.seq,
            ),
            None => decode(p.data_coding, p.esm_udhi, &part.short_message, opts.dcs0),
        };
        assert!(!d.lossy);
        let c = d.concat.expect("multi-part plans carry concat data");
        match r.add(SOURCE, DEST, c, d.text, 0) {
            AddOutcome::Complete(t) => done = Some(t),
            AddOutcome::Pending => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    done.expect("all parts given")
}

/// The unit count of each part body, measured from the octets.
fn measured_units(p: &Plan, opts: &PlanOptions) -> usize {
    p.parts
        .iter()
        .map(|part| {
            let udh = if p.esm_udhi {
                usize::from(part.short_message[0]) + 1
            } else {
                0
            };
            let body = &part.short_message[udh..];
            match (p.encoding, p.data_coding) {
                (Encoding::Gsm7, _) => body.len(),
                (Encoding::Gsm7Packed, _) => {
                    let fill = if udh == 0 { 0 } else { gsm7::fill_bits(udh) };
                    gsm7::unpack(body, fill).len()
                }
                (Encoding::Ucs2, _) => body.len() / 2,
                (Encoding::Latin1, 3) => body.len(),
                // Latin-1 or ASCII octets counted as GSM septets.
                (Encoding::Latin1 | Encoding::Ia5, _) => {
                    let d = decode(p.data_coding, false, body, opts.dcs0);
                    d.text
                        .chars()
                        .map(|c| gsm7::lookup(c).map_or(1, |g| g.cost()))
                        .sum()
                }
            }
        })
        .sum()
}

fn palette() -> impl Strategy<Value = char> {
    prop_oneof![
        4 => prop::sample::select(vec!['a', 'Z', '0', ' ', '@', '\n', '$', '_', 'é', 'Ç', 'ç']),
        2 => prop::sample::select(vec!['€', '[', ']', '{', '}', '^', '~', '\\', '|', '\u{0C}']),
        1 => prop::sample::select(vec!['ж', 'ï', '`', 'ÿ', '\u{A0}', '\u{2019}', '\u{2026}']),
        1 => prop::sample::select(vec!['日', '本', '😀', '👍', '\u{200D}', '\u{1F1EC}', '\u{1F1E7}', '\u{FE0F}']),
        1 => any::<char>(),
    ]
}

fn options() -> impl Strategy<Value = PlanOptions> {
    (
        prop::sample::select(vec![Dcs0::Gsm, Dcs0::GsmPacked, Dcs0::Latin1, Dcs0::Ascii]),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        prop::sample::select(vec![
            Concat::Udh8,
            Concat::Udh16,
            Concat::Sar,
            Concat::Payload,
        ]),
    )
        .prop_map(
            |(dcs0, allow_latin1, allow_ia5, at_as_ucs2, concat)| PlanOptions {
                dcs0,
                allow_latin1,
                allow_ia5,
                at_as_ucs2,
                transliterate: false,
                concat,
                max_parts: 255,
            },
        )
}

proptest! {
    #[test]
    fn can_round_trip_any_text_in_any_order(
        chars in prop::collection::vec(palette(), 0..500),
        opts in options(),
        keys in prop::collection::vec(any::<u32>(), 10),
        reference in any::<u16>(),
    ) {
        let t: String = chars.into_iter().collect();
        // Packed GSM cannot carry a CR that ends exactly on an octet
        // boundary (3GPP TS 23.038 §6.1.2.3.1); documented in gsm7::unpack.
        prop_assume!(!(opts.dcs0 == Dcs0::GsmPacked && t.contains('\r')));
        // A leading U+FEFF/U+FFFE is a BOM to every UCS-2 decoder.
        prop_assume!(!t.starts_with(['\u{FEFF}', '\u{FFFE}']));
        let p = plan(&t, &opts, reference).unwrap();
        let mut order: Vec<usize> = (0..p.parts.len()).collect();
        order.sort_by_key(|&i| keys[i % keys.len()].wrapping_add(i as u32));
        // GSM 0x09 is 'Ç' (3GPP TS 23.038); 'ç' is accepted when encoding
        // (Unicode's GSM0338.TXT reads 0x09 as 'ç') and arrives as 'Ç'.
        // Regression: a CI run's proptest found the unnormalised comparison.
        let sent = if p.encoding.as_str().starts_with("gsm7") { t.replace('ç', "Ç") } else { t };
        prop_assert_eq!(receive(&p, &opts, &order), sent);
    }

    #[test]
    fn counts_equal_encoded_lengths(
        chars in prop::collection::vec(palette(), 0..500),
        opts in options(),
        transliterate in any::<bool>(),
    ) {
        let t: String = chars.into_iter().collect();
        prop_assume!(!(opts.dcs0 == Dcs0::GsmPacked && t.contains('\r')));
        let opts = PlanOptions { transliterate, ..opts };
        let c = count(&t, &opts);
        let p = plan(&t, &opts, 7).unwrap();
        prop_assert_eq!(c.units, p.units);
        prop_assert_eq!(c.parts, p.segments);
        prop_assert_eq!(c.encoding, p.encoding);
        prop_assert_eq!(c.data_coding, p.data_coding);
        prop_assert_eq!(c.transliterated, p.transliterated);
        prop_assert_eq!(measured_units(&p, &opts), c.units);
        prop_assert!(c.remaining <= c.per_part);
        if opts.concat != Concat::Payload {
            prop_assert_eq!(p.parts.len(), c.parts);
        }
    }

    #[test]
    fn text_over_max_parts_is_refused_not_truncated(
        chars in prop::collection::vec(palette(), 0..700),
        max_parts in 1u8..6,
    ) {
        let t: String = chars.into_iter().collect();
        let opts = PlanOptions { max_parts, ..PlanOptions::default() };
        let c = count(&t, &opts);
        match plan(&t, &opts, 1) {
            Ok(p) => prop_assert!(c.fits && p.segments <= usize::from(max_parts)),
            Err(e) => {
                prop_assert!(!c.fits);
                let msg = e.to_string();
                let expected = format!("limit is {max_parts} parts");
                prop_assert!(msg.contains(&expected), "{}", msg);
            }
        }
    }

    #[test]
    fn decode_never_panics(dc in any::<u8>(), udhi in any::<bool>(), sm in prop::collection::vec(any::<u8>(), 0..300)) {
        for dcs0 in [Dcs0::Gsm, Dcs0::GsmPacked, Dcs0::Latin1, Dcs0::Ascii] {
            let _ = decode(dc, udhi, &sm, dcs0);
        }
    }
}

fn check_boundaries(
    fill: &str,
    special: &str,
    single: usize,
    lens: std::ops::RangeInclusive<usize>,
) {
    for opts in [
        PlanOptions::default(),
        PlanOptions {
            concat: Concat::Udh16,
            ..PlanOptions::default()
        },
        PlanOptions {
            concat: Concat::Sar,
            ..PlanOptions::default()
        },
    ] {
        for k in lens.clone() {
            let t = format!("{}{special}{}", fill.repeat(k), fill.repeat(single));
            let p = plan(&t, &opts, 3).unwrap();
            for part in &p.parts {
                let udh = if p.esm_udhi {
                    usize::from(part.short_message[0]) + 1
                } else {
                    0
                };
                let body = &part.short_message[udh..];
                if p.encoding == Encoding::Gsm7 {
                    assert_ne!(body.last(), Some(&gsm7::ESC), "ESC ends a part, k={k}");
                } else {
                    let last = body
                        .len()
                        .checked_sub(2)
                        .map(|i| u16::from_be_bytes([body[i], body[i + 1]]));
                    assert!(
                        !last.is_some_and(|u| (0xD800..0xDC00).contains(&u)),
                        "high surrogate ends a part, k={k}"
                    );
                }
            }
            let order: Vec<usize> = (0..p.parts.len()).rev().collect();
            assert_eq!(receive(&p, &opts, &order), t, "k={k} {special:?}");
        }
    }
}

#[test]
fn extension_chars_at_part_boundaries_round_trip() {
    for special in ["€", "[", "]", "{", "}", "^", "~", "\\", "|"] {
        check_boundaries("a", special, 160, 148..=156);
    }
}

#[test]
fn emoji_and_japanese_at_part_boundaries_round_trip() {
    for special in ["😀", "👍🏽", "🇯🇵", "日本語", "👨\u{200D}👩\u{200D}👧"] {
        check_boundaries("ж", special, 70, 60..=68);
        check_boundaries("日", special, 70, 60..=68);
    }
}

#[test]
fn at_sign_at_start_middle_and_end_of_parts_round_trips() {
    for opts in [
        PlanOptions::default(),
        PlanOptions {
            dcs0: Dcs0::GsmPacked,
            ..PlanOptions::default()
        },
    ] {
        for n in [1, 2, 152, 153, 154, 160, 161, 306, 307, 400] {
            let t = "@".repeat(n);
            let p = plan(&t, &opts, 9).unwrap();
            assert_eq!(
                p.encoding,
                if opts.dcs0 == Dcs0::Gsm {
                    Encoding::Gsm7
                } else {
                    Encoding::Gsm7Packed
                }
            );
            let order: Vec<usize> = (0..p.parts.len()).collect();
            assert_eq!(receive(&p, &opts, &order), t, "n={n}");
        }
        let t = format!("@{}@{}@", "x".repeat(151), "y".repeat(151));
        let p = plan(&t, &opts, 9).unwrap();
        let order: Vec<usize> = (0..p.parts.len()).rev().collect();
        assert_eq!(receive(&p, &opts, &order), t);
    }
}

#[test]
fn count_reports_transliteration() {
    let opts = PlanOptions {
        transliterate: true,
        ..PlanOptions::default()
    };
    let c = count(
        "We\u{2019}re open \u{2013} 9\u{00A0}to\u{00A0}5\u{2026}",
        &opts,
    );
    assert_eq!(c.encoding, Encoding::Gsm7);
    assert!(c.transliterated);
    let v = serde_json::to_value(&c).unwrap();
    assert_eq!(v["encoding"], "gsm7");
    assert_eq!(v["transliterated"], true);
    // "We're open - 9 to 5..."
    assert_eq!(v["units"], 22);
    assert_eq!(v["parts"], 1);
    assert_eq!(v["remaining"], 138);
    assert_eq!(v["fits"], true);
}

#[test]
fn receipts_round_trip_through_the_public_api() {
    let r = dlr::from_parts(
        Some(b"812FC7470000001B\0"),
        None,
        None,
        b"id:9308878062554710043 sub:001 dlvrd:001 submit date:2611241030 done date:2611241031 stat:DELIVRD err:000 text:Hi",
    )
    .unwrap();
    assert_eq!(r.state.outcome(false), dlr::Outcome::Delivered);
    assert_eq!(
        dlr::normalize_id(&r.id, dlr::IdFormat::Hex),
        dlr::normalize_id("9308878062554710043", dlr::IdFormat::Decimal)
    );
    assert!(dlr::is_receipt(0x44));
    assert!(!text::gsm7::fits("😀"));
}
