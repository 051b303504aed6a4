//! Delivery receipts: parsed from TLVs or from the receipt text, message ids in a normal form, delivery states. Pure.
//!
//! - [`is_receipt`] tells a receipt from a mobile-originated message by the
//!   esm_class message-type bits;
//! - [`parse_text`] reads the receipt text leniently into a borrowed
//!   [`ReceiptText`]; [`from_parts`] builds an owned [`Receipt`] from the
//!   TLVs with the text filling the gaps;
//! - [`DeliveryState`] / [`Outcome`] / [`combine`] say what the receipt
//!   means, for one part or a whole multi-part message;
//! - [`normalize_id`] / [`match_ids`] compare ids across bases.

pub mod from_text;
pub mod from_tlvs;
pub mod id;
pub mod state;

pub use from_text::{ReceiptError, ReceiptText, parse_text, scan};
pub use from_tlvs::{Receipt, from_parts};
pub use id::{IdFormat, IdMatch, match_ids, normalize_id};
pub use state::{DeliveryState, Outcome, combine};

/// The message type held in esm_class bits 5..2 of a deliver_sm / data_sm
/// (SMPP 3.4 §5.2.12).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageType {
    /// 0000: an ordinary short message (MO).
    Default,
    /// 0001 (0x04): SMSC delivery receipt.
    SmscDeliveryReceipt,
    /// 0010 (0x08): SME delivery acknowledgement.
    SmeDeliveryAck,
    /// 0100 (0x10): SME manual/user acknowledgement.
    SmeManualAck,
    /// 0110 (0x18): conversation abort (Korean CDMA).
    ConversationAbort,
    /// 1000 (0x20): intermediate delivery notification.
    IntermediateNotification,
    /// Any value the spec reserves, kept as the 4-bit value.
    Reserved(u8),
}

/// The message type from esm_class; the mode bits (1..0) and the GSM
/// feature bits (7..6, UDHI and reply path) are ignored.
pub fn message_type(esm_class: u8) -> MessageType {
    match (esm_class >> 2) & 0x0F {
        0b0000 => MessageType::Default,
        0b0001 => MessageType::SmscDeliveryReceipt,
        0b0010 => MessageType::SmeDeliveryAck,
        0b0100 => MessageType::SmeManualAck,
        0b0110 => MessageType::ConversationAbort,
        0b1000 => MessageType::IntermediateNotification,
        v => MessageType::Reserved(v),
    }
}

/// Whether a deliver_sm with this esm_class carries a receipt: any of the
/// bits 0x04 (SMSC delivery receipt), 0x08 (SME delivery ack) or 0x20
/// (intermediate notification) is set, except conversation abort (0x18).
/// A mask, not equality: SMSCs send 0x44 (receipt + UDHI) and other
/// combinations. A manual/user ack (0x10) is not a receipt. When this says
/// no, the shell may still treat a deliver_sm with a
/// `receipted_message_id` TLV or a receipt-shaped text as one, and count it.
pub fn is_receipt(esm_class: u8) -> bool {
    esm_class & (0x04 | 0x08 | 0x20) != 0
        && message_type(esm_class) != MessageType::ConversationAbort
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receipt_bits_are_detected_with_other_bits_set() {
        for esm in [0x04, 0x44, 0x84, 0x08, 0x20, 0x24, 0x05, 0x0C] {
            assert!(is_receipt(esm), "{esm:#x}");
        }
    }

    #[test]
    fn mo_manual_ack_and_abort_are_not_receipts() {
        for esm in [0x00, 0x40, 0x80, 0x03, 0x10, 0x18, 0x58] {
            assert!(!is_receipt(esm), "{esm:#x}");
        }
    }

    #[test]
    fn message_type_reads_bits_5_to_2() {
        assert_eq!(message_type(0x44), MessageType::SmscDeliveryReceipt);
        assert_eq!(message_type(0x20), MessageType::IntermediateNotification);
        assert_eq!(message_type(0x0C), MessageType::Reserved(3));
    }
}
