//! What text a caller may choose for a field that keyward stores, logs or echoes: names, labels,
//! emails, audit filters. One place for the rules, so that every surface and both backends
//! refuse the same input with the same reason, before anything is written.
//!
//! Control characters (Unicode category Cc: U+0000..U+001F, U+007F..U+009F) are refused in every
//! such field: PostgreSQL cannot store U+0000 in `text` at all, and the others have no place in a
//! name and can forge lines in logs and terminals. Lengths count Unicode scalar values (`char`s),
//! not bytes. Nothing is trimmed or replaced: input is taken as sent or refused.

use thiserror::Error;

/// Why a text was refused. The messages name the rule, never the text.
#[derive(Debug, Clone, Copy, Error, PartialEq, Eq)]
pub enum TextError {
    #[error("must not be empty or blank")]
    Blank,
    #[error("at most {max} characters")]
    TooLong { max: usize },
    #[error("must not contain control characters (U+0000..U+001F, U+007F..U+009F)")]
    ControlCharacter,
}

/// The rule for one kind of field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TextRule {
    /// Most characters allowed.
    pub max_chars: usize,
    /// Whether an empty (or all-whitespace) value is allowed.
    pub may_be_blank: bool,
}

/// A key's name (the Estuary and form surfaces call it `label`): 0 to 255 characters.
pub const KEY_NAME: TextRule = TextRule {
    max_chars: 255,
    may_be_blank: true,
};

/// A tenant's name: 1 to 255 characters, not all whitespace.
pub const TENANT_NAME: TextRule = TextRule {
    max_chars: 255,
    may_be_blank: false,
};

/// A filter value matched against stored text (audit `action`, `resource_type`,
/// `resource_id`): 1 to 255 characters.
pub const FILTER: TextRule = TextRule {
    max_chars: 255,
    may_be_blank: false,
};

/// The regular-expression class (ECMA-262 and Rust `regex` alike) of characters that are neither
/// control characters nor white space: what a non-blank text needs one of. White space is
/// Unicode's `White_Space` plus U+FEFF, which ECMA-262's `\s` counts too.
pub const VISIBLE_CLASS: &str =
    r"[^\x00-\x20\x7F-\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000\uFEFF]";
/// The class of characters that are not control characters.
pub const NOT_CONTROL_CLASS: &str = r"[^\x00-\x1F\x7F-\x9F]";

/// White space as [`VISIBLE_CLASS`] counts it.
pub fn is_space(c: char) -> bool {
    c.is_whitespace() || c == '\u{FEFF}'
}

impl TextRule {
    /// The rule's character pattern, for the OpenAPI document (its length goes in `maxLength`).
    pub fn pattern(&self) -> String {
        if self.may_be_blank {
            format!("^{NOT_CONTROL_CLASS}*$")
        } else {
            format!("^{NOT_CONTROL_CLASS}*{VISIBLE_CLASS}{NOT_CONTROL_CLASS}*$")
        }
    }

    /// Checks `text` against this rule.
    pub fn check(&self, text: &str) -> Result<(), TextError> {
        if text.chars().any(char::is_control) {
            return Err(TextError::ControlCharacter);
        }
        if !self.may_be_blank && text.chars().all(is_space) {
            return Err(TextError::Blank);
        }
        // Bytes bound chars from above: the count is only needed for long texts.
        if text.len() > self.max_chars && text.chars().count() > self.max_chars {
            return Err(TextError::TooLong {
                max: self.max_chars,
            });
        }
        Ok(())
    }
}

/// A request id a caller may choose (`X-Request-Id`): 1 to 128 characters of visible ASCII
/// (U+0021..U+007E). Anything else is not kept: the server makes its own id instead.
pub fn is_acceptable_request_id(id: &str) -> bool {
    (1..=MAX_REQUEST_ID_LEN).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_graphic())
}

/// The longest caller-chosen request id kept.
pub const MAX_REQUEST_ID_LEN: usize = 128;

/// `text` cut to at most `max` characters (with `…` when cut), for echoing a caller's input in
/// an error message without echoing all of it.
pub fn excerpt(text: &str, max: usize) -> std::borrow::Cow<'_, str> {
    match text.char_indices().nth(max) {
        None => text.into(),
        Some((end, _)) => format!("{}…", &text[..end]).into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rules() {
        assert_eq!(KEY_NAME.check(""), Ok(()));
        assert_eq!(TENANT_NAME.check(" "), Err(TextError::Blank));
        assert_eq!(KEY_NAME.check("a\u{0}b"), Err(TextError::ControlCharacter));
        assert_eq!(
            KEY_NAME.check("tab\there"),
            Err(TextError::ControlCharacter)
        );
        assert_eq!(KEY_NAME.check("c1\u{85}"), Err(TextError::ControlCharacter));
        assert_eq!(
            KEY_NAME.check(&"é".repeat(255)),
            Ok(()),
            "characters, not bytes"
        );
        assert_eq!(
            KEY_NAME.check(&"é".repeat(256)),
            Err(TextError::TooLong { max: 255 })
        );
        assert!(is_acceptable_request_id("trace-123"));
        assert!(!is_acceptable_request_id(""));
        assert!(!is_acceptable_request_id("has space"));
        assert!(!is_acceptable_request_id(&"a".repeat(129)));
        assert_eq!(excerpt("abcdef", 3), "abc…");
        assert_eq!(excerpt("abc", 3), "abc");
    }

    proptest! {
        /// The rule never panics and agrees with its definition on any text.
        #[test]
        fn check_agrees_with_the_rule(text in any::<String>(), max in 0usize..300, blank in any::<bool>()) {
            let rule = TextRule { max_chars: max, may_be_blank: blank };
            let expected = if text.chars().any(char::is_control) {
                Err(TextError::ControlCharacter)
            } else if !blank && text.chars().all(is_space) {
                Err(TextError::Blank)
            } else if text.chars().count() > max {
                Err(TextError::TooLong { max })
            } else {
                Ok(())
            };
            prop_assert_eq!(rule.check(&text), expected);
        }

        /// The documented pattern says what the rule does about characters, on any text.
        #[test]
        fn patterns_agree_with_the_rules(text in "\\PC{0,8}|[ \u{feff}\u{a0}\u{2028}a\u{0}\u{85}]{0,4}") {
            for rule in [KEY_NAME, TENANT_NAME] {
                let pattern = regex::Regex::new(&rule.pattern()).unwrap();
                let by_chars = !matches!(rule.check(&text), Err(TextError::ControlCharacter | TextError::Blank));
                prop_assert_eq!(pattern.is_match(&text), by_chars, "{:?}", text);
            }
        }

        #[test]
        fn request_ids_are_short_visible_ascii(id in any::<String>()) {
            let ok = is_acceptable_request_id(&id);
            prop_assert_eq!(ok, !id.is_empty() && id.len() <= 128 && id.chars().all(|c| c.is_ascii_graphic()));
        }

        #[test]
        fn excerpts_are_prefixes(text in any::<String>(), max in 0usize..50) {
            let cut = excerpt(&text, max);
            let kept = cut.trim_end_matches('…');
            prop_assert!(text.starts_with(kept));
            prop_assert!(cut.chars().count() <= max + 1);
        }
    }
}
