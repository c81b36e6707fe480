//! Database sink (feature `sink-database`): row changes into MySQL/MariaDB or PostgreSQL tables, in either
//! direction (MariaDB → PostgreSQL and back), mapped by configuration.
//!
//! **Guarantee**: exactly once. Each batch is written in one target transaction together with the sink's
//! checkpoint (a row of `sluice_sink_checkpoints`: the [`StreamCursor`](sluice_pipeline::StreamCursor) of the
//! batch's last record), whose row is locked first. After a crash the pipeline replays from its own
//! (older) checkpoint, and the sink skips every record at or before the cursor the target holds
//! ([`Batch::applied`](sluice_pipeline::Batch::applied)): nothing is written twice and nothing is lost.
//! Inserts and updates are upserts by key, deletes delete (or set a soft-delete column), an update that
//! moves the key deletes the old row first, TRUNCATE empties the mapped table.
//!
//! Failures: a connection loss, a lock timeout or a target that is not ready (a missing table or column) is
//! retried with backoff, naming the problem in the pipeline's status; nothing is acknowledged meanwhile. A
//! value that does not fit its column (checked before sending, naming the column and the value's type), or
//! a row the target refuses (a constraint), goes to the dead-letter output with the reason, and the rest of
//! the batch is written. A MySQL/MariaDB source foreign key whose `ON DELETE CASCADE`/`SET NULL` (or
//! `ON UPDATE CASCADE`) changes child rows without binlog events must be matched by the same constraint at
//! the target, or the sink refuses to start, naming it ([`cascade`]).

mod apply;
mod cascade;
mod config;
mod convert;
mod mapping;
mod sink;
mod target;

pub use config::{DatabaseSinkConfig, NewColumn, TableMapping, Truncate};
pub use sink::DatabaseSink;
