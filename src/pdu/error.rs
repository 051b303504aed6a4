//! Decode errors of the PDU layer: what went wrong, in which field, at which
//! offset, and which `command_status` the peer must be answered with.

use super::header::CommandStatus;

/// Why a PDU body or header could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecodeErrorKind {
    /// Fewer than 16 octets: not even a header.
    TooShort,
    /// `command_length` disagrees with the size of the frame.
    LengthMismatch,
    /// A field runs past the end of the body.
    UnexpectedEnd,
    /// A C-octet string has no terminating NUL within its maximum size.
    MissingNul,
    /// A field is longer than the specification allows.
    TooLong,
    /// A fixed-size field (schedule/validity time) has a size the spec forbids.
    BadSize,
    /// `sm_length` points past the end of the body or above 254.
    BadSmLength,
    /// Octets left after the last mandatory field of a PDU that has no TLVs.
    TrailingBytes,
    /// A TLV header or value runs past the end of the body.
    BadTlvStream,
    /// A known TLV has a value length its definition forbids.
    BadTlvLength,
    /// A field carries a value outside its defined set (e.g. `dest_flag`).
    BadValue,
    /// A response with `command_status` 0 lacks its mandatory body.
    MissingBody,
}

/// A PDU that could not be decoded: the kind, the SMPP field name and the
/// offset of that field from the start of the PDU (header included).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("cannot decode {field} at offset {offset}: {kind:?}")]
pub struct DecodeError {
    /// What went wrong.
    pub kind: DecodeErrorKind,
    /// The SMPP 3.4 name of the field being decoded (or `"header"`, `"tlv"`).
    pub field: &'static str,
    /// Offset of the field from the first octet of the PDU.
    pub offset: usize,
}

impl DecodeError {
    pub(crate) fn new(kind: DecodeErrorKind, field: &'static str, offset: usize) -> Self {
        Self {
            kind,
            field,
            offset,
        }
    }

    /// The `command_status` a `generic_nack` or `*_resp` must carry when
    /// answering the undecodable PDU (SMPP 3.4 section 5.1.3).
    pub fn status(&self) -> CommandStatus {
        use DecodeErrorKind as K;
        match self.kind {
            K::TooShort
            | K::LengthMismatch
            | K::UnexpectedEnd
            | K::TrailingBytes
            | K::MissingBody => CommandStatus::RINVCMDLEN,
            K::BadSmLength => CommandStatus::RINVMSGLEN,
            K::BadTlvStream => CommandStatus::RINVOPTPARSTREAM,
            K::BadTlvLength => CommandStatus::RINVPARLEN,
            K::MissingNul | K::TooLong | K::BadSize | K::BadValue => field_status(self.field),
        }
    }
}

/// The status naming the bad field, when SMPP 3.4 has one.
fn field_status(field: &str) -> CommandStatus {
    match field {
        "system_id" => CommandStatus::RINVSYSID,
        "password" => CommandStatus::RINVPASWD,
        "system_type" => CommandStatus::RINVSYSTYP,
        "service_type" => CommandStatus::RINVSERTYP,
        "source_addr" | "esme_addr" => CommandStatus::RINVSRCADR,
        "destination_addr" => CommandStatus::RINVDSTADR,
        "message_id" => CommandStatus::RINVMSGID,
        "schedule_delivery_time" => CommandStatus::RINVSCHED,
        "validity_period" => CommandStatus::RINVEXPIRY,
        "dl_name" => CommandStatus::RINVDLNAME,
        "dest_flag" => CommandStatus::RINVDESTFLAG,
        "number_of_dests" => CommandStatus::RINVNUMDESTS,
        "tlv" => CommandStatus::RINVOPTPARAMVAL,
        _ => CommandStatus::RSYSERR,
    }
}
