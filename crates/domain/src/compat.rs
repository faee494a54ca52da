//! How the compatibility surfaces spell a key's lifetime: Go durations (Estuary's `expiry`) and
//! the form surface's phrases (`One Month`, `week`, `never`, ...). Parsers never panic, and
//! every rejection says what is accepted: unlike the originals, nothing unparsable silently
//! becomes a key that never expires.

use thiserror::Error;
use time::{Duration, OffsetDateTime};

use crate::duration::MAX_DURATION_SECONDS;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum CompatExpiryError {
    #[error("expected a Go duration like 300h, 1h30m, 90m or 1.5h (units ns, us, µs, ms, s, m, h), or false for a key that never expires")]
    MalformedGo,
    #[error("the duration must be at least one second")]
    TooShort,
    #[error("the duration is too long (at most 100 years)")]
    TooLong,
    #[error("expected one of One Day, One Week, One Month, One Year, Never (any case) or day, week, month, M, year, never")]
    UnknownPhrase,
}

/// Parses a Go `time.ParseDuration` string that is positive and at least one second long.
pub fn parse_go_duration(input: &str) -> Result<Duration, CompatExpiryError> {
    let mut rest = input.strip_prefix('+').unwrap_or(input);
    if rest == "0" {
        // Go's one unit-less duration.
        return Err(CompatExpiryError::TooShort);
    }
    if rest.is_empty() || rest.starts_with('-') {
        return Err(CompatExpiryError::MalformedGo);
    }
    let limit_ns = i128::from(MAX_DURATION_SECONDS) * 1_000_000_000;
    let mut total_ns: i128 = 0;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or(CompatExpiryError::MalformedGo)?;
        let (number, tail) = rest.split_at(number_len);
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let unit_ns: i128 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return Err(CompatExpiryError::MalformedGo),
        };
        total_ns = total_ns
            .checked_add(scaled(number, unit_ns)?)
            .ok_or(CompatExpiryError::TooLong)?;
        if total_ns > limit_ns {
            return Err(CompatExpiryError::TooLong);
        }
        rest = tail;
    }
    if total_ns < 1_000_000_000 {
        return Err(CompatExpiryError::TooShort);
    }
    let ns = i64::try_from(total_ns).map_err(|_| CompatExpiryError::TooLong)?;
    Ok(Duration::nanoseconds(ns))
}

/// `number` (digits with at most one `.`, at least one digit) times `unit_ns`, truncated to
/// whole nanoseconds as Go does.
fn scaled(number: &str, unit_ns: i128) -> Result<i128, CompatExpiryError> {
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if (whole.is_empty() && fraction.is_empty()) || fraction.contains('.') {
        return Err(CompatExpiryError::MalformedGo);
    }
    // Past 18 digits the value is beyond any accepted duration anyway.
    if whole.len() > 18 {
        return Err(CompatExpiryError::TooLong);
    }
    let whole: i128 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| CompatExpiryError::MalformedGo)?
    };
    let mut value = whole
        .checked_mul(unit_ns)
        .ok_or(CompatExpiryError::TooLong)?;
    let mut scale = unit_ns;
    for digit in fraction.bytes().take(18) {
        scale /= 10;
        value += i128::from(digit - b'0') * scale;
    }
    Ok(value)
}

/// The lifetimes the form surface's `expires` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpiryPhrase {
    Day,
    Week,
    Month,
    Year,
    Never,
}

impl ExpiryPhrase {
    /// The documented phrases in any case (words apart by one space, nothing around them), and
    /// the short forms; `M` (month) only in upper case, since a lower-case `m` reads as minutes.
    pub fn parse(input: &str) -> Result<Self, CompatExpiryError> {
        if input == "M" {
            return Ok(Self::Month);
        }
        match input.to_ascii_lowercase().as_str() {
            "one day" | "day" => Ok(Self::Day),
            "one week" | "week" => Ok(Self::Week),
            "one month" | "month" => Ok(Self::Month),
            "one year" | "year" => Ok(Self::Year),
            "never" => Ok(Self::Never),
            _ => Err(CompatExpiryError::UnknownPhrase),
        }
    }

    /// When a key made at `now` expires: calendar months and years (the day clamped to the
    /// month's length), `None` for never.
    pub fn expires_at(self, now: OffsetDateTime) -> Option<OffsetDateTime> {
        match self {
            Self::Day => Some(now + Duration::days(1)),
            Self::Week => Some(now + Duration::weeks(1)),
            Self::Month => Some(add_months(now, 1)),
            Self::Year => Some(add_months(now, 12)),
            Self::Never => None,
        }
    }
}

