//! ISO-8859-1 (data_coding 3, or data_coding 0 on carriers whose default
//! alphabet is Latin-1): one octet per character, U+0000..=U+00FF.

/// The Latin-1 octet for `c`, if it has one.
pub fn byte(c: char) -> Option<u8> {
    u8::try_from(u32::from(c)).ok()
}

/// Whether every character of `text` is in Latin-1.
pub fn fits(text: &str) -> bool {
    text.chars().all(|c| byte(c).is_some())
}

/// Decodes Latin-1; every octet is a character, so this cannot fail.
pub fn decode(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| char::from(b)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn can_round_trip_all_octets() {
        let all: Vec<u8> = (0..=255).collect();
        let s = decode(&all);
        let back: Vec<u8> = s.chars().map(|c| byte(c).unwrap()).collect();
        assert_eq!(back, all);
    }

    #[test]
    fn euro_is_not_latin1() {
        assert!(!fits("€"));
        assert!(fits("é@ÿ"));
    }
}
