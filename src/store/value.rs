//! Versioned value encoding of the sled store.
//!
//! Structured values are one version byte ([`V1`]) followed by serde_json.
//! JSON keeps the store readable with a dump tool and lets fields be added
//! with `#[serde(default)]`; a new layout gets a new version byte and a branch
//! in [`decode`]. Counters, ids and timestamps stored alone are raw u64
//! big-endian (see `trees.rs`).

use serde::{Serialize, de::DeserializeOwned};

use super::error::{StoreError, StoreResult};

/// Version byte of the current encoding.
pub(crate) const V1: u8 = 1;

/// Encodes a value: `V1` ++ JSON.
pub(crate) fn encode<V: Serialize>(v: &V) -> StoreResult<Vec<u8>> {
    let mut out = vec![V1];
    serde_json::to_writer(&mut out, v)?;
    Ok(out)
}

/// Decodes a value written by [`encode`].
pub(crate) fn decode<V: DeserializeOwned>(tree: &'static str, bytes: &[u8]) -> StoreResult<V> {
    match bytes.split_first() {
        Some((&V1, rest)) => serde_json::from_slice(rest).map_err(|e| StoreError::Corrupt {
            tree,
            detail: e.to_string(),
        }),
        Some((v, _)) => Err(StoreError::Corrupt {
            tree,
            detail: format!("unknown value version {v}"),
        }),
        None => Err(StoreError::Corrupt {
            tree,
            detail: "empty value".into(),
        }),
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
}
