//! Delivery receipts: parsed from TLVs or from the receipt text, message ids in a normal form, delivery states. Pure.
