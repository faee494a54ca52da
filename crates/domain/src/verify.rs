//! The verification decision: given what storage knows about a presented key, what is the
//! answer? Order matters and is part of the contract: unknown, then revoked, then expired,
//! then paused, then the caller's address, then scopes, then the rate limit (which is only spent by an otherwise valid request).

use std::net::IpAddr;

use serde::Serialize;
use time::OffsetDateTime;

use crate::model::{ApiKey, KeyStatus};
use crate::permission::Permission;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum VerifyCode {
    Valid,
    NotFound,
    Expired,
    Revoked,
    InsufficientScopes,
    RateLimited,
    /// The key has no credits left for this cost.
    UsageExceeded,
    /// The key is paused (`enabled: false`); it works again once enabled.
    Disabled,
    /// The key has an IP allowlist and the caller's address is not in it (or was not given).
    IpNotAllowed,
    /// The key's owner is disabled; the key works again once the owner is enabled.
    OwnerDisabled,
    /// Storage could not be reached and nothing trustworthy was cached: no answer (fail closed).
    Unavailable,
}

impl VerifyCode {
    pub const ALL: [VerifyCode; 11] = [
        Self::Valid,
        Self::NotFound,
        Self::Expired,
        Self::Revoked,
        Self::InsufficientScopes,
        Self::RateLimited,
        Self::UsageExceeded,
        Self::Disabled,
        Self::IpNotAllowed,
        Self::OwnerDisabled,
        Self::Unavailable,
    ];

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Valid => "VALID",
            Self::NotFound => "NOT_FOUND",
            Self::Expired => "EXPIRED",
            Self::Revoked => "REVOKED",
            Self::InsufficientScopes => "INSUFFICIENT_SCOPES",
            Self::RateLimited => "RATE_LIMITED",
            Self::UsageExceeded => "USAGE_EXCEEDED",
            Self::Unavailable => "UNAVAILABLE",
            Self::Disabled => "DISABLED",
            Self::IpNotAllowed => "IP_NOT_ALLOWED",
            Self::OwnerDisabled => "OWNER_DISABLED",
        }
    }
}

/// Everything but the rate limits and credits, which need the limiter's and storage's state.
/// `ip` is the calling client's address, when the caller told it.
pub fn check(
    key: Option<&ApiKey>,
    required: &Permission,
    ip: Option<IpAddr>,
    now: OffsetDateTime,
) -> VerifyCode {
    let Some(key) = key else {
        return VerifyCode::NotFound;
    };
    match key.status(now) {
        KeyStatus::Revoked => VerifyCode::Revoked,
        KeyStatus::Expired => VerifyCode::Expired,
        KeyStatus::Active if key.shared.owner_disabled => VerifyCode::OwnerDisabled,
        KeyStatus::Active if !key.enabled => VerifyCode::Disabled,
        KeyStatus::Active if !key.allowed_ips.allows(ip) => VerifyCode::IpNotAllowed,
        KeyStatus::Active if required.allows(|s| key.has_scope(s)) => VerifyCode::Valid,
        KeyStatus::Active => VerifyCode::InsufficientScopes,
    }
}

#[cfg(test)]
mod code_tests {
    use super::VerifyCode;

    #[test]
    fn codes_round_trip_through_text() {
        for code in VerifyCode::ALL {
            assert_eq!(VerifyCode::parse(code.as_str()), Some(code));
        }
        assert_eq!(VerifyCode::parse("valid"), None);
    }
}
