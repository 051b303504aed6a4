//! Planning any text never panics, count agrees with plan, and every part
//! decodes.
#![no_main]
use libfuzzer_sys::fuzz_target;
use smppgw::text::{self, Concat, Dcs0, PlanOptions};

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else { return };
    let opts = PlanOptions {
        dcs0: [Dcs0::Gsm, Dcs0::GsmPacked, Dcs0::Latin1, Dcs0::Ascii][usize::from(flags & 3)],
        allow_latin1: flags & 4 != 0,
        allow_ia5: flags & 8 != 0,
        at_as_ucs2: flags & 16 != 0,
        transliterate: flags & 32 != 0,
        concat: [Concat::Udh8, Concat::Udh16, Concat::Sar, Concat::Payload][usize::from(flags >> 6)],
        max_parts: 255,
    };
    let t = String::from_utf8_lossy(rest);
    let c = text::count(&t, &opts);
    if let Ok(p) = text::plan(&t, &opts, 42) {
        assert_eq!((c.units, c.parts), (p.units, p.segments));
        for part in &p.parts {
            let _ = text::decode(p.data_coding, p.esm_udhi, &part.short_message, opts.dcs0);
        }
    }
});
