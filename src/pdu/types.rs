//! Field readers and writers shared by the PDU families: integers, C-octet
//! strings with the spec's size limits (checked once, here), octet strings.
//! Reading is complete-input (nom `complete` parsers over the exact body).

use bytes::{BufMut, BytesMut};
use nom::number::complete::{be_u8, be_u32};

use super::error::{DecodeError, DecodeErrorKind as K};
use super::quirks::{Quirk, Quirks};
use super::tlv::{self, Tlvs};

type NomErr<'a> = nom::Err<nom::error::Error<&'a [u8]>>;

/// Cursor over a PDU body. Offsets in errors are from the start of the PDU.
#[derive(Debug)]
pub struct Reader<'a> {
    rest: &'a [u8],
    offset: usize,
    /// Lenient towards what carriers send (`deliver_sm`, `data_sm`, every
    /// response), strict towards requests an ESME sends.
    pub(crate) strict: bool,
    pub(crate) quirks: Quirks,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(body: &'a [u8], strict: bool) -> Self {
        Self {
            rest: body,
            offset: 16,
            strict,
            quirks: Quirks::NONE,
        }
    }

    fn advance(&mut self, n: usize) {
        self.rest = &self.rest[n..];
        self.offset += n;
    }

    fn end(&self, field: &'static str) -> DecodeError {
        DecodeError::new(K::UnexpectedEnd, field, self.offset)
    }

    /// Offset of the next octet from the start of the PDU.
    pub(crate) fn offset(&self) -> usize {
        self.offset
    }

    /// The octets not read yet.
    pub(crate) fn remaining(&self) -> &'a [u8] {
        self.rest
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    pub(crate) fn u8(&mut self, field: &'static str) -> Result<u8, DecodeError> {
        let (rest, v) = be_u8(self.rest).map_err(|_: NomErr<'a>| self.end(field))?;
        self.rest = rest;
        self.offset += 1;
        Ok(v)
    }

    pub(crate) fn u32(&mut self, field: &'static str) -> Result<u32, DecodeError> {
        let (rest, v) = be_u32(self.rest).map_err(|_: NomErr<'a>| self.end(field))?;
        self.rest = rest;
        self.offset += 4;
        Ok(v)
    }

    pub(crate) fn take(&mut self, field: &'static str, n: usize) -> Result<&'a [u8], DecodeError> {
        let v = self.rest.get(..n).ok_or_else(|| self.end(field))?;
        self.advance(n);
        Ok(v)
    }

    /// A C-octet string of at most `max` octets including its NUL; returns it
    /// without the NUL.
    pub(crate) fn cstr(
        &mut self,
        field: &'static str,
        max: usize,
    ) -> Result<&'a [u8], DecodeError> {
        self.cstr_with(field, max, false)
    }

    /// Like [`Self::cstr`] for the last C-octet string before the end or the
    /// TLVs: a missing NUL at the very end of the body is accepted and
    /// reported as [`Quirk::MissingFinalNul`].
    pub(crate) fn cstr_last(
        &mut self,
        field: &'static str,
        max: usize,
    ) -> Result<&'a [u8], DecodeError> {
        self.cstr_with(field, max, true)
    }

    fn cstr_with(
        &mut self,
        field: &'static str,
        max: usize,
        last: bool,
    ) -> Result<&'a [u8], DecodeError> {
        // Carriers issue over-long credentials, and carriers send over-long
        // fields; accept up to 65 octets, reported, where that is safe.
        let hard = if field == "password" || field == "system_id" || !self.strict {
            max.max(65)
        } else {
            max
        };
        let window = &self.rest[..self.rest.len().min(hard)];
        match window.iter().position(|&b| b == 0) {
            Some(n) => {
                if n + 1 > max {
                    self.quirks.insert(Quirk::OverSpecLength);
                }
                let v = &self.rest[..n];
                self.advance(n + 1);
                Ok(v)
            }
            None if last && self.rest.len() < hard => {
                let v = self.rest;
                if v.len() + 1 > max {
                    self.quirks.insert(Quirk::OverSpecLength);
                }
                self.quirks.insert(Quirk::MissingFinalNul);
                self.advance(v.len());
                Ok(v)
            }
            None if self.rest.len() < hard => {
                Err(DecodeError::new(K::MissingNul, field, self.offset))
            }
            None => Err(DecodeError::new(K::TooLong, field, self.offset)),
        }
    }

    /// `schedule_delivery_time` / `validity_period` / `final_date`: NULL or
    /// 16 characters plus NUL.
    pub(crate) fn time(&mut self, field: &'static str) -> Result<&'a [u8], DecodeError> {
        let at = self.offset;
        let v = self.cstr(field, 17)?;
        if !(v.is_empty() || v.len() == 16) {
            if self.strict {
                return Err(DecodeError::new(K::BadSize, field, at));
            }
            self.quirks.insert(Quirk::BadTimeFormat);
        }
        Ok(v)
    }

    /// `sm_length` then `short_message` (0..=254 octets).
    pub(crate) fn short_message(&mut self) -> Result<&'a [u8], DecodeError> {
        let at = self.offset;
        let n = self.u8("sm_length")? as usize;
        if n > 254 && self.strict {
            return Err(DecodeError::new(K::BadSmLength, "sm_length", at));
        }
        if self.rest.len() < n {
            return Err(DecodeError::new(K::BadSmLength, "sm_length", at));
        }
        self.take("short_message", n)
    }

    /// The TLV section: everything left.
    pub(crate) fn tlvs(&mut self) -> Result<Tlvs<'a>, DecodeError> {
        let t = tlv::parse(self.rest, self.offset, self.strict, &mut self.quirks)?;
        self.advance(self.rest.len());
        Ok(t)
    }

    /// Ends a body without TLVs: octets left over are an error.
    pub(crate) fn finish(&self) -> Result<(), DecodeError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::new(K::TrailingBytes, "body", self.offset))
        }
    }
}

/// Writes a C-octet string: the octets then a NUL.
pub(crate) fn put_cstr(dst: &mut BytesMut, s: &[u8]) {
    dst.put_slice(s);
    dst.put_u8(0);
}

/// Writes `sm_length` then `short_message`, derived from the slice; octets
/// past 255 cannot be expressed and are not written (use `message_payload`).
pub(crate) fn put_short_message(dst: &mut BytesMut, sm: &[u8]) {
    let n = sm.len().min(255);
    dst.put_u8(n as u8);
    dst.put_slice(&sm[..n]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cstr_enforces_max_including_nul() {
        let mut r = Reader::new(b"123456789012345678901\0", true);
        assert_eq!(r.cstr("source_addr", 21).unwrap_err().kind, K::TooLong);
        let mut r = Reader::new(b"12345678901234567890\0", true);
        assert_eq!(r.cstr("source_addr", 21).unwrap().len(), 20);
        assert!(r.quirks.is_empty());
    }

    #[test]
    fn over_long_password_is_accepted_and_reported() {
        let mut r = Reader::new(b"averylongpass\0", true);
        assert_eq!(r.cstr("password", 9).unwrap(), b"averylongpass");
        assert!(r.quirks.contains(Quirk::OverSpecLength));
    }

    #[test]
    fn missing_final_nul_is_detected_only_for_last_field() {
        let mut r = Reader::new(b"abc", true);
        assert_eq!(r.cstr("message_id", 65).unwrap_err().kind, K::MissingNul);
        let mut r = Reader::new(b"abc", true);
        assert_eq!(r.cstr_last("message_id", 65).unwrap(), b"abc");
        assert!(r.quirks.contains(Quirk::MissingFinalNul));
    }
}
