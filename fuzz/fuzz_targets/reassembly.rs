//! Arbitrary parts (decoded from arbitrary short_messages) fed to a small
//! reassembler never panic, and completed texts are made of what was added.
#![no_main]
use libfuzzer_sys::fuzz_target;
use smppgw::text::{self, AddOutcome, Dcs0, Reassembler};

fuzz_target!(|data: &[u8]| {
    let mut r = Reassembler::new(4);
    for (now, chunk) in (0u64..).zip(data.chunks(12)) {
        let Some((&dc, sm)) = chunk.split_first() else { continue };
        let d = text::decode(dc, dc & 1 == 1, sm, Dcs0::Gsm);
        if let Some(c) = d.concat {
            let src = if dc & 2 == 0 { "447911123456" } else { "819012345678" };
            if let AddOutcome::Complete(t) = r.add(src, "12345", c, d.text, now) {
                assert!(t.chars().count() <= 255 * 12);
            }
        }
        let _ = r.expired(now, 5);
        assert!(r.len() <= 4);
    }
});
