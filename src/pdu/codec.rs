//! tokio-util framing of SMPP PDUs, nothing more: `command_length` outside
//! `16..=max_len` is fatal (checked before buffering); otherwise each whole
//! PDU is yielded as a [`Frame`] and its body is parsed later with
//! [`Frame::parse`], so a bad body is answered, not a reason to drop the link.

use bytes::{Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use super::error::DecodeError;
use super::header::{CommandStatus, Header};
use super::{Decoded, Pdu};

/// One whole PDU as received or to be sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The header, read from `bytes`.
    pub header: Header,
    /// The whole PDU, header included.
    pub bytes: Bytes,
}

impl Frame {
    /// Decodes the body; the views borrow from this frame.
    ///
    /// # Errors
    /// See [`Pdu::parse`].
    pub fn parse(&self) -> Result<Decoded<'_>, DecodeError> {
        Pdu::parse(&self.bytes)
    }

    /// Encodes `pdu` into a new frame.
    pub fn from_pdu(pdu: &Pdu<'_>, command_status: CommandStatus, sequence_number: u32) -> Frame {
        let mut buf = BytesMut::new();
        pdu.encode(command_status, sequence_number, &mut buf);
        Frame {
            header: Header {
                command_length: buf.len() as u32,
                command_id: pdu.command_id(),
                command_status,
                sequence_number,
            },
            bytes: buf.freeze(),
        }
    }
}

/// A framing failure: the stream is corrupt and the connection must close.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// `command_length` is below 16 or above the configured maximum.
    #[error("command_length {length} outside 16..={max}")]
    BadLength {
        /// The length announced.
        length: u32,
        /// The configured maximum.
        max: usize,
    },
    /// The transport failed.
    #[error("transport error")]
    Io(#[from] std::io::Error),
}

impl FrameError {
    /// The status to send in a generic_nack before closing, if any.
    pub fn status(&self) -> Option<CommandStatus> {
        match self {
            FrameError::BadLength { .. } => Some(CommandStatus::RINVCMDLEN),
            FrameError::Io(_) => None,
        }
    }
}

/// SMPP framing for `tokio_util::codec::Framed`.
#[derive(Debug, Clone, Copy)]
pub struct SmppCodec {
    max_len: usize,
}

impl SmppCodec {
    /// A codec accepting PDUs of up to `max_len` octets (at least 16).
    pub fn new(max_len: usize) -> Self {
        Self {
            max_len: max_len.max(Header::LEN),
        }
    }

    /// The declared length of the frame `buf` starts with, checked against
    /// the bounds; `None` while its length field is not all there.
    fn frame_len(&self, buf: &[u8]) -> Result<Option<usize>, FrameError> {
        let Some(&[a, b, c, d]) = buf.get(..4) else {
            return Ok(None);
        };
        let length = u32::from_be_bytes([a, b, c, d]);
        let len = length as usize;
        if len < Header::LEN || len > self.max_len {
            return Err(FrameError::BadLength {
                length,
                max: self.max_len,
            });
        }
        Ok(Some(len))
    }

    /// Whether `buf` starts with a whole frame this codec decodes (not an
    /// error): a reader can take it without waiting for the peer.
    pub fn holds_frame(&self, buf: &[u8]) -> bool {
        matches!(self.frame_len(buf), Ok(Some(len)) if len <= buf.len())
    }
}

impl Decoder for SmppCodec {
    type Item = Frame;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
        let Some(len) = self.frame_len(src)? else {
            src.reserve(Header::LEN - src.len());
            return Ok(None);
        };
        if src.len() < len {
            src.reserve(len - src.len());
            return Ok(None);
        }
        let bytes = src.split_to(len).freeze();
        let Some(header) = Header::peek(&bytes) else {
            // Unreachable: len >= 16 was checked above.
            return Err(FrameError::BadLength {
                length: len as u32,
                max: self.max_len,
            });
        };
        Ok(Some(Frame { header, bytes }))
    }
}

impl Encoder<Frame> for SmppCodec {
    type Error = FrameError;

    fn encode(&mut self, frame: Frame, dst: &mut BytesMut) -> Result<(), FrameError> {
        dst.extend_from_slice(&frame.bytes);
        Ok(())
    }
}

impl Encoder<&Frame> for SmppCodec {
    type Error = FrameError;

    fn encode(&mut self, frame: &Frame, dst: &mut BytesMut) -> Result<(), FrameError> {
        dst.extend_from_slice(&frame.bytes);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_short_length_before_buffering() {
        let mut c = SmppCodec::new(1024);
        let mut b = BytesMut::from(&[0u8, 0, 0, 15][..]);
        assert!(matches!(
            c.decode(&mut b),
            Err(FrameError::BadLength { length: 15, .. })
        ));
    }

    #[test]
    fn rejects_long_length_before_buffering() {
        let mut c = SmppCodec::new(1024);
        let mut b = BytesMut::from(&[0u8, 0, 4, 1][..]);
        assert!(matches!(
            c.decode(&mut b),
            Err(FrameError::BadLength { length: 1025, .. })
        ));
    }

    #[test]
    fn reserves_the_remainder_and_yields_whole_frames() {
        let mut c = SmppCodec::new(1024);
        let f = Frame::from_pdu(&Pdu::EnquireLink, CommandStatus::ROK, 9);
        let mut b = BytesMut::from(&f.bytes[..6]);
        assert_eq!(c.decode(&mut b).unwrap(), None);
        assert!(b.capacity() >= 16);
        b.extend_from_slice(&f.bytes[6..]);
        b.extend_from_slice(&f.bytes[..3]);
        assert_eq!(c.decode(&mut b).unwrap(), Some(f));
        assert_eq!(b.len(), 3);
    }

    #[test]
    fn holds_frame_only_when_decode_would_yield_one() {
        let c = SmppCodec::new(1024);
        let f = Frame::from_pdu(&Pdu::EnquireLink, CommandStatus::ROK, 9);
        let mut two = f.bytes.to_vec();
        two.extend_from_slice(&f.bytes[..5]);
        assert!(c.holds_frame(&two));
        assert!(!c.holds_frame(&f.bytes[..15]));
        assert!(!c.holds_frame(&f.bytes[..3]));
        assert!(!c.holds_frame(&[]));
        // Lengths the decoder refuses are not frames to wait for.
        assert!(!c.holds_frame(&[0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0]));
        assert!(!c.holds_frame(&[0, 0, 4, 1]));
    }
}
