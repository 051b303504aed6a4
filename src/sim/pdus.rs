//! What the simulator reads from and writes into PDUs, as pure functions:
//! the record of a received submit, delivery receipts (TLVs + text, or text
//! only), mobile-originated messages cut into parts by [`crate::text::plan()`],
//! and garbage bodies that cannot parse.

use bytes::{BufMut, Bytes, BytesMut};
use serde::{Deserialize, Serialize};

use super::scenario::Rng;
use crate::pdu::{CommandId, CommandStatus, DataSm, Header, Pdu, SmBody, Tlv, TlvTag, Tlvs};
use crate::session::machine::SubmitRequest;
use crate::text::{self, ConcatInfo, Dcs0, PlanOptions};

/// esm_class of a delivery receipt (SMSC delivery receipt, bits 2-5).
pub const ESM_RECEIPT: u8 = 0x04;
/// esm_class bit: short_message starts with a UDH.
pub const ESM_UDHI: u8 = 0x40;

/// One submit_sm or data_sm the simulator received.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceivedSubmit {
    /// Position in the record (from 1), for `received {since}`.
    pub index: u64,
    /// The connection (bind) it came on, from 1.
    pub bind: u64,
    /// `submit_sm` or `data_sm`.
    pub command: String,
    /// source_addr.
    pub source: String,
    /// source_addr_ton.
    pub source_ton: u8,
    /// source_addr_npi.
    pub source_npi: u8,
    /// destination_addr.
    pub destination: String,
    /// dest_addr_ton.
    pub dest_ton: u8,
    /// dest_addr_npi.
    pub dest_npi: u8,
    /// data_coding.
    pub data_coding: u8,
    /// esm_class.
    pub esm_class: u8,
    /// registered_delivery.
    pub registered_delivery: u8,
    /// The message octets in hex (short_message, or message_payload when
    /// that carried the text), UDH included.
    pub short_message_hex: String,
    /// This part's text, decoded on its own (UDH removed).
    pub text: String,
    /// Concatenation data from the UDH or SAR TLVs.
    pub concat: Option<ConcatInfo>,
    /// The message id answered (`None` when refused).
    pub message_id: Option<String>,
    /// The command_status answered (`None` while unanswered or when the
    /// connection was dropped instead).
    pub status: Option<u32>,
}

/// The message fields of a submit, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SubmitView {
    pub(crate) command: &'static str,
    pub(crate) source: String,
    pub(crate) source_ton: u8,
    pub(crate) source_npi: u8,
    pub(crate) destination: String,
    pub(crate) dest_ton: u8,
    pub(crate) dest_npi: u8,
    pub(crate) data_coding: u8,
    pub(crate) esm_class: u8,
    pub(crate) registered_delivery: u8,
    pub(crate) octets: Vec<u8>,
    pub(crate) text: String,
    pub(crate) concat: Option<ConcatInfo>,
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn decode_text(data_coding: u8, esm_class: u8, octets: &[u8], tlvs: &Tlvs<'_>) -> text::Decoded {
    let udhi = esm_class & ESM_UDHI != 0;
    let sar = (
        tlvs.get_uint(TlvTag::SAR_MSG_REF_NUM),
        tlvs.get_uint(TlvTag::SAR_TOTAL_SEGMENTS),
        tlvs.get_uint(TlvTag::SAR_SEGMENT_SEQNUM),
    );
    match sar {
        (Some(r), Some(t), Some(s)) => text::decode_sar(
            data_coding,
            udhi,
            octets,
            Dcs0::Gsm,
            r as u16,
            t as u8,
            s as u8,
        ),
        _ => text::decode(data_coding, udhi, octets, Dcs0::Gsm),
    }
}

