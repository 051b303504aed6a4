//! Optional parameters (TLVs): every tag of SMPP 3.4 and 5.0 by name, and
//! [`Tlvs`], a validated borrowed TLV section iterated lazily. Unknown and
//! vendor tags are kept byte for byte.

use super::error::{DecodeError, DecodeErrorKind};
use super::header::wire_consts;
use super::quirks::{Quirk, Quirks};
use super::types::Out;

/// A TLV tag (SMPP 3.4 section 5.3.2). Open: any u16.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TlvTag(pub u16);

wire_consts!(TlvTag: u16 {
    DEST_ADDR_SUBUNIT = 0x0005, "dest_addr_subunit";
    DEST_NETWORK_TYPE = 0x0006, "dest_network_type";
    DEST_BEARER_TYPE = 0x0007, "dest_bearer_type";
    DEST_TELEMATICS_ID = 0x0008, "dest_telematics_id";
    SOURCE_ADDR_SUBUNIT = 0x000D, "source_addr_subunit";
    SOURCE_NETWORK_TYPE = 0x000E, "source_network_type";
    SOURCE_BEARER_TYPE = 0x000F, "source_bearer_type";
    SOURCE_TELEMATICS_ID = 0x0010, "source_telematics_id";
    QOS_TIME_TO_LIVE = 0x0017, "qos_time_to_live";
    PAYLOAD_TYPE = 0x0019, "payload_type";
    ADDITIONAL_STATUS_INFO_TEXT = 0x001D, "additional_status_info_text";
    RECEIPTED_MESSAGE_ID = 0x001E, "receipted_message_id";
    MS_MSG_WAIT_FACILITIES = 0x0030, "ms_msg_wait_facilities";
    PRIVACY_INDICATOR = 0x0201, "privacy_indicator";
    SOURCE_SUBADDRESS = 0x0202, "source_subaddress";
    DEST_SUBADDRESS = 0x0203, "dest_subaddress";
    USER_MESSAGE_REFERENCE = 0x0204, "user_message_reference";
    USER_RESPONSE_CODE = 0x0205, "user_response_code";
    SOURCE_PORT = 0x020A, "source_port";
    DESTINATION_PORT = 0x020B, "destination_port";
    SAR_MSG_REF_NUM = 0x020C, "sar_msg_ref_num";
    LANGUAGE_INDICATOR = 0x020D, "language_indicator";
    SAR_TOTAL_SEGMENTS = 0x020E, "sar_total_segments";
    SAR_SEGMENT_SEQNUM = 0x020F, "sar_segment_seqnum";
    SC_INTERFACE_VERSION = 0x0210, "sc_interface_version";
    CALLBACK_NUM_PRES_IND = 0x0302, "callback_num_pres_ind";
    CALLBACK_NUM_ATAG = 0x0303, "callback_num_atag";
    NUMBER_OF_MESSAGES = 0x0304, "number_of_messages";
    CALLBACK_NUM = 0x0381, "callback_num";
    DPF_RESULT = 0x0420, "dpf_result";
    SET_DPF = 0x0421, "set_dpf";
    MS_AVAILABILITY_STATUS = 0x0422, "ms_availability_status";
    NETWORK_ERROR_CODE = 0x0423, "network_error_code";
    MESSAGE_PAYLOAD = 0x0424, "message_payload";
    DELIVERY_FAILURE_REASON = 0x0425, "delivery_failure_reason";
    MORE_MESSAGES_TO_SEND = 0x0426, "more_messages_to_send";
    MESSAGE_STATE = 0x0427, "message_state";
    CONGESTION_STATE = 0x0428, "congestion_state";
    USSD_SERVICE_OP = 0x0501, "ussd_service_op";
    BROADCAST_CHANNEL_INDICATOR = 0x0600, "broadcast_channel_indicator";
    BROADCAST_CONTENT_TYPE = 0x0601, "broadcast_content_type";
    BROADCAST_CONTENT_TYPE_INFO = 0x0602, "broadcast_content_type_info";
    BROADCAST_MESSAGE_CLASS = 0x0603, "broadcast_message_class";
    BROADCAST_REP_NUM = 0x0604, "broadcast_rep_num";
    BROADCAST_FREQUENCY_INTERVAL = 0x0605, "broadcast_frequency_interval";
    BROADCAST_AREA_IDENTIFIER = 0x0606, "broadcast_area_identifier";
    BROADCAST_ERROR_STATUS = 0x0607, "broadcast_error_status";
    BROADCAST_AREA_SUCCESS = 0x0608, "broadcast_area_success";
    BROADCAST_END_TIME = 0x0609, "broadcast_end_time";
    BROADCAST_SERVICE_GROUP = 0x060A, "broadcast_service_group";
    BILLING_IDENTIFICATION = 0x060B, "billing_identification";
    SOURCE_NETWORK_ID = 0x060D, "source_network_id";
    DEST_NETWORK_ID = 0x060E, "dest_network_id";
    SOURCE_NODE_ID = 0x060F, "source_node_id";
    DEST_NODE_ID = 0x0610, "dest_node_id";
    DEST_ADDR_NP_RESOLUTION = 0x0611, "dest_addr_np_resolution";
    DEST_ADDR_NP_INFORMATION = 0x0612, "dest_addr_np_information";
    DEST_ADDR_NP_COUNTRY = 0x0613, "dest_addr_np_country";
    DISPLAY_TIME = 0x1201, "display_time";
    SMS_SIGNAL = 0x1203, "sms_signal";
    MS_VALIDITY = 0x1204, "ms_validity";
    ALERT_ON_MESSAGE_DELIVERY = 0x130C, "alert_on_message_delivery";
    ITS_REPLY_TYPE = 0x1380, "its_reply_type";
    ITS_SESSION_INFO = 0x1383, "its_session_info";
});

