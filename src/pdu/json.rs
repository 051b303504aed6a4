//! The JSON form of a PDU behind `smppgw pdu decode HEX` and
//! `smppgw pdu encode JSON`: every field by its SMPP 3.4 name, strings as
//! text, `short_message` as `{"hex", "text"}`, TLVs as a list of
//! `{tag, name, hex, value?}`, and the quirks applied.

use std::collections::HashMap;
use std::fmt::Write as _;

use bytes::BytesMut;
use serde_json::{Map, Value, json};

use super::header::{CommandId, CommandStatus};
use super::submit::{
    DestAddress, List, MessageIdResp, SmBody, SubmitMulti, SubmitMultiResp, UnsuccessSme,
};
use super::tlv::{Tlv, TlvKind, TlvTag, Tlvs};
use super::{
    AlertNotification, Bind, BindResp, CancelSm, DataSm, Decoded, Outbind, Pdu, QuerySm,
    QuerySmResp, ReplaceSm,
};

/// Why a JSON document could not be turned into a PDU.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JsonError {
    /// Neither `command` nor `command_id` names a command.
    #[error("unknown command: {0}")]
    UnknownCommand(String),
    /// A field has the wrong JSON type or an impossible value.
    #[error("bad field {field}: {reason}")]
    BadField {
        /// The field name.
        field: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The TLVs given do not form a valid TLV section.
    #[error("bad tlvs")]
    BadTlvs(#[from] super::DecodeError),
}

fn bad(field: &str, reason: &'static str) -> JsonError {
    JsonError::BadField {
        field: field.to_owned(),
        reason,
    }
}

// ===== decode side =====

/// The JSON form of a decoded PDU.
pub fn to_json(decoded: &Decoded<'_>) -> Value {
    let h = decoded.header;
    let mut m = Map::new();
    m.insert(
        "command".into(),
        json!(h.command_id.name().unwrap_or("unknown")),
    );
    m.insert("command_id".into(), json!(h.command_id.0));
    m.insert("command_length".into(), json!(h.command_length));
    m.insert("command_status".into(), json!(h.command_status.0));
    m.insert("command_status_name".into(), json!(h.command_status.name()));
    m.insert("sequence_number".into(), json!(h.sequence_number));
    body_to_json(&decoded.pdu, &mut m);
    if let Some(t) = decoded.pdu.tlvs() {
        m.insert(
            "tlvs".into(),
            Value::Array(t.iter().map(tlv_to_json).collect()),
        );
    }
    m.insert(
        "quirks".into(),
        json!(decoded.quirks.names().collect::<Vec<_>>()),
    );
    Value::Object(m)
}

fn text(b: &[u8]) -> Value {
    match std::str::from_utf8(b) {
        Ok(s) => json!(s),
        Err(_) => json!({ "hex": hex(b) }),
    }
}

fn hex(b: &[u8]) -> String {
    let mut s = String::with_capacity(b.len() * 2);
    for x in b {
        let _ = write!(s, "{x:02x}");
    }
    s
}

fn tlv_to_json(t: Tlv<'_>) -> Value {
    let mut m = Map::new();
    m.insert("tag".into(), json!(t.tag.0));
    m.insert("name".into(), json!(t.tag.name()));
    m.insert("hex".into(), json!(hex(t.value)));
    match t.tag.kind() {
        TlvKind::Int(_) => {
            if let Some(v) = t.as_uint() {
                m.insert("value".into(), json!(v));
            }
        }
        TlvKind::CString(_) => {
            m.insert("value".into(), text(t.as_cstr()));
        }
        TlvKind::Fixed(_) | TlvKind::Octets => {}
    }
    Value::Object(m)
}

fn put(m: &mut Map<String, Value>, k: &str, v: Value) {
    m.insert(k.to_owned(), v);
}

fn sm_to_json(m: &mut Map<String, Value>, esm_class: u8, dcs: u8, sm: &[u8], tlvs: &Tlvs<'_>) {
    put(m, "sm_length", json!(sm.len()));
    let mut body = sm;
    if esm_class & 0x40 != 0 {
        if let Some((&udhl, rest)) = sm.split_first() {
            let n = (udhl as usize).min(rest.len());
            put(m, "udh", json!(hex(&rest[..n])));
            body = &rest[n..];
        }
    }
    put(
        m,
        "short_message",
        json!({ "hex": hex(sm), "text": decode_text(dcs, body) }),
    );
    let payload = tlvs.get(TlvTag::MESSAGE_PAYLOAD);
    let msg = if sm.is_empty() {
        payload.unwrap_or(sm)
    } else {
        body
    };
    put(m, "text", json!(decode_text(dcs, msg)));
}

fn body_to_json(pdu: &Pdu<'_>, m: &mut Map<String, Value>) {
    match pdu {
        Pdu::BindReceiver(b) | Pdu::BindTransmitter(b) | Pdu::BindTransceiver(b) => {
            put(m, "system_id", text(b.system_id));
            put(m, "password", text(b.password));
            put(m, "system_type", text(b.system_type));
            put(m, "interface_version", json!(b.interface_version));
            put(m, "addr_ton", json!(b.addr_ton));
            put(m, "addr_npi", json!(b.addr_npi));
            put(m, "address_range", text(b.address_range));
        }
        Pdu::BindReceiverResp(b) | Pdu::BindTransmitterResp(b) | Pdu::BindTransceiverResp(b) => {
            if let Some(id) = b.system_id {
                put(m, "system_id", text(id));
            }
            if let Some(v) = b.tlvs.get_uint(TlvTag::SC_INTERFACE_VERSION) {
                put(m, "sc_interface_version", json!(v));
            }
        }
        Pdu::Outbind(b) => {
            put(m, "system_id", text(b.system_id));
            put(m, "password", text(b.password));
        }
        Pdu::SubmitSm(b) | Pdu::DeliverSm(b) => {
            put(m, "service_type", text(b.service_type));
            put(m, "source_addr_ton", json!(b.source_addr_ton));
            put(m, "source_addr_npi", json!(b.source_addr_npi));
            put(m, "source_addr", text(b.source_addr));
            put(m, "dest_addr_ton", json!(b.dest_addr_ton));
            put(m, "dest_addr_npi", json!(b.dest_addr_npi));
            put(m, "destination_addr", text(b.destination_addr));
            put(m, "esm_class", json!(b.esm_class));
            put(m, "protocol_id", json!(b.protocol_id));
            put(m, "priority_flag", json!(b.priority_flag));
            put(m, "schedule_delivery_time", text(b.schedule_delivery_time));
            put(m, "validity_period", text(b.validity_period));
            put(m, "registered_delivery", json!(b.registered_delivery));
            put(
                m,
                "replace_if_present_flag",
                json!(b.replace_if_present_flag),
            );
            put(m, "data_coding", json!(b.data_coding));
            put(m, "sm_default_msg_id", json!(b.sm_default_msg_id));
            sm_to_json(m, b.esm_class, b.data_coding, b.short_message, &b.tlvs);
        }
        Pdu::SubmitSmResp(b) | Pdu::DeliverSmResp(b) | Pdu::DataSmResp(b) => {
            if let Some(id) = b.message_id {
                put(m, "message_id", text(id));
            }
        }
        Pdu::SubmitMulti(b) => {
            put(m, "service_type", text(b.service_type));
            put(m, "source_addr_ton", json!(b.source_addr_ton));
            put(m, "source_addr_npi", json!(b.source_addr_npi));
            put(m, "source_addr", text(b.source_addr));
            put(m, "number_of_dests", json!(b.dest_addresses.len()));
            let dests: Vec<Value> = b
                .dest_addresses
                .iter()
                .map(|d| match d {
                    DestAddress::Sme {
                        dest_addr_ton,
                        dest_addr_npi,
                        destination_addr,
                    } => json!({
                        "dest_addr_ton": dest_addr_ton,
                        "dest_addr_npi": dest_addr_npi,
                        "destination_addr": text(destination_addr),
                    }),
                    DestAddress::DistributionList(name) => json!({ "dl_name": text(name) }),
                })
                .collect();
            put(m, "dest_address", Value::Array(dests));
            put(m, "esm_class", json!(b.esm_class));
            put(m, "protocol_id", json!(b.protocol_id));
            put(m, "priority_flag", json!(b.priority_flag));
            put(m, "schedule_delivery_time", text(b.schedule_delivery_time));
            put(m, "validity_period", text(b.validity_period));
            put(m, "registered_delivery", json!(b.registered_delivery));
            put(
                m,
                "replace_if_present_flag",
                json!(b.replace_if_present_flag),
            );
            put(m, "data_coding", json!(b.data_coding));
            put(m, "sm_default_msg_id", json!(b.sm_default_msg_id));
            sm_to_json(m, b.esm_class, b.data_coding, b.short_message, &b.tlvs);
        }
        Pdu::SubmitMultiResp(b) => {
            if let Some(id) = b.message_id {
                put(m, "message_id", text(id));
                put(m, "no_unsuccess", json!(b.unsuccess_smes.len()));
                let list: Vec<Value> = b
                    .unsuccess_smes
                    .iter()
                    .map(|u| {
                        json!({
                            "dest_addr_ton": u.dest_addr_ton,
                            "dest_addr_npi": u.dest_addr_npi,
                            "destination_addr": text(u.destination_addr),
                            "error_status_code": u.error_status_code.0,
                        })
                    })
                    .collect();
                put(m, "unsuccess_sme", Value::Array(list));
            }
        }
        Pdu::DataSm(b) => {
            put(m, "service_type", text(b.service_type));
            put(m, "source_addr_ton", json!(b.source_addr_ton));
            put(m, "source_addr_npi", json!(b.source_addr_npi));
            put(m, "source_addr", text(b.source_addr));
            put(m, "dest_addr_ton", json!(b.dest_addr_ton));
            put(m, "dest_addr_npi", json!(b.dest_addr_npi));
            put(m, "destination_addr", text(b.destination_addr));
            put(m, "esm_class", json!(b.esm_class));
            put(m, "registered_delivery", json!(b.registered_delivery));
            put(m, "data_coding", json!(b.data_coding));
            let payload = b.tlvs.get(TlvTag::MESSAGE_PAYLOAD).unwrap_or(&[]);
            put(m, "text", json!(decode_text(b.data_coding, payload)));
        }
        Pdu::QuerySm(b) => {
            put(m, "message_id", text(b.message_id));
            put(m, "source_addr_ton", json!(b.source_addr_ton));
            put(m, "source_addr_npi", json!(b.source_addr_npi));
            put(m, "source_addr", text(b.source_addr));
        }
        Pdu::QuerySmResp(b) => {
            if let Some(id) = b.message_id {
                put(m, "message_id", text(id));
                put(m, "final_date", text(b.final_date));
                put(m, "message_state", json!(b.message_state));
                put(m, "error_code", json!(b.error_code));
            }
        }
        Pdu::CancelSm(b) => {
            put(m, "service_type", text(b.service_type));
            put(m, "message_id", text(b.message_id));
            put(m, "source_addr_ton", json!(b.source_addr_ton));
            put(m, "source_addr_npi", json!(b.source_addr_npi));
            put(m, "source_addr", text(b.source_addr));
            put(m, "dest_addr_ton", json!(b.dest_addr_ton));
            put(m, "dest_addr_npi", json!(b.dest_addr_npi));
            put(m, "destination_addr", text(b.destination_addr));
        }
        Pdu::ReplaceSm(b) => {
            put(m, "message_id", text(b.message_id));
            put(m, "source_addr_ton", json!(b.source_addr_ton));
            put(m, "source_addr_npi", json!(b.source_addr_npi));
            put(m, "source_addr", text(b.source_addr));
            put(m, "schedule_delivery_time", text(b.schedule_delivery_time));
            put(m, "validity_period", text(b.validity_period));
            put(m, "registered_delivery", json!(b.registered_delivery));
            put(m, "sm_default_msg_id", json!(b.sm_default_msg_id));
            put(m, "sm_length", json!(b.short_message.len()));
            put(
                m,
                "short_message",
                json!({ "hex": hex(b.short_message), "text": Value::Null }),
            );
        }
        Pdu::AlertNotification(b) => {
            put(m, "source_addr_ton", json!(b.source_addr_ton));
            put(m, "source_addr_npi", json!(b.source_addr_npi));
            put(m, "source_addr", text(b.source_addr));
            put(m, "esme_addr_ton", json!(b.esme_addr_ton));
            put(m, "esme_addr_npi", json!(b.esme_addr_npi));
            put(m, "esme_addr", text(b.esme_addr));
        }
        Pdu::Other { body, .. } => put(m, "body", json!(hex(body))),
        Pdu::Unbind
        | Pdu::UnbindResp
        | Pdu::EnquireLink
        | Pdu::EnquireLinkResp
        | Pdu::GenericNack
        | Pdu::CancelSmResp
        | Pdu::ReplaceSmResp => {}
    }
}

// ===== text: the same tables the gateway sends with (src/text) =====

/// The text of `b` under `dcs` as an operator reads it; `None` for codings
/// shown as hex only.
fn decode_text(dcs: u8, b: &[u8]) -> Option<String> {
    use crate::text::{gsm7, ia5, latin1, ucs2};
    match dcs {
        0 => gsm7::decode_unpacked(b).ok().map(|(s, _)| s),
        1 => Some(ia5::decode(b).0),
        3 => Some(latin1::decode(b)),
        8 if b.len() % 2 == 0 => Some(ucs2::decode(b).0),
        _ => None,
    }
}

/// The inverse of [`decode_text`].
fn encode_text(dcs: u8, s: &str) -> Option<Vec<u8>> {
    use crate::text::{gsm7, ia5, latin1, ucs2};
    match dcs {
        0 => gsm7::encode_unpacked(s),
        1 => s.chars().map(ia5::byte).collect(),
        3 => s.chars().map(latin1::byte).collect(),
        8 => Some(ucs2::encode(s)),
        _ => None,
    }
}

// ===== encode side =====

const STR_FIELDS: [&str; 13] = [
    "system_id",
    "password",
    "system_type",
    "address_range",
    "service_type",
    "source_addr",
    "destination_addr",
    "schedule_delivery_time",
    "validity_period",
    "message_id",
    "final_date",
    "esme_addr",
    "body",
];

fn unhex(field: &str, s: &str) -> Result<Vec<u8>, JsonError> {
    if s.len() % 2 != 0 {
        return Err(bad(field, "odd number of hex digits"));
    }
    (0..s.len())
        .step_by(2)
        .map(|i| {
            s.get(i..i + 2)
                .and_then(|d| u8::from_str_radix(d, 16).ok())
                .ok_or_else(|| bad(field, "not hex"))
        })
        .collect()
}

/// A string field: JSON text, or `{"hex": ...}` for non-UTF-8 octets.
fn bytes_of(field: &str, v: &Value) -> Result<Vec<u8>, JsonError> {
    match v {
        Value::String(s) => Ok(s.as_bytes().to_vec()),
        Value::Object(o) => match o.get("hex") {
            Some(Value::String(h)) => unhex(field, h),
            _ => Err(bad(field, "expected text or {\"hex\": ...}")),
        },
        Value::Null => Ok(Vec::new()),
        _ => Err(bad(field, "expected text")),
    }
}

fn int_of(field: &str, v: &Value, max: u64) -> Result<u64, JsonError> {
    match v {
        Value::Null => Ok(0),
        v => v
            .as_u64()
            .filter(|n| *n <= max)
            .ok_or_else(|| bad(field, "expected an unsigned integer in range")),
    }
}

/// Builds the wire form of a PDU from its JSON form (the output of
/// [`to_json`], or a hand-written subset: absent fields are 0 or empty).
/// `short_message` is `{"hex": ...}`, `{"text": ...}` (encoded by
/// `data_coding`) or a hex string; TLVs are `[{"tag"|"name", "hex"|"value"}]`.
///
/// # Errors
/// A [`JsonError`] naming the field that cannot be encoded.
pub fn from_json(v: &Value) -> Result<BytesMut, JsonError> {
    let empty = Value::Null;
    let get = |k: &str| v.get(k).unwrap_or(&empty);
    let command_id = match get("command") {
        Value::String(s) if s != "unknown" => {
            CommandId::from_name(s).ok_or_else(|| JsonError::UnknownCommand(s.clone()))?
        }
        _ => CommandId(int_of("command_id", get("command_id"), u32::MAX.into())? as u32),
    };
    let status =
        CommandStatus(int_of("command_status", get("command_status"), u32::MAX.into())? as u32);
    let seq = match get("sequence_number") {
        Value::Null => 1,
        s => int_of("sequence_number", s, u32::MAX.into())? as u32,
    };
    let mut strs: HashMap<&str, Vec<u8>> = HashMap::new();
    for k in STR_FIELDS {
        if let Some(x) = v.get(k) {
            let b = if k == "body" {
                unhex(k, x.as_str().unwrap_or_default())?
            } else {
                bytes_of(k, x)?
            };
            strs.insert(k, b);
        }
    }
    let s = |k: &str| strs.get(k).map(Vec::as_slice).unwrap_or_default();
    let opt = |k: &str| strs.get(k).map(Vec::as_slice);
    let u = |k: &str| int_of(k, get(k), 255).map(|n| n as u8);
    let dcs = u("data_coding")?;
    let sm = short_message(get("short_message"), dcs)?;
    let tlv_raw = tlvs_of(get("tlvs"))?;
    let tlvs = Tlvs::from_raw(&tlv_raw)?;
    let dests_owned = dests_of(get("dest_address"))?;
    let dests: Vec<DestAddress<'_>> = dests_owned
        .iter()
        .map(|(flag, ton, npi, a)| match flag {
            2 => DestAddress::DistributionList(a),
            _ => DestAddress::Sme {
                dest_addr_ton: *ton,
                dest_addr_npi: *npi,
                destination_addr: a,
            },
        })
        .collect();
    let unsucc_owned = unsuccess_of(get("unsuccess_sme"))?;
    let unsucc: Vec<UnsuccessSme<'_>> = unsucc_owned
        .iter()
        .map(|(ton, npi, a, st)| UnsuccessSme {
            dest_addr_ton: *ton,
            dest_addr_npi: *npi,
            destination_addr: a,
            error_status_code: CommandStatus(*st),
        })
        .collect();

    let bind = || -> Result<Bind<'_>, JsonError> {
        Ok(Bind {
            system_id: s("system_id"),
            password: s("password"),
            system_type: s("system_type"),
            interface_version: u("interface_version")?,
            addr_ton: u("addr_ton")?,
            addr_npi: u("addr_npi")?,
            address_range: s("address_range"),
        })
    };
    let bind_resp = || BindResp {
        system_id: opt("system_id"),
        tlvs,
    };
    let mid_resp = || MessageIdResp {
        message_id: opt("message_id"),
        tlvs,
    };
    let sm_body = || -> Result<SmBody<'_>, JsonError> {
        Ok(SmBody {
            service_type: s("service_type"),
            source_addr_ton: u("source_addr_ton")?,
            source_addr_npi: u("source_addr_npi")?,
            source_addr: s("source_addr"),
            dest_addr_ton: u("dest_addr_ton")?,
            dest_addr_npi: u("dest_addr_npi")?,
            destination_addr: s("destination_addr"),
            esm_class: u("esm_class")?,
            protocol_id: u("protocol_id")?,
            priority_flag: u("priority_flag")?,
            schedule_delivery_time: s("schedule_delivery_time"),
            validity_period: s("validity_period"),
            registered_delivery: u("registered_delivery")?,
            replace_if_present_flag: u("replace_if_present_flag")?,
            data_coding: dcs,
            sm_default_msg_id: u("sm_default_msg_id")?,
            short_message: &sm,
            tlvs,
        })
    };
    let pdu = match command_id {
        CommandId::BIND_RECEIVER => Pdu::BindReceiver(bind()?),
        CommandId::BIND_TRANSMITTER => Pdu::BindTransmitter(bind()?),
        CommandId::BIND_TRANSCEIVER => Pdu::BindTransceiver(bind()?),
        CommandId::BIND_RECEIVER_RESP => Pdu::BindReceiverResp(bind_resp()),
        CommandId::BIND_TRANSMITTER_RESP => Pdu::BindTransmitterResp(bind_resp()),
        CommandId::BIND_TRANSCEIVER_RESP => Pdu::BindTransceiverResp(bind_resp()),
        CommandId::OUTBIND => Pdu::Outbind(Outbind {
            system_id: s("system_id"),
            password: s("password"),
        }),
        CommandId::UNBIND => Pdu::Unbind,
        CommandId::UNBIND_RESP => Pdu::UnbindResp,
        CommandId::ENQUIRE_LINK => Pdu::EnquireLink,
        CommandId::ENQUIRE_LINK_RESP => Pdu::EnquireLinkResp,
        CommandId::GENERIC_NACK => Pdu::GenericNack,
        CommandId::SUBMIT_SM => Pdu::SubmitSm(sm_body()?),
        CommandId::DELIVER_SM => Pdu::DeliverSm(sm_body()?),
        CommandId::SUBMIT_SM_RESP => Pdu::SubmitSmResp(mid_resp()),
        CommandId::DELIVER_SM_RESP => Pdu::DeliverSmResp(mid_resp()),
        CommandId::DATA_SM_RESP => Pdu::DataSmResp(mid_resp()),
        CommandId::SUBMIT_MULTI => Pdu::SubmitMulti(SubmitMulti {
            service_type: s("service_type"),
            source_addr_ton: u("source_addr_ton")?,
            source_addr_npi: u("source_addr_npi")?,
            source_addr: s("source_addr"),
            dest_addresses: List::Items(&dests),
            esm_class: u("esm_class")?,
            protocol_id: u("protocol_id")?,
            priority_flag: u("priority_flag")?,
            schedule_delivery_time: s("schedule_delivery_time"),
            validity_period: s("validity_period"),
            registered_delivery: u("registered_delivery")?,
            replace_if_present_flag: u("replace_if_present_flag")?,
            data_coding: dcs,
            sm_default_msg_id: u("sm_default_msg_id")?,
            short_message: &sm,
            tlvs,
        }),
        CommandId::SUBMIT_MULTI_RESP => Pdu::SubmitMultiResp(SubmitMultiResp {
            message_id: opt("message_id"),
            unsuccess_smes: List::Items(&unsucc),
            tlvs,
        }),
        CommandId::DATA_SM => Pdu::DataSm(DataSm {
            service_type: s("service_type"),
            source_addr_ton: u("source_addr_ton")?,
            source_addr_npi: u("source_addr_npi")?,
            source_addr: s("source_addr"),
            dest_addr_ton: u("dest_addr_ton")?,
            dest_addr_npi: u("dest_addr_npi")?,
            destination_addr: s("destination_addr"),
            esm_class: u("esm_class")?,
            registered_delivery: u("registered_delivery")?,
            data_coding: dcs,
            tlvs,
        }),
        CommandId::QUERY_SM => Pdu::QuerySm(QuerySm {
            message_id: s("message_id"),
            source_addr_ton: u("source_addr_ton")?,
            source_addr_npi: u("source_addr_npi")?,
            source_addr: s("source_addr"),
        }),
        CommandId::QUERY_SM_RESP => Pdu::QuerySmResp(QuerySmResp {
            message_id: opt("message_id"),
            final_date: s("final_date"),
            message_state: u("message_state")?,
            error_code: u("error_code")?,
        }),
        CommandId::CANCEL_SM => Pdu::CancelSm(CancelSm {
            service_type: s("service_type"),
            message_id: s("message_id"),
            source_addr_ton: u("source_addr_ton")?,
            source_addr_npi: u("source_addr_npi")?,
            source_addr: s("source_addr"),
            dest_addr_ton: u("dest_addr_ton")?,
            dest_addr_npi: u("dest_addr_npi")?,
            destination_addr: s("destination_addr"),
        }),
        CommandId::CANCEL_SM_RESP => Pdu::CancelSmResp,
        CommandId::REPLACE_SM => Pdu::ReplaceSm(ReplaceSm {
            message_id: s("message_id"),
            source_addr_ton: u("source_addr_ton")?,
            source_addr_npi: u("source_addr_npi")?,
            source_addr: s("source_addr"),
            schedule_delivery_time: s("schedule_delivery_time"),
            validity_period: s("validity_period"),
            registered_delivery: u("registered_delivery")?,
            sm_default_msg_id: u("sm_default_msg_id")?,
            short_message: &sm,
        }),
        CommandId::REPLACE_SM_RESP => Pdu::ReplaceSmResp,
        CommandId::ALERT_NOTIFICATION => Pdu::AlertNotification(AlertNotification {
            source_addr_ton: u("source_addr_ton")?,
            source_addr_npi: u("source_addr_npi")?,
            source_addr: s("source_addr"),
            esme_addr_ton: u("esme_addr_ton")?,
            esme_addr_npi: u("esme_addr_npi")?,
            esme_addr: s("esme_addr"),
            tlvs,
        }),
        command_id => Pdu::Other {
            command_id,
            body: s("body"),
        },
    };
    let mut out = BytesMut::new();
    pdu.encode(status, seq, &mut out);
    Ok(out)
}

