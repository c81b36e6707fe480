//! In-process read caches for the two hottest reads: resolving a token and listing the registry.
//!
//! They are on only when this process is the store's single writer — the SQLite store, which `sluice serve`
//! locks to one process — so every write that could make them stale happens here and clears them right after
//! its commit: a caller always reads its own writes. With the PostgreSQL store several servers write, so the
//! caches stay off and every read goes to the database.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
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

pub(crate) struct ReadCache {
    enabled: bool,
    tokens: RwLock<HashMap<String, CachedPrincipal>>,
    registry: RwLock<Option<Arc<Vec<CachedInstance>>>>,
    /// Bumped by every registry write, so a snapshot built from a read that raced a write is not kept.
    registry_generation: AtomicU64,
}

impl ReadCache {
    pub fn new(enabled: bool) -> Self {
        Self { enabled, tokens: RwLock::new(HashMap::new()), registry: RwLock::new(None), registry_generation: AtomicU64::new(0) }
    }

    pub fn token(&self, hash: &str) -> Option<CachedPrincipal> {
        if !self.enabled {
            return None;
        }
        self.tokens.read().expect("token cache lock").get(hash).cloned()
    }

    pub fn put_token(&self, hash: String, entry: CachedPrincipal) {
        if !self.enabled {
            return;
        }
        let mut map = self.tokens.write().expect("token cache lock");
        if map.len() >= MAX_TOKENS {
            map.clear();
        }
        map.insert(hash, entry);
    }

    /// After any change to users or tokens: a revoked token must stop working at once.
    pub fn clear_tokens(&self) {
        self.tokens.write().expect("token cache lock").clear();
    }

    pub fn registry(&self) -> Option<Arc<Vec<CachedInstance>>> {
        if !self.enabled {
            return None;
        }
        self.registry.read().expect("registry cache lock").clone()
    }

    /// The generation to pass to [`ReadCache::put_registry`], taken before reading the store.
    pub fn registry_generation(&self) -> u64 {
        self.registry_generation.load(Ordering::Acquire)
    }

    pub fn put_registry(&self, generation: u64, snapshot: Arc<Vec<CachedInstance>>) {
        if !self.enabled {
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

    pub fn enabled(&self) -> bool {
        self.enabled
    }
}
