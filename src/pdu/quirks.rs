//! Leniencies the decoder applied to a PDU that real SMSCs send but the
//! specification forbids. Returned next to the view so the shell can count
//! each one in a metric (CARRIERS.md section 7: count every leniency).

/// A set of [`Quirk`]s, as a bitset.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Quirks(u16);

/// One leniency of the decoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum Quirk {
    /// The last C-octet string of the body ended without its NUL.
    MissingFinalNul = 1,
    /// Fewer octets than a TLV header were left at the end and were skipped.
    TrailingBytes = 1 << 1,
    /// A bind response with a non-zero `command_status` had no body (other
    /// error responses omit it by the spec).
    ErrorRespWithoutBody = 1 << 2,
    /// A response with a non-zero `command_status` still carried a body.
    ErrorRespWithBody = 1 << 3,
    /// The last TLV ran past the end of the body; it was dropped.
    MalformedTrailingTlv = 1 << 4,
    /// A known TLV had a length its definition forbids; it was kept raw.
    BadTlvLength = 1 << 5,
    /// A C-octet string was longer than the spec allows (e.g. a 12 character
    /// password some carriers issue) and was accepted.
    OverSpecLength = 1 << 6,
    /// A time field had a length other than 0 or 16 characters.
    BadTimeFormat = 1 << 7,
}

const ALL: [Quirk; 8] = [
    Quirk::MissingFinalNul,
    Quirk::TrailingBytes,
    Quirk::ErrorRespWithoutBody,
    Quirk::ErrorRespWithBody,
    Quirk::MalformedTrailingTlv,
    Quirk::BadTlvLength,
    Quirk::OverSpecLength,
    Quirk::BadTimeFormat,
];

impl Quirk {
    /// The metric label of this quirk, snake_case.
    pub fn name(self) -> &'static str {
        match self {
            Quirk::MissingFinalNul => "missing_final_nul",
            Quirk::TrailingBytes => "trailing_bytes",
            Quirk::ErrorRespWithoutBody => "error_resp_without_body",
            Quirk::ErrorRespWithBody => "error_resp_with_body",
            Quirk::MalformedTrailingTlv => "malformed_trailing_tlv",
            Quirk::BadTlvLength => "bad_tlv_length",
            Quirk::OverSpecLength => "over_spec_length",
            Quirk::BadTimeFormat => "bad_time_format",
        }
    }
}

impl Quirks {
    /// No quirk at all.
    pub const NONE: Quirks = Quirks(0);

    /// Adds one quirk.
    pub fn insert(&mut self, q: Quirk) {
        self.0 |= q as u16;
    }

    /// Whether `q` is in the set.
    pub fn contains(self, q: Quirk) -> bool {
        self.0 & q as u16 != 0
    }

    /// Whether the set is empty (the PDU followed the spec).
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The quirks in the set.
    pub fn iter(self) -> impl Iterator<Item = Quirk> {
        ALL.into_iter().filter(move |q| self.contains(*q))
    }

    /// The metric labels of the quirks in the set.
    pub fn names(self) -> impl Iterator<Item = &'static str> {
        self.iter().map(Quirk::name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_list_only_inserted_quirks() {
        let mut q = Quirks::NONE;
        assert!(q.is_empty());
        q.insert(Quirk::TrailingBytes);
        q.insert(Quirk::OverSpecLength);
        assert_eq!(
            q.names().collect::<Vec<_>>(),
            ["trailing_bytes", "over_spec_length"]
        );
        assert!(!q.contains(Quirk::MissingFinalNul));
    }
}
