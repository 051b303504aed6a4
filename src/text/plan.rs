//! The part planner. [`plan`] and [`count`] share one layout function, so
//! the number the agent sees is the number that goes on the wire.
//!
//! # Sizes per part (units: see [`Count::units`])
//! | coding | single | 8-bit ref UDH | 16-bit ref UDH | SAR | payload |
//! |---|---|---|---|---|---|
//! | GSM septets (dcs 0, 1) | 160 | 153 | 152 | 152 | 153 |
//! | UCS-2 units (dcs 8) | 70 | 67 | 66 | 66 | 67 |
//! | 8-bit octets (dcs 3) | 140 | 134 | 133 | 133 | 134 |
//!
//! **SAR:** the parts carry no UDH in the PDU, but the SMSC turns the SAR
//! TLVs into a concatenation UDH on the air, and `sar_msg_ref_num` is 16
//! bits, so each part must leave room for a 16-bit-reference UDH: the same
//! sizes as [`Concat::Udh16`].
//!
//! **Payload:** a text that fits one SMS still goes in short_message; a
//! longer one goes whole in `message_payload` (one submit, sm_length 0), and
//! the SMSC splits it; the part count is then an estimate with 8-bit
//! reference sizes, and `max_parts` applies to it.
//!
//! **Cuts:** a part never ends inside a character, so an ESC+char pair or a
//! surrogate pair is never split (the part ends early and the pair opens the
//! next). The planner also keeps cheap grapheme clusters together (CR LF,
//! ZWJ sequences, variation selectors, skin-tone modifiers, combining
//! marks, flag pairs, tag sequences) unless one cluster is larger than a
//! whole part. U+FEFF and U+FFFE never open a part, since decoders take
//! them for a BOM there; a text that *starts* with one loses it on decode.

use std::ops::Range;

use super::choose::{Choice, ChoiceOptions, Encoding, UnitClass, choose};
use super::{Dcs0, gsm7, udh};

/// How a long text is split (per carrier).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Concat {
    /// UDH with an 8-bit reference, `05 00 03 ref tot seq` (default: the
    /// most widely supported).
    #[default]
    Udh8,
    /// UDH with a 16-bit reference, `06 08 04 refH refL tot seq`.
    Udh16,
    /// SAR TLVs (`sar_msg_ref_num`, `sar_total_segments`,
    /// `sar_segment_seqnum`), no UDH.
    Sar,
    /// One submit_sm with the whole text in `message_payload`.
    Payload,
}

/// Per-carrier and per-service options for [`plan`] and [`count`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PlanOptions {
    /// What data_coding 0 means on this carrier.
    pub dcs0: Dcs0,
    /// The carrier accepts Latin-1 under data_coding 3.
    pub allow_latin1: bool,
    /// The carrier accepts IA5 under data_coding 1.
    pub allow_ia5: bool,
    /// Texts containing '@' go as UCS-2 (carriers that mangle 0x00).
    pub at_as_ucs2: bool,
    /// Transliterate typographic characters to GSM (per service).
    pub transliterate: bool,
    /// How long texts are split.
    pub concat: Concat,
    /// Most parts one text may take (per service); 0 is treated as 1.
    pub max_parts: u8,
}

/// Default number of parts: 10 (the upper end of carriers' practical caps).
pub const DEFAULT_MAX_PARTS: u8 = 10;

impl Default for PlanOptions {
    /// GSM unpacked for dcs 0, no Latin-1, no IA5, '@' stays GSM, no
    /// transliteration, 8-bit UDH, at most [`DEFAULT_MAX_PARTS`] parts.
    fn default() -> Self {
        PlanOptions {
            dcs0: Dcs0::Gsm,
            allow_latin1: false,
            allow_ia5: false,
            at_as_ucs2: false,
            transliterate: false,
            concat: Concat::Udh8,
            max_parts: DEFAULT_MAX_PARTS,
        }
    }
}

impl PlanOptions {
    fn choice(&self) -> ChoiceOptions {
        ChoiceOptions {
            dcs0: self.dcs0,
            allow_latin1: self.allow_latin1,
            allow_ia5: self.allow_ia5,
            at_as_ucs2: self.at_as_ucs2,
            transliterate: self.transliterate,
        }
    }

