//! Field readers and writers shared by the PDU families: integers, C-octet
//! strings with the spec's size limits (checked once, here), octet strings.
//! Reading is complete-input (nom `complete` parsers over the exact body).

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

    #[inline(always)]
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

    #[inline(always)]
    pub(crate) fn u8(&mut self, field: &'static str) -> Result<u8, DecodeError> {
        let (rest, v) = be_u8(self.rest).map_err(|_: NomErr<'a>| self.end(field))?;
        self.rest = rest;
        self.offset += 1;
        Ok(v)
    }

    #[inline(always)]
    pub(crate) fn u32(&mut self, field: &'static str) -> Result<u32, DecodeError> {
        let (rest, v) = be_u32(self.rest).map_err(|_: NomErr<'a>| self.end(field))?;
        self.rest = rest;
        self.offset += 4;
        Ok(v)
    }

    #[inline(always)]
    pub(crate) fn take(&mut self, field: &'static str, n: usize) -> Result<&'a [u8], DecodeError> {
        let v = self.rest.get(..n).ok_or_else(|| self.end(field))?;
        self.advance(n);
        Ok(v)
    }

    /// A C-octet string of at most `max` octets including its NUL; returns it
    /// without the NUL.
    #[inline(always)]
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
    #[inline(always)]
    pub(crate) fn cstr_last(
        &mut self,
        field: &'static str,
        max: usize,
    ) -> Result<&'a [u8], DecodeError> {
        self.cstr_with(field, max, true)
    }

    #[inline(always)]
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

/// The wire size of a C-octet string: its octets and the NUL.
#[inline(always)]
pub(crate) fn cstr_len(s: &[u8]) -> usize {
    s.len() + 1
}

/// The `short_message` octets that are written: past 255 they cannot be
/// expressed in `sm_length` and are dropped (use `message_payload`).
#[inline(always)]
fn sm_octets(sm: &[u8]) -> &[u8] {
    &sm[..sm.len().min(255)]
}

/// The wire size of `sm_length` plus `short_message`.
#[inline(always)]
pub(crate) fn short_message_len(sm: &[u8]) -> usize {
    1 + sm_octets(sm).len()
}

/// A PDU body whose wire size is known before it is written, so that
/// [`super::Pdu::encode`] sizes the output once and writes the header with
/// its final `command_length`.
pub(crate) trait Body {
    /// Octets [`Body::write`] writes.
    fn wire_len(&self) -> usize;
    /// Writes the body; exactly [`Body::wire_len`] octets.
    fn write(&self, w: &mut Out<'_>);
}

/// Body-less PDUs.
impl Body for () {
    #[inline(always)]
    fn wire_len(&self) -> usize {
        0
    }
    #[inline(always)]
    fn write(&self, _: &mut Out<'_>) {}
}

/// A raw body (unknown command ids), kept byte for byte.
impl Body for [u8] {
    #[inline(always)]
    fn wire_len(&self) -> usize {
        self.len()
    }
    #[inline(always)]
    fn write(&self, w: &mut Out<'_>) {
        w.octets(self)
    }
}

/// Writer of one PDU into a zeroed slice of exactly its computed size: a
/// C-octet string's NUL is the zero already there, fixed runs are stored in
/// place, and strings of up to 64 octets are copied with two fixed-size
/// moves instead of a call to `memcpy` (the bulk of the encode time
/// otherwise, as most fields are a few octets long). A write past the end
/// (a size computed wrong, i.e. a bug caught by the debug assertion in
/// `Pdu::encode`) is dropped rather than a panic.
#[derive(Debug)]
pub struct Out<'b> {
    buf: &'b mut [u8],
    pos: usize,
}

impl<'b> Out<'b> {
    /// A writer at the start of `buf`, which must be zeroed.
    pub(crate) fn new(buf: &'b mut [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    /// Octets written (or skipped over) so far.
    pub(crate) fn written(&self) -> usize {
        self.pos
    }

    /// A fixed run of octets.
    #[inline(always)]
    pub(crate) fn fixed<const N: usize>(&mut self, a: [u8; N]) {
        if let Some(d) = self.buf.get_mut(self.pos..self.pos + N) {
            d.copy_from_slice(&a);
        }
        self.pos += N;
    }

    /// Octets as they are.
    #[inline(always)]
    pub(crate) fn octets(&mut self, s: &[u8]) {
        let end = self.pos + s.len();
        if let Some(d) = self.buf.get_mut(self.pos..end) {
            copy(d, s);
        }
        self.pos = end;
    }

    /// A C-octet string: the octets, then the NUL (already zero).
    #[inline(always)]
    pub(crate) fn cstr(&mut self, s: &[u8]) {
        self.octets(s);
        self.pos += 1;
    }

    /// `sm_length` then `short_message`, derived from the slice (see
    /// [`short_message_len`]).
    #[inline(always)]
    pub(crate) fn short_message(&mut self, sm: &[u8]) {
        let sm = sm_octets(sm);
        self.fixed([sm.len() as u8]);
        self.octets(sm);
    }
}

/// `d.copy_from_slice(s)` for slices of equal length; lengths up to 64 take
/// two overlapping fixed-size moves (inlined), longer ones `memcpy`.
#[inline(always)]
fn copy(d: &mut [u8], s: &[u8]) {
    let n = s.len();
    if d.len() != n {
        return;
    }
    match n {
        0 => {}
        1..=3 => {
            d[0] = s[0];
            d[n / 2] = s[n / 2];
            d[n - 1] = s[n - 1];
        }
        4..=7 => pair::<4>(d, s),
        8..=16 => pair::<8>(d, s),
        17..=32 => pair::<16>(d, s),
        33..=64 => pair::<32>(d, s),
        _ => d.copy_from_slice(s),
    }
}

/// Copies the first and the last `N` octets (`N <= len <= 2N`): together
/// they cover the whole slice.
#[inline(always)]
fn pair<const N: usize>(d: &mut [u8], s: &[u8]) {
    let n = s.len();
    d[..N].copy_from_slice(&s[..N]);
    d[n - N..].copy_from_slice(&s[n - N..]);
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
    fn out_copies_every_length_and_keeps_nuls() {
        let src: Vec<u8> = (1..=200).collect();
        for n in 0..=src.len() {
            let s = &src[..n];
            let mut buf = vec![0; 2 + cstr_len(s) + 1];
            let mut w = Out::new(&mut buf);
            w.fixed([0xAA, 0xBB]);
            w.cstr(s);
            w.fixed([0xCC]);
            assert_eq!(w.written(), buf.len(), "length {n}");
            let mut want = vec![0xAA, 0xBB];
            want.extend_from_slice(s);
            want.extend_from_slice(&[0, 0xCC]);
            assert_eq!(buf, want, "length {n}");
        }
    }

    #[test]
    fn out_drops_writes_past_the_end_without_panicking() {
        let mut buf = [0; 3];
        let mut w = Out::new(&mut buf);
        w.octets(b"ab");
        w.octets(b"cd");
        w.fixed([9, 9]);
        assert_eq!(w.written(), 6);
        assert_eq!(buf, [b'a', b'b', 0]);
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
