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

/// Parses `<digits><unit>` with unit one of `s`, `m`, `h`, `d`, `w`.
pub fn parse_short(input: &str) -> Result<Duration, DurationError> {
    let input = input.trim();
    let split = input
        .find(|c: char| !c.is_ascii_digit())
        .ok_or(DurationError::Malformed)?;
    let (digits, unit) = input.split_at(split);
    if digits.is_empty() || digits.len() > 12 {
        return Err(DurationError::Malformed);
    }
    let n: i64 = digits.parse().map_err(|_| DurationError::Malformed)?;
    let unit_seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return Err(DurationError::Malformed),
    };
    checked_seconds(n, unit_seconds)
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
        assert_eq!(parse_short("99999999999d"), Err(DurationError::TooLong));
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

    proptest! {
        #[test]
        fn parsers_never_panic(s in "\\PC{0,24}") {
            let _ = parse_short(&s);
            let _ = parse_window(&s);
        }
    }
}
