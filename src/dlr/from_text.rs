//! The receipt text (SMPP 3.4 Appendix B and the variants SMSCs send),
//! parsed leniently: labels in any case and any order, missing fields,
//! extra fields, values that contain spaces or ':'.
//!
//! Rules:
//! - the octets are read as ASCII/UTF-8 whatever the data_coding (a
//!   receipt flagged dcs 8 is still ASCII); invalid octets become U+FFFD;
//!   trailing NULs are dropped; text that is plainly ASCII in UTF-16BE
//!   (every other octet 0) has the zeros removed;
//! - a label is one of `id`, `sub`, `dlvrd`, `submit date`, `done date`,
//!   `stat`, `err`, `text` (also with `_` for the space), any case, at the
//!   start or after whitespace, followed by ':';
//! - any other `word:` after whitespace is an extra field, except inside
//!   the `text` value;
//! - a value runs to the next label and is trimmed; inside `text`, only a
//!   known label that has not appeared yet ends it (so a text mentioning
//!   "stat:" after the real stat stays whole);
//! - `id` and `stat` are required by [`parse_text`]; everything else is
//!   optional. Dates are kept as sent (10, 12 or 14 digits; the shell
//!   applies the carrier's time zone).

use std::borrow::Cow;
use std::ops::Range;

/// Why a receipt text was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ReceiptError {
    /// No `id:` field.
    #[error("receipt text has no id field")]
    MissingId,
    /// No `stat:` field.
    #[error("receipt text has no stat field")]
    MissingStat,
}

/// The known fields, in [`ReceiptText`] slot order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Id = 0,
    Sub,
    Dlvrd,
    SubmitDate,
    DoneDate,
    Stat,
    Err,
    Text,
}

const LABELS: &[(&str, Field)] = &[
    ("submit date", Field::SubmitDate),
    ("submit_date", Field::SubmitDate),
    ("done date", Field::DoneDate),
    ("done_date", Field::DoneDate),
    ("dlvrd", Field::Dlvrd),
    ("stat", Field::Stat),
    ("text", Field::Text),
    ("sub", Field::Sub),
    ("err", Field::Err),
    ("id", Field::Id),
];

/// A parsed receipt text; borrows the input when it was valid UTF-8.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiptText<'a> {
    source: Cow<'a, str>,
    fields: [Option<Range<usize>>; 8],
    extra: Vec<(Range<usize>, Range<usize>)>,
}

/// What starts at a label position.
enum Label {
    Known(Field),
    Extra(Range<usize>),
}

/// The label starting at byte `i` of `s`, and where its value starts.
fn label_at(s: &str, i: usize) -> Option<(Label, usize)> {
    let b = s.as_bytes();
    if i > 0 && !b[i - 1].is_ascii_whitespace() {
        return None;
    }
    let colon_after = |j: usize| {
        let mut k = j;
        while k < b.len() && b[k] == b' ' {
            k += 1;
        }
        (k < b.len() && b[k] == b':').then_some(k + 1)
    };
    for &(name, f) in LABELS {
        let end = i + name.len();
        if end <= b.len() && b[i..end].eq_ignore_ascii_case(name.as_bytes()) {
            if let Some(v) = colon_after(end) {
                return Some((Label::Known(f), v));
            }
        }
    }
    let mut j = i;
    while j < b.len() && j - i < 24 && (b[j].is_ascii_alphanumeric() || b[j] == b'_') {
        j += 1;
    }
    if j > i && j < b.len() && b[j] == b':' && b[i].is_ascii_alphabetic() {
        return Some((Label::Extra(i..j), j + 1));
    }
    None
}

