//! PostgreSQL logical replication source (feature `source-pg-logical`): pgoutput through
//! `pgwire-replication`, decoded here.
//!
//! **Guarantee**: at-least-once, in commit order. The slot is confirmed (`update_applied_lsn`) only up to
//! positions every sink acknowledged and the checkpoint saved, so the server keeps every change that is not
//! yet delivered; after a crash streaming restarts at the saved commit LSN. Keepalives are answered while
//! idle, so an idle pipeline does not pin WAL.

mod config;
mod decode;
mod source;
mod tls_relay;
mod toast;

pub use config::PgLogicalConfig;
pub use source::PgLogicalSource;
