//! The change feed between nodes: PostgreSQL LISTEN/NOTIFY on one channel.
//!
//! Owns the channel's name and payload format, the announcement a write makes inside its own
//! transaction ([`notify`]), and the listening side behind [`Store::watch`]: a connection of its
//! own per listening session, the heartbeat that notices a silently dead one, and the retry loop
//! that opens the next. It must never mend a lost connection silently (notifications sent
//! meanwhile are gone, and only the sink's `lost` lets the cache forget what it may have missed),
//! never announce outside the writing transaction (a rolled-back write must announce nothing),
//! and never change the channel or the payload format that nodes of another version still read.
//!
//! [`Store::watch`]: keyward_store::Store::watch

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use keyward_domain::KeyDigest;
use keyward_store::{Change, ChangeSink, StoreError};
use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};
use sqlx::{PgPool, Postgres, Transaction};

use crate::map_err;

/// The channel every node LISTENs on and every verification-affecting write NOTIFYs.
/// Never change it: nodes of two versions must still hear each other during a rolling upgrade.
const CHANGES_CHANNEL: &str = "keyward_changes";
/// The payload is `<origin>:<what>`: the announcing store's [`PgStore::origin`], then `*` for
/// [`Change::All`], a key's digest in base64url (43 characters), `u:<uuid>` for a user or
/// `s:<uuid>` for an API session, `shapes` when imported keys' shapes changed, `new` when an
/// import stored keys. (A node that cannot read a payload forgets everything.)
///
/// [`PgStore::origin`]: crate::PgStore::origin
const ALL_KEYS: &str = "*";
const USER: &str = "u:";
const SESSION: &str = "s:";
const SHAPES: &str = "shapes";
const NEW_KEYS: &str = "new";
/// How long the listening connection may stay silent before it is asked whether it still lives.
const LISTEN_HEARTBEAT: Duration = Duration::from_secs(1);

/// One connection, used only by [`Store::watch`]; its application name
/// (`keyward-listener-<pid>-<origin prefix>`) lets an operator (or a test) tell each node's
/// listener apart in `pg_stat_activity`.
///
/// [`Store::watch`]: keyward_store::Store::watch
pub(crate) struct ListenerState {
    options: PgConnectOptions,
    acquire_timeout: Duration,
    /// The pool of the current listening session, so that `close` can end it.
    current: std::sync::Mutex<Option<PgPool>>,
    closed: AtomicBool,
}

impl ListenerState {
    /// A listener that connects with `options` (which name its connection) when watched.
    pub(crate) fn new(options: PgConnectOptions, acquire_timeout: Duration) -> Self {
        Self {
            options,
            acquire_timeout,
            current: std::sync::Mutex::new(None),
            closed: AtomicBool::new(false),
        }
    }

    /// Relays every other node's announcement to `sink` until [`ListenerState::close`], opening
    /// a new listening session whenever one is lost; `own_origin` names this node's own
    /// announcements, which it skips.
    pub(crate) async fn watch(&self, sink: Arc<dyn ChangeSink>, own_origin: &str) {
        let mut retry = Duration::from_millis(100);
        loop {
            match self.listen().await {
                Ok(listener) => {
                    retry = Duration::from_millis(100);
                    sink.resumed();
                    relay(listener, sink.as_ref(), own_origin).await;
                    sink.lost();
                    if self.closed.load(Ordering::SeqCst) {
                        return;
                    }
                }
                Err(_) if self.closed.load(Ordering::SeqCst) => return,
                // Not listening yet: the sink is still in its "lost" state.
                Err(_) => {}
            }
            tokio::time::sleep(retry).await;
            // Back off to at most half a second, well inside the 5 s recovery promise.
            retry = (retry * 2).min(Duration::from_millis(500));
        }
    }

