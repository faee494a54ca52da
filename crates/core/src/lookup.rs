//! Reads through the verify path's memory: keys by digest and users by id, answered by the
//! [`crate::cache`] when it knows, else by storage (and cached). Authentication and verification
//! both read here; this module calls neither.
//!
//! A storage call made here is skipped while storage is known to be gone ([`crate::outage`]),
//! and a cached entry answers past its TTL only when storage cannot be reached.

use std::sync::Arc;

use keyward_domain::import::{foreign_digests, KeyShape};
use keyward_domain::{ApiKey, ApiSession, KeyDigest, KeyFormatError, ParsedKey, User};
use keyward_store::StoreError;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::cache::Lookup;
use crate::Keyward;

/// The key with this digest, from the cache when it knows, else from storage (and cached).
pub async fn key_by_digest(
    kw: &Keyward,
    digest: KeyDigest,
    now: OffsetDateTime,
) -> Result<Option<Arc<ApiKey>>, StoreError> {
    match kw.cache.lookup(&digest, now) {
        Lookup::Hit(key) => Ok(key),
        Lookup::Miss { epoch, stale } => {
            let read = guarded(kw, kw.store.get_key_by_digest(&digest)).await;
            match read {
                Ok(key) => Ok(kw.cache.fill(digest, key, epoch, now)),
                // Only an unreachable database falls back to what the cache last knew.
                Err(e @ StoreError::Unavailable(_)) => stale.ok_or(e),
                Err(e) => Err(e),
            }
        }
    }
}

/// The key a presented string is, if any: a keyward key by its digest, else an imported key of
/// a shape an import taught (see [`keyward_domain::import`]). A string shaped like keyward's but
/// failing its checksum is tried only against the imported shapes (another service's keys may
/// happen to look like keyward's), so it reaches storage only when an import taught its prefix.
/// A string of no known shape reaches no storage but the shapes' own read (at most once per
/// cache TTL).
pub async fn key_by_token(
    kw: &Keyward,
    token: &str,
    now: OffsetDateTime,
) -> Result<Option<Arc<ApiKey>>, StoreError> {
    match ParsedKey::parse(token) {
        Ok(parsed) => key_by_digest(kw, parsed.digest(), now).await,
        // Another service's keys may look like keyward's: a bad checksum is tried against the
        // imported shapes too, none of which has one of keyward's own prefixes (the import
        // refuses them), so a mistyped keyward key still never reaches storage.
        Err(format) => {
            let digests = |shapes: &[KeyShape]| foreign_digests(shapes, token).collect::<Vec<_>>();
            let digests = match kw.cache.with_shapes(now, digests) {
                Some(digests) => digests,
                None => match shapes(kw, now).await {
                    Ok(shapes) => digests(&shapes),
                    // With no shapes to go by, a string keyward's own checksum refuses is no key:
                    // answered without storage, as it always was.
                    Err(StoreError::Unavailable(_)) if format == KeyFormatError::BadChecksum => {
                        return Ok(None)
                    }
                    Err(e) => return Err(e),
                },
            };
            for digest in digests {
                if let Some(key) = key_by_digest(kw, digest, now).await? {
                    return Ok(Some(key));
                }
            }
            Ok(None)
        }
    }
}

/// The shapes of imported keys, read from storage (and remembered by the cache).
pub async fn shapes(kw: &Keyward, now: OffsetDateTime) -> Result<Arc<Vec<KeyShape>>, StoreError> {
    let epoch = kw.cache.reading_shapes();
    match guarded(kw, kw.store.list_key_shapes()).await {
        Ok(shapes) => Ok(kw.cache.fill_shapes(shapes, epoch, now)),
        // Shapes are only ever added: the last ones read still hold for what they name.
        Err(e @ StoreError::Unavailable(_)) => kw.cache.last_shapes().ok_or(e),
        Err(e) => Err(e),
    }
}

/// The user with this id, from the cache while it is fresh, else from storage.
pub async fn user_by_id(
    kw: &Keyward,
    id: Uuid,
    now: OffsetDateTime,
) -> Result<Option<Arc<User>>, StoreError> {
    match kw.cache.user(id, now) {
        Lookup::Hit(user) => Ok(Some(user)),
        Lookup::Miss { epoch, stale } => match guarded(kw, kw.store.get_user(id)).await {
            Ok(user) => Ok(user.map(|u| kw.cache.fill_user(u, epoch, now))),
            Err(e @ StoreError::Unavailable(_)) => stale.map(Some).ok_or(e),
            Err(e) => Err(e),
        },
    }
}

/// The API session with this id (a JWT's `jti`), from the cache while it is fresh, else from
/// storage.
pub async fn session_by_id(
    kw: &Keyward,
    id: Uuid,
    now: OffsetDateTime,
) -> Result<Option<Arc<ApiSession>>, StoreError> {
    match kw.cache.session(id, now) {
        Lookup::Hit(session) => Ok(session),
        Lookup::Miss { epoch, stale } => match guarded(kw, kw.store.get_api_session(id)).await {
            Ok(session) => Ok(kw.cache.fill_session(id, session, epoch, now)),
            Err(e @ StoreError::Unavailable(_)) => stale.ok_or(e),
            Err(e) => Err(e),
        },
    }
}

/// A storage call on the verify path: skipped while storage is known to be gone, and any
/// `Unavailable` reported so that the next requests do not each wait out the store's connect
/// timeout. (Slowness alone is not an outage: a busy database still answers.)
pub async fn guarded<T>(
    kw: &Keyward,
    read: impl std::future::Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    if kw.outage.is_down() {
        return Err(StoreError::Unavailable("storage is down".into()));
    }
    let result = read.await;
    if let Err(StoreError::Unavailable(_)) = &result {
        kw.outage.report(&kw.store);
    }
    result
}
