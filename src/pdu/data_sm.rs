//! data_sm (SMPP 3.4 4.7): a message whose payload travels in TLVs.

use super::error::DecodeError;
use super::tlv::Tlvs;
use super::types::{Body, Out, Reader, cstr_len};

/// Body of data_sm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DataSm<'a> {
    /// SMS application service.
    pub service_type: &'a [u8],
    /// TON of `source_addr`.
    pub source_addr_ton: u8,
    /// NPI of `source_addr`.
    pub source_addr_npi: u8,
    /// Originator address (max 64 characters).
    pub source_addr: &'a [u8],
    /// TON of `destination_addr`.
    pub dest_addr_ton: u8,
    /// NPI of `destination_addr`.
    pub dest_addr_npi: u8,
    /// Recipient address (max 64 characters).
    pub destination_addr: &'a [u8],
    /// Message mode and type.
    pub esm_class: u8,
    /// Receipt request.
    pub registered_delivery: u8,
    /// Character set of `message_payload`.
    pub data_coding: u8,
    /// Optional parameters, `message_payload` among them.
    pub tlvs: Tlvs<'a>,
}

impl<'a> DataSm<'a> {
    pub(crate) fn parse(r: &mut Reader<'a>) -> Result<Self, DecodeError> {
        Ok(DataSm {
            service_type: r.cstr("service_type", 6)?,
            source_addr_ton: r.u8("source_addr_ton")?,
            source_addr_npi: r.u8("source_addr_npi")?,
            source_addr: r.cstr("source_addr", 65)?,
            dest_addr_ton: r.u8("dest_addr_ton")?,
            dest_addr_npi: r.u8("dest_addr_npi")?,
            destination_addr: r.cstr("destination_addr", 65)?,
            esm_class: r.u8("esm_class")?,
            registered_delivery: r.u8("registered_delivery")?,
            data_coding: r.u8("data_coding")?,
            tlvs: r.tlvs()?,
        })
    }
}

impl Body for DataSm<'_> {
    fn wire_len(&self) -> usize {
        cstr_len(self.service_type)
            + 2
            + cstr_len(self.source_addr)
            + 2
            + cstr_len(self.destination_addr)
            + 3
            + self.tlvs.encoded_len()
    }

    fn write(&self, w: &mut Out<'_>) {
        w.cstr(self.service_type);
        w.fixed([self.source_addr_ton, self.source_addr_npi]);
        w.cstr(self.source_addr);
        w.fixed([self.dest_addr_ton, self.dest_addr_npi]);
        w.cstr(self.destination_addr);
        w.fixed([self.esm_class, self.registered_delivery, self.data_coding]);
        self.tlvs.write(w);
    }
}
