//! Who is calling: a presented credential (a session token or a keyward key) authenticated into
//! the [`Principal`] it speaks for, and the failure throttle that keeps guessing expensive.
//! Reading a credential out of a request is the surface's business; nothing here logs one.
//!
//! Keys are shape- and checksum-checked before any storage lookup, and read through
//! [`crate::lookup`] (the verify path's memory).

use std::cell::RefCell;
use std::net::IpAddr;
use std::sync::Arc;

use keyward_domain::scope::KeywardRight;
use keyward_domain::{Actor, ApiKey, Credential, KeyStatus, ParsedKey, Principal, User};
use secrecy::{ExposeSecret, SecretString};
use subtle::ConstantTimeEq;

use crate::cache::Witness;
use crate::error::{AuthFailure, Error, Result};
use crate::jwt;
use crate::lookup::{session_by_id, user_by_id};
use crate::Keyward;

/// Where a request came from, for the audit log.
#[derive(Debug, Clone, Default)]
pub struct RequestMeta {
    /// The client's address as the server saw it (`None` in-process and on the CLI).
    pub source_ip: Option<String>,
    /// The request id the client sent or the server made.
    pub request_id: Option<String>,
}

/// An authenticated caller of an operation.
#[derive(Debug, Clone)]
pub struct Caller {
    pub principal: Principal,
    pub meta: RequestMeta,
    /// Who the audit log names instead of the principal: the operator at the command line, who
    /// acts with a principal's rights and is audited as `system`.
    audited_as: Option<Actor>,
}

impl Caller {
    /// A caller that presented a credential for `principal`.
    pub fn new(principal: Principal, meta: RequestMeta) -> Self {
        Self {
            principal,
            meta,
            audited_as: None,
        }
    }

    /// The operator at the command line, acting with `principal`'s rights; audited as
    /// [`Actor::system`].
    pub fn operator(principal: Principal) -> Self {
        Self {
            principal,
            meta: RequestMeta::default(),
            audited_as: Some(Actor::system()),
        }
    }

    /// Who the audit log names for what this caller does.
    pub fn actor(&self) -> Actor {
        match &self.audited_as {
            Some(actor) => actor.clone(),
            None => self
                .principal
                .actor(self.meta.source_ip.clone(), self.meta.request_id.clone()),
        }
    }
}

/// [`authenticate`], for a request from `address`: an address that keeps presenting credentials
/// that fail (guessing keys) is refused ([`Error::Throttled`]) before each guess costs a lookup.
pub async fn authenticate_from(
    kw: &Keyward,
    token: &str,
    address: Option<&str>,
) -> Result<Principal> {
    let failures = &kw.auth_failures_by_addr;
    if let Some(address) = address {
        failures
            .check(address, kw.now())
            .map_err(|retry_after_secs| Error::Throttled { retry_after_secs })?;
    }
    let result = authenticate(kw, token).await;
    if let (Err(Error::Unauthenticated(_)), Some(address)) = (&result, address) {
        let _ = failures.attempt(address, kw.now());
    }
    result
}

/// Resolves a presented token (a session JWT or a keyward key) to the principal it speaks for.
pub async fn authenticate(kw: &Keyward, token: &str) -> Result<Principal> {
    let now = kw.now();
    if jwt::looks_like_jwt(token) {
        let sessions = kw
            .sessions
            .as_ref()
            .ok_or(Error::Unauthenticated(AuthFailure::Invalid))?;
        let claims = sessions
            .verify(token, now)
            .map_err(Error::Unauthenticated)?;
        // Signed out, ended, or the password changed since: the token no longer counts.
        session_by_id(kw, claims.session_id, now)
            .await?
            .filter(|s| s.user_id == claims.user_id && s.expires_at > now)
            .ok_or(Error::Unauthenticated(AuthFailure::Invalid))?;
        let user = active_user(kw, claims.user_id).await?;
        return Ok(Principal {
            user_id: user.id,
            role: user.role,
            tenant_id: user.tenant_id,
            credential: Credential::Session {
                id: Some(claims.session_id),
            },
        });
    }
    key_principal(kw, token, now)
        .await
        .map(|(principal, _, _)| principal)
}

/// The principal a key `token` speaks for, with the key and its owner as read.
async fn key_principal(
    kw: &Keyward,
    token: &str,
    now: time::OffsetDateTime,
) -> Result<(Principal, Arc<ApiKey>, Arc<User>)> {
    let key = crate::lookup::key_by_token(kw, token, now)
        .await?
        .ok_or(Error::Unauthenticated(AuthFailure::Invalid))?;
    match key.status(now) {
        KeyStatus::Active => {}
        KeyStatus::Expired => return Err(Error::Unauthenticated(AuthFailure::Expired)),
        KeyStatus::Revoked => return Err(Error::Unauthenticated(AuthFailure::Invalid)),
    }
    let owner = active_user(kw, key.owner_id).await?;
    kw.usage.record(key.id, now);
    let principal = Principal {
        user_id: owner.id,
        role: owner.role,
        tenant_id: owner.tenant_id,
        credential: Credential::ApiKey {
            key_id: key.id,
            scopes: key.scopes.clone(),
        },
    };
    Ok((principal, key, owner))
}

/// User `id` if it exists and is not disabled: whom a credential may speak for.
pub(crate) async fn active_user(kw: &Keyward, id: uuid::Uuid) -> Result<Arc<User>> {
    user_by_id(kw, id, kw.now())
        .await?
        .filter(|u| !u.is_disabled())
        .ok_or(Error::Unauthenticated(AuthFailure::Invalid))
}

