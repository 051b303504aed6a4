//! The 16-octet PDU header and the open wire newtypes `CommandId` and
//! `CommandStatus`: unknown values survive decode and encode unchanged.

/// Defines named consts on an open newtype plus `name()` / `from_name()`.
macro_rules! wire_consts {
    ($ty:ident : $int:ty { $( $name:ident = $val:expr, $s:literal; )* }) => {
        impl $ty {
            $(
                #[doc = concat!("`", $s, "`")]
                pub const $name: $ty = $ty($val);
            )*

            /// The specification's name of this value, if it has one.
            pub fn name(self) -> Option<&'static str> {
                match self.0 {
                    $( $val => Some($s), )*
                    _ => None,
                }
            }

            /// The value with this specification name.
            pub fn from_name(name: &str) -> Option<Self> {
                match name {
                    $( $s => Some($ty($val)), )*
                    _ => None,
                }
            }
        }
    };
}
pub(crate) use wire_consts;

/// The `command_id` of a PDU (SMPP 3.4 section 5.1.2.1). Open: any u32.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CommandId(pub u32);

wire_consts!(CommandId: u32 {
    GENERIC_NACK = 0x8000_0000, "generic_nack";
    BIND_RECEIVER = 0x0000_0001, "bind_receiver";
    BIND_RECEIVER_RESP = 0x8000_0001, "bind_receiver_resp";
    BIND_TRANSMITTER = 0x0000_0002, "bind_transmitter";
    BIND_TRANSMITTER_RESP = 0x8000_0002, "bind_transmitter_resp";
    QUERY_SM = 0x0000_0003, "query_sm";
    QUERY_SM_RESP = 0x8000_0003, "query_sm_resp";
    SUBMIT_SM = 0x0000_0004, "submit_sm";
    SUBMIT_SM_RESP = 0x8000_0004, "submit_sm_resp";
    DELIVER_SM = 0x0000_0005, "deliver_sm";
    DELIVER_SM_RESP = 0x8000_0005, "deliver_sm_resp";
    UNBIND = 0x0000_0006, "unbind";
    UNBIND_RESP = 0x8000_0006, "unbind_resp";
    REPLACE_SM = 0x0000_0007, "replace_sm";
    REPLACE_SM_RESP = 0x8000_0007, "replace_sm_resp";
    CANCEL_SM = 0x0000_0008, "cancel_sm";
    CANCEL_SM_RESP = 0x8000_0008, "cancel_sm_resp";
    BIND_TRANSCEIVER = 0x0000_0009, "bind_transceiver";
    BIND_TRANSCEIVER_RESP = 0x8000_0009, "bind_transceiver_resp";
    OUTBIND = 0x0000_000B, "outbind";
    ENQUIRE_LINK = 0x0000_0015, "enquire_link";
    ENQUIRE_LINK_RESP = 0x8000_0015, "enquire_link_resp";
    SUBMIT_MULTI = 0x0000_0021, "submit_multi";
    SUBMIT_MULTI_RESP = 0x8000_0021, "submit_multi_resp";
    ALERT_NOTIFICATION = 0x0000_0102, "alert_notification";
    DATA_SM = 0x0000_0103, "data_sm";
    DATA_SM_RESP = 0x8000_0103, "data_sm_resp";
});

impl CommandId {
    /// Whether this is a response (bit 31 set).
    pub fn is_response(self) -> bool {
        self.0 & 0x8000_0000 != 0
    }

    /// The response id matching this request id.
    pub fn response(self) -> CommandId {
        CommandId(self.0 | 0x8000_0000)
    }
}

/// The `command_status` of a PDU (SMPP 3.4 section 5.1.3). Open: vendor
/// values (0x400-0x4FF) and anything else survive unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CommandStatus(pub u32);

