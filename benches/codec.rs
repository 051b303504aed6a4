//! Decode and encode of typical PDUs (submit_sm, deliver_sm receipt and MO,
//! enquire_link), smppgw's borrowed codec side by side with `rusmpp` 0.4 on
//! the same bytes. Decode = framing + body parse, measured two ways:
//! `decode/*` gives each PDU a fresh `BytesMut` of its own (a worst case: the
//! first frame split of a buffer allocates its shared header), and
//! `decode_stream/*` reads a buffer of [`STREAM`] back-to-back PDUs, as a
//! socket read of a busy bind does (figures per PDU). Encode = writing a whole
//! PDU into a reused buffer.

use bytes::BytesMut;
use criterion::{BatchSize, Criterion, Throughput, black_box, criterion_group, criterion_main};
use smppgw::pdu::{Pdu, SmppCodec};
use tokio_util::codec::{Decoder, Encoder};

// The allocator of the daemon (src/alloc.rs), so the figures are its own.
smppgw::jemalloc!();

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn vector(name: &str) -> Vec<u8> {
    let all: serde_json::Value =
        serde_json::from_str(include_str!("../src/pdu/testdata/smpp34.json")).unwrap();
    let v = all
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == name)
        .unwrap();
    unhex(v["hex"].as_str().unwrap())
}

const CASES: [(&str, &str); 4] = [
    ("submit_sm", "submit_sm_gsm_alnum_sender"),
    ("deliver_sm_receipt", "deliver_sm_receipt_text_and_tlvs"),
    ("deliver_sm_mo", "deliver_sm_mo_ucs2"),
    ("enquire_link", "enquire_link"),
];

fn decode(c: &mut Criterion) {
    for (label, name) in CASES {
        let bytes = vector(name);
        let mut g = c.benchmark_group(format!("decode/{label}"));
        g.bench_function("smppgw", |b| {
            let mut codec = SmppCodec::new(65536);
            b.iter_batched_ref(
                || BytesMut::from(&bytes[..]),
                |buf| {
                    let f = codec.decode(buf).unwrap().unwrap();
                    let d = f.parse().unwrap();
                    black_box(d.pdu.command_id());
                    f
                },
                BatchSize::SmallInput,
            )
        });
        g.bench_function("rusmpp", |b| {
            let mut codec = rusmpp::tokio_codec::CommandCodec::new();
            b.iter_batched_ref(
                || BytesMut::from(&bytes[..]),
                |buf| {
                    let cmd = codec.decode(buf).unwrap().unwrap();
                    black_box(cmd.id());
                    cmd
                },
                BatchSize::SmallInput,
            )
        });
        g.finish();
    }
}

/// PDUs per buffer in `decode_stream/*`.
const STREAM: usize = 64;

fn decode_stream(c: &mut Criterion) {
    for (label, name) in CASES {
        let one = vector(name);
        let bytes = one.repeat(STREAM);
        let mut g = c.benchmark_group(format!("decode_stream/{label}"));
        g.throughput(Throughput::Elements(STREAM as u64));
        g.bench_function("smppgw", |b| {
            let mut codec = SmppCodec::new(65536);
            b.iter_batched_ref(
                || BytesMut::from(&bytes[..]),
                |buf| {
                    let mut n = 0;
                    while let Some(f) = codec.decode(buf).unwrap() {
                        let d = f.parse().unwrap();
                        black_box(d.pdu.command_id());
                        n += 1;
                    }
                    assert_eq!(n, STREAM);
                },
                BatchSize::SmallInput,
            )
        });
        g.bench_function("rusmpp", |b| {
            let mut codec = rusmpp::tokio_codec::CommandCodec::new();
            b.iter_batched_ref(
                || BytesMut::from(&bytes[..]),
                |buf| {
                    let mut n = 0;
                    while let Some(cmd) = codec.decode(buf).unwrap() {
                        black_box(cmd.id());
                        n += 1;
                    }
                    assert_eq!(n, STREAM);
                },
                BatchSize::SmallInput,
            )
        });
        g.finish();
    }
}

fn encode(c: &mut Criterion) {
    for (label, name) in CASES {
        let bytes = vector(name);
        let mut g = c.benchmark_group(format!("encode/{label}"));
        let d = Pdu::parse(&bytes).unwrap();
        g.bench_function("smppgw", |b| {
            let mut dst = BytesMut::with_capacity(512);
            b.iter(|| {
                dst.clear();
                d.pdu
                    .encode(d.header.command_status, d.header.sequence_number, &mut dst);
                black_box(dst.len());
            })
        });
        let mut rc = rusmpp::tokio_codec::CommandCodec::new();
        let cmd = rc.decode(&mut BytesMut::from(&bytes[..])).unwrap().unwrap();
        g.bench_function("rusmpp", |b| {
            let mut dst = BytesMut::with_capacity(512);
            b.iter(|| {
                dst.clear();
                rc.encode(&cmd, &mut dst).unwrap();
                black_box(dst.len());
            })
        });
        let mut check = BytesMut::new();
        rc.encode(&cmd, &mut check).unwrap();
        assert_eq!(
            &check[..],
            &bytes[..],
            "rusmpp re-encodes {name} differently"
        );
        check.clear();
        d.pdu.encode(
            d.header.command_status,
            d.header.sequence_number,
            &mut check,
        );
        assert_eq!(
            &check[..],
            &bytes[..],
            "smppgw re-encodes {name} differently"
        );
        g.finish();
    }
}

criterion_group!(benches, decode, decode_stream, encode);
criterion_main!(benches);
