#[cfg(feature = "source-mysql-binlog")]
pub mod mysql_binlog;