    /// Ends the current listening session and any later one: [`ListenerState::watch`] returns.
    pub(crate) async fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        let current = self
            .current
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(listen_pool) = current {
            listen_pool.close().await;
        }
    }

    /// A listener on [`CHANGES_CHANNEL`], on a connection of its own.
    async fn listen(&self) -> Result<PgListener, sqlx::Error> {
        // A pool of its own for each listening session: when a connection goes silent, sqlx's
        // listener says goodbye on it (UNLISTEN) before giving it back, which never finishes,
        // and a shared one-connection pool would wait for that slot for good.
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .min_connections(0)
            .acquire_timeout(self.acquire_timeout)
            .connect_lazy_with(self.options.clone());
        *self.current.lock().unwrap_or_else(PoisonError::into_inner) = Some(pool.clone());
        // `close` marks first, then closes the current pool: a session that started meanwhile
        // must not outlive it.
        if self.closed.load(Ordering::SeqCst) {
            pool.close().await;
            return Err(sqlx::Error::PoolClosed);
        }
        let mut listener = PgListener::connect_with(&pool).await?;
        // A lost connection must surface to `watch` (which tells the cache), not be mended
        // silently: notifications sent meanwhile are gone.
        listener.eager_reconnect(false);
        listener.listen(CHANGES_CHANNEL).await?;
        Ok(listener)
    }
}

/// Announces `change` to every node when `tx` commits (PostgreSQL delivers a NOTIFY at commit,
/// and never for a transaction that rolls back).
pub(crate) async fn notify(
    tx: &mut Transaction<'static, Postgres>,
    origin: &str,
    change: Change,
) -> Result<(), StoreError> {
    let payload = match change {
        Change::Key(digest) => format!("{origin}:{}", digest.to_base64url()),
        Change::User(id) => format!("{origin}:{USER}{id}"),
        Change::Session(id) => format!("{origin}:{SESSION}{id}"),
        Change::Shapes => format!("{origin}:{SHAPES}"),
        Change::NewKeys => format!("{origin}:{NEW_KEYS}"),
        Change::All => format!("{origin}:{ALL_KEYS}"),
    };
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(CHANGES_CHANNEL)
        .bind(payload)
        .execute(&mut **tx)
        .await
        .map_err(map_err)?;
    Ok(())
}

/// Hands every other node's announcement to `sink` until the listening connection fails.
async fn relay(mut listener: PgListener, sink: &dyn ChangeSink, own_origin: &str) {
    loop {
        match tokio::time::timeout(LISTEN_HEARTBEAT, listener.try_recv()).await {
            Ok(Ok(Some(n))) => match parse_change(n.payload()) {
                Some((origin, _)) if origin == own_origin => {}
                Some((_, change)) => sink.changed(change),
                // A payload this version cannot read (a newer node's?): forgetting all is safe.
                None => sink.changed(Change::All),
            },
            Ok(Ok(None)) | Ok(Err(_)) => return,
            Err(_silent) => {
                // A server that vanished without closing the socket would leave this node deaf
                // until TCP gives up: ask the connection whether it still lives.
                let alive = tokio::time::timeout(
                    LISTEN_HEARTBEAT,
                    sqlx::query("SELECT 1").execute(&mut listener),
                )
                .await;
                if !matches!(alive, Ok(Ok(_))) {
                    return;
                }
            }
        }
    }
}

/// The change a payload announces, and its origin.
fn parse_change(payload: &str) -> Option<(&str, Change)> {
    let (origin, what) = payload.split_once(':')?;
    if what == ALL_KEYS {
        Some((origin, Change::All))
    } else if what == SHAPES {
        Some((origin, Change::Shapes))
    } else if what == NEW_KEYS {
        Some((origin, Change::NewKeys))
    } else if let Some(id) = what.strip_prefix(USER) {
        Some((origin, Change::User(id.parse().ok()?)))
    } else if let Some(id) = what.strip_prefix(SESSION) {
        Some((origin, Change::Session(id.parse().ok()?)))
    } else {
        KeyDigest::from_base64url(what).map(|d| (origin, Change::Key(d)))
    }
}
