//! Credits: a key may carry a number of uses left, spent by each valid verification, and an
//! optional refill that sets it back to an amount every day or every month. The refill is lazy:
//! it is applied when the credits are next read or spent, as of `now`.

use serde::{Deserialize, Serialize};
use time::{Date, OffsetDateTime, Time};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RefillInterval {
    Daily,
    Monthly,
}

impl RefillInterval {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Daily => "daily",
            Self::Monthly => "monthly",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "daily" => Some(Self::Daily),
            "monthly" => Some(Self::Monthly),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refill {
    pub interval: RefillInterval,
    /// What `remaining` is set to at each refill.
    pub amount: i64,
    /// For monthly refills, the day of the month (1..=31; short months use their last day).
    pub day: u8,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Credits {
    /// Uses left; never negative.
    pub remaining: i64,
    pub refill: Option<Refill>,
    /// When `remaining` was last set (creation, an edit, or a refill).
    pub set_at: OffsetDateTime,
}

/// What spending found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spend {
    /// Spent; the credits after it.
    Spent(Credits),
    /// Not enough left; nothing spent (but a due refill is applied).
    Exhausted(Credits),
    /// Enough left, but nothing spent: the other credits of the same verification (the key's,
    /// or its owner's) had too few. A due refill is applied.
    Untouched(Credits),
}

impl Spend {
    /// The credits after the spend (or its refusal).
    pub fn after(&self) -> Credits {
        match *self {
            Self::Spent(c) | Self::Exhausted(c) | Self::Untouched(c) => c,
        }
    }

    pub fn is_exhausted(&self) -> bool {
        matches!(self, Self::Exhausted(_))
    }
}

/// Spends `cost` of a key's credits and of its owner's shared ones (each when present) as of
/// `now`: both or neither. When either has too few, that one is `Exhausted` and the other
/// `Untouched`.
pub fn spend_together(
    key: Option<Credits>,
    owner: Option<Credits>,
    cost: i64,
    now: OffsetDateTime,
) -> (Option<Spend>, Option<Spend>) {
    let key = key.map(|c| c.spend(cost, now));
    let owner = owner.map(|c| c.spend(cost, now));
    let refused = key.is_some_and(|s| s.is_exhausted()) || owner.is_some_and(|s| s.is_exhausted());
    let held = |s: Spend| match s {
        Spend::Spent(after) if refused => Spend::Untouched(Credits {
            remaining: after.remaining + cost,
            ..after
        }),
        other => other,
    };
    (key.map(held), owner.map(held))
}

impl Refill {
    /// The latest refill point at or before `now` (UTC midnight of the day it falls on).
    pub fn last_point(&self, now: OffsetDateTime) -> OffsetDateTime {
        let now = now.to_offset(time::UtcOffset::UTC);
        let today = now.date();
        let date = match self.interval {
            RefillInterval::Daily => today,
            RefillInterval::Monthly => {
                let this_month = day_in_month(today.year(), today.month(), self.day);
                if this_month <= today {
                    this_month
                } else {
                    let (year, month) = match today.month() {
                        time::Month::January => (today.year() - 1, time::Month::December),
                        m => (today.year(), m.previous()),
                    };
                    day_in_month(year, month, self.day)
                }
            }
        };
        date.with_time(Time::MIDNIGHT).assume_utc()
    }
}

fn day_in_month(year: i32, month: time::Month, day: u8) -> Date {
    let day = day.clamp(1, month.length(year));
    Date::from_calendar_date(year, month, day).unwrap_or(Date::MIN)
}

impl Credits {
    /// The credits as of `now`, with a refill applied if one fell due since they were set.
    pub fn current(&self, now: OffsetDateTime) -> Credits {
        match self.refill {
            Some(r) => {
                let point = r.last_point(now);
                if point > self.set_at {
                    Credits {
                        remaining: r.amount,
                        refill: self.refill,
                        set_at: point,
                    }
                } else {
                    *self
                }
            }
            None => *self,
        }
    }

