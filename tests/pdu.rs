//! Integration tests of the SMPP codec (`smppgw::pdu`): golden vectors from
//! two independent implementations, truncation and lying lengths, arbitrary
//! round trips, framing in chunks, and the leniencies carriers need.

use bytes::BytesMut;
use proptest::prelude::*;
use serde_json::Value;
use smppgw::pdu::json::{from_json, to_json};
use smppgw::pdu::*;
use tokio_util::codec::{Decoder, Encoder};

// ===== vectors =====

struct Vector {
    name: String,
    bytes: Vec<u8>,
    fields: serde_json::Map<String, Value>,
    text: Option<String>,
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn vectors() -> Vec<Vector> {
    let all: Value = serde_json::from_str(include_str!("../src/pdu/testdata/smpp34.json")).unwrap();
    all.as_array()
        .unwrap()
        .iter()
        .map(|v| Vector {
            name: v["name"].as_str().unwrap().to_owned(),
            bytes: unhex(v["hex"].as_str().unwrap()),
            fields: v["fields"].as_object().unwrap().clone(),
            text: v["text"].as_str().map(str::to_owned),
        })
        .collect()
}

fn encode(d: &Decoded<'_>) -> BytesMut {
    let mut out = BytesMut::new();
    d.pdu
        .encode(d.header.command_status, d.header.sequence_number, &mut out);
    out
}

/// Finds `key` in the JSON form: a top-level field, or a TLV by name.
fn lookup(json: &Value, key: &str, expected: &Value) -> Option<Value> {
    if key == "short_message" {
        return Some(json["short_message"]["hex"].clone());
    }
    if let Some(v) = json.get(key) {
        return Some(v.clone());
    }
    let tlv = json["tlvs"].as_array()?.iter().find(|t| t["name"] == key)?;
    match (expected, tlv.get("value")) {
        (Value::Number(_), Some(v)) => Some(v.clone()),
        (Value::String(_), Some(v @ Value::String(_))) => Some(v.clone()),
        _ => Some(tlv["hex"].clone()),
    }
}

#[test]
fn every_vector_decodes_to_its_fields() {
    for v in vectors() {
        let d = Pdu::parse(&v.bytes).unwrap_or_else(|e| panic!("{}: {e}", v.name));
        assert!(
            d.quirks.is_empty(),
            "{}: unexpected quirks {:?}",
            v.name,
            d.quirks
        );
        let json = to_json(&d);
        for (k, expected) in &v.fields {
            let got = lookup(&json, k, expected);
            assert_eq!(got.as_ref(), Some(expected), "{}: field {k}", v.name);
        }
        if let Some(text) = &v.text {
            assert_eq!(
                json["text"].as_str(),
                Some(text.as_str()),
                "{}: text",
                v.name
            );
        }
    }
}

#[test]
fn can_round_trip_every_vector_byte_for_byte() {
    for v in vectors() {
        let d = Pdu::parse(&v.bytes).unwrap();
        assert_eq!(&encode(&d)[..], &v.bytes[..], "{}", v.name);
    }
}

#[test]
fn can_round_trip_every_vector_through_json() {
    for v in vectors() {
        let d = Pdu::parse(&v.bytes).unwrap();
        let json = to_json(&d);
        let text = serde_json::to_string(&json).unwrap();
        let back = from_json(&serde_json::from_str(&text).unwrap()).unwrap();
        assert_eq!(&back[..], &v.bytes[..], "{}", v.name);
    }
}

#[test]
fn json_short_message_can_be_given_as_text() {
    let v = serde_json::json!({
        "command": "submit_sm", "sequence_number": 15,
        "source_addr_ton": 1, "source_addr_npi": 1, "source_addr": "15550100",
        "dest_addr_ton": 1, "dest_addr_npi": 1, "destination_addr": "15550111",
        "short_message": {"text": "Price 10€ [x] {y} ^~\\|"},
    });
    let wanted = vectors()
        .into_iter()
        .find(|v| v.name == "submit_sm_gsm_extension_chars")
        .unwrap();
    assert_eq!(&from_json(&v).unwrap()[..], &wanted.bytes[..]);
}

#[test]
fn rejects_unknown_json_command() {
    assert!(from_json(&serde_json::json!({"command": "submit_sms"})).is_err());
}

// ===== truncation and lying lengths =====

#[test]
fn rejects_every_strict_prefix_of_every_vector() {
    let mut codec = SmppCodec::new(4096);
    for v in vectors() {
        for n in 0..v.bytes.len() {
            assert!(Pdu::parse(&v.bytes[..n]).is_err(), "{} prefix {n}", v.name);
            let mut buf = BytesMut::from(&v.bytes[..n]);
            assert_eq!(
                codec.decode(&mut buf).unwrap(),
                None,
                "{} prefix {n}",
                v.name
            );
        }
    }
}

#[test]
fn truncated_mandatory_fields_are_detected_even_with_a_patched_length() {
    // With command_length patched to the prefix, a cut inside the mandatory
    // fields must fail, or (only when the cut drops the NUL of the last
    // C-string) be reported; a cut inside the TLVs must drop or report them.
    for v in vectors() {
        let full = Pdu::parse(&v.bytes).unwrap();
        let full_tlvs = full.pdu.tlvs().map(|t| t.iter().count()).unwrap_or(0);
        for n in 16..v.bytes.len() {
            let mut p = v.bytes[..n].to_vec();
            p[..4].copy_from_slice(&(n as u32).to_be_bytes());
            match Pdu::parse(&p) {
                Err(_) => {}
                Ok(d) => {
                    let tlvs = d.pdu.tlvs().map(|t| t.iter().count()).unwrap_or(0);
                    assert!(
                        !d.quirks.is_empty() || tlvs < full_tlvs,
                        "{} prefix {n} decoded silently: {:?}",
                        v.name,
                        d.pdu
                    );
                }
            }
        }
    }
}

fn vector(name: &str) -> Vec<u8> {
    vectors()
        .into_iter()
        .find(|v| v.name == name)
        .unwrap()
        .bytes
}

#[test]
fn rejects_lying_sm_length() {
    let mut b = vector("submit_sm_gsm_alnum_sender");
    let at = b.len() - 11 - 1;
    assert_eq!(b[at], 11);
    b[at] = 12;
    let e = Pdu::parse(&b).unwrap_err();
    assert_eq!(
        (e.kind, e.field, e.status()),
        (
            DecodeErrorKind::BadSmLength,
            "sm_length",
            CommandStatus::RINVMSGLEN
        )
    );
    assert_eq!(e.offset, at);
}

#[test]
fn rejects_lying_tlv_length_in_a_request() {
    let mut b = vector("submit_sm_sar_tlvs");
    let n = b.len();
    b[n - 2] = 2; // sar_segment_seqnum claims 2 octets, 1 left
    let e = Pdu::parse(&b).unwrap_err();
    assert_eq!(e.status(), CommandStatus::RINVOPTPARSTREAM);
}

#[test]
fn malformed_trailing_tlv_in_deliver_sm_keeps_the_pdu() {
    let mut b = vector("deliver_sm_receipt_text_and_tlvs");
    let n = b.len();
    b[n - 4] = 9; // network_error_code claims 9 octets, 3 left
    let d = Pdu::parse(&b).unwrap();
    assert_eq!(
        d.quirks.names().collect::<Vec<_>>(),
        ["malformed_trailing_tlv"]
    );
    let Pdu::DeliverSm(sm) = d.pdu else { panic!() };
    assert_eq!(
        sm.tlvs.get(TlvTag::RECEIPTED_MESSAGE_ID),
        Some(&b"1A2B3C4D\0"[..])
    );
    assert_eq!(sm.tlvs.get(TlvTag::NETWORK_ERROR_CODE), None);
}

#[test]
fn rejects_known_tlv_with_wrong_length_in_a_request() {
    let mut b = vector("submit_sm_sar_tlvs");
    let n = b.len();
    // sar_segment_seqnum 020f 0001 02 -> 020f 0002 0002 (length 2 for a u8)
    b.truncate(n - 1);
    b.extend_from_slice(&[0, 2]);
    let l = b.len() - 3;
    b[l] = 2;
    let len = b.len() as u32;
    b[..4].copy_from_slice(&len.to_be_bytes());
    assert_eq!(
        Pdu::parse(&b).unwrap_err().status(),
        CommandStatus::RINVPARLEN
    );
}

#[test]
fn rejects_trailing_bytes_after_a_body_without_tlvs() {
    let mut b = vector("query_sm");
    b.extend_from_slice(&[0, 0, 0, 0, 0]);
    let len = b.len() as u32;
    b[..4].copy_from_slice(&len.to_be_bytes());
    let e = Pdu::parse(&b).unwrap_err();
    assert_eq!(
        (e.kind, e.status()),
        (DecodeErrorKind::TrailingBytes, CommandStatus::RINVCMDLEN)
    );
}

#[test]
fn rejects_over_long_fields_with_the_field_status() {
    let pdu = Pdu::SubmitSm(SubmitSm {
        source_addr: b"123456789012345678901",
        ..Default::default()
    });
    let mut b = BytesMut::new();
    pdu.encode(CommandStatus::ROK, 1, &mut b);
    let e = Pdu::parse(&b).unwrap_err();
    assert_eq!(
        (e.field, e.status()),
        ("source_addr", CommandStatus::RINVSRCADR)
    );
    let pdu = Pdu::SubmitSm(SubmitSm {
        validity_period: b"0000010000",
        ..Default::default()
    });
    let mut b = BytesMut::new();
    pdu.encode(CommandStatus::ROK, 1, &mut b);
    assert_eq!(
        Pdu::parse(&b).unwrap_err().status(),
        CommandStatus::RINVEXPIRY
    );
}

#[test]
fn rejects_header_only_garbage() {
    assert_eq!(
        Pdu::parse(&[0; 10]).unwrap_err().kind,
        DecodeErrorKind::TooShort
    );
    let e = Pdu::parse(&[0, 0, 0, 17, 0, 0, 0, 21, 0, 0, 0, 0, 0, 0, 0, 1]).unwrap_err();
    assert_eq!(e.kind, DecodeErrorKind::LengthMismatch);
    assert_eq!(e.status(), CommandStatus::RINVCMDLEN);
}

// ===== leniencies (CARRIERS.md section 7) =====

fn pdu_bytes(id: u32, status: u32, body: &[u8]) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&((16 + body.len()) as u32).to_be_bytes());
    b.extend_from_slice(&id.to_be_bytes());
    b.extend_from_slice(&status.to_be_bytes());
    b.extend_from_slice(&7u32.to_be_bytes());
    b.extend_from_slice(body);
    b
}

