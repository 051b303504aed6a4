//! submit_sm and deliver_sm (same body, SMPP 3.4 4.4 and 4.6), submit_multi
//! (4.5) and the responses that carry a `message_id`.

use super::error::{DecodeError, DecodeErrorKind};
use super::header::CommandStatus;
use super::tlv::Tlvs;
use super::types::{Body, Out, Reader, cstr_len, short_message_len};

/// Body of submit_sm and deliver_sm. `sm_length` is derived from
/// `short_message` on encode and cannot be set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SmBody<'a> {
    /// SMS application service (max 5 characters).
    pub service_type: &'a [u8],
    /// TON of `source_addr`.
    pub source_addr_ton: u8,
    /// NPI of `source_addr`.
    pub source_addr_npi: u8,
    /// Originator address (max 20 characters).
    pub source_addr: &'a [u8],
    /// TON of `destination_addr`.
    pub dest_addr_ton: u8,
    /// NPI of `destination_addr`.
    pub dest_addr_npi: u8,
    /// Recipient address (max 20 characters).
    pub destination_addr: &'a [u8],
    /// Message mode and type; bit 6 (0x40) = UDH in `short_message`.
    pub esm_class: u8,
    /// GSM protocol id.
    pub protocol_id: u8,
    /// Priority.
    pub priority_flag: u8,
    /// Empty or 16 characters.
    pub schedule_delivery_time: &'a [u8],
    /// Empty or 16 characters.
    pub validity_period: &'a [u8],
    /// Receipt request (submit_sm).
    pub registered_delivery: u8,
    /// Replace-if-present flag.
    pub replace_if_present_flag: u8,
    /// Character set of `short_message`.
    pub data_coding: u8,
    /// Canned message id.
    pub sm_default_msg_id: u8,
    /// The message octets (0..=254); empty when `message_payload` is used.
    pub short_message: &'a [u8],
    /// Optional parameters.
    pub tlvs: Tlvs<'a>,
}

/// submit_sm body.
pub type SubmitSm<'a> = SmBody<'a>;
/// deliver_sm body.
pub type DeliverSm<'a> = SmBody<'a>;

impl<'a> SmBody<'a> {
    pub(crate) fn parse(r: &mut Reader<'a>) -> Result<Self, DecodeError> {
        Ok(SmBody {
            service_type: r.cstr("service_type", 6)?,
            source_addr_ton: r.u8("source_addr_ton")?,
            source_addr_npi: r.u8("source_addr_npi")?,
            source_addr: r.cstr("source_addr", 21)?,
            dest_addr_ton: r.u8("dest_addr_ton")?,
            dest_addr_npi: r.u8("dest_addr_npi")?,
            destination_addr: r.cstr("destination_addr", 21)?,
            esm_class: r.u8("esm_class")?,
            protocol_id: r.u8("protocol_id")?,
            priority_flag: r.u8("priority_flag")?,
            schedule_delivery_time: r.time("schedule_delivery_time")?,
            validity_period: r.time("validity_period")?,
            registered_delivery: r.u8("registered_delivery")?,
            replace_if_present_flag: r.u8("replace_if_present_flag")?,
            data_coding: r.u8("data_coding")?,
            sm_default_msg_id: r.u8("sm_default_msg_id")?,
            short_message: r.short_message()?,
            tlvs: r.tlvs()?,
        })
    }
}

impl Body for SmBody<'_> {
    #[inline]
    fn wire_len(&self) -> usize {
        cstr_len(self.service_type)
            + 2
            + cstr_len(self.source_addr)
            + 2
            + cstr_len(self.destination_addr)
            + 3
            + cstr_len(self.schedule_delivery_time)
            + cstr_len(self.validity_period)
            + 4
            + short_message_len(self.short_message)
            + self.tlvs.encoded_len()
    }

    #[inline]
    fn write(&self, w: &mut Out<'_>) {
        w.cstr(self.service_type);
        w.fixed([self.source_addr_ton, self.source_addr_npi]);
        w.cstr(self.source_addr);
        w.fixed([self.dest_addr_ton, self.dest_addr_npi]);
        w.cstr(self.destination_addr);
        w.fixed([self.esm_class, self.protocol_id, self.priority_flag]);
        w.cstr(self.schedule_delivery_time);
        w.cstr(self.validity_period);
        w.fixed([
            self.registered_delivery,
            self.replace_if_present_flag,
            self.data_coding,
            self.sm_default_msg_id,
        ]);
        w.short_message(self.short_message);
        self.tlvs.write(w);
    }
}