    fn max(&self) -> usize {
        usize::from(self.max_parts.max(1))
    }
}

/// SAR TLV values for one part.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Sar {
    /// `sar_msg_ref_num`.
    pub reference: u16,
    /// `sar_total_segments`.
    pub total: u8,
    /// `sar_segment_seqnum`, from 1.
    pub seq: u8,
}

/// One submit_sm's worth of text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedPart {
    /// short_message octets, UDH included when the plan sets `esm_udhi`; in
    /// payload mode these octets go in `message_payload` instead.
    pub short_message: Vec<u8>,
    /// SAR TLVs to add (SAR mode, multi-part only).
    pub sar: Option<Sar>,
    /// The octets belong in `message_payload` and short_message stays empty.
    pub payload: bool,
}

/// What to submit for one text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The chosen coding.
    pub encoding: Encoding,
    /// The data_coding octet to send.
    pub data_coding: u8,
    /// Set UDHI (0x40) in esm_class.
    pub esm_udhi: bool,
    /// Length in the carrier's units (see [`Count::units`]).
    pub units: usize,
    /// Segments on the air: `parts.len()`, except in payload mode where one
    /// submit carries them all.
    pub segments: usize,
    /// Whether transliteration changed the text.
    pub transliterated: bool,
    /// The submits, in order.
    pub parts: Vec<PlannedPart>,
}

/// Why a text cannot be planned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PlanError {
    /// The text needs more parts than the service allows.
    #[error(
        "text is {units} {unit_name} in {encoding} and needs {parts} parts; \
         the limit is {max_parts} parts (about {limit_units} {unit_name})"
    )]
    TooLong {
        /// Length of the text.
        units: usize,
        /// About how many units `max_parts` parts hold.
        limit_units: usize,
        /// Parts the text needs.
        parts: usize,
        /// The service's limit.
        max_parts: u8,
        /// The chosen coding.
        encoding: Encoding,
        /// Name of the unit ("septets", "utf-16 units", "octets").
        unit_name: &'static str,
    },
}

/// The answer to `count`: what the agent's counter shows.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Count {
    /// The coding the text would go in.
    pub encoding: Encoding,
    /// The data_coding octet.
    pub data_coding: u8,
    /// Length as the carrier counts it: GSM septets (extension characters
    /// count 2) for dcs 0 and 1, octets for Latin-1 under dcs 3, UTF-16
    /// code units for UCS-2.
    pub units: usize,
    /// Segments the text takes on the air.
    pub parts: usize,
    /// Capacity of one part at this length (single or multi-part size).
    pub per_part: usize,
    /// Units left in the current (last) part.
    pub remaining: usize,
    /// The service's limit.
    pub max_parts: u8,
    /// `parts <= max_parts`.
    pub fits: bool,
    /// Whether transliteration changed the text.
    pub transliterated: bool,
}

/// (single, multi) sizes for a unit class and concat mode.
fn sizes(class: UnitClass, concat: Concat) -> (usize, usize) {
    let wide = matches!(concat, Concat::Udh16 | Concat::Sar);
    match (class, wide) {
        (UnitClass::Septet, false) => (160, 153),
        (UnitClass::Septet, true) => (160, 152),
        (UnitClass::Utf16, false) => (70, 67),
        (UnitClass::Utf16, true) => (70, 66),
        (UnitClass::Octet, false) => (140, 134),
        (UnitClass::Octet, true) => (140, 133),
    }
}

fn is_regional(c: char) -> bool {
    ('\u{1F1E6}'..='\u{1F1FF}').contains(&c)
}

/// Whether `c` continues the cluster that `prev` is in. `ri_run` is the
/// number of regional indicators immediately before `c`.
fn joins(prev: char, c: char, ri_run: usize) -> bool {
    (prev == '\r' && c == '\n')
        || c == '\u{200D}'
        || prev == '\u{200D}'
        // Never open a UCS-2 part with octets a decoder reads as a BOM.
        || c == '\u{FEFF}'
        || c == '\u{FFFE}'
        || matches!(c,
            '\u{0300}'..='\u{036F}'
            | '\u{1AB0}'..='\u{1AFF}'
            | '\u{1DC0}'..='\u{1DFF}'
            | '\u{20D0}'..='\u{20FF}'
            | '\u{3099}'..='\u{309A}'
            | '\u{FE00}'..='\u{FE0F}'
            | '\u{FE20}'..='\u{FE2F}'
            | '\u{1F3FB}'..='\u{1F3FF}'
            | '\u{E0020}'..='\u{E007F}'
            | '\u{E0100}'..='\u{E01EF}')
        || (is_regional(c) && ri_run % 2 == 1)
}