/// The principal a verifier credential speaks for (verify's and forward auth's caller); `None`
/// under `--public-verify`. It must hold `keyward:verify`. `credential` is what the request
/// presented (or why it presented none); `peer` is the client's address, for the limit on failing
/// credentials.
pub async fn verifier(
    kw: &Keyward,
    credential: Result<&str, AuthFailure>,
    peer: Option<IpAddr>,
) -> Result<Option<Arc<Principal>>> {
    if kw.settings.public_verify {
        return Ok(None);
    }
    let credential = credential.map_err(Error::Unauthenticated)?;
    // The address is only spelt out on a failure's path, or while some address is blocked.
    let throttle = &kw.auth_failures_by_addr;
    let address = |peer: Option<IpAddr>| peer.map(|ip| ip.to_string());
    let checked = throttle
        .may_block(kw.now())
        .then(|| address(peer))
        .flatten();
    let principal = match verifier_principal(kw, credential, checked.as_deref()).await {
        Err(e @ Error::Unauthenticated(_)) if checked.is_none() => {
            if let Some(address) = address(peer) {
                let _ = throttle.attempt(&address, kw.now());
            }
            return Err(e);
        }
        other => other?,
    };
    principal.require(KeywardRight::Verify)?;
    Ok(Some(principal))
}

/// [`authenticate_from`] for a verifier, remembered per thread for a key that holds
/// `keyward:verify`: a service presents the same verifier with every request, and reading it
/// again costs as much as the rest of a verify. A memo answers only while the cache holds what it
/// was made from ([`KeyCache::witness`](crate::cache::KeyCache::witness): nothing invalidated,
/// within the TTL), and the key's expiry is checked each time; any change to the key or its
/// owner is seen on the next request, as without it. (Not while some address is blocked: then
/// the throttle sees every credential.)
async fn verifier_principal(
    kw: &Keyward,
    token: &str,
    address: Option<&str>,
) -> Result<Arc<Principal>> {
    if address.is_some() || jwt::looks_like_jwt(token) {
        return authenticate_from(kw, token, address).await.map(Arc::new);
    }
    let now = kw.now();
    if let Some((principal, unnoted)) = recall_verifier(kw, token, now) {
        if let Some(key_id) = unnoted {
            kw.usage.record(key_id, now);
        }
        return Ok(principal);
    }
    let (principal, key, owner) = key_principal(kw, token, now).await?;
    let principal = Arc::new(principal);
    let witness = ParsedKey::parse(token)
        .ok()
        .and_then(|parsed| kw.cache.witness(&parsed.digest(), &key, &owner));
    if let (Some(witness), Ok(())) = (witness, principal.require(KeywardRight::Verify)) {
        VERIFIERS.with_borrow_mut(|memo| {
            // Two requests of one thread may both have missed it.
            memo.retain(|m| {
                !bool::from(m.token.expose_secret().as_bytes().ct_eq(token.as_bytes()))
            });
            if memo.len() >= REMEMBERED_VERIFIERS {
                memo.remove(0);
            }
            memo.push(RememberedVerifier {
                token: SecretString::from(token),
                key,
                principal: Arc::clone(&principal),
                witness,
                // `key_principal` has just noted this use.
                noted_at: now,
            });
        });
    }
    Ok(principal)
}

/// How many verifiers each thread remembers (services with a verifier key each).
const REMEMBERED_VERIFIERS: usize = 4;

/// A verifier key's principal, as [`verifier_principal`] remembers it.
struct RememberedVerifier {
    /// Compared in constant time; wiped when forgotten.
    token: SecretString,
    key: Arc<ApiKey>,
    principal: Arc<Principal>,
    witness: Witness,
    /// When this thread last noted a use of the key (see [`VERIFIER_NOTE_EVERY`]).
    noted_at: time::OffsetDateTime,
}

/// How often each thread notes a remembered verifier's use: a busy service presents its
/// verifier on every request, from every thread, and each note takes the usage buffer's lock
/// for that one key (the same lock for all threads). `last_used_at` is written at most once a
/// minute ([`crate::usage::LAST_USED_RESOLUTION`]): a note up to a second late moves it by at
/// most that second.
pub const VERIFIER_NOTE_EVERY: time::Duration = time::Duration::SECOND;

thread_local! {
    /// The verifiers this thread last authenticated, oldest first.
    static VERIFIERS: RefCell<Vec<RememberedVerifier>> = const { RefCell::new(Vec::new()) };
}

/// The remembered principal of verifier `token`, while it holds at `now`, with its key's id when
/// this use is to be noted (at most once per [`VERIFIER_NOTE_EVERY`] per thread).
fn recall_verifier(
    kw: &Keyward,
    token: &str,
    now: time::OffsetDateTime,
) -> Option<(Arc<Principal>, Option<uuid::Uuid>)> {
    VERIFIERS.with_borrow_mut(|memo| {
        let i = memo
            .iter()
            .position(|m| bool::from(m.token.expose_secret().as_bytes().ct_eq(token.as_bytes())))?;
        let m = &mut memo[i];
        if kw.cache.holds(&m.witness, now) && m.key.status(now) == KeyStatus::Active {
            // `now` may be behind the last note (a clock stepped back): then note again.
            let due = !(m.noted_at..m.noted_at + VERIFIER_NOTE_EVERY).contains(&now);
            if due {
                m.noted_at = now;
            }
            return Some((Arc::clone(&m.principal), due.then_some(m.key.id)));
        }
        memo.remove(i);
        None
    })
}