/// Reads the message fields of a submit_sm or data_sm frame; `None` for
/// anything else or a body that does not parse (the machine has already
/// answered those).
pub(crate) fn read_submit(frame: &[u8]) -> Option<SubmitView> {
    let d = Pdu::parse(frame).ok()?;
    let sm = |b: &SmBody<'_>| {
        let octets = match b.tlvs.get(TlvTag::MESSAGE_PAYLOAD) {
            Some(p) if b.short_message.is_empty() => p,
            _ => b.short_message,
        };
        let t = decode_text(b.data_coding, b.esm_class, octets, &b.tlvs);
        SubmitView {
            command: "submit_sm",
            source: lossy(b.source_addr),
            source_ton: b.source_addr_ton,
            source_npi: b.source_addr_npi,
            destination: lossy(b.destination_addr),
            dest_ton: b.dest_addr_ton,
            dest_npi: b.dest_addr_npi,
            data_coding: b.data_coding,
            esm_class: b.esm_class,
            registered_delivery: b.registered_delivery,
            octets: octets.to_vec(),
            text: t.text,
            concat: t.concat,
        }
    };
    let data = |b: &DataSm<'_>| {
        let octets = b.tlvs.get(TlvTag::MESSAGE_PAYLOAD).unwrap_or_default();
        let t = decode_text(b.data_coding, b.esm_class, octets, &b.tlvs);
        SubmitView {
            command: "data_sm",
            source: lossy(b.source_addr),
            source_ton: b.source_addr_ton,
            source_npi: b.source_addr_npi,
            destination: lossy(b.destination_addr),
            dest_ton: b.dest_addr_ton,
            dest_npi: b.dest_addr_npi,
            data_coding: b.data_coding,
            esm_class: b.esm_class,
            registered_delivery: b.registered_delivery,
            octets: octets.to_vec(),
            text: t.text,
            concat: t.concat,
        }
    };
    match d.pdu {
        Pdu::SubmitSm(b) => Some(sm(&b)),
        Pdu::DataSm(b) => Some(data(&b)),
        _ => None,
    }
}

/// Lower-case hex of `b`.
pub(crate) fn hex(b: &[u8]) -> String {
    use std::fmt::Write;
    b.iter()
        .fold(String::with_capacity(b.len() * 2), |mut s, x| {
            let _ = write!(s, "{x:02x}");
            s
        })
}

/// `YYMMDDhhmm` (UTC) of milliseconds since the Unix epoch, the receipt
/// text's date format.
pub fn receipt_date(ms: u64) -> String {
    let secs = ms / 1000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{:02}{:02}{:02}{:02}{:02}",
        year.rem_euclid(100),
        month,
        day,
        rem / 3600,
        (rem % 3600) / 60
    )
}

/// What a receipt reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ReceiptSpec<'a> {
    /// The id as the receipt carries it.
    pub(crate) id: &'a str,
    /// The submit's source: the receipt's destination.
    pub(crate) submit_source: (&'a str, u8, u8),
    /// The submit's destination: the receipt's source.
    pub(crate) submit_destination: (&'a str, u8, u8),
    /// When the submit arrived and when it was "delivered" (ms epoch).
    pub(crate) submit_ms: u64,
    /// See above.
    pub(crate) done_ms: u64,
    /// Delivered, or undeliverable.
    pub(crate) delivered: bool,
    /// The submitted text (the receipt quotes its first 20 characters).
    pub(crate) text: &'a str,
    /// TLVs as well as the text.
    pub(crate) with_tlvs: bool,
}

/// The receipt text `id:… sub:001 dlvrd:001 submit date:… done date:…
/// stat:… err:… text:…`.
pub(crate) fn receipt_text(r: &ReceiptSpec<'_>) -> String {
    let (dlvrd, stat, err) = if r.delivered {
        ("001", "DELIVRD", "000")
    } else {
        ("000", "UNDELIV", "001")
    };
    let quoted: String = r.text.chars().take(20).collect();
    format!(
        "id:{} sub:001 dlvrd:{dlvrd} submit date:{} done date:{} stat:{stat} err:{err} text:{quoted}",
        r.id,
        receipt_date(r.submit_ms),
        receipt_date(r.done_ms),
    )
}

/// GSM 03.38 octets of `s`, with '?' for what GSM lacks.
fn gsm_lossy(s: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    for c in s.chars() {
        if !text::gsm7::push_char(c, &mut out) {
            out.push(b'?');
        }
    }
    out
}

/// The deliver_sm of a receipt, under `tag`.
pub(crate) fn receipt_request(tag: u64, r: &ReceiptSpec<'_>) -> SubmitRequest {
    let short_message = gsm_lossy(&receipt_text(r));
    let mut id = r.id.as_bytes().to_vec();
    id.push(0);
    let state = [if r.delivered { 2u8 } else { 5u8 }];
    // network_error_code: type 3 (GSM), error 0 or 1.
    let net = [3u8, 0, u8::from(!r.delivered)];
    let tlv_list = [
        Tlv::new(TlvTag::RECEIPTED_MESSAGE_ID, &id),
        Tlv::new(TlvTag::MESSAGE_STATE, &state),
        Tlv::new(TlvTag::NETWORK_ERROR_CODE, &net),
    ];
    let tlvs = if r.with_tlvs {
        Tlvs::from_list(&tlv_list)
    } else {
        Tlvs::default()
    };
    let body = SmBody {
        source_addr_ton: r.submit_destination.1,
        source_addr_npi: r.submit_destination.2,
        source_addr: r.submit_destination.0.as_bytes(),
        dest_addr_ton: r.submit_source.1,
        dest_addr_npi: r.submit_source.2,
        destination_addr: r.submit_source.0.as_bytes(),
        esm_class: ESM_RECEIPT,
        short_message: &short_message,
        tlvs,
        ..SmBody::default()
    };
    SubmitRequest::new(tag, &Pdu::DeliverSm(body))
}

/// A mobile-originated message to inject.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mo {
    /// The customer's number (digits; a leading '+' is dropped).
    pub from: String,
    /// The service number it is sent to.
    pub to: String,
    /// The text (GSM 7-bit when it fits, else UCS-2; long texts in parts).
    pub text: String,
    /// source_addr_ton (default 1, international; 2 for national).
    #[serde(default = "one")]
    pub ton: u8,
    /// source_addr_npi (default 1, E.164).
    #[serde(default = "one")]
    pub npi: u8,
}

