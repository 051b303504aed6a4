//! bind_transmitter / bind_receiver / bind_transceiver (SMPP 3.4 4.1),
//! their responses, and outbind (4.1.7).

use super::error::DecodeError;
use super::tlv::Tlvs;
use super::types::{Body, Out, Reader, cstr_len};

/// Body of the three bind requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Bind<'a> {
    /// Identifies the ESME to the SMSC (max 15 characters; up to 64 accepted
    /// with the `over_spec_length` quirk).
    pub system_id: &'a [u8],
    /// Password (max 8 characters; up to 64 accepted with the
    /// `over_spec_length` quirk, as carriers issue longer ones).
    pub password: &'a [u8],
    /// Type of ESME (max 12 characters).
    pub system_type: &'a [u8],
    /// SMPP version supported by the ESME (0x34).
    pub interface_version: u8,
    /// TON of `address_range`.
    pub addr_ton: u8,
    /// NPI of `address_range`.
    pub addr_npi: u8,
    /// Addresses served by the ESME (max 40 characters).
    pub address_range: &'a [u8],
}

impl<'a> Bind<'a> {
    pub(crate) fn parse(r: &mut Reader<'a>) -> Result<Self, DecodeError> {
        let b = Bind {
            system_id: r.cstr("system_id", 16)?,
            password: r.cstr("password", 9)?,
            system_type: r.cstr("system_type", 13)?,
            interface_version: r.u8("interface_version")?,
            addr_ton: r.u8("addr_ton")?,
            addr_npi: r.u8("addr_npi")?,
            address_range: r.cstr_last("address_range", 41)?,
        };
        r.finish()?;
        Ok(b)
    }
}

impl Body for Bind<'_> {
    fn wire_len(&self) -> usize {
        cstr_len(self.system_id)
            + cstr_len(self.password)
            + cstr_len(self.system_type)
            + 3
            + cstr_len(self.address_range)
    }

    fn write(&self, w: &mut Out<'_>) {
        w.cstr(self.system_id);
        w.cstr(self.password);
        w.cstr(self.system_type);
        w.fixed([self.interface_version, self.addr_ton, self.addr_npi]);
        w.cstr(self.address_range);
    }
}

/// Body of the three bind responses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BindResp<'a> {
    /// The SMSC's identifier; `None` when an error response had no body.
    pub system_id: Option<&'a [u8]>,
    /// Optional parameters (`sc_interface_version`).
    pub tlvs: Tlvs<'a>,
}

impl<'a> BindResp<'a> {
    pub(crate) fn parse(r: &mut Reader<'a>) -> Result<Self, DecodeError> {
        Ok(BindResp {
            system_id: Some(r.cstr_last("system_id", 16)?),
            tlvs: r.tlvs()?,
        })
    }
}

impl Body for BindResp<'_> {
    fn wire_len(&self) -> usize {
        self.system_id
            .map_or(0, |id| cstr_len(id) + self.tlvs.encoded_len())
    }

    fn write(&self, w: &mut Out<'_>) {
        if let Some(id) = self.system_id {
            w.cstr(id);
            self.tlvs.write(w);
        }
    }
}

/// Body of outbind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Outbind<'a> {
    /// The SMSC's identifier.
    pub system_id: &'a [u8],
    /// Password for the ESME to check.
    pub password: &'a [u8],
}

impl<'a> Outbind<'a> {
    pub(crate) fn parse(r: &mut Reader<'a>) -> Result<Self, DecodeError> {
        let b = Outbind {
            system_id: r.cstr("system_id", 16)?,
            password: r.cstr_last("password", 9)?,
        };
        r.finish()?;
        Ok(b)
    }
}

impl Body for Outbind<'_> {
    fn wire_len(&self) -> usize {
        cstr_len(self.system_id) + cstr_len(self.password)
    }

    fn write(&self, w: &mut Out<'_>) {
        w.cstr(self.system_id);
        w.cstr(self.password);
    }
}
