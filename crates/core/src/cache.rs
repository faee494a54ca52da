//! The verify path's memory: keys by digest (and a short memory of unknown digests), users by
//! id, and API sessions by id (a JWT's `jti`, or that there is none), so that a verify of a known
//! key, or a management call with a known session, makes no storage round trip.
//!
//! Coherence on this node: every change that affects verification invalidates the entry in the
//! same request, before its 2xx ([`KeyCache::invalidate`]). A fill that raced with an
//! invalidation removes what it inserted (the epoch check), so a stale row never stays. Entries
//! also expire after a safety TTL, which bounds staleness from writers this node does not see.
//! Expiry and revocation times are checked against the clock on every verify, never at fill.
//!
//! Across nodes (a shared PostgreSQL): the store's change feed calls the [`ChangeSink`] methods
//! here. While the feed is down the cache is not *coherent*: every lookup misses (storage is read
//! again), and an entry is used only as a fallback when storage cannot be reached, until its safety
//! TTL plus the operator's stale window has passed. When the feed is back, everything cached
//! before is forgotten, since changes made meanwhile went unheard.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use keyward_domain::import::KeyShape;
use keyward_domain::{ApiKey, ApiSession, KeyDigest, User};
use keyward_store::{Change, ChangeSink};
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
    /// How long past its TTL an entry may still answer while storage cannot be reached
    /// (zero: fail closed as soon as the TTL is over).
    pub stale_window: Duration,
}

impl Default for CacheSettings {
    fn default() -> Self {
        Self {
            capacity: 250_000,
            ttl: Duration::seconds(30),
            negative_ttl: Duration::seconds(2),
            stale_window: Duration::ZERO,
        }
    }
}

/// Each cache's identity, for the threads' copies of its shapes.
static NEXT_CACHE_ID: AtomicU64 = AtomicU64::new(1);

/// The shapes of imported keys as read at `read_at`, in `epoch` (see `KeyCache::shapes_epoch`).
#[derive(Clone)]
struct ShapesRead {
    shapes: Arc<Vec<KeyShape>>,
    read_at: OffsetDateTime,
    epoch: u64,
}

/// A thread's copy of one cache's shapes of imported keys.
struct ShapesCopy {
    cache: u64,
    read: ShapesRead,
}

thread_local! {
    static LOCAL_SHAPES: std::cell::RefCell<Option<ShapesCopy>> = const { std::cell::RefCell::new(None) };
}

/// How many epoch stripes (a power of two).
const STRIPES: usize = 256;

fn key_stripe(digest: &KeyDigest) -> usize {
    // A SHA-256 digest: any byte is uniformly spread.
    usize::from(digest.as_bytes()[0]) % STRIPES
}

fn user_stripe(id: Uuid) -> usize {
    // The random tail of a v4/v7 UUID.
    usize::from(id.as_bytes()[15]) % STRIPES
}

#[derive(Clone)]
enum Entry {
    Known {
        key: Arc<ApiKey>,
        until: OffsetDateTime,
    },
    Unknown {
        until: OffsetDateTime,
        /// [`KeyCache::unknown_generation`] when filled: an import since makes it a miss.
        generation: u64,
    },
}

/// What a key's and a user's entries were when [`KeyCache::witness`] looked (see there).
#[derive(Debug, Clone, Copy)]
pub struct Witness {
    cache: u64,
    key_stripe: usize,
    key_epoch: u64,
    user_stripe: usize,
    user_epoch: u64,
    until: OffsetDateTime,
}

/// What a lookup found.
pub enum Lookup<T> {
    /// The cache knows (for keys: the key, or that there is none).
    Hit(T),
    /// Read storage, then fill with this epoch. If storage cannot be reached, `stale` (when
    /// present) is what the cache last knew and may still be trusted.
    Miss { epoch: u64, stale: Option<T> },
}

