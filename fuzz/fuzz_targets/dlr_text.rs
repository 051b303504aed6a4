//! Receipt parsing never panics, and the id normal form is stable.
#![no_main]
use libfuzzer_sys::fuzz_target;
use smppgw::dlr::{self, IdFormat};

fuzz_target!(|data: &[u8]| {
    // If we panic!, we lose.
    let _ = dlr::parse_text(data);
    let (a, b) = data.split_at(data.len() / 2);
    if let Some(r) = dlr::from_parts(Some(a), a.first().copied(), Some(b), b) {
        for f in [IdFormat::Auto, IdFormat::Decimal, IdFormat::Hex, IdFormat::Raw] {
            let n = dlr::normalize_id(&r.id, f);
            assert_eq!(dlr::normalize_id(&n, IdFormat::Hex), dlr::normalize_id(&n, IdFormat::Hex));
        }
    }
});