/// The shared layout: the choice, each character's cost, and the parts as
/// ranges of characters.
struct Layout<'a> {
    choice: Choice<'a>,
    chars: Vec<char>,
    units: usize,
    /// Ranges over `chars`, and the units in each.
    parts: Vec<(Range<usize>, usize)>,
    per_part: usize,
}

fn layout<'a>(text: &'a str, opts: &PlanOptions) -> Layout<'a> {
    let choice = choose(text, &opts.choice());
    let chars: Vec<char> = choice.text.chars().collect();
    let costs: Vec<usize> = chars.iter().map(|&c| choice.cost(c)).collect();
    let units: usize = costs.iter().sum();
    let (single, multi) = sizes(choice.class, opts.concat);
    if units <= single {
        return Layout {
            choice,
            parts: vec![(0..chars.len(), units)],
            chars,
            units,
            per_part: single,
        };
    }
    // Clusters as ranges of characters.
    let mut clusters: Vec<Range<usize>> = Vec::new();
    let mut ri_run = 0;
    for (i, &c) in chars.iter().enumerate() {
        let glued = i > 0 && joins(chars[i - 1], c, ri_run);
        ri_run = if is_regional(c) { ri_run + 1 } else { 0 };
        match clusters.last_mut() {
            Some(last) if glued => last.end = i + 1,
            _ => clusters.push(i..i + 1),
        }
    }
    let mut parts: Vec<(Range<usize>, usize)> = Vec::new();
    let mut start = 0;
    let mut used = 0;
    for cl in clusters {
        let cost: usize = costs[cl.clone()].iter().sum();
        if used + cost <= multi {
            used += cost;
            continue;
        }
        if cost <= multi {
            // End the part before this cluster.
            parts.push((start..cl.start, used));
            start = cl.start;
            used = cost;
            continue;
        }
        // A cluster larger than a part: cut it between characters.
        for i in cl {
            if used + costs[i] > multi {
                parts.push((start..i, used));
                start = i;
                used = 0;
            }
            used += costs[i];
        }
    }
    parts.push((start..chars.len(), used));
    parts.retain(|(r, _)| !r.is_empty());
    Layout {
        choice,
        chars,
        units,
        parts,
        per_part: multi,
    }
}

impl Layout<'_> {
    fn count(&self, opts: &PlanOptions) -> Count {
        let last = self.parts.last().map_or(0, |p| p.1);
        Count {
            encoding: self.choice.encoding,
            data_coding: self.choice.data_coding,
            units: self.units,
            parts: self.parts.len(),
            per_part: self.per_part,
            remaining: self.per_part.saturating_sub(last),
            max_parts: opts.max_parts,
            fits: self.parts.len() <= opts.max(),
            transliterated: self.choice.transliterated,
        }
    }

    fn body(&self, range: Range<usize>) -> Vec<u8> {
        let mut out = Vec::with_capacity(range.len() * 2);
        for &c in &self.chars[range] {
            self.choice.push(c, &mut out);
        }
        out
    }

    /// Body octets for one part, packed after `udh_len` octets of UDH when
    /// the coding is packed GSM.
    fn part_body(&self, range: Range<usize>, udh_len: usize) -> Vec<u8> {
        let b = self.body(range);
        if self.choice.encoding == Encoding::Gsm7Packed {
            let fill = if udh_len == 0 {
                0
            } else {
                gsm7::fill_bits(udh_len)
            };
            gsm7::pack(&b, fill)
        } else {
            b
        }
    }
}

/// Counts `text` as the planner would send it. Never fails: a text over
/// the limit answers `fits: false`.
pub fn count(text: &str, opts: &PlanOptions) -> Count {
    layout(text, opts).count(opts)
}