#[test]
fn error_resp_without_body_is_accepted_and_reported() {
    let b = pdu_bytes(0x8000_0004, 0x58, &[]);
    let d = Pdu::parse(&b).unwrap();
    assert_eq!(d.pdu, Pdu::SubmitSmResp(SubmitSmResp::default()));
    assert!(d.quirks.is_empty(), "SMPP 3.4 4.4.2: no body on error");
    assert_eq!(&encode(&d)[..], &b[..]);
    let b = pdu_bytes(0x8000_0009, 0x0E, &[]);
    let d = Pdu::parse(&b).unwrap();
    assert_eq!(d.pdu, Pdu::BindTransceiverResp(BindResp::default()));
    assert_eq!(
        d.quirks.names().collect::<Vec<_>>(),
        ["error_resp_without_body"]
    );
    assert_eq!(&encode(&d)[..], &b[..]);
}

#[test]
fn error_resp_with_body_is_accepted_and_reported() {
    let b = pdu_bytes(0x8000_0004, 0x0B, b"00000000\0");
    let d = Pdu::parse(&b).unwrap();
    let Pdu::SubmitSmResp(r) = d.pdu else {
        panic!()
    };
    assert_eq!(r.message_id, Some(&b"00000000"[..]));
    assert!(d.quirks.contains(Quirk::ErrorRespWithBody));
    let b = pdu_bytes(0x8000_0015, 0x08, &[1, 2, 3]);
    let d = Pdu::parse(&b).unwrap();
    assert_eq!(d.pdu, Pdu::EnquireLinkResp);
    assert!(d.quirks.contains(Quirk::ErrorRespWithBody));
}