fn to_text(bytes: &[u8]) -> Cow<'_, str> {
    let mut end = bytes.len();
    while end > 0 && bytes[end - 1] == 0 {
        end -= 1;
    }
    let bytes = &bytes[..end];
    // ASCII sent as UTF-16BE: 00 'i' 00 'd' ...
    let utf16_ascii = bytes.len() >= 4
        && bytes.len() % 2 == 0
        && bytes
            .chunks_exact(2)
            .all(|p| p[0] == 0 && p[1] != 0 && p[1].is_ascii());
    if utf16_ascii {
        return Cow::Owned(
            bytes
                .iter()
                .skip(1)
                .step_by(2)
                .map(|&b| char::from(b))
                .collect(),
        );
    }
    String::from_utf8_lossy(bytes)
}

/// Parses whatever fields are there; never fails.
pub fn scan(bytes: &[u8]) -> ReceiptText<'_> {
    let source = to_text(bytes);
    let s: &str = &source;
    let mut fields: [Option<Range<usize>>; 8] = Default::default();
    let mut extra = Vec::new();
    // The field being read: its slot (known) or extra name, and value start.
    let mut current: Option<(Label, usize)> = None;
    let close = |cur: Option<(Label, usize)>,
                 end: usize,
                 fields: &mut [Option<Range<usize>>; 8],
                 extra: &mut Vec<(Range<usize>, Range<usize>)>| {
        if let Some((l, start)) = cur {
            let raw = &s[start..end];
            let lead = raw.len() - raw.trim_start().len();
            let v = start + lead..start + raw.trim_end().len();
            let v = if v.start > v.end { start..start } else { v };
            match l {
                Label::Known(f) => {
                    let slot = &mut fields[f as usize];
                    if slot.is_none() {
                        *slot = Some(v);
                    }
                }
                Label::Extra(name) => extra.push((name, v)),
            }
        }
    };
    let mut i = 0;
    while i < s.len() {
        if !s.is_char_boundary(i) {
            i += 1;
            continue;
        }
        if let Some((label, vstart)) = label_at(s, i) {
            let in_text = matches!(current, Some((Label::Known(Field::Text), _)));
            let ends = match &label {
                Label::Known(f) => !in_text || fields[*f as usize].is_none(),
                Label::Extra(_) => !in_text,
            };
            if ends {
                close(current.take(), i, &mut fields, &mut extra);
                current = Some((label, vstart));
                i = vstart;
                continue;
            }
        }
        i += 1;
    }
    close(current, s.len(), &mut fields, &mut extra);
    ReceiptText {
        source,
        fields,
        extra,
    }
}

/// Parses a receipt text; `id` and `stat` must be present.
///
/// # Errors
/// [`ReceiptError::MissingId`] or [`ReceiptError::MissingStat`].
pub fn parse_text(bytes: &[u8]) -> Result<ReceiptText<'_>, ReceiptError> {
    let r = scan(bytes);
    if r.id().is_none_or(str::is_empty) {
        return Err(ReceiptError::MissingId);
    }
    if r.stat().is_none_or(str::is_empty) {
        return Err(ReceiptError::MissingStat);
    }
    Ok(r)
}

impl<'a> ReceiptText<'a> {
    fn get(&self, f: Field) -> Option<&str> {
        self.fields[f as usize].clone().map(|r| &self.source[r])
    }

