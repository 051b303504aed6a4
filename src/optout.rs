//! Opt-out keywords: STOP / START / HELP matching on a whole trimmed message. Pure.
//!
//! A message is a keyword only when the whole message, after normalisation,
//! equals one: "STOP", " stop! ", "Ｓｔｏｐ。" and "配信停止" can be; "please
//! don't stop" is not. Normalisation: full-width ASCII and the ideographic
//! space become their ASCII forms, case is folded, runs of white space become
//! one space, and trailing punctuation (`.!?。！？…` and the like) and
//! surrounding quotes are dropped. Keywords are normalised the same way, so a
//! configured `"配信停止"` or `"Stop All"` matches what customers type.

use serde::Serialize;

/// What a keyword message asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Keyword {
    /// Stop texting me.
    OptOut,
    /// Texting me is fine again.
    OptIn,
    /// Send the help text.
    Help,
}

/// The keyword lists of one service, stored normalised.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Keywords {
    /// Opt-out words (default STOP, STOPALL, UNSUBSCRIBE, CANCEL, END, QUIT).
    pub optout: Vec<String>,
    /// Opt-in words (default START, UNSTOP).
    pub optin: Vec<String>,
    /// Help words (default HELP).
    pub help: Vec<String>,
}

/// Default opt-out keywords.
pub const DEFAULT_OPTOUT: &[&str] = &["STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"];
/// Default opt-in keywords.
pub const DEFAULT_OPTIN: &[&str] = &["START", "UNSTOP"];
/// Default help keywords.
pub const DEFAULT_HELP: &[&str] = &["HELP"];

impl Keywords {
    /// Builds the lists, normalising every word and dropping empty ones.
    pub fn new<S: AsRef<str>>(optout: &[S], optin: &[S], help: &[S]) -> Self {
        fn norm<S: AsRef<str>>(words: &[S]) -> Vec<String> {
            let mut out: Vec<String> = Vec::with_capacity(words.len());
            for w in words {
                let n = normalize(w.as_ref());
                if !n.is_empty() && !out.contains(&n) {
                    out.push(n);
                }
            }
            out
        }
        Self {
            optout: norm(optout),
            optin: norm(optin),
            help: norm(help),
        }
    }

    /// The first normalised word that is in two lists, if any (a config
    /// error: the message would be ambiguous).
    pub fn overlap(&self) -> Option<&str> {
        let lists = [&self.optout, &self.optin, &self.help];
        for (i, a) in lists.iter().enumerate() {
            for b in lists.iter().skip(i + 1) {
                if let Some(w) = a.iter().find(|w| b.contains(w)) {
                    return Some(w);
                }
            }
        }
        None
    }
}

impl Default for Keywords {
    fn default() -> Self {
        Self::new(DEFAULT_OPTOUT, DEFAULT_OPTIN, DEFAULT_HELP)
    }
}

/// Classifies a customer's message. `None`: an ordinary message.
pub fn classify(text: &str, kw: &Keywords) -> Option<Keyword> {
    let n = normalize(text);
    if n.is_empty() {
        return None;
    }
    if kw.optout.contains(&n) {
        Some(Keyword::OptOut)
    } else if kw.optin.contains(&n) {
        Some(Keyword::OptIn)
    } else if kw.help.contains(&n) {
        Some(Keyword::Help)
    } else {
        None
    }
}

/// The comparison form of a message or keyword (see the module docs).
pub fn normalize(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut pending_space = false;
    for c in text.chars().map(fold_width) {
        if c.is_whitespace() {
            pending_space = !out.is_empty();
            continue;
        }
        if pending_space {
            out.push(' ');
            pending_space = false;
        }
        out.extend(c.to_lowercase());
    }
    let trimmed = out.trim_end_matches(is_trailing_punct);
    let trimmed = trimmed
        .trim_start_matches(is_quote)
        .trim_end_matches(is_quote);
    let trimmed = trimmed.trim_end_matches(is_trailing_punct).trim();
    trimmed.to_string()
}

/// Full-width ASCII (U+FF01..=U+FF5E) to ASCII, ideographic space to space.
fn fold_width(c: char) -> char {
    match c {
        '\u{3000}' => ' ',
        '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
        _ => c,
    }
}

fn is_trailing_punct(c: char) -> bool {
    matches!(
        c,
        '.' | '!' | '?' | ',' | ';' | ':' | '~' | '。' | '、' | '！' | '？' | '…' | '｡' | '¡' | '¿'
    ) || c.is_whitespace()
}

fn is_quote(c: char) -> bool {
    matches!(
        c,
        '"' | '\'' | '“' | '”' | '‘' | '’' | '「' | '」' | '『' | '』' | '«' | '»'
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kw() -> Keywords {
        Keywords::default()
    }

    #[test]
    fn default_opt_out_words_match_in_any_case_with_whitespace() {
        for t in [
            "STOP",
            "stop",
            " Stop ",
            "\tSTOPALL\n",
            "unsubscribe",
            "Cancel",
            "end",
            "QUIT",
        ] {
            assert_eq!(classify(t, &kw()), Some(Keyword::OptOut), "{t:?}");
        }
    }

    #[test]
    fn trailing_punctuation_is_tolerated() {
        for t in [
            "STOP.", "stop!", "Stop!!", "stop?", "\"STOP\"", "stop 。", "STOP…",
        ] {
            assert_eq!(classify(t, &kw()), Some(Keyword::OptOut), "{t:?}");
        }
    }

    #[test]
    fn opt_in_and_help_are_told_apart() {
        assert_eq!(classify("start", &kw()), Some(Keyword::OptIn));
        assert_eq!(classify("UNSTOP", &kw()), Some(Keyword::OptIn));
        assert_eq!(classify("Help?", &kw()), Some(Keyword::Help));
    }

    #[test]
    fn sentences_that_contain_a_keyword_are_not_keywords() {
        for t in [
            "please don't stop",
            "stop it",
            "STOP STOP",
            "when does it end",
            "stopp",
            "s t o p",
            "",
            "   ",
            "!",
        ] {
            assert_eq!(classify(t, &kw()), None, "{t:?}");
        }
    }

    #[test]
    fn full_width_forms_are_normalised() {
        assert_eq!(classify("ＳＴＯＰ", &kw()), Some(Keyword::OptOut));
        assert_eq!(classify("\u{3000}ｓｔｏｐ！", &kw()), Some(Keyword::OptOut));
    }

    #[test]
    fn configured_words_in_other_scripts_match() {
        let k = Keywords::new(&["停止", "配信停止", "Stop All"], &["開始"], &["ヘルプ"]);
        assert_eq!(classify("配信停止", &k), Some(Keyword::OptOut));
        assert_eq!(classify(" 停止。", &k), Some(Keyword::OptOut));
        assert_eq!(classify("STOP  ALL", &k), Some(Keyword::OptOut));
        assert_eq!(classify("開始", &k), Some(Keyword::OptIn));
        assert_eq!(classify("ヘルプ", &k), Some(Keyword::Help));
        assert_eq!(classify("配信停止してください", &k), None);
        // the defaults are replaced, not merged
        assert_eq!(classify("STOP", &k), None);
    }

    #[test]
    fn an_overlap_between_lists_is_detected() {
        let k = Keywords::new(&["STOP"], &["stop"], &["HELP"]);
        assert_eq!(k.overlap(), Some("stop"));
        assert_eq!(kw().overlap(), None);
    }
}