pub struct KeyCache {
    keys: quick_cache::sync::Cache<KeyDigest, Entry>,
    users: quick_cache::sync::Cache<Uuid, (Arc<User>, OffsetDateTime)>,
    /// The shapes of imported keys as last read; they answer while read in the current epoch
    /// and within the TTL.
    shapes: std::sync::RwLock<Option<ShapesRead>>,
    /// Moves on at each announcement that an import (here or on another node) may have added a
    /// shape: what was read (or began to be read) before is not trusted any more.
    shapes_epoch: AtomicU64,
    /// This cache's identity among the process's caches, for the threads' copies.
    id: u64,
    /// API sessions by id; `None`: no such session (ended, or never made).
    sessions: quick_cache::sync::Cache<Uuid, (Option<Arc<ApiSession>>, OffsetDateTime)>,
    /// Epochs by stripe of digest (or user id): an invalidation bumps its stripe, a clear bumps
    /// all; a fill whose stripe moved since its lookup undoes itself. Striped so that the many
    /// invalidations of a busy node (every key creation makes one) do not undo unrelated fills.
    epochs: Box<[AtomicU64; STRIPES]>,
    /// Moves on when an import (on any node) stored keys: an unknown digest remembered before
    /// is not trusted any more (its client may have been presenting an imported key).
    unknown_generation: AtomicU64,
    /// False while the change feed of a shared database is down: then nothing is a hit.
    coherent: AtomicBool,
    settings: CacheSettings,
    hits: crate::metrics::Counter,
    misses: crate::metrics::Counter,
}

impl std::fmt::Debug for KeyCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyCache")
            .field("len", &self.keys.len())
            .finish_non_exhaustive()
    }
}

impl KeyCache {
    /// `coherent`: whether the cache may trust its entries from the start (false for a shared
    /// database, until its change feed listens).
    pub fn new(settings: CacheSettings, coherent: bool) -> Self {
        let capacity = settings.capacity.max(1);
        Self {
            keys: quick_cache::sync::Cache::new(capacity),
            users: quick_cache::sync::Cache::new(capacity.clamp(1, 100_000)),
            sessions: quick_cache::sync::Cache::new(capacity.clamp(1, 100_000)),
            shapes: std::sync::RwLock::new(None),
            shapes_epoch: AtomicU64::new(0),
            id: NEXT_CACHE_ID.fetch_add(1, Ordering::Relaxed),
            epochs: Box::new(std::array::from_fn(|_| AtomicU64::new(0))),
            unknown_generation: AtomicU64::new(0),
            coherent: AtomicBool::new(coherent),
            settings,
            hits: crate::metrics::Counter::default(),
            misses: crate::metrics::Counter::default(),
        }
    }

    pub fn lookup(&self, digest: &KeyDigest, now: OffsetDateTime) -> Lookup<Option<Arc<ApiKey>>> {
        let epoch = self.epochs[key_stripe(digest)].load(Ordering::SeqCst);
        let coherent = self.coherent.load(Ordering::SeqCst);
        let lookup = match self.keys.get(digest) {
            Some(Entry::Known { key, until }) => self.judge(Some(key), until, coherent, now, epoch),
            Some(Entry::Unknown { until, generation })
                if coherent
                    && now < until
                    && generation == self.unknown_generation.load(Ordering::SeqCst) =>
            {
                Lookup::Hit(None)
            }
            _ => Lookup::Miss { epoch, stale: None },
        };
        self.count(&lookup);
        lookup
    }

    /// A hit while fresh and coherent; otherwise a miss, with the entry as a fallback while it
    /// is inside its TTL plus the stale window.
    fn judge<T>(
        &self,
        value: T,
        until: OffsetDateTime,
        coherent: bool,
        now: OffsetDateTime,
        epoch: u64,
    ) -> Lookup<T> {
        if coherent && now < until {
            Lookup::Hit(value)
        } else {
            let usable = now < until + self.settings.stale_window;
            Lookup::Miss {
                epoch,
                stale: usable.then_some(value),
            }
        }
    }

