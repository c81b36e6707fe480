//! Keeps the read caches of several servers on one PostgreSQL store coherent (see `cache`).
//!
//! Every write that may make a cache stale sends `NOTIFY sluice_cache, '<what>'` inside its transaction;
//! PostgreSQL delivers it to every listener when the transaction commits. Each server holds one listening
//! connection: while it is up, notifications clear that server's caches; the moment it is lost, the caches
//! go off (reads go to the database) until a new connection listens again.
//!
//! A connection can also die silently (a cut network keeps the socket open). So the listener sends
//! itself a ping through the ordinary pool every [`PING_EVERY`] and must hear it back on the listening
//! connection within [`PING_DEADLINE`]; a ping that does not come back turns the caches off as a lost
//! connection does. The caches come on only after the first ping came back, which proves the channel is
//! heard before anything is served from memory.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::AnyPool;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};
use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::cache::{Changes, ReadCache};

/// The channel every server listens on.
pub(crate) const CHANNEL: &str = "sluice_cache";
const PING_EVERY: Duration = Duration::from_secs(2);
const PING_DEADLINE: Duration = Duration::from_secs(3);
/// Pause between attempts to reconnect.
const RETRY: Duration = Duration::from_secs(1);
/// The `application_name` of the listening connection (it shows in `pg_stat_activity`).
pub(crate) const APPLICATION_NAME: &str = "sluice-cache-listener";

/// Stops the listener when dropped (with the last clone of the store).
pub(crate) struct Listener {
    _stop: oneshot::Sender<()>,
}

pub(crate) fn spawn(url: &str, pool: AnyPool, cache: Arc<ReadCache>) -> Listener {
    let (stop_tx, stop) = oneshot::channel();
    let url = url.to_string();
    tokio::spawn(async move {
        tokio::select! {
            _ = stop => {}
            _ = run(&url, &pool, &cache) => {}
        }
        cache.set_coherent(false);
    });
    Listener { _stop: stop_tx }
}

async fn run(url: &str, pool: &AnyPool, cache: &ReadCache) {
    let options = match PgConnectOptions::from_str(url) {
        Ok(o) => o.application_name(APPLICATION_NAME),
        Err(e) => {
            // The pool connected with this URL, so this does not happen; if it did, the caches stay off.
            tracing::error!(error = %e, "the store's read caches stay off: cannot read the store URL for the listener");
            return;
        }
    };
    // Pings carry this process's id, so each listener tells its own pings from the other servers'.
    let me = format!("ping:{:016x}", rand::random::<u64>());
    loop {
        let why = listen_once(&options, pool, cache, &me).await;
        cache.set_coherent(false);
        if pool.is_closed() {
            return;
        }
        tracing::warn!(reason = %why, "store cache listener lost; read caches are off until it is back");
        tokio::time::sleep(RETRY).await;
    }
}

/// Listens on one connection until it is lost; returns why.
async fn listen_once(options: &PgConnectOptions, pool: &AnyPool, cache: &ReadCache, me: &str) -> String {
    let lost = |what: &str, e: sqlx::Error| format!("{what}: {e}");
    // A pool of one, only so PgListener can own its connection; it never reconnects behind our back.
    let listen_pool = match PgPoolOptions::new().max_connections(1).acquire_timeout(Duration::from_secs(10)).connect_with(options.clone()).await {
        Ok(p) => p,
        Err(e) => return lost("connect", e),
    };
    let mut listener = match PgListener::connect_with(&listen_pool).await {
        Ok(l) => l,
        Err(e) => return lost("connect", e),
    };
    listener.eager_reconnect(false);
    if let Err(e) = listener.listen(CHANNEL).await {
        return lost("LISTEN", e);
    }
    let mut sent: Option<(u64, Instant)> = None;
    let mut next_ping = 0u64;
    let mut ticker = tokio::time::interval(PING_EVERY);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first tick fires at once: the first ping goes out right away.
    loop {
        tokio::select! {
            n = listener.try_recv() => match n {
                Ok(Some(n)) => {
                    let payload = n.payload();
                    if let Some(rest) = payload.strip_prefix(me).and_then(|r| r.strip_prefix(':')) {
                        if sent.is_some_and(|(id, _)| rest == id.to_string()) {
                            sent = None;
                            if !cache.enabled() {
                                cache.set_coherent(true);
                                tracing::info!("store cache listener up; read caches on");
                            }
                        }
                    } else if !payload.starts_with("ping:") {
                        cache.apply(Changes::parse(payload));
                    }
                }
                Ok(None) => return "the connection was closed".into(),
                Err(e) => return lost("receive", e),
            },
            _ = ticker.tick() => {
                if let Some((_, at)) = sent
                    && at.elapsed() >= PING_DEADLINE
                {
                    return format!("a ping did not come back within {PING_DEADLINE:?}");
                }
                if sent.is_none() {
                    next_ping += 1;
                    let ping = format!("NOTIFY {CHANNEL}, '{me}:{next_ping}'");
                    if let Err(e) = sqlx::query(&ping).execute(pool).await {
                        return lost("send a ping", e);
                    }
                    sent = Some((next_ping, Instant::now()));
                }
            }
        }
    }
}