fn short_message(v: &Value, dcs: u8) -> Result<Vec<u8>, JsonError> {
    const F: &str = "short_message";
    match v {
        Value::Null => Ok(Vec::new()),
        Value::String(h) => unhex(F, h),
        Value::Object(o) => match (o.get("hex"), o.get("text")) {
            (Some(Value::String(h)), _) => unhex(F, h),
            (_, Some(Value::String(t))) => {
                encode_text(dcs, t).ok_or_else(|| bad(F, "text not representable in data_coding"))
            }
            _ => Err(bad(F, "expected {\"hex\": ...} or {\"text\": ...}")),
        },
        _ => Err(bad(F, "expected an object or a hex string")),
    }
}

fn tlvs_of(v: &Value) -> Result<Vec<u8>, JsonError> {
    const F: &str = "tlvs";
    let Some(list) = v.as_array() else {
        return if v.is_null() {
            Ok(Vec::new())
        } else {
            Err(bad(F, "expected a list"))
        };
    };
    let mut out = Vec::new();
    for t in list {
        let tag = match (
            t.get("tag").and_then(Value::as_u64),
            t.get("name").and_then(Value::as_str),
        ) {
            (Some(n), _) => u16::try_from(n)
                .map(TlvTag)
                .map_err(|_| bad(F, "tag above 0xFFFF"))?,
            (None, Some(name)) => {
                TlvTag::from_name(name).ok_or_else(|| bad(F, "unknown tlv name"))?
            }
            _ => return Err(bad(F, "each tlv needs a tag or a name")),
        };
        let value = match (t.get("hex").and_then(Value::as_str), t.get("value")) {
            (Some(h), _) => unhex(F, h)?,
            (None, Some(val)) => match (tag.kind(), val) {
                (TlvKind::Int(n), Value::Number(x)) => {
                    let x = x
                        .as_u64()
                        .ok_or_else(|| bad(F, "expected an unsigned integer"))?;
                    x.to_be_bytes()[8 - n..].to_vec()
                }
                (TlvKind::CString(_), Value::String(s)) => {
                    let mut b = s.as_bytes().to_vec();
                    b.push(0);
                    b
                }
                _ => return Err(bad(F, "give hex for this tlv")),
            },
            _ => return Err(bad(F, "each tlv needs hex or value")),
        };
        let len = u16::try_from(value.len()).map_err(|_| bad(F, "value longer than 65535"))?;
        out.extend_from_slice(&tag.0.to_be_bytes());
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&value);
    }
    Ok(out)
}