/// Body of submit_sm_resp, deliver_sm_resp and data_sm_resp.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MessageIdResp<'a> {
    /// The SMSC's id of the message (max 64 characters; empty in
    /// deliver_sm_resp); `None` when an error response had no body.
    pub message_id: Option<&'a [u8]>,
    /// Optional parameters (data_sm_resp; SMPP 5.0 responses).
    pub tlvs: Tlvs<'a>,
}

/// submit_sm_resp body.
pub type SubmitSmResp<'a> = MessageIdResp<'a>;
/// deliver_sm_resp body.
pub type DeliverSmResp<'a> = MessageIdResp<'a>;
/// data_sm_resp body.
pub type DataSmResp<'a> = MessageIdResp<'a>;

impl<'a> MessageIdResp<'a> {
    pub(crate) fn parse(r: &mut Reader<'a>) -> Result<Self, DecodeError> {
        Ok(MessageIdResp {
            message_id: Some(r.cstr_last("message_id", 65)?),
            tlvs: r.tlvs()?,
        })
    }
}

impl Body for MessageIdResp<'_> {
    #[inline]
    fn wire_len(&self) -> usize {
        self.message_id
            .map_or(0, |id| cstr_len(id) + self.tlvs.encoded_len())
    }

    #[inline]
    fn write(&self, w: &mut Out<'_>) {
        if let Some(id) = self.message_id {
            w.cstr(id);
            self.tlvs.write(w);
        }
    }
}

/// One destination of submit_multi.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DestAddress<'a> {
    /// `dest_flag` 1: an SME address.
    Sme {
        /// TON.
        dest_addr_ton: u8,
        /// NPI.
        dest_addr_npi: u8,
        /// Address (max 20 characters).
        destination_addr: &'a [u8],
    },
    /// `dest_flag` 2: a distribution list name (max 20 characters).
    DistributionList(&'a [u8]),
}

impl<'a> DestAddress<'a> {
    fn parse(r: &mut Reader<'a>) -> Result<Self, DecodeError> {
        let at = r.offset();
        match r.u8("dest_flag")? {
            1 => Ok(DestAddress::Sme {
                dest_addr_ton: r.u8("dest_addr_ton")?,
                dest_addr_npi: r.u8("dest_addr_npi")?,
                destination_addr: r.cstr("destination_addr", 21)?,
            }),
            2 => Ok(DestAddress::DistributionList(r.cstr("dl_name", 21)?)),
            _ => Err(DecodeError::new(DecodeErrorKind::BadValue, "dest_flag", at)),
        }
    }

    fn wire_len(&self) -> usize {
        match *self {
            DestAddress::Sme {
                destination_addr, ..
            } => 3 + cstr_len(destination_addr),
            DestAddress::DistributionList(name) => 1 + cstr_len(name),
        }
    }

    fn write(&self, w: &mut Out<'_>) {
        match *self {
            DestAddress::Sme {
                dest_addr_ton,
                dest_addr_npi,
                destination_addr,
            } => {
                w.fixed([1, dest_addr_ton, dest_addr_npi]);
                w.cstr(destination_addr);
            }
            DestAddress::DistributionList(name) => {
                w.fixed([2]);
                w.cstr(name);
            }
        }
    }
}

/// A list of items that is either validated raw octets (decoded) or a
/// caller's slice (built); iterated lazily either way.
#[derive(Debug, Clone, Copy)]
pub enum List<'a, T: 'a> {
    /// `count` validated items in wire format.
    #[doc(hidden)]
    Raw {
        /// Number of items.
        count: u8,
        /// Their octets.
        raw: &'a [u8],
    },
    /// A caller's items.
    Items(&'a [T]),
}

impl<'a, T> Default for List<'a, T> {
    fn default() -> Self {
        List::Items(&[])
    }
}

/// Items that can live in a [`List`].
pub trait ListItem<'a>: Sized + Copy {
    /// Reads one item.
    #[doc(hidden)]
    fn read(r: &mut Reader<'a>) -> Result<Self, DecodeError>;
    /// Octets one item takes on the wire.
    #[doc(hidden)]
    fn wire_len(&self) -> usize;
    /// Writes one item.
    #[doc(hidden)]
    fn write(&self, w: &mut Out<'_>);
}

impl<'a> ListItem<'a> for DestAddress<'a> {
    fn read(r: &mut Reader<'a>) -> Result<Self, DecodeError> {
        DestAddress::parse(r)
    }
    fn wire_len(&self) -> usize {
        DestAddress::wire_len(self)
    }
    fn write(&self, w: &mut Out<'_>) {
        DestAddress::write(self, w)
    }
}

impl<'a, T: ListItem<'a>> List<'a, T> {
    /// Number of items.
    pub fn len(&self) -> usize {
        match self {
            List::Raw { count, .. } => *count as usize,
            List::Items(items) => items.len(),
        }
    }

