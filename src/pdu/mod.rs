//! The SMPP 3.4 codec: frames, PDUs as borrowed views, TLVs, encoding. Pure: no I/O, no clock.
//!
//! # Layout
//! - [`header`]: the 16-octet header, open newtypes [`CommandId`] and
//!   [`CommandStatus`] with named consts;
//! - [`tlv`]: [`TlvTag`] (every 3.4 and 5.0 tag) and [`Tlvs`], a lazily
//!   iterated, validated borrowed TLV section;
//! - one file per PDU family: [`bind`], [`submit`] (submit_sm, deliver_sm,
//!   submit_multi, the `message_id` responses), [`data_sm`], [`query`]
//!   (query/cancel/replace), [`link_ops`] (alert_notification);
//! - [`quirks`]: the leniencies applied, for the shell to count;
//! - [`error`]: [`DecodeError`] and the status to answer it with;
//! - [`codec`]: tokio-util framing only ([`SmppCodec`], [`Frame`]);
//! - [`json`]: the `smppgw pdu decode/encode` representation.
//!
//! # Decoding
//! [`Pdu::parse`] takes exactly one whole PDU (as framed by [`SmppCodec`])
//! and returns views borrowing from it; it allocates nothing. Strict towards
//! the requests an ESME sends (so the simulator flags our own bugs), lenient
//! towards what carriers send (deliver_sm, data_sm, alert_notification and
//! every response): each leniency is reported in [`Quirks`].
//!
//! # Encoding
//! [`Pdu::encode`] writes the whole PDU; `command_length`, `sm_length`,
//! `number_of_dests` and `no_unsuccess` are derived and cannot be set. It
//! does not check the spec's field limits: a caller building from untrusted
//! data can [`Pdu::parse`] the result.

pub mod bind;
pub mod codec;
pub mod data_sm;
pub mod error;
pub mod header;
pub mod json;
pub mod link_ops;
pub mod query;
pub mod quirks;
pub mod submit;
pub mod tlv;
#[doc(hidden)]
pub mod types;

use bytes::{BufMut, BytesMut};

pub use bind::{Bind, BindResp, Outbind};
pub use codec::{Frame, FrameError, SmppCodec};
pub use data_sm::DataSm;
pub use error::{DecodeError, DecodeErrorKind};
pub use header::{CommandId, CommandStatus, Header};
pub use link_ops::AlertNotification;
pub use query::{CancelSm, QuerySm, QuerySmResp, ReplaceSm};
pub use quirks::{Quirk, Quirks};
pub use submit::{
    DataSmResp, DeliverSm, DeliverSmResp, DestAddress, List, MessageIdResp, SmBody, SubmitMulti,
    SubmitMultiResp, SubmitSm, SubmitSmResp, UnsuccessSme,
};
pub use tlv::{Tlv, TlvKind, TlvTag, Tlvs};

use types::{Body, Out, Reader};