    /// Spends `cost` (>= 0) as of `now`.
    pub fn spend(&self, cost: i64, now: OffsetDateTime) -> Spend {
        let current = self.current(now);
        if current.remaining >= cost {
            Spend::Spent(Credits {
                remaining: current.remaining - cost,
                ..current
            })
        } else {
            Spend::Exhausted(current)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn credits(remaining: i64, refill: Option<Refill>, set_at: OffsetDateTime) -> Credits {
        Credits {
            remaining,
            refill,
            set_at,
        }
    }

    #[test]
    fn spending_never_goes_below_zero() {
        let c = credits(3, None, datetime!(2026-03-01 12:00 UTC));
        let now = datetime!(2026-03-01 13:00 UTC);
        let Spend::Spent(after) = c.spend(2, now) else {
            panic!()
        };
        assert_eq!(after.remaining, 1);
        assert_eq!(after.spend(2, now), Spend::Exhausted(after));
        assert!(matches!(after.spend(1, now), Spend::Spent(c) if c.remaining == 0));
        assert!(matches!(after.spend(0, now), Spend::Spent(c) if c.remaining == 1));
    }

    #[test]
    fn daily_refill_at_utc_midnight() {
        let daily = Refill {
            interval: RefillInterval::Daily,
            amount: 100,
            day: 1,
        };
        let c = credits(0, Some(daily), datetime!(2026-03-01 12:00 UTC));
        assert_eq!(c.current(datetime!(2026-03-01 23:59 UTC)).remaining, 0);
        let next = c.current(datetime!(2026-03-02 00:00 UTC));
        assert_eq!(next.remaining, 100);
        assert_eq!(next.set_at, datetime!(2026-03-02 00:00 UTC));
        // Once refilled, spending the same day does not refill again.
        let Spend::Spent(spent) = next.spend(60, datetime!(2026-03-02 08:00 UTC)) else {
            panic!()
        };
        assert_eq!(spent.current(datetime!(2026-03-02 20:00 UTC)).remaining, 40);
    }

    #[test]
    fn monthly_refill_on_its_day_clamped_to_short_months() {
        let monthly = Refill {
            interval: RefillInterval::Monthly,
            amount: 10,
            day: 31,
        };
        assert_eq!(
            monthly.last_point(datetime!(2027-02-28 09:00 UTC)),
            datetime!(2027-02-28 00:00 UTC)
        );
        assert_eq!(
            monthly.last_point(datetime!(2027-02-27 09:00 UTC)),
            datetime!(2027-01-31 00:00 UTC)
        );
        let c = credits(1, Some(monthly), datetime!(2027-01-31 10:00 UTC));
        assert_eq!(c.current(datetime!(2027-02-27 00:00 UTC)).remaining, 1);
        assert_eq!(c.current(datetime!(2027-02-28 00:00 UTC)).remaining, 10);
        let first = Refill { day: 1, ..monthly };
        assert_eq!(
            first.last_point(datetime!(2027-01-15 00:00 UTC)),
            datetime!(2027-01-01 00:00 UTC)
        );
    }

    #[test]
    fn a_key_and_its_owner_spend_both_or_neither() {
        let now = datetime!(2026-03-01 12:00 UTC);
        let (key, owner) = (credits(5, None, now), credits(1, None, now));
        let (k, o) = spend_together(Some(key), Some(owner), 1, now);
        assert_eq!(
            (k.unwrap().after().remaining, o.unwrap().after().remaining),
            (4, 0)
        );
        assert!(matches!(k, Some(Spend::Spent(_))) && matches!(o, Some(Spend::Spent(_))));
        let (k, o) = spend_together(Some(key), Some(credits(0, None, now)), 1, now);
        assert_eq!(k, Some(Spend::Untouched(key)), "the key keeps its credits");
        assert!(o.unwrap().is_exhausted());
        let (k, o) = spend_together(Some(credits(0, None, now)), Some(owner), 1, now);
        assert!(k.unwrap().is_exhausted());
        assert_eq!(o, Some(Spend::Untouched(owner)));
        let (k, o) = spend_together(None, Some(owner), 1, now);
        assert_eq!((k, o.map(|s| s.after().remaining)), (None, Some(0)));
    }
}
