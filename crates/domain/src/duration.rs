//! Parsers for the human durations keyward accepts: `expires_in` / `grace_period` (`90d`, `12h`,
//! `30m`) and the reference's `rate_limit_window` (`"1 minute"`, `"10 seconds"`).
//! Parsers never panic and reject zero, overflow and unknown units with a reason.

use thiserror::Error;
use time::Duration;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum DurationError {
    #[error("expected a number followed by one unit, like 30m, 12h or 90d (units: s, m, h, d, w)")]
    Malformed,
    #[error("the duration must be greater than zero")]
    Zero,
    #[error("the duration is too long")]
    TooLong,
    #[error(
        "expected \"<number> <second|minute|hour|day>[s]\", like \"1 minute\" or \"10 seconds\""
    )]
    MalformedWindow,
}

/// The longest duration any keyward field accepts (100 years): keeps arithmetic far from overflow.
pub const MAX_DURATION_SECONDS: i64 = 100 * 366 * 86_400;

/// The grammar of a short duration (`expires_in`, `grace_period`, the CLI's duration flags), as
/// the OpenAPI document states it: a number without leading zeros and one unit, at most 9 digits
/// of seconds, 7 of minutes, 5 of hours, 4 of days or 3 of weeks (so never past about 31 years).
pub const SHORT_PATTERN: &str =
    r"^([1-9][0-9]{0,8}s|[1-9][0-9]{0,6}m|[1-9][0-9]{0,4}h|[1-9][0-9]{0,3}d|[1-9][0-9]{0,2}w)$";

/// The grammar of a rate-limit window a caller may set, as the OpenAPI document states it: the
/// reference's `^\d+\s+(second|minute|hour|day)s?$`, with no leading zeros, spaces (not tabs: control
/// characters) between number and unit, and at most 9 digits of seconds, 7 of minutes, 5 of hours or 4 of
/// days.
pub const WINDOW_PATTERN: &str = r"^([1-9][0-9]{0,8} +seconds?|[1-9][0-9]{0,6} +minutes?|[1-9][0-9]{0,4} +hours?|[1-9][0-9]{0,3} +days?)$";

/// Most digits of a duration's number, by the unit's length in seconds (see the patterns).
fn max_digits(unit_seconds: i64) -> usize {
    match unit_seconds {
        1 => 9,
        60 => 7,
        3_600 => 5,
        86_400 => 4,
        _ => 3,
    }
}

/// Seconds as the short form [`parse_short`] reads: `7d`, `12h`, `30m`, `45s`.
pub fn short_text(seconds: i64) -> String {
    match seconds {
        s if s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// Parses a short duration as [`SHORT_PATTERN`] states it: `<digits><unit>` with unit one of
/// `s`, `m`, `h`, `d`, `w`. Nothing around it is trimmed.
pub fn parse_short(input: &str) -> Result<Duration, DurationError> {
    let split = input
        .find(|c: char| !c.is_ascii_digit())
        .ok_or(DurationError::Malformed)?;
    let (digits, unit) = input.split_at(split);
    let unit_seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return Err(DurationError::Malformed),
    };
    checked_count(digits, unit_seconds, DurationError::Malformed)
}

/// The whole number of `digits` of a unit `unit_seconds` long, as seconds: no leading zeros,
/// at most [`max_digits`] of them, not zero.
fn checked_count(
    digits: &str,
    unit_seconds: i64,
    malformed: DurationError,
) -> Result<Duration, DurationError> {
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(malformed);
    }
    if digits.bytes().all(|b| b == b'0') {
        return Err(DurationError::Zero);
    }
    if digits.starts_with('0') {
        return Err(malformed);
    }
    if digits.len() > max_digits(unit_seconds) {
        return Err(DurationError::TooLong);
    }
    let n: i64 = digits.parse().map_err(|_| DurationError::TooLong)?;
    checked_seconds(n, unit_seconds)
}

/// A rate-limit window a caller sets, as [`WINDOW_PATTERN`] states it. Windows stored before
/// are read with the more lenient [`parse_window`].
pub fn parse_window_input(input: &str) -> Result<Duration, DurationError> {
    let number_end = input
        .find(|c: char| !c.is_ascii_digit())
        .ok_or(DurationError::MalformedWindow)?;
    let (digits, rest) = input.split_at(number_end);
    let unit = rest.trim_start_matches(' ');
    if unit.len() == rest.len() {
        return Err(DurationError::MalformedWindow);
    }
    let unit_seconds = match unit.strip_suffix('s').unwrap_or(unit) {
        "second" => 1,
        "minute" => 60,
        "hour" => 3_600,
        "day" => 86_400,
        _ => return Err(DurationError::MalformedWindow),
    };
    checked_count(digits, unit_seconds, DurationError::MalformedWindow)
}