#[test]
fn rejects_ok_resp_without_body() {
    let e = Pdu::parse(&pdu_bytes(0x8000_0004, 0, &[])).unwrap_err();
    assert_eq!(e.kind, DecodeErrorKind::MissingBody);
}

#[test]
fn missing_final_nul_is_detected() {
    let b = pdu_bytes(0x8000_0004, 0, b"abc123");
    let d = Pdu::parse(&b).unwrap();
    assert_eq!(
        d.pdu,
        Pdu::SubmitSmResp(SubmitSmResp {
            message_id: Some(b"abc123"),
            tlvs: Tlvs::EMPTY
        })
    );
    assert_eq!(d.quirks.names().collect::<Vec<_>>(), ["missing_final_nul"]);
}

#[test]
fn trailing_short_fragment_after_short_message_is_skipped() {
    let mut b = vector("deliver_sm_mo_gsm");
    b.push(0);
    let len = b.len() as u32;
    b[..4].copy_from_slice(&len.to_be_bytes());
    let d = Pdu::parse(&b).unwrap();
    assert_eq!(d.quirks.names().collect::<Vec<_>>(), ["trailing_bytes"]);
    let Pdu::DeliverSm(sm) = d.pdu else { panic!() };
    assert_eq!(sm.short_message, b"Thanks, what time?");
}