/// How the value of a known TLV is typed, for display and length checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlvKind {
    /// A big-endian unsigned integer of this many octets (1, 2 or 4).
    Int(usize),
    /// A C-octet string (NUL terminated) of at most this many octets.
    CString(usize),
    /// An octet string of exactly this many octets.
    Fixed(usize),
    /// Any octets.
    Octets,
}

impl TlvTag {
    /// The value type of a known tag; unknown tags are [`TlvKind::Octets`].
    pub fn kind(self) -> TlvKind {
        match self {
            Self::DEST_TELEMATICS_ID
            | Self::USER_MESSAGE_REFERENCE
            | Self::SOURCE_PORT
            | Self::DESTINATION_PORT
            | Self::SAR_MSG_REF_NUM
            | Self::SMS_SIGNAL
            | Self::BROADCAST_REP_NUM => TlvKind::Int(2),
            Self::QOS_TIME_TO_LIVE | Self::BROADCAST_ERROR_STATUS => TlvKind::Int(4),
            Self::DEST_ADDR_SUBUNIT
            | Self::DEST_NETWORK_TYPE
            | Self::DEST_BEARER_TYPE
            | Self::SOURCE_ADDR_SUBUNIT
            | Self::SOURCE_NETWORK_TYPE
            | Self::SOURCE_BEARER_TYPE
            | Self::SOURCE_TELEMATICS_ID
            | Self::PAYLOAD_TYPE
            | Self::MS_MSG_WAIT_FACILITIES
            | Self::PRIVACY_INDICATOR
            | Self::USER_RESPONSE_CODE
            | Self::LANGUAGE_INDICATOR
            | Self::SAR_TOTAL_SEGMENTS
            | Self::SAR_SEGMENT_SEQNUM
            | Self::SC_INTERFACE_VERSION
            | Self::CALLBACK_NUM_PRES_IND
            | Self::NUMBER_OF_MESSAGES
            | Self::DPF_RESULT
            | Self::SET_DPF
            | Self::MS_AVAILABILITY_STATUS
            | Self::DELIVERY_FAILURE_REASON
            | Self::MORE_MESSAGES_TO_SEND
            | Self::MESSAGE_STATE
            | Self::CONGESTION_STATE
            | Self::USSD_SERVICE_OP
            | Self::BROADCAST_CHANNEL_INDICATOR
            | Self::BROADCAST_MESSAGE_CLASS
            | Self::BROADCAST_AREA_SUCCESS
            | Self::DEST_ADDR_NP_RESOLUTION
            | Self::DISPLAY_TIME
            | Self::ITS_REPLY_TYPE => TlvKind::Int(1),
            Self::ADDITIONAL_STATUS_INFO_TEXT => TlvKind::CString(256),
            Self::RECEIPTED_MESSAGE_ID | Self::SOURCE_NETWORK_ID | Self::DEST_NETWORK_ID => {
                TlvKind::CString(65)
            }
            Self::BROADCAST_END_TIME => TlvKind::CString(17),
            Self::NETWORK_ERROR_CODE
            | Self::BROADCAST_CONTENT_TYPE
            | Self::BROADCAST_FREQUENCY_INTERVAL => TlvKind::Fixed(3),
            Self::ITS_SESSION_INFO => TlvKind::Fixed(2),
            Self::SOURCE_NODE_ID | Self::DEST_NODE_ID => TlvKind::Fixed(6),
            Self::DEST_ADDR_NP_INFORMATION => TlvKind::Fixed(10),
            _ => TlvKind::Octets,
        }
    }

