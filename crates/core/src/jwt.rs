//! Sign-in sessions as JSON Web Tokens (RFC 7519), HS256 only, through the `jsonwebtoken` crate.
//!
//! The algorithm is pinned: a header that says anything but `HS256` (`none`, `HS512`, `RS256`:
//! algorithm confusion) is refused before the signature counts. `exp`, `iss`, `aud` and `sub` are
//! required; `iss` and `aud` must be keyward's. Expiry is checked against the `now` the caller
//! passes (time is a parameter), never the wall clock. A token is never logged.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::error::{AuthFailure, Error};

/// Issuer and audience keyward puts in and requires of its tokens. NEVER CHANGE without
/// accepting that every live session is logged out.
pub const ISSUER: &str = "keyward";
pub const AUDIENCE: &str = "keyward";
/// The shortest secret keyward accepts, in bytes.
pub const MIN_SECRET_LEN: usize = 32;

/// What a session token says (RFC 7519 section 4.1): times in seconds since the Unix epoch.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct Claims {
    /// The user's id.
    pub sub: String,
    pub iat: i64,
    pub exp: i64,
    pub iss: String,
    pub aud: String,
    /// The session's id (a UUID): the token is refused once that session ended.
    pub jti: String,
}

/// Who a verified token speaks for, and in which session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verified {
    pub user_id: Uuid,
    /// The `jti`: the [`keyward_domain::ApiSession`]'s id.
    pub session_id: Uuid,
}

/// The signing secret and session lifetime. `Debug` never prints the secret.
#[derive(Clone)]
pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    pub ttl: time::Duration,
}

impl std::fmt::Debug for JwtKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtKeys")
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
#[error("the JWT secret must be at least 32 bytes")]
pub struct SecretTooShort;

impl JwtKeys {
    /// Keys from a shared secret of at least [`MIN_SECRET_LEN`] bytes; sessions last `ttl`.
    pub fn new(secret: Vec<u8>, ttl: time::Duration) -> Result<Self, SecretTooShort> {
        if secret.len() < MIN_SECRET_LEN {
            return Err(SecretTooShort);
        }
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        // `exp` is checked against the caller's `now` in `verify`, not the wall clock.
        validation.validate_exp = false;
        validation.leeway = 0;
        Ok(Self {
            encoding: EncodingKey::from_secret(&secret),
            decoding: DecodingKey::from_secret(&secret),
            validation,
            ttl,
        })
    }

    /// A signed token for `user_id`'s session `session_id` (its `jti`), valid from `now` for the
    /// configured TTL. `Internal` only if signing fails.
    pub fn issue(
        &self,
        user_id: Uuid,
        session_id: Uuid,
        now: OffsetDateTime,
    ) -> Result<String, Error> {
        let claims = Claims {
            sub: user_id.to_string(),
            iat: now.unix_timestamp(),
            exp: (now + self.ttl).unix_timestamp(),
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
            jti: session_id.to_string(),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| Error::Internal(format!("signing a session: {e}")))
    }

    /// Checks algorithm, signature, `iss`, `aud` and `exp` (against `now`); returns the user
    /// and session the token names (`Invalid` unless `sub` and `jti` are UUIDs). Whether the
    /// session still exists is the caller's to check.
    pub fn verify(&self, token: &str, now: OffsetDateTime) -> Result<Verified, AuthFailure> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|_| AuthFailure::Invalid)?;
        if data.claims.exp <= now.unix_timestamp() {
            return Err(AuthFailure::Expired);
        }
        Ok(Verified {
            user_id: Uuid::try_parse(&data.claims.sub).map_err(|_| AuthFailure::Invalid)?,
            session_id: Uuid::try_parse(&data.claims.jti).map_err(|_| AuthFailure::Invalid)?,
        })
    }
}

/// Tokens look like `xxx.yyy.zzz`; keys never contain a dot.
pub fn looks_like_jwt(token: &str) -> bool {
    token.bytes().filter(|&b| b == b'.').count() == 2
}

#[cfg(test)]
mod tests {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    use hmac::{Hmac, Mac};
    use serde_json::json;
    use time::macros::datetime;

