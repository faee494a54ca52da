//! Login sessions as JWTs, HS256 only.
//!
//! The algorithm is pinned: the header must say `HS256`, so `alg: none` and algorithm-confusion
//! tokens are rejected before the signature is even looked at. `exp`, `iss`, `aud`, `sub` and `jti`
//! are required. A token is never logged.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::error::AuthFailure;

/// Issuer and audience keyward puts in and requires of its tokens. NEVER CHANGE without
/// accepting that every live session is logged out.
pub const ISSUER: &str = "keyward";
pub const AUDIENCE: &str = "keyward";
/// The shortest secret keyward accepts, in bytes.
pub const MIN_SECRET_LEN: usize = 32;

#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct Claims {
    pub sub: String,
    pub iat: i64,
    pub exp: i64,
    pub iss: String,
    pub aud: String,
    pub jti: String,
}

/// The signing secret. `Debug` never prints it.
#[derive(Clone)]
pub struct JwtKeys {
    secret: Vec<u8>,
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
    pub fn new(secret: Vec<u8>, ttl: time::Duration) -> Result<Self, SecretTooShort> {
        if secret.len() < MIN_SECRET_LEN {
            return Err(SecretTooShort);
        }
        Ok(Self { secret, ttl })
    }

    fn mac(&self) -> Hmac<Sha256> {
        Hmac::<Sha256>::new_from_slice(&self.secret).expect("HMAC takes keys of any length")
    }

    /// A signed token for `user_id`, valid from `now` for the configured TTL.
    pub fn issue(&self, user_id: Uuid, now: OffsetDateTime) -> String {
        let claims = Claims {
            sub: user_id.to_string(),
            iat: now.unix_timestamp(),
            exp: (now + self.ttl).unix_timestamp(),
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
            jti: Uuid::new_v4().to_string(),
        };
        self.sign(&serde_json::json!({"alg": "HS256", "typ": "JWT"}), &claims)
    }

    /// Signs any header and claims; public so tests can forge the tokens keyward must refuse.
    pub fn sign<C: Serialize>(&self, header: &serde_json::Value, claims: &C) -> String {
        let mut token = URL_SAFE_NO_PAD.encode(header.to_string());
        token.push('.');
        token.push_str(
            &URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).expect("claims serialize")),
        );
        let mut mac = self.mac();
        mac.update(token.as_bytes());
        let signature = mac.finalize().into_bytes();
        token.push('.');
        token.push_str(&URL_SAFE_NO_PAD.encode(signature));
        token
    }

    /// Checks algorithm, signature, `exp`, `iss` and `aud`; returns the user id.
    pub fn verify(&self, token: &str, now: OffsetDateTime) -> Result<Uuid, AuthFailure> {
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(AuthFailure::Invalid);
        };
        let header: Header = decode_json(header)?;
        if header.alg != "HS256" {
            return Err(AuthFailure::Invalid);
        }
        let signature = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| AuthFailure::Invalid)?;
        let mut mac = self.mac();
        mac.update(&token.as_bytes()[..header_and_payload_len(token)]);
        mac.verify_slice(&signature)
            .map_err(|_| AuthFailure::Invalid)?;
        let claims: Claims = decode_json(payload)?;
        if claims.iss != ISSUER || claims.aud != AUDIENCE {
            return Err(AuthFailure::Invalid);
        }
        if claims.exp <= now.unix_timestamp() {
            return Err(AuthFailure::Expired);
        }
        Uuid::try_parse(&claims.sub).map_err(|_| AuthFailure::Invalid)
    }
}

#[derive(Deserialize)]
struct Header {
    alg: String,
}

fn header_and_payload_len(token: &str) -> usize {
    token.rfind('.').unwrap_or(0)
}

fn decode_json<T: serde::de::DeserializeOwned>(part: &str) -> Result<T, AuthFailure> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| AuthFailure::Invalid)?;
    serde_json::from_slice(&bytes).map_err(|_| AuthFailure::Invalid)
}

/// Tokens look like `xxx.yyy.zzz`; keys never contain a dot.
pub fn looks_like_jwt(token: &str) -> bool {
    token.bytes().filter(|&b| b == b'.').count() == 2
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use time::macros::datetime;

    fn keys() -> JwtKeys {
        JwtKeys::new(vec![7; 32], time::Duration::hours(1)).unwrap()
    }

    fn claims(now: OffsetDateTime) -> serde_json::Value {
        json!({"sub": Uuid::nil().to_string(), "iat": now.unix_timestamp(), "exp": now.unix_timestamp() + 60,
               "iss": ISSUER, "aud": AUDIENCE, "jti": "j"})
    }

    #[test]
    fn issued_tokens_verify_until_they_expire() {
        let now = datetime!(2026-01-01 00:00 UTC);
        let user = Uuid::now_v7();
        let token = keys().issue(user, now);
        assert_eq!(keys().verify(&token, now), Ok(user));
        assert_eq!(
            keys().verify(&token, now + time::Duration::hours(1)),
            Err(AuthFailure::Expired)
        );
    }

    #[test]
    fn rejects_forgeries() {
        let now = datetime!(2026-01-01 00:00 UTC);
        let k = keys();
        let hs = json!({"alg": "HS256", "typ": "JWT"});
        let mut no_exp = claims(now);
        no_exp.as_object_mut().unwrap().remove("exp");
        let mut wrong_iss = claims(now);
        wrong_iss["iss"] = json!("someone-else");
        let mut wrong_aud = claims(now);
        wrong_aud["aud"] = json!("someone-else");
        let cases = [
            k.sign(&json!({"alg": "none"}), &claims(now)),
            k.sign(&json!({"alg": "HS512"}), &claims(now)),
            k.sign(&hs, &no_exp),
            k.sign(&hs, &wrong_iss),
            k.sign(&hs, &wrong_aud),
            JwtKeys::new(vec![8; 32], time::Duration::hours(1))
                .unwrap()
                .sign(&hs, &claims(now)),
            "a.b".into(),
            "".into(),
        ];
        for token in cases {
            assert_eq!(k.verify(&token, now), Err(AuthFailure::Invalid), "{token}");
        }
        let unsigned = {
            let t = k.sign(&json!({"alg": "none"}), &claims(now));
            format!("{}.", &t[..t.rfind('.').unwrap()])
        };
        assert_eq!(k.verify(&unsigned, now), Err(AuthFailure::Invalid));
    }

    #[test]
    fn short_secrets_are_refused() {
        assert!(JwtKeys::new(vec![1; 31], time::Duration::hours(1)).is_err());
    }
}