wire_consts!(CommandStatus: u32 {
    ROK = 0x00, "ESME_ROK";
    RINVMSGLEN = 0x01, "ESME_RINVMSGLEN";
    RINVCMDLEN = 0x02, "ESME_RINVCMDLEN";
    RINVCMDID = 0x03, "ESME_RINVCMDID";
    RINVBNDSTS = 0x04, "ESME_RINVBNDSTS";
    RALYBND = 0x05, "ESME_RALYBND";
    RINVPRTFLG = 0x06, "ESME_RINVPRTFLG";
    RINVREGDLVFLG = 0x07, "ESME_RINVREGDLVFLG";
    RSYSERR = 0x08, "ESME_RSYSERR";
    RINVSRCADR = 0x0A, "ESME_RINVSRCADR";
    RINVDSTADR = 0x0B, "ESME_RINVDSTADR";
    RINVMSGID = 0x0C, "ESME_RINVMSGID";
    RBINDFAIL = 0x0D, "ESME_RBINDFAIL";
    RINVPASWD = 0x0E, "ESME_RINVPASWD";
    RINVSYSID = 0x0F, "ESME_RINVSYSID";
    RCANCELFAIL = 0x11, "ESME_RCANCELFAIL";
    RREPLACEFAIL = 0x13, "ESME_RREPLACEFAIL";
    RMSGQFUL = 0x14, "ESME_RMSGQFUL";
    RINVSERTYP = 0x15, "ESME_RINVSERTYP";
    RINVNUMDESTS = 0x33, "ESME_RINVNUMDESTS";
    RINVDLNAME = 0x34, "ESME_RINVDLNAME";
    RINVDESTFLAG = 0x40, "ESME_RINVDESTFLAG";
    RINVSUBREP = 0x42, "ESME_RINVSUBREP";
    RINVESMCLASS = 0x43, "ESME_RINVESMCLASS";
    RCNTSUBDL = 0x44, "ESME_RCNTSUBDL";
    RSUBMITFAIL = 0x45, "ESME_RSUBMITFAIL";
    RINVSRCTON = 0x48, "ESME_RINVSRCTON";
    RINVSRCNPI = 0x49, "ESME_RINVSRCNPI";
    RINVDSTTON = 0x50, "ESME_RINVDSTTON";
    RINVDSTNPI = 0x51, "ESME_RINVDSTNPI";
    RINVSYSTYP = 0x53, "ESME_RINVSYSTYP";
    RINVREPFLAG = 0x54, "ESME_RINVREPFLAG";
    RINVNUMMSGS = 0x55, "ESME_RINVNUMMSGS";
    RTHROTTLED = 0x58, "ESME_RTHROTTLED";
    RINVSCHED = 0x61, "ESME_RINVSCHED";
    RINVEXPIRY = 0x62, "ESME_RINVEXPIRY";
    RINVDFTMSGID = 0x63, "ESME_RINVDFTMSGID";
    RX_T_APPN = 0x64, "ESME_RX_T_APPN";
    RX_P_APPN = 0x65, "ESME_RX_P_APPN";
    RX_R_APPN = 0x66, "ESME_RX_R_APPN";
    RQUERYFAIL = 0x67, "ESME_RQUERYFAIL";
    RINVOPTPARSTREAM = 0xC0, "ESME_RINVOPTPARSTREAM";
    ROPTPARNOTALLWD = 0xC1, "ESME_ROPTPARNOTALLWD";
    RINVPARLEN = 0xC2, "ESME_RINVPARLEN";
    RMISSINGOPTPARAM = 0xC3, "ESME_RMISSINGOPTPARAM";
    RINVOPTPARAMVAL = 0xC4, "ESME_RINVOPTPARAMVAL";
    RDELIVERYFAILURE = 0xFE, "ESME_RDELIVERYFAILURE";
    RUNKNOWNERR = 0xFF, "ESME_RUNKNOWNERR";
});

/// The PDU header (SMPP 3.4 section 3.2), 16 octets, big endian.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Size of the whole PDU, header included.
    pub command_length: u32,
    /// Which PDU this is.
    pub command_id: CommandId,
    /// Outcome of a request (responses); 0 in requests.
    pub command_status: CommandStatus,
    /// Correlates a response with its request.
    pub sequence_number: u32,
}

impl Header {
    /// Size of the header on the wire.
    pub const LEN: usize = 16;

    /// Reads the header from the first 16 octets, or `None` if fewer.
    pub fn peek(src: &[u8]) -> Option<Header> {
        let word = |i: usize| -> Option<u32> {
            let b: [u8; 4] = src.get(i..i + 4)?.try_into().ok()?;
            Some(u32::from_be_bytes(b))
        };
        Some(Header {
            command_length: word(0)?,
            command_id: CommandId(word(4)?),
            command_status: CommandStatus(word(8)?),
            sequence_number: word(12)?,
        })
    }

    /// The header on the wire, as is (the caller owns `command_length`).
    #[inline(always)]
    pub(crate) fn to_bytes(self) -> [u8; Header::LEN] {
        let mut b = [0; Header::LEN];
        b[..4].copy_from_slice(&self.command_length.to_be_bytes());
        b[4..8].copy_from_slice(&self.command_id.0.to_be_bytes());
        b[8..12].copy_from_slice(&self.command_status.0.to_be_bytes());
        b[12..].copy_from_slice(&self.sequence_number.to_be_bytes());
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_values_have_no_name_and_survive() {
        assert_eq!(CommandStatus(0x400).name(), None);
        assert_eq!(CommandStatus::RTHROTTLED.name(), Some("ESME_RTHROTTLED"));
        assert_eq!(CommandId::from_name("data_sm"), Some(CommandId::DATA_SM));
        assert_eq!(CommandId::SUBMIT_SM.response(), CommandId::SUBMIT_SM_RESP);
        assert!(CommandId(0x8000_0111).is_response());
    }

    #[test]
    fn peek_rejects_short_input() {
        assert_eq!(Header::peek(&[0; 15]), None);
        let h = Header::peek(&[0, 0, 0, 16, 0, 0, 0, 0x15, 0, 0, 0, 0, 0, 0, 0, 7]);
        assert_eq!(
            h.map(|h| (h.command_id, h.sequence_number)),
            Some((CommandId::ENQUIRE_LINK, 7))
        );
    }
}