    /// Whether `value` has a length this tag allows.
    pub fn accepts_len(self, value: &[u8]) -> bool {
        match self.kind() {
            TlvKind::Int(n) | TlvKind::Fixed(n) => value.len() == n,
            TlvKind::CString(max) => {
                !value.is_empty() && value.len() <= max && value.last() == Some(&0)
            }
            TlvKind::Octets => true,
        }
    }
}

/// One TLV: a tag and its raw value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tlv<'a> {
    /// The tag.
    pub tag: TlvTag,
    /// The value octets, exactly as on the wire (C-strings keep their NUL).
    pub value: &'a [u8],
}

impl<'a> Tlv<'a> {
    /// A TLV from a tag and raw value.
    pub fn new(tag: TlvTag, value: &'a [u8]) -> Self {
        Self { tag, value }
    }

    /// The value as an unsigned integer when it is 1, 2 or 4 octets long.
    pub fn as_uint(&self) -> Option<u32> {
        match *self.value {
            [a] => Some(a.into()),
            [a, b] => Some(u16::from_be_bytes([a, b]).into()),
            [a, b, c, d] => Some(u32::from_be_bytes([a, b, c, d])),
            _ => None,
        }
    }

    /// The value without its terminating NUL, for C-octet string TLVs.
    pub fn as_cstr(&self) -> &'a [u8] {
        match self.value.split_last() {
            Some((0, rest)) => rest,
            _ => self.value,
        }
    }

    /// The value octets written: a value longer than `u16::MAX` cannot be
    /// expressed and is cut.
    #[inline(always)]
    fn wire_value(&self) -> &'a [u8] {
        &self.value[..self.value.len().min(u16::MAX as usize)]
    }

    #[inline(always)]
    fn encoded_len(&self) -> usize {
        4 + self.wire_value().len()
    }

    #[inline(always)]
    fn write(&self, w: &mut Out<'_>) {
        let value = self.wire_value();
        let [t0, t1] = self.tag.0.to_be_bytes();
        let [l0, l1] = (value.len() as u16).to_be_bytes();
        w.fixed([t0, t1, l0, l1]);
        w.octets(value);
    }
}

/// The TLV section of a PDU: either a validated raw slice from a decoded
/// frame, iterated lazily without allocating, or a caller's list when
/// building a PDU.
#[derive(Debug, Clone, Copy)]
pub struct Tlvs<'a>(Repr<'a>);

#[derive(Debug, Clone, Copy)]
enum Repr<'a> {
    Raw(&'a [u8]),
    List(&'a [Tlv<'a>]),
}