type OwnedDest = (u8, u8, u8, Vec<u8>);

fn dests_of(v: &Value) -> Result<Vec<OwnedDest>, JsonError> {
    const F: &str = "dest_address";
    let Some(list) = v.as_array() else {
        return Ok(Vec::new());
    };
    list.iter()
        .map(|d| {
            if let Some(name) = d.get("dl_name") {
                return Ok((2, 0, 0, bytes_of(F, name)?));
            }
            let u = |k: &str| int_of(k, d.get(k).unwrap_or(&Value::Null), 255).map(|n| n as u8);
            let addr = bytes_of(F, d.get("destination_addr").unwrap_or(&Value::Null))?;
            Ok((1, u("dest_addr_ton")?, u("dest_addr_npi")?, addr))
        })
        .collect()
}

type OwnedUnsuccess = (u8, u8, Vec<u8>, u32);

fn unsuccess_of(v: &Value) -> Result<Vec<OwnedUnsuccess>, JsonError> {
    const F: &str = "unsuccess_sme";
    let Some(list) = v.as_array() else {
        return Ok(Vec::new());
    };
    list.iter()
        .map(|d| {
            let n = |k: &str, max| int_of(k, d.get(k).unwrap_or(&Value::Null), max);
            let addr = bytes_of(F, d.get("destination_addr").unwrap_or(&Value::Null))?;
            Ok((
                n("dest_addr_ton", 255)? as u8,
                n("dest_addr_npi", 255)? as u8,
                addr,
                n("error_status_code", u32::MAX.into())? as u32,
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gsm_text_round_trips_with_extension_chars() {
        let s = "Price 10€ [x] {y} ^~\\|";
        let b = encode_text(0, s).unwrap();
        assert_eq!(decode_text(0, &b).as_deref(), Some(s));
        assert_eq!(encode_text(0, "日本"), None);
    }

    #[test]
    fn ucs2_and_latin1_decode() {
        assert_eq!(decode_text(8, &[0x30, 0x54]).as_deref(), Some("ご"));
        assert_eq!(decode_text(3, &[0xe9]).as_deref(), Some("é"));
        assert_eq!(decode_text(4, &[1]), None);
    }
}
