//! Backups (issue 12). This first part is the format every backup file is stored in: [`sealed`] — zstd
//! and AES-256-GCM in authenticated chunks, streamed through bounded memory, documented in docs/backup.md so
//! that a backup is never hostage to Sluice. Drivers, repositories, policies and verification build on it.

pub mod sealed;

pub use sealed::{Compression, DataKey, SealError, Sealed, open, seal};