    /// Whether there is no item.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Iterates the items.
    pub fn iter(&self) -> impl Iterator<Item = T> + 'a {
        let (raw, items): (&'a [u8], &'a [T]) = match *self {
            List::Raw { raw, .. } => (raw, &[]),
            List::Items(items) => (&[], items),
        };
        let mut r = Reader::new(raw, false);
        let from_raw = std::iter::from_fn(move || {
            if r.is_empty() {
                None
            } else {
                T::read(&mut r).ok()
            }
        });
        from_raw.chain(items.iter().copied())
    }

    fn parse(r: &mut Reader<'a>, count: u8) -> Result<Self, DecodeError> {
        let start = r.remaining();
        for _ in 0..count {
            T::read(r)?;
        }
        let used = start.len() - r.remaining().len();
        Ok(List::Raw {
            count,
            raw: &start[..used],
        })
    }

    /// Octets the count and the items take on the wire.
    fn wire_len(&self) -> usize {
        1 + match *self {
            List::Raw { raw, .. } => raw.len(),
            List::Items(items) => items.iter().take(255).map(T::wire_len).sum(),
        }
    }

    /// Writes the count (at most 255) and the items.
    fn write(&self, w: &mut Out<'_>) {
        w.fixed([self.len().min(255) as u8]);
        match *self {
            List::Raw { raw, .. } => w.octets(raw),
            List::Items(items) => items.iter().take(255).for_each(|i| i.write(w)),
        }
    }
}

impl<'a, T: ListItem<'a> + PartialEq> PartialEq for List<'a, T> {
    fn eq(&self, other: &Self) -> bool {
        self.iter().eq(other.iter())
    }
}
impl<'a, T: ListItem<'a> + Eq> Eq for List<'a, T> {}

/// Body of submit_multi.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SubmitMulti<'a> {
    /// SMS application service.
    pub service_type: &'a [u8],
    /// TON of `source_addr`.
    pub source_addr_ton: u8,
    /// NPI of `source_addr`.
    pub source_addr_npi: u8,
    /// Originator address.
    pub source_addr: &'a [u8],
    /// Destinations (`number_of_dests` is derived, max 254).
    pub dest_addresses: List<'a, DestAddress<'a>>,
    /// See [`SmBody::esm_class`].
    pub esm_class: u8,
    /// GSM protocol id.
    pub protocol_id: u8,
    /// Priority.
    pub priority_flag: u8,
    /// Empty or 16 characters.
    pub schedule_delivery_time: &'a [u8],
    /// Empty or 16 characters.
    pub validity_period: &'a [u8],
    /// Receipt request.
    pub registered_delivery: u8,
    /// Replace-if-present flag.
    pub replace_if_present_flag: u8,
    /// Character set.
    pub data_coding: u8,
    /// Canned message id.
    pub sm_default_msg_id: u8,
    /// The message octets.
    pub short_message: &'a [u8],
    /// Optional parameters.
    pub tlvs: Tlvs<'a>,
}

