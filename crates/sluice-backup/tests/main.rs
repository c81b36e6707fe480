//! sluice-backup's integration tests, one binary (STYLE.md): each against the real services started by
//! `scripts/services.sh`, and every repository test on each kind of repository (local, S3 on Garage, SFTP
//! on OpenSSH).

mod support;

mod by_hand;
mod mariadb_dump;
mod mariadb_physical;
mod mariadb_pitr;
mod pg_dump;
mod pg_incremental;
mod pg_pitr;
mod redis_rdb;
mod repositories;
mod table_restore;
mod verify;
