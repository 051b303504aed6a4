//! The owned [`Receipt`], built from the receipt TLVs
//! (`receipted_message_id` 0x001E, `message_state` 0x0427,
//! `network_error_code` 0x0423) with the text filling whatever they leave
//! out. TLVs win when present and valid.

use super::from_text::{ReceiptError, ReceiptText, parse_text, scan};
use super::state::DeliveryState;

/// A delivery receipt, owned, ready for the store and the agent.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Receipt {
    /// The message id as the SMSC sent it (trimmed); compare through
    /// [`super::normalize_id`].
    pub id: String,
    /// The stat word as sent, or the spec word for a `message_state` TLV.
    pub stat: String,
    /// The delivery state; serialized as its default outcome
    /// ("delivered", "failed", "intermediate", "unknown").
    pub state: DeliveryState,
    /// The stat word was not one we know (mapped to failed; the shell
    /// counts it as `unknown_stat`).
    pub unknown_stat: bool,
    /// Error code: from `network_error_code` (its u16 as decimal, at least
    /// 3 digits) or the text's `err:`.
    pub err: Option<String>,
    /// Network type octet of `network_error_code` (1 ANSI-136, 2 IS-95,
    /// 3 GSM, ...), when the TLV was well formed.
    pub network_type: Option<u8>,
    /// `sub:` (parts submitted).
    pub sub: Option<String>,
    /// `dlvrd:` (parts delivered).
    pub dlvrd: Option<String>,
    /// `submit date:` as sent.
    pub submit_date: Option<String>,
    /// `done date:` as sent.
    pub done_date: Option<String>,
    /// `text:` as sent.
    pub text: Option<String>,
}

fn own(s: Option<&str>) -> Option<String> {
    s.map(str::to_owned)
}

fn fill_from_text(
    id: String,
    state: (DeliveryState, bool),
    stat: String,
    t: &ReceiptText<'_>,
) -> Receipt {
    Receipt {
        id,
        stat,
        state: state.0,
        unknown_stat: !state.1,
        err: own(t.err()),
        network_type: None,
        sub: own(t.sub()),
        dlvrd: own(t.dlvrd()),
        submit_date: own(t.submit_date()),
        done_date: own(t.done_date()),
        text: own(t.text()),
    }
}

impl Receipt {
    /// From a receipt text alone.
    ///
    /// # Errors
    /// [`ReceiptError`] when `id` or `stat` is missing.
    pub fn from_text(bytes: &[u8]) -> Result<Receipt, ReceiptError> {
        let t = parse_text(bytes)?;
        let stat = t.stat().unwrap_or_default().to_owned();
        let id = t.id().unwrap_or_default().to_owned();
        Ok(fill_from_text(
            id,
            DeliveryState::from_stat(&stat),
            stat,
            &t,
        ))
    }
}

/// A C-octet-string TLV value as text: up to the first NUL, trimmed.
fn cstr(v: &[u8]) -> String {
    let end = v.iter().position(|&b| b == 0).unwrap_or(v.len());
    String::from_utf8_lossy(&v[..end]).trim().to_owned()
}

/// `network_error_code`: 3 octets (type, u16 code); some SMSCs send the
/// code as ASCII digits instead, which is accepted too.
fn network_error(v: &[u8]) -> (Option<String>, Option<u8>) {
    let digits = |v: &[u8]| !v.is_empty() && v.iter().all(u8::is_ascii_digit);
    let trimmed: &[u8] = match v.iter().position(|&b| b == 0) {
        Some(n) if n > 0 => &v[..n],
        _ => v,
    };
    if digits(trimmed) {
        return (Some(String::from_utf8_lossy(trimmed).into_owned()), None);
    }
    match v {
        &[t, hi, lo] => (
            Some(format!("{:03}", u16::from_be_bytes([hi, lo]))),
            Some(t),
        ),
        [] => (None, None),
        other => (
            Some(other.iter().map(|b| format!("{b:02X}")).collect()),
            None,
        ),
    }
}

/// Builds a receipt from a deliver_sm's receipt TLVs and its short_message
/// (or message_payload) text. TLVs win when present and valid; the text
/// fills the rest. `None` when no id or no state can be found anywhere.
pub fn from_parts(
    receipted_message_id: Option<&[u8]>,
    message_state: Option<u8>,
    network_error_code: Option<&[u8]>,
    short_message: &[u8],
) -> Option<Receipt> {
    let t = scan(short_message);
    let id = receipted_message_id
        .map(cstr)
        .filter(|s| !s.is_empty())
        .or_else(|| t.id().filter(|s| !s.is_empty()).map(str::to_owned))?;
    let from_tlv = message_state.and_then(DeliveryState::from_message_state);
    let (state, stat) = match (from_tlv, t.stat().filter(|s| !s.is_empty())) {
        (Some(s), _) => ((s, true), s.stat_word().to_owned()),
        (None, Some(word)) => (DeliveryState::from_stat(word), word.to_owned()),
        (None, None) => {
            // An undefined message_state value still says "a receipt".
            let v = message_state?;
            ((DeliveryState::Failed, false), v.to_string())
        }
    };
    let mut r = fill_from_text(id, state, stat, &t);
    if let Some(v) = network_error_code {
        let (err, ty) = network_error(v);
        if err.is_some() {
            r.err = err;
            r.network_type = ty;
        }
    }
    Some(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &[u8] = b"id:439041869 sub:001 dlvrd:001 submit date:2611241030 \
done date:2611241031 stat:DELIVRD err:000 text:Hello";

    #[test]
    fn text_alone_gives_a_full_receipt() {
        let r = from_parts(None, None, None, TEXT).unwrap();
        assert_eq!(r.id, "439041869");
        assert_eq!(r.state, DeliveryState::Delivered);
        assert_eq!(r.done_date.as_deref(), Some("2611241031"));
        assert_eq!(r, Receipt::from_text(TEXT).unwrap());
    }

    #[test]
    fn tlvs_win_and_text_fills_the_rest() {
        let r = from_parts(Some(b"1A2B3C4D\0"), Some(5), Some(&[3, 0x00, 0x22]), TEXT).unwrap();
        assert_eq!(r.id, "1A2B3C4D");
        assert_eq!(r.state, DeliveryState::Undeliverable);
        assert_eq!(r.stat, "UNDELIV");
        assert_eq!(r.err.as_deref(), Some("034"));
        assert_eq!(r.network_type, Some(3));
        assert_eq!(r.submit_date.as_deref(), Some("2611241030"));
    }

    #[test]
    fn id_without_state_falls_back_to_the_text() {
        let r = from_parts(Some(b"99"), None, None, TEXT).unwrap();
        assert_eq!((r.id.as_str(), r.state), ("99", DeliveryState::Delivered));
    }

    #[test]
    fn ascii_network_error_code_is_accepted() {
        let r = from_parts(Some(b"1"), Some(2), Some(b"069"), b"").unwrap();
        assert_eq!(r.err.as_deref(), Some("069"));
        assert_eq!(r.network_type, None);
    }

    #[test]
    fn nothing_usable_is_none() {
        assert_eq!(from_parts(None, Some(2), None, b"hello"), None);
        assert_eq!(from_parts(Some(b"5"), None, None, b"hello"), None);
        assert_eq!(from_parts(Some(b"\0"), Some(2), None, b""), None);
    }

    #[test]
    fn serializes_state_as_an_outcome() {
        let r = from_parts(Some(b"5"), Some(6), None, b"").unwrap();
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["state"], "intermediate");
        assert_eq!(v["stat"], "ACCEPTD");
        assert_eq!(v["id"], "5");
    }
}
