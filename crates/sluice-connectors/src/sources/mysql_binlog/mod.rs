//! MySQL/MariaDB binlog source (feature `source-mysql-binlog`).
//!
//! **Guarantee**: at-least-once. Positions are transaction boundaries (after the XID or standalone event);
//! after a crash or reconnect the source restarts at the last committed (or last sent) boundary, so the
//! changes of a transaction that was cut mid-way are sent again; no committed transaction is skipped.

mod charset;
mod config;
mod decode;
mod rowdecode;
mod snapshot;
mod source;
mod transaction;

pub use config::{MysqlBinlogConfig, StartFrom};
pub use source::MysqlBinlogSource;
pub use transaction::read_transaction;