/// A rate-limit window as the reference spells it: `^\d+\s+(second|minute|hour|day)s?$`.
pub fn parse_window(input: &str) -> Result<Duration, DurationError> {
    let mut parts = input.split_whitespace();
    let (Some(digits), Some(unit), None) = (parts.next(), parts.next(), parts.next()) else {
        return Err(DurationError::MalformedWindow);
    };
    // The pattern requires whitespace between number and unit and nothing around them.
    if input.trim() != input || !digits.bytes().all(|b| b.is_ascii_digit()) || digits.len() > 12 {
        return Err(DurationError::MalformedWindow);
    }
    let n: i64 = digits.parse().map_err(|_| DurationError::MalformedWindow)?;
    let unit = unit.strip_suffix('s').unwrap_or(unit);
    let unit_seconds = match unit {
        "second" => 1,
        "minute" => 60,
        "hour" => 3_600,
        "day" => 86_400,
        _ => return Err(DurationError::MalformedWindow),
    };
    checked_seconds(n, unit_seconds)
}

fn checked_seconds(n: i64, unit_seconds: i64) -> Result<Duration, DurationError> {
    if n == 0 {
        return Err(DurationError::Zero);
    }
    let secs = n.checked_mul(unit_seconds).ok_or(DurationError::TooLong)?;
    if secs > MAX_DURATION_SECONDS {
        return Err(DurationError::TooLong);
    }
    Ok(Duration::seconds(secs))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn short_forms() {
        assert_eq!(parse_short("90d"), Ok(Duration::days(90)));
        assert_eq!(parse_short("12h"), Ok(Duration::hours(12)));
        assert_eq!(parse_short("30m"), Ok(Duration::minutes(30)));
        assert_eq!(parse_short("45s"), Ok(Duration::seconds(45)));
        assert_eq!(parse_short("2w"), Ok(Duration::weeks(2)));
        assert_eq!(parse_short("0m"), Err(DurationError::Zero));
        assert_eq!(parse_short("-5m"), Err(DurationError::Malformed));
        assert_eq!(parse_short("5"), Err(DurationError::Malformed));
        assert_eq!(parse_short("5y"), Err(DurationError::Malformed));
        assert_eq!(parse_short("m"), Err(DurationError::Malformed));
        assert_eq!(parse_short("05m"), Err(DurationError::Malformed));
        assert_eq!(
            parse_short(" 5m"),
            Err(DurationError::Malformed),
            "not trimmed"
        );
        assert_eq!(parse_short("99999999999d"), Err(DurationError::TooLong));
        assert_eq!(parse_short("9999d"), Ok(Duration::days(9999)));
    }

    #[test]
    fn windows_follow_the_reference_pattern() {
        assert_eq!(parse_window("1 minute"), Ok(Duration::minutes(1)));
        assert_eq!(parse_window("10 seconds"), Ok(Duration::seconds(10)));
        assert_eq!(parse_window("2  hours"), Ok(Duration::hours(2)));
        assert_eq!(parse_window("1 day"), Ok(Duration::days(1)));
        assert!(parse_window("1minute").is_err());
        assert!(parse_window("1 week").is_err());
        assert!(parse_window(" 1 minute").is_err());
        assert!(parse_window("one minute").is_err());
        assert_eq!(parse_window("0 seconds"), Err(DurationError::Zero));
    }

    fn agrees(pattern: &str, text: &str, parsed: bool) -> Result<(), TestCaseError> {
        let matches = regex::Regex::new(pattern).unwrap().is_match(text);
        prop_assert_eq!(matches, parsed, "{:?}", text);
        Ok(())
    }

    proptest! {
        #[test]
        fn parsers_never_panic(s in "\\PC{0,24}") {
            let _ = parse_short(&s);
            let _ = parse_window(&s);
            let _ = parse_window_input(&s);
        }

        /// A short duration parses exactly when it matches the documented pattern: on arbitrary
        /// text, and on text drawn from the pattern itself (and its near misses).
        #[test]
        fn short_durations_agree_with_their_pattern(
            any_text in "\\PC{0,14}",
            near in "[0-9]{1,11}[smhdwy ]?",
            drawn in SHORT_PATTERN.trim_start_matches('^').trim_end_matches('$'),
        ) {
            for text in [any_text, near, drawn] {
                agrees(SHORT_PATTERN, &text, parse_short(&text).is_ok())?;
            }
        }

        #[test]
        fn windows_agree_with_their_pattern(
            any_text in "\\PC{0,20}",
            near in "0?[0-9]{1,10}[ \t]{0,2}(second|minute|hour|day|week)s?",
            drawn in WINDOW_PATTERN.trim_start_matches('^').trim_end_matches('$'),
        ) {
            for text in [any_text, near, drawn] {
                agrees(WINDOW_PATTERN, &text, parse_window_input(&text).is_ok())?;
                if parse_window_input(&text).is_ok() {
                    prop_assert_eq!(parse_window(&text), parse_window_input(&text), "stored windows read alike");
                }
            }
        }
    }
}
