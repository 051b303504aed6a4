//! UCS-2 as SMSCs really use it (data_coding 8): UTF-16 big-endian, no BOM,
//! surrogate pairs for characters beyond the BMP. Decoding tolerates a BOM,
//! lone surrogates and an odd trailing octet (replaced, never an error).

/// UTF-16 code units `c` costs (1, or 2 for a surrogate pair).
pub fn units(c: char) -> usize {
    c.len_utf16()
}

/// Appends `c` as UTF-16BE to `out`.
pub fn push_char(c: char, out: &mut Vec<u8>) {
    let mut buf = [0u16; 2];
    for u in c.encode_utf16(&mut buf) {
        out.extend_from_slice(&u.to_be_bytes());
    }
}

/// Encodes `text` as UTF-16BE without a BOM.
pub fn encode(text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() * 2);
    for c in text.chars() {
        push_char(c, &mut out);
    }
    out
}

/// Decodes UTF-16BE. A leading BOM (FE FF) is skipped; a little-endian
/// BOM (FF FE) switches to little-endian. Lone surrogates and an odd last
/// octet become U+FFFD. Returns the text and whether anything was replaced.
pub fn decode(bytes: &[u8]) -> (String, bool) {
    let (body, little) = match bytes {
        [0xFE, 0xFF, rest @ ..] => (rest, false),
        [0xFF, 0xFE, rest @ ..] => (rest, true),
        _ => (bytes, false),
    };
    let mut lossy = body.len() % 2 == 1;
    let it = body.chunks_exact(2).map(|p| {
        if little {
            u16::from_le_bytes([p[0], p[1]])
        } else {
            u16::from_be_bytes([p[0], p[1]])
        }
    });
    let mut out = String::with_capacity(body.len());
    for r in char::decode_utf16(it) {
        match r {
            Ok(c) => out.push(c),
            Err(_) => {
                lossy = true;
                out.push(char::REPLACEMENT_CHARACTER);
            }
        }
    }
    if body.len() % 2 == 1 {
        out.push(char::REPLACEMENT_CHARACTER);
    }
    (out, lossy)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_big_endian_without_bom() {
        assert_eq!(encode("é"), vec![0x00, 0xE9]);
        assert_eq!(encode("😀"), vec![0xD8, 0x3D, 0xDE, 0x00]);
    }

    #[test]
    fn bom_is_skipped_when_decoding() {
        assert_eq!(decode(&[0xFE, 0xFF, 0x00, 0x41]), ("A".into(), false));
        assert_eq!(decode(&[0xFF, 0xFE, 0x41, 0x00]), ("A".into(), false));
    }

    #[test]
    fn lone_surrogates_are_replaced_not_fatal() {
        let (t, lossy) = decode(&[0xD8, 0x3D, 0x00, 0x41]);
        assert_eq!(t, "\u{FFFD}A");
        assert!(lossy);
        let (t, lossy) = decode(&[0x00, 0x41, 0xDE, 0x00]);
        assert_eq!(t, "A\u{FFFD}");
        assert!(lossy);
    }

    #[test]
    fn odd_trailing_octet_is_replaced() {
        assert_eq!(decode(&[0x00, 0x41, 0x42]), ("A\u{FFFD}".into(), true));
    }
}
