//! Signed-in sessions of the web console. Sign-in checks the password as the API's login does
//! (same throttles, same audit); the session is kept on the server ([`ConsoleSession`]), the
//! browser holds only a random token (256 bits from the OS), and the database only its SHA-256
//! digest. A session ends at sign-out (deleted: everywhere at once), when idle for longer than
//! [`Settings::console_idle`](crate::Settings), or at its absolute end
//! ([`Settings::console_lifetime`](crate::Settings)), or when its user ends it from the session
//! list (the API's or the console's own). Each session carries its own CSRF token.
//!
//! Nothing here logs a token.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use keyward_domain::{AuditAction, ConsoleSession, Credential, Principal};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use time::{Duration, OffsetDateTime};

use crate::auth::{Caller, RequestMeta};
use crate::error::{AuthFailure, Error, Result};
use crate::login::{check_password, signed_in_actor};
use crate::Keyward;

/// `last_seen_at` is written at most once per this long per session: the idle timeout is counted
/// in minutes, and a write per page view would cost every click a transaction.
pub const LAST_SEEN_RESOLUTION: Duration = Duration::minutes(1);

/// A session just begun: its token (for the cookie; shown nowhere else) and its record.
#[derive(Debug)]
pub struct SignedIn {
    pub token: SecretString,
    pub session: ConsoleSession,
}

/// A session in use: who it is, and the token its forms carry.
#[derive(Debug, Clone)]
pub struct Resumed {
    pub caller: Caller,
    pub csrf: String,
    /// Whose session it is, as the pages greet them (read with the session: no other lookup).
    pub email: String,
}

fn random_token() -> Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| Error::Internal(format!("OS random source: {e}")))?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

fn digest_of(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Signs a user in: the password checked as the API's login checks it, then a new session.
pub async fn sign_in(
    kw: &Keyward,
    meta: &RequestMeta,
    email: &str,
    password: SecretString,
) -> Result<SignedIn> {
    let user = check_password(kw, meta, email, password).await?;
    let now = keyward_domain::clock::truncate_millis(kw.now());
    let token = random_token()?;
    let session = ConsoleSession {
        digest: digest_of(&token),
        user_id: user.id,
        csrf: random_token()?,
        created_at: now,
        last_seen_at: now,
        expires_at: now + kw.settings.console_lifetime,
    };
    let audit = signed_in_actor(meta, &user)
        .entry(now, AuditAction::AuthLogin, user.id)
        .tenant(user.tenant_id)
        .subject(user.id)
        .changes(serde_json::json!({"via": "console"}));
    kw.store.create_session(&session, &audit).await?;
    Ok(SignedIn {
        token: token.into(),
        session,
    })
}

/// The caller a session token speaks for, while its session lives: `Unauthenticated(Expired)`
/// past its idle timeout or absolute end (and the session is deleted), `Unauthenticated(Invalid)`
/// for a token of no session.
pub async fn resume(kw: &Keyward, token: &str, meta: RequestMeta) -> Result<Resumed> {
    let now = kw.now();
    let digest = digest_of(token);
    let session = kw
        .store
        .get_session(&digest)
        .await?
        .ok_or(Error::Unauthenticated(AuthFailure::Invalid))?;
    if !is_live(kw, &session, now) {
        // Gone for good; a concurrent request may have deleted it first.
        let _ = kw.store.delete_session(&digest, None).await;
        return Err(Error::Unauthenticated(AuthFailure::Expired));
    }
    let user = crate::auth::active_user(kw, session.user_id).await?;
    if now - session.last_seen_at >= LAST_SEEN_RESOLUTION {
        kw.store.touch_session(&digest, now).await?;
    }
    let principal = Principal {
        user_id: user.id,
        role: user.role,
        tenant_id: user.tenant_id,
        credential: Credential::Session { id: None },
    };
    Ok(Resumed {
        caller: Caller::new(principal, meta),
        csrf: session.csrf,
        email: user.email.clone(),
    })
}

/// The id ([`ConsoleSession::id`]) of the session `token` opens, as the session list shows it.
pub fn session_id(token: &SecretString) -> uuid::Uuid {
    ConsoleSession::id_of_digest(&digest_of(token.expose_secret()))
}

/// Whether `session` lives at `now`: before its absolute end, and not idle for longer than the
/// console's idle timeout.
pub fn is_live(kw: &Keyward, session: &ConsoleSession, now: OffsetDateTime) -> bool {
    now < session.expires_at && now - session.last_seen_at <= kw.settings.console_idle
}

/// Whether a form's CSRF token is its session's (compared in constant time).
pub fn csrf_matches(resumed: &Resumed, presented: &str) -> bool {
    !presented.is_empty() && bool::from(resumed.csrf.as_bytes().ct_eq(presented.as_bytes()))
}

/// Forgets the session of `token`, if there is one (a browser signing in again replaces its
/// session: the old one must not live on unseen). Not audited: the sign-in that replaces it is.
pub async fn discard(kw: &Keyward, token: &str) -> Result<()> {
    match kw.store.delete_session(&digest_of(token), None).await {
        Ok(()) | Err(keyward_store::StoreError::NotFound) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Ends the session of `token` everywhere, audited as a sign-out. A token of no session is
/// `Unauthenticated(Invalid)`.
pub async fn sign_out(kw: &Keyward, token: &SecretString, resumed: &Resumed) -> Result<()> {
    let now = kw.now();
    let caller = &resumed.caller;
    let audit = caller
        .actor()
        .entry(now, AuditAction::AuthLogout, caller.principal.user_id)
        .tenant(caller.principal.tenant_id)
        .subject(caller.principal.user_id);
    kw.store
        .delete_session(&digest_of(token.expose_secret()), Some(&audit))
        .await
        .map_err(|e| match e {
            keyward_store::StoreError::NotFound => Error::Unauthenticated(AuthFailure::Invalid),
            other => other.into(),
        })
}
