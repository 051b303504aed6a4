//! Proves that decoding allocates nothing: a counting global allocator in
//! its own test binary, around `Pdu::parse` of the deliver_sm receipt and MO
//! vectors (and walking their TLVs).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use smppgw::pdu::{Pdu, TlvTag};

struct Counting;

static ALLOCS: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    // Only the measuring thread counts: the test harness's own threads
    // allocate at any moment (regression: a CI run saw 4 foreign allocations).
    static COUNTING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

// SAFETY: delegates to the system allocator; only counts calls.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.with(|c| c.get()) {
            ALLOCS.fetch_add(1, Ordering::SeqCst);
        }
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn parse_of_deliver_sm_allocates_nothing() {
    let all: serde_json::Value =
        serde_json::from_str(include_str!("../src/pdu/testdata/smpp34.json")).unwrap();
    let frames: Vec<(String, Vec<u8>)> = all
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v["command"] == "deliver_sm")
        .map(|v| {
            (
                v["name"].as_str().unwrap().to_owned(),
                unhex(v["hex"].as_str().unwrap()),
            )
        })
        .collect();
    assert!(frames.iter().any(|(n, _)| n.contains("receipt")));
    assert!(frames.iter().any(|(n, _)| n.contains("mo")));
    for (name, frame) in &frames {
        let before = ALLOCS.load(Ordering::SeqCst);
        COUNTING.with(|c| c.set(true));
        let d = Pdu::parse(frame).unwrap();
        let Pdu::DeliverSm(sm) = d.pdu else {
            panic!("{name}")
        };
        let n = sm.tlvs.iter().count() + sm.short_message.len();
        let id = sm.tlvs.get(TlvTag::RECEIPTED_MESSAGE_ID).map(<[u8]>::len);
        COUNTING.with(|c| c.set(false));
        let after = ALLOCS.load(Ordering::SeqCst);
        assert_eq!(after - before, 0, "{name} allocated");
        assert!(n > 0 && (id.is_some() == name.contains("receipt")));
    }
}