    fn count<T>(&self, lookup: &Lookup<T>) {
        let counter = match lookup {
            Lookup::Hit(_) => &self.hits,
            Lookup::Miss { .. } => &self.misses,
        };
        counter.add(1);
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
                generation: self.unknown_generation.load(Ordering::SeqCst),
            },
        };
        self.keys.insert(digest, entry);
        let stripe = &self.epochs[key_stripe(&digest)];
        if stripe.load(Ordering::SeqCst) != epoch {
            // An invalidation ran while storage was read: what was read may be stale. Moving
            // the epoch after the removal ends any witness taken of it meanwhile.
            self.keys.remove(&digest);
            stripe.fetch_add(1, Ordering::SeqCst);
        }
        key
    }

    /// Forgets `digest`, after a change to its key was stored and before the change's answer.
    pub fn invalidate(&self, digest: &KeyDigest) {
        let epoch = &self.epochs[key_stripe(digest)];
        // Before the removal for the fills under way (see `fill`), after it for the witnesses
        // (see `witness`): one that read the epoch after both finds the entry gone.
        epoch.fetch_add(1, Ordering::SeqCst);
        self.keys.remove(digest);
        epoch.fetch_add(1, Ordering::SeqCst);
    }

    /// Moves every stripe's epoch on (see `fill`).
    fn bump_all(&self) {
        for epoch in self.epochs.iter() {
            epoch.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// Forgets every digest remembered as unknown, keeping the keys (after an import stored keys
    /// that clients may already be presenting).
    pub fn forget_unknown(&self) {
        // Before and after, as `invalidate` does: a fill of "unknown" read before the import
        // was stored undoes itself, and one made meanwhile carries the old generation.
        self.bump_all();
        self.unknown_generation.fetch_add(1, Ordering::SeqCst);
        self.bump_all();
    }

    /// Forgets everything (after changes too broad to name each key, like deleting a tenant).
    pub fn clear(&self) {
        // Before and after, as `invalidate` does.
        self.bump_all();
        self.keys.clear();
        self.users.clear();
        self.sessions.clear();
        self.bump_all();
        self.shapes_changed();
    }

    /// `f` of the shapes of imported keys while fresh (read within the TTL, no import heard of
    /// since); `None`: read them again, and [`KeyCache::fill_shapes`]. Each thread keeps its own
    /// copy, so that the verify path of imported keys touches no lock or shared counter.
    pub fn with_shapes<R>(
        &self,
        now: OffsetDateTime,
        f: impl FnOnce(&[KeyShape]) -> R,
    ) -> Option<R> {
        if !self.is_coherent() {
            return None;
        }
        let epoch = self.shapes_epoch.load(Ordering::SeqCst);
        let fresh =
            |read: &ShapesRead| read.epoch == epoch && now < read.read_at + self.settings.ttl;
        LOCAL_SHAPES.with(|local| {
            let mut local = local.borrow_mut();
            let current = local
                .as_ref()
                .is_some_and(|copy| copy.cache == self.id && fresh(&copy.read));
            if !current {
                let held = self.shapes.read().unwrap_or_else(|e| e.into_inner());
                let read = held.as_ref().filter(|read| fresh(read))?;
                *local = Some(ShapesCopy {
                    cache: self.id,
                    read: read.clone(),
                });
            }
            local.as_ref().map(|copy| f(&copy.read.shapes))
        })
    }

    /// The shapes last read, however old (for when storage cannot be reached).
    pub fn last_shapes(&self) -> Option<Arc<Vec<KeyShape>>> {
        let held = self.shapes.read().unwrap_or_else(|e| e.into_inner());
        held.as_ref().map(|read| Arc::clone(&read.shapes))
    }

    /// Remembers the shapes read at `now`, read after [`KeyCache::reading_shapes`] gave `epoch`
    /// (if shapes changed meanwhile, they are kept but never answer).
    pub fn fill_shapes(
        &self,
        shapes: Vec<KeyShape>,
        epoch: u64,
        now: OffsetDateTime,
    ) -> Arc<Vec<KeyShape>> {
        let shapes = Arc::new(shapes);
        let mut held = self.shapes.write().unwrap_or_else(|e| e.into_inner());
        *held = Some(ShapesRead {
            shapes: Arc::clone(&shapes),
            read_at: now,
            epoch,
        });
        shapes
    }

    /// Begins a read of the shapes: the epoch to fill with.
    pub fn reading_shapes(&self) -> u64 {
        self.shapes_epoch.load(Ordering::SeqCst)
    }

    /// An import (here or elsewhere) may have added a shape.
    pub fn shapes_changed(&self) {
        self.shapes_epoch.fetch_add(1, Ordering::SeqCst);
    }

    /// Forgets user `id`, after a change to it was stored and before the change's answer.
    pub fn invalidate_user(&self, id: Uuid) {
        let epoch = &self.epochs[user_stripe(id)];
        // Before and after the removal, as `invalidate` does.
        epoch.fetch_add(1, Ordering::SeqCst);
        self.users.remove(&id);
        epoch.fetch_add(1, Ordering::SeqCst);
    }

    /// Forgets API session `id`, after it ended and before the answer that says so.
    pub fn invalidate_session(&self, id: Uuid) {
        self.epochs[user_stripe(id)].fetch_add(1, Ordering::SeqCst);
        self.sessions.remove(&id);
    }

    pub fn session(&self, id: Uuid, now: OffsetDateTime) -> Lookup<Option<Arc<ApiSession>>> {
        let epoch = self.epochs[user_stripe(id)].load(Ordering::SeqCst);
        match self.sessions.get(&id) {
            Some((session, until)) => self.judge(
                session,
                until,
                self.coherent.load(Ordering::SeqCst),
                now,
                epoch,
            ),
            None => Lookup::Miss { epoch, stale: None },
        }
    }

    /// Remembers what storage said of session `id` (an ended session never comes back, so its
    /// absence is kept as long as a session).
    pub fn fill_session(
        &self,
        id: Uuid,
        session: Option<ApiSession>,
        epoch: u64,
        now: OffsetDateTime,
    ) -> Option<Arc<ApiSession>> {
        let session = session.map(Arc::new);
        self.sessions
            .insert(id, (session.clone(), now + self.settings.ttl));
        if self.epochs[user_stripe(id)].load(Ordering::SeqCst) != epoch {
            self.sessions.remove(&id);
        }
        session
    }

    pub fn user(&self, id: Uuid, now: OffsetDateTime) -> Lookup<Arc<User>> {
        let epoch = self.epochs[user_stripe(id)].load(Ordering::SeqCst);
        match self.users.get(&id) {
            Some((user, until)) => self.judge(
                user,
                until,
                self.coherent.load(Ordering::SeqCst),
                now,
                epoch,
            ),
            None => Lookup::Miss { epoch, stale: None },
        }
    }

    pub fn fill_user(&self, user: User, epoch: u64, now: OffsetDateTime) -> Arc<User> {
        let user = Arc::new(user);
        let id = user.id;
        self.users
            .insert(id, (Arc::clone(&user), now + self.settings.ttl));
        let stripe = &self.epochs[user_stripe(id)];
        if stripe.load(Ordering::SeqCst) != epoch {
            // As in `fill`.
            self.users.remove(&id);
            stripe.fetch_add(1, Ordering::SeqCst);
        }
        user
    }

    /// A witness that `key` (cached under `digest`) and its owner `user`, both just read through
    /// this cache, are what the cache holds now: for a memo of something derived from them
    /// (`crate::auth`'s verifier memo). `None` when either is no longer cached as that very value
    /// (changed, evicted, or never cached), or the cache is not coherent.
    ///
    /// Sound against a concurrent invalidation because the epochs are read before the entries,
    /// and an invalidation moves its epoch again after removing the entry: a witness that read
    /// the final epoch finds the entry gone; one that read an earlier epoch stops holding. A
    /// stale fill that raced with an invalidation (inserted after it) moves the epoch after
    /// undoing itself, so a witness taken of it in between stops holding too.
    pub fn witness(
        &self,
        digest: &KeyDigest,
        key: &Arc<ApiKey>,
        user: &Arc<User>,
    ) -> Option<Witness> {
        let (key_stripe, user_stripe) = (key_stripe(digest), user_stripe(user.id));
        let key_epoch = self.epochs[key_stripe].load(Ordering::SeqCst);
        let user_epoch = self.epochs[user_stripe].load(Ordering::SeqCst);
        if !self.is_coherent() {
            return None;
        }
        let key_until = match self.keys.get(digest)? {
            Entry::Known { key: cached, until } if Arc::ptr_eq(&cached, key) => until,
            _ => return None,
        };
        let (cached, user_until) = self.users.get(&user.id)?;
        if !Arc::ptr_eq(&cached, user) {
            return None;
        }
        Some(Witness {
            cache: self.id,
            key_stripe,
            key_epoch,
            user_stripe,
            user_epoch,
            until: key_until.min(user_until),
        })
    }

    /// Whether what `witness` saw still holds at `now`: nothing invalidated in its stripes since,
    /// within both entries' TTL, and the cache coherent.
    pub fn holds(&self, witness: &Witness, now: OffsetDateTime) -> bool {
        witness.cache == self.id
            && now < witness.until
            && self.is_coherent()
            && self.epochs[witness.key_stripe].load(Ordering::SeqCst) == witness.key_epoch
            && self.epochs[witness.user_stripe].load(Ordering::SeqCst) == witness.user_epoch
    }

    /// Whether entries are trusted (the change feed, if any, listens).
    pub fn is_coherent(&self) -> bool {
        self.coherent.load(Ordering::SeqCst)
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub fn hits(&self) -> u64 {
        self.hits.get()
    }

    pub fn misses(&self) -> u64 {
        self.misses.get()
    }
}

/// The store's change feed, applied to this node's cache.
impl ChangeSink for KeyCache {
    fn changed(&self, change: Change) {
        match change {
            Change::Key(digest) => self.invalidate(&digest),
            Change::User(id) => self.invalidate_user(id),
            Change::Session(id) => self.invalidate_session(id),
            Change::Shapes => self.shapes_changed(),
            Change::NewKeys => self.forget_unknown(),
            Change::All => self.clear(),
        }
    }

    fn lost(&self) {
        if self.coherent.swap(false, Ordering::SeqCst) {
            tracing::warn!("change feed lost: the verify cache re-reads storage until it is back");
        }
    }

    fn resumed(&self) {
        // What was cached before may have changed unheard: start over, then trust again.
        self.clear();
        self.coherent.store(true, Ordering::SeqCst);
        tracing::info!("change feed listening: the verify cache is coherent");
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
            keyward_domain::Scopes::none(),
            NOW,
        );
        (plain.digest(), key)
    }

    fn hit(l: Lookup<Option<Arc<ApiKey>>>) -> Option<Option<Arc<ApiKey>>> {
        match l {
            Lookup::Hit(k) => Some(k),
            Lookup::Miss { .. } => None,
        }
    }

    fn stale(l: Lookup<Option<Arc<ApiKey>>>) -> Option<Arc<ApiKey>> {
        match l {
            Lookup::Hit(_) => panic!("a hit, not a miss"),
            Lookup::Miss { stale, .. } => stale.flatten(),
        }
    }

    #[test]
    fn fills_hits_expires_and_invalidates() {
        let cache = KeyCache::new(CacheSettings::default(), true);
        let (digest, k) = key();
        let Lookup::Miss { epoch, .. } = cache.lookup(&digest, NOW) else {
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
        let cache = KeyCache::new(CacheSettings::default(), true);
        let (digest, _) = key();
        cache.fill(digest, None, 0, NOW);
        assert!(matches!(hit(cache.lookup(&digest, NOW)), Some(None)));
        assert!(hit(cache.lookup(&digest, NOW + Duration::seconds(3))).is_none());
    }

    #[test]
    fn an_import_forgets_unknown_digests_and_keeps_keys() {
        let cache = KeyCache::new(CacheSettings::default(), true);
        let unknown = KeyDigest::of("presented before its import");
        let racing = KeyDigest::of("read while the import was stored");
        let (known, k) = key();
        cache.fill(unknown, None, 0, NOW);
        cache.fill(known, Some(k), 0, NOW);
        // A lookup of the unknown digest under way while the import is stored.
        let Lookup::Miss { epoch, .. } = cache.lookup(&racing, NOW) else {
            panic!()
        };
        cache.forget_unknown();
        assert!(hit(cache.lookup(&unknown, NOW)).is_none(), "a miss now");
        assert!(matches!(hit(cache.lookup(&known, NOW)), Some(Some(_))));
        // What the racing lookup read before the import does not stay.
        cache.fill(racing, None, epoch, NOW);
        assert!(hit(cache.lookup(&racing, NOW)).is_none());
        // Unknown digests read after it are remembered again.
        cache.fill(
            unknown,
            None,
            cache.epochs[key_stripe(&unknown)].load(Ordering::SeqCst),
            NOW,
        );
        assert!(matches!(hit(cache.lookup(&unknown, NOW)), Some(None)));
    }

    #[test]
    fn a_fill_racing_an_invalidation_does_not_stay() {
        let cache = KeyCache::new(CacheSettings::default(), true);
        let (digest, k) = key();
        let Lookup::Miss { epoch, .. } = cache.lookup(&digest, NOW) else {
            panic!()
        };
        // The key is revoked (and invalidated) while the filler reads the old row.
        cache.invalidate(&digest);
        cache.fill(digest, Some(k.clone()), epoch, NOW);
        assert!(hit(cache.lookup(&digest, NOW)).is_none());

        // An invalidation of another key does not undo the fill.
        let Lookup::Miss { epoch, .. } = cache.lookup(&digest, NOW) else {
            panic!()
        };
        let mut other = [0u8; 32];
        other[0] = digest.as_bytes()[0].wrapping_add(1);
        cache.invalidate(&KeyDigest::from_slice(&other).unwrap());
        cache.fill(digest, Some(k), epoch, NOW);
        assert!(hit(cache.lookup(&digest, NOW)).is_some());
    }

    fn owner() -> User {
        User {
            id: Uuid::from_u128(2),
            email: "owner@example.com".into(),
            password_hash: String::new(),
            role: keyward_domain::Role::Member,
            tenant_id: None,
            created_at: NOW,
            updated_at: NOW,
            disabled_at: None,
        }
    }

    #[test]
    fn a_witness_holds_until_its_key_or_user_changes_or_their_ttl_ends() {
        let cache = KeyCache::new(CacheSettings::default(), true);
        let (digest, k) = key();
        let fill = |cache: &KeyCache| {
            let key = match cache.lookup(&digest, NOW) {
                Lookup::Hit(key) => key.unwrap(),
                Lookup::Miss { epoch, .. } => {
                    cache.fill(digest, Some(k.clone()), epoch, NOW).unwrap()
                }
            };
            let user = match cache.user(Uuid::from_u128(2), NOW) {
                Lookup::Hit(user) => user,
                Lookup::Miss { epoch, .. } => cache.fill_user(owner(), epoch, NOW),
            };
            (key, user)
        };
        let (key, user) = fill(&cache);
        let w = cache.witness(&digest, &key, &user).expect("both cached");
        assert!(cache.holds(&w, NOW + Duration::seconds(29)));
        assert!(!cache.holds(&w, NOW + Duration::seconds(30)), "the TTL");
        assert!(
            !KeyCache::new(CacheSettings::default(), true).holds(&w, NOW),
            "another cache"
        );
        let other = Arc::new((*key).clone());
        assert!(
            cache.witness(&digest, &other, &user).is_none(),
            "only for the very value cached"
        );

        cache.invalidate(&digest);
        assert!(!cache.holds(&w, NOW), "the key changed");
        assert!(cache.witness(&digest, &key, &user).is_none(), "and is gone");

        let (key, user) = fill(&cache);
        let w = cache.witness(&digest, &key, &user).unwrap();
        cache.invalidate_user(user.id);
        assert!(!cache.holds(&w, NOW), "the owner changed");

        // A fill that read storage before an invalidation and inserted after it undoes itself;
        // a witness taken of its entry in between must stop holding (the undo moves the epoch).
        cache.invalidate(&digest);
        let Lookup::Miss { epoch: before, .. } = cache.lookup(&digest, NOW) else {
            panic!("invalidated")
        };
        cache.invalidate(&digest);
        let (key, user) = fill(&cache);
        let w = cache.witness(&digest, &key, &user).unwrap();
        cache.fill(digest, Some(k.clone()), before, NOW);
        assert!(!cache.holds(&w, NOW), "a stale fill was undone");

        let (key, user) = fill(&cache);
        let w = cache.witness(&digest, &key, &user).unwrap();
        cache.lost();
        assert!(!cache.holds(&w, NOW), "the change feed is down");
        assert!(cache.witness(&digest, &key, &user).is_none());
    }

    #[test]
    fn without_the_change_feed_nothing_hits_and_entries_are_only_a_fallback_within_their_ttl() {
        let settings = CacheSettings {
            stale_window: Duration::seconds(10),
            ..CacheSettings::default()
        };
        let cache = KeyCache::new(settings, true);
        let (digest, k) = key();
        cache.fill(digest, Some(k), 0, NOW);
        cache.fill_user(owner(), 0, NOW);
        assert!(hit(cache.lookup(&digest, NOW)).is_some());

        cache.lost();
        assert!(!cache.is_coherent());
        let fallback = stale(cache.lookup(&digest, NOW + Duration::seconds(5)));
        assert!(
            fallback.is_some(),
            "inside the TTL the entry may answer if storage is gone"
        );
        assert!(
            stale(cache.lookup(&digest, NOW + Duration::seconds(39))).is_some(),
            "TTL 30 s plus a stale window of 10 s"
        );
        assert!(stale(cache.lookup(&digest, NOW + Duration::seconds(40))).is_none());
        assert!(matches!(
            cache.user(Uuid::from_u128(2), NOW),
            Lookup::Miss { stale: Some(_), .. }
        ));

        cache.resumed();
        assert!(cache.is_coherent());
        assert!(
            matches!(cache.lookup(&digest, NOW), Lookup::Miss { stale: None, .. }),
            "changes made while the feed was down went unheard: everything is forgotten"
        );
    }

    #[test]
    fn the_change_feed_invalidates_one_key_or_all() {
        let cache = KeyCache::new(CacheSettings::default(), false);
        let (digest, k) = key();
        cache.fill(digest, Some(k.clone()), 0, NOW);
        assert!(
            hit(cache.lookup(&digest, NOW)).is_none(),
            "a cache that starts incoherent trusts nothing until the feed listens"
        );
        cache.resumed();
        let Lookup::Miss { epoch, .. } = cache.lookup(&digest, NOW) else {
            panic!()
        };
        cache.fill(digest, Some(k.clone()), epoch, NOW);
        assert!(hit(cache.lookup(&digest, NOW)).is_some());
        cache.changed(Change::Key(digest));
        assert!(hit(cache.lookup(&digest, NOW)).is_none());
        let Lookup::Miss { epoch, .. } = cache.lookup(&digest, NOW) else {
            panic!()
        };
        cache.fill(digest, Some(k), epoch, NOW);
        cache.changed(Change::All);
        assert!(hit(cache.lookup(&digest, NOW)).is_none());
    }

    #[test]
    fn shapes_answer_in_their_epoch_and_ttl_only() {
        use keyward_domain::import::{ImportFormat, KeyShape};
        let cache = KeyCache::new(CacheSettings::default(), true);
        let shape = KeyShape::of(ImportFormat::Estuary, None, None, NOW).unwrap();
        let count = |cache: &KeyCache, at| cache.with_shapes(at, |s| s.len());
        assert_eq!(count(&cache, NOW), None, "nothing read yet");
        let epoch = cache.reading_shapes();
        cache.fill_shapes(vec![shape.clone()], epoch, NOW);
        assert_eq!(count(&cache, NOW), Some(1));
        assert_eq!(
            count(&cache, NOW + CacheSettings::default().ttl),
            None,
            "past the TTL"
        );
        // A read begun before an import was announced answers nobody.
        let before = cache.reading_shapes();
        cache.shapes_changed();
        assert_eq!(count(&cache, NOW), None);
        cache.fill_shapes(vec![], before, NOW);
        assert_eq!(count(&cache, NOW), None);
        assert_eq!(cache.last_shapes().map(|s| s.len()), Some(0));
        cache.fill_shapes(vec![shape.clone(), shape], cache.reading_shapes(), NOW);
        assert_eq!(count(&cache, NOW), Some(2));
    }
}