impl Default for Tlvs<'_> {
    fn default() -> Self {
        Self::EMPTY
    }
}

impl PartialEq for Tlvs<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.iter().eq(other.iter())
    }
}
impl Eq for Tlvs<'_> {}

impl<'a> Tlvs<'a> {
    /// No TLVs.
    pub const EMPTY: Tlvs<'static> = Tlvs(Repr::Raw(&[]));

    /// TLVs to encode, in this order.
    pub fn from_list(list: &'a [Tlv<'a>]) -> Self {
        Tlvs(Repr::List(list))
    }

    /// A raw TLV section, checked strictly (every TLV complete, known tags
    /// with a valid length).
    ///
    /// # Errors
    /// [`DecodeErrorKind::BadTlvStream`] or [`DecodeErrorKind::BadTlvLength`].
    pub fn from_raw(raw: &'a [u8]) -> Result<Self, DecodeError> {
        let mut quirks = Quirks::NONE;
        parse(raw, 0, true, &mut quirks)
    }

    /// Iterates the TLVs in wire order.
    pub fn iter(&self) -> TlvIter<'a> {
        match self.0 {
            Repr::Raw(raw) => TlvIter::Raw(raw),
            Repr::List(list) => TlvIter::List(list.iter()),
        }
    }

    /// The value of the first TLV with this tag.
    pub fn get(&self, tag: TlvTag) -> Option<&'a [u8]> {
        self.iter().find(|t| t.tag == tag).map(|t| t.value)
    }

    /// The first TLV with this tag as an unsigned integer.
    pub fn get_uint(&self, tag: TlvTag) -> Option<u32> {
        self.iter().find(|t| t.tag == tag).and_then(|t| t.as_uint())
    }

    /// The first TLV with this tag as a C-octet string, without its NUL
    /// (e.g. `receipted_message_id`).
    pub fn get_cstr(&self, tag: TlvTag) -> Option<&'a [u8]> {
        self.iter().find(|t| t.tag == tag).map(|t| t.as_cstr())
    }

    /// Whether there is no TLV.
    pub fn is_empty(&self) -> bool {
        self.iter().next().is_none()
    }

    /// Octets the section takes on the wire.
    #[inline]
    pub fn encoded_len(&self) -> usize {
        match self.0 {
            Repr::Raw(raw) => raw.len(),
            Repr::List(list) => list.iter().map(Tlv::encoded_len).sum(),
        }
    }

    #[inline(always)]
    pub(crate) fn write(&self, w: &mut Out<'_>) {
        match self.0 {
            Repr::Raw(raw) => w.octets(raw),
            Repr::List(list) => list.iter().for_each(|t| t.write(w)),
        }
    }
}

impl<'a> IntoIterator for &Tlvs<'a> {
    type Item = Tlv<'a>;
    type IntoIter = TlvIter<'a>;
    fn into_iter(self) -> TlvIter<'a> {
        self.iter()
    }
}

/// Iterator over [`Tlvs`].
#[derive(Debug, Clone)]
pub enum TlvIter<'a> {
    /// Over a validated raw section.
    #[doc(hidden)]
    Raw(&'a [u8]),
    /// Over a caller's list.
    #[doc(hidden)]
    List(std::slice::Iter<'a, Tlv<'a>>),
}

impl<'a> Iterator for TlvIter<'a> {
    type Item = Tlv<'a>;
    fn next(&mut self) -> Option<Tlv<'a>> {
        match self {
            TlvIter::List(it) => it.next().copied(),
            TlvIter::Raw(raw) => {
                let (tag, len) = head(raw)?;
                let value = raw.get(4..4 + len)?;
                *raw = &raw[4 + len..];
                Some(Tlv::new(TlvTag(tag), value))
            }
        }
    }
}

fn head(raw: &[u8]) -> Option<(u16, usize)> {
    match *raw {
        [a, b, c, d, ..] => Some((
            u16::from_be_bytes([a, b]),
            u16::from_be_bytes([c, d]) as usize,
        )),
        _ => None,
    }
}

