//! query_sm, cancel_sm, replace_sm (SMPP 3.4 4.8-4.10) and query_sm_resp,
//! whose mandatory `message_state` is a plain field here, distinct from the
//! `message_state` TLV of deliver_sm (node-smpp PR#160).

use super::error::DecodeError;
use super::types::{Body, Out, Reader, cstr_len, short_message_len};

/// Body of query_sm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QuerySm<'a> {
    /// The SMSC's id of the message to query.
    pub message_id: &'a [u8],
    /// TON of `source_addr`.
    pub source_addr_ton: u8,
    /// NPI of `source_addr`.
    pub source_addr_npi: u8,
    /// Originator of the message.
    pub source_addr: &'a [u8],
}

impl<'a> QuerySm<'a> {
    pub(crate) fn parse(r: &mut Reader<'a>) -> Result<Self, DecodeError> {
        let b = QuerySm {
            message_id: r.cstr("message_id", 65)?,
            source_addr_ton: r.u8("source_addr_ton")?,
            source_addr_npi: r.u8("source_addr_npi")?,
            source_addr: r.cstr_last("source_addr", 21)?,
        };
        r.finish()?;
        Ok(b)
    }
}

impl Body for QuerySm<'_> {
    fn wire_len(&self) -> usize {
        cstr_len(self.message_id) + 2 + cstr_len(self.source_addr)
    }

    fn write(&self, w: &mut Out<'_>) {
        w.cstr(self.message_id);
        w.fixed([self.source_addr_ton, self.source_addr_npi]);
        w.cstr(self.source_addr);
    }
}

/// Body of query_sm_resp.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QuerySmResp<'a> {
    /// The queried id; `None` when an error response had no body (then the
    /// other fields are 0 and not encoded).
    pub message_id: Option<&'a [u8]>,
    /// When the message reached its final state; empty or 16 characters.
    pub final_date: &'a [u8],
    /// The mandatory `message_state` field (not the TLV).
    pub message_state: u8,
    /// Network error code.
    pub error_code: u8,
}

impl<'a> QuerySmResp<'a> {
    pub(crate) fn parse(r: &mut Reader<'a>) -> Result<Self, DecodeError> {
        let b = QuerySmResp {
            message_id: Some(r.cstr("message_id", 65)?),
            final_date: r.time("final_date")?,
            message_state: r.u8("message_state")?,
            error_code: r.u8("error_code")?,
        };
        r.finish()?;
        Ok(b)
    }
}

impl Body for QuerySmResp<'_> {
    fn wire_len(&self) -> usize {
        self.message_id
            .map_or(0, |id| cstr_len(id) + cstr_len(self.final_date) + 2)
    }

    fn write(&self, w: &mut Out<'_>) {
        if let Some(id) = self.message_id {
            w.cstr(id);
            w.cstr(self.final_date);
            w.fixed([self.message_state, self.error_code]);
        }
    }
}

/// Body of cancel_sm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CancelSm<'a> {
    /// Service type to match, when `message_id` is empty.
    pub service_type: &'a [u8],
    /// The SMSC's id of the message to cancel.
    pub message_id: &'a [u8],
    /// TON of `source_addr`.
    pub source_addr_ton: u8,
    /// NPI of `source_addr`.
    pub source_addr_npi: u8,
    /// Originator.
    pub source_addr: &'a [u8],
    /// TON of `destination_addr`.
    pub dest_addr_ton: u8,
    /// NPI of `destination_addr`.
    pub dest_addr_npi: u8,
    /// Recipient.
    pub destination_addr: &'a [u8],
}

impl<'a> CancelSm<'a> {
    pub(crate) fn parse(r: &mut Reader<'a>) -> Result<Self, DecodeError> {
        let b = CancelSm {
            service_type: r.cstr("service_type", 6)?,
            message_id: r.cstr("message_id", 65)?,
            source_addr_ton: r.u8("source_addr_ton")?,
            source_addr_npi: r.u8("source_addr_npi")?,
            source_addr: r.cstr("source_addr", 21)?,
            dest_addr_ton: r.u8("dest_addr_ton")?,
            dest_addr_npi: r.u8("dest_addr_npi")?,
            destination_addr: r.cstr_last("destination_addr", 21)?,
        };
        r.finish()?;
        Ok(b)
    }
}

impl Body for CancelSm<'_> {
    fn wire_len(&self) -> usize {
        cstr_len(self.service_type)
            + cstr_len(self.message_id)
            + 2
            + cstr_len(self.source_addr)
            + 2
            + cstr_len(self.destination_addr)
    }

    fn write(&self, w: &mut Out<'_>) {
        w.cstr(self.service_type);
        w.cstr(self.message_id);
        w.fixed([self.source_addr_ton, self.source_addr_npi]);
        w.cstr(self.source_addr);
        w.fixed([self.dest_addr_ton, self.dest_addr_npi]);
        w.cstr(self.destination_addr);
    }
}

/// Body of replace_sm. `sm_length` is derived.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReplaceSm<'a> {
    /// The SMSC's id of the message to replace.
    pub message_id: &'a [u8],
    /// TON of `source_addr`.
    pub source_addr_ton: u8,
    /// NPI of `source_addr`.
    pub source_addr_npi: u8,
    /// Originator.
    pub source_addr: &'a [u8],
    /// Empty or 16 characters.
    pub schedule_delivery_time: &'a [u8],
    /// Empty or 16 characters.
    pub validity_period: &'a [u8],
    /// Receipt request.
    pub registered_delivery: u8,
    /// Canned message id.
    pub sm_default_msg_id: u8,
    /// New message octets.
    pub short_message: &'a [u8],
}

impl<'a> ReplaceSm<'a> {
    pub(crate) fn parse(r: &mut Reader<'a>) -> Result<Self, DecodeError> {
        let b = ReplaceSm {
            message_id: r.cstr("message_id", 65)?,
            source_addr_ton: r.u8("source_addr_ton")?,
            source_addr_npi: r.u8("source_addr_npi")?,
            source_addr: r.cstr("source_addr", 21)?,
            schedule_delivery_time: r.time("schedule_delivery_time")?,
            validity_period: r.time("validity_period")?,
            registered_delivery: r.u8("registered_delivery")?,
            sm_default_msg_id: r.u8("sm_default_msg_id")?,
            short_message: r.short_message()?,
        };
        r.finish()?;
        Ok(b)
    }
}

impl Body for ReplaceSm<'_> {
    fn wire_len(&self) -> usize {
        cstr_len(self.message_id)
            + 2
            + cstr_len(self.source_addr)
            + cstr_len(self.schedule_delivery_time)
            + cstr_len(self.validity_period)
            + 2
            + short_message_len(self.short_message)
    }

    fn write(&self, w: &mut Out<'_>) {
        w.cstr(self.message_id);
        w.fixed([self.source_addr_ton, self.source_addr_npi]);
        w.cstr(self.source_addr);
        w.cstr(self.schedule_delivery_time);
        w.cstr(self.validity_period);
        w.fixed([self.registered_delivery, self.sm_default_msg_id]);
        w.short_message(self.short_message);
    }
}
