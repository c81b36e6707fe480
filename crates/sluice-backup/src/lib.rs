//! Backups (issue 12). So far: the format every backup file is stored in ([`sealed`]: zstd and AES-256-GCM
//! in authenticated chunks, streamed through bounded memory, documented in docs/backup.md so that a backup is
//! never hostage to Sluice), and the first driver ([`mariadb_dump`]: logical backups into a local repository
//! with a manifest, restored and checked against it). Policies, other drivers, S3/SFTP repositories, PITR and
//! scheduled verification build on these.

pub mod binlog_archive;
pub mod dump_scan;
pub mod mariadb_dump;
pub mod mariadb_physical;
pub mod pg_dump;
pub mod pg_incremental;
pub mod pg_physical;
pub mod rdb_scan;
pub mod redis_rdb;
pub mod repo;
pub mod repository;
pub mod scratch;
pub mod sealed;
pub mod table_restore;
pub mod verify;
pub mod wal_command;

pub use sealed::{Compression, DataKey, SealError, Sealed, open, seal};
