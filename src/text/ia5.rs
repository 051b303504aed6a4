//! IA5 / US-ASCII (data_coding 1, or data_coding 0 on carriers whose
//! default alphabet is ASCII): one octet per character, 0x00..=0x7F.

/// The ASCII octet for `c`, if it has one.
pub fn byte(c: char) -> Option<u8> {
    if c.is_ascii() {
        u8::try_from(u32::from(c)).ok()
    } else {
        None
    }
}

/// Whether every character of `text` is ASCII.
pub fn fits(text: &str) -> bool {
    text.is_ascii()
}

/// Decodes ASCII; an octet above 0x7F becomes U+FFFD. Returns the text and
/// whether anything was replaced.
pub fn decode(bytes: &[u8]) -> (String, bool) {
    let mut lossy = false;
    let s = bytes
        .iter()
        .map(|&b| {
            if b.is_ascii() {
                char::from(b)
            } else {
                lossy = true;
                char::REPLACEMENT_CHARACTER
            }
        })
        .collect();
    (s, lossy)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn high_octets_are_replaced() {
        assert_eq!(decode(b"a\xE9"), ("a\u{FFFD}".into(), true));
        assert_eq!(decode(b"@x"), ("@x".into(), false));
    }
}
