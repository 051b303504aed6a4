//! User data headers for concatenation: building `05 00 03 ref tot seq`
//! (8-bit reference, IEI 0x00) and `06 08 04 refH refL tot seq` (16-bit
//! reference, IEI 0x08), and parsing a received UDH by its UDHL, walking
//! every information element.

/// Concatenation data of one part, from a UDH or from SAR TLVs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ConcatInfo {
    /// Reference shared by every part of the message (8-bit ones widened).
    pub reference: u16,
    /// Number of parts, 1..=255.
    pub total: u8,
    /// This part's number, 1..=total.
    pub seq: u8,
}

impl ConcatInfo {
    /// Checked constructor: `None` unless `1 <= seq <= total`.
    pub fn new(reference: u16, total: u8, seq: u8) -> Option<Self> {
        (total >= 1 && seq >= 1 && seq <= total).then_some(ConcatInfo {
            reference,
            total,
            seq,
        })
    }
}

/// Length of the 8-bit-reference UDH, UDHL included.
pub const UDH8_LEN: usize = 6;
/// Length of the 16-bit-reference UDH, UDHL included.
pub const UDH16_LEN: usize = 7;

/// The 8-bit-reference concatenation UDH (only the low byte of `reference`).
pub fn udh8(reference: u16, total: u8, seq: u8) -> [u8; UDH8_LEN] {
    [0x05, 0x00, 0x03, (reference & 0xFF) as u8, total, seq]
}

/// The 16-bit-reference concatenation UDH.
pub fn udh16(reference: u16, total: u8, seq: u8) -> [u8; UDH16_LEN] {
    let [hi, lo] = reference.to_be_bytes();
    [0x06, 0x08, 0x04, hi, lo, total, seq]
}

/// A UDH split off the front of a short_message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SplitUdh<'a> {
    /// The whole header, UDHL included.
    pub header: &'a [u8],
    /// What follows the header.
    pub body: &'a [u8],
    /// The concatenation IE, if there was a valid one.
    pub concat: Option<ConcatInfo>,
}

/// Why a UDH did not parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum UdhError {
    /// The short_message is empty, so there is no UDHL.
    #[error("udhi is set but the short_message is empty")]
    Empty,
    /// UDHL points past the end of the short_message.
    #[error("udh length {udhl} exceeds the {available} octets that follow")]
    TooLong {
        /// The UDHL octet.
        udhl: usize,
        /// Octets after the UDHL.
        available: usize,
    },
}

/// Splits the UDH from `sm` using UDHL and walks its IEs. IE 0x00 (8-bit
/// reference) and 0x08 (16-bit) give the concatenation data; the last valid
/// one wins; other IEs are skipped; an IE whose length overruns the header
/// ends the walk.
///
/// # Errors
/// [`UdhError`] when the header itself does not fit.
pub fn split(sm: &[u8]) -> Result<SplitUdh<'_>, UdhError> {
    let (&udhl, rest) = sm.split_first().ok_or(UdhError::Empty)?;
    let udhl = usize::from(udhl);
    if udhl > rest.len() {
        return Err(UdhError::TooLong {
            udhl,
            available: rest.len(),
        });
    }
    let (ies, body) = rest.split_at(udhl);
    let mut concat = None;
    let mut i = 0;
    while i + 2 <= ies.len() {
        let (iei, len) = (ies[i], usize::from(ies[i + 1]));
        let Some(data) = ies.get(i + 2..i + 2 + len) else {
            break;
        };
        match (iei, data) {
            (0x00, &[r, t, s]) => {
                concat = ConcatInfo::new(u16::from(r), t, s).or(concat);
            }
            (0x08, &[rh, rl, t, s]) => {
                concat = ConcatInfo::new(u16::from_be_bytes([rh, rl]), t, s).or(concat);
            }
            _ => {}
        }
        i += 2 + len;
    }
    Ok(SplitUdh {
        header: &sm[..=udhl],
        body,
        concat,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn can_round_trip_both_reference_sizes() {
        let mut sm = udh8(0x1234, 3, 2).to_vec();
        sm.extend_from_slice(b"abc");
        let s = split(&sm).unwrap();
        assert_eq!(s.concat, ConcatInfo::new(0x34, 3, 2));
        assert_eq!(s.body, b"abc");
        let mut sm = udh16(0x1234, 3, 2).to_vec();
        sm.extend_from_slice(b"abc");
        let s = split(&sm).unwrap();
        assert_eq!(s.concat, ConcatInfo::new(0x1234, 3, 2));
        assert_eq!(s.body, b"abc");
    }

    #[test]
    fn walks_past_other_ies() {
        // A port-addressing IE (0x05) before the concat IE.
        let sm = [
            0x0B, 0x05, 0x04, 0x0B, 0x84, 0x23, 0xF0, 0x00, 0x03, 0x07, 0x02, 0x01, b'x',
        ];
        let s = split(&sm).unwrap();
        assert_eq!(s.concat, ConcatInfo::new(7, 2, 1));
        assert_eq!(s.body, b"x");
    }

    #[test]
    fn rejects_udhl_past_the_end() {
        assert_eq!(
            split(&[0x05, 0x00, 0x03]),
            Err(UdhError::TooLong {
                udhl: 5,
                available: 2
            })
        );
        assert_eq!(split(&[]), Err(UdhError::Empty));
    }

    #[test]
    fn invalid_sequence_numbers_are_ignored() {
        let sm = [0x05, 0x00, 0x03, 0x01, 0x02, 0x03];
        assert_eq!(split(&sm).unwrap().concat, None);
        let sm = [0x05, 0x00, 0x03, 0x01, 0x02, 0x00];
        assert_eq!(split(&sm).unwrap().concat, None);
    }

    #[test]
    fn truncated_ie_ends_the_walk() {
        let sm = [0x03, 0x00, 0x03, 0x01];
        let s = split(&sm).unwrap();
        assert_eq!(s.concat, None);
        assert!(s.body.is_empty());
    }
}
