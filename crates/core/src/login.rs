//! Logging in with email and password. An unknown email and a wrong password give the same
//! answer in the same time; failures are throttled per email and per client address, and every
//! attempt is audited (without the password).

use keyward_domain::model::{normalize_email, MAX_PASSWORD_LEN};
use keyward_domain::AuditAction;
use keyward_domain::{Actor, ApiSession, User};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use uuid::Uuid;

use crate::auth::RequestMeta;
use crate::error::{AuthFailure, Error, Result};
use crate::Keyward;

/// A signed-in session: its JWT (which no `Debug` prints) and seconds to its expiry.
#[derive(Debug)]
pub struct Session {
    pub access_token: SecretString,
    pub expires_in: i64,
}

/// Signs a user in with email and password for a session token (the API's login).
pub async fn login(
    state: &Keyward,
    meta: &RequestMeta,
    email: &str,
    password: SecretString,
) -> Result<Session> {
    // A context that signs nobody in (the CLI's) has no sessions to give.
    let sessions = state
        .sessions
        .as_ref()
        .ok_or_else(|| Error::Internal("sign-in without a session key".into()))?;
    let user = check_password(state, meta, email, password).await?;
    let now = keyward_domain::clock::truncate_millis(state.now());
    let session = ApiSession {
        id: Uuid::new_v4(),
        user_id: user.id,
        created_at: now,
        expires_at: now + sessions.ttl,
        source_ip: meta.source_ip.clone(),
    };
    let entry = signed_in_actor(meta, &user)
        .entry(now, AuditAction::AuthLogin, user.id)
        .tenant(user.tenant_id)
        .subject(user.id)
        .changes(json!({"session_id": session.id}));
    let access_token = sessions.issue(user.id, session.id, now)?.into();
    // Refused if the user was disabled, deleted or given a new password since it was checked.
    // Past `MAX_SESSIONS`, the user's oldest sessions end.
    let ended = state
        .store
        .create_api_session(&session, &user.password_hash, &entry)
        .await
        .map_err(|e| match e {
            keyward_store::StoreError::NotFound => Error::Unauthenticated(AuthFailure::Invalid),
            other => other.into(),
        })?;
    for id in ended {
        state.cache.invalidate_session(id);
    }
    Ok(Session {
        access_token,
        expires_in: sessions.ttl.whole_seconds(),
    })
}

/// Who the audit log names for what a user does once signed in from `meta`.
pub(crate) fn signed_in_actor(meta: &RequestMeta, user: &User) -> Actor {
    Actor {
        id: user.id.to_string(),
        kind: keyward_domain::ActorType::Jwt,
        user_id: Some(user.id),
        ..Actor::anonymous(meta.source_ip.clone(), meta.request_id.clone())
    }
}

/// The user whose email and password these are, for every way of signing in (the API's login,
/// the console's): refused alike for an unknown email and a wrong password, in the same time;
/// throttled per email and per client address; a failure is audited (without the password).
pub(crate) async fn check_password(
    state: &Keyward,
    meta: &RequestMeta,
    email: &str,
    password: SecretString,
) -> Result<User> {
    let now = state.now();
    // Refused before anything is counted, stored or hashed: neither can be any user's.
    let email = normalize_email(email)
        .ok_or_else(|| Error::invalid_field("email", "not an email address"))?;
    if password.expose_secret().chars().count() > MAX_PASSWORD_LEN {
        return Err(Error::invalid_field(
            "password",
            "must be at most 1024 characters",
        ));
    }
    let address = meta.source_ip.clone().unwrap_or_else(|| "unknown".into());
    // Counted before the password is hashed, so that concurrent attempts cannot all pass.
    state
        .login_by_email
        .attempt(&email, now)
        .map_err(|retry_after_secs| Error::Throttled { retry_after_secs })?;
    if let Err(retry_after_secs) = state.login_by_addr.attempt(&address, now) {
        state.login_by_email.forgive(&email);
        return Err(Error::Throttled { retry_after_secs });
    }
    let checked = async {
        let user = state.store.get_user_by_email(&email).await?;
        // A user without a password (made by an import) is checked against the dummy hash, in
        // the same time as anyone's; it never matches.
        let stored = user
            .as_ref()
            .filter(|u| u.password_hash != keyward_store::rows::NO_PASSWORD)
            .map(|u| u.password_hash.clone());
        let ok = state.passwords.verify(password, stored).await?;
        Ok::<_, Error>((user, ok))
    };
    let (user, ok) = match checked.await {
        Ok(checked) => checked,
        // Nothing was decided (storage or the hashing queue refused): not a failure.
        Err(e) => {
            state.login_by_email.forgive(&email);
            state.login_by_addr.forgive(&address);
            return Err(e);
        }
    };
    let anonymous = Actor::anonymous(meta.source_ip.clone(), meta.request_id.clone());
    match user {
        // A disabled user's right password still signs nobody in (answered as a wrong one).
        Some(user) if ok && !user.is_disabled() => {
            state.login_by_email.forgive(&email);
            state.login_by_addr.forgive(&address);
            Ok(user)
        }
        user => {
            let mut entry = anonymous
                .entry(
                    now,
                    AuditAction::AuthLoginFailed,
                    user.as_ref().map_or("unknown".into(), |u| u.id.to_string()),
                )
                .changes(json!({"email": email}));
            if let Some(u) = &user {
                entry = entry.tenant(u.tenant_id).subject(u.id);
            }
            state.store.append_audit(&entry).await?;
            Err(Error::Unauthenticated(AuthFailure::Invalid))
        }
    }
}
