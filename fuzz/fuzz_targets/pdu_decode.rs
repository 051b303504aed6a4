//! Decode arbitrary bytes as one PDU: no panic; whatever decodes re-encodes
//! to a PDU that decodes the same (and to the same bytes when quirk-free).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    // If we panic!, we lose.
    smppgw::pdu::fuzzing::decode(data);
});
