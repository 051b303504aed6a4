//! alert_notification (SMPP 3.4 4.12). The body-less operations
//! (enquire_link, unbind, generic_nack and their responses) are unit
//! variants of [`super::Pdu`].

use super::error::DecodeError;
use super::tlv::Tlvs;
use super::types::{Body, Out, Reader, cstr_len};

/// Body of alert_notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AlertNotification<'a> {
    /// TON of `source_addr`.
    pub source_addr_ton: u8,
    /// NPI of `source_addr`.
    pub source_addr_npi: u8,
    /// The MS that became available (max 64 characters).
    pub source_addr: &'a [u8],
    /// TON of `esme_addr`.
    pub esme_addr_ton: u8,
    /// NPI of `esme_addr`.
    pub esme_addr_npi: u8,
    /// The ESME that asked to be alerted (max 64 characters).
    pub esme_addr: &'a [u8],
    /// Optional parameters (`ms_availability_status`).
    pub tlvs: Tlvs<'a>,
}

impl<'a> AlertNotification<'a> {
    pub(crate) fn parse(r: &mut Reader<'a>) -> Result<Self, DecodeError> {
        Ok(AlertNotification {
            source_addr_ton: r.u8("source_addr_ton")?,
            source_addr_npi: r.u8("source_addr_npi")?,
            source_addr: r.cstr("source_addr", 65)?,
            esme_addr_ton: r.u8("esme_addr_ton")?,
            esme_addr_npi: r.u8("esme_addr_npi")?,
            esme_addr: r.cstr_last("esme_addr", 65)?,
            tlvs: r.tlvs()?,
        })
    }
}

impl Body for AlertNotification<'_> {
    fn wire_len(&self) -> usize {
        2 + cstr_len(self.source_addr) + 2 + cstr_len(self.esme_addr) + self.tlvs.encoded_len()
    }

    fn write(&self, w: &mut Out<'_>) {
        w.fixed([self.source_addr_ton, self.source_addr_npi]);
        w.cstr(self.source_addr);
        w.fixed([self.esme_addr_ton, self.esme_addr_npi]);
        w.cstr(self.esme_addr);
        self.tlvs.write(w);
    }
}