#[test]
fn over_spec_password_round_trips_and_is_reported() {
    // The vector smpplib_bind_transceiver_long_password carries a 7 character
    // password (within spec); carriers do issue longer ones, so they must
    // round-trip too.
    let pdu = Pdu::BindTransceiver(Bind {
        system_id: b"contactcenter01",
        password: b"Xk9#mq2Lw7pZ",
        interface_version: 0x34,
        ..Default::default()
    });
    let mut b = BytesMut::new();
    pdu.encode(CommandStatus::ROK, 3, &mut b);
    let d = Pdu::parse(&b).unwrap();
    assert_eq!(d.pdu, pdu);
    assert_eq!(d.quirks.names().collect::<Vec<_>>(), ["over_spec_length"]);
    assert_eq!(&encode(&d)[..], &b[..]);
}

#[test]
fn query_sm_resp_message_state_does_not_collide_with_the_tlv() {
    let pdu = Pdu::QuerySmResp(QuerySmResp {
        message_id: Some(b"1A2B"),
        final_date: b"261124103100000+",
        message_state: 2,
        error_code: 0,
    });
    let mut b = BytesMut::new();
    pdu.encode(CommandStatus::ROK, 41, &mut b);
    let d = Pdu::parse(&b).unwrap();
    assert_eq!(d.pdu, pdu);
    let json = to_json(&d);
    assert_eq!(json["message_state"], 2);
    assert!(json.get("tlvs").is_none());
    let receipt = vector("deliver_sm_receipt_text_and_tlvs");
    let d = Pdu::parse(&receipt).unwrap();
    let json = to_json(&d);
    assert!(json.get("message_state").is_none());
    assert_eq!(
        d.pdu.tlvs().unwrap().get_uint(TlvTag::MESSAGE_STATE),
        Some(2)
    );
}

// ===== open wire values =====

#[test]
fn unknown_command_id_status_and_tlv_survive_byte_for_byte() {
    let other = pdu_bytes(0x0001_0200, 0x0000_0401, &[9, 8, 7, 0, 1]);
    let d = Pdu::parse(&other).unwrap();
    assert_eq!(
        d.pdu,
        Pdu::Other {
            command_id: CommandId(0x0001_0200),
            body: &[9, 8, 7, 0, 1]
        }
    );
    assert_eq!(d.header.command_status.name(), None);
    assert_eq!(&encode(&d)[..], &other[..]);

    let mut b = vector("deliver_sm_mo_gsm");
    b.extend_from_slice(&[0x14, 0x01, 0x00, 0x03, b'U', b'A', 0x01]);
    let len = b.len() as u32;
    b[..4].copy_from_slice(&len.to_be_bytes());
    let d = Pdu::parse(&b).unwrap();
    assert!(d.quirks.is_empty());
    assert_eq!(
        d.pdu.tlvs().unwrap().get(TlvTag(0x1401)),
        Some(&b"UA\x01"[..])
    );
    assert_eq!(&encode(&d)[..], &b[..]);
    let json = to_json(&d);
    assert_eq!(&from_json(&json).unwrap()[..], &b[..]);
}

#[test]
fn tlv_names_cover_3_4_and_5_0() {
    for (tag, name) in [
        (0x001E, "receipted_message_id"),
        (0x0427, "message_state"),
        (0x0423, "network_error_code"),
        (0x0424, "message_payload"),
        (0x020C, "sar_msg_ref_num"),
        (0x0210, "sc_interface_version"),
        (0x0428, "congestion_state"),
        (0x060B, "billing_identification"),
        (0x060D, "source_network_id"),
        (0x060E, "dest_network_id"),
    ] {
        assert_eq!(TlvTag(tag).name(), Some(name));
    }
    assert_eq!(TlvTag(0x1401).name(), None);
}

// ===== framing =====