    use super::*;

    const SECRET: [u8; 32] = [7; 32];
    const SESSION: Uuid = Uuid::from_u128(0x5E55);

    fn keys() -> JwtKeys {
        JwtKeys::new(SECRET.to_vec(), time::Duration::hours(1)).unwrap()
    }

    /// Any header and claims, signed with HMAC-SHA256 by hand: the tokens keyward must refuse.
    fn forge(secret: &[u8], header: &serde_json::Value, claims: &serde_json::Value) -> String {
        let mut token = URL_SAFE_NO_PAD.encode(header.to_string());
        token.push('.');
        token.push_str(&URL_SAFE_NO_PAD.encode(claims.to_string()));
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret).unwrap();
        mac.update(token.as_bytes());
        token.push('.');
        token.push_str(&URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()));
        token
    }

    fn claims(now: OffsetDateTime) -> serde_json::Value {
        json!({"sub": Uuid::nil().to_string(), "iat": now.unix_timestamp(), "exp": now.unix_timestamp() + 60,
               "iss": ISSUER, "aud": AUDIENCE, "jti": SESSION.to_string()})
    }

    #[test]
    fn issued_tokens_verify_until_they_expire() {
        let now = datetime!(2026-01-01 00:00 UTC);
        let user = Uuid::now_v7();
        let token = keys().issue(user, SESSION, now).unwrap();
        let verified = Verified {
            user_id: user,
            session_id: SESSION,
        };
        assert_eq!(keys().verify(&token, now), Ok(verified));
        assert_eq!(
            keys().verify(&token, now + time::Duration::hours(1)),
            Err(AuthFailure::Expired)
        );
    }

    #[test]
    fn a_forged_token_of_the_right_shape_verifies() {
        // The forging helper is right, so the refusals below are the verifier's doing.
        let now = datetime!(2026-01-01 00:00 UTC);
        let token = forge(
            &SECRET,
            &json!({"alg": "HS256", "typ": "JWT"}),
            &claims(now),
        );
        assert_eq!(
            keys()
                .verify(&token, now)
                .map(|v| (v.user_id, v.session_id)),
            Ok((Uuid::nil(), SESSION))
        );
    }

    #[test]
    fn rejects_forgeries() {
        let now = datetime!(2026-01-01 00:00 UTC);
        let k = keys();
        let hs = json!({"alg": "HS256", "typ": "JWT"});
        let mut no_exp = claims(now);
        no_exp.as_object_mut().unwrap().remove("exp");
        let mut no_sub = claims(now);
        no_sub.as_object_mut().unwrap().remove("sub");
        let mut wrong_iss = claims(now);
        wrong_iss["iss"] = json!("someone-else");
        let mut wrong_aud = claims(now);
        wrong_aud["aud"] = json!("someone-else");
        // A token of a version before sessions were stored: its `jti` names no session.
        let mut no_session = claims(now);
        no_session["jti"] = json!("j");
        let cases = [
            forge(&SECRET, &json!({"alg": "none"}), &claims(now)),
            forge(&SECRET, &json!({"alg": "HS512"}), &claims(now)),
            forge(&SECRET, &hs, &no_exp),
            forge(&SECRET, &hs, &no_sub),
            forge(&SECRET, &hs, &wrong_iss),
            forge(&SECRET, &hs, &wrong_aud),
            forge(&SECRET, &hs, &no_session),
            forge(&[8; 32], &hs, &claims(now)),
            "a.b".into(),
            "".into(),
        ];
        for token in cases {
            assert_eq!(k.verify(&token, now), Err(AuthFailure::Invalid), "{token}");
        }
        let unsigned = {
            let t = forge(&SECRET, &json!({"alg": "none"}), &claims(now));
            format!("{}.", &t[..t.rfind('.').unwrap()])
        };
        assert_eq!(k.verify(&unsigned, now), Err(AuthFailure::Invalid));
    }

    #[test]
    fn short_secrets_are_refused() {
        assert!(JwtKeys::new(vec![1; 31], time::Duration::hours(1)).is_err());
    }
}