fn one() -> u8 {
    1
}

impl Mo {
    /// From `from` to `to` with international TON/NPI 1/1.
    pub fn new(from: &str, to: &str, text: &str) -> Self {
        Mo {
            from: from.to_owned(),
            to: to.to_owned(),
            text: text.to_owned(),
            ton: 1,
            npi: 1,
        }
    }
}

/// The deliver_sm parts of `mo`, tagged from `first_tag` on, with the
/// 8-bit concatenation `reference` when it takes more than one part.
///
/// # Errors
/// The text needs more than 255 parts.
pub(crate) fn mo_requests(
    mo: &Mo,
    reference: u8,
    first_tag: u64,
) -> Result<Vec<SubmitRequest>, text::PlanError> {
    let opts = PlanOptions {
        max_parts: u8::MAX,
        ..PlanOptions::default()
    };
    let plan = text::plan(&mo.text, &opts, u16::from(reference))?;
    let from = mo.from.trim_start_matches('+');
    let to = mo.to.trim_start_matches('+');
    // A short code (up to 8 digits) is network-specific (TON 3, NPI 0).
    let (dest_ton, dest_npi) = if to.len() <= 8 { (3, 0) } else { (1, 1) };
    let esm_class = if plan.esm_udhi { ESM_UDHI } else { 0 };
    Ok(plan
        .parts
        .iter()
        .zip(first_tag..)
        .map(|(part, tag)| {
            let body = SmBody {
                source_addr_ton: mo.ton,
                source_addr_npi: mo.npi,
                source_addr: from.as_bytes(),
                dest_addr_ton: dest_ton,
                dest_addr_npi: dest_npi,
                destination_addr: to.as_bytes(),
                esm_class,
                data_coding: plan.data_coding,
                short_message: &part.short_message,
                ..SmBody::default()
            };
            SubmitRequest::new(tag, &Pdu::DeliverSm(body))
        })
        .collect())
}