/// Validates the TLV section `raw` that starts at `offset` in the PDU.
///
/// Fewer than 4 octets left at the end are skipped with
/// [`Quirk::TrailingBytes`] in both modes (an extra NUL after the short
/// message is common). A TLV running past the end is an error when `strict`,
/// otherwise it is dropped with [`Quirk::MalformedTrailingTlv`]. A known tag
/// with a wrong length is an error when `strict`, otherwise kept with
/// [`Quirk::BadTlvLength`].
pub(crate) fn parse<'a>(
    raw: &'a [u8],
    offset: usize,
    strict: bool,
    quirks: &mut Quirks,
) -> Result<Tlvs<'a>, DecodeError> {
    let mut pos = 0;
    while pos < raw.len() {
        let Some((tag, len)) = head(&raw[pos..]) else {
            quirks.insert(Quirk::TrailingBytes);
            break;
        };
        let Some(value) = raw.get(pos + 4..pos + 4 + len) else {
            if strict {
                return Err(DecodeError::new(
                    DecodeErrorKind::BadTlvStream,
                    "tlv",
                    offset + pos,
                ));
            }
            quirks.insert(Quirk::MalformedTrailingTlv);
            break;
        };
        if !TlvTag(tag).accepts_len(value) {
            if strict {
                return Err(DecodeError::new(
                    DecodeErrorKind::BadTlvLength,
                    "tlv",
                    offset + pos,
                ));
            }
            quirks.insert(Quirk::BadTlvLength);
        }
        pos += 4 + len;
    }
    Ok(Tlvs(Repr::Raw(&raw[..pos])))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_and_list_compare_equal_and_get_finds_values() {
        let raw = [0x02, 0x0C, 0, 2, 0x12, 0x34, 0x04, 0x27, 0, 1, 2];
        let parsed = Tlvs::from_raw(&raw).unwrap();
        let list = [
            Tlv::new(TlvTag::SAR_MSG_REF_NUM, &[0x12, 0x34]),
            Tlv::new(TlvTag::MESSAGE_STATE, &[2]),
        ];
        assert_eq!(parsed, Tlvs::from_list(&list));
        assert_eq!(parsed.get_uint(TlvTag::SAR_MSG_REF_NUM), Some(0x1234));
        assert_eq!(parsed.get(TlvTag::MESSAGE_STATE), Some(&[2u8][..]));
        let id = [0x00, 0x1E, 0, 3, b'7', b'7', 0];
        assert_eq!(
            Tlvs::from_raw(&id)
                .unwrap()
                .get_cstr(TlvTag::RECEIPTED_MESSAGE_ID),
            Some(&b"77"[..])
        );
        let tlvs = Tlvs::from_list(&list);
        let mut out = vec![0; tlvs.encoded_len()];
        let mut w = Out::new(&mut out);
        tlvs.write(&mut w);
        assert_eq!(w.written(), raw.len());
        assert_eq!(&out[..], &raw[..]);
    }

    #[test]
    fn rejects_overrunning_tlv_when_strict_and_skips_it_when_lenient() {
        let raw = [0x04, 0x27, 0, 1, 2, 0x14, 0x00, 0, 9, 1];
        assert_eq!(
            Tlvs::from_raw(&raw).unwrap_err().kind,
            DecodeErrorKind::BadTlvStream
        );
        let mut q = Quirks::NONE;
        let t = parse(&raw, 0, false, &mut q).unwrap();
        assert_eq!(t.iter().count(), 1);
        assert!(q.contains(Quirk::MalformedTrailingTlv));
    }

    #[test]
    fn rejects_known_tag_with_wrong_length_when_strict() {
        let raw = [0x04, 0x27, 0, 2, 2, 2];
        assert_eq!(
            Tlvs::from_raw(&raw).unwrap_err().kind,
            DecodeErrorKind::BadTlvLength
        );
        let unknown = [0x14, 0x00, 0, 2, 2, 2];
        assert!(Tlvs::from_raw(&unknown).is_ok());
    }
}
