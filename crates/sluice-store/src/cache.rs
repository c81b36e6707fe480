//! In-process read caches for the hottest reads: resolving a token, listing the registry, and the
//! tickets' generation (which lets a ticket list page be served again while no ticket changed).
//!
//! A cache is only as good as its invalidation, so each write that could make one stale marks its
//! transaction ([`crate::WriteTx::changed`]); after the commit this process clears its own caches at once
//! (a caller always reads its own writes), and on the PostgreSQL store the transaction also sends
//! `NOTIFY sluice_cache` so every other server clears its caches when the commit is delivered
//! (see `coherence`). The caches are **coherent** — serving at all — only:
//! - on the SQLite store, in the process that is its single writer (`sluice serve`, which locks the data
//!   dir), where every write happens here;
//! - on the PostgreSQL store, while this process's listener is connected and has proved it hears the
//!   channel (its own pings come back). When the listener drops, the caches go off and every read goes to
//!   the database until it is back; coming back clears them, since notifications sent meanwhile were lost.
//!
//! So on PostgreSQL a write made on another server is seen here once its notification arrives (a few
//! milliseconds on one network; at most the ping interval plus its deadline when the listener silently
//! dies), and at once on the server that made it. Every reader takes a generation before it reads the
//! store and keeps what it read only if no invalidation happened meanwhile, so a read that raced a write
//! never outlives it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use crate::instances::InstanceRecord;
use crate::users::Principal;

/// Bound on cached tokens; past it the map is cleared (it refills from the store).
const MAX_TOKENS: usize = 10_000;

#[derive(Clone)]
pub(crate) struct CachedPrincipal {
    pub principal: Principal,
    pub expires_at: Option<i64>,
}

/// One registry entry with its API JSON rendered once.
pub(crate) struct CachedInstance {
    pub record: InstanceRecord,
    pub json: Arc<str>,
}

/// What a committed write may have made stale (see [`crate::WriteTx::changed`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Changes {
    pub tokens: bool,
    pub registry: bool,
    pub tickets: bool,
}

impl Changes {
    pub fn any(self) -> bool {
        self.tokens || self.registry || self.tickets
    }

    /// The NOTIFY payload: the names of what changed, comma-separated.
    pub fn payload(self) -> String {
        [(self.tokens, "tokens"), (self.registry, "registry"), (self.tickets, "tickets")]
            .iter()
            .filter(|(on, _)| *on)
            .map(|(_, n)| *n)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Reads a payload; names it does not know are ignored (a newer server may send more).
    pub fn parse(payload: &str) -> Self {
        let has = |n: &str| payload.split(',').any(|p| p == n);
        Self { tokens: has("tokens"), registry: has("registry"), tickets: has("tickets") }
    }
}

pub(crate) struct ReadCache {
    coherent: AtomicBool,
    tokens: RwLock<HashMap<String, CachedPrincipal>>,
    /// Bumped by every token invalidation, so an entry read before it is not kept after it.
    tokens_generation: AtomicU64,
    registry: RwLock<Option<Arc<Vec<CachedInstance>>>>,
    /// Bumped by every registry write, so a snapshot built from a read that raced a write is not kept.
    registry_generation: AtomicU64,
    /// Bumped by every ticket change; ticket list pages are cached under it.
    tickets_generation: AtomicU64,
}

impl ReadCache {
    /// `coherent`: whether the caches serve from the start (the SQLite single writer); the PostgreSQL
    /// listener turns them on and off through [`ReadCache::set_coherent`].
    pub fn new(coherent: bool) -> Self {
        Self {
            coherent: AtomicBool::new(coherent),
            tokens: RwLock::new(HashMap::new()),
            tokens_generation: AtomicU64::new(0),
            registry: RwLock::new(None),
            registry_generation: AtomicU64::new(0),
            tickets_generation: AtomicU64::new(0),
        }
    }

    pub fn token(&self, hash: &str) -> Option<CachedPrincipal> {
        if !self.enabled() {
            return None;
        }
        self.tokens.read().expect("token cache lock").get(hash).cloned()
    }

    /// The generation to pass to [`ReadCache::put_token`], taken before reading the store.
    pub fn tokens_generation(&self) -> u64 {
        self.tokens_generation.load(Ordering::Acquire)
    }

    pub fn put_token(&self, generation: u64, hash: String, entry: CachedPrincipal) {
        if !self.enabled() {
            return;
        }
        let mut map = self.tokens.write().expect("token cache lock");
        if self.tokens_generation.load(Ordering::Acquire) != generation {
            return;
        }
        if map.len() >= MAX_TOKENS {
            map.clear();
        }
        map.insert(hash, entry);
    }

    /// After any change to users or tokens: a revoked token must stop working at once.
    pub fn clear_tokens(&self) {
        let mut map = self.tokens.write().expect("token cache lock");
        self.tokens_generation.fetch_add(1, Ordering::AcqRel);
        map.clear();
    }

    pub fn registry(&self) -> Option<Arc<Vec<CachedInstance>>> {
        if !self.enabled() {
            return None;
        }
        self.registry.read().expect("registry cache lock").clone()
    }

    /// The generation to pass to [`ReadCache::put_registry`], taken before reading the store.
    pub fn registry_generation(&self) -> u64 {
        self.registry_generation.load(Ordering::Acquire)
    }

    pub fn put_registry(&self, generation: u64, snapshot: Arc<Vec<CachedInstance>>) {
        if !self.enabled() {
            return;
        }
        let mut slot = self.registry.write().expect("registry cache lock");
        if self.registry_generation.load(Ordering::Acquire) == generation {
            *slot = Some(snapshot);
        }
    }

    /// After any committed registry write.
    pub fn clear_registry(&self) {
        let mut slot = self.registry.write().expect("registry cache lock");
        self.registry_generation.fetch_add(1, Ordering::AcqRel);
        *slot = None;
    }

    /// The tickets' generation while the caches are coherent: a page read after taking it may be served
    /// again while it has not moved. `None` when they are not (read the store every time).
    pub fn tickets_generation(&self) -> Option<u64> {
        self.enabled().then(|| self.tickets_generation.load(Ordering::Acquire))
    }

    /// After a committed write (here, or announced by another server).
    pub fn apply(&self, changes: Changes) {
        if changes.tokens {
            self.clear_tokens();
        }
        if changes.registry {
            self.clear_registry();
        }
        if changes.tickets {
            self.tickets_generation.fetch_add(1, Ordering::AcqRel);
        }
    }

    /// Turns the caches on or off. Either way they are cleared (and every generation moves): when they come
    /// on, whatever happened while they were off is unknown; when they go off, nothing is kept to go stale.
    pub fn set_coherent(&self, coherent: bool) {
        if !coherent {
            self.coherent.store(false, Ordering::Release);
        }
        self.apply(Changes { tokens: true, registry: true, tickets: true });
        if coherent {
            self.coherent.store(true, Ordering::Release);
        }
    }

    pub fn enabled(&self) -> bool {
        self.coherent.load(Ordering::Acquire)
    }
}
