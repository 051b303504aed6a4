//! Feed arbitrary bytes in arbitrary chunks through `SmppCodec`: no panic,
//! every frame is exactly `command_length` long, parsing it never panics.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    smppgw::pdu::fuzzing::frame(data);
});