fn add_months(t: OffsetDateTime, months: u8) -> OffsetDateTime {
    let zero_based = u32::from(t.month() as u8 - 1) + u32::from(months);
    let year = t.year() + i32::try_from(zero_based / 12).unwrap_or(0);
    let month = time::Month::try_from(u8::try_from(zero_based % 12).unwrap_or(0) + 1)
        .unwrap_or(time::Month::January);
    let day = t.day().min(month.length(year));
    time::Date::from_calendar_date(year, month, day)
        .map(|d| t.replace_date(d))
        .unwrap_or(t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use time::macros::datetime;

    #[test]
    fn go_durations() {
        let ok = |s: &str| parse_go_duration(s).unwrap();
        assert_eq!(ok("300h"), Duration::hours(300));
        assert_eq!(ok("1h30m"), Duration::minutes(90));
        assert_eq!(ok("90m"), Duration::minutes(90));
        assert_eq!(ok("1.5h"), Duration::minutes(90));
        assert_eq!(ok("+45s"), Duration::seconds(45));
        assert_eq!(ok(".5m"), Duration::seconds(30));
        assert_eq!(
            ok("2h0.5s"),
            Duration::hours(2) + Duration::milliseconds(500)
        );
        assert_eq!(ok("1500ms"), Duration::milliseconds(1500));
        assert_eq!(ok("2000000us"), Duration::seconds(2));
        assert_eq!(ok("2000000µs"), Duration::seconds(2));
        assert_eq!(ok("3000000000ns"), Duration::seconds(3));
        for bad in [
            "", "h", "10", "10d", "-5m", "1h-5m", "1..5h", ".h", "5 m", "false", "1H",
        ] {
            assert_eq!(
                parse_go_duration(bad),
                Err(CompatExpiryError::MalformedGo),
                "{bad}"
            );
        }
        assert_eq!(parse_go_duration("0"), Err(CompatExpiryError::TooShort));
        assert_eq!(parse_go_duration("0s"), Err(CompatExpiryError::TooShort));
        assert_eq!(parse_go_duration("999ms"), Err(CompatExpiryError::TooShort));
        assert_eq!(
            parse_go_duration("900000h"),
            Err(CompatExpiryError::TooLong)
        );
        assert_eq!(
            parse_go_duration("99999999999999999999999h"),
            Err(CompatExpiryError::TooLong)
        );
    }

    #[test]
    fn phrases() {
        for (s, p) in [
            ("One Day", ExpiryPhrase::Day),
            ("one week", ExpiryPhrase::Week),
            ("ONE MONTH", ExpiryPhrase::Month),
            ("One Year", ExpiryPhrase::Year),
            ("Never", ExpiryPhrase::Never),
            ("day", ExpiryPhrase::Day),
            ("week", ExpiryPhrase::Week),
            ("month", ExpiryPhrase::Month),
            ("M", ExpiryPhrase::Month),
            ("year", ExpiryPhrase::Year),
            ("never", ExpiryPhrase::Never),
        ] {
            assert_eq!(ExpiryPhrase::parse(s), Ok(p), "{s}");
        }
        for bad in ["", "m", "Two Days", "forever", "30d", "One"] {
            assert_eq!(
                ExpiryPhrase::parse(bad),
                Err(CompatExpiryError::UnknownPhrase),
                "{bad}"
            );
        }
    }

    #[test]
    fn calendar_months() {
        let jan31 = datetime!(2027-01-31 10:00 UTC);
        assert_eq!(
            ExpiryPhrase::Month.expires_at(jan31),
            Some(datetime!(2027-02-28 10:00 UTC))
        );
        let dec15 = datetime!(2026-12-15 10:00 UTC);
        assert_eq!(
            ExpiryPhrase::Month.expires_at(dec15),
            Some(datetime!(2027-01-15 10:00 UTC))
        );
        let leap = datetime!(2028-02-29 00:00 UTC);
        assert_eq!(
            ExpiryPhrase::Year.expires_at(leap),
            Some(datetime!(2029-02-28 00:00 UTC))
        );
        assert_eq!(ExpiryPhrase::Never.expires_at(leap), None);
        assert_eq!(
            ExpiryPhrase::Week.expires_at(leap),
            Some(datetime!(2028-03-07 00:00 UTC))
        );
    }

    proptest! {
        #[test]
        fn parsers_never_panic(s in "\\PC{0,32}") {
            let _ = parse_go_duration(&s);
            let _ = ExpiryPhrase::parse(&s);
        }

        #[test]
        fn whole_hours_round_trip(h in 1i64..800_000) {
            prop_assert_eq!(parse_go_duration(&format!("{h}h")), Ok(Duration::hours(h)));
        }

        /// Whatever parses is spelt as Go's grammar says (an optional `+`, then numbers with
        /// units), and sums of whole units parse to their sum.
        #[test]
        fn go_durations_agree_with_their_grammar(
            text in "\\PC{0,16}|\\+?([0-9.]{1,4}(ns|us|µs|ms|s|m|h|d)){1,3}",
            parts in proptest::collection::vec((1i64..500, 0usize..3), 1..4),
        ) {
            let grammar = regex::Regex::new(r"^\+?(([0-9]+\.?[0-9]*|\.[0-9]+)(ns|us|µs|μs|ms|s|m|h))+$").unwrap();
            if parse_go_duration(&text).is_ok() {
                prop_assert!(grammar.is_match(&text), "{:?}", text);
            }
            let units = [("s", 1i64), ("m", 60), ("h", 3_600)];
            let spelt: String = parts.iter().map(|(n, u)| format!("{n}{}", units[*u].0)).collect();
            let seconds: i64 = parts.iter().map(|(n, u)| n * units[*u].1).sum();
            prop_assert_eq!(parse_go_duration(&spelt), Ok(Duration::seconds(seconds)));
        }

        /// The form surface's phrases in any case (and `M`) parse to what they name.
        #[test]
        fn phrases_parse_in_any_case(upper in proptest::collection::vec(any::<bool>(), 9)) {
            let case = |text: &str| -> String {
                text.chars().zip(upper.iter().cycle()).map(|(c, u)| if *u { c.to_ascii_uppercase() } else { c.to_ascii_lowercase() }).collect()
            };
            for (phrase, value) in [
                ("One Day", ExpiryPhrase::Day), ("one week", ExpiryPhrase::Week),
                ("One Month", ExpiryPhrase::Month), ("one year", ExpiryPhrase::Year),
                ("never", ExpiryPhrase::Never), ("day", ExpiryPhrase::Day), ("month", ExpiryPhrase::Month),
            ] {
                prop_assert_eq!(ExpiryPhrase::parse(&case(phrase)), Ok(value));
            }
            prop_assert_eq!(ExpiryPhrase::parse("M"), Ok(ExpiryPhrase::Month));
        }
    }
}