/// A PDU that cannot parse under a valid header: `command_id` with a body
/// of 8..=64 random non-zero octets (no C-string ever ends, so no body
/// parser accepts it).
pub(crate) fn garbage(rng: &mut Rng, command_id: CommandId, seq: u32) -> Bytes {
    let n = rng.range(8, 64) as usize;
    let mut b = BytesMut::with_capacity(Header::LEN + n);
    b.put_u32((Header::LEN + n) as u32);
    b.put_u32(command_id.0);
    b.put_u32(CommandStatus::ROK.0);
    b.put_u32(seq);
    for _ in 0..n {
        b.put_u8(rng.range(1, 255) as u8);
    }
    b.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receipt_date_formats_utc() {
        // 2026-11-18T11:06:40Z
        assert_eq!(receipt_date(1_795_000_000_123), "2611181106");
        assert_eq!(receipt_date(0), "7001010000");
        // 2024-02-29T23:59:00Z, a leap day.
        assert_eq!(receipt_date(1_709_251_140_000), "2402292359");
    }

    fn spec(delivered: bool, with_tlvs: bool) -> ReceiptSpec<'static> {
        ReceiptSpec {
            id: "3B9ACA01",
            submit_source: ("447911123456", 1, 1),
            submit_destination: ("819012345678", 1, 1),
            submit_ms: 1_795_000_000_000,
            done_ms: 1_795_000_060_000,
            delivered,
            text: "Your appointment is confirmed for Monday",
            with_tlvs,
        }
    }

    #[test]
    fn receipt_parses_back_with_tlvs_and_swapped_addresses() {
        let req = receipt_request(1, &spec(true, true));
        let d = Pdu::parse(req.frame()).unwrap();
        let Pdu::DeliverSm(b) = d.pdu else {
            panic!("not a deliver_sm")
        };
        assert_eq!(b.esm_class, ESM_RECEIPT);
        assert_eq!(b.source_addr, b"819012345678");
        assert_eq!(b.destination_addr, b"447911123456");
        let t = std::str::from_utf8(b.short_message).unwrap();
        assert_eq!(
            t,
            "id:3B9ACA01 sub:001 dlvrd:001 submit date:2611181106 done date:2611181107 \
             stat:DELIVRD err:000 text:Your appointment is "
        );
        assert_eq!(
            b.tlvs.get(TlvTag::RECEIPTED_MESSAGE_ID),
            Some(&b"3B9ACA01\0"[..])
        );
        assert_eq!(b.tlvs.get_uint(TlvTag::MESSAGE_STATE), Some(2));
        assert_eq!(b.tlvs.get(TlvTag::NETWORK_ERROR_CODE), Some(&[3, 0, 0][..]));
        let parsed = crate::dlr::from_text::parse_text(b.short_message).unwrap();
        assert_eq!(parsed.id(), Some("3B9ACA01"));
        assert_eq!(parsed.stat(), Some("DELIVRD"));
    }

    #[test]
    fn text_only_undeliv_receipt_has_no_tlvs() {
        let req = receipt_request(1, &spec(false, false));
        let d = Pdu::parse(req.frame()).unwrap();
        let Pdu::DeliverSm(b) = d.pdu else {
            panic!("not a deliver_sm")
        };
        assert!(b.tlvs.is_empty());
        let t = std::str::from_utf8(b.short_message).unwrap();
        assert!(t.contains("stat:UNDELIV err:001"), "{t}");
        assert!(t.contains("dlvrd:000"), "{t}");
    }

    #[test]
    fn long_japanese_mo_is_cut_into_ucs2_parts_with_udh() {
        let text = "お問い合わせありがとうございます。".repeat(5);
        let mo = Mo::new("+819012345678", "447911123456", &text);
        let parts = mo_requests(&mo, 42, 10).unwrap();
        assert!(parts.len() > 1);
        let mut joined = String::new();
        for (i, p) in parts.iter().enumerate() {
            let d = Pdu::parse(p.frame()).unwrap();
            let Pdu::DeliverSm(b) = d.pdu else {
                panic!("not a deliver_sm")
            };
            assert_eq!(p.tag, 10 + i as u64);
            assert_eq!((b.data_coding, b.esm_class), (8, ESM_UDHI));
            assert_eq!(b.source_addr, b"819012345678");
            let t = text::decode(8, true, b.short_message, Dcs0::Gsm);
            let c = t.concat.unwrap();
            assert_eq!(
                (c.reference, c.total, c.seq),
                (42, parts.len() as u8, i as u8 + 1)
            );
            joined.push_str(&t.text);
        }
        assert_eq!(joined, text);
    }

    #[test]
    fn garbage_never_parses_and_keeps_a_valid_length() {
        let mut rng = Rng::new(3);
        for seq in 0..200 {
            let g = garbage(&mut rng, CommandId::DELIVER_SM, seq);
            let h = Header::peek(&g).unwrap();
            assert_eq!(h.command_length as usize, g.len());
            assert!(Pdu::parse(&g).is_err());
        }
    }

    #[test]
    fn read_submit_decodes_udh_parts() {
        let mo = Mo::new("447911123456", "819012345678", &"a".repeat(200));
        let parts = mo_requests(&mo, 7, 1).unwrap();
        // A deliver_sm is not a submit.
        assert!(read_submit(parts[0].frame()).is_none());
        let d = Pdu::parse(parts[1].frame()).unwrap();
        let Pdu::DeliverSm(b) = d.pdu else {
            panic!("not a deliver_sm")
        };
        let mut buf = BytesMut::new();
        Pdu::SubmitSm(b).encode(CommandStatus::ROK, 5, &mut buf);
        let v = read_submit(&buf).unwrap();
        assert_eq!(v.text, "a".repeat(47));
        assert_eq!(v.concat, ConcatInfo::new(7, 2, 2));
        assert_eq!(v.esm_class, ESM_UDHI);
    }
}