impl<'a> SubmitMulti<'a> {
    pub(crate) fn parse(r: &mut Reader<'a>) -> Result<Self, DecodeError> {
        let service_type = r.cstr("service_type", 6)?;
        let source_addr_ton = r.u8("source_addr_ton")?;
        let source_addr_npi = r.u8("source_addr_npi")?;
        let source_addr = r.cstr("source_addr", 21)?;
        let at = r.offset();
        let n = r.u8("number_of_dests")?;
        if n == 0 || n > 254 {
            return Err(DecodeError::new(
                DecodeErrorKind::BadValue,
                "number_of_dests",
                at,
            ));
        }
        Ok(SubmitMulti {
            service_type,
            source_addr_ton,
            source_addr_npi,
            source_addr,
            dest_addresses: List::parse(r, n)?,
            esm_class: r.u8("esm_class")?,
            protocol_id: r.u8("protocol_id")?,
            priority_flag: r.u8("priority_flag")?,
            schedule_delivery_time: r.time("schedule_delivery_time")?,
            validity_period: r.time("validity_period")?,
            registered_delivery: r.u8("registered_delivery")?,
            replace_if_present_flag: r.u8("replace_if_present_flag")?,
            data_coding: r.u8("data_coding")?,
            sm_default_msg_id: r.u8("sm_default_msg_id")?,
            short_message: r.short_message()?,
            tlvs: r.tlvs()?,
        })
    }
}

impl Body for SubmitMulti<'_> {
    fn wire_len(&self) -> usize {
        cstr_len(self.service_type)
            + 2
            + cstr_len(self.source_addr)
            + self.dest_addresses.wire_len()
            + 3
            + cstr_len(self.schedule_delivery_time)
            + cstr_len(self.validity_period)
            + 4
            + short_message_len(self.short_message)
            + self.tlvs.encoded_len()
    }

    fn write(&self, w: &mut Out<'_>) {
        w.cstr(self.service_type);
        w.fixed([self.source_addr_ton, self.source_addr_npi]);
        w.cstr(self.source_addr);
        self.dest_addresses.write(w);
        w.fixed([self.esm_class, self.protocol_id, self.priority_flag]);
        w.cstr(self.schedule_delivery_time);
        w.cstr(self.validity_period);
        w.fixed([
            self.registered_delivery,
            self.replace_if_present_flag,
            self.data_coding,
            self.sm_default_msg_id,
        ]);
        w.short_message(self.short_message);
        self.tlvs.write(w);
    }
}

/// One destination submit_multi could not deliver to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnsuccessSme<'a> {
    /// TON.
    pub dest_addr_ton: u8,
    /// NPI.
    pub dest_addr_npi: u8,
    /// Address.
    pub destination_addr: &'a [u8],
    /// Why it failed.
    pub error_status_code: CommandStatus,
}

impl<'a> ListItem<'a> for UnsuccessSme<'a> {
    fn read(r: &mut Reader<'a>) -> Result<Self, DecodeError> {
        Ok(UnsuccessSme {
            dest_addr_ton: r.u8("dest_addr_ton")?,
            dest_addr_npi: r.u8("dest_addr_npi")?,
            destination_addr: r.cstr("destination_addr", 21)?,
            error_status_code: CommandStatus(r.u32("error_status_code")?),
        })
    }
    fn wire_len(&self) -> usize {
        2 + cstr_len(self.destination_addr) + 4
    }
    fn write(&self, w: &mut Out<'_>) {
        w.fixed([self.dest_addr_ton, self.dest_addr_npi]);
        w.cstr(self.destination_addr);
        w.fixed(self.error_status_code.0.to_be_bytes());
    }
}

/// Body of submit_multi_resp.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SubmitMultiResp<'a> {
    /// The SMSC's message id; `None` when an error response had no body.
    pub message_id: Option<&'a [u8]>,
    /// Failed destinations (`no_unsuccess` is derived).
    pub unsuccess_smes: List<'a, UnsuccessSme<'a>>,
    /// Optional parameters (SMPP 5.0).
    pub tlvs: Tlvs<'a>,
}

impl<'a> SubmitMultiResp<'a> {
    pub(crate) fn parse(r: &mut Reader<'a>) -> Result<Self, DecodeError> {
        let message_id = r.cstr("message_id", 65)?;
        let n = r.u8("no_unsuccess")?;
        Ok(SubmitMultiResp {
            message_id: Some(message_id),
            unsuccess_smes: List::parse(r, n)?,
            tlvs: r.tlvs()?,
        })
    }
}

impl Body for SubmitMultiResp<'_> {
    fn wire_len(&self) -> usize {
        self.message_id.map_or(0, |id| {
            cstr_len(id) + self.unsuccess_smes.wire_len() + self.tlvs.encoded_len()
        })
    }

    fn write(&self, w: &mut Out<'_>) {
        if let Some(id) = self.message_id {
            w.cstr(id);
            self.unsuccess_smes.write(w);
            self.tlvs.write(w);
        }
    }
}
