//! Versioned value encoding of the sled store.
//!
//! Structured values are one version byte followed by the value:
//! - [`V2`] (written now): MessagePack. The hot, rewritten-per-message values
//!   (messages, conversations, outbox entries: see [`compact`]) are written
//!   positionally, without field names, at about 40 % of their JSON size;
//!   everything else (events with their flattened kinds, templates, ...)
//!   keeps its field names. A positional value gains a field only at its end,
//!   with `#[serde(default)]`, so older values still read.
//! - [`V1`] (read only): serde_json, what stores of the first versions hold;
//!   it reads as before and is rewritten as V2 when the value next changes.
//!
//! The MessagePack reader takes either layout, so which one a value was
//! written in needs no flag. Counters, ids and timestamps stored alone are raw
//! u64 big-endian (see `trees.rs`).
//!
//! Why not JSON any more: sled rewrites a whole leaf (up to 17 entries)
//! every tenth change to it, so the bytes a message costs on disk scale with
//! its values' size; with JSON a message cost ~28 KB of writes.

use serde::{Serialize, de::DeserializeOwned};

use super::error::{StoreError, StoreResult};

/// Version byte of the JSON encoding (read only).
pub(crate) const V1: u8 = 1;
/// Version byte of the MessagePack encoding (read and written).
pub(crate) const V2: u8 = 2;

/// Encodes a value with its field names: `V2` ++ MessagePack map.
pub(crate) fn encode<V: Serialize>(v: &V) -> StoreResult<Vec<u8>> {
    v2(|out| rmp_serde::encode::write_named(out, v))
}

/// Encodes a value positionally: `V2` ++ MessagePack array. Only for types
/// without `skip_serializing_if` or `flatten` (their layout is positional).
pub(crate) fn compact<V: Serialize>(v: &V) -> StoreResult<Vec<u8>> {
    v2(|out| rmp_serde::encode::write(out, v))
}

thread_local! {
    /// Where values are serialized before being copied out at their size:
    /// growing a fresh vector to a value's size took a reallocation per
    /// doubling, for each of the several values every commit writes.
    static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Scratch space kept between values, at most this big.
const SCRATCH_KEEP: usize = 64 << 10;

/// A [`V2`] value written by `write`, in a vector of exactly its size.
fn v2(
    write: impl FnOnce(&mut Vec<u8>) -> Result<(), rmp_serde::encode::Error>,
) -> StoreResult<Vec<u8>> {
    SCRATCH.with(|cell| {
        let Ok(mut buf) = cell.try_borrow_mut() else {
            // Serializing a value while serializing another: its own vector.
            let mut out = vec![V2];
            write(&mut out)?;
            return Ok(out);
        };
        buf.clear();
        buf.push(V2);
        let out = write(&mut buf).map(|()| buf.as_slice().to_vec());
        if buf.capacity() > SCRATCH_KEEP {
            *buf = Vec::new();
        }
        Ok(out?)
    })
}

/// Decodes a value written by [`encode`] or [`compact`], or a V1 (JSON) one.
pub(crate) fn decode<V: DeserializeOwned>(tree: &'static str, bytes: &[u8]) -> StoreResult<V> {
    let corrupt = |detail: String| StoreError::Corrupt { tree, detail };
    match bytes.split_first() {
        Some((&V2, rest)) => rmp_serde::from_slice(rest).map_err(|e| corrupt(e.to_string())),
        Some((&V1, rest)) => serde_json::from_slice(rest).map_err(|e| corrupt(e.to_string())),
        Some((v, _)) => Err(corrupt(format!("unknown value version {v}"))),
        None => Err(corrupt("empty value".into())),
    }
}

/// Decodes a raw big-endian u64 value.
pub(crate) fn decode_u64(tree: &'static str, bytes: &[u8]) -> StoreResult<u64> {
    super::trees::read_u64(bytes).ok_or(StoreError::Corrupt {
        tree,
        detail: "short u64".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_unknown_version() {
        let mut b = encode(&5u32).unwrap();
        assert_eq!(decode::<u32>("t", &b).unwrap(), 5);
        b[0] = 9;
        assert!(decode::<u32>("t", &b).is_err());
        assert!(decode::<u32>("t", &[]).is_err());
    }

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Before {
        id: u64,
        text: String,
        lease: Option<u64>,
    }

    /// `Before` with a field appended the way the module doc asks.
    #[derive(Debug, PartialEq, serde::Deserialize)]
    struct After {
        id: u64,
        text: String,
        lease: Option<u64>,
        #[serde(default)]
        resends: u32,
    }

    fn before() -> Before {
        Before {
            id: 7,
            text: "Your order has shipped".into(),
            lease: None,
        }
    }

    #[test]
    fn can_read_values_written_as_v1_json() {
        let mut v1 = vec![V1];
        v1.extend_from_slice(br#"{"id":7,"text":"Your order has shipped","lease":null}"#);
        assert_eq!(decode::<Before>("t", &v1).unwrap(), before());
        assert_eq!(decode::<After>("t", &v1).unwrap().resends, 0);
    }

    #[test]
    fn can_round_trip_both_v2_layouts() {
        let named = encode(&before()).unwrap();
        let positional = compact(&before()).unwrap();
        assert_eq!((named[0], positional[0]), (V2, V2));
        assert!(positional.len() < named.len());
        assert_eq!(decode::<Before>("t", &named).unwrap(), before());
        assert_eq!(decode::<Before>("t", &positional).unwrap(), before());
    }

    #[test]
    fn values_come_out_at_their_size_whatever_was_serialized_before() {
        let big = Before {
            text: "x".repeat(100_000),
            ..before()
        };
        let big_bytes = compact(&big).unwrap();
        let small = compact(&before()).unwrap();
        // The overlay counts a value by its length: no spare capacity.
        assert_eq!(small.capacity(), small.len());
        assert_eq!(decode::<Before>("t", &small).unwrap(), before());
        assert_eq!(decode::<Before>("t", &big_bytes).unwrap(), big);
        assert_eq!(encode(&before()).unwrap(), {
            let mut named = vec![V2];
            rmp_serde::encode::write_named(&mut named, &before()).unwrap();
            named
        });
    }

    #[test]
    fn positional_value_reads_after_a_field_is_appended() {
        let old = compact(&before()).unwrap();
        let now: After = decode("t", &old).unwrap();
        assert_eq!((now.id, now.resends), (7, 0));
    }

    #[test]
    fn rejects_a_truncated_v2_value() {
        let b = compact(&before()).unwrap();
        let err = decode::<Before>("outbox", &b[..b.len() - 3]).unwrap_err();
        assert!(
            matches!(err, StoreError::Corrupt { tree: "outbox", .. }),
            "{err}"
        );
    }
}