/// One SMPP PDU body, borrowing its strings from the frame (decode) or from
/// the caller (encode).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pdu<'a> {
    /// bind_receiver.
    BindReceiver(Bind<'a>),
    /// bind_transmitter.
    BindTransmitter(Bind<'a>),
    /// bind_transceiver.
    BindTransceiver(Bind<'a>),
    /// bind_receiver_resp.
    BindReceiverResp(BindResp<'a>),
    /// bind_transmitter_resp.
    BindTransmitterResp(BindResp<'a>),
    /// bind_transceiver_resp.
    BindTransceiverResp(BindResp<'a>),
    /// outbind.
    Outbind(Outbind<'a>),
    /// unbind.
    Unbind,
    /// unbind_resp.
    UnbindResp,
    /// enquire_link.
    EnquireLink,
    /// enquire_link_resp.
    EnquireLinkResp,
    /// generic_nack.
    GenericNack,
    /// submit_sm.
    SubmitSm(SubmitSm<'a>),
    /// submit_sm_resp.
    SubmitSmResp(SubmitSmResp<'a>),
    /// submit_multi.
    SubmitMulti(SubmitMulti<'a>),
    /// submit_multi_resp.
    SubmitMultiResp(SubmitMultiResp<'a>),
    /// deliver_sm.
    DeliverSm(DeliverSm<'a>),
    /// deliver_sm_resp.
    DeliverSmResp(DeliverSmResp<'a>),
    /// data_sm.
    DataSm(DataSm<'a>),
    /// data_sm_resp.
    DataSmResp(DataSmResp<'a>),
    /// query_sm.
    QuerySm(QuerySm<'a>),
    /// query_sm_resp.
    QuerySmResp(QuerySmResp<'a>),
    /// cancel_sm.
    CancelSm(CancelSm<'a>),
    /// cancel_sm_resp.
    CancelSmResp,
    /// replace_sm.
    ReplaceSm(ReplaceSm<'a>),
    /// replace_sm_resp.
    ReplaceSmResp,
    /// alert_notification.
    AlertNotification(AlertNotification<'a>),
    /// Any other command id; the body is kept byte for byte.
    Other {
        /// The unknown command id.
        command_id: CommandId,
        /// The raw body.
        body: &'a [u8],
    },
}

/// A decoded PDU: header, body view and the leniencies applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decoded<'a> {
    /// The header as received.
    pub header: Header,
    /// The body.
    pub pdu: Pdu<'a>,
    /// Leniencies applied while decoding.
    pub quirks: Quirks,
}

impl<'a> Pdu<'a> {
    /// Decodes one whole PDU (header included) without allocating.
    ///
    /// # Errors
    /// A [`DecodeError`] whose [`DecodeError::status`] is the status to
    /// answer with (generic_nack for unknown or unreadable commands, the
    /// matching `*_resp` otherwise).
    pub fn parse(frame: &'a [u8]) -> Result<Decoded<'a>, DecodeError> {
        let header = Header::peek(frame)
            .ok_or_else(|| DecodeError::new(DecodeErrorKind::TooShort, "command_length", 0))?;
        if header.command_length as usize != frame.len() {
            return Err(DecodeError::new(
                DecodeErrorKind::LengthMismatch,
                "command_length",
                0,
            ));
        }
        let body = &frame[Header::LEN..];
        let id = header.command_id;
        let lenient = id.is_response()
            || matches!(
                id,
                CommandId::DELIVER_SM | CommandId::DATA_SM | CommandId::ALERT_NOTIFICATION
            );
        let mut r = Reader::new(body, !lenient);
        let error_resp = id.is_response() && header.command_status != CommandStatus::ROK;
        let pdu = if error_resp {
            Self::parse_error_resp(id, body, &mut r)
        } else {
            Self::parse_body(id, body, &mut r)?
        };
        Ok(Decoded {
            header,
            pdu,
            quirks: r.quirks,
        })
    }

    /// A response with a non-zero status: its body is optional and, if it
    /// does not parse, ignored (CARRIERS.md 2: never tear a bind down over it).
    fn parse_error_resp(id: CommandId, body: &'a [u8], r: &mut Reader<'a>) -> Pdu<'a> {
        if body.is_empty() {
            if let Some(p) = Self::empty_resp(id) {
                // SMPP 3.4 4.4.2 (and likewise submit_multi, data_sm,
                // query_sm, deliver_sm): "the PDU Body is not returned if
                // the command_status field contains a non-zero value". Only
                // the bind responses have no such note.
                if matches!(
                    id,
                    CommandId::BIND_RECEIVER_RESP
                        | CommandId::BIND_TRANSMITTER_RESP
                        | CommandId::BIND_TRANSCEIVER_RESP
                ) {
                    r.quirks.insert(Quirk::ErrorRespWithoutBody);
                }
                return p;
            }
        }
        match Self::parse_body(id, body, r) {
            Ok(p) => {
                if !body.is_empty() {
                    r.quirks.insert(Quirk::ErrorRespWithBody);
                }
                p
            }
            Err(_) => {
                r.quirks.insert(Quirk::ErrorRespWithBody);
                Self::empty_resp(id).unwrap_or(Pdu::Other {
                    command_id: id,
                    body,
                })
            }
        }
    }

    /// Whether a successful response of this id carries a body.
    fn has_body(id: CommandId) -> bool {
        !matches!(
            id,
            CommandId::GENERIC_NACK
                | CommandId::UNBIND_RESP
                | CommandId::ENQUIRE_LINK_RESP
                | CommandId::CANCEL_SM_RESP
                | CommandId::REPLACE_SM_RESP
        )
    }

    /// The body-less form of a response, for error responses.
    fn empty_resp(id: CommandId) -> Option<Pdu<'a>> {
        Some(match id {
            CommandId::GENERIC_NACK => Pdu::GenericNack,
            CommandId::UNBIND_RESP => Pdu::UnbindResp,
            CommandId::ENQUIRE_LINK_RESP => Pdu::EnquireLinkResp,
            CommandId::CANCEL_SM_RESP => Pdu::CancelSmResp,
            CommandId::REPLACE_SM_RESP => Pdu::ReplaceSmResp,
            CommandId::BIND_RECEIVER_RESP => Pdu::BindReceiverResp(BindResp::default()),
            CommandId::BIND_TRANSMITTER_RESP => Pdu::BindTransmitterResp(BindResp::default()),
            CommandId::BIND_TRANSCEIVER_RESP => Pdu::BindTransceiverResp(BindResp::default()),
            CommandId::SUBMIT_SM_RESP => Pdu::SubmitSmResp(MessageIdResp::default()),
            CommandId::DELIVER_SM_RESP => Pdu::DeliverSmResp(MessageIdResp::default()),
            CommandId::DATA_SM_RESP => Pdu::DataSmResp(MessageIdResp::default()),
            CommandId::SUBMIT_MULTI_RESP => Pdu::SubmitMultiResp(SubmitMultiResp::default()),
            CommandId::QUERY_SM_RESP => Pdu::QuerySmResp(QuerySmResp::default()),
            _ => return None,
        })
    }

    fn parse_body(
        id: CommandId,
        body: &'a [u8],
        r: &mut Reader<'a>,
    ) -> Result<Pdu<'a>, DecodeError> {
        let empty = |r: &mut Reader<'a>, p: Pdu<'a>| r.finish().map(|()| p);
        if Self::has_body(id) && id.is_response() && id.name().is_some() && body.is_empty() {
            return Err(DecodeError::new(
                DecodeErrorKind::MissingBody,
                "body",
                Header::LEN,
            ));
        }
        Ok(match id {
            CommandId::BIND_RECEIVER => Pdu::BindReceiver(Bind::parse(r)?),
            CommandId::BIND_TRANSMITTER => Pdu::BindTransmitter(Bind::parse(r)?),
            CommandId::BIND_TRANSCEIVER => Pdu::BindTransceiver(Bind::parse(r)?),
            CommandId::BIND_RECEIVER_RESP => Pdu::BindReceiverResp(BindResp::parse(r)?),
            CommandId::BIND_TRANSMITTER_RESP => Pdu::BindTransmitterResp(BindResp::parse(r)?),
            CommandId::BIND_TRANSCEIVER_RESP => Pdu::BindTransceiverResp(BindResp::parse(r)?),
            CommandId::OUTBIND => Pdu::Outbind(Outbind::parse(r)?),
            CommandId::UNBIND => empty(r, Pdu::Unbind)?,
            CommandId::UNBIND_RESP => empty(r, Pdu::UnbindResp)?,
            CommandId::ENQUIRE_LINK => empty(r, Pdu::EnquireLink)?,
            CommandId::ENQUIRE_LINK_RESP => empty(r, Pdu::EnquireLinkResp)?,
            CommandId::GENERIC_NACK => empty(r, Pdu::GenericNack)?,
            CommandId::SUBMIT_SM => Pdu::SubmitSm(SmBody::parse(r)?),
            CommandId::SUBMIT_SM_RESP => Pdu::SubmitSmResp(MessageIdResp::parse(r)?),
            CommandId::SUBMIT_MULTI => Pdu::SubmitMulti(SubmitMulti::parse(r)?),
            CommandId::SUBMIT_MULTI_RESP => Pdu::SubmitMultiResp(SubmitMultiResp::parse(r)?),
            CommandId::DELIVER_SM => Pdu::DeliverSm(SmBody::parse(r)?),
            CommandId::DELIVER_SM_RESP => Pdu::DeliverSmResp(MessageIdResp::parse(r)?),
            CommandId::DATA_SM => Pdu::DataSm(DataSm::parse(r)?),
            CommandId::DATA_SM_RESP => Pdu::DataSmResp(MessageIdResp::parse(r)?),
            CommandId::QUERY_SM => Pdu::QuerySm(QuerySm::parse(r)?),
            CommandId::QUERY_SM_RESP => Pdu::QuerySmResp(QuerySmResp::parse(r)?),
            CommandId::CANCEL_SM => Pdu::CancelSm(CancelSm::parse(r)?),
            CommandId::CANCEL_SM_RESP => empty(r, Pdu::CancelSmResp)?,
            CommandId::REPLACE_SM => Pdu::ReplaceSm(ReplaceSm::parse(r)?),
            CommandId::REPLACE_SM_RESP => empty(r, Pdu::ReplaceSmResp)?,
            CommandId::ALERT_NOTIFICATION => Pdu::AlertNotification(AlertNotification::parse(r)?),
            command_id => Pdu::Other { command_id, body },
        })
    }

    /// The command id of this PDU.
    pub fn command_id(&self) -> CommandId {
        match self {
            Pdu::BindReceiver(_) => CommandId::BIND_RECEIVER,
            Pdu::BindTransmitter(_) => CommandId::BIND_TRANSMITTER,
            Pdu::BindTransceiver(_) => CommandId::BIND_TRANSCEIVER,
            Pdu::BindReceiverResp(_) => CommandId::BIND_RECEIVER_RESP,
            Pdu::BindTransmitterResp(_) => CommandId::BIND_TRANSMITTER_RESP,
            Pdu::BindTransceiverResp(_) => CommandId::BIND_TRANSCEIVER_RESP,
            Pdu::Outbind(_) => CommandId::OUTBIND,
            Pdu::Unbind => CommandId::UNBIND,
            Pdu::UnbindResp => CommandId::UNBIND_RESP,
            Pdu::EnquireLink => CommandId::ENQUIRE_LINK,
            Pdu::EnquireLinkResp => CommandId::ENQUIRE_LINK_RESP,
            Pdu::GenericNack => CommandId::GENERIC_NACK,
            Pdu::SubmitSm(_) => CommandId::SUBMIT_SM,
            Pdu::SubmitSmResp(_) => CommandId::SUBMIT_SM_RESP,
            Pdu::SubmitMulti(_) => CommandId::SUBMIT_MULTI,
            Pdu::SubmitMultiResp(_) => CommandId::SUBMIT_MULTI_RESP,
            Pdu::DeliverSm(_) => CommandId::DELIVER_SM,
            Pdu::DeliverSmResp(_) => CommandId::DELIVER_SM_RESP,
            Pdu::DataSm(_) => CommandId::DATA_SM,
            Pdu::DataSmResp(_) => CommandId::DATA_SM_RESP,
            Pdu::QuerySm(_) => CommandId::QUERY_SM,
            Pdu::QuerySmResp(_) => CommandId::QUERY_SM_RESP,
            Pdu::CancelSm(_) => CommandId::CANCEL_SM,
            Pdu::CancelSmResp => CommandId::CANCEL_SM_RESP,
            Pdu::ReplaceSm(_) => CommandId::REPLACE_SM,
            Pdu::ReplaceSmResp => CommandId::REPLACE_SM_RESP,
            Pdu::AlertNotification(_) => CommandId::ALERT_NOTIFICATION,
            Pdu::Other { command_id, .. } => *command_id,
        }
    }

    /// Appends the whole PDU (header included) to `dst`. `command_length`
    /// and the other length fields are derived.
    pub fn encode(&self, command_status: CommandStatus, sequence_number: u32, dst: &mut BytesMut) {
        let id = self.command_id();
        let (s, n) = (command_status, sequence_number);
        match self {
            Pdu::BindReceiver(b) | Pdu::BindTransmitter(b) | Pdu::BindTransceiver(b) => {
                emit(id, s, n, b, dst)
            }
            Pdu::BindReceiverResp(b)
            | Pdu::BindTransmitterResp(b)
            | Pdu::BindTransceiverResp(b) => emit(id, s, n, b, dst),
            Pdu::Outbind(b) => emit(id, s, n, b, dst),
            Pdu::Unbind
            | Pdu::UnbindResp
            | Pdu::EnquireLink
            | Pdu::EnquireLinkResp
            | Pdu::GenericNack
            | Pdu::CancelSmResp
            | Pdu::ReplaceSmResp => emit(id, s, n, &(), dst),
            Pdu::SubmitSm(b) | Pdu::DeliverSm(b) => emit(id, s, n, b, dst),
            Pdu::SubmitSmResp(b) | Pdu::DeliverSmResp(b) | Pdu::DataSmResp(b) => {
                emit(id, s, n, b, dst)
            }
            Pdu::SubmitMulti(b) => emit(id, s, n, b, dst),
            Pdu::SubmitMultiResp(b) => emit(id, s, n, b, dst),
            Pdu::DataSm(b) => emit(id, s, n, b, dst),
            Pdu::QuerySm(b) => emit(id, s, n, b, dst),
            Pdu::QuerySmResp(b) => emit(id, s, n, b, dst),
            Pdu::CancelSm(b) => emit(id, s, n, b, dst),
            Pdu::ReplaceSm(b) => emit(id, s, n, b, dst),
            Pdu::AlertNotification(b) => emit(id, s, n, b, dst),
            Pdu::Other { body, .. } => emit(id, s, n, *body, dst),
        }
    }

    /// The TLVs of PDUs that carry them.
    pub fn tlvs(&self) -> Option<&Tlvs<'a>> {
        match self {
            Pdu::BindReceiverResp(b)
            | Pdu::BindTransmitterResp(b)
            | Pdu::BindTransceiverResp(b) => Some(&b.tlvs),
            Pdu::SubmitSm(b) | Pdu::DeliverSm(b) => Some(&b.tlvs),
            Pdu::SubmitSmResp(b) | Pdu::DeliverSmResp(b) | Pdu::DataSmResp(b) => Some(&b.tlvs),
            Pdu::SubmitMulti(b) => Some(&b.tlvs),
            Pdu::SubmitMultiResp(b) => Some(&b.tlvs),
            Pdu::DataSm(b) => Some(&b.tlvs),
            Pdu::AlertNotification(b) => Some(&b.tlvs),
            _ => None,
        }
    }
}

/// Writes one PDU: the size is computed first, so the output grows once
/// (zeroed, which also writes every C-octet string's NUL) and the header
/// goes out with its final `command_length`, never patched.
#[inline(always)]
fn emit<B: Body + ?Sized>(
    command_id: CommandId,
    command_status: CommandStatus,
    sequence_number: u32,
    body: &B,
    dst: &mut BytesMut,
) {
    let total = Header::LEN + body.wire_len();
    let start = dst.len();
    dst.put_bytes(0, total);
    let mut w = Out::new(&mut dst[start..]);
    w.fixed(
        Header {
            command_length: total as u32,
            command_id,
            command_status,
            sequence_number,
        }
        .to_bytes(),
    );
    body.write(&mut w);
    debug_assert_eq!(w.written(), total, "{command_id:?}: size computed wrong");
}

/// Entry points for the fuzz targets (`fuzz/`): decoding must never panic
/// and whatever decodes re-encodes to a PDU that decodes to the same value.
#[doc(hidden)]
pub mod fuzzing {
    use super::*;

    /// Parses `data`; if it decodes, re-encodes and checks the round trip.
    pub fn decode(data: &[u8]) {
        let Ok(d) = Pdu::parse(data) else { return };
        let mut out = BytesMut::new();
        d.pdu
            .encode(d.header.command_status, d.header.sequence_number, &mut out);
        let again = Pdu::parse(&out).expect("a re-encoded PDU must decode");
        assert_eq!(again.pdu, d.pdu, "re-encoded PDU decodes differently");
        if d.quirks.is_empty() {
            assert_eq!(
                &out[..],
                data,
                "a PDU without quirks must re-encode byte for byte"
            );
        }
        let _ = json::to_json(&d);
    }

    /// Feeds `data` through [`SmppCodec`] in chunks cut at `cuts`.
    pub fn frame(data: &[u8]) {
        use tokio_util::codec::Decoder;
        let mut codec = SmppCodec::new(4096);
        let mut buf = BytesMut::new();
        let split = data.first().copied().unwrap_or(1).max(1) as usize;
        for chunk in data.chunks(split) {
            buf.extend_from_slice(chunk);
            loop {
                match codec.decode(&mut buf) {
                    Ok(Some(f)) => {
                        assert_eq!(f.bytes.len(), f.header.command_length as usize);
                        let _ = f.parse();
                    }
                    Ok(None) => break,
                    Err(_) => return,
                }
            }
        }
    }
}