#[test]
fn chunked_feeding_gives_the_same_frames() {
    let vs = vectors();
    let stream: Vec<u8> = vs.iter().flat_map(|v| v.bytes.clone()).collect();
    for chunk in [1, 2, 3, 7, 16, 64, 1000] {
        let mut codec = SmppCodec::new(4096);
        let mut buf = BytesMut::new();
        let mut frames = Vec::new();
        for c in stream.chunks(chunk) {
            buf.extend_from_slice(c);
            while let Some(f) = codec.decode(&mut buf).unwrap() {
                frames.push(f);
            }
        }
        assert!(buf.is_empty());
        assert_eq!(frames.len(), vs.len(), "chunk {chunk}");
        for (f, v) in frames.iter().zip(&vs) {
            assert_eq!(&f.bytes[..], &v.bytes[..]);
            assert_eq!(f.header.command_length as usize, v.bytes.len());
            assert!(f.parse().is_ok());
        }
    }
}

#[test]
fn bad_length_is_fatal_without_buffering() {
    for (len, max) in [
        (0u32, 4096usize),
        (15, 4096),
        (4097, 4096),
        (u32::MAX, 4096),
    ] {
        let mut codec = SmppCodec::new(max);
        let mut buf = BytesMut::from(&len.to_be_bytes()[..]);
        let before = buf.capacity();
        match codec.decode(&mut buf) {
            Err(FrameError::BadLength { length, max: m }) => assert_eq!((length, m), (len, max)),
            other => panic!("{len}: {other:?}"),
        }
        assert!(buf.capacity() <= before.max(16));
    }
}

#[test]
fn bad_body_is_a_frame_not_a_codec_error() {
    let garbage = pdu_bytes(0x0000_0004, 0, &[0xFF; 30]);
    let mut codec = SmppCodec::new(4096);
    let mut buf = BytesMut::from(&garbage[..]);
    let f = codec.decode(&mut buf).unwrap().unwrap();
    assert_eq!(f.header.sequence_number, 7);
    let e = f.parse().unwrap_err();
    assert_eq!(e.status(), CommandStatus::RINVSERTYP);
}

#[test]
fn encoder_writes_frames_verbatim() {
    let f = Frame::from_pdu(&Pdu::EnquireLink, CommandStatus::ROK, 10);
    let mut codec = SmppCodec::new(4096);
    let mut out = BytesMut::new();
    codec.encode(&f, &mut out).unwrap();
    codec.encode(f.clone(), &mut out).unwrap();
    assert_eq!(&out[..16], &vector("enquire_link")[..]);
    assert_eq!(out.len(), 32);
}

// ===== arbitrary round trips =====

fn cstr(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(1u8..=255, 0..max)
}

fn octets(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..max)
}

fn time() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(Vec::new()),
        prop::collection::vec(b'0'..=b'9', 16..=16)
    ]
}

fn tlv_section() -> impl Strategy<Value = Vec<u8>> {
    // Unknown vendor tags with any value, plus well-formed known ones.
    let unknown = (0x1400u16..0x14FF, octets(20));
    let known = prop_oneof![
        any::<u16>().prop_map(|v| (0x020Cu16, v.to_be_bytes().to_vec())),
        any::<u8>().prop_map(|v| (0x0427u16, vec![v])),
        octets(300).prop_map(|v| (0x0424u16, v)),
    ];
    prop::collection::vec(prop_oneof![unknown, known], 0..4).prop_map(|ts| {
        let mut out = Vec::new();
        for (tag, v) in ts {
            out.extend_from_slice(&tag.to_be_bytes());
            out.extend_from_slice(&(v.len() as u16).to_be_bytes());
            out.extend_from_slice(&v);
        }
        out
    })
}

#[derive(Debug, Clone)]
struct Owned {
    kind: u8,
    s: [Vec<u8>; 6],
    n: [u8; 8],
    sm: Vec<u8>,
    tlvs: Vec<u8>,
    status: u32,
    seq: u32,
}

fn owned() -> impl Strategy<Value = Owned> {
    (
        0u8..9,
        (cstr(6), cstr(21), cstr(21), time(), time(), cstr(16)),
        any::<[u8; 8]>(),
        octets(255),
        tlv_section(),
        any::<u32>(),
    )
        .prop_map(|(kind, (a, b, c, d, e, f), n, sm, tlvs, seq)| Owned {
            kind,
            s: [a, b, c, d, e, f],
            n,
            sm,
            tlvs,
            status: 0,
            seq,
        })
}

