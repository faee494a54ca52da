//! The verify path's memory: keys by digest (and a short memory of unknown digests), and users
//! by id, so that a verify of a known key makes no storage round trip.
//!
//! Coherence on this node: every change that affects verification invalidates the entry in the
//! same request, before its 2xx ([`KeyCache::invalidate`]). A fill that raced with an
//! invalidation removes what it inserted (the epoch check), so a stale row never stays. Entries
//! also expire after a safety TTL, which bounds staleness from writers this node does not see
//! (the CLI, other nodes). Expiry and revocation times are checked against the clock on every
//! verify, never at fill.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use keyward_domain::{ApiKey, KeyDigest, User};
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

/// Operator settings of the cache.
#[derive(Debug, Clone, Copy)]
pub struct CacheSettings {
    /// Most keys kept (and as many unknown digests).
    pub capacity: usize,
    /// How long a cached key or user is trusted without re-reading storage.
    pub ttl: Duration,
    /// How long an unknown digest is remembered as unknown.
    pub negative_ttl: Duration,
}

impl Default for CacheSettings {
    fn default() -> Self {
        Self {
            capacity: 250_000,
            ttl: Duration::seconds(30),
            negative_ttl: Duration::seconds(2),
        }
    }
}

#[derive(Clone)]
enum Entry {
    Known {
        key: Arc<ApiKey>,
        until: OffsetDateTime,
    },
    Unknown {
        until: OffsetDateTime,
    },
}

/// What a lookup found.
pub enum Lookup {
    /// The cache knows: the key, or that there is none.
    Hit(Option<Arc<ApiKey>>),
    /// Read storage, then [`KeyCache::fill`] with this epoch.
    Miss(u64),
}

pub struct KeyCache {
    keys: quick_cache::sync::Cache<KeyDigest, Entry>,
    users: quick_cache::sync::Cache<Uuid, (Arc<User>, OffsetDateTime)>,
    /// Bumped by every invalidation; a fill that saw another epoch undoes itself.
    epoch: AtomicU64,
    settings: CacheSettings,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl std::fmt::Debug for KeyCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyCache")
            .field("len", &self.keys.len())
            .finish_non_exhaustive()
    }
}

impl KeyCache {
    pub fn new(settings: CacheSettings) -> Self {
        let capacity = settings.capacity.max(1);
        Self {
            keys: quick_cache::sync::Cache::new(capacity),
            users: quick_cache::sync::Cache::new(capacity.clamp(1, 100_000)),
            epoch: AtomicU64::new(0),
            settings,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    pub fn lookup(&self, digest: &KeyDigest, now: OffsetDateTime) -> Lookup {
        let epoch = self.epoch.load(Ordering::SeqCst);
        let found = match self.keys.get(digest) {
            Some(Entry::Known { key, until }) if now < until => Some(Some(key)),
            Some(Entry::Unknown { until }) if now < until => Some(None),
            _ => None,
        };
        match found {
            Some(hit) => {
                self.hits.fetch_add(1, Ordering::Relaxed);
                Lookup::Hit(hit)
            }
            None => {
                self.misses.fetch_add(1, Ordering::Relaxed);
                Lookup::Miss(epoch)
            }
        }
    }

    /// Remembers what storage said about `digest`, read after [`Lookup::Miss`] gave `epoch`.
    pub fn fill(
        &self,
        digest: KeyDigest,
        key: Option<ApiKey>,
        epoch: u64,
        now: OffsetDateTime,
    ) -> Option<Arc<ApiKey>> {
        let key = key.map(Arc::new);
        let entry = match &key {
            Some(k) => Entry::Known {
                key: Arc::clone(k),
                until: now + self.settings.ttl,
            },
            None => Entry::Unknown {
                until: now + self.settings.negative_ttl,
            },
        };
        self.keys.insert(digest, entry);
        if self.epoch.load(Ordering::SeqCst) != epoch {
            // An invalidation ran while storage was read: what was read may be stale.
            self.keys.remove(&digest);
        }
        key
    }

    /// Forgets `digest`, after a change to its key was stored and before the change's answer.
    pub fn invalidate(&self, digest: &KeyDigest) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        self.keys.remove(digest);
    }

    /// Forgets everything (after changes too broad to name each key, like deleting a tenant).
    pub fn clear(&self) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        self.keys.clear();
        self.users.clear();
    }

    pub fn user(&self, id: Uuid, now: OffsetDateTime) -> Option<Arc<User>> {
        match self.users.get(&id) {
            Some((user, until)) if now < until => Some(user),
            _ => None,
        }
    }

    pub fn fill_user(&self, user: User, now: OffsetDateTime) -> Arc<User> {
        let user = Arc::new(user);
        self.users
            .insert(user.id, (Arc::clone(&user), now + self.settings.ttl));
        user
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }

    pub fn misses(&self) -> u64 {
        self.misses.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keyward_domain::{KeyPrefix, PlainKey};
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-03-01 12:00 UTC);

    fn key() -> (KeyDigest, ApiKey) {
        let plain = PlainKey::from_secret_bytes(&KeyPrefix::default_prefix(), [7; 32]);
        let prefix = KeyPrefix::default_prefix();
        let key = ApiKey::issued(
            Uuid::from_u128(1),
            &plain,
            &prefix,
            Uuid::from_u128(2),
            None,
            vec![],
            NOW,
        );
        (plain.digest(), key)
    }

    fn hit(l: Lookup) -> Option<Option<Arc<ApiKey>>> {
        match l {
            Lookup::Hit(k) => Some(k),
            Lookup::Miss(_) => None,
        }
    }

    #[test]
    fn fills_hits_expires_and_invalidates() {
        let cache = KeyCache::new(CacheSettings::default());
        let (digest, k) = key();
        let Lookup::Miss(epoch) = cache.lookup(&digest, NOW) else {
            panic!("empty cache hit")
        };
        cache.fill(digest, Some(k), epoch, NOW);
        assert!(hit(cache.lookup(&digest, NOW)).unwrap().is_some());
        assert!(
            hit(cache.lookup(&digest, NOW + Duration::seconds(31))).is_none(),
            "past the safety TTL storage is read again"
        );
        cache.invalidate(&digest);
        assert!(hit(cache.lookup(&digest, NOW)).is_none());
        assert_eq!((cache.hits(), cache.misses()), (1, 3));
    }

    #[test]
    fn unknown_digests_are_remembered_briefly() {
        let cache = KeyCache::new(CacheSettings::default());
        let (digest, _) = key();
        cache.fill(digest, None, 0, NOW);
        assert!(matches!(hit(cache.lookup(&digest, NOW)), Some(None)));
        assert!(hit(cache.lookup(&digest, NOW + Duration::seconds(3))).is_none());
    }

    #[test]
    fn a_fill_racing_an_invalidation_does_not_stay() {
        let cache = KeyCache::new(CacheSettings::default());
        let (digest, k) = key();
        let Lookup::Miss(epoch) = cache.lookup(&digest, NOW) else {
            panic!()
        };
        // The key is revoked (and invalidated) while the filler reads the old row.
        cache.invalidate(&digest);
        cache.fill(digest, Some(k), epoch, NOW);
        assert!(hit(cache.lookup(&digest, NOW)).is_none());
    }
}