    /// The `id:` value.
    pub fn id(&self) -> Option<&str> {
        self.get(Field::Id)
    }
    /// The `sub:` value.
    pub fn sub(&self) -> Option<&str> {
        self.get(Field::Sub)
    }
    /// The `dlvrd:` value.
    pub fn dlvrd(&self) -> Option<&str> {
        self.get(Field::Dlvrd)
    }
    /// The `submit date:` value, as sent.
    pub fn submit_date(&self) -> Option<&str> {
        self.get(Field::SubmitDate)
    }
    /// The `done date:` value, as sent.
    pub fn done_date(&self) -> Option<&str> {
        self.get(Field::DoneDate)
    }
    /// The `stat:` value, as sent.
    pub fn stat(&self) -> Option<&str> {
        self.get(Field::Stat)
    }
    /// The `err:` value, as sent.
    pub fn err(&self) -> Option<&str> {
        self.get(Field::Err)
    }
    /// The `text:` value (often the first characters of the message).
    pub fn text(&self) -> Option<&str> {
        self.get(Field::Text)
    }
    /// Fields with other labels, as (label, value).
    pub fn extras(&self) -> impl Iterator<Item = (&str, &str)> {
        self.extra
            .iter()
            .map(|(k, v)| (&self.source[k.clone()], &self.source[v.clone()]))
    }
    /// The whole text as read.
    pub fn as_str(&self) -> &str {
        &self.source
    }
    /// Whether the text was borrowed from the input without conversion.
    pub fn is_borrowed(&self) -> bool {
        matches!(self.source, Cow::Borrowed(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize)]
    struct Case {
        text: String,
        expect: std::collections::BTreeMap<String, String>,
        seen: String,
    }
    #[derive(serde::Deserialize)]
    struct Cases {
        cases: Vec<Case>,
    }

    #[test]
    fn every_vector_parses_to_its_listed_fields() {
        let cases: Cases = serde_json::from_str(include_str!("testdata/dlr-texts.json")).unwrap();
        assert_eq!(cases.cases.len(), 19);
        for c in &cases.cases {
            let r = parse_text(c.text.as_bytes()).unwrap();
            assert!(r.is_borrowed());
            for (k, want) in &c.expect {
                let got = match k.as_str() {
                    "id" => r.id(),
                    "sub" => r.sub(),
                    "dlvrd" => r.dlvrd(),
                    "submit_date" => r.submit_date(),
                    "done_date" => r.done_date(),
                    "stat" => r.stat(),
                    "err" => r.err(),
                    "text" => r.text(),
                    "state" => Some(
                        super::super::DeliveryState::from_stat(r.stat().unwrap())
                            .0
                            .outcome(false)
                            .as_str(),
                    ),
                    other => panic!("unknown key {other}"),
                };
                assert_eq!(got, Some(want.as_str()), "{k} in {} ({})", c.text, c.seen);
            }
        }
    }

    #[test]
    fn fields_in_any_order_with_extras() {
        let r = parse_text(b"stat:DELIVRD mcc:234 ID:0042 err:0 text:a: b c").unwrap();
        assert_eq!(r.id(), Some("0042"));
        assert_eq!(r.stat(), Some("DELIVRD"));
        assert_eq!(r.text(), Some("a: b c"));
        assert_eq!(r.extras().collect::<Vec<_>>(), vec![("mcc", "234")]);
    }

    #[test]
    fn text_mentioning_a_seen_label_stays_whole() {
        let r = parse_text(b"id:1 stat:DELIVRD text:your stat: ok id: 5").unwrap();
        assert_eq!(r.text(), Some("your stat: ok id: 5"));
        assert_eq!(r.id(), Some("1"));
    }

    #[test]
    fn rejects_text_without_id_or_stat() {
        assert_eq!(
            parse_text(b"stat:DELIVRD").unwrap_err(),
            ReceiptError::MissingId
        );
        assert_eq!(
            parse_text(b"id:5 err:0").unwrap_err(),
            ReceiptError::MissingStat
        );
        assert_eq!(
            parse_text(b"hello there").unwrap_err(),
            ReceiptError::MissingId
        );
        assert_eq!(parse_text(b"").unwrap_err(), ReceiptError::MissingId);
    }

    #[test]
    fn non_ascii_octets_and_utf16_are_tolerated() {
        let r = parse_text(b"id:7 stat:DELIVRD text:caf\xE9\0\0").unwrap();
        assert_eq!(r.text(), Some("caf\u{FFFD}"));
        let utf16: Vec<u8> = "id:8 stat:UNDELIV".bytes().flat_map(|b| [0, b]).collect();
        let r = parse_text(&utf16).unwrap();
        assert_eq!((r.id(), r.stat()), (Some("8"), Some("UNDELIV")));
    }

    #[test]
    fn label_inside_a_word_is_not_a_label() {
        let r = parse_text(b"id:9 stat:DELIVRD text:paid:yes").unwrap();
        assert_eq!(r.text(), Some("paid:yes"));
    }
}