fn build(o: &Owned) -> Pdu<'_> {
    let tlvs = Tlvs::from_raw(&o.tlvs).unwrap();
    let [a, b, c, d, e, f] = &o.s;
    let n = o.n;
    let sm = SmBody {
        service_type: &a[..a.len().min(5)],
        source_addr_ton: n[0],
        source_addr_npi: n[1],
        source_addr: b,
        dest_addr_ton: n[2],
        dest_addr_npi: n[3],
        destination_addr: c,
        esm_class: n[4],
        protocol_id: n[5],
        priority_flag: n[6],
        schedule_delivery_time: d,
        validity_period: e,
        registered_delivery: n[7],
        replace_if_present_flag: n[0],
        data_coding: n[1],
        sm_default_msg_id: n[2],
        short_message: &o.sm[..o.sm.len().min(254)],
        tlvs,
    };
    match o.kind {
        0 => Pdu::SubmitSm(sm),
        1 => Pdu::DeliverSm(sm),
        2 => Pdu::BindTransceiver(Bind {
            system_id: &f[..f.len().min(15)],
            password: &b[..b.len().min(8)],
            system_type: &c[..c.len().min(12)],
            interface_version: n[0],
            addr_ton: n[1],
            addr_npi: n[2],
            address_range: a,
        }),
        3 => Pdu::SubmitSmResp(SubmitSmResp {
            message_id: Some(b),
            tlvs,
        }),
        4 => Pdu::DataSm(DataSm {
            service_type: sm.service_type,
            source_addr_ton: n[0],
            source_addr_npi: n[1],
            source_addr: b,
            dest_addr_ton: n[2],
            dest_addr_npi: n[3],
            destination_addr: c,
            esm_class: n[4],
            registered_delivery: n[5],
            data_coding: n[6],
            tlvs,
        }),
        5 => Pdu::QuerySmResp(QuerySmResp {
            message_id: Some(c),
            final_date: d,
            message_state: n[0],
            error_code: n[1],
        }),
        6 => Pdu::CancelSm(CancelSm {
            service_type: sm.service_type,
            message_id: f,
            source_addr_ton: n[0],
            source_addr_npi: n[1],
            source_addr: b,
            dest_addr_ton: n[2],
            dest_addr_npi: n[3],
            destination_addr: c,
        }),
        7 => Pdu::AlertNotification(AlertNotification {
            source_addr_ton: n[0],
            source_addr_npi: n[1],
            source_addr: b,
            esme_addr_ton: n[2],
            esme_addr_npi: n[3],
            esme_addr: c,
            tlvs,
        }),
        _ => Pdu::Other {
            command_id: CommandId(0x0000_0200 | u32::from(n[0])),
            body: &o.sm,
        },
    }
}

proptest! {
    #[test]
    fn can_round_trip_arbitrary_pdus(o in owned()) {
        let pdu = build(&o);
        let status = CommandStatus(o.status);
        let mut b = BytesMut::new();
        pdu.encode(status, o.seq, &mut b);
        let d = Pdu::parse(&b).unwrap();
        prop_assert_eq!(d.pdu, pdu);
        prop_assert!(d.quirks.is_empty());
        prop_assert_eq!(d.header.command_length as usize, b.len());
        prop_assert_eq!(&encode(&d)[..], &b[..]);
    }

    #[test]
    fn arbitrary_pdus_survive_multi_destination_lists(
        dests in prop::collection::vec((any::<bool>(), any::<u8>(), cstr(21)), 1..5),
        sm in octets(200),
    ) {
        let list: Vec<DestAddress<'_>> = dests.iter().map(|(dl, ton, a)| if *dl {
            DestAddress::DistributionList(a)
        } else {
            DestAddress::Sme { dest_addr_ton: *ton, dest_addr_npi: 1, destination_addr: a }
        }).collect();
        let pdu = Pdu::SubmitMulti(SubmitMulti {
            dest_addresses: List::Items(&list),
            short_message: &sm,
            ..Default::default()
        });
        let mut b = BytesMut::new();
        pdu.encode(CommandStatus::ROK, 1, &mut b);
        let d = Pdu::parse(&b).unwrap();
        prop_assert_eq!(d.pdu, pdu);
        prop_assert_eq!(&encode(&d)[..], &b[..]);
    }

    #[test]
    fn parse_never_panics_on_garbage_bodies(id in prop_oneof![1u32..0x22, 0x8000_0000u32..0x8000_0022, Just(0x102u32), Just(0x103u32), Just(0x8000_0103u32)],
                                            status in prop_oneof![Just(0u32), any::<u32>()],
                                            body in octets(80)) {
        let b = pdu_bytes(id, status, &body);
        if let Ok(d) = Pdu::parse(&b) {
            let out = encode(&d);
            let again = Pdu::parse(&out).unwrap();
            prop_assert_eq!(again.pdu, d.pdu);
        }
    }
}