/// Plans the submits for `text`. `reference` is the concatenation reference
/// (its low byte with [`Concat::Udh8`]). An empty text is one empty part.
///
/// # Errors
/// [`PlanError::TooLong`] when the text needs more than `max_parts` parts.
pub fn plan(text: &str, opts: &PlanOptions, reference: u16) -> Result<Plan, PlanError> {
    let l = layout(text, opts);
    let n = l.parts.len();
    let total = match u8::try_from(n) {
        Ok(t) if n <= opts.max() => t,
        _ => {
            let (single, multi) = sizes(l.choice.class, opts.concat);
            let limit_units = if opts.max() == 1 {
                single
            } else {
                multi * opts.max()
            };
            return Err(PlanError::TooLong {
                units: l.units,
                limit_units,
                parts: n,
                max_parts: opts.max_parts,
                encoding: l.choice.encoding,
                unit_name: l.choice.class.name(),
            });
        }
    };
    let base = Plan {
        encoding: l.choice.encoding,
        data_coding: l.choice.data_coding,
        esm_udhi: false,
        units: l.units,
        segments: n,
        transliterated: l.choice.transliterated,
        parts: Vec::with_capacity(n),
    };
    if n <= 1 {
        let range = l.parts.first().map_or(0..0, |p| p.0.clone());
        return Ok(Plan {
            parts: vec![PlannedPart {
                short_message: l.part_body(range, 0),
                sar: None,
                payload: false,
            }],
            ..base
        });
    }
    let parts = match opts.concat {
        Concat::Payload => vec![PlannedPart {
            short_message: l.part_body(0..l.chars.len(), 0),
            sar: None,
            payload: true,
        }],
        Concat::Sar => (1..=total)
            .zip(&l.parts)
            .map(|(seq, (r, _))| PlannedPart {
                short_message: l.part_body(r.clone(), 0),
                sar: Some(Sar {
                    reference,
                    total,
                    seq,
                }),
                payload: false,
            })
            .collect(),
        Concat::Udh8 | Concat::Udh16 => (1..=total)
            .zip(&l.parts)
            .map(|(seq, (r, _))| {
                let mut sm = if opts.concat == Concat::Udh8 {
                    udh::udh8(reference, total, seq).to_vec()
                } else {
                    udh::udh16(reference, total, seq).to_vec()
                };
                let body = l.part_body(r.clone(), sm.len());
                sm.extend_from_slice(&body);
                PlannedPart {
                    short_message: sm,
                    sar: None,
                    payload: false,
                }
            })
            .collect(),
    };
    Ok(Plan {
        esm_udhi: matches!(opts.concat, Concat::Udh8 | Concat::Udh16),
        parts,
        ..base
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn o() -> PlanOptions {
        PlanOptions::default()
    }

    #[test]
    fn gsm_limits_are_160_then_153() {
        assert_eq!(count(&"a".repeat(160), &o()).parts, 1);
        let c = count(&"a".repeat(161), &o());
        assert_eq!((c.parts, c.per_part, c.remaining), (2, 153, 145));
        assert_eq!(count(&"a".repeat(306), &o()).parts, 2);
        assert_eq!(count(&"a".repeat(307), &o()).parts, 3);
    }

    #[test]
    fn extension_chars_cost_two_septets() {
        let c = count("€[]", &o());
        assert_eq!((c.encoding, c.units), (Encoding::Gsm7, 6));
        assert_eq!(count(&"€".repeat(80), &o()).parts, 1);
        assert_eq!(count(&"€".repeat(81), &o()).parts, 2);
    }

    #[test]
    fn ucs2_limits_are_70_then_67_or_66() {
        assert_eq!(count(&"é€ж".repeat(23), &o()).parts, 1);
        let t = "ж".repeat(71);
        assert_eq!(count(&t, &o()).per_part, 67);
        let mut w = o();
        w.concat = Concat::Udh16;
        assert_eq!(count(&t, &w).per_part, 66);
        w.concat = Concat::Sar;
        assert_eq!(count(&t, &w).per_part, 66);
    }

    #[test]
    fn escape_pair_is_never_split() {
        let t = format!("{}€{}", "a".repeat(152), "tail".repeat(5));
        let p = plan(&t, &o(), 1).unwrap();
        assert_eq!(p.parts.len(), 2);
        assert_eq!(p.parts[0].short_message.len(), 6 + 152);
        assert_eq!(&p.parts[1].short_message[6..8], &[gsm7::ESC, 0x65]);
    }

    #[test]
    fn surrogate_pair_is_never_split() {
        let t = format!("{}😀end", "ж".repeat(66));
        let p = plan(&t, &o(), 1).unwrap();
        assert_eq!(p.parts[0].short_message.len(), 6 + 66 * 2);
        assert_eq!(&p.parts[1].short_message[6..8], &[0xD8, 0x3D]);
    }

    #[test]
    fn udh8_and_udh16_headers_are_built() {
        let t = "a".repeat(200);
        let p = plan(&t, &o(), 0x0142).unwrap();
        assert!(p.esm_udhi);
        assert_eq!(&p.parts[1].short_message[..6], &[5, 0, 3, 0x42, 2, 2]);
        let mut w = o();
        w.concat = Concat::Udh16;
        let p = plan(&t, &w, 0x0142).unwrap();
        assert_eq!(&p.parts[0].short_message[..7], &[6, 8, 4, 1, 0x42, 2, 1]);
    }

    #[test]
    fn sar_parts_carry_no_udh() {
        let mut w = o();
        w.concat = Concat::Sar;
        let p = plan(&"a".repeat(200), &w, 9).unwrap();
        assert!(!p.esm_udhi);
        assert_eq!(p.parts[0].short_message.len(), 152);
        assert_eq!(
            p.parts[1].sar,
            Some(Sar {
                reference: 9,
                total: 2,
                seq: 2
            })
        );
    }

    #[test]
    fn payload_mode_sends_one_submit() {
        let mut w = o();
        w.concat = Concat::Payload;
        let p = plan(&"a".repeat(400), &w, 9).unwrap();
        assert_eq!((p.parts.len(), p.segments), (1, 3));
        assert!(p.parts[0].payload);
        assert_eq!(p.parts[0].short_message.len(), 400);
        let short = plan("hi", &w, 9).unwrap();
        assert!(!short.parts[0].payload);
    }

    #[test]
    fn rejects_text_over_max_parts_with_a_readable_error() {
        let mut w = o();
        w.max_parts = 2;
        let e = plan(&"a".repeat(307), &w, 1).unwrap_err();
        assert_eq!(
            e,
            PlanError::TooLong {
                units: 307,
                limit_units: 306,
                parts: 3,
                max_parts: 2,
                encoding: Encoding::Gsm7,
                unit_name: "septets",
            }
        );
        assert_eq!(
            e.to_string(),
            "text is 307 septets in gsm7 and needs 3 parts; the limit is 2 parts (about 306 septets)"
        );
        assert!(!count(&"a".repeat(307), &w).fits);
    }

    #[test]
    fn packed_gsm_uses_fill_bits_after_udh() {
        let mut w = o();
        w.dcs0 = Dcs0::GsmPacked;
        let p = plan(&"a".repeat(170), &w, 1).unwrap();
        assert_eq!(p.encoding, Encoding::Gsm7Packed);
        // 6 UDH octets + 1 fill bit + 153 septets = 8 + 1071 bits → 134 octets.
        assert_eq!(p.parts[0].short_message.len(), 6 + 134);
        let body = gsm7::unpack(&p.parts[0].short_message[6..], 1);
        assert_eq!(body, vec![0x61; 153]);
    }

    #[test]
    fn flags_and_zwj_sequences_stay_in_one_part() {
        let family = "👨\u{200D}👩\u{200D}👧";
        let t = format!("{}{family}", "ж".repeat(63));
        let p = plan(&t, &o(), 1).unwrap();
        assert_eq!(p.parts.len(), 2);
        assert_eq!(p.parts[0].short_message.len(), 6 + 63 * 2);
        // Without pairing, the first regional indicator would still fit.
        let t = format!("{}🇬🇧🇯🇵", "ж".repeat(64));
        let p = plan(&t, &o(), 1).unwrap();
        assert_eq!(p.parts[0].short_message.len(), 6 + 64 * 2);
    }

    #[test]
    fn empty_text_is_one_empty_part() {
        let p = plan("", &o(), 1).unwrap();
        assert_eq!(p.parts.len(), 1);
        assert!(p.parts[0].short_message.is_empty());
        let c = count("", &o());
        assert_eq!((c.parts, c.remaining, c.units), (1, 160, 0));
    }
}
